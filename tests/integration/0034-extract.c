/* 0034-extract — the database half of extract-then-reconcile as the worker runs it
 * (worker/extract.c on the memory tools' PostgreSQL thread, lh_memtools_run), against a real
 * PostgreSQL.
 *
 * A tenant knows "The API listens on port 8000." A finished task's extraction answer proposes
 * three facts: a new one, the known one again, and the system prompt's rule. The filter drops the
 * rule (never re-ingested); the nearest memories of the two kept facts include the known one and
 * are shown as M1..; the reconcile answer ADDs the new fact and says NONE to the known one. The
 * new fact is stored once, with the task's provenance (source event, task_no 2, attempt 1);
 * nothing else is written. Applying the same answer again (a crash before the order's offset was
 * committed) writes nothing. A later task's fact "The API listens on port 9443." DELETEs the old
 * port: the old row is kept and linked to the new one by superseded_by. A job queued when the
 * memory tools stop still reports (LH_ERR_UNAVAILABLE), so its argument is freed.
 *
 * Through the whole stack (Kafka, PostgreSQL, fakellm), memory.extract on: a plan's act task
 * succeeds; its extract order (kind "extract", no attempt events) is taken by the fast tier's
 * worker; fakellm answers the extraction with two facts and the reconcile with ADD + NONE; the
 * added fact is then a memory with the act task's provenance, and nothing else. A second plan
 * whose output contradicts it DELETEs it: superseded, kept and linked. A worker killed (SIGKILL)
 * while a third plan's reconcile call is out has not committed the order: restarted, it runs it
 * again and the fact is stored exactly once. With memory.consolidate_every 1, two near duplicates
 * seeded in the tenant end, after the first extraction, with the newer superseded by the older.
 * Needs the stack (tests/integration/stack.h; else skipped, exit 77). */
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "memtools.h"
#include "stack.h"
#include "t.h"

static ts_stack_t ts;
static char tag[16]; /* this run's project name: the stored facts are new every run */
static char stack_tenant[64];

static const char *pg_url;
static lh_pg_t *pg;
static char tenant[64];
static const char *const SYSTEM = "You are the ops agent. Always answer in English.";
static const char *const OLD_PORT = "The API listens on port 8000.";
static const char *const REGION = "The production cluster runs in region eu-west-3.";
static const char *const NEW_PORT = "The API listens on port 9443.";
static const char *const SOURCE = "0123456789abcdef0123456789abcdef";

/* one job's state: the loop breaks when it is done */
typedef struct job {
	struct event_base *base;
	const char *const *facts;
	size_t n_facts;
	lh_extract_nearest_t nn;
	const char *answer;
	lh_memory_t tmpl;
	lh_reconcile_outcome_t out[4];
	lh_err_t rc;
	int done;
} job_t;

static lh_err_t do_nearest(lh_pg_t *p, lh_embedder_t *emb, void *arg, lh_error_t *err)
{
	job_t *j = arg;
	return lh_extract_nearest(p, emb, tenant, NULL, j->facts, j->n_facts, 5, &j->nn, err);
}

static lh_err_t do_apply(lh_pg_t *p, lh_embedder_t *emb, void *arg, lh_error_t *err)
{
	job_t *j = arg;
	j->tmpl.embedder = emb;
	return lh_extract_apply(p, &j->tmpl, j->facts, j->n_facts, &j->nn, j->answer,
				strlen(j->answer), j->out, err);
}

static void on_done(lh_err_t rc, const lh_error_t *err, void *arg)
{
	job_t *j = arg;
	j->rc = rc;
	j->done++;
	if (rc)
		fprintf(stderr, "job: %s\n", err->msg);
	if (j->base)
		event_base_loopbreak(j->base);
}

static lh_err_t run(lh_memtools_t *mt, struct event_base *base, lh_memtools_fn fn, job_t *j)
{
	j->base = base;
	j->done = 0;
	lh_memtools_run(mt, fn, on_done, j);
	while (!j->done)
		event_base_dispatch(base);
	T_EQ_INT(j->done, 1);
	return j->rc;
}

static json_t *row(int64_t id)
{
	json_t *r = NULL;
	lh_error_t err;
	if (lh_memory_get_json(pg, tenant, id, &r, &err) != LH_OK)
		return NULL;
	return r;
}

