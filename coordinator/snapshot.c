/* snapshot.c — a plan's folded state to JSON and back, for lh.snapshots.
 *
 * The format is versioned ("v": 1) and complete: restore(snapshot(plan)) hashes equal to the plan
 * (a unit test checks it for every scenario). Runtime-only fields (dirty, order_sent, await_ack,
 * timer_due) are not stored: a restored plan starts as a recovered one does. */
#include <stdlib.h>
#include <string.h>

#include "state.h"

#define SNAP_VERSION 1

static json_t *i64_array(const int64_t *v, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

static json_t *usage_json(const lh_usage_t *u)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:f, s:I}", "input_tokens", (json_int_t)u->input_tokens,
			 "output_tokens", (json_int_t)u->output_tokens, "cached_tokens",
			 (json_int_t)u->cached_tokens, "reasoning_tokens",
			 (json_int_t)u->reasoning_tokens, "cost_usd", u->cost_usd, "llm_calls",
			 (json_int_t)u->llm_calls);
}

/* Zero, NULL and empty fields are left out (a missing field reads as zero): snapshots of wide
 * plans are mostly zeros, and recovery time is spent reading them. */
static json_t *task_json(const lh_ctask_t *t)
{
	json_t *j = json_object();
#define SETI(k, v)                                                                           \
	do {                                                                                 \
		if (v)                                                                       \
			json_object_set_new(j, k, json_integer((json_int_t)(v)));            \
	} while (0)
#define SETS(k, v)                                                                           \
	do {                                                                                 \
		if (v)                                                                       \
			json_object_set_new(j, k, json_string(v));                           \
	} while (0)
#define SETJ(k, v)                                                                           \
	do {                                                                                 \
		if (v)                                                                       \
			json_object_set(j, k, v);                                            \
	} while (0)
	json_object_set_new(j, "task_no", json_integer((json_int_t)t->task_no));
	SETI("status", t->status);
	SETI("kind", t->kind);
	SETS("tier", t->tier);
	SETS("tool", t->tool);
	SETS("instructions", t->instructions);
	SETJ("args", t->args);
	SETJ("output_schema", t->output_schema);
	if (t->ndeps)
		json_object_set_new(j, "deps", i64_array(t->deps, t->ndeps));
	if (t->nrefs)
		json_object_set_new(j, "refs", i64_array(t->refs, t->nrefs));
	SETI("attempt", t->attempt);
	SETI("failures", t->failures);
	SETI("total_failures", t->total_failures);
	SETI("same_error", t->same_error);
	SETS("last_error", t->last_error);
	SETS("last_error_class", t->last_error_class);
	SETJ("output", t->output);
	SETI("version_added", t->version_added);
	SETI("lease_due_us", t->lease_due_us);
	SETI("lease_kind", t->lease_kind);
	SETI("retry_due_us", t->retry_due_us);
	SETI("retry_ready", t->retry_ready);
	SETI("cancel_requested", t->cancel_requested);
	SETI("needs_approval", t->needs_approval);
	SETI("approved", t->approved);
	SETI("heartbeat_ms", t->heartbeat_ms);
	SETI("done_ts_us", t->done_ts_us);
	SETI("order_acked", t->order_acked); /* a runtime fact, not folded state */
	SETS("input_request", t->input_request);
	SETJ("conversation", t->conversation);
	SETI("input_since_us", t->input_since_us);
	SETI("input_marks", t->input_marks);
	return j;
}

