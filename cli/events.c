/* events.c — lhctl events tail: decode lh.events to JSON lines (lh_event_to_json).
 *
 * A group-less consumer (lh_kafka_assign) over every partition of the events topic: it joins no
 * consumer group and commits nothing, so it never disturbs the daemons. Without --follow it reads
 * up to the end offsets it saw when it started and exits; with --follow it keeps printing new
 * events until interrupted. Order holds within a partition (that is, within a plan), not across
 * plans. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "common.h"
#include "event.h"
#include "ids.h"
#include "kafka.h"

#define MAX_PARTS 1024
#define CONNECT_TIMEOUT_MS 5000
#define STALL_TIMEOUT_US (30 * 1000000LL) /* no progress towards the end offsets: give up */

typedef struct tail_cfg {
	lh_common_cfg_t common;
	char *plan;
	bool from_beginning;
	bool follow;
} tail_cfg_t;

#define T(f) offsetof(tail_cfg_t, f)
static const lh_cfg_def_t tail_table[] = {
	{"cli.plan", LH_CFG_STR, "", 0, 0, NULL, NULL, "plan", false, false,
	 "only events of this plan id", T(plan)},
	{"cli.from_beginning", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "from-beginning", false, false,
	 "with --follow, print the stored history first (without --follow it is always printed)",
	 T(from_beginning)},
	{"cli.follow", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "follow", false, false,
	 "keep printing new events until interrupted (Ctrl-C)", T(follow)},
	LH_CFG_END,
};

static const lh_cfg_spec_t tail_spec = {
	.prog = "lhctl events tail",
	.usage = "[--plan ID] [--from-beginning] [--follow]",
	.summary = "Decodes the event log (lh.events) to JSON lines on stdout, one event per line, in "
		   "the envelope's JSON form (plan_id as a dashed UUID, id and causation_id as 32 hex "
		   "digits). Without --follow: every stored event, then exit. With --follow: new "
		   "events as they arrive (add --from-beginning for the history first). Messages that "
		   "do not decode are reported on stderr and skipped.",
	.tables = {lh_config_common_table, tail_table, NULL},
};

typedef struct tail {
	tail_cfg_t cfg;
	bool filter;
	char plan_key[LH_UUID_STR_LEN + 1];
	int64_t next[MAX_PARTS]; /* next offset to read */
	int64_t end[MAX_PARTS];	 /* end offset to reach without --follow */
	int nparts;
	long long printed, skipped;
	bool write_failed;
	int64_t last_progress_us;
} tail_t;

static void on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	tail_t *t = opaque;
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	json_t *j;
	char *line;

	if (msg->partition < 0 || msg->partition >= t->nparts)
		return;
	t->next[msg->partition] = msg->offset + 1;
	t->last_progress_us = lh_mono_us();
	if (t->write_failed)
		return;
	/* Events are keyed by their plan id: filter before decoding. */
	if (t->filter && (msg->key_len != LH_UUID_STR_LEN ||
			  memcmp(msg->key, t->plan_key, LH_UUID_STR_LEN) != 0))
		return;
	if (lh_event_decode(msg->payload, msg->len, &ev, &err)) {
		t->skipped++;
		fprintf(stderr, "lhctl: skipped %s[%d]@%lld: %s\n", msg->topic, (int)msg->partition,
			(long long)msg->offset, err.msg);
		return;
	}
	j = lh_event_to_json(ev);
	line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (line) {
		if (printf("%s\n", line) < 0 || (t->cfg.follow && fflush(stdout) != 0))
			t->write_failed = true;
		t->printed++;
	}
	free(line);
	json_decref(j);
	lh_event_free(ev);
}

static bool reached_end(const tail_t *t)
{
	for (int i = 0; i < t->nparts; i++)
		if (t->next[i] < t->end[i])
			return false;
	return true;
}

