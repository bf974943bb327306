/* llm.h — a provider-neutral LLM call: request, response, error classes, and a provider vtable.
 *
 * A provider answers asynchronously: lh_llm_call() returns at once and the done callback runs
 * later on the provider's event loop, exactly once, never from inside lh_llm_call(). Providers:
 *   lh_llm_openai_new   — OpenAI Chat Completions and compatible servers (llm_openai.c), over
 *                         lh_http_t; retries retryable failures itself on an event timer.
 *   lh_llm_anthropic_new — Anthropic Messages (llm_anthropic.c), over lh_http_t, the same retry
 *                         rule; structured output through a forced tool.
 *   lh_llm_scripted_new — in-process, deterministic, zero latency (llm_scripted.c), for demos,
 *                         benchmarks and tests without an API key.
 *
 * Ownership: a request is borrowed for the duration of lh_llm_call() only (providers copy or
 * serialize what they need). A response handed to the callback is owned by the provider and
 * freed after the callback returns; the callback may take any pointer field by setting it to
 * NULL. Not thread-safe: one provider per event loop. */
#ifndef LH_LLM_H
#define LH_LLM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct event_base;
typedef struct lh_http lh_http_t;

typedef enum lh_llm_role {
	LH_LLM_ROLE_SYSTEM = 0,
	LH_LLM_ROLE_USER,
	LH_LLM_ROLE_ASSISTANT,
	LH_LLM_ROLE_TOOL
} lh_llm_role_t;

/* A tool call the model asked for. In a response every field is owned by the response; in a
 * request (an assistant message replayed in the history) every field is borrowed. */
typedef struct lh_llm_tool_call {
	char *id;
	char *name;
	char *arguments_json; /* the arguments exactly as the provider sent them (a JSON text) */
	json_t *arguments;    /* parsed arguments; NULL when arguments_json is not valid JSON */
} lh_llm_tool_call_t;

typedef struct lh_llm_message {
	lh_llm_role_t role;
	const char *content;	  /* may be NULL for an assistant message that only calls tools */
	const char *tool_call_id; /* role TOOL: the call this message answers */
	const lh_llm_tool_call_t *tool_calls; /* role ASSISTANT: calls it made */
	size_t n_tool_calls;
} lh_llm_message_t;

typedef struct lh_llm_tool {
	const char *name;
	const char *description;
	json_t *parameters; /* JSON Schema of the arguments; borrowed; NULL = {"type":"object"} */
	bool strict;
} lh_llm_tool_t;

typedef enum lh_llm_tool_choice {
	LH_LLM_TOOL_CHOICE_DEFAULT = 0, /* not sent: the provider's default (auto when tools) */
	LH_LLM_TOOL_CHOICE_AUTO,
	LH_LLM_TOOL_CHOICE_NONE,
	LH_LLM_TOOL_CHOICE_REQUIRED,
	LH_LLM_TOOL_CHOICE_NAMED /* force tool_choice_name */
} lh_llm_tool_choice_t;

typedef struct lh_llm_response_schema {
	const char *name; /* [a-zA-Z0-9_-], up to 64 characters */
	json_t *schema;	  /* borrowed */
	bool strict;
} lh_llm_response_schema_t;

typedef struct lh_llm_req {
	const char *model;
	const lh_llm_message_t *messages;
	size_t n_messages;
	const lh_llm_tool_t *tools;
	size_t n_tools;
	lh_llm_tool_choice_t tool_choice;
	const char *tool_choice_name;
	const lh_llm_response_schema_t *response_schema; /* NULL = free text */
	long max_output_tokens;				  /* 0 = not sent */
	bool set_temperature;				  /* temperature is sent only if set */
	double temperature;
	long timeout_ms; /* whole HTTP exchange per try; 0 = the provider's default */
	/* Hints for the scripted provider (other providers ignore them): the worker's task kind
	 * ("plan", "join", "act", ...) and the plan's goal. */
	const char *task_kind;
	const char *goal;
} lh_llm_req_t;

typedef enum lh_llm_finish {
	LH_LLM_FINISH_STOP = 0,
	LH_LLM_FINISH_LENGTH,
	LH_LLM_FINISH_TOOL_CALLS,
	LH_LLM_FINISH_CONTENT_FILTER,
	LH_LLM_FINISH_REFUSAL,
	LH_LLM_FINISH_OTHER
} lh_llm_finish_t;

