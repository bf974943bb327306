/* steer.c — people steer plans from the terminal: lhctl requests, approve, reject, respond,
 * plan pause|resume|cancel|cancel-task. Every command appends an event to lh.events (the
 * coordinator folds it) and waits until the broker acknowledges it; nothing talks to the
 * coordinator directly. Each event's id comes from an idempotency key (--idempotency-key, or a
 * fresh one), so running a command again with the same key appends nothing new. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "cli.h"
#include "common.h"
#include "event.h"
#include "ids.h"
#include "kafka.h"
#include "pg.h"
#include "plan_patch.h"

#define DELIVERY_TIMEOUT_MS 15000
#define CONNECT_TIMEOUT_MS 5000

typedef struct steer_cfg {
	lh_common_cfg_t common;
	char *reason;
	char *key;
	char *responder_type;
	char *responder_id;
	double budget_usd;
	int64_t budget_tokens;
	int64_t budget_tasks;
	int64_t budget_replans;
	int64_t budget_deadline_s;
	char *edit;
	char *plan;
} steer_cfg_t;

#define S(f) offsetof(steer_cfg_t, f)
static const lh_cfg_def_t steer_table[] = {
	{"cli.reason", LH_CFG_STR, "", 0, 0, NULL, NULL, "reason", false, false,
	 "why (kept in the decision log)", S(reason)},
	{"cli.idempotency_key", LH_CFG_STR, "", 0, 0, NULL, NULL, "idempotency-key", false, false,
	 "the same key again appends nothing new (default: a fresh key)", S(key)},
	{"cli.responder_type", LH_CFG_ENUM, "human", 0, 0, "human|ai_agent|automated_rule", NULL,
	 "as", false, false, "who answers", S(responder_type)},
	{"cli.responder_id", LH_CFG_STR, "", 0, 0, NULL, "LH_RESPONDER_ID", "responder-id", false,
	 false, "the responder's name (default: user@host)", S(responder_id)},
	{"cli.budget_usd", LH_CFG_DOUBLE, "0", 0, 1000000, NULL, NULL, "budget-usd", false, false,
	 "approve: new cost limit in USD", S(budget_usd)},
	{"cli.budget_tokens", LH_CFG_INT, "0", 0, 1000000000000, NULL, NULL, "budget-tokens", false,
	 false, "approve: new token limit", S(budget_tokens)},
	{"cli.budget_tasks", LH_CFG_INT, "0", 0, 1000000, NULL, NULL, "budget-tasks", false, false,
	 "approve: new task limit", S(budget_tasks)},
	{"cli.budget_replans", LH_CFG_INT, "0", 0, 1000, NULL, NULL, "budget-replans", false, false,
	 "approve: new replan limit", S(budget_replans)},
	{"cli.budget_deadline_s", LH_CFG_INT, "0", 0, 31536000, NULL, NULL, "budget-deadline", false,
	 false, "approve: new wall-clock limit in seconds", S(budget_deadline_s)},
	{"cli.edit", LH_CFG_STR, "", 0, 0, NULL, NULL, "edit", false, false,
	 "approve: the result to use instead (JSON, or text)", S(edit)},
	{"cli.plan", LH_CFG_STR, "", 0, 0, NULL, NULL, "plan", false, false,
	 "requests: only this plan", S(plan)},
	LH_CFG_END,
};

static const lh_cfg_spec_t steer_spec = {
	.prog = "lhctl",
	.usage = "requests [--plan ID] | approve PLAN REQUEST [--budget-usd X ...] [--edit X] | "
		 "reject PLAN REQUEST | respond PLAN REQUEST ANSWER | plan "
		 "pause|resume|cancel PLAN | plan cancel-task PLAN TASK | plan modify PLAN "
		 "PATCH.json|-",
	.summary = "Steers plans: lists pending approvals and questions, answers them (as a person by "
		   "default; --as ai_agent or automated_rule), pauses, resumes or cancels a plan or "
		   "one task. Each command appends one event to lh.events and waits for the broker "
		   "to acknowledge it.",
	.tables = {lh_config_common_table, steer_table, NULL},
};

typedef struct sent {
	int done;
	lh_err_t rc;
	char msg[512];
} sent_t;

static void on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
			int32_t partition, int64_t offset)
{
	sent_t *s = opaque;
	s->done = 1;
	s->rc = rc;
	if (rc)
		snprintf(s->msg, sizeof(s->msg), "%s", err ? err->msg : "delivery failed");
}

/* Append one event for plan_id; waits for the acknowledgement. */
static int append(steer_cfg_t *cfg, const lh_id_t *plan_id, lh_event_type_t type, int64_t task_no,
		  void *body, const char *what)
{
	sent_t sent = {0};
	lh_kafka_opts_t ko = {.brokers = cfg->common.brokers, .client_id = "lhctl",
			      .on_delivery = on_delivery, .message_timeout_ms = DELIVERY_TIMEOUT_MS,
			      .opaque = &sent};
	lh_kafka_t *k = NULL;
	lh_error_t err = {0};
	lh_event_t ev = {0};
	lh_buf_t scratch;
	char topic[LH_TOPIC_MAX], key[80], host[64] = "host", actor[160];
	int rc = LHCTL_EXIT_OK;

	if (*cfg->key)
		snprintf(key, sizeof(key), "%.79s", cfg->key);
	else {
		lh_id_t r = lh_uuid7_new();
		lh_uuid_fmt(&r, key);
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(actor, sizeof(actor), "%s@%s", getenv("USER") ? getenv("USER") : "user", host);
	ev.v = LH_ENVELOPE_VERSION;
	ev.type = type;
	ev.plan_id = *plan_id;
	ev.task_no = task_no;
	ev.ts_us = lh_now_us();
	ev.tenant = cfg->common.tenant;
	ev.actor.kind = !strcmp(cfg->responder_type, "human") ? "human" : cfg->responder_type;
	ev.actor.id = *cfg->responder_id ? cfg->responder_id : actor;
	ev.body = body;
	ev.id = lh_event_id_derivef(plan_id, lh_event_type_name(type), 0, "idempotency:%s", key);
	lh_buf_init(&scratch);
	if (lh_topic(cfg->common.topic_prefix, "events", topic, &err) ||
	    lh_kafka_new(&ko, &k, &err) || lh_kafka_wait_ready(k, CONNECT_TIMEOUT_MS, &err) ||
	    lh_bus_emit(k, topic, &ev, false, &scratch, NULL, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not %s: %s", what, err.msg);
		goto out_free;
	}
	for (int waited = 0; !sent.done && waited < DELIVERY_TIMEOUT_MS + 2000; waited += 100)
		lh_kafka_poll(k, 100);
	if (!sent.done || sent.rc)
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not %s: %s", what,
				sent.done ? sent.msg : "the broker did not acknowledge in time");
	else
		printf("%s (event %s)\n", what, key);
out_free:
	lh_buf_finish(&scratch);
	lh_kafka_free(k);
	return rc;
}

/* The plan must exist (in PostgreSQL); the request, when given, must be pending there and of the
 * kind the command answers (question: respond; anything else is an approval: approve, reject). */
static int check(steer_cfg_t *cfg, const char *plan_arg, const char *request, bool question,
		 lh_id_t *ret_id, bool *ret_pending)
{
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	char id[LH_UUID_STR_LEN + 1];
	const char *params[2] = {id, request};
	int rc = LHCTL_EXIT_OK;
	if (lh_uuid_parse(plan_arg, ret_id))
		return lhctl_fail(LHCTL_EXIT_USAGE, "\"%.64s\" is not a plan id (a UUID)", plan_arg);
	lh_uuid_fmt(ret_id, id);
	if (lhctl_resolve(&cfg->common, true, true, NULL, &err) ||
	    lh_pg_connect(cfg->common.pg_url, &pg, &err) ||
	    lh_pg_query(pg, "plan_status", 1, params, NULL, NULL, &res, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	if (lh_pg_nrows(res) == 0) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "plan %s not found", id);
		goto out_free;
	}
	if (request) {
		res = lh_pg_res_free(res);
		if (lh_pg_query(pg, "request_status", 2, params, NULL, NULL, &res, &err)) {
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
			goto out_free;
		}
		/* a request not materialized yet may still come: the answer is kept until it does */
		*ret_pending = lh_pg_nrows(res) == 0 || !strcmp(lh_pg_get(res, 0, 0), "pending");
		if (lh_pg_nrows(res) == 1 && question != !strcmp(lh_pg_get(res, 0, 1), "question")) {
			rc = lhctl_fail(LHCTL_EXIT_FAIL,
					question ? "request %s of plan %s is an approval (%s): use lhctl "
						   "approve or lhctl reject"
						 : "request %s of plan %s is a %s: answer it with lhctl "
						   "respond",
					request, id, lh_pg_get(res, 0, 1));
			goto out_free;
		}
		if (lh_pg_nrows(res) == 1 && !*ret_pending) {
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "request %s of plan %s is already %s", request,
					id, lh_pg_get(res, 0, 0));
			goto out_free;
		}
	}
out_free:
	lh_pg_res_free(res);
	lh_pg_free(pg);
	return rc;
}

