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

#include <stdint.h>

#include "embedder.h"
#include "event.h"
#include "memory.h"
#include "pg.h"

typedef struct lh_consolidate_job lh_consolidate_job_t;

/* Where the last consolidation of each tenant stopped, so that the next examines the following
 * batch and a tenant with more live memories than a batch is covered in turns (at the end it
 * starts over). Kept by the worker process only: a restart starts from the beginning, and each
 * worker has its own (docs/memory.md). At most LH_CONSOLIDATE_CURSORS tenants, keyed by a hash
 * of the name; when full the oldest entry is replaced. The caller owns it (zeroed = empty). */
#define LH_CONSOLIDATE_CURSORS 256
typedef struct lh_consolidate_cursors {
	struct {
		uint64_t key;
		int64_t after;
	} e[LH_CONSOLIDATE_CURSORS];
	int n, next; /* entries used; the one replaced next when full */
} lh_consolidate_cursors_t;
/* The memory id tenant's next consolidation starts after (0: the beginning). */
int64_t lh_consolidate_cursor_get(const lh_consolidate_cursors_t *c, const char *tenant);
void lh_consolidate_cursor_put(lh_consolidate_cursors_t *c, const char *tenant, int64_t after);

/* new: the work of order (borrowed; its tenant is copied, "default" when absent) for owner,
 * starting after memory id after_id (a cursor). limit: most memories examined for near
 * duplicates (> 0); episodic_ttl_s: the age past which never-used episodic memories are
 * forgotten (<= 0: never). A run that finds nothing after after_id starts over from the
 * beginning at once; the result's next_after is where the next one should start. */
lh_consolidate_job_t *lh_consolidate_job_new(const lh_event_t *order, int64_t after_id, int limit,
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
