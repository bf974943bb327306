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

enum { LH_LEASE_NONE = 0, LH_LEASE_START = 1, LH_LEASE_HEARTBEAT = 2 };

/* Budget dimensions: bits of lh_cplan_t.warned / .exceeded. */
enum {
	LH_BUDGET_USD = 0,
	LH_BUDGET_TOKENS,
	LH_BUDGET_TASKS,
	LH_BUDGET_REPLANS,
	LH_BUDGET_DEADLINE,
	LH_BUDGET__COUNT
};
const char *lh_budget_dim_name(int dim);

#define LH_DECISIONS_MAX 5
#define LH_DECISION_BYTES 240

/* What an awaited approval is about. */
enum { LH_WAIT_NONE = 0, LH_WAIT_BUDGET, LH_WAIT_ESCALATION, LH_WAIT_NO_PROGRESS, LH_WAIT_TASK };
/* Timers of a wait that have fired. */
enum { LH_WAIT_REMINDED = 1, LH_WAIT_ESCALATED = 2, LH_WAIT_EXPIRED = 4 };

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
	int failures;	 /* failures on the current tier (escalation resets it) */
	int total_failures;
	int same_error;	 /* consecutive failures with the same message (no progress) */
	char *last_error;
	char *last_error_class; /* attempt.failed's error_class, "invalid_output" for rejects, … */
	json_t *output; /* when succeeded */
	int64_t version_added;
	/* Deadlines, from event timestamps (so replay gives the same values). */
	int64_t lease_due_us;	/* start or heartbeat lease of the current attempt; 0 = none */
	int lease_kind;		/* LH_LEASE_START or LH_LEASE_HEARTBEAT */
	int64_t retry_due_us;	/* backoff after a failure; 0 = none */
	bool retry_ready;	/* the backoff timer fired for this failure */
	bool cancel_requested;
	bool needs_approval;	/* an approval gate: a person approves before it first runs */
	bool approved;		/* the gate's approval (approval.requested kind "task") was given */
	int64_t heartbeat_ms;	/* from task.dispatched */
	/* Questions (ask_human): the open request and the turns so far, [{role, content}]. */
	char *input_request;
	json_t *conversation;
	int64_t input_since_us; /* when the question was asked */
	unsigned input_marks;	/* LH_WAIT_REMINDED | LH_WAIT_ESCALATED | LH_WAIT_EXPIRED */
	/* Runtime only, not part of the folded state: whether the work order of `attempt` was sent
	 * by this process. Recomputed after recovery (a dispatched task's order is re-sent). */
	bool order_sent;
	bool await_ack; /* this process emitted task.dispatched; the order waits for its ack */
	bool order_acked; /* the broker acknowledged the order (kept in snapshots: a recovered
			     coordinator does not send it again) */
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
	int64_t timer_due;	 /* runtime: when the daemon's timer heap wakes this plan; 0 = never */
	struct lh_cplan *next_dirty;
	json_t *plan_doc;	 /* planner output accepted, waiting for plan.created */
	char *fail_reason;	 /* why the plan failed */
	/* Budgets: limits in force (0 = unlimited), and the 80% / 100% marks already emitted. */
	lh_budget_t budget;
	unsigned warned, exceeded;
	int64_t deadline_us;	 /* submitted + budget.deadline_s; 0 = none */
	/* Steering. */
	lh_plan_status_t paused_from; /* status to return to on resume */
	char *pause_cause;
	bool pause_requested, resume_requested, cancel_requested, fail_requested;
	char *command_reason;
	/* An approval the plan waits for. */
	int wait_kind;
	char *wait_request;	 /* request id */
	int64_t wait_task;	 /* the escalated task, for LH_WAIT_ESCALATION */
	int64_t wait_since_us;	 /* when the approval was requested */
	unsigned wait_marks;	 /* which of its timers fired */
	/* Repair. */
	int64_t join_task;	 /* the join of the current version */
	int64_t repair_task;	 /* a dead task (or a join that asked to replan) awaiting repair */
	char *repair_reason;
	int64_t replan_task;	 /* the replan task in flight; 0 = none */
	int64_t replans;	 /* replan tasks created */
	int64_t succeeded_at_replan; /* tasks succeeded when the last replan was created */
	char last_patch[65];	 /* sha256 of the last replan patch (identical replans) */
	/* Key decisions, oldest first: a JSON array of at most LH_DECISIONS_MAX strings of at most
	 * LH_DECISION_BYTES bytes (replans and patches, approvals, answers, each with its reason),
	 * folded from the events; task.order carries them to the worker's core context layer. */
	json_t *decisions;
	int64_t max_task_no;
	json_t *early_answers; /* request_id -> input.provided body, for questions not yet seen */
	json_t *closed;	       /* request ids answered already: asking them again changes nothing */
	json_t *once;	       /* ids of applied commands, pauses, resumes and answers: their
				  duplicates (at-least-once delivery) change nothing */
	/* Position in the partition (lh.events offsets): the last event folded into this plan, and
	 * its goal.submitted. Events at or below applied_offset are already reflected. */
	int64_t applied_offset;
	int64_t first_offset;
	/* Runtime (not folded): whether the state changed since the last snapshot written, and
	 * the applied offset that snapshot had (0 = no snapshot). */
	bool snap_dirty;
	int64_t snap_covers;
	/* Runtime (not folded, snapshotted or hashed): the idle-time consolidate schedule
	 * (consolidate_sched.h): the bucket and time of the last consolidate order this process sent. */
	int64_t consolidate_bucket;
	int64_t consolidate_last_us;
} lh_cplan_t;

