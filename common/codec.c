/* codec.c — the event envelope and the generic, descriptor-driven struct codec (msgpack and JSON).
 *
 * The envelope (common/event.h) is coded here by hand, because its shape is fixed by lh_event_t;
 * every body and def is coded by walking the descriptor tables schemas/gen.py emits (lh_types.c).
 *
 * Decoding msgpack happens in three steps:
 *   1. scan: one linear pass over the bytes that checks the structure (lengths, nesting depth, map
 *      keys are strings, no trailing bytes). msgpack-c allocates n * 24 bytes for an array header
 *      claiming n elements before it reads any of them, so without this a 5-byte input could make
 *      it ask for 100 GB; after the scan every claimed element is known to exist.
 *   2. msgpack_unpack_next builds the object tree (strings point into the input).
 *   3. walk: the tree is checked against the descriptors and copied into one arena.
 * Errors name the path of the offending value ("body.tasks[2].kind: unknown value \"foo\"").
 * Error codes: LH_ERR_TOO_LARGE (size), LH_ERR_DECODE (not msgpack, truncated, trailing bytes,
 * too deep, non-string or duplicate keys, invalid UTF-8, NUL in a string), LH_ERR_UNSUPPORTED
 * (envelope version or event type this build does not know: a newer producer), LH_ERR_SCHEMA
 * (anything else that does not match the schema).
 *
 * Encoding checks the same rules (a producer must never publish what consumers reject), writes
 * optional values only when present (non-NULL, non-zero, has_ flag, n > 0) and leaves out
 * unchanged on error. UTF-8 validation is written here (a few lines; Jansson's checker is not
 * public and counts no code points, which maxLength needs). */
#include "event.h"

#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Paths and errors
 * ------------------------------------------------------------------------------------------- */

typedef struct frame {
	const char *key; /* NULL: array index */
	size_t key_len;
	size_t index;
} frame_t;

typedef struct ctx {
	lh_arena_t *arena; /* decode: where everything goes */
	lh_error_t *err;
	int n; /* frames in use */
	frame_t path[LH_CODEC_MAX_DEPTH + 2];
} ctx_t;

static void ctx_init(ctx_t *c, lh_arena_t *arena, lh_error_t *err)
{
	c->arena = arena;
	c->err = err;
	c->n = 0;
}

/* Frames beyond the array are not recorded (the depth check fails first); pop stays balanced. */
static void push_key(ctx_t *c, const char *key, size_t len)
{
	if (c->n < (int)(sizeof(c->path) / sizeof(c->path[0])))
		c->path[c->n] = (frame_t){.key = key, .key_len = len};
	c->n++;
}

static void push_index(ctx_t *c, size_t i)
{
	if (c->n < (int)(sizeof(c->path) / sizeof(c->path[0])))
		c->path[c->n] = (frame_t){.key = NULL, .index = i};
	c->n++;
}

static void pop(ctx_t *c) { c->n--; }

/* Printable, bounded copy of untrusted bytes for messages. */
static size_t put_sanitized(char *out, size_t cap, const char *s, size_t len, size_t max)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 4 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (i == max) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		out[o++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') ? (char)ch : '?';
	}
	out[o] = 0;
	return o;
}

static void format_path(const ctx_t *c, char *out, size_t cap)
{
	size_t o = 0;
	int n = c->n < (int)(sizeof(c->path) / sizeof(c->path[0]))
			? c->n
			: (int)(sizeof(c->path) / sizeof(c->path[0]));
	out[0] = 0;
	for (int i = 0; i < n && o + 24 < cap; i++) {
		const frame_t *f = &c->path[i];
		if (f->key) {
			if (i > 0)
				out[o++] = '.';
			o += put_sanitized(out + o, cap - o - 4, f->key, f->key_len, 40);
		} else {
			int w = snprintf(out + o, cap - o, "[%zu]", f->index);
			if (w > 0)
				o += (size_t)w;
		}
	}
	if (o >= cap)
		o = cap - 1;
	out[o] = 0;
}

static lh_err_t fail(ctx_t *c, lh_err_t code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static lh_err_t fail(ctx_t *c, lh_err_t code, const char *fmt, ...)
{
	char path[200], msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	format_path(c, path, sizeof(path));
	if (path[0])
		return lh_error_set(c->err, code, "%s: %s", path, msg);
	return lh_error_set(c->err, code, "%s", msg);
}

/* ---------------------------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------------------------- */

enum { UTF8_BAD = -1, UTF8_NUL = -2 };

/* Number of code points of s, or UTF8_BAD (not UTF-8 per RFC 3629: overlong forms, surrogates and
 * values past U+10FFFF are rejected) or UTF8_NUL (contains a NUL byte: PostgreSQL text and jsonb
 * cannot hold it). */
static int64_t utf8_check(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	int64_t cps = 0;
	while (i < len) {
		if (len - i >= 8) { /* fast path: 8 ASCII bytes, none NUL */
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (!(w & 0x8080808080808080ull) &&
			    !((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull)) {
				i += 8;
				cps += 8;
				continue;
			}
		}
		unsigned char b = s[i];
		if (b < 0x80) {
			if (!b)
				return UTF8_NUL;
			i++;
		} else {
			size_t need;
			unsigned char lo = 0x80, hi = 0xbf;
			if (b >= 0xc2 && b <= 0xdf)
				need = 1;
			else if (b >= 0xe0 && b <= 0xef) {
				need = 2;
				if (b == 0xe0)
					lo = 0xa0;
				else if (b == 0xed)
					hi = 0x9f;
			} else if (b >= 0xf0 && b <= 0xf4) {
				need = 3;
				if (b == 0xf0)
					lo = 0x90;
				else if (b == 0xf4)
					hi = 0x8f;
			} else
				return UTF8_BAD;
			if (len - i - 1 < need)
				return UTF8_BAD;
			if (s[i + 1] < lo || s[i + 1] > hi)
				return UTF8_BAD;
			for (size_t k = 2; k <= need; k++)
				if ((s[i + k] & 0xc0) != 0x80)
					return UTF8_BAD;
			i += need + 1;
		}
		cps++;
	}
	return cps;
}

static lh_err_t check_text(ctx_t *c, const char *s, size_t len, int64_t *ret_cps)
{
	int64_t cps = utf8_check(s, len);
	if (cps == UTF8_NUL)
		return fail(c, LH_ERR_DECODE, "string contains a NUL byte");
	if (cps < 0)
		return fail(c, LH_ERR_DECODE, "invalid UTF-8");
	*ret_cps = cps;
	return LH_OK;
}

/* Check a string value against its field; *ret is the enum's static string for enums, else NULL
 * (the caller copies s). */
static lh_err_t check_string(ctx_t *c, const lh_field_desc_t *f, const char *s, size_t len,
			     const char **ret_enum)
{
	int64_t cps;
	lh_err_t rc = check_text(c, s, len, &cps);
	if (rc)
		return rc;
	if ((f->flags & LH_FIELD_MIN) && cps < f->imin)
		return fail(c, LH_ERR_SCHEMA, "string shorter than the minimum length %" PRId64,
			    f->imin);
	if ((f->flags & LH_FIELD_MAX) && cps > f->imax)
		return fail(c, LH_ERR_SCHEMA, "string longer than the maximum length %" PRId64,
			    f->imax);
	*ret_enum = NULL;
	if (f->enum_values) {
		for (uint32_t i = 0; i < f->n_enum; i++) {
			const char *e = f->enum_values[i];
			if (strlen(e) == len && memcmp(e, s, len) == 0) {
				*ret_enum = e;
				return LH_OK;
			}
		}
		char shown[64];
		put_sanitized(shown, sizeof(shown), s, len, 48);
		return fail(c, LH_ERR_SCHEMA, "unknown value \"%s\"", shown);
	}
	return LH_OK;
}

static lh_err_t check_int(ctx_t *c, const lh_field_desc_t *f, int64_t v)
{
	if ((f->flags & LH_FIELD_MIN) && v < f->imin)
		return fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is below the minimum %" PRId64, v,
			    f->imin);
	if ((f->flags & LH_FIELD_MAX) && v > f->imax)
		return fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is above the maximum %" PRId64, v,
			    f->imax);
	return LH_OK;
}

