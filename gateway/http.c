/* http.c — routing, the one error-body writer, JSON replies, strict bodies and query strings, and
 * the operational routes (/healthz, /readyz, /metrics). */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log.h"

#define ROUTE_SEG_MAX 8

void gw_reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt,
		    ...)
{
	char msg[1024];
	va_list ap;
	json_t *j;
	char *s;
	struct evbuffer *b = evbuffer_new();
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	/* A message cut inside a UTF-8 sequence makes json_pack fail: still a JSON body. */
	evbuffer_add_printf(b, "%s\n",
			    s ? s : "{\"error\":{\"code\":\"internal\",\"message\":\"unprintable\"}}");
	evhttp_send_reply(req, status, code, b);
	evbuffer_free(b);
	free(s);
	json_decref(j);
}

void gw_reply_json_text(struct evhttp_request *req, int status, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add(b, text, strlen(text));
	evbuffer_add(b, "\n", 1);
	evhttp_send_reply(req, status, status == 202 ? "Accepted" : "OK", b);
	evbuffer_free(b);
}

void gw_reply_json(struct evhttp_request *req, int status, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	if (!s) {
		gw_reply_error(req, 500, "internal", "could not format the reply");
		return;
	}
	gw_reply_json_text(req, status, s);
	free(s);
}

