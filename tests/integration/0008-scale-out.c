/* 0008-scale-out: two coordinators share the partitions of lh.events; 50 plans run; one
 * coordinator is killed with SIGKILL; the other takes over its plans (from snapshots and the
 * log) and every plan completes, none twice. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "t.h"

#define PLANS 50

static ts_stack_t ts;
static int c1;
static char ids[PLANS][40], list[PLANS * 40 + 8];

static void t_kill_one_coordinator(void)
{
	int64_t t0;
	for (int i = 0; i < PLANS; i++) {
		lh_id_t id = ts_submit(&ts, i % 2 ? "Research a topic in depth" : "Write a plan");
		lh_uuid_fmt(&id, ids[i]);
	}
	snprintf(list, sizeof(list), "{");
	for (int i = 0; i < PLANS; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "," : "",
			 ids[i]);
	strcat(list, "}");
	/* both coordinators work (each has dispatched), and plans are running */
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT count(DISTINCT actor_id) FROM events WHERE plan_id = "
			    "ANY($1::uuid[]) AND type = 'task.dispatched'",
			    list, "2"));
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT (count(*) >= 10)::text FROM plans WHERE plan_id = ANY($1::uuid[]) "
			    "AND status = 'running'",
			    list, "true"));
	ts_kill(&ts, c1, SIGKILL);
	t0 = lh_mono_us();
	T_CHECK(ts_wait_sql(&ts, 180000,
			    "SELECT count(*) FROM plans WHERE plan_id = ANY($1::uuid[]) AND status = "
			    "'completed'",
			    list, "50"));
	printf("# all plans completed %.1f s after the kill\n", (double)(lh_mono_us() - t0) / 1e6);
}

static void t_none_twice(void)
{
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM events WHERE plan_id = ANY($1::uuid[]) AND type = "
			 "'plan.completed'",
			 list),
		 "50");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM (SELECT plan_id, task_no FROM task_attempts WHERE "
			 "plan_id = ANY($1::uuid[]) AND status = 'succeeded' GROUP BY 1, 2 HAVING "
			 "count(*) > 1) x",
			 list),
		 "0");
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
	c1 = ts_spawn_coordinator(&ts, "--snapshot-interval", "1", NULL);
	ts_spawn_coordinator(&ts, "--snapshot-interval", "1", NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	T_RUN(t_kill_one_coordinator);
	T_RUN(t_none_twice);
	ts_finish(&ts);
	return t_done();
}
