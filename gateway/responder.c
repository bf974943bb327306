/* responder.c — the rule responder: configured rules (responder.rules, see rules.h) answer
 * approvals and questions through the same path as people (DESIGN §7, the unified responder).
 *
 * A consumer of the events topic on the gateway's loop, group "<prefix>gateway.responder",
 * started when at least one rule is configured. For each approval.requested / input.requested
 * the first matching rule answers: decision.logged (actor automated_rule, the rule's name; kind
 * "responder_rule", why it matched) and then approval.decided / input.provided (responder_type
 * automated_rule, responder_id the rule's name), each awaited until Kafka acknowledged it. Their
 * ids derive from (plan, request id, rule), so a restart that reads the request again appends
 * the same events, which every consumer keeps once. A partition's offset is committed only past
 * requests whose answer was acknowledged. A request no rule matches is left to people.
 *
 * Before answering, PostgreSQL is asked whether the request is still open: a request already
 * answered (by a person who was faster, or long ago: a new group reads the log from the start)
 * or a plan that ended is skipped. When PostgreSQL cannot say (down, or the materializer has not
 * folded the request yet) the rule answers: the coordinator keeps the first answer of a request
 * and ignores later ones, so an extra answer changes nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "ids.h"
#include "log.h"
#include "rules.h"

#define RESPONDER_MAX_PARTS 256

struct gw_responder {
	gw_t *gw;
	gw_rules_t *rules;
	lh_kafka_t *consumer;
	int64_t last_seen[RESPONDER_MAX_PARTS]; /* -1: nothing seen */
	int64_t committed[RESPONDER_MAX_PARTS];
	int64_t blocked[RESPONDER_MAX_PARTS]; /* oldest offset whose answer was not acked; -1 */
	uint64_t answered;
};

static void commit_partition(gw_responder_t *r, int32_t p)
{
	lh_error_t err = {0};
	int64_t to = r->blocked[p] >= 0 ? r->blocked[p] : r->last_seen[p] + 1;
	if (r->last_seen[p] < 0 || to <= r->committed[p])
		return;
	if (lh_kafka_commit(r->consumer, r->gw->events_topic, p, to, false, &err) == LH_OK)
		r->committed[p] = to;
}

/* Is the request still open? false when PostgreSQL says it was answered or its plan ended. */
static bool still_open(gw_t *gw, const char *plan, const char *rid)
{
	const char *params[2] = {plan, rid};
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	bool open = true;
	if (gw_pg_connect(gw, &err) ||
	    lh_pg_query(gw->pg, "responder_request_state", 2, params, NULL, NULL, &res, &err)) {
		lh_log_warn("gateway.responder_pg", "could not read the request's state; answering",
			    "plan_id", plan, "request_id", rid, "error", err.msg);
		return true;
	}
	if (lh_pg_nrows(res) == 1) {
		const char *rs = lh_pg_get(res, 0, 0), *ps = lh_pg_get(res, 0, 1);
		if ((*rs && strcmp(rs, "pending")) || !strcmp(ps, "completed") ||
		    !strcmp(ps, "failed") || !strcmp(ps, "cancelled"))
			open = false;
	}
	lh_pg_res_free(res);
	return open;
}

/* The body of the answer (JSON, new) for rule on request body jb. */
static json_t *answer_json(const gw_rule_t *rule, const gw_rule_req_t *rq, const json_t *jb,
			   const char *rid)
{
	json_t *a = json_pack("{s:s, s:s, s:s}", "request_id", rid, "responder_type",
			      "automated_rule", "responder_id", rule->name);
	char why[600];
	if (rule->action == GW_RULE_ANSWER) {
		json_object_set_new(a, "answer", json_string(rule->answer));
		return a;
	}
	snprintf(why, sizeof(why), "%s", rule->reason ? rule->reason : "");
	if (!rule->reason)
		snprintf(why, sizeof(why), "rule %s", rule->name);
	json_object_set_new(a, "decision",
			    json_string(rule->action == GW_RULE_APPROVE ? "approve" : "reject"));
	json_object_set_new(a, "reason", json_string(why));
	if (rule->action == GW_RULE_APPROVE && rq->kind == GW_REQ_BUDGET) {
		/* extend to the coordinator's suggestion (an approval without new limits would be
		 * asked again at once) */
		const json_t *prop = json_object_get(jb, "proposed");
		const char *dim = json_string_value(json_object_get(prop, "dimension"));
		const json_t *lim = json_object_get(prop, "suggested_limit");
		if (dim && json_is_number(lim) && json_number_value(lim) > 0)
			json_object_set_new(a, "budget",
					    json_pack("{s:o}", dim,
						      !strcmp(dim, "usd")
							      ? json_real(json_number_value(lim))
							      : json_integer((json_int_t)ceil(
									json_number_value(lim)))));
	}
	return a;
}

