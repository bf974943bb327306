/* summarize_parse.c — the pure half of the rolling-summary writer (summarize.h): prompts, the
 * strict parser of the model's answer, the order id, and how an event reads in a span. No I/O. */
#include "summarize.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "text.h"

const char LH_SUMMARIZE_SYSTEM[] =
	"You keep the running summary of a long-running agent plan. You get the plan's intent, "
	"its open questions so far, and the new events since the last summary (task outputs, "
	"failures, questions and answers, approvals, decisions, plan revisions), each with its log "
	"offset. Describe only the new events. Answer with JSON only, exactly these four keys: "
	"{\"play_by_play\": \"what happened in these events, in order, in a few short sentences\", "
	"\"artifacts\": [\"every file path, id, ticket, URL or name the events mention, one item "
	"each, verbatim\"], \"breadcrumbs\": \"how a later task can re-fetch details (which task's "
	"output, which file, which URL); empty when nothing\", \"open_questions\": \"the questions "
	"still open after these events, including earlier ones not yet answered; empty when none\"}.";

const char LH_SUMMARIZE_ATTEMPT_SYSTEM[] =
	"You keep the running summary of one long task attempt of an agent. Its oldest messages "
	"no longer fit the model's window: you get the task, the open questions so far, and those "
	"messages (the agent's turns, tool calls and tool results), each with its index. Describe "
	"only these messages. Answer with JSON only, exactly these four keys: {\"play_by_play\": "
	"\"what the agent did and found in these messages, in order, in a few short sentences\", "
	"\"artifacts\": [\"every file path, id, ticket, URL or name they mention, one item each, "
	"verbatim\"], \"breadcrumbs\": \"how to re-fetch details (which tool, which query, which "
	"URL); empty when nothing\", \"open_questions\": \"the questions still open; empty when "
	"none\"}.";

void lh_summarize_answer_finish(lh_summarize_answer_t *a)
{
	if (!a)
		return;
	free(a->play_by_play);
	free(a->artifacts);
	free(a->breadcrumbs);
	free(a->open_questions);
	memset(a, 0, sizeof(*a));
}

/* A text section: a string without NUL bytes, at most LH_SUMMARIZE_MAX_SECTION bytes. */
static char *section(json_t *root, const char *key, lh_error_t *err)
{
	json_t *v = json_object_get(root, key);
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;
	if (!s) {
		lh_error_set(err, LH_ERR_DECODE,
			     "could not parse the summary answer: \"%s\" must be a string", key);
		return NULL;
	}
	if (memchr(s, '\0', n) || n > LH_SUMMARIZE_MAX_SECTION) {
		lh_error_set(err, LH_ERR_DECODE,
			     "could not parse the summary answer: \"%s\" holds a NUL byte or is over "
			     "%d bytes",
			     key, LH_SUMMARIZE_MAX_SECTION);
		return NULL;
	}
	return lh_strndup_trim(s, n);
}

