/* plan_parse.c — planner output to a validated plan (LLMCompiler-style, stricter).
 *
 * Rules: tasks is a non-empty array of at most max_tasks; ids are 1, 2, 3, … in order (so they
 * strictly increase and cannot repeat); a reference ${n} or ${n.field} in instructions or in any
 * string inside args, and every `after` entry, must name an earlier task — the graph is acyclic by
 * construction; kind is "act" when given; tier, when given, is a configured tier; instructions are
 * non-empty and bounded. The join task is appended as number n+1, depending on every task and
 * receiving the outputs of the sinks (tasks nothing else depends on). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

typedef struct refset {
	int64_t *v;
	int n, cap;
	lh_arena_t *arena;
} refset_t;

static void refset_add(refset_t *r, int64_t x)
{
	for (int i = 0; i < r->n; i++)
		if (r->v[i] == x)
			return;
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 8;
		int64_t *v = lh_arena_alloc(r->arena, sizeof(int64_t) * (size_t)cap);
		if (r->n)
			memcpy(v, r->v, sizeof(int64_t) * (size_t)r->n);
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = x;
}

static lh_err_t scan_string(const char *s, refset_t *r, lh_error_t *err)
{
	for (const char *p = s; (p = strstr(p, "${")); p += 2) {
		const char *q = p + 2;
		int64_t n = 0;
		int digits = 0;
		while (isdigit((unsigned char)*q)) {
			n = n * 10 + (*q - '0');
			if (++digits > 9)
				return lh_error_set(err, LH_ERR_INVALID, "reference %.12s… is too large",
						    p);
			q++;
		}
		if (!digits)
			continue; /* "${name}" is text, not a reference */
		if (*q == '.') {
			q++;
			if (!(isalpha((unsigned char)*q) || *q == '_'))
				continue;
			while (isalnum((unsigned char)*q) || *q == '_' || *q == '.')
				q++;
		}
		if (*q != '}')
			continue;
		refset_add(r, n);
	}
	return LH_OK;
}

