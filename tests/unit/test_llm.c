/* test_llm.c — the provider-neutral LLM layer without a network: the Chat Completions body
 * (golden file), parsing of recorded answers, the HTTP error table, the retry delay rule and
 * the scripted provider. argv[1] is tests/fixtures/llm. */
#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "llm.h"
#include "t.h"

static const char *fixtures;

static char *slurp(const char *name, size_t *ret_len)
{
	char path[1024];
	FILE *f;
	char *data;
	long n;
	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
		free(data);
		data = NULL;
	}
	if (data)
		data[n] = 0;
	fclose(f);
	if (ret_len)
		*ret_len = (size_t)n;
	return data;
}

static json_t *load_fixture(const char *name)
{
	char *s = slurp(name, NULL);
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;
	free(s);
	return j;
}

/* ---- request body ------------------------------------------------------------------------ */

static void test_body_golden(void)
{
	json_t *search_params = json_loads(
		"{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}},"
		"\"required\":[\"query\"],\"additionalProperties\":false}",
		0, NULL);
	json_t *schema = json_loads(
		"{\"type\":\"object\",\"properties\":{\"summary\":{\"type\":\"string\"},"
		"\"confidence\":{\"type\":\"number\"}},\"required\":[\"summary\",\"confidence\"],"
		"\"additionalProperties\":false}",
		0, NULL);
	lh_llm_tool_call_t call = {.id = "call_1", .name = "memory_search",
				   .arguments_json = "{\"query\":\"postgres release\"}"};
	lh_llm_message_t msgs[] = {
		{.role = LH_LLM_ROLE_SYSTEM, .content = "You are a careful research assistant."},
		{.role = LH_LLM_ROLE_USER,
		 .content = "Goal: compare two databases\nFind the release dates."},
		{.role = LH_LLM_ROLE_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
		{.role = LH_LLM_ROLE_TOOL, .tool_call_id = "call_1",
		 .content = "PostgreSQL 15 was released in October 2022."},
	};
	lh_llm_tool_t tools[] = {
		{.name = "memory_search", .description = "Search the plan's memory",
		 .parameters = search_params, .strict = true},
		{.name = "ask_human"},
	};
	lh_llm_response_schema_t rs = {.name = "answer", .schema = schema, .strict = true};
	lh_llm_req_t req = {.model = "gpt-4.1-mini", .messages = msgs, .n_messages = 4,
			    .tools = tools, .n_tools = 2,
			    .tool_choice = LH_LLM_TOOL_CHOICE_NAMED,
			    .tool_choice_name = "memory_search", .response_schema = &rs,
			    .max_output_tokens = 512, .set_temperature = true,
			    .temperature = 0.25, .task_kind = "act", .goal = "ignored"};
	lh_error_t err;
	json_t *body = lh_llm_openai_build_body(&req, &err), *golden;

	golden = load_fixture("request_tools_schema.json");
	T_CHECK(body != NULL);
	T_CHECK(golden != NULL);
	T_CHECK(json_equal(body, golden));
	if (body && golden && !json_equal(body, golden)) {
		char *s = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
		fprintf(stderr, "built body:\n%s\n", s);
		free(s);
	}
	/* the schemas are referenced, not stolen nor copied: released with the body */
	T_EQ_INT(search_params->refcount, 2);
	json_decref(body);
	T_EQ_INT(search_params->refcount, 1);
	json_decref(golden);
	json_decref(search_params);
	json_decref(schema);
}

static void test_body_minimal(void)
{
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "hi"};
	lh_llm_req_t req = {.model = "m", .messages = &msg, .n_messages = 1};
	json_t *body = lh_llm_openai_build_body(&req, NULL);
	T_CHECK(body != NULL);
	T_EQ_INT(json_object_size(body), 2);
	T_EQ_STR(json_string_value(json_object_get(body, "model")), "m");
	T_EQ_STR(json_string_value(
			 json_object_get(json_array_get(json_object_get(body, "messages"), 0), "role")),
		 "user");
	json_decref(body);

	req.tool_choice = LH_LLM_TOOL_CHOICE_REQUIRED;
	body = lh_llm_openai_build_body(&req, NULL);
	T_EQ_STR(json_string_value(json_object_get(body, "tool_choice")), "required");
	json_decref(body);
}

