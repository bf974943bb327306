/* relay.c — the outbox relay of memories and rolling summaries (relay.h). */
#include "relay.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "bus.h"
#include "ids.h"
#include "kafka.h"
#include "log.h"
#include "memory.h"
#include "pg.h"

#define FLUSH_TIMEOUT_MS 30000
#define RETRY_MAX_MS 10000 /* back-off ceiling while PostgreSQL or the broker is down */

struct lh_relay {
	lh_relay_cfg_t cfg;
	char *pg_url, *brokers, *topic;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	atomic_uint_fast64_t published;
	atomic_int failed; /* delivery reports with an error in the current round */
	lh_kafka_t *producer;
	lh_pg_t *pg;
};

static void on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
			int32_t partition, int64_t offset)
{
	lh_relay_t *r = opaque;
	if (rc) {
		atomic_fetch_add(&r->failed, 1);
		lh_log_warn("materializer.relay_delivery", err ? err->msg : "not delivered");
	}
}

/* Wait ms unless stopping; true when stopping. */
static bool pause_ms(lh_relay_t *r, int ms)
{
	struct timespec ts;
	bool stop;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT)
		;
	stop = r->stop;
	pthread_mutex_unlock(&r->mu);
	return stop;
}

/* What the relay publishes: a table's outbox, read and settled by two named queries. The take
 * query's columns: 0 the entry's seq, 1 whether the row is still there, 2 tenant (or NULL),
 * 3 plan id (or NULL: the tenant's memory stream), 4 the cause the event id derives from,
 * 5 the event body as JSON. */
typedef struct source {
	const char *take, *done;
	lh_event_type_t type;
} source_t;

static const source_t SOURCES[] = {
	{"memory_outbox_take", "memory_outbox_done", LH_EV_MEMORY_WRITTEN},
	{"summary_outbox_take", "summary_outbox_done", LH_EV_SUMMARY_WRITTEN},
};
#define NSOURCES ((int)(sizeof(SOURCES) / sizeof(SOURCES[0])))

/* Publish one taken row; false when it could not be produced (logged). */
static bool publish_row(lh_relay_t *r, const source_t *src, const lh_pg_res_t *res, int i,
			lh_buf_t *scratch)
{
	json_error_t jerr;
	lh_error_t err = {0};
	json_t *b = json_loads(lh_pg_get(res, i, 5), 0, &jerr);
	const char *tenant = lh_pg_isnull(res, i, 2) ? NULL : lh_pg_get(res, i, 2);
	const char *cause = lh_pg_get(res, i, 4);
	lh_memory_written_t mw;
	lh_summary_written_t sw;
	lh_event_t ev = {.v = LH_ENVELOPE_VERSION,
			 .type = src->type,
			 .task_no = LH_NO_TASK,
			 .ts_us = lh_now_us(),
			 .tenant = tenant,
			 .actor = {.kind = "materializer", .id = "relay"}};
	bool ok = false;
	if (!b) {
		lh_log_error("materializer.relay_row", jerr.text);
		return false;
	}
	if (lh_pg_isnull(res, i, 3))
		ev.plan_id = lh_memory_stream_id(tenant);
	else if (lh_uuid_parse(lh_pg_get(res, i, 3), &ev.plan_id)) {
		lh_log_error("materializer.relay_row", "not a plan id", "plan", lh_pg_get(res, i, 3));
		goto out;
	}
	if (src->type == LH_EV_MEMORY_WRITTEN) {
		mw = (lh_memory_written_t){
			.memory_id = json_integer_value(json_object_get(b, "memory_id")),
			.version = json_integer_value(json_object_get(b, "version")),
			.row = json_object_get(b, "row")};
		ev.body = &mw;
	} else {
		sw = (lh_summary_written_t){
			.subject = json_string_value(json_object_get(b, "subject")),
			.version = json_integer_value(json_object_get(b, "version")),
			.row = json_object_get(b, "row")};
		ev.body = &sw;
	}
	ev.id = lh_event_id_derive(&ev.plan_id, cause, strlen(cause), lh_event_type_name(src->type),
				   0);
	if (lh_bus_emit(r->producer, r->topic, &ev, false, scratch, NULL, &err))
		lh_log_warn("materializer.relay_produce", err.msg);
	else
		ok = true;
out:
	json_decref(b);
	return ok;
}

/* One round of one source: publish up to cfg.batch queued entries. Returns how many entries
 * were settled (0: nothing queued), or -1 on an error (logged; the entries stay queued and go
 * again: their event ids make the copies duplicates). */
