/* 0017-openapi: docs/openapi.yaml (JSON syntax, so Jansson reads it) against a running
 * lh-gateway. The document is checked structurally (OpenAPI 3.1: info, paths, every operation has
 * responses, every path parameter declared, every $ref resolves, every schema compiles with
 * common/jsonschema); then every documented operation is called for real on a stack (a gateway
 * with --no-auth, one with tokens, one with a bucket of one request for 429), and each reply's
 * status must be documented for that operation and its JSON body (or each SSE data line) must
 * match the documented schema. Finally the router is probed on every route it serves plus likely
 * neighbours with every method: anything that is not 404 "no such route" or 405 must be a
 * documented operation, and a 405's Allow header must name documented methods only. */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsonschema.h"
#include "memory.h"
#include "pg.h"
#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static json_t *doc;    /* the document as written */
static json_t *sdoc;   /* components.schemas with "#/components/schemas/X" refs rewritten to "X" */
static json_t *probed; /* "METHOD TEMPLATE" -> true */
static int port_open, port_auth, port_slow;
static char tok_viewer[80], tok_admin[80], tok_slow[80];
static char plan_done[40], plan_budget[40], rid_budget[160], rid_question[64];
static char key_prefix[48];

typedef struct resp {
	long status;
	char body[1 << 18];
	size_t len;
	char ctype[128];
	char allow[128];
	char csp[256];
	char location[128];
	char etag[80];
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

static void header_value(const char *p, size_t len, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	if (len > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
		const char *v = p + nl + 1;
		while (*v == ' ')
			v++;
		snprintf(out, outsz, "%.*s", (int)strcspn(v, "\r\n"), v);
	}
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	resp_t *x = arg;
	header_value(p, size * n, "Content-Type", x->ctype, sizeof(x->ctype));
	header_value(p, size * n, "Allow", x->allow, sizeof(x->allow));
	header_value(p, size * n, "Content-Security-Policy", x->csp, sizeof(x->csp));
	header_value(p, size * n, "Location", x->location, sizeof(x->location));
	header_value(p, size * n, "ETag", x->etag, sizeof(x->etag));
	return size * n;
}

/* One HTTP call; fills r. token/idem/body/extra may be NULL. */
static long http(int port, const char *method, const char *path, const char *token,
		 const char *idem, const char *body, const char *extra)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[600], line[256];
	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
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
		snprintf(line, sizeof(line), "Idempotency-Key: %s%s", key_prefix, idem);
		h = curl_slist_append(h, line);
	}
	if (extra)
		h = curl_slist_append(h, extra);
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

/* ---- the document ---- */

/* Resolve a local JSON pointer ("#/a/b") in doc; borrowed or NULL. */
static json_t *pointer(json_t *root, const char *ref)
{
	char tok[256];
	json_t *cur = root;
	const char *p;
	if (strncmp(ref, "#", 1) != 0)
		return NULL;
	p = ref + 1;
	while (cur && *p == '/') {
		size_t n = strcspn(p + 1, "/"), o = 0;
		for (size_t i = 0; i < n && o < sizeof(tok) - 1; i++) {
			if (p[1 + i] == '~' && i + 1 < n && (p[2 + i] == '0' || p[2 + i] == '1')) {
				tok[o++] = p[2 + i] == '0' ? '~' : '/';
				i++;
			} else
				tok[o++] = p[1 + i];
		}
		tok[o] = 0;
		cur = json_is_object(cur) ? json_object_get(cur, tok)
		      : json_is_array(cur) ? json_array_get(cur, (size_t)atoi(tok))
					   : NULL;
		p += 1 + n;
	}
	return *p ? NULL : cur;
}

/* Follow a {"$ref": ...} object to its target (one level at a time, at most 8). */
static json_t *deref(json_t *v)
{
	for (int i = 0; i < 8 && json_is_object(v) && json_object_get(v, "$ref"); i++)
		v = pointer(doc, json_string_value(json_object_get(v, "$ref")));
	return v;
}

/* Every $ref anywhere must be a string that resolves inside the document; counts failures. */
static int check_refs(json_t *v, const char *where)
{
	int bad = 0;
	const char *k;
	json_t *x;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach(v, k, x)
		{
			if (!strcmp(k, "$ref") && (!json_is_string(x) || !pointer(doc, json_string_value(x)))) {
				fprintf(stderr, "# unresolved $ref at %s: %s\n", where,
					json_is_string(x) ? json_string_value(x) : "(not a string)");
				bad++;
			} else
				bad += check_refs(x, k);
		}
	} else if (json_is_array(v))
		json_array_foreach(v, i, x) bad += check_refs(x, where);
	return bad;
}

/* Rewrite "#/components/schemas/X" to "X" so the jsonschema resolver can hand out X. */
static void rewrite_refs(json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach(v, k, x)
		{
			if (!strcmp(k, "$ref") && json_is_string(x) &&
			    !strncmp(json_string_value(x), "#/components/schemas/", 21))
				json_object_set_new(v, "$ref",
						    json_string(json_string_value(x) + 21));
			else
				rewrite_refs(x);
		}
	} else if (json_is_array(v))
		json_array_foreach(v, i, x) rewrite_refs(x);
}

static const json_t *resolve_schema(const char *ref, void *opaque)
{
	return json_object_get(opaque, ref);
}

/* Compile a schema of the document (a {"$ref": "#/components/schemas/X"} or inline); new. */
static lh_jsonschema_t *compile(json_t *schema, lh_error_t *err)
{
	json_t *copy = json_deep_copy(schema);
	lh_jsonschema_opts_t o = {.resolve = resolve_schema, .opaque = sdoc};
	lh_jsonschema_t *s = NULL;
	rewrite_refs(copy);
	if (lh_jsonschema_compile_ex(copy, &o, &s, err))
		s = NULL;
	json_decref(copy);
	return s;
}

static const char *const methods[] = {"get", "put", "post", "delete", "options", "head",
				      "patch", "trace", NULL};

static bool is_method(const char *k)
{
	for (int i = 0; methods[i]; i++)
		if (!strcmp(k, methods[i]))
			return true;
	return false;
}

