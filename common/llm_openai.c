/* llm_openai.c — OpenAI Chat Completions (and compatible servers: vLLM, llama.cpp, Ollama,
 * OpenRouter): the request body, the response parser and the error table.
 *
 * The call machinery (llm_http.c) POSTs the body to {base_url}/chat/completions, classifies the
 * answer with these and retries retryable failures on an event timer following the official
 * SDKs' rule (x-should-retry, then 408/409/429/5xx and connection errors; retry-after-ms /
 * retry-after, else exponential backoff with jitter). The API key is kept only in the prebuilt
 * Authorization header line, never logged, and zeroed when the provider is freed. */
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_http_int.h"

#define PROVIDER_MSG_MAX 300

/* ---- request body ------------------------------------------------------------------------ */

static json_t *tool_call_json(const lh_llm_tool_call_t *tc, lh_error_t *err)
{
	json_t *args;
	if (!tc->id || !tc->name) {
		lh_error_set(err, LH_ERR_INVALID, "could not build chat request: tool call without %s",
			     !tc->id ? "id" : "name");
		return NULL;
	}
	if (tc->arguments_json) {
		args = json_string(tc->arguments_json);
	} else if (tc->arguments) {
		char *s = json_dumps(tc->arguments, JSON_COMPACT | JSON_ENCODE_ANY);
		args = s ? json_string(s) : NULL;
		free(s);
	} else {
		args = json_string("{}");
	}
	if (!args) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build chat request: tool call arguments are not valid UTF-8");
		return NULL;
	}
	return json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", tc->id, "type", "function", "function",
			 "name", tc->name, "arguments", args);
}

static json_t *message_json(const lh_llm_message_t *m, size_t i, lh_error_t *err)
{
	json_t *msg, *calls;
	const char *role = lh_llm_role_name(m->role);

	if (m->role == LH_LLM_ROLE_ASSISTANT) {
		if (!m->content && m->n_tool_calls == 0) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: message %zu is empty", i);
			return NULL;
		}
		msg = json_pack("{s:s, s:o}", "role", role,
				"content", m->content ? json_string(m->content) : json_null());
		if (!msg)
			goto out_utf8;
		if (m->n_tool_calls == 0)
			return msg;
		calls = json_array();
		json_object_set_new(msg, "tool_calls", calls);
		for (size_t k = 0; k < m->n_tool_calls; k++) {
			json_t *tc = tool_call_json(&m->tool_calls[k], err);
			if (!tc) {
				json_decref(msg);
				return NULL;
			}
			json_array_append_new(calls, tc);
		}
		return msg;
	}
	if (!m->content) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build chat request: message %zu (%s) has no content", i, role);
		return NULL;
	}
	if (m->role == LH_LLM_ROLE_TOOL) {
		if (!m->tool_call_id) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: tool message %zu has no tool_call_id",
				     i);
			return NULL;
		}
		msg = json_pack("{s:s, s:s, s:s}", "role", role, "tool_call_id", m->tool_call_id,
				"content", m->content);
	} else {
		msg = json_pack("{s:s, s:s}", "role", role, "content", m->content);
	}
	if (msg)
		return msg;
out_utf8:
	lh_error_set(err, LH_ERR_INVALID,
		     "could not build chat request: message %zu is not valid UTF-8", i);
	return NULL;
}

static json_t *tool_json(const lh_llm_tool_t *t, size_t i, lh_error_t *err)
{
	json_t *fn;
	if (!t->name || !*t->name) {
		lh_error_set(err, LH_ERR_INVALID, "could not build chat request: tool %zu has no name",
			     i);
		return NULL;
	}
	fn = json_pack("{s:s}", "name", t->name);
	if (!fn)
		goto out_utf8;
	if (t->description) {
		json_t *d = json_string(t->description);
		if (!d) {
			json_decref(fn);
			goto out_utf8;
		}
		json_object_set_new(fn, "description", d);
	}
	json_object_set_new(fn, "parameters",
			    t->parameters ? json_incref(t->parameters)
					  : json_pack("{s:s}", "type", "object"));
	json_object_set_new(fn, "strict", json_boolean(t->strict));
	return json_pack("{s:s, s:o}", "type", "function", "function", fn);
out_utf8:
	lh_error_set(err, LH_ERR_INVALID,
		     "could not build chat request: tool %zu is not valid UTF-8", i);
	return NULL;
}

