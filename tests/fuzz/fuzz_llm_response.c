/* fuzz_llm_response.c — fuzz target for the model answer parsers: lh_llm_openai_parse_response,
 * lh_llm_anthropic_parse_response (with and without a response schema's answer tool) and both
 * error classifiers (lh_llm_openai_map_error, lh_llm_anthropic_map_error).
 *
 * Any bytes: a parser returns LH_OK with a response whose every tool call has an id, a name and
 * its arguments' text, and which frees cleanly; or LH_ERR_DECODE with class MALFORMED, a
 * message and the response untouched. The classifiers, given the bytes as an error body and a
 * status taken from the first bytes, always produce a known class and a message. */
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "replay.h"

static void check_resp(lh_err_t rc, lh_llm_resp_t *r, const lh_llm_error_t *e)
{
	if (rc != LH_OK) {
		if (rc != LH_ERR_DECODE || e->klass != LH_LLM_ERR_MALFORMED || !e->error.msg[0] ||
		    ((unsigned char *)r)[0] != 0xa5)
			abort();
		return;
	}
	if ((int)r->finish < 0 || r->finish > LH_LLM_FINISH_OTHER)
		abort();
	if (r->n_tool_calls && !r->tool_calls)
		abort();
	for (size_t i = 0; i < r->n_tool_calls; i++) {
		const lh_llm_tool_call_t *tc = &r->tool_calls[i];
		if (!tc->id || !tc->name || !tc->arguments_json)
			abort();
	}
	if (r->finish == LH_LLM_FINISH_REFUSAL && !r->refusal && r->content)
		abort();
	lh_llm_resp_finish(r);
}

static void check_error(const lh_llm_error_t *e, long status)
{
	if ((int)e->klass <= LH_LLM_ERR_NONE || e->klass >= LH_LLM_ERR__COUNT ||
	    e->http_status != status || !e->error.msg[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	lh_llm_resp_t r;
	lh_llm_error_t e;
	long status = size >= 2 ? 100 + (long)((data[0] << 8 | data[1]) % 500) : 500;
	const char *retry = size >= 3 ? (data[2] & 1 ? "true" : "false") : NULL;

	memset(&r, 0xa5, sizeof(r));
	check_resp(lh_llm_openai_parse_response(body, size, &r, &e), &r, &e);
	memset(&r, 0xa5, sizeof(r));
	check_resp(lh_llm_anthropic_parse_response(body, size, NULL, &r, &e), &r, &e);
	memset(&r, 0xa5, sizeof(r));
	check_resp(lh_llm_anthropic_parse_response(body, size, "answer", &r, &e), &r, &e);

	lh_llm_openai_map_error(status, body, size, retry, -1, &e);
	check_error(&e, status);
	lh_llm_anthropic_map_error(status, body, size, retry, 1000, &e);
	check_error(&e, status);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_llm_response"); }
#endif