static json_t *decision_json(const gw_rule_t *rule, const gw_rule_req_t *rq, const char *rid)
{
	char why[800], cost[64] = "unknown";
	const char *what = rule->action == GW_RULE_APPROVE  ? "approved"
			   : rule->action == GW_RULE_REJECT ? "rejected"
							    : "answered";
	json_t *payload = json_pack("{s:s, s:s, s:s, s:s}", "request_id", rid, "request_kind",
				    gw_req_kind_name(rq->kind), "rule", rule->name, "action",
				    rule->action == GW_RULE_APPROVE  ? "approve"
				    : rule->action == GW_RULE_REJECT ? "reject"
								     : "answer");
	if (rq->has_cost) {
		snprintf(cost, sizeof(cost), "$%.6g", rq->cost_usd);
		json_object_set_new(payload, "estimated_cost_usd", json_real(rq->cost_usd));
	}
	if (rq->tier)
		json_object_set_new(payload, "tier", json_string(rq->tier));
	if (rq->tool)
		json_object_set_new(payload, "tool", json_string(rq->tool));
	if (rule->has_max_cost)
		json_object_set_new(payload, "max_cost_usd", json_real(rule->max_cost_usd));
	snprintf(why, sizeof(why),
		 "rule %s %s request %.128s (%s; tier %s, tool %s, estimated cost %s%s%s)",
		 rule->name, what, rid, gw_req_kind_name(rq->kind), rq->tier ? rq->tier : "unknown",
		 rq->tool ? rq->tool : "none", cost, rule->reason ? ": " : "",
		 rule->reason ? rule->reason : "");
	return json_pack("{s:s, s:s, s:o}", "kind", "responder_rule", "reasoning", why, "payload",
			 payload);
}

/* Append one event of src's plan, from the rule; LH_OK once acknowledged. */
static lh_err_t append(gw_t *gw, const lh_event_t *src, const gw_rule_t *rule,
		       lh_event_type_t type, const lh_desc_t *desc, const json_t *body,
		       const char *rid, lh_arena_t *arena, lh_error_t *err)
{
	lh_event_t ev = {0};
	void *b;
	if (lh_struct_from_json(desc, body, arena, &b, err))
		return err->code;
	ev.v = LH_ENVELOPE_VERSION;
	ev.type = type;
	ev.plan_id = src->plan_id;
	ev.task_no = LH_NO_TASK;
	ev.ts_us = lh_now_us();
	ev.tenant = src->tenant;
	ev.actor.kind = "automated_rule";
	ev.actor.id = rule->name;
	ev.causation_id = src->id;
	ev.body = b;
	ev.id = lh_event_id_derivef(&src->plan_id, lh_event_type_name(type), 0, "responder:%s:%s",
				    rule->name, rid);
	return gw_emit_acked(gw, &ev, err);
}

/* Answer the request of ev (body jb) when a rule matches. false when an answer was due and
 * could not be appended (the offset must not move past it). */
