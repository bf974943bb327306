/* err.h — the one result type of Longhaul, and the error object for retry decisions.
 *
 * Every function that can fail returns lh_err_t (0 is success, negatives are errors). Where the
 * caller must decide whether to retry (Kafka, PostgreSQL, HTTP, LLM) the function also fills a
 * caller-owned lh_error_t with the code, a message in PostgreSQL's style (lower case, no final
 * period, says why), and the retriable / fatal flags. lh_error_t lives on the caller's stack: no
 * allocation, no free. */
#ifndef LH_ERR_H
#define LH_ERR_H

#include <stdbool.h>
#include <stdarg.h>

typedef enum lh_err {
	LH_OK = 0,
	LH_ERR_INVALID = -1,	 /* bad input from a user or a peer */
	LH_ERR_NOMEM = -2,
	LH_ERR_IO = -3,
	LH_ERR_DECODE = -4,	 /* bytes that do not decode */
	LH_ERR_TOO_LARGE = -5,
	LH_ERR_NOT_FOUND = -6,
	LH_ERR_KAFKA = -7,
	LH_ERR_PG = -8,
	LH_ERR_HTTP = -9,
	LH_ERR_TIMEOUT = -10,
	LH_ERR_CONFIG = -11,
	LH_ERR_STATE = -12,	 /* illegal state transition */
	LH_ERR_SCHEMA = -13,	 /* a value does not match its schema */
	LH_ERR_UNSUPPORTED = -14,
	LH_ERR_CONFLICT = -15,
	LH_ERR_INTERNAL = -16,
	LH_ERR_UNAVAILABLE = -17, /* a service cannot be reached */
	LH_ERR__COUNT = 18
} lh_err_t;

/* Stable upper-case name ("LH_ERR_DECODE") and a short description; static strings. */
const char *lh_err_name(lh_err_t code);
const char *lh_err_str(lh_err_t code);

typedef struct lh_error {
	lh_err_t code;
	bool retriable;
	bool fatal;
	char msg[512];
} lh_error_t;

/* Fill err (may be NULL) and return code. retriable/fatal are cleared; set them after. */
lh_err_t lh_error_set(lh_error_t *err, lh_err_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
lh_err_t lh_error_setv(lh_error_t *err, lh_err_t code, const char *fmt, va_list ap);
/* Like lh_error_set but marks the error retriable. */
lh_err_t lh_error_retry(lh_error_t *err, lh_err_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "context: old message". */
void lh_error_prefix(lh_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lh_error_clear(lh_error_t *err);

#endif
