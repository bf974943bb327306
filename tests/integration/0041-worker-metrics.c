/* 0041-worker-metrics: lh-worker --metrics-listen serves Prometheus GET /metrics from its loop.
 * A plan runs through fakellm; the fast worker's figures then agree with PostgreSQL: its
 * succeeded attempts are the plan's fast-tier ones, every one of its model calls reported usage
 * (so the token estimate's error is measured on each, and is a sane ratio), no breaker is open.
 * Another path is 404; a malformed address stops the worker with
 * exit 2 before it connects anything, and a port already taken with exit 1. The endpoint holds
 * at most 64 connections (common/httpd.h): 64 + 36 idle ones leave 36 refused at once, the
 * worker's descriptors bounded, its loop serving, one rate-limited log line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conncap.h"
#include "httpd.h"
#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static int fast = -1, port = -1; /* the fast worker serving /metrics, set by t_metrics */

static void t_metrics(void)
{
	char url[96], plan[40], series[200];
	lh_buf_t body;
	lh_id_t id;
	double ok, calls, err;
	const char *want;
	lh_buf_init(&body);
	fast = ts_spawn_worker_url(&ts, "fast", ts.fakellm_url, "--metrics-listen", "127.0.0.1:0",
				   NULL);
	ts_spawn_worker(&ts, "standard");
	port = ts_log_port(&ts, "worker-fast", "worker.metrics", 30000);
	T_CHECK(port > 0);
	id = ts_submit(&ts, "Compare two message brokers for a weeks-long agent system");
	lh_uuid_fmt(&id, plan);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	want = ts_sql1(&ts, "SELECT count(*) FROM task_attempts WHERE plan_id = $1 AND tier = "
			    "'fast' AND status = 'succeeded'",
		       plan);
	T_CHECK(want && atoi(want) >= 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	T_EQ_INT(ts_http_get(url, &body), 200);
	printf("# %s", body.data);
	ok = ts_metric(body.data, "lh_worker_attempts_total{outcome=\"succeeded\"}");
	T_EQ_INT((long)ok, atol(want));
	T_EQ_INT((long)ts_metric(body.data, "lh_worker_attempts_total{outcome=\"failed\"}"), 0);
	T_EQ_INT((long)ts_metric(body.data, "lh_worker_inflight"), 0);
	calls = ts_metric(body.data, "lh_worker_token_estimate_calls_total");
	err = ts_metric(body.data, "lh_worker_token_estimate_error");
	T_CHECK(calls >= ok); /* one model call at least per attempt, each with usage */
	T_CHECK(err > 0 && err < 2);
	T_CHECK(strstr(body.data, "lh_worker_model_calls_total{model=") != NULL);
	{
		int breakers = 0;
		for (const char *l = strstr(body.data, "lh_worker_breaker_open{"); l;
		     l = strstr(l + 1, "lh_worker_breaker_open{")) {
			const char *end = strchr(l, ' ');
			snprintf(series, sizeof(series), "%.*s", (int)(end ? end - l : 0), l);
			T_EQ_INT((long)ts_metric(body.data, series), 0); /* every breaker closed */
			breakers++;
		}
		T_CHECK(breakers >= 1);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/other", port);
	T_EQ_INT(ts_http_get(url, &body), 404);

	/* a second worker on the same port: exit 1; a malformed address: exit 2 */
	{
		char addr[32];
		int other;
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
		other = ts_spawn_worker_url(&ts, "fast", ts.fakellm_url, "--metrics-listen", addr,
					    NULL);
		T_EQ_INT(ts_wait_exit(&ts, other, 30000), 1);
		other = ts_spawn_worker_url(&ts, "fast", ts.fakellm_url, "--metrics-listen",
					    "localhost", NULL);
		T_EQ_INT(ts_wait_exit(&ts, other, 30000), 2);
	}
	T_EQ_INT(ts_wait_exit(&ts, fast, 10), -1); /* still up */
	lh_buf_finish(&body);
}

/* cap + 36 idle connections to the fast worker's endpoint, served from its loop; see
 * conncap.h. Fails with the cap removed: nothing is refused within 5 s and the descriptors grow
 * by 100. */
static void t_conn_cap(void)
{
	ts_conncap_t cc;
	T_CHECK(fast >= 0 && port > 0);
	if (fast < 0 || port <= 0)
		return;
	ts_conncap_probe(ts.procs[fast].pid, port, LH_HTTPD_MAX_CONNS, 36, &cc);
	T_CHECK(ts_conncap_ok(&cc, LH_HTTPD_MAX_CONNS, 36));
	T_CHECK(ts_wait_log(&ts, "worker-fast", "worker.metrics_refused",
			    "\"max_connections\":\"64\"", 5000));
	T_EQ_INT(ts_wait_exit(&ts, fast, 10), -1); /* still up */
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm(&ts, 0)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	T_RUN(t_metrics);
	T_RUN(t_conn_cap);
	ts_finish(&ts);
	return t_done();
}
