/* run.c — lhctl run "GOAL": submit a goal and watch its plan until it ends.
 *
 * 1. Mint the plan id (UUIDv7) and produce goal.submitted to lh.events, keyed by the plan id;
 *    wait for the delivery report, which names the partition and offset the event landed at.
 * 2. Read that partition from that offset with a group-less consumer (lh_kafka_assign): every
 *    later event of the plan is on the same partition, after it. Events of other plans are
 *    skipped by key; duplicates (a coordinator repeating itself) are dropped by event id.
 * 3. Show progress (a live bar on a terminal, one line per event otherwise) until plan.completed,
 *    plan.failed or plan.cancelled, then wait briefly for PostgreSQL to catch up so that
 *    `lhctl plan show` right after agrees with what was printed.
 * Exit: 0 completed, 1 failed or error, 2 bad input, 3 still running at --timeout, 130 on Ctrl-C. */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "cli.h"
#include "common.h"
#include "event.h"
#include "idmap.h"
#include "ids.h"
#include "kafka.h"
#include "pg.h"

#define CONNECT_TIMEOUT_MS 5000
#define DELIVERY_TIMEOUT_MS 15000
#define PG_CATCH_UP_US (5 * 1000000LL)
#define BAR_WIDTH 24
#define MAX_TASK_NO 1000000
#define PROBE_IDLE_US (5 * 1000000LL) /* quiet this long: check the brokers still answer */
#define PROBE_TIMEOUT_MS 2000
#define PROBE_MAX_FAILURES 3

typedef struct run_cfg {
	lh_common_cfg_t common;
	char *tier;
	int64_t timeout_s;
	bool quiet;
} run_cfg_t;

#define R(f) offsetof(run_cfg_t, f)
static const lh_cfg_def_t run_table[] = {
	{"cli.tier", LH_CFG_STR, "", 0, 0, NULL, NULL, "tier", false, false,
	 "tier of the planning task (one of the configured tiers; default: the coordinator's)",
	 R(tier)},
	{"cli.timeout_s", LH_CFG_INT, "600", 1, 31536000, NULL, NULL, "timeout", false, false,
	 "seconds to watch before giving up (the plan keeps running; exit status 3)", R(timeout_s)},
	{"cli.quiet", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "quiet", false, false,
	 "no progress: print only the outcome and the answer", R(quiet)},
	LH_CFG_END,
};

static const lh_cfg_spec_t run_spec = {
	.prog = "lhctl run",
	.usage = "\"GOAL\" [--tier T] [--timeout S] [--quiet]   (GOAL \"-\" reads it from stdin)",
	.summary = "Submits a goal (a goal.submitted event on lh.events) and follows its plan until it "
		   "completes or fails: a progress bar on a terminal, one line per event otherwise; "
		   "then the outcome, the answer, and where to look next. Uses the running dev stack "
		   "unless --brokers / LH_KAFKA_BROKERS (and --pg-url / LH_PG_URL) are given. Exit "
		   "status: 0 completed, 1 failed or error, 2 bad input, 3 still running after "
		   "--timeout, 130 interrupted.",
	.tables = {lh_config_common_table, run_table, NULL},
};

typedef enum outcome { RUNNING = 0, COMPLETED, FAILED, CANCELLED } outcome_t;

typedef struct run {
	run_cfg_t cfg;
	lh_id_t plan_id;
	char plan_str[LH_UUID_STR_LEN + 1];
	bool tty, quiet;
	int64_t t0_us;
	/* delivery report of goal.submitted */
	bool delivered;
	lh_err_t delivery_rc;
	char delivery_msg[512];
	int32_t partition;
	int64_t offset;
	/* progress */
	lh_idmap_t seen; /* event ids already shown */
	int total;	 /* tasks of the current plan version, -1 before plan.created */
	int version;
	int succeeded;
	uint8_t *done; /* per task_no: 1 once succeeded */
	char **tiers;  /* per task_no: tier of the last dispatch */
	int ntasks;    /* size of done/tiers */
	long long tokens;
	double cost;
	bool bar_shown;
	int64_t last_bar_us;
	int64_t last_seen_us; /* last message read, or last successful probe */
	/* end */
	outcome_t outcome;
	json_t *output;
	char *reason;
	long long duration_ms;
	int final_tasks;
} run_t;

