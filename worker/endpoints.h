/* endpoints.h — the models a worker's tier may call, in preference order (llm.models).
 *
 * Each endpoint is one model at one base URL with its own provider, key, prices, context
 * window, concurrency cap, rate limits, circuit breaker and limiter: a breaker opens for that
 * endpoint only, and an attempt whose endpoint is down (provider_down or timeout after the
 * provider's own retries, or an open breaker) moves on to the next endpoint of the list. The
 * attempt records the model that answered.
 *
 * llm.models is a JSON array; every field but "model" may be left out and then comes from the
 * single-model settings (llm.provider, llm.base_url, llm.api_key_env, llm.api_key_file, llm.price_*,
 * llm.context_window, llm.max_concurrency, llm.requests_per_minute, llm.tokens_per_minute):
 *   [{"model": "gpt-4o-mini", "provider": "openai", "base_url": "https://api.openai.com/v1",
 *     "api_key_env": "OPENAI_API_KEY", "api_key_file": "", "price_input": 0.15, "price_output": 0.6,
 *     "price_cached": 0.075, "context_window": 128000, "max_concurrency": 64,
 *     "requests_per_minute": 500, "tokens_per_minute": 200000}, ...]
 * An empty llm.models means one endpoint made of the single-model settings. */
#ifndef LH_WORKER_ENDPOINTS_H
#define LH_WORKER_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "err.h"
#include "llm.h"

#define LH_ENDPOINTS_MAX 8

typedef struct lh_endpoint {
	/* configuration (owned strings) */
	char *provider; /* "openai", "anthropic" or "scripted" */
	char *base_url; /* "" = the provider's default */
	char *model;
	char *api_key_env; /* "" = the provider's default variable */
	char *api_key_file; /* "" = none; else the key is read from this file (it wins) */
	double price_input, price_output, price_cached; /* USD per million tokens */
	int64_t context_window;				/* tokens */
	int64_t max_concurrency;			/* calls in flight; 0 = no cap */
	double requests_per_minute, tokens_per_minute;	/* 0 = no limit */
	/* runtime, owned by the worker's loop */
	lh_llm_provider_t *llm;
	lh_breaker_t breaker;
	lh_limiter_t limiter;
	int64_t inflight;
	int64_t tokens_inflight; /* estimated tokens of the calls in flight */
	bool answered;	  /* has answered once: its rate limits are known (or absent) */
	void *waiters;	  /* attempts waiting for a call slot (the worker's list) */
	uint64_t calls, failovers;
} lh_endpoint_t;

/* Parse llm.models (json may be NULL or "") into *ret_eps (new array of *ret_n, at most
 * LH_ENDPOINTS_MAX), missing fields from dflt (its strings are copied). Runtime fields are
 * zeroed. LH_ERR_CONFIG with the reason when the text is not such an array. */
lh_err_t lh_endpoints_parse(const char *json, const lh_endpoint_t *dflt, lh_endpoint_t **ret_eps,
			    size_t *ret_n, lh_error_t *err);
/* Frees the configuration strings and the array (not the providers). Accepts NULL. */
void lh_endpoints_free(lh_endpoint_t *eps, size_t n);

#endif