/* the tenant's live (not superseded, not forgotten) memories number n: checked in SQL */
static bool live_is(int n)
{
	char sql[400];
	lh_error_t err;
	snprintf(sql, sizeof(sql),
		 "DO $$ BEGIN IF (SELECT count(*) FROM memories WHERE tenant = '%s' AND "
		 "superseded_by IS NULL AND forgotten_at IS NULL) <> %d THEN RAISE EXCEPTION "
		 "'live memories differ'; END IF; END $$",
		 tenant, n);
	if (lh_pg_exec(pg, sql, &err) != LH_OK) {
		fprintf(stderr, "live_is(%d): %s\n", n, err.msg);
		return false;
	}
	return true;
}

static int index_of(const lh_extract_nearest_t *nn, int64_t id)
{
	for (size_t i = 0; i < nn->n; i++)
		if (nn->ids[i] == id)
			return (int)i;
	return -1;
}

static void extract_then_reconcile(void)
{
	struct event_base *base = event_base_new();
	lh_error_t err = {0};
	lh_memtools_t *mt = lh_memtools_new(base, pg_url, false, NULL, &err);
	lh_memory_t seed = {.tenant = tenant, .scope = LH_MEMORY_TENANT, .kind = LH_MEMORY_SEMANTIC,
			    .content = OLD_PORT, .task_no = 1, .attempt = 1};
	int64_t old_id = 0, region_id;
	char **cand = NULL, answer[256], *prompt;
	size_t ncand = 0, nkept = 0;
	const char *kept[4];
	int keep[4], m_old;
	job_t j = {.tmpl = {.tenant = tenant, .scope = LH_MEMORY_TENANT, .kind = LH_MEMORY_SEMANTIC,
			    .source_event = SOURCE, .task_no = 2, .attempt = 1}};
	json_t *r;

	T_CHECK(mt != NULL);
	T_EQ_INT(lh_memory_write(pg, &seed, 0, &old_id, &err), LH_OK);
	/* the extraction answer: a new fact, a known one, the system prompt's rule */
	snprintf(answer, sizeof(answer), "{\"facts\": [\"%s\", \"%s\", \"Always answer in English.\"]}",
		 REGION, OLD_PORT);
	T_EQ_INT(lh_extract_parse(answer, strlen(answer), &cand, &ncand, &err), LH_OK);
	T_EQ_INT(ncand, 3);
	T_EQ_INT(lh_reconcile_filter((const char *const *)cand, ncand, SYSTEM, NULL, 0, keep), 2);
	T_CHECK(keep[0] && keep[1] && !keep[2]);
	for (size_t i = 0; i < ncand; i++)
		if (keep[i])
			kept[nkept++] = cand[i];
	j.facts = kept;
	j.n_facts = nkept;
	T_EQ_INT(run(mt, base, do_nearest, &j), LH_OK);
	m_old = index_of(&j.nn, old_id);
	T_CHECK(m_old >= 0);
	prompt = lh_reconcile_prompt(kept, nkept, (const char *const *)j.nn.contents, j.nn.n);
	T_CHECK(prompt && strstr(prompt, OLD_PORT) && strstr(prompt, "F2"));
	free(prompt);
	/* the reconcile answer, as a model would give it */
	snprintf(answer, sizeof(answer),
		 "{\"decisions\": [{\"fact\": 1, \"op\": \"ADD\"}, {\"fact\": 2, \"op\": \"NONE\", "
		 "\"memory\": %d}]}", m_old + 1);
	j.answer = answer;
	T_CHECK(live_is(1));
	T_EQ_INT(run(mt, base, do_apply, &j), LH_OK);
	T_EQ_INT(j.out[0].op, LH_RECONCILE_ADD);
	T_EQ_INT(j.out[1].op, LH_RECONCILE_NONE);
	T_EQ_INT(j.out[1].memory_id, 0);
	region_id = j.out[0].memory_id;
	T_CHECK(region_id > 0);
	T_CHECK(live_is(2));
	r = row(region_id);
	T_CHECK(r != NULL);
	T_EQ_STR(json_string_value(json_object_get(r, "content")), REGION);
	T_EQ_INT(json_integer_value(json_object_get(r, "task_no")), 2);
	T_EQ_INT(json_integer_value(json_object_get(r, "attempt")), 1);
	T_CHECK(json_string_value(json_object_get(r, "source_event")) &&
		strstr(json_string_value(json_object_get(r, "source_event")), "0123") != NULL);
	T_EQ_STR(json_string_value(json_object_get(r, "scope")), "tenant");
	json_decref(r);
	/* a crash before the order's offset was committed: the same answer again writes nothing */
	T_EQ_INT(run(mt, base, do_apply, &j), LH_OK);
	T_EQ_INT(j.out[0].duplicate_of, region_id);
	T_CHECK(live_is(2));
	lh_extract_nearest_finish(&j.nn);
	lh_extract_facts_free(cand, ncand);

	/* a later task: the port changed — DELETE supersedes the old row, kept and linked */
	kept[0] = NEW_PORT;
	j.facts = kept;
	j.n_facts = 1;
	j.tmpl.task_no = 5;
	T_EQ_INT(run(mt, base, do_nearest, &j), LH_OK);
	m_old = index_of(&j.nn, old_id);
	T_CHECK(m_old >= 0);
	snprintf(answer, sizeof(answer),
		 "{\"decisions\": [{\"fact\": 1, \"op\": \"DELETE\", \"memory\": %d}]}", m_old + 1);
	T_EQ_INT(run(mt, base, do_apply, &j), LH_OK);
	T_EQ_INT(j.out[0].op, LH_RECONCILE_DELETE);
	T_EQ_INT(j.out[0].superseded_id, old_id);
	T_CHECK(j.out[0].memory_id > 0);
	r = row(old_id);
	T_CHECK(r != NULL);
	T_EQ_INT(json_integer_value(json_object_get(r, "superseded_by")), j.out[0].memory_id);
	json_decref(r);
	T_CHECK(live_is(2)); /* region and the new port */
	/* a refused answer writes nothing */
	j.answer = "{\"decisions\": [{\"fact\": 1, \"op\": \"MERGE\"}]}";
	T_EQ_INT(run(mt, base, do_apply, &j), LH_ERR_DECODE);
	T_CHECK(live_is(2));
	lh_extract_nearest_finish(&j.nn);

	/* a job the thread never delivers (freed right away): its done still runs */
	j.base = NULL;
	j.done = 0;
	lh_memtools_run(mt, do_nearest, on_done, &j);
	mt = lh_memtools_free(mt);
	T_EQ_INT(j.done, 1); /* ran or not, it reported once */
	lh_extract_nearest_finish(&j.nn);
	event_base_free(base);
}