static lh_err_t check_number(ctx_t *c, const lh_field_desc_t *f, double v)
{
	if (!isfinite(v))
		return fail(c, LH_ERR_SCHEMA, "number is not finite");
	if ((f->flags & LH_FIELD_MIN) && v < f->dmin)
		return fail(c, LH_ERR_SCHEMA, "value %g is below the minimum %g", v, f->dmin);
	if ((f->flags & LH_FIELD_MAX) && v > f->dmax)
		return fail(c, LH_ERR_SCHEMA, "value %g is above the maximum %g", v, f->dmax);
	return LH_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Descriptor helpers
 * ------------------------------------------------------------------------------------------- */

static size_t elem_size(const lh_field_desc_t *f)
{
	switch (f->kind) {
	case LH_KIND_STRING:
		return sizeof(const char *);
	case LH_KIND_INT:
		return sizeof(int64_t);
	case LH_KIND_NUMBER:
		return sizeof(double);
	case LH_KIND_BOOL:
		return sizeof(bool);
	case LH_KIND_STRUCT:
		return f->sub->size;
	case LH_KIND_JSON:
		return sizeof(json_t *);
	}
	return 0;
}

/* Field of desc named key, trying *hint first (encoders write fields in descriptor order, so the
 * next key is almost always the next field). */
static int find_field(const lh_desc_t *desc, const char *key, size_t len, uint32_t *hint)
{
	uint32_t n = desc->n_fields;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (*hint + k) % n;
		const lh_field_desc_t *f = &desc->fields[i];
		if (f->name_len == len && memcmp(f->name, key, len) == 0) {
			*hint = i + 1 < n ? i + 1 : 0;
			return (int)i;
		}
	}
	return -1;
}

static lh_err_t missing_required(ctx_t *c, const lh_desc_t *desc, uint64_t seen)
{
	uint64_t missing = desc->required_mask & ~seen;
	if (!missing)
		return LH_OK;
	for (uint32_t i = 0; i < desc->n_fields; i++) {
		if (missing & ((uint64_t)1 << i)) {
			lh_err_t rc;
			push_key(c, desc->fields[i].name, desc->fields[i].name_len);
			rc = fail(c, LH_ERR_SCHEMA, "missing required field");
			pop(c);
			return rc;
		}
	}
	return LH_OK;
}

static inline void array_get(const char *base, const lh_field_desc_t *f, size_t *ret_n, char **ret_v)
{
	void *v;
	memcpy(ret_n, base + f->offset + offsetof(lh_array_t, n), sizeof(size_t));
	memcpy(&v, base + f->offset + offsetof(lh_array_t, v), sizeof(void *));
	*ret_v = v;
}

static inline void array_set(char *base, const lh_field_desc_t *f, size_t n, void *v)
{
	memcpy(base + f->offset + offsetof(lh_array_t, n), &n, sizeof(size_t));
	memcpy(base + f->offset + offsetof(lh_array_t, v), &v, sizeof(void *));
}

/* Whether an encoder writes the field: required fields always, optional ones when present. */
static bool field_present(const char *base, const lh_field_desc_t *f)
{
	const char *p = base + f->offset;
	if (f->flags & LH_FIELD_REQUIRED)
		return true;
	if (f->flags & LH_FIELD_ARRAY) {
		size_t n;
		memcpy(&n, p + offsetof(lh_array_t, n), sizeof(n));
		return n > 0;
	}
	switch (f->kind) {
	case LH_KIND_STRING:
		return *(const char *const *)p != NULL;
	case LH_KIND_INT:
		return *(const int64_t *)p != 0;
	case LH_KIND_NUMBER:
		return *(const double *)p != 0;
	case LH_KIND_BOOL:
		return *(const bool *)p;
	case LH_KIND_STRUCT:
		return *(const bool *)(base + f->has_offset);
	case LH_KIND_JSON:
		return *(json_t *const *)p != NULL;
	}
	return false;
}

static void json_release(void *j) { json_decref(j); }

/* ---------------------------------------------------------------------------------------------
 * msgpack: structural scan
 * ------------------------------------------------------------------------------------------- */

typedef struct scan_level {
	uint64_t left; /* items still to read (a map of n pairs has 2n) */
	uint64_t done; /* items read */
	bool map;
	const char *key; /* maps: the key of the value being read */
	size_t key_len;
} scan_level_t;

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void scan_path(ctx_t *c, const scan_level_t *lv, int top)
{
	c->n = 0;
	for (int i = 0; i < top; i++) {
		if (lv[i].map)
			push_key(c, lv[i].key ? lv[i].key : "?", lv[i].key ? lv[i].key_len : 1);
		else
			push_index(c, (size_t)lv[i].done);
	}
}

