/* test_memory_embed — common/embed.c (the hashing embedder) and the full-text query builder of
 * common/memory.c. No database. */
#include <math.h>
#include <stdlib.h>

#include "embed.h"
#include "memory.h"
#include "t.h"

static void deterministic(void)
{
	float a[LH_EMBED_DIMS], b[LH_EMBED_DIMS];
	lh_embed_text("The billing service listens on port 8000.", a);
	lh_embed_text("The billing service listens on port 8000.", b);
	T_CHECK(memcmp(a, b, sizeof(a)) == 0);
	/* case and punctuation do not matter */
	lh_embed_text("the BILLING service, listens on port 8000", b);
	T_CHECK(memcmp(a, b, sizeof(a)) == 0);
	/* a fixed value: the hash, buckets and weights are part of the stored data's format */
	lh_embed_text("billing", a);
	int nonzero = 0;
	for (int i = 0; i < LH_EMBED_DIMS; i++)
		nonzero += a[i] != 0;
	T_EQ_INT(nonzero, 8); /* one word + ^bi bil ill lli lin ing ng$ */
}

static void normalized(void)
{
	float a[LH_EMBED_DIMS];
	lh_embed_text("Production deploys of the checkout service happen on Tuesday mornings.", a);
	T_CHECK(fabs(lh_embed_dot(a, a) - 1.0) < 1e-5);
	lh_embed_text("", a);
	T_CHECK(lh_embed_dot(a, a) == 0);
	lh_embed_text("the of and", a); /* stop words only */
	T_CHECK(lh_embed_dot(a, a) == 0);
	lh_embed_text(NULL, a);
	T_CHECK(lh_embed_dot(a, a) == 0);
}

static void similar_closer(void)
{
	float fact[LH_EMBED_DIMS], para[LH_EMBED_DIMS], other[LH_EMBED_DIMS], nick[LH_EMBED_DIMS];
	lh_embed_text("The authentication service stores its records in PostgreSQL.", fact);
	lh_embed_text("Where does the authentication service keep its records?", para);
	lh_embed_text("Pages for the shipping team go to a Slack channel.", other);
	lh_embed_text("auth postgres", nick);
	double sp = lh_embed_dot(fact, para), so = lh_embed_dot(fact, other);
	T_CHECK(sp > so + 0.2);
	/* character trigrams: a nickname still lands near the fact */
	T_CHECK(lh_embed_dot(fact, nick) > 0.2);
	T_CHECK(lh_embed_dot(fact, nick) > lh_embed_dot(other, nick) + 0.1);
}

static void literal(void)
{
	float a[LH_EMBED_DIMS];
	char lit[LH_EMBED_LITERAL_MAX];
	lh_embed_text("a long enough sentence with several words in it", a);
	size_t n = lh_embed_to_literal(a, lit, sizeof(lit));
	T_CHECK(n > 2 && lit[0] == '{' && lit[n - 1] == '}' && strlen(lit) == n);
	int commas = 0;
	for (size_t i = 0; i < n; i++)
		commas += lit[i] == ',';
	T_EQ_INT(commas, LH_EMBED_DIMS - 1);
	/* parses back to the same values (to float precision) */
	char *p = lit + 1;
	for (int i = 0; i < LH_EMBED_DIMS; i++) {
		float v = strtof(p, &p);
		T_CHECK(v == a[i]);
		p++;
	}
}

static void fulltext_query(void)
{
	char *q = lh_memory_fulltext_query("Who owns -billing \"or\" checkout? and (auth)");
	T_EQ_STR(q, "Who or owns or billing or checkout or auth");
	free(q);
	q = lh_memory_fulltext_query("?!");
	T_EQ_STR(q, "");
	free(q);
}

int main(void)
{
	T_RUN(deterministic);
	T_RUN(normalized);
	T_RUN(similar_closer);
	T_RUN(literal);
	T_RUN(fulltext_query);
	return t_done();
}
