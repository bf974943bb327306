/* test_ratelimit: the rate-limit header parsers (common/llm_ratelimit.c) and the worker's
 * limiter (worker/breaker.c) that they feed. */
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "llm.h"
#include "t.h"

static void t_durations(void)
{
	T_EQ_INT(lh_llm_parse_duration_ms("6m0s"), 360000);
	T_EQ_INT(lh_llm_parse_duration_ms("1s"), 1000);
	T_EQ_INT(lh_llm_parse_duration_ms("20ms"), 20);
	T_EQ_INT(lh_llm_parse_duration_ms("59.988s"), 59988);
	T_EQ_INT(lh_llm_parse_duration_ms("1h2m3.5s"), 3723500);
	T_EQ_INT(lh_llm_parse_duration_ms("0"), 0);
	T_EQ_INT(lh_llm_parse_duration_ms("0s"), 0);
	T_EQ_INT(lh_llm_parse_duration_ms("300us"), 1); /* rounded up: never early */
	T_EQ_INT(lh_llm_parse_duration_ms("1500ns"), 1);
	T_EQ_INT(lh_llm_parse_duration_ms(" 2s "), 2000);
	T_EQ_INT(lh_llm_parse_duration_ms(".5s"), 500);
	T_EQ_INT(lh_llm_parse_duration_ms(""), -1);
	T_EQ_INT(lh_llm_parse_duration_ms("5"), -1);
	T_EQ_INT(lh_llm_parse_duration_ms("s"), -1);
	T_EQ_INT(lh_llm_parse_duration_ms("1x"), -1);
	T_EQ_INT(lh_llm_parse_duration_ms("-1s"), -1);
	T_EQ_INT(lh_llm_parse_duration_ms("1s 2s"), -1);
	T_EQ_INT(lh_llm_parse_duration_ms("99999999999h"), -1);
	T_EQ_INT(lh_llm_parse_duration_ms(NULL), -1);
}

static void t_rfc3339(void)
{
	int64_t ms = 0;
	T_EQ_INT(lh_llm_parse_rfc3339_ms("1970-01-01T00:00:00Z", &ms), LH_OK);
	T_EQ_INT(ms, 0);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-14T22:13:20Z", &ms), LH_OK);
	T_EQ_INT(ms, 1700000000000LL);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-14T22:13:20.25Z", &ms), LH_OK);
	T_EQ_INT(ms, 1700000000250LL);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-15T00:13:20.123456+02:00", &ms), LH_OK);
	T_EQ_INT(ms, 1700000000123LL);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-14T21:13:20-01:00", &ms), LH_OK);
	T_EQ_INT(ms, 1700000000000LL);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2024-02-29T00:00:00Z", &ms), LH_OK);
	ms = 7;
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-02-29T00:00:00Z", &ms), LH_ERR_INVALID);
	T_EQ_INT(ms, 7); /* untouched on failure */
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-14T22:13:20", &ms), LH_ERR_INVALID);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-14 22:13", &ms), LH_ERR_INVALID);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-13-01T00:00:00Z", &ms), LH_ERR_INVALID);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-14T22:13:20.Z", &ms), LH_ERR_INVALID);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("2023-11-14T22:13:20Zjunk", &ms), LH_ERR_INVALID);
	T_EQ_INT(lh_llm_parse_rfc3339_ms("Tue, 14 Nov 2023 22:13:20 GMT", &ms), LH_ERR_INVALID);
}

typedef struct kv {
	const char *k, *v;
} kv_t;

static const char *get(void *ctx, const char *name)
{
	for (const kv_t *h = ctx; h->k; h++)
		if (strcmp(h->k, name) == 0)
			return h->v;
	return NULL;
}

static void t_read_openai(void)
{
	kv_t h[] = {{"x-ratelimit-limit-requests", "10000"},
		    {"x-ratelimit-remaining-requests", "9999"},
		    {"x-ratelimit-reset-requests", "6m0s"},
		    {"x-ratelimit-limit-tokens", "200000"},
		    {"x-ratelimit-remaining-tokens", "199000"},
		    {"x-ratelimit-reset-tokens", "300ms"},
		    {NULL, NULL}};
	lh_llm_ratelimit_t rl;
	lh_llm_ratelimit_read(&rl, get, h, 1700000000000LL);
	T_CHECK(rl.present);
	T_EQ_INT(rl.requests_limit, 10000);
	T_EQ_INT(rl.requests_remaining, 9999);
	T_EQ_INT(rl.requests_reset_ms, 360000);
	T_EQ_INT(rl.tokens_limit, 200000);
	T_EQ_INT(rl.tokens_remaining, 199000);
	T_EQ_INT(rl.tokens_reset_ms, 300);
	T_EQ_INT(rl.input_tokens_remaining, -1);
	T_EQ_INT(rl.output_tokens_reset_ms, -1);
}

