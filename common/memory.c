/* memory.c — memories in PostgreSQL: dedup-checked writes, full-text / vector / hybrid search. */
#include "memory.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "embed.h"
#include "embedder.h"
#include "ids.h"

/* Candidates each ranking contributes to the fusion, at least: deeper than k so a row ranked
 * just below k by one side and well by the other still surfaces. */
#define MEMORY_FUSE_DEPTH 50

/* The exact dot product (sum over unnest) costs 0.1-0.3 ms a row in PostgreSQL; the sign
 * signatures' Hamming distance (bit_count, native) about 1 us. Vector searches rank exactly only the
 * MEMORY_PREFILTER_DEPTH memories nearest by signature, the near-duplicate check the
 * MEMORY_NEAR_DEPTH nearest. Measured on the retrieval fixture: see docs/memory.md. */
#ifndef MEMORY_PREFILTER_DEPTH
#define MEMORY_PREFILTER_DEPTH 100
#endif
#define MEMORY_NEAR_DEPTH 32

static const char *memory_scope_name(lh_memory_scope_t s)
{
	return s == LH_MEMORY_PLAN ? "plan" : s == LH_MEMORY_TENANT ? "tenant" : "global";
}

static const char *memory_kind_name(lh_memory_kind_t k)
{
	return k == LH_MEMORY_EPISODIC ? "episodic" : k == LH_MEMORY_SEMANTIC ? "semantic"
									 : "procedural";
}

/* The real[] literal of text's vector and the embedder's name (hashing when emb is NULL). *ret_lit
 * is new. */
static lh_err_t memory_embed(lh_pg_t *pg, lh_embedder_t *emb, bool query, const char *text,
			     char **ret_lit, char **ret_bits, const char **ret_name,
			     lh_error_t *err)
{
	float *vec;
	int dims;
	lh_err_t rc;
	if (!emb) {
		float v[LH_EMBED_DIMS];
		lh_embed_text(text, v);
		*ret_name = "hash-512";
		*ret_lit = lh_embedder_literal(v, LH_EMBED_DIMS);
		*ret_bits = lh_embedder_bits_literal(v, LH_EMBED_DIMS);
		return LH_OK;
	}
	if ((rc = lh_embedder_embed(emb, pg, query, &text, 1, &vec, &dims, err)) != LH_OK)
		return rc;
	*ret_name = lh_embedder_name(emb);
	*ret_lit = lh_embedder_literal(vec, dims);
	*ret_bits = lh_embedder_bits_literal(vec, dims);
	free(vec);
	return LH_OK;
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
	char *lit = NULL, *bits = NULL, sha[65], task_no[16], attempt[16], depth[16];
	const char *scope = memory_scope_name(m->scope), *embedder = NULL;
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
		near_dup = m->embedder ? lh_embedder_near_dup(m->embedder) : LH_MEMORY_NEAR_DUP;
	/* before the transaction: an HTTP embedder may take seconds and writes its cache */
	if ((rc = memory_embed(pg, m->embedder, false, m->content, &lit, &bits, &embedder, err)) !=
	    LH_OK)
		return rc;
	snprintf(depth, sizeof(depth), "%d", MEMORY_NEAR_DEPTH);
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
		const char *p[] = {m->tenant, scope, m->plan_id, lit, embedder, bits, depth};
		if ((rc = lh_pg_query(pg, "memory_nearest", 7, p, NULL, NULL, &res, err)) != LH_OK)
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
				   m->attempt >= 0 ? attempt : NULL,
				   embedder,
				   bits};
		if ((rc = lh_pg_query(pg, "memory_insert", 12, p, NULL, NULL, &res, err)) != LH_OK)
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
	if ((rc = lh_pg_commit(pg, err)) != LH_OK)
		*ret_id = 0;
	free(lit);
	free(bits);
	return rc;

fail:
	lh_pg_res_free(res);
	if (in_tx)
		lh_pg_rollback(pg);
	free(lit);
	free(bits);
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
	return lh_memory_search_with(pg, NULL, tenant, plan_id, query, k, mode, ret_hits, ret_n,
				     err);
}

/* Rank the vector candidates (rows: id, content, array_send(embedding)) by their exact dot product
 * with qvec; best first, ties by id. The arrays are new. */
typedef struct ranked {
	int64_t id;
	double score;
	const char *content; /* borrowed from the result */
} ranked_t;

