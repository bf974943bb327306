/* test_anthropic.c — the Anthropic Messages provider (common/llm_anthropic.c): request bodies
 * against golden files, recorded answers, the error table, mutations of the recorded answers,
 * then the provider over HTTP against tests/fakellm (success, retries on 429 and 529, malformed
 * bodies, auth, scripted faults checked with the JSON Schema validator).
 *
 *   test_anthropic FIXTURES_DIR PATH_TO_FAKELLM
 *
 * fakellm runs as a child process on port 0 (its "listening on" line is the readiness signal);
 * faults are selected by a marker in the user message matched by the script below. */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "jsonschema.h"
#include "llm.h"
#include "t.h"

static const char *fixtures, *fakellm_path;
static struct event_base *base;
static lh_http_t *http;
static struct event *watchdog;
static int watchdog_fired;

typedef struct fake {
	pid_t pid;
	char base_url[64]; /* http://127.0.0.1:PORT/v1 */
	char root[64];     /* http://127.0.0.1:PORT */
} fake_t;

static fake_t fk, fk_auth;
static char script_path[] = "/tmp/lh-test-anthropic-XXXXXX";

static const char *script =
    "{\"rules\": [\n"
    " {\"match\": \"[case:429s]\", \"times\": 1, \"status\": 429,"
    "  \"headers\": {\"retry-after\": \"1\"}},\n"
    " {\"match\": \"[case:529]\", \"status\": 529},\n"
    " {\"match\": \"[case:529-once]\", \"times\": 1, \"status\": 529},\n"
    " {\"match\": \"[case:malformed]\", \"action\": \"malformed\"},\n"
    " {\"match\": \"[case:noretry]\", \"status\": 500, \"headers\": {\"x-should-retry\": "
    "\"false\"}},\n"
    " {\"match\": \"[case:bad-args]\", \"action\": \"bad_tool_args\"},\n"
    " {\"match\": \"[case:wrong-schema]\", \"action\": \"wrong_schema\"},\n"
    " {\"match\": \"[case:tools]\", \"content\": \"Let me look.\", \"tool_calls\": ["
    "  {\"name\": \"memory_search\", \"arguments\": {\"query\": \"ducks\"}}]},\n"
    " {\"match\": \"[case:refusal]\", \"refusal\": \"I can't help with that.\"},\n"
    " {\"match\": \"[case:max-tokens]\", \"content\": \"cut\", \"finish_reason\": "
    "\"max_tokens\"},\n"
    " {\"match\": \"[case:hang]\", \"action\": \"hang\"}\n"
    "]}\n";

/* ---- files ------------------------------------------------------------------------------- */

