/* test_mat_batch.c — materializer/batch.c: the batch a writer stores, and lh_mbatch_move (how the
 * loop hands entries consumed behind a failed write to that write's retry) — order, ownership,
 * counts, offsets JSON over the moved range; the rounds and the binary COPY rows of a range; and
 * lh_mstats_lags without a consumer. */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "buf.h"
#include "metrics.h"
#include "t.h"

/* A row with placeholder fields (the rounds read only id, plan, task and phase). */
static lh_mrow_t *dup(const char *s)
{
	static lh_mrow_t r;
	r = (lh_mrow_t){.fields = strcpy(malloc(strlen(s) + 1), s), .len = strlen(s),
			.task_no = LH_NO_TASK, .phase = 9};
	r.id.b[0] = (uint8_t)rand(); /* distinct enough: the move tests never number rounds */
	return &r;
}

static void t_move_keeps_order_and_counts(void)
{
	lh_mbatch_t a, b;
	lh_buf_t out;
	lh_mbatch_init(&a);
	lh_mbatch_init(&b);
	lh_buf_init(&out);
	lh_mbatch_add(&a, 0, 10, dup("{\"n\":1}"), "k", 1, "p1", 2);
	lh_mbatch_add(&a, 1, 20, dup("{\"n\":2}"), "k", 1, "p2", 2);
	a.done = 1; /* the first is stored: a retry starts at the second */
	for (int i = 0; i < 300; i++) /* past the initial capacity: dst grows */
		lh_mbatch_add(&b, i % 2, 11 + i, i == 5 ? NULL : dup("{\"n\":3}"), NULL, 0, "p", 1);
	b.done = 0;
	lh_mbatch_move(&a, &b);
	T_EQ_INT(b.n, 0);
	T_EQ_INT(b.nevents, 0);
	T_EQ_INT(b.bytes, 0);
	T_EQ_INT(a.n, 302);
	T_EQ_INT(a.done, 1);
	T_EQ_INT(a.nevents, 301); /* one dead-lettered (offset only) */
	T_EQ_INT(a.v[2].offset, 11);
	T_EQ_INT(a.v[301].offset, 310);
	T_CHECK(a.v[7].row.fields == NULL);
	T_CHECK(lh_mbatch_has_skipped(&a, 1, a.n));
	/* offsets over what is left to store: the last of each partition + 1 */
	T_EQ_INT(lh_mbatch_offsets_json(&a, a.done, a.n, "t.events", &out), 2);
	T_EQ_STR(out.data, "[{\"topic\":\"t.events\",\"partition\":0,\"next_offset\":310},"
			   "{\"topic\":\"t.events\",\"partition\":1,\"next_offset\":311}]");
	/* an emptied source takes entries again */
	lh_mbatch_add(&b, 0, 400, dup("{}"), NULL, 0, NULL, 0);
	T_EQ_INT(b.n, 1);
	lh_mbatch_finish(&a);
	lh_mbatch_finish(&b);
	lh_buf_finish(&out);
}

static void t_move_frees_the_stored_part(void)
{
	lh_mbatch_t a, b;
	lh_mbatch_init(&a);
	lh_mbatch_init(&b);
	lh_mbatch_add(&b, 3, 1, dup("{}"), "key", 3, "v", 1);
	lh_mbatch_add(&b, 3, 2, dup("{}"), "key", 3, "v", 1);
	b.done = 1; /* entry 0 is stored: freed, not moved */
	lh_mbatch_move(&a, &b);
	T_EQ_INT(a.n, 1);
	T_EQ_INT(a.v[0].offset, 2);
	T_EQ_INT(a.nevents, 1);
	lh_mbatch_move(&a, &b); /* nothing left: no change */
	T_EQ_INT(a.n, 1);
	lh_mbatch_finish(&a);
	lh_mbatch_finish(&b);
}

/* One entry of plan (a letter), task (LH_NO_TASK: none), phase (-1: NULL), event id n. */
static void add_ev(lh_mbatch_t *b, char plan, int64_t task_no, int phase, int n)
{
	lh_mrow_t r = {.fields = strcpy(malloc(2), "x"), .len = 1, .task_no = task_no,
		       .phase = phase};
	r.plan_id.b[0] = (uint8_t)plan;
	r.plan_id.b[15] = (uint8_t)plan;
	r.id.b[0] = (uint8_t)n;
	r.id.b[15] = (uint8_t)(n * 7);
	lh_mbatch_add(b, 0, (int64_t)b->n, &r, NULL, 0, NULL, 0);
}

