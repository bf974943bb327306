/* http_client.c — libcurl multi on a libevent loop (curl's docs/examples/hiperfifo.c pattern).
 *
 * curl asks for sockets to be watched through sock_cb and for a wake-up through timer_cb; both
 * are forwarded to libevent. When an event fires we call curl_multi_socket_action and then
 * collect finished transfers (check_done). Each transfer is a struct xfer in a doubly linked list
 * owned by the client, so cancel and shutdown can find them. */
#include "http_client.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)64 << 20)

struct sockinfo {
	lh_http_t *http;
	curl_socket_t fd;
	struct event ev;
	bool ev_set;
	struct sockinfo *prev, *next;
};

struct xfer {
	lh_http_t *http;
	CURL *easy;
	struct curl_slist *headers;
	char *url;
	char *url_log; /* url without its query string: queries may carry keys */
	char *method;
	char *body;
	size_t body_len;
	bool body_owned; /* false: borrowed from the caller (lh_http_req_t.body_borrowed) */
	lh_http_done_cb cb;
	void *opaque;
	uint64_t id;
	lh_buf_t resp_body;
	size_t max_bytes;
	long first_byte_ms;
	bool too_large;
	bool got_first_byte;
	struct event *fb_timer; /* first-byte timeout; NULL when none */
	lh_http_addr_check_fn addr_check;
	void *addr_check_ctx;
	bool addr_refused;
	char refused_addr[INET6_ADDRSTRLEN + 8];
	struct curl_slist *resolve;
	struct timespec start;
	char errbuf[CURL_ERROR_SIZE];
	struct xfer *prev, *next;
};

struct lh_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	long connect_timeout_ms;
	long first_byte_timeout_ms;
	long total_timeout_ms;
	size_t max_response_bytes;
	char *user_agent;
	struct xfer *xfers;
	struct sockinfo *socks;
	uint64_t next_id;
	lh_http_stats_t stats;
	bool cancelling;
};

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1000.0 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static struct timeval ms_to_tv(long ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	return tv;
}

/* ---- retry-after ------------------------------------------------------------------------- */

long lh_http_parse_retry_after(const char *value, long long now_s)
{
	char *end;
	double secs;
	time_t t;

	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		errno = 0;
		secs = strtod(value, &end);
		while (*end == ' ' || *end == '\t')
			end++;
		if (errno || *end || secs < 0 || secs > 1e9)
			return -1;
		return (long)(secs * 1000.0 + 0.5);
	}
	t = curl_getdate(value, NULL);
	if (t == (time_t)-1)
		return -1;
	if ((long long)t <= now_s)
		return 0;
	if ((long long)t - now_s > 1000000000LL)
		return -1;
	return (long)(((long long)t - now_s) * 1000);
}

static long parse_retry_after_ms(const char *value)
{
	char *end;
	double ms;
	if (!value)
		return -1;
	errno = 0;
	ms = strtod(value, &end);
	while (*end == ' ' || *end == '\t')
		end++;
	if (errno || end == value || *end || ms < 0 || ms > 1e12)
		return -1;
	return (long)(ms + 0.5);
}

/* ---- curl callbacks ---------------------------------------------------------------------- */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	if (x->resp_body.len + n > x->max_bytes) {
		x->too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	lh_buf_append(&x->resp_body, ptr, n);
	return n;
}

static size_t header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	struct xfer *x = userdata;
	if (!x->got_first_byte) {
		x->got_first_byte = true;
		if (x->fb_timer)
			evtimer_del(x->fb_timer);
	}
	(void)buffer;
	return size * nitems;
}

static void check_done(lh_http_t *http);

static void event_cb(evutil_socket_t fd, short kind, void *arg)
{
	lh_http_t *http = arg;
	int running = 0;
	int action = ((kind & EV_READ) ? CURL_CSELECT_IN : 0) |
		     ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(http->multi, fd, action, &running);
	/* No timer clean-up here on running == 0: a done callback in check_done may start a new
	 * request, whose start depends on the timer curl has just asked for. curl removes the
	 * timer itself (timeout -1) when nothing is left. */
	check_done(http);
}

