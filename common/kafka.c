#include "kafka.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define DRAIN_BATCH 1000 /* messages served per loop turn before yielding */
#define MAX_PAUSED 1024

struct lh_kafka {
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue; /* main queue (producer) or consumer queue */
	lh_kafka_opts_t opts;	 /* callbacks and opaque; strings not kept */
	bool consumer;
	int pipefd[2];
	struct event *ev_pipe;
	struct event *ev_drain; /* re-arm when a drain stopped at DRAIN_BATCH */
	struct event *ev_tick;	/* periodic poll: consumer timers, max.poll.interval */
	struct {
		char *topic;
		int32_t partition;
	} paused[MAX_PAUSED];
	int npaused;
};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	lh_log_level_t l = level <= 3 ? LH_LOG_ERROR : level <= 4 ? LH_LOG_WARN : LH_LOG_DEBUG;
	if (l == LH_LOG_DEBUG && !lh_log_debug_on(LH_DBG_KAFKA))
		return;
	lh_log(l, "kafka.log", buf, "facility", fac, "client", rd_kafka_name(rk), (char *)NULL);
}

static void error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
	/* Transport errors are retried by librdkafka; only fatal ones need the daemon's attention. */
	if (code == RD_KAFKA_RESP_ERR__FATAL) {
		char buf[512];
		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		lh_log_error("kafka.fatal", buf, "client", rd_kafka_name(rk));
	} else
		lh_log_debug(LH_DBG_KAFKA, "kafka.error", reason, "code",
			     rd_kafka_err2name((rd_kafka_resp_err_t)code));
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	lh_kafka_t *k = opaque;
	lh_error_t err = {0};
	lh_err_t rc = LH_OK;
	if (m->err) {
		rc = lh_error_set(&err, LH_ERR_KAFKA, "could not deliver to %s: %s",
				  rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
		err.fatal = m->err == RD_KAFKA_RESP_ERR__FATAL;
	}
	if (k->opts.on_delivery)
		k->opts.on_delivery(k->opts.opaque, m->_private, rc, m->err ? &err : NULL, m->partition,
				    m->offset);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	lh_kafka_t *k = opaque;
	lh_kafka_part_t *lp = calloc((size_t)parts->cnt + 1, sizeof(*lp));
	bool assigned = code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
	if (!lp)
		abort();
	for (int i = 0; i < parts->cnt; i++) {
		lp[i].topic = parts->elems[i].topic;
		lp[i].partition = parts->elems[i].partition;
		lp[i].offset = LH_KAFKA_OFFSET_STORED;
	}
	if (!assigned && k->npaused > 0) {
		/* librdkafka keeps a partition's pause through unassign and a later assign: resume
		 * what we paused before forgetting it, or it would stay paused when it comes back. */
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->npaused);
		for (int i = 0; i < k->npaused; i++) {
			rd_kafka_topic_partition_list_add(l, k->paused[i].topic, k->paused[i].partition);
			free(k->paused[i].topic);
		}
		rd_kafka_resume_partitions(rk, l);
		rd_kafka_topic_partition_list_destroy(l);
		k->npaused = 0;
	}
	if (k->opts.on_rebalance)
		k->opts.on_rebalance(k->opts.opaque, assigned, lp, parts->cnt);
	if (assigned) {
		for (int i = 0; i < parts->cnt; i++)
			parts->elems[i].offset = lp[i].offset == LH_KAFKA_OFFSET_STORED
							 ? RD_KAFKA_OFFSET_INVALID
							 : lp[i].offset;
		rd_kafka_assign(rk, parts);
	} else
		rd_kafka_assign(rk, NULL);
	free(lp);
}

static lh_err_t conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
			 lh_error_t *err)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		return lh_error_set(err, LH_ERR_CONFIG, "kafka setting %s: %s", name, errstr);
	return LH_OK;
}

static lh_err_t conf_seti(rd_kafka_conf_t *conf, const char *name, int v, lh_error_t *err)
{
	char b[32];
	snprintf(b, sizeof(b), "%d", v);
	return conf_set(conf, name, b, err);
}

