/* followup.h — orders a succeeded act attempt leaves for other workers: the extract order
 * (extract.h) and the rolling-summary order (summarize.h). They go out only once the broker has
 * acknowledged the source's attempt.succeeded: the worker hands the chain of an attempt's
 * follow-ups to the producer as that event's opaque pointer, and the delivery report brings it
 * back (lh_followup_take tells it from the worker's other opaque pointers). A follow-up is a
 * task.order of its own kind on its tier's topic, with a stable id derived from the source
 * attempt (a re-sent one is dropped as a duplicate) and the source's attempt.succeeded as its
 * causation. It publishes no attempt events: the plan's DAG and outcome are untouched.
 * Loop thread only. */
#ifndef LH_WORKER_FOLLOWUP_H
#define LH_WORKER_FOLLOWUP_H

#include <jansson.h>
#include <stddef.h>

#include "event.h"
#include "ids.h"

typedef struct lh_followup lh_followup_t;

/* Add a follow-up of the source attempt `order` (borrowed) to chain (NULL starts one) and return
 * the chain's head, registered. kind is static ("extract", "summarize"); id its event id; tier,
 * topic and instructions are copied; inputs is stolen. Aborts on out-of-memory, like lh_buf. */
lh_followup_t *lh_followup_add(lh_followup_t *chain, const lh_event_t *order, const char *kind,
			       lh_id_t id, const char *tier, const char *topic,
			       const char *instructions, json_t *inputs);
/* The chain whose head is p when p is a registered head (then no longer registered: the caller
 * owns it), else NULL. */
lh_followup_t *lh_followup_take(void *p);
lh_followup_t *lh_followup_next(const lh_followup_t *f);
const char *lh_followup_kind(const lh_followup_t *f);
const char *lh_followup_topic(const lh_followup_t *f);
/* f as a task.order in *ret / *ret_body (their strings point into f: emit before freeing f). */
void lh_followup_event(const lh_followup_t *f, const char *worker_id, lh_event_t *ret,
		       lh_task_order_t *ret_body);
/* Free a whole chain (accepts NULL). */
void lh_followup_free(lh_followup_t *chain);
/* Free every chain still registered (at exit, after the producer's last flush: their
 * attempt.succeeded was never acknowledged); returns how many follow-ups. */
size_t lh_followup_free_all(void);

#endif
