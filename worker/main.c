/* lh-worker --tier NAME — consumes one tier's work orders, calls the model, publishes attempts.
 *
 * One libevent loop runs everything: the Kafka consumer (lh.tasks.<tier>) and producer
 * (lh.events), and the LLM provider (libcurl multi on the same loop, or the in-process scripted
 * model). On a work order: publish attempt.started; once the broker acknowledges it, commit the
 * order's offset (the coordinator, not Kafka, owns retries from then on: its leases re-dispatch a
 * lost attempt) and call the model; publish attempt.succeeded or attempt.failed. Many attempts are
 * in flight at once; at the cap the partitions are paused and polling goes on. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "http_client.h"
#include "idmap.h"
#include "jsonschema.h"
#include "kafka.h"
#include "llm.h"
#include "log.h"
#include "prompt.h"

#define MAX_PARTS 256
#define DEDUP_RING 8192

typedef struct worker_cfg {
	lh_common_cfg_t common;
	char *tier;
	char *group;
	int64_t max_inflight;
	int64_t max_output_bytes;
	char *provider;
	char *base_url;
	char *model;
	char *api_key_env;
	int64_t llm_timeout_ms;
	int64_t llm_max_retries;
	double price_input;
	double price_output;
	double price_cached;
	int64_t stats_interval_s;
	int64_t heartbeat_interval_s;
	int64_t output_retries;
} worker_cfg_t;

#define W(f) offsetof(worker_cfg_t, f)
static const lh_cfg_def_t worker_table[] = {
	{"worker.tier", LH_CFG_STR, "", 0, 0, NULL, "LH_WORKER_TIER", "tier", false, false,
	 "the tier whose work orders this worker takes (required)", W(tier)},
	{"worker.group", LH_CFG_STR, "", 0, 0, NULL, "LH_WORKER_GROUP", "group", false, false,
	 "consumer group (default lh-worker.TIER)", W(group)},
	{"worker.max_inflight", LH_CFG_INT, "256", 1, 100000, NULL, "LH_MAX_INFLIGHT", "max-inflight",
	 false, false, "attempts in flight at once; at the cap the partitions pause",
	 W(max_inflight)},
	{"worker.max_output_bytes", LH_CFG_INT, "262144", 1024, 900000, NULL, NULL, "max-output-bytes",
	 false, false, "largest task output carried in an event; larger outputs fail the attempt",
	 W(max_output_bytes)},
	{"llm.provider", LH_CFG_ENUM, "auto", 0, 0, "auto|scripted|openai|anthropic",
	 "LH_LLM_PROVIDER", "provider", false, false,
	 "auto: openai when OPENAI_API_KEY or a base URL is set, else anthropic when "
	 "ANTHROPIC_API_KEY is set, else the scripted model",
	 W(provider)},
	{"llm.base_url", LH_CFG_STR, "", 0, 0, NULL, "LH_LLM_BASE_URL", "llm-base-url", false, false,
	 "base URL of the provider's API (default https://api.openai.com/v1 or "
	 "https://api.anthropic.com/v1); any OpenAI-compatible server (vLLM, llama.cpp, Ollama)",
	 W(base_url)},
	{"llm.model", LH_CFG_STR, "", 0, 0, NULL, "LH_LLM_MODEL", "model", false, false,
	 "model name sent to the provider (default gpt-4o-mini, or claude-3-5-haiku-latest)",
	 W(model)},
	{"llm.api_key_env", LH_CFG_STR, "", 0, 0, NULL, "LH_LLM_API_KEY_ENV", NULL, false, false,
	 "environment variable holding the API key (default OPENAI_API_KEY or ANTHROPIC_API_KEY; "
	 "the key itself is never configured here, logged or put in an event)",
	 W(api_key_env)},
	{"worker.output_retries", LH_CFG_INT, "2", 0, 10, NULL, "LH_OUTPUT_RETRIES", NULL, false,
	 false,
	 "times an answer that does not match the task's output schema (or is not the JSON a plan "
	 "or join needs) is sent back to the model with the error, within one attempt",
	 W(output_retries)},
	{"llm.timeout_ms", LH_CFG_INT, "120000", 1000, 3600000, NULL, "LH_LLM_TIMEOUT_MS", NULL, false,
	 false, "one HTTP exchange with the model", W(llm_timeout_ms)},
	{"llm.max_retries", LH_CFG_INT, "2", 0, 10, NULL, "LH_LLM_MAX_RETRIES", NULL, false, false,
	 "retries of a retryable provider error within one attempt", W(llm_max_retries)},
	{"llm.price_input", LH_CFG_DOUBLE, "0.15", 0, 1000, NULL, "LH_PRICE_INPUT", NULL, false, false,
	 "USD per million input tokens", W(price_input)},
	{"llm.price_output", LH_CFG_DOUBLE, "0.60", 0, 1000, NULL, "LH_PRICE_OUTPUT", NULL, false,
	 false, "USD per million output tokens", W(price_output)},
	{"llm.price_cached", LH_CFG_DOUBLE, "0.075", 0, 1000, NULL, "LH_PRICE_CACHED", NULL, false,
	 false, "USD per million cached input tokens", W(price_cached)},
	{"worker.stats_interval_s", LH_CFG_INT, "30", 0, 86400, NULL, "LH_STATS_INTERVAL",
	 "stats-interval", true, false, "seconds between stats log lines (0: never)",
	 W(stats_interval_s)},
	{"worker.heartbeat_interval_s", LH_CFG_INT, "20", 1, 3600, NULL, "LH_HEARTBEAT_INTERVAL_S",
	 "heartbeat-interval", false, false,
	 "seconds between attempt.heartbeat events of each running attempt (keep it under a third "
	 "of the coordinator's heartbeat lease)",
	 W(heartbeat_interval_s)},
	LH_CFG_END,
};

static const lh_cfg_spec_t worker_spec = {
	.prog = "lh-worker",
	.usage = "--tier NAME [options]",
	.summary = "Takes work orders from lh.tasks.<tier>, calls the model (OpenAI-compatible HTTP, "
		   "or the in-process scripted model when no key is configured), and publishes "
		   "attempt.started / attempt.succeeded / attempt.failed to lh.events.",
	.tables = {lh_config_common_table, worker_table, NULL},
};

#define MAX_TURNS 16

typedef struct attempt {
	struct attempt *prev, *next;
	lh_event_t *order; /* decoded work order; owns its arena */
	lh_arena_t *arena; /* prompt and messages */
	lh_llm_message_t msgs[MAX_TURNS];
	size_t nmsgs;
	lh_jsonschema_t *schema; /* the task's output schema, compiled; NULL = none */
	lh_llm_response_schema_t rschema;
	int corrections; /* answers sent back to the model so far */
	lh_llm_usage_t usage; /* summed over the attempt's calls */
	int calls;
	char model[128];
	int32_t partition;
	int64_t offset;
	int64_t start_mono_us;
	bool started_acked;
	bool calling;
	int64_t beats;
} attempt_t;

