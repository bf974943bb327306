/* 0011-finished-plan: a finished plan stays finished. After its snapshot round the coordinator
 * writes a "done" record for it and drops it from memory; it is then killed with SIGKILL and
 * restarted (recovering from the snapshots topic), and the plan's goal.submitted is delivered again,
 * as a producer retry or a replayed import would. The coordinator knows the id finished and starts
 * nothing: no second plan.created, no new task.dispatched. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static lh_id_t plan_id;
static char plan[40];
static int coord, dispatched;

static void t_plan_completes_and_is_retired(void)
{
	plan_id = ts_submit(&ts, "Compare two databases for an event store");
	lh_uuid_fmt(&plan_id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	/* the snapshot round after completion wrote the done record */
	T_CHECK(ts_wait_log(&ts, "coordinator", "\"coordinator.plans_retired\"", NULL, 30000));
	dispatched = ts_count_events(&ts, plan, "task.dispatched");
	T_CHECK(dispatched > 0);
}

static void t_restart_knows_it_finished(void)
{
	ts_kill(&ts, coord, SIGKILL);
	ts_restart(&ts, coord);
	T_CHECK(ts_wait_log(&ts, "coordinator", "\"coordinator.assigned\"",
			    "\"retired_plans\":\"1\"", 60000));
}

static void t_duplicate_goal_starts_nothing(void)
{
	lh_goal_submitted_t g = {.goal = "Compare two databases for an event store"};
	lh_event_t ev = {0};
	lh_id_t other;
	char other_s[40];
	ev.type = LH_EV_GOAL_SUBMITTED;
	ev.plan_id = plan_id;
	ev.task_no = LH_NO_TASK;
	ev.tenant = "default";
	ev.actor.kind = "cli";
	ev.actor.id = "lh-test";
	ev.body = &g;
	ev.id = lh_event_id_derivef(&plan_id, "goal.submitted", 0, "submit"); /* as ts_submit */
	ts_emit(&ts, &ev);
	T_CHECK(ts_wait_log(&ts, "coordinator", "\"coordinator.duplicate_goal\"", plan, 60000));
	/* and the coordinator goes on: another plan completes after it */
	other = ts_submit(&ts, "Summarize a paper");
	lh_uuid_fmt(&other, other_s);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", other_s,
			    "completed"));
	T_EQ_INT(ts_count_events(&ts, plan, "plan.created"), 1);
	T_EQ_INT(ts_count_events(&ts, plan, "task.dispatched"), dispatched);
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", plan), "completed");
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	ts_spawn_materializer(&ts);
	coord = ts_spawn_coordinator(&ts, "--snapshot-interval", "1", NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	T_RUN(t_plan_completes_and_is_retired);
	T_RUN(t_restart_knows_it_finished);
	T_RUN(t_duplicate_goal_starts_nothing);
	ts_finish(&ts);
	return t_done();
}
