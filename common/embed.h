/* embed.h — the deterministic local hashing embedder (DESIGN.md §5).
 *
 * Used when no /v1/embeddings endpoint is configured. Text is lower-cased and split into ASCII
 * alphanumeric tokens; a short English stop list is dropped. Three kinds of feature are hashed
 * (FNV-1a, 64 bits, with a fixed seed per kind) into LH_EMBED_DIMS signed buckets (bit 63 of the
 * hash chooses the sign, so collisions cancel on average instead of piling up):
 *   - each token, weight 1.0
 *   - each pair of adjacent tokens, weight 0.5
 *   - each character trigram of "^token$" (tokens of 3+ characters), weight 0.4: "auth" and
 *     "authentication", "postgres" and "postgresql" share most of their trigrams
 * The vector is then L2-normalized, so the dot product of two vectors is their cosine. Text with
 * no tokens gives the zero vector. The same text gives the same vector on every machine and every
 * run; changing any constant here changes every stored embedding (re-embed the memories table). */
#ifndef LH_EMBED_H
#define LH_EMBED_H

#include <stddef.h>

#define LH_EMBED_DIMS 512

/* Embed text (may be NULL: the zero vector) into ret_vec[LH_EMBED_DIMS]. */
void lh_embed_text(const char *text, float ret_vec[LH_EMBED_DIMS]);

/* Dot product of two LH_EMBED_DIMS vectors (the cosine when both are normalized). */
double lh_embed_dot(const float *a, const float *b);

/* PostgreSQL real[] literal "{x,y,...}" into out[outsz] (LH_EMBED_LITERAL_MAX is enough).
 * Returns the length written. */
#define LH_EMBED_LITERAL_MAX (LH_EMBED_DIMS * 16 + 4)
size_t lh_embed_to_literal(const float *vec, char *out, size_t outsz);

#endif
