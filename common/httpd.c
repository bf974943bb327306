/* httpd.c — an evhttp server with a cap on concurrent connections (httpd.h).
 *
 * How connections are counted with libevent 2.1's public API, which tells nobody when evhttp
 * accepts one:
 *   - evhttp asks the bufferevent callback (evhttp_set_bevcb) for a bufferevent once per accepted
 *     connection, before it builds the connection: that is the count going up, or, over the cap,
 *     the connection marked to be refused and the listener paused so that this turn of the loop
 *     accepts no more;
 *   - a moment later, on the same turn of the loop and before any I/O on it, an event of ours
 *     takes each new bufferevent's callback argument, which evhttp sets to its connection, and
 *     sets a close callback on that connection (the count going down when evhttp frees it) or,
 *     for one to refuse, writes a 503 and frees it; then resumes the listener.
 * We hold a reference on each new bufferevent until then, so that one evhttp freed in between
 * (its callbacks cleared by bufferevent_free) is seen as gone rather than read after free.
 * The callback argument being the connection is libevent's own layout (http.c sets it on every
 * bufferevent_setcb of a connection); evhttp_connection_get_bufferevent checks it. With 2.2,
 * evhttp_set_max_connections would replace all of this. */
#include "httpd.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ids.h" /* lh_mono_us */
#include "listen.h"

typedef struct fresh {
	struct bufferevent *bev; /* referenced until adopted */
	bool refuse;
} fresh_t;

struct lh_httpd {
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *lev; /* evhttp's */
	struct event *ev_adopt;
	fresh_t *fresh; /* accepted this turn, not adopted yet */
	int nfresh, max_fresh;
	int max_conns, live, port;
	bool paused, closing;
	uint64_t refused, unreported;
	int64_t reported_us;
	lh_httpd_refused_fn on_refused;
	void *arg;
};

static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
			   "Content-Type: text/plain\r\n"
			   "Content-Length: 21\r\n"
			   "Connection: close\r\n"
			   "\r\n"
			   "too many connections\n";

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	lh_httpd_t *h = arg;
	if (h->live > 0)
		h->live--;
}

static void refused(lh_httpd_t *h)
{
	int64_t now = lh_mono_us();
	h->refused++;
	h->unreported++;
	if (!h->on_refused)
		return;
	if (h->reported_us && now - h->reported_us < (int64_t)LH_HTTPD_REFUSED_REPORT_S * 1000000)
		return;
	h->reported_us = now;
	h->on_refused(h->unreported, h->max_conns, h->arg);
	h->unreported = 0;
}

/* Each connection accepted since the last turn: counted, or refused. */
static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
	lh_httpd_t *h = arg;
	for (int i = 0; i < h->nfresh; i++) {
		struct bufferevent *bev = h->fresh[i].bev;
		struct evhttp_connection *evcon = NULL;
		void *cbarg = NULL;
		bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
		evcon = cbarg;
		if (!evcon || evhttp_connection_get_bufferevent(evcon) != bev) {
			/* evhttp has freed it already (bufferevent_free clears the callbacks) */
			if (!h->fresh[i].refuse && h->live > 0)
				h->live--;
		} else if (h->fresh[i].refuse) {
			evutil_socket_t s = bufferevent_getfd(bev);
			/* a new socket's send buffer is empty: this never blocks, and a short or
			 * failed write only loses the courtesy */
			if (s >= 0 && send(s, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			}
			evhttp_connection_free(evcon);
			refused(h);
		} else {
			evhttp_connection_set_closecb(evcon, on_close, h);
		}
		bufferevent_decref(bev);
	}
	h->nfresh = 0;
	if (h->paused && !h->closing) {
		evconnlistener_enable(h->lev);
		h->paused = false;
	}
}

static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
	lh_httpd_t *h = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bool refuse = h->live >= h->max_conns;
	if (!bev)
		return NULL; /* evhttp tries to make its own; if it can, it goes uncounted */
	if (refuse || h->nfresh >= h->max_fresh) {
		/* one refusal per turn: the listener waits for on_adopt */
		evconnlistener_disable(h->lev);
		h->paused = true;
	}
	if (h->nfresh >= h->max_fresh)
		return bev; /* cannot happen (see max_fresh); uncounted rather than lost */
	if (!refuse)
		h->live++;
	bufferevent_incref(bev);
	h->fresh[h->nfresh++] = (fresh_t){bev, refuse};
	event_active(h->ev_adopt, EV_TIMEOUT, 0);
	return bev;
}

lh_err_t lh_httpd_new(struct event_base *base, const char *listen, int max_conns, int timeout_s,
		      lh_httpd_refused_fn on_refused, void *arg, lh_httpd_t **ret, lh_error_t *err)
{
	char host[256];
	int port;
	lh_httpd_t *h;
	struct evhttp_bound_socket *sock;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	lh_err_t rc;

	if ((rc = lh_listen_parse(listen, host, sizeof(host), &port, err)))
		return rc;
	if (max_conns < 1)
		return lh_error_set(err, LH_ERR_INVALID, "at most %d connections: must be at least 1",
				    max_conns);
	h = calloc(1, sizeof(*h));
	if (!h)
		return lh_error_set(err, LH_ERR_NOMEM, "out of memory");
	h->base = base;
	h->max_conns = max_conns;
	h->on_refused = on_refused;
	h->arg = arg;
	/* a turn accepts at most max_conns - live connections and one more, refused (on_accept) */
	h->max_fresh = max_conns + 1;
	h->fresh = calloc((size_t)h->max_fresh, sizeof(*h->fresh));
	h->ev_adopt = event_new(base, -1, 0, on_adopt, h);
	h->http = evhttp_new(base);
	if (!h->fresh || !h->ev_adopt || !h->http) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "could not create the metrics http server");
		goto out_free;
	}
	evhttp_set_timeout(h->http, timeout_s);
	evhttp_set_bevcb(h->http, on_accept, h);
	errno = 0;
	sock = evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
	if (!sock) {
		rc = lh_error_set(err, LH_ERR_IO, "could not listen on %s:%d for metrics: %s", host,
				  port, strerror(errno ? errno : EADDRINUSE));
		goto out_free;
	}
	h->lev = evhttp_bound_socket_get_listener(sock);
	if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl) == 0)
		h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	*ret = h;
	return LH_OK;
out_free:
	lh_httpd_free(h);
	return rc;
}

struct evhttp *lh_httpd_evhttp(lh_httpd_t *h) { return h->http; }
int lh_httpd_port(const lh_httpd_t *h) { return h ? h->port : -1; }
int lh_httpd_live(const lh_httpd_t *h) { return h ? h->live : 0; }
uint64_t lh_httpd_refused(const lh_httpd_t *h) { return h ? h->refused : 0; }

lh_httpd_t *lh_httpd_free(lh_httpd_t *h)
{
	if (!h)
		return NULL;
	h->closing = true;
	/* frees the listener, then every connection (on_close runs for the adopted ones) */
	if (h->http)
		evhttp_free(h->http);
	for (int i = 0; i < h->nfresh; i++)
		bufferevent_decref(h->fresh[i].bev);
	if (h->ev_adopt)
		event_free(h->ev_adopt);
	free(h->fresh);
	free(h);
	return NULL;
}
