/* blob.h — content-addressed blobs in PostgreSQL (DESIGN.md section 2, rule 7).
 *
 * Outputs too big to travel in an event are stored once in `blobs` under the hex sha256 of their
 * bytes (the "ref"), before the event that names them is produced; the event then carries
 * `output_ref` and a null `output`. Readers resolve a ref back to the JSON value: the
 * materializer's projection does it in SQL (lh_output, sql/0006), the gateway and tools call
 * lh_blob_resolve_output. A blob is immutable, so writing the same bytes twice is one row.
 * lh_blob_gc removes blobs that no event and no task names, older than N days (blobs younger
 * than that may belong to an event not produced yet).
 *
 * Every call blocks on PostgreSQL (lh_pg_t, named queries blob_*). Not thread-safe per store:
 * one store per thread. */
#ifndef LH_BLOB_H
#define LH_BLOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "pg.h"

#define LH_BLOB_REF_LEN 64		      /* hex sha256 */
#define LH_BLOB_MAX_BYTES (64 * 1024 * 1024) /* refused above: a blob is one bytea value */

/* The ref (hex sha256, NUL-terminated) of len bytes at data. */
void lh_blob_ref_of(const void *data, size_t len, char ret_ref[LH_BLOB_REF_LEN + 1]);
/* True when s is a well-formed ref (64 lower-case hex digits). */
bool lh_blob_ref_ok(const char *s);

/* Store len bytes (at most LH_BLOB_MAX_BYTES) with a content type (NULL: application/json);
 * writes its ref to ret_ref. Storing bytes that are already there changes nothing. */
lh_err_t lh_blob_put(lh_pg_t *pg, const void *data, size_t len, const char *content_type,
		     char ret_ref[LH_BLOB_REF_LEN + 1], lh_error_t *err);

/* Read the blob named ref into out (reset first). LH_ERR_NOT_FOUND when there is none; LH_ERR_PG
 * when the stored bytes do not hash to the ref (corruption: never returned as data). */
lh_err_t lh_blob_get(lh_pg_t *pg, const char *ref, lh_buf_t *out, lh_error_t *err);

/* The JSON value stored under ref: new reference on success. */
lh_err_t lh_blob_get_json(lh_pg_t *pg, const char *ref, json_t **ret_value, lh_error_t *err);

/* Writers: when the compact JSON of value is longer than threshold bytes, store it and write its
 * ref to ret_ref (*ret_stored = true); otherwise leave ret_ref empty (*ret_stored = false) and the
 * caller sends the value inline. value is borrowed. */
lh_err_t lh_blob_offload(lh_pg_t *pg, const json_t *value, size_t threshold,
			 char ret_ref[LH_BLOB_REF_LEN + 1], bool *ret_stored, lh_error_t *err);

/* Readers: obj is an object holding "output" and maybe "output_ref" (an attempt.succeeded body, a
 * task row as JSON). When output_ref is a ref and output is null or missing, output is replaced
 * by the blob's value. An object without a ref is left alone (LH_OK). LH_ERR_NOT_FOUND when the
 * blob is gone. */
lh_err_t lh_blob_resolve_output(lh_pg_t *pg, json_t *obj, lh_error_t *err);

/* Delete blobs older than older_than_days (0..36500) that no event body and no task names
 * (output_ref); *ret_deleted (may be NULL) counts them. */
lh_err_t lh_blob_gc(lh_pg_t *pg, int older_than_days, int64_t *ret_deleted, lh_error_t *err);

/* A store for a daemon's loop thread: connects lazily (pg_url), with a threshold. A store whose
 * pg_url is empty never offloads. */
typedef struct lh_blob_store lh_blob_store_t;
lh_blob_store_t *lh_blob_store_new(const char *pg_url, size_t threshold);
lh_blob_store_t *lh_blob_store_free(lh_blob_store_t *bs);

/* For a producer about to emit an event with `output`: if the output is above the threshold and
 * can be stored, returns true with ret_ref set (send output null + output_ref); otherwise false,
 * and the output goes inline. A failure to store is logged (warn) and the output goes inline:
 * never worse than without blobs. */
bool lh_blob_store_offload(lh_blob_store_t *bs, const json_t *output,
			   char ret_ref[LH_BLOB_REF_LEN + 1]);

/* For a reader of events (the coordinator's fold): the JSON value named by ref, through the
 * store's connection (connected on demand). New reference on success. */
lh_err_t lh_blob_store_get_json(lh_blob_store_t *bs, const char *ref, json_t **ret_value,
				lh_error_t *err);

#endif
