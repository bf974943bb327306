/* 0039-idle-consolidate — the idle-time consolidate schedule through the whole stack (Kafka,
 * PostgreSQL, fakellm; coordinator/consolidate_sched.h, worker/consolidate.h).
 *
 * A tenant of this run's own holds two near-duplicate memories (written without the near check),
 * an episodic memory 40 days old that no context used, one as old that a context used, and a
 * fresh episodic one. Its plan's only act task spends 5 s in its model call (the plan is busy),
 * then asks a person (ask_human): the plan waits, idle. The coordinator runs with
 * memory.consolidate_interval_s 2:
 *   - no consolidate order is sent while the plan is busy (every order's log line is later than
 *     the question's input.requested, and the busy span was longer than two intervals);
 *   - once idle, orders come once per interval: distinct, increasing buckets, at least 2 s apart;
 *   - the fast worker runs one on the memory tools' thread (no attempt events): the newer near
 *     duplicate is superseded by the older, the expired never-used episodic memory is forgotten
 *     ("expired episodic detail"), the used and the fresh ones stay;
 *   - a duplicate delivery of an order (same id, produced again) is not run twice, and a new
 *     order after it finds nothing left to merge or prune.
 * A second plan whose act task recalls a procedural memory and succeeds counts one use and one
 * success for it; being never idle, it gets no consolidate order. The worker's per-tenant cursor
 * covers a tenant with more live memories than a batch in turns.
 * Needs the stack (tests/integration/stack.h; else skipped, exit 77). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "consolidate.h"
#include "consolidate_sched.h"
#include "memory.h"
#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static lh_pg_t *pg;
static char tenant[64], tag[16], plan[40];
static lh_id_t plan_id;
static int64_t dup_old, dup_new, ep_expired, ep_used, ep_fresh;

#define INTERVAL_S 2

static const char script_fmt[] =
	"{\"rules\":[{\"match\":\"[case:idle%s]\",\"times\":1,\"latency_ms\":5000,"
	"\"tool_calls\":[{\"name\":\"ask_human\",\"arguments\":{\"question\":\"Which region?\"}}]},"
	"{\"match\":\"[case:use%s]\",\"content\":\"Deployed with the canary first.\"}]}";

static int64_t write_memory(lh_memory_kind_t kind, const char *content)
{
	lh_memory_t m = {.tenant = tenant, .scope = LH_MEMORY_TENANT, .kind = kind,
			 .content = content, .task_no = -1, .attempt = -1};
	lh_error_t err = {0};
	int64_t id = 0;
	if (lh_memory_write(pg, &m, 2.0 /* no near check */, &id, &err) != LH_OK)
		fprintf(stderr, "seed: %s\n", err.msg);
	return id;
}

static void seed(void)
{
	char t[200], sql[300];
	lh_error_t err = {0};
	snprintf(t, sizeof(t), "The staging cluster of Heron%s runs in eu-central-1.", tag);
	dup_old = write_memory(LH_MEMORY_SEMANTIC, t);
	snprintf(t, sizeof(t), "the staging cluster of Heron%s runs in EU-central-1", tag);
	dup_new = write_memory(LH_MEMORY_SEMANTIC, t);
	snprintf(t, sizeof(t), "On day 3 the Heron%s import stalled for an hour.", tag);
	ep_expired = write_memory(LH_MEMORY_EPISODIC, t);
	snprintf(t, sizeof(t), "A Heron%s rollback was rehearsed in the spring.", tag);
	ep_used = write_memory(LH_MEMORY_EPISODIC, t);
	snprintf(t, sizeof(t), "Heron%s shipped its nightly export today.", tag);
	ep_fresh = write_memory(LH_MEMORY_EPISODIC, t);
	T_CHECK(dup_old > 0 && dup_new > dup_old && ep_expired > 0 && ep_used > 0 && ep_fresh > 0);
	/* 40 days old (the worker's memory.episodic_ttl_s is 30 days); one of them was used */
	snprintf(sql, sizeof(sql),
		 "UPDATE memories SET created_at = now() - interval '40 days' WHERE id IN "
		 "(%" PRId64 ", %" PRId64 ")", ep_expired, ep_used);
	T_EQ_INT(lh_pg_exec(pg, sql, &err), LH_OK);
	T_EQ_INT(lh_memory_used(pg, tenant, &ep_used, 1, true, NULL, &err), LH_OK);
}

