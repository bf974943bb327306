/* codec_msgpack.c — msgpack decode (the object tree checked against the descriptors and copied
 * into an arena; lh_event_decode) and encode (lh_event_encode), per the rules in codec.c. */
#include "codec_int.h"

#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * msgpack: decode the object tree
 * ------------------------------------------------------------------------------------------- */

static const char *mp_type_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return "nil";
	case MSGPACK_OBJECT_BOOLEAN:
		return "boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return "integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return "float";
	case MSGPACK_OBJECT_STR:
		return "string";
	case MSGPACK_OBJECT_ARRAY:
		return "array";
	case MSGPACK_OBJECT_MAP:
		return "map";
	case MSGPACK_OBJECT_BIN:
		return "bin";
	case MSGPACK_OBJECT_EXT:
		return "ext";
	}
	return "unknown";
}

static lh_err_t mp_wrong_type(lh_codec_ctx_t *c, const char *want, const msgpack_object *o)
{
	return lh_codec_fail(c, LH_ERR_SCHEMA, "expected %s, got %s", want, mp_type_name(o));
}

static lh_err_t mp_int(lh_codec_ctx_t *c, const msgpack_object *o, int64_t *ret)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return lh_codec_fail(c, LH_ERR_SCHEMA, "integer %" PRIu64 " out of range", o->via.u64);
		*ret = (int64_t)o->via.u64;
		return LH_OK;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*ret = o->via.i64;
		return LH_OK;
	}
	return mp_wrong_type(c, "integer", o);
}

static lh_err_t mp_to_json(lh_codec_ctx_t *c, const msgpack_object *o, json_t **ret);

static lh_err_t mp_json_container(lh_codec_ctx_t *c, const msgpack_object *o, json_t **ret)
{
	json_t *j;
	lh_err_t rc = LH_OK;
	if (c->n + 1 > LH_CODEC_MAX_DEPTH)
		return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		j = json_array();
		if (!j)
			return lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
		for (uint32_t i = 0; i < o->via.array.size && !rc; i++) {
			json_t *v;
			lh_codec_push_index(c, i);
			rc = mp_to_json(c, &o->via.array.ptr[i], &v);
			if (!rc && json_array_append_new(j, v))
				rc = lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
			lh_codec_pop(c);
		}
	} else {
		j = json_object();
		if (!j)
			return lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
		for (uint32_t i = 0; i < o->via.map.size && !rc; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			json_t *v;
			int64_t cps;
			if (k->type != MSGPACK_OBJECT_STR) {
				rc = lh_codec_fail(c, LH_ERR_DECODE, "map key is not a string");
				break;
			}
			lh_codec_push_key(c, k->via.str.ptr, k->via.str.size);
			rc = lh_codec_check_text(c, k->via.str.ptr, k->via.str.size, &cps);
			if (!rc && json_object_getn(j, k->via.str.ptr, k->via.str.size))
				rc = lh_codec_fail(c, LH_ERR_DECODE, "duplicate key");
			if (!rc)
				rc = mp_to_json(c, &o->via.map.ptr[i].val, &v);
			if (!rc && json_object_setn_new_nocheck(j, k->via.str.ptr, k->via.str.size, v))
				rc = lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
			lh_codec_pop(c);
		}
	}
	if (rc) {
		json_decref(j);
		return rc;
	}
	*ret = j;
	return LH_OK;
}

