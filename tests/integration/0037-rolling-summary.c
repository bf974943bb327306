/* 0037-rolling-summary — the plan's anchored rolling summary is written while the plan runs
 * (memory.summarize, worker/summarize.h), through the whole stack: Kafka, PostgreSQL, fakellm.
 *
 * A plan of four act tasks in a chain; fakellm answers each with an output naming file paths, a
 * URL and ticket ids (the instructions and the goal name none of them). After each success the
 * worker sends a summarize order to the fast tier, whose worker folds the plan's new events
 * into a new version of `summaries`. Task 4 waits at an approval gate until a stored version
 * holds task 2's artifacts; once approved, its model request carries the summary (fakellm
 * answers with a marker only when that request's system text holds task 2's path:
 * match_system. GET /last-chat is not used for it: summarize calls and the join's race with
 * the last act task's, so "the last request" is not task 4's).
 * When the plan is done: the versions' anchors strictly increase, version v merged exactly v
 * spans, every act task's attempt.succeeded lies in exactly one span [previous anchor, anchor),
 * and every path, URL and ticket id of the outputs is in the latest artifact trail (fakellm's
 * summarize answer lists no artifacts: the merge's scan of the raw span finds them). Each
 * version is announced once on lh.events by summary.updated (version, anchor, span), which the
 * materializer stores and the coordinator ignores (the plan completes).
 *
 * A second plan's summarize call hangs (fakellm); the fast worker is killed (SIGKILL) during it.
 * Restarted, it runs the uncommitted order again: its span is stored exactly once. A third plan's
 * first summary answer is not JSON: it goes back to the model with the reason, and the second
 * answer is stored (two model calls, one version).
 *
 * Fails without the writer (LH_MEMORY_SUMMARIZE unset): no version is ever stored. Needs the
 * stack (tests/integration/stack.h; else skipped, exit 77). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "summarize.h"
#include "t.h"

static ts_stack_t ts;
static char llm_url[128];
static char tag[16];
static int fast_worker;
#define N_STEPS 8 /* tool rounds of the long attempt (t_attempt) */

/* the outputs' artifacts (fakellm's answers to tasks 1..4 and the crash plan's task) */
static char art[10][128];
#define N_ART 8

static void approve(const char *plan_s, const char *request_id)
{
	lh_approval_decided_t d = {.request_id = request_id, .decision = "approve",
				   .responder_type = "human", .responder_id = "ana",
				   .reason = "the summary is in"};
	lh_event_t ev = {.type = LH_EV_APPROVAL_DECIDED, .task_no = LH_NO_TASK, .tenant = "default",
			 .body = &d};
	lh_uuid_parse(plan_s, &ev.plan_id);
	ts_emit(&ts, &ev);
}

/* wait until a stored version of the plan's summary holds artifact a (no quote in a) */
static bool wait_artifact(const char *plan, const char *a, int ms)
{
	char q[400];
	snprintf(q, sizeof(q),
		 "SELECT coalesce(bool_or(sections->'artifacts' ? '%s'), false)::text FROM summaries "
		 "WHERE plan_id = $1 AND subject = ''",
		 a);
	return ts_wait_sql(&ts, ms, q, plan, "true");
}

/* "true" when the plan's latest summary holds artifact a */
static const char *has_artifact(const char *plan, const char *a)
{
	char q[400];
	snprintf(q, sizeof(q),
		 "SELECT (sections->'artifacts' ? '%s')::text FROM summaries WHERE plan_id = $1 AND "
		 "subject = '' ORDER BY version DESC LIMIT 1",
		 a);
	return ts_sql1(&ts, q, plan);
}

