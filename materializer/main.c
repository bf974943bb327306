/* lh-materializer — folds lh.events into PostgreSQL, exactly once, in batches.
 *
 * One libevent loop on the main thread. The consumer (group "lh-materializer") starts each assigned
 * partition at the offset stored in PostgreSQL (consumer_offsets), never at a Kafka-committed one.
 * Consumed events are kept in a batch; the batch is written when it holds batch_max_events or when
 * batch_max_ms have passed since its first event, in one transaction that also moves the stored
 * offsets (writer.h). The write blocks the loop. While PostgreSQL cannot be written the batch stays
 * in memory, the partitions are paused, and the write is retried with exponential backoff.
 * See README.md for the exactly-once argument. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "bus.h"
#include "config.h"
#include "event.h"
#include "kafka.h"
#include "listen.h"
#include "log.h"
#include "relay.h"
#include "metrics.h"
#include "pg.h"
#include "tools.h"
#include "writer.h"

#define MAX_PARTS LH_MSTATS_MAX_PARTS
#define MAX_WRITERS 8
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define KAFKA_READY_MS 10000
#define DLQ_SYNC_MS 10000

typedef struct mat_cfg {
	lh_common_cfg_t common; /* first: the common table's offsets assume it */
	char *group;
	char *consumer;
	int64_t batch_max_events;
	int64_t batch_max_ms;
	int64_t writers;
	int64_t stats_interval_s;
	int64_t lag_interval_s;
	int64_t session_timeout_ms;
	int64_t shutdown_timeout_ms;
	bool migrate_only;
	bool rebuild;
	bool swap;
	char *schema;
	char *live_schema;
	char *against_url;
	char *against_schema;
	int64_t older_than_days;
	char *metrics_listen;
	bool memory_relay;
	int64_t memory_relay_interval_ms;
	bool check_rounds;
} mat_cfg_t;

#define C(f) offsetof(mat_cfg_t, f)
static const lh_cfg_def_t mat_table[] = {
	{"materializer.group", LH_CFG_STR, "lh-materializer", 0, 0, NULL, "LH_MATERIALIZER_GROUP",
	 "group", false, false, "consumer group shared by all materializers", C(group)},
	{"materializer.consumer", LH_CFG_STR, "", 0, 0, NULL, "LH_MATERIALIZER_CONSUMER", "consumer",
	 false, false, "name the offsets are stored under in consumer_offsets (default: the group)",
	 C(consumer)},
	{"materializer.batch_max_events", LH_CFG_INT, "2000", 1, 100000, NULL, "LH_BATCH_MAX_EVENTS",
	 "batch-max-events", false, false, "events per transaction, at most", C(batch_max_events)},
	{"materializer.batch_max_ms", LH_CFG_INT, "50", 1, 60000, NULL, "LH_BATCH_MAX_MS",
	 "batch-max-ms", false, false,
	 "longest an event waits in memory before its batch is written, in milliseconds",
	 C(batch_max_ms)},
	{"materializer.writers", LH_CFG_INT, "2", 1, MAX_WRITERS, NULL, "LH_MATERIALIZER_WRITERS",
	 "writers", false, false,
	 "PostgreSQL connections writing at once; partition p is always written by connection "
	 "p mod writers, so each partition's rows and offsets still commit in order",
	 C(writers)},
	{"materializer.stats_interval_s", LH_CFG_INT, "30", 0, 86400, NULL, "LH_STATS_INTERVAL",
	 "stats-interval", false, false, "seconds between stats log lines (0: never)",
	 C(stats_interval_s)},
	{"materializer.lag_interval_s", LH_CFG_INT, "10", 0, 86400, NULL, "LH_LAG_INTERVAL",
	 "lag-interval", false, false,
	 "seconds between materializer.lag log lines: per-partition consumer lag, the broker's "
	 "high watermark minus the offset stored in PostgreSQL (0: never)",
	 C(lag_interval_s)},
	{"materializer.metrics_listen", LH_CFG_STR, "", 0, 0, NULL, "LH_MATERIALIZER_METRICS_LISTEN",
	 "metrics-listen", false, false,
	 "ADDR:PORT to serve Prometheus GET /metrics on (consumer lag per partition, counters, "
	 "flush latency), from a thread of its own; [ADDR]:PORT for IPv6, port 0 for any free "
	 "port (logged); empty: off",
	 C(metrics_listen)},
	{"materializer.memory_relay", LH_CFG_BOOL, "true", 0, 0, NULL, "LH_MEMORY_RELAY",
	 "memory-relay", false, false,
	 "publish every change of a memory and every rolling-summary version (the tables' outboxes, "
	 "sql/0010, sql/0011) as memory.written / summary.written on the events topic, so that a "
	 "rebuild from the log reproduces them; one materializer of a database is enough, more "
	 "are harmless",
	 C(memory_relay)},
	{"materializer.memory_relay_interval_ms", LH_CFG_INT, "500", 10, 60000, NULL, NULL,
	 "memory-relay-interval-ms", false, false,
	 "how often the relay looks at an empty outbox again (it drains a full one at once)",
	 C(memory_relay_interval_ms)},
	{"materializer.check_rounds", LH_CFG_BOOL, "false", 0, 0, NULL, "LH_MATERIALIZER_CHECK_ROUNDS",
	 "check-rounds", false, false,
	 "a check for tests, not for production: PostgreSQL numbers every batch's rounds again "
	 "(lh_mat_rounds, sql/0012) and refuses the batch if the materializer's numbering differs; "
	 "costs PostgreSQL time (window functions over every batch)",
	 C(check_rounds)},
	{"materializer.session_timeout_ms", LH_CFG_INT, "10000", 1000, 300000, NULL, NULL,
	 "session-timeout-ms", false, false,
	 "Kafka group session timeout: how soon a crashed materializer's partitions move",
	 C(session_timeout_ms)},
	{"materializer.shutdown_timeout_ms", LH_CFG_INT, "10000", 0, 600000, NULL, NULL,
	 "shutdown-timeout-ms", false, false,
	 "how long a stop or a partition revocation keeps retrying to write the batch",
	 C(shutdown_timeout_ms)},
	{"materializer.migrate_only", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "migrate-only", false,
	 false, "apply the database migrations, say what was done, and exit", C(migrate_only)},
	{"materializer.rebuild", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "rebuild", false, false,
	 "create schema --schema, migrate it, replay the whole events topic into it, print the "
	 "counts and exit",
	 C(rebuild)},
	{"materializer.swap", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "swap", false, false,
	 "with --rebuild: then rename --live-schema to SCHEMA_old_TIME and the rebuilt schema to "
	 "--live-schema, in one transaction (stop every daemon first)",
	 C(swap)},
	{"materializer.schema", LH_CFG_STR, "", 0, 0, NULL, NULL, "schema", false, false,
	 "--rebuild: the new schema; checksum: the schema read (default: --live-schema)",
	 C(schema)},
	{"materializer.live_schema", LH_CFG_STR, "public", 0, 0, NULL, NULL, "live-schema", false,
	 false, "the schema the daemons use (what --swap replaces)", C(live_schema)},
	{"materializer.against_url", LH_CFG_STR, "", 0, 0, NULL, NULL, "against-url", false, true,
	 "checksum: compare with this database (default: none)", C(against_url)},
	{"materializer.against_schema", LH_CFG_STR, "", 0, 0, NULL, NULL, "against-schema", false,
	 false, "checksum: the schema read there (default: --schema); with --against-schema alone "
	 "the same database is compared",
	 C(against_schema)},
	{"materializer.older_than_days", LH_CFG_INT, "7", 0, 36500, NULL, NULL, "older-than-days",
	 false, false,
	 "gc-blobs: delete unreferenced blobs older than this many days (blobs younger may belong "
	 "to an event not produced yet: 0 only when no worker runs)",
	 C(older_than_days)},
	LH_CFG_END,
};