json_t *lh_llm_openai_build_body(const lh_llm_req_t *req, lh_error_t *err)
{
	json_t *body, *msgs, *tools;

	if (!req || !req->model || !req->messages || req->n_messages == 0) {
		lh_error_set(err, LH_ERR_INVALID, "could not build chat request: %s",
			     !req || !req->model ? "no model" : "no messages");
		return NULL;
	}
	body = json_pack("{s:s}", "model", req->model);
	if (!body) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build chat request: model name is not valid UTF-8");
		return NULL;
	}
	msgs = json_array();
	json_object_set_new(body, "messages", msgs);
	for (size_t i = 0; i < req->n_messages; i++) {
		json_t *m = message_json(&req->messages[i], i, err);
		if (!m)
			goto out_body;
		json_array_append_new(msgs, m);
	}
	if (req->n_tools > 0) {
		tools = json_array();
		json_object_set_new(body, "tools", tools);
		for (size_t i = 0; i < req->n_tools; i++) {
			json_t *t = tool_json(&req->tools[i], i, err);
			if (!t)
				goto out_body;
			json_array_append_new(tools, t);
		}
	}
	switch (req->tool_choice) {
	case LH_LLM_TOOL_CHOICE_DEFAULT:
		break;
	case LH_LLM_TOOL_CHOICE_AUTO:
		json_object_set_new(body, "tool_choice", json_string("auto"));
		break;
	case LH_LLM_TOOL_CHOICE_NONE:
		json_object_set_new(body, "tool_choice", json_string("none"));
		break;
	case LH_LLM_TOOL_CHOICE_REQUIRED:
		json_object_set_new(body, "tool_choice", json_string("required"));
		break;
	case LH_LLM_TOOL_CHOICE_NAMED: {
		json_t *tc;
		if (!req->tool_choice_name) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: tool_choice names no tool");
			goto out_body;
		}
		tc = json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name",
			       req->tool_choice_name);
		if (!tc) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: tool_choice is not valid UTF-8");
			goto out_body;
		}
		json_object_set_new(body, "tool_choice", tc);
		break;
	}
	}
	if (req->response_schema) {
		const lh_llm_response_schema_t *rs = req->response_schema;
		json_t *rf;
		if (!rs->name || !rs->schema) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: response schema without %s",
				     !rs->name ? "name" : "schema");
			goto out_body;
		}
		rf = json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema",
			       "name", rs->name, "schema", rs->schema, "strict", rs->strict);
		if (!rf) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build chat request: response schema name is not "
				     "valid UTF-8");
			goto out_body;
		}
		json_object_set_new(body, "response_format", rf);
	}
	if (req->max_output_tokens > 0)
		json_object_set_new(body, "max_completion_tokens",
				    json_integer(req->max_output_tokens));
	if (req->set_temperature)
		json_object_set_new(body, "temperature", json_real(req->temperature));
	return body;

out_body:
	json_decref(body);
	return NULL;
}