/* ---- delivery ------------------------------------------------------------------------------- */

static void on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
			int32_t partition, int64_t offset)
{
	run_t *r = opaque;
	r->delivered = true;
	r->delivery_rc = rc;
	if (rc)
		snprintf(r->delivery_msg, sizeof(r->delivery_msg), "%s",
			 err ? err->msg : lh_err_str(rc));
	r->partition = partition;
	r->offset = offset;
}

/* ---- progress ------------------------------------------------------------------------------- */

static void grow(run_t *r, int64_t task_no)
{
	int n = r->ntasks;
	if (task_no < n)
		return;
	while (n <= task_no)
		n = n ? n * 2 : 16;
	r->done = realloc(r->done, (size_t)n);
	r->tiers = realloc(r->tiers, (size_t)n * sizeof(char *));
	if (!r->done || !r->tiers)
		abort();
	memset(r->done + r->ntasks, 0, (size_t)(n - r->ntasks));
	memset(r->tiers + r->ntasks, 0, (size_t)(n - r->ntasks) * sizeof(char *));
	r->ntasks = n;
}

static void clear_bar(run_t *r)
{
	if (r->bar_shown) {
		fputs("\r\033[K", stdout);
		r->bar_shown = false;
	}
}

static void draw_bar(run_t *r)
{
	char bar[BAR_WIDTH + 1], tok[32], dur[32];
	int fill = 0;
	if (!r->tty || r->quiet)
		return;
	if (r->total > 0)
		fill = (int)((long long)BAR_WIDTH * r->succeeded / r->total);
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = 0;
	fputs("\r\033[K", stdout);
	if (r->total < 0)
		printf("[%s] planning  %s tokens  %s", bar, lhctl_fmt_int(tok, r->tokens),
		       lhctl_fmt_dur(dur, (lh_mono_us() - r->t0_us) / 1000));
	else
		printf("[%s] %d/%d tasks  %s tokens  %s", bar, r->succeeded, r->total,
		       lhctl_fmt_int(tok, r->tokens),
		       lhctl_fmt_dur(dur, (lh_mono_us() - r->t0_us) / 1000));
	fflush(stdout);
	r->bar_shown = true;
	r->last_bar_us = lh_mono_us();
}

/* One line about an event: above the bar on a terminal, plain otherwise; none when quiet. */
static void say(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(run_t *r, const char *fmt, ...)
{
	va_list ap;
	if (r->quiet)
		return;
	clear_bar(r);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!r->tty)
		fflush(stdout);
}

static long long usage_tokens(const lh_usage_t *u) { return u->input_tokens + u->output_tokens; }

static const char *tier_of(run_t *r, int64_t task_no)
{
	return task_no >= 0 && task_no < r->ntasks && r->tiers[task_no] ? r->tiers[task_no] : "?";
}