static void test_body_errors(void)
{
	lh_error_t err;
	lh_llm_message_t tool_no_id = {.role = LH_LLM_ROLE_TOOL, .content = "x"};
	lh_llm_message_t user_null = {.role = LH_LLM_ROLE_USER};
	lh_llm_message_t bad_utf8 = {.role = LH_LLM_ROLE_USER, .content = "caf\xe9"};
	lh_llm_req_t req = {.model = "m", .messages = &tool_no_id, .n_messages = 1};

	T_CHECK(lh_llm_openai_build_body(&req, &err) == NULL);
	T_EQ_INT(err.code, LH_ERR_INVALID);
	T_CHECK(strstr(err.msg, "tool_call_id") != NULL);
	req.messages = &user_null;
	T_CHECK(lh_llm_openai_build_body(&req, &err) == NULL);
	T_CHECK(strstr(err.msg, "no content") != NULL);
	req.messages = &bad_utf8;
	T_CHECK(lh_llm_openai_build_body(&req, &err) == NULL);
	T_CHECK(strstr(err.msg, "UTF-8") != NULL);
	req.n_messages = 0;
	T_CHECK(lh_llm_openai_build_body(&req, &err) == NULL);
}

/* ---- response parsing -------------------------------------------------------------------- */

static lh_err_t parse_fixture(const char *name, lh_llm_resp_t *resp, lh_llm_error_t *err)
{
	size_t len = 0;
	char *s = slurp(name, &len);
	lh_err_t rc = s ? lh_llm_openai_parse_response(s, len, resp, err) : LH_ERR_IO;
	free(s);
	return rc;
}

