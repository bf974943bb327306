/* gateway.h — lh-gateway's one context and the functions its files share (private to gateway/).
 *
 * Files, one concern each:
 *   main.c          configuration, --create-token / --revoke-token, startup and the loop
 *   http.c          routing, the single error-body writer, JSON replies, bodies and query strings,
 *                   /healthz /readyz /metrics
 *   auth.c          bearer tokens (sha256 in api_tokens), roles, per-token rate limit
 *   write.c         idempotent appends to lh.events (api_writes + derived event ids)
 *   api_plans.c     /v1/goals, /v1/plans...
 *   api_requests.c  /v1/requests...
 *   sse.c           /v1/plans/{id}/events as server-sent events
 *   notify.c        webhooks (a second consumer of lh.events, write-ahead notification.queued)
 *   links.c         GET /v1/links/{token}: signed one-click approve/reject links
 *   static.c        the dashboard (/dashboard/...): files embedded at build time, strict CSP
 *   memory_routes.c /v1/memories...: search, show and forget the agents' memories
 *   rules.c         the automated responder's rules: parsed and checked at start-up, matched
 *   responder.c     the rule responder (a third consumer of lh.events): answers what a rule
 *                   matches as responder_type automated_rule
 * Threads: one libevent loop. PostgreSQL reads and the wait for Kafka's acknowledgement of a write
 * block the loop briefly (see README.md). */
#ifndef LH_GATEWAY_H
#define LH_GATEWAY_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "bus.h"
#include "config.h"
#include "event.h"
#include "kafka.h"
#include "pg.h"

typedef struct gw_cfg {
	lh_common_cfg_t common;
	char *listen;
	int64_t port;
	bool no_auth;
	int64_t max_body;
	int64_t max_headers;
	double rate_per_s;
	int64_t rate_burst;
	int64_t max_streams;
	int64_t sse_poll_ms;
	int64_t delivery_timeout_ms;
	int64_t pg_timeout_ms; /* statement_timeout of the gateway's session: bounds loop blocking */
	char *create_token; /* --create-token NAME: print a new token and exit */
	char *revoke_token; /* --revoke-token NAME: revoke every live token of that name and exit */
	char *role;
	char *webhook_url;    /* comma list; empty = no notifier */
	char *webhook_secret; /* HMAC key of signatures and links; never logged */
	char *webhook_format; /* slack | generic */
	char *public_url;     /* base of the links in notifications */
	int64_t webhook_attempts;
	int64_t webhook_backoff_ms;
	int64_t link_ttl_s;
	char *responder_rules;	   /* JSON array or @FILE; empty = no rule responder */
	char *responder_task_cost; /* "tier=usd,..." estimated cost of one task per tier */
	char *triage_url;	   /* OpenAI-compatible base URL, "scripted", or "" (none) */
	char *triage_model;	   /* model asked; the answers' responder_id */
	char *triage_key_env;	   /* name of the environment variable holding its API key */
	int64_t triage_timeout_ms;
	int64_t triage_max_inflight;
} gw_cfg_t;

typedef enum gw_role { GW_VIEWER = 1, GW_RESPONDER = 2, GW_ADMIN = 3 } gw_role_t;

/* Who is calling: from the token, or the --no-auth stand-in (admin, every tenant visible). */
typedef struct gw_caller {
	char name[128];
	char tenant[LH_ENVELOPE_TENANT_MAX_LEN + 1]; /* tenant of writes */
	const char *read_tenant; /* tenant filter of reads: tenant, or NULL for all (--no-auth) */
	gw_role_t role;
	char token_sha256[65];
} gw_caller_t;

typedef struct gw_bucket {
	char token_sha256[65];
	double tokens;
	int64_t last_us;
} gw_bucket_t;

#define GW_MAX_BUCKETS 1024

typedef struct gw_sse gw_sse_t;
typedef struct gw_notify gw_notify_t;
typedef struct gw_responder gw_responder_t;

/* The delivery report a write waits for (one write at a time: the loop waits for it). */
typedef struct gw_delivery {
	uintptr_t seq; /* msg_opaque of the awaited message */
	bool done;
	lh_err_t rc;
	char msg[256];
} gw_delivery_t;