lh_err_t lh_kafka_new(const lh_kafka_opts_t *opts, lh_kafka_t **ret_k, lh_error_t *err)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	lh_kafka_t *k = calloc(1, sizeof(*k));
	char errstr[512];
	lh_err_t rc;

	if (!k)
		abort();
	k->opts = *opts;
	k->consumer = opts->group_id != NULL;
	k->pipefd[0] = k->pipefd[1] = -1;
	if (!opts->brokers || !*opts->brokers) {
		rc = lh_error_set(err, LH_ERR_CONFIG, "no kafka brokers configured");
		goto out_free;
	}
	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if ((rc = conf_set(conf, "bootstrap.servers", opts->brokers, err)) ||
	    (rc = conf_set(conf, "client.id", opts->client_id ? opts->client_id : "longhaul", err)) ||
	    (rc = conf_set(conf, "log.connection.close", "false", err)) ||
	    (rc = conf_set(conf, "socket.keepalive.enable", "true", err)))
		goto out_free;
	if (!k->consumer) {
		rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
		if ((rc = conf_set(conf, "enable.idempotence", "true", err)) ||
		    (rc = conf_set(conf, "partitioner", "murmur2_random", err)) ||
		    (rc = conf_seti(conf, "message.timeout.ms", opts->message_timeout_ms, err)) ||
		    (rc = conf_seti(conf, "linger.ms", opts->linger_ms ? opts->linger_ms : 1, err)) ||
		    (rc = conf_set(conf, "queue.buffering.max.messages", "1000000", err)) ||
		    (rc = conf_set(conf, "queue.buffering.max.kbytes", "1048576", err)))
			goto out_free;
	} else {
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
		if ((rc = conf_set(conf, "group.id", opts->group_id, err)) ||
		    (rc = conf_set(conf, "enable.auto.commit", opts->auto_commit ? "true" : "false",
				   err)) ||
		    (rc = conf_set(conf, "enable.auto.offset.store", "true", err)) ||
		    (rc = conf_set(conf, "auto.offset.reset",
				   opts->auto_offset_reset ? opts->auto_offset_reset : "earliest",
				   err)) ||
		    (rc = conf_set(conf, "partition.assignment.strategy", "range", err)) ||
		    (rc = conf_seti(conf, "session.timeout.ms",
				    opts->session_timeout_ms ? opts->session_timeout_ms : 10000, err)) ||
		    (rc = conf_seti(conf, "heartbeat.interval.ms", 1000, err)) ||
		    (rc = conf_seti(conf, "max.poll.interval.ms",
				    opts->max_poll_interval_ms ? opts->max_poll_interval_ms : 300000,
				    err)) ||
		    (rc = conf_seti(conf, "fetch.wait.max.ms",
				    opts->fetch_wait_max_ms ? opts->fetch_wait_max_ms : 10, err)) ||
		    (rc = conf_set(conf, "enable.partition.eof", "false", err)) ||
		    (rc = conf_set(conf, "topic.metadata.refresh.interval.ms", "10000", err)))
			goto out_free;
	}
	for (const char **e = opts->extra; e && *e; e++) {
		char name[256];
		const char *eq = strchr(*e, '=');
		if (!eq || (size_t)(eq - *e) >= sizeof(name)) {
			rc = lh_error_set(err, LH_ERR_CONFIG, "kafka setting \"%s\": expected name=value",
					  *e);
			goto out_free;
		}
		memcpy(name, *e, (size_t)(eq - *e));
		name[eq - *e] = 0;
		if ((rc = conf_set(conf, name, eq + 1, err)))
			goto out_free;
	}
	k->rk = rd_kafka_new(k->consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, errstr,
			     sizeof(errstr));
	if (!k->rk) {
		rc = lh_error_set(err, LH_ERR_KAFKA, "could not create kafka client: %s", errstr);
		goto out_free;
	}
	conf = NULL; /* owned by rk now */
	if (k->consumer) {
		rd_kafka_resp_err_t e;
		rd_kafka_topic_partition_list_t *tl;
		int n = 0;
		rd_kafka_poll_set_consumer(k->rk);
		k->queue = rd_kafka_queue_get_consumer(k->rk);
		for (const char **t = opts->topics; t && *t; t++)
			n++;
		if (n > 0) {
			tl = rd_kafka_topic_partition_list_new(n);
			for (const char **t = opts->topics; *t; t++)
				rd_kafka_topic_partition_list_add(tl, *t, RD_KAFKA_PARTITION_UA);
			e = rd_kafka_subscribe(k->rk, tl);
			rd_kafka_topic_partition_list_destroy(tl);
			if (e) {
				rc = lh_error_set(err, LH_ERR_KAFKA, "could not subscribe: %s",
						  rd_kafka_err2str(e));
				goto out_free;
			}
		}
	} else
		k->queue = rd_kafka_queue_get_main(k->rk);
	*ret_k = k;
	return LH_OK;
