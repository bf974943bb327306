/* llm_anthropic.c — the Anthropic Messages API over lh_http_t.
 *
 * This file holds what is Anthropic's: the request body, the response parser, the error table
 * and the headers. The call machinery shared with llm_openai.c (llm_http.c) POSTs the body to
 * {base_url}/messages, classifies the answer with these and retries retryable failures on an
 * event timer following the official SDKs' rule (x-should-retry, then 408/409/429/5xx — 529
 * overloaded included — and connection errors; retry-after-ms / retry-after, else exponential
 * backoff with jitter, lh_llm_retry_delay_ms). The API key lives only in the prebuilt
 * "x-api-key" header line, is never logged and is zeroed when the provider is freed.
 *
 * Structured output has no response_format here: the schema becomes a forced tool and the
 * answer is its input (llm.h); the call keeps the schema's name for the parser. */
#include "llm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "llm_http_int.h"

#define PROVIDER_MSG_MAX 300
#define REFUSAL_TEXT "the model declined to answer (stop_reason refusal)"
#define ANSWER_TOOL_DESCRIPTION                                                                    \
	"Give your final answer by calling this tool; its input must match the schema exactly."

/* ---- request body ------------------------------------------------------------------------ */

/* "could not build messages request: " + the formatted reason, LH_ERR_INVALID */
static lh_err_t body_error(lh_error_t *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static lh_err_t body_error(lh_error_t *err, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return lh_error_set(err, LH_ERR_INVALID, "could not build messages request: %s", why);
}

/* The input object of a tool call being replayed (new reference), or NULL. */
static json_t *tool_input(const lh_llm_tool_call_t *tc)
{
	json_t *in;
	if (tc->arguments)
		in = json_incref(tc->arguments);
	else if (tc->arguments_json)
		in = json_loads(tc->arguments_json, 0, NULL);
	else
		in = json_object();
	if (in && !json_is_object(in)) {
		json_decref(in);
		return NULL;
	}
	return in;
}

/* Content blocks for message i (new array), or NULL with err. */
static json_t *message_blocks(const lh_llm_message_t *m, size_t i, lh_error_t *err)
{
	json_t *blocks = json_array(), *b;
	const char *role = lh_llm_role_name(m->role);

	if (m->role == LH_LLM_ROLE_ASSISTANT) {
		if ((!m->content || !*m->content) && m->n_tool_calls == 0) {
			body_error(err, "message %zu (%s) is empty", i, role);
			goto out_blocks;
		}
		if (m->content && *m->content) {
			if (!(b = json_pack("{s:s, s:s}", "type", "text", "text", m->content)))
				goto out_utf8;
			json_array_append_new(blocks, b);
		}
		for (size_t k = 0; k < m->n_tool_calls; k++) {
			const lh_llm_tool_call_t *tc = &m->tool_calls[k];
			json_t *in;
			if (!tc->id || !tc->name) {
				body_error(err, "message %zu has a tool call without %s", i,
					   !tc->id ? "id" : "name");
				goto out_blocks;
			}
			if (!(in = tool_input(tc))) {
				body_error(err,
					   "message %zu: the arguments of tool call \"%s\" are not "
					   "a JSON object",
					   i, tc->name);
				goto out_blocks;
			}
			b = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", tc->id,
				      "name", tc->name, "input", in);
			if (!b)
				goto out_utf8;
			json_array_append_new(blocks, b);
		}
		return blocks;
	}
	if (!m->content) {
		body_error(err, "message %zu (%s) has no content", i, role);
		goto out_blocks;
	}
	if (m->role == LH_LLM_ROLE_TOOL) {
		if (!m->tool_call_id) {
			body_error(err, "tool message %zu has no tool_call_id", i);
			goto out_blocks;
		}
		b = json_pack("{s:s, s:s, s:s}", "type", "tool_result", "tool_use_id",
			      m->tool_call_id, "content", m->content);
	} else {
		b = json_pack("{s:s, s:s}", "type", "text", "text", m->content);
	}
	if (!b)
		goto out_utf8;
	json_array_append_new(blocks, b);
	return blocks;

out_utf8:
	body_error(err, "message %zu (%s) is not valid UTF-8", i, role);
out_blocks:
	json_decref(blocks);
	return NULL;
}

