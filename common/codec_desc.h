/* codec_desc.h — the descriptor tables schemas/gen.py emits (lh_types.c) and the generic codec
 * (codec.c) walks, protobuf-c style: one lh_desc_t per generated struct, one lh_field_desc_t per
 * schema property. Nothing here is written by hand per type; see schemas/README.md.
 *
 * Field kinds map to C members as follows (T is the element type of an array):
 *   LH_KIND_STRING  const char *      NULL = absent
 *   LH_KIND_INT     int64_t           absent optional = 0
 *   LH_KIND_NUMBER  double            absent optional = 0
 *   LH_KIND_BOOL    bool              absent optional = false
 *   LH_KIND_STRUCT  lh_NAME_t         plus bool has_NAME at has_offset
 *   LH_KIND_JSON    json_t *          NULL = absent; any JSON value (json_null() is a value)
 *   LH_FIELD_ARRAY  struct { size_t n; T *v; }   n == 0 = absent (optional) or empty */
#ifndef LH_CODEC_DESC_H
#define LH_CODEC_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lh_kind {
	LH_KIND_STRING = 1,
	LH_KIND_INT,
	LH_KIND_NUMBER,
	LH_KIND_BOOL,
	LH_KIND_STRUCT,
	LH_KIND_JSON,
} lh_kind_t;

#define LH_FIELD_REQUIRED 0x01u
#define LH_FIELD_ARRAY 0x02u /* the member is struct { size_t n; T *v; } */
#define LH_FIELD_MIN 0x04u   /* imin (int, string length in code points) or dmin (number) set */
#define LH_FIELD_MAX 0x08u   /* imax or dmax set */

/* The layout every generated array member shares (checked by _Static_assert in lh_types.c). */
typedef struct lh_array {
	size_t n;
	void *v;
} lh_array_t;

struct lh_desc;

typedef struct lh_field_desc {
	const char *name;		 /* the schema property name, also the C member name */
	uint32_t name_len;
	uint8_t kind;			 /* lh_kind_t of the value, or of the elements of an array */
	uint8_t flags;			 /* LH_FIELD_* */
	size_t offset;			 /* of the member (of the array struct for arrays) */
	size_t has_offset;		 /* LH_KIND_STRUCT, not array: offset of bool has_<name> */
	int64_t imin, imax;		 /* integer bounds, or string minLength / maxLength */
	double dmin, dmax;		 /* number bounds */
	const char *const *enum_values; /* string enum; NULL = any string */
	uint32_t n_enum;
	const struct lh_desc *sub;	 /* LH_KIND_STRUCT: descriptor of the embedded struct */
} lh_field_desc_t;

typedef struct lh_desc {
	const char *name; /* schema $id: "task_spec", "attempt.succeeded" */
	size_t size;	  /* sizeof the generated struct */
	bool strict;	  /* additionalProperties: false — unknown keys are errors */
	uint32_t n_fields; /* at most 64 (gen.py enforces it) */
	uint64_t required_mask; /* bit i set when fields[i] is required */
	const lh_field_desc_t *fields;
} lh_desc_t;

/* One row of lh_event_types[] (lh_types.h): index == enum value, sorted by name from index 1. */
typedef struct lh_event_type_info {
	const char *name; /* "attempt.succeeded" */
	int type;	  /* lh_event_type_t */
	const lh_desc_t *body;
} lh_event_type_info_t;

#endif