typedef struct lh_llm_usage {
	int64_t input_tokens;	  /* including cached */
	int64_t output_tokens;	  /* including reasoning */
	int64_t cached_tokens;
	int64_t reasoning_tokens;
} lh_llm_usage_t;

/* What a provider's rate-limit headers said about one answer (llm_ratelimit.c). Remaining
 * counts are what is left after the call, -1 when not reported; resets are milliseconds from
 * when the answer was read, -1 when not reported. present is false when no header was there
 * (in-process providers, servers without limits): then nothing else means anything. */
typedef struct lh_llm_ratelimit {
	bool present;
	int64_t requests_limit, tokens_limit;
	int64_t requests_remaining, tokens_remaining;
	int64_t input_tokens_remaining, output_tokens_remaining; /* Anthropic only */
	int64_t requests_reset_ms, tokens_reset_ms;
	int64_t input_tokens_reset_ms, output_tokens_reset_ms;
} lh_llm_ratelimit_t;

typedef struct lh_llm_resp {
	lh_llm_finish_t finish;
	char *finish_raw; /* the provider's own word ("stop", "end_turn"); may be NULL */
	char *content;	  /* text answer; NULL when none */
	char *refusal;	  /* the model's refusal text; NULL when none */
	lh_llm_tool_call_t *tool_calls;
	size_t n_tool_calls;
	lh_llm_usage_t usage;
	char *model; /* the model that answered */
	char *id;    /* the provider's response id; may be NULL */
	double latency_ms; /* from lh_llm_call to the callback, retries included */
	int attempts;	   /* HTTP tries made (1 = no retry); 1 for in-process providers */
	lh_llm_ratelimit_t ratelimit; /* of the last try's answer */
} lh_llm_resp_t;

/* Frees every field still set (NULL fields are skipped) and zeroes the struct. */
void lh_llm_resp_finish(lh_llm_resp_t *resp);
void lh_llm_tool_call_finish(lh_llm_tool_call_t *call);

typedef enum lh_llm_errclass {
	LH_LLM_ERR_NONE = 0,
	LH_LLM_ERR_RETRYABLE,	    /* transient: 409, 5xx, broken connection */
	LH_LLM_ERR_RATE_LIMITED,    /* 429; retry_after_ms tells when */
	LH_LLM_ERR_PROVIDER_DOWN,   /* 502/503/529, cannot connect */
	LH_LLM_ERR_INVALID_REQUEST, /* 400/404/422: fix the request, do not retry */
	LH_LLM_ERR_AUTH,	    /* 401/403, or a quota that retrying will not restore */
	LH_LLM_ERR_TOO_LARGE,	    /* 413, context length exceeded, response over the cap */
	LH_LLM_ERR_MALFORMED,	    /* a 2xx whose body does not parse */
	LH_LLM_ERR_TIMEOUT,	    /* 408/504, connect, first-byte or total timeout */
	LH_LLM_ERR_CANCELLED,	    /* the provider was freed or cancelled the call */
	LH_LLM_ERR__COUNT
} lh_llm_errclass_t;

typedef struct lh_llm_error {
	lh_llm_errclass_t klass;
	long http_status;    /* 0 when no response arrived */
	long retry_after_ms; /* -1 when the provider gave none */
	int attempts;	     /* HTTP tries made */
	lh_error_t error;    /* code, message; error.retriable says whether retrying may help */
	lh_llm_ratelimit_t ratelimit; /* of the last try's answer (a 429 usually has them) */
} lh_llm_error_t;

/* "retryable", "rate_limited", ... ("none" for LH_LLM_ERR_NONE); static strings. */
const char *lh_llm_errclass_name(lh_llm_errclass_t klass);
const char *lh_llm_finish_name(lh_llm_finish_t finish);
const char *lh_llm_role_name(lh_llm_role_t role);

/* A model's JSON answer (len bytes), tolerating white space and one Markdown code fence around
 * it (```json ... ```), parsed with duplicate keys refused. what names the answer in the error
 * ("could not parse the WHAT: ..."): LH_ERR_DECODE for an unterminated fence or bad JSON. New
 * reference in *ret_root on success. Shared by the strict answer parsers (reconcile, extract,
 * summarize). */
