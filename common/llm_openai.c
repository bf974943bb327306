/* llm_openai.c — OpenAI Chat Completions (and compatible servers: vLLM, llama.cpp, Ollama,
 * OpenRouter) over lh_http_t.
 *
 * A call serializes the request once, POSTs it to {base_url}/chat/completions, classifies the
 * answer and retries retryable failures on an event timer following the official SDKs' rule
 * (x-should-retry, then 408/409/429/5xx and connection errors; retry-after-ms / retry-after, else
 * exponential backoff with jitter). The API key is kept only in the prebuilt Authorization
 * header line and never logged. */
#include "llm.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "log.h"

#define DEFAULT_TIMEOUT_MS 600000L
#define DEFAULT_MAX_RETRY_AFTER_MS 60000L
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)16 << 20)
#define PROVIDER_MSG_MAX 300

typedef struct openai openai_t;

struct call {
	openai_t *oa;
	lh_llm_done_cb cb;
	void *opaque;
	char *body;
	size_t body_len;
	long timeout_ms;
	int attempts;
	bool in_http;
	uint64_t http_id;
	struct event *retry_timer;
	struct timespec start;
	struct call *prev, *next;
};

struct openai {
	lh_llm_provider_t base; /* first: the vtable pointer */
	lh_http_t *http;
	struct event_base *evb;
	char *url;
	char *auth_header; /* "Authorization: Bearer …" or NULL; never logged */
	char **extra_headers;
	size_t n_extra_headers;
	lh_llm_openai_opts_t opts;
	uint64_t jitter_state;
	struct call *calls;
};

/* ---- request body ------------------------------------------------------------------------ */

static json_t *tool_call_json(const lh_llm_tool_call_t *tc, lh_error_t *err)
{
	json_t *args;
	if (!tc->id || !tc->name) {
		lh_error_set(err, LH_ERR_INVALID, "could not build chat request: tool call without %s",
			     !tc->id ? "id" : "name");
		return NULL;
	}
	if (tc->arguments_json) {
		args = json_string(tc->arguments_json);
	} else if (tc->arguments) {
		char *s = json_dumps(tc->arguments, JSON_COMPACT | JSON_ENCODE_ANY);
		args = s ? json_string(s) : NULL;
		free(s);
	} else {
		args = json_string("{}");
	}
	if (!args) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build chat request: tool call arguments are not valid UTF-8");
		return NULL;
	}
	return json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", tc->id, "type", "function", "function",
			 "name", tc->name, "arguments", args);
}

static json_t *message_json(const lh_llm_message_t *m, size_t i, lh_error_t *err)
{
	json_t *msg, *calls;
	const char *role = lh_llm_role_name(m->role);

	if (m->role == LH_LLM_ROLE_ASSISTANT) {
		if (!m->content && m->n_tool_calls == 0) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: message %zu is empty", i);
			return NULL;
		}
		msg = json_pack("{s:s, s:o}", "role", role,
				"content", m->content ? json_string(m->content) : json_null());
		if (!msg)
			goto out_utf8;
		if (m->n_tool_calls == 0)
			return msg;
		calls = json_array();
		json_object_set_new(msg, "tool_calls", calls);
		for (size_t k = 0; k < m->n_tool_calls; k++) {
			json_t *tc = tool_call_json(&m->tool_calls[k], err);
			if (!tc) {
				json_decref(msg);
				return NULL;
			}
			json_array_append_new(calls, tc);
		}
		return msg;
	}
	if (!m->content) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build chat request: message %zu (%s) has no content", i, role);
		return NULL;
	}
	if (m->role == LH_LLM_ROLE_TOOL) {
		if (!m->tool_call_id) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: tool message %zu has no tool_call_id",
				     i);
			return NULL;
		}
		msg = json_pack("{s:s, s:s, s:s}", "role", role, "tool_call_id", m->tool_call_id,
				"content", m->content);
	} else {
		msg = json_pack("{s:s, s:s}", "role", role, "content", m->content);
	}
	if (msg)
		return msg;
out_utf8:
	lh_error_set(err, LH_ERR_INVALID,
		     "could not build chat request: message %zu is not valid UTF-8", i);
	return NULL;
}