/* Any msgpack value as a new JSON value (bin and ext have no JSON form and are rejected). */
static lh_err_t mp_to_json(lh_codec_ctx_t *c, const msgpack_object *o, json_t **ret)
{
	json_t *j = NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		j = json_null();
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		j = json_boolean(o->via.boolean);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: {
		int64_t v;
		lh_err_t rc = mp_int(c, o, &v);
		if (rc)
			return rc;
		j = json_integer((json_int_t)v);
		break;
	}
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			return lh_codec_fail(c, LH_ERR_SCHEMA, "number is not finite");
		j = json_real(o->via.f64);
		break;
	case MSGPACK_OBJECT_STR: {
		int64_t cps;
		lh_err_t rc = lh_codec_check_text(c, o->via.str.ptr, o->via.str.size, &cps);
		if (rc)
			return rc;
		j = json_stringn_nocheck(o->via.str.ptr, o->via.str.size);
		break;
	}
	case MSGPACK_OBJECT_ARRAY:
	case MSGPACK_OBJECT_MAP:
		return mp_json_container(c, o, ret);
	default:
		return lh_codec_fail(c, LH_ERR_SCHEMA, "%s has no JSON form", mp_type_name(o));
	}
	if (!j)
		return lh_codec_fail(c, LH_ERR_NOMEM, "out of memory");
	*ret = j;
	return LH_OK;
}

static lh_err_t mp_struct(lh_codec_ctx_t *c, const lh_desc_t *desc, const msgpack_object *o, char *base);

/* One value of field f (an element, for arrays) into dst. */
static lh_err_t mp_value(lh_codec_ctx_t *c, const lh_field_desc_t *f, const msgpack_object *o, char *dst)
{
	lh_err_t rc;
	switch (f->kind) {
	case LH_KIND_STRING: {
		const char *interned;
		if (o->type != MSGPACK_OBJECT_STR)
			return mp_wrong_type(c, "string", o);
		rc = lh_codec_check_string(c, f, o->via.str.ptr, o->via.str.size, &interned);
		if (rc)
			return rc;
		*(const char **)dst = interned ? interned
					       : lh_arena_strndup(c->arena, o->via.str.ptr,
								  o->via.str.size);
		return LH_OK;
	}
	case LH_KIND_INT: {
		int64_t v;
		if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
			return lh_codec_fail(c, LH_ERR_SCHEMA, "expected integer, got float");
		if ((rc = mp_int(c, o, &v)) || (rc = lh_codec_check_int(c, f, v)))
			return rc;
		*(int64_t *)dst = v;
		return LH_OK;
	}
	case LH_KIND_NUMBER: {
		double v;
		if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
			v = o->via.f64;
		else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			v = (double)o->via.u64;
		else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			v = (double)o->via.i64;
		else
			return mp_wrong_type(c, "number", o);
		if ((rc = lh_codec_check_number(c, f, v)))
			return rc;
		*(double *)dst = v;
		return LH_OK;
	}
	case LH_KIND_BOOL:
		if (o->type != MSGPACK_OBJECT_BOOLEAN)
			return mp_wrong_type(c, "boolean", o);
		*(bool *)dst = o->via.boolean;
		return LH_OK;
	case LH_KIND_STRUCT:
		return mp_struct(c, f->sub, o, dst);
	case LH_KIND_JSON: {
		json_t *j;
		if ((rc = mp_to_json(c, o, &j)))
			return rc;
		lh_arena_on_free(c->arena, lh_codec_json_release, j);
		*(json_t **)dst = j;
		return LH_OK;
	}
	}
	return lh_codec_fail(c, LH_ERR_INTERNAL, "bad descriptor kind %d", f->kind);
}

static lh_err_t mp_field(lh_codec_ctx_t *c, const lh_field_desc_t *f, const msgpack_object *o, char *base)
{
	lh_err_t rc;
	if (f->flags & LH_FIELD_ARRAY) {
		size_t es = lh_codec_elem_size(f), n;
		char *v = NULL;
		if (o->type != MSGPACK_OBJECT_ARRAY)
			return mp_wrong_type(c, "array", o);
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		n = o->via.array.size;
		if (n)
			v = lh_arena_alloc(c->arena, n * es);
		for (size_t i = 0; i < n; i++) {
			lh_codec_push_index(c, i);
			rc = mp_value(c, f, &o->via.array.ptr[i], v + i * es);
			lh_codec_pop(c);
			if (rc)
				return rc;
		}
		lh_codec_array_set(base, f, n, v);
		return LH_OK;
	}
	if ((rc = mp_value(c, f, o, base + f->offset)))
		return rc;
	if (f->kind == LH_KIND_STRUCT)
		*(bool *)(base + f->has_offset) = true;
	return LH_OK;
}

