/* 0028-memory-tools: the agents' memory tools (and the context's memory layer) against the
 * real PostgreSQL.
 *
 * Through fakellm and the whole stack: a task of one plan calls memory_write (tenant scope);
 * a task of a later plan calls memory_search and its answer carries the fact and the memory's
 * id (fakellm's act answer repeats the tool result it was given).
 *
 * In process (lh_memtools_t on an event loop, its PostgreSQL thread): scope checks — a plan
 * scope memory is found by its own plan only, a tenant one by every plan of the tenant and by
 * no other tenant; memory_forget refuses another plan's memory, forgets the plan's own (once),
 * and a forgotten memory is no longer found; a duplicate write answers with the id it
 * duplicates; bad arguments and a global write (not allowed here) are refused before anything
 * is queued. */
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "memtools.h"
#include "stack.h"
#include "t.h"

static ts_stack_t ts;

#define FACT "The launch code name of project Kestrel is BLUEFIN"

static void t_write_then_find(void)
{
	char plan1[40], plan2[40];
	lh_id_t id;
	const char *v, *mid;
	char want[64];
	id = ts_submit(&ts, "Remember something\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":"
			    "\"Note it [case\\u003aremember]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n");
	lh_uuid_fmt(&id, plan1);
	printf("# plan %s writes\n", plan1);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan1,
			    "completed"));
	mid = ts_sql1(&ts, "SELECT max(id)::text FROM memories WHERE content = $1", FACT);
	printf("# memory id %s\n", mid ? mid : "(none)");
	T_CHECK(mid != NULL);
	if (!mid)
		return;
	snprintf(want, sizeof(want), "\\\"id\\\":%s", mid);
	T_EQ_STR(ts_sql1(&ts, "SELECT scope || ':' || task_no || ':' || attempt FROM memories WHERE "
			      "id = $1::bigint",
			 mid),
		 "tenant:1:1");
	id = ts_submit(&ts, "Recall something\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":"
			    "\"Look it up [case\\u003arecall]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n");
	lh_uuid_fmt(&id, plan2);
	printf("# plan %s searches\n", plan2);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan2,
			    "completed"));
	v = ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 1", plan2);
	printf("# task 1 of plan 2: %.300s\n", v ? v : "(null)");
	T_CHECK(v && strstr(v, "BLUEFIN") != NULL);
	T_CHECK(v && strstr(v, want) != NULL); /* the result cites the memory id */
	T_EQ_STR(ts_sql1(&ts, "SELECT llm_calls FROM task_attempts WHERE plan_id = $1 AND task_no = 1",
			 plan2),
		 "2");
}

/* Context assembly (common/context.c) in the worker: with context.memories on, an act task's
 * model call carries the recalled memory ("[memory N] ...") in its system text. fakellm answers
 * a fixed text only when it is there. Runs after t_write_then_find, which stored it. */
static void t_context_has_memory(void)
{
	char plan[40];
	lh_id_t id = ts_submit(&ts, "Use what you know\nlh-script: {\"tasks\":[{\"id\":1,"
				    "\"instructions\":\"Tell the launch code name of project Kestrel "
				    "[case\\u003actx]\",\"tier\":\"fast\"}],\"join\":\"Check\"}\n");
	const char *v;
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000, "SELECT status FROM plans WHERE plan_id = $1", plan,
			    "completed"));
	v = ts_sql1(&ts, "SELECT output::text FROM tasks WHERE plan_id = $1 AND task_no = 1", plan);
	printf("# task 1: %s\n", v ? v : "(null)");
	T_EQ_STR(v, "\"the context held the memory\"");
}

/* The window is a hard limit: a frontier worker here has a 1,024-token window, and a goal of
 * ~2,000 tokens (the intent, which is never cut) cannot fit, so the attempt fails as too_large
 * without a model call instead of sending a context without its goal. */