static json_t *tool_json(const lh_llm_tool_t *t, size_t i, lh_error_t *err)
{
	json_t *fn;
	if (!t->name || !*t->name) {
		lh_error_set(err, LH_ERR_INVALID, "could not build chat request: tool %zu has no name",
			     i);
		return NULL;
	}
	fn = json_pack("{s:s}", "name", t->name);
	if (!fn)
		goto out_utf8;
	if (t->description) {
		json_t *d = json_string(t->description);
		if (!d) {
			json_decref(fn);
			goto out_utf8;
		}
		json_object_set_new(fn, "description", d);
	}
	json_object_set_new(fn, "parameters",
			    t->parameters ? json_deep_copy(t->parameters)
					  : json_pack("{s:s}", "type", "object"));
	json_object_set_new(fn, "strict", json_boolean(t->strict));
	return json_pack("{s:s, s:o}", "type", "function", "function", fn);
out_utf8:
	lh_error_set(err, LH_ERR_INVALID,
		     "could not build chat request: tool %zu is not valid UTF-8", i);
	return NULL;
}

json_t *lh_llm_openai_build_body(const lh_llm_req_t *req, lh_error_t *err)
{
	json_t *body, *msgs, *tools;

	if (!req || !req->model || !req->messages || req->n_messages == 0) {
		lh_error_set(err, LH_ERR_INVALID, "could not build chat request: %s",
			     !req || !req->model ? "no model" : "no messages");
		return NULL;
	}
	body = json_pack("{s:s}", "model", req->model);
	if (!body) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build chat request: model name is not valid UTF-8");
		return NULL;
	}
	msgs = json_array();
	json_object_set_new(body, "messages", msgs);
	for (size_t i = 0; i < req->n_messages; i++) {
		json_t *m = message_json(&req->messages[i], i, err);
		if (!m)
			goto out_body;
		json_array_append_new(msgs, m);
	}
	if (req->n_tools > 0) {
		tools = json_array();
		json_object_set_new(body, "tools", tools);
		for (size_t i = 0; i < req->n_tools; i++) {
			json_t *t = tool_json(&req->tools[i], i, err);
			if (!t)
				goto out_body;
			json_array_append_new(tools, t);
		}
	}
	switch (req->tool_choice) {
	case LH_LLM_TOOL_CHOICE_DEFAULT:
		break;
	case LH_LLM_TOOL_CHOICE_AUTO:
		json_object_set_new(body, "tool_choice", json_string("auto"));
		break;
	case LH_LLM_TOOL_CHOICE_NONE:
		json_object_set_new(body, "tool_choice", json_string("none"));
		break;
	case LH_LLM_TOOL_CHOICE_REQUIRED:
		json_object_set_new(body, "tool_choice", json_string("required"));
		break;
	case LH_LLM_TOOL_CHOICE_NAMED: {
		json_t *tc;
		if (!req->tool_choice_name) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: tool_choice names no tool");
			goto out_body;
		}
		tc = json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name",
			       req->tool_choice_name);
		if (!tc) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: tool_choice is not valid UTF-8");
			goto out_body;
		}
		json_object_set_new(body, "tool_choice", tc);
		break;
	}
	}
	if (req->response_schema) {
		const lh_llm_response_schema_t *rs = req->response_schema;
		json_t *rf;
		if (!rs->name || !rs->schema) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: response schema without %s",
				     !rs->name ? "name" : "schema");
			goto out_body;
		}
		rf = json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema",
			       "name", rs->name, "schema", rs->schema, "strict", rs->strict);
		if (!rf) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: response schema name is not "
				     "valid UTF-8");
			goto out_body;
		}
		json_object_set_new(body, "response_format", rf);
	}
	if (req->max_output_tokens > 0)
		json_object_set_new(body, "max_completion_tokens",
				    json_integer(req->max_output_tokens));
	if (req->set_temperature)
		json_object_set_new(body, "temperature", json_real(req->temperature));
	return body;

out_body:
	json_decref(body);
	return NULL;
}

