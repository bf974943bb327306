/* 0007-escalation: the models of the fast and standard tiers refuse; the task climbs the chain
 * fast -> standard -> frontier and succeeds there, each step a logged decision. */
#include <stdio.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40];

static const char goal[] =
	"Translate the release notes\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Translate the notes into French\","
	"\"tier\":\"fast\"}],\"join\":\"Check the translation\"}\n";

static void t_climbs_to_frontier(void)
{
	lh_id_t id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_INT(ts_count_events(&ts, plan, "task.escalated"), 2);
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(body->>'from_tier' || '>' || (body->>'to_tier'), ',' "
			 "ORDER BY \"offset\") FROM events WHERE plan_id = $1 AND type = "
			 "'task.escalated'",
			 plan),
		 "fast>standard,standard>frontier");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM plan_decisions WHERE plan_id = $1 AND kind = "
			 "'escalation'",
			 plan),
		 "2");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT tier || ':' || status || ':' || attempts FROM tasks WHERE plan_id = "
			 "$1 AND task_no = 1",
			 plan),
		 "frontier:succeeded:3");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(error_class, ',' ORDER BY attempt) FROM task_attempts "
			 "WHERE plan_id = $1 AND task_no = 1 AND status = 'failed'",
			 plan),
		 "refused,refused");
}

int main(int argc, char **argv)
{
	char refusing[128], good[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm_with(&ts, 10, "{\"rules\":[{\"refusal\":\"I cannot help with that\"}]}",
			    refusing) ||
	    ts_fakellm_with(&ts, 10, NULL, good)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	/* plan and join on frontier; one attempt per tier */
	ts_spawn_coordinator(&ts, "--default-tier", "frontier", "--max-attempts", "1", NULL);
	ts_spawn_worker_url(&ts, "fast", refusing, NULL);
	ts_spawn_worker_url(&ts, "standard", refusing, NULL);
	ts_spawn_worker_url(&ts, "frontier", good, NULL);
	T_RUN(t_climbs_to_frontier);
	ts_finish(&ts);
	return t_done();
}
