/* jsonschema.c — compile a JSON Schema into a tree of nodes (jsonschema_int.h) with every $ref
 * resolved to a pointer. Validation is in jsonschema_validate.c; the subset and the error
 * format are described in jsonschema.h.
 *
 * Every node lives in one arena owned by the compiled schema. A document's $defs get their
 * nodes before anything is compiled, so a $ref can point at a node that is still being filled
 * (that is how recursive schemas work); external documents from the resolver are queued and
 * compiled one after the other, never recursively. Then one pass over all nodes rejects cycles
 * of $ref / allOf / anyOf / oneOf that never descend into the value (validation would loop
 * forever) and chains of them longer than LH_JSONSCHEMA_MAX_DEPTH.
 *
 * Hand-written: Debian packages no C JSON Schema validator (the packaged ones are for Python, Go,
 * Perl, PHP, Ruby and JavaScript). */
#include "jsonschema.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "jsonschema_int.h"

const char *const lh_jsonschema_type_names[LH_JS_N_TYPES] = {"string",  "number", "integer",
							     "boolean", "object", "array",
							     "null"};

/* ---- helpers shared with jsonschema_validate.c ------------------------------------------- */

/* See jsonschema_int.h. */
void lh_jsonschema_pointer_append(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = *len;
	if (n + 1 < cap)
		buf[n++] = '/';
	for (; *s && n + 2 < cap; s++) {
		if (*s == '~' || *s == '/') {
			buf[n++] = '~';
			buf[n++] = *s == '~' ? '0' : '1';
		} else {
			/* control characters would break the one-line message: shown as '?' */
			buf[n++] = (unsigned char)*s < 0x20 ? '?' : *s;
		}
	}
	if (*s && cap > 4) { /* truncated: mark it, on a UTF-8 boundary */
		n = n > cap - 4 ? cap - 4 : n;
		while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80)
			n--;
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = 0;
	*len = n;
}

/* Cut an incomplete UTF-8 sequence off the end of s (snprintf truncates on a byte): messages
 * end up in JSON, and Jansson refuses strings that are not valid UTF-8. */
void lh_jsonschema_utf8_trim(char *s)
{
	size_t n = strlen(s), start = n, need;
	unsigned char lead;
	while (start > 0 && ((unsigned char)s[start - 1] & 0xC0) == 0x80 && n - start < 3)
		start--;
	if (start == 0)
		return;
	lead = (unsigned char)s[start - 1];
	if (lead < 0x80)
		return;
	need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (n - (start - 1) < need)
		s[start - 1] = 0;
}

int lh_jsonschema_prop_cmp(const void *a, const void *b)
{
	return strcmp(((const lh_js_prop_t *)a)->name, ((const lh_js_prop_t *)b)->name);
}

/* ---- compilation ------------------------------------------------------------------------- */

static void decref_cb(void *p)
{
	json_decref((json_t *)p);
}

typedef struct def {
	const char *name;
	bool legacy; /* under "definitions" rather than "$defs" */
	const json_t *json;
	lh_js_node_t *node;
} def_t;

typedef struct doc {
	const char *name; /* NULL for the root document */
	const json_t *json;
	lh_js_node_t *root;
	def_t *defs;
	size_t n_defs;
	struct doc *next;
} doc_t;

typedef struct compiler {
	lh_jsonschema_t *s;
	const lh_jsonschema_opts_t *opts;
	lh_error_t *err;
	doc_t *docs, *docs_tail;
	lh_js_node_t *all;
	const doc_t *doc; /* being compiled */
	char path[LH_JS_PATH_CAP];
	size_t path_len;
} compiler_t;

