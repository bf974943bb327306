/* fuzz_snapshot.c — fuzz target for plan snapshots (coordinator/snapshot.c), which a recovering
 * coordinator reads from lh.snapshots: any bytes that parse as JSON go to lh_snapshot_restore,
 * which must accept or refuse with a reason, never crash; an accepted plan must snapshot again
 * and restore to the same state hash. */
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "state.h"

static const char *tiers[] = {"fast", "standard", "frontier"};
static const lh_state_opts_t opts = {.default_tier = "standard", .tiers = tiers, .ntiers = 3,
				     .max_tasks = 200, .max_attempts = 3,
				     .max_instructions = 65536};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	lh_state_t st, again;
	lh_error_t err = {0};
	lh_cplan_t *p = NULL;
	if (!j)
		return 0;
	lh_state_init(&st, &opts);
	if (lh_snapshot_restore(&st, j, 0, &p, &err) == LH_OK) {
		json_t *snap = lh_snapshot_plan(p);
		char h1[65], h2[65];
		lh_state_init(&again, &opts);
		if (lh_snapshot_restore(&again, snap, 0, NULL, &err) != LH_OK)
			abort(); /* what we wrote we must read */
		lh_state_hash(&st, h1);
		lh_state_hash(&again, h2);
		if (strcmp(h1, h2) != 0)
			abort();
		json_decref(snap);
		lh_state_finish(&again);
	} else if (!err.msg[0])
		abort();
	lh_state_finish(&st);
	json_decref(j);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_snapshot"); }
#endif
