/* 0020-blobs: content-addressed blobs (common/blob.h) against the real PostgreSQL and Kafka.
 *  - the API: the ref is the sha256 of the bytes, the same bytes twice are one row, a corrupted
 *    row is refused, unknown and malformed refs are errors, offloading honours the threshold,
 *    readers get the output back;
 *  - the materializer's projection resolves output_ref into tasks.output (lh_output), and a ref
 *    to a missing blob leaves output NULL with the ref kept;
 *  - end to end with blob.threshold_bytes = 64: the worker writes each output as a blob before
 *    attempt.succeeded names it, the coordinator folds the planner's blob output into a plan that
 *    completes, and PostgreSQL shows every output resolved;
 *  - each attempt's conversation goes through a blob too (messages_ref): the materializer's
 *    trigger (sql/0008_messages.sql) projects it into `messages`, the rebuild reproduces those
 *    rows, and gc-blobs keeps an old blob that an event names as its messages;
 *  - `lh-materializer gc-blobs --older-than-days 7` deletes old blobs no event or task names, and
 *    keeps referenced and recent ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "blob.h"
#include "pg.h"
#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static lh_pg_t *pg;
static char ref_a[LH_BLOB_REF_LEN + 1]; /* referenced by the projection test's events */
static char plan_e2e[40];

static void t_api(void)
{
	static const char data[] = "{\"answer\":\"forty-two\",\"pad\":\"0123456789abcdef\"}";
	char ref[LH_BLOB_REF_LEN + 1], ref2[LH_BLOB_REF_LEN + 1], prefix_ref[LH_BLOB_REF_LEN + 1];
	lh_error_t err = {0};
	lh_buf_t b;
	json_t *v = NULL, *obj;
	bool stored = true;
	char salt[128];
	lh_buf_init(&b);
	/* unique bytes per run: the table is shared */
	snprintf(salt, sizeof(salt), "{\"run\":\"%s\",\"n\":1}", ts.prefix);
	T_EQ_INT(lh_blob_put(pg, salt, strlen(salt), NULL, ref, &err), LH_OK);
	lh_blob_ref_of(salt, strlen(salt), ref2);
	T_EQ_STR(ref, ref2);
	T_CHECK(lh_blob_ref_ok(ref));
	T_EQ_INT(lh_blob_put(pg, salt, strlen(salt), NULL, ref2, &err), LH_OK); /* again */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM blobs WHERE sha256 = $1", ref), "1");
	{
		char want[24];
		snprintf(want, sizeof(want), "%zu", strlen(salt));
		T_EQ_STR(ts_sql1(&ts, "SELECT size FROM blobs WHERE sha256 = $1", ref), want);
	}
	T_EQ_INT(lh_blob_get(pg, ref, &b, &err), LH_OK);
	T_CHECK(b.len == strlen(salt) && memcmp(b.data, salt, b.len) == 0);
	T_EQ_INT(lh_blob_get_json(pg, ref, &v, &err), LH_OK);
	T_EQ_STR(json_string_value(json_object_get(v, "run")), ts.prefix);
	json_decref(v);

	/* corruption is detected, never returned */
	ts_sql1(&ts, "UPDATE blobs SET bytes = convert_to('{\"run\":\"tampered\"}', 'UTF8') WHERE "
		     "sha256 = $1 RETURNING 1", ref);
	T_EQ_INT(lh_blob_get(pg, ref, &b, &err), LH_ERR_PG);
	T_CHECK(strstr(err.msg, "corrupt") != NULL);
	ts_sql1(&ts, "DELETE FROM blobs WHERE sha256 = $1 RETURNING 1", ref);
	T_EQ_INT(lh_blob_get(pg, ref, &b, &err), LH_ERR_NOT_FOUND);
	T_EQ_INT(lh_blob_get(pg, "../../etc/passwd", &b, &err), LH_ERR_INVALID);
	T_EQ_INT(lh_blob_get(pg, "ABCDEF", &b, &err), LH_ERR_INVALID);

	/* offload: at the threshold inline, above it a blob */
	obj = json_loads(data, 0, NULL);
	T_EQ_INT(lh_blob_offload(pg, obj, strlen(data), prefix_ref, &stored, &err), LH_OK);
	T_CHECK(!stored && prefix_ref[0] == 0);
	T_EQ_INT(lh_blob_offload(pg, obj, strlen(data) - 1, prefix_ref, &stored, &err), LH_OK);
	T_CHECK(stored && lh_blob_ref_ok(prefix_ref));
	json_decref(obj);

	/* readers: output null + output_ref -> the value; inline output untouched */
	obj = json_pack("{s:n,s:s}", "output", "output_ref", prefix_ref);
	T_EQ_INT(lh_blob_resolve_output(pg, obj, &err), LH_OK);
	T_EQ_STR(json_string_value(json_object_get(json_object_get(obj, "output"), "answer")),
		 "forty-two");
	json_decref(obj);
	obj = json_pack("{s:s,s:s}", "output", "inline", "output_ref", prefix_ref);
	T_EQ_INT(lh_blob_resolve_output(pg, obj, &err), LH_OK);
	T_EQ_STR(json_string_value(json_object_get(obj, "output")), "inline");
	json_decref(obj);
	lh_buf_finish(&b);
}

