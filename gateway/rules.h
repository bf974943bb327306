/* rules.h — the automated responder's rules (responder.rules): parsed and checked once at
 * start-up, then matched against each approval.requested / input.requested. Pure functions: no
 * Kafka, no PostgreSQL (tests/unit/test_gateway_rules.c runs them alone).
 *
 * A rule (JSON object; unknown keys are refused):
 *   name              [A-Za-z0-9_.-]{1,64}, unique: the answer's responder_id
 *   kind              "task" | "budget_extension" | "escalation" | "no_progress" | "question",
 *                     or a non-empty array of them (the approval kinds the coordinator asks, and
 *                     a model's question)
 *   action            "approve" | "reject" (approval kinds only) | "answer" (question only)
 *   answer            the answer's text (required with "answer", at most 4096 bytes)
 *   max_cost_usd      matches only a request whose estimated cost is known and at most this
 *                     (not for questions)
 *   deny_tools        a task using one of these tools does not match
 *   tiers             matches only a request whose tier is one of these
 *   question_contains matches only a question containing this text (case-insensitive)
 *   reason            text for the decision's reason (default: "rule NAME")
 * The first rule that matches answers; no match leaves the request to people. */
#ifndef LH_GATEWAY_RULES_H
#define LH_GATEWAY_RULES_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"

#define GW_RULES_MAX 64
#define GW_RULE_LIST_MAX 64 /* entries of deny_tools or tiers */

typedef enum gw_req_kind {
	GW_REQ_TASK = 0,
	GW_REQ_BUDGET,
	GW_REQ_ESCALATION,
	GW_REQ_NO_PROGRESS,
	GW_REQ_QUESTION,
	GW_REQ__COUNT
} gw_req_kind_t;

typedef enum gw_rule_action { GW_RULE_APPROVE, GW_RULE_REJECT, GW_RULE_ANSWER } gw_rule_action_t;

typedef struct gw_rule {
	char *name;
	unsigned kinds; /* bit per gw_req_kind_t */
	gw_rule_action_t action;
	char *answer;
	char *reason;
	bool has_max_cost;
	double max_cost_usd;
	char **deny_tools;
	int ndeny;
	char **tiers;
	int ntiers;
	char *question_contains;
} gw_rule_t;

typedef struct gw_tier_cost {
	char *tier;
	double usd;
} gw_tier_cost_t;

typedef struct gw_rules {
	gw_rule_t *rules;
	int n;
	gw_tier_cost_t *costs; /* responder.task_cost_usd */
	int ncosts;
} gw_rules_t;

/* What a rule looks at in a request (borrowed strings, NULL when unknown or absent). */
typedef struct gw_rule_req {
	gw_req_kind_t kind;
	const char *tier;
	const char *tool;
	const char *question;
	bool has_cost;
	double cost_usd;
} gw_rule_req_t;

/* Parse rules_text (a JSON array, or "@PATH" of a file holding one; "" = no rules) and
 * cost_text ("fast=0.002,standard=0.02"; "" = no estimates). On success *ret_rules is new
 * (gw_rules_free); on error nothing is allocated and err names the rule and the field. */
lh_err_t gw_rules_parse(const char *rules_text, const char *cost_text, gw_rules_t **ret_rules,
			lh_error_t *err);
/* Accepts NULL, returns NULL. */
gw_rules_t *gw_rules_free(gw_rules_t *rules);

/* The request a rule sees, from an approval.requested / input.requested body (JSON, borrowed:
 * the strings in ret_req point into it). false for any other event. */
bool gw_rules_request(const gw_rules_t *rules, bool question, const json_t *body,
		      gw_rule_req_t *ret_req);
/* The first rule matching req (borrowed from rules), or NULL: left to people. */
const gw_rule_t *gw_rules_match(const gw_rules_t *rules, const gw_rule_req_t *req);
const char *gw_req_kind_name(gw_req_kind_t kind);

#endif
