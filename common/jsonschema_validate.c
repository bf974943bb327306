/* jsonschema_validate.c — validate a value against a compiled schema (jsonschema_int.h) and
 * say what is wrong in one line a model can act on (format in jsonschema.h).
 *
 * Value and schema are walked together. Errors go to a "sink" that keeps only the error earliest
 * in document order: a position is the list of child indices from the root (object members in
 * their order in the value), compared in pre-order. A node's own constraints (type, const,
 * enum, lengths, bounds, required, counts) come first, so the first one that fails ends that
 * node; its children go in order and the first failing child ends the walk of children; the
 * applicators on the same value ($ref, allOf, anyOf, oneOf) are all evaluated and the sink keeps
 * the earliest of everything. anyOf / oneOf evaluate each alternative into a private sink and
 * quote the one whose error lies furthest into the value as "the closest". */
#include "jsonschema.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema_int.h"

#define SHOW_STRING 40 /* bytes of a string quoted in a message */
#define SHOW_ENUM 8    /* enum values listed in a message */
#define EQUAL_MAX_DEPTH 2048

/* ---- showing values in messages ---------------------------------------------------------- */

static size_t utf8_count(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

static void fmt_real(char *out, size_t cap, double d)
{
	snprintf(out, cap, "%.15g", d);
	if (strtod(out, NULL) != d)
		snprintf(out, cap, "%.17g", d);
	if (!strpbrk(out, ".eEn") && strlen(out) + 2 < cap)
		strcat(out, ".0");
}

/* A short literal for a message: strings quoted (cut at SHOW_STRING bytes), numbers, true,
 * false, null; containers as "an object" / "an array". */
static void show_value(const json_t *v, char *out, size_t cap)
{
	switch (json_typeof(v)) {
	case JSON_STRING: {
		size_t len = json_string_length(v), n = len > SHOW_STRING ? SHOW_STRING : len;
		json_t *cut;
		char *dump;
		const char *s = json_string_value(v);
		while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
		cut = json_stringn_nocheck(s, n);
		dump = cut ? json_dumps(cut, JSON_ENCODE_ANY) : NULL;
		if (dump && n < len && strlen(dump) >= 1)
			snprintf(out, cap, "%.*s...\"", (int)(strlen(dump) - 1), dump);
		else
			snprintf(out, cap, "%s", dump ? dump : "a string");
		free(dump);
		json_decref(cut);
		return;
	}
	case JSON_INTEGER:
		snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return;
	case JSON_REAL:
		fmt_real(out, cap, json_real_value(v));
		return;
	case JSON_TRUE:
		snprintf(out, cap, "true");
		return;
	case JSON_FALSE:
		snprintf(out, cap, "false");
		return;
	case JSON_NULL:
		snprintf(out, cap, "null");
		return;
	case JSON_OBJECT:
		snprintf(out, cap, "an object");
		return;
	case JSON_ARRAY:
		snprintf(out, cap, "an array");
		return;
	}
	snprintf(out, cap, "a value");
}

/* "integer 5", "string \"x\"", "an object", "null", "boolean true" */
static void show_typed(const json_t *v, char *out, size_t cap)
{
	char lit[SHOW_STRING * 6 + 16];
	show_value(v, lit, sizeof(lit));
	switch (json_typeof(v)) {
	case JSON_STRING:
		snprintf(out, cap, "string %s", lit);
		return;
	case JSON_INTEGER:
		snprintf(out, cap, "integer %s", lit);
		return;
	case JSON_REAL:
		snprintf(out, cap, "number %s", lit);
		return;
	case JSON_TRUE:
	case JSON_FALSE:
		snprintf(out, cap, "boolean %s", lit);
		return;
	default:
		snprintf(out, cap, "%s", lit);
	}
}

/* An enum or const value (from the schema) for a message: compact JSON, cut to 60 bytes. */
static void show_literal(const json_t *v, char *out, size_t cap)
{
	char *dump;
	if (!json_is_object(v) && !json_is_array(v)) {
		show_value(v, out, cap);
		return;
	}
	dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (dump && strlen(dump) > 60) {
		int n = 57;
		while (n > 0 && ((unsigned char)dump[n] & 0xC0) == 0x80)
			n--; /* cut on a UTF-8 boundary */
		snprintf(out, cap, "%.*s...", n, dump);
	} else {
		snprintf(out, cap, "%s", dump ? dump : "a value");
	}
	free(dump);
}

/* out (cap bytes) overflowed: end it in "..." on a UTF-8 boundary. */
static void mark_cut(char *out, size_t cap)
{
	size_t n = cap - 4;
	while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80)
		n--;
	memcpy(out + n, "...", 4);
}

