/* extract.h — the "extract" step of extract-then-reconcile (DESIGN.md §5, docs/memory.md):
 * after an act task succeeds, a cheap model is asked which facts of the task's instructions and
 * output are worth remembering. This module holds the pure parts: the extraction prompt (the
 * source bounded), the strict parser of the model's answer, and the extract order's event id.
 * The facts then go through common/reconcile.h (filter, nearest memories, ADD / UPDATE / DELETE /
 * NONE). No I/O here. */
#ifndef LH_WORKER_EXTRACT_H
#define LH_WORKER_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "embedder.h"
#include "followup.h"
#include "err.h"
#include "ids.h"
#include "memory.h"
#include "pg.h"
#include "reconcile.h"
#include "event.h"

#define LH_EXTRACT_MAX_FACTS 16	     /* facts one extraction may propose */
#define LH_EXTRACT_MAX_FACT 4000     /* bytes of one fact (LH_MEMTOOLS_MAX_CONTENT) */
#define LH_EXTRACT_MAX_SOURCE 16384  /* bytes of instructions, and of output, shown to the model */
#define LH_EXTRACT_MAX_NEAREST 20    /* memories shown to the reconcile call (M1..M20) */

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

/* ---- database half: runs on the memory tools' thread (memtools.h, lh_memtools_run) ---------- */

/* The memories shown to the reconcile call as M1..Mn: for each fact in turn its k nearest live
 * memories visible to tenant and plan_id (hybrid search with emb, NULL = hashing), each memory
 * once, at most LH_EXTRACT_MAX_NEAREST in all. */
typedef struct lh_extract_nearest {
	int64_t ids[LH_EXTRACT_MAX_NEAREST];
	char *contents[LH_EXTRACT_MAX_NEAREST]; /* owned */
	size_t n;
} lh_extract_nearest_t;

lh_err_t lh_extract_nearest(lh_pg_t *pg, lh_embedder_t *emb, const char *tenant,
			    const char *plan_id, const char *const *facts, size_t n_facts, int k,
			    lh_extract_nearest_t *ret, lh_error_t *err);
void lh_extract_nearest_finish(lh_extract_nearest_t *nn);

/* The reconcile model's answer (len bytes) for facts[0..n_facts) against nn, parsed
 * (lh_reconcile_parse) and applied (lh_reconcile_apply) with tmpl's tenant, scope, kind and
 * provenance. ret_outcomes[n_facts] may be NULL. A refused answer is LH_ERR_DECODE and writes
 * nothing; applying one answer twice writes nothing the second time. */
lh_err_t lh_extract_apply(lh_pg_t *pg, const lh_memory_t *tmpl, const char *const *facts,
			  size_t n_facts, const lh_extract_nearest_t *nn, const char *answer,
			  size_t len, lh_reconcile_outcome_t *ret_outcomes, lh_error_t *err);

/* ---- the extract order, from the source attempt to the cheap tier's worker ----------------- */

/* Add the extract order of a succeeded act attempt (order, borrowed) to chain (followup.h): kind
 * "extract", id lh_extract_order_id, inputs {output (a string output as it is, anything else as
 * its JSON text), system (the source's system prompt), recalled (the memories recalled into its
 * context)}: what the extraction must not re-ingest. Returns the chain's head. */
lh_followup_t *lh_extract_followup(lh_followup_t *chain, const lh_event_t *order,
				   const char *tier, const char *topic, const char *system,
				   const char *const *recalled, size_t n_recalled,
				   const json_t *output);

/* ---- an extract order's work, on the worker that took it --------------------------------- */

typedef struct lh_extract_job lh_extract_job_t;
/* From the order (borrowed for the call): provenance (tenant, source event = the order's
 * causation, task_no, attempt), the memory template (tenant scope, semantic). */
lh_extract_job_t *lh_extract_job_new(const lh_event_t *order, void *owner);
/* The owner given to lh_extract_job_new (the worker's attempt): the memtools callbacks get the
 * job, and find their attempt here. */
void *lh_extract_job_owner(const lh_extract_job_t *j);
void lh_extract_job_free(lh_extract_job_t *j);
/* The extraction call's user message (new). */
char *lh_extract_job_prompt(const lh_event_t *order);
/* The extraction answer: parse and filter (the order's system prompt and recalled memories are
 * never re-ingested). Returns the facts kept (0: nothing to reconcile); LH_ERR_DECODE sets err
 * and returns -1. */
long lh_extract_job_facts(lh_extract_job_t *j, const lh_event_t *order, const char *answer,
			  lh_error_t *err);
/* lh_memtools_fn: the nearest live memories of the kept facts. */
lh_err_t lh_extract_job_nearest(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);
/* The reconcile call's user message (new), once the nearest memories are in. */
char *lh_extract_job_reconcile_prompt(const lh_extract_job_t *j);
void lh_extract_job_set_answer(lh_extract_job_t *j, const char *answer);
/* lh_memtools_fn: parse and apply the reconcile answer. */
lh_err_t lh_extract_job_apply(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);
/* lh_memtools_fn: consolidate the job's tenant (lh_memory_consolidate: near duplicates among its
 * up to 1,000 oldest live memories superseded by their older twin; nothing pruned). */
lh_err_t lh_extract_job_consolidate(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);
/* What the consolidation merged (0 before it ran). */
int lh_extract_job_merged(const lh_extract_job_t *j);
/* After apply: counts of the outcomes (written, superseded, duplicates, none). */
void lh_extract_job_counts(const lh_extract_job_t *j, int *ret_written, int *ret_superseded,
			   int *ret_duplicates, int *ret_none);

#endif
