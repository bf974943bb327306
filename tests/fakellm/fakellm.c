/* fakellm — a scripted OpenAI- and Anthropic-compatible HTTP server for the tests (evhttp).
 *
 *   fakellm --port N [--host 127.0.0.1] [--latency-ms N] [--script FILE] [--api-key KEY]
 *
 * Prints "listening on HOST:PORT" on stdout once it accepts connections (--port 0 picks a free
 * port). Endpoints:
 *   POST /v1/chat/completions  answers like the in-process scripted provider
 *                              (lh_llm_scripted_answer): the task kind comes from the first
 *                              system message ("You are the planner" / "You are the joiner" /
 *                              anything else = act), the goal from a "Goal: ..." line of the
 *                              user message. Faults come from the script (see README.md).
 *   POST /v1/messages          the same answers in the Anthropic Messages shape (task kind from
 *                              the top-level "system"); requires the anthropic-version header
 *                              (400 otherwise) and, with --api-key, x-api-key.
 *   GET  /health               200 {"status":"ok"}
 *   GET  /stats                request counters as JSON (so tests can count HTTP calls)
 *   POST /reset                zero the counters and the rules' hit counts
 *   GET  /last-chat            the body of the last /v1/chat/completions request, verbatim
 *                              (lh-bench worker-overhead replays it as its baseline)
 * Latency is an event timer per request: concurrent requests overlap, nothing sleeps. Bad
 * requests get 400 with an OpenAI-style error body. One process-wide context struct (srv_t),
 * created in main and passed to every callback. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "fakellm.h"
#include "llm.h"

typedef struct srv srv_t;

typedef struct pending {
	srv_t *srv;
	struct evhttp_request *req;
	struct event *timer; /* NULL for a hung request */
	int status;
	json_t *headers;     /* owned (a reference) */
	char *body;
	size_t len;
	bool truncate;
	struct pending *prev, *next;
} pending_t;

struct srv {
	json_t *last_chat; /* the last chat request's body */
	struct event_base *base;
	struct evhttp *http;
	long latency_ms;
	const char *api_key;
	char *script_api_key; /* the script's "api_key", owned */
	rule_t *rules;
	size_t n_rules;
	pending_t *pending;
	/* counters */
	long requests;	    /* model requests received, both APIs (rules number them) */
	long chat_requests; /* of which POST /v1/chat/completions */
	long messages_requests; /* of which POST /v1/messages (Anthropic) */
	long http_requests; /* everything */
	long bad_requests;
	long hung, truncated, malformed, faults;
	long in_flight, max_in_flight;
	json_t *by_status;  /* {"200": n} */
	/* --rl-*: a real limit per fixed window, announced in rate-limit headers */
	long rl_requests, rl_tokens, rl_window_ms; /* 0 = no limit of that kind */
	int64_t rl_start_ms;			    /* the current window's start */
	long rl_used_requests, rl_used_tokens;
	long rl_limited; /* requests refused with 429 by the limit */
};

/* ---- sending ----------------------------------------------------------------------------- */

static const char *reason_for(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 529:
		return "Overloaded";
	default:
		return "Status";
	}
}

