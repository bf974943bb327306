/* lh-bench NAME [options] — Longhaul's benchmarks. Every figure is printed on its own line as
 *   figure NAME VALUE UNIT
 * so scripts can collect them. Benchmarks run against the real Kafka broker and PostgreSQL named
 * by LH_KAFKA_BROKERS and LH_PG_URL (scripts/kafka.sh and scripts/pg.sh start them).
 *
 *   e2e --plans N --width W   N plans of W parallel tasks each (plus the plan and join tasks) on
 *                             the scripted model; figures tasks_per_s, dispatch_p50_ms,
 *                             dispatch_p99_ms (a task becoming ready -> its attempt starting),
 *                             plan_p50_ms (goal submitted -> plan completed).
 *   materialize --events N    N synthetic events of finished plans through lh-materializer;
 *                             figures materialize_events_per_s, lag_p50_ms, lag_p99_ms (event
 *                             produced -> its row visible, every 50th event sampled) and
 *                             naive_events_per_s (one autocommitted INSERT per event).
 *   worker --latency-ms MS     one lh-worker against fakellm, work orders produced directly:
 *                             inflight_max, completions_per_s, worker_cpu_cores, worker_rss_mib.
 *   worker-overhead            zero model latency, one order at a time: overhead_p50_us. */
#include <getopt.h>
#include <stdint.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "bus.h"
#include "event.h"
#include "idmap.h"
#include "kafka.h"
#include "sim.h"
#include "stack.h"
#include <event2/event.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "http_client.h"
#include "fixtures/memory/recall.h"
#include "ids.h"
#include "pg.h"

typedef struct bplan {
	int64_t submitted_us, completed_us;
	int64_t ready_us[512]; /* per task_no, from task.dispatched */
	bool done;
} bplan_t;

static struct {
	lh_idmap_t plans;
	double *dispatch_ms;
	size_t ndispatch, capdispatch;
	int completed, failed, tasks;
	int64_t first_submit_us, last_complete_us;
} B;

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(double), cmp_d);
	return v[(size_t)fmin((double)n - 1, floor(p * (double)n))];
}

static void on_event(void *opaque, const lh_kafka_msg_t *msg)
{
	lh_event_t *ev;
	bplan_t *p;
	if (lh_event_decode(msg->payload, msg->len, &ev, NULL))
		return;
	p = lh_idmap_get(&B.plans, &ev->plan_id);
	if (!p || ev->task_no >= 512) {
		lh_event_free(ev);
		return;
	}
	switch (ev->type) {
	case LH_EV_TASK_DISPATCHED:
		if (ev->attempt == 1 && ev->task_no >= 0)
			p->ready_us[ev->task_no] =
				((const lh_task_dispatched_t *)ev->body)->ready_ts_us;
		break;
	case LH_EV_ATTEMPT_STARTED:
		if (ev->attempt == 1 && ev->task_no >= 0 && p->ready_us[ev->task_no]) {
			if (B.ndispatch == B.capdispatch) {
				B.capdispatch = B.capdispatch ? B.capdispatch * 2 : 4096;
				B.dispatch_ms = realloc(B.dispatch_ms, B.capdispatch * sizeof(double));
			}
			B.dispatch_ms[B.ndispatch++] =
				(double)(ev->ts_us - p->ready_us[ev->task_no]) / 1000.0;
			p->ready_us[ev->task_no] = 0;
		}
		break;
	case LH_EV_ATTEMPT_SUCCEEDED:
		B.tasks++;
		break;
	case LH_EV_PLAN_COMPLETED:
	case LH_EV_PLAN_FAILED:
		if (!p->done) {
			p->done = true;
			p->completed_us = ev->ts_us;
			if (ev->type == LH_EV_PLAN_COMPLETED)
				B.completed++;
			else
				B.failed++;
			if (ev->ts_us > B.last_complete_us)
				B.last_complete_us = ev->ts_us;
		}
		break;
	default:
		break;
	}
	lh_event_free(ev);
}

static char *script_goal(int width, int n)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_printf(&b, "Benchmark plan %d\nlh-script: {\"thought\":\"bench\",\"tasks\":[", n);
	for (int i = 1; i <= width; i++)
		lh_buf_printf(&b, "%s{\"id\":%d,\"instructions\":\"Step %d of the benchmark\",\"tier\":"
				  "\"fast\"}",
			      i > 1 ? "," : "", i, i);
	lh_buf_appends(&b, "],\"join\":\"Finish\"}\n");
	return lh_buf_steal(&b, NULL);
}

static int bench_e2e(int argc, char **argv, const char *build_root)
{
	int plans = 100, width = 4, timeout_s = 600;
	ts_stack_t ts;
	lh_kafka_t *reader = NULL;
	lh_kafka_opts_t ko = {0};
	lh_kafka_part_t parts[8];
	char topic[LH_TOPIC_MAX];
	lh_error_t err = {0};
	bplan_t *all;
	double *plan_ms;
	size_t nplan = 0;
	int rc, c, spin = 0;
	static const struct option opts[] = {{"plans", 1, 0, 'p'}, {"width", 1, 0, 'w'},
					      {"timeout", 1, 0, 't'}, {0, 0, 0, 0}};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'p')
			plans = atoi(optarg);
		else if (c == 'w')
			width = atoi(optarg);
		else if (c == 't')
			timeout_s = atoi(optarg);
		else {
			fprintf(stderr, "usage: lh-bench e2e [--plans N] [--width W] [--timeout S]\n");
			return 2;
		}
	}
	if (plans < 1 || plans > 100000 || width < 1 || width > 500) {
		fprintf(stderr, "lh-bench e2e: --plans must be 1..100000 and --width 1..500\n");
		return 2;
	}
	if ((rc = ts_init(&ts, build_root)))
		return rc == TS_SKIP ? 2 : rc;
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, "--max-tasks", "1000", NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");

	lh_idmap_init(&B.plans);
	all = calloc((size_t)plans, sizeof(*all));
	lh_topic(ts.prefix, "events", topic, NULL);
	ko.brokers = ts.brokers;
	ko.client_id = "lh-bench";
	ko.group_id = "lh-bench-reader";
	ko.on_message = on_event;
	if (lh_kafka_new(&ko, &reader, &err)) {
		fprintf(stderr, "lh-bench: %s\n", err.msg);
		ts_finish(&ts);
		return 1;
	}
	for (int i = 0; i < 8; i++)
		parts[i] = (lh_kafka_part_t){topic, i, LH_KAFKA_OFFSET_BEGINNING};
	lh_kafka_assign(reader, parts, 8, &err);

	for (int i = 0; i < plans; i++) {
		char *goal = script_goal(width, i);
		lh_id_t id;
		all[i].submitted_us = lh_now_us();
		if (!B.first_submit_us)
			B.first_submit_us = all[i].submitted_us;
		id = ts_submit(&ts, goal);
		lh_idmap_put(&B.plans, &id, &all[i]);
		free(goal);
		lh_kafka_poll(reader, 0);
	}
	while (B.completed + B.failed < plans && spin < timeout_s * 10) {
		if (lh_kafka_poll(reader, 100) == 0)
			spin++;
	}
	plan_ms = calloc((size_t)plans, sizeof(double));
	for (int i = 0; i < plans; i++)
		if (all[i].done)
			plan_ms[nplan++] = (double)(all[i].completed_us - all[i].submitted_us) / 1000.0;
	{
		double secs = (double)(B.last_complete_us - B.first_submit_us) / 1e6;
		int total_tasks = B.completed * (width + 2);
		printf("# %d plans completed, %d failed, %d of %d plans missing\n", B.completed,
		       B.failed, plans - B.completed - B.failed, plans);
		printf("figure plans %d count\n", plans);
		printf("figure width %d count\n", width);
		printf("figure tasks_per_s %.1f tasks/s\n", secs > 0 ? total_tasks / secs : 0);
		printf("figure dispatch_p50_ms %.2f ms\n", pct(B.dispatch_ms, B.ndispatch, 0.50));
		printf("figure dispatch_p99_ms %.2f ms\n", pct(B.dispatch_ms, B.ndispatch, 0.99));
		printf("figure plan_p50_ms %.1f ms\n", pct(plan_ms, nplan, 0.50));
		printf("figure plan_p99_ms %.1f ms\n", pct(plan_ms, nplan, 0.99));
	}
	rc = B.completed == plans ? 0 : 1;
	free(plan_ms);
	free(all);
	free(B.dispatch_ms);
	lh_kafka_free(reader);
	lh_idmap_finish(&B.plans);
	ts_finish(&ts);
	return rc;
}

