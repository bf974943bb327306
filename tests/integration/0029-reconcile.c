/* 0029-reconcile — extract-then-reconcile and forgetting against a real PostgreSQL
 * (common/reconcile.c through common/memory.c, sql/0007).
 *
 * A tenant knows two facts. An extraction brings five candidates: the system prompt's rule, the
 * recalled memory repeated, a contradiction, a new fact, and an exact repeat of a memory that was
 * not recalled. The filter drops the first two (never re-ingested); the model's answer (written
 * here, as a model would, against the memories shown as M1..) DELETEs the contradicted memory,
 * ADDs the new fact and ADDs the repeat: the contradiction supersedes the old row (kept, linked),
 * the repeat is refused as a duplicate naming the existing id, search shows only live facts.
 * Applying the same answer again writes nothing. An UPDATE with a merged text supersedes its
 * memory. memory_forget hides a memory from search and duplicate checks, only for its tenant.
 * lhctl memory search|show|forget on the same rows (given the build root). Consolidation supersedes near duplicates that got in by their older twin and forgets expired,
 * never-used episodic memories; use counts feed procedural success counts.
 * Needs LH_PG_URL (else skipped, exit 77); no Kafka. */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "ids.h"
#include "memory.h"
#include "pg.h"
#include "reconcile.h"
#include "t.h"

static lh_pg_t *pg;
static char tenant[64];
static const char *build_root, *pg_url;
static int64_t port_id, owner_id, new_port_id, rust_id;

static const char *const SYSTEM = "You are the release agent. Never deploy on Fridays.";
static const char *const PORT_FACT = "The billing service listens on port 8000.";
static const char *const OWNER_FACT = "The Atlas team owns the billing service.";

static lh_memory_t tmpl(void)
{
	return (lh_memory_t){.tenant = tenant, .scope = LH_MEMORY_TENANT,
			     .kind = LH_MEMORY_SEMANTIC, .task_no = 3, .attempt = 1};
}

static int64_t superseded_by(int64_t id)
{
	json_t *j;
	lh_error_t err;
	int64_t v = -1;
	if (lh_memory_get_json(pg, tenant, id, &j, &err) != LH_OK)
		return -2;
	if (json_is_integer(json_object_get(j, "superseded_by")))
		v = json_integer_value(json_object_get(j, "superseded_by"));
	json_decref(j);
	return v;
}

/* superseded_by of a memory of tenant tn: -1 when live, -2 when not visible */
static int64_t superseded_by_of(const char *tn, int64_t id)
{
	json_t *j;
	lh_error_t err;
	int64_t v = -1;
	if (lh_memory_get_json(pg, tn, id, &j, &err) != LH_OK)
		return -2;
	if (json_is_integer(json_object_get(j, "superseded_by")))
		v = json_integer_value(json_object_get(j, "superseded_by"));
	json_decref(j);
	return v;
}

/* ids of the hits of a search, as a set check */
static bool search_has(const char *q, int64_t id)
{
	lh_memory_hit_t *hits;
	int n;
	lh_error_t err;
	bool found = false;
	if (lh_memory_search(pg, tenant, NULL, q, 10, LH_MEMORY_HYBRID, &hits, &n, &err) != LH_OK)
		return false;
	for (int i = 0; i < n; i++)
		found |= hits[i].id == id;
	lh_memory_hits_free(hits, n);
	return found;
}