static const lh_cfg_spec_t mat_spec = {
	.prog = "lh-materializer",
	.usage = "[options] | --rebuild --schema NAME [--swap] | checksum [--schema S] "
		 "[--against-url URL] [--against-schema S2] | gc-blobs [--older-than-days N]",
	.summary = "Folds the event log (lh.events) into PostgreSQL tables, exactly once, in "
		   "batches: events inserted once by id, projections of new events, and the "
		   "consumer's offsets, in one transaction per batch. Applies the database "
		   "migrations at start. Run any number: they split the partitions as one group.",
	.tables = {lh_config_common_table, mat_table, NULL},
};

typedef struct part {
	bool assigned;
	bool known;    /* start offset read from PostgreSQL: messages may be kept */
	bool paused;   /* by us, while the batch cannot be written */
	int64_t next;  /* next offset expected (-1: any) */
	int64_t stored; /* next offset stored in PostgreSQL (-1: none yet) */
} part_t;

/* One writer: its own PostgreSQL connection and the entries of the partitions it owns
 * (partition % nshards): `batch` filled by the loop, `inflight` stored by the writer's thread
 * (see "writing the batch"). While busy, the thread owns inflight, writer, pg, rc and err. */
typedef struct shard {
	lh_mbatch_t batch;
	lh_mbatch_t inflight;
	lh_mwriter_t writer;
	lh_pg_t *pg; /* owned */
	lh_err_t rc;
	lh_error_t err;
	pthread_t thread;
	bool busy;	/* a write of inflight is running (or done and not collected) */
	bool threaded;	/* ... on `thread` (else it ran on the loop's thread) */
	bool again;	/* a flush came while busy: hand the batch over when done */
	int finished;	/* set by the thread when done (atomic) */
	int64_t t0;	/* when the write started */
	uint64_t pub_written, pub_duplicates, pub_txns, pub_rejected; /* counters at its start */
} shard_t;

/* Signal flags: set by the handler, acted on by the loop (and by blocking waits). */
static volatile sig_atomic_t stop_signal;
static int signal_wfd = -1;

/* The daemon's one context. */
static struct mat {
	mat_cfg_t cfg;
	const char *consumer_name;
	struct event_base *base;
	lh_kafka_t *consumer, *producer;
	lh_pg_t *pg;
	shard_t shards[MAX_WRITERS];
	int nshards;
	char events_topic[LH_TOPIC_MAX], dlq_topic[LH_TOPIC_MAX];
	const char *tiers[LH_MAX_TIERS];
	char tiers_buf[1024];
	int ntiers;
	part_t parts[MAX_PARTS];
	int64_t stored_next[MAX_PARTS]; /* scratch of on_assigned */
	int signal_rfd;
	int done_rfd, done_wfd; /* writer threads announce their end here */
	struct event *ev_flush, *ev_retry, *ev_stats, *ev_lag, *ev_signal, *ev_done;
	bool failing;	    /* the batch could not be written: partitions paused, retry armed */
	int64_t backoff_ms;
	bool producer_broken; /* a dead letter could not be delivered */
	uint64_t dropped_batches;
	lh_mstats_t stats; /* counters and stored offsets, read by the metrics thread too */
	lh_mmetrics_t *metrics; /* --metrics-listen: the /metrics endpoint, or NULL */
	lh_relay_t *relay;	/* --memory-relay: the memories' outbox relay, or NULL */
	int64_t lag_total; /* at the last lag report (-1: unknown) */
	int exit_code;
} mt;

static void on_signal_handler(int sig)
{
	int saved = errno;
	stop_signal = sig;
	if (signal_wfd >= 0 && write(signal_wfd, "s", 1) < 0) {
		/* the pipe is full: a wakeup is already pending */
	}
	errno = saved;
}

/* Sleep ms, in slices; an interruptible nap returns early when a stop was asked for. */
static void nap(int64_t ms, bool interruptible)
{
	while (ms > 0 && !(interruptible && stop_signal)) {
		int slice = ms > 100 ? 100 : (int)ms;
		poll(NULL, 0, slice);
		ms -= slice;
	}
}

static const char *i64s(char buf[24], long long v) { return lh_log_i64(buf, v); }

/* --- dead letters ------------------------------------------------------------------------- */

static void on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
			int32_t partition, int64_t offset)
{
	if (rc == LH_OK)
		return;
	/* With message.timeout.ms=0 only a fatal producer error gets here: the dead letter is lost,
	 * so its offset must never be stored. Stop; a restart re-reads from the stored offsets. */
	__atomic_store_n(&mt.producer_broken, true, __ATOMIC_SEQ_CST);
	lh_log_error("materializer.dlq_failed", err ? err->msg : "dead letter not delivered",
		     "action", "exit; the restart re-reads from the stored offsets");
}