/* Offsets of one order partition waiting for their attempt.started ack, in order. */
typedef struct ptrack {
	bool assigned;
	int64_t *offs;
	bool *acked;
	size_t head, n, cap;
} ptrack_t;

static struct worker {
	worker_cfg_t cfg;
	struct event_base *base;
	lh_kafka_t *consumer, *producer;
	lh_http_t *http;
	lh_llm_provider_t *llm;
	const char *provider_name;
	char events_topic[LH_TOPIC_MAX], orders_topic[LH_TOPIC_MAX], dlq_topic[LH_TOPIC_MAX];
	char worker_id[160];
	char group[LH_TOPIC_MAX + 16];
	lh_buf_t scratch;
	attempt_t inflight; /* list head */
	int64_t ninflight;
	bool paused, stopping;
	ptrack_t parts[MAX_PARTS];
	lh_idmap_t seen; /* order ids recently taken: duplicates of a re-sent order are dropped */
	lh_id_t seen_ring[DEDUP_RING];
	size_t seen_pos;
	struct event *ev_sigint, *ev_sigterm, *ev_stats, *ev_heartbeat;
	uint64_t orders, succeeded, failed, duplicates, dead_letters;
} wk;

static void list_add(attempt_t *a)
{
	a->next = wk.inflight.next;
	a->prev = &wk.inflight;
	wk.inflight.next->prev = a;
	wk.inflight.next = a;
	wk.ninflight++;
}