/* A property name for a message: quoted and escaped like a JSON string. */
static void show_name(const char *name, char *out, size_t cap)
{
	json_t *k = json_string_nocheck(name);
	if (k)
		show_value(k, out, cap);
	else
		snprintf(out, cap, "a property");
	json_decref(k);
}

static bool is_integral(const json_t *v)
{
	double d;
	if (json_is_integer(v))
		return true;
	if (!json_is_real(v))
		return false;
	d = json_real_value(v);
	return isfinite(d) && d == floor(d);
}

static int cmp_num_values(bool ai, json_int_t a_i, double a_d, bool bi, json_int_t b_i, double b_d)
{
	long double a, b;
	if (ai && bi)
		return a_i < b_i ? -1 : a_i > b_i;
	a = ai ? (long double)a_i : (long double)a_d;
	b = bi ? (long double)b_i : (long double)b_d;
	return a < b ? -1 : a > b;
}

/* value (a number) compared to a bound */
static int cmp_bound(const json_t *v, const lh_js_num_t *bound)
{
	return cmp_num_values(json_is_integer(v), json_is_integer(v) ? json_integer_value(v) : 0,
			      json_is_real(v) ? json_real_value(v) : 0, bound->is_int, bound->i,
			      bound->d);
}

/* JSON Schema equality: numbers by value (1 equals 1.0), objects regardless of key order. */
static bool values_equal(const json_t *a, const json_t *b, int depth)
{
	if (a == b)
		return true;
	if (json_is_number(a) && json_is_number(b))
		return cmp_num_values(json_is_integer(a),
				      json_is_integer(a) ? json_integer_value(a) : 0,
				      json_is_real(a) ? json_real_value(a) : 0, json_is_integer(b),
				      json_is_integer(b) ? json_integer_value(b) : 0,
				      json_is_real(b) ? json_real_value(b) : 0) == 0;
	if (json_typeof(a) != json_typeof(b) || depth > EQUAL_MAX_DEPTH)
		return false;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) ==
			   0;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!values_equal(json_array_get(a, i), json_array_get(b, i), depth + 1))
				return false;
		return true;
	case JSON_OBJECT: {
		const char *key;
		json_t *av, *bv;
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach ((json_t *)a, key, av) {
			bv = json_object_get(b, key);
			if (!bv || !values_equal(av, bv, depth + 1))
				return false;
		}
		return true;
	}
	default:
		return true; /* true, false, null: same type is equal */
	}
}

/* ---- validation -------------------------------------------------------------------------- */

typedef struct sink {
	bool has;
	bool weak; /* a type mismatch or a false schema: the alternative did not even start */
	int npos;
	int pos[LH_JS_MAX_DEPTH + 2];
	char msg[sizeof(((lh_error_t *)0)->msg)];
} sink_t;

typedef struct vctx {
	long steps;
	bool weak; /* the next report is weak (see sink_t) */
	bool exhausted;
	int depth; /* entries in pos */
	int pos[LH_JS_MAX_DEPTH + 2];
	char path[LH_JS_PATH_CAP];
	size_t path_len;
	sink_t *sink;
} vctx_t;

