/* memtools.c — memory_search / memory_write / memory_forget on a PostgreSQL thread (memtools.h).
 *
 * The loop thread checks a call's arguments, copies everything into a job and queues it; the
 * PostgreSQL thread takes jobs in order, runs them on its own connection and moves them to the
 * done list, writing one byte to a pipe; the loop's read event on the pipe drains the done
 * list and runs the callbacks. Nothing on the loop waits for PostgreSQL. */
#include "memtools.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "embedder.h"
#include "memory.h"
#include "pg.h"

enum job_kind { JOB_SEARCH, JOB_WRITE, JOB_FORGET, JOB_RUN };

typedef struct job {
	enum job_kind kind;
	char *tenant, *plan_id, *source_event;
	int task_no, attempt;
	char *text; /* query, content, or forget reason (may be NULL) */
	int k;
	lh_memory_kind_t mkind;
	lh_memory_scope_t scope;
	int64_t id;
	char *result; /* set by the thread */
	lh_tool_done_cb cb;
	void *opaque;
	lh_memtools_fn fn; /* JOB_RUN: fn(pg, emb, opaque) on the thread, then fn_done on the loop */
	lh_memtools_fn_done fn_done;
	lh_err_t fn_rc;
	lh_error_t fn_err;
	struct job *next;
} job_t;

struct lh_memtools {
	struct event_base *base;
	char *pg_url;
	bool allow_global;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	job_t *todo, **todo_tail; /* FIFO */
	job_t *done, **done_tail;
	int pipefd[2];
	struct event *ev_pipe;
	lh_pg_t *pg; /* the thread's */
	/* memory.embed_* (the hashing embedder when no url is set); used on the thread only */
	lh_embedder_t *emb;
};

static const char search_params[] =
	"{\"type\":\"object\",\"required\":[\"query\"],\"additionalProperties\":false,"
	"\"properties\":{\"query\":{\"type\":\"string\",\"description\":\"what you want to "
	"remember, in words the memory would use\"},\"k\":{\"type\":\"integer\",\"minimum\":1,"
	"\"maximum\":20,\"description\":\"how many memories (default 5)\"}}}";
static const char write_params[] =
	"{\"type\":\"object\",\"required\":[\"content\"],\"additionalProperties\":false,"
	"\"properties\":{\"content\":{\"type\":\"string\",\"description\":\"one self-contained "
	"fact, event or strategy\"},\"kind\":{\"type\":\"string\",\"enum\":[\"episodic\","
	"\"semantic\",\"procedural\"]},\"scope\":{\"type\":\"string\",\"enum\":[\"plan\","
	"\"tenant\",\"global\"],\"description\":\"plan (default): this plan only; tenant: every "
	"plan of this tenant\"}}}";
static const char forget_params[] =
	"{\"type\":\"object\",\"required\":[\"id\"],\"additionalProperties\":false,"
	"\"properties\":{\"id\":{\"type\":\"integer\",\"description\":\"the memory's id, as "
	"memory_search cited it\"},\"reason\":{\"type\":\"string\"}}}";

void lh_memtools_defs(lh_llm_tool_t ret_defs[LH_MEMTOOLS_N], json_t *ret_params[LH_MEMTOOLS_N])
{
	ret_params[0] = json_loads(search_params, 0, NULL);
	ret_params[1] = json_loads(write_params, 0, NULL);
	ret_params[2] = json_loads(forget_params, 0, NULL);
	if (!ret_params[0] || !ret_params[1] || !ret_params[2])
		abort(); /* constant text */
	ret_defs[0] = (lh_llm_tool_t){
		.name = "memory_search",
		.description = "Search long-term memory (this plan's, the tenant's and global "
			       "memories). Returns {memories: [{id, score, content}]}; cite ids.",
		.parameters = ret_params[0]};
	ret_defs[1] = (lh_llm_tool_t){
		.name = "memory_write",
		.description = "Remember one fact, event or strategy for later tasks. Returns {id} "
			       "or {duplicate_of} when it is already known.",
		.parameters = ret_params[1]};
	ret_defs[2] = (lh_llm_tool_t){
		.name = "memory_forget",
		.description = "Forget a memory that is wrong or outdated, by id. It is kept for "
			       "audit but no longer found.",
		.parameters = ret_params[2]};
}

