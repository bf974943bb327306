-- 0007_memory_embedders_summaries: which embedder made each memory's vector, forgetting,
-- the embeddings cache, and the plans' anchored rolling summaries (DESIGN.md section 5).
--
-- Vectors stay L2-normalized real[] scored by sum(x*y) over unnest: pgvector is not packaged for
-- Debian bookworm, so no extension is created or required here (docs/memory.md). That exact score
-- costs 0.1-0.3 ms a row, so every vector also has a sign signature (embedding_bits, 2 bits a
-- dimension: positive, negative) whose Hamming distance bit_count(a # b) runs at native speed
-- (about 1 us a row): searches rank exactly only the nearest few hundred by signature. Vectors of
-- different embedders (the hashing embedder, a model behind /v1/embeddings) are never compared:
-- every row names its embedder and searches rank only the rows of the query's embedder.

ALTER TABLE memories ADD COLUMN embedder text NOT NULL DEFAULT 'hash-512';
ALTER TABLE memories ADD COLUMN embedding_bits bit varying;
UPDATE memories SET embedding_bits = (
    SELECT (string_agg(CASE WHEN x > 0 THEN '1' ELSE '0' END, '' ORDER BY i) ||
            string_agg(CASE WHEN x < 0 THEN '1' ELSE '0' END, '' ORDER BY i))::varbit
      FROM unnest(embedding) WITH ORDINALITY AS u(x, i));
ALTER TABLE memories ALTER COLUMN embedding_bits SET NOT NULL;
-- memory_forget (a tool, lhctl, the REST API): the row stays, searches skip it.
ALTER TABLE memories ADD COLUMN forgotten_at timestamptz;
ALTER TABLE memories ADD COLUMN forget_reason text;

CREATE INDEX memories_alive ON memories (tenant, embedder)
    WHERE superseded_by IS NULL AND forgotten_at IS NULL;
CREATE INDEX memories_alive_global ON memories (embedder)
    WHERE scope = 'global' AND superseded_by IS NULL AND forgotten_at IS NULL;
-- superseded_by references memories(id): without an index every deleted row would scan the table.
CREATE INDEX memories_superseded_by ON memories (superseded_by) WHERE superseded_by IS NOT NULL;

-- lh_embedder_embed (common/embedder.c): one vector per (model, sha256 of the text), so a text is
-- sent to the embeddings endpoint once, whichever worker asks and however often.
CREATE TABLE embedding_cache (
    model      text NOT NULL,
    sha256     text NOT NULL,
    dims       integer NOT NULL CHECK (dims > 0),
    embedding  real[] NOT NULL CHECK (array_length(embedding, 1) = dims),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, sha256)
);

-- Anchored rolling summaries (common/summary.h), every version kept. subject is '' for the plan's
-- own summary, 'task/attempt' for a long attempt's. Version n+1 may only be written over version
-- n (lh_summary_store's optimistic check), and its anchor never moves back.
CREATE TABLE summaries (
    plan_id      uuid NOT NULL,
    subject      text NOT NULL DEFAULT '',
    version      integer NOT NULL CHECK (version > 0),
    anchor       bigint NOT NULL,
    n_spans      bigint NOT NULL,
    sections     jsonb NOT NULL,
    source_event uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_id, subject, version)
);