static char *slurp(const char *name, size_t *ret_len)
{
	char path[1024];
	FILE *f;
	char *data;
	long n;
	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	if (!(f = fopen(path, "rb"))) {
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

static void check_golden(json_t *body, const char *name)
{
	json_t *golden = load_fixture(name);
	T_CHECK(body != NULL);
	T_CHECK(golden != NULL);
	T_CHECK(json_equal(body, golden));
	if (body && golden && !json_equal(body, golden)) {
		char *s = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
		fprintf(stderr, "built body for %s:\n%s\n", name, s);
		free(s);
	}
	json_decref(golden);
}

/* ---- request bodies ---------------------------------------------------------------------- */

static void test_body_golden_tools(void)
{
	json_t *search_params =
	    json_loads("{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}},"
		       "\"required\":[\"query\"],\"additionalProperties\":false}",
		       0, NULL);
	lh_llm_tool_call_t calls[] = {
	    {.id = "toolu_1",
	     .name = "memory_search",
	     .arguments_json = "{\"query\":\"postgres release\"}"},
	    {.id = "toolu_2", .name = "ask_human", .arguments = NULL},
	};
	lh_llm_message_t msgs[] = {
	    {.role = LH_LLM_ROLE_SYSTEM, .content = "You are a careful research assistant."},
	    {.role = LH_LLM_ROLE_USER,
	     .content = "Goal: compare two databases\nFind the release dates."},
	    {.role = LH_LLM_ROLE_SYSTEM, .content = "Answer in English."},
	    {.role = LH_LLM_ROLE_ASSISTANT,
	     .content = "I'll look that up.",
	     .tool_calls = calls,
	     .n_tool_calls = 2},
	    {.role = LH_LLM_ROLE_TOOL,
	     .tool_call_id = "toolu_1",
	     .content = "PostgreSQL 15 was released in October 2022."},
	    {.role = LH_LLM_ROLE_TOOL, .tool_call_id = "toolu_2", .content = "no answer"},
	    {.role = LH_LLM_ROLE_USER, .content = "Now summarize."},
	};
	lh_llm_tool_t tools[] = {
	    {.name = "memory_search",
	     .description = "Search the plan's memory",
	     .parameters = search_params,
	     .strict = true},
	    {.name = "ask_human"},
	};
	lh_llm_req_t req = {.model = "claude-sonnet-4-20250514",
			    .messages = msgs,
			    .n_messages = sizeof(msgs) / sizeof(msgs[0]),
			    .tools = tools,
			    .n_tools = 2,
			    .tool_choice = LH_LLM_TOOL_CHOICE_NAMED,
			    .tool_choice_name = "memory_search",
			    .max_output_tokens = 512,
			    .set_temperature = true,
			    .temperature = 0.25,
			    .task_kind = "act"};
	lh_error_t err;
	json_t *body = lh_llm_anthropic_build_body(&req, &err);

	check_golden(body, "request_tools.json");
	T_EQ_INT(search_params->refcount, 2); /* referenced, not stolen nor copied */
	json_decref(body);
	T_EQ_INT(search_params->refcount, 1);
	json_decref(search_params);
}

static void test_body_golden_schema(void)
{
	json_t *schema =
	    json_loads("{\"type\":\"object\",\"properties\":{\"summary\":{\"type\":\"string\"},"
		       "\"confidence\":{\"type\":\"number\"}},\"required\":[\"summary\","
		       "\"confidence\"],"
		       "\"additionalProperties\":false}",
		       0, NULL);
	lh_llm_response_schema_t rs = {.name = "answer", .schema = schema, .strict = true};
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "Rate the two bakeries."};
	lh_llm_req_t req = {.model = "claude-3-5-haiku-20241022",
			    .messages = &msg,
			    .n_messages = 1,
			    .response_schema = &rs};
	json_t *body = lh_llm_anthropic_build_body(&req, NULL);

	check_golden(body, "request_schema.json");
	json_decref(body);
	json_decref(schema);
}

/* Consecutive messages of one role become one message; tool results go first. */
static void test_body_merge(void)
{
	lh_llm_tool_call_t call = {.id = "t1", .name = "f", .arguments_json = "{}"};
	lh_llm_message_t msgs[] = {
		{.role = LH_LLM_ROLE_USER, .content = "q"},
		{.role = LH_LLM_ROLE_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
		{.role = LH_LLM_ROLE_USER, .content = "extra"},
		{.role = LH_LLM_ROLE_TOOL, .tool_call_id = "t1", .content = "r"},
		{.role = LH_LLM_ROLE_ASSISTANT, .content = "a1"},
		{.role = LH_LLM_ROLE_ASSISTANT, .content = "a2"},
	};
	lh_llm_req_t req = {.model = "m", .messages = msgs, .n_messages = 6};
	json_t *body = lh_llm_anthropic_build_body(&req, NULL);
	json_t *want = json_loads(
		"[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]},"
		"{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
		"\"name\":\"f\",\"input\":{}}]},"
		"{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
		"\"content\":\"r\"},{\"type\":\"text\",\"text\":\"extra\"}]},"
		"{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"a1\"},"
		"{\"type\":\"text\",\"text\":\"a2\"}]}]",
		0, NULL);
	T_CHECK(want != NULL);
	T_CHECK(json_equal(json_object_get(body, "messages"), want));
	T_CHECK(json_object_get(body, "system") == NULL);
	json_decref(want);
	json_decref(body);
}

static const char *choice_of(json_t *body)
{
	static char buf[128];
	json_t *tc = json_object_get(body, "tool_choice");
	if (!tc)
		return "(none)";
	snprintf(buf, sizeof(buf), "%s%s%s", json_string_value(json_object_get(tc, "type")),
		 json_object_get(tc, "name") ? ":" : "",
		 json_object_get(tc, "name") ? json_string_value(json_object_get(tc, "name")) : "");
	return buf;
}

static void test_body_tool_choice(void)
{
	json_t *schema = json_pack("{s:s}", "type", "object");
	lh_llm_response_schema_t rs = {.name = "out", .schema = schema};
	lh_llm_tool_t tool = {.name = "search"};
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "hi"};
	static const struct {
		lh_llm_tool_choice_t choice;
		bool schema;
		const char *want;
	} rows[] = {
	    {LH_LLM_TOOL_CHOICE_DEFAULT, false, "(none)"},
	    {LH_LLM_TOOL_CHOICE_AUTO, false, "auto"},
	    {LH_LLM_TOOL_CHOICE_NONE, false, "none"},
	    {LH_LLM_TOOL_CHOICE_REQUIRED, false, "any"},
	    {LH_LLM_TOOL_CHOICE_NAMED, false, "tool:search"},
	    {LH_LLM_TOOL_CHOICE_DEFAULT, true, "tool:out"},
	    {LH_LLM_TOOL_CHOICE_AUTO, true, "any"},
	    {LH_LLM_TOOL_CHOICE_REQUIRED, true, "any"},
	    {LH_LLM_TOOL_CHOICE_NAMED, true, "tool:search"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		lh_llm_req_t req = {.model = "m",
				    .messages = &msg,
				    .n_messages = 1,
				    .tools = &tool,
				    .n_tools = 1,
				    .tool_choice = rows[i].choice,
				    .tool_choice_name = "search",
				    .response_schema = rows[i].schema ? &rs : NULL};
		json_t *body = lh_llm_anthropic_build_body(&req, NULL);
		T_CHECK(body != NULL);
		if (strcmp(choice_of(body), rows[i].want) != 0)
			fprintf(stderr, "row %zu: %s\n", i, choice_of(body));
		T_EQ_STR(choice_of(body), rows[i].want);
		/* the schema's tool comes after the real ones */
		T_EQ_INT(json_array_size(json_object_get(body, "tools")), rows[i].schema ? 2 : 1);
		T_EQ_INT(json_integer_value(json_object_get(body, "max_tokens")),
			 LH_LLM_ANTHROPIC_DEFAULT_MAX_TOKENS);
		json_decref(body);
	}
	json_decref(schema);
}

static void test_body_errors(void)
{
	json_t *obj = json_pack("{s:s}", "type", "object"),
	       *arr = json_pack("{s:s}", "type", "array");
	lh_llm_tool_call_t bad_args = {.id = "t1", .name = "f", .arguments_json = "[1,2]"};
	lh_llm_tool_call_t not_json = {.id = "t1", .name = "f", .arguments_json = "{oops"};
	lh_llm_message_t user = {.role = LH_LLM_ROLE_USER, .content = "hi"};
	lh_llm_message_t sys = {.role = LH_LLM_ROLE_SYSTEM, .content = "only a system prompt"};
	lh_llm_message_t tool_no_id = {.role = LH_LLM_ROLE_TOOL, .content = "x"};
	lh_llm_message_t empty_asst = {.role = LH_LLM_ROLE_ASSISTANT, .content = ""};
	lh_llm_message_t asst_bad[] = {user,
				       {.role = LH_LLM_ROLE_ASSISTANT,
					.tool_calls = &bad_args,
					.n_tool_calls = 1}};
	lh_llm_message_t asst_nj[] = {user,
				      {.role = LH_LLM_ROLE_ASSISTANT,
				       .tool_calls = &not_json,
				       .n_tool_calls = 1}};
	lh_llm_message_t bad_utf8 = {.role = LH_LLM_ROLE_USER, .content = "caf\xe9"};
	lh_llm_tool_t clash = {.name = "out"};
	lh_llm_response_schema_t rs_obj = {.name = "out", .schema = obj};
	lh_llm_response_schema_t rs_arr = {.name = "out", .schema = arr};
	static const char *want[] = {
	    "could not build messages request: no user or assistant message",
	    "could not build messages request: tool message 0 has no tool_call_id",
	    "could not build messages request: message 0 (assistant) is empty",
	    "could not build messages request: message 1: the arguments of tool call \"f\" are "
	    "not a JSON object",
	    "could not build messages request: message 1: the arguments of tool call \"f\" are "
	    "not a JSON object",
	    "could not build messages request: message 0 (user) is not valid UTF-8",
	    "could not build messages request: a response schema is answered through a tool "
	    "call, which tool_choice none forbids",
	    "could not build messages request: tool 0 has the name of the response schema \"out\"",
	    "could not build messages request: response schema \"out\" must have \"type\": "
	    "\"object\" (it becomes a tool's input_schema)",
	};
	lh_llm_req_t reqs[] = {
	    {.model = "m", .messages = &sys, .n_messages = 1},
	    {.model = "m", .messages = &tool_no_id, .n_messages = 1},
	    {.model = "m", .messages = &empty_asst, .n_messages = 1},
	    {.model = "m", .messages = asst_bad, .n_messages = 2},
	    {.model = "m", .messages = asst_nj, .n_messages = 2},
	    {.model = "m", .messages = &bad_utf8, .n_messages = 1},
	    {.model = "m",
	     .messages = &user,
	     .n_messages = 1,
	     .response_schema = &rs_obj,
	     .tool_choice = LH_LLM_TOOL_CHOICE_NONE},
	    {.model = "m",
	     .messages = &user,
	     .n_messages = 1,
	     .response_schema = &rs_obj,
	     .tools = &clash,
	     .n_tools = 1},
	    {.model = "m", .messages = &user, .n_messages = 1, .response_schema = &rs_arr},
	};
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		lh_error_t err = {0};
		T_CHECK(lh_llm_anthropic_build_body(&reqs[i], &err) == NULL);
		T_EQ_INT(err.code, LH_ERR_INVALID);
		T_EQ_STR(err.msg, want[i]);
	}
	json_decref(obj);
	json_decref(arr);
}

/* ---- response parsing -------------------------------------------------------------------- */

static lh_err_t parse_fixture(const char *name, const char *answer_tool, lh_llm_resp_t *resp,
			      lh_llm_error_t *err)
{
	size_t len = 0;
	char *s = slurp(name, &len);
	lh_err_t rc =
	    s ? lh_llm_anthropic_parse_response(s, len, answer_tool, resp, err) : LH_ERR_IO;
	free(s);
	return rc;
}

static void test_parse_text(void)
{
	lh_llm_resp_t r;
	T_EQ_INT(parse_fixture("response_text.json", NULL, &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_STOP);
	T_EQ_STR(r.finish_raw, "end_turn");
	T_EQ_STR(r.content, "Paris is the capital of France.");
	T_EQ_INT(r.n_tool_calls, 0);
	T_CHECK(r.tool_calls == NULL);
	/* input = input + cache creation + cache read; cached = cache read */
	T_EQ_INT(r.usage.input_tokens, 21 + 1800 + 2048);
	T_EQ_INT(r.usage.cached_tokens, 2048);
	T_EQ_INT(r.usage.output_tokens, 12);
	T_EQ_INT(r.usage.reasoning_tokens, 0);
	T_EQ_STR(r.model, "claude-sonnet-4-20250514");
	T_EQ_STR(r.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
	T_EQ_INT(r.attempts, 1);
	lh_llm_resp_finish(&r);
}

static void test_parse_tool_use(void)
{
	lh_llm_resp_t r;
	T_EQ_INT(parse_fixture("response_tool_use.json", NULL, &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_TOOL_CALLS);
	T_EQ_STR(r.content, "I'll search the plan's memory and fetch the page.");
	T_EQ_INT(r.n_tool_calls, 2);
	if (r.n_tool_calls == 2) {
		T_EQ_STR(r.tool_calls[0].id, "toolu_01A09q90qw90lq917835lq9");
		T_EQ_STR(r.tool_calls[0].name, "memory_search");
		T_EQ_STR(r.tool_calls[0].arguments_json,
			 "{\"query\":\"pricing of plan B\",\"limit\":5}");
		T_EQ_INT(json_integer_value(json_object_get(r.tool_calls[0].arguments, "limit")),
			 5);
		T_EQ_STR(r.tool_calls[1].name, "http_fetch");
		T_EQ_STR(json_string_value(json_object_get(r.tool_calls[1].arguments, "url")),
			 "https://example.org");
	}
	T_EQ_INT(r.usage.input_tokens, 1117);
	T_EQ_INT(r.usage.cached_tokens, 0);
	lh_llm_resp_finish(&r);

	/* with an answer tool that is not in the answer, the calls stay calls */
	T_EQ_INT(parse_fixture("response_tool_use.json", "answer", &r, NULL), LH_OK);
	T_EQ_INT(r.n_tool_calls, 2);
	T_EQ_INT(r.finish, LH_LLM_FINISH_TOOL_CALLS);
	lh_llm_resp_finish(&r);
}

static void test_parse_schema_answer(void)
{
	lh_llm_resp_t r;
	json_t *j;
	T_EQ_INT(parse_fixture("response_schema_answer.json", "answer", &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_STOP);
	T_EQ_STR(r.finish_raw, "tool_use");
	T_EQ_INT(r.n_tool_calls, 0);
	j = r.content ? json_loads(r.content, 0, NULL) : NULL;
	T_EQ_STR(json_string_value(json_object_get(j, "summary")), "Two bakeries fit");
	T_CHECK(json_real_value(json_object_get(j, "confidence")) == 0.8);
	json_decref(j);
	lh_llm_resp_finish(&r);

	/* without the answer tool's name it is an ordinary tool call */
	T_EQ_INT(parse_fixture("response_schema_answer.json", NULL, &r, NULL), LH_OK);
	T_EQ_INT(r.finish, LH_LLM_FINISH_TOOL_CALLS);
	T_CHECK(r.content == NULL);
	T_EQ_INT(r.n_tool_calls, 1);
	lh_llm_resp_finish(&r);
}

static void test_parse_stop_reasons(void)
{
	static const struct {
		const char *file;
		lh_llm_finish_t finish;
		const char *raw;
		const char *content;
		const char *refusal;
	} rows[] = {
	    {"response_max_tokens.json", LH_LLM_FINISH_LENGTH, "max_tokens",
	     "The first three steps are: one, two, th", NULL},
	    {"response_refusal.json", LH_LLM_FINISH_REFUSAL, "refusal", NULL,
	     "I can't help with that."},
	    {"response_pause_turn.json", LH_LLM_FINISH_OTHER, "pause_turn", NULL, NULL},
	    {"response_context_exceeded.json", LH_LLM_FINISH_LENGTH,
	     "model_context_window_exceeded", "Partial", NULL},
	    {"response_thinking.json", LH_LLM_FINISH_STOP, "stop_sequence",
	     "Based on my analysis, 42.", NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		lh_llm_resp_t r;
		T_EQ_INT(parse_fixture(rows[i].file, NULL, &r, NULL), LH_OK);
		T_EQ_INT(r.finish, rows[i].finish);
		T_EQ_STR(r.finish_raw, rows[i].raw);
		if (rows[i].content)
			T_EQ_STR(r.content, rows[i].content);
		else
			T_CHECK(r.content == NULL);
		if (rows[i].refusal)
			T_EQ_STR(r.refusal, rows[i].refusal);
		else
			T_CHECK(r.refusal == NULL);
		T_EQ_INT(r.n_tool_calls, 0); /* server tools are not ours to run */
		lh_llm_resp_finish(&r);
	}
}

static void test_parse_malformed(void)
{
	static const struct {
		const char *body;
		const char *msg;
	} rows[] = {
	    {"{\"id\":\"msg_1\",\"content\":[{\"type\":\"te", NULL},
	    {"", NULL},
	    {"{\"id\":\"msg_1\"}", "could not parse messages response: no content array"},
	    {"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream "
	     "exploded\"}}",
	     "could not parse messages response: upstream exploded"},
	    {"{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"input\":{}}]}",
	     "could not parse messages response: tool_use block without name"},
	    {"{\"content\":{\"type\":\"text\"}}", NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		lh_llm_resp_t r;
		lh_llm_error_t e;
		memset(&r, 0x5a, sizeof(r));
		T_EQ_INT(lh_llm_anthropic_parse_response(rows[i].body, strlen(rows[i].body), NULL,
							 &r, &e),
			 LH_ERR_DECODE);
		T_EQ_INT(e.klass, LH_LLM_ERR_MALFORMED);
		T_CHECK(e.error.retriable);
		T_EQ_INT(e.retry_after_ms, -1);
		T_CHECK(((unsigned char *)&r)[0] == 0x5a); /* untouched on failure */
		if (rows[i].msg)
			T_EQ_STR(e.error.msg, rows[i].msg);
	}
	/* odd but accepted: a tool_use whose input is not an object is kept for the tool loop to
	 * report back; a missing input is {} */
	{
		const char *b =
		    "{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
		    "\"input\":\"oops\"},{\"type\":\"tool_use\",\"id\":\"u\",\"name\":\"g\"}]"
		    ",\"stop_reason\":null}";
		lh_llm_resp_t r;
		T_EQ_INT(lh_llm_anthropic_parse_response(b, strlen(b), NULL, &r, NULL), LH_OK);
		T_EQ_INT(r.n_tool_calls, 2);
		T_EQ_INT(r.finish, LH_LLM_FINISH_TOOL_CALLS);
		T_EQ_STR(r.tool_calls[0].arguments_json, "\"oops\"");
		T_CHECK(json_is_string(r.tool_calls[0].arguments));
		T_EQ_STR(r.tool_calls[1].arguments_json, "{}");
		T_CHECK(r.finish_raw == NULL);
		lh_llm_resp_finish(&r);
	}
	/* a refusal wins over an answer tool; counts saturate instead of overflowing */
	{
		const char *b = "{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
				"\"answer\",\"input\":{}}],\"stop_reason\":\"refusal\",\"usage\":{"
				"\"input_tokens\":9223372036854775807,\"cache_read_input_tokens\":"
				"9223372036854775807,\"output_tokens\":-4}}";
		lh_llm_resp_t r;
		T_EQ_INT(lh_llm_anthropic_parse_response(b, strlen(b), "answer", &r, NULL), LH_OK);
		T_EQ_INT(r.finish, LH_LLM_FINISH_REFUSAL);
		T_CHECK(r.content == NULL);
		T_EQ_STR(r.refusal, "the model declined to answer (stop_reason refusal)");
		T_EQ_INT(r.n_tool_calls, 0);
		T_EQ_INT(r.usage.input_tokens, INT64_MAX);
		T_EQ_INT(r.usage.output_tokens, 0);
		lh_llm_resp_finish(&r);
	}
}

/* Deterministic mutations of every recorded answer (byte flips, truncations, spliced JSON
 * tokens): the parser fails cleanly or returns a response that frees cleanly (run under
 * valgrind / ASan). tests/fuzz/fuzz_llm_response.c does the same with a fuzzer. */
static void test_parse_mutations(void)
{
	static const char *names[] = {"response_text.json",          "response_tool_use.json",
				      "response_schema_answer.json", "response_max_tokens.json",
				      "response_refusal.json",       "response_pause_turn.json",
				      "response_thinking.json"};
	static const char *tokens[] = {"null", "[]",          "{}",   "\"\"", "1e999",
				       "-1",   "\"\\u0000\"", "[[[[", "true"};
	uint64_t x = 0x13198a2e03707344ULL;
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
				const char *t =
				    tokens[(x >> 48) % (sizeof(tokens) / sizeof(tokens[0]))];
				size_t tl = strlen(t);
				if (pos + tl <= len)
					memcpy(m + pos, t, tl);
			}
			}
			if (lh_llm_anthropic_parse_response(m, mlen,
							    (x >> 20) & 1 ? "answer" : NULL, &r,
							    &e) == LH_OK) {
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
	char *rate = slurp("error_rate_limit.json", NULL),
	     *over = slurp("error_overloaded.json", NULL);
	static const char *too_long = "{\"type\":\"error\",\"error\":{\"type\":"
				      "\"invalid_request_error\",\"message\":\"prompt is too long: "
				      "208310 tokens > 200000 maximum\"}}";
	static const char *auth =
	    "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
	    "\"message\":\"invalid x-api-key sk-ant-abc\"}}";
	const struct {
		long status;
		const char *body;
		const char *should_retry;
		lh_llm_errclass_t klass;
		bool retry;
		lh_err_t code;
	} rows[] = {
	    {429, rate, NULL, LH_LLM_ERR_RATE_LIMITED, true, LH_ERR_HTTP},
	    {529, over, NULL, LH_LLM_ERR_PROVIDER_DOWN, true, LH_ERR_UNAVAILABLE},
	    {500, over, NULL, LH_LLM_ERR_PROVIDER_DOWN, true, LH_ERR_UNAVAILABLE},
	    {500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}", NULL,
	     LH_LLM_ERR_RETRYABLE, true, LH_ERR_HTTP},
	    {500, NULL, "false", LH_LLM_ERR_RETRYABLE, false, LH_ERR_HTTP},
	    {503, NULL, NULL, LH_LLM_ERR_PROVIDER_DOWN, true, LH_ERR_UNAVAILABLE},
	    {502, "<html>bad gateway</html>", NULL, LH_LLM_ERR_PROVIDER_DOWN, true,
	     LH_ERR_UNAVAILABLE},
	    {504, NULL, NULL, LH_LLM_ERR_TIMEOUT, true, LH_ERR_TIMEOUT},
	    {408, NULL, NULL, LH_LLM_ERR_TIMEOUT, true, LH_ERR_TIMEOUT},
	    {409, NULL, NULL, LH_LLM_ERR_RETRYABLE, true, LH_ERR_HTTP},
	    {400, too_long, NULL, LH_LLM_ERR_TOO_LARGE, false, LH_ERR_TOO_LARGE},
	    {400,
	     "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
	     "\"max_tokens: Field required\"}}",
	     NULL, LH_LLM_ERR_INVALID_REQUEST, false, LH_ERR_HTTP},
	    {413, NULL, NULL, LH_LLM_ERR_TOO_LARGE, false, LH_ERR_TOO_LARGE},
	    {401, auth, NULL, LH_LLM_ERR_AUTH, false, LH_ERR_HTTP},
	    {402, NULL, NULL, LH_LLM_ERR_AUTH, false, LH_ERR_HTTP},
	    {403, NULL, NULL, LH_LLM_ERR_AUTH, false, LH_ERR_HTTP},
	    {404, NULL, NULL, LH_LLM_ERR_INVALID_REQUEST, false, LH_ERR_HTTP},
	    {429, rate, "false", LH_LLM_ERR_RATE_LIMITED, false, LH_ERR_HTTP},
	    {400, NULL, "true", LH_LLM_ERR_INVALID_REQUEST, true, LH_ERR_HTTP},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		lh_llm_error_t e;
		lh_llm_anthropic_map_error(rows[i].status, rows[i].body,
					   rows[i].body ? strlen(rows[i].body) : 0,
					   rows[i].should_retry, 777, &e);
		if (e.klass != rows[i].klass || e.error.retriable != rows[i].retry ||
		    e.error.code != rows[i].code)
			fprintf(stderr, "row %zu (status %ld): got %s retry=%d code=%s\n", i,
				rows[i].status, lh_llm_errclass_name(e.klass), e.error.retriable,
				lh_err_name(e.error.code));
		T_EQ_INT(e.klass, rows[i].klass);
		T_EQ_INT(e.error.retriable, rows[i].retry);
		T_EQ_INT(e.error.code, rows[i].code);
		T_EQ_INT(e.http_status, rows[i].status);
		T_EQ_INT(e.retry_after_ms, 777);
	}
	{
		lh_llm_error_t e;
		lh_llm_anthropic_map_error(429, rate, strlen(rate), NULL, -1, &e);
		T_EQ_STR(e.error.msg,
			 "messages request failed with http status 429: rate_limit_error: "
			 "Number of request tokens has exceeded your per-minute rate "
			 "limit");
		/* an auth failure never echoes the provider's text, which may quote the key */
		lh_llm_anthropic_map_error(401, auth, strlen(auth), NULL, -1, &e);
		T_EQ_STR(e.error.msg,
			 "messages request failed with http status 401: authentication_error");
		lh_llm_anthropic_map_error(503, NULL, 0, NULL, -1, &e);
		T_EQ_STR(e.error.msg, "messages request failed with http status 503");
	}
	free(rate);
	free(over);
}

/* ---- over HTTP against fakellm ----------------------------------------------------------- */

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	watchdog_fired = 1;
}

static void run_until(const int *done)
{
	struct timeval tv = {60, 0};
	watchdog_fired = 0;
	evtimer_add(watchdog, &tv);
	while (!*done && !watchdog_fired)
		event_base_loop(base, EVLOOP_ONCE);
	evtimer_del(watchdog);
	T_CHECK(!watchdog_fired);
}

static bool fake_start(fake_t *f, const char *a1, const char *a2)
{
	int fds[2];
	FILE *in;
	char line[256];
	unsigned port = 0;

	memset(f, 0, sizeof(*f));
	if (pipe(fds) != 0)
		return false;
	f->pid = fork();
	if (f->pid < 0)
		return false;
	if (f->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(fakellm_path, fakellm_path, "--port", "0", a1, a2, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in || !fgets(line, sizeof(line), in) ||
	    sscanf(line, "listening on 127.0.0.1:%u", &port) != 1) {
		fprintf(stderr, "fakellm did not start\n");
		if (in)
			fclose(in);
		return false;
	}
	fclose(in);
	snprintf(f->root, sizeof(f->root), "http://127.0.0.1:%u", port);
	snprintf(f->base_url, sizeof(f->base_url), "http://127.0.0.1:%u/v1", port);
	return true;
}

static int fake_stop(fake_t *f)
{
	int status = -1;
	if (f->pid <= 0)
		return -1;
	kill(f->pid, SIGTERM);
	while (waitpid(f->pid, &status, 0) < 0 && errno == EINTR)
		;
	f->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct hres {
	int done;
	long status;
	char *body;
};

static void on_http(lh_http_resp_t *resp, void *opaque)
{
	struct hres *h = opaque;
	h->done++;
	h->status = resp->status;
	h->body = lh_buf_steal(&resp->body, NULL);
}

static long do_http(lh_http_req_t *req, struct hres *h)
{
	memset(h, 0, sizeof(*h));
	if (lh_http_request(http, req, on_http, h, NULL, NULL) != LH_OK)
		return -1;
	run_until(&h->done);
	return h->status;
}

static long stat_of(const fake_t *f, const char *key, const char *sub)
{
	char url[96];
	lh_http_req_t req = {.url = url};
	struct hres h;
	json_t *j = NULL;
	long v = -1;
	snprintf(url, sizeof(url), "%s/stats", f->root);
	if (do_http(&req, &h) == 200)
		j = json_loads(h.body, 0, NULL);
	free(h.body);
	if (j) {
		json_t *x = json_object_get(j, key);
		if (sub)
			x = json_object_get(x, sub);
		v = x ? (long)json_integer_value(x) : 0;
	}
	json_decref(j);
	return v;
}

struct got {
	int done;
	bool ok;
	lh_llm_resp_t resp;
	lh_llm_error_t err;
};

static void on_llm(lh_llm_resp_t *resp, const lh_llm_error_t *err, void *opaque)
{
	struct got *g = opaque;
	g->done++;
	g->ok = resp != NULL;
	if (resp) {
		g->resp = *resp;
		memset(resp, 0, sizeof(*resp));
	} else {
		g->err = *err;
	}
}

static lh_llm_provider_t *provider(const fake_t *f, int max_retries, const char *key)
{
	lh_llm_openai_opts_t o = {.max_retries = max_retries,
				  .retry_base_ms = 20,
				  .retry_cap_ms = 100,
				  .jitter_seed = 1};
	lh_error_t err;
	lh_llm_provider_t *p = lh_llm_anthropic_new(http, f->base_url, key, &o, &err);
	T_CHECK(p != NULL);
	return p;
}

static void call_req(lh_llm_provider_t *p, const lh_llm_req_t *req, struct got *g)
{
	lh_error_t err;
	memset(g, 0, sizeof(*g));
	T_EQ_INT(lh_llm_call(p, req, on_llm, g, &err), LH_OK);
	T_EQ_INT(g->done, 0);
	run_until(&g->done);
	T_EQ_INT(g->done, 1);
}

static void call_once(lh_llm_provider_t *p, const char *system, const char *user, struct got *g)
{
	lh_llm_message_t msgs[2] = {{.role = LH_LLM_ROLE_SYSTEM, .content = system},
				    {.role = LH_LLM_ROLE_USER, .content = user}};
	lh_llm_req_t req = {.model = "claude-fake",
			    .messages = system ? msgs : msgs + 1,
			    .n_messages = system ? 2 : 1};
	call_req(p, &req, g);
}

static void test_http_success(void)
{
	lh_llm_provider_t *p = provider(&fk, 0, NULL);
	struct got g;
	long before = stat_of(&fk, "messages_requests", NULL);
	char *same = lh_llm_scripted_answer("plan", "Grow tomatoes", NULL);

	call_once(p, "You are the planner. Reply with JSON.", "Goal: Grow tomatoes\nBe brief.", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.attempts, 1);
	T_EQ_STR(g.resp.model, "claude-fake");
	T_CHECK(g.resp.id && strncmp(g.resp.id, "msg_fake_", 9) == 0);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_STOP);
	T_EQ_STR(g.resp.finish_raw, "end_turn");
	T_EQ_STR(g.resp.content, same); /* the in-process scripted model's answer */
	T_CHECK(g.resp.usage.input_tokens > 0 && g.resp.usage.output_tokens > 0);
	lh_llm_resp_finish(&g.resp);
	free(same);
	T_EQ_INT(stat_of(&fk, "messages_requests", NULL) - before, 1);

	/* a long prompt reads from the cache: input counts cache reads and writes */
	{
		char *big = malloc(8001);
		memset(big, 'a', 8000);
		big[8000] = 0;
		call_once(p, NULL, big, &g);
		T_CHECK(g.ok);
		T_EQ_INT(g.resp.usage.input_tokens, 2000 + 3); /* ceil(8000 / 4) + 3 per message */
		T_EQ_INT(g.resp.usage.cached_tokens, 896);     /* half, in 128-token steps */
		lh_llm_resp_finish(&g.resp);
		free(big);
	}
	lh_llm_provider_free(p);
}

/* A tool round trip: the body with tool_use and tool_result blocks is accepted by fakellm, and
 * the scripted tool call comes back parsed. */
static void test_http_tools(void)
{
	lh_llm_provider_t *p = provider(&fk, 0, NULL);
	lh_llm_tool_call_t call = {.id = "toolu_x",
				   .name = "memory_search",
				   .arguments_json = "{\"query\":\"ducks\"}"};
	lh_llm_message_t msgs[] = {
	    {.role = LH_LLM_ROLE_SYSTEM, .content = "You are a worker"},
	    {.role = LH_LLM_ROLE_USER, .content = "find ducks"},
	    {.role = LH_LLM_ROLE_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
	    {.role = LH_LLM_ROLE_TOOL, .tool_call_id = "toolu_x", .content = "3 ducks"},
	};
	lh_llm_tool_t tool = {.name = "memory_search"};
	lh_llm_req_t req = {.model = "m",
			    .messages = msgs,
			    .n_messages = 4,
			    .tools = &tool,
			    .n_tools = 1};
	struct got g;
	long bad = stat_of(&fk, "bad_requests", NULL);

	call_req(p, &req, &g);
	T_CHECK(g.ok);
	T_EQ_STR(g.resp.content, "Done: 3 ducks"); /* the last user message: the result */
	lh_llm_resp_finish(&g.resp);

	call_once(p, "You are a worker", "look [case:tools]", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_TOOL_CALLS);
	T_EQ_STR(g.resp.content, "Let me look.");
	T_EQ_INT(g.resp.n_tool_calls, 1);
	if (g.resp.n_tool_calls == 1) {
		T_EQ_STR(g.resp.tool_calls[0].name, "memory_search");
		T_CHECK(strncmp(g.resp.tool_calls[0].id, "toolu_fake_", 11) == 0);
		T_EQ_STR(g.resp.tool_calls[0].arguments_json, "{\"query\":\"ducks\"}");
	}
	lh_llm_resp_finish(&g.resp);

	call_once(p, NULL, "[case:refusal]", &g);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_REFUSAL);
	T_EQ_STR(g.resp.refusal, "I can't help with that.");
	T_CHECK(g.resp.content == NULL);
	lh_llm_resp_finish(&g.resp);
	call_once(p, NULL, "[case:max-tokens]", &g);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_LENGTH);
	T_EQ_STR(g.resp.content, "cut");
	lh_llm_resp_finish(&g.resp);
	T_EQ_INT(stat_of(&fk, "bad_requests", NULL), bad);
	lh_llm_provider_free(p);
}

/* Structured output through the forced tool, and the scripted faults that break it — found by
 * validating with common/jsonschema.c as the worker would. */
static void test_http_schema_and_faults(void)
{
	lh_llm_provider_t *p = provider(&fk, 0, NULL);
	json_t *join = json_loads("{\"type\":\"object\",\"additionalProperties\":false,"
				  "\"required\":[\"decision\"],\"properties\":{\"decision\":{"
				  "\"enum\":[\"finish\",\"replan\",\"escalate\"]},\"answer\":{},"
				  "\"reason\":{\"type\":\"string\"}}}",
				  0, NULL);
	json_t *params = json_loads("{\"type\":\"object\",\"required\":[\"query\"],\"properties\":{"
				    "\"query\":{\"type\":\"string\"},\"limit\":{\"type\":"
				    "\"integer\"}}}",
				    0, NULL);
	lh_llm_response_schema_t rs = {.name = "join_output", .schema = join, .strict = true};
	lh_llm_message_t msgs[] = {{.role = LH_LLM_ROLE_SYSTEM, .content = "You are the joiner."},
				   {.role = LH_LLM_ROLE_USER, .content = "Goal: pick\n1: Lyon"}};
	lh_llm_req_t req = {.model = "m", .messages = msgs, .n_messages = 2, .response_schema = &rs};
	lh_jsonschema_t *js = NULL, *ps = NULL;
	lh_error_t err = {0};
	struct got g;
	json_t *v;

	T_EQ_INT(lh_jsonschema_compile(join, &js, &err), LH_OK);
	T_EQ_INT(lh_jsonschema_compile(params, &ps, &err), LH_OK);
	call_req(p, &req, &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.finish, LH_LLM_FINISH_STOP);
	T_EQ_INT(g.resp.n_tool_calls, 0);
	v = g.resp.content ? json_loads(g.resp.content, 0, NULL) : NULL;
	T_EQ_INT(lh_jsonschema_validate(js, v, &err), LH_OK);
	T_EQ_STR(json_string_value(json_object_get(v, "decision")), "finish");
	json_decref(v);
	lh_llm_resp_finish(&g.resp);

	msgs[1].content = "Goal: pick\n1: Lyon [case:wrong-schema]";
	call_req(p, &req, &g);
	T_CHECK(g.ok);
	v = g.resp.content ? json_loads(g.resp.content, 0, NULL) : NULL;
	T_CHECK(v != NULL);
	T_EQ_INT(lh_jsonschema_validate(js, v, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "(root): missing required property \"decision\"");
	json_decref(v);
	lh_llm_resp_finish(&g.resp);

	/* a tool call whose input has the wrong types */
	{
		lh_llm_tool_t tool = {.name = "memory_search", .parameters = params};
		lh_llm_message_t m = {.role = LH_LLM_ROLE_USER, .content = "go [case:bad-args]"};
		lh_llm_req_t treq = {.model = "m",
				     .messages = &m,
				     .n_messages = 1,
				     .tools = &tool,
				     .n_tools = 1};
		call_req(p, &treq, &g);
		T_CHECK(g.ok);
		T_EQ_INT(g.resp.n_tool_calls, 1);
		if (g.resp.n_tool_calls == 1) {
			T_EQ_STR(g.resp.tool_calls[0].name, "memory_search");
			T_EQ_INT(lh_jsonschema_validate(ps, g.resp.tool_calls[0].arguments, &err),
				 LH_ERR_SCHEMA);
			T_EQ_STR(err.msg, "/query: expected string, got integer 12345");
		}
		lh_llm_resp_finish(&g.resp);
	}
	lh_jsonschema_free(js);
	lh_jsonschema_free(ps);
	json_decref(join);
	json_decref(params);
	lh_llm_provider_free(p);
}

static void test_http_429_then_success(void)
{
	lh_llm_provider_t *p = provider(&fk, 0, NULL);
	struct got g;
	long before = stat_of(&fk, "messages_requests", NULL);
	long r429 = stat_of(&fk, "responses", "429");

	/* retry-after: 1 (seconds) is obeyed, not the 20 ms backoff */
	call_once(p, NULL, "hello [case:429s]", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.attempts, 2);
	T_CHECK(g.resp.latency_ms >= 950);
	T_EQ_INT(stat_of(&fk, "messages_requests", NULL) - before, 2);
	T_EQ_INT(stat_of(&fk, "responses", "429") - r429, 1);
	lh_llm_resp_finish(&g.resp);
	lh_llm_provider_free(p);
}

static void test_http_529(void)
{
	lh_llm_provider_t *p = provider(&fk, 0 /* default: 2 retries */, NULL);
	struct got g;
	long before = stat_of(&fk, "messages_requests", NULL);
	long r529 = stat_of(&fk, "responses", "529");

	call_once(p, NULL, "[case:529]", &g);
	T_CHECK(!g.ok);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_PROVIDER_DOWN);
	T_EQ_INT(g.err.error.code, LH_ERR_UNAVAILABLE);
	T_CHECK(g.err.error.retriable);
	T_EQ_INT(g.err.http_status, 529);
	T_EQ_INT(g.err.attempts, 3);
	T_EQ_STR(g.err.error.msg,
		 "messages request failed with http status 529: overloaded_error: Overloaded");
	T_EQ_INT(stat_of(&fk, "messages_requests", NULL) - before, 3);
	T_EQ_INT(stat_of(&fk, "responses", "529") - r529, 3);

	/* overloaded once, then answered */
	call_once(p, NULL, "[case:529-once] then fine", &g);
	T_CHECK(g.ok);
	T_EQ_INT(g.resp.attempts, 2);
	lh_llm_resp_finish(&g.resp);

	/* x-should-retry: false wins over the status */
	before = stat_of(&fk, "messages_requests", NULL);
	call_once(p, NULL, "[case:noretry]", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_RETRYABLE);
	T_CHECK(!g.err.error.retriable);
	T_EQ_INT(g.err.attempts, 1);
	T_EQ_INT(stat_of(&fk, "messages_requests", NULL) - before, 1);
	lh_llm_provider_free(p);
}

static void test_http_malformed(void)
{
	lh_llm_provider_t *p = provider(&fk, -1, NULL);
	struct got g;
	long before = stat_of(&fk, "malformed", NULL);

	call_once(p, NULL, "[case:malformed]", &g);
	T_CHECK(!g.ok);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_MALFORMED);
	T_EQ_INT(g.err.http_status, 200);
	T_CHECK(g.err.error.retriable);
	T_EQ_INT(g.err.attempts, 1);
	T_CHECK(strncmp(g.err.error.msg, "could not parse messages response: ", 35) == 0);
	T_EQ_INT(stat_of(&fk, "malformed", NULL) - before, 1);
	lh_llm_provider_free(p);

	/* with retries, every try is malformed */
	p = provider(&fk, 2, NULL);
	before = stat_of(&fk, "malformed", NULL);
	call_once(p, NULL, "[case:malformed]", &g);
	T_EQ_INT(g.err.attempts, 3);
	T_EQ_INT(stat_of(&fk, "malformed", NULL) - before, 3);
	lh_llm_provider_free(p);
}

/* fakellm's own checks of a Messages request: the version header, max_tokens, roles. */
static void test_http_fakellm_rejects(void)
{
	static const struct {
		bool version;
		const char *body;
		const char *msg;
	} rows[] = {
	    {false,
	     "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
	     "\"content\":\"hi\"}]}",
	     "anthropic-version: header is required"},
	    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	     "max_tokens: Field required"},
	    {true,
	     "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\","
	     "\"content\":\"hi\"}]}",
	     "messages.0.role: Input should be 'user' or 'assistant'"},
	    {true,
	     "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
	     "\"content\":[{\"text\":\"no type\"}]}]}",
	     "messages.0.content: Input should be a string or a list of blocks"},
	    {true, "not json", NULL},
	};
	char url[96];
	const char *with[] = {"Content-Type: application/json", "anthropic-version: 2023-06-01"};
	long before = stat_of(&fk, "bad_requests", NULL);

	snprintf(url, sizeof(url), "%s/messages", fk.base_url);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		lh_http_req_t req = {.url = url,
				     .body = rows[i].body,
				     .body_len = strlen(rows[i].body),
				     .headers = with,
				     .n_headers = rows[i].version ? 2 : 1};
		struct hres h;
		json_t *j;
		T_EQ_INT(do_http(&req, &h), 400);
		j = h.body ? json_loads(h.body, 0, NULL) : NULL;
		T_EQ_STR(json_string_value(json_object_get(j, "type")), "error");
		T_EQ_STR(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
			 "invalid_request_error");
		if (rows[i].msg)
			T_EQ_STR(json_string_value(
				     json_object_get(json_object_get(j, "error"), "message")),
				 rows[i].msg);
		json_decref(j);
		free(h.body);
	}
	T_EQ_INT(stat_of(&fk, "bad_requests", NULL) - before, 5);
}

static void test_http_auth(void)
{
	lh_llm_provider_t *good = provider(&fk_auth, -1, "sk-ant-test-123");
	lh_llm_provider_t *bad = provider(&fk_auth, 2, "sk-ant-wrong");
	lh_llm_provider_t *none = provider(&fk_auth, 2, NULL);
	struct got g;

	call_once(good, NULL, "hi", &g);
	T_CHECK(g.ok);
	lh_llm_resp_finish(&g.resp);
	call_once(bad, NULL, "hi", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_AUTH);
	T_EQ_INT(g.err.http_status, 401);
	T_EQ_INT(g.err.attempts, 1);
	T_CHECK(strstr(g.err.error.msg, "sk-") == NULL);
	call_once(none, NULL, "hi", &g);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_AUTH);
	lh_llm_provider_free(good);
	lh_llm_provider_free(bad);
	lh_llm_provider_free(none);

	{
		lh_error_t err;
		T_CHECK(lh_llm_anthropic_new(http, fk.base_url, "sk\r\nX-Evil: 1", NULL, &err) ==
			NULL);
		T_EQ_INT(err.code, LH_ERR_INVALID);
		T_CHECK(lh_llm_anthropic_new(NULL, fk.base_url, NULL, NULL, &err) == NULL);
	}
}

