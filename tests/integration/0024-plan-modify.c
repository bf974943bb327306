/* 0024-plan-modify: people modify a running plan (add, remove, reorder, edit tasks), over HTTP
 * (POST /v1/plans/{id}/modify) and with lhctl plan modify, and the coordinator carries it out.
 * Each plan pauses at its task budget with tasks 3 and 4 not started; the patch replaces 3,
 * removes 4, adds 6 after 2 and 3; after the budget is extended the plan completes as patched:
 * 3 and 6 ran, 4 and the old join (5) were skipped, the new join (7) read 6's output. A stale
 * patch is refused (409 / exit 1), a bad one explained (400 / exit 2). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static int port;
static char body[16384];
static long status;

static size_t keep(char *p, size_t size, size_t n, void *arg)
{
	size_t have = strlen(body), room = sizeof(body) - 1 - have;
	memcpy(body + have, p, size * n < room ? size * n : room);
	body[have + (size * n < room ? size * n : room)] = 0;
	return size * n;
}

static long post(const char *path, const char *key, const char *json)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], idem[200];
	body[0] = 0;
	status = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	snprintf(idem, sizeof(idem), "Idempotency-Key: %s%s", ts.prefix, key);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, idem);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	printf("# POST %s -> %ld %.300s", path, status, body);
	return status;
}

static int lhctl(const char *args)
{
	char cmd[2048];
	FILE *p;
	size_t n;
	int st;
	snprintf(cmd, sizeof(cmd),
		 "LH_KAFKA_BROKERS='%s' LH_PG_URL='%s' LH_TOPIC_PREFIX='%s' %s/cli/lhctl %s 2>&1",
		 ts.brokers, ts.pg_url, ts.prefix, ts.build_root, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(body, 1, sizeof(body) - 1, p);
	body[n] = 0;
	st = pclose(p);
	printf("# lhctl %s -> %d: %s", args, WIFEXITED(st) ? WEXITSTATUS(st) : -1, body);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char patch_v1[] =
	"{\"base_version\":1,\"reason\":\"0024\",\"remove\":[4],\"tasks\":["
	"{\"task_no\":3,\"instructions\":\"Analyse ${1} for opportunities, briefly\",\"refs\":[1]},"
	"{\"task_no\":6,\"tier\":\"fast\",\"instructions\":\"Compare ${2} with ${3}\","
	"\"refs\":[2,3]}]}";

/* A plan paused at its task budget, tasks 3 and 4 not started. */
static void paused_plan(char plan[40], const char *goal)
{
	lh_budget_t b = {.tasks = 2};
	lh_id_t id = ts_submit_with(&ts, goal, &b, NULL);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'budget_extension'",
			    plan, "pending"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || ':' || status, ',' ORDER BY task_no) FROM "
			 "tasks WHERE plan_id = $1 AND task_no IN (3, 4, 5)",
			 plan),
		 "3:pending,4:pending,5:pending");
	T_EQ_STR(ts_sql1(&ts, "SELECT version FROM plans WHERE plan_id = $1", plan), "1");
}

/* The plan finished as patched. */
static void finished_as_patched(const char *plan)
{
	T_CHECK(ts_wait_sql(&ts, 120000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || ':' || kind || ':' || status, ',' ORDER BY "
			 "task_no) FROM tasks WHERE plan_id = $1",
			 plan),
		 "0:plan:succeeded,1:act:succeeded,2:act:succeeded,3:act:succeeded,"
		 "4:act:skipped,5:join:skipped,6:act:succeeded,7:join:succeeded");
	T_EQ_STR(ts_sql1(&ts, "SELECT version FROM plans WHERE plan_id = $1", plan), "2");
	/* the replaced instructions ran, and the new join read task 6 */
	T_EQ_STR(ts_sql1(&ts, "SELECT instructions FROM tasks WHERE plan_id = $1 AND task_no = 3",
			 plan),
		 "Analyse ${1} for opportunities, briefly");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(depends_on::text, ',' ORDER BY depends_on) FROM "
			 "task_dependencies WHERE plan_id = $1 AND task_no = 7",
			 plan),
		 "1,2,3,6");
	T_EQ_STR(ts_sql1(&ts, "SELECT (output::text LIKE '%Compare%')::text FROM plans WHERE "
			      "plan_id = $1",
			 plan),
		 "true");
}