static void extract_then_reconcile(void)
{
	lh_error_t err;
	lh_memory_t m = tmpl();
	m.content = PORT_FACT;
	T_EQ_INT(lh_memory_write(pg, &m, 0, &port_id, &err), LH_OK);
	m.content = OWNER_FACT;
	T_EQ_INT(lh_memory_write(pg, &m, 0, &owner_id, &err), LH_OK);

	/* what the extraction model proposed after the task */
	const char *cands[] = {
		"Never deploy on Fridays.",                        /* the system prompt */
		"The billing service listens on port 8000",        /* recalled into the context */
		"The billing service now listens on port 9443.",   /* contradicts PORT_FACT */
		"The checkout service is written in Rust.",        /* new */
		"The Atlas team owns the billing service.",        /* known, not recalled */
	};
	const char *recalled[] = {PORT_FACT};
	int keep[5];
	T_EQ_INT(lh_reconcile_filter(cands, 5, SYSTEM, recalled, 1, keep), 3);
	const char *facts[3];
	size_t nf = 0;
	for (int i = 0; i < 5; i++)
		if (keep[i])
			facts[nf++] = cands[i];
	T_EQ_STR(facts[0], cands[2]);

	/* the nearest live memories of the kept facts, shown as M1..Mm */
	int64_t shown[8];
	const char *shown_text[8];
	lh_memory_hit_t *all[3];
	int nall[3];
	size_t nm = 0;
	for (size_t f = 0; f < nf; f++) {
		T_EQ_INT(lh_memory_search(pg, tenant, NULL, facts[f], 2, LH_MEMORY_HYBRID, &all[f],
					  &nall[f], &err), LH_OK);
		for (int h = 0; h < nall[f]; h++) {
			bool seen = false;
			for (size_t k = 0; k < nm; k++)
				seen |= shown[k] == all[f][h].id;
			if (!seen && nm < 8) {
				shown[nm] = all[f][h].id;
				shown_text[nm++] = all[f][h].content;
			}
		}
	}
	int port_m = 0;
	for (size_t k = 0; k < nm; k++)
		if (shown[k] == port_id)
			port_m = (int)k + 1;
	T_CHECK(port_m > 0); /* the contradicted memory is among the nearest */
	char *prompt = lh_reconcile_prompt(facts, nf, shown_text, nm);
	char want[64];
	snprintf(want, sizeof(want), "M%d: %s", port_m, PORT_FACT);
	T_CHECK(strstr(prompt, want) != NULL);
	T_CHECK(strstr(prompt, "9443") != NULL && strstr(prompt, "Fridays") == NULL);
	free(prompt);

	/* the model's answer */
	char answer[256];
	snprintf(answer, sizeof(answer),
		 "{\"decisions\":[{\"fact\":1,\"op\":\"DELETE\",\"memory\":%d},"
		 "{\"fact\":2,\"op\":\"ADD\"},{\"fact\":3,\"op\":\"ADD\"}]}", port_m);
	lh_reconcile_decision_t *d;
	T_EQ_INT(lh_reconcile_parse(answer, strlen(answer), nf, nm, &d, &err), LH_OK);
	lh_reconcile_outcome_t out[3];
	lh_memory_t t = tmpl();
	T_EQ_INT(lh_reconcile_apply(pg, &t, facts, nf, shown, nm, d, nf, out, &err), LH_OK);
	new_port_id = out[0].memory_id;
	rust_id = out[1].memory_id;
	T_CHECK(new_port_id > 0 && rust_id > 0);
	T_EQ_INT(out[0].superseded_id, port_id);
	T_EQ_INT(out[2].memory_id, 0);
	T_EQ_INT(out[2].duplicate_of, owner_id); /* duplicates refused */
	T_EQ_INT(superseded_by(port_id), new_port_id); /* the old row is kept and linked */
	T_EQ_INT(superseded_by(new_port_id), -1);
	T_CHECK(!search_has("billing port", port_id));
	T_CHECK(search_has("billing port", new_port_id));
	T_CHECK(search_has("checkout language", rust_id));

	/* the same answer applied again (a retried task) writes nothing new */
	lh_reconcile_outcome_t again[3];
	T_EQ_INT(lh_reconcile_apply(pg, &t, facts, nf, shown, nm, d, nf, again, &err), LH_OK);
	T_EQ_INT(again[0].memory_id, 0);
	T_EQ_INT(again[0].duplicate_of, new_port_id);
	T_EQ_INT(again[1].memory_id, 0);
	T_EQ_INT(again[1].duplicate_of, rust_id);
	T_EQ_INT(superseded_by(port_id), new_port_id);
	lh_reconcile_decisions_free(d, nf);
	for (size_t f = 0; f < nf; f++)
		lh_memory_hits_free(all[f], nall[f]);
}

