/* api_requests.c — /v1/requests: the approvals the coordinator waits for (input_requests, folded
 * from approval.requested) and the answers people give (approval.decided on lh.events).
 * A request already decided answers 409: input_requests says so (the coordinator would ignore a
 * second answer anyway). Between the append and the materializer's fold a second answer with a
 * different key still gets 202; the coordinator keeps the first. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "ids.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define GW_EARLY_MAX 32 /* answers a plan may hold for requests it has not asked */

void gw_api_requests_list(gw_t *gw, struct evhttp_request *req)
{
	gw_caller_t caller;
	struct evkeyvalq q;
	char limit[16];
	const char *status, *params[3];
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	if (!gw_auth(gw, req, GW_VIEWER, &caller) || !gw_query_params(req, "status|limit", &q))
		return;
	status = evhttp_find_header(&q, "status");
	if (status && strcmp(status, "pending") && strcmp(status, "approved") &&
	    strcmp(status, "rejected") && strcmp(status, "answered") && strcmp(status, "expired")) {
		gw_reply_error(req, 400, "invalid_query",
			       "status must be one of pending, approved, rejected, answered, "
			       "expired; not \"%.32s\"",
			       status);
		goto out_free_q;
	}
	if (!gw_query_limit(req, &q, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, limit) || !gw_pg(gw, req))
		goto out_free_q;
	params[0] = caller.read_tenant;
	params[1] = status;
	params[2] = limit;
	if (lh_pg_query(gw->pg, "api_requests_list", 3, params, NULL, NULL, &res, &err))
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
	else
		gw_reply_json_text(req, 200, lh_pg_get(res, 0, 0));
	lh_pg_res_free(res);
out_free_q:
	evhttp_clear_headers(&q);
}

void gw_api_request_decision(gw_t *gw, struct evhttp_request *req, const char *plan_seg,
			     const char *rid_seg)
{
	gw_api_request_respond(gw, req, plan_seg, rid_seg, false);
}

void gw_api_request_answer(gw_t *gw, struct evhttp_request *req, const char *plan_seg,
			   const char *rid_seg)
{
	gw_api_request_respond(gw, req, plan_seg, rid_seg, true);
}

/* A question's request id is the worker's "<plan>:t<task>:a<attempt>"; every other request
 * (task:N:vV, budget:..., escalations) is an approval the coordinator asks. */
static bool is_question_id(const char *plan, const char *rid)
{
	size_t n = strlen(plan);
	return !strncmp(rid, plan, n) && rid[n] == ':' && rid[n + 1] == 't';
}

/* May an answer to a request PostgreSQL does not know be taken now (an early answer)? The
 * plan must be the caller's and not finished, the route must fit the request id's kind, the
 * request must have no answer in the log yet (but a retry of the taken one is fine), and the
 * plan may hold at most GW_EARLY_MAX early answers. false after replying 404/409/422/503. */
static bool early_answer_ok(gw_t *gw, struct evhttp_request *req, const gw_caller_t *caller,
			    const char *plan, const char *rid, const char *key, bool answer)
{
	const char *params[2] = {plan, rid};
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	const char *ps;
	bool ok = false;
	if (!gw_plan_visible(gw, req, caller, plan))
		return false;
	if (answer != is_question_id(plan, rid)) {
		gw_reply_error(req, 422, "wrong_kind",
			       answer ? "request %.128s of plan %s is not asked yet and names an "
					"approval: decide it with POST "
					"/v1/requests/{plan_id}/{request_id}/decision"
				      : "request %.128s of plan %s is not asked yet and names a "
					"question: answer it with POST "
					"/v1/requests/{plan_id}/{request_id}/answer",
			       rid, plan);
		return false;
	}
	if (lh_pg_query(gw->pg, "api_request_early", 2, params, NULL, NULL, &res, &err) ||
	    lh_pg_nrows(res) != 1) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		goto out_free_res;
	}
	ps = lh_pg_get(res, 0, 0);
	if (!strcmp(ps, "completed") || !strcmp(ps, "failed") || !strcmp(ps, "cancelled")) {
		gw_reply_error(req, 409, "plan_finished", "plan %s is %s: it asks nothing more",
			       plan, ps);
		goto out_free_res;
	}
	if (atoi(lh_pg_get(res, 0, 1)) > 0) {
		/* answered already (before it was asked): only the retry of that answer passes */
		const char *kp[2] = {caller->tenant, key};
		lh_pg_res_t *kr = NULL;
		bool retry = lh_pg_query(gw->pg, "api_write_get", 2, kp, NULL, NULL, &kr, &err) ==
				     LH_OK &&
			     lh_pg_nrows(kr) == 1;
		lh_pg_res_free(kr);
		if (!retry) {
			gw_reply_error(req, 409, "already_decided",
				       "request %.128s of plan %s was answered already", rid, plan);
			goto out_free_res;
		}
	} else if (atoi(lh_pg_get(res, 0, 2)) >= GW_EARLY_MAX) {
		gw_reply_error(req, 422, "too_many_early_answers",
			       "plan %s holds %d answers to requests it has not asked; no more are "
			       "taken until it asks them",
			       plan, GW_EARLY_MAX);
		goto out_free_res;
	}
	ok = true;
out_free_res:
	lh_pg_res_free(res);
	return ok;
}