static lh_err_t scan_json(const json_t *j, refset_t *r, int depth, lh_error_t *err)
{
	const char *k;
	json_t *v;
	size_t i;
	lh_err_t rc;
	if (depth > 32)
		return lh_error_set(err, LH_ERR_INVALID, "args nested deeper than 32 levels");
	if (json_is_string(j))
		return scan_string(json_string_value(j), r, err);
	if (json_is_array(j))
		json_array_foreach(j, i, v) if ((rc = scan_json(v, r, depth + 1, err))) return rc;
	if (json_is_object(j))
		json_object_foreach((json_t *)j, k, v) if ((rc = scan_json(v, r, depth + 1, err)))
			return rc;
	return LH_OK;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

lh_err_t lh_plan_refs(const char *instructions, const json_t *args, lh_arena_t *arena,
		      int64_t **ret_refs, int *ret_n, lh_error_t *err)
{
	refset_t r = {.arena = arena};
	lh_err_t rc;
	if (instructions && (rc = scan_string(instructions, &r, err)))
		return rc;
	if (args && (rc = scan_json(args, &r, 0, err)))
		return rc;
	if (r.n)
		qsort(r.v, (size_t)r.n, sizeof(int64_t), cmp_i64);
	*ret_refs = r.v;
	*ret_n = r.n;
	return LH_OK;
}

static bool tier_known(const lh_state_opts_t *o, const char *tier)
{
	for (int i = 0; i < o->ntiers; i++)
		if (strcmp(o->tiers[i], tier) == 0)
			return true;
	return false;
}

/* The checks every new task gets, planned or patched: instructions present and bounded, a known
 * tier, well-formed references (returned sorted in *ret_refs). */
static lh_err_t check_task(const lh_state_opts_t *opts, const lh_planner_task_t *pt,
			   lh_arena_t *arena, int64_t **ret_refs, int *ret_nrefs, lh_error_t *err)
{
	int64_t id = pt->id;
	lh_err_t rc;
	if (!pt->instructions || !*pt->instructions)
		return lh_error_set(err, LH_ERR_INVALID, "task %lld: empty instructions",
				    (long long)id);
	if (strlen(pt->instructions) > opts->max_instructions)
		return lh_error_set(err, LH_ERR_TOO_LARGE, "task %lld: instructions longer than %zu bytes",
				    (long long)id, opts->max_instructions);
	if (pt->tier && !tier_known(opts, pt->tier))
		return lh_error_set(err, LH_ERR_INVALID, "task %lld: unknown tier \"%s\"",
				    (long long)id, pt->tier);
	if ((rc = lh_plan_refs(pt->instructions, pt->args, arena, ret_refs, ret_nrefs, err))) {
		lh_error_prefix(err, "task %lld", (long long)id);
		return rc;
	}
	return LH_OK;
}

static void fill_spec(lh_task_spec_t *s, const lh_planner_task_t *pt, int64_t *refs, int nrefs,
		      const lh_state_opts_t *opts)
{
	s->task_no = pt->id;
	s->kind = "act";
	s->tier = pt->tier ? pt->tier : opts->default_tier;
	s->tool = pt->tool;
	s->instructions = pt->instructions;
	s->args = pt->args;
	s->refs.n = (size_t)nrefs;
	s->refs.v = refs;
	s->after.n = pt->after.n;
	s->after.v = pt->after.v;
	s->needs_approval = pt->needs_approval;
	s->output_schema = pt->output_schema;
}

/* The join: numbered task_no, after every live task below it, reading the outputs of the sinks
 * (live tasks nothing else depends on). live NULL means every task below task_no. */
static void make_join(lh_task_spec_t *j, int64_t task_no, const json_t *join,
		      const lh_state_opts_t *opts, const bool *live, const bool *has_dependent,
		      lh_arena_t *arena)
{
	size_t nsinks = 0, nafter = 0;
	j->task_no = task_no;
	j->kind = "join";
	j->tier = opts->default_tier;
	j->instructions = json_is_string(join) && *json_string_value(join)
				  ? json_string_value(join)
				  : "Decide whether the goal is met by the results; answer with the "
				    "final result.";
	j->refs.v = lh_arena_alloc(arena, sizeof(int64_t) * (size_t)task_no);
	j->after.v = lh_arena_alloc(arena, sizeof(int64_t) * (size_t)task_no);
	for (int64_t k = 1; k < task_no; k++) {
		if (live && !live[k])
			continue;
		if (has_dependent[k])
			j->after.v[nafter++] = k;
		else
			j->refs.v[nsinks++] = k;
	}
	j->refs.n = nsinks;
	j->after.n = nafter;
}

lh_err_t lh_plan_parse(const lh_state_opts_t *opts, const json_t *output, lh_arena_t *arena,
		       lh_task_spec_t **ret_specs, int *ret_n, lh_error_t *err)
{
	lh_planner_output_t *po;
	lh_task_spec_t *specs;
	json_t *parsed = NULL;
	bool *has_dependent;
	size_t n;
	lh_err_t rc;

	if (json_is_string(output)) {
		/* a model that answered with JSON text: accept it, strictly */
		json_error_t jerr;
		parsed = json_loads(json_string_value(output), JSON_REJECT_DUPLICATES, &jerr);
		if (!parsed)
			return lh_error_set(err, LH_ERR_INVALID,
					    "plan is not JSON: %s at line %d column %d", jerr.text,
					    jerr.line, jerr.column);
		lh_arena_on_free(arena, (void (*)(void *))json_decref, parsed);
		output = parsed;
	}
	if (!json_is_object(output))
		return lh_error_set(err, LH_ERR_INVALID, "plan must be a JSON object with \"tasks\"");
	if ((rc = lh_struct_from_json(&lh_planner_output_desc, output, arena, (void **)&po, err))) {
		lh_error_prefix(err, "plan does not match its schema");
		return rc;
	}
	n = po->tasks.n;
	if (n == 0)
		return lh_error_set(err, LH_ERR_INVALID, "plan has no tasks");
	if (n > (size_t)opts->max_tasks)
		return lh_error_set(err, LH_ERR_TOO_LARGE, "plan has %zu tasks; the limit is %d", n,
				    opts->max_tasks);
	specs = lh_arena_alloc(arena, sizeof(*specs) * (n + 1));
	has_dependent = lh_arena_alloc(arena, sizeof(bool) * (n + 2));
	for (size_t i = 0; i < n; i++) {
		const lh_planner_task_t *pt = &po->tasks.v[i];
		lh_task_spec_t *s = &specs[i];
		int64_t id = pt->id, *refs;
		int nrefs;
		for (size_t j = 0; j < i; j++)
			if (po->tasks.v[j].id == id)
				return lh_error_set(err, LH_ERR_INVALID,
						    "tasks[%zu]: duplicate id %lld", i, (long long)id);
		if (id != (int64_t)i + 1)
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks[%zu]: id %lld out of order (ids must be 1, 2, 3, … "
					    "in order; expected %zu)",
					    i, (long long)id, i + 1);
		if (pt->kind && strcmp(pt->kind, "act") != 0)
			return lh_error_set(err, LH_ERR_INVALID, "task %lld: unknown kind \"%s\"",
					    (long long)id, pt->kind);
		if ((rc = check_task(opts, pt, arena, &refs, &nrefs, err)))
			return rc;
		for (int k = 0; k < nrefs; k++) {
			if (refs[k] >= id)
				return lh_error_set(err, LH_ERR_INVALID,
						    "task %lld: reference ${%lld} points %s (a plan must "
						    "be acyclic: refer only to earlier tasks)",
						    (long long)id, (long long)refs[k],
						    refs[k] == id ? "to itself" : "forward");
			if (refs[k] < 1)
				return lh_error_set(err, LH_ERR_INVALID,
						    "task %lld: reference ${%lld} names no task",
						    (long long)id, (long long)refs[k]);
			has_dependent[refs[k]] = true;
		}
		for (size_t k = 0; k < pt->after.n; k++) {
			int64_t a = pt->after.v[k];
			if (a >= id)
				return lh_error_set(err, LH_ERR_INVALID,
						    "task %lld: after %lld points %s (a plan must be "
						    "acyclic)",
						    (long long)id, (long long)a,
						    a == id ? "to itself" : "forward");
			has_dependent[a] = true;
		}
		fill_spec(s, pt, refs, nrefs, opts);
	}
	make_join(&specs[n], (int64_t)n + 1, po->join, opts, NULL, has_dependent, arena);
	*ret_specs = specs;
	*ret_n = (int)n + 1;
	return LH_OK;
}

static bool task_live(const lh_cplan_t *p, int64_t no)
{
	const lh_ctask_t *t;
	if (no < 1 || no >= p->ntasks || p->tasks[no].task_no != no)
		return false;
	t = &p->tasks[no];
	return t->kind == LH_KIND_ACT && t->status != LH_TASK_SKIPPED &&
	       t->status != LH_TASK_CANCELLED && t->status != LH_TASK_DEAD;
}

lh_err_t lh_plan_parse_patch(const lh_state_opts_t *opts, const lh_cplan_t *plan,
			     const json_t *output, lh_arena_t *arena, lh_task_spec_t **ret_specs,
			     int *ret_n, int64_t **ret_removed, int *ret_nremoved, lh_error_t *err)
{
	lh_replan_output_t *po;
	lh_task_spec_t *specs;
	int64_t first = plan->max_task_no + 1, last, *removed;
	bool *gone, *has_dependent, *live;
	size_t n, nremoved = 0;
	lh_err_t rc;

	if (!json_is_object(output))
		return lh_error_set(err, LH_ERR_INVALID,
				    "replan must be a JSON object with \"tasks\" (and \"remove\")");
	if ((rc = lh_struct_from_json(&lh_replan_output_desc, output, arena, (void **)&po, err))) {
		lh_error_prefix(err, "replan does not match its schema");
		return rc;
	}
	n = po->tasks.n;
	if (n > (size_t)opts->max_tasks)
		return lh_error_set(err, LH_ERR_TOO_LARGE, "replan adds %zu tasks; the limit is %d", n,
				    opts->max_tasks);
	last = first + (int64_t)n; /* the new join */
	gone = lh_arena_alloc(arena, sizeof(bool) * (size_t)(last + 1));
	has_dependent = lh_arena_alloc(arena, sizeof(bool) * (size_t)(last + 1));
	live = lh_arena_alloc(arena, sizeof(bool) * (size_t)(last + 1));
	removed = lh_arena_alloc(arena, sizeof(int64_t) * (po->remove.n + 2));
	for (size_t i = 0; i < po->remove.n; i++) {
		int64_t r = po->remove.v[i];
		if (r < 1 || r >= first || plan->tasks[r].task_no != r)
			return lh_error_set(err, LH_ERR_INVALID, "remove: the plan has no task %lld",
					    (long long)r);
		if (!gone[r]) {
			gone[r] = true;
			removed[nremoved++] = r;
		}
	}
	/* the task being repaired and the old join always go */
	if (plan->repair_task > 0 && plan->repair_task < first && !gone[plan->repair_task]) {
		gone[plan->repair_task] = true;
		removed[nremoved++] = plan->repair_task;
	}
	if (plan->join_task > 0 && !gone[plan->join_task]) {
		gone[plan->join_task] = true;
		removed[nremoved++] = plan->join_task;
	}
	for (int64_t k = 1; k < first; k++)
		live[k] = !gone[k] && task_live(plan, k);
	specs = lh_arena_alloc(arena, sizeof(*specs) * (n + 1));
	for (size_t i = 0; i < n; i++) {
		const lh_planner_task_t *pt = &po->tasks.v[i];
		lh_task_spec_t *s = &specs[i];
		int64_t id = pt->id, *refs, expect = first + (int64_t)i;
		int nrefs;
		if (id != expect)
			return lh_error_set(err, LH_ERR_INVALID,
					    "tasks[%zu]: id %lld out of order (new ids continue after "
					    "%lld: expected %lld)",
					    i, (long long)id, (long long)(first - 1), (long long)expect);
		if ((rc = check_task(opts, pt, arena, &refs, &nrefs, err)))
			return rc;
		for (int k = 0; k < nrefs + (int)pt->after.n; k++) {
			int64_t r = k < nrefs ? refs[k] : pt->after.v[k - nrefs];
			if (r >= id)
				return lh_error_set(err, LH_ERR_INVALID,
						    "task %lld: reference %lld points %s (refer only to "
						    "earlier tasks)",
						    (long long)id, (long long)r,
						    r == id ? "to itself" : "forward");
			if (r < first && !live[r] &&
			    !(r >= 1 && !gone[r] && plan->tasks[r].task_no == r &&
			      plan->tasks[r].status == LH_TASK_SUCCEEDED))
				return lh_error_set(err, LH_ERR_INVALID,
						    "task %lld: reference %lld names a task that is "
						    "removed, failed or not in the plan",
						    (long long)id, (long long)r);
			has_dependent[r] = true;
		}
		live[id] = true;
		fill_spec(s, pt, refs, nrefs, opts);
	}
	/* dependencies among the kept tasks */
	for (int64_t k = 1; k < first; k++)
		if (live[k])
			for (int d = 0; d < plan->tasks[k].ndeps; d++)
				has_dependent[plan->tasks[k].deps[d]] = true;
	make_join(&specs[n], last, po->join, opts, live, has_dependent, arena);
	*ret_specs = specs;
	*ret_n = (int)n + 1;
	*ret_removed = removed;
	*ret_nremoved = (int)nremoved;
	return LH_OK;
}