static void apply(run_t *r, const lh_event_t *ev)
{
	char tok[32];
	bool task_ok = ev->task_no >= 0 && ev->task_no < MAX_TASK_NO;

	switch (ev->type) {
	case LH_EV_PLAN_CREATED:
	case LH_EV_PLAN_REVISED: {
		bool created = ev->type == LH_EV_PLAN_CREATED;
		const lh_plan_created_t *pc = ev->body;
		const lh_plan_revised_t *pr = ev->body;
		int version = created ? (int)pc->version : (int)pr->version;
		if (version < r->version)
			break;
		r->version = version;
		if (created)
			r->total = (int)pc->tasks.n;
		else {
			/* A revision adds or replaces tasks and removes others: recount from the
			 * tasks it names (the coordinator's view is the source of truth; this is
			 * only the progress bar). */
			int added = 0;
			for (size_t i = 0; i < pr->tasks.n; i++)
				if (pr->tasks.v[i].task_no >= r->ntasks ||
				    !r->done[pr->tasks.v[i].task_no])
					added++;
			r->total = (r->total < 0 ? 0 : r->total) + added - (int)pr->removed.n;
			if (r->total < r->succeeded)
				r->total = r->succeeded;
		}
		if (created)
			say(r, "plan created: %d tasks (version %d)", r->total, version);
		else
			say(r, "plan revised to version %d: %d tasks%s%s", version, r->total,
			    pr->reason ? " — " : "", pr->reason ? pr->reason : "");
		break;
	}
	case LH_EV_TASK_DISPATCHED: {
		const lh_task_dispatched_t *d = ev->body;
		if (!task_ok)
			break;
		grow(r, ev->task_no);
		free(r->tiers[ev->task_no]);
		r->tiers[ev->task_no] = strdup(d->tier);
		if (ev->attempt > 1)
			say(r, "task %lld: attempt %lld dispatched to %s", (long long)ev->task_no,
			    (long long)ev->attempt, d->tier);
		break;
	}
	case LH_EV_ATTEMPT_SUCCEEDED: {
		const lh_attempt_succeeded_t *s = ev->body;
		long long t = s->has_usage ? usage_tokens(&s->usage) : 0;
		if (!task_ok)
			break;
		grow(r, ev->task_no);
		r->tokens += t;
		if (s->has_usage)
			r->cost += s->usage.cost_usd;
		if (ev->task_no > 0 && !r->done[ev->task_no]) {
			r->done[ev->task_no] = 1;
			r->succeeded++;
		}
		/* On a terminal the bar shows successes; lines are for what needs attention. */
		if (!r->tty)
			say(r, "task %lld succeeded on %s (%s, %s tokens)", (long long)ev->task_no,
			    tier_of(r, ev->task_no), s->model ? s->model : "?",
			    lhctl_fmt_int(tok, t));
		break;
	}
	case LH_EV_ATTEMPT_FAILED: {
		const lh_attempt_failed_t *f = ev->body;
		char *m = lhctl_one_line(f->message, 200);
		if (task_ok) {
			grow(r, ev->task_no);
			if (f->has_usage) {
				r->tokens += usage_tokens(&f->usage);
				r->cost += f->usage.cost_usd;
			}
		}
		say(r, "task %lld attempt %lld failed on %s: %s: %s", (long long)ev->task_no,
		    (long long)ev->attempt, tier_of(r, ev->task_no), f->error_class, m);
		free(m);
		break;
	}
	case LH_EV_DECISION_LOGGED: {
		const lh_decision_logged_t *d = ev->body;
		char *why;
		/* plan_created and plan_completed / plan_failed are shown by their own events. */
		if (strcmp(d->kind, "plan_created") == 0 || strcmp(d->kind, "plan_completed") == 0 ||
		    strcmp(d->kind, "plan_failed") == 0)
			break;
		why = lhctl_one_line(d->reasoning ? d->reasoning : "", 200);
		say(r, "decision (%s): %s", d->kind, why);
		free(why);
		break;
	}
	case LH_EV_PLAN_COMPLETED: {
		const lh_plan_completed_t *c = ev->body;
		r->outcome = COMPLETED;
		r->output = json_incref(c->output);
		r->duration_ms = c->duration_ms;
		/* Count what was seen to succeed, as the bar and `plan show` do (the coordinator's
		 * own count may leave out the join task). */
		r->final_tasks = r->succeeded > 0 ? r->succeeded : (int)c->tasks;
		if (c->has_usage) {
			r->tokens = usage_tokens(&c->usage);
			r->cost = c->usage.cost_usd;
		}
		break;
	}
	case LH_EV_PLAN_FAILED: {
		const lh_plan_failed_t *f = ev->body;
		r->outcome = FAILED;
		r->reason = strdup(f->reason);
		r->duration_ms = f->duration_ms;
		if (f->has_usage) {
			r->tokens = usage_tokens(&f->usage);
			r->cost = f->usage.cost_usd;
		}
		break;
	}
	case LH_EV_PLAN_CANCELLED: {
		const lh_plan_cancelled_t *c = ev->body;
		r->outcome = CANCELLED;
		r->reason = strdup(c->reason ? c->reason : "cancelled");
		break;
	}
	default:
		break;
	}
}

