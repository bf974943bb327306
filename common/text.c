/* text.c — model-text helpers (text.h). */
#include "text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

size_t lh_utf8_head(const char *s, size_t len, size_t max)
{
	size_t n;
	if (len <= max)
		return len;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--; /* s[n] is a continuation byte: the character starts earlier */
	return n;
}

char *lh_strndup_trim(const char *s, size_t len)
{
	size_t a = 0, b = len;
	char *r;
	while (a < b && isspace((unsigned char)s[a]))
		a++;
	while (b > a && isspace((unsigned char)s[b - 1]))
		b--;
	if (!(r = malloc(b - a + 1)))
		abort();
	memcpy(r, s + a, b - a);
	r[b - a] = '\0';
	return r;
}
