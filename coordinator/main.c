/* lh-coordinator — folds lh.events into plan state, decides, dispatches.
 *
 * One libevent loop. The consumer (group "lh-coordinator") reads lh.events from the beginning of
 * each assigned partition (snapshots arrive with the coordinator issue), folds every event, and once
 * a partition has caught up to the high watermark it had at assignment, reconciles its plans. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "bus.h"
#include "config.h"
#include "consolidate_sched.h"
#include "kafka.h"
#include "log.h"
#include "reconcile.h"
#include "recovery.h"
#include "state.h"

#define MAX_PARTS 1024

typedef struct coord_cfg {
	lh_common_cfg_t common; /* first: the common table's offsets assume it */
	char *group;
	char *default_tier;
	int64_t max_attempts;
	int64_t max_tasks;
	int64_t max_instructions;
	int64_t stats_interval_s;
	int64_t start_lease_s;
	int64_t heartbeat_lease_s;
	int64_t backoff_base_ms;
	int64_t backoff_cap_ms;
	double budget_usd;
	int64_t budget_tokens;
	int64_t budget_tasks;
	int64_t budget_replans;
	int64_t budget_deadline_s;
	int64_t no_progress_failures;
	int64_t no_progress_replans;
	int64_t snapshot_every_events;
	int64_t snapshot_interval_s;
	int64_t snapshot_max_bytes;
	int64_t recovery_timeout_ms;
	char *instance_id;
	int64_t wait_reminder_s;
	int64_t wait_escalate_s;
	int64_t wait_deadline_s;
	char *wait_default;
	int64_t consolidate_interval_s;
	char *consolidate_tier;
} coord_cfg_t;