/* No span twice, none lost: anchors strictly increase, version v has merged v spans. */
static void check_versions(const char *plan, int min_versions)
{
	const char *v = ts_sql1(&ts, "SELECT count(*) FROM summaries WHERE plan_id = $1 AND "
				     "subject = ''", plan);
	printf("# %s: %s versions\n", plan, v ? v : "(null)");
	T_CHECK(v && atoi(v) >= min_versions);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM (SELECT anchor, lag(anchor) OVER (ORDER BY "
			      "version) AS prev FROM summaries WHERE plan_id = $1 AND subject = '') s "
			      "WHERE prev IS NOT NULL AND anchor <= prev", plan),
		 "0");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM summaries WHERE plan_id = $1 AND subject = '' "
			      "AND n_spans <> version", plan),
		 "0");
	T_EQ_STR(ts_sql1(&ts, "SELECT max(version) = count(*) FROM summaries WHERE plan_id = $1 "
			      "AND subject = ''", plan),
		 "t");
	/* each version announced once by summary.updated (materialized; the coordinator's fold
	 * ignores it) with its version's anchor and span */
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "WITH v AS (SELECT * FROM summaries WHERE plan_id = $1 AND subject = ''), "
			    "u AS (SELECT * FROM events WHERE plan_id = $1 AND type = 'summary.updated') "
			    "SELECT ((SELECT count(*) FROM u) = (SELECT count(*) FROM v) AND "
			    "(SELECT count(*) FROM v WHERE EXISTS (SELECT 1 FROM u WHERE "
			    "(u.body->>'version')::int = v.version AND (u.body->>'anchor')::bigint = "
			    "v.anchor AND (u.body->>'span_from')::bigint = coalesce((SELECT p.anchor FROM "
			    "v p WHERE p.version = v.version - 1), 0))) = (SELECT count(*) FROM v))::text",
			    plan, "true"));
	/* every relevant event before the last anchor was rendered in exactly one span: the
	 * spans' event counts add up to them (none twice, none skipped) */
	{
		char q[1200];
		snprintf(q, sizeof(q),
			 "SELECT ((SELECT sum((body->>'span_events')::bigint) FROM events WHERE "
			 "plan_id = $1 AND type = 'summary.updated') = (SELECT count(*) FROM events e "
			 "LEFT JOIN tasks t ON t.plan_id = e.plan_id AND t.task_no = e.task_no WHERE "
			 "e.plan_id = $1 AND e.type = ANY('%s'::text[]) AND NOT (e.type = "
			 "'attempt.succeeded' AND t.kind IN ('plan', 'replan')) AND e.\"offset\" < "
			 "(SELECT max(anchor) FROM summaries WHERE plan_id = $1 AND subject = '')))::text",
			 lh_summarize_relevant_types());
		T_EQ_STR(ts_sql1(&ts, q, plan), "true");
	}
	/* each act task's success in exactly one span [previous anchor (0 first), anchor) */
	T_EQ_STR(ts_sql1(&ts, "WITH s AS (SELECT coalesce(lag(anchor) OVER (ORDER BY version), 0) "
			      "AS lo, anchor AS hi FROM summaries WHERE plan_id = $1 AND subject = '') "
			      "SELECT count(*) FROM events e JOIN tasks t ON t.plan_id = e.plan_id AND "
			      "t.task_no = e.task_no WHERE e.plan_id = $1 AND t.kind = 'act' AND "
			      "e.type = 'attempt.succeeded' AND (SELECT count(*) FROM s WHERE "
			      "e.\"offset\" >= s.lo AND e.\"offset\" < s.hi) <> 1", plan),
		 "0");
}

/* The fast worker's worker.summarize lines of plan: how many, their model calls in all, and
 * how many ended in "conflict". */
static void summarize_lines(const char *plan, int *ret_lines, int *ret_calls, int *ret_conflicts)
{
	char path[700], line[8192];
	FILE *f;
	*ret_lines = *ret_calls = *ret_conflicts = 0;
	snprintf(path, sizeof(path), "%s/worker-fast.log", ts.log_dir);
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f)) {
		const char *c = strstr(line, "\"llm_calls\":\"");
		if (!strstr(line, "\"event\":\"worker.summarize\"") || !strstr(line, plan) || !c)
			continue;
		(*ret_lines)++;
		*ret_calls += atoi(c + strlen("\"llm_calls\":\""));
		*ret_conflicts += strstr(line, "\"outcome\":\"conflict\"") != NULL;
	}
	fclose(f);
}

