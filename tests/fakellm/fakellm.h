/* fakellm.h — what fakellm.c (the server, the script) and answers.c (the response bodies)
 * share. Test code, one process, one thread. */
#ifndef LH_FAKELLM_H
#define LH_FAKELLM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

enum action {
	ACT_ANSWER = 0,
	ACT_HANG,
	ACT_TRUNCATE,
	ACT_MALFORMED,
	ACT_BAD_TOOL_ARGS, /* a call to the request's first tool with broken arguments */
	ACT_WRONG_SCHEMA   /* a JSON answer that fits no task schema */
};

enum api { API_OPENAI = 0, API_ANTHROPIC };

/* valid JSON, an object, but neither a plan, a join decision nor any object with required
 * members: what a model that ignored the schema might say */
#define WRONG_SCHEMA_ANSWER "{\"unexpected\":true,\"note\":\"this answer ignores the schema\"}"

typedef struct rule {
	long from, to; /* request numbers (1-based, inclusive); 0 = any */
	char *match;   /* substring of a user message; NULL = any */
	char *match_system; /* substring of the system text; NULL = any */
	long times;    /* how many times the rule may fire; -1 = always */
	long hits;
	int status;      /* 0 = 200 for answers, an error otherwise */
	json_t *headers; /* {"name": "value"} added to the response */
	char *body;      /* raw body replacing the generated one */
	enum action action;
	char *content; /* fixed answer text */
	char *refusal;
	json_t *tool_calls; /* [{"id"?, "name", "arguments": object or string}] */
	char *finish_reason;
	long latency_ms; /* -1 = the server's */
} rule_t;

/* One model request, parsed the same way for both APIs. */
typedef struct ask {
	enum api api;
	long n;              /* request number (1-based, both APIs) */
	const char *model;   /* borrowed from the request body */
	char *system;        /* the first system text, or NULL */
	char *last_user;     /* the last user message's text, or NULL */
	lh_buf_t users;      /* every user text, for `match` */
	size_t prompt_bytes; /* all message texts */
	size_t n_messages;
	const char *forced_tool; /* Anthropic tool_choice {type: tool, name} */
	const char *tool_name;   /* the request's first tool, for bad_tool_args */
	json_t *tool_schema;     /* its parameters / input_schema (borrowed) */
} ask_t;

/* OpenAI-style {"error": {message, type, param, code}} (new reference) */
json_t *fake_error_body(const char *message, const char *type, const char *code);
/* Anthropic-style {"type": "error", "error": {type, message}} (new reference) */
json_t *fake_anthropic_error_body(const char *type, const char *message);
/* The body of a scripted non-2xx status without its own body (new reference). */
json_t *fake_default_error(enum api api, int status);
/* The 200 answer to a, shaped by rule r (may be NULL); new string or NULL. */
char *fake_completion_body(const ask_t *a, rule_t *r);
char *fake_message_body(const ask_t *a, rule_t *r);

#endif