static lh_err_t sync_dead_letters(void *opaque, lh_error_t *err)
{
	lh_err_t rc;
	if (mt.producer_broken)
		goto out_broken;
	if ((rc = lh_kafka_flush(mt.producer, DLQ_SYNC_MS, err)))
		return rc; /* retriable: the broker is away; keep the batch */
	if (mt.producer_broken)
		goto out_broken;
	return LH_OK;
out_broken:
	rc = lh_error_set(err, LH_ERR_KAFKA, "could not deliver a dead letter to %s", mt.dlq_topic);
	err->fatal = true;
	return rc;
}

static lh_err_t reject_entry(void *opaque, const lh_mentry_t *e, const char *reason,
			     lh_error_t *err)
{
	lh_kafka_msg_t msg = {.topic = mt.events_topic, .partition = e->partition,
			      .offset = e->offset, .key = e->key, .key_len = e->key_len,
			      .payload = e->payload, .len = e->len};
	lh_err_t rc = lh_bus_dead_letter(mt.producer, mt.dlq_topic, &msg, mt.consumer_name, reason,
					 err);
	if (rc)
		return rc;
	lh_mstats_add(&mt.stats.dead_letters, 1);
	return sync_dead_letters(NULL, err);
}

/* --- pausing ------------------------------------------------------------------------------ */

static void pause_all(bool pause)
{
	for (int i = 0; i < MAX_PARTS; i++) {
		part_t *pt = &mt.parts[i];
		lh_error_t err = {0};
		char ps[24];
		if (!pt->assigned || pt->paused == pause)
			continue;
		if (lh_kafka_pause(mt.consumer, mt.events_topic, i, pause, &err)) {
			lh_log_warn("materializer.pause_failed", err.msg, "partition", i64s(ps, i));
			continue;
		}
		pt->paused = pause;
	}
}

/* --- writing the batch -------------------------------------------------------------------- */
/*
 * Each shard has two batches: `batch`, which the loop fills, and `inflight`, which the shard's
 * writer thread stores. A flush hands a shard's batch over (it becomes inflight) and starts a
 * thread; the loop goes on consuming meanwhile. The thread's end is announced on a pipe the loop
 * watches (on_writers_done). A shard never has two writes at once, and a partition belongs to
 * one shard, so each partition's transactions still commit in log order, each covering the
 * offsets right after the previous one. A failed inflight batch stays where it is; the next
 * write of that shard stores it first, with whatever was consumed behind it appended.
 */

static void stop_loop(int code)
{
	if (!mt.exit_code)
		mt.exit_code = code;
	event_base_loopbreak(mt.base);
}

/* Entries consumed and not yet stored, over every shard (filling and in flight). */
static size_t pending(void)
{
	size_t n = 0;
	for (int i = 0; i < mt.nshards; i++)
		n += mt.shards[i].batch.n - mt.shards[i].batch.done + mt.shards[i].inflight.n -
		     mt.shards[i].inflight.done;
	return n;
}

/* Entries consumed and not handed to a writer yet. */
static size_t filling(void)
{
	size_t n = 0;
	for (int i = 0; i < mt.nshards; i++)
		n += mt.shards[i].batch.n;
	return n;
}

/* The writers' counters into mt.stats: only of idle writers (a running thread owns its own). */
static void publish_writer_counters(void)
{
	uint64_t written = 0, duplicates = 0, txns = 0, rejected = 0;
	for (int i = 0; i < mt.nshards; i++) {
		const shard_t *sh = &mt.shards[i];
		if (sh->busy) {
			written += sh->pub_written;
			duplicates += sh->pub_duplicates;
			txns += sh->pub_txns;
			rejected += sh->pub_rejected;
			continue;
		}
		written += sh->writer.written;
		duplicates += sh->writer.duplicates;
		txns += sh->writer.txns;
		rejected += sh->writer.rejected;
	}
	__atomic_store_n(&mt.stats.events_written, written, __ATOMIC_RELAXED);
	__atomic_store_n(&mt.stats.duplicates, duplicates, __ATOMIC_RELAXED);
	__atomic_store_n(&mt.stats.batches, txns, __ATOMIC_RELAXED);
	__atomic_store_n(&mt.stats.rejected, rejected, __ATOMIC_RELAXED);
}

static void *shard_write(void *arg)
{
	shard_t *sh = arg;
	sh->rc = lh_mwriter_write(&sh->writer, &sh->inflight, &sh->err);
	__atomic_store_n(&sh->finished, 1, __ATOMIC_RELEASE);
	if (mt.done_wfd >= 0 && write(mt.done_wfd, "w", 1) < 0) {
		/* the pipe is full: a wakeup is already pending */
	}
	return NULL;
}

/* Hand the shard's work to a thread: its failed inflight entries first (if any), then its
 * batch. The shard must be idle. Returns false when there was nothing to write. */
static bool submit(shard_t *sh)
{
	if (sh->inflight.done >= sh->inflight.n)
		lh_mbatch_clear(&sh->inflight);
	lh_mbatch_move(&sh->inflight, &sh->batch);
	if (sh->inflight.n == 0)
		return false;
	sh->rc = LH_OK;
	sh->err = (lh_error_t){0};
	sh->finished = 0;
	sh->again = false;
	sh->pub_written = sh->writer.written;
	sh->pub_duplicates = sh->writer.duplicates;
	sh->pub_txns = sh->writer.txns;
	sh->pub_rejected = sh->writer.rejected;
	sh->t0 = lh_mono_us();
	sh->busy = true;
	sh->threaded = pthread_create(&sh->thread, NULL, shard_write, sh) == 0;
	if (!sh->threaded)
		shard_write(sh); /* no thread: write on the loop's */
	return true;
}

/* Collect a shard's write (joining its thread: blocks until it ends). On success the inflight
 * entries' offsets are stored: note them and drop the entries. Returns the write's result. */
static lh_err_t complete(shard_t *sh, lh_error_t *err)
{
	if (!sh->busy)
		return LH_OK;
	if (sh->threaded)
		pthread_join(sh->thread, NULL);
	sh->busy = false;
	if (sh->rc) {
		*err = sh->err;
		return sh->rc;
	}
	for (size_t j = 0; j < sh->inflight.n; j++) {
		const lh_mentry_t *e = &sh->inflight.v[j];
		part_t *pt;
		if (e->partition < 0 || e->partition >= MAX_PARTS)
			continue;
		pt = &mt.parts[e->partition];
		pt->stored = e->offset + 1;
		if (pt->assigned)
			lh_mstats_set_partition(&mt.stats, e->partition, pt->stored);
	}
	lh_mbatch_clear(&sh->inflight);
	lh_mstats_observe_flush(&mt.stats, lh_mono_us() - sh->t0);
	return LH_OK;
}

