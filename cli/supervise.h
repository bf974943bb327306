/* supervise.h — the daemons of lhctl dev: start them, wait until they are up, restart the ones
 * that die (with backoff), and stop them all.
 *
 * Each child gets its own process group (a terminal's Ctrl-C reaches only lhctl, which then stops
 * them in order) and PR_SET_PDEATHSIG (if lhctl is killed outright they get SIGTERM). Its stdout
 * and stderr are appended to STATE_DIR/logs/NAME.log. A child counts as up once its log shows a
 * `"event":"….started"` line written after it was spawned (every Longhaul daemon logs one when it
 * starts consuming); one that exits before that fails the start-up with its last log line.
 *
 * Threads: everything runs on the thread that calls lhctl_sup_*, in lhctl_sup_run's libevent
 * loop once started. */
#ifndef LHCTL_SUPERVISE_H
#define LHCTL_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "err.h"

struct event_base;
struct event;

#define LHCTL_SUP_MAX 32
#define LHCTL_SUP_ARGS 8

typedef struct lhctl_child {
	char name[96];	    /* "lh-worker --tier fast" */
	char log_name[64];  /* "worker-fast" */
	char *path;	    /* executable */
	char *argv[LHCTL_SUP_ARGS];
	char *log_path;
	pid_t pid;	    /* 0 while not running */
	int64_t started_us; /* monotonic */
	int64_t log_offset; /* where this run's log lines begin */
	bool ready;
	bool optional;	    /* its failure at start-up is reported, not fatal */
	int restarts;
	int backoff_ms;
	struct event *ev_restart;
	struct lhctl_sup *sup;
} lhctl_child_t;

typedef void (*lhctl_sup_change_cb)(void *opaque);

typedef struct lhctl_sup {
	lhctl_child_t children[LHCTL_SUP_MAX];
	int n;
	char **envp;	/* borrowed, for every child */
	FILE *out;	/* where restarts and stops are told */
	bool stopping;
	int kill_timeout_ms;
	lhctl_sup_change_cb on_change; /* a pid changed (dev.json is rewritten) */
	void *opaque;
	struct event_base *base;
	struct event *ev_chld, *ev_int, *ev_term, *ev_hup, *ev_kill, *ev_give_up;
} lhctl_sup_t;

void lhctl_sup_init(lhctl_sup_t *sup, char **envp, FILE *out);
/* Add a daemon (argv NULL-terminated, argv[0] is its display name). path and argv are copied.
 * An optional daemon that fails at start-up is reported and restarted later, instead of failing
 * the start-up (the gateway: the stack works without it). */
lh_err_t lhctl_sup_add(lhctl_sup_t *sup, const char *path, const char *log_dir,
		       const char *log_name, const char *const *argv, bool optional,
		       lh_error_t *err);
/* Spawn every child, then wait up to timeout_ms until each has logged that it started. A
 * required child that exits meanwhile, or an interrupt (lhctl_interrupted), fails with err saying
 * so (the others are left running: call lhctl_sup_stop_now). Children still silent at the
 * deadline are reported on sup->out and counted as running. */
lh_err_t lhctl_sup_start(lhctl_sup_t *sup, int timeout_ms, lh_error_t *err);
/* Supervise until SIGINT, SIGTERM or SIGHUP (or lhctl_interrupted already set); then SIGTERM to
 * every child, SIGKILL after kill_timeout_ms, and return once all are reaped (bounded). */
void lhctl_sup_run(lhctl_sup_t *sup);
/* Without a loop: SIGTERM all, wait (bounded), SIGKILL the rest, reap. */
void lhctl_sup_stop_now(lhctl_sup_t *sup);
/* [{name, pid, log, restarts}] — new reference. */
json_t *lhctl_sup_json(const lhctl_sup_t *sup);
void lhctl_sup_finish(lhctl_sup_t *sup);

#endif