static void t_structure(void)
{
	const char *v = json_string_value(json_object_get(doc, "openapi"));
	json_t *info = json_object_get(doc, "info"), *paths = json_object_get(doc, "paths");
	json_t *ids = json_object();
	const char *path, *k, *code;
	json_t *item, *opv, *resp;
	int nops = 0;
	T_CHECK(v && !strncmp(v, "3.1.", 4));
	T_CHECK(json_is_string(json_object_get(doc, "x-format-note")));
	T_CHECK(json_is_object(info) && json_is_string(json_object_get(info, "title")) &&
		json_is_string(json_object_get(info, "version")));
	T_CHECK(json_is_object(paths) && json_object_size(paths) > 0);
	T_EQ_INT(check_refs(doc, "(root)"), 0);
	json_object_foreach(paths, path, item)
	{
		T_CHECK(path[0] == '/');
		json_object_foreach(item, k, opv)
		{
			json_t *resps = json_object_get(opv, "responses"), *params;
			const char *opid = json_string_value(json_object_get(opv, "operationId"));
			size_t i;
			json_t *p;
			int npath = 0;
			if (!is_method(k)) {
				T_CHECK(!strcmp(k, "parameters") || !strcmp(k, "summary") ||
					!strcmp(k, "description") || !strncmp(k, "x-", 2));
				continue;
			}
			nops++;
			T_CHECK(opid && !json_object_get(ids, opid));
			if (opid)
				json_object_set_new(ids, opid, json_true());
			T_CHECK(json_is_object(resps) && json_object_size(resps) > 0);
			json_object_foreach(resps, code, resp)
			{
				json_t *rr = deref(resp);
				T_CHECK(!strcmp(code, "default") ||
					(strlen(code) == 3 && code[0] >= '1' && code[0] <= '5' &&
					 isdigit((unsigned char)code[1]) &&
					 isdigit((unsigned char)code[2])));
				T_CHECK(json_is_string(json_object_get(rr, "description")));
			}
			/* every {name} of the template is a required path parameter, and back */
			params = json_object_get(opv, "parameters");
			json_array_foreach(params, i, p)
			{
				json_t *d = deref(p);
				const char *in = json_string_value(json_object_get(d, "in"));
				const char *name = json_string_value(json_object_get(d, "name"));
				char want[80];
				T_CHECK(in && name &&
					(!strcmp(in, "path") || !strcmp(in, "query") ||
					 !strcmp(in, "header") || !strcmp(in, "cookie")));
				T_CHECK(json_object_get(d, "schema") != NULL);
				if (in && name && !strcmp(in, "path")) {
					npath++;
					snprintf(want, sizeof(want), "{%s}", name);
					T_CHECK(strstr(path, want) != NULL);
					T_CHECK(json_is_true(json_object_get(d, "required")));
				}
			}
			{
				int braces = 0;
				for (const char *c = path; *c; c++)
					braces += *c == '{';
				T_EQ_INT(braces, npath);
			}
		}
	}
	printf("# %d operations in %zu paths\n", nops, json_object_size(paths));
	T_CHECK(nops >= 15);
	json_decref(ids);
}

static void t_schemas_compile(void)
{
	const char *name;
	json_t *s;
	json_object_foreach(sdoc, name, s)
	{
		lh_error_t err = {0};
		json_t *ref = json_pack("{s:s+}", "$ref", "#/components/schemas/", name);
		lh_jsonschema_t *c = compile(ref, &err);
		if (!c)
			fprintf(stderr, "# schema %s: %s\n", name, err.msg);
		T_CHECK(c != NULL);
		lh_jsonschema_free(c);
		json_decref(ref);
	}
}

/* ---- probing ---- */

/* Validate text (JSON) against schema; prints the error. */
static bool valid(json_t *schema, const char *text, const char *what)
{
	lh_error_t err = {0};
	lh_jsonschema_t *c = compile(schema, &err);
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	bool ok = c && v && lh_jsonschema_validate(c, v, &err) == LH_OK;
	if (!ok)
		fprintf(stderr, "# %s: %s\n# body: %.300s\n", what, v ? err.msg : "not JSON", text);
	lh_jsonschema_free(c);
	json_decref(v);
	return ok;
}

/* Check the last reply against the operation METHOD TEMPLATE of the document. */
static bool check_reply(const char *method, const char *tmpl)
{
	char lower[16], code[8], key[300];
	json_t *opv, *resp, *content, *media;
	const char *ct;
	size_t i;
	for (i = 0; method[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)method[i]);
	lower[i] = 0;
	snprintf(key, sizeof(key), "%s %s", method, tmpl);
	json_object_set_new(probed, key, json_true());
	opv = json_object_get(json_object_get(json_object_get(doc, "paths"), tmpl), lower);
	if (!opv) {
		fprintf(stderr, "# undocumented operation %s\n", key);
		return false;
	}
	snprintf(code, sizeof(code), "%ld", r.status);
	resp = deref(json_object_get(json_object_get(opv, "responses"), code));
	if (!resp)
		resp = deref(json_object_get(json_object_get(opv, "responses"), "default"));
	if (!resp) {
		fprintf(stderr, "# %s answered %ld, not documented: %.200s\n", key, r.status, r.body);
		return false;
	}
	content = json_object_get(resp, "content");
	if (!content)
		return true;
	ct = r.ctype;
	media = json_object_get(content, ct);
	if (!media) {
		fprintf(stderr, "# %s %ld: Content-Type \"%s\" not documented\n", key, r.status, ct);
		return false;
	}
	if (!strcmp(ct, "application/json"))
		return valid(json_object_get(media, "schema"), r.body, key);
	if (!strcmp(ct, "text/event-stream")) {
		json_t *ds = json_object_get(media, "x-data-schema");
		int n = 0;
		bool ok = true;
		for (char *p = r.body; (p = strstr(p, "\ndata: ")) != NULL;) {
			char *end = strchr(p + 7, '\n');
			if (!end)
				break;
			*end = 0;
			ok = valid(ds, p + 7, key) && ok;
			*end = '\n';
			p = end;
			n++;
		}
		return ok && n > 0;
	}
	return true;
}

/* Call and check against the document; expect is the status this case must produce. */
#define PROBE(expect, port, method, tmpl, path, token, idem, body, extra)                         \
	do {                                                                                      \
		T_EQ_INT(http(port, method, path, token, idem, body, extra), expect);                \
		T_CHECK(check_reply(method, tmpl));                                               \
	} while (0)

/* Start a gateway (up to four extra arguments, NULL-ended) and read its port from the log. */
static int start_gateway(const char *name, const char *a1, const char *a2, const char *a3,
			 const char *a4)
{
	ts_spawn(&ts, name, "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0",
		 "--max-streams", "4", a1, a2, a3, a4, NULL);
	return ts_gateway_port(&ts, name);
}

