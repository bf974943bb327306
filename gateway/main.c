/* lh-gateway — the HTTP edge: the admin REST API (/v1/...), server-sent events, health,
 * readiness and metrics (libevent's evhttp). Reads come from PostgreSQL; writes are appended to
 * lh.events (the gateway never talks to the coordinator). See README.md and docs/openapi.yaml.
 *
 *   lh-gateway [options]                                  serve
 *   lh-gateway --create-token NAME --role R --tenant T    print a new bearer token once, exit
 *   lh-gateway --revoke-token NAME                        revoke every live token NAME, exit */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log.h"

/* write.c */
void gw_on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
		    int32_t partition, int64_t offset);

/* Hard cap for libevent: bodies between gateway.max_body and this get our JSON 413; beyond it
 * libevent answers 413 itself (with its own HTML body) without reading the body. */
#define HARD_MAX_BODY (1024 * 1024)

#define G(f) offsetof(gw_cfg_t, f)
static const lh_cfg_def_t gw_table[] = {
	{"gateway.listen", LH_CFG_STR, "127.0.0.1", 0, 0, NULL, "LH_GATEWAY_LISTEN", "listen", false,
	 false, "address to listen on", G(listen)},
	{"gateway.port", LH_CFG_INT, "8088", 0, 65535, NULL, "LH_GATEWAY_PORT", "port", false, false,
	 "TCP port (0 picks a free one and logs it)", G(port)},
	{"gateway.no_auth", LH_CFG_BOOL, "false", 0, 0, NULL, "LH_GATEWAY_NO_AUTH", "no-auth", false,
	 false,
	 "serve without tokens: every caller is admin, sees every tenant and writes as --tenant "
	 "(local development only)",
	 G(no_auth)},
	{"gateway.max_body", LH_CFG_INT, "65536", 1024, HARD_MAX_BODY, NULL, "LH_GATEWAY_MAX_BODY",
	 "max-body", false, false, "largest request body in bytes (413 beyond)", G(max_body)},
	{"gateway.max_headers", LH_CFG_INT, "16384", 1024, 1048576, NULL, NULL, "max-headers", false,
	 false, "largest request header block in bytes", G(max_headers)},
	{"gateway.rate_per_s", LH_CFG_DOUBLE, "20", 0.001, 100000, NULL, "LH_GATEWAY_RATE_PER_S",
	 "rate-per-s", false, false, "requests per second a token may make, sustained",
	 G(rate_per_s)},
	{"gateway.rate_burst", LH_CFG_INT, "40", 1, 100000, NULL, "LH_GATEWAY_RATE_BURST",
	 "rate-burst", false, false, "requests a token may make at once (429 beyond)", G(rate_burst)},
	{"gateway.max_streams", LH_CFG_INT, "64", 1, 10000, NULL, "LH_GATEWAY_MAX_STREAMS",
	 "max-streams", false, false, "concurrent server-sent event streams (503 beyond)",
	 G(max_streams)},
	{"gateway.sse_poll_ms", LH_CFG_INT, "200", 10, 60000, NULL, NULL, "sse-poll-ms", false,
	 false, "how often an event stream polls PostgreSQL for new events", G(sse_poll_ms)},
	{"gateway.delivery_timeout_ms", LH_CFG_INT, "10000", 100, 600000, NULL, NULL,
	 "delivery-timeout-ms", false, false,
	 "how long a write waits for Kafka's acknowledgement before answering 503",
	 G(delivery_timeout_ms)},
	{"gateway.pg_timeout_ms", LH_CFG_INT, "5000", 100, 600000, NULL, "LH_GATEWAY_PG_TIMEOUT_MS",
	 "pg-timeout-ms", false, false,
	 "longest a PostgreSQL statement may run (statement_timeout of the gateway's session): "
	 "queries run on the event loop, so this bounds how long one can stall every other "
	 "request (503 beyond)",
	 G(pg_timeout_ms)},
	{"gateway.create_token", LH_CFG_STR, "", 0, 0, NULL, NULL, "create-token", false, false,
	 "create a token with this name (with --role and --tenant), print it once and exit",
	 G(create_token)},
	{"gateway.revoke_token", LH_CFG_STR, "", 0, 0, NULL, NULL, "revoke-token", false, false,
	 "revoke every live token with this name and exit", G(revoke_token)},
	{"gateway.role", LH_CFG_ENUM, "viewer", 0, 0, "viewer|responder|admin", NULL, "role", false,
	 false, "role of a token made by --create-token", G(role)},
	{"gateway.webhook_url", LH_CFG_STR, "", 0, 0, NULL, "LH_WEBHOOK_URL", "webhook-url", false,
	 false,
	 "webhook targets (comma list): approvals, questions, wait reminders and plan ends are "
	 "POSTed there; empty = no notifier",
	 G(webhook_url)},
	{"gateway.webhook_secret", LH_CFG_STR, "", 0, 0, NULL, "LH_WEBHOOK_SECRET", "webhook-secret",
	 false, true,
	 "key of the webhooks' X-Longhaul-Signature (HMAC-SHA256) and of approval links (required "
	 "with --webhook-url)",
	 G(webhook_secret)},
	{"gateway.webhook_format", LH_CFG_ENUM, "slack", 0, 0, "slack|generic", NULL,
	 "webhook-format", false, false,
	 "webhook body: Slack-compatible {text, blocks} or the generic {id, kind, event, links}",
	 G(webhook_format)},
	{"gateway.public_url", LH_CFG_STR, "http://127.0.0.1:8088", 0, 0, NULL, "LH_GATEWAY_PUBLIC_URL",
	 "public-url", false, false, "base URL of this gateway as people reach it (approval links)",
	 G(public_url)},
	{"gateway.webhook_attempts", LH_CFG_INT, "5", 1, 100, NULL, NULL, "webhook-attempts", false,
	 false, "tries per webhook before giving up (exponential backoff between them)",
	 G(webhook_attempts)},
	{"gateway.webhook_backoff_ms", LH_CFG_INT, "1000", 1, 3600000, NULL, NULL,
	 "webhook-backoff-ms", false, false, "wait before the second try; doubled for each next one",
	 G(webhook_backoff_ms)},
	{"gateway.link_ttl_s", LH_CFG_INT, "604800", 1, 31536000, NULL, NULL, "link-ttl-s", false,
	 false, "how long an approval link stays valid", G(link_ttl_s)},
	{"responder.rules", LH_CFG_STR, "", 0, 0, NULL, "LH_RESPONDER_RULES", "responder-rules",
	 false, false,
	 "rules that answer approvals and questions as responder automated_rule: a JSON array, or "
	 "@FILE holding one (each rule: name, kind, action approve, reject or answer, and optional "
	 "max_cost_usd, deny_tools, tiers, question_contains, answer, reason; see "
	 "gateway/README.md); the first match answers, no match leaves the request to people; "
	 "empty = no rule responder",
	 G(responder_rules)},
	{"responder.task_cost_usd", LH_CFG_STR, "", 0, 0, NULL, "LH_RESPONDER_TASK_COST_USD",
	 "responder-task-cost-usd", false, false,
	 "estimated cost of one task per tier (TIER=USD,... e.g. fast=0.002,standard=0.02), what a "
	 "rule's max_cost_usd is compared with; a tier not listed has no estimate, so no rule with "
	 "max_cost_usd approves its tasks",
	 G(responder_task_cost)},
	{"responder.triage_url", LH_CFG_STR, "", 0, 0, NULL, "LH_RESPONDER_TRIAGE_URL",
	 "responder-triage-url", false, false,
	 "the triage agent: an OpenAI-compatible base URL (or \"scripted\", the in-process "
	 "scripted model) asked about every question no rule answers; it answers as responder "
	 "ai_agent (id: the model) or says ESCALATE to leave the question to people; empty = none",
	 G(triage_url)},
	{"responder.triage_model", LH_CFG_STR, "triage", 0, 0, NULL, "LH_RESPONDER_TRIAGE_MODEL",
	 "responder-triage-model", false, false,
	 "model the triage agent asks; its answers' responder_id", G(triage_model)},
	{"responder.triage_key_env", LH_CFG_STR, "", 0, 0, NULL, NULL, "responder-triage-key-env",
	 false, false,
	 "name of the environment variable holding the triage agent's API key (empty: none sent)",
	 G(triage_key_env)},
	{"responder.triage_timeout_ms", LH_CFG_INT, "30000", 100, 600000, NULL, NULL,
	 "responder-triage-timeout-ms", false, false,
	 "how long one triage call may take (then the question is left to people)",
	 G(triage_timeout_ms)},
	{"responder.triage_max_inflight", LH_CFG_INT, "8", 1, 256, NULL, NULL,
	 "responder-triage-max-inflight", false, false,
	 "questions the triage agent considers at once; a question beyond is left to people",
	 G(triage_max_inflight)},
	LH_CFG_END,
};