/* ---- through the stack ----------------------------------------------------------------- */

#define OLD_FMT "The deploy region of project %s is eu-west-3."
#define NEW_FMT "The deploy region of project %s is us-east-2."
#define OTHER_FMT "Project %s has a weekly release."
#define CRASH_FMT "The on-call engineer of project %s is Dana."

static int fast_worker;

static const char *submit(const char *marker)
{
	static char plan[40];
	char goal[400];
	lh_id_t id;
	snprintf(goal, sizeof(goal),
		 "Deploy project %s\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":"
		 "\"Deploy %s [case\\u003a%s]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n",
		 tag, tag, marker);
	{
		/* goal.submitted in a tenant of this run's own: the nearest memories are ours */
		lh_goal_submitted_t g = {.goal = goal};
		lh_event_t ev = {.type = LH_EV_GOAL_SUBMITTED, .task_no = LH_NO_TASK,
				 .tenant = stack_tenant, .actor = {.kind = "cli", .id = "lh-test"},
				 .body = &g};
		ev.plan_id = id = lh_uuid7_new();
		ev.id = lh_event_id_derivef(&ev.plan_id, "goal.submitted", 0, "submit");
		ts_emit(&ts, &ev);
	}
	lh_uuid_fmt(&id, plan);
	printf("# plan %s (%s)\n", plan, marker);
	return plan;
}

