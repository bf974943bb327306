/* 0010-rebuild: the projections are a function of the log. Two plans run through the real daemons
 * (a diamond, and one that pauses at its token budget and is approved), then everything stops,
 * `lh-materializer --rebuild` replays the test's events topic into a fresh schema, and
 * `lh-materializer checksum` finds the rebuilt tables equal to the live ones (restricted to the
 * plans of this test's topic: the live schema holds other tests' plans too). A corrupted row is
 * found; a second rebuild swapped in for the corrupted schema (--swap --live-schema) repairs it. */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan_a[40], plan_b[40];
static char rb[64], rb2[64], rb1[64]; /* schema names */
static int mat = -1, coord = -1, wfast = -1, wstd = -1;

/* Run lh-materializer with the common flags and these (NULL-ended); its exit status. */
#define RUN_MAT(name, ...)                                                                        \
	ts_wait_exit(&ts, ts_spawn(&ts, name, "materializer/lh-materializer", __VA_ARGS__, NULL),  \
		     120000)

static void drop_schema(const char *name)
{
	/* identifiers cannot be parameters: quote it in PL/pgSQL */
	ts_sql1(&ts, "SELECT set_config('lh.drop_schema', $1, false)", name);
	PQclear(PQexec(ts.pg, "DO $$ BEGIN EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', "
			      "current_setting('lh.drop_schema')); END $$"));
}

static void t_plans_complete(void)
{
	lh_budget_t b = {.tokens = 700}; /* the scripted diamond needs about 1,300 */
	lh_id_t a = ts_submit(&ts, "Choose a database for a weeks-long agent system");
	lh_id_t id = ts_submit_with(&ts, "Plan a weekend in Porto", &b, NULL);
	char rid[128];
	const char *v;
	lh_approval_decided_t d = {.decision = "approve", .responder_type = "human",
				   .responder_id = "ana@example.org", .has_budget = true};
	lh_event_t ev = {.type = LH_EV_APPROVAL_DECIDED, .task_no = LH_NO_TASK, .body = &d,
			 .actor = {.kind = "human", .id = "ana@example.org"}};
	lh_uuid_fmt(&a, plan_a);
	lh_uuid_fmt(&id, plan_b);
	printf("# plans %s %s\n", plan_a, plan_b);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'budget_extension'",
			    plan_b, "pending"));
	v = ts_sql1(&ts, "SELECT request_id FROM input_requests WHERE plan_id = $1", plan_b);
	snprintf(rid, sizeof(rid), "%s", v ? v : "");
	d.request_id = rid;
	d.budget.tokens = 100000;
	ev.plan_id = id;
	ts_emit(&ts, &ev);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan_a,
			    "completed"));
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan_b,
			    "completed"));
}

/* Stop every producer, then wait until the materializer has stored every offset of the topic. */
static void t_everything_materialized(void)
{
	char topic[128], want[32];
	long long sum = 0;
	lh_error_t err = {0};
	ts_kill(&ts, coord, SIGTERM);
	ts_kill(&ts, wfast, SIGTERM);
	ts_kill(&ts, wstd, SIGTERM);
	T_EQ_INT(ts_wait_exit(&ts, coord, 20000), 0);
	T_EQ_INT(ts_wait_exit(&ts, wfast, 20000), 0);
	T_EQ_INT(ts_wait_exit(&ts, wstd, 20000), 0);
	snprintf(topic, sizeof(topic), "%sevents", ts.prefix);
	for (int p = 0; p < 8; p++) {
		int64_t lo = 0, hi = 0;
		T_CHECK(lh_kafka_watermarks(ts.producer, topic, p, 10000, &lo, &hi, &err) == LH_OK);
		sum += hi;
	}
	snprintf(want, sizeof(want), "%lld", sum);
	printf("# %lld events in %s\n", sum, topic);
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = $1",
			    topic, want));
	ts_kill(&ts, mat, SIGTERM);
	T_EQ_INT(ts_wait_exit(&ts, mat, 20000), 0);
	/* the event types the projections saw, so that the comparison below covers them */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(DISTINCT type, ',' ORDER BY type) FROM events WHERE "
			 "plan_id = $1",
			 plan_b),
		 "approval.decided,approval.requested,attempt.started,attempt.succeeded,"
		 "budget.exceeded,budget.warning,decision.logged,goal.submitted,plan.completed,"
		 "plan.created,plan.paused,plan.resumed,task.dispatched");
}

