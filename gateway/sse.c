/* sse.c — GET /v1/plans/{id}/events as server-sent events.
 *
 * A stream replays the plan's rows of the events table in log order (partition, offset: a plan's
 * events are all on one partition), then polls for newer rows every gateway.sse_poll_ms (200 ms
 * by default; polling PostgreSQL, not Kafka, so the stream shows what the materializer folded).
 * Each event is sent as "id: OFFSET / event: TYPE / data: JSON"; a client that reconnects with
 * Last-Event-ID (or ?after=OFFSET) resumes after that offset. The stream ends after
 * plan.completed, plan.failed or plan.cancelled. At most gateway.max_streams are open at once
 * (503 beyond); a comment line every 15 s keeps proxies from closing an idle stream. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "ids.h"
#include "log.h"

#define SSE_BATCH 500
#define SSE_KEEPALIVE_US (15 * 1000000LL)

struct gw_sse {
	gw_t *gw;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	struct event *timer;
	char plan[LH_UUID_STR_LEN + 1];
	int64_t after; /* last offset sent */
	int64_t last_write_us;
	gw_sse_t *next, **pprev;
};

static void stream_free(gw_sse_t *s)
{
	if (!s)
		return;
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	s->gw->nstreams--;
	event_free(s->timer);
	free(s);
}

/* The client went away. libevent detaches a request whose reply the handler has not ended
 * (evhttp_connection_incoming_fail: req->evcon = NULL) and leaves it to its owner, so it is freed
 * here (evhttp_send_reply_end frees a detached request); one still attached is freed by libevent
 * with the connection. Found by valgrind: one request leaked per client that hung up. */
static void on_close(struct evhttp_connection *conn, void *arg)
{
	gw_sse_t *s = arg;
	struct evhttp_request *req = s->req;
	stream_free(s);
	if (evhttp_request_get_connection(req) == NULL)
		evhttp_send_reply_end(req);
}

/* End the reply ourselves (plan finished, shutdown, database gone). */
static void stream_end(gw_sse_t *s)
{
	evhttp_connection_set_closecb(s->conn, NULL, NULL);
	evhttp_send_reply_end(s->req);
	stream_free(s);
}

static void arm(gw_sse_t *s, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(s->timer, &tv);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	gw_sse_t *s = arg;
	gw_t *gw = s->gw;
	char after[24], limit[16];
	const char *params[3] = {s->plan, after, limit};
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	struct evbuffer *b;
	bool finished = false;
	int n;

	snprintf(after, sizeof(after), "%" PRId64, s->after);
	snprintf(limit, sizeof(limit), "%d", SSE_BATCH);
	if (gw_pg_connect(gw, &err) ||
	    lh_pg_query(gw->pg, "api_events_after", 3, params, NULL, NULL, &res, &err)) {
		/* Try again later; the client sees a pause, not an error. */
		lh_log_warn("gateway.sse", "could not read events", "plan_id", s->plan, "error",
			    err.msg);
		arm(s, 1000);
		return;
	}
	n = lh_pg_nrows(res);
	b = evbuffer_new();
	for (int i = 0; i < n; i++) {
		const char *type = lh_pg_get(res, i, 1);
		s->after = lh_pg_get_i64(res, i, 0);
		evbuffer_add_printf(b, "id: %" PRId64 "\nevent: %s\ndata: %s\n\n", s->after, type,
				    lh_pg_get(res, i, 2));
		if (!strcmp(type, "plan.completed") || !strcmp(type, "plan.failed") ||
		    !strcmp(type, "plan.cancelled"))
			finished = true;
	}
	lh_pg_res_free(res);
	if (!n && lh_mono_us() - s->last_write_us > SSE_KEEPALIVE_US)
		evbuffer_add_printf(b, ": keepalive\n\n");
	if (evbuffer_get_length(b)) {
		evhttp_send_reply_chunk(s->req, b);
		s->last_write_us = lh_mono_us();
	}
	evbuffer_free(b);
	if (finished)
		stream_end(s);
	else
		arm(s, n == SSE_BATCH ? 0 : gw->cfg.sse_poll_ms);
}

void gw_sse_start(gw_t *gw, struct evhttp_request *req, const char *plan)
{
	const char *last =
		evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
	struct evkeyvalq q;
	const char *after_q;
	int64_t after = -1;
	gw_sse_t *s;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	if (!gw_query_params(req, "after", &q))
		return;
	after_q = evhttp_find_header(&q, "after");
	if (after_q && !last)
		last = after_q;
	if (last) {
		char *end;
		long long v = strtoll(last, &end, 10);
		if (!*last || *end || v < -1) {
			gw_reply_error(req, 400, "invalid_query",
				       "Last-Event-ID (or after) must be an event offset, not "
				       "\"%.32s\"",
				       last);
			evhttp_clear_headers(&q);
			return;
		}
		after = v;
	}
	evhttp_clear_headers(&q);
	if (gw->nstreams >= gw->cfg.max_streams) {
		evhttp_add_header(out, "Retry-After", "5");
		gw_reply_error(req, 503, "too_many_streams",
			       "%d event streams are open; the limit is %lld", gw->nstreams,
			       (long long)gw->cfg.max_streams);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		gw_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	s->gw = gw;
	s->req = req;
	s->conn = evhttp_request_get_connection(req);
	s->after = after;
	s->last_write_us = lh_mono_us();
	snprintf(s->plan, sizeof(s->plan), "%s", plan);
	s->timer = evtimer_new(gw->base, on_poll, s);
	s->next = gw->streams;
	if (s->next)
		s->next->pprev = &s->next;
	s->pprev = &gw->streams;
	gw->streams = s;
	gw->nstreams++;
	evhttp_connection_set_closecb(s->conn, on_close, s);
	evhttp_add_header(out, "Content-Type", "text/event-stream");
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evhttp_send_reply_start(req, 200, "OK");
	arm(s, 0);
}

void gw_sse_close_all(gw_t *gw)
{
	while (gw->streams)
		stream_end(gw->streams);
}