static void reply_text(struct evhttp_request *req, const char *type, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evbuffer_add(b, text, strlen(text));
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

lh_err_t gw_pg_session(gw_t *gw, lh_error_t *err)
{
	char ms[24];
	const char *params[1] = {ms};
	snprintf(ms, sizeof(ms), "%lld", (long long)gw->cfg.pg_timeout_ms);
	return lh_pg_query(gw->pg, "session_statement_timeout", 1, params, NULL, NULL, NULL, err);
}

lh_err_t gw_pg_connect(gw_t *gw, lh_error_t *err)
{
	lh_err_t rc;
	if (gw->pg)
		return LH_OK;
	if ((rc = lh_pg_connect(gw->cfg.common.pg_url, &gw->pg, err)))
		return rc;
	if ((rc = gw_pg_session(gw, err))) {
		lh_pg_free(gw->pg);
		gw->pg = NULL;
	}
	return rc;
}

static bool pg_ready(gw_t *gw, lh_error_t *err)
{
	int v;
	if (gw_pg_connect(gw, err))
		return false;
	return lh_pg_schema_version(gw->pg, &v, err) == LH_OK;
}

bool gw_pg(gw_t *gw, struct evhttp_request *req)
{
	lh_error_t err = {0};
	if (gw_pg_connect(gw, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		return false;
	}
	return true;
}

json_t *gw_read_body(gw_t *gw, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *j;
	if (len > (size_t)gw->cfg.max_body) {
		gw_reply_error(req, 413, "body_too_large", "the body is %zu bytes; the limit is %lld",
			       len, (long long)gw->cfg.max_body);
		return NULL;
	}
	if (len == 0) {
		gw_reply_error(req, 400, "invalid_json", "the body is empty; send a JSON object");
		return NULL;
	}
	j = json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		gw_reply_error(req, 400, "invalid_json", "could not parse the body: %s (line %d, "
			       "column %d)", jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		gw_reply_error(req, 400, "invalid_json", "the body must be a JSON object");
		json_decref(j);
		return NULL;
	}
	return j;
}

bool gw_query_params(struct evhttp_request *req, const char *allowed, struct evkeyvalq *ret_q)
{
	const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	ret_q->tqh_first = NULL;
	ret_q->tqh_last = &ret_q->tqh_first;
	if (!qs || !*qs)
		return true;
	if (evhttp_parse_query_str(qs, ret_q)) {
		gw_reply_error(req, 400, "invalid_query", "could not parse the query string");
		return false;
	}
	for (struct evkeyval *kv = ret_q->tqh_first; kv; kv = kv->next.tqe_next) {
		size_t n = strlen(kv->key);
		const char *p = allowed;
		bool ok = false;
		while (p && *p) {
			size_t w = strcspn(p, "|");
			if (w == n && strncmp(p, kv->key, n) == 0)
				ok = true;
			p += w + (p[w] == '|');
		}
		if (!ok) {
			gw_reply_error(req, 400, "invalid_query", "unknown query parameter \"%.64s\"",
				       kv->key);
			evhttp_clear_headers(ret_q);
			return false;
		}
	}
	return true;
}

bool gw_query_limit(struct evhttp_request *req, struct evkeyvalq *q, int def, int max,
		    char out[16])
{
	const char *s = evhttp_find_header(q, "limit");
	char *end;
	long v = def;
	if (s) {
		v = strtol(s, &end, 10);
		if (!*s || *end || v < 1 || v > max) {
			gw_reply_error(req, 400, "invalid_query",
				       "limit must be an integer from 1 to %d, not \"%.32s\"", max, s);
			return false;
		}
	}
	snprintf(out, 16, "%ld", v);
	return true;
}

static void metrics(gw_t *gw, struct evhttp_request *req)
{
	lh_error_t err = {0};
	lh_pg_res_t *res = NULL;
	struct evbuffer *b;
	if (!pg_ready(gw, &err) ||
	    lh_pg_query(gw->pg, "metrics_plans", 0, NULL, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, "# HELP lh_plans Plans by status.\n# TYPE lh_plans gauge\n");
	for (int i = 0; i < lh_pg_nrows(res); i++)
		evbuffer_add_printf(b, "lh_plans{status=\"%s\"} %s\n", lh_pg_get(res, i, 0),
				    lh_pg_get(res, i, 1));
	lh_pg_res_free(res);
	res = NULL;
	if (lh_pg_query(gw->pg, "metrics_usage", 0, NULL, NULL, NULL, &res, &err) == LH_OK &&
	    lh_pg_nrows(res) == 1) {
		evbuffer_add_printf(b,
				    "# HELP lh_tokens_total Tokens used by all plans.\n"
				    "# TYPE lh_tokens_total counter\n"
				    "lh_tokens_total{direction=\"input\"} %s\n"
				    "lh_tokens_total{direction=\"output\"} %s\n"
				    "# HELP lh_cost_usd_total Model cost of all plans.\n"
				    "# TYPE lh_cost_usd_total counter\nlh_cost_usd_total %s\n"
				    "# HELP lh_attempts_total Task attempts by status.\n"
				    "# TYPE lh_attempts_total counter\n",
				    lh_pg_get(res, 0, 0), lh_pg_get(res, 0, 1), lh_pg_get(res, 0, 2));
	}
	lh_pg_res_free(res);
	res = NULL;
	if (lh_pg_query(gw->pg, "metrics_attempts", 0, NULL, NULL, NULL, &res, &err) == LH_OK)
		for (int i = 0; i < lh_pg_nrows(res); i++)
			evbuffer_add_printf(b, "lh_attempts_total{status=\"%s\"} %s\n",
					    lh_pg_get(res, i, 0), lh_pg_get(res, i, 1));
	lh_pg_res_free(res);
	evbuffer_add_printf(b,
			    "# HELP lh_gateway_streams Open server-sent event streams.\n"
			    "# TYPE lh_gateway_streams gauge\nlh_gateway_streams %d\n",
			    gw->nstreams);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* Split "/v1/plans/ID/sub" into segments (pointers into buf). Empty segments (a double or final
 * slash) make the path unknown. Returns the count or -1. */
static int split_path(const char *path, char *buf, size_t bufsz, char *seg[ROUTE_SEG_MAX])
{
	int n = 0;
	char *p;
	if (!path || path[0] != '/' || strlen(path) >= bufsz)
		return -1;
	snprintf(buf, bufsz, "%s", path + 1);
	for (p = buf; n < ROUTE_SEG_MAX;) {
		char *slash = strchr(p, '/');
		seg[n++] = p;
		if (!*p)
			return -1;
		if (!slash)
			return n;
		*slash = 0;
		p = slash + 1;
	}
	return -1;
}

static bool method_is(struct evhttp_request *req, enum evhttp_cmd_type want, const char *allow)
{
	if (evhttp_request_get_command(req) == want)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	gw_reply_error(req, 405, "method_not_allowed", "this route answers %s only", allow);
	return false;
}

#define IS(i, s) (strcmp(seg[i], s) == 0)

void gw_http_on_request(struct evhttp_request *req, void *arg)
{
	gw_t *gw = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char buf[1024];
	char *seg[ROUTE_SEG_MAX];
	int n = split_path(path, buf, sizeof(buf), seg);
	lh_error_t err = {0};

	/* The dashboard: "/", "/dashboard" and "/dashboard/" (a final slash split_path refuses). */
	if (path && (!strcmp(path, "/") || !strcmp(path, "/dashboard"))) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			gw_static_redirect(req, "/dashboard/");
		return;
	}
	if (path && !strcmp(path, "/dashboard/")) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			gw_static_get(req, "index.html");
		return;
	}
	if (n == 2 && IS(0, "dashboard")) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			gw_static_get(req, seg[1]);
		return;
	}
	if (n == 1 && IS(0, "healthz")) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			reply_text(req, "text/plain", "ok\n");
	} else if (n == 1 && IS(0, "readyz")) {
		if (!method_is(req, EVHTTP_REQ_GET, "GET"))
			return;
		if (!pg_ready(gw, &err))
			gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		else if (lh_kafka_wait_ready(gw->kafka, 2000, &err))
			gw_reply_error(req, 503, "kafka_unavailable", "%s", err.msg);
		else
			reply_text(req, "text/plain", "ready\n");
	} else if (n == 1 && IS(0, "metrics")) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			metrics(gw, req);
	} else if (n >= 2 && IS(0, "v1")) {
		if (n == 2 && IS(1, "goals")) {
			if (method_is(req, EVHTTP_REQ_POST, "POST"))
				gw_api_goals_post(gw, req);
		} else if (n == 2 && IS(1, "plans")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				gw_api_plans_list(gw, req);
		} else if (n == 3 && IS(1, "plans")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				gw_api_plan(gw, req, seg[2], "");
		} else if (n == 4 && IS(1, "plans") &&
			   (IS(3, "decisions") || IS(3, "attempts") || IS(3, "events") ||
			    IS(3, "messages"))) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				gw_api_plan(gw, req, seg[2], seg[3]);
		} else if (n == 4 && IS(1, "plans") &&
			   (IS(3, "pause") || IS(3, "resume") || IS(3, "cancel") ||
			    IS(3, "modify"))) {
			if (method_is(req, EVHTTP_REQ_POST, "POST"))
				gw_api_plan(gw, req, seg[2], seg[3]);
		} else if (n == 6 && IS(1, "plans") && IS(3, "tasks") && IS(5, "cancel")) {
			if (method_is(req, EVHTTP_REQ_POST, "POST"))
				gw_api_task_cancel(gw, req, seg[2], seg[4]);
		} else if (n == 2 && IS(1, "requests")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				gw_api_requests_list(gw, req);
		} else if (n == 5 && IS(1, "requests") && IS(4, "decision")) {
			if (method_is(req, EVHTTP_REQ_POST, "POST"))
				gw_api_request_decision(gw, req, seg[2], seg[3]);
		} else if (n == 5 && IS(1, "requests") && IS(4, "answer")) {
			if (method_is(req, EVHTTP_REQ_POST, "POST"))
				gw_api_request_answer(gw, req, seg[2], seg[3]);
		} else if (n == 2 && IS(1, "memories")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				gw_api_memories_search(gw, req);
		} else if (n == 3 && IS(1, "memories")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				gw_api_memory_get(gw, req, seg[2]);
		} else if (n == 4 && IS(1, "memories") && IS(3, "forget")) {
			if (method_is(req, EVHTTP_REQ_POST, "POST"))
				gw_api_memory_forget(gw, req, seg[2]);
		} else if (n == 3 && IS(1, "links")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				gw_links_get(gw, req, seg[2]);
		} else
			gw_reply_error(req, 404, "not_found", "no such route");
	} else
		gw_reply_error(req, 404, "not_found", "no such route");
}
