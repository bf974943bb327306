/* 0005-timers-restart: a worker dies in the middle of an attempt, and the coordinator is killed
 * while that attempt's heartbeat lease is pending and while another plan's approval request
 * waits for its reminder. After the restart (which recovers from snapshots) the lease and the
 * reminder each fire exactly once, the task is retried, and the plan completes. */
#include <signal.h>
#include <stdio.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40], waiting[40];
static int coord, worker_fast;

static void t_kill_worker_and_coordinator(void)
{
	lh_budget_t tiny = {.tokens = 100}; /* the planner alone passes it: a question at once */
	lh_id_t w = ts_submit_with(&ts, "Nobody will answer this one", &tiny, NULL), id;
	lh_uuid_fmt(&w, waiting);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM input_requests WHERE plan_id = $1",
			    waiting, "pending"));
	id = ts_submit(&ts, "Compare two databases for an event store");
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	/* task 1 (fast) is running: its first model call hangs (fakellm script) */
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 1", plan,
			    "running"));
	ts_kill(&ts, worker_fast, SIGKILL);
	ts_kill(&ts, coord, SIGKILL);
	ts_restart(&ts, coord);
	ts_restart(&ts, worker_fast);
}

static void t_lease_fires_once_and_plan_completes(void)
{
	T_CHECK(ts_wait_sql(&ts, 120000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM events WHERE plan_id = $1 AND type = 'timer.fired' AND "
			 "task_no = 1 AND attempt = 1 AND body->>'timer' = 'heartbeat_lease'",
			 plan),
		 "1");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(attempt || '=' || status, ',' ORDER BY attempt) FROM "
			 "task_attempts WHERE plan_id = $1 AND task_no = 1",
			 plan),
		 "1=failed,2=succeeded");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM (SELECT task_no FROM task_attempts WHERE plan_id = $1 "
			 "AND status = 'succeeded' GROUP BY task_no HAVING count(*) > 1) x",
			 plan),
		 "0");
	/* the other plan's reminder: exactly one, whichever coordinator fired it */
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT count(*) FROM events WHERE plan_id = $1 AND type = 'timer.fired' "
			    "AND body->>'timer' = 'reminder'",
			    waiting, "1"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM plan_decisions WHERE plan_id = $1 AND kind = 'reminder'",
			 waiting),
		 "1");
}

int main(int argc, char **argv)
{
	/* Task 1's first model call never answers, so the kill always finds it in flight (the
	 * worker starts its first call while attempt.started is on its way: with a fixed latency
	 * a slow machine could see the attempt finish before "running" reached PostgreSQL). */
	static const char script[] = "{\"rules\":[{\"match\":\"Research the background of\","
				     "\"times\":1,\"action\":\"hang\"}]}";
	char cfg[600];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm_with(&ts, 2500, script, ts.fakellm_url)) {
		ts_finish(&ts);
		return 1;
	}
	/* the fast worker commits each order's offset as soon as its attempt.started is
	 * acknowledged: the killed attempt's order is not delivered again, its lease must fire */
	{
		FILE *f;
		snprintf(cfg, sizeof(cfg), "%s/0005-fast.json", ts.log_dir);
		f = fopen(cfg, "w");
		if (f) {
			fputs("{\"worker.commit_interval_ms\": 0}\n", f);
			fclose(f);
		}
	}
	ts_spawn_materializer(&ts);
	coord = ts_spawn_coordinator(&ts, "--heartbeat-lease", "4", "--backoff-base-ms", "100",
				     "--snapshot-interval", "1", "--wait-reminder", "6", NULL);
	worker_fast = ts_spawn_worker_url(&ts, "fast", ts.fakellm_url, "--heartbeat-interval", "1",
					  "--config", cfg, NULL);
	ts_spawn_worker_url(&ts, "standard", ts.fakellm_url, "--heartbeat-interval", "1", NULL);
	T_RUN(t_kill_worker_and_coordinator);
	T_RUN(t_lease_fires_once_and_plan_completes);
	ts_finish(&ts);
	return t_done();
}
