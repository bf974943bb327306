/* extract.c — extraction prompt, answer parser and order id (extract.h). */
#include "extract.h"

#include <ctype.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char LH_EXTRACT_SYSTEM[] =
	"You pick what an agent should remember from a task it finished. You get the task's "
	"instructions and its output. List the durable facts a later task could need: names, "
	"numbers, decisions, locations, preferences, outcomes. Each fact is one short, "
	"self-contained sentence (no \"it\" or \"this\" without what it is). Leave out what is "
	"only about this one run, guesses, and instructions to the agent. Answer with JSON only: "
	"{\"facts\": [\"...\", \"...\"]}, at most 16 facts; {\"facts\": []} when nothing is "
	"worth remembering.";

/* Bytes of s to show, at most max, not ending inside a UTF-8 sequence. */
static size_t cut_len(const char *s, size_t len, size_t max)
{
	size_t n;
	if (len <= max)
		return len;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--; /* s[n] is a continuation byte: the character starts earlier */
	return n;
}

char *lh_extract_prompt(const char *instructions, const char *output, long max_bytes)
{
	size_t max = max_bytes > 0 ? (size_t)max_bytes : LH_EXTRACT_MAX_SOURCE;
	const char *in = instructions ? instructions : "", *out = output ? output : "";
	size_t li = strlen(in), lo = strlen(out);
	size_t ci = cut_len(in, li, max), co = cut_len(out, lo, max);
	size_t cap = ci + co + 128;
	char *p = malloc(cap);
	int n;
	if (!p)
		return NULL;
	n = snprintf(p, cap, "Task instructions:\n%.*s%s\n\nTask output:\n%.*s%s\n", (int)ci, in,
		     ci < li ? " [cut]" : "", (int)co, out, co < lo ? " [cut]" : "");
	if (n < 0 || (size_t)n >= cap) {
		free(p);
		return NULL;
	}
	return p;
}

void lh_extract_facts_free(char **facts, size_t n)
{
	if (!facts)
		return;
	for (size_t i = 0; i < n; i++)
		free(facts[i]);
	free(facts);
}

static char *trimmed(const char *s, size_t len)
{
	size_t a = 0, b = len;
	char *r;
	while (a < b && isspace((unsigned char)s[a]))
		a++;
	while (b > a && isspace((unsigned char)s[b - 1]))
		b--;
	if (a == b)
		return NULL;
	if (!(r = malloc(b - a + 1)))
		abort();
	memcpy(r, s + a, b - a);
	r[b - a] = '\0';
	return r;
}

lh_err_t lh_extract_parse(const char *text, size_t len, char ***ret_facts, size_t *ret_n,
			  lh_error_t *err)
{
	json_error_t jerr;
	json_t *root, *arr, *v;
	size_t start = 0, end = len, i, n;
	char **facts = NULL;
	const lh_err_t rc = LH_ERR_DECODE;

	if (!text)
		return lh_error_set(err, rc, "could not parse the extraction answer: empty");
	/* tolerate a Markdown fence: ```json ... ``` */
	while (start < end && isspace((unsigned char)text[start]))
		start++;
	if (end - start >= 3 && memcmp(text + start, "```", 3) == 0) {
		const char *nl = memchr(text + start, '\n', end - start);
		if (!nl)
			return lh_error_set(err, rc, "could not parse the extraction answer: an "
					    "unterminated code fence");
		start = (size_t)(nl - text) + 1;
		while (end > start && isspace((unsigned char)text[end - 1]))
			end--;
		if (end - start < 3 || memcmp(text + end - 3, "```", 3) != 0)
			return lh_error_set(err, rc, "could not parse the extraction answer: an "
					    "unterminated code fence");
		end -= 3;
	}
	if (!(root = json_loadb(text + start, end - start, JSON_REJECT_DUPLICATES, &jerr)))
		return lh_error_set(err, rc, "could not parse the extraction answer: %s", jerr.text);
	arr = json_is_object(root) ? json_object_get(root, "facts") : NULL;
	if (!json_is_array(arr) || json_object_size(root) != 1) {
		json_decref(root);
		return lh_error_set(err, rc, "could not parse the extraction answer: expected an "
				    "object with only a \"facts\" array");
	}
	n = json_array_size(arr);
	if (n > LH_EXTRACT_MAX_FACTS) {
		json_decref(root);
		return lh_error_set(err, rc, "could not parse the extraction answer: %zu facts, at "
				    "most %d", n, LH_EXTRACT_MAX_FACTS);
	}
	if (n > 0 && !(facts = calloc(n, sizeof(*facts))))
		abort();
	json_array_foreach(arr, i, v)
	{
		const char *s = json_string_value(v);
		size_t sl = s ? json_string_length(v) : 0;
		if (!s || memchr(s, '\0', sl) || sl > LH_EXTRACT_MAX_FACT ||
		    !(facts[i] = trimmed(s, sl))) {
			lh_extract_facts_free(facts, n);
			json_decref(root);
			return lh_error_set(err, rc, "could not parse the extraction answer: fact %zu "
					    "is not a non-empty string of at most %d bytes",
					    i + 1, LH_EXTRACT_MAX_FACT);
		}
	}
	json_decref(root);
	*ret_facts = facts;
	*ret_n = n;
	return LH_OK;
}

