#include "tools.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "ids.h"

static const char fetch_params[] =
	"{\"type\":\"object\",\"required\":[\"url\"],\"additionalProperties\":false,"
	"\"properties\":{\"url\":{\"type\":\"string\",\"description\":\"http or https URL of an "
	"allowed host\"},\"max_bytes\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"cut "
	"the body after this many bytes\"}}}";
static const char ask_params[] =
	"{\"type\":\"object\",\"required\":[\"question\"],\"additionalProperties\":false,"
	"\"properties\":{\"question\":{\"type\":\"string\",\"description\":\"what you need to "
	"know, in one clear question\"}}}";

void lh_tools_defs(lh_llm_tool_t ret_defs[LH_TOOLS_N], json_t *ret_params[LH_TOOLS_N])
{
	ret_params[0] = json_loads(fetch_params, 0, NULL);
	ret_params[1] = json_loads(ask_params, 0, NULL);
	if (!ret_params[0] || !ret_params[1])
		abort(); /* constant text */
	ret_defs[0] = (lh_llm_tool_t){
		.name = "http_fetch",
		.description = "GET a web page or API (allowed hosts only; redirects are not "
			       "followed). Returns {status, truncated, body} or {error}.",
		.parameters = ret_params[0]};
	ret_defs[1] = (lh_llm_tool_t){
		.name = "ask_human",
		.description = "Ask the person who gave the goal a question when you cannot go on "
			       "without their answer. The task pauses until they answer.",
		.parameters = ret_params[1]};
}

void lh_tools_defs_finish(json_t *params[LH_TOOLS_N])
{
	for (int i = 0; i < LH_TOOLS_N; i++) {
		json_decref(params[i]);
		params[i] = NULL;
	}
}