/* Wait for every running write; the first error (a fatal one first) goes to err. */
static lh_err_t wait_writers(lh_error_t *err)
{
	lh_err_t rc = LH_OK;
	for (int i = 0; i < mt.nshards; i++) {
		lh_error_t e = {0};
		lh_err_t r = complete(&mt.shards[i], &e);
		if (r && (!rc || (e.fatal && !err->fatal))) {
			rc = r;
			*err = e;
		}
	}
	publish_writer_counters();
	lh_mstats_set(&mt.stats.pending, (int64_t)pending());
	return rc;
}

static bool any_busy(void)
{
	for (int i = 0; i < mt.nshards; i++)
		if (mt.shards[i].busy)
			return true;
	return false;
}

static bool any_unstored_inflight(void)
{
	for (int i = 0; i < mt.nshards; i++)
		if (mt.shards[i].inflight.n > mt.shards[i].inflight.done)
			return true;
	return false;
}

static void clear_batches(void)
{
	lh_error_t err = {0};
	wait_writers(&err); /* never free what a thread is writing */
	for (int i = 0; i < mt.nshards; i++) {
		lh_mbatch_clear(&mt.shards[i].batch);
		lh_mbatch_clear(&mt.shards[i].inflight);
	}
	lh_mstats_set(&mt.stats.pending, 0);
}

/* A write failed: pause, keep its entries, retry after a backoff (or stop on a fatal error). */
static void write_failed(const lh_error_t *err)
{
	char ns[24], bs[24];
	if (err->fatal) {
		lh_log_error("materializer.fatal", err->msg);
		stop_loop(2);
		return;
	}
	lh_mstats_add(&mt.stats.pg_errors, 1);
	mt.backoff_ms = mt.backoff_ms ? mt.backoff_ms * 2 : BACKOFF_MIN_MS;
	if (mt.backoff_ms > BACKOFF_MAX_MS)
		mt.backoff_ms = BACKOFF_MAX_MS;
	if (!mt.failing)
		pause_all(true);
	mt.failing = true;
	lh_mstats_set(&mt.stats.paused, 1);
	lh_log_warn("materializer.write_failed", err->msg, "pending",
		    i64s(ns, (long long)pending()), "retry_in_ms", i64s(bs, mt.backoff_ms));
	{
		struct timeval tv = {mt.backoff_ms / 1000, (mt.backoff_ms % 1000) * 1000};
		evtimer_add(mt.ev_retry, &tv);
	}
}

/* Everything stored that was handed over, after a failure: resume. */
static void maybe_recovered(void)
{
	if (!mt.failing || any_busy() || any_unstored_inflight())
		return;
	lh_log_info("materializer.recovered", "batch written; resuming partitions");
	mt.failing = false;
	lh_mstats_set(&mt.stats.paused, 0);
	mt.backoff_ms = 0;
	evtimer_del(mt.ev_retry);
	pause_all(false);
}

/* Entries are waiting in a filling batch: make sure the flush timer will hand them over (a
 * flush that found their writer busy leaves them for its end; entries that came meanwhile to an
 * idle writer would otherwise wait for the next count trigger). Never extends a running timer. */
static void arm_flush_timer(void)
{
	struct timeval tv = {mt.cfg.batch_max_ms / 1000, (mt.cfg.batch_max_ms % 1000) * 1000};
	if (mt.failing || mt.exit_code || filling() == 0 || evtimer_pending(mt.ev_flush, NULL))
		return;
	evtimer_add(mt.ev_flush, &tv);
}

/* Hand every idle shard's entries to its writer; a busy shard writes its batch when it is done.
 * While failing, only the retry timer calls this. */
static void flush_now(void)
{
	if (mt.exit_code)
		return;
	for (int i = 0; i < mt.nshards; i++) {
		shard_t *sh = &mt.shards[i];
		if (sh->busy)
			sh->again = true;
		else
			submit(sh);
	}
	evtimer_del(mt.ev_flush);
	arm_flush_timer(); /* what busy writers could not take yet */
	lh_mstats_set(&mt.stats.pending, (int64_t)pending());
}

/* A writer thread ended (the pipe): collect it; on failure pause and retry, else go on. */
static void on_writers_done(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	bool failed = false;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	for (int i = 0; i < mt.nshards; i++) {
		shard_t *sh = &mt.shards[i];
		lh_error_t err = {0};
		if (!sh->busy || !__atomic_load_n(&sh->finished, __ATOMIC_ACQUIRE))
			continue;
		if (complete(sh, &err)) {
			failed = true;
			write_failed(&err);
			continue;
		}
		if (sh->again && !mt.failing && !mt.exit_code)
			submit(sh);
	}
	publish_writer_counters();
	lh_mstats_set(&mt.stats.pending, (int64_t)pending());
	if (!failed)
		maybe_recovered();
	arm_flush_timer();
}

/* Write everything with retries until written or timeout_ms pass, blocking (revocation,
 * shutdown): wait for the running writes, then write all that is left at once and wait. */
static bool flush_blocking(int64_t timeout_ms)
{
	int64_t deadline = lh_mono_us() + timeout_ms * 1000, backoff = BACKOFF_MIN_MS;
	for (;;) {
		lh_error_t err = {0};
		lh_err_t rc = wait_writers(&err);
		if (rc == LH_OK) {
			for (int i = 0; i < mt.nshards; i++)
				submit(&mt.shards[i]);
			rc = wait_writers(&err);
		}
		if (rc == LH_OK && !any_unstored_inflight()) {
			maybe_recovered();
			evtimer_del(mt.ev_flush);
			return true;
		}
		if (err.fatal) {
			lh_log_error("materializer.fatal", err.msg);
			return false;
		}
		lh_mstats_add(&mt.stats.pg_errors, 1);
		if (lh_mono_us() + backoff * 1000 > deadline) {
			lh_log_warn("materializer.write_failed", err.msg, "action", "giving up");
			return false;
		}
		lh_log_warn("materializer.write_failed", err.msg, "action", "retrying");
		nap(backoff, false); /* bounded by the deadline, also while stopping */
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	if (!mt.failing)
		flush_now();
}

/* While failing: retry the failed writes (and what was consumed behind them) once the running
 * ones are done. */
static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
	if (mt.exit_code)
		return;
	for (int i = 0; i < mt.nshards; i++)
		if (!mt.shards[i].busy)
			submit(&mt.shards[i]);
	lh_mstats_set(&mt.stats.pending, (int64_t)pending());
}

