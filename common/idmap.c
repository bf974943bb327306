#include "idmap.h"
#include <stdbool.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash(const lh_id_t *k)
{
	uint64_t a, b;
	memcpy(&a, k->b, 8);
	memcpy(&b, k->b + 8, 8);
	/* UUIDv7 puts the clock in the first bytes: mix both halves. */
	a ^= b * 0x9E3779B97F4A7C15ull;
	a ^= a >> 29;
	return (size_t)a;
}

void lh_idmap_init(lh_idmap_t *m) { memset(m, 0, sizeof(*m)); }

void lh_idmap_finish(lh_idmap_t *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static void grow(lh_idmap_t *m)
{
	struct lh_idmap_slot *old = m->slots;
	size_t oldcap = m->cap;
	m->cap = oldcap ? oldcap * 2 : 64;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots)
		abort();
	m->n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].val)
			lh_idmap_put(m, &old[i].key, old[i].val);
	free(old);
}

void *lh_idmap_get(const lh_idmap_t *m, const lh_id_t *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].val)
			return NULL;
		if (memcmp(m->slots[i].key.b, key->b, 16) == 0)
			return m->slots[i].val;
	}
}

void *lh_idmap_put(lh_idmap_t *m, const lh_id_t *key, void *val)
{
	size_t i;
	if ((m->n + 1) * 4 > m->cap * 3)
		grow(m);
	for (i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].val) {
			m->slots[i].key = *key;
			m->slots[i].val = val;
			m->n++;
			return NULL;
		}
		if (memcmp(m->slots[i].key.b, key->b, 16) == 0) {
			void *prev = m->slots[i].val;
			m->slots[i].val = val;
			return prev;
		}
	}
}

void *lh_idmap_del(lh_idmap_t *m, const lh_id_t *key)
{
	size_t i, j, mask = m->cap - 1;
	void *val;
	if (!m->cap)
		return NULL;
	for (i = hash(key) & mask;; i = (i + 1) & mask) {
		if (!m->slots[i].val)
			return NULL;
		if (memcmp(m->slots[i].key.b, key->b, 16) == 0)
			break;
	}
	val = m->slots[i].val;
	m->slots[i].val = NULL;
	m->n--;
	/* Backward-shift the cluster that follows so lookups never stop early. */
	for (j = (i + 1) & mask; m->slots[j].val; j = (j + 1) & mask) {
		size_t home = hash(&m->slots[j].key) & mask;
		bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			m->slots[i] = m->slots[j];
			m->slots[j].val = NULL;
			i = j;
		}
	}
	return val;
}

void *lh_idmap_next(const lh_idmap_t *m, size_t *iter)
{
	while (*iter < m->cap) {
		size_t i = (*iter)++;
		if (m->slots[i].val)
			return m->slots[i].val;
	}
	return NULL;
}
