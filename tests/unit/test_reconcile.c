/* test_reconcile — common/reconcile.c without a database: the answer parser (table), the
 * candidate filter (system prompt and recalled memories never re-ingested), the prompt's small
 * numbers. lh_reconcile_apply runs against PostgreSQL in tests/integration/0029-reconcile.c. */
#include <stdlib.h>

#include "reconcile.h"
#include "t.h"

static void parse_table(void)
{
	static const struct {
		const char *text;
		size_t nf, nm;
		lh_err_t want;
		const char *ops; /* one letter per fact: A U D N */
		const char *mems; /* memory per fact, '-' none, '0'.. */
	} cases[] = {
		{"{\"decisions\":[{\"fact\":1,\"op\":\"ADD\"}]}", 1, 0, LH_OK, "A", "-"},
		{"{\"decisions\":[{\"fact\":2,\"op\":\"update\",\"memory\":1,\"text\":\"t\"},"
		 "{\"fact\":1,\"op\":\"NONE\",\"memory\":2}]}", 2, 2, LH_OK, "NU", "10"},
		{"{\"decisions\":[{\"fact\":\"F1\",\"op\":\"Delete\",\"memory\":\"M2\"}]}", 1, 2, LH_OK,
		 "D", "1"},
		{"```json\n{\"decisions\":[{\"fact\":1,\"op\":\"NONE\"}]}\n```\n", 2, 0, LH_OK, "NA",
		 "--"},
		{"{\"decisions\":[]}", 3, 1, LH_OK, "AAA", "---"},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"NONE\",\"memory\":null}]}", 1, 1, LH_OK, "N", "-"},
		/* refusals */
		{"{\"decisions\":[{\"fact\":1,\"op\":\"ADD\"},{\"fact\":1,\"op\":\"NONE\"}]}", 1, 0,
		 LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":2,\"op\":\"ADD\"}]}", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":0,\"op\":\"ADD\"}]}", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"MERGE\"}]}", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"UPDATE\"}]}", 1, 1, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"DELETE\",\"memory\":3}]}", 1, 2, LH_ERR_DECODE,
		 NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"DELETE\",\"memory\":1},"
		 "{\"fact\":2,\"op\":\"UPDATE\",\"memory\":1}]}", 2, 1, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"ADD\",\"memory\":1}]}", 1, 1, LH_ERR_DECODE,
		 NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"ADD\",\"text\":\"x\"}]}", 1, 0, LH_ERR_DECODE,
		 NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"UPDATE\",\"memory\":1,\"text\":\"\"}]}", 1, 1,
		 LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":1,\"op\":\"ADD\",\"why\":\"x\"}]}", 1, 0, LH_ERR_DECODE,
		 NULL, NULL},
		{"{\"decisions\":[],\"note\":1}", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":{}}", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"[{\"fact\":1,\"op\":\"ADD\"}]", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[1]}", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"```json\n{\"decisions\":[]}", 1, 0, LH_ERR_DECODE, NULL, NULL},
		{"{\"decisions\":[{\"fact\":\"F1x\",\"op\":\"ADD\"}]}", 1, 0, LH_ERR_DECODE, NULL,
		 NULL},
		{"", 1, 0, LH_ERR_DECODE, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lh_reconcile_decision_t *d = NULL;
		lh_error_t err = {0};
		lh_err_t rc = lh_reconcile_parse(cases[i].text, strlen(cases[i].text), cases[i].nf,
						 cases[i].nm, &d, &err);
		if (rc != cases[i].want)
			fprintf(stderr, "case %zu: %s\n", i, err.msg);
		T_EQ_INT(rc, cases[i].want);
		if (rc != LH_OK) {
			T_CHECK(d == NULL && err.msg[0]);
			continue;
		}
		for (size_t f = 0; f < cases[i].nf; f++) {
			static const char letters[] = "AUDN";
			T_EQ_INT(d[f].fact, (int)f);
			T_EQ_INT(letters[d[f].op], cases[i].ops[f]);
			T_EQ_INT(d[f].memory, cases[i].mems[f] == '-' ? -1 : cases[i].mems[f] - '0');
		}
		lh_reconcile_decisions_free(d, cases[i].nf);
	}
	/* the replacement text is kept */
	lh_reconcile_decision_t *d;
	const char *t = "{\"decisions\":[{\"fact\":1,\"op\":\"UPDATE\",\"memory\":1,"
			"\"text\":\"billing listens on 9443\"}]}";
	T_EQ_INT(lh_reconcile_parse(t, strlen(t), 1, 1, &d, NULL), LH_OK);
	T_EQ_STR(d[0].text, "billing listens on 9443");
	lh_reconcile_decisions_free(d, 1);
}

static void filter(void)
{
	const char *system = "You are Longhaul's release agent. Never deploy on Fridays.";
	const char *recalled[] = {"The billing service listens on port 8000."};
	const char *cands[] = {
		"never deploy on fridays",                      /* the system prompt */
		"The billing service listens on port 8000",     /* a recalled memory */
		"the Billing service  listens on PORT 8000!",   /* the same, other case */
		"The billing service listens on port 9443.",    /* new */
		"",                                             /* empty */
		"The billing service listens on port 9443",     /* repeats the 4th */
		"port",                                         /* a word of the recalled memory */
		"The checkout service is written in Python.",   /* new */
		"Fridays are for deploys",                      /* not inside the prompt */
	};
	int keep[9];
	size_t kept = lh_reconcile_filter(cands, 9, system, recalled, 1, keep);
	int want[9] = {0, 0, 0, 1, 0, 0, 0, 1, 1};
	for (int i = 0; i < 9; i++)
		T_EQ_INT(keep[i], want[i]);
	T_EQ_INT(kept, 3);
	/* no system prompt, nothing recalled */
	kept = lh_reconcile_filter(cands, 9, NULL, NULL, 0, keep);
	T_EQ_INT(kept, 6); /* all but the empty one and the two repeats */
	/* a partial word does not count: "port 80" is not inside "port 8000" */
	const char *c2[] = {"port 80"};
	T_EQ_INT(lh_reconcile_filter(c2, 1, NULL, recalled, 1, keep), 1);
}

static void prompt(void)
{
	const char *facts[] = {"a", "b"};
	const char *mems[] = {"x"};
	char *p = lh_reconcile_prompt(facts, 2, mems, 1);
	T_CHECK(strstr(p, "F1: a\nF2: b\n") != NULL);
	T_CHECK(strstr(p, "M1: x\n") != NULL);
	free(p);
	p = lh_reconcile_prompt(facts, 1, NULL, 0);
	T_CHECK(strstr(p, "(none)") != NULL);
	free(p);
	T_CHECK(strstr(LH_RECONCILE_SYSTEM, "\"decisions\"") != NULL);
}

int main(void)
{
	T_RUN(parse_table);
	T_RUN(filter);
	T_RUN(prompt);
	return t_done();
}
