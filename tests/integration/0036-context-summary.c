/* 0036-context-summary: the plan's anchored rolling summary reaches the model (the context's
 * summary layer), through the whole stack and the real PostgreSQL.
 *
 * Two versions of a plan's summary are stored (common/summary_store) before the plan is
 * submitted; the worker loads the latest on its memory tools' thread before the first call.
 * fakellm answers task 1 with a marker only when its system text holds the summary's artifact
 * (match_system), and GET /last-chat shows the request verbatim: the latest version's
 * play-by-play and artifact trail are there, the older version's text is not. A plan without a
 * summary gets no summary section.
 *
 * Key decisions (the core layer): task 1 of a plan waits at an approval gate; the approval's
 * responder and reason reach task 1's own call (task.order "decisions", match_system). */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bus.h"
#include "pg.h"
#include "stack.h"
#include "summary.h"
#include "summary_store.h"
#include "t.h"

static ts_stack_t ts;
static lh_pg_t *pg;
static char llm_url[128];

#define ARTIFACT "/srv/kestrel/report-7f3a.csv"
#define SCRIPT                                                                                     \
	"\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Go on [case\\u003asum]\",\"tier\":" \
	"\"fast\"}],\"join\":\"Check\"}\n"

/* goal.submitted with a chosen plan id (its summary is stored first) */
static void submit_as(const lh_id_t *id, const char *goal)
{
	lh_goal_submitted_t g = {.goal = goal};
	lh_event_t ev = {0};
	lh_error_t err = {0};
	lh_buf_t b;
	char topic[LH_TOPIC_MAX];
	ev.v = LH_ENVELOPE_VERSION;
	ev.type = LH_EV_GOAL_SUBMITTED;
	ev.plan_id = *id;
	ev.task_no = LH_NO_TASK;
	ev.ts_us = lh_now_us();
	ev.tenant = "default";
	ev.actor.kind = "cli";
	ev.actor.id = "lh-test";
	ev.body = &g;
	ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "submit");
	lh_buf_init(&b);
	lh_topic(ts.prefix, "events", topic, NULL);
	if (lh_bus_emit(ts.producer, topic, &ev, false, &b, NULL, &err) ||
	    lh_kafka_flush(ts.producer, 10000, &err))
		printf("FAIL: submit: %s\n", err.msg);
	lh_buf_finish(&b);
}

static size_t collect(char *p, size_t sz, size_t n, void *u)
{
	lh_buf_append(u, p, sz * n);
	return sz * n;
}

/* GET /last-chat: the last chat request's body (new), or NULL */
static char *last_chat(void)
{
	char url[200];
	lh_buf_t b;
	long code = 0;
	char *out = NULL;
	CURL *c = curl_easy_init();
	size_t n = strlen(llm_url);
	if (n >= 3 && !strcmp(llm_url + n - 3, "/v1"))
		n -= 3; /* the worker's base URL: fakellm's own paths are at the root */
	snprintf(url, sizeof(url), "%.*s/last-chat", (int)n, llm_url);
	lh_buf_init(&b);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (code == 200 && b.len)
		out = strndup(b.data, b.len);
	lh_buf_finish(&b);
	return out;
}