static void count_status(srv_t *srv, int status)
{
	char key[16];
	json_t *v;
	snprintf(key, sizeof(key), "%d", status);
	v = json_object_get(srv->by_status, key);
	json_object_set_new(srv->by_status, key,
			    json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* Send and count. headers may be NULL. With truncate, Content-Length announces len bytes but
 * only half are sent before the connection closes. */
static void send_reply(srv_t *srv, struct evhttp_request *req, int status, json_t *headers,
		       const char *body, size_t len, bool truncate)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();
	const char *key;
	json_t *v;

	evhttp_add_header(out, "Content-Type", "application/json");
	json_object_foreach(headers, key, v)
	{
		char num[32];
		const char *s = json_string_value(v);
		if (!s && json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			s = num;
		}
		if (s)
			evhttp_add_header(out, key, s);
	}
	if (truncate) {
		char cl[32];
		snprintf(cl, sizeof(cl), "%zu", len);
		evhttp_add_header(out, "Content-Length", cl);
		evhttp_add_header(out, "Connection", "close");
		len /= 2;
	}
	if (buf)
		evbuffer_add(buf, body, len);
	count_status(srv, status);
	evhttp_send_reply(req, status, reason_for(status), buf);
	if (buf)
		evbuffer_free(buf);
}

static void send_json(srv_t *srv, struct evhttp_request *req, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	send_reply(srv, req, status, NULL, s ? s : "{}", s ? strlen(s) : 2, false);
	free(s);
}

static void send_error(srv_t *srv, struct evhttp_request *req, int status, const char *message,
		       const char *type, const char *code)
{
	send_json(srv, req, status, fake_error_body(message, type, code));
}

static void pending_unlink_free(pending_t *p)
{
	srv_t *srv = p->srv;
	if (p->prev)
		p->prev->next = p->next;
	else
		srv->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	if (p->timer)
		event_free(p->timer);
	json_decref(p->headers);
	free(p->body);
	free(p);
}

static void pending_fire(evutil_socket_t fd, short what, void *arg)
{
	pending_t *p = arg;
	srv_t *srv = p->srv;
	/* if the client went away evhttp detached the request; sending then just frees it */
	send_reply(srv, p->req, p->status, p->headers, p->body, p->len, p->truncate);
	srv->in_flight--;
	pending_unlink_free(p);
}

/* Reply now or after latency_ms; a hang (latency_ms < 0) never replies. Takes body and
 * headers (a reference, may be NULL). */
static void reply_later(srv_t *srv, struct evhttp_request *req, long latency_ms, int status,
			json_t *headers, char *body, size_t len, bool truncate)
{
	pending_t *p;
	if (latency_ms == 0) {
		send_reply(srv, req, status, headers, body, len, truncate);
		srv->in_flight--;
		free(body);
		json_decref(headers);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		send_reply(srv, req, 500, NULL, "{}", 2, false);
		srv->in_flight--;
		free(body);
		json_decref(headers);
		return;
	}
	p->srv = srv;
	p->req = req;
	p->status = status;
	p->headers = headers;
	p->body = body;
	p->len = len;
	p->truncate = truncate;
	p->next = srv->pending;
	if (srv->pending)
		srv->pending->prev = p;
	srv->pending = p;
	if (latency_ms > 0) {
		struct timeval tv = {latency_ms / 1000, (latency_ms % 1000) * 1000};
		p->timer = evtimer_new(srv->base, pending_fire, p);
		if (p->timer)
			evtimer_add(p->timer, &tv);
	}
}

/* ---- chat completions -------------------------------------------------------------------- */

/* A message's text: a string, or the concatenated text parts. New string. */
static char *content_text(json_t *content)
{
	lh_buf_t b;
	size_t i;
	json_t *part;
	if (json_is_string(content))
		return strdup(json_string_value(content));
	lh_buf_init(&b);
	lh_buf_appends(&b, "");
	json_array_foreach(content, i, part)
	{
		const char *t = json_string_value(json_object_get(part, "text"));
		if (t)
			lh_buf_appends(&b, t);
	}
	return lh_buf_steal(&b, NULL);
}

static bool valid_role(const char *r)
{
	static const char *roles[] = {"system", "developer", "user", "assistant", "tool"};
	for (size_t i = 0; r && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(r, roles[i]) == 0)
			return true;
	return false;
}

static rule_t *find_rule(srv_t *srv, long n, const char *users, const char *system)
{
	for (size_t i = 0; i < srv->n_rules; i++) {
		rule_t *r = &srv->rules[i];
		if (r->from && n < r->from)
			continue;
		if (r->to && n > r->to)
			continue;
		if (r->match && !strstr(users, r->match))
			continue;
		if (r->match_system && (!system || !strstr(system, r->match_system)))
			continue;
		if (r->times >= 0 && r->hits >= r->times)
			continue;
		r->hits++;
		return r;
	}
	return NULL;
}

static void bad_request(srv_t *srv, struct evhttp_request *req, enum api api, int status,
			const char *msg)
{
	srv->bad_requests++;
	if (api == API_ANTHROPIC)
		send_json(srv, req, status,
			  fake_anthropic_error_body(status == 401 ? "authentication_error"
								  : "invalid_request_error",
						    msg));
	else
		send_error(srv, req, status, msg, "invalid_request_error", NULL);
}

/* Apply the script to a parsed request and answer it (now, later, or never). */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "1s", "250ms", "6m0s": the way OpenAI writes a reset */
static void fmt_duration(char *b, size_t n, int64_t ms)
{
	if (ms >= 60000)
		snprintf(b, n, "%lldm%llds", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
	else if (ms >= 1000 && ms % 1000 == 0)
		snprintf(b, n, "%llds", (long long)(ms / 1000));
	else if (ms >= 1000)
		snprintf(b, n, "%.3fs", (double)ms / 1000.0);
	else
		snprintf(b, n, "%lldms", (long long)ms);
}

/* RFC 3339 in UTC with milliseconds: the way Anthropic writes a reset */
static void fmt_rfc3339(char *b, size_t n, int64_t unix_ms)
{
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;
	char d[32];
	gmtime_r(&t, &tm);
	strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(b, n, "%s.%03dZ", d, (int)(unix_ms % 1000));
}

static void set_str(json_t *h, const char *k, const char *v) { json_object_set_new(h, k, json_string(v)); }
static void set_num(json_t *h, const char *k, long v)
{
	char b[32];
	snprintf(b, sizeof(b), "%ld", v);
	json_object_set_new(h, k, json_string(b));
}

/* The --rl-* limit: admit a's request into the current window or refuse it. Adds the
 * API's rate-limit headers (what is left after this request) to h. Returns false when the
 * request is over the limit. */
static bool rl_admit(srv_t *srv, const ask_t *a, json_t *h)
{
	int64_t now = now_ms(), reset_ms, reset_at;
	long tokens = (long)(lh_llm_estimate_tokens(a->prompt_bytes) + 3 * (int64_t)a->n_messages);
	bool ok = true;
	char rb[48];
	if (!srv->rl_requests && !srv->rl_tokens)
		return true;
	if (!srv->rl_start_ms || now - srv->rl_start_ms >= srv->rl_window_ms) {
		srv->rl_start_ms = now;
		srv->rl_used_requests = srv->rl_used_tokens = 0;
	}
	if ((srv->rl_requests && srv->rl_used_requests + 1 > srv->rl_requests) ||
	    (srv->rl_tokens && srv->rl_used_tokens + tokens > srv->rl_tokens))
		ok = false;
	else {
		srv->rl_used_requests++;
		srv->rl_used_tokens += tokens;
	}
	reset_at = srv->rl_start_ms + srv->rl_window_ms;
	reset_ms = reset_at - now;
	if (reset_ms < 1)
		reset_ms = 1;
	if (a->api == API_OPENAI) {
		fmt_duration(rb, sizeof(rb), reset_ms);
		if (srv->rl_requests) {
			set_num(h, "x-ratelimit-limit-requests", srv->rl_requests);
			set_num(h, "x-ratelimit-remaining-requests",
				srv->rl_requests - srv->rl_used_requests);
			set_str(h, "x-ratelimit-reset-requests", rb);
		}
		if (srv->rl_tokens) {
			set_num(h, "x-ratelimit-limit-tokens", srv->rl_tokens);
			set_num(h, "x-ratelimit-remaining-tokens", srv->rl_tokens - srv->rl_used_tokens);
			set_str(h, "x-ratelimit-reset-tokens", rb);
		}
	} else {
		fmt_rfc3339(rb, sizeof(rb), reset_at);
		if (srv->rl_requests) {
			set_num(h, "anthropic-ratelimit-requests-limit", srv->rl_requests);
			set_num(h, "anthropic-ratelimit-requests-remaining",
				srv->rl_requests - srv->rl_used_requests);
			set_str(h, "anthropic-ratelimit-requests-reset", rb);
		}
		if (srv->rl_tokens) {
			set_num(h, "anthropic-ratelimit-tokens-limit", srv->rl_tokens);
			set_num(h, "anthropic-ratelimit-tokens-remaining",
				srv->rl_tokens - srv->rl_used_tokens);
			set_str(h, "anthropic-ratelimit-tokens-reset", rb);
			set_num(h, "anthropic-ratelimit-input-tokens-limit", srv->rl_tokens);
			set_num(h, "anthropic-ratelimit-input-tokens-remaining",
				srv->rl_tokens - srv->rl_used_tokens);
			set_str(h, "anthropic-ratelimit-input-tokens-reset", rb);
		}
	}
	if (!ok) {
		/* what the official APIs add to a 429 */
		set_num(h, "retry-after", (long)((reset_ms + 999) / 1000));
		srv->rl_limited++;
	}
	return ok;
}

static void respond(srv_t *srv, struct evhttp_request *req, ask_t *a)
{
	rule_t *r = find_rule(srv, a->n, a->users.data, a->system);
	long latency = r && r->latency_ms >= 0 ? r->latency_ms : srv->latency_ms;
	int status = r && r->status ? r->status : 200;
	char *body;
	json_t *headers = r && r->headers ? json_deep_copy(r->headers) : json_object();

	if (!rl_admit(srv, a, headers)) {
		json_t *e = a->api == API_ANTHROPIC
				    ? fake_anthropic_error_body("rate_limit_error",
								"Number of requests has exceeded "
								"your rate limit")
				    : fake_error_body("Rate limit reached for requests",
						      "requests", "rate_limit_exceeded");
		srv->in_flight++;
		if (srv->in_flight > srv->max_in_flight)
			srv->max_in_flight = srv->in_flight;
		body = json_dumps(e, JSON_COMPACT);
		json_decref(e);
		reply_later(srv, req, 0, 429, headers, body, body ? strlen(body) : 0, false);
		return;
	}

	if (r)
		srv->faults += r->action != ACT_ANSWER || status != 200 || r->body || r->content;
	if (r && r->action == ACT_HANG) {
		/* counted in "hung", not in "in_flight": they never end */
		srv->hung++;
		json_decref(headers);
		reply_later(srv, req, -1, 0, NULL, NULL, 0, false);
		return;
	}
	srv->in_flight++;
	if (srv->in_flight > srv->max_in_flight)
		srv->max_in_flight = srv->in_flight;
	if (r && r->action == ACT_MALFORMED) {
		srv->malformed++;
		body = strdup(
		    a->api == API_ANTHROPIC
			? "{\"id\": \"msg_broken\", \"type\": \"message\", \"content\": [{\"ty"
			: "{\"id\": \"chatcmpl-broken\", \"choices\": [{\"index\": 0, \"mess");
	} else if (r && r->body) {
		body = strdup(r->body);
	} else if (status < 200 || status > 299) {
		json_t *e = fake_default_error(a->api, status);
		body = json_dumps(e, JSON_COMPACT);
		json_decref(e);
	} else {
		body =
		    a->api == API_ANTHROPIC ? fake_message_body(a, r) : fake_completion_body(a, r);
	}
	if (!body) {
		srv->in_flight--;
		json_decref(headers);
		send_error(srv, req, 500, "fakellm could not build the answer", "server_error",
			   NULL);
		return;
	}
	if (r && r->action == ACT_TRUNCATE)
		srv->truncated++;
	reply_later(srv, req, latency, status, headers, body, strlen(body),
		    r && r->action == ACT_TRUNCATE);
}

static void ask_finish(ask_t *a)
{
	lh_buf_finish(&a->users);
	free(a->system);
	free(a->last_user);
}

/* Count one message's text: the system text is kept, user texts are collected. Takes text. */
static void ask_add(ask_t *a, const char *role, char *text)
{
	if (!text)
		return;
	a->prompt_bytes += strlen(text);
	if (!a->system && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)) {
		a->system = text;
	} else if (strcmp(role, "user") == 0) {
		lh_buf_appends(&a->users, text);
		lh_buf_appends(&a->users, "\n");
		free(a->last_user);
		a->last_user = text;
	} else {
		free(text);
	}
}

static json_t *read_body(srv_t *srv, struct evhttp_request *req, enum api api)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	json_error_t jerr;
	json_t *root =
	    json_loadb((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in), 0, &jerr);
	if (!root) {
		char msg[256];
		snprintf(msg, sizeof(msg), "could not parse the JSON body of your request: %s",
			 jerr.text);
		bad_request(srv, req, api, 400, msg);
	}
	return root;
}

