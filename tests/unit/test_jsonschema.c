/* test_jsonschema.c — common/jsonschema.c: the case table (tests/fixtures/jsonschema/cases.json:
 * schema, value, the exact message or null), the compile error table (compile_errors.json),
 * the project's own schemas (schemas/defs, schemas/events: bare-name $refs through a resolver)
 * against sample values (project.json and the scripted model's answers), and the bounds.
 *
 *   test_jsonschema FIXTURES_DIR SCHEMAS_DIR */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonschema.h"
#include "llm.h"
#include "t.h"

static const char *fixtures, *schemas_dir;

static json_t *load(const char *dir, const char *name)
{
	char path[1024];
	json_error_t jerr;
	json_t *j;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	j = json_load_file(path, JSON_DECODE_ANY, &jerr);
	if (!j)
		fprintf(stderr, "cannot load %s: %s (line %d)\n", path, jerr.text, jerr.line);
	return j;
}

/* Compile and validate; returns the code and copies the message. */
static lh_err_t check(const json_t *schema, const json_t *value, char *msg, size_t cap)
{
	lh_jsonschema_t *s = NULL;
	lh_error_t err = {0};
	lh_err_t rc = lh_jsonschema_compile(schema, &s, &err);
	if (rc == LH_OK)
		rc = lh_jsonschema_validate(s, value, &err);
	snprintf(msg, cap, "%s", rc ? err.msg : "");
	lh_jsonschema_free(s);
	return rc;
}

static void test_case_table(void)
{
	json_t *cases = load(fixtures, "cases.json"), *c;
	size_t i;
	int valid = 0, invalid = 0;

	T_CHECK(json_array_size(cases) >= 60);
	json_array_foreach (cases, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *want = json_string_value(json_object_get(c, "error"));
		char msg[600];
		lh_err_t rc = check(json_object_get(c, "schema"), json_object_get(c, "value"), msg,
				    sizeof(msg));
		bool ok = want ? rc == LH_ERR_SCHEMA && strcmp(msg, want) == 0 : rc == LH_OK;
		if (!ok)
			fprintf(stderr, "case %zu \"%s\": got %s \"%s\", want %s\n", i, name,
				lh_err_name(rc), msg, want ? want : "valid");
		T_CHECK(ok);
		if (want)
			invalid++;
		else
			valid++;
	}
	fprintf(stderr, "  %d valid and %d invalid cases\n", valid, invalid);
	json_decref(cases);
}

static void test_compile_errors(void)
{
	json_t *cases = load(fixtures, "compile_errors.json"), *c;
	size_t i;

	T_CHECK(json_array_size(cases) >= 30);
	json_array_foreach (cases, i, c) {
		const char *code = json_string_value(json_object_get(c, "code"));
		const char *want = json_string_value(json_object_get(c, "error"));
		const char *part = json_string_value(json_object_get(c, "error_part"));
		lh_jsonschema_t *s = (lh_jsonschema_t *)&s; /* must stay untouched */
		lh_error_t err = {0};
		lh_err_t rc = lh_jsonschema_compile(json_object_get(c, "schema"), &s, &err);
		bool ok = strcmp(lh_err_name(rc), code) == 0 &&
			  (want ? strcmp(err.msg, want) == 0 : strstr(err.msg, part) != NULL);
		if (!ok)
			fprintf(stderr, "compile error %zu: got %s \"%s\"\n", i, lh_err_name(rc),
				err.msg);
		T_CHECK(ok);
		T_CHECK(s == (lh_jsonschema_t *)&s);
	}
	json_decref(cases);
}

/* ---- the project's schemas --------------------------------------------------------------- */

struct resolver {
	json_t *cache; /* name -> schema */
	int calls;
};