/* The system message of the last chat request (new), or NULL */
static char *last_system(void)
{
	char *body = last_chat(), *out = NULL;
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *s;
	if (!j)
		printf("# /last-chat: %.300s\n", body ? body : "(no answer)");
	s = json_string_value(
		json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content"));
	if (s)
		out = strdup(s);
	json_decref(j);
	free(body);
	return out;
}

static void t_summary_in_request(void)
{
	lh_id_t id = lh_uuid7_new();
	char plan[LH_UUID_STR_LEN + 1];
	lh_summary_t s;
	lh_error_t err = {0};
	int v = 0;
	char *sys;
	const char *out;
	lh_uuid_fmt(&id, plan);
	lh_summary_init(&s, 1, "Ship the Kestrel report");
	free(s.play_by_play);
	s.play_by_play = strdup("PBP-OLD: nothing yet");
	T_EQ_INT(lh_summary_store(pg, plan, "", &s, 0, NULL, &v, &err), LH_OK);
	T_EQ_INT(v, 1);
	lh_summary_finish(&s);
	T_EQ_INT(lh_summary_load(pg, plan, "", &s, &v, &err), LH_OK);
	s.anchor = 40;
	free(s.play_by_play);
	s.play_by_play = strdup("PBP-NEW: loaded the data, drafted the report");
	T_CHECK(lh_summary_add_artifact(&s, ARTIFACT) >= 0);
	T_EQ_INT(lh_summary_store(pg, plan, "", &s, 1, NULL, &v, &err), LH_OK);
	T_EQ_INT(v, 2);
	lh_summary_finish(&s);

	submit_as(&id, "Finish the Kestrel report" SCRIPT);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	/* task 1's call had the artifact trail in its system text (fakellm's match_system) */
	out = ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 1", plan);
	printf("# task 1: %.200s\n", out ? out : "(null)");
	T_CHECK(out && strstr(out, "the context held the summary") != NULL);
	/* the join's call, verbatim: the latest version only */
	sys = last_system();
	printf("# last system text: %.600s\n", sys ? sys : "(none)");
	T_CHECK(sys && strstr(sys, "# Summary of the work so far") != NULL);
	T_CHECK(sys && strstr(sys, "PBP-NEW: loaded the data") != NULL);
	T_CHECK(sys && strstr(sys, ARTIFACT) != NULL);
	T_CHECK(sys && strstr(sys, "PBP-OLD") == NULL);
	free(sys);
}

static void t_no_summary_no_section(void)
{
	lh_id_t id = lh_uuid7_new();
	char plan[LH_UUID_STR_LEN + 1], *sys;
	const char *out;
	lh_uuid_fmt(&id, plan);
	submit_as(&id, "Another report" SCRIPT);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	out = ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 1", plan);
	T_CHECK(out && strstr(out, "the context held the summary") == NULL);
	sys = last_system();
	T_CHECK(sys != NULL);
	T_CHECK(sys && strstr(sys, "# Summary of the work so far") == NULL);
	T_CHECK(sys && strstr(sys, ARTIFACT) == NULL);
	free(sys);
}

static void t_decision_in_request(void)
{
	char plan[LH_UUID_STR_LEN + 1];
	const char *out;
	lh_approval_decided_t d = {.request_id = "task:1:v1", .decision = "approve",
				   .responder_type = "human", .responder_id = "ana",
				   .reason = "DEC-7 ship it"};
	lh_event_t ev = {.type = LH_EV_APPROVAL_DECIDED, .task_no = LH_NO_TASK, .tenant = "default",
			 .body = &d};
	lh_id_t id = ts_submit(&ts, "Gated report\nlh-script: {\"tasks\":[{\"id\":1,"
				    "\"instructions\":\"Go [case\\u003adec]\",\"tier\":\"fast\","
				    "\"needs_approval\":true}],\"join\":\"Check\"}\n");
	lh_uuid_fmt(&id, plan);
	ev.plan_id = id;
	ts_emit(&ts, &ev); /* before or after the request: kept for it */
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	out = ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 1", plan);
	printf("# task 1: %.200s\n", out ? out : "(null)");
	T_CHECK(out && strstr(out, "the context held the decision") != NULL);
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (lh_pg_connect(ts.pg_url, &pg, &err) != LH_OK || lh_pg_migrate(pg, NULL, &err) != LH_OK) {
		printf("FAIL: %s\n", err.msg);
		lh_pg_free(pg);
		ts_finish(&ts);
		return 1;
	}
	if (ts_fakellm_with(&ts, 5,
			    "{\"rules\":[{\"match\":\"[case:sum]\",\"match_system\":\"" ARTIFACT
			    "\",\"content\":\"the context held the summary\"},"
			    "{\"match\":\"[case:dec]\",\"match_system\":\"approved by human ana: "
			    "DEC-7 ship it\",\"content\":\"the context held the decision\"}]}",
			    llm_url)) {
		lh_pg_free(pg);
		ts_finish(&ts);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker_url(&ts, "fast", llm_url, NULL);
	ts_spawn_worker_url(&ts, "standard", llm_url, NULL);
	T_RUN(t_summary_in_request);
	T_RUN(t_no_summary_no_section);
	T_RUN(t_decision_in_request);
	ts_finish(&ts);
	lh_pg_free(pg);
	curl_global_cleanup();
	return t_done();
}
