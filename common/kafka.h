/* kafka.h — the only door to librdkafka.
 *
 * One lh_kafka_t is a producer or a consumer. Both plug into a libevent loop: librdkafka writes to
 * a pipe when its queue becomes non-empty (rd_kafka_queue_io_event_enable) and the loop drains the
 * queue, calling the callbacks on the loop's thread. Producers are idempotent (acks=all, ordered,
 * no duplicates on retry) and Java-compatible in partitioning (murmur2), so a plan's events land on
 * the same partition whoever writes them. Consumers use eager consumer-group rebalancing (range):
 * librdkafka 2.0.2's cooperative-sticky can crash when closed before the first assignment (#4381).
 *
 * Threads: all callbacks run on the thread that runs the event loop (or that calls lh_kafka_poll).
 * librdkafka's own log lines are routed into lh_log from its threads. */
#ifndef LH_KAFKA_H
#define LH_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct event_base;
typedef struct lh_kafka lh_kafka_t;

#define LH_KAFKA_OFFSET_BEGINNING (-2)
#define LH_KAFKA_OFFSET_END (-1)
#define LH_KAFKA_OFFSET_STORED (-1000) /* the group's committed offset */

typedef struct lh_kafka_msg {
	const char *topic; /* borrowed for the callback's duration */
	int32_t partition;
	int64_t offset;
	const void *key;
	size_t key_len;
	const void *payload;
	size_t len;
	int64_t ts_ms;
} lh_kafka_msg_t;

typedef struct lh_kafka_part {
	const char *topic; /* borrowed */
	int32_t partition;
	int64_t offset; /* on assignment: set it to choose where to start */
} lh_kafka_part_t;

typedef struct lh_kafka_header {
	const char *name;
	const void *value;
	size_t len;
} lh_kafka_header_t;

/* Delivery report: rc is LH_OK with the partition/offset written, or an error (the message was
 * not written; err->fatal when the producer can no longer be used). */
typedef void (*lh_kafka_delivery_cb)(void *opaque, void *msg_opaque, lh_err_t rc,
				     const lh_error_t *err, int32_t partition, int64_t offset);
/* A consumed message. */
typedef void (*lh_kafka_message_cb)(void *opaque, const lh_kafka_msg_t *msg);
/* Partitions assigned (may rewrite parts[i].offset; default LH_KAFKA_OFFSET_STORED) or revoked. */
typedef void (*lh_kafka_rebalance_cb)(void *opaque, bool assigned, lh_kafka_part_t *parts, int n);

typedef struct lh_kafka_opts {
	const char *brokers;	/* required */
	const char *client_id;	/* "lh-coordinator" */
	/* producer */
	lh_kafka_delivery_cb on_delivery;
	int message_timeout_ms; /* 0 = retry forever (the default: never drop an event) */
	int linger_ms;		/* default 1 */
	/* consumer: set group_id to make a consumer */
	const char *group_id;
	const char **topics;	/* NULL-terminated, subscribed */
	lh_kafka_message_cb on_message;
	lh_kafka_rebalance_cb on_rebalance;
	bool auto_commit;	/* commit consumed offsets periodically (default false) */
	int session_timeout_ms;	/* default 10000 */
	int max_poll_interval_ms; /* default 300000 */
	int fetch_wait_max_ms;	/* default 10: low dispatch latency */
	const char *auto_offset_reset; /* "earliest" (default) or "latest" */
	void *opaque;		/* passed to every callback */
	/* more librdkafka properties: "name=value" strings, NULL-terminated */
	const char **extra;
} lh_kafka_opts_t;

/* New producer or consumer (consumer when opts->group_id is set). Does not contact the brokers;
 * use lh_kafka_wait_ready to know they answer. */
lh_err_t lh_kafka_new(const lh_kafka_opts_t *opts, lh_kafka_t **ret_k, lh_error_t *err);
/* Close (a consumer leaves its group) and free. Accepts NULL, returns NULL. */
lh_kafka_t *lh_kafka_free(lh_kafka_t *k);

