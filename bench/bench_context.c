/* bench_context.c — `lh-bench context`: context assembly for one LLM call (memory retrieval +
 * layering) against a real PostgreSQL holding many memories and a long attempt.
 *
 * Setup (not timed): --memories N synthetic facts (services x attributes, hashing embedder,
 * vectors and sign signatures computed here and bulk-inserted 500 a statement) spread over
 * --tenants T tenants; an attempt of --messages M messages (user, assistant with a tool call,
 * tool result, ... each naming paths and ticket ids), whose oldest part is folded into an anchored
 * summary 50 messages a span. Timed, --queries Q times: a hybrid search (k = 20) in one tenant for
 * a question drawn from the facts, then lh_context_assemble of system prompt, goal, plan status,
 * decisions, the summary, the hits and the messages into a 128k window. Figures:
 * context_p50_ms, context_p95_ms, context_p99_ms (search + assembly), retrieval_p95_ms,
 * assembly_p95_ms, visible_memories (memories one search sees). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "buf.h"
#include "context.h"
#include "embed.h"
#include "embedder.h"
#include "ids.h"
#include "memory.h"
#include "pg.h"
#include "summary.h"

int lh_bench_context(int argc, char **argv);

static const char *const SERVICES[] = {
	"billing", "checkout", "search", "auth", "mailer", "ledger", "catalog", "pricing",
	"inventory", "shipping", "gateway", "reports", "profile", "fraud", "payout", "notify",
	"media", "export", "import", "quota", "session", "audit", "backup", "metrics", "tracing"};
static const char *const ATTRS[] = {
	"listens on port %d",	     "is owned by team %d",	 "times out after %d seconds",
	"deploys on weekday %d",     "keeps %d days of logs",	 "runs %d replicas",
	"uses schema version %d",    "pages rotation %d",	 "caches for %d minutes",
	"retries %d times",	     "shards its data %d ways",	 "alerts at %d percent CPU",
	"rate limits at %d requests", "stores blobs in bucket %d", "was migrated in sprint %d",
	"depends on queue %d"};
#define NSERV (sizeof(SERVICES) / sizeof(SERVICES[0]))
#define NATTR (sizeof(ATTRS) / sizeof(ATTRS[0]))

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pctl(double *v, size_t n, double p)
{
	size_t i;
	qsort(v, n, sizeof(double), cmp_d);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Fact i: a service (with a shard number, so the texts differ), an attribute, a value. */
static void fact(long i, char *out, size_t outsz)
{
	char attr[64];
	snprintf(attr, sizeof(attr), ATTRS[i % (long)NATTR], (int)(i * 7919 % 9000) + 100);
	snprintf(out, outsz, "The %s service shard %ld %s.", SERVICES[(i / (long)NATTR) % (long)NSERV],
		 i / (long)(NATTR * NSERV), attr);
}

/* Append s to a PostgreSQL text[] literal as a quoted element. */
static void arr_add(lh_buf_t *b, const char *s)
{
	lh_buf_appends(b, b->len > 1 ? ",\"" : "\"");
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			lh_buf_append(b, "\\", 1);
		lh_buf_append(b, p, 1);
	}
	lh_buf_appends(b, "\"");
}

static lh_err_t load(lh_pg_t *pg, const char *prefix, long n, int tenants, lh_error_t *err)
{
	const long batch = 500;
	for (int t = 0; t < tenants; t++) {
		char tenant[96];
		long lo = n * t / tenants, hi = n * (t + 1) / tenants;
		snprintf(tenant, sizeof(tenant), "%s-%d", prefix, t);
		for (long from = lo; from < hi; from += batch) {
			lh_buf_t c, e, b;
			lh_err_t rc;
			lh_buf_init(&c);
			lh_buf_init(&e);
			lh_buf_init(&b);
			lh_buf_appends(&c, "{");
			lh_buf_appends(&e, "{");
			lh_buf_appends(&b, "{");
			for (long i = from; i < hi && i < from + batch; i++) {
				char text[160], *lit, *bits;
				float v[LH_EMBED_DIMS];
				fact(i, text, sizeof(text));
				lh_embed_text(text, v);
				lit = lh_embedder_literal(v, LH_EMBED_DIMS);
				bits = lh_embedder_bits_literal(v, LH_EMBED_DIMS);
				arr_add(&c, text);
				arr_add(&e, lit);
				arr_add(&b, bits);
				free(lit);
				free(bits);
			}
			lh_buf_appends(&c, "}");
			lh_buf_appends(&e, "}");
			lh_buf_appends(&b, "}");
			const char *p[] = {tenant, c.data, e.data, b.data};
			rc = lh_pg_query(pg, "bench_memory_bulk", 4, p, NULL, NULL, NULL, err);
			lh_buf_finish(&c);
			lh_buf_finish(&e);
			lh_buf_finish(&b);
			if (rc != LH_OK)
				return rc;
		}
	}
	return lh_pg_exec(pg, "ANALYZE memories", err);
}

