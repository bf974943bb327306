#include "prompt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static const char planner_system[] =
	"You are the planner of Longhaul, a system that runs autonomous agents. Break the goal "
	"into a small plan of tasks. Answer with one JSON object and nothing else:\n"
	"{\"thought\": \"why this plan\", \"tasks\": [{\"id\": 1, \"instructions\": \"...\", "
	"\"tier\": \"%s\" (optional), \"tool\": \"name\" (optional), \"args\": {} (optional), "
	"\"after\": [ids] (optional)}], \"join\": \"how to judge the results\"}\n"
	"Rules: ids are 1, 2, 3, ... in order. A task uses an earlier task's output by writing "
	"${n} (or ${n.field}) in its instructions; refer only to earlier tasks. Tasks that do not "
	"depend on each other run in parallel. Use the cheapest tier that can do each task.";

static const char joiner_system[] =
	"You are the joiner of Longhaul. Given the goal and the results of the plan's tasks, "
	"decide whether the goal is met. Answer with one JSON object and nothing else:\n"
	"{\"decision\": \"finish\" | \"replan\" | \"escalate\", \"answer\": the final answer when "
	"finishing, \"reason\": \"why\"}";

static const char replanner_system[] =
	"You are the replanner of Longhaul. A task of the plan failed, or the joiner asked for "
	"another round. Return a patch as one JSON object and nothing else:\n"
	"{\"thought\": \"why\", \"remove\": [task numbers to drop], \"tasks\": [{\"id\": N, "
	"\"instructions\": \"...\", \"tier\": \"%s\" (optional), \"after\": [ids] "
	"(optional)}], \"join\": \"how to judge the results\"}\n"
	"Rules: new ids start at the given next id and go up by one. Keep tasks that succeeded "
	"(their outputs stay usable as ${n}); replace what failed with a different approach, not "
	"the same one again. The failed task is removed for you.";

static const char act_system[] =
	"You are a worker agent of Longhaul. Do the task below for the goal. Answer with the result "
	"only, concisely; say so plainly if the task cannot be done.";

/* An output as prompt text: strings as they are, anything else as compact JSON; bounded. */
static void append_output(lh_buf_t *b, const json_t *v)
{
	if (json_is_string(v)) {
		size_t n = json_string_length(v);
		lh_buf_append(b, json_string_value(v),
			      n > LH_PROMPT_MAX_INPUT_BYTES ? LH_PROMPT_MAX_INPUT_BYTES : n);
	} else if (v) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (s) {
			size_t n = strlen(s);
			lh_buf_append(b, s, n > LH_PROMPT_MAX_INPUT_BYTES ? LH_PROMPT_MAX_INPUT_BYTES : n);
			free(s);
		}
	} else
		lh_buf_appends(b, "(no output)");
}

char *lh_prompt_substitute(const char *text, const json_t *inputs, lh_arena_t *arena)
{
	lh_buf_t b;
	const char *p = text, *start;
	char *out;
	lh_buf_init(&b);
	while ((start = strstr(p, "${"))) {
		const char *q = start + 2, *field = NULL;
		size_t flen = 0;
		char key[24];
		int digits = 0;
		json_t *v;
		while (isdigit((unsigned char)q[digits]) && digits < 18)
			digits++;
		q += digits;
		if (digits && *q == '.') {
			field = ++q;
			while (isalnum((unsigned char)*q) || *q == '_')
				q++;
			flen = (size_t)(q - field);
		}
		if (!digits || *q != '}' || (field && !flen)) {
			lh_buf_append(&b, p, (size_t)(start - p) + 2);
			p = start + 2;
			continue;
		}
		snprintf(key, sizeof(key), "%.*s", digits, start + 2);
		v = inputs ? json_object_get(inputs, key) : NULL;
		if (v && field) {
			char fname[128];
			snprintf(fname, sizeof(fname), "%.*s", (int)flen, field);
			v = json_object_get(v, fname);
		}
		lh_buf_append(&b, p, (size_t)(start - p));
		if (v)
			append_output(&b, v);
		else
			lh_buf_append(&b, start, (size_t)(q - start) + 1);
		p = q + 1;
	}
	lh_buf_appends(&b, p);
	out = lh_arena_strndup(arena, b.data ? b.data : "", b.len);
	lh_buf_finish(&b);
	return out;
}

