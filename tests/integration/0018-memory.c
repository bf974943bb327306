/* 0018-memory — memories in real PostgreSQL (sql/0005_memories.sql, common/memory.c).
 *
 * Loads the retrieval fixture (tests/fixtures/memory/fixture.h: 200 facts, 50 paraphrased
 * questions) into a fresh tenant, measures recall@5 of full-text, vector and hybrid search and
 * prints them as "# recall5_MODE X". Hybrid must not be worse than the better of the two alone by
 * more than 0.02 (one question in 50). Also: exact and near duplicates are refused with the
 * existing id, different facts of one template are not, superseded memories disappear from
 * search, plan-scoped memories are visible only with their plan, other tenants see nothing.
 * Needs LH_PG_URL (else skipped, exit 77); no Kafka. */
#include <inttypes.h>
#include <stdlib.h>

#include "fixtures/memory/recall.h"
#include "ids.h"
#include "memory.h"
#include "pg.h"
#include "t.h"

static lh_pg_t *pg;
static char tenant[64];
static int64_t ids[LH_FX_NMEMORIES];

static void recall(void)
{
	lh_error_t err;
	double ft = 0, vec = 0, hy = 0;
	T_CHECK(lh_fx_recall_measure(pg, NULL, tenant, ids, 5, LH_MEMORY_FULLTEXT, &ft, &err) == LH_OK);
	T_CHECK(lh_fx_recall_measure(pg, NULL, tenant, ids, 5, LH_MEMORY_VECTOR, &vec, &err) == LH_OK);
	T_CHECK(lh_fx_recall_measure(pg, NULL, tenant, ids, 5, LH_MEMORY_HYBRID, &hy, &err) == LH_OK);
	printf("# recall5_fulltext %.2f\n# recall5_vector %.2f\n# recall5_hybrid %.2f\n", ft, vec, hy);
	T_CHECK(hy >= (ft > vec ? ft : vec)); /* hybrid not worse than either alone */
	T_CHECK(ft > 0.2 && vec > 0.2); /* both rankings do real work on this fixture */
}

static void duplicates(void)
{
	lh_error_t err;
	int64_t id = 0;
	lh_memory_t m = {.tenant = tenant, .scope = LH_MEMORY_TENANT, .kind = LH_MEMORY_SEMANTIC,
			 .content = lh_fx_memories[3], .task_no = -1, .attempt = -1};
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_ERR_CONFLICT);
	T_EQ_INT(id, ids[3]);
	char want[64];
	snprintf(want, sizeof(want), "duplicates memory %" PRId64, ids[3]);
	T_CHECK(strstr(err.msg, want) != NULL);

	/* near duplicates: case, punctuation and stop words (cosine 1.0); a word added (0.94) */
	m.content = "the billing service, listens on port 8000";
	id = 0;
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_ERR_CONFLICT);
	T_EQ_INT(id, ids[0]);
	T_CHECK(strstr(err.msg, "nearly duplicates") != NULL);
	m.content = "Atlas team owns the billing service and reviews every single change to it.";
	id = 0;
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_ERR_CONFLICT);
	T_EQ_INT(id, ids[1]);
	/* the same text is fine for another tenant and another scope */
	char other[80];
	snprintf(other, sizeof(other), "%s-other", tenant);
	m.tenant = other;
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_OK);
	T_CHECK(id > 0);
	/* the other tenant sees only its own memory */
	lh_memory_hit_t *hits;
	int n;
	T_EQ_INT(lh_memory_search(pg, other, NULL, "billing port", 5, LH_MEMORY_HYBRID, &hits, &n,
				  &err), LH_OK);
	T_EQ_INT(n, 1);
	if (n == 1)
		T_EQ_INT(hits[0].id, id);
	lh_memory_hits_free(hits, n);
}

static void supersede_and_scope(void)
{
	lh_error_t err;
	int64_t id = 0, pid_mem = 0;
	char plan[37];
	lh_memory_t m = {.tenant = tenant, .scope = LH_MEMORY_TENANT, .kind = LH_MEMORY_SEMANTIC,
			 .content = "The billing service moved to port 9443 in the spring migration.",
			 .task_no = 2, .attempt = 1};
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_OK);
	T_EQ_INT(lh_memory_supersede(pg, ids[0], id, &err), LH_OK);
	T_EQ_INT(lh_memory_supersede(pg, ids[0], id, &err), LH_ERR_NOT_FOUND);
	lh_memory_hit_t *hits;
	int n;
	bool old_seen = false, new_seen = false;
	T_EQ_INT(lh_memory_search(pg, tenant, NULL, "billing port", 10, LH_MEMORY_HYBRID, &hits, &n,
				  &err), LH_OK);
	for (int i = 0; i < n; i++) {
		old_seen |= hits[i].id == ids[0];
		new_seen |= hits[i].id == id;
	}
	lh_memory_hits_free(hits, n);
	T_CHECK(!old_seen && new_seen);

	/* a plan-scoped memory is visible with its plan only */
	lh_id_t pid = lh_uuid7_new();
	lh_uuid_fmt(&pid, plan);
	m = (lh_memory_t){.tenant = tenant, .scope = LH_MEMORY_PLAN, .plan_id = plan,
			  .kind = LH_MEMORY_EPISODIC, .content = "Zanzibar quokka step failed twice",
			  .task_no = -1, .attempt = -1};
	T_EQ_INT(lh_memory_write(pg, &m, 0, &pid_mem, &err), LH_OK);
	T_EQ_INT(lh_memory_search(pg, tenant, NULL, "zanzibar quokka", 5, LH_MEMORY_FULLTEXT, &hits,
				  &n, &err), LH_OK);
	T_EQ_INT(n, 0);
	lh_memory_hits_free(hits, n);
	T_EQ_INT(lh_memory_search(pg, tenant, plan, "zanzibar quokka", 5, LH_MEMORY_FULLTEXT, &hits,
				  &n, &err), LH_OK);
	T_EQ_INT(n, 1);
	if (n == 1)
		T_EQ_INT(hits[0].id, pid_mem);
	lh_memory_hits_free(hits, n);
	/* scope plan needs a plan id */
	m.plan_id = NULL;
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_ERR_INVALID);
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
		fprintf(stderr, "0018-memory: %s\n", err.msg);
		return 1;
	}
	lh_id_t t = lh_uuid7_new();
	char tid[37];
	lh_uuid_fmt(&t, tid);
	snprintf(tenant, sizeof(tenant), "mem-%s", tid);
	if (lh_fx_recall_load(pg, NULL, tenant, ids, &err) != LH_OK) {
		fprintf(stderr, "0018-memory: could not load the fixture: %s\n", err.msg);
		lh_pg_free(pg);
		return 1;
	}
	T_RUN(recall);
	T_RUN(duplicates);
	T_RUN(supersede_and_scope);
	lh_pg_free(pg);
	return t_done();
}