lh_err_t lh_llm_answer_json(const char *text, size_t len, const char *what, json_t **ret_root,
			    lh_error_t *err);

/* Exactly one of resp and err is non-NULL. Both are borrowed for the callback (see the top of
 * this file for taking fields out of resp). */
typedef void (*lh_llm_done_cb)(lh_llm_resp_t *resp, const lh_llm_error_t *err, void *opaque);

typedef struct lh_llm_provider lh_llm_provider_t;

typedef struct lh_llm_provider_ops {
	const char *name; /* "openai", "scripted" */
	lh_err_t (*call)(lh_llm_provider_t *p, const lh_llm_req_t *req, lh_llm_done_cb cb,
			 void *opaque, lh_error_t *err);
	void (*cancel_all)(lh_llm_provider_t *p);
	void (*free)(lh_llm_provider_t *p);
} lh_llm_provider_ops_t;

struct lh_llm_provider {
	const lh_llm_provider_ops_t *ops;
};

/* Start a call. LH_OK: cb will run exactly once, later, on the loop. Any error (an invalid
 * request, the provider shutting down): cb will not run. */
lh_err_t lh_llm_call(lh_llm_provider_t *p, const lh_llm_req_t *req, lh_llm_done_cb cb,
		     void *opaque, lh_error_t *err);
/* Pending calls end now, inside this call, with LH_LLM_ERR_CANCELLED. */
void lh_llm_cancel_all(lh_llm_provider_t *p);
/* Cancels pending calls (their callbacks run), then frees. Accepts NULL; returns NULL. */
lh_llm_provider_t *lh_llm_provider_free(lh_llm_provider_t *p);

/* ---- retries (the official SDKs' rule) --------------------------------------------------- */

/* Delay before retry number `retry` (0 for the first retry): retry_after_ms when >= 0, else
 * min(base_ms * 2^retry, cap_ms) reduced by up to 25 % jitter drawn from jitter_seed
 * (deterministic for a given seed). base_ms/cap_ms of 0 mean 500 and 8000. */
long lh_llm_retry_delay_ms(int retry, long retry_after_ms, uint64_t jitter_seed, long base_ms,
			   long cap_ms);

/* ---- OpenAI Chat Completions (llm_openai.c) ---------------------------------------------- */

typedef struct lh_llm_openai_opts {
	int max_retries;	   /* default 2; -1 = none */
	long timeout_ms;	   /* per try, whole exchange; 0 = 600 s */
	long connect_timeout_ms;   /* 0 = the http client's default */
	long first_byte_timeout_ms; /* 0 = none (a non-streamed answer arrives all at once) */
	long retry_base_ms;	   /* 0 = 500 */
	long retry_cap_ms;	   /* 0 = 8000 */
	long max_retry_after_ms;   /* a longer retry-after is not waited for: the error is
				      returned with it; 0 = 60 s */
	size_t max_response_bytes; /* 0 = 16 MiB */
	uint64_t jitter_seed;	   /* 0 = from the clock */
	const char *const *extra_headers; /* copied; "Name: value" (e.g. OpenAI-Organization) */
	size_t n_extra_headers;
} lh_llm_openai_opts_t;

/* new. http is borrowed and must outlive the provider (free the provider first); retry timers
 * run on http's event base. base_url like "http://127.0.0.1:8080/v1" (copied). api_key is
 * copied, sent as "Authorization: Bearer KEY" when non-NULL and non-empty, and never logged.
 * opts may be NULL (defaults). */
lh_llm_provider_t *lh_llm_openai_new(lh_http_t *http, const char *base_url, const char *api_key,
				     const lh_llm_openai_opts_t *opts, lh_error_t *err);

/* The Chat Completions request body for req (new reference), or NULL with err filled. */
json_t *lh_llm_openai_build_body(const lh_llm_req_t *req, lh_error_t *err);

/* Parse a 2xx Chat Completions body into ret_resp (caller finishes it with
 * lh_llm_resp_finish). On failure returns LH_ERR_DECODE, fills err (class MALFORMED) and leaves
 * ret_resp untouched. */
lh_err_t lh_llm_openai_parse_response(const char *body, size_t len, lh_llm_resp_t *ret_resp,
				      lh_llm_error_t *err);

