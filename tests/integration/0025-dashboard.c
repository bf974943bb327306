/* 0025-dashboard: lh-gateway's dashboard in headless Chromium. The stack runs here (coordinator,
 * materializer, workers, a gateway with tokens); a plan with an approval gate (a token budget the
 * scripted plan exceeds) waits for a person. tests/browser/dashboard.mjs (playwright-core driving
 * Debian's chromium) then signs in with an admin token, finds the plan, sees its DAG, clicks
 * Approve and watches the plan finish; on a second plan it applies a patch in the modify editor
 * (the DAG redraws: 4 skipped, 6 and the new join 7 added) and extends its task budget until
 * it finishes. Screenshots go under $LH_TEST_DIR/artifacts. Back here
 * the database must say the same: the request approved by that token's holder with the suggested
 * limit, the plan completed.
 *
 * Needs: node (>= 20) and tests/browser/node_modules (`npm ci` in tests/browser: scripts/deps.sh
 * does it), and chromium (apt). Missing pieces fail the test with what to install. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static const char *src_root;
static char plan[40], plan2[40], token[80], token_name[64], shots[512];
static int port;

static void make_token(const char *name, const char *role, char out[80])
{
	char cmd[1024];
	FILE *p;
	snprintf(cmd, sizeof(cmd),
		 "%s/gateway/lh-gateway --pg-url '%s' --create-token %s --role %s --tenant default",
		 ts.build_root, ts.pg_url, name, role);
	out[0] = 0;
	p = popen(cmd, "r");
	if (p) {
		if (!fgets(out, 80, p))
			out[0] = 0;
		pclose(p);
	}
	out[strcspn(out, "\n")] = 0;
}

static void t_plan_waits(void)
{
	lh_budget_t b = {.tokens = 700}; /* the scripted diamond needs about 900 */
	lh_id_t id = ts_submit_with(&ts, "Plan a weekend in Porto", &b, NULL);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
			    "'budget_extension'",
			    plan, "pending"));
	T_CHECK(ts_wait_sql(&ts, 30000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "paused"));
	/* the second plan, to modify: paused by its task budget with tasks 3 and 4 not started */
	{
		lh_budget_t b2 = {.tasks = 2};
		id = ts_submit_with(&ts, "Plan a weekend in Braga", &b2, NULL);
		lh_uuid_fmt(&id, plan2);
		printf("# plan to modify %s\n", plan2);
		T_CHECK(ts_wait_sql(&ts, 90000,
				    "SELECT status FROM input_requests WHERE plan_id = $1 AND kind = "
				    "'budget_extension'",
				    plan2, "pending"));
		T_EQ_STR(ts_sql1(&ts,
				 "SELECT string_agg(task_no || ':' || status, ',' ORDER BY task_no) "
				 "FROM tasks WHERE plan_id = $1 AND task_no IN (3, 4)",
				 plan2),
			 "3:pending,4:pending");
	}
}

static void t_browser(void)
{
	char cmd[2048], line[1024], mods[600];
	const char *dir = getenv("LH_TEST_DIR");
	struct stat st;
	FILE *p;
	int rc, nshots = 0;
	snprintf(mods, sizeof(mods), "%s/tests/browser/node_modules/playwright-core", src_root);
	if (stat(mods, &st) != 0) {
		printf("# %s is missing: run `npm ci` in tests/browser (scripts/deps.sh does)\n",
		       mods);
		T_CHECK(!"playwright-core installed");
		return;
	}
	if (access(getenv("LH_CHROMIUM") ? getenv("LH_CHROMIUM") : "/usr/bin/chromium", X_OK)) {
		printf("# no chromium: apt-get install chromium (scripts/deps.sh does)\n");
		T_CHECK(!"chromium installed");
		return;
	}
	snprintf(shots, sizeof(shots), "%s/artifacts/0025-dashboard-%.8s", dir ? dir : "/tmp",
		 ts.prefix);
	snprintf(line, sizeof(line), "http://127.0.0.1:%d", port);
	setenv("LH_DASH_URL", line, 1);
	setenv("LH_DASH_TOKEN", token, 1);
	setenv("LH_DASH_PLAN", plan, 1);
	setenv("LH_DASH_PLAN2", plan2, 1);
	setenv("LH_DASH_SHOTS", shots, 1);
	snprintf(cmd, sizeof(cmd), "timeout -k 10 400 node '%s/tests/browser/dashboard.mjs' 2>&1",
		 src_root);
	p = popen(cmd, "r");
	T_CHECK(p != NULL);
	if (!p)
		return;
	while (fgets(line, sizeof(line), p)) {
		printf("# %s", line);
		nshots += strncmp(line, "screenshot: ", 12) == 0;
	}
	rc = pclose(p);
	unsetenv("LH_DASH_TOKEN");
	T_EQ_INT(rc, 0);
	T_EQ_INT(nshots, 7);
}

