/* 0032-rule-responder: lh-gateway's rule responder (responder.rules) answers through the same
 * path as people (DESIGN §7, the unified responder).
 *
 * One plan with three gated tasks: a cheap one (fast tier, estimated $0.01, no tool) is approved
 * by rule "cheap-tasks" at once; one using a tool on the rule's deny list and one on an
 * expensive tier (frontier, $0.50) are left to a person, who rejects the first and approves the
 * second over REST. The plan completes; input_requests and plan_decisions name the responders
 * (automated_rule cheap-tasks, then human). A model's question about the time zone is answered
 * by rule "faq-tz" and the task resumes. After a kill -9 and restart of the gateway nothing is
 * answered twice. A bad rule stops the gateway at start-up with a message naming it. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static int port, gw_idx;
static char gated_plan[40];

static const char rules[] =
	"[{\"name\":\"cheap-tasks\",\"kind\":\"task\",\"max_cost_usd\":0.05,"
	"\"deny_tools\":[\"http_fetch\"],\"action\":\"approve\",\"reason\":\"cheap, no risky tool\"},"
	"{\"name\":\"faq-tz\",\"kind\":\"question\",\"question_contains\":\"time zone\","
	"\"action\":\"answer\",\"answer\":\"UTC, always\"}]";

static const char gated_goal[] =
	"Publish the notes\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Draft the notes\",\"tier\":\"fast\","
	"\"needs_approval\":true},{\"id\":2,\"instructions\":\"Fetch sources for ${1}\",\"tier\":"
	"\"fast\",\"tool\":\"http_fetch\",\"needs_approval\":true},{\"id\":3,\"instructions\":"
	"\"Polish ${1}\",\"tier\":\"frontier\",\"needs_approval\":true}],\"join\":\"Check\"}\n";

/* The marker is written with a JSON escape so that only task 1's own prompt contains it. */
static const char question_goal[] =
	"Write the report\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Write the report "
	"[case\\u003atz]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n";
static const char question_goal2[] =
	"Write the summary\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Write the summary "
	"[case\\u003atz2]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n";

static const char day_goal[] =
	"Plan the meeting\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Plan the meeting "
	"[case\\u003aday]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n";
static const char hotel_goal[] =
	"Book the trip\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Book the trip "
	"[case\\u003ahotel]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n";

/* The triage agent's model (a fakellm of its own): sure about the day, not about the hotel. The
 * first rule needs the asking task's instructions in the prompt (the gateway adds them once the
 * materializer has folded the task) and a day question: whether the hotel question arrives
 * before or after that fold, it matches only "Which hotel". */
static const char triage_script[] =
	"{\"rules\":[{\"match\":\"The task's instructions:\\nBook the trip [case:hotel]\\n\\n"
	"The agent asks:\\nWhich day\",\"content\":\"Friday\"},"
	"{\"match\":\"Which day should\",\"content\":\"Tuesday at 10:00\\n\"},"
	"{\"match\":\"Which hotel\",\"content\":\"ESCALATE\"}]}";

static const char script[] =
	"{\"rules\":[{\"match\":\"[case:tz]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
	"\"arguments\":{\"question\":\"Which time zone should the report use?\"}}]},"
	"{\"match\":\"[case:tz2]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
	"\"arguments\":{\"question\":\"And the summary's time zone?\"}}]},"
	"{\"match\":\"[case:day]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
	"\"arguments\":{\"question\":\"Which day should the meeting be?\"}}]},"
	"{\"match\":\"[case:hotel]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
	"\"arguments\":{\"question\":\"Which hotel do you prefer?\"}}]}]}";

static long post(const char *path, const char *body, const char *key)
{
	char idem[160];
	snprintf(idem, sizeof(idem), "%s%s", ts.prefix, key);
	return ts_http_post(port, path, body, idem);
}

static const char *request_row(const char *plan, const char *rid)
{
	char sql[400];
	snprintf(sql, sizeof(sql),
		 "SELECT status || ':' || coalesce(responder_type, '-') || ':' || "
		 "coalesce(responder_id, '-') FROM input_requests WHERE plan_id = $1 AND "
		 "request_id = '%s'",
		 rid);
	return ts_sql1(&ts, sql, plan);
}

/* Events of the plan appended by the rule responder (actor automated_rule). */
static int rule_events(const char *plan, const char *type)
{
	char sql[300];
	const char *v;
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events WHERE plan_id = $1 AND type = '%s' AND "
		 "actor_kind = 'automated_rule'",
		 type);
	v = ts_sql1(&ts, sql, plan);
	return v ? atoi(v) : -1;
}

