/* 0009-structured-output: a task with an output schema; the model's first answer does not match
 * it, the worker sends it back with the validator's message, the second answer matches. One
 * attempt, two model calls, the output is the validated JSON. A task whose answers never match
 * fails as invalid_output after the configured corrections. */
#include <stdio.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40];

/* The marker fakellm reacts to is written with a JSON escape, so that only the task's own
 * prompt contains it, not the goal that every prompt carries. */
static const char goal[] =
	"Find a capital\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Name the capital of Portugal "
	"[case\\u003acity]\",\"tier\":\"fast\",\"output_schema\":{\"type\":\"object\",\"required\":"
	"[\"city\"],\"additionalProperties\":false,\"properties\":{\"city\":{\"type\":\"string\"}}}}],"
	"\"join\":\"Check\"}\n";

static const char script[] =
	"{\"rules\":["
	"{\"match\":\"[case:city]\",\"times\":1,\"content\":\"{\\\"town\\\":\\\"Lisbon\\\"}\"},"
	"{\"match\":\"[case:city]\",\"content\":\"{\\\"city\\\":\\\"Lisbon\\\"}\"}]}";

static void t_corrected_within_one_attempt(void)
{
	lh_id_t id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 1",
			 plan),
		 "{\"city\": \"Lisbon\"}");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT attempts || ':' || (SELECT llm_calls FROM task_attempts a WHERE "
			 "a.plan_id = t.plan_id AND a.task_no = 1 AND a.attempt = 1) FROM tasks t "
			 "WHERE plan_id = $1 AND task_no = 1",
			 plan),
		 "1:2");
}

int main(int argc, char **argv)
{
	char url[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm_with(&ts, 10, script, url)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker_url(&ts, "fast", url, NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	T_RUN(t_corrected_within_one_attempt);
	ts_finish(&ts);
	return t_done();
}
