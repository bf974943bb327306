/* 0023-lhctl-hitl: the terminal side of human-in-the-loop against a real gateway.
 *  - lhctl token create prints a token once (only its hash is stored) that the gateway accepts
 *    with its role (a viewer reads, cannot decide), list shows it without any hash, revoke makes
 *    the gateway answer 401 from the next request on;
 *  - lhctl watch follows a plan on a pipe (no terminal: plain lines): it reports the approval the
 *    plan waits for with the commands that answer it, and exits 0 once the plan completes after
 *    lhctl approve; a timeout exits 3;
 *  - lhctl respond refuses an approval and lhctl approve a question (each names the right
 *    command), appending nothing. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static int port;
static char out[16384], plan[40], done_plan[40];
static char tok_viewer[96], tok_resp[96];

static void lhctl_cmd(char *cmd, size_t n, const char *args)
{
	snprintf(cmd, n,
		 "LH_KAFKA_BROKERS='%s' LH_PG_URL='%s' LH_TOPIC_PREFIX='%s' LH_TENANT=default "
		 "%s/cli/lhctl %s",
		 ts.brokers, ts.pg_url, ts.prefix, ts.build_root, args);
}

/* Run lhctl; stdout in out (stderr too unless want_stdout_only); returns the exit status. */
static int lhctl_io(const char *args, bool stdout_only)
{
	char cmd[2048], full[2100];
	FILE *p;
	size_t n;
	int st;
	lhctl_cmd(cmd, sizeof(cmd), args);
	snprintf(full, sizeof(full), "%s %s", cmd, stdout_only ? "2>/dev/null" : "2>&1");
	p = popen(full, "r");
	if (!p)
		return -1;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	st = pclose(p);
	printf("# lhctl %s -> %d: %.600s%s", args, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
	       stdout_only ? "(token)" : out, stdout_only ? "\n" : "");
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
static int lhctl(const char *args) { return lhctl_io(args, false); }

static size_t sink(char *p, size_t size, size_t n, void *arg) { return size * n; }

static long http(const char *method, const char *path, const char *token, const char *body)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], line[200];
	long status = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	if (token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Idempotency-Key: 0023-decision");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static void t_tokens(void)
{
	char args[256], hash_hex[70];
	snprintf(args, sizeof(args), "token create %sviewer --role viewer", ts.prefix);
	T_EQ_INT(lhctl_io(args, true), 0);
	snprintf(tok_viewer, sizeof(tok_viewer), "%.*s", (int)strcspn(out, "\n"), out);
	T_EQ_INT((int)strlen(tok_viewer), 67);
	T_CHECK(strncmp(tok_viewer, "lh_", 3) == 0);
	snprintf(args, sizeof(args), "token create %sresp --role responder", ts.prefix);
	T_EQ_INT(lhctl_io(args, true), 0);
	snprintf(tok_resp, sizeof(tok_resp), "%.*s", (int)strcspn(out, "\n"), out);
	/* only the hash is stored, and list never shows it */
	lh_sha256_hex(tok_viewer, strlen(tok_viewer), hash_hex);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM api_tokens WHERE token_sha256 = $1", hash_hex),
		 "1");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM api_tokens WHERE token_sha256 = $1",
			 tok_viewer),
		 "0");
	T_EQ_INT(lhctl("token list"), 0);
	T_CHECK(strstr(out, "viewer") && strstr(out, "responder"));
	T_CHECK(strstr(out, hash_hex) == NULL && strstr(out, tok_viewer + 3) == NULL);
	/* the gateway takes them, with their roles */
	T_EQ_INT(http("GET", "/v1/plans?limit=1", tok_viewer, NULL), 200);
	T_EQ_INT(http("GET", "/v1/plans?limit=1", tok_resp, NULL), 200);
	T_EQ_INT(http("POST", "/v1/requests/01900000-0000-7000-8000-000000000000/r/decision",
		      tok_viewer, "{\"decision\":\"approve\"}"),
		 403);
	T_EQ_INT(http("POST", "/v1/requests/01900000-0000-7000-8000-000000000000/r/decision",
		      tok_resp, "{\"decision\":\"approve\"}"),
		 404);
	/* bad input */
	T_EQ_INT(lhctl("token create x --role root"), 2);
	T_EQ_INT(lhctl("token create ''"), 2);
	T_EQ_INT(lhctl("token"), 2);
	/* revoke: the next request is refused */
	snprintf(args, sizeof(args), "token revoke %sviewer", ts.prefix);
	T_EQ_INT(lhctl(args), 0);
	T_EQ_INT(http("GET", "/v1/plans?limit=1", tok_viewer, NULL), 401);
	T_EQ_INT(lhctl(args), 1); /* nothing left to revoke */
	T_EQ_INT(lhctl("token list"), 0);
	{
		char name[64];
		snprintf(name, sizeof(name), "%sviewer", ts.prefix);
		T_CHECK(strstr(out, name) == NULL);
		T_EQ_INT(lhctl("token list --all"), 0);
		T_CHECK(strstr(out, name) != NULL);
	}
}

