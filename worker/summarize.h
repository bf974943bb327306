/* summarize.h — the writer of a plan's anchored rolling summary (DESIGN.md §5, docs/memory.md
 * "Rolling summary"), modelled on extract orders (extract.h).
 *
 * When the broker acknowledges an act attempt's attempt.succeeded, the worker sends a task.order
 * of kind "summarize" (inputs {"subject": ""}; a worker-to-worker order the coordinator never
 * sees) to the summarize tier. The worker that takes it, on the memory tools' thread: loads the
 * plan's latest summary (none: intent = the goal, anchor 0), reads the plan's materialized events
 * at offsets >= anchor (PostgreSQL `events`; one plan's events are all in one lh.events
 * partition, so the offset is the plan's sequence), bounded in count and bytes, and renders the
 * relevant ones (task outputs, failures, questions and answers, approvals, decisions, plan
 * revisions) as the span text. One model call (LH_SUMMARIZE_SYSTEM) describes the span as
 * {"play_by_play", "artifacts", "breadcrumbs", "open_questions"} (lh_summarize_parse, strict,
 * fuzzed); lh_summary_merge folds it in (the raw span text is scanned for artifacts too) and
 * lh_summary_store writes it over the version loaded: LH_ERR_CONFLICT means another writer won,
 * and the job starts over from the new version (bounded), so no span is summarized twice.
 *
 * Parts: the pure half (summarize_parse.c: system prompt, user prompt, answer parser, order id,
 * event rendering) and the orders and database half (summarize.c). */
#ifndef LH_WORKER_SUMMARIZE_H
#define LH_WORKER_SUMMARIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"
#include "embedder.h"
#include "err.h"
#include "event.h"
#include "followup.h"
#include "ids.h"
#include "pg.h"
#include "llm.h"
#include "summary.h"

#define LH_SUMMARIZE_MAX_SECTION 16384	/* bytes of one text section in the model's answer */
#define LH_SUMMARIZE_MAX_ARTIFACTS 200	/* artifacts one answer may list */
#define LH_SUMMARIZE_MAX_ARTIFACT 1024	/* bytes of one artifact (one line) */
#define LH_SUMMARIZE_MAX_EVENT_TEXT 8192 /* bytes of one event's text shown to the model */
#define LH_SUMMARIZE_MAX_CONTEXT 4096	/* bytes of the intent, and of the open questions, shown */
#define LH_SUMMARIZE_MAX_KEPT 65536	/* bytes of play-by-play, and of breadcrumbs, a version keeps */

/* The system prompt of a summarize call (static). */
extern const char LH_SUMMARIZE_SYSTEM[];
/* The system prompt of a call that folds a long attempt's dropped messages (static). */
extern const char LH_SUMMARIZE_ATTEMPT_SYSTEM[];

/* ---- pure half (summarize_parse.c) --------------------------------------------------------- */

/* A parsed answer: every string owned, trimmed; "" when the model left a section empty.
 * artifacts holds the items one a line (what lh_summary_merge's artifact section takes). */
typedef struct lh_summarize_answer {
	char *play_by_play;
	char *artifacts;
	size_t n_artifacts;
	char *breadcrumbs;
	char *open_questions;
} lh_summarize_answer_t;

/* Parse the model's answer (len bytes; a ```json fence around it is tolerated): exactly
 * {"play_by_play": string, "artifacts": [string, ...], "breadcrumbs": string,
 *  "open_questions": string} — all four keys, no other. Each text at most
 * LH_SUMMARIZE_MAX_SECTION bytes, at most LH_SUMMARIZE_MAX_ARTIFACTS artifacts, each non-empty
 * after trimming, one line, at most LH_SUMMARIZE_MAX_ARTIFACT bytes; no NUL bytes anywhere.
 * play_by_play must not be empty (the span happened). Refused: LH_ERR_DECODE with a message,
 * *ret untouched. On success *ret is initialized (free with lh_summarize_answer_finish). Pure;
 * fuzzed by tests/fuzz/fuzz_summarize.c. */
lh_err_t lh_summarize_parse(const char *text, size_t len, lh_summarize_answer_t *ret,
			    lh_error_t *err);
void lh_summarize_answer_finish(lh_summarize_answer_t *a);

