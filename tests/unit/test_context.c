/* test_context — common/context.c: token estimates, layered assembly within the window, and a
 * 2,000-message history folded through the anchored summary (common/summary.c). In-process. */
#include <stdlib.h>

#include "buf.h"
#include "context.h"
#include "t.h"

static void estimates(void)
{
	static const struct {
		const char *family;
		size_t bytes;
		long want;
	} cases[] = {
		{"gpt-4o", 400, 100},  {"gpt", 401, 101},	  {"o3-mini", 8, 2},
		{"openai", 0, 0},      {"claude-sonnet-4", 350, 100}, {"anthropic", 351, 101},
		{NULL, 300, 100},      {"llama3", 301, 101},	  {"", 3, 1},
		{"omni", 4, 2}, /* "o" without a digit is not an OpenAI reasoning model */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		T_EQ_INT(lh_context_estimate_bytes(cases[i].family, cases[i].bytes), cases[i].want);
	T_EQ_INT(lh_context_estimate_tokens("gpt", NULL), 0);
	T_EQ_INT(lh_context_estimate_tokens("gpt", "abcdefgh"), 2);
	lh_llm_tool_call_t tc = {.id = "call_1", .name = "http_fetch", .arguments_json = "{\"u\":1}"};
	lh_llm_message_t m = {.role = LH_LLM_ROLE_ASSISTANT, .content = "abcd", .tool_calls = &tc,
			      .n_tool_calls = 1};
	T_EQ_INT(lh_context_message_tokens("gpt", &m), LH_CONTEXT_MSG_OVERHEAD + 1 + 2 + 3 + 2);
	T_CHECK(lh_context_estimate_error(110, 100) > 0.099 && lh_context_estimate_error(110, 100) < 0.101);
	T_CHECK(lh_context_estimate_error(90, 100) < -0.099);
	T_CHECK(lh_context_estimate_error(5, 0) == 0.0);
}

static char *repeat(const char *unit, size_t times)
{
	size_t n = strlen(unit);
	char *s = malloc(n * times + 1);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * n, unit, n);
	s[n * times] = '\0';
	return s;
}

/* Independent checks of one assembly: within budget, intent and trail present, a contiguous
 * suffix kept in order, the verbatim layer filled greedily. */
static void check_assembly(const lh_context_opts_t *o, const lh_context_inputs_t *in,
			   const lh_llm_message_t *out, size_t n, const lh_context_report_t *rep)
{
	long total = 0, budget = o->window - o->reserve_output;
	size_t kept = n - 1;
	for (size_t i = 0; i < n; i++)
		total += lh_context_message_tokens(o->family, &out[i]);
	T_CHECK(total <= budget);
	T_CHECK(rep->tokens <= budget);
	T_CHECK(total <= rep->tokens);
	T_EQ_INT(out[0].role, LH_LLM_ROLE_SYSTEM);
	if (in->goal && *in->goal)
		T_CHECK(strstr(out[0].content, in->goal) != NULL);
	if (in->constraints && *in->constraints)
		T_CHECK(strstr(out[0].content, in->constraints) != NULL);
	for (size_t i = 0; in->summary && i < in->summary->n_artifacts; i++)
		T_CHECK(strstr(out[0].content, in->summary->artifacts[i]) != NULL);
	T_EQ_INT(rep->n_dropped + kept, in->n_messages);
	for (size_t i = 0; i < kept; i++) {
		const lh_llm_message_t *src = &in->messages[rep->n_dropped + i];
		T_EQ_INT(out[1 + i].role, src->role);
		if (!(rep->newest_truncated && i == kept - 1))
			T_CHECK(out[1 + i].content == src->content);
	}
	if (kept)
		T_CHECK(out[1].role != LH_LLM_ROLE_TOOL);
	/* greedy: the newest dropped message would not have fit (unless dropped for a tool pair) */
	if (rep->n_dropped && !rep->newest_truncated && kept &&
	    in->messages[rep->n_dropped].role != LH_LLM_ROLE_TOOL &&
	    in->messages[rep->n_dropped - 1].role != LH_LLM_ROLE_TOOL)
		T_CHECK(rep->tokens + lh_context_message_tokens(o->family,
								&in->messages[rep->n_dropped - 1]) >
			budget);
}

