/* test_codec.c — the event codec (common/codec.c) and the generated descriptors (schemas/gen.py).
 *
 * Every event type is filled generically from its descriptor (all fields, then only the required
 * ones), round-tripped through msgpack and JSON and compared field by field; one event is checked
 * against golden bytes in tests/fixtures/codec/; every decode error class is checked with its
 * exact message. Set LH_UPDATE_GOLDEN=1 to rewrite the golden files (then review the diff). */
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "t.h"

#ifndef LH_FIXTURES_DIR
#error "LH_FIXTURES_DIR must name tests/fixtures"
#endif

/* ------------------------------------------------------------------------------------------- */
/* Generic fill and compare, driven by the descriptors                                          */
/* ------------------------------------------------------------------------------------------- */

static size_t esize(const lh_field_desc_t *f)
{
	switch (f->kind) {
	case LH_KIND_STRING:
		return sizeof(char *);
	case LH_KIND_INT:
		return sizeof(int64_t);
	case LH_KIND_NUMBER:
		return sizeof(double);
	case LH_KIND_BOOL:
		return sizeof(bool);
	case LH_KIND_STRUCT:
		return f->sub->size;
	default:
		return sizeof(json_t *);
	}
}

static void fill_struct(lh_arena_t *a, const lh_desc_t *d, char *base, bool full, int seed);

static json_t *sample_json(lh_arena_t *a, int seed)
{
	json_t *j = json_pack("{s:[i,f,s,b,n,{s:{}}],s:s,s:I}", "k", seed, 2.5, "s\xc3\xbc", 1,
			      "n", "u", "\xe2\x9c\x93 caf\xc3\xa9", "big", (json_int_t)INT64_MIN);
	lh_arena_on_free(a, (void (*)(void *))json_decref, j);
	return j;
}

static void fill_value(lh_arena_t *a, const lh_field_desc_t *f, char *p, bool full, int seed)
{
	switch (f->kind) {
	case LH_KIND_STRING:
		if (f->enum_values)
			*(const char **)p = f->enum_values[(unsigned)seed % f->n_enum];
		else
			*(const char **)p = lh_arena_printf(a, "%s-%d-\xc3\xa9\xe2\x9c\x93\xf0\x9d\x84\x9e",
							    f->name, seed);
		break;
	case LH_KIND_INT: {
		int64_t v = (f->flags & LH_FIELD_MIN) ? f->imin + 1 + seed : -1000 - seed;
		if ((f->flags & LH_FIELD_MAX) && v > f->imax)
			v = f->imax;
		*(int64_t *)p = v;
		break;
	}
	case LH_KIND_NUMBER:
		*(double *)p = 1.25 + seed;
		break;
	case LH_KIND_BOOL:
		*(bool *)p = true;
		break;
	case LH_KIND_STRUCT:
		fill_struct(a, f->sub, p, full, seed + 1);
		break;
	case LH_KIND_JSON:
		*(json_t **)p = sample_json(a, seed);
		break;
	}
}

static void fill_struct(lh_arena_t *a, const lh_desc_t *d, char *base, bool full, int seed)
{
	for (uint32_t i = 0; i < d->n_fields; i++) {
		const lh_field_desc_t *f = &d->fields[i];
		if (!full && !(f->flags & LH_FIELD_REQUIRED))
			continue;
		if (f->flags & LH_FIELD_ARRAY) {
			lh_array_t *arr = (lh_array_t *)(base + f->offset);
			size_t n = full ? 3 : 0;
			arr->n = n;
			arr->v = n ? lh_arena_alloc(a, n * esize(f)) : NULL;
			for (size_t k = 0; k < n; k++)
				fill_value(a, f, (char *)arr->v + k * esize(f), full, seed + (int)k);
		} else {
			fill_value(a, f, base + f->offset, full, seed + (int)i);
			if (f->kind == LH_KIND_STRUCT)
				*(bool *)(base + f->has_offset) = true;
		}
	}
}

static bool struct_eq(const lh_desc_t *d, const char *x, const char *y);

static bool value_eq(const lh_field_desc_t *f, const char *p, const char *q)
{
	switch (f->kind) {
	case LH_KIND_STRING: {
		const char *a = *(const char *const *)p, *b = *(const char *const *)q;
		return (!a && !b) || (a && b && strcmp(a, b) == 0);
	}
	case LH_KIND_INT:
		return *(const int64_t *)p == *(const int64_t *)q;
	case LH_KIND_NUMBER:
		return *(const double *)p == *(const double *)q;
	case LH_KIND_BOOL:
		return *(const bool *)p == *(const bool *)q;
	case LH_KIND_STRUCT:
		return struct_eq(f->sub, p, q);
	case LH_KIND_JSON: {
		json_t *a = *(json_t *const *)p, *b = *(json_t *const *)q;
		return (!a && !b) || (a && b && json_equal(a, b));
	}
	}
	return false;
}

static bool struct_eq(const lh_desc_t *d, const char *x, const char *y)
{
	for (uint32_t i = 0; i < d->n_fields; i++) {
		const lh_field_desc_t *f = &d->fields[i];
		if (f->flags & LH_FIELD_ARRAY) {
			const lh_array_t *a = (const lh_array_t *)(x + f->offset);
			const lh_array_t *b = (const lh_array_t *)(y + f->offset);
			if (a->n != b->n)
				return false;
			for (size_t k = 0; k < a->n; k++)
				if (!value_eq(f, (char *)a->v + k * esize(f), (char *)b->v + k * esize(f)))
					return false;
			continue;
		}
		if (f->kind == LH_KIND_STRUCT &&
		    *(const bool *)(x + f->has_offset) != *(const bool *)(y + f->has_offset))
			return false;
		if (!value_eq(f, x + f->offset, y + f->offset)) {
			fprintf(stderr, "  field %s.%s differs\n", d->name, f->name);
			return false;
		}
	}
	return true;
}

