#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "bus.h"
#include "event.h"

static void msleep(int ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

int ts_init(ts_stack_t *ts, const char *build_root)
{
	lh_error_t err = {0};
	lh_kafka_opts_t ko = {0};
	const char *logs = getenv("LH_TEST_LOGS");
	lh_id_t r = lh_uuid7_new();
	char hex[33];
	memset(ts, 0, sizeof(*ts));
	/* The memories' relay of a materializer publishes every memory change of the database to
	 * its own topic, and every test's materializer shares one database: off for all of them
	 * (inherited), on only where a test asks for it (0040-memory-log: --memory-relay). */
	setenv("LH_MEMORY_RELAY", "false", 1);
	/* Every batch's rounds numbered again by PostgreSQL (sql/0012, lh_mat_rounds) and compared
	 * with the materializer's: each test's traffic checks lh_mbatch_rounds. lh-bench turns it
	 * off before this runs (it costs PostgreSQL time). */
	setenv("LH_MATERIALIZER_CHECK_ROUNDS", "true", 0);
	ts->brokers = getenv("LH_KAFKA_BROKERS");
	ts->pg_url = getenv("LH_PG_URL");
	if (!ts->brokers || !*ts->brokers || !ts->pg_url || !*ts->pg_url) {
		printf("SKIP: LH_KAFKA_BROKERS and LH_PG_URL must name a real Kafka broker and "
		       "PostgreSQL server (scripts/kafka.sh, scripts/pg.sh)\n");
		return TS_SKIP;
	}
	lh_hex(r.b + 10, 4, hex);
	snprintf(ts->prefix, sizeof(ts->prefix), "t%s.", hex);
	snprintf(ts->build_root, sizeof(ts->build_root), "%s", build_root);
	snprintf(ts->log_dir, sizeof(ts->log_dir), "%s/%s", logs ? logs : "/tmp/lh-test-logs",
		 ts->prefix);
	mkdir(logs ? logs : "/tmp/lh-test-logs", 0755);
	mkdir(ts->log_dir, 0755);
	ko.brokers = ts->brokers;
	ko.client_id = "lh-test";
	if (lh_kafka_new(&ko, &ts->producer, &err) || lh_kafka_wait_ready(ts->producer, 20000, &err)) {
		printf("FAIL: kafka: %s\n", err.msg);
		return 1;
	}
	{
		const char *tiers[] = {"fast", "standard", "frontier"};
		if (lh_bus_ensure_topics(ts->producer, ts->prefix, tiers, 3, 8, 4, &err)) {
			printf("FAIL: topics: %s\n", err.msg);
			return 1;
		}
	}
	ts->pg = PQconnectdb(ts->pg_url);
	if (PQstatus(ts->pg) != CONNECTION_OK) {
		printf("FAIL: postgresql: %s", PQerrorMessage(ts->pg));
		return 1;
	}
	printf("# stack: prefix %s, logs in %s\n", ts->prefix, ts->log_dir);
	return 0;
}

static void start(ts_stack_t *ts, ts_proc_t *p)
{
	char logf[700];
	pid_t pid;
	snprintf(logf, sizeof(logf), "%s/%s.log", ts->log_dir, p->name);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(p->exe, p->argv);
		fprintf(stderr, "could not exec %s: %s\n", p->exe, strerror(errno));
		_exit(127);
	}
	p->pid = pid;
	p->exit_status = -1;
}

int ts_spawn(ts_stack_t *ts, const char *name, const char *exe, ...)
{
	ts_proc_t *p = &ts->procs[ts->nprocs];
	va_list ap;
	const char *a;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->exe, sizeof(p->exe), "%s/%s", ts->build_root, exe);
	p->argc = 0;
	p->argv[p->argc++] = strdup(p->exe);
	p->argv[p->argc++] = strdup("--brokers");
	p->argv[p->argc++] = strdup(ts->brokers);
	p->argv[p->argc++] = strdup("--topic-prefix");
	p->argv[p->argc++] = strdup(ts->prefix);
	if (strstr(exe, "materializer")) {
		p->argv[p->argc++] = strdup("--pg-url");
		p->argv[p->argc++] = strdup(ts->pg_url);
	}
	va_start(ap, exe);
	while ((a = va_arg(ap, const char *)) && p->argc < 22)
		p->argv[p->argc++] = strdup(a);
	va_end(ap);
	p->argv[p->argc] = NULL;
	start(ts, p);
	return ts->nprocs++;
}

