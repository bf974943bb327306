-- 0004_questions: questions from agents (input.requested / input.provided) become rows of
-- input_requests (kind 'question'), and their task waits; an answer that is in the log before its
-- question makes the request answered at once; a wait's deadline marks the request expired. An
-- attempt that ended in a question is 'asked'. lh_project is replaced whole.

ALTER TABLE task_attempts DROP CONSTRAINT IF EXISTS task_attempts_status_check;
ALTER TABLE task_attempts ADD CONSTRAINT task_attempts_status_check
    CHECK (status IN ('dispatched', 'running', 'succeeded', 'failed', 'stale', 'asked'));

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
                         output = CASE WHEN typ = 'attempt.succeeded' THEN b->'output'
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
        -- an answer may be in the log before its question: then the request is born answered
        SELECT x.body INTO answer FROM events x
         WHERE x.plan_id = pid AND x.type IN ('approval.decided', 'input.provided')
           AND x.body->>'request_id' = b->>'request_id'
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

