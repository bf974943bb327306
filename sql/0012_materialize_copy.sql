-- 0012_materialize_copy: the materializer stores a batch with COPY into a staging table instead of
-- one JSON array parameter, and the fold reads the staging table's columns.
--
-- Why (measured with pg_stat_statements, track = all, during `lh-bench materialize --events
-- 200000`; materializer/README.md, "Throughput"): of ~83 us of PostgreSQL time per event, the
-- statement that parsed the batch's JSON array, pulled every column out of each event with ->>,
-- inserted `events`, numbered the rounds with window functions and wrote the whole event (twice:
-- `e` and `body`) into the temporary lh_mat_new took 33 us; the result of attempt.succeeded /
-- attempt.failed, 11 us more (lh_output is a SQL function with a sub-select, so it is never
-- inlined: one executor start per result; and the accepted flag was an UPDATE of the temporary
-- rows, jsonb and all).
--
-- Now:
--  * lh-materializer opens the staging table (lh_mat_stage_open), sends the batch with
--    `COPY lh_mat_stage (...) FROM STDIN (FORMAT binary)` (sql/queries.sql, materialize_copy):
--    one row per event, its columns already split, the body as jsonb, and the event's phase,
--    round, step and last5 computed by the materializer (materializer/batch.c, lh_mbatch_rounds:
--    the same numbering as the window functions below, over the batch's events with a duplicate
--    id dropped after its first). Then lh_mat_fold(consumer, offsets, rounds_given, check) folds.
--  * lh_mat_fold inserts `events` from the staging rows (ON CONFLICT (id) DO NOTHING) and deletes
--    the staging rows of events that were already stored. When it deleted any, or the caller gave
--    no rounds, it numbers the rounds itself with the window functions of 0006 (the reference);
--    with `check`, it numbers them too and raises if the caller's numbers differ (the integration
--    stack runs every materializer so: materializer.check_rounds).
--  * lh_materialize(consumer, events jsonb, offsets jsonb) keeps its contract: it fills the
--    staging table from the JSON array and calls lh_mat_fold.
--  * The result of an attempt is one statement (the fencing result is joined from the UPDATE's
--    RETURNING instead of written to the staging rows) and resolves a blob output inline.
--
-- The rows are those of 0006: the groups, their order and each projection's statement are the
-- same; tests/integration/0010-rebuild compares a live database, a rebuild, and a rebuild one
-- event per batch, and 0003 feeds the fold batches with duplicates.

CREATE OR REPLACE FUNCTION lh_mat_stage_open() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF to_regclass('pg_temp.lh_mat_stage') IS NULL THEN
        -- task_no and attempt are bigint here: the cast to the events table's integer columns
        -- rejects an out-of-range number as a data error, as the JSON path's ::integer did.
        CREATE TEMP TABLE lh_mat_stage (
            id uuid, pid uuid, typ text, tno bigint, att bigint, ts_us bigint, tenant text,
            actor_kind text, actor_id text, causation_id uuid, b jsonb, topic text,
            partition integer, "offset" bigint, phase integer, rnd integer, step integer,
            last5 boolean, ord integer NOT NULL,
            ts timestamptz GENERATED ALWAYS AS (to_timestamp(ts_us / 1000000.0)) STORED
        ) ON COMMIT DELETE ROWS;
        -- a body is stored again in `events`: no compression here
        ALTER TABLE lh_mat_stage ALTER COLUMN b SET STORAGE EXTERNAL;
        CREATE INDEX ON lh_mat_stage (rnd, step, phase);
    ELSE
        DELETE FROM lh_mat_stage; -- left by an earlier batch of this transaction
    END IF;
END
$fn$;

-- The phase of an event type (0006): NULL projects nothing, 0 is a decision, 9 goes one by one
-- through lh_project. materializer/batch.c (mat_phase) is the same table.
CREATE OR REPLACE FUNCTION lh_mat_phase(typ text) RETURNS integer LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE typ
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
                ELSE 9 END
$fn$;