static int requests(steer_cfg_t *cfg)
{
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	const char *params[2] = {cfg->common.tenant, *cfg->plan ? cfg->plan : NULL};
	int rc = LHCTL_EXIT_OK, n;
	lh_id_t id;
	if (*cfg->plan && lh_uuid_parse(cfg->plan, &id))
		return lhctl_fail(LHCTL_EXIT_USAGE, "--plan \"%.64s\" is not a plan id", cfg->plan);
	if (lhctl_resolve(&cfg->common, false, true, NULL, &err) ||
	    lh_pg_connect(cfg->common.pg_url, &pg, &err) ||
	    lh_pg_query(pg, "requests_pending", 2, params, NULL, NULL, &res, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	n = lh_pg_nrows(res);
	if (n == 0)
		printf("no pending requests\n");
	for (int i = 0; i < n; i++) {
		char *q = lhctl_one_line(lh_pg_get(res, i, 4), 300);
		printf("%s  %s  task %s  %s  (%.19s)\n  %s\n", lh_pg_get(res, i, 0),
		       lh_pg_get(res, i, 1), lh_pg_isnull(res, i, 2) ? "-" : lh_pg_get(res, i, 2),
		       lh_pg_get(res, i, 3), lh_pg_get(res, i, 5), q);
		free(q);
	}
out_free:
	lh_pg_res_free(res);
	lh_pg_free(pg);
	return rc;
}

static int decide(steer_cfg_t *cfg, char **rest, int nrest, bool approve)
{
	lh_approval_decided_t d = {.decision = approve ? "approve" : "reject",
				   .responder_type = cfg->responder_type,
				   .responder_id = *cfg->responder_id ? cfg->responder_id : NULL,
				   .reason = *cfg->reason ? cfg->reason : NULL};
	lh_id_t id;
	bool pending = false;
	json_t *edit = NULL;
	int rc;
	if (nrest != 2)
		return lhctl_fail(LHCTL_EXIT_USAGE, "usage: lhctl %s PLAN REQUEST",
				  approve ? "approve" : "reject");
	if ((rc = check(cfg, rest[0], rest[1], false, &id, &pending)))
		return rc;
	if (cfg->budget_usd > 0 || cfg->budget_tokens || cfg->budget_tasks || cfg->budget_replans ||
	    cfg->budget_deadline_s) {
		d.has_budget = true;
		d.budget = (lh_budget_t){.usd = cfg->budget_usd, .tokens = cfg->budget_tokens,
					 .tasks = cfg->budget_tasks, .replans = cfg->budget_replans,
					 .deadline_s = cfg->budget_deadline_s};
	}
	if (*cfg->edit) {
		edit = json_loads(cfg->edit, JSON_DECODE_ANY, NULL);
		if (!edit)
			edit = json_string(cfg->edit);
		if (!edit)
			return lhctl_fail(LHCTL_EXIT_USAGE, "--edit is not valid UTF-8");
		d.edit = edit;
	}
	d.request_id = rest[1];
	rc = append(cfg, &id, LH_EV_APPROVAL_DECIDED, LH_NO_TASK, &d,
		    approve ? "approved" : "rejected");
	json_decref(edit);
	return rc;
}

static int respond(steer_cfg_t *cfg, char **rest, int nrest)
{
	lh_input_provided_t b = {.responder_type = cfg->responder_type,
				 .responder_id = *cfg->responder_id ? cfg->responder_id : NULL};
	lh_id_t id;
	bool pending = false;
	json_t *answer;
	int rc;
	if (nrest != 3)
		return lhctl_fail(LHCTL_EXIT_USAGE, "usage: lhctl respond PLAN REQUEST ANSWER");
	if (!*rest[2])
		return lhctl_fail(LHCTL_EXIT_USAGE, "the answer is empty");
	if ((rc = check(cfg, rest[0], rest[1], true, &id, &pending)))
		return rc;
	if (!(answer = json_string(rest[2])))
		return lhctl_fail(LHCTL_EXIT_USAGE, "the answer is not valid UTF-8");
	b.request_id = rest[1];
	b.answer = answer;
	rc = append(cfg, &id, LH_EV_INPUT_PROVIDED, LH_NO_TASK, &b, "answered");
	json_decref(answer);
	return rc;
}

static int command(steer_cfg_t *cfg, const char *cmd, char **rest, int nrest)
{
	lh_command_issued_t c = {.command = cmd, .reason = *cfg->reason ? cfg->reason : NULL,
				 .idempotency_key = *cfg->key ? cfg->key : NULL};
	bool task = !strcmp(cmd, "cancel_task");
	char what[64];
	lh_id_t id;
	int rc;
	if (nrest != (task ? 2 : 1))
		return lhctl_fail(LHCTL_EXIT_USAGE, task ? "usage: lhctl plan cancel-task PLAN TASK"
							 : "usage: lhctl plan pause|resume|cancel PLAN");
	if (task) {
		char *end;
		c.task_no = strtoll(rest[1], &end, 10);
		if (*end || c.task_no < 1)
			return lhctl_fail(LHCTL_EXIT_USAGE, "\"%.32s\" is not a task number (1 or more)",
					  rest[1]);
	}
	if ((rc = check(cfg, rest[0], NULL, false, &id, NULL)))
		return rc;
	snprintf(what, sizeof(what), "%s requested", task ? "cancel of the task" : cmd);
	return append(cfg, &id, LH_EV_COMMAND_ISSUED, LH_NO_TASK, &c, what);
}

#define PATCH_MAX_BYTES (1024 * 1024)

/* The patch file (or stdin for "-"): one JSON object. New reference or NULL after printing. */
static json_t *read_patch(const char *path, int *ret_rc)
{
	json_error_t jerr;
	json_t *j;
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf;
	size_t n;
	if (!f) {
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "could not open %s", path);
		return NULL;
	}
	buf = malloc(PATCH_MAX_BYTES + 1);
	if (!buf)
		abort();
	n = fread(buf, 1, PATCH_MAX_BYTES + 1, f);
	if (f != stdin)
		fclose(f);
	if (n > PATCH_MAX_BYTES) {
		free(buf);
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "the patch is larger than %d bytes",
				     PATCH_MAX_BYTES);
		return NULL;
	}
	j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!j)
		*ret_rc = lhctl_fail(LHCTL_EXIT_USAGE, "the patch is not JSON: %s (line %d, column %d)",
				     jerr.text, jerr.line, jerr.column);
	return j;
}