/* One materialized batch for a new plan whose task 0 succeeded with output_ref = ref. */
static void materialize_plan(const char *plan, const char *ref, int n)
{
	char batch[4096], id[3][LH_UUID_STR_LEN + 1];
	const char *p[1] = {batch};
	PGresult *r;
	for (int i = 0; i < 3; i++) { /* fresh ids: the table is shared and outlives runs */
		lh_id_t x = lh_uuid7_new();
		lh_uuid_fmt(&x, id[i]);
	}
	snprintf(batch, sizeof(batch),
		 "[{\"id\":\"%s\",\"plan_id\":\"%s\",\"type\":"
		 "\"goal.submitted\",\"ts_us\":1700000000000000,\"actor\":{\"kind\":\"cli\"},\"body\":"
		 "{\"goal\":\"blob test\"},\"topic\":\"%ssql\",\"partition\":0,\"offset\":%d},"
		 "{\"id\":\"%s\",\"plan_id\":\"%s\",\"type\":"
		 "\"task.dispatched\",\"task_no\":0,\"attempt\":1,\"ts_us\":1700000000000001,"
		 "\"actor\":{\"kind\":\"coordinator\"},\"body\":{\"tier\":\"standard\"},\"topic\":"
		 "\"%ssql\",\"partition\":0,\"offset\":%d},"
		 "{\"id\":\"%s\",\"plan_id\":\"%s\",\"type\":"
		 "\"attempt.succeeded\",\"task_no\":0,\"attempt\":1,\"ts_us\":1700000000000002,"
		 "\"actor\":{\"kind\":\"worker\"},\"body\":{\"worker_id\":\"w\",\"output\":null,"
		 "\"output_ref\":\"%s\"},\"topic\":\"%ssql\",\"partition\":0,\"offset\":%d}]",
		 id[0], plan, ts.prefix, 3 * n, id[1], plan, ts.prefix, 3 * n + 1, id[2], plan, ref,
		 ts.prefix, 3 * n + 2);
	r = PQexecParams(ts.pg, "SELECT lh_materialize('test-0020', $1::jsonb, '[]')", 1, NULL, p,
			 NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		printf("# %s", PQerrorMessage(ts.pg));
	T_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
	PQclear(r);
}

static void t_projection_resolves(void)
{
	char out[128], plan[40], plan2[40], missing[LH_BLOB_REF_LEN + 1];
	lh_error_t err = {0};
	lh_id_t id = lh_uuid7_new(), id2 = lh_uuid7_new();
	snprintf(out, sizeof(out), "{\"run\": \"%s\", \"kind\": \"projection\"}", ts.prefix);
	T_EQ_INT(lh_blob_put(pg, out, strlen(out), NULL, ref_a, &err), LH_OK);
	lh_uuid_fmt(&id, plan);
	materialize_plan(plan, ref_a, 1);
	T_EQ_STR(ts_sql1(&ts, "SELECT status FROM tasks WHERE plan_id = $1 AND task_no = 0", plan),
		 "succeeded");
	T_EQ_STR(ts_sql1(&ts, "SELECT output->>'kind' FROM tasks WHERE plan_id = $1", plan),
		 "projection");
	T_EQ_STR(ts_sql1(&ts, "SELECT output_ref FROM tasks WHERE plan_id = $1", plan), ref_a);
	/* a ref to a blob that is not there: output NULL, ref kept */
	lh_blob_ref_of(plan, strlen(plan), missing);
	lh_uuid_fmt(&id2, plan2);
	materialize_plan(plan2, missing, 2);
	T_EQ_STR(ts_sql1(&ts, "SELECT (output IS NULL)::text FROM tasks WHERE plan_id = $1", plan2),
		 "true");
	T_EQ_STR(ts_sql1(&ts, "SELECT output_ref FROM tasks WHERE plan_id = $1", plan2), missing);
}

static void t_end_to_end(void)
{
	char plan[40];
	lh_id_t id;
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker(&ts, "fast");
	ts_spawn_worker(&ts, "standard");
	id = ts_submit(&ts, "Compare three message brokers for a weeks-long agent system");
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	/* the planner's output went through a blob and the coordinator folded it */
	T_CHECK(lh_blob_ref_ok(ts_sql1(&ts, "SELECT output_ref FROM tasks WHERE plan_id = $1 AND "
					    "task_no = 0", plan)));
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM tasks WHERE plan_id = $1 AND status = "
			      "'succeeded' AND output_ref IS NOT NULL AND output IS NULL", plan),
		 "0");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM tasks t JOIN blobs b ON b.sha256 = t.output_ref "
			      "WHERE t.plan_id = $1 AND t.output <> convert_from(b.bytes, "
			      "'UTF8')::jsonb", plan),
		 "0");
	/* the events are small: output null, the ref in its place */
	T_CHECK(atoi(ts_sql1(&ts, "SELECT count(*) FROM events WHERE plan_id = $1 AND type = "
				  "'attempt.succeeded' AND body->'output' = 'null'::jsonb AND "
				  "body ? 'output_ref'", plan)) >= 2);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM events WHERE plan_id = $1 AND type = "
			      "'attempt.succeeded' AND body ? 'output_ref' AND NOT EXISTS (SELECT 1 "
			      "FROM blobs b WHERE b.sha256 = body->>'output_ref')", plan),
		 "0");
	/* every attempt's conversation went into a blob, and its messages are in `messages`:
	 * system and user first, the final answer (the output) last */
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM events WHERE plan_id = $1 AND type = "
			      "'attempt.succeeded' AND (body ? 'messages' OR NOT EXISTS (SELECT 1 "
			      "FROM blobs b WHERE b.sha256 = body->>'messages_ref'))", plan),
		 "0");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM events e WHERE plan_id = $1 AND type = "
			      "'attempt.succeeded' AND (SELECT string_agg(role, ',' ORDER BY seq) "
			      "FROM messages m WHERE m.plan_id = e.plan_id AND m.task_no = e.task_no "
			      "AND m.attempt = e.attempt AND m.event_id = e.id) "
			      "<> 'system,user,assistant'", plan),
		 "0");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM tasks t JOIN messages m ON m.plan_id = t.plan_id "
			      "AND m.task_no = t.task_no AND m.seq = 2 WHERE t.plan_id = $1 AND "
			      "t.status = 'succeeded' AND CASE WHEN jsonb_typeof(t.output) = 'string' "
			      "THEN m.content <> t.output #>> '{}' ELSE m.content::jsonb <> t.output "
			      "END", plan),
		 "0");
	T_CHECK(atoi(ts_sql1(&ts, "SELECT count(*) FROM messages WHERE plan_id = $1", plan)) >= 9);
	snprintf(plan_e2e, sizeof(plan_e2e), "%s", plan);
}

