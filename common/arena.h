/* arena.h — scratch memory released all at once (PostgreSQL's memory contexts, simplified).
 *
 * A decoded event, an HTTP request or a worker attempt owns one arena; everything hanging off it is
 * allocated there and released by lh_arena_free(). Allocations are 16-byte aligned; lh_arena_alloc
 * returns zeroed memory and aborts the process on out-of-memory (as malloc failure in a daemon is
 * not recoverable here). */
#ifndef LH_ARENA_H
#define LH_ARENA_H

#include <stddef.h>

typedef struct lh_arena lh_arena_t;

lh_arena_t *lh_arena_new(size_t first_block); /* new; 0 picks a default */
lh_arena_t *lh_arena_free(lh_arena_t *a);      /* accepts NULL, returns NULL */
void lh_arena_reset(lh_arena_t *a);            /* keep the first block, drop the rest */
void *lh_arena_alloc(lh_arena_t *a, size_t n); /* zeroed */
char *lh_arena_strdup(lh_arena_t *a, const char *s);	      /* NULL stays NULL */
char *lh_arena_strndup(lh_arena_t *a, const char *s, size_t n); /* NUL-terminated copy */
void *lh_arena_memdup(lh_arena_t *a, const void *p, size_t n);
char *lh_arena_printf(lh_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t lh_arena_used(const lh_arena_t *a); /* bytes handed out, for limits and metrics */
/* Run fn(p) when the arena is freed or reset (latest registered runs first); e.g. json_decref for
 * Jansson values that hang off arena-owned structs. */
void lh_arena_on_free(lh_arena_t *a, void (*fn)(void *), void *p);

#endif
