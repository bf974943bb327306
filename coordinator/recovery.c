#include "recovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "log.h"

#define MARKER_PREFIX "marker:"

#define MAX_LOAD 256

/* The latest snapshot of a plan, as read (parsed only if the marker still lists the plan). */
typedef struct raw {
	size_t len;
	char data[];
} raw_t;

typedef struct reader {
	/* plan id -> raw_t* (latest snapshot), &tomb for a tombstone (written by older versions),
	 * or done_value(status) for a finished plan's "done" record */
	lh_idmap_t latest;
	json_t *marker;
	int64_t last_offset, hi;
	int snapshots;
} reader_t;

typedef struct readers {
	int32_t partitions[MAX_LOAD];
	reader_t r[MAX_LOAD];
	int n;
} readers_t;

static char tomb; /* a tombstone's value in reader_t.latest */

/* A finished plan leaves a small "done" record in place of its snapshot, for good: compaction
 * keeps it, so that a coordinator recovering years later still knows the id finished and a late
 * duplicate goal.submitted starts nothing. In reader_t.latest a done record is one of these
 * addresses, one per status. */
static char done_marks[LH_PLAN__COUNT];
#define DONE_MAX_LEN 96

static bool is_done_mark(const void *v)
{
	return (const char *)v >= done_marks && (const char *)v < done_marks + LH_PLAN__COUNT;
}

static bool is_raw(const void *v)
{
	return v && v != (void *)&tomb && !is_done_mark(v);
}

/* The status of a "done" record's payload, or -1 when it is not one. */
static int done_status(const void *payload, size_t len)
{
	json_t *j;
	lh_plan_status_t st;
	int r = -1;
	if (len > DONE_MAX_LEN || !memmem(payload, len, "\"done\"", 6))
		return -1;
	if ((j = json_loadb(payload, len, 0, NULL)) &&
	    lh_plan_status_parse(json_string_value(json_object_get(j, "done")), &st))
		r = (int)st;
	json_decref(j);
	return r;
}

static void on_snapshot(void *opaque, const lh_kafka_msg_t *msg)
{
	readers_t *rs = opaque;
	reader_t *r = NULL;
	char key[64];
	lh_id_t id;
	json_t *j = NULL;
	raw_t *raw = NULL;
	void *old;
	int done;
	for (int i = 0; i < rs->n; i++)
		if (rs->partitions[i] == msg->partition)
			r = &rs->r[i];
	if (!r)
		return;
	r->last_offset = msg->offset;
	if (!msg->key || msg->key_len == 0 || msg->key_len >= sizeof(key))
		return;
	memcpy(key, msg->key, msg->key_len);
	key[msg->key_len] = 0;
	if (!strncmp(key, MARKER_PREFIX, strlen(MARKER_PREFIX))) {
		if (msg->payload && msg->len && (j = json_loadb(msg->payload, msg->len, 0, NULL))) {
			json_decref(r->marker);
			r->marker = j;
		}
		return;
	}
	if (lh_uuid_parse(key, &id))
		return;
	r->snapshots++;
	if (msg->payload && msg->len && (done = done_status(msg->payload, msg->len)) >= 0) {
		old = lh_idmap_put(&r->latest, &id, &done_marks[done]);
		if (is_raw(old))
			free(old);
		return;
	}
	if (msg->payload && msg->len) {
		raw = malloc(sizeof(*raw) + msg->len);
		if (!raw)
			abort();
		raw->len = msg->len;
		memcpy(raw->data, msg->payload, msg->len);
	}
	old = lh_idmap_put(&r->latest, &id, raw ? (void *)raw : (void *)&tomb);
	if (is_raw(old))
		free(old);
}

static bool all_read(const readers_t *rs)
{
	for (int i = 0; i < rs->n; i++)
		if (rs->r[i].last_offset + 1 < rs->r[i].hi)
			return false;
	return true;
}