static bool event_eq(const lh_event_t *a, const lh_event_t *b)
{
	return a->v == b->v && lh_id_eq(&a->id, &b->id) && a->type == b->type &&
	       lh_id_eq(&a->plan_id, &b->plan_id) && a->task_no == b->task_no &&
	       a->attempt == b->attempt && a->ts_us == b->ts_us &&
	       ((!a->tenant && !b->tenant) || (a->tenant && b->tenant && !strcmp(a->tenant, b->tenant))) &&
	       struct_eq(&lh_actor_desc, (const char *)&a->actor, (const char *)&b->actor) &&
	       lh_id_eq(&a->causation_id, &b->causation_id) &&
	       struct_eq(lh_event_body_desc(a->type), a->body, b->body);
}

/* An event of the given type in arena a: every field set (full) or only the required ones. */
static lh_event_t *make_event(lh_arena_t *a, lh_event_type_t type, bool full)
{
	lh_event_t *ev = lh_arena_alloc(a, sizeof(*ev));
	const lh_desc_t *d = lh_event_body_desc(type);
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = type;
	ev->plan_id = lh_uuid7_new();
	ev->id = lh_event_id_derivef(&ev->plan_id, lh_event_type_name(type), 0, "test:%d", type);
	ev->ts_us = 1700000000000000 + type;
	ev->actor.kind = LH_ACTOR_KIND_WORKER;
	ev->task_no = LH_NO_TASK;
	if (full) {
		ev->task_no = 7;
		ev->attempt = 2;
		ev->tenant = "acme";
		ev->actor.id = "worker-1";
		ev->causation_id = lh_event_id_derivef(&ev->plan_id, "cause", 1, "x");
	}
	ev->body = lh_arena_alloc(a, d->size);
	fill_struct(a, d, ev->body, full, (int)type);
	return ev;
}

/* ------------------------------------------------------------------------------------------- */
/* Round trips                                                                                   */
/* ------------------------------------------------------------------------------------------- */

static void roundtrip_one(lh_event_type_t type, bool full)
{
	lh_arena_t *a = lh_arena_new(0);
	lh_event_t *ev = make_event(a, type, full), *back = NULL, *from_json = NULL, *via = NULL;
	lh_buf_t buf, buf2;
	lh_error_t err = {0};
	json_t *j, *j2, *parsed;
	char *text;

	lh_buf_init(&buf);
	lh_buf_init(&buf2);
	T_EQ_INT(lh_event_encode(ev, &buf, &err), LH_OK);
	if (err.code)
		fprintf(stderr, "  encode %s: %s\n", lh_event_type_name(type), err.msg);
	T_EQ_INT(lh_event_decode(buf.data, buf.len, &back, &err), LH_OK);
	if (!back) {
		fprintf(stderr, "  decode %s: %s\n", lh_event_type_name(type), err.msg);
		goto out;
	}
	T_CHECK(event_eq(ev, back));

	/* JSON: text and back */
	j = lh_event_to_json(ev);
	T_CHECK(j != NULL);
	text = json_dumps(j, JSON_COMPACT);
	parsed = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	T_EQ_INT(lh_event_from_json(parsed, &from_json, &err), LH_OK);
	if (from_json) {
		T_CHECK(event_eq(ev, from_json));
		/* equivalence: the JSON form encodes to the very same msgpack bytes */
		T_EQ_INT(lh_event_encode(from_json, &buf2, &err), LH_OK);
		T_CHECK(buf.len == buf2.len && memcmp(buf.data, buf2.data, buf.len) == 0);
	}
	/* and the decoded msgpack gives the same JSON */
	j2 = lh_event_to_json(back);
	T_CHECK(json_equal(j, j2));
	/* the JSON of a decoded event parses again (no caller-side references kept) */
	json_decref(parsed);
	T_EQ_INT(lh_event_from_json(j2, &via, &err), LH_OK);
	json_decref(j2);
	if (via)
		T_CHECK(event_eq(ev, via));
	/* required-only events really have nothing optional on the wire */
	if (!full) {
		json_t *body = json_object_get(j, "body");
		const lh_desc_t *d = lh_event_body_desc(type);
		size_t required = 0;
		for (uint32_t i = 0; i < d->n_fields; i++)
			required += (d->fields[i].flags & LH_FIELD_REQUIRED) != 0;
		T_EQ_INT(json_object_size(body), required);
		T_CHECK(!json_object_get(j, "task_no") && !json_object_get(j, "attempt") &&
			!json_object_get(j, "tenant") && !json_object_get(j, "causation_id"));
	}
	free(text);
	json_decref(j);
out:
	lh_event_free(via);
	lh_event_free(from_json);
	lh_event_free(back);
	lh_buf_finish(&buf);
	lh_buf_finish(&buf2);
	lh_arena_free(a);
}

static void test_roundtrip_all_types_full(void)
{
	for (int t = 1; t < LH_EV__COUNT; t++)
		roundtrip_one((lh_event_type_t)t, true);
}

static void test_roundtrip_all_types_required_only(void)
{
	for (int t = 1; t < LH_EV__COUNT; t++)
		roundtrip_one((lh_event_type_t)t, false);
}

static void test_type_names(void)
{
	lh_event_type_t t;
	T_CHECK(LH_EV__COUNT > 13);
	for (int i = 1; i < LH_EV__COUNT; i++) {
		T_EQ_INT(lh_event_types[i].type, i);
		if (i > 1) /* sorted: lh_event_type_parse relies on it */
			T_CHECK(strcmp(lh_event_types[i - 1].name, lh_event_types[i].name) < 0);
		T_EQ_INT(lh_event_type_parse(lh_event_type_name((lh_event_type_t)i), &t), LH_OK);
		T_EQ_INT(t, i);
		T_CHECK(lh_event_body_desc((lh_event_type_t)i) == lh_event_types[i].body);
	}
	T_EQ_STR(lh_event_type_name(LH_EV_ATTEMPT_SUCCEEDED), "attempt.succeeded");
	T_CHECK(lh_event_body_desc(LH_EV_PLAN_CREATED) == &lh_plan_created_desc);
	T_EQ_INT(lh_event_type_parse("attempt.succeede", &t), LH_ERR_NOT_FOUND);
	T_EQ_INT(lh_event_type_parse("attempt.succeededx", &t), LH_ERR_NOT_FOUND);
	T_EQ_INT(lh_event_type_parse("", &t), LH_ERR_NOT_FOUND);
	T_EQ_INT(lh_event_type_parse(NULL, &t), LH_ERR_NOT_FOUND);
	T_CHECK(lh_event_type_name(LH_EV__NONE) == NULL);
	T_CHECK(lh_event_type_name(LH_EV__COUNT) == NULL);
	T_CHECK(lh_event_body_desc(LH_EV__COUNT) == NULL);
}