static void t_rolling(void)
{
	char goal[1200], plan[LH_UUID_STR_LEN + 1];
	const char *out;
	lh_id_t id;
	/* the instructions name no artifact: only the outputs do (fakellm, by marker) */
	snprintf(goal, sizeof(goal),
		 "Migrate the %s service\nlh-script: {\"tasks\":["
		 "{\"id\":1,\"instructions\":\"Step one [case\\u003ar1]\",\"tier\":\"fast\"},"
		 "{\"id\":2,\"instructions\":\"Step two [case\\u003ar2]\",\"tier\":\"fast\","
		 "\"after\":[1]},"
		 "{\"id\":3,\"instructions\":\"Step three [case\\u003ar3]\",\"tier\":\"fast\","
		 "\"after\":[2]},"
		 "{\"id\":4,\"instructions\":\"Step four [case\\u003ar4]\",\"tier\":\"fast\","
		 "\"after\":[3],\"needs_approval\":true}],\"join\":\"Check\"}\n",
		 tag);
	id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	/* a version that folded task 2's output, written while the plan runs (task 4 waits) */
	T_CHECK(wait_artifact(plan, art[2], 120000));
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status FROM input_requests WHERE plan_id = $1 AND task_no = 4",
			    plan, "pending"));
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 4", plan),
		 "pending"); /* it has not run: its context is built after the approval */
	approve(plan, "task:4:v1");
	/* task 4's own request held the summary (fakellm's match_system on task 2's path) */
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 4",
			    plan, "succeeded"));
	out = ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 4", plan);
	printf("# task 4: %.300s\n", out ? out : "(null)");
	T_CHECK(out && strstr(out, "SUMMARY-SEEN") != NULL);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	/* the last order (after task 4) folds task 4's output too */
	T_CHECK(wait_artifact(plan, art[7], 90000));
	for (int i = 0; i < N_ART; i++) {
		const char *h = has_artifact(plan, art[i]);
		printf("# artifact %s: %s\n", art[i], h ? h : "(null)");
		T_EQ_STR(h, "true");
	}
	check_versions(plan, 2);
	/* every summarize call (each takes 1.5 s: the orders of tasks 1-3 overlap) led to a stored
	 * version: the orders of one plan run one at a time in the worker, each from the version the
	 * previous one stored, so none summarizes a span already being summarized */
	{
		int lines, calls, conflicts;
		const char *v;
		T_CHECK(ts_wait_log(&ts, "worker-fast", plan, "\"task_no\":\"4\"", 30000));
		summarize_lines(plan, &lines, &calls, &conflicts);
		v = ts_sql1(&ts, "SELECT count(*) FROM summaries WHERE plan_id = $1", plan);
		printf("# %d orders, %d summarize calls, %d conflicts, %s versions\n", lines, calls,
		       conflicts, v ? v : "(null)");
		T_EQ_INT(lines, 4);
		T_EQ_INT(conflicts, 0);
		T_CHECK(v && calls == atoi(v));
	}
	/* no attempt events for the orders: one started and one succeeded per task attempt */
	out = ts_sql1(&ts, "SELECT count(*)::text FROM task_attempts WHERE plan_id = $1", plan);
	T_CHECK(out && ts_count_events(&ts, plan, "attempt.started") == atoi(out));
	T_CHECK(out && ts_count_events(&ts, plan, "attempt.succeeded") == atoi(out));
}

/* kill -9 the fast worker while a summarize call is out (fakellm holds it 30 s): the order is
 * not committed; restarted, the worker runs it again and the span is stored once */
static void t_crash(void)
{
	char goal[600], plan[LH_UUID_STR_LEN + 1];
	lh_id_t id;
	snprintf(goal, sizeof(goal),
		 "Crash drill %s\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Drill "
		 "[case\\u003ak1]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n",
		 tag);
	id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# crash plan %s\n", plan);
	T_CHECK(ts_wait_log(&ts, "worker-fast", "worker.summarize_call", plan, 90000));
	ts_kill(&ts, fast_worker, SIGKILL);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM summaries WHERE plan_id = $1", plan), "0");
	ts_restart(&ts, fast_worker);
	T_CHECK(wait_artifact(plan, art[8], 120000));
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(has_artifact(plan, art[8]), "true");
	check_versions(plan, 1);
	/* the task's success was summarized in exactly one stored span: version 1 only */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM summaries WHERE plan_id = $1", plan), "1");
}

/* the model's first summary answer is not JSON: it goes back with the reason, the second is
 * taken (two model calls, one version) */
static void t_correction(void)
{
	char goal[600], plan[LH_UUID_STR_LEN + 1];
	lh_id_t id;
	snprintf(goal, sizeof(goal),
		 "Fix drill %s\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Fix "
		 "[case\\u003ac1]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n",
		 tag);
	id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# correction plan %s\n", plan);
	T_CHECK(wait_artifact(plan, art[9], 90000));
	T_CHECK(ts_wait_log(&ts, "worker-fast", plan, "\"llm_calls\":\"2\"", 30000));
	check_versions(plan, 1);
}