static lh_id_t submit_goal(const char *goal)
{
	lh_goal_submitted_t g = {.goal = goal};
	lh_event_t ev = {.type = LH_EV_GOAL_SUBMITTED, .task_no = LH_NO_TASK, .tenant = tenant,
			 .actor = {.kind = "cli", .id = "lh-test"}, .body = &g};
	ev.plan_id = lh_uuid7_new();
	ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "submit");
	ts_emit(&ts, &ev);
	return ev.plan_id;
}

static void submit(void)
{
	char goal[400];
	lh_goal_submitted_t g = {.goal = goal};
	lh_event_t ev = {.type = LH_EV_GOAL_SUBMITTED, .task_no = LH_NO_TASK, .tenant = tenant,
			 .actor = {.kind = "cli", .id = "lh-test"}, .body = &g};
	snprintf(goal, sizeof(goal),
		 "Pick a region for Heron%s\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":"
		 "\"Pick a region [case\\u003aidle%s]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n",
		 tag, tag);
	ev.plan_id = plan_id = lh_uuid7_new();
	ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "submit");
	ts_emit(&ts, &ev);
	lh_uuid_fmt(&plan_id, plan);
	printf("# plan %s tenant %s\n", plan, tenant);
}

/* a JSON log line's string field (static buffer; "" when absent) */
static const char *field(const char *line, const char *name)
{
	static char out[256];
	json_t *j = json_loads(line, 0, NULL);
	const char *v = j ? json_string_value(json_object_get(j, name)) : NULL;
	snprintf(out, sizeof(out), "%s", v ? v : "");
	json_decref(j);
	return out;
}

/* Lines of NAME's log holding a and b, at most max, into lines[] (new strings). */
static int log_lines(const char *name, const char *a, const char *b, char **lines, int max)
{
	char path[700], line[4096];
	int n = 0;
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s.log", ts.log_dir, name);
	f = fopen(path, "r");
	while (f && n < max && fgets(line, sizeof(line), f))
		if (strstr(line, a) && (!b || strstr(line, b)))
			lines[n++] = strdup(line);
	if (f)
		fclose(f);
	return n;
}

static void free_lines(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
}

/* Poll NAME's log until k lines hold a and b, or ms pass. */
static bool wait_lines(const char *name, const char *a, const char *b, int k, int ms)
{
	char *lines[64];
	for (int waited = 0; waited <= ms; waited += 50) {
		struct timespec step = {0, 50 * 1000000L};
		int n = log_lines(name, a, b, lines, 64);
		free_lines(lines, n);
		if (n >= k)
			return true;
		nanosleep(&step, NULL); /* polling a log file the child writes, with a deadline */
	}
	return false;
}

