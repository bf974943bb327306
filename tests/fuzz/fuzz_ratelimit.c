/* fuzz_ratelimit.c — fuzz target for the rate-limit header parsers (common/llm_ratelimit.c):
 * lh_llm_parse_duration_ms, lh_llm_parse_rfc3339_ms, lh_llm_parse_count and
 * lh_llm_ratelimit_read, and the worker's limiter fed with what they read.
 *
 * Input: header values separated by newlines, assigned in order to the OpenAI and Anthropic
 * rate-limit header names. Properties: durations are -1 or within [0, 1e12] ms; a parsed RFC
 * 3339 time formats back (gmtime) to the same calendar second when it has no offset; counts are
 * -1 or non-negative; the read struct has -1 or non-negative fields and is "present" whenever
 * one field is set; a limiter observing it never asks to wait longer than a day plus the
 * announced resets, nor negative. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breaker.h"
#include "llm.h"
#include "replay.h"

static const char *names[] = {
	"x-ratelimit-limit-requests",		 "x-ratelimit-remaining-requests",
	"x-ratelimit-reset-requests",		 "x-ratelimit-limit-tokens",
	"x-ratelimit-remaining-tokens",		 "x-ratelimit-reset-tokens",
	"anthropic-ratelimit-requests-limit",	 "anthropic-ratelimit-requests-remaining",
	"anthropic-ratelimit-requests-reset",	 "anthropic-ratelimit-tokens-remaining",
	"anthropic-ratelimit-tokens-reset",	 "anthropic-ratelimit-input-tokens-remaining",
	"anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-remaining",
	"anthropic-ratelimit-output-tokens-reset"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

typedef struct hdrs {
	char *v[NNAMES];
} hdrs_t;

static const char *get(void *ctx, const char *name)
{
	hdrs_t *h = ctx;
	for (size_t i = 0; i < NNAMES; i++)
		if (strcmp(names[i], name) == 0)
			return h->v[i];
	return NULL;
}

static void check_field(int64_t v)
{
	if (v < -1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *p;
	hdrs_t h = {{0}};
	lh_llm_ratelimit_t rl;
	lh_limiter_t lim;
	int64_t d, c, ms, w;
	size_t i = 0;
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	/* the whole input through each scalar parser */
	d = lh_llm_parse_duration_ms(s);
	if (d < -1 || d > 1000000000000LL)
		abort();
	c = lh_llm_parse_count(s);
	if (c < -1)
		abort();
	if (lh_llm_parse_rfc3339_ms(s, &ms) == LH_OK && !strpbrk(s, "+") &&
	    (strchr(s, 'Z') || strchr(s, 'z')) && ms >= 0 && ms < 253402300800000LL) {
		time_t t = (time_t)(ms / 1000);
		struct tm tm;
		char back[32];
		gmtime_r(&t, &tm);
		strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%S", &tm);
		/* date and time must match ('T', 't' or ' ' between them); a leap second (:60)
		 * rolls into the next minute */
		const char *in = s + strspn(s, " \t");
		if ((strncmp(back, in, 10) != 0 || strncmp(back + 11, in + 11, 8) != 0) &&
		    !strstr(s, ":60"))
			abort();
	}
	/* then line by line as header values */
	for (p = s; p && i < NNAMES; i++) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		h.v[i] = p;
		p = nl ? nl + 1 : NULL;
	}
	lh_llm_ratelimit_read(&rl, get, &h, 1700000000000LL);
	check_field(rl.requests_limit);
	check_field(rl.tokens_limit);
	check_field(rl.requests_remaining);
	check_field(rl.tokens_remaining);
	check_field(rl.input_tokens_remaining);
	check_field(rl.output_tokens_remaining);
	check_field(rl.requests_reset_ms);
	check_field(rl.tokens_reset_ms);
	check_field(rl.input_tokens_reset_ms);
	check_field(rl.output_tokens_reset_ms);
	if (!rl.present && (rl.requests_remaining >= 0 || rl.tokens_remaining >= 0 ||
			    rl.requests_limit >= 0 || rl.requests_reset_ms >= 0))
		abort();
	lh_limiter_init(&lim, 60, 100000, 0);
	lh_limiter_observe(&lim, &rl, (int)(size % 7), (int64_t)(size % 1000), 1000);
	w = lh_limiter_take(&lim, (int64_t)size, 1, 2000);
	if (w < 0 || w > 86400000000LL + 1000000000000000LL)
		abort();
	free(s);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_ratelimit"); }
#endif
