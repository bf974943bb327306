/* codec_int.h — what the codec's files share (codec.c: paths, errors, value checks, descriptor
 * helpers, the envelope's keys and checks, event types; codec_scan.c: the pre-scan of raw
 * msgpack; codec_msgpack.c: msgpack decode and encode; codec_json.c: JSON conversion). Private
 * to those files; the public API is event.h and codec_desc.h.
 *
 * Every decoder and encoder carries an lh_codec_ctx_t: the path of the value being coded (for
 * messages such as "body.tasks[2].kind: unknown value \"foo\""), the caller's error and, when
 * decoding, the arena everything is copied into. The checks below fail through lh_codec_fail,
 * which prefixes the path. */
#ifndef LH_CODEC_INT_H
#define LH_CODEC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "event.h"

/* ---- paths and errors -------------------------------------------------------------------- */

typedef struct lh_codec_frame {
	const char *key; /* NULL: array index */
	size_t key_len;
	size_t index;
} lh_codec_frame_t;

typedef struct lh_codec_ctx {
	lh_arena_t *arena; /* decode: where everything goes */
	lh_error_t *err;
	int n; /* frames in use */
	lh_codec_frame_t path[LH_CODEC_MAX_DEPTH + 2];
} lh_codec_ctx_t;

/* arena and err are borrowed. */
static inline void lh_codec_ctx_init(lh_codec_ctx_t *c, lh_arena_t *arena, lh_error_t *err)
{
	c->arena = arena;
	c->err = err;
	c->n = 0;
}

/* Frames beyond the array are not recorded (the depth check fails first); pop stays balanced.
 * key is borrowed until the frame is popped. */
static inline void lh_codec_push_key(lh_codec_ctx_t *c, const char *key, size_t len)
{
	if (c->n < (int)(sizeof(c->path) / sizeof(c->path[0])))
		c->path[c->n] = (lh_codec_frame_t){.key = key, .key_len = len};
	c->n++;
}

static inline void lh_codec_push_index(lh_codec_ctx_t *c, size_t i)
{
	if (c->n < (int)(sizeof(c->path) / sizeof(c->path[0])))
		c->path[c->n] = (lh_codec_frame_t){.key = NULL, .index = i};
	c->n++;
}

static inline void lh_codec_pop(lh_codec_ctx_t *c) { c->n--; }

/* Sets c->err to "<path>: <message>" (or just the message at the top level); returns code. */
lh_err_t lh_codec_fail(lh_codec_ctx_t *c, lh_err_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- value checks (the schema's rules; encoders check what decoders check) ---------------- */

/* s must be UTF-8 without NUL; *ret_cps gets its code points. */
lh_err_t lh_codec_check_text(lh_codec_ctx_t *c, const char *s, size_t len, int64_t *ret_cps);
/* s against field f; *ret_enum is the enum's static string for enums, else NULL (the caller
 * copies s). */
lh_err_t lh_codec_check_string(lh_codec_ctx_t *c, const lh_field_desc_t *f, const char *s,
			       size_t len, const char **ret_enum);
lh_err_t lh_codec_check_int(lh_codec_ctx_t *c, const lh_field_desc_t *f, int64_t v);
lh_err_t lh_codec_check_number(lh_codec_ctx_t *c, const lh_field_desc_t *f, double v);

/* ---- descriptor helpers ------------------------------------------------------------------ */

/* Bytes of one element of field f (the field itself, or one item of an array field). */
size_t lh_codec_elem_size(const lh_field_desc_t *f);
/* Index of desc's field named key, or -1; *hint is where to look first, updated. */
int lh_codec_find_field(const lh_desc_t *desc, const char *key, size_t len, uint32_t *hint);
/* LH_OK when seen (one bit a field) holds every required field of desc, else fails naming the
 * first missing one. */
lh_err_t lh_codec_missing_required(lh_codec_ctx_t *c, const lh_desc_t *desc, uint64_t seen);
/* Whether an encoder writes the field: required fields always, optional ones when present. */
bool lh_codec_field_present(const char *base, const lh_field_desc_t *f);
/* json_decref for lh_arena_on_free. */
void lh_codec_json_release(void *j);

/* The array field f of the struct at base: *ret_n items at *ret_v (borrowed). */
static inline void lh_codec_array_get(const char *base, const lh_field_desc_t *f, size_t *ret_n,
				      char **ret_v)
{
	void *v;
	memcpy(ret_n, base + f->offset + offsetof(lh_array_t, n), sizeof(size_t));
	memcpy(&v, base + f->offset + offsetof(lh_array_t, v), sizeof(void *));
	*ret_v = v;
}

/* Stores n and v (the struct keeps the pointer) in the array field f. */
static inline void lh_codec_array_set(char *base, const lh_field_desc_t *f, size_t n, void *v)
{
	memcpy(base + f->offset + offsetof(lh_array_t, n), &n, sizeof(size_t));
	memcpy(base + f->offset + offsetof(lh_array_t, v), &v, sizeof(void *));
}

/* ---- the envelope ------------------------------------------------------------------------ */

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

#define ENV_REQUIRED                                                                              \
	((1u << ENV_V) | (1u << ENV_ID) | (1u << ENV_TYPE) | (1u << ENV_PLAN_ID) |                \
	 (1u << ENV_TS_US) | (1u << ENV_ACTOR) | (1u << ENV_BODY))

typedef struct lh_codec_env_key {
	const char *name;
	size_t len;
} lh_codec_env_key_t;

/* The envelope's keys, indexed by enum env_key. */
extern const lh_codec_env_key_t lh_codec_env_keys[ENV__COUNT];

/* The enum env_key of a counted key, or -1. */
int lh_codec_env_key_find(const char *s, size_t len);
/* LH_OK when seen (bit 1 << enum env_key) holds every required key, else fails naming one. */
lh_err_t lh_codec_env_missing(lh_codec_ctx_t *c, unsigned seen);
lh_err_t lh_codec_check_version(lh_codec_ctx_t *c, int64_t v);
lh_err_t lh_codec_check_task_no(lh_codec_ctx_t *c, int64_t v);
lh_err_t lh_codec_check_attempt(lh_codec_ctx_t *c, int64_t v);
lh_err_t lh_codec_check_tenant(lh_codec_ctx_t *c, const char *s, size_t len);
/* Fails with LH_ERR_UNSUPPORTED naming the (sanitized) type s. */
lh_err_t lh_codec_unknown_type(lh_codec_ctx_t *c, const char *s, size_t len);
/* The event type of a counted name, or LH_EV__NONE. */
lh_event_type_t lh_codec_type_lookup(const char *s, size_t len);
/* new, in arena: a zeroed event owned by arena, task_no LH_NO_TASK. */
lh_event_t *lh_codec_event_alloc(lh_arena_t *arena);

/* ---- msgpack pre-scan (codec_scan.c) ----------------------------------------------------- */

/* One linear pass over d that checks the structure (lengths, nesting depth, map keys are
 * strings, no trailing bytes) before msgpack-c allocates anything; d is borrowed. */
lh_err_t lh_codec_mp_scan(lh_codec_ctx_t *c, const unsigned char *d, size_t len);

#endif