static void make_token(const char *name, const char *role, char out[80])
{
	char cmd[1024];
	FILE *p;
	snprintf(cmd, sizeof(cmd),
		 "%s/gateway/lh-gateway --pg-url '%s' --create-token %s%s --role %s --tenant %s",
		 ts.build_root, ts.pg_url, ts.prefix, name, role, ts.prefix);
	out[0] = 0;
	p = popen(cmd, "r");
	if (p) {
		if (!fgets(out, 80, p))
			out[0] = 0;
		pclose(p);
	}
	out[strcspn(out, "\n")] = 0;
}

static const char *plan_id_of_reply(char out[40])
{
	json_t *j = json_loads(r.body, 0, NULL);
	const char *s = NULL;
	json_unpack(j, "{s:s}", "plan_id", &s);
	snprintf(out, 40, "%s", s ? s : "");
	json_decref(j);
	return out;
}

static void t_operational(void)
{
	PROBE(200, port_open, "GET", "/healthz", "/healthz", NULL, NULL, NULL, NULL);
	PROBE(200, port_open, "GET", "/readyz", "/readyz", NULL, NULL, NULL, NULL);
	PROBE(200, port_open, "GET", "/metrics", "/metrics", NULL, NULL, NULL, NULL);
	T_CHECK(strstr(r.body, "lh_gateway_streams") != NULL);
	/* no token needed even on a gateway with tokens */
	PROBE(200, port_auth, "GET", "/healthz", "/healthz", NULL, NULL, NULL, NULL);
	PROBE(200, port_auth, "GET", "/metrics", "/metrics", NULL, NULL, NULL, NULL);
}