static lh_err_t mp_struct(lh_codec_ctx_t *c, const lh_desc_t *desc, const msgpack_object *o, char *base)
{
	uint64_t seen = 0;
	uint32_t hint = 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return mp_wrong_type(c, "map", o);
	if (c->n + 1 > LH_CODEC_MAX_DEPTH)
		return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		lh_err_t rc;
		int fi;
		if (k->type != MSGPACK_OBJECT_STR)
			return lh_codec_fail(c, LH_ERR_DECODE, "map key is not a string");
		fi = lh_codec_find_field(desc, k->via.str.ptr, k->via.str.size, &hint);
		lh_codec_push_key(c, k->via.str.ptr, k->via.str.size);
		if (fi < 0) {
			rc = desc->strict ? lh_codec_fail(c, LH_ERR_SCHEMA, "unknown key") : LH_OK;
		} else if (seen & ((uint64_t)1 << fi)) {
			rc = lh_codec_fail(c, LH_ERR_DECODE, "duplicate key");
		} else {
			seen |= (uint64_t)1 << fi;
			rc = mp_field(c, &desc->fields[fi], &o->via.map.ptr[i].val, base);
		}
		lh_codec_pop(c);
		if (rc)
			return rc;
	}
	return lh_codec_missing_required(c, desc, seen);
}

static lh_err_t mp_id(lh_codec_ctx_t *c, const msgpack_object *o, lh_id_t *ret)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != 16)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "expected 16-byte bin, got %s%s", mp_type_name(o),
			    o->type == MSGPACK_OBJECT_BIN ? " of another length" : "");
	memcpy(ret->b, o->via.bin.ptr, 16);
	return LH_OK;
}

static lh_err_t mp_envelope_key(lh_codec_ctx_t *c, int k, const msgpack_object *o, lh_event_t *ev)
{
	lh_err_t rc;
	int64_t v = 0;
	switch (k) {
	case ENV_V:
		if ((rc = mp_int(c, o, &v)) || (rc = lh_codec_check_version(c, v)))
			return rc;
		ev->v = (int)v;
		return LH_OK;
	case ENV_ID:
		return mp_id(c, o, &ev->id);
	case ENV_TYPE:
		if (o->type != MSGPACK_OBJECT_STR)
			return mp_wrong_type(c, "string", o);
		ev->type = lh_codec_type_lookup(o->via.str.ptr, o->via.str.size);
		if (ev->type == LH_EV__NONE)
			return lh_codec_unknown_type(c, o->via.str.ptr, o->via.str.size);
		return LH_OK;
	case ENV_PLAN_ID:
		return mp_id(c, o, &ev->plan_id);
	case ENV_TASK_NO:
		if ((rc = mp_int(c, o, &v)) || (rc = lh_codec_check_task_no(c, v)))
			return rc;
		ev->task_no = v;
		return LH_OK;
	case ENV_ATTEMPT:
		if ((rc = mp_int(c, o, &v)) || (rc = lh_codec_check_attempt(c, v)))
			return rc;
		ev->attempt = v;
		return LH_OK;
	case ENV_TS_US:
		return mp_int(c, o, &ev->ts_us);
	case ENV_TENANT:
		if (o->type != MSGPACK_OBJECT_STR)
			return mp_wrong_type(c, "string", o);
		if ((rc = lh_codec_check_tenant(c, o->via.str.ptr, o->via.str.size)))
			return rc;
		ev->tenant = lh_arena_strndup(c->arena, o->via.str.ptr, o->via.str.size);
		return LH_OK;
	case ENV_ACTOR:
		return mp_struct(c, &lh_actor_desc, o, (char *)&ev->actor);
	case ENV_CAUSATION_ID:
		return mp_id(c, o, &ev->causation_id);
	}
	return LH_OK; /* ENV_BODY: decoded once the type is known */
}

