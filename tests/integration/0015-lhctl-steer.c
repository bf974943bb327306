/* 0015-lhctl-steer: people steer plans from the terminal. A plan pauses at its token budget;
 * `lhctl requests` lists the question, `lhctl approve --budget-tokens` extends the budget and
 * the plan completes; approving again is refused; `lhctl plan pause` / `resume` steer a plan;
 * bad input gets one error line and exit 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char plan[40], out[8192];

/* Run lhctl with the stack's services; returns its exit status, output (both streams) in out. */
static int lhctl(const char *args)
{
	char cmd[2048];
	FILE *p;
	size_t n;
	int st;
	snprintf(cmd, sizeof(cmd),
		 "LH_KAFKA_BROKERS='%s' LH_PG_URL='%s' LH_TOPIC_PREFIX='%s' %s/cli/lhctl %s 2>&1",
		 ts.brokers, ts.pg_url, ts.prefix, ts.build_root, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	st = pclose(p);
	printf("# lhctl %s -> %d: %s", args, WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void t_approve_from_the_terminal(void)
{
	lh_budget_t b = {.tokens = 700};
	lh_id_t id = ts_submit_with(&ts, "Plan a weekend in Braga", &b, NULL);
	char args[256], rid[128];
	const char *v;
	lh_uuid_fmt(&id, plan);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT status FROM input_requests WHERE plan_id = $1", plan, "pending"));
	v = ts_sql1(&ts, "SELECT request_id FROM input_requests WHERE plan_id = $1", plan);
	snprintf(rid, sizeof(rid), "%s", v ? v : "");
	snprintf(args, sizeof(args), "requests --plan %s", plan);
	T_EQ_INT(lhctl(args), 0);
	T_CHECK(strstr(out, rid) != NULL);
	T_CHECK(strstr(out, "budget_extension") != NULL);
	snprintf(args, sizeof(args), "approve %s '%s' --budget-tokens 100000 --reason 'worth it'",
		 plan, rid);
	T_EQ_INT(lhctl(args), 0);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_INT(lhctl(args), 1); /* already approved */
	T_CHECK(strstr(out, "already approved") != NULL);
	T_EQ_STR(ts_sql1(&ts, "SELECT responder_type FROM input_requests WHERE plan_id = $1", plan),
		 "human");
}

static void t_pause_and_resume(void)
{
	char args[256];
	lh_id_t id = ts_submit(&ts, "Research three coffee roasters [slow]");
	lh_uuid_fmt(&id, plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "running"));
	snprintf(args, sizeof(args), "plan pause %s --reason lunch", plan);
	T_EQ_INT(lhctl(args), 0);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "paused"));
	snprintf(args, sizeof(args), "plan resume %s", plan);
	T_EQ_INT(lhctl(args), 0);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
}

static void t_bad_input(void)
{
	T_EQ_INT(lhctl("approve not-a-uuid req"), 2);
	T_EQ_INT(lhctl("approve 00000000-0000-7000-8000-000000000001 req"), 1); /* unknown plan */
	T_CHECK(strstr(out, "not found") != NULL);
	T_EQ_INT(lhctl("plan cancel-task 00000000-0000-7000-8000-000000000001 zero"), 2);
	T_EQ_INT(lhctl("respond"), 2);
}

int main(int argc, char **argv)
{
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm(&ts, 300)) { /* slow enough to pause a plan mid-way */
		ts_finish(&ts);
		return 1;
	}
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	T_RUN(t_approve_from_the_terminal);
	T_RUN(t_pause_and_resume);
	T_RUN(t_bad_input);
	ts_finish(&ts);
	return t_done();
}
