/* 0003-materializer: lh-materializer folds the log into PostgreSQL exactly once, across kill -9 of
 * itself and (when LH_PG_CTL_SCRIPT names scripts/pg.sh) restarts and crashes of PostgreSQL.
 *
 * Synthetic but valid events for whole plans (goal, plan task, plan.created with 27 act tasks and
 * a join, one failed attempt and its retry, heartbeats, decisions, completion or failure) are
 * produced in waves while the materializer runs. The materializer is killed with SIGKILL once a
 * wave has been partly stored (seen in consumer_offsets), and restarted. At the end every event
 * is in PostgreSQL exactly once, every projection matches what the events imply (token sums would
 * double if an event were projected twice, statuses would be wrong if one were projected out of
 * order), the stored offsets equal the high watermarks, re-produced duplicates are dropped by id
 * and an undecodable message sits in the dead-letter topic.
 *
 * Needs LH_KAFKA_BROKERS and LH_PG_URL (else it is skipped, exit 77). Argument: the build root. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "event.h"
#include "ids.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"
#include "stack.h"
#include "t.h"

#define PER_PLAN 100	 /* events of one plan */
#define NACT 27		 /* act tasks 1..27; the join is task 28 */
#define JOIN_NO (NACT + 1)
#define WAVE_EVENTS 20	 /* events of each plan per wave: PER_PLAN / WAVE_EVENTS waves */
#define NWAVES (PER_PLAN / WAVE_EVENTS)
#define NPARTS 8	 /* partitions of the events topic (stack.c) */
#define NDUPS 12	 /* events produced a second time */

typedef struct plan_gen {
	lh_id_t plan_id;
	char id[LH_UUID_STR_LEN + 1];
	bool fails; /* ends with plan.failed instead of plan.completed */
	lh_arena_t *arena;
	lh_event_t ev[PER_PLAN];
	int n;
	int64_t ts_us;
	/* what the events imply */
	int64_t input_tokens, output_tokens, cached_tokens;
	double cost_usd;
} plan_gen_t;

typedef struct run {
	ts_stack_t ts;
	const char *name;
	char events_topic[LH_TOPIC_MAX], dlq_topic[LH_TOPIC_MAX], group[64], batch_max[16];
	plan_gen_t *plans;
	int nplans;
	int mat;	  /* process index of the materializer */
	lh_pg_t *pg;
	lh_buf_t scratch;
	int64_t produced; /* messages on the events topic */
	lh_arena_t *orphan_arena;
	lh_event_t orphan; /* plan.created of a plan never submitted: PostgreSQL rejects it */
	char orphan_id[LH_UUID_STR_LEN + 1];
	/* approval.requested of a plan never submitted: rejected at COMMIT (input_requests' key
	 * is checked there, sql/0013) */
	lh_event_t orphan2;
	char orphan2_id[LH_UUID_STR_LEN + 1];
} run_t;

static const char *build_root = ".";
static const char garbage[] = "\xc1 this is not msgpack \xff";

