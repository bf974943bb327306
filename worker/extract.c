/* extract.c — extraction prompt, answer parser and order id (extract.h). */
#include "extract.h"

#include <ctype.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "text.h"

const char LH_EXTRACT_SYSTEM[] =
	"You pick what an agent should remember from a task it finished. You get the task's "
	"instructions and its output. List the durable facts a later task could need: names, "
	"numbers, decisions, locations, preferences, outcomes. Each fact is one short, "
	"self-contained sentence (no \"it\" or \"this\" without what it is). Leave out what is "
	"only about this one run, guesses, and instructions to the agent. Answer with JSON only: "
	"{\"facts\": [\"...\", \"...\"]}, at most 16 facts; {\"facts\": []} when nothing is "
	"worth remembering.";

char *lh_extract_prompt(const char *instructions, const char *output, long max_bytes)
{
	size_t max = max_bytes > 0 ? (size_t)max_bytes : LH_EXTRACT_MAX_SOURCE;
	const char *in = instructions ? instructions : "", *out = output ? output : "";
	size_t li = strlen(in), lo = strlen(out);
	size_t ci = lh_utf8_head(in, li, max), co = lh_utf8_head(out, lo, max);
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

lh_err_t lh_extract_parse(const char *text, size_t len, char ***ret_facts, size_t *ret_n,
			  lh_error_t *err)
{
	json_t *root, *arr, *v;
	size_t i, n;
	char **facts = NULL;
	const lh_err_t rc = LH_ERR_DECODE;

	if (!text)
		return lh_error_set(err, rc, "could not parse the extraction answer: empty");
	if (lh_llm_answer_json(text, len, "extraction answer", &root, err))
		return LH_ERR_DECODE;
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
		    !*(facts[i] = lh_strndup_trim(s, sl))) {
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

static char *dup0(const char *s)
{
	char *r = s ? strdup(s) : NULL;
	if (s && !r)
		abort();
	return r;
}

/* ---- the extract order, as a follow-up of the source attempt ----------------------------- */

lh_followup_t *lh_extract_followup(lh_followup_t *chain, const lh_event_t *order,
				   const char *tier, const char *topic, const char *system,
				   const char *const *recalled, size_t n_recalled,
				   const json_t *output)
{
	const lh_task_order_t *o = order->body;
	json_t *rec = json_array(), *inputs;
	char *out = output ? json_dumps(output, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (!rec)
		abort();
	for (size_t i = 0; i < n_recalled; i++)
		json_array_append_new(rec, json_string(recalled[i] ? recalled[i] : ""));
	/* a string output goes as it is; anything else as its JSON text */
	inputs = json_pack("{s:s, s:s, s:o}", "output",
			   json_is_string(output) ? json_string_value(output) : out ? out : "",
			   "system", system ? system : "", "recalled", rec);
	free(out);
	return lh_followup_add(chain, order, "extract",
			       lh_extract_order_id(&order->plan_id, (long long)order->task_no,
						   (long long)order->attempt),
			       tier, topic, o->instructions, inputs);
}

/* ---- an extract order's work ------------------------------------------------------------- */

struct lh_extract_job {
	char *tenant, source[LH_ID_HEX_LEN + 1];
	lh_memory_t tmpl;
	char **cand;
	size_t ncand;
	const char **facts; /* the kept candidates */
	size_t nfacts;
	lh_extract_nearest_t nn;
	char *answer;
	lh_reconcile_outcome_t *out;
	bool applied;
	void *owner;
	lh_memory_consolidation_t cons;
};

lh_extract_job_t *lh_extract_job_new(const lh_event_t *order, void *owner)
{
	lh_extract_job_t *j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	j->owner = owner;
	j->tenant = dup0(order->tenant ? order->tenant : "default");
	lh_id_hex(&order->causation_id, j->source);
	j->tmpl = (lh_memory_t){.tenant = j->tenant,
				.scope = LH_MEMORY_TENANT,
				.kind = LH_MEMORY_SEMANTIC,
				.source_event = lh_id_is_zero(&order->causation_id) ? NULL : j->source,
				.task_no = (int)order->task_no,
				.attempt = (int)order->attempt};
	return j;
}

void *lh_extract_job_owner(const lh_extract_job_t *j) { return j->owner; }

void lh_extract_job_free(lh_extract_job_t *j)
{
	if (!j)
		return;
	free(j->tenant);
	lh_extract_facts_free(j->cand, j->ncand);
	free(j->facts);
	lh_extract_nearest_finish(&j->nn);
	free(j->answer);
	free(j->out);
	free(j);
}

char *lh_extract_job_prompt(const lh_event_t *order)
{
	const lh_task_order_t *o = order->body;
	json_t *out = json_object_get(o->inputs, "output");
	char *dump = NULL, *r;
	if (out && !json_is_string(out))
		dump = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
	r = lh_extract_prompt(o->instructions, dump ? dump : json_string_value(out), 0);
	free(dump);
	return r;
}

long lh_extract_job_facts(lh_extract_job_t *j, const lh_event_t *order, const char *answer,
			  lh_error_t *err)
{
	const lh_task_order_t *o = order->body;
	json_t *rec = json_object_get(o->inputs, "recalled"), *v;
	const char **recalled = NULL;
	size_t nrec = 0, i;
	int *keep;
	if (lh_extract_parse(answer, answer ? strlen(answer) : 0, &j->cand, &j->ncand, err))
		return -1;
	if (j->ncand == 0)
		return 0;
	if (json_array_size(rec) && !(recalled = calloc(json_array_size(rec), sizeof(char *))))
		abort();
	json_array_foreach(rec, i, v)
		if (json_is_string(v))
			recalled[nrec++] = json_string_value(v);
	keep = calloc(j->ncand, sizeof(int));
	j->facts = calloc(j->ncand, sizeof(char *));
	if (!keep || !j->facts)
		abort();
	lh_reconcile_filter((const char *const *)j->cand, j->ncand,
			    json_string_value(json_object_get(o->inputs, "system")), recalled, nrec,
			    keep);
	for (i = 0; i < j->ncand; i++)
		if (keep[i])
			j->facts[j->nfacts++] = j->cand[i];
	free(keep);
	free(recalled);
	return (long)j->nfacts;
}

lh_err_t lh_extract_job_nearest(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_extract_job_t *j = job;
	lh_extract_nearest_finish(&j->nn); /* a repeat on a new connection starts over */
	return lh_extract_nearest(pg, emb, j->tenant, NULL, j->facts, j->nfacts, 5, &j->nn, err);
}

char *lh_extract_job_reconcile_prompt(const lh_extract_job_t *j)
{
	return lh_reconcile_prompt(j->facts, j->nfacts, (const char *const *)j->nn.contents,
				   j->nn.n);
}

void lh_extract_job_set_answer(lh_extract_job_t *j, const char *answer)
{
	free(j->answer);
	j->answer = dup0(answer ? answer : "");
}

lh_err_t lh_extract_job_apply(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_extract_job_t *j = job;
	lh_err_t rc;
	if (!j->out && !(j->out = calloc(j->nfacts ? j->nfacts : 1, sizeof(*j->out))))
		abort();
	j->tmpl.embedder = emb;
	rc = lh_extract_apply(pg, &j->tmpl, j->facts, j->nfacts, &j->nn, j->answer,
			      strlen(j->answer), j->out, err);
	j->applied = rc == LH_OK;
	return rc;
}

void lh_extract_job_counts(const lh_extract_job_t *j, int *ret_written, int *ret_superseded,
			   int *ret_duplicates, int *ret_none)
{
	*ret_written = *ret_superseded = *ret_duplicates = *ret_none = 0;
	for (size_t i = 0; j->applied && i < j->nfacts; i++) {
		*ret_written += j->out[i].memory_id > 0 && !j->out[i].duplicate_of;
		*ret_superseded += j->out[i].superseded_id > 0;
		*ret_duplicates += j->out[i].duplicate_of > 0;
		*ret_none += j->out[i].op == LH_RECONCILE_NONE;
	}
}

lh_err_t lh_extract_job_consolidate(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_extract_job_t *j = job;
	return lh_memory_consolidate(pg, j->tenant, 0, 1000, lh_embedder_near_dup(emb), 0, &j->cons,
				     err);
}

int lh_extract_job_merged(const lh_extract_job_t *j) { return j->cons.merged; }