static void idle_plan_is_consolidated(void)
{
	char q[600], *lines[64];
	int n;
	seed();
	submit();
	T_CHECK(ts_wait_sql(&ts, 90000,
			    "SELECT status || ':' || kind FROM input_requests WHERE plan_id = $1",
			    plan, "pending:question"));
	/* the worker ran an order for the tenant */
	T_CHECK(ts_wait_log(&ts, "worker-fast", "\"worker.consolidate\"", tenant, 60000));
	T_CHECK(ts_wait_log(&ts, "worker-fast", "\"worker.consolidate\"", "\"applied\"", 1000));
	snprintf(q, sizeof(q), "%" PRId64, dup_new);
	T_EQ_STR(ts_sql1(&ts, "SELECT coalesce(superseded_by::text, 'live') FROM memories WHERE "
			      "id = $1::bigint", q),
		 (snprintf(q, sizeof(q), "%" PRId64, dup_old), q));
	T_EQ_STR(ts_sql1(&ts, "SELECT coalesce(superseded_by::text, 'live') || ':' || "
			      "(forgotten_at IS NULL) FROM memories WHERE id = $1::bigint", q),
		 "live:true");
	snprintf(q, sizeof(q), "%" PRId64, ep_expired);
	T_EQ_STR(ts_sql1(&ts, "SELECT coalesce(forget_reason, 'live') FROM memories WHERE id = "
			      "$1::bigint", q),
		 "expired episodic detail");
	snprintf(q, sizeof(q), "%" PRId64, ep_used);
	T_EQ_STR(ts_sql1(&ts, "SELECT (forgotten_at IS NULL) || ':' || use_count FROM memories "
			      "WHERE id = $1::bigint", q),
		 "true:1");
	snprintf(q, sizeof(q), "%" PRId64, ep_fresh);
	T_EQ_STR(ts_sql1(&ts, "SELECT (forgotten_at IS NULL)::text FROM memories WHERE id = "
			      "$1::bigint", q),
		 "true");
	/* no attempt events for the orders: one attempt of task 1, which asked */
	T_EQ_STR(ts_sql1(&ts, "SELECT string_agg(attempt || '=' || status, ',') FROM task_attempts "
			      "WHERE plan_id = $1 AND task_no = 1", plan),
		 "1=asked");
	T_EQ_INT(ts_count_events(&ts, plan, "attempt.started"), 2); /* plan task, task 1 */

	/* three orders for the plan: once per interval, none while it was busy */
	T_CHECK(wait_lines("coordinator", "\"coordinator.consolidate\"", plan, 3, 30000));
	n = log_lines("coordinator", "\"coordinator.consolidate\"", plan, lines, 64);
	printf("# %d consolidate orders for the plan\n", n);
	T_CHECK(n >= 3);
	for (int i = 0; i < n; i++) {
		char ts_i[64], when[96];
		long long b = atoll(field(lines[i], "bucket"));
		snprintf(ts_i, sizeof(ts_i), "%s", field(lines[i], "ts"));
		/* sent after the question was asked (the plan became idle), not while busy */
		snprintf(q, sizeof(q),
			 "SELECT ($1::timestamptz > (SELECT ts FROM events WHERE plan_id = '%s' AND "
			 "type = 'input.requested'))::text",
			 plan);
		T_EQ_STR(ts_sql1(&ts, q, ts_i), "true");
		if (i > 0) {
			char prev[64];
			long long pb = atoll(field(lines[i - 1], "bucket"));
			snprintf(prev, sizeof(prev), "%s", field(lines[i - 1], "ts"));
			T_CHECK(b > pb);
			snprintf(when, sizeof(when), "%s", ts_i);
			snprintf(q, sizeof(q),
				 "SELECT ($1::timestamptz - '%s'::timestamptz >= interval '%d s')::text",
				 prev, INTERVAL_S);
			T_EQ_STR(ts_sql1(&ts, q, when), "true");
		}
	}
	free_lines(lines, n);
	/* the busy span (task 1's model call) was longer than two intervals */
	snprintf(q, sizeof(q),
		 "SELECT ((SELECT ts FROM events WHERE plan_id = $1 AND type = 'input.requested') - "
		 "(SELECT min(ts) FROM events WHERE plan_id = $1 AND type = 'goal.submitted') >= "
		 "interval '%d s')::text",
		 2 * INTERVAL_S);
	T_EQ_STR(ts_sql1(&ts, q, plan), "true");
}

/* produce plan's consolidate order of bucket to the fast tier, as the coordinator does */
static void produce_order(int64_t bucket)
{
	lh_cplan_t p = {.plan_id = plan_id, .tenant = tenant, .goal = "g"};
	lh_arena_t *arena = lh_arena_new(0);
	lh_event_t ev;
	lh_buf_t b;
	lh_error_t err = {0};
	char topic[LH_TOPIC_MAX];
	lh_consolidate_order(&p, bucket, INTERVAL_S, "fast", lh_now_us(), arena, &ev);
	lh_buf_init(&b);
	T_EQ_INT(lh_topic_tasks(ts.prefix, "fast", topic, &err), LH_OK);
	T_EQ_INT(lh_bus_emit(ts.producer, topic, &ev, true, &b, NULL, &err), LH_OK);
	T_EQ_INT(lh_kafka_flush(ts.producer, 10000, &err), LH_OK);
	lh_buf_finish(&b);
	lh_arena_free(arena);
}

