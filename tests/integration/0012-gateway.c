/* 0012-gateway: the admin REST API of lh-gateway against a real stack (Kafka, PostgreSQL,
 * materializer, coordinator, scripted workers): tokens and roles, tenants, strict bodies, every
 * error path, idempotent writes, an approval answered over HTTP, commands, server-sent events,
 * the rate limit, and a goal submitted through the API that completes. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static int port;
static char tenant_a[48], tenant_b[48];
static char tok_admin[80], tok_viewer[80], tok_responder[80], tok_other[80];
static char plan_done[40]; /* completed through the API */

typedef struct resp {
	long status;
	char body[1 << 16];
	size_t len;
	char retry_after[16];
} resp_t;
static resp_t r;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	resp_t *x = arg;
	size_t len = size * n, room = sizeof(x->body) - 1 - x->len;
	memcpy(x->body + x->len, p, len < room ? len : room);
	x->len += len < room ? len : room;
	x->body[x->len] = 0;
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	resp_t *x = arg;
	size_t len = size * n;
	if (len > 13 && strncasecmp(p, "Retry-After: ", 13) == 0)
		snprintf(x->retry_after, sizeof(x->retry_after), "%.*s", (int)strcspn(p + 13, "\r\n"),
			 p + 13);
	return len;
}

/* One HTTP call; fills r. token/idem/body/extra_header may be NULL. */
static long http_at(int at_port, const char *method, const char *path, const char *token,
		    const char *idem, const char *body, const char *extra_header)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], line[256];
	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", at_port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
	}
	if (idem) {
		snprintf(line, sizeof(line), "Idempotency-Key: %s", idem);
		h = curl_slist_append(h, line);
	}
	if (extra_header)
		h = curl_slist_append(h, extra_header);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	else
		r.status = -1;
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return r.status;
}

static long http(const char *method, const char *path, const char *token, const char *idem,
		 const char *body)
{
	return http_at(port, method, path, token, idem, body, NULL);
}

/* The error code of the last reply ("" when the body is not our error shape). */
static const char *err_code(void)
{
	static char code[64];
	json_t *j = json_loads(r.body, 0, NULL);
	const char *s = NULL;
	json_unpack(j, "{s:{s:s}}", "error", "code", &s);
	snprintf(code, sizeof(code), "%s", s ? s : "");
	json_decref(j);
	return code;
}

static bool body_has(const char *s) { return strstr(r.body, s) != NULL; }

static void make_token(const char *name, const char *role, const char *tenant, char out[80])
{
	char cmd[1024];
	FILE *p;
	snprintf(cmd, sizeof(cmd),
		 "%s/gateway/lh-gateway --pg-url '%s' --create-token %s --role %s --tenant %s",
		 ts.build_root, ts.pg_url, name, role, tenant);
	out[0] = 0;
	p = popen(cmd, "r");
	if (p) {
		if (!fgets(out, 80, p))
			out[0] = 0;
		pclose(p);
	}
	out[strcspn(out, "\n")] = 0;
}

static int run_gateway_cmd(const char *args)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s/gateway/lh-gateway --pg-url '%s' %s >/dev/null",
		 ts.build_root, ts.pg_url, args);
	return system(cmd);
}

/* Start a gateway and read its port from the gateway.started log line. */
static int start_gateway(const char *name, const char *rate, const char *burst)
{
	ts_spawn(&ts, name, "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0",
		 "--rate-per-s", rate, "--rate-burst", burst, "--max-streams", "4", NULL);
	return ts_gateway_port(&ts, name);
}

static void t_auth_and_roles(void)
{
	char rev[80];
	T_EQ_INT(http("GET", "/v1/plans", NULL, NULL, NULL), 401);
	T_EQ_STR(err_code(), "unauthorized");
	T_EQ_INT(http("GET", "/v1/plans", "lh_not_a_token", NULL, NULL), 401);
	T_EQ_INT(http("GET", "/v1/plans", tok_viewer, NULL, NULL), 200);
	T_EQ_INT(http("POST", "/v1/goals", tok_viewer, "v1", "{\"goal\":\"x\"}"), 403);
	T_EQ_STR(err_code(), "forbidden");
	T_EQ_INT(http("POST", "/v1/goals", tok_responder, "v2", "{\"goal\":\"x\"}"), 403);
	make_token("gw-revoked", "admin", tenant_a, rev);
	T_CHECK(strlen(rev) == 67);
	T_EQ_INT(http("GET", "/v1/requests", rev, NULL, NULL), 200);
	T_EQ_INT(run_gateway_cmd("--revoke-token gw-revoked"), 0);
	T_EQ_INT(http("GET", "/v1/requests", rev, NULL, NULL), 401);
	T_CHECK(run_gateway_cmd("--revoke-token gw-revoked") != 0); /* none left */
	/* only the hash is stored */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM api_tokens WHERE token_sha256 = $1", rev), "0");
}

