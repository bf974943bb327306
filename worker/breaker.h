/* breaker.h — a circuit breaker per provider endpoint and a token bucket per model.
 *
 * Pure state machines over a caller-supplied clock (microseconds, monotonic): no I/O, no
 * timers, so tests drive them with made-up times.
 *
 * Breaker: closed until `threshold` consecutive failures (provider_down, timeout), then open
 * for `cooldown_us`: calls are refused at once. After the cool-down one call is let through
 * (half-open); its success closes the breaker, its failure opens it for another cool-down.
 *
 * Bucket: `per_minute` tokens a minute, at most `burst` saved up; a call takes one. A bucket
 * with per_minute 0 never limits. */
#ifndef LH_WORKER_BREAKER_H
#define LH_WORKER_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "llm.h"

typedef enum lh_breaker_state {
	LH_BREAKER_CLOSED = 0,
	LH_BREAKER_OPEN,
	LH_BREAKER_HALF_OPEN
} lh_breaker_state_t;

typedef struct lh_breaker {
	int threshold;	     /* consecutive failures that open it; 0 = never opens */
	int64_t cooldown_us;
	lh_breaker_state_t state;
	int failures;	     /* consecutive, while closed */
	int64_t opened_us;
	bool probing;	     /* half-open: the one trial call is out */
	uint64_t opens;	     /* times it opened, for stats */
} lh_breaker_t;

void lh_breaker_init(lh_breaker_t *b, int threshold, int64_t cooldown_us);
/* May a call start now? Open past its cool-down turns half-open and lets exactly one call
 * through (until lh_breaker_record reports how it went). */
bool lh_breaker_allow(lh_breaker_t *b, int64_t now_us);
/* The outcome of an allowed call: failure = the endpoint looks down (provider_down, timeout).
 * Other errors (a bad request, a refusal) count as success: the endpoint answered. */
void lh_breaker_record(lh_breaker_t *b, bool failure, int64_t now_us);
/* Microseconds until an open breaker lets a trial call through (0 when not open). */
int64_t lh_breaker_wait_us(const lh_breaker_t *b, int64_t now_us);
const char *lh_breaker_state_name(lh_breaker_state_t s);

typedef struct lh_bucket {
	double per_us;	/* refill rate */
	double burst;
	double tokens;
	int64_t last_us;
} lh_bucket_t;

void lh_bucket_init(lh_bucket_t *b, double per_minute, double burst, int64_t now_us);
/* Take one token: 0 when taken, else the microseconds until one will be there (nothing is
 * taken then). */
int64_t lh_bucket_take(lh_bucket_t *b, int64_t now_us);
/* What a provider says is left (e.g. x-ratelimit-remaining-requests) caps the tokens. */
void lh_bucket_observe_remaining(lh_bucket_t *b, double remaining, int64_t now_us);
/* Take n tokens (n may exceed the burst: then a full bucket is enough, and it goes negative,
 * delaying later takes): 0 when taken, else the microseconds until enough will be there. */
int64_t lh_bucket_take_n(lh_bucket_t *b, double n, int64_t now_us);
/* Give back (n > 0) or charge more (n < 0) after the fact, e.g. actual usage vs estimate. */
void lh_bucket_adjust(lh_bucket_t *b, double n, int64_t now_us);

/* One window the provider announced in its rate-limit headers: `remaining` calls or tokens
 * until `reset_us`, after which `limit` (when known) is available again. */
typedef struct lh_rl_window {
	double remaining; /* < 0: nothing known */
	double limit;	  /* < 0: not announced */
	int64_t reset_us; /* when the window refills (monotonic) */
	int64_t period_us; /* the longest reset announced: the window's length, as far as known */
} lh_rl_window_t;

/* Limiter: everything that may hold back a call to one endpoint (a base URL + model):
 *   - the configured requests and tokens per minute (buckets; 0 = none);
 *   - the provider's own view from its last answers' headers (x-ratelimit-*,
 *     anthropic-ratelimit-*): requests, tokens, input and output tokens left until a reset;
 *   - a pause after a 429 that named its retry-after.
 * A call takes one request and its estimated tokens; when any of these is short it waits
 * until the earliest time all could be satisfied. Pure: the caller supplies the clock. */
typedef struct lh_limiter {
	lh_bucket_t rpm, tpm;
	lh_rl_window_t requests, tokens, input_tokens, output_tokens;
	int64_t blocked_until_us;
	uint64_t waits;	    /* takes refused, for stats */
	uint64_t observed;  /* answers whose headers were read */
} lh_limiter_t;

void lh_limiter_init(lh_limiter_t *l, double rpm, double tpm, int64_t now_us);
/* May a call estimated at est_in input and est_out output tokens start now? 0: yes, and its
 * share is taken; else the microseconds to wait before asking again (nothing taken). */
int64_t lh_limiter_take(lh_limiter_t *l, int64_t est_in, int64_t est_out, int64_t now_us);
/* An answer's rate-limit headers. others_in_flight / tokens_in_flight: calls to this endpoint
 * still in flight and their estimated tokens, which the provider may not have counted yet
 * (they are subtracted: conservative). A window whose reset moved on replaces the old one;
 * within the same window the smaller remaining and the later reset win (answers arrive out of
 * order, and a reset we guessed may be early). */
void lh_limiter_observe(lh_limiter_t *l, const lh_llm_ratelimit_t *rl, int others_in_flight,
			int64_t tokens_in_flight, int64_t now_us);
/* A 429 said: wait retry_after_ms before any call. */
void lh_limiter_block(lh_limiter_t *l, int64_t retry_after_ms, int64_t now_us);
/* After a call: the configured tokens bucket learns the actual usage vs the estimate. */
void lh_limiter_settle(lh_limiter_t *l, int64_t estimated, int64_t actual, int64_t now_us);

#endif