static lh_err_t mp_scan(ctx_t *c, const unsigned char *d, size_t len)
{
	scan_level_t lv[LH_CODEC_MAX_DEPTH];
	int top = 0;
	size_t pos = 0;

	for (;;) {
		unsigned char b;
		size_t hdr = 1;	    /* header bytes */
		uint64_t skip = 0;  /* payload bytes */
		uint64_t items = 0; /* container: items to read */
		bool container = false, is_str = false;

		if (pos >= len)
			goto truncated;
		b = d[pos];
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
			/* fixint, nil, bool */
		} else if (b <= 0x8f) {
			container = true;
			items = 2u * (b & 0x0f);
		} else if (b <= 0x9f) {
			container = true;
			items = b & 0x0f;
		} else if (b <= 0xbf) {
			is_str = true;
			skip = b & 0x1f;
		} else {
			static const unsigned char fixed[] = {
				/* c4..df: payload bytes after the type byte for fixed-size types */
				[0xca - 0xc4] = 4, [0xcb - 0xc4] = 8, [0xcc - 0xc4] = 1, [0xcd - 0xc4] = 2,
				[0xce - 0xc4] = 4, [0xcf - 0xc4] = 8, [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2,
				[0xd2 - 0xc4] = 4, [0xd3 - 0xc4] = 8, [0xd4 - 0xc4] = 2, [0xd5 - 0xc4] = 3,
				[0xd6 - 0xc4] = 5, [0xd7 - 0xc4] = 9, [0xd8 - 0xc4] = 17,
			};
			int lenbytes = 0;
			switch (b) {
			case 0xc1:
				scan_path(c, lv, top);
				return fail(c, LH_ERR_DECODE, "invalid msgpack byte 0xc1 at offset %zu",
					    pos);
			case 0xc4: case 0xd9: lenbytes = 1; break;
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1; break;
			case 0xc8: lenbytes = 2; break;
			case 0xc9: lenbytes = 4; break;
			case 0xdc: case 0xde: lenbytes = 2; container = true; break;
			case 0xdd: case 0xdf: lenbytes = 4; container = true; break;
			default:
				skip = fixed[b - 0xc4];
			}
			if (lenbytes) {
				uint64_t n;
				if (len - pos - 1 < (size_t)lenbytes)
					goto truncated;
				n = be(d + pos + 1, lenbytes);
				hdr += (size_t)lenbytes;
				if (container)
					items = (b == 0xde || b == 0xdf) ? 2 * n : n;
				else
					skip = n + (b >= 0xc7 && b <= 0xc9 ? 1 : 0); /* ext: type byte */
				is_str = b >= 0xd9 && b <= 0xdb;
			}
		}
		if (len - pos < hdr)
			goto truncated;
		/* a map key must be a string */
		if (top > 0 && lv[top - 1].map && lv[top - 1].done % 2 == 0) {
			if (!is_str) {
				lv[top - 1].key = NULL;
				scan_path(c, lv, top - 1);
				return fail(c, LH_ERR_DECODE, "map key is not a string");
			}
			if (len - pos - hdr < skip)
				goto truncated;
			lv[top - 1].key = (const char *)d + pos + hdr;
			lv[top - 1].key_len = (size_t)skip;
		}
		if (container) {
			if (top + 1 > LH_CODEC_MAX_DEPTH) {
				scan_path(c, lv, top);
				return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
					    LH_CODEC_MAX_DEPTH);
			}
			if (items > len - pos - hdr) /* every item takes at least one byte */
				goto truncated;
			pos += hdr;
			if (items > 0) {
				lv[top++] = (scan_level_t){.left = items, .map = (b & 0xf0) == 0x80 ||
										 b == 0xde || b == 0xdf};
				continue;
			}
		} else {
			if (len - pos - hdr < skip)
				goto truncated;
			pos += hdr + (size_t)skip;
		}
		/* one item complete: close every container it completes */
		while (top > 0) {
			scan_level_t *l = &lv[top - 1];
			l->done++;
			if (--l->left > 0)
				break;
			top--;
		}
		if (top == 0)
			break;
	}
	if (pos != len) {
		c->n = 0;
		return fail(c, LH_ERR_DECODE, "trailing bytes after the event (%zu of %zu bytes used)",
			    pos, len);
	}
	return LH_OK;

truncated:
	scan_path(c, lv, top);
	return fail(c, LH_ERR_DECODE, "truncated msgpack (%zu bytes)", len);
}

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

static lh_err_t mp_wrong_type(ctx_t *c, const char *want, const msgpack_object *o)
{
	return fail(c, LH_ERR_SCHEMA, "expected %s, got %s", want, mp_type_name(o));
}

static lh_err_t mp_int(ctx_t *c, const msgpack_object *o, int64_t *ret)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return fail(c, LH_ERR_SCHEMA, "integer %" PRIu64 " out of range", o->via.u64);
		*ret = (int64_t)o->via.u64;
		return LH_OK;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*ret = o->via.i64;
		return LH_OK;
	}
	return mp_wrong_type(c, "integer", o);
}

static lh_err_t mp_to_json(ctx_t *c, const msgpack_object *o, json_t **ret);