void lh_memtools_defs_finish(json_t *params[LH_MEMTOOLS_N])
{
	for (int i = 0; i < LH_MEMTOOLS_N; i++) {
		json_decref(params[i]);
		params[i] = NULL;
	}
}

bool lh_memtools_is(const char *name)
{
	return name && (!strcmp(name, "memory_search") || !strcmp(name, "memory_write") ||
			!strcmp(name, "memory_forget"));
}

static void job_free(job_t *j)
{
	if (!j)
		return;
	free(j->tenant);
	free(j->plan_id);
	free(j->source_event);
	free(j->text);
	free(j->result);
	free(j);
}

static char *result_of(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s ? s : lh_tool_error_result("could not encode the result");
}

static char *error_result(const char *what, const lh_error_t *err)
{
	char m[600];
	snprintf(m, sizeof(m), "%s: %s", what, err->msg);
	return lh_tool_error_result(m);
}

/* ---- the PostgreSQL thread --------------------------------------------------------------- */

static char *run_search(lh_memtools_t *mt, job_t *j, lh_error_t *err)
{
	lh_memory_hit_t *hits = NULL;
	int n = 0;
	json_t *arr;
	if (lh_memory_search_with(mt->pg, mt->emb, j->tenant, j->plan_id, j->text, j->k,
				  LH_MEMORY_HYBRID, &hits, &n, err))
		return NULL;
	arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I, s:f, s:s}", "id", (json_int_t)hits[i].id,
						     "score", hits[i].score, "content",
						     hits[i].content ? hits[i].content : ""));
	lh_memory_hits_free(hits, n);
	return result_of(json_pack("{s:o}", "memories", arr));
}

static char *run_write(lh_memtools_t *mt, job_t *j, lh_error_t *err)
{
	lh_memory_t m = {.tenant = j->tenant,
			 .scope = j->scope,
			 .plan_id = j->scope == LH_MEMORY_PLAN ? j->plan_id : NULL,
			 .kind = j->mkind,
			 .content = j->text,
			 .source_event = j->source_event,
			 .task_no = j->task_no,
			 .attempt = j->attempt,
			 .embedder = mt->emb};
	int64_t id = 0;
	lh_err_t rc = lh_memory_write(mt->pg, &m, lh_embedder_near_dup(mt->emb), &id, err);
	if (rc == LH_ERR_CONFLICT)
		/* a replayed call (same attempt, same content) lands here too: same answer */
		return result_of(json_pack("{s:I, s:s}", "duplicate_of", (json_int_t)id, "note",
					   "already remembered; not stored again"));
	if (rc)
		return NULL;
	return result_of(json_pack("{s:I}", "id", (json_int_t)id));
}

static char *run_forget(lh_memtools_t *mt, job_t *j, lh_error_t *err)
{
	json_t *row = NULL;
	const char *scope, *plan;
	char m[160];
	/* visible to this attempt, and not another plan's or a global one */
	if (lh_memory_get_json(mt->pg, j->tenant, j->id, &row, err)) {
		if (err->code != LH_ERR_NOT_FOUND)
			return NULL;
		snprintf(m, sizeof(m), "memory %" PRId64 " is not one this task can see", j->id);
		return lh_tool_error_result(m);
	}
	scope = json_string_value(json_object_get(row, "scope"));
	plan = json_string_value(json_object_get(row, "plan_id"));
	if (!scope || !strcmp(scope, "global") ||
	    (!strcmp(scope, "plan") && (!plan || strcmp(plan, j->plan_id) != 0))) {
		/* scope and plan point into row: the message first, then let row go */
		snprintf(m, sizeof(m),
			 "memory %" PRId64 " belongs to %s: only this plan's and the tenant's "
			 "memories can be forgotten here",
			 j->id, scope && !strcmp(scope, "global") ? "everyone" : "another plan");
		json_decref(row);
		return lh_tool_error_result(m);
	}
	json_decref(row);
	if (lh_memory_forget(mt->pg, j->tenant, j->id, j->text, err)) {
		if (err->code != LH_ERR_NOT_FOUND)
			return NULL;
		snprintf(m, sizeof(m), "memory %" PRId64 " is already forgotten or replaced", j->id);
		return lh_tool_error_result(m);
	}
	return result_of(json_pack("{s:I}", "forgotten", (json_int_t)j->id));
}

