/* 0038-materializer-metrics: consumer lag is a Prometheus metric, and it is the real one.
 *
 * N events are produced while no materializer runs. Before it starts, the test stores offset 0
 * for every partition under the materializer's consumer name and keeps those rows locked
 * (SELECT ... FOR UPDATE in an open transaction), so the materializer consumes everything but
 * its first transaction waits on the lock: nothing can be stored. Its /metrics
 * (--metrics-listen 127.0.0.1:0, served from a thread of its own) must then answer, while the
 * daemon's loop is blocked, with lh_materializer_lag_events{partition} equal to each
 * partition's high watermark (asked of the broker by the test), pending = consumed = N and no
 * batch. Released, the materializer stores the batch: every lag reads 0, the written counter is
 * N, and consumer_offsets holds the high watermarks. A lag computed from what was consumed rather
 * than what is stored, or an endpoint on the blocked loop, fails the first half.
 *
 * Also: a malformed --metrics-listen stops the daemon with exit 2 before it connects anything,
 * and a port already taken with exit 1 and one line. And the endpoint holds at most 64
 * connections (common/httpd.h): 64 + 36 idle ones leave 36 refused at once, the daemon's
 * descriptors bounded, one rate-limited log line, and a scrape answered once they close.
 * And a writer blocked on a lock does not hold up another writer's events
 * (idle_writer_not_starved). */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "bus.h"
#include "conncap.h"
#include "httpd.h"
#include "stack.h"
#include "t.h"

#define NEVENTS 600
#define NPARTS 8

static ts_stack_t ts;
static char topic[LH_TOPIC_MAX];
static char group[96];

static void nap_ms(int ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

/* GET http://127.0.0.1:port/metrics into out; the HTTP status (0: no answer). */
static long scrape(int port, lh_buf_t *out)
{
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	return ts_http_get(url, out);
}

/* The value of the sample line starting with `series ` (exact), or -1 when missing. */
static long long sample(const char *text, const char *series)
{
	return (long long)ts_metric(text, series);
}

static long long lag_of(const char *text, int p)
{
	char series[160];
	snprintf(series, sizeof(series), "lh_materializer_lag_events{topic=\"%s\",partition=\"%d\"}",
		 topic, p);
	return sample(text, series);
}

/* The port in the "materializer.metrics" line of the materializer's log, -1 after 30 s. */
static int metrics_port(const char *name)
{
	return ts_log_port(&ts, name, "materializer.metrics", 30000);
}

static void produce(int n)
{
	lh_buf_t b;
	lh_error_t err = {0};
	lh_buf_init(&b);
	for (int i = 0; i < n; i++) {
		lh_goal_submitted_t g = {.goal = "metrics"};
		lh_event_t ev = {0};
		ev.v = LH_ENVELOPE_VERSION;
		ev.type = LH_EV_GOAL_SUBMITTED;
		ev.plan_id = lh_uuid7_new();
		ev.task_no = LH_NO_TASK;
		ev.ts_us = lh_now_us();
		ev.tenant = "default";
		ev.actor.kind = "cli";
		ev.actor.id = "lh-test";
		ev.body = &g;
		ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "metrics");
		if (lh_bus_emit(ts.producer, topic, &ev, false, &b, NULL, &err)) {
			printf("FAIL: produce: %s\n", err.msg);
			break;
		}
	}
	if (lh_kafka_flush(ts.producer, 20000, &err))
		printf("FAIL: flush: %s\n", err.msg);
	lh_buf_finish(&b);
}

static PGresult *exec1(PGconn *c, const char *sql, const char *p1, const char *p2)
{
	const char *params[2] = {p1, p2};
	return PQexecParams(c, sql, p2 ? 2 : p1 ? 1 : 0, NULL, params, NULL, NULL, 0);
}

/* A write of lh-materializer waits for a row lock (the test's), within 30 s. */
static bool wait_blocked(void)
{
	for (int i = 0; i < 1500; i++) {
		PGresult *r = exec1(ts.pg,
				    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
				    "'Lock' AND pid <> pg_backend_pid() AND query LIKE "
				    "'%lh_mat_fold%'",
				    NULL, NULL);
		bool blocked = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) > 0;
		PQclear(r);
		if (blocked)
			return true;
		nap_ms(20);
	}
	return false;
}