typedef struct gw {
	gw_cfg_t cfg;
	struct event_base *base;
	struct evhttp *http;
	lh_pg_t *pg;
	lh_kafka_t *kafka;
	char events_topic[LH_TOPIC_MAX];
	lh_buf_t scratch;
	gw_delivery_t delivery;
	gw_bucket_t buckets[GW_MAX_BUCKETS];
	int nbuckets;
	gw_sse_t *streams; /* list of open event streams */
	int nstreams;
	struct event *ev_sigint, *ev_sigterm;
	gw_notify_t *notify; /* NULL without --webhook-url */
	gw_responder_t *responder; /* NULL without responder.rules */
} gw_t;

/* ---- http.c -------------------------------------------------------------------------------- */
void gw_http_on_request(struct evhttp_request *req, void *arg); /* arg: gw_t */
/* The one function that writes an error body: {"error": {"code", "message"}}. */
void gw_reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));
/* Reply with JSON text (borrowed) or a json_t (borrowed). */
void gw_reply_json_text(struct evhttp_request *req, int status, const char *text);
void gw_reply_json(struct evhttp_request *req, int status, const json_t *j);
/* PostgreSQL connection, connected on demand; false after replying 503. */
bool gw_pg(gw_t *gw, struct evhttp_request *req);
/* Connect when not connected, with the session's statement_timeout (gateway.pg_timeout_ms): a
 * query blocks the loop at most that long. */
lh_err_t gw_pg_connect(gw_t *gw, lh_error_t *err);
/* Set the session's statement_timeout on gw->pg (after connect, after migrations). */
lh_err_t gw_pg_session(gw_t *gw, lh_error_t *err);
/* Parse the request body as one JSON object, strictly (duplicates rejected, size-limited). New
 * reference, or NULL after replying 400/413. */
json_t *gw_read_body(gw_t *gw, struct evhttp_request *req);

/* ---- auth.c -------------------------------------------------------------------------------- */
/* Authenticate and authorize: false after replying 401/403/429. */
bool gw_auth(gw_t *gw, struct evhttp_request *req, gw_role_t need, gw_caller_t *ret_caller);
/* New token for NAME printed on stdout; only its hash is stored. */
lh_err_t gw_token_create(lh_pg_t *pg, const char *name, const char *role, const char *tenant,
			 char ret_token[68], lh_error_t *err);
lh_err_t gw_token_revoke(lh_pg_t *pg, const char *name, int *ret_revoked, lh_error_t *err);

/* ---- write.c ------------------------------------------------------------------------------- */
/* Append ev (type, task_no, body set by the caller) for the caller, idempotently under key:
 * claims (tenant, key) in api_writes for route + request (a canonical description of the call),
 * and produces ev only until Kafka acknowledged it once. plan_id: in/out — for a goal the caller
 * passes a fresh id and gets back the one stored for the key. Replies itself on failure (409/422
 * for a reused key, 503) and returns false; on true the caller replies 202. */
bool gw_append(gw_t *gw, struct evhttp_request *req, const gw_caller_t *caller, const char *key,
	       const char *route, const char *request, lh_event_t *ev);
/* Was this very call (route + request, as gw_append hashes it) appended under key and
 * acknowledged? 1 yes, 0 no (not claimed, or claimed but never acknowledged), -1 after replying
 * (422 the key was used for another request, 503). */
int gw_write_done(gw_t *gw, struct evhttp_request *req, const gw_caller_t *caller,
		  const char *key, const char *route, const char *request);
/* Append ev (every field set by the caller) and wait for Kafka's acknowledgement (at most
 * gateway.delivery_timeout_ms, polling the producer on the loop's thread). LH_OK once acked. */
lh_err_t gw_emit_acked(gw_t *gw, const lh_event_t *ev, lh_error_t *err);
/* The idempotency key: the Idempotency-Key header or the body's "idempotency_key" (removed from
 * body). Borrowed (header or body string; body keeps its own reference until decref'd by the
 * caller: the value is copied into out). false after replying 400. */
bool gw_idempotency_key(struct evhttp_request *req, json_t *body, char out[257]);