/* --- consuming ---------------------------------------------------------------------------- */

/* Stored offsets of every partition of the events topic, retried until PostgreSQL answers or a
 * stop is asked for. Returns false on stop. next[] is -1 where nothing is stored. */
static bool read_stored_offsets(int64_t *next, int n)
{
	int64_t backoff = BACKOFF_MIN_MS;
	for (int i = 0; i < n; i++)
		next[i] = -1;
	for (;;) {
		const char *params[2] = {mt.consumer_name, mt.events_topic};
		lh_pg_res_t *res = NULL;
		lh_error_t err = {0};
		if (lh_pg_query(mt.pg, "consumer_offsets_get", 2, params, NULL, NULL, &res, &err) ==
		    LH_OK) {
			for (int r = 0; r < lh_pg_nrows(res); r++) {
				int64_t p = lh_pg_get_i64(res, r, 0);
				if (p >= 0 && p < n)
					next[p] = lh_pg_get_i64(res, r, 1);
			}
			lh_pg_res_free(res);
			return true;
		}
		lh_mstats_add(&mt.stats.pg_errors, 1);
		if (stop_signal)
			return false;
		/* Blocking the rebalance is the point: no partition may start anywhere else. */
		lh_log_warn("materializer.offsets_unreadable", err.msg, "action", "retrying");
		nap(backoff, true);
		if (stop_signal)
			return false;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

static void on_assigned(lh_kafka_part_t *parts, int n)
{
	int64_t *next = mt.stored_next;
	bool known = read_stored_offsets(next, MAX_PARTS);
	for (int i = 0; i < n; i++) {
		int32_t pn = parts[i].partition;
		char ps[24], os[24];
		if (pn < 0 || pn >= MAX_PARTS) {
			lh_log_error("materializer.partition_range", "partition number out of range",
				     "partition", i64s(ps, pn));
			continue;
		}
		mt.parts[pn] = (part_t){.assigned = true, .known = known, .next = -1, .stored = -1};
		if (known && next[pn] >= 0) {
			parts[i].offset = next[pn];
			mt.parts[pn].next = next[pn];
			mt.parts[pn].stored = next[pn];
		} else
			parts[i].offset = LH_KAFKA_OFFSET_BEGINNING;
		lh_mstats_set_partition(&mt.stats, pn,
					known ? mt.parts[pn].stored : LH_MSTATS_NOT_ASSIGNED);
		lh_log_info("materializer.assigned",
			    known ? "partition assigned" : "partition assigned while stopping; ignored",
			    "partition", i64s(ps, pn), "start_offset",
			    known && next[pn] >= 0 ? i64s(os, next[pn]) : "beginning");
	}
}

static void on_revoked(lh_kafka_part_t *parts, int n)
{
	char ns[24];
	/* Store what we hold first: the next owner starts where we stopped. */
	if (pending() && !flush_blocking(mt.cfg.shutdown_timeout_ms)) {
		/* Not lost: the offsets were not stored either, so the next owner re-reads it. */
		mt.dropped_batches++;
		lh_log_warn("materializer.batch_dropped", "batch not written before revocation",
			    "pending", i64s(ns, (long long)pending()), "action",
			    "the partition's next owner re-reads it from the stored offsets");
	}
	clear_batches();
	evtimer_del(mt.ev_flush);
	evtimer_del(mt.ev_retry);
	mt.failing = false;
	lh_mstats_set(&mt.stats.paused, 0);
	lh_mstats_set(&mt.stats.pending, (int64_t)pending());
	mt.backoff_ms = 0;
	for (int i = 0; i < n; i++) {
		int32_t pn = parts[i].partition;
		char ps[24];
		if (pn < 0 || pn >= MAX_PARTS)
			continue;
		if (mt.parts[pn].paused) {
			/* librdkafka keeps an application pause across reassignment; lh_kafka forgets
			 * its tracking at revocation, so pause (tracked again) and resume here. */
			lh_kafka_pause(mt.consumer, parts[i].topic, pn, true, NULL);
			lh_kafka_pause(mt.consumer, parts[i].topic, pn, false, NULL);
		}
		mt.parts[pn] = (part_t){0};
		lh_mstats_set_partition(&mt.stats, pn, LH_MSTATS_NOT_ASSIGNED);
		lh_log_info("materializer.revoked", "partition revoked", "partition", i64s(ps, pn));
	}
}

static void on_rebalance(void *opaque, bool assigned, lh_kafka_part_t *parts, int n)
{
	if (assigned)
		on_assigned(parts, n);
	else
		on_revoked(parts, n);
}

static void on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	part_t *pt = msg->partition >= 0 && msg->partition < MAX_PARTS ? &mt.parts[msg->partition]
								       : NULL;
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	lh_mrow_t row;
	lh_err_t rc;

	if (mt.exit_code)
		return; /* stopping after an error: store nothing more */
	if (!pt || !pt->assigned || !pt->known)
		return; /* not ours, or its start offset is unknown: never store past it */
	if (pt->next >= 0 && msg->offset < pt->next)
		return; /* delivered again (after a pause): already in the batch or stored */
	pt->next = msg->offset + 1;
	lh_mstats_add(&mt.stats.consumed, 1);
	if (lh_event_decode(msg->payload, msg->len, &ev, &err) == LH_OK) {
		rc = lh_mbatch_row(ev, msg->topic, msg->partition, msg->offset, &row, &err);
		lh_event_free(ev);
	} else
		rc = LH_ERR_SCHEMA;
	if (rc == LH_OK) {
		lh_mbatch_add(&mt.shards[msg->partition % mt.nshards].batch, msg->partition,
			      msg->offset, &row, msg->key, msg->key_len, msg->payload, msg->len);
	} else {
		lh_error_t derr = {0};
		char ps[24], os[24];
		lh_log_warn("materializer.undecodable", err.msg, "partition",
			    i64s(ps, msg->partition), "offset", i64s(os, msg->offset), "action",
			    "sent to the dead-letter topic");
		if (lh_bus_dead_letter(mt.producer, mt.dlq_topic, msg, mt.consumer_name, err.msg,
				       &derr)) {
			/* Not in the dlq: its offset must not be stored. Stop; a restart re-reads. */
			lh_log_error("materializer.dlq_failed", derr.msg);
			stop_loop(2);
			return;
		}
		lh_mstats_add(&mt.stats.dead_letters, 1);
		lh_mbatch_add(&mt.shards[msg->partition % mt.nshards].batch, msg->partition,
			      msg->offset, NULL, NULL, 0, NULL, 0);
	}
	lh_mstats_set(&mt.stats.pending, (int64_t)pending());
	if (mt.failing)
		return; /* the retry timer writes */
	arm_flush_timer();
	if (filling() < (size_t)mt.cfg.batch_max_events)
		return;
	flush_now();
	if (filling() >= (size_t)mt.cfg.batch_max_events) {
		/* A full batch waits behind a running write of its shard: the loop is a batch
		 * ahead. Wait for the writes (memory stays at about two batches), then hand it over. */
		lh_error_t err = {0};
		if (wait_writers(&err)) {
			write_failed(&err);
			return;
		}
		flush_now();
	}
}

/* --- housekeeping ------------------------------------------------------------------------- */

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	char a[24], b[24], c[24], d[24], e[24], f[24], g[24], h[24], l[24], r[24];
	const lh_mstats_t *st = &mt.stats;
	publish_writer_counters();
	lh_log_info("materializer.stats", "counters", "lag_total", i64s(l, mt.lag_total), "consumed",
		    i64s(a, (long long)lh_mstats_get(&st->consumed)), "events_written",
		    i64s(b, (long long)lh_mstats_get(&st->events_written)), "duplicates",
		    i64s(c, (long long)lh_mstats_get(&st->duplicates)), "batches",
		    i64s(d, (long long)lh_mstats_get(&st->batches)), "dead_letters",
		    i64s(e, (long long)lh_mstats_get(&st->dead_letters)), "rejected",
		    i64s(f, (long long)lh_mstats_get(&st->rejected)), "pg_errors",
		    i64s(g, (long long)lh_mstats_get(&st->pg_errors)), "pending",
		    i64s(h, (long long)pending()), "relay_published",
		    mt.relay ? i64s(r, (long long)lh_relay_published(mt.relay)) : "off", "state",
		    mt.failing ? "paused: postgresql unavailable" : "running");
}