static void t_window_too_small(void)
{
	lh_buf_t g;
	char plan[40];
	lh_id_t id;
	const char *v;
	lh_buf_init(&g);
	lh_buf_appends(&g, "Read this carefully:");
	for (int i = 0; i < 200; i++)
		lh_buf_appends(&g, " the long preamble goes on");
	lh_buf_appends(&g, "\nlh-script: {\"tasks\":[{\"id\":1,\"instructions\":\"Summarize "
			   "[case\\u003awide]\",\"tier\":\"frontier\"}],\"join\":\"Check\"}\n");
	id = ts_submit(&ts, g.data);
	lh_buf_finish(&g);
	lh_uuid_fmt(&id, plan);
	printf("# plan %s\n", plan);
	T_CHECK(ts_wait_sql(&ts, 60000,
			    "SELECT count(*) > 0 FROM task_attempts WHERE plan_id = $1 AND task_no = 1 "
			    "AND error_class = 'too_large'",
			    plan, "t"));
	v = ts_sql1(&ts,
		    "SELECT error_message || '|' || llm_calls FROM task_attempts WHERE plan_id = $1 "
		    "AND task_no = 1 AND error_class = 'too_large' ORDER BY attempt LIMIT 1",
		    plan);
	printf("# attempt: %s\n", v ? v : "(null)");
	T_CHECK(v && strstr(v, "intent") && strstr(v, "|0"));
}

/* ---- in process -------------------------------------------------------------------------- */

typedef struct waiter {
	struct event_base *base;
	char *result;
} waiter_t;

static void on_done(char *result, void *opaque)
{
	waiter_t *w = opaque;
	w->result = result;
	event_base_loopbreak(w->base);
}

/* One call, run to its end; the parsed result (new) or NULL. refused: the call was refused
 * before queueing (its error result is returned). */
static json_t *call(lh_memtools_t *mt, struct event_base *base, const char *name,
		    const char *args, const lh_memtool_ctx_t *ctx, bool *refused)
{
	waiter_t w = {.base = base};
	lh_error_t err = {0};
	json_t *a = json_loads(args, 0, NULL), *r;
	char *res = NULL;
	*refused = lh_memtools_call(mt, name, a, ctx, on_done, &w, &res, &err) != LH_OK;
	json_decref(a);
	if (!*refused) {
		event_base_dispatch(base);
		res = w.result;
	}
	r = res ? json_loads(res, 0, NULL) : NULL;
	free(res);
	return r;
}

static int64_t id_of(const json_t *r, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(r, key));
}

static bool found(const json_t *r, int64_t id)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(r, "memories"), i, m) if (id_of(m, "id") == id) return true;
	return false;
}

/* The tools embed with memory.embed_*: a bad setting is refused when the tools start (not at
 * the first call), and a configured endpoint is the one used: with nothing listening there a
 * write fails (the hashing embedder would have stored it). */
static void t_embedder_from_config(void)
{
	struct event_base *base = event_base_new();
	lh_error_t err = {0};
	lh_common_cfg_t common = {.embed_url = "http://127.0.0.1:9/v1", .embed_model = ""};
	lh_memtools_t *mt = lh_memtools_new(base, ts.pg_url, false, &common, &err);
	char tenant[48], plan[40];
	lh_id_t t = lh_uuid7_new(), p = lh_uuid7_new();
	lh_memtool_ctx_t c;
	bool refused;
	json_t *r;
	int64_t id;
	T_CHECK(mt == NULL);
	T_EQ_INT(err.code, LH_ERR_CONFIG);
	T_CHECK(strstr(err.msg, "model") != NULL);
	lh_memtools_free(mt);
	common = (lh_common_cfg_t){.embed_url = "http://127.0.0.1:9/v1", .embed_model = "e5-test",
				   .embed_timeout_ms = 500};
	memset(&err, 0, sizeof(err));
	mt = lh_memtools_new(base, ts.pg_url, false, &common, &err);
	T_CHECK(mt != NULL);
	if (!mt) {
		event_base_free(base);
		return;
	}
	lh_uuid_fmt(&t, tenant);
	lh_uuid_fmt(&p, plan);
	c = (lh_memtool_ctx_t){.tenant = tenant, .plan_id = plan, .task_no = 1, .attempt = 1};
	r = call(mt, base, "memory_write", "{\"content\":\"The archive lives in bucket umber-9\"}",
		 &c, &refused);
	id = id_of(r, "id");
	T_CHECK(id <= 0);
	T_CHECK(json_string_value(json_object_get(r, "error")) &&
		strstr(json_string_value(json_object_get(r, "error")), "memory write failed"));
	json_decref(r);
	T_EQ_STR(ts_sql1(&ts, "SELECT count(*) FROM memories WHERE tenant = $1", tenant), "0");
	lh_memtools_free(mt);
	event_base_free(base);
}