static void assemble_table(void)
{
	static const long windows[] = {0, 4, 8, 40, 64, 120, 200, 500, 1000, 4000, 8000, 16000, 128000};
	static const char *const families[] = {"gpt", "claude", NULL};
	char *huge = repeat("all work and no play ", 20000); /* ~420 KB */
	char *big_status = repeat("task 3 running; ", 2000);
	char *big_pbp = repeat("step done, moved on. ", 3000);
	static const char *const mems[] = {"the API key lives in vault path secret/api",
					   "deploys happen on Tuesdays", "the CSV has 12 columns"};
	lh_llm_message_t msgs[300];
	lh_llm_tool_call_t tc = {.id = "c1", .name = "http_fetch", .arguments_json = "{}"};
	lh_summary_t sum;
	lh_error_t err = {0};
	const char *sec[LH_SUMMARY__COUNT] = {0};
	char *texts[300];
	for (int i = 0; i < 300; i++) {
		texts[i] = malloc(64);
		snprintf(texts[i], 64, "message %d with some words in it", i);
		msgs[i] = (lh_llm_message_t){.role = i % 3 == 0   ? LH_LLM_ROLE_USER
						     : i % 3 == 1 ? LH_LLM_ROLE_ASSISTANT
								  : LH_LLM_ROLE_TOOL,
					     .content = texts[i]};
		if (i % 3 == 1) {
			msgs[i].tool_calls = &tc;
			msgs[i].n_tool_calls = 1;
		} else if (i % 3 == 2)
			msgs[i].tool_call_id = "c1";
	}
	lh_summary_init(&sum, 0, "original intent");
	sec[LH_SUMMARY_PLAY_BY_PLAY] = big_pbp;
	sec[LH_SUMMARY_OPEN_QUESTIONS] = "is the CSV final?";
	sec[LH_SUMMARY_BREADCRUMBS] = "GET /v1/report again";
	T_EQ_INT(lh_summary_merge(&sum, 0, 50, sec, "wrote /out/r.csv for ABC-12", &err), LH_OK);
	lh_llm_message_t huge_msg = {.role = LH_LLM_ROLE_USER, .content = huge};
	const struct {
		const char *name;
		lh_context_inputs_t in;
	} inputs[] = {
		{"empty", {0}},
		{"typical",
		 {.system = "You are a worker agent.", .goal = "write the report", .constraints = "no PII",
		  .plan_status = "2 of 5 tasks done", .decisions = "use CSV", .summary = &sum,
		  .memories = mems, .n_memories = 3, .messages = msgs, .n_messages = 30}},
		{"many", {.goal = "g", .messages = msgs, .n_messages = 300}},
		{"huge-single", {.goal = "g", .messages = &huge_msg, .n_messages = 1}},
		{"huge-system", {.system = huge, .goal = "g", .plan_status = big_status,
				 .decisions = huge, .summary = &sum, .memories = mems, .n_memories = 3,
				 .messages = msgs, .n_messages = 300}},
		{"huge-intent", {.goal = huge, .messages = msgs, .n_messages = 10}},
		{"summary-intent-only", {.summary = &sum, .messages = msgs + 1, .n_messages = 5}},
	};
	int ok = 0, too_large = 0, invalid = 0;
	for (size_t f = 0; f < 3; f++)
		for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++)
			for (size_t c = 0; c < sizeof(inputs) / sizeof(inputs[0]); c++) {
				lh_context_opts_t o = {.family = families[f], .window = windows[w],
						       .reserve_output = windows[w] / 8};
				lh_arena_t *arena = lh_arena_new(0);
				lh_llm_message_t *out = NULL;
				size_t n = 0;
				lh_context_report_t rep;
				lh_err_t rc = lh_context_assemble(&o, &inputs[c].in, arena, &out, &n, &rep,
								  &err);
				t_case_name = inputs[c].name;
				if (rc == LH_OK) {
					ok++;
					check_assembly(&o, &inputs[c].in, out, n, &rep);
				} else if (rc == LH_ERR_TOO_LARGE) {
					/* only when the intent and trail alone exceed the budget */
					long need = LH_CONTEXT_MSG_OVERHEAD +
						    lh_context_estimate_tokens(o.family, inputs[c].in.goal);
					too_large++;
					T_CHECK(strstr(err.msg, "could not assemble context") != NULL);
					if (strcmp(inputs[c].name, "huge-intent") != 0)
						T_CHECK(windows[w] <= 500);
					else
						T_CHECK(need > o.window - o.reserve_output);
				} else {
					T_EQ_INT(rc, LH_ERR_INVALID);
					T_CHECK(windows[w] - windows[w] / 8 <= LH_CONTEXT_MSG_OVERHEAD);
					invalid++;
				}
				lh_arena_free(arena);
			}
	t_case_name = "assemble_table";
	T_CHECK(ok > 100);
	T_CHECK(too_large > 0);
	T_CHECK(invalid > 0);
	lh_summary_finish(&sum);
	for (int i = 0; i < 300; i++)
		free(texts[i]);
	free(huge);
	free(big_status);
	free(big_pbp);
}

