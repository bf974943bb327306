-- 0011_summary_log: the rolling summaries' versions come from the log too, like memories (0010):
-- every stored version is queued in summary_outbox in the transaction that stores it, published
-- by lh-materializer's relay as summary.written on lh.events (keyed by the plan), dequeued after
-- the broker's acknowledgement, and projected back by a trigger on events (a no-op live, the
-- version itself in a rebuild). Versions are never updated, so a queued version is final.

CREATE TABLE IF NOT EXISTS summary_outbox (
    plan_id uuid NOT NULL,
    subject text NOT NULL,
    version integer NOT NULL,
    seq     bigserial NOT NULL,
    PRIMARY KEY (plan_id, subject, version)
);
CREATE INDEX IF NOT EXISTS summary_outbox_seq ON summary_outbox (seq);

INSERT INTO summary_outbox (plan_id, subject, version)
SELECT plan_id, subject, version FROM summaries ORDER BY created_at, plan_id, subject, version
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION lh_summary_outbox() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM summary_outbox
         WHERE plan_id = OLD.plan_id AND subject = OLD.subject AND version = OLD.version;
        RETURN NULL;
    END IF;
    IF coalesce(current_setting('lh.replaying', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO summary_outbox (plan_id, subject, version)
    VALUES (NEW.plan_id, NEW.subject, NEW.version) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS summaries_outbox ON summaries;
CREATE TRIGGER summaries_outbox AFTER INSERT OR DELETE ON summaries
    FOR EACH ROW EXECUTE FUNCTION lh_summary_outbox();

-- summary.written {subject, version, row}: the stored version, plan_id in the envelope.
CREATE OR REPLACE FUNCTION lh_project_summary() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r jsonb := NEW.body->'row';
BEGIN
    IF r IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('lh.replaying', 'on', true);
    INSERT INTO summaries (plan_id, subject, version, anchor, n_spans, sections, source_event,
                           created_at)
    VALUES (NEW.plan_id, NEW.body->>'subject', (NEW.body->>'version')::integer,
            (r->>'anchor')::bigint, (r->>'n_spans')::bigint, r->'sections',
            (r->>'source_event')::uuid, (r->>'created_at')::timestamptz)
    ON CONFLICT (plan_id, subject, version) DO NOTHING;
    PERFORM set_config('lh.replaying', 'off', true);
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS events_summary ON events;
CREATE TRIGGER events_summary AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type = 'summary.written')
    EXECUTE FUNCTION lh_project_summary();