/* ---- response parsing -------------------------------------------------------------------- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static lh_llm_finish_t finish_from(const char *s)
{
	if (!s)
		return LH_LLM_FINISH_OTHER;
	if (strcmp(s, "stop") == 0)
		return LH_LLM_FINISH_STOP;
	if (strcmp(s, "length") == 0)
		return LH_LLM_FINISH_LENGTH;
	if (strcmp(s, "tool_calls") == 0 || strcmp(s, "function_call") == 0)
		return LH_LLM_FINISH_TOOL_CALLS;
	if (strcmp(s, "content_filter") == 0)
		return LH_LLM_FINISH_CONTENT_FILTER;
	return LH_LLM_FINISH_OTHER;
}

static lh_err_t malformed(lh_llm_error_t *err, const char *fmt, const char *detail)
{
	if (err) {
		memset(err, 0, sizeof(*err));
		err->klass = LH_LLM_ERR_MALFORMED;
		err->retry_after_ms = -1;
		lh_error_retry(&err->error, LH_ERR_DECODE, fmt, detail);
	}
	return LH_ERR_DECODE;
}

static int64_t int_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static lh_err_t parse_tool_calls(json_t *arr, lh_llm_resp_t *r, lh_llm_error_t *err)
{
	size_t n = json_array_size(arr);
	if (n == 0)
		return LH_OK;
	r->tool_calls = calloc(n, sizeof(*r->tool_calls));
	if (!r->tool_calls)
		return malformed(err, "could not parse chat response: %s", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *tc = json_array_get(arr, i), *fn, *args;
		lh_llm_tool_call_t *out = &r->tool_calls[i];
		const char *id, *name;

		fn = json_object_get(tc, "function");
		id = json_string_value(json_object_get(tc, "id"));
		name = json_string_value(json_object_get(fn, "name"));
		if (!json_is_object(tc) || !json_is_object(fn) || !name)
			return malformed(err, "could not parse chat response: %s",
					 "tool call without function name");
		r->n_tool_calls = i + 1;
		out->id = strdup(id ? id : "");
		out->name = strdup(name);
		args = json_object_get(fn, "arguments");
		if (json_is_string(args)) {
			/* the documented shape: a JSON text inside a string */
			out->arguments_json = strdup(json_string_value(args));
			out->arguments = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
		} else if (args && !json_is_null(args)) {
			/* some compatible servers send the object itself */
			out->arguments_json = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
			out->arguments = json_incref(args);
		} else {
			out->arguments_json = strdup("{}");
			out->arguments = json_object();
		}
		if (!out->id || !out->name || !out->arguments_json)
			return malformed(err, "could not parse chat response: %s", "out of memory");
	}
	return LH_OK;
}

lh_err_t lh_llm_openai_parse_response(const char *body, size_t len, lh_llm_resp_t *ret_resp,
				      lh_llm_error_t *err)
{
	json_error_t jerr;
	json_t *root, *choice, *msg, *usage, *det;
	lh_llm_resp_t r;
	const char *content, *refusal, *finish;
	lh_err_t rc;

	root = json_loadb(body ? body : "", len, 0, &jerr);
	if (!root)
		return malformed(err, "could not parse chat response: %s", jerr.text);
	choice = json_array_get(json_object_get(root, "choices"), 0);
	msg = json_object_get(choice, "message");
	if (!json_is_object(choice) || !json_is_object(msg)) {
		const char *emsg =
			json_string_value(json_object_get(json_object_get(root, "error"), "message"));
		rc = malformed(err, "could not parse chat response: %s",
			       emsg ? emsg : "no choices[0].message");
		json_decref(root);
		return rc;
	}
	memset(&r, 0, sizeof(r));
	content = json_string_value(json_object_get(msg, "content"));
	if (!content && json_is_array(json_object_get(msg, "content"))) {
		/* content parts: concatenate the text parts */
		json_t *parts = json_object_get(msg, "content"), *part;
		size_t i, total = 0;
		json_array_foreach(parts, i, part)
			total += strlen(json_string_value(json_object_get(part, "text"))
						? json_string_value(json_object_get(part, "text"))
						: "");
		r.content = calloc(1, total + 1);
		json_array_foreach(parts, i, part) {
			const char *t = json_string_value(json_object_get(part, "text"));
			if (t && r.content)
				strcat(r.content, t);
		}
	} else {
		r.content = dup_or_null(content);
	}
	refusal = json_string_value(json_object_get(msg, "refusal"));
	r.refusal = dup_or_null(refusal);
	finish = json_string_value(json_object_get(choice, "finish_reason"));
	r.finish_raw = dup_or_null(finish);
	r.finish = finish_from(finish);
	rc = parse_tool_calls(json_object_get(msg, "tool_calls"), &r, err);
	if (rc) {
		lh_llm_resp_finish(&r);
		json_decref(root);
		return rc;
	}
	if (refusal)
		r.finish = LH_LLM_FINISH_REFUSAL;
	else if (!finish && r.n_tool_calls > 0)
		r.finish = LH_LLM_FINISH_TOOL_CALLS;
	usage = json_object_get(root, "usage");
	r.usage.input_tokens = int_at(usage, "prompt_tokens");
	r.usage.output_tokens = int_at(usage, "completion_tokens");
	det = json_object_get(usage, "prompt_tokens_details");
	r.usage.cached_tokens = int_at(det, "cached_tokens");
	det = json_object_get(usage, "completion_tokens_details");
	r.usage.reasoning_tokens = int_at(det, "reasoning_tokens");
	r.model = dup_or_null(json_string_value(json_object_get(root, "model")));
	r.id = dup_or_null(json_string_value(json_object_get(root, "id")));
	r.attempts = 1;
	json_decref(root);
	*ret_resp = r;
	return LH_OK;
}

