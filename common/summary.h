/* summary.h — the anchored rolling summary of a plan's work (DESIGN.md §5).
 *
 * A summary has fixed sections and is anchored at an event sequence number: every event before
 * the anchor is folded into the summary, none at or after it. When the verbatim window of an
 * attempt overflows, only the newly dropped span [anchor, to) is summarized (a `summarize` task)
 * and merged here; lh_summary_merge refuses any other span, so summarized content is never
 * summarized twice and nothing falls into a gap.
 *
 * Merge rules per section (the texts given to a merge describe the new span only):
 *   intent          set once (lh_summary_init, or the first merge that brings one); never replaced
 *   play_by_play    appended, one paragraph per span
 *   artifacts       a set of strings (names, paths, ids, URLs), first-seen order, never dropped;
 *                   a merge adds the lines of the model's artifact text plus everything
 *                   lh_summary_extract_artifacts finds in the model's texts and in the raw span
 *                   text, so the trail stays complete when the model forgets an item
 *   breadcrumbs     appended
 *   open_questions  replaced when the merge brings a non-NULL text (questions get answered)
 *
 * Not thread-safe; one owner at a time. */
#ifndef LH_SUMMARY_H
#define LH_SUMMARY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum lh_summary_section {
	LH_SUMMARY_INTENT = 0,
	LH_SUMMARY_PLAY_BY_PLAY,
	LH_SUMMARY_ARTIFACTS,
	LH_SUMMARY_BREADCRUMBS,
	LH_SUMMARY_OPEN_QUESTIONS,
	LH_SUMMARY__COUNT
} lh_summary_section_t;

typedef struct lh_summary {
	int64_t anchor;	 /* first event sequence NOT yet summarized */
	int64_t n_spans; /* spans merged so far */
	char *intent;	 /* owned; never NULL after init ("" when unknown) */
	char *play_by_play;
	char *breadcrumbs;
	char *open_questions;
	char **artifacts; /* owned array of owned strings, deduplicated, first-seen order */
	size_t n_artifacts;
	size_t cap_artifacts;
} lh_summary_t;

/* Initialize an empty summary anchored at anchor (the first sequence of the plan's history).
 * intent is copied (NULL = ""). Aborts on out-of-memory, like lh_buf. */
void lh_summary_init(lh_summary_t *s, int64_t anchor, const char *intent);
/* Free everything s owns (accepts NULL); s may be re-initialized after. */
void lh_summary_finish(lh_summary_t *s);

/* Section name as used in JSON ("intent", "play_by_play", ...); static. */
const char *lh_summary_section_name(lh_summary_section_t sec);

/* Fold the span [span_from, span_to) into s and move the anchor to span_to. span_from must equal
 * s->anchor and span_to must be greater: otherwise LH_ERR_CONFLICT ("span overlaps events already
 * summarized" / "span leaves a gap") or LH_ERR_INVALID (empty or reversed span), and s is
 * unchanged. sections[i] (i an lh_summary_section_t) is the model's text for the new span, NULL
 * or "" = nothing for that section; sections itself may be NULL. span_text (may be NULL) is the
 * raw text of the span, scanned for artifacts. All borrowed. */
lh_err_t lh_summary_merge(lh_summary_t *s, int64_t span_from, int64_t span_to,
			  const char *const *sections, const char *span_text, lh_error_t *err);

/* Add one artifact (copied) unless present; returns 1 when added, 0 when already there. */
int lh_summary_add_artifact(lh_summary_t *s, const char *artifact);

/* The artifact trail as text, one item a line ("" when empty). New (free()). */
char *lh_summary_artifacts_text(const lh_summary_t *s);

/* Artifacts found in text (may be NULL): URLs (scheme://...), file paths (starting with /, ./,
 * ../ or ~/, or a relative path or bare name whose last part has a known file extension),
 * UUIDs (8-4-4-4-12 hex), 32-hex ids (Longhaul's event ids) and ticket-like ids (2-10 upper-case
 * letters or digits starting with a letter, '-', digits: ABC-123). Trailing sentence punctuation
 * is not part of an item. Deduplicated, first-seen order. *ret_items is a new array of new
 * strings (free with lh_summary_artifacts_free), *ret_n its length; 0 items is success. */
lh_err_t lh_summary_extract_artifacts(const char *text, char ***ret_items, size_t *ret_n);
void lh_summary_artifacts_free(char **items, size_t n);

/* {"anchor":N,"spans":N,"intent":"...","play_by_play":"...","artifacts":[...],
 *  "breadcrumbs":"...","open_questions":"..."}. New reference. */
json_t *lh_summary_to_json(const lh_summary_t *s);
/* Parse what lh_summary_to_json wrote (unknown keys refused) into *ret_s (initialized here, only
 * on success; the caller finishes it). json borrowed. */
lh_err_t lh_summary_from_json(const json_t *json, lh_summary_t *ret_s, lh_error_t *err);

#endif
