/* codec_json.c — JSON conversion: strict decode into structs and events (lh_struct_from_json,
 * lh_event_from_json) and encode (lh_struct_to_json, lh_event_to_json), per the rules in
 * codec.c. */
#include "codec_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * JSON: decode (strict) into structs
 * ------------------------------------------------------------------------------------------- */

static const char *js_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "real";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

static lh_err_t js_wrong_type(lh_codec_ctx_t *c, const char *want, const json_t *j)
{
	return lh_codec_fail(c, LH_ERR_SCHEMA, "expected %s, got %s", want, js_type_name(j));
}

/* A validated deep copy, so the event owns its values whatever the caller does with j later. */
static lh_err_t js_copy(lh_codec_ctx_t *c, const json_t *j, json_t **ret)
{
	json_t *r = NULL;
	lh_err_t rc = LH_OK;
	int64_t cps;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		void *it;
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		if (!(r = json_object()))
			return lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
		for (it = json_object_iter((json_t *)j); it && !rc;
		     it = json_object_iter_next((json_t *)j, it)) {
			const char *k = json_object_iter_key(it);
			size_t kl = json_object_iter_key_len(it);
			json_t *v;
			lh_codec_push_key(c, k, kl);
			rc = lh_codec_check_text(c, k, kl, &cps);
			if (!rc)
				rc = js_copy(c, json_object_iter_value(it), &v);
			if (!rc && json_object_setn_new_nocheck(r, k, kl, v))
				rc = lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
			lh_codec_pop(c);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		if (!(r = json_array()))
			return lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < n && !rc; i++) {
			json_t *v;
			lh_codec_push_index(c, i);
			rc = js_copy(c, json_array_get(j, i), &v);
			if (!rc && json_array_append_new(r, v))
				rc = lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
			lh_codec_pop(c);
		}
		break;
	}
	case JSON_STRING:
		if ((rc = lh_codec_check_text(c, json_string_value(j), json_string_length(j), &cps)))
			return rc;
		r = json_stringn_nocheck(json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		r = json_integer(json_integer_value(j));
		break;
	case JSON_REAL:
		r = json_real(json_real_value(j));
		break;
	case JSON_TRUE:
		r = json_true();
		break;
	case JSON_FALSE:
		r = json_false();
		break;
	case JSON_NULL:
		r = json_null();
		break;
	}
	if (rc) {
		json_decref(r);
		return rc;
	}
	if (!r)
		return lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
	*ret = r;
	return LH_OK;
}

static lh_err_t js_struct(lh_codec_ctx_t *c, const lh_desc_t *desc, const json_t *j, char *base);

static lh_err_t js_value(lh_codec_ctx_t *c, const lh_field_desc_t *f, const json_t *j, char *dst)
{
	lh_err_t rc;
	switch (f->kind) {
	case LH_KIND_STRING: {
		const char *s, *interned;
		size_t len;
		if (!json_is_string(j))
			return js_wrong_type(c, "string", j);
		s = json_string_value(j);
		len = json_string_length(j);
		if ((rc = lh_codec_check_string(c, f, s, len, &interned)))
			return rc;
		*(const char **)dst = interned ? interned : lh_arena_strndup(c->arena, s, len);
		return LH_OK;
	}
	case LH_KIND_INT: {
		int64_t v;
		if (!json_is_integer(j))
			return js_wrong_type(c, "integer", j);
		v = (int64_t)json_integer_value(j);
		if ((rc = lh_codec_check_int(c, f, v)))
			return rc;
		*(int64_t *)dst = v;
		return LH_OK;
	}
	case LH_KIND_NUMBER: {
		double v;
		if (!json_is_number(j))
			return js_wrong_type(c, "number", j);
		v = json_number_value(j);
		if ((rc = lh_codec_check_number(c, f, v)))
			return rc;
		*(double *)dst = v;
		return LH_OK;
	}
	case LH_KIND_BOOL:
		if (!json_is_boolean(j))
			return js_wrong_type(c, "boolean", j);
		*(bool *)dst = json_is_true(j);
		return LH_OK;
	case LH_KIND_STRUCT:
		return js_struct(c, f->sub, j, dst);
	case LH_KIND_JSON: {
		json_t *v;
		if ((rc = js_copy(c, j, &v)))
			return rc;
		lh_arena_on_free(c->arena, lh_codec_json_release, v);
		*(json_t **)dst = v;
		return LH_OK;
	}
	}
	return lh_codec_fail(c, LH_ERR_INTERNAL, "bad descriptor kind %d", f->kind);
}

