/* test_consolidate — coordinator/consolidate_sched.c, the idle-time consolidate schedule's pure parts:
 * the idle decision (a plan waiting for an answer is idle; ready, dispatched, running, failed
 * tasks, a pending decision or a finished plan are not), the bucket and due rules (at most once
 * per interval), the order's deterministic id and its round trip through the codec, and that the
 * schedule's runtime fields change neither the state hash nor the snapshot. And the worker's
 * per-tenant cursor table (worker/consolidate.h): lookups, overwrite, bounded with eviction. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "consolidate.h"
#include "consolidate_sched.h"
#include "sim.h"
#include "state.h"
#include "t.h"

static const char *tiers[] = {"fast", "standard", "frontier"};
static lh_state_opts_t opts = {.default_tier = "standard", .tiers = tiers, .ntiers = 3,
			       .max_tasks = 50, .max_attempts = 3, .max_instructions = 65536,
			       .backoff_base_ms = 1000, .backoff_cap_ms = 8000,
			       .default_budget = {.replans = 2},
			       .no_progress_failures = 3, .no_progress_replans = 2,
			       .wait_reminder_s = 0, .wait_escalate_s = 0, .wait_deadline_s = 0};

/* task 1 asks a question and the plan waits for the answer */
static lh_sim_do_t task1_asks(lh_sim_t *s, const lh_ctask_t *t, const lh_task_order_t *o)
{
	(void)s;
	(void)o;
	return t->task_no == 1 ? LH_SIM_ASK : LH_SIM_OK;
}

#define S (1000000LL)

static void t_idle_decision(void)
{
	lh_sim_t s = {0};
	lh_cplan_t *p;
	lh_id_t id;
	lh_sim_init(&s, &opts);
	s.behave = task1_asks;
	id = lh_sim_submit(&s, "Write a report on durable execution", NULL);
	lh_sim_run_until(&s, 0);
	p = lh_state_plan(&s.st, &id);
	T_CHECK(p != NULL);
	T_EQ_INT(p->tasks[1].status, LH_TASK_WAITING_FOR_INPUT);
	/* tasks 2..4 finished or wait behind task 1; nothing is at a worker */
	T_CHECK(lh_consolidate_idle(p));
	static const lh_task_status_t busy[] = {LH_TASK_READY, LH_TASK_DISPATCHED, LH_TASK_RUNNING,
						LH_TASK_FAILED};
	for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++) {
		lh_task_status_t was = p->tasks[2].status;
		p->tasks[2].status = busy[i];
		T_CHECK(!lh_consolidate_idle(p));
		T_CHECK(!lh_consolidate_due(p, 100 * S, 10));
		p->tasks[2].status = was;
	}
	static const lh_task_status_t quiet[] = {LH_TASK_PENDING, LH_TASK_SUCCEEDED,
						 LH_TASK_WAITING_FOR_APPROVAL, LH_TASK_DEAD,
						 LH_TASK_CANCELLED, LH_TASK_SKIPPED};
	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
		lh_task_status_t was = p->tasks[2].status;
		p->tasks[2].status = quiet[i];
		T_CHECK(lh_consolidate_idle(p));
		p->tasks[2].status = was;
	}
	p->dirty = true; /* a reconcile is pending: not now */
	T_CHECK(!lh_consolidate_idle(p));
	p->dirty = false;
	static const lh_plan_status_t done[] = {LH_PLAN_COMPLETED, LH_PLAN_FAILED,
						LH_PLAN_CANCELLED};
	for (size_t i = 0; i < 3; i++) {
		lh_plan_status_t was = p->status;
		p->status = done[i];
		T_CHECK(!lh_consolidate_idle(p));
		p->status = was;
	}
	p->status = LH_PLAN_PAUSED;
	T_CHECK(lh_consolidate_idle(p));
	p->status = LH_PLAN_WAITING;
	lh_sim_finish(&s);
}