/* Hook into a libevent loop; callbacks then fire from the loop. */
lh_err_t lh_kafka_attach(lh_kafka_t *k, struct event_base *base, lh_error_t *err);
/* Serve callbacks without a loop, for up to timeout_ms (tests, tools). Returns events served. */
int lh_kafka_poll(lh_kafka_t *k, int timeout_ms);

/* Metadata round trip: LH_ERR_UNAVAILABLE when no broker answers within timeout_ms. */
lh_err_t lh_kafka_wait_ready(lh_kafka_t *k, int timeout_ms, lh_error_t *err);
/* Partition count of a topic (LH_ERR_NOT_FOUND when it does not exist). */
lh_err_t lh_kafka_partition_count(lh_kafka_t *k, const char *topic, int timeout_ms, int *ret_n,
				  lh_error_t *err);
/* Create each missing topic with the given partition count (Admin API); existing ones are left.
 * configs (may be NULL, or hold NULL entries) gives per topic "name=value" settings separated by
 * ';', e.g. "cleanup.policy=compact". */
lh_err_t lh_kafka_ensure_topics(lh_kafka_t *k, const char **topics, const int *partitions,
				const char **configs, int timeout_ms, lh_error_t *err);
lh_err_t lh_kafka_watermarks(lh_kafka_t *k, const char *topic, int32_t partition, int timeout_ms,
			     int64_t *ret_low, int64_t *ret_high, lh_error_t *err);
/* The watermarks last reported by the broker in fetch responses of a consumer: no round trip,
 * never blocks. LH_ERR_NOT_FOUND while none is known (nothing fetched from it yet). */
lh_err_t lh_kafka_watermarks_cached(lh_kafka_t *k, const char *topic, int32_t partition,
				    int64_t *ret_low, int64_t *ret_high, lh_error_t *err);

/* Produce (payload and key are copied). partition -1 = by key (murmur2). LH_ERR_UNAVAILABLE
 * (retriable) when the local queue is full: serve delivery reports and try again. */
lh_err_t lh_kafka_produce(lh_kafka_t *k, const char *topic, int32_t partition, const void *key,
			  size_t key_len, const void *payload, size_t len,
			  const lh_kafka_header_t *headers, int nheaders, void *msg_opaque,
			  lh_error_t *err);
/* Wait until every produced message is delivered or timeout_ms passes (LH_ERR_TIMEOUT). */
lh_err_t lh_kafka_flush(lh_kafka_t *k, int timeout_ms, lh_error_t *err);
/* Messages produced and not yet reported. */
int lh_kafka_outq_len(lh_kafka_t *k);

/* Consumer: commit `offset` (the next to read) of a partition; async unless sync. */
lh_err_t lh_kafka_commit(lh_kafka_t *k, const char *topic, int32_t partition, int64_t offset,
			 bool sync, lh_error_t *err);
/* Pause or resume fetching a partition (tracked: resuming one not paused is a no-op, #4636). */
lh_err_t lh_kafka_pause(lh_kafka_t *k, const char *topic, int32_t partition, bool pause,
			lh_error_t *err);
/* Consumer: read the given partitions from the given offsets, without group management (create
 * the consumer with a group_id and no topics). Replaces any previous assignment. */
lh_err_t lh_kafka_assign(lh_kafka_t *k, const lh_kafka_part_t *parts, int n, lh_error_t *err);
/* Consumer: the group's member id, for logs. New string (free). */
char *lh_kafka_member_id(lh_kafka_t *k);

/* An embedded Kafka-protocol broker (librdkafka's mock cluster): in memory, NOT durable, alive while
 * this process lives. Listens on 127.0.0.1; *ret_bootstraps is borrowed from the mock. */
typedef struct lh_kafka_mock lh_kafka_mock_t;
lh_err_t lh_kafka_mock_new(int brokers, lh_kafka_mock_t **ret_mock, const char **ret_bootstraps,
			   lh_error_t *err);
lh_err_t lh_kafka_mock_topic(lh_kafka_mock_t *m, const char *topic, int partitions,
			     lh_error_t *err);
lh_kafka_mock_t *lh_kafka_mock_free(lh_kafka_mock_t *m);

#endif
