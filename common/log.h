/* log.h — structured JSON-lines logging.
 *
 * One line per record on stderr (or the stream given to lh_log_init):
 *   {"ts":"2026-11-26T06:10:25.123456Z","level":"info","daemon":"lh-coordinator",
 *    "event":"plan.created","msg":"plan created","plan_id":"…"}
 * Fields are key/value string pairs after the message, ended by NULL. Library code in common/ logs
 * only at debug; daemons log once where they decide. Secrets never reach a log: pass
 * lh_log_redact(value) for anything that may hold one. Thread-safe (one write per line). */
#ifndef LH_LOG_H
#define LH_LOG_H

#include <stdbool.h>
#include <stdio.h>

typedef enum lh_log_level {
	LH_LOG_DEBUG = 0,
	LH_LOG_INFO = 1,
	LH_LOG_WARN = 2,
	LH_LOG_ERROR = 3,
	LH_LOG_OFF = 4
} lh_log_level_t;

/* Debug categories, checked before formatting (lh_log_debug_on). */
enum {
	LH_DBG_KAFKA = 1 << 0,
	LH_DBG_PG = 1 << 1,
	LH_DBG_HTTP = 1 << 2,
	LH_DBG_FOLD = 1 << 3,
	LH_DBG_CODEC = 1 << 4,
	LH_DBG_ALL = 0xffff
};

/* daemon is borrowed for the life of the process; out NULL means stderr. */
void lh_log_init(const char *daemon, lh_log_level_t min, FILE *out);
/* Parse "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int lh_log_level_parse(const char *s);
/* Parse "kafka,pg,http,fold,codec,all" into a bitmask; returns -1 on an unknown word. */
int lh_log_debug_parse(const char *s);
void lh_log_set_level(lh_log_level_t min);
void lh_log_set_debug(int mask);
bool lh_log_enabled(lh_log_level_t level);
bool lh_log_debug_on(int category);

/* Fields: const char *key, const char *value pairs, ended by NULL. A NULL value prints null. */
void lh_log(lh_log_level_t level, const char *event, const char *msg, ...)
	__attribute__((sentinel));

#define lh_log_info(ev, ...) lh_log(LH_LOG_INFO, ev, __VA_ARGS__, (char *)NULL)
#define lh_log_warn(ev, ...) lh_log(LH_LOG_WARN, ev, __VA_ARGS__, (char *)NULL)
#define lh_log_error(ev, ...) lh_log(LH_LOG_ERROR, ev, __VA_ARGS__, (char *)NULL)
#define lh_log_debug(cat, ev, ...)                                                   \
	do {                                                                         \
		if (lh_log_debug_on(cat))                                            \
			lh_log(LH_LOG_DEBUG, ev, __VA_ARGS__, (char *)NULL);         \
	} while (0)

/* Small helpers to format numbers for fields; the result lives in the given buffer. */
const char *lh_log_i64(char buf[24], long long v);

#endif
