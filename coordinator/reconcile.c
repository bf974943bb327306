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

/* Emit an event whose id derives from (type, cause). */
static void emit(lh_cplan_t *p, lh_emitter_t *em, lh_event_type_t type, int64_t task_no,
		 int64_t attempt, void *body, const char *cause)
{
	lh_event_t ev;
	event_init(&ev, p, type, task_no, attempt, body, em);
	ev.id = lh_event_id_derive(&p->plan_id, cause, strlen(cause), lh_event_type_name(type), 0);
	em->emit(em->opaque, p, &ev);
}

static void log_decision(lh_cplan_t *p, lh_emitter_t *em, const char *kind, const char *cause,
			 const char *reasoning, json_t *payload)
{
	lh_decision_logged_t d = {.kind = kind, .reasoning = reasoning, .payload = payload};
	char c[200];
	snprintf(c, sizeof(c), "%s:%s", kind, cause);
	emit(p, em, LH_EV_DECISION_LOGGED, LH_NO_TASK, 0, &d, c);
}

static bool paused_or_done(const lh_cplan_t *p)
{
	return p->status != LH_PLAN_PLANNING && p->status != LH_PLAN_RUNNING;
}

static void dispatch(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, lh_emitter_t *em)
{
	char topic[LH_TOPIC_MAX], cause[64];
	int64_t ready_ts = 0, attempt = t->attempt + 1;
	lh_task_dispatched_t d = {0};

	for (int i = 0; i < t->ndeps; i++) {
		const lh_ctask_t *dep = &p->tasks[t->deps[i]];
		if (dep->done_ts_us > ready_ts)
			ready_ts = dep->done_ts_us;
	}
	if (t->retry_due_us > ready_ts)
		ready_ts = t->retry_due_us;
	if (!ready_ts)
		ready_ts = t->kind == LH_KIND_PLAN ? p->submitted_ts_us : p->created_ts_us;
	if (lh_topic_tasks(em->topic_prefix, t->tier, topic, NULL))
		snprintf(topic, sizeof(topic), "%stasks.invalid", em->topic_prefix);
	d.tier = t->tier;
	d.topic = topic;
	d.kind = lh_task_kind_name(t->kind);
	d.ready_ts_us = ready_ts;
	d.lease_ms = em->start_lease_ms;
	d.heartbeat_ms = em->heartbeat_lease_ms;
	snprintf(cause, sizeof(cause), "t%lld:a%lld", (long long)t->task_no, (long long)attempt);
	if (attempt > 1) {
		char why[800];
		snprintf(why, sizeof(why), "task %lld attempt %lld failed (%s); retrying as attempt %lld on %s",
			 (long long)t->task_no, (long long)t->attempt,
			 t->last_error ? t->last_error : "no reason given", (long long)attempt, t->tier);
		log_decision(p, em, "retry", cause, why, NULL);
	}
	t->await_ack = true; /* before emit: the ack may only arrive later, never during emit */
	emit(p, em, LH_EV_TASK_DISPATCHED, t->task_no, attempt, &d, cause);
}

static void fail_plan(lh_cplan_t *p, lh_emitter_t *em, int64_t task_no, const char *reason)
{
	lh_plan_failed_t f = {.reason = reason, .task_no = task_no > 0 ? task_no : 0,
			      .usage = p->usage, .has_usage = true};
	f.duration_ms = (p->last_ts_us - p->submitted_ts_us) / 1000;
	if (f.duration_ms < 0)
		f.duration_ms = 0;
	log_decision(p, em, "plan_failed", "terminal", reason, NULL);
	emit(p, em, LH_EV_PLAN_FAILED, LH_NO_TASK, 0, &f, "terminal");
}

static void pause_plan(lh_cplan_t *p, lh_emitter_t *em, const char *cause, const char *reason,
		       const char *id_cause)
{
	lh_plan_paused_t b = {.cause = cause, .reason = reason};
	emit(p, em, LH_EV_PLAN_PAUSED, LH_NO_TASK, 0, &b, id_cause);
}