/* The sections array lh_summary_merge takes, pointing into a (borrowed; no intent). */
void lh_summarize_answer_sections(const lh_summarize_answer_t *a,
				  const char *ret_sections[LH_SUMMARY__COUNT]);

/* The user message of a summarize call: the summary's intent and open questions (each cut to
 * LH_SUMMARIZE_MAX_CONTEXT at a UTF-8 boundary), then the span [from, to) and its text (cut to
 * max_bytes). s and span_text borrowed (span_text may be NULL). New (free()). */
char *lh_summarize_prompt(const lh_summary_t *s, int64_t from, int64_t to, const char *span_text,
			  size_t max_bytes);

/* ---- per-attempt summaries (subject "TASK/ATTEMPT") ----------------------------------------- */

/* Messages [from, to) of an attempt as text, one "[i] role: content" block each (tool calls as
 * "-> name(arguments)", a tool result as "[i] tool result: ..."), each block cut to max_each
 * bytes (0: whole) at a UTF-8 boundary. At least one message; then only while the text stays
 * within max_bytes; *ret_to is where it stopped (> from unless from >= to). New (free()). */
char *lh_summarize_messages_text(const lh_llm_message_t *msgs, size_t from, size_t to,
				 size_t max_each, size_t max_bytes, size_t *ret_to);
/* The user message of an attempt-summary call: the task (the summary's intent), the open
 * questions so far, then "New messages of this attempt (FROM to TO-1):" and text (cut to
 * max_bytes). New (free()). */
char *lh_summarize_attempt_prompt(const lh_summary_t *s, size_t from, size_t to, const char *text,
				  size_t max_bytes);
/* The context's summary: the plan's (may be NULL) with the attempt's (borrowed) folded in, in
 * *ret (initialized here): play-by-play and breadcrumbs appended under "This attempt so far:",
 * artifacts added, the attempt's open questions when it has any. */
void lh_summarize_combine(const lh_summary_t *plan, const lh_summary_t *attempt,
			  lh_summary_t *ret);

/* Keep the newest max bytes of *text (owned, may be NULL), from its first whole paragraph in
 * them (else from a UTF-8 character start), after a mark saying the rest is in older versions.
 * Text of at most max bytes is left alone. */
void lh_summarize_keep_tail(char **text, size_t max);

/* The event id of the summarize order sent after a plan's (task_no, attempt) succeeded: the same
 * for every re-delivery of that success, so a repeated publication is dropped as a duplicate
 * (and differs from the extract order's id). */
lh_id_t lh_summarize_order_id(const lh_id_t *plan_id, long long task_no, long long attempt);

/* One materialized event as the model sees it (appended to out, ending in '\n'): nothing when
 * the type is not relevant, nor for a plan's or replan's success (plan.created / plan.revised
 * show its tasks); otherwise "[offset] " and a line or two: a task's output (string
 * as is, other JSON compact), a failure's class and message, a question, an answer, a decision's
 * kind and reasoning, a plan version's reason and tasks. body is the event's JSON body (borrowed;
 * blob refs already resolved), kind and instructions the task's (may be NULL). Each rendered
 * event is cut to max_event bytes (0: no cut) at a UTF-8 boundary. Returns whether it appended. */
bool lh_summarize_render_event(lh_buf_t *out, int64_t offset, const char *type, int64_t task_no,
			       int64_t attempt, const json_t *body, const char *kind,
			       const char *instructions, size_t max_event);
/* Whether events of this type go into a span (the SQL filter passes this list). */
bool lh_summarize_relevant(const char *type);
/* The relevant types as a PostgreSQL text[] literal ("{attempt.succeeded,...}"); static. */
const char *lh_summarize_relevant_types(void);

/* ---- summarize orders, from the source attempt to the summarize tier (summarize.c) --------- */

/* Add the rolling-summary order of a succeeded act attempt (order, borrowed) to chain
 * (followup.h): kind "summarize", id lh_summarize_order_id, inputs {"subject": ""}. Returns the
 * chain's head. */
lh_followup_t *lh_summarize_followup(lh_followup_t *chain, const lh_event_t *order,
				     const char *tier, const char *topic);

/* Whether a task.order is a rolling-summary order (kind "summarize" with inputs.subject a
 * string), not a plan's own summarize task (which the coordinator dispatches like any task). */
