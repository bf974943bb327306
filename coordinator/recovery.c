#include "recovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "log.h"

#define MARKER_PREFIX "marker:"

typedef struct reader {
	lh_idmap_t latest; /* plan id -> json_t* (latest snapshot), or &tomb for a tombstone */
	json_t *marker;
	int32_t partition;
	int64_t last_offset;
	int snapshots;
} reader_t;

static char tomb; /* a tombstone's value in reader_t.latest */

static void on_snapshot(void *opaque, const lh_kafka_msg_t *msg)
{
	reader_t *r = opaque;
	char key[64];
	lh_id_t id;
	json_t *j = NULL, *old;
	if (msg->partition != r->partition)
		return;
	r->last_offset = msg->offset;
	if (!msg->key || msg->key_len == 0 || msg->key_len >= sizeof(key))
		return;
	memcpy(key, msg->key, msg->key_len);
	key[msg->key_len] = 0;
	if (msg->payload && msg->len)
		j = json_loadb(msg->payload, msg->len, 0, NULL);
	if (!strncmp(key, MARKER_PREFIX, strlen(MARKER_PREFIX))) {
		if (j) {
			json_decref(r->marker);
			r->marker = j;
		}
		return;
	}
	if (lh_uuid_parse(key, &id)) {
		json_decref(j);
		return;
	}
	r->snapshots++;
	old = lh_idmap_put(&r->latest, &id, j ? (void *)j : (void *)&tomb);
	if (old && old != (void *)&tomb)
		json_decref(old);
}

lh_err_t lh_recovery_load(lh_state_t *st, const char *brokers, const char *snapshots_topic,
			  int32_t partition, int timeout_ms, lh_recovery_stats_t *ret_stats,
			  lh_error_t *err)
{
	reader_t r = {.partition = partition, .last_offset = -1};
	lh_kafka_t *k = NULL;
	lh_kafka_opts_t ko = {.brokers = brokers, .client_id = "lh-coordinator-recovery",
			      .group_id = "lh-coordinator-recovery", .on_message = on_snapshot,
			      .opaque = &r};
	lh_kafka_part_t part = {snapshots_topic, partition, LH_KAFKA_OFFSET_BEGINNING};
	int64_t lo = 0, hi = 0, t0 = lh_mono_us(), seek = LH_KAFKA_OFFSET_BEGINNING;
	json_t *plans, *e;
	size_t i;
	void *v;
	lh_err_t rc = LH_OK;
	lh_recovery_stats_t stats = {0};

	lh_idmap_init(&r.latest);
	if ((rc = lh_kafka_new(&ko, &k, err)))
		goto out_free;
	/* a topic created moments ago may have no leader yet: ask again for a while */
	while ((rc = lh_kafka_watermarks(k, snapshots_topic, partition, 2000, &lo, &hi, err))) {
		if (lh_mono_us() - t0 > (int64_t)timeout_ms * 1000)
			goto out_free;
		lh_kafka_poll(k, 200);
	}
	if (hi > lo) {
		if ((rc = lh_kafka_assign(k, &part, 1, err)))
			goto out_free;
		while (r.last_offset + 1 < hi) {
			if (lh_mono_us() - t0 > (int64_t)timeout_ms * 1000) {
				rc = lh_error_set(err, LH_ERR_TIMEOUT,
						  "reading %s[%d] took over %d ms (at %lld of %lld)",
						  snapshots_topic, partition, timeout_ms,
						  (long long)r.last_offset, (long long)hi);
				goto out_free;
			}
			lh_kafka_poll(k, 100);
		}
	}
	stats.snapshots_read = r.snapshots;
	plans = r.marker ? json_object_get(r.marker, "plans") : NULL;
	if (r.marker) {
		seek = json_integer_value(json_object_get(r.marker, "next_offset"));
		json_array_foreach(plans, i, e) {
			const char *id = json_string_value(json_object_get(e, "id"));
			int64_t from = json_integer_value(json_object_get(e, "from"));
			lh_id_t pid;
			json_t *snap;
			if (!id || lh_uuid_parse(id, &pid))
				continue;
			snap = lh_idmap_get(&r.latest, &pid);
			if (snap && snap != (void *)&tomb) {
				lh_error_t rerr = {0};
				if (lh_snapshot_restore(st, snap, partition, NULL, &rerr)) {
					/* an unreadable snapshot: re-read that plan from its start */
					lh_log_warn("coordinator.snapshot_bad", rerr.msg, "plan", id);
					from = json_integer_value(json_object_get(e, "first"));
				} else
					stats.plans_restored++;
			}
			if (from < seek)
				seek = from;
		}
		if (seek < 0)
			seek = LH_KAFKA_OFFSET_BEGINNING;
	}
	stats.seek_offset = seek;
out_free:
	for (size_t it = 0; (v = lh_idmap_next(&r.latest, &it));)
		if (v != (void *)&tomb)
			json_decref(v);
	lh_idmap_finish(&r.latest);
	json_decref(r.marker);
	lh_kafka_free(k);
	stats.elapsed_us = lh_mono_us() - t0;
	if (ret_stats)
		*ret_stats = stats;
	return rc;
}

