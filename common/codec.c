/* codec.c — the event envelope and the generic, descriptor-driven struct codec (msgpack and JSON):
 * what every codec file shares (codec_int.h): paths and errors, value checks, descriptor helpers,
 * event types, the envelope's keys and checks. The rest lives in codec_scan.c (the pre-scan of
 * raw msgpack), codec_msgpack.c (msgpack decode and encode) and codec_json.c (JSON).
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
#include "codec_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Paths and errors
 * ------------------------------------------------------------------------------------------- */

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

static void format_path(const lh_codec_ctx_t *c, char *out, size_t cap)
{
	size_t o = 0;
	int n = c->n < (int)(sizeof(c->path) / sizeof(c->path[0]))
			? c->n
			: (int)(sizeof(c->path) / sizeof(c->path[0]));
	out[0] = 0;
	for (int i = 0; i < n && o + 24 < cap; i++) {
		const lh_codec_frame_t *f = &c->path[i];
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

lh_err_t lh_codec_fail(lh_codec_ctx_t *c, lh_err_t code, const char *fmt, ...)
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

lh_err_t lh_codec_check_text(lh_codec_ctx_t *c, const char *s, size_t len, int64_t *ret_cps)
{
	int64_t cps = utf8_check(s, len);
	if (cps == UTF8_NUL)
		return lh_codec_fail(c, LH_ERR_DECODE, "string contains a NUL byte");
	if (cps < 0)
		return lh_codec_fail(c, LH_ERR_DECODE, "invalid UTF-8");
	*ret_cps = cps;
	return LH_OK;
}

/* Check a string value against its field; *ret is the enum's static string for enums, else NULL
 * (the caller copies s). */
lh_err_t lh_codec_check_string(lh_codec_ctx_t *c, const lh_field_desc_t *f, const char *s, size_t len,
			     const char **ret_enum)
{
	int64_t cps;
	lh_err_t rc = lh_codec_check_text(c, s, len, &cps);
	if (rc)
		return rc;
	if ((f->flags & LH_FIELD_MIN) && cps < f->imin)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "string shorter than the minimum length %" PRId64,
			    f->imin);
	if ((f->flags & LH_FIELD_MAX) && cps > f->imax)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "string longer than the maximum length %" PRId64,
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
		return lh_codec_fail(c, LH_ERR_SCHEMA, "unknown value \"%s\"", shown);
	}
	return LH_OK;
}

lh_err_t lh_codec_check_int(lh_codec_ctx_t *c, const lh_field_desc_t *f, int64_t v)
{
	if ((f->flags & LH_FIELD_MIN) && v < f->imin)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is below the minimum %" PRId64, v,
			    f->imin);
	if ((f->flags & LH_FIELD_MAX) && v > f->imax)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is above the maximum %" PRId64, v,
			    f->imax);
	return LH_OK;
}

lh_err_t lh_codec_check_number(lh_codec_ctx_t *c, const lh_field_desc_t *f, double v)
{
	if (!isfinite(v))
		return lh_codec_fail(c, LH_ERR_SCHEMA, "number is not finite");
	if ((f->flags & LH_FIELD_MIN) && v < f->dmin)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "value %g is below the minimum %g", v, f->dmin);
	if ((f->flags & LH_FIELD_MAX) && v > f->dmax)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "value %g is above the maximum %g", v, f->dmax);
	return LH_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Descriptor helpers
 * ------------------------------------------------------------------------------------------- */

size_t lh_codec_elem_size(const lh_field_desc_t *f)
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
int lh_codec_find_field(const lh_desc_t *desc, const char *key, size_t len, uint32_t *hint)
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

lh_err_t lh_codec_missing_required(lh_codec_ctx_t *c, const lh_desc_t *desc, uint64_t seen)
{
	uint64_t missing = desc->required_mask & ~seen;
	if (!missing)
		return LH_OK;
	for (uint32_t i = 0; i < desc->n_fields; i++) {
		if (missing & ((uint64_t)1 << i)) {
			lh_err_t rc;
			lh_codec_push_key(c, desc->fields[i].name, desc->fields[i].name_len);
			rc = lh_codec_fail(c, LH_ERR_SCHEMA, "missing required field");
			lh_codec_pop(c);
			return rc;
		}
	}
	return LH_OK;
}