static int spawn_v(ts_stack_t *ts, const char *name, const char *exe, const char **fixed,
		   va_list ap)
{
	const char *args[24];
	int n = 0;
	const char *a;
	for (; fixed && *fixed && n < 22; fixed++)
		args[n++] = *fixed;
	while ((a = va_arg(ap, const char *)) && n < 22)
		args[n++] = a;
	args[n] = NULL;
	/* ts_spawn takes varargs: pass up to 22 explicitly */
	return ts_spawn(ts, name, exe, args[0], args[1], args[2], args[3], args[4], args[5], args[6],
			args[7], args[8], args[9], args[10], args[11], args[12], args[13], args[14],
			args[15], args[16], args[17], args[18], args[19], args[20], args[21], NULL);
}

int ts_spawn_coordinator(ts_stack_t *ts, ...)
{
	char group[96], name[32];
	const char *fixed[] = {"--group", group, NULL};
	va_list ap;
	int idx;
	int n = 0;
	for (int i = 0; i < ts->nprocs; i++)
		n += strncmp(ts->procs[i].name, "coordinator", 11) == 0;
	snprintf(group, sizeof(group), "%scoordinator", ts->prefix);
	snprintf(name, sizeof(name), n ? "coordinator%d" : "coordinator", n + 1);
	va_start(ap, ts);
	idx = spawn_v(ts, name, "coordinator/lh-coordinator", fixed, ap);
	va_end(ap);
	return idx;
}

int ts_spawn_worker_url(ts_stack_t *ts, const char *tier, const char *url, ...)
{
	char name[64], group[96];
	const char *fixed[] = {"--tier", tier, "--group", group, "--llm-base-url", url, NULL};
	va_list ap;
	int idx;
	snprintf(name, sizeof(name), "worker-%s", tier);
	snprintf(group, sizeof(group), "%sworker.%s", ts->prefix, tier);
	va_start(ap, url);
	idx = spawn_v(ts, name, "worker/lh-worker", fixed, ap);
	va_end(ap);
	return idx;
}

int ts_spawn_materializer(ts_stack_t *ts)
{
	char group[96];
	snprintf(group, sizeof(group), "%smaterializer", ts->prefix);
	return ts_spawn(ts, "materializer", "materializer/lh-materializer", "--group", group, NULL);
}

int ts_spawn_worker(ts_stack_t *ts, const char *tier)
{
	char name[64], group[96];
	snprintf(name, sizeof(name), "worker-%s", tier);
	snprintf(group, sizeof(group), "%sworker.%s", ts->prefix, tier);
	if (ts->fakellm_url[0])
		return ts_spawn(ts, name, "worker/lh-worker", "--tier", tier, "--group", group,
				"--llm-base-url", ts->fakellm_url, NULL);
	return ts_spawn(ts, name, "worker/lh-worker", "--tier", tier, "--group", group,
			"--provider", "scripted", NULL);
}

void ts_restart(ts_stack_t *ts, int idx) { start(ts, &ts->procs[idx]); }

void ts_kill(ts_stack_t *ts, int idx, int sig)
{
	ts_proc_t *p = &ts->procs[idx];
	if (p->pid <= 0)
		return;
	kill(p->pid, sig);
	if (sig == SIGKILL) {
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
		p->exit_status = 128 + SIGKILL;
	}
}

int ts_wait_exit(ts_stack_t *ts, int idx, int ms)
{
	ts_proc_t *p = &ts->procs[idx];
	int st;
	for (int waited = 0; waited <= ms; waited += 20) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->pid = 0;
			p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			return p->exit_status;
		}
		msleep(20);
	}
	return -1;
}

int ts_fakellm(ts_stack_t *ts, int latency_ms)
{
	return ts_fakellm_with(ts, latency_ms, NULL, ts->fakellm_url);
}

