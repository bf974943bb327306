/* transcript.c — an attempt's conversation for the log (transcript.h). */
#include "transcript.h"

#include <stdlib.h>

static json_t *message_json(const lh_llm_message_t *m)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "role", json_string(lh_llm_role_name(m->role)));
	json_object_set_new(o, "content", m->content ? json_string(m->content) : json_null());
	if (m->n_tool_calls) {
		json_t *calls = json_array();
		for (size_t i = 0; i < m->n_tool_calls; i++) {
			const lh_llm_tool_call_t *c = &m->tool_calls[i];
			json_t *jc = json_object();
			json_object_set_new(jc, "id", json_string(c->id ? c->id : ""));
			json_object_set_new(jc, "name", json_string(c->name ? c->name : ""));
			json_object_set_new(jc, "arguments", json_string(c->arguments_json
									       ? c->arguments_json
									       : ""));
			json_array_append_new(calls, jc);
		}
		json_object_set_new(o, "tool_calls", calls);
	}
	if (m->tool_call_id)
		json_object_set_new(o, "tool_call_id", json_string(m->tool_call_id));
	/* json_string refuses invalid UTF-8 (NULL): such a text is kept as null rather than
	 * dropping the message; the model's texts are valid UTF-8 by the providers' parsers */
	if (!json_object_get(o, "role"))
		json_object_set_new(o, "role", json_string("user"));
	if (!json_object_get(o, "content"))
		json_object_set_new(o, "content", json_null());
	return o;
}

/* Compact encoded length of v, without building the text. */
static size_t encoded_len(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT);
}

json_t *lh_transcript_json(const lh_llm_message_t *msgs, size_t n_msgs, const char *final,
			   size_t max_bytes, size_t *ret_dropped)
{
	size_t n = n_msgs + (final ? 1 : 0);
	json_t *arr = json_array();
	size_t *len = n ? calloc(n, sizeof(*len)) : NULL, from = 0, total = 2;
	json_t **items = n ? calloc(n, sizeof(*items)) : NULL;
	if (ret_dropped)
		*ret_dropped = 0;
	if (!arr || (n && (!len || !items))) {
		json_decref(arr);
		free(len);
		free(items);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		lh_llm_message_t last = {.role = LH_LLM_ROLE_ASSISTANT, .content = final};
		if (!(items[i] = message_json(i < n_msgs ? &msgs[i] : &last))) {
			for (size_t j = 0; j < i; j++)
				json_decref(items[j]);
			json_decref(arr);
			free(len);
			free(items);
			return NULL;
		}
		len[i] = encoded_len(items[i]) + 1; /* and its comma */
		total += len[i];
	}
	/* the oldest go first while it does not fit; the newest message always stays */
	while (max_bytes && total > max_bytes && from + 1 < n)
		total -= len[from++];
	for (size_t i = 0; i < n; i++) {
		if (i < from)
			json_decref(items[i]);
		else
			json_array_append_new(arr, items[i]);
	}
	if (ret_dropped)
		*ret_dropped = from;
	free(len);
	free(items);
	return arr;
}
