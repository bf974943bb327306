/* followup.c — orders a succeeded act attempt leaves for other workers (followup.h). */
#include "followup.h"

#include <stdlib.h>
#include <string.h>

struct lh_followup {
	struct lh_followup *next;	/* the same attempt's next follow-up */
	struct lh_followup *next_chain; /* registered chains (heads only) */
	const char *kind;
	lh_id_t id, plan_id, causation;
	int64_t task_no, attempt;
	char *tenant, *tier, *topic, *goal, *instructions;
	json_t *inputs;
};

static lh_followup_t *chains; /* registered heads, newest first */

static char *dup0(const char *s)
{
	char *r = s ? strdup(s) : NULL;
	if (s && !r)
		abort();
	return r;
}

static void unregister(lh_followup_t *head)
{
	for (lh_followup_t **pp = &chains; *pp; pp = &(*pp)->next_chain)
		if (*pp == head) {
			*pp = head->next_chain;
			head->next_chain = NULL;
			return;
		}
}

lh_followup_t *lh_followup_add(lh_followup_t *chain, const lh_event_t *order, const char *kind,
			       lh_id_t id, const char *tier, const char *topic,
			       const char *instructions, json_t *inputs)
{
	const lh_task_order_t *o = order->body;
	lh_followup_t *f = calloc(1, sizeof(*f));
	if (!f || !inputs)
		abort();
	f->kind = kind;
	f->id = id;
	f->plan_id = order->plan_id;
	f->task_no = order->task_no;
	f->attempt = order->attempt;
	/* the source's attempt.succeeded (the worker's ev_init derives it this way) */
	f->causation = lh_event_id_derivef(&order->plan_id, "attempt.succeeded", 0, "t%lld:a%lld",
					   (long long)order->task_no, (long long)order->attempt);
	f->tenant = dup0(order->tenant);
	f->tier = dup0(tier);
	f->topic = dup0(topic);
	f->goal = dup0(o->goal);
	f->instructions = dup0(instructions ? instructions : "");
	f->inputs = inputs;
	if (chain) {
		lh_followup_t *last = chain;
		while (last->next)
			last = last->next;
		last->next = f;
		return chain;
	}
	f->next_chain = chains;
	chains = f;
	return f;
}

lh_followup_t *lh_followup_take(void *p)
{
	for (lh_followup_t *c = chains; c; c = c->next_chain)
		if ((void *)c == p) {
			unregister(c);
			return c;
		}
	return NULL;
}

lh_followup_t *lh_followup_next(const lh_followup_t *f) { return f->next; }
const char *lh_followup_kind(const lh_followup_t *f) { return f->kind; }
const char *lh_followup_topic(const lh_followup_t *f) { return f->topic; }

void lh_followup_event(const lh_followup_t *f, const char *worker_id, lh_event_t *ret,
		       lh_task_order_t *ret_body)
{
	memset(ret_body, 0, sizeof(*ret_body));
	ret_body->kind = f->kind;
	ret_body->tier = f->tier;
	ret_body->goal = f->goal;
	ret_body->instructions = f->instructions;
	ret_body->inputs = f->inputs;
	memset(ret, 0, sizeof(*ret));
	ret->v = LH_ENVELOPE_VERSION;
	ret->type = LH_EV_TASK_ORDER;
	ret->id = f->id;
	ret->plan_id = f->plan_id;
	ret->task_no = f->task_no;
	ret->attempt = f->attempt;
	ret->ts_us = lh_now_us();
	ret->tenant = f->tenant;
	ret->actor.kind = "worker";
	ret->actor.id = worker_id;
	ret->causation_id = f->causation;
	ret->body = ret_body;
}

void lh_followup_free(lh_followup_t *chain)
{
	while (chain) {
		lh_followup_t *f = chain;
		chain = f->next;
		free(f->tenant);
		free(f->tier);
		free(f->topic);
		free(f->goal);
		free(f->instructions);
		json_decref(f->inputs);
		free(f);
	}
}

size_t lh_followup_free_all(void)
{
	size_t n = 0;
	while (chains) {
		lh_followup_t *c = chains;
		chains = c->next_chain;
		for (lh_followup_t *f = c; f; f = f->next)
			n++;
		lh_followup_free(c);
	}
	return n;
}