/* Classify a non-2xx answer: status, the body (may be NULL), the x-should-retry header (may be
 * NULL) and the parsed retry-after. Fills every field of ret_err. */
void lh_llm_openai_map_error(long status, const char *body, size_t len, const char *should_retry,
			     long retry_after_ms, lh_llm_error_t *ret_err);

/* ---- scripted (llm_scripted.c) ----------------------------------------------------------- */

/* new. base is borrowed. Answers from a zero-delay timer on base, never inside lh_llm_call. */
lh_llm_provider_t *lh_llm_scripted_new(struct event_base *base, lh_error_t *err);

/* The deterministic answer the scripted provider and tests/fakellm give (new string, free()):
 *   kind "plan": goal's "lh-script: {...}" line verbatim if there is one (in goal, else in
 *                input), otherwise a 4-task diamond plan as JSON;
 *   kind "join": {"decision":"finish","answer":...} built from input;
 *   kind "summarize" with a rolling-summary prompt (worker/summarize.h: "New events (log
 *                offsets ..."): {"play_by_play", "artifacts": [], "breadcrumbs": "",
 *                "open_questions": ""}, the play-by-play naming the events;
 *   anything else: a short text naming the instructions (input).
 * goal and input may be NULL. */
char *lh_llm_scripted_answer(const char *kind, const char *goal, const char *input);

/* The task kind of a conversation, the way tests/fakellm sees it: "plan" when the first system
 * message starts with "You are the planner", "join" for "You are the joiner", "replan" for "You
 * are the replanner", "summarize" for "You keep the running summary", else "act". */
const char *lh_llm_scripted_kind(const char *system_text);

/* The goal in text: the rest of the first line starting with "Goal: " (new string), or NULL. */
char *lh_llm_scripted_goal(const char *text);

/* Deterministic token estimate: ceil(bytes / 4), at least 1 for non-empty text. */
int64_t lh_llm_estimate_tokens(size_t bytes);

/* ---- Anthropic Messages (llm_anthropic.c) ------------------------------------------------ */

/* The Anthropic provider takes the OpenAI provider's options unchanged (retries, timeouts,
 * caps, jitter; extra_headers for e.g. "anthropic-beta: ..."). */
typedef lh_llm_openai_opts_t lh_llm_anthropic_opts_t;

#define LH_LLM_ANTHROPIC_VERSION "2023-06-01"	/* the anthropic-version header */
#define LH_LLM_ANTHROPIC_DEFAULT_MAX_TOKENS 4096 /* max_tokens is required; sent when req gives 0 */

/* new. Like lh_llm_openai_new, for the Anthropic Messages API: POST {base_url}/messages (base_url
 * like "http://127.0.0.1:8080/v1", copied). api_key is copied, sent as "x-api-key: KEY" when
 * non-NULL and non-empty, never logged, and zeroed when the provider is freed. The same retry
 * rule (x-should-retry, 408/409/429/5xx/529, retry-after, backoff with jitter). opts may be
 * NULL. */
lh_llm_provider_t *lh_llm_anthropic_new(lh_http_t *http, const char *base_url, const char *api_key,
					const lh_llm_openai_opts_t *opts, lh_error_t *err);

/* The Messages request body for req (new reference), or NULL with err filled.
 *   - system messages are joined (blank line between) into the top-level "system";
 *   - user and assistant messages become content blocks; tool results (role TOOL) go back in a
 *     user message as {type:"tool_result", tool_use_id, content} (is_error is never sent:
 *     lh_llm_message_t has no flag for it); assistant tool calls as {type:"tool_use", id, name,
 *     input} where input is the parsed arguments and must be a JSON object; consecutive
 *     messages of one role are merged into one message, tool results first;
 *   - tools as {name, description, input_schema}; tool_choice AUTO {type:auto}, NONE
 *     {type:none}, REQUIRED {type:any}, NAMED {type:tool, name};
 *   - structured output: the Messages API has no response_format, so a response schema becomes
 *     one more tool named after it (response_schema->name) whose input_schema is the schema
 *     (which must be an object schema), and tool_choice forces it ({type:tool, name}) unless the
 *     request chose otherwise (AUTO/REQUIRED: {type:any}, the model may call a real tool
 *     instead; NAMED as given; NONE is an error). The answer is read back from that tool_use's
 *     input (see lh_llm_anthropic_parse_response);
 *   - max_tokens = max_output_tokens, or LH_LLM_ANTHROPIC_DEFAULT_MAX_TOKENS when 0. */