static void msleep(int ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

/* --- the synthetic log ---------------------------------------------------------------------- */

static void decref(void *p) { json_decref(p); }

static json_t *arena_json(lh_arena_t *a, json_t *j)
{
	lh_arena_on_free(a, decref, j);
	return j;
}

static lh_event_t *add(plan_gen_t *p, lh_event_type_t type, int64_t task_no, int64_t attempt,
		       uint32_t idx, const char *actor_kind, void *body)
{
	lh_event_t *ev;
	if (p->n >= PER_PLAN) {
		fprintf(stderr, "BUG: plan generator made more than %d events\n", PER_PLAN);
		abort();
	}
	ev = &p->ev[p->n++];
	memset(ev, 0, sizeof(*ev));
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = type;
	ev->plan_id = p->plan_id;
	ev->task_no = task_no;
	ev->attempt = attempt;
	ev->ts_us = p->ts_us++;
	ev->actor.kind = actor_kind;
	ev->actor.id = "lh-test";
	ev->body = body;
	ev->id = lh_event_id_derivef(&p->plan_id, lh_event_type_name(type), idx, "test:%lld:%lld",
				     (long long)task_no, (long long)attempt);
	return ev;
}

static void usage_of(int64_t task_no, lh_usage_t *u)
{
	*u = (lh_usage_t){.input_tokens = 100 + task_no, .output_tokens = 10 + task_no,
			  .cached_tokens = task_no, .cost_usd = (double)(task_no + 1) / 64.0,
			  .llm_calls = 1};
}

/* dispatched, started, [heartbeat], succeeded or failed */
static void attempt(plan_gen_t *p, run_t *r, int64_t task_no, int64_t att, const char *kind,
		    const char *tier, bool fail, bool heartbeat, json_t *output)
{
	lh_arena_t *a = p->arena;
	lh_task_dispatched_t *d = lh_arena_alloc(a, sizeof(*d));
	lh_attempt_started_t *s = lh_arena_alloc(a, sizeof(*s));
	lh_usage_t u;
	d->tier = tier;
	d->kind = kind;
	d->topic = lh_arena_printf(a, "%stasks.%s", r->ts.prefix, tier);
	add(p, LH_EV_TASK_DISPATCHED, task_no, att, 0, "coordinator", d);
	s->worker_id = "w-test";
	s->model = "m-test";
	add(p, LH_EV_ATTEMPT_STARTED, task_no, att, 0, "worker", s);
	if (heartbeat) {
		lh_attempt_heartbeat_t *h = lh_arena_alloc(a, sizeof(*h));
		h->worker_id = "w-test";
		add(p, LH_EV_ATTEMPT_HEARTBEAT, task_no, att, 0, "worker", h);
	}
	usage_of(task_no, &u);
	p->input_tokens += u.input_tokens;
	p->output_tokens += u.output_tokens;
	p->cached_tokens += u.cached_tokens;
	p->cost_usd += u.cost_usd;
	if (fail) {
		lh_attempt_failed_t *f = lh_arena_alloc(a, sizeof(*f));
		f->worker_id = "w-test";
		f->model = "m-test";
		f->error_class = "retryable";
		f->message = "provider said no";
		f->retryable = true;
		f->has_usage = true;
		f->usage = u;
		add(p, LH_EV_ATTEMPT_FAILED, task_no, att, 0, "worker", f);
		json_decref(output);
	} else {
		lh_attempt_succeeded_t *ok = lh_arena_alloc(a, sizeof(*ok));
		ok->worker_id = "w-test";
		ok->model = "m-test";
		ok->output = arena_json(a, output);
		ok->has_usage = true;
		ok->usage = u;
		ok->latency_ms = 5;
		add(p, LH_EV_ATTEMPT_SUCCEEDED, task_no, att, 0, "worker", ok);
	}
}

static void decision(plan_gen_t *p, uint32_t idx, const char *kind)
{
	lh_decision_logged_t *d = lh_arena_alloc(p->arena, sizeof(*d));
	d->kind = kind;
	d->reasoning = "because the test says so";
	add(p, LH_EV_DECISION_LOGGED, LH_NO_TASK, 0, idx, "coordinator", d);
}

static void gen_plan(plan_gen_t *p, run_t *r, int i)
{
	lh_arena_t *a;
	lh_goal_submitted_t *g;
	lh_plan_created_t *pc;
	memset(p, 0, sizeof(*p));
	a = p->arena = lh_arena_new(0);
	p->plan_id = lh_uuid7_new();
	lh_uuid_fmt(&p->plan_id, p->id);
	p->fails = i % 10 == 9;
	p->ts_us = lh_now_us();

	g = lh_arena_alloc(a, sizeof(*g));
	g->goal = lh_arena_printf(a, "goal %d of %s", i, r->name);
	g->planner_tier = "standard";
	add(p, LH_EV_GOAL_SUBMITTED, LH_NO_TASK, 0, 0, "cli", g);
	attempt(p, r, 0, 1, "plan", "standard", false, false, json_pack("{s:s}", "thought", "t"));

	pc = lh_arena_alloc(a, sizeof(*pc));
	pc->version = 1;
	pc->tasks.n = JOIN_NO;
	pc->tasks.v = lh_arena_alloc(a, sizeof(lh_task_spec_t) * JOIN_NO);
	for (int k = 1; k <= JOIN_NO; k++) {
		lh_task_spec_t *t = &pc->tasks.v[k - 1];
		t->task_no = k;
		t->kind = k == JOIN_NO ? "join" : "act";
		t->tier = k == JOIN_NO ? "standard" : "fast";
		t->instructions = lh_arena_printf(a, "step %d", k);
		if (k == JOIN_NO) {
			t->refs.n = NACT;
			t->refs.v = lh_arena_alloc(a, sizeof(int64_t) * NACT);
			for (int j = 0; j < NACT; j++)
				t->refs.v[j] = j + 1;
		} else if (k >= 2) {
			t->refs.n = 1;
			t->refs.v = lh_arena_alloc(a, sizeof(int64_t));
			t->refs.v[0] = k - 1;
		}
	}
	add(p, LH_EV_PLAN_CREATED, LH_NO_TASK, 0, 0, "coordinator", pc);
	decision(p, 0, "plan_created");

	/* task 1 fails once and is retried */
	attempt(p, r, 1, 1, "act", "fast", true, true, json_integer(0));
	decision(p, 1, "retry");
	attempt(p, r, 1, 2, "act", "fast", false, false, json_pack("{s:i}", "result", 1));
	for (int k = 2; k <= NACT; k++)
		attempt(p, r, k, 1, "act", "fast", false, k <= 4,
			json_pack("{s:i}", "result", k));
	attempt(p, r, JOIN_NO, 1, "join", "standard", false, false,
		json_pack("{s:s,s:s}", "decision", "finish", "answer", "done"));
	decision(p, 2, p->fails ? "plan_failed" : "plan_completed");
	if (p->fails) {
		lh_plan_failed_t *f = lh_arena_alloc(a, sizeof(*f));
		f->reason = "test failure";
		add(p, LH_EV_PLAN_FAILED, LH_NO_TASK, 0, 0, "coordinator", f);
	} else {
		lh_plan_completed_t *c = lh_arena_alloc(a, sizeof(*c));
		c->output = arena_json(a, json_string("done"));
		c->tasks = JOIN_NO;
		add(p, LH_EV_PLAN_COMPLETED, LH_NO_TASK, 0, 0, "coordinator", c);
	}
	if (p->n != PER_PLAN) {
		fprintf(stderr, "BUG: plan generator made %d events, not %d\n", p->n, PER_PLAN);
		abort();
	}
}

static bool emit(run_t *r, const lh_event_t *ev)
{
	lh_error_t err = {0};
	if (lh_bus_emit(r->ts.producer, r->events_topic, ev, false, &r->scratch, NULL, &err)) {
		printf("# produce failed: %s\n", err.msg);
		return false;
	}
	r->produced++;
	return true;
}

/* Events [from, to) of every plan, plans interleaved, each plan in order. */
static bool produce_range(run_t *r, int from, int to)
{
	lh_error_t err = {0};
	for (int e = from; e < to; e++)
		for (int i = 0; i < r->nplans; i++)
			if (!emit(r, &r->plans[i].ev[e]))
				return false;
	if (lh_kafka_flush(r->ts.producer, 30000, &err)) {
		printf("# flush failed: %s\n", err.msg);
		return false;
	}
	return true;
}

/* --- what PostgreSQL says ------------------------------------------------------------------- */

/* Sum of the stored next offsets of this run's consumer; -1 when PostgreSQL does not answer. */
static int64_t stored_total(run_t *r, int64_t next[NPARTS])
{
	const char *params[2] = {r->group, r->events_topic};
	lh_pg_res_t *res = NULL;
	int64_t sum = 0;
	if (next)
		for (int i = 0; i < NPARTS; i++)
			next[i] = 0;
	if (lh_pg_query(r->pg, "consumer_offsets_get", 2, params, NULL, NULL, &res, NULL))
		return -1;
	for (int i = 0; i < lh_pg_nrows(res); i++) {
		int64_t p = lh_pg_get_i64(res, i, 0), o = lh_pg_get_i64(res, i, 1);
		sum += o;
		if (next && p >= 0 && p < NPARTS)
			next[p] = o;
	}
	lh_pg_res_free(res);
	return sum;
}

static bool mat_alive(run_t *r)
{
	ts_proc_t *p = &r->ts.procs[r->mat];
	int st;
	if (p->pid <= 0)
		return false;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		printf("# lh-materializer exited unexpectedly (status %d); see %s/materializer.log\n",
		       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), r->ts.log_dir);
		p->pid = 0;
		return false;
	}
	return true;
}

