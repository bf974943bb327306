/* lh-gateway — for now: liveness, readiness and metrics over HTTP (libevent's evhttp).
 *
 *   GET /healthz  200 "ok" while the process serves
 *   GET /readyz   200 when PostgreSQL and Kafka both answer, else 503 with the reason as JSON
 *   GET /metrics  Prometheus text: plans by status, tasks and attempts, tokens and cost
 * The admin REST API, SSE and the dashboard arrive with the gateway issue. Every error body is
 * written by reply_error(). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"

typedef struct gw_cfg {
	lh_common_cfg_t common;
	char *listen;
	int64_t port;
} gw_cfg_t;

#define G(f) offsetof(gw_cfg_t, f)
static const lh_cfg_def_t gw_table[] = {
	{"gateway.listen", LH_CFG_STR, "127.0.0.1", 0, 0, NULL, "LH_GATEWAY_LISTEN", "listen", false,
	 false, "address to listen on", G(listen)},
	{"gateway.port", LH_CFG_INT, "8088", 0, 65535, NULL, "LH_GATEWAY_PORT", "port", false, false,
	 "TCP port (0 picks a free one and logs it)", G(port)},
	LH_CFG_END,
};

static const lh_cfg_spec_t gw_spec = {
	.prog = "lh-gateway",
	.usage = "[options]",
	.summary = "HTTP edge of Longhaul. Today: /healthz, /readyz and /metrics.",
	.tables = {lh_config_common_table, gw_table, NULL},
};

static struct gateway {
	gw_cfg_t cfg;
	struct event_base *base;
	struct evhttp *http;
	lh_pg_t *pg;
	lh_kafka_t *kafka;
	struct event *ev_sigint, *ev_sigterm;
} gw;

/* The one place that writes an error body. */
static void reply_error(struct evhttp_request *req, int status, const char *code, const char *msg)
{
	struct evbuffer *b = evbuffer_new();
	json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	char *s = json_dumps(j, JSON_COMPACT);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add_printf(b, "%s\n", s ? s : "{}");
	evhttp_send_reply(req, status, code, b);
	evbuffer_free(b);
	free(s);
	json_decref(j);
}

static void reply_text(struct evhttp_request *req, const char *type, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evbuffer_add(b, text, strlen(text));
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static bool pg_ready(lh_error_t *err)
{
	int v;
	if (!gw.pg && lh_pg_connect(gw.cfg.common.pg_url, &gw.pg, err))
		return false;
	return lh_pg_schema_version(gw.pg, &v, err) == LH_OK;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	lh_error_t err = {0};
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		reply_error(req, 405, "method_not_allowed", "only GET is served here");
		return;
	}
	if (!path || strcmp(path, "/healthz") == 0) {
		reply_text(req, "text/plain", "ok\n");
	} else if (strcmp(path, "/readyz") == 0) {
		if (!pg_ready(&err))
			reply_error(req, 503, "postgresql_unavailable", err.msg);
		else if (lh_kafka_wait_ready(gw.kafka, 2000, &err))
			reply_error(req, 503, "kafka_unavailable", err.msg);
		else
			reply_text(req, "text/plain", "ready\n");
	} else if (strcmp(path, "/metrics") == 0) {
		lh_pg_res_t *res = NULL;
		struct evbuffer *b;
		if (!pg_ready(&err) || lh_pg_query(gw.pg, "metrics_plans", 0, NULL, NULL, NULL, &res,
						   &err)) {
			reply_error(req, 503, "postgresql_unavailable", err.msg);
			return;
		}
		b = evbuffer_new();
		evbuffer_add_printf(b, "# HELP lh_plans Plans by status.\n# TYPE lh_plans gauge\n");
		for (int i = 0; i < lh_pg_nrows(res); i++)
			evbuffer_add_printf(b, "lh_plans{status=\"%s\"} %s\n", lh_pg_get(res, i, 0),
					    lh_pg_get(res, i, 1));
		lh_pg_res_free(res);
		if (lh_pg_query(gw.pg, "metrics_usage", 0, NULL, NULL, NULL, &res, &err) == LH_OK &&
		    lh_pg_nrows(res) == 1) {
			evbuffer_add_printf(b,
					    "# HELP lh_tokens_total Tokens used by all plans.\n"
					    "# TYPE lh_tokens_total counter\n"
					    "lh_tokens_total{direction=\"input\"} %s\n"
					    "lh_tokens_total{direction=\"output\"} %s\n"
					    "# HELP lh_cost_usd_total Model cost of all plans.\n"
					    "# TYPE lh_cost_usd_total counter\nlh_cost_usd_total %s\n"
					    "# HELP lh_attempts_total Task attempts by status.\n"
					    "# TYPE lh_attempts_total counter\n",
					    lh_pg_get(res, 0, 0), lh_pg_get(res, 0, 1), lh_pg_get(res, 0, 2));
		}
		lh_pg_res_free(res);
		res = NULL;
		if (lh_pg_query(gw.pg, "metrics_attempts", 0, NULL, NULL, NULL, &res, &err) == LH_OK)
			for (int i = 0; i < lh_pg_nrows(res); i++)
				evbuffer_add_printf(b, "lh_attempts_total{status=\"%s\"} %s\n",
						    lh_pg_get(res, i, 0), lh_pg_get(res, i, 1));
		lh_pg_res_free(res);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  "text/plain; version=0.0.4");
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
	} else
		reply_error(req, 404, "not_found", "no such route");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(gw.base);
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	lh_kafka_opts_t ko = {0};
	struct evhttp_bound_socket *sock;
	int rc;
	lh_log_init("lh-gateway", LH_LOG_INFO, NULL);
	rc = lh_config_load(&gw_spec, &gw.cfg, argc, argv, NULL, NULL, &err);
	if (rc == LH_ERR_NOT_FOUND)
		return 0;
	if (rc || lh_config_apply_logging(&gw.cfg.common, &err)) {
		fprintf(stderr, "lh-gateway: %s\n", err.msg);
		return 2;
	}
	ko.brokers = gw.cfg.common.brokers;
	ko.client_id = "lh-gateway";
	if (lh_kafka_new(&ko, &gw.kafka, &err)) {
		fprintf(stderr, "lh-gateway: %s\n", err.msg);
		return 1;
	}
	gw.base = event_base_new();
	gw.http = evhttp_new(gw.base);
	evhttp_set_max_body_size(gw.http, 65536);
	evhttp_set_max_headers_size(gw.http, 16384);
	evhttp_set_gencb(gw.http, on_request, NULL);
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
		lh_log_info("gateway.started", "serving /healthz /readyz /metrics", "listen",
			    gw.cfg.listen, "port", port);
	}
	gw.ev_sigint = evsignal_new(gw.base, SIGINT, on_signal, NULL);
	gw.ev_sigterm = evsignal_new(gw.base, SIGTERM, on_signal, NULL);
	event_add(gw.ev_sigint, NULL);
	event_add(gw.ev_sigterm, NULL);
	event_base_dispatch(gw.base);
	event_free(gw.ev_sigint);
	event_free(gw.ev_sigterm);
	evhttp_free(gw.http);
	event_base_free(gw.base);
	lh_kafka_free(gw.kafka);
	lh_pg_free(gw.pg);
	lh_config_finish(&gw_spec, &gw.cfg);
	return 0;
}
