/* proc.h — starting other programs from lhctl dev: daemons it supervises, and initdb / pg_ctl.
 *
 * lhctl dev hosts librdkafka's threads (the embedded broker), so a forked child does only
 * async-signal-safe work before execve: everything (argv, envp, user ids, paths) is prepared
 * before fork. An exec failure comes back to the parent through a close-on-exec pipe, so
 * lhctl_spawn reports "could not run X: No such file or directory" instead of a child that exits
 * with 127. */
#ifndef LHCTL_PROC_H
#define LHCTL_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

typedef struct lhctl_spawn {
	const char *path;     /* executable (absolute or relative to the cwd) */
	char *const *argv;    /* argv[0] included, NULL-terminated; borrowed */
	char *const *envp;    /* NULL: this process's environment */
	const char *log_path; /* stdout and stderr appended there (created 0640); NULL: /dev/null */
	bool own_pgroup;      /* setpgid(0, 0): a terminal's Ctrl-C reaches only lhctl */
	bool die_with_parent; /* PR_SET_PDEATHSIG SIGTERM: no orphan daemons if lhctl is killed */
	bool set_user;	      /* run as uid/gid (lhctl runs as root, PostgreSQL must not) */
	uid_t uid;
	gid_t gid;
} lhctl_spawn_t;

/* Start s. On success *ret_pid is the child (reap it with waitpid). */
lh_err_t lhctl_spawn(const lhctl_spawn_t *s, pid_t *ret_pid, lh_error_t *err);

/* Start s and wait for it up to timeout_ms (then SIGKILL and LH_ERR_TIMEOUT). *ret_status is the
 * exit status, or 128 + the signal that ended it. */
lh_err_t lhctl_spawn_wait(const lhctl_spawn_t *s, int timeout_ms, int *ret_status,
			  lh_error_t *err);

/* "exit status 1", "killed by signal 9 (Killed)" for a waitpid status, into buf. */
const char *lhctl_status_str(int wstatus, char *buf, size_t n);

/* The last non-empty line of a file (at most n-1 bytes of it) into buf; "" when none. */
const char *lhctl_last_line(const char *path, char *buf, size_t n);

#endif