/* ---- response parsing -------------------------------------------------------------------- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static lh_llm_finish_t finish_from(const char *s)
{
	if (!s)
		return LH_LLM_FINISH_OTHER;
	if (strcmp(s, "stop") == 0)
		return LH_LLM_FINISH_STOP;
	if (strcmp(s, "length") == 0)
		return LH_LLM_FINISH_LENGTH;
	if (strcmp(s, "tool_calls") == 0 || strcmp(s, "function_call") == 0)
		return LH_LLM_FINISH_TOOL_CALLS;
	if (strcmp(s, "content_filter") == 0)
		return LH_LLM_FINISH_CONTENT_FILTER;
	return LH_LLM_FINISH_OTHER;
}

static lh_err_t malformed(lh_llm_error_t *err, const char *fmt, const char *detail)
{
	if (err) {
		memset(err, 0, sizeof(*err));
		err->klass = LH_LLM_ERR_MALFORMED;
		err->retry_after_ms = -1;
		lh_error_retry(&err->error, LH_ERR_DECODE, fmt, detail);
	}
	return LH_ERR_DECODE;
}

static int64_t int_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static lh_err_t parse_tool_calls(json_t *arr, lh_llm_resp_t *r, lh_llm_error_t *err)
{
	size_t n = json_array_size(arr);
	if (n == 0)
		return LH_OK;
	r->tool_calls = calloc(n, sizeof(*r->tool_calls));
	if (!r->tool_calls)
		return malformed(err, "could not parse chat response: %s", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *tc = json_array_get(arr, i), *fn, *args;
		lh_llm_tool_call_t *out = &r->tool_calls[i];
		const char *id, *name;

		fn = json_object_get(tc, "function");
		id = json_string_value(json_object_get(tc, "id"));
		name = json_string_value(json_object_get(fn, "name"));
		if (!json_is_object(tc) || !json_is_object(fn) || !name)
			return malformed(err, "could not parse chat response: %s",
					 "tool call without function name");
		r->n_tool_calls = i + 1;
		out->id = strdup(id ? id : "");
		out->name = strdup(name);
		args = json_object_get(fn, "arguments");
		if (json_is_string(args)) {
			/* the documented shape: a JSON text inside a string */
			out->arguments_json = strdup(json_string_value(args));
			out->arguments = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
		} else if (args && !json_is_null(args)) {
			/* some compatible servers send the object itself */
			out->arguments_json = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
			out->arguments = json_incref(args);
		} else {
			out->arguments_json = strdup("{}");
			out->arguments = json_object();
		}
		if (!out->id || !out->name || !out->arguments_json)
			return malformed(err, "could not parse chat response: %s", "out of memory");
	}
	return LH_OK;
}

lh_err_t lh_llm_openai_parse_response(const char *body, size_t len, lh_llm_resp_t *ret_resp,
				      lh_llm_error_t *err)
{
	json_error_t jerr;
	json_t *root, *choice, *msg, *usage, *det;
	lh_llm_resp_t r;
	const char *content, *refusal, *finish;
	lh_err_t rc;

	root = json_loadb(body ? body : "", len, 0, &jerr);
	if (!root)
		return malformed(err, "could not parse chat response: %s", jerr.text);
	choice = json_array_get(json_object_get(root, "choices"), 0);
	msg = json_object_get(choice, "message");
	if (!json_is_object(choice) || !json_is_object(msg)) {
		const char *emsg =
			json_string_value(json_object_get(json_object_get(root, "error"), "message"));
		rc = malformed(err, "could not parse chat response: %s",
			       emsg ? emsg : "no choices[0].message");
		json_decref(root);
		return rc;
	}
	memset(&r, 0, sizeof(r));
	content = json_string_value(json_object_get(msg, "content"));
	if (!content && json_is_array(json_object_get(msg, "content"))) {
		/* content parts: concatenate the text parts */
		json_t *parts = json_object_get(msg, "content"), *part;
		size_t i, total = 0;
		json_array_foreach(parts, i, part)
			total += strlen(json_string_value(json_object_get(part, "text"))
						? json_string_value(json_object_get(part, "text"))
						: "");
		r.content = calloc(1, total + 1);
		json_array_foreach(parts, i, part) {
			const char *t = json_string_value(json_object_get(part, "text"));
			if (t && r.content)
				strcat(r.content, t);
		}
	} else {
		r.content = dup_or_null(content);
	}
	refusal = json_string_value(json_object_get(msg, "refusal"));
	r.refusal = dup_or_null(refusal);
	finish = json_string_value(json_object_get(choice, "finish_reason"));
	r.finish_raw = dup_or_null(finish);
	r.finish = finish_from(finish);
	rc = parse_tool_calls(json_object_get(msg, "tool_calls"), &r, err);
	if (rc) {
		lh_llm_resp_finish(&r);
		json_decref(root);
		return rc;
	}
	if (refusal)
		r.finish = LH_LLM_FINISH_REFUSAL;
	else if (!finish && r.n_tool_calls > 0)
		r.finish = LH_LLM_FINISH_TOOL_CALLS;
	usage = json_object_get(root, "usage");
	r.usage.input_tokens = int_at(usage, "prompt_tokens");
	r.usage.output_tokens = int_at(usage, "completion_tokens");
	det = json_object_get(usage, "prompt_tokens_details");
	r.usage.cached_tokens = int_at(det, "cached_tokens");
	det = json_object_get(usage, "completion_tokens_details");
	r.usage.reasoning_tokens = int_at(det, "reasoning_tokens");
	r.model = dup_or_null(json_string_value(json_object_get(root, "model")));
	r.id = dup_or_null(json_string_value(json_object_get(root, "id")));
	r.attempts = 1;
	json_decref(root);
	*ret_resp = r;
	return LH_OK;
}

