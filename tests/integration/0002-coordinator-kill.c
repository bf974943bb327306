/* 0002-coordinator-kill: kill -9 the coordinator between two tasks, restart it: the plan
 * completes, and no task has two successful attempts. The restarted coordinator folds the log
 * from the beginning and re-decides with the same event ids. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40];
static int coord;

static void t_kill_between_tasks(void)
{
	lh_id_t id = ts_submit(&ts, "Plan a data migration and check it twice");
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	/* task 1 done, 2 and 3 not yet: the coordinator is between tasks */
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 1", plan,
			    "succeeded"));
	ts_kill(&ts, coord, SIGKILL);
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", plan), "running");
	ts_restart(&ts, coord);
}

static void t_plan_completes(void)
{
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
}

static void t_no_task_succeeded_twice(void)
{
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM (SELECT task_no FROM task_attempts WHERE plan_id = $1 "
			 "AND status = 'succeeded' GROUP BY task_no HAVING count(*) > 1) x",
			 plan),
		 "0");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM tasks WHERE plan_id = $1 AND status = 'succeeded'",
			 plan),
		 "6");
	/* a re-sent order may run twice, but its attempt.succeeded has one id: one event */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM events WHERE plan_id = $1 AND type = 'plan.completed'",
			 plan),
		 "1");
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm(&ts, 400)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	coord = ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	T_RUN(t_kill_between_tasks);
	T_RUN(t_plan_completes);
	T_RUN(t_no_task_succeeded_twice);
	ts_finish(&ts);
	return t_done();
}