static void duplicate_does_nothing_twice(void)
{
	char *lines[64], bucket[32], id[LH_ID_HEX_LEN + 1], sentinel[LH_ID_HEX_LEN + 1];
	int n;
	lh_id_t oid;
	/* an order the worker already ran, delivered again */
	n = log_lines("worker-fast", "\"worker.consolidate\"", plan, lines, 64);
	T_CHECK(n >= 1);
	if (n < 1)
		return;
	snprintf(bucket, sizeof(bucket), "%s", field(lines[0], "bucket"));
	snprintf(id, sizeof(id), "%s", field(lines[0], "order"));
	free_lines(lines, n);
	oid = lh_consolidate_id(&plan_id, atoll(bucket));
	{
		char hex[LH_ID_HEX_LEN + 1];
		lh_id_hex(&oid, hex);
		T_EQ_STR(hex, id); /* the id is the one derived from (plan, bucket) */
	}
	produce_order(atoll(bucket));
	/* then one the coordinator never sends (a bucket long past), on the same partition */
	produce_order(7);
	oid = lh_consolidate_id(&plan_id, 7);
	lh_id_hex(&oid, sentinel);
	T_CHECK(ts_wait_log(&ts, "worker-fast", "\"worker.consolidate\"", sentinel, 30000));
	n = log_lines("worker-fast", "\"worker.consolidate\"", id, lines, 64);
	T_EQ_INT(n, 1); /* the duplicate was dropped */
	free_lines(lines, n);
	/* and a new order finds nothing left: nothing merged or pruned twice */
	n = log_lines("worker-fast", "\"worker.consolidate\"", sentinel, lines, 64);
	T_EQ_INT(n, 1);
	if (n == 1) {
		T_EQ_STR(field(lines[0], "merged"), "0");
		T_EQ_STR(field(lines[0], "pruned"), "0");
	}
	free_lines(lines, n);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM memories WHERE tenant = $1 AND "
			      "superseded_by IS NULL AND forgotten_at IS NULL", tenant),
		 "3");
}

/* A second plan's act task recalls the tenant's memories into its context and succeeds: the
 * procedural strategy it recalled counts one use and one success. The plan is never idle: no
 * consolidate order for it, while the waiting plan gets another one after it completed. */
static void use_and_success_counts(void)
{
	char goal[400], t[200], pid[40], q[64], *lines[64];
	lh_id_t b;
	int64_t proc;
	int na;
	snprintf(t, sizeof(t), "To deploy Heron%s safely, run the canary first.", tag);
	proc = write_memory(LH_MEMORY_PROCEDURAL, t);
	T_CHECK(proc > 0);
	snprintf(goal, sizeof(goal),
		 "Deploy Heron%s\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":"
		 "\"Deploy Heron%s safely [case\\u003ause%s]\",\"tier\":\"fast\"}],"
		 "\"join\":\"Check\"}\n",
		 tag, tag, tag);
	b = submit_goal(goal);
	lh_uuid_fmt(&b, pid);
	printf("# plan %s (use counts)\n", pid);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", pid,
			    "completed"));
	snprintf(q, sizeof(q), "%" PRId64, proc);
	T_CHECK(ts_wait_sql(&ts, 30000, "SELECT use_count || ':' || success_count FROM memories "
					"WHERE id = $1::bigint", q, "1:1"));
	/* a tick after the completion: the waiting plan's next order; none ever for this one */
	na = log_lines("coordinator", "\"coordinator.consolidate\"", plan, lines, 64);
	free_lines(lines, na);
	T_CHECK(wait_lines("coordinator", "\"coordinator.consolidate\"", plan, na + 1, 30000));
	na = log_lines("coordinator", "\"coordinator.consolidate\"", pid, lines, 64);
	T_EQ_INT(na, 0);
	free_lines(lines, na);
	T_EQ_STR(ts_sql1(&ts, "SELECT use_count || ':' || success_count FROM memories "
			      "WHERE id = $1::bigint", q), "1:1");
}

/* The worker's cursor (worker/consolidate.h), against PostgreSQL: with a batch of 2, a tenant's
 * five memories are examined in turns, so the near duplicate written last is merged on the third
 * run (from the beginning each time, it never would be); past the end it starts over. */
