#include "batch.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"

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
	free(e->row.fields);
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

void lh_mbatch_add(lh_mbatch_t *b, int32_t partition, int64_t offset, lh_mrow_t *row,
		   const void *key, size_t key_len, const void *payload, size_t len)
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
	*e = (lh_mentry_t){.partition = partition, .offset = offset, .key = xmemdup(key, key_len),
			   .key_len = key ? key_len : 0, .payload = xmemdup(payload, len),
			   .len = payload ? len : 0};
	if (row && row->fields) {
		e->row = *row;
		b->nevents++;
	}
	if (row)
		*row = (lh_mrow_t){0};
	b->bytes += e->row.len + e->len + e->key_len;
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
		if (e->row.fields)
			dst->nevents++;
		dst->bytes += e->row.len + e->len + e->key_len;
	}
	for (size_t i = 0; i < src->done; i++)
		entry_free(&src->v[i]);
	src->n = src->done = src->nevents = src->bytes = 0;
}

void lh_mbatch_skip(lh_mbatch_t *b, size_t i)
{
	lh_mentry_t *e = &b->v[i];
	if (!e->row.fields)
		return;
	b->bytes -= e->row.len;
	free(e->row.fields);
	e->row = (lh_mrow_t){0};
	b->nevents--;
}

/* --- binary COPY ---------------------------------------------------------------------------- */

static void put_i16(lh_buf_t *o, int16_t v)
{
	uint16_t u = (uint16_t)v;
	unsigned char c[2] = {(unsigned char)(u >> 8), (unsigned char)u};
	lh_buf_append(o, c, 2);
}

static void put_u32(lh_buf_t *o, uint32_t u)
{
	unsigned char c[4] = {(unsigned char)(u >> 24), (unsigned char)(u >> 16),
			      (unsigned char)(u >> 8), (unsigned char)u};
	lh_buf_append(o, c, 4);
}

static void put_null(lh_buf_t *o) { put_u32(o, 0xffffffffu); }

static void put_int4(lh_buf_t *o, int32_t v)
{
	put_u32(o, 4);
	put_u32(o, (uint32_t)v);
}

static void put_int8(lh_buf_t *o, int64_t v)
{
	put_u32(o, 8);
	put_u32(o, (uint32_t)((uint64_t)v >> 32));
	put_u32(o, (uint32_t)(uint64_t)v);
}

static void put_bytes(lh_buf_t *o, const void *p, size_t n)
{
	put_u32(o, (uint32_t)n);
	lh_buf_append(o, p, n);
}

static void put_text(lh_buf_t *o, const char *s)
{
	if (s)
		put_bytes(o, s, strlen(s));
	else
		put_null(o);
}

/* The columns of materialize_copy (sql/queries.sql), in order: the row's fixed ones, then these. */
#define COPY_FIELDS 19

/* The phase of a type: lh_mat_phase in sql/0012. */
static int mat_phase(lh_event_type_t t)
{
	switch (t) {
	case LH_EV_DECISION_LOGGED:
		return 0;
	case LH_EV_ATTEMPT_HEARTBEAT:
		return -1;
	case LH_EV_GOAL_SUBMITTED:
		return 1;
	case LH_EV_PLAN_CREATED:
	case LH_EV_PLAN_REVISED:
		return 2;
	case LH_EV_TASK_DISPATCHED:
		return 3;
	case LH_EV_ATTEMPT_STARTED:
		return 4;
	case LH_EV_ATTEMPT_SUCCEEDED:
	case LH_EV_ATTEMPT_FAILED:
		return 5;
	case LH_EV_PLAN_COMPLETED:
	case LH_EV_PLAN_FAILED:
	case LH_EV_PLAN_CANCELLED:
		return 6;
	default:
		return 9;
	}
}

lh_err_t lh_mbatch_row(const lh_event_t *ev, const char *topic, int32_t partition, int64_t offset,
		       lh_mrow_t *ret, lh_error_t *err)
{
	json_t *body = lh_event_body_to_json(ev);
	char *bj = body ? json_dumps(body, JSON_COMPACT) : NULL;
	lh_buf_t o;
	static const unsigned char jsonb_version = 1;
	int phase = mat_phase(ev->type);
	json_decref(body);
	if (!bj)
		return lh_error_set(err, LH_ERR_SCHEMA, "the event's body has no JSON form");
	lh_buf_init(&o);
	put_bytes(&o, ev->id.b, 16);
	put_bytes(&o, ev->plan_id.b, 16);
	put_text(&o, lh_event_type_name(ev->type));
	if (ev->task_no != LH_NO_TASK)
		put_int8(&o, ev->task_no);
	else
		put_null(&o);
	if (ev->attempt != 0)
		put_int8(&o, ev->attempt);
	else
		put_null(&o);
	put_int8(&o, ev->ts_us);
	put_text(&o, ev->tenant);
	put_text(&o, ev->actor.kind);
	put_text(&o, ev->actor.id);
	if (!lh_id_is_zero(&ev->causation_id))
		put_bytes(&o, ev->causation_id.b, 16);
	else
		put_null(&o);
	put_u32(&o, (uint32_t)(strlen(bj) + 1)); /* jsonb: a version byte, then the text */
	lh_buf_append(&o, &jsonb_version, 1);
	lh_buf_append(&o, bj, strlen(bj));
	free(bj);
	put_text(&o, topic);
	put_int4(&o, partition);
	put_int8(&o, offset);
	if (phase >= 0)
		put_int4(&o, phase);
	else
		put_null(&o);
	*ret = (lh_mrow_t){.id = ev->id, .plan_id = ev->plan_id, .task_no = ev->task_no,
			   .phase = phase};
	ret->fields = lh_buf_steal(&o, &ret->len);
	return LH_OK;
}