/* --- recovery: kill -9 a coordinator holding many active tasks -------------------------------- */

static struct {
	int64_t dispatched;	      /* act tasks dispatched (attempt 1) */
	lh_id_t probe;		      /* the plan submitted after the restart */
	int64_t probe_dispatch_us;    /* when its planning task was seen dispatched */
	int64_t marker_next[64];      /* per partition: next_offset of the latest snapshot marker */
	bool marker_covers[64];	      /* the latest marker re-reads no plan from before its last event */
	lh_idmap_t last_offset;	      /* plan id -> (last event offset + 2), as a pointer-sized int */
} R;

static void on_recovery_event(void *opaque, const lh_kafka_msg_t *msg)
{
	lh_event_t *ev;
	if (lh_event_decode(msg->payload, msg->len, &ev, NULL))
		return;
	lh_idmap_put(&R.last_offset, &ev->plan_id, (void *)(intptr_t)(msg->offset + 2));
	if (ev->type == LH_EV_TASK_DISPATCHED && ev->attempt == 1 && ev->task_no >= 1)
		R.dispatched++;
	if (ev->type == LH_EV_TASK_DISPATCHED && lh_id_eq(&ev->plan_id, &R.probe) &&
	    !R.probe_dispatch_us)
		R.probe_dispatch_us = lh_mono_us();
	lh_event_free(ev);
}

static void on_recovery_snapshot(void *opaque, const lh_kafka_msg_t *msg)
{
	json_t *j;
	if (!msg->key || msg->key_len < 7 || memcmp(msg->key, "marker:", 7) != 0 ||
	    msg->partition < 0 || msg->partition >= 64 || !msg->payload)
		return;
	if ((j = json_loadb(msg->payload, msg->len, 0, NULL))) {
		json_t *e;
		size_t i;
		bool covers = true;
		R.marker_next[msg->partition] = json_integer_value(json_object_get(j, "next_offset"));
		json_array_foreach(json_object_get(j, "plans"), i, e) {
			lh_id_t id;
			intptr_t last;
			if (lh_uuid_parse(json_string_value(json_object_get(e, "id")), &id))
				continue;
			last = (intptr_t)lh_idmap_get(&R.last_offset, &id); /* offset + 2, 0: none */
			if (last && json_integer_value(json_object_get(e, "from")) < last - 1)
				covers = false;
		}
		R.marker_covers[msg->partition] = covers;
		json_decref(j);
	}
}

static char *wide_goal(int width, int n)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_printf(&b, "Recovery plan %d\nlh-script: {\"tasks\":[", n);
	for (int i = 1; i <= width; i++)
		lh_buf_printf(&b, "%s{\"id\":%d,\"instructions\":\"Step %d\",\"tier\":\"fast\"}",
			      i > 1 ? "," : "", i, i);
	lh_buf_appends(&b, "]}\n");
	return lh_buf_steal(&b, NULL);
}

static int bench_recovery(int argc, char **argv, const char *build_root)
{
	int plans = 1000, tasks = 100000, c, coord, rc;
	static const struct option opts[] = {{"plans", 1, 0, 'p'}, {"tasks", 1, 0, 't'},
					      {0, 0, 0, 0}};
	ts_stack_t ts;
	lh_kafka_t *reader = NULL, *snaps = NULL;
	lh_kafka_opts_t ko = {0};
	lh_kafka_part_t parts[8];
	char topic[LH_TOPIC_MAX], stopic[LH_TOPIC_MAX];
	lh_error_t err = {0};
	int64_t hw[8], t0, deadline;
	bool covered;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'p')
			plans = atoi(optarg);
		else if (c == 't')
			tasks = atoi(optarg);
		else {
			fprintf(stderr, "usage: lh-bench recovery [--plans N] [--tasks N]\n");
			return 2;
		}
	}
	if (plans < 1 || tasks < plans || tasks / plans > 1000) {
		fprintf(stderr, "lh-bench recovery: --plans >= 1, --tasks >= plans, at most 1000 "
				"tasks per plan\n");
		return 2;
	}
	lh_idmap_init(&R.last_offset);
	if ((rc = ts_init(&ts, build_root)))
		return rc == TS_SKIP ? 2 : rc;
	/* no worker for "fast": every act task stays dispatched, the lease far away */
	coord = ts_spawn_coordinator(&ts, "--max-tasks", "1000", "--start-lease", "86400",
				     "--snapshot-interval", "2", "--instance-id", "bench-coordinator-1",
				     NULL);
	ts_spawn_worker(&ts, "standard");
	lh_topic(ts.prefix, "events", topic, NULL);
	lh_topic(ts.prefix, "snapshots", stopic, NULL);
	ko.brokers = ts.brokers;
	ko.client_id = "lh-bench";
	ko.group_id = "lh-bench-reader";
	ko.on_message = on_recovery_event;
	if (lh_kafka_new(&ko, &reader, &err)) {
		fprintf(stderr, "lh-bench: %s\n", err.msg);
		ts_finish(&ts);
		return 1;
	}
	ko.on_message = on_recovery_snapshot;
	lh_kafka_new(&ko, &snaps, &err);
	for (int i = 0; i < 8; i++)
		parts[i] = (lh_kafka_part_t){topic, i, LH_KAFKA_OFFSET_BEGINNING};
	lh_kafka_assign(reader, parts, 8, &err);
	for (int i = 0; i < 8; i++)
		parts[i] = (lh_kafka_part_t){stopic, i, LH_KAFKA_OFFSET_BEGINNING};
	lh_kafka_assign(snaps, parts, 8, &err);

	t0 = lh_mono_us();
	for (int i = 0; i < plans; i++) {
		char *goal = wide_goal(tasks / plans, i);
		ts_submit(&ts, goal);
		free(goal);
		lh_kafka_poll(reader, 0);
	}
	deadline = lh_mono_us() + 600 * 1000000LL;
	while (R.dispatched < (int64_t)(tasks / plans) * plans && lh_mono_us() < deadline)
		lh_kafka_poll(reader, 100);
	printf("# %lld active tasks dispatched in %.1f s\n", (long long)R.dispatched,
	       (double)(lh_mono_us() - t0) / 1e6);
	/* wait until a snapshot round covers everything folded so far */
	for (int i = 0; i < 8; i++)
		lh_kafka_watermarks(reader, topic, i, 5000, NULL, &hw[i], NULL);
	do {
		covered = true;
		lh_kafka_poll(snaps, 100);
		for (int i = 0; i < 8; i++)
			if (hw[i] > 0 && (R.marker_next[i] < hw[i] || !R.marker_covers[i]))
				covered = false;
	} while (!covered && lh_mono_us() < deadline);
	printf("# snapshots cover the log; kill -9 the coordinator\n");
	ts_kill(&ts, coord, SIGKILL);
	ts_restart(&ts, coord);
	t0 = lh_mono_us();
	R.probe = ts_submit(&ts, "A new goal right after the restart");
	while (!R.probe_dispatch_us && lh_mono_us() < deadline)
		lh_kafka_poll(reader, 10);
	printf("figure active_tasks %lld count\n", (long long)R.dispatched);
	printf("figure recovery_first_dispatch_ms %.0f ms\n",
	       R.probe_dispatch_us ? (double)(R.probe_dispatch_us - t0) / 1000.0 : -1.0);
	lh_kafka_free(reader);
	lh_kafka_free(snaps);
	ts_finish(&ts);
	return R.probe_dispatch_us ? 0 : 1;
}

/* --- fold: the coordinator's fold + reconcile, in-process ------------------------------------ */

static lh_sim_do_t silent_acts(lh_sim_t *s, const lh_ctask_t *t, const lh_task_order_t *o)
{
	return strcmp(o->kind, "act") == 0 ? LH_SIM_SILENT : LH_SIM_OK;
}