/* watch on a pipe: the approval it waits for, then the end after lhctl approve. */
static void t_watch(void)
{
	lh_budget_t b = {.tokens = 700};
	lh_id_t id = ts_submit_with(&ts, "Plan a weekend in Lisbon", &b, NULL);
	char cmd[2048], args[256], line[1024], rid[160] = "";
	bool waiting = false, completed = false, approved = false;
	FILE *p;
	int st;
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	snprintf(args, sizeof(args), "watch %s --timeout 240 --interval-ms 100", plan);
	lhctl_cmd(cmd, sizeof(cmd), args);
	p = popen(cmd, "r");
	T_CHECK(p != NULL);
	if (!p)
		return;
	while (fgets(line, sizeof(line), p)) {
		printf("# watch: %s", line);
		T_CHECK(strchr(line, '\r') == NULL && strstr(line, "\033[") == NULL); /* no bar */
		if (strstr(line, "waiting for an approval (budget_extension)"))
			waiting = true;
		if (waiting && !approved && strstr(line, "lhctl approve ")) {
			/* "  lhctl approve PLAN 'RID'  |  lhctl reject PLAN 'RID'" */
			const char *q = strchr(line, '\'');
			if (q)
				snprintf(rid, sizeof(rid), "%.*s", (int)strcspn(q + 1, "'"), q + 1);
			/* the wrong command for an approval is refused and appends nothing */
			snprintf(args, sizeof(args), "respond %s '%s' yes", plan, rid);
			T_EQ_INT(lhctl(args), 1);
			T_CHECK(strstr(out, "lhctl approve") != NULL);
			T_EQ_INT(ts_count_events(&ts, plan, "input.provided"), 0);
			snprintf(args, sizeof(args), "approve %s '%s' --budget-tokens 100000", plan,
				 rid);
			T_EQ_INT(lhctl(args), 0);
			approved = true;
		}
		if (strstr(line, "completed: 5/5 tasks"))
			completed = true;
	}
	st = pclose(p);
	T_CHECK(waiting);
	T_CHECK(strncmp(rid, "budget:tokens", 13) == 0);
	T_CHECK(completed);
	T_EQ_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
	/* a finished plan: watch says so at once */
	snprintf(args, sizeof(args), "watch %s", plan);
	T_EQ_INT(lhctl(args), 0);
	T_CHECK(strstr(out, "completed") != NULL);
	snprintf(done_plan, sizeof(done_plan), "%s", plan);
	T_EQ_INT(lhctl("watch not-a-plan"), 2);
}

static void t_watch_timeout(void)
{
	lh_budget_t b = {.tokens = 700};
	lh_id_t id = ts_submit_with(&ts, "Plan a weekend in Faro", &b, NULL);
	char args[256], p2[40];
	lh_uuid_fmt(&id, p2);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", p2,
			    "paused"));
	snprintf(args, sizeof(args), "watch %s --timeout 1", p2);
	T_EQ_INT(lhctl(args), 3);
	T_CHECK(strstr(out, "still paused") != NULL);
	snprintf(args, sizeof(args), "plan cancel %s", p2);
	T_EQ_INT(lhctl(args), 0);
	snprintf(args, sizeof(args), "watch %s --timeout 120", p2);
	T_EQ_INT(lhctl(args), 1); /* cancelled */
	T_CHECK(strstr(out, "cancelled") != NULL);
}

