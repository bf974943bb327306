/* relay.h — the outbox relay of memories and rolling summaries (sql/0010_memory_log.sql,
 * sql/0011_summary_log.sql): a thread of lh-materializer with its own PostgreSQL connection and
 * producer. For each outbox in turn it takes the oldest queued entries, publishes each row's
 * current state on lh.events — memory.written keyed by the tenant's memory stream
 * (lh_memory_stream_id), summary.written keyed by the summary's plan — waits until the broker has
 * acknowledged them all, and only then removes the entries it published (an entry a newer change
 * re-queued has a new seq and stays). A crash between the two publishes again: the event id is
 * derived from (row, version), so the copy is dropped where events are stored. The projections
 * (lh_project_memory, lh_project_summary) make the events rows again in a rebuild. */
#ifndef LH_MATERIALIZER_RELAY_H
#define LH_MATERIALIZER_RELAY_H

#include <stdint.h>

#include "err.h"

typedef struct lh_relay_cfg {
	const char *pg_url;
	const char *brokers;
	const char *events_topic;
	int interval_ms; /* how often an empty queue is looked at again */
	int batch;	 /* changes taken at once */
} lh_relay_cfg_t;

typedef struct lh_relay lh_relay_t;

/* Start the relay thread (cfg's strings are copied). Errors only for resources (thread,
 * producer); PostgreSQL and the broker being down are waited out inside, with a log line. */
lh_err_t lh_relay_start(const lh_relay_cfg_t *cfg, lh_relay_t **ret, lh_error_t *err);
/* Stop it (a round under way finishes its flush, bounded), join and free. Accepts NULL. */
void lh_relay_stop(lh_relay_t *r);
/* Rows (memory changes and summary versions) published and acknowledged so far. */
uint64_t lh_relay_published(const lh_relay_t *r);

#endif