/* Ask a person (or agent, or rule) and pause until answered. */
static void ask(lh_cplan_t *p, lh_emitter_t *em, const char *kind, int64_t task_no,
		const char *question, json_t *proposed, const char *request_id)
{
	lh_approval_requested_t a = {.request_id = request_id, .kind = kind, .question = question,
				     .proposed = proposed};
	log_decision(p, em, kind, request_id, question, proposed);
	if (p->status != LH_PLAN_PAUSED)
		pause_plan(p, em,
			   !strcmp(kind, "budget_extension") ? "budget"
			   : !strcmp(kind, "no_progress")    ? "no_progress"
							     : "escalation",
			   question, request_id);
	emit(p, em, LH_EV_APPROVAL_REQUESTED, task_no, 0, &a, request_id);
}

/* A task with needs_approval is ready: ask before its first attempt. The request id names the
 * plan version that defined the task, so a task replaced by a revision is asked about again. */
static void ask_task(lh_cplan_t *p, lh_ctask_t *t, lh_emitter_t *em)
{
	char q[600], rid[96];
	json_t *proposed = json_pack("{s:I, s:s, s:s?, s:s}", "task_no", (json_int_t)t->task_no,
				     "tier", t->tier ? t->tier : "", "tool", t->tool, "instructions",
				     t->instructions ? t->instructions : "");
	snprintf(q, sizeof(q), "task %lld needs an approval before it runs: %.480s",
		 (long long)t->task_no, t->instructions ? t->instructions : "");
	snprintf(rid, sizeof(rid), "task:%lld:v%lld", (long long)t->task_no,
		 (long long)t->version_added);
	ask(p, em, "task", t->task_no, q, proposed, rid);
	json_decref(proposed);
}

static void create_plan(lh_state_t *st, lh_cplan_t *p, lh_emitter_t *em)
{
	lh_arena_t *arena = lh_arena_new(0);
	lh_error_t err = {0};
	lh_task_spec_t *specs;
	int n;
	lh_plan_created_t c = {0};
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
	emit(p, em, LH_EV_PLAN_CREATED, LH_NO_TASK, 0, &c, "v1");
out_free_arena:
	lh_arena_free(arena);
}

static void complete_plan(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *join, lh_emitter_t *em)
{
	const json_t *out = join->output;
	lh_plan_completed_t c = {0};
	int done = 0;
	for (int i = 1; i < p->ntasks; i++)
		if (p->tasks[i].task_no == i && p->tasks[i].kind == LH_KIND_ACT &&
		    p->tasks[i].status == LH_TASK_SUCCEEDED)
			done++;
	c.output = json_object_get(out, "answer");
	c.usage = p->usage;
	c.has_usage = true;
	c.tasks = done;
	c.duration_ms = (join->done_ts_us - p->submitted_ts_us) / 1000;
	if (c.duration_ms < 0)
		c.duration_ms = 0;
	log_decision(p, em, "plan_completed", "terminal", "the joiner decided the goal is met", NULL);
	emit(p, em, LH_EV_PLAN_COMPLETED, LH_NO_TASK, 0, &c, "terminal");
}

/* The describing text a replan task gets: the goal, the plan, what failed, the next free id. */
static char *replan_instructions(const lh_cplan_t *p)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_printf(&b, "Repair the plan for the goal: %s\n", p->goal ? p->goal : "");
	lh_buf_printf(&b, "Failed task: %lld\nWhat went wrong: %s\nNext id: %lld\nCurrent tasks:\n",
		      (long long)p->repair_task, p->repair_reason ? p->repair_reason : "",
		      (long long)p->max_task_no + 2); /* +1 is the replan task itself */
	for (int i = 1; i < p->ntasks; i++) {
		const lh_ctask_t *t = &p->tasks[i];
		if (t->task_no != i || t->kind != LH_KIND_ACT)
			continue;
		lh_buf_printf(&b, "%lld [%s] %s\n", (long long)i, lh_task_status_name(t->status),
			      t->instructions);
	}
	lh_buf_appends(&b, "Keep what succeeded; remove or replace what failed; ids of new tasks "
			   "continue from the next id.");
	return lh_buf_steal(&b, NULL);
}