static void t_scopes_and_forget(void)
{
	struct event_base *base = event_base_new();
	lh_error_t err = {0};
	lh_memtools_t *mt = lh_memtools_new(base, ts.pg_url, false, NULL, &err);
	char tenant[48], plan_a[40], plan_b[40], args[200];
	lh_id_t pa = lh_uuid7_new(), pb = lh_uuid7_new(), t = lh_uuid7_new();
	lh_memtool_ctx_t ca, cb;
	json_t *r;
	bool refused;
	int64_t mine, theirs, shared;
	T_CHECK(mt != NULL);
	if (!mt)
		return;
	lh_uuid_fmt(&t, tenant); /* a tenant of this run only */
	lh_uuid_fmt(&pa, plan_a);
	lh_uuid_fmt(&pb, plan_b);
	ca = (lh_memtool_ctx_t){.tenant = tenant, .plan_id = plan_a, .task_no = 1, .attempt = 1};
	cb = (lh_memtool_ctx_t){.tenant = tenant, .plan_id = plan_b, .task_no = 1, .attempt = 1};

	r = call(mt, base, "memory_write",
		 "{\"content\":\"Plan A stores its drafts in bucket amber-17\"}", &ca, &refused);
	mine = id_of(r, "id");
	T_CHECK(!refused && mine > 0);
	json_decref(r);
	r = call(mt, base, "memory_write",
		 "{\"content\":\"Plan B stores its drafts in bucket cobalt-42\"}", &cb, &refused);
	theirs = id_of(r, "id");
	T_CHECK(theirs > 0);
	json_decref(r);
	r = call(mt, base, "memory_write",
		 "{\"content\":\"Every plan of this tenant reports in euros\",\"scope\":\"tenant\","
		 "\"kind\":\"procedural\"}",
		 &cb, &refused);
	shared = id_of(r, "id");
	T_CHECK(shared > 0);
	json_decref(r);
	/* a duplicate answers with the id it duplicates */
	r = call(mt, base, "memory_write",
		 "{\"content\":\"Plan A stores its drafts in bucket amber-17\"}", &ca, &refused);
	T_EQ_INT(id_of(r, "duplicate_of"), mine);
	json_decref(r);

	/* plan A sees its own and the tenant's, not plan B's */
	r = call(mt, base, "memory_search", "{\"query\":\"which bucket stores the drafts\",\"k\":10}",
		 &ca, &refused);
	T_CHECK(found(r, mine));
	T_CHECK(!found(r, theirs));
	json_decref(r);
	r = call(mt, base, "memory_search", "{\"query\":\"report currency euros\"}", &ca, &refused);
	T_CHECK(found(r, shared));
	json_decref(r);

	/* forget: not another plan's memory; the tenant's and its own, yes */
	snprintf(args, sizeof(args), "{\"id\":%lld}", (long long)theirs);
	r = call(mt, base, "memory_forget", args, &ca, &refused);
	T_CHECK(json_string_value(json_object_get(r, "error")) &&
		strstr(json_string_value(json_object_get(r, "error")), "another plan"));
	json_decref(r);
	snprintf(args, sizeof(args), "{\"id\":%lld,\"reason\":\"moved\"}", (long long)mine);
	r = call(mt, base, "memory_forget", args, &ca, &refused);
	T_EQ_INT(id_of(r, "forgotten"), mine);
	json_decref(r);
	r = call(mt, base, "memory_forget", args, &ca, &refused);
	T_CHECK(json_string_value(json_object_get(r, "error")) != NULL); /* already forgotten */
	json_decref(r);
	r = call(mt, base, "memory_search", "{\"query\":\"which bucket stores the drafts\",\"k\":10}",
		 &ca, &refused);
	T_CHECK(!found(r, mine));
	json_decref(r);
	/* another tenant sees none of it */
	ca.tenant = "some-other-tenant";
	r = call(mt, base, "memory_search", "{\"query\":\"report currency euros\"}", &ca, &refused);
	T_CHECK(!found(r, shared));
	json_decref(r);
	ca.tenant = tenant;

	/* refused before queueing: bad arguments, and global scope when not allowed */
	r = call(mt, base, "memory_write", "{\"content\":\"x\",\"scope\":\"global\"}", &ca, &refused);
	T_CHECK(refused && strstr(json_string_value(json_object_get(r, "error")), "global"));
	json_decref(r);
	r = call(mt, base, "memory_search", "{\"query\":\"\"}", &ca, &refused);
	T_CHECK(refused);
	json_decref(r);
	r = call(mt, base, "memory_write", "{\"content\":\"x\",\"kind\":\"gossip\"}", &ca,
		 &refused);
	T_CHECK(refused);
	json_decref(r);
	r = call(mt, base, "memory_forget", "{\"id\":\"seven\"}", &ca, &refused);
	T_CHECK(refused);
	json_decref(r);
	lh_memtools_free(mt);
	event_base_free(base);
}

