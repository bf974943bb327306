/* llm_http.c — the call machinery of the HTTP model providers (llm_http_int.h): the list of
 * pending calls, one HTTP try at a time, retries on an event timer, cancellation, and the
 * provider's construction and free. What differs between APIs comes from lh_llm_http_api_t. */
#include "llm_http_int.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "log.h"

#define DEFAULT_TIMEOUT_MS 600000L
#define DEFAULT_MAX_RETRY_AFTER_MS 60000L
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)16 << 20)
#define MAX_EXTRA_HEADERS 16 /* sent per request; later ones are ignored */

typedef struct llm_http llm_http_t;

struct call {
	llm_http_t *lp;
	lh_llm_done_cb cb;
	void *opaque;
	char *body;
	size_t body_len;
	char *answer_tool; /* the response schema's name when api->answer_by_tool, else NULL */
	long timeout_ms;
	int attempts;
	bool in_http;
	uint64_t http_id;
	struct event *retry_timer;
	struct timespec start;
	struct call *prev, *next;
};

/* What a request's "tools" were made of: the definitions a worker offers do not change, so
 * their JSON text is made once and reused. Names and descriptions are compared by content,
 * schemas by identity (the key holds a reference to each, so an address cannot be reused by
 * another schema while it is cached; a schema changed in place is not noticed: callers do not
 * change definitions they pass). */
#define TOOLS_KEY_MAX 16
typedef struct tools_key {
	size_t n;
	char *text[TOOLS_KEY_MAX * 2 + 1]; /* names, descriptions, the answer tool's name */
	json_t *schema[TOOLS_KEY_MAX + 1]; /* referenced */
	bool strict[TOOLS_KEY_MAX];
} tools_key_t;

struct llm_http {
	lh_llm_provider_t base; /* first: the vtable pointer (to ops below) */
	lh_llm_provider_ops_t ops;
	const lh_llm_http_api_t *api;
	lh_http_t *http;
	struct event_base *evb;
	char *url;
	char *key_header; /* the api key's header line or NULL; never logged, zeroed on free */
	char **extra_headers;
	size_t n_extra_headers;
	lh_llm_openai_opts_t opts;
	uint64_t jitter_state;
	struct call *calls;
	tools_key_t tools_key; /* what tools_text was serialized from */
	char *tools_text;      /* the last "tools" array, compact JSON; NULL = none cached */
};

static void call_link(llm_http_t *lp, struct call *c)
{
	c->prev = NULL;
	c->next = lp->calls;
	if (lp->calls)
		lp->calls->prev = c;
	lp->calls = c;
}