static int ranked_cmp(const void *a, const void *b)
{
	const ranked_t *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Rows of res (a binary-format result, lh_pg_query_bin) whose column 0 is side (when side is set;
 * the columns then start at 1) or every row (side 0): id as text, content, embedding. */
static lh_err_t vector_rank(const lh_pg_res_t *res, char side, const float *qvec, int dims,
			    ranked_t **ret, int *ret_n, lh_error_t *err)
{
	int c0 = side ? 1 : 0;
	int n = lh_pg_nrows(res), m = 0;
	ranked_t *r = calloc((size_t)(n ? n : 1), sizeof(*r));
	float *v = malloc(sizeof(float) * (size_t)dims);
	if (!r || !v) {
		free(r);
		free(v);
		return lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of memory");
	}
	for (int i = 0; i < n; i++) {
		double dot = 0;
		if (side && lh_pg_get(res, i, 0)[0] != side)
			continue;
		/* a row of other dimensions (a misconfigured embedder name) is skipped, not fatal */
		if (lh_embedder_parse_array_bin(lh_pg_get(res, i, c0 + 2),
						(size_t)lh_pg_getlen(res, i, c0 + 2), dims, v) != LH_OK)
			continue;
		for (int d = 0; d < dims; d++)
			dot += (double)v[d] * qvec[d];
		r[m++] = (ranked_t){lh_pg_get_i64(res, i, c0), dot, lh_pg_get(res, i, c0 + 1)};
	}
	free(v);
	qsort(r, (size_t)m, sizeof(*r), ranked_cmp);
	*ret = r;
	*ret_n = m;
	return LH_OK;
}

lh_err_t lh_memory_search_with(lh_pg_t *pg, lh_embedder_t *emb, const char *tenant,
			       const char *plan_id, const char *query, int k, lh_memory_mode_t mode,
			       lh_memory_hit_t **ret_hits, int *ret_n, lh_error_t *err)
{
	char *bits = NULL, kbuf[16], pre[16];
	const char *embedder = NULL;
	char *ftq = NULL;
	float *qvec = NULL;
	int dims = 0, depth = k > MEMORY_FUSE_DEPTH ? k : MEMORY_FUSE_DEPTH, nft = 0, nvec = 0, n = 0;
	lh_pg_res_t *fres = NULL, *vres = NULL;
	ranked_t *vec = NULL, *ftr = NULL, *out = NULL;
	lh_memory_hit_t *hits = NULL;
	lh_err_t rc = LH_OK;

	*ret_hits = NULL;
	*ret_n = 0;
	if (!tenant || !query || k <= 0)
		return lh_error_set(err, LH_ERR_INVALID, "could not search memories: tenant, query "
				    "and k > 0 are required");
	if (mode != LH_MEMORY_VECTOR && !(ftq = lh_memory_fulltext_query(query)))
		return lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of memory");
	if (mode != LH_MEMORY_FULLTEXT) {
		if (!emb) {
			if (!(qvec = malloc(sizeof(float) * LH_EMBED_DIMS))) {
				rc = lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out "
						  "of memory");
				goto out;
			}
			lh_embed_text(query, qvec);
			dims = LH_EMBED_DIMS;
			embedder = "hash-512";
		} else {
			if ((rc = lh_embedder_embed(emb, pg, true, &query, 1, &qvec, &dims, err)) !=
			    LH_OK)
				goto out;
			embedder = lh_embedder_name(emb);
		}
		if (!(bits = lh_embedder_bits_literal(qvec, dims))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of "
					  "memory");
			goto out;
		}
	}
	snprintf(pre, sizeof(pre), "%d", k > MEMORY_PREFILTER_DEPTH ? k : MEMORY_PREFILTER_DEPTH);
	snprintf(kbuf, sizeof(kbuf), "%d", mode == LH_MEMORY_FULLTEXT ? k : depth);
	if (mode == LH_MEMORY_FULLTEXT) {
		const char *p[] = {tenant, plan_id, ftq, kbuf};
		if ((rc = lh_pg_query(pg, "memory_search_fulltext", 4, p, NULL, NULL, &fres, err)) !=
		    LH_OK)
			goto out;
		nft = lh_pg_nrows(fres);
	} else if (mode == LH_MEMORY_VECTOR) {
		const char *p[] = {tenant, plan_id, embedder, bits, pre};
		if ((rc = lh_pg_query_bin(pg, "memory_vector_candidates", 5, p, &vres, err)) !=
		    LH_OK)
			goto out;
		if ((rc = vector_rank(vres, 0, qvec, dims, &vec, &nvec, err)) != LH_OK)
			goto out;
	} else {
		/* both candidate lists in one statement: one round trip, the visible rows read once */
		const char *p[] = {tenant, plan_id, ftq, kbuf, embedder, bits, pre};
		if ((rc = lh_pg_query_bin(pg, "memory_hybrid_candidates", 7, p, &vres, err)) !=
		    LH_OK)
			goto out;
		if ((rc = vector_rank(vres, 'v', qvec, dims, &vec, &nvec, err)) != LH_OK)
			goto out;
		if (!(ftr = calloc((size_t)lh_pg_nrows(vres) + 1, sizeof(*ftr)))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of "
					  "memory");
			goto out;
		}
		for (int i = 0; i < lh_pg_nrows(vres); i++)
			if (lh_pg_get(vres, i, 0)[0] == 'f')
				ftr[nft++] = (ranked_t){lh_pg_get_i64(vres, i, 1),
							strtod(lh_pg_get(vres, i, 4), NULL),
							lh_pg_get(vres, i, 2)};
		qsort(ftr, (size_t)nft, sizeof(*ftr), ranked_cmp);
	}

	if (!(out = calloc((size_t)(nft + nvec + 1), sizeof(*out)))) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of memory");
		goto out;
	}
	if (mode == LH_MEMORY_FULLTEXT) {
		for (int i = 0; i < nft; i++)
			out[n++] = (ranked_t){lh_pg_get_i64(fres, i, 0),
					      strtod(lh_pg_get(fres, i, 1), NULL),
					      lh_pg_get(fres, i, 2)};
	} else if (mode == LH_MEMORY_VECTOR) {
		for (int i = 0; i < nvec; i++)
			out[n++] = vec[i];
	} else {
		/* weighted reciprocal rank fusion: sum over the rankings that hold a row of
		 * weight / (fk + rank), each ranking cut at depth; full text weighs 1, the vector
		 * ranking the embedder's weight (lh_embedder_fusion, docs/memory.md) */
		double fk = emb ? lh_embedder_fusion_k(emb) : LH_EMBEDDER_FUSION_K_HASH;
		double vw = emb ? lh_embedder_vector_weight(emb) : 1.0;
		for (int i = 0; i < nft; i++)
			out[n++] = (ranked_t){ftr[i].id, 1.0 / (fk + i + 1), ftr[i].content};
		for (int i = 0; i < nvec && i < depth; i++) {
			int j = 0;
			while (j < nft && out[j].id != vec[i].id)
				j++;
			if (j < nft)
				out[j].score += vw / (fk + i + 1);
			else
				out[n++] = (ranked_t){vec[i].id, vw / (fk + i + 1), vec[i].content};
		}
		qsort(out, (size_t)n, sizeof(*out), ranked_cmp);
	}
	if (n > k)
		n = k;
	if (n > 0 && !(hits = calloc((size_t)n, sizeof(*hits)))) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		hits[i].id = out[i].id;
		hits[i].score = out[i].score;
		if (!(hits[i].content = strdup(out[i].content))) {
			lh_memory_hits_free(hits, i);
			hits = NULL;
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not search memories: out of "
					  "memory");
			goto out;
		}
	}
	*ret_hits = hits;
	*ret_n = n;