static void t_due_once_per_interval(void)
{
	lh_sim_t s = {0};
	lh_cplan_t *p;
	lh_id_t id;
	int sent = 0;
	lh_sim_init(&s, &opts);
	s.behave = task1_asks;
	id = lh_sim_submit(&s, "Compare three queues", NULL);
	lh_sim_run_until(&s, 0);
	p = lh_state_plan(&s.st, &id);
	T_CHECK(p && lh_consolidate_idle(p));
	T_EQ_INT(lh_consolidate_bucket(0, 10), 0);
	T_EQ_INT(lh_consolidate_bucket(9999999, 10), 0);
	T_EQ_INT(lh_consolidate_bucket(10 * S, 10), 1);
	T_EQ_INT(lh_consolidate_bucket(10 * S, 0), 0);
	T_CHECK(!lh_consolidate_due(p, 100 * S, 0)); /* off */
	/* a tick every second for 100 s, interval 10 s: 10 orders, at least 10 s apart */
	int64_t last = 0;
	for (int64_t t = 1000 * S + S / 2; t < 1100 * S + S / 2; t += S)
		if (lh_consolidate_due(p, t, 10)) {
			T_CHECK(!last || t - last >= 10 * S);
			lh_consolidate_sent(p, lh_consolidate_bucket(t, 10), t);
			last = t;
			sent++;
		}
	T_EQ_INT(sent, 10);
	/* a bucket already sent is never due again, even after the interval (clock stepped back) */
	lh_consolidate_sent(p, lh_consolidate_bucket(2000 * S, 10), 1000 * S);
	T_CHECK(!lh_consolidate_due(p, 2005 * S, 10));
	T_CHECK(lh_consolidate_due(p, 2010 * S, 10));
	lh_sim_finish(&s);
}

static void t_order_id_and_codec(void)
{
	lh_sim_t s = {0};
	lh_cplan_t *p;
	lh_id_t id, other;
	lh_arena_t *arena = lh_arena_new(0);
	lh_event_t ev, *back = NULL;
	lh_buf_t buf;
	lh_error_t err = {0};
	lh_sim_init(&s, &opts);
	s.behave = task1_asks;
	id = lh_sim_submit(&s, "Summarize a paper", NULL);
	other = lh_sim_submit(&s, "Summarize another paper", NULL);
	lh_sim_run_until(&s, 0);
	p = lh_state_plan(&s.st, &id);
	T_CHECK(p != NULL);
	lh_id_t a = lh_consolidate_id(&id, 42), b = lh_consolidate_id(&id, 42);
	T_CHECK(lh_id_eq(&a, &b));
	b = lh_consolidate_id(&id, 43);
	T_CHECK(!lh_id_eq(&a, &b));
	b = lh_consolidate_id(&other, 42);
	T_CHECK(!lh_id_eq(&a, &b));
	/* not the id of any of the plan's own orders */
	b = lh_event_id_derivef(&id, "task.order", 0, "t%lld:a%lld", 0LL, 1LL);
	T_CHECK(!lh_id_eq(&a, &b));
	lh_consolidate_order(p, 42, 60, "fast", 5 * S, arena, &ev);
	T_CHECK(lh_id_eq(&ev.id, &a));
	lh_buf_init(&buf);
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_OK);
	T_EQ_INT(lh_event_decode(buf.data, buf.len, &back, &err), LH_OK);
	if (back) {
		const lh_task_order_t *o = back->body;
		T_EQ_INT(back->type, LH_EV_TASK_ORDER);
		T_CHECK(lh_id_eq(&back->id, &a));
		T_CHECK(lh_id_eq(&back->plan_id, &id));
		T_EQ_INT(back->task_no, 0);
		T_EQ_INT(back->attempt, 1);
		T_EQ_STR(o->kind, "consolidate");
		T_EQ_STR(o->tier, "fast");
		T_EQ_INT(json_integer_value(json_object_get(o->args, "bucket")), 42);
		T_EQ_INT(json_integer_value(json_object_get(o->args, "interval_s")), 60);
	}
	lh_event_free(back);
	lh_buf_finish(&buf);
	lh_arena_free(arena);
	lh_sim_finish(&s);
}

