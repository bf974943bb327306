/* fuzz_plan_patch.c — fuzz target for lh_plan_patch (common/plan_patch.c): a person's plan
 * modification checked against the current plan. Input: CURRENT-JSON NUL PATCH-JSON. Whatever
 * the input, no crash; a patch it accepts must give a plan.revised that encodes as an event
 * (every schema bound holds), is version base + 1, numbers the new join above every task it
 * adds, removes the old join, and never names a task twice. Any violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "event.h"
#include "plan_patch.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	json_t *cur, *patch;
	lh_arena_t *arena;
	lh_plan_revised_t *rev = NULL;
	const char *conflict = NULL;
	lh_error_t err = {0};
	if (!nul)
		return 0;
	cur = json_loadb((const char *)data, (size_t)(nul - data), JSON_REJECT_DUPLICATES, NULL);
	patch = json_loadb((const char *)nul + 1, size - (size_t)(nul - data) - 1,
			   JSON_REJECT_DUPLICATES, NULL);
	arena = lh_arena_new(0);
	if (cur && patch) {
		lh_err_t rc = lh_plan_patch(cur, patch, arena, &rev, &conflict, &err);
		if (rc == LH_ERR_CONFLICT && !conflict)
			abort();
		if (rc && !err.msg[0])
			abort();
		if (rc == LH_OK) {
			lh_event_t ev = {0};
			lh_buf_t b;
			int64_t join_no = rev->tasks.v[rev->tasks.n - 1].task_no;
			lh_buf_init(&b);
			ev.v = LH_ENVELOPE_VERSION;
			ev.type = LH_EV_PLAN_REVISED;
			ev.task_no = LH_NO_TASK;
			ev.tenant = "t";
			ev.actor.kind = "gateway";
			ev.actor.id = "fuzz";
			ev.body = rev;
			if (lh_event_encode(&ev, &b, &err)) {
				fprintf(stderr, "fuzz_plan_patch: does not encode: %s\n", err.msg);
				abort();
			}
			lh_buf_finish(&b);
			if (rev->version != rev->base_version + 1 || rev->removed.n == 0 ||
			    strcmp(rev->tasks.v[rev->tasks.n - 1].kind, "join") != 0)
				abort();
			for (size_t i = 0; i < rev->tasks.n; i++) {
				if (rev->tasks.v[i].task_no > join_no)
					abort();
				for (size_t k = i + 1; k < rev->tasks.n; k++)
					if (rev->tasks.v[i].task_no == rev->tasks.v[k].task_no)
						abort();
				for (size_t k = 0; k < rev->removed.n; k++)
					if (rev->tasks.v[i].task_no == rev->removed.v[k])
						abort();
			}
		}
	}
	lh_arena_free(arena);
	json_decref(cur);
	json_decref(patch);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_plan_patch"); }
#endif