static lh_err_t mp_json_container(ctx_t *c, const msgpack_object *o, json_t **ret)
{
	json_t *j;
	lh_err_t rc = LH_OK;
	if (c->n + 1 > LH_CODEC_MAX_DEPTH)
		return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		j = json_array();
		if (!j)
			return fail(c, LH_ERR_NOMEM, "out of memory");
		for (uint32_t i = 0; i < o->via.array.size && !rc; i++) {
			json_t *v;
			push_index(c, i);
			rc = mp_to_json(c, &o->via.array.ptr[i], &v);
			if (!rc && json_array_append_new(j, v))
				rc = fail(c, LH_ERR_NOMEM, "out of memory");
			pop(c);
		}
	} else {
		j = json_object();
		if (!j)
			return fail(c, LH_ERR_NOMEM, "out of memory");
		for (uint32_t i = 0; i < o->via.map.size && !rc; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			json_t *v;
			int64_t cps;
			if (k->type != MSGPACK_OBJECT_STR) {
				rc = fail(c, LH_ERR_DECODE, "map key is not a string");
				break;
			}
			push_key(c, k->via.str.ptr, k->via.str.size);
			rc = check_text(c, k->via.str.ptr, k->via.str.size, &cps);
			if (!rc && json_object_getn(j, k->via.str.ptr, k->via.str.size))
				rc = fail(c, LH_ERR_DECODE, "duplicate key");
			if (!rc)
				rc = mp_to_json(c, &o->via.map.ptr[i].val, &v);
			if (!rc && json_object_setn_new_nocheck(j, k->via.str.ptr, k->via.str.size, v))
				rc = fail(c, LH_ERR_NOMEM, "out of memory");
			pop(c);
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
static lh_err_t mp_to_json(ctx_t *c, const msgpack_object *o, json_t **ret)
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
			return fail(c, LH_ERR_SCHEMA, "number is not finite");
		j = json_real(o->via.f64);
		break;
	case MSGPACK_OBJECT_STR: {
		int64_t cps;
		lh_err_t rc = check_text(c, o->via.str.ptr, o->via.str.size, &cps);
		if (rc)
			return rc;
		j = json_stringn_nocheck(o->via.str.ptr, o->via.str.size);
		break;
	}
	case MSGPACK_OBJECT_ARRAY:
	case MSGPACK_OBJECT_MAP:
		return mp_json_container(c, o, ret);
	default:
		return fail(c, LH_ERR_SCHEMA, "%s has no JSON form", mp_type_name(o));
	}
	if (!j)
		return fail(c, LH_ERR_NOMEM, "out of memory");
	*ret = j;
	return LH_OK;
}

static lh_err_t mp_struct(ctx_t *c, const lh_desc_t *desc, const msgpack_object *o, char *base);

/* One value of field f (an element, for arrays) into dst. */
static lh_err_t mp_value(ctx_t *c, const lh_field_desc_t *f, const msgpack_object *o, char *dst)
{
	lh_err_t rc;
	switch (f->kind) {
	case LH_KIND_STRING: {
		const char *interned;
		if (o->type != MSGPACK_OBJECT_STR)
			return mp_wrong_type(c, "string", o);
		rc = check_string(c, f, o->via.str.ptr, o->via.str.size, &interned);
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
			return fail(c, LH_ERR_SCHEMA, "expected integer, got float");
		if ((rc = mp_int(c, o, &v)) || (rc = check_int(c, f, v)))
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
		if ((rc = check_number(c, f, v)))
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
		lh_arena_on_free(c->arena, json_release, j);
		*(json_t **)dst = j;
		return LH_OK;
	}
	}
	return fail(c, LH_ERR_INTERNAL, "bad descriptor kind %d", f->kind);
}

static lh_err_t mp_field(ctx_t *c, const lh_field_desc_t *f, const msgpack_object *o, char *base)
{
	lh_err_t rc;
	if (f->flags & LH_FIELD_ARRAY) {
		size_t es = elem_size(f), n;
		char *v = NULL;
		if (o->type != MSGPACK_OBJECT_ARRAY)
			return mp_wrong_type(c, "array", o);
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		n = o->via.array.size;
		if (n)
			v = lh_arena_alloc(c->arena, n * es);
		for (size_t i = 0; i < n; i++) {
			push_index(c, i);
			rc = mp_value(c, f, &o->via.array.ptr[i], v + i * es);
			pop(c);
			if (rc)
				return rc;
		}
		array_set(base, f, n, v);
		return LH_OK;
	}
	if ((rc = mp_value(c, f, o, base + f->offset)))
		return rc;
	if (f->kind == LH_KIND_STRUCT)
		*(bool *)(base + f->has_offset) = true;
	return LH_OK;
}

static lh_err_t mp_struct(ctx_t *c, const lh_desc_t *desc, const msgpack_object *o, char *base)
{
	uint64_t seen = 0;
	uint32_t hint = 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return mp_wrong_type(c, "map", o);
	if (c->n + 1 > LH_CODEC_MAX_DEPTH)
		return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		lh_err_t rc;
		int fi;
		if (k->type != MSGPACK_OBJECT_STR)
			return fail(c, LH_ERR_DECODE, "map key is not a string");
		fi = find_field(desc, k->via.str.ptr, k->via.str.size, &hint);
		push_key(c, k->via.str.ptr, k->via.str.size);
		if (fi < 0) {
			rc = desc->strict ? fail(c, LH_ERR_SCHEMA, "unknown key") : LH_OK;
		} else if (seen & ((uint64_t)1 << fi)) {
			rc = fail(c, LH_ERR_DECODE, "duplicate key");
		} else {
			seen |= (uint64_t)1 << fi;
			rc = mp_field(c, &desc->fields[fi], &o->via.map.ptr[i].val, base);
		}
		pop(c);
		if (rc)
			return rc;
	}
	return missing_required(c, desc, seen);
}

/* ---------------------------------------------------------------------------------------------
 * Event types
 * ------------------------------------------------------------------------------------------- */

const char *lh_event_type_name(lh_event_type_t type)
{
	if ((int)type <= LH_EV__NONE || (int)type >= LH_EV__COUNT)
		return NULL;
	return lh_event_types[type].name;
}

const lh_desc_t *lh_event_body_desc(lh_event_type_t type)
{
	if ((int)type <= LH_EV__NONE || (int)type >= LH_EV__COUNT)
		return NULL;
	return lh_event_types[type].body;
}

/* Binary search of the sorted table by a counted name. */
static lh_event_type_t type_lookup(const char *s, size_t len)
{
	int lo = 1, hi = LH_EV__COUNT - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		const char *name = lh_event_types[mid].name;
		size_t nl = strlen(name);
		int cmp = memcmp(s, name, len < nl ? len : nl);
		if (cmp == 0)
			cmp = len < nl ? -1 : len > nl ? 1 : 0;
		if (cmp == 0)
			return (lh_event_type_t)mid;
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return LH_EV__NONE;
}

lh_err_t lh_event_type_parse(const char *name, lh_event_type_t *ret_type)
{
	lh_event_type_t t;
	if (!name)
		return LH_ERR_NOT_FOUND;
	t = type_lookup(name, strlen(name));
	if (t == LH_EV__NONE)
		return LH_ERR_NOT_FOUND;
	*ret_type = t;
	return LH_OK;
}