static void t_goals(void)
{
	char *big;
	char again[40];
	const char *g = "{\"goal\":\"Plan a weekend in Porto\",\"metadata\":{\"from\":\"0017\"}}";
	PROBE(202, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-1", g, NULL);
	plan_id_of_reply(plan_done);
	T_CHECK(strlen(plan_done) == 36);
	PROBE(202, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-1", g, NULL);
	T_EQ_STR(plan_id_of_reply(again), plan_done);
	PROBE(422, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-1",
	      "{\"goal\":\"another\"}", NULL);
	PROBE(400, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-x", "{\"goal\":", NULL);
	PROBE(400, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-x",
	      "{\"goal\":\"a\",\"colour\":1}", NULL);
	PROBE(400, port_open, "POST", "/v1/goals", "/v1/goals", NULL, NULL, "{\"goal\":\"a\"}",
	      NULL);
	big = malloc(70000);
	memset(big, 'a', 69999);
	big[69999] = 0;
	memcpy(big, "{\"goal\":\"", 9);
	big[69997] = '"';
	big[69998] = '}';
	PROBE(413, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-big", big, NULL);
	free(big);
	PROBE(401, port_auth, "POST", "/v1/goals", "/v1/goals", NULL, "goal-a", g, NULL);
	PROBE(403, port_auth, "POST", "/v1/goals", "/v1/goals", tok_viewer, "goal-a", g, NULL);
	PROBE(429, port_slow, "POST", "/v1/goals", "/v1/goals", tok_slow, "goal-s", g, NULL);
	/* the plan that waits for a budget extension (a request to decide) */
	PROBE(202, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-budget",
	      "{\"goal\":\"Plan a weekend in Porto\",\"budget\":{\"tokens\":700}}", NULL);
	plan_id_of_reply(plan_budget);
	printf("# plans %s (completes), %s (waits for a budget extension)\n", plan_done,
	       plan_budget);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan_done,
			    "completed"));
}

/* Every read of a plan: 200 and its schema, 404, 400, 401, 429. */
static void t_plan_reads(void)
{
	static const char *const subs[] = {"",	       "/decisions", "/attempts",
					   "/messages", "/events",    NULL};
	const char *unknown = "01900000-0000-7000-8000-000000000000";
	char path[300], tmpl[80];
	PROBE(200, port_open, "GET", "/v1/plans", "/v1/plans", NULL, NULL, NULL, NULL);
	T_CHECK(strstr(r.body, plan_done) != NULL);
	PROBE(200, port_open, "GET", "/v1/plans", "/v1/plans?status=completed&limit=500", NULL, NULL,
	      NULL, NULL);
	PROBE(400, port_open, "GET", "/v1/plans", "/v1/plans?status=sideways", NULL, NULL, NULL,
	      NULL);
	PROBE(400, port_open, "GET", "/v1/plans", "/v1/plans?limit=501", NULL, NULL, NULL, NULL);
	PROBE(401, port_auth, "GET", "/v1/plans", "/v1/plans", NULL, NULL, NULL, NULL);
	PROBE(200, port_auth, "GET", "/v1/plans", "/v1/plans", tok_viewer, NULL, NULL, NULL);
	PROBE(429, port_slow, "GET", "/v1/plans", "/v1/plans", tok_slow, NULL, NULL, NULL);
	for (int i = 0; subs[i]; i++) {
		snprintf(tmpl, sizeof(tmpl), "/v1/plans/{plan_id}%s", subs[i]);
		snprintf(path, sizeof(path), "/v1/plans/%s%s", plan_done, subs[i]);
		PROBE(200, port_open, "GET", tmpl, path, NULL, NULL, NULL, NULL);
		snprintf(path, sizeof(path), "/v1/plans/%s%s?colour=red", plan_done, subs[i]);
		PROBE(400, port_open, "GET", tmpl, path, NULL, NULL, NULL, NULL);
		snprintf(path, sizeof(path), "/v1/plans/%s%s", unknown, subs[i]);
		PROBE(404, port_open, "GET", tmpl, path, NULL, NULL, NULL, NULL);
		snprintf(path, sizeof(path), "/v1/plans/not-a-uuid%s", subs[i]);
		PROBE(404, port_open, "GET", tmpl, path, NULL, NULL, NULL, NULL);
		snprintf(path, sizeof(path), "/v1/plans/%s%s", plan_done, subs[i]);
		PROBE(401, port_auth, "GET", tmpl, path, NULL, NULL, NULL, NULL);
		PROBE(401, port_auth, "GET", tmpl, path, "lh_not_a_token", NULL, NULL, NULL);
		PROBE(404, port_auth, "GET", tmpl, path, tok_viewer, NULL, NULL, NULL); /* tenant */
		PROBE(429, port_slow, "GET", tmpl, path, tok_slow, NULL, NULL, NULL);
	}
	/* the conversations: filtered by task and attempt, bounded, validated */
	{
		const char *mt = "/v1/plans/{plan_id}/messages";
		snprintf(path, sizeof(path), "/v1/plans/%s/messages?task=1&attempt=1&limit=2",
			 plan_done);
		PROBE(200, port_open, "GET", mt, path, NULL, NULL, NULL, NULL);
		T_CHECK(strstr(r.body, "\"role\":\"system\"") && strstr(r.body, "\"seq\":1") &&
			!strstr(r.body, "\"seq\":2") && !strstr(r.body, "\"task_no\":0"));
		snprintf(path, sizeof(path), "/v1/plans/%s/messages?task=0", plan_done);
		PROBE(200, port_open, "GET", mt, path, NULL, NULL, NULL, NULL);
		T_CHECK(strstr(r.body, "\"task_no\":0") && !strstr(r.body, "\"task_no\":1"));
		static const char *const bad[] = {"task=x", "task=-1", "attempt=0", "limit=10001",
						  "task=", NULL};
		for (int i = 0; bad[i]; i++) {
			snprintf(path, sizeof(path), "/v1/plans/%s/messages?%s", plan_done, bad[i]);
			PROBE(400, port_open, "GET", mt, path, NULL, NULL, NULL, NULL);
		}
	}
	snprintf(path, sizeof(path), "/v1/plans/%s/events", plan_done);
	PROBE(400, port_open, "GET", "/v1/plans/{plan_id}/events", path, NULL, NULL, NULL,
	      "Last-Event-ID: x");
	PROBE(200, port_open, "GET", "/v1/plans/{plan_id}/events", path, NULL, NULL, NULL,
	      "Last-Event-ID: 0");
	snprintf(path, sizeof(path), "/v1/plans/%s/events?after=-1", plan_done);
	PROBE(200, port_open, "GET", "/v1/plans/{plan_id}/events", path, NULL, NULL, NULL, NULL);
	T_CHECK(strstr(r.body, "event: goal.submitted\n") != NULL);
}

/* Cancel one task: a plan paused by its task budget (tasks 2.. never started) loses task 3. */
static void t_cancel_task(void)
{
	const char *tmpl = "/v1/plans/{plan_id}/tasks/{task_no}/cancel";
	char plan[40], path[300];
	PROBE(202, port_open, "POST", "/v1/goals", "/v1/goals", NULL, "goal-tasks",
	      "{\"goal\":\"Plan a weekend in Porto\",\"budget\":{\"tasks\":2}}", NULL);
	plan_id_of_reply(plan);
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'budget_extension'",
			    plan, "pending"));
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 3", plan),
		 "pending");
	snprintf(path, sizeof(path), "/v1/plans/%s/tasks/3/cancel", plan);
	PROBE(401, port_auth, "POST", tmpl, path, NULL, "ct-1", NULL, NULL);
	PROBE(403, port_auth, "POST", tmpl, path, tok_viewer, "ct-1", NULL, NULL);
	PROBE(404, port_auth, "POST", tmpl, path, tok_admin, "ct-1", NULL, NULL); /* tenant */
	PROBE(429, port_slow, "POST", tmpl, path, tok_slow, "ct-1", NULL, NULL);
	PROBE(400, port_open, "POST", tmpl, path, NULL, "ct-bad", "{\"task_no\":4}", NULL);
	PROBE(400, port_open, "POST", tmpl, path, NULL, NULL, NULL, NULL);
	PROBE(202, port_open, "POST", tmpl, path, NULL, "ct-1", "{\"reason\":\"not needed\"}",
	      NULL);
	T_CHECK(strstr(r.body, "\"task_no\":3") && strstr(r.body, "cancel_task"));
	PROBE(202, port_open, "POST", tmpl, path, NULL, "ct-1", "{\"reason\":\"not needed\"}",
	      NULL);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 3", plan,
			    "cancelled"));
	T_EQ_INT(ts_count_events(&ts, plan, "command.issued"), 1);
	PROBE(409, port_open, "POST", tmpl, path, NULL, "ct-2", NULL, NULL); /* cancelled */
	snprintf(path, sizeof(path), "/v1/plans/%s/tasks/1/cancel", plan);
	PROBE(409, port_open, "POST", tmpl, path, NULL, "ct-3", NULL, NULL); /* succeeded */
	T_CHECK(strstr(r.body, "task_finished") != NULL);
	snprintf(path, sizeof(path), "/v1/plans/%s/tasks/99/cancel", plan);
	PROBE(404, port_open, "POST", tmpl, path, NULL, "ct-4", NULL, NULL);
	snprintf(path, sizeof(path), "/v1/plans/%s/tasks/0/cancel", plan);
	PROBE(404, port_open, "POST", tmpl, path, NULL, "ct-5", NULL, NULL);
	snprintf(path, sizeof(path), "/v1/plans/%s/tasks/01/cancel", plan);
	PROBE(404, port_open, "POST", tmpl, path, NULL, "ct-6", NULL, NULL);
	snprintf(path, sizeof(path), "/v1/plans/%s/tasks/x/cancel", plan);
	PROBE(404, port_open, "POST", tmpl, path, NULL, "ct-7", NULL, NULL);
	PROBE(404, port_open, "POST", tmpl,
	      "/v1/plans/01900000-0000-7000-8000-000000000000/tasks/1/cancel", NULL, "ct-8", NULL,
	      NULL);

	/* modify the same plan: task 3 is cancelled, 4 skipped; add 6 after 2 */
	tmpl = "/v1/plans/{plan_id}/modify";
	snprintf(path, sizeof(path), "/v1/plans/%s/modify", plan);
	{
		const char *patch = "{\"base_version\":1,\"tasks\":[{\"task_no\":6,\"tier\":"
				    "\"fast\",\"instructions\":\"Sum up ${2}\",\"refs\":[2]}]}";
		PROBE(401, port_auth, "POST", tmpl, path, NULL, "mod-1", patch, NULL);
		PROBE(403, port_auth, "POST", tmpl, path, tok_viewer, "mod-1", patch, NULL);
		PROBE(404, port_auth, "POST", tmpl, path, tok_admin, "mod-1", patch, NULL);
		PROBE(429, port_slow, "POST", tmpl, path, tok_slow, "mod-1", patch, NULL);
		PROBE(400, port_open, "POST", tmpl, path, NULL, "mod-x", "{\"base_version\":1}",
		      NULL);
		PROBE(400, port_open, "POST", tmpl, path, NULL, NULL, patch, NULL);
		PROBE(409, port_open, "POST", tmpl, path, NULL, "mod-x",
		      "{\"base_version\":1,\"remove\":[1]}", NULL);
		T_CHECK(strstr(r.body, "task_finished") != NULL);
		PROBE(409, port_open, "POST", tmpl, path, NULL, "mod-y",
		      "{\"base_version\":5,\"remove\":[4]}", NULL);
		T_CHECK(strstr(r.body, "version_conflict") != NULL);
		PROBE(202, port_open, "POST", tmpl, path, NULL, "mod-1", patch, NULL);
		T_CHECK(strstr(r.body, "\"join\":7") != NULL);
		PROBE(422, port_open, "POST", tmpl, path, NULL, "mod-1",
		      "{\"base_version\":1,\"join_instructions\":\"x\"}", NULL);
		T_CHECK(ts_wait_sql(&ts, 60000, "SELECT version FROM plans WHERE plan_id = $1", plan,
				    "2"));
		PROBE(202, port_open, "POST", tmpl, path, NULL, "mod-1", patch, NULL); /* retry */
		PROBE(404, port_open, "POST", tmpl,
		      "/v1/plans/01900000-0000-7000-8000-000000000000/modify", NULL, "mod-z", patch,
		      NULL);
	}
}

