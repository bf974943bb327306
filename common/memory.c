/* memory.c — memories in PostgreSQL: dedup-checked writes, full-text / vector / hybrid search. */
#include "memory.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "embed.h"
#include "ids.h"

/* Candidates each ranking contributes to the fusion, at least: deeper than k so a row ranked
 * just below k by one side and well by the other still surfaces. */
#define MEMORY_FUSE_DEPTH 50

static const char *memory_scope_name(lh_memory_scope_t s)
{
	return s == LH_MEMORY_PLAN ? "plan" : s == LH_MEMORY_TENANT ? "tenant" : "global";
}

static const char *memory_kind_name(lh_memory_kind_t k)
{
	return k == LH_MEMORY_EPISODIC ? "episodic" : k == LH_MEMORY_SEMANTIC ? "semantic"
									 : "procedural";
}

char *lh_memory_fulltext_query(const char *query)
{
	lh_buf_t b;
	const char *p = query ? query : "";
	lh_buf_init(&b);
	lh_buf_appends(&b, "");
	while (*p) {
		const char *start;
		size_t n;
		while (*p && !isalnum((unsigned char)*p))
			p++;
		start = p;
		while (*p && isalnum((unsigned char)*p))
			p++;
		n = (size_t)(p - start);
		if (n == 0 || (n == 2 && strncasecmp(start, "or", 2) == 0) ||
		    (n == 3 && strncasecmp(start, "and", 3) == 0))
			continue; /* websearch_to_tsquery reads "or" as its operator */
		if (b.len)
			lh_buf_appends(&b, " or ");
		lh_buf_append(&b, start, n);
	}
	return lh_buf_steal(&b, NULL);
}

lh_err_t lh_memory_write(lh_pg_t *pg, const lh_memory_t *m, double near_dup, int64_t *ret_id,
			 lh_error_t *err)
{
	float vec[LH_EMBED_DIMS];
	char lit[LH_EMBED_LITERAL_MAX], sha[65], task_no[16], attempt[16];
	const char *scope = memory_scope_name(m->scope);
	lh_pg_res_t *res = NULL;
	lh_err_t rc;
	bool in_tx = false;

	*ret_id = 0;
	if (!m->tenant || !m->content || !*m->content)
		return lh_error_set(err, LH_ERR_INVALID, "could not write memory: tenant and "
				    "content are required");
	if ((m->scope == LH_MEMORY_PLAN) != (m->plan_id != NULL))
		return lh_error_set(err, LH_ERR_INVALID, "could not write memory: a plan id is "
				    "required for scope plan and only for it");
	if (near_dup <= 0)
		near_dup = LH_MEMORY_NEAR_DUP;
	lh_embed_text(m->content, vec);
	lh_embed_to_literal(vec, lit, sizeof(lit));
	lh_sha256_hex(m->content, strlen(m->content), sha);
	snprintf(task_no, sizeof(task_no), "%d", m->task_no);
	snprintf(attempt, sizeof(attempt), "%d", m->attempt);

	if ((rc = lh_pg_begin(pg, err)) != LH_OK)
		goto fail;
	in_tx = true;
	{
		const char *p[] = {m->tenant, scope, m->plan_id};
		if ((rc = lh_pg_query(pg, "memory_lock", 3, p, NULL, NULL, NULL, err)) != LH_OK)
			goto fail;
	}
	{
		const char *p[] = {m->tenant, scope, m->plan_id, sha};
		if ((rc = lh_pg_query(pg, "memory_by_sha", 4, p, NULL, NULL, &res, err)) != LH_OK)
			goto fail;
		if (lh_pg_nrows(res) > 0) {
			*ret_id = lh_pg_get_i64(res, 0, 0);
			rc = lh_error_set(err, LH_ERR_CONFLICT, "could not write memory: it "
					  "duplicates memory %" PRId64, *ret_id);
			goto fail;
		}
		res = lh_pg_res_free(res);
	}
	if (near_dup <= 1.0) {
		const char *p[] = {m->tenant, scope, m->plan_id, lit};
		if ((rc = lh_pg_query(pg, "memory_nearest", 4, p, NULL, NULL, &res, err)) != LH_OK)
			goto fail;
		if (lh_pg_nrows(res) > 0 && !lh_pg_isnull(res, 0, 1)) {
			double cos = strtod(lh_pg_get(res, 0, 1), NULL);
			if (cos >= near_dup) {
				*ret_id = lh_pg_get_i64(res, 0, 0);
				rc = lh_error_set(err, LH_ERR_CONFLICT, "could not write memory: it "
						  "nearly duplicates memory %" PRId64
						  " (cosine %.3f >= %.3f)", *ret_id, cos, near_dup);
				goto fail;
			}
		}
		res = lh_pg_res_free(res);
	}
	{
		const char *p[] = {m->tenant,
				   scope,
				   m->plan_id,
				   memory_kind_name(m->kind),
				   m->content,
				   lit,
				   sha,
				   m->source_event,
				   m->task_no >= 0 ? task_no : NULL,
				   m->attempt >= 0 ? attempt : NULL};
		if ((rc = lh_pg_query(pg, "memory_insert", 10, p, NULL, NULL, &res, err)) != LH_OK)
			goto fail;
		if (lh_pg_nrows(res) != 1) {
			/* the lock makes this unreachable unless another writer skipped it */
			rc = lh_error_set(err, LH_ERR_CONFLICT, "could not write memory: the same "
					  "content was stored concurrently");
			goto fail;
		}
		*ret_id = lh_pg_get_i64(res, 0, 0);
		res = lh_pg_res_free(res);
	}
	if ((rc = lh_pg_commit(pg, err)) != LH_OK) {
		*ret_id = 0;
		return rc;
	}
	return LH_OK;

fail:
	lh_pg_res_free(res);
	if (in_tx)
		lh_pg_rollback(pg);
	return rc;
}

