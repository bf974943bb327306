/* tools.c — `lh-materializer checksum` and `lh-materializer --rebuild` (see README.md).
 *
 * Schema names reach SQL only as bound parameters: the session's search_path is set with
 * set_config($1) (mat_session_schema), and DDL that needs an identifier reads it from a custom
 * setting inside a DO block that quotes it with format('%I') (mat_rebuild_*). */
#include "tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "blob.h"
#include "event.h"
#include "ids.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"
#include "writer.h"

#define MAX_PARTS 1024
#define KAFKA_TIMEOUT_MS 10000
#define STALL_TIMEOUT_US (60LL * 1000000)

static const char *const tables[] = {"plans",	       "plan_versions",	 "tasks",
				     "task_dependencies", "task_attempts", "plan_decisions",
				     "input_requests",	 "messages",	 "memories",
				     "summaries",	 "events"};
#define NTABLES ((int)(sizeof(tables) / sizeof(tables[0])))

bool lh_mtool_schema_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 40 || !((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_'))
			return false;
	return true;
}

/* Connect and make `schema` the session's only schema. */
static lh_err_t connect_schema(const char *url, const char *schema, lh_pg_t **ret_pg,
			       lh_error_t *err)
{
	const char *params[1] = {schema};
	lh_pg_t *pg = NULL;
	lh_err_t rc;
	if ((rc = lh_pg_connect(url, &pg, err)))
		return rc;
	if ((rc = lh_pg_query(pg, "mat_session_schema", 1, params, NULL, NULL, NULL, err))) {
		lh_pg_free(pg);
		return rc;
	}
	*ret_pg = pg;
	return LH_OK;
}

/* --- checksum ----------------------------------------------------------------------------- */

typedef struct sum {
	char rows[24];
	char hash[40];
} sum_t;

static lh_err_t checksum_all(lh_pg_t *pg, const char *topic, sum_t *out, lh_error_t *err)
{
	for (int i = 0; i < NTABLES; i++) {
		char name[64];
		const char *params[1] = {topic};
		lh_pg_res_t *res = NULL;
		lh_err_t rc;
		snprintf(name, sizeof(name), "mat_checksum_%s", tables[i]);
		if ((rc = lh_pg_query(pg, name, 1, params, NULL, NULL, &res, err))) {
			lh_error_prefix(err, "checksum of %s", tables[i]);
			return rc;
		}
		snprintf(out[i].rows, sizeof(out[i].rows), "%s", lh_pg_get(res, 0, 0));
		snprintf(out[i].hash, sizeof(out[i].hash), "%s", lh_pg_get(res, 0, 1));
		lh_pg_res_free(res);
	}
	return LH_OK;
}

int lh_mtool_checksum(const lh_mtool_opts_t *o)
{
	const char *against_schema = *o->against_schema ? o->against_schema : o->schema;
	sum_t a[NTABLES], b[NTABLES];
	lh_pg_t *pg = NULL;
	lh_error_t err = {0};
	int rc = 2, ndiff = 0;

	if (!lh_mtool_schema_ok(o->schema) || !lh_mtool_schema_ok(against_schema)) {
		fprintf(stderr, "lh-materializer: checksum: a schema name is [a-z_][a-z0-9_]*, at most "
				"40 characters\n");
		return 2;
	}
	if (connect_schema(o->pg_url, o->schema, &pg, &err) ||
	    checksum_all(pg, o->events_topic, a, &err))
		goto out_fail;
	pg = lh_pg_free(pg);
	if (*o->against_url && (connect_schema(o->against_url, against_schema, &pg, &err) ||
				checksum_all(pg, o->events_topic, b, &err)))
		goto out_fail;
	pg = lh_pg_free(pg);
	for (int i = 0; i < NTABLES; i++) {
		if (!*o->against_url) {
			printf("%s %s %s\n", tables[i], a[i].rows, a[i].hash);
			continue;
		}
		bool same = strcmp(a[i].rows, b[i].rows) == 0 && strcmp(a[i].hash, b[i].hash) == 0;
		printf("%s %s %s %s %s%s\n", tables[i], a[i].rows, a[i].hash, b[i].rows, b[i].hash,
		       same ? "" : " DIFFERS");
		ndiff += !same;
	}
	if (ndiff) {
		fprintf(stderr, "lh-materializer: checksum: %d table(s) differ:", ndiff);
		for (int i = 0; i < NTABLES; i++)
			if (strcmp(a[i].rows, b[i].rows) || strcmp(a[i].hash, b[i].hash))
				fprintf(stderr, " %s", tables[i]);
		fprintf(stderr, "\n");
	}
	return ndiff ? 1 : 0;
out_fail:
	fprintf(stderr, "lh-materializer: checksum: %s\n", err.msg);
	lh_pg_free(pg);
	return rc;
}

/* --- rebuild ------------------------------------------------------------------------------ */

typedef struct rebuild {
	const lh_mtool_opts_t *o;
	lh_mbatch_t batch;
	lh_mwriter_t writer;
	int nparts;
	int64_t next[MAX_PARTS], end[MAX_PARTS];
	uint64_t consumed, undecodable, rejected;
	int64_t last_progress_us;
	bool failed;
	lh_error_t err;
} rebuild_t;

/* A row PostgreSQL refuses on its own was refused by the live materializer too (and is in the
 * dlq already): skip it here as well, counted. */
static lh_err_t rb_reject(void *opaque, const lh_mentry_t *e, const char *reason, lh_error_t *err)
{
	rebuild_t *r = opaque;
	char ps[24], os[24];
	r->rejected++;
	lh_log_warn("materializer.rebuild_rejected", reason, "partition", lh_log_i64(ps, e->partition),
		    "offset", lh_log_i64(os, e->offset), "action", "skipped, as the live run did");
	return LH_OK;
}

static lh_err_t rb_sync(void *opaque, lh_error_t *err) { return LH_OK; }

static void rb_write(rebuild_t *r)
{
	if (r->failed || r->batch.done >= r->batch.n)
		return;
	if (lh_mwriter_write(&r->writer, &r->batch, &r->err)) {
		r->failed = true; /* one-shot: no retries; drop the schema and run again */
		return;
	}
	lh_mbatch_clear(&r->batch);
}

static void rb_on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	rebuild_t *r = opaque;
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	lh_mrow_t row;
	lh_err_t rc;
	if (r->failed || msg->partition < 0 || msg->partition >= r->nparts ||
	    msg->offset < r->next[msg->partition] || msg->offset >= r->end[msg->partition])
		return; /* past the end seen at start, or again */
	r->next[msg->partition] = msg->offset + 1;
	r->consumed++;
	r->last_progress_us = lh_mono_us();
	if (lh_event_decode(msg->payload, msg->len, &ev, &err) == LH_OK) {
		rc = lh_mbatch_row(ev, msg->topic, msg->partition, msg->offset, &row, &err);
		lh_event_free(ev);
	} else
		rc = LH_ERR_SCHEMA;
	if (rc == LH_OK)
		lh_mbatch_add(&r->batch, msg->partition, msg->offset, &row, msg->key, msg->key_len,
			      msg->payload, msg->len);
	else {
		/* the live materializer dead-lettered it: store only its offset */
		r->undecodable++;
		lh_mbatch_add(&r->batch, msg->partition, msg->offset, NULL, NULL, 0, NULL, 0);
	}
	if (r->batch.n - r->batch.done >= (size_t)r->o->batch_max_events)
		rb_write(r);
}

