/* llm_http_int.h — the call machinery shared by the HTTP model providers (llm_openai.c,
 * llm_anthropic.c), implemented in llm_http.c. Private to those files.
 *
 * A provider file describes its API with an lh_llm_http_api_t (where to POST, which headers,
 * how to build the body, parse a 2xx answer and classify an error status) and hands it to
 * lh_llm_http_new, which returns an lh_llm_provider_t whose call, cancel_all and free are
 * llm_http.c's. A call serializes the request once, POSTs it, classifies the answer and retries
 * retryable failures on an event timer following the official SDKs' rule: the error's
 * retriable flag (set by map_error from x-should-retry, then the status; by llm_http.c for
 * transport errors), at most opts.max_retries retries, a retry-after longer than
 * opts.max_retry_after_ms returned to the caller instead of waited for, else
 * lh_llm_retry_delay_ms (backoff with jitter).
 *
 * The done callback runs exactly once per call, on the event loop, never from inside the call
 * that started it; the call is unlinked from the provider before the callback runs, so the
 * callback may start new calls, cancel all calls or free the provider. */
#ifndef LH_LLM_HTTP_INT_H
#define LH_LLM_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "llm.h"

typedef struct lh_llm_http_api {
	const char *name;	  /* "openai": ops name, logs, "could not create %s provider" */
	const char *what;	  /* "chat completion": one call, in "could not complete %s" */
	const char *path;	  /* "/chat/completions": appended to base_url */
	const char *key_header;	  /* the api key's header line, one %s: "x-api-key: %s" */
	const char *fixed_header; /* a header line sent with every request, or NULL */
	/* When true, a call with a response schema keeps the schema's name and passes it to parse
	 * as answer_tool (structured output through a forced tool); otherwise answer_tool is NULL. */
	bool answer_by_tool;
	/* The request body (new reference), or NULL with err filled. req is borrowed. */
	json_t *(*build_body)(const lh_llm_req_t *req, lh_error_t *err);
	/* A 2xx body into ret_resp (finished by the caller), or LH_ERR_DECODE with err filled
	 * (class MALFORMED) and ret_resp untouched. body and answer_tool are borrowed. */
	lh_err_t (*parse)(const char *body, size_t len, const char *answer_tool,
			  lh_llm_resp_t *ret_resp, lh_llm_error_t *err);
	/* Classify a non-2xx answer; fills every field of ret_err. body and should_retry (the
	 * x-should-retry header) may be NULL. */
	void (*map_error)(long status, const char *body, size_t len, const char *should_retry,
			  long retry_after_ms, lh_llm_error_t *ret_err);
} lh_llm_http_api_t;

/* new. api is borrowed and must outlive the provider (a static table). http is borrowed and
 * must outlive the provider; retry timers run on its event base. base_url (trailing slashes
 * dropped), api_key and opts->extra_headers are copied; opts may be NULL (defaults, see
 * lh_llm_openai_opts_t). The api key lives only in the prebuilt key header line, is never
 * logged and is zeroed when the provider is freed. */
lh_llm_provider_t *lh_llm_http_new(const lh_llm_http_api_t *api, lh_http_t *http,
				   const char *base_url, const char *api_key,
				   const lh_llm_openai_opts_t *opts, lh_error_t *err);

/* Fill every field of ret_err for a non-2xx answer a provider's map_error has classified:
 * klass and retry from its table, then should_retry (the x-should-retry header, may be NULL)
 * overrides retry when it is "true" or "false"; the code follows klass (TIMEOUT, UNAVAILABLE for
 * PROVIDER_DOWN, TOO_LARGE, else HTTP); the message is "<what> failed with http status N" and
 * ": <detail>" when detail is not empty. what and detail are borrowed. */
void lh_llm_http_status_error(lh_llm_error_t *ret_err, const char *what, long status,
			      lh_llm_errclass_t klass, bool retry, const char *should_retry,
			      long retry_after_ms, const char *detail);

#endif
