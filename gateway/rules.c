/* rules.c — parse, check and match the automated responder's rules (see rules.h). */
#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[GW_REQ__COUNT] = {"task", "budget_extension", "escalation",
						      "no_progress", "question"};

const char *gw_req_kind_name(gw_req_kind_t kind)
{
	return kind < GW_REQ__COUNT ? kind_names[kind] : "?";
}

static int kind_parse(const char *s)
{
	for (int i = 0; i < GW_REQ__COUNT; i++)
		if (s && !strcmp(s, kind_names[i]))
			return i;
	return -1;
}

static void rule_finish(gw_rule_t *r)
{
	free(r->name);
	free(r->answer);
	free(r->reason);
	free(r->question_contains);
	for (int i = 0; i < r->ndeny; i++)
		free(r->deny_tools[i]);
	free(r->deny_tools);
	for (int i = 0; i < r->ntiers; i++)
		free(r->tiers[i]);
	free(r->tiers);
}

gw_rules_t *gw_rules_free(gw_rules_t *rules)
{
	if (!rules)
		return NULL;
	for (int i = 0; i < rules->n; i++)
		rule_finish(&rules->rules[i]);
	free(rules->rules);
	for (int i = 0; i < rules->ncosts; i++)
		free(rules->costs[i].tier);
	free(rules->costs);
	free(rules);
	return NULL;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

/* A string of at most max bytes: a new copy in *ret, or an error naming where. */
static lh_err_t get_str(const json_t *v, const char *where, const char *key, size_t max,
			char **ret, lh_error_t *err)
{
	if (!json_is_string(v) || !json_string_length(v))
		return lh_error_set(err, LH_ERR_CONFIG, "%s: %s must be a non-empty string", where,
				    key);
	if (json_string_length(v) > max)
		return lh_error_set(err, LH_ERR_CONFIG, "%s: %s is longer than %zu bytes", where,
				    key, max);
	*ret = strdup(json_string_value(v));
	return LH_OK;
}

static lh_err_t get_list(const json_t *v, const char *where, const char *key, char ***ret,
			 int *ret_n, lh_error_t *err)
{
	size_t i;
	json_t *e;
	if (!json_is_array(v) || !json_array_size(v))
		return lh_error_set(err, LH_ERR_CONFIG, "%s: %s must be a non-empty array of strings",
				    where, key);
	if (json_array_size(v) > GW_RULE_LIST_MAX)
		return lh_error_set(err, LH_ERR_CONFIG, "%s: %s has more than %d entries", where,
				    key, GW_RULE_LIST_MAX);
	*ret = calloc(json_array_size(v), sizeof(char *));
	json_array_foreach(v, i, e) {
		char k[48];
		snprintf(k, sizeof(k), "%s[%zu]", key, i);
		if (get_str(e, where, k, 128, &(*ret)[i], err))
			return err->code;
		*ret_n = (int)i + 1;
	}
	return LH_OK;
}

static lh_err_t rule_parse(const json_t *j, int idx, gw_rule_t *r, lh_error_t *err)
{
	static const char *const keys[] = {"name",	 "kind",       "action", "answer",
					   "reason",	 "max_cost_usd", "deny_tools", "tiers",
					   "question_contains", NULL};
	char where[128];
	const char *key;
	json_t *v;
	snprintf(where, sizeof(where), "responder.rules[%d]", idx);
	if (!json_is_object(j))
		return lh_error_set(err, LH_ERR_CONFIG, "%s: expected an object", where);
	json_object_foreach((json_t *)j, key, v) {
		int k = 0;
		while (keys[k] && strcmp(keys[k], key))
			k++;
		if (!keys[k])
			return lh_error_set(err, LH_ERR_CONFIG, "%s: unknown key \"%.64s\"", where,
					    key);
	}
	if (get_str(json_object_get(j, "name"), where, "name", 64, &r->name, err))
		return err->code;
	if (!name_ok(r->name))
		return lh_error_set(err, LH_ERR_CONFIG,
				    "%s: name \"%s\" may hold only letters, digits, '_', '.' and '-'",
				    where, r->name);
	snprintf(where, sizeof(where), "responder.rules[%d] (\"%s\")", idx, r->name);

	v = json_object_get(j, "kind");
	if (json_is_string(v)) {
		int k = kind_parse(json_string_value(v));
		if (k < 0)
			goto out_bad_kind;
		r->kinds = 1u << k;
	} else if (json_is_array(v) && json_array_size(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) {
			int k = kind_parse(json_string_value(e));
			if (k < 0)
				goto out_bad_kind;
			r->kinds |= 1u << k;
		}
	} else
		goto out_bad_kind;

	v = json_object_get(j, "action");
	if (!json_is_string(v))
		return lh_error_set(err, LH_ERR_CONFIG,
				    "%s: action must be \"approve\", \"reject\" or \"answer\"", where);
	if (!strcmp(json_string_value(v), "approve"))
		r->action = GW_RULE_APPROVE;
	else if (!strcmp(json_string_value(v), "reject"))
		r->action = GW_RULE_REJECT;
	else if (!strcmp(json_string_value(v), "answer"))
		r->action = GW_RULE_ANSWER;
	else
		return lh_error_set(err, LH_ERR_CONFIG,
				    "%s: action must be \"approve\", \"reject\" or \"answer\", not "
				    "\"%.32s\"",
				    where, json_string_value(v));
	if (r->action == GW_RULE_ANSWER && r->kinds != 1u << GW_REQ_QUESTION)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "%s: action \"answer\" answers questions: its kind must be "
				    "\"question\" alone",
				    where);
	if (r->action != GW_RULE_ANSWER && (r->kinds & (1u << GW_REQ_QUESTION)))
		return lh_error_set(err, LH_ERR_CONFIG,
				    "%s: a question is answered, not approved: use action \"answer\" "
				    "in a rule of its own",
				    where);
	if (r->action == GW_RULE_ANSWER) {
		if (get_str(json_object_get(j, "answer"), where, "answer", 4096, &r->answer, err))
			return err->code;
	} else if (json_object_get(j, "answer"))
		return lh_error_set(err, LH_ERR_CONFIG, "%s: answer needs action \"answer\"", where);
	if ((v = json_object_get(j, "reason")) && get_str(v, where, "reason", 512, &r->reason, err))
		return err->code;
	if ((v = json_object_get(j, "max_cost_usd"))) {
		if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
		    !isfinite(json_number_value(v)))
			return lh_error_set(err, LH_ERR_CONFIG,
					    "%s: max_cost_usd must be a number >= 0", where);
		if (r->kinds & (1u << GW_REQ_QUESTION))
			return lh_error_set(err, LH_ERR_CONFIG,
					    "%s: a question has no cost: max_cost_usd is for "
					    "approvals",
					    where);
		r->has_max_cost = true;
		r->max_cost_usd = json_number_value(v);
	}
	if ((v = json_object_get(j, "deny_tools")) &&
	    get_list(v, where, "deny_tools", &r->deny_tools, &r->ndeny, err))
		return err->code;
	if ((v = json_object_get(j, "tiers")) &&
	    get_list(v, where, "tiers", &r->tiers, &r->ntiers, err))
		return err->code;
	if ((v = json_object_get(j, "question_contains"))) {
		if (!(r->kinds & (1u << GW_REQ_QUESTION)))
			return lh_error_set(err, LH_ERR_CONFIG,
					    "%s: question_contains is for kind \"question\"", where);
		if (get_str(v, where, "question_contains", 256, &r->question_contains, err))
			return err->code;
	}
	return LH_OK;
