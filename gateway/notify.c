/* notify.c — webhooks about what needs a person or just ended (approval.requested,
 * input.requested, timer.fired reminder / wait_escalation, plan.completed, plan.failed).
 *
 * A second Kafka consumer on the events topic, group "<prefix>gateway.notify", on the gateway's
 * loop, enabled by --webhook-url. For each event and each target: first notification.queued is
 * appended (id derived from the source event id and the target, so a restart repeats the same
 * id) and its acknowledgement awaited; then the webhook is POSTed (common/http_client) with
 * X-Longhaul-Signature: sha256=HMAC(secret, body) and X-Longhaul-Notification-Id. Failures are
 * retried with exponential backoff up to --webhook-attempts, then given up with a log line.
 * A partition's offset is committed up to its oldest notification still in flight
 * (at-least-once: receivers dedupe by the notification id). */
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "http_client.h"
#include "ids.h"
#include "log.h"

#define NOTIFY_MAX_PARTS 256

typedef struct gw_job {
	struct gw_job *next;
	gw_notify_t *n;
	int32_t partition;
	int64_t offset;
	int target;
	int attempt;
	char *body;
	char notif_id[LH_ID_HEX_LEN + 1];
	struct event *timer;
	bool done;
} gw_job_t;

struct gw_notify {
	gw_t *gw;
	lh_kafka_t *consumer;
	lh_http_t *http;
	char **urls;
	char (*url_sha)[65];
	int nurls;
	gw_job_t *jobs; /* in arrival order */
	int64_t last_seen[NOTIFY_MAX_PARTS]; /* -1: nothing seen */
	int64_t committed[NOTIFY_MAX_PARTS];
	uint64_t delivered, failed;
};

void gw_hmac_hex(const char *secret, const void *data, size_t len, char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), data, len, mac, &n);
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[64] = 0;
}

static void hex_encode(const char *s, char *out, size_t outsz)
{
	size_t i;
	for (i = 0; s[i] && 2 * i + 2 < outsz; i++)
		snprintf(out + 2 * i, 3, "%02x", (unsigned char)s[i]);
	out[2 * i] = 0;
}

char *gw_link_token(const gw_t *gw, const char *plan, const char *rid, const char *tenant,
		    const char *decision, int64_t exp_s, const char *budget)
{
	char hrid[520], hten[140], hbud[260], sig[65], *payload = NULL, *tok = NULL;
	hex_encode(rid, hrid, sizeof(hrid));
	hex_encode(tenant, hten, sizeof(hten));
	hex_encode(budget ? budget : "", hbud, sizeof(hbud));
	if (asprintf(&payload, "v1.%s.%s.%s.%s.%lld.%s", plan, hrid, hten, decision,
		     (long long)exp_s, hbud) < 0)
		return NULL;
	gw_hmac_hex(gw->cfg.webhook_secret, payload, strlen(payload), sig);
	if (asprintf(&tok, "%s.%s", payload, sig) < 0)
		tok = NULL;
	free(payload);
	return tok;
}

static void commit_partition(gw_notify_t *n, int32_t p)
{
	lh_error_t err = {0};
	int64_t to = n->last_seen[p] + 1;
	for (gw_job_t *j = n->jobs; j; j = j->next)
		if (j->partition == p && !j->done && j->offset < to)
			to = j->offset;
	if (n->last_seen[p] < 0 || to <= n->committed[p])
		return;
	if (lh_kafka_commit(n->consumer, n->gw->events_topic, p, to, false, &err) == LH_OK)
		n->committed[p] = to;
}