static void handle_chat(srv_t *srv, struct evhttp_request *req)
{
	json_t *root, *msgs, *m, *tool;
	ask_t a;
	size_t i;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		send_error(srv, req, 405, "Method not allowed, use POST", "invalid_request_error",
			   NULL);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.api = API_OPENAI;
	a.n = ++srv->requests;
	srv->chat_requests++;
	if (srv->api_key) {
		const char *auth =
		    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
		if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, srv->api_key)) {
			send_error(srv, req, 401, "Incorrect API key provided",
				   "invalid_request_error", "invalid_api_key");
			return;
		}
	}
	if (!(root = read_body(srv, req, API_OPENAI)))
		return;
	json_decref(srv->last_chat);
	srv->last_chat = json_incref(root);
	a.model = json_string_value(json_object_get(root, "model"));
	msgs = json_object_get(root, "messages");
	if (!a.model || !json_is_array(msgs) || json_array_size(msgs) == 0) {
		bad_request(srv, req, API_OPENAI, 400,
			    !a.model ? "you must provide a model parameter"
				     : "messages must be a non-empty array");
		json_decref(root);
		return;
	}
	lh_buf_init(&a.users);
	lh_buf_appends(&a.users, "");
	a.n_messages = json_array_size(msgs);
	json_array_foreach (msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!json_is_object(m) || !valid_role(role)) {
			char msg[128];
			snprintf(msg, sizeof(msg), "invalid role in messages[%zu]", i);
			bad_request(srv, req, API_OPENAI, 400, msg);
			goto out_ask;
		}
		ask_add(&a, role, content_text(json_object_get(m, "content")));
	}
	tool = json_object_get(json_array_get(json_object_get(root, "tools"), 0), "function");
	a.tool_name = json_string_value(json_object_get(tool, "name"));
	a.tool_schema = json_object_get(tool, "parameters");
	respond(srv, req, &a);
