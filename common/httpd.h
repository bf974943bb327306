/* httpd.h — an evhttp server with a cap on concurrent connections, for the daemons' metrics
 * endpoints (lh-materializer and lh-worker --metrics-listen).
 *
 * libevent 2.1 has no evhttp_set_max_connections (that is 2.2), so a client that opens thousands
 * of idle connections would take one descriptor each until the process has none left for Kafka
 * or PostgreSQL. This counts the connections evhttp holds and closes each one past max_conns as
 * soon as it is accepted (after a best-effort "503 Service Unavailable"); idle or slow
 * connections are closed by evhttp's timeout. Never blocks: everything runs on the loop of the
 * event_base given, from its callbacks.
 *
 * Threads: every function on the thread that runs base (or before it runs / after it stopped). */
#ifndef LH_HTTPD_H
#define LH_HTTPD_H

#include <stdint.h>

#include "err.h"

/* The metrics endpoints' limits: at most this many connections at once (Prometheus needs one per
 * scraper), and a connection idle, or slow to send its request or read the answer, for this many
 * seconds is closed. */
#define LH_HTTPD_MAX_CONNS 64
#define LH_HTTPD_TIMEOUT_S 10
/* refused connections are reported at most once per this many seconds */
#define LH_HTTPD_REFUSED_REPORT_S 10

struct event_base;
struct evhttp;
typedef struct lh_httpd lh_httpd_t;

/* Called when a connection was refused over the cap, at most once every
 * LH_HTTPD_REFUSED_REPORT_S seconds: refused is the number refused since the last call
 * (this one included); the daemon logs it. */
typedef void (*lh_httpd_refused_fn)(uint64_t refused, int max_conns, void *arg);

/* Bind listen ("ADDR:PORT", lh_listen_parse) for a new evhttp on base that holds at most
 * max_conns (>= 1) connections at once and times each one out after timeout_s seconds without
 * progress. refused (may be NULL) and arg are borrowed until lh_httpd_free. Returns new in *ret;
 * LH_ERR_CONFIG for a malformed address, LH_ERR_IO when it cannot be bound ("could not listen on
 * ADDR:PORT for metrics: why"). */
lh_err_t lh_httpd_new(struct event_base *base, const char *listen, int max_conns, int timeout_s,
		      lh_httpd_refused_fn refused, void *arg, lh_httpd_t **ret, lh_error_t *err);
/* The evhttp, to set callbacks and limits on; borrowed until lh_httpd_free (never evhttp_free it
 * yourself). */
struct evhttp *lh_httpd_evhttp(lh_httpd_t *h);
/* The port bound (the real one when 0 was asked for). */
int lh_httpd_port(const lh_httpd_t *h);
/* Connections held now; connections refused since the start. */
int lh_httpd_live(const lh_httpd_t *h);
uint64_t lh_httpd_refused(const lh_httpd_t *h);
/* Close every connection and the socket, free. Accepts NULL; returns NULL. */
lh_httpd_t *lh_httpd_free(lh_httpd_t *h);

#endif
