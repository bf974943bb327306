/* test_http.c — lh_http_t and the OpenAI provider against tests/fakellm.
 *
 *   test_http PATH_TO_FAKELLM
 *
 * Starts fakellm as child processes on port 0 (the port is read from their stdout: that line is
 * the readiness signal, no sleeping), drives the client and the provider on one event loop and
 * asserts on what fakellm counted (/stats). Faults are selected per test by a marker in the user
 * message ("[case:hang]") matched by the script below. */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "llm.h"
#include "t.h"

static const char *fakellm_path;
static struct event_base *base;
static lh_http_t *http;
static struct event *watchdog;
static int watchdog_fired;

typedef struct fake {
	pid_t pid;
	int port;
	char base_url[64]; /* http://127.0.0.1:PORT/v1 */
	char root[64];	   /* http://127.0.0.1:PORT */
} fake_t;

static fake_t fk;	 /* the script below, no latency */
static fake_t fk_slow;	 /* --latency-ms 200 */
static fake_t fk_auth;	 /* --api-key */
static char script_path[] = "/tmp/lh-test-http-XXXXXX";

static const char *script =
	"{\"rules\": [\n"
	" {\"match\": \"[case:429s]\", \"times\": 1, \"status\": 429,"
	"  \"headers\": {\"retry-after\": \"1\"}},\n"
	" {\"match\": \"[case:429ms]\", \"times\": 1, \"status\": 429,"
	"  \"headers\": {\"retry-after-ms\": \"40\"}},\n"
	" {\"match\": \"[case:ra-header]\", \"status\": 429,"
	"  \"headers\": {\"retry-after-ms\": \"250\", \"retry-after\": \"7\"}},\n"
	" {\"match\": \"[case:ra-seconds]\", \"status\": 503, \"headers\": {\"retry-after\": 2}},\n"
	" {\"match\": \"[case:500]\", \"status\": 500},\n"
	" {\"match\": \"[case:hang]\", \"action\": \"hang\"},\n"
	" {\"match\": \"[case:truncate-once]\", \"times\": 1, \"action\": \"truncate\"},\n"
	" {\"match\": \"[case:truncate]\", \"action\": \"truncate\"},\n"
	" {\"match\": \"[case:malformed]\", \"action\": \"malformed\"},\n"
	" {\"match\": \"[case:quota]\", \"status\": 429, \"body\": {\"error\": {\"message\":"
	"  \"You exceeded your current quota\", \"type\": \"insufficient_quota\","
	"  \"code\": \"insufficient_quota\"}}},\n"
	" {\"match\": \"[case:noretry]\", \"status\": 503,"
	"  \"headers\": {\"x-should-retry\": \"false\"}},\n"
	" {\"match\": \"[case:tools]\", \"tool_calls\": [{\"name\": \"memory_search\","
	"  \"arguments\": {\"query\": \"ducks\"}}]},\n"
	" {\"match\": \"[case:length]\", \"content\": \"cut\", \"finish_reason\": \"length\"},\n"
	" {\"match\": \"[case:slow]\", \"latency_ms\": 1500}\n"
	"]}\n";

/* ---- plumbing ---------------------------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg) { watchdog_fired = 1; }

/* Run the loop until *done (or 60 s have passed: a failure, not a wait). */
static void run_until(const int *done)
{
	struct timeval tv = {60, 0};
	watchdog_fired = 0;
	evtimer_add(watchdog, &tv);
	while (!*done && !watchdog_fired)
		event_base_loop(base, EVLOOP_ONCE);
	evtimer_del(watchdog);
	T_CHECK(!watchdog_fired);
}