/* Poll until the stored offsets sum to more than `than`; false at the deadline. */
static bool wait_progress(run_t *r, int64_t than, int ms, int64_t *ret_now)
{
	int64_t deadline = lh_mono_us() + (int64_t)ms * 1000;
	while (lh_mono_us() < deadline) {
		int64_t s = stored_total(r, NULL);
		if (s > than) {
			*ret_now = s;
			return true;
		}
		if (!mat_alive(r))
			return false;
		msleep(10);
	}
	return false;
}

/* Poll until every partition's stored offset is its high watermark. */
static bool wait_caught_up(run_t *r, int ms)
{
	int64_t deadline = lh_mono_us() + (int64_t)ms * 1000;
	while (lh_mono_us() < deadline) {
		int64_t next[NPARTS], total = 0;
		bool all = stored_total(r, next) >= 0;
		for (int i = 0; all && i < NPARTS; i++) {
			int64_t hi = 0;
			if (lh_kafka_watermarks(r->ts.producer, r->events_topic, i, 5000, NULL, &hi,
						NULL))
				all = false;
			total += hi;
			if (next[i] != hi)
				all = false;
		}
		if (all && total == r->produced)
			return true;
		if (!mat_alive(r))
			return false;
		msleep(50);
	}
	return false;
}

static char *plan_ids_array(run_t *r)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_appends(&b, "{");
	for (int i = 0; i < r->nplans; i++)
		lh_buf_printf(&b, "%s%s", i ? "," : "", r->plans[i].id);
	lh_buf_appends(&b, "}");
	return lh_buf_steal(&b, NULL);
}

static lh_pg_res_t *q1(run_t *r, const char *name, const char *param)
{
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	const char *params[1] = {param};
	if (lh_pg_query(r->pg, name, 1, params, NULL, NULL, &res, &err)) {
		printf("# query %s: %s\n", name, err.msg);
		return NULL;
	}
	return res;
}

static double fabs_diff(double a, double b) { return a > b ? a - b : b - a; }

#define EXPECT(cond, ...)                                                                     \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			if (++*bad <= 8) {                                                    \
				printf("# plan %s: ", p->id);                                 \
				printf(__VA_ARGS__);                                          \
				printf("\n");                                                 \
			}                                                                     \
			ok = false;                                                           \
		}                                                                             \
	} while (0)

