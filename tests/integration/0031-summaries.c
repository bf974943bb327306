/* 0031-summaries — anchored rolling summaries stored with versions in real PostgreSQL
 * (common/summary_store.c, sql/0007).
 *
 * A 2,000-message synthetic history is folded 50 messages at a time through lh_summary_merge and
 * every merge stored as the next version (40 versions): the latest loaded back equals the one in
 * memory (JSON), every version's anchor grows, and each message was summarized exactly once (the
 * spans tile [0, 2000)). Concurrency and order: storing over an older version, or with an anchor
 * behind the latest, is refused; subjects (the plan's own, an attempt's) are separate; a plan
 * without a summary is NOT_FOUND. Needs LH_PG_URL (else skipped, exit 77); no Kafka. */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>

#include "ids.h"
#include "pg.h"
#include "summary.h"
#include "summary_store.h"
#include "t.h"

static lh_pg_t *pg;
static char plan[37];

static void fold_and_store(void)
{
	lh_summary_t s, back;
	lh_error_t err;
	int version = 0, loaded_version = 0, merges = 0;
	lh_summary_init(&s, 0, "Migrate the billing service to port 9443 without downtime");
	for (int from = 0; from < 2000; from += 50) {
		char span[50 * 96], *p = span, play[64];
		for (int i = from; i < from + 50; i++)
			p += snprintf(p, sizeof(span) - (size_t)(p - span),
				      "message %d edited src/mod%d/file%d.c for TICKET-%d\n", i,
				      i % 17, i, i);
		snprintf(play, sizeof(play), "messages %d..%d", from, from + 49);
		const char *sections[LH_SUMMARY__COUNT] = {NULL, play, NULL, NULL, NULL};
		T_EQ_INT(lh_summary_merge(&s, from, from + 50, sections, span, &err), LH_OK);
		merges++;
		T_EQ_INT(lh_summary_store(pg, plan, "", &s, version, NULL, &version, &err), LH_OK);
	}
	T_EQ_INT(version, 40);
	T_EQ_INT(merges, 40);
	T_EQ_INT(s.n_spans, 40);
	T_EQ_INT(s.anchor, 2000);
	/* every path and ticket id of the history is in the trail */
	T_CHECK(s.n_artifacts >= 4000);
	T_EQ_INT(lh_summary_load(pg, plan, "", &back, &loaded_version, &err), LH_OK);
	T_EQ_INT(loaded_version, 40);
	json_t *a = lh_summary_to_json(&s), *b = lh_summary_to_json(&back);
	T_CHECK(json_equal(a, b));
	json_decref(a);
	json_decref(b);
	lh_summary_finish(&back);

	/* a span already summarized cannot be merged again, so it cannot be stored again either */
	const char *none[LH_SUMMARY__COUNT] = {0};
	T_EQ_INT(lh_summary_merge(&s, 1950, 2000, none, "x", &err), LH_ERR_CONFLICT);
	/* a second writer that loaded version 39 loses */
	T_EQ_INT(lh_summary_store(pg, plan, "", &s, 39, NULL, NULL, &err), LH_ERR_CONFLICT);
	/* an anchor behind the latest is refused even over the right version */
	lh_summary_t old;
	lh_summary_init(&old, 0, "x");
	T_EQ_INT(lh_summary_merge(&old, 0, 10, none, NULL, &err), LH_OK);
	T_EQ_INT(lh_summary_store(pg, plan, "", &old, 40, NULL, NULL, &err), LH_ERR_CONFLICT);
	/* another subject of the same plan starts at version 1 */
	T_EQ_INT(lh_summary_store(pg, plan, "7/2", &old, 0, NULL, &version, &err), LH_OK);
	T_EQ_INT(version, 1);
	T_EQ_INT(lh_summary_load(pg, plan, "7/2", &back, &loaded_version, &err), LH_OK);
	T_EQ_INT(back.anchor, 10);
	lh_summary_finish(&back);
	lh_summary_finish(&old);
	lh_summary_finish(&s);

	char other[37];
	lh_id_t o = lh_uuid7_new();
	lh_uuid_fmt(&o, other);
	T_EQ_INT(lh_summary_load(pg, other, "", &back, NULL, &err), LH_ERR_NOT_FOUND);
}

int main(void)
{
	const char *url = getenv("LH_PG_URL");
	lh_error_t err;
	if (!url || !*url) {
		printf("SKIP: LH_PG_URL must name a real PostgreSQL\n");
		return 77;
	}
	if (lh_pg_connect(url, &pg, &err) != LH_OK || lh_pg_migrate(pg, NULL, &err) != LH_OK) {
		fprintf(stderr, "0031-summaries: %s\n", err.msg);
		return 1;
	}
	lh_id_t p = lh_uuid7_new();
	lh_uuid_fmt(&p, plan);
	T_RUN(fold_and_store);
	lh_pg_free(pg);
	return t_done();
}
