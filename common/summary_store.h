/* summary_store.h — anchored rolling summaries in PostgreSQL `summaries` (sql/0007), every version
 * kept (DESIGN.md §5, §6). summary.h stays free of the database; this is its storage.
 *
 * A summary is identified by its plan and a subject: "" for the plan's own summary, "TASK/ATTEMPT"
 * for a long attempt's. Writers follow optimistic concurrency: load the latest (version v), merge
 * a span, store as v + 1. A store over anything but the latest version, or one whose anchor is
 * behind the latest's, is refused, so two summarize tasks racing on one plan cannot both land and
 * no span is summarized twice. Calls block (libpq). */
#ifndef LH_SUMMARY_STORE_H
#define LH_SUMMARY_STORE_H

#include "err.h"
#include "pg.h"
#include "summary.h"

/* Store s (borrowed) as version expected_version + 1 of (plan_id, subject). expected_version is
 * the version s was loaded from, 0 for the first. source_event (the summarize task's
 * attempt.succeeded, 32 hex or dashed; may be NULL) is the provenance. *ret_version (may be NULL)
 * gets the stored version. LH_ERR_CONFLICT when the latest version is not expected_version or its
 * anchor is ahead of s's; nothing is written then. */
lh_err_t lh_summary_store(lh_pg_t *pg, const char *plan_id, const char *subject,
			  const lh_summary_t *s, int expected_version, const char *source_event,
			  int *ret_version, lh_error_t *err);

/* Load the latest version of (plan_id, subject) into *ret_s (initialized here, only on success;
 * the caller finishes it) and its version into *ret_version (may be NULL). LH_ERR_NOT_FOUND when
 * the plan has no such summary yet; LH_ERR_DECODE when the stored sections do not parse. */
lh_err_t lh_summary_load(lh_pg_t *pg, const char *plan_id, const char *subject,
			 lh_summary_t *ret_s, int *ret_version, lh_error_t *err);

#endif
