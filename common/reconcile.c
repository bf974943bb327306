/* reconcile.c — candidate facts against existing memories: filter, prompt, parse, apply. */
#include "reconcile.h"

#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "llm.h"

const char LH_RECONCILE_SYSTEM[] =
	"You maintain an agent's long-term memory. You get new facts F1..Fn and the existing "
	"memories M1..Mm closest to them. Decide for every fact, once:\n"
	"- ADD: the fact is new information.\n"
	"- UPDATE: the fact refines memory M (same subject, more or newer detail); give the full "
	"replacement in \"text\" when it should combine both.\n"
	"- DELETE: the fact contradicts memory M, which is no longer true.\n"
	"- NONE: the fact is already known or not worth keeping.\n"
	"Answer only JSON: {\"decisions\": [{\"fact\": 1, \"op\": \"ADD\"}, {\"fact\": 2, \"op\": "
	"\"UPDATE\", \"memory\": 1, \"text\": \"...\"}, {\"fact\": 3, \"op\": \"DELETE\", "
	"\"memory\": 2}, {\"fact\": 4, \"op\": \"NONE\", \"memory\": 3}]}. Use only the numbers "
	"shown.";

/* Lower-case alphanumeric words joined by single spaces, with a space at both ends so that a
 * substring search matches whole words only. New. */
static char *words(const char *s)
{
	lh_buf_t b;
	bool space = true;
	lh_buf_init(&b);
	lh_buf_appends(&b, " ");
	for (const char *p = s ? s : ""; *p; p++) {
		if (isalnum((unsigned char)*p)) {
			char c = (char)tolower((unsigned char)*p);
			lh_buf_append(&b, &c, 1);
			space = false;
		} else if (!space) {
			lh_buf_appends(&b, " ");
			space = true;
		}
	}
	if (!space)
		lh_buf_appends(&b, " ");
	return lh_buf_steal(&b, NULL);
}

size_t lh_reconcile_filter(const char *const *candidates, size_t n, const char *system,
			   const char *const *recalled, size_t n_recalled, int *keep)
{
	char **cw = calloc(n ? n : 1, sizeof(char *)), **rw = NULL, *sw = words(system);
	size_t kept = 0;
	if (!cw)
		abort();
	if (n_recalled && !(rw = calloc(n_recalled, sizeof(char *))))
		abort();
	for (size_t j = 0; j < n_recalled; j++)
		rw[j] = words(recalled[j]);
	for (size_t i = 0; i < n; i++) {
		cw[i] = words(candidates[i]);
		keep[i] = strcmp(cw[i], " ") != 0;
		for (size_t j = 0; j < i && keep[i]; j++)
			if (strcmp(cw[i], cw[j]) == 0)
				keep[i] = 0;
		if (keep[i] && strlen(sw) > 1 && strstr(sw, cw[i]))
			keep[i] = 0;
		for (size_t j = 0; j < n_recalled && keep[i]; j++)
			if (strstr(rw[j], cw[i]))
				keep[i] = 0;
		kept += keep[i] ? 1 : 0;
	}
	for (size_t i = 0; i < n; i++)
		free(cw[i]);
	for (size_t j = 0; j < n_recalled; j++)
		free(rw[j]);
	free(cw);
	free(rw);
	free(sw);
	return kept;
}

char *lh_reconcile_prompt(const char *const *facts, size_t n_facts, const char *const *memories,
			  size_t n_memories)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_appends(&b, "New facts:\n");
	for (size_t i = 0; i < n_facts; i++)
		lh_buf_printf(&b, "F%zu: %s\n", i + 1, facts[i]);
	lh_buf_appends(&b, "\nExisting memories:\n");
	if (!n_memories)
		lh_buf_appends(&b, "(none)\n");
	for (size_t i = 0; i < n_memories; i++)
		lh_buf_printf(&b, "M%zu: %s\n", i + 1, memories[i]);
	return lh_buf_steal(&b, NULL);
}

void lh_reconcile_decisions_free(lh_reconcile_decision_t *d, size_t n)
{
	if (!d)
		return;
	for (size_t i = 0; i < n; i++)
		free(d[i].text);
	free(d);
}

