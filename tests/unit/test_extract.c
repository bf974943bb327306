/* test_extract — worker/extract.c: the extraction answer's strict parser (table), the prompt's
 * bounds (UTF-8 safe cut, mark), the extract order's stable id. */
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "summarize.h"
#include "t.h"

static void parse_table(void)
{
	static const struct {
		const char *text;
		lh_err_t want;
		size_t n;
		const char *first; /* the first fact, trimmed */
	} cases[] = {
		{"{\"facts\":[\"The API listens on port 8000.\",\"Alice owns billing.\"]}", LH_OK, 2,
		 "The API listens on port 8000."},
		{"```json\n{\"facts\": [\"  spaced  \"]}\n```\n", LH_OK, 1, "spaced"},
		{"  {\"facts\":[]}  ", LH_OK, 0, NULL},
		/* refusals */
		{"", LH_ERR_DECODE, 0, NULL},
		{"not json", LH_ERR_DECODE, 0, NULL},
		{"[\"a\"]", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":\"a\"}", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":[\"a\"],\"extra\":1}", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":[\"a\"],\"facts\":[\"b\"]}", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":[\"a\", 2]}", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":[\"a\", \"  \"]}", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":[\"a\\u0000b\"]}", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":[null]}", LH_ERR_DECODE, 0, NULL},
		{"```json\n{\"facts\":[]}", LH_ERR_DECODE, 0, NULL},
		{"```", LH_ERR_DECODE, 0, NULL},
		{"{\"facts\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\","
		 "\"13\",\"14\",\"15\",\"16\",\"17\"]}", LH_ERR_DECODE, 0, NULL},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char **f = (char **)(uintptr_t)0x1;
		size_t n = 99;
		lh_error_t err = {0};
		lh_err_t rc = lh_extract_parse(cases[c].text, strlen(cases[c].text), &f, &n, &err);
		if (rc != cases[c].want)
			fprintf(stderr, "case %zu: %s\n", c, err.msg);
		T_EQ_INT(rc, cases[c].want);
		if (rc != LH_OK) {
			T_CHECK(err.msg[0] != '\0');
			T_CHECK(f == (char **)(uintptr_t)0x1 && n == 99);
			continue;
		}
		T_EQ_INT(n, cases[c].n);
		if (cases[c].first)
			T_EQ_STR(f[0], cases[c].first);
		else
			T_CHECK(f == NULL);
		lh_extract_facts_free(f, n);
	}
}

static void parse_limits(void)
{
	/* a fact of exactly LH_EXTRACT_MAX_FACT bytes is taken, one more is refused */
	for (int extra = 0; extra < 2; extra++) {
		size_t fl = LH_EXTRACT_MAX_FACT + (size_t)extra;
		char *t = malloc(fl + 32), **f = NULL;
		size_t n = 0;
		lh_error_t err = {0};
		if (!t) /* also tells GCC's -Warray-bounds (ASan build) that t is the allocation */
			abort();
		memcpy(t, "{\"facts\":[\"", 11);
		memset(t + 11, 'x', fl);
		memcpy(t + 11 + fl, "\"]}", 4);
		T_EQ_INT(lh_extract_parse(t, strlen(t), &f, &n, &err), extra ? LH_ERR_DECODE : LH_OK);
		if (!extra) {
			T_EQ_INT(n, 1);
			T_EQ_INT(strlen(f[0]), LH_EXTRACT_MAX_FACT);
		}
		lh_extract_facts_free(f, n);
		free(t);
	}
}

