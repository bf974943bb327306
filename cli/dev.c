/* dev.c — lhctl dev: the whole stack on one machine; lhctl dev stop, lhctl dev status.
 *
 * lhctl dev [--detach]:
 *   1. take STATE_DIR/dev.lock (flock, held for the stack's life; it names our pid)
 *   2. PostgreSQL: --pg-url, or the private cluster in STATE_DIR/pg (pgcluster.c); migrate
 *   3. Kafka: --brokers (topics ensured with the Admin API), or an embedded broker in this very
 *      process (librdkafka's mock cluster: in memory, NOT durable) with the topics created
 *   4. start lh-coordinator, lh-materializer, one lh-worker per tier, lh-gateway when built
 *      (supervise.c), wait until each says it started
 *   5. write STATE_DIR/dev.json (how other commands find the stack), print the summary
 *   6. supervise until SIGINT/SIGTERM, then stop the daemons, PostgreSQL (if started here) and
 *      the embedded broker, and remove dev.json
 * --detach forks first (before any thread exists); the parent waits (bounded) for the child's
 * report on a pipe and exits 0 once the stack is up, printing the same summary. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "cli.h"
#include "common.h"
#include "ids.h"
#include "kafka.h"
#include "pg.h"
#include "pgcluster.h"
#include "proc.h"
#include "supervise.h"

extern char **environ;

#define KAFKA_CHECK_MS 10000
#define TIER_PARTITIONS 4
#define STOP_TIMEOUT_MS (150 * 1000) /* daemons 10 s + PostgreSQL up to ~90 s + margin */

typedef struct dev_cfg {
	lh_common_cfg_t common;
	bool detach;
	int64_t ready_timeout_s;
	int64_t start_timeout_s;
} dev_cfg_t;

#define D(f) offsetof(dev_cfg_t, f)
static const lh_cfg_def_t dev_table[] = {
	{"dev.detach", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "detach", false, false,
	 "run in the background; return once the stack is up", D(detach)},
	{"dev.ready_timeout_s", LH_CFG_INT, "30", 1, 3600, NULL, "LH_DEV_READY_TIMEOUT", NULL, false,
	 false, "seconds to wait for each daemon to report that it started", D(ready_timeout_s)},
	{"dev.start_timeout_s", LH_CFG_INT, "180", 5, 3600, NULL, "LH_DEV_START_TIMEOUT", NULL, false,
	 false, "with --detach: seconds to wait for the whole stack to come up", D(start_timeout_s)},
	LH_CFG_END,
};

static const lh_cfg_spec_t dev_spec = {
	.prog = "lhctl dev",
	.usage = "[--state-dir DIR] [--pg-url URL] [--brokers B] [--detach] | dev stop | dev status",
	.summary =
		"Runs Longhaul on this machine: PostgreSQL (a private cluster in STATE_DIR/pg unless "
		"--pg-url is given), Kafka (an embedded, in-memory broker unless --brokers is given), "
		"lh-coordinator, lh-materializer, one lh-worker per tier and lh-gateway when built. "
		"Restarts a daemon that dies; Ctrl-C (or `lhctl dev stop`) stops everything. The "
		"state directory is --state-dir, else LH_STATE_DIR, else $XDG_STATE_HOME/longhaul, else "
		"~/.local/state/longhaul; logs go to STATE_DIR/logs. Binaries come from LH_BIN_DIR, "
		"else the build tree next to lhctl, else lhctl's own directory. With no LLM key "
		"configured the workers use the scripted model.",
	.tables = {lh_config_common_table, dev_table, NULL},
};

static const lh_cfg_spec_t dev_sub_spec = {
	.prog = "lhctl dev status",
	.usage = "[--state-dir DIR]",
	.summary = "Prints what runs in the dev stack of the state directory: the broker, the "
		   "database and its schema version, every daemon. Exit status 0 healthy, 1 degraded, "
		   "3 not running.",
	.tables = {lh_config_common_table, NULL},
};

/* The dev stack's one context, on lhctl_cmd_dev's stack. */
typedef struct dev_stack {
	dev_cfg_t cfg;
	char *dir, *log_dir, *json_path, *lock_path;
	int lock_fd;
	int report_fd; /* --detach: the pipe to the waiting parent; -1 otherwise */
	int64_t t0_us;
	char started_at[32];
	/* PostgreSQL */
	lhctl_pgc_t pgc;
	bool private_pg;
	char *pg_url;
	/* Kafka */
	lh_kafka_mock_t *mock;
	char *brokers;
	/* daemons */
	const char *tiers[LH_MAX_TIERS];
	char tiers_buf[1024];
	int ntiers;
	int gateway_port; /* chosen here (0: the gateway is absent or LH_GATEWAY_PORT decides) */
	char **envp;
	lhctl_sup_t sup;
	bool json_written;
} dev_stack_t;