static bool respond(gw_responder_t *r, const lh_event_t *ev, const json_t *jb)
{
	gw_rule_req_t rq;
	const gw_rule_t *rule;
	const char *rid = json_string_value(json_object_get(jb, "request_id"));
	bool question = ev->type == LH_EV_INPUT_REQUESTED;
	char plan[LH_UUID_STR_LEN + 1];
	json_t *dj, *aj;
	lh_arena_t *arena;
	lh_error_t err = {0};
	bool ok = true;

	if (!rid || !gw_rules_request(r->rules, question, jb, &rq))
		return true;
	lh_uuid_fmt(&ev->plan_id, plan);
	if (!(rule = gw_rules_match(r->rules, &rq))) {
		lh_log_info("gateway.responder_no_rule", "no rule matches; left to people",
			    "plan_id", plan, "request_id", rid, "kind", gw_req_kind_name(rq.kind));
		return true;
	}
	if (!still_open(r->gw, plan, rid)) {
		lh_log_info("gateway.responder_skipped", "request answered already or plan ended",
			    "plan_id", plan, "request_id", rid, "rule", rule->name);
		return true;
	}
	dj = decision_json(rule, &rq, rid);
	aj = answer_json(rule, &rq, jb, rid);
	arena = lh_arena_new(0);
	/* the decision first: an answer is never in the log without its reason */
	if (append(r->gw, ev, rule, LH_EV_DECISION_LOGGED, &lh_decision_logged_desc, dj, rid,
		   arena, &err) ||
	    append(r->gw, ev, rule, question ? LH_EV_INPUT_PROVIDED : LH_EV_APPROVAL_DECIDED,
		   question ? &lh_input_provided_desc : &lh_approval_decided_desc, aj, rid, arena,
		   &err)) {
		lh_log_error("gateway.responder_not_answered",
			     "could not append a rule's answer; the request is read again after a "
			     "restart",
			     "plan_id", plan, "request_id", rid, "rule", rule->name, "error",
			     err.msg);
		ok = false;
	} else {
		r->answered++;
		lh_log_info("gateway.responder_answered", "a rule answered a request", "plan_id",
			    plan, "request_id", rid, "kind", gw_req_kind_name(rq.kind), "rule",
			    rule->name, "action",
			    rule->action == GW_RULE_APPROVE  ? "approve"
			    : rule->action == GW_RULE_REJECT ? "reject"
							     : "answer");
	}
	lh_arena_free(arena);
	json_decref(dj);
	json_decref(aj);
	return ok;
}

static void on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	gw_responder_t *r = opaque;
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	json_t *jev = NULL;
	int32_t p = msg->partition;
	if (p < 0 || p >= RESPONDER_MAX_PARTS)
		return;
	if (msg->offset > r->last_seen[p])
		r->last_seen[p] = msg->offset;
	if (lh_event_decode(msg->payload, msg->len, &ev, &err))
		goto out_commit; /* the coordinator dead-letters what nobody can decode */
	if ((ev->type == LH_EV_APPROVAL_REQUESTED || ev->type == LH_EV_INPUT_REQUESTED) &&
	    (jev = lh_event_to_json(ev)) && !respond(r, ev, json_object_get(jev, "body")) &&
	    (r->blocked[p] < 0 || msg->offset < r->blocked[p]))
		r->blocked[p] = msg->offset;
out_commit:
	json_decref(jev);
	lh_event_free(ev);
	commit_partition(r, p);
}

lh_err_t gw_responder_start(gw_t *gw, lh_error_t *err)
{
	gw_responder_t *r;
	gw_rules_t *rules = NULL;
	lh_kafka_opts_t ko = {0};
	const char *topics[2] = {gw->events_topic, NULL};
	char group[LH_TOPIC_MAX + 32], n[16];
	if (gw_rules_parse(gw->cfg.responder_rules, gw->cfg.responder_task_cost, &rules, err))
		return err->code;
	if (!rules->n) {
		gw_rules_free(rules);
		return LH_OK;
	}
	r = calloc(1, sizeof(*r));
	r->gw = gw;
	r->rules = rules;
	for (int i = 0; i < RESPONDER_MAX_PARTS; i++)
		r->last_seen[i] = r->committed[i] = r->blocked[i] = -1;
	gw->responder = r;
	snprintf(group, sizeof(group), "%sgateway.responder", gw->cfg.common.topic_prefix);
	ko.brokers = gw->cfg.common.brokers;
	ko.client_id = "lh-gateway-responder";
	ko.group_id = group;
	ko.topics = topics;
	ko.on_message = on_message;
	ko.opaque = r;
	if (lh_kafka_new(&ko, &r->consumer, err) || lh_kafka_attach(r->consumer, gw->base, err))
		return err->code;
	snprintf(n, sizeof(n), "%d", rules->n);
	lh_log_info("gateway.responder_started", "rule responder on", "group", group, "rules", n);
	return LH_OK;
}

void gw_responder_stop(gw_t *gw)
{
	gw_responder_t *r = gw->responder;
	if (!r)
		return;
	lh_kafka_free(r->consumer);
	gw_rules_free(r->rules);
	free(r);
	gw->responder = NULL;
}
