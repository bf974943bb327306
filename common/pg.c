#include "pg.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lh_sql.h"

struct lh_pg {
	PGconn *conn;
	char *url;
	bool *prepared; /* per named query, on this connection */
};

struct lh_pg_res {
	PGresult *r;
};

static void notice_cb(void *arg, const char *message)
{
	lh_log_debug(LH_DBG_PG, "pg.notice", message);
}

/* The server's message without the trailing newline, or libpq's. */
static const char *conn_msg(PGconn *c, char *buf, size_t n)
{
	size_t l;
	snprintf(buf, n, "%s", c ? PQerrorMessage(c) : "no connection");
	l = strlen(buf);
	while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == ' '))
		buf[--l] = 0;
	return buf;
}

static lh_err_t do_connect(lh_pg_t *pg, lh_error_t *err)
{
	char m[512];
	if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
		return LH_OK;
	if (pg->conn)
		PQfinish(pg->conn);
	pg->conn = PQconnectdb(pg->url);
	memset(pg->prepared, 0, sizeof(bool) * (size_t)(lh_sql_query_count + 1));
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		lh_error_retry(err, LH_ERR_UNAVAILABLE, "could not connect to postgresql: %s",
			       conn_msg(pg->conn, m, sizeof(m)));
		PQfinish(pg->conn);
		pg->conn = NULL;
		return LH_ERR_UNAVAILABLE;
	}
	PQsetNoticeProcessor(pg->conn, notice_cb, NULL);
	return LH_OK;
}

lh_err_t lh_pg_connect(const char *url, lh_pg_t **ret_pg, lh_error_t *err)
{
	lh_pg_t *pg;
	lh_err_t rc;
	if (!url || !*url)
		return lh_error_set(err, LH_ERR_CONFIG, "no postgresql url configured");
	pg = calloc(1, sizeof(*pg));
	if (!pg)
		abort();
	pg->url = strdup(url);
	pg->prepared = calloc((size_t)lh_sql_query_count + 1, sizeof(bool));
	if ((rc = do_connect(pg, err))) {
		lh_pg_free(pg);
		return rc;
	}
	*ret_pg = pg;
	return LH_OK;
}

lh_pg_t *lh_pg_free(lh_pg_t *pg)
{
	if (!pg)
		return NULL;
	if (pg->conn)
		PQfinish(pg->conn);
	free(pg->url);
	free(pg->prepared);
	free(pg);
	return NULL;
}

/* Turn a failed result into an lh_error_t; connection loss is retriable. */
static lh_err_t res_error(lh_pg_t *pg, PGresult *r, const char *what, lh_error_t *err)
{
	char m[512];
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	bool lost = PQstatus(pg->conn) != CONNECTION_OK;
	lh_err_t code = lost ? LH_ERR_UNAVAILABLE : LH_ERR_PG;
	if (state && strcmp(state, "23505") == 0)
		code = LH_ERR_CONFLICT;
	lh_error_set(err, code, "%s failed: %s%s%s%s", what, msg ? msg : conn_msg(pg->conn, m, sizeof(m)),
		     state ? " (sqlstate " : "", state ? state : "", state ? ")" : "");
	/* Retriable: connection loss, serialization failure, deadlock, admin shutdown. */
	if (err && (lost || (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
				       strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0))))
		err->retriable = true;
	if (lost) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
	return code;
}

lh_err_t lh_pg_exec(lh_pg_t *pg, const char *sql, lh_error_t *err)
{
	PGresult *r;
	lh_err_t rc;
	if ((rc = do_connect(pg, err)))
		return rc;
	r = PQexec(pg->conn, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		/* a short one names itself: "COMMIT failed: ..." (a deferred check fails there) */
		rc = res_error(pg, r, strlen(sql) <= 16 ? sql : "statement", err);
		PQclear(r);
		return rc;
	}
	PQclear(r);
	return LH_OK;
}