/* ---- telling the user ----------------------------------------------------------------------- */

static void report(dev_stack_t *d, char kind, const char *text)
{
	lh_buf_t b;
	if (d->report_fd < 0)
		return;
	lh_buf_init(&b);
	lh_buf_printf(&b, "%c %s\n", kind, text);
	if (write(d->report_fd, b.data, b.len) < 0) {
		/* The parent is gone (it timed out): carry on, the log has everything. */
		close(d->report_fd);
		d->report_fd = -1;
	}
	lh_buf_finish(&b);
}

static void say(dev_stack_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(dev_stack_t *d, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("%s\n", line);
	fflush(stdout);
	report(d, 'M', line);
}

static int fail(dev_stack_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(dev_stack_t *d, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\t' || *p == '\r')
			*p = ' ';
	if (d->report_fd >= 0)
		report(d, 'E', line);
	else
		lhctl_fail(LHCTL_EXIT_FAIL, "%s", line);
	return LHCTL_EXIT_FAIL;
}

/* ---- finding things ------------------------------------------------------------------------- */

/* A daemon's executable: LH_BIN_DIR/NAME, else the build tree (lhctl in build/cli, daemons in
 * build/SUBDIR), else next to lhctl (installed). New string or NULL. */
static char *find_daemon(const char *name, const char *subdir)
{
	const char *env = getenv("LH_BIN_DIR");
	char self[4096], *dir, *p;
	ssize_t n;
	if (env && *env) {
		if (asprintf(&p, "%s/%s", env, name) < 0)
			abort();
		if (access(p, X_OK) == 0)
			return p;
		free(p);
		return NULL;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = 0;
	dir = dirname(self);
	if (asprintf(&p, "%s/../%s/%s", dir, subdir, name) < 0)
		abort();
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return NULL;
}

/* This process's environment with the stack's settings put in place. New array of new strings. */
static char **child_env(dev_stack_t *d)
{
	enum { NKEYS = 6 };
	static const char *const keys[NKEYS] = {"LH_KAFKA_BROKERS", "LH_PG_URL", "LH_STATE_DIR",
						"LH_TIERS", "LH_TOPIC_PREFIX", "LH_GATEWAY_PORT"};
	char gw_port[16];
	const char *vals[NKEYS] = {d->brokers, d->pg_url, d->dir, d->cfg.common.tiers,
				   d->cfg.common.topic_prefix, NULL};
	size_t n = 0, o = 0;
	char **env;
	if (d->gateway_port > 0) {
		snprintf(gw_port, sizeof(gw_port), "%d", d->gateway_port);
		vals[5] = gw_port;
	}
	while (environ[n])
		n++;
	env = calloc(n + NKEYS + 1, sizeof(char *));
	if (!env)
		abort();
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;
		for (size_t k = 0; k < NKEYS; k++) {
			size_t l = strlen(keys[k]);
			if (vals[k] && strncmp(environ[i], keys[k], l) == 0 && environ[i][l] == '=')
				replaced = true;
		}
		if (!replaced)
			env[o++] = strdup(environ[i]);
	}
	for (size_t k = 0; k < NKEYS; k++)
		if (vals[k] && asprintf(&env[o++], "%s=%s", keys[k], vals[k]) < 0)
			abort();
	env[o] = NULL;
	return env;
}

static void free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/* ---- dev.json and the lock ------------------------------------------------------------------ */

static void write_json(void *opaque)
{
	dev_stack_t *d = opaque;
	char *tmp;
	json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:s, s:b, s:b, s:s?, s:s, s:s, s:o}", "pid",
			      (json_int_t)getpid(), "start_ticks",
			      (json_int_t)lhctl_proc_start_ticks(getpid()), "state_dir", d->dir,
			      "brokers", d->brokers, "pg_url", d->pg_url, "embedded_broker",
			      d->mock != NULL, "private_pg", d->private_pg, "pg_dir",
			      d->private_pg ? d->pgc.dir : NULL, "started_at", d->started_at,
			      "log_dir", d->log_dir, "children", lhctl_sup_json(&d->sup));
	if (!j)
		abort();
	if (asprintf(&tmp, "%s.tmp", d->json_path) < 0)
		abort();
	/* 0600: it holds the database password. */
	{
		mode_t old = umask(077);
		int rc = json_dump_file(j, tmp, JSON_INDENT(2));
		umask(old);
		if (rc == 0 && rename(tmp, d->json_path) == 0)
			d->json_written = true;
		else {
			fprintf(stderr, "lhctl: could not write %s: %s\n", d->json_path,
				strerror(errno));
			unlink(tmp);
		}
	}
	free(tmp);
	json_decref(j);
}

/* The pid written in a lock file ("PID START_TICKS"); 0 when none. */
static pid_t lock_owner(const char *lock_path, unsigned long long *ret_ticks)
{
	char buf[64] = "";
	int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	long long pid = 0;
	unsigned long long ticks = 0;
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		sscanf(buf, "%lld %llu", &pid, &ticks);
	}
	if (ret_ticks)
		*ret_ticks = ticks;
	return (pid_t)pid;
}