static bool fake_start(fake_t *f, const char *a1, const char *a2)
{
	int fds[2];
	FILE *in;
	char line[256];
	unsigned port = 0;

	memset(f, 0, sizeof(*f));
	if (pipe(fds) != 0)
		return false;
	f->pid = fork();
	if (f->pid < 0)
		return false;
	if (f->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(fakellm_path, fakellm_path, "--port", "0", a1, a2, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in || !fgets(line, sizeof(line), in) ||
	    sscanf(line, "listening on 127.0.0.1:%u", &port) != 1) {
		fprintf(stderr, "fakellm did not start\n");
		if (in)
			fclose(in);
		return false;
	}
	fclose(in);
	f->port = (int)port;
	snprintf(f->root, sizeof(f->root), "http://127.0.0.1:%u", port);
	snprintf(f->base_url, sizeof(f->base_url), "http://127.0.0.1:%u/v1", port);
	return true;
}

/* SIGTERM, wait; returns the exit status (0 = clean shutdown). */
static int fake_stop(fake_t *f)
{
	int status = -1;
	if (f->pid <= 0)
		return -1;
	kill(f->pid, SIGTERM);
	while (waitpid(f->pid, &status, 0) < 0 && errno == EINTR)
		;
	f->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct hres {
	int done;
	lh_err_t code;
	bool retriable;
	bool cancelled;
	long status;
	char *body;
	char *ctype;
	long retry_after_ms;
	char msg[512];
};

static void on_http(lh_http_resp_t *resp, void *opaque)
{
	struct hres *h = opaque;
	const char *ct = lh_http_resp_header(resp, "content-type");
	h->done++;
	h->code = resp->error.code;
	h->retriable = resp->error.retriable;
	h->cancelled = resp->cancelled;
	h->status = resp->status;
	h->body = lh_buf_steal(&resp->body, NULL);
	h->ctype = ct ? strdup(ct) : NULL;
	h->retry_after_ms = resp->retry_after_ms;
	snprintf(h->msg, sizeof(h->msg), "%s", resp->error.msg);
}

static void hres_finish(struct hres *h)
{
	free(h->body);
	free(h->ctype);
	memset(h, 0, sizeof(*h));
}

static lh_err_t do_http(lh_http_req_t *req, struct hres *h)
{
	lh_error_t err;
	lh_err_t rc;
	memset(h, 0, sizeof(*h));
	rc = lh_http_request(http, req, on_http, h, NULL, &err);
	if (rc != LH_OK)
		return rc;
	run_until(&h->done);
	return h->code;
}

static json_t *fake_stats(const fake_t *f)
{
	char url[96];
	lh_http_req_t req = {.url = url};
	struct hres h;
	json_t *j = NULL;
	snprintf(url, sizeof(url), "%s/stats", f->root);
	if (do_http(&req, &h) == LH_OK && h.status == 200)
		j = json_loads(h.body, 0, NULL);
	hres_finish(&h);
	return j;
}

static long stat_of(const fake_t *f, const char *key)
{
	json_t *j = fake_stats(f);
	long v = j ? (long)json_integer_value(json_object_get(j, key)) : -1;
	json_decref(j);
	return v;
}

static void fake_reset(const fake_t *f)
{
	char url[96];
	lh_http_req_t req = {.url = url, .method = "POST"};
	struct hres h;
	snprintf(url, sizeof(url), "%s/reset", f->root);
	T_EQ_INT(do_http(&req, &h), LH_OK);
	T_EQ_INT(h.status, 200);
	hres_finish(&h);
}

/* ---- http client ------------------------------------------------------------------------- */

static void test_http_get(void)
{
	char url[96];
	lh_http_req_t req = {.url = url};
	struct hres h;
	lh_http_stats_t st;
	snprintf(url, sizeof(url), "%s/health", fk.root);
	T_EQ_INT(do_http(&req, &h), LH_OK);
	T_EQ_INT(h.status, 200);
	T_EQ_STR(h.body, "{\"status\":\"ok\"}");
	T_EQ_STR(h.ctype, "application/json");
	T_EQ_INT(h.retry_after_ms, -1);
	hres_finish(&h);

	snprintf(url, sizeof(url), "%s/no/such/path?key=secret", fk.root);
	T_EQ_INT(do_http(&req, &h), LH_OK); /* a 404 is a complete response */
	T_EQ_INT(h.status, 404);
	T_CHECK(h.body && strstr(h.body, "unknown_url"));
	hres_finish(&h);

	lh_http_stats(http, &st);
	T_CHECK(st.completed >= 2);
	T_EQ_INT(st.in_flight, 0);
}

static void test_http_retry_after_headers(void)
{
	char url[96];
	const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
			   "\"content\":\"[case:ra-header]\"}]}";
	const char *hdrs[] = {"Content-Type: application/json"};
	lh_http_req_t req = {.url = url, .body = body, .body_len = strlen(body),
			     .headers = hdrs, .n_headers = 1};
	struct hres h;
	snprintf(url, sizeof(url), "%s/chat/completions", fk.base_url);
	T_EQ_INT(do_http(&req, &h), LH_OK);
	T_EQ_INT(h.status, 429);
	T_EQ_INT(h.retry_after_ms, 250); /* retry-after-ms wins over retry-after */
	hres_finish(&h);

	body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"[case:ra-seconds]\"}]}";
	req.body = body;
	req.body_len = strlen(body);
	T_EQ_INT(do_http(&req, &h), LH_OK);
	T_EQ_INT(h.status, 503);
	T_EQ_INT(h.retry_after_ms, 2000);
	hres_finish(&h);
}

static void test_http_too_large(void)
{
	char url[96];
	lh_http_req_t req = {.url = url, .max_response_bytes = 8};
	struct hres h;
	snprintf(url, sizeof(url), "%s/stats", fk.root);
	T_EQ_INT(do_http(&req, &h), LH_ERR_TOO_LARGE);
	T_CHECK(!h.retriable);
	T_CHECK(strstr(h.msg, "larger than 8 bytes") != NULL);
	hres_finish(&h);
}

static void test_http_connect_refused(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sin);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	char url[96];
	lh_http_req_t req = {.url = url};
	struct hres h;

	/* a port that was free a moment ago, now closed */
	T_CHECK(bind(s, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	T_CHECK(getsockname(s, (struct sockaddr *)&sin, &len) == 0);
	close(s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", (unsigned)ntohs(sin.sin_port));
	T_EQ_INT(do_http(&req, &h), LH_ERR_UNAVAILABLE);
	T_CHECK(h.retriable);
	T_EQ_INT(h.status, 0);
	hres_finish(&h);

	/* a bad url is refused by curl at transfer time, not retriable */
	req.url = "ftp://127.0.0.1/x";
	T_EQ_INT(do_http(&req, &h), LH_ERR_INVALID);
	T_CHECK(!h.retriable);
	hres_finish(&h);
}

static void test_http_first_byte_timeout(void)
{
	char url[96];
	const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
			   "\"content\":\"[case:hang]\"}]}";
	lh_http_req_t req = {.url = url, .body = body, .body_len = strlen(body),
			     .first_byte_timeout_ms = 200};
	struct hres h;
	double t0 = now_ms(), dt;
	snprintf(url, sizeof(url), "%s/chat/completions", fk.base_url);
	T_EQ_INT(do_http(&req, &h), LH_ERR_TIMEOUT);
	dt = now_ms() - t0;
	T_CHECK(h.retriable);
	T_CHECK(strstr(h.msg, "no response within 200 ms") != NULL);
	T_CHECK(dt >= 190 && dt < 5000);
	hres_finish(&h);

	/* the total timeout as well */
	req.first_byte_timeout_ms = 0;
	req.total_timeout_ms = 150;
	T_EQ_INT(do_http(&req, &h), LH_ERR_TIMEOUT);
	hres_finish(&h);
}

static void test_http_cancel(void)
{
	char url[96];
	const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
			   "\"content\":\"[case:hang]\"}]}";
	lh_http_req_t req = {.url = url, .body = body, .body_len = strlen(body)};
	struct hres a, b;
	uint64_t ida = 0, idb = 0;
	lh_http_stats_t st;

	snprintf(url, sizeof(url), "%s/chat/completions", fk.base_url);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	T_EQ_INT(lh_http_request(http, &req, on_http, &a, &ida, NULL), LH_OK);
	T_EQ_INT(lh_http_request(http, &req, on_http, &b, &idb, NULL), LH_OK);
	T_CHECK(ida != idb);
	T_EQ_INT(a.done, 0);
	T_EQ_INT(lh_http_cancel(http, ida), LH_OK);
	T_EQ_INT(a.done, 1); /* inside the cancel call */
	T_CHECK(a.cancelled);
	T_EQ_INT(a.code, LH_ERR_UNAVAILABLE);
	T_EQ_INT(lh_http_cancel(http, ida), LH_ERR_NOT_FOUND);
	lh_http_cancel_all(http);
	T_EQ_INT(b.done, 1);
	T_CHECK(b.cancelled);
	lh_http_stats(http, &st);
	T_EQ_INT(st.in_flight, 0);
	hres_finish(&a);
	hres_finish(&b);
}

/* fakellm itself: odd requests get an OpenAI-style 400, never a crash */
static void test_fakellm_bad_requests(void)
{
	static const struct {
		const char *body;
		long status;
	} rows[] = {
		{"not json", 400},
		{"{}", 400},
		{"{\"model\":\"m\"}", 400},
		{"{\"model\":\"m\",\"messages\":[]}", 400},
		{"{\"model\":\"m\",\"messages\":[1]}", 400},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400},
		{"{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400},
		{"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 400},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}", 400},
		/* odd but valid: content as parts, as a number, missing */
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
		 "\"text\",\"text\":\"hi\"}]}]}", 200},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", 200},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\"}]}", 200},
	};
	char url[96];
	lh_http_req_t req = {.url = url};
	struct hres h;
	long before = stat_of(&fk, "bad_requests");
	long want_bad = 0;

	snprintf(url, sizeof(url), "%s/chat/completions", fk.base_url);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		req.body = rows[i].body;
		req.body_len = strlen(rows[i].body);
		T_EQ_INT(do_http(&req, &h), LH_OK);
		if (h.status != rows[i].status)
			fprintf(stderr, "row %zu: status %ld\n", i, h.status);
		T_EQ_INT(h.status, rows[i].status);
		if (rows[i].status == 400) {
			json_t *j = h.body ? json_loads(h.body, 0, NULL) : NULL;
			T_CHECK(json_is_string(json_object_get(json_object_get(j, "error"), "message")));
			json_decref(j);
			want_bad++;
		}
		hres_finish(&h);
	}
	T_EQ_INT(stat_of(&fk, "bad_requests") - before, want_bad);
	/* GET on the completions path */
	req.body = NULL;
	T_EQ_INT(do_http(&req, &h), LH_OK);
	T_EQ_INT(h.status, 405);
	hres_finish(&h);
}

/* ---- the OpenAI provider ----------------------------------------------------------------- */

struct got {
	int done;
	bool ok;
	lh_llm_resp_t resp;
	lh_llm_error_t err;
};

static void on_llm(lh_llm_resp_t *resp, const lh_llm_error_t *err, void *opaque)
{
	struct got *g = opaque;
	g->done++;
	g->ok = resp != NULL;
	if (resp) {
		g->resp = *resp;
		memset(resp, 0, sizeof(*resp));
	} else {
		g->err = *err;
	}
}

static lh_llm_provider_t *provider(const fake_t *f, int max_retries, long timeout_ms,
				   const char *key)
{
	lh_llm_openai_opts_t o = {.max_retries = max_retries, .timeout_ms = timeout_ms,
				  .retry_base_ms = 20, .retry_cap_ms = 100, .jitter_seed = 1};
	lh_error_t err;
	lh_llm_provider_t *p = lh_llm_openai_new(http, f->base_url, key, &o, &err);
	T_CHECK(p != NULL);
	return p;
}

/* One call with the user text, run to completion. */
static void llm_once(lh_llm_provider_t *p, const char *system, const char *user, struct got *g)
{
	lh_llm_message_t msgs[2] = {{.role = LH_LLM_ROLE_SYSTEM, .content = system},
				    {.role = LH_LLM_ROLE_USER, .content = user}};
	lh_llm_req_t req = {.model = "fake-model", .messages = system ? msgs : msgs + 1,
			    .n_messages = system ? 2 : 1, .max_output_tokens = 100};
	lh_error_t err;
	memset(g, 0, sizeof(*g));
	T_EQ_INT(lh_llm_call(p, &req, on_llm, g, &err), LH_OK);
	T_EQ_INT(g->done, 0);
	run_until(&g->done);
	T_EQ_INT(g->done, 1);
}

/* A second call started from inside the first one's callback must run (the worker does this to
 * send an answer back to the model). Regression: the client dropped curl's timer when a socket
 * event found no transfer running, so the new request never started. */
struct chain {
	lh_llm_provider_t *p;
	struct got second;
	int first_done;
};

static void on_first(lh_llm_resp_t *resp, const lh_llm_error_t *err, void *opaque)
{
	struct chain *c = opaque;
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "Goal: again\nTask: second"};
	lh_llm_req_t req = {.model = "fake-model", .messages = &msg, .n_messages = 1};
	lh_error_t e;
	c->first_done = 1;
	T_CHECK(resp != NULL);
	T_EQ_INT(lh_llm_call(c->p, &req, on_llm, &c->second, &e), LH_OK);
}