/* Every row the events of plan p imply. */
static bool check_plan(run_t *r, plan_gen_t *p, int *bad)
{
	lh_pg_res_t *res;
	bool ok = true;
	char expect_deps[256];

	if (!(res = q1(r, "plan_get", p->id)) || lh_pg_nrows(res) != 1) {
		EXPECT(false, "no plans row");
		lh_pg_res_free(res);
		return false;
	}
	EXPECT(strcmp(lh_pg_get(res, 0, 3), p->fails ? "failed" : "completed") == 0, "status %s",
	       lh_pg_get(res, 0, 3));
	EXPECT(lh_pg_get_i64(res, 0, 4) == 1, "version %s", lh_pg_get(res, 0, 4));
	EXPECT(lh_pg_get_i64(res, 0, 5) == JOIN_NO, "tasks_total %s", lh_pg_get(res, 0, 5));
	EXPECT(lh_pg_get_i64(res, 0, 6) == JOIN_NO, "tasks_succeeded %s", lh_pg_get(res, 0, 6));
	EXPECT(lh_pg_get_i64(res, 0, 7) == p->input_tokens, "input_tokens %s, want %lld",
	       lh_pg_get(res, 0, 7), (long long)p->input_tokens);
	EXPECT(lh_pg_get_i64(res, 0, 8) == p->output_tokens, "output_tokens %s",
	       lh_pg_get(res, 0, 8));
	EXPECT(lh_pg_get_i64(res, 0, 9) == p->cached_tokens, "cached_tokens %s",
	       lh_pg_get(res, 0, 9));
	EXPECT(fabs_diff(strtod(lh_pg_get(res, 0, 11), NULL), p->cost_usd) < 1e-6,
	       "cost_usd %s, want %.8f", lh_pg_get(res, 0, 11), p->cost_usd);
	EXPECT(!lh_pg_isnull(res, 0, 14), "finished_at is null");
	if (p->fails)
		EXPECT(strcmp(lh_pg_get(res, 0, 16), "test failure") == 0, "reason %s",
		       lh_pg_get(res, 0, 16));
	else
		EXPECT(strcmp(lh_pg_get(res, 0, 15), "\"done\"") == 0, "output %s",
		       lh_pg_get(res, 0, 15));
	lh_pg_res_free(res);

	/* tasks: task_no, kind, tier, status, attempts, input, output, cost, instructions, deps */
	if ((res = q1(r, "plan_tasks", p->id))) {
		EXPECT(lh_pg_nrows(res) == JOIN_NO + 1, "%d task rows", lh_pg_nrows(res));
		for (int i = 0; i < lh_pg_nrows(res) && i <= JOIN_NO; i++) {
			int64_t k = lh_pg_get_i64(res, i, 0);
			const char *kind = k == 0 ? "plan" : k == JOIN_NO ? "join" : "act";
			EXPECT(k == i, "task row %d is task %lld", i, (long long)k);
			EXPECT(strcmp(lh_pg_get(res, i, 1), kind) == 0, "task %d kind %s", i,
			       lh_pg_get(res, i, 1));
			EXPECT(strcmp(lh_pg_get(res, i, 2), k >= 1 && k <= NACT ? "fast" : "standard") ==
				       0,
			       "task %d tier %s", i, lh_pg_get(res, i, 2));
			EXPECT(strcmp(lh_pg_get(res, i, 3), "succeeded") == 0, "task %d status %s", i,
			       lh_pg_get(res, i, 3));
			EXPECT(lh_pg_get_i64(res, i, 4) == (k == 1 ? 2 : 1), "task %d attempts %s", i,
			       lh_pg_get(res, i, 4));
			EXPECT(lh_pg_get_i64(res, i, 5) == (100 + k) * (k == 1 ? 2 : 1),
			       "task %d input tokens %s", i, lh_pg_get(res, i, 5));
			expect_deps[0] = 0;
			if (k == JOIN_NO) {
				size_t len = 0;
				for (int j = 1; j <= NACT; j++)
					len += (size_t)snprintf(expect_deps + len,
								sizeof(expect_deps) - len, "%s%d",
								j > 1 ? "," : "", j);
			} else if (k >= 2)
				snprintf(expect_deps, sizeof(expect_deps), "%lld", (long long)k - 1);
			EXPECT(strcmp(lh_pg_get(res, i, 9), expect_deps) == 0, "task %d deps \"%s\"",
			       i, lh_pg_get(res, i, 9));
		}
		lh_pg_res_free(res);
	} else
		EXPECT(false, "plan_tasks failed");

	/* attempts: task_no, attempt, status, ... */
	if ((res = q1(r, "plan_attempts", p->id))) {
		EXPECT(lh_pg_nrows(res) == JOIN_NO + 2, "%d attempt rows", lh_pg_nrows(res));
		for (int i = 0; i < lh_pg_nrows(res); i++) {
			int64_t k = lh_pg_get_i64(res, i, 0), a = lh_pg_get_i64(res, i, 1);
			const char *want = k == 1 && a == 1 ? "failed" : "succeeded";
			EXPECT(strcmp(lh_pg_get(res, i, 2), want) == 0, "attempt %lld.%lld is %s",
			       (long long)k, (long long)a, lh_pg_get(res, i, 2));
			EXPECT(strcmp(lh_pg_get(res, i, 4), "w-test") == 0, "attempt worker %s",
			       lh_pg_get(res, i, 4));
		}
		lh_pg_res_free(res);
	} else
		EXPECT(false, "plan_attempts failed");

	if ((res = q1(r, "plan_decisions", p->id))) {
		const char *kinds[3] = {"plan_created", "retry",
					p->fails ? "plan_failed" : "plan_completed"};
		EXPECT(lh_pg_nrows(res) == 3, "%d decisions", lh_pg_nrows(res));
		for (int i = 0; i < lh_pg_nrows(res) && i < 3; i++)
			EXPECT(strcmp(lh_pg_get(res, i, 4), kinds[i]) == 0, "decision %d is %s", i,
			       lh_pg_get(res, i, 4));
		lh_pg_res_free(res);
	} else
		EXPECT(false, "plan_decisions failed");

	if ((res = q1(r, "plan_versions", p->id))) {
		EXPECT(lh_pg_nrows(res) == 1 && lh_pg_get_i64(res, 0, 0) == 1, "%d versions",
		       lh_pg_nrows(res));
		lh_pg_res_free(res);
	} else
		EXPECT(false, "plan_versions failed");
	return ok;
}

static void check_all(run_t *r)
{
	char *ids = plan_ids_array(r);
	lh_pg_res_t *res = q1(r, "events_count_by_plan", ids);
	int64_t total = 0, planbad = 0;
	int bad = 0;
	free(ids);
	T_CHECK(res != NULL);
	if (res) {
		T_EQ_INT(lh_pg_nrows(res), r->nplans);
		for (int i = 0; i < lh_pg_nrows(res); i++) {
			total += lh_pg_get_i64(res, i, 1);
			if (lh_pg_get_i64(res, i, 1) != PER_PLAN)
				planbad++;
		}
		lh_pg_res_free(res);
	}
	/* every event once: exactly N distinct ids (the id is the primary key), duplicates gone */
	T_EQ_INT(total, (int64_t)r->nplans * PER_PLAN);
	T_EQ_INT(planbad, 0);
	for (int i = 0; i < r->nplans; i++)
		check_plan(r, &r->plans[i], &bad);
	T_EQ_INT(bad, 0);
	/* the rejected event left no row behind (its transaction rolled back) */
	if (r->orphan_arena) {
		char orphan[2 * LH_UUID_STR_LEN + 4];
		snprintf(orphan, sizeof(orphan), "{%s,%s}", r->orphan_id, r->orphan2_id);
		res = q1(r, "events_count_by_plan", orphan);
		T_CHECK(res && lh_pg_nrows(res) == 0);
		lh_pg_res_free(res);
	}
}