static void on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	run_t *r = opaque;
	lh_event_t *ev = NULL;
	lh_error_t err = {0};

	r->last_seen_us = lh_mono_us();
	if (r->outcome != RUNNING)
		return;
	if (msg->key_len != LH_UUID_STR_LEN || memcmp(msg->key, r->plan_str, LH_UUID_STR_LEN) != 0)
		return;
	if (lh_event_decode(msg->payload, msg->len, &ev, &err)) {
		say(r, "warning: skipped an event that does not decode (%s[%d]@%lld): %s", msg->topic,
		    (int)msg->partition, (long long)msg->offset, err.msg);
		return;
	}
	if (lh_id_eq(&ev->plan_id, &r->plan_id) && !lh_idmap_get(&r->seen, &ev->id)) {
		lh_idmap_put(&r->seen, &ev->id, r); /* any non-NULL value */
		apply(r, ev);
	}
	lh_event_free(ev);
}

/* ---- submit --------------------------------------------------------------------------------- */

/* The goal: the single argument, or stdin for "-". Trimmed and validated; new string or NULL
 * after printing the error (*ret_rc set). */
static char *read_goal(char **rest, int nrest, int *ret_rc)
{
	lh_buf_t b;
	char *goal, *start, *end;
	size_t n;

	if (nrest == 0) {
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "run needs a goal: lhctl run \"GOAL\"");
		return NULL;
	}
	if (nrest > 1) {
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE,
				     "run takes one goal, got %d arguments: quote it, lhctl run "
				     "\"...\"",
				     nrest);
		return NULL;
	}
	lh_buf_init(&b);
	if (strcmp(rest[0], "-") == 0) {
		char chunk[8192];
		size_t got;
		while ((got = fread(chunk, 1, sizeof(chunk), stdin)) > 0 &&
		       b.len <= LHCTL_GOAL_MAX * 4)
			lh_buf_append(&b, chunk, got);
		if (ferror(stdin)) {
			lh_buf_finish(&b);
			*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "could not read the goal from stdin: %s",
					     strerror(errno));
			return NULL;
		}
	} else
		lh_buf_appends(&b, rest[0]);
	lh_buf_appends(&b, "");
	goal = lh_buf_steal(&b, &n);
	start = goal;
	while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r' ||
	       *start == '\v' || *start == '\f')
		start++;
	end = goal + n;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
			       end[-1] == '\r' || end[-1] == '\v' || end[-1] == '\f'))
		end--;
	*end = 0;
	n = (size_t)(end - start);
	memmove(goal, start, n + 1);
	if (n == 0)
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "the goal is empty: say what should be done");
	else if (n > LHCTL_GOAL_MAX)
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "the goal is %zu bytes long; the limit is %d",
				     n, LHCTL_GOAL_MAX);
	else if (!lhctl_utf8_valid(goal, n))
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "the goal is not valid UTF-8 text");
	else
		return goal;
	free(goal);
	return NULL;
}

static bool tier_known(const char *tiers, const char *tier)
{
	char buf[1024];
	const char *names[LH_MAX_TIERS];
	int n = lh_config_split(tiers, buf, sizeof(buf), names, LH_MAX_TIERS);
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], tier) == 0)
			return true;
	return false;
}

