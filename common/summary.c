/* summary.c — the anchored rolling summary and the artifact extractor (see summary.h).
 * The extractor is a hand-written scanner: the patterns are few and fixed, and a regex library
 * would still need the boundary and trailing-punctuation rules written around it. */
#include "summary.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		abort();
	return p;
}

void lh_summary_init(lh_summary_t *s, int64_t anchor, const char *intent)
{
	memset(s, 0, sizeof(*s));
	s->anchor = anchor;
	s->intent = xstrdup(intent);
	s->play_by_play = xstrdup("");
	s->breadcrumbs = xstrdup("");
	s->open_questions = xstrdup("");
}

void lh_summary_finish(lh_summary_t *s)
{
	if (!s)
		return;
	free(s->intent);
	free(s->play_by_play);
	free(s->breadcrumbs);
	free(s->open_questions);
	lh_summary_artifacts_free(s->artifacts, s->n_artifacts);
	memset(s, 0, sizeof(*s));
}

static const char *const section_names[LH_SUMMARY__COUNT] = {
	"intent", "play_by_play", "artifacts", "breadcrumbs", "open_questions"};

const char *lh_summary_section_name(lh_summary_section_t sec)
{
	return (unsigned)sec < LH_SUMMARY__COUNT ? section_names[sec] : "unknown";
}

/* *dst = *dst + "\n\n" + add (or add alone when *dst is empty). */
static void append_paragraph(char **dst, const char *add)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_appends(&b, *dst);
	if (**dst)
		lh_buf_appends(&b, "\n\n");
	lh_buf_appends(&b, add);
	lh_buf_append(&b, "", 1);
	free(*dst);
	*dst = lh_buf_steal(&b, NULL);
}

int lh_summary_add_artifact(lh_summary_t *s, const char *artifact)
{
	if (!artifact || !*artifact)
		return 0;
	for (size_t i = 0; i < s->n_artifacts; i++)
		if (strcmp(s->artifacts[i], artifact) == 0)
			return 0;
	if (s->n_artifacts == s->cap_artifacts) {
		size_t cap = s->cap_artifacts ? s->cap_artifacts * 2 : 16;
		char **a = realloc(s->artifacts, cap * sizeof(*a));
		if (!a)
			abort();
		s->artifacts = a;
		s->cap_artifacts = cap;
	}
	s->artifacts[s->n_artifacts++] = xstrdup(artifact);
	return 1;
}

static void add_extracted(lh_summary_t *s, const char *text)
{
	char **items;
	size_t n;
	if (!text || !*text || lh_summary_extract_artifacts(text, &items, &n) != LH_OK)
		return;
	for (size_t i = 0; i < n; i++)
		lh_summary_add_artifact(s, items[i]);
	lh_summary_artifacts_free(items, n);
}

/* The model's artifact section: one item a line, list markers ("- ", "* ") stripped. */
static void add_artifact_lines(lh_summary_t *s, const char *text)
{
	const char *p = text;
	while (p && *p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n && isspace((unsigned char)*p))
			p++, n--;
		if (n >= 2 && (p[0] == '-' || p[0] == '*') && p[1] == ' ')
			p += 2, n -= 2;
		while (n && isspace((unsigned char)p[n - 1]))
			n--;
		if (n) {
			char *item = strndup(p, n);
			if (!item)
				abort();
			lh_summary_add_artifact(s, item);
			free(item);
		}
		p = e ? e + 1 : NULL;
	}
}

lh_err_t lh_summary_merge(lh_summary_t *s, int64_t span_from, int64_t span_to,
			  const char *const *sections, const char *span_text, lh_error_t *err)
{
	if (span_to <= span_from)
		return lh_error_set(err, LH_ERR_INVALID,
				    "could not merge span [%" PRId64 ", %" PRId64 "): span is empty",
				    span_from, span_to);
	if (span_from < s->anchor)
		return lh_error_set(err, LH_ERR_CONFLICT,
				    "could not merge span [%" PRId64 ", %" PRId64
				    "): span overlaps events already summarized (anchor is %" PRId64 ")",
				    span_from, span_to, s->anchor);
	if (span_from > s->anchor)
		return lh_error_set(err, LH_ERR_CONFLICT,
				    "could not merge span [%" PRId64 ", %" PRId64
				    "): span leaves a gap after the anchor %" PRId64,
				    span_from, span_to, s->anchor);
	if (sections) {
		const char *t;
		if ((t = sections[LH_SUMMARY_INTENT]) && *t && !*s->intent) {
			free(s->intent);
			s->intent = xstrdup(t);
		}
		if ((t = sections[LH_SUMMARY_PLAY_BY_PLAY]) && *t)
			append_paragraph(&s->play_by_play, t);
		if ((t = sections[LH_SUMMARY_BREADCRUMBS]) && *t)
			append_paragraph(&s->breadcrumbs, t);
		if ((t = sections[LH_SUMMARY_OPEN_QUESTIONS])) {
			free(s->open_questions);
			s->open_questions = xstrdup(t);
		}
		if ((t = sections[LH_SUMMARY_ARTIFACTS]) && *t)
			add_artifact_lines(s, t);
		for (int i = 0; i < LH_SUMMARY__COUNT; i++)
			if (i != LH_SUMMARY_ARTIFACTS)
				add_extracted(s, sections[i]);
	}
	add_extracted(s, span_text);
	s->anchor = span_to;
	s->n_spans++;
	return LH_OK;
}