/* ------------------------------------------------------------------------------------------- */
/* Golden bytes                                                                                  */
/* ------------------------------------------------------------------------------------------- */

/* A hand-built event using the generated C names directly (this is how producers write them). */
static void golden_event(lh_event_t *ev, lh_attempt_succeeded_t *body, json_t **ret_out)
{
	json_t *out = json_pack("{s:s,s:[i,i,i],s:n,s:f}", "summary", "done \xe2\x9c\x93", "ids", 1,
				2, -3, "none", "ratio", 0.5);
	memset(ev, 0, sizeof(*ev));
	memset(body, 0, sizeof(*body));
	T_EQ_INT(lh_uuid_parse("0190a3c2-7b4d-7e21-9a3b-5c6d7e8f9a0b", &ev->plan_id), LH_OK);
	T_EQ_INT(lh_uuid_parse("00112233445566778899aabbccddeeff", &ev->id), LH_OK);
	T_EQ_INT(lh_uuid_parse("ffeeddccbbaa99887766554433221100", &ev->causation_id), LH_OK);
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = LH_EV_ATTEMPT_SUCCEEDED;
	ev->task_no = 3;
	ev->attempt = 1;
	ev->ts_us = 1720000000123456;
	ev->tenant = "acme";
	ev->actor.kind = LH_ACTOR_KIND_WORKER;
	ev->actor.id = "w-7";
	body->worker_id = "w-7";
	body->model = "gpt-4o-mini";
	body->output = out;
	body->has_usage = true;
	body->usage.input_tokens = 1200;
	body->usage.output_tokens = 345;
	body->usage.cost_usd = 0.0021;
	body->usage.llm_calls = 2;
	body->latency_ms = 4321;
	ev->body = body;
	*ret_out = out;
}

static char *read_file(const char *path, size_t *ret_len)
{
	FILE *fp = fopen(path, "rb");
	char *p;
	long n;
	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	if (fread(p, 1, (size_t)n, fp) != (size_t)n) {
		free(p);
		fclose(fp);
		return NULL;
	}
	p[n] = 0;
	fclose(fp);
	*ret_len = (size_t)n;
	return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *fp = fopen(path, "wb");
	T_CHECK(fp != NULL);
	if (fp) {
		T_CHECK(fwrite(p, 1, n, fp) == n);
		fclose(fp);
	}
}

static void test_golden(void)
{
	lh_event_t ev, *back = NULL;
	lh_attempt_succeeded_t body;
	json_t *out, *j;
	lh_buf_t buf;
	lh_error_t err = {0};
	const char *mp_path = LH_FIXTURES_DIR "/codec/attempt_succeeded.msgpack";
	const char *js_path = LH_FIXTURES_DIR "/codec/attempt_succeeded.json";
	char *want, *text;
	size_t want_len = 0;

	golden_event(&ev, &body, &out);
	lh_buf_init(&buf);
	lh_buf_appends(&buf, "prefix"); /* encode appends */
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_OK);
	T_CHECK(memcmp(buf.data, "prefix", 6) == 0);
	j = lh_event_to_json(&ev);
	text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	if (getenv("LH_UPDATE_GOLDEN")) {
		write_file(mp_path, buf.data + 6, buf.len - 6);
		write_file(js_path, text, strlen(text));
	}
	want = read_file(mp_path, &want_len);
	T_CHECK(want != NULL);
	if (want) {
		T_EQ_INT(want_len, buf.len - 6);
		T_CHECK(want_len == buf.len - 6 && memcmp(want, buf.data + 6, want_len) == 0);
		/* and the golden bytes decode to the same event */
		T_EQ_INT(lh_event_decode(want, want_len, &back, &err), LH_OK);
		if (back) {
			T_CHECK(event_eq(&ev, back));
			T_EQ_STR(((lh_attempt_succeeded_t *)back->body)->model, "gpt-4o-mini");
			T_EQ_INT(((lh_attempt_succeeded_t *)back->body)->usage.output_tokens, 345);
		}
		free(want);
	}
	want = read_file(js_path, &want_len);
	T_CHECK(want != NULL);
	if (want) {
		T_EQ_STR(text, want);
		free(want);
	}
	/* the envelope's first keys, byte for byte: map of 11, "v": 1, "id": bin 16 */
	T_CHECK((unsigned char)buf.data[6] == 0x8b && buf.data[7] == (char)0xa1 && buf.data[8] == 'v' &&
		buf.data[9] == 1 && (unsigned char)buf.data[13] == 0xc4 && buf.data[14] == 16);
	lh_event_free(back);
	free(text);
	json_decref(j);
	json_decref(out);
	lh_buf_finish(&buf);
}

/* ------------------------------------------------------------------------------------------- */
/* Decode errors: JSON text -> msgpack (ids as bin 16, as a producer writes them) -> decode      */
/* ------------------------------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
	lh_buf_append(data, p, n);
	return 0;
}

static void pack_any(msgpack_packer *pk, const json_t *j, int depth)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, k, v) {
			lh_id_t id;
			msgpack_pack_str(pk, strlen(k));
			msgpack_pack_str_body(pk, k, strlen(k));
			if (depth == 0 && json_is_string(v) &&
			    (!strcmp(k, "id") || !strcmp(k, "plan_id") || !strcmp(k, "causation_id")) &&
			    lh_uuid_parse(json_string_value(v), &id) == LH_OK) {
				msgpack_pack_bin(pk, 16);
				msgpack_pack_bin_body(pk, id.b, 16);
			} else
				pack_any(pk, v, depth + 1);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v) pack_any(pk, v, depth + 1);
		break;
	}
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(j));
		msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		break;
	}
}

#define ENV_HEAD                                                                                  \
	"\"v\":1,\"id\":\"00112233445566778899aabbccddeeff\",\"plan_id\":"                        \
	"\"0190a3c2-7b4d-7e21-9a3b-5c6d7e8f9a0b\",\"ts_us\":5,\"actor\":{\"kind\":\"worker\"}"

/* A JSON text as msgpack in buf (reset first). */
static void to_mp(const char *text, lh_buf_t *buf)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	msgpack_packer pk;
	if (!j) {
		fprintf(stderr, "  bad test JSON: %s: %s\n", jerr.text, text);
		T_CHECK(j != NULL);
		return;
	}
	lh_buf_reset(buf);
	msgpack_packer_init(&pk, buf, buf_write);
	pack_any(&pk, j, 0);
	json_decref(j);
}