out_free:
	if (conf)
		rd_kafka_conf_destroy(conf);
	lh_kafka_free(k);
	return rc;
}

lh_kafka_t *lh_kafka_free(lh_kafka_t *k)
{
	if (!k)
		return NULL;
	if (k->queue && k->pipefd[0] >= 0)
		rd_kafka_queue_io_event_enable(k->queue, -1, NULL, 0);
	if (k->ev_pipe)
		event_free(k->ev_pipe);
	if (k->ev_drain)
		event_free(k->ev_drain);
	if (k->ev_tick)
		event_free(k->ev_tick);
	if (k->rk && k->consumer)
		rd_kafka_consumer_close(k->rk);
	if (k->queue)
		rd_kafka_queue_destroy(k->queue);
	if (k->rk)
		rd_kafka_destroy(k->rk);
	if (k->pipefd[0] >= 0)
		close(k->pipefd[0]);
	if (k->pipefd[1] >= 0)
		close(k->pipefd[1]);
	for (int i = 0; i < k->npaused; i++)
		free(k->paused[i].topic);
	free(k);
	return NULL;
}

/* Serve up to max events from the queue without blocking; returns how many. */
static int drain(lh_kafka_t *k, int max, int timeout_ms)
{
	int n = 0;
	if (!k->consumer)
		return rd_kafka_poll(k->rk, timeout_ms);
	while (n < max) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, n == 0 ? timeout_ms : 0);
		if (!m)
			break;
		n++;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				lh_log_debug(LH_DBG_KAFKA, "kafka.consume_error",
					     rd_kafka_message_errstr(m));
		} else if (k->opts.on_message) {
			lh_kafka_msg_t lm = {
				.topic = rd_kafka_topic_name(m->rkt),
				.partition = m->partition,
				.offset = m->offset,
				.key = m->key,
				.key_len = m->key_len,
				.payload = m->payload,
				.len = m->len,
				.ts_ms = rd_kafka_message_timestamp(m, NULL),
			};
			k->opts.on_message(k->opts.opaque, &lm);
		}
		rd_kafka_message_destroy(m);
	}
	return n;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	lh_kafka_t *k = arg;
	char buf[256];
	if (what & EV_READ)
		while (read(k->pipefd[0], buf, sizeof(buf)) > 0)
			;
	if (!k->consumer) {
		for (int i = 0; i < 64 && rd_kafka_poll(k->rk, 0) > 0; i++)
			;
		return;
	}
	if (drain(k, DRAIN_BATCH, 0) >= DRAIN_BATCH) {
		/* More is waiting: come back on the next loop turn, as a zero timeout rather than
		 * event_active, so that timers due meanwhile run first (an active event re-activated
		 * from its own callback runs again in the same pass and starves every timer). */
		struct timeval zero = {0, 0};
		evtimer_add(k->ev_drain, &zero);
	}
}