static void timer_event_cb(evutil_socket_t fd, short kind, void *arg)
{
	lh_http_t *http = arg;
	int running = 0;
	curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(http);
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	lh_http_t *http = userp;
	struct timeval tv;
	if (timeout_ms < 0) {
		evtimer_del(http->timer);
		return 0;
	}
	/* 0 means "as soon as possible": fire on the next loop turn, never call socket_action
	 * from inside this callback (curl forbids it) */
	tv = ms_to_tv(timeout_ms);
	evtimer_add(http->timer, &tv);
	return 0;
}

static void sock_unlink_free(lh_http_t *http, struct sockinfo *si)
{
	if (si->ev_set)
		event_del(&si->ev);
	if (si->prev)
		si->prev->next = si->next;
	else
		http->socks = si->next;
	if (si->next)
		si->next->prev = si->prev;
	free(si);
}

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	lh_http_t *http = userp;
	struct sockinfo *si = socketp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (si) {
			sock_unlink_free(http, si);
			curl_multi_assign(http->multi, s, NULL);
		}
		return 0;
	}
	if (!si) {
		si = calloc(1, sizeof(*si));
		if (!si)
			return -1;
		si->http = http;
		si->fd = s;
		si->next = http->socks;
		if (http->socks)
			http->socks->prev = si;
		http->socks = si;
		curl_multi_assign(http->multi, s, si);
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
		       ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (si->ev_set)
		event_del(&si->ev);
	event_assign(&si->ev, http->base, s, kind, event_cb, http);
	si->ev_set = true;
	event_add(&si->ev, NULL);
	return 0;
}

/* ---- completion -------------------------------------------------------------------------- */

static void xfer_unlink(lh_http_t *http, struct xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		http->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->fb_timer)
		event_free(x->fb_timer);
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	curl_slist_free_all(x->resolve);
	lh_buf_finish(&x->resp_body);
	free(x->url);
	free(x->url_log);
	free(x->method);
	if (x->body_owned)
		free(x->body);
	free(x);
}

enum finish_how { FINISH_CURL, FINISH_FIRST_BYTE_TIMEOUT, FINISH_CANCELLED };

static void map_error(struct xfer *x, CURLcode rc, enum finish_how how, lh_http_resp_t *resp)
{
	const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
	lh_error_t *e = &resp->error;

	if (how == FINISH_CANCELLED) {
		lh_error_set(e, LH_ERR_UNAVAILABLE, "could not %s %s: request cancelled", x->method,
			     x->url_log);
		return;
	}
	if (how == FINISH_FIRST_BYTE_TIMEOUT) {
		lh_error_retry(e, LH_ERR_TIMEOUT, "could not %s %s: no response within %ld ms",
			       x->method, x->url_log, x->first_byte_ms);
		return;
	}
	if (x->addr_refused) {
		lh_error_set(e, LH_ERR_INVALID,
			     "could not %s %s: refused to connect to %s (a loopback, private or "
			     "link-local address)",
			     x->method, x->url_log, x->refused_addr);
		return;
	}
	switch (rc) {
	case CURLE_OK:
		lh_error_clear(e);
		return;
	case CURLE_OPERATION_TIMEDOUT:
		lh_error_retry(e, LH_ERR_TIMEOUT, "could not %s %s: %s", x->method, x->url_log, why);
		return;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		lh_error_retry(e, LH_ERR_UNAVAILABLE, "could not %s %s: %s", x->method, x->url_log,
			       why);
		return;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
			lh_error_set(e, LH_ERR_TOO_LARGE,
				     "could not %s %s: response body larger than %zu bytes",
				     x->method, x->url_log, x->max_bytes);
			return;
		}
		break;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_BAD_CONTENT_ENCODING:
		lh_error_retry(e, LH_ERR_IO, "could not %s %s: %s", x->method, x->url_log, why);
		return;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		lh_error_set(e, LH_ERR_INVALID, "could not %s %s: %s", x->method, x->url_log, why);
		return;
	default:
		break;
	}
	lh_error_set(e, LH_ERR_HTTP, "could not %s %s: %s", x->method, x->url_log, why);
}