typedef struct lh_state_opts {
	const char *default_tier;  /* planner and join tier when not given */
	const char **tiers;	   /* known tiers, cheapest first: the escalation chain */
	int ntiers;
	int max_tasks;		   /* planner output limit */
	int max_attempts;	   /* per task and tier, unless the goal's budget says otherwise */
	size_t max_instructions;   /* bytes */
	int64_t backoff_base_ms;   /* retry backoff: min(base * 2^(n-1), cap), minus up to 25% */
	int64_t backoff_cap_ms;
	lh_budget_t default_budget; /* fills the goal's budget fields left at 0 */
	int no_progress_failures;  /* identical failures in a row before escalating */
	int no_progress_replans;   /* replans in a row without a newly succeeded task */
	/* Waits for people never hang silently: a reminder, an escalation, then the default
	 * action at the deadline (seconds after the request; 0 = never). */
	int64_t wait_reminder_s;
	int64_t wait_escalate_s;
	int64_t wait_deadline_s;
	bool wait_default_approve; /* at the deadline approvals are approved (else rejected) */
} lh_state_opts_t;

typedef struct lh_state {
	lh_idmap_t plans; /* plan_id -> lh_cplan_t* */
	/* Finished plans retired from memory (after their snapshot round wrote a "done" record):
	 * plan_id -> (partition + 1) << 8 | status. A late duplicate goal.submitted finds them here
	 * and starts nothing. */
	lh_idmap_t retired;
	lh_cplan_t *dirty_head;
	lh_state_opts_t opts;
	uint64_t applied, ignored, rejected; /* counters */
} lh_state_t;

void lh_state_init(lh_state_t *st, const lh_state_opts_t *opts);
void lh_state_finish(lh_state_t *st);
lh_cplan_t *lh_state_plan(lh_state_t *st, const lh_id_t *plan_id);
/* Free a plan that is not (or no longer) in a state's map. */
void lh_cplan_free(lh_cplan_t *plan);
/* Drop every plan of a partition (revoked), retired ones included. */
void lh_state_drop_partition(lh_state_t *st, int32_t partition);
/* Remember a finished plan by id and outcome only (the plan itself must not be in the map). */
void lh_state_retire(lh_state_t *st, const lh_id_t *plan_id, int32_t partition,
		     lh_plan_status_t status);