/* ---- error mapping ----------------------------------------------------------------------- */

void lh_llm_openai_map_error(long status, const char *body, size_t len, const char *should_retry,
			     long retry_after_ms, lh_llm_error_t *ret_err)
{
	json_t *root = NULL, *e;
	const char *code = NULL, *type = NULL, *pmsg = NULL;
	lh_llm_errclass_t klass;
	bool retry;
	char detail[PROVIDER_MSG_MAX + 1] = "";

	if (body && len)
		root = json_loadb(body, len, 0, NULL);
	e = json_object_get(root, "error");
	if (json_is_object(e)) {
		code = json_string_value(json_object_get(e, "code"));
		type = json_string_value(json_object_get(e, "type"));
		pmsg = json_string_value(json_object_get(e, "message"));
	} else if (json_is_string(e)) {
		pmsg = json_string_value(e);
	}

	if (status == 400 && ((code && strcmp(code, "context_length_exceeded") == 0) ||
			      (pmsg && strstr(pmsg, "context length")))) {
		klass = LH_LLM_ERR_TOO_LARGE;
		retry = false;
	} else if (status == 401 || status == 403) {
		klass = LH_LLM_ERR_AUTH;
		retry = false;
	} else if (status == 408) {
		klass = LH_LLM_ERR_TIMEOUT;
		retry = true;
	} else if (status == 409) {
		klass = LH_LLM_ERR_RETRYABLE;
		retry = true;
	} else if (status == 413) {
		klass = LH_LLM_ERR_TOO_LARGE;
		retry = false;
	} else if (status == 429) {
		bool quota = (code && strcmp(code, "insufficient_quota") == 0) ||
			     (type && strcmp(type, "insufficient_quota") == 0);
		/* an exhausted quota comes back only when someone pays: not a rate limit */
		klass = quota ? LH_LLM_ERR_AUTH : LH_LLM_ERR_RATE_LIMITED;
		retry = !quota;
	} else if (status == 502 || status == 503 || status == 529) {
		klass = LH_LLM_ERR_PROVIDER_DOWN;
		retry = true;
	} else if (status == 504) {
		klass = LH_LLM_ERR_TIMEOUT;
		retry = true;
	} else if (status >= 500) {
		klass = LH_LLM_ERR_RETRYABLE;
		retry = true;
	} else {
		klass = LH_LLM_ERR_INVALID_REQUEST;
		retry = false;
	}
	/* an auth failure's text may quote part of the key: keep only the code */
	if (klass == LH_LLM_ERR_AUTH)
		snprintf(detail, sizeof(detail), "%s", code ? code : type ? type : "not authorized");
	else if (pmsg)
		snprintf(detail, sizeof(detail), "%s", pmsg);
	else if (code || type)
		snprintf(detail, sizeof(detail), "%s", code ? code : type);

	lh_llm_http_status_error(ret_err, "chat completion", status, klass, retry, should_retry,
				 retry_after_ms, detail);
	json_decref(root);
}

/* ---- the provider ------------------------------------------------------------------------ */

static lh_err_t parse_answer(const char *body, size_t len, const char *answer_tool,
			     lh_llm_resp_t *ret_resp, lh_llm_error_t *err)
{
	return lh_llm_openai_parse_response(body, len, ret_resp, err);
}

static const lh_llm_http_api_t openai_api = {
	.name = "openai",
	.what = "chat completion",
	.path = "/chat/completions",
	.key_header = "Authorization: Bearer %s",
	.build_body = lh_llm_openai_build_body,
	.parse = parse_answer,
	.map_error = lh_llm_openai_map_error,
};

lh_llm_provider_t *lh_llm_openai_new(lh_http_t *http, const char *base_url, const char *api_key,
				     const lh_llm_openai_opts_t *opts, lh_error_t *err)
{
	return lh_llm_http_new(&openai_api, http, base_url, api_key, opts, err);
}