lh_err_t lh_summarize_parse(const char *text, size_t len, lh_summarize_answer_t *ret,
			    lh_error_t *err)
{
	static const char *const keys[] = {"play_by_play", "artifacts", "breadcrumbs",
					   "open_questions"};
	json_t *root, *arr, *v;
	const char *key;
	size_t i, n;
	lh_summarize_answer_t a = {0};
	lh_buf_t b;
	const lh_err_t rc = LH_ERR_DECODE;

	if (!text || !len)
		return lh_error_set(err, rc, "could not parse the summary answer: empty");
	if (lh_llm_answer_json(text, len, "summary answer", &root, err))
		return LH_ERR_DECODE;
	if (!json_is_object(root)) {
		json_decref(root);
		return lh_error_set(err, rc, "could not parse the summary answer: expected an object");
	}
	json_object_foreach(root, key, v)
	{
		bool known = false;
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			known |= strcmp(key, keys[i]) == 0;
		if (!known) {
			lh_error_set(err, rc, "could not parse the summary answer: unknown key \"%.64s\"",
				     key);
			json_decref(root);
			return rc;
		}
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_object_get(root, keys[i])) {
			json_decref(root);
			return lh_error_set(err, rc, "could not parse the summary answer: \"%s\" is "
					    "missing", keys[i]);
		}
	if (!(a.play_by_play = section(root, "play_by_play", err)) ||
	    !(a.breadcrumbs = section(root, "breadcrumbs", err)) ||
	    !(a.open_questions = section(root, "open_questions", err)))
		goto out_refused;
	if (!*a.play_by_play) {
		lh_error_set(err, rc, "could not parse the summary answer: \"play_by_play\" is empty");
		goto out_refused;
	}
	arr = json_object_get(root, "artifacts");
	if (!json_is_array(arr)) {
		lh_error_set(err, rc, "could not parse the summary answer: \"artifacts\" must be an "
			     "array of strings");
		goto out_refused;
	}
	n = json_array_size(arr);
	if (n > LH_SUMMARIZE_MAX_ARTIFACTS) {
		lh_error_set(err, rc, "could not parse the summary answer: %zu artifacts, at most %d",
			     n, LH_SUMMARIZE_MAX_ARTIFACTS);
		goto out_refused;
	}
	lh_buf_init(&b);
	json_array_foreach(arr, i, v)
	{
		const char *s = json_string_value(v);
		size_t sl = s ? json_string_length(v) : 0;
		char *item = NULL;
		if (!s || memchr(s, '\0', sl) || sl > LH_SUMMARIZE_MAX_ARTIFACT ||
		    !*(item = lh_strndup_trim(s, sl)) || strpbrk(item, "\r\n")) {
			free(item);
			lh_buf_finish(&b);
			lh_error_set(err, rc, "could not parse the summary answer: artifact %zu is not "
				     "a non-empty one-line string of at most %d bytes",
				     i + 1, LH_SUMMARIZE_MAX_ARTIFACT);
			goto out_refused;
		}
		lh_buf_printf(&b, "%s%s", b.len ? "\n" : "", item);
		free(item);
	}
	lh_buf_append(&b, "", 1);
	a.artifacts = lh_buf_steal(&b, NULL);
	a.n_artifacts = n;
	json_decref(root);
	*ret = a;
	return LH_OK;

out_refused:
	lh_summarize_answer_finish(&a);
	json_decref(root);
	return rc;
}

void lh_summarize_answer_sections(const lh_summarize_answer_t *a,
				  const char *ret_sections[LH_SUMMARY__COUNT])
{
	ret_sections[LH_SUMMARY_INTENT] = NULL;
	ret_sections[LH_SUMMARY_PLAY_BY_PLAY] = a->play_by_play;
	ret_sections[LH_SUMMARY_ARTIFACTS] = a->artifacts;
	ret_sections[LH_SUMMARY_BREADCRUMBS] = a->breadcrumbs;
	ret_sections[LH_SUMMARY_OPEN_QUESTIONS] = a->open_questions;
}

/* The prompt both summaries share: the summary's intent under intent_label, its open questions,
 * then head and text cut to max_bytes (UTF-8 safe). New string. */
static char *prompt_of(const lh_summary_t *s, const char *intent_label, const char *head,
		       const char *text, size_t max_bytes)
{
	const char *intent = s && s->intent ? s->intent : "";
	const char *oq = s && s->open_questions && *s->open_questions ? s->open_questions : "(none)";
	const char *t = text ? text : "";
	size_t li = strlen(intent), lq = strlen(oq), lt = strlen(t);
	size_t ci = lh_utf8_head(intent, li, LH_SUMMARIZE_MAX_CONTEXT);
	size_t cq = lh_utf8_head(oq, lq, LH_SUMMARIZE_MAX_CONTEXT);
	size_t ct = lh_utf8_head(t, lt, max_bytes);
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_printf(&b, "%s:\n%.*s%s\n\nOpen questions so far:\n%.*s%s\n\n", intent_label,
		      (int)ci, intent, ci < li ? " [cut]" : "", (int)cq, oq, cq < lq ? " [cut]" : "");
	lh_buf_appends(&b, head);
	lh_buf_append(&b, t, ct);
	if (ct < lt)
		lh_buf_appends(&b, " [cut]\n");
	lh_buf_append(&b, "", 1);
	return lh_buf_steal(&b, NULL);
}