static void update_with_text(void)
{
	lh_error_t err;
	const char *facts[] = {"Atlas also owns the checkout service."};
	const char *answer = "{\"decisions\":[{\"fact\":1,\"op\":\"UPDATE\",\"memory\":1,"
			     "\"text\":\"The Atlas team owns the billing and checkout services.\"}]}";
	lh_reconcile_decision_t *d;
	lh_reconcile_outcome_t out;
	lh_memory_t t = tmpl();
	T_EQ_INT(lh_reconcile_parse(answer, strlen(answer), 1, 1, &d, &err), LH_OK);
	T_EQ_INT(lh_reconcile_apply(pg, &t, facts, 1, &owner_id, 1, d, 1, &out, &err), LH_OK);
	T_CHECK(out.memory_id > 0);
	T_EQ_INT(out.superseded_id, owner_id);
	T_EQ_INT(superseded_by(owner_id), out.memory_id);
	json_t *j;
	T_EQ_INT(lh_memory_get_json(pg, tenant, out.memory_id, &j, &err), LH_OK);
	T_EQ_STR(json_string_value(json_object_get(j, "content")),
		 "The Atlas team owns the billing and checkout services.");
	T_EQ_INT(json_integer_value(json_object_get(j, "task_no")), 3); /* provenance */
	T_EQ_STR(json_string_value(json_object_get(j, "embedder")), "hash-512");
	json_decref(j);
	lh_reconcile_decisions_free(d, 1);
	/* NONE writes nothing */
	const char *none = "{\"decisions\":[{\"fact\":1,\"op\":\"NONE\"}]}";
	T_EQ_INT(lh_reconcile_parse(none, strlen(none), 1, 0, &d, &err), LH_OK);
	T_EQ_INT(lh_reconcile_apply(pg, &t, facts, 1, NULL, 0, d, 1, &out, &err), LH_OK);
	T_EQ_INT(out.memory_id + out.duplicate_of + out.superseded_id, 0);
	lh_reconcile_decisions_free(d, 1);
}

static void forget(void)
{
	lh_error_t err;
	char other[80];
	snprintf(other, sizeof(other), "%s-other", tenant);
	T_EQ_INT(lh_memory_forget(pg, other, rust_id, "not theirs", &err), LH_ERR_NOT_FOUND);
	T_CHECK(search_has("checkout language", rust_id));
	T_EQ_INT(lh_memory_forget(pg, tenant, rust_id, "the service was rewritten", &err), LH_OK);
	T_EQ_INT(lh_memory_forget(pg, tenant, rust_id, NULL, &err), LH_ERR_NOT_FOUND);
	T_EQ_INT(lh_memory_forget(pg, tenant, port_id, NULL, &err), LH_ERR_NOT_FOUND); /* superseded */
	T_CHECK(!search_has("checkout language", rust_id));
	json_t *j;
	T_EQ_INT(lh_memory_get_json(pg, tenant, rust_id, &j, &err), LH_OK);
	T_CHECK(json_is_string(json_object_get(j, "forgotten_at")));
	T_EQ_STR(json_string_value(json_object_get(j, "forget_reason")), "the service was rewritten");
	json_decref(j);
	T_EQ_INT(lh_memory_get_json(pg, other, rust_id, &j, &err), LH_ERR_NOT_FOUND);
	/* the forgotten row still holds its content (one row per text and scope): writing the very
	 * same text again names it; a reworded fact is a new memory */
	lh_memory_t m = tmpl();
	int64_t id;
	m.content = "The checkout service is written in Rust.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_ERR_CONFLICT);
	T_EQ_INT(id, rust_id);
	m.content = "The checkout service was rewritten in Rust during the spring.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_OK);
}