/* ---------------------------------------------------------------------------------------------
 * msgpack: the envelope
 * ------------------------------------------------------------------------------------------- */

enum env_key {
	ENV_V,
	ENV_ID,
	ENV_TYPE,
	ENV_PLAN_ID,
	ENV_TASK_NO,
	ENV_ATTEMPT,
	ENV_TS_US,
	ENV_TENANT,
	ENV_ACTOR,
	ENV_CAUSATION_ID,
	ENV_BODY,
	ENV__COUNT
};

static const struct {
	const char *name;
	size_t len;
} env_keys[ENV__COUNT] = {
	{"v", 1},	    {"id", 2},	   {"type", 4},	  {"plan_id", 7},      {"task_no", 7},
	{"attempt", 7},	    {"ts_us", 5},  {"tenant", 6}, {"actor", 5},	       {"causation_id", 12},
	{"body", 4},
};

#define ENV_REQUIRED                                                                              \
	((1u << ENV_V) | (1u << ENV_ID) | (1u << ENV_TYPE) | (1u << ENV_PLAN_ID) |                \
	 (1u << ENV_TS_US) | (1u << ENV_ACTOR) | (1u << ENV_BODY))

static int env_key_find(const char *s, size_t len)
{
	for (int i = 0; i < ENV__COUNT; i++)
		if (env_keys[i].len == len && memcmp(env_keys[i].name, s, len) == 0)
			return i;
	return -1;
}

static lh_err_t env_missing(ctx_t *c, unsigned seen)
{
	for (int i = 0; i < ENV__COUNT; i++) {
		if ((ENV_REQUIRED & (1u << i)) && !(seen & (1u << i))) {
			lh_err_t rc;
			push_key(c, env_keys[i].name, env_keys[i].len);
			rc = fail(c, LH_ERR_SCHEMA, "missing required field");
			pop(c);
			return rc;
		}
	}
	return LH_OK;
}

static lh_err_t check_version(ctx_t *c, int64_t v)
{
	if (v != LH_ENVELOPE_VERSION)
		return fail(c, LH_ERR_UNSUPPORTED, "unsupported envelope version %" PRId64, v);
	return LH_OK;
}

static lh_err_t check_task_no(ctx_t *c, int64_t v)
{
	if (v < 0)
		return fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is below the minimum 0", v);
	return LH_OK;
}

static lh_err_t check_attempt(ctx_t *c, int64_t v)
{
	if (v < 1)
		return fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is below the minimum 1", v);
	return LH_OK;
}

static lh_err_t check_tenant(ctx_t *c, const char *s, size_t len)
{
	int64_t cps;
	lh_err_t rc = check_text(c, s, len, &cps);
	if (!rc && cps > LH_ENVELOPE_TENANT_MAX_LEN)
		rc = fail(c, LH_ERR_SCHEMA, "string longer than the maximum length %d",
			  LH_ENVELOPE_TENANT_MAX_LEN);
	return rc;
}

static lh_err_t unknown_type(ctx_t *c, const char *s, size_t len)
{
	char shown[64];
	put_sanitized(shown, sizeof(shown), s, len, 48);
	return fail(c, LH_ERR_UNSUPPORTED, "unknown event type \"%s\"", shown);
}

static lh_err_t mp_id(ctx_t *c, const msgpack_object *o, lh_id_t *ret)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != 16)
		return fail(c, LH_ERR_SCHEMA, "expected 16-byte bin, got %s%s", mp_type_name(o),
			    o->type == MSGPACK_OBJECT_BIN ? " of another length" : "");
	memcpy(ret->b, o->via.bin.ptr, 16);
	return LH_OK;
}