char *lh_summarize_prompt(const lh_summary_t *s, int64_t from, int64_t to, const char *span_text,
			  size_t max_bytes)
{
	char head[96];
	snprintf(head, sizeof(head), "New events (log offsets %" PRId64 " to %" PRId64 "):\n", from,
		 to - 1);
	return prompt_of(s, "Plan intent", head, span_text, max_bytes);
}

#define DROPPED_MARK "[earlier spans: in the older versions of this summary]\n\n"

void lh_summarize_keep_tail(char **text, size_t max)
{
	size_t n = *text ? strlen(*text) : 0;
	const char *start, *para;
	lh_buf_t b;
	if (n <= max)
		return;
	start = *text + n - max;
	if ((para = strstr(start, "\n\n")) && para[2])
		start = para + 2; /* from the first whole paragraph */
	else
		while (((unsigned char)*start & 0xC0) == 0x80)
			start++; /* from a character start */
	lh_buf_init(&b);
	lh_buf_appends(&b, DROPPED_MARK);
	lh_buf_appends(&b, start);
	lh_buf_append(&b, "", 1);
	free(*text);
	*text = lh_buf_steal(&b, NULL);
}

lh_id_t lh_summarize_order_id(const lh_id_t *plan_id, long long task_no, long long attempt)
{
	return lh_event_id_derivef(plan_id, "task.order", 0, "summarize:t%lld:a%lld", task_no,
				   attempt);
}

/* ---- events in a span --------------------------------------------------------------------- */

static const char *const relevant[] = {
	"attempt.succeeded", "attempt.failed",	"input.requested", "input.provided",
	"approval.requested", "approval.decided", "decision.logged", "plan.created",
	"plan.revised",	     "task.escalated",	"task.dead",	   "plan.completed",
	"plan.failed",	     "plan.cancelled",	"plan.paused",	   "plan.resumed",
};

bool lh_summarize_relevant(const char *type)
{
	for (size_t i = 0; type && i < sizeof(relevant) / sizeof(relevant[0]); i++)
		if (!strcmp(type, relevant[i]))
			return true;
	return false;
}

const char *lh_summarize_relevant_types(void)
{
	return "{attempt.succeeded,attempt.failed,input.requested,input.provided,"
	       "approval.requested,approval.decided,decision.logged,plan.created,plan.revised,"
	       "task.escalated,task.dead,plan.completed,plan.failed,plan.cancelled,plan.paused,"
	       "plan.resumed}";
}

static const char *str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

/* A JSON value as text: a string as it is, anything else compact (new). */
static char *text_of(const json_t *v)
{
	char *r;
	if (!v || json_is_null(v))
		return strdup("");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	r = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	return r ? r : strdup("");
}

static void append_text(lh_buf_t *b, const char *label, const json_t *v)
{
	char *t = text_of(v);
	if (!t)
		abort();
	if (*t)
		lh_buf_printf(b, "%s%s", label, t);
	free(t);
}

/* A plan version's tasks as "task N (kind): instructions" lines. */
static void append_tasks(lh_buf_t *b, const json_t *tasks)
{
	size_t i;
	json_t *t;
	json_array_foreach(tasks, i, t)
	{
		json_int_t no = json_integer_value(json_object_get(t, "task_no"));
		lh_buf_printf(b, "\n  task %lld (%s): %s", (long long)no,
			      *str(t, "kind") ? str(t, "kind") : "act", str(t, "instructions"));
	}
}