static void list_del(attempt_t *a)
{
	a->prev->next = a->next;
	a->next->prev = a->prev;
	wk.ninflight--;
}

static void set_paused(bool pause)
{
	lh_error_t err = {0};
	if (wk.paused == pause)
		return;
	for (int i = 0; i < MAX_PARTS; i++)
		if (wk.parts[i].assigned &&
		    lh_kafka_pause(wk.consumer, wk.orders_topic, i, pause, &err))
			lh_log_warn("worker.pause", err.msg);
	wk.paused = pause;
}

static void attempt_free(attempt_t *a)
{
	list_del(a);
	lh_event_free(a->order);
	lh_jsonschema_free(a->schema);
	lh_arena_free(a->arena);
	free(a);
	if (wk.paused && !wk.stopping && wk.ninflight < wk.cfg.max_inflight * 3 / 4 + 1)
		set_paused(false);
}

static void ev_init(lh_event_t *ev, const attempt_t *a, lh_event_type_t type, void *body)
{
	memset(ev, 0, sizeof(*ev));
	ev->v = LH_ENVELOPE_VERSION;
	ev->type = type;
	ev->plan_id = a->order->plan_id;
	ev->task_no = a->order->task_no;
	ev->attempt = a->order->attempt;
	ev->ts_us = lh_now_us();
	ev->tenant = a->order->tenant;
	ev->actor.kind = "worker";
	ev->actor.id = wk.worker_id;
	ev->causation_id = a->order->id;
	ev->body = body;
	ev->id = lh_event_id_derivef(&a->order->plan_id, lh_event_type_name(type), 0,
				     "t%lld:a%lld", (long long)a->order->task_no,
				     (long long)a->order->attempt);
}

static void publish(lh_event_t *ev, void *opaque)
{
	lh_error_t err = {0};
	/* The producer queue holds a million messages; a full queue means the broker has been
	 * away for long. Serve delivery reports until there is room rather than drop a fact. */
	while (lh_bus_emit(wk.producer, wk.events_topic, ev, false, &wk.scratch, opaque, &err)) {
		if (!err.retriable) {
			lh_log_error("worker.produce_failed", err.msg, "type",
				     lh_event_type_name(ev->type));
			return;
		}
		lh_kafka_poll(wk.producer, 100);
	}
}

static void finish(attempt_t *a, const char *error_class, const char *msg, json_t *output)
{
	lh_event_t ev;
	lh_usage_t u = {0};
	int64_t latency_ms = (lh_mono_us() - a->start_mono_us) / 1000;
	const char *model = a->model[0] ? a->model : wk.cfg.model;
	if (a->calls) {
		u.input_tokens = a->usage.input_tokens;
		u.output_tokens = a->usage.output_tokens;
		u.cached_tokens = a->usage.cached_tokens;
		u.reasoning_tokens = a->usage.reasoning_tokens;
		u.llm_calls = a->calls;
		u.cost_usd = ((double)(u.input_tokens - u.cached_tokens) * wk.cfg.price_input +
			      (double)u.cached_tokens * wk.cfg.price_cached +
			      (double)u.output_tokens * wk.cfg.price_output) /
			     1e6;
		if (strcmp(wk.provider_name, "scripted") == 0)
			u.cost_usd = 0; /* the scripted model costs nothing */
	}
	if (!error_class) {
		lh_attempt_succeeded_t s = {.worker_id = wk.worker_id, .model = model, .output = output,
					    .usage = u, .has_usage = true, .latency_ms = latency_ms};
		ev_init(&ev, a, LH_EV_ATTEMPT_SUCCEEDED, &s);
		publish(&ev, NULL);
		wk.succeeded++;
	} else {
		lh_attempt_failed_t f = {.worker_id = wk.worker_id, .model = model,
					 .error_class = error_class, .message = msg,
					 .retryable = strcmp(error_class, "retryable") == 0 ||
						      strcmp(error_class, "provider_down") == 0 ||
						      strcmp(error_class, "timeout") == 0,
					 .usage = u, .has_usage = a->calls > 0,
					 .latency_ms = latency_ms};
		ev_init(&ev, a, LH_EV_ATTEMPT_FAILED, &f);
		publish(&ev, NULL);
		wk.failed++;
	}
	attempt_free(a);
}