lh_err_t lh_kafka_attach(lh_kafka_t *k, struct event_base *base, lh_error_t *err)
{
	struct timeval tick = {0, 100000};
	if (pipe2(k->pipefd, O_NONBLOCK | O_CLOEXEC) < 0)
		return lh_error_set(err, LH_ERR_IO, "could not create pipe: %s", strerror(errno));
	k->ev_pipe = event_new(base, k->pipefd[0], EV_READ | EV_PERSIST, on_ready, k);
	k->ev_drain = event_new(base, -1, 0, on_ready, k);
	k->ev_tick = event_new(base, -1, EV_PERSIST, on_ready, k);
	if (!k->ev_pipe || !k->ev_drain || !k->ev_tick)
		return lh_error_set(err, LH_ERR_NOMEM, "could not create kafka events");
	rd_kafka_queue_io_event_enable(k->queue, k->pipefd[1], "1", 1);
	event_add(k->ev_pipe, NULL);
	event_add(k->ev_tick, &tick);
	/* The queue may already hold events from before the pipe was enabled. */
	event_active(k->ev_drain, EV_TIMEOUT, 0);
	return LH_OK;
}

int lh_kafka_poll(lh_kafka_t *k, int timeout_ms) { return drain(k, DRAIN_BATCH, timeout_ms); }

lh_err_t lh_kafka_wait_ready(lh_kafka_t *k, int timeout_ms, lh_error_t *err)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 0, NULL, &md, timeout_ms);
	if (e)
		return lh_error_retry(err, LH_ERR_UNAVAILABLE,
				      "could not reach kafka brokers within %d ms: %s", timeout_ms,
				      rd_kafka_err2str(e));
	rd_kafka_metadata_destroy(md);
	return LH_OK;
}

lh_err_t lh_kafka_partition_count(lh_kafka_t *k, const char *topic, int timeout_ms, int *ret_n,
				  lh_error_t *err)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 1, NULL, &md, timeout_ms);
	lh_err_t rc = LH_ERR_NOT_FOUND;
	if (e)
		return lh_error_retry(err, LH_ERR_UNAVAILABLE, "could not read kafka metadata: %s",
				      rd_kafka_err2str(e));
	for (int i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err &&
		    md->topics[i].partition_cnt > 0) {
			*ret_n = md->topics[i].partition_cnt;
			rc = LH_OK;
		}
	rd_kafka_metadata_destroy(md);
	if (rc)
		lh_error_set(err, rc, "kafka topic \"%s\" does not exist", topic);
	return rc;
}

lh_err_t lh_kafka_ensure_topics(lh_kafka_t *k, const char **topics, const int *partitions,
				const char **configs, int timeout_ms, lh_error_t *err)
{
	rd_kafka_NewTopic_t *nt[64];
	int nnew = 0;
	char errstr[512];
	rd_kafka_queue_t *q;
	rd_kafka_event_t *rkev;
	lh_err_t rc = LH_OK;

	for (int i = 0; topics[i]; i++) {
		int n;
		lh_err_t r = lh_kafka_partition_count(k, topics[i], timeout_ms, &n, err);
		if (r == LH_OK)
			continue;
		if (r != LH_ERR_NOT_FOUND)
			return r;
		if (nnew >= 64)
			return lh_error_set(err, LH_ERR_INVALID, "too many topics to create at once");
		nt[nnew] = rd_kafka_NewTopic_new(topics[i], partitions[i], -1, errstr, sizeof(errstr));
		if (!nt[nnew]) {
			rc = lh_error_set(err, LH_ERR_KAFKA, "could not create topic \"%s\": %s",
					  topics[i], errstr);
			goto out_free_topics;
		}
		nnew++;
		if (configs && configs[i]) {
			char buf[512], *save = NULL, *kv;
			snprintf(buf, sizeof(buf), "%s", configs[i]);
			for (kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
				char *eq = strchr(kv, '=');
				if (!eq)
					continue;
				*eq = 0;
				rd_kafka_NewTopic_set_config(nt[nnew - 1], kv, eq + 1);
			}
		}
	}
	if (!nnew)
		return LH_OK;
	q = rd_kafka_queue_new(k->rk);
	rd_kafka_CreateTopics(k->rk, nt, (size_t)nnew, NULL, q);
	rkev = rd_kafka_queue_poll(q, timeout_ms + 1000);
	if (!rkev)
		rc = lh_error_retry(err, LH_ERR_TIMEOUT, "creating topics timed out");
	else if (rd_kafka_event_error(rkev))
		rc = lh_error_set(err, LH_ERR_KAFKA, "could not create topics: %s",
				  rd_kafka_event_error_string(rkev));
	else {
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(rkev);
		size_t cnt;
		const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
		for (size_t i = 0; i < cnt; i++) {
			rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
			if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
				rc = lh_error_set(err, LH_ERR_KAFKA, "could not create topic \"%s\": %s",
						  rd_kafka_topic_result_name(tr[i]),
						  rd_kafka_topic_result_error_string(tr[i]));
				break;
			}
		}
	}
	if (rkev)
		rd_kafka_event_destroy(rkev);
	rd_kafka_queue_destroy(q);