out_bad_kind:
	return lh_error_set(err, LH_ERR_CONFIG,
			    "%s: kind must be one of task, budget_extension, escalation, "
			    "no_progress, question (or a non-empty array of them)",
			    where);
}

static lh_err_t costs_parse(const char *text, gw_rules_t *rules, lh_error_t *err)
{
	char *list = strdup(text), *tok, *save = NULL;
	lh_err_t rc = LH_OK;
	for (tok = strtok_r(list, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end = NULL;
		double usd;
		if (!eq || eq == tok || eq - tok > 64) {
			rc = lh_error_set(err, LH_ERR_CONFIG,
					  "responder.task_cost_usd: expected TIER=USD[,TIER=USD...], "
					  "not \"%.64s\"",
					  tok);
			break;
		}
		*eq = 0;
		usd = strtod(eq + 1, &end);
		if (end == eq + 1 || *end || !(usd >= 0) || !isfinite(usd)) {
			rc = lh_error_set(err, LH_ERR_CONFIG,
					  "responder.task_cost_usd: the cost of tier \"%s\" must be a "
					  "number >= 0, not \"%.32s\"",
					  tok, eq + 1);
			break;
		}
		for (int i = 0; i < rules->ncosts; i++)
			if (!strcmp(rules->costs[i].tier, tok))
				rc = lh_error_set(err, LH_ERR_CONFIG,
						  "responder.task_cost_usd: tier \"%s\" is listed "
						  "twice",
						  tok);
		if (rc)
			break;
		if (rules->ncosts >= GW_RULE_LIST_MAX) {
			rc = lh_error_set(err, LH_ERR_CONFIG,
					  "responder.task_cost_usd: more than %d tiers",
					  GW_RULE_LIST_MAX);
			break;
		}
		rules->costs = realloc(rules->costs, sizeof(*rules->costs) * (size_t)(rules->ncosts + 1));
		rules->costs[rules->ncosts].tier = strdup(tok);
		rules->costs[rules->ncosts].usd = usd;
		rules->ncosts++;
	}
	free(list);
	return rc;
}

lh_err_t gw_rules_parse(const char *rules_text, const char *cost_text, gw_rules_t **ret_rules,
			lh_error_t *err)
{
	json_error_t jerr;
	json_t *root = NULL, *e;
	gw_rules_t *rules = calloc(1, sizeof(*rules));
	lh_err_t rc = LH_OK;
	size_t i;

	if (cost_text && *cost_text && (rc = costs_parse(cost_text, rules, err)))
		goto out_free;
	if (!rules_text || !*rules_text)
		goto out_ok;
	if (rules_text[0] == '@')
		root = json_load_file(rules_text + 1, JSON_REJECT_DUPLICATES, &jerr);
	else
		root = json_loads(rules_text, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = lh_error_set(err, LH_ERR_CONFIG, "responder.rules: %s%s%s (line %d)",
				  rules_text[0] == '@' ? rules_text + 1 : "",
				  rules_text[0] == '@' ? ": " : "", jerr.text, jerr.line);
		goto out_free;
	}
	if (!json_is_array(root)) {
		rc = lh_error_set(err, LH_ERR_CONFIG, "responder.rules: expected a JSON array of rules");
		goto out_free;
	}
	if (json_array_size(root) > GW_RULES_MAX) {
		rc = lh_error_set(err, LH_ERR_CONFIG, "responder.rules: %zu rules; at most %d",
				  json_array_size(root), GW_RULES_MAX);
		goto out_free;
	}
	rules->rules = calloc(json_array_size(root) + 1, sizeof(*rules->rules));
	json_array_foreach(root, i, e) {
		rules->n = (int)i + 1;
		if ((rc = rule_parse(e, (int)i, &rules->rules[i], err)))
			goto out_free;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(rules->rules[k].name, rules->rules[i].name)) {
				rc = lh_error_set(err, LH_ERR_CONFIG,
						  "responder.rules[%zu]: name \"%s\" is used by rule "
						  "%zu too",
						  i, rules->rules[i].name, k);
				goto out_free;
			}
	}
out_ok:
	json_decref(root);
	*ret_rules = rules;
	return LH_OK;
out_free:
	json_decref(root);
	gw_rules_free(rules);
	return rc;
}