/* A dead task or a join that asked to replan: add a replan task (a new plan version), or, when
 * the replan budget is spent or replanning makes no progress, ask a person. */
static void start_repair(lh_state_t *st, lh_cplan_t *p, lh_emitter_t *em)
{
	char cause[64], q[800];
	int succeeded = 0;
	for (int i = 1; i < p->ntasks; i++)
		if (p->tasks[i].task_no == i && p->tasks[i].kind == LH_KIND_ACT &&
		    p->tasks[i].status == LH_TASK_SUCCEEDED)
			succeeded++;
	snprintf(cause, sizeof(cause), "repair:%lld:r%lld", (long long)p->repair_task,
		 (long long)p->replans);
	if (p->replans >= p->budget.replans) {
		snprintf(q, sizeof(q),
			 "task %lld needs repair (%s) and the plan has used its %lld replans: take "
			 "over the task (approve with the result as edit), retry it once more "
			 "(approve), or fail the plan (reject)?",
			 (long long)p->repair_task, p->repair_reason ? p->repair_reason : "",
			 (long long)p->budget.replans);
		ask(p, em, "escalation", p->repair_task, q, NULL, cause);
		return;
	}
	if (p->replans > 0 && p->succeeded_at_replan >= 0 && succeeded <= p->succeeded_at_replan &&
	    p->replans >= st->opts.no_progress_replans) {
		snprintf(q, sizeof(q),
			 "no progress: %lld replans without a newly succeeded task; the last failure: "
			 "%s. Continue (approve) or cancel the plan (reject)?",
			 (long long)p->replans, p->repair_reason ? p->repair_reason : "");
		ask(p, em, "no_progress", p->repair_task, q, NULL, cause);
		return;
	}
	{
		char *instr = replan_instructions(p);
		lh_task_spec_t rt = {.task_no = p->max_task_no + 1, .kind = "replan",
				     .tier = st->opts.default_tier, .instructions = instr};
		int64_t removed[1] = {p->join_task};
		lh_plan_revised_t r = {.version = p->version + 1, .base_version = p->version,
				       .reason = p->repair_reason};
		char vc[32], why[900];
		r.tasks.n = 1;
		r.tasks.v = &rt;
		/* the old join waits no more: the patch brings a new one */
		if (p->join_task && p->tasks[p->join_task].status != LH_TASK_SUCCEEDED) {
			r.removed.n = 1;
			r.removed.v = removed;
		}
		snprintf(why, sizeof(why), "task %lld needs repair (%s): replan %lld of %lld",
			 (long long)p->repair_task, p->repair_reason ? p->repair_reason : "",
			 (long long)p->replans + 1, (long long)p->budget.replans);
		log_decision(p, em, "replan", cause, why, NULL);
		snprintf(vc, sizeof(vc), "v%lld", (long long)r.version);
		emit(p, em, LH_EV_PLAN_REVISED, LH_NO_TASK, 0, &r, vc);
		free(instr);
	}
}

