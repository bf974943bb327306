-- Named queries used by the daemons and lhctl. Each starts with "-- name: NAME"; parameters are
-- $1..$n, always bound (never formatted into the text).

-- name: materialize_begin
SELECT lh_mat_begin();

-- name: materialize_copy
COPY lh_mat_stage (id, pid, typ, tno, att, ts_us, tenant, actor_kind, actor_id, causation_id, b,
                   topic, partition, "offset", phase, rnd, step, last5, ord)
FROM STDIN (FORMAT binary);

-- name: materialize_fold
SELECT lh_mat_fold($1, $2::jsonb, true, $3::boolean);

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

-- name: session_statement_timeout
-- lh-gateway: its queries run on the event loop; $1 ms bounds how long one can block it.
SELECT set_config('statement_timeout', $1, false);

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

-- name: api_plan_messages
-- GET /v1/plans/{id}/messages: the attempts' conversations (sql/0008), optionally of task $2 and
-- attempt $3, at most $4 messages, by task, attempt and position.
SELECT coalesce(json_agg(m ORDER BY m.task_no, m.attempt, m.seq), '[]')::text FROM (
    SELECT task_no, attempt, seq, role, content, tool_calls, tool_call_id, event_id, ts
      FROM messages
     WHERE plan_id = $1::uuid AND ($2::integer IS NULL OR task_no = $2::integer)
       AND ($3::integer IS NULL OR attempt = $3::integer)
     ORDER BY task_no, attempt, seq LIMIT $4::integer) m;

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

-- name: responder_request_state
-- lh-gateway's responder: is a request still open? Its status ('' before the materializer
-- folded it) and its plan's status ('' likewise); for the triage agent, the plan's goal and the
-- asking task's instructions (each cut to 4000 characters).
SELECT coalesce((SELECT status FROM input_requests WHERE plan_id = $1::uuid AND request_id = $2), ''),
       coalesce((SELECT status FROM plans WHERE plan_id = $1::uuid), ''),
       coalesce((SELECT left(goal, 4000) FROM plans WHERE plan_id = $1::uuid), ''),
       coalesce((SELECT left(instructions, 4000) FROM tasks
                  WHERE plan_id = $1::uuid AND task_no = $3::integer), '');

-- name: api_request_early
-- lh-gateway: an answer to a request PostgreSQL does not know yet. The plan's status, the answers
-- to this request already in the log, and how many requests of the plan have an answer but no
-- row (early answers the coordinator keeps).
SELECT (SELECT status FROM plans WHERE plan_id = $1::uuid),
       (SELECT count(*) FROM events WHERE plan_id = $1::uuid
           AND type IN ('approval.decided', 'input.provided') AND body->>'request_id' = $2),
       (SELECT count(DISTINCT e.body->>'request_id') FROM events e
         WHERE e.plan_id = $1::uuid AND e.type IN ('approval.decided', 'input.provided')
           AND NOT EXISTS (SELECT 1 FROM input_requests r
                            WHERE r.plan_id = e.plan_id AND r.request_id = e.body->>'request_id'));

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

-- name: mat_rebuild_copy_blobs
-- lh-materializer --rebuild: the live blobs into the new schema before the replay, so that outputs
-- stored as blobs resolve as they did live (a blob is immutable and older than its event).
DO $$ BEGIN
    EXECUTE format('INSERT INTO %I.blobs SELECT * FROM %I.blobs ON CONFLICT DO NOTHING',
                   current_setting('lh.rebuild_schema'), current_setting('lh.live_schema'));
END $$;

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
-- row's text) of a table, restricted to the plans with an event read from topic $1 (not counting
-- the relay's memory.written and summary.written: they name plans of any topic).
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM plans x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_plan_versions
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM plan_versions x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_tasks
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM tasks x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_task_dependencies
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM task_dependencies x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_task_attempts
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM task_attempts x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_plan_decisions
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM plan_decisions x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_input_requests
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM input_requests x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_messages
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM messages x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1
                       AND type NOT IN ('memory.written', 'summary.written'))) s;

-- name: mat_checksum_memories
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM memories x
   WHERE x.id IN (SELECT (body->>'memory_id')::bigint FROM events
                   WHERE topic = $1 AND type = 'memory.written')) s;

-- name: mat_checksum_summaries
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM summaries x
   WHERE x.plan_id IN (SELECT plan_id FROM events WHERE topic = $1 AND type = 'summary.written')) s;

-- name: mat_checksum_events
SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM (
  SELECT md5(x::text) h FROM events x WHERE x.topic = $1) s;

