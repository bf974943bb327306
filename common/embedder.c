/* embedder.c — OpenAI-compatible /v1/embeddings client with a PostgreSQL cache, or the hashing
 * embedder; see embedder.h. */
#include "embedder.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "embed.h"
#include "http_client.h"
#include "ids.h"

#define EMBEDDER_DEFAULT_BATCH 64
#define EMBEDDER_DEFAULT_TIMEOUT_MS 30000
#define EMBEDDER_KEY_MAX 4096
#define AUTH_PREFIX "Authorization: Bearer "

struct lh_embedder {
	bool http_on;
	char *url;	   /* ".../embeddings" */
	char *model;
	char *query_model;
	char *name;	   /* "hash-512" or "http:" model */
	char *auth;	   /* "Authorization: Bearer KEY" or NULL; never logged */
	int batch;
	long timeout_ms;
	int dims;
	int max_retries;
	double near_dup;
	double fusion_k, vector_weight;
	struct event_base *base;
	lh_http_t *http;
	lh_embedder_stats_t stats;
};

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d)
		abort(); /* like lh_buf: out-of-memory on a few bytes is not recoverable here */
	return d;
}

static lh_err_t read_key(const lh_embedder_cfg_t *cfg, char **ret_key, lh_error_t *err)
{
	*ret_key = NULL;
	if (cfg->key_env && *cfg->key_env) {
		const char *v = getenv(cfg->key_env);
		if (v && *v) {
			*ret_key = xstrdup(v);
			return LH_OK;
		}
		if (!cfg->key_file || !*cfg->key_file)
			return lh_error_set(err, LH_ERR_CONFIG, "could not configure the embedder: "
					    "environment variable %s is not set", cfg->key_env);
	}
	if (cfg->key_file && *cfg->key_file) {
		char line[EMBEDDER_KEY_MAX];
		FILE *f = fopen(cfg->key_file, "r");
		size_t len;
		if (!f)
			return lh_error_set(err, LH_ERR_CONFIG, "could not read the embedder key "
					    "file \"%s\": %s", cfg->key_file, strerror(errno));
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
		len = strlen(line);
		while (len && isspace((unsigned char)line[len - 1]))
			line[--len] = 0;
		if (!len)
			return lh_error_set(err, LH_ERR_CONFIG, "could not read the embedder key "
					    "file \"%s\": its first line is empty", cfg->key_file);
		*ret_key = xstrdup(line);
		explicit_bzero(line, sizeof(line));
	}
	return LH_OK;
}