static void lag_is_real(void)
{
	int64_t hi[NPARTS], total = 0;
	lh_error_t err = {0};
	lh_buf_t body;
	PGconn *lock;
	PGresult *r;
	int mat, port;
	long long v;
	bool seen_exact = false, seen_zero = false;

	lh_buf_init(&body);
	produce(NEVENTS);
	for (int p = 0; p < NPARTS; p++) {
		T_CHECK(lh_kafka_watermarks(ts.producer, topic, p, 5000, NULL, &hi[p], &err) == LH_OK);
		total += hi[p];
	}
	T_EQ_INT(total, NEVENTS);

	/* offset 0 stored for every partition, and those rows locked by an open transaction */
	r = exec1(ts.pg,
		  "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) "
		  "SELECT $1, $2, p, 0 FROM generate_series(0, 7) p",
		  group, topic);
	T_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
	PQclear(r);
	lock = PQconnectdb(ts.pg_url);
	T_CHECK(PQstatus(lock) == CONNECTION_OK);
	PQclear(PQexec(lock, "BEGIN"));
	r = exec1(lock, "SELECT partition FROM consumer_offsets WHERE consumer = $1 AND topic = $2 "
			"FOR UPDATE",
		  group, topic);
	T_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == NPARTS);
	PQclear(r);

	mat = ts_spawn(&ts, "materializer", "materializer/lh-materializer", "--group", group,
		       "--metrics-listen", "127.0.0.1:0", "--lag-interval", "1", NULL);
	port = metrics_port("materializer");
	T_CHECK(port > 0);

	/* the materializer's first transaction waits for our lock: its loop is blocked */
	T_CHECK(wait_blocked());

	/* ... and /metrics still answers, with each partition's lag = its high watermark - 0 */
	for (int i = 0; i < 100 && !seen_exact; i++) {
		bool all = true;
		if (scrape(port, &body) != 200) {
			nap_ms(100);
			continue;
		}
		for (int p = 0; p < NPARTS; p++)
			all = all && lag_of(body.data, p) == hi[p];
		all = all && sample(body.data, "lh_materializer_pending_events") == NEVENTS;
		seen_exact = all;
		if (!all)
			nap_ms(100);
	}
	T_CHECK(seen_exact);
	if (!seen_exact)
		fprintf(stderr, "# last scrape:\n%s\n", body.data);
	T_EQ_INT(sample(body.data, "lh_materializer_consumed_total"), NEVENTS);
	T_EQ_INT(sample(body.data, "lh_materializer_events_written_total"), 0);
	T_EQ_INT(sample(body.data, "lh_materializer_batches_total"), 0);
	T_EQ_INT(sample(body.data, "lh_materializer_assigned_partitions"), NPARTS);
	T_EQ_INT(sample(body.data, "lh_materializer_lag_unknown_partitions"), 0);

	/* released: the batch is stored, the lag drops to 0 */
	PQclear(PQexec(lock, "ROLLBACK"));
	for (int i = 0; i < 300 && !seen_zero; i++) {
		bool all = scrape(port, &body) == 200;
		for (int p = 0; all && p < NPARTS; p++)
			all = lag_of(body.data, p) == 0;
		seen_zero = all && sample(body.data, "lh_materializer_events_written_total") == NEVENTS;
		if (!seen_zero)
			nap_ms(100);
	}
	T_CHECK(seen_zero);
	if (!seen_zero)
		fprintf(stderr, "# last scrape:\n%s\n", body.data);
	T_EQ_INT(sample(body.data, "lh_materializer_pending_events"), 0);
	v = sample(body.data, "lh_materializer_batches_total");
	T_CHECK(v >= 1);
	T_CHECK(sample(body.data, "lh_materializer_flush_seconds_count") >= 1);
	T_CHECK(sample(body.data, "lh_materializer_flush_seconds_count") <= v);
	T_CHECK(sample(body.data, "lh_materializer_flush_seconds_bucket{le=\"+Inf\"}") >= 1);
	/* what the metric said is what PostgreSQL holds */
	r = exec1(ts.pg,
		  "SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition) "
		  "FROM consumer_offsets WHERE consumer = $1 AND topic = $2",
		  group, topic);
	{
		char want[256];
		size_t off = 0;
		for (int p = 0; p < NPARTS; p++)
			off += (size_t)snprintf(want + off, sizeof(want) - off, "%s%d:%lld",
						p ? "," : "", p, (long long)hi[p]);
		T_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			T_EQ_STR(PQgetvalue(r, 0, 0), want);
	}
	PQclear(r);
	/* anything but GET /metrics is refused */
	{
		char url[64];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/other", port);
		T_EQ_INT(ts_http_get(url, &body), 404);
	}

	/* a second materializer on the same port: exit 1, one line */
	{
		char addr[32];
		int other;
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
		other = ts_spawn(&ts, "materializer-taken", "materializer/lh-materializer", "--group",
				 group, "--consumer", "metrics-other", "--metrics-listen", addr, NULL);
		T_EQ_INT(ts_wait_exit(&ts, other, 30000), 1);
		T_CHECK(ts_wait_log(&ts, "materializer-taken", "could not listen on", addr, 1000));
	}

	ts_kill(&ts, mat, SIGTERM);
	T_EQ_INT(ts_wait_exit(&ts, mat, 20000), 0);
	PQfinish(lock);
	lh_buf_finish(&body);
}