int main(int argc, char **argv)
{
	char url[128];
	int rc = ts_init(&ts, argc > 1 ? argv[1] : ".");
	if (rc)
		return rc;
	if (ts_fakellm_with(&ts, 5,
			    "{\"rules\":["
			    "{\"match\":\"[case:remember]\",\"times\":1,\"tool_calls\":[{\"name\":"
			    "\"memory_write\",\"arguments\":{\"content\":\"" FACT "\","
			    "\"scope\":\"tenant\"}}]},"
			    "{\"match\":\"[case:recall]\",\"times\":1,\"tool_calls\":[{\"name\":"
			    "\"memory_search\",\"arguments\":{\"query\":\"launch code name of "
			    "Kestrel\"}}]},"
			    "{\"match\":\"[case:ctx]\",\"match_system\":\"] " FACT "\","
			    "\"content\":\"the context held the memory\"}]}",
			    url)) {
		ts_finish(&ts);
		return 1;
	}
	setenv("ANTHROPIC_API_KEY", "test-key", 1); /* fakellm takes any key */
	setenv("LH_CONTEXT_MEMORIES", "3", 1);
	ts_spawn_materializer(&ts);
	ts_spawn_coordinator(&ts, NULL);
	ts_spawn_worker_url(&ts, "fast", url, "--provider", "anthropic", NULL);
	ts_spawn_worker_url(&ts, "standard", url, NULL);
	setenv("LH_LLM_CONTEXT_WINDOW", "1024", 1);
	ts_spawn_worker_url(&ts, "frontier", url, NULL);
	unsetenv("LH_LLM_CONTEXT_WINDOW");
	T_RUN(t_write_then_find); /* first: its plans wait for the stack (and its migrations) */
	T_RUN(t_context_has_memory);
	T_RUN(t_window_too_small);
	T_RUN(t_scopes_and_forget);
	T_RUN(t_embedder_from_config);
	ts_finish(&ts);
	return t_done();
}
