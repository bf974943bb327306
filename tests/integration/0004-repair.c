/* 0004-repair: a task dies (its model answers 500 every time) and the plan is repaired: a
 * replan task returns a patch that removes one task and adds two; completed work is reused (task
 * 1 runs once); versions 1, 2 (the replan task) and 3 (the patch) are all kept. */
#include <stdio.h>
#include <stdlib.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40];

/* The plan: 1 -> 2 -> 3. Task 2's instructions carry the marker fakellm fails on; written with
 * a JSON escape so that the goal text itself (sent with every prompt) does not contain it. */
static const char goal[] =
	"Write a short report on message brokers\n"
	"lh-script: {\"thought\":\"three steps\",\"tasks\":["
	"{\"id\":1,\"instructions\":\"Gather facts about brokers\",\"tier\":\"fast\"},"
	"{\"id\":2,\"instructions\":\"Process ${1} lh\\u002dfail\",\"tier\":\"fast\"},"
	"{\"id\":3,\"instructions\":\"Summarize ${2}\",\"tier\":\"fast\"}],\"join\":\"Judge\"}\n";

/* The replanner's patch: drop 3 (2 is dropped for it), add 6 and 7 (5 is the replan task). */
static const char script[] =
	"{\"rules\":["
	"{\"match\":\"Repair the plan\",\"content\":\"{\\\"thought\\\":\\\"go around it\\\","
	"\\\"remove\\\":[3],\\\"tasks\\\":[{\\\"id\\\":6,\\\"instructions\\\":\\\"Process ${1} "
	"another way\\\",\\\"tier\\\":\\\"fast\\\"},{\\\"id\\\":7,\\\"instructions\\\":"
	"\\\"Summarize ${6}\\\",\\\"tier\\\":\\\"fast\\\"}],\\\"join\\\":\\\"Judge\\\"}\"},"
	"{\"match\":\"lh-fail\",\"status\":500}]}";

static void t_plan_is_repaired(void)
{
	lh_id_t id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 120000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
}

static void t_versions_kept(void)
{
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(version::text, ',' ORDER BY version) FROM plan_versions "
			 "WHERE plan_id = $1",
			 plan),
		 "1,2,3");
	T_EQ_INT(ts_count_events(&ts, plan, "task.dead"), 1);
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || '=' || status, ',' ORDER BY task_no) FROM "
			 "tasks WHERE plan_id = $1",
			 plan),
		 "0=succeeded,1=succeeded,2=dead,3=skipped,4=skipped,5=succeeded,6=succeeded,"
		 "7=succeeded,8=succeeded");
	T_EQ_STR(ts_sql1(&ts, "SELECT kind FROM tasks WHERE plan_id = $1 AND task_no = 5", plan),
		 "replan");
}

static void t_completed_work_reused(void)
{
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM events WHERE plan_id = $1 AND type = 'task.dispatched' "
			 "AND task_no = 1",
			 plan),
		 "1");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(kind, ',' ORDER BY kind) FROM plan_decisions WHERE plan_id "
			 "= $1 AND kind IN ('replan', 'plan_revised', 'task_dead')",
			 plan),
		 "plan_revised,replan,task_dead");
}

int main(int argc, char **argv)
{
	char url[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	setenv("LH_LLM_MAX_RETRIES", "0", 1); /* one HTTP try per attempt: the test stays short */
	if (ts_fakellm_with(&ts, 20, script, url)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, "--max-attempts", "2", "--backoff-base-ms", "100",
			     "--backoff-cap-ms", "200", NULL);
	ts_spawn_worker_url(&ts, "fast", url, NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	T_RUN(t_plan_is_repaired);
	T_RUN(t_versions_kept);
	T_RUN(t_completed_work_reused);
	ts_finish(&ts);
	return t_done();
}