/* Whether an encoder writes the field: required fields always, optional ones when present. */
bool lh_codec_field_present(const char *base, const lh_field_desc_t *f)
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

void lh_codec_json_release(void *j) { json_decref(j); }

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
lh_event_type_t lh_codec_type_lookup(const char *s, size_t len)
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
	t = lh_codec_type_lookup(name, strlen(name));
	if (t == LH_EV__NONE)
		return LH_ERR_NOT_FOUND;
	*ret_type = t;
	return LH_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The envelope: keys and checks (msgpack and JSON)
 * ------------------------------------------------------------------------------------------- */

const lh_codec_env_key_t lh_codec_env_keys[ENV__COUNT] = {
	{"v", 1},	    {"id", 2},	   {"type", 4},	  {"plan_id", 7},      {"task_no", 7},
	{"attempt", 7},	    {"ts_us", 5},  {"tenant", 6}, {"actor", 5},	       {"causation_id", 12},
	{"body", 4},
};

int lh_codec_env_key_find(const char *s, size_t len)
{
	for (int i = 0; i < ENV__COUNT; i++)
		if (lh_codec_env_keys[i].len == len && memcmp(lh_codec_env_keys[i].name, s, len) == 0)
			return i;
	return -1;
}

lh_err_t lh_codec_env_missing(lh_codec_ctx_t *c, unsigned seen)
{
	for (int i = 0; i < ENV__COUNT; i++) {
		if ((ENV_REQUIRED & (1u << i)) && !(seen & (1u << i))) {
			lh_err_t rc;
			lh_codec_push_key(c, lh_codec_env_keys[i].name, lh_codec_env_keys[i].len);
			rc = lh_codec_fail(c, LH_ERR_SCHEMA, "missing required field");
			lh_codec_pop(c);
			return rc;
		}
	}
	return LH_OK;
}

lh_err_t lh_codec_check_version(lh_codec_ctx_t *c, int64_t v)
{
	if (v != LH_ENVELOPE_VERSION)
		return lh_codec_fail(c, LH_ERR_UNSUPPORTED, "unsupported envelope version %" PRId64, v);
	return LH_OK;
}

lh_err_t lh_codec_check_task_no(lh_codec_ctx_t *c, int64_t v)
{
	if (v < 0)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is below the minimum 0", v);
	return LH_OK;
}

lh_err_t lh_codec_check_attempt(lh_codec_ctx_t *c, int64_t v)
{
	if (v < 1)
		return lh_codec_fail(c, LH_ERR_SCHEMA, "value %" PRId64 " is below the minimum 1", v);
	return LH_OK;
}

lh_err_t lh_codec_check_tenant(lh_codec_ctx_t *c, const char *s, size_t len)
{
	int64_t cps;
	lh_err_t rc = lh_codec_check_text(c, s, len, &cps);
	if (!rc && cps > LH_ENVELOPE_TENANT_MAX_LEN)
		rc = lh_codec_fail(c, LH_ERR_SCHEMA, "string longer than the maximum length %d",
			  LH_ENVELOPE_TENANT_MAX_LEN);
	return rc;
}

lh_err_t lh_codec_unknown_type(lh_codec_ctx_t *c, const char *s, size_t len)
{
	char shown[64];
	put_sanitized(shown, sizeof(shown), s, len, 48);
	return lh_codec_fail(c, LH_ERR_UNSUPPORTED, "unknown event type \"%s\"", shown);
}

lh_event_t *lh_codec_event_alloc(lh_arena_t *arena)
{
	lh_event_t *ev = lh_arena_alloc(arena, sizeof(*ev));
	ev->arena = arena;
	ev->task_no = LH_NO_TASK;
	return ev;
}

lh_event_t *lh_event_free(lh_event_t *ev)
{
	/* a caller-built event (arena NULL) owns nothing here */
	if (ev && ev->arena)
		lh_arena_free(ev->arena);
	return NULL;
}