/* --- the dead-letter topic ------------------------------------------------------------------ */

typedef struct dlq_seen {
	int garbage, other;
} dlq_seen_t;

static void on_dlq(void *opaque, const lh_kafka_msg_t *msg)
{
	dlq_seen_t *s = opaque;
	if (msg->len == sizeof(garbage) - 1 && memcmp(msg->payload, garbage, msg->len) == 0)
		s->garbage++;
	else
		s->other++;
}

/* want_garbage undecodable messages and want_rejected rejected events in the dlq, nothing else. */
static void check_dlq(run_t *r, int want_garbage, int want_rejected)
{
	dlq_seen_t seen = {0};
	lh_kafka_t *k = NULL;
	lh_error_t err = {0};
	char group[96];
	int64_t hi = -1, deadline;
	lh_kafka_part_t part = {.topic = r->dlq_topic, .partition = 0,
				.offset = LH_KAFKA_OFFSET_BEGINNING};
	lh_kafka_opts_t ko = {.brokers = r->ts.brokers, .client_id = "lh-test-dlq",
			      .on_message = on_dlq, .opaque = &seen};
	snprintf(group, sizeof(group), "%sdlq-reader", r->ts.prefix);
	ko.group_id = group;
	T_CHECK(lh_kafka_watermarks(r->ts.producer, r->dlq_topic, 0, 5000, NULL, &hi, &err) == LH_OK);
	T_EQ_INT(hi, want_garbage + want_rejected);
	if (lh_kafka_new(&ko, &k, &err) || lh_kafka_assign(k, &part, 1, &err)) {
		printf("# dlq reader: %s\n", err.msg);
		T_CHECK(false);
		lh_kafka_free(k);
		return;
	}
	deadline = lh_mono_us() + 30000000;
	while (seen.garbage + seen.other < hi && lh_mono_us() < deadline)
		lh_kafka_poll(k, 100);
	lh_kafka_free(k);
	T_EQ_INT(seen.garbage, want_garbage);
	T_EQ_INT(seen.other, want_rejected);
}

/* --- runs ----------------------------------------------------------------------------------- */

static int spawn_mat(run_t *r, const char *name)
{
	return ts_spawn(&r->ts, name, "materializer/lh-materializer", "--group", r->group,
			"--consumer", r->group, "--batch-max-events", r->batch_max, "--batch-max-ms",
			"20", "--session-timeout-ms", "6000", "--shutdown-timeout-ms", "3000",
			"--stats-interval", "5", NULL);
}

static int run_init(run_t *r, const char *name, int nplans, const char *batch_max)
{
	lh_error_t err = {0};
	int rc = ts_init(&r->ts, build_root);
	if (rc)
		return rc;
	r->name = name;
	lh_topic(r->ts.prefix, "events", r->events_topic, NULL);
	lh_topic(r->ts.prefix, "dlq", r->dlq_topic, NULL);
	snprintf(r->group, sizeof(r->group), "%smaterializer", r->ts.prefix);
	if (lh_pg_connect(r->ts.pg_url, &r->pg, &err)) {
		printf("FAIL: postgresql: %s\n", err.msg);
		return 1;
	}
	lh_buf_init(&r->scratch);
	r->nplans = nplans;
	r->plans = calloc((size_t)nplans, sizeof(*r->plans));
	for (int i = 0; i < nplans; i++)
		gen_plan(&r->plans[i], r, i);
	snprintf(r->batch_max, sizeof(r->batch_max), "%s", batch_max);
	r->mat = spawn_mat(r, "materializer");
	printf("# %s: %d plans, %d events, prefix %s\n", name, nplans, nplans * PER_PLAN,
	       r->ts.prefix);
	return 0;
}

static void run_finish(run_t *r)
{
	ts_finish(&r->ts);
	for (int i = 0; i < r->nplans; i++)
		lh_arena_free(r->plans[i].arena);
	free(r->plans);
	lh_arena_free(r->orphan_arena);
	lh_buf_finish(&r->scratch);
	lh_pg_free(r->pg);
}

/* Valid events PostgreSQL refuses: plan.created of a plan that was never submitted violates
 * plan_versions' foreign key (at the statement), an approval request of another one
 * input_requests' (at COMMIT: deferred, sql/0013). The writer isolates each by bisecting and
 * dead-letters it. */
