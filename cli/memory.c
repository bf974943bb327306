/* memory.c — lhctl memory search|show|forget: the agents' memories in PostgreSQL
 * (common/memory.h).
 *
 *   lhctl memory search QUERY [--plan ID] [--k N] [--mode hybrid|fulltext|vector] [--json]
 *   lhctl memory show ID [--json]
 *   lhctl memory forget ID [--reason TEXT]
 *
 * Everything is scoped to --tenant (default "default"): a search sees the global memories, the
 * tenant's and, with --plan, that plan's; show sees the tenant's and global ones; forget only the
 * tenant's own live memories (the row is kept, searches skip it). Searches embed the query with
 * the configured embedder (memory.embed_url, else the hashing embedder), as the workers do. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "embedder.h"
#include "memory.h"
#include "pg.h"

typedef struct memory_cfg {
	lh_common_cfg_t common;
	char *plan;
	int64_t k;
	char *mode;
	char *reason;
	bool json;
} memory_cfg_t;

#define M(f) offsetof(memory_cfg_t, f)
static const lh_cfg_def_t memory_table[] = {
	{"cli.memory_plan", LH_CFG_STR, "", 0, 0, NULL, NULL, "plan", false, false,
	 "search: also the memories of this plan (UUID)", M(plan)},
	{"cli.memory_k", LH_CFG_INT, "10", 1, 200, NULL, NULL, "k", false, false,
	 "search: number of results", M(k)},
	{"cli.memory_mode", LH_CFG_ENUM, "hybrid", 0, 0, "hybrid|fulltext|vector", NULL, "mode",
	 false, false, "search: ranking (hybrid fuses full text and vectors)", M(mode)},
	{"cli.memory_reason", LH_CFG_STR, "", 0, 0, NULL, NULL, "reason", false, false,
	 "forget: why, kept with the memory", M(reason)},
	{"cli.memory_json", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "json", false, false,
	 "search, show: print JSON", M(json)},
	LH_CFG_END,
};

static const lh_cfg_spec_t memory_spec = {
	.prog = "lhctl memory",
	.usage = "search QUERY [--plan ID] [--k N] [--mode M] [--json] | show ID [--json] | forget "
		 "ID [--reason TEXT]",
	.summary = "The agents' memories of a tenant (--tenant). search ranks the global, tenant and "
		   "(with --plan) plan memories for QUERY and cites their ids; show prints one "
		   "memory with its provenance and history; forget marks one of the tenant's "
		   "memories forgotten (kept, never returned again).",
	.tables = {lh_config_common_table, memory_table, NULL},
};

static bool parse_id(const char *s, int64_t *ret)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || v <= 0)
		return false;
	*ret = v;
	return true;
}

static int mem_search(memory_cfg_t *cfg, lh_pg_t *pg, const char *query)
{
	lh_error_t err = {0};
	lh_embedder_t *emb = NULL;
	lh_memory_hit_t *hits = NULL;
	int n = 0;
	lh_memory_mode_t mode = !strcmp(cfg->mode, "fulltext") ? LH_MEMORY_FULLTEXT
				: !strcmp(cfg->mode, "vector") ? LH_MEMORY_VECTOR
							       : LH_MEMORY_HYBRID;
	if (lh_embedder_new_from_config(&cfg->common, &emb, &err) != LH_OK ||
	    lh_memory_search_with(pg, emb, cfg->common.tenant, *cfg->plan ? cfg->plan : NULL, query,
				  (int)cfg->k, mode, &hits, &n, &err) != LH_OK) {
		lh_embedder_free(emb);
		return lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
	}
	if (cfg->json) {
		json_t *a = lh_memory_hits_json(hits, n);
		char *s = json_dumps(a, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(a);
	} else {
		for (int i = 0; i < n; i++) {
			char *line = lhctl_one_line(hits[i].content, 200);
			printf("%-8" PRId64 " %8.4f  %s\n", hits[i].id, hits[i].score, line);
			free(line);
		}
		if (n == 0)
			fprintf(stderr, "no memory matches\n");
	}
	lh_memory_hits_free(hits, n);
	lh_embedder_free(emb);
	return LHCTL_EXIT_OK;
}

static int mem_show(memory_cfg_t *cfg, lh_pg_t *pg, int64_t id)
{
	lh_error_t err = {0};
	json_t *j;
	if (lh_memory_get_json(pg, cfg->common.tenant, id, &j, &err) != LH_OK)
		return lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
	if (cfg->json) {
		char *s = json_dumps(j, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
	} else {
		const char *key;
		json_t *v;
		json_object_foreach(j, key, v)
		{
			if (json_is_null(v))
				continue;
			if (json_is_integer(v))
				printf("%-14s %" JSON_INTEGER_FORMAT "\n", key, json_integer_value(v));
			else
				printf("%-14s %s\n", key, json_string_value(v));
		}
	}
	json_decref(j);
	return LHCTL_EXIT_OK;
}

int lhctl_cmd_memory(int argc, char **argv)
{
	memory_cfg_t cfg = {0};
	char **rest = NULL;
	int nrest = 0, rc;
	int64_t id = 0;
	lh_pg_t *pg = NULL;
	lh_error_t err = {0};
	if ((rc = lhctl_load(&memory_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (!(nrest == 2 && (!strcmp(rest[0], "search") ||
			     ((!strcmp(rest[0], "show") || !strcmp(rest[0], "forget")) &&
			      parse_id(rest[1], &id))))) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "usage: lhctl memory search QUERY [--plan ID] [--k "
				"N] [--mode M] [--json] | show ID | forget ID [--reason TEXT]");
		goto out;
	}
	if (lhctl_resolve(&cfg.common, false, true, NULL, &err) ||
	    lh_pg_connect(cfg.common.pg_url, &pg, &err) || lh_pg_migrate(pg, NULL, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out;
	}
	if (!strcmp(rest[0], "search"))
		rc = mem_search(&cfg, pg, rest[1]);
	else if (!strcmp(rest[0], "show"))
		rc = mem_show(&cfg, pg, id);
	else if (lh_memory_forget(pg, cfg.common.tenant, id, *cfg.reason ? cfg.reason : NULL,
				  &err) != LH_OK)
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
	else {
		printf("forgot memory %" PRId64 "\n", id);
		rc = LHCTL_EXIT_OK;
	}
out:
	lh_pg_free(pg);
	free(rest);
	lh_config_finish(&memory_spec, &cfg);
	return rc;
}
