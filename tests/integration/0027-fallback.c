/* 0027-fallback: a tier of two models at two endpoints (llm.models), each with its own circuit
 * breaker. The first endpoint is down (fakellm answers 503 to everything); every act task still
 * succeeds on its first attempt, answered by the second model, which the attempt records. Once
 * the first endpoint's breaker is open (2 failures), later attempts skip it without an HTTP
 * request: a second plan sends it nothing, while its cool-down (60 s) lasts. The second
 * endpoint wants an API key, which the worker reads from a file (llm.models api_key_file) and
 * never writes to its log. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stack.h"
#include "t.h"

#define NTASKS 4

static ts_stack_t ts;
static char url_down[128], url_up[128];

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	lh_buf_append(ud, p, size * n);
	return size * n;
}

/* fakellm's model request count (url ends in /v1), or -1. */
static long fake_requests(const char *url)
{
	char u[200];
	lh_buf_t b;
	long n = -1;
	json_t *j;
	CURL *c = curl_easy_init();
	lh_buf_init(&b);
	snprintf(u, sizeof(u), "%.*s/stats", (int)(strlen(url) - 3), url);
	curl_easy_setopt(c, CURLOPT_URL, u);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK && (j = json_loadb(b.data, b.len, 0, NULL))) {
		n = (long)json_integer_value(json_object_get(j, "requests"));
		json_decref(j);
	}
	curl_easy_cleanup(c);
	lh_buf_finish(&b);
	return n;
}

static void run_plan(const char *name)
{
	lh_buf_t g;
	char plan[40];
	lh_id_t id;
	lh_buf_init(&g);
	lh_buf_appends(&g, "Survive a dead provider\nlh-script: {\"tasks\":[");
	for (int i = 1; i <= NTASKS; i++) {
		char t[160];
		snprintf(t, sizeof(t), "%s{\"id\":%d,\"instructions\":\"%s part %d\",\"tier\":\"fast\"}",
			 i > 1 ? "," : "", i, name, i);
		lh_buf_appends(&g, t);
	}
	lh_buf_appends(&g, "],\"join\":\"Check\"}\n");
	id = ts_submit(&ts, g.data);
	lh_buf_finish(&g);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	/* first attempts, every one answered by the second model */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM task_attempts WHERE plan_id = $1 AND task_no BETWEEN 1 "
			 "AND 4 AND attempt = 1 AND status = 'succeeded' AND model = 'model-up'",
			 plan),
		 "4");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM task_attempts WHERE plan_id = $1 AND task_no BETWEEN 1 "
			 "AND 4 AND attempt > 1",
			 plan),
		 "0");
}

static void t_fails_over_then_skips_open_breaker(void)
{
	long down1, down2, up1, up2;
	run_plan("First");
	down1 = fake_requests(url_down);
	up1 = fake_requests(url_up);
	printf("# after plan 1: down endpoint %ld requests, up endpoint %ld\n", down1, up1);
	/* the down endpoint was tried (at least up to its breaker's threshold) */
	T_CHECK(down1 >= 2 && down1 <= NTASKS);
	T_EQ_INT(up1, NTASKS);
	run_plan("Second");
	down2 = fake_requests(url_down);
	up2 = fake_requests(url_up);
	printf("# after plan 2: down endpoint %ld requests, up endpoint %ld\n", down2, up2);
	T_EQ_INT(down2, down1); /* its breaker is open: not even tried */
	T_EQ_INT(up2, 2 * NTASKS);
	/* the key from the file was sent (fakellm answers 401 without it) and never logged */
	T_CHECK(!ts_wait_log(&ts, "worker-fast", "sk-file-0027", NULL, 0));
}

int main(int argc, char **argv)
{
	char url_free[128], models[768], keyfile[600];
	FILE *kf;
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (ts_fakellm_with(&ts, 5, NULL, url_free) ||
	    ts_fakellm_with(&ts, 5, "{\"rules\":[{\"status\":503}]}", url_down) ||
	    ts_fakellm_with(&ts, 5, "{\"api_key\":\"sk-file-0027-secret\"}", url_up)) {
		ts_finish(&ts);
		return 1;
	}
	snprintf(keyfile, sizeof(keyfile), "%s/model-up.key", ts.log_dir);
	kf = fopen(keyfile, "w");
	if (kf) {
		fputs("  sk-file-0027-secret\n", kf);
		fclose(kf);
	}
	snprintf(models, sizeof(models),
		 "[{\"model\":\"model-down\",\"base_url\":\"%s\",\"price_input\":1},"
		 "{\"model\":\"model-up\",\"base_url\":\"%s\",\"provider\":\"openai\","
		 "\"api_key_file\":\"%s\"}]",
		 url_down, url_up, keyfile);
	setenv("LH_LLM_MAX_RETRIES", "0", 1);
	setenv("LH_BREAKER_THRESHOLD", "2", 1);
	setenv("LH_BREAKER_COOLDOWN_MS", "60000", 1);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker_url(&ts, "standard", url_free, NULL);
	ts_spawn_worker_url(&ts, "fast", url_free, "--llm-models", models, NULL);
	T_RUN(t_fails_over_then_skips_open_breaker);
	ts_finish(&ts);
	curl_global_cleanup();
	return t_done();
}
