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
SELECT status, kind FROM input_requests WHERE plan_id = $1::uuid AND request_id = $2;

-- name: requests_pending
SELECT r.plan_id, r.request_id, r.task_no, r.kind, r.question, r.created_at
  FROM input_requests r JOIN plans p ON p.plan_id = r.plan_id
 WHERE r.status = 'pending' AND p.tenant = $1 AND ($2::uuid IS NULL OR r.plan_id = $2::uuid)
 ORDER BY r.created_at;

-- ---- lh-gateway (admin REST API). A NULL tenant parameter means every tenant (--no-auth). ----

-- name: api_token_get
SELECT name, role, tenant FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL;

-- name: api_token_create
INSERT INTO api_tokens (token_sha256, name, role, tenant) VALUES ($1, $2, $3, $4);

-- name: api_token_revoke
UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING 1;

-- name: api_token_list
-- lhctl token list: never the hash. $1 't' includes revoked tokens.
SELECT name, role, tenant, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
       to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
  FROM api_tokens WHERE $1::boolean OR revoked_at IS NULL
 ORDER BY created_at, name;

-- name: api_write_claim
-- Claim an idempotency key for a request, or find who claimed it: request hash, plan id and
-- whether the event was acknowledged by Kafka.
WITH ins AS (
    INSERT INTO api_writes (tenant, idem_key, route, request_hash, plan_id)
    VALUES ($1, $2, $3, $4, $5::uuid)
    ON CONFLICT (tenant, idem_key) DO NOTHING
    RETURNING request_hash, plan_id::text, false AS delivered)
SELECT * FROM ins
UNION ALL
SELECT request_hash, plan_id::text, delivered_at IS NOT NULL FROM api_writes
 WHERE tenant = $1 AND idem_key = $2 AND NOT EXISTS (SELECT 1 FROM ins);

-- name: api_write_get
SELECT request_hash, delivered_at IS NOT NULL FROM api_writes WHERE tenant = $1 AND idem_key = $2;

-- name: api_write_delivered
UPDATE api_writes SET delivered_at = now() WHERE tenant = $1 AND idem_key = $2;

-- name: api_plan_visible
SELECT 1 FROM plans WHERE plan_id = $1::uuid AND ($2::text IS NULL OR tenant = $2);

-- name: api_plans_list
SELECT coalesce(json_agg(p ORDER BY p.created_at DESC, p.plan_id), '[]')::text FROM (
    SELECT plan_id, tenant, left(goal, 200) AS goal, status, version, tasks_total,
           tasks_succeeded, input_tokens, output_tokens, cost_usd, created_at, updated_at,
           finished_at
      FROM plans
     WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR status = $2)
     ORDER BY created_at DESC, plan_id LIMIT $3::integer) p;

-- name: api_plan_get
SELECT json_build_object(
    'plan', (SELECT row_to_json(x) FROM (
        SELECT plan_id, tenant, goal, status, version, budget, metadata, output, reason,
               tasks_total, tasks_succeeded, input_tokens, output_tokens, cached_tokens,
               reasoning_tokens, cost_usd, created_at, updated_at, finished_at) x),
    'tasks', coalesce((SELECT json_agg(t ORDER BY t.task_no) FROM (
        SELECT task_no, version, kind, tier, tool, instructions, args, needs_approval, status,
               attempts, output, created_at, updated_at,
               coalesce((SELECT json_agg(d.depends_on ORDER BY d.depends_on)
                           FROM task_dependencies d
                          WHERE d.plan_id = tk.plan_id AND d.task_no = tk.task_no),
                        '[]') AS depends_on
          FROM tasks tk WHERE tk.plan_id = p.plan_id) t), '[]'))::text
  FROM plans p WHERE p.plan_id = $1::uuid AND ($2::text IS NULL OR p.tenant = $2);

-- name: api_plan_decisions
SELECT coalesce(json_agg(d ORDER BY d.ts, d.id), '[]')::text FROM (
    SELECT replace(id::text, '-', '') AS id, ts, actor_kind, actor_id, kind, reasoning, payload
      FROM plan_decisions WHERE plan_id = $1::uuid) d;

-- name: api_plan_attempts
SELECT coalesce(json_agg(a ORDER BY a.task_no, a.attempt), '[]')::text FROM (
    SELECT task_no, attempt, status, tier, worker_id, model, input_tokens, output_tokens,
           cached_tokens, reasoning_tokens, llm_calls, cost_usd, latency_ms, error_class,
           error_message, dispatched_at, started_at, finished_at
      FROM task_attempts WHERE plan_id = $1::uuid) a;