/* ---- error mapping ----------------------------------------------------------------------- */

void lh_llm_openai_map_error(long status, const char *body, size_t len, const char *should_retry,
			     long retry_after_ms, lh_llm_error_t *ret_err)
{
	json_t *root = NULL, *e;
	const char *code = NULL, *type = NULL, *pmsg = NULL;
	lh_llm_errclass_t klass;
	bool retry;
	lh_err_t ec = LH_ERR_HTTP;
	char detail[PROVIDER_MSG_MAX + 1] = "";

	if (body && len)
		root = json_loadb(body, len, 0, NULL);
	e = json_object_get(root, "error");
	if (json_is_object(e)) {
		code = json_string_value(json_object_get(e, "code"));
		type = json_string_value(json_object_get(e, "type"));
		pmsg = json_string_value(json_object_get(e, "message"));
	} else if (json_is_string(e)) {
		pmsg = json_string_value(e);
	}

	if (status == 400 && ((code && strcmp(code, "context_length_exceeded") == 0) ||
			      (pmsg && strstr(pmsg, "context length")))) {
		klass = LH_LLM_ERR_TOO_LARGE;
		retry = false;
	} else if (status == 401 || status == 403) {
		klass = LH_LLM_ERR_AUTH;
		retry = false;
	} else if (status == 408) {
		klass = LH_LLM_ERR_TIMEOUT;
		retry = true;
	} else if (status == 409) {
		klass = LH_LLM_ERR_RETRYABLE;
		retry = true;
	} else if (status == 413) {
		klass = LH_LLM_ERR_TOO_LARGE;
		retry = false;
	} else if (status == 429) {
		bool quota = (code && strcmp(code, "insufficient_quota") == 0) ||
			     (type && strcmp(type, "insufficient_quota") == 0);
		/* an exhausted quota comes back only when someone pays: not a rate limit */
		klass = quota ? LH_LLM_ERR_AUTH : LH_LLM_ERR_RATE_LIMITED;
		retry = !quota;
	} else if (status == 502 || status == 503 || status == 529) {
		klass = LH_LLM_ERR_PROVIDER_DOWN;
		retry = true;
	} else if (status == 504) {
		klass = LH_LLM_ERR_TIMEOUT;
		retry = true;
	} else if (status >= 500) {
		klass = LH_LLM_ERR_RETRYABLE;
		retry = true;
	} else {
		klass = LH_LLM_ERR_INVALID_REQUEST;
		retry = false;
	}
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
	/* an auth failure's text may quote part of the key: keep only the code */
	if (klass == LH_LLM_ERR_AUTH)
		snprintf(detail, sizeof(detail), "%s", code ? code : type ? type : "not authorized");
	else if (pmsg)
		snprintf(detail, sizeof(detail), "%s", pmsg);
	else if (code || type)
		snprintf(detail, sizeof(detail), "%s", code ? code : type);

	memset(ret_err, 0, sizeof(*ret_err));
	ret_err->klass = klass;
	ret_err->http_status = status;
	ret_err->retry_after_ms = retry_after_ms;
	lh_error_set(&ret_err->error, ec, "chat completion failed with http status %ld%s%s", status,
		     detail[0] ? ": " : "", detail);
	ret_err->error.retriable = retry;
	json_decref(root);
}

/* ---- the provider ------------------------------------------------------------------------ */

static void call_unlink(openai_t *oa, struct call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		oa->calls = c->next;
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
	free(c);
}

static void call_fail(struct call *c, lh_llm_error_t *e)
{
	call_unlink(c->oa, c);
	e->attempts = c->attempts;
	c->cb(NULL, e, c->opaque);
	call_free(c);
}

