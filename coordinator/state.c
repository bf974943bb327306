/* state.c — the fold. See state.h for the rules every transition follows. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

static const char *const task_status_names[LH_TASK__COUNT] = {
	"pending",   "ready",		  "dispatched",		  "running", "succeeded", "failed",
	"waiting_for_input", "waiting_for_approval", "dead", "cancelled", "skipped"};
static const char *const plan_status_names[LH_PLAN__COUNT] = {
	"planning", "running", "paused", "waiting", "completed", "failed", "cancelled"};
static const char *const kind_names[LH_KIND__COUNT] = {"plan", "act", "join", "replan",
							 "summarize"};

const char *lh_task_status_name(lh_task_status_t s)
{
	return (unsigned)s < LH_TASK__COUNT ? task_status_names[s] : "?";
}
const char *lh_plan_status_name(lh_plan_status_t s)
{
	return (unsigned)s < LH_PLAN__COUNT ? plan_status_names[s] : "?";
}
const char *lh_task_kind_name(lh_task_kind_t k)
{
	return (unsigned)k < LH_KIND__COUNT ? kind_names[k] : "?";
}
int lh_task_kind_parse(const char *s)
{
	for (int i = 0; s && i < LH_KIND__COUNT; i++)
		if (strcmp(s, kind_names[i]) == 0)
			return i;
	return -1;
}

/* The task state machine (DESIGN §3): rows are `from`, bits are allowed `to`. */
#define B(s) (1u << (s))
static const unsigned transitions[LH_TASK__COUNT] = {
	[LH_TASK_PENDING] = B(LH_TASK_READY) | B(LH_TASK_DISPATCHED),
	[LH_TASK_READY] = B(LH_TASK_DISPATCHED),
	[LH_TASK_DISPATCHED] = B(LH_TASK_RUNNING) | B(LH_TASK_SUCCEEDED) | B(LH_TASK_FAILED) |
			       B(LH_TASK_DISPATCHED),
	[LH_TASK_RUNNING] = B(LH_TASK_SUCCEEDED) | B(LH_TASK_FAILED) |
			    B(LH_TASK_WAITING_FOR_INPUT) | B(LH_TASK_WAITING_FOR_APPROVAL) |
			    B(LH_TASK_DISPATCHED),
	[LH_TASK_SUCCEEDED] = 0,
	[LH_TASK_FAILED] = B(LH_TASK_READY) | B(LH_TASK_DISPATCHED) | B(LH_TASK_DEAD),
	[LH_TASK_WAITING_FOR_INPUT] = B(LH_TASK_READY) | B(LH_TASK_DISPATCHED),
	[LH_TASK_WAITING_FOR_APPROVAL] = B(LH_TASK_READY) | B(LH_TASK_DISPATCHED),
	[LH_TASK_DEAD] = 0,
	[LH_TASK_CANCELLED] = 0,
	[LH_TASK_SKIPPED] = 0,
};

bool lh_task_transition_ok(lh_task_status_t from, lh_task_status_t to)
{
	if ((unsigned)from >= LH_TASK__COUNT || (unsigned)to >= LH_TASK__COUNT)
		return false;
	/* any state -> cancelled | skipped, except the terminal ones */
	if ((to == LH_TASK_CANCELLED || to == LH_TASK_SKIPPED) && from != LH_TASK_SUCCEEDED &&
	    from != LH_TASK_DEAD && from != LH_TASK_CANCELLED && from != LH_TASK_SKIPPED)
		return true;
	return (transitions[from] & B(to)) != 0;
}

static bool plan_terminal(const lh_cplan_t *p)
{
	return p->status == LH_PLAN_COMPLETED || p->status == LH_PLAN_FAILED ||
	       p->status == LH_PLAN_CANCELLED;
}

void lh_state_init(lh_state_t *st, const lh_state_opts_t *opts)
{
	memset(st, 0, sizeof(*st));
	lh_idmap_init(&st->plans);
	st->opts = *opts;
}

static void task_finish(lh_ctask_t *t)
{
	free(t->tier);
	free(t->tool);
	free(t->instructions);
	json_decref(t->args);
	json_decref(t->output_schema);
	json_decref(t->output);
	free(t->deps);
	free(t->refs);
	free(t->last_error);
	memset(t, 0, sizeof(*t));
}