static const json_t *resolve_def(const char *ref, void *opaque)
{
	struct resolver *r = opaque;
	char name[256];
	json_t *j = json_object_get(r->cache, ref);
	r->calls++;
	if (j)
		return j;
	if (strchr(ref, '/') || strlen(ref) > 200)
		return NULL;
	snprintf(name, sizeof(name), "defs/%s.json", ref);
	j = load(schemas_dir, name);
	if (!j)
		return NULL;
	json_object_set_new(r->cache, ref, j);
	return j;
}

static lh_jsonschema_t *compile_def(struct resolver *r, const char *name, lh_error_t *err)
{
	lh_jsonschema_opts_t opts = {.resolve = resolve_def, .opaque = r};
	lh_jsonschema_t *s = NULL;
	const json_t *j = resolve_def(name, r);
	if (!j || lh_jsonschema_compile_ex(j, &opts, &s, err) != LH_OK)
		return NULL;
	return s;
}

static void test_project_schemas_compile(void)
{
	const char *sub[] = {"defs", "events"};
	struct resolver r = {.cache = json_object()};
	lh_jsonschema_opts_t opts = {.resolve = resolve_def, .opaque = &r};
	int n = 0;

	for (int k = 0; k < 2; k++) {
		char dir[1024];
		DIR *d;
		struct dirent *de;
		snprintf(dir, sizeof(dir), "%s/%s", schemas_dir, sub[k]);
		d = opendir(dir);
		T_CHECK(d != NULL);
		while (d && (de = readdir(d))) {
			json_t *j;
			lh_jsonschema_t *s = NULL;
			lh_error_t err = {0};
			if (!strstr(de->d_name, ".json"))
				continue;
			j = load(dir, de->d_name);
			T_CHECK(j != NULL);
			if (lh_jsonschema_compile_ex(j, &opts, &s, &err) != LH_OK)
				fprintf(stderr, "%s/%s: %s\n", sub[k], de->d_name, err.msg);
			T_CHECK(s != NULL);
			lh_jsonschema_free(s);
			json_decref(j);
			n++;
		}
		if (d)
			closedir(d);
	}
	T_CHECK(n >= 15);
	fprintf(stderr, "  %d schema files compile\n", n);
	json_decref(r.cache);
}

static void test_project_samples(void)
{
	struct resolver r = {.cache = json_object()};
	json_t *cases = load(fixtures, "project.json"), *c;
	size_t i;

	T_CHECK(json_array_size(cases) >= 10);
	json_array_foreach (cases, i, c) {
		const char *name = json_string_value(json_object_get(c, "schema"));
		const char *want = json_string_value(json_object_get(c, "error"));
		lh_error_t err = {0};
		lh_jsonschema_t *s = compile_def(&r, name, &err);
		lh_err_t rc;
		T_CHECK(s != NULL);
		if (!s) {
			fprintf(stderr, "%s: %s\n", name, err.msg);
			continue;
		}
		rc = lh_jsonschema_validate(s, json_object_get(c, "value"), &err);
		if (want ? rc != LH_ERR_SCHEMA || strcmp(err.msg, want) != 0 : rc != LH_OK)
			fprintf(stderr, "project case %zu (%s): got %s \"%s\"\n", i, name,
				lh_err_name(rc), rc ? err.msg : "");
		T_EQ_INT(rc, want ? LH_ERR_SCHEMA : LH_OK);
		if (want)
			T_EQ_STR(err.msg, want);
		lh_jsonschema_free(s);
	}
	json_decref(cases);
	json_decref(r.cache);
}