static void test_llm_call_from_callback(void)
{
	struct chain c = {.p = provider(&fk, 0, 5000, NULL)};
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "Goal: chain\nTask: first"};
	lh_llm_req_t req = {.model = "fake-model", .messages = &msg, .n_messages = 1};
	lh_error_t e;
	T_EQ_INT(lh_llm_call(c.p, &req, on_first, &c, &e), LH_OK);
	run_until(&c.second.done);
	T_EQ_INT(c.first_done, 1);
	T_EQ_INT(c.second.done, 1);
	T_CHECK(c.second.ok);
	lh_llm_resp_finish(&c.second.resp);
	lh_llm_provider_free(c.p);
}

static void test_llm_success(void)
{
	lh_llm_provider_t *p = provider(&fk, 0, 0, NULL);
	struct got g;
	long before = stat_of(&fk, "requests");
	json_t *plan;

	llm_once(p, "You are the planner. Reply with JSON.", "Goal: Grow tomatoes\nBe brief.", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.attempts, 1);
	T_EQ_STR(g.resp.model, "fake-model");
	T_CHECK(g.resp.id && strncmp(g.resp.id, "chatcmpl-fake-", 14) == 0);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_STOP);
	plan = g.resp.content ? json_loads(g.resp.content, 0, NULL) : NULL;
	T_EQ_INT(json_array_size(json_object_get(plan, "tasks")), 4);
	T_EQ_STR(json_string_value(json_object_get(
			 json_array_get(json_object_get(plan, "tasks"), 0), "instructions")),
		 "Research the background of: Grow tomatoes");
	/* the same answer as the in-process scripted model */
	{
		char *same = lh_llm_scripted_answer("plan", "Grow tomatoes", NULL);
		T_EQ_STR(g.resp.content, same);
		free(same);
	}
	T_CHECK(g.resp.usage.input_tokens > 0);
	T_CHECK(g.resp.usage.output_tokens > g.resp.usage.reasoning_tokens);
	T_CHECK(g.resp.usage.reasoning_tokens > 0);
	json_decref(plan);
	lh_llm_resp_finish(&g.resp);
	T_EQ_INT(stat_of(&fk, "requests") - before, 1);

	/* a long prompt gets cached tokens, like the real thing */
	{
		char *big = malloc(8001);
		memset(big, 'a', 8000);
		big[8000] = 0;
		llm_once(p, NULL, big, &g);
		T_CHECK(g.ok);
		T_CHECK(g.resp.usage.input_tokens >= 2000);
		T_CHECK(g.resp.usage.cached_tokens > 0);
		T_EQ_STR(g.resp.content, "Done: " /* the act answer is capped at 400 bytes */
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		lh_llm_resp_finish(&g.resp);
		free(big);
	}
	lh_llm_provider_free(p);
}

