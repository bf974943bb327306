/* 0019-webhooks: lh-gateway's notifier and approval links. A receiver in this process (evhttp on
 * its own thread) records every webhook. A plan pauses at its budget; the receiver gets one
 * approval webhook, signed (HMAC-SHA256 checked here), with an approve and a reject link, after
 * a notification.queued event in the log. GET the approve link: the plan completes; GET it
 * again: 409; a tampered token: 403. plan.completed is notified too. A second target answers
 * 500 to the first two tries of each notification: it gets the approval on the third try, under
 * the same notification id. */
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stack.h"
#include "t.h"

#define SECRET "0019-webhook-secret"
#define MAX_HOOKS 64

typedef struct hook {
	char path[16];
	char *body;
	char sig[96];
	char nid[64];
	int status; /* what the receiver answered */
} hook_t;

static ts_stack_t ts;
static char plan[40];
static int port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static hook_t hooks[MAX_HOOKS];
static int nhooks;
static struct event_base *rbase;
static char approve_url[1024], reject_url[1024];

static void on_hook(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *path = evhttp_request_get_uri(req), *v;
	size_t len = evbuffer_get_length(in);
	int status = 200;
	pthread_mutex_lock(&mu);
	if (strcmp(path, "/flaky") == 0) {
		/* the first two tries of each notification fail */
		int seen = 0;
		v = evhttp_find_header(h, "X-Longhaul-Notification-Id");
		for (int i = 0; i < nhooks; i++)
			seen += !strcmp(hooks[i].path, "/flaky") && v && !strcmp(hooks[i].nid, v);
		if (seen < 2)
			status = 500;
	}
	if (nhooks < MAX_HOOKS) {
		hook_t *k = &hooks[nhooks++];
		snprintf(k->path, sizeof(k->path), "%s", path);
		k->body = calloc(1, len + 1);
		evbuffer_copyout(in, k->body, len);
		snprintf(k->sig, sizeof(k->sig), "%s",
			 (v = evhttp_find_header(h, "X-Longhaul-Signature")) ? v : "");
		snprintf(k->nid, sizeof(k->nid), "%s",
			 (v = evhttp_find_header(h, "X-Longhaul-Notification-Id")) ? v : "");
		k->status = status;
	}
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Internal Server Error", NULL);
}

static void *receiver(void *arg)
{
	event_base_dispatch(rbase);
	return NULL;
}

/* Index of the first hook on path whose body holds needle and answered status, waiting up to
 * ms; -1 when none came. */
static int wait_hook(const char *path, const char *needle, int status, int ms)
{
	struct timespec dl;
	int found = -1;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	pthread_mutex_lock(&mu);
	for (;;) {
		for (int i = 0; i < nhooks && found < 0; i++)
			if (!strcmp(hooks[i].path, path) && strstr(hooks[i].body, needle) &&
			    hooks[i].status == status)
				found = i;
		if (found >= 0 || pthread_cond_timedwait(&cv, &mu, &dl))
			break;
	}
	pthread_mutex_unlock(&mu);
	return found;
}

static size_t keep(char *p, size_t size, size_t n, void *arg)
{
	strncat(arg, p, size * n < 2000 ? size * n : 2000);
	return size * n;
}

/* GET a gateway link (its public base replaced by the gateway's real address). */
static long get_link(const char *link, char *body /* [4096] */)
{
	const char *p = strstr(link, "/v1/links/");
	char url[1200];
	long status = 0;
	CURL *c = curl_easy_init();
	body[0] = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, p ? p : "/nowhere");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static int gateway_port(void) { return ts_gateway_port(&ts, "gateway"); }

static bool signature_ok(const hook_t *k)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char hex[80] = "sha256=";
	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)k->body,
	     strlen(k->body), mac, &n);
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 7 + 2 * i, 3, "%02x", mac[i]);
	return n == 32 && strcmp(hex, k->sig) == 0;
}