int ts_fakellm_with(ts_stack_t *ts, int latency_ms, const char *script_json, char url[128])
{
	int pfd[2];
	char lat[16], buf[256] = {0}, exe[600], logf[700], script[700] = "";
	pid_t pid;
	ts_proc_t *p = &ts->procs[ts->nprocs];
	FILE *f;
	snprintf(exe, sizeof(exe), "%s/tests/fakellm/fakellm", ts->build_root);
	snprintf(lat, sizeof(lat), "%d", latency_ms);
	snprintf(logf, sizeof(logf), "%s/fakellm%d.log", ts->log_dir, ts->nprocs);
	if (script_json) {
		FILE *sf;
		snprintf(script, sizeof(script), "%s/fakellm%d.json", ts->log_dir, ts->nprocs);
		if (!(sf = fopen(script, "w")))
			return -1;
		fputs(script_json, sf);
		fclose(sf);
	}
	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(pfd[1], 1);
		if (fd >= 0)
			dup2(fd, 2);
		close(pfd[0]);
		if (script[0])
			execl(exe, exe, "--port", "0", "--latency-ms", lat, "--script", script,
			      (char *)NULL);
		else
			execl(exe, exe, "--port", "0", "--latency-ms", lat, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		printf("FAIL: fakellm did not start\n");
		return -1;
	}
	/* keep the pipe open in the parent: fakellm may print more and must not get SIGPIPE */
	buf[strcspn(buf, "\n")] = 0;
	if (strncmp(buf, "listening on ", 13) != 0)
		return -1;
	snprintf(url, 128, "http://%s/v1", buf + 13);
	snprintf(p->name, sizeof(p->name), "fakellm");
	snprintf(p->exe, sizeof(p->exe), "%s", exe);
	p->pid = pid;
	p->exit_status = -1;
	ts->nprocs++;
	return 0;
}

lh_id_t ts_submit(ts_stack_t *ts, const char *goal) { return ts_submit_with(ts, goal, NULL, NULL); }

void ts_emit(ts_stack_t *ts, lh_event_t *ev)
{
	lh_error_t err = {0};
	lh_buf_t b;
	char topic[LH_TOPIC_MAX];
	ev->v = LH_ENVELOPE_VERSION;
	ev->ts_us = lh_now_us();
	if (lh_id_is_zero(&ev->id))
		ev->id = lh_uuid7_new();
	if (!ev->actor.kind)
		ev->actor.kind = "human";
	lh_buf_init(&b);
	lh_topic(ts->prefix, "events", topic, NULL);
	if (lh_bus_emit(ts->producer, topic, ev, false, &b, NULL, &err) ||
	    lh_kafka_flush(ts->producer, 10000, &err))
		printf("FAIL: emit: %s\n", err.msg);
	lh_buf_finish(&b);
}

/* Scans NAME's log until a line holds a and (when not NULL) b, or ms pass; copies the line into
 * out (when not NULL). */
static bool scan_log(ts_stack_t *ts, const char *name, const char *a, const char *b, int ms,
		     char *out, size_t outlen)
{
	char logf[700], line[4096];
	snprintf(logf, sizeof(logf), "%s/%s.log", ts->log_dir, name);
	for (int waited = 0; waited <= ms; waited += 50) {
		FILE *f = fopen(logf, "r");
		while (f && fgets(line, sizeof(line), f)) {
			if (strstr(line, a) && (!b || strstr(line, b))) {
				fclose(f);
				if (out)
					snprintf(out, outlen, "%s", line);
				return true;
			}
		}
		if (f)
			fclose(f);
		msleep(50); /* polling a log file the child writes, with a deadline */
	}
	return false;
}

bool ts_wait_log(ts_stack_t *ts, const char *name, const char *a, const char *b, int ms)
{
	return scan_log(ts, name, a, b, ms, NULL, 0);
}

int ts_log_port(ts_stack_t *ts, const char *name, const char *event, int ms)
{
	char line[4096], quoted[128];
	const char *p;
	snprintf(quoted, sizeof(quoted), "\"%s\"", event);
	if (!scan_log(ts, name, quoted, "\"port\":\"", ms, line, sizeof(line)))
		return -1;
	p = strstr(line, "\"port\":\"");
	return atoi(p + 8);
}

int ts_gateway_port(ts_stack_t *ts, const char *name)
{
	return ts_log_port(ts, name, "gateway.started", 20000);
}

static size_t on_http_body(char *p, size_t sz, size_t n, void *arg)
{
	lh_buf_append(arg, p, sz * n);
	return sz * n;
}

long ts_http_get(const char *url, lh_buf_t *out)
{
	long status = 0;
	CURL *c = curl_easy_init();
	lh_buf_reset(out);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_http_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	lh_buf_append(out, "", 1); /* NUL */
	return status;
}

long ts_http_post(int port, const char *path, const char *json, const char *idempotency_key)
{
	struct curl_slist *h = NULL;
	char url[512], idem[200];
	long status = 0;
	lh_buf_t out;
	CURL *c = curl_easy_init();
	lh_buf_init(&out);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	snprintf(idem, sizeof(idem), "Idempotency-Key: %s", idempotency_key);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, idem);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_http_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	lh_buf_finish(&out);
	return status;
}

