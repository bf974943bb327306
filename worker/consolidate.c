/* consolidate.c — a consolidate order's database work (see consolidate.h). */
#include "consolidate.h"

#include <stdlib.h>
#include <string.h>

#include "ids.h"

static uint64_t tenant_key(const char *tenant)
{
	uint8_t h[32];
	uint64_t k = 0;
	lh_sha256(tenant, strlen(tenant), h);
	for (int i = 0; i < 8; i++)
		k = k << 8 | h[i];
	return k;
}

int64_t lh_consolidate_cursor_get(const lh_consolidate_cursors_t *c, const char *tenant)
{
	uint64_t k = tenant_key(tenant && *tenant ? tenant : "default");
	for (int i = 0; i < c->n; i++)
		if (c->e[i].key == k)
			return c->e[i].after;
	return 0;
}

void lh_consolidate_cursor_put(lh_consolidate_cursors_t *c, const char *tenant, int64_t after)
{
	uint64_t k = tenant_key(tenant && *tenant ? tenant : "default");
	int i;
	for (i = 0; i < c->n; i++)
		if (c->e[i].key == k)
			break;
	if (i == c->n) {
		if (c->n < LH_CONSOLIDATE_CURSORS) {
			i = c->n++;
		} else {
			i = c->next;
			c->next = (c->next + 1) % LH_CONSOLIDATE_CURSORS;
		}
		c->e[i].key = k;
	}
	c->e[i].after = after > 0 ? after : 0;
}

struct lh_consolidate_job {
	char *tenant;
	int64_t after;
	int limit;
	double episodic_ttl_s;
	lh_memory_consolidation_t cons;
	void *owner;
};

lh_consolidate_job_t *lh_consolidate_job_new(const lh_event_t *order, int64_t after_id, int limit,
					     double episodic_ttl_s, void *owner)
{
	lh_consolidate_job_t *j = calloc(1, sizeof(*j));
	const char *tenant = order->tenant && *order->tenant ? order->tenant : "default";
	if (!j || !(j->tenant = strdup(tenant)))
		abort();
	j->after = after_id > 0 ? after_id : 0;
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
	lh_memory_consolidation_t c = {0}, again = {0};
	double nd = emb ? lh_embedder_near_dup(emb) : 0; /* 0: the hashing threshold */
	lh_err_t rc = lh_memory_consolidate(pg, j->tenant, j->after, j->limit, nd, j->episodic_ttl_s,
					    &c, err);
	if (rc == LH_OK && c.next_after == j->after && j->after > 0) {
		/* nothing after the cursor: start over (expired memories were pruned already) */
		if ((rc = lh_memory_consolidate(pg, j->tenant, 0, j->limit, nd, 0, &again, err)) ==
		    LH_OK) {
			c.merged += again.merged;
			c.next_after = again.next_after;
		}
	}
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
