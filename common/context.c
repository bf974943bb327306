/* context.c — token estimates and layered context assembly (see context.h). */
#include "context.h"

#include <string.h>
#include <strings.h>

#include "buf.h"

/* Bytes per token, in tenths. */
static long ratio10(const char *family)
{
	if (!family)
		return 30;
	if (!strncasecmp(family, "gpt", 3) || !strncasecmp(family, "chatgpt", 7) ||
	    !strncasecmp(family, "openai", 6) ||
	    ((family[0] == 'o' || family[0] == 'O') && family[1] >= '1' && family[1] <= '9'))
		return 40;
	if (!strncasecmp(family, "claude", 6) || !strncasecmp(family, "anthropic", 9))
		return 35;
	return 30;
}

long lh_context_estimate_bytes(const char *family, size_t n)
{
	long r = ratio10(family);
	return (long)(((unsigned long long)n * 10 + (unsigned long long)r - 1) / (unsigned long long)r);
}

long lh_context_estimate_tokens(const char *family, const char *text)
{
	return text ? lh_context_estimate_bytes(family, strlen(text)) : 0;
}

long lh_context_message_tokens(const char *family, const lh_llm_message_t *msg)
{
	long t = LH_CONTEXT_MSG_OVERHEAD + lh_context_estimate_tokens(family, msg->content) +
		 lh_context_estimate_tokens(family, msg->tool_call_id);
	for (size_t i = 0; msg->tool_calls && i < msg->n_tool_calls; i++)
		t += lh_context_estimate_tokens(family, msg->tool_calls[i].id) +
		     lh_context_estimate_tokens(family, msg->tool_calls[i].name) +
		     lh_context_estimate_tokens(family, msg->tool_calls[i].arguments_json);
	return t;
}

double lh_context_estimate_error(long estimated, long actual)
{
	if (actual <= 0)
		return 0.0;
	return (double)(estimated - actual) / (double)actual;
}

static const char cut_marker[] = "\n[...]\n";