/* An approval's decision (approval.decided) or a question's answer (input.provided). */
void gw_api_request_respond(gw_t *gw, struct evhttp_request *req, const char *plan_seg,
			    const char *rid_seg, bool answer)
{
	gw_caller_t caller;
	json_t *body = NULL;
	char key[257], plan[LH_UUID_STR_LEN + 1], *canon = NULL, *rid = NULL;
	lh_arena_t *arena = NULL;
	void *d;
	lh_event_t ev = {0};
	lh_pg_res_t *res = NULL;
	lh_error_t err = {0};
	const char *params[3];
	lh_id_t id;

	if (!gw_auth(gw, req, GW_RESPONDER, &caller) || !(body = gw_read_body(gw, req)))
		return;
	if (!gw_idempotency_key(req, body, key))
		goto out_free_body;
	rid = evhttp_uridecode(rid_seg, 0, NULL);
	if (lh_uuid_parse(plan_seg, &id) || !rid) {
		gw_reply_error(req, 404, "not_found", "no such request: %.64s/%.128s", plan_seg,
			       rid_seg);
		goto out_free_body;
	}
	lh_uuid_fmt(&id, plan);
	if (json_object_get(body, "request_id")) {
		gw_reply_error(req, 400, "invalid_body",
			       "request_id: unknown key (the request is named by the path)");
		goto out_free_body;
	}
	json_object_set_new(body, "request_id", json_string(rid));
	if (!json_object_get(body, "responder_type"))
		json_object_set_new(body, "responder_type", json_string("human"));
	/* who answered is the token's name, whatever the body says: the audit trail cannot be
	 * written in someone else's name */
	if (json_object_get(body, "responder_id") &&
	    (!json_is_string(json_object_get(body, "responder_id")) ||
	     strcmp(json_string_value(json_object_get(body, "responder_id")), caller.name) != 0)) {
		gw_reply_error(req, 400, "invalid_body",
			       "responder_id: answers through the API are recorded under the "
			       "token's name (%s); leave it out",
			       caller.name);
		goto out_free_body;
	}
	json_object_set_new(body, "responder_id", json_string(caller.name));
	arena = lh_arena_new(0);
	if (lh_struct_from_json(answer ? &lh_input_provided_desc : &lh_approval_decided_desc, body,
				arena, &d, &err)) {
		gw_reply_error(req, 400, "invalid_body", "%s", err.msg);
		goto out_free_arena;
	}
	if (!gw_pg(gw, req))
		goto out_free_arena;
	params[0] = plan;
	params[1] = rid;
	params[2] = caller.read_tenant;
	if (lh_pg_query(gw->pg, "api_request_get", 3, params, NULL, NULL, &res, &err)) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
		goto out_free_arena;
	}
	if (lh_pg_nrows(res) != 1) {
		/* not in PostgreSQL (yet): an early answer, kept by the coordinator until the
		 * request is asked — when the plan is the caller's and still running */
		lh_pg_res_free(res);
		res = NULL;
		if (!early_answer_ok(gw, req, &caller, plan, rid, key, answer))
			goto out_free_arena;
	} else if (answer != !strcmp(lh_pg_get(res, 0, 1), "question")) {
		/* An approval is decided, a question is answered: the other route would append an
		 * event the coordinator cannot match to what it waits for. */
		gw_reply_error(req, 422, "wrong_kind",
			       answer ? "request %.128s of plan %s is an approval (%s), not a question: "
					"decide it with POST /v1/requests/{plan_id}/{request_id}/decision"
				      : "request %.128s of plan %s is a %s, not an approval: answer it "
					"with POST /v1/requests/{plan_id}/{request_id}/answer",
			       rid, plan, lh_pg_get(res, 0, 1));
		goto out_free_arena;
	}
	canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	/* A retry of an answer that was taken is answered like the first time (202), before the
	 * status check would call it a second answer. */
	if (res && strcmp(lh_pg_get(res, 0, 0), "pending") != 0) {
		params[0] = caller.tenant;
		params[1] = key;
		lh_pg_res_free(res);
		res = NULL;
		if (lh_pg_query(gw->pg, "api_write_get", 2, params, NULL, NULL, &res, &err) ||
		    lh_pg_nrows(res) != 1) {
			gw_reply_error(req, 409, "already_decided",
				       "request %.128s of plan %s is no longer pending", rid, plan);
			goto out_free_arena;
		}
	}
	ev.type = answer ? LH_EV_INPUT_PROVIDED : LH_EV_APPROVAL_DECIDED;
	ev.task_no = LH_NO_TASK;
	ev.plan_id = id;
	ev.body = d;
	{
		char *request = lh_arena_printf(arena, "%s\n%s\n%s", plan, rid, canon ? canon : "");
		if (!gw_append(gw, req, &caller, key, answer ? "answer" : "decision", request, &ev))
			goto out_free_arena;
	}
	{
		json_t *j = answer ? json_pack("{s:s, s:s, s:b}", "plan_id", plan, "request_id", rid,
					       "answered", 1)
				   : json_pack("{s:s, s:s, s:s}", "plan_id", plan, "request_id", rid,
					       "decision", ((lh_approval_decided_t *)d)->decision);
		gw_reply_json(req, 202, j);
		json_decref(j);
	}
out_free_arena:
	lh_pg_res_free(res);
	free(canon);
	lh_arena_free(arena);
out_free_body:
	free(rid);
	json_decref(body);
}