static bool rb_reached_end(const rebuild_t *r)
{
	for (int i = 0; i < r->nparts; i++)
		if (r->next[i] < r->end[i])
			return false;
	return true;
}

/* Read the topic from the beginning up to the high watermarks seen now, into the schema. */
static lh_err_t rb_replay(rebuild_t *r, lh_pg_t *pg, lh_error_t *err)
{
	const lh_mtool_opts_t *o = r->o;
	lh_mwriter_ops_t ops = {.reject = rb_reject, .sync_dead_letters = rb_sync, .opaque = r,
				.check_rounds = o->check_rounds};
	lh_kafka_opts_t ko = {.brokers = o->brokers, .client_id = "lh-materializer-rebuild",
			      .group_id = "lh-materializer-rebuild", /* required; never joined */
			      .on_message = rb_on_message, .opaque = r};
	lh_kafka_part_t parts[MAX_PARTS];
	lh_kafka_t *k = NULL;
	lh_err_t rc;

	lh_mbatch_init(&r->batch);
	lh_mwriter_init(&r->writer, pg, o->consumer, o->events_topic, &ops);
	if ((rc = lh_kafka_new(&ko, &k, err)))
		goto out_free_batch;
	if ((rc = lh_kafka_wait_ready(k, KAFKA_TIMEOUT_MS, err)) ||
	    (rc = lh_kafka_partition_count(k, o->events_topic, KAFKA_TIMEOUT_MS, &r->nparts, err)))
		goto out_free_kafka;
	if (r->nparts <= 0 || r->nparts > MAX_PARTS) {
		rc = lh_error_set(err, LH_ERR_KAFKA, "could not use %s: %d partitions",
				  o->events_topic, r->nparts);
		goto out_free_kafka;
	}
	for (int i = 0; i < r->nparts; i++) {
		int64_t lo = 0;
		if ((rc = lh_kafka_watermarks(k, o->events_topic, i, KAFKA_TIMEOUT_MS, &lo,
					      &r->end[i], err)))
			goto out_free_kafka;
		r->next[i] = lo; /* anything below the low watermark is gone from the log */
		parts[i] = (lh_kafka_part_t){.topic = o->events_topic, .partition = i,
					     .offset = LH_KAFKA_OFFSET_BEGINNING};
	}
	if ((rc = lh_kafka_assign(k, parts, r->nparts, err)))
		goto out_free_kafka;
	r->last_progress_us = lh_mono_us();
	while (!r->failed && !rb_reached_end(r)) {
		lh_kafka_poll(k, 100);
		if (lh_mono_us() - r->last_progress_us > STALL_TIMEOUT_US) {
			rc = lh_error_set(err, LH_ERR_TIMEOUT,
					  "could not read %s: no progress for %lld s",
					  o->events_topic, STALL_TIMEOUT_US / 1000000);
			goto out_free_kafka;
		}
	}
	rb_write(r);
	if (r->failed) {
		*err = r->err;
		rc = err->code ? err->code : LH_ERR_PG;
	}
out_free_kafka:
	lh_kafka_free(k);
out_free_batch:
	lh_mwriter_finish(&r->writer);
	lh_mbatch_finish(&r->batch);
	return rc;
}