-- name: api_requests_list
SELECT coalesce(json_agg(r ORDER BY r.created_at, r.plan_id, r.request_id), '[]')::text FROM (
    SELECT r.plan_id, r.request_id, r.task_no, r.kind, r.question, r.proposed, r.status,
           r.deadline, r.responder_type, r.responder_id, r.response, r.created_at, r.decided_at
      FROM input_requests r JOIN plans p ON p.plan_id = r.plan_id
     WHERE ($1::text IS NULL OR p.tenant = $1) AND ($2::text IS NULL OR r.status = $2)
     ORDER BY r.created_at, r.plan_id, r.request_id LIMIT $3::integer) r;

-- name: api_request_get
SELECT r.status, r.kind FROM input_requests r JOIN plans p ON p.plan_id = r.plan_id
 WHERE r.plan_id = $1::uuid AND r.request_id = $2 AND ($3::text IS NULL OR p.tenant = $3);

-- name: api_task_status
-- lh-gateway: a task's status and kind before a cancel_task command (the plan is checked first).
SELECT status, kind FROM tasks WHERE plan_id = $1::uuid AND task_no = $2::integer;

-- name: api_events_after
-- A plan's events after an offset, in log order (one partition holds a plan), as the JSON form.
SELECT "offset", type, json_build_object(
           'id', replace(id::text, '-', ''), 'type', type, 'plan_id', plan_id,
           'task_no', task_no, 'attempt', attempt, 'ts', ts, 'tenant', tenant,
           'actor', json_build_object('kind', actor_kind, 'id', actor_id),
           'causation_id', replace(causation_id::text, '-', ''), 'body', body)::text
  FROM events WHERE plan_id = $1::uuid AND "offset" > $2::bigint
 ORDER BY partition, "offset" LIMIT $3::integer;

-- name: mat_session_schema
-- lh-materializer checksum/--rebuild: the schema this session reads and writes, and a fixed text
-- form of timestamps and numbers, so that two sessions print the same row the same way.
SELECT set_config('search_path', $1, false), set_config('TimeZone', 'UTC', false),
       set_config('DateStyle', 'ISO, YMD', false), set_config('extra_float_digits', '1', false);

-- name: mat_rebuild_names
-- lh-materializer --rebuild: the schema names the DDL below reads (identifiers cannot be bound
-- parameters; the DO blocks quote them with format('%I')).
SELECT set_config('lh.rebuild_schema', $1, false), set_config('lh.live_schema', $2, false),
       set_config('lh.old_schema', $3, false);

-- name: mat_rebuild_create_schema
DO $$ BEGIN EXECUTE format('CREATE SCHEMA %I', current_setting('lh.rebuild_schema')); END $$;

-- name: mat_rebuild_swap
-- Copy the tables that are not derived from the log (blobs, API tokens and writes, the offsets of
-- other consumers) into the rebuilt schema, then rename live -> old and rebuilt -> live. Run in
-- one transaction.
DO $$
DECLARE
    live text := current_setting('lh.live_schema');
    rb   text := current_setting('lh.rebuild_schema');
    old  text := current_setting('lh.old_schema');
    t    text;
BEGIN
    FOREACH t IN ARRAY ARRAY['blobs', 'api_tokens', 'api_writes', 'consumer_offsets'] LOOP
        EXECUTE format('INSERT INTO %I.%I SELECT * FROM %I.%I ON CONFLICT DO NOTHING',
                       rb, t, live, t);
    END LOOP;
    EXECUTE format('ALTER SCHEMA %I RENAME TO %I', live, old);
    EXECUTE format('ALTER SCHEMA %I RENAME TO %I', rb, live);
END $$;

-- name: mat_checksum_plans
-- lh-materializer checksum: rows and an order-independent digest (md5 of the sorted md5s of each
-- row's text) of a table, restricted to the plans with an event read from topic $1.
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM plans x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1)) s;

-- name: mat_checksum_plan_versions
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM plan_versions x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1)) s;

-- name: mat_checksum_tasks
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM tasks x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1)) s;

-- name: mat_checksum_task_dependencies
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM task_dependencies x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1)) s;

-- name: mat_checksum_task_attempts
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM task_attempts x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1)) s;

-- name: mat_checksum_plan_decisions
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM plan_decisions x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1)) s;

-- name: mat_checksum_input_requests
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM input_requests x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1)) s;

-- name: mat_checksum_events
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM events x WHERE x.topic = $1) s;

