/* llm_scripted.c — a deterministic in-process model with zero latency.
 *
 * For demos and benchmarks without an API key, and for tests that drive the worker without HTTP.
 * The answer depends only on the request: a plan task gets a 4-task diamond plan for its goal (or
 * the goal's "lh-script: {...}" line verbatim), a join task finishes with an answer built from
 * its input, anything else gets a short text naming its instructions, shaped to the response
 * schema when one is given. tests/fakellm answers the same way over HTTP by calling
 * lh_llm_scripted_answer. Answers are delivered from a zero-delay timer, never inside call(). */
#include "llm.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define GOAL_MAX 200
#define INPUT_MAX 400
#define SCRIPT_PREFIX "lh-script:"

/* ---- the deterministic answers ----------------------------------------------------------- */

/* Collapse whitespace runs to one space, trim, cap at max bytes (on a UTF-8 boundary). */
static char *condense(const char *s, size_t max)
{
	lh_buf_t b;
	bool space = false;
	lh_buf_init(&b);
	lh_buf_appends(&b, "");
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (isspace(*p)) {
			space = b.len > 0;
			continue;
		}
		if (space)
			lh_buf_append(&b, " ", 1);
		space = false;
		lh_buf_append(&b, p, 1);
	}
	if (b.len > max) {
		size_t n = max;
		while (n > 0 && ((unsigned char)b.data[n] & 0xC0) == 0x80)
			n--;
		b.len = n;
		b.data[n] = 0;
	}
	return lh_buf_steal(&b, NULL);
}