/* Whether some process holds the lock of dir (a dev stack runs or is starting there). */
static bool lock_held(const char *lock_path)
{
	int fd = open(lock_path, O_RDWR | O_CLOEXEC);
	bool held;
	if (fd < 0)
		return false;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return held;
}

static int take_lock(dev_stack_t *d)
{
	char buf[64];
	int n;
	d->lock_fd = open(d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->lock_fd < 0)
		return fail(d, "could not open %s: %s", d->lock_path, strerror(errno));
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		pid_t pid = lock_owner(d->lock_path, NULL);
		close(d->lock_fd);
		d->lock_fd = -1;
		return fail(d, "a dev stack already runs in %s (pid %d): stop it with `lhctl dev stop` "
			       "or use another --state-dir",
			    d->dir, (int)pid);
	}
	n = snprintf(buf, sizeof(buf), "%d %llu\n", (int)getpid(), lhctl_proc_start_ticks(getpid()));
	if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, buf, (size_t)n, 0) != n)
		return fail(d, "could not write %s: %s", d->lock_path, strerror(errno));
	return LHCTL_EXIT_OK;
}

/* ---- bringing it up ------------------------------------------------------------------------- */

static int start_pg(dev_stack_t *d)
{
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	int applied = 0, version = 0;
	if (*d->cfg.common.pg_url) {
		char *shown = lhctl_redact_url(d->cfg.common.pg_url);
		d->pg_url = strdup(d->cfg.common.pg_url);
		say(d, "postgresql: %s (given)", shown);
		free(shown);
	} else {
		if (lhctl_pgc_start(&d->pgc, d->dir, &err)) {
			/* Stop a server we started before the failure. */
			lh_error_t e2 = {0};
			lhctl_pgc_stop(&d->pgc, &e2);
			return fail(d, "%s", err.msg);
		}
		d->private_pg = true;
		d->pg_url = strdup(d->pgc.url);
		if (d->pgc.moved)
			say(d, "postgresql: user %s cannot enter %s, so the cluster lives in %s",
			    d->pgc.user, d->dir, d->pgc.dir);
		say(d, "postgresql: private cluster in %s (PostgreSQL %d%s%s, 127.0.0.1:%d%s%s; %s)",
		    d->pgc.dir, d->pgc.major, d->pgc.as_user ? ", runs as " : "",
		    d->pgc.as_user ? d->pgc.user : "", d->pgc.port,
		    d->pgc.sockdir ? ", socket in " : "", d->pgc.sockdir ? d->pgc.sockdir : "",
		    d->pgc.created ? "created now" : d->pgc.reused ? "was already running" : "reused");
	}
	if (lh_pg_connect(d->pg_url, &pg, &err) || lh_pg_migrate(pg, &applied, &err) ||
	    lh_pg_schema_version(pg, &version, &err)) {
		lh_pg_free(pg);
		return fail(d, "%s", err.msg);
	}
	lh_pg_free(pg);
	say(d, "postgresql: schema version %d%s", version,
	    applied ? " (migrations applied now)" : "");
	return LHCTL_EXIT_OK;
}

static int start_kafka(dev_stack_t *d)
{
	lh_error_t err = {0};
	int ep = (int)d->cfg.common.events_partitions;
	if (*d->cfg.common.brokers) {
		lh_kafka_t *k = NULL;
		lh_kafka_opts_t ko = {.brokers = d->cfg.common.brokers, .client_id = "lhctl-dev"};
		d->brokers = strdup(d->cfg.common.brokers);
		if (lh_kafka_new(&ko, &k, &err) || lh_kafka_wait_ready(k, KAFKA_CHECK_MS, &err) ||
		    lh_bus_ensure_topics(k, d->cfg.common.topic_prefix, d->tiers, d->ntiers, ep,
					 TIER_PARTITIONS, &err)) {
			lh_kafka_free(k);
			return fail(d, "kafka at %s: %s", d->brokers, err.msg);
		}
		lh_kafka_free(k);
		say(d, "kafka: %s (given; topics ensured)", d->brokers);
		return LHCTL_EXIT_OK;
	}
	{
		const char *boot = NULL;
		char names[LH_MAX_TIERS + 3][LH_TOPIC_MAX];
		int parts[LH_MAX_TIERS + 3], n = 0;
		if (lh_kafka_mock_new(1, &d->mock, &boot, &err))
			return fail(d, "%s", err.msg);
		d->brokers = strdup(boot);
		if (lh_topic(d->cfg.common.topic_prefix, "events", names[n], &err))
			return fail(d, "%s", err.msg);
		parts[n++] = ep;
		lh_topic(d->cfg.common.topic_prefix, "snapshots", names[n], &err);
		parts[n++] = ep;
		lh_topic(d->cfg.common.topic_prefix, "dlq", names[n], &err);
		parts[n++] = 1;
		for (int i = 0; i < d->ntiers; i++) {
			if (lh_topic_tasks(d->cfg.common.topic_prefix, d->tiers[i], names[n], &err))
				return fail(d, "%s", err.msg);
			parts[n++] = TIER_PARTITIONS;
		}
		for (int i = 0; i < n; i++)
			if (lh_kafka_mock_topic(d->mock, names[i], parts[i], &err))
				return fail(d, "%s", err.msg);
		say(d, "kafka: embedded broker (librdkafka mock cluster) at %s \xe2\x80\x94 in memory, "
		       "NOT durable: events are lost when lhctl dev stops",
		    d->brokers);
	}
	return LHCTL_EXIT_OK;
}

