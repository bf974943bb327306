/* reconcile.h — level-triggered decisions (DESIGN §2 rule 3).
 *
 * After the fold has caught up, lh_reconcile() looks at a plan's whole state and emits what is
 * missing: dispatch ready tasks, retry failed ones, turn accepted planner output into plan.created,
 * finish or fail the plan. Every emitted event has an id derived from its cause, so a coordinator
 * that crashes and decides again emits the same ids. Emitting applies the event to the state at
 * once (through lh_state_apply), so calling lh_reconcile twice emits nothing new. Work orders go out
 * only after their task.dispatched is acknowledged: the emitter's send_order is called by the
 * daemon on that ack, or by reconcile for a dispatched task recovered from the log. */
#ifndef LH_COORD_RECONCILE_H
#define LH_COORD_RECONCILE_H

#include "state.h"

typedef struct lh_emitter {
	/* Apply ev to the state and append it to the log. ev and its body are borrowed. */
	void (*emit)(void *opaque, lh_cplan_t *plan, lh_event_t *ev);
	/* Send the work order of task's current attempt (its task.dispatched is in the log). */
	void (*send_order)(void *opaque, lh_cplan_t *plan, lh_ctask_t *task);
	/* Publish a dead task's last work order to the dead-letter topic (may be NULL). */
	void (*dead_letter)(void *opaque, lh_cplan_t *plan, lh_ctask_t *task, const char *reason);
	void *opaque;
	const char *actor_id; /* this coordinator's id, e.g. "lh-coordinator@host:pid" */
	const char *topic_prefix;
	int64_t start_lease_ms;	    /* a dispatched attempt must start within this (0: no lease) */
	int64_t heartbeat_lease_ms; /* a running attempt must beat within this (0: no lease) */
} lh_emitter_t;

/* Decide for one plan at wall-clock time now_us (decisions may read the clock; the state never
 * does: what a timer decides enters the state as timer.fired). Returns the next time this plan
 * needs deciding although nothing happens (a lease or backoff falling due), or 0. */
int64_t lh_reconcile(lh_state_t *st, lh_cplan_t *plan, lh_emitter_t *em, int64_t now_us);

/* Build the work order for a task's current attempt (body allocated in arena). */
void lh_reconcile_order(lh_state_t *st, const lh_cplan_t *plan, const lh_ctask_t *task,
			lh_arena_t *arena, lh_event_t *ret_ev);

#endif
