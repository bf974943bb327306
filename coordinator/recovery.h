/* recovery.h — snapshot rounds to lh.snapshots, and loading them when a partition is assigned.
 *
 * A round for partition P writes the snapshot of every plan of P that changed since its last
 * snapshot (key: plan id, value: JSON; a finished plan gets a tombstone, so compaction forgets
 * it), then a marker (key "marker:P") listing every active plan of P with the offset of lh.events
 * from which its state must be re-read: one past its snapshot's position, or its goal's offset
 * when it has no snapshot yet. Snapshots go to partition P of lh.snapshots explicitly, so a
 * partition's snapshots and events share a number.
 *
 * Recovery of P reads lh.snapshots[P] to its end, restores the plans the latest marker lists
 * (each from its latest snapshot), and returns the lowest offset to re-read lh.events[P] from.
 * Re-reading a little more than needed is harmless: apply skips what a plan already reflects.
 * Without a marker, P is read from the beginning. */
#ifndef LH_COORD_RECOVERY_H
#define LH_COORD_RECOVERY_H

#include "kafka.h"
#include "state.h"

typedef struct lh_recovery_stats {
	int plans_restored;
	int plans_retired; /* finished plans known by their done records */
	int snapshots_read;
	int64_t seek_offset; /* LH_KAFKA_OFFSET_BEGINNING when no marker was found */
	int64_t elapsed_us;
} lh_recovery_stats_t;

/* Load the snapshots of n partitions into st, with one group-less reader for all of them.
 * Bounded by timeout_ms; on any trouble returns an error (nothing is restored) and the caller
 * reads the partitions from the beginning. ret_stats has n entries. */
lh_err_t lh_recovery_load(lh_state_t *st, const char *brokers, const char *snapshots_topic,
			  const int32_t *partitions, int n, int timeout_ms,
			  lh_recovery_stats_t *ret_stats, lh_error_t *err);

/* Write a round for partition P: snapshots of changed plans, tombstones of finished ones (which
 * are then dropped from st), and the marker. next_offset is the partition's next offset to fold.
 * Plans whose snapshot would exceed max_bytes are left without one (their events are re-read).
 * Returns the number of snapshots written, or -1 on a produce error (err filled). */
int lh_recovery_round(lh_state_t *st, lh_kafka_t *producer, const char *snapshots_topic,
		      int32_t partition, int64_t next_offset, size_t max_bytes, lh_error_t *err);

#endif
