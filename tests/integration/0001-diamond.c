/* 0001-diamond: a goal whose plan is a 5-task diamond (1 -> 2, 3 -> 4 -> join) completes across
 * the real Kafka broker and PostgreSQL, with fakellm answering over HTTP (300 ms per call).
 * Afterwards PostgreSQL holds every task succeeded, one successful attempt per task with tokens,
 * a plan_decisions row for the plan's creation, and every event exactly once; the two parallel
 * branches overlapped in time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40];

static void t_plan_completes(void)
{
	lh_id_t id = ts_submit(&ts, "Choose a database for a weeks-long agent system");
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
}

static void t_every_task_succeeded(void)
{
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM tasks WHERE plan_id = $1", plan), "6");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM tasks WHERE plan_id = $1 AND status = 'succeeded'",
			 plan),
		 "6"); /* the plan task and the 5 of the diamond, join included */
	T_EQ_STR(ts_sql1(&ts, "SELECT tasks_total FROM plans WHERE plan_id = $1", plan), "5");
}

static void t_one_success_per_task_with_tokens(void)
{
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM (SELECT task_no FROM task_attempts WHERE plan_id = $1 "
			 "AND status = 'succeeded' GROUP BY task_no HAVING count(*) = 1) x",
			 plan),
		 "6");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM task_attempts WHERE plan_id = $1 AND status = "
			 "'succeeded' AND (input_tokens <= 0 OR output_tokens <= 0)",
			 plan),
		 "0");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT (input_tokens > 0 AND output_tokens > 0)::text FROM plans WHERE "
			 "plan_id = $1",
			 plan),
		 "true");
}

static void t_decision_logged(void)
{
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM plan_decisions WHERE plan_id = $1 AND kind = "
			 "'plan_created'",
			 plan),
		 "1");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM plan_decisions WHERE plan_id = $1 AND kind = "
			 "'plan_completed'",
			 plan),
		 "1");
}

static void t_events_exactly_once(void)
{
	/* id is the primary key, so duplicates cannot be stored; check nothing is missing: one
	 * goal, one plan.created, and per task one dispatched, started, succeeded. */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(type || '=' || n, ',' ORDER BY type) FROM (SELECT type, "
			 "count(*) n FROM events WHERE plan_id = $1 GROUP BY type) x",
			 plan),
		 "attempt.started=6,attempt.succeeded=6,decision.logged=2,goal.submitted=1,"
		 "plan.completed=1,plan.created=1,task.dispatched=6");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM (SELECT partition, \"offset\" FROM events WHERE "
			 "plan_id = $1 GROUP BY 1, 2 HAVING count(*) > 1) x",
			 plan),
		 "0");
}

static void t_branches_overlapped(void)
{
	/* tasks 2 and 3 both depend only on 1: their attempts ran at the same time */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT (a.started_at < b.finished_at AND b.started_at < a.finished_at)::text "
			 "FROM task_attempts a, task_attempts b WHERE a.plan_id = $1 AND b.plan_id = "
			 "$1 AND a.task_no = 2 AND b.task_no = 3 AND a.status = 'succeeded' AND "
			 "b.status = 'succeeded'",
			 plan),
		 "true");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(depends_on::text, ',' ORDER BY depends_on) FROM "
			 "task_dependencies WHERE plan_id = $1 AND task_no = 4",
			 plan),
		 "2,3");
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm(&ts, 300)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	T_RUN(t_plan_completes);
	T_RUN(t_every_task_succeeded);
	T_RUN(t_one_success_per_task_with_tokens);
	T_RUN(t_decision_logged);
	T_RUN(t_events_exactly_once);
	T_RUN(t_branches_overlapped);
	ts_finish(&ts);
	return t_done();
}