static const char *error_class_of(lh_llm_errclass_t k)
{
	switch (k) {
	case LH_LLM_ERR_RATE_LIMITED:
	case LH_LLM_ERR_RETRYABLE:
	case LH_LLM_ERR_MALFORMED:
		return "retryable";
	case LH_LLM_ERR_PROVIDER_DOWN:
		return "provider_down";
	case LH_LLM_ERR_TIMEOUT:
		return "timeout";
	case LH_LLM_ERR_TOO_LARGE:
		return "too_large";
	case LH_LLM_ERR_AUTH:
	case LH_LLM_ERR_INVALID_REQUEST:
		return "refused";
	default:
		return "internal";
	}
}

static void request(attempt_t *a);

static void request_later(evutil_socket_t fd, short what, void *arg) { request(arg); }

/* Send the answer back with what is wrong with it, or give up on the attempt. The next call
 * starts on the next loop turn, outside the provider's callback. */
static void correct_or_fail(attempt_t *a, const char *answer, const char *why)
{
	if (a->corrections >= wk.cfg.output_retries || a->nmsgs + 2 > MAX_TURNS) {
		finish(a, "invalid_output", why, NULL);
		return;
	}
	a->corrections++;
	a->msgs[a->nmsgs++] = (lh_llm_message_t){.role = LH_LLM_ROLE_ASSISTANT,
						 .content = lh_arena_strdup(a->arena, answer)};
	a->msgs[a->nmsgs++] = (lh_llm_message_t){
		.role = LH_LLM_ROLE_USER,
		.content = lh_arena_printf(a->arena,
					   "Your answer was not accepted: %s\nAnswer again, with only "
					   "the corrected answer.",
					   why)};
	a->calling = true; /* in flight for heartbeats and shutdown from now on */
	if (event_base_once(wk.base, -1, EV_TIMEOUT, request_later, a, NULL) != 0)
		finish(a, "internal", "could not schedule the corrected call", NULL);
}

static void on_llm_done(lh_llm_resp_t *resp, const lh_llm_error_t *lerr, void *opaque)
{
	attempt_t *a = opaque;
	const lh_task_order_t *o = a->order->body;
	lh_error_t err = {0};
	json_t *out = NULL;
	char *dump;
	size_t size;
	bool structured = a->schema != NULL;

	a->calling = false;
	if (lerr) {
		finish(a, lerr->klass == LH_LLM_ERR_CANCELLED ? "retryable" : error_class_of(lerr->klass),
		       lerr->error.msg, NULL);
		return;
	}
	a->calls++;
	a->usage.input_tokens += resp->usage.input_tokens;
	a->usage.output_tokens += resp->usage.output_tokens;
	a->usage.cached_tokens += resp->usage.cached_tokens;
	a->usage.reasoning_tokens += resp->usage.reasoning_tokens;
	if (resp->model)
		snprintf(a->model, sizeof(a->model), "%s", resp->model);
	if (resp->finish == LH_LLM_FINISH_REFUSAL || resp->finish == LH_LLM_FINISH_CONTENT_FILTER) {
		finish(a, "refused", resp->refusal ? resp->refusal : "the model refused", NULL);
		return;
	}
	/* a task with an output schema wants JSON, whatever its kind */
	if (lh_prompt_output(structured ? "json" : o->kind, resp->content, &out, &err)) {
		if (structured || !strcmp(o->kind, "plan") || !strcmp(o->kind, "join") ||
		    !strcmp(o->kind, "replan"))
			correct_or_fail(a, resp->content ? resp->content : "", err.msg);
		else
			finish(a, "invalid_output", err.msg, NULL);
		return;
	}
	if (structured && lh_jsonschema_validate(a->schema, out, &err)) {
		json_decref(out);
		correct_or_fail(a, resp->content ? resp->content : "", err.msg);
		return;
	}
	dump = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
	size = dump ? strlen(dump) : 0;
	free(dump);
	if (size > (size_t)wk.cfg.max_output_bytes) {
		char m[160];
		snprintf(m, sizeof(m), "output of %zu bytes exceeds the %lld-byte limit", size,
			 (long long)wk.cfg.max_output_bytes);
		json_decref(out);
		finish(a, "too_large", m, NULL);
		return;
	}
	finish(a, NULL, NULL, out);
	json_decref(out);
}

