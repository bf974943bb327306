/* summarize.c — rolling-summary orders and their database half (summarize.h). The database
 * functions run on the memory tools' thread (lh_memtools_run); the rest on the loop thread. */
#include "summarize.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "summary_store.h"

static char *dup0(const char *s)
{
	char *r = s ? strdup(s) : NULL;
	if (s && !r)
		abort();
	return r;
}

/* ---- the summarize order, as a follow-up of the source attempt --------------------------- */

lh_followup_t *lh_summarize_followup(lh_followup_t *chain, const lh_event_t *order,
				     const char *tier, const char *topic)
{
	return lh_followup_add(chain, order, "summarize",
			       lh_summarize_order_id(&order->plan_id, (long long)order->task_no,
						     (long long)order->attempt),
			       tier, topic, "Fold the plan's new events into its rolling summary.",
			       json_pack("{s:s}", "subject", ""));
}

bool lh_summarize_is_order(const lh_event_t *order)
{
	const lh_task_order_t *o = order->body;
	return o && o->kind && !strcmp(o->kind, "summarize") &&
	       json_is_string(json_object_get(o->inputs, "subject"));
}

/* ---- a summarize order's work ----------------------------------------------------------- */

struct lh_summarize_job {
	void *owner;
	lh_summarize_limits_t lim;
	char plan[LH_UUID_STR_LEN + 1];
	char source[LH_ID_HEX_LEN + 1]; /* the source's attempt.succeeded */
	char order[LH_ID_HEX_LEN + 1];	/* this order: the stored version's provenance */
	bool has_source, wait;
	char *goal;
	lh_summarize_state_t state;
	lh_summary_t s;
	bool has_s;
	int version; /* loaded (0: none yet) */
	int stored;  /* stored (0: none) */
	int64_t from, to, nevents;
	char *span_text; /* what the model sees (each event cut) */
	char *scan_text; /* the span's events whole: scanned for artifacts by the merge */
};

lh_summarize_job_t *lh_summarize_job_new(const lh_event_t *order,
					 const lh_summarize_limits_t *limits, void *owner)
{
	const lh_task_order_t *o = order->body;
	lh_summarize_job_t *j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	j->owner = owner;
	j->lim = *limits;
	if (j->lim.max_events < 1)
		j->lim.max_events = 1;
	if (j->lim.max_bytes < 1)
		j->lim.max_bytes = 1;
	lh_uuid_fmt(&order->plan_id, j->plan);
	lh_id_hex(&order->causation_id, j->source);
	lh_id_hex(&order->id, j->order);
	j->has_source = j->wait = !lh_id_is_zero(&order->causation_id);
	j->goal = dup0(o && o->goal ? o->goal : "");
	return j;
}

void *lh_summarize_job_owner(const lh_summarize_job_t *j) { return j->owner; }

static void job_reset(lh_summarize_job_t *j)
{
	if (j->has_s)
		lh_summary_finish(&j->s);
	j->has_s = false;
	free(j->span_text);
	free(j->scan_text);
	j->span_text = j->scan_text = NULL;
	j->version = 0;
	j->from = j->to = j->nevents = 0;
	j->state = LH_SUMMARIZE_NOTHING;
}

void lh_summarize_job_free(lh_summarize_job_t *j)
{
	if (!j)
		return;
	job_reset(j);
	free(j->goal);
	free(j);
}

void lh_summarize_job_stop_waiting(lh_summarize_job_t *j) { j->wait = false; }

lh_summarize_state_t lh_summarize_job_state(const lh_summarize_job_t *j) { return j->state; }

void lh_summarize_job_span(const lh_summarize_job_t *j, int64_t *ret_from, int64_t *ret_to,
			   int64_t *ret_events, int *ret_version)
{
	*ret_from = j->from;
	*ret_to = j->to;
	*ret_events = j->nevents;
	*ret_version = j->stored;
}

/* Is the source event materialized yet? (The span would otherwise end before it.) */
static lh_err_t source_in(lh_pg_t *pg, lh_summarize_job_t *j, bool *ret_in, lh_error_t *err)
{
	lh_pg_res_t *res = NULL;
	const char *p[] = {j->source};
	lh_err_t rc = lh_pg_query(pg, "summary_event_offset", 1, p, NULL, NULL, &res, err);
	if (rc == LH_OK)
		*ret_in = lh_pg_nrows(res) > 0;
	lh_pg_res_free(res);
	return rc;
}

