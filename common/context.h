/* context.h — token estimation and layered context assembly for one LLM call (DESIGN.md §5).
 *
 * Token estimates are byte counts divided by a per-family ratio, rounded up:
 *   "gpt" / "o1".."o9" / "openai" ... 4.0 bytes a token (English averages ~4 in tiktoken)
 *   "claude" / "anthropic" ........... 3.5 bytes a token (Claude's tokenizer is denser)
 *   anything else (NULL, local models) 3.0 bytes a token — conservative: over-estimating only
 *                                      wastes window, under-estimating overflows it
 * plus LH_CONTEXT_MSG_OVERHEAD tokens per message (role and framing). Code, JSON and non-Latin
 * text tokenize worse than English; lh_context_estimate_error lets a metric compare an estimate
 * with the provider's reported usage (not wired yet).
 *
 * Assembly builds [one system message, the attempt's recent messages...] in layers:
 *   system layer   identity and task instructions       (default budget 2,000 tokens)
 *   core layer     intent (goal, constraints), plan status, key decisions   (4,000)
 *   summary layer  the anchored rolling summary (common/summary.h)           (8,000)
 *   memory layer   retrieved memories, best first, whole items only          (4,000)
 *   verbatim       the attempt's messages, newest kept, oldest dropped first (the rest)
 * within window - reserve_output. The intent and the summary's artifact trail are never cut:
 * they are reserved first, and when they alone do not fit, assembly fails (LH_ERR_TOO_LARGE)
 * instead of sending a context without them. Other sections are truncated (system text and core
 * blocks keep their head; the play-by-play keeps its tail, the most recent events). A layer's
 * unused budget flows to the verbatim layer. The dropped verbatim messages are always the oldest
 * n_dropped: the span a `summarize` task must fold into the summary. */
#ifndef LH_CONTEXT_H
#define LH_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "err.h"
#include "llm.h"
#include "summary.h"

#define LH_CONTEXT_MSG_OVERHEAD 4

#define LH_CONTEXT_SYSTEM_BUDGET 2000
#define LH_CONTEXT_CORE_BUDGET 4000
#define LH_CONTEXT_SUMMARY_BUDGET 8000
#define LH_CONTEXT_MEMORY_BUDGET 4000

/* Estimated tokens of n bytes of text for a model family (NULL = the conservative default). */
long lh_context_estimate_bytes(const char *family, size_t n);
/* Estimated tokens of text (NULL = 0). */
long lh_context_estimate_tokens(const char *family, const char *text);
/* Estimated tokens of one message: content, tool call names and arguments, plus the overhead. */
long lh_context_message_tokens(const char *family, const lh_llm_message_t *msg);
/* (estimated - actual) / actual: > 0 over-estimates. 0 when actual <= 0. */
double lh_context_estimate_error(long estimated, long actual);

typedef struct lh_context_opts {
	const char *family;  /* model family for estimates; NULL = conservative default */
	long window;	     /* the model's context window in tokens */
	long reserve_output; /* tokens kept free for the answer */
	long system_budget;  /* 0 = the defaults above; < 0 = none for that layer */
	long core_budget;
	long summary_budget;
	long memory_budget;
} lh_context_opts_t;

/* Everything borrowed; any pointer may be NULL. */
typedef struct lh_context_inputs {
	const char *system;	 /* identity and task instructions */
	const char *goal;	 /* intent: always included */
	const char *constraints; /* intent: always included */
	const char *plan_status;
	const char *decisions;
	const lh_summary_t *summary;
	const char *const *memories; /* best first */
	size_t n_memories;
	const lh_llm_message_t *messages; /* the attempt's messages, oldest first */
	size_t n_messages;
} lh_context_inputs_t;

typedef struct lh_context_report {
	long budget;	  /* window - reserve_output */
	long tokens;	  /* estimated tokens of the assembled messages (<= budget) */
	long system_tokens, core_tokens, summary_tokens, memory_tokens, verbatim_tokens;
	size_t n_dropped; /* oldest verbatim messages left out: summarize messages[0, n_dropped) */
	size_t n_memories_dropped;
	bool system_truncated;
	bool core_truncated;	/* plan status or decisions cut */
	bool summary_truncated; /* play-by-play, breadcrumbs or open questions cut */
	bool newest_truncated;	/* the newest message alone did not fit and was cut */
} lh_context_report_t;

/* Assemble the messages for one call. On success *ret_messages (allocated in arena, with every
 * new text; message contents not cut are borrowed from inputs, so inputs must outlive the use)
 * holds *ret_n messages: the system message, then the kept verbatim messages in their order.
 * A kept suffix never starts with a tool result whose call was dropped. ret_report may be NULL.
 * Errors: LH_ERR_INVALID (no room at all: window <= reserve_output), LH_ERR_TOO_LARGE (intent
 * and artifact trail alone exceed the budget). */
lh_err_t lh_context_assemble(const lh_context_opts_t *opts, const lh_context_inputs_t *in,
			     lh_arena_t *arena, lh_llm_message_t **ret_messages, size_t *ret_n,
			     lh_context_report_t *ret_report, lh_error_t *err);

#endif
