/* 0026-ratelimit: the worker throttles itself from the provider's rate-limit headers instead of
 * running into 429s. Two fakellm instances enforce a real limit per fixed window and announce
 * it the way the APIs do: one OpenAI-style (x-ratelimit-*-requests, resets as durations, 3
 * requests a second), one Anthropic-style (anthropic-ratelimit-*-tokens, resets as RFC 3339
 * times, three or four prompts' worth of tokens a second). No requests or tokens per minute are
 * configured in the workers: only the headers can hold them back. A plan of ten parallel act
 * tasks on each tier must complete with exactly one model request per task and no 429 at all
 * (fakellm refuses anything over its limit with 429), which takes at least three windows. A
 * third fakellm without limits serves the planner and the joiner. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stack.h"
#include "t.h"

#define NTASKS 10

static ts_stack_t ts;
static char url_openai[128], url_anthropic[128];

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	lh_buf_append(ud, p, size * n);
	return size * n;
}

/* fakellm's /stats (url ends in /v1) as JSON, new reference or NULL. */
static json_t *fake_stats(const char *url)
{
	char u[200];
	lh_buf_t b;
	json_t *j = NULL;
	CURL *c = curl_easy_init();
	lh_buf_init(&b);
	snprintf(u, sizeof(u), "%.*s/stats", (int)(strlen(url) - 3), url);
	curl_easy_setopt(c, CURLOPT_URL, u);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK)
		j = json_loadb(b.data, b.len, 0, NULL);
	curl_easy_cleanup(c);
	lh_buf_finish(&b);
	return j;
}

static void run_plan(const char *tier, const char *url, long min_span_ms)
{
	lh_buf_t g;
	char plan[40];
	lh_id_t id;
	json_t *st;
	const char *v;
	lh_buf_init(&g);
	lh_buf_appends(&g, "Stay under the rate limit\nlh-script: {\"tasks\":[");
	for (int i = 1; i <= NTASKS; i++) {
		char t[160];
		snprintf(t, sizeof(t), "%s{\"id\":%d,\"instructions\":\"Note fact %d\",\"tier\":\"%s\"}",
			 i > 1 ? "," : "", i, i, tier);
		lh_buf_appends(&g, t);
	}
	lh_buf_appends(&g, "],\"join\":\"Check\"}\n");
	id = ts_submit(&ts, g.data);
	lh_buf_finish(&g);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s on tier %s\n", plan, tier);
	T_CHECK(ts_wait_sql(&ts, 120000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	/* every act task succeeded on its first attempt, with one model call */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM task_attempts WHERE plan_id = $1 AND task_no BETWEEN 1 "
			 "AND 10 AND attempt = 1 AND status = 'succeeded' AND llm_calls = 1",
			 plan),
		 "10");
	/* the ten calls spanned several windows of one second: the worker waited */
	v = ts_sql1(&ts,
		    "SELECT (extract(epoch FROM max(finished_at) - min(started_at)) * 1000)::bigint "
		    "FROM task_attempts WHERE plan_id = $1 AND task_no BETWEEN 1 AND 10",
		    plan);
	printf("# ten calls took %s ms\n", v ? v : "(null)");
	T_CHECK(v && atol(v) >= min_span_ms);
	st = fake_stats(url);
	T_CHECK(st != NULL);
	if (!st)
		return;
	printf("# fakellm: requests %lld, rate_limited %lld, 429s %lld\n",
	       (long long)json_integer_value(json_object_get(st, "requests")),
	       (long long)json_integer_value(json_object_get(st, "rate_limited")),
	       (long long)json_integer_value(
		       json_object_get(json_object_get(st, "responses"), "429")));
	T_EQ_INT(json_integer_value(json_object_get(st, "requests")), NTASKS);
	T_EQ_INT(json_integer_value(json_object_get(st, "rate_limited")), 0);
	T_CHECK(json_object_get(json_object_get(st, "responses"), "429") == NULL);
	json_decref(st);
}

/* 3 requests a window: 10 calls need 4 windows */
static void t_openai_requests_header(void) { run_plan("fast", url_openai, 2500); }

/* an act call is 300-400 tokens as fakellm counts them (the assembled context holds the
 * goal, which here carries the whole lh-script plan): 1,300 a window is three or four calls,
 * so ten need three windows at least */
static void t_anthropic_tokens_header(void) { run_plan("frontier", url_anthropic, 1500); }

int main(int argc, char **argv)
{
	char url_free[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* the limits: see the two cases */
	if (ts_fakellm_with(&ts, 20, NULL, url_free) ||
	    ts_fakellm_with(&ts, 20, "{\"ratelimit\":{\"requests\":3,\"window_ms\":1000}}",
			    url_openai) ||
	    ts_fakellm_with(&ts, 20, "{\"ratelimit\":{\"tokens\":1300,\"window_ms\":1000}}",
			    url_anthropic)) {
		ts_finish(&ts);
		return 1;
	}
	setenv("ANTHROPIC_API_KEY", "test-key", 1); /* fakellm takes any key */
	setenv("LH_LLM_MAX_RETRIES", "0", 1);	     /* a 429 would fail the attempt */
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker_url(&ts, "standard", url_free, NULL);
	ts_spawn_worker_url(&ts, "fast", url_openai, NULL);
	ts_spawn_worker_url(&ts, "frontier", url_anthropic, "--provider", "anthropic", NULL);
	T_RUN(t_openai_requests_header);
	T_RUN(t_anthropic_tokens_header);
	ts_finish(&ts);
	curl_global_cleanup();
	return t_done();
}
