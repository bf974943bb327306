#include "breaker.h"

#include <math.h>

void lh_breaker_init(lh_breaker_t *b, int threshold, int64_t cooldown_us)
{
	*b = (lh_breaker_t){.threshold = threshold, .cooldown_us = cooldown_us};
}

bool lh_breaker_allow(lh_breaker_t *b, int64_t now_us)
{
	switch (b->state) {
	case LH_BREAKER_CLOSED:
		return true;
	case LH_BREAKER_OPEN:
		if (now_us - b->opened_us < b->cooldown_us)
			return false;
		b->state = LH_BREAKER_HALF_OPEN;
		b->probing = true;
		return true;
	case LH_BREAKER_HALF_OPEN:
	default:
		if (b->probing)
			return false;
		b->probing = true;
		return true;
	}
}

static void trip(lh_breaker_t *b, int64_t now_us)
{
	b->state = LH_BREAKER_OPEN;
	b->opened_us = now_us;
	b->probing = false;
	b->failures = 0;
	b->opens++;
}

void lh_breaker_record(lh_breaker_t *b, bool failure, int64_t now_us)
{
	switch (b->state) {
	case LH_BREAKER_CLOSED:
		if (!failure)
			b->failures = 0;
		else if (b->threshold > 0 && ++b->failures >= b->threshold)
			trip(b, now_us);
		break;
	case LH_BREAKER_HALF_OPEN:
		if (failure)
			trip(b, now_us);
		else {
			b->state = LH_BREAKER_CLOSED;
			b->failures = 0;
			b->probing = false;
		}
		break;
	case LH_BREAKER_OPEN:
	default:
		/* a call that started before the breaker opened: it says nothing new */
		break;
	}
}

int64_t lh_breaker_wait_us(const lh_breaker_t *b, int64_t now_us)
{
	int64_t left;
	if (b->state != LH_BREAKER_OPEN)
		return 0;
	left = b->opened_us + b->cooldown_us - now_us;
	return left > 0 ? left : 0;
}

const char *lh_breaker_state_name(lh_breaker_state_t s)
{
	return s == LH_BREAKER_OPEN ? "open" : s == LH_BREAKER_HALF_OPEN ? "half_open" : "closed";
}

void lh_bucket_init(lh_bucket_t *b, double per_minute, double burst, int64_t now_us)
{
	b->per_us = per_minute > 0 ? per_minute / 60e6 : 0;
	b->burst = burst >= 1 ? burst : 1;
	b->tokens = b->burst;
	b->last_us = now_us;
}

static void refill(lh_bucket_t *b, int64_t now_us)
{
	if (now_us > b->last_us) {
		b->tokens = fmin(b->burst, b->tokens + (double)(now_us - b->last_us) * b->per_us);
		b->last_us = now_us;
	}
}

int64_t lh_bucket_take(lh_bucket_t *b, int64_t now_us)
{
	if (b->per_us <= 0)
		return 0;
	refill(b, now_us);
	if (b->tokens >= 1 - 1e-9) { /* refills add up in floating point */
		b->tokens = fmax(0, b->tokens - 1);
		return 0;
	}
	return (int64_t)ceil((1 - b->tokens) / b->per_us - 1e-6);
}

void lh_bucket_observe_remaining(lh_bucket_t *b, double remaining, int64_t now_us)
{
	if (b->per_us <= 0 || remaining < 0)
		return;
	refill(b, now_us);
	if (remaining < b->tokens)
		b->tokens = remaining;
}
