/* consolidate.c — a consolidate order's database work (see consolidate.h). */
#include "consolidate.h"

#include <stdlib.h>
#include <string.h>

struct lh_consolidate_job {
	char *tenant;
	int limit;
	double episodic_ttl_s;
	lh_memory_consolidation_t cons;
	void *owner;
};

lh_consolidate_job_t *lh_consolidate_job_new(const lh_event_t *order, int limit,
					     double episodic_ttl_s, void *owner)
{
	lh_consolidate_job_t *j = calloc(1, sizeof(*j));
	const char *tenant = order->tenant && *order->tenant ? order->tenant : "default";
	if (!j || !(j->tenant = strdup(tenant)))
		abort();
	j->limit = limit > 0 ? limit : 1000;
	j->episodic_ttl_s = episodic_ttl_s;
	j->owner = owner;
	return j;
}

void lh_consolidate_job_free(lh_consolidate_job_t *j)
{
	if (!j)
		return;
	free(j->tenant);
	free(j);
}

void *lh_consolidate_job_owner(const lh_consolidate_job_t *j) { return j->owner; }

const char *lh_consolidate_job_tenant(const lh_consolidate_job_t *j) { return j->tenant; }

lh_memory_consolidation_t lh_consolidate_job_result(const lh_consolidate_job_t *j)
{
	return j->cons;
}

lh_err_t lh_consolidate_job_run(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_consolidate_job_t *j = job;
	lh_memory_consolidation_t c = {0};
	lh_err_t rc = lh_memory_consolidate(pg, j->tenant, 0, j->limit, lh_embedder_near_dup(emb),
					    j->episodic_ttl_s, &c, err);
	if (rc == LH_OK)
		j->cons = c;
	return rc;
}

struct lh_memuse_job {
	char *tenant;
	int64_t ids[LH_MEMUSE_MAX];
	int n;
	bool succeeded;
	int updated;
};

lh_memuse_job_t *lh_memuse_job_new(const char *tenant, const int64_t *ids, int n, bool succeeded)
{
	lh_memuse_job_t *j = calloc(1, sizeof(*j));
	if (!j || !(j->tenant = strdup(tenant && *tenant ? tenant : "default")))
		abort();
	j->n = n < 0 ? 0 : n > LH_MEMUSE_MAX ? LH_MEMUSE_MAX : n;
	if (j->n)
		memcpy(j->ids, ids, (size_t)j->n * sizeof(*ids));
	j->succeeded = succeeded;
	return j;
}

void lh_memuse_job_free(lh_memuse_job_t *j)
{
	if (!j)
		return;
	free(j->tenant);
	free(j);
}

lh_err_t lh_memuse_job_run(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_memuse_job_t *j = job;
	(void)emb;
	return lh_memory_used(pg, j->tenant, j->ids, j->n, j->succeeded, &j->updated, err);
}

int lh_memuse_job_updated(const lh_memuse_job_t *j) { return j->updated; }