static lh_err_t mp_envelope_key(ctx_t *c, int k, const msgpack_object *o, lh_event_t *ev)
{
	lh_err_t rc;
	int64_t v = 0;
	switch (k) {
	case ENV_V:
		if ((rc = mp_int(c, o, &v)) || (rc = check_version(c, v)))
			return rc;
		ev->v = (int)v;
		return LH_OK;
	case ENV_ID:
		return mp_id(c, o, &ev->id);
	case ENV_TYPE:
		if (o->type != MSGPACK_OBJECT_STR)
			return mp_wrong_type(c, "string", o);
		ev->type = type_lookup(o->via.str.ptr, o->via.str.size);
		if (ev->type == LH_EV__NONE)
			return unknown_type(c, o->via.str.ptr, o->via.str.size);
		return LH_OK;
	case ENV_PLAN_ID:
		return mp_id(c, o, &ev->plan_id);
	case ENV_TASK_NO:
		if ((rc = mp_int(c, o, &v)) || (rc = check_task_no(c, v)))
			return rc;
		ev->task_no = v;
		return LH_OK;
	case ENV_ATTEMPT:
		if ((rc = mp_int(c, o, &v)) || (rc = check_attempt(c, v)))
			return rc;
		ev->attempt = v;
		return LH_OK;
	case ENV_TS_US:
		return mp_int(c, o, &ev->ts_us);
	case ENV_TENANT:
		if (o->type != MSGPACK_OBJECT_STR)
			return mp_wrong_type(c, "string", o);
		if ((rc = check_tenant(c, o->via.str.ptr, o->via.str.size)))
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

static lh_event_t *event_alloc(lh_arena_t *arena)
{
	lh_event_t *ev = lh_arena_alloc(arena, sizeof(*ev));
	ev->arena = arena;
	ev->task_no = LH_NO_TASK;
	return ev;
}

static lh_err_t mp_envelope(ctx_t *c, const msgpack_object *o, lh_event_t *ev)
{
	const msgpack_object *body = NULL;
	const lh_desc_t *desc;
	unsigned seen = 0;
	lh_err_t rc;

	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(c, LH_ERR_SCHEMA, "expected a map at the top level, got %s",
			    mp_type_name(o));
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		int ki;
		if (k->type != MSGPACK_OBJECT_STR)
			return fail(c, LH_ERR_DECODE, "map key is not a string");
		ki = env_key_find(k->via.str.ptr, k->via.str.size);
		push_key(c, k->via.str.ptr, k->via.str.size);
		if (ki < 0)
			rc = fail(c, LH_ERR_SCHEMA, "unknown key");
		else if (seen & (1u << ki))
			rc = fail(c, LH_ERR_DECODE, "duplicate key");
		else {
			seen |= 1u << ki;
			if (ki == ENV_BODY)
				body = &o->via.map.ptr[i].val;
			rc = mp_envelope_key(c, ki, &o->via.map.ptr[i].val, ev);
		}
		pop(c);
		if (rc)
			return rc;
	}
	if ((rc = env_missing(c, seen)))
		return rc;
	desc = lh_event_body_desc(ev->type);
	ev->body = lh_arena_alloc(c->arena, desc->size);
	push_key(c, "body", 4);
	rc = mp_struct(c, desc, body, ev->body);
	pop(c);
	return rc;
}

lh_err_t lh_event_decode(const void *data, size_t len, lh_event_t **ret_ev, lh_error_t *err)
{
	msgpack_unpacked up;
	msgpack_unpack_return ur;
	lh_arena_t *arena;
	lh_event_t *ev;
	size_t off = 0;
	ctx_t c;
	lh_err_t rc;

	ctx_init(&c, NULL, err);
	if (len > LH_EVENT_MAX_BYTES)
		return fail(&c, LH_ERR_TOO_LARGE, "event of %zu bytes exceeds the limit of %d bytes",
			    len, LH_EVENT_MAX_BYTES);
	if (len == 0)
		return fail(&c, LH_ERR_DECODE, "empty input");
	if ((rc = mp_scan(&c, data, len)))
		return rc;
	c.n = 0;

	msgpack_unpacked_init(&up);
	ur = msgpack_unpack_next(&up, data, len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		rc = fail(&c, ur == MSGPACK_UNPACK_NOMEM_ERROR ? LH_ERR_NOMEM : LH_ERR_DECODE,
			  "could not unpack msgpack (%d)", (int)ur);
		goto out_destroy_unpacked;
	}
	/* One block fits a typical event: the strings are at most len bytes, plus structs. */
	arena = lh_arena_new(2 * len + 1024);
	c.arena = arena;
	ev = event_alloc(arena);
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

lh_event_t *lh_event_free(lh_event_t *ev)
{
	/* a caller-built event (arena NULL) owns nothing here */
	if (ev && ev->arena)
		lh_arena_free(ev->arena);
	return NULL;
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
	ctx_t c;
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
			return fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		msgpack_pack_map(&e->pk, json_object_size(j));
		for (it = json_object_iter((json_t *)j); it && !rc;
		     it = json_object_iter_next((json_t *)j, it)) {
			const char *k = json_object_iter_key(it);
			size_t kl = json_object_iter_key_len(it);
			push_key(&e->c, k, kl);
			rc = check_text(&e->c, k, kl, &cps);
			if (!rc) {
				pack_cstr(&e->pk, k, kl);
				rc = pack_json(e, json_object_iter_value(it));
			}
			pop(&e->c);
		}
		return rc;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		if (e->c.n + 1 > LH_CODEC_MAX_DEPTH)
			return fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		msgpack_pack_array(&e->pk, n);
		for (size_t i = 0; i < n && !rc; i++) {
			push_index(&e->c, i);
			rc = pack_json(e, json_array_get(j, i));
			pop(&e->c);
		}
		return rc;
	}
	case JSON_STRING: {
		const char *s = json_string_value(j);
		size_t len = json_string_length(j);
		if ((rc = check_text(&e->c, s, len, &cps)))
			return rc;
		pack_cstr(&e->pk, s, len);
		return LH_OK;
	}
	case JSON_INTEGER:
		msgpack_pack_int64(&e->pk, (int64_t)json_integer_value(j));
		return LH_OK;
	case JSON_REAL:
		if (!isfinite(json_real_value(j)))
			return fail(&e->c, LH_ERR_SCHEMA, "number is not finite");
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
	return fail(&e->c, LH_ERR_INTERNAL, "unknown JSON type");
}

static lh_err_t pack_struct(enc_t *e, const lh_desc_t *desc, const char *base);

static lh_err_t pack_value(enc_t *e, const lh_field_desc_t *f, const char *p)
{
	lh_err_t rc;
	switch (f->kind) {
	case LH_KIND_STRING: {
		const char *s = *(const char *const *)p, *interned;
		if (!s)
			return fail(&e->c, LH_ERR_SCHEMA, "missing string (NULL)");
		if ((rc = check_string(&e->c, f, s, strlen(s), &interned)))
			return rc;
		pack_cstr(&e->pk, s, strlen(s));
		return LH_OK;
	}
	case LH_KIND_INT: {
		int64_t v = *(const int64_t *)p;
		if ((rc = check_int(&e->c, f, v)))
			return rc;
		msgpack_pack_int64(&e->pk, v);
		return LH_OK;
	}
	case LH_KIND_NUMBER: {
		double v = *(const double *)p;
		if ((rc = check_number(&e->c, f, v)))
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
			return fail(&e->c, LH_ERR_SCHEMA, "missing JSON value (NULL)");
		return pack_json(e, j);
	}
	}
	return fail(&e->c, LH_ERR_INTERNAL, "bad descriptor kind %d", f->kind);
}

static lh_err_t pack_field(enc_t *e, const lh_field_desc_t *f, const char *base)
{
	lh_err_t rc = LH_OK;
	if (f->flags & LH_FIELD_ARRAY) {
		size_t n, es = elem_size(f);
		char *v;
		array_get(base, f, &n, &v);
		if (n && !v)
			return fail(&e->c, LH_ERR_SCHEMA, "array of %zu elements has no storage", n);
		if (e->c.n + 1 > LH_CODEC_MAX_DEPTH)
			return fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		msgpack_pack_array(&e->pk, n);
		for (size_t i = 0; i < n && !rc; i++) {
			push_index(&e->c, i);
			rc = pack_value(e, f, v + i * es);
			pop(&e->c);
		}
		return rc;
	}
	if (f->kind == LH_KIND_STRUCT && !*(const bool *)(base + f->has_offset))
		return fail(&e->c, LH_ERR_SCHEMA, "missing required field (has_%s is false)", f->name);
	if ((f->kind == LH_KIND_STRING && !*(const char *const *)(base + f->offset)) ||
	    (f->kind == LH_KIND_JSON && !*(json_t *const *)(base + f->offset)))
		return fail(&e->c, LH_ERR_SCHEMA, "missing required field");
	return pack_value(e, f, base + f->offset);
}

static lh_err_t pack_struct(enc_t *e, const lh_desc_t *desc, const char *base)
{
	uint32_t count = 0;
	lh_err_t rc = LH_OK;
	if (e->c.n + 1 > LH_CODEC_MAX_DEPTH)
		return fail(&e->c, LH_ERR_SCHEMA, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	for (uint32_t i = 0; i < desc->n_fields; i++)
		count += field_present(base, &desc->fields[i]);
	msgpack_pack_map(&e->pk, count);
	for (uint32_t i = 0; i < desc->n_fields && !rc; i++) {
		const lh_field_desc_t *f = &desc->fields[i];
		if (!field_present(base, f))
			continue;
		push_key(&e->c, f->name, f->name_len);
		pack_cstr(&e->pk, f->name, f->name_len);
		rc = pack_field(e, f, base);
		pop(&e->c);
	}
	return rc;
}

static void pack_key(enc_t *e, int k) { pack_cstr(&e->pk, env_keys[k].name, env_keys[k].len); }

static void pack_id(enc_t *e, const lh_id_t *id)
{
	msgpack_pack_bin(&e->pk, 16);
	msgpack_pack_bin_body(&e->pk, id->b, 16);
}

/* Envelope fields a caller can get wrong, checked before anything is written. */
static lh_err_t check_event(ctx_t *c, const lh_event_t *ev)
{
	lh_err_t rc = LH_OK;
	if (!ev)
		return fail(c, LH_ERR_INVALID, "no event");
	push_key(c, "v", 1);
	rc = check_version(c, ev->v);
	pop(c);
	if (rc)
		return rc;
	push_key(c, "type", 4);
	if (!lh_event_type_name(ev->type))
		rc = fail(c, LH_ERR_SCHEMA, "unknown event type %d", (int)ev->type);
	pop(c);
	if (rc)
		return rc;
	if (ev->task_no != LH_NO_TASK) {
		push_key(c, "task_no", 7);
		rc = check_task_no(c, ev->task_no);
		pop(c);
		if (rc)
			return rc;
	}
	if (ev->attempt != 0) {
		push_key(c, "attempt", 7);
		rc = check_attempt(c, ev->attempt);
		pop(c);
		if (rc)
			return rc;
	}
	if (ev->tenant) {
		push_key(c, "tenant", 6);
		rc = check_tenant(c, ev->tenant, strlen(ev->tenant));
		pop(c);
		if (rc)
			return rc;
	}
	if (!ev->body) {
		push_key(c, "body", 4);
		rc = fail(c, LH_ERR_SCHEMA, "missing required field");
		pop(c);
	}
	return rc;
}

lh_err_t lh_event_encode(const lh_event_t *ev, lh_buf_t *out, lh_error_t *err)
{
	enc_t e;
	const char *type_name;
	uint32_t n;
	lh_err_t rc;

	ctx_init(&e.c, NULL, err);
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
	push_key(&e.c, "actor", 5);
	rc = pack_struct(&e, &lh_actor_desc, (const char *)&ev->actor);
	pop(&e.c);
	if (rc)
		goto out_truncate;
	if (!lh_id_is_zero(&ev->causation_id)) {
		pack_key(&e, ENV_CAUSATION_ID);
		pack_id(&e, &ev->causation_id);
	}
	pack_key(&e, ENV_BODY);
	push_key(&e.c, "body", 4);
	rc = pack_struct(&e, lh_event_body_desc(ev->type), ev->body);
	pop(&e.c);
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

static lh_err_t js_wrong_type(ctx_t *c, const char *want, const json_t *j)
{
	return fail(c, LH_ERR_SCHEMA, "expected %s, got %s", want, js_type_name(j));
}

/* A validated deep copy, so the event owns its values whatever the caller does with j later. */
static lh_err_t js_copy(ctx_t *c, const json_t *j, json_t **ret)
{
	json_t *r = NULL;
	lh_err_t rc = LH_OK;
	int64_t cps;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		void *it;
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		if (!(r = json_object()))
			return fail(c, LH_ERR_NOMEM, "out of memory");
		for (it = json_object_iter((json_t *)j); it && !rc;
		     it = json_object_iter_next((json_t *)j, it)) {
			const char *k = json_object_iter_key(it);
			size_t kl = json_object_iter_key_len(it);
			json_t *v;
			push_key(c, k, kl);
			rc = check_text(c, k, kl, &cps);
			if (!rc)
				rc = js_copy(c, json_object_iter_value(it), &v);
			if (!rc && json_object_setn_new_nocheck(r, k, kl, v))
				rc = fail(c, LH_ERR_NOMEM, "out of memory");
			pop(c);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		if (!(r = json_array()))
			return fail(c, LH_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < n && !rc; i++) {
			json_t *v;
			push_index(c, i);
			rc = js_copy(c, json_array_get(j, i), &v);
			if (!rc && json_array_append_new(r, v))
				rc = fail(c, LH_ERR_NOMEM, "out of memory");
			pop(c);
		}
		break;
	}
	case JSON_STRING:
		if ((rc = check_text(c, json_string_value(j), json_string_length(j), &cps)))
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
		return fail(c, LH_ERR_NOMEM, "out of memory");
	*ret = r;
	return LH_OK;
}

static lh_err_t js_struct(ctx_t *c, const lh_desc_t *desc, const json_t *j, char *base);

static lh_err_t js_value(ctx_t *c, const lh_field_desc_t *f, const json_t *j, char *dst)
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
		if ((rc = check_string(c, f, s, len, &interned)))
			return rc;
		*(const char **)dst = interned ? interned : lh_arena_strndup(c->arena, s, len);
		return LH_OK;
	}
	case LH_KIND_INT: {
		int64_t v;
		if (!json_is_integer(j))
			return js_wrong_type(c, "integer", j);
		v = (int64_t)json_integer_value(j);
		if ((rc = check_int(c, f, v)))
			return rc;
		*(int64_t *)dst = v;
		return LH_OK;
	}
	case LH_KIND_NUMBER: {
		double v;
		if (!json_is_number(j))
			return js_wrong_type(c, "number", j);
		v = json_number_value(j);
		if ((rc = check_number(c, f, v)))
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
		lh_arena_on_free(c->arena, json_release, v);
		*(json_t **)dst = v;
		return LH_OK;
	}
	}
	return fail(c, LH_ERR_INTERNAL, "bad descriptor kind %d", f->kind);
}

