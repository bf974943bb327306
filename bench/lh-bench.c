/* lh-bench NAME [options] — Longhaul's benchmarks. Every figure is printed on its own line as
 *   figure NAME VALUE UNIT
 * so scripts can collect them. Benchmarks run against the real Kafka broker and PostgreSQL named
 * by LH_KAFKA_BROKERS and LH_PG_URL (scripts/kafka.sh and scripts/pg.sh start them).
 *
 *   e2e --plans N --width W   N plans of W parallel tasks each (plus the plan and join tasks) on
 *                             the scripted model; figures tasks_per_s, dispatch_p50_ms,
 *                             dispatch_p99_ms (a task becoming ready -> its attempt starting),
 *                             plan_p50_ms (goal submitted -> plan completed). */
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
#include <malloc.h>
#include <time.h>

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
		     "      restart it: recovery_first_dispatch_ms (restart to the next dispatch)\n\n"
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
	if (strcmp(argv[1], "fold") == 0)
		return bench_fold(argc - 1, argv + 1);
	if (strcmp(argv[1], "e2e") == 0)
		return bench_e2e(argc - 1, argv + 1, root);
	fprintf(stderr, "lh-bench: unknown benchmark \"%s\" (see --help)\n", argv[1]);
	return 2;
}