bool gw_rules_request(const gw_rules_t *rules, bool question, const json_t *body,
		      gw_rule_req_t *ret_req)
{
	gw_rule_req_t r = {0};
	const json_t *prop = json_object_get(body, "proposed");
	int k;
	if (question) {
		r.kind = GW_REQ_QUESTION;
		r.question = json_string_value(json_object_get(body, "question"));
		*ret_req = r;
		return true;
	}
	if ((k = kind_parse(json_string_value(json_object_get(body, "kind")))) < 0 ||
	    k == GW_REQ_QUESTION)
		return false;
	r.kind = (gw_req_kind_t)k;
	r.question = json_string_value(json_object_get(body, "question"));
	r.tier = json_string_value(json_object_get(prop, "tier"));
	if (r.tier && !*r.tier)
		r.tier = NULL;
	r.tool = json_string_value(json_object_get(prop, "tool"));
	if (r.kind == GW_REQ_TASK && r.tier) {
		/* one task on its tier, as configured: a tier without an estimate has no known
		 * cost, so no rule with max_cost_usd takes it */
		for (int i = 0; i < rules->ncosts; i++)
			if (!strcmp(rules->costs[i].tier, r.tier)) {
				r.has_cost = true;
				r.cost_usd = rules->costs[i].usd;
			}
	} else if (r.kind == GW_REQ_BUDGET) {
		/* extending the dollar budget to the suggested limit lets the plan spend the
		 * difference to what it used */
		const char *dim = json_string_value(json_object_get(prop, "dimension"));
		const json_t *used = json_object_get(prop, "used");
		const json_t *lim = json_object_get(prop, "suggested_limit");
		if (dim && !strcmp(dim, "usd") && json_is_number(used) && json_is_number(lim)) {
			r.has_cost = true;
			r.cost_usd = json_number_value(lim) - json_number_value(used);
			if (r.cost_usd < 0)
				r.cost_usd = 0;
		}
	}
	*ret_req = r;
	return true;
}

static bool in_list(char *const *list, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (s && !strcmp(list[i], s))
			return true;
	return false;
}

const gw_rule_t *gw_rules_match(const gw_rules_t *rules, const gw_rule_req_t *req)
{
	for (int i = 0; rules && i < rules->n; i++) {
		const gw_rule_t *r = &rules->rules[i];
		if (!(r->kinds & (1u << req->kind)))
			continue;
		if (r->ntiers && !in_list(r->tiers, r->ntiers, req->tier))
			continue;
		if (r->ndeny && req->tool && in_list(r->deny_tools, r->ndeny, req->tool))
			continue;
		if (r->has_max_cost && (!req->has_cost || req->cost_usd > r->max_cost_usd))
			continue;
		if (r->question_contains &&
		    (!req->question || !strcasestr(req->question, r->question_contains)))
			continue;
		return r;
	}
	return NULL;
}