int lh_mtool_rebuild(const lh_mtool_opts_t *o)
{
	rebuild_t *r = calloc(1, sizeof(*r));
	char old[96], ns[24], ws[24], ds[24], us[24], js[24];
	const char *names[3] = {o->schema, o->live_schema, old};
	lh_pg_t *pg = NULL;
	lh_error_t err = {0};
	int64_t t0 = lh_mono_us();
	time_t now = time(NULL);
	struct tm tm;
	int applied = 0, rc = 1;

	if (!r)
		abort();
	r->o = o;
	if (!lh_mtool_schema_ok(o->schema) || !lh_mtool_schema_ok(o->live_schema) ||
	    strcmp(o->schema, o->live_schema) == 0) {
		fprintf(stderr, "lh-materializer: --rebuild: --schema and --live-schema are names "
				"[a-z_][a-z0-9_]*, at most 40 characters, and differ\n");
		free(r);
		return 2;
	}
	gmtime_r(&now, &tm);
	snprintf(old, sizeof(old), "%s_old_%04d%02d%02d%02d%02d%02d", o->schema, tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (lh_pg_connect(o->pg_url, &pg, &err) ||
	    lh_pg_query(pg, "mat_rebuild_names", 3, names, NULL, NULL, NULL, &err))
		goto out_fail;
	if (lh_pg_query(pg, "mat_rebuild_create_schema", 0, NULL, NULL, NULL, NULL, &err)) {
		lh_error_prefix(&err, "could not create schema %s", o->schema);
		goto out_fail;
	}
	{
		const char *p[1] = {o->schema};
		if (lh_pg_query(pg, "mat_session_schema", 1, p, NULL, NULL, NULL, &err) ||
		    lh_pg_migrate(pg, &applied, &err))
			goto out_fail;
	}
	if (lh_pg_query(pg, "mat_rebuild_copy_blobs", 0, NULL, NULL, NULL, NULL, &err)) {
		lh_error_prefix(&err, "could not copy the blobs of %s", o->live_schema);
		goto out_fail;
	}
	if (rb_replay(r, pg, &err))
		goto out_fail;
	printf("rebuilt schema %s from %s: %llu messages read, %llu events written, %llu "
	       "duplicates, %llu undecodable, %llu rejected, %d migrations, %lld ms\n",
	       o->schema, o->events_topic, (unsigned long long)r->consumed,
	       (unsigned long long)r->writer.written, (unsigned long long)r->writer.duplicates,
	       (unsigned long long)r->undecodable, (unsigned long long)r->rejected, applied,
	       (long long)((lh_mono_us() - t0) / 1000));
	lh_log_info("materializer.rebuilt", "schema rebuilt from the log", "schema", o->schema,
		    "messages", lh_log_i64(ns, (long long)r->consumed), "written",
		    lh_log_i64(ws, (long long)r->writer.written), "duplicates",
		    lh_log_i64(ds, (long long)r->writer.duplicates), "undecodable",
		    lh_log_i64(us, (long long)r->undecodable), "rejected",
		    lh_log_i64(js, (long long)r->rejected));
	if (o->swap) {
		if (lh_pg_begin(pg, &err))
			goto out_fail;
		if (lh_pg_query(pg, "mat_rebuild_swap", 0, NULL, NULL, NULL, NULL, &err) ||
		    lh_pg_commit(pg, &err)) {
			lh_pg_rollback(pg);
			lh_error_prefix(&err, "could not swap %s in for %s", o->schema,
					o->live_schema);
			goto out_fail;
		}
		printf("swapped: %s is now %s; the previous %s is %s\n", o->schema, o->live_schema,
		       o->live_schema, old);
	}
	rc = 0;
	goto out_free;
out_fail:
	fprintf(stderr, "lh-materializer: --rebuild: %s\n", err.msg);
	fprintf(stderr, "lh-materializer: --rebuild: nothing live was changed; drop schema %s "
			"(DROP SCHEMA ... CASCADE) before running again\n",
		o->schema);
out_free:
	lh_pg_free(pg);
	free(r);
	return rc;
}

/* --- gc-blobs ----------------------------------------------------------------------------- */

int lh_mtool_gc_blobs(const lh_mtool_opts_t *o)
{
	lh_pg_t *pg = NULL;
	lh_error_t err = {0};
	int64_t deleted = 0;
	char ds[24], ns[24];
	if (!lh_mtool_schema_ok(o->schema)) {
		fprintf(stderr, "lh-materializer: gc-blobs: a schema name is [a-z_][a-z0-9_]*, at most "
				"40 characters\n");
		return 2;
	}
	if (connect_schema(o->pg_url, o->schema, &pg, &err) ||
	    lh_blob_gc(pg, (int)o->older_than_days, &deleted, &err)) {
		fprintf(stderr, "lh-materializer: gc-blobs: %s\n", err.msg);
		lh_pg_free(pg);
		return 1;
	}
	lh_pg_free(pg);
	printf("deleted %lld unreferenced blob%s older than %lld day%s\n", (long long)deleted,
	       deleted == 1 ? "" : "s", (long long)o->older_than_days,
	       o->older_than_days == 1 ? "" : "s");
	lh_log_info("materializer.gc_blobs", "unreferenced blobs deleted", "deleted",
		    lh_log_i64(ds, (long long)deleted), "older_than_days",
		    lh_log_i64(ns, (long long)o->older_than_days));
	return 0;
}
