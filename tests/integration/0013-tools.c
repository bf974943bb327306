/* 0013-tools: the worker's tool loop through fakellm (Anthropic Messages, so tool results come
 * back in the user turn and fakellm's act answer echoes them).
 *   - a task calls http_fetch on an allowed loopback URL (another fakellm's /health), gets the
 *     body, then finishes: one attempt, two model calls, the output carries the body; the
 *     attempt's conversation is in `messages` (system, user, the assistant's call, the tool's
 *     result answering that call's id, the final answer), from attempt.succeeded, and
 *     `lhctl plan messages` prints it;
 *   - a call to a host that is not allowed is refused with a tool error the model sees;
 *   - a model that repeats the same call ends the attempt as "no progress"; the failed
 *     attempt's conversation is in `messages` too;
 *   - a model that calls ask_human ends the attempt with input.requested, and the worker goes on
 *     with other work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static int worker;

/* Markers are written with a JSON escape so that only the task's own prompt has them. */
#define GOAL(marker)                                                                          \
	"Use a tool\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Do it [case\\u003a" marker \
	"]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n"

/* `lhctl plan messages PLAN TASK` (stdout and stderr) into out; its exit status. */
static int lhctl_messages(const char *plan, const char *task, char *out, size_t cap)
{
	char cmd[1024];
	size_t n = 0;
	FILE *p;
	snprintf(cmd, sizeof(cmd), "'%s/cli/lhctl' plan messages %s %s --pg-url '%s' 2>&1",
		 ts.build_root, plan, task, ts.pg_url);
	if (!(p = popen(cmd, "r")))
		return -1;
	while (n + 1 < cap && !feof(p))
		n += fread(out + n, 1, cap - 1 - n, p);
	out[n] = 0;
	return WEXITSTATUS(pclose(p));
}

static const char *task_sql =
	"SELECT status || '|' || coalesce(output::text, '') FROM tasks WHERE plan_id = $1 AND "
	"task_no = 1";

static void t_fetch_allowed(void)
{
	char plan[40];
	lh_id_t id = ts_submit(&ts, GOAL("fetch"));
	const char *v;
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	v = ts_sql1(&ts, task_sql, plan);
	printf("# task 1: %s\n", v ? v : "(null)");
	T_CHECK(v && strncmp(v, "succeeded|", 10) == 0);
	/* the tool result the model saw: status 200 and /health's body */
	T_CHECK(v && strstr(v, "status") && strstr(v, "200") && strstr(v, "ok"));
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT llm_calls FROM task_attempts WHERE plan_id = $1 AND task_no = 1 AND "
			 "attempt = 1",
			 plan),
		 "2");
	/* the conversation, from the event alone */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT string_agg(role, ',' ORDER BY seq) FROM messages WHERE plan_id = $1 "
			 "AND task_no = 1 AND attempt = 1",
			 plan),
		 "system,user,assistant,tool,assistant");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT (a.tool_calls->0->>'name') || '|' || (a.tool_calls->0->>'id' = "
			 "t.tool_call_id)::text || '|' || (t.content LIKE '%\"status\":200%')::text "
			 "FROM messages a JOIN messages t USING (plan_id, task_no, attempt) WHERE "
			 "a.plan_id = $1 AND a.task_no = 1 AND a.seq = 2 AND t.seq = 3",
			 plan),
		 "http_fetch|true|true");
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT (CASE WHEN jsonb_typeof(k.output) = 'string' THEN m.content = "
			 "k.output #>> '{}' ELSE m.content::jsonb = k.output END)::text FROM messages m "
			 "JOIN tasks k "
			 "USING (plan_id, task_no) WHERE m.plan_id = $1 AND m.task_no = 1 AND m.seq = 4",
			 plan),
		 "true");
	{
		char out[16384];
		T_EQ_INT(lhctl_messages(plan, "1", out, sizeof(out)), 0);
		T_CHECK(strstr(out, "== attempt 1") && strstr(out, "[2] assistant") &&
			strstr(out, " http_fetch({\"url\":") && strstr(out, "[3] tool (answers "));
		T_EQ_INT(lhctl_messages(plan, "one", out, sizeof(out)), 2);
		T_CHECK(strstr(out, "not a task number") != NULL);
	}
}

