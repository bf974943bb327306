/* sim.c — an in-process coordinator with a simulated log, clock and worker, for tests and the
 * fold benchmark. See sim.h. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "llm.h"



/* Encode and decode: the copy a consumer would read. */
static lh_event_t *roundtrip(const lh_event_t *ev)
{
	lh_buf_t b;
	lh_event_t *out = NULL;
	lh_error_t err = {0};
	lh_buf_init(&b);
	if (lh_event_encode(ev, &b, &err) || lh_event_decode(b.data, b.len, &out, &err))
		fprintf(stderr, "roundtrip: %s\n", err.msg);
	lh_buf_finish(&b);
	return out;
}

static void sim_append(lh_sim_t *s, lh_event_t *ev)
{
	ev->ts_us = s->now;
	if (s->nlog == s->caplog) {
		s->caplog = s->caplog ? s->caplog * 2 : 1024;
		s->log = realloc(s->log, sizeof(*s->log) * (size_t)s->caplog);
		if (!s->log)
			abort();
	}
	s->log[s->nlog++] = roundtrip(ev);
}

static void emit(void *opaque, lh_cplan_t *p, lh_event_t *ev)
{
	lh_sim_t *s = opaque;
	sim_append(s, ev);
	lh_state_apply(&s->st, s->log[s->nlog - 1], p->partition, NULL, 0);
}

static void worker_event(lh_sim_t *s, const lh_cplan_t *p, const lh_ctask_t *t, lh_event_type_t type,
			 void *body)
{
	lh_event_t ev = {.v = 1, .plan_id = p->plan_id, .task_no = t->task_no, .attempt = t->attempt,
			 .actor = {.kind = "worker"}, .type = type, .body = body};
	ev.id = lh_event_id_derivef(&p->plan_id, lh_event_type_name(type), 0, "t%lld:a%lld",
				    (long long)t->task_no, (long long)t->attempt);
	sim_append(s, &ev);
}

static lh_sim_do_t default_behaviour(lh_sim_t *s, const lh_ctask_t *t, const lh_task_order_t *o)
{
	return s->fail_task > 0 && s->fail_task == t->task_no && t->attempt == 1 ? LH_SIM_FAIL : LH_SIM_OK;
}

/* The worker: answers at once (attempt.started, then succeeded or failed), or not at all. */
static void send_order(void *opaque, lh_cplan_t *p, lh_ctask_t *t)
{
	lh_sim_t *s = opaque;
	lh_arena_t *arena = lh_arena_new(0);
	lh_event_t order;
	const lh_task_order_t *o;
	lh_attempt_started_t st = {.worker_id = "w1", .model = "scripted"};
	char *answer, *input = NULL;
	json_t *out;
	lh_sim_do_t what;
	lh_reconcile_order(&s->st, p, t, arena, &order);
	o = order.body;
	t->order_sent = true;
	s->orders++;
	what = (s->behave ? s->behave : default_behaviour)(s, t, o);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "order t%lld a%lld %s on %s -> %d\n", (long long)t->task_no,
			(long long)t->attempt, o->kind, o->tier, what);
	if (what == LH_SIM_LOST) {
		lh_arena_free(arena);
		return;
	}
	worker_event(s, p, t, LH_EV_ATTEMPT_STARTED, &st);
	if (what == LH_SIM_SILENT) {
		lh_arena_free(arena);
		return;
	}
	if (what == LH_SIM_ASK) {
		char rid[64];
		lh_input_requested_t q = {.request_id = rid, .question = "Which city do you mean?",
					  .worker_id = "w1"};
		snprintf(rid, sizeof(rid), "q:%lld:%lld", (long long)t->task_no, (long long)t->attempt);
		worker_event(s, p, t, LH_EV_INPUT_REQUESTED, &q);
		lh_arena_free(arena);
		return;
	}
	if (o->inputs)
		input = json_dumps(o->inputs, JSON_COMPACT | JSON_SORT_KEYS);
	answer = lh_llm_scripted_answer(o->kind, o->goal,
					strcmp(o->kind, "replan") == 0 ? o->instructions
					: input				? input
									: o->instructions);
	out = strcmp(o->kind, "act") == 0 ? json_string(answer) : json_loads(answer, 0, NULL);
	if (what == LH_SIM_FAIL) {
		lh_attempt_failed_t f = {.worker_id = "w1", .error_class = "retryable",
					 .message = "provider timed out", .retryable = true};
		worker_event(s, p, t, LH_EV_ATTEMPT_FAILED, &f);
	} else if (what == LH_SIM_INVALID) {
		lh_attempt_failed_t f = {.worker_id = "w1", .error_class = "invalid_output",
					 .message = "does not match the output schema"};
		worker_event(s, p, t, LH_EV_ATTEMPT_FAILED, &f);
	} else {
		lh_attempt_succeeded_t ok = {.worker_id = "w1", .model = "scripted", .output = out,
					     .has_usage = true};
		ok.usage.input_tokens = 10;
		ok.usage.output_tokens = 5;
		ok.usage.cost_usd = s->cost_per_call;
		worker_event(s, p, t, LH_EV_ATTEMPT_SUCCEEDED, &ok);
	}
	json_decref(out);
	free(answer);
	free(input);
	lh_arena_free(arena);
}