#define C(f) offsetof(coord_cfg_t, f)
static const lh_cfg_def_t coord_table[] = {
	{"coordinator.group", LH_CFG_STR, "lh-coordinator", 0, 0, NULL, "LH_COORDINATOR_GROUP",
	 "group", false, false, "consumer group shared by all coordinators", C(group)},
	{"coordinator.default_tier", LH_CFG_STR, "standard", 0, 0, NULL, "LH_DEFAULT_TIER",
	 "default-tier", false, false, "tier of plan and join tasks, and of tasks that name none",
	 C(default_tier)},
	{"coordinator.max_attempts", LH_CFG_INT, "3", 1, 100, NULL, "LH_MAX_ATTEMPTS", "max-attempts",
	 false, false, "attempts per task before the plan fails", C(max_attempts)},
	{"coordinator.max_tasks", LH_CFG_INT, "200", 1, 100000, NULL, "LH_MAX_TASKS", "max-tasks",
	 false, false, "most tasks a planner may return", C(max_tasks)},
	{"coordinator.max_instructions", LH_CFG_INT, "65536", 64, 1048576, NULL, NULL, NULL, false,
	 false, "longest task instructions, in bytes", C(max_instructions)},
	{"coordinator.stats_interval_s", LH_CFG_INT, "30", 0, 86400, NULL, "LH_STATS_INTERVAL",
	 "stats-interval", true, false, "seconds between stats log lines (0: never)",
	 C(stats_interval_s)},
	{"coordinator.start_lease_s", LH_CFG_INT, "300", 0, 604800, NULL, "LH_START_LEASE_S",
	 "start-lease", false, false,
	 "a dispatched attempt no worker started within this is failed and retried (0: never)",
	 C(start_lease_s)},
	{"coordinator.heartbeat_lease_s", LH_CFG_INT, "60", 0, 86400, NULL, "LH_HEARTBEAT_LEASE_S",
	 "heartbeat-lease", false, false,
	 "a running attempt without a heartbeat for this long is failed and retried (0: never); "
	 "workers beat every third of it",
	 C(heartbeat_lease_s)},
	{"coordinator.backoff_base_ms", LH_CFG_INT, "1000", 1, 3600000, NULL, "LH_BACKOFF_BASE_MS",
	 "backoff-base-ms", false, false, "first retry delay; doubles per failure, minus up to 25%",
	 C(backoff_base_ms)},
	{"coordinator.backoff_cap_ms", LH_CFG_INT, "60000", 1, 86400000, NULL, "LH_BACKOFF_CAP_MS",
	 "backoff-cap-ms", false, false, "longest retry delay", C(backoff_cap_ms)},
	{"budget.usd", LH_CFG_DOUBLE, "10", 0, 1000000, NULL, "LH_BUDGET_USD", "budget-usd", false,
	 false, "default cost limit of a plan in USD (0: none)", C(budget_usd)},
	{"budget.tokens", LH_CFG_INT, "0", 0, 1000000000000, NULL, "LH_BUDGET_TOKENS", "budget-tokens",
	 false, false, "default token limit of a plan (0: none)", C(budget_tokens)},
	{"budget.tasks", LH_CFG_INT, "0", 0, 1000000, NULL, "LH_BUDGET_TASKS", "budget-tasks", false,
	 false, "default limit on act tasks run per plan (0: none)", C(budget_tasks)},
	{"budget.replans", LH_CFG_INT, "2", 0, 1000, NULL, "LH_BUDGET_REPLANS", "budget-replans",
	 false, false, "replans before a person is asked", C(budget_replans)},
	{"budget.deadline_s", LH_CFG_INT, "0", 0, 31536000, NULL, "LH_BUDGET_DEADLINE_S",
	 "budget-deadline", false, false, "default wall-clock limit of a plan in seconds (0: none)",
	 C(budget_deadline_s)},
	{"coordinator.no_progress_failures", LH_CFG_INT, "3", 0, 100, NULL, NULL, NULL, false, false,
	 "identical failures in a row that end a tier early (0: off)", C(no_progress_failures)},
	{"coordinator.no_progress_replans", LH_CFG_INT, "2", 1, 100, NULL, NULL, NULL, false, false,
	 "replans without a newly succeeded task before a person is asked", C(no_progress_replans)},
	{"coordinator.snapshot_every_events", LH_CFG_INT, "2000", 1, 100000000, NULL,
	 "LH_SNAPSHOT_EVERY", "snapshot-every", false, false,
	 "write a partition's changed plans to lh.snapshots after this many events", C(snapshot_every_events)},
	{"coordinator.snapshot_interval_s", LH_CFG_INT, "10", 1, 86400, NULL, "LH_SNAPSHOT_INTERVAL_S",
	 "snapshot-interval", false, false,
	 "and at least this often while plans change (a quiet plan is snapshotted once)",
	 C(snapshot_interval_s)},
	{"coordinator.snapshot_max_bytes", LH_CFG_INT, "900000", 1024, 100000000, NULL, NULL, NULL,
	 false, false, "largest snapshot of one plan; a larger plan is recovered from its events",
	 C(snapshot_max_bytes)},
	{"coordinator.instance_id", LH_CFG_STR, "", 0, 0, NULL, "LH_INSTANCE_ID", "instance-id", false,
	 false,
	 "stable name of this coordinator in its group (Kafka static membership): a restarted "
	 "coordinator with the same name gets its partitions back at once instead of waiting for "
	 "the old session to expire; two running coordinators must not share it",
	 C(instance_id)},
	{"wait.reminder_s", LH_CFG_INT, "3600", 0, 31536000, NULL, "LH_WAIT_REMINDER_S",
	 "wait-reminder", false, false,
	 "seconds an approval or question may wait before a reminder (0: none)", C(wait_reminder_s)},
	{"wait.escalate_s", LH_CFG_INT, "86400", 0, 31536000, NULL, "LH_WAIT_ESCALATE_S",
	 "wait-escalate", false, false,
	 "seconds before an unanswered request escalates to the next responder (0: never)",
	 C(wait_escalate_s)},
	{"wait.deadline_s", LH_CFG_INT, "604800", 0, 31536000, NULL, "LH_WAIT_DEADLINE_S",
	 "wait-deadline", false, false,
	 "seconds before the default action answers an unanswered request (0: wait forever)",
	 C(wait_deadline_s)},
	{"wait.default", LH_CFG_ENUM, "reject", 0, 0, "reject|approve", "LH_WAIT_DEFAULT",
	 "wait-default", false, false,
	 "what the deadline does to an approval (a question gets an answer saying none came)",
	 C(wait_default)},
	{"coordinator.recovery_timeout_ms", LH_CFG_INT, "30000", 100, 3600000, NULL, NULL, NULL,
	 false, false, "longest read of lh.snapshots on assignment before falling back to the log",
	 C(recovery_timeout_ms)},
	{"memory.consolidate_interval_s", LH_CFG_INT, "0", 0, 31536000, NULL,
	 "LH_CONSOLIDATE_INTERVAL_S", "consolidate-interval", false, false,
	 "send an idle plan's tenant a consolidate order (merge near-duplicate memories, forget "
	 "expired episodic ones) at most once per this many seconds; idle: no task of the plan "
	 "ready, dispatched, running or awaiting a retry (0: never)",
	 C(consolidate_interval_s)},
	{"memory.consolidate_tier", LH_CFG_STR, "", 0, 0, NULL, NULL, NULL, false, false,
	 "the tier whose workers run consolidate orders (default: the first of tiers, the "
	 "cheapest)",
	 C(consolidate_tier)},
	LH_CFG_END,
};

static const lh_cfg_spec_t coord_spec = {
	.prog = "lh-coordinator",
	.usage = "[options]",
	.summary = "Folds the event log (lh.events) into plan state, decides what happens next and "
		   "dispatches ready tasks to lh.tasks.<tier>. Run any number: they split the "
		   "partitions of lh.events as one consumer group. Never calls an LLM.",
	.tables = {lh_config_common_table, coord_table, NULL},
};

typedef struct part {
	bool assigned;
	bool live;	     /* caught up: decisions allowed */
	int64_t target;	     /* high watermark at assignment */
	int64_t next_offset; /* next offset to fold */
	int64_t since_snap;  /* events folded since the last snapshot round */
} part_t;