bool lh_summarize_is_order(const lh_event_t *order);

/* ---- a summarize order's work, on the worker that took it ---------------------------------- */

typedef struct lh_summarize_limits {
	int64_t max_events; /* relevant events one span may hold */
	int64_t max_bytes;  /* bytes of the span's text (at least one event, cut to this) */
	int64_t min_events; /* fewer relevant events than this since the anchor: nothing to do */
} lh_summarize_limits_t;

typedef enum lh_summarize_state {
	LH_SUMMARIZE_NOTHING = 0, /* no (or too few) new relevant events: done */
	LH_SUMMARIZE_WAIT,	  /* the source event is not materialized yet: try again later */
	LH_SUMMARIZE_CALL,	  /* a span to summarize: make the model call */
	LH_SUMMARIZE_STORED,	  /* merged and stored */
	LH_SUMMARIZE_CONFLICT,	  /* another writer stored first: start over from the new version */
} lh_summarize_state_t;

typedef struct lh_summarize_job lh_summarize_job_t;
/* From the order (borrowed for the call). owner: the worker's attempt. */
lh_summarize_job_t *lh_summarize_job_new(const lh_event_t *order,
					 const lh_summarize_limits_t *limits, void *owner);
void *lh_summarize_job_owner(const lh_summarize_job_t *j);
void lh_summarize_job_free(lh_summarize_job_t *j);
/* Let the next load proceed without the source event in `events` (the wait is over). */
void lh_summarize_job_stop_waiting(lh_summarize_job_t *j);

/* lh_memtools_fn: load the summary and the span (state NOTHING, WAIT or CALL). Safe to repeat. */
lh_err_t lh_summarize_job_load(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);
lh_summarize_state_t lh_summarize_job_state(const lh_summarize_job_t *j);
/* After a load in state CALL: the call's user message (new). */
char *lh_summarize_job_prompt(const lh_summarize_job_t *j);
/* The model's answer: parse and merge (LH_ERR_DECODE when refused; then nothing is stored).
 * The merged play-by-play and breadcrumbs keep their newest LH_SUMMARIZE_MAX_KEPT bytes (from a
 * paragraph start, marked), so a weeks-long plan's versions stay bounded; the artifact trail is
 * never cut, and the older text stays in the older versions. */
lh_err_t lh_summarize_job_answer(lh_summarize_job_t *j, const char *answer, lh_error_t *err);
/* lh_memtools_fn: store the merged summary over the loaded version (state STORED or
 * CONFLICT). */
lh_err_t lh_summarize_job_store(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);
/* After a store (state STORED): the summary as stored (borrowed until the job is freed). */
const lh_summary_t *lh_summarize_job_summary(const lh_summarize_job_t *j);
/* The summary.updated event announcing a stored version (state STORED): id derived from (plan,
 * version), so a repeat is dropped by id; task_no and attempt of the order, causation the order.
 * Its strings point into order and j (emit before freeing either). */
void lh_summarize_job_event(const lh_summarize_job_t *j, const lh_event_t *order,
			    const char *worker_id, lh_event_t *ret, lh_summary_updated_t *ret_body);
/* Storing an attempt's summary on the memory tools' thread, detached from the attempt: the job
 * owns a copy of s. lh_summarize_store_job_run is an lh_memtools_fn; the done callback frees the
 * job with lh_summarize_store_job_free after reading the outcome. */
typedef struct lh_summarize_store_job {
	char plan[LH_UUID_STR_LEN + 1];
	char subject[64];
	lh_summary_t s;
	int expected; /* the version s was merged over (0: first) */
	int stored;   /* set by run on success */
	void *owner;  /* for the callback (not dereferenced here) */
} lh_summarize_store_job_t;
lh_summarize_store_job_t *lh_summarize_store_job_new(const lh_id_t *plan, const char *subject,
						     const lh_summary_t *s, int expected);
lh_err_t lh_summarize_store_job_run(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);
void lh_summarize_store_job_free(lh_summarize_store_job_t *j);

/* What the job did: the span [from, to), its relevant events, the version stored (0: none). */
void lh_summarize_job_span(const lh_summarize_job_t *j, int64_t *ret_from, int64_t *ret_to,
			   int64_t *ret_events, int *ret_version);

#endif