out_ask:
	ask_finish(&a);
	json_decref(root);
}

/* ---- Anthropic messages ------------------------------------------------------------------ */

/* The text of an Anthropic content value: a string, or its text blocks and the text of its
 * tool_result blocks. New string; NULL (with *bad set) when a block is not an object with a
 * string "type". */
static char *blocks_text(json_t *content, bool *bad)
{
	lh_buf_t b;
	size_t i;
	json_t *blk;
	if (json_is_string(content))
		return strdup(json_string_value(content));
	lh_buf_init(&b);
	lh_buf_appends(&b, "");
	if (!json_is_array(content)) {
		*bad = true;
		return lh_buf_steal(&b, NULL);
	}
	json_array_foreach (content, i, blk) {
		const char *type = json_string_value(json_object_get(blk, "type"));
		if (!type) {
			*bad = true;
			break;
		}
		if (strcmp(type, "text") == 0 && json_is_string(json_object_get(blk, "text"))) {
			lh_buf_appends(&b, json_string_value(json_object_get(blk, "text")));
		} else if (strcmp(type, "tool_result") == 0) {
			bool inner_bad = false;
			char *t = blocks_text(json_object_get(blk, "content"), &inner_bad);
			if (t && !inner_bad)
				lh_buf_appends(&b, t);
			free(t);
		}
	}
	return lh_buf_steal(&b, NULL);
}