/* Produce goal.submitted and wait for its delivery report. */
static int submit(run_t *r, lh_kafka_t *producer, const char *topic, const char *goal)
{
	lh_error_t err = {0};
	lh_goal_submitted_t gs = {0};
	lh_event_t ev = {0};
	lh_buf_t scratch;
	char host[64] = "localhost", actor[160], key[64];
	int64_t deadline;
	const char *user = getenv("USER");
	struct passwd *pw = user && *user ? NULL : getpwuid(getuid());

	if (pw)
		user = pw->pw_name;
	gethostname(host, sizeof(host) - 1);
	snprintf(actor, sizeof(actor), "lhctl:%s@%s", user && *user ? user : "?", host);
	snprintf(key, sizeof(key), "lhctl:%s", r->plan_str);
	gs.goal = goal;
	gs.planner_tier = *r->cfg.tier ? r->cfg.tier : NULL;
	gs.idempotency_key = key;
	gs.metadata = json_pack("{s:s}", "submitted_by", "lhctl");
	ev.v = LH_ENVELOPE_VERSION;
	ev.type = LH_EV_GOAL_SUBMITTED;
	ev.plan_id = r->plan_id;
	ev.task_no = LH_NO_TASK;
	ev.attempt = 0;
	ev.ts_us = lh_now_us();
	ev.tenant = r->cfg.common.tenant;
	ev.actor.kind = "cli";
	ev.actor.id = actor;
	ev.body = &gs;
	/* The id comes from the idempotency key: a resubmission of the same key is one event. */
	ev.id = lh_event_id_derivef(&r->plan_id, "goal.submitted", 0, "idempotency:%s", key);
	lh_buf_init(&scratch);
	if (lh_bus_emit(producer, topic, &ev, false, &scratch, NULL, &err)) {
		lh_buf_finish(&scratch);
		json_decref(gs.metadata);
		return lhctl_fail(LHCTL_EXIT_FAIL, "could not submit the goal: %s", err.msg);
	}
	lh_buf_finish(&scratch);
	json_decref(gs.metadata);
	deadline = lh_mono_us() + (DELIVERY_TIMEOUT_MS + 2000) * 1000LL;
	while (!r->delivered && lh_mono_us() < deadline && !lhctl_interrupted)
		lh_kafka_poll(producer, 100);
	if (!r->delivered)
		return lhctl_fail(lhctl_interrupted ? LHCTL_EXIT_INTERRUPTED : LHCTL_EXIT_FAIL,
				  "could not submit the goal: %s",
				  lhctl_interrupted ? "interrupted before kafka acknowledged it"
						    : "kafka did not acknowledge it in time");
	if (r->delivery_rc)
		return lhctl_fail(LHCTL_EXIT_FAIL, "could not submit the goal: %s", r->delivery_msg);
	return -1;
}

/* ---- the end -------------------------------------------------------------------------------- */

/* Wait (bounded) until PostgreSQL shows the plan finished, so `plan show` agrees. */
static bool wait_materialized(run_t *r)
{
	lh_pg_t *pg = NULL;
	lh_error_t err = {0};
	const char *params[1] = {r->plan_str};
	int64_t deadline = lh_mono_us() + PG_CATCH_UP_US;
	bool caught_up = false;
	if (!r->cfg.common.pg_url || !*r->cfg.common.pg_url)
		return false;
	if (lh_pg_connect(r->cfg.common.pg_url, &pg, &err))
		return false;
	while (!caught_up && lh_mono_us() < deadline && !lhctl_interrupted) {
		lh_pg_res_t *res = NULL;
		if (lh_pg_query(pg, "plan_status", 1, params, NULL, NULL, &res, &err) == LH_OK &&
		    lh_pg_nrows(res) == 1) {
			const char *s = lh_pg_get(res, 0, 0);
			caught_up = strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
				    strcmp(s, "cancelled") == 0;
		}
		lh_pg_res_free(res);
		if (!caught_up) {
			struct timespec d = {0, 100 * 1000000}; /* poll interval */
			nanosleep(&d, NULL);
		}
	}
	lh_pg_free(pg);
	return caught_up;
}

static void print_answer(json_t *output)
{
	char *s;
	if (!output || json_is_null(output))
		return;
	if (json_is_string(output)) {
		printf("%s\n", json_string_value(output));
		return;
	}
	s = json_dumps(output, JSON_INDENT(2));
	if (s)
		printf("%s\n", s);
	free(s);
}

