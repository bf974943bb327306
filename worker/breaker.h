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

#endif
