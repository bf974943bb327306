/* test_summarize — worker/summarize_parse.c: the summary answer's strict parser (table), the
 * prompt's bounds, how events read in a span, the order's stable id; worker/summarize.c: which
 * orders are rolling-summary orders. */
#include <stdlib.h>

#include "summarize.h"
#include "t.h"

#define OK4 "\"artifacts\":[],\"breadcrumbs\":\"\",\"open_questions\":\"\""

static void parse_table(void)
{
	static const struct {
		const char *text;
		lh_err_t want;
		size_t n_artifacts;
		const char *artifacts; /* one a line */
	} cases[] = {
		{"{\"play_by_play\":\"Task 1 wrote /srv/a.txt.\"," OK4 "}", LH_OK, 0, ""},
		{"```json\n{\"play_by_play\":\" p \",\"artifacts\":[\" /srv/a.txt \",\"OPS-12\"],"
		 "\"breadcrumbs\":\"task 1's output\",\"open_questions\":\"\"}\n```\n",
		 LH_OK, 2, "/srv/a.txt\nOPS-12"},
		/* refusals */
		{"", LH_ERR_DECODE, 0, NULL},
		{"not json", LH_ERR_DECODE, 0, NULL},
		{"[]", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\"}", LH_ERR_DECODE, 0, NULL},			/* missing keys */
		{"{\"play_by_play\":\"\"," OK4 "}", LH_ERR_DECODE, 0, NULL},		/* empty */
		{"{\"play_by_play\":\"  \"," OK4 "}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\"," OK4 ",\"intent\":\"x\"}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\",\"play_by_play\":\"q\"," OK4 "}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":1," OK4 "}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"a\\u0000b\"," OK4 "}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\",\"artifacts\":\"/a\",\"breadcrumbs\":\"\","
		 "\"open_questions\":\"\"}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\",\"artifacts\":[\"a\\nb\"],\"breadcrumbs\":\"\","
		 "\"open_questions\":\"\"}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\",\"artifacts\":[\" \"],\"breadcrumbs\":\"\","
		 "\"open_questions\":\"\"}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\",\"artifacts\":[2],\"breadcrumbs\":\"\","
		 "\"open_questions\":\"\"}", LH_ERR_DECODE, 0, NULL},
		{"{\"play_by_play\":\"p\",\"artifacts\":[],\"breadcrumbs\":null,"
		 "\"open_questions\":\"\"}", LH_ERR_DECODE, 0, NULL},
		{"```json\n{\"play_by_play\":\"p\"," OK4 "}", LH_ERR_DECODE, 0, NULL},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		lh_summarize_answer_t a = {.play_by_play = (char *)"untouched"};
		lh_error_t err = {0};
		lh_err_t rc = lh_summarize_parse(cases[c].text, strlen(cases[c].text), &a, &err);
		if (rc != cases[c].want)
			fprintf(stderr, "case %zu: %s\n", c, err.msg);
		T_EQ_INT(rc, cases[c].want);
		if (rc != LH_OK) {
			T_CHECK(err.msg[0] != '\0');
			T_EQ_STR(a.play_by_play, "untouched");
			continue;
		}
		T_EQ_INT(a.n_artifacts, cases[c].n_artifacts);
		T_EQ_STR(a.artifacts, cases[c].artifacts);
		lh_summarize_answer_finish(&a);
	}
}

/* bounds: one artifact over the byte limit, one too many artifacts, a section over its limit */
static void parse_bounds(void)
{
	lh_buf_t b;
	lh_summarize_answer_t a;
	lh_error_t err = {0};
	char *big = malloc(LH_SUMMARIZE_MAX_SECTION + 2);
	memset(big, 'x', LH_SUMMARIZE_MAX_SECTION + 1);
	big[LH_SUMMARIZE_MAX_SECTION + 1] = '\0';
	lh_buf_init(&b);
	lh_buf_printf(&b, "{\"play_by_play\":\"%s\"," OK4 "}", big);
	T_EQ_INT(lh_summarize_parse(b.data, b.len, &a, &err), LH_ERR_DECODE);
	lh_buf_reset(&b);
	big[LH_SUMMARIZE_MAX_ARTIFACT + 1] = '\0';
	lh_buf_printf(&b, "{\"play_by_play\":\"p\",\"artifacts\":[\"%s\"],\"breadcrumbs\":\"\","
			  "\"open_questions\":\"\"}", big);
	T_EQ_INT(lh_summarize_parse(b.data, b.len, &a, &err), LH_ERR_DECODE);
	lh_buf_reset(&b);
	lh_buf_appends(&b, "{\"play_by_play\":\"p\",\"breadcrumbs\":\"\",\"open_questions\":\"\","
			   "\"artifacts\":[");
	for (int i = 0; i <= LH_SUMMARIZE_MAX_ARTIFACTS; i++)
		lh_buf_printf(&b, "%s\"/a/%d.txt\"", i ? "," : "", i);
	lh_buf_appends(&b, "]}");
	T_EQ_INT(lh_summarize_parse(b.data, b.len, &a, &err), LH_ERR_DECODE);
	free(big);
	lh_buf_finish(&b);
}