/* Specific layer behaviour at one comfortable window. */
static void layers(void)
{
	lh_llm_message_t msgs[40];
	char *texts[40];
	const char *mems[] = {"memory one", "memory two"};
	lh_context_opts_t o = {.family = "gpt", .window = 2000, .reserve_output = 500};
	lh_context_report_t rep;
	lh_error_t err = {0};
	lh_arena_t *arena = lh_arena_new(0);
	lh_llm_message_t *out;
	size_t n;
	for (int i = 0; i < 40; i++) {
		texts[i] = repeat("x", 200); /* 50 tokens + 4 */
		msgs[i] = (lh_llm_message_t){.role = LH_LLM_ROLE_USER, .content = texts[i]};
	}
	lh_context_inputs_t in = {.system = "sys", .goal = "the goal", .memories = mems,
				  .n_memories = 2, .messages = msgs, .n_messages = 40};
	T_EQ_INT(lh_context_assemble(&o, &in, arena, &out, &n, &rep, &err), LH_OK);
	/* unused layer budget went to the verbatim layer: ~1,450 tokens of 54-token messages */
	T_CHECK(n - 1 >= 26);
	T_EQ_INT(rep.n_memories_dropped, 0);
	T_CHECK(strstr(out[0].content, "memory two") != NULL);
	T_CHECK(out[n - 1].content == texts[39]);
	check_assembly(&o, &in, out, n, &rep);
	/* memory budget of one item: the second is dropped whole */
	o.memory_budget = 12;
	T_EQ_INT(lh_context_assemble(&o, &in, arena, &out, &n, &rep, &err), LH_OK);
	T_EQ_INT(rep.n_memories_dropped, 1);
	T_CHECK(strstr(out[0].content, "memory one") != NULL);
	T_CHECK(strstr(out[0].content, "memory two") == NULL);
	/* a tool result is never the first kept message */
	o.memory_budget = 0;
	for (int i = 0; i < 40; i++)
		msgs[i].role = i % 2 ? LH_LLM_ROLE_TOOL : LH_LLM_ROLE_ASSISTANT;
	T_EQ_INT(lh_context_assemble(&o, &in, arena, &out, &n, &rep, &err), LH_OK);
	T_EQ_INT(out[1].role, LH_LLM_ROLE_ASSISTANT);
	check_assembly(&o, &in, out, n, &rep);
	for (int i = 0; i < 40; i++)
		free(texts[i]);
	lh_arena_free(arena);
}