double ts_metric(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

int ts_count_events(ts_stack_t *ts, const char *plan, const char *type)
{
	char q[256];
	const char *v;
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM events WHERE plan_id = $1 AND type = '%s'", type);
	v = ts_sql1(ts, q, plan);
	return v ? atoi(v) : -1;
}

lh_id_t ts_submit_with(ts_stack_t *ts, const char *goal, const lh_budget_t *budget,
		       const char *planner_tier)
{
	lh_goal_submitted_t g = {.goal = goal, .planner_tier = planner_tier};
	lh_event_t ev = {0};
	lh_error_t err = {0};
	lh_buf_t b;
	char topic[LH_TOPIC_MAX];
	ev.v = LH_ENVELOPE_VERSION;
	ev.type = LH_EV_GOAL_SUBMITTED;
	ev.plan_id = lh_uuid7_new();
	ev.task_no = LH_NO_TASK;
	ev.ts_us = lh_now_us();
	ev.tenant = "default";
	ev.actor.kind = "cli";
	ev.actor.id = "lh-test";
	ev.body = &g;
	if (budget) {
		g.budget = *budget;
		g.has_budget = true;
	}
	ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "submit");
	lh_buf_init(&b);
	lh_topic(ts->prefix, "events", topic, NULL);
	if (lh_bus_emit(ts->producer, topic, &ev, false, &b, NULL, &err) ||
	    lh_kafka_flush(ts->producer, 10000, &err))
		printf("FAIL: submit: %s\n", err.msg);
	lh_buf_finish(&b);
	return ev.plan_id;
}

const char *ts_sql1(ts_stack_t *ts, const char *sql, const char *param)
{
	static char out[4096];
	const char *params[1] = {param};
	PGresult *r = PQexecParams(ts->pg, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		printf("# sql error: %s", PQerrorMessage(ts->pg));
		PQclear(r);
		if (PQstatus(ts->pg) != CONNECTION_OK)
			PQreset(ts->pg);
		return NULL;
	}
	snprintf(out, sizeof(out), "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

bool ts_wait_sql(ts_stack_t *ts, int ms, const char *sql, const char *param, const char *want)
{
	for (int waited = 0; waited <= ms; waited += 50) {
		const char *v = ts_sql1(ts, sql, param);
		if (v && strcmp(v, want) == 0)
			return true;
		msleep(50);
	}
	return false;
}

void ts_finish(ts_stack_t *ts)
{
	/* Under the sanitizer lane (scripts/test) a daemon that found an error or a leak exits
	 * with this status: the test fails even when every case passed. */
	const char *se = getenv("LH_TEST_SANITIZER_EXIT");
	int sanitizer_exit = se && *se ? atoi(se) : -1, bad = 0;
	for (int i = 0; i < ts->nprocs; i++) {
		int st = ts->procs[i].exit_status;
		if (ts->procs[i].pid > 0) {
			kill(ts->procs[i].pid, SIGTERM);
			if ((st = ts_wait_exit(ts, i, 15000)) < 0)
				ts_kill(ts, i, SIGKILL);
		}
		if (sanitizer_exit > 0 && st == sanitizer_exit) {
			printf("FAIL: %s exited with the sanitizer's status %d: see %s/%s.log\n",
			       ts->procs[i].name, st, ts->log_dir, ts->procs[i].name);
			bad++;
		}
		for (int k = 0; ts->procs[i].argv[k]; k++)
			free(ts->procs[i].argv[k]);
	}
	lh_kafka_free(ts->producer);
	PQfinish(ts->pg);
	if (bad) {
		fflush(NULL);
		_exit(1);
	}
}

int ts_rebuild(ts_stack_t *ts, const char *schema, const char *group)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "'%s/materializer/lh-materializer' --rebuild --schema %s --group %s "
		 "--brokers '%s' --pg-url '%s' --topic-prefix %s --log-level off > /dev/null",
		 ts->build_root, schema, group, ts->brokers, ts->pg_url, ts->prefix);
	return system(cmd);
}

int ts_checksum_against(ts_stack_t *ts, const char *schema)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "'%s/materializer/lh-materializer' checksum --against-schema %s --pg-url '%s' "
		 "--topic-prefix %s --log-level off",
		 ts->build_root, schema, ts->pg_url, ts->prefix);
	return system(cmd);
}