/* The replan task succeeded: apply its patch as a new version (or stop a repeating replan). */
static void apply_patch(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *rt, lh_emitter_t *em)
{
	lh_arena_t *arena = lh_arena_new(0);
	lh_error_t err = {0};
	lh_task_spec_t *specs;
	int64_t *removed;
	int n, nr;
	char hash[65], *s, vc[32], why[400];
	lh_plan_revised_t r = {0};

	if (lh_plan_parse_patch(&st->opts, p, rt->output, arena, &specs, &n, &removed, &nr, &err)) {
		fail_plan(p, em, rt->task_no, err.msg); /* accepted at apply: config changed */
		goto out_free_arena;
	}
	s = json_dumps(rt->output, JSON_COMPACT | JSON_SORT_KEYS);
	lh_sha256_hex(s ? s : "", s ? strlen(s) : 0, hash);
	free(s);
	if (p->last_patch[0] && !strcmp(hash, p->last_patch) && p->wait_kind == LH_WAIT_NONE) {
		char q[400], cause[80];
		snprintf(cause, sizeof(cause), "patch:%s", hash);
		snprintf(q, sizeof(q),
			 "no progress: replan task %lld returned the same patch as the previous "
			 "replan. Apply it anyway (approve) or cancel the plan (reject)?",
			 (long long)rt->task_no);
		ask(p, em, "no_progress", rt->task_no, q, NULL, cause);
		p->last_patch[0] = 0; /* approved: apply it on the next pass */
		goto out_free_arena;
	}
	r.version = p->version + 1;
	r.base_version = p->version;
	r.tasks.n = (size_t)n;
	r.tasks.v = specs;
	r.removed.n = (size_t)nr;
	r.removed.v = removed;
	r.replan_task_no = rt->task_no;
	r.reason = p->repair_reason;
	snprintf(why, sizeof(why), "replan task %lld: %d tasks added (join included), %d removed",
		 (long long)rt->task_no, n, nr);
	snprintf(vc, sizeof(vc), "v%lld", (long long)r.version);
	log_decision(p, em, "plan_revised", vc, why, NULL);
	emit(p, em, LH_EV_PLAN_REVISED, LH_NO_TASK, 0, &r, vc);
out_free_arena:
	lh_arena_free(arena);
}

static int tier_index(const lh_state_t *st, const char *tier)
{
	for (int i = 0; i < st->opts.ntiers; i++)
		if (!strcmp(st->opts.tiers[i], tier))
			return i;
	return -1;
}

/* A task failed as often as its tier allows: up a tier, or dead. */
static void give_up_on_tier(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, lh_emitter_t *em)
{
	char cause[64], why[800];
	int ti = tier_index(st, t->tier);
	bool capability = t->last_error_class && (!strcmp(t->last_error_class, "invalid_output") ||
						  !strcmp(t->last_error_class, "refused"));
	snprintf(cause, sizeof(cause), "t%lld:a%lld", (long long)t->task_no, (long long)t->attempt);
	if (capability && ti >= 0 && ti + 1 < st->opts.ntiers) {
		lh_task_escalated_t e = {.from_tier = t->tier, .to_tier = st->opts.tiers[ti + 1],
					 .reason = t->last_error ? t->last_error : "failed"};
		snprintf(why, sizeof(why), "task %lld failed %d times on %s (%s): escalating to %s",
			 (long long)t->task_no, t->failures, t->tier, e.reason, e.to_tier);
		log_decision(p, em, "escalation", cause, why, NULL);
		emit(p, em, LH_EV_TASK_ESCALATED, t->task_no, t->attempt, &e, cause);
		return;
	}
	if (t->kind == LH_KIND_PLAN) {
		/* no plan to repair yet: planning itself failed */
		char reason[800];
		snprintf(reason, sizeof(reason), "planning failed after %d attempts: %s",
			 t->total_failures, t->last_error ? t->last_error : "");
		fail_plan(p, em, 0, reason);
		return;
	}
	{
		lh_task_dead_t d = {.reason = t->last_error ? t->last_error : "failed",
				    .failures = t->total_failures};
		snprintf(why, sizeof(why), "task %lld is dead after %d failures: %s",
			 (long long)t->task_no, t->total_failures, d.reason);
		log_decision(p, em, "task_dead", cause, why, NULL);
		if (em->dead_letter)
			em->dead_letter(em->opaque, p, t, d.reason);
		emit(p, em, LH_EV_TASK_DEAD, t->task_no, t->attempt, &d, cause);
	}
}