/* Back off n so that text[0, n) does not end inside a UTF-8 sequence. */
static size_t utf8_head(const char *text, size_t n)
{
	while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Fit text into cap tokens: as is, or cut (keeping the head, or the tail when tail) with a
 * marker, or not at all (NULL) when not even the marker fits. New text in arena when cut. */
static const char *fit(const char *family, const char *text, long cap, bool tail,
		       lh_arena_t *arena, long *ret_tokens, bool *truncated)
{
	size_t len = strlen(text), mlen = sizeof(cut_marker) - 1, k;
	long r = ratio10(family), max_bytes;
	if (lh_context_estimate_bytes(family, len) <= cap) {
		*ret_tokens = lh_context_estimate_bytes(family, len);
		return text;
	}
	*truncated = true;
	max_bytes = cap * r / 10 - (long)mlen;
	if (cap <= 0 || max_bytes <= 0) {
		*ret_tokens = 0;
		return NULL;
	}
	k = (size_t)max_bytes < len ? (size_t)max_bytes : len;
	while (k > 0 && lh_context_estimate_bytes(family, k + mlen) > cap)
		k--;
	if (tail) {
		size_t start = utf8_head(text, len - k);
		*ret_tokens = lh_context_estimate_bytes(family, mlen + (len - start));
		return lh_arena_printf(arena, "%s%s", cut_marker + 1, text + start);
	}
	k = utf8_head(text, k);
	*ret_tokens = lh_context_estimate_bytes(family, k + mlen);
	return lh_arena_printf(arena, "%.*s%s", (int)k, text, cut_marker);
}

static long budget_or_default(long v, long def)
{
	return v == 0 ? def : v < 0 ? 0 : v;
}

static long min_l(long a, long b)
{
	return a < b ? a : b;
}

/* Fit one optional part into *room, append it, charge it. */
static void add_part(lh_buf_t *b, const char *family, const char *text, long *room, bool tail,
		     lh_arena_t *arena, long *layer_tokens, bool *truncated)
{
	long t = 0;
	const char *s;
	if (!text || !*text || *room <= 0) {
		if (text && *text)
			*truncated = true;
		return;
	}
	s = fit(family, text, *room, tail, arena, &t, truncated);
	if (!s)
		return;
	lh_buf_appends(b, s);
	*room -= t;
	*layer_tokens += t;
}

lh_err_t lh_context_assemble(const lh_context_opts_t *opts, const lh_context_inputs_t *in,
			     lh_arena_t *arena, lh_llm_message_t **ret_messages, size_t *ret_n,
			     lh_context_report_t *ret_report, lh_error_t *err)
{
	const char *fam = opts->family;
	const lh_summary_t *sum = in->summary;
	lh_context_report_t rep = {0};
	lh_buf_t intent, arts, sys;
	long room, cap, sumb, coreb, intent_t, arts_t = 0;
	size_t keep = 0, first;
	lh_llm_message_t *out, newest_cut = {0};
	bool cut_newest = false;
	lh_err_t rc = LH_OK;

	rep.budget = opts->window - opts->reserve_output;
	if (rep.budget <= LH_CONTEXT_MSG_OVERHEAD)
		return lh_error_set(err, LH_ERR_INVALID,
				    "could not assemble context: window of %ld tokens leaves no room "
				    "after reserving %ld for the output",
				    opts->window, opts->reserve_output);
	lh_buf_init(&intent);
	lh_buf_init(&arts);
	lh_buf_init(&sys);

	/* the mandatory parts: intent, artifact trail */
	lh_buf_appends(&intent, "\n\n# Intent\n");
	if ((in->goal && *in->goal) || (in->constraints && *in->constraints)) {
		if (in->goal && *in->goal)
			lh_buf_printf(&intent, "Goal: %s\n", in->goal);
		if (in->constraints && *in->constraints)
			lh_buf_printf(&intent, "Constraints: %s\n", in->constraints);
	} else if (sum && sum->intent && *sum->intent) {
		lh_buf_printf(&intent, "%s\n", sum->intent);
	} else
		lh_buf_appends(&intent, "(none given)\n");
	intent_t = lh_context_estimate_bytes(fam, intent.len);
	if (sum && sum->n_artifacts) {
		lh_buf_appends(&arts, "\n\n# Artifact trail (names, paths, ids, URLs)\n");
		for (size_t i = 0; i < sum->n_artifacts; i++)
			lh_buf_printf(&arts, "- %s\n", sum->artifacts[i]);
		arts_t = lh_context_estimate_bytes(fam, arts.len);
	}
	room = rep.budget - LH_CONTEXT_MSG_OVERHEAD - intent_t - arts_t;
	if (room < 0) {
		rc = lh_error_set(err, LH_ERR_TOO_LARGE,
				  "could not assemble context: intent (%ld tokens) and artifact trail "
				  "(%ld tokens) exceed the budget of %ld tokens",
				  intent_t, arts_t, rep.budget);
		goto out_free_bufs;
	}

	/* system layer */
	cap = min_l(budget_or_default(opts->system_budget, LH_CONTEXT_SYSTEM_BUDGET), room);
	{
		long c = cap;
		add_part(&sys, fam, in->system, &c, false, arena, &rep.system_tokens,
			 &rep.system_truncated);
		room -= rep.system_tokens;
	}

	/* core layer: intent (already charged), plan status, decisions */
	lh_buf_append(&sys, intent.data, intent.len);
	rep.core_tokens = intent_t;
	coreb = budget_or_default(opts->core_budget, LH_CONTEXT_CORE_BUDGET) - intent_t;
	cap = min_l(coreb > 0 ? coreb : 0, room);
	{
		long c = cap, used = 0;
		const char *st = in->plan_status && *in->plan_status
					 ? lh_arena_printf(arena, "\n# Plan status\n%s\n", in->plan_status)
					 : NULL;
		const char *dec = in->decisions && *in->decisions
					  ? lh_arena_printf(arena, "\n# Key decisions\n%s\n", in->decisions)
					  : NULL;
		add_part(&sys, fam, st, &c, false, arena, &used, &rep.core_truncated);
		add_part(&sys, fam, dec, &c, false, arena, &used, &rep.core_truncated);
		room -= used;
		rep.core_tokens += used;
	}

	/* summary layer: artifact trail (charged), then open questions, breadcrumbs, play-by-play */
	lh_buf_append(&sys, arts.data, arts.len);
	rep.summary_tokens = arts_t;
	sumb = budget_or_default(opts->summary_budget, LH_CONTEXT_SUMMARY_BUDGET) - arts_t;
	cap = min_l(sumb > 0 ? sumb : 0, room);
	if (sum) {
		long c = cap, used = 0;
		const char *q = *sum->open_questions ? lh_arena_printf(arena, "\n# Open questions\n%s\n",
								       sum->open_questions)
						     : NULL;
		const char *bc = *sum->breadcrumbs ? lh_arena_printf(arena,
								     "\n# Breadcrumbs (how to re-fetch)\n%s\n",
								     sum->breadcrumbs)
						   : NULL;
		add_part(&sys, fam, q, &c, false, arena, &used, &rep.summary_truncated);
		add_part(&sys, fam, bc, &c, false, arena, &used, &rep.summary_truncated);
		if (*sum->play_by_play && c > 0) {
			static const char hdr[] = "\n# Summary of the work so far\n";
			long ht = lh_context_estimate_bytes(fam, sizeof(hdr) - 1);
			if (c > ht + 4) {
				long c2 = c - ht, used2 = 0;
				lh_buf_appends(&sys, hdr);
				add_part(&sys, fam, sum->play_by_play, &c2, true, arena, &used2,
					 &rep.summary_truncated);
				used += ht + used2;
			} else
				rep.summary_truncated = true;
		} else if (*sum->play_by_play)
			rep.summary_truncated = true;
		room -= used;
		rep.summary_tokens += used;
	}

	/* memory layer: whole items, best first */
	cap = min_l(budget_or_default(opts->memory_budget, LH_CONTEXT_MEMORY_BUDGET), room);
	{
		static const char hdr[] = "\n\n# Relevant memories\n";
		long ht = lh_context_estimate_bytes(fam, sizeof(hdr) - 1), used = 0;
		size_t i = 0;
		for (; i < in->n_memories; i++) {
			const char *m = in->memories[i] ? in->memories[i] : "";
			long t = lh_context_estimate_bytes(fam, strlen(m) + 3);
			if (used + t + (i == 0 ? ht : 0) > cap)
				break;
			if (i == 0) {
				lh_buf_appends(&sys, hdr);
				used += ht;
			}
			lh_buf_printf(&sys, "- %s\n", m);
			used += t;
		}
		rep.n_memories_dropped = in->n_memories - i;
		room -= used;
		rep.memory_tokens = used;
	}

	/* verbatim layer: newest first while they fit */
	while (keep < in->n_messages) {
		const lh_llm_message_t *m = &in->messages[in->n_messages - 1 - keep];
		long t = lh_context_message_tokens(fam, m);
		if (t > room) {
			if (keep == 0 && m->content) {
				/* the newest alone is too big: cut its content */
				long fixed = t - lh_context_estimate_tokens(fam, m->content), ct = 0;
				bool dummy = false;
				const char *c = fit(fam, m->content, room - fixed, false, arena, &ct,
						    &dummy);
				if (c && fixed + ct <= room) {
					newest_cut = *m;
					newest_cut.content = c;
					cut_newest = true;
					room -= fixed + ct;
					rep.verbatim_tokens += fixed + ct;
					keep++;
				}
			}
			break;
		}
		room -= t;
		rep.verbatim_tokens += t;
		keep++;
	}
	first = in->n_messages - keep;
	/* a tool result must not lose the assistant message that called it */
	while (keep > 0 && in->messages[first].role == LH_LLM_ROLE_TOOL) {
		const lh_llm_message_t *m = cut_newest && keep == 1 ? &newest_cut : &in->messages[first];
		long t = lh_context_message_tokens(fam, m);
		rep.verbatim_tokens -= t;
		room += t;
		if (keep == 1)
			cut_newest = false;
		first++;
		keep--;
	}
	rep.n_dropped = first;
	rep.newest_truncated = cut_newest;

	out = lh_arena_alloc(arena, (keep + 1) * sizeof(*out));
	out[0].role = LH_LLM_ROLE_SYSTEM;
	/* the system text starts with "\n\n" when no system prompt was given: trim it */
	{
		const char *s = sys.data ? sys.data : "";
		while (*s == '\n')
			s++;
		out[0].content = lh_arena_strdup(arena, s);
	}
	for (size_t i = 0; i < keep; i++)
		out[1 + i] = in->messages[first + i];
	if (cut_newest)
		out[keep] = newest_cut;
	rep.tokens = LH_CONTEXT_MSG_OVERHEAD + rep.system_tokens + rep.core_tokens +
		     rep.summary_tokens + rep.memory_tokens + rep.verbatim_tokens;
	*ret_messages = out;
	*ret_n = keep + 1;
	if (ret_report)
		*ret_report = rep;
out_free_bufs:
	lh_buf_finish(&sys);
	lh_buf_finish(&arts);
	lh_buf_finish(&intent);
	return rc;
}