static int finish(run_t *r, bool have_pg)
{
	char tok[32], dur[32], cost[48] = "";
	long long ms = r->duration_ms > 0 ? r->duration_ms : (lh_mono_us() - r->t0_us) / 1000;
	bool caught_up;

	clear_bar(r);
	if (r->cost > 0)
		snprintf(cost, sizeof(cost), ", $%.4f", r->cost);
	if (r->outcome == COMPLETED) {
		printf("plan %.8s… completed: %d task%s, %s, %s tokens%s\n", r->plan_str,
		       r->final_tasks, r->final_tasks == 1 ? "" : "s", lhctl_fmt_dur(dur, ms),
		       lhctl_fmt_int(tok, r->tokens), cost);
		print_answer(r->output);
	} else {
		char *why = lhctl_one_line(r->reason ? r->reason : "", 500);
		printf("plan %.8s… %s after %s: %s\n", r->plan_str,
		       r->outcome == FAILED ? "failed" : "was cancelled", lhctl_fmt_dur(dur, ms), why);
		free(why);
	}
	fflush(stdout);
	caught_up = have_pg && wait_materialized(r);
	if (!r->quiet) {
		if (have_pg && !caught_up)
			printf("(the database has not caught up yet: plan show may lag a few "
			       "seconds)\n");
		printf("next: lhctl plan show %s\n", r->plan_str);
	}
	fflush(stdout);
	return r->outcome == COMPLETED ? LHCTL_EXIT_OK : LHCTL_EXIT_FAIL;
}

/* ---- the command ---------------------------------------------------------------------------- */