static void count_emit(void *opaque, lh_cplan_t *p, lh_event_t *ev) { (*(int *)opaque)++; }
static void no_order(void *opaque, lh_cplan_t *p, lh_ctask_t *t) { t->order_sent = true; }

static double secs_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int bench_fold(int argc, char **argv)
{
	static const char *tiers[] = {"fast", "standard", "frontier"};
	lh_state_opts_t so = {.default_tier = "standard", .tiers = tiers, .ntiers = 3,
			      .max_tasks = 1000, .max_attempts = 3, .max_instructions = 65536,
			      .backoff_base_ms = 1000, .backoff_cap_ms = 60000,
			      .default_budget = {.replans = 2}, .no_progress_failures = 3,
			      .no_progress_replans = 2};
	int plans = 2000, width = 8, c, emitted = 0;
	static const struct option opts[] = {{"plans", 1, 0, 'p'}, {"width", 1, 0, 'w'},
					      {0, 0, 0, 0}};
	lh_sim_t sim;
	lh_state_t st;
	lh_emitter_t em = {.emit = count_emit, .send_order = no_order, .opaque = &emitted,
			   .topic_prefix = "lh.", .start_lease_ms = 60000,
			   .heartbeat_lease_ms = 30000};
	struct timespec t0;
	double secs;
	size_t before, after;
	int64_t tasks = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'p')
			plans = atoi(optarg);
		else if (c == 'w')
			width = atoi(optarg);
		else {
			fprintf(stderr, "usage: lh-bench fold [--plans N] [--width W]\n");
			return 2;
		}
	}
	if (plans < 1 || plans > 1000000 || width < 1 || width > 500) {
		fprintf(stderr, "lh-bench fold: --plans must be 1..1000000 and --width 1..500\n");
		return 2;
	}
	/* 1. A log of finished plans, made by the simulated coordinator and worker. */
	lh_sim_init(&sim, &so);
	for (int i = 0; i < plans; i++) {
		char *goal = script_goal(width, i);
		lh_sim_submit(&sim, goal, NULL);
		free(goal);
	}
	lh_sim_run_until(&sim, 0);
	printf("# log of %d events for %d plans of %d parallel tasks\n", sim.nlog, plans, width);
	/* 2. Fold it as a recovering coordinator does (the whole partition), then decide once for
	 *    every plan it changed. */
	lh_state_init(&st, &so);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < sim.nlog; i++)
		lh_state_apply_at(&st, sim.log[i], 0, i, NULL, 0);
	{
		lh_cplan_t *p;
		while ((p = lh_state_take_dirty(&st)))
			for (lh_cplan_t *nx; p; p = nx) {
				nx = p->next_dirty;
				lh_reconcile(&st, p, &em, sim.now);
			}
	}
	secs = secs_since(&t0);
	printf("figure fold_events_per_s %.0f events/s\n", sim.nlog / secs);
	printf("figure replay_new_decisions %d count\n", emitted); /* a finished log needs none */
	lh_state_finish(&st);
	lh_sim_finish(&sim);

	/* 3. Memory per task of active plans: every act task dispatched and running. */
	lh_sim_init(&sim, &so);
	sim.behave = silent_acts;
	for (int i = 0; i < plans; i++) {
		char *goal = script_goal(width, i);
		lh_sim_submit(&sim, goal, NULL);
		free(goal);
	}
	lh_sim_run_until(&sim, 1000000 + 1000); /* stop before any lease expires */
	malloc_trim(0);
	before = mallinfo2().uordblks;
	lh_state_init(&st, &so);
	for (int i = 0; i < sim.nlog; i++)
		lh_state_apply_at(&st, sim.log[i], 0, i, NULL, 0);
	after = mallinfo2().uordblks;
	{
		size_t it = 0;
		lh_cplan_t *p;
		while ((p = lh_idmap_next(&st.plans, &it)))
			for (int k = 0; k < p->ntasks; k++)
				tasks += p->tasks[k].task_no == k;
	}
	printf("# %lld active tasks in %d plans\n", (long long)tasks, plans);
	printf("figure state_bytes_per_task %.0f bytes\n",
	       tasks ? (double)(after - before) / (double)tasks : 0);
	lh_state_finish(&st);
	lh_sim_finish(&sim);
	return 0;
}

/* --- materialize: lh-materializer throughput and lag, against a naive baseline --------------- */

static void msleep_ms(int ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

typedef struct mplan {
	lh_arena_t *arena;
	lh_event_t *ev;
	int n, cap;
	lh_id_t id;
	int64_t ts_us;
} mplan_t;

static void m_decref(void *p) { json_decref(p); }

static lh_event_t *m_add(mplan_t *p, lh_event_type_t type, int64_t task_no, int64_t attempt,
			 uint32_t idx, const char *actor_kind, void *body)
{
	lh_event_t *ev = &p->ev[p->n++];
	memset(ev, 0, sizeof(*ev));
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = type;
	ev->plan_id = p->id;
	ev->task_no = task_no;
	ev->attempt = attempt;
	ev->ts_us = p->ts_us++;
	ev->actor.kind = actor_kind;
	ev->actor.id = "lh-bench";
	ev->body = body;
	ev->id = lh_event_id_derivef(&p->id, lh_event_type_name(type), idx, "bench:%lld:%lld",
				     (long long)task_no, (long long)attempt);
	return ev;
}

static json_t *m_json(lh_arena_t *a, json_t *j)
{
	lh_arena_on_free(a, m_decref, j);
	return j;
}

static void m_dispatched(mplan_t *p, int64_t no, const char *kind, const char *tier)
{
	lh_task_dispatched_t *d = lh_arena_alloc(p->arena, sizeof(*d));
	d->tier = tier;
	d->kind = kind;
	d->topic = "bench.tasks";
	m_add(p, LH_EV_TASK_DISPATCHED, no, 1, 0, "coordinator", d);
}

static void m_started(mplan_t *p, int64_t no)
{
	lh_attempt_started_t *s = lh_arena_alloc(p->arena, sizeof(*s));
	s->worker_id = "w-bench";
	s->model = "m-bench";
	m_add(p, LH_EV_ATTEMPT_STARTED, no, 1, 0, "worker", s);
}

static void m_succeeded(mplan_t *p, int64_t no, json_t *output)
{
	lh_attempt_succeeded_t *ok = lh_arena_alloc(p->arena, sizeof(*ok));
	ok->worker_id = "w-bench";
	ok->model = "m-bench";
	ok->output = m_json(p->arena, output);
	ok->has_usage = true;
	ok->usage = (lh_usage_t){.input_tokens = 100 + no, .output_tokens = 10 + no,
				 .cached_tokens = no, .cost_usd = (double)(no + 1) / 64.0,
				 .llm_calls = 1};
	ok->latency_ms = 5;
	m_add(p, LH_EV_ATTEMPT_SUCCEEDED, no, 1, 0, "worker", ok);
}

static void m_decision(mplan_t *p, uint32_t idx, const char *kind)
{
	lh_decision_logged_t *d = lh_arena_alloc(p->arena, sizeof(*d));
	d->kind = kind;
	d->reasoning = "the benchmark says so";
	m_add(p, LH_EV_DECISION_LOGGED, LH_NO_TASK, 0, idx, "coordinator", d);
}

/* A finished plan of width act tasks (3 * width + 11 events): goal, the plan task, plan.created,
 * every act task dispatched at once and their results arriving one after another, the join, the
 * decisions and the completion. */
static void m_gen_plan(mplan_t *p, int width, int i)
{
	lh_arena_t *a;
	lh_goal_submitted_t *g;
	lh_plan_created_t *pc;
	lh_plan_completed_t *c;
	int join = width + 1;
	memset(p, 0, sizeof(*p));
	a = p->arena = lh_arena_new(0);
	p->ev = lh_arena_alloc(a, sizeof(lh_event_t) * (size_t)(3 * width + 11));
	p->id = lh_uuid7_new();
	p->ts_us = lh_now_us();
	g = lh_arena_alloc(a, sizeof(*g));
	g->goal = lh_arena_printf(a, "benchmark goal %d", i);
	g->planner_tier = "standard";
	m_add(p, LH_EV_GOAL_SUBMITTED, LH_NO_TASK, 0, 0, "cli", g);
	m_dispatched(p, 0, "plan", "standard");
	m_started(p, 0);
	m_succeeded(p, 0, json_pack("{s:s}", "thought", "bench"));
	pc = lh_arena_alloc(a, sizeof(*pc));
	pc->version = 1;
	pc->tasks.n = (size_t)join;
	pc->tasks.v = lh_arena_alloc(a, sizeof(lh_task_spec_t) * (size_t)join);
	for (int k = 1; k <= join; k++) {
		lh_task_spec_t *t = &pc->tasks.v[k - 1];
		t->task_no = k;
		t->kind = k == join ? "join" : "act";
		t->tier = k == join ? "standard" : "fast";
		t->instructions = lh_arena_printf(a, "step %d", k);
		if (k == join) {
			t->refs.n = (size_t)width;
			t->refs.v = lh_arena_alloc(a, sizeof(int64_t) * (size_t)width);
			for (int j = 0; j < width; j++)
				t->refs.v[j] = j + 1;
		}
	}
	m_add(p, LH_EV_PLAN_CREATED, LH_NO_TASK, 0, 0, "coordinator", pc);
	m_decision(p, 0, "plan_created");
	for (int k = 1; k <= width; k++)
		m_dispatched(p, k, "act", "fast");
	for (int k = 1; k <= width; k++) {
		m_started(p, k);
		m_succeeded(p, k, json_pack("{s:i}", "result", k));
	}
	m_dispatched(p, join, "join", "standard");
	m_started(p, join);
	m_succeeded(p, join, json_pack("{s:s,s:s}", "decision", "finish", "answer", "done"));
	m_decision(p, 1, "plan_completed");
	c = lh_arena_alloc(a, sizeof(*c));
	c->output = m_json(a, json_string("done"));
	c->tasks = join;
	m_add(p, LH_EV_PLAN_COMPLETED, LH_NO_TASK, 0, 0, "coordinator", c);
}

/* PostgreSQL via the stack's connection: the first column of the first row as an integer, -1 on
 * error. */
static int64_t m_sql_i64(ts_stack_t *ts, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(ts->pg, sql, n, NULL, params, NULL, NULL, 0);
	int64_t v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "lh-bench: %s", PQerrorMessage(ts->pg));
	PQclear(r);
	return v;
}