/* The daemon's one context. */
static struct coord {
	coord_cfg_t cfg;
	struct event_base *base;
	lh_kafka_t *consumer, *producer;
	lh_state_t st;
	lh_emitter_t em;
	char events_topic[LH_TOPIC_MAX], dlq_topic[LH_TOPIC_MAX], snapshots_topic[LH_TOPIC_MAX];
	lh_idmap_t echo; /* ids of events this process emitted and applied, not yet read back */
	char actor_id[128];
	const char *tiers[LH_MAX_TIERS];
	char tiers_buf[1024];
	int ntiers;
	part_t parts[MAX_PARTS];
	lh_buf_t scratch;
	struct event *ev_reconcile, *ev_retry, *ev_stats, *ev_sigint, *ev_sigterm, *ev_timer,
		*ev_snapshot, *ev_snaptimer, *ev_consolidate, *ev_consolidate_more;
	uint64_t snapshots, rounds;
	struct heap_entry {
		int64_t due;
		lh_id_t plan_id;
	} *heap; /* min-heap by due: plans with a lease, backoff or deadline ahead */
	size_t nheap, capheap;
	int64_t timer_armed; /* due time ev_timer is set for; 0 = not set */
	uint64_t emitted, orders, dead_letters, produce_errors, consolidations;
	const char *consolidate_tier; /* of tiers[] */
	size_t consolidate_it;	      /* where the schedule's walk over the plans goes on */
	char consolidate_topic[LH_TOPIC_MAX];
	lh_blob_store_t *blobs; /* reads outputs stored as blobs (output_ref) */
	int exit_code;
} co;

typedef struct pending_ack {
	lh_id_t plan_id;
	int64_t task_no, attempt;
	bool order; /* the work order (else its task.dispatched) */
} pending_ack_t;

static void schedule_reconcile(void) { event_active(co.ev_reconcile, EV_TIMEOUT, 0); }

static void heap_swap(size_t a, size_t b)
{
	struct heap_entry t = co.heap[a];
	co.heap[a] = co.heap[b];
	co.heap[b] = t;
}

static void arm_timer(void)
{
	int64_t now = lh_now_us(), d;
	struct timeval tv;
	if (!co.nheap) {
		if (co.timer_armed)
			evtimer_del(co.ev_timer);
		co.timer_armed = 0;
		return;
	}
	if (co.timer_armed == co.heap[0].due)
		return;
	d = co.heap[0].due - now;
	if (d < 0)
		d = 0;
	tv.tv_sec = d / 1000000;
	tv.tv_usec = d % 1000000;
	evtimer_add(co.ev_timer, &tv);
	co.timer_armed = co.heap[0].due;
}

static void heap_push(lh_cplan_t *p, int64_t due)
{
	size_t i;
	if (!due || (p->timer_due && p->timer_due <= due))
		return; /* an earlier wake-up is already scheduled */
	p->timer_due = due;
	if (co.nheap == co.capheap) {
		co.capheap = co.capheap ? co.capheap * 2 : 256;
		co.heap = realloc(co.heap, co.capheap * sizeof(*co.heap));
		if (!co.heap)
			abort();
	}
	i = co.nheap++;
	co.heap[i] = (struct heap_entry){due, p->plan_id};
	while (i > 0 && co.heap[(i - 1) / 2].due > co.heap[i].due) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	arm_timer();
}

static struct heap_entry heap_pop(void)
{
	struct heap_entry top = co.heap[0];
	size_t i = 0;
	co.heap[0] = co.heap[--co.nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < co.nheap && co.heap[l].due < co.heap[m].due)
			m = l;
		if (r < co.nheap && co.heap[r].due < co.heap[m].due)
			m = r;
		if (m == i)
			break;
		heap_swap(i, m);
		i = m;
	}
	return top;
}

static void decide(lh_cplan_t *p)
{
	heap_push(p, lh_reconcile(&co.st, p, &co.em, lh_now_us()));
}

/* Wake plans whose lease, backoff or deadline is due. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = lh_now_us();
	co.timer_armed = 0;
	while (co.nheap && co.heap[0].due <= now) {
		struct heap_entry e = heap_pop();
		lh_cplan_t *p = lh_state_plan(&co.st, &e.plan_id);
		if (!p || p->timer_due != e.due)
			continue; /* stale: the plan was dropped or rescheduled */
		p->timer_due = 0;
		if (p->partition >= 0 && p->partition < MAX_PARTS && co.parts[p->partition].live)
			decide(p);
	}
	arm_timer();
}

static void emit_cb(void *opaque, lh_cplan_t *p, lh_event_t *ev)
{
	lh_error_t err = {0};
	pending_ack_t *ack = NULL;
	char reason[256];
	if (ev->type == LH_EV_TASK_DISPATCHED) {
		ack = malloc(sizeof(*ack));
		if (!ack)
			abort();
		*ack = (pending_ack_t){.plan_id = p->plan_id, .task_no = ev->task_no,
				       .attempt = ev->attempt, .order = false};
	}
	/* Produce first: the event may borrow from the state that applying it changes. */
	if (lh_bus_emit(co.producer, co.events_topic, ev, false, &co.scratch, ack, &err)) {
		free(ack);
		co.produce_errors++;
		lh_log_warn("coordinator.produce_failed", err.msg, "type", lh_event_type_name(ev->type));
		/* Not applied: the plan stays as it was and is reconciled again shortly. */
		lh_state_mark_dirty(&co.st, p);
		if (!evtimer_pending(co.ev_retry, NULL)) {
			struct timeval tv = {0, 100000};
			evtimer_add(co.ev_retry, &tv);
		}
		return;
	}
	co.emitted++;
	lh_idmap_put(&co.echo, &ev->id, (void *)1);
	if (lh_state_apply(&co.st, ev, p->partition, reason, sizeof(reason)) == LH_APPLY_REJECTED)
		lh_log_error("coordinator.bug", "own event rejected by apply", "type",
			     lh_event_type_name(ev->type), "reason", reason);
}