lh_err_t lh_pg_begin(lh_pg_t *pg, lh_error_t *err) { return lh_pg_exec(pg, "BEGIN", err); }
lh_err_t lh_pg_commit(lh_pg_t *pg, lh_error_t *err) { return lh_pg_exec(pg, "COMMIT", err); }

void lh_pg_rollback(lh_pg_t *pg)
{
	if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
		PQclear(PQexec(pg->conn, "ROLLBACK"));
}

static int find_query(const char *name)
{
	for (int i = 0; i < lh_sql_query_count; i++)
		if (strcmp(lh_sql_queries[i].name, name) == 0)
			return i;
	return -1;
}

static lh_err_t query(lh_pg_t *pg, const char *name, int nparams, const char *const *params,
		      const int *lens, const int *binary, int result_format, lh_pg_res_t **ret_res,
		      lh_error_t *err)
{
	int qi = find_query(name);
	PGresult *r;
	lh_err_t rc;
	ExecStatusType st;
	if (qi < 0)
		return lh_error_set(err, LH_ERR_INTERNAL, "unknown named query \"%s\"", name);
	if ((rc = do_connect(pg, err)))
		return rc;
	if (!pg->prepared[qi]) {
		r = PQprepare(pg->conn, name, lh_sql_queries[qi].sql, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			char what[128];
			snprintf(what, sizeof(what), "preparing query %s", name);
			rc = res_error(pg, r, what, err);
			PQclear(r);
			return rc;
		}
		PQclear(r);
		pg->prepared[qi] = true;
	}
	r = PQexecPrepared(pg->conn, name, nparams, params, lens, binary, result_format);
	st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char what[128];
		snprintf(what, sizeof(what), "query %s", name);
		rc = res_error(pg, r, what, err);
		PQclear(r);
		return rc;
	}
	if (ret_res) {
		lh_pg_res_t *res = malloc(sizeof(*res));
		if (!res)
			abort();
		res->r = r;
		*ret_res = res;
	} else
		PQclear(r);
	return LH_OK;
}

lh_err_t lh_pg_query(lh_pg_t *pg, const char *name, int nparams, const char *const *params,
		     const int *lens, const int *binary, lh_pg_res_t **ret_res, lh_error_t *err)
{
	return query(pg, name, nparams, params, lens, binary, 0, ret_res, err);
}

lh_err_t lh_pg_query_bin(lh_pg_t *pg, const char *name, int nparams, const char *const *params,
			 lh_pg_res_t **ret_res, lh_error_t *err)
{
	return query(pg, name, nparams, params, NULL, NULL, 1, ret_res, err);
}

lh_err_t lh_pg_copy_in(lh_pg_t *pg, const char *name, const void *data, size_t len,
		       lh_error_t *err)
{
	int qi = find_query(name);
	char what[128];
	PGresult *r;
	lh_err_t rc = LH_OK;
	bool sent = true;
	if (qi < 0)
		return lh_error_set(err, LH_ERR_INTERNAL, "unknown named query \"%s\"", name);
	if ((rc = do_connect(pg, err)))
		return rc;
	snprintf(what, sizeof(what), "query %s", name);
	r = PQexec(pg->conn, lh_sql_queries[qi].sql); /* COPY cannot be prepared */
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		rc = res_error(pg, r, what, err);
		PQclear(r);
		return rc;
	}
	PQclear(r);
	/* Blocking connection: each call returns once libpq has queued or sent the bytes. */
	for (size_t off = 0; off < len && sent;) {
		size_t n = len - off < ((size_t)1 << 20) ? len - off : (size_t)1 << 20;
		sent = PQputCopyData(pg->conn, (const char *)data + off, (int)n) == 1;
		off += n;
	}
	if (PQputCopyEnd(pg->conn, sent ? NULL : "lh: sending the COPY data failed") != 1)
		sent = false;
	r = PQgetResult(pg->conn);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = res_error(pg, r, what, err);
		PQclear(r);
	} else {
		PQclear(r);
		if (!sent) /* cannot happen with a COMMAND_OK; never report success without the data */
			rc = lh_error_set(err, LH_ERR_INTERNAL, "%s: COPY data not sent", what);
	}
	/* a COPY has one result; read to the end so the connection is ready for the next query */
	while (pg->conn && (r = PQgetResult(pg->conn)))
		PQclear(r);
	return rc;
}

