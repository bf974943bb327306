/* 0006-budget: a plan crosses 80% and then 100% of its token budget; it pauses and asks; an
 * approval (from a person, through the log) extends the budget, and the plan completes. */
#include <stdio.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40];
static lh_id_t id;

static void t_pauses_at_the_limit(void)
{
	lh_budget_t b = {.tokens = 700}; /* the scripted diamond needs about 1,300 */
	id = ts_submit_with(&ts, "Plan a weekend in Porto", &b, NULL);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'budget_extension'",
			    plan, "pending"));
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", plan), "paused");
	T_EQ_INT(ts_count_events(&ts, plan, "budget.warning"), 1);
	T_EQ_INT(ts_count_events(&ts, plan, "budget.exceeded"), 1);
}

static void t_approval_extends_and_completes(void)
{
	char rid[128];
	const char *v = ts_sql1(&ts, "SELECT request_id FROM input_requests WHERE plan_id = $1",
				plan);
	lh_approval_decided_t d = {.decision = "approve", .responder_type = "human",
				   .responder_id = "ana@example.org", .has_budget = true};
	lh_event_t ev = {.type = LH_EV_APPROVAL_DECIDED, .task_no = LH_NO_TASK, .body = &d,
			 .actor = {.kind = "human", .id = "ana@example.org"}};
	snprintf(rid, sizeof(rid), "%s", v ? v : "");
	d.request_id = rid;
	d.budget.tokens = 100000;
	ev.plan_id = id;
	ts_emit(&ts, &ev);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_INT(ts_count_events(&ts, plan, "plan.paused"), 1);
	T_EQ_INT(ts_count_events(&ts, plan, "plan.resumed"), 1);
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status || ':' || responder_type || ':' || responder_id FROM "
			 "input_requests WHERE plan_id = $1",
			 plan),
		 "approved:human:ana@example.org");
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	T_RUN(t_pauses_at_the_limit);
	T_RUN(t_approval_extends_and_completes);
	ts_finish(&ts);
	return t_done();
}
