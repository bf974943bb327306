/* plan_patch.c — a person's plan modification, checked and turned into plan.revised (see
 * plan_patch.h). The current plan comes as JSON (api_plan_get's shape), so the gateway and lhctl
 * feed it the same bytes; task specs of the patch are parsed by the generated codec
 * (lh_task_spec_desc), so types, bounds and unknown keys are checked like any event body. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "plan_patch.h"

/* One task as the plan will be after the patch. */
typedef struct ptask {
	int64_t task_no;
	const char *kind;   /* borrowed */
	const char *status; /* borrowed; "" for a new task */
	const char *tier, *instructions;
	bool exists, removed, patched, live;
	int64_t *deps;
	size_t ndeps;
	size_t indeg; /* cycle check: live dependencies not yet ordered */
} ptask_t;

typedef struct pp {
	ptask_t *t; /* indexed by task number, 0..max */
	int64_t max_no;
	lh_arena_t *arena;
	lh_error_t *err;
} pp_t;

static bool status_is(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static const char *const finished[] = {"succeeded", "cancelled", "skipped", "dead", NULL};
static const char *const not_started[] = {"pending", "ready", NULL};
static const char *const plan_done[] = {"completed", "failed", "cancelled", NULL};

static bool int_in_range(const json_t *j, int64_t lo, int64_t hi)
{
	return json_is_integer(j) && json_integer_value(j) >= lo && json_integer_value(j) <= hi;
}

/* Read the current plan. */
static lh_err_t load_current(pp_t *pp, const json_t *current, int64_t *ret_version,
			     const char **ret_status)
{
	const json_t *plan = json_object_get(current, "plan"), *tasks = json_object_get(current, "tasks");
	const json_t *t, *v = json_object_get(plan, "version");
	size_t i;
	if (!json_is_object(plan) || !json_is_array(tasks) || !json_is_integer(v) ||
	    !json_is_string(json_object_get(plan, "status")))
		return lh_error_set(pp->err, LH_ERR_INVALID, "the current plan is malformed");
	*ret_version = json_integer_value(v);
	*ret_status = json_string_value(json_object_get(plan, "status"));
	pp->max_no = 0;
	json_array_foreach(tasks, i, t) {
		const json_t *no = json_object_get(t, "task_no");
		if (!int_in_range(no, 0, LH_PLAN_PATCH_MAX_TASK_NO) ||
		    !json_is_string(json_object_get(t, "kind")) ||
		    !json_is_string(json_object_get(t, "status")))
			return lh_error_set(pp->err, LH_ERR_INVALID, "the current plan is malformed");
		if (json_integer_value(no) > pp->max_no)
			pp->max_no = json_integer_value(no);
	}
	pp->t = lh_arena_alloc(pp->arena, sizeof(ptask_t) * (size_t)(pp->max_no + 1));
	json_array_foreach(tasks, i, t) {
		ptask_t *p = &pp->t[json_integer_value(json_object_get(t, "task_no"))];
		const json_t *deps = json_object_get(t, "depends_on"), *d;
		size_t k;
		p->task_no = json_integer_value(json_object_get(t, "task_no"));
		p->kind = json_string_value(json_object_get(t, "kind"));
		p->status = json_string_value(json_object_get(t, "status"));
		p->tier = json_string_value(json_object_get(t, "tier"));
		p->instructions = json_string_value(json_object_get(t, "instructions"));
		p->exists = true;
		p->ndeps = json_array_size(deps);
		p->deps = lh_arena_alloc(pp->arena, sizeof(int64_t) * (p->ndeps + 1));
		json_array_foreach(deps, k, d) {
			if (!int_in_range(d, 0, LH_PLAN_PATCH_MAX_TASK_NO))
				return lh_error_set(pp->err, LH_ERR_INVALID,
						    "the current plan is malformed");
			p->deps[k] = json_integer_value(d);
		}
	}
	return LH_OK;
}

static lh_err_t conflict(const char **ret_conflict, const char *code, lh_error_t *err,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static lh_err_t conflict(const char **ret_conflict, const char *code, lh_error_t *err,
			 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lh_error_setv(err, LH_ERR_CONFLICT, fmt, ap);
	va_end(ap);
	*ret_conflict = code;
	return LH_ERR_CONFLICT;
}

/* Kahn's algorithm over the live tasks (iterative: no recursion depth to exhaust); true when
 * some live tasks cannot be ordered. */
static bool cyclic(pp_t *pp)
{
	size_t nlive = 0, nordered = 0, head = 0, tail = 0, nedges = 0;
	size_t *start, *fill, *queue;
	int64_t *dependents;
	for (int64_t k = 1; k <= pp->max_no; k++) {
		ptask_t *p = &pp->t[k];
		p->indeg = 0;
		if (!p->live)
			continue;
		nlive++;
		for (size_t d = 0; d < p->ndeps; d++)
			if (p->deps[d] >= 1 && p->deps[d] <= pp->max_no && pp->t[p->deps[d]].live) {
				p->indeg++;
				nedges++;
			}
	}
	/* dependents of each task, as one array (CSR) */
	start = lh_arena_alloc(pp->arena, sizeof(size_t) * (size_t)(pp->max_no + 2));
	fill = lh_arena_alloc(pp->arena, sizeof(size_t) * (size_t)(pp->max_no + 2));
	dependents = lh_arena_alloc(pp->arena, sizeof(int64_t) * (nedges + 1));
	queue = lh_arena_alloc(pp->arena, sizeof(size_t) * (nlive + 1));
	for (int64_t k = 1; k <= pp->max_no; k++)
		if (pp->t[k].live)
			for (size_t d = 0; d < pp->t[k].ndeps; d++) {
				int64_t dep = pp->t[k].deps[d];
				if (dep >= 1 && dep <= pp->max_no && pp->t[dep].live)
					start[dep + 1]++;
			}
	for (int64_t k = 1; k <= pp->max_no + 1; k++)
		start[k] += start[k - 1];
	memcpy(fill, start, sizeof(size_t) * (size_t)(pp->max_no + 2));
	for (int64_t k = 1; k <= pp->max_no; k++)
		if (pp->t[k].live)
			for (size_t d = 0; d < pp->t[k].ndeps; d++) {
				int64_t dep = pp->t[k].deps[d];
				if (dep >= 1 && dep <= pp->max_no && pp->t[dep].live)
					dependents[fill[dep]++] = k;
			}
	for (int64_t k = 1; k <= pp->max_no; k++)
		if (pp->t[k].live && pp->t[k].indeg == 0)
			queue[tail++] = (size_t)k;
	while (head < tail) {
		size_t k = queue[head++];
		nordered++;
		for (size_t e = start[k]; e < start[k + 1]; e++)
			if (--pp->t[dependents[e]].indeg == 0)
				queue[tail++] = (size_t)dependents[e];
	}
	return nordered != nlive;
}

static bool is_join(const ptask_t *p) { return p->exists && !strcmp(p->kind, "join"); }

/* A live act (or summarize) task after the patch: what the join waits for. */
static bool joinable(const ptask_t *p)
{
	return p->live && (!strcmp(p->kind, "act") || !strcmp(p->kind, "summarize"));
}

static const char *const patch_keys[] = {"base_version", "tasks", "remove", "join_instructions",
					 "reason", NULL};

lh_err_t lh_plan_patch(const json_t *current, const json_t *patch, lh_arena_t *arena,
		       lh_plan_revised_t **ret_rev, const char **ret_conflict, lh_error_t *err)
{
	pp_t pp = {.arena = arena, .err = err};
	int64_t version = 0, cur_max, join_no = 0, new_join_no;
	const char *status = "", *key, *join_instr = NULL, *join_tier = NULL;
	const json_t *tasks, *remove, *jv, *value;
	lh_plan_revised_t *rev;
	lh_task_spec_t *join;
	size_t i, ntasks, nremove;
	lh_err_t rc;

	if (!json_is_object(patch))
		return lh_error_set(err, LH_ERR_INVALID, "the patch must be a JSON object");
	json_object_foreach((json_t *)patch, key, value) {
		bool known = false;
		for (const char *const *k = patch_keys; *k && !known; k++)
			known = !strcmp(key, *k);
		if (!known)
			return lh_error_set(err, LH_ERR_INVALID, "%.64s: unknown key", key);
	}
	if (!int_in_range(json_object_get(patch, "base_version"), 1, INT32_MAX))
		return lh_error_set(err, LH_ERR_INVALID,
				    "base_version: required, the plan version the patch was "
				    "written against (an integer from 1)");
	tasks = json_object_get(patch, "tasks");
	remove = json_object_get(patch, "remove");
	if (tasks && !json_is_array(tasks))
		return lh_error_set(err, LH_ERR_INVALID, "tasks: expected an array");
	if (remove && !json_is_array(remove))
		return lh_error_set(err, LH_ERR_INVALID, "remove: expected an array");
	ntasks = json_array_size(tasks);
	nremove = json_array_size(remove);
	if (ntasks > LH_PLAN_PATCH_MAX_TASKS)
		return lh_error_set(err, LH_ERR_INVALID, "tasks: %zu tasks; the limit is %d", ntasks,
				    LH_PLAN_PATCH_MAX_TASKS);
	if (nremove > LH_PLAN_PATCH_MAX_REMOVE)
		return lh_error_set(err, LH_ERR_INVALID, "remove: %zu tasks; the limit is %d",
				    nremove, LH_PLAN_PATCH_MAX_REMOVE);
	if ((jv = json_object_get(patch, "join_instructions")) &&
	    (!json_is_string(jv) || !*json_string_value(jv)))
		return lh_error_set(err, LH_ERR_INVALID,
				    "join_instructions: expected a non-empty string");
	join_instr = jv ? json_string_value(jv) : NULL;
	if ((jv = json_object_get(patch, "reason")) && !json_is_string(jv))
		return lh_error_set(err, LH_ERR_INVALID, "reason: expected a string");
	if (!ntasks && !nremove && !join_instr)
		return lh_error_set(err, LH_ERR_INVALID,
				    "the patch changes nothing: give tasks, remove or "
				    "join_instructions");

	/* the plan as it is */
	if ((rc = load_current(&pp, current, &version, &status)))
		return rc;
	cur_max = pp.max_no;
	if (status_is(status, plan_done))
		return conflict(ret_conflict, "plan_finished", err, "the plan is %s: it cannot change",
				status);
	if (json_integer_value(json_object_get(patch, "base_version")) != version)
		return conflict(ret_conflict, "version_conflict", err,
				"the plan is at version %lld, not %lld: read it again and redo the "
				"patch against it",
				(long long)version,
				(long long)json_integer_value(json_object_get(patch, "base_version")));
	for (int64_t k = 0; k <= cur_max; k++)
		if (pp.t[k].exists && is_join(&pp.t[k]) && !status_is(pp.t[k].status, finished))
			join_no = k;
	if (!join_no)
		return conflict(ret_conflict, "plan_finished", err,
				"the plan has no join waiting: it is about to finish");
	join_instr = join_instr ? join_instr : pp.t[join_no].instructions;
	join_tier = pp.t[join_no].tier;

	/* the highest number the patch may use: grow the table once */
	{
		int64_t top = cur_max;
		const json_t *t;
		size_t k;
		json_array_foreach(tasks, k, t) {
			const json_t *no = json_object_get(t, "task_no");
			if (!json_is_object(t))
				return lh_error_set(err, LH_ERR_INVALID, "tasks[%zu]: expected an object",
						    k);
			if (!int_in_range(no, 1, LH_PLAN_PATCH_MAX_TASK_NO))
				return lh_error_set(err, LH_ERR_INVALID,
						    "tasks[%zu].task_no: required, an integer from 1 "
						    "to %d",
						    k, LH_PLAN_PATCH_MAX_TASK_NO);
			if (json_integer_value(no) > top)
				top = json_integer_value(no);
		}
		if (top - cur_max > LH_PLAN_PATCH_MAX_TASKS)
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks: new tasks are numbered %lld, %lld, ... without "
					    "gaps",
					    (long long)cur_max + 1, (long long)cur_max + 2);
		{
			ptask_t *n = lh_arena_alloc(arena, sizeof(ptask_t) * (size_t)(top + 2));
			memcpy(n, pp.t, sizeof(ptask_t) * (size_t)(cur_max + 1));
			pp.t = n;
		}
		pp.max_no = top;
	}

	/* removals */
	for (i = 0; i < nremove; i++) {
		const json_t *r = json_array_get(remove, i);
		ptask_t *p;
		if (!int_in_range(r, 1, LH_PLAN_PATCH_MAX_TASK_NO) || json_integer_value(r) > cur_max ||
		    !pp.t[json_integer_value(r)].exists)
			return lh_error_set(err, LH_ERR_INVALID,
					    "remove[%zu]: the plan has no task %.32s", i,
					    json_is_integer(r) ? "with that number" : "like that");
		p = &pp.t[json_integer_value(r)];
		if (p->removed)
			return lh_error_set(err, LH_ERR_INVALID, "remove[%zu]: task %lld twice", i,
					    (long long)p->task_no);
		if (strcmp(p->kind, "act") != 0)
			return lh_error_set(err, LH_ERR_INVALID,
					    "remove[%zu]: task %lld is the plan's %s, not an act "
					    "task",
					    i, (long long)p->task_no, p->kind);
		if (!strcmp(p->status, "succeeded") || !strcmp(p->status, "cancelled") ||
		    !strcmp(p->status, "skipped"))
			return conflict(ret_conflict, "task_finished", err,
					"task %lld is %s: there is nothing to remove",
					(long long)p->task_no, p->status);
		p->removed = true;
	}

	/* added and replaced tasks */
	rev = lh_arena_alloc(arena, sizeof(*rev));
	rev->tasks.v = lh_arena_alloc(arena, sizeof(lh_task_spec_t) * (ntasks + 1));
	for (i = 0; i < ntasks; i++) {
		json_t *t = json_array_get(tasks, i), *copy;
		int64_t no = json_integer_value(json_object_get(t, "task_no"));
		ptask_t *p = &pp.t[no];
		lh_task_spec_t *s;
		if (json_object_get(t, "kind"))
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks[%zu].kind: unknown key (a person adds act tasks; "
					    "the join is rebuilt)",
					    i);
		if (p->patched)
			return lh_error_set(err, LH_ERR_INVALID, "tasks[%zu]: task %lld twice", i,
					    (long long)no);
		if (p->exists) {
			if (p->removed)
				return lh_error_set(err, LH_ERR_INVALID,
						    "tasks[%zu]: task %lld is also removed", i,
						    (long long)no);
			if (strcmp(p->kind, "act") != 0)
				return lh_error_set(err, LH_ERR_INVALID,
						    "tasks[%zu]: task %lld is the plan's %s; only act "
						    "tasks can be replaced",
						    i, (long long)no, p->kind);
			if (!status_is(p->status, not_started))
				return conflict(ret_conflict, "task_started", err,
						"task %lld is %s: only a task that has not started "
						"can be replaced",
						(long long)no, p->status);
		} else if (no <= cur_max)
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks[%zu]: task numbers are never reused: a new task "
					    "is numbered after %lld",
					    i, (long long)cur_max);
		copy = json_copy(t);
		if (!copy)
			return lh_error_set(err, LH_ERR_NOMEM, "out of memory");
		json_object_set_new(copy, "kind", json_string("act"));
		if (!json_object_get(copy, "tier") && p->exists && p->tier)
			json_object_set_new(copy, "tier", json_string(p->tier));
		rc = lh_struct_from_json(&lh_task_spec_desc, copy, arena, (void **)&s, err);
		json_decref(copy);
		if (rc) {
			lh_error_prefix(err, "tasks[%zu]", i);
			return LH_ERR_INVALID;
		}
		if (!*s->instructions || !*s->tier)
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks[%zu]: instructions and tier must not be empty", i);
		if (s->refs.n + s->after.n > LH_PLAN_PATCH_MAX_DEPS)
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks[%zu]: %zu dependencies; the limit is %d", i,
					    s->refs.n + s->after.n, LH_PLAN_PATCH_MAX_DEPS);
		rev->tasks.v[rev->tasks.n++] = *s;
		p->task_no = no;
		p->kind = "act";
		p->status = p->exists ? p->status : "";
		p->patched = true;
		p->ndeps = s->refs.n + s->after.n;
		p->deps = lh_arena_alloc(arena, sizeof(int64_t) * (p->ndeps + 1));
		if (s->refs.n) /* v is NULL when the list is absent */
			memcpy(p->deps, s->refs.v, sizeof(int64_t) * s->refs.n);
		if (s->after.n)
			memcpy(p->deps + s->refs.n, s->after.v, sizeof(int64_t) * s->after.n);
	}
	/* new numbers come without gaps */
	for (int64_t k = cur_max + 1; k <= pp.max_no; k++)
		if (!pp.t[k].patched)
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks: new tasks are numbered %lld, %lld, ... without "
					    "gaps (%lld is missing)",
					    (long long)cur_max + 1, (long long)cur_max + 2,
					    (long long)k);

	/* liveness: not removed, not the join, not finished without a result; an unchanged task
	 * that needs a task that is not live will be skipped by the coordinator, so it is not live
	 * either (to a fixpoint) */
	for (int64_t k = 1; k <= pp.max_no; k++) {
		static const char *const gone[] = {"skipped", "cancelled", "dead", NULL};
		ptask_t *p = &pp.t[k];
		p->live = (p->exists || p->patched) && !p->removed && k != join_no &&
			  (p->patched || !status_is(p->status, gone));
	}
	for (bool changed = true; changed;) {
		changed = false;
		for (int64_t k = 1; k <= pp.max_no; k++) {
			ptask_t *p = &pp.t[k];
			if (!p->live || p->patched)
				continue;
			for (size_t d = 0; d < p->ndeps; d++)
				if (p->deps[d] != 0 &&
				    (p->deps[d] < 0 || p->deps[d] > pp.max_no || !pp.t[p->deps[d]].live)) {
					p->live = false;
					changed = true;
					break;
				}
		}
	}
	for (i = 0; i < rev->tasks.n; i++) {
		ptask_t *p = &pp.t[rev->tasks.v[i].task_no];
		for (size_t d = 0; d < p->ndeps; d++) {
			int64_t dep = p->deps[d];
			if (dep < 1 || dep > pp.max_no || !pp.t[dep].live)
				return lh_error_set(err, LH_ERR_INVALID,
						    "tasks[%zu]: task %lld depends on %lld, which is "
						    "not a live task of the plan (removed, finished "
						    "without a result, the join, or unknown)",
						    i, (long long)p->task_no, (long long)dep);
			if (dep == p->task_no)
				return lh_error_set(err, LH_ERR_INVALID,
						    "tasks[%zu]: task %lld depends on itself", i,
						    (long long)dep);
		}
	}
	if (cyclic(&pp))
		return lh_error_set(err, LH_ERR_INVALID, "the patch makes a dependency cycle");

	/* the new join: after every live task, reading the sinks */
	new_join_no = pp.max_no + 1;
	join = &rev->tasks.v[rev->tasks.n++];
	join->task_no = new_join_no;
	join->kind = "join";
	join->tier = lh_arena_strdup(arena, join_tier ? join_tier : "standard");
	join->instructions = lh_arena_strdup(arena, join_instr ? join_instr
							       : "Decide whether the goal is met "
								 "by the results; answer with the "
								 "final result.");
	join->refs.v = lh_arena_alloc(arena, sizeof(int64_t) * (size_t)(pp.max_no + 1));
	join->after.v = lh_arena_alloc(arena, sizeof(int64_t) * (size_t)(pp.max_no + 1));
	{
		bool *has_dependent = lh_arena_alloc(arena, sizeof(bool) * (size_t)(pp.max_no + 1));
		for (int64_t k = 1; k <= pp.max_no; k++)
			if (joinable(&pp.t[k]))
				for (size_t d = 0; d < pp.t[k].ndeps; d++)
					if (pp.t[k].deps[d] >= 0 && pp.t[k].deps[d] <= pp.max_no)
						has_dependent[pp.t[k].deps[d]] = true;
		for (int64_t k = 1; k <= pp.max_no; k++) {
			if (!joinable(&pp.t[k]))
				continue;
			if (has_dependent[k])
				join->after.v[join->after.n++] = k;
			else
				join->refs.v[join->refs.n++] = k;
		}
	}
	if (join->refs.n + join->after.n == 0)
		return lh_error_set(err, LH_ERR_INVALID,
				    "the patch leaves the plan without a task to join");

	rev->removed.v = lh_arena_alloc(arena, sizeof(int64_t) * (nremove + 1));
	for (i = 0; i < nremove; i++)
		rev->removed.v[rev->removed.n++] = json_integer_value(json_array_get(remove, i));
	rev->removed.v[rev->removed.n++] = join_no;
	rev->version = version + 1;
	rev->base_version = version;
	rev->reason = lh_arena_strdup(arena, json_string_value(json_object_get(patch, "reason")));
	rev->replan_task_no = 0;
	/* every bound of the event's schema (a join tier copied from a malformed current plan, for
	 * one): what the codec would refuse to encode is refused here */
	{
		json_t *j = lh_struct_to_json(&lh_plan_revised_desc, rev);
		void *back;
		if (!j)
			return lh_error_set(err, LH_ERR_NOMEM, "out of memory");
		rc = lh_struct_from_json(&lh_plan_revised_desc, j, arena, &back, err);
		json_decref(j);
		if (rc) {
			lh_error_prefix(err, "the revision");
			return LH_ERR_INVALID;
		}
	}
	*ret_rev = rev;
	return LH_OK;
}
