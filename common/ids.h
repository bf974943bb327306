/* ids.h — plan ids (UUIDv7), deterministic event ids, hex and sha256 helpers.
 *
 * An event id is 128 bits derived from its cause (DESIGN §10): the first 16 bytes of
 * sha256(plan_id || "\0" || cause || "\0" || type || "\0" || index), so a coordinator that crashes
 * and repeats a decision produces the same id and consumers drop the duplicate. */
#ifndef LH_IDS_H
#define LH_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct lh_id {
	uint8_t b[16];
} lh_id_t; /* plan ids (UUIDv7) and event ids (derived) share the shape */

#define LH_UUID_STR_LEN 36 /* without the NUL */
#define LH_ID_HEX_LEN 32

/* A new UUIDv7 from the wall clock and libcrypto's random bytes. */
lh_id_t lh_uuid7_new(void);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into out[37]. */
void lh_uuid_fmt(const lh_id_t *id, char out[LH_UUID_STR_LEN + 1]);
/* Accepts the dashed form or 32 hex digits; LH_ERR_INVALID otherwise. */
lh_err_t lh_uuid_parse(const char *s, lh_id_t *ret_id);
void lh_id_hex(const lh_id_t *id, char out[LH_ID_HEX_LEN + 1]);
bool lh_id_is_zero(const lh_id_t *id);
bool lh_id_eq(const lh_id_t *a, const lh_id_t *b);

/* Derive an event id. cause is any byte string naming the cause (e.g. "task:3:attempt:2" or the
 * causing event's 16 bytes); index separates several events of one cause. */
lh_id_t lh_event_id_derive(const lh_id_t *plan_id, const void *cause, size_t cause_len,
			   const char *type, uint32_t index);
/* Convenience: cause given as a printf format. */
lh_id_t lh_event_id_derivef(const lh_id_t *plan_id, const char *type, uint32_t index,
			    const char *cause_fmt, ...) __attribute__((format(printf, 4, 5)));

/* sha256 of data into out[32]; and as 64 lower-case hex digits into hex[65]. */
void lh_sha256(const void *data, size_t len, uint8_t out[32]);
void lh_sha256_hex(const void *data, size_t len, char hex[65]);
void lh_hex(const uint8_t *bytes, size_t n, char *out); /* out holds 2n+1 */

/* Wall clock in microseconds since the epoch, and a monotonic clock in microseconds. */
int64_t lh_now_us(void);
int64_t lh_mono_us(void);

#endif