static void t_rebuild_equals_live(void)
{
	char group[96];
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	T_EQ_INT(RUN_MAT("rebuild", "--rebuild", "--schema", rb, "--group", group), 0);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", rb), "1");
	/* rebuilding into an existing schema is refused */
	T_EQ_INT(RUN_MAT("rebuild-again", "--rebuild", "--schema", rb, "--group", group), 1);
	T_EQ_INT(RUN_MAT("checksum", "checksum", "--against-schema", rb), 0);
}

/* lh_mat_fold folds a batch set-wise (sql/0006, sql/0012); with batches of one event it folds one event
 * at a time, which is the one-by-one fold. Both give the same rows on this log of 13 event
 * types (approvals, a budget pause, the plan's whole life). */
static void t_setwise_equals_one_by_one(void)
{
	char group[96];
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	T_EQ_INT(RUN_MAT("rebuild-one-by-one", "--rebuild", "--schema", rb1, "--group", group,
			 "--batch-max-events", "1"),
		 0);
	T_EQ_INT(RUN_MAT("checksum-one-by-one", "checksum", "--schema", rb, "--against-schema",
			 rb1),
		 0);
}

static void t_corruption_is_found(void)
{
	const char *n;
	ts_sql1(&ts, "SELECT set_config('search_path', $1, false)", rb);
	n = ts_sql1(&ts,
		    "WITH u AS (UPDATE tasks SET output = '\"corrupted\"' WHERE plan_id = $1 AND "
		    "task_no = 1 RETURNING 1) SELECT count(*) FROM u",
		    plan_a);
	T_EQ_STR(n, "1");
	ts_sql1(&ts, "SELECT set_config('search_path', $1, false)", "\"$user\", public");
	T_EQ_INT(RUN_MAT("checksum-corrupt", "checksum", "--against-schema", rb), 1);
}

static void t_swap_repairs(void)
{
	char group[96];
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	T_EQ_INT(RUN_MAT("rebuild-swap", "--rebuild", "--schema", rb2, "--live-schema", rb, "--swap",
			 "--group", group),
		 0);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", rb2), "0");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1 || '\\_old\\_%'",
			 rb2),
		 "1");
	T_EQ_INT(RUN_MAT("checksum-swapped", "checksum", "--against-schema", rb), 0);
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	char old[96];
	const char *v;
	if (rc)
		return rc;
	snprintf(rb, sizeof(rb), "rb_");
	snprintf(rb2, sizeof(rb2), "rb2_");
	snprintf(rb1, sizeof(rb1), "rb1_");
	for (const char *p = ts.prefix; *p; p++) {
		char c[2] = {(char)tolower((unsigned char)*p), 0};
		if (isalnum((unsigned char)*p)) {
			strcat(rb, c);
			strcat(rb2, c);
			strcat(rb1, c);
		}
	}
	mat = ts_spawn_materializer(&ts);
	coord = ts_spawn_coordinator(&ts, NULL);
	wfast = ts_spawn_worker(&ts, "fast");
	wstd = ts_spawn_worker(&ts, "standard");
	T_RUN(t_plans_complete);
	T_RUN(t_everything_materialized);
	T_RUN(t_rebuild_equals_live);
	T_RUN(t_setwise_equals_one_by_one);
	T_RUN(t_corruption_is_found);
	T_RUN(t_swap_repairs);
	v = ts_sql1(&ts, "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 || '\\_old\\_%'",
		    rb2);
	snprintf(old, sizeof(old), "%s", v ? v : "");
	drop_schema(rb);
	drop_schema(rb2);
	drop_schema(rb1);
	if (*old)
		drop_schema(old);
	ts_finish(&ts);
	return t_done();
}