static void say_model(dev_stack_t *d)
{
	const char *provider = getenv("LH_LLM_PROVIDER"), *key = getenv("OPENAI_API_KEY");
	const char *base = getenv("LH_LLM_BASE_URL"), *model = getenv("LH_LLM_MODEL");
	bool has_key = key && *key, has_base = base && *base;
	if (provider && strcmp(provider, "scripted") == 0)
		say(d, "model: scripted (LH_LLM_PROVIDER=scripted)");
	else if (has_base)
		say(d, "model: OpenAI-compatible server at %s (LH_LLM_BASE_URL)%s%s%s", base,
		    has_key ? ", key from OPENAI_API_KEY" : "", model && *model ? ", model " : "",
		    model && *model ? model : "");
	else if (has_key || (provider && strcmp(provider, "openai") == 0))
		say(d, "model: OpenAI API (%s)%s%s",
		    has_key ? "OPENAI_API_KEY is set" : "LH_LLM_PROVIDER=openai",
		    model && *model ? ", model " : "", model && *model ? model : "");
	else
		say(d, "model: scripted (no LLM key configured; set OPENAI_API_KEY to use a real "
		       "model)");
}

static int add_daemons(dev_stack_t *d)
{
	lh_error_t err = {0};
	char *coord = find_daemon("lh-coordinator", "coordinator");
	char *mat = find_daemon("lh-materializer", "materializer");
	char *worker = find_daemon("lh-worker", "worker");
	char *gw = find_daemon("lh-gateway", "gateway");
	int rc = LHCTL_EXIT_OK;
	const char *missing = !coord ? "lh-coordinator" : !mat ? "lh-materializer"
					  : !worker ? "lh-worker" : NULL;

	if (missing) {
		rc = fail(d, "could not find %s (%s): build it (ninja -C build) or set LH_BIN_DIR",
			  missing,
			  getenv("LH_BIN_DIR") && *getenv("LH_BIN_DIR")
				  ? "not in LH_BIN_DIR"
				  : "looked in the build tree next to lhctl and in lhctl's directory");
		goto out_free;
	}
	{
		const char *a[] = {"lh-coordinator", NULL};
		lhctl_sup_add(&d->sup, coord, d->log_dir, "coordinator", a, false, &err);
	}
	{
		const char *a[] = {"lh-materializer", NULL};
		lhctl_sup_add(&d->sup, mat, d->log_dir, "materializer", a, false, &err);
	}
	for (int i = 0; i < d->ntiers; i++) {
		char log_name[96];
		const char *a[] = {"lh-worker", "--tier", d->tiers[i], NULL};
		snprintf(log_name, sizeof(log_name), "worker-%s", d->tiers[i]);
		if (lhctl_sup_add(&d->sup, worker, d->log_dir, log_name, a, false, &err)) {
			rc = fail(d, "%s", err.msg);
			goto out_free;
		}
	}
	if (gw) {
		const char *a[] = {"lh-gateway", NULL};
		const char *port = getenv("LH_GATEWAY_PORT");
		/* Its default port, unless taken (another stack, another program): then any. */
		if (!port || !*port)
			d->gateway_port = lhctl_port_pick(8088);
		lhctl_sup_add(&d->sup, gw, d->log_dir, "gateway", a, true, &err);
	}
out_free:
	free(coord);
	free(mat);
	free(worker);
	free(gw);
	return rc;
}

static bool has_gateway(const dev_stack_t *d)
{
	for (int i = 0; i < d->sup.n; i++)
		if (strcmp(d->sup.children[i].log_name, "gateway") == 0)
			return true;
	return false;
}