lh_err_t lh_summarize_job_load(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_summarize_job_t *j = job;
	lh_pg_res_t *res = NULL;
	char anchor[24], limit[24];
	lh_buf_t span, scan, one;
	lh_err_t rc;
	int nrows;
	(void)emb;

	job_reset(j);
	if (j->wait) {
		bool in = false;
		if ((rc = source_in(pg, j, &in, err)) != LH_OK)
			return rc;
		if (!in) {
			j->state = LH_SUMMARIZE_WAIT;
			return LH_OK;
		}
	}
	rc = lh_summary_load(pg, j->plan, "", &j->s, &j->version, err);
	if (rc == LH_ERR_NOT_FOUND) {
		lh_summary_init(&j->s, 0, j->goal); /* the first span starts at the plan's start */
		j->version = 0;
	} else if (rc != LH_OK) {
		return rc;
	}
	j->has_s = true;
	snprintf(anchor, sizeof(anchor), "%" PRId64, j->s.anchor);
	snprintf(limit, sizeof(limit), "%" PRId64, j->lim.max_events);
	{
		const char *p[] = {j->plan, anchor, lh_summarize_relevant_types(), limit};
		if ((rc = lh_pg_query(pg, "summary_span_events", 4, p, NULL, NULL, &res, err)))
			return rc;
	}
	lh_buf_init(&span);
	lh_buf_init(&scan);
	lh_buf_init(&one);
	nrows = lh_pg_nrows(res);
	for (int r = 0; r < nrows; r++) {
		int64_t off = lh_pg_get_i64(res, r, 0), task_no = lh_pg_get_i64(res, r, 2),
			att = lh_pg_get_i64(res, r, 3);
		const char *type = lh_pg_get(res, r, 1);
		const char *kind = lh_pg_isnull(res, r, 5) ? NULL : lh_pg_get(res, r, 5);
		const char *instr = lh_pg_isnull(res, r, 6) ? NULL : lh_pg_get(res, r, 6);
		json_t *body = json_loads(lh_pg_get(res, r, 4), 0, NULL);
		if (!body)
			body = json_object();
		if (!strcmp(type, "attempt.succeeded") &&
		    json_string_value(json_object_get(body, "output_ref"))) {
			lh_error_t berr = {0};
			/* a large output lives in `blobs`; gone, the ref is all the span says */
			if (lh_blob_resolve_output(pg, body, &berr) != LH_OK)
				json_object_set_new(body, "output",
						    json_sprintf("[output in blob %s: %s]",
								 json_string_value(json_object_get(
									 body, "output_ref")),
								 berr.msg));
		}
		lh_buf_reset(&one);
		if (!lh_summarize_render_event(&one, off, type, task_no, att, body, kind, instr, 0)) {
			json_decref(body);
			continue;
		}
		/* at least one event; then only while the span's text stays within the bound */
		if (j->nevents > 0 && scan.len + one.len > (size_t)j->lim.max_bytes) {
			json_decref(body);
			break;
		}
		lh_buf_append(&scan, one.data, one.len);
		lh_summarize_render_event(&span, off, type, task_no, att, body, kind, instr,
					  LH_SUMMARIZE_MAX_EVENT_TEXT);
		json_decref(body);
		if (j->nevents++ == 0)
			j->from = j->s.anchor;
		j->to = off + 1;
	}
	lh_pg_res_free(res);
	lh_buf_finish(&one);
	lh_buf_append(&span, "", 1);
	lh_buf_append(&scan, "", 1);
	j->span_text = lh_buf_steal(&span, NULL);
	j->scan_text = lh_buf_steal(&scan, NULL);
	/* too few new events (and the query was not cut by the bound): wait for more */
	if (j->nevents == 0 || (j->nevents < j->lim.min_events && nrows < j->lim.max_events)) {
		j->state = LH_SUMMARIZE_NOTHING;
		return LH_OK;
	}
	j->state = LH_SUMMARIZE_CALL;
	return LH_OK;
}

char *lh_summarize_job_prompt(const lh_summarize_job_t *j)
{
	return lh_summarize_prompt(&j->s, j->from, j->to, j->span_text, (size_t)j->lim.max_bytes);
}