out:
	lh_pg_res_free(fres);
	lh_pg_res_free(vres);
	free(vec);
	free(ftr);
	free(out);
	free(ftq);
	free(qvec);
	free(bits);
	return rc;
}

lh_err_t lh_memory_forget(lh_pg_t *pg, const char *tenant, int64_t id, const char *reason,
			  lh_error_t *err)
{
	char ibuf[24];
	lh_pg_res_t *res = NULL;
	lh_err_t rc;
	if (!tenant)
		return lh_error_set(err, LH_ERR_INVALID, "could not forget memory: a tenant is "
				    "required");
	snprintf(ibuf, sizeof(ibuf), "%" PRId64, id);
	const char *p[] = {ibuf, tenant, reason};
	if ((rc = lh_pg_query(pg, "memory_forget", 3, p, NULL, NULL, &res, err)) != LH_OK)
		return rc;
	if (lh_pg_nrows(res) != 1)
		rc = lh_error_set(err, LH_ERR_NOT_FOUND, "could not forget memory %" PRId64
				  ": the tenant has no live memory with that id", id);
	lh_pg_res_free(res);
	return rc;
}

lh_err_t lh_memory_get_json(lh_pg_t *pg, const char *tenant, int64_t id, json_t **ret_json,
			    lh_error_t *err)
{
	static const char *const names[] = {
		"id", "tenant", "scope", "plan_id", "kind", "content", "embedder", "source_event",
		"task_no", "attempt", "use_count", "success_count", "superseded_by",
		"forgotten_at", "forget_reason", "created_at", "updated_at"};
	/* columns that are numbers in JSON */
	static const bool number[] = {true, false, false, false, false, false, false, false,
				      true, true, true, true, true, false, false, false, false};
	char ibuf[24];
	lh_pg_res_t *res = NULL;
	json_t *o;
	lh_err_t rc;
	snprintf(ibuf, sizeof(ibuf), "%" PRId64, id);
	const char *p[] = {ibuf, tenant};
	if ((rc = lh_pg_query(pg, "memory_get", 2, p, NULL, NULL, &res, err)) != LH_OK)
		return rc;
	if (lh_pg_nrows(res) != 1) {
		lh_pg_res_free(res);
		return lh_error_set(err, LH_ERR_NOT_FOUND, "memory %" PRId64 " not found", id);
	}
	o = json_object();
	for (int c = 0; c < (int)(sizeof(names) / sizeof(names[0])); c++) {
		json_t *v;
		if (lh_pg_isnull(res, 0, c))
			v = json_null();
		else if (number[c])
			v = json_integer(lh_pg_get_i64(res, 0, c));
		else
			v = json_string(lh_pg_get(res, 0, c));
		json_object_set_new(o, names[c], v ? v : json_null());
	}
	lh_pg_res_free(res);
	*ret_json = o;
	return LH_OK;
}

