/* auth.c — bearer tokens, roles and the per-token rate limit.
 *
 * A token is "lh_" + 64 hex digits from libcrypto's RAND_bytes, printed once by
 * `lh-gateway --create-token`; api_tokens keeps only its sha256 (a database leak reveals no
 * usable token). Every request looks its token up (one indexed read), so a revocation holds from
 * the next request on. Roles: viewer reads, responder also answers requests, admin does
 * everything. The limit is a token bucket per token (rate_per_s, burst), in memory: a restart
 * refills every bucket. */
#include <event2/http.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "ids.h"
#include "log.h"

#define TOKEN_BYTES 32

static const char *role_name(gw_role_t r)
{
	return r == GW_ADMIN ? "admin" : r == GW_RESPONDER ? "responder" : "viewer";
}

static gw_role_t role_parse(const char *s)
{
	return !strcmp(s, "admin") ? GW_ADMIN : !strcmp(s, "responder") ? GW_RESPONDER : GW_VIEWER;
}

lh_err_t gw_token_create(lh_pg_t *pg, const char *name, const char *role, const char *tenant,
			 char ret_token[68], lh_error_t *err)
{
	uint8_t raw[TOKEN_BYTES];
	char token[68], hash[65];
	const char *params[4];
	lh_err_t rc;
	if (!*name || strlen(name) > 127)
		return lh_error_set(err, LH_ERR_INVALID, "a token name must have 1 to 127 bytes");
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return lh_error_set(err, LH_ERR_INTERNAL, "could not get random bytes from libcrypto");
	memcpy(token, "lh_", 3);
	lh_hex(raw, sizeof(raw), token + 3);
	lh_sha256_hex(token, strlen(token), hash);
	params[0] = hash;
	params[1] = name;
	params[2] = role;
	params[3] = tenant;
	if ((rc = lh_pg_query(pg, "api_token_create", 4, params, NULL, NULL, NULL, err)))
		return rc;
	memcpy(ret_token, token, sizeof(token));
	return LH_OK;
}

lh_err_t gw_token_revoke(lh_pg_t *pg, const char *name, int *ret_revoked, lh_error_t *err)
{
	lh_pg_res_t *res = NULL;
	const char *params[1] = {name};
	lh_err_t rc = lh_pg_query(pg, "api_token_revoke", 1, params, NULL, NULL, &res, err);
	if (rc == LH_OK)
		*ret_revoked = lh_pg_nrows(res);
	lh_pg_res_free(res);
	return rc;
}

/* Take one token from the caller's bucket; false with the seconds to wait when it is empty. */
static bool bucket_take(gw_t *gw, const char *hash, int *ret_wait_s)
{
	int64_t now = lh_mono_us();
	gw_bucket_t *b = NULL;
	double burst = (double)gw->cfg.rate_burst, rate = gw->cfg.rate_per_s;
	for (int i = 0; i < gw->nbuckets; i++)
		if (!strcmp(gw->buckets[i].token_sha256, hash)) {
			b = &gw->buckets[i];
			break;
		}
	if (!b) {
		if (gw->nbuckets < GW_MAX_BUCKETS)
			b = &gw->buckets[gw->nbuckets++];
		else { /* full: reuse the bucket idle longest (it has refilled the most) */
			b = &gw->buckets[0];
			for (int i = 1; i < gw->nbuckets; i++)
				if (gw->buckets[i].last_us < b->last_us)
					b = &gw->buckets[i];
		}
		snprintf(b->token_sha256, sizeof(b->token_sha256), "%s", hash);
		b->tokens = burst;
		b->last_us = now;
	}
	b->tokens += (double)(now - b->last_us) / 1e6 * rate;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_us = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	*ret_wait_s = (int)((1.0 - b->tokens) / rate) + 1;
	return false;
}

bool gw_auth(gw_t *gw, struct evhttp_request *req, gw_role_t need, gw_caller_t *ret_caller)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	gw_caller_t c = {0};
	const char *params[1];
	int wait_s = 1;

	if (gw->cfg.no_auth) {
		snprintf(c.name, sizeof(c.name), "no-auth");
		snprintf(c.tenant, sizeof(c.tenant), "%s", gw->cfg.common.tenant);
		c.read_tenant = NULL;
		c.role = GW_ADMIN;
		*ret_caller = c;
		return true;
	}
	if (!h || strncmp(h, "Bearer ", 7) != 0 || !h[7]) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer");
		gw_reply_error(req, 401, "unauthorized",
			       "this route needs an Authorization: Bearer token");
		return false;
	}
	lh_sha256_hex(h + 7, strlen(h + 7), c.token_sha256);
	if (!gw_pg(gw, req))
		return false;
	params[0] = c.token_sha256;
	if (lh_pg_query(gw->pg, "api_token_get", 1, params, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "could not check the token: %s",
			       err.msg);
		return false;
	}
	if (lh_pg_nrows(res) != 1) {
		lh_pg_res_free(res);
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer error=\"invalid_token\"");
		gw_reply_error(req, 401, "unauthorized", "the token is unknown or revoked");
		return false;
	}
	snprintf(c.name, sizeof(c.name), "%s", lh_pg_get(res, 0, 0));
	c.role = role_parse(lh_pg_get(res, 0, 1));
	snprintf(c.tenant, sizeof(c.tenant), "%s", lh_pg_get(res, 0, 2));
	lh_pg_res_free(res);
	if (!bucket_take(gw, c.token_sha256, &wait_s)) {
		char v[16];
		snprintf(v, sizeof(v), "%d", wait_s);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", v);
		gw_reply_error(req, 429, "rate_limited",
			       "token \"%s\" is over its rate limit; retry in %d s", c.name, wait_s);
		return false;
	}
	if (c.role < need) {
		gw_reply_error(req, 403, "forbidden", "token \"%s\" has role %s; this needs %s",
			       c.name, role_name(c.role), role_name(need));
		return false;
	}
	*ret_caller = c;
	ret_caller->read_tenant = ret_caller->tenant;
	return true;
}