static void t_http(void)
{
	char plan[40], path[200], rid[160];
	const char *v;
	paused_plan(plan, "Plan a weekend in Porto");
	snprintf(path, sizeof(path), "/v1/plans/%s/modify", plan);
	/* refused: stale, a started task, a cycle, unknown keys, another route's key */
	T_EQ_INT(post(path, "m-stale", "{\"base_version\":7,\"remove\":[4]}"), 409);
	T_CHECK(strstr(body, "version_conflict") != NULL);
	T_EQ_INT(post(path, "m-started", "{\"base_version\":1,\"tasks\":[{\"task_no\":2,"
					 "\"instructions\":\"x\"}]}"),
		 409);
	T_CHECK(strstr(body, "task_started") != NULL);
	T_EQ_INT(post(path, "m-cycle", "{\"base_version\":1,\"tasks\":[{\"task_no\":3,"
				       "\"instructions\":\"x\",\"after\":[4]}]}"),
		 400);
	T_CHECK(strstr(body, "cycle") != NULL);
	T_EQ_INT(post(path, "m-bad", "{\"base_version\":1,\"remove\":[4],\"colour\":1}"), 400);
	/* taken; the retry answers the same, appends nothing */
	T_EQ_INT(post(path, "m-1", patch_v1), 202);
	T_CHECK(strstr(body, "\"version\":2") && strstr(body, "\"join\":7"));
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT version FROM plans WHERE plan_id = $1", plan, "2"));
	T_EQ_INT(post(path, "m-1", patch_v1), 202);
	T_EQ_INT(post(path, "m-1", "{\"base_version\":1,\"remove\":[3]}"), 422);
	T_EQ_INT(post(path, "m-2", patch_v1), 409); /* stale now */
	T_EQ_INT(ts_count_events(&ts, plan, "plan.revised"), 1);
	/* nothing runs before the budget is extended; then the patched plan finishes */
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 6", plan),
		 "pending");
	v = ts_sql1(&ts, "SELECT request_id FROM input_requests WHERE plan_id = $1 AND status = "
			 "'pending'",
		    plan);
	snprintf(rid, sizeof(rid), "%s", v ? v : "");
	{
		char *e = curl_easy_escape(NULL, rid, 0);
		snprintf(path, sizeof(path), "/v1/requests/%s/%s/decision", plan, e);
		curl_free(e);
	}
	T_EQ_INT(post(path, "d-1", "{\"decision\":\"approve\",\"budget\":{\"tasks\":100}}"), 202);
	finished_as_patched(plan);
	snprintf(path, sizeof(path), "/v1/plans/%s/modify", plan);
	T_EQ_INT(post(path, "m-3", "{\"base_version\":2,\"remove\":[6]}"), 409);
	T_CHECK(strstr(body, "plan_finished") != NULL);
}

static void t_lhctl(void)
{
	char plan[40], args[512], file[256], bad[256];
	FILE *f;
	paused_plan(plan, "Plan a weekend in Braga");
	snprintf(file, sizeof(file), "/tmp/0024-patch-%d.json", (int)getpid());
	snprintf(bad, sizeof(bad), "/tmp/0024-bad-%d.json", (int)getpid());
	f = fopen(file, "w");
	fputs(patch_v1, f);
	fclose(f);
	f = fopen(bad, "w");
	fputs("{\"base_version\":1,\"tasks\":[{\"task_no\":9,\"tier\":\"fast\","
	      "\"instructions\":\"x\"}]}",
	      f);
	fclose(f);
	snprintf(args, sizeof(args), "plan modify %s %s", plan, bad);
	T_EQ_INT(lhctl(args), 2);
	T_CHECK(strstr(body, "without gaps") != NULL);
	snprintf(args, sizeof(args), "plan modify %s /nonexistent.json", plan);
	T_EQ_INT(lhctl(args), 2);
	snprintf(args, sizeof(args), "plan modify %s %s", plan, file);
	T_EQ_INT(lhctl(args), 0);
	T_CHECK(strstr(body, "version 2, join is task 7") != NULL);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT version FROM plans WHERE plan_id = $1", plan, "2"));
	T_EQ_INT(lhctl(args), 1); /* stale now */
	T_CHECK(strstr(body, "version 2, not 1") != NULL);
	{
		const char *rid = ts_sql1(&ts,
					  "SELECT request_id FROM input_requests WHERE plan_id = $1 "
					  "AND status = 'pending'",
					  plan);
		snprintf(args, sizeof(args), "approve %s '%s' --budget-tasks 100", plan,
			 rid ? rid : "");
	}
	T_EQ_INT(lhctl(args), 0);
	finished_as_patched(plan);
	unlink(file);
	unlink(bad);
}

int main(int argc, char **argv)
{
	int rc;
	if ((rc = ts_init(&ts, argc > 1 ? argv[1] : ".")))
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	ts_spawn(&ts, "gateway", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0",
		 "--no-auth", NULL);
	port = ts_gateway_port(&ts, "gateway");
	if (port <= 0) {
		printf("FAIL: the gateway did not start\n");
		ts_finish(&ts);
		return 1;
	}
	T_RUN(t_http);
	T_RUN(t_lhctl);
	ts_finish(&ts);
	curl_global_cleanup();
	return t_done();
}