static void test_llm_tools_and_length(void)
{
	lh_llm_provider_t *p = provider(&fk, 0, 0, NULL);
	struct got g;
	llm_once(p, "You are a worker", "find [case:tools]", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_TOOL_CALLS);
	T_EQ_INT(g.resp.n_tool_calls, 1);
	if (g.resp.n_tool_calls == 1) {
		T_EQ_STR(g.resp.tool_calls[0].name, "memory_search");
		T_EQ_STR(json_string_value(json_object_get(g.resp.tool_calls[0].arguments, "query")),
			 "ducks");
		T_CHECK(g.resp.tool_calls[0].id && *g.resp.tool_calls[0].id);
	}
	lh_llm_resp_finish(&g.resp);
	llm_once(p, NULL, "[case:length]", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_LENGTH);
	T_EQ_STR(g.resp.content, "cut");
	lh_llm_resp_finish(&g.resp);
	lh_llm_provider_free(p);
}

static void test_llm_429_then_success(void)
{
	lh_llm_provider_t *p = provider(&fk, 0, 0, NULL);
	struct got g;
	long before = stat_of(&fk, "requests");

	/* retry-after: 1 (seconds) is obeyed, not the 20 ms backoff */
	llm_once(p, NULL, "hello [case:429s]", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.attempts, 2);
	T_CHECK(g.resp.latency_ms >= 950);
	T_EQ_INT(stat_of(&fk, "requests") - before, 2);
	lh_llm_resp_finish(&g.resp);

	before = stat_of(&fk, "requests");
	llm_once(p, NULL, "hello [case:429ms]", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.attempts, 2);
	T_CHECK(g.resp.latency_ms >= 38 && g.resp.latency_ms < 900);
	T_EQ_INT(stat_of(&fk, "requests") - before, 2);
	lh_llm_resp_finish(&g.resp);
	lh_llm_provider_free(p);
}

