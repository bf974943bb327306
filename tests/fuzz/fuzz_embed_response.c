/* fuzz_embed_response.c — fuzz target for lh_embedder_parse_response (an /v1/embeddings answer)
 * lh_embedder_parse_literal (a real[] read back from the cache) and lh_embedder_parse_array_bin
 * (candidate vectors in array_send's binary form, as a binary-format result holds them).
 *
 * The first byte chooses the number of inputs (1..4) and the second the expected dimensions
 * (0 = any, else 1..8); the rest is the body. Accepted answers give n unit vectors of the chosen
 * (or a consistent) length; refusals are LH_ERR_DECODE with a message and write nothing. A
 * literal either parses into exactly dims finite numbers or is refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "embedder.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size > 0 ? 1 + data[0] % 4 : 1;
	int want = size > 1 ? data[1] % 9 : 0;
	const char *body = size > 2 ? (const char *)data + 2 : "";
	size_t len = size > 2 ? size - 2 : 0;
	float *v = NULL;
	int dims = -1;
	lh_error_t err = {0};
	lh_err_t rc = lh_embedder_parse_response(body, len, n, want, &v, &dims, &err);
	if (rc != LH_OK) {
		if (rc != LH_ERR_DECODE || !err.msg[0] || v || dims != -1)
			abort();
	} else {
		if (dims < 1 || dims > LH_EMBEDDER_MAX_DIMS || (want && dims != want))
			abort();
		for (size_t i = 0; i < n; i++) {
			double s = 0;
			for (int j = 0; j < dims; j++)
				s += (double)v[i * (size_t)dims + j] * v[i * (size_t)dims + j];
			if (!(fabs(s - 1) < 1e-3))
				abort();
		}
		free(v);
	}
	{
		char *lit = malloc(len + 1);
		float out[8];
		memcpy(lit, body, len);
		lit[len] = 0;
		if (want > 0 && lh_embedder_parse_literal(lit, want, out) == LH_OK)
			for (int j = 0; j < want; j++)
				if (!isfinite(out[j]))
					abort();
		if (want > 0 && lh_embedder_parse_array_bin(lit, len, want, out) == LH_OK)
			for (int j = 0; j < want; j++)
				if (!isfinite(out[j]) || fabsf(out[j]) > 1e30f)
					abort();
		free(lit);
	}
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_embed_response"); }
#endif
