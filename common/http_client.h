/* http_client.h — asynchronous HTTP client: libcurl multi driven by a libevent loop.
 *
 * curl's hiperfifo pattern: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to wake it (CURLMOPT_TIMERFUNCTION); libevent watches them and calls
 * curl_multi_socket_action. Thousands of requests can be in flight on one loop, none of them
 * blocks it. Everything runs on the thread that runs the event_base; the client is not
 * thread-safe.
 *
 * Lifecycle of a request: lh_http_request() copies what it needs from the request (url, headers,
 * body), so the caller's lh_http_req_t may die when it returns. When it returns LH_OK the done
 * callback is called exactly once, later, from the loop (never from inside lh_http_request);
 * when it returns an error the callback is never called.
 *
 * Secrets: header values are never logged (debug logs name the method, url and status only). */
#ifndef LH_HTTP_CLIENT_H
#define LH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

struct event_base;
struct sockaddr;

/* May the client connect to this address (the one DNS gave, as the socket is opened)? */
typedef bool (*lh_http_addr_check_fn)(const struct sockaddr *addr, void *ctx);

typedef struct lh_http lh_http_t;

typedef struct lh_http_opts {
	long max_connections;	   /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0 = unlimited */
	long max_host_connections; /* CURLMOPT_MAX_HOST_CONNECTIONS; 0 = unlimited */
	long connect_timeout_ms;   /* defaults for requests that leave theirs at 0; 0 = 10 s */
	long first_byte_timeout_ms; /* 0 = none */
	long total_timeout_ms;	   /* 0 = none */
	size_t max_response_bytes; /* 0 = 64 MiB */
	const char *user_agent;	   /* copied; NULL = "longhaul" */
} lh_http_opts_t;

typedef struct lh_http_req {
	const char *method;	     /* "GET", "POST", ...; NULL = POST when body is set, else GET */
	const char *url;	     /* required */
	const char *const *headers;  /* "Name: value" lines */
	size_t n_headers;
	const void *body;	     /* may be NULL */
	size_t body_len;
	bool body_borrowed;	     /* the body is not copied: it must stay as it is until the done
					callback has run (one copy less of large bodies in flight) */
	long connect_timeout_ms;     /* 0 = the client's default */
	long first_byte_timeout_ms;  /* from lh_http_request to the first response byte, time spent
					queued for a connection (max_connections) included; 0 = the
					client's default */
	long total_timeout_ms;	     /* whole transfer; 0 = the client's default */
	size_t max_response_bytes;   /* body cap; 0 = the client's default */
	/* Checked on every address a connection is opened to, after resolution (so a name that
	 * resolves to a refused address — DNS rebinding — is refused too, whatever it resolved to
	 * when a caller looked before). A refusal fails the request with LH_ERR_INVALID (not
	 * retriable) and "refused to connect to ADDR". Setting it also turns proxies off (the
	 * check must see the target). Connections are reused within a client: give every
	 * request of a client the same check (or none). NULL = no check. */
	lh_http_addr_check_fn addr_check;
	void *addr_check_ctx;
	/* "host:port:address" entries pinning names to addresses (curl's --resolve); NULL-ended
	 * list, may be NULL. */
	const char *const *resolve;
} lh_http_req_t;

typedef struct lh_http_resp {
	/* error.code is LH_OK when a complete response arrived, whatever its status. Otherwise:
	 * LH_ERR_TIMEOUT (connect, first byte or total timeout), LH_ERR_UNAVAILABLE (could not
	 * resolve or connect; or cancelled), LH_ERR_TOO_LARGE (body over the cap, transfer
	 * aborted), LH_ERR_IO (connection broken, truncated body), LH_ERR_HTTP (anything else).
	 * error.retriable is set for transport errors worth retrying (timeouts, connect, I/O). */
	lh_error_t error;
	bool cancelled;	     /* lh_http_cancel / lh_http_cancel_all / lh_http_free */
	long status;	     /* HTTP status, 0 when no response head arrived */
	lh_buf_t body;	     /* owned by the client; keep it with lh_buf_steal(&resp->body, ..) */
	double total_ms;     /* from start of the transfer to its end */
	int curl_code;	     /* CURLcode */
	const char *curl_msg; /* borrowed for the callback; "" when none */
	long retry_after_ms; /* from retry-after-ms, else retry-after (seconds or HTTP date); -1 */
	uint64_t id;	     /* the id lh_http_request returned */
	void *priv_;	     /* the client's; do not touch */
} lh_http_resp_t;

/* Called once per request, on the loop. resp is borrowed for the duration of the call; steal
 * resp->body to keep it. The callback may start new requests; it must not free the client. */
typedef void (*lh_http_done_cb)(lh_http_resp_t *resp, void *opaque);

/* new. base is borrowed and must outlive the client. opts may be NULL (all defaults). Calls
 * curl_global_init (reference counted by libcurl). Returns NULL and fills err on failure. */
lh_http_t *lh_http_new(struct event_base *base, const lh_http_opts_t *opts, lh_error_t *err);

/* Cancels every request in flight (their callbacks run with cancelled = true), then frees.
 * Accepts NULL; returns NULL. Must not be called from inside a done callback. */
lh_http_t *lh_http_free(lh_http_t *http);

/* Start a request. req and everything it points to are copied. On LH_OK, *ret_id (optional)
 * receives an id for lh_http_cancel, unique for the life of the client. */
lh_err_t lh_http_request(lh_http_t *http, const lh_http_req_t *req, lh_http_done_cb cb,
			 void *opaque, uint64_t *ret_id, lh_error_t *err);

/* Cancel one request: its callback runs now, inside this call, with cancelled = true.
 * Returns LH_ERR_NOT_FOUND when the request is no longer in flight (its callback already ran). */
lh_err_t lh_http_cancel(lh_http_t *http, uint64_t id);

/* Cancel everything in flight (for shutdown); callbacks run inside this call with cancelled =
 * true. While it runs, new requests are refused with LH_ERR_STATE. */
void lh_http_cancel_all(lh_http_t *http);

/* A response header's value (the last one of that name, case-insensitive), via
 * curl_easy_header. Borrowed: valid until the next lh_http_resp_header call on this response or
 * the end of the callback. NULL when absent. */
const char *lh_http_resp_header(lh_http_resp_t *resp, const char *name);

typedef struct lh_http_stats {
	uint64_t started;	/* requests accepted by lh_http_request */
	uint64_t completed;	/* a response arrived (any status) */
	uint64_t failed;	/* transport errors, including cancelled */
	uint64_t in_flight;	/* started, callback not yet run */
	uint64_t max_in_flight; /* high-water mark of in_flight */
} lh_http_stats_t;

void lh_http_stats(const lh_http_t *http, lh_http_stats_t *ret_stats);

/* The event base the client runs on (borrowed). */
struct event_base *lh_http_base(const lh_http_t *http);

/* Parse a retry-after header value: delta seconds ("120", "1.5") or an HTTP date (relative to
 * now_s, seconds since the epoch). Returns milliseconds (0 for a date in the past) or -1 when
 * the value is not understood. */
long lh_http_parse_retry_after(const char *value, long long now_s);

#endif