static lh_err_t js_field(ctx_t *c, const lh_field_desc_t *f, const json_t *j, char *base)
{
	lh_err_t rc;
	if (f->flags & LH_FIELD_ARRAY) {
		size_t es = elem_size(f), n;
		char *v = NULL;
		if (!json_is_array(j))
			return js_wrong_type(c, "array", j);
		if (c->n + 1 > LH_CODEC_MAX_DEPTH)
			return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
				    LH_CODEC_MAX_DEPTH);
		n = json_array_size(j);
		if (n)
			v = lh_arena_alloc(c->arena, n * es);
		for (size_t i = 0; i < n; i++) {
			push_index(c, i);
			rc = js_value(c, f, json_array_get(j, i), v + i * es);
			pop(c);
			if (rc)
				return rc;
		}
		array_set(base, f, n, v);
		return LH_OK;
	}
	if ((rc = js_value(c, f, j, base + f->offset)))
		return rc;
	if (f->kind == LH_KIND_STRUCT)
		*(bool *)(base + f->has_offset) = true;
	return LH_OK;
}

static lh_err_t js_struct(ctx_t *c, const lh_desc_t *desc, const json_t *j, char *base)
{
	uint64_t seen = 0;
	uint32_t hint = 0;
	void *it;
	if (!json_is_object(j))
		return js_wrong_type(c, "object", j);
	if (c->n + 1 > LH_CODEC_MAX_DEPTH)
		return fail(c, LH_ERR_DECODE, "nesting deeper than %d levels", LH_CODEC_MAX_DEPTH);
	for (it = json_object_iter((json_t *)j); it; it = json_object_iter_next((json_t *)j, it)) {
		const char *k = json_object_iter_key(it);
		size_t kl = json_object_iter_key_len(it);
		int fi = find_field(desc, k, kl, &hint);
		lh_err_t rc;
		push_key(c, k, kl);
		if (fi < 0)
			rc = desc->strict ? fail(c, LH_ERR_SCHEMA, "unknown key") : LH_OK;
		else {
			seen |= (uint64_t)1 << fi;
			rc = js_field(c, &desc->fields[fi], json_object_iter_value(it), base);
		}
		pop(c);
		if (rc)
			return rc;
	}
	return missing_required(c, desc, seen);
}