static void t_commands(void)
{
	static const char *const cmds[] = {"pause", "resume", "cancel", NULL};
	char path[300], tmpl[80], key[32];
	for (int i = 0; cmds[i]; i++) {
		snprintf(tmpl, sizeof(tmpl), "/v1/plans/{plan_id}/%s", cmds[i]);
		snprintf(path, sizeof(path), "/v1/plans/%s/%s", plan_done, cmds[i]);
		snprintf(key, sizeof(key), "cmd-%s", cmds[i]);
		PROBE(202, port_open, "POST", tmpl, path, NULL, key, "{\"reason\":\"0017\"}", NULL);
		PROBE(202, port_open, "POST", tmpl, path, NULL, key, "{\"reason\":\"0017\"}", NULL);
		PROBE(422, port_open, "POST", tmpl, path, NULL, key, "{\"reason\":\"other\"}", NULL);
		PROBE(400, port_open, "POST", tmpl, path, NULL, "cmd-bad", "{\"command\":\"cancel\"}",
		      NULL);
		PROBE(400, port_open, "POST", tmpl, path, NULL, NULL, NULL, NULL);
		PROBE(401, port_auth, "POST", tmpl, path, NULL, key, NULL, NULL);
		PROBE(403, port_auth, "POST", tmpl, path, tok_viewer, key, NULL, NULL);
		PROBE(404, port_auth, "POST", tmpl, path, tok_admin, key, NULL, NULL); /* tenant */
		PROBE(429, port_slow, "POST", tmpl, path, tok_slow, key, NULL, NULL);
		snprintf(path, sizeof(path), "/v1/plans/01900000-0000-7000-8000-000000000000/%s",
			 cmds[i]);
		PROBE(404, port_open, "POST", tmpl, path, NULL, "cmd-404", NULL, NULL);
	}
}