static void send_order_cb(void *opaque, lh_cplan_t *p, lh_ctask_t *t)
{
	lh_arena_t *arena = lh_arena_new(0);
	lh_error_t err = {0};
	lh_event_t ev;
	char topic[LH_TOPIC_MAX];
	pending_ack_t *ack = malloc(sizeof(*ack));
	if (!ack)
		abort();
	*ack = (pending_ack_t){.plan_id = p->plan_id, .task_no = t->task_no, .attempt = t->attempt,
			       .order = true};
	lh_reconcile_order(&co.st, p, t, arena, &ev);
	if (lh_topic_tasks(co.cfg.common.topic_prefix, t->tier, topic, &err) ||
	    lh_bus_emit(co.producer, topic, &ev, true, &co.scratch, ack, &err)) {
		free(ack);
		co.produce_errors++;
		lh_log_warn("coordinator.order_failed", err.msg, "tier", t->tier);
		lh_state_mark_dirty(&co.st, p); /* reconcile re-sends (order_sent still false) */
		if (!evtimer_pending(co.ev_retry, NULL)) {
			struct timeval tv = {0, 100000};
			evtimer_add(co.ev_retry, &tv);
		}
	} else {
		t->order_sent = true;
		co.orders++;
	}
	lh_arena_free(arena);
}

static void dead_letter_cb(void *opaque, lh_cplan_t *p, lh_ctask_t *t, const char *reason)
{
	lh_arena_t *arena = lh_arena_new(0);
	lh_error_t err = {0};
	lh_event_t ev;
	lh_reconcile_order(&co.st, p, t, arena, &ev);
	if (lh_bus_emit(co.producer, co.dlq_topic, &ev, true, &co.scratch, NULL, &err))
		lh_log_warn("coordinator.dlq_failed", err.msg);
	lh_arena_free(arena);
}

static void on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
			int32_t partition, int64_t offset)
{
	pending_ack_t *ack = msg_opaque;
	lh_cplan_t *p;
	if (rc) {
		/* With message.timeout.ms=0 only a fatal producer error gets here. The state already
		 * holds the event; the only safe way on is to rebuild it from the log. */
		lh_log_error("coordinator.delivery_failed",
			     err ? err->msg : "delivery failed", "action", "exit; restart recovers from the log");
		co.exit_code = 2;
		free(ack);
		event_base_loopbreak(co.base);
		return;
	}
	if (!ack)
		return;
	p = lh_state_plan(&co.st, &ack->plan_id);
	if (p && ack->task_no >= 0 && ack->task_no < p->ntasks) {
		lh_ctask_t *t = &p->tasks[ack->task_no];
		if (t->attempt == ack->attempt && ack->order) {
			t->order_acked = true;
			p->snap_dirty = true;
		} else if (t->attempt == ack->attempt) {
			t->await_ack = false;
			if (t->status == LH_TASK_DISPATCHED && !t->order_sent)
				send_order_cb(NULL, p, t); /* write ahead: the decision is in the log */
		}
	}
	free(ack);
}

static void go_live(int32_t partition)
{
	size_t it = 0;
	lh_cplan_t *p;
	char ps[24];
	co.parts[partition].live = true;
	while ((p = lh_idmap_next(&co.st.plans, &it)))
		if (p->partition == partition)
			lh_state_mark_dirty(&co.st, p);
	lh_log_info("coordinator.partition_live", "caught up; deciding", "partition",
		    lh_log_i64(ps, partition));
	schedule_reconcile();
}