static void cursor_moves_on(void)
{
	char t2[80], t[200];
	int64_t ids[5], after = 0;
	lh_consolidate_cursors_t cur = {0};
	lh_event_t order = {0};
	lh_error_t err = {0};
	const char *const texts[5] = {"Wren%s keeps its backups for 9 days.",
				      "The Wren%s status page lives at status.example.org.",
				      "Wren%s builds run on four runners.",
				      "Invoices for Wren%s go out on the first Monday.",
				      "invoices for Wren%s go out on the FIRST Monday"};
	snprintf(t2, sizeof(t2), "%s-cursor", tenant);
	for (int i = 0; i < 5; i++) {
		lh_memory_t m = {.tenant = t2, .scope = LH_MEMORY_TENANT, .kind = LH_MEMORY_SEMANTIC,
				 .content = t, .task_no = -1, .attempt = -1};
		snprintf(t, sizeof(t), texts[i], tag);
		T_EQ_INT(lh_memory_write(pg, &m, 2.0, &ids[i], &err), LH_OK);
	}
	order.tenant = t2;
	/* what the first run from the beginning does not see */
	{
		lh_consolidate_job_t *j = lh_consolidate_job_new(&order, 0, 2, 0, NULL);
		T_EQ_INT(lh_consolidate_job_run(pg, NULL, j, &err), LH_OK);
		T_EQ_INT(lh_consolidate_job_result(j).merged, 0);
		T_EQ_INT(lh_consolidate_job_result(j).next_after, ids[1]);
		lh_consolidate_cursor_put(&cur, t2, lh_consolidate_job_result(j).next_after);
		lh_consolidate_job_free(j);
	}
	static const int merged[4] = {0, 1, 0, 0};
	for (int run = 0; run < 4; run++) {
		lh_consolidate_job_t *j;
		after = lh_consolidate_cursor_get(&cur, t2);
		j = lh_consolidate_job_new(&order, after, 2, 0, NULL);
		T_EQ_INT(lh_consolidate_job_run(pg, NULL, j, &err), LH_OK);
		printf("# run %d after %lld: merged %d, next %lld\n", run + 2, (long long)after,
		       lh_consolidate_job_result(j).merged,
		       (long long)lh_consolidate_job_result(j).next_after);
		T_EQ_INT(lh_consolidate_job_result(j).merged, merged[run]);
		lh_consolidate_cursor_put(&cur, t2, lh_consolidate_job_result(j).next_after);
		lh_consolidate_job_free(j);
	}
	/* runs 2..5 started after ids[1], ids[3], ids[4] (nothing after: over from the start,
	 * next ids[1]), ids[1] */
	T_EQ_INT(lh_consolidate_cursor_get(&cur, t2), ids[3]);
	snprintf(t, sizeof(t), "%" PRId64, ids[4]);
	T_EQ_STR(ts_sql1(&ts, "SELECT superseded_by::text FROM memories WHERE id = $1::bigint", t),
		 (snprintf(t2, sizeof(t2), "%" PRId64, ids[3]), t2));
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	lh_id_t t = lh_uuid7_new();
	char tid[37], url[128], script[600], interval[16];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (lh_pg_connect(ts.pg_url, &pg, &err) != LH_OK || lh_pg_migrate(pg, NULL, &err) != LH_OK) {
		fprintf(stderr, "0039-idle-consolidate: %s\n", err.msg);
		ts_finish(&ts);
		return 1;
	}
	lh_uuid_fmt(&t, tid);
	snprintf(tenant, sizeof(tenant), "idc-%s", tid);
	snprintf(tag, sizeof(tag), "%.8s", tid + 28);
	snprintf(script, sizeof(script), script_fmt, tag, tag);
	if (ts_fakellm_with(&ts, 5, script, url)) {
		lh_pg_free(pg);
		ts_finish(&ts);
		return 1;
	}
	snprintf(interval, sizeof(interval), "%d", INTERVAL_S);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, "--consolidate-interval", interval, NULL);
	setenv("LH_CONTEXT_MEMORIES", "5", 1); /* act tasks recall memories (use counts) */
	ts_spawn_worker_url(&ts, "fast", url, NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	T_RUN(idle_plan_is_consolidated);
	T_RUN(duplicate_does_nothing_twice);
	T_RUN(use_and_success_counts);
	T_RUN(cursor_moves_on);
	ts_finish(&ts);
	lh_pg_free(pg);
	return t_done();
}
