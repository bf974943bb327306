/* llm.c — the provider-neutral parts of llm.h: dispatch, names, response cleanup, retry delay. */
#include "llm.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

lh_err_t lh_llm_call(lh_llm_provider_t *p, const lh_llm_req_t *req, lh_llm_done_cb cb,
		     void *opaque, lh_error_t *err)
{
	if (!p || !req || !cb)
		return lh_error_set(err, LH_ERR_INVALID, "could not call llm: %s",
				    !p ? "no provider" : !req ? "no request" : "no callback");
	if (!req->model || !*req->model)
		return lh_error_set(err, LH_ERR_INVALID, "could not call llm: no model");
	if (req->n_messages == 0 || !req->messages)
		return lh_error_set(err, LH_ERR_INVALID, "could not call llm: no messages");
	if (req->tool_choice == LH_LLM_TOOL_CHOICE_NAMED &&
	    (!req->tool_choice_name || !*req->tool_choice_name))
		return lh_error_set(err, LH_ERR_INVALID,
				    "could not call llm: tool_choice names no tool");
	return p->ops->call(p, req, cb, opaque, err);
}

void lh_llm_cancel_all(lh_llm_provider_t *p)
{
	if (p && p->ops->cancel_all)
		p->ops->cancel_all(p);
}

lh_llm_provider_t *lh_llm_provider_free(lh_llm_provider_t *p)
{
	if (p)
		p->ops->free(p);
	return NULL;
}

void lh_llm_tool_call_finish(lh_llm_tool_call_t *call)
{
	if (!call)
		return;
	free(call->id);
	free(call->name);
	free(call->arguments_json);
	json_decref(call->arguments);
	memset(call, 0, sizeof(*call));
}

void lh_llm_resp_finish(lh_llm_resp_t *resp)
{
	if (!resp)
		return;
	free(resp->finish_raw);
	free(resp->content);
	free(resp->refusal);
	for (size_t i = 0; resp->tool_calls && i < resp->n_tool_calls; i++)
		lh_llm_tool_call_finish(&resp->tool_calls[i]);
	free(resp->tool_calls);
	free(resp->model);
	free(resp->id);
	memset(resp, 0, sizeof(*resp));
}

const char *lh_llm_errclass_name(lh_llm_errclass_t klass)
{
	static const char *names[LH_LLM_ERR__COUNT] = {
		"none",		   "retryable", "rate_limited", "provider_down", "invalid_request",
		"auth",		   "too_large", "malformed",	"timeout",	 "cancelled"};
	if ((int)klass < 0 || klass >= LH_LLM_ERR__COUNT)
		return "unknown";
	return names[klass];
}

const char *lh_llm_finish_name(lh_llm_finish_t finish)
{
	static const char *names[] = {"stop",	       "length",  "tool_calls",
				      "content_filter", "refusal", "other"};
	if ((int)finish < 0 || finish > LH_LLM_FINISH_OTHER)
		return "other";
	return names[finish];
}

const char *lh_llm_role_name(lh_llm_role_t role)
{
	switch (role) {
	case LH_LLM_ROLE_SYSTEM:
		return "system";
	case LH_LLM_ROLE_USER:
		return "user";
	case LH_LLM_ROLE_ASSISTANT:
		return "assistant";
	case LH_LLM_ROLE_TOOL:
		return "tool";
	}
	return "user";
}

/* splitmix64: a well-mixed 64-bit value from a seed; plenty for jitter. */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

long lh_llm_retry_delay_ms(int retry, long retry_after_ms, uint64_t jitter_seed, long base_ms,
			   long cap_ms)
{
	double d, frac;
	if (retry_after_ms >= 0)
		return retry_after_ms;
	if (base_ms <= 0)
		base_ms = 500;
	if (cap_ms <= 0)
		cap_ms = 8000;
	d = (double)base_ms;
	for (int i = 0; i < retry && d < (double)cap_ms; i++)
		d *= 2;
	if (d > (double)cap_ms)
		d = (double)cap_ms;
	frac = (double)(mix64(jitter_seed) >> 11) / (double)(1ULL << 53); /* [0, 1) */
	return (long)(d * (1.0 - 0.25 * frac));
}

int64_t lh_llm_estimate_tokens(size_t bytes) { return (int64_t)((bytes + 3) / 4); }

lh_err_t lh_llm_answer_json(const char *text, size_t len, const char *what, json_t **ret_root,
			    lh_error_t *err)
{
	json_error_t jerr;
	size_t start = 0, end = len;
	while (start < end && isspace((unsigned char)text[start]))
		start++;
	if (end - start >= 3 && memcmp(text + start, "```", 3) == 0) {
		const char *nl = memchr(text + start, '\n', end - start);
		if (!nl)
			return lh_error_set(err, LH_ERR_DECODE,
					    "could not parse the %s: an unterminated code fence", what);
		start = (size_t)(nl - text) + 1;
		while (end > start && isspace((unsigned char)text[end - 1]))
			end--;
		if (end - start < 3 || memcmp(text + end - 3, "```", 3) != 0)
			return lh_error_set(err, LH_ERR_DECODE,
					    "could not parse the %s: an unterminated code fence", what);
		end -= 3;
	}
	if (!(*ret_root = json_loadb(text + start, end - start, JSON_REJECT_DUPLICATES, &jerr)))
		return lh_error_set(err, LH_ERR_DECODE, "could not parse the %s: %s", what,
				    jerr.text);
	return LH_OK;
}