static void t_bad_requests(void)
{
	char *big;
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "b1", "{\"goal\": "), 400);
	T_EQ_STR(err_code(), "invalid_json");
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "b1", "[1]"), 400);
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "b1", "{\"goal\":\"a\",\"goal\":\"b\"}"),
		 400);
	T_CHECK(body_has("duplicate"));
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "b1", "{\"goal\": 42}"), 400);
	T_CHECK(body_has("goal: expected string"));
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "b1", "{\"goal\":\"a\",\"colour\":1}"), 400);
	T_CHECK(body_has("colour: unknown key"));
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "b1",
		      "{\"goal\":\"a\",\"budget\":{\"tokens\":\"many\"}}"),
		 400);
	T_CHECK(body_has("budget.tokens"));
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, NULL, "{\"goal\":\"a\"}"), 400);
	T_EQ_STR(err_code(), "missing_idempotency_key");
	big = malloc(100000);
	memset(big, 'a', 99999);
	big[99999] = 0;
	memcpy(big, "{\"goal\":\"", 9);
	big[99997] = '"';
	big[99998] = '}';
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "b2", big), 413);
	T_EQ_STR(err_code(), "body_too_large");
	free(big);
	T_EQ_INT(http("GET", "/v1/nope", tok_admin, NULL, NULL), 404);
	T_EQ_STR(err_code(), "not_found");
	T_EQ_INT(http("DELETE", "/v1/plans", tok_admin, NULL, NULL), 405);
	T_EQ_INT(http("GET", "/v1/plans?status=sideways", tok_admin, NULL, NULL), 400);
	T_EQ_INT(http("GET", "/v1/plans?limit=0", tok_admin, NULL, NULL), 400);
	T_EQ_INT(http("GET", "/v1/plans?colour=red", tok_admin, NULL, NULL), 400);
	T_EQ_INT(http("GET", "/v1/plans/not-a-uuid", tok_admin, NULL, NULL), 404);
	T_EQ_INT(http("GET", "/v1/plans/01900000-0000-7000-8000-000000000000", tok_admin, NULL,
		      NULL),
		 404);
	T_EQ_INT(http("GET", "/v1/plans/01900000-0000-7000-8000-000000000000/attempts", tok_admin,
		      NULL, NULL),
		 404);
	T_EQ_INT(http("POST", "/v1/plans/01900000-0000-7000-8000-000000000000/pause", tok_admin,
		      "b3", NULL),
		 404);
	T_EQ_INT(http("POST", "/v1/requests/01900000-0000-7000-8000-000000000000/r1/decision",
		      tok_responder, "b4", "{\"decision\":\"approve\"}"),
		 404);
	/* nothing above appended anything */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM api_writes WHERE tenant = $1 AND idem_key "
			      "LIKE 'b%'",
			 tenant_a),
		 "0");
}

static void t_goal_idempotent_completes(void)
{
	char id1[64] = "", path[160], q[64];
	json_t *j;
	const char *s = NULL;
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "goal-1",
		      "{\"goal\":\"Plan a weekend in Porto\",\"metadata\":{\"from\":\"0012\"}}"),
		 202);
	j = json_loads(r.body, 0, NULL);
	json_unpack(j, "{s:s}", "plan_id", &s);
	snprintf(id1, sizeof(id1), "%s", s ? s : "");
	json_decref(j);
	T_CHECK(strlen(id1) == 36);
	/* the retry: same key, same body -> same plan, nothing appended */
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "goal-1",
		      "{\"metadata\":{\"from\":\"0012\"},\"goal\":\"Plan a weekend in Porto\"}"),
		 202);
	T_CHECK(body_has(id1));
	/* the same key for another goal is refused */
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "goal-1", "{\"goal\":\"Something else\"}"),
		 422);
	snprintf(plan_done, sizeof(plan_done), "%s", id1);
	printf("# plan %s\n", plan_done);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan_done,
			    "completed"));
	T_EQ_INT(ts_count_events(&ts, plan_done, "goal.submitted"), 1);
	T_EQ_STR(ts_sql1(&ts, "SELECT tenant FROM plans WHERE plan_id = $1", plan_done), tenant_a);

	snprintf(path, sizeof(path), "/v1/plans/%s", plan_done);
	T_EQ_INT(http("GET", path, tok_viewer, NULL, NULL), 200);
	{
		json_t *pj = json_loads(r.body, 0, NULL), *tasks = json_object_get(pj, "tasks");
		const char *st = NULL;
		json_unpack(json_object_get(pj, "plan"), "{s:s}", "status", &st);
		T_EQ_STR(st, "completed");
		T_CHECK(json_array_size(tasks) >= 3);
		T_EQ_INT(json_integer_value(json_object_get(json_array_get(tasks, 0), "task_no")), 0);
		T_EQ_STR(json_string_value(json_object_get(json_array_get(tasks, 0), "kind")), "plan");
		json_decref(pj);
	}
	T_EQ_INT(http("GET", path, tok_other, NULL, NULL), 404); /* another tenant's plan */
	snprintf(path, sizeof(path), "/v1/plans/%s/decisions", plan_done);
	T_EQ_INT(http("GET", path, tok_viewer, NULL, NULL), 200);
	T_CHECK(body_has("plan_completed"));
	T_EQ_INT(http("GET", path, tok_other, NULL, NULL), 404);
	snprintf(path, sizeof(path), "/v1/plans/%s/attempts", plan_done);
	T_EQ_INT(http("GET", path, tok_viewer, NULL, NULL), 200);
	T_CHECK(body_has("\"status\":\"succeeded\"") || body_has("\"status\" : \"succeeded\""));
	T_EQ_INT(http("GET", "/v1/plans?status=completed&limit=500", tok_viewer, NULL, NULL), 200);
	T_CHECK(body_has(plan_done));
	T_EQ_INT(http("GET", "/v1/plans?status=completed&limit=500", tok_other, NULL, NULL), 200);
	T_CHECK(!body_has(plan_done));
	snprintf(q, sizeof(q), "%s", "");
}