/* What the scripted model (and tests/fakellm) answers must match the project's own schemas. */
static void test_scripted_answers_match(void)
{
	struct resolver r = {.cache = json_object()};
	lh_error_t err = {0};
	lh_jsonschema_t *plan = compile_def(&r, "planner_output", &err);
	lh_jsonschema_t *join = compile_def(&r, "join_output", &err);
	const char *goals[] = {"Open a bakery in Lyon", "say \"hi\"\n\tthen \xc3\xa9 leave", ""};

	T_CHECK(plan && join);
	for (size_t i = 0; plan && join && i < sizeof(goals) / sizeof(goals[0]); i++) {
		char *p = lh_llm_scripted_answer("plan", goals[i], NULL);
		char *jn = lh_llm_scripted_answer("join", goals[i], "1: one\n2: two");
		json_t *pj = p ? json_loads(p, 0, NULL) : NULL,
		       *jj = jn ? json_loads(jn, 0, NULL) : NULL;
		T_CHECK(pj && jj);
		if (pj && lh_jsonschema_validate(plan, pj, &err) != LH_OK)
			fprintf(stderr, "plan for \"%s\": %s\n", goals[i], err.msg);
		T_EQ_INT(pj ? lh_jsonschema_validate(plan, pj, &err) : -1, LH_OK);
		T_EQ_INT(jj ? lh_jsonschema_validate(join, jj, &err) : -1, LH_OK);
		/* and a plan is not a join */
		T_EQ_INT(pj ? lh_jsonschema_validate(join, pj, &err) : -1, LH_ERR_SCHEMA);
		json_decref(pj);
		json_decref(jj);
		free(p);
		free(jn);
	}
	lh_jsonschema_free(plan);
	lh_jsonschema_free(join);
	json_decref(r.cache);
}

/* ---- external documents ------------------------------------------------------------------ */

static const json_t *resolve_fixed(const char *ref, void *opaque)
{
	json_t *docs = opaque;
	json_t *calls = json_object_get(docs, "calls");
	json_integer_set(calls, json_integer_value(calls) + 1);
	return json_object_get(json_object_get(docs, "docs"), ref);
}