static void render_events(void)
{
	lh_buf_t b;
	json_t *ok = json_pack("{s:s, s:s}", "worker_id", "w", "output", "wrote /srv/report.md for OPS-7");
	json_t *plan_out = json_pack("{s:s}", "output", "{\"tasks\":[]}");
	json_t *failed = json_pack("{s:s, s:s}", "error_class", "timeout", "message", "took too long");
	json_t *dec = json_pack("{s:s, s:s}", "kind", "retry", "reasoning", "backoff 2 s");
	json_t *hb = json_pack("{s:s}", "worker_id", "w");
	lh_buf_init(&b);
	T_CHECK(lh_summarize_render_event(&b, 7, "attempt.succeeded", 2, 1, ok, "act", "Write it", 0));
	T_CHECK(!lh_summarize_render_event(&b, 8, "attempt.heartbeat", 2, 1, hb, "act", NULL, 0));
	T_CHECK(lh_summarize_render_event(&b, 9, "attempt.failed", 3, 1, failed, NULL, NULL, 0));
	T_CHECK(lh_summarize_render_event(&b, 10, "decision.logged", -1, 0, dec, NULL, NULL, 0));
	/* a planner's output is its plan version (plan.created shows it): left out */
	T_CHECK(!lh_summarize_render_event(&b, 11, "attempt.succeeded", 0, 1, plan_out, "plan",
					   "Goal", 0));
	lh_buf_append(&b, "", 1);
	T_EQ_STR(b.data, "[7] task 2 (act) attempt 1 succeeded\n  instructions: Write it\n"
			 "  output: wrote /srv/report.md for OPS-7\n"
			 "[9] task 3 attempt 1 failed (timeout): took too long\n"
			 "[10] decision retry: backoff 2 s\n");
	/* cut at a UTF-8 boundary, marked */
	lh_buf_reset(&b);
	json_object_set_new(ok, "output", json_string("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"));
	T_CHECK(lh_summarize_render_event(&b, 1, "attempt.succeeded", 1, 1, ok, "act", NULL, 40));
	lh_buf_append(&b, "", 1);
	T_CHECK(strstr(b.data, " [cut]\n") != NULL);
	T_CHECK(strlen(b.data) <= 40 + strlen(" [cut]\n"));
	{
		json_t *valid = json_string(b.data); /* NULL unless valid UTF-8 */
		T_CHECK(valid != NULL);
		json_decref(valid);
	}
	T_CHECK(lh_summarize_relevant("input.provided") && !lh_summarize_relevant("task.ready"));
	T_CHECK(strstr(lh_summarize_relevant_types(), "plan.revised") != NULL);
	lh_buf_finish(&b);
	json_decref(ok);
	json_decref(plan_out);
	json_decref(failed);
	json_decref(dec);
	json_decref(hb);
}

static void prompt_bounds(void)
{
	lh_summary_t s;
	char *span = malloc(5001), *p;
	memset(span, 'e', 5000);
	span[5000] = '\0';
	lh_summary_init(&s, 12, "Migrate the billing service");
	p = lh_summarize_prompt(&s, 12, 30, span, 1000);
	T_CHECK(strstr(p, "Plan intent:\nMigrate the billing service\n") != NULL);
	T_CHECK(strstr(p, "Open questions so far:\n(none)\n") != NULL);
	T_CHECK(strstr(p, "New events (log offsets 12 to 29):\n") != NULL);
	T_CHECK(strstr(p, " [cut]\n") != NULL);
	T_CHECK(strlen(p) < 1000 + 200);
	free(p);
	free(span);
	lh_summary_finish(&s);
}

