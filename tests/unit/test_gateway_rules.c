/* test_gateway_rules: the rule responder's rules (gateway/rules.c) — parsing with clear errors,
 * cost estimates, first-match semantics, deny lists, tiers, questions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "t.h"

static const char rules_text[] =
	"[{\"name\":\"cheap\",\"kind\":\"task\",\"max_cost_usd\":0.05,"
	"\"deny_tools\":[\"http_fetch\",\"shell\"],\"tiers\":[\"fast\",\"standard\"],"
	"\"action\":\"approve\",\"reason\":\"cheap and harmless\"},"
	"{\"name\":\"no-frontier\",\"kind\":[\"task\",\"escalation\"],\"tiers\":[\"frontier\"],"
	"\"action\":\"reject\"},"
	"{\"name\":\"small-budget\",\"kind\":\"budget_extension\",\"max_cost_usd\":1,"
	"\"action\":\"approve\"},"
	"{\"name\":\"tz\",\"kind\":\"question\",\"question_contains\":\"time zone\","
	"\"action\":\"answer\",\"answer\":\"UTC\"}]";

static gw_rules_t *load(void)
{
	gw_rules_t *rules = NULL;
	lh_error_t err = {0};
	T_EQ_INT(gw_rules_parse(rules_text, "fast=0.002,standard=0.08,frontier=1", &rules, &err),
		 LH_OK);
	return rules;
}

/* The name of the rule matching an approval.requested / input.requested body, or "-". */
static const char *match(gw_rules_t *rules, bool question, const char *body_text)
{
	static char out[80];
	json_t *body = json_loads(body_text, 0, NULL);
	gw_rule_req_t rq;
	const gw_rule_t *r;
	T_CHECK(body != NULL);
	if (!gw_rules_request(rules, question, body, &rq))
		snprintf(out, sizeof(out), "not a request");
	else
		snprintf(out, sizeof(out), "%s", (r = gw_rules_match(rules, &rq)) ? r->name : "-");
	json_decref(body);
	return out;
}

static void t_match(void)
{
	gw_rules_t *rules = load();
	if (!rules)
		return;
	T_EQ_INT(rules->n, 4);
	/* a fast task without a tool costs 0.002: approved */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"task:2:v1\",\"kind\":\"task\",\"question\":\"q\","
		       "\"proposed\":{\"task_no\":2,\"tier\":\"fast\",\"instructions\":\"x\"}}"),
		 "cheap");
	/* a tool on the deny list: nobody */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"r\",\"kind\":\"task\",\"question\":\"q\","
		       "\"proposed\":{\"tier\":\"fast\",\"tool\":\"http_fetch\"}}"),
		 "-");
	/* a tool not on it */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"r\",\"kind\":\"task\",\"question\":\"q\","
		       "\"proposed\":{\"tier\":\"fast\",\"tool\":\"memory_search\"}}"),
		 "cheap");
	/* standard is estimated at 0.08 > 0.05 */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"r\",\"kind\":\"task\",\"question\":\"q\","
		       "\"proposed\":{\"tier\":\"standard\"}}"),
		 "-");
	/* frontier: the second rule rejects (first match wins, the first did not match) */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"r\",\"kind\":\"task\",\"question\":\"q\","
		       "\"proposed\":{\"tier\":\"frontier\"}}"),
		 "no-frontier");
	/* no tier: unknown cost, not in any tier list */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"r\",\"kind\":\"task\",\"question\":\"q\"}"),
		 "-");
	/* budget: 0.5 more dollars is within 1 */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"b\",\"kind\":\"budget_extension\",\"question\":\"q\","
		       "\"proposed\":{\"dimension\":\"usd\",\"used\":0.5,\"suggested_limit\":1.0}}"),
		 "small-budget");
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"b\",\"kind\":\"budget_extension\",\"question\":\"q\","
		       "\"proposed\":{\"dimension\":\"usd\",\"used\":2,\"suggested_limit\":4}}"),
		 "-");
	/* tokens: no cost known, the max_cost rule does not take it */
	T_EQ_STR(match(rules, false,
		       "{\"request_id\":\"b\",\"kind\":\"budget_extension\",\"question\":\"q\","
		       "\"proposed\":{\"dimension\":\"tokens\",\"used\":10,\"suggested_limit\":20}}"),
		 "-");
	T_EQ_STR(match(rules, false, "{\"request_id\":\"n\",\"kind\":\"no_progress\",\"question\":\"q\"}"),
		 "-");
	/* questions */
	T_EQ_STR(match(rules, true, "{\"request_id\":\"q\",\"question\":\"Which TIME ZONE?\"}"),
		 "tz");
	T_EQ_STR(match(rules, true, "{\"request_id\":\"q\",\"question\":\"Which hotel?\"}"), "-");
	T_EQ_STR(match(rules, false, "{\"request_id\":\"q\",\"kind\":\"weird\",\"question\":\"q\"}"),
		 "not a request");
	gw_rules_free(rules);
}

