/* fuzz_extract.c — fuzz target for lh_extract_parse (a model's {"facts": [...]} answer) and
 * lh_extract_prompt.
 *
 * Accepted answers hold at most LH_EXTRACT_MAX_FACTS facts, each non-empty, without leading or
 * trailing white space, at most LH_EXTRACT_MAX_FACT bytes; refusals are LH_ERR_DECODE with a
 * message and leave the outputs untouched. The prompt of the same bytes (cut at a NUL) never
 * shows more than the bound of each part. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **f = (char **)(uintptr_t)0x1;
	size_t n = 12345;
	lh_error_t err = {0};
	lh_err_t rc = lh_extract_parse((const char *)data, size, &f, &n, &err);
	if (rc != LH_OK) {
		if (rc != LH_ERR_DECODE || !err.msg[0] || f != (char **)(uintptr_t)0x1 || n != 12345)
			abort();
	} else {
		if (n > LH_EXTRACT_MAX_FACTS || (n == 0) != (f == NULL))
			abort();
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(f[i]);
			if (l == 0 || l > LH_EXTRACT_MAX_FACT || isspace((unsigned char)f[i][0]) ||
			    isspace((unsigned char)f[i][l - 1]))
				abort();
		}
		lh_extract_facts_free(f, n);
	}
	{
		char *copy = malloc(size + 1), *p;
		size_t bound = size % 64 + 1;
		memcpy(copy, data, size);
		copy[size] = '\0';
		p = lh_extract_prompt(copy, copy, (long)bound);
		if (!p || strlen(p) > 2 * bound + 128)
			abort();
		free(p);
		free(copy);
	}
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_extract"); }
#endif
