/* replay.h — the main() of every fuzz target when not built for libFuzzer: feed each file of the
 * directories (or files) named on the command line to LLVMFuzzerTestOneInput, so a target's seed
 * corpus runs as an ordinary unit test. Returns 0, or 1 when a path cannot be read or no input
 * was found (an empty corpus proves nothing). */
#ifndef LH_FUZZ_REPLAY_H
#define LH_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int lh_fuzz_replay_main(int argc, char **argv, const char *name);

#endif