static void test_resolver(void)
{
	json_t *ctx =
	    json_loads("{\"calls\": 0, \"docs\": {"
		       " \"a\": {\"$defs\": {\"x\": {\"type\": \"integer\"}}, \"properties\": {"
		       "   \"n\": {\"$ref\": \"#/$defs/x\"}, \"b\": {\"$ref\": \"b\"}, \"b2\": "
		       "{\"$ref\": \"b\"},"
		       "   \"self\": {\"$ref\": \"a\"}}},"
		       " \"b\": {\"type\": \"string\", \"minLength\": 1},"
		       " \"broken\": {\"properties\": {\"z\": {\"pattern\": \"x\"}}},"
		       " \"loop\": {\"$ref\": \"loop2\"}, \"loop2\": {\"allOf\": [{\"$ref\": "
		       "\"loop\"}]}}}",
		       0, NULL);
	json_t *root = json_pack("{s:s}", "$ref", "a"), *v;
	lh_jsonschema_opts_t opts = {.resolve = resolve_fixed, .opaque = ctx};
	lh_jsonschema_t *s = NULL;
	lh_error_t err = {0};

	T_EQ_INT(lh_jsonschema_compile_ex(root, &opts, &s, &err), LH_OK);
	/* "a" and "b" once each, however often they are referenced */
	T_EQ_INT(json_integer_value(json_object_get(ctx, "calls")), 2);
	v = json_loads("{\"n\": 1, \"b\": \"x\", \"self\": {\"n\": \"s\"}}", 0, NULL);
	T_EQ_INT(lh_jsonschema_validate(s, v, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "/self/n: expected integer, got string \"s\"");
	json_decref(v);
	v = json_loads("{\"b2\": \"\"}", 0, NULL);
	T_EQ_INT(lh_jsonschema_validate(s, v, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "/b2: \"\" has 0 characters, fewer than minLength 1");
	json_decref(v);
	lh_jsonschema_free(s);

	/* errors inside an external document name it */
	json_object_set_new(root, "$ref", json_string("broken"));
	T_EQ_INT(lh_jsonschema_compile_ex(root, &opts, &s, &err), LH_ERR_UNSUPPORTED);
	T_EQ_STR(err.msg, "could not compile schema: broken: /properties/z: unsupported keyword "
			  "\"pattern\"");
	json_object_set_new(root, "$ref", json_string("missing"));
	T_EQ_INT(lh_jsonschema_compile_ex(root, &opts, &s, &err), LH_ERR_INVALID);
	T_EQ_STR(err.msg, "could not compile schema: (root): $ref \"missing\" does not resolve");
	/* a cycle across documents */
	json_object_set_new(root, "$ref", json_string("loop"));
	T_EQ_INT(lh_jsonschema_compile_ex(root, &opts, &s, &err), LH_ERR_INVALID);
	T_CHECK(strstr(err.msg, "cycle") != NULL);
	json_decref(root);
	json_decref(ctx);
}

/* ---- bounds ------------------------------------------------------------------------------ */

static void test_depth_limits(void)
{
	json_t *schema = json_loads("{\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}", 0, NULL);
	json_t *value = json_array(), *inner = value, *any = json_object();
	lh_jsonschema_t *s = NULL;
	lh_error_t err = {0};
	char msg[600];
	int zeros = 0;

	for (int i = 0; i < 70; i++) {
		json_t *a = json_array();
		json_array_append_new(inner, a);
		inner = a;
	}
	T_EQ_INT(lh_jsonschema_compile(schema, &s, &err), LH_OK);
	T_EQ_INT(lh_jsonschema_validate(s, value, &err), LH_ERR_SCHEMA);
	for (const char *p = err.msg; (p = strstr(p, "/0")); p += 2)
		zeros++;
	T_EQ_INT(zeros, 65);
	T_CHECK(strstr(err.msg, ": value nests deeper than 64 levels") != NULL);
	lh_jsonschema_free(s);
	/* a schema that does not look inside does not care how deep the value is */
	T_EQ_INT(check(any, value, msg, sizeof(msg)), LH_OK);
	json_decref(schema);

	/* a schema nested 70 deep */
	schema = json_object();
	inner = schema;
	for (int i = 0; i < 70; i++) {
		json_t *sub = json_object();
		json_object_set_new(inner, "items", sub);
		inner = sub;
	}
	T_EQ_INT(lh_jsonschema_compile(schema, &s, &err), LH_ERR_TOO_LARGE);
	T_CHECK(strstr(err.msg, "schema nests deeper than 64 levels") != NULL);
	json_decref(schema);

	/* $ref chains: 60 in a row compile, 70 do not */
	for (int len = 60; len <= 70; len += 10) {
		json_t *defs = json_object();
		schema = json_pack("{s:o, s:s}", "$defs", defs, "$ref", "#/$defs/d0");
		for (int i = 0; i < len; i++) {
			char name[16], ref[32];
			snprintf(name, sizeof(name), "d%d", i);
			snprintf(ref, sizeof(ref), "#/$defs/d%d", i + 1);
			json_object_set_new(defs, name,
					    i + 1 < len ? json_pack("{s:s}", "$ref", ref)
							: json_pack("{s:s}", "type", "string"));
		}
		T_EQ_INT(lh_jsonschema_compile(schema, &s, &err),
			 len == 60 ? LH_OK : LH_ERR_TOO_LARGE);
		if (len == 60) {
			T_EQ_INT(lh_jsonschema_validate(s, any, &err), LH_ERR_SCHEMA);
			T_EQ_STR(err.msg, "(root): expected string, got an object");
		} else {
			T_CHECK(strstr(err.msg, "without descending into the value") != NULL);
		}
		lh_jsonschema_free(s);
		s = NULL;
		json_decref(schema);
	}
	json_decref(value);
	json_decref(any);
}

/* anyOf of two refs to the next level, 25 levels: 2^25 evaluations for a value that matches
 * nothing. The step budget ends it. */
static void test_step_budget(void)
{
	json_t *defs = json_object(), *schema, *value = json_integer(5);
	lh_jsonschema_t *s = NULL;
	lh_error_t err = {0};
	clock_t t0;
	double ms;

	for (int i = 0; i < 25; i++) {
		char name[16], ref[32];
		snprintf(name, sizeof(name), "l%d", i);
		snprintf(ref, sizeof(ref), "#/$defs/l%d", i + 1);
		json_object_set_new(defs, name,
				    json_pack("{s:[{s:s},{s:s}]}", "anyOf", "$ref", ref, "$ref",
					      ref));
	}
	json_object_set_new(defs, "l25", json_pack("{s:s}", "type", "string"));
	schema = json_pack("{s:o, s:s}", "$defs", defs, "$ref", "#/$defs/l0");
	T_EQ_INT(lh_jsonschema_compile(schema, &s, &err), LH_OK);
	t0 = clock();
	T_EQ_INT(lh_jsonschema_validate(s, value, &err), LH_ERR_TOO_LARGE);
	ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
	T_CHECK(strstr(err.msg, "more than 1000000 schema evaluations") != NULL);
	fprintf(stderr, "  step budget exhausted after %.0f ms\n", ms);
	/* a string matches at once: the first alternative of every level */
	json_decref(value);
	value = json_string("ok");
	T_EQ_INT(lh_jsonschema_validate(s, value, &err), LH_OK);
	lh_jsonschema_free(s);
	json_decref(schema);
	json_decref(value);
}

/* Messages are cut on a UTF-8 boundary: they end up in JSON. */
static void test_messages_are_utf8(void)
{
	json_t *schema = json_loads("{\"additionalProperties\": {\"additionalProperties\": "
				    "{\"type\": \"integer\"}}}",
				    0, NULL);
	json_t *value = json_object(), *inner = json_object();
	char key[2 * 150 + 1], msg[600];
	json_t *as_json;

	for (int i = 0; i < 150; i++)
		memcpy(key + 2 * i, "\xc3\xa9", 2); /* é */
	key[300] = 0;
	json_object_set_new(value, key, inner);
	key[299] = 0;
	key[298] = 'x';
	json_object_set_new(inner, key, json_string("\xe2\x82\xac\xe2\x82\xac")); /* €€ */
	T_EQ_INT(check(schema, value, msg, sizeof(msg)), LH_ERR_SCHEMA);
	as_json = json_string(msg);
	T_CHECK(as_json != NULL);
	T_CHECK(strstr(msg, "...") != NULL); /* the path was cut */
	T_CHECK(strstr(msg, "expected integer, got string \"\xe2\x82\xac\xe2\x82\xac\"") != NULL);
	json_decref(as_json);
	json_decref(schema);
	json_decref(value);

	/* anyOf nested in anyOf quotes messages in messages: still cut cleanly at 511 bytes */
	value = json_string(
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
	    "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	schema = json_pack("{s:[s]}", "enum", "\xc3\xa9 (not the value)");
	for (int i = 0; i < 5; i++)
		schema = json_pack("{s:[{s:s}, o]}", "anyOf", "type", "null", schema);
	T_CHECK(schema != NULL);
	T_EQ_INT(check(schema, value, msg, sizeof(msg)), LH_ERR_SCHEMA);
	as_json = json_string(msg);
	T_CHECK(as_json != NULL);
	T_CHECK(strlen(msg) > 500);
	T_CHECK(strlen(msg) <= 511);
	json_decref(as_json);
	json_decref(schema);
	json_decref(value);
}

/* Lists in messages (allowed properties, enum values) are cut on UTF-8 boundaries too: every
 * cut position through a run of two-byte characters. */
static void test_lists_are_utf8(void)
{
	for (int shift = 0; shift < 8; shift++) {
		json_t *props = json_object(), *schema, *value, *enm = json_array(), *as_json;
		char name[64], msg[600];
		for (int i = 0; i < 12; i++) {
			int len = 0;
			for (int k = 0; k < shift; k++)
				name[len++] = 'a';
			for (int k = 0; k < 12; k++) {
				memcpy(name + len, "\xc3\xa9", 2);
				len += 2;
			}
			len += snprintf(name + len, sizeof(name) - (size_t)len, "%d", i);
			json_object_set_new(props, name, json_object());
			json_array_append_new(enm, json_pack("{s:s}", name, name));
		}
		schema = json_pack("{s:o, s:b}", "properties", props, "additionalProperties", 0);
		value = json_pack("{s:i}", "other", 1);
		T_EQ_INT(check(schema, value, msg, sizeof(msg)), LH_ERR_SCHEMA);
		T_CHECK(strncmp(msg, "(root): unknown property \"other\" (allowed: ", 43) == 0);
		T_CHECK(strstr(msg, "...)") != NULL); /* the list was cut, the message goes on */
		as_json = json_string(msg);
		T_CHECK(as_json != NULL);
		json_decref(as_json);
		json_decref(schema);
		schema = json_pack("{s:o}", "enum", enm);
		T_EQ_INT(check(schema, value, msg, sizeof(msg)), LH_ERR_SCHEMA);
		T_CHECK(strstr(msg, "...") != NULL);
		as_json = json_string(msg);
		T_CHECK(as_json != NULL);
		json_decref(as_json);
		json_decref(schema);
		json_decref(value);
	}
}

static void test_api(void)
{
	json_t *schema = json_pack("{s:s}", "type", "integer"), *v = json_integer(3);
	lh_jsonschema_t *s = NULL;
	lh_error_t err = {0};

	T_EQ_INT(lh_jsonschema_compile(NULL, &s, &err), LH_ERR_INVALID);
	T_EQ_INT(lh_jsonschema_compile(schema, NULL, &err), LH_ERR_INVALID);
	T_EQ_INT(lh_jsonschema_compile(schema, &s, NULL), LH_OK); /* err may be NULL */
	T_EQ_INT(lh_jsonschema_validate(s, NULL, &err), LH_ERR_INVALID);
	T_EQ_INT(lh_jsonschema_validate(NULL, v, &err), LH_ERR_INVALID);
	T_EQ_INT(lh_jsonschema_validate(s, v, NULL), LH_OK);
	/* the compiled schema keeps nothing of its source */
	json_decref(schema);
	T_EQ_INT(lh_jsonschema_validate(s, v, &err), LH_OK);
	T_CHECK(lh_jsonschema_free(s) == NULL);
	T_CHECK(lh_jsonschema_free(NULL) == NULL);
	json_decref(v);
}

/* Not an assertion on speed; a figure for the README and the report. */
static void test_measure(void)
{
	struct resolver r = {.cache = json_object()};
	lh_error_t err = {0};
	lh_jsonschema_t *plan = compile_def(&r, "planner_output", &err);
	char *p = lh_llm_scripted_answer("plan", "Open a bakery in Lyon", NULL);
	json_t *pj = json_loads(p, 0, NULL);
	struct timespec t0, t1;
	int n = 20000, ok = 0;
	double us;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++)
		ok += lh_jsonschema_validate(plan, pj, &err) == LH_OK;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / n;
	T_EQ_INT(ok, n);
	fprintf(stderr, "  planner_output (4 tasks): %.2f us per validation\n", us);
	lh_jsonschema_free(plan);
	json_decref(pj);
	free(p);
	json_decref(r.cache);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: test_jsonschema FIXTURES_DIR SCHEMAS_DIR\n");
		return 2;
	}
	fixtures = argv[1];
	schemas_dir = argv[2];
	T_RUN(test_case_table);
	T_RUN(test_compile_errors);
	T_RUN(test_project_schemas_compile);
	T_RUN(test_project_samples);
	T_RUN(test_scripted_answers_match);
	T_RUN(test_resolver);
	T_RUN(test_depth_limits);
	T_RUN(test_step_budget);
	T_RUN(test_messages_are_utf8);
	T_RUN(test_lists_are_utf8);
	T_RUN(test_api);
	T_RUN(test_measure);
	return t_done();
}