int lh_bench_context(int argc, char **argv)
{
	const char *url = getenv("LH_PG_URL");
	long nmem = 100000, nmsg = 5000;
	int tenants = 100, queries = 200;
	lh_pg_t *pg = NULL;
	lh_error_t err;
	char prefix[64], tid[LH_UUID_STR_LEN + 1];
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--memories") == 0)
			nmem = atol(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--messages") == 0)
			nmsg = atol(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--tenants") == 0)
			tenants = atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--queries") == 0)
			queries = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: lh-bench context [--memories N] [--messages N] "
				"[--tenants N] [--queries N]\n");
			return 2;
		}
	}
	if (nmem < 1 || nmsg < 1 || tenants < 1 || tenants > nmem || queries < 1) {
		fprintf(stderr, "lh-bench context: counts must be positive, tenants <= memories\n");
		return 2;
	}
	if (!url || !*url) {
		fprintf(stderr, "lh-bench context: LH_PG_URL is not set\n");
		return 2;
	}
	lh_id_t id = lh_uuid7_new();
	lh_uuid_fmt(&id, tid);
	snprintf(prefix, sizeof(prefix), "bench-ctx-%.8s", tid);
	if (lh_pg_connect(url, &pg, &err) != LH_OK || lh_pg_migrate(pg, NULL, &err) != LH_OK)
		goto fail;
	{
		double t0 = now_ms();
		if (load(pg, prefix, nmem, tenants, &err) != LH_OK)
			goto fail;
		fprintf(stderr, "lh-bench context: %ld memories in tenants %s-0..%d loaded in %.1f s\n",
			nmem, prefix, tenants - 1, (now_ms() - t0) / 1e3);
	}

	/* the attempt: messages naming paths and tickets; the oldest folded into the summary */
	char **texts = calloc((size_t)nmsg, sizeof(char *));
	lh_llm_message_t *msgs = calloc((size_t)nmsg, sizeof(*msgs));
	lh_llm_tool_call_t *calls = calloc((size_t)nmsg, sizeof(*calls));
	lh_summary_t sum;
	lh_summary_init(&sum, 0, "Keep every service's runbook facts current; do not page on-call");
	for (long i = 0; i < nmsg; i++) {
		lh_buf_t b;
		lh_buf_init(&b);
		lh_buf_printf(&b, "step %ld: read /srv/runbooks/svc%ld/README.md, updated TICKET-%ld; "
			      "the %s service needs a look at its alerts and retries", i, i % 97, i,
			      SERVICES[i % (long)NSERV]);
		texts[i] = lh_buf_steal(&b, NULL);
		if (i % 3 == 1) {
			calls[i] = (lh_llm_tool_call_t){.id = "call", .name = "http_fetch",
							.arguments_json = "{\"url\":\"https://x\"}"};
			msgs[i] = (lh_llm_message_t){.role = LH_LLM_ROLE_ASSISTANT,
						     .content = texts[i], .tool_calls = &calls[i],
						     .n_tool_calls = 1};
		} else if (i % 3 == 2) {
			msgs[i] = (lh_llm_message_t){.role = LH_LLM_ROLE_TOOL, .content = texts[i],
						     .tool_call_id = "call"};
		} else {
			msgs[i] = (lh_llm_message_t){.role = LH_LLM_ROLE_USER, .content = texts[i]};
		}
	}
	for (long from = 0; from + 50 <= nmsg * 4 / 5; from += 50) {
		lh_buf_t span;
		char play[64];
		lh_buf_init(&span);
		for (long i = from; i < from + 50; i++) {
			lh_buf_appends(&span, texts[i]);
			lh_buf_appends(&span, "\n");
		}
		snprintf(play, sizeof(play), "steps %ld..%ld done", from, from + 49);
		const char *sec[LH_SUMMARY__COUNT] = {NULL, play, NULL, "re-read runbooks by path",
						      NULL};
		if (lh_summary_merge(&sum, from, from + 50, sec, span.data, &err) != LH_OK) {
			lh_buf_finish(&span);
			goto fail_msgs;
		}
		lh_buf_finish(&span);
	}

	double *total = calloc((size_t)queries, sizeof(double)),
	       *retr = calloc((size_t)queries, sizeof(double)),
	       *asm_ms = calloc((size_t)queries, sizeof(double));
	lh_arena_t *arena = lh_arena_new(0);
	long visible = nmem / tenants, dropped = 0, kept = 0;
	for (int q = 0; q < queries; q++) {
		char tenant[96], question[200];
		long f = (long)q * 7919 % nmem;
		int t = (int)((f * tenants) / nmem);
		lh_memory_hit_t *hits = NULL;
		int nh = 0;
		const char *mems[20];
		lh_llm_message_t *out;
		size_t nout;
		lh_context_report_t rep;
		snprintf(tenant, sizeof(tenant), "%s-%d", prefix, t);
		fact(f, question, sizeof(question));
		/* ask about it in other words: drop the value, keep service and attribute */
		{
			char *dot = strrchr(question, ' ');
			if (dot)
				snprintf(dot, sizeof(question) - (size_t)(dot - question), "?");
		}
		double t0 = now_ms();
		if (lh_memory_search(pg, tenant, NULL, question, 20, LH_MEMORY_HYBRID, &hits, &nh,
				     &err) != LH_OK)
			goto fail_loop;
		double t1 = now_ms();
		for (int h = 0; h < nh; h++)
			mems[h] = hits[h].content;
		lh_context_opts_t o = {.family = "gpt", .window = 128000, .reserve_output = 8000};
		lh_context_inputs_t in = {.system = "You are the runbook agent of Longhaul.",
					  .goal = "Keep every service's runbook facts current",
					  .constraints = "do not page on-call",
					  .plan_status = "running: 41 of 60 tasks done",
					  .decisions = "replanned twice; escalated task 17 to frontier",
					  .summary = &sum,
					  .memories = mems,
					  .n_memories = (size_t)nh,
					  .messages = msgs + sum.anchor,
					  .n_messages = (size_t)(nmsg - sum.anchor)};
		lh_err_t arc = lh_context_assemble(&o, &in, arena, &out, &nout, &rep, &err);
		double t2 = now_ms();
		lh_memory_hits_free(hits, nh);
		if (arc != LH_OK)
			goto fail_loop;
		dropped += (long)rep.n_dropped;
		kept += (long)nout;
		lh_arena_reset(arena);
		total[q] = t2 - t0;
		retr[q] = t1 - t0;
		asm_ms[q] = t2 - t1;
	}
	printf("figure visible_memories %ld count\n", visible);
	printf("figure messages_kept_avg %.0f count\n", (double)kept / queries);
	printf("figure messages_dropped_avg %.0f count\n", (double)dropped / queries);
	printf("figure retrieval_p95_ms %.2f ms\n", pctl(retr, (size_t)queries, 0.95));
	printf("figure assembly_p95_ms %.2f ms\n", pctl(asm_ms, (size_t)queries, 0.95));
	printf("figure context_p50_ms %.2f ms\n", pctl(total, (size_t)queries, 0.50));
	printf("figure context_p95_ms %.2f ms\n", pctl(total, (size_t)queries, 0.95));
	printf("figure context_p99_ms %.2f ms\n", pctl(total, (size_t)queries, 0.99));
	rc = 0;
	goto done_loop;
fail_loop:
	fprintf(stderr, "lh-bench context: %s\n", err.msg);
done_loop:
	lh_arena_free(arena);
	free(total);
	free(retr);
	free(asm_ms);
	goto done_msgs;
fail_msgs:
	fprintf(stderr, "lh-bench context: %s\n", err.msg);
done_msgs:
	lh_summary_finish(&sum);
	for (long i = 0; i < nmsg; i++)
		free(texts[i]);
	free(texts);
	free(msgs);
	free(calls);
	if (!getenv("LH_BENCH_KEEP")) {
		/* the bench's memories are dropped again (LH_BENCH_KEEP=1 keeps them for EXPLAIN):
		 * they would weigh on every later search */
		const char *p[] = {prefix};
		lh_pg_query(pg, "bench_memory_drop", 1, p, NULL, NULL, NULL, &err);
	}
	lh_pg_free(pg);
	return rc;
fail:
	fprintf(stderr, "lh-bench context: %s\n", err.msg);
	lh_pg_free(pg);
	return 1;
}