static void run_fn(lh_memtools_t *mt, job_t *j)
{
	for (int tries = 0; tries < 2; tries++) {
		memset(&j->fn_err, 0, sizeof(j->fn_err));
		if (!mt->pg && (j->fn_rc = lh_pg_connect(mt->pg_url, &mt->pg, &j->fn_err)) != LH_OK)
			return;
		j->fn_rc = j->fn(mt->pg, mt->emb, j->opaque, &j->fn_err);
		if (j->fn_rc == LH_ERR_PG || j->fn_rc == LH_ERR_UNAVAILABLE || j->fn_rc == LH_ERR_IO) {
			/* perhaps a broken connection: once more on a new one */
			mt->pg = lh_pg_free(mt->pg);
			continue;
		}
		return;
	}
}

static void run(lh_memtools_t *mt, job_t *j)
{
	lh_error_t err = {0};
	char *r = NULL;
	if (j->kind == JOB_RUN) {
		run_fn(mt, j);
		return;
	}
	for (int tries = 0; tries < 2 && !r; tries++) {
		memset(&err, 0, sizeof(err));
		if (!mt->pg && lh_pg_connect(mt->pg_url, &mt->pg, &err))
			break;
		r = j->kind == JOB_SEARCH  ? run_search(mt, j, &err)
		    : j->kind == JOB_WRITE ? run_write(mt, j, &err)
					   : run_forget(mt, j, &err);
		if (!r && (err.code == LH_ERR_PG || err.code == LH_ERR_UNAVAILABLE ||
			   err.code == LH_ERR_IO)) {
			/* perhaps a broken connection: once more on a new one */
			mt->pg = lh_pg_free(mt->pg);
			continue;
		}
		break;
	}
	j->result = r ? r
		      : error_result(j->kind == JOB_SEARCH  ? "memory search failed"
				     : j->kind == JOB_WRITE ? "memory write failed"
							    : "memory forget failed",
				     &err);
}

static void *thread_main(void *arg)
{
	lh_memtools_t *mt = arg;
	pthread_mutex_lock(&mt->mu);
	for (;;) {
		job_t *j;
		while (!mt->stop && !mt->todo)
			pthread_cond_wait(&mt->cv, &mt->mu);
		if (mt->stop)
			break;
		j = mt->todo;
		mt->todo = j->next;
		if (!mt->todo)
			mt->todo_tail = &mt->todo;
		pthread_mutex_unlock(&mt->mu);
		run(mt, j);
		pthread_mutex_lock(&mt->mu);
		j->next = NULL;
		*mt->done_tail = j;
		mt->done_tail = &j->next;
		while (write(mt->pipefd[1], "1", 1) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&mt->mu);
	mt->pg = lh_pg_free(mt->pg);
	return NULL;
}

/* ---- the loop side ----------------------------------------------------------------------- */

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	lh_memtools_t *mt = arg;
	char buf[256];
	job_t *list;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&mt->mu);
	list = mt->done;
	mt->done = NULL;
	mt->done_tail = &mt->done;
	pthread_mutex_unlock(&mt->mu);
	while (list) {
		job_t *j = list;
		char *r = j->result;
		list = j->next;
		j->result = NULL;
		if (j->kind == JOB_RUN)
			j->fn_done(j->fn_rc, &j->fn_err, j->opaque);
		else
			j->cb(r, j->opaque);
		job_free(j);
	}
}