/* A finished plan keeps only its identity and outcome: late duplicates must still find it. */
static void plan_shrink(lh_cplan_t *p)
{
	for (int i = 0; i < p->ntasks; i++)
		task_finish(&p->tasks[i]);
	free(p->tasks);
	p->tasks = NULL;
	p->ntasks = 0;
	free(p->goal);
	p->goal = NULL;
	json_decref(p->plan_doc);
	p->plan_doc = NULL;
}

static void plan_free(lh_cplan_t *p)
{
	plan_shrink(p);
	free(p->tenant);
	free(p->planner_tier);
	free(p->fail_reason);
	free(p);
}

void lh_state_finish(lh_state_t *st)
{
	size_t it = 0;
	lh_cplan_t *p;
	while ((p = lh_idmap_next(&st->plans, &it)))
		plan_free(p);
	lh_idmap_finish(&st->plans);
}

lh_cplan_t *lh_state_plan(lh_state_t *st, const lh_id_t *plan_id)
{
	return lh_idmap_get(&st->plans, plan_id);
}

void lh_state_drop_partition(lh_state_t *st, int32_t partition)
{
	lh_id_t drop[256];
	int n;
	do {
		size_t it = 0;
		lh_cplan_t *p;
		n = 0;
		while (n < 256 && (p = lh_idmap_next(&st->plans, &it)))
			if (p->partition == partition)
				drop[n++] = p->plan_id;
		for (int i = 0; i < n; i++) {
			p = lh_idmap_del(&st->plans, &drop[i]);
			if (p->dirty) {
				/* unlink from the dirty list */
				lh_cplan_t **pp = &st->dirty_head;
				while (*pp && *pp != p)
					pp = &(*pp)->next_dirty;
				if (*pp)
					*pp = p->next_dirty;
			}
			plan_free(p);
		}
	} while (n == 256);
}

void lh_state_mark_dirty(lh_state_t *st, lh_cplan_t *p)
{
	if (p->dirty)
		return;
	p->dirty = true;
	p->next_dirty = st->dirty_head;
	st->dirty_head = p;
}

