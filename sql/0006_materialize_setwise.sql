-- 0006_materialize_setwise: lh_materialize folds a batch set-wise instead of one event at a time,
-- and task outputs stored as blobs (DESIGN.md section 2, rule 7) are resolved by the projection.
--
-- The rows are the same as the one-at-a-time fold, which stays as lh_materialize_serial: the
-- reference that tests/unit/test_materialize_sql (and `lh-materializer --rebuild`) compare with.
--
-- Why the set-wise fold gives the same rows:
--  * Every projection touches only rows of its own plan, so events of different plans commute.
--  * Within a plan, the new events of the batch are cut, in log order, into rounds. An event of a
--    "serial" type (phase 9: anything but the types below) is a round of its own and is projected
--    by lh_project exactly as before. The other events carry a phase: goal.submitted 1,
--    task.dispatched 3, attempt.started 4, attempt.succeeded / attempt.failed 5, plan.completed /
--    plan.failed / plan.cancelled 6. A round is a run whose phases never go down, where equal
--    phases have strictly increasing task numbers, and phases 1 and 6 occur once. Rounds run in
--    order and, inside a round, phases in order: that is the log order, except that the events
--    of one (round, phase) run as one statement. Those touch different tasks and attempts (task
--    numbers differ) and, for the plan row, only add (usage totals: integers, and costs that are
--    rounded to the column's 8 decimals per event first, as the one-by-one fold stores them;
--    costs are never negative) or set updated_at to the last event's time.
--  * decision.logged inserts a row nobody else writes and reads nothing: one INSERT per batch.
--    attempt.heartbeat projects nothing.
--  * Events are inserted into `events` first, all of them. The one projection that reads `events`
--    (a question or approval finds an answer that came first) now ignores later events of its
--    partition, which is exactly what the one-by-one fold saw.
-- A projection change for a set-wise type must be made in both lh_project and lh_materialize.

