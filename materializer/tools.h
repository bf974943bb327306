/* tools.h — the one-shot modes of lh-materializer: `checksum`, `--rebuild` and `gc-blobs`
 * (README.md).
 *
 * Both run on the calling thread, block, and return the process exit status. */
#ifndef LH_MAT_TOOLS_H
#define LH_MAT_TOOLS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct lh_mtool_opts {
	const char *pg_url;	    /* borrowed */
	const char *schema;	    /* borrowed: checksum: the schema read; rebuild: the new one */
	const char *against_url;    /* borrowed, "" = none (checksum) */
	const char *against_schema; /* borrowed, "" = the same as schema (checksum) */
	const char *live_schema;    /* borrowed: what --swap replaces */
	const char *brokers;	    /* borrowed (rebuild) */
	const char *events_topic;   /* borrowed */
	const char *consumer;	    /* borrowed: the name offsets are stored under (rebuild) */
	int64_t batch_max_events;
	bool check_rounds; /* rebuild: materializer.check_rounds */
	bool swap;
	int64_t older_than_days; /* gc-blobs */
} lh_mtool_opts_t;

/* A schema name we accept: [a-z_][a-z0-9_]*, at most 40 bytes (room for "_old_" and a time). */
bool lh_mtool_schema_ok(const char *name);

/* Print "TABLE ROWS HASH" per projected table; with against_url, compare. 0 equal (or nothing to
 * compare), 1 differ, 2 error. */
int lh_mtool_checksum(const lh_mtool_opts_t *o);

/* Replay the events topic into a new schema; with swap, make it the live one. 0 or 1. */
int lh_mtool_rebuild(const lh_mtool_opts_t *o);

/* Delete blobs older than older_than_days that no event and no task names (in schema); prints
 * how many. 0 or 1. */
int lh_mtool_gc_blobs(const lh_mtool_opts_t *o);

#endif
