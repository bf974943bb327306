/* memory.h — agent memories in PostgreSQL with hybrid retrieval (DESIGN.md §5, sql/0005).
 *
 * A memory is one short text of a kind (episodic, semantic, procedural) in a scope: one plan, a
 * tenant, or global. Writes refuse exact duplicates (same content in the same tenant, scope and
 * plan) and near duplicates (cosine of the hashing embedding, common/embed.h, at or above a
 * threshold against the nearest live memory of the same tenant, scope and plan): both return
 * LH_ERR_CONFLICT with the existing id in *ret_id and in the message, so the caller can reconcile
 * (supersede, or keep the old one). Searches see the global memories, the tenant's, and the given
 * plan's; superseded memories are never returned. Every result cites its memory id. */
#ifndef LH_MEMORY_H
#define LH_MEMORY_H

#include <stdint.h>

#include <jansson.h>

#include "embedder.h"
#include "err.h"
#include "ids.h"
#include "pg.h"

typedef enum lh_memory_scope {
	LH_MEMORY_PLAN,
	LH_MEMORY_TENANT,
	LH_MEMORY_GLOBAL
} lh_memory_scope_t;

typedef enum lh_memory_kind {
	LH_MEMORY_EPISODIC,
	LH_MEMORY_SEMANTIC,
	LH_MEMORY_PROCEDURAL
} lh_memory_kind_t;

typedef enum lh_memory_mode {
	LH_MEMORY_FULLTEXT, /* websearch_to_tsquery (terms OR-ed) ranked by ts_rank_cd */
	LH_MEMORY_VECTOR,   /* dot product of the hashing embeddings */
	LH_MEMORY_HYBRID    /* reciprocal rank fusion of the two: sum 1 / (60 + rank) */
} lh_memory_mode_t;

/* Default near-duplicate threshold (cosine). With the hashing embedder, two facts of one template
 * that differ only in a name reach 0.89 (the fixture's worst pair), so the threshold sits above:
 * it catches the same sentence with other case, punctuation or stop words (1.0) and one word
 * added to a long sentence (0.94), not a word replaced (0.87-0.91). Reconciliation by a model
 * (DESIGN.md section 5) is what catches rewordings. */
#define LH_MEMORY_NEAR_DUP 0.92

/* All strings borrowed for the call. plan_id is dashed UUID text, required for LH_MEMORY_PLAN and
 * NULL otherwise; source_event (32 hex or dashed, may be NULL); task_no / attempt < 0 = none. */
typedef struct lh_memory {
	const char *tenant;
	lh_memory_scope_t scope;
	const char *plan_id;
	lh_memory_kind_t kind;
	const char *content;
	const char *source_event;
	int task_no;
	int attempt;
	lh_embedder_t *embedder; /* borrowed; NULL = the hashing embedder (embed.h) */
} lh_memory_t;

/* Store m, its vector from m->embedder (searches rank by vector only the memories of the same
 * embedder, see lh_memory_search_with). near_dup is the cosine threshold (<= 0: LH_MEMORY_NEAR_DUP; > 1: no near check). On
 * success *ret_id is the new id; on LH_ERR_CONFLICT it is the id of the memory that m duplicates.
 * Runs in its own transaction (do not call inside one). */
lh_err_t lh_memory_write(lh_pg_t *pg, const lh_memory_t *m, double near_dup, int64_t *ret_id,
			 lh_error_t *err);

/* Mark memory old_id replaced by new_id; LH_ERR_NOT_FOUND when old_id is not live. */
lh_err_t lh_memory_supersede(lh_pg_t *pg, int64_t old_id, int64_t new_id, lh_error_t *err);

typedef struct lh_memory_hit {
	int64_t id;
	double score; /* ts_rank_cd, cosine, or the fused RRF score, by mode */
	char *content; /* owned by the hit array */
} lh_memory_hit_t;

/* The k best memories for query visible to tenant (and plan_id, may be NULL), best first.
 * *ret_hits is new (free with lh_memory_hits_free), *ret_n <= k; no match is success with 0. */
