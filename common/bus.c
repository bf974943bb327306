#include "bus.h"

#include <stdio.h>
#include <string.h>

lh_err_t lh_topic(const char *prefix, const char *suffix, char out[LH_TOPIC_MAX], lh_error_t *err)
{
	int n = snprintf(out, LH_TOPIC_MAX, "%s%s", prefix ? prefix : "", suffix);
	if (n <= 0 || n >= 250) /* Kafka's limit is 249 */
		return lh_error_set(err, LH_ERR_INVALID, "topic name \"%s%s\" is too long", prefix,
				    suffix);
	for (const char *p = out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return lh_error_set(err, LH_ERR_INVALID,
					    "topic name \"%s\" may hold only letters, digits, '.', '_' "
					    "and '-'",
					    out);
	return LH_OK;
}

lh_err_t lh_topic_tasks(const char *prefix, const char *tier, char out[LH_TOPIC_MAX],
			lh_error_t *err)
{
	char suffix[LH_TOPIC_MAX];
	if (!tier || !*tier || strlen(tier) > 64)
		return lh_error_set(err, LH_ERR_INVALID, "tier name must be 1 to 64 characters");
	snprintf(suffix, sizeof(suffix), "tasks.%s", tier);
	return lh_topic(prefix, suffix, out, err);
}

lh_err_t lh_bus_emit(lh_kafka_t *producer, const char *topic, const lh_event_t *ev, bool task_key,
		     lh_buf_t *scratch, void *msg_opaque, lh_error_t *err)
{
	char key[LH_UUID_STR_LEN + 24], v[8];
	const char *type = lh_event_type_name(ev->type);
	lh_kafka_header_t hdr[2];
	lh_err_t rc;

	lh_buf_reset(scratch);
	if ((rc = lh_event_encode(ev, scratch, err)))
		return rc;
	lh_uuid_fmt(&ev->plan_id, key);
	if (task_key)
		snprintf(key + LH_UUID_STR_LEN, sizeof(key) - LH_UUID_STR_LEN, ":%lld",
			 (long long)ev->task_no);
	snprintf(v, sizeof(v), "%d", ev->v);
	hdr[0] = (lh_kafka_header_t){"lh-type", type, strlen(type)};
	hdr[1] = (lh_kafka_header_t){"lh-v", v, strlen(v)};
	return lh_kafka_produce(producer, topic, -1, key, strlen(key), scratch->data, scratch->len,
				hdr, 2, msg_opaque, err);
}

lh_err_t lh_bus_dead_letter(lh_kafka_t *producer, const char *dlq_topic,
			    const lh_kafka_msg_t *msg, const char *consumer, const char *reason,
			    lh_error_t *err)
{
	char part[16], off[24];
	lh_kafka_header_t hdr[5];
	snprintf(part, sizeof(part), "%d", msg->partition);
	snprintf(off, sizeof(off), "%lld", (long long)msg->offset);
	hdr[0] = (lh_kafka_header_t){"lh-dlq-topic", msg->topic, strlen(msg->topic)};
	hdr[1] = (lh_kafka_header_t){"lh-dlq-partition", part, strlen(part)};
	hdr[2] = (lh_kafka_header_t){"lh-dlq-offset", off, strlen(off)};
	hdr[3] = (lh_kafka_header_t){"lh-dlq-reason", reason, strlen(reason)};
	hdr[4] = (lh_kafka_header_t){"lh-dlq-consumer", consumer, strlen(consumer)};
	return lh_kafka_produce(producer, dlq_topic, -1, msg->key, msg->key_len, msg->payload,
				msg->len, hdr, 5, NULL, err);
}

lh_err_t lh_bus_ensure_topics(lh_kafka_t *k, const char *prefix, const char **tiers, int ntiers,
			      int events_partitions, int tier_partitions, lh_error_t *err)
{
	char names[LH_MAX_TIERS + 3][LH_TOPIC_MAX];
	const char *topics[LH_MAX_TIERS + 4], *configs[LH_MAX_TIERS + 4] = {0};
	int parts[LH_MAX_TIERS + 4], n = 0;
	lh_err_t rc;
	if (ntiers > LH_MAX_TIERS)
		return lh_error_set(err, LH_ERR_INVALID, "at most %d tiers", LH_MAX_TIERS);
	if ((rc = lh_topic(prefix, "events", names[n], err)))
		return rc;
	parts[n++] = events_partitions;
	if ((rc = lh_topic(prefix, "dlq", names[n], err)))
		return rc;
	parts[n++] = 1;
	if ((rc = lh_topic(prefix, "snapshots", names[n], err)))
		return rc;
	/* the latest snapshot of each plan is what counts: compact often, so recovery reads little */
	configs[n] = "cleanup.policy=compact;segment.ms=600000;min.cleanable.dirty.ratio=0.1";
	parts[n++] = events_partitions;
	for (int i = 0; i < ntiers; i++) {
		if ((rc = lh_topic_tasks(prefix, tiers[i], names[n], err)))
			return rc;
		parts[n++] = tier_partitions;
	}
	for (int i = 0; i < n; i++)
		topics[i] = names[i];
	topics[n] = NULL;
	return lh_kafka_ensure_topics(k, topics, parts, configs, 10000, err);
}