/* Consumer lag per assigned partition (lh_mstats_lags, the same figures /metrics serves): the
 * high watermark the broker last reported in a fetch response (no round trip) minus the next
 * offset stored in PostgreSQL. One JSON line: the total, the largest and its partition, and
 * "lags" as PARTITION:LAG pairs. Partitions whose watermark is not known yet (nothing fetched)
 * are left out and counted as "unknown". */
static void on_lag(evutil_socket_t fd, short what, void *arg)
{
	static lh_mlag_t v[MAX_PARTS]; /* loop thread only */
	char lags[4096], ts[24], ms[24], mp[24], ns[24], us[24];
	size_t off = 0, n;
	int64_t total = 0, max = -1;
	int maxp = -1, unknown = 0;
	lags[0] = 0;
	n = lh_mstats_lags(&mt.stats, mt.consumer, mt.events_topic, v, MAX_PARTS, &unknown);
	for (size_t i = 0; i < n; i++) {
		total += v[i].lag;
		if (v[i].lag > max) {
			max = v[i].lag;
			maxp = v[i].partition;
		}
		if (off < sizeof(lags) - 48)
			off += (size_t)snprintf(lags + off, sizeof(lags) - off, "%s%d:%lld", i ? "," : "",
						(int)v[i].partition, (long long)v[i].lag);
	}
	mt.lag_total = n ? total : -1;
	if (!n && !unknown)
		return; /* nothing assigned */
	lh_log_info("materializer.lag", "consumer lag (high watermark - stored offset)", "lag_total",
		    i64s(ts, total), "lag_max", i64s(ms, max < 0 ? 0 : max), "lag_max_partition",
		    i64s(mp, maxp), "partitions", i64s(ns, (long long)n), "unknown", i64s(us, unknown),
		    "lags", lags);
}

static void on_signal_event(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (!stop_signal)
		return;
	lh_log_info("materializer.stopping", stop_signal == SIGINT ? "interrupted" : "terminated");
	event_base_loopbreak(mt.base);
}

static lh_err_t install_signals(lh_error_t *err)
{
	int fds[2];
	struct sigaction sa;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return lh_error_set(err, LH_ERR_IO, "could not create pipe: %s", strerror(errno));
	mt.signal_rfd = fds[0];
	signal_wfd = fds[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return LH_OK;
}

/* libpq's messages span lines ("...failed: Connection refused\n\tIs the server running...");
 * a start-up error is one line. */
static void one_line(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r == '\n' || *r == '\t' || *r == '\r') {
			if (w > s && w[-1] != ' ')
				*w++ = ' ';
			continue;
		}
		*w++ = *r;
	}
	*w = 0;
}

static int fail(const char *what, lh_error_t *err)
{
	one_line(err->msg);
	lh_log_error("materializer.start_failed", err->msg, "step", what);
	fprintf(stderr, "lh-materializer: %s\n", err->msg);
	return 1;
}

static int migrate(void)
{
	lh_error_t err = {0};
	int applied = 0, version = 0;
	char as[24], vs[24];
	if (lh_pg_migrate(mt.pg, &applied, &err)) {
		if (err.code == LH_ERR_CONFLICT)
			lh_error_prefix(&err, "refusing to start");
		return fail("migrate", &err);
	}
	if (lh_pg_schema_version(mt.pg, &version, &err))
		return fail("migrate", &err);
	lh_log_info("materializer.migrated", applied ? "migrations applied" : "schema up to date",
		    "applied", i64s(as, applied), "schema_version", i64s(vs, version));
	if (mt.cfg.migrate_only && applied)
		printf("lh-materializer: applied %d migration%s; schema version is now %d\n", applied,
		       applied == 1 ? "" : "s", version);
	else if (mt.cfg.migrate_only)
		printf("lh-materializer: schema already at version %d; nothing applied\n", version);
	return 0;
}