-- The reference numbering of rounds and steps (0006), over the staging rows: a plan-level event
-- (phases 1, 2, 6, 9) is a round of its own; inside a round, a task's events are steps 1, 2, ...;
-- last5 marks a (plan, round)'s last result. Rows of phase 0 or NULL have none.
CREATE OR REPLACE FUNCTION lh_mat_rounds()
RETURNS TABLE (ord integer, rnd integer, step integer, last5 boolean) LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    -- plpgsql, not sql: the staging table exists only in a session that opened it
    RETURN QUERY
    WITH bar AS (
        SELECT s.ord, s.pid, s.tno, s.phase, s.phase IN (1, 2, 6, 9) AS barrier,
               lag(s.phase IN (1, 2, 6, 9)) OVER (PARTITION BY s.pid ORDER BY s.ord) AS pbarrier
          FROM lh_mat_stage s WHERE s.phase > 0
    ), rounds AS (
        SELECT b.ord, b.pid, b.tno, b.phase, b.barrier,
               sum(CASE WHEN b.pbarrier IS NULL THEN 0
                        WHEN b.barrier OR b.pbarrier THEN 1 ELSE 0 END)
                   OVER (PARTITION BY b.pid ORDER BY b.ord) AS rnd
          FROM bar b
    )
    SELECT r.ord, r.rnd::integer,
           (CASE WHEN r.barrier THEN 0
                 ELSE row_number() OVER (PARTITION BY r.pid, r.rnd, r.barrier, r.tno
                                         ORDER BY r.ord) END)::integer,
           coalesce(r.phase = 5 AND r.ord = max(r.ord) FILTER (WHERE r.phase = 5)
                        OVER (PARTITION BY r.pid, r.rnd), false)
      FROM rounds r;
END
$fn$;

-- Fold the staging rows (lh_mat_stage_open, then the rows): insert each event once by id, project
-- the new ones, move the consumer's offsets forward only, in the caller's transaction; returns
-- the number of new events. p_rounds: the rows carry rnd, step and last5 (else they are
-- computed here); p_check: compute them here anyway and raise if the given ones differ.
CREATE OR REPLACE FUNCTION lh_mat_fold(p_consumer text, p_offsets jsonb, p_rounds boolean,
                                       p_check boolean)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    g record;
    ev record;
    n integer;
    ndup integer;
    bad integer;
