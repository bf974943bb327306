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
#include "http_client.h"
#include "ids.h"
#include "llm.h"
#include "log.h"
#include "rules.h"

#define RESPONDER_MAX_PARTS 256
#define TRIAGE_MAX_ANSWER 16384 /* a longer answer is left to people */

/* A question the triage agent is thinking about. */
typedef struct triage_job {
	struct triage_job *next;
	gw_responder_t *r;
	int32_t partition;
	int64_t offset;
	lh_id_t plan_id, src_id;
	char *tenant;
	char *rid;
} triage_job_t;

struct gw_responder {
	gw_t *gw;
	gw_rules_t *rules;
	lh_kafka_t *consumer;
	lh_http_t *http;	   /* the triage agent's, when it is remote */
	lh_llm_provider_t *llm;	   /* NULL: no triage agent */
	triage_job_t *jobs;	   /* in flight */
	int njobs;
	int64_t last_seen[RESPONDER_MAX_PARTS]; /* -1: nothing seen */
	int64_t committed[RESPONDER_MAX_PARTS];
	int64_t blocked[RESPONDER_MAX_PARTS]; /* oldest offset whose answer was not acked; -1 */
	uint64_t answered;
};

static void commit_partition(gw_responder_t *r, int32_t p)
{
	lh_error_t err = {0};
	int64_t to = r->blocked[p] >= 0 ? r->blocked[p] : r->last_seen[p] + 1;
	for (triage_job_t *j = r->jobs; j; j = j->next)
		if (j->partition == p && j->offset < to)
			to = j->offset;
	if (r->last_seen[p] < 0 || to <= r->committed[p])
		return;
	if (lh_kafka_commit(r->consumer, r->gw->events_topic, p, to, false, &err) == LH_OK)
		r->committed[p] = to;
}

/* Is the request still open? false when PostgreSQL says it was answered or its plan ended.
 * ret_context (may be NULL): what the triage agent is told besides the question — the plan's
 * goal and the task's instructions as far as PostgreSQL knows them (new string, or NULL). */
