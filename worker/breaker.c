#include "breaker.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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

int64_t lh_bucket_take_n(lh_bucket_t *b, double n, int64_t now_us)
{
	double need;
	if (b->per_us <= 0 || n <= 0)
		return 0;
	refill(b, now_us);
	need = fmin(n, b->burst);
	if (b->tokens >= need - 1e-9) {
		b->tokens -= n;
		return 0;
	}
	return (int64_t)ceil((need - b->tokens) / b->per_us - 1e-6);
}

void lh_bucket_adjust(lh_bucket_t *b, double n, int64_t now_us)
{
	if (b->per_us <= 0)
		return;
	refill(b, now_us);
	b->tokens = fmin(b->burst, b->tokens + n);
}

static void window_reset(lh_rl_window_t *w)
{
	w->remaining = -1;
	w->limit = -1;
	w->reset_us = 0;
	w->period_us = 0;
}

void lh_limiter_init(lh_limiter_t *l, double rpm, double tpm, int64_t now_us)
{
	memset(l, 0, sizeof(*l));
	lh_bucket_init(&l->rpm, rpm, rpm / 60, now_us);
	/* tokens: a minute's worth may go at once (one long prompt can be most of it) */
	lh_bucket_init(&l->tpm, tpm, tpm, now_us);
	window_reset(&l->requests);
	window_reset(&l->tokens);
	window_reset(&l->input_tokens);
	window_reset(&l->output_tokens);
}

/* A window past its reset has its limit again (or is unknown when the limit is), until a new
 * reset one period later: the next answer's headers will say better. */
static void window_roll(lh_rl_window_t *w, int64_t now_us)
{
	if (w->remaining >= 0 && now_us >= w->reset_us) {
		w->remaining = w->limit; /* -1 when never announced: nothing known */
		w->reset_us = now_us + w->period_us;
	}
}

/* 0 when need fits the window now, else when it will (its reset). */
static int64_t window_wait(lh_rl_window_t *w, double need, int64_t now_us)
{
	window_roll(w, now_us);
	if (w->remaining < 0 || need <= 0)
		return 0;
	if (w->limit >= 0 && need > w->limit)
		need = w->limit; /* a call bigger than the window waits for a full one */
	if (w->remaining >= need)
		return 0;
	return w->reset_us > now_us ? w->reset_us - now_us : 1000; /* reset unknown: poll */
}

static void window_take(lh_rl_window_t *w, double n)
{
	if (w->remaining >= 0)
		w->remaining = w->remaining > n ? w->remaining - n : 0;
}

int64_t lh_limiter_take(lh_limiter_t *l, int64_t est_in, int64_t est_out, int64_t now_us)
{
	int64_t wait = 0, w;
	double total = (double)(est_in + est_out);
	if (l->blocked_until_us > now_us)
		wait = l->blocked_until_us - now_us;
	if ((w = window_wait(&l->requests, 1, now_us)) > wait)
		wait = w;
	if ((w = window_wait(&l->tokens, total, now_us)) > wait)
		wait = w;
	if ((w = window_wait(&l->input_tokens, (double)est_in, now_us)) > wait)
		wait = w;
	if ((w = window_wait(&l->output_tokens, (double)est_out, now_us)) > wait)
		wait = w;
	if (wait == 0) {
		/* the configured buckets last, so a refusal above takes nothing from them */
		if ((w = lh_bucket_take(&l->rpm, now_us)) > 0)
			wait = w;
		else if ((w = lh_bucket_take_n(&l->tpm, total, now_us)) > 0) {
			lh_bucket_adjust(&l->rpm, 1, now_us); /* give the request back */
			wait = w;
		}
	}
	if (wait > 0) {
		l->waits++;
		return wait;
	}
	window_take(&l->requests, 1);
	window_take(&l->tokens, total);
	window_take(&l->input_tokens, (double)est_in);
	window_take(&l->output_tokens, (double)est_out);
	return 0;
}

static void window_observe(lh_rl_window_t *w, int64_t remaining, int64_t reset_ms, int64_t limit,
			   int others, int64_t now_us)
{
	int64_t reset_us;
	double left;
	if (limit >= 0)
		w->limit = (double)limit;
	if (remaining < 0)
		return;
	left = (double)remaining - others;
	if (left < 0)
		left = 0;
	/* a reset we were not told: assume a minute, the usual window */
	reset_us = now_us + (reset_ms >= 0 ? reset_ms : 60000) * 1000;
	if (reset_us - now_us > w->period_us)
		w->period_us = reset_us - now_us;
	window_roll(w, now_us);
	/* The same window (its reset within 250 ms of what we know, or earlier): keep the
	 * smaller remaining and the later reset — what we guessed when the window rolled over
	 * may be early, and an early guess means calls the provider refuses. A later reset is a
	 * new window: replace. */
	if (w->remaining >= 0 && reset_us <= w->reset_us + 250000) {
		if (left < w->remaining)
			w->remaining = left;
		if (reset_us > w->reset_us)
			w->reset_us = reset_us;
		return;
	}
	w->remaining = left;
	w->reset_us = reset_us;
}

void lh_limiter_observe(lh_limiter_t *l, const lh_llm_ratelimit_t *rl, int others_in_flight,
			int64_t tokens_in_flight, int64_t now_us)
{
	int tokens = tokens_in_flight > INT32_MAX ? INT32_MAX : (int)tokens_in_flight;
	if (!rl || !rl->present)
		return;
	l->observed++;
	window_observe(&l->requests, rl->requests_remaining, rl->requests_reset_ms,
		       rl->requests_limit, others_in_flight, now_us);
	window_observe(&l->tokens, rl->tokens_remaining, rl->tokens_reset_ms, rl->tokens_limit,
		       tokens, now_us);
	window_observe(&l->input_tokens, rl->input_tokens_remaining, rl->input_tokens_reset_ms, -1,
		       tokens, now_us);
	window_observe(&l->output_tokens, rl->output_tokens_remaining,
		       rl->output_tokens_reset_ms, -1, 0, now_us);
}

void lh_limiter_block(lh_limiter_t *l, int64_t retry_after_ms, int64_t now_us)
{
	int64_t until;
	if (retry_after_ms < 0)
		return;
	until = now_us + retry_after_ms * 1000;
	if (until > l->blocked_until_us)
		l->blocked_until_us = until;
}

void lh_limiter_settle(lh_limiter_t *l, int64_t estimated, int64_t actual, int64_t now_us)
{
	if (actual >= 0)
		lh_bucket_adjust(&l->tpm, (double)(estimated - actual), now_us);
}
