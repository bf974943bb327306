/* watch.c — lhctl watch PLAN: follow a plan that already runs (submitted by anyone: lhctl run,
 * the REST API, the dashboard) until it finishes.
 *
 * Reads PostgreSQL (what the materializer folded) every --interval-ms: the plan's status and
 * totals, each task's status and the plan's pending requests. Every change is one line (a task
 * that moved, the plan's status, a request waiting for someone, with the command that answers
 * it); on a terminal a live progress bar stays under those lines, elsewhere (a pipe, CI) only the
 * lines are printed. Exit status: 0 completed, 1 failed or cancelled (or not found), 3 when
 * --timeout elapsed first, 130 on Ctrl-C. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "ids.h"
#include "pg.h"

#define BAR_WIDTH 24
#define MAX_TASKS 100000
#define NOT_FOUND_GRACE_MS 15000 /* a plan just submitted is not materialized yet */

typedef struct watch_cfg {
	lh_common_cfg_t common;
	int64_t timeout_s;
	int64_t interval_ms;
} watch_cfg_t;

#define W(f) offsetof(watch_cfg_t, f)
static const lh_cfg_def_t watch_table[] = {
	{"cli.watch_timeout_s", LH_CFG_INT, "0", 0, 31536000, NULL, NULL, "timeout", false, false,
	 "give up after this many seconds (exit 3); 0 waits until the plan finishes",
	 W(timeout_s)},
	{"cli.watch_interval_ms", LH_CFG_INT, "500", 50, 60000, NULL, NULL, "interval-ms", false,
	 false, "how often PostgreSQL is read", W(interval_ms)},
	LH_CFG_END,
};

static const lh_cfg_spec_t watch_spec = {
	.prog = "lhctl watch",
	.usage = "PLAN [--timeout S] [--interval-ms N]",
	.summary = "Follows a running plan until it finishes: one line per change (tasks, the plan's "
		   "status, requests waiting for an answer) and, on a terminal, a live progress bar. "
		   "Exit 0 completed, 1 failed or cancelled, 3 on --timeout.",
	.tables = {lh_config_common_table, watch_table, NULL},
};

typedef struct watch {
	bool tty, bar_shown;
	char plan[LH_UUID_STR_LEN + 1];
	char status[32];
	char **task_status; /* by task number; NULL = not seen */
	int ntasks;
	char **seen_requests;
	int nseen;
	int64_t t0_us;
} watch_t;

static void clear_bar(watch_t *w)
{
	if (w->bar_shown) {
		fputs("\r\033[K", stdout);
		w->bar_shown = false;
	}
}

