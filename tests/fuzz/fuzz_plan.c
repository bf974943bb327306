/* fuzz_plan.c — fuzz target for the planner-output parser (coordinator/plan_parse.c) and the
 * prompt substitution of ${n} references (worker/prompt.c).
 *
 * Any bytes: when they parse as JSON, lh_plan_parse must return OK or an error with a message,
 * never crash; an accepted plan must satisfy the invariants (task numbers 1..n then the join,
 * every reference and `after` entry pointing backwards). The bytes as text also go through
 * lh_plan_refs and lh_prompt_substitute. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"
#include "replay.h"
#include "state.h"

static const char *tiers[] = {"fast", "standard", "frontier"};
static const lh_state_opts_t opts = {.default_tier = "standard", .tiers = tiers, .ntiers = 3,
				     .max_tasks = 200, .max_attempts = 3,
				     .max_instructions = 65536};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	json_t *j;
	lh_arena_t *arena = lh_arena_new(0);
	lh_error_t err = {0};
	int64_t *refs;
	int nrefs;
	memcpy(text, data, size);
	text[size] = 0;
	j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (j) {
		lh_task_spec_t *specs;
		int n = 0;
		if (lh_plan_parse(&opts, j, arena, &specs, &n, &err) == LH_OK) {
			for (int i = 0; i < n; i++) {
				if (specs[i].task_no != i + 1)
					abort();
				for (size_t k = 0; k < specs[i].refs.n; k++)
					if (specs[i].refs.v[k] >= specs[i].task_no ||
					    specs[i].refs.v[k] < 1)
						abort();
				for (size_t k = 0; k < specs[i].after.n; k++)
					if (specs[i].after.v[k] >= specs[i].task_no)
						abort();
			}
			if (n < 2 || strcmp(specs[n - 1].kind, "join") != 0)
				abort();
		} else if (!err.msg[0])
			abort(); /* an error must say why */
		json_decref(j);
	}
	if (lh_plan_refs(text, NULL, arena, &refs, &nrefs, &err) == LH_OK)
		for (int i = 1; i < nrefs; i++)
			if (refs[i - 1] >= refs[i])
				abort(); /* sorted, unique */
	{
		json_t *inputs = json_pack("{s:s, s:{s:s}}", "1", "one", "2", "field", "two");
		(void)lh_prompt_substitute(text, inputs, arena);
		json_decref(inputs);
	}
	lh_arena_free(arena);
	free(text);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_plan"); }
#endif
