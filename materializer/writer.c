#include "writer.h"

#include <stdio.h>
#include <string.h>

#include "ids.h" /* lh_mono_us */
#include "log.h"

void lh_mwriter_init(lh_mwriter_t *w, lh_pg_t *pg, const char *consumer, const char *topic,
		     const lh_mwriter_ops_t *ops)
{
	memset(w, 0, sizeof(*w));
	w->pg = pg;
	w->consumer = consumer;
	w->topic = topic;
	if (ops)
		w->ops = *ops;
	lh_buf_init(&w->events);
	lh_buf_init(&w->offsets);
}

void lh_mwriter_finish(lh_mwriter_t *w)
{
	lh_buf_finish(&w->events);
	lh_buf_finish(&w->offsets);
}

bool lh_mwriter_is_data_error(const lh_error_t *err)
{
	/* pg.c appends "(sqlstate XXXXX)" to the server's message; the class is its first two
	 * characters. Connection loss never carries one. */
	const char *s = err ? strstr(err->msg, "(sqlstate ") : NULL;
	if (!s || err->retriable)
		return false;
	s += strlen("(sqlstate ");
	return strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0 || strncmp(s, "54", 2) == 0 ||
	       strncmp(s, "P0", 2) == 0;
}

/* One transaction over entries [lo, hi). */
static lh_err_t txn(lh_mwriter_t *w, lh_mbatch_t *b, size_t lo, size_t hi, lh_error_t *err)
{
	lh_pg_res_t *res = NULL;
	const char *params[3];
	size_t nev, nparts, staged;
	int64_t nnew = 0, t0 = lh_mono_us();
	lh_err_t rc;

	nev = lh_mbatch_copy(b, lo, hi, &w->events, &staged);
	nparts = lh_mbatch_offsets_json(b, lo, hi, w->topic, &w->offsets);
	if (lh_mbatch_has_skipped(b, lo, hi) && w->ops.sync_dead_letters &&
	    (rc = w->ops.sync_dead_letters(w->ops.opaque, err)))
		return rc;
	params[0] = w->consumer;
	params[1] = w->offsets.data;
	params[2] = w->ops.check_rounds ? "true" : "false";
	if ((rc = lh_pg_begin(w->pg, err)))
		return rc;
	if ((rc = lh_pg_query(w->pg, "materialize_begin", 0, NULL, NULL, NULL, NULL, err)) ||
	    (staged && (rc = lh_pg_copy_in(w->pg, "materialize_copy", w->events.data,
					   w->events.len, err))) ||
	    (rc = lh_pg_query(w->pg, "materialize_fold", 3, params, NULL, NULL, &res, err)))
		goto out_rollback;
	if (lh_pg_nrows(res) == 1 && !lh_pg_isnull(res, 0, 0))
		nnew = lh_pg_get_i64(res, 0, 0);
	res = lh_pg_res_free(res);
	if ((rc = lh_pg_commit(w->pg, err)))
		goto out_rollback;
	w->written += (uint64_t)nnew;
	w->duplicates += nev - (size_t)nnew;
	w->txns++;
	if (lh_log_debug_on(LH_DBG_PG)) {
		char es[24], ns[24], ps[24], us[24];
		lh_log_debug(LH_DBG_PG, "materializer.batch", "batch committed", "events",
			     lh_log_i64(es, (long long)nev), "new", lh_log_i64(ns, nnew), "partitions",
			     lh_log_i64(ps, (long long)nparts), "us",
			     lh_log_i64(us, lh_mono_us() - t0));
	}
	return LH_OK;
out_rollback:
	/* A COMMIT whose answer was lost may have committed: writing the range again is harmless. */
	lh_pg_rollback(w->pg);
	return rc;
}

static lh_err_t write_range(lh_mwriter_t *w, lh_mbatch_t *b, size_t lo, size_t hi, lh_error_t *err)
{
	lh_err_t rc;
	size_t mid;

	if (lo >= hi)
		return LH_OK;
	rc = txn(w, b, lo, hi, err);
	if (rc == LH_OK) {
		b->done = hi;
		return LH_OK;
	}
	if (!lh_mwriter_is_data_error(err))
		return rc;
	if (hi - lo == 1) {
		lh_mentry_t *e = &b->v[lo];
		char ps[24], os[24];
		lh_error_t rerr = {0};
		if (!e->row.fields)
			return rc; /* offsets alone rejected: a bug, not the data; keep retrying */
		lh_log_error("materializer.rejected", err->msg, "partition", lh_log_i64(ps, e->partition),
			     "offset", lh_log_i64(os, e->offset), "action",
			     "event sent to the dead-letter topic");
		if (!w->ops.reject) {
			lh_error_prefix(err, "no dead-letter topic for a rejected event");
			return rc;
		}
		if ((rc = w->ops.reject(w->ops.opaque, e, err->msg, &rerr))) {
			*err = rerr;
			return rc;
		}
		lh_mbatch_skip(b, lo);
		w->rejected++;
		return write_range(w, b, lo, hi, err); /* the offset alone now */
	}
	/* Bisect: commit the first half, then the second; each commit covers a prefix. */
	mid = lo + (hi - lo) / 2;
	if ((rc = write_range(w, b, lo, mid, err)))
		return rc;
	return write_range(w, b, mid, hi, err);
}

lh_err_t lh_mwriter_write(lh_mwriter_t *w, lh_mbatch_t *b, lh_error_t *err)
{
	return write_range(w, b, b->done, b->n, err);
}