/* the schedule's bookkeeping is not plan state: hash and snapshot are unchanged */
static void t_state_untouched(void)
{
	lh_sim_t s = {0};
	lh_cplan_t *p;
	lh_id_t id;
	char h1[65], h2[65];
	char *j1, *j2;
	json_t *snap;
	lh_sim_init(&s, &opts);
	s.behave = task1_asks;
	id = lh_sim_submit(&s, "Write a report on queues", NULL);
	lh_sim_run_until(&s, 0);
	p = lh_state_plan(&s.st, &id);
	T_CHECK(p != NULL);
	lh_state_hash(&s.st, h1);
	snap = lh_snapshot_plan(p);
	j1 = json_dumps(snap, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(snap);
	lh_consolidate_sent(p, 123456, 99 * S);
	lh_state_hash(&s.st, h2);
	snap = lh_snapshot_plan(p);
	j2 = json_dumps(snap, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(snap);
	T_EQ_STR(h1, h2);
	T_EQ_STR(j1, j2);
	free(j1);
	free(j2);
	lh_sim_finish(&s);
}

/* The walk in slices: 1,000 plans, every other one idle; slices of 97 plans and at most 5 due
 * each cover every idle plan exactly once a pass, and a second pass in the same bucket finds
 * none; the plans added between slices are found at the latest by the next pass. */
static void t_walk_slices(void)
{
	enum { N = 1000, T = 4 };
	static lh_cplan_t plans[N + 10];
	static lh_ctask_t tasks[(N + 10) * T];
	static int seen[N + 10];
	lh_idmap_t map;
	size_t it = 0;
	int64_t now = 5000 * S;
	int due = 0, slices = 0;
	bool done = false;
	lh_idmap_init(&map);
	for (int i = 0; i < N + 10; i++) {
		lh_cplan_t *p = &plans[i];
		p->plan_id = lh_uuid7_new();
		p->status = LH_PLAN_WAITING;
		p->tasks = &tasks[i * T];
		p->ntasks = T;
		for (int t = 0; t < T; t++)
			p->tasks[t].status = LH_TASK_SUCCEEDED;
		if (i % 2)
			p->tasks[T - 1].status = LH_TASK_RUNNING;
		if (i < N)
			lh_idmap_put(&map, &p->plan_id, p);
	}
	while (!done) {
		lh_cplan_t *d[5];
		int n = lh_consolidate_walk(&map, &it, now, 10, 97, d, 5, &done);
		T_CHECK(n <= 5);
		for (int k = 0; k < n; k++) {
			seen[d[k] - plans]++;
			lh_consolidate_sent(d[k], lh_consolidate_bucket(now, 10), now);
		}
		due += n;
		slices++;
		if (slices == 3) /* plans arrive while the pass goes on */
			for (int i = N; i < N + 10; i++)
				lh_idmap_put(&map, &plans[i].plan_id, &plans[i]);
		T_CHECK(slices < 10000);
	}
	T_EQ_INT(it, 0);
	for (int i = 0; i < N; i++)
		T_EQ_INT(seen[i], i % 2 ? 0 : 1);
	T_CHECK(slices >= N / 97); /* really in slices */
	/* the same bucket again: nothing due, but the late arrivals not seen yet */
	done = false;
	while (!done) {
		lh_cplan_t *d[5];
		int n = lh_consolidate_walk(&map, &it, now + S, 10, 97, d, 5, &done);
		for (int k = 0; k < n; k++) {
			T_CHECK(d[k] >= &plans[N]);
			seen[d[k] - plans]++;
			lh_consolidate_sent(d[k], lh_consolidate_bucket(now, 10), now);
		}
	}
	for (int i = N; i < N + 10; i++)
		T_EQ_INT(seen[i], i % 2 ? 0 : 1);
	/* max_walk 0 or max_due 0 walk nothing */
	{
		lh_cplan_t *d[1];
		size_t it2 = 0;
		T_EQ_INT(lh_consolidate_walk(&map, &it2, now + 20 * S, 10, 0, d, 1, &done), 0);
		T_CHECK(!done && it2 == 0);
	}
	lh_idmap_finish(&map);
}

static void t_cursor_table(void)
{
	static lh_consolidate_cursors_t c; /* zeroed: empty */
	char name[32];
	T_EQ_INT(lh_consolidate_cursor_get(&c, "acme"), 0);
	lh_consolidate_cursor_put(&c, "acme", 42);
	lh_consolidate_cursor_put(&c, "globex", 7);
	T_EQ_INT(lh_consolidate_cursor_get(&c, "acme"), 42);
	T_EQ_INT(lh_consolidate_cursor_get(&c, "globex"), 7);
	lh_consolidate_cursor_put(&c, "acme", 50);
	T_EQ_INT(lh_consolidate_cursor_get(&c, "acme"), 50);
	T_EQ_INT(c.n, 2);
	lh_consolidate_cursor_put(&c, "acme", -3); /* never negative */
	T_EQ_INT(lh_consolidate_cursor_get(&c, "acme"), 0);
	T_EQ_INT(lh_consolidate_cursor_get(&c, NULL), lh_consolidate_cursor_get(&c, "default"));
	/* bounded: past LH_CONSOLIDATE_CURSORS tenants the oldest entries are replaced */
	for (int i = 0; i < LH_CONSOLIDATE_CURSORS; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		lh_consolidate_cursor_put(&c, name, 1000 + i);
	}
	T_EQ_INT(c.n, LH_CONSOLIDATE_CURSORS);
	T_EQ_INT(lh_consolidate_cursor_get(&c, "acme"), 0);   /* replaced: starts over */
	T_EQ_INT(lh_consolidate_cursor_get(&c, "globex"), 0);
	T_EQ_INT(lh_consolidate_cursor_get(&c, "t253"), 1253);
	T_EQ_INT(lh_consolidate_cursor_get(&c, "t2"), 1002);
}

int main(void)
{
	T_RUN(t_idle_decision);
	T_RUN(t_due_once_per_interval);
	T_RUN(t_order_id_and_codec);
	T_RUN(t_state_untouched);
	T_RUN(t_cursor_table);
	T_RUN(t_walk_slices);
	return t_done();
}
