/* llm_ratelimit.c — the providers' rate-limit headers (llm.h): Go-style durations (OpenAI's
 * resets), RFC 3339 times (Anthropic's), counts, and the header families read into one
 * lh_llm_ratelimit_t. Hand-written: libcurl's curl_getdate reads HTTP dates, not RFC 3339 with
 * fractions and offsets, and nothing in Debian parses Go durations. Every parser is bounded
 * and fuzzed (tests/fuzz/fuzz_ratelimit.c). */
#include "llm.h"

#include <stdio.h>
#include <string.h>

#define MAX_MS 1000000000000LL /* ~31 years: anything longer is not a rate-limit reset */

int64_t lh_llm_parse_count(const char *s)
{
	int64_t v = 0;
	const char *p = s;
	if (!s)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	while (*p == ' ' || *p == '\t')
		p++;
	return *p ? -1 : v;
}

int64_t lh_llm_parse_duration_ms(const char *s)
{
	const char *p = s;
	double total_ns = 0;
	int parts = 0;
	if (!s)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] == '0' && (p[1] == '\0' || p[1] == ' '))
		return 0;
	while (*p && *p != ' ' && *p != '\t') {
		double num = 0, scale = 1, unit;
		int digits = 0;
		for (; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 19)
				num = num * 10 + (*p - '0');
		if (*p == '.') {
			p++;
			for (; *p >= '0' && *p <= '9'; p++, digits++)
				if (scale > 1e-18) {
					scale /= 10;
					num += (*p - '0') * scale;
				}
		}
		if (digits == 0 || digits > 40)
			return -1;
		if (p[0] == 'n' && p[1] == 's')
			unit = 1, p += 2;
		else if (p[0] == 'u' && p[1] == 's')
			unit = 1e3, p += 2;
		else if ((unsigned char)p[0] == 0xc2 && (unsigned char)p[1] == 0xb5 && p[2] == 's')
			unit = 1e3, p += 3; /* µs */
		else if (p[0] == 'm' && p[1] == 's')
			unit = 1e6, p += 2;
		else if (p[0] == 's')
			unit = 1e9, p += 1;
		else if (p[0] == 'm')
			unit = 60e9, p += 1;
		else if (p[0] == 'h')
			unit = 3600e9, p += 1;
		else
			return -1;
		total_ns += num * unit;
		if (++parts > 8 || total_ns > (double)MAX_MS * 1e6)
			return -1;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p || parts == 0)
		return -1;
	return (int64_t)((total_ns + 999999.0) / 1e6); /* round up: never wake too early */
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool digits_at(const char *p, int n, int *ret)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*ret = v;
	return true;
}

lh_err_t lh_llm_parse_rfc3339_ms(const char *s, int64_t *ret_unix_ms)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac_ms = 0, ms;
	const char *p = s;
	if (!s)
		return LH_ERR_INVALID;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!digits_at(p, 4, &y) || p[4] != '-' || !digits_at(p + 5, 2, &mo) || p[7] != '-' ||
	    !digits_at(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
	    !digits_at(p + 11, 2, &h) || p[13] != ':' || !digits_at(p + 14, 2, &mi) ||
	    p[16] != ':' || !digits_at(p + 17, 2, &sec))
		return LH_ERR_INVALID;
	p += 19;
	if (*p == '.') {
		int n = 0;
		p++;
		for (; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		if (n == 0)
			return LH_ERR_INVALID;
		for (; n < 3; n++)
			frac_ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!digits_at(p + 1, 2, &oh) || p[3] != ':' || !digits_at(p + 4, 2, &om) ||
		    oh > 23 || om > 59)
			return LH_ERR_INVALID;
		p += 6;
	} else {
		return LH_ERR_INVALID;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
	    sec > 60)
		return LH_ERR_INVALID;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return LH_ERR_INVALID;
	ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL + frac_ms;
	ms -= (int64_t)sign * ((int64_t)oh * 60 + om) * 60000LL;
	*ret_unix_ms = ms;
	return LH_OK;
}

