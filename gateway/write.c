/* write.c — idempotent appends to lh.events.
 *
 * Every write carries a client key (Idempotency-Key header or "idempotency_key" in the body). The
 * key is claimed in api_writes (tenant, key) together with a hash of the call (route, target,
 * canonical body) and, for goals, the plan id minted for it. The event id is derived from
 * (plan, type, tenant, key), so the same call always produces the same event; and once Kafka
 * acknowledged it, api_writes says so and a retry produces nothing at all. The same key used for
 * a different call is refused (422) rather than silently answered with the first call's result.
 *
 * The write waits for Kafka's acknowledgement before replying 202 (bounded by
 * gateway.delivery_timeout_ms), polling the producer from the loop's thread: this blocks the loop
 * for the broker's round trip (a few milliseconds on a healthy cluster). */
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "ids.h"
#include "log.h"

void gw_on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
		    int32_t partition, int64_t offset);
void gw_on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
		    int32_t partition, int64_t offset)
{
	gw_t *gw = opaque;
	gw_delivery_t *d = &gw->delivery;
	/* A report for a write that already gave up (timed out) names an older sequence number. */
	if ((uintptr_t)msg_opaque != d->seq)
		return;
	d->done = true;
	d->rc = rc;
	if (rc)
		snprintf(d->msg, sizeof(d->msg), "%s", err ? err->msg : lh_err_str(rc));
}

bool gw_idempotency_key(struct evhttp_request *req, json_t *body, char out[257])
{
	const char *h =
		evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
	json_t *bk = body ? json_object_get(body, "idempotency_key") : NULL;
	const char *k = h;
	if (bk && !json_is_string(bk)) {
		gw_reply_error(req, 400, "invalid_body", "idempotency_key: expected a string");
		return false;
	}
	if (bk && h && strcmp(h, json_string_value(bk)) != 0) {
		gw_reply_error(req, 400, "invalid_body",
			       "the Idempotency-Key header and the body's idempotency_key differ");
		return false;
	}
	if (!k && bk)
		k = json_string_value(bk);
	if (!k || !*k) {
		gw_reply_error(req, 400, "missing_idempotency_key",
			       "every write needs an Idempotency-Key header (or an idempotency_key "
			       "field): a client-chosen key, the same on retries");
		return false;
	}
	if (strlen(k) > 256) {
		gw_reply_error(req, 400, "invalid_body",
			       "the idempotency key is %zu bytes long; the limit is 256", strlen(k));
		return false;
	}
	snprintf(out, 257, "%s", k);
	if (bk)
		json_object_del(body, "idempotency_key");
	return true;
}

lh_err_t gw_emit_acked(gw_t *gw, const lh_event_t *ev, lh_error_t *err)
{
	gw_delivery_t *d = &gw->delivery;
	int64_t deadline;
	lh_err_t rc;
	d->seq++;
	d->done = false;
	d->rc = LH_OK;
	d->msg[0] = 0;
	lh_buf_reset(&gw->scratch);
	if ((rc = lh_bus_emit(gw->kafka, gw->events_topic, ev, false, &gw->scratch,
			      (void *)(uintptr_t)d->seq, err)))
		return rc;
	deadline = lh_mono_us() + gw->cfg.delivery_timeout_ms * 1000;
	while (!d->done && lh_mono_us() < deadline)
		lh_kafka_poll(gw->kafka, 20);
	if (!d->done)
		return lh_error_set(err, LH_ERR_TIMEOUT,
				    "kafka did not acknowledge %s within %lld ms",
				    lh_event_type_name(ev->type),
				    (long long)gw->cfg.delivery_timeout_ms);
	if (d->rc)
		return lh_error_set(err, LH_ERR_UNAVAILABLE, "could not append %s: %s",
				    lh_event_type_name(ev->type), d->msg);
	return LH_OK;
}

/* gw_emit_acked, its failure replied to the client: 400 for an event the codec refuses, 503
 * when Kafka is unreachable or did not acknowledge in time. */