/* lhctl plan modify PLAN FILE|-: the same patch and checks as POST /v1/plans/{id}/modify
 * (common/plan_patch.h), appended as plan.revised. */
static int modify(steer_cfg_t *cfg, char **rest, int nrest)
{
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	json_t *patch = NULL, *current = NULL;
	lh_arena_t *arena = NULL;
	lh_plan_revised_t *rev;
	const char *conflict = NULL, *params[2];
	char id_s[LH_UUID_STR_LEN + 1], what[96];
	lh_id_t id;
	int rc = LHCTL_EXIT_OK;
	lh_err_t prc;
	if (nrest != 2)
		return lhctl_fail(LHCTL_EXIT_USAGE, "usage: lhctl plan modify PLAN PATCH.json|-");
	if (!(patch = read_patch(rest[1], &rc)))
		return rc;
	if ((rc = check(cfg, rest[0], NULL, false, &id, NULL)))
		goto out_free;
	lh_uuid_fmt(&id, id_s);
	params[0] = id_s;
	params[1] = NULL;
	if (lh_pg_connect(cfg->common.pg_url, &pg, &err) ||
	    lh_pg_query(pg, "api_plan_get", 2, params, NULL, NULL, &res, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	if (lh_pg_nrows(res) != 1 || !(current = json_loads(lh_pg_get(res, 0, 0), 0, NULL))) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "plan %s not found", id_s);
		goto out_free;
	}
	arena = lh_arena_new(0);
	prc = lh_plan_patch(current, patch, arena, &rev, &conflict, &err);
	if (prc) {
		rc = lhctl_fail(prc == LH_ERR_CONFLICT ? LHCTL_EXIT_FAIL : LHCTL_EXIT_USAGE,
				"%s%s%s", prc == LH_ERR_CONFLICT ? "" : "the patch: ", err.msg,
				prc == LH_ERR_CONFLICT && !strcmp(conflict, "version_conflict")
					? " (lhctl plan show prints the version)"
					: "");
		goto out_free;
	}
	snprintf(what, sizeof(what), "plan modified: version %lld, join is task %lld",
		 (long long)rev->version, (long long)rev->tasks.v[rev->tasks.n - 1].task_no);
	rc = append(cfg, &id, LH_EV_PLAN_REVISED, LH_NO_TASK, rev, what);
out_free:
	lh_arena_free(arena);
	lh_pg_res_free(res);
	lh_pg_free(pg);
	json_decref(current);
	json_decref(patch);
	return rc;
}