/* Decode bytes; expect code and message. Also returns whether it matched. */
static void expect_bytes(const void *p, size_t n, lh_err_t code, const char *msg, int line)
{
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	lh_err_t rc = lh_event_decode(p, n, &ev, &err);
	if (rc != code || (msg && strcmp(err.msg, msg) != 0)) {
		fprintf(stderr, "FAIL %s: line %d: got %s \"%s\", want %s \"%s\"\n", t_case_name, line,
			lh_err_name(rc), rc ? err.msg : "", lh_err_name(code), msg ? msg : "");
		t_case_failed = 1;
	}
	lh_event_free(ev);
}

/* Decode the msgpack of a JSON text, and (json_too) the JSON itself, expecting the same error. */
static void expect_both(const char *text, lh_err_t code, const char *msg, bool json_too,
			const char *json_msg, int line)
{
	lh_buf_t buf;
	lh_buf_init(&buf);
	to_mp(text, &buf);
	expect_bytes(buf.data, buf.len, code, msg, line);
	if (json_too) {
		json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL);
		lh_event_t *ev = NULL;
		lh_error_t err = {0};
		lh_err_t rc = lh_event_from_json(j, &ev, &err);
		if (json_msg)
			msg = json_msg;
		if (rc != code || (msg && strcmp(err.msg, msg) != 0)) {
			fprintf(stderr, "FAIL %s: line %d (json): got %s \"%s\", want %s \"%s\"\n",
				t_case_name, line, lh_err_name(rc), rc ? err.msg : "",
				lh_err_name(code), msg ? msg : "");
			t_case_failed = 1;
		}
		lh_event_free(ev);
		json_decref(j);
	}
	lh_buf_finish(&buf);
}

#define EXPECT(text, code, msg) expect_both(text, code, msg, true, NULL, __LINE__)
#define EXPECT_MP(text, code, msg) expect_both(text, code, msg, false, NULL, __LINE__)
/* the JSON form names JSON types: object, real, null */
#define EXPECT2(text, code, msg, json_msg) expect_both(text, code, msg, true, json_msg, __LINE__)

static const char *plan_created_body =
	"{\"version\":1,\"tasks\":["
	"{\"task_no\":0,\"kind\":\"plan\",\"tier\":\"fast\",\"instructions\":\"p\"},"
	"{\"task_no\":1,\"kind\":\"act\",\"tier\":\"fast\",\"instructions\":\"a\"},"
	"{\"task_no\":2,\"kind\":\"%s\",\"tier\":\"fast\",\"instructions\":\"j\"}]}";

static void test_decode_ok_baseline(void)
{
	char text[1024];
	/* the fixtures below are valid until broken on purpose */
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":\"w\"}}", LH_OK,
	       NULL);
	snprintf(text, sizeof(text), "{" ENV_HEAD ",\"type\":\"plan.created\",\"body\":%s}",
		 plan_created_body);
	{
		char t2[1200];
		snprintf(t2, sizeof(t2), text, "join");
		EXPECT(t2, LH_OK, NULL);
	}
	/* a number field accepts an integer; keys in any order; type after body */
	EXPECT("{\"body\":{\"goal\":\"g\",\"budget\":{\"usd\":5,\"tokens\":10}},\"type\":\"goal.submitted\"," ENV_HEAD "}",
	       LH_OK, NULL);
	/* negative integers where no minimum applies */
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.started\",\"body\":{\"worker_id\":\"w\",\"dispatched_ts_us\":-5}}",
	       LH_OK, NULL);
}

