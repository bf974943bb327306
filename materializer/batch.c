#include "batch.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void *xmemdup(const void *p, size_t n)
{
	void *c;
	if (!p)
		return NULL;
	c = malloc(n ? n : 1);
	if (!c)
		abort();
	memcpy(c, p, n);
	return c;
}

void lh_mbatch_init(lh_mbatch_t *b) { memset(b, 0, sizeof(*b)); }

static void entry_free(lh_mentry_t *e)
{
	free(e->json);
	free(e->key);
	free(e->payload);
}

void lh_mbatch_clear(lh_mbatch_t *b)
{
	for (size_t i = 0; i < b->n; i++)
		entry_free(&b->v[i]);
	b->n = b->done = b->nevents = b->bytes = 0;
}

void lh_mbatch_finish(lh_mbatch_t *b)
{
	lh_mbatch_clear(b);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

void lh_mbatch_add(lh_mbatch_t *b, int32_t partition, int64_t offset, char *json, const void *key,
		   size_t key_len, const void *payload, size_t len)
{
	lh_mentry_t *e;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		lh_mentry_t *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			abort();
		b->v = v;
		b->cap = cap;
	}
	e = &b->v[b->n++];
	*e = (lh_mentry_t){.partition = partition, .offset = offset, .json = json,
			   .json_len = json ? strlen(json) : 0, .key = xmemdup(key, key_len),
			   .key_len = key ? key_len : 0, .payload = xmemdup(payload, len),
			   .len = payload ? len : 0};
	if (json)
		b->nevents++;
	b->bytes += e->json_len + e->len + e->key_len;
}

void lh_mbatch_move(lh_mbatch_t *dst, lh_mbatch_t *src)
{
	size_t n = src->n - src->done;
	if (dst->n + n > dst->cap) {
		size_t cap = dst->cap ? dst->cap : 256;
		lh_mentry_t *v;
		while (cap < dst->n + n)
			cap *= 2;
		v = realloc(dst->v, cap * sizeof(*v));
		if (!v)
			abort();
		dst->v = v;
		dst->cap = cap;
	}
	for (size_t i = src->done; i < src->n; i++) {
		const lh_mentry_t *e = &src->v[i];
		dst->v[dst->n++] = *e;
		if (e->json)
			dst->nevents++;
		dst->bytes += e->json_len + e->len + e->key_len;
	}
	for (size_t i = 0; i < src->done; i++)
		entry_free(&src->v[i]);
	src->n = src->done = src->nevents = src->bytes = 0;
}

void lh_mbatch_skip(lh_mbatch_t *b, size_t i)
{
	lh_mentry_t *e = &b->v[i];
	if (!e->json)
		return;
	b->bytes -= e->json_len;
	free(e->json);
	e->json = NULL;
	e->json_len = 0;
	b->nevents--;
}

size_t lh_mbatch_events_json(const lh_mbatch_t *b, size_t lo, size_t hi, lh_buf_t *out)
{
	size_t n = 0;
	lh_buf_reset(out);
	lh_buf_append(out, "[", 1);
	for (size_t i = lo; i < hi && i < b->n; i++) {
		const lh_mentry_t *e = &b->v[i];
		if (!e->json)
			continue;
		if (n++)
			lh_buf_append(out, ",", 1);
		lh_buf_append(out, e->json, e->json_len);
	}
	lh_buf_append(out, "]", 1);
	return n;
}

typedef struct part_next {
	int32_t partition;
	int64_t next;
} part_next_t;

static int cmp_part(const void *a, const void *b)
{
	int32_t x = ((const part_next_t *)a)->partition, y = ((const part_next_t *)b)->partition;
	return x < y ? -1 : x > y;
}

size_t lh_mbatch_offsets_json(const lh_mbatch_t *b, size_t lo, size_t hi, const char *topic,
			      lh_buf_t *out)
{
	part_next_t *p = NULL;
	size_t np = 0, cap = 0;
	if (hi > b->n)
		hi = b->n;
	/* Walk backwards: the first entry seen of a partition is its last in the range. */
	for (size_t i = hi; i-- > lo;) {
		const lh_mentry_t *e = &b->v[i];
		size_t j;
		for (j = 0; j < np && p[j].partition != e->partition; j++)
			;
		if (j < np)
			continue;
		if (np == cap) {
			cap = cap ? cap * 2 : 16;
			p = realloc(p, cap * sizeof(*p));
			if (!p)
				abort();
		}
		p[np++] = (part_next_t){e->partition, e->offset + 1};
	}
	/* Same row order in every transaction: concurrent writers lock offsets rows alike. */
	if (np > 1)
		qsort(p, np, sizeof(*p), cmp_part);
	lh_buf_reset(out);
	lh_buf_append(out, "[", 1);
	for (size_t j = 0; j < np; j++)
		lh_buf_printf(out, "%s{\"topic\":\"%s\",\"partition\":%d,\"next_offset\":%lld}",
			      j ? "," : "", topic, (int)p[j].partition, (long long)p[j].next);
	lh_buf_append(out, "]", 1);
	free(p);
	return np;
}

bool lh_mbatch_has_skipped(const lh_mbatch_t *b, size_t lo, size_t hi)
{
	for (size_t i = lo; i < hi && i < b->n; i++)
		if (!b->v[i].json)
			return true;
	return false;
}

/* The event's JSON form plus where it was read: new string, NULL on out-of-memory. */
char *lh_mbatch_event_json(const lh_event_t *ev, const lh_kafka_msg_t *msg)
{
	json_t *j = lh_event_to_json(ev);
	char *s;
	if (!j)
		return NULL;
	if (json_object_set_new(j, "topic", json_string(msg->topic)) ||
	    json_object_set_new(j, "partition", json_integer(msg->partition)) ||
	    json_object_set_new(j, "offset", json_integer(msg->offset))) {
		json_decref(j);
		return NULL;
	}
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}