/* A JSON string for s, with bytes that are not valid UTF-8 replaced by '?'. */
static json_t *json_text(const char *s)
{
	json_t *j = json_string(s);
	char *copy;
	if (j)
		return j;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* The rest of the first line of text that starts with prefix (leading blanks allowed), trimmed;
 * new string or NULL. */
static char *line_after(const char *text, const char *prefix)
{
	size_t plen = strlen(prefix);
	const char *p = text;
	while (p && *p) {
		const char *q = p, *end;
		while (*q == ' ' || *q == '\t')
			q++;
		end = strchr(q, '\n');
		if (!end)
			end = q + strlen(q);
		if (strncmp(q, prefix, plen) == 0) {
			const char *v = q + plen;
			size_t n;
			while (*v == ' ' || *v == '\t')
				v++;
			n = (size_t)(end - v);
			while (n > 0 && isspace((unsigned char)v[n - 1]))
				n--;
			return strndup(v, n);
		}
		p = *end ? end + 1 : NULL;
	}
	return NULL;
}

char *lh_llm_scripted_goal(const char *text) { return text ? line_after(text, "Goal:") : NULL; }

const char *lh_llm_scripted_kind(const char *system_text)
{
	if (!system_text)
		return "act";
	while (isspace((unsigned char)*system_text))
		system_text++;
	if (strncmp(system_text, "You are the planner", 19) == 0)
		return "plan";
	if (strncmp(system_text, "You are the joiner", 18) == 0)
		return "join";
	if (strncmp(system_text, "You are the replanner", 21) == 0)
		return "replan";
	if (strncmp(system_text, "You keep the running summary", 28) == 0)
		return "summarize";
	return "act";
}

static char *dump(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

static char *plan_answer(const char *goal, const char *input)
{
	char *script = goal ? line_after(goal, SCRIPT_PREFIX) : NULL;
	char *g, *t1, *t2, *t3, *t4, *out;
	json_t *plan;

	if (!script && input)
		script = line_after(input, SCRIPT_PREFIX);
	if (script)
		return script;
	g = condense(goal && *goal ? goal : input && *input ? input : "the task", GOAL_MAX);
	if (asprintf(&t1, "Research the background of: %s", g) < 0)
		t1 = NULL;
	t2 = strdup("Analyse ${1} for risks");
	t3 = strdup("Analyse ${1} for opportunities");
	t4 = strdup("Combine ${2} and ${3} into a recommendation");
	plan = (t1 && t2 && t3 && t4)
		       ? json_pack("{s:s, s:[{s:i, s:o, s:s}, {s:i, s:o, s:s}, {s:i, s:o, s:s}, "
				   "{s:i, s:o, s:s}], s:s}",
				   "thought",
				   "Background research first, then risks and opportunities in "
				   "parallel, then one recommendation that combines them",
				   "tasks", "id", 1, "instructions", json_text(t1), "tier", "fast",
				   "id", 2, "instructions", json_text(t2), "tier", "standard", "id", 3,
				   "instructions", json_text(t3), "tier", "fast", "id", 4,
				   "instructions", json_text(t4), "tier", "standard", "join",
				   "Summarize")
		       : NULL;
	out = dump(plan);
	free(g);
	free(t1);
	free(t2);
	free(t3);
	free(t4);
	return out;
}

/* The joiner's prompt lists results as lines "[n] output" after a "Results:" line. */
static int count_results(const char *input)
{
	int n = 0;
	for (const char *p = input; p && (p = strstr(p, "\n[")); p += 2)
		n++;
	return n;
}

static char *join_answer(const char *goal, const char *input)
{
	char *g = goal ? condense(goal, GOAL_MAX) : NULL;
	const char *results = input ? strstr(input, "Results:") : NULL;
	char *in = condense(results ? results + 8 : input, INPUT_MAX), *text, *out;
	int n, k = count_results(results);
	if (g && *g && k > 0)
		n = asprintf(&text, "Answer to \"%s\", combining %d result%s: %s", g, k,
			     k == 1 ? "" : "s", in);
	else if (g && *g)
		n = asprintf(&text, "Answer to \"%s\", combining the inputs: %s", g, in);
	else
		n = asprintf(&text, "Answer combining the inputs: %s", in);
	free(g);
	free(in);
	if (n < 0)
		return NULL;
	out = dump(json_pack("{s:s, s:o}", "decision", "finish", "answer", json_text(text)));
	free(text);
	return out;
}

static char *act_answer(const char *input)
{
	/* the worker's prompt names the task on a "Task: " line: answer that, not the whole prompt */
	char *task = input ? line_after(input, "Task:") : NULL;
	char *in = condense(task ? task : input, INPUT_MAX), *text;
	free(task);
	if (asprintf(&text, "Done: %s", in) < 0)
		text = NULL;
	free(in);
	return text;
}

/* A patch that replaces the failed task with one new task (numbers read from the
 * coordinator's replan instructions: "Failed task: N", "Next id: M"). */
static char *replan_answer(const char *goal, const char *input)
{
	char *failed = input ? line_after(input, "Failed task:") : NULL;
	char *next = input ? line_after(input, "Next id:") : NULL;
	long m = next ? strtol(next, NULL, 10) : 0, f = failed ? strtol(failed, NULL, 10) : 0;
	char *g = condense(goal && *goal ? goal : "the goal", GOAL_MAX), *instr = NULL, *out;
	int n = f > 0 ? asprintf(&instr, "Redo the work of task %ld another way, for: %s", f, g)
		      : asprintf(&instr, "Double-check the results so far, for: %s", g);
	free(failed);
	free(next);
	free(g);
	if (n < 0 || m < 1) {
		free(n < 0 ? NULL : instr);
		return strdup("{\"tasks\":[]}");
	}
	out = dump(json_pack("{s:s, s:[], s:[{s:i, s:s, s:s}], s:s}", "thought",
			     "Replace what failed with a different approach", "remove", "tasks", "id",
			     (json_int_t)m, "instructions", instr, "tier", "standard", "join",
			     "Summarize"));
	free(instr);
	return out;
}

/* A rolling-summary span (worker/summarize.c): the four sections, the play-by-play from the
 * events the prompt lists after its "New events" line; artifacts left to the merge's scan. */
static char *summarize_answer(const char *input)
{
	const char *ev = input ? strstr(input, "New events") : NULL;
	if (!ev && input)
		ev = strstr(input, "New messages");
	char *in = condense(ev ? ev : input, INPUT_MAX), *text, *out;
	if (asprintf(&text, "Summarized: %s", in) < 0)
		text = NULL;
	free(in);
	out = text ? dump(json_pack("{s:s, s:[], s:s, s:s}", "play_by_play", text, "artifacts",
				    "breadcrumbs", "", "open_questions", ""))
		   : NULL;
	free(text);
	return out;
}

char *lh_llm_scripted_answer(const char *kind, const char *goal, const char *input)
{
	/* a rolling-summary span; a plan's own summarize task gets the act answer */
	if (kind && strcmp(kind, "summarize") == 0 && input &&
	    (strstr(input, "New events (log") || strstr(input, "New messages of this attempt")))
		return summarize_answer(input);
	if (kind && strcmp(kind, "replan") == 0)
		return replan_answer(goal, input);
	if (kind && strcmp(kind, "plan") == 0)
		return plan_answer(goal, input);
	if (kind && strcmp(kind, "join") == 0)
		return join_answer(goal, input);
	return act_answer(input);
}

/* An instance of schema (the common JSON Schema keywords: const, enum, type, properties,
 * items, anyOf/oneOf, minimum) whose strings are text. New reference. */
static json_t *example_for(json_t *schema, const char *text, int depth)
{
	json_t *v, *t;
	const char *type = NULL;

	if (!json_is_object(schema) || depth > 16)
		return json_null();
	if ((v = json_object_get(schema, "const")))
		return json_deep_copy(v);
	if ((v = json_array_get(json_object_get(schema, "enum"), 0)))
		return json_deep_copy(v);
	if ((v = json_array_get(json_object_get(schema, "anyOf"), 0)) ||
	    (v = json_array_get(json_object_get(schema, "oneOf"), 0)))
		return example_for(v, text, depth + 1);
	t = json_object_get(schema, "type");
	if (json_is_string(t)) {
		type = json_string_value(t);
	} else if (json_is_array(t)) {
		size_t i;
		json_array_foreach(t, i, v)
		{
			if (json_is_string(v) && strcmp(json_string_value(v), "null") != 0) {
				type = json_string_value(v);
				break;
			}
		}
	}
	if (!type)
		type = json_object_get(schema, "properties") ? "object" : "string";
	if (strcmp(type, "object") == 0) {
		json_t *obj = json_object(), *props = json_object_get(schema, "properties"), *ps;
		const char *key;
		json_object_foreach(props, key, ps)
			json_object_set_new(obj, key, example_for(ps, text, depth + 1));
		return obj;
	}
	if (strcmp(type, "array") == 0) {
		json_t *arr = json_array();
		json_array_append_new(arr, example_for(json_object_get(schema, "items"), text,
							 depth + 1));
		return arr;
	}
	if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0) {
		v = json_object_get(schema, "minimum");
		return json_is_number(v) ? json_deep_copy(v) : json_integer(0);
	}
	if (strcmp(type, "boolean") == 0)
		return json_true();
	if (strcmp(type, "null") == 0)
		return json_null();
	return json_text(text);
}

/* ---- the provider ------------------------------------------------------------------------ */

typedef struct scripted scripted_t;

struct pending {
	scripted_t *sp;
	struct event *ev;
	lh_llm_done_cb cb;
	void *opaque;
	lh_llm_resp_t resp;
	struct pending *prev, *next;
};

struct scripted {
	lh_llm_provider_t base;
	struct event_base *evb;
	uint64_t seq;
	struct pending *pending;
};

static void pending_unlink_free(struct pending *pd)
{
	scripted_t *sp = pd->sp;
	if (pd->prev)
		pd->prev->next = pd->next;
	else
		sp->pending = pd->next;
	if (pd->next)
		pd->next->prev = pd->prev;
	event_free(pd->ev);
	lh_llm_resp_finish(&pd->resp);
	free(pd);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending *pd = arg;
	pd->cb(&pd->resp, NULL, pd->opaque);
	pending_unlink_free(pd);
}

static const char *last_content(const lh_llm_req_t *req, lh_llm_role_t role)
{
	for (size_t i = req->n_messages; i > 0; i--)
		if (req->messages[i - 1].role == role && req->messages[i - 1].content)
			return req->messages[i - 1].content;
	return NULL;
}

static char *answer_for(const lh_llm_req_t *req)
{
	const char *system = NULL, *input = last_content(req, LH_LLM_ROLE_USER), *kind;
	char *goal = NULL, *ans;

	for (size_t i = 0; i < req->n_messages; i++) {
		if (req->messages[i].role == LH_LLM_ROLE_SYSTEM) {
			system = req->messages[i].content;
			break;
		}
	}
	kind = req->task_kind ? req->task_kind : lh_llm_scripted_kind(system);
	if (!req->goal)
		goal = lh_llm_scripted_goal(input);
	ans = lh_llm_scripted_answer(kind, req->goal ? req->goal : goal, input);
	free(goal);
	if (ans && req->response_schema && req->response_schema->schema &&
	    strcmp(kind, "plan") != 0 && strcmp(kind, "join") != 0 && strcmp(kind, "replan") != 0) {
		char *shaped = dump(example_for(req->response_schema->schema, ans, 0));
		free(ans);
		ans = shaped;
	}
	return ans;
}

static lh_err_t scripted_call(lh_llm_provider_t *p, const lh_llm_req_t *req, lh_llm_done_cb cb,
			      void *opaque, lh_error_t *err)
{
	scripted_t *sp = (scripted_t *)p;
	struct pending *pd;
	size_t in_bytes = 0;
	static const struct timeval zero = {0, 0};

	pd = calloc(1, sizeof(*pd));
	if (!pd)
		return lh_error_set(err, LH_ERR_NOMEM, "could not call scripted llm: out of memory");
	pd->sp = sp;
	pd->cb = cb;
	pd->opaque = opaque;
	pd->ev = evtimer_new(sp->evb, deliver_cb, pd);
	pd->resp.content = answer_for(req);
	pd->resp.model = strdup("scripted");
	pd->resp.finish_raw = strdup("stop");
	if (asprintf(&pd->resp.id, "scripted-%llu", (unsigned long long)++sp->seq) < 0)
		pd->resp.id = NULL;
	if (!pd->ev || !pd->resp.content || !pd->resp.model || !pd->resp.finish_raw ||
	    !pd->resp.id) {
		if (pd->ev)
			event_free(pd->ev);
		lh_llm_resp_finish(&pd->resp);
		free(pd);
		return lh_error_set(err, LH_ERR_NOMEM, "could not call scripted llm: out of memory");
	}
	for (size_t i = 0; i < req->n_messages; i++)
		in_bytes += req->messages[i].content ? strlen(req->messages[i].content) : 0;
	pd->resp.finish = LH_LLM_FINISH_STOP;
	pd->resp.usage.input_tokens = lh_llm_estimate_tokens(in_bytes);
	pd->resp.usage.output_tokens = lh_llm_estimate_tokens(strlen(pd->resp.content));
	pd->resp.attempts = 1;
	pd->resp.latency_ms = 0;
	pd->next = sp->pending;
	if (sp->pending)
		sp->pending->prev = pd;
	sp->pending = pd;
	evtimer_add(pd->ev, &zero);
	return LH_OK;
}

static void scripted_cancel_all(lh_llm_provider_t *p)
{
	scripted_t *sp = (scripted_t *)p;
	while (sp->pending) {
		struct pending *pd = sp->pending;
		lh_llm_error_t e;
		memset(&e, 0, sizeof(e));
		e.klass = LH_LLM_ERR_CANCELLED;
		e.retry_after_ms = -1;
		e.attempts = 1;
		lh_error_set(&e.error, LH_ERR_UNAVAILABLE, "could not call scripted llm: cancelled");
		event_del(pd->ev);
		pd->cb(NULL, &e, pd->opaque);
		pending_unlink_free(pd);
	}
}

static void scripted_free(lh_llm_provider_t *p)
{
	scripted_cancel_all(p);
	free(p);
}

static const lh_llm_provider_ops_t scripted_ops = {
	.name = "scripted",
	.call = scripted_call,
	.cancel_all = scripted_cancel_all,
	.free = scripted_free,
};

lh_llm_provider_t *lh_llm_scripted_new(struct event_base *base, lh_error_t *err)
{
	scripted_t *sp;
	if (!base) {
		lh_error_set(err, LH_ERR_INVALID, "could not create scripted llm: no event base");
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		lh_error_set(err, LH_ERR_NOMEM, "could not create scripted llm: out of memory");
		return NULL;
	}
	sp->base.ops = &scripted_ops;
	sp->evb = base;
	return &sp->base;
}