-- Resolve a task output: inline, or the blob named by output_ref (JSON text). A blob that is not
-- there (yet) gives NULL; output_ref keeps the name, and readers resolve it later.
CREATE OR REPLACE FUNCTION lh_output(b jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN b ? 'output_ref' AND b->>'output_ref' IS NOT NULL
                THEN (SELECT convert_from(x.bytes, 'UTF8')::jsonb FROM blobs x
                       WHERE x.sha256 = b->>'output_ref')
                ELSE b->'output' END
$fn$;

-- Orphan collection of blobs (lh-materializer gc-blobs) asks whether any event names a blob.
CREATE INDEX IF NOT EXISTS events_output_ref_idx ON events ((body->>'output_ref'))
    WHERE body ? 'output_ref';
CREATE INDEX IF NOT EXISTS blobs_created_idx ON blobs (created_at);

CREATE OR REPLACE FUNCTION lh_project(e jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    pid   uuid := (e->>'plan_id')::uuid;
    typ   text := e->>'type';
    tno   integer := (e->>'task_no')::integer;
    att   integer := (e->>'attempt')::integer;
    b     jsonb := e->'body';
    ts    timestamptz := to_timestamp((e->>'ts_us')::bigint / 1000000.0);
    u     jsonb := coalesce(e->'body'->'usage', '{}'::jsonb);
    t     jsonb;
    accepted boolean;
    answer jsonb;
BEGIN
    IF typ = 'goal.submitted' THEN
        INSERT INTO plans (plan_id, tenant, goal, status, budget, metadata, created_at, updated_at)
        VALUES (pid, coalesce(e->>'tenant', 'default'), b->>'goal', 'planning', b->'budget',
                b->'metadata', ts, ts)
        ON CONFLICT (plan_id) DO NOTHING;
        INSERT INTO tasks (plan_id, task_no, version, kind, tier, instructions, status, created_at,
                           updated_at)
        VALUES (pid, 0, 0, 'plan', coalesce(b->>'planner_tier', 'standard'), b->>'goal', 'pending',
                ts, ts)
        ON CONFLICT (plan_id, task_no) DO NOTHING;
    ELSIF typ IN ('plan.created', 'plan.revised') THEN
        INSERT INTO plan_versions (plan_id, version, event_id, doc, created_at)
        VALUES (pid, (b->>'version')::integer, (e->>'id')::uuid, b, ts)
        ON CONFLICT DO NOTHING;
        UPDATE plans SET version = greatest(version, (b->>'version')::integer),
                         status = CASE WHEN status = 'planning' THEN 'running' ELSE status END,
                         updated_at = ts
         WHERE plan_id = pid;
        FOR t IN SELECT * FROM jsonb_array_elements(coalesce(b->'tasks', '[]'::jsonb)) LOOP
            INSERT INTO tasks (plan_id, task_no, version, kind, tier, tool, instructions, args,
                               needs_approval, output_schema, status, created_at, updated_at)
            VALUES (pid, (t->>'task_no')::integer, (b->>'version')::integer, t->>'kind', t->>'tier',
                    t->>'tool', t->>'instructions', t->'args',
                    coalesce((t->>'needs_approval')::boolean, false), t->'output_schema',
                    'pending', ts, ts)
            ON CONFLICT (plan_id, task_no) DO UPDATE
               SET version = EXCLUDED.version, kind = EXCLUDED.kind, tier = EXCLUDED.tier,
                   tool = EXCLUDED.tool, instructions = EXCLUDED.instructions,
                   args = EXCLUDED.args, needs_approval = EXCLUDED.needs_approval,
                   output_schema = EXCLUDED.output_schema, updated_at = ts;
            INSERT INTO task_dependencies (plan_id, task_no, depends_on, dep_type)
            SELECT pid, (t->>'task_no')::integer, d::integer,
                   CASE WHEN t->>'kind' = 'join' THEN 'join' ELSE 'ref' END
              FROM jsonb_array_elements_text(coalesce(t->'refs', '[]'::jsonb)) d
            ON CONFLICT DO NOTHING;
            INSERT INTO task_dependencies (plan_id, task_no, depends_on, dep_type)
            SELECT pid, (t->>'task_no')::integer, d::integer,
                   CASE WHEN t->>'kind' = 'join' THEN 'join' ELSE 'after' END
              FROM jsonb_array_elements_text(coalesce(t->'after', '[]'::jsonb)) d
            ON CONFLICT DO NOTHING;
        END LOOP;
        UPDATE tasks SET status = 'skipped', updated_at = ts
         WHERE plan_id = pid
           AND task_no IN (SELECT r::integer
                             FROM jsonb_array_elements_text(coalesce(b->'removed', '[]'::jsonb)) r)
           AND status NOT IN ('succeeded', 'dead', 'cancelled');
        UPDATE plans SET tasks_total = (SELECT count(*) FROM tasks
                                         WHERE plan_id = pid AND task_no > 0
                                           AND status NOT IN ('skipped', 'cancelled'))
         WHERE plan_id = pid;
    ELSIF typ = 'task.dispatched' THEN
        INSERT INTO task_attempts (plan_id, task_no, attempt, status, tier, dispatched_at)
        VALUES (pid, tno, att, 'dispatched', b->>'tier', ts)
        ON CONFLICT DO NOTHING;
        UPDATE tasks SET status = 'dispatched', attempts = att, tier = b->>'tier', updated_at = ts
         WHERE plan_id = pid AND task_no = tno AND attempts < att;
    ELSIF typ = 'attempt.started' THEN
        UPDATE task_attempts SET status = 'running', worker_id = b->>'worker_id',
                                 model = b->>'model', started_at = ts
         WHERE plan_id = pid AND task_no = tno AND attempt = att AND status = 'dispatched';
        UPDATE tasks SET status = 'running', updated_at = ts
         WHERE plan_id = pid AND task_no = tno AND attempts = att AND status = 'dispatched';
    ELSIF typ IN ('attempt.succeeded', 'attempt.failed') THEN
        UPDATE tasks SET status = CASE WHEN typ = 'attempt.succeeded' THEN 'succeeded'
                                       ELSE 'failed' END,
                         output = CASE WHEN typ = 'attempt.succeeded' THEN lh_output(b)
                                       ELSE output END,
                         output_ref = b->>'output_ref', updated_at = ts
         WHERE plan_id = pid AND task_no = tno AND attempts = att
           AND status IN ('dispatched', 'running');
        accepted := FOUND;
        UPDATE task_attempts
           SET status = CASE WHEN NOT accepted THEN 'stale'
                             WHEN typ = 'attempt.succeeded' THEN 'succeeded' ELSE 'failed' END,
               worker_id = coalesce(worker_id, b->>'worker_id'),
               model = coalesce(b->>'model', model),
               input_tokens = coalesce((u->>'input_tokens')::bigint, 0),
               output_tokens = coalesce((u->>'output_tokens')::bigint, 0),
               cached_tokens = coalesce((u->>'cached_tokens')::bigint, 0),
               reasoning_tokens = coalesce((u->>'reasoning_tokens')::bigint, 0),
               llm_calls = coalesce((u->>'llm_calls')::integer, 0),
               cost_usd = coalesce((u->>'cost_usd')::numeric, 0),
               latency_ms = (b->>'latency_ms')::bigint,
               error_class = b->>'error_class', error_message = b->>'message',
               finished_at = ts
         WHERE plan_id = pid AND task_no = tno AND attempt = att
           AND status IN ('dispatched', 'running');
        UPDATE plans
           SET input_tokens = input_tokens + coalesce((u->>'input_tokens')::bigint, 0),
               output_tokens = output_tokens + coalesce((u->>'output_tokens')::bigint, 0),
               cached_tokens = cached_tokens + coalesce((u->>'cached_tokens')::bigint, 0),
               reasoning_tokens = reasoning_tokens + coalesce((u->>'reasoning_tokens')::bigint, 0),
               cost_usd = cost_usd + coalesce((u->>'cost_usd')::numeric, 0),
               tasks_succeeded = tasks_succeeded +
                   CASE WHEN accepted AND typ = 'attempt.succeeded' AND tno > 0 THEN 1 ELSE 0 END,
               updated_at = ts
         WHERE plan_id = pid;
    ELSIF typ = 'decision.logged' THEN
        INSERT INTO plan_decisions (id, plan_id, ts, actor_kind, actor_id, kind, reasoning, payload)
        VALUES ((e->>'id')::uuid, pid, ts, e->'actor'->>'kind', e->'actor'->>'id', b->>'kind',
                b->>'reasoning', b->'payload')
        ON CONFLICT DO NOTHING;
    ELSIF typ = 'plan.paused' THEN
        UPDATE plans SET status = 'paused', reason = b->>'reason', updated_at = ts
         WHERE plan_id = pid AND status IN ('planning', 'running', 'waiting');
    ELSIF typ = 'plan.resumed' THEN
        UPDATE plans SET status = CASE WHEN version = 0 THEN 'planning' ELSE 'running' END,
                         updated_at = ts
         WHERE plan_id = pid AND status = 'paused';
    ELSIF typ = 'task.dead' THEN
        UPDATE tasks SET status = 'dead', updated_at = ts
         WHERE plan_id = pid AND task_no = tno AND status = 'failed';
    ELSIF typ = 'task.escalated' THEN
        UPDATE tasks SET tier = b->>'to_tier', updated_at = ts
         WHERE plan_id = pid AND task_no = tno AND b->>'to_tier' <> 'human';
    ELSIF typ = 'task.cancelled' THEN
        UPDATE tasks SET status = 'cancelled', updated_at = ts
         WHERE plan_id = pid AND task_no = tno
           AND status NOT IN ('succeeded', 'dead', 'cancelled', 'skipped');
        -- act tasks that need a cancelled or skipped task are skipped, transitively
        LOOP
            UPDATE tasks t SET status = 'skipped', updated_at = ts
             WHERE t.plan_id = pid AND t.kind = 'act' AND t.status = 'pending'
               AND EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks x
                                  ON x.plan_id = d.plan_id AND x.task_no = d.depends_on
                            WHERE d.plan_id = pid AND d.task_no = t.task_no
                              AND x.status IN ('cancelled', 'skipped'));
            EXIT WHEN NOT FOUND;
        END LOOP;
    ELSIF typ = 'timer.fired' AND b->>'timer' IN ('start_lease', 'heartbeat_lease') THEN
        UPDATE tasks SET status = 'failed', updated_at = ts
         WHERE plan_id = pid AND task_no = tno AND attempts = att
           AND status IN ('dispatched', 'running');
        UPDATE task_attempts SET status = 'failed', error_class = 'timeout',
                                 error_message = b->>'timer' || ' expired', finished_at = ts
         WHERE plan_id = pid AND task_no = tno AND attempt = att
           AND status IN ('dispatched', 'running');
    ELSIF typ IN ('approval.requested', 'input.requested') THEN
        -- an answer may be in the log before its question: then the request is born answered.
        -- Only events before this one count (the batch's events are all inserted first).
        SELECT x.body INTO answer FROM events x
         WHERE x.plan_id = pid AND x.type IN ('approval.decided', 'input.provided')
           AND x.body->>'request_id' = b->>'request_id'
           AND NOT (x.partition = (e->>'partition')::integer
                    AND x."offset" > (e->>'offset')::bigint)
         ORDER BY x.partition, x."offset" LIMIT 1;
        INSERT INTO input_requests (request_id, plan_id, task_no, kind, question, proposed,
                                    status, deadline, responder_type, responder_id, response,
                                    decided_at, created_at, updated_at)
        VALUES (b->>'request_id', pid, tno,
                CASE WHEN typ = 'input.requested' THEN 'question' ELSE b->>'kind' END,
                b->>'question', coalesce(b->'proposed', b->'answer_schema'),
                CASE WHEN answer IS NULL THEN 'pending'
                     WHEN typ = 'input.requested' THEN 'answered'
                     WHEN answer->>'decision' = 'approve' THEN 'approved' ELSE 'rejected' END,
                CASE WHEN b ? 'deadline_us'
                     THEN to_timestamp((b->>'deadline_us')::bigint / 1000000.0) END,
                answer->>'responder_type', answer->>'responder_id', answer - 'request_id',
                CASE WHEN answer IS NULL THEN NULL ELSE ts END, ts, ts)
        ON CONFLICT (plan_id, request_id) DO NOTHING;
        IF typ = 'input.requested' THEN
            UPDATE tasks SET status = 'waiting_for_input', updated_at = ts
             WHERE plan_id = pid AND task_no = tno AND attempts = att
               AND status IN ('dispatched', 'running');
            UPDATE task_attempts
               SET status = 'asked', worker_id = coalesce(worker_id, b->>'worker_id'),
                   input_tokens = coalesce((u->>'input_tokens')::bigint, 0),
                   output_tokens = coalesce((u->>'output_tokens')::bigint, 0),
                   cached_tokens = coalesce((u->>'cached_tokens')::bigint, 0),
                   reasoning_tokens = coalesce((u->>'reasoning_tokens')::bigint, 0),
                   llm_calls = coalesce((u->>'llm_calls')::integer, 0),
                   cost_usd = coalesce((u->>'cost_usd')::numeric, 0), finished_at = ts
             WHERE plan_id = pid AND task_no = tno AND attempt = att
               AND status IN ('dispatched', 'running');
            UPDATE plans
               SET input_tokens = input_tokens + coalesce((u->>'input_tokens')::bigint, 0),
                   output_tokens = output_tokens + coalesce((u->>'output_tokens')::bigint, 0),
                   cost_usd = cost_usd + coalesce((u->>'cost_usd')::numeric, 0), updated_at = ts
             WHERE plan_id = pid;
        END IF;
    ELSIF typ = 'input.provided' THEN
        UPDATE input_requests
           SET status = 'answered', responder_type = b->>'responder_type',
               responder_id = b->>'responder_id', response = b - 'request_id', decided_at = ts,
               updated_at = ts
         WHERE plan_id = pid AND request_id = b->>'request_id' AND status = 'pending';
    ELSIF typ = 'timer.fired' AND b->>'timer' = 'wait_deadline' THEN
        UPDATE input_requests
           SET status = 'expired', responder_type = 'automated_rule',
               responder_id = 'wait_deadline', decided_at = ts, updated_at = ts
         WHERE plan_id = pid AND request_id = b->>'request_id' AND status = 'pending';
    ELSIF typ = 'approval.decided' THEN
        UPDATE input_requests
           SET status = CASE WHEN b->>'decision' = 'approve' THEN 'approved' ELSE 'rejected' END,
               responder_type = b->>'responder_type', responder_id = b->>'responder_id',
               response = b - 'request_id', decided_at = ts, updated_at = ts
         WHERE plan_id = pid AND request_id = b->>'request_id' AND status = 'pending';
    ELSIF typ IN ('plan.completed', 'plan.failed', 'plan.cancelled') THEN
        UPDATE plans SET status = CASE typ WHEN 'plan.completed' THEN 'completed'
                                           WHEN 'plan.failed' THEN 'failed'
                                           ELSE 'cancelled' END,
                         output = coalesce(b->'output', output), reason = b->>'reason',
                         finished_at = ts, updated_at = ts
         WHERE plan_id = pid AND status NOT IN ('completed', 'failed', 'cancelled');
    END IF;
END
$fn$;

-- The one-event-at-a-time fold of 0001, unchanged, under another name: the reference the
-- set-wise fold is compared with.
CREATE OR REPLACE FUNCTION lh_materialize_serial(p_consumer text, p_events jsonb, p_offsets jsonb)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    e jsonb;
    n integer := 0;
BEGIN
    FOR e IN SELECT * FROM jsonb_array_elements(p_events) LOOP
        INSERT INTO events (id, plan_id, type, task_no, attempt, ts, tenant, actor_kind, actor_id,
                            causation_id, body, topic, partition, "offset")
        VALUES ((e->>'id')::uuid, (e->>'plan_id')::uuid, e->>'type', (e->>'task_no')::integer,
                (e->>'attempt')::integer, to_timestamp((e->>'ts_us')::bigint / 1000000.0),
                coalesce(e->>'tenant', 'default'), e->'actor'->>'kind', e->'actor'->>'id',
                (e->>'causation_id')::uuid, e->'body', e->>'topic', (e->>'partition')::integer,
                (e->>'offset')::bigint)
        ON CONFLICT (id) DO NOTHING;
        IF FOUND THEN
            PERFORM lh_project(e);
            n := n + 1;
        END IF;
    END LOOP;
    INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)
    SELECT p_consumer, o->>'topic', (o->>'partition')::integer, (o->>'next_offset')::bigint
      FROM jsonb_array_elements(p_offsets) o
    ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
     WHERE consumer_offsets.next_offset < EXCLUDED.next_offset;
    RETURN n;
END
$fn$;

-- The set-wise fold. Same contract as 0001's: insert each event once by id, project the new
-- ones, move the consumer's offsets forward only, in the caller's transaction; returns the number
-- of new events. See the top of this file for why it gives the rows of the one-by-one fold.
CREATE OR REPLACE FUNCTION lh_materialize(p_consumer text, p_events jsonb, p_offsets jsonb)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    g record;
    ev record;
    n integer;
BEGIN
    IF to_regclass('pg_temp.lh_mat_new') IS NULL THEN
        CREATE TEMP TABLE lh_mat_new (
            ord integer PRIMARY KEY, e jsonb, id uuid, pid uuid, typ text, tno integer,
            att integer, b jsonb, ts timestamptz, phase integer, rnd integer, step integer,
            last5 boolean, accepted boolean NOT NULL DEFAULT false
        ) ON COMMIT DELETE ROWS;
        CREATE INDEX ON lh_mat_new (rnd, step, phase);
    ELSE
        DELETE FROM lh_mat_new; -- left by an earlier call in this transaction
    END IF;

    WITH src AS (
        SELECT x.ord::integer AS ord, x.e, (x.e->>'id')::uuid AS id
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, ord)
    ), ins AS (
        INSERT INTO events (id, plan_id, type, task_no, attempt, ts, tenant, actor_kind, actor_id,
                            causation_id, body, topic, partition, "offset")
        SELECT id, (e->>'plan_id')::uuid, e->>'type', (e->>'task_no')::integer,
               (e->>'attempt')::integer, to_timestamp((e->>'ts_us')::bigint / 1000000.0),
               coalesce(e->>'tenant', 'default'), e->'actor'->>'kind', e->'actor'->>'id',
               (e->>'causation_id')::uuid, e->'body', e->>'topic', (e->>'partition')::integer,
               (e->>'offset')::bigint
          FROM src ORDER BY ord
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    ), fresh AS (
        -- an id twice in the batch: the first one was inserted
        SELECT DISTINCT ON (s.id) s.ord, s.e, s.id, (s.e->>'plan_id')::uuid AS pid,
               s.e->>'type' AS typ, (s.e->>'task_no')::integer AS tno,
               (s.e->>'attempt')::integer AS att, s.e->'body' AS b,
               to_timestamp((s.e->>'ts_us')::bigint / 1000000.0) AS ts,
               CASE s.e->>'type'
                    WHEN 'decision.logged' THEN 0
                    WHEN 'attempt.heartbeat' THEN NULL
                    WHEN 'goal.submitted' THEN 1
                    WHEN 'plan.created' THEN 2
                    WHEN 'plan.revised' THEN 2
                    WHEN 'task.dispatched' THEN 3
                    WHEN 'attempt.started' THEN 4
                    WHEN 'attempt.succeeded' THEN 5
                    WHEN 'attempt.failed' THEN 5
                    WHEN 'plan.completed' THEN 6
                    WHEN 'plan.failed' THEN 6
                    WHEN 'plan.cancelled' THEN 6
                    ELSE 9 END AS phase
          FROM src s JOIN ins ON ins.id = s.id
         ORDER BY s.id, s.ord
    ), bar AS (
        -- barriers: plan-level events (phases 1, 2, 6, 9), each a round of its own
        SELECT f.ord, f.pid, f.tno, f.phase, f.phase IN (1, 2, 6, 9) AS barrier,
               lag(f.phase IN (1, 2, 6, 9)) OVER (PARTITION BY f.pid ORDER BY f.ord) AS pbarrier
          FROM fresh f WHERE f.phase > 0
    ), rounds AS (
        SELECT b.ord, b.pid, b.tno, b.phase, b.barrier,
               sum(CASE WHEN b.pbarrier IS NULL THEN 0
                        WHEN b.barrier OR b.pbarrier THEN 1 ELSE 0 END)
                   OVER (PARTITION BY b.pid ORDER BY b.ord) AS rnd
          FROM bar b
    ), steps AS (
        SELECT r.ord, r.rnd,
               CASE WHEN r.barrier THEN 0
                    ELSE row_number() OVER (PARTITION BY r.pid, r.rnd, r.barrier, r.tno
                                            ORDER BY r.ord) END AS step,
               r.phase = 5 AND r.ord = max(r.ord) FILTER (WHERE r.phase = 5)
                   OVER (PARTITION BY r.pid, r.rnd) AS last5
          FROM rounds r
    )
    INSERT INTO lh_mat_new (ord, e, id, pid, typ, tno, att, b, ts, phase, rnd, step, last5)
    SELECT f.ord, f.e, f.id, f.pid, f.typ, f.tno, f.att, f.b, f.ts, f.phase, s.rnd, s.step,
           coalesce(s.last5, false)
      FROM fresh f LEFT JOIN steps s ON s.ord = f.ord;
    GET DIAGNOSTICS n = ROW_COUNT;

    INSERT INTO plan_decisions (id, plan_id, ts, actor_kind, actor_id, kind, reasoning, payload)
    SELECT id, pid, ts, e->'actor'->>'kind', e->'actor'->>'id', b->>'kind', b->>'reasoning',
           b->'payload'
      FROM lh_mat_new WHERE phase = 0 ORDER BY ord
    ON CONFLICT DO NOTHING;

    -- Groups in order: a round's barriers (at most one per plan) before its steps; rounds of one
    -- plan never share a number with each other, and different plans commute.
    FOR g IN SELECT m.rnd, m.step, bool_or(m.phase = 1) AS p1, bool_or(m.phase = 2) AS p2,
                    bool_or(m.phase = 3) AS p3, bool_or(m.phase = 4) AS p4,
                    bool_or(m.phase = 5) AS p5, bool_or(m.phase = 6) AS p6,
                    bool_or(m.phase = 9) AS p9
               FROM lh_mat_new m WHERE m.phase > 0
              GROUP BY m.rnd, m.step ORDER BY m.rnd, m.step LOOP
        IF g.p1 THEN
            INSERT INTO plans (plan_id, tenant, goal, status, budget, metadata, created_at,
                               updated_at)
            SELECT pid, coalesce(e->>'tenant', 'default'), b->>'goal', 'planning', b->'budget',
                   b->'metadata', ts, ts
              FROM lh_mat_new WHERE rnd = g.rnd AND step = 0 AND phase = 1 ORDER BY ord
            ON CONFLICT (plan_id) DO NOTHING;
            INSERT INTO tasks (plan_id, task_no, version, kind, tier, instructions, status,
                               created_at, updated_at)
            SELECT pid, 0, 0, 'plan', coalesce(b->>'planner_tier', 'standard'), b->>'goal',
                   'pending', ts, ts
              FROM lh_mat_new WHERE rnd = g.rnd AND step = 0 AND phase = 1 ORDER BY ord
            ON CONFLICT (plan_id, task_no) DO NOTHING;
        END IF;
        IF g.p2 THEN
            INSERT INTO plan_versions (plan_id, version, event_id, doc, created_at)
            SELECT pid, (b->>'version')::integer, id, b, ts
              FROM lh_mat_new WHERE rnd = g.rnd AND step = 0 AND phase = 2 ORDER BY ord
            ON CONFLICT DO NOTHING;
            UPDATE plans p SET version = greatest(p.version, (x.b->>'version')::integer),
                               status = CASE WHEN p.status = 'planning' THEN 'running'
                                             ELSE p.status END,
                               updated_at = x.ts
              FROM lh_mat_new x
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2 AND p.plan_id = x.pid;
            -- a task listed twice in one revision: the last listing wins, as one by one
            INSERT INTO tasks (plan_id, task_no, version, kind, tier, tool, instructions, args,
                               needs_approval, output_schema, status, created_at, updated_at)
            SELECT DISTINCT ON (x.pid, (t.t->>'task_no')::integer)
                   x.pid, (t.t->>'task_no')::integer, (x.b->>'version')::integer, t.t->>'kind',
                   t.t->>'tier', t.t->>'tool', t.t->>'instructions', t.t->'args',
                   coalesce((t.t->>'needs_approval')::boolean, false), t.t->'output_schema',
                   'pending', x.ts, x.ts
              FROM lh_mat_new x,
                   jsonb_array_elements(coalesce(x.b->'tasks', '[]'::jsonb))
                       WITH ORDINALITY AS t(t, i)
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2
             ORDER BY x.pid, (t.t->>'task_no')::integer, t.i DESC
            ON CONFLICT (plan_id, task_no) DO UPDATE
               SET version = EXCLUDED.version, kind = EXCLUDED.kind, tier = EXCLUDED.tier,
                   tool = EXCLUDED.tool, instructions = EXCLUDED.instructions,
                   args = EXCLUDED.args, needs_approval = EXCLUDED.needs_approval,
                   output_schema = EXCLUDED.output_schema, updated_at = EXCLUDED.updated_at;
            -- dependencies in the one-by-one order: per listed task, refs then after
            INSERT INTO task_dependencies (plan_id, task_no, depends_on, dep_type)
            SELECT x.pid, (t.t->>'task_no')::integer, d.d::integer,
                   CASE WHEN t.t->>'kind' = 'join' THEN 'join'
                        WHEN d.k = 0 THEN 'ref' ELSE 'after' END
              FROM lh_mat_new x,
                   jsonb_array_elements(coalesce(x.b->'tasks', '[]'::jsonb))
                       WITH ORDINALITY AS t(t, i),
                   LATERAL (SELECT 0 AS k, r.d, r.j
                              FROM jsonb_array_elements_text(coalesce(t.t->'refs', '[]'::jsonb))
                                   WITH ORDINALITY AS r(d, j)
                            UNION ALL
                            SELECT 1, a.d, a.j
                              FROM jsonb_array_elements_text(coalesce(t.t->'after', '[]'::jsonb))
                                   WITH ORDINALITY AS a(d, j)) d
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2
             ORDER BY x.pid, t.i, d.k, d.j
            ON CONFLICT DO NOTHING;
            UPDATE tasks t SET status = 'skipped', updated_at = x.ts
              FROM lh_mat_new x,
                   jsonb_array_elements_text(coalesce(x.b->'removed', '[]'::jsonb)) rm
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2
               AND t.plan_id = x.pid AND t.task_no = rm::integer
               AND t.status NOT IN ('succeeded', 'dead', 'cancelled');
            UPDATE plans p SET tasks_total = (SELECT count(*) FROM tasks t
                                               WHERE t.plan_id = x.pid AND t.task_no > 0
                                                 AND t.status NOT IN ('skipped', 'cancelled'))
              FROM lh_mat_new x
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2 AND p.plan_id = x.pid;
        END IF;
        IF g.p3 THEN
            INSERT INTO task_attempts (plan_id, task_no, attempt, status, tier, dispatched_at)
            SELECT pid, tno, att, 'dispatched', b->>'tier', ts
              FROM lh_mat_new WHERE rnd = g.rnd AND step = g.step AND phase = 3 ORDER BY ord
            ON CONFLICT DO NOTHING;
            UPDATE tasks t SET status = 'dispatched', attempts = x.att, tier = x.b->>'tier',
                               updated_at = x.ts
              FROM lh_mat_new x
             WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 3
               AND t.plan_id = x.pid AND t.task_no = x.tno AND t.attempts < x.att;
        END IF;
        IF g.p4 THEN
            UPDATE task_attempts a SET status = 'running', worker_id = x.b->>'worker_id',
                                       model = x.b->>'model', started_at = x.ts
              FROM lh_mat_new x
             WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 4 AND a.plan_id = x.pid
               AND a.task_no = x.tno AND a.attempt = x.att AND a.status = 'dispatched';
            UPDATE tasks t SET status = 'running', updated_at = x.ts
              FROM lh_mat_new x
             WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 4 AND t.plan_id = x.pid
               AND t.task_no = x.tno AND t.attempts = x.att AND t.status = 'dispatched';
        END IF;
        IF g.p5 THEN
            -- whether the task took the result (fencing), noted on the event's row
            WITH acc AS (
                UPDATE tasks t
                   SET status = CASE WHEN x.typ = 'attempt.succeeded' THEN 'succeeded'
                                     ELSE 'failed' END,
                       output = CASE WHEN x.typ = 'attempt.succeeded' THEN lh_output(x.b)
                                     ELSE t.output END,
                       output_ref = x.b->>'output_ref', updated_at = x.ts
                  FROM lh_mat_new x
                 WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 5
                   AND t.plan_id = x.pid AND t.task_no = x.tno AND t.attempts = x.att
                   AND t.status IN ('dispatched', 'running')
                RETURNING x.ord
            )
            UPDATE lh_mat_new m SET accepted = true FROM acc WHERE m.ord = acc.ord;
            WITH xa AS (
                SELECT x.*, coalesce(x.b->'usage', '{}'::jsonb) AS u
                  FROM lh_mat_new x WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 5
            ), ta AS (
                UPDATE task_attempts a
                   SET status = CASE WHEN NOT xa.accepted THEN 'stale'
                                     WHEN xa.typ = 'attempt.succeeded' THEN 'succeeded'
                                     ELSE 'failed' END,
                       worker_id = coalesce(a.worker_id, xa.b->>'worker_id'),
                       model = coalesce(xa.b->>'model', a.model),
                       input_tokens = coalesce((xa.u->>'input_tokens')::bigint, 0),
                       output_tokens = coalesce((xa.u->>'output_tokens')::bigint, 0),
                       cached_tokens = coalesce((xa.u->>'cached_tokens')::bigint, 0),
                       reasoning_tokens = coalesce((xa.u->>'reasoning_tokens')::bigint, 0),
                       llm_calls = coalesce((xa.u->>'llm_calls')::integer, 0),
                       cost_usd = coalesce((xa.u->>'cost_usd')::numeric, 0),
                       latency_ms = (xa.b->>'latency_ms')::bigint,
                       error_class = xa.b->>'error_class', error_message = xa.b->>'message',
                       finished_at = xa.ts
                  FROM xa
                 WHERE a.plan_id = xa.pid AND a.task_no = xa.tno AND a.attempt = xa.att
                   AND a.status IN ('dispatched', 'running')
                RETURNING 1
            )
            -- within a round only these events touch the plan row: sums commute, and
            -- updated_at is the round's last result's time
            UPDATE plans p
               SET input_tokens = p.input_tokens + s.it, output_tokens = p.output_tokens + s.ot,
                   cached_tokens = p.cached_tokens + s.ct,
                   reasoning_tokens = p.reasoning_tokens + s.rt,
                   cost_usd = p.cost_usd + s.cost,
                   tasks_succeeded = p.tasks_succeeded + s.succ,
                   updated_at = coalesce(s.last_ts, p.updated_at)
              FROM (SELECT pid,
                           sum(coalesce((u->>'input_tokens')::bigint, 0)) AS it,
                           sum(coalesce((u->>'output_tokens')::bigint, 0)) AS ot,
                           sum(coalesce((u->>'cached_tokens')::bigint, 0)) AS ct,
                           sum(coalesce((u->>'reasoning_tokens')::bigint, 0)) AS rt,
                           sum(round(coalesce((u->>'cost_usd')::numeric, 0), 8)) AS cost,
                           count(*) FILTER (WHERE accepted AND typ = 'attempt.succeeded'
                                              AND tno > 0) AS succ,
                           max(ts) FILTER (WHERE last5) AS last_ts
                      FROM xa GROUP BY pid) s
             WHERE p.plan_id = s.pid;
        END IF;
        IF g.p6 THEN
            UPDATE plans p
               SET status = CASE x.typ WHEN 'plan.completed' THEN 'completed'
                                       WHEN 'plan.failed' THEN 'failed'
                                       ELSE 'cancelled' END,
                   output = coalesce(x.b->'output', p.output), reason = x.b->>'reason',
                   finished_at = x.ts, updated_at = x.ts
              FROM lh_mat_new x
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 6 AND p.plan_id = x.pid
               AND p.status NOT IN ('completed', 'failed', 'cancelled');
        END IF;
        IF g.p9 THEN
            FOR ev IN SELECT e FROM lh_mat_new WHERE rnd = g.rnd AND step = 0 AND phase = 9
                      ORDER BY ord LOOP
                PERFORM lh_project(ev.e);
            END LOOP;
        END IF;
    END LOOP;

    INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)
    SELECT p_consumer, o->>'topic', (o->>'partition')::integer, (o->>'next_offset')::bigint
      FROM jsonb_array_elements(p_offsets) o
    ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
     WHERE consumer_offsets.next_offset < EXCLUDED.next_offset;
    RETURN n;
END
$fn$;
