/* batch.h — the materializer's in-memory batch: consumed messages waiting to be written to
 * PostgreSQL, in the order they were consumed.
 *
 * An entry is one consumed message of the events topic: its partition and offset, the event's row
 * for the staging table lh_mat_stage (sql/0012: its columns in PostgreSQL's binary COPY format, the
 * body as JSON) and a copy of the message as consumed (key and payload, for the dead-letter topic
 * should PostgreSQL reject the event). An entry without a row is a message that was dead-lettered:
 * it carries no row, only its offset, so a poison message never blocks its partition.
 *
 * Entries [0, done) are already stored; a writer moves `done` forward. The batch never reorders:
 * within a partition, entries are in offset order, so "next offset" of a partition over any prefix
 * is its last offset in that prefix plus one.
 *
 * Threads: owned by the daemon's loop thread; no locking. */
#ifndef LH_MAT_BATCH_H
#define LH_MAT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "kafka.h"

/* An event's row for lh_mat_stage: the fixed columns (id .. phase) in binary COPY form, plus what
 * numbering the rounds needs. fields == NULL: no row. */
typedef struct lh_mrow {
	char *fields; /* owned */
	size_t len;
	lh_id_t id, plan_id;
	int64_t task_no; /* LH_NO_TASK when absent */
	int phase;	 /* lh_mat_phase (sql/0012); -1 for NULL: the type projects nothing */
} lh_mrow_t;

typedef struct lh_mentry {
	int32_t partition;
	int64_t offset;
	lh_mrow_t row; /* row.fields == NULL: dead-lettered, offset only */
	void *key;     /* owned copy of the message key (may be NULL) */
	size_t key_len;
	void *payload; /* owned copy of the message value (may be NULL) */
	size_t len;
} lh_mentry_t;

typedef struct lh_mbatch {
	lh_mentry_t *v;
	size_t n, cap;
	size_t done;	 /* entries [0, done) are stored in PostgreSQL */
	size_t nevents;	 /* entries holding an event (a row) */
	size_t bytes;	 /* row and message bytes held, for logs */
} lh_mbatch_t;

void lh_mbatch_init(lh_mbatch_t *b);
/* Frees every entry; the struct may be reused after lh_mbatch_init. */
void lh_mbatch_finish(lh_mbatch_t *b);
/* Drop every entry (stored or not), keep the array. */
void lh_mbatch_clear(lh_mbatch_t *b);

/* Append one message. row is stolen (its fields; NULL or a row without fields for a
 * dead-lettered message); key and payload are copied. Aborts on out-of-memory like the rest of the
 * daemon. */
void lh_mbatch_add(lh_mbatch_t *b, int32_t partition, int64_t offset, lh_mrow_t *row,
		   const void *key, size_t key_len, const void *payload, size_t len);

/* Move every entry of src [src->done, src->n) to the end of dst, in order (ownership moves; the
 * stored entries of src are freed); src is left empty. dst and src must hold disjoint offsets of
 * the same partitions in consumption order: dst's entries come first. */
void lh_mbatch_move(lh_mbatch_t *dst, lh_mbatch_t *src);

/* Mark entry i dead-lettered: frees its row, keeps its offset. */
void lh_mbatch_skip(lh_mbatch_t *b, size_t i);

/* Where an entry goes in the staging table. */
typedef struct lh_mround {
	bool staged;	/* holds an event whose id no earlier entry of the range holds */
	int32_t rnd;	/* -1 for NULL (phase 0 or NULL) */
	int32_t step;	/* -1 for NULL */
	bool last5;	/* the last result (phase 5) of its plan's round */
} lh_mround_t;

/* Number the rounds of entries [lo, hi) into out[0 .. hi-lo) as lh_mat_rounds (sql/0012) numbers
 * the staged rows: per plan, a plan-level event (phases 1, 2, 6, 9) is a round of its own; inside
 * a round a task's events are steps 1, 2, ...; last5 marks a round's last result. An id that
 * occurs again in the range is not staged (the first one is). Returns the number staged. */
size_t lh_mbatch_rounds(const lh_mbatch_t *b, size_t lo, size_t hi, lh_mround_t *out);

/* The input of `COPY lh_mat_stage (...) FROM STDIN (FORMAT binary)` (named query
 * materialize_copy) for entries [lo, hi): the staged rows, with their rounds and their position
 * in the range, written to out (reset first). Returns the number of entries holding an event
 * (staged or repeated); *ret_staged (may be NULL) gets the number of rows. */
size_t lh_mbatch_copy(const lh_mbatch_t *b, size_t lo, size_t hi, lh_buf_t *out,
		      size_t *ret_staged);

/* The offsets of entries [lo, hi) as a JSON array [{"topic", "partition", "next_offset"}], one
 * object per partition with next_offset = its last offset in the range + 1, written to out (reset
 * first). topic must be a legal Kafka topic name (no escaping needed, none is done). Returns the
 * number of partitions. */
size_t lh_mbatch_offsets_json(const lh_mbatch_t *b, size_t lo, size_t hi, const char *topic,
			      lh_buf_t *out);

/* True when entries [lo, hi) hold a dead-lettered one. */
bool lh_mbatch_has_skipped(const lh_mbatch_t *b, size_t lo, size_t hi);

/* The row of ev, read from topic at partition/offset: *ret is new (its fields owned; free them or
 * hand the row to lh_mbatch_add). LH_ERR_SCHEMA when the event has no JSON form (a body the JSON
 * codec refuses): dead-letter it. */
lh_err_t lh_mbatch_row(const lh_event_t *ev, const char *topic, int32_t partition, int64_t offset,
		       lh_mrow_t *ret, lh_error_t *err);

#endif