static void bad_listen(void)
{
	const char *bad[] = {"nonsense", "127.0.0.1:", "127.0.0.1:65536", ":9400", "::1:9400",
			     "127.0.0.1:94x0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[32];
		int m;
		snprintf(name, sizeof(name), "materializer-bad%zu", i);
		m = ts_spawn(&ts, name, "materializer/lh-materializer", "--group", group,
			     "--metrics-listen", bad[i], NULL);
		T_EQ_INT(ts_wait_exit(&ts, m, 10000), 2);
		T_CHECK(ts_wait_log(&ts, name, "metrics listen", NULL, 1000));
	}
}

/* One goal.submitted to partition p (explicitly); its event id in id (hex). */
static void produce_to(int p, char id[LH_ID_HEX_LEN + 1])
{
	lh_goal_submitted_t g = {.goal = "starve"};
	lh_event_t ev = {0};
	lh_error_t err = {0};
	lh_buf_t b;
	lh_buf_init(&b);
	ev.v = LH_ENVELOPE_VERSION;
	ev.type = LH_EV_GOAL_SUBMITTED;
	ev.plan_id = lh_uuid7_new();
	ev.task_no = LH_NO_TASK;
	ev.ts_us = lh_now_us();
	ev.actor.kind = "cli";
	ev.actor.id = "lh-test";
	ev.body = &g;
	ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "starve");
	lh_id_hex(&ev.id, id);
	if (lh_event_encode(&ev, &b, &err) ||
	    lh_kafka_produce(ts.producer, topic, p, ev.plan_id.b, 16, b.data, b.len, NULL, 0, NULL,
			     &err) ||
	    lh_kafka_flush(ts.producer, 20000, &err))
		printf("FAIL: produce: %s\n", err.msg);
	lh_buf_finish(&b);
}

static bool stored(const char *id)
{
	PGresult *r = exec1(ts.pg, "SELECT count(*) FROM events WHERE id = $1::uuid", id, NULL);
	bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == 1;
	PQclear(r);
	return yes;
}

/* A writer that is busy must not hold up the others (the stall 1f19cd4 fixed; before, only the
 * paced bench found it). Writer 0 (partition 0) waits on a row lock the test holds; a second
 * event for partition 0 then waits in its filling batch, and the flush timer (1 ms) finds writer
 * 0 busy. An event for partition 1 then reaches idle writer 1's batch: it must be stored while
 * writer 0 is still blocked. With the old rule (a timer only for the first entry of an empty
 * filling set, none after a flush that found a writer busy) it waited for writer 0 forever. */