static void job_finish(gw_job_t *job, bool commit)
{
	gw_notify_t *n = job->n;
	gw_job_t **pp;
	job->done = true;
	for (pp = &n->jobs; *pp && *pp != job; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = job->next;
	if (commit)
		commit_partition(n, job->partition);
	if (job->timer)
		event_free(job->timer);
	free(job->body);
	free(job);
}

static void job_send(gw_job_t *job);

static void on_retry_timer(evutil_socket_t fd, short what, void *arg) { job_send(arg); }

static void on_response(lh_http_resp_t *resp, void *opaque)
{
	gw_job_t *job = opaque;
	gw_notify_t *n = job->n;
	char status[16], attempt[16];
	snprintf(status, sizeof(status), "%ld", resp->status);
	snprintf(attempt, sizeof(attempt), "%d", job->attempt);
	if (resp->cancelled) {
		job_finish(job, false); /* shutdown: not committed past it, so it is sent again later */
		return;
	}
	if (resp->error.code == LH_OK && resp->status >= 200 && resp->status < 300) {
		n->delivered++;
		lh_log_info("gateway.webhook_delivered", "webhook delivered", "notification_id",
			    job->notif_id, "status", status, "attempt", attempt);
		job_finish(job, true);
		return;
	}
	if (job->attempt >= n->gw->cfg.webhook_attempts) {
		n->failed++;
		lh_log_warn("gateway.webhook_given_up", "could not deliver a webhook; giving up",
			    "notification_id", job->notif_id, "status", status, "attempts", attempt,
			    "error", resp->error.code ? resp->error.msg : "");
		job_finish(job, true);
		return;
	}
	{
		int64_t ms = n->gw->cfg.webhook_backoff_ms << (job->attempt - 1 < 16 ? job->attempt - 1 : 16);
		struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
		lh_log_info("gateway.webhook_retry", "webhook failed; retrying", "notification_id",
			    job->notif_id, "status", status, "attempt", attempt);
		if (!job->timer)
			job->timer = evtimer_new(n->gw->base, on_retry_timer, job);
		evtimer_add(job->timer, &tv);
	}
}

static void job_send(gw_job_t *job)
{
	gw_notify_t *n = job->n;
	char sig[65], hsig[96], hid[96];
	const char *headers[4];
	lh_http_req_t r = {0};
	lh_error_t err = {0};
	gw_hmac_hex(n->gw->cfg.webhook_secret, job->body, strlen(job->body), sig);
	snprintf(hsig, sizeof(hsig), "X-Longhaul-Signature: sha256=%s", sig);
	snprintf(hid, sizeof(hid), "X-Longhaul-Notification-Id: %s", job->notif_id);
	headers[0] = "Content-Type: application/json";
	headers[1] = hsig;
	headers[2] = hid;
	r.method = "POST";
	r.url = n->urls[job->target];
	r.headers = headers;
	r.n_headers = 3;
	r.body = job->body;
	r.body_len = strlen(job->body);
	r.total_timeout_ms = 10000;
	job->attempt++;
	if (lh_http_request(n->http, &r, on_response, job, NULL, &err)) {
		lh_log_warn("gateway.webhook_given_up", "could not start a webhook request",
			    "notification_id", job->notif_id, "error", err.msg);
		n->failed++;
		job_finish(job, true);
	}
}

/* The text of a notification, or NULL for events nobody is told about. New string. */
static char *notify_text(const lh_event_t *ev, json_t *jb, const char *plan, const char **kind)
{
	const char *q = json_string_value(json_object_get(jb, "question"));
	const char *rid = json_string_value(json_object_get(jb, "request_id"));
	char *s = NULL;
	int rc = -1;
	switch (ev->type) {
	case LH_EV_APPROVAL_REQUESTED:
		*kind = "approval.requested";
		rc = asprintf(&s, "Plan %s needs an approval (%s): %s", plan,
			      json_string_value(json_object_get(jb, "kind")), q ? q : "");
		break;
	case LH_EV_INPUT_REQUESTED:
		*kind = "input.requested";
		rc = asprintf(&s, "Plan %s asks a question: %s", plan, q ? q : "");
		break;
	case LH_EV_TIMER_FIRED: {
		const char *t = json_string_value(json_object_get(jb, "timer"));
		if (!t || (strcmp(t, "reminder") && strcmp(t, "wait_escalation")))
			return NULL;
		*kind = strcmp(t, "reminder") ? "timer.wait_escalation" : "timer.reminder";
		rc = asprintf(&s, "Plan %s is still waiting for a person (%s, request %s)", plan,
			      t, rid ? rid : "?");
		break;
	}
	case LH_EV_PLAN_COMPLETED:
		*kind = "plan.completed";
		rc = asprintf(&s, "Plan %s completed", plan);
		break;
	case LH_EV_PLAN_FAILED:
		*kind = "plan.failed";
		rc = asprintf(&s, "Plan %s failed: %s", plan,
			      json_string_value(json_object_get(jb, "reason")) ? json_string_value(json_object_get(jb, "reason")) : "");
		break;
	default:
		return NULL;
	}
	return rc < 0 ? NULL : s;
}

static char *build_payload(gw_notify_t *n, const lh_event_t *ev, json_t *jev, const char *kind,
			   const char *text, const char *plan, const char *nid)
{
	gw_t *gw = n->gw;
	json_t *jb = json_object_get(jev, "body");
	const char *rid = json_string_value(json_object_get(jb, "request_id"));
	char *approve = NULL, *reject = NULL, *out;
	json_t *p;
	if (ev->type == LH_EV_APPROVAL_REQUESTED && rid) {
		int64_t exp = lh_now_us() / 1000000 + gw->cfg.link_ttl_s;
		/* A budget extension approved by a link takes the coordinator's suggested limit. */
		json_t *prop = json_object_get(jb, "proposed");
		const char *dim = json_string_value(json_object_get(prop, "dimension"));
		json_t *lim = json_object_get(prop, "suggested_limit");
		char bud[128] = "", *ta, *tr;
		if (dim && json_is_number(lim) && strlen(dim) < 32)
			snprintf(bud, sizeof(bud), "{\"%s\":%.17g}", dim, json_number_value(lim));
		ta = gw_link_token(gw, plan, rid, ev->tenant ? ev->tenant : "", "approve", exp,
				   *bud ? bud : NULL);
		tr = gw_link_token(gw, plan, rid, ev->tenant ? ev->tenant : "", "reject", exp, NULL);
		if (ta && asprintf(&approve, "%s/v1/links/%s", gw->cfg.public_url, ta) < 0)
			approve = NULL;
		if (tr && asprintf(&reject, "%s/v1/links/%s", gw->cfg.public_url, tr) < 0)
			reject = NULL;
		free(ta);
		free(tr);
	}
	if (strcmp(gw->cfg.webhook_format, "slack") == 0) {
		json_t *blocks = json_array();
		json_array_append_new(blocks,
				      json_pack("{s:s, s:{s:s, s:s}}", "type", "section", "text",
						"type", "mrkdwn", "text", text));
		if (approve && reject)
			json_array_append_new(
				blocks,
				json_pack("{s:s, s:[{s:s, s:{s:s, s:s}, s:s, s:s}, {s:s, s:{s:s, "
					  "s:s}, s:s, s:s}]}",
					  "type", "actions", "elements", "type", "button", "text",
					  "type", "plain_text", "text", "Approve", "style", "primary",
					  "url", approve, "type", "button", "text", "type",
					  "plain_text", "text", "Reject", "style", "danger", "url",
					  reject));
		p = json_pack("{s:s, s:o}", "text", text, "blocks", blocks);
	} else {
		p = json_pack("{s:s, s:s, s:s, s:s, s:O}", "id", nid, "kind", kind, "plan_id", plan,
			      "text", text, "event", jev);
		if (approve && reject)
			json_object_set_new(p, "links",
					    json_pack("{s:s, s:s}", "approve", approve, "reject",
						      reject));
	}
	out = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(p);
	free(approve);
	free(reject);
	return out;
}

/* Append notification.queued and wait for Kafka's acknowledgement. */
static lh_err_t queue_event(gw_t *gw, const lh_event_t *src, lh_notification_queued_t *body,
			    const lh_id_t *id, lh_error_t *err)
{
	lh_event_t ev = {0};
	ev.v = LH_ENVELOPE_VERSION;
	ev.id = *id;
	ev.type = LH_EV_NOTIFICATION_QUEUED;
	ev.plan_id = src->plan_id;
	ev.task_no = LH_NO_TASK;
	ev.ts_us = lh_now_us();
	ev.tenant = src->tenant;
	ev.actor.kind = "gateway";
	ev.actor.id = "notifier";
	ev.causation_id = src->id;
	ev.body = body;
	return gw_emit_acked(gw, &ev, err);
}

static void on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	gw_notify_t *n = opaque;
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	json_t *jev = NULL;
	char plan[LH_UUID_STR_LEN + 1], src_hex[LH_ID_HEX_LEN + 1], *text = NULL;
	const char *kind = NULL;
	if (msg->partition < 0 || msg->partition >= NOTIFY_MAX_PARTS)
		return;
	if (msg->offset > n->last_seen[msg->partition])
		n->last_seen[msg->partition] = msg->offset;
	if (lh_event_decode(msg->payload, msg->len, &ev, &err))
		goto out_commit;
	jev = lh_event_to_json(ev);
	lh_uuid_fmt(&ev->plan_id, plan);
	if (!jev || !(text = notify_text(ev, json_object_get(jev, "body"), plan, &kind)))
		goto out_commit;
	lh_id_hex(&ev->id, src_hex);
	for (int t = 0; t < n->nurls; t++) {
		lh_notification_queued_t qb = {0};
		char psha[65];
		lh_id_t nid = lh_event_id_derivef(&ev->plan_id, "notification.queued", (uint32_t)t,
						  "notify:%s:%s", src_hex, n->url_sha[t]);
		gw_job_t *job = calloc(1, sizeof(*job)), **pp;
		job->n = n;
		job->partition = msg->partition;
		job->offset = msg->offset;
		job->target = t;
		lh_id_hex(&nid, job->notif_id);
		job->body = build_payload(n, ev, jev, kind, text, plan, job->notif_id);
		lh_sha256_hex(job->body, strlen(job->body), psha);
		qb.kind = (char *)kind;
		qb.target = n->url_sha[t];
		qb.source_id = src_hex;
		qb.request_id = (char *)json_string_value(
			json_object_get(json_object_get(jev, "body"), "request_id"));
		qb.payload_sha256 = psha;
		for (pp = &n->jobs; *pp; pp = &(*pp)->next)
			;
		*pp = job;
		if (queue_event(n->gw, ev, &qb, &nid, &err)) {
			/* Not sent without its record; the offset stays behind it (redelivered
			 * after a restart). */
			lh_log_warn("gateway.webhook_not_queued", "could not record a notification",
				    "notification_id", job->notif_id, "error", err.msg);
			continue;
		}
		job_send(job);
	}
out_commit:
	free(text);
	json_decref(jev);
	lh_event_free(ev);
	commit_partition(n, msg->partition);
}