/* Restore one partition's plans from its reader; fills the stats. */
static void restore(lh_state_t *st, reader_t *r, int32_t partition, lh_recovery_stats_t *stats)
{
	json_t *plans = r->marker ? json_object_get(r->marker, "plans") : NULL, *e;
	int64_t seek = LH_KAFKA_OFFSET_BEGINNING;
	size_t i, it = 0;
	void *v;
	stats->snapshots_read = r->snapshots;
	/* finished plans first: their events below the seek offset must start nothing */
	while ((v = lh_idmap_next(&r->latest, &it)))
		if (is_done_mark(v)) {
			lh_state_retire(st, &r->latest.slots[it - 1].key, partition,
					(lh_plan_status_t)((char *)v - done_marks));
			stats->plans_retired++;
		}
	if (r->marker) {
		seek = json_integer_value(json_object_get(r->marker, "next_offset"));
		json_array_foreach(plans, i, e) {
			const char *id = json_string_value(json_object_get(e, "id"));
			int64_t from = json_integer_value(json_object_get(e, "from"));
			lh_id_t pid;
			raw_t *raw;
			if (!id || lh_uuid_parse(id, &pid))
				continue;
			raw = lh_idmap_get(&r->latest, &pid);
			if (is_raw(raw)) {
				lh_error_t rerr = {0};
				json_t *snap = json_loadb(raw->data, raw->len, 0, NULL);
				lh_cplan_t *rp = NULL;
				if (!snap)
					lh_error_set(&rerr, LH_ERR_DECODE, "snapshot is not JSON");
				if (!snap || lh_snapshot_restore(st, snap, partition, &rp, &rerr)) {
					/* an unreadable snapshot: re-read that plan from its start */
					lh_log_warn("coordinator.snapshot_bad", rerr.msg, "plan", id);
					from = json_integer_value(json_object_get(e, "first"));
				} else {
					/* events folded after the snapshot changed nothing of the
					 * plan (else it would have been written again): skip them */
					int64_t covers =
						json_integer_value(json_object_get(e, "covers"));
					if (covers > rp->applied_offset)
						rp->applied_offset = covers;
					stats->plans_restored++;
				}
				json_decref(snap);
			}
			if (from < seek)
				seek = from;
		}
		if (seek < 0)
			seek = LH_KAFKA_OFFSET_BEGINNING;
	}
	stats->seek_offset = seek;
}

lh_err_t lh_recovery_load(lh_state_t *st, const char *brokers, const char *snapshots_topic,
			  const int32_t *partitions, int n, int timeout_ms,
			  lh_recovery_stats_t *ret_stats, lh_error_t *err)
{
	readers_t *rs = calloc(1, sizeof(*rs));
	lh_kafka_t *k = NULL;
	lh_kafka_opts_t ko = {.brokers = brokers, .client_id = "lh-coordinator-recovery",
			      .group_id = "lh-coordinator-recovery", .on_message = on_snapshot,
			      .opaque = rs, .fetch_wait_max_ms = 10};
	lh_kafka_part_t parts[MAX_LOAD];
	int nparts = 0;
	int64_t t0 = lh_mono_us();
	void *v;
	lh_err_t rc = LH_OK;

	if (!rs)
		abort();
	if (n > MAX_LOAD) {
		free(rs);
		return lh_error_set(err, LH_ERR_TOO_LARGE, "at most %d partitions at once", MAX_LOAD);
	}
	rs->n = n;
	for (int i = 0; i < n; i++) {
		rs->partitions[i] = partitions[i];
		rs->r[i].last_offset = -1;
		lh_idmap_init(&rs->r[i].latest);
		memset(&ret_stats[i], 0, sizeof(ret_stats[i]));
		ret_stats[i].seek_offset = LH_KAFKA_OFFSET_BEGINNING;
	}
	if ((rc = lh_kafka_new(&ko, &k, err)))
		goto out_free;
	for (int i = 0; i < n; i++) {
		int64_t lo = 0, hi = 0;
		/* a topic created moments ago may have no leader yet: ask again for a while */
		while ((rc = lh_kafka_watermarks(k, snapshots_topic, partitions[i], 2000, &lo, &hi,
						 err))) {
			if (lh_mono_us() - t0 > (int64_t)timeout_ms * 1000)
				goto out_free;
			lh_kafka_poll(k, 200);
		}
		rs->r[i].hi = hi;
		rs->r[i].last_offset = lo - 1; /* nothing to read below the low watermark */
		if (hi > lo)
			parts[nparts++] = (lh_kafka_part_t){snapshots_topic, partitions[i],
							    LH_KAFKA_OFFSET_BEGINNING};
	}
	if (nparts > 0 && (rc = lh_kafka_assign(k, parts, nparts, err)))
		goto out_free;
	while (!all_read(rs)) {
		if (lh_mono_us() - t0 > (int64_t)timeout_ms * 1000) {
			rc = lh_error_set(err, LH_ERR_TIMEOUT, "reading %s took over %d ms",
					  snapshots_topic, timeout_ms);
			goto out_free;
		}
		lh_kafka_poll(k, 20);
	}
	for (int i = 0; i < n; i++) {
		restore(st, &rs->r[i], partitions[i], &ret_stats[i]);
		ret_stats[i].elapsed_us = lh_mono_us() - t0;
	}
out_free:
	for (int i = 0; i < n; i++) {
		for (size_t it = 0; (v = lh_idmap_next(&rs->r[i].latest, &it));)
			if (is_raw(v))
				free(v);
		lh_idmap_finish(&rs->r[i].latest);
		json_decref(rs->r[i].marker);
	}
	free(rs);
	lh_kafka_free(k);
	return rc;
}