lh_err_t lh_memory_supersede(lh_pg_t *pg, int64_t old_id, int64_t new_id, lh_error_t *err)
{
	char a[24], b[24];
	lh_pg_res_t *res = NULL;
	lh_err_t rc;
	snprintf(a, sizeof(a), "%" PRId64, old_id);
	snprintf(b, sizeof(b), "%" PRId64, new_id);
	const char *p[] = {a, b};
	if ((rc = lh_pg_query(pg, "memory_supersede", 2, p, NULL, NULL, &res, err)) != LH_OK)
		return rc;
	if (lh_pg_nrows(res) != 1)
		rc = lh_error_set(err, LH_ERR_NOT_FOUND, "could not supersede memory %" PRId64
				  ": no live memory has that id", old_id);
	lh_pg_res_free(res);
	return rc;
}

void lh_memory_hits_free(lh_memory_hit_t *hits, int n)
{
	if (!hits)
		return;
	for (int i = 0; i < n; i++)
		free(hits[i].content);
	free(hits);
}

lh_err_t lh_memory_search(lh_pg_t *pg, const char *tenant, const char *plan_id, const char *query,
			  int k, lh_memory_mode_t mode, lh_memory_hit_t **ret_hits, int *ret_n,
			  lh_error_t *err)
{
	float vec[LH_EMBED_DIMS];
	char lit[LH_EMBED_LITERAL_MAX], kbuf[16], depth[16];
	char *ftq = NULL;
	lh_pg_res_t *res = NULL;
	lh_memory_hit_t *hits = NULL;
	lh_err_t rc;
	int n;

	*ret_hits = NULL;
	*ret_n = 0;
	if (!tenant || !query || k <= 0)
		return lh_error_set(err, LH_ERR_INVALID, "could not search memories: tenant, query "
				    "and k > 0 are required");
	snprintf(kbuf, sizeof(kbuf), "%d", k);
	snprintf(depth, sizeof(depth), "%d", k > MEMORY_FUSE_DEPTH ? k : MEMORY_FUSE_DEPTH);
	if (mode != LH_MEMORY_VECTOR && !(ftq = lh_memory_fulltext_query(query)))
		return lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of memory");
	if (mode != LH_MEMORY_FULLTEXT) {
		lh_embed_text(query, vec);
		lh_embed_to_literal(vec, lit, sizeof(lit));
	}
	if (mode == LH_MEMORY_FULLTEXT) {
		const char *p[] = {tenant, plan_id, ftq, kbuf};
		rc = lh_pg_query(pg, "memory_search_fulltext", 4, p, NULL, NULL, &res, err);
	} else if (mode == LH_MEMORY_VECTOR) {
		const char *p[] = {tenant, plan_id, lit, kbuf};
		rc = lh_pg_query(pg, "memory_search_vector", 4, p, NULL, NULL, &res, err);
	} else {
		const char *p[] = {tenant, plan_id, ftq, lit, kbuf, depth};
		rc = lh_pg_query(pg, "memory_search_hybrid", 6, p, NULL, NULL, &res, err);
	}
	if (rc != LH_OK)
		goto free_query;
	n = lh_pg_nrows(res);
	if (n > 0) {
		if (!(hits = calloc((size_t)n, sizeof(*hits)))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of memory");
			goto free_res;
		}
		for (int i = 0; i < n; i++) {
			hits[i].id = lh_pg_get_i64(res, i, 0);
			hits[i].score = strtod(lh_pg_get(res, i, 1), NULL);
			if (!(hits[i].content = strdup(lh_pg_get(res, i, 2)))) {
				lh_memory_hits_free(hits, i);
				rc = lh_error_set(err, LH_ERR_NOMEM,
						  "could not search memories: out of memory");
				goto free_res;
			}
		}
	}
	*ret_hits = hits;
	*ret_n = n;
free_res:
	lh_pg_res_free(res);
free_query:
	free(ftq);
	return rc;
}