static lh_err_t cfail(compiler_t *c, lh_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static lh_err_t cfail(compiler_t *c, lh_err_t code, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	lh_error_set(c->err, code, "could not compile schema: %s%s%s: %s",
		     c->doc && c->doc->name ? c->doc->name : "", c->doc && c->doc->name ? ": " : "",
		     c->path_len ? c->path : "(root)", what);
	if (c->err)
		lh_jsonschema_utf8_trim(c->err->msg);
	return code;
}

static size_t cpush(compiler_t *c, const char *seg)
{
	size_t old = c->path_len;
	lh_jsonschema_pointer_append(c->path, sizeof(c->path), &c->path_len, seg);
	return old;
}

static void cpop(compiler_t *c, size_t old)
{
	c->path_len = old;
	c->path[old] = 0;
}

static lh_js_node_t *node_new(compiler_t *c)
{
	lh_js_node_t *n = lh_arena_alloc(c->s->arena, sizeof(*n));
	n->min_length = n->max_length = -1;
	n->min_props = n->max_props = -1;
	n->min_items = n->max_items = -1;
	n->next_all = c->all;
	c->all = n;
	return n;
}

static const char *json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "a value";
}

/* Decode an RFC 6901 token in place; false when it has a bad escape or an unescaped '/'. */
static bool unescape_token(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r == '/')
			return false;
		if (*r == '~') {
			if (r[1] != '0' && r[1] != '1')
				return false;
			*w++ = r[1] == '0' ? '~' : '/';
			r++;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
	return true;
}

static doc_t *doc_add(compiler_t *c, const char *name, const json_t *json)
{
	doc_t *d = lh_arena_alloc(c->s->arena, sizeof(*d));
	d->name = name ? lh_arena_strdup(c->s->arena, name) : NULL;
	d->json = json;
	d->root = node_new(c);
	if (c->docs_tail)
		c->docs_tail->next = d;
	else
		c->docs = d;
	c->docs_tail = d;
	return d;
}

static lh_err_t resolve_ref(compiler_t *c, const char *ref, lh_js_node_t **ret)
{
	const doc_t *doc = c->doc;
	if (ref[0] == '#') {
		const char *rest;
		bool legacy;
		char *name;
		if (ref[1] == 0) {
			*ret = doc->root;
			return LH_OK;
		}
		if (strncmp(ref, "#/$defs/", 8) == 0) {
			rest = ref + 8;
			legacy = false;
		} else if (strncmp(ref, "#/definitions/", 14) == 0) {
			rest = ref + 14;
			legacy = true;
		} else {
			return cfail(c, LH_ERR_UNSUPPORTED,
				     "unsupported $ref \"%s\": only \"#\", \"#/$defs/NAME\" and "
				     "\"#/definitions/NAME\" are supported",
				     ref);
		}
		name = lh_arena_strdup(c->s->arena, rest);
		if (!unescape_token(name))
			return cfail(c, LH_ERR_UNSUPPORTED,
				     "unsupported $ref \"%s\": only \"#\", \"#/$defs/NAME\" and "
				     "\"#/definitions/NAME\" are supported",
				     ref);
		for (size_t i = 0; i < doc->n_defs; i++) {
			if (doc->defs[i].legacy == legacy && strcmp(doc->defs[i].name, name) == 0) {
				*ret = doc->defs[i].node;
				return LH_OK;
			}
		}
		return cfail(c, LH_ERR_INVALID, "$ref \"%s\" does not resolve: no such definition",
			     ref);
	}
	if (strchr(ref, '#'))
		return cfail(c, LH_ERR_UNSUPPORTED,
			     "unsupported $ref \"%s\": a fragment in an external reference", ref);
	for (doc_t *d = c->docs; d; d = d->next) {
		if (d->name && strcmp(d->name, ref) == 0) {
			*ret = d->root;
			return LH_OK;
		}
	}
	{
		const json_t *ext =
		    c->opts && c->opts->resolve ? c->opts->resolve(ref, c->opts->opaque) : NULL;
		if (!ext && !(c->opts && c->opts->resolve))
			return cfail(c, LH_ERR_UNSUPPORTED,
				     "$ref \"%s\" does not resolve: no resolver for external "
				     "references",
				     ref);
		if (!ext)
			return cfail(c, LH_ERR_INVALID, "$ref \"%s\" does not resolve", ref);
		*ret = doc_add(c, ref, ext)->root;
	}
	return LH_OK;
}

static lh_err_t compile_node(compiler_t *c, lh_js_node_t *n, const json_t *j, int depth,
			     bool doc_root);