typedef struct msample {
	char id[LH_UUID_STR_LEN + 1];
	int64_t sent_us; /* monotonic */
	int64_t seen_us; /* 0 until the row is visible */
} msample_t;

/* Mark the samples whose rows are visible now; returns how many are still pending. Only the
 * oldest M_POLL_WINDOW pending samples are asked about: rows become visible roughly in production
 * order (one batch of skew is ~40 samples), and asking about all of them every 10 ms made the
 * measurement itself a large share of the machine's CPU (thousands of ids per query, and a
 * quadratic match here). A sample seen out of order beyond the window is timed when the window
 * reaches it, so the lag figures can only err high. */
#define M_POLL_WINDOW 256
static size_t m_poll_samples(ts_stack_t *ts, msample_t *s, size_t n, size_t *first_pending,
			     lh_buf_t *arr)
{
	PGresult *r;
	const char *param;
	size_t pending = 0, asked = 0, end = *first_pending;
	int64_t now;
	lh_buf_reset(arr);
	lh_buf_appends(arr, "{");
	for (size_t i = *first_pending; i < n; i++)
		if (!s[i].seen_us) {
			pending++;
			if (asked < M_POLL_WINDOW) {
				lh_buf_printf(arr, "%s%s", asked ? "," : "", s[i].id);
				asked++;
				end = i + 1;
			}
		}
	lh_buf_appends(arr, "}");
	if (!asked)
		return 0;
	param = arr->data;
	r = PQexecParams(ts->pg, "SELECT id::text FROM events WHERE id = ANY($1::uuid[])", 1, NULL,
			 &param, NULL, NULL, 0);
	now = lh_mono_us();
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		for (int row = 0; row < PQntuples(r); row++) {
			const char *id = PQgetvalue(r, row, 0);
			for (size_t i = *first_pending; i < end; i++)
				if (!s[i].seen_us && strcmp(s[i].id, id) == 0) {
					s[i].seen_us = now;
					pending--;
					break;
				}
		}
	PQclear(r);
	while (*first_pending < n && s[*first_pending].seen_us)
		(*first_pending)++;
	return pending;
}

static double proc_cpu_s(pid_t pid);

/* CPU seconds (utime + stime) of every other client backend of the bench's database: with a
 * private server during the run, the materializer's connections. PostgreSQL runs on this host
 * (loopback), so /proc has them. Returns -1 when none is readable. */
static double m_backends_cpu_s(ts_stack_t *ts, int *ret_n)
{
	PGresult *r = PQexec(ts->pg, "SELECT pid FROM pg_stat_activity WHERE datname = "
				     "current_database() AND backend_type = 'client backend' AND "
				     "pid <> pg_backend_pid()");
	double sum = -1;
	int n = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		for (int i = 0; i < PQntuples(r); i++) {
			double c = proc_cpu_s((pid_t)atoi(PQgetvalue(r, i, 0)));
			if (c >= 0) {
				sum = (sum < 0 ? 0 : sum) + c;
				n++;
			}
		}
	PQclear(r);
	*ret_n = n;
	return sum;
}

/* url with its database replaced by db, as a key=value connection string (PQconninfoParse reads
 * URLs and key=value strings alike). 0 on success. */
static int m_db_url(const char *url, const char *db, lh_buf_t *out)
{
	char *msg = NULL;
	PQconninfoOption *o = PQconninfoParse(url, &msg), *p;
	if (!o) {
		fprintf(stderr, "lh-bench: LH_PG_URL: %s", msg ? msg : "cannot be parsed\n");
		PQfreemem(msg);
		return -1;
	}
	lh_buf_reset(out);
	for (p = o; p->keyword; p++) {
		const char *v = strcmp(p->keyword, "dbname") == 0 ? db : p->val;
		if (!v)
			continue;
		lh_buf_printf(out, "%s%s='", out->len ? " " : "", p->keyword);
		for (const char *c = v; *c; c++) {
			if (*c == '\'' || *c == '\\')
				lh_buf_append(out, "\\", 1);
			lh_buf_append(out, c, 1);
		}
		lh_buf_append(out, "'", 1);
	}
	PQconninfoFree(o);
	return 0;
}

/* build_root's lh-materializer --migrate-only on url; 0 when it exits 0. */
static int m_migrate(const char *build_root, const char *url)
{
	char exe[1024];
	int st = -1;
	pid_t pid;
	snprintf(exe, sizeof(exe), "%s/materializer/lh-materializer", build_root);
	pid = fork();
	if (pid == 0) {
		execl(exe, exe, "--migrate-only", "--pg-url", url, "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "lh-bench: %s --migrate-only failed\n", exe);
		return -1;
	}
	return 0;
}

/* CREATE (create) or DROP (WITH FORCE) database db, connected to url's own database. */
static int m_admin_db(const char *url, const char *db, bool create)
{
	PGconn *c = PQconnectdb(url);
	char *id = NULL, sql[256];
	PGresult *r;
	int rc = -1;
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "lh-bench: %s", PQerrorMessage(c));
		goto out;
	}
	if (!(id = PQescapeIdentifier(c, db, strlen(db))))
		goto out;
	snprintf(sql, sizeof(sql), create ? "CREATE DATABASE %s" : "DROP DATABASE IF EXISTS %s "
								     "WITH (FORCE)",
		 id);
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_COMMAND_OK)
		rc = 0;
	else
		fprintf(stderr, "lh-bench: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
out:
	PQfreemem(id);
	PQfinish(c);
	return rc;
}