static void test_llm_500_exhausts_retries(void)
{
	lh_llm_provider_t *p = provider(&fk, 0 /* default: 2 retries */, 0, NULL);
	struct got g;
	long before = stat_of(&fk, "requests");
	llm_once(p, NULL, "[case:500]", &g);
	T_CHECK(!g.ok);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_RETRYABLE);
	T_CHECK(g.err.error.retriable);
	T_EQ_INT(g.err.http_status, 500);
	T_EQ_INT(g.err.attempts, 3);
	T_CHECK(strstr(g.err.error.msg, "http status 500") != NULL);
	T_EQ_INT(stat_of(&fk, "requests") - before, 3);
	lh_llm_provider_free(p);

	/* max_retries = -1: one try */
	p = provider(&fk, -1, 0, NULL);
	before = stat_of(&fk, "requests");
	llm_once(p, NULL, "[case:500]", &g);
	T_EQ_INT(g.err.attempts, 1);
	T_EQ_INT(stat_of(&fk, "requests") - before, 1);
	lh_llm_provider_free(p);
}

static void test_llm_not_retried(void)
{
	lh_llm_provider_t *p = provider(&fk, 3, 0, NULL);
	struct got g;
	long before = stat_of(&fk, "requests");

	llm_once(p, NULL, "[case:quota]", &g);
	T_CHECK(!g.ok);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_AUTH);
	T_CHECK(!g.err.error.retriable);
	T_EQ_INT(g.err.attempts, 1);

	llm_once(p, NULL, "[case:noretry]", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_PROVIDER_DOWN);
	T_CHECK(!g.err.error.retriable);
	T_EQ_INT(g.err.attempts, 1);
	T_EQ_INT(stat_of(&fk, "requests") - before, 2);

	lh_llm_provider_free(p);

	/* a retry-after longer than max_retry_after_ms goes back to the caller at once */
	{
		lh_llm_openai_opts_t o = {.max_retries = 3, .max_retry_after_ms = 1000};
		p = lh_llm_openai_new(http, fk.base_url, NULL, &o, NULL);
	}
	llm_once(p, NULL, "[case:ra-seconds]", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_PROVIDER_DOWN);
	T_CHECK(g.err.error.retriable);
	T_EQ_INT(g.err.retry_after_ms, 2000);
	T_EQ_INT(g.err.attempts, 1);
	lh_llm_provider_free(p);
}

