#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct block {
	struct block *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

struct cleanup {
	struct cleanup *next;
	void (*fn)(void *);
	void *p;
};

struct lh_arena {
	struct cleanup *cleanups;
	struct block *head;  /* current block */
	struct block *first; /* kept by reset */
	size_t used;
};

static struct block *block_new(size_t size)
{
	struct block *b = malloc(sizeof(*b) + size);
	if (!b) {
		fprintf(stderr, "lh_arena: out of memory allocating %zu bytes\n", size);
		abort();
	}
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

lh_arena_t *lh_arena_new(size_t first_block)
{
	lh_arena_t *a = calloc(1, sizeof(*a));
	if (!a)
		abort();
	a->first = a->head = block_new(first_block ? first_block : 4096);
	return a;
}

static void run_cleanups(lh_arena_t *a)
{
	while (a->cleanups) {
		struct cleanup *c = a->cleanups;
		a->cleanups = c->next;
		c->fn(c->p); /* the node itself lives in the arena */
	}
}

void lh_arena_on_free(lh_arena_t *a, void (*fn)(void *), void *p)
{
	struct cleanup *c = lh_arena_alloc(a, sizeof(*c));
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
}

lh_arena_t *lh_arena_free(lh_arena_t *a)
{
	struct block *b, *next;
	if (!a)
		return NULL;
	run_cleanups(a);
	for (b = a->head; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
	return NULL;
}

void lh_arena_reset(lh_arena_t *a)
{
	struct block *b, *next;
	run_cleanups(a);
	b = a->head;
	while (b && b != a->first) {
		next = b->next;
		free(b);
		b = next;
	}
	a->head = a->first;
	a->first->used = 0;
	a->used = 0;
}

void *lh_arena_alloc(lh_arena_t *a, size_t n)
{
	struct block *b = a->head;
	size_t need = (n + 15) & ~(size_t)15;
	void *p;
	if (need < n) /* overflow */
		abort();
	if (b->size - b->used < need) {
		size_t size = b->size * 2;
		if (size < need)
			size = need;
		if (size > 1 << 20 && need <= 1 << 20)
			size = 1 << 20;
		b = block_new(size);
		b->next = a->head;
		a->head = b;
	}
	p = b->data + b->used;
	b->used += need;
	a->used += need;
	memset(p, 0, n);
	return p;
}

char *lh_arena_strndup(lh_arena_t *a, const char *s, size_t n)
{
	char *d = lh_arena_alloc(a, n + 1);
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

char *lh_arena_strdup(lh_arena_t *a, const char *s)
{
	return s ? lh_arena_strndup(a, s, strlen(s)) : NULL;
}

void *lh_arena_memdup(lh_arena_t *a, const void *p, size_t n)
{
	void *d = lh_arena_alloc(a, n ? n : 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

char *lh_arena_printf(lh_arena_t *a, const char *fmt, ...)
{
	va_list ap, ap2;
	int n;
	char *d;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	d = lh_arena_alloc(a, (size_t)n + 1);
	vsnprintf(d, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return d;
}

size_t lh_arena_used(const lh_arena_t *a) { return a->used; }
