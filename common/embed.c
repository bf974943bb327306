/* embed.c — deterministic hashing embedder; see embed.h for the features and their weights. */
#include "embed.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EMBED_TOKEN_MAX 64
#define EMBED_SEED_WORD UINT64_C(0x9e3779b97f4a7c15)
#define EMBED_SEED_PAIR UINT64_C(0xc2b2ae3d27d4eb4f)
#define EMBED_SEED_TRI UINT64_C(0x165667b19e3779f9)

static const char *const embed_stop[] = {
	"a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "did", "for", "from", "has",
	"have", "how", "i", "in", "into", "is", "it", "its", "of", "on", "or", "our", "that", "the",
	"their", "there", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who",
	"whom", "why", "will", "with", "you", "your", "can", "should", "would", "us", "any",
};

static bool embed_is_stop(const char *tok)
{
	for (size_t i = 0; i < sizeof(embed_stop) / sizeof(embed_stop[0]); i++)
		if (strcmp(tok, embed_stop[i]) == 0)
			return true;
	return false;
}

static uint64_t embed_hash(uint64_t seed, const char *a, size_t alen, const char *b, size_t blen)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ seed;
	for (size_t i = 0; i < alen; i++) {
		h ^= (unsigned char)a[i];
		h *= UINT64_C(0x100000001b3);
	}
	h ^= 0x1f; /* separator, so ("ab","c") and ("a","bc") differ */
	h *= UINT64_C(0x100000001b3);
	for (size_t i = 0; i < blen; i++) {
		h ^= (unsigned char)b[i];
		h *= UINT64_C(0x100000001b3);
	}
	/* final avalanche (splitmix64) so low bits depend on every byte */
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	return h;
}

static void embed_add(float *vec, uint64_t h, float w)
{
	vec[h % LH_EMBED_DIMS] += (h >> 63) ? -w : w;
}

void lh_embed_text(const char *text, float ret_vec[LH_EMBED_DIMS])
{
	char prev[EMBED_TOKEN_MAX + 1] = "", tok[EMBED_TOKEN_MAX + 1];
	size_t prevlen = 0;
	const char *p = text ? text : "";
	double norm = 0;

	memset(ret_vec, 0, sizeof(float) * LH_EMBED_DIMS);
	while (*p) {
		size_t n = 0;
		while (*p && !isalnum((unsigned char)*p))
			p++;
		if (!*p)
			break;
		while (*p && isalnum((unsigned char)*p)) {
			if (n < EMBED_TOKEN_MAX)
				tok[n++] = (char)tolower((unsigned char)*p);
			p++;
		}
		tok[n] = 0;
		if (embed_is_stop(tok))
			continue;
		embed_add(ret_vec, embed_hash(EMBED_SEED_WORD, tok, n, "", 0), 1.0f);
		if (prevlen)
			embed_add(ret_vec, embed_hash(EMBED_SEED_PAIR, prev, prevlen, tok, n), 0.5f);
		if (n >= 3) {
			char padded[EMBED_TOKEN_MAX + 3];
			padded[0] = '^';
			memcpy(padded + 1, tok, n);
			padded[n + 1] = '$';
			for (size_t i = 0; i + 3 <= n + 2; i++)
				embed_add(ret_vec, embed_hash(EMBED_SEED_TRI, padded + i, 3, "", 0),
					  0.4f);
		}
		memcpy(prev, tok, n + 1);
		prevlen = n;
	}
	for (int i = 0; i < LH_EMBED_DIMS; i++)
		norm += (double)ret_vec[i] * ret_vec[i];
	if (norm > 0) {
		norm = sqrt(norm);
		for (int i = 0; i < LH_EMBED_DIMS; i++)
			ret_vec[i] = (float)(ret_vec[i] / norm);
	}
}

double lh_embed_dot(const float *a, const float *b)
{
	double s = 0;
	for (int i = 0; i < LH_EMBED_DIMS; i++)
		s += (double)a[i] * b[i];
	return s;
}

size_t lh_embed_to_literal(const float *vec, char *out, size_t outsz)
{
	size_t len = 0;
	if (outsz == 0)
		return 0;
	out[0] = 0;
	for (int i = 0; i < LH_EMBED_DIMS; i++) {
		int n = snprintf(out + len, outsz - len, "%s%.9g", i ? "," : "{", (double)vec[i]);
		if (n < 0 || (size_t)n >= outsz - len)
			return len;
		len += (size_t)n;
	}
	if (len + 2 <= outsz) {
		out[len++] = '}';
		out[len] = 0;
	}
	return len;
}