static void handle_messages(srv_t *srv, struct evhttp_request *req)
{
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
	json_t *root, *msgs, *m, *max_tokens, *system, *choice, *tool;
	const char *version = evhttp_find_header(hdrs, "anthropic-version");
	ask_t a;
	size_t i;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		send_json(srv, req, 405,
			  fake_anthropic_error_body("invalid_request_error", "Method not allowed"));
		return;
	}
	memset(&a, 0, sizeof(a));
	a.api = API_ANTHROPIC;
	a.n = ++srv->requests;
	srv->messages_requests++;
	if (!version || !*version) {
		bad_request(srv, req, API_ANTHROPIC, 400, "anthropic-version: header is required");
		return;
	}
	if (srv->api_key) {
		const char *key = evhttp_find_header(hdrs, "x-api-key");
		if (!key || strcmp(key, srv->api_key) != 0) {
			send_json(srv, req, 401,
				  fake_anthropic_error_body("authentication_error",
							    "invalid x-api-key"));
			return;
		}
	}
	if (!(root = read_body(srv, req, API_ANTHROPIC)))
		return;
	a.model = json_string_value(json_object_get(root, "model"));
	msgs = json_object_get(root, "messages");
	max_tokens = json_object_get(root, "max_tokens");
	if (!a.model || !json_is_integer(max_tokens) || json_integer_value(max_tokens) < 1 ||
	    !json_is_array(msgs) || json_array_size(msgs) == 0) {
		bad_request(srv, req, API_ANTHROPIC, 400,
			    !a.model                       ? "model: Field required"
			    : !json_is_integer(max_tokens) ? "max_tokens: Field required"
			    : json_integer_value(max_tokens) < 1
				? "max_tokens: Input should be greater than or equal to 1"
				: "messages: at least one message is required");
		json_decref(root);
		return;
	}
	lh_buf_init(&a.users);
	lh_buf_appends(&a.users, "");
	a.n_messages = json_array_size(msgs);
	system = json_object_get(root, "system");
	if (system) {
		bool bad = false;
		char *text = blocks_text(system, &bad);
		if (bad) {
			free(text);
			bad_request(srv, req, API_ANTHROPIC, 400,
				    "system: Input should be a string or a list of text blocks");
			goto out_ask;
		}
		a.n_messages++;
		ask_add(&a, "system", text);
	}
	json_array_foreach (msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		bool bad = false;
		char *text, msg[128];
		if (!json_is_object(m) || !role ||
		    (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
			snprintf(msg, sizeof(msg),
				 "messages.%zu.role: Input should be 'user' or 'assistant'", i);
			bad_request(srv, req, API_ANTHROPIC, 400, msg);
			goto out_ask;
		}
		text = blocks_text(json_object_get(m, "content"), &bad);
		if (bad) {
			free(text);
			snprintf(msg, sizeof(msg),
				 "messages.%zu.content: Input should be a string or a list of "
				 "blocks",
				 i);
			bad_request(srv, req, API_ANTHROPIC, 400, msg);
			goto out_ask;
		}
		ask_add(&a, role, text);
	}
	choice = json_object_get(root, "tool_choice");
	if (json_is_string(json_object_get(choice, "type")) &&
	    strcmp(json_string_value(json_object_get(choice, "type")), "tool") == 0)
		a.forced_tool = json_string_value(json_object_get(choice, "name"));
	tool = json_array_get(json_object_get(root, "tools"), 0);
	a.tool_name = json_string_value(json_object_get(tool, "name"));
	a.tool_schema = json_object_get(tool, "input_schema");
	respond(srv, req, &a);
out_ask:
	ask_finish(&a);
	json_decref(root);
}

