/* Unit tests of the coordinator's fold, reconcile and plan validation — in-process, no broker.
 *
 * A simulated log: the emitter appends each event (encoded, then decoded back, exactly as a
 * consumer would see it) and applies it; a simulated worker answers work orders with the scripted
 * model's deterministic answers. Properties checked: a plan completes; applying every event twice
 * changes nothing; replaying the log into a fresh state gives the same state hash; a shuffled
 * stream of duplicates gives the same hash; bad planner outputs get precise errors. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "llm.h"
#include "reconcile.h"
#include "state.h"
#include "t.h"

#define MAX_LOG 4096

static const char *tiers[] = {"fast", "standard", "frontier"};
static lh_state_opts_t opts = {.default_tier = "standard", .tiers = tiers, .ntiers = 3,
			       .max_tasks = 50, .max_attempts = 3, .max_instructions = 65536};

typedef struct sim {
	lh_state_t st;
	lh_event_t *log[MAX_LOG];
	int nlog;
	int orders;
	int fail_task; /* act task whose first attempt fails, 0 = none */
} sim_t;

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

static void sim_append(sim_t *s, const lh_event_t *ev)
{
	if (s->nlog < MAX_LOG)
		s->log[s->nlog++] = roundtrip(ev);
}

static void emit(void *opaque, lh_cplan_t *p, lh_event_t *ev)
{
	sim_t *s = opaque;
	sim_append(s, ev);
	lh_state_apply(&s->st, ev, p->partition, NULL, 0);
}

/* The worker: answers at once (attempt.started, then succeeded or failed). */
static void send_order(void *opaque, lh_cplan_t *p, lh_ctask_t *t)
{
	sim_t *s = opaque;
	lh_arena_t *arena = lh_arena_new(0);
	lh_event_t order, ev = {0};
	const lh_task_order_t *o;
	lh_attempt_started_t st = {.worker_id = "w1", .model = "scripted"};
	char *answer, *input = NULL;
	json_t *out;
	lh_reconcile_order(&s->st, p, t, arena, &order);
	o = order.body;
	t->order_sent = true;
	s->orders++;
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "order t%lld a%lld %s\n", (long long)t->task_no, (long long)t->attempt,
			o->kind);
	ev.v = 1;
	ev.plan_id = p->plan_id;
	ev.task_no = t->task_no;
	ev.attempt = t->attempt;
	ev.ts_us = 1000 + s->nlog;
	ev.actor.kind = "worker";
	ev.type = LH_EV_ATTEMPT_STARTED;
	ev.body = &st;
	ev.id = lh_event_id_derivef(&p->plan_id, "attempt.started", 0, "t%lld:a%lld",
				    (long long)t->task_no, (long long)t->attempt);
	sim_append(s, &ev);
	if (o->inputs)
		input = json_dumps(o->inputs, JSON_COMPACT | JSON_SORT_KEYS);
	answer = lh_llm_scripted_answer(o->kind, o->goal, input ? input : o->instructions);
	out = strcmp(o->kind, "act") == 0 ? json_string(answer) : json_loads(answer, 0, NULL);
	if (s->fail_task > 0 && s->fail_task == t->task_no && t->attempt == 1) {
		lh_attempt_failed_t f = {.worker_id = "w1", .error_class = "retryable",
					 .message = "provider timed out", .retryable = true};
		ev.type = LH_EV_ATTEMPT_FAILED;
		ev.body = &f;
		ev.id = lh_event_id_derivef(&p->plan_id, "attempt.failed", 0, "t%lld:a%lld",
					    (long long)t->task_no, (long long)t->attempt);
		sim_append(s, &ev);
	} else {
		lh_attempt_succeeded_t ok = {.worker_id = "w1", .model = "scripted", .output = out,
					     .has_usage = true};
		ok.usage.input_tokens = 10;
		ok.usage.output_tokens = 5;
		ev.type = LH_EV_ATTEMPT_SUCCEEDED;
		ev.body = &ok;
		ev.id = lh_event_id_derivef(&p->plan_id, "attempt.succeeded", 0, "t%lld:a%lld",
					    (long long)t->task_no, (long long)t->attempt);
		sim_append(s, &ev);
	}
	json_decref(out);
	free(answer);
	free(input);
	lh_arena_free(arena);
}

static lh_emitter_t em = {.emit = emit, .send_order = send_order, .actor_id = "c1",
			  .topic_prefix = "lh."};

