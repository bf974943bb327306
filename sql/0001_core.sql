-- 0001_core: the tables materialized from lh.events, and the function that folds a batch into
-- them. Every projection reads only the event (never now()), so dropping every table and
-- replaying the log reproduces the same rows.

CREATE TABLE IF NOT EXISTS events (
    id           uuid PRIMARY KEY,          -- the event id (128 bits, derived from its cause)
    plan_id      uuid NOT NULL,
    type         text NOT NULL,
    task_no      integer,
    attempt      integer,
    ts           timestamptz NOT NULL,      -- producer's clock, informational
    tenant       text NOT NULL DEFAULT 'default',
    actor_kind   text NOT NULL,
    actor_id     text,
    causation_id uuid,
    body         jsonb NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS events_plan_idx ON events (plan_id, partition, "offset");
CREATE INDEX IF NOT EXISTS events_type_idx ON events (type, ts);

CREATE TABLE IF NOT EXISTS plans (
    plan_id          uuid PRIMARY KEY,
    tenant           text NOT NULL DEFAULT 'default',
    goal             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('planning', 'running', 'paused', 'waiting',
                                                     'completed', 'failed', 'cancelled')),
    version          integer NOT NULL DEFAULT 0,
    budget           jsonb,
    metadata         jsonb,
    output           jsonb,
    reason           text,
    tasks_total      integer NOT NULL DEFAULT 0,
    tasks_succeeded  integer NOT NULL DEFAULT 0,
    input_tokens     bigint NOT NULL DEFAULT 0,
    output_tokens    bigint NOT NULL DEFAULT 0,
    cached_tokens    bigint NOT NULL DEFAULT 0,
    reasoning_tokens bigint NOT NULL DEFAULT 0,
    cost_usd         numeric(18, 8) NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz
);
CREATE INDEX IF NOT EXISTS plans_tenant_status_idx ON plans (tenant, status, created_at DESC);

CREATE TABLE IF NOT EXISTS plan_versions (
    plan_id    uuid NOT NULL REFERENCES plans (plan_id),
    version    integer NOT NULL,
    event_id   uuid NOT NULL,
    doc        jsonb NOT NULL,             -- the plan.created / plan.revised body
    created_at timestamptz NOT NULL,
    PRIMARY KEY (plan_id, version)
);

CREATE TABLE IF NOT EXISTS tasks (
    plan_id        uuid NOT NULL REFERENCES plans (plan_id),
    task_no        integer NOT NULL,
    version        integer NOT NULL DEFAULT 0,  -- plan version that added the task (0: the plan task)
    kind           text NOT NULL,
    tier           text NOT NULL,
    tool           text,
    instructions   text,
    args           jsonb,
    needs_approval boolean NOT NULL DEFAULT false,
    output_schema  jsonb,
    status         text NOT NULL CHECK (status IN ('pending', 'ready', 'dispatched', 'running',
                       'succeeded', 'failed', 'waiting_for_input', 'waiting_for_approval', 'dead',
                       'cancelled', 'skipped')),
    attempts       integer NOT NULL DEFAULT 0,
    output         jsonb,
    output_ref     text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (plan_id, task_no)
);
CREATE INDEX IF NOT EXISTS tasks_status_idx ON tasks (plan_id, status);

CREATE TABLE IF NOT EXISTS task_dependencies (
    plan_id    uuid NOT NULL,
    task_no    integer NOT NULL,
    depends_on integer NOT NULL,
    dep_type   text NOT NULL CHECK (dep_type IN ('ref', 'after', 'join')),
    PRIMARY KEY (plan_id, task_no, depends_on),
    FOREIGN KEY (plan_id, task_no) REFERENCES tasks (plan_id, task_no)
);

CREATE TABLE IF NOT EXISTS task_attempts (
    plan_id          uuid NOT NULL,
    task_no          integer NOT NULL,
    attempt          integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('dispatched', 'running', 'succeeded', 'failed',
                                                     'stale')),
    tier             text,
    worker_id        text,
    model            text,
    input_tokens     bigint NOT NULL DEFAULT 0,
    output_tokens    bigint NOT NULL DEFAULT 0,
    cached_tokens    bigint NOT NULL DEFAULT 0,
    reasoning_tokens bigint NOT NULL DEFAULT 0,
    llm_calls        integer NOT NULL DEFAULT 0,
    cost_usd         numeric(18, 8) NOT NULL DEFAULT 0,
    latency_ms       bigint,
    error_class      text,
    error_message    text,
    dispatched_at    timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    PRIMARY KEY (plan_id, task_no, attempt)
);
CREATE INDEX IF NOT EXISTS task_attempts_time_idx ON task_attempts (dispatched_at);

CREATE TABLE IF NOT EXISTS plan_decisions (
    id         uuid PRIMARY KEY,            -- the decision.logged event id
    plan_id    uuid NOT NULL,
    ts         timestamptz NOT NULL,
    actor_kind text NOT NULL,
    actor_id   text,
    kind       text NOT NULL,
    reasoning  text,
    payload    jsonb
);
CREATE INDEX IF NOT EXISTS plan_decisions_plan_idx ON plan_decisions (plan_id, ts);

CREATE TABLE IF NOT EXISTS blobs (
    sha256       text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type text NOT NULL DEFAULT 'application/json',
    size         bigint NOT NULL,
    bytes        bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

-- Project one new event into the tables. Called only for events not seen before.
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

-- Fold one batch: insert each event once (by id), project the new ones, move the consumer's
-- offsets forward (never back). The caller runs it in one transaction, so rows and offsets
-- commit together. Returns the number of new events.
CREATE OR REPLACE FUNCTION lh_materialize(p_consumer text, p_events jsonb, p_offsets jsonb)
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