static void gen_orphan(run_t *r)
{
	lh_arena_t *a = r->orphan_arena = lh_arena_new(0);
	lh_plan_created_t *pc = lh_arena_alloc(a, sizeof(*pc));
	lh_approval_requested_t *ar;
	lh_event_t *ev = &r->orphan;
	pc->version = 1;
	pc->tasks.n = 1;
	pc->tasks.v = lh_arena_alloc(a, sizeof(lh_task_spec_t));
	pc->tasks.v[0] = (lh_task_spec_t){.task_no = 1, .kind = "act", .tier = "fast",
					  .instructions = "orphan"};
	memset(ev, 0, sizeof(*ev));
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = LH_EV_PLAN_CREATED;
	ev->plan_id = lh_uuid7_new();
	ev->task_no = LH_NO_TASK;
	ev->ts_us = lh_now_us();
	ev->actor.kind = "coordinator";
	ev->actor.id = "lh-test";
	ev->body = pc;
	ev->id = lh_event_id_derivef(&ev->plan_id, "plan.created", 0, "orphan");
	lh_uuid_fmt(&ev->plan_id, r->orphan_id);

	ar = lh_arena_alloc(a, sizeof(*ar));
	*ar = (lh_approval_requested_t){.request_id = "orphan-approval", .kind = "task",
					 .question = "approve?"};
	ev = &r->orphan2;
	memset(ev, 0, sizeof(*ev));
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = LH_EV_APPROVAL_REQUESTED;
	ev->plan_id = lh_uuid7_new();
	ev->task_no = 1;
	ev->ts_us = lh_now_us();
	ev->actor.kind = "coordinator";
	ev->actor.id = "lh-test";
	ev->body = ar;
	ev->id = lh_event_id_derivef(&ev->plan_id, "approval.requested", 0, "orphan");
	lh_uuid_fmt(&ev->plan_id, r->orphan2_id);
}

/* Duplicates of events already produced (attempt.succeeded among them: projecting one twice
 * would double its tokens), one message that is not an event, and two events PostgreSQL
 * rejects, amid the duplicates so that they sit inside a batch. */
static bool produce_dups_and_garbage(run_t *r)
{
	lh_error_t err = {0};
	gen_orphan(r);
	for (int d = 0; d < NDUPS; d++) {
		plan_gen_t *p = &r->plans[(d * 7) % r->nplans];
		int e = d % 2 ? 3 /* task 0 attempt.succeeded */ : PER_PLAN - 10 + d % 10;
		if (!emit(r, &p->ev[e]))
			return false;
		if (d == NDUPS / 2 && !emit(r, &r->orphan))
			return false;
		if (d == NDUPS / 4 && !emit(r, &r->orphan2))
			return false;
	}
	if (lh_kafka_produce(r->ts.producer, r->events_topic, -1, r->plans[0].id,
			     strlen(r->plans[0].id), garbage, sizeof(garbage) - 1, NULL, 0, NULL,
			     &err)) {
		printf("# produce garbage: %s\n", err.msg);
		return false;
	}
	r->produced++;
	return lh_kafka_flush(r->ts.producer, 30000, &err) == LH_OK;
}

static void stop_mat(run_t *r)
{
	int st;
	T_CHECK(mat_alive(r));
	ts_kill(&r->ts, r->mat, SIGTERM);
	st = ts_wait_exit(&r->ts, r->mat, 30000);
	if (st != 0)
		printf("# lh-materializer exit status %d after SIGTERM\n", st);
	T_EQ_INT(st, 0); /* graceful: the batch written, exit 0 */
}

/* kill -9 the materializer while it works, three times, restarting it each time. */
static void t_kill9(void)
{
	run_t r = {0};
	int64_t now = 0, kills = 0;
	int rc = run_init(&r, "kill9", 50, "100");
	if (rc) {
		T_CHECK(rc == 0);
		return;
	}
	for (int w = 0; w < NWAVES; w++) {
		int64_t before = stored_total(&r, NULL);
		T_CHECK(produce_range(&r, w * WAVE_EVENTS, (w + 1) * WAVE_EVENTS));
		if (w >= 3)
			continue;
		/* Kill once part of this wave is stored (a little more each time, always less than
		 * what is there): the materializer is mid-stream. */
		if (!wait_progress(&r, before + 300 * w, 90000, &now)) {
			T_CHECK(!"no progress within 90 s");
			break;
		}
		ts_kill(&r.ts, r.mat, SIGKILL);
		kills++;
		printf("# wave %d: killed with %lld of %lld messages stored\n", w, (long long)now,
		       (long long)r.produced);
		ts_restart(&r.ts, r.mat);
	}
	T_EQ_INT(kills, 3);
	T_CHECK(produce_dups_and_garbage(&r));
	T_CHECK(wait_caught_up(&r, 120000));
	stop_mat(&r);
	check_all(&r);
	check_dlq(&r, 1, 2);
	run_finish(&r);
}

static int run_mat(char *out, size_t outsz, int timeout_ms, ...);

/* Point process idx at another consumer group (its argv holds "--group G"). */
static void set_group(run_t *r, int idx, const char *group)
{
	ts_proc_t *p = &r->ts.procs[idx];
	for (int i = 1; i + 1 < p->argc; i++)
		if (strcmp(p->argv[i], "--group") == 0) {
			free(p->argv[i + 1]);
			p->argv[i + 1] = strdup(group);
			return;
		}
}

/* The scale: 50,000 events (500 plans of 100) flow in 5 waves while the materializer is
 * killed with SIGKILL every 200..500 newly stored events (batches of 100), about 100 times. Each
 * restart joins a fresh consumer group under the same --consumer name: the offsets live in
 * PostgreSQL, so the new process starts at once at the stored offsets instead of waiting for the
 * dead member's session to expire. Afterwards every event is in `events` exactly once, every
 * projection is what the events imply, and a rebuild of the log checksums equal to the live
 * tables. */
