/* static.c — the dashboard: files embedded at build time (dashboard_assets.c, generated from
 * gateway/dashboard/ by embed.py), served without a token (they hold no data: every API call the
 * page makes carries the user's bearer token) under a strict Content-Security-Policy.
 *
 * Embedded rather than read from an installed directory: the binary is the whole gateway, a
 * dashboard never disagrees with the API it was built with, and nothing on disk can be swapped
 * under a running gateway. Changing the dashboard means rebuilding (ninja), no other step. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>

#include "dashboard_assets.h"
#include "gateway.h"

/* No inline script or style, no eval, no plugins, no framing, requests to this origin only. */
#define GW_CSP                                                                                     \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void security_headers(struct evkeyvalq *out)
{
	evhttp_add_header(out, "Content-Security-Policy", GW_CSP);
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(out, "X-Frame-Options", "DENY");
	evhttp_add_header(out, "Referrer-Policy", "no-referrer");
	evhttp_add_header(out, "Cross-Origin-Opener-Policy", "same-origin");
	evhttp_add_header(out, "Cross-Origin-Resource-Policy", "same-origin");
}

const gw_asset_t *gw_static_find(const char *name)
{
	for (const gw_asset_t *a = gw_assets; a->name; a++)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

void gw_static_redirect(struct evhttp_request *req, const char *to)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	security_headers(out);
	evhttp_add_header(out, "Location", to);
	evhttp_add_header(out, "Content-Type", "text/plain");
	{
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "see %s\n", to);
		evhttp_send_reply(req, 302, "Found", b);
		evbuffer_free(b);
	}
}

void gw_static_get(struct evhttp_request *req, const char *name)
{
	const gw_asset_t *a = gw_static_find(name);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *inm;
	struct evbuffer *b;
	if (!a) {
		gw_reply_error(req, 404, "not_found", "no such dashboard file");
		return;
	}
	security_headers(out);
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evhttp_add_header(out, "ETag", a->etag);
	inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	if (inm && strstr(inm, a->etag)) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	evhttp_add_header(out, "Content-Type", a->content_type);
	b = evbuffer_new();
	evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}