/* A subschema at key (and index idx >= 0 inside it) into a new node. */
static lh_err_t compile_sub(compiler_t *c, const char *key, long idx, const json_t *j, int depth,
			    lh_js_node_t **ret)
{
	size_t old = cpush(c, key);
	lh_err_t rc;
	lh_js_node_t *n = node_new(c);
	if (idx >= 0) {
		char num[24];
		snprintf(num, sizeof(num), "%ld", idx);
		cpush(c, num);
	}
	rc = compile_node(c, n, j, depth + 1, false);
	if (rc == LH_OK) {
		cpop(c, old);
		*ret = n;
	}
	return rc; /* on error the path stays as it was where the error happened */
}

static lh_err_t get_count(compiler_t *c, const char *key, const json_t *v, long *ret)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
		return cfail(c, LH_ERR_INVALID, "%s must be a non-negative integer", key);
	*ret = (long)json_integer_value(v);
	return LH_OK;
}

static lh_err_t get_num(compiler_t *c, const char *key, const json_t *v, lh_js_num_t *ret)
{
	if (json_is_boolean(v) && strncmp(key, "exclusive", 9) == 0)
		return cfail(c, LH_ERR_UNSUPPORTED,
			     "%s must be a number (the boolean form of draft 4 is not supported)",
			     key);
	if (!json_is_number(v))
		return cfail(c, LH_ERR_INVALID, "%s must be a number", key);
	ret->set = true;
	ret->is_int = json_is_integer(v);
	ret->i = ret->is_int ? json_integer_value(v) : 0;
	ret->d = ret->is_int ? 0 : json_real_value(v);
	return LH_OK;
}

