/* common.h — what every lhctl command shares: error lines, exit codes, the state directory, the
 * dev stack's dev.json, connection settings, and number formatting.
 *
 * Errors: a command prints exactly one line "lhctl: what went wrong" on stderr (lhctl_fail) and
 * returns one of the exit codes below. Progress and results go to stdout. */
#ifndef LHCTL_COMMON_H
#define LHCTL_COMMON_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "err.h"

#define LHCTL_EXIT_OK 0
#define LHCTL_EXIT_FAIL 1    /* the operation failed: plan failed, not found, unreachable */
#define LHCTL_EXIT_USAGE 2   /* bad input */
#define LHCTL_EXIT_PENDING 3 /* not finished: a plan still running, a stack not running */
#define LHCTL_EXIT_INTERRUPTED 130

#define LHCTL_GOAL_MAX 65536

/* Set by the SIGINT/SIGTERM handler that lhctl_catch_signals installs (a signal flag). */
extern volatile sig_atomic_t lhctl_interrupted;
/* Install handlers that set lhctl_interrupted (no SA_RESTART, so blocking calls return EINTR). */
void lhctl_catch_signals(void);

/* Print "lhctl: MESSAGE" on stderr (one line: newlines in the message become spaces) and return
 * code, so that a command can `return lhctl_fail(LHCTL_EXIT_USAGE, "...")`. */
int lhctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load a command's settings (the common table plus the command's own, NULL-terminated in spec).
 * Returns -1 when the caller should go on; otherwise the exit code to return now (0 after
 * --help, 2 after a bad option, with its one error line already printed). Leftover positional
 * arguments come back in *ret_rest (new array, free it) / *ret_nrest. Logging stays off unless
 * the user asked for it (--log-level, LH_LOG_LEVEL), so librdkafka's chatter never reaches the
 * terminal. */
int lhctl_load(const lh_cfg_spec_t *spec, void *cfg, int argc, char **argv, char ***ret_rest,
	       int *ret_nrest);

/* The dev stack's directory: flag (may be NULL or empty), else LH_STATE_DIR, else
 * $XDG_STATE_HOME/longhaul, else ~/.local/state/longhaul. New string; NULL with err set when no
 * home directory is known. */
char *lhctl_state_dir(const char *flag, lh_error_t *err);
/* mkdir -p with mode for the directories it creates. */
lh_err_t lhctl_mkdirs(const char *path, mode_t mode, lh_error_t *err);

/* What dev.json says about a running dev stack. */
typedef struct lhctl_devinfo {
	pid_t pid;
	unsigned long long start_ticks; /* /proc/PID/stat starttime: guards against pid reuse */
	char *brokers;
	char *pg_url;
	bool embedded_broker;
	bool private_pg;
	char *pg_dir;	   /* private cluster's directory, or NULL */
	char *started_at;  /* ISO 8601 */
	json_t *children;  /* [{name, pid, log, restarts}], new reference or NULL */
} lhctl_devinfo_t;

/* Read DIR/dev.json. LH_ERR_NOT_FOUND when there is none; LH_ERR_DECODE when it is damaged. */
lh_err_t lhctl_devinfo_read(const char *dir, lhctl_devinfo_t *ret_info, lh_error_t *err);
void lhctl_devinfo_finish(lhctl_devinfo_t *info);
/* Whether the stack dev.json names is alive (its pid exists with the same start time). */
bool lhctl_devinfo_alive(const lhctl_devinfo_t *info);

/* Fill c->brokers and/or c->pg_url, when empty and needed, from the dev stack in the state
 * directory (c->state_dir or the default). *ret_from_dev (may be NULL) tells whether dev.json
 * was used. Errors say how to start the stack or which setting to give. */
lh_err_t lhctl_resolve(lh_common_cfg_t *c, bool need_kafka, bool need_pg, bool *ret_from_dev,
		       lh_error_t *err);

/* Process helpers (Linux /proc). */
unsigned long long lhctl_proc_start_ticks(pid_t pid); /* 0 when there is no such process */
bool lhctl_proc_alive(pid_t pid);		      /* exists and is not a zombie */
/* Wait until pid (not necessarily our child) is gone, up to timeout_ms. true when gone. */
bool lhctl_proc_wait_gone(pid_t pid, int timeout_ms);

/* A TCP port on 127.0.0.1 that is free now: preferred when it is, else one the kernel picks;
 * 0 on failure. (Whoever binds it next may lose a race; the daemons then fail loudly.) */
int lhctl_port_pick(int preferred);

/* "12,345" into buf. */
const char *lhctl_fmt_int(char buf[32], long long v);
/* "850 ms", "4.1 s", "3 min 12 s", "2 h 5 min" into buf. */
const char *lhctl_fmt_dur(char buf[32], long long ms);
/* Copy at most max_bytes of s into a one-line string (control characters become spaces, cut on a
 * UTF-8 boundary, "…" appended when cut). New string. */
char *lhctl_one_line(const char *s, size_t max_bytes);
/* A postgresql URL with its password replaced by "***". New string. */
char *lhctl_redact_url(const char *url);
/* Whether s is valid UTF-8 without NUL bytes in its first len bytes. */
bool lhctl_utf8_valid(const char *s, size_t len);
/* The current time as ISO 8601 UTC ("2026-11-26T06:10:25Z") into buf. */
const char *lhctl_iso_now(char buf[32]);

#endif