static void test_decode_schema_errors(void)
{
	char text[1200], tpl[1200];
	snprintf(tpl, sizeof(tpl), "{" ENV_HEAD ",\"type\":\"plan.created\",\"body\":%s}", plan_created_body);
	snprintf(text, sizeof(text), tpl, "foo");
	EXPECT(text, LH_ERR_SCHEMA, "body.tasks[2].kind: unknown value \"foo\"");

	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":\"w\",\"colour\":1}}",
	       LH_ERR_SCHEMA, "body.colour: unknown key");
	EXPECT("{" ENV_HEAD ",\"colour\":1,\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":\"w\"}}",
	       LH_ERR_SCHEMA, "colour: unknown key");
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":12}}",
	       LH_ERR_SCHEMA, "body.worker_id: expected string, got integer");
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.heartbeat\",\"body\":{\"seq\":1}}", LH_ERR_SCHEMA,
	       "body.worker_id: missing required field");
	EXPECT("{\"v\":1,\"id\":\"00112233445566778899aabbccddeeff\",\"plan_id\":\"0190a3c2-7b4d-7e21-9a3b-5c6d7e8f9a0b\","
	       "\"actor\":{\"kind\":\"worker\"},\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":\"w\"}}",
	       LH_ERR_SCHEMA, "ts_us: missing required field");
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.heartbeat\"}", LH_ERR_SCHEMA,
	       "body: missing required field");
	EXPECT2("{" ENV_HEAD ",\"type\":\"attempt.heartbeat\",\"body\":[]}", LH_ERR_SCHEMA,
		"body: expected map, got array", "body: expected object, got array");
	/* integer bounds */
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":\"w\",\"seq\":-1}}",
	       LH_ERR_SCHEMA, "body.seq: value -1 is below the minimum 0");
	EXPECT("{" ENV_HEAD ",\"type\":\"plan.revised\",\"body\":{\"version\":1,\"base_version\":1}}",
	       LH_ERR_SCHEMA, "body.version: value 1 is below the minimum 2");
	EXPECT("{" ENV_HEAD ",\"type\":\"plan.revised\",\"body\":{\"version\":2,\"base_version\":1,\"removed\":[1,-4]}}",
	       LH_ERR_SCHEMA, "body.removed[1]: value -4 is below the minimum 0");
	EXPECT("{" ENV_HEAD ",\"task_no\":-1,\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":\"w\"}}",
	       LH_ERR_SCHEMA, "task_no: value -1 is below the minimum 0");
	EXPECT("{" ENV_HEAD ",\"attempt\":0,\"type\":\"attempt.heartbeat\",\"body\":{\"worker_id\":\"w\"}}",
	       LH_ERR_SCHEMA, "attempt: value 0 is below the minimum 1");
	/* float where an integer is expected; number bounds */
	EXPECT2("{" ENV_HEAD ",\"type\":\"plan.revised\",\"body\":{\"version\":2.0,\"base_version\":1}}",
		LH_ERR_SCHEMA, "body.version: expected integer, got float",
		"body.version: expected integer, got real");
	EXPECT("{" ENV_HEAD ",\"type\":\"goal.submitted\",\"body\":{\"goal\":\"g\",\"budget\":{\"usd\":-0.5}}}",
	       LH_ERR_SCHEMA, "body.budget.usd: value -0.5 is below the minimum 0");
	/* string lengths count code points: 128 x "é" is 256 bytes but within maxLength 128 */
	{
		char t[2048], ten[600];
		size_t o = 0;
		for (int i = 0; i < 128; i++) {
			ten[o++] = (char)0xc3;
			ten[o++] = (char)0xa9;
		}
		ten[o] = 0;
		snprintf(t, sizeof(t), "{" ENV_HEAD ",\"tenant\":\"%s\",\"type\":\"plan.cancelled\",\"body\":{}}", ten);
		EXPECT(t, LH_OK, NULL);
		snprintf(t, sizeof(t), "{" ENV_HEAD ",\"tenant\":\"%sx\",\"type\":\"plan.cancelled\",\"body\":{}}", ten);
		EXPECT(t, LH_ERR_SCHEMA, "tenant: string longer than the maximum length 128");
	}
	EXPECT("{" ENV_HEAD ",\"type\":\"goal.submitted\",\"body\":{\"goal\":\"\"}}", LH_ERR_SCHEMA,
	       "body.goal: string shorter than the minimum length 1");
	/* nil is not "absent" */
	EXPECT2("{" ENV_HEAD ",\"type\":\"attempt.started\",\"body\":{\"worker_id\":\"w\",\"model\":null}}",
		LH_ERR_SCHEMA, "body.model: expected string, got nil", "body.model: expected string, got null");
	/* ids */
	EXPECT_MP("{\"v\":1,\"id\":\"zz\",\"plan_id\":\"0190a3c2-7b4d-7e21-9a3b-5c6d7e8f9a0b\",\"ts_us\":5,"
		  "\"actor\":{\"kind\":\"worker\"},\"type\":\"plan.cancelled\",\"body\":{}}",
		  LH_ERR_SCHEMA, "id: expected 16-byte bin, got string");
	/* the actor is a strict struct too */
	EXPECT("{\"v\":1,\"id\":\"00112233445566778899aabbccddeeff\",\"plan_id\":\"0190a3c2-7b4d-7e21-9a3b-5c6d7e8f9a0b\","
	       "\"ts_us\":5,\"actor\":{\"kind\":\"robot\"},\"type\":\"plan.cancelled\",\"body\":{}}",
	       LH_ERR_SCHEMA, "actor.kind: unknown value \"robot\"");
	/* required JSON value: null is a value, absence is not */
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.succeeded\",\"body\":{\"worker_id\":\"w\",\"output\":null}}",
	       LH_OK, NULL);
	EXPECT("{" ENV_HEAD ",\"type\":\"attempt.succeeded\",\"body\":{\"worker_id\":\"w\"}}",
	       LH_ERR_SCHEMA, "body.output: missing required field");
}

static void test_decode_version_and_type(void)
{
	EXPECT("{\"v\":2,\"id\":\"00112233445566778899aabbccddeeff\",\"plan_id\":\"0190a3c2-7b4d-7e21-9a3b-5c6d7e8f9a0b\","
	       "\"ts_us\":5,\"actor\":{\"kind\":\"worker\"},\"type\":\"plan.cancelled\",\"body\":{}}",
	       LH_ERR_UNSUPPORTED, "v: unsupported envelope version 2");
	EXPECT("{" ENV_HEAD ",\"type\":\"plan.exploded\",\"body\":{}}", LH_ERR_UNSUPPORTED,
	       "type: unknown event type \"plan.exploded\"");
}

/* Raw msgpack pieces for what JSON cannot express. */
static void mp_head(msgpack_packer *pk, uint32_t extra_keys, const char *type)
{
	static const uint8_t id[16] = {1, 2, 3};
	msgpack_pack_map(pk, 7 + extra_keys);
	msgpack_pack_str_with_body(pk, "v", 1);
	msgpack_pack_int(pk, 1);
	msgpack_pack_str_with_body(pk, "id", 2);
	msgpack_pack_bin_with_body(pk, id, 16);
	msgpack_pack_str_with_body(pk, "plan_id", 7);
	msgpack_pack_bin_with_body(pk, id, 16);
	msgpack_pack_str_with_body(pk, "ts_us", 5);
	msgpack_pack_int(pk, 5);
	msgpack_pack_str_with_body(pk, "actor", 5);
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "kind", 4);
	msgpack_pack_str_with_body(pk, "human", 5);
	msgpack_pack_str_with_body(pk, "type", 4);
	msgpack_pack_str_with_body(pk, type, strlen(type));
	msgpack_pack_str_with_body(pk, "body", 4);
}

