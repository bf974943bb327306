/* plan.c — lhctl plan show ID, lhctl plan list: read-only views of PostgreSQL (named queries
 * plan_get, plan_timing, plan_tasks, plan_list). The materializer folds the log into these tables
 * a moment after the events happen, so a plan that just changed may show its previous state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "ids.h"
#include "pg.h"

typedef struct plan_cfg {
	lh_common_cfg_t common;
	int64_t limit;
	int64_t width;
} plan_cfg_t;

#define P(f) offsetof(plan_cfg_t, f)
static const lh_cfg_def_t show_table[] = {
	{"cli.width", LH_CFG_INT, "60", 10, 100000, NULL, NULL, "width", false, false,
	 "characters of each task's instructions shown in the table", P(width)},
	LH_CFG_END,
};
static const lh_cfg_def_t list_table[] = {
	{"cli.limit", LH_CFG_INT, "20", 1, 10000, NULL, NULL, "limit", false, false,
	 "how many plans to list, newest first", P(limit)},
	LH_CFG_END,
};

static const lh_cfg_spec_t show_spec = {
	.prog = "lhctl plan show",
	.usage = "ID [--width N] [--pg-url URL]",
	.summary = "Shows a plan from PostgreSQL: status, goal, version, tokens, cost and duration, "
		   "then one row per task (number, kind, tier, status, attempts, tokens, the tasks it "
		   "depends on, and its instructions, cut to --width). Task 0 is the planning task. "
		   "Without --pg-url / LH_PG_URL it reads the running dev stack's database.",
	.tables = {lh_config_common_table, show_table, NULL},
};

typedef struct messages_cfg {
	lh_common_cfg_t common;
	int64_t attempt;
	int64_t limit;
} messages_cfg_t;

#define M(f) offsetof(messages_cfg_t, f)
static const lh_cfg_def_t messages_table[] = {
	{"cli.attempt", LH_CFG_INT, "0", 0, 1000000, NULL, NULL, "attempt", false, false,
	 "only this attempt (0: every attempt of the task)", M(attempt)},
	{"cli.limit", LH_CFG_INT, "1000", 1, 10000, NULL, NULL, "limit", false, false,
	 "at most this many messages, the first ones in order", M(limit)},
	LH_CFG_END,
};

static const lh_cfg_spec_t messages_spec = {
	.prog = "lhctl plan messages",
	.usage = "ID TASK [--attempt N] [--limit N] [--pg-url URL]",
	.summary = "Prints the conversation of a task's attempts from PostgreSQL `messages`: each "
		   "message with its position and role, the tool calls an assistant made and the "
		   "call a tool result answers. Task 0 is the planning task. An attempt's messages "
		   "are there once it has ended (its attempt.succeeded or attempt.failed carries "
		   "them).",
	.tables = {lh_config_common_table, messages_table, NULL},
};

static const lh_cfg_spec_t list_spec = {
	.prog = "lhctl plan list",
	.usage = "[--limit N] [--tenant T] [--pg-url URL]",
	.summary = "Lists the newest plans of a tenant (default \"default\") from PostgreSQL.",
	.tables = {lh_config_common_table, list_table, NULL},
};

enum { PG_ID, PG_TENANT, PG_GOAL, PG_STATUS, PG_VERSION, PG_TOTAL, PG_SUCCEEDED, PG_IN, PG_OUT,
       PG_CACHED, PG_REASONING, PG_COST, PG_CREATED, PG_UPDATED, PG_FINISHED, PG_OUTPUT,
       PG_REASON };
enum { PT_NO, PT_KIND, PT_TIER, PT_STATUS, PT_ATTEMPTS, PT_IN, PT_OUT, PT_COST, PT_INSTR,
       PT_DEPS };

/* The plan's output as text: a JSON string prints as itself, anything else as JSON. New. */
static char *output_text(const char *json_text)
{
	json_error_t jerr;
	json_t *j = json_loads(json_text, JSON_DECODE_ANY, &jerr);
	char *s;
	if (!j)
		return strdup(json_text);
	s = json_is_string(j) ? strdup(json_string_value(j)) : json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static void print_header(lh_pg_res_t *plan, lh_pg_res_t *timing)
{
	char a[32], b[32], c[32], d[32];
	long long in = lh_pg_get_i64(plan, 0, PG_IN), out = lh_pg_get_i64(plan, 0, PG_OUT);
	char *goal = lhctl_one_line(lh_pg_get(plan, 0, PG_GOAL), 300);
	bool finished = timing && strcmp(lh_pg_get(timing, 0, 1), "t") == 0;

	printf("plan      %s\n", lh_pg_get(plan, 0, PG_ID));
	printf("status    %s\n", lh_pg_get(plan, 0, PG_STATUS));
	printf("goal      %s\n", goal);
	printf("version   %s\n", lh_pg_get(plan, 0, PG_VERSION));
	printf("tasks     %s/%s succeeded\n", lh_pg_get(plan, 0, PG_SUCCEEDED),
	       lh_pg_get(plan, 0, PG_TOTAL));
	printf("tokens    %s (input %s, output %s, cached %s)\n", lhctl_fmt_int(a, in + out),
	       lhctl_fmt_int(b, in), lhctl_fmt_int(c, out),
	       lhctl_fmt_int(d, lh_pg_get_i64(plan, 0, PG_CACHED)));
	printf("cost      $%.6f\n", atof(lh_pg_get(plan, 0, PG_COST)));
	if (timing)
		printf("started   %s\nduration  %s%s\n", lh_pg_get(timing, 0, 2),
		       lhctl_fmt_dur(a, lh_pg_get_i64(timing, 0, 0)), finished ? "" : " so far");
	if (!lh_pg_isnull(plan, 0, PG_REASON) && *lh_pg_get(plan, 0, PG_REASON)) {
		char *r = lhctl_one_line(lh_pg_get(plan, 0, PG_REASON), 500);
		printf("reason    %s\n", r);
		free(r);
	}
	if (!lh_pg_isnull(plan, 0, PG_OUTPUT)) {
		char *o = output_text(lh_pg_get(plan, 0, PG_OUTPUT));
		char *line = lhctl_one_line(o, 500);
		printf("answer    %s\n", line);
		free(line);
		free(o);
	}
	free(goal);
}

static void print_tasks(lh_pg_res_t *tasks, int width)
{
	int n = lh_pg_nrows(tasks);
	printf("\n%4s  %-9s  %-10s  %-20s  %3s  %8s  %-8s  %s\n", "TASK", "KIND", "TIER", "STATUS",
	       "ATT", "TOKENS", "DEPS", "INSTRUCTIONS");
	for (int i = 0; i < n; i++) {
		char tok[32];
		char *instr = lhctl_one_line(lh_pg_get(tasks, i, PT_INSTR), (size_t)width);
		const char *deps = lh_pg_isnull(tasks, i, PT_DEPS) ? "-" : lh_pg_get(tasks, i, PT_DEPS);
		printf("%4s  %-9s  %-10s  %-20s  %3s  %8s  %-8s  %s\n", lh_pg_get(tasks, i, PT_NO),
		       lh_pg_get(tasks, i, PT_KIND), lh_pg_get(tasks, i, PT_TIER),
		       lh_pg_get(tasks, i, PT_STATUS), lh_pg_get(tasks, i, PT_ATTEMPTS),
		       lhctl_fmt_int(tok, lh_pg_get_i64(tasks, i, PT_IN) +
						  lh_pg_get_i64(tasks, i, PT_OUT)),
		       deps, instr);
		free(instr);
	}
	if (n == 0)
		printf("(no tasks yet)\n");
}

static int plan_show(int argc, char **argv)
{
	plan_cfg_t cfg = {0};
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *plan = NULL, *timing = NULL, *tasks = NULL;
	char **rest = NULL, id[LH_UUID_STR_LEN + 1];
	const char *params[1] = {id};
	lh_id_t plan_id;
	int nrest = 0, rc;

	if ((rc = lhctl_load(&show_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest != 1) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, nrest == 0 ? "plan show needs a plan id: lhctl plan "
							       "show ID"
							     : "plan show takes one plan id");
		goto out_free_cfg;
	}
	if (lh_uuid_parse(rest[0], &plan_id)) {
		char *shown = lhctl_one_line(rest[0], 64);
		rc = lhctl_fail(LHCTL_EXIT_USAGE,
				"\"%s\" is not a plan id (expected a UUID such as "
				"0190f3c2-7a1e-7c44-9b1d-2f0e6a9c1b23)",
				shown);
		free(shown);
		goto out_free_cfg;
	}
	lh_uuid_fmt(&plan_id, id);
	if (lhctl_resolve(&cfg.common, false, true, NULL, &err) ||
	    lh_pg_connect(cfg.common.pg_url, &pg, &err) ||
	    lh_pg_query(pg, "plan_get", 1, params, NULL, NULL, &plan, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_pg;
	}
	if (lh_pg_nrows(plan) == 0) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "plan %s not found", id);
		goto out_free_pg;
	}
	if (lh_pg_query(pg, "plan_timing", 1, params, NULL, NULL, &timing, &err) ||
	    lh_pg_query(pg, "plan_tasks", 1, params, NULL, NULL, &tasks, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_pg;
	}
	print_header(plan, lh_pg_nrows(timing) == 1 ? timing : NULL);
	print_tasks(tasks, (int)cfg.width);
	rc = fflush(stdout) == 0 ? LHCTL_EXIT_OK : LHCTL_EXIT_FAIL;
out_free_pg:
	lh_pg_res_free(tasks);
	lh_pg_res_free(timing);
	lh_pg_res_free(plan);
	lh_pg_free(pg);
out_free_cfg:
	free(rest);
	lh_config_finish(&show_spec, &cfg);
	return rc;
}

/* One message of api_plan_messages' JSON array, for a terminal. */
static void print_message(const json_t *m, int64_t *last_attempt)
{
	const char *content = json_string_value(json_object_get(m, "content"));
	const char *call = json_string_value(json_object_get(m, "tool_call_id"));
	json_t *calls = json_object_get(m, "tool_calls"), *c;
	int64_t attempt = json_integer_value(json_object_get(m, "attempt"));
	size_t i;
	if (attempt != *last_attempt) {
		printf("%s== attempt %lld\n", *last_attempt ? "\n" : "", (long long)attempt);
		*last_attempt = attempt;
	}
	printf("[%lld] %s%s%s%s\n", (long long)json_integer_value(json_object_get(m, "seq")),
	       json_string_value(json_object_get(m, "role")), call ? " (answers " : "",
	       call ? call : "", call ? ")" : "");
	if (content)
		printf("%s\n", content);
	json_array_foreach(calls, i, c)
		printf("-> %s %s(%s)\n", json_string_value(json_object_get(c, "id")),
		       json_string_value(json_object_get(c, "name")),
		       json_string_value(json_object_get(c, "arguments")));
}

static int plan_messages(int argc, char **argv)
{
	messages_cfg_t cfg = {0};
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	char **rest = NULL, id[LH_UUID_STR_LEN + 1], task[24], attempt[24], limit[24];
	const char *params[4] = {id, task, attempt, limit};
	lh_id_t plan_id;
	json_t *arr = NULL, *m;
	int64_t last = 0;
	size_t i;
	char *end;
	long long t;
	int nrest = 0, rc;

	if ((rc = lhctl_load(&messages_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest != 2) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "plan messages needs a plan id and a task number: "
						  "lhctl plan messages ID TASK");
		goto out_free_cfg;
	}
	if (lh_uuid_parse(rest[0], &plan_id)) {
		char *shown = lhctl_one_line(rest[0], 64);
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "\"%s\" is not a plan id (expected a UUID)", shown);
		free(shown);
		goto out_free_cfg;
	}
	t = strtoll(rest[1], &end, 10);
	if (!*rest[1] || *end || t < 0 || t > 1000000) {
		char *shown = lhctl_one_line(rest[1], 32);
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "\"%s\" is not a task number (0 to 1000000)",
				shown);
		free(shown);
		goto out_free_cfg;
	}
	lh_uuid_fmt(&plan_id, id);
	snprintf(task, sizeof(task), "%lld", t);
	snprintf(attempt, sizeof(attempt), "%lld", (long long)cfg.attempt);
	snprintf(limit, sizeof(limit), "%lld", (long long)cfg.limit);
	if (!cfg.attempt)
		params[2] = NULL;
	if (lhctl_resolve(&cfg.common, false, true, NULL, &err) ||
	    lh_pg_connect(cfg.common.pg_url, &pg, &err) ||
	    lh_pg_query(pg, "api_plan_messages", 4, params, NULL, NULL, &res, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_pg;
	}
	if (!(arr = json_loads(lh_pg_get(res, 0, 0), 0, NULL)) || !json_is_array(arr)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "unexpected answer from PostgreSQL");
		goto out_free_pg;
	}
	if (!json_array_size(arr))
		printf("no messages for task %s of plan %s%s (an attempt's appear when it ends)\n",
		       task, id, cfg.attempt ? " at that attempt" : "");
	json_array_foreach(arr, i, m)
		print_message(m, &last);
	rc = fflush(stdout) == 0 ? LHCTL_EXIT_OK : LHCTL_EXIT_FAIL;
