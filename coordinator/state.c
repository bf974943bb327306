/* state.c — the fold. See state.h for the rules every transition follows. */
#include "state.h"

#include <stdarg.h>
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
	lh_idmap_init(&st->retired);
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
	free(t->last_error_class);
	free(t->input_request);
	json_decref(t->conversation);
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
	json_decref(p->early_answers);
	p->early_answers = NULL;
	json_decref(p->closed);
	p->closed = NULL;
	json_decref(p->decisions);
	p->decisions = NULL;
	json_decref(p->once);
	p->once = NULL;
}

void lh_cplan_free(lh_cplan_t *p)
{
	plan_shrink(p);
	free(p->tenant);
	free(p->planner_tier);
	free(p->fail_reason);
	free(p->pause_cause);
	free(p->command_reason);
	free(p->wait_request);
	free(p->repair_reason);
	free(p);
}

void lh_state_finish(lh_state_t *st)
{
	size_t it = 0;
	lh_cplan_t *p;
	while ((p = lh_idmap_next(&st->plans, &it)))
		lh_cplan_free(p);
	lh_idmap_finish(&st->plans);
	lh_idmap_finish(&st->retired);
}

lh_cplan_t *lh_state_plan(lh_state_t *st, const lh_id_t *plan_id)
{
	return lh_idmap_get(&st->plans, plan_id);
}

void lh_state_retire(lh_state_t *st, const lh_id_t *plan_id, int32_t partition,
		     lh_plan_status_t status)
{
	uintptr_t v = ((uintptr_t)(uint32_t)partition + 1) << 8 | (uintptr_t)status;
	lh_idmap_put(&st->retired, plan_id, (void *)v);
}

bool lh_state_retired(const lh_state_t *st, const lh_id_t *plan_id, lh_plan_status_t *status)
{
	uintptr_t v = (uintptr_t)lh_idmap_get(&st->retired, plan_id);
	if (!v)
		return false;
	if (status)
		*status = (lh_plan_status_t)(v & 0xff);
	return true;
}