static lh_id_t submit(sim_t *s, const char *goal)
{
	lh_goal_submitted_t g = {.goal = goal};
	lh_event_t ev = {.v = 1, .type = LH_EV_GOAL_SUBMITTED, .task_no = LH_NO_TASK, .ts_us = 1,
			 .actor = {.kind = "cli"}, .body = &g};
	ev.plan_id = lh_uuid7_new();
	ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "x");
	sim_append(s, &ev);
	return ev.plan_id;
}

/* Read the log from `from` like a consumer: apply each event, reconcile what changed. */
static void sim_run(sim_t *s)
{
	em.opaque = s;
	for (int i = 0; i < s->nlog; i++) {
		lh_cplan_t *p;
		lh_state_apply(&s->st, s->log[i], 0, NULL, 0);
		while ((p = lh_state_take_dirty(&s->st)))
			for (lh_cplan_t *next; p; p = next) {
				next = p->next_dirty;
				lh_reconcile(&s->st, p, &em);
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
	}
}

static void sim_finish(sim_t *s)
{
	for (int i = 0; i < s->nlog; i++)
		lh_event_free(s->log[i]);
	lh_state_finish(&s->st);
}

static void t_plan_completes(void)
{
	sim_t s = {0};
	lh_cplan_t *p;
	lh_id_t id;
	lh_state_init(&s.st, &opts);
	id = submit(&s, "Write a report on durable execution");
	sim_run(&s);
	p = lh_state_plan(&s.st, &id);
	T_CHECK(p != NULL);
	T_EQ_INT(p->status, LH_PLAN_COMPLETED);
	T_EQ_INT(s.orders, 6); /* plan, 4 diamond tasks, join */
	if (p && p->tasks && p->tasks[0].last_error)
		fprintf(stderr, "plan task error: %s\n", p->tasks[0].last_error);
	T_EQ_INT(p->usage.input_tokens, 60);
	sim_finish(&s);
}

static void t_apply_twice_changes_nothing(void)
{
	sim_t s = {0}, r = {0};
	char h1[65], h2[65];
	lh_state_init(&s.st, &opts);
	submit(&s, "Compare three queues");
	submit(&s, "Summarize a paper");
	sim_run(&s);
	lh_state_init(&r.st, &opts);
	for (int i = 0; i < s.nlog; i++)
		lh_state_apply(&r.st, s.log[i], 0, NULL, 0);
	lh_state_hash(&r.st, h1);
	for (int i = 0; i < s.nlog; i++)
		T_CHECK(lh_state_apply(&r.st, s.log[i], 0, NULL, 0) != LH_APPLY_CHANGED);
	lh_state_hash(&r.st, h2);
	T_EQ_STR(h1, h2);
	lh_state_finish(&r.st);
	sim_finish(&s);
}

static void t_replay_equals_live(void)
{
	sim_t s = {0};
	lh_state_t r;
	char live[65], replay[65];
	lh_state_init(&s.st, &opts);
	s.fail_task = 2; /* a retry on the way */
	submit(&s, "Plan a migration");
	sim_run(&s);
	lh_state_hash(&s.st, live);
	lh_state_init(&r, &opts);
	for (int i = 0; i < s.nlog; i++)
		lh_state_apply(&r, s.log[i], 0, NULL, 0);
	lh_state_hash(&r, replay);
	T_EQ_STR(live, replay);
	lh_state_finish(&r);
	sim_finish(&s);
}

static void t_duplicates_in_any_order(void)
{
	sim_t s = {0};
	char want[65];
	lh_state_t r0;
	unsigned seed = 7;
	lh_state_init(&s.st, &opts);
	submit(&s, "Find the fastest route");
	sim_run(&s);
	lh_state_init(&r0, &opts);
	for (int i = 0; i < s.nlog; i++)
		lh_state_apply(&r0, s.log[i], 0, NULL, 0);
	lh_state_hash(&r0, want);
	lh_state_finish(&r0);
	for (int round = 0; round < 50; round++) {
		/* the log in order, with each event duplicated at a random later place */
		lh_event_t *seq[2 * MAX_LOG];
		int n = 0;
		lh_state_t r;
		char got[65];
		for (int i = 0; i < s.nlog; i++)
			seq[n++] = s.log[i];
		for (int i = 0; i < s.nlog; i++) {
			int pos = 0, at;
			while (seq[pos] != s.log[i])
				pos++; /* a duplicate comes after its original, as in a partition */
			at = pos + 1 + (int)(rand_r(&seed) % (unsigned)(n - pos));
			memmove(&seq[at + 1], &seq[at], sizeof(seq[0]) * (size_t)(n - at));
			seq[at] = s.log[i];
			n++;
		}
		lh_state_init(&r, &opts);
		for (int i = 0; i < n; i++)
			lh_state_apply(&r, seq[i], 0, NULL, 0);
		lh_state_hash(&r, got);
		T_EQ_STR(got, want);
		lh_state_finish(&r);
	}
	sim_finish(&s);
}

static void t_retry_then_success(void)
{
	sim_t s = {0};
	lh_cplan_t *p;
	lh_id_t id;
	lh_state_init(&s.st, &opts);
	s.fail_task = 3;
	id = submit(&s, "Retry me");
	sim_run(&s);
	p = lh_state_plan(&s.st, &id);
	T_EQ_INT(p->status, LH_PLAN_COMPLETED);
	T_EQ_INT(s.orders, 7);
	sim_finish(&s);
}

static void t_stale_attempt_is_fenced(void)
{
	sim_t s = {0};
	lh_id_t id;
	lh_cplan_t *p;
	lh_event_t ev = {.v = 1, .type = LH_EV_ATTEMPT_SUCCEEDED, .task_no = 0, .attempt = 1,
			 .actor = {.kind = "worker"}};
	lh_attempt_succeeded_t ok = {.worker_id = "w", .output = NULL};
	lh_state_init(&s.st, &opts);
	id = submit(&s, "x");
	lh_state_apply(&s.st, s.log[0], 0, NULL, 0);
	p = lh_state_plan(&s.st, &id);
	/* dispatch attempt 1 and 2 of the plan task; a result of attempt 1 is then stale */
	for (int a = 1; a <= 2; a++) {
		lh_task_dispatched_t d = {.tier = "standard", .topic = "lh.tasks.standard", .kind = "plan"};
		lh_event_t de = {.v = 1, .type = LH_EV_TASK_DISPATCHED, .task_no = 0, .attempt = a,
				 .actor = {.kind = "coordinator"}, .body = &d, .plan_id = id};
		if (a == 2) {
			lh_attempt_failed_t f = {.worker_id = "w", .error_class = "timeout", .message = "lease"};
			lh_event_t fe = {.v = 1, .type = LH_EV_ATTEMPT_FAILED, .task_no = 0, .attempt = 1,
					 .actor = {.kind = "worker"}, .body = &f, .plan_id = id};
			T_EQ_INT(lh_state_apply(&s.st, &fe, 0, NULL, 0), LH_APPLY_CHANGED);
		}
		T_EQ_INT(lh_state_apply(&s.st, &de, 0, NULL, 0), LH_APPLY_CHANGED);
	}
	ev.plan_id = id;
	ok.output = json_string("late");
	ev.body = &ok;
	T_EQ_INT(lh_state_apply(&s.st, &ev, 0, NULL, 0), LH_APPLY_NOOP);
	T_EQ_INT(p->tasks[0].status, LH_TASK_DISPATCHED);
	T_EQ_INT(p->tasks[0].attempt, 2);
	json_decref(ok.output);
	sim_finish(&s);
}

static void t_illegal_transition_rejected(void)
{
	sim_t s = {0};
	lh_id_t id;
	char reason[256];
	lh_task_dispatched_t d = {.tier = "standard", .topic = "t", .kind = "plan"};
	lh_event_t de = {.v = 1, .type = LH_EV_TASK_DISPATCHED, .task_no = 0, .attempt = 3,
			 .actor = {.kind = "coordinator"}, .body = &d};
	lh_state_init(&s.st, &opts);
	id = submit(&s, "x");
	lh_state_apply(&s.st, s.log[0], 0, NULL, 0);
	de.plan_id = id;
	/* attempt 3 before attempt 1: a gap is illegal */
	T_EQ_INT(lh_state_apply(&s.st, &de, 0, reason, sizeof(reason)), LH_APPLY_REJECTED);
	T_CHECK(strstr(reason, "attempt 3 dispatched after 0") != NULL);
	T_CHECK(!lh_task_transition_ok(LH_TASK_SUCCEEDED, LH_TASK_RUNNING));
	T_CHECK(lh_task_transition_ok(LH_TASK_FAILED, LH_TASK_DEAD));
	T_CHECK(lh_task_transition_ok(LH_TASK_RUNNING, LH_TASK_CANCELLED));
	T_CHECK(!lh_task_transition_ok(LH_TASK_DEAD, LH_TASK_CANCELLED));
	sim_finish(&s);
}

static void t_plan_validation_table(void)
{
	static const struct {
		const char *json;
		const char *want; /* substring of the error, NULL = valid */
	} cases[] = {
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"a\"},{\"id\":2,\"instructions\":\"b ${1}\"}]}",
		 NULL},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"use ${2}\"},{\"id\":2,\"instructions\":\"b\"}]}",
		 "task 1: reference ${2} points forward"},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"use ${1}\"}]}", "points to itself"},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"a\",\"kind\":\"dance\"}]}",
		 "kind: unknown value \"dance\""},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"a\",\"tier\":\"gold\"}]}",
		 "task 1: unknown tier \"gold\""},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"a\"},{\"id\":1,\"instructions\":\"b\"}]}",
		 "duplicate id 1"},
		{"{\"tasks\":[{\"id\":2,\"instructions\":\"a\"}]}", "id 2 out of order"},
		{"{\"tasks\":[]}", "plan has no tasks"},
		{"{\"thought\":\"x\"}", "tasks"},
		{"\"not json at all", "plan is not JSON"},
		{"[1,2]", "plan must be a JSON object"},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"\"}]}", "empty instructions"},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"a\"},{\"id\":2,\"instructions\":\"b\","
		 "\"after\":[2]}]}",
		 "after 2 points to itself"},
		{"{\"tasks\":[{\"id\":1,\"instructions\":\"a\",\"color\":\"red\"}]}", "color"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		lh_arena_t *arena = lh_arena_new(0);
		lh_error_t err = {0};
		lh_task_spec_t *specs;
		int n = 0;
		lh_err_t rc;
		if (!j)
			j = json_string(cases[i].json); /* a model that answered with text */
		rc = lh_plan_parse(&opts, j, arena, &specs, &n, &err);
		if (!cases[i].want)
			T_EQ_INT(rc, LH_OK);
		else if (rc == LH_OK || !strstr(err.msg, cases[i].want)) {
			fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err.msg,
				cases[i].want);
			T_CHECK(0);
		}
		json_decref(j);
		lh_arena_free(arena);
	}
}