lh_err_t lh_embedder_new(const lh_embedder_cfg_t *cfg, lh_embedder_t **ret_emb, lh_error_t *err)
{
	lh_embedder_t *emb;
	char *key = NULL;
	lh_err_t rc;

	if (!(emb = calloc(1, sizeof(*emb))))
		return lh_error_set(err, LH_ERR_NOMEM, "could not create the embedder: out of memory");
	if (!cfg || !cfg->url || !*cfg->url) {
		char name[32];
		snprintf(name, sizeof(name), "hash-%d", LH_EMBED_DIMS);
		emb->name = xstrdup(name);
		emb->dims = LH_EMBED_DIMS;
		emb->near_dup = 0.92; /* LH_MEMORY_NEAR_DUP: see memory.h for how it was chosen */
		emb->fusion_k = cfg && cfg->fusion_k > 0 ? cfg->fusion_k : LH_EMBEDDER_FUSION_K_HASH;
		emb->vector_weight = cfg && cfg->vector_weight > 0 ? cfg->vector_weight : 1.0;
		*ret_emb = emb;
		return LH_OK;
	}
	if (!cfg->model || !*cfg->model) {
		rc = lh_error_set(err, LH_ERR_CONFIG, "could not configure the embedder: a model "
				  "is required with an endpoint url");
		goto fail;
	}
	if (cfg->dims < 0 || cfg->dims > LH_EMBEDDER_MAX_DIMS) {
		rc = lh_error_set(err, LH_ERR_CONFIG, "could not configure the embedder: dimensions "
				  "must be within 0..%d", LH_EMBEDDER_MAX_DIMS);
		goto fail;
	}
	if ((rc = read_key(cfg, &key, err)) != LH_OK)
		goto fail;
	emb->http_on = true;
	{
		lh_buf_t b;
		size_t ulen = strlen(cfg->url);
		lh_buf_init(&b);
		lh_buf_append(&b, cfg->url, ulen);
		if (ulen && cfg->url[ulen - 1] == '/')
			b.len--;
		lh_buf_appends(&b, "/embeddings");
		emb->url = lh_buf_steal(&b, NULL);
		lh_buf_init(&b);
		lh_buf_printf(&b, "http:%s", cfg->model);
		emb->name = lh_buf_steal(&b, NULL);
		if (key) {
			lh_buf_init(&b);
			lh_buf_printf(&b, AUTH_PREFIX "%s", key);
			emb->auth = lh_buf_steal(&b, NULL);
			explicit_bzero(key, strlen(key));
			free(key);
			key = NULL;
		}
	}
	emb->model = xstrdup(cfg->model);
	emb->query_model = xstrdup(cfg->query_model && *cfg->query_model ? cfg->query_model
									   : cfg->model);
	emb->batch = cfg->batch > 0 ? cfg->batch : EMBEDDER_DEFAULT_BATCH;
	emb->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : EMBEDDER_DEFAULT_TIMEOUT_MS;
	emb->dims = cfg->dims;
	emb->max_retries = cfg->max_retries < 0 ? 2 : cfg->max_retries;
	emb->near_dup = cfg->near_dup > 0 ? cfg->near_dup : LH_EMBEDDER_NEAR_DUP_HTTP;
	emb->fusion_k = cfg->fusion_k > 0 ? cfg->fusion_k : LH_EMBEDDER_FUSION_K_HTTP;
	emb->vector_weight =
		cfg->vector_weight > 0 ? cfg->vector_weight : LH_EMBEDDER_VECTOR_WEIGHT_HTTP;
	if (!(emb->base = event_base_new())) {
		rc = lh_error_set(err, LH_ERR_INTERNAL, "could not create the embedder: "
				  "event_base_new failed");
		goto fail;
	}
	{
		lh_http_opts_t o = {.max_connections = 4, .total_timeout_ms = emb->timeout_ms,
				    .user_agent = "longhaul-embedder"};
		if (!(emb->http = lh_http_new(emb->base, &o, err))) {
			rc = err ? err->code : LH_ERR_INTERNAL;
			goto fail;
		}
	}
	*ret_emb = emb;
	return LH_OK;
fail:
	free(key);
	lh_embedder_free(emb);
	return rc;
}

lh_err_t lh_embedder_new_from_config(const lh_common_cfg_t *c, lh_embedder_t **ret_emb,
				     lh_error_t *err)
{
	lh_embedder_cfg_t cfg = {.url = c->embed_url,
				 .model = c->embed_model,
				 .query_model = c->embed_query_model,
				 .key_env = c->embed_key_env,
				 .key_file = c->embed_key_file,
				 .batch = (int)c->embed_batch,
				 .timeout_ms = (long)c->embed_timeout_ms,
				 .dims = (int)c->embed_dims,
				 .max_retries = -1,
				 .near_dup = c->embed_near_dup,
				 .fusion_k = c->fusion_k,
				 .vector_weight = c->fusion_vector_weight};
	return lh_embedder_new(&cfg, ret_emb, err);
}

lh_embedder_t *lh_embedder_free(lh_embedder_t *emb)
{
	if (!emb)
		return NULL;
	lh_http_free(emb->http);
	if (emb->base)
		event_base_free(emb->base);
	if (emb->auth) {
		explicit_bzero(emb->auth, strlen(emb->auth));
		free(emb->auth);
	}
	free(emb->url);
	free(emb->model);
	free(emb->query_model);
	free(emb->name);
	free(emb);
	return NULL;
}