json_t *lh_memory_hits_json(const lh_memory_hit_t *hits, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:I, s:f, s:s?}", "id", (json_int_t)hits[i].id,
						   "score", hits[i].score, "content",
						   hits[i].content));
	return a;
}

lh_err_t lh_memory_used(lh_pg_t *pg, const char *tenant, const int64_t *ids, int n, bool succeeded,
			int *ret_updated, lh_error_t *err)
{
	lh_buf_t arr;
	lh_pg_res_t *res = NULL;
	lh_err_t rc;
	if (!tenant || n < 0 || (n > 0 && !ids))
		return lh_error_set(err, LH_ERR_INVALID, "could not count memory use: tenant and ids "
				    "are required");
	lh_buf_init(&arr);
	lh_buf_appends(&arr, "{");
	for (int i = 0; i < n; i++)
		lh_buf_printf(&arr, "%s%" PRId64, i ? "," : "", ids[i]);
	lh_buf_appends(&arr, "}");
	const char *p[] = {arr.data, tenant, succeeded ? "1" : "0"};
	rc = lh_pg_query(pg, "memory_used", 3, p, NULL, NULL, &res, err);
	lh_buf_finish(&arr);
	if (rc == LH_OK && ret_updated)
		*ret_updated = lh_pg_nrows(res);
	lh_pg_res_free(res);
	return rc;
}

lh_err_t lh_memory_consolidate(lh_pg_t *pg, const char *tenant, int64_t after_id, int limit,
			       double near_dup, double episodic_ttl_s,
			       lh_memory_consolidation_t *ret, lh_error_t *err)
{
	char after[24], lim[16], nd[32], ttl[32];
	lh_pg_res_t *res = NULL;
	lh_memory_consolidation_t out = {0, 0, after_id};
	lh_err_t rc;
	if (!tenant || limit <= 0)
		return lh_error_set(err, LH_ERR_INVALID, "could not consolidate memories: tenant and "
				    "limit > 0 are required");
	snprintf(after, sizeof(after), "%" PRId64, after_id);
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(nd, sizeof(nd), "%.6f", near_dup > 0 ? near_dup : LH_MEMORY_NEAR_DUP);
	{
		/* the newest memory this round examines, read before any is superseded */
		const char *p[] = {tenant, after, lim};
		if ((rc = lh_pg_query(pg, "memory_consolidate_cursor", 3, p, NULL, NULL, &res, err)) !=
		    LH_OK)
			return rc;
		out.next_after = lh_pg_get_i64(res, 0, 0);
		lh_pg_res_free(res);
	}
	{
		const char *p[] = {tenant, nd, after, lim};
		if ((rc = lh_pg_query(pg, "memory_near_pairs", 4, p, NULL, NULL, &res, err)) != LH_OK)
			return rc;
	}
	for (int i = 0; i < lh_pg_nrows(res); i++) {
		int64_t newer = lh_pg_get_i64(res, i, 0), older = lh_pg_get_i64(res, i, 1);
		rc = lh_memory_supersede(pg, newer, older, err);
		if (rc == LH_OK)
			out.merged++;
		else if (rc != LH_ERR_NOT_FOUND) { /* superseded meanwhile: nothing to do */
			lh_pg_res_free(res);
			return rc;
		}
	}
	lh_pg_res_free(res);
	res = NULL;
	if (episodic_ttl_s > 0) {
		snprintf(ttl, sizeof(ttl), "%.3f", episodic_ttl_s);
		const char *p[] = {tenant, ttl};
		if ((rc = lh_pg_query(pg, "memory_prune_episodic", 2, p, NULL, NULL, &res, err)) !=
		    LH_OK)
			return rc;
		out.pruned = lh_pg_nrows(res);
		lh_pg_res_free(res);
	}
	*ret = out;
	return LH_OK;
}

lh_id_t lh_memory_stream_id(const char *tenant)
{
	static const lh_id_t none = {{0}};
	const char *t = tenant && *tenant ? tenant : "default";
	return lh_event_id_derive(&none, t, strlen(t), "memory.stream", 0);
}
