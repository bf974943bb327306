-- Named queries used by the daemons and lhctl. Each starts with "-- name: NAME"; parameters are
-- $1..$n, always bound (never formatted into the text).

-- name: materialize_batch
SELECT lh_materialize($1, $2::jsonb, $3::jsonb);

-- name: consumer_offsets_get
SELECT partition, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2;

-- name: plan_get
SELECT plan_id, tenant, goal, status, version, tasks_total, tasks_succeeded, input_tokens,
       output_tokens, cached_tokens, reasoning_tokens, cost_usd, created_at, updated_at,
       finished_at, output::text, reason
  FROM plans WHERE plan_id = $1::uuid;

-- name: plan_tasks
SELECT t.task_no, t.kind, t.tier, t.status, t.attempts,
       coalesce(sum(a.input_tokens), 0) AS input_tokens,
       coalesce(sum(a.output_tokens), 0) AS output_tokens,
       coalesce(sum(a.cost_usd), 0) AS cost_usd,
       left(t.instructions, 200) AS instructions,
       (SELECT string_agg(d.depends_on::text, ',' ORDER BY d.depends_on)
          FROM task_dependencies d WHERE d.plan_id = t.plan_id AND d.task_no = t.task_no) AS deps
  FROM tasks t LEFT JOIN task_attempts a ON a.plan_id = t.plan_id AND a.task_no = t.task_no
 WHERE t.plan_id = $1::uuid
 GROUP BY t.plan_id, t.task_no ORDER BY t.task_no;

-- name: plan_list
SELECT plan_id, status, tasks_succeeded, tasks_total, created_at, left(goal, 80)
  FROM plans WHERE tenant = $1 ORDER BY created_at DESC LIMIT $2::integer;

-- name: blob_put
INSERT INTO blobs (sha256, content_type, size, bytes) VALUES ($1, $2, $3::bigint, $4::bytea)
ON CONFLICT (sha256) DO NOTHING;

-- name: blob_get
SELECT content_type, bytes FROM blobs WHERE sha256 = $1;

-- name: plan_timing
-- lhctl plan show: how long the plan ran (until now while it runs) and when it started, in UTC.
SELECT (extract(epoch FROM coalesce(finished_at, now()) - created_at) * 1000)::bigint AS duration_ms,
       finished_at IS NOT NULL AS finished,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"') AS created_utc
  FROM plans WHERE plan_id = $1::uuid;

-- name: plan_status
-- lhctl run: whether the materializer has caught up with a plan's end.
SELECT status FROM plans WHERE plan_id = $1::uuid;

-- name: dev_database_exists
-- lhctl dev: does the private cluster already hold the database.
SELECT 1 FROM pg_database WHERE datname = $1;

-- name: plan_attempts
-- Every attempt of a plan's tasks (lhctl plan show, GET /v1/plans/{id}/attempts, tests).
SELECT task_no, attempt, status, tier, worker_id, model, input_tokens, output_tokens,
       cached_tokens, reasoning_tokens, llm_calls, cost_usd, latency_ms, error_class,
       error_message, dispatched_at, started_at, finished_at
  FROM task_attempts WHERE plan_id = $1::uuid ORDER BY task_no, attempt;

-- name: plan_decisions
-- The decision log of a plan, oldest first.
SELECT id, ts, actor_kind, actor_id, kind, reasoning, payload::text
  FROM plan_decisions WHERE plan_id = $1::uuid ORDER BY ts, id;

-- name: plan_versions
-- Every version of a plan document.
SELECT version, event_id, created_at, doc::text
  FROM plan_versions WHERE plan_id = $1::uuid ORDER BY version;

-- name: events_count_by_plan
-- Events stored per plan, for the plans in a uuid[] literal ('{id,id,...}'); audits and tests.
SELECT plan_id::text, count(*) FROM events WHERE plan_id = ANY($1::uuid[]) GROUP BY plan_id;

-- name: metrics_plans
SELECT status, count(*) FROM plans GROUP BY status ORDER BY status;

-- name: metrics_usage
SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0)
  FROM plans;

-- name: metrics_attempts
SELECT status, count(*) FROM task_attempts GROUP BY status ORDER BY status;

-- name: request_status
SELECT status FROM input_requests WHERE plan_id = $1::uuid AND request_id = $2;

-- name: requests_pending
SELECT r.plan_id, r.request_id, r.task_no, r.kind, r.question, r.created_at
  FROM input_requests r JOIN plans p ON p.plan_id = r.plan_id
 WHERE r.status = 'pending' AND p.tenant = $1 AND ($2::uuid IS NULL OR r.plan_id = $2::uuid)
 ORDER BY r.created_at;