static void request(attempt_t *a)
{
	const lh_task_order_t *o = a->order->body;
	lh_llm_req_t req = {0};
	lh_error_t err = {0};
	req.model = wk.cfg.model;
	req.messages = a->msgs;
	req.n_messages = a->nmsgs;
	req.timeout_ms = wk.cfg.llm_timeout_ms;
	req.task_kind = o->kind;
	req.goal = o->goal;
	if (a->schema)
		req.response_schema = &a->rschema;
	a->calling = true;
	if (lh_llm_call(wk.llm, &req, on_llm_done, a, &err)) {
		a->calling = false;
		finish(a, "internal", err.msg, NULL);
	}
}

static void call_model(attempt_t *a)
{
	const lh_task_order_t *o = a->order->body;
	lh_error_t err = {0};
	lh_prompt_build(o, wk.cfg.common.tiers, a->arena, a->msgs);
	a->nmsgs = 2;
	if (json_is_object(o->output_schema)) {
		if (lh_jsonschema_compile(o->output_schema, &a->schema, &err)) {
			char m[700];
			snprintf(m, sizeof(m), "the task's output schema cannot be used: %s", err.msg);
			finish(a, "refused", m, NULL);
			return;
		}
		a->rschema = (lh_llm_response_schema_t){.name = "task_output",
							.schema = o->output_schema, .strict = false};
	}
	request(a);
}

/* Commit the contiguous prefix of acknowledged orders of a partition. */
static void ack_offset(int32_t partition, int64_t offset)
{
	ptrack_t *pt = &wk.parts[partition];
	int64_t commit = -1;
	lh_error_t err = {0};
	if (!pt->assigned)
		return;
	for (size_t i = 0; i < pt->n; i++) {
		size_t k = (pt->head + i) % pt->cap;
		if (pt->offs[k] == offset)
			pt->acked[k] = true;
	}
	while (pt->n > 0 && pt->acked[pt->head]) {
		commit = pt->offs[pt->head] + 1;
		pt->head = (pt->head + 1) % pt->cap;
		pt->n--;
	}
	if (commit >= 0 && lh_kafka_commit(wk.consumer, wk.orders_topic, partition, commit, false, &err))
		lh_log_warn("worker.commit", err.msg);
}

static void track_offset(int32_t partition, int64_t offset, bool acked)
{
	ptrack_t *pt = &wk.parts[partition];
	if (pt->n == pt->cap) {
		size_t cap = pt->cap ? pt->cap * 2 : 64;
		int64_t *offs = malloc(cap * sizeof(int64_t));
		bool *ack = malloc(cap * sizeof(bool));
		if (!offs || !ack)
			abort();
		for (size_t i = 0; i < pt->n; i++) {
			offs[i] = pt->offs[(pt->head + i) % pt->cap];
			ack[i] = pt->acked[(pt->head + i) % pt->cap];
		}
		free(pt->offs);
		free(pt->acked);
		pt->offs = offs;
		pt->acked = ack;
		pt->head = 0;
		pt->cap = cap;
	}
	pt->offs[(pt->head + pt->n) % pt->cap] = offset;
	pt->acked[(pt->head + pt->n) % pt->cap] = acked;
	pt->n++;
	if (acked)
		ack_offset(partition, offset);
}

static void on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
			int32_t partition, int64_t offset)
{
	attempt_t *a = msg_opaque;
	if (rc) {
		lh_log_error("worker.delivery_failed", err ? err->msg : "delivery failed");
		if (a)
			attempt_free(a); /* not started in the log: the coordinator's lease re-dispatches */
		return;
	}
	if (!a)
		return;
	a->started_acked = true;
	ack_offset(a->partition, a->offset);
	if (wk.stopping) {
		finish(a, "retryable", "worker shutting down before the call", NULL);
		return;
	}
	call_model(a);
}