static void t_events_stream(void)
{
	char path[160], first[32], hdr[64];
	const char *v;
	snprintf(path, sizeof(path), "/v1/plans/%s/events", plan_done);
	/* the plan has finished: the stream replays it and ends after plan.completed */
	T_EQ_INT(http("GET", path, tok_viewer, NULL, NULL), 200);
	T_CHECK(body_has("event: goal.submitted\n"));
	T_CHECK(body_has("event: plan.created\n"));
	T_CHECK(body_has("event: plan.completed\ndata: {"));
	v = ts_sql1(&ts, "SELECT min(\"offset\") FROM events WHERE plan_id = $1", plan_done);
	snprintf(first, sizeof(first), "%s", v ? v : "");
	{
		char want[48];
		snprintf(want, sizeof(want), "id: %s\nevent: goal.submitted", first);
		T_CHECK(body_has(want));
	}
	/* resume after the first event */
	snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s", first);
	T_EQ_INT(http_at(port, "GET", path, tok_viewer, NULL, NULL, hdr), 200);
	T_CHECK(!body_has("event: goal.submitted"));
	T_CHECK(body_has("event: plan.completed"));
	T_EQ_INT(http_at(port, "GET", path, tok_viewer, NULL, NULL, "Last-Event-ID: x"), 400);
	T_EQ_INT(http("GET", path, tok_other, NULL, NULL), 404);
}

static void t_decision(void)
{
	char plan[64] = "", rid[160] = "", path[400];
	const char *s = NULL, *v;
	json_t *j;
	T_EQ_INT(http("POST", "/v1/goals", tok_admin, "goal-budget",
		      "{\"goal\":\"Plan a weekend in Porto\",\"budget\":{\"tokens\":700}}"),
		 202);
	j = json_loads(r.body, 0, NULL);
	json_unpack(j, "{s:s}", "plan_id", &s);
	snprintf(plan, sizeof(plan), "%s", s ? s : "");
	json_decref(j);
	printf("# budget plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'budget_extension'",
			    plan, "pending"));
	v = ts_sql1(&ts, "SELECT request_id FROM input_requests WHERE plan_id = $1", plan);
	snprintf(rid, sizeof(rid), "%s", v ? v : "");
	T_EQ_INT(http("GET", "/v1/requests?status=pending", tok_viewer, NULL, NULL), 200);
	T_CHECK(body_has(rid) && body_has(plan));
	T_EQ_INT(http("GET", "/v1/requests?status=pending", tok_other, NULL, NULL), 200);
	T_CHECK(!body_has(plan));
	T_EQ_INT(http("GET", "/v1/requests?status=maybe", tok_viewer, NULL, NULL), 400);
	{
		char *e = curl_easy_escape(NULL, rid, 0);
		snprintf(path, sizeof(path), "/v1/requests/%s/%s/decision", plan, e);
		curl_free(e);
	}
	T_EQ_INT(http("POST", path, tok_viewer, "d0", "{\"decision\":\"approve\"}"), 403);
	T_EQ_INT(http("POST", path, tok_other, "d0", "{\"decision\":\"approve\"}"), 404);
	T_EQ_INT(http("POST", path, tok_responder, "d0", "{\"decision\":\"maybe\"}"), 400);
	T_CHECK(body_has("decision"));
	T_EQ_INT(http("POST", path, tok_responder, "d0", "{\"decision\":\"approve\",\"why\":1}"),
		 400);
	T_CHECK(body_has("why: unknown key"));
	T_EQ_INT(http("POST", path, tok_responder, "d1",
		      "{\"decision\":\"approve\",\"budget\":{\"tokens\":100000},\"reason\":\"ok\"}"),
		 202);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status || ':' || responder_type || ':' || responder_id FROM "
			    "input_requests WHERE plan_id = $1",
			    plan, "approved:human:gw-responder"));
	/* a second answer is refused; the retry of the first is answered like the first */
	T_EQ_INT(http("POST", path, tok_responder, "d2", "{\"decision\":\"reject\"}"), 409);
	T_EQ_STR(err_code(), "already_decided");
	T_EQ_INT(http("POST", path, tok_responder, "d1",
		      "{\"decision\":\"approve\",\"budget\":{\"tokens\":100000},\"reason\":\"ok\"}"),
		 202);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_INT(ts_count_events(&ts, plan, "approval.decided"), 1);
}

