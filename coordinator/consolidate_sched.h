/* consolidate_sched.h — the idle-time `consolidate` schedule (docs/memory.md, issue 7 capability 7).
 *
 * The coordinator sends a plan's tenant a `consolidate` work order (lh.tasks.<tier>, kind
 * consolidate, no model call: the worker merges near-duplicate memories and forgets expired
 * episodic ones) when the plan is idle, at most once per interval. This is a side emission, like
 * a worker's extract order: nothing goes to lh.events, the fold never sees it, and the plan's
 * state, DAG, outcome, snapshots and state hash are the same with the schedule on or off. The
 * only memory it keeps is two runtime fields of lh_cplan_t (consolidate_bucket,
 * consolidate_last_us), never folded, snapshotted or hashed.
 *
 * Idle, precisely: the plan is not finished (running, waiting, paused or planning) and none of
 * its tasks is ready, dispatched, running, or failed awaiting its retry (nothing is at a worker
 * or about to be), no accepted planner output waits for plan.created, and the plan has no
 * pending reconcile (dirty). A plan that waits for an approval or an answer, or is paused, is
 * idle.
 *
 * Ids: the order's id is derived from (plan, "consolidate", bucket) where bucket = wall-clock
 * seconds / interval. A restarted or duplicated coordinator in the same bucket emits the same id
 * and workers drop the duplicate. Pure functions here; main.c owns the timer and the producer. */
#ifndef LH_COORD_CONSOLIDATE_H
#define LH_COORD_CONSOLIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "state.h"

/* Whether plan is idle as defined above. */
bool lh_consolidate_idle(const lh_cplan_t *plan);

/* The interval bucket of wall-clock time now_us: now_us / (interval_s * 1e6); interval_s > 0. */
int64_t lh_consolidate_bucket(int64_t now_us, int64_t interval_s);

/* Whether plan's consolidate order is due at now_us: interval_s > 0, the plan is idle, this
 * process has not sent one in this bucket or a later one, and the last one it sent is at least
 * interval_s old. */
bool lh_consolidate_due(const lh_cplan_t *plan, int64_t now_us, int64_t interval_s);

/* The consolidate order of plan for bucket, to tier (borrowed; the event borrows plan's strings
 * and tier, the body is allocated in arena). Envelope: plan_id, tenant, task_no 0, attempt 1,
 * actor coordinator; body: kind "consolidate", args {"bucket", "interval_s"}. */
void lh_consolidate_order(const lh_cplan_t *plan, int64_t bucket, int64_t interval_s,
			  const char *tier, int64_t now_us, lh_arena_t *arena, lh_event_t *ret_ev);

/* The id lh_consolidate_order gives plan's order of bucket. */
lh_id_t lh_consolidate_id(const lh_id_t *plan_id, int64_t bucket);

/* One slice of the walk over plans (lh_state_t's map), resumable: from *it on, at most
 * max_walk plans are looked at; those due at now_us (lh_consolidate_due) go to ret_due, at most
 * max_due of them (the walk stops right after the last that fits, so none is lost). Returns how
 * many are due; *ret_done is true when the walk reached the end of the map (*it is then 0 again,
 * the next pass starts over). A map that changes between slices is fine: a plan the walk misses
 * is found by the next pass. */
int lh_consolidate_walk(const lh_idmap_t *plans, size_t *it, int64_t now_us, int64_t interval_s,
			int max_walk, lh_cplan_t **ret_due, int max_due, bool *ret_done);

/* Record that plan's order of bucket was handed to the producer at now_us. */
void lh_consolidate_sent(lh_cplan_t *plan, int64_t bucket, int64_t now_us);

#endif