static void idle_writer_not_starved(void)
{
	char g2[128], id1[LH_ID_HEX_LEN + 1], id2[LH_ID_HEX_LEN + 1], id3[LH_ID_HEX_LEN + 1];
	lh_error_t err = {0};
	lh_buf_t body;
	PGconn *lock;
	PGresult *r;
	int mat, port;
	bool two = false, third = false;
	lh_buf_init(&body);
	snprintf(g2, sizeof(g2), "%s-starve", group);
	/* start at the end of the topic (what lag_is_real produced is not this case's) */
	for (int p = 0; p < NPARTS; p++) {
		int64_t hi = 0;
		char ps[16], hs[24];
		const char *params[4] = {g2, topic, ps, hs};
		T_CHECK(lh_kafka_watermarks(ts.producer, topic, p, 5000, NULL, &hi, &err) == LH_OK);
		snprintf(ps, sizeof(ps), "%d", p);
		snprintf(hs, sizeof(hs), "%lld", (long long)hi);
		r = PQexecParams(ts.pg,
				 "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) "
				 "VALUES ($1, $2, $3::integer, $4::bigint)",
				 4, NULL, params, NULL, NULL, 0);
		T_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
		PQclear(r);
	}
	lock = PQconnectdb(ts.pg_url);
	T_CHECK(PQstatus(lock) == CONNECTION_OK);
	PQclear(PQexec(lock, "BEGIN"));
	r = exec1(lock, "SELECT 1 FROM consumer_offsets WHERE consumer = $1 AND topic = $2 "
			"AND partition = 0 FOR UPDATE",
		  g2, topic);
	T_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1);
	PQclear(r);

	mat = ts_spawn(&ts, "materializer-starve", "materializer/lh-materializer", "--group", g2,
		       "--writers", "2", "--batch-max-ms", "1", "--metrics-listen", "127.0.0.1:0",
		       NULL);
	port = ts_log_port(&ts, "materializer-starve", "materializer.metrics", 30000);
	T_CHECK(port > 0);
	T_CHECK(ts_wait_log(&ts, "materializer-starve", "materializer.assigned", NULL, 30000));

	produce_to(0, id1); /* writer 0 takes it and waits for the lock */
	T_CHECK(wait_blocked());
	produce_to(0, id2); /* waits in writer 0's filling batch; the 1 ms timer finds 0 busy */
	for (int i = 0; i < 500 && !two; i++) {
		two = scrape(port, &body) == 200 &&
		      sample(body.data, "lh_materializer_pending_events") == 2;
		if (!two)
			nap_ms(20);
	}
	T_CHECK(two);
	produce_to(1, id3); /* idle writer 1's batch: stored although writer 0 still waits */
	for (int i = 0; i < 500 && !third; i++) {
		third = stored(id3);
		if (!third)
			nap_ms(20);
	}
	T_CHECK(third);
	T_CHECK(!stored(id1) && !stored(id2)); /* writer 0 was blocked all along */

	PQclear(PQexec(lock, "ROLLBACK"));
	for (int i = 0; i < 500 && !(stored(id1) && stored(id2)); i++)
		nap_ms(20);
	T_CHECK(stored(id1) && stored(id2));
	ts_kill(&ts, mat, SIGTERM);
	T_EQ_INT(ts_wait_exit(&ts, mat, 20000), 0);
	PQfinish(lock);
	lh_buf_finish(&body);
}

/* cap + 36 idle connections to the endpoint; see conncap.h. Fails with the cap removed: nothing
 * is refused within 5 s and the descriptors grow by 100. */
static void conn_cap(void)
{
	ts_conncap_t cc;
	char group_cap[128];
	int mat, port;
	snprintf(group_cap, sizeof(group_cap), "%s-cap", group);
	mat = ts_spawn(&ts, "materializer-cap", "materializer/lh-materializer", "--group", group_cap,
		       "--consumer", "metrics-cap", "--metrics-listen", "127.0.0.1:0", NULL);
	port = ts_log_port(&ts, "materializer-cap", "materializer.metrics", 30000);
	T_CHECK(port > 0);
	if (port <= 0)
		return;
	ts_conncap_probe(ts.procs[mat].pid, port, LH_HTTPD_MAX_CONNS, 36, &cc);
	T_CHECK(ts_conncap_ok(&cc, LH_HTTPD_MAX_CONNS, 36));
	T_CHECK(ts_wait_log(&ts, "materializer-cap", "materializer.metrics_refused",
			    "\"max_connections\":\"64\"", 5000));
	ts_kill(&ts, mat, SIGTERM);
	T_EQ_INT(ts_wait_exit(&ts, mat, 20000), 0);
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	lh_topic(ts.prefix, "events", topic, NULL);
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	T_RUN(bad_listen);
	T_RUN(lag_is_real);
	T_RUN(idle_writer_not_starved);
	T_RUN(conn_cap);
	ts_finish(&ts);
	return t_done();
}