static lh_err_t mp_envelope(lh_codec_ctx_t *c, const msgpack_object *o, lh_event_t *ev)
{
	const msgpack_object *body = NULL;
	const lh_desc_t *desc;
	unsigned seen = 0;
	lh_err_t rc;

	if (o->type != MSGPACK_OBJECT_MAP)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "expected a map at the top level, got %s",
			    mp_type_name(o));
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		int ki;
		if (k->type != MSGPACK_OBJECT_STR)
			return lh_codec_fail(c, LH_ERR_DECODE, "map key is not a string");
		ki = lh_codec_env_key_find(k->via.str.ptr, k->via.str.size);
		lh_codec_push_key(c, k->via.str.ptr, k->via.str.size);
		if (ki < 0)
			rc = lh_codec_fail(c, LH_ERR_SCHEMA, "unknown key");
		else if (seen & (1u << ki))
			rc = lh_codec_fail(c, LH_ERR_DECODE, "duplicate key");
		else {
			seen |= 1u << ki;
			if (ki == ENV_BODY)
				body = &o->via.map.ptr[i].val;
			rc = mp_envelope_key(c, ki, &o->via.map.ptr[i].val, ev);
		}
		lh_codec_pop(c);
		if (rc)
			return rc;
	}
	if ((rc = lh_codec_env_missing(c, seen)))
		return rc;
	desc = lh_event_body_desc(ev->type);
	ev->body = lh_arena_alloc(c->arena, desc->size);
	lh_codec_push_key(c, "body", 4);
	rc = mp_struct(c, desc, body, ev->body);
	lh_codec_pop(c);
	return rc;
}