bool lh_plan_status_parse(const char *name, lh_plan_status_t *out)
{
	for (int i = 0; name && i < LH_PLAN__COUNT; i++)
		if (!strcmp(name, plan_status_names[i])) {
			*out = (lh_plan_status_t)i;
			return true;
		}
	return false;
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
			lh_cplan_free(p);
		}
	} while (n == 256);
	do {
		size_t it = 0;
		void *v;
		n = 0;
		while (n < 256 && (v = lh_idmap_next(&st->retired, &it)))
			if ((int64_t)((uintptr_t)v >> 8) - 1 == partition)
				drop[n++] = st->retired.slots[it - 1].key; /* the slot just returned */
		for (int i = 0; i < n; i++)
			lh_idmap_del(&st->retired, &drop[i]);
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

/* Length of the longest prefix of s[0, n) that does not end inside a UTF-8 character. */
static size_t utf8_fit(const char *s, size_t n)
{
	size_t i, need;
	unsigned char c;
	if (n == 0)
		return 0;
	i = n - 1;
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	c = (unsigned char)s[i];
	need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
	return i + need > n ? i : n;
}

/* Append one key decision (printf-style, cut at LH_DECISION_BYTES on a UTF-8 boundary) and keep
 * the newest LH_DECISIONS_MAX. */
__attribute__((format(printf, 2, 3))) static void note_decision(lh_cplan_t *p, const char *fmt,
								 ...)
{
	char buf[LH_DECISION_BYTES + 1];
	size_t n;
	json_t *s;
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	n = utf8_fit(buf, strlen(buf));
	if (!(s = json_stringn(buf, n)))
		return;
	if (!p->decisions)
		p->decisions = json_array();
	json_array_append_new(p->decisions, s);
	while (json_array_size(p->decisions) > LH_DECISIONS_MAX)
		json_array_remove(p->decisions, 0);
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
		return LH_APPLY_REJECTED;                                                    \
	} while (0)

static const char *const budget_dims[LH_BUDGET__COUNT] = {"usd", "tokens", "tasks", "replans",
							  "deadline_s"};
const char *lh_budget_dim_name(int dim)
{
	return dim >= 0 && dim < LH_BUDGET__COUNT ? budget_dims[dim] : "?";
}

double lh_budget_limit(const lh_cplan_t *p, int dim)
{
	switch (dim) {
	case LH_BUDGET_USD: return p->budget.usd;
	case LH_BUDGET_TOKENS: return (double)p->budget.tokens;
	case LH_BUDGET_TASKS: return (double)p->budget.tasks;
	case LH_BUDGET_REPLANS: return (double)p->budget.replans;
	case LH_BUDGET_DEADLINE: return (double)p->budget.deadline_s;
	}
	return 0;
}

double lh_budget_used(const lh_cplan_t *p, int dim, int64_t now_us)
{
	int n = 0;
	switch (dim) {
	case LH_BUDGET_USD: return p->usage.cost_usd;
	case LH_BUDGET_TOKENS: return (double)(p->usage.input_tokens + p->usage.output_tokens);
	case LH_BUDGET_TASKS:
		for (int i = 1; i < p->ntasks; i++)
			if (p->tasks[i].task_no == i && p->tasks[i].kind == LH_KIND_ACT &&
			    p->tasks[i].attempt > 0)
				n++;
		return n;
	case LH_BUDGET_REPLANS: return (double)p->replans;
	case LH_BUDGET_DEADLINE:
		return now_us > p->submitted_ts_us ? (double)(now_us - p->submitted_ts_us) / 1e6 : 0;
	}
	return 0;
}

int64_t lh_state_backoff_us(const lh_state_opts_t *opts, const lh_id_t *plan_id, int64_t task_no,
			    int n)
{
	int64_t base = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : 1000;
	int64_t cap = opts->backoff_cap_ms > 0 ? opts->backoff_cap_ms : 60000, d = base;
	uint8_t h[32];
	char key[64];
	for (int i = 1; i < n && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* deterministic jitter: up to 25% less, from the plan, the task and the failure count */
	snprintf(key, sizeof(key), "%lld:%d", (long long)task_no, n);
	{
		uint8_t buf[16 + sizeof(key)];
		memcpy(buf, plan_id->b, 16);
		memcpy(buf + 16, key, sizeof(key));
		lh_sha256(buf, 16 + strlen(key), h);
	}
	d -= d * (h[0] % 26) / 100;
	return d * 1000;
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = xstrdup(s);
}

/* Install a task spec (new, or replacing a not-yet-succeeded task of an older version). */
static void install_task(lh_cplan_t *p, const lh_task_spec_t *s, int64_t version)
{
	lh_ctask_t *t = &p->tasks[s->task_no];
	int64_t attempt = t->task_no == s->task_no ? t->attempt : 0; /* attempts only grow */
	if (t->task_no == s->task_no)
		task_finish(t);
	t->task_no = s->task_no;
	t->status = LH_TASK_PENDING;
	t->kind = (lh_task_kind_t)lh_task_kind_parse(s->kind);
	t->tier = strdup(s->tier);
	t->tool = xstrdup(s->tool);
	t->instructions = strdup(s->instructions);
	t->args = json_incref(s->args);
	t->output_schema = json_incref(s->output_schema);
	t->attempt = attempt;
	t->version_added = version;
	t->needs_approval = s->needs_approval;
	t->approved = false;
	set_deps(t, s);
	if (t->kind == LH_KIND_JOIN)
		p->join_task = t->task_no;
	if (t->kind == LH_KIND_REPLAN)
		p->replan_task = t->task_no;
	if (t->task_no > p->max_task_no)
		p->max_task_no = t->task_no;
}

static void grow_tasks(lh_cplan_t *p, int64_t max_no)
{
	if (max_no < p->ntasks)
		return;
	p->tasks = realloc(p->tasks, sizeof(lh_ctask_t) * (size_t)(max_no + 1));
	if (!p->tasks)
		abort();
	memset(p->tasks + p->ntasks, 0, sizeof(lh_ctask_t) * (size_t)(max_no + 1 - p->ntasks));
	for (int64_t i = p->ntasks; i <= max_no; i++)
		p->tasks[i].task_no = -1; /* hole until defined */
	p->ntasks = (int)max_no + 1;
}

static int count_succeeded(const lh_cplan_t *p)
{
	int n = 0;
	for (int i = 1; i < p->ntasks; i++)
		if (p->tasks[i].task_no == i && p->tasks[i].kind == LH_KIND_ACT &&
		    p->tasks[i].status == LH_TASK_SUCCEEDED)
			n++;
	return n;
}

/* A cancelled or skipped task makes every act task that needs it skipped, transitively; joins
 * only wait for it. */
static void skip_dependents(lh_cplan_t *p)
{
	bool again = true;
	while (again) {
		again = false;
		for (int i = 1; i < p->ntasks; i++) {
			lh_ctask_t *t = &p->tasks[i];
			if (t->task_no != i || t->kind == LH_KIND_JOIN || t->status != LH_TASK_PENDING)
				continue;
			for (int k = 0; k < t->ndeps; k++) {
				lh_task_status_t ds = p->tasks[t->deps[k]].status;
				if (ds == LH_TASK_CANCELLED || ds == LH_TASK_SKIPPED) {
					t->status = LH_TASK_SKIPPED;
					again = true;
					break;
				}
			}
		}
	}
}

static lh_apply_result_t apply_goal(lh_state_t *st, const lh_event_t *ev, int32_t partition)
{
	const lh_goal_submitted_t *b = ev->body;
	const lh_budget_t *d = &st->opts.default_budget;
	lh_cplan_t *p = lh_state_plan(st, &ev->plan_id);
	lh_ctask_t *t;
	lh_plan_status_t done;
	if (p)
		return LH_APPLY_NOOP; /* the first submission of a plan id wins */
	if (lh_state_retired(st, &ev->plan_id, &done)) {
		char id[LH_UUID_STR_LEN + 1];
		lh_uuid_fmt(&ev->plan_id, id);
		lh_log_info("coordinator.duplicate_goal",
			    "goal.submitted for a plan that already finished: nothing started", "plan",
			    id, "status", lh_plan_status_name(done));
		return LH_APPLY_NOOP;
	}
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
	if (b->has_budget)
		p->budget = b->budget;
	if (p->budget.usd <= 0)
		p->budget.usd = d->usd;
	if (!p->budget.tokens)
		p->budget.tokens = d->tokens;
	if (!p->budget.tasks)
		p->budget.tasks = d->tasks;
	if (!p->budget.attempts_per_task)
		p->budget.attempts_per_task = d->attempts_per_task ? d->attempts_per_task
								   : st->opts.max_attempts;
	if (!p->budget.replans)
		p->budget.replans = d->replans;
	if (!p->budget.deadline_s)
		p->budget.deadline_s = d->deadline_s;
	if (p->budget.deadline_s)
		p->deadline_us = ev->ts_us + p->budget.deadline_s * 1000000;
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
	grow_tasks(p, max_no);
	for (size_t i = 0; i < b->tasks.n; i++)
		install_task(p, &b->tasks.v[i], b->version);
	p->version = b->version;
	p->created_ts_us = ev->ts_us;
	if (p->status == LH_PLAN_PLANNING)
		p->status = LH_PLAN_RUNNING;
	else if (p->status == LH_PLAN_PAUSED && p->paused_from == LH_PLAN_PLANNING)
		p->paused_from = LH_PLAN_RUNNING;
	json_decref(p->plan_doc);
	p->plan_doc = NULL;
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_plan_revised(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev,
					    char *reason, size_t reason_len)
{
	const lh_plan_revised_t *b = ev->body;
	int64_t max_no = p->max_task_no;
	if (p->version >= b->version)
		return LH_APPLY_NOOP;
	if (b->base_version != p->version || b->version != p->version + 1)
		REJECT("plan.revised %lld on base %lld: the plan is at version %lld",
		       (long long)b->version, (long long)b->base_version, (long long)p->version);
	for (size_t i = 0; i < b->tasks.n; i++) {
		const lh_task_spec_t *s = &b->tasks.v[i];
		if (s->task_no < 1 || s->task_no > 1000000 || lh_task_kind_parse(s->kind) < 0)
			REJECT("plan.revised: bad task %lld", (long long)s->task_no);
		if (s->task_no < p->ntasks && p->tasks[s->task_no].task_no == s->task_no &&
		    p->tasks[s->task_no].status == LH_TASK_SUCCEEDED)
			REJECT("plan.revised: task %lld already succeeded", (long long)s->task_no);
		if (s->task_no > max_no)
			max_no = s->task_no;
	}
	grow_tasks(p, max_no);
	for (size_t i = 0; i < b->removed.n; i++) {
		lh_ctask_t *t = plan_task(p, b->removed.v[i]);
		if (t && t->status != LH_TASK_SUCCEEDED && t->status != LH_TASK_CANCELLED)
			t->status = LH_TASK_SKIPPED;
		if (t && t->task_no == p->join_task)
			p->join_task = 0;
	}
	for (size_t i = 0; i < b->tasks.n; i++)
		install_task(p, &b->tasks.v[i], b->version);
	if (b->replan_task_no > 0)
		note_decision(p, "plan v%lld: the patch of replan task %lld was applied (%s)",
			      (long long)b->version, (long long)b->replan_task_no,
			      b->reason ? b->reason
			      : p->repair_reason ? p->repair_reason
						 : "no reason given");
	else {
		bool adds_replan = false;
		for (size_t i = 0; i < b->tasks.n; i++)
			adds_replan |= !strcmp(b->tasks.v[i].kind, "replan");
		note_decision(p, "plan v%lld: %s: %s", (long long)b->version,
			      adds_replan ? "replan requested" : "the plan was patched",
			      b->reason ? b->reason
			      : p->repair_reason ? p->repair_reason
						 : "no reason given");
	}
	if (b->replan_task_no > 0) {
		/* the patch of a replan task: the repair is done */
		lh_ctask_t *rt = plan_task(p, b->replan_task_no);
		if (rt && rt->output) {
			char *s = json_dumps(rt->output, JSON_COMPACT | JSON_SORT_KEYS);
			lh_sha256_hex(s ? s : "", s ? strlen(s) : 0, p->last_patch);
			free(s);
		}
		if (p->replan_task == b->replan_task_no)
			p->replan_task = 0;
		p->repair_task = 0;
		set_str(&p->repair_reason, NULL);
	} else {
		for (size_t i = 0; i < b->tasks.n; i++)
			if (!strcmp(b->tasks.v[i].kind, "replan")) {
				p->replans++;
				p->succeeded_at_replan = count_succeeded(p);
			}
	}
	skip_dependents(p);
	p->version = b->version;
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_dispatched(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t,
					  const lh_event_t *ev, char *reason, size_t reason_len)
{
	const lh_task_dispatched_t *b = ev->body;
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
	t->order_acked = false;
	t->retry_ready = false;
	t->retry_due_us = 0;
	if (strcmp(b->tier, t->tier) != 0)
		set_str(&t->tier, b->tier);
	t->lease_kind = b->lease_ms > 0 ? LH_LEASE_START : LH_LEASE_NONE;
	t->lease_due_us = b->lease_ms > 0 ? ev->ts_us + b->lease_ms * 1000 : 0;
	t->heartbeat_ms = b->heartbeat_ms;
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

/* Validate what a plan, join or replan task returned; a bad output fails the attempt (fed back
 * to the model on the next one). Deterministic: depends only on the output and the options. */
static bool output_ok(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, const json_t *out,
		      char *why, size_t why_len)
{
	lh_error_t err = {0};
	lh_arena_t *arena;
	void *parsed;
	bool ok = true;
	if (t->kind != LH_KIND_PLAN && t->kind != LH_KIND_JOIN && t->kind != LH_KIND_REPLAN)
		return true;
	arena = lh_arena_new(0);
	if (t->kind == LH_KIND_PLAN) {
		lh_task_spec_t *specs;
		int n;
		ok = lh_plan_parse(&st->opts, out, arena, &specs, &n, &err) == LH_OK;
	} else if (t->kind == LH_KIND_REPLAN) {
		lh_task_spec_t *specs;
		int64_t *removed;
		int n, nr;
		ok = lh_plan_parse_patch(&st->opts, p, out, arena, &specs, &n, &removed, &nr, &err) ==
		     LH_OK;
	} else
		ok = out && lh_struct_from_json(&lh_join_output_desc, out, arena, &parsed, &err) ==
				    LH_OK;
	if (!ok)
		snprintf(why, why_len, "%s output rejected: %s", lh_task_kind_name(t->kind),
			 out ? err.msg : "no output");
	lh_arena_free(arena);
	return ok;
}

static void fail_task(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t, const char *klass,
		      const char *msg, int64_t ts_us)
{
	t->status = LH_TASK_FAILED;
	t->failures++;
	t->total_failures++;
	if (t->last_error && msg && strcmp(t->last_error, msg) == 0)
		t->same_error++;
	else
		t->same_error = 1;
	set_str(&t->last_error, msg);
	set_str(&t->last_error_class, klass);
	t->lease_due_us = 0;
	t->lease_kind = LH_LEASE_NONE;
	t->retry_ready = false;
	t->retry_due_us = ts_us + lh_state_backoff_us(&st->opts, &p->plan_id, t->task_no,
						       t->total_failures);
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
			t->lease_due_us = 0;
			t->lease_kind = LH_LEASE_NONE;
			if (t->kind == LH_KIND_PLAN) {
				json_decref(p->plan_doc);
				p->plan_doc = json_incref(b->output);
			}
			if (t->kind == LH_KIND_JOIN && t->task_no == p->join_task) {
				const char *d =
					json_string_value(json_object_get(b->output, "decision"));
				if (d && strcmp(d, "replan") == 0 && !p->repair_task) {
					const char *r =
						json_string_value(json_object_get(b->output, "reason"));
					p->repair_task = t->task_no;
					set_str(&p->repair_reason, r ? r : "the joiner asked to replan");
				}
			}
		} else
			fail_task(st, p, t, "invalid_output", why, ev->ts_us);
	} else {
		const lh_attempt_failed_t *b = ev->body;
		u = b->has_usage ? &b->usage : NULL;
		snprintf(why, sizeof(why), "%s: %s", b->error_class, b->message);
		fail_task(st, p, t, b->error_class, why, ev->ts_us);
	}
	if (u)
		usage_add(&p->usage, u);
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_timer(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t,
				     const lh_event_t *ev)
{
	const lh_timer_fired_t *b = ev->body;
	char why[160];
	if (!t || ev->attempt != t->attempt)
		return LH_APPLY_NOOP;
	if (!strcmp(b->timer, "backoff")) {
		if (t->status != LH_TASK_FAILED || t->retry_ready)
			return LH_APPLY_NOOP;
		t->retry_ready = true;
	} else if (!strcmp(b->timer, "start_lease") || !strcmp(b->timer, "heartbeat_lease")) {
		bool start = !strcmp(b->timer, "start_lease");
		if ((start && t->status != LH_TASK_DISPATCHED) ||
		    (!start && t->status != LH_TASK_RUNNING) || !t->lease_due_us)
			return LH_APPLY_NOOP;
		snprintf(why, sizeof(why), "timeout: attempt %lld %s", (long long)t->attempt,
			 start ? "was not started in time (no worker took it)"
			       : "sent no heartbeat in time (its worker is gone)");
		fail_task(st, p, t, "timeout", why, ev->ts_us);
	} else
		return LH_APPLY_NOOP;
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
		set_str(&p->fail_reason, b->reason);
	} else
		p->status = LH_PLAN_CANCELLED;
	plan_shrink(p);
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_command(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev,
				       char *reason, size_t reason_len)
{
	const lh_command_issued_t *b = ev->body;
	bool *flag = NULL;
	if (!strcmp(b->command, "cancel_task")) {
		lh_ctask_t *t = plan_task(p, b->task_no);
		if (!t || t->kind == LH_KIND_PLAN)
			REJECT("cancel_task: plan has no task %lld", (long long)b->task_no);
		if (t->cancel_requested)
			return LH_APPLY_NOOP;
		t->cancel_requested = true;
	} else {
		flag = !strcmp(b->command, "pause")	  ? &p->pause_requested
		       : !strcmp(b->command, "resume") ? &p->resume_requested
						       : &p->cancel_requested;
		if (*flag)
			return LH_APPLY_NOOP;
		*flag = true;
		if (flag == &p->resume_requested)
			p->pause_requested = false;
		if (flag == &p->pause_requested)
			p->resume_requested = false;
	}
	set_str(&p->command_reason, b->reason);
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_pause(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev)
{
	if (ev->type == LH_EV_PLAN_PAUSED) {
		const lh_plan_paused_t *b = ev->body;
		if (p->status == LH_PLAN_PAUSED)
			return LH_APPLY_NOOP;
		p->paused_from = p->status;
		p->status = LH_PLAN_PAUSED;
		p->pause_requested = false;
		set_str(&p->pause_cause, b->cause);
	} else {
		if (p->status != LH_PLAN_PAUSED)
			return LH_APPLY_NOOP;
		p->status = p->paused_from;
		p->resume_requested = false;
		set_str(&p->pause_cause, NULL);
	}
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static int budget_dim_parse(const char *s)
{
	for (int i = 0; i < LH_BUDGET__COUNT; i++)
		if (s && !strcmp(s, budget_dims[i]))
			return i;
	return -1;
}

static lh_apply_result_t apply_budget(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev)
{
	const lh_budget_warning_t *b = ev->body; /* budget.exceeded has the same shape */
	int dim = budget_dim_parse(b->dimension);
	unsigned *bits = ev->type == LH_EV_BUDGET_WARNING ? &p->warned : &p->exceeded;
	if (dim < 0 || (*bits & (1u << dim)))
		return LH_APPLY_NOOP;
	if (b->limit != lh_budget_limit(p, dim))
		return LH_APPLY_NOOP; /* about a limit since raised: a fact of the past */
	*bits |= 1u << dim;
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_approval_decided(lh_state_t *st, lh_cplan_t *p,
						const lh_event_t *ev);

static lh_apply_result_t apply_approval_requested(lh_state_t *st, lh_cplan_t *p,
						  const lh_event_t *ev)
{
	const lh_approval_requested_t *b = ev->body;
	if ((p->wait_request && !strcmp(p->wait_request, b->request_id)) ||
	    (p->closed && json_object_get(p->closed, b->request_id)))
		return LH_APPLY_NOOP; /* asked already, or asked and answered */
	set_str(&p->wait_request, b->request_id);
	p->wait_since_us = ev->ts_us;
	p->wait_marks = 0;
	p->wait_kind = !strcmp(b->kind, "budget_extension") ? LH_WAIT_BUDGET
		       : !strcmp(b->kind, "no_progress")    ? LH_WAIT_NO_PROGRESS
		       : !strcmp(b->kind, "task")           ? LH_WAIT_TASK
							    : LH_WAIT_ESCALATION;
	p->wait_task = ev->task_no;
	lh_state_mark_dirty(st, p);
	/* a decision that came before the question is applied now */
	{
		json_t *early = p->early_answers ? json_object_get(p->early_answers, b->request_id)
						 : NULL;
		lh_arena_t *arena;
		lh_approval_decided_t *d;
		if (early && json_object_get(early, "decision")) {
			arena = lh_arena_new(0);
			if (lh_struct_from_json(&lh_approval_decided_desc, early, arena, (void **)&d,
						NULL) == LH_OK) {
				lh_event_t de = *ev;
				de.type = LH_EV_APPROVAL_DECIDED;
				de.body = d;
				apply_approval_decided(st, p, &de);
			}
			json_object_del(p->early_answers, b->request_id);
			lh_arena_free(arena);
		}
	}
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_approval_decided(lh_state_t *st, lh_cplan_t *p,
						const lh_event_t *ev)
{
	const lh_approval_decided_t *b = ev->body;
	bool approve = !strcmp(b->decision, "approve");
	if (!p->wait_request || strcmp(p->wait_request, b->request_id) != 0) {
		/* not awaited now: answered already (ignored), or not asked yet (kept for then) */
		json_t *j;
		if (p->early_answers && json_object_get(p->early_answers, b->request_id))
			return LH_APPLY_NOOP;
		if (!(j = lh_struct_to_json(&lh_approval_decided_desc, b)))
			return LH_APPLY_NOOP;
		if (!p->early_answers)
			p->early_answers = json_object();
		json_object_set_new(p->early_answers, b->request_id, j);
		lh_state_mark_dirty(st, p);
		return LH_APPLY_CHANGED;
	}
	{
		static const char *const waits[] = {"", "budget", "escalation", "no progress",
						    "task gate"};
		note_decision(p, "approval (%s, task %lld): %s by %s%s%s%s%s",
			      p->wait_kind > 0 && p->wait_kind <= LH_WAIT_TASK ? waits[p->wait_kind]
									   : "other",
			      (long long)p->wait_task, approve ? "approved" : "rejected", b->responder_type,
			      b->responder_id ? " " : "", b->responder_id ? b->responder_id : "",
			      b->reason ? ": " : "", b->reason ? b->reason : "");
	}
	if (p->wait_kind == LH_WAIT_BUDGET && approve) {
		if (b->has_budget) {
			const lh_budget_t *n = &b->budget;
			if (n->usd > 0)
				p->budget.usd = n->usd;
			if (n->tokens)
				p->budget.tokens = n->tokens;
			if (n->tasks)
				p->budget.tasks = n->tasks;
			if (n->replans)
				p->budget.replans = n->replans;
			if (n->deadline_s) {
				p->budget.deadline_s = n->deadline_s;
				p->deadline_us = p->submitted_ts_us + n->deadline_s * 1000000;
			}
		}
		/* approval means go on: a dimension still over its limit is asked about again */
		p->exceeded = 0;
		for (int d = 0; d < LH_BUDGET__COUNT; d++) {
			double lim = lh_budget_limit(p, d), used = lh_budget_used(p, d, ev->ts_us);
			if (lim <= 0 || used < 0.8 * lim)
				p->warned &= ~(1u << d);
		}
		p->resume_requested = true;
	} else if (p->wait_kind == LH_WAIT_ESCALATION && approve) {
		lh_ctask_t *t = plan_task(p, p->wait_task);
		if (t && b->edit) {
			/* a person supplied the result: the task succeeds with it */
			json_decref(t->output);
			if (t->kind == LH_KIND_JOIN)
				t->output = json_pack("{s:s, s:O}", "decision", "finish", "answer",
						      b->edit);
			else
				t->output = json_incref(b->edit);
			t->status = LH_TASK_SUCCEEDED;
			t->done_ts_us = ev->ts_us;
			if (p->repair_task == t->task_no) {
				p->repair_task = 0;
				set_str(&p->repair_reason, NULL);
			}
		} else if (t && t->kind != LH_KIND_JOIN) {
			/* one more round on the top tier */
			if (t->status == LH_TASK_DEAD)
				t->status = LH_TASK_FAILED;
			t->failures = 0;
			t->same_error = 0;
			t->retry_ready = true;
			if (p->repair_task == t->task_no) {
				p->repair_task = 0;
				set_str(&p->repair_reason, NULL);
			}
		} else if (t && t->kind == LH_KIND_JOIN) {
			json_t *o = t->output;
			t->output = json_pack("{s:s, s:O?}", "decision", "finish", "answer",
					      json_object_get(o, "answer"));
			json_decref(o);
			if (p->repair_task == t->task_no) {
				p->repair_task = 0;
				set_str(&p->repair_reason, NULL);
			}
		}
		p->resume_requested = true;
	} else if (p->wait_kind == LH_WAIT_TASK) {
		/* the gate of a task (needs_approval): approved, it runs; rejected, it is cancelled
		 * (the tasks that need it are skipped) and the plan goes on either way */
		lh_ctask_t *t = plan_task(p, p->wait_task);
		if (t && approve)
			t->approved = true;
		else if (t)
			t->cancel_requested = true;
		if (!approve)
			set_str(&p->command_reason, b->reason ? b->reason : "approval rejected");
		p->resume_requested = true;
	} else if (p->wait_kind == LH_WAIT_NO_PROGRESS && approve) {
		p->succeeded_at_replan = -1; /* a person said go on: count from here */
		p->last_patch[0] = 0;
		for (int i = 1; i < p->ntasks; i++)
			p->tasks[i].same_error = 0;
		p->resume_requested = true;
	} else {
		/* rejected */
		if (p->wait_kind == LH_WAIT_ESCALATION) {
			char r[300];
			snprintf(r, sizeof(r), "escalation rejected by %s %s%s%s", b->responder_type,
				 b->responder_id ? b->responder_id : "", b->reason ? ": " : "",
				 b->reason ? b->reason : "");
			set_str(&p->fail_reason, r);
			p->fail_requested = true;
		} else
			p->cancel_requested = true;
		set_str(&p->command_reason, b->reason ? b->reason : "approval rejected");
	}
	if (!p->closed)
		p->closed = json_object();
	json_object_set_new(p->closed, p->wait_request, json_true());
	set_str(&p->wait_request, NULL);
	p->wait_kind = LH_WAIT_NONE;
	p->wait_task = 0;
	p->wait_since_us = 0;
	p->wait_marks = 0;
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_approval_decided(lh_state_t *st, lh_cplan_t *p,
						const lh_event_t *ev);

/* A timer of a wait (reminder, escalation, deadline) fired. The first two only leave a mark (the
 * event itself is the notice); the deadline applies the configured default: approvals are
 * approved or rejected as an automated rule, questions get an answer saying none came. */
static void take_answer(lh_cplan_t *p, lh_ctask_t *t, const json_t *answer);

static lh_apply_result_t apply_wait_timer(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev)
{
	const lh_timer_fired_t *b = ev->body;
	unsigned mark = !strcmp(b->timer, "reminder")	     ? LH_WAIT_REMINDED
			: !strcmp(b->timer, "wait_escalation") ? LH_WAIT_ESCALATED
							       : LH_WAIT_EXPIRED;
	if (!b->request_id)
		return LH_APPLY_NOOP;
	if (p->wait_request && !strcmp(p->wait_request, b->request_id)) {
		if (p->wait_marks & mark)
			return LH_APPLY_NOOP;
		p->wait_marks |= mark;
		if (mark == LH_WAIT_EXPIRED) {
			lh_approval_decided_t d = {.request_id = b->request_id,
						   .decision = st->opts.wait_default_approve
								       ? "approve"
								       : "reject",
						   .responder_type = "automated_rule",
						   .responder_id = "wait_deadline",
						   .reason = "no answer before the deadline"};
			lh_event_t de = *ev;
			de.type = LH_EV_APPROVAL_DECIDED;
			de.body = &d;
			return apply_approval_decided(st, p, &de);
		}
	} else {
		lh_ctask_t *t = NULL;
		for (int i = 0; i < p->ntasks && !t; i++)
			if (p->tasks[i].task_no == i && p->tasks[i].input_request &&
			    !strcmp(p->tasks[i].input_request, b->request_id))
				t = &p->tasks[i];
		if (!t || t->status != LH_TASK_WAITING_FOR_INPUT || (t->input_marks & mark))
			return LH_APPLY_NOOP;
		t->input_marks |= mark;
		if (mark == LH_WAIT_EXPIRED) {
			json_t *a = json_string("(no answer was given before the deadline; decide "
						"without it)");
			take_answer(p, t, a);
			json_decref(a);
		}
	}
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

/* An answer resumes the task: the question and the answer join its conversation, and it is
 * dispatched again (as a new attempt). */
static void take_answer(lh_cplan_t *p, lh_ctask_t *t, const json_t *answer)
{
	char *text = json_is_string(answer) ? NULL
			     : json_dumps(answer ? answer : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	const char *content = json_is_string(answer) ? json_string_value(answer) : text ? text : "";
	size_t nc = t->conversation ? json_array_size(t->conversation) : 0;
	const char *q = nc ? json_string_value(json_object_get(
				     json_array_get(t->conversation, nc - 1), "content"))
			   : NULL;
	int qn = q ? (int)utf8_fit(q, strlen(q) < 80 ? strlen(q) : 80) : 0;
	note_decision(p, "task %lld asked \"%.*s\"; answer: %s", (long long)t->task_no, qn,
		      q ? q : "", content);
	if (!t->conversation)
		t->conversation = json_array();
	json_array_append_new(t->conversation,
			      json_pack("{s:s, s:s}", "role", "user", "content", content));
	free(text);
	free(t->input_request);
	t->input_request = NULL;
	t->retry_ready = true;
}

static lh_apply_result_t apply_input(lh_state_t *st, lh_cplan_t *p, const lh_event_t *ev)
{
	if (ev->type == LH_EV_INPUT_REQUESTED) {
		const lh_input_requested_t *b = ev->body;
		lh_ctask_t *t = plan_task(p, ev->task_no);
		json_t *early;
		if (!t || ev->attempt != t->attempt ||
		    (t->status != LH_TASK_DISPATCHED && t->status != LH_TASK_RUNNING))
			return LH_APPLY_NOOP;
		t->status = LH_TASK_WAITING_FOR_INPUT;
		t->lease_due_us = 0;
		t->lease_kind = LH_LEASE_NONE;
		free(t->input_request);
		t->input_request = strdup(b->request_id);
		t->input_since_us = ev->ts_us;
		t->input_marks = 0;
		if (!t->conversation)
			t->conversation = json_array();
		json_array_append_new(t->conversation, json_pack("{s:s, s:s}", "role", "assistant",
								 "content", b->question));
		if (b->has_usage)
			usage_add(&p->usage, &b->usage);
		/* an answer that came first was kept for this moment */
		early = p->early_answers ? json_object_get(p->early_answers, b->request_id) : NULL;
		if (early) {
			take_answer(p, t, json_object_get(early, "answer"));
			json_object_del(p->early_answers, b->request_id);
		}
	} else {
		const lh_input_provided_t *b = ev->body;
		lh_ctask_t *t = NULL;
		for (int i = 0; i < p->ntasks && !t; i++)
			if (p->tasks[i].task_no == i && p->tasks[i].input_request &&
			    !strcmp(p->tasks[i].input_request, b->request_id))
				t = &p->tasks[i];
		if (t && t->status == LH_TASK_WAITING_FOR_INPUT)
			take_answer(p, t, b->answer);
		else {
			/* not asked yet (or asked and answered already): keep the first answer */
			json_t *body;
			if (!p->early_answers)
				p->early_answers = json_object();
			if (json_object_get(p->early_answers, b->request_id))
				return LH_APPLY_NOOP;
			body = json_pack("{s:O?}", "answer", b->answer);
			json_object_set_new(p->early_answers, b->request_id, body);
		}
	}
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

static lh_apply_result_t apply_task_event(lh_state_t *st, lh_cplan_t *p, lh_ctask_t *t,
					  const lh_event_t *ev, char *reason, size_t reason_len)
{
	switch (ev->type) {
	case LH_EV_TASK_DISPATCHED:
		return apply_dispatched(st, p, t, ev, reason, reason_len);
	case LH_EV_ATTEMPT_STARTED:
		if (ev->attempt != t->attempt || t->status != LH_TASK_DISPATCHED)
			return LH_APPLY_NOOP;
		t->status = LH_TASK_RUNNING;
		t->lease_kind = t->heartbeat_ms > 0 ? LH_LEASE_HEARTBEAT : LH_LEASE_NONE;
		t->lease_due_us = t->heartbeat_ms > 0 ? ev->ts_us + t->heartbeat_ms * 1000 : 0;
		break;
	case LH_EV_ATTEMPT_HEARTBEAT: {
		int64_t due = ev->ts_us + t->heartbeat_ms * 1000;
		if (ev->attempt != t->attempt || t->status != LH_TASK_RUNNING || !t->heartbeat_ms ||
		    due <= t->lease_due_us)
			return LH_APPLY_NOOP;
		t->lease_due_us = due;
		break;
	}
	case LH_EV_ATTEMPT_SUCCEEDED:
	case LH_EV_ATTEMPT_FAILED:
		return apply_result(st, p, t, ev);
	case LH_EV_TIMER_FIRED:
		return apply_timer(st, p, t, ev);
	case LH_EV_TASK_DEAD:
		if (t->status != LH_TASK_FAILED)
			return LH_APPLY_NOOP;
		t->status = LH_TASK_DEAD;
		if (!p->repair_task) {
			const lh_task_dead_t *b = ev->body;
			p->repair_task = t->task_no;
			set_str(&p->repair_reason, b->reason);
		}
		break;
	case LH_EV_TASK_ESCALATED: {
		const lh_task_escalated_t *b = ev->body;
		if (t->status != LH_TASK_FAILED || !strcmp(b->to_tier, t->tier))
			return LH_APPLY_NOOP;
		if (!strcmp(b->to_tier, "human"))
			return LH_APPLY_NOOP; /* the approval request carries the wait */
		set_str(&t->tier, b->to_tier);
		t->failures = 0;
		t->same_error = 0;
		t->retry_ready = true;
		break;
	}
	case LH_EV_TASK_CANCELLED:
		if (!lh_task_transition_ok(t->status, LH_TASK_CANCELLED))
			return LH_APPLY_NOOP;
		t->status = LH_TASK_CANCELLED;
		t->lease_due_us = 0;
		skip_dependents(p);
		break;
	default:
		return LH_APPLY_NOOP;
	}
	lh_state_mark_dirty(st, p);
	return LH_APPLY_CHANGED;
}

lh_apply_result_t lh_state_apply(lh_state_t *st, const lh_event_t *ev, int32_t partition,
				 char *reason, size_t reason_len)
{
	return lh_state_apply_at(st, ev, partition, -1, reason, reason_len);
}

lh_apply_result_t lh_state_apply_at(lh_state_t *st, const lh_event_t *ev, int32_t partition,
				    int64_t offset, char *reason, size_t reason_len)
{
	lh_cplan_t *p;
	lh_apply_result_t r;

	if (reason && reason_len)
		reason[0] = 0;
	p = lh_state_plan(st, &ev->plan_id);
	if (p && offset >= 0) {
		if (offset <= p->applied_offset) {
			r = LH_APPLY_NOOP; /* already reflected (a snapshot covers it) */
			goto out;
		}
		p->applied_offset = offset;
	}
	if (ev->type == LH_EV_GOAL_SUBMITTED) {
		r = apply_goal(st, ev, partition);
		if (r == LH_APPLY_CHANGED && offset >= 0) {
			p = lh_state_plan(st, &ev->plan_id);
			p->applied_offset = p->first_offset = offset;
		}
		goto out;
	}
	if (!p) {
		r = LH_APPLY_NOOP; /* events of a plan we never saw submitted: nothing to fold */
		goto out;
	}
	if (ev->ts_us > p->last_ts_us)
		p->last_ts_us = ev->ts_us;
	if (plan_terminal(p)) {
		r = LH_APPLY_NOOP;
		goto out;
	}
	/* Events whose effect is not idempotent by state (a pause after a later resume would pause
	 * again) are applied once per id. */
	if (ev->type == LH_EV_COMMAND_ISSUED || ev->type == LH_EV_PLAN_PAUSED ||
	    ev->type == LH_EV_PLAN_RESUMED || ev->type == LH_EV_INPUT_PROVIDED ||
	    ev->type == LH_EV_APPROVAL_DECIDED) {
		char hex[LH_ID_HEX_LEN + 1];
		lh_id_hex(&ev->id, hex);
		if (p->once && json_object_get(p->once, hex)) {
			r = LH_APPLY_NOOP;
			goto out;
		}
		if (!p->once)
			p->once = json_object();
		json_object_set_new(p->once, hex, json_true());
	}
	switch (ev->type) {
	case LH_EV_PLAN_CREATED:
		r = apply_plan_created(st, p, ev, reason, reason_len);
		break;
	case LH_EV_PLAN_REVISED:
		r = apply_plan_revised(st, p, ev, reason, reason_len);
		break;
	case LH_EV_TASK_DISPATCHED:
	case LH_EV_ATTEMPT_STARTED:
	case LH_EV_ATTEMPT_HEARTBEAT:
	case LH_EV_ATTEMPT_SUCCEEDED:
	case LH_EV_ATTEMPT_FAILED:
	case LH_EV_TASK_DEAD:
	case LH_EV_TASK_ESCALATED:
	case LH_EV_TASK_CANCELLED:
	case LH_EV_TIMER_FIRED: {
		const lh_timer_fired_t *tb = ev->type == LH_EV_TIMER_FIRED ? ev->body : NULL;
		lh_ctask_t *t;
		if (tb && (!strcmp(tb->timer, "reminder") || !strcmp(tb->timer, "wait_escalation") ||
			   !strcmp(tb->timer, "wait_deadline"))) {
			r = apply_wait_timer(st, p, ev);
			break;
		}
		t = plan_task(p, ev->task_no);
		if (!t) {
			if (ev->type == LH_EV_TIMER_FIRED) {
				r = LH_APPLY_NOOP; /* plan-level timers: nothing folds them yet */
				break;
			}
			if (reason)
				snprintf(reason, reason_len, "%s for unknown task %lld",
					 lh_event_type_name(ev->type), (long long)ev->task_no);
			r = LH_APPLY_REJECTED;
			break;
		}
		r = apply_task_event(st, p, t, ev, reason, reason_len);
		break;
	}
	case LH_EV_COMMAND_ISSUED:
		r = apply_command(st, p, ev, reason, reason_len);
		break;
	case LH_EV_PLAN_PAUSED:
	case LH_EV_PLAN_RESUMED:
		r = apply_pause(st, p, ev);
		break;
	case LH_EV_BUDGET_WARNING:
	case LH_EV_BUDGET_EXCEEDED:
		r = apply_budget(st, p, ev);
		break;
	case LH_EV_APPROVAL_REQUESTED:
		r = apply_approval_requested(st, p, ev);
		break;
	case LH_EV_APPROVAL_DECIDED:
		r = apply_approval_decided(st, p, ev);
		break;
	case LH_EV_INPUT_REQUESTED:
	case LH_EV_INPUT_PROVIDED:
		r = apply_input(st, p, ev);
		break;
	case LH_EV_PLAN_COMPLETED:
	case LH_EV_PLAN_FAILED:
	case LH_EV_PLAN_CANCELLED:
		r = apply_terminal(st, p, ev);
		break;
	default:
		r = LH_APPLY_NOOP; /* decisions and other facts do not change plan state */
		break;
	}
out:
	if (r == LH_APPLY_CHANGED) {
		st->applied++;
		if ((p = lh_state_plan(st, &ev->plan_id)))
			p->snap_dirty = true;
	} else if (r == LH_APPLY_NOOP)
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
		lh_buf_printf(&b, "%u|%u|%.9f|%lld|%s|%d|%lld|%lld|%lld|%lld|%d%d%d%d|%s|",
			      p->warned, p->exceeded, p->budget.usd, (long long)p->budget.tokens,
			      p->wait_request ? p->wait_request : "", p->wait_kind,
			      (long long)p->repair_task, (long long)p->replan_task,
			      (long long)p->replans, (long long)p->join_task, p->pause_requested,
			      p->resume_requested, p->cancel_requested, p->fail_requested,
			      p->last_patch);
		hash_json(&b, p->early_answers);
		hash_json(&b, p->closed);
		hash_json(&b, p->once);
		hash_json(&b, p->decisions);
		lh_buf_printf(&b, "%lld|%u|", (long long)p->wait_since_us, p->wait_marks);
		hash_json(&b, p->plan_doc);
		for (int k = 0; k < p->ntasks; k++) {
			const lh_ctask_t *t = &p->tasks[k];
			lh_buf_printf(&b, "T%lld|%d|%d|%lld|%d|%d|%s|%s|%lld|%lld|%d|%d|",
				      (long long)t->task_no, t->status, t->kind, (long long)t->attempt,
				      t->failures, t->total_failures, t->tier ? t->tier : "",
				      t->last_error ? t->last_error : "", (long long)t->lease_due_us,
				      (long long)t->retry_due_us, t->retry_ready, t->cancel_requested);
			lh_buf_printf(&b, "%s|%lld|%u|", t->input_request ? t->input_request : "",
				      (long long)t->input_since_us, t->input_marks);
			hash_json(&b, t->conversation);
			hash_json(&b, t->output);
		}
	}
	lh_sha256_hex(b.data ? b.data : "", b.len, hex);
	if (getenv("LH_HASH_DEBUG"))
		fprintf(stderr, "hash %.12s of: %s\n", hex, b.data ? b.data : "");
	lh_buf_finish(&b);
	free(all);
}