/* A question cannot be approved: lhctl approve names lhctl respond. */
static void t_question_kind(void)
{
	lh_input_requested_t q = {0};
	lh_event_t ev = {0};
	char args[256], rid[64];
	snprintf(rid, sizeof(rid), "q-%s", ts.prefix);
	q.request_id = rid;
	q.question = "Which hotel?";
	ev.type = LH_EV_INPUT_REQUESTED;
	lh_uuid_parse(done_plan, &ev.plan_id);
	ev.task_no = 1;
	ev.attempt = 1;
	ev.tenant = "default";
	ev.actor.kind = "worker";
	ev.actor.id = "t0023";
	ev.body = &q;
	ts_emit(&ts, &ev);
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'question'",
			    done_plan, "pending"));
	snprintf(args, sizeof(args), "approve %s %s", done_plan, rid);
	T_EQ_INT(lhctl(args), 1);
	T_CHECK(strstr(out, "lhctl respond") != NULL);
	snprintf(args, sizeof(args), "reject %s %s", done_plan, rid);
	T_EQ_INT(lhctl(args), 1);
	T_EQ_INT(ts_count_events(&ts, done_plan, "approval.decided"), 1); /* the budget's only */
}

/* An approval gate on a task (needs_approval in the plan): the plan waits before the task runs;
 * approved, it runs and the plan completes; rejected, the task is cancelled, what needs it is
 * skipped and the join still decides. */
static const char gated_goal[] =
	"Publish the report\n"
	"lh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Draft the report\",\"tier\":"
	"\"fast\"},{\"id\":2,\"instructions\":\"Publish ${1}\",\"tier\":\"fast\","
	"\"needs_approval\":true},{\"id\":3,\"instructions\":\"Announce ${2}\",\"tier\":"
	"\"fast\"}],\"join\":\"Check\"}\n";

static void gated(bool approve)
{
	lh_id_t id = ts_submit(&ts, gated_goal);
	char p[40], args[256];
	lh_uuid_fmt(&id, p);
	printf("# gated plan %s (%s)\n", p, approve ? "approve" : "reject");
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status || ':' || kind || ':' || task_no FROM input_requests "
			    "WHERE plan_id = $1",
			    p, "pending:task:2"));
	/* waiting: task 1 ran, 2 has not started */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || ':' || status, ',' ORDER BY task_no) FROM "
			 "tasks WHERE plan_id = $1 AND task_no IN (1, 2)",
			 p),
		 "1:succeeded,2:pending");
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", p), "paused");
	T_EQ_INT(lhctl("requests"), 0);
	T_CHECK(strstr(out, p) != NULL);
	snprintf(args, sizeof(args), "%s %s task:2:v1%s", approve ? "approve" : "reject", p,
		 approve ? "" : " --reason 'not now'");
	T_EQ_INT(lhctl(args), 0);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", p,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || ':' || status, ',' ORDER BY task_no) FROM "
			 "tasks WHERE plan_id = $1 AND task_no IN (1, 2, 3)",
			 p),
		 approve ? "1:succeeded,2:succeeded,3:succeeded" : "1:succeeded,2:cancelled,3:skipped");
	T_EQ_INT(ts_count_events(&ts, p, "approval.requested"), 1);
}

static void t_task_gate_approved(void) { gated(true); }
static void t_task_gate_rejected(void) { gated(false); }

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
	ts_spawn(&ts, "gateway", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0", NULL);
	port = ts_gateway_port(&ts, "gateway");
	if (port <= 0) {
		printf("FAIL: the gateway did not start\n");
		ts_finish(&ts);
		return 1;
	}
	T_RUN(t_tokens);
	T_RUN(t_watch);
	T_RUN(t_watch_timeout);
	T_RUN(t_question_kind);
	T_RUN(t_task_gate_approved);
	T_RUN(t_task_gate_rejected);
	ts_finish(&ts);
	curl_global_cleanup();
	return t_done();
}