lh_err_t lh_event_decode(const void *data, size_t len, lh_event_t **ret_ev, lh_error_t *err)
{
	msgpack_unpacked up;
	msgpack_unpack_return ur;
	lh_arena_t *arena;
	lh_event_t *ev;
	size_t off = 0;
	lh_codec_ctx_t c;
	lh_err_t rc;

	lh_codec_ctx_init(&c, NULL, err);
	if (len > LH_EVENT_MAX_BYTES)
		return lh_codec_fail(&c, LH_ERR_TOO_LARGE, "event of %zu bytes exceeds the limit of %d bytes",
			    len, LH_EVENT_MAX_BYTES);
	if (len == 0)
		return lh_codec_fail(&c, LH_ERR_DECODE, "empty input");
	if ((rc = lh_codec_mp_scan(&c, data, len)))
		return rc;
	c.n = 0;

	msgpack_unpacked_init(&up);
	ur = msgpack_unpack_next(&up, data, len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		rc = lh_codec_fail(&c, ur == MSGPACK_UNPACK_NOMEM_ERROR ? LH_ERR_NOMEM : LH_ERR_DECODE,
			  "could not unpack msgpack (%d)", (int)ur);
		goto out_destroy_unpacked;
	}
	/* One block fits a typical event: the strings are at most len bytes, plus structs. */
	arena = lh_arena_new(2 * len + 1024);
	c.arena = arena;
	ev = lh_codec_event_alloc(arena);
	rc = mp_envelope(&c, &up.data, ev);
	if (rc) {
		lh_arena_free(arena);
		goto out_destroy_unpacked;
	}
	*ret_ev = ev;

out_destroy_unpacked:
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* ---------------------------------------------------------------------------------------------
 * msgpack: encode
 * ------------------------------------------------------------------------------------------- */

/* msgpack-c writes many pieces of a few bytes; they are staged here and appended in blocks. */
typedef struct sink {
	lh_buf_t *out;
	size_t start; /* out->len before encoding: restored on error */
	size_t total; /* bytes written so far, staged or not */
	bool too_large;
	size_t used;
	char stage[2048];
} sink_t;

static void sink_flush(sink_t *s)
{
	lh_buf_append(s->out, s->stage, s->used);
	s->used = 0;
}

static int sink_write(void *data, const char *p, size_t n)
{
	sink_t *s = data;
	if (s->too_large || s->total + n > LH_EVENT_MAX_BYTES) {
		s->too_large = true;
		return -1;
	}
	s->total += n;
	if (n > sizeof(s->stage) - s->used) {
		sink_flush(s);
		if (n > sizeof(s->stage)) {
			lh_buf_append(s->out, p, n);
			return 0;
		}
	}
	memcpy(s->stage + s->used, p, n);
	s->used += n;
	return 0;
}

typedef struct enc {
	lh_codec_ctx_t c;
	msgpack_packer pk;
	sink_t sink;
} enc_t;

static void pack_cstr(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

static lh_err_t pack_json(enc_t *e, const json_t *j)
{
	lh_err_t rc = LH_OK;
	int64_t cps;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		void *it;
		if (e->c.n + 1 > LH_CODEC_MAX_DEPTH)
			return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		msgpack_pack_map(&e->pk, json_object_size(j));
		for (it = json_object_iter((json_t *)j); it && !rc;
		     it = json_object_iter_next((json_t *)j, it)) {
			const char *k = json_object_iter_key(it);
			size_t kl = json_object_iter_key_len(it);
			lh_codec_push_key(&e->c, k, kl);
			rc = lh_codec_check_text(&e->c, k, kl, &cps);
			if (!rc) {
				pack_cstr(&e->pk, k, kl);
				rc = pack_json(e, json_object_iter_value(it));
			}
			lh_codec_pop(&e->c);
		}
		return rc;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		if (e->c.n + 1 > LH_CODEC_MAX_DEPTH)
			return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		msgpack_pack_array(&e->pk, n);
		for (size_t i = 0; i < n && !rc; i++) {
			lh_codec_push_index(&e->c, i);
			rc = pack_json(e, json_array_get(j, i));
			lh_codec_pop(&e->c);
		}
		return rc;
	}
	case JSON_STRING: {
		const char *s = json_string_value(j);
		size_t len = json_string_length(j);
		if ((rc = lh_codec_check_text(&e->c, s, len, &cps)))
			return rc;
		pack_cstr(&e->pk, s, len);
		return LH_OK;
	}
	case JSON_INTEGER:
		msgpack_pack_int64(&e->pk, (int64_t)json_integer_value(j));
		return LH_OK;
	case JSON_REAL:
		if (!isfinite(json_real_value(j)))
			return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "number is not finite");
		msgpack_pack_double(&e->pk, json_real_value(j));
		return LH_OK;
	case JSON_TRUE:
		msgpack_pack_true(&e->pk);
		return LH_OK;
	case JSON_FALSE:
		msgpack_pack_false(&e->pk);
		return LH_OK;
	case JSON_NULL:
		msgpack_pack_nil(&e->pk);
		return LH_OK;
	}
	return lh_codec_fail(&e->c, LH_ERR_INTERNAL, "unknown JSON type");
}

static lh_err_t pack_struct(enc_t *e, const lh_desc_t *desc, const char *base);

static lh_err_t pack_value(enc_t *e, const lh_field_desc_t *f, const char *p)
{
	lh_err_t rc;
	switch (f->kind) {
	case LH_KIND_STRING: {
		const char *s = *(const char *const *)p, *interned;
		if (!s)
			return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "missing string (NULL)");
		if ((rc = lh_codec_check_string(&e->c, f, s, strlen(s), &interned)))
			return rc;
		pack_cstr(&e->pk, s, strlen(s));
		return LH_OK;
	}
	case LH_KIND_INT: {
		int64_t v = *(const int64_t *)p;
		if ((rc = lh_codec_check_int(&e->c, f, v)))
			return rc;
		msgpack_pack_int64(&e->pk, v);
		return LH_OK;
	}
	case LH_KIND_NUMBER: {
		double v = *(const double *)p;
		if ((rc = lh_codec_check_number(&e->c, f, v)))
			return rc;
		msgpack_pack_double(&e->pk, v);
		return LH_OK;
	}
	case LH_KIND_BOOL:
		if (*(const bool *)p)
			msgpack_pack_true(&e->pk);
		else
			msgpack_pack_false(&e->pk);
		return LH_OK;
	case LH_KIND_STRUCT:
		return pack_struct(e, f->sub, p);
	case LH_KIND_JSON: {
		const json_t *j = *(json_t *const *)p;
		if (!j)
			return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "missing JSON value (NULL)");
		return pack_json(e, j);
	}
	}
	return lh_codec_fail(&e->c, LH_ERR_INTERNAL, "bad descriptor kind %d", f->kind);
}