/* A long attempt on the frontier worker (a 1,200-token window, memory.summarize_attempts on):
 * its tool rounds overflow the window; the dropped messages are folded into the attempt's own
 * summary (subject "1/1"), stored in versions with growing anchors, and a later call of the
 * same attempt carries it: fakellm answers ATTEMPT-SUMMARY-SEEN only when the system text holds
 * step 1's path, which only the dropped messages mention. */
static void t_attempt(void)
{
	char goal[600], plan[LH_UUID_STR_LEN + 1], step1[128], q[300];
	const char *out, *v;
	lh_id_t id;
	snprintf(goal, sizeof(goal),
		 "Long drill %s\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Dig "
		 "deep\",\"tier\":\"frontier\"}],\"join\":\"Check\"}\n",
		 tag);
	id = ts_submit(&ts, goal);
	lh_uuid_fmt(&id, plan);
	printf("# attempt plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 120000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	out = ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 1", plan);
	printf("# task 1: %.200s\n", out ? out : "(null)");
	T_CHECK(out && strstr(out, "ATTEMPT-SUMMARY-SEEN") != NULL);
	v = ts_sql1(&ts, "SELECT count(*) FROM summaries WHERE plan_id = $1 AND subject = '1/1'",
		    plan);
	printf("# attempt summary versions: %s\n", v ? v : "(null)");
	T_CHECK(v && atoi(v) >= 1);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM (SELECT anchor, lag(anchor) OVER (ORDER BY "
			      "version) AS prev, n_spans, version FROM summaries WHERE plan_id = $1 "
			      "AND subject = '1/1') s WHERE (prev IS NOT NULL AND anchor <= prev) OR "
			      "n_spans <> version", plan),
		 "0");
	snprintf(step1, sizeof(step1), "/srv/att-%s/step-1.log", tag);
	snprintf(q, sizeof(q),
		 "SELECT (sections->'artifacts' ? '%s')::text FROM summaries WHERE plan_id = $1 AND "
		 "subject = '1/1' ORDER BY version DESC LIMIT 1",
		 step1);
	T_EQ_STR(ts_sql1(&ts, q, plan), "true");
}

