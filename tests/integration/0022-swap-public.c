/* 0022-swap-public: `lh-materializer --rebuild --swap` into the real `public` schema.
 *
 * The shared test database cannot have its `public` swapped (every other test and daemon uses
 * it), so this test creates a database of its own (LH_PG_ADMIN_URL, a superuser URL, names the
 * server; skipped without it), points only the materializer at it, and runs two plans through
 * the real coordinator and scripted workers. Then, with every daemon stopped as the README says:
 * a task row is corrupted, an API token and a blob (tables not derived from the log) are added,
 * and `--rebuild --schema rb --swap` (default --live-schema public) replays the log. Afterwards
 * `public` is the rebuilt schema: the corruption is gone, the token and the blob were carried
 * over, the old schema is kept as rb_old_TIME and differs from it only in `tasks`, and a
 * restarted materializer continues from the offsets stored in the new `public`: a third plan is
 * folded, and no event is there twice. The database is dropped at the end. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char db[64], url[512], plan_a[40], plan_b[40], plan_c[40], group[96];
static PGconn *admin, *main_pg;
static int mat = -1, coord = -1, wfast = -1, wstd = -1;

#define RUN_MAT(name, ...)                                                                        \
	ts_wait_exit(&ts, ts_spawn(&ts, name, "materializer/lh-materializer", __VA_ARGS__, NULL),  \
		     180000)

static bool admin_exec(const char *sql)
{
	PGresult *r = PQexec(admin, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		printf("# admin: %s", PQerrorMessage(admin));
	PQclear(r);
	return ok;
}

static void t_plans_in_own_database(void)
{
	lh_id_t a, b;
	ts.pg_url = url; /* the materializer spawned now writes to the test's own database */
	mat = ts_spawn_materializer(&ts);
	coord = ts_spawn_coordinator(&ts, NULL);
	wfast = ts_spawn_worker(&ts, "fast");
	wstd = ts_spawn_worker(&ts, "standard");
	a = ts_submit(&ts, "Choose a database for a weeks-long agent system");
	b = ts_submit(&ts, "Plan a weekend in Porto");
	lh_uuid_fmt(&a, plan_a);
	lh_uuid_fmt(&b, plan_b);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan_a,
			    "completed"));
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan_b,
			    "completed"));
}

static void t_swap_into_public(void)
{
	const char *v;
	int total;
	/* every daemon stopped first, and everything they wrote stored */
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT (sum(next_offset) = (SELECT count(*) FROM events))::text FROM "
			    "consumer_offsets WHERE consumer = $1",
			    group, "true"));
	ts_kill(&ts, coord, SIGTERM);
	ts_kill(&ts, wfast, SIGTERM);
	ts_kill(&ts, wstd, SIGTERM);
	ts_kill(&ts, mat, SIGTERM);
	T_EQ_INT(ts_wait_exit(&ts, mat, 30000), 0);
	ts_wait_exit(&ts, coord, 30000);
	ts_wait_exit(&ts, wfast, 30000);
	ts_wait_exit(&ts, wstd, 30000);
	v = ts_sql1(&ts, "SELECT count(*) FROM events", NULL);
	total = v ? atoi(v) : -1;
	T_CHECK(total > 20);
	/* damage a projection; add rows the log does not hold */
	T_EQ_STR(ts_sql1(&ts, "UPDATE tasks SET status = 'dead' WHERE plan_id = $1 AND task_no = 1 "
			      "RETURNING status", plan_a),
		 "dead");
	T_EQ_STR(ts_sql1(&ts, "INSERT INTO api_tokens (token_sha256, name, role, tenant) VALUES "
			      "(repeat('a', 64), $1, 'admin', 'default') RETURNING name", "swap-test"),
		 "swap-test");
	T_EQ_STR(ts_sql1(&ts, "INSERT INTO blobs (sha256, size, bytes) VALUES (encode(sha256("
			      "convert_to($1, 'UTF8')), 'hex'), 2, convert_to($1, 'UTF8')) RETURNING "
			      "size", "{}"),
		 "2");

	T_EQ_INT(RUN_MAT("rebuild-swap", "--rebuild", "--schema", "rb", "--swap", "--group", group),
		 0);
	/* public is the rebuilt schema now; the old one is kept */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rb_old_%'",
			 NULL),
		 "1");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM pg_namespace WHERE nspname = 'rb'", NULL), "0");
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM public.tasks WHERE plan_id = $1 AND task_no = 1",
			 plan_a),
		 "succeeded");
	T_EQ_STR(ts_sql1(&ts, "SELECT role FROM public.api_tokens WHERE name = $1", "swap-test"),
		 "admin");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM public.blobs WHERE bytes = convert_to($1, "
			      "'UTF8')", "{}"),
		 "1");
	{
		char want[16];
		snprintf(want, sizeof(want), "%d", total);
		T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM public.events", NULL), want);
		snprintf(want, sizeof(want), "%d", lh_pg_schema_version_binary());
		T_EQ_STR(ts_sql1(&ts, "SELECT max(version) FROM public.schema_migrations", NULL),
			 want);
	}
	/* the old schema differs from public in tasks only */
	{
		const char *old = ts_sql1(&ts, "SELECT nspname FROM pg_namespace WHERE nspname LIKE "
					       "'rb_old_%'", NULL);
		char oldname[96];
		int st;
		snprintf(oldname, sizeof(oldname), "%s", old ? old : "");
		st = RUN_MAT("checksum-old", "checksum", "--against-schema", oldname);
		T_EQ_INT(st, 1);
		T_CHECK(ts_wait_log(&ts, "checksum-old", "1 table(s) differ: tasks", NULL, 5000));
	}
}