static void say_summary(dev_stack_t *d)
{
	char took[32];
	lh_buf_t b;
	lh_buf_init(&b);
	for (int i = 0; i < d->sup.n; i++) {
		const lhctl_child_t *c = &d->sup.children[i];
		if (c->pid > 0)
			lh_buf_printf(&b, "%s%s (pid %d)", i ? ", " : "", c->name, (int)c->pid);
		else
			lh_buf_printf(&b, "%s%s (failed to start; retrying)", i ? ", " : "", c->name);
	}
	say(d, "daemons: %s", b.data ? b.data : "none");
	lh_buf_finish(&b);
	if (has_gateway(d)) {
		const char *host = getenv("LH_GATEWAY_LISTEN"), *port = getenv("LH_GATEWAY_PORT");
		char chosen[16];
		if (d->gateway_port > 0) {
			snprintf(chosen, sizeof(chosen), "%d", d->gateway_port);
			port = chosen;
		}
		say(d, "gateway: http://%s:%s/ (/healthz, /readyz, /metrics)",
		    host && *host ? host : "127.0.0.1", port && *port ? port : "8088");
		say(d, "dashboard: http://%s:%s/dashboard/ (a token for it: lhctl token create NAME "
		    "--role admin)",
		    host && *host ? host : "127.0.0.1", port && *port ? port : "8088");
	}
	say(d, "ready in %s: state in %s, logs in %s",
	    lhctl_fmt_dur(took, (lh_mono_us() - d->t0_us) / 1000), d->dir, d->log_dir);
	say(d, "try:  lhctl run \"plan a weekend trip to Lisbon\"%s%s",
	    getenv("LH_STATE_DIR") || !*d->cfg.common.state_dir ? "" : "  --state-dir ",
	    getenv("LH_STATE_DIR") || !*d->cfg.common.state_dir ? "" : d->dir);
	say(d, "stop: %s", d->cfg.detach ? "lhctl dev stop" : "Ctrl-C (or lhctl dev stop)");
}

/* Stop what was started, in reverse order. */
static void teardown(dev_stack_t *d)
{
	lh_error_t err = {0};
	if (d->sup.n > 0 && !d->sup.stopping)
		lhctl_sup_stop_now(&d->sup);
	if (d->private_pg && d->pgc.running) {
		printf("stopping postgresql\n");
		fflush(stdout);
		if (lhctl_pgc_stop(&d->pgc, &err))
			fprintf(stderr, "lhctl: %s\n", err.msg);
	}
	d->mock = lh_kafka_mock_free(d->mock);
	if (d->json_written)
		unlink(d->json_path);
	d->json_written = false;
}

/* Everything from the lock to the end of supervision. Returns the exit status. */
static int dev_up(dev_stack_t *d)
{
	lh_error_t err = {0};
	int rc;
	char stale[4096];

	lhctl_catch_signals();
	if ((rc = take_lock(d)))
		return rc;
	/* A dev.json without a lock holder is what a killed stack leaves behind. */
	if (access(d->json_path, F_OK) == 0) {
		unlink(d->json_path);
		say(d, "removed a stale %s (its stack is gone)", d->json_path);
	}
	snprintf(stale, sizeof(stale), "%s.tmp", d->json_path);
	unlink(stale);
	d->ntiers = lh_config_split(d->cfg.common.tiers, d->tiers_buf, sizeof(d->tiers_buf),
				    d->tiers, LH_MAX_TIERS);
	if (d->ntiers <= 0)
		return fail(d, "tiers: give 1 to %d names separated by commas", LH_MAX_TIERS);
	for (int i = 0; i < d->ntiers; i++) {
		char topic[LH_TOPIC_MAX];
		if (lh_topic_tasks(d->cfg.common.topic_prefix, d->tiers[i], topic, &err))
			return fail(d, "tiers: %s", err.msg);
	}
	/* Find the binaries first: a missing one fails before anything starts. */
	lhctl_sup_init(&d->sup, NULL, stdout);
	if ((rc = add_daemons(d)))
		goto out_teardown;
	if ((rc = start_pg(d)) || lhctl_interrupted)
		goto out_teardown;
	if ((rc = start_kafka(d)) || lhctl_interrupted)
		goto out_teardown;
	say_model(d);
	d->envp = child_env(d);
	d->sup.envp = d->envp;
	d->sup.on_change = write_json;
	d->sup.opaque = d;
	if (lhctl_sup_start(&d->sup, (int)d->cfg.ready_timeout_s * 1000, &err)) {
		rc = fail(d, "%s", err.msg);
		goto out_teardown;
	}
	lhctl_iso_now(d->started_at);
	write_json(d);
	if (!d->json_written) {
		rc = fail(d, "could not write %s", d->json_path);
		goto out_teardown;
	}
	say_summary(d);
	report(d, 'R', "ready");
	if (d->report_fd >= 0) {
		close(d->report_fd);
		d->report_fd = -1;
	}
	lhctl_sup_run(&d->sup);
	printf("daemons stopped\n");
	rc = LHCTL_EXIT_OK;
out_teardown:
	if (rc && lhctl_interrupted && d->report_fd < 0)
		fprintf(stderr, "lhctl: interrupted; stopping what was started\n");
	teardown(d);
	if (rc == LHCTL_EXIT_OK)
		printf("dev stack stopped\n");
	return rc;
}