static void consolidate_and_counts(void)
{
	lh_error_t err;
	char tn[96];
	int64_t older, newer, epi_old, epi_used, epi_new, proc;
	int updated = 0;
	snprintf(tn, sizeof(tn), "%s-cons", tenant);
	lh_memory_t m = {.tenant = tn, .scope = LH_MEMORY_TENANT, .kind = LH_MEMORY_SEMANTIC,
			 .task_no = -1, .attempt = -1};
	m.content = "The search service keeps its index in OpenSearch.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &older, &err), LH_OK);
	/* a near duplicate written without the near check (as a reconcile UPDATE may) */
	m.content = "the search service keeps its index in OpenSearch!";
	T_EQ_INT(lh_memory_write(pg, &m, 2, &newer, &err), LH_OK);
	m.content = "The ledger service is written in Rust.";
	int64_t other;
	T_EQ_INT(lh_memory_write(pg, &m, 0, &other, &err), LH_OK);
	m.kind = LH_MEMORY_EPISODIC;
	m.content = "Deploy of the search service on day 3 failed at the smoke test.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &epi_old, &err), LH_OK);
	m.content = "Rollback of the ledger service on day 4 took twelve minutes.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &epi_used, &err), LH_OK);
	m.content = "Today the catalog service was resized to four replicas.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &epi_new, &err), LH_OK);
	m.kind = LH_MEMORY_PROCEDURAL;
	m.content = "To fix a stuck deploy, drain the node before restarting the agent.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &proc, &err), LH_OK);
	/* two of the episodic memories are 40 days old; one of them was used in a context */
	char sql[256];
	snprintf(sql, sizeof(sql), "UPDATE memories SET created_at = now() - interval '40 days' "
		 "WHERE id IN (%" PRId64 ", %" PRId64 ")", epi_old, epi_used);
	T_EQ_INT(lh_pg_exec(pg, sql, &err), LH_OK);
	int64_t used[] = {epi_used, proc};
	T_EQ_INT(lh_memory_used(pg, tn, used, 2, true, &updated, &err), LH_OK);
	T_EQ_INT(updated, 2);
	T_EQ_INT(lh_memory_used(pg, tn, &proc, 1, false, &updated, &err), LH_OK);
	T_EQ_INT(lh_memory_used(pg, tenant, &proc, 1, true, &updated, &err), LH_OK);
	T_EQ_INT(updated, 0); /* another tenant's ids are skipped */
	json_t *j;
	T_EQ_INT(lh_memory_get_json(pg, tn, proc, &j, &err), LH_OK);
	T_EQ_INT(json_integer_value(json_object_get(j, "use_count")), 2);
	T_EQ_INT(json_integer_value(json_object_get(j, "success_count")), 1);
	json_decref(j);

	lh_memory_consolidation_t c;
	T_EQ_INT(lh_memory_consolidate(pg, tn, 0, 100, 0, 30 * 86400.0, &c, &err), LH_OK);
	T_EQ_INT(c.merged, 1);
	T_EQ_INT(c.pruned, 1);
	T_EQ_INT(c.next_after, proc);
	T_EQ_INT(superseded_by_of(tn, newer), older);
	T_EQ_INT(superseded_by_of(tn, older), -1);
	T_EQ_INT(superseded_by_of(tn, other), -1);
	T_EQ_INT(lh_memory_get_json(pg, tn, epi_old, &j, &err), LH_OK);
	T_EQ_STR(json_string_value(json_object_get(j, "forget_reason")), "expired episodic detail");
	json_decref(j);
	T_EQ_INT(lh_memory_get_json(pg, tn, epi_used, &j, &err), LH_OK);
	T_CHECK(json_is_null(json_object_get(j, "forgotten_at")));
	json_decref(j);
	/* again: nothing left to do; a cursor past everything examines nothing */
	T_EQ_INT(lh_memory_consolidate(pg, tn, 0, 100, 0, 30 * 86400.0, &c, &err), LH_OK);
	T_EQ_INT(c.merged + c.pruned, 0);
	T_EQ_INT(lh_memory_consolidate(pg, tn, proc, 100, 0, 0, &c, &err), LH_OK);
	T_EQ_INT(c.next_after, proc);
	/* a limit of 2 examines the two oldest live memories only */
	T_EQ_INT(lh_memory_consolidate(pg, tn, 0, 2, 0, 0, &c, &err), LH_OK);
	T_EQ_INT(c.next_after, other);
}