json_t *lh_snapshot_plan(const lh_cplan_t *p)
{
	json_t *j = json_object(), *tasks = json_array();
	char id[LH_UUID_STR_LEN + 1];
	lh_uuid_fmt(&p->plan_id, id);
	json_object_set_new(j, "v", json_integer(SNAP_VERSION));
	json_object_set_new(j, "plan_id", json_string(id));
	SETS("tenant", p->tenant);
	SETS("goal", p->goal);
	SETS("planner_tier", p->planner_tier);
	SETI("status", p->status);
	SETI("version", p->version);
	json_object_set_new(j, "usage", usage_json(&p->usage));
	SETI("submitted_ts_us", p->submitted_ts_us);
	SETI("last_ts_us", p->last_ts_us);
	SETI("created_ts_us", p->created_ts_us);
	SETJ("plan_doc", p->plan_doc);
	SETS("fail_reason", p->fail_reason);
	json_object_set_new(j, "budget",
			    json_pack("{s:f, s:I, s:I, s:I, s:I, s:I}", "usd", p->budget.usd,
				      "tokens", (json_int_t)p->budget.tokens, "tasks",
				      (json_int_t)p->budget.tasks, "attempts_per_task",
				      (json_int_t)p->budget.attempts_per_task, "replans",
				      (json_int_t)p->budget.replans, "deadline_s",
				      (json_int_t)p->budget.deadline_s));
	SETI("warned", p->warned);
	SETI("exceeded", p->exceeded);
	SETI("deadline_us", p->deadline_us);
	SETI("paused_from", p->paused_from);
	SETS("pause_cause", p->pause_cause);
	SETI("flags", (p->pause_requested ? 1 : 0) | (p->resume_requested ? 2 : 0) |
			      (p->cancel_requested ? 4 : 0) | (p->fail_requested ? 8 : 0));
	SETS("command_reason", p->command_reason);
	SETI("wait_kind", p->wait_kind);
	SETS("wait_request", p->wait_request);
	SETI("wait_task", p->wait_task);
	SETI("wait_since_us", p->wait_since_us);
	SETI("wait_marks", p->wait_marks);
	SETI("join_task", p->join_task);
	SETI("repair_task", p->repair_task);
	SETS("repair_reason", p->repair_reason);
	SETI("replan_task", p->replan_task);
	SETI("replans", p->replans);
	SETI("succeeded_at_replan", p->succeeded_at_replan);
	SETS("last_patch", p->last_patch);
	SETI("max_task_no", p->max_task_no);
	SETI("applied_offset", p->applied_offset);
	SETI("first_offset", p->first_offset);
	for (int i = 0; i < p->ntasks; i++)
		if (p->tasks[i].task_no == i)
			json_array_append_new(tasks, task_json(&p->tasks[i]));
	json_object_set_new(j, "tasks", tasks);
	json_object_set_new(j, "status", json_integer(p->status));
	if (p->early_answers)
		json_object_set(j, "early_answers", p->early_answers);
	if (p->closed)
		json_object_set(j, "closed", p->closed);
	if (p->once)
		json_object_set(j, "once", p->once);
	if (p->decisions)
		json_object_set(j, "decisions", p->decisions);
	return j;
#undef SETI
#undef SETS
#undef SETJ
}

/* Readers: a missing or mistyped field makes the snapshot invalid. */
typedef struct rd {
	const json_t *o;
	const char *bad;
} rd_t;

static int64_t gi(rd_t *r, const char *k)
{
	json_t *v = json_object_get(r->o, k);
	if (!v)
		return 0;
	if (!json_is_integer(v)) {
		r->bad = k;
		return 0;
	}
	return (int64_t)json_integer_value(v);
}

static double gf(rd_t *r, const char *k)
{
	json_t *v = json_object_get(r->o, k);
	if (!v)
		return 0;
	if (!json_is_number(v)) {
		r->bad = k;
		return 0;
	}
	return json_number_value(v);
}

static char *gs(rd_t *r, const char *k)
{
	json_t *v = json_object_get(r->o, k);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		r->bad = k;
		return NULL;
	}
	return strdup(json_string_value(v));
}

static json_t *gj(rd_t *r, const char *k)
{
	json_t *v = json_object_get(r->o, k);
	return !v || json_is_null(v) ? NULL : json_incref(v);
}

static int64_t *garr(rd_t *r, const char *k, int *ret_n)
{
	json_t *a = json_object_get(r->o, k), *v;
	int64_t *out;
	size_t i;
	if (!a) {
		*ret_n = 0;
		return calloc(1, sizeof(int64_t));
	}
	if (!json_is_array(a)) {
		r->bad = k;
		*ret_n = 0;
		return calloc(1, sizeof(int64_t));
	}
	out = calloc(json_array_size(a) + 1, sizeof(int64_t));
	if (!out)
		abort();
	json_array_foreach(a, i, v) out[i] = json_integer_value(v);
	*ret_n = (int)json_array_size(a);
	return out;
}

