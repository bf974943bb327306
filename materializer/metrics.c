#include "metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd.h"
#include "ids.h" /* lh_mono_us */
#include "log.h"

#define RATE_WINDOW 10 /* seconds the events/s gauge averages over */
#define MAX_HEADERS 8192

static const double bounds[LH_MSTATS_NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
						  0.1,	 0.25,	 0.5,	1.0,  2.5,   5.0};

void lh_mstats_init(lh_mstats_t *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < LH_MSTATS_MAX_PARTS; i++)
		s->stored[i] = LH_MSTATS_NOT_ASSIGNED;
}

void lh_mstats_add(uint64_t *counter, uint64_t n) { __atomic_add_fetch(counter, n, __ATOMIC_RELAXED); }
void lh_mstats_set(int64_t *gauge, int64_t v) { __atomic_store_n(gauge, v, __ATOMIC_RELAXED); }
uint64_t lh_mstats_get(const uint64_t *counter) { return __atomic_load_n(counter, __ATOMIC_RELAXED); }
int64_t lh_mstats_geti(const int64_t *gauge) { return __atomic_load_n(gauge, __ATOMIC_RELAXED); }

void lh_mstats_set_partition(lh_mstats_t *s, int32_t p, int64_t stored)
{
	if (p >= 0 && p < LH_MSTATS_MAX_PARTS)
		__atomic_store_n(&s->stored[p], stored, __ATOMIC_RELAXED);
}

void lh_mstats_observe_flush(lh_mstats_t *s, int64_t us)
{
	int b = 0;
	if (us < 0)
		us = 0;
	while (b < LH_MSTATS_NBUCKETS && (double)us / 1e6 > bounds[b])
		b++;
	lh_mstats_add(&s->flush_buckets[b], 1);
	lh_mstats_add(&s->flush_us_sum, (uint64_t)us);
	lh_mstats_add(&s->flush_count, 1);
}

const double *lh_mstats_bucket_bounds(void) { return bounds; }

size_t lh_mstats_lags(const lh_mstats_t *s, lh_kafka_t *consumer, const char *topic,
		      lh_mlag_t *out, size_t max, int *ret_unknown)
{
	size_t n = 0;
	int unknown = 0;
	for (int p = 0; p < LH_MSTATS_MAX_PARTS; p++) {
		int64_t stored = lh_mstats_geti(&s->stored[p]), lo = 0, hi = 0, lag;
		if (stored == LH_MSTATS_NOT_ASSIGNED)
			continue;
		if (!consumer || lh_kafka_watermarks_cached(consumer, topic, p, &lo, &hi, NULL)) {
			unknown++;
			continue;
		}
		lag = hi - (stored >= 0 ? stored : lo);
		if (lag < 0)
			lag = 0; /* the cached watermark is older than what we stored */
		if (n < max)
			out[n++] = (lh_mlag_t){p, lag};
	}
	if (ret_unknown)
		*ret_unknown = unknown;
	return n;
}

/* --- exposition ---------------------------------------------------------------------------- */

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
			    (unsigned long long)v);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, long long v)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

