/* idmap.h — a hash map from lh_id_t (plan ids, event ids) to pointers. Open addressing with linear
 * probing and backward-shift deletion; keys are already uniformly random (UUIDv7's low bits,
 * sha256-derived ids), so their bytes are the hash. Values are borrowed: the map never frees them. */
#ifndef LH_IDMAP_H
#define LH_IDMAP_H

#include <stddef.h>

#include "ids.h"

typedef struct lh_idmap {
	struct lh_idmap_slot {
		lh_id_t key;
		void *val; /* NULL = empty slot */
	} *slots;
	size_t cap; /* power of two */
	size_t n;
} lh_idmap_t;

void lh_idmap_init(lh_idmap_t *m);
void lh_idmap_finish(lh_idmap_t *m);
void *lh_idmap_get(const lh_idmap_t *m, const lh_id_t *key);
/* Insert or replace (val must not be NULL); returns the previous value or NULL. */
void *lh_idmap_put(lh_idmap_t *m, const lh_id_t *key, void *val);
/* Remove; returns the value removed or NULL. */
void *lh_idmap_del(lh_idmap_t *m, const lh_id_t *key);
/* Iterate: for (size_t i = 0; (v = lh_idmap_next(m, &i)); ) — do not modify while iterating. */
void *lh_idmap_next(const lh_idmap_t *m, size_t *iter);

#endif