/* ---- other endpoints --------------------------------------------------------------------- */

static void handle_stats(srv_t *srv, struct evhttp_request *req)
{
	json_t *hits = json_array();
	for (size_t i = 0; i < srv->n_rules; i++)
		json_array_append_new(hits, json_integer(srv->rules[i].hits));
	send_json(srv, req, 200,
		  json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:o}",
			    "rate_limited", (json_int_t)srv->rl_limited,
			    "requests", (json_int_t)srv->requests, "chat_requests",
			    (json_int_t)srv->chat_requests, "messages_requests",
			    (json_int_t)srv->messages_requests, "http_requests",
			    (json_int_t)srv->http_requests, "bad_requests",
			    (json_int_t)srv->bad_requests, "faults", (json_int_t)srv->faults,
			    "hung", (json_int_t)srv->hung, "truncated", (json_int_t)srv->truncated,
			    "malformed", (json_int_t)srv->malformed, "in_flight",
			    (json_int_t)srv->in_flight, "max_in_flight",
			    (json_int_t)srv->max_in_flight, "responses", srv->by_status,
			    "rule_hits", hits));
}

static void handle_reset(srv_t *srv, struct evhttp_request *req)
{
	srv->requests = srv->http_requests = srv->bad_requests = 0;
	srv->chat_requests = srv->messages_requests = 0;
	srv->hung = srv->truncated = srv->malformed = srv->faults = 0;
	srv->rl_limited = 0;
	srv->max_in_flight = srv->in_flight;
	json_object_clear(srv->by_status);
	for (size_t i = 0; i < srv->n_rules; i++)
		srv->rules[i].hits = 0;
	send_json(srv, req, 200, json_pack("{s:s}", "status", "ok"));
}

static void on_request(struct evhttp_request *req, void *arg)
{
	srv_t *srv = arg;
	const char *uri = evhttp_request_get_uri(req);
	size_t plen = strcspn(uri ? uri : "", "?#");
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	srv->http_requests++;
#define PATH_IS(p) (plen == strlen(p) && strncmp(uri, p, plen) == 0)
	if (PATH_IS("/v1/chat/completions") || PATH_IS("/chat/completions"))
		handle_chat(srv, req);
	else if (PATH_IS("/v1/messages") || PATH_IS("/messages"))
		handle_messages(srv, req);
	else if (PATH_IS("/health") && cmd == EVHTTP_REQ_GET)
		send_json(srv, req, 200, json_pack("{s:s}", "status", "ok"));
	else if (PATH_IS("/stats") && cmd == EVHTTP_REQ_GET)
		handle_stats(srv, req);
	else if (PATH_IS("/reset") && cmd == EVHTTP_REQ_POST)
		handle_reset(srv, req);
	else if (PATH_IS("/last-chat") && cmd == EVHTTP_REQ_GET) {
		if (srv->last_chat)
			send_json(srv, req, 200, json_incref(srv->last_chat));
		else
			send_error(srv, req, 404, "No chat request yet", "invalid_request_error",
				   NULL);
	}
	else
		send_error(srv, req, 404, "Unknown request URL", "invalid_request_error",
			   "unknown_url");
#undef PATH_IS
}

/* ---- script ------------------------------------------------------------------------------ */