/* Remove x from the multi and the list, run its callback, free it. */
static void xfer_finish(struct xfer *x, CURLcode rc, enum finish_how how)
{
	lh_http_t *http = x->http;
	lh_http_resp_t resp;
	long status = 0;
	const char *v;

	if (x->fb_timer)
		evtimer_del(x->fb_timer);
	curl_multi_remove_handle(http->multi, x->easy);
	xfer_unlink(http, x);

	memset(&resp, 0, sizeof(resp));
	resp.priv_ = x;
	resp.id = x->id;
	resp.curl_code = (int)rc;
	resp.curl_msg = x->errbuf[0] ? x->errbuf : (rc == CURLE_OK ? "" : curl_easy_strerror(rc));
	resp.cancelled = how == FINISH_CANCELLED;
	resp.total_ms = elapsed_ms(&x->start);
	resp.retry_after_ms = -1;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	resp.status = status;
	map_error(x, rc, how, &resp);
	if (status > 0) {
		v = lh_http_resp_header(&resp, "retry-after-ms");
		resp.retry_after_ms = parse_retry_after_ms(v);
		if (resp.retry_after_ms < 0) {
			v = lh_http_resp_header(&resp, "retry-after");
			resp.retry_after_ms = lh_http_parse_retry_after(v, (long long)time(NULL));
		}
	}
	resp.body = x->resp_body;
	lh_buf_init(&x->resp_body);

	http->stats.in_flight--;
	if (resp.error.code == LH_OK)
		http->stats.completed++;
	else
		http->stats.failed++;
	if (lh_log_debug_on(LH_DBG_HTTP)) {
		char sbuf[24], tbuf[24];
		lh_log(LH_LOG_DEBUG, "http.done", resp.error.code ? resp.error.msg : "request done",
		       "method", x->method, "url", x->url_log, "status", lh_log_i64(sbuf, status),
		       "ms", lh_log_i64(tbuf, (long long)resp.total_ms), (char *)NULL);
	}
	x->cb(&resp, x->opaque);
	lh_buf_finish(&resp.body);
	xfer_free(x);
}

static void check_done(lh_http_t *http)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(http->multi, &left))) {
		struct xfer *x = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x)
			xfer_finish(x, msg->data.result, FINISH_CURL);
	}
}

static void first_byte_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct xfer *x = arg;
	lh_http_t *http = x->http;
	xfer_finish(x, CURLE_OPERATION_TIMEDOUT, FINISH_FIRST_BYTE_TIMEOUT);
	/* removing a handle may have completed nothing else, but let curl run its timers */
	check_done(http);
}

/* Every connection's socket is opened here when the request has an address check: the address
 * is the one resolution produced, right before connecting (no DNS rebinding window). */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
				    struct curl_sockaddr *address)
{
	struct xfer *x = clientp;
	if (purpose == CURLSOCKTYPE_IPCXN && x->addr_check &&
	    !x->addr_check(&address->addr, x->addr_check_ctx)) {
		char ip[INET6_ADDRSTRLEN] = "?";
		if (address->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&address->addr)->sin_addr, ip,
				  sizeof(ip));
		else if (address->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&address->addr)->sin6_addr, ip,
				  sizeof(ip));
		x->addr_refused = true;
		snprintf(x->refused_addr, sizeof(x->refused_addr), "%s", ip);
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* ---- public ------------------------------------------------------------------------------ */