static void through_the_stack(void)
{
	char old_fact[128], new_fact[128], other[128], like[64], plan1[40], plan2[40];
	const char *v;
	char old_id[32], new_id[32];
	snprintf(old_fact, sizeof(old_fact), OLD_FMT, tag);
	snprintf(new_fact, sizeof(new_fact), NEW_FMT, tag);
	snprintf(other, sizeof(other), OTHER_FMT, tag);
	snprintf(like, sizeof(like), "%%%s%%", tag);
	/* two near duplicates that got in (written without the near check): the consolidation
	 * after the first extraction supersedes the newer by the older */
	{
		char t1[128], t2[128], i1[32], i2[32];
		int64_t id1 = 0, id2 = 0;
		lh_error_t err = {0};
		lh_memory_t m = {.tenant = stack_tenant, .scope = LH_MEMORY_TENANT,
				 .kind = LH_MEMORY_SEMANTIC, .task_no = -1, .attempt = -1};
		/* Kestrel, not Osprey: the checks below find this run's facts by the tag */
		snprintf(t1, sizeof(t1), "The staging cluster of Kestrel%s runs in eu-central-1.",
			 tag + 6);
		snprintf(t2, sizeof(t2), "the staging cluster of Kestrel%s runs in EU-central-1",
			 tag + 6);
		m.content = t1;
		T_EQ_INT(lh_memory_write(pg, &m, 2.0, &id1, &err), LH_OK);
		m.content = t2;
		T_EQ_INT(lh_memory_write(pg, &m, 2.0, &id2, &err), LH_OK);
		snprintf(i1, sizeof(i1), "%lld", (long long)id1);
		snprintf(i2, sizeof(i2), "%lld", (long long)id2);
		snprintf(plan1, sizeof(plan1), "%s", submit("x1"));
		T_CHECK(ts_wait_log(&ts, "worker-fast", "worker.consolidate", stack_tenant, 60000));
		T_EQ_STR(ts_sql1(&ts, "SELECT coalesce(superseded_by::text, 'live') FROM memories "
				      "WHERE id = $1::bigint", i2),
			 i1);
		T_EQ_STR(ts_sql1(&ts, "SELECT coalesce(superseded_by::text, 'live') FROM memories "
				      "WHERE id = $1::bigint", i1),
			 "live");
	}
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan1,
			    "completed"));
	/* the extract order ran on the fast worker: ADD the first fact, NONE the second */
	T_CHECK(ts_wait_log(&ts, "worker-fast", "worker.extract", "applied", 60000));
	T_CHECK(ts_wait_sql(&ts, 30000,
			    "SELECT count(*) FROM memories WHERE tenant = $1 AND task_no IS NOT NULL",
			    stack_tenant, "1"));
	v = ts_sql1(&ts, "SELECT content || '|' || scope || ':' || task_no || ':' || attempt || ':' "
			 "|| (source_event IS NOT NULL) FROM memories WHERE content LIKE $1", like);
	printf("# memory: %s\n", v ? v : "(null)");
	{
		char want[200];
		snprintf(want, sizeof(want), "%s|tenant:1:1:true", old_fact);
		T_EQ_STR(v, want);
	}
	snprintf(old_id, sizeof(old_id), "%s",
		 (v = ts_sql1(&ts, "SELECT id::text FROM memories WHERE content LIKE $1", like)) ? v
											: "");
	/* the coordinator saw one attempt per task: started, succeeded, nothing for the order */
	v = ts_sql1(&ts, "SELECT count(*)::text FROM task_attempts WHERE plan_id = $1", plan1);
	T_CHECK(v && ts_count_events(&ts, plan1, "attempt.started") == atoi(v));
	T_CHECK(v && ts_count_events(&ts, plan1, "attempt.succeeded") == atoi(v));
	T_EQ_INT(ts_count_events(&ts, plan1, "attempt.failed"), 0);

	/* the second plan's output contradicts the fact: DELETE supersedes it, kept and linked */
	snprintf(plan2, sizeof(plan2), "%s", submit("x2"));
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan2,
			    "completed"));
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT count(*) FROM memories WHERE tenant = $1 AND task_no IS NOT NULL",
			    stack_tenant, "2"));
	snprintf(new_id, sizeof(new_id), "%s",
		 (v = ts_sql1(&ts, "SELECT id::text FROM memories WHERE content = $1", new_fact))
			 ? v : "");
	T_CHECK(new_id[0] != '\0');
	v = ts_sql1(&ts, "SELECT superseded_by::text FROM memories WHERE id = $1::bigint", old_id);
	printf("# old %s superseded by %s (new %s)\n", old_id, v ? v : "(null)", new_id);
	T_EQ_STR(v, new_id);
	T_EQ_STR(ts_sql1(&ts, "SELECT task_no || ':' || (superseded_by IS NULL) FROM memories WHERE "
			      "id = $1::bigint", new_id),
		 "1:true");
}

/* kill -9 the worker while the reconcile call is out (fakellm holds the first one 30 s): the
 * order's offset is not committed, the restarted worker runs it again, the fact is stored once */
