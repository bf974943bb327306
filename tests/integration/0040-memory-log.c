/* 0040-memory-log: memories and rolling summaries come from the log too (sql/0010_memory_log.sql,
 * sql/0011_summary_log.sql, materializer/relay.c; DESIGN.md section 6: dropping every table and
 * replaying the log reproduces the same rows).
 *  - every change of a memory — a write, a supersede, a forget, use counts — is published by the
 *    materializer's relay as memory.written at the row's version once the change has committed,
 *    and the live projection of those events changes nothing (the outbox stays empty: no loop);
 *  - the materializer killed with SIGKILL while changes are queued: its restart publishes them;
 *  - two stored versions of a plan's summary are published as summary.written;
 *  - `lh-materializer --rebuild` into a fresh schema reproduces the memories and the summary
 *    versions exactly (the checksum command compares both, ids, versions and vectors included),
 *    and the rebuilt schema's id sequence is past the replayed ids;
 *  - with the relay off nothing is published (the outbox keeps the changes). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "pg.h"
#include "stack.h"
#include "summary.h"
#include "summary_store.h"
#include "t.h"

static ts_stack_t ts;
static lh_pg_t *pg;
static char tenant[64], group[96], published_sql[1024];
static int mat = -1;
static int64_t ids[40];
static char plan[40];
static int nids;

static void spawn_relaying(void)
{
	mat = ts_spawn(&ts, "materializer", "materializer/lh-materializer", "--group", group,
		       "--memory-relay", "--memory-relay-interval-ms", "50", NULL);
}

static void write_some(int from, int to)
{
	lh_error_t err = {0};
	for (int i = from; i < to; i++) {
		char text[160];
		lh_memory_t m = {.tenant = tenant, .scope = LH_MEMORY_TENANT,
				 .kind = i % 3 ? LH_MEMORY_SEMANTIC : LH_MEMORY_EPISODIC,
				 .content = text, .task_no = -1, .attempt = -1};
		snprintf(text, sizeof(text), "service %c%d listens on port %d and pages team %d",
			 'a' + i % 26, i, 7000 + i * 13, i % 7);
		T_EQ_INT(lh_memory_write(pg, &m, 2.0, &ids[nids], &err), LH_OK);
		nids++;
	}
}

/* Every memory of the tenant is in this test's events topic at its current version. */
static bool all_published(int ms)
{
	return ts_wait_sql(&ts, ms, published_sql, tenant, "0");
}

static void t_relay(void)
{
	lh_error_t err = {0};
	int n = 0;
	write_some(0, 20);
	T_EQ_INT(lh_memory_supersede(pg, ids[1], ids[2], &err), LH_OK);
	T_EQ_INT(lh_memory_supersede(pg, ids[3], ids[4], &err), LH_OK);
	T_EQ_INT(lh_memory_forget(pg, tenant, ids[5], "wrong port", &err), LH_OK);
	T_EQ_INT(lh_memory_used(pg, tenant, ids + 6, 4, true, &n, &err), LH_OK);
	T_EQ_INT(n, 4);
	T_CHECK(all_published(60000));
	/* the states the events carry are the rows' last ones */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM memories WHERE tenant = $1 AND log_version > 1",
			 tenant),
		 "7");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM memory_outbox o JOIN memories m ON m.id = "
			      "o.memory_id WHERE m.tenant = $1",
			 tenant),
		 "0"); /* the live projection of its own events queued nothing again */
}

/* Two versions of a plan's rolling summary, stored as the summarize orders store them. */
static void t_summaries(void)
{
	lh_error_t err = {0};
	lh_summary_t sm;
	int v = 0;
	lh_id_t id = lh_uuid7_new();
	const char *sec[LH_SUMMARY__COUNT] = {NULL, "read the runbook", NULL, "re-read /srv/a.md",
					      "who owns billing?"};
	lh_uuid_fmt(&id, plan);
	lh_summary_init(&sm, 0, "keep the runbooks current");
	T_EQ_INT(lh_summary_merge(&sm, 0, 10, sec, "opened /srv/a.md and TICKET-12", &err), LH_OK);
	T_EQ_INT(lh_summary_store(pg, plan, "", &sm, 0, NULL, &v, &err), LH_OK);
	T_EQ_INT(lh_summary_merge(&sm, 10, 25, sec, "closed TICKET-12", &err), LH_OK);
	T_EQ_INT(lh_summary_store(pg, plan, "", &sm, 1, NULL, &v, &err), LH_OK);
	T_EQ_INT(v, 2);
	lh_summary_finish(&sm);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events WHERE topic = '%sevents' AND type = 'summary.written' "
		 "AND plan_id = $1::uuid",
		 ts.prefix);
	T_CHECK(ts_wait_sql(&ts, 60000, sql, plan, "2"));
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM summary_outbox WHERE plan_id = $1::uuid", plan),
		 "0");
}