static bool produce(gw_t *gw, struct evhttp_request *req, const lh_event_t *ev)
{
	lh_error_t err = {0};
	switch (gw_emit_acked(gw, ev, &err)) {
	case LH_OK:
		return true;
	case LH_ERR_TIMEOUT:
		/* The message stays queued and may still land: the same key retried later produces
		 * the same event id, which consumers keep once. */
		gw_reply_error(req, 503, "kafka_unavailable",
			       "kafka did not acknowledge the event within %lld ms; retry with the "
			       "same Idempotency-Key",
			       (long long)gw->cfg.delivery_timeout_ms);
		return false;
	case LH_ERR_UNAVAILABLE:
		gw_reply_error(req, 503, "kafka_unavailable", "could not append the event: %s",
			       err.msg);
		return false;
	default:
		gw_reply_error(req, 400, "invalid_body", "could not append the event: %s", err.msg);
		return false;
	}
}

static void request_hash(const char *route, const char *request, char hash[65])
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_appends(&b, route);
	lh_buf_append(&b, "\n", 1);
	lh_buf_appends(&b, request);
	lh_sha256_hex(b.data, b.len, hash);
	lh_buf_finish(&b);
}

int gw_write_done(gw_t *gw, struct evhttp_request *req, const gw_caller_t *caller,
		  const char *key, const char *route, const char *request)
{
	char hash[65];
	const char *params[2] = {caller->tenant, key};
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	int rc = 0;
	request_hash(route, request, hash);
	if (lh_pg_query(gw->pg, "api_write_get", 2, params, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		return -1;
	}
	if (lh_pg_nrows(res) == 1 && strcmp(lh_pg_get(res, 0, 0), hash) != 0) {
		gw_reply_error(req, 422, "idempotency_key_reused",
			       "the Idempotency-Key \"%.64s\" was used for a different request",
			       key);
		rc = -1;
	} else if (lh_pg_nrows(res) == 1 && !strcmp(lh_pg_get(res, 0, 1), "t"))
		rc = 1;
	lh_pg_res_free(res);
	return rc;
}

bool gw_append(gw_t *gw, struct evhttp_request *req, const gw_caller_t *caller, const char *key,
	       const char *route, const char *request, lh_event_t *ev)
{
	char hash[65], plan[LH_UUID_STR_LEN + 1];
	const char *params[5];
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	bool delivered;

	request_hash(route, request, hash);
	lh_uuid_fmt(&ev->plan_id, plan);
	params[0] = caller->tenant;
	params[1] = key;
	params[2] = route;
	params[3] = hash;
	params[4] = plan;
	if (!gw_pg(gw, req))
		return false;
	if (lh_pg_query(gw->pg, "api_write_claim", 5, params, NULL, NULL, &res, &err) ||
	    lh_pg_nrows(res) != 1) {
		lh_pg_res_free(res);
		gw_reply_error(req, 503, "postgresql_unavailable",
			       "could not record the idempotency key: %s", err.msg);
		return false;
	}
	if (strcmp(lh_pg_get(res, 0, 0), hash) != 0) {
		lh_pg_res_free(res);
		gw_reply_error(req, 422, "idempotency_key_reused",
			       "the Idempotency-Key \"%.64s\" was used for a different request",
			       key);
		return false;
	}
	if (lh_uuid_parse(lh_pg_get(res, 0, 1), &ev->plan_id)) {
		lh_pg_res_free(res);
		gw_reply_error(req, 500, "internal", "api_writes holds a bad plan id");
		return false;
	}
	delivered = strcmp(lh_pg_get(res, 0, 2), "t") == 0;
	lh_pg_res_free(res);
	if (delivered)
		return true;
	ev->v = LH_ENVELOPE_VERSION;
	ev->ts_us = lh_now_us();
	ev->tenant = caller->tenant;
	ev->actor.kind = "gateway";
	ev->actor.id = caller->name;
	ev->id = lh_event_id_derivef(&ev->plan_id, lh_event_type_name(ev->type), 0,
				     "api:%s:%s", caller->tenant, key);
	if (!produce(gw, req, ev))
		return false;
	params[2] = NULL;
	if (lh_pg_query(gw->pg, "api_write_delivered", 2, params, NULL, NULL, NULL, &err))
		/* Not fatal: a retry would produce the same event id again, which is dropped. */
		lh_log_warn("gateway.write", "could not mark a write delivered", "error", err.msg);
	lh_log_info("gateway.appended", "event appended", "type", lh_event_type_name(ev->type),
		    "plan_id", plan, "token", caller->name);
	return true;
}