/* --detach: the parent relays the child's start-up report and exits with its outcome. */
static int wait_for_child(dev_stack_t *d, pid_t pid, int fd, const char *log)
{
	lh_buf_t line;
	int64_t deadline = lh_mono_us() + d->cfg.start_timeout_s * 1000000LL;
	int rc = -1;
	char c;
	lh_buf_init(&line);
	while (rc < 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = (deadline - lh_mono_us()) / 1000;
		ssize_t n;
		if (left <= 0) {
			rc = lhctl_fail(LHCTL_EXIT_FAIL,
					"the dev stack did not come up within %lld s (pid %d keeps "
					"trying; see %s, or stop it with lhctl dev stop)",
					(long long)d->cfg.start_timeout_s, (int)pid, log);
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno == EINTR && !lhctl_interrupted)
				continue;
			if (lhctl_interrupted) {
				kill(pid, SIGTERM);
				rc = lhctl_fail(LHCTL_EXIT_INTERRUPTED,
						"interrupted; the starting dev stack (pid %d) was told "
						"to stop",
						(int)pid);
				break;
			}
		}
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int st = 0;
			char how[96];
			waitpid(pid, &st, 0);
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "the dev stack exited during start-up (%s); see %s",
					lhctl_status_str(st, how, sizeof(how)), log);
			break;
		}
		if (c != '\n') {
			lh_buf_append(&line, &c, 1);
			continue;
		}
		lh_buf_appends(&line, "");
		if (line.len >= 2 && line.data[0] == 'M')
			printf("%s\n", line.data + 2);
		else if (line.len >= 2 && line.data[0] == 'E') {
			int st;
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", line.data + 2);
			/* Let it finish stopping what it started, so that a retry finds the state
			 * directory free. */
			if (lhctl_proc_wait_gone(pid, STOP_TIMEOUT_MS))
				waitpid(pid, &st, 0);
		}
		else if (line.data[0] == 'R') {
			printf("running in the background (pid %d); its output goes to %s\n", (int)pid,
			       log);
			rc = LHCTL_EXIT_OK;
		}
		fflush(stdout);
		lh_buf_reset(&line);
	}
	lh_buf_finish(&line);
	return rc;
}

static int dev_start(int argc, char **argv)
{
	dev_stack_t d = {.lock_fd = -1, .report_fd = -1};
	lh_error_t err = {0};
	char **rest = NULL;
	int nrest = 0, rc;

	if ((rc = lhctl_load(&dev_spec, &d.cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest > 0) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE,
				"dev: unexpected argument \"%s\" (commands: lhctl dev, lhctl dev stop, "
				"lhctl dev status)",
				rest[0]);
		goto out_free;
	}
	d.t0_us = lh_mono_us();
	if (!(d.dir = lhctl_state_dir(d.cfg.common.state_dir, &err)) ||
	    lhctl_mkdirs(d.dir, 0700, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	{
		/* Absolute paths: the daemons and PostgreSQL run from "/". */
		char *real = realpath(d.dir, NULL);
		if (real) {
			free(d.dir);
			d.dir = real;
		}
	}
	if (asprintf(&d.log_dir, "%s/logs", d.dir) < 0 ||
	    asprintf(&d.json_path, "%s/dev.json", d.dir) < 0 ||
	    asprintf(&d.lock_path, "%s/dev.lock", d.dir) < 0)
		abort();
	if (lhctl_mkdirs(d.log_dir, 0700, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	if (lock_held(d.lock_path)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL,
				"a dev stack already runs in %s (pid %d): stop it with `lhctl dev "
				"stop` or use another --state-dir",
				d.dir, (int)lock_owner(d.lock_path, NULL));
		goto out_free;
	}
	if (d.cfg.detach) {
		int p[2], fd;
		pid_t pid;
		char *log;
		if (asprintf(&log, "%s/lhctl-dev.log", d.log_dir) < 0)
			abort();
		fflush(stdout);
		fflush(stderr);
		if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not start in the background: %s",
					strerror(errno));
			free(log);
			goto out_free;
		}
		if (pid > 0) {
			close(p[1]);
			lhctl_catch_signals();
			rc = wait_for_child(&d, pid, p[0], log);
			close(p[0]);
			free(log);
			goto out_free;
		}
		close(p[0]);
		setsid();
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		free(log);
		d.report_fd = p[1];
		printf("---- lhctl dev (pid %d) starting in %s ----\n", (int)getpid(), d.dir);
	}
	rc = dev_up(&d);
out_free:
	if (d.report_fd >= 0)
		close(d.report_fd);
	if (d.lock_fd >= 0)
		close(d.lock_fd);
	lhctl_sup_finish(&d.sup);
	free_env(d.envp);
	lhctl_pgc_finish(&d.pgc);
	free(d.pg_url);
	free(d.brokers);
	free(d.dir);
	free(d.log_dir);
	free(d.json_path);
	free(d.lock_path);
	free(rest);
	lh_config_finish(&dev_spec, &d.cfg);
	return rc;
}

/* ---- stop and status ------------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf path (without following symlinks); prints what it removed. */
static bool wipe(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return true;
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0) {
		lhctl_fail(LHCTL_EXIT_FAIL, "could not remove %s: %s", path, strerror(errno));
		return false;
	}
	printf("removed %s\n", path);
	return true;
}