static const char *str_or(const json_t *j)
{
	return json_is_string(j) ? json_string_value(j) : "";
}

static void t_approval_webhook(void)
{
	lh_budget_t b = {.tokens = 700}; /* the scripted diamond needs about 900 */
	lh_id_t id = ts_submit_with(&ts, "Plan a weekend in Porto", &b, NULL);
	json_t *j, *el;
	int i, n = 0;
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	i = wait_hook("/main", "needs an approval", 200, 90000);
	T_CHECK(i >= 0);
	if (i < 0)
		return;
	T_CHECK(strstr(hooks[i].body, plan) != NULL);
	T_CHECK(signature_ok(&hooks[i]));
	T_EQ_INT((int)strlen(hooks[i].nid), 32);
	j = json_loads(hooks[i].body, 0, NULL);
	T_CHECK(json_is_string(json_object_get(j, "text")));
	el = json_object_get(json_array_get(json_object_get(j, "blocks"), 1), "elements");
	T_EQ_INT((int)json_array_size(el), 2);
	snprintf(approve_url, sizeof(approve_url), "%s",
		 str_or(json_object_get(json_array_get(el, 0), "url")));
	snprintf(reject_url, sizeof(reject_url), "%s",
		 str_or(json_object_get(json_array_get(el, 1), "url")));
	json_decref(j);
	T_CHECK(strncmp(approve_url, "http://gw.example/v1/links/", 27) == 0);
	T_CHECK(strncmp(reject_url, "http://gw.example/v1/links/", 27) == 0);
	T_CHECK(strcmp(approve_url, reject_url) != 0);
	/* the record came first: it is in the log (the receiver saw the POST after its ack) */
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT count(*) > 0 FROM events WHERE plan_id = $1 AND type = "
			    "'notification.queued'",
			    plan, "t"));
	pthread_mutex_lock(&mu);
	for (int k = 0; k < nhooks; k++)
		n += !strcmp(hooks[k].path, "/main") && strstr(hooks[k].body, "needs an approval");
	pthread_mutex_unlock(&mu);
	T_EQ_INT(n, 1);
}

static void t_links(void)
{
	char body[4096], bad[1024];
	size_t len = strlen(approve_url);
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", plan), "paused");
	/* tampered: one digit of the signature changed */
	snprintf(bad, sizeof(bad), "%s", approve_url);
	if (len)
		bad[len - 1] = bad[len - 1] == '0' ? '1' : '0';
	T_EQ_INT(get_link(bad, body), 403);
	T_CHECK(strstr(body, "\"error\"") != NULL);
	/* tampered: the decision changed, the signature kept */
	snprintf(bad, sizeof(bad), "%s", approve_url);
	{
		char *p = strstr(bad, ".approve.");
		if (p)
			memcpy(p, ".reject..", 9);
	}
	T_EQ_INT(get_link(bad, body), 403);
	T_EQ_INT(get_link(approve_url, body), 200);
	T_CHECK(strstr(body, "Approved") != NULL);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status || ':' || responder_type || ':' || responder_id FROM "
			 "input_requests WHERE plan_id = $1",
			 plan),
		 "approved:human:link");
	T_EQ_INT(get_link(approve_url, body), 409);
	T_EQ_INT(get_link(reject_url, body), 409);
}

/* A link clicked before the materializer folded its request (the notifier reads the log, not
 * PostgreSQL): the answer is appended anyway, to be kept by the coordinator, not refused. */