static void test_parse_tool_calls(void)
{
	lh_llm_resp_t r;
	lh_llm_error_t e;
	T_EQ_INT(parse_fixture("response_tool_calls.json", &r, &e), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_TOOL_CALLS);
	T_EQ_STR(r.finish_raw, "tool_calls");
	T_CHECK(r.content == NULL);
	T_CHECK(r.refusal == NULL);
	T_EQ_INT(r.n_tool_calls, 2);
	T_EQ_STR(r.tool_calls[0].id, "call_abc123");
	T_EQ_STR(r.tool_calls[0].name, "memory_search");
	T_EQ_STR(r.tool_calls[0].arguments_json, "{\"query\":\"pricing of plan B\",\"limit\":5}");
	T_CHECK(json_is_object(r.tool_calls[0].arguments));
	T_EQ_INT(json_integer_value(json_object_get(r.tool_calls[0].arguments, "limit")), 5);
	T_EQ_STR(r.tool_calls[1].name, "http_fetch");
	T_EQ_STR(json_string_value(json_object_get(r.tool_calls[1].arguments, "url")),
		 "https://example.org");
	T_EQ_INT(r.usage.input_tokens, 1117);
	T_EQ_INT(r.usage.output_tokens, 46);
	T_EQ_INT(r.usage.cached_tokens, 1024);
	T_EQ_INT(r.usage.reasoning_tokens, 0);
	T_EQ_STR(r.model, "gpt-4o-2024-08-06");
	T_EQ_STR(r.id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
	lh_llm_resp_finish(&r);
	T_CHECK(r.tool_calls == NULL && r.model == NULL);
}

static void test_parse_stop_usage(void)
{
	lh_llm_resp_t r;
	T_EQ_INT(parse_fixture("response_stop.json", &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_STOP);
	T_EQ_STR(r.content, "Paris is the capital of France.");
	T_EQ_INT(r.n_tool_calls, 0);
	T_EQ_INT(r.usage.input_tokens, 2048);
	T_EQ_INT(r.usage.output_tokens, 300);
	T_EQ_INT(r.usage.cached_tokens, 1920);
	T_EQ_INT(r.usage.reasoning_tokens, 256);
	T_EQ_STR(r.model, "o3-mini-2025-01-31");
	lh_llm_resp_finish(&r);
}

static void test_parse_finish_reasons(void)
{
	lh_llm_resp_t r;
	T_EQ_INT(parse_fixture("response_length.json", &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_LENGTH);
	T_EQ_STR(r.content, "The first three steps are: one, two, th");
	T_EQ_INT(r.usage.cached_tokens, 0); /* no details object: zero */
	lh_llm_resp_finish(&r);

	T_EQ_INT(parse_fixture("response_content_filter.json", &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_CONTENT_FILTER);
	T_CHECK(r.content == NULL);
	lh_llm_resp_finish(&r);

	T_EQ_INT(parse_fixture("response_refusal.json", &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_REFUSAL);
	T_EQ_STR(r.finish_raw, "stop");
	T_EQ_STR(r.refusal, "I'm sorry, I can't help with that.");
	lh_llm_resp_finish(&r);

	/* a compatible server that sends arguments as an object */
	T_EQ_INT(parse_fixture("response_ollama_object_args.json", &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_TOOL_CALLS);
	T_EQ_INT(r.n_tool_calls, 1);
	T_EQ_STR(r.tool_calls[0].arguments_json, "{\"text\":\"fact\"}");
	T_EQ_STR(json_string_value(json_object_get(r.tool_calls[0].arguments, "text")), "fact");
	lh_llm_resp_finish(&r);
}

static void test_parse_malformed(void)
{
	lh_llm_resp_t r;
	lh_llm_error_t e;
	const char *trunc = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"mess";
	const char *nochoice = "{\"id\":\"x\",\"choices\":[]}";
	const char *err200 = "{\"error\":{\"message\":\"upstream exploded\"}}";
	const char *badargs = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"tool_calls\":"
			      "[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
			      "\"arguments\":\"{not json\"}}]},\"finish_reason\":\"tool_calls\"}]}";
	const char *noname = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c\"}]}}]}";

	memset(&r, 0x5a, sizeof(r));
	T_EQ_INT(lh_llm_openai_parse_response(trunc, strlen(trunc), &r, &e), LH_ERR_DECODE);
	T_EQ_INT(e.klass, LH_LLM_ERR_MALFORMED);
	T_CHECK(e.error.retriable);
	T_CHECK(((unsigned char *)&r)[0] == 0x5a); /* untouched on failure */
	T_EQ_INT(lh_llm_openai_parse_response(nochoice, strlen(nochoice), &r, &e), LH_ERR_DECODE);
	T_EQ_INT(e.klass, LH_LLM_ERR_MALFORMED);
	T_EQ_INT(lh_llm_openai_parse_response(err200, strlen(err200), &r, &e), LH_ERR_DECODE);
	T_CHECK(strstr(e.error.msg, "upstream exploded") != NULL);
	T_EQ_INT(lh_llm_openai_parse_response(noname, strlen(noname), &r, &e), LH_ERR_DECODE);
	T_EQ_INT(lh_llm_openai_parse_response("", 0, &r, &e), LH_ERR_DECODE);

	/* invalid arguments are kept raw for the tool loop to report back to the model */
	T_EQ_INT(lh_llm_openai_parse_response(badargs, strlen(badargs), &r, &e), LH_OK);
	T_EQ_INT(r.n_tool_calls, 1);
	T_EQ_STR(r.tool_calls[0].arguments_json, "{not json");
	T_CHECK(r.tool_calls[0].arguments == NULL);
	lh_llm_resp_finish(&r);
}

/* Deterministic mutations of every recorded answer (byte flips, truncations, spliced JSON
 * tokens): the parser must either fail cleanly or return a response that frees cleanly. Run
 * under ASan/valgrind this is the parser's fuzz smoke test. */
static void test_parse_mutations(void)
{
	static const char *names[] = {"response_tool_calls.json", "response_stop.json",
				      "response_length.json",	  "response_content_filter.json",
				      "response_refusal.json",	  "response_ollama_object_args.json"};
	static const char *tokens[] = {"null", "[]", "{}", "\"\"", "1e999", "-1", "\"\\u0000\"",
				       "[[[[", "true"};
	uint64_t x = 0x243f6a8885a308d3ULL;
	int ok = 0, failed = 0;

	for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
		size_t len;
		char *orig = slurp(names[f], &len);
		if (!orig)
			continue;
		for (int i = 0; i < 3000; i++) {
			char *m = malloc(len + 16);
			size_t mlen = len, pos;
			lh_llm_resp_t r;
			lh_llm_error_t e;
			memcpy(m, orig, len);
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			pos = (size_t)(x % len);
			switch ((x >> 32) % 3) {
			case 0:
				m[pos] = (char)(x >> 40);
				break;
			case 1:
				mlen = pos;
				break;
			default: {
				const char *t = tokens[(x >> 48) % (sizeof(tokens) / sizeof(tokens[0]))];
				size_t tl = strlen(t);
				if (pos + tl <= len)
					memcpy(m + pos, t, tl);
			}
			}
			if (lh_llm_openai_parse_response(m, mlen, &r, &e) == LH_OK) {
				ok++;
				lh_llm_resp_finish(&r);
			} else {
				failed++;
				T_EQ_INT(e.klass, LH_LLM_ERR_MALFORMED);
			}
			free(m);
		}
		free(orig);
	}
	T_CHECK(ok > 0 && failed > 0);
}

/* ---- error mapping ----------------------------------------------------------------------- */

static void test_error_table(void)
{
	static const struct {
		long status;
		const char *body;
		const char *should_retry;
		lh_llm_errclass_t klass;
		bool retry;
		lh_err_t code;
	} rows[] = {
		{400, "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\"}}", NULL,
		 LH_LLM_ERR_INVALID_REQUEST, false, LH_ERR_HTTP},
		{400, "{\"error\":{\"message\":\"too long\",\"code\":\"context_length_exceeded\"}}",
		 NULL, LH_LLM_ERR_TOO_LARGE, false, LH_ERR_TOO_LARGE},
		{401, "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc***xyz\","
		      "\"code\":\"invalid_api_key\"}}",
		 NULL, LH_LLM_ERR_AUTH, false, LH_ERR_HTTP},
		{403, NULL, NULL, LH_LLM_ERR_AUTH, false, LH_ERR_HTTP},
		{404, "{\"error\":{\"message\":\"model not found\"}}", NULL,
		 LH_LLM_ERR_INVALID_REQUEST, false, LH_ERR_HTTP},
		{408, NULL, NULL, LH_LLM_ERR_TIMEOUT, true, LH_ERR_TIMEOUT},
		{409, NULL, NULL, LH_LLM_ERR_RETRYABLE, true, LH_ERR_HTTP},
		{413, NULL, NULL, LH_LLM_ERR_TOO_LARGE, false, LH_ERR_TOO_LARGE},
		{422, NULL, NULL, LH_LLM_ERR_INVALID_REQUEST, false, LH_ERR_HTTP},
		{429, "{\"error\":{\"message\":\"Rate limit\",\"code\":\"rate_limit_exceeded\"}}",
		 NULL, LH_LLM_ERR_RATE_LIMITED, true, LH_ERR_HTTP},
		{429, "{\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\","
		      "\"code\":\"insufficient_quota\"}}",
		 NULL, LH_LLM_ERR_AUTH, false, LH_ERR_HTTP},
		{429, NULL, "false", LH_LLM_ERR_RATE_LIMITED, false, LH_ERR_HTTP},
		{500, "not json at all", NULL, LH_LLM_ERR_RETRYABLE, true, LH_ERR_HTTP},
		{500, NULL, "false", LH_LLM_ERR_RETRYABLE, false, LH_ERR_HTTP},
		{501, NULL, NULL, LH_LLM_ERR_RETRYABLE, true, LH_ERR_HTTP},
		{502, NULL, NULL, LH_LLM_ERR_PROVIDER_DOWN, true, LH_ERR_UNAVAILABLE},
		{503, NULL, NULL, LH_LLM_ERR_PROVIDER_DOWN, true, LH_ERR_UNAVAILABLE},
		{504, NULL, NULL, LH_LLM_ERR_TIMEOUT, true, LH_ERR_TIMEOUT},
		{529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}", NULL,
		 LH_LLM_ERR_PROVIDER_DOWN, true, LH_ERR_UNAVAILABLE},
		{400, NULL, "true", LH_LLM_ERR_INVALID_REQUEST, true, LH_ERR_HTTP},
		{302, NULL, NULL, LH_LLM_ERR_INVALID_REQUEST, false, LH_ERR_HTTP},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		lh_llm_error_t e;
		lh_llm_openai_map_error(rows[i].status, rows[i].body,
					rows[i].body ? strlen(rows[i].body) : 0, rows[i].should_retry,
					1234, &e);
		if (e.klass != rows[i].klass || e.error.retriable != rows[i].retry ||
		    e.error.code != rows[i].code)
			fprintf(stderr, "row %zu (status %ld): got %s retry=%d code=%s\n", i,
				rows[i].status, lh_llm_errclass_name(e.klass), e.error.retriable,
				lh_err_name(e.error.code));
		T_EQ_INT(e.klass, rows[i].klass);
		T_EQ_INT(e.error.retriable, rows[i].retry);
		T_EQ_INT(e.error.code, rows[i].code);
		T_EQ_INT(e.http_status, rows[i].status);
		T_EQ_INT(e.retry_after_ms, 1234);
		T_CHECK(strstr(e.error.msg, "http status") != NULL);
	}
	/* an auth failure never echoes the provider's text, which may quote the key */
	{
		lh_llm_error_t e;
		const char *b = "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc***xyz\","
				"\"code\":\"invalid_api_key\"}}";
		lh_llm_openai_map_error(401, b, strlen(b), NULL, -1, &e);
		T_CHECK(strstr(e.error.msg, "sk-abc") == NULL);
		T_CHECK(strstr(e.error.msg, "invalid_api_key") != NULL);
		b = "{\"error\":{\"message\":\"Rate limit reached for gpt-4o\"}}";
		lh_llm_openai_map_error(429, b, strlen(b), NULL, -1, &e);
		T_CHECK(strstr(e.error.msg, "Rate limit reached for gpt-4o") != NULL);
	}
	T_EQ_STR(lh_llm_errclass_name(LH_LLM_ERR_RATE_LIMITED), "rate_limited");
	T_EQ_STR(lh_llm_errclass_name(LH_LLM_ERR_PROVIDER_DOWN), "provider_down");
	T_EQ_STR(lh_llm_finish_name(LH_LLM_FINISH_CONTENT_FILTER), "content_filter");
}

/* ---- retry delay ------------------------------------------------------------------------- */

static void test_retry_delay(void)
{
	long lo_seen[4] = {100000, 100000, 100000, 100000}, hi_seen[4] = {0};
	/* retry-after wins, whatever the attempt */
	T_EQ_INT(lh_llm_retry_delay_ms(0, 1000, 7, 0, 0), 1000);
	T_EQ_INT(lh_llm_retry_delay_ms(5, 0, 7, 0, 0), 0);
	/* deterministic for a seed */
	T_EQ_INT(lh_llm_retry_delay_ms(1, -1, 42, 0, 0), lh_llm_retry_delay_ms(1, -1, 42, 0, 0));
	for (uint64_t seed = 0; seed < 2000; seed++) {
		for (int n = 0; n < 4; n++) {
			long d = lh_llm_retry_delay_ms(n, -1, seed, 0, 0);
			long full = 500L << n;
			T_CHECK(d <= full && d >= full * 3 / 4);
			if (d < lo_seen[n])
				lo_seen[n] = d;
			if (d > hi_seen[n])
				hi_seen[n] = d;
		}
		/* capped at 8 s from the 5th retry on */
		long d = lh_llm_retry_delay_ms(10, -1, seed, 0, 0);
		T_CHECK(d <= 8000 && d >= 6000);
	}
	/* the jitter really spreads over the 25 % band */
	for (int n = 0; n < 4; n++) {
		long full = 500L << n;
		T_CHECK(lo_seen[n] < full * 78 / 100);
		T_CHECK(hi_seen[n] > full * 97 / 100);
	}
	/* custom base and cap */
	T_CHECK(lh_llm_retry_delay_ms(3, -1, 1, 10, 50) <= 50);
	T_CHECK(lh_llm_retry_delay_ms(0, -1, 1, 10, 50) <= 10);
}

static void test_retry_after_parse(void)
{
	T_EQ_INT(lh_http_parse_retry_after("1", 0), 1000);
	T_EQ_INT(lh_http_parse_retry_after(" 20 ", 0), 20000);
	T_EQ_INT(lh_http_parse_retry_after("1.5", 0), 1500);
	T_EQ_INT(lh_http_parse_retry_after("soon", 0), -1);
	T_EQ_INT(lh_http_parse_retry_after("-3", 0), -1);
	T_EQ_INT(lh_http_parse_retry_after("5x", 0), -1);
	T_EQ_INT(lh_http_parse_retry_after(NULL, 0), -1);
	/* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
	T_EQ_INT(lh_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470LL), 10000);
	T_EQ_INT(lh_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490LL), 0);
}

/* ---- scripted ---------------------------------------------------------------------------- */

static void test_scripted_plan_answer(void)
{
	char *s = lh_llm_scripted_answer("plan", "Open a bakery in Lyon", NULL);
	json_t *plan = s ? json_loads(s, 0, NULL) : NULL, *tasks, *t;
	size_t i;

	T_CHECK(plan != NULL);
	tasks = json_object_get(plan, "tasks");
	T_EQ_INT(json_array_size(tasks), 4);
	T_CHECK(json_is_string(json_object_get(plan, "thought")));
	T_EQ_STR(json_string_value(json_object_get(plan, "join")), "Summarize");
	json_array_foreach(tasks, i, t)
	{
		T_EQ_INT(json_integer_value(json_object_get(t, "id")), (long long)i + 1);
		T_CHECK(json_is_string(json_object_get(t, "instructions")));
		T_CHECK(json_is_string(json_object_get(t, "tier")));
	}
	T_EQ_STR(json_string_value(json_object_get(json_array_get(tasks, 0), "instructions")),
		 "Research the background of: Open a bakery in Lyon");
	T_EQ_STR(json_string_value(json_object_get(json_array_get(tasks, 3), "instructions")),
		 "Combine ${2} and ${3} into a recommendation");
	/* deterministic */
	{
		char *again = lh_llm_scripted_answer("plan", "Open a bakery in Lyon", NULL);
		T_EQ_STR(again, s);
		free(again);
	}
	json_decref(plan);
	free(s);

	/* any goal, even one with quotes, newlines and bytes that are not UTF-8 */
	s = lh_llm_scripted_answer("plan", "say \"hi\"\n\tthen \xff\xfe leave", NULL);
	plan = s ? json_loads(s, 0, NULL) : NULL;
	T_CHECK(plan != NULL);
	T_EQ_INT(json_array_size(json_object_get(plan, "tasks")), 4);
	json_decref(plan);
	free(s);

	/* the goal may come from the input's "Goal:" line */
	{
		char *g = lh_llm_scripted_goal("Context: x\nGoal: Build a boat  \nMore");
		T_EQ_STR(g, "Build a boat");
		free(g);
		T_CHECK(lh_llm_scripted_goal("no goal here") == NULL);
	}
}

static void test_scripted_override(void)
{
	const char *goal = "Do the odd thing\n  lh-script: {\"tasks\":[{\"id\":1,\"instructions\":"
			   "\"only\"}]}  \nrest";
	char *s = lh_llm_scripted_answer("plan", goal, NULL);
	T_EQ_STR(s, "{\"tasks\":[{\"id\":1,\"instructions\":\"only\"}]}");
	free(s);
	/* from the input when the goal has none */
	s = lh_llm_scripted_answer("plan", "plain", "Goal: plain\nlh-script: {\"x\":1}");
	T_EQ_STR(s, "{\"x\":1}");
	free(s);
	/* only plans are overridden */
	s = lh_llm_scripted_answer("act", goal, "Write the summary");
	T_EQ_STR(s, "Done: Write the summary");
	free(s);
}

static void test_scripted_join_act(void)
{
	char *s = lh_llm_scripted_answer("join", "Pick a city", "Inputs:\n1: Lyon\n2: Paris");
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;
	T_CHECK(j != NULL);
	T_EQ_STR(json_string_value(json_object_get(j, "decision")), "finish");
	T_CHECK(strstr(json_string_value(json_object_get(j, "answer")), "Lyon") != NULL);
	json_decref(j);
	free(s);

	T_EQ_STR(lh_llm_scripted_kind("You are the planner of Longhaul"), "plan");
	T_EQ_STR(lh_llm_scripted_kind("  You are the joiner."), "join");
	T_EQ_STR(lh_llm_scripted_kind("You are a worker"), "act");
	T_EQ_STR(lh_llm_scripted_kind(NULL), "act");
}

struct got {
	int calls;
	lh_llm_resp_t resp;
	lh_llm_error_t err;
	bool ok;
};

static void on_done(lh_llm_resp_t *resp, const lh_llm_error_t *err, void *opaque)
{
	struct got *g = opaque;
	g->calls++;
	g->ok = resp != NULL;
	if (resp) {
		g->resp = *resp;
		memset(resp, 0, sizeof(*resp)); /* take every field */
	} else {
		g->err = *err;
	}
}

static void test_scripted_provider(void)
{
	struct event_base *base = event_base_new();
	lh_error_t err;
	lh_llm_provider_t *p = lh_llm_scripted_new(base, &err);
	lh_llm_message_t msgs[] = {
		{.role = LH_LLM_ROLE_SYSTEM, .content = "You are the planner."},
		{.role = LH_LLM_ROLE_USER, .content = "Goal: Launch a podcast"},
	};
	lh_llm_req_t req = {.model = "any", .messages = msgs, .n_messages = 2};
	struct got g1 = {0}, g2 = {0};
	json_t *plan;

	T_CHECK(p != NULL);
	T_EQ_INT(lh_llm_call(p, &req, on_done, &g1, &err), LH_OK);
	/* the task kind from the request wins over the system prompt */
	req.task_kind = "act";
	T_EQ_INT(lh_llm_call(p, &req, on_done, &g2, &err), LH_OK);
	T_EQ_INT(g1.calls, 0); /* never synchronous */
	event_base_dispatch(base);
	T_EQ_INT(g1.calls, 1);
	T_EQ_INT(g2.calls, 1);
	T_CHECK(g1.ok);
	T_EQ_STR(g1.resp.model, "scripted");
	T_EQ_INT(g1.resp.finish, LH_LLM_FINISH_STOP);
	plan = g1.resp.content ? json_loads(g1.resp.content, 0, NULL) : NULL;
	T_EQ_INT(json_array_size(json_object_get(plan, "tasks")), 4);
	T_CHECK(strstr(g1.resp.content, "Launch a podcast") != NULL);
	T_EQ_INT(g1.resp.usage.input_tokens, (20 + 22 + 3) / 4);
	T_EQ_INT(g1.resp.usage.output_tokens, (int64_t)(strlen(g1.resp.content) + 3) / 4);
	json_decref(plan);
	T_EQ_STR(g2.resp.content, "Done: Goal: Launch a podcast");
	lh_llm_resp_finish(&g1.resp);
	lh_llm_resp_finish(&g2.resp);

	/* invalid requests fail synchronously, no callback */
	req.model = NULL;
	T_EQ_INT(lh_llm_call(p, &req, on_done, &g1, &err), LH_ERR_INVALID);
	T_EQ_INT(g1.calls, 1);

	/* freeing the provider ends pending calls as cancelled */
	req.model = "m";
	memset(&g1, 0, sizeof(g1));
	T_EQ_INT(lh_llm_call(p, &req, on_done, &g1, &err), LH_OK);
	p = lh_llm_provider_free(p);
	T_EQ_INT(g1.calls, 1);
	T_CHECK(!g1.ok);
	T_EQ_INT(g1.err.klass, LH_LLM_ERR_CANCELLED);
	event_base_free(base);
}

static void test_scripted_schema(void)
{
	struct event_base *base = event_base_new();
	lh_llm_provider_t *p = lh_llm_scripted_new(base, NULL);
	json_t *schema = json_loads(
		"{\"type\":\"object\",\"properties\":{\"summary\":{\"type\":\"string\"},"
		"\"score\":{\"type\":\"integer\",\"minimum\":1},\"tags\":{\"type\":\"array\","
		"\"items\":{\"type\":\"string\"}},\"ok\":{\"type\":\"boolean\"},\"level\":{\"enum\":"
		"[\"low\",\"high\"]},\"note\":{\"type\":[\"string\",\"null\"]}},"
		"\"required\":[\"summary\",\"score\",\"tags\",\"ok\",\"level\",\"note\"]}",
		0, NULL);
	lh_llm_response_schema_t rs = {.name = "out", .schema = schema, .strict = true};
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "Rate the idea"};
	lh_llm_req_t req = {.model = "m", .messages = &msg, .n_messages = 1,
			    .response_schema = &rs, .task_kind = "act"};
	struct got g = {0};
	json_t *out;

	T_EQ_INT(lh_llm_call(p, &req, on_done, &g, NULL), LH_OK);
	event_base_dispatch(base);
	T_CHECK(g.ok);
	out = g.resp.content ? json_loads(g.resp.content, 0, NULL) : NULL;
	T_CHECK(json_is_object(out));
	T_EQ_STR(json_string_value(json_object_get(out, "summary")), "Done: Rate the idea");
	T_EQ_INT(json_integer_value(json_object_get(out, "score")), 1);
	T_EQ_INT(json_array_size(json_object_get(out, "tags")), 1);
	T_CHECK(json_is_true(json_object_get(out, "ok")));
	T_EQ_STR(json_string_value(json_object_get(out, "level")), "low");
	T_CHECK(json_is_string(json_object_get(out, "note")));
	json_decref(out);
	lh_llm_resp_finish(&g.resp);
	lh_llm_provider_free(p);
	json_decref(schema);
	event_base_free(base);
}

int main(int argc, char **argv)
{
	fixtures = argc > 1 ? argv[1] : "tests/fixtures/llm";
	T_RUN(test_body_golden);
	T_RUN(test_body_minimal);
	T_RUN(test_body_errors);
	T_RUN(test_parse_tool_calls);
	T_RUN(test_parse_stop_usage);
	T_RUN(test_parse_finish_reasons);
	T_RUN(test_parse_malformed);
	T_RUN(test_parse_mutations);
	T_RUN(test_error_table);
	T_RUN(test_retry_delay);
	T_RUN(test_retry_after_parse);
	T_RUN(test_scripted_plan_answer);
	T_RUN(test_scripted_override);
	T_RUN(test_scripted_join_act);
	T_RUN(test_scripted_provider);
	T_RUN(test_scripted_schema);
	return t_done();
}