/* <0 when a comes before b in pre-order (a prefix comes before its extensions) */
static int pos_cmp(const int *a, int na, const int *b, int nb)
{
	for (int i = 0; i < na && i < nb; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return na < nb ? -1 : na > nb;
}

/* Record an error at the current position (plus child index extra when >= 0) unless the sink
 * already holds one that comes earlier or at the same place. */
static void report(vctx_t *v, int extra, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(vctx_t *v, int extra, const char *fmt, ...)
{
	sink_t *s = v->sink;
	int pos[LH_JS_MAX_DEPTH + 2], np = v->depth;
	char what[sizeof(s->msg)];
	va_list ap;

	memcpy(pos, v->pos, sizeof(int) * (size_t)np);
	if (extra >= 0)
		pos[np++] = extra;
	if (s->has && pos_cmp(s->pos, s->npos, pos, np) <= 0) {
		v->weak = false;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	s->has = true;
	s->weak = v->weak;
	s->npos = np;
	memcpy(s->pos, pos, sizeof(int) * (size_t)np);
	snprintf(s->msg, sizeof(s->msg), "%s: %s", v->path_len ? v->path : "(root)", what);
	lh_jsonschema_utf8_trim(s->msg);
	v->weak = false;
}

static void types_text(unsigned types, char *out, size_t cap)
{
	size_t n = 0, k, total = 0, seen = 0;
	for (k = 0; k < LH_JS_N_TYPES; k++)
		total += (types >> k) & 1;
	out[0] = 0;
	for (k = 0; k < LH_JS_N_TYPES; k++) {
		if (!(types & (1u << k)))
			continue;
		seen++;
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s",
				      seen == 1       ? ""
				      : seen == total ? " or "
						      : ", ",
				      lh_jsonschema_type_names[k]);
		if (n >= cap)
			return;
	}
}

static bool type_ok(unsigned types, const json_t *val)
{
	switch (json_typeof(val)) {
	case JSON_NULL:
		return types & LH_JS_T_NULL;
	case JSON_TRUE:
	case JSON_FALSE:
		return types & LH_JS_T_BOOLEAN;
	case JSON_OBJECT:
		return types & LH_JS_T_OBJECT;
	case JSON_ARRAY:
		return types & LH_JS_T_ARRAY;
	case JSON_STRING:
		return types & LH_JS_T_STRING;
	case JSON_INTEGER:
		return types & (LH_JS_T_INTEGER | LH_JS_T_NUMBER);
	case JSON_REAL:
		return (types & LH_JS_T_NUMBER) || ((types & LH_JS_T_INTEGER) && is_integral(val));
	}
	return false;
}

static void enum_text(const json_t *values, char *out, size_t cap)
{
	size_t n = 0, i;
	json_t *e;
	out[0] = 0;
	json_array_foreach (values, i, e) {
		char lit[96];
		if (i == SHOW_ENUM) {
			snprintf(out + n, n < cap ? cap - n : 0, ", ... (%zu in all)",
				 json_array_size(values));
			return;
		}
		show_literal(e, lit, sizeof(lit));
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", i ? ", " : "", lit);
		if (n >= cap) {
			mark_cut(out, cap);
			return;
		}
	}
}

static void num_text(const lh_js_num_t *b, char *out, size_t cap)
{
	if (b->is_int)
		snprintf(out, cap, "%" JSON_INTEGER_FORMAT, b->i);
	else
		fmt_real(out, cap, b->d);
}

static bool validate(vctx_t *v, const lh_js_node_t *n, const json_t *val);

/* Validate a child (index idx, named by key or by the index) against n. */
static bool validate_child(vctx_t *v, const lh_js_node_t *n, const json_t *val, int idx,
			   const char *key)
{
	size_t old_len = v->path_len;
	bool ok;
	if (key) {
		lh_jsonschema_pointer_append(v->path, sizeof(v->path), &v->path_len, key);
	} else {
		char num[24];
		snprintf(num, sizeof(num), "%d", idx);
		lh_jsonschema_pointer_append(v->path, sizeof(v->path), &v->path_len, num);
	}
	v->pos[v->depth++] = idx;
	if (v->depth > LH_JS_MAX_DEPTH) {
		report(v, -1, "value nests deeper than %d levels", LH_JS_MAX_DEPTH);
		ok = false;
	} else {
		ok = validate(v, n, val);
	}
	v->depth--;
	v->path_len = old_len;
	v->path[old_len] = 0;
	return ok;
}

static const lh_js_prop_t *find_prop(const lh_js_node_t *n, const char *name)
{
	lh_js_prop_t key = {.name = name};
	return n->n_props ? bsearch(&key, n->props, n->n_props, sizeof(lh_js_prop_t),
				    lh_jsonschema_prop_cmp)
			  : NULL;
}

__attribute__((noinline)) static bool own_object(vctx_t *v, const lh_js_node_t *n,
						 const json_t *val)
{
	size_t size = json_object_size(val);
	if (n->min_props >= 0 && size < (size_t)n->min_props) {
		report(v, -1, "%zu properties, expected at least %ld", size, n->min_props);
		return false;
	}
	if (n->max_props >= 0 && size > (size_t)n->max_props) {
		report(v, -1, "%zu properties, expected at most %ld", size, n->max_props);
		return false;
	}
	for (size_t i = 0; i < n->n_required; i++) {
		if (!json_object_get(val, n->required[i])) {
			char name[SHOW_STRING * 6 + 16];
			show_name(n->required[i], name, sizeof(name));
			report(v, -1, "missing required property %s", name);
			return false;
		}
	}
	return true;
}

static void allowed_text(const lh_js_node_t *n, char *out, size_t cap)
{
	size_t len = 0;
	if (n->n_props == 0) {
		snprintf(out, cap, "no properties are allowed");
		return;
	}
	len = (size_t)snprintf(out, cap, "allowed: ");
	for (size_t i = 0; i < n->n_props && len < cap; i++) {
		char name[SHOW_STRING * 6 + 16];
		show_name(n->props[i].name, name, sizeof(name));
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", name);
	}
	if (len >= cap)
		mark_cut(out, cap); /* text follows it in the message */
}

__attribute__((noinline)) static bool children_object(vctx_t *v, const lh_js_node_t *n,
						      const json_t *val)
{
	const char *key;
	json_t *child;
	int idx = 0;
	if (n->n_props == 0 && !n->addl)
		return true;
	json_object_foreach ((json_t *)val, key, child) {
		const lh_js_prop_t *p = find_prop(n, key);
		const lh_js_node_t *sub = p ? p->schema : n->addl;
		if (sub && !p && sub->is_false) {
			char allowed[300], shown[SHOW_STRING * 6 + 16];
			show_name(key, shown, sizeof(shown));
			allowed_text(n, allowed, sizeof(allowed));
			report(v, idx, "unknown property %s (%s)", shown, allowed);
			return false;
		}
		if (sub && !validate_child(v, sub, child, idx, key))
			return false;
		idx++;
	}
	return true;
}

__attribute__((noinline)) static bool own_array(vctx_t *v, const lh_js_node_t *n, const json_t *val)
{
	size_t size = json_array_size(val);
	if (n->min_items >= 0 && size < (size_t)n->min_items) {
		report(v, -1, "%zu items, expected at least %ld", size, n->min_items);
		return false;
	}
	if (n->max_items >= 0 && size > (size_t)n->max_items) {
		report(v, -1, "%zu items, expected at most %ld", size, n->max_items);
		return false;
	}
	if (n->unique_items) {
		for (size_t i = 1; i < size; i++) {
			for (size_t k = 0; k < i; k++) {
				if (++v->steps > LH_JSONSCHEMA_MAX_STEPS) {
					v->exhausted = true;
					return false;
				}
				if (values_equal(json_array_get(val, k), json_array_get(val, i),
						 0)) {
					report(v, -1,
					       "items %zu and %zu are equal, expected unique items",
					       k, i);
					return false;
				}
			}
		}
	}
	return true;
}

__attribute__((noinline)) static bool own_string(vctx_t *v, const lh_js_node_t *n,
						 const json_t *val)
{
	size_t chars;
	char shown[SHOW_STRING * 6 + 16];
	if (n->min_length < 0 && n->max_length < 0)
		return true;
	chars = utf8_count(json_string_value(val), json_string_length(val));
	if (n->min_length >= 0 && chars < (size_t)n->min_length) {
		show_value(val, shown, sizeof(shown));
		report(v, -1, "%s has %zu characters, fewer than minLength %ld", shown, chars,
		       n->min_length);
		return false;
	}
	if (n->max_length >= 0 && chars > (size_t)n->max_length) {
		show_value(val, shown, sizeof(shown));
		report(v, -1, "%s has %zu characters, more than maxLength %ld", shown, chars,
		       n->max_length);
		return false;
	}
	return true;
}

__attribute__((noinline)) static bool own_number(vctx_t *v, const lh_js_node_t *n,
						 const json_t *val)
{
	char shown[64], bound[64];
	const char *fail = NULL;
	const lh_js_num_t *b = NULL;
	if (n->minimum.set && cmp_bound(val, &n->minimum) < 0) {
		fail = "is less than the minimum";
		b = &n->minimum;
	} else if (n->maximum.set && cmp_bound(val, &n->maximum) > 0) {
		fail = "is greater than the maximum";
		b = &n->maximum;
	} else if (n->excl_min.set && cmp_bound(val, &n->excl_min) <= 0) {
		fail = "is not greater than the exclusive minimum";
		b = &n->excl_min;
	} else if (n->excl_max.set && cmp_bound(val, &n->excl_max) >= 0) {
		fail = "is not less than the exclusive maximum";
		b = &n->excl_max;
	}
	if (!fail)
		return true;
	show_value(val, shown, sizeof(shown));
	num_text(b, bound, sizeof(bound));
	report(v, -1, "%s %s %s", shown, fail, bound);
	return false;
}

/* false, type, const, enum. Out of line so that validate(), which recurses, keeps a small
 * stack frame. */
__attribute__((noinline)) static bool own_generic(vctx_t *v, const lh_js_node_t *n,
						  const json_t *val)
{
	if (n->is_false) {
		v->weak = true;
		report(v, -1, "no value is allowed here");
		return false;
	}
	if (n->types && !type_ok(n->types, val)) {
		char want[96], got[SHOW_STRING * 6 + 32];
		types_text(n->types, want, sizeof(want));
		show_typed(val, got, sizeof(got));
		v->weak = true;
		report(v, -1, "expected %s, got %s", want, got);
		return false;
	}
	if (n->const_value && !values_equal(val, n->const_value, 0)) {
		char want[96], got[SHOW_STRING * 6 + 32];
		show_literal(n->const_value, want, sizeof(want));
		show_value(val, got, sizeof(got));
		report(v, -1, "must be %s, got %s", want, got);
		return false;
	}
	if (n->enum_values) {
		size_t i;
		json_t *e;
		json_array_foreach (n->enum_values, i, e) {
			if (values_equal(val, e, 0))
				return true;
		}
		{
			char want[360], got[SHOW_STRING * 6 + 32];
			enum_text(n->enum_values, want, sizeof(want));
			show_value(val, got, sizeof(got));
			report(v, -1, "%s is not one of %s", got, want);
		}
		return false;
	}
	return true;
}

/* The alternative whose error lies furthest into the value is "the closest"; at the same
 * place, one whose type matched beats a type mismatch. */
static bool sink_further(const sink_t *a, const sink_t *b)
{
	int c;
	if (!b->has)
		return a->has;
	if (!a->has)
		return false;
	c = pos_cmp(a->pos, a->npos, b->pos, b->npos);
	return c > 0 || (c == 0 && b->weak && !a->weak);
}

/* anyOf (want_one = false) or oneOf (true) */
static bool validate_alternatives(vctx_t *v, const lh_js_list_t *alts, const json_t *val,
				  bool want_one, const char *kw)
{
	sink_t *saved = v->sink, *cur = malloc(sizeof(sink_t)), *best = malloc(sizeof(sink_t));
	size_t best_i = 0, matched = 0, first_match = 0, second_match = 0;
	bool ok = false;

	if (!cur || !best) {
		free(cur);
		free(best);
		v->exhausted = true; /* reported as "too large": nothing better to say */
		return false;
	}
	best->has = false;
	for (size_t i = 0; i < alts->n && !v->exhausted; i++) {
		cur->has = false;
		v->sink = cur;
		if (validate(v, alts->v[i], val)) {
			if (matched == 0)
				first_match = i;
			else
				second_match = i;
			matched++;
			if (!want_one || matched > 1)
				break;
			continue;
		}
		if (i == 0 || sink_further(cur, best)) {
			sink_t *t = best;
			best = cur;
			cur = t;
			best_i = i;
		}
	}
	v->sink = saved;
	if (v->exhausted) {
		ok = false;
	} else if (matched == 0) {
		report(v, -1,
		       "does not match any of the %zu alternatives (%s); the closest, #%zu, "
		       "fails with: %s",
		       alts->n, kw, best_i + 1, best->has ? best->msg : "(no detail)");
	} else if (want_one && matched > 1) {
		report(v, -1, "matches alternatives #%zu and #%zu of oneOf, expected exactly one",
		       first_match + 1, second_match + 1);
	} else {
		ok = true;
	}
	free(cur);
	free(best);
	return ok;
}

static bool validate(vctx_t *v, const lh_js_node_t *n, const json_t *val)
{
	bool ok = true;

	if (v->exhausted || ++v->steps > LH_JSONSCHEMA_MAX_STEPS) {
		v->exhausted = true;
		return false;
	}
	/* the node's own constraints: the first failure ends this node */
	if (!own_generic(v, n, val))
		return false;
	switch (json_typeof(val)) {
	case JSON_STRING:
		if (!own_string(v, n, val))
			return false;
		break;
	case JSON_INTEGER:
	case JSON_REAL:
		if (!own_number(v, n, val))
			return false;
		break;
	case JSON_OBJECT:
		if (!own_object(v, n, val))
			return false;
		ok = children_object(v, n, val);
		break;
	case JSON_ARRAY:
		if (!own_array(v, n, val))
			return false;
		if (n->items) {
			for (size_t i = 0; i < json_array_size(val) && ok; i++)
				ok = validate_child(v, n->items, json_array_get(val, i), (int)i,
						    NULL);
		}
		break;
	default:
		break;
	}
	/* applicators on the same value: evaluate them all, the sink keeps the earliest error */
	if (n->ref && !validate(v, n->ref, val))
		ok = false;
	for (size_t i = 0; i < n->all_of.n; i++)
		if (!validate(v, n->all_of.v[i], val))
			ok = false;
	if (n->any_of.n && !validate_alternatives(v, &n->any_of, val, false, "anyOf"))
		ok = false;
	if (n->one_of.n && !validate_alternatives(v, &n->one_of, val, true, "oneOf"))
		ok = false;
	return ok && !v->exhausted;
}

lh_err_t lh_jsonschema_validate(const lh_jsonschema_t *schema, const json_t *value, lh_error_t *err)
{
	vctx_t *v;
	sink_t *sink;
	lh_err_t rc;

	if (!schema || !value)
		return lh_error_set(err, LH_ERR_INVALID, "could not validate: %s",
				    !schema ? "no schema" : "no value");
	v = calloc(1, sizeof(*v));
	sink = calloc(1, sizeof(*sink));
	if (!v || !sink) {
		free(v);
		free(sink);
		return lh_error_set(err, LH_ERR_NOMEM, "could not validate: out of memory");
	}
	v->sink = sink;
	if (validate(v, schema->root, value) && !v->exhausted) {
		rc = LH_OK;
	} else if (v->exhausted) {
		rc = lh_error_set(err, LH_ERR_TOO_LARGE,
				  "could not validate: more than %ld schema evaluations",
				  LH_JSONSCHEMA_MAX_STEPS);
	} else {
		rc = lh_error_set(err, LH_ERR_SCHEMA, "%s",
				  sink->has ? sink->msg : "(root): does not match the schema");
	}
	free(sink);
	free(v);
	return rc;
}