lh_err_t lh_snapshot_restore(lh_state_t *st, const json_t *snap, int32_t partition,
			     lh_cplan_t **ret_plan, lh_error_t *err)
{
	rd_t r = {.o = snap};
	lh_cplan_t *p, *old;
	json_t *tasks, *t, *u, *b;
	char *id, *patch;
	size_t i;
	int64_t max_no = 0;

	if (!json_is_object(snap) || !json_is_integer(json_object_get(snap, "v")) ||
	    gi(&r, "v") != SNAP_VERSION || !json_is_integer(json_object_get(snap, "status")))
		return lh_error_set(err, LH_ERR_DECODE, "not a version %d plan snapshot", SNAP_VERSION);
	p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	id = gs(&r, "plan_id");
	if (!id || lh_uuid_parse(id, &p->plan_id)) {
		free(id);
		free(p);
		return lh_error_set(err, LH_ERR_DECODE, "snapshot: bad plan_id");
	}
	free(id);
	p->partition = partition;
	p->tenant = gs(&r, "tenant");
	p->goal = gs(&r, "goal");
	p->planner_tier = gs(&r, "planner_tier");
	p->status = (lh_plan_status_t)gi(&r, "status");
	p->version = gi(&r, "version");
	u = json_object_get(snap, "usage");
	if (json_is_object(u)) {
		rd_t ur = {.o = u};
		p->usage.input_tokens = gi(&ur, "input_tokens");
		p->usage.output_tokens = gi(&ur, "output_tokens");
		p->usage.cached_tokens = gi(&ur, "cached_tokens");
		p->usage.reasoning_tokens = gi(&ur, "reasoning_tokens");
		p->usage.cost_usd = gf(&ur, "cost_usd");
		p->usage.llm_calls = gi(&ur, "llm_calls");
		if (ur.bad)
			r.bad = ur.bad;
	} else
		r.bad = "usage";
	p->submitted_ts_us = gi(&r, "submitted_ts_us");
	p->last_ts_us = gi(&r, "last_ts_us");
	p->created_ts_us = gi(&r, "created_ts_us");
	p->plan_doc = gj(&r, "plan_doc");
	p->fail_reason = gs(&r, "fail_reason");
	b = json_object_get(snap, "budget");
	if (json_is_object(b)) {
		rd_t br = {.o = b};
		p->budget.usd = gf(&br, "usd");
		p->budget.tokens = gi(&br, "tokens");
		p->budget.tasks = gi(&br, "tasks");
		p->budget.attempts_per_task = gi(&br, "attempts_per_task");
		p->budget.replans = gi(&br, "replans");
		p->budget.deadline_s = gi(&br, "deadline_s");
		if (br.bad)
			r.bad = br.bad;
	} else
		r.bad = "budget";
	p->warned = (unsigned)gi(&r, "warned");
	p->exceeded = (unsigned)gi(&r, "exceeded");
	p->deadline_us = gi(&r, "deadline_us");
	p->paused_from = (lh_plan_status_t)gi(&r, "paused_from");
	p->pause_cause = gs(&r, "pause_cause");
	{
		int64_t f = gi(&r, "flags");
		p->pause_requested = f & 1;
		p->resume_requested = f & 2;
		p->cancel_requested = f & 4;
		p->fail_requested = f & 8;
	}
	p->command_reason = gs(&r, "command_reason");
	p->wait_kind = (int)gi(&r, "wait_kind");
	p->wait_request = gs(&r, "wait_request");
	p->wait_task = gi(&r, "wait_task");
	p->wait_since_us = gi(&r, "wait_since_us");
	p->wait_marks = (unsigned)gi(&r, "wait_marks");
	p->join_task = gi(&r, "join_task");
	p->repair_task = gi(&r, "repair_task");
	p->repair_reason = gs(&r, "repair_reason");
	p->replan_task = gi(&r, "replan_task");
	p->replans = gi(&r, "replans");
	p->succeeded_at_replan = gi(&r, "succeeded_at_replan");
	patch = gs(&r, "last_patch");
	snprintf(p->last_patch, sizeof(p->last_patch), "%s", patch ? patch : "");
	free(patch);
	p->max_task_no = gi(&r, "max_task_no");
	p->applied_offset = gi(&r, "applied_offset");
	p->first_offset = gi(&r, "first_offset");
	p->early_answers = gj(&r, "early_answers");
	p->closed = gj(&r, "closed");
	p->decisions = gj(&r, "decisions");
	p->once = gj(&r, "once");
	if (p->once && !json_is_object(p->once))
		r.bad = "once";
	if (p->decisions && !json_is_array(p->decisions))
		r.bad = "decisions";
	if (p->closed && !json_is_object(p->closed))
		r.bad = "closed";
	if (p->early_answers && !json_is_object(p->early_answers))
		r.bad = "early_answers";
	tasks = json_object_get(snap, "tasks");
	if (!json_is_array(tasks))
		r.bad = "tasks";
	json_array_foreach(tasks, i, t) {
		int64_t no = json_integer_value(json_object_get(t, "task_no"));
		if (no > max_no)
			max_no = no;
	}
	if (!r.bad && (max_no > 1000000 || max_no < 0))
		r.bad = "tasks";
	if (!r.bad && json_array_size(tasks) > 0) {
		p->ntasks = (int)max_no + 1;
		p->tasks = calloc((size_t)p->ntasks, sizeof(lh_ctask_t));
		if (!p->tasks)
			abort();
		for (int k = 0; k < p->ntasks; k++)
			p->tasks[k].task_no = -1;
		json_array_foreach(tasks, i, t) {
			rd_t tr = {.o = t};
			int64_t no = gi(&tr, "task_no");
			lh_ctask_t *x;
			if (tr.bad || no < 0 || no >= p->ntasks || p->tasks[no].task_no == no) {
				r.bad = "tasks[].task_no";
				break;
			}
			x = &p->tasks[no];
			x->task_no = no;
			x->status = (lh_task_status_t)gi(&tr, "status");
			x->kind = (lh_task_kind_t)gi(&tr, "kind");
			x->tier = gs(&tr, "tier");
			x->tool = gs(&tr, "tool");
			x->instructions = gs(&tr, "instructions");
			x->args = gj(&tr, "args");
			x->output_schema = gj(&tr, "output_schema");
			x->deps = garr(&tr, "deps", &x->ndeps);
			x->refs = garr(&tr, "refs", &x->nrefs);
			x->attempt = gi(&tr, "attempt");
			x->failures = (int)gi(&tr, "failures");
			x->total_failures = (int)gi(&tr, "total_failures");
			x->same_error = (int)gi(&tr, "same_error");
			x->last_error = gs(&tr, "last_error");
			x->last_error_class = gs(&tr, "last_error_class");
			x->output = gj(&tr, "output");
			x->version_added = gi(&tr, "version_added");
			x->lease_due_us = gi(&tr, "lease_due_us");
			x->lease_kind = (int)gi(&tr, "lease_kind");
			x->retry_due_us = gi(&tr, "retry_due_us");
			x->retry_ready = gi(&tr, "retry_ready") != 0;
			x->cancel_requested = gi(&tr, "cancel_requested") != 0;
			x->needs_approval = gi(&tr, "needs_approval") != 0;
			x->approved = gi(&tr, "approved") != 0;
			x->heartbeat_ms = gi(&tr, "heartbeat_ms");
			x->done_ts_us = gi(&tr, "done_ts_us");
			x->order_acked = x->order_sent = gi(&tr, "order_acked") != 0;
			x->input_request = gs(&tr, "input_request");
			x->conversation = gj(&tr, "conversation");
			x->input_since_us = gi(&tr, "input_since_us");
			x->input_marks = (unsigned)gi(&tr, "input_marks");
			if ((unsigned)x->status >= LH_TASK__COUNT || (unsigned)x->kind >= LH_KIND__COUNT ||
			    !x->tier || !x->instructions)
				tr.bad = "status, kind, tier or instructions";
			for (int d = 0; !tr.bad && d < x->ndeps; d++)
				if (x->deps[d] < 0 || x->deps[d] > max_no)
					tr.bad = "deps";
			for (int d = 0; !tr.bad && d < x->nrefs; d++)
				if (x->refs[d] < 0 || x->refs[d] > max_no)
					tr.bad = "refs";
			if (tr.bad) {
				r.bad = tr.bad;
				break;
			}
		}
	}
	if (!r.bad && ((unsigned)p->status >= LH_PLAN__COUNT || !p->tenant ||
		       (p->status != LH_PLAN_COMPLETED && p->status != LH_PLAN_FAILED &&
			p->status != LH_PLAN_CANCELLED && (p->ntasks < 1 || p->tasks[0].task_no != 0))))
		r.bad = "status or tasks";
	for (int k = 0; !r.bad && k < p->ntasks; k++) {
		lh_ctask_t *x = &p->tasks[k];
		for (int d = 0; x->task_no == k && d < x->ndeps; d++)
			if (p->tasks[x->deps[d]].task_no != x->deps[d])
				r.bad = "a dependency on a task that is not in the snapshot";
		for (int d = 0; x->task_no == k && d < x->nrefs; d++)
			if (p->tasks[x->refs[d]].task_no != x->refs[d])
				r.bad = "a reference to a task that is not in the snapshot";
	}
	if (r.bad) {
		lh_error_set(err, LH_ERR_DECODE, "snapshot of plan: bad or missing field \"%s\"", r.bad);
		lh_cplan_free(p);
		return LH_ERR_DECODE;
	}
	if ((old = lh_idmap_put(&st->plans, &p->plan_id, p))) {
		if (old->dirty) {
			lh_cplan_t **pp = &st->dirty_head;
			while (*pp && *pp != old)
				pp = &(*pp)->next_dirty;
			if (*pp)
				*pp = old->next_dirty;
		}
		lh_cplan_free(old);
	}
	p->snap_covers = p->applied_offset;
	if (ret_plan)
		*ret_plan = p;
	return LH_OK;
}
