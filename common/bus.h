/* bus.h — Longhaul's topics and how an event is put on them.
 *
 * Topic names: PREFIX "events", PREFIX "tasks." TIER, PREFIX "snapshots", PREFIX "dlq" (prefix
 * default "lh."). Every event is keyed by its plan id (dashed UUID text) so one partition holds a
 * plan's total order; work orders are keyed "PLAN_ID:TASK_NO". Headers lh-type and lh-v repeat the
 * envelope's type and version for consumers that route without decoding. */
#ifndef LH_BUS_H
#define LH_BUS_H

#include "buf.h"
#include "event.h"
#include "kafka.h"

#define LH_TOPIC_MAX 256
#define LH_MAX_TIERS 16

/* Write PREFIX SUFFIX into out[LH_TOPIC_MAX]; LH_ERR_INVALID when too long or not a legal Kafka
 * topic name (ASCII letters, digits, '.', '_', '-'). */
lh_err_t lh_topic(const char *prefix, const char *suffix, char out[LH_TOPIC_MAX], lh_error_t *err);
lh_err_t lh_topic_tasks(const char *prefix, const char *tier, char out[LH_TOPIC_MAX],
			lh_error_t *err);

/* Encode ev and produce it to topic (key: the plan id, or "plan:task" when task_key). scratch is a
 * reusable buffer. msg_opaque comes back in the delivery report. */
lh_err_t lh_bus_emit(lh_kafka_t *producer, const char *topic, const lh_event_t *ev, bool task_key,
		     lh_buf_t *scratch, void *msg_opaque, lh_error_t *err);

/* Send a message that could not be decoded or processed to the dead-letter topic, unchanged, with
 * headers lh-dlq-topic, lh-dlq-partition, lh-dlq-offset, lh-dlq-reason, lh-dlq-consumer. */
lh_err_t lh_bus_dead_letter(lh_kafka_t *producer, const char *dlq_topic,
			    const lh_kafka_msg_t *msg, const char *consumer, const char *reason,
			    lh_error_t *err);

/* Ensure the standard topics exist (events with events_partitions, tasks per tier with
 * tier_partitions, dlq, snapshots). Uses the Admin API; on the embedded broker the dev stack
 * creates them first, so this only checks. */
lh_err_t lh_bus_ensure_topics(lh_kafka_t *k, const char *prefix, const char **tiers, int ntiers,
			      int events_partitions, int tier_partitions, lh_error_t *err);

#endif
