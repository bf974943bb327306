/* memtools.h — the agents' memory tools over PostgreSQL (common/memory.h):
 *   memory_search {query, k?}            hybrid search of what the attempt may see (global, its
 *                                       tenant's, its plan's); results cite memory ids
 *   memory_write  {content, kind?, scope?} store a fact (kind episodic|semantic|procedural,
 *                                       default semantic; scope plan (default) | tenant |
 *                                       global, global only when allowed); a duplicate answers
 *                                       with the id it duplicates
 *   memory_forget {id, reason?}          mark a memory the attempt may see forgotten (kept,
 *                                       skipped by searches): its tenant's or its own plan's,
 *                                       never a global one nor another plan's
 *
 * Threads: libpq calls block, so they run on one thread of this module with its own
 * connection (reconnected after a failure), never on the worker's loop. Calls are queued to
 * it; each result comes back to the loop through a pipe watched by libevent, and the done
 * callback runs there. Arguments are checked on the loop before anything is queued. One
 * lh_memtools_t per loop; not thread-safe otherwise. */
#ifndef LH_WORKER_MEMTOOLS_H
#define LH_WORKER_MEMTOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "llm.h"
#include "tools.h"

#define LH_MEMTOOLS_N 3
#define LH_MEMTOOLS_MAX_K 20
#define LH_MEMTOOLS_MAX_CONTENT 4000 /* bytes of one memory */

struct event_base;
typedef struct lh_memtools lh_memtools_t;

/* What a call may touch: the attempt's tenant, plan (dashed UUID text) and provenance. All
 * borrowed for the call (copied when queued). */
typedef struct lh_memtool_ctx {
	const char *tenant;
	const char *plan_id;
	const char *source_event; /* the work order's id, 32 hex; may be NULL */
	int task_no;
	int attempt;
} lh_memtool_ctx_t;

/* The three tool definitions; parameter schemas are new references in *ret_params (free with
 * lh_memtools_defs_finish). */
void lh_memtools_defs(lh_llm_tool_t ret_defs[LH_MEMTOOLS_N], json_t *ret_params[LH_MEMTOOLS_N]);
void lh_memtools_defs_finish(json_t *params[LH_MEMTOOLS_N]);
/* True for "memory_search", "memory_write" and "memory_forget". */
bool lh_memtools_is(const char *name);

struct lh_common_cfg;
/* new: starts the thread (which connects lazily, on its first call). base and pg_url are
 * borrowed / copied. allow_global: memory_write may use scope "global". common: the
 * memory.embed_* settings choose the embedder (NULL or no url: the hashing embedder); a bad
 * embedder configuration is an error here, at start-up. */
lh_memtools_t *lh_memtools_new(struct event_base *base, const char *pg_url, bool allow_global,
			       const struct lh_common_cfg *common, lh_error_t *err);
/* Stops the thread (a call it is running finishes first); calls still queued or whose results
 * have not been delivered are dropped without their callbacks. Accepts NULL; returns NULL. */
lh_memtools_t *lh_memtools_free(lh_memtools_t *mt);

/* Start tool `name` with args (borrowed). LH_OK: cb runs once, later, on the loop, with the
 * result text (steals it). Bad arguments or scope: an error is returned, cb never runs, and
 * *ret_result (new) is the {error} the model sees. */
lh_err_t lh_memtools_call(lh_memtools_t *mt, const char *name, const json_t *args,
			  const lh_memtool_ctx_t *ctx, lh_tool_done_cb cb, void *opaque,
			  char **ret_result, lh_error_t *err);

struct lh_pg;
struct lh_embedder;
/* Database work of another module (worker/extract.c) on this module's thread and connection:
 * fn(pg, emb, arg, err) runs there, with the memory.embed_* embedder; a connection error
 * (LH_ERR_PG, LH_ERR_UNAVAILABLE, LH_ERR_IO) runs it once more on a new connection, so fn must
 * be safe to repeat. done(rc, err, arg) runs once, later, on the loop — also when the module is
 * freed before delivering it (from lh_memtools_free: fn's result when it ran, else
 * LH_ERR_UNAVAILABLE), so done may free arg. */
typedef lh_err_t (*lh_memtools_fn)(struct lh_pg *pg, struct lh_embedder *emb, void *arg,
				   lh_error_t *err);
typedef void (*lh_memtools_fn_done)(lh_err_t rc, const lh_error_t *err, void *arg);
void lh_memtools_run(lh_memtools_t *mt, lh_memtools_fn fn, lh_memtools_fn_done done, void *arg);

#endif
