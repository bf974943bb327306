/* links.c — GET /v1/links/{token}: the approve / reject links of an approval webhook.
 *
 * No bearer token: the token is the credential. It reads
 *   v1.PLAN.HEX(request_id).HEX(tenant).DECISION.EXPIRY_S.HEX(budget).HMAC
 * where budget is the JSON of the limits an approval sets (may be empty) and HMAC is HMAC-SHA256 under --webhook-secret of everything before it (hex). A forged,
 * malformed or expired token gets 403 with the standard error body. A valid one appends
 * approval.decided (responder_type human, responder_id "link") through the idempotent write path
 * under a key derived from the token, so its event id derives from the token too. Single use: a
 * request that is no longer pending answers 409. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "ids.h"
#include "log.h"

#define TOKEN_MAX 900

static bool hex_decode(const char *h, char *out, size_t outsz)
{
	size_t n = strlen(h);
	if (n % 2 || n / 2 >= outsz)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1 || !v)
			return false;
		out[i] = (char)v;
	}
	out[n / 2] = 0;
	return true;
}

static void reply_html(struct evhttp_request *req, const char *what, const char *plan,
		       const char *rid)
{
	struct evbuffer *b = evbuffer_new();
	/* plan is a formatted uuid; the request id is shown as hex-free text only when it is
	 * plain (letters, digits, - _ :), so nothing needs HTML escaping. */
	bool plain = true;
	for (const char *p = rid; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.", *p))
			plain = false;
	evbuffer_add_printf(b,
			    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Longhaul"
			    "</title></head><body><p>%s</p><p>plan %s, request %s</p></body>"
			    "</html>\n",
			    what, plan, plain ? rid : "(see the notification)");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/html; charset=utf-8");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

void gw_links_get(gw_t *gw, struct evhttp_request *req, const char *token)
{
	char buf[TOKEN_MAX + 1], sig[65], rid[LH_ENVELOPE_TENANT_MAX_LEN > 256 ? LH_ENVELOPE_TENANT_MAX_LEN : 256];
	char tenant[LH_ENVELOPE_TENANT_MAX_LEN + 1], plan[LH_UUID_STR_LEN + 1], key[80], tsha[65];
	char bud[128], *f[8], *p, *dot, *canon = NULL, *end = NULL;
	const char *params[3];
	gw_caller_t caller = {0};
	lh_event_t ev = {0};
	lh_pg_res_t *res = NULL;
	lh_arena_t *arena = NULL;
	lh_error_t err = {0};
	json_t *body = NULL;
	void *d = NULL;
	long long exp;
	lh_id_t id;
	int n = 0;

	if (!*gw->cfg.webhook_secret) {
		gw_reply_error(req, 404, "not_found", "links are off (no --webhook-secret)");
		return;
	}
	if (strlen(token) > TOKEN_MAX || !(dot = strrchr(token, '.')) || strlen(dot + 1) != 64)
		goto forbidden;
	gw_hmac_hex(gw->cfg.webhook_secret, token, (size_t)(dot - token), sig);
	if (CRYPTO_memcmp(sig, dot + 1, 64) != 0)
		goto forbidden;
	snprintf(buf, sizeof(buf), "%.*s", (int)(dot - token), token);
	for (p = buf; n < 8; n++) {
		f[n] = p;
		if (!(p = strchr(p, '.'))) {
			n++;
			break;
		}
		*p++ = 0;
	}
	if (n != 7 || strcmp(f[0], "v1") || lh_uuid_parse(f[1], &id) ||
	    !hex_decode(f[2], rid, sizeof(rid)) ||
	    (*f[3] && !hex_decode(f[3], tenant, sizeof(tenant))) ||
	    (*f[6] && !hex_decode(f[6], bud, sizeof(bud))) ||
	    (strcmp(f[4], "approve") && strcmp(f[4], "reject")))
		goto forbidden;
	if (!*f[3])
		tenant[0] = 0;
	exp = strtoll(f[5], &end, 10);
	if (!*f[5] || *end || exp < lh_now_us() / 1000000) {
		gw_reply_error(req, 403, "forbidden", "this link has expired");
		return;
	}
	lh_uuid_fmt(&id, plan);
	if (!gw_pg(gw, req))
		return;
	params[0] = plan;
	params[1] = rid;
	params[2] = *tenant ? tenant : NULL;
	if (lh_pg_query(gw->pg, "api_request_get", 3, params, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		goto out_free;
	}
	/* No row yet: the notifier reads the log directly and the materializer may not have folded
	 * the request when someone clicks at once. The signature proves this gateway saw the
	 * request, so the answer is appended now and the coordinator keeps it until the request is
	 * folded (an answer that arrives first is kept, not lost). */
	if (lh_pg_nrows(res) == 1 && strcmp(lh_pg_get(res, 0, 0), "pending") != 0) {
		gw_reply_error(req, 409, "already_decided",
			       "request %.128s of plan %s is no longer pending (%s)", rid, plan,
			       lh_pg_get(res, 0, 0));
		goto out_free;
	}
	body = json_pack("{s:s, s:s, s:s, s:s}", "request_id", rid, "decision",
			 f[4], "responder_type",
			 "human", "responder_id", "link");
	if (*f[6]) {
		json_t *b = json_loads(bud, 0, NULL);
		if (!json_is_object(b)) {
			json_decref(b);
			goto forbidden_free;
		}
		json_object_set_new(body, "budget", b);
	}
	arena = lh_arena_new(0);
	if (lh_struct_from_json(&lh_approval_decided_desc, body, arena, &d, &err)) {
		gw_reply_error(req, 500, "internal", "%s", err.msg);
		goto out_free;
	}
	lh_sha256_hex(token, strlen(token), tsha);
	snprintf(key, sizeof(key), "link:%.32s", tsha);
	snprintf(caller.name, sizeof(caller.name), "link");
	snprintf(caller.tenant, sizeof(caller.tenant), "%s", tenant);
	caller.role = GW_RESPONDER;
	ev.type = LH_EV_APPROVAL_DECIDED;
	ev.task_no = LH_NO_TASK;
	ev.plan_id = id;
	ev.body = d;
	canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	{
		char *request = lh_arena_printf(arena, "%s\n%s\n%s", plan, rid, canon ? canon : "");
		if (!gw_append(gw, req, &caller, key, "link", request, &ev))
			goto out_free;
	}
	lh_log_info("gateway.link_used", "approval decided by a link", "plan_id", plan, "decision",
		    f[4]);
	reply_html(req, strcmp(f[4], "approve") ? "Rejected. The plan has been told."
					      : "Approved. The plan has been told.",
		   plan, rid);
out_free:
	free(canon);
	json_decref(body);
	lh_arena_free(arena);
	lh_pg_res_free(res);
	return;
forbidden_free:
	json_decref(body);
	lh_pg_res_free(res);
forbidden:
	gw_reply_error(req, 403, "forbidden", "this link is not valid");
}
