/* fuzz_reconcile.c — fuzz target for lh_reconcile_parse (a model's ADD / UPDATE / DELETE / NONE
 * answer) and lh_reconcile_filter.
 *
 * The first byte chooses the number of facts (1..8) and the second the number of memories
 * (0..7); the rest is the answer. Accepted answers hold exactly one decision per fact, in fact
 * order, every memory index in range, UPDATE and DELETE always with a memory and never two on one
 * memory, text only on UPDATE; refusals are LH_ERR_DECODE with a message and write nothing. */
#include <stdlib.h>
#include <string.h>

#include "reconcile.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t nf = size > 0 ? 1 + data[0] % 8 : 1, nm = size > 1 ? data[1] % 8 : 0;
	const char *body = size > 2 ? (const char *)data + 2 : "";
	size_t len = size > 2 ? size - 2 : 0;
	lh_reconcile_decision_t *d = (lh_reconcile_decision_t *)(uintptr_t)0x1;
	lh_error_t err = {0};
	lh_err_t rc = lh_reconcile_parse(body, len, nf, nm, &d, &err);
	if (rc != LH_OK) {
		if (rc != LH_ERR_DECODE || !err.msg[0] || d != (lh_reconcile_decision_t *)(uintptr_t)0x1)
			abort();
	} else {
		bool used[8] = {false};
		for (size_t i = 0; i < nf; i++) {
			if (d[i].fact != (int)i || d[i].op > LH_RECONCILE_NONE ||
			    d[i].memory < -1 || d[i].memory >= (int)nm)
				abort();
			if (d[i].op == LH_RECONCILE_UPDATE || d[i].op == LH_RECONCILE_DELETE) {
				if (d[i].memory < 0 || used[d[i].memory])
					abort();
				used[d[i].memory] = true;
			}
			if (d[i].text && (d[i].op != LH_RECONCILE_UPDATE || !d[i].text[0]))
				abort();
			if (d[i].op == LH_RECONCILE_ADD && d[i].memory != -1)
				abort();
		}
		lh_reconcile_decisions_free(d, nf);
	}
	/* the filter on the same bytes cut into NUL-free pieces never crashes and counts right */
	{
		char *copy = malloc(len + 1), *pieces[4];
		int keep[4];
		size_t np = 0, kept, k2 = 0;
		memcpy(copy, body, len);
		copy[len] = 0;
		for (char *p = copy; np < 4;) {
			pieces[np++] = p;
			p = strchr(p, '|');
			if (!p)
				break;
			*p++ = 0;
		}
		kept = lh_reconcile_filter((const char *const *)pieces, np > 1 ? np - 1 : np,
					   pieces[0], (const char *const *)pieces + 1,
					   np > 1 ? 1 : 0, keep);
		for (size_t i = 0; i < (np > 1 ? np - 1 : np); i++)
			k2 += keep[i] ? 1 : 0;
		if (k2 != kept)
			abort();
		free(copy);
	}
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_reconcile"); }
#endif