static const lh_cfg_spec_t gw_spec = {
	.prog = "lh-gateway",
	.usage = "[options] | --create-token NAME --role R --tenant T | --revoke-token NAME",
	.summary = "HTTP edge of Longhaul: the admin REST API under /v1 (bearer tokens, see "
		   "docs/openapi.yaml), server-sent events of a plan, /healthz, /readyz and "
		   "/metrics. Reads PostgreSQL; writes are appended to the events topic.",
	.tables = {lh_config_common_table, gw_table, NULL},
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	gw_t *gw = arg;
	event_base_loopbreak(gw->base);
}

/* --create-token / --revoke-token: one database call, then exit. */
static int token_command(gw_t *gw)
{
	lh_error_t err = {0};
	char token[68];
	int n = 0;
	if (lh_pg_connect(gw->cfg.common.pg_url, &gw->pg, &err) ||
	    lh_pg_migrate(gw->pg, NULL, &err)) {
		fprintf(stderr, "lh-gateway: %s\n", err.msg);
		return 1;
	}
	if (*gw->cfg.revoke_token) {
		if (gw_token_revoke(gw->pg, gw->cfg.revoke_token, &n, &err)) {
			fprintf(stderr, "lh-gateway: could not revoke the token: %s\n", err.msg);
			return 1;
		}
		if (!n) {
			fprintf(stderr, "lh-gateway: no live token named \"%s\"\n",
				gw->cfg.revoke_token);
			return 1;
		}
		printf("revoked %d token(s) named %s\n", n, gw->cfg.revoke_token);
		return 0;
	}
	if (gw_token_create(gw->pg, gw->cfg.create_token, gw->cfg.role, gw->cfg.common.tenant,
			    token, &err)) {
		fprintf(stderr, "lh-gateway: could not create the token: %s\n", err.msg);
		return 1;
	}
	/* The only time the token exists outside the caller's hands: stdout, never the log. */
	printf("%s\n", token);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static gw_t gw; /* the daemon's one context (large: the rate-limit buckets) */
	lh_error_t err = {0};
	lh_kafka_opts_t ko = {0};
	struct evhttp_bound_socket *sock;
	int rc;
	lh_log_init("lh-gateway", LH_LOG_INFO, NULL);
	/* Bound every connection attempt (libpq reads this as connect_timeout): they run on the
	 * loop. */
	setenv("PGCONNECT_TIMEOUT", "5", 0);
	rc = lh_config_load(&gw_spec, &gw.cfg, argc, argv, NULL, NULL, &err);
	if (rc == LH_ERR_NOT_FOUND)
		return 0;
	if (rc || lh_config_apply_logging(&gw.cfg.common, &err)) {
		fprintf(stderr, "lh-gateway: %s\n", err.msg);
		return 2;
	}
	if (*gw.cfg.create_token || *gw.cfg.revoke_token) {
		rc = token_command(&gw);
		lh_pg_free(gw.pg);
		lh_config_finish(&gw_spec, &gw.cfg);
		return rc;
	}
	if (lh_topic(gw.cfg.common.topic_prefix, "events", gw.events_topic, &err)) {
		fprintf(stderr, "lh-gateway: %s\n", err.msg);
		return 2;
	}
	ko.brokers = gw.cfg.common.brokers;
	ko.client_id = "lh-gateway";
	ko.on_delivery = gw_on_delivery;
	ko.opaque = &gw;
	ko.message_timeout_ms = (int)gw.cfg.delivery_timeout_ms;
	if (lh_kafka_new(&ko, &gw.kafka, &err)) {
		fprintf(stderr, "lh-gateway: %s\n", err.msg);
		return 1;
	}
	/* The schema (api_tokens, api_writes) must exist before the first request; a database
	 * that is down now is retried per request. */
	if (lh_pg_connect(gw.cfg.common.pg_url, &gw.pg, &err) == LH_OK &&
	    lh_pg_migrate(gw.pg, NULL, &err))
		lh_log_warn("gateway.migrate", "could not migrate the database", "error", err.msg);
	if (gw.pg && gw_pg_session(&gw, &err)) {
		/* reconnected on the first request, with the timeout */
		lh_log_warn("gateway.pg", "could not set statement_timeout", "error", err.msg);
		lh_pg_free(gw.pg);
		gw.pg = NULL;
	}
	lh_buf_init(&gw.scratch);
	gw.base = event_base_new();
	/* rules are checked before anything listens: a bad rule stops the gateway here */
	if ((rc = gw_responder_start(&gw, &err))) {
		fprintf(stderr, "lh-gateway: %s\n", err.msg);
		return rc == LH_ERR_CONFIG ? 2 : 1;
	}
	gw.http = evhttp_new(gw.base);
	evhttp_set_max_body_size(gw.http, HARD_MAX_BODY);
	evhttp_set_max_headers_size(gw.http, gw.cfg.max_headers);
	evhttp_set_allowed_methods(gw.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						    EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
						    EVHTTP_REQ_HEAD);
	evhttp_set_gencb(gw.http, gw_http_on_request, &gw);
	sock = evhttp_bind_socket_with_handle(gw.http, gw.cfg.listen, (ev_uint16_t)gw.cfg.port);
	if (!sock) {
		fprintf(stderr, "lh-gateway: could not listen on %s:%lld\n", gw.cfg.listen,
			(long long)gw.cfg.port);
		return 1;
	}
	{
		struct sockaddr_storage ss;
		ev_socklen_t len = sizeof(ss);
		char port[16] = "?";
		if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) == 0)
			snprintf(port, sizeof(port), "%u",
				 (unsigned)ntohs(((struct sockaddr_in *)&ss)->sin_port));
		lh_log_info("gateway.started", "serving /v1, /healthz, /readyz, /metrics", "listen",
			    gw.cfg.listen, "port", port, "auth",
			    gw.cfg.no_auth ? "off (--no-auth)" : "bearer tokens");
	}
	if (gw_notify_start(&gw, &err)) {
		fprintf(stderr, "lh-gateway: could not start the notifier: %s\n", err.msg);
		return 1;
	}
	gw.ev_sigint = evsignal_new(gw.base, SIGINT, on_signal, &gw);
	gw.ev_sigterm = evsignal_new(gw.base, SIGTERM, on_signal, &gw);
	event_add(gw.ev_sigint, NULL);
	event_add(gw.ev_sigterm, NULL);
	signal(SIGPIPE, SIG_IGN);
	event_base_dispatch(gw.base);
	gw_sse_close_all(&gw);
	gw_notify_stop(&gw);
	gw_responder_stop(&gw);
	event_free(gw.ev_sigint);
	event_free(gw.ev_sigterm);
	evhttp_free(gw.http);
	event_base_free(gw.base);
	lh_kafka_flush(gw.kafka, 2000, NULL);
	lh_kafka_free(gw.kafka);
	lh_pg_free(gw.pg);
	lh_buf_finish(&gw.scratch);
	lh_config_finish(&gw_spec, &gw.cfg);
	return 0;
}