static int bench_materialize(int argc, char **argv, const char *build_root)
{
	double pg_cpu0, pg_cpu1, mat_cpu0, mat_cpu1;
	int npg0 = 0, npg1 = 0;
	int nevents = 200000, width = 6, rate = 0, every = 50, timeout_s = 900, c, rc = 1;
	long naive_max = -1; /* --naive-events: events the baseline inserts (-1: all, 0: skip) */
	bool shared_db = false;
	static const struct option opts[] = {{"events", 1, 0, 'e'},	 {"width", 1, 0, 'w'},
					      {"rate", 1, 0, 'r'},	 {"timeout", 1, 0, 't'},
					      {"naive-events", 1, 0, 'n'}, {"shared-db", 0, 0, 's'},
					      {0, 0, 0, 0}};
	const char *url0 = getenv("LH_PG_URL");
	char db[64] = "";
	lh_buf_t dburl;
	ts_stack_t ts;
	mplan_t *plans = NULL, warm;
	msample_t *samples = NULL;
	size_t nsamples = 0, first_pending = 0;
	int nplans, per_plan, wave = 64, mat;
	char topic[LH_TOPIC_MAX], group[96];
	const char *gparam[1] = {group};
	lh_buf_t scratch, arr;
	lh_error_t err = {0};
	int64_t produced = 0, t0, t_done = 0, deadline, last_poll = 0;
	double *lag = NULL;
	size_t nlag = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'e')
			nevents = atoi(optarg);
		else if (c == 'w')
			width = atoi(optarg);
		else if (c == 'r')
			rate = atoi(optarg);
		else if (c == 't')
			timeout_s = atoi(optarg);
		else if (c == 'n')
			naive_max = atol(optarg);
		else if (c == 's')
			shared_db = true;
		else {
			fprintf(stderr, "usage: lh-bench materialize [--events N] [--width W] "
					"[--rate EVENTS_PER_S] [--timeout S] [--naive-events N] "
					"[--shared-db]\n");
			return 2;
		}
	}
	if (nevents < 100 || nevents > 10000000 || width < 1 || width > 200 || rate < 0 ||
	    naive_max < -1) {
		fprintf(stderr, "lh-bench materialize: --events must be 100..10000000, --width "
				"1..200, --rate >= 0, --naive-events >= 0\n");
		return 2;
	}
	per_plan = 3 * width + 11;
	nplans = (nevents + per_plan - 1) / per_plan;
	nevents = nplans * per_plan;
	plans = calloc((size_t)nplans, sizeof(*plans));
	samples = calloc((size_t)nevents / (size_t)every + 1, sizeof(*samples));
	for (int i = 0; i < nplans; i++)
		m_gen_plan(&plans[i], width, i);
	m_gen_plan(&warm, 1, -1);
	printf("# %d events: %d plans of %d act tasks, produced in waves of %d plans\n", nevents,
	       nplans, width, wave);

	/* A database of its own (dropped at the end), so that the figures do not depend on what
	 * earlier runs left in LH_PG_URL's: every index is as small as on a new system. --shared-db
	 * measures in LH_PG_URL's database instead, rows of earlier runs and all. */
	lh_buf_init(&dburl);
	if (!shared_db && url0 && *url0) {
		snprintf(db, sizeof(db), "lh_bench_%ld", (long)getpid());
		if (m_db_url(url0, db, &dburl) || m_admin_db(url0, db, true)) {
			lh_buf_finish(&dburl);
			rc = 1;
			goto out_plans;
		}
		setenv("LH_PG_URL", dburl.data, 1);
		/* migrated now (by the materializer under test: its schema), so the bench's own
		 * queries never race the materializer's start */
		if (m_migrate(build_root, dburl.data)) {
			rc = 1;
			goto out_db;
		}
	}
	printf("# database: %s\n", *db ? db : "LH_PG_URL's own (--shared-db)");
	if ((rc = ts_init(&ts, build_root))) {
		rc = rc == TS_SKIP ? 2 : rc;
		goto out_db;
	}
	rc = 1;
	lh_buf_init(&scratch);
	lh_buf_init(&arr);
	lh_topic(ts.prefix, "events", topic, NULL);
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	mat = ts_spawn_materializer(&ts);

	/* warm up: the materializer has joined its group and written a batch */
	lh_bus_emit(ts.producer, topic, &warm.ev[0], false, &scratch, NULL, &err);
	lh_kafka_flush(ts.producer, 10000, &err);
	deadline = lh_mono_us() + 60 * 1000000LL;
	while (m_sql_i64(&ts, "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
			      "WHERE consumer = $1", 1, gparam) < 1 && lh_mono_us() < deadline)
		lh_kafka_poll(ts.producer, 20);

	/* produce (paced when --rate is given), sampling every `every`-th event's visibility */
	pg_cpu0 = m_backends_cpu_s(&ts, &npg0);
	mat_cpu0 = proc_cpu_s(ts.procs[mat].pid);
	t0 = lh_mono_us();
	deadline = t0 + (int64_t)timeout_s * 1000000;
	for (int w0 = 0; w0 < nplans; w0 += wave) {
		int w1 = w0 + wave < nplans ? w0 + wave : nplans;
		for (int e = 0; e < per_plan; e++)
			for (int i = w0; i < w1; i++) {
				lh_event_t *ev = &plans[i].ev[e];
				if (lh_bus_emit(ts.producer, topic, ev, false, &scratch, NULL, &err)) {
					fprintf(stderr, "lh-bench: %s\n", err.msg);
					goto out_stack;
				}
				if (produced % every == 0) {
					lh_uuid_fmt(&ev->id, samples[nsamples].id);
					samples[nsamples++].sent_us = lh_mono_us();
				}
				produced++;
				while (rate > 0 && produced * 1000000 / rate > lh_mono_us() - t0) {
					lh_kafka_poll(ts.producer, 1);
					if (lh_mono_us() - last_poll > 10000) {
						m_poll_samples(&ts, samples, nsamples, &first_pending,
							       &arr);
						last_poll = lh_mono_us();
					}
				}
				if (produced % 1000 == 0) {
					lh_kafka_poll(ts.producer, 0);
					if (lh_mono_us() - last_poll > 10000) {
						m_poll_samples(&ts, samples, nsamples, &first_pending,
							       &arr);
						last_poll = lh_mono_us();
					}
				}
			}
	}
	lh_kafka_flush(ts.producer, 60000, &err);
	printf("# produced %lld events in %.2f s\n", (long long)produced,
	       (double)(lh_mono_us() - t0) / 1e6);
	/* until every event is stored: the stored offsets cover the warm-up event and the rest */
	while (lh_mono_us() < deadline) {
		int64_t stored = m_sql_i64(&ts, "SELECT coalesce(sum(next_offset), 0) FROM "
						"consumer_offsets WHERE consumer = $1", 1, gparam);
		m_poll_samples(&ts, samples, nsamples, &first_pending, &arr);
		if (stored >= produced + 1) {
			t_done = lh_mono_us();
			break;
		}
		if (ts_wait_exit(&ts, mat, 0) >= 0) {
			fprintf(stderr, "lh-bench: lh-materializer exited; see %s\n", ts.log_dir);
			goto out_stack;
		}
		msleep_ms(10);
	}
	while (m_poll_samples(&ts, samples, nsamples, &first_pending, &arr) && t_done &&
	       lh_mono_us() < deadline)
		msleep_ms(10);
	if (!t_done) {
		fprintf(stderr, "lh-bench: not every event was stored within %d s\n", timeout_s);
		goto out_stack;
	}
	pg_cpu1 = m_backends_cpu_s(&ts, &npg1);
	mat_cpu1 = proc_cpu_s(ts.procs[mat].pid);
	lag = calloc(nsamples + 1, sizeof(double));
	for (size_t i = 0; i < nsamples; i++)
		if (samples[i].seen_us)
			lag[nlag++] = (double)(samples[i].seen_us - samples[i].sent_us) / 1000.0;
	{
		double secs = (double)(t_done - t0) / 1e6;
		printf("figure events %lld count\n", (long long)produced);
		printf("figure materialize_events_per_s %.0f events/s\n", (double)produced / secs);
		printf("figure lag_p50_ms %.1f ms\n", pct(lag, nlag, 0.50));
		printf("figure lag_p99_ms %.1f ms\n", pct(lag, nlag, 0.99));
		/* CPU per event: robust where throughput is not (the machine is shared) */
		if (pg_cpu0 >= 0 && pg_cpu1 >= 0 && npg0 == npg1)
			printf("figure pg_cpu_us_per_event %.1f us\n"
			       "figure pg_cpu_cores %.2f cores\n",
			       (pg_cpu1 - pg_cpu0) * 1e6 / (double)produced,
			       (pg_cpu1 - pg_cpu0) / secs);
		else
			printf("# pg_cpu_us_per_event: backends not readable or changed (%d, %d)\n",
			       npg0, npg1);
		if (mat_cpu0 >= 0 && mat_cpu1 >= 0)
			printf("figure materializer_cpu_us_per_event %.1f us\n",
			       (mat_cpu1 - mat_cpu0) * 1e6 / (double)produced);
	}
	ts_kill(&ts, mat, SIGTERM);
	ts_wait_exit(&ts, mat, 20000);

	/* the naive baseline: the same events (the first --naive-events of them), one autocommitted
	 * INSERT each, into a scratch copy of the events table (so the run leaves no rows behind) */
	if (naive_max != 0) {
		PGresult *r = PQexec(ts.pg, "SET client_min_messages = warning; DROP TABLE IF EXISTS "
					    "lh_bench_naive_events; CREATE TABLE "
					    "lh_bench_naive_events (LIKE events INCLUDING ALL)");
		int64_t n = 0, t1;
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "lh-bench: %s", PQerrorMessage(ts.pg));
			PQclear(r);
			goto out_stack;
		}
		PQclear(r);
		t1 = lh_mono_us();
		for (int w0 = 0; w0 < nplans && (naive_max < 0 || n < naive_max); w0 += wave) {
			int w1 = w0 + wave < nplans ? w0 + wave : nplans;
			for (int e = 0; e < per_plan && (naive_max < 0 || n < naive_max); e++)
				for (int i = w0; i < w1 && (naive_max < 0 || n < naive_max); i++) {
					json_t *j = lh_event_to_json(&plans[i].ev[e]);
					char *text;
					const char *param;
					json_object_set_new(j, "topic", json_string(topic));
					json_object_set_new(j, "partition", json_integer(0));
					json_object_set_new(j, "offset", json_integer(n));
					text = json_dumps(j, JSON_COMPACT);
					param = text;
					r = PQexecParams(
						ts.pg,
						"INSERT INTO lh_bench_naive_events (id, plan_id, type, "
						"task_no, attempt, ts, tenant, actor_kind, actor_id, "
						"causation_id, body, topic, partition, \"offset\") "
						"SELECT (e->>'id')::uuid, (e->>'plan_id')::uuid, "
						"e->>'type', (e->>'task_no')::integer, "
						"(e->>'attempt')::integer, "
						"to_timestamp((e->>'ts_us')::bigint / 1000000.0), "
						"coalesce(e->>'tenant', 'default'), e->'actor'->>'kind', "
						"e->'actor'->>'id', (e->>'causation_id')::uuid, e->'body', "
						"e->>'topic', (e->>'partition')::integer, "
						"(e->>'offset')::bigint FROM (SELECT $1::jsonb e) s",
						1, NULL, &param, NULL, NULL, 0);
					if (PQresultStatus(r) != PGRES_COMMAND_OK)
						fprintf(stderr, "lh-bench: %s", PQerrorMessage(ts.pg));
					PQclear(r);
					free(text);
					json_decref(j);
					n++;
				}
		}
		printf("figure naive_events_per_s %.0f events/s\n",
		       (double)n / ((double)(lh_mono_us() - t1) / 1e6));
		PQclear(PQexec(ts.pg, "DROP TABLE IF EXISTS lh_bench_naive_events"));
	}
	rc = 0;