static int events_tail(int argc, char **argv)
{
	tail_t *t = calloc(1, sizeof(*t));
	lh_error_t err = {0};
	lh_kafka_t *k = NULL;
	lh_kafka_part_t *parts = NULL;
	char **rest = NULL, topic[LH_TOPIC_MAX];
	int nrest = 0, rc, nparts = 0;
	bool from_dev;
	lh_kafka_opts_t ko;

	if (!t)
		abort();
	if ((rc = lhctl_load(&tail_spec, &t->cfg, argc, argv, &rest, &nrest)) >= 0) {
		free(t);
		return rc;
	}
	if (nrest > 0) {
		rc = lhctl_fail(LHCTL_EXIT_USAGE, "events tail takes no arguments (got \"%s\")",
				rest[0]);
		goto out_free_cfg;
	}
	if (*t->cfg.plan) {
		lh_id_t id;
		if (lh_uuid_parse(t->cfg.plan, &id)) {
			char *shown = lhctl_one_line(t->cfg.plan, 64);
			rc = lhctl_fail(LHCTL_EXIT_USAGE, "--plan: \"%s\" is not a plan id (a UUID)",
					shown);
			free(shown);
			goto out_free_cfg;
		}
		lh_uuid_fmt(&id, t->plan_key);
		t->filter = true;
	}
	if (lh_topic(t->cfg.common.topic_prefix, "events", topic, &err) ||
	    lhctl_resolve(&t->cfg.common, true, false, &from_dev, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_cfg;
	}
	ko = (lh_kafka_opts_t){.brokers = t->cfg.common.brokers, .client_id = "lhctl-events-tail",
			       .group_id = "lhctl-events-tail", /* required by librdkafka; unused */
			       .on_message = on_message, .opaque = t};
	if ((rc = lh_kafka_new(&ko, &k, &err))) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_cfg;
	}
	if (lh_kafka_wait_ready(k, CONNECT_TIMEOUT_MS, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not reach kafka at %s within %d s%s",
				t->cfg.common.brokers, CONNECT_TIMEOUT_MS / 1000,
				from_dev ? " (is the dev stack healthy? lhctl dev status)" : "");
		goto out_free_kafka;
	}
	rc = lh_kafka_partition_count(k, topic, CONNECT_TIMEOUT_MS, &nparts, &err);
	if (rc == LH_ERR_NOT_FOUND) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "topic %s does not exist on %s (no stack has run there "
						 "yet)",
				topic, t->cfg.common.brokers);
		goto out_free_kafka;
	}
	if (rc || nparts <= 0 || nparts > MAX_PARTS) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not read the partitions of %s: %s", topic,
				rc ? err.msg : "unexpected partition count");
		goto out_free_kafka;
	}
	t->nparts = nparts;
	parts = calloc((size_t)nparts, sizeof(*parts));
	if (!parts)
		abort();
	for (int i = 0; i < nparts; i++) {
		int64_t lo = 0, hi = 0;
		if (lh_kafka_watermarks(k, topic, i, CONNECT_TIMEOUT_MS, &lo, &hi, &err)) {
			rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
			goto out_free_kafka;
		}
		parts[i].topic = topic;
		parts[i].partition = i;
		if (t->cfg.follow && !t->cfg.from_beginning) {
			parts[i].offset = hi;
			t->next[i] = t->end[i] = hi;
		} else {
			parts[i].offset = lo;
			t->next[i] = lo;
			t->end[i] = hi;
		}
	}
	if (lh_kafka_assign(k, parts, nparts, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
		goto out_free_kafka;
	}
	lhctl_catch_signals();
	t->last_progress_us = lh_mono_us();
	while (!lhctl_interrupted && !t->write_failed) {
		if (!t->cfg.follow && reached_end(t))
			break;
		lh_kafka_poll(k, 100);
		if (!t->cfg.follow && !reached_end(t) &&
		    lh_mono_us() - t->last_progress_us > STALL_TIMEOUT_US) {
			fflush(stdout);
			rc = lhctl_fail(LHCTL_EXIT_FAIL,
					"no progress reading %s for %lld s (printed %lld events); is "
					"kafka at %s still up?",
					topic, STALL_TIMEOUT_US / 1000000, t->printed,
					t->cfg.common.brokers);
			goto out_free_kafka;
		}
	}
	if (fflush(stdout) != 0)
		t->write_failed = true;
	/* A closed pipe (| head) is a normal way to stop reading. */
	rc = t->skipped > 0 && !t->cfg.follow ? LHCTL_EXIT_FAIL : LHCTL_EXIT_OK;
	if (t->skipped > 0)
		fprintf(stderr, "lhctl: %lld message%s could not be decoded\n", t->skipped,
			t->skipped == 1 ? "" : "s");
out_free_kafka:
	free(parts);
	lh_kafka_free(k);
out_free_cfg:
	free(rest);
	lh_config_finish(&tail_spec, &t->cfg);
	free(t);
	return rc;
}

int lhctl_cmd_events(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: lhctl events tail [--plan ID] [--from-beginning] [--follow]\n\n"
			"  tail   decode lh.events to JSON lines\n\n`lhctl events tail --help` lists "
			"the options.\n");
		return argc < 2 ? LHCTL_EXIT_USAGE : LHCTL_EXIT_OK;
	}
	if (strcmp(argv[1], "tail") == 0)
		return events_tail(argc - 1, argv + 1);
	return lhctl_fail(LHCTL_EXIT_USAGE, "unknown events command \"%s\" (try: lhctl events tail)",
			  argv[1]);
}
