/* test_jsonschema_suite.c — common/jsonschema*.c against the official JSON Schema Test Suite
 * (Debian package json-schema-test-suite, draft 7 files).
 *
 *   test_jsonschema_suite DIR      (DIR = /usr/share/json-schema-test-suite/tests/draft7)
 *
 * Every test group whose schema compiles must give the suite's answer for every value. A group
 * may fail to compile only with LH_ERR_UNSUPPORTED (a keyword this validator rejects on
 * purpose: not, if/then/else, pattern, tuple items, remote refs, ...). Draft 7 ignores the
 * siblings of $ref where 2020-12 (which this validator follows) applies them: that one test is
 * expected to differ. Exits 77 (skipped) when the suite is not installed. */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"
#include "t.h"

static const char *suite_dir;

/* Tests whose draft 7 answer differs from 2020-12 semantics: "file|group|test". */
static const char *const differ[] = {
    "ref.json|ref overrides any sibling keywords|ref valid, maxItems ignored",
};

static bool expected_to_differ(const char *file, const char *group, const char *test)
{
	char key[512];
	snprintf(key, sizeof(key), "%s|%s|%s", file, group, test);
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++)
		if (strcmp(key, differ[i]) == 0)
			return true;
	return false;
}

static void test_suite(void)
{
	DIR *d = opendir(suite_dir);
	struct dirent *de;
	int files = 0, groups = 0, unsupported = 0, tests = 0, differing = 0;

	T_CHECK(d != NULL);
	while (d && (de = readdir(d))) {
		char path[1024];
		json_error_t jerr;
		json_t *root, *g;
		size_t gi;
		if (!strstr(de->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", suite_dir, de->d_name);
		root = json_load_file(path, 0, &jerr);
		T_CHECK(json_is_array(root));
		files++;
		json_array_foreach (root, gi, g) {
			const char *gdesc = json_string_value(json_object_get(g, "description"));
			lh_jsonschema_t *s = NULL;
			lh_error_t err = {0};
			lh_err_t rc = lh_jsonschema_compile(json_object_get(g, "schema"), &s, &err);
			json_t *t;
			size_t ti;
			groups++;
			if (rc != LH_OK) {
				if (rc != LH_ERR_UNSUPPORTED)
					fprintf(stderr, "%s: \"%s\": %s\n", de->d_name, gdesc,
						err.msg);
				T_EQ_INT(rc, LH_ERR_UNSUPPORTED);
				unsupported++;
				continue;
			}
			json_array_foreach (json_object_get(g, "tests"), ti, t) {
				const char *tdesc =
				    json_string_value(json_object_get(t, "description"));
				bool want = json_is_true(json_object_get(t, "valid"));
				bool got = lh_jsonschema_validate(s, json_object_get(t, "data"),
								  &err) == LH_OK;
				tests++;
				if (expected_to_differ(de->d_name, gdesc, tdesc)) {
					T_CHECK(got != want);
					differing++;
					continue;
				}
				if (got != want)
					fprintf(stderr, "%s: \"%s\" / \"%s\": got %s%s%s\n",
						de->d_name, gdesc, tdesc, got ? "valid" : "invalid",
						got ? "" : ": ", got ? "" : err.msg);
				T_CHECK(got == want);
			}
			lh_jsonschema_free(s);
		}
		json_decref(root);
	}
	if (d)
		closedir(d);
	fprintf(stderr,
		"  %d files, %d groups (%d use keywords not supported), %d values checked, %d "
		"differ by design\n",
		files, groups, unsupported, tests, differing);
	T_CHECK(tests >= 200);
	T_EQ_INT(differing, (int)(sizeof(differ) / sizeof(differ[0])));
}

int main(int argc, char **argv)
{
	DIR *d;
	if (argc < 2) {
		fprintf(stderr, "usage: test_jsonschema_suite DIR\n");
		return 2;
	}
	suite_dir = argv[1];
	if (!(d = opendir(suite_dir))) {
		fprintf(stderr, "skipped: %s not found (apt-get install json-schema-test-suite)\n",
			suite_dir);
		return 77;
	}
	closedir(d);
	T_RUN(test_suite);
	return t_done();
}