out_stack:
	free(lag);
	lh_buf_finish(&scratch);
	lh_buf_finish(&arr);
	ts_finish(&ts);
out_db:
	if (*db && m_admin_db(url0, db, false))
		rc = 1;
	lh_buf_finish(&dburl);
out_plans:
	for (int i = 0; i < nplans; i++)
		lh_arena_free(plans[i].arena);
	lh_arena_free(warm.arena);
	free(plans);
	free(samples);
	return rc;
}

/* --- worker: one lh-worker against fakellm, orders produced straight to lh.tasks.fast ---------- */

typedef struct wbench {
	lh_idmap_t orders; /* plan id -> index + 1 */
	int64_t *started_us, *done_us;
	int succeeded, failed;
	int64_t last_done_us;
} wbench_t;

static wbench_t W;

static void on_worker_event(void *opaque, const lh_kafka_msg_t *msg)
{
	lh_event_t *ev;
	intptr_t i;
	if (lh_event_decode(msg->payload, msg->len, &ev, NULL))
		return;
	i = (intptr_t)lh_idmap_get(&W.orders, &ev->plan_id) - 1;
	if (i >= 0) {
		if (ev->type == LH_EV_ATTEMPT_STARTED)
			W.started_us[i] = ev->ts_us;
		else if ((ev->type == LH_EV_ATTEMPT_SUCCEEDED || ev->type == LH_EV_ATTEMPT_FAILED) &&
			 !W.done_us[i]) {
			W.done_us[i] = ev->ts_us;
			if (ev->type == LH_EV_ATTEMPT_SUCCEEDED)
				W.succeeded++;
			else
				W.failed++;
			if (ev->ts_us > W.last_done_us)
				W.last_done_us = ev->ts_us;
		}
	}
	lh_event_free(ev);
}

/* utime + stime of a process, in seconds (-1 when unreadable). */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A /proc/PID/status field in kB (-1 when absent). */
static long proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	size_t fl = strlen(field);
	FILE *f;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			v = atol(line + fl + 1);
	fclose(f);
	return v;
}

typedef struct hget {
	struct event_base *base;
	lh_buf_t body;
	long status;
	double ms;
} hget_t;

static void on_hget(lh_http_resp_t *resp, void *opaque)
{
	hget_t *h = opaque;
	h->status = resp->error.code ? -1 : resp->status;
	h->ms = resp->total_ms;
	lh_buf_reset(&h->body);
	if (resp->body.len)
		lh_buf_append(&h->body, resp->body.data, resp->body.len);
	event_base_loopbreak(h->base);
}

/* One HTTP exchange, waited for (the bench has no loop of its own). */
static long hrun(lh_http_t *http, hget_t *h, const char *url, const char *body)
{
	lh_http_req_t req = {.url = url, .body = body, .body_len = body ? strlen(body) : 0};
	const char *hdr[] = {"Content-Type: application/json"};
	lh_error_t err = {0};
	req.headers = hdr;
	req.n_headers = body ? 1 : 0;
	h->status = -1;
	if (lh_http_request(http, &req, on_hget, h, NULL, &err))
		return -1;
	event_base_dispatch(h->base);
	return h->status;
}

