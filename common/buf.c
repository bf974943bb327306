#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lh_buf_init(lh_buf_t *b) { memset(b, 0, sizeof(*b)); }

void lh_buf_finish(lh_buf_t *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void lh_buf_reset(lh_buf_t *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

static void reserve(lh_buf_t *b, size_t extra)
{
	size_t need = b->len + extra + 1, cap = b->cap ? b->cap : 256;
	if (need < extra)
		abort();
	if (need <= b->cap)
		return;
	while (cap < need)
		cap *= 2;
	b->data = realloc(b->data, cap);
	if (!b->data)
		abort();
	b->cap = cap;
}

void lh_buf_append(lh_buf_t *b, const void *p, size_t n)
{
	reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

void lh_buf_appends(lh_buf_t *b, const char *s) { lh_buf_append(b, s, strlen(s)); }

void lh_buf_printf(lh_buf_t *b, const char *fmt, ...)
{
	va_list ap, ap2;
	int n;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n > 0) {
		reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
		b->len += (size_t)n;
	}
	va_end(ap2);
}

char *lh_buf_steal(lh_buf_t *b, size_t *ret_len)
{
	char *d = b->data;
	if (ret_len)
		*ret_len = b->len;
	memset(b, 0, sizeof(*b));
	return d;
}