/* Timers of one task: fire what is due (the event first, acting after), return the next due. */
static int64_t task_timers(lh_cplan_t *p, lh_ctask_t *t, lh_emitter_t *em, int64_t now_us)
{
	int64_t next = 0;
	char cause[64];
	if (t->lease_due_us && (t->status == LH_TASK_DISPATCHED || t->status == LH_TASK_RUNNING)) {
		if (t->lease_due_us <= now_us) {
			lh_timer_fired_t f = {.timer = t->lease_kind == LH_LEASE_START ? "start_lease"
										  : "heartbeat_lease",
					      .due_us = t->lease_due_us};
			snprintf(cause, sizeof(cause), "t%lld:a%lld:%s:%lld", (long long)t->task_no,
				 (long long)t->attempt, f.timer, (long long)t->lease_due_us);
			emit(p, em, LH_EV_TIMER_FIRED, t->task_no, t->attempt, &f, cause);
		} else
			next = t->lease_due_us;
	}
	if (t->status == LH_TASK_FAILED && !t->retry_ready && t->retry_due_us) {
		if (t->retry_due_us <= now_us) {
			lh_timer_fired_t f = {.timer = "backoff", .due_us = t->retry_due_us};
			snprintf(cause, sizeof(cause), "t%lld:a%lld:backoff", (long long)t->task_no,
				 (long long)t->attempt);
			emit(p, em, LH_EV_TIMER_FIRED, t->task_no, t->attempt, &f, cause);
		} else if (!next || t->retry_due_us < next)
			next = t->retry_due_us;
	}
	return next;
}

static bool deps_ready(const lh_cplan_t *p, const lh_ctask_t *t)
{
	for (int i = 0; i < t->ndeps; i++) {
		lh_task_status_t s = p->tasks[t->deps[i]].status;
		if (s == LH_TASK_SUCCEEDED)
			continue;
		/* a join also proceeds past tasks that were cancelled or skipped */
		if (t->kind == LH_KIND_JOIN && (s == LH_TASK_CANCELLED || s == LH_TASK_SKIPPED))
			continue;
		return false;
	}
	return true;
}

static bool dispatch_new_ok(lh_cplan_t *p, const lh_ctask_t *t, lh_emitter_t *em);

/* One task: dispatch, retry, escalate, or give up. */
static void reconcile_task(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, lh_emitter_t *em)
{
	int attempts = (int)(p->budget.attempts_per_task ? p->budget.attempts_per_task
							  : st->opts.max_attempts);
	switch (t->status) {
	case LH_TASK_PENDING:
		if (!deps_ready(p, t))
			return;
		if (t->needs_approval && !t->approved) {
			/* the approval gate: asked when the task could start (one wait at a time) */
			if (!p->wait_request)
				ask_task(p, t, em);
			return;
		}
		if (dispatch_new_ok(p, t, em))
			dispatch(st, p, t, em);
		return;
	case LH_TASK_FAILED:
		if (t->failures >= attempts ||
		    (st->opts.no_progress_failures > 0 && t->same_error >= st->opts.no_progress_failures &&
		     t->failures >= 2)) {
			give_up_on_tier(st, p, t, em);
		} else if (t->retry_ready)
			dispatch(st, p, t, em);
		return;
	case LH_TASK_WAITING_FOR_INPUT:
		if (t->retry_ready && !t->input_request)
			dispatch(st, p, t, em); /* answered: resume with the conversation */
		return;
	case LH_TASK_DISPATCHED:
		if (!t->order_sent && !t->await_ack)
			em->send_order(em->opaque, p, t); /* recovered from the log: send again */
		return;
	default:
		return;
	}
}