static void t_continues_after_swap(void)
{
	lh_id_t c;
	mat = ts_spawn_materializer(&ts);
	coord = ts_spawn_coordinator(&ts, NULL);
	wfast = ts_spawn_worker(&ts, "fast");
	wstd = ts_spawn_worker(&ts, "standard");
	c = ts_submit(&ts, "Summarize three papers on consensus");
	lh_uuid_fmt(&c, plan_c);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM public.plans WHERE plan_id = $1",
			    plan_c, "completed"));
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM public.plans", NULL), "3");
	/* stored offsets kept moving from where the rebuild left them: nothing read twice */
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT (sum(next_offset) = (SELECT count(*) FROM public.events))::text "
			    "FROM public.consumer_offsets WHERE consumer = $1",
			    group, "true"));
}

int main(int argc, char **argv)
{
	const char *admin_url = getenv("LH_PG_ADMIN_URL");
	char sql[256], *slash;
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (!admin_url || !*admin_url || strchr(ts.pg_url, '?')) {
		printf("SKIP: needs LH_PG_ADMIN_URL (a superuser URL of the same server) and a "
		       "LH_PG_URL without query parameters\n");
		ts_finish(&ts);
		return TS_SKIP;
	}
	snprintf(db, sizeof(db), "lh_swap_%.8s", ts.prefix);
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	snprintf(url, sizeof(url), "%s", ts.pg_url);
	slash = strrchr(url, '/');
	if (!slash || slash - url < 12) {
		printf("SKIP: LH_PG_URL has no database name\n");
		ts_finish(&ts);
		return TS_SKIP;
	}
	snprintf(slash + 1, sizeof(url) - (size_t)(slash + 1 - url), "%s", db);
	admin = PQconnectdb(admin_url);
	if (PQstatus(admin) != CONNECTION_OK) {
		printf("FAIL: admin connection: %s", PQerrorMessage(admin));
		return 1;
	}
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER lh", db); /* db: [a-z0-9_] only */
	if (!admin_exec(sql))
		return 1;
	main_pg = ts.pg;
	ts.pg = PQconnectdb(url);
	if (PQstatus(ts.pg) != CONNECTION_OK) {
		printf("FAIL: %s", PQerrorMessage(ts.pg));
		return 1;
	}
	T_RUN(t_plans_in_own_database);
	T_RUN(t_swap_into_public);
	T_RUN(t_continues_after_swap);
	for (int i = 0; i < ts.nprocs; i++)
		ts_kill(&ts, i, SIGKILL);
	PQfinish(ts.pg);
	ts.pg = main_pg;
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
	admin_exec(sql);
	PQfinish(admin);
	ts_finish(&ts);
	return t_done();
}