static int round_once(lh_relay_t *r, const source_t *src, lh_buf_t *scratch)
{
	lh_error_t err = {0};
	lh_pg_res_t *res = NULL;
	char lim[16];
	const char *p[1] = {lim};
	int n, sent = 0, rc = -1;
	lh_buf_t seqs;

	snprintf(lim, sizeof(lim), "%d", r->cfg.batch);
	if (lh_pg_query(r->pg, src->take, 1, p, NULL, NULL, &res, &err)) {
		lh_log_warn("materializer.relay_pg", err.msg);
		return -1;
	}
	if ((n = lh_pg_nrows(res)) == 0) {
		lh_pg_res_free(res);
		return 0;
	}
	atomic_store(&r->failed, 0);
	lh_buf_init(&seqs);
	lh_buf_appends(&seqs, "{");
	for (int i = 0; i < n; i++) {
		/* a row that is gone (a test's clean-up) has nothing to say: its entry just goes */
		if (strcmp(lh_pg_get(res, i, 1), "t") == 0) {
			if (!publish_row(r, src, res, i, scratch))
				goto out;
			sent++;
		}
		lh_buf_printf(&seqs, "%s%s", i ? "," : "", lh_pg_get(res, i, 0));
	}
	lh_buf_appends(&seqs, "}");
	if (sent && lh_kafka_flush(r->producer, FLUSH_TIMEOUT_MS, &err)) {
		lh_log_warn("materializer.relay_flush", err.msg);
		goto out;
	}
	if (atomic_load(&r->failed))
		goto out; /* logged by on_delivery; the whole round goes again */
	p[0] = seqs.data;
	if (lh_pg_query(r->pg, src->done, 1, p, NULL, NULL, NULL, &err))
		lh_log_warn("materializer.relay_pg", err.msg);
	else {
		atomic_fetch_add(&r->published, (uint64_t)sent);
		rc = n;
	}
out:
	lh_buf_finish(&seqs);
	lh_pg_res_free(res);
	return rc;
}

static void *run(void *arg)
{
	lh_relay_t *r = arg;
	lh_buf_t scratch;
	int backoff = 100;
	lh_buf_init(&scratch);
	for (;;) {
		int got;
		pthread_mutex_lock(&r->mu);
		bool stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			break;
		if (!r->pg) {
			lh_error_t err = {0};
			if (lh_pg_connect(r->pg_url, &r->pg, &err)) {
				lh_log_warn("materializer.relay_pg", err.msg);
				if (pause_ms(r, backoff))
					break;
				backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
				continue;
			}
		}
		got = 0;
		for (int i = 0; i < NSOURCES && got >= 0; i++) {
			int g = round_once(r, &SOURCES[i], &scratch);
			got = g < 0 ? g : got + g;
		}
		if (got < 0) {
			if (pause_ms(r, backoff))
				break;
			backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
		} else {
			backoff = 100;
			if (got == 0 && pause_ms(r, r->cfg.interval_ms))
				break;
		}
	}
	lh_buf_finish(&scratch);
	return NULL;
}

lh_err_t lh_relay_start(const lh_relay_cfg_t *cfg, lh_relay_t **ret, lh_error_t *err)
{
	lh_relay_t *r = calloc(1, sizeof(*r));
	lh_kafka_opts_t ko = {0};
	lh_err_t rc;
	if (!r)
		return lh_error_set(err, LH_ERR_NOMEM, "memory relay: out of memory");
	r->cfg = *cfg;
	r->pg_url = strdup(cfg->pg_url);
	r->brokers = strdup(cfg->brokers);
	r->topic = strdup(cfg->events_topic);
	if (!r->pg_url || !r->brokers || !r->topic)
		abort();
	if (r->cfg.batch < 1)
		r->cfg.batch = 200;
	if (r->cfg.interval_ms < 1)
		r->cfg.interval_ms = 500;
	ko = (lh_kafka_opts_t){.brokers = r->brokers, .client_id = "lh-materializer-relay",
			       .on_delivery = on_delivery, .opaque = r};
	if ((rc = lh_kafka_new(&ko, &r->producer, err)))
		goto fail;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (pthread_create(&r->thread, NULL, run, r)) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		rc = lh_error_set(err, LH_ERR_INTERNAL, "memory relay: could not start its thread");
		goto fail;
	}
	*ret = r;
	return LH_OK;
fail:
	lh_kafka_free(r->producer);
	free(r->pg_url);
	free(r->brokers);
	free(r->topic);
	free(r);
	return rc;
}

void lh_relay_stop(lh_relay_t *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	lh_kafka_free(r->producer);
	lh_pg_free(r->pg);
	free(r->pg_url);
	free(r->brokers);
	free(r->topic);
	free(r);
}

uint64_t lh_relay_published(const lh_relay_t *r)
{
	return atomic_load(&((lh_relay_t *)r)->published);
}