static void test_decode_bytes_errors(void)
{
	lh_buf_t buf;
	msgpack_packer pk;
	char *big;
	lh_buf_init(&buf);
	msgpack_packer_init(&pk, &buf, buf_write);

	/* invalid UTF-8, NUL, surrogate, overlong */
	static const char *const bad[] = {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lh_buf_reset(&buf);
		mp_head(&pk, 0, "attempt.heartbeat");
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, "worker_id", 9);
		msgpack_pack_str_with_body(&pk, bad[i], strlen(bad[i]));
		expect_bytes(buf.data, buf.len, LH_ERR_DECODE, "body.worker_id: invalid UTF-8", __LINE__);
	}
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "attempt.heartbeat");
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "worker_id", 9);
	msgpack_pack_str_with_body(&pk, "a\0b", 3);
	expect_bytes(buf.data, buf.len, LH_ERR_DECODE, "body.worker_id: string contains a NUL byte", __LINE__);

	/* NUL inside a JSON value (PostgreSQL jsonb cannot store it), and the same through JSON */
	EXPECT("{" ENV_HEAD ",\"type\":\"decision.logged\",\"body\":{\"kind\":\"k\",\"payload\":{\"a\":[\"x\\u0000\"]}}}",
	       LH_ERR_DECODE, "body.payload.a[0]: string contains a NUL byte");
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "decision.logged");
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "kind", 4);
	msgpack_pack_str_with_body(&pk, "k", 1);
	msgpack_pack_str_with_body(&pk, "payload", 7);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "a\0b", 3);
	msgpack_pack_nil(&pk);
	expect_bytes(buf.data, buf.len, LH_ERR_DECODE, "body.payload.a?b: string contains a NUL byte", __LINE__);

	/* duplicate keys: struct and JSON value */
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "attempt.heartbeat");
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "worker_id", 9);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_str_with_body(&pk, "worker_id", 9);
	msgpack_pack_str_with_body(&pk, "b", 1);
	expect_bytes(buf.data, buf.len, LH_ERR_DECODE, "body.worker_id: duplicate key", __LINE__);
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "decision.logged");
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "kind", 4);
	msgpack_pack_str_with_body(&pk, "k", 1);
	msgpack_pack_str_with_body(&pk, "payload", 7);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "x", 1);
	msgpack_pack_nil(&pk);
	msgpack_pack_str_with_body(&pk, "x", 1);
	msgpack_pack_nil(&pk);
	expect_bytes(buf.data, buf.len, LH_ERR_DECODE, "body.payload.x: duplicate key", __LINE__);

	/* map keys must be strings */
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "attempt.heartbeat");
	msgpack_pack_map(&pk, 1);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_str_with_body(&pk, "a", 1);
	expect_bytes(buf.data, buf.len, LH_ERR_DECODE, "body: map key is not a string", __LINE__);

	/* bin and ext have no JSON form */
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "decision.logged");
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "kind", 4);
	msgpack_pack_str_with_body(&pk, "k", 1);
	msgpack_pack_str_with_body(&pk, "payload", 7);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_bin_with_body(&pk, "zz", 2);
	expect_bytes(buf.data, buf.len, LH_ERR_SCHEMA, "body.payload[0]: bin has no JSON form", __LINE__);
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "decision.logged");
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "kind", 4);
	msgpack_pack_str_with_body(&pk, "k", 1);
	msgpack_pack_str_with_body(&pk, "payload", 7);
	msgpack_pack_ext_with_body(&pk, "abcd", 4, 5);
	expect_bytes(buf.data, buf.len, LH_ERR_SCHEMA, "body.payload: ext has no JSON form", __LINE__);

	/* integers past int64, NaN, float32 accepted as a number */
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "attempt.started");
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "worker_id", 9);
	msgpack_pack_str_with_body(&pk, "w", 1);
	msgpack_pack_str_with_body(&pk, "dispatched_ts_us", 16);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	expect_bytes(buf.data, buf.len, LH_ERR_SCHEMA,
		     "body.dispatched_ts_us: integer 18446744073709551615 out of range", __LINE__);
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "attempt.started");
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "worker_id", 9);
	msgpack_pack_str_with_body(&pk, "w", 1);
	msgpack_pack_str_with_body(&pk, "dispatched_ts_us", 16);
	msgpack_pack_int64(&pk, INT64_MIN);
	expect_bytes(buf.data, buf.len, LH_OK, NULL, __LINE__);
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "plan.completed");
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "usage", 5);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "cost_usd", 8);
	msgpack_pack_double(&pk, NAN);
	expect_bytes(buf.data, buf.len, LH_ERR_SCHEMA, "body.usage.cost_usd: number is not finite", __LINE__);
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "plan.completed");
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "usage", 5);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "cost_usd", 8);
	msgpack_pack_float(&pk, 0.25f);
	expect_bytes(buf.data, buf.len, LH_OK, NULL, __LINE__);

	/* nesting: 32 containers in all are fine, 33 are not (envelope=1, body=2, payload=3...) */
	for (int extra = 0; extra <= 1; extra++) {
		char want[256] = "body.payload";
		lh_buf_reset(&buf);
		mp_head(&pk, 0, "decision.logged");
		msgpack_pack_map(&pk, 2);
		msgpack_pack_str_with_body(&pk, "kind", 4);
		msgpack_pack_str_with_body(&pk, "k", 1);
		msgpack_pack_str_with_body(&pk, "payload", 7);
		for (int d = 3; d <= 32 + extra; d++)
			msgpack_pack_array(&pk, 1);
		msgpack_pack_int(&pk, 1);
		for (int d = 3; d <= 32; d++)
			strcat(want, "[0]");
		strcat(want, ": nesting deeper than 32 levels");
		expect_bytes(buf.data, buf.len, extra ? LH_ERR_DECODE : LH_OK, extra ? want : NULL, __LINE__);
	}

	/* structure: trailing bytes, truncation, 0xc1, lying lengths, non-map root, empty */
	lh_buf_reset(&buf);
	mp_head(&pk, 0, "plan.cancelled");
	msgpack_pack_map(&pk, 0);
	expect_bytes(buf.data, buf.len, LH_OK, NULL, __LINE__);
	for (size_t cut = 1; cut < buf.len; cut++) {
		lh_event_t *ev = NULL;
		lh_error_t err = {0};
		T_EQ_INT(lh_event_decode(buf.data, buf.len - cut, &ev, &err), LH_ERR_DECODE);
		T_CHECK(strstr(err.msg, "truncated msgpack") != NULL);
	}
	{
		size_t n = buf.len;
		lh_buf_append(&buf, "\x01", 1);
		char want[128];
		snprintf(want, sizeof(want), "trailing bytes after the event (%zu of %zu bytes used)", n, n + 1);
		expect_bytes(buf.data, buf.len, LH_ERR_DECODE, want, __LINE__);
	}
	expect_bytes("\xc1", 1, LH_ERR_DECODE, "invalid msgpack byte 0xc1 at offset 0", __LINE__);
	expect_bytes("\xdd\xff\xff\xff\xff", 5, LH_ERR_DECODE, "truncated msgpack (5 bytes)", __LINE__);
	expect_bytes("\xdf\xff\xff\xff\xff\xa1v", 7, LH_ERR_DECODE, "truncated msgpack (7 bytes)", __LINE__);
	expect_bytes("\xdb\xff\xff\xff\xff", 5, LH_ERR_DECODE, "truncated msgpack (5 bytes)", __LINE__);
	expect_bytes("\x92\x01\x02", 3, LH_ERR_SCHEMA, "expected a map at the top level, got array", __LINE__);
	expect_bytes("", 0, LH_ERR_DECODE, "empty input", __LINE__);

	/* size cap */
	big = calloc(1, LH_EVENT_MAX_BYTES + 1);
	expect_bytes(big, LH_EVENT_MAX_BYTES + 1, LH_ERR_TOO_LARGE,
		     "event of 1048577 bytes exceeds the limit of 1048576 bytes", __LINE__);
	free(big);
	lh_buf_finish(&buf);
}