lh_id_t lh_sim_submit(lh_sim_t *s, const char *goal, const lh_budget_t *budget)
{
	lh_goal_submitted_t g = {.goal = goal};
	lh_event_t ev = {.v = 1, .type = LH_EV_GOAL_SUBMITTED, .task_no = LH_NO_TASK,
			 .actor = {.kind = "cli"}, .body = &g};
	if (budget) {
		g.budget = *budget;
		g.has_budget = true;
	}
	if (!s->now)
		s->now = 1000000;
	ev.plan_id = lh_uuid7_new();
	ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "x");
	sim_append(s, &ev);
	return ev.plan_id;
}


/* A person (or rule) appends an event. */
void lh_sim_human(lh_sim_t *s, const lh_id_t *plan, lh_event_type_t type, void *body)
{
	lh_event_t ev = {.v = 1, .plan_id = *plan, .task_no = LH_NO_TASK, .actor = {.kind = "human"},
			 .type = type, .body = body};
	ev.id = lh_event_id_derivef(plan, lh_event_type_name(type), 0, "human:%d", ++s->cmd_seq);
	sim_append(s, &ev);
}

static int64_t reconcile_all(lh_sim_t *s)
{
	lh_cplan_t *p;
	int64_t next = 0;
	while ((p = lh_state_take_dirty(&s->st)))
		for (lh_cplan_t *nx; p; p = nx) {
			int64_t due;
			nx = p->next_dirty;
			due = lh_reconcile(&s->st, p, &s->em, s->now);
			if (due && (!next || due < next))
				next = due;
		}
	/* orders are sent once task.dispatched is "acknowledged": right after it is in the log */
	for (size_t it = 0; (p = lh_idmap_next(&s->st.plans, &it));)
		for (int k = 0; k < p->ntasks; k++) {
			lh_ctask_t *t = &p->tasks[k];
			if (t->task_no == k && t->status == LH_TASK_DISPATCHED && !t->order_sent) {
				t->await_ack = false;
				send_order(s, p, t);
			}
		}
	return next;
}

/* Read the log like a consumer (apply each event, decide), then let the clock run to the next
 * timer, until nothing is left to do or `until` (virtual us; 0 = no limit) passes. */
void lh_sim_run_until(lh_sim_t *s, int64_t until)
{
	int pos = 0;
	s->em.opaque = s;
	for (int rounds = 0; rounds < 10000; rounds++) {
		int64_t next = 0;
		while (pos < s->nlog) {
			int64_t due;
			lh_state_apply(&s->st, s->log[pos++], 0, NULL, 0);
			due = reconcile_all(s);
			if (due && (!next || due < next))
				next = due;
		}
		/* wake every plan: a timer may be due */
		for (size_t it = 0; ; ) {
			lh_cplan_t *p = lh_idmap_next(&s->st.plans, &it);
			int64_t due;
			if (!p)
				break;
			due = lh_reconcile(&s->st, p, &s->em, s->now);
			if (due && (!next || due < next))
				next = due;
		}
		reconcile_all(s);
		if (pos < s->nlog)
			continue;
		if (!next || (until && next > until))
			return;
		s->now = next > s->now ? next : s->now + 1;
	}
}


int lh_sim_count(const lh_sim_t *s, lh_event_type_t type)
{
	int n = 0;
	for (int i = 0; i < s->nlog; i++)
		if (s->log[i]->type == type)
			n++;
	return n;
}

int lh_sim_count_decisions(const lh_sim_t *s, const char *kind)
{
	int n = 0;
	for (int i = 0; i < s->nlog; i++)
		if (s->log[i]->type == LH_EV_DECISION_LOGGED &&
		    !strcmp(((lh_decision_logged_t *)s->log[i]->body)->kind, kind))
			n++;
	return n;
}

void lh_sim_finish(lh_sim_t *s)
{
	for (int i = 0; i < s->nlog; i++)
		lh_event_free(s->log[i]);
	free(s->log);
	s->log = NULL;
	lh_state_finish(&s->st);
}

void lh_sim_init(lh_sim_t *s, const lh_state_opts_t *opts)
{
	memset(s, 0, sizeof(*s));
	lh_state_init(&s->st, opts);
	s->em = (lh_emitter_t){.emit = emit, .send_order = send_order, .actor_id = "c1",
			       .topic_prefix = "lh.", .start_lease_ms = 60000,
			       .heartbeat_lease_ms = 30000, .opaque = s};
}