bool lh_summarize_render_event(lh_buf_t *out, int64_t offset, const char *type, int64_t task_no,
			       int64_t attempt, const json_t *body, const char *kind,
			       const char *instructions, size_t max_event)
{
	lh_buf_t b;
	char task[96] = "";
	size_t n;
	if (!lh_summarize_relevant(type))
		return false;
	/* a planner's or replanner's output is its plan version: plan.created / revised show it */
	if (!strcmp(type, "attempt.succeeded") && kind &&
	    (!strcmp(kind, "plan") || !strcmp(kind, "replan")))
		return false;
	if (task_no >= 0)
		snprintf(task, sizeof(task), "task %lld%s%s%s", (long long)task_no,
			 kind ? " (" : "", kind ? kind : "", kind ? ")" : "");
	lh_buf_init(&b);
	lh_buf_printf(&b, "[%" PRId64 "] ", offset);
	if (!strcmp(type, "attempt.succeeded")) {
		lh_buf_printf(&b, "%s attempt %lld succeeded", task, (long long)attempt);
		if (instructions && *instructions)
			lh_buf_printf(&b, "\n  instructions: %s", instructions);
		append_text(&b, "\n  output: ", json_object_get(body, "output"));
	} else if (!strcmp(type, "attempt.failed")) {
		lh_buf_printf(&b, "%s attempt %lld failed (%s): %s", task, (long long)attempt,
			      str(body, "error_class"), str(body, "message"));
	} else if (!strcmp(type, "input.requested")) {
		lh_buf_printf(&b, "%s asked: %s", task, str(body, "question"));
	} else if (!strcmp(type, "input.provided")) {
		lh_buf_printf(&b, "answer by %s %s", str(body, "responder_type"),
			      str(body, "responder_id"));
		append_text(&b, ": ", json_object_get(body, "answer"));
	} else if (!strcmp(type, "approval.requested")) {
		lh_buf_printf(&b, "approval requested (%s) %s: %s", str(body, "kind"), task,
			      str(body, "question"));
	} else if (!strcmp(type, "approval.decided")) {
		lh_buf_printf(&b, "approval %s by %s %s", str(body, "decision"),
			      str(body, "responder_type"), str(body, "responder_id"));
		if (*str(body, "reason"))
			lh_buf_printf(&b, ": %s", str(body, "reason"));
	} else if (!strcmp(type, "decision.logged")) {
		lh_buf_printf(&b, "decision %s: %s", str(body, "kind"), str(body, "reasoning"));
	} else if (!strcmp(type, "plan.created") || !strcmp(type, "plan.revised")) {
		lh_buf_printf(&b, "plan version %lld %s",
			      (long long)json_integer_value(json_object_get(body, "version")),
			      type[5] == 'c' ? "created" : "revised");
		if (*str(body, "thought"))
			lh_buf_printf(&b, ": %s", str(body, "thought"));
		if (*str(body, "reason"))
			lh_buf_printf(&b, ": %s", str(body, "reason"));
		append_tasks(&b, json_object_get(body, "tasks"));
	} else if (!strcmp(type, "task.escalated")) {
		lh_buf_printf(&b, "%s escalated from %s to %s: %s", task, str(body, "from_tier"),
			      str(body, "to_tier"), str(body, "reason"));
	} else if (!strcmp(type, "task.dead")) {
		lh_buf_printf(&b, "%s is dead: %s", task, str(body, "reason"));
	} else {
		/* plan.completed / failed / cancelled / paused / resumed */
		lh_buf_printf(&b, "%s", type);
		if (*str(body, "reason"))
			lh_buf_printf(&b, ": %s", str(body, "reason"));
	}
	n = max_event ? lh_utf8_head(b.data, b.len, max_event) : b.len;
	lh_buf_append(out, b.data, n);
	lh_buf_appends(out, n < b.len ? " [cut]\n" : "\n");
	lh_buf_finish(&b);
	return true;
}