static void t_kill(void)
{
	lh_error_t err = {0};
	ts_kill(&ts, mat, SIGKILL);
	ts_wait_exit(&ts, mat, 10000);
	write_some(20, 30);
	T_EQ_INT(lh_memory_forget(pg, tenant, ids[25], NULL, &err), LH_OK);
	T_CHECK(atoi(ts_sql1(&ts, "SELECT count(*) FROM memory_outbox o JOIN memories m ON m.id = "
				  "o.memory_id WHERE m.tenant = $1",
			     tenant)) >= 10);
	spawn_relaying();
	T_CHECK(all_published(60000));
}

static void t_rebuild(void)
{
	char cmd[2048], rb[64], group[96];
	snprintf(rb, sizeof(rb), "rb_%.8s", ts.prefix);
	snprintf(group, sizeof(group), "%srebuild", ts.prefix);
	T_EQ_INT(ts_rebuild(&ts, rb, group), 0);
	T_EQ_INT(ts_checksum_against(&ts, rb), 0);
	/* and directly: the tenant's rows, all 30, the same (the checksum covers every memory
	 * this topic carries, other tests' included) */
	snprintf(cmd, sizeof(cmd),
		 "SELECT count(*) FROM %s.memories r JOIN public.memories l USING (id) WHERE "
		 "l.tenant = $1 AND r::text = l::text",
		 rb);
	T_EQ_STR(ts_sql1(&ts, cmd, tenant), "30");
	snprintf(cmd, sizeof(cmd),
		 "SELECT count(*) FROM %s.summaries r JOIN public.summaries l USING (plan_id, subject, "
		 "version) WHERE l.plan_id = $1::uuid AND r::text = l::text",
		 rb);
	T_EQ_STR(ts_sql1(&ts, cmd, plan), "2");
	snprintf(cmd, sizeof(cmd),
		 "SELECT (SELECT last_value FROM %s.memories_id_seq) >= max(id) FROM %s.memories",
		 rb, rb);
	T_EQ_STR(ts_sql1(&ts, cmd, NULL), "t");
	ts_sql1(&ts, "SELECT set_config('lh.rb', $1, false)", rb);
	PQclear(PQexec(ts.pg, "DO $$ BEGIN EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', "
			      "current_setting('lh.rb')); END $$"));
}

/* The relay off (the stack's default, LH_MEMORY_RELAY=false): a change stays queued, nothing is
 * published. */
static void t_relay_off(void)
{
	lh_error_t err = {0};
	ts_kill(&ts, mat, SIGTERM);
	T_EQ_INT(ts_wait_exit(&ts, mat, 30000), 0);
	mat = ts_spawn_materializer(&ts);
	T_EQ_INT(lh_memory_forget(pg, tenant, ids[26], "off", &err), LH_OK);
	/* a goal goes through the same materializer: once its events are stored, so would be a
	 * memory.written produced before them — and none was */
	lh_id_t id = ts_submit(&ts, "Relay off: nothing but this goal");
	char plan[40];
	lh_uuid_fmt(&id, plan);
	T_CHECK(ts_wait_sql(&ts, 30000, "SELECT count(*) FROM events WHERE plan_id = $1", plan,
			    "1"));
	T_CHECK(strcmp(ts_sql1(&ts, published_sql, tenant), "0") != 0);
	{
		char idbuf[24];
		snprintf(idbuf, sizeof(idbuf), "%" PRId64, ids[26]);
		T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM memory_outbox WHERE memory_id = "
				      "$1::bigint",
				 idbuf),
			 "1");
	}
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (lh_pg_connect(ts.pg_url, &pg, &err) || lh_pg_migrate(pg, NULL, &err)) {
		printf("# %s\n", err.msg);
		ts_finish(&ts);
		return 1;
	}
	snprintf(tenant, sizeof(tenant), "mlog-%s", ts.prefix);
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	snprintf(published_sql, sizeof(published_sql),
		 "SELECT count(*) FROM memories m WHERE m.tenant = $1 AND NOT EXISTS (SELECT 1 FROM "
		 "events e WHERE e.topic = '%sevents' AND e.type = 'memory.written' AND "
		 "(e.body->>'memory_id')::bigint = m.id AND (e.body->>'version')::bigint = "
		 "m.log_version)",
		 ts.prefix);
	spawn_relaying();
	T_RUN(t_relay);
	T_RUN(t_summaries);
	T_RUN(t_kill);
	T_RUN(t_rebuild);
	T_RUN(t_relay_off);
	lh_pg_free(pg);
	ts_finish(&ts);
	return t_done();
}
