-- 0003_api_tokens: what lh-gateway owns in PostgreSQL. Everything else it reads is materialized
-- from lh.events; these two tables are the gateway's own state (not derived from the log):
--   api_tokens  bearer tokens, stored only as the sha256 of the token (the token itself is shown
--               once, by `lh-gateway --create-token`)
--   api_writes  one row per client idempotency key: the plan a goal got, whether the event was
--               acknowledged by Kafka, so a retried HTTP call appends nothing new

CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('viewer', 'responder', 'admin')),
    tenant       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS api_tokens_name_idx ON api_tokens (name);

CREATE TABLE IF NOT EXISTS api_writes (
    tenant       text NOT NULL,
    idem_key     text NOT NULL,
    route        text NOT NULL,          -- "goal", "decision", "command": a key is bound to one
    request_hash text NOT NULL,          -- sha256 of route, target and canonical body
    plan_id      uuid NOT NULL,
    delivered_at timestamptz,            -- set once Kafka acknowledged the event
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, idem_key)
);