const char *lh_embedder_name(const lh_embedder_t *emb) { return emb->name; }
int lh_embedder_dims(const lh_embedder_t *emb) { return emb->dims; }
bool lh_embedder_is_http(const lh_embedder_t *emb) { return emb->http_on; }
double lh_embedder_near_dup(const lh_embedder_t *emb) { return emb->near_dup; }
double lh_embedder_fusion_k(const lh_embedder_t *emb) { return emb->fusion_k; }
double lh_embedder_vector_weight(const lh_embedder_t *emb) { return emb->vector_weight; }
void lh_embedder_stats(const lh_embedder_t *emb, lh_embedder_stats_t *ret_stats)
{
	*ret_stats = emb->stats;
}

static void normalize(float *v, int dims)
{
	double norm = 0;
	for (int i = 0; i < dims; i++)
		norm += (double)v[i] * v[i];
	if (norm > 0) {
		norm = sqrt(norm);
		for (int i = 0; i < dims; i++)
			v[i] = (float)(v[i] / norm);
	}
}

lh_err_t lh_embedder_parse_response(const char *body, size_t len, size_t n, int dims,
				    float **ret_vecs, int *ret_dims, lh_error_t *err)
{
	json_error_t jerr;
	json_t *root, *data;
	float *vecs = NULL;
	bool *seen = NULL;
	lh_err_t rc = LH_ERR_DECODE;

	if (n == 0)
		return lh_error_set(err, LH_ERR_INVALID, "could not parse embeddings: no inputs");
	if (!(root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)))
		return lh_error_set(err, LH_ERR_DECODE, "could not parse embeddings: %s (line %d)",
				    jerr.text, jerr.line);
	data = json_is_object(root) ? json_object_get(root, "data") : NULL;
	if (!json_is_array(data)) {
		lh_error_set(err, rc, "could not parse embeddings: no \"data\" array");
		goto out;
	}
	if (json_array_size(data) != n) {
		lh_error_set(err, rc, "could not parse embeddings: %zu vectors for %zu inputs",
			     json_array_size(data), n);
		goto out;
	}
	if (!(seen = calloc(n, sizeof(*seen)))) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "could not parse embeddings: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(data, i), *idx, *vec;
		size_t at, d;
		double sum = 0;
		idx = json_is_object(item) ? json_object_get(item, "index") : NULL;
		vec = json_is_object(item) ? json_object_get(item, "embedding") : NULL;
		if (!json_is_array(vec)) {
			lh_error_set(err, rc, "could not parse embeddings: item %zu has no "
				     "\"embedding\" array", i);
			goto out;
		}
		if (idx && !json_is_integer(idx)) {
			lh_error_set(err, rc, "could not parse embeddings: item %zu has a "
				     "non-integer index", i);
			goto out;
		}
		/* servers that omit the index answer in input order */
		at = idx ? (size_t)json_integer_value(idx) : i;
		if ((idx && json_integer_value(idx) < 0) || at >= n || seen[at]) {
			lh_error_set(err, rc, "could not parse embeddings: item %zu has index out of "
				     "range or repeated", i);
			goto out;
		}
		seen[at] = true;
		d = json_array_size(vec);
		if (d == 0 || d > LH_EMBEDDER_MAX_DIMS) {
			lh_error_set(err, rc, "could not parse embeddings: item %zu has %zu "
				     "dimensions (1..%d)", i, d, LH_EMBEDDER_MAX_DIMS);
			goto out;
		}
		if (dims <= 0)
			dims = (int)d;
		if (d != (size_t)dims) {
			lh_error_set(err, rc, "could not parse embeddings: item %zu has %zu "
				     "dimensions, expected %d", i, d, dims);
			goto out;
		}
		if (!vecs && !(vecs = calloc(n * (size_t)dims, sizeof(float)))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not parse embeddings: out of "
					  "memory");
			goto out;
		}
		for (size_t j = 0; j < d; j++) {
			json_t *x = json_array_get(vec, j);
			double v = json_number_value(x);
			if (!json_is_number(x) || !isfinite(v) || fabs(v) > 1e30) {
				lh_error_set(err, rc, "could not parse embeddings: item %zu, "
					     "component %zu is not a finite number", i, j);
				goto out;
			}
			vecs[at * (size_t)dims + j] = (float)v;
			/* from the stored float: 1e-50 is not zero as a double but is as a float */
			sum += (double)vecs[at * (size_t)dims + j] * vecs[at * (size_t)dims + j];
		}
		if (!(sum > 0)) {
			lh_error_set(err, rc, "could not parse embeddings: item %zu is the zero "
				     "vector", i);
			goto out;
		}
		normalize(vecs + at * (size_t)dims, dims);
	}
	*ret_vecs = vecs;
	*ret_dims = dims;
	vecs = NULL;
	rc = LH_OK;