static void call_unlink(llm_http_t *lp, struct call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		lp->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static double ms_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1000.0 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void call_free(struct call *c)
{
	if (c->retry_timer)
		event_free(c->retry_timer);
	free(c->body);
	free(c->answer_tool);
	free(c);
}

/* The call ends: unlinked first, so the callback may start calls or free the provider. */
static void call_fail(struct call *c, lh_llm_error_t *e)
{
	call_unlink(c->lp, c);
	e->attempts = c->attempts;
	c->cb(NULL, e, c->opaque);
	call_free(c);
}

static void call_succeed(struct call *c, lh_llm_resp_t *r)
{
	call_unlink(c->lp, c);
	r->attempts = c->attempts;
	r->latency_ms = ms_since(&c->start);
	c->cb(r, NULL, c->opaque);
	lh_llm_resp_finish(r);
	call_free(c);
}

static void http_done(lh_http_resp_t *resp, void *opaque);

static lh_err_t start_try(struct call *c, lh_error_t *err)
{
	llm_http_t *lp = c->lp;
	const char *headers[4 + MAX_EXTRA_HEADERS];
	size_t nh = 0;
	lh_http_req_t hreq;

	headers[nh++] = "Content-Type: application/json";
	headers[nh++] = "Accept: application/json";
	if (lp->api->fixed_header)
		headers[nh++] = lp->api->fixed_header;
	if (lp->key_header)
		headers[nh++] = lp->key_header;
	for (size_t i = 0; i < lp->n_extra_headers && i < MAX_EXTRA_HEADERS; i++)
		headers[nh++] = lp->extra_headers[i];
	memset(&hreq, 0, sizeof(hreq));
	hreq.method = "POST";
	hreq.url = lp->url;
	hreq.headers = headers;
	hreq.n_headers = nh;
	hreq.body = c->body;
	hreq.body_len = c->body_len;
	hreq.body_borrowed = true; /* c->body lives until the call ends, after its last try */
	hreq.connect_timeout_ms = lp->opts.connect_timeout_ms;
	hreq.first_byte_timeout_ms = lp->opts.first_byte_timeout_ms;
	hreq.total_timeout_ms = c->timeout_ms;
	hreq.max_response_bytes = lp->opts.max_response_bytes;
	if (lh_http_request(lp->http, &hreq, http_done, c, &c->http_id, err) != LH_OK)
		return err ? err->code : LH_ERR_HTTP;
	c->in_http = true;
	return LH_OK;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;
	lh_llm_error_t e;

	memset(&e, 0, sizeof(e));
	if (start_try(c, &e.error) != LH_OK) {
		e.klass = e.error.code == LH_ERR_STATE ? LH_LLM_ERR_CANCELLED : LH_LLM_ERR_RETRYABLE;
		e.retry_after_ms = -1;
		call_fail(c, &e);
	}
}

/* Retry c after e if the rule allows; returns true when a retry is scheduled. */
static bool maybe_retry(struct call *c, const lh_llm_error_t *e)
{
	llm_http_t *lp = c->lp;
	long delay;
	struct timeval tv;

	if (!e->error.retriable || c->attempts > lp->opts.max_retries)
		return false;
	if (e->retry_after_ms > lp->opts.max_retry_after_ms)
		return false; /* the caller decides (and can schedule a durable retry) */
	delay = lh_llm_retry_delay_ms(c->attempts - 1, e->retry_after_ms, lp->jitter_state++,
				      lp->opts.retry_base_ms, lp->opts.retry_cap_ms);
	if (!c->retry_timer) {
		c->retry_timer = evtimer_new(lp->evb, retry_cb, c);
		if (!c->retry_timer)
			return false;
	}
	if (lh_log_debug_on(LH_DBG_HTTP)) {
		char sb[24], db[24], ab[24];
		lh_log(LH_LOG_DEBUG, "llm.retry", e->error.msg, "provider", lp->api->name, "class",
		       lh_llm_errclass_name(e->klass), "status", lh_log_i64(sb, e->http_status),
		       "delay_ms", lh_log_i64(db, delay), "attempt", lh_log_i64(ab, c->attempts),
		       (char *)NULL);
	}
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(c->retry_timer, &tv);
	return true;
}

void lh_llm_http_status_error(lh_llm_error_t *ret_err, const char *what, long status,
			      lh_llm_errclass_t klass, bool retry, const char *should_retry,
			      long retry_after_ms, const char *detail)
{
	lh_err_t ec = LH_ERR_HTTP;

	if (should_retry && strcmp(should_retry, "true") == 0)
		retry = true;
	else if (should_retry && strcmp(should_retry, "false") == 0)
		retry = false;
	switch (klass) {
	case LH_LLM_ERR_TIMEOUT:
		ec = LH_ERR_TIMEOUT;
		break;
	case LH_LLM_ERR_PROVIDER_DOWN:
		ec = LH_ERR_UNAVAILABLE;
		break;
	case LH_LLM_ERR_TOO_LARGE:
		ec = LH_ERR_TOO_LARGE;
		break;
	default:
		break;
	}
	memset(ret_err, 0, sizeof(*ret_err));
	ret_err->klass = klass;
	ret_err->http_status = status;
	ret_err->retry_after_ms = retry_after_ms;
	lh_error_set(&ret_err->error, ec, "%s failed with http status %ld%s%s", what, status,
		     detail[0] ? ": " : "", detail);
	ret_err->error.retriable = retry;
}

/* An HTTP transport error (no answer, or one over the cap) as an lh_llm_error_t. */
static void transport_error(const lh_http_resp_t *resp, lh_llm_error_t *e)
{
	memset(e, 0, sizeof(*e));
	e->error = resp->error;
	e->http_status = resp->status;
	e->retry_after_ms = -1;
	switch (resp->error.code) {
	case LH_ERR_TIMEOUT:
		e->klass = LH_LLM_ERR_TIMEOUT;
		break;
	case LH_ERR_UNAVAILABLE:
		e->klass = resp->cancelled ? LH_LLM_ERR_CANCELLED : LH_LLM_ERR_PROVIDER_DOWN;
		break;
	case LH_ERR_TOO_LARGE:
		e->klass = LH_LLM_ERR_TOO_LARGE;
		break;
	case LH_ERR_INVALID:
		e->klass = LH_LLM_ERR_INVALID_REQUEST;
		break;
	default:
		e->klass = LH_LLM_ERR_RETRYABLE;
		break;
	}
	if (resp->cancelled)
		e->error.retriable = false;
}

static const char *resp_header(void *ctx, const char *name)
{
	return lh_http_resp_header(ctx, name);
}

static void http_done(lh_http_resp_t *resp, void *opaque)
{
	struct call *c = opaque;
	const lh_llm_http_api_t *api = c->lp->api;
	lh_llm_error_t e;
	lh_llm_resp_t r;
	lh_llm_ratelimit_t rl = {0};
	struct timespec now;

	c->in_http = false;
	c->attempts++;
	if (resp->status > 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		lh_llm_ratelimit_read(&rl, resp_header, resp,
				      (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	}
	if (resp->error.code != LH_OK) {
		transport_error(resp, &e);
	} else if (resp->status >= 200 && resp->status < 300) {
		if (api->parse(resp->body.data, resp->body.len, c->answer_tool, &r, &e) == LH_OK) {
			r.ratelimit = rl;
			call_succeed(c, &r);
			return;
		}
		e.http_status = resp->status;
	} else {
		api->map_error(resp->status, resp->body.data, resp->body.len,
			       lh_http_resp_header(resp, "x-should-retry"), resp->retry_after_ms,
			       &e);
	}
	e.ratelimit = rl;
	if (maybe_retry(c, &e))
		return;
	call_fail(c, &e);
}

static void tools_key_clear(tools_key_t *k)
{
	for (size_t i = 0; i < sizeof(k->text) / sizeof(k->text[0]); i++)
		free(k->text[i]);
	for (size_t i = 0; i < sizeof(k->schema) / sizeof(k->schema[0]); i++)
		json_decref(k->schema[i]);
	memset(k, 0, sizeof(*k));
}

static bool same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Does the cached key describe req's tools (and the answer tool a response schema becomes)? */
static bool tools_key_matches(const llm_http_t *lp, const lh_llm_req_t *req)
{
	const tools_key_t *k = &lp->tools_key;
	bool answer = lp->api->answer_by_tool && req->response_schema;
	if (!lp->tools_text || k->n != req->n_tools)
		return false;
	for (size_t i = 0; i < req->n_tools; i++)
		if (!same_text(k->text[2 * i], req->tools[i].name) ||
		    !same_text(k->text[2 * i + 1], req->tools[i].description) ||
		    k->schema[i] != req->tools[i].parameters || k->strict[i] != req->tools[i].strict)
			return false;
	if (answer != (k->schema[TOOLS_KEY_MAX] != NULL))
		return false;
	return !answer || (k->schema[TOOLS_KEY_MAX] == req->response_schema->schema &&
			   same_text(k->text[TOOLS_KEY_MAX * 2], req->response_schema->name));
}

static void tools_key_set(llm_http_t *lp, const lh_llm_req_t *req)
{
	tools_key_t *k = &lp->tools_key;
	tools_key_clear(k);
	k->n = req->n_tools;
	for (size_t i = 0; i < req->n_tools; i++) {
		k->text[2 * i] = req->tools[i].name ? strdup(req->tools[i].name) : NULL;
		k->text[2 * i + 1] =
			req->tools[i].description ? strdup(req->tools[i].description) : NULL;
		k->schema[i] = json_incref(req->tools[i].parameters);
		k->strict[i] = req->tools[i].strict;
	}
	if (lp->api->answer_by_tool && req->response_schema) {
		k->text[TOOLS_KEY_MAX * 2] = strdup(req->response_schema->name);
		k->schema[TOOLS_KEY_MAX] = json_incref(req->response_schema->schema);
	}
}

/* body as compact JSON text (new), or NULL. Its "tools" array comes from the provider's cache
 * when the request offers the same definitions as the one it was made for: serializing the
 * schemas was most of the cost of a call with tools. */
static char *body_text(llm_http_t *lp, const lh_llm_req_t *req, json_t *body)
{
	json_t *tools = json_object_get(body, "tools");
	char *rest, *out;
	size_t rn, tn;
	if (!tools || req->n_tools > TOOLS_KEY_MAX)
		return json_dumps(body, JSON_COMPACT);
	if (!tools_key_matches(lp, req)) {
		free(lp->tools_text);
		lp->tools_text = json_dumps(tools, JSON_COMPACT);
		if (!lp->tools_text) {
			tools_key_clear(&lp->tools_key);
			return NULL;
		}
		tools_key_set(lp, req);
	}
	json_object_del(body, "tools");
	rest = json_dumps(body, JSON_COMPACT);
	if (!rest)
		return NULL;
	rn = strlen(rest);
	tn = strlen(lp->tools_text);
	out = rn >= 2 && rest[rn - 1] == '}' ? malloc(rn + tn + 16) : NULL;
	if (out) {
		/* "{...}" -> "{...,"tools":[...]}" ("{}" -> "{"tools":[...]}") */
		size_t o = rn - 1;
		memcpy(out, rest, o);
		if (rn > 2)
			out[o++] = ',';
		memcpy(out + o, "\"tools\":", 8);
		o += 8;
		memcpy(out + o, lp->tools_text, tn);
		o += tn;
		out[o++] = '}';
		out[o] = '\0';
	}
	free(rest);
	return out;
}

static lh_err_t llm_http_call(lh_llm_provider_t *p, const lh_llm_req_t *req, lh_llm_done_cb cb,
			      void *opaque, lh_error_t *err)
{
	llm_http_t *lp = (llm_http_t *)p;
	struct call *c;
	json_t *body;
	lh_err_t rc;
	bool want_tool;

	body = lp->api->build_body(req, err);
	if (!body)
		return err ? err->code : LH_ERR_INVALID;
	c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(body);
		return lh_error_set(err, LH_ERR_NOMEM, "could not call llm: out of memory");
	}
	c->lp = lp;
	c->cb = cb;
	c->opaque = opaque;
	c->body = body_text(lp, req, body);
	json_decref(body);
	want_tool = lp->api->answer_by_tool && req->response_schema;
	if (want_tool)
		c->answer_tool = strdup(req->response_schema->name);
	if (!c->body || (want_tool && !c->answer_tool)) {
		call_free(c);
		return lh_error_set(err, LH_ERR_NOMEM, "could not call llm: out of memory");
	}
	c->body_len = strlen(c->body);
	c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : lp->opts.timeout_ms;
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	rc = start_try(c, err);
	if (rc != LH_OK) {
		call_free(c);
		return rc;
	}
	call_link(lp, c);
	return LH_OK;
}

static void llm_http_cancel_all(lh_llm_provider_t *p)
{
	llm_http_t *lp = (llm_http_t *)p;
	while (lp->calls) {
		struct call *c = lp->calls;
		lh_llm_error_t e;
		if (c->in_http) {
			/* http_done runs inside and ends the call as cancelled */
			if (lh_http_cancel(lp->http, c->http_id) == LH_OK)
				continue;
		}
		memset(&e, 0, sizeof(e));
		e.klass = LH_LLM_ERR_CANCELLED;
		e.retry_after_ms = -1;
		lh_error_set(&e.error, LH_ERR_UNAVAILABLE, "could not complete %s: call cancelled",
			     lp->api->what);
		call_fail(c, &e);
	}
}

static void llm_http_free(lh_llm_provider_t *p)
{
	llm_http_t *lp = (llm_http_t *)p;
	llm_http_cancel_all(p);
	for (size_t i = 0; i < lp->n_extra_headers; i++)
		free(lp->extra_headers[i]);
	free(lp->extra_headers);
	free(lp->tools_text);
	tools_key_clear(&lp->tools_key);
	if (lp->key_header) {
		explicit_bzero(lp->key_header, strlen(lp->key_header));
		free(lp->key_header);
	}
	free(lp->url);
	free(lp);
}

/* opts with the defaults filled in; extra_headers are not kept (the provider copies them). */
static void opts_resolve(lh_llm_openai_opts_t *o, const lh_llm_openai_opts_t *opts)
{
	if (opts)
		*o = *opts;
	o->extra_headers = NULL;
	o->n_extra_headers = 0;
	if (o->max_retries == 0)
		o->max_retries = 2;
	else if (o->max_retries < 0)
		o->max_retries = 0;
	if (o->timeout_ms <= 0)
		o->timeout_ms = DEFAULT_TIMEOUT_MS;
	if (o->max_retry_after_ms <= 0)
		o->max_retry_after_ms = DEFAULT_MAX_RETRY_AFTER_MS;
	if (o->max_response_bytes == 0)
		o->max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES;
}

lh_llm_provider_t *lh_llm_http_new(const lh_llm_http_api_t *api, lh_http_t *http,
				   const char *base_url, const char *api_key,
				   const lh_llm_openai_opts_t *opts, lh_error_t *err)
{
	llm_http_t *lp;
	size_t n;
	struct timespec ts;

	if (!http || !base_url || !*base_url) {
		lh_error_set(err, LH_ERR_INVALID, "could not create %s provider: %s", api->name,
			     !http ? "no http client" : "no base url");
		return NULL;
	}
	if (api_key && strpbrk(api_key, "\r\n")) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not create %s provider: api key contains a line break",
			     api->name);
		return NULL;
	}
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		goto out_nomem;
	lp->ops.name = api->name;
	lp->ops.call = llm_http_call;
	lp->ops.cancel_all = llm_http_cancel_all;
	lp->ops.free = llm_http_free;
	lp->base.ops = &lp->ops;
	lp->api = api;
	lp->http = http;
	lp->evb = lh_http_base(http);
	opts_resolve(&lp->opts, opts);
	clock_gettime(CLOCK_REALTIME, &ts);
	lp->jitter_state = lp->opts.jitter_seed
				   ? lp->opts.jitter_seed
				   : ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
					     (uint64_t)(uintptr_t)lp;

	n = strlen(base_url);
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	lp->url = malloc(n + strlen(api->path) + 1);
	if (!lp->url)
		goto out_lp;
	memcpy(lp->url, base_url, n);
	strcpy(lp->url + n, api->path);
	if (api_key && *api_key && asprintf(&lp->key_header, api->key_header, api_key) < 0) {
		lp->key_header = NULL;
		goto out_lp;
	}
	if (opts && opts->n_extra_headers) {
		lp->extra_headers = calloc(opts->n_extra_headers, sizeof(char *));
		if (!lp->extra_headers)
			goto out_lp;
		for (size_t i = 0; i < opts->n_extra_headers; i++) {
			lp->extra_headers[i] = strdup(opts->extra_headers[i]);
			if (!lp->extra_headers[i])
				goto out_lp;
			lp->n_extra_headers = i + 1;
		}
	}
	return &lp->base;

out_lp:
	llm_http_free(&lp->base);
out_nomem:
	lh_error_set(err, LH_ERR_NOMEM, "could not create %s provider: out of memory", api->name);
	return NULL;
}