lh_err_t lh_struct_from_json(const lh_desc_t *desc, const json_t *j, lh_arena_t *arena,
			     void **ret, lh_error_t *err)
{
	ctx_t c;
	char *base;
	lh_err_t rc;
	ctx_init(&c, arena, err);
	if (!desc || !j || !arena)
		return fail(&c, LH_ERR_INVALID, "no descriptor, value or arena");
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

static lh_err_t js_id(ctx_t *c, const json_t *j, bool uuid, lh_id_t *ret)
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
	return fail(c, LH_ERR_SCHEMA, uuid ? "expected a UUID" : "expected 32 lower-case hex digits");
}

static lh_err_t js_int(ctx_t *c, const json_t *j, int64_t *ret)
{
	if (!json_is_integer(j))
		return js_wrong_type(c, "integer", j);
	*ret = (int64_t)json_integer_value(j);
	return LH_OK;
}

static lh_err_t js_envelope_key(ctx_t *c, int k, const json_t *j, lh_event_t *ev)
{
	lh_err_t rc;
	int64_t v = 0;
	switch (k) {
	case ENV_V:
		if ((rc = js_int(c, j, &v)) || (rc = check_version(c, v)))
			return rc;
		ev->v = (int)v;
		return LH_OK;
	case ENV_ID:
		return js_id(c, j, false, &ev->id);
	case ENV_TYPE:
		if (!json_is_string(j))
			return js_wrong_type(c, "string", j);
		ev->type = type_lookup(json_string_value(j), json_string_length(j));
		if (ev->type == LH_EV__NONE)
			return unknown_type(c, json_string_value(j), json_string_length(j));
		return LH_OK;
	case ENV_PLAN_ID:
		return js_id(c, j, true, &ev->plan_id);
	case ENV_TASK_NO:
		if ((rc = js_int(c, j, &v)) || (rc = check_task_no(c, v)))
			return rc;
		ev->task_no = v;
		return LH_OK;
	case ENV_ATTEMPT:
		if ((rc = js_int(c, j, &v)) || (rc = check_attempt(c, v)))
			return rc;
		ev->attempt = v;
		return LH_OK;
	case ENV_TS_US:
		return js_int(c, j, &ev->ts_us);
	case ENV_TENANT:
		if (!json_is_string(j))
			return js_wrong_type(c, "string", j);
		if ((rc = check_tenant(c, json_string_value(j), json_string_length(j))))
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
	ctx_t c;
	lh_err_t rc = LH_OK;

	ctx_init(&c, NULL, err);
	if (!j || !json_is_object(j))
		return fail(&c, LH_ERR_SCHEMA, "expected an object at the top level, got %s",
			    j ? js_type_name(j) : "nothing");
	arena = lh_arena_new(0);
	c.arena = arena;
	ev = event_alloc(arena);
	for (it = json_object_iter((json_t *)j); it && !rc; it = json_object_iter_next((json_t *)j, it)) {
		const char *k = json_object_iter_key(it);
		size_t kl = json_object_iter_key_len(it);
		int ki = env_key_find(k, kl);
		push_key(&c, k, kl);
		if (ki < 0)
			rc = fail(&c, LH_ERR_SCHEMA, "unknown key");
		else {
			seen |= 1u << ki;
			if (ki == ENV_BODY)
				body = json_object_iter_value(it);
			rc = js_envelope_key(&c, ki, json_object_iter_value(it), ev);
		}
		pop(&c);
	}
	if (!rc)
		rc = env_missing(&c, seen);
	if (!rc) {
		desc = lh_event_body_desc(ev->type);
		ev->body = lh_arena_alloc(arena, desc->size);
		push_key(&c, "body", 4);
		rc = js_struct(&c, desc, body, ev->body);
		pop(&c);
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
		if (!field_present(base, f))
			continue;
		if (f->flags & LH_FIELD_ARRAY) {
			size_t n, es = elem_size(f);
			char *arr;
			array_get(base, f, &n, &arr);
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

json_t *lh_event_to_json(const lh_event_t *ev)
{
	const lh_desc_t *desc;
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
	desc = lh_event_body_desc(ev->type);
	v = desc && ev->body ? js_from_struct(desc, ev->body) : json_object();
	bad |= json_object_set_new_nocheck(o, "body", v);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