/* Over budget: the fact, then the question; the plan pauses until it is answered. */
static void exceed(lh_cplan_t *p, lh_emitter_t *em, int d, double used, double lim)
{
	lh_budget_exceeded_t b = {.dimension = lh_budget_dim_name(d), .used = used, .limit = lim};
	json_t *proposed = json_pack("{s:s, s:f, s:f}", "dimension", lh_budget_dim_name(d), "used",
				     used, "suggested_limit", lim * 2);
	char cause[96], rid[128], q[400];
	snprintf(cause, sizeof(cause), "%s:%.17g", lh_budget_dim_name(d), lim);
	emit(p, em, LH_EV_BUDGET_EXCEEDED, LH_NO_TASK, 0, &b, cause);
	snprintf(q, sizeof(q),
		 "the plan used %.6g of its %.6g %s budget: extend it (approve with new limits) or "
		 "cancel the plan (reject)?",
		 used, lim, lh_budget_dim_name(d));
	snprintf(rid, sizeof(rid), "budget:%s", cause);
	ask(p, em, "budget_extension", LH_NO_TASK, q, proposed, rid);
	json_decref(proposed);
}

/* Cost, tokens and time: warn at 80%, pause at 100%. Tasks: warn at 80%; the limit itself is
 * enforced when one more task would be dispatched (dispatch_new_ok). Replans are a cap on repair
 * (start_repair asks a person), not a budget to extend. */
static void check_budgets(lh_cplan_t *p, lh_emitter_t *em, int64_t now_us)
{
	for (int d = 0; d < LH_BUDGET__COUNT; d++) {
		double lim = lh_budget_limit(p, d), used = lh_budget_used(p, d, now_us);
		char cause[96];
		if (lim <= 0 || d == LH_BUDGET_REPLANS)
			continue;
		snprintf(cause, sizeof(cause), "%s:%.17g", lh_budget_dim_name(d), lim);
		/* the 80% mark is reported even when one step jumps past it and the limit */
		if (used >= 0.8 * lim && !(p->warned & (1u << d))) {
			lh_budget_warning_t b = {.dimension = lh_budget_dim_name(d), .used = used,
						 .limit = lim};
			emit(p, em, LH_EV_BUDGET_WARNING, LH_NO_TASK, 0, &b, cause);
		}
		if (d != LH_BUDGET_TASKS && used >= lim && !(p->exceeded & (1u << d)) &&
		    p->wait_kind == LH_WAIT_NONE) {
			exceed(p, em, d, used, lim);
			return; /* one question at a time */
		}
	}
}

/* May a task that never ran start now, within the task budget? */
static bool dispatch_new_ok(lh_cplan_t *p, const lh_ctask_t *t, lh_emitter_t *em)
{
	double lim = lh_budget_limit(p, LH_BUDGET_TASKS), used;
	if (t->kind != LH_KIND_ACT || t->attempt > 0 || lim <= 0)
		return true;
	used = lh_budget_used(p, LH_BUDGET_TASKS, 0);
	if (used < lim)
		return true;
	if (!(p->exceeded & (1u << LH_BUDGET_TASKS)) && p->wait_kind == LH_WAIT_NONE)
		exceed(p, em, LH_BUDGET_TASKS, used + 1, lim);
	return false;
}