/* ------------------------------------------------------------------------------------------- */
/* Encode errors                                                                                 */
/* ------------------------------------------------------------------------------------------- */

static void test_encode_errors(void)
{
	lh_event_t ev;
	lh_attempt_succeeded_t body;
	lh_plan_created_t pc;
	lh_task_spec_t tasks[2];
	json_t *out;
	lh_buf_t buf;
	lh_error_t err = {0};

	lh_buf_init(&buf);
	golden_event(&ev, &body, &out);
	lh_buf_appends(&buf, "keep");

	body.worker_id = NULL;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "body.worker_id: missing required field");
	T_CHECK(buf.len == 4 && strcmp(buf.data, "keep") == 0); /* out unchanged */
	body.worker_id = "w";

	body.output = NULL;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "body.output: missing required field");
	body.output = out;

	body.usage.input_tokens = -1;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "body.usage.input_tokens: value -1 is below the minimum 0");
	body.usage.input_tokens = 1;

	body.model = "bad \xff utf8";
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_DECODE);
	T_EQ_STR(err.msg, "body.model: invalid UTF-8");
	body.model = NULL;

	ev.actor.kind = "robot";
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "actor.kind: unknown value \"robot\"");
	ev.actor.kind = LH_ACTOR_KIND_HUMAN;

	ev.v = 0;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_UNSUPPORTED);
	T_EQ_STR(err.msg, "v: unsupported envelope version 0");
	ev.v = LH_ENVELOPE_VERSION;

	ev.type = LH_EV__COUNT;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	ev.type = LH_EV_ATTEMPT_SUCCEEDED;

	ev.task_no = -2;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "task_no: value -2 is below the minimum 0");
	ev.task_no = LH_NO_TASK;

	/* JSON values are checked too */
	json_object_set_new(out, "nul", json_stringn("a\0b", 3));
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_DECODE);
	T_EQ_STR(err.msg, "body.output.nul: string contains a NUL byte");
	json_object_del(out, "nul");

	/* too large: a 2 MiB string */
	{
		char *s = malloc(2 << 20);
		memset(s, 'x', 2 << 20);
		json_object_set_new(out, "huge", json_stringn(s, 2 << 20));
		free(s);
		T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_TOO_LARGE);
		T_CHECK(buf.len == 4);
		json_object_del(out, "huge");
	}
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_OK);
	T_CHECK(buf.len > 4);

	/* arrays of structs: the path names the element */
	memset(&pc, 0, sizeof(pc));
	memset(tasks, 0, sizeof(tasks));
	pc.version = 1;
	pc.tasks.n = 2;
	pc.tasks.v = tasks;
	tasks[0] = (lh_task_spec_t){.task_no = 0, .kind = LH_TASK_SPEC_KIND_PLAN, .tier = "fast",
				    .instructions = "plan it"};
	tasks[1] = (lh_task_spec_t){.task_no = 1, .kind = "dance", .tier = "fast", .instructions = "x"};
	ev.type = LH_EV_PLAN_CREATED;
	ev.body = &pc;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "body.tasks[1].kind: unknown value \"dance\"");
	tasks[1].kind = LH_TASK_SPEC_KIND_JOIN;
	pc.tasks.v = NULL;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "body.tasks: array of 2 elements has no storage");
	pc.tasks.v = tasks;
	ev.body = NULL;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "body: missing required field");
	ev.body = &pc;
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_OK);

	json_decref(out);
	lh_buf_finish(&buf);
}

/* ------------------------------------------------------------------------------------------- */
/* Structs from JSON (planner output)                                                            */
/* ------------------------------------------------------------------------------------------- */

