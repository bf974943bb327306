/* db.c — lhctl db migrate, lhctl version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "pg.h"

#ifndef LH_VERSION
#define LH_VERSION "unknown"
#endif

typedef struct db_cfg {
	lh_common_cfg_t common;
} db_cfg_t;

static const lh_cfg_def_t db_table[] = {LH_CFG_END};

static const lh_cfg_spec_t migrate_spec = {
	.prog = "lhctl db migrate",
	.usage = "[--pg-url URL]",
	.summary = "Applies the migrations this lhctl carries (sql/NNNN_*.sql) that the database "
		   "lacks, each in its own transaction under an advisory lock, and prints the schema "
		   "version. Refuses a database whose schema is newer than this binary. Without "
		   "--pg-url / LH_PG_URL it uses the running dev stack's database.",
	.tables = {lh_config_common_table, db_table, NULL},
};

static int db_migrate(int argc, char **argv)
{
	db_cfg_t cfg = {0};
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	char **rest = NULL;
	int nrest = 0, applied = 0, version = 0, rc;

	if ((rc = lhctl_load(&migrate_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest > 0) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "db migrate takes no arguments (got \"%s\")", rest[0]);
		goto out_free_cfg;
	}
	if (lhctl_resolve(&cfg.common, false, true, NULL, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_cfg;
	}
	if (lh_pg_connect(cfg.common.pg_url, &pg, &err) || lh_pg_migrate(pg, &applied, &err) ||
	    lh_pg_schema_version(pg, &version, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_pg;
	}
	if (applied > 0)
		printf("applied %d migration%s; schema version %d\n", applied, applied == 1 ? "" : "s",
		       version);
	else
		printf("schema is up to date (version %d)\n", version);
	rc = LHCTL_EXIT_OK;
out_free_pg:
	lh_pg_free(pg);
out_free_cfg:
	free(rest);
	lh_config_finish(&migrate_spec, &cfg);
	return rc;
}

int lhctl_cmd_db(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: lhctl db migrate [--pg-url URL]\n\n"
			"  migrate   apply missing migrations and print the schema version\n");
		return argc < 2 ? LHCTL_EXIT_USAGE : LHCTL_EXIT_OK;
	}
	if (strcmp(argv[1], "migrate") == 0)
		return db_migrate(argc - 1, argv + 1);
	return lhctl_fail(LHCTL_EXIT_USAGE, "unknown db command \"%s\" (try: lhctl db migrate)",
			  argv[1]);
}

int lhctl_cmd_version(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: lhctl version\n\nPrints lhctl's version and the database schema "
		       "version it carries.\n");
		return LHCTL_EXIT_OK;
	}
	if (argc > 1)
		return lhctl_fail(LHCTL_EXIT_USAGE, "version takes no arguments (got \"%s\")", argv[1]);
	printf("lhctl %s (database schema %d)\n", LH_VERSION, lh_pg_schema_version_binary());
	return LHCTL_EXIT_OK;
}