static void t_requests(void)
{
	const char *dt = "/v1/requests/{plan_id}/{request_id}/decision";
	const char *at = "/v1/requests/{plan_id}/{request_id}/answer";
	char dpath[400], apath[400], path[400];
	const char *v;
	lh_input_requested_t q = {0};
	lh_event_t ev = {0};
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'budget_extension'",
			    plan_budget, "pending"));
	v = ts_sql1(&ts, "SELECT request_id FROM input_requests WHERE plan_id = $1", plan_budget);
	snprintf(rid_budget, sizeof(rid_budget), "%s", v ? v : "");
	/* a question on the finished plan (what a worker's ask_human emits), to answer */
	snprintf(rid_question, sizeof(rid_question), "q-%s", ts.prefix);
	q.request_id = rid_question;
	q.question = "Which hotel?";
	ev.type = LH_EV_INPUT_REQUESTED;
	lh_uuid_parse(plan_done, &ev.plan_id);
	ev.task_no = 1;
	ev.attempt = 1;
	ev.tenant = "default";
	ev.actor.kind = "worker";
	ev.actor.id = "t0017";
	ev.body = &q;
	ts_emit(&ts, &ev);
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'question'",
			    plan_done, "pending"));

	PROBE(200, port_open, "GET", "/v1/requests", "/v1/requests", NULL, NULL, NULL, NULL);
	/* oldest first, 100 by default: a database shared with earlier runs may hold more */
	PROBE(200, port_open, "GET", "/v1/requests", "/v1/requests?status=pending&limit=1000", NULL,
	      NULL, NULL, NULL);
	T_CHECK(strstr(r.body, rid_budget) && strstr(r.body, rid_question));
	PROBE(400, port_open, "GET", "/v1/requests", "/v1/requests?status=maybe", NULL, NULL, NULL,
	      NULL);
	PROBE(400, port_open, "GET", "/v1/requests", "/v1/requests?limit=1001", NULL, NULL, NULL,
	      NULL);
	PROBE(401, port_auth, "GET", "/v1/requests", "/v1/requests", NULL, NULL, NULL, NULL);
	PROBE(200, port_auth, "GET", "/v1/requests", "/v1/requests", tok_viewer, NULL, NULL, NULL);
	PROBE(429, port_slow, "GET", "/v1/requests", "/v1/requests", tok_slow, NULL, NULL, NULL);
	{
		char *e = curl_easy_escape(NULL, rid_budget, 0);
		snprintf(dpath, sizeof(dpath), "/v1/requests/%s/%s/decision", plan_budget, e);
		snprintf(apath, sizeof(apath), "/v1/requests/%s/%s/answer", plan_budget, e);
		curl_free(e);
	}
	PROBE(400, port_open, "POST", dt, dpath, NULL, "d-bad", "{\"decision\":\"maybe\"}", NULL);
	PROBE(400, port_open, "POST", dt, dpath, NULL, "d-bad",
	      "{\"decision\":\"approve\",\"request_id\":\"x\"}", NULL);
	PROBE(401, port_auth, "POST", dt, dpath, NULL, "d1", "{\"decision\":\"approve\"}", NULL);
	PROBE(403, port_auth, "POST", dt, dpath, tok_viewer, "d1", "{\"decision\":\"approve\"}",
	      NULL);
	PROBE(404, port_auth, "POST", dt, dpath, tok_admin, "d1", "{\"decision\":\"approve\"}",
	      NULL); /* another tenant's */
	PROBE(429, port_slow, "POST", dt, dpath, tok_slow, "d1", "{\"decision\":\"approve\"}", NULL);
	PROBE(202, port_open, "POST", dt, dpath, NULL, "d1",
	      "{\"decision\":\"approve\",\"budget\":{\"tokens\":100000},\"reason\":\"ok\"}", NULL);
	PROBE(422, port_open, "POST", dt, dpath, NULL, "d1", "{\"decision\":\"reject\"}", NULL);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM input_requests WHERE plan_id = $1",
			    plan_budget, "approved"));
	PROBE(409, port_open, "POST", dt, dpath, NULL, "d2", "{\"decision\":\"reject\"}", NULL);
	PROBE(202, port_open, "POST", dt, dpath, NULL, "d1",
	      "{\"decision\":\"approve\",\"budget\":{\"tokens\":100000},\"reason\":\"ok\"}", NULL);
	/* an approval is decided, not answered (checked before whether it is still pending) */
	PROBE(422, port_open, "POST", at, apath, NULL, "a0", "{\"answer\":\"late\"}", NULL);
	T_CHECK(strstr(r.body, "wrong_kind") && strstr(r.body, "/decision"));
	/* 404 only for a plan that is not the caller's: an unknown request of a visible plan is
	 * an early answer (0033-early-answers) */
	snprintf(path, sizeof(path), "/v1/requests/01900000-0000-7000-8000-000000000000/nope/decision");
	PROBE(404, port_open, "POST", dt, path, NULL, "d3", "{\"decision\":\"approve\"}", NULL);
	snprintf(path, sizeof(path), "/v1/requests/not-a-uuid/nope/answer");
	PROBE(404, port_open, "POST", at, path, NULL, "a3", "{\"answer\":1}", NULL);

	snprintf(apath, sizeof(apath), "/v1/requests/%s/%s/answer", plan_done, rid_question);
	/* a question is answered, not decided */
	snprintf(path, sizeof(path), "/v1/requests/%s/%s/decision", plan_done, rid_question);
	PROBE(422, port_open, "POST", dt, path, NULL, "d-q", "{\"decision\":\"approve\"}", NULL);
	T_CHECK(strstr(r.body, "wrong_kind") && strstr(r.body, "/answer"));
	PROBE(400, port_open, "POST", at, apath, NULL, "a-bad", "{\"answer\":1,\"why\":2}", NULL);
	PROBE(400, port_open, "POST", at, apath, NULL, NULL, "{\"answer\":1}", NULL);
	PROBE(401, port_auth, "POST", at, apath, NULL, "a1", "{\"answer\":\"x\"}", NULL);
	PROBE(403, port_auth, "POST", at, apath, tok_viewer, "a1", "{\"answer\":\"x\"}", NULL);
	PROBE(429, port_slow, "POST", at, apath, tok_slow, "a1", "{\"answer\":\"x\"}", NULL);
	PROBE(202, port_open, "POST", at, apath, NULL, "a1",
	      "{\"answer\":{\"hotel\":\"Infante Sagres\"},\"responder_type\":\"ai_agent\"}", NULL);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'question'",
			    plan_done, "answered"));
	PROBE(409, port_open, "POST", at, apath, NULL, "a2", "{\"answer\":\"again\"}", NULL);
	/* a body above --max-body */
	{
		char *big = malloc(70000);
		memset(big, ' ', 69999);
		big[69999] = 0;
		memcpy(big, "{\"answer\":1}", 12);
		PROBE(413, port_open, "POST", at, apath, NULL, "a-big", big, NULL);
		PROBE(413, port_open, "POST", dt, dpath, NULL, "d-big", big, NULL);
		free(big);
	}
	/* approval links (the gateways run with LH_WEBHOOK_SECRET): a forged token is refused */
	PROBE(403, port_open, "GET", "/v1/links/{token}", "/v1/links/v1.forged.0000", NULL, NULL,
	      NULL, NULL);
}

/* A query that cannot finish (a lock held here) is cut at --pg-timeout-ms: 503, and the loop
 * serves others again at once. */