static void test_http_cancel(void)
{
	lh_llm_provider_t *p = provider(&fk, 2, NULL);
	lh_llm_message_t msg = {.role = LH_LLM_ROLE_USER, .content = "[case:hang]"};
	lh_llm_req_t req = {.model = "m", .messages = &msg, .n_messages = 1};
	struct got g;
	lh_http_stats_t st;

	memset(&g, 0, sizeof(g));
	T_EQ_INT(lh_llm_call(p, &req, on_llm, &g, NULL), LH_OK);
	lh_llm_cancel_all(p);
	T_EQ_INT(g.done, 1);
	T_EQ_INT(g.err.klass, LH_LLM_ERR_CANCELLED);
	lh_http_stats(http, &st);
	T_EQ_INT(st.in_flight, 0);
	/* invalid requests fail at once, no callback */
	req.n_messages = 0;
	memset(&g, 0, sizeof(g));
	T_EQ_INT(lh_llm_call(p, &req, on_llm, &g, NULL), LH_ERR_INVALID);
	T_EQ_INT(g.done, 0);
	lh_llm_provider_free(p);
}

int main(int argc, char **argv)
{
	int fd, rc;

	if (argc < 3) {
		fprintf(stderr, "usage: test_anthropic FIXTURES_DIR PATH_TO_FAKELLM\n");
		return 2;
	}
	fixtures = argv[1];
	fakellm_path = argv[2];
	T_RUN(test_body_golden_tools);
	T_RUN(test_body_golden_schema);
	T_RUN(test_body_merge);
	T_RUN(test_body_tool_choice);
	T_RUN(test_body_errors);
	T_RUN(test_parse_text);
	T_RUN(test_parse_tool_use);
	T_RUN(test_parse_schema_answer);
	T_RUN(test_parse_stop_reasons);
	T_RUN(test_parse_malformed);
	T_RUN(test_parse_mutations);
	T_RUN(test_error_table);

	signal(SIGPIPE, SIG_IGN);
	fd = mkstemp(script_path);
	if (fd < 0 || write(fd, script, strlen(script)) != (ssize_t)strlen(script)) {
		perror("script");
		return 1;
	}
	close(fd);
	if (!fake_start(&fk, "--script", script_path) ||
	    !fake_start(&fk_auth, "--api-key", "sk-ant-test-123")) {
		unlink(script_path);
		return 1;
	}
	base = event_base_new();
	watchdog = evtimer_new(base, on_watchdog, NULL);
	http = lh_http_new(base, NULL, NULL);

	T_RUN(test_http_success);
	T_RUN(test_http_tools);
	T_RUN(test_http_schema_and_faults);
	T_RUN(test_http_429_then_success);
	T_RUN(test_http_529);
	T_RUN(test_http_malformed);
	T_RUN(test_http_fakellm_rejects);
	T_RUN(test_http_auth);
	T_RUN(test_http_cancel);

	lh_http_free(http);
	event_free(watchdog);
	event_base_free(base);
	rc = fake_stop(&fk);
	if (rc != 0)
		fprintf(stderr, "FAIL fakellm exit status %d\n", rc);
	t_failed += rc != 0;
	t_failed += fake_stop(&fk_auth) != 0;
	unlink(script_path);
	return t_done();
}