json_t *lh_llm_anthropic_build_body(const lh_llm_req_t *req, lh_error_t *err);

/* Parse a 2xx Messages body into ret_resp (caller finishes it with lh_llm_resp_finish).
 *   - content: the text blocks joined; NULL when none. When answer_tool (the response schema's
 *     name, or NULL) names a tool_use block, that block's input is the answer: content is its
 *     JSON text, it is not listed in tool_calls, and finish is STOP although stop_reason is
 *     "tool_use";
 *   - tool_calls: the other tool_use blocks; arguments is the input as sent (an object unless
 *     the model misbehaved), arguments_json its compact JSON text;
 *   - finish: end_turn, stop_sequence -> STOP; max_tokens, model_context_window_exceeded ->
 *     LENGTH; tool_use -> TOOL_CALLS; refusal -> REFUSAL, even with an answer tool (the
 *     text, if any, moves to refusal, content is NULL); pause_turn and anything else -> OTHER;
 *     finish_raw keeps the word;
 *   - usage: input_tokens = input_tokens + cache_creation_input_tokens +
 *     cache_read_input_tokens (Anthropic counts the three apart; lh_llm_usage_t's input is "all
 *     input, cached included"), cached_tokens = cache_read_input_tokens, output_tokens as sent,
 *     reasoning_tokens 0 (not reported separately);
 *   - thinking, redacted_thinking and server tool blocks are skipped.
 * On failure returns LH_ERR_DECODE, fills err (class MALFORMED) and leaves ret_resp untouched. */
lh_err_t lh_llm_anthropic_parse_response(const char *body, size_t len, const char *answer_tool,
					 lh_llm_resp_t *ret_resp, lh_llm_error_t *err);

/* Classify a non-2xx Messages answer ({"type":"error","error":{"type","message"}}): 429
 * rate_limit_error -> RATE_LIMITED; 529 overloaded_error (or overloaded_error with any 5xx),
 * 502, 503 -> PROVIDER_DOWN; 500 and other 5xx -> RETRYABLE; 408, 504 -> TIMEOUT; 409 ->
 * RETRYABLE; 401, 402, 403 -> AUTH; 413 and a 400 "prompt is too long" -> TOO_LARGE; other 4xx
 * -> INVALID_REQUEST. x-should-retry ("true"/"false") overrides retriable. Fills every field of
 * ret_err. */
void lh_llm_anthropic_map_error(long status, const char *body, size_t len, const char *should_retry,
				long retry_after_ms, lh_llm_error_t *ret_err);

/* ---- rate-limit headers (llm_ratelimit.c) ----------------------------------------------- */

/* Returns the value of one response header (case-insensitive name), or NULL when absent. */
typedef const char *(*lh_llm_header_fn)(void *ctx, const char *name);

/* Read both APIs' rate-limit headers through get into *ret (every field written):
 *   OpenAI    x-ratelimit-{limit,remaining,reset}-{requests,tokens}, resets as durations
 *             ("6m0s", "1s", "20ms", "59.988s", "1h2m3.5s");
 *   Anthropic anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
 *             remaining,reset}, resets as RFC 3339 times (made relative to now_unix_ms).
 * Either reset format is accepted in either family. A value that does not parse counts as
 * absent. When both families report a dimension, the smaller remaining wins. */
void lh_llm_ratelimit_read(lh_llm_ratelimit_t *ret, lh_llm_header_fn get, void *ctx,
			   int64_t now_unix_ms);

/* A Go-style duration ("6m0s", "1.5s", "20ms", "300us", "1h") in milliseconds, rounded up;
 * -1 when s is not one (or exceeds ~31 years). "0" alone is 0. */
int64_t lh_llm_parse_duration_ms(const char *s);

/* An RFC 3339 date-time ("2024-05-01T12:00:30Z", "...30.250+02:00") as Unix milliseconds in
 * *ret_unix_ms; LH_ERR_INVALID when s is not one (*ret_unix_ms untouched). */
lh_err_t lh_llm_parse_rfc3339_ms(const char *s, int64_t *ret_unix_ms);

/* A non-negative decimal count; -1 when s is not one. */
int64_t lh_llm_parse_count(const char *s);

#endif