/* The key decisions (task.order "decisions", as the worker joins them) are in the core layer,
 * within the window; with a small core budget they keep their head and the window still holds. */
static void decisions_layer(void)
{
	lh_llm_message_t msgs[30];
	char *texts[30];
	const char *dec = "- plan v2: replan requested: task 3 died: provider timed out\n"
			  "- approval (budget, task 0): approved by human ana: go on";
	lh_context_opts_t o = {.family = "gpt", .window = 1500, .reserve_output = 300};
	lh_context_report_t rep;
	lh_error_t err = {0};
	lh_arena_t *arena = lh_arena_new(0);
	lh_llm_message_t *out;
	size_t n;
	for (int i = 0; i < 30; i++) {
		texts[i] = repeat("y", 200);
		msgs[i] = (lh_llm_message_t){.role = LH_LLM_ROLE_USER, .content = texts[i]};
	}
	lh_context_inputs_t in = {.system = "sys", .goal = "the goal", .plan_status = "Task 4",
				  .decisions = dec, .messages = msgs, .n_messages = 30};
	T_EQ_INT(lh_context_assemble(&o, &in, arena, &out, &n, &rep, &err), LH_OK);
	T_CHECK(strstr(out[0].content, "# Key decisions\n") != NULL);
	T_CHECK(strstr(out[0].content, dec) != NULL);
	T_CHECK(!rep.core_truncated);
	T_CHECK(rep.n_dropped > 0); /* the verbatim layer overflowed, the decisions stayed */
	T_CHECK(rep.core_tokens >= lh_context_estimate_tokens("gpt", dec));
	check_assembly(&o, &in, out, n, &rep);
	/* a core budget that holds the intent and part of the decisions: cut, still in the window */
	o.core_budget = lh_context_estimate_tokens("gpt", "the goal") + 40;
	T_EQ_INT(lh_context_assemble(&o, &in, arena, &out, &n, &rep, &err), LH_OK);
	T_CHECK(rep.core_truncated);
	T_CHECK(strstr(out[0].content, "replan requested") == NULL ||
		strstr(out[0].content, "approved by human ana: go on") == NULL);
	T_CHECK(rep.core_tokens <= o.core_budget + LH_CONTEXT_MSG_OVERHEAD);
	check_assembly(&o, &in, out, n, &rep);
	for (int i = 0; i < 30; i++)
		free(texts[i]);
	lh_arena_free(arena);
}

/* 2,000 messages, a small window: each overflow folds exactly the dropped span into the summary.
 * Every message is summarized exactly once and every path and id survives in the trail although
 * the fake summarizer "forgets" them (its artifact section is empty). */