static void t_fetch_refused(void)
{
	char plan[40];
	lh_id_t id = ts_submit(&ts, GOAL("denied"));
	const char *v;
	lh_uuid_fmt(&id, plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	v = ts_sql1(&ts, task_sql, plan);
	printf("# task 1: %s\n", v ? v : "(null)");
	T_CHECK(v && strstr(v, "not in the allowed hosts") != NULL);
}

static void t_no_progress(void)
{
	char plan[40];
	lh_id_t id = ts_submit(&ts, GOAL("loop"));
	const char *v;
	lh_uuid_fmt(&id, plan);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT count(*) > 0 FROM task_attempts WHERE plan_id = $1 AND task_no = 1 "
			    "AND status = 'failed'",
			    plan, "t"));
	v = ts_sql1(&ts,
		    "SELECT error_class || '|' || error_message || '|' || llm_calls FROM task_attempts "
		    "WHERE plan_id = $1 AND task_no = 1 AND attempt = 1",
		    plan);
	printf("# attempt 1: %s\n", v ? v : "(null)");
	T_CHECK(v && strncmp(v, "invalid_output|no progress:", 27) == 0);
	T_CHECK(v && strstr(v, "|3") != NULL); /* the third identical call is not run */
	/* attempt.failed carries the conversation: the calls made and their results, no answer */
	v = ts_sql1(&ts,
		    "SELECT string_agg(role, ',' ORDER BY seq) FROM messages WHERE plan_id = $1 AND "
		    "task_no = 1 AND attempt = 1",
		    plan);
	printf("# attempt 1's messages: %s\n", v ? v : "(null)");
	T_CHECK(v && strncmp(v, "system,user,assistant,tool,assistant,tool", 41) == 0);
}

static void t_ask_human(void)
{
	char plan[40];
	lh_id_t id = ts_submit(&ts, GOAL("ask"));
	const char *v;
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT count(*) FROM events WHERE plan_id = $1 AND type = 'input.requested'",
			    plan, "1"));
	v = ts_sql1(&ts,
		    "SELECT body->>'question' || '|' || (body->>'request_id') || '|' || "
		    "(body->'usage'->>'llm_calls') FROM events WHERE plan_id = $1 AND type = "
		    "'input.requested'",
		    plan);
	printf("# input.requested: %s\n", v ? v : "(null)");
	T_CHECK(v && strncmp(v, "Which city?|", 12) == 0);
	T_CHECK(v && strstr(v, plan) && strstr(v, ":t1:a1|1"));
	/* the attempt ended without an answer */
	T_EQ_STR(ts_sql1(&ts,
			 "SELECT count(*) FROM events WHERE plan_id = $1 AND task_no = 1 AND type IN "
			 "('attempt.succeeded', 'attempt.failed')",
			 plan),
		 "0");
	/* the worker is still up and takes other work */
	T_EQ_INT(ts_wait_exit(&ts, worker, 10), -1);
}

int main(int argc, char **argv)
{
	char web[128], url[128], script[2048], health[160];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	/* a second fakellm serves as the web site http_fetch reads (its GET /health) */
	if (ts_fakellm_with(&ts, 0, NULL, web)) {
		ts_finish(&ts);
		return 1;
	}
	snprintf(health, sizeof(health), "%.*s/health", (int)(strlen(web) - 3), web);
	snprintf(script, sizeof(script),
		 "{\"rules\":["
		 "{\"match\":\"[case:fetch]\",\"times\":1,\"tool_calls\":[{\"name\":\"http_fetch\","
		 "\"arguments\":{\"url\":\"%s\"}}]},"
		 "{\"match\":\"[case:denied]\",\"times\":1,\"tool_calls\":[{\"name\":\"http_fetch\","
		 "\"arguments\":{\"url\":\"http://203.0.113.9/secret\"}}]},"
		 "{\"match\":\"[case:loop]\",\"tool_calls\":[{\"name\":\"http_fetch\","
		 "\"arguments\":{\"url\":\"%s\"}}]},"
		 "{\"match\":\"[case:ask]\",\"times\":1,\"tool_calls\":[{\"name\":\"ask_human\","
		 "\"arguments\":{\"question\":\"Which city?\"}}]}]}",
		 health, health);
	if (ts_fakellm_with(&ts, 5, script, url)) {
		ts_finish(&ts);
		return 1;
	}
	setenv("ANTHROPIC_API_KEY", "test-key", 1); /* fakellm takes any key */
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	worker = ts_spawn_worker_url(&ts, "fast", url, "--provider", "anthropic",
				     "--http-allow-hosts", "127.0.0.1", "--http-allow-private", NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	T_RUN(t_ask_human);
	T_RUN(t_fetch_allowed);
	T_RUN(t_fetch_refused);
	T_RUN(t_no_progress);
	ts_finish(&ts);
	return t_done();
}