int lh_pg_nrows(const lh_pg_res_t *res) { return PQntuples(res->r); }
int lh_pg_ncols(const lh_pg_res_t *res) { return PQnfields(res->r); }
const char *lh_pg_get(const lh_pg_res_t *res, int row, int col)
{
	return PQgetvalue(res->r, row, col);
}
int lh_pg_getlen(const lh_pg_res_t *res, int row, int col) { return PQgetlength(res->r, row, col); }
bool lh_pg_isnull(const lh_pg_res_t *res, int row, int col)
{
	return PQgetisnull(res->r, row, col);
}
int64_t lh_pg_get_i64(const lh_pg_res_t *res, int row, int col)
{
	return strtoll(PQgetvalue(res->r, row, col), NULL, 10);
}

lh_pg_res_t *lh_pg_res_free(lh_pg_res_t *res)
{
	if (res) {
		PQclear(res->r);
		free(res);
	}
	return NULL;
}

int lh_pg_schema_version_binary(void) { return lh_sql_migration_count; }

static const char *const create_migrations =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version integer PRIMARY KEY, name text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now())";

lh_err_t lh_pg_schema_version(lh_pg_t *pg, int *ret_db, lh_error_t *err)
{
	PGresult *r;
	lh_err_t rc;
	if ((rc = do_connect(pg, err)))
		return rc;
	r = PQexec(pg->conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "42P01") == 0) { /* undefined table: empty database */
			PQclear(r);
			*ret_db = 0;
			return LH_OK;
		}
		rc = res_error(pg, r, "reading schema version", err);
		PQclear(r);
		return rc;
	}
	*ret_db = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return LH_OK;
}

lh_err_t lh_pg_migrate(lh_pg_t *pg, int *ret_applied, lh_error_t *err)
{
	int have = 0, applied = 0;
	lh_err_t rc;
	/* One migrator at a time, across processes: a session-level advisory lock. */
	if ((rc = lh_pg_exec(pg, "SELECT pg_advisory_lock(7311001)", err)))
		return rc;
	if ((rc = lh_pg_exec(pg, create_migrations, err)) ||
	    (rc = lh_pg_schema_version(pg, &have, err)))
		goto out_unlock;
	if (have > lh_sql_migration_count) {
		rc = lh_error_set(err, LH_ERR_CONFLICT,
				  "database schema is version %d but this binary knows only %d: "
				  "upgrade the binary",
				  have, lh_sql_migration_count);
		goto out_unlock;
	}
	for (int i = have; i < lh_sql_migration_count; i++) {
		const lh_sql_migration_t *m = &lh_sql_migrations[i];
		char ver[16];
		const char *params[2] = {ver, m->name};
		PGresult *r;
		snprintf(ver, sizeof(ver), "%d", m->version);
		if ((rc = lh_pg_begin(pg, err)))
			goto out_unlock;
		if ((rc = lh_pg_exec(pg, m->sql, err))) {
			lh_error_prefix(err, "migration %s", m->name);
			lh_pg_rollback(pg);
			goto out_unlock;
		}
		r = PQexecParams(pg->conn,
				 "INSERT INTO schema_migrations (version, name) VALUES ($1::integer, $2)",
				 2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			rc = res_error(pg, r, "recording migration", err);
			PQclear(r);
			lh_pg_rollback(pg);
			goto out_unlock;
		}
		PQclear(r);
		if ((rc = lh_pg_commit(pg, err)))
			goto out_unlock;
		applied++;
	}
	if (ret_applied)
		*ret_applied = applied;
out_unlock:
	if (pg->conn)
		PQclear(PQexec(pg->conn, "SELECT pg_advisory_unlock(7311001)"));
	return rc;
}