static void fold_history(void)
{
	enum { N = 2000 };
	static char texts[N][160];
	lh_llm_message_t msgs[N];
	int summarized[N] = {0};
	lh_summary_t sum;
	lh_error_t err = {0};
	lh_context_opts_t o = {.family = "claude", .window = 12000, .reserve_output = 1000,
			       .summary_budget = 6000};
	long spans = 0, assemblies = 0;
	lh_summary_init(&sum, 0, "migrate the billing service");
	for (int i = 0; i < N; i++) {
		if (i % 10 == 0)
			snprintf(texts[i], sizeof(texts[i]), "msg %d: edited /srv/billing/mod%d.c for BILL-%d",
				 i, i, i);
		else if (i % 37 == 0)
			snprintf(texts[i], sizeof(texts[i]),
				 "msg %d: event 0190a1b2-c3d4-7e5f-8a9b-%012d, see https://ci.example/run/%d", i, i, i);
		else
			snprintf(texts[i], sizeof(texts[i]), "msg %d: ordinary progress words %*s", i,
				 i % 50, "");
		msgs[i] = (lh_llm_message_t){.role = i % 2 ? LH_LLM_ROLE_ASSISTANT : LH_LLM_ROLE_USER,
					     .content = texts[i]};
	}
	/* messages arrive one at a time; the verbatim window is messages[anchor, i] */
	for (int i = 0; i < N; i++) {
		lh_context_inputs_t in = {.system = "You are a worker.", .goal = "migrate billing",
					  .summary = &sum, .messages = msgs + sum.anchor,
					  .n_messages = (size_t)(i + 1 - sum.anchor)};
		lh_arena_t *arena = lh_arena_new(0);
		lh_llm_message_t *out;
		size_t n;
		lh_context_report_t rep;
		T_EQ_INT(lh_context_assemble(&o, &in, arena, &out, &n, &rep, &err), LH_OK);
		check_assembly(&o, &in, out, n, &rep);
		assemblies++;
		/* the summarize task runs once a batch of dropped messages accumulated (until then
		 * they are simply out of the context) */
		if (rep.n_dropped >= 25) {
			/* the summarize task: play-by-play only, artifacts forgotten */
			lh_buf_t span;
			char pbp[64];
			const char *sec[LH_SUMMARY__COUNT] = {0};
			int64_t from = sum.anchor, to = sum.anchor + (int64_t)rep.n_dropped;
			lh_buf_init(&span);
			for (int64_t k = from; k < to; k++) {
				summarized[k]++;
				lh_buf_appends(&span, texts[k]);
				lh_buf_appends(&span, "\n");
			}
			snprintf(pbp, sizeof(pbp), "messages %lld-%lld handled", (long long)from,
				 (long long)to - 1);
			sec[LH_SUMMARY_PLAY_BY_PLAY] = pbp;
			T_EQ_INT(lh_summary_merge(&sum, from, to, sec, span.data, &err), LH_OK);
			/* the same span again is refused */
			T_EQ_INT(lh_summary_merge(&sum, from, to, sec, span.data, &err), LH_ERR_CONFLICT);
			lh_buf_finish(&span);
			spans++;
		}
		lh_arena_free(arena);
	}
	/* end of the attempt: fold what is left */
	if (sum.anchor < N) {
		lh_buf_t span;
		lh_buf_init(&span);
		for (int64_t k = sum.anchor; k < N; k++) {
			summarized[k]++;
			lh_buf_appends(&span, texts[k]);
			lh_buf_appends(&span, "\n");
		}
		T_EQ_INT(lh_summary_merge(&sum, sum.anchor, N, NULL, span.data, &err), LH_OK);
		lh_buf_finish(&span);
		spans++;
	}
	T_CHECK(spans > 5);
	T_EQ_INT(sum.n_spans, spans);
	T_EQ_INT(sum.anchor, N);
	for (int i = 0; i < N; i++)
		T_EQ_INT(summarized[i], 1);
	for (int i = 0; i < N; i++) {
		char want[96];
		int found = 0;
		if (i % 10 == 0)
			snprintf(want, sizeof(want), "/srv/billing/mod%d.c", i);
		else if (i % 37 == 0)
			snprintf(want, sizeof(want), "0190a1b2-c3d4-7e5f-8a9b-%012d", i);
		else
			continue;
		for (size_t k = 0; k < sum.n_artifacts && !found; k++)
			found = strcmp(sum.artifacts[k], want) == 0;
		T_CHECK(found);
		if (i % 10 == 0) {
			snprintf(want, sizeof(want), "BILL-%d", i);
			found = 0;
			for (size_t k = 0; k < sum.n_artifacts && !found; k++)
				found = strcmp(sum.artifacts[k], want) == 0;
			T_CHECK(found);
		}
	}
	fprintf(stderr, "fold_history: %ld assemblies, %ld spans, %zu artifacts\n", assemblies, spans,
		sum.n_artifacts);
	lh_summary_finish(&sum);
}

int main(void)
{
	T_RUN(estimates);
	T_RUN(assemble_table);
	T_RUN(layers);
	T_RUN(decisions_layer);
	T_RUN(fold_history);
	return t_done();
}