static void call_succeed(struct call *c, lh_llm_resp_t *r)
{
	call_unlink(c->oa, c);
	r->attempts = c->attempts;
	r->latency_ms = ms_since(&c->start);
	c->cb(r, NULL, c->opaque);
	lh_llm_resp_finish(r);
	call_free(c);
}

static void http_done(lh_http_resp_t *resp, void *opaque);

static lh_err_t start_try(struct call *c, lh_error_t *err)
{
	openai_t *oa = c->oa;
	const char *headers[3 + 16];
	size_t nh = 0;
	lh_http_req_t hreq;

	headers[nh++] = "Content-Type: application/json";
	headers[nh++] = "Accept: application/json";
	if (oa->auth_header)
		headers[nh++] = oa->auth_header;
	for (size_t i = 0; i < oa->n_extra_headers && nh < sizeof(headers) / sizeof(headers[0]);
	     i++)
		headers[nh++] = oa->extra_headers[i];
	memset(&hreq, 0, sizeof(hreq));
	hreq.method = "POST";
	hreq.url = oa->url;
	hreq.headers = headers;
	hreq.n_headers = nh;
	hreq.body = c->body;
	hreq.body_len = c->body_len;
	hreq.connect_timeout_ms = oa->opts.connect_timeout_ms;
	hreq.first_byte_timeout_ms = oa->opts.first_byte_timeout_ms;
	hreq.total_timeout_ms = c->timeout_ms;
	hreq.max_response_bytes = oa->opts.max_response_bytes;
	if (lh_http_request(oa->http, &hreq, http_done, c, &c->http_id, err) != LH_OK)
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
	openai_t *oa = c->oa;
	long delay;
	struct timeval tv;

	if (!e->error.retriable || c->attempts > oa->opts.max_retries)
		return false;
	if (e->retry_after_ms > oa->opts.max_retry_after_ms)
		return false; /* the caller decides (and can schedule a durable retry) */
	delay = lh_llm_retry_delay_ms(c->attempts - 1, e->retry_after_ms, oa->jitter_state++,
				      oa->opts.retry_base_ms, oa->opts.retry_cap_ms);
	if (!c->retry_timer) {
		c->retry_timer = evtimer_new(oa->evb, retry_cb, c);
		if (!c->retry_timer)
			return false;
	}
	if (lh_log_debug_on(LH_DBG_HTTP)) {
		char sb[24], db[24], ab[24];
		lh_log(LH_LOG_DEBUG, "llm.retry", e->error.msg, "class",
		       lh_llm_errclass_name(e->klass), "status", lh_log_i64(sb, e->http_status),
		       "delay_ms", lh_log_i64(db, delay), "attempt", lh_log_i64(ab, c->attempts),
		       (char *)NULL);
	}
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(c->retry_timer, &tv);
	return true;
}

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

static void http_done(lh_http_resp_t *resp, void *opaque)
{
	struct call *c = opaque;
	lh_llm_error_t e;
	lh_llm_resp_t r;

	c->in_http = false;
	c->attempts++;
	if (resp->error.code != LH_OK) {
		transport_error(resp, &e);
	} else if (resp->status >= 200 && resp->status < 300) {
		if (lh_llm_openai_parse_response(resp->body.data, resp->body.len, &r, &e) == LH_OK) {
			call_succeed(c, &r);
			return;
		}
		e.http_status = resp->status;
	} else {
		lh_llm_openai_map_error(resp->status, resp->body.data, resp->body.len,
					lh_http_resp_header(resp, "x-should-retry"),
					resp->retry_after_ms, &e);
	}
	if (maybe_retry(c, &e))
		return;
	call_fail(c, &e);
}

static lh_err_t openai_call(lh_llm_provider_t *p, const lh_llm_req_t *req, lh_llm_done_cb cb,
			    void *opaque, lh_error_t *err)
{
	openai_t *oa = (openai_t *)p;
	struct call *c;
	json_t *body;
	lh_err_t rc;

	body = lh_llm_openai_build_body(req, err);
	if (!body)
		return err ? err->code : LH_ERR_INVALID;
	c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(body);
		return lh_error_set(err, LH_ERR_NOMEM, "could not call llm: out of memory");
	}
	c->oa = oa;
	c->cb = cb;
	c->opaque = opaque;
	c->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!c->body) {
		free(c);
		return lh_error_set(err, LH_ERR_NOMEM, "could not call llm: out of memory");
	}
	c->body_len = strlen(c->body);
	c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : oa->opts.timeout_ms;
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	rc = start_try(c, err);
	if (rc != LH_OK) {
		call_free(c);
		return rc;
	}
	c->next = oa->calls;
	if (oa->calls)
		oa->calls->prev = c;
	oa->calls = c;
	return LH_OK;
}