lh_err_t lh_memory_search(lh_pg_t *pg, const char *tenant, const char *plan_id, const char *query,
			  int k, lh_memory_mode_t mode, lh_memory_hit_t **ret_hits, int *ret_n,
			  lh_error_t *err);
void lh_memory_hits_free(lh_memory_hit_t *hits, int n);
/* lh_memory_search with the query embedded by emb (NULL = hashing): the vector ranking sees only
 * memories written with the same embedder. Both block while emb asks its endpoint. */
lh_err_t lh_memory_search_with(lh_pg_t *pg, lh_embedder_t *emb, const char *tenant,
			       const char *plan_id, const char *query, int k, lh_memory_mode_t mode,
			       lh_memory_hit_t **ret_hits, int *ret_n, lh_error_t *err);

/* Forget memory id of tenant (the memory_forget tool, lhctl memory forget, the REST API): the row
 * is kept with forgotten_at and reason (may be NULL), searches and duplicate checks skip it.
 * LH_ERR_NOT_FOUND when tenant has no live memory id (another tenant's, a global one, already
 * superseded or forgotten): global memories are not forgotten by a tenant. */
lh_err_t lh_memory_forget(lh_pg_t *pg, const char *tenant, int64_t id, const char *reason,
			  lh_error_t *err);

/* The n memories ids (of tenant) were put into a context: use_count + 1 each, success_count + 1
 * too when succeeded (the task they served succeeded: procedural memories' strategy score).
 * *ret_updated (may be NULL) counts the rows changed (ids of other tenants are skipped). */
lh_err_t lh_memory_used(lh_pg_t *pg, const char *tenant, const int64_t *ids, int n, bool succeeded,
			int *ret_updated, lh_error_t *err);

typedef struct lh_memory_consolidation {
	int merged;	    /* near duplicates superseded by their older twin */
	int pruned;	    /* episodic memories forgotten as expired */
	int64_t next_after; /* pass as after_id next time: memories up to it were examined */
} lh_memory_consolidation_t;

/* The `consolidate` task's work for tenant, when the system is idle: every live memory newer than
 * after_id (at most limit of them, oldest first) whose nearest older live memory of the same
 * scope, plan and embedder reaches near_dup (<= 0: 0.92, the hashing threshold) is superseded by
 * it (kept, linked: the older one has the history); episodic memories older than
 * episodic_ttl_s (<= 0: never) that no context ever used are forgotten. Idempotent. */
lh_err_t lh_memory_consolidate(lh_pg_t *pg, const char *tenant, int64_t after_id, int limit,
			       double near_dup, double episodic_ttl_s,
			       lh_memory_consolidation_t *ret, lh_error_t *err);

/* Memory id as JSON, visible to tenant (its own or a global one), live or not: {"id", "tenant",
 * "scope", "plan_id", "kind", "content", "embedder", "source_event", "task_no", "attempt",
 * "use_count", "success_count", "superseded_by", "forgotten_at", "forget_reason", "created_at",
 * "updated_at"} (absent values null). *ret_json is new. LH_ERR_NOT_FOUND when not visible. */
lh_err_t lh_memory_get_json(lh_pg_t *pg, const char *tenant, int64_t id, json_t **ret_json,
			    lh_error_t *err);
/* A search's hits as a JSON array [{"id": N, "score": X, "content": "..."}]. New reference. */
json_t *lh_memory_hits_json(const lh_memory_hit_t *hits, int n);

/* The websearch_to_tsquery text used for query: its alphanumeric words joined by " or " (a
 * question rarely holds every word of the fact that answers it). New; NULL on out-of-memory. */
char *lh_memory_fulltext_query(const char *query);

/* The envelope plan id under which a tenant's memory changes travel on lh.events (memory.written,
 * sql/0010_memory_log.sql): derived from the tenant's name alone, so one tenant's changes keep
 * their order on one partition. It names no plan; the coordinator's fold ignores these events. */
lh_id_t lh_memory_stream_id(const char *tenant);

#endif