char *lh_summary_artifacts_text(const lh_summary_t *s)
{
	lh_buf_t b;
	lh_buf_init(&b);
	for (size_t i = 0; i < s->n_artifacts; i++) {
		lh_buf_appends(&b, s->artifacts[i]);
		lh_buf_append(&b, "\n", 1);
	}
	lh_buf_append(&b, "", 1);
	return lh_buf_steal(&b, NULL);
}

/* ---- extractor ---- */

typedef struct items {
	char **v;
	size_t n, cap;
} items_t;

static void items_add(items_t *it, const char *p, size_t n)
{
	for (size_t i = 0; i < it->n; i++)
		if (strlen(it->v[i]) == n && memcmp(it->v[i], p, n) == 0)
			return;
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 8;
		char **v = realloc(it->v, cap * sizeof(*v));
		if (!v)
			abort();
		it->v = v;
		it->cap = cap;
	}
	if (!(it->v[it->n] = strndup(p, n)))
		abort();
	it->n++;
}

/* Token delimiters: whitespace, quotes, brackets, commas and the like. */
static bool is_delim(char c)
{
	return c == '\0' || isspace((unsigned char)c) || strchr("\"'`()[]{}<>,;|", c) != NULL;
}

static const char *const file_exts[] = {
	"c",   "h",    "cc",   "cpp", "hpp", "py",  "js",   "ts",  "go",  "rs",   "java", "rb",
	"md",  "txt",  "json", "yaml", "yml", "toml", "csv", "tsv", "sql", "sh",  "html", "css",
	"pdf", "png",  "jpg",  "jpeg", "gif", "svg", "log",  "xml", "conf", "ini", "cfg", "tar",
	"gz",  "zip",  "tgz",  "xz",  "lock", "env", "proto", "ipynb", "docx", "xlsx", "parquet",
	NULL};

static bool known_ext(const char *p, size_t n)
{
	for (int i = 0; file_exts[i]; i++)
		if (strlen(file_exts[i]) == n && strncasecmp(file_exts[i], p, n) == 0)
			return true;
	return false;
}

static bool path_char(char c)
{
	return isalnum((unsigned char)c) || strchr("._-/~+@%=:", c) != NULL;
}

/* A token (already trimmed) that is a URL. */
static bool is_url(const char *p, size_t n)
{
	size_t i = 0;
	if (!n || !isalpha((unsigned char)p[0]))
		return false;
	while (i < n && (isalnum((unsigned char)p[i]) || p[i] == '+' || p[i] == '-' || p[i] == '.'))
		i++;
	return i + 3 < n && p[i] == ':' && p[i + 1] == '/' && p[i + 2] == '/';
}

static bool is_path(const char *p, size_t n)
{
	size_t i, last_slash = (size_t)-1, dot = (size_t)-1;
	bool alnum = false;
	for (i = 0; i < n; i++) {
		if (!path_char(p[i]))
			return false;
		if (p[i] == ':')
			return false; /* host:port, scheme: */
		if (p[i] == '/')
			last_slash = i;
		if (p[i] == '.')
			dot = i;
		alnum |= isalnum((unsigned char)p[i]) != 0;
	}
	if (!alnum)
		return false;
	if (p[0] == '/' || (n > 2 && p[0] == '~' && p[1] == '/') ||
	    (n > 2 && p[0] == '.' && p[1] == '/') || (n > 3 && !strncmp(p, "../", 3)))
		return n > 1;
	/* relative path or bare name: the last part must have a known extension */
	if (dot == (size_t)-1 || (last_slash != (size_t)-1 && dot < last_slash) || dot == 0 ||
	    dot + 1 >= n || p[dot - 1] == '/')
		return false;
	return known_ext(p + dot + 1, n - dot - 1);
}