static int op_parse(const char *s)
{
	static const char *const names[] = {"ADD", "UPDATE", "DELETE", "NONE"};
	for (int i = 0; i < 4; i++)
		if (strcasecmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* A 1-based number shown to the model, as an integer or "F3" / "M2" / "3"; 0 when not one. */
static long shown_number(json_t *v, char prefix)
{
	if (json_is_integer(v))
		return json_integer_value(v) > 0 && json_integer_value(v) < 1000000
			       ? (long)json_integer_value(v) : 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		long x;
		if (toupper((unsigned char)*s) == prefix)
			s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		x = strtol(s, &end, 10);
		return *end == 0 && x > 0 && x < 1000000 ? x : 0;
	}
	return 0;
}

lh_err_t lh_reconcile_parse(const char *text, size_t len, size_t n_facts, size_t n_memories,
			    lh_reconcile_decision_t **ret, lh_error_t *err)
{
	json_t *root = NULL, *arr;
	lh_reconcile_decision_t *d = NULL;
	bool *decided = NULL, *touched = NULL;
	lh_err_t rc = LH_ERR_DECODE;

	if (n_facts == 0)
		return lh_error_set(err, LH_ERR_INVALID, "could not parse the reconcile answer: no "
				    "facts");
	if (lh_llm_answer_json(text, len, "reconcile answer", &root, err))
		return LH_ERR_DECODE;
	arr = json_is_object(root) ? json_object_get(root, "decisions") : NULL;
	if (!json_is_array(arr) || json_object_size(root) != 1) {
		lh_error_set(err, rc, "could not parse the reconcile answer: expected an object "
			     "with only a \"decisions\" array");
		goto out;
	}
	d = calloc(n_facts, sizeof(*d));
	decided = calloc(n_facts, sizeof(*decided));
	touched = calloc(n_memories ? n_memories : 1, sizeof(*touched));
	if (!d || !decided || !touched) {
		rc = lh_error_set(err, LH_ERR_NOMEM, "could not parse the reconcile answer: out of "
				  "memory");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *o = json_array_get(arr, i), *jt;
		const char *key;
		json_t *val;
		long fact = 0, mem = 0;
		int op = -1;
		if (!json_is_object(o)) {
			lh_error_set(err, rc, "could not parse the reconcile answer: decision %zu is "
				     "not an object", i + 1);
			goto out;
		}
		json_object_foreach(o, key, val)
		{
			if (strcmp(key, "fact") != 0 && strcmp(key, "op") != 0 &&
			    strcmp(key, "memory") != 0 && strcmp(key, "text") != 0) {
				lh_error_set(err, rc, "could not parse the reconcile answer: decision "
					     "%zu has an unknown key", i + 1);
				goto out;
			}
		}
		fact = shown_number(json_object_get(o, "fact"), 'F');
		if (fact < 1 || (size_t)fact > n_facts || decided[fact - 1]) {
			lh_error_set(err, rc, "could not parse the reconcile answer: decision %zu "
				     "names no fact shown, or one decided before", i + 1);
			goto out;
		}
		if (json_is_string(json_object_get(o, "op")))
			op = op_parse(json_string_value(json_object_get(o, "op")));
		if (op < 0) {
			lh_error_set(err, rc, "could not parse the reconcile answer: decision %zu has "
				     "no op among ADD, UPDATE, DELETE, NONE", i + 1);
			goto out;
		}
		if (json_object_get(o, "memory") && !json_is_null(json_object_get(o, "memory"))) {
			mem = shown_number(json_object_get(o, "memory"), 'M');
			if (mem < 1 || (size_t)mem > n_memories) {
				lh_error_set(err, rc, "could not parse the reconcile answer: decision "
					     "%zu names no memory shown", i + 1);
				goto out;
			}
		}
		if ((op == LH_RECONCILE_UPDATE || op == LH_RECONCILE_DELETE) &&
		    (mem == 0 || touched[mem - 1])) {
			lh_error_set(err, rc, "could not parse the reconcile answer: decision %zu "
				     "must name a memory no other UPDATE or DELETE names", i + 1);
			goto out;
		}
		if (op == LH_RECONCILE_ADD && mem != 0) {
			lh_error_set(err, rc, "could not parse the reconcile answer: decision %zu "
				     "adds with a memory", i + 1);
			goto out;
		}
		jt = json_object_get(o, "text");
		if (jt && !json_is_null(jt) &&
		    (op != LH_RECONCILE_UPDATE || !json_is_string(jt) ||
		     !*json_string_value(jt))) {
			lh_error_set(err, rc, "could not parse the reconcile answer: decision %zu "
				     "has a text that is not an UPDATE's non-empty string", i + 1);
			goto out;
		}
		decided[fact - 1] = true;
		if (op == LH_RECONCILE_UPDATE || op == LH_RECONCILE_DELETE)
			touched[mem - 1] = true;
		d[fact - 1].fact = (int)fact - 1;
		d[fact - 1].op = (lh_reconcile_op_t)op;
		d[fact - 1].memory = mem ? (int)mem - 1 : -1;
		if (jt && json_is_string(jt) && !(d[fact - 1].text = strdup(json_string_value(jt)))) {
			rc = lh_error_set(err, LH_ERR_NOMEM, "could not parse the reconcile answer: "
					  "out of memory");
			goto out;
		}
	}
	for (size_t f = 0; f < n_facts; f++)
		if (!decided[f])
			d[f] = (lh_reconcile_decision_t){.fact = (int)f, .op = LH_RECONCILE_ADD,
							 .memory = -1};
	*ret = d;
	d = NULL;
	rc = LH_OK;
out:
	lh_reconcile_decisions_free(d, n_facts);
	free(decided);
	free(touched);
	json_decref(root);
	return rc;
}

lh_err_t lh_reconcile_apply(lh_pg_t *pg, const lh_memory_t *tmpl, const char *const *facts,
			    size_t n_facts, const int64_t *memory_ids, size_t n_memories,
			    const lh_reconcile_decision_t *decisions, size_t n,
			    lh_reconcile_outcome_t *ret_outcomes, lh_error_t *err)
{
	for (size_t i = 0; i < n; i++) {
		const lh_reconcile_decision_t *dc = &decisions[i];
		lh_reconcile_outcome_t out = {.op = dc->op};
		lh_memory_t m = *tmpl;
		int64_t id = 0, old = 0;
		lh_err_t rc;
		if (dc->fact < 0 || (size_t)dc->fact >= n_facts ||
		    (dc->memory >= 0 && (size_t)dc->memory >= n_memories) ||
		    ((dc->op == LH_RECONCILE_UPDATE || dc->op == LH_RECONCILE_DELETE) &&
		     dc->memory < 0))
			return lh_error_set(err, LH_ERR_INVALID, "could not apply reconcile decision "
					    "%zu: fact or memory out of range", i + 1);
		if (dc->op == LH_RECONCILE_NONE) {
			if (ret_outcomes)
				ret_outcomes[i] = out;
			continue;
		}
		m.content = dc->text ? dc->text : facts[dc->fact];
		if (dc->op != LH_RECONCILE_ADD)
			old = memory_ids[dc->memory];
		/* an UPDATE or DELETE was judged different from its memory by the model: only the
		 * exact check applies, a near one would refuse "port 8000" -> "port 9443" */
		rc = lh_memory_write(pg, &m, dc->op == LH_RECONCILE_ADD ? 0 : 2, &id, err);
		if (rc == LH_ERR_CONFLICT && id > 0) {
			out.duplicate_of = id;
			if (dc->op != LH_RECONCILE_ADD && id != old) {
				rc = lh_memory_supersede(pg, old, id, err);
				if (rc == LH_OK)
					out.superseded_id = old;
				else if (rc != LH_ERR_NOT_FOUND) /* already superseded: a re-run */
					return rc;
			}
		} else if (rc != LH_OK) {
			return rc;
		} else {
			out.memory_id = id;
			if (dc->op != LH_RECONCILE_ADD) {
				rc = lh_memory_supersede(pg, old, id, err);
				if (rc == LH_OK)
					out.superseded_id = old;
				else if (rc != LH_ERR_NOT_FOUND)
					return rc;
			}
		}
		if (ret_outcomes)
			ret_outcomes[i] = out;
	}
	return LH_OK;
}
