/* consolidate.h — a `consolidate` order's work (docs/memory.md, "Consolidation when idle").
 *
 * The coordinator sends one per idle plan at most once per memory.consolidate_interval_s
 * (coordinator/consolidate.h). The worker makes no model call and publishes no attempt event:
 * on the memory tools' thread (lh_memtools_run, never on the loop) it runs lh_memory_consolidate
 * for the order's tenant — near duplicates superseded by their older twin, episodic memories
 * older than memory.episodic_ttl_s that no context ever used forgotten — and commits the order's
 * offset when that is done. The work is idempotent: a duplicate order (same id) is dropped by the
 * worker's id ring, and one that reaches another worker finds nothing left to merge or prune. */
#ifndef LH_WORKER_CONSOLIDATE_H
#define LH_WORKER_CONSOLIDATE_H

#include "embedder.h"
#include "event.h"
#include "memory.h"
#include "pg.h"

typedef struct lh_consolidate_job lh_consolidate_job_t;

/* new: the work of order (borrowed; its tenant is copied, "default" when absent) for owner.
 * limit: most memories examined for near duplicates (> 0); episodic_ttl_s: the age past which
 * never-used episodic memories are forgotten (<= 0: never). */
lh_consolidate_job_t *lh_consolidate_job_new(const lh_event_t *order, int limit,
					     double episodic_ttl_s, void *owner);
void lh_consolidate_job_free(lh_consolidate_job_t *job); /* accepts NULL */
void *lh_consolidate_job_owner(const lh_consolidate_job_t *job);
const char *lh_consolidate_job_tenant(const lh_consolidate_job_t *job); /* borrowed */
/* The counts of the run (zero before it ran). */
lh_memory_consolidation_t lh_consolidate_job_result(const lh_consolidate_job_t *job);

/* lh_memtools_fn: run it (safe to repeat: lh_memory_consolidate is idempotent). */
lh_err_t lh_consolidate_job_run(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);

/* ---- use and success counts (lh_memory_used) ---------------------------------------------
 * The memories recalled into an act attempt's context (context.memories) were used: when the
 * attempt ends (succeeded or failed), their use_count grows by one, and their success_count too
 * when it succeeded — the procedural memories' strategy score, and what tells a used episodic
 * memory from an expired one. Run once per attempt end on the memory tools' thread. */
typedef struct lh_memuse_job lh_memuse_job_t;

/* new: tenant (NULL: "default") and the n ids (n <= LH_MEMUSE_MAX) are copied. */
#define LH_MEMUSE_MAX 64
lh_memuse_job_t *lh_memuse_job_new(const char *tenant, const int64_t *ids, int n, bool succeeded);
void lh_memuse_job_free(lh_memuse_job_t *job); /* accepts NULL */
/* lh_memtools_fn: count the use. Not idempotent (a repeat counts again): lh_memtools_run repeats
 * it only after a connection error, when the update did not commit. */
lh_err_t lh_memuse_job_run(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err);
/* Rows changed by the run. */
int lh_memuse_job_updated(const lh_memuse_job_t *job);

#endif
