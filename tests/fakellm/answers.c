/* answers.c — the bodies fakellm sends: OpenAI chat.completion and Anthropic message objects
 * built from the scripted answer (lh_llm_scripted_answer) and the matching rule, and each API's
 * error bodies. Pure functions of the request and the rule; fakellm.c does the sending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakellm.h"
#include "llm.h"

json_t *fake_error_body(const char *message, const char *type, const char *code)
{
	return json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message, "type", type,
			 "param", "code", code);
}

json_t *fake_anthropic_error_body(const char *type, const char *message)
{
	return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type, "message",
			 message);
}

json_t *fake_default_error(enum api api, int status)
{
	if (api == API_ANTHROPIC) {
		const char *type = "api_error", *msg = "Internal server error";
		switch (status) {
		case 400:
			type = "invalid_request_error", msg = "Invalid request";
			break;
		case 401:
			type = "authentication_error", msg = "invalid x-api-key";
			break;
		case 403:
			type = "permission_error", msg = "Your API key does not have permission";
			break;
		case 404:
			type = "not_found_error", msg = "Not found";
			break;
		case 413:
			type = "request_too_large",
			msg = "Request exceeds the maximum allowed size";
			break;
		case 429:
			type = "rate_limit_error", msg =
						       "Number of request tokens has exceeded your "
						       "per-minute rate limit";
			break;
		case 529:
			type = "overloaded_error", msg = "Overloaded";
			break;
		default:
			if (status < 500)
				type = "invalid_request_error", msg = "Request failed";
		}
		return fake_anthropic_error_body(type, msg);
	}
	switch (status) {
	case 429:
		return fake_error_body("Rate limit reached for requests", "requests",
				       "rate_limit_exceeded");
	case 529:
		return fake_error_body("Overloaded", "overloaded_error", NULL);
	case 503:
		return fake_error_body("The engine is currently overloaded, please try again later",
				       "server_error", NULL);
	case 401:
		return fake_error_body("Incorrect API key provided", "invalid_request_error",
				       "invalid_api_key");
	case 400:
		return fake_error_body("Invalid request", "invalid_request_error", NULL);
	default:
		if (status >= 500)
			return fake_error_body("The server had an error while processing your "
					       "request",
					       "server_error", NULL);
		return fake_error_body("Request failed", "invalid_request_error", NULL);
	}
}

/* A tool call spec's input as a JSON value (new): "input" verbatim (Anthropic), else
 * "arguments" — an object as is, a string parsed when it is JSON, else the string itself. */
static json_t *spec_input(json_t *tc)
{
	json_t *in = json_object_get(tc, "input"), *args = json_object_get(tc, "arguments"), *p;
	if (in)
		return json_incref(in);
	if (json_is_string(args)) {
		p = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
		return p ? p : json_incref(args);
	}
	return args ? json_incref(args) : json_object();
}

/* Arguments of the wrong type for schema: every property with a declared type gets a value of
 * another type (a number for strings, a string for everything else). New reference. */
static json_t *wrong_typed(json_t *schema)
{
	json_t *out = json_object(), *props = json_object_get(schema, "properties"), *ps;
	const char *key;
	json_object_foreach (props, key, ps) {
		const char *type = json_string_value(json_object_get(ps, "type"));
		json_object_set_new(out, key,
				    type && strcmp(type, "string") == 0
					? json_integer(12345)
					: json_string("wrong type"));
	}
	if (json_object_size(out) == 0)
		json_object_set_new(out, "unexpected", json_integer(12345));
	return out;
}

/* The tool calls of rule r for this request: r->tool_calls, or for bad_tool_args one call to
 * the request's first tool with broken arguments. New array of specs, or NULL. */
static json_t *tool_call_specs(const ask_t *a, const rule_t *r)
{
	if (r && r->tool_calls)
		return json_incref(r->tool_calls);
	if (!r || r->action != ACT_BAD_TOOL_ARGS)
		return NULL;
	if (a->api == API_OPENAI) /* arguments that are not JSON */
		return json_pack("[{s:s, s:s}]", "name",
				 a->tool_name ? a->tool_name : "unknown_tool", "arguments",
				 "{\"query\": \"unterminated");
	return json_pack("[{s:s, s:o}]", "name", a->tool_name ? a->tool_name : "unknown_tool",
			 "input", wrong_typed(a->tool_schema));
}

/* The answer text of a request without tool calls (new string). */
static char *answer_text(const ask_t *a, const rule_t *r)
{
	char *goal, *answer;
	if (r && r->content)
		return strdup(r->content);
	if (r && r->action == ACT_WRONG_SCHEMA)
		return strdup(WRONG_SCHEMA_ANSWER);
	goal = lh_llm_scripted_goal(a->last_user);
	answer = lh_llm_scripted_answer(lh_llm_scripted_kind(a->system), goal, a->last_user);
	free(goal);
	return answer;
}

static json_t *tool_calls_json(json_t *spec, long n)
{
	json_t *arr = json_array(), *tc;
	size_t i;
	json_array_foreach (spec, i, tc) {
		json_t *args = json_object_get(tc, "arguments");
		const char *id = json_string_value(json_object_get(tc, "id"));
		char idbuf[64], *astr;
		if (!id) {
			snprintf(idbuf, sizeof(idbuf), "call_%ld_%zu", n, i);
			id = idbuf;
		}
		if (!args)
			args = json_object_get(tc, "input");
		astr = json_is_string(args) ? strdup(json_string_value(args))
					    : json_dumps(args ? args : json_object(),
							 JSON_COMPACT | JSON_ENCODE_ANY);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:{s:s?, s:s}}", "id", id, "type",
						     "function", "function", "name",
						     json_string_value(json_object_get(tc, "name")),
						     "arguments", astr ? astr : "{}"));
		free(astr);
	}
	return arr;
}