static bool still_open(gw_t *gw, const char *plan, const char *rid, int64_t task_no,
		       char **ret_context)
{
	char tno[24];
	const char *params[3] = {plan, rid, tno};
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	bool open = true;
	snprintf(tno, sizeof(tno), "%lld", (long long)(task_no > 0 ? task_no : 0));
	if (gw_pg_connect(gw, &err) ||
	    lh_pg_query(gw->pg, "responder_request_state", 3, params, NULL, NULL, &res, &err)) {
		lh_log_warn("gateway.responder_pg", "could not read the request's state; answering",
			    "plan_id", plan, "request_id", rid, "error", err.msg);
		return true;
	}
	if (lh_pg_nrows(res) == 1) {
		const char *rs = lh_pg_get(res, 0, 0), *ps = lh_pg_get(res, 0, 1);
		const char *goal = lh_pg_get(res, 0, 2), *instr = lh_pg_get(res, 0, 3);
		if ((*rs && strcmp(rs, "pending")) || !strcmp(ps, "completed") ||
		    !strcmp(ps, "failed") || !strcmp(ps, "cancelled"))
			open = false;
		if (open && ret_context && (*goal || *instr) &&
		    asprintf(ret_context, "The plan's goal:\n%s\n\nThe task's instructions:\n%s\n\n",
			     *goal ? goal : "(unknown)", *instr ? instr : "(unknown)") < 0)
			*ret_context = NULL;
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

/* Append one event of src's plan from a responder (actor kind and id); its id derives from
 * cause. LH_OK once acknowledged. */
static lh_err_t append(gw_t *gw, const lh_event_t *src, const char *actor_kind,
		       const char *actor_id, lh_event_type_t type, const lh_desc_t *desc,
		       const json_t *body, const char *cause, lh_arena_t *arena, lh_error_t *err)
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
	ev.actor.kind = actor_kind;
	ev.actor.id = actor_id;
	ev.causation_id = src->id;
	ev.body = b;
	ev.id = lh_event_id_derivef(&src->plan_id, lh_event_type_name(type), 0, "%s", cause);
	return gw_emit_acked(gw, &ev, err);
}

static const char triage_system[] =
	"You triage questions that an AI agent, working on one task of a larger plan, asks a "
	"person. Answer the question yourself only when you are confident the answer is right "
	"and a person would give the same one; then reply with the answer alone, briefly. When "
	"the question needs a person's preference, authority, private knowledge or judgement, or "
	"you are not sure, reply with exactly the word ESCALATE and nothing else.";

static void triage_job_free(triage_job_t *job)
{
	free(job->tenant);
	free(job->rid);
	free(job);
}

/* The triage agent's answer (or failure) for job: append it, or leave the question to people. */
static void on_triage_done(lh_llm_resp_t *resp, const lh_llm_error_t *lerr, void *opaque)
{
	triage_job_t *job = opaque, **pp;
	gw_responder_t *r = job->r;
	gw_t *gw = r->gw;
	const char *model = gw->cfg.triage_model;
	char plan[LH_UUID_STR_LEN + 1], why[400];
	const char *text = resp && resp->content ? resp->content : "";
	size_t n;
	lh_event_t src = {0};
	lh_error_t err = {0};
	lh_arena_t *arena;
	json_t *dj, *aj;
	const char *cause;

	for (pp = &r->jobs; *pp && *pp != job; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = job->next;
	r->njobs--;
	lh_uuid_fmt(&job->plan_id, plan);
	if (lerr) {
		if (lerr->klass == LH_LLM_ERR_CANCELLED) {
			/* shutting down: asked again after a restart */
			if (r->blocked[job->partition] < 0 || job->offset < r->blocked[job->partition])
				r->blocked[job->partition] = job->offset;
		} else
			lh_log_warn("gateway.triage_failed",
				    "the triage agent could not answer; left to people", "plan_id",
				    plan, "request_id", job->rid, "error", lerr->error.msg);
		goto out_commit;
	}
	while (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r')
		text++;
	n = strlen(text);
	while (n && (text[n - 1] == ' ' || text[n - 1] == '\n' || text[n - 1] == '\t' ||
		     text[n - 1] == '\r'))
		n--;
	if (!n || !strncmp(text, "ESCALATE", 8) || n > TRIAGE_MAX_ANSWER) {
		lh_log_info("gateway.triage_escalated",
			    n > TRIAGE_MAX_ANSWER ? "the triage agent's answer is too long; left to "
						    "people"
						  : "the triage agent is not sure; left to people",
			    "plan_id", plan, "request_id", job->rid, "model", model);
		goto out_commit;
	}
	src.plan_id = job->plan_id;
	src.id = job->src_id;
	src.tenant = job->tenant;
	snprintf(why, sizeof(why), "triage agent %s answered question %.128s", model, job->rid);
	dj = json_pack("{s:s, s:s, s:{s:s, s:s, s:I, s:I, s:f}}", "kind", "triage_answer",
		       "reasoning", why, "payload", "request_id", job->rid, "model", model,
		       "input_tokens", (json_int_t)resp->usage.input_tokens, "output_tokens",
		       (json_int_t)resp->usage.output_tokens, "latency_ms", resp->latency_ms);
	aj = json_pack("{s:s, s:s%, s:s, s:s}", "request_id", job->rid, "answer", text, n,
		       "responder_type", "ai_agent", "responder_id", model);
	arena = lh_arena_new(0);
	cause = lh_arena_printf(arena, "triage:%s:%s", model, job->rid);
	if (append(gw, &src, "ai_agent", model, LH_EV_DECISION_LOGGED, &lh_decision_logged_desc,
		   dj, cause, arena, &err) ||
	    append(gw, &src, "ai_agent", model, LH_EV_INPUT_PROVIDED, &lh_input_provided_desc, aj,
		   cause, arena, &err)) {
		lh_log_error("gateway.responder_not_answered",
			     "could not append the triage agent's answer; the question is read "
			     "again after a restart",
			     "plan_id", plan, "request_id", job->rid, "error", err.msg);
		if (r->blocked[job->partition] < 0 || job->offset < r->blocked[job->partition])
			r->blocked[job->partition] = job->offset;
	} else {
		r->answered++;
		lh_log_info("gateway.triage_answered", "the triage agent answered a question",
			    "plan_id", plan, "request_id", job->rid, "model", model);
	}
	lh_arena_free(arena);
	json_decref(dj);
	json_decref(aj);
out_commit:
	commit_partition(r, job->partition);
	triage_job_free(job);
}

/* Ask the triage agent about a question no rule answers (in flight until on_triage_done);
 * context (may be NULL) comes before the question in the prompt. */
static void triage_start(gw_responder_t *r, const lh_event_t *ev, const lh_kafka_msg_t *msg,
			 const char *rid, const char *question, const char *context)
{
	gw_t *gw = r->gw;
	char plan[LH_UUID_STR_LEN + 1], *user = NULL;
	lh_llm_message_t msgs[2];
	lh_llm_req_t req = {0};
	lh_error_t err = {0};
	triage_job_t *job;
	lh_uuid_fmt(&ev->plan_id, plan);
	if (r->njobs >= gw->cfg.triage_max_inflight) {
		lh_log_warn("gateway.triage_busy",
			    "the triage agent has too many questions in flight; left to people",
			    "plan_id", plan, "request_id", rid);
		return;
	}
	if (asprintf(&user, "%sThe agent asks:\n%s", context ? context : "",
		     question ? question : "") < 0)
		return;
	msgs[0] = (lh_llm_message_t){.role = LH_LLM_ROLE_SYSTEM, .content = triage_system};
	msgs[1] = (lh_llm_message_t){.role = LH_LLM_ROLE_USER, .content = user};
	req.model = gw->cfg.triage_model;
	req.messages = msgs;
	req.n_messages = 2;
	req.max_output_tokens = 1024;
	req.timeout_ms = (long)gw->cfg.triage_timeout_ms;
	req.task_kind = "triage";
	job = calloc(1, sizeof(*job));
	job->r = r;
	job->partition = msg->partition;
	job->offset = msg->offset;
	job->plan_id = ev->plan_id;
	job->src_id = ev->id;
	job->tenant = strdup(ev->tenant ? ev->tenant : "default");
	job->rid = strdup(rid);
	job->next = r->jobs;
	r->jobs = job;
	r->njobs++;
	if (lh_llm_call(r->llm, &req, on_triage_done, job, &err)) {
		lh_log_warn("gateway.triage_failed", "could not ask the triage agent; left to people",
			    "plan_id", plan, "request_id", rid, "error", err.msg);
		r->jobs = job->next;
		r->njobs--;
		triage_job_free(job);
	}
	free(user);
}

/* Answer the request of ev (body jb) when a rule matches. false when an answer was due and
 * could not be appended (the offset must not move past it). */
static bool respond(gw_responder_t *r, const lh_event_t *ev, const json_t *jb,
		    const lh_kafka_msg_t *msg)
{
	gw_rule_req_t rq;
	const gw_rule_t *rule;
	const char *rid = json_string_value(json_object_get(jb, "request_id"));
	bool question = ev->type == LH_EV_INPUT_REQUESTED;
	char plan[LH_UUID_STR_LEN + 1];
	json_t *dj, *aj;
	lh_arena_t *arena;
	lh_error_t err = {0};
	const char *cause;
	bool ok = true;

	if (!rid || !gw_rules_request(r->rules, question, jb, &rq))
		return true;
	lh_uuid_fmt(&ev->plan_id, plan);
	if (!(rule = gw_rules_match(r->rules, &rq)) && question && r->llm) {
		char *context = NULL;
		if (still_open(r->gw, plan, rid, ev->task_no, &context))
			triage_start(r, ev, msg, rid, rq.question, context);
		free(context);
		return true;
	}
	if (!rule) {
		lh_log_info("gateway.responder_no_rule", "no rule matches; left to people",
			    "plan_id", plan, "request_id", rid, "kind", gw_req_kind_name(rq.kind));
		return true;
	}
	if (!still_open(r->gw, plan, rid, ev->task_no, NULL)) {
		lh_log_info("gateway.responder_skipped", "request answered already or plan ended",
			    "plan_id", plan, "request_id", rid, "rule", rule->name);
		return true;
	}
	dj = decision_json(rule, &rq, rid);
	aj = answer_json(rule, &rq, jb, rid);
	arena = lh_arena_new(0);
	cause = lh_arena_printf(arena, "responder:%s:%s", rule->name, rid);
	/* the decision first: an answer is never in the log without its reason */
	if (append(r->gw, ev, "automated_rule", rule->name, LH_EV_DECISION_LOGGED,
		   &lh_decision_logged_desc, dj, cause, arena, &err) ||
	    append(r->gw, ev, "automated_rule", rule->name,
		   question ? LH_EV_INPUT_PROVIDED : LH_EV_APPROVAL_DECIDED,
		   question ? &lh_input_provided_desc : &lh_approval_decided_desc, aj, cause, arena,
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
	    (jev = lh_event_to_json(ev)) && !respond(r, ev, json_object_get(jev, "body"), msg) &&
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
	if (!rules->n && !*gw->cfg.triage_url) {
		gw_rules_free(rules);
		return LH_OK;
	}
	r = calloc(1, sizeof(*r));
	r->gw = gw;
	r->rules = rules;
	gw->responder = r;
	if (!strcmp(gw->cfg.triage_url, "scripted"))
		r->llm = lh_llm_scripted_new(gw->base, err);
	else if (*gw->cfg.triage_url) {
		const char *key = *gw->cfg.triage_key_env ? getenv(gw->cfg.triage_key_env) : NULL;
		lh_llm_openai_opts_t o = {.timeout_ms = (long)gw->cfg.triage_timeout_ms};
		if (*gw->cfg.triage_key_env && !key)
			return lh_error_set(err, LH_ERR_CONFIG,
					    "responder.triage_key_env: the environment variable %s "
					    "is not set",
					    gw->cfg.triage_key_env);
		if ((r->http = lh_http_new(gw->base, NULL, err)))
			r->llm = lh_llm_openai_new(r->http, gw->cfg.triage_url, key, &o, err);
	}
	if (*gw->cfg.triage_url && !r->llm)
		return err->code;
	for (int i = 0; i < RESPONDER_MAX_PARTS; i++)
		r->last_seen[i] = r->committed[i] = r->blocked[i] = -1;
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
	lh_log_info("gateway.responder_started", "responder on", "group", group, "rules", n,
		    "triage_model", r->llm ? gw->cfg.triage_model : "(none)");
	return LH_OK;
}

void gw_responder_stop(gw_t *gw)
{
	gw_responder_t *r = gw->responder;
	if (!r)
		return;
	/* questions in flight end now (cancelled: not committed past, asked again later) */
	r->llm = lh_llm_provider_free(r->llm);
	r->http = lh_http_free(r->http);
	lh_kafka_free(r->consumer);
	gw_rules_free(r->rules);
	free(r);
	gw->responder = NULL;
}
