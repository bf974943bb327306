/* text.h — small helpers for model texts: a UTF-8-safe cut and a trimmed copy. Pure. */
#ifndef LH_TEXT_H
#define LH_TEXT_H

#include <stddef.h>

/* Bytes of s (len bytes) to keep for at most max: len when it fits, else max backed off so the
 * cut does not fall inside a UTF-8 sequence. */
size_t lh_utf8_head(const char *s, size_t len, size_t max);

/* s[0, len) without leading and trailing white space, as a new NUL-terminated string (free());
 * "" when nothing is left. Aborts on out-of-memory, like lh_buf. */
char *lh_strndup_trim(const char *s, size_t len);

#endif