static void t_read_anthropic(void)
{
	kv_t h[] = {{"anthropic-ratelimit-requests-limit", "50"},
		    {"anthropic-ratelimit-requests-remaining", "49"},
		    {"anthropic-ratelimit-requests-reset", "2023-11-14T22:13:30Z"},
		    {"anthropic-ratelimit-tokens-remaining", "40000"},
		    {"anthropic-ratelimit-tokens-reset", "2023-11-14T22:13:21.500Z"},
		    {"anthropic-ratelimit-input-tokens-remaining", "30000"},
		    {"anthropic-ratelimit-input-tokens-reset", "2023-11-14T22:13:25Z"},
		    {"anthropic-ratelimit-output-tokens-remaining", "8000"},
		    {"anthropic-ratelimit-output-tokens-reset", "2023-11-14T22:13:10Z"}, /* past */
		    {NULL, NULL}};
	lh_llm_ratelimit_t rl;
	lh_llm_ratelimit_read(&rl, get, h, 1700000000000LL);
	T_CHECK(rl.present);
	T_EQ_INT(rl.requests_limit, 50);
	T_EQ_INT(rl.requests_remaining, 49);
	T_EQ_INT(rl.requests_reset_ms, 10000);
	T_EQ_INT(rl.tokens_remaining, 40000);
	T_EQ_INT(rl.tokens_reset_ms, 1500);
	T_EQ_INT(rl.input_tokens_remaining, 30000);
	T_EQ_INT(rl.input_tokens_reset_ms, 5000);
	T_EQ_INT(rl.output_tokens_remaining, 8000);
	T_EQ_INT(rl.output_tokens_reset_ms, 0);
}

static void t_read_none_and_garbage(void)
{
	kv_t none[] = {{"content-type", "application/json"}, {NULL, NULL}};
	kv_t bad[] = {{"x-ratelimit-remaining-requests", "many"},
		      {"x-ratelimit-reset-requests", "soon"},
		      {NULL, NULL}};
	lh_llm_ratelimit_t rl;
	lh_llm_ratelimit_read(&rl, get, none, 0);
	T_CHECK(!rl.present);
	T_EQ_INT(rl.requests_remaining, -1);
	lh_llm_ratelimit_read(&rl, get, bad, 0);
	T_CHECK(!rl.present);
	lh_llm_ratelimit_read(&rl, NULL, NULL, 0);
	T_CHECK(!rl.present);
}

static lh_llm_ratelimit_t rl_requests(int64_t limit, int64_t remaining, int64_t reset_ms)
{
	lh_llm_ratelimit_t rl = {.present = true,
				 .requests_limit = limit,
				 .tokens_limit = -1,
				 .requests_remaining = remaining,
				 .tokens_remaining = -1,
				 .input_tokens_remaining = -1,
				 .output_tokens_remaining = -1,
				 .requests_reset_ms = reset_ms,
				 .tokens_reset_ms = -1,
				 .input_tokens_reset_ms = -1,
				 .output_tokens_reset_ms = -1};
	return rl;
}