static void prompt_bounds(void)
{
	/* "é" is 2 bytes: a cut at 5 bytes of "aéééé" must not split one */
	char *p = lh_extract_prompt("a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "short output", 4);
	T_CHECK(p != NULL);
	T_CHECK(strstr(p, "Task instructions:\na\xc3\xa9 [cut]\n") != NULL);
	T_CHECK(strstr(p, "Task output:\nshor [cut]\n") != NULL);
	free(p);
	p = lh_extract_prompt(NULL, "done", 0);
	T_CHECK(strstr(p, "Task instructions:\n\n") != NULL);
	T_CHECK(strstr(p, "Task output:\ndone\n") != NULL);
	T_CHECK(strstr(p, "[cut]") == NULL);
	free(p);
}

static void order_id(void)
{
	lh_id_t plan = {{1, 2, 3}}, other = {{1, 2, 4}};
	lh_id_t a = lh_extract_order_id(&plan, 3, 1), b = lh_extract_order_id(&plan, 3, 1);
	lh_id_t c = lh_extract_order_id(&plan, 3, 2), d = lh_extract_order_id(&other, 3, 1);
	T_CHECK(lh_id_eq(&a, &b));
	T_CHECK(!lh_id_eq(&a, &c));
	T_CHECK(!lh_id_eq(&a, &d));
	T_CHECK(!lh_id_is_zero(&a));
}

/* An act attempt's follow-ups (followup.h): one chain rides on its attempt.succeeded as the
 * delivery report's opaque pointer; both orders come back from it, in order, with their ids,
 * topics, kinds and the source's success as causation; any other pointer is not a chain. */
static void followups(void)
{
	lh_id_t plan = lh_uuid7_new();
	lh_task_order_t body = {.kind = "act", .tier = "standard", .goal = "Ship it",
				.instructions = "Write /srv/a.txt"};
	lh_event_t order = {.plan_id = plan, .task_no = 4, .attempt = 2, .tenant = "acme",
			    .body = &body};
	const char *recalled[] = {"M1 text"};
	json_t *out = json_string("wrote /srv/a.txt");
	lh_followup_t *chain = lh_extract_followup(NULL, &order, "fast", "lh.tasks.fast", "sys",
						   recalled, 1, out);
	T_CHECK(lh_summarize_followup(chain, &order, "fast", "lh.tasks.fast") == chain);
	int other;
	T_CHECK(lh_followup_take(&other) == NULL);
	T_CHECK(lh_followup_take(chain) == chain);
	T_CHECK(lh_followup_take(chain) == NULL); /* taken once */

	lh_event_t ev;
	lh_task_order_t ob;
	lh_id_t cause = lh_event_id_derivef(&plan, "attempt.succeeded", 0, "t%lld:a%lld", 4LL, 2LL);
	lh_followup_event(chain, "w1", &ev, &ob);
	T_EQ_STR(ob.kind, "extract");
	T_EQ_STR(lh_followup_topic(chain), "lh.tasks.fast");
	{
		lh_id_t want = lh_extract_order_id(&plan, 4, 2);
		T_CHECK(memcmp(&ev.id, &want, sizeof(want)) == 0);
	}
	T_CHECK(memcmp(&ev.causation_id, &cause, sizeof(cause)) == 0);
	T_EQ_STR(ev.tenant, "acme");
	T_EQ_INT(ev.task_no, 4);
	T_EQ_STR(json_string_value(json_object_get(ob.inputs, "output")), "wrote /srv/a.txt");
	T_EQ_STR(json_string_value(json_array_get(json_object_get(ob.inputs, "recalled"), 0)),
		 "M1 text");

	lh_followup_t *second = lh_followup_next(chain);
	T_CHECK(second && !lh_followup_next(second));
	lh_followup_event(second, "w1", &ev, &ob);
	T_EQ_STR(ob.kind, "summarize");
	{
		lh_id_t want = lh_summarize_order_id(&plan, 4, 2);
		T_CHECK(memcmp(&ev.id, &want, sizeof(want)) == 0);
	}
	T_EQ_STR(json_string_value(json_object_get(ob.inputs, "subject")), "");
	lh_followup_free(chain);

	/* chains never acknowledged are freed at exit, and counted */
	lh_extract_followup(NULL, &order, "fast", "t", NULL, NULL, 0, out);
	lh_summarize_followup(NULL, &order, "fast", "t");
	T_EQ_INT((long)lh_followup_free_all(), 2);
	T_EQ_INT((long)lh_followup_free_all(), 0);
	json_decref(out);
}

int main(void)
{
	T_RUN(parse_table);
	T_RUN(parse_limits);
	T_RUN(prompt_bounds);
	T_RUN(order_id);
	T_RUN(followups);
	return t_done();
}