static int load_rule(json_t *j, rule_t *r, size_t idx)
{
	json_error_t jerr;
	json_int_t request = 0, from = 0, to = 0, times = -1, status = 0, latency = -1;
	const char *match = NULL, *match_system = NULL, *action = NULL, *content = NULL, *refusal = NULL,
		   *finish = NULL;
	json_t *headers = NULL, *body = NULL, *tool_calls = NULL;

	if (json_unpack_ex(j, &jerr, JSON_STRICT,
			   "{s?I, s?I, s?I, s?s, s?s, s?I, s?I, s?o, s?o, s?s, s?s, s?s, s?o, s?s, s?I}",
			   "request", &request, "from", &from, "to", &to, "match", &match,
			   "match_system", &match_system, "times",
			   &times, "status", &status, "headers", &headers, "body", &body, "action",
			   &action, "content", &content, "refusal", &refusal, "tool_calls",
			   &tool_calls, "finish_reason", &finish, "latency_ms", &latency) != 0) {
		fprintf(stderr, "fakellm: could not load rule %zu: %s\n", idx, jerr.text);
		return -1;
	}
	memset(r, 0, sizeof(*r));
	r->from = (long)(request ? request : from);
	r->to = (long)(request ? request : to);
	r->match = match ? strdup(match) : NULL;
	r->match_system = match_system ? strdup(match_system) : NULL;
	r->times = (long)times;
	r->status = (int)status;
	r->latency_ms = (long)latency;
	if (headers && !json_is_object(headers)) {
		fprintf(stderr, "fakellm: could not load rule %zu: headers must be an object\n", idx);
		return -1;
	}
	r->headers = json_incref(headers);
	if (body)
		r->body = json_is_string(body) ? strdup(json_string_value(body))
					       : json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	if (tool_calls && !json_is_array(tool_calls)) {
		fprintf(stderr, "fakellm: could not load rule %zu: tool_calls must be an array\n",
			idx);
		return -1;
	}
	r->tool_calls = json_incref(tool_calls);
	r->content = content ? strdup(content) : NULL;
	r->refusal = refusal ? strdup(refusal) : NULL;
	r->finish_reason = finish ? strdup(finish) : NULL;
	if (!action || strcmp(action, "answer") == 0)
		r->action = ACT_ANSWER;
	else if (strcmp(action, "hang") == 0)
		r->action = ACT_HANG;
	else if (strcmp(action, "truncate") == 0)
		r->action = ACT_TRUNCATE;
	else if (strcmp(action, "malformed") == 0)
		r->action = ACT_MALFORMED;
	else if (strcmp(action, "bad_tool_args") == 0)
		r->action = ACT_BAD_TOOL_ARGS;
	else if (strcmp(action, "wrong_schema") == 0)
		r->action = ACT_WRONG_SCHEMA;
	else {
		fprintf(stderr, "fakellm: could not load rule %zu: unknown action \"%s\"\n", idx,
			action);
		return -1;
	}
	return 0;
}

static void rules_free(srv_t *srv)
{
	for (size_t i = 0; i < srv->n_rules; i++) {
		rule_t *r = &srv->rules[i];
		free(r->match);
		free(r->match_system);
		json_decref(r->headers);
		free(r->body);
		free(r->content);
		free(r->refusal);
		json_decref(r->tool_calls);
		free(r->finish_reason);
	}
	free(srv->rules);
	srv->rules = NULL;
	srv->n_rules = 0;
}

static int load_script(srv_t *srv, const char *path)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr), *rules, *j;
	size_t i;

	if (!root) {
		fprintf(stderr, "fakellm: could not load script \"%s\": %s (line %d)\n", path,
			jerr.text, jerr.line);
		return -1;
	}
	rules = json_is_array(root) ? root : json_object_get(root, "rules");
	if (json_is_string(json_object_get(root, "api_key"))) {
		srv->script_api_key = strdup(json_string_value(json_object_get(root, "api_key")));
		srv->api_key = srv->script_api_key;
	}
	if (json_is_object(root) && json_object_get(root, "ratelimit")) {
		json_int_t rq = 0, tk = 0, win = 60000;
		if (json_unpack_ex(json_object_get(root, "ratelimit"), &jerr, JSON_STRICT,
				   "{s?I, s?I, s?I}", "requests", &rq, "tokens", &tk, "window_ms",
				   &win) != 0 ||
		    rq < 0 || tk < 0 || win < 1) {
			fprintf(stderr, "fakellm: could not load script \"%s\": ratelimit: %s\n", path,
				jerr.text);
			json_decref(root);
			return -1;
		}
		srv->rl_requests = (long)rq;
		srv->rl_tokens = (long)tk;
		srv->rl_window_ms = (long)win;
	}
	if (!rules && json_is_object(root) &&
	    (json_object_get(root, "ratelimit") || json_object_get(root, "api_key"))) {
		json_decref(root);
		return 0; /* a script with only a rate limit */
	}
	if (!json_is_array(rules)) {
		fprintf(stderr, "fakellm: could not load script \"%s\": no \"rules\" array\n", path);
		json_decref(root);
		return -1;
	}
	srv->rules = calloc(json_array_size(rules) + 1, sizeof(rule_t));
	if (!srv->rules) {
		json_decref(root);
		return -1;
	}
	json_array_foreach(rules, i, j)
	{
		srv->n_rules = i + 1;
		if (load_rule(j, &srv->rules[i], i) != 0) {
			json_decref(root);
			return -1;
		}
	}
	json_decref(root);
	return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