lh_http_t *lh_http_new(struct event_base *base, const lh_http_opts_t *opts, lh_error_t *err)
{
	lh_http_t *http;
	lh_http_opts_t none = {0};

	if (!base) {
		lh_error_set(err, LH_ERR_INVALID, "could not create http client: no event base");
		return NULL;
	}
	if (!opts)
		opts = &none;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		lh_error_set(err, LH_ERR_INTERNAL, "could not initialize libcurl");
		return NULL;
	}
	http = calloc(1, sizeof(*http));
	if (!http)
		goto out_global;
	http->base = base;
	http->connect_timeout_ms =
		opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	http->first_byte_timeout_ms = opts->first_byte_timeout_ms;
	http->total_timeout_ms = opts->total_timeout_ms;
	http->max_response_bytes =
		opts->max_response_bytes ? opts->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES;
	http->user_agent = strdup(opts->user_agent ? opts->user_agent : "longhaul");
	http->next_id = 1;
	http->multi = curl_multi_init();
	http->timer = evtimer_new(base, timer_event_cb, http);
	if (!http->user_agent || !http->multi || !http->timer)
		goto out_http;
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
	if (opts->max_connections > 0)
		curl_multi_setopt(http->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
				  opts->max_connections);
	if (opts->max_host_connections > 0)
		curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				  opts->max_host_connections);
	return http;

out_http:
	if (http->timer)
		event_free(http->timer);
	if (http->multi)
		curl_multi_cleanup(http->multi);
	free(http->user_agent);
	free(http);
out_global:
	curl_global_cleanup();
	lh_error_set(err, LH_ERR_NOMEM, "could not create http client: out of memory");
	return NULL;
}

lh_http_t *lh_http_free(lh_http_t *http)
{
	if (!http)
		return NULL;
	lh_http_cancel_all(http);
	curl_multi_cleanup(http->multi);
	/* curl may close cached connections without telling sock_cb */
	while (http->socks)
		sock_unlink_free(http, http->socks);
	event_free(http->timer);
	free(http->user_agent);
	free(http);
	curl_global_cleanup();
	return NULL;
}

static char *url_without_query(const char *url)
{
	size_t n = strcspn(url, "?#");
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, url, n);
		s[n] = 0;
	}
	return s;
}

