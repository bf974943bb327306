-- 0008_messages: an attempt's conversation, per message, in a provider-neutral form (DESIGN.md
-- sec. 5, sec. 6). attempt.succeeded and attempt.failed carry it (worker/transcript.h): inline as
-- body.messages, or in the blob named by body.messages_ref (written before the event). The rows
-- come from the events alone, so a rebuild reproduces them.
--
-- Projected by a trigger on `events` rather than inside lh_materialize / lh_project: every path
-- that stores an event (the set-wise fold, the serial fold, a rebuild) inserts into `events`
-- first, so one projection serves them all and cannot diverge between them; and an event stored
-- twice is not inserted twice (ON CONFLICT DO NOTHING fires no AFTER INSERT trigger). The WHEN
-- clause is evaluated without calling the function, so other events pay next to nothing.

CREATE TABLE IF NOT EXISTS messages (
    plan_id      uuid NOT NULL,
    task_no      integer NOT NULL,
    attempt      integer NOT NULL,
    seq          integer NOT NULL,       -- 0-based position in the attempt's conversation
    role         text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content      text,
    tool_calls   jsonb,                  -- assistant: [{id, name, arguments (JSON text)}]
    tool_call_id text,                   -- tool: the call it answers
    event_id     uuid NOT NULL,          -- the attempt.succeeded / attempt.failed it came from
    ts           timestamptz NOT NULL,   -- that event's time
    PRIMARY KEY (plan_id, task_no, attempt, seq)
);

-- gc-blobs keeps a blob that an event names as its messages
CREATE INDEX IF NOT EXISTS events_messages_ref_idx ON events ((body->>'messages_ref'))
    WHERE body ? 'messages_ref';

-- The messages of an attempt's result event: inline, or from the blob (a blob not there gives
-- none; the event keeps its name). messages_dropped (oldest left out when the conversation was
-- too large to carry and no blob store took it) shifts seq so positions stay the conversation's.
CREATE OR REPLACE FUNCTION lh_project_messages() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    msgs jsonb;
    base integer := coalesce((NEW.body->>'messages_dropped')::integer, 0);
BEGIN
    IF NEW.task_no IS NULL OR NEW.attempt IS NULL THEN
        RETURN NULL;
    END IF;
    IF NEW.body ? 'messages_ref' AND NEW.body->>'messages_ref' IS NOT NULL THEN
        SELECT convert_from(x.bytes, 'UTF8')::jsonb INTO msgs FROM blobs x
         WHERE x.sha256 = NEW.body->>'messages_ref';
    ELSE
        msgs := NEW.body->'messages';
    END IF;
    IF msgs IS NULL OR jsonb_typeof(msgs) <> 'array' THEN
        RETURN NULL;
    END IF;
    INSERT INTO messages (plan_id, task_no, attempt, seq, role, content, tool_calls,
                          tool_call_id, event_id, ts)
    SELECT NEW.plan_id, NEW.task_no, NEW.attempt, base + (m.ord - 1)::integer,
           CASE WHEN m.v->>'role' IN ('system', 'user', 'assistant', 'tool')
                THEN m.v->>'role' ELSE 'user' END,
           m.v->>'content',
           CASE WHEN jsonb_typeof(m.v->'tool_calls') = 'array' THEN m.v->'tool_calls' END,
           m.v->>'tool_call_id', NEW.id, NEW.ts
      FROM jsonb_array_elements(msgs) WITH ORDINALITY AS m(v, ord)
     WHERE jsonb_typeof(m.v) = 'object'
    ON CONFLICT (plan_id, task_no, attempt, seq) DO NOTHING;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS events_messages ON events;
CREATE TRIGGER events_messages AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type IN ('attempt.succeeded', 'attempt.failed')
          AND (NEW.body ? 'messages' OR NEW.body ? 'messages_ref'))
    EXECUTE FUNCTION lh_project_messages();
