/* relay.c — the memories' outbox relay (relay.h). */
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

/* A PostgreSQL bigint[] literal of ids ("{1,2,3}") into b. */
static void array_literal(lh_buf_t *b, const int64_t *v, int n)
{
	lh_buf_reset(b);
	lh_buf_appends(b, "{");
	for (int i = 0; i < n; i++)
		lh_buf_printf(b, "%s%lld", i ? "," : "", (long long)v[i]);
	lh_buf_appends(b, "}");
}

/* One round: publish up to cfg.batch queued changes. Returns how many queue entries were
 * settled (0: the queue was empty), or -1 on an error (logged; the entries stay queued). */
static int round_once(lh_relay_t *r, lh_buf_t *scratch)
{
	lh_error_t err = {0};
	lh_pg_res_t *res = NULL;
	char lim[16];
	const char *p[2] = {lim, NULL};
	int n, sent = 0, rc = -1;
	int64_t *ids = NULL, *vers = NULL;
	lh_buf_t a, b;

	snprintf(lim, sizeof(lim), "%d", r->cfg.batch);
	if (lh_pg_query(r->pg, "memory_outbox_take", 1, p, NULL, NULL, &res, &err)) {
		lh_log_warn("materializer.relay_pg", err.msg);
		return -1;
	}
	if ((n = lh_pg_nrows(res)) == 0) {
		lh_pg_res_free(res);
		return 0;
	}
	ids = calloc((size_t)n, sizeof(*ids));
	vers = calloc((size_t)n, sizeof(*vers));
	if (!ids || !vers)
		abort();
	atomic_store(&r->failed, 0);
	for (int i = 0; i < n; i++) {
		int64_t id = lh_pg_get_i64(res, i, 0);
		ids[i] = id;
		if (lh_pg_isnull(res, i, 1)) {
			vers[i] = INT64_MAX; /* the row is gone (a test's clean-up): nothing to say */
			continue;
		}
		vers[i] = lh_pg_get_i64(res, i, 1);
		json_error_t jerr;
		json_t *row = json_loads(lh_pg_get(res, i, 3), 0, &jerr);
		const char *tenant = lh_pg_get(res, i, 2);
		lh_memory_written_t body = {.memory_id = id, .version = vers[i], .row = row};
		lh_event_t ev = {.v = LH_ENVELOPE_VERSION,
				 .type = LH_EV_MEMORY_WRITTEN,
				 .plan_id = lh_memory_stream_id(tenant),
				 .task_no = LH_NO_TASK,
				 .ts_us = lh_now_us(),
				 .tenant = tenant,
				 .actor = {.kind = "materializer", .id = "relay"},
				 .body = &body};
		ev.id = lh_event_id_derivef(&ev.plan_id, "memory.written", 0, "m%lld:v%lld",
					    (long long)id, (long long)vers[i]);
		if (!row) {
			lh_log_error("materializer.relay_row", jerr.text);
			json_decref(row);
			goto out;
		}
		if (lh_bus_emit(r->producer, r->topic, &ev, false, scratch, NULL, &err)) {
			lh_log_warn("materializer.relay_produce", err.msg);
			json_decref(row);
			goto out;
		}
		json_decref(row);
		sent++;
	}
	if (sent && lh_kafka_flush(r->producer, FLUSH_TIMEOUT_MS, &err)) {
		lh_log_warn("materializer.relay_flush", err.msg);
		goto out;
	}
	if (atomic_load(&r->failed))
		goto out; /* logged by on_delivery; the whole round goes again */
	lh_buf_init(&a);
	lh_buf_init(&b);
	array_literal(&a, ids, n);
	array_literal(&b, vers, n);
	p[0] = a.data;
	p[1] = b.data;
	if (lh_pg_query(r->pg, "memory_outbox_done", 2, p, NULL, NULL, NULL, &err))
		lh_log_warn("materializer.relay_pg", err.msg); /* published again: dropped as dups */
	else {
		atomic_fetch_add(&r->published, (uint64_t)sent);
		rc = n;
	}
	lh_buf_finish(&a);
	lh_buf_finish(&b);
out:
	free(ids);
	free(vers);
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
		got = round_once(r, &scratch);
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