/* ---- api_plans.c / api_requests.c ---------------------------------------------------------- */
void gw_api_goals_post(gw_t *gw, struct evhttp_request *req);
void gw_api_plans_list(gw_t *gw, struct evhttp_request *req);
/* /v1/plans/{id}[/sub] where sub is "", "decisions", "attempts", "events", "pause", "resume",
 * "cancel", "modify" */
void gw_api_plan(gw_t *gw, struct evhttp_request *req, const char *plan, const char *sub);
/* POST /v1/plans/{id}/tasks/{task_no}/cancel: command.issued cancel_task. */
void gw_api_task_cancel(gw_t *gw, struct evhttp_request *req, const char *plan,
			const char *task_seg);
void gw_api_requests_list(gw_t *gw, struct evhttp_request *req);
void gw_api_request_decision(gw_t *gw, struct evhttp_request *req, const char *plan,
			     const char *request_id);
/* POST /v1/requests/{plan}/{request_id}/answer: a question's answer (input.provided). */
void gw_api_request_answer(gw_t *gw, struct evhttp_request *req, const char *plan,
			   const char *request_id);
void gw_api_request_respond(gw_t *gw, struct evhttp_request *req, const char *plan_seg,
			    const char *rid_seg, bool answer);
/* Does the plan exist for the caller (0 rows for another tenant's plan)? false after replying
 * 404/503. */
bool gw_plan_visible(gw_t *gw, struct evhttp_request *req, const gw_caller_t *caller,
		     const char *plan);
/* Query parameters: each must be in allowed ("status|limit"); false after replying 400. */
bool gw_query_params(struct evhttp_request *req, const char *allowed, struct evkeyvalq *ret_q);
bool gw_query_limit(struct evhttp_request *req, struct evkeyvalq *q, int def, int max,
		    char out[16]);

/* ---- memory_routes.c: /v1/memories (search), /v1/memories/{id}, /v1/memories/{id}/forget ---- */
void gw_api_memories_search(gw_t *gw, struct evhttp_request *req);
void gw_api_memory_get(gw_t *gw, struct evhttp_request *req, const char *id);
void gw_api_memory_forget(gw_t *gw, struct evhttp_request *req, const char *id);

/* ---- sse.c --------------------------------------------------------------------------------- */
void gw_sse_start(gw_t *gw, struct evhttp_request *req, const char *plan);
void gw_sse_close_all(gw_t *gw);

/* ---- notify.c / links.c ------------------------------------------------------------------ */
/* Start the notifier when --webhook-url is set (LH_OK and nothing started otherwise). */
lh_err_t gw_notify_start(gw_t *gw, lh_error_t *err);
void gw_notify_stop(gw_t *gw);
/* HMAC-SHA256 of data under secret, as 64 hex digits. */
void gw_hmac_hex(const char *secret, const void *data, size_t len, char out[65]);
/* A signed link token for a decision ("approve" | "reject") valid until exp_s (epoch seconds);
 * budget (may be NULL): JSON of the new limits an approval sets (a budget extension). New
 * string (free), NULL on out-of-memory. */
char *gw_link_token(const gw_t *gw, const char *plan, const char *rid, const char *tenant,
		    const char *decision, int64_t exp_s, const char *budget);
/* GET /v1/links/{token}: no bearer token, the signed token is the credential. */
void gw_links_get(gw_t *gw, struct evhttp_request *req, const char *token);

/* ---- responder.c ------------------------------------------------------------------------- */
/* Parse and check responder.rules and responder.task_cost_usd (start-up: a bad rule stops the
 * gateway with err naming it); with at least one rule, start the responder's consumer. LH_OK and
 * nothing started without rules. */
lh_err_t gw_responder_start(gw_t *gw, lh_error_t *err);
void gw_responder_stop(gw_t *gw);

/* ---- static.c ------------------------------------------------------------------------------ */
/* GET /dashboard/NAME: an embedded file (NAME "index.html" for /dashboard/), or 404. */
void gw_static_get(struct evhttp_request *req, const char *name);
/* 302 to a path of this gateway (/ and /dashboard -> /dashboard/). */
void gw_static_redirect(struct evhttp_request *req, const char *to);

#endif