-- name: memory_lock
-- lh_memory_write: serialize writers of one (tenant, scope, plan) for the near-duplicate check.
SELECT pg_advisory_xact_lock(hashtextextended('lh.memory:' || $1 || ':' || $2 || ':' || coalesce($3, ''), 0));

-- name: memory_nearest
-- lh_memory_write: the live memory of the same tenant, scope, plan and embedder ($5) closest to
-- embedding $4, ranked exactly among the $7 nearest by sign signature ($6, see sql/0007).
SELECT c.id, (SELECT sum(a * b) FROM unnest(c.embedding, $4::real[]) AS t(a, b)) AS cosine
  FROM (SELECT m.id, m.embedding FROM memories m
         WHERE m.tenant = $1 AND m.scope = $2 AND m.plan_id IS NOT DISTINCT FROM $3::uuid
           AND m.embedder = $5 AND m.superseded_by IS NULL AND m.forgotten_at IS NULL
         ORDER BY bit_count(m.embedding_bits # $6::varbit), m.id LIMIT $7::integer) AS c
 ORDER BY cosine DESC NULLS LAST, c.id LIMIT 1;

-- name: memory_insert
-- lh_memory_write: no row back when the same content is already stored in that scope.
INSERT INTO memories (tenant, scope, plan_id, kind, content, embedding, content_sha256,
                      source_event, task_no, attempt, embedder, embedding_bits)
VALUES ($1, $2, $3::uuid, $4, $5, $6::real[], $7, $8::uuid, $9::integer, $10::integer, $11,
        $12::varbit)
ON CONFLICT DO NOTHING RETURNING id;

-- name: memory_by_sha
SELECT id FROM memories
 WHERE tenant = $1 AND scope = $2 AND plan_id IS NOT DISTINCT FROM $3::uuid AND content_sha256 = $4;

-- name: memory_supersede
-- Mark memory $1 replaced by memory $2 (reconcile UPDATE/DELETE); searches skip it from now on.
UPDATE memories SET superseded_by = $2::bigint, updated_at = now()
 WHERE id = $1::bigint AND superseded_by IS NULL AND forgotten_at IS NULL RETURNING id;

-- name: memory_search_fulltext
-- Memories visible to tenant $1 (and plan $2, may be NULL): global ones, the tenant's, the plan's.
-- $3 is a websearch_to_tsquery string, $4 the number of results. The visible rows are taken first
-- (by index, MATERIALIZED) and matched after: an OR-ed question matches most rows of every tenant,
-- and a generic plan of this prepared statement would otherwise walk the GIN index over all of them.
-- ts_rank_cd costs ~19 us a row on an OR-ed question (mostly zeroing its cover arrays), ts_rank
-- ~1 us: the 2 * $4 (at least 100) best by ts_rank are ranked by ts_rank_cd. On the recall
-- fixture a cut at 60 still gives the same recall@5 as no cut at all.
WITH vis AS MATERIALIZED (
    (SELECT m.id, m.tsv, m.content FROM memories m
      WHERE m.tenant = $1 AND (m.scope = 'tenant' OR m.plan_id = $2::uuid)
        AND m.superseded_by IS NULL AND m.forgotten_at IS NULL)
    UNION ALL
    (SELECT m.id, m.tsv, m.content FROM memories m
      WHERE m.scope = 'global' AND m.superseded_by IS NULL AND m.forgotten_at IS NULL)
), pre AS (
    SELECT v.id, v.tsv, v.content, q FROM vis v, websearch_to_tsquery('english', $3) AS q
     WHERE v.tsv @@ q
     ORDER BY ts_rank(v.tsv, q) DESC, v.id LIMIT greatest(2 * $4::integer, 100)
)
SELECT p.id, ts_rank_cd(p.tsv, p.q) AS score, p.content FROM pre p
 ORDER BY score DESC, p.id LIMIT $4::integer;

-- name: memory_vector_candidates
-- lh_memory_search_with: the $5 memories of embedder $3 visible to tenant $1 (and plan $2) nearest
-- to the query's sign signature $4 (Hamming distance, native speed), with their vectors; common/
-- memory.c ranks them by the exact dot product (cheaper there than sum(x*y) over unnest here).
-- Read as a BINARY result (lh_pg_query_bin): the id as text, the content, the real[] in its
-- array_send form, with no hex on either side. Two branches so each can use its partial index.
SELECT c.id::text, c.content, c.embedding FROM (
    (SELECT m.id, m.content, m.embedding, bit_count(m.embedding_bits # $4::varbit) AS h
       FROM memories m
      WHERE m.tenant = $1 AND (m.scope = 'tenant' OR m.plan_id = $2::uuid) AND m.embedder = $3
        AND m.superseded_by IS NULL AND m.forgotten_at IS NULL
      ORDER BY h, m.id LIMIT $5::integer)
    UNION ALL
    (SELECT m.id, m.content, m.embedding, bit_count(m.embedding_bits # $4::varbit) AS h
       FROM memories m
      WHERE m.scope = 'global' AND m.embedder = $3
        AND m.superseded_by IS NULL AND m.forgotten_at IS NULL
      ORDER BY h, m.id LIMIT $5::integer)
) AS c ORDER BY c.h, c.id LIMIT $5::integer;

-- name: memory_hybrid_candidates
-- lh_memory_search_with, hybrid: memory_search_fulltext's top $4 (rows 'f', id, content, NULL,
-- ts_rank_cd) and memory_vector_candidates' $7 (rows 'v', id, content, embedding) for $5 and
-- signature $6, in one statement over the visible rows read once; common/memory.c fuses them.
-- Read as a BINARY result (lh_pg_query_bin), so every column but the vector is text.
WITH vis AS MATERIALIZED (
    (SELECT m.id, m.tsv, m.content, m.embedding, m.embedder, m.embedding_bits FROM memories m
      WHERE m.tenant = $1 AND (m.scope = 'tenant' OR m.plan_id = $2::uuid)
        AND m.superseded_by IS NULL AND m.forgotten_at IS NULL)
    UNION ALL
    (SELECT m.id, m.tsv, m.content, m.embedding, m.embedder, m.embedding_bits FROM memories m
      WHERE m.scope = 'global' AND m.superseded_by IS NULL AND m.forgotten_at IS NULL)
), pre AS (
    SELECT v.id, v.tsv, v.content, q FROM vis v, websearch_to_tsquery('english', $3) AS q
     WHERE v.tsv @@ q
     ORDER BY ts_rank(v.tsv, q) DESC, v.id LIMIT greatest(2 * $4::integer, 100)
), ft AS (
    SELECT p.id, ts_rank_cd(p.tsv, p.q) AS score, p.content FROM pre p
     ORDER BY score DESC, p.id LIMIT $4::integer
), vc AS (
    SELECT v.id, v.content, v.embedding FROM vis v WHERE v.embedder = $5
     ORDER BY bit_count(v.embedding_bits # $6::varbit), v.id LIMIT $7::integer
)
SELECT 'f'::text, ft.id::text, ft.content, NULL::real[], ft.score::text FROM ft
UNION ALL
SELECT 'v'::text, vc.id::text, vc.content, vc.embedding, NULL::text FROM vc;

-- name: memory_forget
-- lh_memory_forget: memory $1 of tenant $2 is no longer true or wanted; the row stays.
UPDATE memories SET forgotten_at = now(), forget_reason = $3, updated_at = now()
 WHERE id = $1::bigint AND tenant = $2 AND superseded_by IS NULL AND forgotten_at IS NULL
RETURNING id;

-- name: memory_get
-- lh_memory_get: one memory visible to tenant $2 (its own or a global one), live or not.
SELECT id, tenant, scope, plan_id, kind, content, embedder, source_event, task_no, attempt,
       use_count, success_count, superseded_by, forgotten_at, forget_reason,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  FROM memories WHERE id = $1::bigint AND (tenant = $2 OR scope = 'global');

-- name: embed_cache_get
-- lh_embedder_embed: cached vectors of model $1 for the text hashes $2 (text[]) of $3 dimensions.
SELECT sha256, embedding FROM embedding_cache
 WHERE model = $1 AND sha256 = ANY($2::text[]) AND dims = $3::integer;

-- name: embed_cache_put
INSERT INTO embedding_cache (model, sha256, dims, embedding)
VALUES ($1, $2, $3::integer, $4::real[])
ON CONFLICT (model, sha256) DO UPDATE SET dims = EXCLUDED.dims, embedding = EXCLUDED.embedding;

-- name: summary_latest
-- lh_summary_load: the newest version of the summary of plan $1, subject $2.
SELECT version, sections FROM summaries WHERE plan_id = $1::uuid AND subject = $2
 ORDER BY version DESC LIMIT 1;

-- name: summary_insert
-- lh_summary_store: version $3 only when the newest is $3 - 1 and its anchor is not ahead of $4.
INSERT INTO summaries (plan_id, subject, version, anchor, n_spans, sections, source_event)
SELECT $1::uuid, $2, $3::integer, $4::bigint, $5::bigint, $6::jsonb, $7::uuid
 WHERE coalesce((SELECT max(version) FROM summaries WHERE plan_id = $1::uuid AND subject = $2), 0)
       = $3::integer - 1
   AND coalesce((SELECT anchor FROM summaries WHERE plan_id = $1::uuid AND subject = $2
                  ORDER BY version DESC LIMIT 1), $4::bigint) <= $4::bigint
ON CONFLICT DO NOTHING RETURNING version;

-- name: summary_event_offset
-- worker/summarize.c: is event $1 materialized yet (its offset)?
SELECT "offset" FROM events WHERE id = $1::uuid;

-- name: summary_span_events
-- worker/summarize.c: the rolling summary's next span: plan $1's materialized events of the
-- types $3 at offsets >= $2 (one plan's events share one partition: the offset is its sequence),
-- in log order, at most $4, with the task's kind and instructions. The partition is named so
-- that events_plan_idx (plan_id, partition, offset) scans from the anchor, not the plan's start.
SELECT e."offset", e.type, coalesce(e.task_no, -1), coalesce(e.attempt, 0), e.body::text,
       t.kind, left(t.instructions, 2000)
  FROM events e LEFT JOIN tasks t ON t.plan_id = e.plan_id AND t.task_no = e.task_no
 WHERE e.plan_id = $1::uuid
   AND e.partition = (SELECT partition FROM events WHERE plan_id = $1::uuid LIMIT 1)
   AND e."offset" >= $2::bigint AND e.type = ANY($3::text[])
   -- a planner's or replanner's output is its plan version (plan.created / plan.revised)
   AND NOT (e.type = 'attempt.succeeded' AND coalesce(t.kind, '') IN ('plan', 'replan'))
 ORDER BY e."offset" LIMIT $4::integer;

-- name: bench_memory_bulk
-- lh-bench context: memories of tenant $1 in bulk: contents $2, real[] literals $3 and sign
-- signatures $4 (text[] each, same length), hashing embedder; no duplicate checks.
INSERT INTO memories (tenant, scope, kind, content, embedding, content_sha256, embedder,
                      embedding_bits)
SELECT $1, 'tenant', 'semantic', u.c, u.e::real[], encode(sha256(convert_to(u.c, 'UTF8')), 'hex'),
       'hash-512', u.b::varbit
  FROM unnest($2::text[], $3::text[], $4::text[]) AS u(c, e, b)
ON CONFLICT DO NOTHING;

-- name: bench_memory_drop
-- lh-bench context: drop the memories of the tenants named $1-N.
DELETE FROM memories WHERE tenant LIKE $1 || '-%';

-- name: blob_gc
-- lh-materializer gc-blobs: delete blobs older than $1 days that no event (as an output or an
-- attempt's messages) and no task names.
WITH gone AS (
    DELETE FROM blobs b
     WHERE b.created_at < now() - make_interval(days => $1::integer)
       AND NOT EXISTS (SELECT 1 FROM events e
                        WHERE e.body ? 'output_ref' AND e.body->>'output_ref' = b.sha256)
       AND NOT EXISTS (SELECT 1 FROM events e
                        WHERE e.body ? 'messages_ref' AND e.body->>'messages_ref' = b.sha256)
       AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.output_ref = b.sha256)
    RETURNING 1)
SELECT count(*) FROM gone;

-- name: memory_outbox_take
-- lh-materializer's relay (materializer/relay.c, sql/0010): the $1 oldest queued memory changes:
-- the entry's seq, whether the row is still there, the tenant, no plan (the tenant's memory
-- stream), the event id's cause, and the event body as JSON: {memory_id, version (the row's
-- current log_version), row (every column but the generated tsv)}.
SELECT o.seq, m.id IS NOT NULL, m.tenant, NULL::text, 'm' || o.memory_id || ':v' || m.log_version,
       CASE WHEN m.id IS NOT NULL THEN jsonb_build_object(
           'memory_id', m.id, 'version', m.log_version, 'row', jsonb_build_object(
           'id', m.id, 'tenant', m.tenant, 'scope', m.scope, 'plan_id', m.plan_id,
           'kind', m.kind, 'content', m.content, 'embedding', to_jsonb(m.embedding),
           'embedding_bits', m.embedding_bits::text, 'content_sha256', m.content_sha256,
           'source_event', m.source_event, 'task_no', m.task_no, 'attempt', m.attempt,
           'use_count', m.use_count, 'success_count', m.success_count,
           'superseded_by', m.superseded_by, 'created_at', m.created_at,
           'updated_at', m.updated_at, 'embedder', m.embedder, 'forgotten_at', m.forgotten_at,
           'forget_reason', m.forget_reason))::text END
  FROM memory_outbox o LEFT JOIN memories m ON m.id = o.memory_id
 ORDER BY o.seq LIMIT $1::integer;

-- name: memory_outbox_done
-- The relay published the entries $1 (bigint[] of seq) and the broker has them. An entry a newer
-- change re-queued meanwhile has a new seq and stays.
DELETE FROM memory_outbox WHERE seq = ANY($1::bigint[]);

-- name: summary_outbox_take
-- The relay (sql/0011): the $1 oldest queued summary versions, in memory_outbox_take's columns;
-- the body is {subject, version, row: {anchor, n_spans, sections, source_event, created_at}}.
SELECT o.seq, s.plan_id IS NOT NULL, NULL::text, o.plan_id::text,
       's' || o.subject || ':v' || o.version,
       CASE WHEN s.plan_id IS NOT NULL THEN jsonb_build_object(
           'subject', s.subject, 'version', s.version, 'row', jsonb_build_object(
           'anchor', s.anchor, 'n_spans', s.n_spans, 'sections', s.sections,
           'source_event', s.source_event, 'created_at', s.created_at))::text END
  FROM summary_outbox o LEFT JOIN summaries s
    ON s.plan_id = o.plan_id AND s.subject = o.subject AND s.version = o.version
 ORDER BY o.seq LIMIT $1::integer;

-- name: summary_outbox_done
DELETE FROM summary_outbox WHERE seq = ANY($1::bigint[]);

-- name: memory_used
-- lh_memory_used: memories $1 (bigint[]) of tenant $2 were put in a context; $3 = 1 when the task
-- they served succeeded (procedural memories' success counts).
UPDATE memories SET use_count = use_count + 1, success_count = success_count + $3::integer
 WHERE id = ANY($1::bigint[]) AND tenant = $2 RETURNING id;

-- name: memory_near_pairs
-- lh_memory_consolidate: live memories of tenant $1 newer than id $3 (at most $4 of them, oldest
-- first) whose nearest older live memory of the same scope, plan and embedder (exact cosine among
-- the 8 nearest by signature) reaches $2.
SELECT a.id, n.id, n.cos FROM (
    SELECT m.* FROM memories m
     WHERE m.tenant = $1 AND m.id > $3::bigint AND m.superseded_by IS NULL
       AND m.forgotten_at IS NULL
     ORDER BY m.id LIMIT $4::integer) AS a
CROSS JOIN LATERAL (
    SELECT c.id, (SELECT sum(x * y) FROM unnest(a.embedding, c.embedding) AS t(x, y)) AS cos
      FROM (SELECT b.id, b.embedding FROM memories b
             WHERE b.tenant = a.tenant AND b.scope = a.scope
               AND b.plan_id IS NOT DISTINCT FROM a.plan_id AND b.embedder = a.embedder
               AND b.id < a.id AND b.superseded_by IS NULL AND b.forgotten_at IS NULL
             ORDER BY bit_count(b.embedding_bits # a.embedding_bits), b.id LIMIT 8) AS c
     ORDER BY cos DESC NULLS LAST, c.id LIMIT 1) AS n
 WHERE n.cos >= $2::float8
 ORDER BY a.id;

-- name: memory_consolidate_cursor
-- lh_memory_consolidate: the newest of the memories memory_near_pairs examined ($2, $3 as there).
SELECT coalesce(max(id), $2::bigint) FROM (
    SELECT m.id FROM memories m
     WHERE m.tenant = $1 AND m.id > $2::bigint AND m.superseded_by IS NULL
       AND m.forgotten_at IS NULL
     ORDER BY m.id LIMIT $3::integer) AS s;

-- name: memory_prune_episodic
-- lh_memory_consolidate: episodic memories of tenant $1 older than $2 seconds that no context ever
-- used are forgotten (the row stays).
UPDATE memories SET forgotten_at = now(), forget_reason = 'expired episodic detail',
       updated_at = now()
 WHERE tenant = $1 AND kind = 'episodic' AND superseded_by IS NULL AND forgotten_at IS NULL
   AND use_count = 0 AND created_at < now() - make_interval(secs => $2::float8)
RETURNING id;