static int64_t prompt_tokens(const ask_t *a)
{
	return lh_llm_estimate_tokens(a->prompt_bytes) + 3 * (int64_t)a->n_messages;
}

static int64_t cached_tokens(int64_t prompt)
{
	return prompt >= 1024 ? (prompt / 2) / 128 * 128 : 0;
}

/* The chat.completion body. */
char *fake_completion_body(const ask_t *a, rule_t *r)
{
	json_t *msg, *root, *specs = tool_call_specs(a, r);
	char *answer = NULL, *out, id[48];
	const char *finish = "stop";
	int64_t prompt, ans, reasoning, cached;

	if (!specs && !(r && r->refusal))
		answer = answer_text(a, r);
	else if (r && r->content)
		answer = strdup(r->content);
	msg = json_pack("{s:s, s:o, s:o}", "role", "assistant", "content",
			answer ? json_string(answer) : json_null(), "refusal",
			r && r->refusal ? json_string(r->refusal) : json_null());
	if (specs) {
		json_object_set_new(msg, "tool_calls", tool_calls_json(specs, a->n));
		finish = "tool_calls";
	}
	if (r && r->finish_reason)
		finish = r->finish_reason;
	prompt = prompt_tokens(a);
	ans = lh_llm_estimate_tokens(answer ? strlen(answer) : 16);
	reasoning = ans / 2;
	cached = cached_tokens(prompt);
	snprintf(id, sizeof(id), "chatcmpl-fake-%ld", a->n);
	root =
	    json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}], s:{s:I, s:I, s:I, "
		      "s:{s:I, s:i}, s:{s:I, s:i, s:i, s:i}}, s:s}",
		      "id", id, "object", "chat.completion", "created",
		      (json_int_t)(1700000000 + a->n), "model", a->model, "choices", "index", 0,
		      "message", msg, "logprobs", "finish_reason", finish, "usage", "prompt_tokens",
		      (json_int_t)prompt, "completion_tokens", (json_int_t)(ans + reasoning),
		      "total_tokens", (json_int_t)(prompt + ans + reasoning),
		      "prompt_tokens_details", "cached_tokens", (json_int_t)cached, "audio_tokens",
		      0, "completion_tokens_details", "reasoning_tokens", (json_int_t)reasoning,
		      "audio_tokens", 0, "accepted_prediction_tokens", 0,
		      "rejected_prediction_tokens", 0, "system_fingerprint", "fp_fakellm");
	out = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	json_decref(specs);
	free(answer);
	return out;
}

/* The Anthropic message body: text, tool_use blocks for scripted calls, or one tool_use for a
 * forced tool (its input is the answer when that is a JSON object, else {"text": answer}). */
char *fake_message_body(const ask_t *a, rule_t *r)
{
	json_t *content = json_array(), *root, *specs = tool_call_specs(a, r), *tc;
	char *answer = NULL, *out, id[48];
	const char *stop = "end_turn";
	int64_t prompt, ans, cached, creation;
	size_t i;

	if (r && r->refusal) {
		answer = strdup(r->refusal);
		stop = "refusal";
	} else if (!specs) {
		answer = answer_text(a, r);
	} else if (r->content) {
		answer = strdup(r->content);
	}
	if (specs) {
		if (answer)
			json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text",
								 "text", answer));
		json_array_foreach (specs, i, tc) {
			const char *tid = json_string_value(json_object_get(tc, "id"));
			char idbuf[64];
			if (!tid) {
				snprintf(idbuf, sizeof(idbuf), "toolu_fake_%ld_%zu", a->n, i);
				tid = idbuf;
			}
			json_array_append_new(content, json_pack("{s:s, s:s, s:s?, s:o}", "type",
								 "tool_use", "id", tid, "name",
								 json_string_value(
								     json_object_get(tc, "name")),
								 "input", spec_input(tc)));
		}
		stop = "tool_use";
	} else if (a->forced_tool && answer && !(r && r->refusal)) {
		json_t *in = json_loads(answer, 0, NULL);
		if (!json_is_object(in)) {
			json_decref(in);
			in = json_pack("{s:s}", "text", answer);
		}
		snprintf(id, sizeof(id), "toolu_fake_%ld_0", a->n);
		json_array_append_new(content,
				      json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id",
						id, "name", a->forced_tool, "input", in));
		stop = "tool_use";
	} else if (answer) {
		json_array_append_new(content,
				      json_pack("{s:s, s:s}", "type", "text", "text", answer));
	}
	if (r && r->finish_reason)
		stop = r->finish_reason;
	prompt = prompt_tokens(a);
	ans = lh_llm_estimate_tokens(answer ? strlen(answer) : 16);
	cached = cached_tokens(prompt);
	creation = cached / 4;
	snprintf(id, sizeof(id), "msg_fake_%ld", a->n);
	root = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:{s:I, s:I, s:I, s:I, s:s}}", "id",
			 id, "type", "message", "role", "assistant", "model", a->model, "content",
			 content, "stop_reason", stop, "stop_sequence", "usage", "input_tokens",
			 (json_int_t)(prompt - cached - creation), "cache_creation_input_tokens",
			 (json_int_t)creation, "cache_read_input_tokens", (json_int_t)cached,
			 "output_tokens", (json_int_t)ans, "service_tier", "standard");
	out = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	json_decref(specs);
	free(answer);
	return out;
}
