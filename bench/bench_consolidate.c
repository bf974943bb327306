/* bench_consolidate.c — `lh-bench consolidate`: what the coordinator's idle-time consolidate
 * schedule (coordinator/consolidate_sched.h) costs its loop. In process, no broker, no database.
 *
 * N plans of T tasks each in an lh_idmap (as lh_state_t keeps them), half idle (tasks succeeded,
 * pending, one waiting for input), half busy (one task running at a random position). One tick
 * is what on_consolidate does minus the produce, as one pass: lh_consolidate_walk over the map in
 * the coordinator's chunks (it slices the pass by time; the bench times the whole pass).
 * Two kinds of tick: at a new bucket (every plan checked for idleness: the worst case, once per
 * interval) and in the steady state (every due plan's order of this bucket already sent: most
 * ticks). Then the order of each idle plan built and encoded (lh_consolidate_order +
 * lh_event_encode), the per-order cost before the producer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "consolidate_sched.h"
#include "idmap.h"
#include "state.h"

int lh_bench_consolidate(int argc, char **argv);

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(double), cmp_d);
	return v[(int)fmin(n - 1, floor(p * n))];
}

/* One whole pass, in the coordinator's chunks (lh_consolidate_walk, 256 plans, 64 due): the due
 * plans counted; when mark, recorded as sent. */
static int tick(lh_idmap_t *map, int64_t now, int64_t interval, bool mark)
{
	size_t it = 0;
	int due = 0;
	bool done = false;
	while (!done) {
		lh_cplan_t *d[64];
		int n = lh_consolidate_walk(map, &it, now, interval, 256, d, 64, &done);
		due += n;
		for (int i = 0; mark && i < n; i++)
			lh_consolidate_sent(d[i], lh_consolidate_bucket(now, interval), now);
	}
	return due;
}

int lh_bench_consolidate(int argc, char **argv)
{
	int nplans = 100000, ntasks = 10, nticks = 30, due = 0;
	int64_t interval = 60, now = lh_now_us();
	lh_idmap_t map;
	lh_cplan_t *plans;
	lh_ctask_t *tasks;
	double *new_ms, *steady_ms, enc_us;
	unsigned seed = 7;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--plans") && i + 1 < argc)
			nplans = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--tasks") && i + 1 < argc)
			ntasks = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ticks") && i + 1 < argc)
			nticks = atoi(argv[++i]);
		else {
			fprintf(stderr, "lh-bench consolidate: unknown option \"%s\"\n", argv[i]);
			return 2;
		}
	}
	if (nplans < 1 || nplans > 10000000 || ntasks < 2 || ntasks > 10000 || nticks < 1 ||
	    nticks > 100000) {
		fprintf(stderr, "lh-bench consolidate: --plans 1..10000000, --tasks 2..10000, "
				"--ticks 1..100000\n");
		return 2;
	}
	plans = calloc((size_t)nplans, sizeof(*plans));
	tasks = calloc((size_t)nplans * (size_t)ntasks, sizeof(*tasks));
	new_ms = calloc((size_t)nticks, sizeof(double));
	steady_ms = calloc((size_t)nticks, sizeof(double));
	if (!plans || !tasks || !new_ms || !steady_ms)
		abort();
	lh_idmap_init(&map);
	for (int i = 0; i < nplans; i++) {
		lh_cplan_t *p = &plans[i];
		p->plan_id = lh_uuid7_new();
		p->tenant = "bench";
		p->goal = "a goal";
		p->status = i % 2 ? LH_PLAN_RUNNING : LH_PLAN_WAITING;
		p->tasks = &tasks[(size_t)i * (size_t)ntasks];
		p->ntasks = ntasks;
		for (int t = 0; t < ntasks; t++) {
			p->tasks[t].task_no = t;
			p->tasks[t].status = t < ntasks / 2 ? LH_TASK_SUCCEEDED : LH_TASK_PENDING;
		}
		if (i % 2) /* busy: one task running somewhere */
			p->tasks[1 + rand_r(&seed) % (unsigned)(ntasks - 1)].status = LH_TASK_RUNNING;
		else
			p->tasks[ntasks / 2].status = LH_TASK_WAITING_FOR_INPUT;
		lh_idmap_put(&map, &p->plan_id, p);
	}
	for (int r = 0; r < nticks; r++) {
		int64_t t0 = lh_mono_us();
		due = tick(&map, now, interval, false);
		new_ms[r] = (double)(lh_mono_us() - t0) / 1000.0;
	}
	tick(&map, now, interval, true);
	for (int r = 0; r < nticks; r++) {
		int64_t t0 = lh_mono_us();
		int d = tick(&map, now + 1000000, interval, false);
		steady_ms[r] = (double)(lh_mono_us() - t0) / 1000.0;
		if (d) {
			fprintf(stderr, "lh-bench consolidate: %d plans due again in the same bucket\n", d);
			return 1;
		}
	}
	{
		lh_buf_t buf;
		lh_arena_t *arena = lh_arena_new(0);
		int64_t t0;
		int n = 0;
		lh_buf_init(&buf);
		t0 = lh_mono_us();
		for (int i = 0; i < nplans; i += 2) {
			lh_event_t ev;
			lh_consolidate_order(&plans[i], lh_consolidate_bucket(now, interval), interval,
					     "fast", now, arena, &ev);
			buf.len = 0;
			if (lh_event_encode(&ev, &buf, NULL)) {
				fprintf(stderr, "lh-bench consolidate: encode failed\n");
				return 1;
			}
			n++;
			if (n % 1024 == 0) {
				lh_arena_free(arena);
				arena = lh_arena_new(0);
			}
		}
		enc_us = (double)(lh_mono_us() - t0) / n;
		lh_arena_free(arena);
		lh_buf_finish(&buf);
	}
	printf("figure consolidate_plans %d plans\n", nplans);
	printf("figure consolidate_tasks_per_plan %d tasks\n", ntasks);
	printf("figure consolidate_due %d plans\n", due);
	printf("figure consolidate_tick_new_bucket_p50_ms %.3f ms\n", pct(new_ms, nticks, 0.5));
	printf("figure consolidate_tick_new_bucket_p95_ms %.3f ms\n", pct(new_ms, nticks, 0.95));
	printf("figure consolidate_tick_steady_p50_ms %.3f ms\n", pct(steady_ms, nticks, 0.5));
	printf("figure consolidate_tick_steady_p95_ms %.3f ms\n", pct(steady_ms, nticks, 0.95));
	printf("figure consolidate_order_build_encode_us %.3f us\n", enc_us);
	lh_idmap_finish(&map);
	free(plans);
	free(tasks);
	free(new_ms);
	free(steady_ms);
	return 0;
}