static lh_err_t js_field(lh_codec_ctx_t *c, const lh_field_desc_t *f, const json_t *j, char *base)
{
	lh_err_t rc;
	if (f->flags & LH_FIELD_ARRAY) {
		size_t es = lh_codec_elem_size(f), n;
		char *v = NULL;
		if (!json_is_array(j))
			return js_wrong_type(c, "array", j);
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		n = json_array_size(j);
		if (n)
			v = lh_arena_alloc(c->arena, n * es);
		for (size_t i = 0; i < n; i++) {
			lh_codec_push_index(c, i);
			rc = js_value(c, f, json_array_get(j, i), v + i * es);
			lh_codec_pop(c);
			if (rc)
				return rc;
		}
		lh_codec_array_set(base, f, n, v);
		return LH_OK;
	}
	if ((rc = js_value(c, f, j, base + f->offset)))
		return rc;
	if (f->kind == LH_KIND_STRUCT)
		*(bool *)(base + f->has_offset) = true;
	return LH_OK;
}

static lh_err_t js_struct(lh_codec_ctx_t *c, const lh_desc_t *desc, const json_t *j, char *base)
{
	uint64_t seen = 0;
	uint32_t hint = 0;
	void *it;
	if (!json_is_object(j))
		return js_wrong_type(c, "object", j);
	if (c->n + 1 > LH_CODEC_MAX_DEPTH)
		return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	for (it = json_object_iter((json_t *)j); it; it = json_object_iter_next((json_t *)j, it)) {
		const char *k = json_object_iter_key(it);
		size_t kl = json_object_iter_key_len(it);
		int fi = lh_codec_find_field(desc, k, kl, &hint);
		lh_err_t rc;
		lh_codec_push_key(c, k, kl);
		if (fi < 0)
			rc = desc->strict ? lh_codec_fail(c, LH_ERR_SCHEMA, "unknown key") : LH_OK;
		else {
			seen |= (uint64_t)1 << fi;
			rc = js_field(c, &desc->fields[fi], json_object_iter_value(it), base);
		}
		lh_codec_pop(c);
		if (rc)
			return rc;
	}
	return lh_codec_missing_required(c, desc, seen);
}

lh_err_t lh_struct_from_json(const lh_desc_t *desc, const json_t *j, lh_arena_t *arena,
			     void **ret, lh_error_t *err)
{
	lh_codec_ctx_t c;
	char *base;
	lh_err_t rc;
	lh_codec_ctx_init(&c, arena, err);
	if (!desc || !j || !arena)
		return lh_codec_fail(&c, LH_ERR_INVALID, "no descriptor, value or arena");
	base = lh_arena_alloc(arena, desc->size);
	if ((rc = js_struct(&c, desc, j, base)))
		return rc;
	*ret = base;
	return LH_OK;
}