static void usage(void)
{
	fprintf(stderr, "usage: fakellm --port N [--host ADDR] [--latency-ms N] [--script FILE] "
			"[--api-key KEY] [--rl-requests N] [--rl-tokens N] [--rl-window-ms MS]\n");
}

static bool parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;
	if (!s)
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

int main(int argc, char **argv)
{
	srv_t srv;
	const char *host = "127.0.0.1", *script = NULL;
	long port = -1;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct evconnlistener *lis;
	struct event *sigterm, *sigint;
	struct rlimit rl;
	int rc = 1;

	memset(&srv, 0, sizeof(srv));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--port") == 0 && parse_long(v, 0, 65535, &port))
			i++;
		else if (strcmp(a, "--latency-ms") == 0 &&
			 parse_long(v, 0, 86400000L, &srv.latency_ms))
			i++;
		else if (strcmp(a, "--script") == 0 && v)
			script = argv[++i];
		else if (strcmp(a, "--host") == 0 && v)
			host = argv[++i];
		else if (strcmp(a, "--api-key") == 0 && v)
			srv.api_key = argv[++i];
		else if (strcmp(a, "--rl-requests") == 0 &&
			 parse_long(v, 1, 100000000L, &srv.rl_requests))
			i++;
		else if (strcmp(a, "--rl-tokens") == 0 && parse_long(v, 1, 1000000000L, &srv.rl_tokens))
			i++;
		else if (strcmp(a, "--rl-window-ms") == 0 &&
			 parse_long(v, 1, 86400000L, &srv.rl_window_ms))
			i++;
		else {
			usage();
			return 2;
		}
	}
	if (port < 0) {
		usage();
		return 2;
	}
	if (!srv.rl_window_ms)
		srv.rl_window_ms = 60000;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "fakellm: invalid --host \"%s\"\n", host);
		return 2;
	}
	/* many concurrent clients: lift the descriptor limit to the hard limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	srv.by_status = json_object();
	if (script && load_script(&srv, script) != 0)
		goto out_rules;
	srv.base = event_base_new();
	if (!srv.base)
		goto out_rules;
	srv.http = evhttp_new(srv.base);
	if (!srv.http)
		goto out_base;
	evhttp_set_max_body_size(srv.http, 32 << 20);
	evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						     EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(srv.http, on_request, &srv);
	lis = evconnlistener_new_bind(srv.base, NULL, NULL,
				      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					      LEV_OPT_CLOSE_ON_EXEC,
				      4096, (struct sockaddr *)&sin, sizeof(sin));
	if (!lis) {
		fprintf(stderr, "fakellm: could not listen on %s:%ld: %s\n", host, port,
			strerror(errno));
		goto out_http;
	}
	if (!evhttp_bind_listener(srv.http, lis)) {
		evconnlistener_free(lis);
		goto out_http;
	}
	if (getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&sin, &slen) != 0)
		goto out_http;
	sigterm = evsignal_new(srv.base, SIGTERM, on_signal, srv.base);
	sigint = evsignal_new(srv.base, SIGINT, on_signal, srv.base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	printf("listening on %s:%u\n", host, (unsigned)ntohs(sin.sin_port));
	fflush(stdout);

	event_base_dispatch(srv.base);
	rc = 0;

	event_free(sigterm);
	event_free(sigint);
	/* requests whose client left were detached by evhttp: ours to free; the rest go with
	 * their connections in evhttp_free */
	while (srv.pending) {
		if (!evhttp_request_get_connection(srv.pending->req))
			evhttp_request_free(srv.pending->req);
		pending_unlink_free(srv.pending);
	}
out_http:
	evhttp_free(srv.http);
out_base:
	event_base_free(srv.base);
out_rules:
	rules_free(&srv);
	free(srv.script_api_key);
	json_decref(srv.last_chat);
	json_decref(srv.by_status);
	return rc;
}