/* --- rounds --------------------------------------------------------------------------------- */

typedef struct task_count {
	int64_t task_no;
	int32_t n;
} task_count_t;

typedef struct plan_round {
	bool seen;	   /* an event of phase > 0 came before */
	bool barrier;	   /* ... and it was a plan-level one */
	int32_t rnd;
	ptrdiff_t last5;   /* the round's latest result so far (index into out), -1: none */
	task_count_t *tasks; /* steps so far in this round, per task */
	size_t ntasks, cap;
} plan_round_t;

static void round_close(plan_round_t *p, lh_mround_t *out)
{
	if (p->last5 >= 0)
		out[p->last5].last5 = true;
	p->last5 = -1;
	p->ntasks = 0;
}

static int32_t task_step(plan_round_t *p, int64_t task_no)
{
	for (size_t i = 0; i < p->ntasks; i++)
		if (p->tasks[i].task_no == task_no)
			return ++p->tasks[i].n;
	if (p->ntasks == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->tasks = realloc(p->tasks, p->cap * sizeof(*p->tasks));
		if (!p->tasks)
			abort();
	}
	p->tasks[p->ntasks++] = (task_count_t){task_no, 1};
	return 1;
}

size_t lh_mbatch_rounds(const lh_mbatch_t *b, size_t lo, size_t hi, lh_mround_t *out)
{
	lh_idmap_t ids, plans;
	plan_round_t *pr;
	size_t np = 0, staged = 0;
	void *v;
	if (hi > b->n)
		hi = b->n;
	if (lo >= hi)
		return 0;
	pr = calloc(hi - lo, sizeof(*pr));
	if (!pr)
		abort();
	lh_idmap_init(&ids);
	lh_idmap_init(&plans);
	for (size_t i = lo; i < hi; i++) {
		const lh_mentry_t *e = &b->v[i];
		lh_mround_t *r = &out[i - lo];
		plan_round_t *p;
		bool barrier;
		*r = (lh_mround_t){.staged = false, .rnd = -1, .step = -1, .last5 = false};
		if (!e->row.fields || lh_idmap_get(&ids, &e->row.id))
			continue;
		lh_idmap_put(&ids, &e->row.id, (void *)e);
		r->staged = true;
		staged++;
		if (e->row.phase <= 0)
			continue; /* a decision, or nothing to project: no round */
		if (!(p = lh_idmap_get(&plans, &e->row.plan_id))) {
			p = &pr[np++];
			p->last5 = -1;
			lh_idmap_put(&plans, &e->row.plan_id, p);
		}
		barrier = e->row.phase == 1 || e->row.phase == 2 || e->row.phase == 6 ||
			  e->row.phase == 9;
		if (p->seen && (barrier || p->barrier)) {
			round_close(p, out);
			p->rnd++;
		}
		p->seen = true;
		p->barrier = barrier;
		r->rnd = p->rnd;
		r->step = barrier ? 0 : task_step(p, e->row.task_no);
		if (e->row.phase == 5)
			p->last5 = (ptrdiff_t)(i - lo);
	}
	for (size_t k = 0; (v = lh_idmap_next(&plans, &k));)
		round_close(v, out);
	for (size_t k = 0; k < np; k++)
		free(pr[k].tasks);
	free(pr);
	lh_idmap_finish(&ids);
	lh_idmap_finish(&plans);
	return staged;
}

size_t lh_mbatch_copy(const lh_mbatch_t *b, size_t lo, size_t hi, lh_buf_t *out,
		      size_t *ret_staged)
{
	static const char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
	lh_mround_t *r;
	size_t nev = 0, staged = 0;
	if (hi > b->n)
		hi = b->n;
	lh_buf_reset(out);
	lh_buf_append(out, sig, sizeof(sig));
	put_u32(out, 0); /* flags */
	put_u32(out, 0); /* header extension length */
	if (lo < hi) {
		r = malloc((hi - lo) * sizeof(*r));
		if (!r)
			abort();
		staged = lh_mbatch_rounds(b, lo, hi, r);
		for (size_t i = lo; i < hi; i++) {
			const lh_mentry_t *e = &b->v[i];
			const lh_mround_t *x = &r[i - lo];
			if (e->row.fields)
				nev++;
			if (!x->staged)
				continue;
			put_i16(out, COPY_FIELDS);
			lh_buf_append(out, e->row.fields, e->row.len);
			if (x->rnd >= 0)
				put_int4(out, x->rnd);
			else
				put_null(out);
			if (x->step >= 0)
				put_int4(out, x->step);
			else
				put_null(out);
			put_u32(out, 1);
			lh_buf_append(out, x->last5 ? "\1" : "\0", 1);
			put_int4(out, (int32_t)(i - lo + 1));
		}
		free(r);
	}
	put_i16(out, -1);
	if (ret_staged)
		*ret_staged = staged;
	return nev;
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
		if (!b->v[i].row.fields)
			return true;
	return false;
}