static int bench_worker_run(int argc, char **argv, const char *build_root, bool overhead)
{
	int n = overhead ? 2000 : 6000, latency = overhead ? 0 : 2000, inflight = 2000;
	int timeout_s = 300, rc, c, spin = 0, widx;
	bool no_baseline = false;
	ts_stack_t ts;
	lh_kafka_t *reader = NULL;
	lh_kafka_opts_t ko = {0};
	lh_kafka_part_t parts[8];
	char topic[LH_TOPIC_MAX], orders[LH_TOPIC_MAX], url[128], ib[16], stats[160];
	lh_error_t err = {0};
	lh_buf_t scratch;
	hget_t h = {0};
	lh_http_t *http;
	double cpu0, cpu1, *lat;
	int64_t t0_us, t0_mono;
	size_t nlat = 0;
	pid_t wpid;
	struct rlimit rl;
	static const struct option opts[] = {{"orders", 1, 0, 'n'}, {"latency-ms", 1, 0, 'l'},
					      {"max-inflight", 1, 0, 'i'}, {"timeout", 1, 0, 't'},
					      {0, 0, 0, 0}};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			n = atoi(optarg);
		else if (c == 'l')
			latency = atoi(optarg);
		else if (c == 'i')
			inflight = atoi(optarg);
		else if (c == 't')
			timeout_s = atoi(optarg);
		else {
			fprintf(stderr, "usage: lh-bench %s [--orders N] [--latency-ms MS] "
					"[--max-inflight N] [--timeout S]\n",
				overhead ? "worker-overhead" : "worker");
			return 2;
		}
	}
	if (overhead)
		inflight = 1; /* one call at a time: latency, not queueing */
	if (n < 1 || n > 1000000 || latency < 0 || inflight < 1 || inflight > 100000) {
		fprintf(stderr, "lh-bench: --orders 1..1000000, --latency-ms >= 0, --max-inflight "
				"1..100000\n");
		return 2;
	}
	/* a thousand connections need a thousand descriptors, in the worker too (inherited) */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((rc = ts_init(&ts, build_root)))
		return rc == TS_SKIP ? 2 : rc;
	if (ts_fakellm_with(&ts, latency, NULL, url)) {
		ts_finish(&ts);
		return 1;
	}
	snprintf(ib, sizeof(ib), "%d", inflight);
	widx = ts_spawn_worker_url(&ts, "fast", url, "--max-inflight", ib, "--stats-interval", "0",
				   NULL);
	wpid = ts.procs[widx].pid;

	lh_idmap_init(&W.orders);
	W.started_us = calloc((size_t)n, sizeof(int64_t));
	W.done_us = calloc((size_t)n, sizeof(int64_t));
	lat = calloc((size_t)n, sizeof(double));
	lh_topic(ts.prefix, "events", topic, NULL);
	lh_topic_tasks(ts.prefix, "fast", orders, NULL);
	ko.brokers = ts.brokers;
	ko.client_id = "lh-bench";
	ko.group_id = "lh-bench-reader";
	ko.on_message = on_worker_event;
	if (lh_kafka_new(&ko, &reader, &err)) {
		fprintf(stderr, "lh-bench: %s\n", err.msg);
		ts_finish(&ts);
		return 1;
	}
	for (int i = 0; i < 8; i++)
		parts[i] = (lh_kafka_part_t){topic, i, LH_KAFKA_OFFSET_END};
	lh_kafka_assign(reader, parts, 8, &err);
	h.base = event_base_new();
	lh_buf_init(&h.body);
	lh_buf_init(&scratch);
	http = lh_http_new(h.base, NULL, &err);
	{
		/* the worker is up when it has joined its group; a warm-up order tells */
		lh_id_t id = lh_uuid7_new();
		lh_task_order_t o = {.kind = "act", .tier = "fast", .instructions = "warm up"};
		lh_event_t ev = {.v = LH_ENVELOPE_VERSION, .type = LH_EV_TASK_ORDER, .plan_id = id,
				 .task_no = 1, .attempt = 1, .ts_us = lh_now_us(),
				 .tenant = "default", .actor = {"coordinator", "lh-bench"},
				 .id = lh_uuid7_new(), .body = &o};
		lh_idmap_put(&W.orders, &id, (void *)(intptr_t)1);
		lh_bus_emit(ts.producer, orders, &ev, true, &scratch, NULL, &err);
		lh_kafka_flush(ts.producer, 10000, &err);
		while (!W.done_us[0] && spin++ < 600)
			lh_kafka_poll(reader, 100);
		lh_idmap_del(&W.orders, &id);
		W.done_us[0] = W.started_us[0] = 0;
		W.succeeded = W.failed = 0;
		spin = 0;
	}
	snprintf(stats, sizeof(stats), "%.*s/reset", (int)(strlen(url) - 3), url);
	hrun(http, &h, stats, "{}");
	cpu0 = proc_cpu_s(wpid);
	t0_us = lh_now_us();
	t0_mono = lh_mono_us();
	for (int i = 0; i < n; i++) {
		lh_id_t id = lh_uuid7_new();
		char instr[96];
		lh_task_order_t o = {.kind = "act", .tier = "fast", .instructions = instr,
				     .goal = "benchmark the worker", .dispatched_ts_us = lh_now_us()};
		lh_event_t ev = {.v = LH_ENVELOPE_VERSION, .type = LH_EV_TASK_ORDER, .plan_id = id,
				 .task_no = 1, .attempt = 1, .ts_us = lh_now_us(),
				 .tenant = "default", .actor = {"coordinator", "lh-bench"},
				 .id = lh_uuid7_new(), .body = &o};
		snprintf(instr, sizeof(instr), "Summarize item %d in one line", i);
		lh_idmap_put(&W.orders, &id, (void *)(intptr_t)(i + 1));
		while (lh_bus_emit(ts.producer, orders, &ev, true, &scratch, NULL, &err))
			lh_kafka_poll(ts.producer, 10);
		if (overhead) { /* one order at a time */
			lh_kafka_flush(ts.producer, 10000, &err);
			while (!W.done_us[i] && spin < timeout_s * 1000)
				if (lh_kafka_poll(reader, 1) == 0)
					spin++;
		} else if (i % 256 == 0)
			lh_kafka_poll(reader, 0);
	}
	lh_kafka_flush(ts.producer, 30000, &err);
	while (W.succeeded + W.failed < n && spin < timeout_s * 10)
		if (lh_kafka_poll(reader, 100) == 0)
			spin++;
	cpu1 = proc_cpu_s(wpid);
	for (int i = 0; i < n; i++)
		if (W.started_us[i] && W.done_us[i])
			lat[nlat++] = (double)(W.done_us[i] - W.started_us[i]);
	{
		double wall = (double)(lh_mono_us() - t0_mono) / 1e6;
		double span = (double)(W.last_done_us - t0_us) / 1e6;
		long max_in_flight = -1;
		json_t *j;
		snprintf(stats, sizeof(stats), "%.*s/stats", (int)(strlen(url) - 3), url);
		if (hrun(http, &h, stats, NULL) == 200 &&
		    (j = json_loadb(h.body.data, h.body.len, 0, NULL))) {
			max_in_flight = (long)json_integer_value(json_object_get(j, "max_in_flight"));
			json_decref(j);
		}
		printf("# %d orders: %d succeeded, %d failed, %d missing; fakellm latency %d ms\n", n,
		       W.succeeded, W.failed, n - W.succeeded - W.failed, latency);
		printf("figure orders %d count\n", n);
		if (!overhead) {
			printf("figure inflight_max %ld calls\n", max_in_flight);
			printf("figure completions_per_s %.1f attempts/s\n",
			       span > 0 ? W.succeeded / span : 0);
			printf("figure worker_cpu_cores %.3f cores\n",
			       wall > 0 ? (cpu1 - cpu0) / wall : 0);
			printf("figure worker_rss_mib %.1f MiB\n",
			       (double)proc_status_kb(wpid, "VmHWM") / 1024.0);
			printf("figure attempt_p50_ms %.1f ms\n", pct(lat, nlat, 0.50) / 1000.0);
			printf("figure attempt_p99_ms %.1f ms\n", pct(lat, nlat, 0.99) / 1000.0);
		} else {
			/* the same request straight from here, one at a time: the model's own time. The
			 * body is the worker's own last request (tools, schema and all, as fakellm
			 * received it), so that fakellm's work on it is not counted as the worker's. */
			char chat[160], *body = NULL;
			size_t nd = n < 2000 ? (size_t)n : 2000;
			double *direct = calloc(nd, sizeof(double)), w50, d50;
			snprintf(chat, sizeof(chat), "%.*s/last-chat", (int)(strlen(url) - 3), url);
			if (hrun(http, &h, chat, NULL) != 200 ||
			    !(body = strndup(h.body.data, h.body.len))) {
				fprintf(stderr, "lh-bench: fakellm has no last chat request\n");
				no_baseline = true;
				nd = 0;
			} else
				printf("# baseline body: the worker's last request, %zu bytes\n",
				       strlen(body));
			snprintf(chat, sizeof(chat), "%s/chat/completions", url);
			for (size_t i = 0; i < nd; i++) {
				int64_t s = lh_mono_us();
				hrun(http, &h, chat, body);
				direct[i] = (double)(lh_mono_us() - s);
			}
			w50 = pct(lat, nlat, 0.50);
			d50 = pct(direct, nd, 0.50);
			printf("figure worker_attempt_p50_us %.0f us\n", w50);
			printf("figure worker_attempt_p99_us %.0f us\n", pct(lat, nlat, 0.99));
			printf("figure direct_call_p50_us %.0f us\n", d50);
			printf("figure overhead_p50_us %.0f us\n", w50 - d50);
			printf("figure worker_cpu_us_per_attempt %.0f us\n",
			       W.succeeded ? (cpu1 - cpu0) * 1e6 / W.succeeded : 0);
			free(direct);
			free(body);
		}
	}
	rc = W.succeeded == n && !no_baseline ? 0 : 1;
	lh_http_free(http);
	event_base_free(h.base);
	lh_buf_finish(&h.body);
	lh_buf_finish(&scratch);
	free(lat);
	free(W.started_us);
	free(W.done_us);
	lh_idmap_finish(&W.orders);
	lh_kafka_free(reader);
	ts_finish(&ts);
	return rc;
}