/* The rule answers a cheap gate; the others wait for a person and get one. */
static void t_gates(void)
{
	lh_id_t id = ts_submit(&ts, gated_goal);
	char path[300];
	lh_uuid_fmt(&id, gated_plan);
	printf("# gated plan %s\n", gated_plan);
	/* task 1: approved by the rule, it runs */
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 1",
			    gated_plan, "succeeded"));
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT status || ':' || responder_type || ':' || responder_id FROM "
			    "input_requests WHERE plan_id = $1 AND request_id = 'task:1:v1'",
			    gated_plan, "approved:automated_rule:cheap-tasks"));
	/* task 2 uses a denied tool: the responder saw it and left it to people */
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND "
			    "request_id = 'task:2:v1'",
			    gated_plan, "pending"));
	T_CHECK(ts_wait_log(&ts, "gateway", "gateway.responder_no_rule", "task:2:v1", 30000));
	T_EQ_INT(ts_count_events(&ts, gated_plan, "approval.decided"), 1);
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", gated_plan),
		 "paused");
	snprintf(path, sizeof(path), "/v1/requests/%s/task:2:v1/decision", gated_plan);
	T_EQ_INT(post(path, "{\"decision\":\"reject\",\"reason\":\"no fetching\"}", "reject-2"),
		 202);
	/* task 3 is on an expensive tier: a person again */
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND "
			    "request_id = 'task:3:v1'",
			    gated_plan, "pending"));
	T_CHECK(ts_wait_log(&ts, "gateway", "gateway.responder_no_rule", "task:3:v1", 30000));
	T_EQ_INT(ts_count_events(&ts, gated_plan, "approval.decided"), 2);
	snprintf(path, sizeof(path), "/v1/requests/%s/task:3:v1/decision", gated_plan);
	T_EQ_INT(post(path, "{\"decision\":\"approve\"}", "approve-3"), 202);
	T_CHECK(ts_wait_sql(&ts, 120000, "SELECT status FROM plans WHERE plan_id = $1", gated_plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || ':' || status, ',' ORDER BY task_no) FROM "
			 "tasks WHERE plan_id = $1 AND task_no IN (1, 2, 3)",
			 gated_plan),
		 "1:succeeded,2:cancelled,3:succeeded");
	T_EQ_STR(request_row(gated_plan, "task:1:v1"), "approved:automated_rule:cheap-tasks");
	T_EQ_STR(request_row(gated_plan, "task:2:v1"), "rejected:human:no-auth");
	T_EQ_STR(request_row(gated_plan, "task:3:v1"), "approved:human:no-auth");
	/* the rule's decision is in the decision log, with why */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(actor_id || ':' || kind || ':' || (payload->>'request_id') "
			 "|| ':' || (payload->>'estimated_cost_usd'), ',') FROM plan_decisions "
			 "WHERE plan_id = $1 AND actor_kind = 'automated_rule' AND "
			 "kind = 'responder_rule'",
			 gated_plan),
		 "cheap-tasks:responder_rule:task:1:v1:0.01");
	T_EQ_INT(rule_events(gated_plan, "approval.decided"), 1);
	T_EQ_INT(rule_events(gated_plan, "decision.logged"), 1);
}

/* A model's question the rule knows the answer to: answered, the task resumes. */
static void question(const char *goal)
{
	lh_id_t id = ts_submit(&ts, goal);
	char plan[40];
	lh_uuid_fmt(&id, plan);
	printf("# question plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status || ':' || responder_type || ':' || responder_id || ':' || "
			 "(response->>'answer') FROM input_requests WHERE plan_id = $1",
			 plan),
		 "answered:automated_rule:faq-tz:UTC, always");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(attempt || '=' || status, ',' ORDER BY attempt) FROM "
			 "task_attempts WHERE plan_id = $1 AND task_no = 1",
			 plan),
		 "1=asked,2=succeeded");
	T_EQ_INT(rule_events(plan, "input.provided"), 1);
	T_EQ_INT(rule_events(plan, "decision.logged"), 1);
}

static void t_question(void) { question(question_goal); }

/* A question no rule knows: the triage agent answers it when sure (responder ai_agent), and
 * says ESCALATE otherwise: then a person answers. */
