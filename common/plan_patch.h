/* plan_patch.h — a person's modification of a running plan (add, remove, reorder, edit tasks),
 * checked against the plan as PostgreSQL shows it and turned into the plan.revised event the
 * coordinator folds (a "human patch": replan_task_no 0). Pure: no I/O, deterministic. Used by
 * lh-gateway (POST /v1/plans/{id}/modify) and lhctl plan modify.
 *
 * The patch (JSON object, strict: unknown keys are refused):
 *   base_version       required: the plan version the patch was written against
 *   tasks              tasks to add (task_no above every existing number) or to replace (a task
 *                      that has not started: pending or ready); each is a task_spec without
 *                      kind (always "act"): task_no, instructions, tier (required for a new
 *                      task, kept for a replaced one), tool, args, refs, after, needs_approval,
 *                      output_schema. Reordering is replacing a task with other refs/after.
 *   remove             act tasks to drop (not succeeded, cancelled or skipped); tasks that
 *                      needed them are skipped by the coordinator
 *   join_instructions  new instructions for the join (kept otherwise)
 *   reason             kept in the event
 * The join is rebuilt like the coordinator's repair does: the old one is removed and a new one
 * numbered after every task runs after all live tasks and reads the sinks' outputs.
 *
 * Limits: 200 tasks, 1,000 removals, 1,000 dependencies per task, task numbers up to 1,000,000.
 * Dependencies must name live tasks (not removed, skipped, cancelled or dead; not the join; not
 * task 0) and the graph must stay acyclic. */
#ifndef LH_PLAN_PATCH_H
#define LH_PLAN_PATCH_H

#include <jansson.h>

#include "arena.h"
#include "err.h"
#include "lh_types.h"

#define LH_PLAN_PATCH_MAX_TASKS 200
#define LH_PLAN_PATCH_MAX_REMOVE 1000
#define LH_PLAN_PATCH_MAX_DEPS 1000
#define LH_PLAN_PATCH_MAX_TASK_NO 1000000

/* current: the plan as api_plan_get returns it ({"plan": {version, status, ...}, "tasks":
 * [{task_no, kind, tier, tool, instructions, status, depends_on}, ...]}), borrowed. patch:
 * borrowed. On success *ret_rev and everything it points to live in arena (JSON values it holds
 * are referenced until the arena goes). Errors: LH_ERR_INVALID (a bad patch: 400), LH_ERR_CONFLICT
 * (the plan does not allow it now: 409) with *ret_conflict one of "version_conflict",
 * "plan_finished", "task_started", "task_finished"; err->msg says why in one line. */
lh_err_t lh_plan_patch(const json_t *current, const json_t *patch, lh_arena_t *arena,
		       lh_plan_revised_t **ret_rev, const char **ret_conflict, lh_error_t *err);

#endif