static bool seen_before(const lh_id_t *id)
{
	if (lh_idmap_get(&wk.seen, id))
		return true;
	if (lh_idmap_get(&wk.seen, &wk.seen_ring[wk.seen_pos]) && !lh_id_is_zero(&wk.seen_ring[wk.seen_pos]))
		lh_idmap_del(&wk.seen, &wk.seen_ring[wk.seen_pos]);
	wk.seen_ring[wk.seen_pos] = *id;
	lh_idmap_put(&wk.seen, id, (void *)1);
	wk.seen_pos = (wk.seen_pos + 1) % DEDUP_RING;
	return false;
}

static void on_message(void *opaque, const lh_kafka_msg_t *msg)
{
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	attempt_t *a;
	lh_attempt_started_t s = {0};
	lh_event_t started;

	if (msg->partition < 0 || msg->partition >= MAX_PARTS)
		return;
	if (lh_event_decode(msg->payload, msg->len, &ev, &err) || ev->type != LH_EV_TASK_ORDER ||
	    ev->task_no < 0 || ev->attempt < 1) {
		lh_error_t derr = {0};
		const char *why = ev ? "not a work order (type, task_no and attempt required)" : err.msg;
		wk.dead_letters++;
		lh_log_warn("worker.bad_order", why, "action", "sent to dead-letter topic");
		if (lh_bus_dead_letter(wk.producer, wk.dlq_topic, msg, wk.group, why, &derr))
			lh_log_error("worker.dlq_failed", derr.msg);
		lh_event_free(ev);
		track_offset(msg->partition, msg->offset, true);
		return;
	}
	if (seen_before(&ev->id)) {
		wk.duplicates++;
		lh_event_free(ev);
		track_offset(msg->partition, msg->offset, true);
		return;
	}
	wk.orders++;
	a = calloc(1, sizeof(*a));
	if (!a)
		abort();
	a->order = ev;
	a->arena = lh_arena_new(8192);
	a->partition = msg->partition;
	a->offset = msg->offset;
	a->start_mono_us = lh_mono_us();
	list_add(a);
	track_offset(msg->partition, msg->offset, false);
	s.worker_id = wk.worker_id;
	s.model = wk.cfg.model;
	s.dispatched_ts_us = ((const lh_task_order_t *)ev->body)->dispatched_ts_us;
	ev_init(&started, a, LH_EV_ATTEMPT_STARTED, &s);
	publish(&started, a);
	if (wk.ninflight >= wk.cfg.max_inflight)
		set_paused(true);
}

static void on_rebalance(void *opaque, bool assigned, lh_kafka_part_t *parts, int n)
{
	for (int i = 0; i < n; i++) {
		int32_t p = parts[i].partition;
		if (p < 0 || p >= MAX_PARTS)
			continue;
		free(wk.parts[p].offs);
		free(wk.parts[p].acked);
		memset(&wk.parts[p], 0, sizeof(wk.parts[p]));
		wk.parts[p].assigned = assigned;
	}
	if (assigned && wk.paused) {
		/* new partitions arrive unpaused: pause them too */
		wk.paused = false;
		set_paused(true);
	}
}

/* Every running attempt tells the coordinator it is alive (its lease is extended). */
static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	for (attempt_t *a = wk.inflight.next; a != &wk.inflight; a = a->next) {
		lh_attempt_heartbeat_t h = {.worker_id = wk.worker_id, .seq = ++a->beats};
		lh_event_t ev;
		char cause[64];
		if (!a->started_acked || !a->calling)
			continue;
		ev_init(&ev, a, LH_EV_ATTEMPT_HEARTBEAT, &h);
		snprintf(cause, sizeof(cause), "t%lld:a%lld:b%lld", (long long)a->order->task_no,
			 (long long)a->order->attempt, (long long)h.seq);
		ev.id = lh_event_id_derive(&a->order->plan_id, cause, strlen(cause),
					   "attempt.heartbeat", 0);
		publish(&ev, NULL);
	}
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	char a[24], b[24], c[24], d[24], e[24];
	lh_log_info("worker.stats", "counters", "inflight", lh_log_i64(a, (long long)wk.ninflight),
		    "orders", lh_log_i64(b, (long long)wk.orders), "succeeded",
		    lh_log_i64(c, (long long)wk.succeeded), "failed",
		    lh_log_i64(d, (long long)wk.failed), "duplicates",
		    lh_log_i64(e, (long long)wk.duplicates));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	lh_log_info("worker.stopping", "abandoning attempts in flight with attempt.failed");
	wk.stopping = true;
	set_paused(true);
	/* In-flight model calls end now with LH_LLM_ERR_CANCELLED -> attempt.failed (retryable). */
	lh_llm_cancel_all(wk.llm);
	event_base_loopbreak(wk.base);
}