static void say(watch_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(watch_t *w, const char *fmt, ...)
{
	va_list ap;
	clear_bar(w);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void draw_bar(watch_t *w, long long done, long long total, long long tokens,
		     const char *cost)
{
	char bar[BAR_WIDTH + 1], tok[32], dur[32];
	int fill = total > 0 ? (int)(BAR_WIDTH * done / total) : 0;
	if (!w->tty)
		return;
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = 0;
	fputs("\r\033[K", stdout);
	printf("[%s] %lld/%lld tasks  %s  %s tokens  $%.4f  %s", bar, done, total, w->status,
	       lhctl_fmt_int(tok, tokens), strtod(cost, NULL),
	       lhctl_fmt_dur(dur, (lh_mono_us() - w->t0_us) / 1000));
	fflush(stdout);
	w->bar_shown = true;
}

static bool terminal(const char *status)
{
	return !strcmp(status, "completed") || !strcmp(status, "failed") ||
	       !strcmp(status, "cancelled");
}

/* Tasks that changed since the last look. */
static void tasks_changed(watch_t *w, lh_pg_res_t *res)
{
	for (int i = 0; i < lh_pg_nrows(res); i++) {
		long long no = lh_pg_get_i64(res, i, 0);
		const char *st = lh_pg_get(res, i, 3);
		if (no < 0 || no >= MAX_TASKS)
			continue;
		if (no >= w->ntasks) {
			int n = (int)no + 16;
			char **t = realloc(w->task_status, (size_t)n * sizeof(*t));
			if (!t)
				abort();
			memset(t + w->ntasks, 0, (size_t)(n - w->ntasks) * sizeof(*t));
			w->task_status = t;
			w->ntasks = n;
		}
		if (w->task_status[no] && !strcmp(w->task_status[no], st))
			continue;
		free(w->task_status[no]);
		w->task_status[no] = strdup(st);
		if (!w->task_status[no])
			abort();
		if (!strcmp(st, "pending") && !w->tty)
			continue; /* a new task: the plan line says how many there are */
		if (lh_pg_get_i64(res, i, 4) > 0)
			say(w, "task %lld %s %s on %s (attempt %s)", no, lh_pg_get(res, i, 1), st,
			    lh_pg_get(res, i, 2), lh_pg_get(res, i, 4));
		else
			say(w, "task %lld %s %s", no, lh_pg_get(res, i, 1), st);
	}
}

/* Requests that appeared since the last look, with the command that answers them. */
static void requests_changed(watch_t *w, lh_pg_res_t *res)
{
	for (int i = 0; i < lh_pg_nrows(res); i++) {
		const char *rid = lh_pg_get(res, i, 1), *kind = lh_pg_get(res, i, 3);
		bool seen = false;
		char *q;
		for (int k = 0; k < w->nseen && !seen; k++)
			seen = !strcmp(w->seen_requests[k], rid);
		if (seen)
			continue;
		w->seen_requests = realloc(w->seen_requests, (size_t)(w->nseen + 1) * sizeof(char *));
		if (!w->seen_requests || !(w->seen_requests[w->nseen] = strdup(rid)))
			abort();
		w->nseen++;
		q = lhctl_one_line(lh_pg_get(res, i, 4), 300);
		if (!strcmp(kind, "question"))
			say(w, "waiting for an answer to %s: %s\n  lhctl respond %s '%s' ANSWER", rid, q,
			    w->plan, rid);
		else
			say(w, "waiting for an approval (%s) %s: %s\n  lhctl approve %s '%s'  |  lhctl "
			    "reject %s '%s'",
			    kind, rid, q, w->plan, rid, w->plan, rid);
		free(q);
	}
}

/* One look at the plan. Returns -1 to go on, or the exit status. */
static int look(watch_t *w, lh_pg_t *pg, lh_error_t *err)
{
	const char *params[2] = {w->plan, NULL};
	lh_pg_res_t *plan = NULL, *tasks = NULL, *reqs = NULL;
	int rc = -1;
	char tok[32];
	if (lh_pg_query(pg, "plan_get", 1, params, NULL, NULL, &plan, err))
		return LHCTL_EXIT_FAIL;
	if (lh_pg_nrows(plan) != 1) {
		lh_pg_res_free(plan);
		return -2; /* not (yet) there */
	}
	params[0] = lh_pg_get(plan, 0, 1); /* the plan's tenant */
	params[1] = w->plan;
	if (lh_pg_query(pg, "requests_pending", 2, params, NULL, NULL, &reqs, err)) {
		rc = LHCTL_EXIT_FAIL;
		goto out_free;
	}
	params[0] = w->plan;
	if (lh_pg_query(pg, "plan_tasks", 1, params, NULL, NULL, &tasks, err)) {
		rc = LHCTL_EXIT_FAIL;
		goto out_free;
	}
	tasks_changed(w, tasks);
	requests_changed(w, reqs);
	{
		const char *st = lh_pg_isnull(plan, 0, 3) ? "" : lh_pg_get(plan, 0, 3);
		long long done = lh_pg_get_i64(plan, 0, 6), total = lh_pg_get_i64(plan, 0, 5);
		long long tokens = lh_pg_get_i64(plan, 0, 7) + lh_pg_get_i64(plan, 0, 8);
		if (strcmp(st, w->status) != 0) {
			snprintf(w->status, sizeof(w->status), "%s", st);
			say(w, "plan %s %s: %lld/%lld tasks, %s tokens, $%.4f", w->plan, w->status, done,
			    total, lhctl_fmt_int(tok, tokens), strtod(lh_pg_get(plan, 0, 11), NULL));
		}
		if (terminal(st)) {
			if (!lh_pg_isnull(plan, 0, 16) && *lh_pg_get(plan, 0, 16))
				say(w, "reason: %s", lh_pg_get(plan, 0, 16));
			rc = !strcmp(st, "completed") ? LHCTL_EXIT_OK : LHCTL_EXIT_FAIL;
		} else
			draw_bar(w, done, total, tokens, lh_pg_get(plan, 0, 11));
	}
out_free:
	lh_pg_res_free(plan);
	lh_pg_res_free(tasks);
	lh_pg_res_free(reqs);
	return rc;
}

static void nap(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL); /* EINTR on Ctrl-C: checked by the caller */
}

int lhctl_cmd_watch(int argc, char **argv)
{
	watch_cfg_t cfg = {0};
	watch_t w = {0};
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	char **rest = NULL;
	int nrest = 0, rc;
	lh_id_t id;
	int64_t deadline_us, found_by_us;

	if ((rc = lhctl_load(&watch_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest != 1) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "usage: lhctl watch PLAN [--timeout S]");
		goto out_free;
	}
	if (lh_uuid_parse(rest[0], &id)) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "\"%.64s\" is not a plan id (a UUID)", rest[0]);
		goto out_free;
	}
	lh_uuid_fmt(&id, w.plan);
	w.tty = isatty(STDOUT_FILENO);
	w.t0_us = lh_mono_us();
	deadline_us = cfg.timeout_s ? w.t0_us + cfg.timeout_s * 1000000 : 0;
	found_by_us = w.t0_us + NOT_FOUND_GRACE_MS * 1000LL;
	if (lhctl_resolve(&cfg.common, false, true, NULL, &err) ||
	    lh_pg_connect(cfg.common.pg_url, &pg, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	lhctl_catch_signals();
	for (;;) {
		rc = look(&w, pg, &err);
		if (rc == LHCTL_EXIT_FAIL && err.msg[0]) {
			clear_bar(&w);
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
			break;
		}
		if (rc == -2 && lh_mono_us() > found_by_us) {
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "plan %s not found", w.plan);
			break;
		}
		if (rc >= 0)
			break;
		if (lhctl_interrupted) {
			clear_bar(&w);
			rc = LHCTL_EXIT_INTERRUPTED;
			break;
		}
		if (deadline_us && lh_mono_us() > deadline_us) {
			clear_bar(&w);
			rc = lhctl_fail(LHCTL_EXIT_PENDING, "plan %s is still %s after %llds", w.plan,
					*w.status ? w.status : "not visible",
					(long long)cfg.timeout_s);
			break;
		}
		nap(cfg.interval_ms);
	}
	clear_bar(&w);
out_free:
	for (int i = 0; i < w.ntasks; i++)
		free(w.task_status[i]);
	free(w.task_status);
	for (int i = 0; i < w.nseen; i++)
		free(w.seen_requests[i]);
	free(w.seen_requests);
	lh_pg_free(pg);
	free(rest);
	lh_config_finish(&watch_spec, &cfg);
	return rc;
}
