/* sim.h — an in-process coordinator over a simulated log, clock and worker.
 *
 * Events are encoded and decoded on their way into the log, as a consumer would see them; the
 * emitter applies the coordinator's own events at once; work orders are answered by a simulated
 * worker whose behaviour a test chooses per order (succeed, fail, return invalid output, never
 * start, start and go silent), with the scripted model's answers. The clock is virtual: when the
 * log is drained, it jumps to the next timer any plan asked for. Used by the unit tests of the
 * fold and by lh-bench fold. */
#ifndef LH_COORD_SIM_H
#define LH_COORD_SIM_H

#include "reconcile.h"
#include "state.h"

/* What the simulated worker does: answer, fail (retryable), fail as invalid output, never start,
 * start and go silent, or ask a question (input.requested, request id "q:TASK:ATTEMPT"). */
typedef enum {
	LH_SIM_OK,
	LH_SIM_FAIL,
	LH_SIM_INVALID,
	LH_SIM_LOST,
	LH_SIM_SILENT,
	LH_SIM_ASK
} lh_sim_do_t;

typedef struct lh_sim lh_sim_t;
typedef lh_sim_do_t (*lh_sim_behaviour_fn)(lh_sim_t *s, const lh_ctask_t *t,
					   const lh_task_order_t *o);

struct lh_sim {
	lh_state_t st;
	lh_event_t **log; /* decoded copies, owned */
	int nlog, caplog;
	int orders;
	int fail_task;		   /* an act task whose first attempt fails (0: none) */
	lh_sim_behaviour_fn behave; /* NULL: succeed (but fail_task) */
	int64_t now;		   /* virtual clock, us */
	double cost_per_call;
	int cmd_seq;
	lh_emitter_t em;
};

void lh_sim_init(lh_sim_t *s, const lh_state_opts_t *opts);
void lh_sim_finish(lh_sim_t *s);
/* Append goal.submitted (budget may be NULL); returns the new plan's id. */
lh_id_t lh_sim_submit(lh_sim_t *s, const char *goal, const lh_budget_t *budget);
/* Append an event from a person (command.issued, approval.decided …). */
void lh_sim_human(lh_sim_t *s, const lh_id_t *plan, lh_event_type_t type, void *body);
/* Fold the log, decide, answer orders, advance the clock to timers; until nothing is left or
 * the virtual time `until` (us; 0 = no limit) passes. */
void lh_sim_run_until(lh_sim_t *s, int64_t until);
int lh_sim_count(const lh_sim_t *s, lh_event_type_t type);
int lh_sim_count_decisions(const lh_sim_t *s, const char *kind);

#endif