int lhctl_cmd_steer(int argc, char **argv)
{
	steer_cfg_t cfg = {0};
	char **rest = NULL;
	int nrest = 0, rc;
	const char *verb = argv[0];
	if (!strcmp(verb, "plan")) { /* lhctl plan pause|resume|cancel|cancel-task ... */
		argc--;
		argv++;
		verb = argv[0];
	}
	if ((rc = lhctl_load(&steer_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (!strcmp(verb, "requests"))
		rc = nrest ? lhctl_fail(LHCTL_EXIT_USAGE, "requests takes no arguments") : requests(&cfg);
	else if (!strcmp(verb, "approve") || !strcmp(verb, "reject"))
		rc = decide(&cfg, rest, nrest, !strcmp(verb, "approve"));
	else if (!strcmp(verb, "respond"))
		rc = respond(&cfg, rest, nrest);
	else if (!strcmp(verb, "pause") || !strcmp(verb, "resume") || !strcmp(verb, "cancel"))
		rc = command(&cfg, verb, rest, nrest);
	else if (!strcmp(verb, "cancel-task"))
		rc = command(&cfg, "cancel_task", rest, nrest);
	else if (!strcmp(verb, "modify"))
		rc = modify(&cfg, rest, nrest);
	else
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "unknown command \"%s\"", verb);
	free(rest);
	lh_config_finish(&steer_spec, &cfg);
	return rc;
}
