-- 0010_memory_log: memories come from the log too (DESIGN.md sec. 6: dropping every table and
-- replaying the log reproduces the same rows). Memories are written straight into PostgreSQL by
-- whoever holds the fact (the worker's memory tools and extract orders, consolidation, a forget
-- from lhctl or the gateway): reconcile needs to see its own writes at once. So the table keeps a
-- transactional outbox: every change of a row bumps its log_version and queues (id, version) in
-- memory_outbox in the same transaction; lh-materializer's relay (materializer/relay.c) publishes
-- each queued row's current state as a memory.written event on lh.events and, once the broker
-- has acknowledged it, removes the queue entry it published (a newer change keeps its entry).
-- The projection below turns memory.written back into the row: a no-op in the live database (the
-- row is there at that version or newer), the row itself in a rebuilt one.

ALTER TABLE memories ADD COLUMN IF NOT EXISTS log_version bigint NOT NULL DEFAULT 0;
-- A replay inserts a tenant's rows in the order their changes were published; a row superseded
-- by one whose first event comes later would break the foreign key mid-replay. reconcile.c keeps
-- the link consistent; it is not enforced here any more.
ALTER TABLE memories DROP CONSTRAINT IF EXISTS memories_superseded_by_fkey;

CREATE TABLE IF NOT EXISTS memory_outbox (
    memory_id bigint PRIMARY KEY,
    version   bigint NOT NULL,          -- the log_version to publish (or newer)
    seq       bigserial NOT NULL        -- publication order: the latest change last
);
CREATE INDEX IF NOT EXISTS memory_outbox_seq ON memory_outbox (seq);

-- What is there already is published once.
UPDATE memories SET log_version = 1 WHERE log_version = 0;
INSERT INTO memory_outbox (memory_id, version) SELECT id, log_version FROM memories ORDER BY id
ON CONFLICT (memory_id) DO NOTHING;

-- lh.replaying is set (transaction-local) only by lh_project_memory: a row that comes from the
-- log is neither re-versioned nor queued again.
CREATE OR REPLACE FUNCTION lh_memory_version() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF coalesce(current_setting('lh.replaying', true), '') = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.log_version := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE OLD.log_version + 1 END;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE FUNCTION lh_memory_outbox() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM memory_outbox WHERE memory_id = OLD.id; -- tests and benches clean up
        RETURN NULL;
    END IF;
    IF coalesce(current_setting('lh.replaying', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO memory_outbox AS o (memory_id, version) VALUES (NEW.id, NEW.log_version)
    ON CONFLICT (memory_id) DO UPDATE SET version = EXCLUDED.version, seq = DEFAULT;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS memories_version ON memories;
CREATE TRIGGER memories_version BEFORE INSERT OR UPDATE ON memories
    FOR EACH ROW EXECUTE FUNCTION lh_memory_version();
DROP TRIGGER IF EXISTS memories_outbox ON memories;
CREATE TRIGGER memories_outbox AFTER INSERT OR UPDATE OR DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION lh_memory_outbox();

-- memory.written {memory_id, version, row}: the row as it was at that version. Newer wins; the
-- same version twice, or an older one, changes nothing. Like the messages projection (0008) a
-- trigger on events, so every path that stores events (set-wise fold, serial fold, rebuild)
-- projects it the same way.
CREATE OR REPLACE FUNCTION lh_project_memory() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r jsonb := NEW.body->'row';
    v bigint := (NEW.body->>'version')::bigint;
    mid bigint := (NEW.body->>'memory_id')::bigint;
BEGIN
    IF r IS NULL OR v IS NULL OR mid IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('lh.replaying', 'on', true);
    INSERT INTO memories AS m (id, tenant, scope, plan_id, kind, content, embedding,
                               content_sha256, source_event, task_no, attempt, use_count,
                               success_count, superseded_by, created_at, updated_at, embedder,
                               embedding_bits, forgotten_at, forget_reason, log_version)
    VALUES (mid, r->>'tenant', r->>'scope', (r->>'plan_id')::uuid, r->>'kind', r->>'content',
            ARRAY(SELECT e.x::real FROM jsonb_array_elements_text(r->'embedding')
                         WITH ORDINALITY AS e(x, i) ORDER BY e.i),
            r->>'content_sha256', (r->>'source_event')::uuid, (r->>'task_no')::integer,
            (r->>'attempt')::integer, coalesce((r->>'use_count')::integer, 0),
            coalesce((r->>'success_count')::integer, 0), (r->>'superseded_by')::bigint,
            (r->>'created_at')::timestamptz, (r->>'updated_at')::timestamptz, r->>'embedder',
            (r->>'embedding_bits')::varbit, (r->>'forgotten_at')::timestamptz,
            r->>'forget_reason', v)
    ON CONFLICT (id) DO UPDATE SET
        tenant = EXCLUDED.tenant, scope = EXCLUDED.scope, plan_id = EXCLUDED.plan_id,
        kind = EXCLUDED.kind, content = EXCLUDED.content, embedding = EXCLUDED.embedding,
        content_sha256 = EXCLUDED.content_sha256, source_event = EXCLUDED.source_event,
        task_no = EXCLUDED.task_no, attempt = EXCLUDED.attempt, use_count = EXCLUDED.use_count,
        success_count = EXCLUDED.success_count, superseded_by = EXCLUDED.superseded_by,
        created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
        embedder = EXCLUDED.embedder, embedding_bits = EXCLUDED.embedding_bits,
        forgotten_at = EXCLUDED.forgotten_at, forget_reason = EXCLUDED.forget_reason,
        log_version = EXCLUDED.log_version
      WHERE m.log_version < EXCLUDED.log_version;
    PERFORM set_config('lh.replaying', 'off', true);
    -- new rows of a rebuilt (then swapped-in) schema must not reuse a replayed id
    IF mid > (SELECT last_value FROM memories_id_seq) THEN
        PERFORM setval('memories_id_seq', mid);
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS events_memory ON events;
CREATE TRIGGER events_memory AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type = 'memory.written')
    EXECUTE FUNCTION lh_project_memory();