static void t_link_before_fold(void)
{
	char token[1024], sig[80] = "", hexrid[64] = "", hexten[32] = "", body[4096];
	const char *rid = "early:0019", *ten = "default";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	for (size_t i = 0; rid[i]; i++)
		snprintf(hexrid + 2 * i, 3, "%02x", (unsigned char)rid[i]);
	for (size_t i = 0; ten[i]; i++)
		snprintf(hexten + 2 * i, 3, "%02x", (unsigned char)ten[i]);
	snprintf(token, sizeof(token), "v1.%s.%s.%s.approve.%lld.", plan, hexrid, hexten,
		 (long long)time(NULL) + 3600);
	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)token,
	     strlen(token), mac, &n);
	for (unsigned int i = 0; i < n; i++)
		snprintf(sig + 2 * i, 3, "%02x", mac[i]);
	strncat(token, ".", sizeof(token) - strlen(token) - 1);
	strncat(token, sig, sizeof(token) - strlen(token) - 1);
	/* the token's signed part ends with the empty budget field: "...EXPIRY." + "." + HMAC */
	{
		char link[1200];
		snprintf(link, sizeof(link), "http://x/v1/links/%s", token);
		T_EQ_STR(ts_sql1(&ts,
				 "SELECT count(*) FROM input_requests WHERE plan_id = $1 AND "
				 "request_id = 'early:0019'",
				 plan),
			 "0");
		T_EQ_INT(get_link(link, body), 200);
		T_EQ_INT(get_link(link, body), 200); /* the same click again: nothing new */
	}
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT count(*) FROM events WHERE plan_id = $1 AND type = "
			    "'approval.decided' AND body->>'request_id' = 'early:0019'",
			    plan, "1"));
}

static void t_completed_webhook(void)
{
	char needle[80];
	snprintf(needle, sizeof(needle), "Plan %s completed", plan);
	T_CHECK(wait_hook("/main", needle, 200, 60000) >= 0);
}

static void t_retried_until_delivered(void)
{
	int ok = wait_hook("/flaky", "needs an approval", 200, 60000), tries = 0, fails = 0;
	T_CHECK(ok >= 0);
	if (ok < 0)
		return;
	pthread_mutex_lock(&mu);
	for (int k = 0; k < nhooks; k++)
		if (!strcmp(hooks[k].path, "/flaky") && !strcmp(hooks[k].nid, hooks[ok].nid)) {
			tries++;
			fails += hooks[k].status == 500;
		}
	pthread_mutex_unlock(&mu);
	T_EQ_INT(tries, 3);
	T_EQ_INT(fails, 2);
	T_CHECK(signature_ok(&hooks[ok]));
}

int main(int argc, char **argv)
{
	struct evhttp *rh;
	struct evhttp_bound_socket *sock;
	struct sockaddr_in sa;
	ev_socklen_t sl = sizeof(sa);
	pthread_t th;
	char urls[256];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	evthread_use_pthreads(); /* the main thread stops the receiver's loop */
	rbase = event_base_new();
	rh = evhttp_new(rbase);
	evhttp_set_gencb(rh, on_hook, NULL);
	sock = evhttp_bind_socket_with_handle(rh, "127.0.0.1", 0);
	T_CHECK(sock != NULL);
	if (!sock) {
		ts_finish(&ts);
		return t_done();
	}
	getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sa, &sl);
	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d/main,http://127.0.0.1:%d/flaky",
		 ntohs(sa.sin_port), ntohs(sa.sin_port));
	pthread_create(&th, NULL, receiver, NULL);
	setenv("LH_WEBHOOK_SECRET", SECRET, 1);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	ts_spawn(&ts, "gateway", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0",
		 "--no-auth", "--webhook-url", urls, "--public-url", "http://gw.example",
		 "--webhook-backoff-ms", "100", "--webhook-attempts", "4", NULL);
	port = gateway_port();
	T_CHECK(port > 0);
	T_RUN(t_approval_webhook);
	T_RUN(t_links);
	T_RUN(t_link_before_fold);
	T_RUN(t_completed_webhook);
	T_RUN(t_retried_until_delivered);
	ts_finish(&ts);
	event_base_loopbreak(rbase);
	pthread_join(th, NULL);
	evhttp_free(rh);
	event_base_free(rbase);
	for (int k = 0; k < nhooks; k++)
		free(hooks[k].body);
	return t_done();
}