/* A reset header in either format, as milliseconds from now; -1 when absent or unreadable. */
static int64_t reset_ms(const char *v, int64_t now_unix_ms)
{
	int64_t at, d;
	if (!v)
		return -1;
	d = lh_llm_parse_duration_ms(v);
	if (d >= 0)
		return d;
	if (lh_llm_parse_rfc3339_ms(v, &at) != LH_OK)
		return -1;
	if (at - now_unix_ms > MAX_MS)
		return -1;
	return at > now_unix_ms ? at - now_unix_ms : 0;
}

static const char *hdr(lh_llm_header_fn get, void *ctx, const char *fam, const char *dim,
		       const char *what, bool anthropic)
{
	char name[96];
	if (anthropic)
		snprintf(name, sizeof(name), "%s-%s-%s", fam, dim, what);
	else
		snprintf(name, sizeof(name), "%s-%s-%s", fam, what, dim);
	return get(ctx, name);
}

/* One dimension of one family into remaining/reset (the smaller remaining wins). */
static void read_dim(lh_llm_ratelimit_t *rl, lh_llm_header_fn get, void *ctx, const char *fam,
		     const char *dim, bool anthropic, int64_t now_unix_ms, int64_t *limit,
		     int64_t *remaining, int64_t *reset)
{
	int64_t l = lh_llm_parse_count(hdr(get, ctx, fam, dim, "limit", anthropic));
	int64_t r = lh_llm_parse_count(hdr(get, ctx, fam, dim, "remaining", anthropic));
	int64_t t = reset_ms(hdr(get, ctx, fam, dim, "reset", anthropic), now_unix_ms);
	if (l >= 0 && limit) {
		*limit = *limit < 0 || l < *limit ? l : *limit;
		rl->present = true;
	}
	if (r >= 0 && (*remaining < 0 || r < *remaining)) {
		*remaining = r;
		*reset = t;
		rl->present = true;
	} else if (t >= 0 && *reset < 0) {
		*reset = t;
		rl->present = true;
	}
}

void lh_llm_ratelimit_read(lh_llm_ratelimit_t *ret, lh_llm_header_fn get, void *ctx,
			   int64_t now_unix_ms)
{
	lh_llm_ratelimit_t rl = {.present = false,
				 .requests_limit = -1,
				 .tokens_limit = -1,
				 .requests_remaining = -1,
				 .tokens_remaining = -1,
				 .input_tokens_remaining = -1,
				 .output_tokens_remaining = -1,
				 .requests_reset_ms = -1,
				 .tokens_reset_ms = -1,
				 .input_tokens_reset_ms = -1,
				 .output_tokens_reset_ms = -1};
	if (get) {
		read_dim(&rl, get, ctx, "x-ratelimit", "requests", false, now_unix_ms,
			 &rl.requests_limit, &rl.requests_remaining, &rl.requests_reset_ms);
		read_dim(&rl, get, ctx, "x-ratelimit", "tokens", false, now_unix_ms,
			 &rl.tokens_limit, &rl.tokens_remaining, &rl.tokens_reset_ms);
		read_dim(&rl, get, ctx, "anthropic-ratelimit", "requests", true, now_unix_ms,
			 &rl.requests_limit, &rl.requests_remaining, &rl.requests_reset_ms);
		read_dim(&rl, get, ctx, "anthropic-ratelimit", "tokens", true, now_unix_ms,
			 &rl.tokens_limit, &rl.tokens_remaining, &rl.tokens_reset_ms);
		read_dim(&rl, get, ctx, "anthropic-ratelimit", "input-tokens", true, now_unix_ms,
			 NULL, &rl.input_tokens_remaining, &rl.input_tokens_reset_ms);
		read_dim(&rl, get, ctx, "anthropic-ratelimit", "output-tokens", true, now_unix_ms,
			 NULL, &rl.output_tokens_remaining, &rl.output_tokens_reset_ms);
	}
	*ret = rl;
}