static void on_rebalance(void *opaque, bool assigned, lh_kafka_part_t *parts, int n)
{
	lh_recovery_stats_t *rs = NULL;
	int32_t *pns = NULL;
	if (assigned && n > 0) {
		/* restore every assigned partition from lh.snapshots with one reader; fold the log
		 * from where the snapshots leave off */
		lh_error_t rerr = {0};
		rs = calloc((size_t)n, sizeof(*rs));
		pns = calloc((size_t)n, sizeof(*pns));
		if (!rs || !pns)
			abort();
		for (int i = 0; i < n; i++)
			pns[i] = parts[i].partition;
		if (lh_recovery_load(&co.st, co.cfg.common.brokers, co.snapshots_topic, pns, n,
				     (int)co.cfg.recovery_timeout_ms, rs, &rerr)) {
			lh_log_warn("coordinator.recovery", rerr.msg, "action",
				    "folding the partitions from the beginning");
			for (int i = 0; i < n; i++) {
				lh_state_drop_partition(&co.st, pns[i]);
				rs[i].seek_offset = LH_KAFKA_OFFSET_BEGINNING;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		int32_t pn = parts[i].partition;
		char ps[24], hs[24];
		if (pn < 0 || pn >= MAX_PARTS) {
			lh_log_error("coordinator.partition_range", "partition number out of range",
				     "partition", lh_log_i64(ps, pn));
			continue;
		}
		if (assigned) {
			lh_error_t err = {0};
			int64_t hi = 0;
			part_t *pt = &co.parts[pn];
			char a[24], b[24], c[24], d[24];
			parts[i].offset = rs[i].seek_offset;
			if (lh_kafka_watermarks(co.producer, co.events_topic, pn, 10000, NULL, &hi,
						&err)) {
				lh_log_warn("coordinator.watermark", err.msg, "partition",
					    lh_log_i64(ps, pn));
				hi = INT64_MAX; /* stay not-live until we know: on_retry asks again */
				if (!evtimer_pending(co.ev_retry, NULL)) {
					struct timeval tv = {0, 200000};
					evtimer_add(co.ev_retry, &tv);
				}
			}
			*pt = (part_t){.assigned = true, .target = hi,
				       .next_offset = rs[i].seek_offset > 0 ? rs[i].seek_offset : 0};
			lh_log_info("coordinator.assigned", "partition assigned; folding the log",
				    "partition", lh_log_i64(ps, pn), "high_watermark",
				    lh_log_i64(hs, hi == INT64_MAX ? -1 : hi), "restored_plans",
				    lh_log_i64(a, rs[i].plans_restored), "retired_plans",
				    lh_log_i64(d, rs[i].plans_retired), "from_offset",
				    lh_log_i64(b, rs[i].seek_offset), "recovery_ms",
				    lh_log_i64(c, rs[i].elapsed_us / 1000));
			if (hi == 0 || (hi != INT64_MAX && pt->next_offset >= hi))
				go_live(pn);
		} else {
			lh_error_t serr = {0};
			/* leave a fresh snapshot for the next owner */
			if (co.parts[pn].live &&
			    lh_recovery_round(&co.st, co.producer, co.snapshots_topic, pn,
					      co.parts[pn].next_offset,
					      (size_t)co.cfg.snapshot_max_bytes, &serr) < 0)
				lh_log_warn("coordinator.snapshot_failed", serr.msg);
			lh_state_drop_partition(&co.st, pn);
			co.parts[pn] = (part_t){0};
			lh_log_info("coordinator.revoked", "partition revoked; its plans dropped",
				    "partition", lh_log_i64(ps, pn));
		}
	}
	free(rs);
	free(pns);
}

static void json_release(void *p) { json_decref(p); }

/* An attempt.succeeded whose output is a blob (output_ref, output null): put the blob's value in
 * the event before it is folded, so the fold sees what an inline output would have given. The
 * blob was written before the event (common/blob.h), so this is deterministic. PostgreSQL away:
 * retried for up to a minute (blocking: outputs this large are rare); a blob that is not there
 * leaves the output null, and the fold rejects it like any missing output. */
static void resolve_output_ref(lh_event_t *ev)
{
	lh_attempt_succeeded_t *s = ev->body;
	int64_t deadline = lh_mono_us() + 60 * 1000000LL, backoff_ms = 100;
	if (ev->type != LH_EV_ATTEMPT_SUCCEEDED || !s || !s->output_ref ||
	    (s->output && !json_is_null(s->output)))
		return;
	if (!co.blobs)
		co.blobs = lh_blob_store_new(co.cfg.common.pg_url, 0);
	for (;;) {
		json_t *v = NULL;
		lh_error_t err = {0};
		struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
		if (lh_blob_store_get_json(co.blobs, s->output_ref, &v, &err) == LH_OK) {
			lh_arena_on_free(ev->arena, json_release, v);
			s->output = v;
			return;
		}
		if (!err.retriable || lh_mono_us() > deadline) {
			lh_log_error("coordinator.blob_unreadable", err.msg, "ref", s->output_ref,
				     "action", "output treated as missing");
			return;
		}
		lh_log_warn("coordinator.blob_unreadable", err.msg, "action", "retrying");
		nanosleep(&ts, NULL);
		backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
	}
}

static void on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	char reason[256];
	part_t *pt = msg->partition >= 0 && msg->partition < MAX_PARTS ? &co.parts[msg->partition]
								       : NULL;
	lh_apply_result_t r;

	if (!pt)
		return;
	pt->next_offset = msg->offset + 1;
	if (lh_event_decode(msg->payload, msg->len, &ev, &err)) {
		lh_error_t derr = {0};
		co.dead_letters++;
		lh_log_warn("coordinator.undecodable", err.msg, "action", "sent to dead-letter topic");
		if (lh_bus_dead_letter(co.producer, co.dlq_topic, msg, co.cfg.group, err.msg, &derr))
			lh_log_error("coordinator.dlq_failed", derr.msg);
		goto out_check_live;
	}
	pt->since_snap++;
	resolve_output_ref(ev);
	if (lh_idmap_del(&co.echo, &ev->id)) {
		/* our own event, applied when emitted: only the plan's position moves */
		lh_cplan_t *p = lh_state_plan(&co.st, &ev->plan_id);
		if (p && msg->offset > p->applied_offset)
			p->applied_offset = msg->offset; /* the marker records it; the state is as it was */
		lh_event_free(ev);
		goto out_check_live;
	}
	r = lh_state_apply_at(&co.st, ev, msg->partition, msg->offset, reason, sizeof(reason));
	if (r == LH_APPLY_REJECTED)
		lh_log_warn("coordinator.rejected", reason, "type", lh_event_type_name(ev->type));
	if (r == LH_APPLY_CHANGED && pt->live)
		schedule_reconcile();
	lh_event_free(ev);
out_check_live:
	if (!pt->live && pt->next_offset >= pt->target)
		go_live(msg->partition);
	if (pt->live && pt->since_snap >= co.cfg.snapshot_every_events &&
	    !evtimer_pending(co.ev_snapshot, NULL) )
		event_active(co.ev_snapshot, EV_TIMEOUT, 0);
}

/* Snapshot rounds: partitions that folded enough events, or changed since the last round. */
static void on_snapshot(evutil_socket_t fd, short what, void *arg)
{
	bool periodic = (what & EV_TIMEOUT) && fd == -1 && arg == (void *)1;
	for (int i = 0; i < MAX_PARTS; i++) {
		part_t *pt = &co.parts[i];
		lh_error_t err = {0};
		int n;
		if (!pt->live || (!pt->since_snap && !periodic))
			continue;
		if (!pt->since_snap && periodic) {
			/* nothing folded since the last round: only if a plan is still unsaved */
			size_t it = 0;
			lh_cplan_t *p;
			bool any = false;
			while (!any && (p = lh_idmap_next(&co.st.plans, &it)))
				any = p->partition == i && p->snap_dirty;
			if (!any)
				continue;
		}
		if (!periodic && pt->since_snap < co.cfg.snapshot_every_events)
			continue;
		n = lh_recovery_round(&co.st, co.producer, co.snapshots_topic, i, pt->next_offset,
				      (size_t)co.cfg.snapshot_max_bytes, &err);
		if (n < 0) {
			lh_log_warn("coordinator.snapshot_failed", err.msg);
			continue;
		}
		pt->since_snap = 0;
		co.snapshots += (uint64_t)n;
		co.rounds++;
	}
}

static void on_snapshot_timer(evutil_socket_t fd, short what, void *arg)
{
	on_snapshot(-1, EV_TIMEOUT, (void *)1);
}

static void on_reconcile(evutil_socket_t fd, short what, void *arg)
{
	/* Deciding may change a plan again (its own events apply at once): decide until nothing
	 * is left, within a bound; what remains is picked up on the next loop turn. */
	for (int round = 0; round < 16 && co.st.dirty_head; round++) {
		lh_cplan_t *p = lh_state_take_dirty(&co.st), *next;
		for (; p; p = next) {
			next = p->next_dirty;
			if (p->partition >= 0 && p->partition < MAX_PARTS && co.parts[p->partition].live)
				decide(p);
		}
	}
	if (co.st.dirty_head && !evtimer_pending(co.ev_retry, NULL)) {
		struct timeval tv = {0, 1000};
		evtimer_add(co.ev_retry, &tv);
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	/* Watermarks we could not read at assignment. */
	for (int i = 0; i < MAX_PARTS; i++)
		if (co.parts[i].assigned && co.parts[i].target == INT64_MAX) {
			int64_t hi;
			if (lh_kafka_watermarks(co.producer, co.events_topic, i, 5000, NULL, &hi,
						NULL) == LH_OK) {
				co.parts[i].target = hi;
				if (co.parts[i].next_offset >= hi)
					go_live(i);
			}
		}
	on_reconcile(-1, 0, NULL);
	for (int i = 0; i < MAX_PARTS && !evtimer_pending(co.ev_retry, NULL); i++)
		if (co.parts[i].assigned && co.parts[i].target == INT64_MAX) {
			struct timeval tv = {0, 200000};
			evtimer_add(co.ev_retry, &tv);
		}
	if (co.st.dirty_head && !evtimer_pending(co.ev_retry, NULL)) {
		struct timeval tv = {0, 100000};
		evtimer_add(co.ev_retry, &tv);
	}
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	char a[24], b[24], c[24], d[24], e[24], f[24], g[24], h[24], k[24];
	lh_log_info("coordinator.stats", "counters", "plans", lh_log_i64(a, (long long)co.st.plans.n),
		    "snapshots", lh_log_i64(g, (long long)co.snapshots), "rounds",
		    lh_log_i64(h, (long long)co.rounds),
		    "applied", lh_log_i64(b, (long long)co.st.applied), "emitted",
		    lh_log_i64(c, (long long)co.emitted), "orders", lh_log_i64(d, (long long)co.orders),
		    "dead_letters", lh_log_i64(e, (long long)co.dead_letters), "produce_errors",
		    lh_log_i64(f, (long long)co.produce_errors), "consolidations",
		    lh_log_i64(k, (long long)co.consolidations));
}

/* Most consolidate orders one slice sends, and the longest a slice holds the loop: a walk over
 * 100,000 plans takes 45-300 ms on the shared 2-core machine (lh-bench consolidate), so it goes
 * in slices of at most ~5 ms, the next one 10 ms later, until the pass is complete. */
#define CONSOLIDATE_PER_SLICE 1000
#define CONSOLIDATE_SLICE_US 5000

/* The idle-time consolidate schedule (consolidate_sched.h): a side emission to the consolidate tier's
 * topic, never an event of lh.events, so the fold and the plans' state do not change. */
static void on_consolidate(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = lh_now_us(), interval = co.cfg.consolidate_interval_s;
	int64_t until = lh_mono_us() + CONSOLIDATE_SLICE_US, bucket = lh_consolidate_bucket(now, interval);
	int sent = 0;
	bool done = false;
	if (arg == NULL && evtimer_pending(co.ev_consolidate_more, NULL))
		return; /* the periodic tick while a pass is still going on */
	while (!done && sent < CONSOLIDATE_PER_SLICE && lh_mono_us() <= until) {
		lh_cplan_t *due[64];
		int n = lh_consolidate_walk(&co.st.plans, &co.consolidate_it, now, interval, 256, due,
					    64, &done);
		for (int i = 0; i < n; i++) {
			lh_cplan_t *p = due[i];
			lh_arena_t *arena;
			lh_error_t err = {0};
			lh_event_t ev;
			char plan[LH_UUID_STR_LEN + 1], b[24];
			if (p->partition < 0 || p->partition >= MAX_PARTS ||
			    !co.parts[p->partition].live)
				continue; /* not deciding for it yet: the next pass */
			arena = lh_arena_new(0);
			lh_consolidate_order(p, bucket, interval, co.consolidate_tier, now, arena, &ev);
			lh_uuid_fmt(&p->plan_id, plan);
			if (lh_bus_emit(co.producer, co.consolidate_topic, &ev, true, &co.scratch, NULL,
					&err)) {
				co.produce_errors++;
				lh_log_warn("coordinator.consolidate_failed", err.msg, "plan", plan);
			} else {
				lh_consolidate_sent(p, bucket, now);
				co.consolidations++;
				sent++;
				lh_log_info("coordinator.consolidate", "plan idle: consolidate order sent",
					    "plan", plan, "tenant", p->tenant ? p->tenant : "default",
					    "bucket", lh_log_i64(b, bucket), "tier", co.consolidate_tier);
			}
			lh_arena_free(arena);
		}
	}
	if (!done) {
		struct timeval tv = {0, 10000};
		evtimer_add(co.ev_consolidate_more, &tv);
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	lh_log_info("coordinator.stopping", sig == SIGINT ? "interrupted" : "terminated");
	event_base_loopbreak(co.base);
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	lh_state_opts_t so;
	const char *topics[2];
	char host[64] = "?";
	lh_kafka_opts_t ko;
	int rc;

	lh_log_init("lh-coordinator", LH_LOG_INFO, NULL);
	rc = lh_config_load(&coord_spec, &co.cfg, argc, argv, NULL, NULL, &err);
	if (rc == LH_ERR_NOT_FOUND)
		return 0; /* --help */
	if (rc || lh_config_apply_logging(&co.cfg.common, &err)) {
		fprintf(stderr, "lh-coordinator: %s\n", err.msg);
		return 2;
	}
	co.ntiers = lh_config_split(co.cfg.common.tiers, co.tiers_buf, sizeof(co.tiers_buf), co.tiers,
				    LH_MAX_TIERS);
	if (co.ntiers <= 0) {
		fprintf(stderr, "lh-coordinator: tiers: give 1 to %d names separated by commas\n",
			LH_MAX_TIERS);
		return 2;
	}
	co.consolidate_tier = co.tiers[0];
	if (*co.cfg.consolidate_tier) {
		co.consolidate_tier = NULL;
		for (int i = 0; i < co.ntiers; i++)
			if (!strcmp(co.tiers[i], co.cfg.consolidate_tier))
				co.consolidate_tier = co.tiers[i];
		if (!co.consolidate_tier) {
			fprintf(stderr, "lh-coordinator: memory.consolidate_tier: \"%s\" is not one of "
				"tiers (%s)\n", co.cfg.consolidate_tier, co.cfg.common.tiers);
			return 2;
		}
	}
	if (lh_topic_tasks(co.cfg.common.topic_prefix, co.consolidate_tier, co.consolidate_topic,
			   &err) ||
	    lh_topic(co.cfg.common.topic_prefix, "events", co.events_topic, &err) ||
	    lh_topic(co.cfg.common.topic_prefix, "dlq", co.dlq_topic, &err) ||
	    lh_topic(co.cfg.common.topic_prefix, "snapshots", co.snapshots_topic, &err)) {
		fprintf(stderr, "lh-coordinator: %s\n", err.msg);
		return 2;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(co.actor_id, sizeof(co.actor_id), "lh-coordinator@%s:%d", host, (int)getpid());
	so = (lh_state_opts_t){.default_tier = co.cfg.default_tier, .tiers = co.tiers,
			       .ntiers = co.ntiers, .max_tasks = (int)co.cfg.max_tasks,
			       .max_attempts = (int)co.cfg.max_attempts,
			       .max_instructions = (size_t)co.cfg.max_instructions,
			       .backoff_base_ms = co.cfg.backoff_base_ms,
			       .backoff_cap_ms = co.cfg.backoff_cap_ms,
			       .no_progress_failures = (int)co.cfg.no_progress_failures,
			       .no_progress_replans = (int)co.cfg.no_progress_replans,
			       .wait_reminder_s = co.cfg.wait_reminder_s,
			       .wait_escalate_s = co.cfg.wait_escalate_s,
			       .wait_deadline_s = co.cfg.wait_deadline_s,
			       .wait_default_approve = !strcmp(co.cfg.wait_default, "approve")};
	so.default_budget = (lh_budget_t){.usd = co.cfg.budget_usd, .tokens = co.cfg.budget_tokens,
					  .tasks = co.cfg.budget_tasks,
					  .attempts_per_task = co.cfg.max_attempts,
					  .replans = co.cfg.budget_replans,
					  .deadline_s = co.cfg.budget_deadline_s};
	lh_state_init(&co.st, &so);
	lh_idmap_init(&co.echo);
	lh_buf_init(&co.scratch);
	co.em = (lh_emitter_t){.emit = emit_cb, .send_order = send_order_cb,
			       .dead_letter = dead_letter_cb, .actor_id = co.actor_id,
			       .topic_prefix = co.cfg.common.topic_prefix,
			       .start_lease_ms = co.cfg.start_lease_s * 1000,
			       .heartbeat_lease_ms = co.cfg.heartbeat_lease_s * 1000};
	co.base = event_base_new();

	ko = (lh_kafka_opts_t){.brokers = co.cfg.common.brokers, .client_id = "lh-coordinator",
			       .on_delivery = on_delivery};
	if (lh_kafka_new(&ko, &co.producer, &err) ||
	    lh_kafka_wait_ready(co.producer, 15000, &err) ||
	    lh_bus_ensure_topics(co.producer, co.cfg.common.topic_prefix, co.tiers, co.ntiers,
				 (int)co.cfg.common.events_partitions, 4, &err)) {
		lh_log_error("coordinator.start_failed", err.msg);
		fprintf(stderr, "lh-coordinator: %s\n", err.msg);
		return 1;
	}
	topics[0] = co.events_topic;
	topics[1] = NULL;
	ko = (lh_kafka_opts_t){.brokers = co.cfg.common.brokers, .client_id = "lh-coordinator",
			       .group_id = co.cfg.group, .topics = topics, .on_message = on_message,
			       .on_rebalance = on_rebalance};
	if (*co.cfg.instance_id) {
		static char inst[300];
		static const char *extra[2];
		snprintf(inst, sizeof(inst), "group.instance.id=%s", co.cfg.instance_id);
		extra[0] = inst;
		ko.extra = extra;
	}
	if (lh_kafka_new(&ko, &co.consumer, &err) || lh_kafka_attach(co.producer, co.base, &err) ||
	    lh_kafka_attach(co.consumer, co.base, &err)) {
		lh_log_error("coordinator.start_failed", err.msg);
		fprintf(stderr, "lh-coordinator: %s\n", err.msg);
		return 1;
	}
	co.ev_reconcile = event_new(co.base, -1, 0, on_reconcile, NULL);
	co.ev_retry = evtimer_new(co.base, on_retry, NULL);
	co.ev_timer = evtimer_new(co.base, on_timer, NULL);
	co.ev_snapshot = event_new(co.base, -1, 0, on_snapshot, NULL);
	{
		struct timeval tv = {co.cfg.snapshot_interval_s, 0};
		struct event *e = event_new(co.base, -1, EV_PERSIST, on_snapshot_timer, NULL);
		event_add(e, &tv);
		co.ev_snaptimer = e;
	}
	if (co.cfg.consolidate_interval_s > 0) {
		/* a quarter of the interval, 1 s to 60 s: a plan idle for a whole interval gets
		 * its order within a tick of the bucket's start */
		int64_t tick = co.cfg.consolidate_interval_s / 4;
		struct timeval tv = {tick < 1 ? 1 : tick > 60 ? 60 : tick, 0};
		co.ev_consolidate = event_new(co.base, -1, EV_PERSIST, on_consolidate, NULL);
		co.ev_consolidate_more = evtimer_new(co.base, on_consolidate, (void *)1);
		event_add(co.ev_consolidate, &tv);
	}
	co.ev_sigint = evsignal_new(co.base, SIGINT, on_signal, NULL);
	co.ev_sigterm = evsignal_new(co.base, SIGTERM, on_signal, NULL);
	event_add(co.ev_sigint, NULL);
	event_add(co.ev_sigterm, NULL);
	if (co.cfg.stats_interval_s > 0) {
		struct timeval tv = {co.cfg.stats_interval_s, 0};
		co.ev_stats = event_new(co.base, -1, EV_PERSIST, on_stats, NULL);
		event_add(co.ev_stats, &tv);
	}
	lh_log_info("coordinator.started", "consuming", "topic", co.events_topic, "group",
		    co.cfg.group, "id", co.actor_id);
	event_base_dispatch(co.base);

	/* Orderly stop: deliver what was emitted, leave the group. */
	if (lh_kafka_flush(co.producer, 10000, &err))
		lh_log_warn("coordinator.flush", err.msg);
	co.consumer = lh_kafka_free(co.consumer);
	co.producer = lh_kafka_free(co.producer);
	co.blobs = lh_blob_store_free(co.blobs);
	event_free(co.ev_reconcile);
	event_free(co.ev_retry);
	event_free(co.ev_timer);
	event_free(co.ev_snapshot);
	event_free(co.ev_snaptimer);
	if (co.ev_consolidate)
		event_free(co.ev_consolidate);
	if (co.ev_consolidate_more)
		event_free(co.ev_consolidate_more);
	lh_idmap_finish(&co.echo);
	free(co.heap);
	event_free(co.ev_sigint);
	event_free(co.ev_sigterm);
	if (co.ev_stats)
		event_free(co.ev_stats);
	event_base_free(co.base);
	lh_state_finish(&co.st);
	lh_buf_finish(&co.scratch);
	lh_config_finish(&coord_spec, &co.cfg);
	lh_log_info("coordinator.stopped", "bye");
	return co.exit_code;
}