/* Append blocks to msgs, merging into the last message when it has the same role; in a user
 * message tool results go before any text (the API requires them first). Steals blocks. */
static void append_blocks(json_t *msgs, const char *role, json_t *blocks)
{
	json_t *last = json_array_get(msgs, json_array_size(msgs) - 1), *content, *b;
	size_t i;

	if (!last || strcmp(json_string_value(json_object_get(last, "role")), role) != 0) {
		json_array_append_new(msgs,
				      json_pack("{s:s, s:o}", "role", role, "content", blocks));
		return;
	}
	content = json_object_get(last, "content");
	json_array_foreach (blocks, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		size_t at = json_array_size(content);
		if (strcmp(type, "tool_result") == 0) {
			at = 0;
			while (at < json_array_size(content) &&
			       strcmp(json_string_value(
					  json_object_get(json_array_get(content, at), "type")),
				      "tool_result") == 0)
				at++;
		}
		json_array_insert(content, at, b);
	}
	json_decref(blocks);
}

static json_t *tool_json(const char *name, const char *description, json_t *schema, size_t i,
			 lh_error_t *err)
{
	json_t *t;
	if (!name || !*name) {
		body_error(err, "tool %zu has no name", i);
		return NULL;
	}
	if (!(t = json_pack("{s:s}", "name", name)))
		goto out_utf8;
	if (description) {
		json_t *d = json_string(description);
		if (!d) {
			json_decref(t);
			goto out_utf8;
		}
		json_object_set_new(t, "description", d);
	}
	json_object_set_new(t, "input_schema",
			    schema ? json_incref(schema) : json_pack("{s:s}", "type", "object"));
	return t;
out_utf8:
	body_error(err, "tool %zu is not valid UTF-8", i);
	return NULL;
}

static json_t *tool_choice_json(const lh_llm_req_t *req, lh_error_t *err)
{
	const lh_llm_response_schema_t *rs = req->response_schema;
	json_t *tc;
	switch (req->tool_choice) {
	case LH_LLM_TOOL_CHOICE_DEFAULT:
		if (!rs)
			return json_null(); /* not sent */
		return json_pack("{s:s, s:s}", "type", "tool", "name", rs->name);
	case LH_LLM_TOOL_CHOICE_AUTO:
		return json_pack("{s:s}", "type", rs ? "any" : "auto");
	case LH_LLM_TOOL_CHOICE_REQUIRED:
		return json_pack("{s:s}", "type", "any");
	case LH_LLM_TOOL_CHOICE_NONE:
		if (rs) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build messages request: a response schema is "
				     "answered "
				     "through a tool call, which tool_choice none forbids");
			return NULL;
		}
		return json_pack("{s:s}", "type", "none");
	case LH_LLM_TOOL_CHOICE_NAMED:
		if (!req->tool_choice_name) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build messages request: tool_choice names no tool");
			return NULL;
		}
		tc = json_pack("{s:s, s:s}", "type", "tool", "name", req->tool_choice_name);
		if (!tc)
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build messages request: tool_choice is not valid "
				     "UTF-8");
		return tc;
	}
	lh_error_set(err, LH_ERR_INVALID,
		     "could not build messages request: unknown tool_choice %d",
		     (int)req->tool_choice);
	return NULL;
}

static bool schema_is_object(const json_t *schema)
{
	const char *type = json_string_value(json_object_get(schema, "type"));
	return type && strcmp(type, "object") == 0;
}

