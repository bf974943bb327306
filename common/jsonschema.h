/* jsonschema.h — JSON Schema validation over Jansson, for the subset that model APIs use
 * (OpenAI strict structured outputs, Anthropic tool input_schema) and the project's own
 * schemas/defs/.
 *
 * Compile once, validate many: lh_jsonschema_compile() checks the whole schema up front
 * (malformed keywords, keywords this validator does not implement, $refs that do not resolve,
 * $ref cycles that never descend into the value) and resolves every $ref to a pointer, so
 * validation does no lookups and cannot loop. A compiled schema is immutable: any number of
 * threads may validate against it at once.
 *
 * Keywords:
 *   type (a name or an array of names: string number integer boolean object array null),
 *   properties, required, additionalProperties (boolean or schema), minProperties,
 *   maxProperties, items (one schema for every element), minItems, maxItems, uniqueItems,
 *   enum, const, anyOf, oneOf, allOf, minLength, maxLength (in code points), minimum, maximum,
 *   exclusiveMinimum, exclusiveMaximum (numbers, 2019+ style), $ref, $defs / definitions (at a
 *   document's root). Boolean schemas (true / false) anywhere a schema goes.
 *   Annotations, ignored: title description default examples $schema $id $comment format
 *   readOnly writeOnly deprecated.
 *   Anything else (pattern, not, if/then/else, prefixItems, patternProperties, ...) is a
 *   compile error naming the keyword: a constraint this code would not enforce must not look
 *   enforced.
 *
 * $ref: "#" (the document's root), "#/$defs/NAME", "#/definitions/NAME" (NAME with RFC 6901
 * escapes ~0 ~1), and, with a resolver in the options, any other string without a '#' — the
 * resolver maps it to a schema document (schemas/defs/ refers to other files by bare name:
 * "$ref": "planner_task"). Each external document is compiled once, and "#..." refs inside it
 * refer to that document. $ref may have sibling keywords; they apply too (2020-12 semantics).
 *
 * Semantics follow JSON Schema 2020-12: an integer-valued real (1.0) is an integer; numbers
 * compare by value in enum, const and uniqueItems (1 equals 1.0); "number" accepts integers.
 *
 * Errors. Validation returns the FIRST error in document order (a pre-order walk of the value:
 * an object's own problems — wrong type, a missing required property — come before its
 * members'; members in the order they appear), as one line meant to be shown to a model:
 *   /tasks/2/kind: "dance" is not one of "act"
 *   /tasks/0: missing required property "instructions"
 *   (root): expected object, got array
 * The path is a JSON pointer (RFC 6901; "(root)" for the whole value). anyOf / oneOf failures
 * say that no alternative matched and quote the closest alternative's own error (the one that
 * got furthest into the value).
 *
 * Bounds: schemas nest at most 64 levels (JSON nesting of subschemas), chains of $ref / allOf /
 * anyOf / oneOf that do not descend into the value are at most 64 long, values are checked to
 * at most 64 levels of nesting (deeper is an error), and one validation makes at most
 * LH_JSONSCHEMA_MAX_STEPS subschema evaluations (nested anyOf can be exponential), else it
 * fails with LH_ERR_TOO_LARGE. */
#ifndef LH_JSONSCHEMA_H
#define LH_JSONSCHEMA_H

#include <jansson.h>

#include "err.h"

#define LH_JSONSCHEMA_MAX_DEPTH 64
#define LH_JSONSCHEMA_MAX_STEPS 1000000L

typedef struct lh_jsonschema lh_jsonschema_t;

/* Maps a $ref that is not a "#..." pointer (e.g. "planner_task") to its schema document.
 * Returns a borrowed reference that must stay valid until lh_jsonschema_compile_ex returns
 * (the compiled schema copies what it keeps), or NULL when the name is unknown. */
typedef const json_t *(*lh_jsonschema_resolve_cb)(const char *ref, void *opaque);

typedef struct lh_jsonschema_opts {
	lh_jsonschema_resolve_cb resolve; /* NULL: only "#..." refs */
	void *opaque;                     /* passed to resolve */
} lh_jsonschema_opts_t;

/* Compile schema (borrowed; nothing of it is kept). On success *ret_schema is new (free with
 * lh_jsonschema_free). Errors: LH_ERR_INVALID for a malformed schema or a $ref that does not
 * resolve, LH_ERR_UNSUPPORTED for a keyword or a form of $ref this validator does not implement
 * (an external $ref without a resolver included), LH_ERR_TOO_LARGE past the bounds below; the
 * message names the schema location: `could not compile schema: /properties/id: unsupported
 * keyword "pattern"`. *ret_schema is written only on success. */
lh_err_t lh_jsonschema_compile(const json_t *schema, lh_jsonschema_t **ret_schema, lh_error_t *err);
/* The same with options (may be NULL). */
lh_err_t lh_jsonschema_compile_ex(const json_t *schema, const lh_jsonschema_opts_t *opts,
				  lh_jsonschema_t **ret_schema, lh_error_t *err);

/* LH_OK when value (borrowed) matches; LH_ERR_SCHEMA with the first error's message (see the
 * top of this file); LH_ERR_TOO_LARGE when the step budget ran out; LH_ERR_INVALID for NULL
 * arguments. */
lh_err_t lh_jsonschema_validate(const lh_jsonschema_t *schema, const json_t *value,
				lh_error_t *err);

/* Accepts NULL; returns NULL. */
lh_jsonschema_t *lh_jsonschema_free(lh_jsonschema_t *schema);

#endif