static void t_database_agrees(void)
{
	char want[128];
	snprintf(want, sizeof(want), "approved:human:%s", token_name);
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM plans WHERE plan_id = $1", plan), "completed");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status || ':' || responder_type || ':' || responder_id FROM "
			 "input_requests WHERE plan_id = $1 AND kind = 'budget_extension'",
			 plan),
		 want);
	/* the limit the page offered (twice the old one) went with the approval */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT body->'budget'->>'tokens' FROM events WHERE plan_id = $1 AND "
			 "type = 'approval.decided'",
			 plan),
		 "1400");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT body->>'reason' FROM events WHERE plan_id = $1 AND type = "
			 "'approval.decided'",
			 plan),
		 "approved from the dashboard test");
	T_EQ_INT(ts_count_events(&ts, plan, "approval.decided"), 1);
	/* the patch made in the page is what ran */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT status || ':' || version FROM plans WHERE plan_id = $1", plan2),
		 "completed:2");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(task_no || ':' || status, ',' ORDER BY task_no) FROM "
			 "tasks WHERE plan_id = $1 AND task_no >= 3",
			 plan2),
		 "3:succeeded,4:skipped,5:skipped,6:succeeded,7:succeeded");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT body->>'reason' FROM events WHERE plan_id = $1 AND type = "
			 "'plan.revised'",
			 plan2),
		 "from the dashboard");
}

/* The token went through every API call of the page: it must not be in any daemon's log. */
static void t_no_secret_logged(void)
{
	const char *const names[] = {"gateway", "coordinator", "materializer", "worker-fast",
				     "worker-standard", NULL};
	char path[700], line[8192];
	int files = 0;
	for (int i = 0; names[i]; i++) {
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s.log", ts.log_dir, names[i]);
		if (!(f = fopen(path, "r")))
			continue;
		files++;
		while (fgets(line, sizeof(line), f))
			if (strstr(line, token + 3)) {
				printf("# the token is in %s: %.200s\n", path, line);
				T_CHECK(!"the token is in a log");
				break;
			}
		fclose(f);
	}
	T_CHECK(files >= 2);
}

int main(int argc, char **argv)
{
	int rc;
	src_root = argc > 2 ? argv[2] : ".";
	if ((rc = ts_init(&ts, argc > 1 ? argv[1] : ".")))
		return rc;
	snprintf(token_name, sizeof(token_name), "%sdash", ts.prefix);
	make_token(token_name, "admin", token); /* modify needs admin; approve needs responder */
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	ts_spawn(&ts, "gateway", "gateway/lh-gateway", "--pg-url", ts.pg_url, "--port", "0",
		 "--rate-burst", "200", "--rate-per-s", "50", NULL);
	port = ts_gateway_port(&ts, "gateway");
	if (!*token || port <= 0) {
		printf("FAIL: could not create a token or start the gateway\n");
		ts_finish(&ts);
		return 1;
	}
	T_RUN(t_plan_waits);
	T_RUN(t_browser);
	T_RUN(t_database_agrees);
	T_RUN(t_no_secret_logged);
	ts_finish(&ts);
	return t_done();
}
