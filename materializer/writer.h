/* writer.h — writes a batch to PostgreSQL: rows and offsets in one transaction.
 *
 * lh_mwriter_write stores the entries [b->done, b->n) of a batch with
 *     BEGIN; SELECT lh_mat_stage_open(); COPY lh_mat_stage FROM STDIN (FORMAT binary);
 *     SELECT lh_mat_fold(consumer, offsets, true, check); COMMIT
 * (named queries materialize_stage_open, materialize_copy, materialize_fold; sql/0012). The COPY
 * carries the events as staging rows with their rounds (lh_mbatch_copy); lh_mat_fold inserts each
 * event once by id, projects only the new ones and moves the consumer's offsets forward only, so
 * writing the same entries again — after a lost COMMIT acknowledgement, a crash, or by a second
 * materializer — changes nothing.
 *
 * Errors:
 *  - PostgreSQL unreachable, restarting, deadlock, serialization failure, or any error that is not
 *    about the data: the call fails (err->retriable set when libpq says so) and b->done stays where
 *    the last committed transaction left it. The caller keeps the batch and calls again later.
 *  - A data error (SQLSTATE class 22 data exception, 23 integrity constraint, 54 program limit, P0
 *    raised by a projection): some event in the range cannot be stored. The writer bisects the
 *    range, committing the good halves in order (each commit covers a prefix, so offsets stay
 *    exact), until it holds the single rejected event; that one goes to ops.reject (the dead-letter
 *    topic), is marked skipped, and its offset is stored with the rest. A poison event never blocks
 *    its partition, and is never silently dropped.
 *
 * Before a transaction stores the offset of a dead-lettered entry, ops.sync_dead_letters must make
 * the dead letters durable (write ahead: the message is in the dlq before its offset is passed).
 *
 * Blocking: every call runs on the caller's thread (the daemon's loop) until PostgreSQL answers. */
#ifndef LH_MAT_WRITER_H
#define LH_MAT_WRITER_H

#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"
#include "pg.h"

typedef struct lh_mwriter_ops {
	/* Put e (rejected by PostgreSQL because of reason) on the dead-letter topic; LH_OK only once
	 * it is durable. */
	lh_err_t (*reject)(void *opaque, const lh_mentry_t *e, const char *reason, lh_error_t *err);
	/* Make every dead letter sent so far durable; LH_OK only then. */
	lh_err_t (*sync_dead_letters)(void *opaque, lh_error_t *err);
	void *opaque;
	/* lh_mat_fold numbers the rounds again and raises (an error that is not about the data) if
	 * lh_mbatch_rounds numbered them otherwise: a check for tests (materializer.check_rounds). */
	bool check_rounds;
} lh_mwriter_ops_t;

typedef struct lh_mwriter {
	lh_pg_t *pg;	      /* borrowed */
	const char *consumer; /* borrowed: the name offsets are stored under */
	const char *topic;    /* borrowed: the events topic */
	lh_mwriter_ops_t ops;
	lh_buf_t events, offsets; /* scratch, reused */
	uint64_t written;	  /* events new to PostgreSQL */
	uint64_t duplicates;	  /* events PostgreSQL already had (dropped by id) */
	uint64_t txns;		  /* committed transactions */
	uint64_t rejected;	  /* events PostgreSQL rejected, sent to the dlq */
} lh_mwriter_t;

/* pg, consumer and topic are borrowed for the writer's life. */
void lh_mwriter_init(lh_mwriter_t *w, lh_pg_t *pg, const char *consumer, const char *topic,
		     const lh_mwriter_ops_t *ops);
void lh_mwriter_finish(lh_mwriter_t *w);

/* Store entries [b->done, b->n); on success b->done == b->n. On error b->done tells how far it got
 * and err says why (see above). */
lh_err_t lh_mwriter_write(lh_mwriter_t *w, lh_mbatch_t *b, lh_error_t *err);

/* True for an error that is about the data in the batch (SQLSTATE classes 22, 23, 54, P0), as
 * opposed to the server, the connection or the schema. */
bool lh_mwriter_is_data_error(const lh_error_t *err);

#endif