lh_cplan_t *lh_state_take_dirty(lh_state_t *st)
{
	lh_cplan_t *head = st->dirty_head, *p;
	st->dirty_head = NULL;
	for (p = head; p; p = p->next_dirty)
		p->dirty = false;
	return head;
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static void set_error(lh_ctask_t *t, const char *msg)
{
	free(t->last_error);
	t->last_error = xstrdup(msg);
}

static lh_ctask_t *plan_task(lh_cplan_t *p, int64_t task_no)
{
	if (task_no < 0 || task_no >= p->ntasks || p->tasks[task_no].task_no != task_no)
		return NULL;
	return &p->tasks[task_no];
}

static void usage_add(lh_usage_t *sum, const lh_usage_t *u)
{
	sum->input_tokens += u->input_tokens;
	sum->output_tokens += u->output_tokens;
	sum->cached_tokens += u->cached_tokens;
	sum->reasoning_tokens += u->reasoning_tokens;
	sum->cost_usd += u->cost_usd;
	sum->llm_calls += u->llm_calls;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* deps = sorted unique union of refs and after. */
static void set_deps(lh_ctask_t *t, const lh_task_spec_t *s)
{
	int n = 0;
	t->deps = malloc(sizeof(int64_t) * (s->refs.n + s->after.n + 1));
	t->refs = malloc(sizeof(int64_t) * (s->refs.n + 1));
	if (!t->deps || !t->refs)
		abort();
	for (size_t i = 0; i < s->refs.n; i++) {
		t->deps[n++] = s->refs.v[i];
		t->refs[i] = s->refs.v[i];
	}
	t->nrefs = (int)s->refs.n;
	for (size_t i = 0; i < s->after.n; i++)
		t->deps[n++] = s->after.v[i];
	qsort(t->deps, (size_t)n, sizeof(int64_t), cmp_i64);
	t->ndeps = 0;
	for (int i = 0; i < n; i++)
		if (t->ndeps == 0 || t->deps[t->ndeps - 1] != t->deps[i])
			t->deps[t->ndeps++] = t->deps[i];
}

#define REJECT(...)                                                                          \
	do {                                                                                 \
		if (reason)                                                                  \
			snprintf(reason, reason_len, __VA_ARGS__);                           \
		st->rejected++;                                                              \
		return LH_APPLY_REJECTED;                                                    \
	} while (0)

static lh_apply_result_t apply_goal(lh_state_t *st, const lh_event_t *ev, int32_t partition)
{
	const lh_goal_submitted_t *b = ev->body;
	lh_cplan_t *p = lh_state_plan(st, &ev->plan_id);
	lh_ctask_t *t;
	if (p)
		return LH_APPLY_NOOP; /* the first submission of a plan id wins */
	p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	p->plan_id = ev->plan_id;
	p->tenant = strdup(ev->tenant ? ev->tenant : "default");
	p->goal = strdup(b->goal);
	p->planner_tier =
		strdup(b->planner_tier && *b->planner_tier ? b->planner_tier : st->opts.default_tier);
	p->status = LH_PLAN_PLANNING;
	p->partition = partition;
	p->submitted_ts_us = ev->ts_us;
	p->tasks = calloc(1, sizeof(lh_ctask_t));
	if (!p->tasks)
		abort();
	p->ntasks = 1;
	t = &p->tasks[0];
	t->task_no = 0;
	t->kind = LH_KIND_PLAN;
	t->status = LH_TASK_PENDING;
	t->tier = strdup(p->planner_tier);
	t->instructions = strdup(b->goal);
	lh_idmap_put(&st->plans, &p->plan_id, p);
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_plan_created(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev,
					    char *reason, size_t reason_len)
{
	const lh_plan_created_t *b = ev->body;
	int64_t max_no = 0;
	if (p->version >= b->version)
		return LH_APPLY_NOOP;
	if (p->version != 0 || b->version != 1)
		REJECT("plan.created version %lld on plan at version %lld", (long long)b->version,
		       (long long)p->version);
	for (size_t i = 0; i < b->tasks.n; i++) {
		if (b->tasks.v[i].task_no <= max_no)
			REJECT("plan.created: task numbers must increase from 1");
		max_no = b->tasks.v[i].task_no;
		if (lh_task_kind_parse(b->tasks.v[i].kind) < 0)
			REJECT("plan.created: task %lld has unknown kind",
			       (long long)b->tasks.v[i].task_no);
	}
	if (max_no > 1000000)
		REJECT("plan.created: task number %lld too large", (long long)max_no);
	p->tasks = realloc(p->tasks, sizeof(lh_ctask_t) * (size_t)(max_no + 1));
	if (!p->tasks)
		abort();
	memset(p->tasks + p->ntasks, 0, sizeof(lh_ctask_t) * (size_t)(max_no + 1 - p->ntasks));
	for (int64_t i = p->ntasks; i <= max_no; i++)
		p->tasks[i].task_no = -1; /* hole until defined */
	p->ntasks = (int)max_no + 1;
	for (size_t i = 0; i < b->tasks.n; i++) {
		const lh_task_spec_t *s = &b->tasks.v[i];
		lh_ctask_t *t = &p->tasks[s->task_no];
		t->task_no = s->task_no;
		t->status = LH_TASK_PENDING;
		t->kind = (lh_task_kind_t)lh_task_kind_parse(s->kind);
		t->tier = strdup(s->tier);
		t->tool = xstrdup(s->tool);
		t->instructions = strdup(s->instructions);
		t->args = json_incref(s->args);
		t->output_schema = json_incref(s->output_schema);
		set_deps(t, s);
	}
	p->version = b->version;
	p->created_ts_us = ev->ts_us;
	p->status = LH_PLAN_RUNNING;
	json_decref(p->plan_doc);
	p->plan_doc = NULL;
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_dispatched(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t,
					  const lh_event_t *ev, char *reason, size_t reason_len)
{
	if (ev->attempt <= t->attempt)
		return LH_APPLY_NOOP; /* this attempt (or a newer one) is known */
	if (!lh_task_transition_ok(t->status, LH_TASK_DISPATCHED))
		REJECT("task %lld: cannot dispatch from %s", (long long)t->task_no,
		       lh_task_status_name(t->status));
	if (ev->attempt != t->attempt + 1)
		REJECT("task %lld: attempt %lld dispatched after %lld", (long long)t->task_no,
		       (long long)ev->attempt, (long long)t->attempt);
	t->status = LH_TASK_DISPATCHED;
	t->attempt = ev->attempt;
	t->order_sent = false;
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

/* Validate what a plan or join task returned; a bad output fails the attempt (fed back to the
 * model on the next one). Deterministic: depends only on the output and the options. */
static bool output_ok(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, const json_t *out,
		      char *why, size_t why_len)
{
	lh_error_t err = {0};
	lh_arena_t *arena;
	void *parsed;
	bool ok = true;
	if (t->kind != LH_KIND_PLAN && t->kind != LH_KIND_JOIN)
		return true;
	arena = lh_arena_new(0);
	if (t->kind == LH_KIND_PLAN) {
		lh_task_spec_t *specs;
		int n;
		ok = lh_plan_parse(&st->opts, out, arena, &specs, &n, &err) == LH_OK;
	} else
		ok = out && lh_struct_from_json(&lh_join_output_desc, out, arena, &parsed, &err) ==
				    LH_OK;
	if (!ok)
		snprintf(why, why_len, "%s output rejected: %s", lh_task_kind_name(t->kind),
			 out ? err.msg : "no output");
	lh_arena_free(arena);
	return ok;
}

static lh_apply_result_t apply_result(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t,
				      const lh_event_t *ev)
{
	bool success = ev->type == LH_EV_ATTEMPT_SUCCEEDED;
	const lh_usage_t *u;
	char why[600];
	if (ev->attempt != t->attempt ||
	    (t->status != LH_TASK_DISPATCHED && t->status != LH_TASK_RUNNING))
		return LH_APPLY_NOOP; /* stale attempt (fenced) or already reflected */
	if (success) {
		const lh_attempt_succeeded_t *b = ev->body;
		u = b->has_usage ? &b->usage : NULL;
		if (output_ok(st, p, t, b->output, why, sizeof(why))) {
			t->status = LH_TASK_SUCCEEDED;
			t->output = json_incref(b->output);
			t->done_ts_us = ev->ts_us;
			if (t->kind == LH_KIND_PLAN) {
				json_decref(p->plan_doc);
				p->plan_doc = json_incref(b->output);
			}
		} else {
			t->status = LH_TASK_FAILED;
			t->failures++;
			set_error(t, why);
		}
	} else {
		const lh_attempt_failed_t *b = ev->body;
		u = b->has_usage ? &b->usage : NULL;
		t->status = LH_TASK_FAILED;
		t->failures++;
		snprintf(why, sizeof(why), "%s: %s", b->error_class, b->message);
		set_error(t, why);
	}
	if (u)
		usage_add(&p->usage, u);
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_terminal(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev)
{
	if (plan_terminal(p))
		return LH_APPLY_NOOP;
	if (ev->type == LH_EV_PLAN_COMPLETED)
		p->status = LH_PLAN_COMPLETED;
	else if (ev->type == LH_EV_PLAN_FAILED) {
		const lh_plan_failed_t *b = ev->body;
		p->status = LH_PLAN_FAILED;
		free(p->fail_reason);
		p->fail_reason = xstrdup(b->reason);
	} else
		p->status = LH_PLAN_CANCELLED;
	plan_shrink(p);
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

lh_apply_result_t lh_state_apply(lh_state_t *st, const lh_event_t *ev, int32_t partition,
				 char *reason, size_t reason_len)
{
	lh_cplan_t *p;
	lh_ctask_t *t = NULL;
	lh_apply_result_t r;

	if (reason && reason_len)
		reason[0] = 0;
	if (ev->type == LH_EV_GOAL_SUBMITTED) {
		r = apply_goal(st, ev, partition);
		goto out;
	}
	p = lh_state_plan(st, &ev->plan_id);
	if (!p) {
		r = LH_APPLY_NOOP; /* events of a plan we never saw submitted: nothing to fold */
		goto out;
	}
	if (ev->ts_us > p->last_ts_us)
		p->last_ts_us = ev->ts_us;
	if (plan_terminal(p) && ev->type != LH_EV_DECISION_LOGGED) {
		r = LH_APPLY_NOOP;
		goto out;
	}
	switch (ev->type) {
	case LH_EV_PLAN_CREATED:
		r = apply_plan_created(st, p, ev, reason, reason_len);
		break;
	case LH_EV_TASK_DISPATCHED:
	case LH_EV_ATTEMPT_STARTED:
	case LH_EV_ATTEMPT_HEARTBEAT:
	case LH_EV_ATTEMPT_SUCCEEDED:
	case LH_EV_ATTEMPT_FAILED:
		t = plan_task(p, ev->task_no);
		if (!t) {
			if (reason)
				snprintf(reason, reason_len, "%s for unknown task %lld",
					 lh_event_type_name(ev->type), (long long)ev->task_no);
			st->rejected++;
			return LH_APPLY_REJECTED;
		}
		if (ev->type == LH_EV_TASK_DISPATCHED)
			r = apply_dispatched(st, p, t, ev, reason, reason_len);
		else if (ev->type == LH_EV_ATTEMPT_STARTED) {
			if (ev->attempt == t->attempt && t->status == LH_TASK_DISPATCHED) {
				t->status = LH_TASK_RUNNING;
				lh_state_mark_dirty(st, p);
				r = LH_APPLY_CHANGED;
			} else
				r = LH_APPLY_NOOP;
		} else if (ev->type == LH_EV_ATTEMPT_HEARTBEAT)
			r = LH_APPLY_NOOP; /* leases arrive with the timer work */
		else
			r = apply_result(st, p, t, ev);
		break;
	case LH_EV_PLAN_COMPLETED:
	case LH_EV_PLAN_FAILED:
	case LH_EV_PLAN_CANCELLED:
		r = apply_terminal(st, p, ev);
		break;
	default:
		r = LH_APPLY_NOOP; /* decisions and other facts do not change plan state yet */
		break;
	}
out:
	if (r == LH_APPLY_CHANGED)
		st->applied++;
	else if (r == LH_APPLY_NOOP)
		st->ignored++;
	else
		st->rejected++;
	return r;
}

static int cmp_plan(const void *a, const void *b)
{
	return memcmp((*(lh_cplan_t *const *)a)->plan_id.b, (*(lh_cplan_t *const *)b)->plan_id.b, 16);
}

static void hash_json(lh_buf_t *b, const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
	lh_buf_appends(b, s ? s : "-");
	lh_buf_append(b, "|", 1);
	free(s);
}

void lh_state_hash(const lh_state_t *st, char hex[65])
{
	lh_cplan_t **all = malloc(sizeof(*all) * (st->plans.n + 1)), *p;
	size_t it = 0, n = 0;
	lh_buf_t b;
	if (!all)
		abort();
	while ((p = lh_idmap_next(&st->plans, &it)))
		all[n++] = p;
	qsort(all, n, sizeof(*all), cmp_plan);
	lh_buf_init(&b);
	for (size_t i = 0; i < n; i++) {
		char id[40];
		p = all[i];
		lh_uuid_fmt(&p->plan_id, id);
		lh_buf_printf(&b, "P%s|%d|%lld|%lld|%lld|%.9f|%s|", id, p->status,
			      (long long)p->version, (long long)p->usage.input_tokens,
			      (long long)p->usage.output_tokens, p->usage.cost_usd,
			      p->fail_reason ? p->fail_reason : "");
		hash_json(&b, p->plan_doc);
		for (int k = 0; k < p->ntasks; k++) {
			const lh_ctask_t *t = &p->tasks[k];
			lh_buf_printf(&b, "T%lld|%d|%d|%lld|%d|%s|%s|", (long long)t->task_no, t->status,
				      t->kind, (long long)t->attempt, t->failures,
				      t->tier ? t->tier : "", t->last_error ? t->last_error : "");
			hash_json(&b, t->output);
		}
	}
	lh_sha256_hex(b.data ? b.data : "", b.len, hex);
	lh_buf_finish(&b);
	free(all);
}