static void t_kill9_scale(void)
{
	run_t r = {0};
	int64_t now = 0, last = 0, t0 = lh_mono_us();
	unsigned seed = (unsigned)(lh_mono_us() & 0xffffffff);
	int kills = 0, waves = 0, rc;
	char out[4096], rb[64], group[96];
	rc = run_init(&r, "kill9-scale", 500, "100");
	if (rc) {
		T_CHECK(rc == 0);
		return;
	}
	snprintf(rb, sizeof(rb), "rb_%.8s", r.ts.prefix);
	for (;;) {
		/* keep events flowing: the next wave once less than one wave is waiting */
		if (waves < NWAVES && r.produced - last < (int64_t)r.nplans * WAVE_EVENTS) {
			T_CHECK(produce_range(&r, waves * WAVE_EVENTS, (waves + 1) * WAVE_EVENTS));
			waves++;
		}
		if (waves == NWAVES && r.produced - last < 600)
			break; /* the tail is stored without more kills */
		if (!wait_progress(&r, last + 200 + (int64_t)(rand_r(&seed) % 301), 90000, &now)) {
			T_CHECK(!"no progress within 90 s");
			break;
		}
		ts_kill(&r.ts, r.mat, SIGKILL);
		kills++;
		last = now;
		snprintf(group, sizeof(group), "%smat-%d", r.ts.prefix, kills);
		set_group(&r, r.mat, group);
		ts_restart(&r.ts, r.mat);
	}
	printf("# %d kills, %lld of %lld messages stored at the last, %.1f s\n", kills,
	       (long long)last, (long long)r.produced, (double)(lh_mono_us() - t0) / 1e6);
	T_CHECK(kills >= 80);
	T_CHECK(wait_caught_up(&r, 120000));
	stop_mat(&r);
	check_all(&r);
	/* the projections equal a rebuild from the log */
	T_EQ_INT(run_mat(out, sizeof(out), 180000, "--brokers", r.ts.brokers, "--pg-url",
			 r.ts.pg_url, "--topic-prefix", r.ts.prefix, "--consumer", r.group,
			 "--rebuild", "--schema", rb, NULL),
		 0);
	printf("# %s", out);
	T_EQ_INT(run_mat(out, sizeof(out), 120000, "--pg-url", r.ts.pg_url, "--topic-prefix",
			 r.ts.prefix, "checksum", "--against-schema", rb, NULL),
		 0);
	if (!strstr(out, "events 50000 "))
		printf("# checksum:\n%s", out);
	T_CHECK(strstr(out, "events 50000 ") != NULL);
	{
		const char *p[1] = {rb};
		PQclear(PQexecParams(r.ts.pg, "SELECT set_config('lh.rb', $1, false)", 1, NULL, p,
				     NULL, NULL, 0));
		PQclear(PQexec(r.ts.pg, "DO $$ BEGIN EXECUTE format('DROP SCHEMA IF EXISTS %I "
					"CASCADE', current_setting('lh.rb')); END $$"));
	}
	printf("# total %.1f s\n", (double)(lh_mono_us() - t0) / 1e6);
	run_finish(&r);
}

/* Run lh-materializer with args (NULL-terminated) and --log-level off; its stdout and stderr,
 * merged, go to out. Returns the exit status, or -1 if it ran past timeout_ms (then killed). */