static void test_llm_hang_timeout(void)
{
	lh_llm_provider_t *p = provider(&fk, -1, 300, NULL);
	struct got g;
	long before = stat_of(&fk, "requests");
	double t0 = now_ms();
	llm_once(p, NULL, "[case:hang]", &g);
	T_CHECK(!g.ok);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_TIMEOUT);
	T_EQ_INT(g.err.error.code, LH_ERR_TIMEOUT);
	T_CHECK(g.err.error.retriable);
	T_CHECK(now_ms() - t0 >= 290);
	T_EQ_INT(stat_of(&fk, "requests") - before, 1);
	lh_llm_provider_free(p);

	/* with retries, every try times out */
	p = provider(&fk, 1, 200, NULL);
	before = stat_of(&fk, "requests");
	llm_once(p, NULL, "[case:hang]", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_TIMEOUT);
	T_EQ_INT(g.err.attempts, 2);
	T_EQ_INT(stat_of(&fk, "requests") - before, 2);
	lh_llm_provider_free(p);
}

static void test_llm_truncate_malformed(void)
{
	lh_llm_provider_t *p = provider(&fk, -1, 0, NULL);
	struct got g;
	long before = stat_of(&fk, "truncated");

	llm_once(p, NULL, "[case:truncate]", &g);
	T_CHECK(!g.ok);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_RETRYABLE);
	T_EQ_INT(g.err.error.code, LH_ERR_IO);
	T_CHECK(g.err.error.retriable);
	T_EQ_INT(stat_of(&fk, "truncated") - before, 1);

	llm_once(p, NULL, "[case:malformed]", &g);
	T_CHECK(!g.ok);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_MALFORMED);
	T_EQ_INT(g.err.http_status, 200);
	T_CHECK(g.err.error.retriable);
	lh_llm_provider_free(p);

	/* truncated once, then answered: the retry recovers */
	p = provider(&fk, 2, 0, NULL);
	llm_once(p, NULL, "[case:truncate-once] then fine", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.attempts, 2);
	lh_llm_resp_finish(&g.resp);
	lh_llm_provider_free(p);
}