static void keep_tail(void)
{
	char *t = strdup("first paragraph\n\nsecond one\n\nthird"), *u = NULL;
	lh_summarize_keep_tail(&t, 100); /* short: untouched */
	T_EQ_STR(t, "first paragraph\n\nsecond one\n\nthird");
	lh_summarize_keep_tail(&t, 10); /* the tail from its first whole paragraph */
	T_CHECK(strstr(t, "older versions") != NULL);
	T_CHECK(strstr(t, "first") == NULL && strstr(t, "second") == NULL);
	T_CHECK(strlen(t) > 5 && !strcmp(t + strlen(t) - 5, "third"));
	free(t);
	/* no paragraph break in the tail: cut at a character start */
	t = strdup("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	lh_summarize_keep_tail(&t, 3);
	{
		json_t *valid = json_string(t);
		T_CHECK(valid != NULL);
		json_decref(valid);
	}
	T_CHECK(!strcmp(t + strlen(t) - 2, "\xc3\xa9"));
	free(t);
	lh_summarize_keep_tail(&u, 3); /* NULL stays NULL */
	T_CHECK(u == NULL);
}

static void attempt_messages(void)
{
	lh_llm_tool_call_t call = {.id = "c1", .name = "memory_search",
				   .arguments_json = "{\"query\":\"x\"}"};
	lh_llm_message_t m[4] = {
		{.role = LH_LLM_ROLE_USER, .content = "Task: dig"},
		{.role = LH_LLM_ROLE_ASSISTANT, .content = "looking at /srv/a/step-1.log",
		 .tool_calls = &call, .n_tool_calls = 1},
		{.role = LH_LLM_ROLE_TOOL, .content = "{\"memories\":[]}", .tool_call_id = "c1"},
		{.role = LH_LLM_ROLE_ASSISTANT, .content = "done"},
	};
	size_t to = 0;
	char *t = lh_summarize_messages_text(m, 1, 4, 0, 100000, &to), *p;
	lh_summary_t s, plan, both;
	T_EQ_INT(to, 4);
	T_EQ_STR(t, "[1] assistant: looking at /srv/a/step-1.log\n  -> memory_search({\"query\":\"x\"})\n"
		    "[2] tool result: {\"memories\":[]}\n[3] assistant: done\n");
	free(t);
	/* bounded: at least one message, then only what fits */
	t = lh_summarize_messages_text(m, 1, 4, 0, 10, &to);
	T_EQ_INT(to, 2);
	free(t);
	t = lh_summarize_messages_text(m, 1, 4, 12, 100000, &to);
	T_CHECK(strstr(t, "[1] assistan [cut]\n") != NULL);
	free(t);
	lh_summary_init(&s, 0, "dig");
	p = lh_summarize_attempt_prompt(&s, 1, 4, "TEXT", 1000);
	T_CHECK(strstr(p, "Task:\ndig\n") && strstr(p, "New messages of this attempt (1 to 3):\nTEXT"));
	free(p);
	/* the context's summary: the plan's with the attempt's folded in */
	free(s.play_by_play);
	s.play_by_play = strdup("read step 1");
	lh_summary_add_artifact(&s, "/srv/a/step-1.log");
	lh_summary_init(&plan, 7, "the goal");
	free(plan.play_by_play);
	plan.play_by_play = strdup("task 1 done");
	lh_summarize_combine(&plan, &s, &both);
	T_EQ_STR(both.intent, "the goal");
	T_EQ_STR(both.play_by_play, "task 1 done\n\nThis attempt so far: read step 1");
	T_EQ_INT(both.n_artifacts, 1);
	T_EQ_INT(both.anchor, 7);
	lh_summary_finish(&both);
	lh_summarize_combine(NULL, &s, &both); /* no plan summary yet */
	T_EQ_STR(both.intent, "dig");
	T_EQ_STR(both.play_by_play, "This attempt so far: read step 1");
	lh_summary_finish(&both);
	lh_summary_finish(&plan);
	lh_summary_finish(&s);
}

static void order_ids(void)
{
	lh_id_t plan = lh_uuid7_new(), a = lh_summarize_order_id(&plan, 3, 1),
		b = lh_summarize_order_id(&plan, 3, 1), c = lh_summarize_order_id(&plan, 3, 2);
	T_CHECK(lh_id_eq(&a, &b));
	T_CHECK(!lh_id_eq(&a, &c));
}

static void is_order(void)
{
	lh_task_order_t o = {.kind = "summarize", .tier = "fast", .instructions = "x"};
	lh_event_t ev = {.type = LH_EV_TASK_ORDER, .body = &o};
	T_CHECK(!lh_summarize_is_order(&ev)); /* a plan's own summarize task */
	o.inputs = json_pack("{s:s}", "subject", "");
	T_CHECK(lh_summarize_is_order(&ev));
	o.kind = "act";
	T_CHECK(!lh_summarize_is_order(&ev));
	json_decref(o.inputs);
}

int main(void)
{
	T_RUN(parse_table);
	T_RUN(parse_bounds);
	T_RUN(render_events);
	T_RUN(prompt_bounds);
	T_RUN(keep_tail);
	T_RUN(attempt_messages);
	T_RUN(order_ids);
	T_RUN(is_order);
	return t_done();
}