/* ---- per-attempt summaries --------------------------------------------------------------- */

static const char *role_name(lh_llm_role_t r)
{
	switch (r) {
	case LH_LLM_ROLE_SYSTEM:
		return "system";
	case LH_LLM_ROLE_USER:
		return "user";
	case LH_LLM_ROLE_ASSISTANT:
		return "assistant";
	case LH_LLM_ROLE_TOOL:
		return "tool result";
	default:
		return "message";
	}
}

char *lh_summarize_messages_text(const lh_llm_message_t *msgs, size_t from, size_t to,
				 size_t max_each, size_t max_bytes, size_t *ret_to)
{
	lh_buf_t out, one;
	size_t i;
	lh_buf_init(&out);
	lh_buf_init(&one);
	for (i = from; i < to; i++) {
		const lh_llm_message_t *m = &msgs[i];
		size_t n;
		lh_buf_reset(&one);
		lh_buf_printf(&one, "[%zu] %s: %s", i, role_name(m->role), m->content ? m->content : "");
		for (size_t k = 0; k < m->n_tool_calls; k++)
			lh_buf_printf(&one, "\n  -> %s(%s)",
				      m->tool_calls[k].name ? m->tool_calls[k].name : "?",
				      m->tool_calls[k].arguments_json ? m->tool_calls[k].arguments_json
								       : "");
		n = max_each ? lh_utf8_head(one.data, one.len, max_each) : one.len;
		if (i > from && out.len + n > max_bytes)
			break;
		lh_buf_append(&out, one.data, n);
		lh_buf_appends(&out, n < one.len ? " [cut]\n" : "\n");
	}
	lh_buf_finish(&one);
	lh_buf_append(&out, "", 1);
	*ret_to = i;
	return lh_buf_steal(&out, NULL);
}

char *lh_summarize_attempt_prompt(const lh_summary_t *s, size_t from, size_t to, const char *text,
				  size_t max_bytes)
{
	char head[96];
	snprintf(head, sizeof(head), "New messages of this attempt (%zu to %zu):\n", from,
		 to ? to - 1 : 0);
	return prompt_of(s, "Task", head, text, max_bytes);
}

static char *joined(const char *a, const char *label, const char *b)
{
	lh_buf_t buf;
	lh_buf_init(&buf);
	if (a && *a)
		lh_buf_printf(&buf, "%s\n\n", a);
	lh_buf_printf(&buf, "%s%s", label, b);
	lh_buf_append(&buf, "", 1);
	return lh_buf_steal(&buf, NULL);
}

void lh_summarize_combine(const lh_summary_t *plan, const lh_summary_t *attempt,
			  lh_summary_t *ret)
{
	json_t *j = plan ? lh_summary_to_json(plan) : NULL;
	lh_error_t err = {0};
	char *t;
	if (!j || lh_summary_from_json(j, ret, &err) != LH_OK)
		lh_summary_init(ret, 0, attempt && attempt->intent ? attempt->intent : "");
	json_decref(j);
	if (!attempt)
		return;
	if (attempt->play_by_play && *attempt->play_by_play) {
		t = joined(ret->play_by_play, "This attempt so far: ", attempt->play_by_play);
		free(ret->play_by_play);
		ret->play_by_play = t;
	}
	if (attempt->breadcrumbs && *attempt->breadcrumbs) {
		t = joined(ret->breadcrumbs, "This attempt: ", attempt->breadcrumbs);
		free(ret->breadcrumbs);
		ret->breadcrumbs = t;
	}
	if (attempt->open_questions && *attempt->open_questions) {
		free(ret->open_questions);
		if (!(ret->open_questions = strdup(attempt->open_questions)))
			abort();
	}
	for (size_t i = 0; i < attempt->n_artifacts; i++)
		lh_summary_add_artifact(ret, attempt->artifacts[i]);
}
