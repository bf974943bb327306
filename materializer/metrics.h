/* metrics.h — the materializer's counters and consumer lag, and the Prometheus endpoint that
 * serves them (`--metrics-listen ADDR:PORT`, off by default).
 *
 * lh_mstats_t is the one record of what the daemon has done: the loop thread (and the writer
 * threads, through the loop) update it with relaxed atomics, and anyone may read it at any time
 * without a lock. Consumer lag is computed from it on demand (lh_mstats_lags): per assigned
 * partition, the high watermark the broker last reported in a fetch response minus the next
 * offset stored in PostgreSQL. The `materializer.lag` log line and `/metrics` use that one
 * function, so they always agree.
 *
 * The endpoint runs on a thread of its own with its own libevent loop, so a scrape is answered
 * while the daemon's loop is blocked writing a batch (or waiting for PostgreSQL in a rebalance):
 * the lag is readable exactly when it matters. It reads lh_mstats_t and asks librdkafka for the
 * cached watermarks (thread-safe, no round trip); it never touches PostgreSQL, the batch or the
 * loop's state.
 *
 * Threads: lh_mstats_* from any thread; lh_mmetrics_new/_free on the loop thread. */
#ifndef LH_MAT_METRICS_H
#define LH_MAT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kafka.h"

#define LH_MSTATS_MAX_PARTS 1024
#define LH_MSTATS_NOT_ASSIGNED (-2)
#define LH_MSTATS_NOTHING_STORED (-1)
/* Upper bounds (seconds) of the batch-latency histogram's buckets, +Inf implied. */
#define LH_MSTATS_NBUCKETS 12

typedef struct lh_mstats {
	/* counters */
	uint64_t consumed;	 /* messages taken from the events topic */
	uint64_t events_written; /* events new to PostgreSQL */
	uint64_t duplicates;	 /* events PostgreSQL already had (dropped by id) */
	uint64_t batches;	 /* committed transactions */
	uint64_t dead_letters;	 /* messages sent to the dead-letter topic */
	uint64_t rejected;	 /* of which: events PostgreSQL refused */
	uint64_t pg_errors;	 /* failed write attempts (retried) */
	/* gauges */
	int64_t pending; /* consumed, not stored yet */
	int64_t paused;	 /* 1 while PostgreSQL cannot be written (partitions paused) */
	/* flush latency: one write of the batch, every writer, until all committed */
	uint64_t flush_buckets[LH_MSTATS_NBUCKETS + 1]; /* not cumulative; last is +Inf */
	uint64_t flush_count;
	uint64_t flush_us_sum;
	/* per partition of the events topic: LH_MSTATS_NOT_ASSIGNED, LH_MSTATS_NOTHING_STORED, or
	 * the next offset stored in PostgreSQL */
	int64_t stored[LH_MSTATS_MAX_PARTS];
} lh_mstats_t;

typedef struct lh_mlag {
	int32_t partition;
	int64_t lag;
} lh_mlag_t;

/* Every partition not assigned, every counter 0. */
void lh_mstats_init(lh_mstats_t *s);
void lh_mstats_add(uint64_t *counter, uint64_t n);
void lh_mstats_set(int64_t *gauge, int64_t v);
uint64_t lh_mstats_get(const uint64_t *counter);
int64_t lh_mstats_geti(const int64_t *gauge);
/* Partition p assigned (stored: its stored next offset or LH_MSTATS_NOTHING_STORED), revoked
 * (LH_MSTATS_NOT_ASSIGNED), or its stored offset moved. Out-of-range p is ignored. */
void lh_mstats_set_partition(lh_mstats_t *s, int32_t p, int64_t stored);
/* One flush took us microseconds. */
void lh_mstats_observe_flush(lh_mstats_t *s, int64_t us);
/* The buckets' upper bounds in seconds (LH_MSTATS_NBUCKETS of them). */
const double *lh_mstats_bucket_bounds(void);

/* Consumer lag of every assigned partition whose high watermark is known, in partition order,
 * written to out (at most max entries). The watermark comes from librdkafka's cache (the last
 * fetch response; no round trip); a partition with nothing stored counts from the low watermark.
 * Returns the number written; *ret_unknown (may be NULL) gets the number of assigned partitions
 * with no watermark yet. consumer may be NULL (then every assigned partition is unknown). */
size_t lh_mstats_lags(const lh_mstats_t *s, lh_kafka_t *consumer, const char *topic,
		      lh_mlag_t *out, size_t max, int *ret_unknown);

typedef struct lh_mmetrics lh_mmetrics_t;

/* Bind listen ("ADDR:PORT") and start serving GET /metrics on a thread of its own, at most
 * LH_HTTPD_MAX_CONNS connections at once (common/httpd.h; refusals logged as
 * materializer.metrics_refused). stats,
 * consumer and topic are borrowed until lh_mmetrics_free: free the endpoint before the
 * consumer. Returns new in *ret. */
lh_err_t lh_mmetrics_new(const char *listen, const lh_mstats_t *stats, lh_kafka_t *consumer,
			 const char *topic, lh_mmetrics_t **ret, lh_error_t *err);
/* The port bound (the real one when 0 was asked for). */
int lh_mmetrics_port(const lh_mmetrics_t *m);
/* Stop the thread, close the socket, free. Accepts NULL; returns NULL. */
lh_mmetrics_t *lh_mmetrics_free(lh_mmetrics_t *m);

/* The exposition text (Prometheus 0.0.4) of stats, appended to out; events_per_s < 0 leaves the
 * rate out. For the endpoint and tests. */
struct evbuffer;
void lh_mmetrics_render(const lh_mstats_t *stats, lh_kafka_t *consumer, const char *topic,
			double events_per_s, struct evbuffer *out);

#endif