void lh_mmetrics_render(const lh_mstats_t *s, lh_kafka_t *consumer, const char *topic,
			double events_per_s, struct evbuffer *out)
{
	lh_mlag_t *lags = malloc(sizeof(*lags) * LH_MSTATS_MAX_PARTS);
	size_t n = 0;
	int unknown = 0;
	uint64_t cum = 0;
	if (lags)
		n = lh_mstats_lags(s, consumer, topic, lags, LH_MSTATS_MAX_PARTS, &unknown);
	evbuffer_add_printf(out,
			    "# HELP lh_materializer_lag_events Consumer lag of an assigned partition: "
			    "the broker's high watermark (as of its last fetch response) minus the "
			    "next offset stored in PostgreSQL.\n"
			    "# TYPE lh_materializer_lag_events gauge\n");
	/* a topic name is [A-Za-z0-9._-]+ (Kafka's rule, lh_topic checks it): no label escaping */
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "lh_materializer_lag_events{topic=\"%s\",partition=\"%d\"} %lld\n",
				    topic, (int)lags[i].partition, (long long)lags[i].lag);
	free(lags);
	gauge(out, "lh_materializer_assigned_partitions", "Partitions of the events topic assigned.",
	      (long long)n + unknown);
	gauge(out, "lh_materializer_lag_unknown_partitions",
	      "Assigned partitions whose high watermark is not known yet (nothing fetched).", unknown);
	counter(out, "lh_materializer_consumed_total", "Messages consumed from the events topic.",
		lh_mstats_get(&s->consumed));
	counter(out, "lh_materializer_events_written_total",
		"Events stored in PostgreSQL for the first time.", lh_mstats_get(&s->events_written));
	counter(out, "lh_materializer_duplicates_total",
		"Events PostgreSQL already held, dropped by id.", lh_mstats_get(&s->duplicates));
	counter(out, "lh_materializer_batches_total", "Committed transactions (batches).",
		lh_mstats_get(&s->batches));
	counter(out, "lh_materializer_dead_letters_total",
		"Messages sent to the dead-letter topic (undecodable or refused by PostgreSQL).",
		lh_mstats_get(&s->dead_letters));
	counter(out, "lh_materializer_rejected_total",
		"Events PostgreSQL refused (also counted in dead_letters).",
		lh_mstats_get(&s->rejected));
	counter(out, "lh_materializer_pg_errors_total",
		"Failed PostgreSQL writes or reads, each retried.", lh_mstats_get(&s->pg_errors));
	gauge(out, "lh_materializer_pending_events", "Messages consumed and not stored yet.",
	      lh_mstats_geti(&s->pending));
	gauge(out, "lh_materializer_paused",
	      "1 while PostgreSQL cannot be written and the partitions are paused.",
	      lh_mstats_geti(&s->paused));
	if (events_per_s >= 0)
		evbuffer_add_printf(out,
				    "# HELP lh_materializer_events_per_second Events written per "
				    "second over the last %d seconds.\n"
				    "# TYPE lh_materializer_events_per_second gauge\n"
				    "lh_materializer_events_per_second %.1f\n",
				    RATE_WINDOW, events_per_s);
	evbuffer_add_printf(out, "# HELP lh_materializer_flush_seconds Time to write one batch "
				 "(every writer, until all committed).\n"
				 "# TYPE lh_materializer_flush_seconds histogram\n");
	for (int b = 0; b <= LH_MSTATS_NBUCKETS; b++) {
		cum += lh_mstats_get(&s->flush_buckets[b]);
		if (b < LH_MSTATS_NBUCKETS)
			evbuffer_add_printf(out, "lh_materializer_flush_seconds_bucket{le=\"%g\"} %llu\n",
					    bounds[b], (unsigned long long)cum);
		else
			evbuffer_add_printf(out,
					    "lh_materializer_flush_seconds_bucket{le=\"+Inf\"} %llu\n",
					    (unsigned long long)cum);
	}
	/* the count is the +Inf bucket's, so the histogram is consistent even mid-update */
	evbuffer_add_printf(out, "lh_materializer_flush_seconds_sum %.6f\n"
				 "lh_materializer_flush_seconds_count %llu\n",
			    (double)lh_mstats_get(&s->flush_us_sum) / 1e6, (unsigned long long)cum);
}

/* --- the endpoint ---------------------------------------------------------------------------- */

struct lh_mmetrics {
	struct event_base *base;
	lh_httpd_t *httpd;
	struct event *ev_stop, *ev_tick;
	int stop_rfd, stop_wfd;
	pthread_t thread;
	bool running;
	const lh_mstats_t *stats;
	lh_kafka_t *consumer;
	const char *topic;
	/* events_written once a second, for the rate (only the thread touches these) */
	uint64_t ring[RATE_WINDOW + 1];
	int64_t ring_us[RATE_WINDOW + 1];
	int nring, head;
};