static void t_limiter_headers(void)
{
	lh_limiter_t l;
	lh_llm_ratelimit_t rl = rl_requests(3, 2, 1000);
	int64_t t = 1000000;
	lh_limiter_init(&l, 0, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t), 0); /* nothing known: goes */
	lh_limiter_observe(&l, &rl, 0, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t), 0);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t), 0);
	/* the window is spent: wait for its reset */
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t + 10), 1000000 - 10);
	/* an older answer of the same window saying more is left changes nothing */
	rl = rl_requests(3, 2, 990);
	lh_limiter_observe(&l, &rl, 0, 0, t + 20);
	T_CHECK(lh_limiter_take(&l, 100, 1, t + 30) > 0);
	/* a later reset of the same window (our guess was early) is taken */
	lh_limiter_init(&l, 0, 0, t);
	rl = rl_requests(3, 0, 1000);
	lh_limiter_observe(&l, &rl, 0, 0, t);
	rl = rl_requests(3, 0, 1100);
	lh_limiter_observe(&l, &rl, 0, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 1, 1, t), 1100000);
	lh_limiter_init(&l, 0, 0, t);
	rl = rl_requests(3, 2, 1000);
	lh_limiter_observe(&l, &rl, 0, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t), 0);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t), 0);
	/* after the reset the limit is there again, and a new reset one period later */
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t + 1000000), 0);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t + 1000001), 0);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t + 1000002), 0);
	T_EQ_INT(lh_limiter_take(&l, 100, 1, t + 1000003), 1000000 - 3);
	/* tokens in flight the provider has not counted are subtracted too */
	lh_limiter_init(&l, 0, 0, t);
	rl = rl_requests(-1, -1, -1);
	rl.tokens_remaining = 1000;
	rl.tokens_reset_ms = 1000;
	lh_limiter_observe(&l, &rl, 2, 700, t);
	T_CHECK(lh_limiter_take(&l, 400, 1, t) > 0); /* 300 left, not 1000 */
	T_EQ_INT(lh_limiter_take(&l, 250, 1, t), 0);
		/* calls in flight the provider has not counted are subtracted */
	lh_limiter_init(&l, 0, 0, t);
	rl = rl_requests(10, 5, 1000);
	lh_limiter_observe(&l, &rl, 4, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 1, 1, t), 0);
	T_CHECK(lh_limiter_take(&l, 1, 1, t) > 0);
}

static void t_limiter_tokens_and_block(void)
{
	lh_limiter_t l;
	lh_llm_ratelimit_t rl = rl_requests(-1, -1, -1);
	int64_t t = 5000000;
	rl.tokens_remaining = 1000;
	rl.tokens_limit = 5000;
	rl.tokens_reset_ms = 2000;
	lh_limiter_init(&l, 0, 0, t);
	lh_limiter_observe(&l, &rl, 0, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 600, 1, t), 0);
	T_EQ_INT(lh_limiter_take(&l, 600, 1, t), 2000000); /* 399 left < 601 */
	T_EQ_INT(lh_limiter_take(&l, 300, 1, t), 0);	   /* a smaller call still fits */
	/* a 429's retry-after holds everything */
	lh_limiter_block(&l, 250, t);
	T_EQ_INT(lh_limiter_take(&l, 1, 0, t + 50000), 200000);
	/* Anthropic's output tokens: none left means wait */
	lh_limiter_init(&l, 0, 0, t);
	rl = rl_requests(-1, -1, -1);
	rl.output_tokens_remaining = 0;
	rl.output_tokens_reset_ms = 700;
	lh_limiter_observe(&l, &rl, 0, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 10, 1, t), 700000);
	/* headers absent: nothing changes */
	lh_limiter_init(&l, 0, 0, t);
	rl.present = false;
	lh_limiter_observe(&l, &rl, 0, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 10, 1, t), 0);
	T_EQ_INT(l.observed, 0);
}

static void t_limiter_configured(void)
{
	lh_limiter_t l;
	int64_t t = 0, w;
	/* 60 rpm: one a second, a second's burst */
	lh_limiter_init(&l, 60, 0, t);
	T_EQ_INT(lh_limiter_take(&l, 10, 1, t), 0);
	T_EQ_INT(lh_limiter_take(&l, 10, 1, t), 1000000);
	/* 6000 tpm, a minute's worth at once: a 5000-token call goes, the next waits */
	lh_limiter_init(&l, 0, 6000, t);
	T_EQ_INT(lh_limiter_take(&l, 4999, 1, t), 0);
	w = lh_limiter_take(&l, 4999, 1, t);
	T_CHECK(w > 0);
	T_EQ_INT(w, 40000000); /* 4000 more tokens at 100 a second */
	/* the call used less than estimated: the difference comes back */
	lh_limiter_settle(&l, 5000, 1000, t);
	T_EQ_INT(lh_limiter_take(&l, 4999, 1, t), 0);
	/* a call larger than the bucket waits for a full bucket, then goes */
	lh_limiter_init(&l, 0, 600, t);
	T_EQ_INT(lh_limiter_take(&l, 2000, 0, t), 0);
	T_CHECK(lh_limiter_take(&l, 1, 0, t) > 0);
}

int main(void)
{
	T_RUN(t_durations);
	T_RUN(t_rfc3339);
	T_RUN(t_read_openai);
	T_RUN(t_read_anthropic);
	T_RUN(t_read_none_and_garbage);
	T_RUN(t_limiter_headers);
	T_RUN(t_limiter_tokens_and_block);
	T_RUN(t_limiter_configured);
	return t_done();
}