static int start_kafka(void)
{
	lh_error_t err = {0};
	lh_kafka_opts_t ko;
	const char *topics[2] = {mt.events_topic, NULL};
	char ks[24];

	ko = (lh_kafka_opts_t){.brokers = mt.cfg.common.brokers, .client_id = "lh-materializer",
			       .on_delivery = on_delivery};
	if (lh_kafka_new(&ko, &mt.producer, &err) ||
	    lh_kafka_wait_ready(mt.producer, KAFKA_READY_MS, &err) ||
	    lh_bus_ensure_topics(mt.producer, mt.cfg.common.topic_prefix, mt.tiers, mt.ntiers,
				 (int)mt.cfg.common.events_partitions, 4, &err))
		return fail("kafka", &err);
	ko = (lh_kafka_opts_t){.brokers = mt.cfg.common.brokers, .client_id = "lh-materializer",
			       .group_id = mt.cfg.group, .topics = topics, .on_message = on_message,
			       .on_rebalance = on_rebalance, .auto_commit = false,
			       .session_timeout_ms = (int)mt.cfg.session_timeout_ms};
	if (lh_kafka_new(&ko, &mt.consumer, &err) || lh_kafka_attach(mt.producer, mt.base, &err) ||
	    lh_kafka_attach(mt.consumer, mt.base, &err))
		return fail("kafka", &err);
	lh_log_info("materializer.started", "consuming", "topic", mt.events_topic, "group",
		    mt.cfg.group, "consumer", mt.consumer_name, "batch_max_events",
		    i64s(ks, mt.cfg.batch_max_events));
	if (mt.cfg.check_rounds)
		lh_log_warn("materializer.check_rounds", "every batch's rounds are numbered twice "
			    "(a check for tests: costs PostgreSQL time)");
	return 0;
}