-- name: memory_lock
-- lh_memory_write: serialize writers of one (tenant, scope, plan) for the near-duplicate check.
SELECT pg_advisory_xact_lock(hashtextextended('lh.memory:' || $1 || ':' || $2 || ':' || coalesce($3, ''), 0));

-- name: memory_nearest
-- lh_memory_write: the live memory of the same tenant, scope and plan closest to an embedding.
SELECT m.id, (SELECT sum(a * b) FROM unnest(m.embedding, $4::real[]) AS t(a, b)) AS cosine
  FROM memories m
 WHERE m.tenant = $1 AND m.scope = $2 AND m.plan_id IS NOT DISTINCT FROM $3::uuid
   AND m.superseded_by IS NULL
 ORDER BY cosine DESC NULLS LAST, m.id LIMIT 1;

-- name: memory_insert
-- lh_memory_write: no row back when the same content is already stored in that scope.
INSERT INTO memories (tenant, scope, plan_id, kind, content, embedding, content_sha256,
                      source_event, task_no, attempt)
VALUES ($1, $2, $3::uuid, $4, $5, $6::real[], $7, $8::uuid, $9::integer, $10::integer)
ON CONFLICT DO NOTHING RETURNING id;

-- name: memory_by_sha
SELECT id FROM memories
 WHERE tenant = $1 AND scope = $2 AND plan_id IS NOT DISTINCT FROM $3::uuid AND content_sha256 = $4;

-- name: memory_supersede
-- Mark memory $1 replaced by memory $2 (reconcile UPDATE/DELETE); searches skip it from now on.
UPDATE memories SET superseded_by = $2::bigint, updated_at = now()
 WHERE id = $1::bigint AND superseded_by IS NULL RETURNING id;

-- name: memory_search_fulltext
-- Memories visible to tenant $1 (and plan $2, may be NULL): global ones, the tenant's, the plan's.
-- $3 is a websearch_to_tsquery string, $4 the number of results.
SELECT m.id, ts_rank_cd(m.tsv, q) AS score, m.content
  FROM memories m, websearch_to_tsquery('english', $3) AS q
 WHERE m.superseded_by IS NULL AND m.tsv @@ q
   AND (m.scope = 'global' OR (m.tenant = $1 AND (m.scope = 'tenant' OR m.plan_id = $2::uuid)))
 ORDER BY score DESC, m.id LIMIT $4::integer;

-- name: memory_search_vector
-- Same visibility; $3 is the query embedding (real[] literal), scored by the dot product.
SELECT m.id, (SELECT sum(a * b) FROM unnest(m.embedding, $3::real[]) AS t(a, b)) AS score,
       m.content
  FROM memories m
 WHERE m.superseded_by IS NULL
   AND (m.scope = 'global' OR (m.tenant = $1 AND (m.scope = 'tenant' OR m.plan_id = $2::uuid)))
 ORDER BY score DESC NULLS LAST, m.id LIMIT $4::integer;

-- name: memory_search_hybrid
-- Reciprocal rank fusion of the two rankings above, each cut at $6 candidates:
-- score = sum over the rankings that hold the row of 1 / (60 + rank).
WITH vis AS (
    SELECT m.id, m.tsv, m.embedding FROM memories m
     WHERE m.superseded_by IS NULL
       AND (m.scope = 'global' OR (m.tenant = $1 AND (m.scope = 'tenant' OR m.plan_id = $2::uuid)))
), ft AS (
    SELECT id, row_number() OVER (ORDER BY ts_rank_cd(tsv, q) DESC, id) AS r
      FROM vis, websearch_to_tsquery('english', $3) AS q WHERE tsv @@ q
     ORDER BY r LIMIT $6::integer
), vec AS (
    SELECT id, row_number() OVER (ORDER BY s DESC NULLS LAST, id) AS r
      FROM (SELECT id, (SELECT sum(a * b) FROM unnest(embedding, $4::real[]) AS t(a, b)) AS s
              FROM vis) AS x
     ORDER BY r LIMIT $6::integer
), fused AS (
    SELECT coalesce(ft.id, vec.id) AS id,
           coalesce(1.0 / (60 + ft.r), 0) + coalesce(1.0 / (60 + vec.r), 0) AS score
      FROM ft FULL JOIN vec ON ft.id = vec.id
)
SELECT f.id, f.score, m.content FROM fused f JOIN memories m ON m.id = f.id
 ORDER BY f.score DESC, f.id LIMIT $5::integer;