BEGIN
    WITH ins AS (
        INSERT INTO events (id, plan_id, type, task_no, attempt, ts, tenant, actor_kind, actor_id,
                            causation_id, body, topic, partition, "offset")
        SELECT id, pid, typ, tno, att, ts, coalesce(tenant, 'default'), actor_kind, actor_id,
               causation_id, b, topic, partition, "offset"
          FROM lh_mat_stage ORDER BY ord
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    ), dup AS (
        -- stored by an earlier batch: not projected again. (An id twice in the staging rows is
        -- the caller's bug: lh_materialize and lh-materializer keep only the first.)
        DELETE FROM lh_mat_stage s WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.id = s.id)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM dup) INTO n, ndup;

    IF p_check AND p_rounds AND ndup = 0 THEN
        SELECT count(*) INTO bad
          FROM lh_mat_stage s LEFT JOIN lh_mat_rounds() r ON r.ord = s.ord
         WHERE s.phase IS DISTINCT FROM lh_mat_phase(s.typ)
            OR s.rnd IS DISTINCT FROM r.rnd OR s.step IS DISTINCT FROM r.step
            OR coalesce(s.last5, false) IS DISTINCT FROM coalesce(r.last5, false);
        IF bad > 0 THEN
            RAISE EXCEPTION 'lh_mat_fold: % staged rows have rounds other than the reference', bad
                USING ERRCODE = 'XX000';
        END IF;
    END IF;
    IF NOT p_rounds OR ndup > 0 THEN
        UPDATE lh_mat_stage s SET rnd = r.rnd, step = r.step, last5 = r.last5
          FROM lh_mat_rounds() r WHERE r.ord = s.ord;
    END IF;

    INSERT INTO plan_decisions (id, plan_id, ts, actor_kind, actor_id, kind, reasoning, payload)
    SELECT id, pid, ts, actor_kind, actor_id, b->>'kind', b->>'reasoning', b->'payload'
      FROM lh_mat_stage WHERE phase = 0 ORDER BY ord
    ON CONFLICT DO NOTHING;

    -- Groups in order: a round's barriers (at most one per plan) before its steps; rounds of one
    -- plan never share a number with each other, and different plans commute.
    FOR g IN SELECT m.rnd, m.step, bool_or(m.phase = 1) AS p1, bool_or(m.phase = 2) AS p2,
                    bool_or(m.phase = 3) AS p3, bool_or(m.phase = 4) AS p4,
                    bool_or(m.phase = 5) AS p5, bool_or(m.phase = 6) AS p6,
                    bool_or(m.phase = 9) AS p9
               FROM lh_mat_stage m WHERE m.phase > 0
              GROUP BY m.rnd, m.step ORDER BY m.rnd, m.step LOOP
        IF g.p1 THEN
            INSERT INTO plans (plan_id, tenant, goal, status, budget, metadata, created_at,
                               updated_at)
            SELECT pid, coalesce(tenant, 'default'), b->>'goal', 'planning', b->'budget',
                   b->'metadata', ts, ts
              FROM lh_mat_stage WHERE rnd = g.rnd AND step = 0 AND phase = 1 ORDER BY ord
            ON CONFLICT (plan_id) DO NOTHING;
            INSERT INTO tasks (plan_id, task_no, version, kind, tier, instructions, status,
                               created_at, updated_at)
            SELECT pid, 0, 0, 'plan', coalesce(b->>'planner_tier', 'standard'), b->>'goal',
                   'pending', ts, ts
              FROM lh_mat_stage WHERE rnd = g.rnd AND step = 0 AND phase = 1 ORDER BY ord
            ON CONFLICT (plan_id, task_no) DO NOTHING;
        END IF;
        IF g.p2 THEN
            INSERT INTO plan_versions (plan_id, version, event_id, doc, created_at)
            SELECT pid, (b->>'version')::integer, id, b, ts
              FROM lh_mat_stage WHERE rnd = g.rnd AND step = 0 AND phase = 2 ORDER BY ord
            ON CONFLICT DO NOTHING;
            UPDATE plans p SET version = greatest(p.version, (x.b->>'version')::integer),
                               status = CASE WHEN p.status = 'planning' THEN 'running'
                                             ELSE p.status END,
                               updated_at = x.ts
              FROM lh_mat_stage x
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2 AND p.plan_id = x.pid;
            -- a task listed twice in one revision: the last listing wins, as one by one
            INSERT INTO tasks (plan_id, task_no, version, kind, tier, tool, instructions, args,
                               needs_approval, output_schema, status, created_at, updated_at)
            SELECT DISTINCT ON (x.pid, (t.t->>'task_no')::integer)
                   x.pid, (t.t->>'task_no')::integer, (x.b->>'version')::integer, t.t->>'kind',
                   t.t->>'tier', t.t->>'tool', t.t->>'instructions', t.t->'args',
                   coalesce((t.t->>'needs_approval')::boolean, false), t.t->'output_schema',
                   'pending', x.ts, x.ts
              FROM lh_mat_stage x,
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
              FROM lh_mat_stage x,
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
              FROM lh_mat_stage x,
                   jsonb_array_elements_text(coalesce(x.b->'removed', '[]'::jsonb)) rm
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2
               AND t.plan_id = x.pid AND t.task_no = rm::integer
               AND t.status NOT IN ('succeeded', 'dead', 'cancelled');
            UPDATE plans p SET tasks_total = (SELECT count(*) FROM tasks t
                                               WHERE t.plan_id = x.pid AND t.task_no > 0
                                                 AND t.status NOT IN ('skipped', 'cancelled'))
              FROM lh_mat_stage x
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 2 AND p.plan_id = x.pid;
        END IF;
        IF g.p3 THEN
            INSERT INTO task_attempts (plan_id, task_no, attempt, status, tier, dispatched_at)
            SELECT pid, tno, att, 'dispatched', b->>'tier', ts
              FROM lh_mat_stage WHERE rnd = g.rnd AND step = g.step AND phase = 3 ORDER BY ord
            ON CONFLICT DO NOTHING;
            UPDATE tasks t SET status = 'dispatched', attempts = x.att, tier = x.b->>'tier',
                               updated_at = x.ts
              FROM lh_mat_stage x
             WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 3
               AND t.plan_id = x.pid AND t.task_no = x.tno AND t.attempts < x.att;
        END IF;
        IF g.p4 THEN
            UPDATE task_attempts a SET status = 'running', worker_id = x.b->>'worker_id',
                                       model = x.b->>'model', started_at = x.ts
              FROM lh_mat_stage x
             WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 4 AND a.plan_id = x.pid
               AND a.task_no = x.tno AND a.attempt = x.att AND a.status = 'dispatched';
            UPDATE tasks t SET status = 'running', updated_at = x.ts
              FROM lh_mat_stage x
             WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 4 AND t.plan_id = x.pid
               AND t.task_no = x.tno AND t.attempts = x.att AND t.status = 'dispatched';
        END IF;
        IF g.p5 THEN
            -- One statement: the task takes the result or not (fencing: acc), the attempt is
            -- closed (stale when the task did not take it), the plan's totals add up. A (round,
            -- step) holds at most one result per task, so every join below is one to one.
            WITH xa AS (
                SELECT x.ord, x.pid, x.tno, x.att, x.typ, x.b, x.ts, x.last5,
                       coalesce(x.b->'usage', '{}'::jsonb) AS u
                  FROM lh_mat_stage x WHERE x.rnd = g.rnd AND x.step = g.step AND x.phase = 5
            ), acc AS (
                UPDATE tasks t
                   SET status = CASE WHEN xa.typ = 'attempt.succeeded' THEN 'succeeded'
                                     ELSE 'failed' END,
                       -- lh_output(xa.b), inlined (a sub-select keeps a SQL function from
                       -- being inlined: it cost an executor start per result)
                       output = CASE WHEN xa.typ <> 'attempt.succeeded' THEN t.output
                                     WHEN xa.b ? 'output_ref' AND xa.b->>'output_ref' IS NOT NULL
                                     THEN (SELECT convert_from(bl.bytes, 'UTF8')::jsonb
                                             FROM blobs bl
                                            WHERE bl.sha256 = xa.b->>'output_ref')
                                     ELSE xa.b->'output' END,
                       output_ref = xa.b->>'output_ref', updated_at = xa.ts
                  FROM xa
                 WHERE t.plan_id = xa.pid AND t.task_no = xa.tno AND t.attempts = xa.att
                   AND t.status IN ('dispatched', 'running')
                RETURNING xa.ord
            ), xb AS (
                -- a hashed sub-plan: the staging table has no statistics, so a join here was
                -- planned as a nested loop over both sides (quadratic in the group's results)
                SELECT xa.*, xa.ord IN (SELECT acc.ord FROM acc) AS accepted FROM xa
            ), ta AS (
                UPDATE task_attempts a
                   SET status = CASE WHEN NOT xb.accepted THEN 'stale'
                                     WHEN xb.typ = 'attempt.succeeded' THEN 'succeeded'
                                     ELSE 'failed' END,
                       worker_id = coalesce(a.worker_id, xb.b->>'worker_id'),
                       model = coalesce(xb.b->>'model', a.model),
                       input_tokens = coalesce((xb.u->>'input_tokens')::bigint, 0),
                       output_tokens = coalesce((xb.u->>'output_tokens')::bigint, 0),
                       cached_tokens = coalesce((xb.u->>'cached_tokens')::bigint, 0),
                       reasoning_tokens = coalesce((xb.u->>'reasoning_tokens')::bigint, 0),
                       llm_calls = coalesce((xb.u->>'llm_calls')::integer, 0),
                       cost_usd = coalesce((xb.u->>'cost_usd')::numeric, 0),
                       latency_ms = (xb.b->>'latency_ms')::bigint,
                       error_class = xb.b->>'error_class', error_message = xb.b->>'message',
                       finished_at = xb.ts
                  FROM xb
                 WHERE a.plan_id = xb.pid AND a.task_no = xb.tno AND a.attempt = xb.att
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
                      FROM xb GROUP BY pid) s
             WHERE p.plan_id = s.pid;
        END IF;
        IF g.p6 THEN
            UPDATE plans p
               SET status = CASE x.typ WHEN 'plan.completed' THEN 'completed'
                                       WHEN 'plan.failed' THEN 'failed'
                                       ELSE 'cancelled' END,
                   output = coalesce(x.b->'output', p.output), reason = x.b->>'reason',
                   finished_at = x.ts, updated_at = x.ts
              FROM lh_mat_stage x
             WHERE x.rnd = g.rnd AND x.step = 0 AND x.phase = 6 AND p.plan_id = x.pid
               AND p.status NOT IN ('completed', 'failed', 'cancelled');
        END IF;
        IF g.p9 THEN
            -- the event as lh_project reads it (the JSON form's keys it uses)
            FOR ev IN SELECT jsonb_build_object('id', id, 'plan_id', pid, 'type', typ,
                                                'task_no', tno, 'attempt', att, 'ts_us', ts_us,
                                                'tenant', tenant,
                                                'actor', jsonb_build_object('kind', actor_kind,
                                                                            'id', actor_id),
                                                'causation_id', causation_id, 'body', b,
                                                'topic', topic, 'partition', partition,
                                                'offset', "offset") AS e
                        FROM lh_mat_stage WHERE rnd = g.rnd AND step = 0 AND phase = 9
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

-- The JSON entry point of 0001 / 0006, same contract: the events of a JSON array (the JSON form
-- plus topic, partition and offset), an id twice in the array kept once (the first).
CREATE OR REPLACE FUNCTION lh_materialize(p_consumer text, p_events jsonb, p_offsets jsonb)
RETURNS integer LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM lh_mat_stage_open();
    INSERT INTO lh_mat_stage (id, pid, typ, tno, att, ts_us, tenant, actor_kind, actor_id,
                              causation_id, b, topic, partition, "offset", phase, ord)
    SELECT DISTINCT ON ((x.e->>'id')::uuid)
           (x.e->>'id')::uuid, (x.e->>'plan_id')::uuid, x.e->>'type',
           (x.e->>'task_no')::bigint, (x.e->>'attempt')::bigint, (x.e->>'ts_us')::bigint,
           x.e->>'tenant', x.e->'actor'->>'kind', x.e->'actor'->>'id',
           (x.e->>'causation_id')::uuid, x.e->'body', x.e->>'topic',
           (x.e->>'partition')::integer, (x.e->>'offset')::bigint, lh_mat_phase(x.e->>'type'),
           x.ord::integer
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, ord)
     ORDER BY (x.e->>'id')::uuid, x.ord;
    RETURN lh_mat_fold(p_consumer, p_offsets, false, false);
END
$fn$;
