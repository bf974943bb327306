/* lhctl — the command line of Longhaul.
 *
 *   lhctl dev [--detach]          run the whole stack on this machine (dev.c)
 *   lhctl dev stop | status
 *   lhctl run "GOAL"              submit a goal and watch it to the end (run.c)
 *   lhctl plan show ID | list     inspect plans in PostgreSQL (plan.c)
 *   lhctl events tail             decode lh.events to JSON lines (events.c)
 *   lhctl memory search|show|forget  the agents' memories (memory.c)
 *   lhctl token create|revoke|list  the gateway's bearer tokens (token.c)
 *   lhctl watch PLAN              follow a running plan to its end (watch.c)
 *   lhctl db migrate              apply the schema (db.c)
 *   lhctl version
 *
 * Each command group lives in its own file and exposes one `int lhctl_cmd_NAME(argc, argv)`
 * whose argv[0] is the group name; the result is the process exit status (common.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "log.h"

typedef struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} cmd_t;

static const cmd_t cmds[] = {
	{"dev", lhctl_cmd_dev, "run the whole stack on this machine (dev stop, dev status)"},
	{"run", lhctl_cmd_run, "submit a goal and watch it until it finishes"},
	{"plan", lhctl_cmd_plan,
	 "plans: plan show|list, plan pause|resume|cancel ID, plan cancel-task ID N, plan modify "
	 "ID PATCH"},
	{"watch", lhctl_cmd_watch, "follow a running plan to its end with a live progress bar"},
	{"requests", lhctl_cmd_steer, "pending approvals and questions (requests [--plan ID])"},
	{"approve", lhctl_cmd_steer, "approve a request (approve PLAN REQUEST [--budget-usd X])"},
	{"reject", lhctl_cmd_steer, "reject a request (reject PLAN REQUEST [--reason TEXT])"},
	{"respond", lhctl_cmd_steer, "answer a question (respond PLAN REQUEST ANSWER)"},
	{"token", lhctl_cmd_token,
	 "gateway bearer tokens (token create NAME --role R, token revoke NAME, token list)"},
	{"memory", lhctl_cmd_memory,
	 "agents' memories (memory search QUERY, memory show ID, memory forget ID)"},
	{"events", lhctl_cmd_events, "decode the event log to JSON lines (events tail)"},
	{"db", lhctl_cmd_db, "apply database migrations (db migrate)"},
	{"version", lhctl_cmd_version, "print the version"},
	{NULL, NULL, NULL},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: lhctl COMMAND [options]\n\n"
		     "Longhaul runs autonomous AI agents for days or weeks. lhctl starts a local "
		     "stack, submits goals, and inspects plans.\n\ncommands:\n");
	for (const cmd_t *c = cmds; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out, "\nquick start:\n  lhctl dev --detach\n  lhctl run \"write a haiku about "
		     "queues\"\n  lhctl dev stop\n\n`lhctl COMMAND --help` describes each command; "
		     "cli/README.md has the details.\n");
}

int main(int argc, char **argv)
{
	/* Quiet by default: librdkafka and libpq diagnostics become JSON log lines only when the user
	 * asks (--log-level / LH_LOG_LEVEL, applied by lhctl_load). */
	lh_log_init("lhctl", LH_LOG_OFF, NULL);
	/* A closed stdout (lhctl events tail | head) ends the command instead of killing it. */
	signal(SIGPIPE, SIG_IGN);
	/* Bound every PostgreSQL connection attempt (libpq reads this as connect_timeout). */
	setenv("PGCONNECT_TIMEOUT", "10", 0);

	if (argc < 2) {
		usage(stderr);
		return LHCTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return LHCTL_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0)
		return lhctl_cmd_version(argc - 1, argv + 1);
	for (const cmd_t *c = cmds; c->name; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->fn(argc - 1, argv + 1);
	return lhctl_fail(LHCTL_EXIT_USAGE, "unknown command \"%s\" (see lhctl --help)", argv[1]);
}