static lh_err_t pack_field(enc_t *e, const lh_field_desc_t *f, const char *base)
{
	lh_err_t rc = LH_OK;
	if (f->flags & LH_FIELD_ARRAY) {
		size_t n, es = lh_codec_elem_size(f);
		char *v;
		lh_codec_array_get(base, f, &n, &v);
		if (n && !v)
			return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "array of %zu elements has no storage", n);
		if (e->c.n + 1 > LH_CODEC_MAX_DEPTH)
			return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		msgpack_pack_array(&e->pk, n);
		for (size_t i = 0; i < n && !rc; i++) {
			lh_codec_push_index(&e->c, i);
			rc = pack_value(e, f, v + i * es);
			lh_codec_pop(&e->c);
		}
		return rc;
	}
	if (f->kind == LH_KIND_STRUCT && !*(const bool *)(base + f->has_offset))
		return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "missing required field (has_%s is false)", f->name);
	if ((f->kind == LH_KIND_STRING && !*(const char *const *)(base + f->offset)) ||
	    (f->kind == LH_KIND_JSON && !*(json_t *const *)(base + f->offset)))
		return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "missing required field");
	return pack_value(e, f, base + f->offset);
}

static lh_err_t pack_struct(enc_t *e, const lh_desc_t *desc, const char *base)
{
	uint32_t count = 0;
	lh_err_t rc = LH_OK;
	if (e->c.n + 1 > LH_CODEC_MAX_DEPTH)
		return lh_codec_fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	for (uint32_t i = 0; i < desc->n_fields; i++)
		count += lh_codec_field_present(base, &desc->fields[i]);
	msgpack_pack_map(&e->pk, count);
	for (uint32_t i = 0; i < desc->n_fields && !rc; i++) {
		const lh_field_desc_t *f = &desc->fields[i];
		if (!lh_codec_field_present(base, f))
			continue;
		lh_codec_push_key(&e->c, f->name, f->name_len);
		pack_cstr(&e->pk, f->name, f->name_len);
		rc = pack_field(e, f, base);
		lh_codec_pop(&e->c);
	}
	return rc;
}

static void pack_key(enc_t *e, int k) { pack_cstr(&e->pk, lh_codec_env_keys[k].name, lh_codec_env_keys[k].len); }

static void pack_id(enc_t *e, const lh_id_t *id)
{
	msgpack_pack_bin(&e->pk, 16);
	msgpack_pack_bin_body(&e->pk, id->b, 16);
}