out_free_pg:
	json_decref(arr);
	lh_pg_res_free(res);
	lh_pg_free(pg);
out_free_cfg:
	free(rest);
	lh_config_finish(&messages_spec, &cfg);
	return rc;
}

static int plan_list(int argc, char **argv)
{
	plan_cfg_t cfg = {0};
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	char **rest = NULL, limit[24];
	const char *params[2];
	int nrest = 0, rc, n;

	if ((rc = lhctl_load(&list_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest > 0) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "plan list takes no arguments (got \"%s\")", rest[0]);
		goto out_free_cfg;
	}
	snprintf(limit, sizeof(limit), "%lld", (long long)cfg.limit);
	params[0] = cfg.common.tenant;
	params[1] = limit;
	if (lhctl_resolve(&cfg.common, false, true, NULL, &err) ||
	    lh_pg_connect(cfg.common.pg_url, &pg, &err) ||
	    lh_pg_query(pg, "plan_list", 2, params, NULL, NULL, &res, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_pg;
	}
	n = lh_pg_nrows(res);
	if (n == 0)
		printf("no plans yet for tenant \"%s\" (submit one: lhctl run \"GOAL\")\n",
		       cfg.common.tenant);
	else
		printf("%-36s  %-9s  %7s  %-19s  %s\n", "PLAN", "STATUS", "TASKS", "CREATED", "GOAL");
	for (int i = 0; i < n; i++) {
		char tasks[48];
		char *goal = lhctl_one_line(lh_pg_get(res, i, 5), 60);
		snprintf(tasks, sizeof(tasks), "%s/%s", lh_pg_get(res, i, 2), lh_pg_get(res, i, 3));
		printf("%-36s  %-9s  %7s  %-19.19s  %s\n", lh_pg_get(res, i, 0), lh_pg_get(res, i, 1),
		       tasks, lh_pg_get(res, i, 4), goal);
		free(goal);
	}
	rc = fflush(stdout) == 0 ? LHCTL_EXIT_OK : LHCTL_EXIT_FAIL;
out_free_pg:
	lh_pg_res_free(res);
	lh_pg_free(pg);
out_free_cfg:
	free(rest);
	lh_config_finish(&list_spec, &cfg);
	return rc;
}

int lhctl_cmd_plan(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: lhctl plan show ID | lhctl plan list [--limit N] | lhctl plan "
			"messages ID TASK | lhctl plan pause|resume|cancel ID | lhctl plan "
			"cancel-task ID TASK | lhctl plan modify ID PATCH.json|-\n\n"
			"  show ID            a plan's status, usage and tasks (from PostgreSQL)\n"
			"  messages ID TASK   the conversation of a task's attempts (from PostgreSQL)\n"
			"  list               the newest plans\n"
			"  pause|resume|cancel ID    steer a plan (an event on lh.events)\n"
			"  cancel-task ID N   cancel one task; the tasks that need it are skipped\n"
			"  modify ID PATCH    add, remove, reorder or edit tasks: {base_version, "
			"tasks, remove,\n"
			"                     join_instructions, reason} (cli/README.md)\n\n"
			"`lhctl plan show --help` lists the options.\n");
		return argc < 2 ? LHCTL_EXIT_USAGE : LHCTL_EXIT_OK;
	}
	if (strcmp(argv[1], "show") == 0)
		return plan_show(argc - 1, argv + 1);
	if (strcmp(argv[1], "messages") == 0)
		return plan_messages(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "ls") == 0)
		return plan_list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "pause") || !strcmp(argv[1], "resume") || !strcmp(argv[1], "cancel") ||
	    !strcmp(argv[1], "cancel-task") || !strcmp(argv[1], "modify"))
		return lhctl_cmd_steer(argc, argv);
	return lhctl_fail(LHCTL_EXIT_USAGE, "unknown plan command \"%s\" (try: lhctl plan show ID)",
			  argv[1]);
}