static void test_llm_auth(void)
{
	lh_llm_provider_t *good = provider(&fk_auth, -1, 0, "sk-test-123");
	lh_llm_provider_t *bad = provider(&fk_auth, 2, 0, "sk-wrong");
	lh_llm_provider_t *none = provider(&fk_auth, 2, 0, NULL);
	struct got g;

	llm_once(good, NULL, "hi", &g);
	T_CHECK(g.ok);
	lh_llm_resp_finish(&g.resp);
	llm_once(bad, NULL, "hi", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_AUTH);
	T_EQ_INT(g.err.http_status, 401);
	T_EQ_INT(g.err.attempts, 1);
	T_CHECK(strstr(g.err.error.msg, "sk-") == NULL);
	llm_once(none, NULL, "hi", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_AUTH);
	lh_llm_provider_free(good);
	lh_llm_provider_free(bad);
	lh_llm_provider_free(none);
}

static void test_llm_cancel(void)
{
	lh_llm_provider_t *p = provider(&fk, 2, 0, NULL);
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "[case:500]"};
	lh_llm_req_t req = {.model = "m", .messages = &msg, .n_messages = 1};
	lh_llm_openai_opts_t slow = {.retry_base_ms = 60000, .retry_cap_ms = 60000};
	struct got g1, g2;
	lh_http_stats_t st;
	uint64_t completed;

	/* cancelled while its HTTP request is in flight */
	memset(&g1, 0, sizeof(g1));
	T_EQ_INT(lh_llm_call(p, &req, on_llm, &g1, NULL), LH_OK);
	p = lh_llm_provider_free(p);
	T_EQ_INT(g1.done, 1);
	T_EQ_INT(g1.err.klass, LH_LLM_ERR_CANCELLED);
	lh_http_stats(http, &st);
	T_EQ_INT(st.in_flight, 0);

	/* cancelled while waiting for a retry: run until the first try has its 500 */
	p = lh_llm_openai_new(http, fk.base_url, NULL, &slow, NULL);
	memset(&g2, 0, sizeof(g2));
	lh_http_stats(http, &st);
	completed = st.completed;
	T_EQ_INT(lh_llm_call(p, &req, on_llm, &g2, NULL), LH_OK);
	while (st.completed == completed && !watchdog_fired) {
		event_base_loop(base, EVLOOP_ONCE);
		lh_http_stats(http, &st);
	}
	T_EQ_INT(g2.done, 0); /* waiting 45..60 s for its retry */
	lh_llm_cancel_all(p);
	T_EQ_INT(g2.done, 1);
	T_EQ_INT(g2.err.klass, LH_LLM_ERR_CANCELLED);
	T_EQ_INT(g2.err.attempts, 1);
	lh_llm_provider_free(p);
}

/* N calls at once against a server answering each after a delay (f's --latency-ms, or 1.5 s
 * through the [case:slow] rule); min_server is how many the server must have seen at once. */