/* The outcome of a retired plan, or false when the id is not retired. */
bool lh_state_retired(const lh_state_t *st, const lh_id_t *plan_id, lh_plan_status_t *status);
/* Parse a plan status name ("completed", ...); false when unknown. */
bool lh_plan_status_parse(const char *name, lh_plan_status_t *out);

typedef enum lh_apply_result {
	LH_APPLY_CHANGED, /* state changed */
	LH_APPLY_NOOP,	  /* already reflected (duplicate, stale attempt, …) */
	LH_APPLY_REJECTED /* illegal transition; reason filled */
} lh_apply_result_t;

/* Apply one event. partition is where it was read (or will be written). reason (may be NULL,
 * size 256) explains a rejection. Pure with respect to the outside world. */
lh_apply_result_t lh_state_apply(lh_state_t *st, const lh_event_t *ev, int32_t partition,
				 char *reason, size_t reason_len);

/* The same, for an event read from the log at `offset` of its partition (-1: not from the log,
 * e.g. the coordinator's own event applied as it is emitted). An event at or below the plan's
 * applied_offset is already reflected and changes nothing (recovery from a snapshot re-reads a
 * little of the log before the snapshot's position). */
lh_apply_result_t lh_state_apply_at(lh_state_t *st, const lh_event_t *ev, int32_t partition,
				    int64_t offset, char *reason, size_t reason_len);

/* Snapshots (snapshot.c): a plan's whole folded state as JSON (new reference), and back. */
json_t *lh_snapshot_plan(const lh_cplan_t *plan);
/* Restore into st (replacing a plan of the same id). LH_ERR_DECODE with the reason when the
 * JSON is not a snapshot this version understands. */
lh_err_t lh_snapshot_restore(lh_state_t *st, const json_t *snap, int32_t partition,
			     lh_cplan_t **ret_plan, lh_error_t *err);

/* Take the dirty list (each plan's dirty flag is cleared). */
lh_cplan_t *lh_state_take_dirty(lh_state_t *st);
void lh_state_mark_dirty(lh_state_t *st, lh_cplan_t *plan);

/* A stable hash of the whole folded state (runtime-only fields excluded), for property tests. */
void lh_state_hash(const lh_state_t *st, char hex[65]);

/* Retry backoff after the n-th failure (n >= 1) of a task, deterministic per (plan, task, n). */
int64_t lh_state_backoff_us(const lh_state_opts_t *opts, const lh_id_t *plan_id, int64_t task_no,
			    int n);
/* Budget used in a dimension (USD, tokens, tasks, replans, seconds since submission at now_us). */
double lh_budget_used(const lh_cplan_t *p, int dim, int64_t now_us);
double lh_budget_limit(const lh_cplan_t *p, int dim);

/* Replan output -> validated patch: new task specs (numbered after max_task_no, plus a new join
 * numbered last) and the task numbers removed (the old join included). Arena memory. */
lh_err_t lh_plan_parse_patch(const lh_state_opts_t *opts, const lh_cplan_t *plan,
			     const json_t *output, lh_arena_t *arena, lh_task_spec_t **ret_specs,
			     int *ret_n, int64_t **ret_removed, int *ret_nremoved, lh_error_t *err);

/* Planner output -> validated task specs (act tasks 1..n plus the join task n+1), allocated in
 * arena. Errors name the task and the rule: "task 3: reference ${5} points forward". */
lh_err_t lh_plan_parse(const lh_state_opts_t *opts, const json_t *output, lh_arena_t *arena,
		       lh_task_spec_t **ret_specs, int *ret_n, lh_error_t *err);
/* Collect ${n} and ${n.field} references in instructions and (recursively) string args into a
 * sorted unique list (arena). Returns LH_ERR_INVALID on a malformed reference. */
lh_err_t lh_plan_refs(const char *instructions, const json_t *args, lh_arena_t *arena,
		      int64_t **ret_refs, int *ret_n, lh_error_t *err);

#endif