int lh_recovery_round(lh_state_t *st, lh_kafka_t *producer, const char *snapshots_topic,
		      int32_t partition, int64_t next_offset, size_t max_bytes, lh_error_t *err)
{
	json_t *marker = json_object(), *list = json_array();
	lh_id_t drop[512];
	int ndrop = 0, written = 0;
	size_t it = 0;
	lh_cplan_t *p;
	char key[64], *text;
	lh_err_t rc = LH_OK;

	while ((p = lh_idmap_next(&st->plans, &it))) {
		char id[LH_UUID_STR_LEN + 1];
		bool done = p->status == LH_PLAN_COMPLETED || p->status == LH_PLAN_FAILED ||
			    p->status == LH_PLAN_CANCELLED;
		if (p->partition != partition)
			continue;
		lh_uuid_fmt(&p->plan_id, id);
		if (done) {
			/* a tombstone, then forget it (late events of a finished plan change nothing) */
			if (p->snap_covers && (rc = lh_kafka_produce(producer, snapshots_topic, partition,
								     id, strlen(id), NULL, 0, NULL, 0,
								     NULL, err)))
				break;
			if (ndrop < 512)
				drop[ndrop++] = p->plan_id;
			continue;
		}
		if (p->snap_dirty && p->applied_offset > 0) {
			json_t *snap = lh_snapshot_plan(p);
			text = json_dumps(snap, JSON_COMPACT);
			json_decref(snap);
			if (text && strlen(text) <= max_bytes) {
				if ((rc = lh_kafka_produce(producer, snapshots_topic, partition, id,
							   strlen(id), text, strlen(text), NULL, 0,
							   NULL, err))) {
					free(text);
					break;
				}
				p->snap_covers = p->applied_offset;
				p->snap_dirty = false;
				written++;
			}
			free(text);
		}
		json_array_append_new(list, json_pack("{s:s, s:I, s:I}", "id", id, "from",
						      (json_int_t)(p->snap_covers
								   ? p->snap_covers + 1
								   : p->first_offset),
						      "first", (json_int_t)p->first_offset));
	}
	if (!rc) {
		json_object_set_new(marker, "v", json_integer(1));
		json_object_set_new(marker, "partition", json_integer(partition));
		json_object_set_new(marker, "next_offset", json_integer(next_offset));
		json_object_set_new(marker, "plans", list);
		list = NULL;
		text = json_dumps(marker, JSON_COMPACT);
		snprintf(key, sizeof(key), MARKER_PREFIX "%d", partition);
		rc = lh_kafka_produce(producer, snapshots_topic, partition, key, strlen(key), text,
				      text ? strlen(text) : 0, NULL, 0, NULL, err);
		free(text);
	}
	json_decref(list);
	json_decref(marker);
	if (rc)
		return -1;
	for (int i = 0; i < ndrop; i++) {
		p = lh_idmap_del(&st->plans, &drop[i]);
		if (p && p->dirty) {
			lh_cplan_t **pp = &st->dirty_head;
			while (*pp && *pp != p)
				pp = &(*pp)->next_dirty;
			if (*pp)
				*pp = p->next_dirty;
		}
		lh_cplan_free(p);
	}
	return written;
}