static void openai_cancel_all(lh_llm_provider_t *p)
{
	openai_t *oa = (openai_t *)p;
	while (oa->calls) {
		struct call *c = oa->calls;
		if (c->in_http) {
			/* http_done runs inside and ends the call as cancelled */
			if (lh_http_cancel(oa->http, c->http_id) == LH_OK)
				continue;
		}
		lh_llm_error_t e;
		memset(&e, 0, sizeof(e));
		e.klass = LH_LLM_ERR_CANCELLED;
		e.retry_after_ms = -1;
		lh_error_set(&e.error, LH_ERR_UNAVAILABLE, "could not complete chat completion: "
							    "call cancelled");
		call_fail(c, &e);
	}
}

static void openai_free(lh_llm_provider_t *p)
{
	openai_t *oa = (openai_t *)p;
	openai_cancel_all(p);
	for (size_t i = 0; i < oa->n_extra_headers; i++)
		free(oa->extra_headers[i]);
	free(oa->extra_headers);
	if (oa->auth_header) {
		explicit_bzero(oa->auth_header, strlen(oa->auth_header));
		free(oa->auth_header);
	}
	free(oa->url);
	free(oa);
}

static const lh_llm_provider_ops_t openai_ops = {
	.name = "openai",
	.call = openai_call,
	.cancel_all = openai_cancel_all,
	.free = openai_free,
};

lh_llm_provider_t *lh_llm_openai_new(lh_http_t *http, const char *base_url, const char *api_key,
				     const lh_llm_openai_opts_t *opts, lh_error_t *err)
{
	openai_t *oa;
	size_t n;
	struct timespec ts;

	if (!http || !base_url || !*base_url) {
		lh_error_set(err, LH_ERR_INVALID, "could not create openai provider: %s",
			     !http ? "no http client" : "no base url");
		return NULL;
	}
	oa = calloc(1, sizeof(*oa));
	if (!oa)
		goto out_nomem;
	oa->base.ops = &openai_ops;
	oa->http = http;
	oa->evb = lh_http_base(http);
	if (opts)
		oa->opts = *opts;
	oa->opts.extra_headers = NULL;
	oa->opts.n_extra_headers = 0;
	if (oa->opts.max_retries == 0)
		oa->opts.max_retries = 2;
	else if (oa->opts.max_retries < 0)
		oa->opts.max_retries = 0;
	if (oa->opts.timeout_ms <= 0)
		oa->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (oa->opts.max_retry_after_ms <= 0)
		oa->opts.max_retry_after_ms = DEFAULT_MAX_RETRY_AFTER_MS;
	if (oa->opts.max_response_bytes == 0)
		oa->opts.max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES;
	clock_gettime(CLOCK_REALTIME, &ts);
	oa->jitter_state = oa->opts.jitter_seed
				   ? oa->opts.jitter_seed
				   : ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
					     (uint64_t)(uintptr_t)oa;

	n = strlen(base_url);
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	oa->url = malloc(n + sizeof("/chat/completions"));
	if (!oa->url)
		goto out_oa;
	memcpy(oa->url, base_url, n);
	strcpy(oa->url + n, "/chat/completions");
	if (api_key && *api_key) {
		if (strpbrk(api_key, "\r\n")) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not create openai provider: api key contains a line break");
			openai_free(&oa->base);
			return NULL;
		}
		if (asprintf(&oa->auth_header, "Authorization: Bearer %s", api_key) < 0) {
			oa->auth_header = NULL;
			goto out_oa;
		}
	}
	if (opts && opts->n_extra_headers) {
		oa->extra_headers = calloc(opts->n_extra_headers, sizeof(char *));
		if (!oa->extra_headers)
			goto out_oa;
		for (size_t i = 0; i < opts->n_extra_headers; i++) {
			oa->extra_headers[i] = strdup(opts->extra_headers[i]);
			if (!oa->extra_headers[i])
				goto out_oa;
			oa->n_extra_headers = i + 1;
		}
	}
	return &oa->base;

out_oa:
	openai_free(&oa->base);
out_nomem:
	lh_error_set(err, LH_ERR_NOMEM, "could not create openai provider: out of memory");
	return NULL;
}