static void crash_before_commit(void)
{
	char fact[128], plan[40];
	snprintf(fact, sizeof(fact), CRASH_FMT, tag);
	snprintf(plan, sizeof(plan), "%s", submit("x3"));
	T_CHECK(ts_wait_log(&ts, "worker-fast", "worker.extract_reconcile", plan, 60000));
	ts_kill(&ts, fast_worker, SIGKILL);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM memories WHERE content = $1", fact), "0");
	ts_restart(&ts, fast_worker);
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT count(*) FROM memories WHERE content = $1", fact,
			    "1"));
	T_CHECK(ts_wait_sql(&ts, 90000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	T_EQ_STR(ts_sql1(&ts, "SELECT task_no || ':' || attempt FROM memories WHERE content = $1",
			 fact),
		 "1:1");
}

int main(int argc, char **argv)
{
	lh_error_t err;
	lh_id_t t = lh_uuid7_new();
	char cfg[600], tid[37], url[128], script[3072], old_fact[128], new_fact[128], other[128], crash[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	pg_url = ts.pg_url;
	if (lh_pg_connect(pg_url, &pg, &err) != LH_OK || lh_pg_migrate(pg, NULL, &err) != LH_OK) {
		fprintf(stderr, "0034-extract: %s\n", err.msg);
		ts_finish(&ts);
		return 1;
	}
	lh_uuid_fmt(&t, tid);
	snprintf(tenant, sizeof(tenant), "ext-%s", tid);
	snprintf(tag, sizeof(tag), "Osprey%.8s", tid + 28);
	snprintf(stack_tenant, sizeof(stack_tenant), "exs-%s", tid);
	T_RUN(extract_then_reconcile);

	snprintf(old_fact, sizeof(old_fact), OLD_FMT, tag);
	snprintf(new_fact, sizeof(new_fact), NEW_FMT, tag);
	snprintf(other, sizeof(other), OTHER_FMT, tag);
	snprintf(crash, sizeof(crash), CRASH_FMT, tag);
	/* extraction: the source's instructions carry the marker; reconcile: its first fact does
	 * ("F1: ..."; the plans run in this run's own tenant, so M1 is the first plan's fact) */
	snprintf(script, sizeof(script),
		 "{\"rules\":["
		 "{\"match\":\"[case:x1]\",\"match_system\":\"remember from a task\","
		 "\"content\":\"{\\\"facts\\\": [\\\"%s\\\", \\\"%s\\\"]}\"},"
		 "{\"match\":\"[case:x2]\",\"match_system\":\"remember from a task\","
		 "\"content\":\"{\\\"facts\\\": [\\\"%s\\\"]}\"},"
		 "{\"match\":\"[case:x3]\",\"match_system\":\"remember from a task\","
		 "\"content\":\"{\\\"facts\\\": [\\\"%s\\\"]}\"},"
		 "{\"match\":\"F1: %s\",\"match_system\":\"long-term memory\",\"times\":1,"
		 "\"latency_ms\":30000,\"content\":\"{\\\"decisions\\\": []}\"},"
		 "{\"match\":\"F1: %s\",\"match_system\":\"long-term memory\","
		 "\"content\":\"{\\\"decisions\\\": []}\"},"
		 "{\"match\":\"F1: %s\",\"match_system\":\"long-term memory\","
		 "\"content\":\"{\\\"decisions\\\": [{\\\"fact\\\": 1, \\\"op\\\": "
		 "\\\"DELETE\\\", \\\"memory\\\": 1}]}\"},"
		 "{\"match\":\"F1: %s\",\"match_system\":\"long-term memory\","
		 "\"content\":\"{\\\"decisions\\\": [{\\\"fact\\\": 1, \\\"op\\\": "
		 "\\\"ADD\\\"}, {\\\"fact\\\": 2, \\\"op\\\": \\\"NONE\\\"}]}\"}]}",
		 old_fact, other, new_fact, crash, crash, crash, new_fact, old_fact);
	if (ts_fakellm_with(&ts, 5, script, url)) {
		lh_pg_free(pg);
		ts_finish(&ts);
		return 1;
	}
	setenv("LH_MEMORY_EXTRACT", "true", 1);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	/* offsets committed as soon as they are acknowledged: an order acknowledged too early would
	 * be committed before crash_before_commit's kill, and not run again */
	{
		FILE *f;
		snprintf(cfg, sizeof(cfg), "%s/0034-fast.json", ts.log_dir);
		f = fopen(cfg, "w");
		if (f) {
			fputs("{\"worker.commit_interval_ms\": 0, \"memory.consolidate_every\": 1}\n",
			      f);
			fclose(f);
		}
	}
	fast_worker = ts_spawn_worker_url(&ts, "fast", url, "--config", cfg, NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	T_RUN(through_the_stack);
	T_RUN(crash_before_commit);
	ts_finish(&ts);
	lh_pg_free(pg);
	return t_done();
}