lh_err_t lh_http_request(lh_http_t *http, const lh_http_req_t *req, lh_http_done_cb cb,
			 void *opaque, uint64_t *ret_id, lh_error_t *err)
{
	struct xfer *x;
	long connect_ms, total_ms;
	const char *method;

	if (!http || !req || !req->url || !cb)
		return lh_error_set(err, LH_ERR_INVALID, "could not start http request: %s",
				    !req || !req->url ? "no url" : "no callback");
	if (http->cancelling)
		return lh_error_set(err, LH_ERR_STATE,
				    "could not start http request: client is cancelling");
	method = req->method ? req->method : (req->body ? "POST" : "GET");

	x = calloc(1, sizeof(*x));
	if (!x)
		return lh_error_set(err, LH_ERR_NOMEM, "could not start http request: out of memory");
	x->http = http;
	x->cb = cb;
	x->opaque = opaque;
	x->url = strdup(req->url);
	x->url_log = url_without_query(req->url);
	x->method = strdup(method);
	x->max_bytes = req->max_response_bytes ? req->max_response_bytes : http->max_response_bytes;
	x->first_byte_ms =
		req->first_byte_timeout_ms > 0 ? req->first_byte_timeout_ms : http->first_byte_timeout_ms;
	lh_buf_init(&x->resp_body);
	if (!x->url || !x->url_log || !x->method)
		goto out_nomem;
	if (req->body && req->body_borrowed) {
		x->body = (char *)req->body; /* not written to: curl only reads POSTFIELDS */
		x->body_len = req->body_len;
	} else if (req->body) {
		x->body = malloc(req->body_len ? req->body_len : 1);
		if (!x->body)
			goto out_nomem;
		memcpy(x->body, req->body, req->body_len);
		x->body_len = req->body_len;
		x->body_owned = true;
	}
	for (size_t i = 0; i < req->n_headers; i++) {
		struct curl_slist *l = curl_slist_append(x->headers, req->headers[i]);
		if (!l)
			goto out_nomem;
		x->headers = l;
	}
	for (size_t i = 0; req->resolve && req->resolve[i]; i++) {
		struct curl_slist *l = curl_slist_append(x->resolve, req->resolve[i]);
		if (!l)
			goto out_nomem;
		x->resolve = l;
	}
	if (x->body) {
		/* no "Expect: 100-continue" round trip for large bodies */
		struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
		if (!l)
			goto out_nomem;
		x->headers = l;
	}
	x->easy = curl_easy_init();
	if (!x->easy)
		goto out_nomem;
	if (x->first_byte_ms > 0) {
		x->fb_timer = evtimer_new(http->base, first_byte_cb, x);
		if (!x->fb_timer)
			goto out_nomem;
	}

	connect_ms = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : http->connect_timeout_ms;
	total_ms = req->total_timeout_ms > 0 ? req->total_timeout_ms : http->total_timeout_ms;
	curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	if (total_ms > 0)
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(x->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_bytes);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, http->user_agent);
	curl_easy_setopt(x->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (x->headers)
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	if (x->resolve)
		curl_easy_setopt(x->easy, CURLOPT_RESOLVE, x->resolve);
	if (req->addr_check) {
		x->addr_check = req->addr_check;
		x->addr_check_ctx = req->addr_check_ctx;
		curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
		curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETDATA, x);
		curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
	}
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, x->method);
		else
			curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
		if (x->body || strcmp(method, "POST") == 0) {
			curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)x->body_len);
			curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body ? x->body : "");
		}
	}

	x->id = http->next_id++;
	clock_gettime(CLOCK_MONOTONIC, &x->start);
	x->next = http->xfers;
	if (http->xfers)
		http->xfers->prev = x;
	http->xfers = x;
	if (curl_multi_add_handle(http->multi, x->easy) != CURLM_OK) {
		xfer_unlink(http, x);
		xfer_free(x);
		return lh_error_set(err, LH_ERR_INTERNAL,
				    "could not start http request: curl_multi_add_handle failed");
	}
	if (x->fb_timer) {
		struct timeval tv = ms_to_tv(x->first_byte_ms);
		evtimer_add(x->fb_timer, &tv);
	}
	http->stats.started++;
	http->stats.in_flight++;
	if (http->stats.in_flight > http->stats.max_in_flight)
		http->stats.max_in_flight = http->stats.in_flight;
	lh_log_debug(LH_DBG_HTTP, "http.start", "request started", "method", x->method, "url",
		     x->url_log);
	if (ret_id)
		*ret_id = x->id;
	return LH_OK;

out_nomem:
	xfer_free(x);
	return lh_error_set(err, LH_ERR_NOMEM, "could not start http request: out of memory");
}

lh_err_t lh_http_cancel(lh_http_t *http, uint64_t id)
{
	for (struct xfer *x = http->xfers; x; x = x->next) {
		if (x->id == id) {
			xfer_finish(x, CURLE_ABORTED_BY_CALLBACK, FINISH_CANCELLED);
			return LH_OK;
		}
	}
	return LH_ERR_NOT_FOUND;
}

void lh_http_cancel_all(lh_http_t *http)
{
	bool was;
	if (!http)
		return;
	was = http->cancelling;
	http->cancelling = true;
	while (http->xfers)
		xfer_finish(http->xfers, CURLE_ABORTED_BY_CALLBACK, FINISH_CANCELLED);
	http->cancelling = was;
}

const char *lh_http_resp_header(lh_http_resp_t *resp, const char *name)
{
	struct xfer *x;
	struct curl_header *h = NULL;
	size_t amount;

	if (!resp || !resp->priv_ || !name)
		return NULL;
	x = resp->priv_;
	if (curl_easy_header(x->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	amount = h->amount;
	if (amount > 1 &&
	    curl_easy_header(x->easy, name, amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return h->value;
}

void lh_http_stats(const lh_http_t *http, lh_http_stats_t *ret_stats)
{
	*ret_stats = http->stats;
}

struct event_base *lh_http_base(const lh_http_t *http) { return http->base; }
