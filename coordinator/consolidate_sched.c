/* consolidate_sched.c — the idle-time consolidate schedule's pure parts (see consolidate_sched.h). */
#include "consolidate_sched.h"

#include <stdlib.h>
#include <string.h>

bool lh_consolidate_idle(const lh_cplan_t *p)
{
	switch (p->status) {
	case LH_PLAN_PLANNING:
	case LH_PLAN_RUNNING:
	case LH_PLAN_PAUSED:
	case LH_PLAN_WAITING:
		break;
	default:
		return false; /* finished: nothing left to consolidate for */
	}
	if (p->dirty || p->plan_doc)
		return false; /* a decision is pending */
	for (int i = 0; i < p->ntasks; i++)
		switch (p->tasks[i].status) {
		case LH_TASK_READY:
		case LH_TASK_DISPATCHED:
		case LH_TASK_RUNNING:
		case LH_TASK_FAILED: /* awaiting its retry */
			return false;
		default:
			break;
		}
	return true;
}

int64_t lh_consolidate_bucket(int64_t now_us, int64_t interval_s)
{
	if (interval_s <= 0 || now_us < 0)
		return 0;
	return now_us / (interval_s * 1000000);
}

bool lh_consolidate_due(const lh_cplan_t *p, int64_t now_us, int64_t interval_s)
{
	/* the cheap checks first: most ticks find the plan's order of this bucket sent */
	if (interval_s <= 0 || lh_consolidate_bucket(now_us, interval_s) <= p->consolidate_bucket)
		return false;
	if (p->consolidate_last_us && now_us - p->consolidate_last_us < interval_s * 1000000)
		return false;
	return lh_consolidate_idle(p);
}

lh_id_t lh_consolidate_id(const lh_id_t *plan_id, int64_t bucket)
{
	return lh_event_id_derivef(plan_id, "task.order", 0, "consolidate:b%lld", (long long)bucket);
}

void lh_consolidate_order(const lh_cplan_t *p, int64_t bucket, int64_t interval_s,
			  const char *tier, int64_t now_us, lh_arena_t *arena, lh_event_t *ret_ev)
{
	lh_task_order_t *o = lh_arena_alloc(arena, sizeof(*o));
	json_t *args = json_pack("{sIsI}", "bucket", (json_int_t)bucket, "interval_s",
				 (json_int_t)interval_s);
	if (!args)
		abort();
	lh_arena_on_free(arena, (void (*)(void *))json_decref, args);
	o->kind = "consolidate";
	o->tier = tier;
	o->goal = p->goal;
	o->instructions = "consolidate the tenant's memories while the plan is idle";
	o->args = args;
	o->dispatched_ts_us = now_us;
	memset(ret_ev, 0, sizeof(*ret_ev));
	ret_ev->v = LH_ENVELOPE_VERSION;
	ret_ev->type = LH_EV_TASK_ORDER;
	ret_ev->plan_id = p->plan_id;
	ret_ev->task_no = 0;
	ret_ev->attempt = 1;
	ret_ev->ts_us = now_us;
	ret_ev->tenant = p->tenant;
	ret_ev->actor.kind = "coordinator";
	ret_ev->body = o;
	ret_ev->id = lh_consolidate_id(&p->plan_id, bucket);
}

void lh_consolidate_sent(lh_cplan_t *p, int64_t bucket, int64_t now_us)
{
	p->consolidate_bucket = bucket;
	p->consolidate_last_us = now_us;
}

int lh_consolidate_walk(const lh_idmap_t *plans, size_t *it, int64_t now_us, int64_t interval_s,
			int max_walk, lh_cplan_t **ret_due, int max_due, bool *ret_done)
{
	int n = 0;
	*ret_done = false;
	for (int walked = 0; walked < max_walk && n < max_due; walked++) {
		lh_cplan_t *p = lh_idmap_next(plans, it);
		if (!p) {
			*it = 0;
			*ret_done = true;
			break;
		}
		if (lh_consolidate_due(p, now_us, interval_s))
			ret_due[n++] = p;
	}
	return n;
}