lh_memtools_t *lh_memtools_new(struct event_base *base, const char *pg_url, bool allow_global,
			       const lh_common_cfg_t *common, lh_error_t *err)
{
	lh_memtools_t *mt = calloc(1, sizeof(*mt));
	if (!mt)
		abort();
	if ((common ? lh_embedder_new_from_config(common, &mt->emb, err)
		    : lh_embedder_new(NULL, &mt->emb, err)) != LH_OK) {
		free(mt);
		return NULL;
	}
	mt->base = base;
	mt->allow_global = allow_global;
	mt->pg_url = strdup(pg_url ? pg_url : "");
	mt->todo_tail = &mt->todo;
	mt->done_tail = &mt->done;
	mt->pipefd[0] = mt->pipefd[1] = -1;
	pthread_mutex_init(&mt->mu, NULL);
	pthread_cond_init(&mt->cv, NULL);
	if (!mt->pg_url || pipe2(mt->pipefd, O_NONBLOCK | O_CLOEXEC) != 0 ||
	    !(mt->ev_pipe = event_new(base, mt->pipefd[0], EV_READ | EV_PERSIST, on_pipe, mt)) ||
	    event_add(mt->ev_pipe, NULL) != 0 ||
	    pthread_create(&mt->thread, NULL, thread_main, mt) != 0) {
		lh_error_set(err, LH_ERR_INTERNAL, "could not start the memory tools' thread: %s",
			     strerror(errno));
		lh_memtools_free(mt);
		return NULL;
	}
	mt->started = true;
	return mt;
}

/* A job that will not be delivered on the loop: a JOB_RUN's fn_done still runs (it owns its
 * argument), with its result when it ran, else LH_ERR_UNAVAILABLE. */
static void drop(job_t *j, bool ran)
{
	if (j->kind == JOB_RUN) {
		if (!ran)
			lh_error_set(&j->fn_err, LH_ERR_UNAVAILABLE,
				     "the memory tools stopped before the call ran");
		j->fn_done(ran ? j->fn_rc : LH_ERR_UNAVAILABLE, &j->fn_err, j->opaque);
	}
	job_free(j);
}

lh_memtools_t *lh_memtools_free(lh_memtools_t *mt)
{
	if (!mt)
		return NULL;
	if (mt->started) {
		pthread_mutex_lock(&mt->mu);
		mt->stop = true;
		pthread_cond_signal(&mt->cv);
		pthread_mutex_unlock(&mt->mu);
		pthread_join(mt->thread, NULL);
	}
	while (mt->todo) {
		job_t *j = mt->todo;
		mt->todo = j->next;
		drop(j, false);
	}
	while (mt->done) {
		job_t *j = mt->done;
		mt->done = j->next;
		drop(j, true);
	}
	if (mt->ev_pipe)
		event_free(mt->ev_pipe);
	if (mt->pipefd[0] >= 0)
		close(mt->pipefd[0]);
	if (mt->pipefd[1] >= 0)
		close(mt->pipefd[1]);
	pthread_mutex_destroy(&mt->mu);
	pthread_cond_destroy(&mt->cv);
	free(mt->pg_url);
	lh_embedder_free(mt->emb);
	free(mt);
	return NULL;
}

static char *dup_or_null(const char *s)
{
	char *r = s ? strdup(s) : NULL;
	if (s && !r)
		abort();
	return r;
}