/* A rebuild of the log resolves the blob refs as the live run did (the live blobs are copied into
 * the new schema first): the checksums of this test's plans are equal. */
static void t_rebuild_resolves(void)
{
	char rb[64], group[96];
	snprintf(rb, sizeof(rb), "rb_%.8s", ts.prefix);
	snprintf(group, sizeof(group), "%smaterializer", ts.prefix);
	T_EQ_INT(ts_rebuild(&ts, rb, group), 0);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", rb), "1");
	T_EQ_INT(ts_checksum_against(&ts, rb), 0);
	ts_sql1(&ts, "SELECT set_config('lh.rb', $1, false)", rb);
	PQclear(PQexec(ts.pg, "DO $$ BEGIN EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', "
			      "current_setting('lh.rb')); END $$"));
}

static int run_gc(void)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "'%s/materializer/lh-materializer' gc-blobs --older-than-days 7 --pg-url '%s' "
		 "> /dev/null",
		 ts.build_root, ts.pg_url);
	return system(cmd);
}

static void t_gc(void)
{
	char old[128], recent[128], ref_old[LH_BLOB_REF_LEN + 1], ref_new[LH_BLOB_REF_LEN + 1];
	lh_error_t err = {0};
	snprintf(old, sizeof(old), "{\"run\":\"%s\",\"gc\":\"old\"}", ts.prefix);
	snprintf(recent, sizeof(recent), "{\"run\":\"%s\",\"gc\":\"recent\"}", ts.prefix);
	T_EQ_INT(lh_blob_put(pg, old, strlen(old), NULL, ref_old, &err), LH_OK);
	T_EQ_INT(lh_blob_put(pg, recent, strlen(recent), NULL, ref_new, &err), LH_OK);
	ts_sql1(&ts, "UPDATE blobs SET created_at = now() - interval '10 days' WHERE sha256 = $1 "
		     "RETURNING 1", ref_old);
	ts_sql1(&ts, "UPDATE blobs SET created_at = now() - interval '10 days' WHERE sha256 = $1 "
		     "RETURNING 1", ref_a);
	/* a conversation's blob, old, is kept: its event names it */
	const char *ref_msgs = ts_sql1(&ts, "SELECT min(body->>'messages_ref') FROM events WHERE "
					    "plan_id = $1 AND body ? 'messages_ref'", plan_e2e);
	char ref_m[LH_BLOB_REF_LEN + 1];
	T_CHECK(lh_blob_ref_ok(ref_msgs));
	snprintf(ref_m, sizeof(ref_m), "%s", ref_msgs ? ref_msgs : "");
	ts_sql1(&ts, "UPDATE blobs SET created_at = now() - interval '10 days' WHERE sha256 = $1 "
		     "RETURNING 1", ref_m);
	T_EQ_INT(run_gc(), 0);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM blobs WHERE sha256 = $1", ref_m), "1");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM blobs WHERE sha256 = $1", ref_old), "0");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM blobs WHERE sha256 = $1", ref_a), "1");
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM blobs WHERE sha256 = $1", ref_new), "1");
	T_EQ_INT(lh_blob_gc(pg, -1, NULL, &err), LH_ERR_INVALID);
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	int rc;
	/* every output and every conversation above 64 bytes goes through a blob (inherited by the
	 * daemons) */
	setenv("LH_BLOB_THRESHOLD", "64", 1);
	setenv("LH_TRANSCRIPT_INLINE_BYTES", "64", 1);
	rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (lh_pg_connect(ts.pg_url, &pg, &err) || lh_pg_migrate(pg, NULL, &err)) {
		printf("# %s\n", err.msg);
		ts_finish(&ts);
		return 1;
	}
	T_RUN(t_api);
	T_RUN(t_projection_resolves);
	T_RUN(t_end_to_end);
	T_RUN(t_rebuild_resolves);
	T_RUN(t_gc);
	lh_pg_free(pg);
	ts_finish(&ts);
	return t_done();
}