int lh_recovery_round(lh_state_t *st, lh_kafka_t *producer, const char *snapshots_topic,
		      int32_t partition, int64_t next_offset, size_t max_bytes, lh_error_t *err)
{
	json_t *marker = json_object(), *list = json_array();
	lh_id_t *drop = NULL;
	size_t ndrop = 0, capdrop = 0;
	int written = 0;
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
			/* a "done" record replaces its snapshot; then the plan is retired to its id
			 * and outcome (late events of a finished plan change nothing) */
			char rec[DONE_MAX_LEN];
			snprintf(rec, sizeof(rec), "{\"v\":1,\"done\":\"%s\"}",
				 lh_plan_status_name(p->status));
			if ((rc = lh_kafka_produce(producer, snapshots_topic, partition, id,
						   strlen(id), rec, strlen(rec), NULL, 0, NULL,
						   err)))
				break;
			if (ndrop == capdrop) {
				capdrop = capdrop ? capdrop * 2 : 64;
				if (!(drop = realloc(drop, capdrop * sizeof(*drop))))
					abort();
			}
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
		/* Where recovery must re-read this plan's events from. A clean snapshot reflects every
		 * event of the plan before next_offset (they were all folded, the last at
		 * applied_offset), so nothing of it needs re-reading below next_offset. */
		json_array_append_new(list, json_pack("{s:s, s:I, s:I, s:I}", "id", id, "from",
						      (json_int_t)(!p->snap_dirty && p->snap_covers
								   ? next_offset
							   : p->snap_covers ? p->snap_covers + 1
									    : p->first_offset),
						      "first", (json_int_t)p->first_offset, "covers",
						      (json_int_t)p->applied_offset));
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
	if (rc) {
		free(drop);
		return -1;
	}
	for (size_t i = 0; i < ndrop; i++) {
		p = lh_idmap_del(&st->plans, &drop[i]);
		if (p && p->dirty) {
			lh_cplan_t **pp = &st->dirty_head;
			while (*pp && *pp != p)
				pp = &(*pp)->next_dirty;
			if (*pp)
				*pp = p->next_dirty;
		}
		if (p) {
			lh_state_retire(st, &p->plan_id, partition, p->status);
			lh_cplan_free(p);
		}
	}
	if (ndrop) {
		char ps[24], ns[24];
		lh_log_info("coordinator.plans_retired",
			    "finished plans left a done record and were dropped from memory",
			    "partition", lh_log_i64(ps, partition), "count",
			    lh_log_i64(ns, (long long)ndrop));
	}
	free(drop);
	return written;
}