static void t_pg_timeout(void)
{
	int port = start_gateway("gateway-pgto", "--no-auth", "--pg-timeout-ms", "300", NULL);
	PGresult *res;
	int64_t t0;
	T_CHECK(port > 0);
	T_EQ_INT(http(port, "GET", "/v1/plans?limit=1", NULL, NULL, NULL, NULL), 200);
	res = PQexec(ts.pg, "BEGIN; LOCK TABLE plans IN ACCESS EXCLUSIVE MODE");
	T_CHECK(PQresultStatus(res) == PGRES_COMMAND_OK);
	PQclear(res);
	t0 = lh_mono_us();
	PROBE(503, port, "GET", "/v1/plans", "/v1/plans?limit=1", NULL, NULL, NULL, NULL);
	T_CHECK(strstr(r.body, "postgresql_unavailable") != NULL);
	T_CHECK(lh_mono_us() - t0 < 3000000);
	T_EQ_INT(http(port, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
	res = PQexec(ts.pg, "ROLLBACK");
	PQclear(res);
	T_EQ_INT(http(port, "GET", "/v1/plans?limit=1", NULL, NULL, NULL, NULL), 200);
}

/* The dashboard: static files without a token, a strict CSP on each, ETag revalidation. */
static void t_dashboard(void)
{
	char etag[80];
	PROBE(302, port_auth, "GET", "/", "/", NULL, NULL, NULL, NULL);
	T_EQ_STR(r.location, "/dashboard/");
	PROBE(302, port_auth, "GET", "/dashboard", "/dashboard", NULL, NULL, NULL, NULL);
	T_EQ_STR(r.location, "/dashboard/");
	PROBE(200, port_auth, "GET", "/dashboard/", "/dashboard/", NULL, NULL, NULL, NULL);
	T_CHECK(strstr(r.body, "<script src=\"app.js\"></script>") != NULL);
	T_CHECK(strstr(r.csp, "default-src 'none'") && strstr(r.csp, "script-src 'self'") &&
		!strstr(r.csp, "unsafe"));
	PROBE(200, port_auth, "GET", "/dashboard/{file}", "/dashboard/app.js", NULL, NULL, NULL,
	      NULL);
	T_CHECK(strstr(r.body, "Authorization") != NULL && r.etag[0] == '"');
	T_CHECK(strstr(r.csp, "script-src 'self'") != NULL);
	snprintf(etag, sizeof(etag), "If-None-Match: %s", r.etag);
	PROBE(304, port_auth, "GET", "/dashboard/{file}", "/dashboard/app.js", NULL, NULL, NULL,
	      etag);
	T_EQ_INT((int)r.len, 0);
	PROBE(200, port_auth, "GET", "/dashboard/{file}", "/dashboard/app.css", NULL, NULL, NULL,
	      NULL);
	T_EQ_STR(r.ctype, "text/css; charset=utf-8");
	PROBE(404, port_auth, "GET", "/dashboard/{file}", "/dashboard/nope.js", NULL, NULL, NULL,
	      NULL);
	PROBE(404, port_auth, "GET", "/dashboard/{file}", "/dashboard/%2e%2e%2fmain.c", NULL, NULL,
	      NULL, NULL);
}

/* /v1/memories (gateway/memory_routes.c): a memory of the tokens' tenant, searched, shown and
 * forgotten; another tenant (the open gateway's) does not see it. */
static void t_memories(void)
{
	const char *st = "/v1/memories", *gt = "/v1/memories/{memory_id}",
		   *ft = "/v1/memories/{memory_id}/forget";
	lh_pg_t *pg = NULL;
	lh_error_t err = {0};
	int64_t id = 0;
	char path[128], fpath[160];
	lh_memory_t m = {.tenant = ts.prefix, .scope = LH_MEMORY_TENANT, .kind = LH_MEMORY_SEMANTIC,
			 .content = "The probe service of 0017 listens on port 7017.", .task_no = -1,
			 .attempt = -1};
	T_CHECK(lh_pg_connect(ts.pg_url, &pg, &err) == LH_OK &&
		lh_memory_write(pg, &m, 0, &id, &err) == LH_OK);
	lh_pg_free(pg);
	snprintf(path, sizeof(path), "/v1/memories/%" PRId64, id);
	snprintf(fpath, sizeof(fpath), "%s/forget", path);
	PROBE(200, port_auth, "GET", st, "/v1/memories?q=probe%20service%20port&k=5", tok_viewer,
	      NULL, NULL, NULL);
	T_CHECK(strstr(r.body, "7017") != NULL);
	PROBE(200, port_open, "GET", st, "/v1/memories?q=probe%20port&mode=fulltext", NULL, NULL,
	      NULL, NULL);
	T_CHECK(strstr(r.body, "7017") == NULL); /* another tenant */
	PROBE(200, port_auth, "GET", st, "/v1/memories?q=probe&mode=vector", tok_viewer, NULL, NULL,
	      NULL);
	PROBE(400, port_auth, "GET", st, "/v1/memories", tok_viewer, NULL, NULL, NULL);
	PROBE(400, port_auth, "GET", st, "/v1/memories?q=x&k=0", tok_viewer, NULL, NULL, NULL);
	PROBE(400, port_auth, "GET", st, "/v1/memories?q=x&mode=magic", tok_viewer, NULL, NULL, NULL);
	PROBE(400, port_auth, "GET", st, "/v1/memories?q=x&plan=nope", tok_viewer, NULL, NULL, NULL);
	PROBE(400, port_auth, "GET", st, "/v1/memories?q=x&sort=id", tok_viewer, NULL, NULL, NULL);
	PROBE(401, port_auth, "GET", st, "/v1/memories?q=x", NULL, NULL, NULL, NULL);
	PROBE(429, port_slow, "GET", st, "/v1/memories?q=x", tok_slow, NULL, NULL, NULL);
	PROBE(200, port_auth, "GET", gt, path, tok_viewer, NULL, NULL, NULL);
	T_CHECK(strstr(r.body, "\"forgotten_at\":null") != NULL);
	PROBE(404, port_open, "GET", gt, path, NULL, NULL, NULL, NULL);
	PROBE(404, port_auth, "GET", gt, "/v1/memories/abc", tok_viewer, NULL, NULL, NULL);
	PROBE(401, port_auth, "GET", gt, path, NULL, NULL, NULL, NULL);
	PROBE(429, port_slow, "GET", gt, path, tok_slow, NULL, NULL, NULL);
	PROBE(403, port_auth, "POST", ft, fpath, tok_viewer, NULL, "{}", NULL);
	PROBE(400, port_auth, "POST", ft, fpath, tok_admin, NULL, "{\"why\":1}", NULL);
	PROBE(404, port_auth, "POST", ft, "/v1/memories/0/forget", tok_admin, NULL, NULL, NULL);
	PROBE(404, port_open, "POST", ft, fpath, NULL, NULL, NULL, NULL); /* not its tenant's */
	PROBE(401, port_auth, "POST", ft, fpath, NULL, NULL, NULL, NULL);
	PROBE(429, port_slow, "POST", ft, fpath, tok_slow, NULL, NULL, NULL);
	{
		char *big = malloc(70000);
		memset(big, ' ', 69999);
		big[69999] = 0;
		memcpy(big, "{\"reason\":\"x\"}", 14);
		PROBE(413, port_auth, "POST", ft, fpath, tok_admin, NULL, big, NULL);
		free(big);
	}
	PROBE(200, port_auth, "POST", ft, fpath, tok_admin, NULL, "{\"reason\":\"probe done\"}",
	      NULL);
	PROBE(404, port_auth, "POST", ft, fpath, tok_admin, NULL, NULL, NULL); /* already */
	PROBE(200, port_auth, "GET", st, "/v1/memories?q=probe%20service%20port", tok_viewer, NULL,
	      NULL, NULL);
	T_CHECK(strstr(r.body, "7017") == NULL);
	PROBE(200, port_auth, "GET", gt, path, tok_viewer, NULL, NULL, NULL);
	T_CHECK(strstr(r.body, "probe done") != NULL);
}

/* The router: every route it serves and likely neighbours, every method. */
static void t_router(void)
{
	static const char *const cands[] = {
		"/healthz", "/readyz", "/metrics", "/v1/goals", "/v1/plans", "/v1/plans/{plan_id}",
		"/v1/plans/{plan_id}/decisions", "/v1/plans/{plan_id}/attempts",
		"/v1/plans/{plan_id}/messages", "/v1/plans/{plan_id}/messages/x",
		"/v1/plans/{plan_id}/events", "/v1/plans/{plan_id}/pause",
		"/v1/plans/{plan_id}/resume", "/v1/plans/{plan_id}/cancel", "/v1/requests",
		"/v1/requests/{plan_id}/{request_id}/decision",
		"/v1/requests/{plan_id}/{request_id}/answer", "/v1/links/{token}", "/dashboard",
		"/dashboard/", "/dashboard/{file}", "/dashboard/app.js/x", "/dashboard/x/y",
		"/v1/plans/{plan_id}/tasks/{task_no}/cancel", "/v1/plans/{plan_id}/tasks/1/cancel/x",
		"/v1/plans/{plan_id}/modify", "/v1/plans/{plan_id}/modify/x",
		"/v1/plans/{plan_id}/tasks/1/pause",
		/* neighbours: none of these may be served unless documented */
		"/", "/v1", "/v1/", "/v2/plans", "/v1/plans/", "/v1/goals/{plan_id}", "/v1/tokens",
		"/v1/events", "/v1/metrics", "/v1/healthz", "/healthz/x", "/v1/plans/{plan_id}/tasks",
		"/v1/plans/{plan_id}/versions", "/v1/plans/{plan_id}/cancel_task",
		"/v1/plans/{plan_id}/tasks/1", "/v1/requests/{plan_id}",
		"/v1/requests/{plan_id}/{request_id}", "/v1/requests/{plan_id}/{request_id}/approve",
		"/v1/requests/{plan_id}/{request_id}/decision/x", "/v1/links", "/v1/links/{token}/x",
		NULL};
	static const char *const ms[] = {"GET", "POST", "PUT", "DELETE", "PATCH", NULL};
	json_t *paths = json_object_get(doc, "paths");
	json_t *err_schema = json_pack("{s:s}", "$ref", "#/components/schemas/Error");
	for (int i = 0; cands[i]; i++) {
		char path[400] = "";
		/* instantiate the template */
		for (const char *c = cands[i]; *c;) {
			if (!strncmp(c, "{plan_id}", 9)) {
				strncat(path, plan_done, sizeof(path) - strlen(path) - 1);
				c += 9;
			} else if (!strncmp(c, "{request_id}", 12)) {
				strncat(path, rid_question, sizeof(path) - strlen(path) - 1);
				c += 12;
			} else {
				strncat(path, c, 1);
				c++;
			}
		}
		for (int m = 0; ms[m]; m++) {
			char lower[8], key[300];
			json_t *item = json_object_get(paths, cands[i]);
			snprintf(lower, sizeof(lower), "%s", ms[m]);
			for (char *l = lower; *l; l++)
				*l = (char)tolower((unsigned char)*l);
			if (json_object_get(item, lower))
				continue; /* documented: probed above */
			http(port_open, ms[m], path, NULL, "router", NULL, NULL);
			snprintf(key, sizeof(key), "%s %s -> %ld", ms[m], cands[i], r.status);
			if (r.status == 404 && strstr(r.body, "no such route"))
				continue;
			if (r.status == 405) {
				/* Allow names documented methods of this path only */
				char allow[128];
				snprintf(allow, sizeof(allow), "%s", r.allow);
				for (char *l = allow; *l; l++)
					*l = (char)tolower((unsigned char)*l);
				if (!item || !*allow || !json_object_get(item, allow)) {
					fprintf(stderr, "# %s, Allow \"%s\" not documented\n", key,
						r.allow);
					T_CHECK(!"405 with an undocumented Allow");
				}
				T_CHECK(valid(err_schema, r.body, key));
				continue;
			}
			fprintf(stderr, "# undocumented route served: %s: %.200s\n", key, r.body);
			T_CHECK(!"an undocumented route is served");
		}
	}
	json_decref(err_schema);
}

static void t_every_operation_probed(void)
{
	const char *path, *k;
	json_t *item, *opv;
	json_object_foreach(json_object_get(doc, "paths"), path, item)
	{
		json_object_foreach(item, k, opv)
		{
			char key[300], upper[16];
			size_t i;
			if (!is_method(k))
				continue;
			for (i = 0; k[i] && i < sizeof(upper) - 1; i++)
				upper[i] = (char)toupper((unsigned char)k[i]);
			upper[i] = 0;
			snprintf(key, sizeof(key), "%s %s", upper, path);
			if (!json_object_get(probed, key))
				fprintf(stderr, "# never called: %s\n", key);
			T_CHECK(json_object_get(probed, key) != NULL);
		}
	}
}

int main(int argc, char **argv)
{
	json_error_t jerr;
	const char *file = argc > 2 ? argv[2] : "docs/openapi.yaml";
	int rc;
	doc = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		printf("FAIL: could not load %s: %s (line %d)\n", file, jerr.text, jerr.line);
		return 1;
	}
	sdoc = json_deep_copy(json_object_get(json_object_get(doc, "components"), "schemas"));
	rewrite_refs(sdoc);
	probed = json_object();
	T_RUN(t_structure);
	T_RUN(t_schemas_compile);
	if ((rc = ts_init(&ts, argc > 1 ? argv[1] : ".")))
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(key_prefix, sizeof(key_prefix), "%s", ts.prefix);
	make_token("viewer", "viewer", tok_viewer);
	make_token("admin", "admin", tok_admin);
	make_token("slow", "admin", tok_slow);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	setenv("LH_WEBHOOK_SECRET", "0017-link-secret", 1); /* links on, no notifier */
	port_open = start_gateway("gateway-open", "--no-auth", NULL, NULL, NULL);
	port_auth = start_gateway("gateway-auth", "--rate-burst", "1000", NULL, NULL);
	port_slow = start_gateway("gateway-slow", "--rate-per-s", "0.001", "--rate-burst", "1");
	if (!*tok_viewer || !*tok_slow || port_open <= 0 || port_auth <= 0 || port_slow <= 0) {
		printf("FAIL: could not create tokens or start the gateways\n");
		ts_finish(&ts);
		return 1;
	}
	/* the slow gateway's bucket of one: spend it, every later call with tok_slow is 429 */
	T_EQ_INT(http(port_slow, "GET", "/v1/plans?limit=1", tok_slow, NULL, NULL, NULL), 200);
	T_RUN(t_operational);
	T_RUN(t_goals);
	T_RUN(t_plan_reads);
	T_RUN(t_commands);
	T_RUN(t_cancel_task);
	T_RUN(t_requests);
	T_RUN(t_dashboard);
	T_RUN(t_pg_timeout);
	T_RUN(t_memories);
	T_RUN(t_router);
	T_RUN(t_every_operation_probed);
	ts_finish(&ts);
	curl_global_cleanup();
	json_decref(probed);
	json_decref(sdoc);
	json_decref(doc);
	return t_done();
}
