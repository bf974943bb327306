/* pg.h — the only door to libpq.
 *
 * A lh_pg_t is one connection that reconnects on demand: a call made while the server is gone
 * fails with a retriable LH_ERR_UNAVAILABLE and the next call tries to connect again. SQL is run
 * only by name (sql/queries.sql), prepared once per connection, parameters always bound; no SQL is
 * built by formatting. Calls block the calling thread: daemons use them from a thread of their own
 * or where blocking is the point (the materializer's batch commit). */
#ifndef LH_PG_H
#define LH_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct lh_pg lh_pg_t;
typedef struct lh_pg_res lh_pg_res_t;

/* Connect to url (a postgresql:// URL or key=value string). The URL is never logged. */
lh_err_t lh_pg_connect(const char *url, lh_pg_t **ret_pg, lh_error_t *err);
lh_pg_t *lh_pg_free(lh_pg_t *pg);

/* Apply missing migrations (sql/NNNN_*.sql). LH_ERR_CONFLICT when the database holds a newer
 * schema than this binary knows. *ret_applied (may be NULL) counts the migrations run now. */
lh_err_t lh_pg_migrate(lh_pg_t *pg, int *ret_applied, lh_error_t *err);
/* Highest migration applied in the database (0 for none) and the binary's own. */
lh_err_t lh_pg_schema_version(lh_pg_t *pg, int *ret_db, lh_error_t *err);
int lh_pg_schema_version_binary(void);

/* Run a named query with text parameters (NULL = SQL NULL). lens may be NULL (text params) or give
 * lengths of binary params marked in `binary` (may be NULL). On success *ret_res is new (free with
 * lh_pg_res_free) unless ret_res is NULL. */
lh_err_t lh_pg_query(lh_pg_t *pg, const char *name, int nparams, const char *const *params,
		     const int *lens, const int *binary, lh_pg_res_t **ret_res, lh_error_t *err);
/* lh_pg_query with text parameters and every result column in binary format: a text column is
 * its bytes, a real[] the array_send form (lh_embedder_parse_array_bin), an integer big-endian.
 * Values are NUL-terminated all the same (libpq adds one after every value), so a text column
 * reads as a string with lh_pg_get; lh_pg_get_i64 does NOT apply (cast integers to text in the
 * query). For large numeric arrays, where text output and parsing dominate. */
lh_err_t lh_pg_query_bin(lh_pg_t *pg, const char *name, int nparams, const char *const *params,
			 lh_pg_res_t **ret_res, lh_error_t *err);
/* Run the named query, a `COPY ... FROM STDIN`, with data (len bytes, in the format the query
 * names) as its input. Errors as lh_pg_query's (a row the server rejects is a data error with its
 * SQLSTATE). */
lh_err_t lh_pg_copy_in(lh_pg_t *pg, const char *name, const void *data, size_t len,
		       lh_error_t *err);
/* BEGIN / COMMIT / ROLLBACK. */
lh_err_t lh_pg_begin(lh_pg_t *pg, lh_error_t *err);
lh_err_t lh_pg_commit(lh_pg_t *pg, lh_error_t *err);
void lh_pg_rollback(lh_pg_t *pg);
/* A plain statement with no parameters, for tools and tests (e.g. "TRUNCATE ..."). */
lh_err_t lh_pg_exec(lh_pg_t *pg, const char *sql, lh_error_t *err);

int lh_pg_nrows(const lh_pg_res_t *res);
int lh_pg_ncols(const lh_pg_res_t *res);
/* Borrowed until lh_pg_res_free; "" for NULL (check lh_pg_isnull). */
const char *lh_pg_get(const lh_pg_res_t *res, int row, int col);
int lh_pg_getlen(const lh_pg_res_t *res, int row, int col);
bool lh_pg_isnull(const lh_pg_res_t *res, int row, int col);
int64_t lh_pg_get_i64(const lh_pg_res_t *res, int row, int col);
lh_pg_res_t *lh_pg_res_free(lh_pg_res_t *res);

#endif