out_free_topics:
	for (int i = 0; i < nnew; i++)
		rd_kafka_NewTopic_destroy(nt[i]);
	if (rc)
		return rc;
	/* Wait until the new topics show in metadata, so producers do not race them. */
	for (int i = 0; topics[i]; i++) {
		int n, tries = 0;
		while (lh_kafka_partition_count(k, topics[i], timeout_ms, &n, NULL) != LH_OK) {
			if (++tries > 50)
				return lh_error_retry(err, LH_ERR_TIMEOUT,
						      "topic \"%s\" did not appear in metadata",
						      topics[i]);
			rd_kafka_poll(k->rk, 100); /* also serves callbacks while waiting */
		}
	}
	return LH_OK;
}

lh_err_t lh_kafka_watermarks(lh_kafka_t *k, const char *topic, int32_t partition, int timeout_ms,
			     int64_t *ret_low, int64_t *ret_high, lh_error_t *err)
{
	int64_t lo, hi;
	rd_kafka_resp_err_t e =
		rd_kafka_query_watermark_offsets(k->rk, topic, partition, &lo, &hi, timeout_ms);
	if (e)
		return lh_error_retry(err, LH_ERR_KAFKA, "could not read offsets of %s[%d]: %s", topic,
				      partition, rd_kafka_err2str(e));
	if (ret_low)
		*ret_low = lo;
	if (ret_high)
		*ret_high = hi;
	return LH_OK;
}

lh_err_t lh_kafka_watermarks_cached(lh_kafka_t *k, const char *topic, int32_t partition,
				    int64_t *ret_low, int64_t *ret_high, lh_error_t *err)
{
	int64_t lo = -1, hi = -1;
	rd_kafka_resp_err_t e = rd_kafka_get_watermark_offsets(k->rk, topic, partition, &lo, &hi);
	if (e || hi < 0)
		return lh_error_set(err, LH_ERR_NOT_FOUND, "no watermarks known for %s[%d]", topic,
				    partition);
	if (ret_low)
		*ret_low = lo;
	if (ret_high)
		*ret_high = hi;
	return LH_OK;
}

lh_err_t lh_kafka_produce(lh_kafka_t *k, const char *topic, int32_t partition, const void *key,
			  size_t key_len, const void *payload, size_t len,
			  const lh_kafka_header_t *headers, int nheaders, void *msg_opaque,
			  lh_error_t *err)
{
	rd_kafka_headers_t *hdrs = NULL;
	rd_kafka_resp_err_t e;
	if (nheaders > 0) {
		hdrs = rd_kafka_headers_new((size_t)nheaders);
		for (int i = 0; i < nheaders; i++)
			rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
					    (ssize_t)headers[i].len);
	}
	e = rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
			      RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)payload, len),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
			      RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
	if (e) {
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return lh_error_retry(err, LH_ERR_UNAVAILABLE, "kafka producer queue is full");
		return lh_error_set(err, LH_ERR_KAFKA, "could not produce to %s: %s", topic,
				    rd_kafka_err2str(e));
	}
	return LH_OK;
}

