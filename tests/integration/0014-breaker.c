/* 0014-breaker: the worker's circuit breaker through fakellm. The provider answers 503 twice
 * (provider_down); with a threshold of 2 the breaker opens and the coordinator's next attempts
 * fail fast, without a model call, as provider_down. After the cool-down one trial call goes
 * through, succeeds, the breaker closes and the task succeeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;

static const char goal[] =
	"Survive an outage\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Say hello "
	"[case\\u003adown]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n";

static const char script[] = "{\"rules\":[{\"match\":\"[case:down]\",\"times\":2,\"status\":503}]}";

static void t_opens_fails_fast_and_closes(void)
{
	char plan[40];
	lh_id_t id = ts_submit(&ts, goal);
	const char *v;
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	v = ts_sql1(&ts,
		    "SELECT string_agg(attempt || ':' || status || ':' || coalesce(error_class, '-') "
		    "|| ':' || llm_calls, ' ' ORDER BY attempt) FROM task_attempts WHERE plan_id = $1 "
		    "AND task_no = 1",
		    plan);
	printf("# attempts: %s\n", v ? v : "(null)");
	/* two real failures, each one HTTP exchange with the provider */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM task_attempts WHERE plan_id = $1 AND task_no = 1 AND "
			 "error_class = 'provider_down' AND error_message NOT LIKE '%circuit breaker%'",
			 plan),
		 "2");
	/* then at least one fast failure without a model call */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) > 0 FROM task_attempts WHERE plan_id = $1 AND task_no = 1 "
			 "AND error_class = 'provider_down' AND error_message LIKE '%circuit breaker is "
			 "open%' AND llm_calls = 0 AND attempt = 3",
			 plan),
		 "t");
	/* and the trial call after the cool-down succeeded */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status FROM task_attempts WHERE plan_id = $1 AND task_no = 1 ORDER BY "
			 "attempt DESC LIMIT 1",
			 plan),
		 "succeeded");
}

int main(int argc, char **argv)
{
	char url[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm_with(&ts, 5, script, url)) {
		ts_finish(&ts);
		return 1;
	}
	/* inherited by the children; only the worker reads them */
	setenv("LH_BREAKER_THRESHOLD", "2", 1);
	setenv("LH_BREAKER_COOLDOWN_MS", "1500", 1);
	setenv("LH_LLM_MAX_RETRIES", "0", 1);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, "--max-attempts", "12", "--backoff-base-ms", "150",
			     "--backoff-cap-ms", "600", NULL);
	ts_spawn_worker_url(&ts, "fast", url, NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	T_RUN(t_opens_fails_fast_and_closes);
	ts_finish(&ts);
	return t_done();
}