static bool v4_private(const uint8_t a[4])
{
	return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
	       (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
	       (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] >= 224;
}

static bool v6_private(const uint8_t a6[16])
{
	static const uint8_t zero[16], mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(a6, zero, 15) == 0 && (a6[15] == 0 || a6[15] == 1))
		return true; /* :: and ::1 */
	if (memcmp(a6, mapped, 12) == 0)
		return v4_private(a6 + 12);
	return (a6[0] & 0xfe) == 0xfc ||		    /* fc00::/7 unique local */
	       (a6[0] == 0xfe && (a6[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
	       a6[0] == 0xff;				    /* multicast */
}

bool lh_tool_addr_private(const struct sockaddr *addr)
{
	if (addr->sa_family == AF_INET)
		return v4_private((const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr);
	if (addr->sa_family == AF_INET6)
		return v6_private((const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr);
	return true;
}

static bool addr_allowed(const struct sockaddr *addr, void *ctx)
{
	(void)ctx;
	return !lh_tool_addr_private(addr);
}

bool lh_tool_host_private(const char *host)
{
	char h[64];
	size_t n = strlen(host);
	uint8_t a4[4], a6[16];
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(h))
		return n == 0;
	memcpy(h, host, n);
	h[n] = '\0';
	if (strcasecmp(h, "localhost") == 0 ||
	    (n > 10 && strcasecmp(h + n - 10, ".localhost") == 0))
		return true;
	if (inet_pton(AF_INET, h, a4) == 1)
		return v4_private(a4);
	if (inet_pton(AF_INET6, h, a6) == 1)
		return v6_private(a6);
	return false;
}

static bool host_listed(const char *host, const char *list)
{
	size_t hn = strlen(host);
	const char *p = list ? list : "";
	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		const char *s = p;
		while (len && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		while (len && isspace((unsigned char)s[len - 1]))
			len--;
		if (len == hn && strncasecmp(s, host, hn) == 0)
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

lh_err_t lh_tool_url_check(const char *url, const char *allow_hosts, bool allow_private,
			   char *ret_host, size_t n, lh_error_t *err)
{
	const char *p, *end, *at;
	size_t hlen;
	if (!url || !*url)
		return lh_error_set(err, LH_ERR_INVALID, "url is required");
	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return lh_error_set(err, LH_ERR_INVALID, "only http and https URLs can be fetched");
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == '\\')
			return lh_error_set(err, LH_ERR_INVALID,
					    "the URL contains a space, a control character or a "
					    "backslash");
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (at)
		return lh_error_set(err, LH_ERR_INVALID, "URLs with user info are refused");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (!rb)
			return lh_error_set(err, LH_ERR_INVALID, "the URL's IPv6 host has no ']'");
		hlen = (size_t)(rb - p) + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		hlen = (size_t)((colon ? colon : end) - p);
	}
	if (hlen == 0 || hlen >= n)
		return lh_error_set(err, LH_ERR_INVALID, "the URL's host is empty or too long");
	memcpy(ret_host, p, hlen);
	ret_host[hlen] = '\0';
	if (!host_listed(ret_host, allow_hosts))
		return lh_error_set(err, LH_ERR_INVALID,
				    "host \"%s\" is not in the allowed hosts (tools.http_allow_hosts)",
				    ret_host);
	if (!allow_private && lh_tool_host_private(ret_host))
		return lh_error_set(err, LH_ERR_INVALID,
				    "host \"%s\" is a loopback, private or link-local address",
				    ret_host);
	return LH_OK;
}

void lh_tool_call_hash(const char *name, const json_t *args, char ret_hex[LH_TOOL_HASH_LEN + 1])
{
	char *canon = args ? json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
	lh_buf_t b;
	char hex[65];
	lh_buf_init(&b);
	lh_buf_appends(&b, name ? name : "");
	lh_buf_appends(&b, "\n");
	lh_buf_appends(&b, canon ? canon : "null");
	lh_sha256_hex(b.data, b.len, hex);
	memcpy(ret_hex, hex, LH_TOOL_HASH_LEN);
	ret_hex[LH_TOOL_HASH_LEN] = '\0';
	lh_buf_finish(&b);
	free(canon);
}

void lh_tool_idempotency_key(const char *plan_hex, long long task_no, long long attempt,
			     int index, char ret_key[96])
{
	snprintf(ret_key, 96, "lh-%.32s-t%lld-a%lld-c%d", plan_hex, task_no, attempt, index);
}

char *lh_tool_error_result(const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg ? msg : "failed");
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		s = strdup("{\"error\":\"failed\"}");
	return s;
}

typedef struct fetch {
	lh_tool_done_cb cb;
	void *opaque;
	size_t limit;
} fetch_t;

static void on_fetched(lh_http_resp_t *resp, void *opaque)
{
	fetch_t *f = opaque;
	char *out;
	if (resp->error.code) {
		char m[400];
		snprintf(m, sizeof(m), "could not fetch: %s", resp->error.msg);
		out = lh_tool_error_result(m);
	} else {
		size_t len = resp->body.len;
		bool truncated = len > f->limit;
		const char *loc = resp->status >= 300 && resp->status < 400
					  ? lh_http_resp_header(resp, "location")
					  : NULL;
		json_t *j, *body;
		if (len > f->limit)
			len = f->limit;
		/* cut on a UTF-8 boundary; bytes that are not UTF-8 make the body null */
		while (len > 0 && len < resp->body.len && ((uint8_t)resp->body.data[len] & 0xc0) == 0x80)
			len--;
		body = json_stringn(resp->body.data ? resp->body.data : "", len);
		j = json_pack("{s:i, s:b, s:o}", "status", (json_int_t)resp->status, "truncated",
			      truncated, "body", body ? body : json_string("(body is not UTF-8 text)"));
		if (j && loc)
			json_object_set_new(j, "location", json_string(loc));
		if (j && loc)
			json_object_set_new(j, "note",
					    json_string("redirects are not followed; fetch the location "
							"if its host is allowed"));
		out = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!out)
			out = lh_tool_error_result("could not encode the response");
	}
	f->cb(out, f->opaque);
	free(f);
}

lh_err_t lh_tool_http_fetch(lh_http_t *http, const lh_tools_cfg_t *cfg, const json_t *args,
			    const char *idempotency_key, lh_tool_done_cb cb, void *opaque,
			    char **ret_result, lh_error_t *err)
{
	char host[256], idem[160];
	const char *headers[2];
	const char *url = json_string_value(json_object_get(args, "url"));
	json_t *mb = json_object_get(args, "max_bytes");
	size_t limit = cfg->max_bytes;
	fetch_t *f;
	lh_http_req_t req = {0};
	*ret_result = NULL;
	if (!json_is_object(args))
		lh_error_set(err, LH_ERR_INVALID, "arguments must be an object with \"url\"");
	else if (mb && (!json_is_integer(mb) || json_integer_value(mb) < 1))
		lh_error_set(err, LH_ERR_INVALID, "max_bytes must be a positive integer");
	else
		lh_tool_url_check(url, cfg->allow_hosts, cfg->allow_private, host, sizeof(host), err);
	if (err->code) {
		*ret_result = lh_tool_error_result(err->msg);
		return err->code;
	}
	if (mb && (size_t)json_integer_value(mb) < limit)
		limit = (size_t)json_integer_value(mb);
	f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	*f = (fetch_t){.cb = cb, .opaque = opaque, .limit = limit};
	snprintf(idem, sizeof(idem), "Idempotency-Key: %s", idempotency_key);
	headers[0] = idem;
	headers[1] = "Accept: text/*, application/json;q=0.9, */*;q=0.5";
	req.method = "GET";
	req.url = url;
	req.headers = headers;
	req.n_headers = 2;
	req.total_timeout_ms = cfg->timeout_ms;
	req.resolve = cfg->resolve;
	if (!cfg->allow_private)
		req.addr_check = addr_allowed; /* the address connected to, after DNS */
	/* The client drops a body over its cap, so fetch more than the model gets and cut. */
	req.max_response_bytes = limit * 4 > LH_TOOL_FETCH_CAP ? limit * 4 : LH_TOOL_FETCH_CAP;
	if (lh_http_request(http, &req, on_fetched, f, NULL, err)) {
		free(f);
		*ret_result = lh_tool_error_result(err->msg);
		return err->code;
	}
	return LH_OK;
}