int lhctl_cmd_run(int argc, char **argv)
{
	run_t *r = calloc(1, sizeof(*r));
	lh_error_t err = {0};
	lh_kafka_t *producer = NULL, *consumer = NULL;
	lh_kafka_opts_t ko;
	lh_kafka_part_t part;
	char **rest = NULL, topic[LH_TOPIC_MAX], *goal = NULL;
	int nrest = 0, rc = -1, nparts = 0, probe_failures = 0;
	bool from_dev = false, have_pg;
	int64_t deadline;

	if (!r)
		abort();
	lh_idmap_init(&r->seen);
	r->total = -1;
	if ((rc = lhctl_load(&run_spec, &r->cfg, argc, argv, &rest, &nrest)) >= 0)
		goto out_free_run;
	if (!(goal = read_goal(rest, nrest, &rc)))
		goto out_free_cfg;
	if (*r->cfg.tier && !tier_known(r->cfg.common.tiers, r->cfg.tier)) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "--tier: \"%s\" is not one of the tiers (%s)",
				r->cfg.tier, r->cfg.common.tiers);
		goto out_free_cfg;
	}
	if (lh_topic(r->cfg.common.topic_prefix, "events", topic, &err) ||
	    lhctl_resolve(&r->cfg.common, true, false, &from_dev, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_cfg;
	}
	/* The database is optional here: only for agreeing with `plan show` at the end. */
	if (!*r->cfg.common.pg_url)
		lhctl_resolve(&r->cfg.common, false, true, NULL, NULL);
	have_pg = *r->cfg.common.pg_url != 0;
	r->quiet = r->cfg.quiet;
	r->tty = isatty(STDOUT_FILENO);
	lhctl_catch_signals();

	ko = (lh_kafka_opts_t){.brokers = r->cfg.common.brokers, .client_id = "lhctl",
			       .on_delivery = on_delivery, .message_timeout_ms = DELIVERY_TIMEOUT_MS,
			       .opaque = r};
	if (lh_kafka_new(&ko, &producer, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_kafka;
	}
	if (lh_kafka_wait_ready(producer, CONNECT_TIMEOUT_MS, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not reach kafka at %s: no answer within %d s%s",
				r->cfg.common.brokers, CONNECT_TIMEOUT_MS / 1000,
				from_dev ? " (is the dev stack healthy? lhctl dev status)" : "");
		goto out_free_kafka;
	}
	rc = lh_kafka_partition_count(producer, topic, CONNECT_TIMEOUT_MS, &nparts, &err);
	if (rc == LH_ERR_NOT_FOUND) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL,
				"topic %s does not exist on %s: start the stack (lhctl dev, or "
				"lh-coordinator, which creates the topics)",
				topic, r->cfg.common.brokers);
		goto out_free_kafka;
	} else if (rc) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not reach kafka at %s: %s",
				r->cfg.common.brokers, err.msg);
		goto out_free_kafka;
	}

	r->plan_id = lh_uuid7_new();
	lh_uuid_fmt(&r->plan_id, r->plan_str);
	r->t0_us = lh_mono_us();
	if ((rc = submit(r, producer, topic, goal)) >= 0)
		goto out_free_kafka;
	if (!r->quiet) {
		printf("plan %s submitted\n", r->plan_str);
		fflush(stdout);
	}

	ko = (lh_kafka_opts_t){.brokers = r->cfg.common.brokers, .client_id = "lhctl",
			       .group_id = "lhctl-run", /* required by librdkafka; never joined */
			       .on_message = on_message, .opaque = r};
	part = (lh_kafka_part_t){.topic = topic, .partition = r->partition, .offset = r->offset};
	if (lh_kafka_new(&ko, &consumer, &err) || lh_kafka_assign(consumer, &part, 1, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not follow the plan: %s", err.msg);
		goto out_free_kafka;
	}
	deadline = r->t0_us + r->cfg.timeout_s * 1000000LL;
	r->last_seen_us = lh_mono_us();
	draw_bar(r);
	while (r->outcome == RUNNING && !lhctl_interrupted && lh_mono_us() < deadline) {
		lh_kafka_poll(consumer, 100);
		if (r->outcome == RUNNING && lh_mono_us() - r->last_bar_us >= 100000)
			draw_bar(r);
		/* A quiet plan is normal (a long LLM call); a broker that stopped answering (the dev
		 * stack was stopped) is not: say so instead of waiting for --timeout. */
		if (r->outcome == RUNNING && lh_mono_us() - r->last_seen_us >= PROBE_IDLE_US) {
			if (lh_kafka_wait_ready(producer, PROBE_TIMEOUT_MS, NULL) == LH_OK) {
				probe_failures = 0;
				r->last_seen_us = lh_mono_us();
			} else if (++probe_failures >= PROBE_MAX_FAILURES) {
				clear_bar(r);
				fflush(stdout);
				rc = lhctl_fail(LHCTL_EXIT_FAIL,
						"lost contact with kafka at %s while following plan %s%s",
						r->cfg.common.brokers, r->plan_str,
						from_dev ? " (was the dev stack stopped? lhctl dev status)"
							 : "");
				goto out_free_kafka;
			}
		}
	}
	if (r->outcome != RUNNING) {
		rc = finish(r, have_pg);
		goto out_free_kafka;
	}
	clear_bar(r);
	fflush(stdout);
	rc = lhctl_fail(lhctl_interrupted ? LHCTL_EXIT_INTERRUPTED : LHCTL_EXIT_PENDING,
			"plan %s is still running%s; follow it with: lhctl events tail --plan %s "
			"--follow --from-beginning (or lhctl plan show %s)",
			r->plan_str,
			lhctl_interrupted ? " (stopped watching)" : " after the --timeout", r->plan_str,
			r->plan_str);
out_free_kafka:
	lh_kafka_free(consumer);
	lh_kafka_free(producer);
out_free_cfg:
	free(goal);
	free(rest);
	lh_config_finish(&run_spec, &r->cfg);
out_free_run:
	for (int i = 0; i < r->ntasks; i++)
		free(r->tiers[i]);
	free(r->tiers);
	free(r->done);
	free(r->reason);
	json_decref(r->output);
	lh_idmap_finish(&r->seen);
	free(r);
	return rc;
}
