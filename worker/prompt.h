/* prompt.h — turning a work order into an LLM conversation, and the answer into a task output.
 *
 * Each task kind has its system prompt: the planner returns LLMCompiler-style JSON, the joiner a
 * decision, an act task its result. ${n} and ${n.field} in instructions are replaced by the
 * outputs the coordinator put in the order's inputs. Pure functions: no I/O. */
#ifndef LH_WORKER_PROMPT_H
#define LH_WORKER_PROMPT_H

#include <jansson.h>

#include "arena.h"
#include "event.h"
#include "llm.h"

#define LH_PROMPT_MAX_INPUT_BYTES (256 * 1024) /* one input, as put into a prompt */

/* Fill ret_msgs (2 messages: system, user; strings in arena) for the order. */
void lh_prompt_build(const lh_task_order_t *order, const char *tiers, lh_arena_t *arena,
		     lh_llm_message_t ret_msgs[2]);

/* Replace ${n} / ${n.field} in text by the inputs (object "n" -> output). New string in arena.
 * A reference without an input is left as it is. */
char *lh_prompt_substitute(const char *text, const json_t *inputs, lh_arena_t *arena);

/* The task output from the model's text answer: for plan, join and replan tasks the answer must
 * be a JSON object, for kind "json" (a task with an output schema) any JSON value (a ```json
 * fence around it is tolerated) — LH_ERR_INVALID with the parse error otherwise; for other kinds
 * the text itself (a JSON string). *ret_out is a new reference. */
lh_err_t lh_prompt_output(const char *kind, const char *content, json_t **ret_out, lh_error_t *err);

#endif