static void t_triage(void)
{
	lh_id_t id = ts_submit(&ts, day_goal), id2;
	char plan[40], plan2[40], rid[128], path[300];
	lh_uuid_fmt(&id, plan);
	printf("# triage plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status || ':' || responder_type || ':' || responder_id || ':' || "
			 "(response->>'answer') FROM input_requests WHERE plan_id = $1",
			 plan),
		 "answered:ai_agent:triage-mini:Tuesday at 10:00");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT actor_kind || ':' || actor_id || ':' || kind FROM plan_decisions "
			 "WHERE plan_id = $1 AND actor_kind = 'ai_agent'",
			 plan),
		 "ai_agent:triage-mini:triage_answer");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(attempt || '=' || status, ',' ORDER BY attempt) FROM "
			 "task_attempts WHERE plan_id = $1 AND task_no = 1",
			 plan),
		 "1=asked,2=succeeded");

	id2 = ts_submit(&ts, hotel_goal);
	lh_uuid_fmt(&id2, plan2);
	printf("# escalated plan %s\n", plan2);
	snprintf(rid, sizeof(rid), "%s:t1:a1", plan2);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM input_requests WHERE plan_id = $1",
			    plan2, "pending"));
	T_CHECK(ts_wait_log(&ts, "gateway", "gateway.triage_escalated", rid, 30000));
	T_EQ_INT(ts_count_events(&ts, plan2, "input.provided"), 0);
	{
		/* the plan and its task are folded now: a question asked now shows the agent the
		 * plan's goal (only that rule of its model answers "Friday") */
		lh_input_requested_t q = {0};
		lh_event_t ev = {0};
		char rid7[128];
		snprintf(rid7, sizeof(rid7), "%s:t1:a7", plan2);
		q.request_id = rid7;
		q.question = "Which day should we leave?";
		ev.type = LH_EV_INPUT_REQUESTED;
		ev.plan_id = id2;
		ev.task_no = 1;
		ev.attempt = 7;
		ev.tenant = "default";
		ev.actor.kind = "worker";
		ev.actor.id = "t0032";
		ev.body = &q;
		ts_emit(&ts, &ev);
		T_CHECK(ts_wait_sql(&ts, 30000,
				    "SELECT status || ':' || responder_type || ':' || "
				    "(response->>'answer') FROM input_requests WHERE plan_id = $1 "
				    "AND request_id LIKE '%:t1:a7'",
				    plan2, "answered:ai_agent:Friday"));
	}
	snprintf(path, sizeof(path), "/v1/requests/%s/%s/answer", plan2, rid);
	T_EQ_INT(post(path, "{\"answer\":\"The one by the river\"}", "hotel"), 202);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan2,
			    "completed"));
	T_EQ_STR(request_row(plan2, rid), "answered:human:no-auth");
}

/* kill -9 and start again: the responder goes on (a new question is answered) and nothing of
 * the first plan is answered twice. */
static void t_restart(void)
{
	ts_kill(&ts, gw_idx, SIGKILL);
	ts_restart(&ts, gw_idx);
	question(question_goal2); /* only the restarted responder can answer it */
	T_EQ_INT(rule_events(gated_plan, "approval.decided"), 1);
	T_EQ_INT(rule_events(gated_plan, "decision.logged"), 1);
	T_EQ_INT(ts_count_events(&ts, gated_plan, "approval.decided"), 3);
}

/* A bad rule: the gateway refuses to start and says which rule and why. */
static void t_bad_rule(void)
{
	int i = ts_spawn(&ts, "gateway-bad", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port",
			 "0", "--no-auth", "--responder-rules",
			 "[{\"name\":\"oops\",\"kind\":\"task\",\"action\":\"answer\","
			 "\"answer\":\"x\"}]",
			 NULL);
	T_EQ_INT(ts_wait_exit(&ts, i, 20000), 2);
	T_CHECK(ts_wait_log(&ts, "gateway-bad", "responder.rules[0] (\"oops\")",
			    "its kind must be \"question\" alone", 5000));
}

int main(int argc, char **argv)
{
	char url[128], triage_url[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (ts_fakellm_with(&ts, 5, script, url) ||
	    ts_fakellm_with(&ts, 5, triage_script, triage_url)) {
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker_url(&ts, "fast", url, NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	ts_spawn_worker_url(&ts, "frontier", url, NULL);
	gw_idx = ts_spawn(&ts, "gateway", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port",
			  "0", "--no-auth", "--responder-rules", rules, "--responder-task-cost-usd",
			  "fast=0.01,frontier=0.5", "--responder-triage-url", triage_url,
			  "--responder-triage-model", "triage-mini", NULL);
	port = ts_gateway_port(&ts, "gateway");
	T_CHECK(port > 0);
	T_RUN(t_gates);
	T_RUN(t_question);
	T_RUN(t_triage);
	T_RUN(t_restart);
	T_RUN(t_bad_rule);
	ts_finish(&ts);
	curl_global_cleanup();
	return t_done();
}
