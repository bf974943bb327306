/* event.h — the envelope every message on lh.events and lh.tasks.<tier> carries, and its codecs.
 *
 * Wire form: a msgpack map {v, id, type, plan_id, task_no?, attempt?, ts_us, tenant?, actor{kind,id},
 * causation_id?, body} (ids as 16-byte bin). JSON form (REST edge, PostgreSQL jsonb, lhctl events
 * tail): the same keys, plan_id as a dashed UUID, id/causation_id as 32 hex digits.
 *
 * Bodies are the structs generated from schemas/ (lh_types.h): type "attempt.succeeded" has body
 * lh_attempt_succeeded_t and enum value LH_EV_ATTEMPT_SUCCEEDED. Decoding is strict: unknown keys,
 * wrong types, missing required fields, unknown enum values, events over the size limit and nesting
 * deeper than LH_CODEC_MAX_DEPTH are errors (LH_ERR_DECODE / LH_ERR_SCHEMA / LH_ERR_TOO_LARGE) with
 * a message naming the field path, e.g. "body.tasks[2].kind: unknown value \"foo\"". */
#ifndef LH_EVENT_H
#define LH_EVENT_H

#include <jansson.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "err.h"
#include "ids.h"
#include "lh_types.h" /* generated */

#define LH_ENVELOPE_VERSION 1
#define LH_NO_TASK (-1)
#define LH_CODEC_MAX_DEPTH 32
#define LH_EVENT_MAX_BYTES (1024 * 1024) /* hard cap on an encoded event */

typedef struct lh_event {
	int v;			/* LH_ENVELOPE_VERSION */
	lh_id_t id;
	lh_event_type_t type;
	lh_id_t plan_id;
	int64_t task_no;	/* LH_NO_TASK when absent; the plan task is 0 */
	int64_t attempt;	/* 0 when absent; attempts count from 1 */
	int64_t ts_us;		/* producer's clock, informational */
	const char *tenant;	/* NULL means "default" */
	lh_actor_t actor;	/* generated from schemas/defs/actor.json */
	lh_id_t causation_id;	/* all zero when absent */
	void *body;		/* the generated body struct of type; never NULL in a valid event */
	lh_arena_t *arena;	/* owns the strings and body of a decoded event; NULL if caller-built */
} lh_event_t;

/* Name of a type ("attempt.succeeded"), static; NULL for an unknown value. */
const char *lh_event_type_name(lh_event_type_t type);
/* LH_ERR_NOT_FOUND for a name no schema defines. */
lh_err_t lh_event_type_parse(const char *name, lh_event_type_t *ret_type);

/* Encode to msgpack, appended to out. LH_ERR_TOO_LARGE past LH_EVENT_MAX_BYTES, LH_ERR_SCHEMA when a
 * required field is missing (NULL string). The event is only read. */
lh_err_t lh_event_encode(const lh_event_t *ev, lh_buf_t *out, lh_error_t *err);

/* Decode msgpack. On success *ret_ev is new (free with lh_event_free); on error nothing is
 * allocated and err says why. Never crashes on any input (a fuzz target proves it). */
lh_err_t lh_event_decode(const void *data, size_t len, lh_event_t **ret_ev, lh_error_t *err);

/* Free a decoded event (its arena and any json_t it holds). Accepts NULL, returns NULL. */
lh_event_t *lh_event_free(lh_event_t *ev);

/* JSON form. lh_event_to_json returns a new reference (NULL only on out-of-memory). */
json_t *lh_event_to_json(const lh_event_t *ev);
/* Its body's JSON form, as in lh_event_to_json (new reference; NULL on failure). */
json_t *lh_event_body_to_json(const lh_event_t *ev);
/* Strict parse of the JSON form into a new event (free with lh_event_free). */
lh_err_t lh_event_from_json(const json_t *j, lh_event_t **ret_ev, lh_error_t *err);

/* Generic struct codecs, for any generated type (bodies and defs) — used e.g. to parse planner
 * output (lh_planner_output_desc) strictly from JSON. Memory of *ret comes from arena; json_t
 * values inside are referenced and released by lh_arena_on_free when the arena goes. */
lh_err_t lh_struct_from_json(const lh_desc_t *desc, const json_t *j, lh_arena_t *arena,
			     void **ret, lh_error_t *err);
json_t *lh_struct_to_json(const lh_desc_t *desc, const void *s); /* new reference */

/* Descriptor of the body struct of an event type; NULL for an unknown type. */
const lh_desc_t *lh_event_body_desc(lh_event_type_t type);

#endif