int lh_bench_context(int argc, char **argv);
int lh_bench_consolidate(int argc, char **argv);

/* recall: the memory retrieval fixture (tests/fixtures/memory) loaded into a fresh tenant of the
 * PostgreSQL named by LH_PG_URL; recall@5 of full-text, vector and hybrid search, with the hashing
 * embedder or, given --embed-url, an OpenAI-compatible /v1/embeddings endpoint. */
static int bench_recall(int argc, char **argv)
{
	const char *url = getenv("LH_PG_URL");
	static int64_t ids[LH_FX_NMEMORIES];
	char tenant[64], tid[LH_UUID_STR_LEN + 1];
	lh_pg_t *pg = NULL;
	lh_embedder_t *emb = NULL;
	lh_embedder_cfg_t ecfg = {.max_retries = -1};
	lh_error_t err;
	double r[3];
	static const char *const names[] = {"recall5_fulltext", "recall5_vector", "recall5_hybrid"};
	static const lh_memory_mode_t modes[] = {LH_MEMORY_FULLTEXT, LH_MEMORY_VECTOR,
						 LH_MEMORY_HYBRID};
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--embed-url") == 0)
			ecfg.url = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--embed-model") == 0)
			ecfg.model = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--embed-query-model") == 0)
			ecfg.query_model = argv[++i];
		else {
			fprintf(stderr, "usage: lh-bench recall [--embed-url URL --embed-model M "
				"[--embed-query-model M]]\n");
			return 2;
		}
	}
	if (!url || !*url) {
		fprintf(stderr, "lh-bench recall: LH_PG_URL is not set\n");
		return 2;
	}
	lh_id_t t = lh_uuid7_new();
	lh_uuid_fmt(&t, tid);
	snprintf(tenant, sizeof(tenant), "bench-recall-%s", tid);
	if (lh_embedder_new(&ecfg, &emb, &err) != LH_OK || lh_pg_connect(url, &pg, &err) != LH_OK ||
	    lh_pg_migrate(pg, NULL, &err) != LH_OK ||
	    lh_fx_recall_load(pg, emb, tenant, ids, &err) != LH_OK)
		goto fail;
	for (int i = 0; i < 3; i++)
		if (lh_fx_recall_measure(pg, emb, tenant, ids, 5, modes[i], &r[i], &err) != LH_OK)
			goto fail;
	printf("figure embedder %s name\n", lh_embedder_name(emb));
	for (int i = 0; i < 3; i++)
		printf("figure %s %.2f ratio\n", names[i], r[i]);
	lh_pg_free(pg);
	lh_embedder_free(emb);
	return 0;
fail:
	fprintf(stderr, "lh-bench recall: %s\n", err.msg);
	lh_pg_free(pg);
	lh_embedder_free(emb);
	return 1;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: lh-bench NAME [options]\n\n"
		     "Benchmarks against the real Kafka and PostgreSQL named by LH_KAFKA_BROKERS and "
		     "LH_PG_URL.\nEach figure is printed as `figure NAME VALUE UNIT`.\n\n"
		     "  e2e [--plans N] [--width W] [--timeout S]\n"
		     "      N plans of W parallel tasks on the scripted model: tasks_per_s,\n"
		     "      dispatch_p50_ms, dispatch_p99_ms, plan_p50_ms\n"
		     "  fold [--plans N] [--width W]\n"
		     "      the coordinator's fold + reconcile in-process: fold_events_per_s,\n"
		     "      state_bytes_per_task (no services needed)\n"
		     "  recovery [--plans N] [--tasks N]\n"
		     "      kill -9 a coordinator holding N active tasks (no worker takes them),\n"
		     "      restart it: recovery_first_dispatch_ms (restart to the next dispatch)\n"
		     "  materialize [--events N] [--width W] [--rate EVENTS_PER_S] [--naive-events N]\n"
		     "              [--shared-db]\n"
		     "      N synthetic events through lh-materializer: materialize_events_per_s,\n"
		     "      lag_p50_ms, lag_p99_ms (produced -> row visible), naive_events_per_s\n"
		     "      (one autocommitted INSERT per event, same events); in a new database\n"
		     "      of its own, dropped at the end, unless --shared-db (LH_PG_URL's)\n"
		     "  worker [--orders N] [--latency-ms MS] [--max-inflight N]\n"
		     "      one lh-worker against fakellm, N work orders produced at once:\n"
		     "      inflight_max, completions_per_s, worker_cpu_cores, worker_rss_mib\n"
		     "  worker-overhead [--orders N]\n"
		     "      fakellm at zero latency, one order at a time: overhead_p50_us (attempt\n"
		     "      started -> succeeded minus the same call made directly)\n"
		     "  recall [--embed-url URL --embed-model M [--embed-query-model M]]\n"
		     "      the memory fixture (200 facts, 50 questions) in PostgreSQL only:\n"
		     "      recall5_fulltext, recall5_vector, recall5_hybrid\n"
		     "  context [--memories N] [--messages N] [--tenants N] [--queries N]\n"
		     "      memory search + layered context assembly, PostgreSQL only:\n"
		     "      context_p50_ms, context_p95_ms, context_p99_ms, retrieval_p95_ms\n"
		     "  consolidate [--plans N] [--tasks T] [--ticks R]\n"
		     "      the coordinator's idle-time consolidate schedule, in process:\n"
		     "      consolidate_tick_new_bucket_p50_ms, consolidate_tick_steady_p50_ms,\n"
		     "      consolidate_order_build_encode_us\n\n"
		     "The daemons are taken from the build directory (LH_BUILD_ROOT, default: the\n"
		     "parent of this executable's directory).\n");
}

int main(int argc, char **argv)
{
	char root[512];
	const char *env = getenv("LH_BUILD_ROOT");
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	/* the integration stack's round check (materializer.check_rounds) costs PostgreSQL time */
	setenv("LH_MATERIALIZER_CHECK_ROUNDS", "false", 1);
	if (env)
		snprintf(root, sizeof(root), "%s", env);
	else {
		ssize_t n = readlink("/proc/self/exe", root, sizeof(root) - 1);
		char *slash;
		root[n > 0 ? n : 0] = 0;
		for (int i = 0; i < 2 && (slash = strrchr(root, '/')); i++)
			*slash = 0; /* build/bench/lh-bench -> build */
	}
	if (strcmp(argv[1], "recovery") == 0)
		return bench_recovery(argc - 1, argv + 1, root);
	if (strcmp(argv[1], "materialize") == 0)
		return bench_materialize(argc - 1, argv + 1, root);
	if (strcmp(argv[1], "fold") == 0)
		return bench_fold(argc - 1, argv + 1);
	if (strcmp(argv[1], "recall") == 0)
		return bench_recall(argc - 1, argv + 1);
	if (strcmp(argv[1], "context") == 0)
		return lh_bench_context(argc - 1, argv + 1); /* bench_context.c */
	if (strcmp(argv[1], "consolidate") == 0)
		return lh_bench_consolidate(argc - 1, argv + 1); /* bench_consolidate.c */
	if (strcmp(argv[1], "e2e") == 0)
		return bench_e2e(argc - 1, argv + 1, root);
	if (strcmp(argv[1], "worker") == 0)
		return bench_worker_run(argc - 1, argv + 1, root, false);
	if (strcmp(argv[1], "worker-overhead") == 0)
		return bench_worker_run(argc - 1, argv + 1, root, true);
	fprintf(stderr, "lh-bench: unknown benchmark \"%s\" (see --help)\n", argv[1]);
	return 2;
}