/* `checksum`, `gc-blobs` or `--rebuild`: one-shot, then exit (tools.h). */
static int run_tool(bool checksum, bool gc_blobs)
{
	lh_mtool_opts_t o = {.pg_url = mt.cfg.common.pg_url,
			     .schema = *mt.cfg.schema ? mt.cfg.schema : mt.cfg.live_schema,
			     .against_url = mt.cfg.against_url,
			     .against_schema = mt.cfg.against_schema,
			     .live_schema = mt.cfg.live_schema,
			     .brokers = mt.cfg.common.brokers,
			     .events_topic = mt.events_topic,
			     .consumer = mt.consumer_name,
			     .batch_max_events = mt.cfg.batch_max_events,
			     .check_rounds = mt.cfg.check_rounds,
			     .swap = mt.cfg.swap,
			     .older_than_days = mt.cfg.older_than_days};
	setenv("PGCONNECT_TIMEOUT", "10", 0);
	if (gc_blobs)
		return lh_mtool_gc_blobs(&o);
	if (checksum) {
		if (*o.against_schema && !*o.against_url)
			o.against_url = o.pg_url;
		return lh_mtool_checksum(&o);
	}
	if (!*mt.cfg.schema) {
		fprintf(stderr, "lh-materializer: --rebuild needs --schema NAME\n");
		return 2;
	}
	if (!*o.brokers) {
		fprintf(stderr, "lh-materializer: no kafka brokers configured: set LH_KAFKA_BROKERS "
				"or --brokers\n");
		return 1;
	}
	return lh_mtool_rebuild(&o);
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	lh_mwriter_ops_t ops = {.reject = reject_entry, .sync_dead_letters = sync_dead_letters};
	char **rest = NULL;
	int nrest = 0, rc;
	bool checksum, gc_blobs;

	lh_log_init("lh-materializer", LH_LOG_INFO, NULL);
	mt.done_rfd = mt.done_wfd = -1;
	rc = lh_config_load(&mat_spec, &mt.cfg, argc, argv, &rest, &nrest, &err);
	if (rc == LH_ERR_NOT_FOUND)
		return 0; /* --help */
	if (rc || lh_config_apply_logging(&mt.cfg.common, &err)) {
		fprintf(stderr, "lh-materializer: %s\n", err.msg);
		return 2;
	}
	checksum = nrest == 1 && strcmp(rest[0], "checksum") == 0;
	gc_blobs = nrest == 1 && strcmp(rest[0], "gc-blobs") == 0;
	if (nrest > 0 && !checksum && !gc_blobs) {
		fprintf(stderr, "lh-materializer: unexpected argument \"%s\" (see --help)\n", rest[0]);
		free(rest);
		return 2;
	}
	free(rest);
	if (*mt.cfg.metrics_listen) {
		char host[256];
		int port;
		if (lh_listen_parse(mt.cfg.metrics_listen, host, sizeof(host), &port, &err)) {
			fprintf(stderr, "lh-materializer: %s\n", err.msg);
			lh_log_error("materializer.bad_config", err.msg);
			return 2;
		}
	}
	mt.consumer_name = *mt.cfg.consumer ? mt.cfg.consumer : mt.cfg.group;
	mt.ntiers = lh_config_split(mt.cfg.common.tiers, mt.tiers_buf, sizeof(mt.tiers_buf),
				    mt.tiers, LH_MAX_TIERS);
	if (mt.ntiers <= 0) {
		fprintf(stderr, "lh-materializer: tiers: give 1 to %d names separated by commas\n",
			LH_MAX_TIERS);
		return 2;
	}
	if (lh_topic(mt.cfg.common.topic_prefix, "events", mt.events_topic, &err) ||
	    lh_topic(mt.cfg.common.topic_prefix, "dlq", mt.dlq_topic, &err)) {
		fprintf(stderr, "lh-materializer: %s\n", err.msg);
		return 2;
	}
	if (!*mt.cfg.common.pg_url) {
		fprintf(stderr, "lh-materializer: no postgresql url configured: set LH_PG_URL or "
				"--pg-url\n");
		return 1;
	}
	if (checksum || gc_blobs || mt.cfg.rebuild) {
		rc = run_tool(checksum, gc_blobs);
		goto out_free_cfg;
	}
	if (!mt.cfg.migrate_only && !*mt.cfg.common.brokers) {
		fprintf(stderr, "lh-materializer: no kafka brokers configured: set LH_KAFKA_BROKERS "
				"or --brokers\n");
		return 1;
	}
	/* Bounded waits: libpq would otherwise wait for the kernel's TCP timeout on a host that
	 * drops packets. An explicit connect_timeout in the URL or PGCONNECT_TIMEOUT wins. */
	setenv("PGCONNECT_TIMEOUT", "10", 0);
	if (lh_pg_connect(mt.cfg.common.pg_url, &mt.pg, &err)) {
		rc = fail("postgresql", &err);
		goto out_free_cfg;
	}
	if ((rc = migrate()) || mt.cfg.migrate_only)
		goto out_free_pg;

	if (install_signals(&err)) {
		rc = fail("signals", &err);
		goto out_free_pg;
	}
	mt.base = event_base_new();
	if (!mt.base) {
		fprintf(stderr, "lh-materializer: could not create the event loop\n");
		rc = 1;
		goto out_free_pg;
	}
	mt.ev_flush = evtimer_new(mt.base, on_flush_timer, NULL);
	mt.ev_retry = evtimer_new(mt.base, on_retry_timer, NULL);
	mt.ev_signal = event_new(mt.base, mt.signal_rfd, EV_READ | EV_PERSIST, on_signal_event, NULL);
	event_add(mt.ev_signal, NULL);
	{
		int fds[2];
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
			fprintf(stderr, "lh-materializer: could not create pipe: %s\n", strerror(errno));
			rc = 1;
			goto out_free_loop;
		}
		mt.done_rfd = fds[0];
		mt.done_wfd = fds[1];
		mt.ev_done = event_new(mt.base, mt.done_rfd, EV_READ | EV_PERSIST, on_writers_done,
				       NULL);
		event_add(mt.ev_done, NULL);
	}
	if (mt.cfg.stats_interval_s > 0) {
		struct timeval tv = {mt.cfg.stats_interval_s, 0};
		mt.ev_stats = event_new(mt.base, -1, EV_PERSIST, on_stats, NULL);
		event_add(mt.ev_stats, &tv);
	}
	mt.lag_total = -1;
	lh_mstats_init(&mt.stats);
	if (mt.cfg.lag_interval_s > 0) {
		struct timeval tv = {mt.cfg.lag_interval_s, 0};
		mt.ev_lag = event_new(mt.base, -1, EV_PERSIST, on_lag, NULL);
		event_add(mt.ev_lag, &tv);
	}
	mt.nshards = (int)mt.cfg.writers;
	for (int i = 0; i < mt.nshards; i++) {
		shard_t *sh = &mt.shards[i];
		lh_mbatch_init(&sh->batch);
		lh_mbatch_init(&sh->inflight);
		/* its own connection: the loop uses mt.pg (stored offsets) while writers run */
		if (lh_pg_connect(mt.cfg.common.pg_url, &sh->pg, &err)) {
			mt.nshards = i;
			rc = fail("postgresql", &err);
			goto out_free_loop;
		}
		ops.check_rounds = mt.cfg.check_rounds; /* the configuration is read by now */
		lh_mwriter_init(&sh->writer, sh->pg, mt.consumer_name, mt.events_topic, &ops);
	}
	if ((rc = start_kafka()))
		goto out_free_loop;
	if (mt.cfg.memory_relay) {
		lh_relay_cfg_t rcfg = {.pg_url = mt.cfg.common.pg_url,
				       .brokers = mt.cfg.common.brokers,
				       .events_topic = mt.events_topic,
				       .interval_ms = (int)mt.cfg.memory_relay_interval_ms,
				       .batch = 200};
		if (lh_relay_start(&rcfg, &mt.relay, &err)) {
			rc = fail("memory relay", &err);
			goto out_free_loop;
		}
	}
	if (*mt.cfg.metrics_listen) {
		char ps[24];
		if (lh_mmetrics_new(mt.cfg.metrics_listen, &mt.stats, mt.consumer, mt.events_topic,
				    &mt.metrics, &err)) {
			rc = fail("metrics", &err);
			goto out_free_loop;
		}
		lh_log_info("materializer.metrics", "serving GET /metrics", "listen",
			    mt.cfg.metrics_listen, "port", i64s(ps, lh_mmetrics_port(mt.metrics)));
	}
	if (!stop_signal)
		event_base_dispatch(mt.base);

	/* Orderly stop: write what we hold, then leave the group (the revocation finds the batch
	 * empty), then make sure every dead letter is out. */
	if (mt.exit_code == 0 && pending() &&
	    !flush_blocking(mt.cfg.shutdown_timeout_ms)) {
		lh_log_warn("materializer.batch_dropped", "batch not written before exit", "action",
			    "re-read from the stored offsets on restart");
		mt.exit_code = 1;
	}
	if (mt.exit_code)
		clear_batches(); /* never store past what a failed stop left behind */
	mt.metrics = lh_mmetrics_free(mt.metrics); /* it reads the consumer's watermarks */
	mt.consumer = lh_kafka_free(mt.consumer);
	if (lh_kafka_flush(mt.producer, (int)mt.cfg.shutdown_timeout_ms, &err))
		lh_log_warn("materializer.flush", err.msg);
	on_stats(-1, 0, NULL);
	lh_relay_stop(mt.relay);
	mt.relay = NULL;
	rc = mt.exit_code;
out_free_loop:
	{
		lh_error_t e = {0};
		wait_writers(&e); /* every thread joined before anything it uses is freed */
	}
	mt.metrics = lh_mmetrics_free(mt.metrics);
	lh_relay_stop(mt.relay);
	mt.relay = NULL;
	mt.consumer = lh_kafka_free(mt.consumer);
	mt.producer = lh_kafka_free(mt.producer);
	event_free(mt.ev_flush);
	event_free(mt.ev_retry);
	event_free(mt.ev_signal);
	if (mt.ev_stats)
		event_free(mt.ev_stats);
	if (mt.ev_lag)
		event_free(mt.ev_lag);
	if (mt.ev_done)
		event_free(mt.ev_done);
	event_base_free(mt.base);
	for (int i = 0; i < mt.nshards; i++) {
		lh_mwriter_finish(&mt.shards[i].writer);
		lh_mbatch_finish(&mt.shards[i].batch);
		lh_mbatch_finish(&mt.shards[i].inflight);
		lh_pg_free(mt.shards[i].pg);
	}
	close(mt.signal_rfd);
	close(signal_wfd);
	if (mt.done_rfd >= 0)
		close(mt.done_rfd);
	if (mt.done_wfd >= 0)
		close(mt.done_wfd);
out_free_pg:
	mt.pg = lh_pg_free(mt.pg);
out_free_cfg:
	lh_config_finish(&mat_spec, &mt.cfg);
	if (rc == 0)
		lh_log_info("materializer.stopped", "bye");
	return rc;
}