lh_err_t lh_summarize_job_answer(lh_summarize_job_t *j, const char *answer, lh_error_t *err)
{
	lh_summarize_answer_t a;
	const char *sections[LH_SUMMARY__COUNT];
	lh_err_t rc;
	if (j->state != LH_SUMMARIZE_CALL || !j->has_s)
		return lh_error_set(err, LH_ERR_INVALID, "no span to summarize");
	if ((rc = lh_summarize_parse(answer, answer ? strlen(answer) : 0, &a, err)) != LH_OK)
		return rc;
	lh_summarize_answer_sections(&a, sections);
	rc = lh_summary_merge(&j->s, j->from, j->to, sections, j->scan_text, err);
	lh_summarize_answer_finish(&a);
	if (rc == LH_OK) {
		lh_summarize_keep_tail(&j->s.play_by_play, LH_SUMMARIZE_MAX_KEPT);
		lh_summarize_keep_tail(&j->s.breadcrumbs, LH_SUMMARIZE_MAX_KEPT);
	}
	return rc;
}

lh_err_t lh_summarize_job_store(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_summarize_job_t *j = job;
	lh_err_t rc;
	(void)emb;
	if (!j->has_s || j->s.anchor != j->to)
		return lh_error_set(err, LH_ERR_INVALID, "no merged span to store");
	rc = lh_summary_store(pg, j->plan, "", &j->s, j->version, j->order, &j->stored, err);
	if (rc == LH_ERR_CONFLICT) {
		j->state = LH_SUMMARIZE_CONFLICT;
		j->stored = 0;
		return LH_OK;
	}
	if (rc == LH_OK)
		j->state = LH_SUMMARIZE_STORED;
	return rc;
}

const lh_summary_t *lh_summarize_job_summary(const lh_summarize_job_t *j)
{
	return j->has_s ? &j->s : NULL;
}

void lh_summarize_job_event(const lh_summarize_job_t *j, const lh_event_t *order,
			    const char *worker_id, lh_event_t *ret, lh_summary_updated_t *ret_body)
{
	memset(ret_body, 0, sizeof(*ret_body));
	ret_body->subject = "";
	ret_body->version = j->stored;
	ret_body->anchor = j->s.anchor;
	ret_body->span_from = j->from;
	ret_body->span_events = j->nevents;
	ret_body->n_spans = j->s.n_spans;
	ret_body->artifacts = (int64_t)j->s.n_artifacts;
	ret_body->worker_id = worker_id;
	memset(ret, 0, sizeof(*ret));
	ret->v = LH_ENVELOPE_VERSION;
	ret->type = LH_EV_SUMMARY_UPDATED;
	ret->id = lh_event_id_derivef(&order->plan_id, "summary.updated", 0, "s:v%d", j->stored);
	ret->plan_id = order->plan_id;
	ret->task_no = order->task_no;
	ret->attempt = order->attempt;
	ret->ts_us = lh_now_us();
	ret->tenant = order->tenant;
	ret->actor.kind = "worker";
	ret->actor.id = worker_id;
	ret->causation_id = order->id;
	ret->body = ret_body;
}

lh_summarize_store_job_t *lh_summarize_store_job_new(const lh_id_t *plan, const char *subject,
						     const lh_summary_t *s, int expected)
{
	lh_summarize_store_job_t *j = calloc(1, sizeof(*j));
	json_t *js = lh_summary_to_json(s);
	lh_error_t err = {0};
	if (!j || !js || lh_summary_from_json(js, &j->s, &err) != LH_OK)
		abort(); /* what lh_summary_to_json wrote always parses */
	json_decref(js);
	lh_uuid_fmt(plan, j->plan);
	snprintf(j->subject, sizeof(j->subject), "%s", subject);
	j->expected = expected;
	return j;
}

lh_err_t lh_summarize_store_job_run(lh_pg_t *pg, lh_embedder_t *emb, void *job, lh_error_t *err)
{
	lh_summarize_store_job_t *j = job;
	(void)emb;
	return lh_summary_store(pg, j->plan, j->subject, &j->s, j->expected, NULL, &j->stored, err);
}

void lh_summarize_store_job_free(lh_summarize_store_job_t *j)
{
	if (!j)
		return;
	lh_summary_finish(&j->s);
	free(j);
}
