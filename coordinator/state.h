/* state.h — the coordinator's folded plan state and the pure, idempotent apply.
 *
 * Plan state is fold(apply, events). lh_state_apply() reads only the event and the state (never the
 * clock, never the network), so replaying the log gives the same state, and applying an event twice
 * — or an event the state already reflects — changes nothing: every transition is guarded by the
 * task's status and attempt number (the attempt is the fencing token). Illegal transitions are
 * rejected with a reason and change nothing. */
#ifndef LH_COORD_STATE_H
#define LH_COORD_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "idmap.h"

typedef enum lh_task_status {
	LH_TASK_PENDING,
	LH_TASK_READY,
	LH_TASK_DISPATCHED,
	LH_TASK_RUNNING,
	LH_TASK_SUCCEEDED,
	LH_TASK_FAILED,
	LH_TASK_WAITING_FOR_INPUT,
	LH_TASK_WAITING_FOR_APPROVAL,
	LH_TASK_DEAD,
	LH_TASK_CANCELLED,
	LH_TASK_SKIPPED,
	LH_TASK__COUNT
} lh_task_status_t;

typedef enum lh_plan_status {
	LH_PLAN_PLANNING,
	LH_PLAN_RUNNING,
	LH_PLAN_PAUSED,
	LH_PLAN_WAITING,
	LH_PLAN_COMPLETED,
	LH_PLAN_FAILED,
	LH_PLAN_CANCELLED,
	LH_PLAN__COUNT
} lh_plan_status_t;

typedef enum lh_task_kind {
	LH_KIND_PLAN,
	LH_KIND_ACT,
	LH_KIND_JOIN,
	LH_KIND_REPLAN,
	LH_KIND_SUMMARIZE,
	LH_KIND__COUNT
} lh_task_kind_t;

const char *lh_task_status_name(lh_task_status_t s);
const char *lh_plan_status_name(lh_plan_status_t s);
const char *lh_task_kind_name(lh_task_kind_t k);
int lh_task_kind_parse(const char *s); /* -1 when unknown */
/* Whether the task state machine allows from -> to. */
bool lh_task_transition_ok(lh_task_status_t from, lh_task_status_t to);

typedef struct lh_ctask {
	int64_t task_no;
	lh_task_status_t status;
	lh_task_kind_t kind;
	char *tier;
	char *tool;
	char *instructions;
	json_t *args;
	json_t *output_schema;
	int64_t *deps; /* refs ∪ after, sorted, unique */
	int ndeps;
	int64_t *refs; /* ${n} references: their outputs are the task's inputs */
	int nrefs;
	int64_t attempt; /* last dispatched attempt (fencing token); 0 before the first */
	int failures;
	char *last_error;
	json_t *output; /* when succeeded */
	/* Runtime only, not part of the folded state: whether the work order of `attempt` was sent
	 * by this process. Recomputed after recovery (a dispatched task's order is re-sent). */
	bool order_sent;
	bool await_ack; /* this process emitted task.dispatched; the order waits for its ack */
	int64_t done_ts_us; /* event time of the success (ready time of dependents) */
} lh_ctask_t;

typedef struct lh_cplan {
	lh_id_t plan_id;
	char *tenant;
	char *goal;
	char *planner_tier;
	lh_plan_status_t status;
	int64_t version;
	lh_ctask_t *tasks; /* indexed by task_no: 0 is the plan task */
	int ntasks;
	lh_usage_t usage;
	int64_t submitted_ts_us; /* from goal.submitted (for the duration figure) */
	int64_t last_ts_us;	 /* latest event time seen */
	int64_t created_ts_us;	 /* event time of plan.created */
	int32_t partition;	 /* lh.events partition the plan lives on */
	bool dirty;		 /* changed since the last reconcile */
	struct lh_cplan *next_dirty;
	json_t *plan_doc;	 /* planner output accepted, waiting for plan.created */
	char *fail_reason;	 /* why the planner/join output was rejected, etc. */
} lh_cplan_t;

typedef struct lh_state_opts {
	const char *default_tier;  /* planner and join tier when not given */
	const char **tiers;	   /* known tiers */
	int ntiers;
	int max_tasks;		   /* planner output limit */
	int max_attempts;	   /* per task */
	size_t max_instructions;   /* bytes */
} lh_state_opts_t;

typedef struct lh_state {
	lh_idmap_t plans; /* plan_id -> lh_cplan_t* */
	lh_cplan_t *dirty_head;
	lh_state_opts_t opts;
	uint64_t applied, ignored, rejected; /* counters */
} lh_state_t;

void lh_state_init(lh_state_t *st, const lh_state_opts_t *opts);
void lh_state_finish(lh_state_t *st);
lh_cplan_t *lh_state_plan(lh_state_t *st, const lh_id_t *plan_id);
/* Drop every plan of a partition (revoked). */
void lh_state_drop_partition(lh_state_t *st, int32_t partition);

typedef enum lh_apply_result {
	LH_APPLY_CHANGED, /* state changed */
	LH_APPLY_NOOP,	  /* already reflected (duplicate, stale attempt, …) */
	LH_APPLY_REJECTED /* illegal transition; reason filled */
} lh_apply_result_t;

/* Apply one event. partition is where it was read (or will be written). reason (may be NULL,
 * size 256) explains a rejection. Pure with respect to the outside world. */
lh_apply_result_t lh_state_apply(lh_state_t *st, const lh_event_t *ev, int32_t partition,
				 char *reason, size_t reason_len);

/* Take the dirty list (each plan's dirty flag is cleared). */
lh_cplan_t *lh_state_take_dirty(lh_state_t *st);
void lh_state_mark_dirty(lh_state_t *st, lh_cplan_t *plan);

/* A stable hash of the whole folded state (runtime-only fields excluded), for property tests. */
void lh_state_hash(const lh_state_t *st, char hex[65]);

/* Planner output -> validated task specs (act tasks 1..n plus the join task n+1), allocated in
 * arena. Errors name the task and the rule: "task 3: reference ${5} points forward". */
lh_err_t lh_plan_parse(const lh_state_opts_t *opts, const json_t *output, lh_arena_t *arena,
		       lh_task_spec_t **ret_specs, int *ret_n, lh_error_t *err);
/* Collect ${n} and ${n.field} references in instructions and (recursively) string args into a
 * sorted unique list (arena). Returns LH_ERR_INVALID on a malformed reference. */
lh_err_t lh_plan_refs(const char *instructions, const json_t *args, lh_arena_t *arena,
		      int64_t **ret_refs, int *ret_n, lh_error_t *err);

#endif