lh_err_t lh_memtools_call(lh_memtools_t *mt, const char *name, const json_t *args,
			  const lh_memtool_ctx_t *ctx, lh_tool_done_cb cb, void *opaque,
			  char **ret_result, lh_error_t *err)
{
	job_t *j = calloc(1, sizeof(*j));
	const char *s;
	json_t *v;
	if (!j)
		abort();
	*ret_result = NULL;
	if (!json_is_object(args)) {
		lh_error_set(err, LH_ERR_INVALID, "arguments must be a JSON object");
		goto out_refuse;
	}
	if (!strcmp(name, "memory_search")) {
		j->kind = JOB_SEARCH;
		s = json_string_value(json_object_get(args, "query"));
		v = json_object_get(args, "k");
		j->k = 5;
		if (!s || !*s) {
			lh_error_set(err, LH_ERR_INVALID, "memory_search needs a non-empty \"query\"");
			goto out_refuse;
		}
		if (v && (!json_is_integer(v) || json_integer_value(v) < 1)) {
			lh_error_set(err, LH_ERR_INVALID, "k must be a positive integer");
			goto out_refuse;
		}
		if (v)
			j->k = json_integer_value(v) > LH_MEMTOOLS_MAX_K ? LH_MEMTOOLS_MAX_K
									 : (int)json_integer_value(v);
		j->text = dup_or_null(s);
	} else if (!strcmp(name, "memory_write")) {
		const char *kind = json_string_value(json_object_get(args, "kind"));
		const char *scope = json_string_value(json_object_get(args, "scope"));
		j->kind = JOB_WRITE;
		s = json_string_value(json_object_get(args, "content"));
		if (!s || !*s || strlen(s) > LH_MEMTOOLS_MAX_CONTENT) {
			lh_error_set(err, LH_ERR_INVALID,
				     "memory_write needs \"content\" of 1 to %d bytes",
				     LH_MEMTOOLS_MAX_CONTENT);
			goto out_refuse;
		}
		if (json_object_get(args, "kind") && !kind) {
			lh_error_set(err, LH_ERR_INVALID, "kind must be a string");
			goto out_refuse;
		}
		if (!kind || !strcmp(kind, "semantic"))
			j->mkind = LH_MEMORY_SEMANTIC;
		else if (!strcmp(kind, "episodic"))
			j->mkind = LH_MEMORY_EPISODIC;
		else if (!strcmp(kind, "procedural"))
			j->mkind = LH_MEMORY_PROCEDURAL;
		else {
			lh_error_set(err, LH_ERR_INVALID,
				     "kind is one of episodic, semantic, procedural");
			goto out_refuse;
		}
		if (!scope || !strcmp(scope, "plan"))
			j->scope = LH_MEMORY_PLAN;
		else if (!strcmp(scope, "tenant"))
			j->scope = LH_MEMORY_TENANT;
		else if (!strcmp(scope, "global") && mt->allow_global)
			j->scope = LH_MEMORY_GLOBAL;
		else {
			lh_error_set(err, LH_ERR_INVALID, "scope is plan or tenant%s",
				     mt->allow_global ? " or global" : " (global is not allowed here)");
			goto out_refuse;
		}
		j->text = dup_or_null(s);
	} else if (!strcmp(name, "memory_forget")) {
		v = json_object_get(args, "id");
		j->kind = JOB_FORGET;
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			lh_error_set(err, LH_ERR_INVALID, "memory_forget needs the memory's \"id\"");
			goto out_refuse;
		}
		j->id = json_integer_value(v);
		s = json_string_value(json_object_get(args, "reason"));
		j->text = dup_or_null(s ? s : "forgotten by an agent");
	} else {
		lh_error_set(err, LH_ERR_INVALID, "no memory tool named \"%.64s\"", name);
		goto out_refuse;
	}
	if (!ctx->tenant || !ctx->plan_id) {
		lh_error_set(err, LH_ERR_INVALID, "the task has no tenant or plan");
		goto out_refuse;
	}
	j->tenant = dup_or_null(ctx->tenant);
	j->plan_id = dup_or_null(ctx->plan_id);
	j->source_event = dup_or_null(ctx->source_event);
	j->task_no = ctx->task_no;
	j->attempt = ctx->attempt;
	j->cb = cb;
	j->opaque = opaque;
	pthread_mutex_lock(&mt->mu);
	*mt->todo_tail = j;
	mt->todo_tail = &j->next;
	pthread_cond_signal(&mt->cv);
	pthread_mutex_unlock(&mt->mu);
	return LH_OK;

out_refuse:
	*ret_result = lh_tool_error_result(err->msg);
	job_free(j);
	return err->code;
}

void lh_memtools_run(lh_memtools_t *mt, lh_memtools_fn fn, lh_memtools_fn_done done, void *arg)
{
	job_t *j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	j->kind = JOB_RUN;
	j->fn = fn;
	j->fn_done = done;
	j->opaque = arg;
	pthread_mutex_lock(&mt->mu);
	*mt->todo_tail = j;
	mt->todo_tail = &j->next;
	pthread_cond_signal(&mt->cv);
	pthread_mutex_unlock(&mt->mu);
}