static void t_plan_too_large(void)
{
	json_t *tasks = json_array(), *plan;
	lh_arena_t *arena = lh_arena_new(0);
	lh_error_t err = {0};
	lh_task_spec_t *specs;
	int n;
	for (int i = 1; i <= 100000; i++)
		json_array_append_new(tasks, json_pack("{s:i, s:s}", "id", i, "instructions", "x"));
	plan = json_pack("{s:o}", "tasks", tasks);
	T_EQ_INT(lh_plan_parse(&opts, plan, arena, &specs, &n, &err), LH_ERR_TOO_LARGE);
	T_CHECK(strstr(err.msg, "100000 tasks; the limit is 50") != NULL);
	json_decref(plan);
	lh_arena_free(arena);
}

static void t_join_depends_on_all_reads_sinks(void)
{
	json_t *j = json_loads("{\"tasks\":[{\"id\":1,\"instructions\":\"a\"},{\"id\":2,"
			       "\"instructions\":\"b ${1}\"},{\"id\":3,\"instructions\":\"c\"}]}",
			       0, NULL);
	lh_arena_t *arena = lh_arena_new(0);
	lh_task_spec_t *specs;
	int n = 0;
	T_EQ_INT(lh_plan_parse(&opts, j, arena, &specs, &n, NULL), LH_OK);
	T_EQ_INT(n, 4);
	T_EQ_STR(specs[3].kind, "join");
	T_EQ_INT(specs[3].refs.n, 2); /* sinks 2 and 3 */
	T_EQ_INT(specs[3].refs.v[0], 2);
	T_EQ_INT(specs[3].after.n, 1); /* 1 feeds 2 */
	T_EQ_INT(specs[1].refs.n, 1);
	json_decref(j);
	lh_arena_free(arena);
}

int main(void)
{
	T_RUN(t_plan_completes);
	T_RUN(t_apply_twice_changes_nothing);
	T_RUN(t_replay_equals_live);
	T_RUN(t_duplicates_in_any_order);
	T_RUN(t_retry_then_success);
	T_RUN(t_stale_attempt_is_fenced);
	T_RUN(t_illegal_transition_rejected);
	T_RUN(t_plan_validation_table);
	T_RUN(t_plan_too_large);
	T_RUN(t_join_depends_on_all_reads_sinks);
	return t_done();
}
