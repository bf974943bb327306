#include "reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"

static void event_init(lh_event_t *ev, const lh_cplan_t *p, lh_event_type_t type, int64_t task_no,
		       int64_t attempt, void *body, lh_emitter_t *em)
{
	memset(ev, 0, sizeof(*ev));
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = type;
	ev->plan_id = p->plan_id;
	ev->task_no = task_no;
	ev->attempt = attempt;
	ev->ts_us = lh_now_us();
	ev->tenant = p->tenant;
	ev->actor.kind = "coordinator";
	ev->actor.id = em->actor_id;
	ev->body = body;
}

static void log_decision(lh_cplan_t *p, lh_emitter_t *em, const char *kind, const char *cause,
			 const char *reasoning, json_t *payload)
{
	lh_decision_logged_t d = {.kind = kind, .reasoning = reasoning, .payload = payload};
	lh_event_t ev;
	event_init(&ev, p, LH_EV_DECISION_LOGGED, LH_NO_TASK, 0, &d, em);
	ev.id = lh_event_id_derivef(&p->plan_id, "decision.logged", 0, "%s:%s", kind, cause);
	em->emit(em->opaque, p, &ev);
}

static void dispatch(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, lh_emitter_t *em)
{
	char topic[LH_TOPIC_MAX];
	int64_t ready_ts = 0, attempt = t->attempt + 1;
	lh_task_dispatched_t d = {0};
	lh_event_t ev;

	for (int i = 0; i < t->ndeps; i++) {
		const lh_ctask_t *dep = &p->tasks[t->deps[i]];
		if (dep->done_ts_us > ready_ts)
			ready_ts = dep->done_ts_us;
	}
	if (!ready_ts)
		ready_ts = t->kind == LH_KIND_PLAN ? p->submitted_ts_us : p->created_ts_us;
	if (lh_topic_tasks(em->topic_prefix, t->tier, topic, NULL))
		snprintf(topic, sizeof(topic), "%stasks.invalid", em->topic_prefix);
	d.tier = t->tier;
	d.topic = topic;
	d.kind = lh_task_kind_name(t->kind);
	d.ready_ts_us = ready_ts;
	event_init(&ev, p, LH_EV_TASK_DISPATCHED, t->task_no, attempt, &d, em);
	ev.id = lh_event_id_derivef(&p->plan_id, "task.dispatched", 0, "t%lld:a%lld",
				    (long long)t->task_no, (long long)attempt);
	if (attempt > 1) {
		char cause[64], why[700];
		snprintf(cause, sizeof(cause), "t%lld:a%lld", (long long)t->task_no, (long long)attempt);
		snprintf(why, sizeof(why), "task %lld attempt %lld failed (%s); retrying as attempt %lld",
			 (long long)t->task_no, (long long)t->attempt,
			 t->last_error ? t->last_error : "no reason given", (long long)attempt);
		log_decision(p, em, "retry", cause, why, NULL);
	}
	t->await_ack = true; /* before emit: the ack may only arrive later, never during emit */
	em->emit(em->opaque, p, &ev);
}

static void fail_plan(lh_cplan_t *p, lh_emitter_t *em, int64_t task_no, const char *reason)
{
	lh_plan_failed_t f = {.reason = reason, .task_no = task_no > 0 ? task_no : 0,
			      .usage = p->usage, .has_usage = true};
	lh_event_t ev;
	f.duration_ms = (p->last_ts_us - p->submitted_ts_us) / 1000;
	if (f.duration_ms < 0)
		f.duration_ms = 0;
	log_decision(p, em, "plan_failed", "terminal", reason, NULL);
	event_init(&ev, p, LH_EV_PLAN_FAILED, LH_NO_TASK, 0, &f, em);
	ev.id = lh_event_id_derivef(&p->plan_id, "plan.failed", 0, "terminal");
	em->emit(em->opaque, p, &ev);
}

static void create_plan(lh_state_t *st, lh_cplan_t *p, lh_emitter_t *em)
{
	lh_arena_t *arena = lh_arena_new(0);
	lh_error_t err = {0};
	lh_task_spec_t *specs;
	int n;
	lh_plan_created_t c = {0};
	lh_event_t ev;
	json_t *payload;
	char why[256];

	if (lh_plan_parse(&st->opts, p->plan_doc, arena, &specs, &n, &err)) {
		/* output_ok accepted it when it was applied: only a changed configuration gets here */
		fail_plan(p, em, 0, err.msg);
		goto out_free_arena;
	}
	c.version = 1;
	c.tasks.n = (size_t)n;
	c.tasks.v = specs;
	c.planner_attempt = p->tasks[0].attempt;
	if (json_is_object(p->plan_doc) && json_is_string(json_object_get(p->plan_doc, "thought")))
		c.thought = json_string_value(json_object_get(p->plan_doc, "thought"));
	snprintf(why, sizeof(why), "planner attempt %lld proposed %d tasks (join included)",
		 (long long)p->tasks[0].attempt, n);
	payload = json_pack("{s:i, s:i}", "version", 1, "tasks", n);
	log_decision(p, em, "plan_created", "v1", why, payload);
	json_decref(payload);
	event_init(&ev, p, LH_EV_PLAN_CREATED, LH_NO_TASK, 0, &c, em);
	ev.id = lh_event_id_derivef(&p->plan_id, "plan.created", 0, "v1");
	em->emit(em->opaque, p, &ev);
out_free_arena:
	lh_arena_free(arena);
}