out:
	free(vecs);
	free(seen);
	json_decref(root);
	return rc;
}

char *lh_embedder_literal(const float *vec, int dims)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_appends(&b, "{");
	for (int i = 0; i < dims; i++)
		lh_buf_printf(&b, "%s%.9g", i ? "," : "", (double)vec[i]);
	lh_buf_appends(&b, "}");
	return lh_buf_steal(&b, NULL);
}

char *lh_embedder_bits_literal(const float *vec, int dims)
{
	char *b = malloc(2 * (size_t)dims + 1);
	if (!b)
		return NULL;
	for (int i = 0; i < dims; i++) {
		b[i] = vec[i] > 0 ? '1' : '0';
		b[dims + i] = vec[i] < 0 ? '1' : '0';
	}
	b[2 * dims] = 0;
	return b;
}

/* Big-endian 32-bit word at byte offset off of p. */
static uint32_t be32(const unsigned char *p, size_t off)
{
	return (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 |
	       (uint32_t)p[off + 3];
}

lh_err_t lh_embedder_parse_array_bin(const void *data, size_t len, int dims, float *ret_vec)
{
	const uint32_t FLOAT4OID = 700;
	const unsigned char *p = data;
	size_t off;
	if (!p || dims <= 0 || dims > LH_EMBEDDER_MAX_DIMS || len != 20 + 8 * (size_t)dims)
		return LH_ERR_DECODE;
	/* header: ndim, has-nulls flag, element type, then (size, lower bound) per dimension */
	if (be32(p, 0) != 1 || be32(p, 4) != 0 || be32(p, 8) != FLOAT4OID ||
	    be32(p, 12) != (uint32_t)dims)
		return LH_ERR_DECODE;
	/* every element first: nothing is written unless the whole array is good */
	for (off = 20; off < len; off += 8) {
		uint32_t bits = be32(p, off + 4);
		float f;
		memcpy(&f, &bits, sizeof(f));
		if (be32(p, off) != 4 || !isfinite(f) || fabsf(f) > 1e30f)
			return LH_ERR_DECODE;
	}
	for (int i = 0; i < dims; i++) {
		uint32_t bits = be32(p, 20 + 8 * (size_t)i + 4);
		memcpy(&ret_vec[i], &bits, sizeof(float));
	}
	return LH_OK;
}

lh_err_t lh_embedder_parse_literal(const char *lit, int dims, float *ret_vec)
{
	const char *p = lit;
	float *tmp;
	if (!p || *p != '{' || dims <= 0)
		return LH_ERR_DECODE;
	if (!(tmp = malloc(sizeof(float) * (size_t)dims)))
		return LH_ERR_NOMEM;
	p++;
	for (int i = 0; i < dims; i++) {
		char *end;
		double v;
		errno = 0;
		v = strtod(p, &end);
		/* a finite double may still overflow a float: refuse what the parser refuses */
		if (end == p || errno == ERANGE || !isfinite(v) || fabs(v) > 1e30 ||
		    *end != (i + 1 < dims ? ',' : '}')) {
			free(tmp);
			return LH_ERR_DECODE;
		}
		tmp[i] = (float)v;
		p = end + 1;
	}
	if (*p) {
		free(tmp);
		return LH_ERR_DECODE;
	}
	memcpy(ret_vec, tmp, sizeof(float) * (size_t)dims);
	free(tmp);
	return LH_OK;
}

/* ---- one HTTP batch, blocking on the private loop ---- */

typedef struct call {
	bool done;
	lh_error_t error;
	long status;
	long retry_after_ms;
	char *body;
	size_t len;
	struct event_base *base;
} call_t;

static void on_done(lh_http_resp_t *resp, void *opaque)
{
	call_t *c = opaque;
	c->done = true;
	c->error = resp->error;
	c->status = resp->status;
	c->retry_after_ms = resp->retry_after_ms;
	if (resp->error.code == LH_OK)
		c->body = lh_buf_steal(&resp->body, &c->len);
	event_base_loopbreak(c->base);
}

static bool status_retriable(long status)
{
	return status == 408 || status == 409 || status == 429 || status >= 500;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A short, printable excerpt of an error body for messages (servers put the reason there), with
 * the key blanked out should the server echo it back. */
static void excerpt(const lh_embedder_t *emb, const char *body, size_t len, char *out,
		    size_t outsz)
{
	const char *key = emb->auth ? emb->auth + strlen(AUTH_PREFIX) : NULL;
	size_t klen = key ? strlen(key) : 0, j = 0;
	for (size_t i = 0; body && i < len && j + 1 < outsz; i++) {
		if (klen && len - i >= klen && memcmp(body + i, key, klen) == 0) {
			for (const char *r = "[redacted]"; *r && j + 1 < outsz; r++)
				out[j++] = *r;
			i += klen - 1;
			continue;
		}
		out[j++] = isprint((unsigned char)body[i]) ? body[i] : ' ';
	}
	out[j] = 0;
}

static lh_err_t http_batch(lh_embedder_t *emb, bool query, const char *const *texts, size_t n,
			   float *out, lh_error_t *err)
{
	json_t *req_json = json_pack("{s:s, s:[]}", "model", query ? emb->query_model : emb->model,
				     "input");
	json_t *input = json_object_get(req_json, "input");
	char *body;
	lh_err_t rc = LH_OK;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(input, json_string(texts[i]));
	body = json_dumps(req_json, JSON_COMPACT);
	json_decref(req_json);
	if (!body)
		return lh_error_set(err, LH_ERR_INVALID, "could not embed: a text is not valid "
				    "UTF-8");
	for (int attempt = 0;; attempt++) {
		const char *headers[2] = {"Content-Type: application/json", emb->auth};
		lh_http_req_t req = {.method = "POST", .url = emb->url, .headers = headers,
				     .n_headers = emb->auth ? 2 : 1, .body = body,
				     .body_len = strlen(body), .total_timeout_ms = emb->timeout_ms};
		call_t c = {.base = emb->base};
		bool retry;
		long wait_ms;
		if ((rc = lh_http_request(emb->http, &req, on_done, &c, NULL, err)) != LH_OK)
			break;
		while (!c.done)
			if (event_base_dispatch(emb->base) < 0) {
				rc = lh_error_set(err, LH_ERR_INTERNAL, "could not embed: the event "
						  "loop failed");
				lh_http_cancel_all(emb->http);
				break;
			}
		if (!c.done)
			break;
		if (c.error.code != LH_OK) {
			rc = lh_error_set(err, c.error.code, "could not embed: %s", c.error.msg);
			if (err)
				err->retriable = c.error.retriable;
			retry = c.error.retriable;
		} else if (c.status != 200) {
			char ex[160];
			excerpt(emb, c.body, c.len, ex, sizeof(ex));
			rc = lh_error_set(err, LH_ERR_HTTP, "could not embed: the server answered "
					  "%ld: %s", c.status, ex);
			retry = status_retriable(c.status);
			if (err)
				err->retriable = retry;
		} else {
			float *vecs;
			int dims;
			emb->stats.requests++;
			emb->stats.texts_sent += (long)n;
			rc = lh_embedder_parse_response(c.body, c.len, n, 0, &vecs, &dims, err);
			if (rc == LH_OK && emb->dims > 0 && dims != emb->dims) {
				rc = lh_error_set(err, LH_ERR_CONFLICT, "could not embed: the server "
						  "answered %d dimensions, expected %d", dims,
						  emb->dims);
				free(vecs);
			} else if (rc == LH_OK) {
				emb->dims = dims;
				memcpy(out, vecs, sizeof(float) * n * (size_t)dims);
				free(vecs);
			}
			free(c.body);
			break;
		}
		free(c.body);
		if (!retry || attempt >= emb->max_retries)
			break;
		wait_ms = c.retry_after_ms >= 0 ? c.retry_after_ms
						: (long)(500 * (1L << (attempt < 4 ? attempt : 4)));
		if (wait_ms > 8000)
			wait_ms = 8000;
		emb->stats.retries++;
		sleep_ms(wait_ms); /* backoff: the caller chose a blocking call */
	}
	free(body);
	return rc;
}

/* ---- cache ---- */

static lh_err_t cache_get(lh_pg_t *pg, const char *model, char (*shas)[65], size_t n, int dims,
			  float *vecs, bool *have, lh_error_t *err)
{
	lh_buf_t arr;
	lh_pg_res_t *res = NULL;
	lh_err_t rc;
	char dbuf[16];
	lh_buf_init(&arr);
	lh_buf_appends(&arr, "{");
	for (size_t i = 0; i < n; i++)
		lh_buf_printf(&arr, "%s%s", i ? "," : "", shas[i]);
	lh_buf_appends(&arr, "}");
	snprintf(dbuf, sizeof(dbuf), "%d", dims);
	{
		const char *p[] = {model, arr.data, dbuf};
		rc = lh_pg_query(pg, "embed_cache_get", 3, p, NULL, NULL, &res, err);
	}
	lh_buf_finish(&arr);
	if (rc != LH_OK)
		return rc;
	for (int r = 0; r < lh_pg_nrows(res); r++) {
		const char *sha = lh_pg_get(res, r, 0);
		for (size_t i = 0; i < n; i++) {
			if (have[i] || strcmp(sha, shas[i]) != 0)
				continue;
			/* a row that does not parse is treated as a miss and overwritten */
			if (lh_embedder_parse_literal(lh_pg_get(res, r, 1), dims,
						      vecs + i * (size_t)dims) == LH_OK)
				have[i] = true;
		}
	}
	lh_pg_res_free(res);
	return LH_OK;
}

static lh_err_t cache_put(lh_pg_t *pg, const char *model, const char *sha, const float *vec,
			  int dims, lh_error_t *err)
{
	char dbuf[16], *lit = lh_embedder_literal(vec, dims);
	lh_err_t rc;
	if (!lit)
		return lh_error_set(err, LH_ERR_NOMEM, "could not cache an embedding: out of memory");
	snprintf(dbuf, sizeof(dbuf), "%d", dims);
	const char *p[] = {model, sha, dbuf, lit};
	rc = lh_pg_query(pg, "embed_cache_put", 4, p, NULL, NULL, NULL, err);
	free(lit);
	return rc;
}

lh_err_t lh_embedder_embed(lh_embedder_t *emb, lh_pg_t *pg, bool query, const char *const *texts,
			   size_t n, float **ret_vecs, int *ret_dims, lh_error_t *err)
{
	const char *model = query ? emb->query_model : emb->model;
	char(*shas)[65] = NULL;
	bool *have = NULL;
	const char **miss = NULL;
	size_t *miss_at = NULL, nmiss = 0;
	float *vecs = NULL, *tmp = NULL;
	lh_err_t rc = LH_OK;

	if (!emb->http_on) {
		if (!(vecs = malloc(sizeof(float) * LH_EMBED_DIMS * (n ? n : 1))))
			return lh_error_set(err, LH_ERR_NOMEM, "could not embed: out of memory");
		for (size_t i = 0; i < n; i++)
			lh_embed_text(texts[i], vecs + i * LH_EMBED_DIMS);
		*ret_vecs = vecs;
		*ret_dims = LH_EMBED_DIMS;
		return LH_OK;
	}
	if (n == 0)
		return lh_error_set(err, LH_ERR_INVALID, "could not embed: no texts");
	shas = calloc(n, sizeof(*shas));
	have = calloc(n, sizeof(*have));
	miss = calloc(n, sizeof(*miss));
	miss_at = calloc(n, sizeof(*miss_at));
	if (!shas || !have || !miss || !miss_at) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "could not embed: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		lh_sha256_hex(texts[i], strlen(texts[i]), shas[i]);

	/* dims unknown yet: the first batch fixes them, the cache is consulted from then on */
	if (pg && emb->dims > 0) {
		if (!(vecs = calloc(n * (size_t)emb->dims, sizeof(float)))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not embed: out of memory");
			goto out;
		}
		if ((rc = cache_get(pg, model, shas, n, emb->dims, vecs, have, err)) != LH_OK)
			goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!have[i]) {
			/* the same text twice in one call is sent once */
			bool dup = false;
			for (size_t j = 0; j < nmiss && !dup; j++)
				dup = strcmp(shas[miss_at[j]], shas[i]) == 0;
			if (!dup) {
				miss[nmiss] = texts[i];
				miss_at[nmiss++] = i;
			}
		} else {
			emb->stats.cache_hits++;
		}
	for (size_t off = 0; off < nmiss; off += (size_t)emb->batch) {
		size_t m = nmiss - off < (size_t)emb->batch ? nmiss - off : (size_t)emb->batch;
		size_t cap = (size_t)(emb->dims > 0 ? emb->dims : LH_EMBEDDER_MAX_DIMS);
		free(tmp);
		if (!(tmp = malloc(sizeof(float) * m * cap))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not embed: out of memory");
			goto out;
		}
		if ((rc = http_batch(emb, query, miss + off, m, tmp, err)) != LH_OK)
			goto out;
		if (!vecs && !(vecs = calloc(n * (size_t)emb->dims, sizeof(float)))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not embed: out of memory");
			goto out;
		}
		for (size_t j = 0; j < m; j++) {
			size_t i = miss_at[off + j];
			memcpy(vecs + i * (size_t)emb->dims, tmp + j * (size_t)emb->dims,
			       sizeof(float) * (size_t)emb->dims);
			have[i] = true;
			if (pg && (rc = cache_put(pg, model, shas[i], tmp + j * (size_t)emb->dims,
						  emb->dims, err)) != LH_OK)
				goto out;
		}
	}
	/* repeated texts take the vector of their first occurrence */
	for (size_t i = 0; i < n; i++)
		if (!have[i])
			for (size_t j = 0; j < i; j++)
				if (have[j] && strcmp(shas[j], shas[i]) == 0) {
					memcpy(vecs + i * (size_t)emb->dims,
					       vecs + j * (size_t)emb->dims,
					       sizeof(float) * (size_t)emb->dims);
					have[i] = true;
					break;
				}
	*ret_vecs = vecs;
	*ret_dims = emb->dims;
	vecs = NULL;
out:
	free(vecs);
	free(tmp);
	free(shas);
	free(have);
	free(miss);
	free(miss_at);
	return rc;
}
