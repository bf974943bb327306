/* 0016-question-answer: a model asks a person (the ask_human tool); the question appears as a
 * pending request; an answer through the gateway (POST .../answer) resumes the task as a new
 * attempt whose prompt holds the conversation, and the plan completes. A second answer gets 409. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40];
static int port;
static long status;

/* The marker is written with a JSON escape so that only task 1's own prompt contains it. */
static const char goal[] =
	"Book a table\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Book a table for tonight "
	"[case\\u003aask]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n";

static const char script[] =
	"{\"rules\":[{\"match\":\"[case:ask]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
	"\"arguments\":{\"question\":\"Which restaurant?\"}}]}]}";

static long post(const char *path, const char *body, const char *key)
{
	return status = ts_http_post(port, path, body, key);
}

static int gateway_port(void) { return ts_gateway_port(&ts, "gateway"); }

static void t_question_is_pending(void)
{
	lh_id_t id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status || ':' || kind FROM input_requests WHERE plan_id = $1",
			    plan, "pending:question"));
	T_EQ_STR(ts_sql1(&ts, "SELECT question FROM input_requests WHERE plan_id = $1", plan),
		 "Which restaurant?");
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 1", plan),
		 "waiting_for_input");
}

static void t_answer_resumes(void)
{
	char path[300], rid[160], key1[64], key2[64];
	const char *v = ts_sql1(&ts, "SELECT request_id FROM input_requests WHERE plan_id = $1", plan);
	char *esc;
	snprintf(rid, sizeof(rid), "%s", v ? v : "");
	esc = curl_easy_escape(NULL, rid, 0);
	snprintf(path, sizeof(path), "/v1/requests/%s/%s/answer", plan, esc);
	curl_free(esc);
	/* idempotency keys are claimed per tenant for good: make them this run's own */
	snprintf(key1, sizeof(key1), "%sanswer-1", ts.prefix);
	snprintf(key2, sizeof(key2), "%sanswer-2", ts.prefix);
	T_EQ_INT(post(path, "{\"answer\":\"Casa Guedes\"}", key1), 202);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(attempt || '=' || status, ',' ORDER BY attempt) FROM "
			 "task_attempts WHERE plan_id = $1 AND task_no = 1",
			 plan),
		 "1=asked,2=succeeded");
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM input_requests WHERE plan_id = $1", plan),
		 "answered");
	T_EQ_INT(post(path, "{\"answer\":\"somewhere else\"}", key2), 409);
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
	ts_spawn(&ts, "gateway", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0",
		 "--no-auth", NULL);
	port = gateway_port();
	T_CHECK(port > 0);
	T_RUN(t_question_is_pending);
	T_RUN(t_answer_resumes);
	ts_finish(&ts);
	return t_done();
}