static int run_mat(char *out, size_t outsz, int timeout_ms, ...)
{
	char exe[600], *argv[16];
	int argc = 0, pfd[2], st = -1;
	size_t len = 0;
	int64_t deadline = lh_mono_us() + (int64_t)timeout_ms * 1000;
	va_list ap;
	pid_t pid;
	snprintf(exe, sizeof(exe), "%s/materializer/lh-materializer", build_root);
	argv[argc++] = exe;
	argv[argc++] = "--log-level";
	argv[argc++] = "off";
	va_start(ap, timeout_ms);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	if (pipe(pfd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		execv(exe, argv);
		_exit(127);
	}
	close(pfd[1]);
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	out[0] = 0;
	for (;;) {
		ssize_t n = read(pfd[0], out + len, outsz - 1 - len);
		if (n > 0) {
			len += (size_t)n;
			out[len] = 0;
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			while (len < outsz - 1 && (n = read(pfd[0], out + len, outsz - 1 - len)) > 0)
				len += (size_t)n;
			out[len] = 0;
			break;
		}
		if (lh_mono_us() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(pfd[0]);
			return -1;
		}
		msleep(10);
	}
	close(pfd[0]);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Start-up: missing or unreachable services give one line and exit 1, within bounded time;
 * --migrate-only migrates and says so. */
static void t_startup(void)
{
	char out[4096];
	const char *pg = getenv("LH_PG_URL"), *brokers = getenv("LH_KAFKA_BROKERS");
	char pgflag[600], bflag[600];
	snprintf(pgflag, sizeof(pgflag), "--pg-url=%s", pg);
	snprintf(bflag, sizeof(bflag), "--brokers=%s", brokers);

	T_EQ_INT(run_mat(out, sizeof(out), 10000, "--pg-url=", bflag, NULL), 1);
	T_CHECK(strstr(out, "no postgresql url") && count_lines(out) == 1);
	T_EQ_INT(run_mat(out, sizeof(out), 10000, pgflag, "--brokers=", NULL), 1);
	T_CHECK(strstr(out, "no kafka brokers") && count_lines(out) == 1);
	T_EQ_INT(run_mat(out, sizeof(out), 30000, "--pg-url=postgresql://lh@127.0.0.1:1/lh", bflag,
			 NULL),
		 1);
	T_CHECK(strstr(out, "could not connect to postgresql") && count_lines(out) == 1);
	T_EQ_INT(run_mat(out, sizeof(out), 60000, pgflag, "--brokers=127.0.0.1:1", NULL), 1);
	T_CHECK(strstr(out, "could not reach kafka") && count_lines(out) == 1);
	if (!strstr(out, "could not reach kafka"))
		printf("# got: %s", out);
	T_EQ_INT(run_mat(out, sizeof(out), 30000, pgflag, "--migrate-only", NULL), 0);
	T_CHECK(strstr(out, "schema") && count_lines(out) == 1);
	T_EQ_INT(run_mat(out, sizeof(out), 10000, pgflag, bflag, "--batch-max-events", "0", NULL),
		 2);
}

static int pg_ctl(const char *cmd)
{
	char line[1200];
	const char *script = getenv("LH_PG_CTL_SCRIPT");
	int st;
	snprintf(line, sizeof(line), "'%s' %s >/dev/null 2>&1", script, cmd);
	st = system(line);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Occurrences of needle in the log of process idx. */
static int log_count(run_t *r, int idx, const char *needle)
{
	char path[700], line[8192];
	int n = 0;
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s.log", r->ts.log_dir, r->ts.procs[idx].name);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

static bool wait_log(run_t *r, int idx, const char *needle, int more_than, int ms)
{
	int64_t deadline = lh_mono_us() + (int64_t)ms * 1000;
	while (lh_mono_us() < deadline) {
		if (log_count(r, idx, needle) > more_than)
			return true;
		msleep(20);
	}
	return false;
}

/* PostgreSQL restarted (fast shutdown) while a materializer writes, then crashed (SIGKILL) while
 * two write, with events arriving meanwhile: they pause, retry, and lose nothing. While PostgreSQL
 * is down one member leaves: the other, paused with a batch it cannot write, has its partitions
 * revoked (the batch is dropped: its offsets were not stored either) and reassigned; it waits for
 * PostgreSQL to read the start offsets, and its once-paused partitions must fetch again. */
static void t_pg_restart(void)
{
	run_t r = {0};
	int64_t now = 0;
	pid_t pid;
	int st = -1, m2, failed_before, assigned_before, rc = run_init(&r, "pg-restart", 20, "10");
	if (rc) {
		T_CHECK(rc == 0);
		return;
	}
	T_CHECK(produce_range(&r, 0, WAVE_EVENTS));
	T_CHECK(wait_progress(&r, 0, 90000, &now));
	/* Restart in the background and keep producing while the server is away. */
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(pg_ctl("restart"));
	T_CHECK(produce_range(&r, WAVE_EVENTS, 3 * WAVE_EVENTS));
	waitpid(pid, &st, 0);
	T_EQ_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
	printf("# restarted postgresql with %lld of %lld messages stored\n", (long long)now,
	       (long long)r.produced);
	T_CHECK(wait_progress(&r, now, 90000, &now));

	/* A second member joins; wait until both hold partitions (the "assigned" lines are logged
	 * once the start offsets are read). */
	assigned_before = log_count(&r, r.mat, "partition assigned");
	m2 = spawn_mat(&r, "materializer-2");
	T_CHECK(wait_log(&r, m2, "partition assigned", 0, 60000));
	T_CHECK(wait_log(&r, r.mat, "partition assigned", assigned_before, 60000));

	/* Crash it and produce while it is down: the first member fails to write and pauses. */
	failed_before = log_count(&r, r.mat, "materializer.write_failed");
	T_EQ_INT(pg_ctl("kill9"), 0);
	printf("# killed postgresql with at least %lld of %lld messages stored\n", (long long)now,
	       (long long)r.produced);
	T_CHECK(produce_range(&r, 3 * WAVE_EVENTS, 4 * WAVE_EVENTS));
	T_CHECK(wait_log(&r, r.mat, "materializer.write_failed", failed_before, 30000));
	/* The second member leaves; it cannot write its batch either (exit 1, nothing stored). */
	ts_kill(&r.ts, m2, SIGTERM);
	st = ts_wait_exit(&r.ts, m2, 30000);
	printf("# second member exited with status %d\n", st);
	T_CHECK(st == 0 || st == 1);
	T_CHECK(wait_log(&r, r.mat, "materializer.batch_dropped", 0, 30000));
	T_CHECK(mat_alive(&r));
	T_EQ_INT(pg_ctl("start"), 0);
	T_CHECK(produce_range(&r, 4 * WAVE_EVENTS, PER_PLAN));
	T_CHECK(produce_dups_and_garbage(&r));
	T_CHECK(wait_caught_up(&r, 120000));
	stop_mat(&r);
	check_all(&r);
	check_dlq(&r, 1, 2);
	run_finish(&r);
}

int main(int argc, char **argv)
{
	const char *ctl = getenv("LH_PG_CTL_SCRIPT");
	if (argc > 1)
		build_root = argv[1];
	if (!getenv("LH_KAFKA_BROKERS") || !*getenv("LH_KAFKA_BROKERS") || !getenv("LH_PG_URL") ||
	    !*getenv("LH_PG_URL")) {
		printf("SKIP: LH_KAFKA_BROKERS and LH_PG_URL must name a real Kafka broker and "
		       "PostgreSQL server (scripts/kafka.sh, scripts/pg.sh)\n");
		return TS_SKIP;
	}
	lh_log_init("0003-materializer", LH_LOG_WARN, NULL);
	if (argc > 2 && strcmp(argv[2], "scale") == 0) {
		T_RUN(t_kill9_scale); /* registered as 0021-kill9-scale */
		return t_done();
	}
	T_RUN(t_startup);
	T_RUN(t_kill9);
	if (ctl && *ctl && strstr(ctl, "pg.sh"))
		T_RUN(t_pg_restart);
	else
		printf("# SKIP t_pg_restart: set LH_PG_CTL_SCRIPT to scripts/pg.sh to restart "
		       "PostgreSQL mid-flow\n");
	return t_done();
}
