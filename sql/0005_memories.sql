-- 0005_memories: agent memories (DESIGN.md section 5). One row per fact (semantic), happening
-- (episodic) or strategy (procedural), visible to one plan, to a tenant, or to everyone (global).
-- Retrieval is hybrid: the generated tsvector (GIN) for full text, and an L2-normalized real[]
-- embedding scored by sum(x*y) over unnest (pgvector is not packaged for Debian bookworm; the scan
-- is exact and sequential, fine to ~10^5 rows a tenant). Exact duplicates are refused by the
-- unique index on the content hash; near duplicates by lh_memory_write (common/memory.c).

CREATE TABLE memories (
    id             bigserial PRIMARY KEY,
    tenant         text NOT NULL,
    scope          text NOT NULL CHECK (scope IN ('plan', 'tenant', 'global')),
    plan_id        uuid,
    kind           text NOT NULL CHECK (kind IN ('episodic', 'semantic', 'procedural')),
    content        text NOT NULL,
    tsv            tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    embedding      real[] NOT NULL,
    content_sha256 text NOT NULL,
    source_event   uuid,
    task_no        integer,
    attempt        integer,
    use_count      integer NOT NULL DEFAULT 0,
    success_count  integer NOT NULL DEFAULT 0,
    superseded_by  bigint REFERENCES memories (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'plan') = (plan_id IS NOT NULL))
);

-- plan_id is NULL outside scope 'plan': a constant stands in so NULLs compare equal.
CREATE UNIQUE INDEX memories_content_once ON memories
    (tenant, scope, coalesce(plan_id, '00000000-0000-0000-0000-000000000000'::uuid), content_sha256);
CREATE INDEX memories_tsv ON memories USING gin (tsv);
CREATE INDEX memories_live ON memories (tenant, scope, plan_id) WHERE superseded_by IS NULL;