static void concurrent(int n, const fake_t *f, const char *marker, long min_server)
{
	lh_http_t *saved = http;
	lh_llm_provider_t *p;
	struct got *g = calloc((size_t)n, sizeof(*g));
	char (*texts)[64] = calloc((size_t)n, sizeof(*texts));
	int done = 0, ok = 0;
	lh_http_stats_t st;
	double t0, dt;
	long server_max;

	http = lh_http_new(base, NULL, NULL);
	fake_reset(f);
	p = provider(f, -1, 30000, NULL);
	t0 = now_ms();
	for (int i = 0; i < n; i++) {
		lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = texts[i]};
		lh_llm_req_t req = {.model = "m", .messages = &msg, .n_messages = 1};
		snprintf(texts[i], sizeof(texts[i]), "task number %d%s", i, marker);
		T_EQ_INT(lh_llm_call(p, &req, on_llm, &g[i], NULL), LH_OK);
	}
	{
		struct timeval tv = {60, 0};
		watchdog_fired = 0;
		evtimer_add(watchdog, &tv);
	}
	while (done < n && !watchdog_fired) {
		event_base_loop(base, EVLOOP_ONCE);
		done = 0;
		for (int i = 0; i < n; i++)
			done += g[i].done;
	}
	evtimer_del(watchdog);
	dt = now_ms() - t0;
	for (int i = 0; i < n; i++) {
		char want[80];
		snprintf(want, sizeof(want), "Done: task number %d%s", i, marker);
		if (g[i].ok && g[i].resp.content && strcmp(g[i].resp.content, want) == 0)
			ok++;
		else if (!g[i].ok && ok + 5 > i)
			fprintf(stderr, "call %d: %s\n", i, g[i].err.error.msg);
		lh_llm_resp_finish(&g[i].resp);
	}
	T_EQ_INT(ok, n);
	lh_http_stats(http, &st);
	/* the client had them all in flight at once; the server saw them overlap (a serial client
	 * would show 1; how many arrive before the first answer leaves depends on the machine) */
	T_EQ_INT(st.max_in_flight, n);
	server_max = stat_of(f, "max_in_flight");
	T_CHECK(server_max >= min_server);
	T_EQ_INT(stat_of(f, "requests"), n);
	fprintf(stderr, "  %d concurrent calls: %.0f ms wall, %.1f calls/s, server saw %ld at once\n",
		n, dt, n * 1000.0 / dt, server_max);
	lh_llm_provider_free(p);
	http = lh_http_free(http);
	http = saved;
	free(g);
	free(texts);
}

static void test_llm_50_concurrent(void) { concurrent(50, &fk_slow, "", 40); }
static void test_llm_1000_concurrent(void) { concurrent(1000, &fk, " [case:slow]", 900); }

int main(int argc, char **argv)
{
	int fd, rc;
	struct rlimit rl;

	if (argc < 2) {
		fprintf(stderr, "usage: test_http PATH_TO_FAKELLM\n");
		return 2;
	}
	fakellm_path = argv[1];
	signal(SIGPIPE, SIG_IGN);
	/* 1,000 connections in each direction */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	fd = mkstemp(script_path);
	if (fd < 0 || write(fd, script, strlen(script)) != (ssize_t)strlen(script)) {
		perror("script");
		return 1;
	}
	close(fd);
	if (!fake_start(&fk, "--script", script_path) ||
	    !fake_start(&fk_slow, "--latency-ms", "200") ||
	    !fake_start(&fk_auth, "--api-key", "sk-test-123")) {
		unlink(script_path);
		return 1;
	}
	base = event_base_new();
	watchdog = evtimer_new(base, on_watchdog, NULL);
	http = lh_http_new(base, NULL, NULL);

	T_RUN(test_http_get);
	T_RUN(test_http_retry_after_headers);
	T_RUN(test_http_too_large);
	T_RUN(test_http_connect_refused);
	T_RUN(test_http_first_byte_timeout);
	T_RUN(test_http_cancel);
	T_RUN(test_fakellm_bad_requests);
	T_RUN(test_llm_success);
	T_RUN(test_llm_call_from_callback);
	T_RUN(test_llm_tools_and_length);
	T_RUN(test_llm_429_then_success);
	T_RUN(test_llm_500_exhausts_retries);
	T_RUN(test_llm_not_retried);
	T_RUN(test_llm_hang_timeout);
	T_RUN(test_llm_truncate_malformed);
	T_RUN(test_llm_auth);
	T_RUN(test_llm_cancel);
	T_RUN(test_llm_50_concurrent);
	if (!getenv("LH_TEST_QUICK"))
		T_RUN(test_llm_1000_concurrent);

	lh_http_free(http);
	event_free(watchdog);
	event_base_free(base);
	/* fakellm must shut down cleanly even with hung requests pending */
	rc = fake_stop(&fk);
	if (rc != 0)
		fprintf(stderr, "FAIL fakellm exit status %d\n", rc);
	t_failed += rc != 0;
	t_failed += fake_stop(&fk_slow) != 0;
	t_failed += fake_stop(&fk_auth) != 0;
	unlink(script_path);
	return t_done();
}