int main(int argc, char **argv)
{
	lh_id_t t = lh_uuid7_new();
	char tid[LH_UUID_STR_LEN + 1], script[16384], cfg[600], steps[8192] = "", filler[700];
	unsigned run;
	memset(filler, 0, sizeof(filler));
	for (int i = 0; i < 600; i += 20)
		memcpy(filler + i, "lorem ipsum dolor s ", 20);
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	lh_uuid_fmt(&t, tid);
	/* this run's tag (k + 8 hex digits) and ticket number (5 digits): the artifacts are new
	 * every run */
	snprintf(tag, sizeof(tag), "k%.8s", tid + 28);
	run = (unsigned)(strtoul(tid + 31, NULL, 16) % 100000);
	snprintf(art[0], sizeof(art[0]), "/srv/%s/report-1.csv", tag);
	snprintf(art[1], sizeof(art[1]), "OPS-1%05u", run);
	snprintf(art[2], sizeof(art[2]), "/data/%s/out-2.json", tag);
	snprintf(art[3], sizeof(art[3]), "OPS-2%05u", run);
	snprintf(art[4], sizeof(art[4]), "https://deploy.example.com/%s/3", tag);
	snprintf(art[5], sizeof(art[5]), "OPS-3%05u", run);
	snprintf(art[6], sizeof(art[6]), "/srv/%s/final-4.md", tag);
	snprintf(art[7], sizeof(art[7]), "OPS-4%05u", run);
	snprintf(art[8], sizeof(art[8]), "/srv/crash-%s.txt", tag);
	snprintf(art[9], sizeof(art[9]), "/srv/fix-%s.txt", tag);
	/* Rules, first match wins. Summarize calls (their system prompt) get fakellm's own
	 * summarize answer, except the crash plan's first, which hangs 30 s. Act tasks answer by
	 * marker; task 4 says SUMMARY-SEEN only when its system text holds task 2's path. */
	/* the long attempt's tool rounds: each turn a memory_search with its own query and a long
	 * text naming that step's log file */
	for (int k = 1; k <= N_STEPS; k++) {
		size_t n = strlen(steps);
		snprintf(steps + n, sizeof(steps) - n,
			 ",{\"match_system\":\"tier frontier)\",\"times\":1,\"content\":\"Step %d: "
			 "wrote /srv/att-%s/step-%d.log. %s\",\"tool_calls\":[{\"name\":"
			 "\"memory_search\",\"arguments\":{\"query\":\"step %d of %s\"}}]}",
			 k, tag, k, filler, k, tag);
	}
	snprintf(script, sizeof(script),
		 "{\"rules\":["
		 "{\"match\":\"%s\",\"match_system\":\"running summary\",\"times\":1,"
		 "\"latency_ms\":30000},"
		 "{\"match\":\"%s\",\"match_system\":\"running summary\",\"times\":1,"
		 "\"content\":\"not json\"},"
		 "{\"match\":\"Your answer was not accepted\",\"match_system\":\"running "
		 "summary\",\"content\":\"{\\\"play_by_play\\\": \\\"Corrected.\\\", "
		 "\\\"artifacts\\\": [], \\\"breadcrumbs\\\": \\\"\\\", "
		 "\\\"open_questions\\\": \\\"\\\"}\"},"
		 "{\"match_system\":\"You are the joiner\"},"
		 "{\"match_system\":\"/srv/att-%s/step-1.log\","
		 "\"content\":\"ATTEMPT-SUMMARY-SEEN\"},"
		 "{\"match_system\":\"running summary\",\"latency_ms\":1500},"
		 "{\"match\":\"[case:r1]\",\"content\":\"Wrote %s and filed %s.\"},"
		 "{\"match\":\"[case:r2]\",\"content\":\"Moved the data to %s; ticket %s.\"},"
		 "{\"match\":\"[case:r3]\",\"content\":\"Deployed %s for %s.\"},"
		 "{\"match\":\"[case:r4]\",\"match_system\":\"%s\","
		 "\"content\":\"SUMMARY-SEEN: wrote %s, closed %s.\"},"
		 "{\"match\":\"[case:r4]\",\"content\":\"no summary: wrote %s, closed %s.\"},"
		 "{\"match\":\"[case:k1]\",\"content\":\"Drilled; notes in %s.\"},"
		 "{\"match\":\"[case:c1]\",\"content\":\"Noted in %s.\"}%s]}",
		 art[8], art[9], tag, art[0], art[1], art[2], art[3], art[4], art[5], art[2], art[6], art[7],
		 art[6], art[7], art[8], art[9], steps);
	if (ts_fakellm_with(&ts, 5, script, llm_url)) {
		ts_finish(&ts);
		return 1;
	}
	if (!getenv("LH_TEST_SUMMARIZE_OFF")) /* set it to see this test fail without the writer */
		setenv("LH_MEMORY_SUMMARIZE", "true", 1);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	/* orders' offsets committed as soon as they are acknowledged: a summarize order
	 * acknowledged too early would be committed before t_crash's kill, and not run again */
	{
		FILE *f;
		snprintf(cfg, sizeof(cfg), "%s/0037-fast.json", ts.log_dir);
		f = fopen(cfg, "w");
		if (f) {
			fputs("{\"worker.commit_interval_ms\": 0}\n", f);
			fclose(f);
		}
	}
	fast_worker = ts_spawn_worker_url(&ts, "fast", llm_url, "--config", cfg, NULL);
	ts_spawn_worker_url(&ts, "standard", llm_url, NULL);
	{
		char cfg2[600];
		FILE *f;
		snprintf(cfg2, sizeof(cfg2), "%s/0037-frontier.json", ts.log_dir);
		f = fopen(cfg2, "w");
		if (f) {
			fputs("{\"llm.context_window\": 1200, \"llm.reserve_output_tokens\": 200, "
			      "\"memory.summarize_attempts\": true, "
			      "\"memory.summarize_attempt_batch\": 2, \"worker.max_turns\": 40}\n",
			      f);
			fclose(f);
		}
		ts_spawn_worker_url(&ts, "frontier", llm_url, "--config", cfg2, NULL);
	}
	T_RUN(t_rolling);
	T_RUN(t_crash);
	T_RUN(t_correction);
	T_RUN(t_attempt);
	ts_finish(&ts);
	return t_done();
}
