/* test_mat_batch.c — materializer/batch.c: the batch a writer stores, and lh_mbatch_move (how the
 * loop hands entries consumed behind a failed write to that write's retry) — order, ownership,
 * counts, offsets JSON over the moved range; and lh_mstats_lags without a consumer. */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "buf.h"
#include "metrics.h"
#include "t.h"

static char *dup(const char *s) { return strcpy(malloc(strlen(s) + 1), s); }

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
	T_CHECK(a.v[7].json == NULL);
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
	T_RUN(t_lags_without_consumer);
	return t_done();
}
