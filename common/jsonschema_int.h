/* jsonschema_int.h — the compiled form of a schema, shared by jsonschema.c (compilation) and
 * jsonschema_validate.c (validation). Private to those two files. */
#ifndef LH_JSONSCHEMA_INT_H
#define LH_JSONSCHEMA_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "jsonschema.h"

#define LH_JS_MAX_DEPTH LH_JSONSCHEMA_MAX_DEPTH
#define LH_JS_PATH_CAP 400 /* longest path shown in a message; longer ones end in "..." */

/* type bits, in the order messages list them ("string or null") */
enum {
	LH_JS_T_STRING = 1 << 0,
	LH_JS_T_NUMBER = 1 << 1,
	LH_JS_T_INTEGER = 1 << 2,
	LH_JS_T_BOOLEAN = 1 << 3,
	LH_JS_T_OBJECT = 1 << 4,
	LH_JS_T_ARRAY = 1 << 5,
	LH_JS_T_NULL = 1 << 6,
};
#define LH_JS_N_TYPES 7
extern const char *const lh_jsonschema_type_names[LH_JS_N_TYPES];

typedef struct lh_js_node lh_js_node_t;

typedef struct lh_js_num {
	bool set;
	bool is_int;
	json_int_t i;
	double d;
} lh_js_num_t;

typedef struct lh_js_prop {
	const char *name;
	lh_js_node_t *schema;
} lh_js_prop_t;

typedef struct lh_js_list {
	lh_js_node_t **v;
	size_t n;
} lh_js_list_t;

/* One subschema. Everything hangs off the compiled schema's arena. */
struct lh_js_node {
	bool is_false;               /* the schema `false`: nothing matches */
	unsigned types;              /* LH_JS_T_* bits; 0 = any */
	json_t *const_value;         /* owned (arena cleanup); NULL = no const */
	json_t *enum_values;         /* array, owned; NULL = no enum */
	long min_length, max_length; /* -1 = unset */
	lh_js_num_t minimum, maximum, excl_min, excl_max;
	lh_js_prop_t *props; /* sorted by name (lh_jsonschema_prop_cmp) */
	size_t n_props;
	const char **required;
	size_t n_required;
	lh_js_node_t *addl; /* additionalProperties; NULL = anything */
	long min_props, max_props;
	lh_js_node_t *items; /* NULL = anything */
	long min_items, max_items;
	bool unique_items;
	lh_js_node_t *ref;
	lh_js_list_t all_of, any_of, one_of;
	/* compile-time */
	const char *where; /* "doc: /schema/path", for compile errors */
	int mark;          /* 0 unvisited, 1 on the DFS stack, 2 done */
	int chain;         /* longest run of same-instance applicators from here */
	lh_js_node_t *next_all;
};

struct lh_jsonschema {
	lh_arena_t *arena;
	lh_js_node_t *root;
};

/* Append s to buf (cap bytes, holding *len) as a JSON pointer token ("/" + s with ~0 ~1
 * escapes, control characters shown as ?); a token that does not fit is cut on a UTF-8
 * boundary and ends in "...". */
void lh_jsonschema_pointer_append(char *buf, size_t cap, size_t *len, const char *s);
/* Cut an incomplete UTF-8 sequence off the end of s. */
void lh_jsonschema_utf8_trim(char *s);
/* qsort / bsearch order of lh_js_prop_t by name */
int lh_jsonschema_prop_cmp(const void *a, const void *b);

#endif
