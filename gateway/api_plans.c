/* api_plans.c — /v1/goals and /v1/plans...: reads from PostgreSQL (JSON built by the named
 * queries), writes appended to lh.events (goal.submitted, command.issued) through gw_append.
 * A plan is visible once the materializer has folded its goal.submitted; until then, and for
 * another tenant's plan, the answer is 404. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "ids.h"
#include "plan_patch.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 500
#define MESSAGES_LIMIT_DEFAULT 1000 /* messages in one reply */
#define MESSAGES_LIMIT_MAX 10000

static const char *const plan_statuses[] = {"planning", "running", "paused", "waiting",
					    "completed", "failed", "cancelled", NULL};

/* A canonical form of a parsed body for the idempotency hash; new string. */
static char *canonical(const json_t *body)
{
	return json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Parse body strictly into the event body struct of type; false after replying 400. */
static bool parse_body(struct evhttp_request *req, lh_event_type_t type, const json_t *body,
		       lh_arena_t *arena, void **ret)
{
	lh_error_t err = {0};
	if (lh_struct_from_json(lh_event_body_desc(type), body, arena, ret, &err)) {
		gw_reply_error(req, 400, "invalid_body", "%s", err.msg);
		return false;
	}
	return true;
}

void gw_api_goals_post(gw_t *gw, struct evhttp_request *req)
{
	gw_caller_t caller;
	json_t *body = NULL;
	char key[257], plan[LH_UUID_STR_LEN + 1], *canon = NULL;
	lh_arena_t *arena = NULL;
	lh_goal_submitted_t *gs;
	lh_event_t ev = {0};

	if (!gw_auth(gw, req, GW_ADMIN, &caller) || !(body = gw_read_body(gw, req)))
		return;
	if (!gw_idempotency_key(req, body, key))
		goto out_free_body;
	arena = lh_arena_new(0);
	if (!parse_body(req, LH_EV_GOAL_SUBMITTED, body, arena, (void **)&gs))
		goto out_free_arena;
	gs->idempotency_key = key;
	canon = canonical(body);
	ev.type = LH_EV_GOAL_SUBMITTED;
	ev.task_no = LH_NO_TASK;
	ev.plan_id = lh_uuid7_new(); /* replaced by the stored one when the key was seen */
	ev.body = gs;
	if (!gw_append(gw, req, &caller, key, "goal", canon ? canon : "", &ev))
		goto out_free_arena;
	lh_uuid_fmt(&ev.plan_id, plan);
	{
		json_t *j = json_pack("{s:s}", "plan_id", plan);
		char loc[64];
		snprintf(loc, sizeof(loc), "/v1/plans/%s", plan);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
		gw_reply_json(req, 202, j);
		json_decref(j);
	}
out_free_arena:
	free(canon);
	lh_arena_free(arena);
out_free_body:
	json_decref(body);
}

static bool word_in(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (!strcmp(s, *words))
			return true;
	return false;
}

/* Run a named query whose single row and column is JSON text, and reply with it (or 404 when no
 * row came back). */
static void reply_query(gw_t *gw, struct evhttp_request *req, const char *query, int n,
			const char *const *params, const char *what)
{
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	if (!gw_pg(gw, req))
		return;
	if (lh_pg_query(gw->pg, query, n, params, NULL, NULL, &res, &err)) {
		if (err.code == LH_ERR_PG && strstr(err.msg, "uuid"))
			gw_reply_error(req, 404, "not_found", "no such %s", what);
		else
			gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
	} else if (lh_pg_nrows(res) != 1)
		gw_reply_error(req, 404, "not_found", "no such %s", what);
	else
		gw_reply_json_text(req, 200, lh_pg_get(res, 0, 0));
	lh_pg_res_free(res);
}

void gw_api_plans_list(gw_t *gw, struct evhttp_request *req)
{
	gw_caller_t caller;
	struct evkeyvalq q;
	char limit[16];
	const char *status, *params[3];
	if (!gw_auth(gw, req, GW_VIEWER, &caller) || !gw_query_params(req, "status|limit", &q))
		return;
	status = evhttp_find_header(&q, "status");
	if (status && !word_in(status, plan_statuses)) {
		gw_reply_error(req, 400, "invalid_query",
			       "status must be one of planning, running, paused, waiting, "
			       "completed, failed, cancelled; not \"%.32s\"",
			       status);
		goto out_free_q;
	}
	if (!gw_query_limit(req, &q, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, limit))
		goto out_free_q;
	params[0] = caller.read_tenant;
	params[1] = status;
	params[2] = limit;
	reply_query(gw, req, "api_plans_list", 3, params, "plans");
out_free_q:
	evhttp_clear_headers(&q);
}

bool gw_plan_visible(gw_t *gw, struct evhttp_request *req, const gw_caller_t *caller,
		     const char *plan)
{
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	const char *params[2] = {plan, caller->read_tenant};
	bool ok;
	if (!gw_pg(gw, req))
		return false;
	if (lh_pg_query(gw->pg, "api_plan_visible", 2, params, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		return false;
	}
	ok = lh_pg_nrows(res) == 1;
	lh_pg_res_free(res);
	if (!ok)
		gw_reply_error(req, 404, "not_found", "no such plan: %s", plan);
	return ok;
}

/* Is task task_no of the plan (visible to the caller) still cancellable? false after replying
 * 404 (no such task), 409 (already finished) or 503. */
static bool task_cancellable(gw_t *gw, struct evhttp_request *req, const char *plan,
			     const char *task_no)
{
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	const char *params[2] = {plan, task_no};
	const char *st;
	bool ok = false;
	if (lh_pg_query(gw->pg, "api_task_status", 2, params, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		return false;
	}
	if (lh_pg_nrows(res) != 1 || !strcmp(lh_pg_get(res, 0, 1), "plan"))
		gw_reply_error(req, 404, "not_found", "plan %s has no task %s", plan, task_no);
	else if (!strcmp(st = lh_pg_get(res, 0, 0), "succeeded") || !strcmp(st, "dead") ||
		 !strcmp(st, "cancelled") || !strcmp(st, "skipped"))
		gw_reply_error(req, 409, "task_finished",
			       "task %s of plan %s is %s: there is nothing to cancel", task_no, plan,
			       st);
	else
		ok = true;
	lh_pg_res_free(res);
	return ok;
}

/* command.issued: pause, resume, cancel (task_no NULL) or cancel_task (task_no "N"). */
static void command(gw_t *gw, struct evhttp_request *req, const char *plan, const char *cmd,
		    const char *task_no)
{
	gw_caller_t caller;
	json_t *body = NULL;
	char key[257], *canon = NULL, *request = NULL;
	lh_arena_t *arena = NULL;
	lh_command_issued_t *ci;
	lh_event_t ev = {0};
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req));

	if (!gw_auth(gw, req, GW_ADMIN, &caller))
		return;
	/* The body is optional here: {reason?, idempotency_key?}. */
	if (len) {
		if (!(body = gw_read_body(gw, req)))
			return;
	} else
		body = json_object();
	if (!gw_idempotency_key(req, body, key))
		goto out_free_body;
	if (json_object_get(body, "command") || json_object_get(body, "task_no")) {
		gw_reply_error(req, 400, "invalid_body", "%s: unknown key (the command is the path)",
			       json_object_get(body, "command") ? "command" : "task_no");
		goto out_free_body;
	}
	json_object_set_new(body, "command", json_string(cmd));
	if (task_no)
		json_object_set_new(body, "task_no", json_integer(atoll(task_no)));
	arena = lh_arena_new(0);
	if (!parse_body(req, LH_EV_COMMAND_ISSUED, body, arena, (void **)&ci))
		goto out_free_arena;
	ci->idempotency_key = key;
	if (!gw_plan_visible(gw, req, &caller, plan) ||
	    (task_no && !task_cancellable(gw, req, plan, task_no)))
		goto out_free_arena;
	canon = canonical(body);
	request = lh_arena_printf(arena, "%s\n%s", plan, canon ? canon : "");
	ev.type = LH_EV_COMMAND_ISSUED;
	ev.task_no = LH_NO_TASK;
	lh_uuid_parse(plan, &ev.plan_id);
	ev.body = ci;
	if (!gw_append(gw, req, &caller, key, "command", request, &ev))
		goto out_free_arena;
	{
		json_t *j = json_pack("{s:s, s:s}", "plan_id", plan, "command", cmd);
		if (task_no)
			json_object_set_new(j, "task_no", json_integer(atoll(task_no)));
		gw_reply_json(req, 202, j);
		json_decref(j);
	}
out_free_arena:
	free(canon);
	lh_arena_free(arena);
out_free_body:
	json_decref(body);
}

/* POST /v1/plans/{id}/modify: a person's patch (plan_patch.h) checked against the plan as
 * PostgreSQL shows it, appended as plan.revised. The coordinator folds it only while the plan is
 * still at base_version (it refuses a revision on another base), so a patch raced by a replan
 * is dropped, never misapplied: the caller sees the version not move and patches again. */
static void modify(gw_t *gw, struct evhttp_request *req, const char *plan)
{
	gw_caller_t caller;
	json_t *body = NULL, *current = NULL;
	char key[257], *canon = NULL, *request;
	lh_arena_t *arena = NULL;
	lh_plan_revised_t *rev = NULL;
	lh_event_t ev = {0};
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	const char *params[2], *conflict = NULL;
	lh_err_t rc;

	if (!gw_auth(gw, req, GW_ADMIN, &caller) || !(body = gw_read_body(gw, req)))
		return;
	if (!gw_idempotency_key(req, body, key) || !gw_plan_visible(gw, req, &caller, plan))
		goto out_free;
	params[0] = plan;
	params[1] = caller.read_tenant;
	if (lh_pg_query(gw->pg, "api_plan_get", 2, params, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		goto out_free;
	}
	if (lh_pg_nrows(res) != 1 || !(current = json_loads(lh_pg_get(res, 0, 0), 0, NULL))) {
		gw_reply_error(req, 404, "not_found", "no such plan: %s", plan);
		goto out_free;
	}
	arena = lh_arena_new(0);
	rc = lh_plan_patch(current, body, arena, &rev, &conflict, &err);
	canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	request = lh_arena_printf(arena, "%s\n%s", plan, canon ? canon : "");
	if (rc == LH_ERR_CONFLICT && !strcmp(conflict, "version_conflict")) {
		/* the retry of a patch that was taken and moved the plan on: the same answer */
		int done = gw_write_done(gw, req, &caller, key, "modify", request);
		if (done < 0)
			goto out_free;
		if (done) {
			int64_t base = json_integer_value(json_object_get(body, "base_version"));
			json_t *j = json_pack("{s:s, s:I, s:I}", "plan_id", plan, "version",
					      (json_int_t)base + 1, "base_version", (json_int_t)base);
			gw_reply_json(req, 202, j);
			json_decref(j);
			goto out_free;
		}
	}
	if (rc == LH_ERR_CONFLICT) {
		gw_reply_error(req, 409, conflict, "%s", err.msg);
		goto out_free;
	}
	if (rc) {
		gw_reply_error(req, rc == LH_ERR_NOMEM ? 500 : 400,
			       rc == LH_ERR_NOMEM ? "internal" : "invalid_body", "%s", err.msg);
		goto out_free;
	}
	ev.type = LH_EV_PLAN_REVISED;
	ev.task_no = LH_NO_TASK;
	lh_uuid_parse(plan, &ev.plan_id);
	ev.body = rev;
	if (!gw_append(gw, req, &caller, key, "modify", request, &ev))
		goto out_free;
	{
		json_t *j = json_pack("{s:s, s:I, s:I, s:[], s:[], s:I}", "plan_id", plan, "version",
				      (json_int_t)rev->version, "base_version",
				      (json_int_t)rev->base_version, "tasks", "removed", "join",
				      (json_int_t)rev->tasks.v[rev->tasks.n - 1].task_no);
		for (size_t i = 0; i + 1 < rev->tasks.n; i++)
			json_array_append_new(json_object_get(j, "tasks"),
					      json_integer(rev->tasks.v[i].task_no));
		for (size_t i = 0; i < rev->removed.n; i++)
			json_array_append_new(json_object_get(j, "removed"),
					      json_integer(rev->removed.v[i]));
		gw_reply_json(req, 202, j);
		json_decref(j);
	}
out_free:
	free(canon);
	lh_pg_res_free(res);
	lh_arena_free(arena);
	json_decref(current);
	json_decref(body);
}

void gw_api_task_cancel(gw_t *gw, struct evhttp_request *req, const char *plan,
			const char *task_seg)
{
	gw_caller_t caller;
	lh_id_t id;
	char canon[LH_UUID_STR_LEN + 1], *end;
	long long n = strtoll(task_seg, &end, 10);
	if (lh_uuid_parse(plan, &id) || !*task_seg || *end || n < 1 || n > 1000000 ||
	    task_seg[0] == '0' || task_seg[0] == '+' || task_seg[0] == ' ') {
		/* authenticate first: an anonymous caller learns nothing, not even 404 */
		if (gw_auth(gw, req, GW_ADMIN, &caller))
			gw_reply_error(req, 404, "not_found",
				       "no such task: %.64s/%.16s (a plan UUID and a task number "
				       "from 1)",
				       plan, task_seg);
		return;
	}
	lh_uuid_fmt(&id, canon);
	command(gw, req, canon, "cancel_task", task_seg);
}

/* An integer query parameter within [lo, hi], or absent (*out = NULL); false after a 400. */
static bool query_int(struct evhttp_request *req, struct evkeyvalq *q, const char *name, long lo,
		      long hi, char buf[16], const char **out)
{
	const char *s = evhttp_find_header(q, name);
	char *end;
	long v;
	*out = NULL;
	if (!s)
		return true;
	v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi) {
		gw_reply_error(req, 400, "invalid_query",
			       "%s must be an integer from %ld to %ld, not \"%.32s\"", name, lo, hi, s);
		return false;
	}
	snprintf(buf, 16, "%ld", v);
	*out = buf;
	return true;
}

/* GET /v1/plans/{id}/messages[?task=N][&attempt=A][&limit=L]: the attempts' conversations
 * (sql/0008), by task, attempt and position. */
static void messages(gw_t *gw, struct evhttp_request *req, const char *plan,
		     const gw_caller_t *caller)
{
	struct evkeyvalq q;
	char tbuf[16], abuf[16], limit[16];
	const char *params[4] = {plan, NULL, NULL, limit};
	if (!gw_query_params(req, "task|attempt|limit", &q))
		return;
	if (query_int(req, &q, "task", 0, 1000000, tbuf, &params[1]) &&
	    query_int(req, &q, "attempt", 1, 1000000, abuf, &params[2]) &&
	    gw_query_limit(req, &q, MESSAGES_LIMIT_DEFAULT, MESSAGES_LIMIT_MAX, limit) &&
	    gw_plan_visible(gw, req, caller, plan))
		reply_query(gw, req, "api_plan_messages", 4, params, "plan");
	evhttp_clear_headers(&q);
}

void gw_api_plan(gw_t *gw, struct evhttp_request *req, const char *plan, const char *sub)
{
	gw_caller_t caller;
	lh_id_t id;
	char canon[LH_UUID_STR_LEN + 1];
	const char *params[2];

	if (lh_uuid_parse(plan, &id)) {
		/* Still authenticate first: an anonymous caller learns nothing, not even 404. */
		if (gw_auth(gw, req, GW_VIEWER, &caller))
			gw_reply_error(req, 404, "not_found", "no such plan: %.64s (not a UUID)",
				       plan);
		return;
	}
	lh_uuid_fmt(&id, canon);
	if (!strcmp(sub, "modify")) {
		modify(gw, req, canon);
		return;
	}
	if (!strcmp(sub, "pause") || !strcmp(sub, "resume") || !strcmp(sub, "cancel")) {
		command(gw, req, canon, sub, NULL);
		return;
	}
	if (!gw_auth(gw, req, GW_VIEWER, &caller))
		return;
	if (!strcmp(sub, "messages")) {
		messages(gw, req, canon, &caller);
		return;
	}
	{
		struct evkeyvalq q;
		if (!gw_query_params(req, !strcmp(sub, "events") ? "after" : "", &q))
			return;
		evhttp_clear_headers(&q);
	}
	params[0] = canon;
	params[1] = caller.read_tenant;
	if (!*sub) {
		reply_query(gw, req, "api_plan_get", 2, params, "plan");
		return;
	}
	if (!gw_plan_visible(gw, req, &caller, canon))
		return;
	if (!strcmp(sub, "decisions"))
		reply_query(gw, req, "api_plan_decisions", 1, params, "plan");
	else if (!strcmp(sub, "attempts"))
		reply_query(gw, req, "api_plan_attempts", 1, params, "plan");
	else
		gw_sse_start(gw, req, canon);
}