static const char *env_nonempty(const char *name)
{
	const char *v = name && *name ? getenv(name) : NULL;
	return v && *v ? v : NULL;
}

static lh_err_t make_provider(lh_error_t *err)
{
	const char *prov = wk.cfg.provider, *key, *url;
	const char *openai_key = env_nonempty(*wk.cfg.api_key_env ? wk.cfg.api_key_env
								  : "OPENAI_API_KEY");
	const char *anthropic_key = env_nonempty(*wk.cfg.api_key_env ? wk.cfg.api_key_env
								     : "ANTHROPIC_API_KEY");
	lh_llm_openai_opts_t o = {.max_retries = (int)wk.cfg.llm_max_retries,
				  .timeout_ms = wk.cfg.llm_timeout_ms};
	lh_http_opts_t ho = {.max_connections = 0};
	bool anthropic;
	if (!strcmp(prov, "auto"))
		prov = openai_key || *wk.cfg.base_url ? "openai" : anthropic_key ? "anthropic"
										   : "scripted";
	if (!strcmp(prov, "scripted")) {
		wk.llm = lh_llm_scripted_new(wk.base, err);
		wk.provider_name = "scripted";
		free(wk.cfg.model);
		wk.cfg.model = strdup("scripted");
		lh_log_info("worker.model", "model: scripted (no LLM key configured; set OPENAI_API_KEY, "
					    "ANTHROPIC_API_KEY or LH_LLM_BASE_URL to use a real model)");
		return wk.llm ? LH_OK : LH_ERR_INTERNAL;
	}
	anthropic = !strcmp(prov, "anthropic");
	key = anthropic ? anthropic_key : openai_key;
	url = *wk.cfg.base_url ? wk.cfg.base_url
	      : anthropic	  ? "https://api.anthropic.com/v1"
				  : "https://api.openai.com/v1";
	if (!*wk.cfg.model) {
		free(wk.cfg.model);
		wk.cfg.model = strdup(anthropic ? "claude-3-5-haiku-latest" : "gpt-4o-mini");
	}
	if (anthropic && !key)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "the anthropic provider needs a key in %s",
				    *wk.cfg.api_key_env ? wk.cfg.api_key_env : "ANTHROPIC_API_KEY");
	wk.http = lh_http_new(wk.base, &ho, err);
	if (!wk.http)
		return LH_ERR_INTERNAL;
	wk.llm = anthropic ? lh_llm_anthropic_new(wk.http, url, key, &o, err)
			   : lh_llm_openai_new(wk.http, url, key, &o, err);
	wk.provider_name = anthropic ? "anthropic" : "openai";
	lh_log_info("worker.model", anthropic ? "model: Anthropic Messages" : "model: OpenAI-compatible",
		    "base_url", url, "model", wk.cfg.model, "key", key ? "set" : "none");
	return wk.llm ? LH_OK : LH_ERR_INTERNAL;
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	lh_kafka_opts_t ko;
	const char *topics[2];
	char host[64] = "?";
	int rc;

	lh_log_init("lh-worker", LH_LOG_INFO, NULL);
	rc = lh_config_load(&worker_spec, &wk.cfg, argc, argv, NULL, NULL, &err);
	if (rc == LH_ERR_NOT_FOUND)
		return 0;
	if (rc || lh_config_apply_logging(&wk.cfg.common, &err)) {
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 2;
	}
	if (!*wk.cfg.tier) {
		fprintf(stderr, "lh-worker: --tier NAME is required (one of %s)\n", wk.cfg.common.tiers);
		return 2;
	}
	if (lh_topic(wk.cfg.common.topic_prefix, "events", wk.events_topic, &err) ||
	    lh_topic(wk.cfg.common.topic_prefix, "dlq", wk.dlq_topic, &err) ||
	    lh_topic_tasks(wk.cfg.common.topic_prefix, wk.cfg.tier, wk.orders_topic, &err)) {
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 2;
	}
	snprintf(wk.group, sizeof(wk.group), "%s",
		 *wk.cfg.group ? wk.cfg.group : wk.orders_topic); /* default: the topic's own group */
	if (!*wk.cfg.group)
		snprintf(wk.group, sizeof(wk.group), "lh-worker.%s", wk.cfg.tier);
	gethostname(host, sizeof(host) - 1);
	snprintf(wk.worker_id, sizeof(wk.worker_id), "lh-worker@%s:%d/%s", host, (int)getpid(),
		 wk.cfg.tier);
	wk.inflight.next = wk.inflight.prev = &wk.inflight;
	lh_idmap_init(&wk.seen);
	lh_buf_init(&wk.scratch);
	wk.base = event_base_new();
	if (make_provider(&err)) {
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 1;
	}
	ko = (lh_kafka_opts_t){.brokers = wk.cfg.common.brokers, .client_id = "lh-worker",
			       .on_delivery = on_delivery};
	if (lh_kafka_new(&ko, &wk.producer, &err) || lh_kafka_wait_ready(wk.producer, 15000, &err)) {
		lh_log_error("worker.start_failed", err.msg);
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 1;
	}
	topics[0] = wk.orders_topic;
	topics[1] = NULL;
	ko = (lh_kafka_opts_t){.brokers = wk.cfg.common.brokers, .client_id = "lh-worker",
			       .group_id = wk.group, .topics = topics, .on_message = on_message,
			       .on_rebalance = on_rebalance};
	if (lh_kafka_new(&ko, &wk.consumer, &err) || lh_kafka_attach(wk.producer, wk.base, &err) ||
	    lh_kafka_attach(wk.consumer, wk.base, &err)) {
		lh_log_error("worker.start_failed", err.msg);
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 1;
	}
	wk.ev_sigint = evsignal_new(wk.base, SIGINT, on_signal, NULL);
	wk.ev_sigterm = evsignal_new(wk.base, SIGTERM, on_signal, NULL);
	event_add(wk.ev_sigint, NULL);
	event_add(wk.ev_sigterm, NULL);
	if (wk.cfg.stats_interval_s > 0) {
		struct timeval tv = {wk.cfg.stats_interval_s, 0};
		wk.ev_stats = event_new(wk.base, -1, EV_PERSIST, on_stats, NULL);
		event_add(wk.ev_stats, &tv);
	}
	{
		struct timeval tv = {wk.cfg.heartbeat_interval_s, 0};
		wk.ev_heartbeat = event_new(wk.base, -1, EV_PERSIST, on_heartbeat, NULL);
		event_add(wk.ev_heartbeat, &tv);
	}
	lh_log_info("worker.started", "consuming", "topic", wk.orders_topic, "group", wk.group, "id",
		    wk.worker_id);
	event_base_dispatch(wk.base);

	/* Attempts whose attempt.started is still unacknowledged end in on_delivery (stopping) as
	 * attempt.failed, retryable; flushing serves those reports. */
	if (lh_kafka_flush(wk.producer, 10000, &err))
		lh_log_warn("worker.flush", err.msg);
	while (wk.inflight.next != &wk.inflight && wk.inflight.next->started_acked)
		finish(wk.inflight.next, "retryable", "worker shut down", NULL);
	if (lh_kafka_flush(wk.producer, 10000, &err))
		lh_log_warn("worker.flush", err.msg);
	wk.consumer = lh_kafka_free(wk.consumer);
	wk.producer = lh_kafka_free(wk.producer);
	wk.llm = lh_llm_provider_free(wk.llm);
	wk.http = lh_http_free(wk.http);
	event_free(wk.ev_sigint);
	event_free(wk.ev_sigterm);
	event_free(wk.ev_heartbeat);
	if (wk.ev_stats)
		event_free(wk.ev_stats);
	event_base_free(wk.base);
	for (int i = 0; i < MAX_PARTS; i++) {
		free(wk.parts[i].offs);
		free(wk.parts[i].acked);
	}
	lh_idmap_finish(&wk.seen);
	lh_buf_finish(&wk.scratch);
	lh_config_finish(&worker_spec, &wk.cfg);
	lh_log_info("worker.stopped", "bye");
	return 0;
}