/* --wipe: the PostgreSQL cluster (wherever it lives), the logs, the lock. */
static bool wipe_state(const char *dir)
{
	char *pg = NULL, *fallback = lhctl_pgc_fallback_dir(dir), *logs = NULL, *lock = NULL;
	bool ok;
	if (asprintf(&pg, "%s/pg", dir) < 0 || asprintf(&logs, "%s/logs", dir) < 0 ||
	    asprintf(&lock, "%s/dev.lock", dir) < 0)
		abort();
	ok = wipe(pg) && wipe(fallback) && wipe(logs) && wipe(lock);
	free(lock);
	free(logs);
	free(fallback);
	free(pg);
	return ok;
}

typedef struct stop_cfg {
	lh_common_cfg_t common;
	bool wipe;
} stop_cfg_t;

static const lh_cfg_def_t stop_table[] = {
	{"dev.wipe", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "wipe", false, false,
	 "after stopping, delete the stack's PostgreSQL cluster, logs and lock (plans are lost)",
	 offsetof(stop_cfg_t, wipe)},
	LH_CFG_END,
};

static const lh_cfg_spec_t stop_spec = {
	.prog = "lhctl dev stop",
	.usage = "[--state-dir DIR] [--wipe]",
	.summary = "Signals the dev stack of the state directory and waits until it is gone (its "
		   "daemons, PostgreSQL if it started it, the embedded broker). With no stack running "
		   "it cleans up after one that was killed. --wipe then deletes the private "
		   "PostgreSQL cluster, the logs and the lock.",
	.tables = {lh_config_common_table, stop_table, NULL},
};

static int dev_stop(int argc, char **argv)
{
	stop_cfg_t scfg = {0};
	lh_common_cfg_t *cfgp = &scfg.common;
	lh_error_t err = {0};
	lhctl_devinfo_t info = {0};
	char **rest = NULL, *dir = NULL, *lock_path = NULL;
	int nrest = 0, rc;
	pid_t pid;
	unsigned long long ticks = 0;
	bool have_info;

	if ((rc = lhctl_load(&stop_spec, &scfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest > 0) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "dev stop takes no arguments (got \"%s\")", rest[0]);
		goto out_free;
	}
	if (!(dir = lhctl_state_dir(cfgp->state_dir, &err))) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	if (asprintf(&lock_path, "%s/dev.lock", dir) < 0)
		abort();
	have_info = lhctl_devinfo_read(dir, &info, &err) == LH_OK;
	if (!lock_held(lock_path)) {
		/* Nothing runs. Clean up after a stack that was killed outright: its dev.json, and
		 * a PostgreSQL server it left running in any place its cluster may live. */
		char *cands[3] = {NULL, NULL, lhctl_pgc_fallback_dir(dir)};
		if (asprintf(&cands[1], "%s/pg", dir) < 0)
			abort();
		if (have_info && info.private_pg && info.pg_dir)
			cands[0] = strdup(info.pg_dir);
		for (int i = 0; i < 3; i++) {
			bool dup = false;
			for (int j = 0; j < i; j++)
				dup |= cands[i] && cands[j] && strcmp(cands[i], cands[j]) == 0;
			if (cands[i] && !dup && lhctl_pgc_stop_dir(cands[i], &err) == LH_OK)
				printf("stopped the postgresql server the dead stack left running in "
				       "%s\n",
				       cands[i]);
			else if (cands[i] && !dup && err.code && err.code != LH_ERR_NOT_FOUND)
				fprintf(stderr, "lhctl: %s\n", err.msg);
			lh_error_clear(&err);
		}
		for (int i = 0; i < 3; i++)
			free(cands[i]);
		if (have_info) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/dev.json", dir);
			unlink(path);
			printf("no dev stack was running in %s (removed its stale dev.json)\n", dir);
		} else
			printf("no dev stack is running in %s\n", dir);
		rc = scfg.wipe && !wipe_state(dir) ? LHCTL_EXIT_FAIL : LHCTL_EXIT_OK;
		goto out_free;
	}
	pid = lock_owner(lock_path, &ticks);
	if (pid <= 0 || (ticks && lhctl_proc_start_ticks(pid) != ticks)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s is locked but names no live process; is another "
						 "lhctl using it?",
				lock_path);
		goto out_free;
	}
	if (kill(pid, SIGTERM) < 0) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not signal the dev stack (pid %d): %s",
				(int)pid, strerror(errno));
		goto out_free;
	}
	printf("stopping the dev stack in %s (pid %d)\n", dir, (int)pid);
	fflush(stdout);
	if (!lhctl_proc_wait_gone(pid, STOP_TIMEOUT_MS)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL,
				"the dev stack (pid %d) did not stop within %d s; see %s/logs or "
				"kill it: kill -9 %d",
				(int)pid, STOP_TIMEOUT_MS / 1000, dir, (int)pid);
		goto out_free;
	}
	printf("stopped\n");
	rc = scfg.wipe && !wipe_state(dir) ? LHCTL_EXIT_FAIL : LHCTL_EXIT_OK;
