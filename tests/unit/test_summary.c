/* test_summary — common/summary.c: the artifact extractor, anchored merges, JSON round trip. */
#include <stdlib.h>

#include "summary.h"
#include "t.h"

static int has_item(char **items, size_t n, const char *want)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(items[i], want) == 0)
			return 1;
	return 0;
}

static void extract_table(void)
{
	static const struct {
		const char *text;
		const char *want[6]; /* exactly these, in this order */
	} cases[] = {
		{NULL, {NULL}},
		{"", {NULL}},
		{"nothing to see here, and/or there. e.g. 3.5 tokens", {NULL}},
		{"Wrote /srv/app/config.yaml and ./build/out.log.", {"/srv/app/config.yaml", "./build/out.log"}},
		{"see https://example.com/a?b=1, (http://x.org/y).", {"https://example.com/a?b=1", "http://x.org/y"}},
		{"edited src/main.c and README.md; not foo/bar", {"src/main.c", "README.md"}},
		{"ticket ABC-123 and PROJ2-7 but not abc-123 nor X-1", {"ABC-123", "PROJ2-7"}},
		{"id 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b done", {"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}},
		{"event 0190a1b2c3d47e5f8a9b0c1d2e3f4a5b.", {"0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"}},
		{"dup /tmp/x.txt /tmp/x.txt ABC-1 ABC-1", {"/tmp/x.txt", "ABC-1"}},
		{"`~/notes/todo.md` \"../up/file.py\"", {"~/notes/todo.md", "../up/file.py"}},
		{"port localhost:8080 ratio 1:2", {NULL}},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char **items = NULL;
		size_t n = 99, want_n = 0;
		T_EQ_INT(lh_summary_extract_artifacts(cases[c].text, &items, &n), LH_OK);
		while (want_n < 6 && cases[c].want[want_n])
			want_n++;
		if (n != want_n) {
			fprintf(stderr, "case %zu: %zu items, want %zu:", c, n, want_n);
			for (size_t i = 0; i < n; i++)
				fprintf(stderr, " [%s]", items[i]);
			fprintf(stderr, "\n");
		}
		T_EQ_INT(n, want_n);
		for (size_t i = 0; i < n && i < want_n; i++)
			T_EQ_STR(items[i], cases[c].want[i]);
		lh_summary_artifacts_free(items, n);
	}
}

static void merge_spans(void)
{
	lh_summary_t s;
	lh_error_t err = {0};
	const char *sec[LH_SUMMARY__COUNT] = {0};
	lh_summary_init(&s, 100, "ship the report");
	static const struct {
		long from, to;
		lh_err_t rc;
		long anchor_after;
		const char *msg_part;
	} steps[] = {
		{100, 100, LH_ERR_INVALID, 100, "span is empty"},
		{100, 90, LH_ERR_INVALID, 100, "span is empty"},
		{99, 120, LH_ERR_CONFLICT, 100, "overlaps"},
		{101, 120, LH_ERR_CONFLICT, 100, "gap"},
		{100, 120, LH_OK, 120, NULL},
		{100, 140, LH_ERR_CONFLICT, 120, "overlaps"}, /* the same span again */
		{110, 140, LH_ERR_CONFLICT, 120, "overlaps"},
		{121, 140, LH_ERR_CONFLICT, 120, "gap"},
		{120, 140, LH_OK, 140, NULL},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char pbp[64];
		snprintf(pbp, sizeof(pbp), "events %ld..%ld", steps[i].from, steps[i].to);
		sec[LH_SUMMARY_PLAY_BY_PLAY] = pbp;
		T_EQ_INT(lh_summary_merge(&s, steps[i].from, steps[i].to, sec, NULL, &err), steps[i].rc);
		T_EQ_INT(s.anchor, steps[i].anchor_after);
		if (steps[i].msg_part)
			T_CHECK(strstr(err.msg, steps[i].msg_part) != NULL);
	}
	T_EQ_INT(s.n_spans, 2);
	T_EQ_STR(s.play_by_play, "events 100..120\n\nevents 120..140");
	T_EQ_STR(s.intent, "ship the report");

	/* sections: intent kept, questions replaced, breadcrumbs appended, artifacts unioned from
	 * the model's list, the model's prose and the raw span text */
	sec[LH_SUMMARY_INTENT] = "something else";
	sec[LH_SUMMARY_PLAY_BY_PLAY] = "fetched https://a.example/x";
	sec[LH_SUMMARY_ARTIFACTS] = "- report draft v2\n* /data/in.csv\n\n";
	sec[LH_SUMMARY_BREADCRUMBS] = "re-run query Q1";
	sec[LH_SUMMARY_OPEN_QUESTIONS] = "which quarter?";
	T_EQ_INT(lh_summary_merge(&s, 140, 150, sec, "tool said: wrote /data/out.csv for OPS-42", &err),
		 LH_OK);
	T_EQ_STR(s.intent, "ship the report");
	T_EQ_STR(s.open_questions, "which quarter?");
	T_EQ_STR(s.breadcrumbs, "re-run query Q1");
	T_EQ_INT(s.n_artifacts, 5);
	T_EQ_INT(has_item(s.artifacts, s.n_artifacts, "report draft v2"), 1);
	T_EQ_INT(has_item(s.artifacts, s.n_artifacts, "/data/in.csv"), 1);
	T_EQ_INT(has_item(s.artifacts, s.n_artifacts, "https://a.example/x"), 1);
	T_EQ_INT(has_item(s.artifacts, s.n_artifacts, "/data/out.csv"), 1);
	T_EQ_INT(has_item(s.artifacts, s.n_artifacts, "OPS-42"), 1);
	sec[LH_SUMMARY_OPEN_QUESTIONS] = "";
	sec[LH_SUMMARY_BREADCRUMBS] = "open /data/out.csv";
	T_EQ_INT(lh_summary_merge(&s, 150, 151, sec, NULL, &err), LH_OK);
	T_EQ_STR(s.open_questions, "");
	T_EQ_STR(s.breadcrumbs, "re-run query Q1\n\nopen /data/out.csv");
	T_EQ_INT(s.n_artifacts, 5); /* nothing new, nothing twice */
	/* NULL sections: only the anchor moves */
	T_EQ_INT(lh_summary_merge(&s, 151, 160, NULL, NULL, &err), LH_OK);
	T_EQ_INT(s.anchor, 160);
	lh_summary_finish(&s);
	lh_summary_finish(NULL);
}

static void json_round_trip(void)
{
	lh_summary_t s, back;
	lh_error_t err = {0};
	const char *sec[LH_SUMMARY__COUNT] = {0};
	json_t *j, *bad;
	char *a, *b;
	lh_summary_init(&s, 7, "goal \"quoted\"\nline two");
	sec[LH_SUMMARY_PLAY_BY_PLAY] = "did things in /w/ü.txt";
	sec[LH_SUMMARY_OPEN_QUESTIONS] = "why?";
	T_EQ_INT(lh_summary_merge(&s, 7, 30, sec, "ABC-9 https://x.y/z", &err), LH_OK);
	j = lh_summary_to_json(&s);
	T_CHECK(j != NULL);
	T_EQ_INT(lh_summary_from_json(j, &back, &err), LH_OK);
	a = json_dumps(j, JSON_SORT_KEYS);
	json_decref(j);
	j = lh_summary_to_json(&back);
	b = json_dumps(j, JSON_SORT_KEYS);
	T_EQ_STR(a, b);
	T_EQ_INT(back.anchor, 30);
	T_EQ_INT(back.n_spans, 1);
	T_EQ_INT(back.n_artifacts, s.n_artifacts);
	free(a);
	free(b);
	/* unknown key, wrong type, non-string artifact: refused */
	bad = json_deep_copy(j);
	json_object_set_new(bad, "extra", json_true());
	T_EQ_INT(lh_summary_from_json(bad, &back, &err), LH_ERR_DECODE);
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "anchor", json_string("7"));
	T_EQ_INT(lh_summary_from_json(bad, &back, &err), LH_ERR_DECODE);
	json_decref(bad);
	bad = json_deep_copy(j);
	json_array_append_new(json_object_get(bad, "artifacts"), json_integer(3));
	T_EQ_INT(lh_summary_from_json(bad, &back, &err), LH_ERR_DECODE);
	T_CHECK(strstr(err.msg, "artifact") != NULL);
	json_decref(bad);
	json_decref(j);
	lh_summary_finish(&back);
	lh_summary_finish(&s);
}

int main(void)
{
	T_RUN(extract_table);
	T_RUN(merge_spans);
	T_RUN(json_round_trip);
	return t_done();
}
