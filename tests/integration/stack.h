/* stack.h — a Longhaul stack for integration tests: daemons as child processes against the real
 * Kafka broker and PostgreSQL server named by LH_KAFKA_BROKERS and LH_PG_URL.
 *
 * Each test gets its own topic prefix and consumer groups, so tests never see each other's
 * events; rows in the shared tables are told apart by plan id. Daemon logs go to
 * $LH_TEST_LOGS (default /tmp/lh-test-logs)/PREFIX/NAME.log. Every wait has a deadline. */
#ifndef LH_TEST_STACK_H
#define LH_TEST_STACK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "event.h"
#include "ids.h"
#include "kafka.h"

#define TS_MAX_PROCS 32
#define TS_SKIP 77 /* meson's exit code for a skipped test */

typedef struct ts_proc {
	char name[64];
	char exe[512];
	char *argv[24];
	int argc;
	pid_t pid;
	int exit_status; /* of its last exit that was waited for (-1 before) */
} ts_proc_t;

typedef struct ts_stack {
	char prefix[32];     /* "t1a2b3c4." */
	const char *brokers; /* borrowed from the environment */
	const char *pg_url;
	char build_root[512];
	char log_dir[512];
	ts_proc_t procs[TS_MAX_PROCS];
	int nprocs;
	lh_kafka_t *producer;
	PGconn *pg;
	char fakellm_url[128];
} ts_stack_t;

/* Reads the environment; returns 0, or TS_SKIP after printing why (services not configured). */
int ts_init(ts_stack_t *ts, const char *build_root);
void ts_finish(ts_stack_t *ts); /* kills every child, frees */

/* Start a daemon: exe relative to the build root ("coordinator/lh-coordinator"); extra
 * arguments end with NULL. The common flags (--brokers, --pg-url, --topic-prefix) are added.
 * Returns the process index. */
int ts_spawn(ts_stack_t *ts, const char *name, const char *exe, ...) __attribute__((sentinel));
/* The coordinator and the materializer, each in a consumer group of its own. Extra coordinator
 * arguments end with NULL. */
int ts_spawn_coordinator(ts_stack_t *ts, ...) __attribute__((sentinel));
int ts_spawn_materializer(ts_stack_t *ts);
/* A worker of a tier, in a group of its own, answering through fakellm when it runs (else the
 * scripted model). */
int ts_spawn_worker(ts_stack_t *ts, const char *tier);
/* Start it again with the same arguments (after a kill). */
void ts_restart(ts_stack_t *ts, int idx);
/* Send sig; for SIGKILL also reap. */
void ts_kill(ts_stack_t *ts, int idx, int sig);
/* Wait for a child to exit within ms; returns its exit status or -1 on timeout. */
int ts_wait_exit(ts_stack_t *ts, int idx, int ms);

/* Start tests/fakellm on a free port with the given latency; sets fakellm_url. */
int ts_fakellm(ts_stack_t *ts, int latency_ms);

/* Produce goal.submitted for a new plan; returns its id. */
lh_id_t ts_submit(ts_stack_t *ts, const char *goal);
/* The same with a budget and a planner tier (either may be NULL). */
lh_id_t ts_submit_with(ts_stack_t *ts, const char *goal, const lh_budget_t *budget,
		       const char *planner_tier);
/* Produce any event to the events topic (v, ts_us and, when zero, a random id are filled). */
void ts_emit(ts_stack_t *ts, lh_event_t *ev);
/* Start another fakellm with a script (JSON text, may be NULL) and latency; writes its base URL
 * (http://127.0.0.1:PORT/v1) into url. Returns 0 or -1. */
int ts_fakellm_with(ts_stack_t *ts, int latency_ms, const char *script_json, char url[128]);
/* A worker of a tier answering through the given base URL, with extra arguments (NULL-ended). */
int ts_spawn_worker_url(ts_stack_t *ts, const char *tier, const char *url, ...)
	__attribute__((sentinel));
/* The port a gateway spawned as process NAME with --port 0 listens on, read from the
 * "gateway.started" line of its log (waits up to 20 s); -1 when it did not start. */
int ts_gateway_port(ts_stack_t *ts, const char *name);
/* The "port" of the first line of NAME's log whose event is `event` (e.g. "worker.metrics"),
 * waiting up to ms; -1 when none came. */
int ts_log_port(ts_stack_t *ts, const char *name, const char *event, int ms);
/* GET url into out (NUL-terminated; 3 s timeout); the HTTP status, 0 when nothing answered. */
long ts_http_get(const char *url, lh_buf_t *out);
/* POST json to http://127.0.0.1:port PATH with an Idempotency-Key; the HTTP status (0: no
 * answer; the body is dropped). */
long ts_http_post(int port, const char *path, const char *json, const char *idempotency_key);
/* The value of the Prometheus sample line that starts with `series ` exactly, or -1. */
double ts_metric(const char *text, const char *series);
/* Wait until a line of NAME's log holds a and (when not NULL) b; false after ms. */
bool ts_wait_log(ts_stack_t *ts, const char *name, const char *a, const char *b, int ms);
/* Count events of a plan of a type in PostgreSQL (-1 on error). */
int ts_count_events(ts_stack_t *ts, const char *plan, const char *type);

/* Run SQL with one text parameter (may be NULL for none) and return the first column of the
 * first row (static buffer; "" when no row; NULL on error). */
const char *ts_sql1(ts_stack_t *ts, const char *sql, const char *param);
/* Poll until ts_sql1(sql, param) equals want, or ms pass. */
bool ts_wait_sql(ts_stack_t *ts, int ms, const char *sql, const char *param, const char *want);

/* lh-materializer --rebuild of this stack's topic into schema (storing offsets under group's
 * consumer name), then `checksum --against-schema schema`: each returns its exit status (as
 * system() does; 0 = done / equal). */
int ts_rebuild(ts_stack_t *ts, const char *schema, const char *group);
int ts_checksum_against(ts_stack_t *ts, const char *schema);

#endif
