/* batch.h — the materializer's in-memory batch: consumed messages waiting to be written to
 * PostgreSQL, in the order they were consumed.
 *
 * An entry is one consumed message of the events topic: its partition and offset, the event's JSON
 * form (lh_event_to_json plus "topic", "partition", "offset") and a copy of the message as consumed
 * (key and payload, for the dead-letter topic should PostgreSQL reject the event). An entry without
 * JSON is a message that was dead-lettered: it carries no row, only its offset, so a poison message
 * never blocks its partition.
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

typedef struct lh_mentry {
	int32_t partition;
	int64_t offset;
	char *json;	/* owned; NULL: dead-lettered, offset only */
	size_t json_len;
	void *key;	/* owned copy of the message key (may be NULL) */
	size_t key_len;
	void *payload;	/* owned copy of the message value (may be NULL) */
	size_t len;
} lh_mentry_t;

typedef struct lh_mbatch {
	lh_mentry_t *v;
	size_t n, cap;
	size_t done;	 /* entries [0, done) are stored in PostgreSQL */
	size_t nevents;	 /* entries holding an event (json != NULL) */
	size_t bytes;	 /* JSON and payload bytes held, for logs */
} lh_mbatch_t;

void lh_mbatch_init(lh_mbatch_t *b);
/* Frees every entry; the struct may be reused after lh_mbatch_init. */
void lh_mbatch_finish(lh_mbatch_t *b);
/* Drop every entry (stored or not), keep the array. */
void lh_mbatch_clear(lh_mbatch_t *b);

/* Append one message. json is stolen (NULL for a dead-lettered message); key and payload are
 * copied. Aborts on out-of-memory like the rest of the daemon. */
void lh_mbatch_add(lh_mbatch_t *b, int32_t partition, int64_t offset, char *json, const void *key,
		   size_t key_len, const void *payload, size_t len);

/* Move every entry of src [src->done, src->n) to the end of dst, in order (ownership moves; the
 * stored entries of src are freed); src is left empty. dst and src must hold disjoint offsets of
 * the same partitions in consumption order: dst's entries come first. */
void lh_mbatch_move(lh_mbatch_t *dst, lh_mbatch_t *src);

/* Mark entry i dead-lettered: frees its JSON, keeps its offset. */
void lh_mbatch_skip(lh_mbatch_t *b, size_t i);

/* The events of entries [lo, hi) as a JSON array, written to out (reset first). Returns the number
 * of events written. */
size_t lh_mbatch_events_json(const lh_mbatch_t *b, size_t lo, size_t hi, lh_buf_t *out);

/* The offsets of entries [lo, hi) as a JSON array [{"topic", "partition", "next_offset"}], one
 * object per partition with next_offset = its last offset in the range + 1, written to out (reset
 * first). topic must be a legal Kafka topic name (no escaping needed, none is done). Returns the
 * number of partitions. */
size_t lh_mbatch_offsets_json(const lh_mbatch_t *b, size_t lo, size_t hi, const char *topic,
			      lh_buf_t *out);

/* True when entries [lo, hi) hold a dead-lettered one. */
bool lh_mbatch_has_skipped(const lh_mbatch_t *b, size_t lo, size_t hi);

/* The event's JSON form (lh_event_to_json) plus topic, partition and offset of the message it was
 * read from: new string (free), NULL on out-of-memory. */
char *lh_mbatch_event_json(const lh_event_t *ev, const lh_kafka_msg_t *msg);

#endif