void lh_prompt_build(const lh_task_order_t *o, const char *tiers, lh_arena_t *arena,
		     lh_llm_message_t ret_msgs[2])
{
	lh_buf_t b;
	const char *kind = o->kind ? o->kind : "act";
	lh_buf_init(&b);
	memset(ret_msgs, 0, 2 * sizeof(*ret_msgs));
	ret_msgs[0].role = LH_LLM_ROLE_SYSTEM;
	ret_msgs[1].role = LH_LLM_ROLE_USER;
	if (strcmp(kind, "plan") == 0) {
		ret_msgs[0].content = lh_arena_printf(arena, planner_system, tiers ? tiers : "");
		lh_buf_printf(&b, "Goal: %s\n", o->goal ? o->goal : o->instructions);
	} else if (strcmp(kind, "replan") == 0) {
		ret_msgs[0].content = lh_arena_printf(arena, replanner_system, tiers ? tiers : "");
		lh_buf_printf(&b, "Goal: %s\n%s\n", o->goal ? o->goal : "", o->instructions);
	} else if (strcmp(kind, "join") == 0) {
		const char *k;
		json_t *v;
		ret_msgs[0].content = joiner_system;
		lh_buf_printf(&b, "Goal: %s\nHow to judge: %s\nResults:\n", o->goal ? o->goal : "",
			      o->instructions);
		json_object_foreach(o->inputs, k, v) {
			lh_buf_printf(&b, "[%s] ", k);
			append_output(&b, v);
			lh_buf_appends(&b, "\n");
		}
	} else {
		ret_msgs[0].content = act_system;
		lh_buf_printf(&b, "Goal: %s\nTask: %s\n", o->goal ? o->goal : "",
			      lh_prompt_substitute(o->instructions, o->inputs, arena));
		if (o->tool)
			lh_buf_printf(&b, "Tool suggested by the planner: %s\n", o->tool);
		if (o->args) {
			char *a = json_dumps(o->args, JSON_COMPACT);
			if (a) {
				lh_buf_printf(&b, "Arguments: %s\n",
					      lh_prompt_substitute(a, o->inputs, arena));
				free(a);
			}
		}
	}
	if (o->feedback && *o->feedback)
		lh_buf_printf(&b, "\nYour previous answer was rejected: %s\nCorrect it.\n", o->feedback);
	ret_msgs[1].content = lh_arena_strndup(arena, b.data ? b.data : "", b.len);
	lh_buf_finish(&b);
}

lh_err_t lh_prompt_output(const char *kind, const char *content, json_t **ret_out, lh_error_t *err)
{
	const char *s = content ? content : "", *e;
	json_error_t jerr;
	json_t *j;
	bool any = kind && !strcmp(kind, "json"); /* a task output schema: any JSON value */
	if (!kind || (strcmp(kind, "plan") != 0 && strcmp(kind, "join") != 0 &&
		      strcmp(kind, "replan") != 0 && !any)) {
		*ret_out = json_string(s);
		if (!*ret_out)
			return lh_error_set(err, LH_ERR_INVALID, "model answer is not valid UTF-8");
		return LH_OK;
	}
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	if (strncmp(s, "```", 3) == 0) { /* ```json ... ``` */
		const char *nl = strchr(s, '\n');
		s = nl ? nl + 1 : s + 3;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (e - s >= 3 && strncmp(e - 3, "```", 3) == 0)
			e -= 3;
	}
	j = json_loadb(s, (size_t)(e - s), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		return lh_error_set(err, LH_ERR_INVALID,
				    "the %s answer is not JSON: %s (line %d, column %d)",
				    any ? "task's" : kind, jerr.text, jerr.line, jerr.column);
	if (!any && !json_is_object(j)) {
		json_decref(j);
		return lh_error_set(err, LH_ERR_INVALID, "the %s answer must be a JSON object", kind);
	}
	*ret_out = j;
	return LH_OK;
}
