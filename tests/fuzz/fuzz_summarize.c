/* fuzz_summarize.c — fuzz target for lh_summarize_parse (a model's rolling-summary answer
 * {"play_by_play", "artifacts", "breadcrumbs", "open_questions"}) and lh_summarize_prompt.
 *
 * Accepted answers have a non-empty play-by-play, every text within LH_SUMMARIZE_MAX_SECTION
 * bytes, at most LH_SUMMARIZE_MAX_ARTIFACTS artifacts of one non-empty line each (as many lines
 * as n_artifacts), and merge into a summary; refusals are DECODE with a message and leave the
 * output untouched. The prompt of the same bytes (cut at a NUL) stays within its bounds, and so
 * does lh_summarize_keep_tail's tail of them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "summarize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lh_summarize_answer_t a = {.play_by_play = (char *)"untouched"};
	lh_error_t err = {0};
	lh_err_t rc = lh_summarize_parse((const char *)data, size, &a, &err);
	if (rc != LH_OK) {
		if (rc != LH_ERR_DECODE || !err.msg[0] || strcmp(a.play_by_play, "untouched") ||
		    a.artifacts)
			abort();
	} else {
		size_t lines = 0;
		const char *sections[LH_SUMMARY__COUNT];
		lh_summary_t s;
		if (!*a.play_by_play || strlen(a.play_by_play) > LH_SUMMARIZE_MAX_SECTION ||
		    strlen(a.breadcrumbs) > LH_SUMMARIZE_MAX_SECTION ||
		    strlen(a.open_questions) > LH_SUMMARIZE_MAX_SECTION ||
		    a.n_artifacts > LH_SUMMARIZE_MAX_ARTIFACTS)
			abort();
		for (const char *p = a.artifacts; *p; p++)
			lines += *p == '\n';
		if ((a.n_artifacts ? lines + 1 : 0) != a.n_artifacts || (!a.n_artifacts && *a.artifacts))
			abort();
		lh_summarize_answer_sections(&a, sections);
		lh_summary_init(&s, 0, "intent");
		if (lh_summary_merge(&s, 0, 1, sections, a.play_by_play, &err) != LH_OK ||
		    s.anchor != 1 || s.n_artifacts < (a.n_artifacts ? 1 : 0))
			abort();
		lh_summary_finish(&s);
		lh_summarize_answer_finish(&a);
	}
	{
		char *copy = malloc(size + 1), *p;
		size_t bound = size % 64 + 1;
		lh_summary_t s;
		memcpy(copy, data, size);
		copy[size] = '\0';
		lh_summary_init(&s, 0, copy);
		p = lh_summarize_prompt(&s, 0, 1, copy, bound);
		if (!p || strlen(p) > bound + (strlen(copy) < LH_SUMMARIZE_MAX_CONTEXT
						       ? strlen(copy)
						       : LH_SUMMARIZE_MAX_CONTEXT) + 160)
			abort();
		free(p);
		lh_summary_finish(&s);
		/* the kept tail stays within its bound (plus the mark) */
		{
			size_t before = strlen(copy);
			lh_summarize_keep_tail(&copy, bound);
			if (before > bound ? strlen(copy) > bound + 64 : strlen(copy) != before)
				abort();
		}
		free(copy);
	}
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_summarize"); }
#endif
