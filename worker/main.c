/* lh-worker --tier NAME — consumes one tier's work orders, calls the model, publishes attempts.
 *
 * One libevent loop runs everything: the Kafka consumer (lh.tasks.<tier>) and producer
 * (lh.events), and the LLM provider (libcurl multi on the same loop, or the in-process scripted
 * model). On a work order: publish attempt.started; once the broker acknowledges it, commit the
 * order's offset (the coordinator, not Kafka, owns retries from then on: its leases re-dispatch a
 * lost attempt) and call the model; publish attempt.succeeded or attempt.failed. Many attempts are
 * in flight at once; at the cap the partitions are paused and polling goes on. */
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "bus.h"
#include "config.h"
#include "context.h"
#include "http_client.h"
#include "httpd.h"
#include "idmap.h"
#include "jsonschema.h"
#include "kafka.h"
#include "breaker.h"
#include "llm.h"
#include "listen.h"
#include "log.h"
#include "endpoints.h"
#include "consolidate.h"
#include "extract.h"
#include "transcript.h"
#include "memtools.h"
#include "summarize.h"
#include "summary.h"
#include "summary_store.h"
#include "prompt.h"
#include "tools.h"

#define MAX_PARTS 256
#define DEDUP_RING 8192

typedef struct worker_cfg {
	lh_common_cfg_t common;
	char *tier;
	char *group;
	int64_t max_inflight;
	int64_t max_output_bytes;
	int64_t transcript_inline_bytes;
	char *metrics_listen;
	char *provider;
	char *base_url;
	char *model;
	char *api_key_env;
	char *api_key_file;
	int64_t llm_timeout_ms;
	int64_t llm_max_retries;
	double price_input;
	double price_output;
	double price_cached;
	int64_t stats_interval_s;
	int64_t heartbeat_interval_s;
	int64_t output_retries;
	int64_t max_turns;
	int64_t max_tool_calls;
	int64_t attempt_tokens;
	char *http_allow_hosts;
	bool http_allow_private;
	int64_t http_max_bytes;
	int64_t http_timeout_ms;
	bool ask_human;
	bool memory_tools;
	bool memory_global_write;
	bool memory_extract;
	char *memory_extract_tier;
	bool memory_summarize;
	char *memory_summarize_tier;
	int64_t memory_summarize_min_events;
	int64_t memory_summarize_max_events;
	int64_t memory_summarize_max_bytes;
	int64_t memory_summarize_wait_ms;
	bool memory_summarize_attempts;
	int64_t memory_summarize_attempt_batch;
	int64_t memory_consolidate_every;
	int64_t memory_consolidate_batch;
	int64_t memory_episodic_ttl_s;
	int64_t breaker_threshold;
	int64_t breaker_cooldown_ms;
	double requests_per_minute;
	double tokens_per_minute;
	int64_t linger_ms;
	int64_t commit_interval_ms;
	char *models;
	int64_t context_memories;
	int64_t reserve_output;
	int64_t context_window;
	int64_t max_concurrency;
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
	{"worker.transcript_inline_bytes", LH_CFG_INT, "262144", 0, LH_TRANSCRIPT_INLINE_MAX, NULL,
	 "LH_TRANSCRIPT_INLINE_BYTES", NULL, false, false,
	 "an attempt's conversation up to this size travels inside its attempt.succeeded / "
	 "attempt.failed; a larger one is written to the blobs table first (a PostgreSQL write on "
	 "the worker's loop) and the event names it",
	 W(transcript_inline_bytes)},
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
	{"llm.api_key_file", LH_CFG_STR, "", 0, 0, NULL, "LH_LLM_API_KEY_FILE", NULL, false, false,
	 "file holding the API key (e.g. a mounted secret; surrounding whitespace dropped); when "
	 "set it wins over llm.api_key_env. The key is never logged or put in an event",
	 W(api_key_file)},
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
	{"worker.metrics_listen", LH_CFG_STR, "", 0, 0, NULL, "LH_WORKER_METRICS_LISTEN",
	 "metrics-listen", false, false,
	 "ADDR:PORT to serve Prometheus GET /metrics on (attempts by outcome, in flight, tool "
	 "calls, rate-limit waits, the token estimate's error, per-model calls and breaker "
	 "state), from the worker's loop; [ADDR]:PORT for IPv6, port 0 for any free port "
	 "(logged); empty: off",
	 W(metrics_listen)},
	{"worker.heartbeat_interval_s", LH_CFG_INT, "20", 1, 3600, NULL, "LH_HEARTBEAT_INTERVAL_S",
	 "heartbeat-interval", false, false,
	 "seconds between attempt.heartbeat events of each running attempt (keep it under a third "
	 "of the coordinator's heartbeat lease)",
	 W(heartbeat_interval_s)},
	{"worker.max_turns", LH_CFG_INT, "12", 1, 1000, NULL, "LH_MAX_TURNS", "max-turns", false,
	 false, "model calls one attempt may make (tool rounds and corrections included)",
	 W(max_turns)},
	{"worker.max_tool_calls", LH_CFG_INT, "24", 0, 10000, NULL, "LH_MAX_TOOL_CALLS",
	 "max-tool-calls", false, false, "tool calls one attempt may make", W(max_tool_calls)},
	{"worker.attempt_tokens", LH_CFG_INT, "200000", 0, 100000000, NULL, "LH_ATTEMPT_TOKENS",
	 "attempt-tokens", false, false,
	 "input plus output tokens an attempt may use before another model call is refused "
	 "(attempt.failed, budget); 0 = no limit",
	 W(attempt_tokens)},
	{"tools.http_allow_hosts", LH_CFG_STR, "", 0, 0, NULL, "LH_HTTP_ALLOW_HOSTS",
	 "http-allow-hosts", false, false,
	 "comma-separated hosts the http_fetch tool may fetch from (exact names or addresses); "
	 "empty: http_fetch is not offered",
	 W(http_allow_hosts)},
	{"tools.http_allow_private", LH_CFG_BOOL, "false", 0, 0, NULL, "LH_HTTP_ALLOW_PRIVATE",
	 "http-allow-private", false, false,
	 "let http_fetch reach loopback, private and link-local addresses (tests only)",
	 W(http_allow_private)},
	{"tools.http_max_bytes", LH_CFG_INT, "65536", 256, 8388608, NULL, NULL, "http-max-bytes",
	 false, false, "largest body http_fetch returns to the model (longer bodies are cut)",
	 W(http_max_bytes)},
	{"tools.http_timeout_ms", LH_CFG_INT, "10000", 100, 600000, NULL, NULL, "http-timeout-ms",
	 false, false, "one http_fetch, whole exchange", W(http_timeout_ms)},
	{"tools.ask_human", LH_CFG_BOOL, "true", 0, 0, NULL, "LH_ASK_HUMAN", NULL, false, false,
	 "offer act tasks the ask_human tool (the attempt ends with input.requested)",
	 W(ask_human)},
	{"tools.memory", LH_CFG_BOOL, "true", 0, 0, NULL, "LH_MEMORY_TOOLS", NULL, false, false,
	 "offer act tasks memory_search, memory_write and memory_forget (PostgreSQL, pg.url; they run "
	 "on a thread of their own with their own connection, never on the loop)",
	 W(memory_tools)},
	{"tools.memory_global_write", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, NULL, false, false,
	 "let memory_write store global memories (seen by every tenant); otherwise plan and tenant "
	 "scopes only",
	 W(memory_global_write)},
	{"memory.extract", LH_CFG_BOOL, "false", 0, 0, NULL, "LH_MEMORY_EXTRACT", NULL, false, false,
	 "after an act attempt's success is acknowledged, send an extract order to the "
	 "memory.extract_tier workers: a model picks facts worth remembering and reconciles them "
	 "with the nearest memories (ADD/UPDATE/DELETE/NONE; needs pg.url)",
	 W(memory_extract)},
	{"memory.extract_tier", LH_CFG_STR, "", 0, 0, NULL, NULL, NULL, false, false,
	 "the tier that runs extract orders (default: the first of tiers, the cheapest)",
	 W(memory_extract_tier)},
	{"memory.summarize", LH_CFG_BOOL, "false", 0, 0, NULL, "LH_MEMORY_SUMMARIZE", NULL, false,
	 false,
	 "after an act attempt's success is acknowledged, send a summarize order to the "
	 "memory.summarize_tier workers: the plan's events since its rolling summary's anchor are "
	 "summarized by one model call and merged into a new version (needs pg.url and "
	 "tools.memory on that tier)",
	 W(memory_summarize)},
	{"memory.summarize_tier", LH_CFG_STR, "", 0, 0, NULL, NULL, NULL, false, false,
	 "the tier that runs summarize orders (default: the first of tiers, the cheapest)",
	 W(memory_summarize_tier)},
	{"memory.summarize_min_events", LH_CFG_INT, "1", 1, 100000, NULL, NULL, NULL, false, false,
	 "a summarize order with fewer new relevant events (outputs, failures, questions, answers, "
	 "decisions, plan versions) since the anchor does nothing: they wait for a later order",
	 W(memory_summarize_min_events)},
	{"memory.summarize_max_events", LH_CFG_INT, "200", 1, 100000, NULL, NULL, NULL, false, false,
	 "relevant events one summarized span may hold (the rest is left for the next order)",
	 W(memory_summarize_max_events)},
	{"memory.summarize_max_bytes", LH_CFG_INT, "32768", 1024, 900000, NULL, NULL, NULL, false,
	 false,
	 "bytes of event text one summarized span may hold (at least one event, cut to this; each "
	 "event shown to the model is cut to 8 KiB)",
	 W(memory_summarize_max_bytes)},
	{"memory.summarize_wait_ms", LH_CFG_INT, "30000", 0, 600000, NULL, NULL, NULL, false, false,
	 "how long a summarize order waits for its source event to be materialized in PostgreSQL "
	 "(polling with backoff) before it summarizes what is there",
	 W(memory_summarize_wait_ms)},
	{"memory.summarize_attempts", LH_CFG_BOOL, "false", 0, 0, NULL, "LH_MEMORY_SUMMARIZE_ATTEMPTS",
	 NULL, false, false,
	 "when an act attempt's messages no longer fit the model's window, fold the newly dropped "
	 "ones into the attempt's own rolling summary (subject TASK/ATTEMPT in summaries, one "
	 "model call on the attempt's endpoint, charged to the attempt) and put it in the context's "
	 "summary layer (needs pg.url and tools.memory)",
	 W(memory_summarize_attempts)},
	{"memory.summarize_attempt_batch", LH_CFG_INT, "4", 1, 10000, NULL, NULL, NULL, false, false,
	 "dropped messages not yet summarized that an attempt waits for before it folds them (one "
	 "summary call per batch, not per turn)",
	 W(memory_summarize_attempt_batch)},
	{"memory.consolidate_every", LH_CFG_INT, "0", 0, 1000000, NULL, NULL, NULL, false, false,
	 "after every N extract orders this worker applies, consolidate the tenant of the Nth "
	 "(near duplicates among its 1,000 oldest live memories superseded by their older twin); "
	 "0 = never",
	 W(memory_consolidate_every)},
	{"memory.consolidate_batch", LH_CFG_INT, "1000", 1, 100000, NULL, NULL, NULL, false, false,
	 "a consolidate order examines this many of the tenant's live memories for near "
	 "duplicates (superseded by their older twin), from where this worker's last one for the "
	 "tenant stopped; past the newest it starts over",
	 W(memory_consolidate_batch)},
	{"memory.episodic_ttl_s", LH_CFG_INT, "2592000", 0, 3153600000, NULL, NULL, NULL, false,
	 false,
	 "a consolidate order forgets the tenant's episodic memories older than this that no "
	 "context ever used (0: never)",
	 W(memory_episodic_ttl_s)},
	{"llm.breaker_threshold", LH_CFG_INT, "5", 0, 1000, NULL, "LH_BREAKER_THRESHOLD", NULL,
	 false, false,
	 "consecutive provider_down/timeout failures that open the circuit breaker (attempts "
	 "then fail fast as provider_down); 0 = no breaker",
	 W(breaker_threshold)},
	{"llm.breaker_cooldown_ms", LH_CFG_INT, "30000", 10, 3600000, NULL,
	 "LH_BREAKER_COOLDOWN_MS", NULL, false, false,
	 "how long an open breaker refuses calls before one trial call", W(breaker_cooldown_ms)},
	{"llm.requests_per_minute", LH_CFG_DOUBLE, "0", 0, 1000000, NULL, "LH_LLM_RPM", "llm-rpm",
	 false, false,
	 "model calls a minute (a token bucket, a second's worth of burst); calls over it wait; "
	 "0 = no limit",
	 W(requests_per_minute)},
	{"llm.tokens_per_minute", LH_CFG_DOUBLE, "0", 0, 1e12, NULL, "LH_LLM_TPM", "llm-tpm", false,
	 false,
	 "estimated input plus output tokens a minute (a token bucket holding a minute's worth); "
	 "calls over it wait; 0 = no limit. The provider's x-ratelimit-* / "
	 "anthropic-ratelimit-* headers limit calls too, whatever this says",
	 W(tokens_per_minute)},
	{"llm.models", LH_CFG_STR, "", 0, 0, NULL, "LH_LLM_MODELS", "llm-models", false, false,
	 "the tier's models in preference order, a JSON array of {model, provider?, base_url?, "
	 "api_key_env?, api_key_file?, price_input?, price_output?, price_cached?, context_window?, "
	 "max_concurrency?, requests_per_minute?, tokens_per_minute?} (missing fields from the "
	 "single-model llm.* settings); each is an endpoint with its own circuit breaker and "
	 "rate limits, and an attempt whose endpoint is down moves on to the next; empty: one "
	 "model from llm.provider, llm.base_url and llm.model",
	 W(models)},
	{"context.memories", LH_CFG_INT, "0", 0, LH_MEMTOOLS_MAX_K, NULL, "LH_CONTEXT_MEMORIES", NULL,
	 false, false,
	 "memories retrieved (hybrid search on the task's instructions, through the memory tools' "
	 "thread: one PostgreSQL round trip before an act task's first model call) into the "
	 "context's memory layer; 0 = none",
	 W(context_memories)},
	{"llm.reserve_output_tokens", LH_CFG_INT, "4096", 16, 1000000, NULL, NULL, NULL, false,
	 false,
	 "tokens of the context window kept free for the answer when a call's context is "
	 "assembled (system, core blocks, memories, then the newest messages that fit)",
	 W(reserve_output)},
	{"llm.context_window", LH_CFG_INT, "128000", 1024, 100000000, NULL, "LH_LLM_CONTEXT_WINDOW",
	 NULL, false, false, "the model's context window in tokens", W(context_window)},
	{"llm.max_concurrency", LH_CFG_INT, "0", 0, 100000, NULL, "LH_LLM_MAX_CONCURRENCY", NULL,
	 false, false, "model calls in flight to one endpoint at once (more wait); 0 = no cap",
	 W(max_concurrency)},
	{"worker.linger_ms", LH_CFG_INT, "0", 0, 1000, NULL, "LH_WORKER_LINGER_MS", NULL, false,
	 false,
	 "how long the events producer waits to fill a batch; 0 sends at once (an attempt waits "
	 "for its attempt.started acknowledgement; events that queue while requests are in "
	 "flight are still batched)",
	 W(linger_ms)},
	{"worker.commit_interval_ms", LH_CFG_INT, "100", 0, 60000, NULL, NULL, NULL, false, false,
	 "order offsets whose attempt.started is acknowledged are committed together this often "
	 "(0: each at once); a crash re-delivers at most this much, which the coordinator's "
	 "fencing and event ids absorb",
	 W(commit_interval_ms)},
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

#define NO_PROGRESS_REPEATS 3 /* identical tool calls in one attempt that end it */

typedef struct seen_call {
	char hash[LH_TOOL_HASH_LEN + 1];
	int count;
} seen_call_t;

typedef struct attempt {
	struct attempt *prev, *next;
	lh_event_t *order; /* decoded work order; owns its arena */
	lh_arena_t *arena; /* prompt, messages, tool calls and results */
	lh_llm_message_t *msgs;
	size_t nmsgs, capmsgs;
	int turns;		/* model calls started */
	int tool_calls;		/* tool calls made (the next call's index) */
	int pending_tools;	/* http_fetch calls in flight */
	const lh_llm_tool_call_t *round; /* the last assistant message's calls */
	char **results;		/* their results, same order */
	size_t nround;
	seen_call_t *seen;	/* distinct calls so far */
	size_t nseen;
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
	/* The first model call starts together with attempt.started; what the attempt does with
	 * an answer (tools, events) waits for the broker's acknowledgement of attempt.started. */
	bool has_parked;      /* the model answered before the acknowledgement */
	bool parked_is_err;
	lh_llm_resp_t parked; /* owned */
	lh_llm_error_t parked_err;
	const char *deferred_class; /* finish() before the acknowledgement: done in on_delivery */
	char *deferred_msg;	    /* in arena */
	bool abandoned; /* attempt.started could not be delivered: freed when its call ends */
	int64_t est_input; /* estimated input tokens of the call in flight */
	struct attempt *wait_next; /* in an endpoint's waiters: no call slot yet */
	size_t ep;		    /* the endpoint this attempt calls (moves on when one is down) */
	double cost_usd;	    /* summed over its calls, each at its endpoint's prices */
	const char **recalled;	    /* memories for the context's memory layer ("[memory N] ...") */
	lh_summary_t summary;	    /* the plan's anchored rolling summary (owned) when has_summary */
	bool has_summary;
	size_t nrecalled;
	int64_t beats;
	lh_extract_job_t *xj; /* an extract order's work (no attempt events); NULL otherwise */
	int xphase;	      /* 0: the extraction call, 1: the reconcile call */
	lh_summarize_job_t *sj; /* a summarize order's work (no attempt events); NULL otherwise */
	int sloads;		/* its loads so far (waits for materialization, conflicts) */
	bool squeued;		/* waits for this worker's running summarize order of its plan */
	/* the attempt's own rolling summary (memory.summarize_attempts): messages [1, 1 + anchor)
	 * folded; ctx_sum is what the context shows (the plan's summary with it folded in) */
	lh_summary_t asum, ctx_sum;
	bool has_asum, has_ctx_sum;
	bool asum_calling;  /* the call in flight folds dropped messages */
	int asum_version;   /* versions stored so far */
	size_t dropped;	    /* verbatim messages the last assembly left out */
	size_t asum_to;	    /* the span [asum.anchor, asum_to) of the call in flight */
	size_t asum_tried;  /* a failed fold: not tried again before more messages drop */
	lh_consolidate_job_t *cj; /* a consolidate order's work (no model call, no events) */
	int64_t *recalled_ids;	  /* ids of the recalled memories (use counts at the end) */
	int nrecalled_ids;
} attempt_t;

/* Offsets of one order partition waiting for their attempt.started ack, in order. */
typedef struct ptrack {
	bool assigned;
	int64_t commit; /* offset to commit on the next commit tick; -1 = nothing new */
	int64_t *offs;
	bool *acked;
	size_t head, n, cap;
} ptrack_t;

static struct worker {
	worker_cfg_t cfg;
	struct event_base *base;
	lh_kafka_t *consumer, *producer;
	lh_http_t *http;
	lh_http_t *tools_http; /* http_fetch's own client */
	lh_endpoint_t *eps; /* the tier's models in preference order */
	size_t neps;
	lh_llm_tool_t tool_defs[LH_TOOLS_N];
	json_t *tool_params[LH_TOOLS_N];
	lh_llm_tool_t mem_defs[LH_MEMTOOLS_N];
	json_t *mem_params[LH_MEMTOOLS_N];
	lh_memtools_t *memtools; /* NULL when memory tools are off */
	lh_blob_store_t *blobs;	 /* outputs above blob.threshold_bytes (common/blob.h) */
	lh_llm_tool_t offered[LH_TOOLS_N + LH_MEMTOOLS_N]; /* what act tasks are offered */
	size_t noffered;
	lh_tools_cfg_t tools_cfg;

	double est_error_sum; /* |estimated - reported| / reported input tokens, summed */
	uint64_t est_error_n;
	char events_topic[LH_TOPIC_MAX], orders_topic[LH_TOPIC_MAX], dlq_topic[LH_TOPIC_MAX];
	char worker_id[160];
	char group[LH_TOPIC_MAX + 16];
	lh_buf_t scratch;
	/* a call's assembled context: needed only until lh_llm_call returns (the provider
	 * serializes it), so one arena for all, reset at each request(), not 2,000 copies kept */
	lh_arena_t *call_arena;
	attempt_t inflight; /* list head */
	int64_t ninflight;
	bool paused, stopping;
	ptrack_t parts[MAX_PARTS];
	lh_idmap_t seen; /* order ids recently taken: duplicates of a re-sent order are dropped */
	lh_id_t seen_ring[DEDUP_RING];
	size_t seen_pos;
	struct event *ev_sigint, *ev_sigterm, *ev_stats, *ev_heartbeat, *ev_commit;
	lh_httpd_t *metrics; /* --metrics-listen, served from the loop; NULL = off */
	bool commit_scheduled;
	uint64_t orders, succeeded, failed, duplicates, dead_letters, asked, tool_calls,
		fast_fails;
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
	lh_llm_resp_finish(&a->parked);
	lh_event_free(a->order);
	lh_jsonschema_free(a->schema);
	lh_arena_free(a->arena);
	if (a->has_summary)
		lh_summary_finish(&a->summary);
	if (a->has_asum)
		lh_summary_finish(&a->asum);
	if (a->has_ctx_sum)
		lh_summary_finish(&a->ctx_sum);
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

static lh_usage_t usage_of(const attempt_t *a)
{
	lh_usage_t u = {0};
	if (a->calls) {
		u.input_tokens = a->usage.input_tokens;
		u.output_tokens = a->usage.output_tokens;
		u.cached_tokens = a->usage.cached_tokens;
		u.reasoning_tokens = a->usage.reasoning_tokens;
		u.llm_calls = a->calls;
		u.cost_usd = a->cost_usd;
	}
	return u;
}

static void extract_answered(attempt_t *a, const char *error_class, const char *msg,
			     json_t *output);
static char extract_topic[LH_TOPIC_MAX]; /* lh.tasks.<memory.extract_tier>; "" = extraction off */
static char extract_tier[LH_TOPIC_MAX];
static void summarize_answered(attempt_t *a, const char *error_class, const char *msg,
			       json_t *output);
static char summarize_topic[LH_TOPIC_MAX]; /* lh.tasks.<memory.summarize_tier>; "" = off */
static char summarize_tier[LH_TOPIC_MAX];

static void memuse_done(lh_err_t rc, const lh_error_t *err, void *job)
{
	if (rc)
		lh_log_warn("worker.memory_use", err && err->msg[0] ? err->msg : "failed", "action",
			    "use and success counts of this attempt's memories not recorded");
	lh_memuse_job_free(job);
}

/* The attempt ends (succeeded or failed): the memories recalled into its context were used, and
 * served a success or not (lh_memory_used on the memory tools' thread; docs/memory.md). */
static void count_use(attempt_t *a, bool succeeded)
{
	if (!a->nrecalled_ids || !wk.memtools)
		return;
	lh_memtools_run(wk.memtools, lh_memuse_job_run, memuse_done,
			lh_memuse_job_new(a->order->tenant, a->recalled_ids, a->nrecalled_ids,
					  succeeded));
	a->nrecalled_ids = 0; /* once per attempt */
}

/* The attempt's conversation for its result event (transcript.h): inline up to
 * worker.transcript_inline_bytes; larger, in a blob when the store takes it (ref filled), else
 * inline with its oldest messages left out beyond LH_TRANSCRIPT_INLINE_MAX (counted in
 * *ret_dropped, and logged). Returns the reference to drop after publishing. */
#define TRANSCRIPT_FINAL_MAX 16384 /* a longer final answer is named, not repeated: it is the output */

static json_t *transcript_attach(const attempt_t *a, const json_t *output, bool output_inline,
				 json_t **ret_msgs, const char **ret_ref, int64_t *ret_dropped,
				 char ref[LH_BLOB_REF_LEN + 1])
{
	/* the output as text, serialized once: the final answer, and its size in the event */
	char *dumped = output && !json_is_string(output) ? json_dumps(output, JSON_COMPACT) : NULL;
	const char *final = json_is_string(output) ? json_string_value(output) : dumped;
	size_t dropped = 0, out_size = final ? strlen(final) + 2 : 0;
	/* what an inline conversation may take: the event must stay under LH_EVENT_MAX_BYTES with
	 * an inline output and the rest of the body (64 KiB kept for those) */
	size_t cap = LH_EVENT_MAX_BYTES - 65536, used = output_inline ? out_size : 0;
	size_t room = used + LH_TRANSCRIPT_INLINE_MAX <= cap ? LH_TRANSCRIPT_INLINE_MAX
			 : used < cap			    ? cap - used
							    : 1;
	char named[96];
	if (final && strlen(final) > TRANSCRIPT_FINAL_MAX) {
		snprintf(named, sizeof(named), "[the attempt's output, %zu bytes: see the task's output]",
			 strlen(final));
		final = named;
	}
	json_t *tr = a->nmsgs ? lh_transcript_json(a->msgs, a->nmsgs, final, 0, NULL) : NULL;
	if (!tr) {
		free(dumped);
		return NULL;
	}
	size_t size = json_dumpb(tr, NULL, 0, JSON_COMPACT);
	if (size > (size_t)wk.cfg.transcript_inline_bytes && lh_blob_store_offload(wk.blobs, tr, ref)) {
		free(dumped);
		*ret_ref = ref;
		return tr;
	}
	if (size > room) {
		json_decref(tr);
		if (!(tr = lh_transcript_json(a->msgs, a->nmsgs, final, room, &dropped))) {
			free(dumped);
			return NULL;
		}
		char n[24], t[24];
		snprintf(n, sizeof(n), "%zu", dropped);
		snprintf(t, sizeof(t), "%lld", (long long)a->order->task_no);
		lh_log_warn("worker.transcript_cut", "the conversation is too large to carry inline "
			    "and no blob store took it: its oldest messages are left out of the event",
			    "task_no", t, "dropped", n);
	}
	free(dumped);
	*ret_msgs = tr;
	*ret_dropped = (int64_t)dropped;
	return tr;
}

static void finish(attempt_t *a, const char *error_class, const char *msg, json_t *output)
{
	lh_event_t ev;
	if (a->xj) {
		extract_answered(a, error_class, msg, output);
		return;
	}
	if (a->sj) {
		summarize_answered(a, error_class, msg, output);
		return;
	}
	if (!a->started_acked) {
		/* Only failures end an attempt before the ack (answers are parked until then): the
		 * failure follows attempt.started, and on_delivery still needs a. */
		a->deferred_class = error_class ? error_class : "internal";
		a->deferred_msg = lh_arena_strdup(a->arena, msg ? msg : "");
		return;
	}
	count_use(a, !error_class);
	lh_usage_t u = usage_of(a);
	int64_t latency_ms = (lh_mono_us() - a->start_mono_us) / 1000;
	const char *model = a->model[0] ? a->model : wk.eps[a->ep].model;
	if (!error_class) {
		lh_attempt_succeeded_t s = {.worker_id = wk.worker_id, .model = model, .output = output,
					    .usage = u, .has_usage = true, .latency_ms = latency_ms};
		char ref[LH_BLOB_REF_LEN + 1]; /* large output: blob first, then the event names it */
		if (lh_blob_store_offload(wk.blobs, output, ref)) {
			s.output = json_null();
			s.output_ref = ref;
		}
		char tref[LH_BLOB_REF_LEN + 1];
		json_t *tr = transcript_attach(a, output, !s.output_ref, &s.messages,
					       &s.messages_ref, &s.messages_dropped, tref);
		ev_init(&ev, a, LH_EV_ATTEMPT_SUCCEEDED, &s);
		/* its extract and summarize orders go out once attempt.succeeded is acknowledged
		 * (on_delivery) */
		{
			bool act = !strcmp(((const lh_task_order_t *)a->order->body)->kind, "act");
			lh_followup_t *follow = NULL;
			if (extract_topic[0] && act)
				follow = lh_extract_followup(follow, a->order, extract_tier,
							     extract_topic, a->msgs[0].content,
							     a->recalled, a->nrecalled, output);
			if (summarize_topic[0] && act)
				follow = lh_summarize_followup(follow, a->order, summarize_tier,
							       summarize_topic);
			publish(&ev, follow);
		}
		json_decref(tr);
		wk.succeeded++;
	} else {
		lh_attempt_failed_t f = {.worker_id = wk.worker_id, .model = model,
					 .error_class = error_class, .message = msg,
					 .retryable = strcmp(error_class, "retryable") == 0 ||
						      strcmp(error_class, "provider_down") == 0 ||
						      strcmp(error_class, "timeout") == 0,
					 .usage = u, .has_usage = a->calls > 0,
					 .latency_ms = latency_ms};
		char tref[LH_BLOB_REF_LEN + 1];
		json_t *tr = transcript_attach(a, NULL, false, &f.messages, &f.messages_ref,
					       &f.messages_dropped, tref);
		ev_init(&ev, a, LH_EV_ATTEMPT_FAILED, &f);
		publish(&ev, NULL);
		json_decref(tr);
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
static void handle_answer(attempt_t *a, lh_llm_resp_t *resp, const lh_llm_error_t *lerr);
static void attempt_fold_answered(attempt_t *a, lh_llm_resp_t *resp, const lh_llm_error_t *lerr);

static void request_later(evutil_socket_t fd, short what, void *arg) { request(arg); }

/* Room for n more messages. */
static void msgs_reserve(attempt_t *a, size_t n)
{
	lh_llm_message_t *m;
	size_t cap;
	if (a->nmsgs + n <= a->capmsgs)
		return;
	cap = a->capmsgs ? a->capmsgs * 2 : 8;
	while (cap < a->nmsgs + n)
		cap *= 2;
	m = lh_arena_alloc(a->arena, cap * sizeof(*m));
	if (a->nmsgs)
		memcpy(m, a->msgs, a->nmsgs * sizeof(*m));
	a->msgs = m;
	a->capmsgs = cap;
}

/* The next model call, on the next loop turn (outside the provider's callback). */
static void request_next(attempt_t *a)
{
	a->calling = true; /* in flight for heartbeats and shutdown from now on */
	if (event_base_once(wk.base, -1, EV_TIMEOUT, request_later, a, NULL) != 0)
		finish(a, "internal", "could not schedule the next model call", NULL);
}

/* A call slot of ep is free (or, all: its first answer is in): waiting attempts go again. */
static void release_waiters(lh_endpoint_t *ep, bool all)
{
	while (ep->waiters) {
		attempt_t *w = ep->waiters;
		ep->waiters = w->wait_next;
		request_next(w);
		if (!all)
			break;
	}
}

/* Send the answer back with what is wrong with it, or give up on the attempt. The next call
 * starts on the next loop turn, outside the provider's callback. */
static void correct_or_fail(attempt_t *a, const char *answer, const char *why)
{
	if (a->corrections >= wk.cfg.output_retries) {
		finish(a, "invalid_output", why, NULL);
		return;
	}
	a->corrections++;
	msgs_reserve(a, 2);
	a->msgs[a->nmsgs++] = (lh_llm_message_t){.role = LH_LLM_ROLE_ASSISTANT,
						 .content = lh_arena_strdup(a->arena, answer)};
	a->msgs[a->nmsgs++] = (lh_llm_message_t){
		.role = LH_LLM_ROLE_USER,
		.content = lh_arena_printf(a->arena,
					   "Your answer was not accepted: %s\nAnswer again, with only "
					   "the corrected answer.",
					   why)};
	request_next(a);
}

/* The model asked a person: the attempt ends with input.requested, not with an answer. The
 * coordinator parks the task and sends it again, the answer in its conversation. */
static void ask_human(attempt_t *a, const char *question)
{
	lh_event_t ev;
	char plan[LH_UUID_STR_LEN + 1], rid[128];
	size_t qlen = strlen(question);
	char *q = lh_arena_strndup(a->arena, question, qlen > 65536 ? 65536 : qlen);
	lh_input_requested_t r = {.request_id = rid, .question = q, .worker_id = wk.worker_id,
				  .usage = usage_of(a), .has_usage = a->calls > 0};
	lh_uuid_fmt(&a->order->plan_id, plan);
	snprintf(rid, sizeof(rid), "%s:t%lld:a%lld", plan, (long long)a->order->task_no,
		 (long long)a->order->attempt);
	ev_init(&ev, a, LH_EV_INPUT_REQUESTED, &r);
	publish(&ev, NULL);
	wk.asked++;
	lh_log_info("worker.asked", "the model asked a person; the attempt ends here", "request_id",
		    rid);
	attempt_free(a);
}

static void decref_cb(void *p) { json_decref(p); }

/* All of a round's results are in: add them to the conversation and call the model again. */
static void round_done(attempt_t *a)
{
	msgs_reserve(a, a->nround);
	for (size_t i = 0; i < a->nround; i++)
		a->msgs[a->nmsgs++] = (lh_llm_message_t){.role = LH_LLM_ROLE_TOOL,
							 .tool_call_id = a->round[i].id,
							 .content = a->results[i]};
	request_next(a);
}

typedef struct tool_slot {
	attempt_t *a;
	size_t i;
} tool_slot_t;

static void on_tool_done(char *result, void *opaque)
{
	tool_slot_t *slot = opaque;
	attempt_t *a = slot->a;
	a->results[slot->i] = lh_arena_strdup(a->arena, result);
	free(result);
	if (--a->pending_tools == 0 && !wk.stopping)
		round_done(a);
}

/* Has this call been made NO_PROGRESS_REPEATS times now? */
static bool repeated(attempt_t *a, const lh_llm_tool_call_t *c)
{
	char h[LH_TOOL_HASH_LEN + 1];
	lh_tool_call_hash(c->name, c->arguments, h);
	for (size_t i = 0; i < a->nseen; i++)
		if (strcmp(a->seen[i].hash, h) == 0)
			return ++a->seen[i].count >= NO_PROGRESS_REPEATS;
	memcpy(a->seen[a->nseen].hash, h, sizeof(h));
	a->seen[a->nseen++].count = 1;
	return false;
}

/* The model asked for tools: check the caps, run them (http_fetch concurrently), then call the
 * model again with the results. ask_human ends the attempt at once. */
static void run_tools(attempt_t *a, lh_llm_resp_t *resp)
{
	size_t n = resp->n_tool_calls;
	lh_llm_tool_call_t *calls = lh_arena_alloc(a->arena, n * sizeof(*calls));
	char plan_hex[LH_ID_HEX_LEN + 1];
	for (size_t i = 0; i < n; i++) {
		const lh_llm_tool_call_t *c = &resp->tool_calls[i];
		json_t *args = c->arguments ? json_incref(c->arguments) : json_object();
		calls[i] = (lh_llm_tool_call_t){.id = lh_arena_strdup(a->arena, c->id ? c->id : ""),
						.name = lh_arena_strdup(a->arena, c->name ? c->name : ""),
						.arguments_json = lh_arena_strdup(a->arena, c->arguments_json),
						.arguments = args};
		lh_arena_on_free(a->arena, decref_cb, args);
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(calls[i].name, "ask_human") == 0 && wk.cfg.ask_human) {
			const char *q = json_string_value(json_object_get(calls[i].arguments, "question"));
			if (q && *q) {
				ask_human(a, q);
				return;
			}
		}
	if (a->tool_calls + (int64_t)n > wk.cfg.max_tool_calls) {
		char m[160];
		snprintf(m, sizeof(m), "tool loop: %zu more tool calls would pass the cap of %lld",
			 n, (long long)wk.cfg.max_tool_calls);
		finish(a, "budget", m, NULL);
		return;
	}
	if (!a->seen)
		a->seen = lh_arena_alloc(a->arena, (size_t)(wk.cfg.max_tool_calls + 1) *
							   sizeof(*a->seen));
	for (size_t i = 0; i < n; i++)
		if (repeated(a, &calls[i])) {
			char *m = lh_arena_printf(a->arena,
						  "no progress: the model called %.64s with the same "
						  "arguments %d times",
						  calls[i].name, NO_PROGRESS_REPEATS);
			finish(a, "invalid_output", m, NULL);
			return;
		}
	msgs_reserve(a, 1);
	a->msgs[a->nmsgs++] = (lh_llm_message_t){
		.role = LH_LLM_ROLE_ASSISTANT, .content = lh_arena_strdup(a->arena, resp->content),
		.tool_calls = calls, .n_tool_calls = n};
	a->round = calls;
	a->nround = n;
	a->results = lh_arena_alloc(a->arena, n * sizeof(char *));
	a->pending_tools = 1; /* held until every call has started */
	a->calling = true;
	lh_id_hex(&a->order->plan_id, plan_hex);
	for (size_t i = 0; i < n; i++) {
		char key[96], *result = NULL;
		lh_error_t err = {0};
		tool_slot_t *slot = lh_arena_alloc(a->arena, sizeof(*slot));
		*slot = (tool_slot_t){.a = a, .i = i};
		lh_tool_idempotency_key(plan_hex, (long long)a->order->task_no,
					(long long)a->order->attempt, a->tool_calls++, key);
		wk.tool_calls++;
		if (strcmp(calls[i].name, "http_fetch") == 0 && wk.tools_http) {
			if (lh_tool_http_fetch(wk.tools_http, &wk.tools_cfg, calls[i].arguments, key,
					       on_tool_done, slot, &result, &err) == LH_OK) {
				a->pending_tools++;
				continue;
			}
		} else if (wk.memtools && lh_memtools_is(calls[i].name)) {
			char plan[LH_UUID_STR_LEN + 1], order_hex[LH_ID_HEX_LEN + 1];
			lh_memtool_ctx_t mc = {.tenant = a->order->tenant,
					       .plan_id = plan,
					       .source_event = order_hex,
					       .task_no = (int)a->order->task_no,
					       .attempt = (int)a->order->attempt};
			lh_uuid_fmt(&a->order->plan_id, plan);
			lh_id_hex(&a->order->id, order_hex);
			if (lh_memtools_call(wk.memtools, calls[i].name, calls[i].arguments, &mc,
					     on_tool_done, slot, &result, &err) == LH_OK) {
				a->pending_tools++;
				continue;
			}
		} else if (strcmp(calls[i].name, "ask_human") == 0 && wk.cfg.ask_human) {
			result = lh_tool_error_result("ask_human needs a non-empty \"question\"");
		} else {
			char m[200];
			snprintf(m, sizeof(m), "there is no tool named \"%.64s\" here", calls[i].name);
			result = lh_tool_error_result(m);
		}
		a->results[i] = lh_arena_strdup(a->arena, result);
		free(result);
	}
	if (--a->pending_tools == 0)
		round_done(a);
}

/* A model call ended: act on it, or park it until attempt.started is acknowledged. */
static void on_llm_done(lh_llm_resp_t *resp, const lh_llm_error_t *lerr, void *opaque)
{
	attempt_t *a = opaque;
	lh_endpoint_t *ep = &wk.eps[a->ep];
	int64_t now = lh_mono_us();
	ep->inflight--;
	ep->tokens_inflight -= a->est_input + 1;
	/* the provider's view of our limits, whatever becomes of the answer */
	lh_limiter_observe(&ep->limiter, lerr ? &lerr->ratelimit : &resp->ratelimit,
			   (int)ep->inflight, ep->tokens_inflight, now);
	if (lerr && lerr->klass == LH_LLM_ERR_RATE_LIMITED)
		lh_limiter_block(&ep->limiter, lerr->retry_after_ms, now);
	if (!lerr || lerr->klass != LH_LLM_ERR_CANCELLED) {
		lh_breaker_record(&ep->breaker,
				  lerr && (lerr->klass == LH_LLM_ERR_PROVIDER_DOWN ||
					   lerr->klass == LH_LLM_ERR_TIMEOUT),
				  now);
		release_waiters(ep, !ep->answered);
		ep->answered = true;
	}
	if (!lerr) {
		int64_t actual = resp->usage.input_tokens;
		lh_limiter_settle(&ep->limiter, a->est_input + 1,
				  resp->usage.input_tokens + resp->usage.output_tokens, now);
		a->cost_usd += strcmp(ep->provider, "scripted") == 0
				       ? 0 /* the scripted model costs nothing */
				       : ((double)(resp->usage.input_tokens - resp->usage.cached_tokens) *
						  ep->price_input +
					  (double)resp->usage.cached_tokens * ep->price_cached +
					  (double)resp->usage.output_tokens * ep->price_output) /
						 1e6;
		if (actual > 0) {
			wk.est_error_sum += fabs(lh_context_estimate_error((long)a->est_input,
									   (long)actual));
			wk.est_error_n++;
		}
	}
	if (a->abandoned) {
		attempt_free(a);
		return;
	}
	if (!a->started_acked) {
		a->calling = false;
		a->has_parked = true;
		a->parked_is_err = lerr != NULL;
		if (lerr)
			a->parked_err = *lerr;
		else {
			a->parked = *resp; /* the response's fields are ours now */
			memset(resp, 0, sizeof(*resp));
		}
		return;
	}
	handle_answer(a, resp, lerr);
}

/* Act on a model call's outcome: tools, corrections, the attempt's result. */
static void handle_answer(attempt_t *a, lh_llm_resp_t *resp, const lh_llm_error_t *lerr)
{
	const lh_task_order_t *o = a->order->body;
	lh_error_t err = {0};
	json_t *out = NULL;
	char *dump;
	size_t size;
	bool structured = a->schema != NULL;

	a->calling = false;
	if (a->asum_calling) {
		attempt_fold_answered(a, resp, lerr);
		return;
	}
	if (lerr && (lerr->klass == LH_LLM_ERR_PROVIDER_DOWN || lerr->klass == LH_LLM_ERR_TIMEOUT) &&
	    a->ep + 1 < wk.neps && !wk.stopping) {
		/* this endpoint is down: the next model of the tier takes the call */
		wk.eps[a->ep].failovers++;
		lh_log_warn("worker.failover", lerr->error.msg, "from", wk.eps[a->ep].model, "to",
			    wk.eps[a->ep + 1].model);
		a->ep++;
		request_next(a);
		return;
	}
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
	if (resp->n_tool_calls > 0 && wk.noffered > 0 && !strcmp(o->kind, "act")) {
		int64_t used = a->usage.input_tokens + a->usage.output_tokens;
		if (wk.cfg.attempt_tokens > 0 && used >= wk.cfg.attempt_tokens) {
			char m[160];
			snprintf(m, sizeof(m),
				 "the attempt used %lld tokens, its budget is %lld: no more model calls",
				 (long long)used, (long long)wk.cfg.attempt_tokens);
			finish(a, "budget", m, NULL);
			return;
		}
		run_tools(a, resp);
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

/* ---- the attempt's own rolling summary (memory.summarize_attempts) ------------------------ */

/* Enough newly dropped messages to fold (act attempts, memory tools on, not already folding)? */
static bool attempt_fold_due(const attempt_t *a)
{
	size_t anchor = a->has_asum ? (size_t)a->asum.anchor : 0;
	return wk.cfg.memory_summarize_attempts && wk.memtools && !a->asum_calling &&
	       !strcmp(((const lh_task_order_t *)a->order->body)->kind, "act") &&
	       a->dropped >= anchor + (size_t)wk.cfg.memory_summarize_attempt_batch &&
	       a->dropped > a->asum_tried;
}

/* This call folds the dropped messages instead: two messages of its own (in the call arena). */
static void attempt_fold_msgs(attempt_t *a, const lh_endpoint_t *ep, lh_llm_message_t **ret_msgs,
			      size_t *ret_n)
{
	const lh_task_order_t *o = a->order->body;
	size_t anchor = a->has_asum ? (size_t)a->asum.anchor : 0, to = anchor;
	size_t max = (size_t)wk.cfg.memory_summarize_max_bytes;
	lh_summary_t intent;
	/* messages [1, 1 + dropped) of a->msgs are the dropped verbatim ones */
	char *text = lh_summarize_messages_text(a->msgs + 1, anchor, a->dropped,
						LH_SUMMARIZE_MAX_EVENT_TEXT, max, &to);
	char *user;
	lh_llm_message_t *m = lh_arena_alloc(wk.call_arena, 2 * sizeof(*m));
	lh_summary_init(&intent, 0, o->instructions);
	user = lh_summarize_attempt_prompt(a->has_asum ? &a->asum : &intent, anchor, to, text, max);
	lh_summary_finish(&intent);
	free(text);
	m[0] = (lh_llm_message_t){.role = LH_LLM_ROLE_SYSTEM,
				  .content = (char *)LH_SUMMARIZE_ATTEMPT_SYSTEM};
	m[1] = (lh_llm_message_t){.role = LH_LLM_ROLE_USER,
				  .content = lh_arena_strdup(wk.call_arena, user)};
	free(user);
	a->est_input = lh_context_message_tokens(ep->model, &m[0]) +
		       lh_context_message_tokens(ep->model, &m[1]);
	a->asum_calling = true;
	a->asum_to = to;
	*ret_msgs = m;
	*ret_n = 2;
}

static void attempt_fold_stored(lh_err_t rc, const lh_error_t *err, void *arg)
{
	lh_summarize_store_job_t *j = arg;
	char v[24];
	if (rc)
		lh_log_warn("worker.attempt_summary", err && err->msg[0] ? err->msg : "not stored",
			    "plan", j->plan, "subject", j->subject);
	else
		lh_log_info("worker.attempt_summary", "stored", "plan", j->plan, "subject",
			    j->subject, "version", lh_log_i64(v, j->stored));
	lh_summarize_store_job_free(j);
}

/* The fold call's answer: merge the span into the attempt's summary, store it (detached, on the
 * memory tools' thread), rebuild the context's summary, and make the attempt's own call. A
 * failed or refused fold only leaves those messages out, as before. */
static void attempt_fold_answered(attempt_t *a, lh_llm_resp_t *resp, const lh_llm_error_t *lerr)
{
	const lh_task_order_t *o = a->order->body;
	lh_summarize_answer_t ans;
	const char *sections[LH_SUMMARY__COUNT];
	lh_error_t err = {0};
	size_t from = a->has_asum ? (size_t)a->asum.anchor : 0, to = from;
	char *scan;
	a->asum_calling = false;
	if (lerr) {
		a->asum_tried = a->dropped;
		lh_log_warn("worker.attempt_summary", lerr->error.msg);
		request_next(a);
		return;
	}
	a->calls++;
	a->usage.input_tokens += resp->usage.input_tokens;
	a->usage.output_tokens += resp->usage.output_tokens;
	a->usage.cached_tokens += resp->usage.cached_tokens;
	a->usage.reasoning_tokens += resp->usage.reasoning_tokens;
	if (lh_summarize_parse(resp->content, resp->content ? strlen(resp->content) : 0, &ans,
			       &err)) {
		a->asum_tried = a->dropped;
		lh_log_warn("worker.attempt_summary", err.msg);
		request_next(a);
		return;
	}
	if (!a->has_asum) {
		lh_summary_init(&a->asum, 0, o->instructions);
		a->has_asum = true;
	}
	/* the span's messages whole, scanned for artifacts */
	scan = lh_summarize_messages_text(a->msgs + 1, from, a->asum_to, 0, (size_t)-1, &to);
	lh_summarize_answer_sections(&ans, sections);
	if (lh_summary_merge(&a->asum, from, a->asum_to, sections, scan, &err) == LH_OK) {
		char subject[64];
		lh_summarize_store_job_t *j;
		lh_summarize_keep_tail(&a->asum.play_by_play, LH_SUMMARIZE_MAX_KEPT);
		lh_summarize_keep_tail(&a->asum.breadcrumbs, LH_SUMMARIZE_MAX_KEPT);
		snprintf(subject, sizeof(subject), "%lld/%lld", (long long)a->order->task_no,
			 (long long)a->order->attempt);
		j = lh_summarize_store_job_new(&a->order->plan_id, subject, &a->asum,
					       a->asum_version++);
		lh_memtools_run(wk.memtools, lh_summarize_store_job_run, attempt_fold_stored, j);
		if (a->has_ctx_sum)
			lh_summary_finish(&a->ctx_sum);
		lh_summarize_combine(a->has_summary ? &a->summary : NULL, &a->asum, &a->ctx_sum);
		a->has_ctx_sum = true;
	} else {
		a->asum_tried = a->dropped;
		lh_log_warn("worker.attempt_summary", err.msg);
	}
	free(scan);
	lh_summarize_answer_finish(&ans);
	request_next(a);
}

/* The order's key decisions (task.order "decisions", oldest first) as lines "- ...", or NULL. */
static const char *decisions_text(const lh_task_order_t *o, lh_arena_t *arena)
{
	lh_buf_t b;
	size_t i;
	json_t *d;
	const char *out;
	if (!json_is_array(o->decisions) || !json_array_size(o->decisions))
		return NULL;
	lh_buf_init(&b);
	json_array_foreach(o->decisions, i, d)
		if (json_string_value(d))
			lh_buf_printf(&b, "%s- %s", b.len ? "\n" : "", json_string_value(d));
	out = b.len ? lh_arena_strdup(arena, b.data) : NULL;
	lh_buf_finish(&b);
	return out;
}

/* This call's messages, assembled in layers within ep's window (common/context.h): system
 * prompt, then the intent (goal), plan status and key decisions, the recalled memories, and the
 * newest of the attempt's messages that fit. Sets a->est_input. Returns true when the attempt
 * ended (its intent alone does not fit the window). */
static bool assemble(attempt_t *a, const lh_endpoint_t *ep, lh_llm_message_t **ret_msgs,
		     size_t *ret_n)
{
	const lh_task_order_t *o = a->order->body;
	lh_context_opts_t co = {.family = ep->model,
				.window = ep->context_window,
				.reserve_output = wk.cfg.reserve_output < ep->context_window / 2
							  ? wk.cfg.reserve_output
							  : ep->context_window / 2};
	lh_context_inputs_t in = {.system = a->msgs[0].content,
				  .goal = o->goal,
				  .plan_status = lh_arena_printf(
					  wk.call_arena, "Task %lld (%s, tier %s), attempt %lld, turn %d of %lld",
					  (long long)a->order->task_no, o->kind, o->tier,
					  (long long)a->order->attempt, a->turns + 1,
					  (long long)wk.cfg.max_turns),
				  .decisions = decisions_text(o, wk.call_arena),
				  .summary = a->has_ctx_sum ? &a->ctx_sum
					     : a->has_summary ? &a->summary
							      : NULL,
				  .memories = a->recalled,
				  .n_memories = a->nrecalled,
				  .messages = a->msgs + 1,
				  .n_messages = a->nmsgs - 1};
	lh_context_report_t rep;
	lh_error_t err = {0};
	if (lh_context_assemble(&co, &in, wk.call_arena, ret_msgs, ret_n, &rep, &err)) {
		finish(a, "too_large", err.msg, NULL);
		return true;
	}
	a->est_input = rep.tokens;
	a->dropped = rep.n_dropped;
	if (rep.n_dropped || rep.newest_truncated || rep.n_memories_dropped) {
		char d[24], t[24], b[24];
		lh_log_info("worker.context", "context cut to the model's window", "model", ep->model,
			    "dropped_messages", lh_log_i64(d, (long long)rep.n_dropped), "tokens",
			    lh_log_i64(t, rep.tokens), "budget", lh_log_i64(b, rep.budget));
	}
	return false;
}

static void request(attempt_t *a)
{
	const lh_task_order_t *o = a->order->body;
	lh_llm_req_t req = {0};
	lh_error_t err = {0};
	int64_t now = lh_mono_us(), wait;
	lh_endpoint_t *ep;
	lh_llm_message_t *msgs = NULL;
	size_t nmsgs = 0;
	lh_arena_reset(wk.call_arena);
	if (a->abandoned) {
		attempt_free(a);
		return;
	}
	if (wk.stopping) {
		a->calling = false;
		return; /* main() ends it after the loop */
	}
	if (a->turns >= wk.cfg.max_turns) {
		char m[120];
		snprintf(m, sizeof(m), "tool loop: %d model calls, the cap is %lld", a->turns,
			 (long long)wk.cfg.max_turns);
		finish(a, "budget", m, NULL);
		return;
	}
	for (;;) {
		/* the first endpoint, from the attempt's current one, whose breaker is not open */
		size_t i = a->ep;
		while (i < wk.neps && lh_breaker_wait_us(&wk.eps[i].breaker, now) > 0)
			i++;
		if (i == wk.neps) {
			char m[200];
			wk.fast_fails++;
			snprintf(m, sizeof(m),
				 "the circuit breaker is open for %s (%lld ms left)%s: failing fast",
				 wk.eps[a->ep].model,
				 (long long)(lh_breaker_wait_us(&wk.eps[a->ep].breaker, now) / 1000),
				 wk.neps > 1 ? ", and of every model after it" : "");
			finish(a, "provider_down", m, NULL);
			return;
		}
		a->ep = i;
		ep = &wk.eps[i];
		/* Until an endpoint has answered once, one call at a time: its rate limits are not
		 * known, and a cold worker with hundreds of orders would burst into 429s. */
		if ((!ep->answered && ep->inflight > 0) ||
		    (ep->max_concurrency > 0 && ep->inflight >= ep->max_concurrency)) {
			a->calling = true;
			a->wait_next = ep->waiters;
			ep->waiters = a;
			return;
		}
		if (assemble(a, ep, &msgs, &nmsgs))
			return;
		if (attempt_fold_due(a))
			attempt_fold_msgs(a, ep, &msgs, &nmsgs);
		wait = lh_limiter_take(&ep->limiter, a->est_input, 1, now);
		if (wait > 0) {
			struct timeval tv = {wait / 1000000, wait % 1000000};
			a->calling = true;
			if (event_base_once(wk.base, -1, EV_TIMEOUT, request_later, a, &tv) != 0)
				finish(a, "internal", "could not schedule a rate-limited call", NULL);
			return;
		}
		if (lh_breaker_allow(&ep->breaker, now))
			break;
		/* half-open with its one trial call already out: the next model, if any */
		if (a->ep + 1 == wk.neps) {
			char m[160];
			wk.fast_fails++;
			snprintf(m, sizeof(m),
				 "the circuit breaker of %s is half-open with its trial call out: "
				 "failing fast",
				 ep->model);
			finish(a, "provider_down", m, NULL);
			return;
		}
		a->ep++;
	}
	a->turns++;
	ep->calls++;
	req.model = ep->model;
	req.messages = msgs;
	req.n_messages = nmsgs;
	req.timeout_ms = wk.cfg.llm_timeout_ms;
	req.task_kind = a->asum_calling ? "summarize" : o->kind;
	req.goal = o->goal;
	if (a->schema && !a->asum_calling)
		req.response_schema = &a->rschema;
	if (wk.noffered > 0 && !strcmp(o->kind, "act") && !a->asum_calling) {
		req.tools = wk.offered;
		req.n_tools = wk.noffered;
		if (a->schema) /* let the model call a tool before it answers in the schema */
			req.tool_choice = LH_LLM_TOOL_CHOICE_AUTO;
	}
	a->calling = true;
	if (lh_llm_call(ep->llm, &req, on_llm_done, a, &err)) {
		a->calling = false;
		finish(a, "internal", err.msg, NULL);
		return;
	}
	ep->inflight++;
	ep->tokens_inflight += a->est_input + 1;
}

/* The memory layer's search came back: keep the hits as "[memory N] content", then call. */
static void on_recalled(char *result, void *opaque)
{
	attempt_t *a = opaque;
	json_t *r = result ? json_loads(result, 0, NULL) : NULL, *m;
	size_t i, n = json_array_size(json_object_get(r, "memories"));
	free(result);
	a->calling = false;
	if (a->abandoned) {
		json_decref(r);
		attempt_free(a);
		return;
	}
	a->recalled = lh_arena_alloc(a->arena, (n ? n : 1) * sizeof(char *));
	a->recalled_ids = lh_arena_alloc(a->arena, (n ? n : 1) * sizeof(int64_t));
	json_array_foreach(json_object_get(r, "memories"), i, m) {
		if (json_integer_value(json_object_get(m, "id")) > 0 && a->nrecalled_ids < LH_MEMUSE_MAX)
			a->recalled_ids[a->nrecalled_ids++] = json_integer_value(json_object_get(m, "id"));
		a->recalled[a->nrecalled++] = lh_arena_printf(
			a->arena, "[memory %lld] %s", (long long)json_integer_value(json_object_get(m, "id")),
			json_string_value(json_object_get(m, "content")) ? json_string_value(json_object_get(m, "content")) : "");
	}
	if (json_object_get(r, "error"))
		lh_log_warn("worker.recall", json_string_value(json_object_get(r, "error")));
	json_decref(r);
	request(a);
}

/* Retrieve memories for the context (the memory tools' thread); the call starts when they
 * are in. A failed search only leaves the layer empty. */
static void recall(attempt_t *a)
{
	const lh_task_order_t *o = a->order->body;
	char plan[LH_UUID_STR_LEN + 1], *result = NULL;
	lh_memtool_ctx_t mc = {.tenant = a->order->tenant, .plan_id = plan};
	lh_error_t err = {0};
	json_t *args = json_pack("{s:s, s:I}", "query", o->instructions, "k",
				 (json_int_t)wk.cfg.context_memories);
	lh_uuid_fmt(&a->order->plan_id, plan);
	a->calling = true;
	if (lh_memtools_call(wk.memtools, "memory_search", args, &mc, on_recalled, a, &result,
			     &err) != LH_OK) {
		free(result);
		a->calling = false;
		request(a);
	}
	json_decref(args);
}

/* Memories for the context when configured (act orders with instructions), then the call. */
static void recall_or_request(attempt_t *a)
{
	const lh_task_order_t *o = a->order->body;
	if (wk.memtools && wk.cfg.context_memories > 0 && !strcmp(o->kind, "act") && o->instructions)
		recall(a);
	else
		request(a);
}

/* The plan's rolling summary (subject "", the latest version), loaded on the memory tools'
 * thread before the attempt's first call. */
typedef struct sumload {
	attempt_t *a;
	char plan[LH_UUID_STR_LEN + 1];
	lh_summary_t s;
	bool found;
} sumload_t;

/* On the memory tools' thread; safe to repeat (after a lost connection). */
static lh_err_t sumload_run(struct lh_pg *pg, struct lh_embedder *emb, void *arg, lh_error_t *err)
{
	sumload_t *l = arg;
	lh_err_t rc;
	(void)emb;
	if (l->found)
		lh_summary_finish(&l->s);
	l->found = false;
	rc = lh_summary_load(pg, l->plan, "", &l->s, NULL, err);
	if (rc == LH_OK)
		l->found = true;
	return rc == LH_ERR_NOT_FOUND ? LH_OK : rc;
}

/* On the loop (or from lh_memtools_free at shutdown, when the attempt ends after the loop):
 * keep the summary, then memories and the call. A failed load only leaves the layer empty. */
static void sumload_done(lh_err_t rc, const lh_error_t *err, void *arg)
{
	sumload_t *l = arg;
	attempt_t *a = l->a;
	a->calling = false;
	if (rc)
		lh_log_warn("worker.summary", err && err->msg[0] ? err->msg : "summary not loaded");
	if (l->found && !a->abandoned) {
		a->summary = l->s; /* moved */
		a->has_summary = true;
		l->found = false;
	}
	if (l->found)
		lh_summary_finish(&l->s);
	free(l);
	if (a->abandoned)
		attempt_free(a);
	else if (!wk.stopping)
		recall_or_request(a);
}

static void load_summary(attempt_t *a)
{
	sumload_t *l = calloc(1, sizeof(*l));
	if (!l) {
		recall_or_request(a);
		return;
	}
	l->a = a;
	lh_uuid_fmt(&a->order->plan_id, l->plan);
	a->calling = true;
	lh_memtools_run(wk.memtools, sumload_run, sumload_done, l);
}

static void call_model(attempt_t *a)
{
	const lh_task_order_t *o = a->order->body;
	lh_error_t err = {0};
	size_t nconv = json_is_array(o->conversation) ? json_array_size(o->conversation) : 0;
	msgs_reserve(a, 2 + nconv);
	lh_prompt_build(o, wk.cfg.common.tiers, a->arena, a->msgs);
	a->nmsgs = 2;
	/* resumed after a question: the earlier turns and the answer, in order */
	for (size_t i = 0; i < nconv; i++) {
		json_t *t = json_array_get(o->conversation, i), *c = json_object_get(t, "content");
		const char *role = json_string_value(json_object_get(t, "role"));
		const char *text = json_string_value(c);
		char *dump = NULL;
		if (!c || json_is_null(c))
			continue;
		if (!text)
			text = dump = json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY);
		a->msgs[a->nmsgs++] = (lh_llm_message_t){
			.role = role && !strcmp(role, "assistant") ? LH_LLM_ROLE_ASSISTANT
				: role && !strcmp(role, "system")  ? LH_LLM_ROLE_SYSTEM
								   : LH_LLM_ROLE_USER,
			.content = lh_arena_strdup(a->arena, text ? text : "")};
		free(dump);
	}
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
	/* the plan's own work gets the summary layer; a summarize task's input is the summary, and
	 * other kinds (extract) must not see it (never re-ingested) */
	if (wk.memtools && (!strcmp(o->kind, "act") || !strcmp(o->kind, "join") ||
			    !strcmp(o->kind, "replan") || !strcmp(o->kind, "plan")))
		load_summary(a);
	else
		recall_or_request(a);
}

/* Commit what a partition has acknowledged since its last commit (asynchronously). */
static void commit_pending(int32_t partition)
{
	ptrack_t *pt = &wk.parts[partition];
	lh_error_t err = {0};
	if (pt->commit < 0)
		return;
	if (lh_kafka_commit(wk.consumer, wk.orders_topic, partition, pt->commit, false, &err))
		lh_log_warn("worker.commit", err.msg);
	pt->commit = -1;
}

/* The commit tick: one commit request per partition for every order acknowledged since the
 * last tick, instead of one per order. */
static void on_commit_tick(evutil_socket_t fd, short what, void *arg)
{
	wk.commit_scheduled = false;
	for (int i = 0; i < MAX_PARTS; i++)
		if (wk.parts[i].assigned)
			commit_pending(i);
}

/* Commit the contiguous prefix of acknowledged orders of a partition. */
static void ack_offset(int32_t partition, int64_t offset)
{
	ptrack_t *pt = &wk.parts[partition];
	int64_t commit = -1;
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
	if (commit < 0)
		return;
	pt->commit = commit;
	if (wk.cfg.commit_interval_ms == 0) {
		commit_pending(partition);
	} else if (!wk.commit_scheduled) {
		struct timeval tv = {wk.cfg.commit_interval_ms / 1000,
				     (wk.cfg.commit_interval_ms % 1000) * 1000};
		wk.commit_scheduled = true;
		event_add(wk.ev_commit, &tv);
	}
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

/* ---- extract orders (docs/memory.md): no attempt events, offset committed when done ----- */

/* attempt.succeeded of an act attempt was delivered (rc LH_OK): its follow-up orders (extract,
 * summarize; followup.h) go out. One that cannot be produced is lost: no memories from that
 * success, or the plan's next summarize order covers its span. */
static void followups_send(lh_followup_t *chain, lh_err_t rc)
{
	for (lh_followup_t *f = chain; rc == LH_OK && f; f = lh_followup_next(f)) {
		lh_event_t ev;
		lh_task_order_t body;
		lh_error_t err = {0};
		lh_followup_event(f, wk.worker_id, &ev, &body);
		if (lh_bus_emit(wk.producer, lh_followup_topic(f), &ev, false, &wk.scratch, NULL,
				&err))
			lh_log_warn(!strcmp(lh_followup_kind(f), "extract") ? "worker.extract_order"
									    : "worker.summarize_order",
				    err.msg);
	}
	lh_followup_free(chain);
}

/* The extract order is done, or has definitively failed: its offset may be committed (unless
 * the worker is stopping: then the next worker runs it again; re-applying writes nothing). */
static void extract_done(attempt_t *a, const char *outcome, const char *why)
{
	char t[24], i[24], o[24], c[32], tn[24], at[24];
	int written = 0, superseded = 0, dups = 0, none = 0;
	char w[16], sp[16], d[16], n[16];
	lh_extract_job_counts(a->xj, &written, &superseded, &dups, &none);
	snprintf(w, sizeof(w), "%d", written);
	snprintf(sp, sizeof(sp), "%d", superseded);
	snprintf(d, sizeof(d), "%d", dups);
	snprintf(n, sizeof(n), "%d", none);
	snprintf(c, sizeof(c), "%.6f", a->cost_usd);
	/* not charged to the plan's budget (docs/memory.md): the log line is the record */
	lh_log_info("worker.extract", why && *why ? why : outcome, "outcome", outcome, "task_no",
		    lh_log_i64(tn, (long long)a->order->task_no), "attempt",
		    lh_log_i64(at, (long long)a->order->attempt), "llm_calls",
		    lh_log_i64(t, a->calls), "input_tokens",
		    lh_log_i64(i, (long long)a->usage.input_tokens), "output_tokens",
		    lh_log_i64(o, (long long)a->usage.output_tokens), "cost_usd", c, "written", w,
		    "superseded", sp, "duplicates", d, "none", n);
	if (!wk.stopping)
		ack_offset(a->partition, a->offset);
	a->xj = (lh_extract_job_free(a->xj), NULL);
	attempt_free(a);
}

/* The next model call of an extract order: its two messages replace the last ones. */
static void extract_call(attempt_t *a, const char *system, char *user)
{
	msgs_reserve(a, 2);
	a->msgs[0] = (lh_llm_message_t){.role = LH_LLM_ROLE_SYSTEM, .content = (char *)system};
	a->msgs[1] = (lh_llm_message_t){.role = LH_LLM_ROLE_USER,
					.content = lh_arena_strdup(a->arena, user ? user : "")};
	a->nmsgs = 2;
	free(user);
	request(a);
}

static void extract_consolidated(lh_err_t rc, const lh_error_t *err, void *job)
{
	attempt_t *a = lh_extract_job_owner(job);
	char m[16];
	a->calling = false;
	snprintf(m, sizeof(m), "%d", lh_extract_job_merged(job));
	if (rc)
		lh_log_warn("worker.consolidate", err->msg, "tenant",
			    a->order->tenant ? a->order->tenant : "default");
	else
		lh_log_info("worker.consolidate", "consolidated", "tenant",
			    a->order->tenant ? a->order->tenant : "default", "merged", m);
	extract_done(a, "applied", NULL);
}

/* the memtools callbacks get the job (their fn's argument); its owner is the attempt */
static void extract_applied(lh_err_t rc, const lh_error_t *err, void *job)
{
	static int64_t applied;
	attempt_t *a = lh_extract_job_owner(job);
	a->calling = false;
	if (!rc && wk.cfg.memory_consolidate_every > 0 && !wk.stopping &&
	    ++applied % wk.cfg.memory_consolidate_every == 0) {
		a->calling = true;
		lh_memtools_run(wk.memtools, lh_extract_job_consolidate, extract_consolidated, job);
		return;
	}
	extract_done(a, rc ? "failed" : "applied", rc ? err->msg : NULL);
}

static void extract_nearest_in(lh_err_t rc, const lh_error_t *err, void *job)
{
	attempt_t *a = lh_extract_job_owner(job);
	a->calling = false;
	if (rc || wk.stopping) {
		extract_done(a, "failed", rc ? err->msg : "worker stopping");
		return;
	}
	a->xphase = 1;
	{
		char plan[LH_UUID_STR_LEN + 1];
		lh_uuid_fmt(&a->order->plan_id, plan);
		lh_log_info("worker.extract_reconcile", "reconciling the extracted facts", "plan",
			    plan);
	}
	extract_call(a, LH_RECONCILE_SYSTEM, lh_extract_job_reconcile_prompt(a->xj));
}

/* finish() of an extract order: a model call's answer (output, a JSON string) or a failure. */
static void extract_answered(attempt_t *a, const char *error_class, const char *msg,
			     json_t *output)
{
	const char *text = json_string_value(output);
	lh_error_t err = {0};
	if (error_class) {
		extract_done(a, "failed", msg);
		return;
	}
	if (a->xphase == 0) {
		long n = lh_extract_job_facts(a->xj, a->order, text, &err);
		if (n <= 0) {
			extract_done(a, n < 0 ? "failed" : "nothing", n < 0 ? err.msg : NULL);
			return;
		}
		a->calling = true;
		lh_memtools_run(wk.memtools, lh_extract_job_nearest, extract_nearest_in, a->xj);
		return;
	}
	lh_extract_job_set_answer(a->xj, text);
	a->calling = true;
	lh_memtools_run(wk.memtools, lh_extract_job_apply, extract_applied, a->xj);
}

/* An extract order was taken: no attempt.started (the coordinator does not know it). */
static void extract_start(attempt_t *a)
{
	a->started_acked = true;
	a->xj = lh_extract_job_new(a->order, a);
	if (!wk.memtools) {
		extract_done(a, "failed", "extract orders need the memory tools (pg.url, tools.memory)");
		return;
	}
	extract_call(a, LH_EXTRACT_SYSTEM, lh_extract_job_prompt(a->order));
}

/* ---- consolidate orders (docs/memory.md): no model call, no attempt events -------------- */

/* where each tenant's last consolidation stopped (loop thread only) */
static lh_consolidate_cursors_t consolidate_cursors;

/* The order's work ran on the memory tools' thread (or failed, or the worker is stopping): log
 * it; commit its offset unless stopping (then the next worker runs it again: idempotent). A
 * failure is committed too: the next interval sends another order. */
static void consolidate_ran(lh_err_t rc, const lh_error_t *err, void *job)
{
	attempt_t *a = lh_consolidate_job_owner(job);
	lh_memory_consolidation_t c = lh_consolidate_job_result(job);
	char plan[LH_UUID_STR_LEN + 1], id[LH_ID_HEX_LEN + 1], m[24], p[24], b[24], na[24];
	const json_t *bucket = json_object_get(((const lh_task_order_t *)a->order->body)->args,
					       "bucket");
	a->calling = false;
	lh_uuid_fmt(&a->order->plan_id, plan);
	lh_id_hex(&a->order->id, id);
	lh_log_i64(b, json_is_integer(bucket) ? (long long)json_integer_value(bucket) : -1);
	if (!rc)
		lh_consolidate_cursor_put(&consolidate_cursors, lh_consolidate_job_tenant(job),
					  c.next_after);
	if (rc)
		lh_log_warn("worker.consolidate", err && err->msg[0] ? err->msg : "failed",
			    "outcome", "failed", "plan", plan, "tenant",
			    lh_consolidate_job_tenant(job), "order", id, "bucket", b);
	else
		lh_log_info("worker.consolidate", "consolidated", "outcome", "applied", "plan", plan,
			    "tenant", lh_consolidate_job_tenant(job), "order", id, "bucket", b,
			    "merged", lh_log_i64(m, c.merged), "pruned", lh_log_i64(p, c.pruned),
			    "next_after", lh_log_i64(na, (long long)c.next_after));
	if (!wk.stopping)
		ack_offset(a->partition, a->offset);
	a->cj = (lh_consolidate_job_free(a->cj), NULL);
	attempt_free(a);
}

/* A consolidate order was taken: no attempt.started (the coordinator sent it outside the plan). */
static void consolidate_start(attempt_t *a)
{
	a->started_acked = true;
	const char *tenant = a->order->tenant && *a->order->tenant ? a->order->tenant : "default";
	a->cj = lh_consolidate_job_new(a->order,
				       lh_consolidate_cursor_get(&consolidate_cursors, tenant),
				       (int)wk.cfg.memory_consolidate_batch,
				       (double)wk.cfg.memory_episodic_ttl_s, a);
	if (!wk.memtools) {
		lh_error_t err = {0};
		lh_error_set(&err, LH_ERR_INVALID, "consolidate orders need the memory tools (pg.url, "
			     "tools.memory)");
		consolidate_ran(LH_ERR_INVALID, &err, a->cj);
		return;
	}
	a->calling = true;
	lh_memtools_run(wk.memtools, lh_consolidate_job_run, consolidate_ran, a->cj);
}

/* ---- summarize orders (docs/memory.md, summarize.h): no attempt events, offset committed
 * when done ---------------------------------------------------------------------------------- */

#define SUMMARIZE_MAX_LOADS 64 /* waits for materialization plus conflicts, per order */

static void summarize_next(const lh_id_t *plan);

/* The order is done, or has definitively failed: its offset may be committed (unless the worker
 * is stopping: then the next worker runs it again from the stored version). The plan's next
 * queued order starts. */
static void summarize_done(attempt_t *a, const char *outcome, const char *why)
{
	char t[24], i[24], o[24], c[32], tn[24], at[24], f[24], to[24], n[24], v[24];
	char plan[LH_UUID_STR_LEN + 1];
	int64_t from = 0, upto = 0, events = 0;
	int version = 0;
	lh_summarize_job_span(a->sj, &from, &upto, &events, &version);
	lh_uuid_fmt(&a->order->plan_id, plan);
	snprintf(c, sizeof(c), "%.6f", a->cost_usd);
	/* not charged to the plan's budget (like extract orders): the log line is the record */
	lh_log_info("worker.summarize", why && *why ? why : outcome, "outcome", outcome, "plan",
		    plan, "task_no", lh_log_i64(tn, (long long)a->order->task_no), "attempt",
		    lh_log_i64(at, (long long)a->order->attempt), "from", lh_log_i64(f, from), "to",
		    lh_log_i64(to, upto), "events", lh_log_i64(n, events), "version",
		    lh_log_i64(v, version), "llm_calls", lh_log_i64(t, a->calls), "input_tokens",
		    lh_log_i64(i, (long long)a->usage.input_tokens), "output_tokens",
		    lh_log_i64(o, (long long)a->usage.output_tokens), "cost_usd", c);
	if (!wk.stopping)
		ack_offset(a->partition, a->offset);
	a->sj = (lh_summarize_job_free(a->sj), NULL);
	if (!a->squeued && !wk.stopping)
		summarize_next(&a->order->plan_id);
	attempt_free(a);
}

static void summarize_loaded(lh_err_t rc, const lh_error_t *err, void *job);
static void summarize_load(attempt_t *a);

/* Another running (not queued) summarize order of a's plan in this worker, or NULL. */
static attempt_t *summarize_running(const attempt_t *a)
{
	for (attempt_t *o = wk.inflight.next; o != &wk.inflight; o = o->next)
		if (o != a && o->sj && !o->squeued && lh_id_eq(&o->order->plan_id, &a->order->plan_id))
			return o;
	return NULL;
}

/* The plan's running order ended: its oldest queued one (the list is newest first) starts. */
static void summarize_next(const lh_id_t *plan)
{
	for (attempt_t *o = wk.inflight.prev; o != &wk.inflight; o = o->prev)
		if (o->sj && o->squeued && lh_id_eq(&o->order->plan_id, plan)) {
			o->squeued = false;
			summarize_load(o);
			return;
		}
}

static void summarize_load(attempt_t *a)
{
	a->sloads++;
	a->calling = true;
	lh_memtools_run(wk.memtools, lh_summarize_job_load, summarize_loaded, a->sj);
}

static void summarize_load_later(evutil_socket_t fd, short what, void *arg)
{
	attempt_t *a = arg;
	a->calling = false;
	if (wk.stopping)
		return; /* main() ends it after the loop */
	summarize_load(a);
}

/* The summary and the span are in (memory tools' thread done): call, wait, or finish. */
static void summarize_loaded(lh_err_t rc, const lh_error_t *err, void *job)
{
	attempt_t *a = lh_summarize_job_owner(job);
	a->calling = false;
	if (rc || wk.stopping) {
		summarize_done(a, "failed", rc ? err->msg : "worker stopping");
		return;
	}
	switch (lh_summarize_job_state(a->sj)) {
	case LH_SUMMARIZE_WAIT: {
		/* the source event is not in PostgreSQL yet: poll with backoff, within the bound */
		int64_t waited_ms = (lh_mono_us() - a->start_mono_us) / 1000;
		int64_t ms = 100LL << (a->sloads < 5 ? a->sloads : 5);
		if (waited_ms >= wk.cfg.memory_summarize_wait_ms || a->sloads >= SUMMARIZE_MAX_LOADS) {
			lh_summarize_job_stop_waiting(a->sj); /* summarize what is there */
			summarize_load(a);
			return;
		}
		if (ms > 2000)
			ms = 2000;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
		a->calling = true;
		if (event_base_once(wk.base, -1, EV_TIMEOUT, summarize_load_later, a, &tv) != 0)
			summarize_done(a, "failed", "could not schedule the next load");
		return;
	}
	case LH_SUMMARIZE_CALL: {
		char plan[LH_UUID_STR_LEN + 1], f[24], t[24];
		int64_t from = 0, to = 0, events = 0;
		int version = 0;
		char *user = lh_summarize_job_prompt(a->sj);
		lh_summarize_job_span(a->sj, &from, &to, &events, &version);
		lh_uuid_fmt(&a->order->plan_id, plan);
		lh_log_info("worker.summarize_call", "summarizing a span of the plan's events", "plan",
			    plan, "from", lh_log_i64(f, from), "to", lh_log_i64(t, to));
		msgs_reserve(a, 2);
		a->msgs[0] = (lh_llm_message_t){.role = LH_LLM_ROLE_SYSTEM,
						.content = (char *)LH_SUMMARIZE_SYSTEM};
		a->msgs[1] = (lh_llm_message_t){.role = LH_LLM_ROLE_USER,
						.content = lh_arena_strdup(a->arena, user ? user : "")};
		a->nmsgs = 2;
		free(user);
		request(a);
		return;
	}
	default:
		summarize_done(a, "nothing", NULL);
	}
}

/* Stored over the loaded version, or another writer was first: then start over from its
 * version (its span is not summarized again), a bounded number of times. */
static void summarize_stored(lh_err_t rc, const lh_error_t *err, void *job)
{
	attempt_t *a = lh_summarize_job_owner(job);
	a->calling = false;
	if (rc)
		summarize_done(a, "failed", err->msg);
	else if (lh_summarize_job_state(a->sj) == LH_SUMMARIZE_STORED) {
		/* announced after the store: a crash in between loses the event, not the version */
		lh_event_t ev;
		lh_summary_updated_t body;
		lh_summarize_job_event(a->sj, a->order, wk.worker_id, &ev, &body);
		body.model = a->model[0] ? a->model : wk.eps[a->ep].model;
		body.usage = usage_of(a);
		body.has_usage = a->calls > 0;
		publish(&ev, NULL);
		summarize_done(a, "stored", NULL);
	}
	else if (!wk.stopping && a->sloads < SUMMARIZE_MAX_LOADS)
		summarize_load(a);
	else
		summarize_done(a, "conflict", "another writer stored the plan's summary first");
}

/* finish() of a summarize order: the model's answer (output, a JSON string) or a failure. */
static void summarize_answered(attempt_t *a, const char *error_class, const char *msg,
			       json_t *output)
{
	lh_error_t err = {0};
	if (error_class) {
		summarize_done(a, "failed", msg);
		return;
	}
	if (lh_summarize_job_answer(a->sj, json_string_value(output), &err)) {
		/* a refused answer goes back with the reason (worker.output_retries times), then the
		 * order fails: committed, and the next order summarizes the span */
		if (err.code == LH_ERR_DECODE && !wk.stopping)
			correct_or_fail(a, json_string_value(output) ? json_string_value(output) : "",
					err.msg);
		else
			summarize_done(a, "failed", err.msg);
		return;
	}
	a->calling = true;
	lh_memtools_run(wk.memtools, lh_summarize_job_store, summarize_stored, a->sj);
}

/* A summarize order was taken: no attempt.started (the coordinator does not know it). */
static void summarize_start(attempt_t *a)
{
	lh_summarize_limits_t lim = {.max_events = wk.cfg.memory_summarize_max_events,
				     .max_bytes = wk.cfg.memory_summarize_max_bytes,
				     .min_events = wk.cfg.memory_summarize_min_events};
	a->started_acked = true;
	a->sj = lh_summarize_job_new(a->order, &lim, a);
	if (!wk.memtools) {
		summarize_done(a, "failed",
			       "summarize orders need the memory tools (pg.url, tools.memory)");
		return;
	}
	/* One order of a plan at a time in this worker: a second one now would load the same
	 * version, summarize the same span and lose the store (a wasted model call). It starts
	 * when the running one is done, from the version that one stored. */
	if (summarize_running(a)) {
		a->squeued = true;
		return;
	}
	summarize_load(a);
}

static void on_delivery(void *opaque, void *msg_opaque, lh_err_t rc, const lh_error_t *err,
			int32_t partition, int64_t offset)
{
	attempt_t *a = msg_opaque;
	lh_followup_t *follow = lh_followup_take(msg_opaque);
	if (follow) {
		followups_send(follow, rc);
		return;
	}
	if (rc) {
		lh_log_error("worker.delivery_failed", err ? err->msg : "delivery failed");
		/* not started in the log: the coordinator's lease re-dispatches; a model call still
		 * in flight frees the attempt when it ends */
		if (a && a->calling)
			a->abandoned = true;
		else if (a)
			attempt_free(a);
		return;
	}
	if (!a)
		return;
	a->started_acked = true;
	ack_offset(a->partition, a->offset);
	if (wk.stopping) {
		finish(a, "retryable", "worker shutting down before the call", NULL);
	} else if (a->deferred_class) {
		finish(a, a->deferred_class, a->deferred_msg, NULL);
	} else if (a->has_parked) {
		lh_llm_resp_t r = a->parked;
		lh_llm_error_t e = a->parked_err;
		memset(&a->parked, 0, sizeof(a->parked));
		a->has_parked = false;
		handle_answer(a, a->parked_is_err ? NULL : &r, a->parked_is_err ? &e : NULL);
		lh_llm_resp_finish(&r);
	}
	/* else the first model call is still in flight (or waiting for the rate limit) */
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
	if (lh_summarize_is_order(ev)) {
		if (wk.ninflight >= wk.cfg.max_inflight)
			set_paused(true);
		summarize_start(a);
		return;
	}
	if (!strcmp(((const lh_task_order_t *)ev->body)->kind, "extract")) {
		if (wk.ninflight >= wk.cfg.max_inflight)
			set_paused(true);
		extract_start(a);
		return;
	}
	if (!strcmp(((const lh_task_order_t *)ev->body)->kind, "consolidate")) {
		if (wk.ninflight >= wk.cfg.max_inflight)
			set_paused(true);
		consolidate_start(a);
		return;
	}
	s.worker_id = wk.worker_id;
	s.model = wk.eps[0].model;
	s.dispatched_ts_us = ((const lh_task_order_t *)ev->body)->dispatched_ts_us;
	ev_init(&started, a, LH_EV_ATTEMPT_STARTED, &s);
	publish(&started, a);
	if (wk.ninflight >= wk.cfg.max_inflight)
		set_paused(true);
	/* The model call overlaps the broker's round trip of attempt.started: a call has no side
	 * effect but its cost, and nothing it leads to (tools, events) happens before the ack. */
	if (!wk.stopping)
		call_model(a);
}

static void on_rebalance(void *opaque, bool assigned, lh_kafka_part_t *parts, int n)
{
	for (int i = 0; i < n; i++) {
		int32_t p = parts[i].partition;
		if (p < 0 || p >= MAX_PARTS)
			continue;
		if (!assigned && wk.parts[p].assigned)
			commit_pending(p); /* what was acknowledged before the partition leaves */
		free(wk.parts[p].offs);
		free(wk.parts[p].acked);
		memset(&wk.parts[p], 0, sizeof(wk.parts[p]));
		wk.parts[p].assigned = assigned;
		wk.parts[p].commit = -1;
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
		if (a->sj)
			continue; /* summarize orders publish no attempt events */
		if (!a->started_acked || !a->calling || a->xj || a->cj)
			continue; /* extract and consolidate orders publish no attempt events */
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
	char a[24], b[24], c[24], d[24], e[24], f[24], g[24], h[24], i[24], j[24];
	uint64_t waits = 0;
	for (size_t k = 0; k < wk.neps; k++) {
		lh_endpoint_t *ep = &wk.eps[k];
		char n1[24], n2[24], n3[24];
		waits += ep->limiter.waits;
		lh_log_info("worker.endpoint", "endpoint counters", "model", ep->model, "breaker",
			    lh_breaker_state_name(ep->breaker.state), "calls",
			    lh_log_i64(n1, (long long)ep->calls), "failovers",
			    lh_log_i64(n2, (long long)ep->failovers), "rate_waits",
			    lh_log_i64(n3, (long long)ep->limiter.waits));
	}
	snprintf(j, sizeof(j), "%.3f", wk.est_error_n ? wk.est_error_sum / wk.est_error_n : 0.0);
	lh_log_info("worker.stats", "counters", "inflight", lh_log_i64(a, (long long)wk.ninflight),
		    "orders", lh_log_i64(b, (long long)wk.orders), "succeeded",
		    lh_log_i64(c, (long long)wk.succeeded), "failed",
		    lh_log_i64(d, (long long)wk.failed), "duplicates",
		    lh_log_i64(e, (long long)wk.duplicates), "asked",
		    lh_log_i64(f, (long long)wk.asked), "tool_calls",
		    lh_log_i64(g, (long long)wk.tool_calls), "fast_fails",
		    lh_log_i64(h, (long long)wk.fast_fails), "rate_waits",
		    lh_log_i64(i, (long long)waits), "token_estimate_error", j);
}

/* GET /metrics (Prometheus text 0.0.4), served from the loop: the worker's loop never blocks
 * on PostgreSQL or the model (those run on other threads or are non-blocking), so reading the
 * counters here needs no lock. */
static void on_metrics(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b;
	uint64_t waits = 0;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		evhttp_send_error(req, 405, "only GET");
		return;
	}
	if (strcmp(evhttp_request_get_uri(req), "/metrics") != 0) {
		evhttp_send_error(req, 404, "only /metrics");
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b,
			    "# HELP lh_worker_attempts_total Attempts ended, by outcome.\n"
			    "# TYPE lh_worker_attempts_total counter\n"
			    "lh_worker_attempts_total{outcome=\"succeeded\"} %llu\n"
			    "lh_worker_attempts_total{outcome=\"failed\"} %llu\n"
			    "lh_worker_attempts_total{outcome=\"asked\"} %llu\n"
			    "# HELP lh_worker_orders_total Work orders taken (duplicates not counted).\n"
			    "# TYPE lh_worker_orders_total counter\n"
			    "lh_worker_orders_total %llu\n"
			    "# HELP lh_worker_duplicate_orders_total Re-sent orders dropped by id.\n"
			    "# TYPE lh_worker_duplicate_orders_total counter\n"
			    "lh_worker_duplicate_orders_total %llu\n"
			    "# HELP lh_worker_inflight Attempts in flight.\n"
			    "# TYPE lh_worker_inflight gauge\n"
			    "lh_worker_inflight %lld\n"
			    "# HELP lh_worker_tool_calls_total Tool calls made.\n"
			    "# TYPE lh_worker_tool_calls_total counter\n"
			    "lh_worker_tool_calls_total %llu\n",
			    (unsigned long long)wk.succeeded, (unsigned long long)wk.failed,
			    (unsigned long long)wk.asked, (unsigned long long)wk.orders,
			    (unsigned long long)wk.duplicates, (long long)wk.ninflight,
			    (unsigned long long)wk.tool_calls);
	evbuffer_add_printf(b, "# HELP lh_worker_model_calls_total Model calls, by model.\n"
			       "# TYPE lh_worker_model_calls_total counter\n");
	for (size_t k = 0; k < wk.neps; k++)
		evbuffer_add_printf(b, "lh_worker_model_calls_total{model=\"%s\"} %llu\n",
				    wk.eps[k].model, (unsigned long long)wk.eps[k].calls);
	evbuffer_add_printf(b, "# HELP lh_worker_breaker_open 1 while a model's circuit breaker is "
			       "not closed.\n# TYPE lh_worker_breaker_open gauge\n");
	for (size_t k = 0; k < wk.neps; k++) {
		waits += wk.eps[k].limiter.waits;
		evbuffer_add_printf(b, "lh_worker_breaker_open{model=\"%s\"} %d\n", wk.eps[k].model,
				    wk.eps[k].breaker.state != LH_BREAKER_CLOSED);
	}
	evbuffer_add_printf(b,
			    "# HELP lh_worker_rate_waits_total Calls that waited for a rate limit.\n"
			    "# TYPE lh_worker_rate_waits_total counter\n"
			    "lh_worker_rate_waits_total %llu\n"
			    "# HELP lh_worker_token_estimate_error Mean |estimated - reported| / "
			    "reported input tokens of the model calls that reported usage.\n"
			    "# TYPE lh_worker_token_estimate_error gauge\n"
			    "lh_worker_token_estimate_error %.6f\n"
			    "# HELP lh_worker_token_estimate_calls_total Model calls in that mean.\n"
			    "# TYPE lh_worker_token_estimate_calls_total counter\n"
			    "lh_worker_token_estimate_calls_total %llu\n",
			    (unsigned long long)waits,
			    wk.est_error_n ? wk.est_error_sum / (double)wk.est_error_n : 0.0,
			    (unsigned long long)wk.est_error_n);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* Connections to /metrics refused over the cap (at most one line per
 * LH_HTTPD_REFUSED_REPORT_S seconds). */
static void on_metrics_refused(uint64_t n, int max_conns, void *arg)
{
	char a[24], b[24];
	lh_log_warn("worker.metrics_refused",
		    "refused connections to the metrics endpoint: too many open at once", "refused",
		    lh_log_i64(a, (long long)n), "max_connections", lh_log_i64(b, max_conns));
}

/* Serve /metrics on wk.cfg.metrics_listen from the loop, at most LH_HTTPD_MAX_CONNS connections
 * at once; 0, else the exit status after logging why not: 2 for a malformed address, 1 when it
 * cannot be bound. */
static int start_metrics(void)
{
	char ps[24];
	lh_error_t err = {0};
	lh_err_t rc;
	struct evhttp *http;
	if (!*wk.cfg.metrics_listen)
		return 0;
	rc = lh_httpd_new(wk.base, wk.cfg.metrics_listen, LH_HTTPD_MAX_CONNS, LH_HTTPD_TIMEOUT_S,
			  on_metrics_refused, NULL, &wk.metrics, &err);
	if (rc == LH_ERR_CONFIG) {
		lh_log_error("worker.bad_config", err.msg);
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 2;
	}
	if (rc == LH_ERR_NOMEM)
		abort();
	if (rc) {
		lh_log_error("worker.metrics", "could not listen on the metrics address", "listen",
			     wk.cfg.metrics_listen, "error", err.msg);
		fprintf(stderr, "lh-worker: could not listen on %s\n", wk.cfg.metrics_listen);
		return 1;
	}
	http = lh_httpd_evhttp(wk.metrics);
	evhttp_set_gencb(http, on_metrics, NULL);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						 EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	lh_log_info("worker.metrics", "serving GET /metrics", "listen", wk.cfg.metrics_listen,
		    "port", lh_log_i64(ps, lh_httpd_port(wk.metrics)));
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	lh_log_info("worker.stopping", "abandoning attempts in flight with attempt.failed");
	wk.stopping = true;
	set_paused(true);
	/* In-flight model calls end now with LH_LLM_ERR_CANCELLED -> attempt.failed (retryable);
	 * attempts running tools end after the loop. */
	for (size_t i = 0; i < wk.neps; i++)
		lh_llm_cancel_all(wk.eps[i].llm);
	if (wk.tools_http)
		lh_http_cancel_all(wk.tools_http);
	event_base_loopbreak(wk.base);
}

static const char *env_nonempty(const char *name)
{
	const char *v = name && *name ? getenv(name) : NULL;
	return v && *v ? v : NULL;
}

/* The key in path (whitespace around it dropped) into ret (size n). The key itself never
 * appears in an error. */
static lh_err_t read_key_file(const char *path, char *ret, size_t n, lh_error_t *err)
{
	FILE *f = fopen(path, "r");
	size_t len, start = 0;
	if (!f)
		return lh_error_set(err, LH_ERR_CONFIG, "could not read the API key file \"%s\": %s",
				    path, strerror(errno));
	len = fread(ret, 1, n - 1, f);
	fclose(f);
	ret[len] = '\0';
	while (len > 0 && isspace((unsigned char)ret[len - 1]))
		ret[--len] = '\0';
	while (start < len && isspace((unsigned char)ret[start]))
		start++;
	memmove(ret, ret + start, len - start + 1);
	if (!*ret || strpbrk(ret, "\r\n"))
		return lh_error_set(err, LH_ERR_CONFIG,
				    "the API key file \"%s\" is empty or holds more than one line",
				    path);
	return LH_OK;
}

/* One endpoint's provider. The scripted model when asked for, or by "auto" without a key or
 * base URL; keys come from a file or the environment, and are never logged. */
static lh_err_t make_provider(lh_endpoint_t *ep, const char *openai_key,
			      const char *anthropic_key, lh_error_t *err)
{
	const char *prov = ep->provider, *key, *url;
	/* the provider reads 0 as "its default" and -1 as none */
	lh_llm_openai_opts_t o = {.max_retries = wk.cfg.llm_max_retries ? (int)wk.cfg.llm_max_retries
									: -1,
				  .timeout_ms = wk.cfg.llm_timeout_ms};
	lh_http_opts_t ho = {.max_connections = 0};
	bool anthropic;
	if (!strcmp(prov, "auto")) {
		prov = openai_key || *ep->base_url ? "openai" : anthropic_key ? "anthropic"
									   : "scripted";
		free(ep->provider);
		ep->provider = strdup(prov);
		if (!ep->provider)
			abort();
		prov = ep->provider;
	}
	if (!strcmp(prov, "scripted")) {
		ep->llm = lh_llm_scripted_new(wk.base, err);
		free(ep->model);
		ep->model = strdup("scripted");
		lh_log_info("worker.model", "model: scripted (no LLM key configured; set OPENAI_API_KEY, "
					    "ANTHROPIC_API_KEY or LH_LLM_BASE_URL to use a real model)");
		return ep->llm ? LH_OK : LH_ERR_INTERNAL;
	}
	anthropic = !strcmp(prov, "anthropic");
	key = anthropic ? anthropic_key : openai_key;
	url = *ep->base_url ? ep->base_url
	      : anthropic   ? "https://api.anthropic.com/v1"
			    : "https://api.openai.com/v1";
	if (!*ep->model) {
		free(ep->model);
		ep->model = strdup(anthropic ? "claude-3-5-haiku-latest" : "gpt-4o-mini");
	}
	if (anthropic && !key)
		return lh_error_set(err, LH_ERR_CONFIG, "the anthropic provider needs a key in %s",
				    *ep->api_key_env ? ep->api_key_env : "ANTHROPIC_API_KEY");
	if (!wk.http && !(wk.http = lh_http_new(wk.base, &ho, err)))
		return LH_ERR_INTERNAL;
	ep->llm = anthropic ? lh_llm_anthropic_new(wk.http, url, key, &o, err)
			    : lh_llm_openai_new(wk.http, url, key, &o, err);
	lh_log_info("worker.model", anthropic ? "model: Anthropic Messages" : "model: OpenAI-compatible",
		    "base_url", url, "model", ep->model, "key", key ? "set" : "none");
	return ep->llm ? LH_OK : LH_ERR_INTERNAL;
}

static lh_err_t make_endpoint(lh_endpoint_t *ep, lh_error_t *err)
{
	char file_key[4096];
	const char *openai_key = env_nonempty(*ep->api_key_env ? ep->api_key_env : "OPENAI_API_KEY");
	const char *anthropic_key =
		env_nonempty(*ep->api_key_env ? ep->api_key_env : "ANTHROPIC_API_KEY");
	lh_err_t rc;
	if (*ep->api_key_file) {
		rc = read_key_file(ep->api_key_file, file_key, sizeof(file_key), err);
		if (rc == LH_OK)
			rc = make_provider(ep, file_key, file_key, err);
		explicit_bzero(file_key, sizeof(file_key)); /* the provider keeps its own copy */
		return rc;
	}
	return make_provider(ep, openai_key, anthropic_key, err);
}

/* The tier's endpoints (llm.models, or the single-model settings), each with its provider,
 * breaker and limiter. */
static lh_err_t make_endpoints(lh_error_t *err)
{
	lh_endpoint_t dflt = {.provider = wk.cfg.provider,
			      .base_url = wk.cfg.base_url,
			      .model = wk.cfg.model,
			      .api_key_env = wk.cfg.api_key_env,
			      .api_key_file = wk.cfg.api_key_file,
			      .price_input = wk.cfg.price_input,
			      .price_output = wk.cfg.price_output,
			      .price_cached = wk.cfg.price_cached,
			      .context_window = wk.cfg.context_window,
			      .max_concurrency = wk.cfg.max_concurrency,
			      .requests_per_minute = wk.cfg.requests_per_minute,
			      .tokens_per_minute = wk.cfg.tokens_per_minute};
	lh_err_t rc = lh_endpoints_parse(wk.cfg.models, &dflt, &wk.eps, &wk.neps, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < wk.neps; i++) {
		lh_endpoint_t *ep = &wk.eps[i];
		if ((rc = make_endpoint(ep, err)))
			return rc;
		lh_breaker_init(&ep->breaker, (int)wk.cfg.breaker_threshold,
				wk.cfg.breaker_cooldown_ms * 1000);
		lh_limiter_init(&ep->limiter, ep->requests_per_minute, ep->tokens_per_minute,
				lh_mono_us());
	}
	return LH_OK;
}

/* The tools act tasks are offered. */
static lh_err_t setup_tools(lh_error_t *err)
{
	lh_http_opts_t ho = {.max_connections = 64, .max_host_connections = 8,
			     .user_agent = "longhaul-http-fetch"};
	lh_tools_defs(wk.tool_defs, wk.tool_params);
	wk.tools_cfg = (lh_tools_cfg_t){.allow_hosts = wk.cfg.http_allow_hosts,
					.allow_private = wk.cfg.http_allow_private,
					.max_bytes = (size_t)wk.cfg.http_max_bytes,
					.timeout_ms = (long)wk.cfg.http_timeout_ms};
	if (*wk.cfg.http_allow_hosts) {
		wk.tools_http = lh_http_new(wk.base, &ho, err);
		if (!wk.tools_http)
			return LH_ERR_INTERNAL;
		wk.offered[wk.noffered++] = wk.tool_defs[0];
	}
	if (wk.cfg.ask_human)
		wk.offered[wk.noffered++] = wk.tool_defs[1];
	wk.blobs = lh_blob_store_new(wk.cfg.common.pg_url, (size_t)wk.cfg.common.blob_threshold);
	lh_memtools_defs(wk.mem_defs, wk.mem_params);
	if (wk.cfg.memory_tools && *wk.cfg.common.pg_url) {
		wk.memtools = lh_memtools_new(wk.base, wk.cfg.common.pg_url,
					      wk.cfg.memory_global_write, &wk.cfg.common, err);
		if (!wk.memtools)
			return err->code ? err->code : LH_ERR_INTERNAL;
		for (int i = 0; i < LH_MEMTOOLS_N; i++)
			wk.offered[wk.noffered++] = wk.mem_defs[i];
	}
	return LH_OK;
}

int main(int argc, char **argv)
{
	lh_error_t err = {0};
	lh_kafka_opts_t ko;
	const char *topics[2];
	char host[64] = "?", linger[32];
	/* small events, one at a time on a quiet worker: no Nagle delay behind an unacknowledged
	 * packet */
	const char *producer_extra[] = {linger, "socket.nagle.disable=true", NULL};
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
	if (*wk.cfg.metrics_listen) {
		char mhost[256];
		int mport;
		if (lh_listen_parse(wk.cfg.metrics_listen, mhost, sizeof(mhost), &mport, &err)) {
			fprintf(stderr, "lh-worker: %s\n", err.msg);
			lh_log_error("worker.bad_config", err.msg);
			return 2;
		}
	}
	if (lh_topic(wk.cfg.common.topic_prefix, "events", wk.events_topic, &err) ||
	    lh_topic(wk.cfg.common.topic_prefix, "dlq", wk.dlq_topic, &err) ||
	    lh_topic_tasks(wk.cfg.common.topic_prefix, wk.cfg.tier, wk.orders_topic, &err)) {
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 2;
	}
	if (wk.cfg.memory_extract) {
		/* default: the first tier listed, the cheapest */
		const char *t = *wk.cfg.memory_extract_tier ? wk.cfg.memory_extract_tier
							    : wk.cfg.common.tiers;
		snprintf(extract_tier, sizeof(extract_tier), "%.*s", (int)strcspn(t, ", "), t);
		if (lh_topic_tasks(wk.cfg.common.topic_prefix, extract_tier, extract_topic, &err)) {
			fprintf(stderr, "lh-worker: memory.extract_tier: %s\n", err.msg);
			return 2;
		}
	}
	if (wk.cfg.memory_summarize) {
		const char *t = *wk.cfg.memory_summarize_tier ? wk.cfg.memory_summarize_tier
							      : wk.cfg.common.tiers;
		snprintf(summarize_tier, sizeof(summarize_tier), "%.*s", (int)strcspn(t, ", "), t);
		if (lh_topic_tasks(wk.cfg.common.topic_prefix, summarize_tier, summarize_topic, &err)) {
			fprintf(stderr, "lh-worker: memory.summarize_tier: %s\n", err.msg);
			return 2;
		}
	}
	snprintf(wk.group, sizeof(wk.group), "%s",
		 *wk.cfg.group ? wk.cfg.group : wk.orders_topic); /* default: the topic's own group */
	if (!*wk.cfg.group)
		snprintf(wk.group, sizeof(wk.group), "lh-worker.%s", wk.cfg.tier);
	gethostname(host, sizeof(host) - 1);
	snprintf(wk.worker_id, sizeof(wk.worker_id), "lh-worker@%s:%d/%s", host, (int)getpid(),
		 wk.cfg.tier);
	wk.inflight.next = wk.inflight.prev = &wk.inflight;
	for (int i = 0; i < MAX_PARTS; i++)
		wk.parts[i].commit = -1;
	lh_idmap_init(&wk.seen);
	lh_buf_init(&wk.scratch);
	wk.call_arena = lh_arena_new(16384);
	wk.base = event_base_new();
	if (make_endpoints(&err) || setup_tools(&err)) {
		fprintf(stderr, "lh-worker: %s\n", err.msg);
		return 1;
	}
	snprintf(linger, sizeof(linger), "linger.ms=%lld", (long long)wk.cfg.linger_ms);
	ko = (lh_kafka_opts_t){.brokers = wk.cfg.common.brokers, .client_id = "lh-worker",
			       .on_delivery = on_delivery, .extra = producer_extra};
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
	wk.ev_commit = evtimer_new(wk.base, on_commit_tick, NULL);
	{
		int mrc = start_metrics();
		if (mrc)
			return mrc;
	}
	lh_log_info("worker.started", "consuming", "topic", wk.orders_topic, "group", wk.group, "id",
		    wk.worker_id);
	event_base_dispatch(wk.base);
	/* memory calls still queued end without their callbacks: their attempts end below */
	wk.memtools = lh_memtools_free(wk.memtools);
	wk.blobs = lh_blob_store_free(wk.blobs);

	/* Attempts whose attempt.started is still unacknowledged end in on_delivery (stopping) as
	 * attempt.failed, retryable; flushing serves those reports. */
	if (lh_kafka_flush(wk.producer, 10000, &err))
		lh_log_warn("worker.flush", err.msg);
	while (wk.inflight.next != &wk.inflight && wk.inflight.next->started_acked)
		finish(wk.inflight.next, "retryable", "worker shut down", NULL);
	if (lh_kafka_flush(wk.producer, 10000, &err))
		lh_log_warn("worker.flush", err.msg);
	for (int i = 0; i < MAX_PARTS; i++)
		if (wk.parts[i].assigned && wk.parts[i].commit >= 0 &&
		    lh_kafka_commit(wk.consumer, wk.orders_topic, i, wk.parts[i].commit, true, &err))
			lh_log_warn("worker.commit", err.msg);
	wk.consumer = lh_kafka_free(wk.consumer);
	wk.producer = lh_kafka_free(wk.producer);
	for (size_t i = 0; i < wk.neps; i++)
		wk.eps[i].llm = lh_llm_provider_free(wk.eps[i].llm);
	lh_endpoints_free(wk.eps, wk.neps);
	wk.http = lh_http_free(wk.http);
	wk.tools_http = lh_http_free(wk.tools_http);
	lh_tools_defs_finish(wk.tool_params);
	lh_memtools_defs_finish(wk.mem_params);
	event_free(wk.ev_sigint);
	event_free(wk.ev_sigterm);
	event_free(wk.ev_heartbeat);
	event_free(wk.ev_commit);
	if (wk.ev_stats)
		event_free(wk.ev_stats);
	wk.metrics = lh_httpd_free(wk.metrics);
	event_base_free(wk.base);
	for (int i = 0; i < MAX_PARTS; i++) {
		free(wk.parts[i].offs);
		free(wk.parts[i].acked);
	}
	lh_followup_free_all(); /* whose attempt.succeeded was never acknowledged */
	lh_idmap_finish(&wk.seen);
	lh_buf_finish(&wk.scratch);
	wk.call_arena = lh_arena_free(wk.call_arena);
	lh_config_finish(&worker_spec, &wk.cfg);
	lh_log_info("worker.stopped", "bye");
	return 0;
}