lh_err_t gw_notify_start(gw_t *gw, lh_error_t *err)
{
	gw_notify_t *n;
	lh_kafka_opts_t ko = {0};
	const char *topics[2] = {gw->events_topic, NULL};
	char group[LH_TOPIC_MAX + 32], *list, *tok, *save = NULL;
	if (!*gw->cfg.webhook_url)
		return LH_OK;
	if (!*gw->cfg.webhook_secret)
		return lh_error_set(err, LH_ERR_INVALID,
				    "--webhook-url needs --webhook-secret (or LH_WEBHOOK_SECRET)");
	n = calloc(1, sizeof(*n));
	n->gw = gw;
	for (int i = 0; i < NOTIFY_MAX_PARTS; i++)
		n->last_seen[i] = n->committed[i] = -1;
	list = strdup(gw->cfg.webhook_url);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		n->urls = realloc(n->urls, sizeof(*n->urls) * (size_t)(n->nurls + 1));
		n->url_sha = realloc(n->url_sha, sizeof(*n->url_sha) * (size_t)(n->nurls + 1));
		n->urls[n->nurls] = strdup(tok);
		lh_sha256_hex(tok, strlen(tok), n->url_sha[n->nurls]);
		n->nurls++;
	}
	free(list);
	gw->notify = n;
	snprintf(group, sizeof(group), "%sgateway.notify", gw->cfg.common.topic_prefix);
	ko.brokers = gw->cfg.common.brokers;
	ko.client_id = "lh-gateway-notify";
	ko.group_id = group;
	ko.topics = topics;
	ko.on_message = on_message;
	ko.opaque = n;
	if (!(n->http = lh_http_new(gw->base, NULL, err)) ||
	    lh_kafka_new(&ko, &n->consumer, err) || lh_kafka_attach(n->consumer, gw->base, err))
		return err->code;
	lh_log_info("gateway.notify_started", "webhooks on", "group", group, "format",
		    gw->cfg.webhook_format);
	return LH_OK;
}

void gw_notify_stop(gw_t *gw)
{
	gw_notify_t *n = gw->notify;
	if (!n)
		return;
	n->http = lh_http_free(n->http); /* cancels: jobs finish without committing past them */
	while (n->jobs)
		job_finish(n->jobs, false);
	lh_kafka_free(n->consumer);
	for (int i = 0; i < n->nurls; i++)
		free(n->urls[i]);
	free(n->urls);
	free(n->url_sha);
	free(n);
	gw->notify = NULL;
}
