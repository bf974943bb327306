/* buf.h — a growable byte buffer (always NUL-terminated for convenience). */
#ifndef LH_BUF_H
#define LH_BUF_H

#include <stddef.h>

typedef struct lh_buf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
} lh_buf_t;

void lh_buf_init(lh_buf_t *b);
void lh_buf_finish(lh_buf_t *b); /* frees data; the struct may be reused after init */
void lh_buf_reset(lh_buf_t *b);	 /* len = 0, keeps the memory */
void lh_buf_append(lh_buf_t *b, const void *p, size_t n); /* aborts on out-of-memory */
void lh_buf_appends(lh_buf_t *b, const char *s);
void lh_buf_printf(lh_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the data to the caller (who frees it); the buffer is left empty. */
char *lh_buf_steal(lh_buf_t *b, size_t *ret_len);

#endif
