/* test_transcript: an attempt's conversation as its result event carries it (worker/transcript.h):
 * the provider-neutral form of each role, the final answer appended, and the inline bound that
 * leaves out the oldest messages and counts them. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "transcript.h"

static const lh_llm_tool_call_t CALL = {.id = "call_1", .name = "http_fetch",
					.arguments_json = "{\"url\":\"https://example.org/a\"}"};

static const char *str(json_t *a, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(a, i), key));
}

static void forms(void)
{
	lh_llm_message_t m[] = {
		{.role = LH_LLM_ROLE_SYSTEM, .content = "You are a worker."},
		{.role = LH_LLM_ROLE_USER, .content = "Fetch /a"},
		{.role = LH_LLM_ROLE_ASSISTANT, .tool_calls = &CALL, .n_tool_calls = 1},
		{.role = LH_LLM_ROLE_TOOL, .content = "{\"status\":200}", .tool_call_id = "call_1"},
	};
	size_t dropped = 99;
	json_t *a = lh_transcript_json(m, 4, "done: /srv/a.txt", 0, &dropped);
	T_CHECK(a && json_array_size(a) == 5);
	T_EQ_INT((long)dropped, 0);
	T_EQ_STR(str(a, 0, "role"), "system");
	T_EQ_STR(str(a, 0, "content"), "You are a worker.");
	T_CHECK(!json_object_get(json_array_get(a, 0), "tool_calls"));
	T_EQ_STR(str(a, 1, "role"), "user");
	T_EQ_STR(str(a, 2, "role"), "assistant");
	T_CHECK(json_is_null(json_object_get(json_array_get(a, 2), "content")));
	json_t *calls = json_object_get(json_array_get(a, 2), "tool_calls");
	T_CHECK(json_array_size(calls) == 1);
	T_EQ_STR(json_string_value(json_object_get(json_array_get(calls, 0), "name")), "http_fetch");
	T_EQ_STR(json_string_value(json_object_get(json_array_get(calls, 0), "arguments")),
		 "{\"url\":\"https://example.org/a\"}");
	T_EQ_STR(str(a, 3, "role"), "tool");
	T_EQ_STR(str(a, 3, "tool_call_id"), "call_1");
	T_EQ_STR(str(a, 4, "role"), "assistant");
	T_EQ_STR(str(a, 4, "content"), "done: /srv/a.txt");
	json_decref(a);
	/* no final answer (a failed attempt); nothing at all */
	a = lh_transcript_json(m, 2, NULL, 0, NULL);
	T_CHECK(a && json_array_size(a) == 2);
	json_decref(a);
	a = lh_transcript_json(NULL, 0, NULL, 0, &dropped);
	T_CHECK(a && json_array_size(a) == 0);
	T_EQ_INT((long)dropped, 0);
	json_decref(a);
	/* invalid UTF-8 cannot be a JSON string: the message stays, its content null */
	lh_llm_message_t bad = {.role = LH_LLM_ROLE_USER, .content = "caf\xc3"};
	a = lh_transcript_json(&bad, 1, NULL, 0, NULL);
	T_CHECK(a && json_array_size(a) == 1);
	T_EQ_STR(str(a, 0, "role"), "user");
	T_CHECK(json_is_null(json_object_get(json_array_get(a, 0), "content")));
	json_decref(a);
}

static void bounded(void)
{
	enum { N = 40 };
	lh_llm_message_t m[N];
	char *text[N];
	size_t dropped = 0;
	for (int i = 0; i < N; i++) {
		text[i] = malloc(1001);
		memset(text[i], 'a' + i % 26, 1000);
		text[i][1000] = 0;
		m[i] = (lh_llm_message_t){.role = i % 2 ? LH_LLM_ROLE_ASSISTANT : LH_LLM_ROLE_USER,
					  .content = text[i]};
	}
	json_t *a = lh_transcript_json(m, N, "final", 10000, &dropped);
	char *enc = json_dumps(a, JSON_COMPACT);
	T_CHECK(enc && strlen(enc) <= 10000);
	/* the newest kept, the oldest gone and counted */
	T_EQ_INT((long)(json_array_size(a) + dropped), N + 1);
	T_CHECK(dropped >= 30 && dropped < N);
	T_EQ_STR(str(a, json_array_size(a) - 1, "content"), "final");
	T_EQ_STR(str(a, json_array_size(a) - 2, "content"), text[N - 1]);
	free(enc);
	json_decref(a);
	/* a bound smaller than the newest message alone: that one is kept all the same */
	a = lh_transcript_json(m, N, NULL, 10, &dropped);
	T_CHECK(json_array_size(a) == 1 && dropped == N - 1);
	T_EQ_STR(str(a, 0, "content"), text[N - 1]);
	json_decref(a);
	/* within the bound: nothing dropped */
	a = lh_transcript_json(m, 3, NULL, 1 << 20, &dropped);
	T_CHECK(json_array_size(a) == 3 && dropped == 0);
	json_decref(a);
	for (int i = 0; i < N; i++)
		free(text[i]);
}

int main(void)
{
	T_RUN(forms);
	T_RUN(bounded);
	return t_done();
}