static void t_commands(void)
{
	char path[160];
	snprintf(path, sizeof(path), "/v1/plans/%s/pause", plan_done);
	T_EQ_INT(http("POST", path, tok_responder, "c1", NULL), 403);
	T_EQ_INT(http("POST", path, tok_other, "c1", NULL), 404);
	T_EQ_INT(http("POST", path, tok_admin, "c1", "{\"command\":\"cancel\"}"), 400);
	T_EQ_INT(http("POST", path, tok_admin, "c1", "{\"reason\":\"lunch\"}"), 202);
	T_EQ_INT(http("POST", path, tok_admin, "c1", "{\"reason\":\"lunch\"}"), 202);
	snprintf(path, sizeof(path), "/v1/plans/%s/resume", plan_done);
	T_EQ_INT(http("POST", path, tok_admin, "c2", NULL), 202);
	snprintf(path, sizeof(path), "/v1/plans/%s/cancel", plan_done);
	T_EQ_INT(http("POST", path, tok_admin, "c3", "{}"), 202);
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT count(*) FROM events WHERE plan_id = $1 AND type = "
			    "'command.issued'",
			    plan_done, "3"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(body->>'command', ',' ORDER BY \"offset\") FROM events "
			 "WHERE plan_id = $1 AND type = 'command.issued'",
			 plan_done),
		 "pause,resume,cancel");
	/* a finished plan stays finished */
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", plan_done),
		 "completed");
}

static void t_rate_limit(void)
{
	int p2 = start_gateway("gateway-slow", "0.01", "2");
	T_CHECK(p2 > 0);
	T_EQ_INT(http_at(p2, "GET", "/v1/plans?limit=1", tok_viewer, NULL, NULL, NULL), 200);
	T_EQ_INT(http_at(p2, "GET", "/v1/plans?limit=1", tok_viewer, NULL, NULL, NULL), 200);
	T_EQ_INT(http_at(p2, "GET", "/v1/plans?limit=1", tok_viewer, NULL, NULL, NULL), 429);
	T_EQ_STR(err_code(), "rate_limited");
	T_CHECK(atoi(r.retry_after) >= 1);
	/* another token has its own bucket */
	T_EQ_INT(http_at(p2, "GET", "/v1/plans?limit=1", tok_admin, NULL, NULL, NULL), 200);
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(tenant_a, sizeof(tenant_a), "%sa", ts.prefix);
	snprintf(tenant_b, sizeof(tenant_b), "%sb", ts.prefix);
	make_token("gw-admin", "admin", tenant_a, tok_admin);
	make_token("gw-viewer", "viewer", tenant_a, tok_viewer);
	make_token("gw-responder", "responder", tenant_a, tok_responder);
	make_token("gw-other", "admin", tenant_b, tok_other);
	if (!*tok_admin || !*tok_other) {
		printf("FAIL: could not create tokens\n");
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	port = start_gateway("gateway", "1000", "1000");
	if (port <= 0) {
		printf("FAIL: the gateway did not start\n");
		ts_finish(&ts);
		return 1;
	}
	T_RUN(t_auth_and_roles);
	T_RUN(t_bad_requests);
	T_RUN(t_goal_idempotent_completes);
	T_RUN(t_events_stream);
	T_RUN(t_commands);
	T_RUN(t_decision);
	T_RUN(t_rate_limit);
	ts_finish(&ts);
	curl_global_cleanup();
	return t_done();
}