static bool hexrun(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)p[i]))
			return false;
	return true;
}

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* UUIDs, 32-hex ids and ticket ids anywhere in text, at word boundaries. */
static void scan_ids(const char *text, items_t *it)
{
	size_t len = strlen(text);
	for (size_t i = 0; i < len; i++) {
		const char *p = text + i;
		if (i > 0 && (word_char(p[-1]) || p[-1] == '-'))
			continue;
		if (i + 36 <= len && hexrun(p, 8) && p[8] == '-' && hexrun(p + 9, 4) && p[13] == '-' &&
		    hexrun(p + 14, 4) && p[18] == '-' && hexrun(p + 19, 4) && p[23] == '-' &&
		    hexrun(p + 24, 12) && !word_char(p[36]) && p[36] != '-') {
			items_add(it, p, 36);
			i += 35;
			continue;
		}
		if (i + 32 <= len && hexrun(p, 32) && !word_char(p[32])) {
			bool digit = false, letter = false;
			for (int k = 0; k < 32; k++)
				isdigit((unsigned char)p[k]) ? (digit = true) : (letter = true);
			if (digit && letter) {
				items_add(it, p, 32);
				i += 31;
				continue;
			}
		}
		if (isupper((unsigned char)p[0])) {
			size_t k = 1, d;
			while (i + k < len && (isupper((unsigned char)p[k]) || isdigit((unsigned char)p[k])))
				k++;
			if (k < 2 || k > 10 || p[k] != '-' || !isdigit((unsigned char)p[k + 1]))
				continue;
			d = k + 1;
			while (isdigit((unsigned char)p[d]))
				d++;
			if (word_char(p[d]) || (p[d] == '-' && word_char(p[d + 1])))
				continue;
			items_add(it, p, d);
			i += d - 1;
		}
	}
}

lh_err_t lh_summary_extract_artifacts(const char *text, char ***ret_items, size_t *ret_n)
{
	items_t it = {0};
	const char *p = text ? text : "";
	while (*p) {
		const char *start;
		size_t n;
		while (*p && is_delim(*p))
			p++;
		start = p;
		while (*p && !is_delim(*p))
			p++;
		n = (size_t)(p - start);
		/* trailing sentence punctuation is not part of the item */
		while (n && strchr(".:!?", start[n - 1]))
			n--;
		if (!n)
			continue;
		if (is_url(start, n) || is_path(start, n))
			items_add(&it, start, n);
	}
	if (text)
		scan_ids(text, &it);
	*ret_items = it.v;
	*ret_n = it.n;
	return LH_OK;
}

void lh_summary_artifacts_free(char **items, size_t n)
{
	if (!items)
		return;
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

/* ---- JSON ---- */

json_t *lh_summary_to_json(const lh_summary_t *s)
{
	json_t *arts = json_array();
	for (size_t i = 0; arts && i < s->n_artifacts; i++)
		json_array_append_new(arts, json_string(s->artifacts[i]));
	return json_pack("{s:I, s:I, s:s, s:s, s:o, s:s, s:s}", "anchor", (json_int_t)s->anchor,
			 "spans", (json_int_t)s->n_spans, "intent", s->intent, "play_by_play",
			 s->play_by_play, "artifacts", arts, "breadcrumbs", s->breadcrumbs,
			 "open_questions", s->open_questions);
}

lh_err_t lh_summary_from_json(const json_t *json, lh_summary_t *ret_s, lh_error_t *err)
{
	json_int_t anchor, spans;
	const char *intent, *pbp, *crumbs, *questions;
	json_t *arts;
	json_error_t jerr;
	lh_summary_t s;
	size_t i;
	json_t *v;
	if (json_unpack_ex((json_t *)json, &jerr, JSON_STRICT, "{s:I, s:I, s:s, s:s, s:o, s:s, s:s}",
			   "anchor", &anchor, "spans", &spans, "intent", &intent, "play_by_play",
			   &pbp, "artifacts", &arts, "breadcrumbs", &crumbs, "open_questions",
			   &questions) != 0)
		return lh_error_set(err, LH_ERR_DECODE, "could not decode summary: %s", jerr.text);
	if (!json_is_array(arts))
		return lh_error_set(err, LH_ERR_DECODE,
				    "could not decode summary: artifacts is not an array");
	json_array_foreach (arts, i, v)
		if (!json_is_string(v))
			return lh_error_set(err, LH_ERR_DECODE,
					    "could not decode summary: artifact %zu is not a string", i);
	lh_summary_init(&s, anchor, intent);
	s.n_spans = spans;
	free(s.play_by_play);
	s.play_by_play = xstrdup(pbp);
	free(s.breadcrumbs);
	s.breadcrumbs = xstrdup(crumbs);
	free(s.open_questions);
	s.open_questions = xstrdup(questions);
	json_array_foreach (arts, i, v)
		lh_summary_add_artifact(&s, json_string_value(v));
	*ret_s = s;
	return LH_OK;
}