/* Envelope fields a caller can get wrong, checked before anything is written. */
static lh_err_t check_event(lh_codec_ctx_t *c, const lh_event_t *ev)
{
	lh_err_t rc = LH_OK;
	if (!ev)
		return lh_codec_fail(c, LH_ERR_INVALID, "no event");
	lh_codec_push_key(c, "v", 1);
	rc = lh_codec_check_version(c, ev->v);
	lh_codec_pop(c);
	if (rc)
		return rc;
	lh_codec_push_key(c, "type", 4);
	if (!lh_event_type_name(ev->type))
		rc = lh_codec_fail(c, LH_ERR_SCHEMA, "unknown event type %d", (int)ev->type);
	lh_codec_pop(c);
	if (rc)
		return rc;
	if (ev->task_no != LH_NO_TASK) {
		lh_codec_push_key(c, "task_no", 7);
		rc = lh_codec_check_task_no(c, ev->task_no);
		lh_codec_pop(c);
		if (rc)
			return rc;
	}
	if (ev->attempt != 0) {
		lh_codec_push_key(c, "attempt", 7);
		rc = lh_codec_check_attempt(c, ev->attempt);
		lh_codec_pop(c);
		if (rc)
			return rc;
	}
	if (ev->tenant) {
		lh_codec_push_key(c, "tenant", 6);
		rc = lh_codec_check_tenant(c, ev->tenant, strlen(ev->tenant));
		lh_codec_pop(c);
		if (rc)
			return rc;
	}
	if (!ev->body) {
		lh_codec_push_key(c, "body", 4);
		rc = lh_codec_fail(c, LH_ERR_SCHEMA, "missing required field");
		lh_codec_pop(c);
	}
	return rc;
}

lh_err_t lh_event_encode(const lh_event_t *ev, lh_buf_t *out, lh_error_t *err)
{
	enc_t e;
	const char *type_name;
	uint32_t n;
	lh_err_t rc;

	lh_codec_ctx_init(&e.c, NULL, err);
	if ((rc = check_event(&e.c, ev)))
		return rc;
	e.sink.out = out;
	e.sink.start = out->len;
	e.sink.total = 0;
	e.sink.used = 0;
	e.sink.too_large = false;
	msgpack_packer_init(&e.pk, &e.sink, sink_write);
	type_name = lh_event_type_name(ev->type);

	n = 7 + (ev->task_no != LH_NO_TASK) + (ev->attempt != 0) + (ev->tenant != NULL) +
	    !lh_id_is_zero(&ev->causation_id);
	msgpack_pack_map(&e.pk, n);
	pack_key(&e, ENV_V);
	msgpack_pack_int(&e.pk, ev->v);
	pack_key(&e, ENV_ID);
	pack_id(&e, &ev->id);
	pack_key(&e, ENV_TYPE);
	pack_cstr(&e.pk, type_name, strlen(type_name));
	pack_key(&e, ENV_PLAN_ID);
	pack_id(&e, &ev->plan_id);
	if (ev->task_no != LH_NO_TASK) {
		pack_key(&e, ENV_TASK_NO);
		msgpack_pack_int64(&e.pk, ev->task_no);
	}
	if (ev->attempt != 0) {
		pack_key(&e, ENV_ATTEMPT);
		msgpack_pack_int64(&e.pk, ev->attempt);
	}
	pack_key(&e, ENV_TS_US);
	msgpack_pack_int64(&e.pk, ev->ts_us);
	if (ev->tenant) {
		pack_key(&e, ENV_TENANT);
		pack_cstr(&e.pk, ev->tenant, strlen(ev->tenant));
	}
	pack_key(&e, ENV_ACTOR);
	lh_codec_push_key(&e.c, "actor", 5);
	rc = pack_struct(&e, &lh_actor_desc, (const char *)&ev->actor);
	lh_codec_pop(&e.c);
	if (rc)
		goto out_truncate;
	if (!lh_id_is_zero(&ev->causation_id)) {
		pack_key(&e, ENV_CAUSATION_ID);
		pack_id(&e, &ev->causation_id);
	}
	pack_key(&e, ENV_BODY);
	lh_codec_push_key(&e.c, "body", 4);
	rc = pack_struct(&e, lh_event_body_desc(ev->type), ev->body);
	lh_codec_pop(&e.c);
	if (rc)
		goto out_truncate;
	sink_flush(&e.sink);
	if (e.sink.too_large) {
		rc = lh_error_set(err, LH_ERR_TOO_LARGE,
				  "could not encode event: larger than the limit of %d bytes",
				  LH_EVENT_MAX_BYTES);
		goto out_truncate;
	}
	return LH_OK;

out_truncate:
	out->len = e.sink.start;
	if (out->data)
		out->data[out->len] = 0;
	return rc;
}