static int64_t min_due(int64_t a, int64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

/* The timers of one wait for a person (approval or question) asked at since_us: fire what is
 * due, return the next one. */
static int64_t wait_timers(lh_state_t *st, lh_cplan_t *p, lh_emitter_t *em, const char *request,
			   int64_t task_no, int64_t since_us, unsigned marks, int64_t now_us)
{
	static const struct {
		const char *timer;
		unsigned mark;
		const char *decision;
	} steps[] = {{"reminder", LH_WAIT_REMINDED, "reminder"},
		     {"wait_escalation", LH_WAIT_ESCALATED, "wait_escalation"},
		     {"wait_deadline", LH_WAIT_EXPIRED, "wait_deadline"}};
	int64_t after[3] = {st->opts.wait_reminder_s, st->opts.wait_escalate_s,
			    st->opts.wait_deadline_s};
	int64_t next = 0;
	for (int i = 0; i < 3; i++) {
		int64_t due = since_us + after[i] * 1000000;
		char cause[200], why[400];
		lh_timer_fired_t f = {.timer = steps[i].timer, .request_id = request};
		if (after[i] <= 0 || (marks & steps[i].mark))
			continue;
		if (due > now_us) {
			next = min_due(next, due);
			continue;
		}
		f.due_us = due;
		snprintf(cause, sizeof(cause), "wait:%s:%s", request, steps[i].timer);
		snprintf(why, sizeof(why),
			 i == 0	  ? "request %s is still unanswered after %lld s: reminding"
			 : i == 1 ? "request %s is unanswered after %lld s: escalating to the next "
				    "responder"
				  : "request %s reached its deadline (%lld s) unanswered: the default "
				    "action applies",
			 request, (long long)after[i]);
		log_decision(p, em, steps[i].decision, cause, why, NULL);
		emit(p, em, LH_EV_TIMER_FIRED, task_no, 0, &f, cause);
		if (i == 2)
			break; /* the deadline ends the wait */
	}
	return next;
}

int64_t lh_reconcile(lh_state_t *st, lh_cplan_t *p, lh_emitter_t *em, int64_t now_us)
{
	int64_t next = 0;
	if (p->status == LH_PLAN_COMPLETED || p->status == LH_PLAN_FAILED ||
	    p->status == LH_PLAN_CANCELLED)
		return 0;
	/* Requests first: cancel, fail, pause, resume. */
	if (p->cancel_requested) {
		lh_plan_cancelled_t c = {.reason = p->command_reason ? p->command_reason : "cancelled"};
		log_decision(p, em, "plan_cancelled", "terminal", c.reason, NULL);
		emit(p, em, LH_EV_PLAN_CANCELLED, LH_NO_TASK, 0, &c, "terminal");
		return 0;
	}
	if (p->fail_requested) {
		fail_plan(p, em, p->wait_task, p->fail_reason ? p->fail_reason : "failed on request");
		return 0;
	}
	if (p->pause_requested && p->status != LH_PLAN_PAUSED) {
		char c[48];
		snprintf(c, sizeof(c), "pause:%lld", (long long)p->last_ts_us);
		log_decision(p, em, "pause", c, p->command_reason ? p->command_reason : "paused on request", NULL);
		pause_plan(p, em, "command", p->command_reason, c);
	}
	if (p->resume_requested && p->status == LH_PLAN_PAUSED && p->wait_kind == LH_WAIT_NONE) {
		lh_plan_resumed_t r = {.reason = p->command_reason};
		char c[48];
		snprintf(c, sizeof(c), "resume:%lld", (long long)p->last_ts_us);
		log_decision(p, em, "resume", c, p->command_reason ? p->command_reason : "resumed", NULL);
		emit(p, em, LH_EV_PLAN_RESUMED, LH_NO_TASK, 0, &r, c);
	}
	if (!paused_or_done(p))
		check_budgets(p, em, now_us);
	/* Waits for people (paused or not): reminders, escalation, deadline. */
	if (p->wait_request)
		next = min_due(next, wait_timers(st, p, em, p->wait_request, LH_NO_TASK,
						 p->wait_since_us, p->wait_marks, now_us));
	for (int i = 1; i < p->ntasks; i++)
		if (p->tasks[i].task_no == i && p->tasks[i].input_request &&
		    p->tasks[i].status == LH_TASK_WAITING_FOR_INPUT)
			next = min_due(next, wait_timers(st, p, em, p->tasks[i].input_request, i,
							 p->tasks[i].input_since_us,
							 p->tasks[i].input_marks, now_us));
	/* (a deadline's default action marks the plan changed: it is decided again at once) */
	/* The wall-clock budget needs a wake-up even when nothing happens: at 80% and at 100%. */
	if (p->deadline_us && !(p->exceeded & (1u << LH_BUDGET_DEADLINE))) {
		int64_t warn_at = p->submitted_ts_us + (p->deadline_us - p->submitted_ts_us) * 8 / 10;
		if (!(p->warned & (1u << LH_BUDGET_DEADLINE)) && warn_at > now_us)
			next = min_due(next, warn_at);
		else
			next = min_due(next, p->deadline_us > now_us ? p->deadline_us : now_us + 1000);
	}
	/* Cancel requests of single tasks; timers of every task (also while paused: a lease that
	 * expires is a fact either way). */
	for (int i = 0; i < p->ntasks; i++) {
		lh_ctask_t *t = &p->tasks[i];
		if (t->task_no != i)
			continue;
		if (t->cancel_requested && lh_task_transition_ok(t->status, LH_TASK_CANCELLED)) {
			lh_task_cancelled_t c = {.reason = p->command_reason};
			char cause[48];
			snprintf(cause, sizeof(cause), "cancel:t%lld", (long long)i);
			emit(p, em, LH_EV_TASK_CANCELLED, i, t->attempt, &c, cause);
			continue;
		}
		next = min_due(next, task_timers(p, t, em, now_us));
	}
	if (paused_or_done(p))
		return next;
	/* Planning. */
	if (p->status == LH_PLAN_PLANNING) {
		lh_ctask_t *t0 = &p->tasks[0];
		if (t0->status == LH_TASK_SUCCEEDED && p->plan_doc)
			create_plan(st, p, em); /* and go on: its first tasks are ready now */
		else
			reconcile_task(st, p, t0, em);
		if (p->status != LH_PLAN_RUNNING)
			return next;
	}
	/* Repair. */
	if (p->replan_task && p->tasks[p->replan_task].status == LH_TASK_SUCCEEDED) {
		apply_patch(st, p, &p->tasks[p->replan_task], em);
		if (paused_or_done(p))
			return next;
	} else if (p->repair_task && !p->replan_task && p->wait_kind == LH_WAIT_NONE) {
		start_repair(st, p, em);
		if (paused_or_done(p))
			return next;
	}
	/* The join decides. */
	if (p->join_task && p->tasks[p->join_task].status == LH_TASK_SUCCEEDED &&
	    p->repair_task != p->join_task) {
		lh_ctask_t *j = &p->tasks[p->join_task];
		const char *d = json_string_value(json_object_get(j->output, "decision"));
		if (d && !strcmp(d, "escalate")) {
			char q[600], cause[48];
			const char *why = json_string_value(json_object_get(j->output, "reason"));
			snprintf(cause, sizeof(cause), "join:%lld", (long long)j->task_no);
			snprintf(q, sizeof(q),
				 "the joiner escalated (%s): finish with an answer (approve with the "
				 "answer as edit, or approve to accept its draft) or fail the plan "
				 "(reject)?",
				 why ? why : "no reason given");
			if (p->wait_kind == LH_WAIT_NONE)
				ask(p, em, "escalation", j->task_no, q, json_object_get(j->output, "answer"),
				    cause);
			return next;
		}
		complete_plan(st, p, j, em);
		return 0;
	}
	for (int i = 1; i < p->ntasks; i++) {
		lh_ctask_t *t = &p->tasks[i];
		if (t->task_no != i)
			continue;
		reconcile_task(st, p, t, em);
		if (paused_or_done(p))
			break;
		/* a task that failed just now has its backoff due later */
		if (t->status == LH_TASK_FAILED && !t->retry_ready && t->retry_due_us > now_us)
			next = min_due(next, t->retry_due_us);
	}
	return next;
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
	o->feedback = t->attempt > 1 && !t->conversation ? t->last_error : NULL;
	o->conversation = t->conversation;
	o->decisions = p->decisions;
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