lh_err_t lh_kafka_flush(lh_kafka_t *k, int timeout_ms, lh_error_t *err)
{
	rd_kafka_resp_err_t e = rd_kafka_flush(k->rk, timeout_ms);
	if (e)
		return lh_error_retry(err, LH_ERR_TIMEOUT,
				      "%d messages not delivered within %d ms: %s",
				      rd_kafka_outq_len(k->rk), timeout_ms, rd_kafka_err2str(e));
	return LH_OK;
}

int lh_kafka_outq_len(lh_kafka_t *k) { return rd_kafka_outq_len(k->rk); }

lh_err_t lh_kafka_commit(lh_kafka_t *k, const char *topic, int32_t partition, int64_t offset,
			 bool sync, lh_error_t *err)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t e;
	rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
	e = rd_kafka_commit(k->rk, l, sync ? 0 : 1);
	rd_kafka_topic_partition_list_destroy(l);
	if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
		return lh_error_retry(err, LH_ERR_KAFKA, "could not commit %s[%d]@%lld: %s", topic,
				      partition, (long long)offset, rd_kafka_err2str(e));
	return LH_OK;
}

lh_err_t lh_kafka_pause(lh_kafka_t *k, const char *topic, int32_t partition, bool pause,
			lh_error_t *err)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t e;
	int found = -1;
	for (int i = 0; i < k->npaused; i++)
		if (k->paused[i].partition == partition && strcmp(k->paused[i].topic, topic) == 0)
			found = i;
	if (pause == (found >= 0))
		return LH_OK; /* already in that state; never resume what we did not pause */
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, partition);
	e = pause ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e)
		return lh_error_set(err, LH_ERR_KAFKA, "could not %s %s[%d]: %s",
				    pause ? "pause" : "resume", topic, partition, rd_kafka_err2str(e));
	if (pause) {
		if (k->npaused >= MAX_PAUSED)
			return lh_error_set(err, LH_ERR_TOO_LARGE, "too many paused partitions");
		k->paused[k->npaused].topic = strdup(topic);
		k->paused[k->npaused++].partition = partition;
	} else {
		free(k->paused[found].topic);
		k->paused[found] = k->paused[--k->npaused];
	}
	return LH_OK;
}

lh_err_t lh_kafka_assign(lh_kafka_t *k, const lh_kafka_part_t *parts, int n, lh_error_t *err)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
	rd_kafka_resp_err_t e;
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, parts[i].topic, parts[i].partition)->offset =
			parts[i].offset;
	e = rd_kafka_assign(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e)
		return lh_error_set(err, LH_ERR_KAFKA, "could not assign partitions: %s",
				    rd_kafka_err2str(e));
	return LH_OK;
}

char *lh_kafka_member_id(lh_kafka_t *k) { return rd_kafka_memberid(k->rk); }

struct lh_kafka_mock {
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
};

lh_err_t lh_kafka_mock_new(int brokers, lh_kafka_mock_t **ret_mock, const char **ret_bootstraps,
			   lh_error_t *err)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	lh_kafka_mock_t *m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!m->rk) {
		free(m);
		return lh_error_set(err, LH_ERR_KAFKA, "could not start the embedded broker: %s",
				    errstr);
	}
	m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
	if (!m->mc) {
		rd_kafka_destroy(m->rk);
		free(m);
		return lh_error_set(err, LH_ERR_KAFKA, "could not start the embedded broker");
	}
	*ret_mock = m;
	*ret_bootstraps = rd_kafka_mock_cluster_bootstraps(m->mc);
	return LH_OK;
}

lh_err_t lh_kafka_mock_topic(lh_kafka_mock_t *m, const char *topic, int partitions,
			     lh_error_t *err)
{
	rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->mc, topic, partitions, 1);
	if (e)
		return lh_error_set(err, LH_ERR_KAFKA, "could not create topic \"%s\": %s", topic,
				    rd_kafka_err2str(e));
	return LH_OK;
}

lh_kafka_mock_t *lh_kafka_mock_free(lh_kafka_mock_t *m)
{
	if (!m)
		return NULL;
	rd_kafka_mock_cluster_destroy(m->mc);
	rd_kafka_destroy(m->rk);
	free(m);
	return NULL;
}