static void complete_plan(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *join, lh_emitter_t *em)
{
	const json_t *out = join->output;
	const char *decision = json_string_value(json_object_get(out, "decision"));
	lh_plan_completed_t c = {0};
	lh_event_t ev;
	int done = 0;

	if (!decision || strcmp(decision, "finish") != 0) {
		char reason[512];
		const char *why = json_string_value(json_object_get(out, "reason"));
		snprintf(reason, sizeof(reason),
			 "the joiner decided \"%s\"%s%s; plan repair (replan, escalate) is not "
			 "implemented yet",
			 decision ? decision : "?", why ? ": " : "", why ? why : "");
		fail_plan(p, em, join->task_no, reason);
		return;
	}
	for (int i = 1; i < p->ntasks; i++)
		if (p->tasks[i].task_no == i && p->tasks[i].status == LH_TASK_SUCCEEDED)
			done++;
	c.output = json_object_get(out, "answer");
	c.usage = p->usage;
	c.has_usage = true;
	c.tasks = done;
	c.duration_ms = (join->done_ts_us - p->submitted_ts_us) / 1000;
	if (c.duration_ms < 0)
		c.duration_ms = 0;
	log_decision(p, em, "plan_completed", "terminal", "the joiner decided the goal is met", NULL);
	event_init(&ev, p, LH_EV_PLAN_COMPLETED, LH_NO_TASK, 0, &c, em);
	ev.id = lh_event_id_derivef(&p->plan_id, "plan.completed", 0, "terminal");
	em->emit(em->opaque, p, &ev);
}

/* One task: dispatch, retry, or give up. Returns false when the plan was failed. */
static bool reconcile_task(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, lh_emitter_t *em)
{
	switch (t->status) {
	case LH_TASK_PENDING:
		for (int i = 0; i < t->ndeps; i++) {
			const lh_ctask_t *dep = &p->tasks[t->deps[i]];
			if (dep->status != LH_TASK_SUCCEEDED)
				return true;
		}
		dispatch(st, p, t, em);
		return true;
	case LH_TASK_FAILED:
		if (t->failures < st->opts.max_attempts) {
			dispatch(st, p, t, em);
			return true;
		} else {
			char reason[700];
			snprintf(reason, sizeof(reason), "task %lld failed after %d attempts: %s",
				 (long long)t->task_no, t->failures,
				 t->last_error ? t->last_error : "no reason given");
			fail_plan(p, em, t->task_no, reason);
			return false;
		}
	case LH_TASK_DISPATCHED:
		if (!t->order_sent && !t->await_ack)
			em->send_order(em->opaque, p, t); /* recovered from the log: send again */
		return true;
	default:
		return true;
	}
}

void lh_reconcile(lh_state_t *st, lh_cplan_t *p, lh_emitter_t *em)
{
	if (p->status != LH_PLAN_PLANNING && p->status != LH_PLAN_RUNNING)
		return;
	if (p->status == LH_PLAN_PLANNING) {
		lh_ctask_t *t0 = &p->tasks[0];
		if (t0->status == LH_TASK_SUCCEEDED && p->plan_doc)
			create_plan(st, p, em);
		else
			reconcile_task(st, p, t0, em);
		if (p->status != LH_PLAN_RUNNING)
			return;
	}
	for (int i = 1; i < p->ntasks; i++) {
		lh_ctask_t *t = &p->tasks[i];
		if (t->task_no != i)
			continue;
		if (t->kind == LH_KIND_JOIN && t->status == LH_TASK_SUCCEEDED) {
			complete_plan(st, p, t, em);
			return;
		}
		if (!reconcile_task(st, p, t, em))
			return;
	}
}

void lh_reconcile_order(lh_state_t *st, const lh_cplan_t *p, const lh_ctask_t *t,
			lh_arena_t *arena, lh_event_t *ret_ev)
{
	lh_task_order_t *o = lh_arena_alloc(arena, sizeof(*o));
	json_t *inputs = NULL;
	if (t->nrefs > 0) {
		inputs = json_object();
		for (int i = 0; i < t->nrefs; i++) {
			const lh_ctask_t *dep = &p->tasks[t->refs[i]];
			char k[24];
			snprintf(k, sizeof(k), "%lld", (long long)t->refs[i]);
			json_object_set(inputs, k, dep->output ? dep->output : json_null());
		}
		lh_arena_on_free(arena, (void (*)(void *))json_decref, inputs);
	}
	o->kind = lh_task_kind_name(t->kind);
	o->tier = t->tier;
	o->goal = p->goal;
	o->instructions = t->instructions;
	o->tool = t->tool;
	o->args = t->args;
	o->inputs = inputs;
	o->output_schema = t->output_schema;
	o->feedback = t->attempt > 1 ? t->last_error : NULL;
	o->dispatched_ts_us = lh_now_us();
	memset(ret_ev, 0, sizeof(*ret_ev));
	ret_ev->v = LH_ENVELOPE_VERSION;
	ret_ev->type = LH_EV_TASK_ORDER;
	ret_ev->plan_id = p->plan_id;
	ret_ev->task_no = t->task_no;
	ret_ev->attempt = t->attempt;
	ret_ev->ts_us = o->dispatched_ts_us;
	ret_ev->tenant = p->tenant;
	ret_ev->actor.kind = "coordinator";
	ret_ev->body = o;
	ret_ev->id = lh_event_id_derivef(&p->plan_id, "task.order", 0, "t%lld:a%lld",
					 (long long)t->task_no, (long long)t->attempt);
}