static double rate(const lh_mmetrics_t *m)
{
	int oldest, newest;
	if (m->nring < 2)
		return -1;
	newest = (m->head + RATE_WINDOW) % (RATE_WINDOW + 1);
	oldest = m->nring <= RATE_WINDOW ? 0 : m->head;
	if (m->ring_us[newest] <= m->ring_us[oldest])
		return -1;
	return (double)(m->ring[newest] - m->ring[oldest]) * 1e6 /
	       (double)(m->ring_us[newest] - m->ring_us[oldest]);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	lh_mmetrics_t *m = arg;
	m->ring[m->head] = lh_mstats_get(&m->stats->events_written);
	m->ring_us[m->head] = lh_mono_us();
	m->head = (m->head + 1) % (RATE_WINDOW + 1);
	if (m->nring < RATE_WINDOW + 1)
		m->nring++;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	lh_mmetrics_t *m = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *b = evbuffer_new();
	size_t plen = strcspn(uri ? uri : "", "?");
	if (!b) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	if (!uri || plen != strlen("/metrics") || strncmp(uri, "/metrics", plen) != 0) {
		evbuffer_add_printf(b, "not found: this endpoint serves GET /metrics only\n");
		evhttp_send_reply(req, 404, "Not Found", b);
		evbuffer_free(b);
		return;
	}
	lh_mmetrics_render(m->stats, m->consumer, m->topic, rate(m), b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* Connections refused over the cap (at most one line per LH_HTTPD_REFUSED_REPORT_S seconds). */
static void on_refused(uint64_t n, int max_conns, void *arg)
{
	char a[24], b[24];
	lh_log_warn("materializer.metrics_refused",
		    "refused connections to the metrics endpoint: too many open at once", "refused",
		    lh_log_i64(a, (long long)n), "max_connections", lh_log_i64(b, max_conns));
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	lh_mmetrics_t *m = arg;
	event_base_loopbreak(m->base);
}

static void *run(void *arg)
{
	lh_mmetrics_t *m = arg;
	event_base_dispatch(m->base);
	return NULL;
}

lh_err_t lh_mmetrics_new(const char *listen, const lh_mstats_t *stats, lh_kafka_t *consumer,
			 const char *topic, lh_mmetrics_t **ret, lh_error_t *err)
{
	int fds[2];
	lh_mmetrics_t *m;
	struct evhttp *http;
	struct timeval one = {1, 0};
	lh_err_t rc;

	m = calloc(1, sizeof(*m));
	if (!m)
		return lh_error_set(err, LH_ERR_NOMEM, "out of memory");
	m->stop_rfd = m->stop_wfd = -1;
	m->stats = stats;
	m->consumer = consumer;
	m->topic = topic;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		rc = lh_error_set(err, LH_ERR_IO, "could not create pipe: %s", strerror(errno));
		goto out_free;
	}
	m->stop_rfd = fds[0];
	m->stop_wfd = fds[1];
	m->base = event_base_new();
	if (!m->base) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "could not create the metrics http server");
		goto out_free;
	}
	if ((rc = lh_httpd_new(m->base, listen, LH_HTTPD_MAX_CONNS, LH_HTTPD_TIMEOUT_S, on_refused,
			       m, &m->httpd, err)))
		goto out_free;
	http = lh_httpd_evhttp(m->httpd);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_max_headers_size(http, MAX_HEADERS);
	evhttp_set_gencb(http, on_request, m);
	m->ev_stop = event_new(m->base, m->stop_rfd, EV_READ, on_stop, m);
	m->ev_tick = event_new(m->base, -1, EV_PERSIST, on_tick, m);
	if (!m->ev_stop || !m->ev_tick) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "out of memory");
		goto out_free;
	}
	event_add(m->ev_stop, NULL);
	on_tick(-1, 0, m);
	event_add(m->ev_tick, &one);
	if (pthread_create(&m->thread, NULL, run, m) != 0) {
		rc = lh_error_set(err, LH_ERR_IO, "could not start the metrics thread");
		goto out_free;
	}
	m->running = true;
	*ret = m;
	return LH_OK;
out_free:
	lh_mmetrics_free(m);
	return rc;
}

int lh_mmetrics_port(const lh_mmetrics_t *m) { return m ? lh_httpd_port(m->httpd) : -1; }

lh_mmetrics_t *lh_mmetrics_free(lh_mmetrics_t *m)
{
	if (!m)
		return NULL;
	if (m->running) {
		if (write(m->stop_wfd, "s", 1) < 0) {
			/* a non-blocking pipe that is full already holds a wakeup */
		}
		pthread_join(m->thread, NULL);
	}
	if (m->ev_stop)
		event_free(m->ev_stop);
	if (m->ev_tick)
		event_free(m->ev_tick);
	m->httpd = lh_httpd_free(m->httpd);
	if (m->base)
		event_base_free(m->base);
	if (m->stop_rfd >= 0)
		close(m->stop_rfd);
	if (m->stop_wfd >= 0)
		close(m->stop_wfd);
	free(m);
	return NULL;
}
