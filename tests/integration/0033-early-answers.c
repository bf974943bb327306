/* 0033-early-answers: an answer over REST to a request the plan has not asked yet is kept, not
 * lost (DESIGN §7). While task 1 waits for a person's answer, task 2's approval gate
 * (task:2:v1, not asked yet) is approved in advance: 202, a retry with the same key 202, a
 * second answer 409, the wrong route 422. When task 1 is answered, task 2 is asked, finds its
 * decision and runs at once; the plan completes with input_requests showing the early human
 * approval. A plan holds at most 32 early answers (422 beyond); an unknown plan is 404 and a
 * finished one 409. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static int port;
static char plan[40];

/* The marker is written with a JSON escape so that only task 1's own prompt contains it. */
static const char goal[] =
	"Publish the menu\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Draft the menu [case\\u003aask]\","
	"\"tier\":\"fast\"},{\"id\":2,\"instructions\":\"Publish ${1}\",\"tier\":\"fast\","
	"\"needs_approval\":true}],\"join\":\"Check\"}\n";

static const char goal2[] =
	"Publish the wine list\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Draft the list [case\\u003aask2]\","
	"\"tier\":\"fast\"}],\"join\":\"Check\"}\n";

static const char script[] =
	"{\"rules\":[{\"match\":\"[case:ask]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
	"\"arguments\":{\"question\":\"Which cuisine?\"}}]},"
	"{\"match\":\"[case:ask2]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
	"\"arguments\":{\"question\":\"Red or white?\"}}]}]}";

static long post(const char *path, const char *body, const char *key)
{
	char idem[160];
	snprintf(idem, sizeof(idem), "%s%s", ts.prefix, key);
	return ts_http_post(port, path, body, idem);
}

static long respond(const char *rid, const char *route, const char *body, const char *key)
{
	char path[400], *esc = curl_easy_escape(NULL, rid, 0);
	snprintf(path, sizeof(path), "/v1/requests/%s/%s/%s", plan, esc, route);
	curl_free(esc);
	return post(path, body, key);
}

static void t_early_decision(void)
{
	lh_id_t id = ts_submit(&ts, goal);
	char rid[128];
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	/* task 1 waits for a person; task 2's gate is not asked yet */
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status || ':' || kind FROM input_requests WHERE plan_id = $1",
			    plan, "pending:question"));
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM input_requests WHERE plan_id = $1", plan),
		 "1");
	T_EQ_INT(respond("task:2:v1", "answer", "{\"answer\":\"yes\"}", "wrong"), 422);
	T_EQ_INT(respond("task:2:v1", "decision", "{\"decision\":\"approve\",\"reason\":\"early\"}",
			 "early-1"),
		 202);
	T_EQ_INT(respond("task:2:v1", "decision", "{\"decision\":\"approve\",\"reason\":\"early\"}",
			 "early-1"),
		 202); /* the retry */
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT count(*) FROM events WHERE plan_id = $1 AND type = "
			    "'approval.decided'",
			    plan, "1"));
	T_EQ_INT(respond("task:2:v1", "decision", "{\"decision\":\"reject\"}", "early-2"), 409);
	/* still not asked: the plan waits for task 1 */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM input_requests WHERE plan_id = $1", plan),
		 "1");
	snprintf(rid, sizeof(rid), "%s:t1:a1", plan);
	T_EQ_INT(respond(rid, "decision", "{\"decision\":\"approve\"}", "q-wrong"), 422);
	T_EQ_INT(respond(rid, "answer", "{\"answer\":\"Portuguese\"}", "q-1"), 202);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status || ':' || responder_type || ':' || responder_id FROM "
			 "input_requests WHERE plan_id = $1 AND request_id = 'task:2:v1'",
			 plan),
		 "approved:human:no-auth");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || ':' || status, ',' ORDER BY task_no) FROM "
			 "tasks WHERE plan_id = $1 AND task_no IN (1, 2)",
			 plan),
		 "1:succeeded,2:succeeded");
	T_EQ_INT(ts_count_events(&ts, plan, "approval.requested"), 1);
	T_EQ_INT(ts_count_events(&ts, plan, "approval.decided"), 1);
	/* finished: nothing more is asked, so nothing more is taken */
	T_EQ_INT(respond("task:9:v1", "decision", "{\"decision\":\"approve\"}", "late"), 409);
}

/* At most 32 early answers per plan; an unknown plan is 404. */
static void t_limits(void)
{
	lh_id_t id = ts_submit(&ts, goal2);
	char rid[128], key[32];
	lh_uuid_fmt(&id, plan);
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status || ':' || kind FROM input_requests WHERE plan_id = $1",
			    plan, "pending:question"));
	for (int i = 0; i < 32; i++) {
		snprintf(rid, sizeof(rid), "%s:t9:a%d", plan, i + 1);
		snprintf(key, sizeof(key), "lim-%d", i);
		T_EQ_INT(respond(rid, "answer", "{\"answer\":\"x\"}", key), 202);
	}
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT count(*) FROM events WHERE plan_id = $1 AND type = "
			    "'input.provided'",
			    plan, "32"));
	snprintf(rid, sizeof(rid), "%s:t9:a99", plan);
	T_EQ_INT(respond(rid, "answer", "{\"answer\":\"x\"}", "lim-over"), 422);
	/* the question that was asked is still answered */
	snprintf(rid, sizeof(rid), "%s:t1:a1", plan);
	/* an answer in someone else's name is refused: the token's name is who answered */
	T_EQ_INT(respond(rid, "answer", "{\"answer\":\"Thai\",\"responder_id\":\"ana\"}", "spoof"),
		 400);
	T_EQ_INT(respond(rid, "answer", "{\"answer\":\"Thai\"}", "lim-q"), 202);
	T_EQ_INT(post("/v1/requests/01a21747-0000-7000-8000-000000000000/task:1:v1/decision",
		      "{\"decision\":\"approve\"}", "nope"),
		 404);
}

int main(int argc, char **argv)
{
	char url[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (ts_fakellm_with(&ts, 5, script, url)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker_url(&ts, "fast", url, NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	ts_spawn(&ts, "gateway", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0",
		 "--no-auth", "--rate-burst", "1000", NULL);
	port = ts_gateway_port(&ts, "gateway");
	T_CHECK(port > 0);
	T_RUN(t_early_decision);
	T_RUN(t_limits);
	ts_finish(&ts);
	curl_global_cleanup();
	return t_done();
}