static void test_struct_from_json(void)
{
	lh_arena_t *a = lh_arena_new(0);
	lh_error_t err = {0};
	lh_planner_output_t *po = NULL;
	json_t *j = json_loads(
		"{\"thought\":\"two steps\",\"tasks\":["
		"{\"id\":1,\"kind\":\"act\",\"tool\":\"http_fetch\",\"instructions\":\"get it\","
		"\"args\":{\"url\":\"https://example.org\"}},"
		"{\"id\":2,\"instructions\":\"sum up ${1}\",\"after\":[1],\"needs_approval\":true}],"
		"\"join\":\"finish when done\"}",
		0, NULL);
	json_t *back;
	T_EQ_INT(lh_struct_from_json(&lh_planner_output_desc, j, a, (void **)&po, &err), LH_OK);
	if (po) {
		T_EQ_STR(po->thought, "two steps");
		T_EQ_INT(po->tasks.n, 2);
		T_EQ_INT(po->tasks.v[0].id, 1);
		T_EQ_STR(po->tasks.v[0].kind, LH_PLANNER_TASK_KIND_ACT);
		T_EQ_STR(json_string_value(json_object_get(po->tasks.v[0].args, "url")), "https://example.org");
		T_CHECK(po->tasks.v[1].kind == NULL);
		T_EQ_INT(po->tasks.v[1].after.n, 1);
		T_EQ_INT(po->tasks.v[1].after.v[0], 1);
		T_CHECK(po->tasks.v[1].needs_approval);
		T_EQ_STR(json_string_value(po->join), "finish when done");
		back = lh_struct_to_json(&lh_planner_output_desc, po);
		T_CHECK(json_equal(back, j));
		json_decref(back);
	}
	/* the decoded values do not alias the input */
	json_decref(j);
	if (po)
		T_EQ_STR(json_string_value(json_object_get(po->tasks.v[0].args, "url")), "https://example.org");

	j = json_loads("{\"tasks\":[{\"id\":1,\"instructions\":\"a\"},{\"id\":0,\"instructions\":\"b\"}]}", 0, NULL);
	po = NULL;
	T_EQ_INT(lh_struct_from_json(&lh_planner_output_desc, j, a, (void **)&po, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "tasks[1].id: value 0 is below the minimum 1");
	T_CHECK(po == NULL);
	json_decref(j);
	j = json_loads("{\"tasks\":[{\"id\":1,\"instructions\":\"a\",\"kind\":\"plan\"}]}", 0, NULL);
	T_EQ_INT(lh_struct_from_json(&lh_planner_output_desc, j, a, (void **)&po, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "tasks[0].kind: unknown value \"plan\"");
	json_decref(j);
	j = json_loads("[]", JSON_DECODE_ANY, NULL);
	T_EQ_INT(lh_struct_from_json(&lh_planner_output_desc, j, a, (void **)&po, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "expected object, got array");
	json_decref(j);
	j = json_loads("{\"tasks\":[],\"join\":{\"a\":{\"b\":[1.5e300]}}}", 0, NULL);
	T_EQ_INT(lh_struct_from_json(&lh_planner_output_desc, j, a, (void **)&po, &err), LH_OK);
	json_decref(j);
	/* json_t values hang off the arena and go with it (valgrind checks) */
	lh_arena_free(a);
}

/* JSON form specifics: id formats. */
static void test_json_ids(void)
{
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	json_t *j = json_loads("{\"v\":1,\"id\":\"00112233445566778899aabbccddeeff\","
			       "\"plan_id\":\"0190A3C27B4D7E219A3B5C6D7E8F9A0B\",\"ts_us\":5,"
			       "\"actor\":{\"kind\":\"cli\"},\"type\":\"plan.cancelled\",\"body\":{}}",
			       0, NULL);
	T_EQ_INT(lh_event_from_json(j, &ev, &err), LH_OK);
	if (ev) {
		json_t *back = lh_event_to_json(ev);
		T_EQ_STR(json_string_value(json_object_get(back, "plan_id")),
			 "0190a3c2-7b4d-7e21-9a3b-5c6d7e8f9a0b");
		T_EQ_STR(json_string_value(json_object_get(back, "id")), "00112233445566778899aabbccddeeff");
		T_CHECK(json_object_get(back, "causation_id") == NULL);
		json_decref(back);
		lh_event_free(ev);
	}
	json_object_set_new(j, "id", json_string("00112233-4455-6677-8899-aabbccddeeff"));
	T_EQ_INT(lh_event_from_json(j, &ev, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "id: expected 32 lower-case hex digits");
	json_object_set_new(j, "id", json_string("00112233445566778899AABBCCDDEEFF"));
	T_EQ_INT(lh_event_from_json(j, &ev, &err), LH_ERR_SCHEMA);
	json_object_set_new(j, "id", json_string("00112233445566778899aabbccddeeff"));
	json_object_set_new(j, "plan_id", json_string("not-a-uuid"));
	T_EQ_INT(lh_event_from_json(j, &ev, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "plan_id: expected a UUID");
	json_decref(j);
	T_EQ_INT(lh_event_from_json(NULL, &ev, &err), LH_ERR_SCHEMA);
	T_CHECK(lh_event_free(NULL) == NULL);
}

/* Big values cross the encoder's staging buffer; deep caller-built JSON is refused on encode. */
static void test_large_and_deep(void)
{
	lh_event_t ev, *back = NULL;
	lh_attempt_succeeded_t body;
	json_t *out, *arr, *deep;
	lh_buf_t buf;
	lh_error_t err = {0};
	char *s = malloc(300000);

	golden_event(&ev, &body, &out);
	memset(s, 'y', 299999);
	s[299999] = 0;
	json_object_set_new(out, "text", json_string(s));
	arr = json_array();
	for (int i = 0; i < 5000; i++)
		json_array_append_new(arr, json_integer(i * 1000003LL));
	json_object_set_new(out, "many", arr);
	body.worker_id = s + 299000; /* a 999-byte string field */
	lh_buf_init(&buf);
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_OK);
	T_CHECK(buf.len > 300000);
	T_EQ_INT(lh_event_decode(buf.data, buf.len, &back, &err), LH_OK);
	if (back) {
		lh_attempt_succeeded_t *b = back->body;
		T_CHECK(json_equal(b->output, out));
		T_EQ_INT(strlen(b->worker_id), 999);
		T_CHECK(event_eq(&ev, back));
		lh_event_free(back);
	}

	/* 31 nested arrays inside body.output: depth 1 (envelope) + 1 (body) + 31 = 33 */
	deep = json_integer(1);
	for (int i = 0; i < 31; i++)
		deep = json_pack("[o]", deep);
	body.output = deep;
	lh_buf_reset(&buf);
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_ERR_SCHEMA);
	T_EQ_STR(err.msg, "body.output[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nesting deeper than 32 levels");
	T_EQ_INT(buf.len, 0);
	/* one level less is fine, and decodes */
	body.output = json_array_get(deep, 0);
	T_EQ_INT(lh_event_encode(&ev, &buf, &err), LH_OK);
	T_EQ_INT(lh_event_decode(buf.data, buf.len, &back, &err), LH_OK);
	lh_event_free(back);
	json_decref(deep);
	json_decref(out);
	lh_buf_finish(&buf);
	free(s);
}

int main(void)
{
	T_RUN(test_type_names);
	T_RUN(test_roundtrip_all_types_full);
	T_RUN(test_roundtrip_all_types_required_only);
	T_RUN(test_golden);
	T_RUN(test_decode_ok_baseline);
	T_RUN(test_decode_schema_errors);
	T_RUN(test_decode_version_and_type);
	T_RUN(test_decode_bytes_errors);
	T_RUN(test_encode_errors);
	T_RUN(test_large_and_deep);
	T_RUN(test_struct_from_json);
	T_RUN(test_json_ids);
	return t_done();
}