static lh_err_t compile_type(compiler_t *c, lh_js_node_t *n, const json_t *v)
{
	size_t i, k;
	json_t *t;
	if (json_is_string(v)) {
		for (k = 0; k < LH_JS_N_TYPES; k++)
			if (strcmp(json_string_value(v), lh_jsonschema_type_names[k]) == 0)
				break;
		if (k == LH_JS_N_TYPES)
			return cfail(c, LH_ERR_INVALID, "unknown type \"%s\"",
				     json_string_value(v));
		n->types = 1u << k;
		return LH_OK;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return cfail(c, LH_ERR_INVALID,
			     "type must be a type name or a non-empty array of them");
	json_array_foreach (v, i, t) {
		for (k = 0; k < LH_JS_N_TYPES; k++)
			if (json_is_string(t) &&
			    strcmp(json_string_value(t), lh_jsonschema_type_names[k]) == 0)
				break;
		if (k == LH_JS_N_TYPES)
			return cfail(c, LH_ERR_INVALID, "type[%zu] is not a type name", i);
		if (n->types & (1u << k))
			return cfail(c, LH_ERR_INVALID, "type lists \"%s\" twice",
				     lh_jsonschema_type_names[k]);
		n->types |= 1u << k;
	}
	return LH_OK;
}

static lh_err_t compile_props(compiler_t *c, lh_js_node_t *n, const json_t *v, int depth)
{
	const char *key;
	json_t *ps;
	size_t i = 0, old;
	if (!json_is_object(v))
		return cfail(c, LH_ERR_INVALID, "properties must be an object");
	n->n_props = json_object_size(v);
	n->props =
	    lh_arena_alloc(c->s->arena, (n->n_props ? n->n_props : 1) * sizeof(lh_js_prop_t));
	old = cpush(c, "properties");
	json_object_foreach ((json_t *)v, key, ps) {
		lh_err_t rc;
		n->props[i].name = lh_arena_strdup(c->s->arena, key);
		rc = compile_sub(c, key, -1, ps, depth, &n->props[i].schema);
		if (rc)
			return rc;
		i++;
	}
	cpop(c, old);
	qsort(n->props, n->n_props, sizeof(lh_js_prop_t), lh_jsonschema_prop_cmp);
	return LH_OK;
}

static lh_err_t compile_required(compiler_t *c, lh_js_node_t *n, const json_t *v)
{
	size_t i;
	json_t *r;
	if (!json_is_array(v))
		return cfail(c, LH_ERR_INVALID, "required must be an array of property names");
	n->n_required = json_array_size(v);
	n->required =
	    lh_arena_alloc(c->s->arena, (n->n_required ? n->n_required : 1) * sizeof(char *));
	json_array_foreach (v, i, r) {
		if (!json_is_string(r))
			return cfail(c, LH_ERR_INVALID, "required[%zu] is not a string", i);
		for (size_t k = 0; k < i; k++)
			if (strcmp(n->required[k], json_string_value(r)) == 0)
				return cfail(c, LH_ERR_INVALID, "required lists \"%s\" twice",
					     json_string_value(r));
		n->required[i] = lh_arena_strdup(c->s->arena, json_string_value(r));
	}
	return LH_OK;
}

static lh_err_t compile_list(compiler_t *c, const char *key, const json_t *v, int depth,
			     lh_js_list_t *ret)
{
	size_t i;
	json_t *sub;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return cfail(c, LH_ERR_INVALID, "%s must be a non-empty array of schemas", key);
	ret->n = json_array_size(v);
	ret->v = lh_arena_alloc(c->s->arena, ret->n * sizeof(lh_js_node_t *));
	json_array_foreach (v, i, sub) {
		lh_err_t rc = compile_sub(c, key, (long)i, sub, depth, &ret->v[i]);
		if (rc)
			return rc;
	}
	return LH_OK;
}

static json_t *keep(compiler_t *c, const json_t *v)
{
	json_t *copy = json_deep_copy(v);
	if (copy)
		lh_arena_on_free(c->s->arena, decref_cb, copy);
	return copy;
}

static bool is_annotation(const char *key)
{
	static const char *const names[] = {"title",    "description", "default",   "examples",
					    "$schema",  "$id",         "$comment",  "format",
					    "readOnly", "writeOnly",   "deprecated"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(key, names[i]) == 0)
			return true;
	return false;
}

static lh_err_t compile_keyword(compiler_t *c, lh_js_node_t *n, const char *key, const json_t *v,
				int depth, bool doc_root)
{
	if (strcmp(key, "type") == 0)
		return compile_type(c, n, v);
	if (strcmp(key, "properties") == 0)
		return compile_props(c, n, v, depth);
	if (strcmp(key, "required") == 0)
		return compile_required(c, n, v);
	if (strcmp(key, "additionalProperties") == 0)
		return compile_sub(c, key, -1, v, depth, &n->addl);
	if (strcmp(key, "items") == 0) {
		if (json_is_array(v))
			return cfail(c, LH_ERR_UNSUPPORTED,
				     "items as an array of schemas (tuple validation) is not "
				     "supported");
		return compile_sub(c, key, -1, v, depth, &n->items);
	}
	if (strcmp(key, "enum") == 0) {
		if (!json_is_array(v) || json_array_size(v) == 0)
			return cfail(c, LH_ERR_INVALID, "enum must be a non-empty array");
		n->enum_values = keep(c, v);
		return n->enum_values ? LH_OK : cfail(c, LH_ERR_NOMEM, "out of memory");
	}
	if (strcmp(key, "const") == 0) {
		n->const_value = keep(c, v);
		return n->const_value ? LH_OK : cfail(c, LH_ERR_NOMEM, "out of memory");
	}
	if (strcmp(key, "anyOf") == 0)
		return compile_list(c, key, v, depth, &n->any_of);
	if (strcmp(key, "oneOf") == 0)
		return compile_list(c, key, v, depth, &n->one_of);
	if (strcmp(key, "allOf") == 0)
		return compile_list(c, key, v, depth, &n->all_of);
	if (strcmp(key, "$ref") == 0) {
		if (!json_is_string(v))
			return cfail(c, LH_ERR_INVALID, "$ref must be a string");
		return resolve_ref(c, json_string_value(v), &n->ref);
	}
	if (strcmp(key, "minLength") == 0)
		return get_count(c, key, v, &n->min_length);
	if (strcmp(key, "maxLength") == 0)
		return get_count(c, key, v, &n->max_length);
	if (strcmp(key, "minItems") == 0)
		return get_count(c, key, v, &n->min_items);
	if (strcmp(key, "maxItems") == 0)
		return get_count(c, key, v, &n->max_items);
	if (strcmp(key, "minProperties") == 0)
		return get_count(c, key, v, &n->min_props);
	if (strcmp(key, "maxProperties") == 0)
		return get_count(c, key, v, &n->max_props);
	if (strcmp(key, "uniqueItems") == 0) {
		if (!json_is_boolean(v))
			return cfail(c, LH_ERR_INVALID, "uniqueItems must be a boolean");
		n->unique_items = json_is_true(v);
		return LH_OK;
	}
	if (strcmp(key, "minimum") == 0)
		return get_num(c, key, v, &n->minimum);
	if (strcmp(key, "maximum") == 0)
		return get_num(c, key, v, &n->maximum);
	if (strcmp(key, "exclusiveMinimum") == 0)
		return get_num(c, key, v, &n->excl_min);
	if (strcmp(key, "exclusiveMaximum") == 0)
		return get_num(c, key, v, &n->excl_max);
	if (strcmp(key, "$defs") == 0 || strcmp(key, "definitions") == 0) {
		if (!doc_root)
			return cfail(c, LH_ERR_UNSUPPORTED,
				     "%s is supported only at the root of a schema document", key);
		return LH_OK; /* compiled by compile_doc */
	}
	if (is_annotation(key))
		return LH_OK;
	return cfail(c, LH_ERR_UNSUPPORTED, "unsupported keyword \"%s\"", key);
}

static lh_err_t compile_node(compiler_t *c, lh_js_node_t *n, const json_t *j, int depth,
			     bool doc_root)
{
	const char *key;
	json_t *v;

	n->where = lh_arena_printf(c->s->arena, "%s%s%s", c->doc->name ? c->doc->name : "",
				   c->doc->name ? ": " : "", c->path_len ? c->path : "(root)");
	if (depth > LH_JS_MAX_DEPTH)
		return cfail(c, LH_ERR_TOO_LARGE, "schema nests deeper than %d levels",
			     LH_JS_MAX_DEPTH);
	if (json_is_true(j))
		return LH_OK;
	if (json_is_false(j)) {
		n->is_false = true;
		return LH_OK;
	}
	if (!json_is_object(j))
		return cfail(c, LH_ERR_INVALID, "a schema must be an object or a boolean, not %s",
			     json_kind(j));
	/* errors about a keyword name it and give the path of its schema */
	json_object_foreach ((json_t *)j, key, v) {
		lh_err_t rc = compile_keyword(c, n, key, v, depth, doc_root);
		if (rc)
			return rc;
	}
	if (n->min_length >= 0 && n->max_length >= 0 && n->min_length > n->max_length)
		return cfail(c, LH_ERR_INVALID, "minLength is greater than maxLength");
	if (n->min_items >= 0 && n->max_items >= 0 && n->min_items > n->max_items)
		return cfail(c, LH_ERR_INVALID, "minItems is greater than maxItems");
	return LH_OK;
}

static lh_err_t compile_doc(compiler_t *c, doc_t *d)
{
	const char *kws[2] = {"$defs", "definitions"};
	size_t n = 0;
	lh_err_t rc;

	c->doc = d;
	c->path_len = 0;
	c->path[0] = 0;
	for (int k = 0; k < 2; k++) {
		json_t *defs = json_is_object(d->json) ? json_object_get(d->json, kws[k]) : NULL;
		if (defs && !json_is_object(defs)) {
			cpush(c, kws[k]);
			return cfail(c, LH_ERR_INVALID, "%s must be an object of schemas", kws[k]);
		}
		n += json_object_size(defs);
	}
	d->defs = lh_arena_alloc(c->s->arena, (n ? n : 1) * sizeof(def_t));
	for (int k = 0; k < 2; k++) {
		json_t *defs = json_is_object(d->json) ? json_object_get(d->json, kws[k]) : NULL;
		const char *key;
		json_t *v;
		json_object_foreach (defs, key, v) {
			def_t *def = &d->defs[d->n_defs++];
			def->name = lh_arena_strdup(c->s->arena, key);
			def->legacy = k == 1;
			def->json = v;
			def->node = node_new(c);
		}
	}
	rc = compile_node(c, d->root, d->json, 0, true);
	if (rc)
		return rc;
	for (size_t i = 0; i < d->n_defs; i++) {
		size_t old = cpush(c, d->defs[i].legacy ? "definitions" : "$defs");
		cpush(c, d->defs[i].name);
		rc = compile_node(c, d->defs[i].node, d->defs[i].json, 1, false);
		if (rc)
			return rc;
		cpop(c, old);
	}
	return LH_OK;
}

/* Reject same-instance cycles and chains longer than LH_JS_MAX_DEPTH (see the top of the file). */
static lh_err_t check_chain(compiler_t *c, lh_js_node_t *n, int depth)
{
	const lh_js_list_t *lists[3] = {&n->all_of, &n->any_of, &n->one_of};
	int best = 0;
	lh_err_t rc;

	if (n->mark == 2) {
		if (depth + n->chain > LH_JS_MAX_DEPTH)
			goto out_long;
		return LH_OK;
	}
	if (n->mark == 1) {
		rc = lh_error_set(c->err, LH_ERR_INVALID,
				  "could not compile schema: %s: $ref cycle that never descends "
				  "into the value",
				  n->where);
		goto out_trim;
	}
	if (depth >= LH_JS_MAX_DEPTH)
		goto out_long;
	n->mark = 1;
	if (n->ref) {
		if ((rc = check_chain(c, n->ref, depth + 1)))
			return rc;
		best = n->ref->chain;
	}
	for (int l = 0; l < 3; l++) {
		for (size_t i = 0; i < lists[l]->n; i++) {
			lh_js_node_t *sub = lists[l]->v[i];
			if ((rc = check_chain(c, sub, depth + 1)))
				return rc;
			if (sub->chain > best)
				best = sub->chain;
		}
	}
	n->chain = best + 1;
	n->mark = 2;
	return LH_OK;
out_long:
	rc = lh_error_set(c->err, LH_ERR_TOO_LARGE,
			  "could not compile schema: %s: more than %d $ref / allOf / anyOf / oneOf "
			  "in a row without descending into the value",
			  n->where, LH_JS_MAX_DEPTH);
out_trim:
	if (c->err)
		lh_jsonschema_utf8_trim(c->err->msg);
	return rc;
}

lh_err_t lh_jsonschema_compile_ex(const json_t *schema, const lh_jsonschema_opts_t *opts,
				  lh_jsonschema_t **ret_schema, lh_error_t *err)
{
	compiler_t c;
	lh_err_t rc = LH_OK;

	if (!schema || !ret_schema)
		return lh_error_set(err, LH_ERR_INVALID, "could not compile schema: %s",
				    !schema ? "no schema" : "nowhere to put it");
	memset(&c, 0, sizeof(c));
	c.s = calloc(1, sizeof(*c.s));
	if (!c.s)
		return lh_error_set(err, LH_ERR_NOMEM, "could not compile schema: out of memory");
	c.s->arena = lh_arena_new(0);
	c.opts = opts;
	c.err = err;
	c.s->root = doc_add(&c, NULL, schema)->root;
	/* external documents are appended while compiling; compile until none is left */
	for (doc_t *d = c.docs; d && rc == LH_OK; d = d->next)
		rc = compile_doc(&c, d);
	for (lh_js_node_t *n = c.all; n && rc == LH_OK; n = n->next_all)
		rc = check_chain(&c, n, 0);
	if (rc != LH_OK) {
		lh_jsonschema_free(c.s);
		return rc;
	}
	*ret_schema = c.s;
	return LH_OK;
}

lh_err_t lh_jsonschema_compile(const json_t *schema, lh_jsonschema_t **ret_schema, lh_error_t *err)
{
	return lh_jsonschema_compile_ex(schema, NULL, ret_schema, err);
}

lh_jsonschema_t *lh_jsonschema_free(lh_jsonschema_t *schema)
{
	if (schema) {
		lh_arena_free(schema->arena);
		free(schema);
	}
	return NULL;
}