/* The numbering of lh_mat_rounds (sql/0012), worked out by hand on two interleaved plans. */
static void t_rounds(void)
{
	static const struct {
		char plan;
		int64_t task;
		int phase, id;
		bool staged;
		int rnd, step;
		bool last5;
	} w[] = {
		{'A', LH_NO_TASK, 1, 1, true, 0, 0, false}, /* goal: a round of its own */
		{'A', 0, 3, 2, true, 1, 1, false},	     /* after a barrier: next round */
		{'A', 0, 4, 3, true, 1, 2, false},
		{'B', LH_NO_TASK, 2, 4, true, 0, 0, false}, /* another plan: its own numbers */
		{'A', 0, 5, 5, true, 1, 3, true},	     /* the round's only result */
		{'A', LH_NO_TASK, 0, 6, true, -1, -1, false},  /* a decision: no round */
		{'A', 0, -1, 7, true, -1, -1, false},	       /* a heartbeat: no round */
		{'A', LH_NO_TASK, 2, 8, true, 2, 0, false},
		{'A', 1, 3, 9, true, 3, 1, false},
		{'A', 2, 3, 10, true, 3, 1, false}, /* another task: the same step */
		{'A', 1, 5, 11, true, 3, 2, false},
		{'A', 2, 5, 12, true, 3, 2, true}, /* the round's last result */
		{'A', 1, 3, 9, false, -1, -1, false}, /* id 9 again: not staged */
		{'B', 1, 3, 13, true, 1, 1, false},
		{'A', LH_NO_TASK, 6, 14, true, 4, 0, false},
		{'B', 1, 5, 15, true, 1, 2, true}, /* last in the range: closed at the end */
		{'A', LH_NO_TASK, 9, 16, true, 5, 0, false},
		{'A', LH_NO_TASK, 9, 17, true, 6, 0, false}, /* barriers in a row: a round each */
	};
	size_t n = sizeof(w) / sizeof(w[0]);
	lh_mround_t r[32];
	lh_mbatch_t b;
	lh_mbatch_init(&b);
	for (size_t i = 0; i < n; i++) {
		add_ev(&b, w[i].plan, w[i].task, w[i].phase, w[i].id);
		if (i == 5) /* a dead-lettered message: no row, not staged, not counted */
			lh_mbatch_add(&b, 0, (int64_t)b.n, NULL, NULL, 0, NULL, 0);
	}
	T_EQ_INT(lh_mbatch_rounds(&b, 0, b.n, r), n - 1);
	for (size_t i = 0, k = 0; i < b.n; i++) {
		if (i == 6) {
			T_CHECK(!r[i].staged);
			continue;
		}
		T_CHECK(r[i].staged == w[k].staged);
		T_EQ_INT(r[i].rnd, w[k].rnd);
		T_EQ_INT(r[i].step, w[k].step);
		T_CHECK(r[i].last5 == w[k].last5);
		k++;
	}
	/* a sub-range is numbered on its own: what a bisected write sends */
	T_EQ_INT(lh_mbatch_rounds(&b, 3, 5, r), 2); /* B's plan.created, A's result */
	T_EQ_INT(r[0].rnd, 0);
	T_EQ_INT(r[1].rnd, 0);
	T_EQ_INT(r[1].step, 1);
	T_CHECK(r[1].last5);
	lh_mbatch_finish(&b);
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The COPY input: signature, one tuple of 19 fields per staged event, the trailer; an event's
 * columns as lh_mat_stage reads them. */
static void t_copy_rows(void)
{
	lh_event_t ev = {0};
	lh_decision_logged_t d = {.kind = "plan_created", .reasoning = "a\tb\\c"};
	lh_mrow_t row;
	lh_error_t err = {0};
	lh_mbatch_t b;
	lh_buf_t out;
	size_t staged = 0;
	const unsigned char *p;
	lh_mbatch_init(&b);
	lh_buf_init(&out);
	ev.v = LH_ENVELOPE_VERSION;
	ev.type = LH_EV_DECISION_LOGGED;
	ev.task_no = LH_NO_TASK;
	ev.ts_us = 1700000000123456;
	ev.actor.kind = "coordinator";
	ev.body = &d;
	ev.id.b[3] = 1;
	ev.plan_id.b[5] = 2;
	T_EQ_INT(lh_mbatch_row(&ev, "t.events", 3, 42, &row, &err), LH_OK);
	T_EQ_INT(row.phase, 0);
	lh_mbatch_add(&b, 3, 42, &row, NULL, 0, NULL, 0);
	T_CHECK(row.fields == NULL); /* stolen */
	lh_mbatch_add(&b, 3, 43, &(lh_mrow_t){0}, NULL, 0, NULL, 0); /* dead-lettered */
	T_EQ_INT(lh_mbatch_copy(&b, 0, b.n, &out, &staged), 1);
	T_EQ_INT(staged, 1);
	p = (const unsigned char *)out.data;
	T_CHECK(memcmp(p, "PGCOPY\n\377\r\n\0", 11) == 0);
	T_EQ_INT(be32(p + 11), 0);
	T_EQ_INT(be32(p + 15), 0);
	p += 19;
	T_EQ_INT(p[0] << 8 | p[1], 19);
	p += 2;
	T_EQ_INT(be32(p), 16); /* id */
	T_EQ_INT(p[4 + 3], 1);
	p += 4 + 16;
	T_EQ_INT(be32(p), 16); /* plan */
	T_EQ_INT(p[4 + 5], 2);
	p += 4 + 16;
	T_EQ_INT(be32(p), strlen("decision.logged"));
	T_CHECK(memcmp(p + 4, "decision.logged", 15) == 0);
	p += 4 + 15;
	T_EQ_INT(be32(p), 0xffffffffu); /* no task */
	T_EQ_INT(be32(p + 4), 0xffffffffu); /* no attempt */
	p += 8;
	T_EQ_INT(be32(p), 8); /* ts_us */
	T_EQ_INT(((uint64_t)be32(p + 4) << 32 | be32(p + 8)), 1700000000123456);
	p += 12;
	T_EQ_INT(be32(p), 0xffffffffu); /* tenant: default */
	p += 4;
	T_EQ_INT(be32(p), strlen("coordinator"));
	p += 4 + strlen("coordinator");
	T_EQ_INT(be32(p), 0xffffffffu); /* actor id */
	T_EQ_INT(be32(p + 4), 0xffffffffu); /* causation */
	p += 8;
	{
		const char *want = "{\"kind\":\"plan_created\",\"reasoning\":\"a\\tb\\\\c\"}";
		T_EQ_INT(be32(p), strlen(want) + 1);
		T_EQ_INT(p[4], 1); /* jsonb version */
		T_CHECK(memcmp(p + 5, want, strlen(want)) == 0);
		p += 5 + strlen(want);
	}
	T_EQ_INT(be32(p), 8);
	T_CHECK(memcmp(p + 4, "t.events", 8) == 0);
	p += 12;
	T_EQ_INT(be32(p), 4);
	T_EQ_INT(be32(p + 4), 3); /* partition */
	p += 8;
	T_EQ_INT(be32(p), 8);
	T_EQ_INT(be32(p + 8), 42); /* offset */
	p += 12;
	T_EQ_INT(be32(p), 4);
	T_EQ_INT(be32(p + 4), 0); /* phase */
	p += 8;
	T_EQ_INT(be32(p), 0xffffffffu); /* rnd */
	T_EQ_INT(be32(p + 4), 0xffffffffu); /* step */
	p += 8;
	T_EQ_INT(be32(p), 1);
	T_EQ_INT(p[4], 0); /* last5 */
	p += 5;
	T_EQ_INT(be32(p), 4);
	T_EQ_INT(be32(p + 4), 1); /* ord */
	p += 8;
	T_EQ_INT(p[0], 0xff);
	T_EQ_INT(p[1], 0xff); /* trailer */
	T_EQ_INT((size_t)(p + 2 - (const unsigned char *)out.data), out.len);
	/* an empty range: header and trailer only */
	T_EQ_INT(lh_mbatch_copy(&b, 1, 2, &out, &staged), 0);
	T_EQ_INT(staged, 0);
	T_EQ_INT(out.len, 19 + 2);
	lh_mbatch_finish(&b);
	lh_buf_finish(&out);
}

static void t_lags_without_consumer(void)
{
	static lh_mstats_t s;
	lh_mlag_t v[4];
	int unknown = -1;
	lh_mstats_init(&s);
	T_EQ_INT(lh_mstats_lags(&s, NULL, "t.events", v, 4, &unknown), 0);
	T_EQ_INT(unknown, 0);
	lh_mstats_set_partition(&s, 2, 5);
	lh_mstats_set_partition(&s, 7, LH_MSTATS_NOTHING_STORED);
	lh_mstats_set_partition(&s, LH_MSTATS_MAX_PARTS, 1); /* out of range: ignored */
	T_EQ_INT(lh_mstats_lags(&s, NULL, "t.events", v, 4, &unknown), 0);
	T_EQ_INT(unknown, 2); /* assigned, no watermark known */
	lh_mstats_observe_flush(&s, 3000);    /* 3 ms: the 5 ms bucket */
	lh_mstats_observe_flush(&s, 9000000); /* 9 s: +Inf */
	T_EQ_INT(s.flush_buckets[1], 0);	 /* le 0.0025 */
	T_EQ_INT(s.flush_buckets[2], 1);	 /* le 0.005 */
	T_EQ_INT(s.flush_buckets[LH_MSTATS_NBUCKETS], 1);
	T_EQ_INT(s.flush_count, 2);
}

int main(void)
{
	T_RUN(t_move_keeps_order_and_counts);
	T_RUN(t_move_frees_the_stored_part);
	T_RUN(t_rounds);
	T_RUN(t_copy_rows);
	T_RUN(t_lags_without_consumer);
	return t_done();
}