static void bad(const char *text, const char *cost, const char *want)
{
	gw_rules_t *rules = NULL;
	lh_error_t err = {0};
	T_EQ_INT(gw_rules_parse(text, cost, &rules, &err), LH_ERR_CONFIG);
	T_CHECK(rules == NULL);
	if (!strstr(err.msg, want))
		fprintf(stderr, "  got: %s\n  want: %s\n", err.msg, want);
	T_CHECK(strstr(err.msg, want) != NULL);
}

static void t_errors(void)
{
	gw_rules_t *rules = NULL;
	lh_error_t err = {0};
	T_EQ_INT(gw_rules_parse("", "", &rules, &err), LH_OK);
	T_EQ_INT(rules->n, 0);
	gw_rules_free(rules);
	bad("{", "", "responder.rules: ");
	bad("{}", "", "expected a JSON array");
	bad("[{\"kind\":\"task\",\"action\":\"approve\"}]", "", "responder.rules[0]: name must be");
	bad("[{\"name\":\"a b\",\"kind\":\"task\",\"action\":\"approve\"}]", "", "may hold only");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"approve\",\"colour\":1}]", "",
	    "unknown key \"colour\"");
	bad("[{\"name\":\"a\",\"kind\":\"approval\",\"action\":\"approve\"}]", "",
	    "(\"a\"): kind must be one of");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"maybe\"}]", "", "not \"maybe\"");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"answer\",\"answer\":\"x\"}]", "",
	    "its kind must be \"question\" alone");
	bad("[{\"name\":\"a\",\"kind\":\"question\",\"action\":\"approve\"}]", "",
	    "use action \"answer\"");
	bad("[{\"name\":\"a\",\"kind\":\"question\",\"action\":\"answer\"}]", "",
	    "answer must be a non-empty string");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"approve\",\"max_cost_usd\":-1}]", "",
	    "max_cost_usd must be a number >= 0");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"approve\",\"deny_tools\":[]}]", "",
	    "deny_tools must be a non-empty array");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"approve\",\"tiers\":[1]}]", "",
	    "tiers[0] must be a non-empty string");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"approve\"},"
	    "{\"name\":\"a\",\"kind\":\"task\",\"action\":\"reject\"}]",
	    "", "name \"a\" is used by rule 0 too");
	bad("[{\"name\":\"a\",\"kind\":\"task\",\"action\":\"approve\",\"name\":\"b\"}]", "",
	    "duplicate");
	bad("", "fast", "expected TIER=USD");
	bad("", "fast=cheap", "must be a number >= 0");
	bad("", "fast=1,fast=2", "listed twice");
	bad("@/nonexistent/rules.json", "", "/nonexistent/rules.json");
	{
		char big[64 * 80 + 16];
		size_t n = 0;
		n += (size_t)snprintf(big + n, sizeof(big) - n, "[");
		for (int i = 0; i < 65; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n,
					      "%s{\"name\":\"r%d\",\"kind\":\"task\",\"action\":"
					      "\"approve\"}",
					      i ? "," : "", i);
		snprintf(big + n, sizeof(big) - n, "]");
		bad(big, "", "65 rules; at most 64");
	}
}

int main(void)
{
	T_RUN(t_match);
	T_RUN(t_errors);
	return t_done();
}