json_t *lh_llm_anthropic_build_body(const lh_llm_req_t *req, lh_error_t *err)
{
	const lh_llm_response_schema_t *rs;
	json_t *body, *msgs, *tools = NULL, *tc;
	lh_buf_t system;

	if (!req || !req->model || !req->messages || req->n_messages == 0) {
		lh_error_set(err, LH_ERR_INVALID, "could not build messages request: %s",
			     !req || !req->model ? "no model" : "no messages");
		return NULL;
	}
	rs = req->response_schema;
	body = json_pack("{s:s, s:I}", "model", req->model, "max_tokens",
			 (json_int_t)(req->max_output_tokens > 0
					  ? req->max_output_tokens
					  : LH_LLM_ANTHROPIC_DEFAULT_MAX_TOKENS));
	if (!body) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build messages request: model name is not valid UTF-8");
		return NULL;
	}
	lh_buf_init(&system);
	msgs = json_array();
	for (size_t i = 0; i < req->n_messages; i++) {
		const lh_llm_message_t *m = &req->messages[i];
		json_t *blocks;
		if (m->role == LH_LLM_ROLE_SYSTEM) {
			if (!m->content) {
				body_error(err, "message %zu (%s) has no content", i, "system");
				goto out_msgs;
			}
			if (system.len)
				lh_buf_appends(&system, "\n\n");
			lh_buf_appends(&system, m->content);
			continue;
		}
		if (!(blocks = message_blocks(m, i, err)))
			goto out_msgs;
		append_blocks(msgs, m->role == LH_LLM_ROLE_ASSISTANT ? "assistant" : "user",
			      blocks);
	}
	if (json_array_size(msgs) == 0) {
		lh_error_set(err, LH_ERR_INVALID,
			     "could not build messages request: no user or assistant message");
		goto out_msgs;
	}
	if (system.len) {
		json_t *s = json_stringn(system.data, system.len);
		if (!s) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build messages request: system text is not valid "
				     "UTF-8");
			goto out_msgs;
		}
		json_object_set_new(body, "system", s);
	}
	json_object_set_new(body, "messages", msgs);
	msgs = NULL;

	if (req->n_tools > 0 || rs)
		tools = json_array();
	for (size_t i = 0; i < req->n_tools; i++) {
		const lh_llm_tool_t *t = &req->tools[i];
		json_t *tj = tool_json(t->name, t->description, t->parameters, i, err);
		if (!tj)
			goto out_tools;
		if (rs && rs->name && strcmp(rs->name, t->name) == 0) {
			json_decref(tj);
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build messages request: tool %zu has the name of "
				     "the "
				     "response schema \"%s\"",
				     i, rs->name);
			goto out_tools;
		}
		json_array_append_new(tools, tj);
	}
	if (rs) {
		json_t *tj;
		if (!rs->name || !rs->schema) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build messages request: response schema without %s",
				     !rs->name ? "name" : "schema");
			goto out_tools;
		}
		if (!schema_is_object(rs->schema)) {
			lh_error_set(err, LH_ERR_INVALID,
				     "could not build messages request: response schema \"%s\" "
				     "must "
				     "have \"type\": \"object\" (it becomes a tool's input_schema)",
				     rs->name);
			goto out_tools;
		}
		if (!(tj = tool_json(rs->name, ANSWER_TOOL_DESCRIPTION, rs->schema, req->n_tools,
				     err)))
			goto out_tools;
		json_array_append_new(tools, tj);
	}
	if (tools)
		json_object_set_new(body, "tools", tools);
	tools = NULL;
	if (!(tc = tool_choice_json(req, err)))
		goto out_body;
	if (json_is_null(tc))
		json_decref(tc);
	else
		json_object_set_new(body, "tool_choice", tc);
	if (req->set_temperature)
		json_object_set_new(body, "temperature", json_real(req->temperature));
	lh_buf_finish(&system);
	return body;

out_tools:
	json_decref(tools);
	goto out_body;
out_msgs:
	json_decref(msgs);
out_body:
	lh_buf_finish(&system);
	json_decref(body);
	return NULL;
}

