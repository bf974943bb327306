/* summary_store.c — summaries table: versioned store and load of lh_summary_t. */
#include "summary_store.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lh_err_t lh_summary_store(lh_pg_t *pg, const char *plan_id, const char *subject,
			  const lh_summary_t *s, int expected_version, const char *source_event,
			  int *ret_version, lh_error_t *err)
{
	char ver[16], anchor[24], spans[24], *sections;
	json_t *j;
	lh_pg_res_t *res = NULL;
	lh_err_t rc;

	if (!plan_id || expected_version < 0)
		return lh_error_set(err, LH_ERR_INVALID, "could not store summary: a plan id and a "
				    "version >= 0 are required");
	if (!(j = lh_summary_to_json(s)) || !(sections = json_dumps(j, JSON_COMPACT))) {
		json_decref(j);
		return lh_error_set(err, LH_ERR_NOMEM, "could not store summary: out of memory");
	}
	json_decref(j);
	snprintf(ver, sizeof(ver), "%d", expected_version + 1);
	snprintf(anchor, sizeof(anchor), "%" PRId64, s->anchor);
	snprintf(spans, sizeof(spans), "%" PRId64, s->n_spans);
	const char *p[] = {plan_id, subject ? subject : "", ver, anchor, spans, sections,
			   source_event};
	rc = lh_pg_query(pg, "summary_insert", 7, p, NULL, NULL, &res, err);
	free(sections);
	if (rc != LH_OK)
		return rc;
	if (lh_pg_nrows(res) != 1)
		rc = lh_error_set(err, LH_ERR_CONFLICT, "could not store summary version %d of plan "
				  "%s: the latest version is not %d, or its anchor is ahead of %"
				  PRId64, expected_version + 1, plan_id, expected_version,
				  s->anchor);
	else if (ret_version)
		*ret_version = expected_version + 1;
	lh_pg_res_free(res);
	return rc;
}

lh_err_t lh_summary_load(lh_pg_t *pg, const char *plan_id, const char *subject,
			 lh_summary_t *ret_s, int *ret_version, lh_error_t *err)
{
	lh_pg_res_t *res = NULL;
	json_error_t jerr;
	json_t *j;
	lh_err_t rc;
	int version;
	const char *p[] = {plan_id, subject ? subject : ""};

	if ((rc = lh_pg_query(pg, "summary_latest", 2, p, NULL, NULL, &res, err)) != LH_OK)
		return rc;
	if (lh_pg_nrows(res) != 1) {
		lh_pg_res_free(res);
		return lh_error_set(err, LH_ERR_NOT_FOUND, "plan %s has no summary \"%s\"", plan_id,
				    subject ? subject : "");
	}
	version = (int)lh_pg_get_i64(res, 0, 0);
	j = json_loads(lh_pg_get(res, 0, 1), 0, &jerr);
	lh_pg_res_free(res);
	if (!j)
		return lh_error_set(err, LH_ERR_DECODE, "could not load summary of plan %s: %s",
				    plan_id, jerr.text);
	rc = lh_summary_from_json(j, ret_s, err);
	json_decref(j);
	if (rc == LH_OK && ret_version)
		*ret_version = version;
	return rc;
}