lh_id_t lh_extract_order_id(const lh_id_t *plan_id, long long task_no, long long attempt)
{
	return lh_event_id_derivef(plan_id, "task.order", 0, "extract:t%lld:a%lld", task_no, attempt);
}

lh_err_t lh_extract_nearest(lh_pg_t *pg, lh_embedder_t *emb, const char *tenant,
			    const char *plan_id, const char *const *facts, size_t n_facts, int k,
			    lh_extract_nearest_t *ret, lh_error_t *err)
{
	memset(ret, 0, sizeof(*ret));
	for (size_t f = 0; f < n_facts && ret->n < LH_EXTRACT_MAX_NEAREST; f++) {
		lh_memory_hit_t *hits = NULL;
		int nh = 0;
		if (lh_memory_search_with(pg, emb, tenant, plan_id, facts[f], k, LH_MEMORY_HYBRID,
					  &hits, &nh, err) != LH_OK) {
			lh_extract_nearest_finish(ret);
			return err->code;
		}
		for (int h = 0; h < nh && ret->n < LH_EXTRACT_MAX_NEAREST; h++) {
			bool seen = false;
			for (size_t i = 0; i < ret->n && !seen; i++)
				seen = ret->ids[i] == hits[h].id;
			if (seen)
				continue;
			ret->ids[ret->n] = hits[h].id;
			if (!(ret->contents[ret->n] = strdup(hits[h].content ? hits[h].content : "")))
				abort();
			ret->n++;
		}
		lh_memory_hits_free(hits, nh);
	}
	return LH_OK;
}

void lh_extract_nearest_finish(lh_extract_nearest_t *nn)
{
	for (size_t i = 0; i < nn->n; i++)
		free(nn->contents[i]);
	memset(nn, 0, sizeof(*nn));
}

lh_err_t lh_extract_apply(lh_pg_t *pg, const lh_memory_t *tmpl, const char *const *facts,
			  size_t n_facts, const lh_extract_nearest_t *nn, const char *answer,
			  size_t len, lh_reconcile_outcome_t *ret_outcomes, lh_error_t *err)
{
	lh_reconcile_decision_t *d = NULL;
	lh_err_t rc;
	if ((rc = lh_reconcile_parse(answer, len, n_facts, nn->n, &d, err)) != LH_OK)
		return rc;
	rc = lh_reconcile_apply(pg, tmpl, facts, n_facts, nn->ids, nn->n, d, n_facts,
				ret_outcomes, err);
	lh_reconcile_decisions_free(d, n_facts);
	return rc;
}