static bool is_lower_hex32(const char *s, size_t len)
{
	if (len != LH_ID_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static lh_err_t js_id(lh_codec_ctx_t *c, const json_t *j, bool uuid, lh_id_t *ret)
{
	const char *s;
	size_t len;
	if (!json_is_string(j))
		return js_wrong_type(c, "string", j);
	s = json_string_value(j);
	len = json_string_length(j);
	if (strlen(s) == len) {
		if (uuid && lh_uuid_parse(s, ret) == LH_OK)
			return LH_OK;
		if (!uuid && is_lower_hex32(s, len) && lh_uuid_parse(s, ret) == LH_OK)
			return LH_OK;
	}
	return lh_codec_fail(c, LH_ERR_SCHEMA, uuid ? "expected a UUID" : "expected 32 lower-case hex digits");
}

static lh_err_t js_int(lh_codec_ctx_t *c, const json_t *j, int64_t *ret)
{
	if (!json_is_integer(j))
		return js_wrong_type(c, "integer", j);
	*ret = (int64_t)json_integer_value(j);
	return LH_OK;
}

static lh_err_t js_envelope_key(lh_codec_ctx_t *c, int k, const json_t *j, lh_event_t *ev)
{
	lh_err_t rc;
	int64_t v = 0;
	switch (k) {
	case ENV_V:
		if ((rc = js_int(c, j, &v)) || (rc = lh_codec_check_version(c, v)))
			return rc;
		ev->v = (int)v;
		return LH_OK;
	case ENV_ID:
		return js_id(c, j, false, &ev->id);
	case ENV_TYPE:
		if (!json_is_string(j))
			return js_wrong_type(c, "string", j);
		ev->type = lh_codec_type_lookup(json_string_value(j), json_string_length(j));
		if (ev->type == LH_EV__NONE)
			return lh_codec_unknown_type(c, json_string_value(j), json_string_length(j));
		return LH_OK;
	case ENV_PLAN_ID:
		return js_id(c, j, true, &ev->plan_id);
	case ENV_TASK_NO:
		if ((rc = js_int(c, j, &v)) || (rc = lh_codec_check_task_no(c, v)))
			return rc;
		ev->task_no = v;
		return LH_OK;
	case ENV_ATTEMPT:
		if ((rc = js_int(c, j, &v)) || (rc = lh_codec_check_attempt(c, v)))
			return rc;
		ev->attempt = v;
		return LH_OK;
	case ENV_TS_US:
		return js_int(c, j, &ev->ts_us);
	case ENV_TENANT:
		if (!json_is_string(j))
			return js_wrong_type(c, "string", j);
		if ((rc = lh_codec_check_tenant(c, json_string_value(j), json_string_length(j))))
			return rc;
		ev->tenant = lh_arena_strndup(c->arena, json_string_value(j), json_string_length(j));
		return LH_OK;
	case ENV_ACTOR:
		return js_struct(c, &lh_actor_desc, j, (char *)&ev->actor);
	case ENV_CAUSATION_ID:
		return js_id(c, j, false, &ev->causation_id);
	}
	return LH_OK;
}

lh_err_t lh_event_from_json(const json_t *j, lh_event_t **ret_ev, lh_error_t *err)
{
	const json_t *body = NULL;
	const lh_desc_t *desc;
	lh_arena_t *arena;
	lh_event_t *ev;
	unsigned seen = 0;
	void *it;
	lh_codec_ctx_t c;
	lh_err_t rc = LH_OK;

	lh_codec_ctx_init(&c, NULL, err);
	if (!j || !json_is_object(j))
		return lh_codec_fail(&c, LH_ERR_SCHEMA, "expected an object at the top level, got %s",
			    j ? js_type_name(j) : "nothing");
	arena = lh_arena_new(0);
	c.arena = arena;
	ev = lh_codec_event_alloc(arena);
	for (it = json_object_iter((json_t *)j); it && !rc; it = json_object_iter_next((json_t *)j, it)) {
		const char *k = json_object_iter_key(it);
		size_t kl = json_object_iter_key_len(it);
		int ki = lh_codec_env_key_find(k, kl);
		lh_codec_push_key(&c, k, kl);
		if (ki < 0)
			rc = lh_codec_fail(&c, LH_ERR_SCHEMA, "unknown key");
		else {
			seen |= 1u << ki;
			if (ki == ENV_BODY)
				body = json_object_iter_value(it);
			rc = js_envelope_key(&c, ki, json_object_iter_value(it), ev);
		}
		lh_codec_pop(&c);
	}
	if (!rc)
		rc = lh_codec_env_missing(&c, seen);
	if (!rc) {
		desc = lh_event_body_desc(ev->type);
		ev->body = lh_arena_alloc(arena, desc->size);
		lh_codec_push_key(&c, "body", 4);
		rc = js_struct(&c, desc, body, ev->body);
		lh_codec_pop(&c);
	}
	if (rc) {
		lh_arena_free(arena);
		return rc;
	}
	*ret_ev = ev;
	return LH_OK;
}

/* ---------------------------------------------------------------------------------------------
 * JSON: encode (no validation: a caller-built struct is shown as it is)
 * ------------------------------------------------------------------------------------------- */

static json_t *js_from_value(const lh_field_desc_t *f, const char *p);

static json_t *js_from_struct(const lh_desc_t *desc, const char *base)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	for (uint32_t i = 0; i < desc->n_fields; i++) {
		const lh_field_desc_t *f = &desc->fields[i];
		json_t *v;
		if (!lh_codec_field_present(base, f))
			continue;
		if (f->flags & LH_FIELD_ARRAY) {
			size_t n, es = lh_codec_elem_size(f);
			char *arr;
			lh_codec_array_get(base, f, &n, &arr);
			if (!(v = json_array()))
				goto out_free_object;
			for (size_t k = 0; k < n && arr; k++) {
				json_t *e = js_from_value(f, arr + k * es);
				if (e && json_array_append_new(v, e) == 0)
					continue;
				json_decref(v);
				goto out_free_object;
			}
		} else {
			const char *p = base + f->offset;
			if ((f->kind == LH_KIND_STRING && !*(const char *const *)p) ||
			    (f->kind == LH_KIND_JSON && !*(json_t *const *)p))
				continue; /* a required value the caller left out */
			if (!(v = js_from_value(f, p)))
				goto out_free_object;
		}
		if (json_object_set_new_nocheck(o, f->name, v))
			goto out_free_object;
	}
	return o;

out_free_object:
	json_decref(o);
	return NULL;
}

static json_t *js_from_value(const lh_field_desc_t *f, const char *p)
{
	switch (f->kind) {
	case LH_KIND_STRING: {
		const char *s = *(const char *const *)p;
		return s ? json_string(s) : json_null();
	}
	case LH_KIND_INT:
		return json_integer((json_int_t) * (const int64_t *)p);
	case LH_KIND_NUMBER:
		return json_real(*(const double *)p);
	case LH_KIND_BOOL:
		return json_boolean(*(const bool *)p);
	case LH_KIND_STRUCT:
		return js_from_struct(f->sub, p);
	case LH_KIND_JSON: {
		json_t *j = *(json_t *const *)p;
		return j ? json_deep_copy(j) : json_null();
	}
	}
	return NULL;
}

json_t *lh_struct_to_json(const lh_desc_t *desc, const void *s)
{
	if (!desc || !s)
		return NULL;
	return js_from_struct(desc, s);
}

static int set_id(json_t *o, const char *key, const lh_id_t *id, bool uuid)
{
	char buf[LH_UUID_STR_LEN + 1];
	if (uuid)
		lh_uuid_fmt(id, buf);
	else
		lh_id_hex(id, buf);
	return json_object_set_new_nocheck(o, key, json_string(buf));
}

json_t *lh_event_body_to_json(const lh_event_t *ev)
{
	const lh_desc_t *desc = lh_event_body_desc(ev->type);
	return desc && ev->body ? js_from_struct(desc, ev->body) : json_object();
}

json_t *lh_event_to_json(const lh_event_t *ev)
{
	json_t *o, *v;
	int bad = 0;
	if (!ev)
		return NULL;
	if (!(o = json_object()))
		return NULL;
	bad |= json_object_set_new_nocheck(o, "v", json_integer(ev->v));
	bad |= set_id(o, "id", &ev->id, false);
	bad |= json_object_set_new_nocheck(
		o, "type", lh_event_type_name(ev->type) ? json_string(lh_event_type_name(ev->type))
							: json_null());
	bad |= set_id(o, "plan_id", &ev->plan_id, true);
	if (ev->task_no != LH_NO_TASK)
		bad |= json_object_set_new_nocheck(o, "task_no", json_integer(ev->task_no));
	if (ev->attempt != 0)
		bad |= json_object_set_new_nocheck(o, "attempt", json_integer(ev->attempt));
	bad |= json_object_set_new_nocheck(o, "ts_us", json_integer(ev->ts_us));
	if (ev->tenant)
		bad |= json_object_set_new_nocheck(o, "tenant", json_string(ev->tenant));
	bad |= json_object_set_new_nocheck(o, "actor",
					   js_from_struct(&lh_actor_desc, (const char *)&ev->actor));
	if (!lh_id_is_zero(&ev->causation_id))
		bad |= set_id(o, "causation_id", &ev->causation_id, false);
	v = lh_event_body_to_json(ev);
	bad |= v ? json_object_set_new_nocheck(o, "body", v) : -1;
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