/* ---- response parsing -------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static lh_llm_finish_t finish_from(const char *s)
{
	static const struct {
		const char *word;
		lh_llm_finish_t finish;
	} map[] = {
	    {"end_turn", LH_LLM_FINISH_STOP},
	    {"stop_sequence", LH_LLM_FINISH_STOP},
	    {"max_tokens", LH_LLM_FINISH_LENGTH},
	    {"model_context_window_exceeded", LH_LLM_FINISH_LENGTH},
	    {"tool_use", LH_LLM_FINISH_TOOL_CALLS},
	    {"refusal", LH_LLM_FINISH_REFUSAL},
	    {"pause_turn", LH_LLM_FINISH_OTHER},
	};
	for (size_t i = 0; s && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i].word) == 0)
			return map[i].finish;
	return LH_LLM_FINISH_OTHER;
}

static lh_err_t malformed(lh_llm_error_t *err, const char *detail)
{
	if (err) {
		memset(err, 0, sizeof(*err));
		err->klass = LH_LLM_ERR_MALFORMED;
		err->retry_after_ms = -1;
		lh_error_retry(&err->error, LH_ERR_DECODE, "could not parse messages response: %s",
			       detail);
	}
	return LH_ERR_DECODE;
}

static int64_t int_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) && json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
}

/* a + b for counts that are never negative, saturating instead of overflowing */
static int64_t add_sat(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

/* One tool_use block into out (fields owned). */
static lh_err_t take_tool_use(json_t *block, lh_llm_tool_call_t *out, lh_llm_error_t *err)
{
	const char *id = json_string_value(json_object_get(block, "id"));
	const char *name = json_string_value(json_object_get(block, "name"));
	json_t *input = json_object_get(block, "input");

	if (!name)
		return malformed(err, "tool_use block without name");
	out->id = strdup(id ? id : "");
	out->name = strdup(name);
	out->arguments = input ? json_incref(input) : json_object();
	out->arguments_json = json_dumps(out->arguments, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!out->id || !out->name || !out->arguments || !out->arguments_json)
		return malformed(err, "out of memory");
	return LH_OK;
}

lh_err_t lh_llm_anthropic_parse_response(const char *body, size_t len, const char *answer_tool,
					 lh_llm_resp_t *ret_resp, lh_llm_error_t *err)
{
	json_error_t jerr;
	json_t *root, *content, *block, *usage;
	lh_llm_resp_t r;
	lh_buf_t text;
	bool has_text = false;
	size_t i, n_uses = 0;
	const char *stop;
	lh_err_t rc = LH_OK;

	root = json_loadb(body ? body : "", len, 0, &jerr);
	if (!root)
		return malformed(err, jerr.text);
	content = json_object_get(root, "content");
	if (!json_is_array(content)) {
		const char *emsg =
		    json_string_value(json_object_get(json_object_get(root, "error"), "message"));
		rc = malformed(err, emsg ? emsg : "no content array");
		json_decref(root);
		return rc;
	}
	memset(&r, 0, sizeof(r));
	lh_buf_init(&text);
	json_array_foreach (content, i, block) {
		const char *type = json_string_value(json_object_get(block, "type"));
		if (type && strcmp(type, "tool_use") == 0)
			n_uses++;
	}
	if (n_uses && !(r.tool_calls = calloc(n_uses, sizeof(*r.tool_calls)))) {
		rc = malformed(err, "out of memory");
		goto out_resp;
	}
	json_array_foreach (content, i, block) {
		const char *type = json_string_value(json_object_get(block, "type"));
		if (!type)
			continue;
		if (strcmp(type, "text") == 0) {
			json_t *t = json_object_get(block, "text");
			if (json_is_string(t)) {
				lh_buf_append(&text, json_string_value(t), json_string_length(t));
				has_text = true;
			}
		} else if (strcmp(type, "tool_use") == 0) {
			const char *name = json_string_value(json_object_get(block, "name"));
			if (answer_tool && name && !r.content && strcmp(name, answer_tool) == 0) {
				json_t *in = json_object_get(block, "input");
				r.content = in ? json_dumps(in, JSON_COMPACT | JSON_ENCODE_ANY)
					       : strdup("{}");
				if (!r.content) {
					rc = malformed(err, "out of memory");
					goto out_resp;
				}
				continue;
			}
			r.n_tool_calls++;
			rc = take_tool_use(block, &r.tool_calls[r.n_tool_calls - 1], err);
			if (rc)
				goto out_resp;
		}
	}
	if (r.n_tool_calls == 0) {
		free(r.tool_calls);
		r.tool_calls = NULL;
	}
	stop = json_string_value(json_object_get(root, "stop_reason"));
	r.finish_raw = dup_or_null(stop);
	r.finish = finish_from(stop);
	if (r.finish == LH_LLM_FINISH_REFUSAL) {
		/* a refusal wins over anything that looks like an answer */
		free(r.content);
		r.content = NULL;
		r.refusal = has_text && text.len ? lh_buf_steal(&text, NULL) : strdup(REFUSAL_TEXT);
	} else if (r.content) {
		/* the answer came through the response schema's tool */
		if (r.n_tool_calls == 0 && (!stop || strcmp(stop, "tool_use") == 0))
			r.finish = LH_LLM_FINISH_STOP;
	} else if (has_text) {
		r.content = text.len ? lh_buf_steal(&text, NULL) : strdup("");
	}
	if (!stop && r.n_tool_calls > 0)
		r.finish = LH_LLM_FINISH_TOOL_CALLS;
	usage = json_object_get(root, "usage");
	r.usage.cached_tokens = int_at(usage, "cache_read_input_tokens");
	r.usage.input_tokens = add_sat(add_sat(int_at(usage, "input_tokens"),
					       int_at(usage, "cache_creation_input_tokens")),
				       r.usage.cached_tokens);
	r.usage.output_tokens = int_at(usage, "output_tokens");
	r.model = dup_or_null(json_string_value(json_object_get(root, "model")));
	r.id = dup_or_null(json_string_value(json_object_get(root, "id")));
	r.attempts = 1;
	lh_buf_finish(&text);
	json_decref(root);
	*ret_resp = r;
	return LH_OK;

out_resp:
	lh_buf_finish(&text);
	lh_llm_resp_finish(&r);
	json_decref(root);
	return rc;
}

/* ---- error mapping ----------------------------------------------------------------------- */

void lh_llm_anthropic_map_error(long status, const char *body, size_t len, const char *should_retry,
				long retry_after_ms, lh_llm_error_t *ret_err)
{
	json_t *root = NULL, *e;
	const char *type = NULL, *pmsg = NULL;
	lh_llm_errclass_t klass;
	bool retry, overloaded;
	char detail[PROVIDER_MSG_MAX + 1] = "";

	if (body && len)
		root = json_loadb(body, len, 0, NULL);
	e = json_object_get(root, "error");
	if (json_is_object(e)) {
		type = json_string_value(json_object_get(e, "type"));
		pmsg = json_string_value(json_object_get(e, "message"));
	}
	overloaded = type && strcmp(type, "overloaded_error") == 0;

	if (status == 413 || (status == 400 && ((type && strcmp(type, "request_too_large") == 0) ||
						(pmsg && strstr(pmsg, "prompt is too long"))))) {
		klass = LH_LLM_ERR_TOO_LARGE;
		retry = false;
	} else if (status == 401 || status == 402 || status == 403) {
		klass = LH_LLM_ERR_AUTH;
		retry = false;
	} else if (status == 408 || status == 504) {
		klass = LH_LLM_ERR_TIMEOUT;
		retry = true;
	} else if (status == 409) {
		klass = LH_LLM_ERR_RETRYABLE;
		retry = true;
	} else if (status == 429) {
		klass = LH_LLM_ERR_RATE_LIMITED;
		retry = true;
	} else if (status == 502 || status == 503 || status == 529 ||
		   (status >= 500 && overloaded)) {
		klass = LH_LLM_ERR_PROVIDER_DOWN;
		retry = true;
	} else if (status >= 500) {
		klass = LH_LLM_ERR_RETRYABLE;
		retry = true;
	} else {
		klass = LH_LLM_ERR_INVALID_REQUEST;
		retry = false;
	}
	/* an authentication failure's text may quote part of the key: keep only the type */
	if (klass == LH_LLM_ERR_AUTH)
		snprintf(detail, sizeof(detail), "%s", type ? type : "not authorized");
	else if (type && pmsg)
		snprintf(detail, sizeof(detail), "%s: %s", type, pmsg);
	else if (type || pmsg)
		snprintf(detail, sizeof(detail), "%s", type ? type : pmsg);

	lh_llm_http_status_error(ret_err, "messages request", status, klass, retry, should_retry,
				 retry_after_ms, detail);
	json_decref(root);
}

/* ---- the provider ------------------------------------------------------------------------ */

static const lh_llm_http_api_t anthropic_api = {
	.name = "anthropic",
	.what = "messages request",
	.path = "/messages",
	.key_header = "x-api-key: %s",
	.fixed_header = "anthropic-version: " LH_LLM_ANTHROPIC_VERSION,
	.answer_by_tool = true,
	.build_body = lh_llm_anthropic_build_body,
	.parse = lh_llm_anthropic_parse_response,
	.map_error = lh_llm_anthropic_map_error,
};

lh_llm_provider_t *lh_llm_anthropic_new(lh_http_t *http, const char *base_url, const char *api_key,
					const lh_llm_openai_opts_t *opts, lh_error_t *err)
{
	return lh_llm_http_new(&anthropic_api, http, base_url, api_key, opts, err);
}