out_free:
	lhctl_devinfo_finish(&info);
	free(lock_path);
	free(dir);
	free(rest);
	lh_config_finish(&stop_spec, &scfg);
	return rc;
}

static int dev_status(int argc, char **argv)
{
	lh_common_cfg_t cfg = {0};
	lh_error_t err = {0};
	lhctl_devinfo_t info = {0};
	char **rest = NULL, *dir = NULL, *lock_path = NULL, *shown = NULL;
	int nrest = 0, rc;
	bool healthy = true;
	size_t i;
	json_t *c;

	if ((rc = lhctl_load(&dev_sub_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest > 0) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "dev status takes no arguments (got \"%s\")",
				rest[0]);
		goto out_free;
	}
	if (!(dir = lhctl_state_dir(cfg.state_dir, &err))) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free;
	}
	if (asprintf(&lock_path, "%s/dev.lock", dir) < 0)
		abort();
	rc = lhctl_devinfo_read(dir, &info, &err);
	if (!lock_held(lock_path)) {
		printf("no dev stack is running in %s%s (start one: lhctl dev)\n", dir,
		       rc == LH_OK ? " (a stale dev.json is left; lhctl dev stop removes it)" : "");
		rc = LHCTL_EXIT_PENDING;
		goto out_free;
	}
	if (rc) {
		printf("a dev stack is starting in %s (pid %d)\n", dir,
		       (int)lock_owner(lock_path, NULL));
		rc = LHCTL_EXIT_PENDING;
		goto out_free;
	}
	printf("dev stack in %s: running (pid %d, since %s)\n", dir, (int)info.pid,
	       info.started_at ? info.started_at : "?");
	{
		lh_kafka_t *k = NULL;
		lh_kafka_opts_t ko = {.brokers = info.brokers, .client_id = "lhctl"};
		bool ok = lh_kafka_new(&ko, &k, &err) == LH_OK &&
			  lh_kafka_wait_ready(k, 3000, &err) == LH_OK;
		lh_kafka_free(k);
		healthy &= ok;
		printf("  kafka       %s%s  %s\n", info.brokers ? info.brokers : "?",
		       info.embedded_broker ? " (embedded, in memory, not durable)" : "",
		       ok ? "reachable" : "NOT reachable");
	}
	{
		lh_pg_t *pg = NULL;
		int version = 0;
		bool ok = lh_pg_connect(info.pg_url, &pg, &err) == LH_OK &&
			  lh_pg_schema_version(pg, &version, &err) == LH_OK;
		lh_pg_free(pg);
		healthy &= ok;
		shown = lhctl_redact_url(info.pg_url);
		printf("  postgresql  %s%s%s%s  ", shown, info.private_pg ? " (private cluster in " : "",
		       info.private_pg && info.pg_dir ? info.pg_dir : "", info.private_pg ? ")" : "");
		if (ok)
			printf("schema %d\n", version);
		else
			printf("NOT reachable: %s\n", err.msg);
	}
	json_array_foreach(info.children, i, c) {
		pid_t pid = (pid_t)json_integer_value(json_object_get(c, "pid"));
		bool alive = pid > 0 && lhctl_proc_alive(pid);
		json_int_t restarts = json_integer_value(json_object_get(c, "restarts"));
		healthy &= alive;
		printf("  %-28s %s", json_string_value(json_object_get(c, "name")),
		       alive ? "running" : "restarting");
		if (alive)
			printf(" (pid %d)", (int)pid);
		if (restarts)
			printf(", %lld restart%s", (long long)restarts, restarts == 1 ? "" : "s");
		printf("  log %s\n", json_string_value(json_object_get(c, "log")));
	}
	rc = healthy ? LHCTL_EXIT_OK : LHCTL_EXIT_FAIL;
out_free:
	free(shown);
	lhctl_devinfo_finish(&info);
	free(lock_path);
	free(dir);
	free(rest);
	lh_config_finish(&dev_sub_spec, &cfg);
	return rc;
}

int lhctl_cmd_dev(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "stop") == 0)
		return dev_stop(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return dev_status(argc - 1, argv + 1);
	return dev_start(argc, argv);
}