/* Run lhctl with args (shell-quoted by the caller); its stdout into out; the exit status. */
static int lhctl(const char *args, char *out, size_t outsz)
{
	char cmd[1024];
	size_t n = 0;
	FILE *p;
	snprintf(cmd, sizeof(cmd), "%s/cli/lhctl %s --pg-url '%s' --tenant '%s' 2>/dev/null",
		 build_root, args, pg_url, tenant);
	out[0] = 0;
	if (!(p = popen(cmd, "r")))
		return -1;
	n = fread(out, 1, outsz - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* lhctl memory search|show|forget against the same database (cli/memory.c) */
static void cli(void)
{
	char out[8192], args[256];
	lh_memory_t m = tmpl();
	lh_error_t err;
	int64_t id;
	m.content = "The reports service renders PDFs with wkhtmltopdf.";
	T_EQ_INT(lh_memory_write(pg, &m, 0, &id, &err), LH_OK);
	T_EQ_INT(lhctl("memory search 'reports pdf' --json --k 3", out, sizeof(out)), 0);
	json_t *a = json_loads(out, 0, NULL);
	T_CHECK(json_is_array(a) && json_array_size(a) >= 1);
	T_EQ_INT(json_integer_value(json_object_get(json_array_get(a, 0), "id")), id);
	json_decref(a);
	snprintf(args, sizeof(args), "memory show %" PRId64 " --json", id);
	T_EQ_INT(lhctl(args, out, sizeof(out)), 0);
	T_CHECK(strstr(out, "wkhtmltopdf") != NULL && strstr(out, "\"task_no\":3") != NULL);
	snprintf(args, sizeof(args), "memory forget %" PRId64 " --reason 'moved to weasyprint'", id);
	T_EQ_INT(lhctl(args, out, sizeof(out)), 0);
	T_EQ_INT(lhctl(args, out, sizeof(out)), 1); /* not live any more */
	T_EQ_INT(lhctl("memory search 'reports pdf' --json", out, sizeof(out)), 0);
	T_CHECK(strstr(out, "wkhtmltopdf") == NULL);
	T_EQ_INT(lhctl("memory show 0", out, sizeof(out)), 2);
	T_EQ_INT(lhctl("memory frobnicate 1", out, sizeof(out)), 2);
	T_EQ_INT(lhctl("memory show 999999999", out, sizeof(out)), 1);
}

int main(int argc, char **argv)
{
	const char *url = getenv("LH_PG_URL");
	lh_error_t err;
	if (!url || !*url) {
		printf("SKIP: LH_PG_URL must name a real PostgreSQL\n");
		return 77;
	}
	if (lh_pg_connect(url, &pg, &err) != LH_OK || lh_pg_migrate(pg, NULL, &err) != LH_OK) {
		fprintf(stderr, "0029-reconcile: %s\n", err.msg);
		return 1;
	}
	lh_id_t t = lh_uuid7_new();
	char tid[37];
	lh_uuid_fmt(&t, tid);
	snprintf(tenant, sizeof(tenant), "rec-%s", tid);
	build_root = argc > 1 ? argv[1] : NULL; /* meson passes it: lhctl is tested from there */
	pg_url = url;
	T_RUN(extract_then_reconcile);
	T_RUN(update_with_text);
	T_RUN(forget);
	T_RUN(consolidate_and_counts);
	if (build_root)
		T_RUN(cli);
	lh_pg_free(pg);
	return t_done();
}
