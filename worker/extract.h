/* extract.h — the "extract" step of extract-then-reconcile (DESIGN.md §5, docs/memory.md):
 * after an act task succeeds, a cheap model is asked which facts of the task's instructions and
 * output are worth remembering. This module holds the pure parts: the extraction prompt (the
 * source bounded), the strict parser of the model's answer, and the extract order's event id.
 * The facts then go through common/reconcile.h (filter, nearest memories, ADD / UPDATE / DELETE /
 * NONE). No I/O here. */
#ifndef LH_WORKER_EXTRACT_H
#define LH_WORKER_EXTRACT_H

#include <stddef.h>

#include "err.h"
#include "ids.h"

#define LH_EXTRACT_MAX_FACTS 16	     /* facts one extraction may propose */
#define LH_EXTRACT_MAX_FACT 4000     /* bytes of one fact (LH_MEMTOOLS_MAX_CONTENT) */
#define LH_EXTRACT_MAX_SOURCE 16384  /* bytes of instructions, and of output, shown to the model */

/* The system prompt of an extraction call (static). */
extern const char LH_EXTRACT_SYSTEM[];

/* The user message of an extraction call: the task's instructions and its output, each cut to
 * max_bytes (<= 0: LH_EXTRACT_MAX_SOURCE) at a UTF-8 character boundary with a "[cut]" mark.
 * instructions and output may be NULL. New (free()); NULL only on out-of-memory. */
char *lh_extract_prompt(const char *instructions, const char *output, long max_bytes);

/* Parse the model's answer (len bytes; a ```json fence around it is tolerated): exactly
 * {"facts": ["...", ...]} — an object with only "facts", an array of at most
 * LH_EXTRACT_MAX_FACTS strings, each non-empty after trimming white space, at most
 * LH_EXTRACT_MAX_FACT bytes and without NUL bytes. An empty array is valid (nothing worth
 * remembering). Refused: LH_ERR_DECODE with a message, *ret_facts and *ret_n untouched. On
 * success *ret_facts is a new array of *ret_n new, trimmed strings (NULL when 0); free with
 * lh_extract_facts_free. Pure; fuzzed by tests/fuzz/fuzz_extract.c. */
lh_err_t lh_extract_parse(const char *text, size_t len, char ***ret_facts, size_t *ret_n,
			  lh_error_t *err);
void lh_extract_facts_free(char **facts, size_t n);

/* The event id of the extract order for a plan's (task_no, attempt): the same for every
 * re-delivery of that attempt's success, so a retried publication is dropped as a duplicate. */
lh_id_t lh_extract_order_id(const lh_id_t *plan_id, long long task_no, long long attempt);

#endif
