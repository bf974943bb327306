#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define COMMON(f) offsetof(lh_common_cfg_t, f)

const lh_cfg_def_t lh_config_common_table[] = {
	{"kafka.brokers", LH_CFG_STR, "", 0, 0, NULL, "LH_KAFKA_BROKERS", "brokers", false, false,
	 "Kafka bootstrap servers (host:port,...); empty means the dev stack's embedded broker",
	 COMMON(brokers)},
	{"kafka.topic_prefix", LH_CFG_STR, "lh.", 0, 0, NULL, "LH_TOPIC_PREFIX", "topic-prefix", false,
	 false, "prefix of every topic name", COMMON(topic_prefix)},
	{"kafka.events_partitions", LH_CFG_INT, "8", 1, 1024, NULL, "LH_EVENTS_PARTITIONS", NULL, false,
	 false, "partitions of the events topic when this process creates it",
	 COMMON(events_partitions)},
	{"pg.url", LH_CFG_STR, "", 0, 0, NULL, "LH_PG_URL", "pg-url", false, true,
	 "PostgreSQL connection URL (postgresql://user@host:port/db)", COMMON(pg_url)},
	{"log.level", LH_CFG_ENUM, "info", 0, 0, "debug|info|warn|error|off", "LH_LOG_LEVEL",
	 "log-level", true, false, "least severe level written", COMMON(log_level)},
	{"log.debug", LH_CFG_STR, "", 0, 0, NULL, "LH_LOG_DEBUG", "debug", true, false,
	 "debug categories: kafka,pg,http,fold,codec,all", COMMON(log_debug)},
	{"tenant", LH_CFG_STR, "default", 0, 0, NULL, "LH_TENANT", "tenant", false, false,
	 "tenant of goals submitted by this process", COMMON(tenant)},
	{"tiers", LH_CFG_STR, "fast,standard,frontier", 0, 0, NULL, "LH_TIERS", "tiers", false, false,
	 "model tiers, cheapest first; one task topic each", COMMON(tiers)},
	{"state_dir", LH_CFG_STR, "", 0, 0, NULL, "LH_STATE_DIR", "state-dir", false, false,
	 "directory of the dev stack (default $XDG_STATE_HOME/longhaul or ~/.local/state/longhaul)",
	 COMMON(state_dir)},
	{"memory.embed_url", LH_CFG_STR, "", 0, 0, NULL, "LH_EMBED_URL", "embed-url", false, false,
	 "OpenAI-compatible embeddings endpoint up to /v1 (POST {url}/embeddings); empty means the "
	 "deterministic local hashing embedder", COMMON(embed_url)},
	{"memory.embed_model", LH_CFG_STR, "", 0, 0, NULL, "LH_EMBED_MODEL", "embed-model", false,
	 false, "model name for memories (documents); required with memory.embed_url",
	 COMMON(embed_model)},
	{"memory.embed_query_model", LH_CFG_STR, "", 0, 0, NULL, "LH_EMBED_QUERY_MODEL", NULL, false,
	 false, "model name for search queries (E5-style models: e5-query); empty means "
	 "memory.embed_model", COMMON(embed_query_model)},
	{"memory.embed_key_env", LH_CFG_STR, "", 0, 0, NULL, "LH_EMBED_KEY_ENV", NULL, false, false,
	 "environment variable holding the endpoint's API key (sent as a bearer token, never logged)",
	 COMMON(embed_key_env)},
	{"memory.embed_key_file", LH_CFG_STR, "", 0, 0, NULL, "LH_EMBED_KEY_FILE", NULL, false, false,
	 "file whose first line is the API key, when memory.embed_key_env is unset",
	 COMMON(embed_key_file)},
	{"memory.embed_batch", LH_CFG_INT, "64", 1, 2048, NULL, "LH_EMBED_BATCH", NULL, false, false,
	 "texts per embeddings request", COMMON(embed_batch)},
	{"memory.embed_timeout_ms", LH_CFG_INT, "30000", 100, 600000, NULL, "LH_EMBED_TIMEOUT_MS",
	 NULL, false, false, "total time of one embeddings request, retries apart",
	 COMMON(embed_timeout_ms)},
	{"memory.embed_dims", LH_CFG_INT, "0", 0, 8192, NULL, "LH_EMBED_DIMS", NULL, false, false,
	 "expected dimensions of the model's vectors; 0 accepts the server's first answer",
	 COMMON(embed_dims)},
	{"memory.embed_near_dup", LH_CFG_DOUBLE, "0.985", 0.5, 1.0, NULL, "LH_EMBED_NEAR_DUP", NULL,
	 false, false, "cosine at which a new memory counts as a near duplicate with the endpoint's "
	 "vectors (the hashing embedder uses 0.92)", COMMON(embed_near_dup)},
	{"memory.fusion_k", LH_CFG_DOUBLE, "0", 0.0, 1000.0, NULL, "LH_MEMORY_FUSION_K", NULL, false,
	 false, "hybrid search's reciprocal rank fusion: a row scores sum(weight / (k + rank)) over "
	 "the full-text and vector rankings; 0 means 60 with the hashing embedder and 5 with "
	 "memory.embed_url's model (docs/memory.md)", COMMON(fusion_k)},
	{"memory.fusion_vector_weight", LH_CFG_DOUBLE, "0", 0.0, 100.0, NULL,
	 "LH_MEMORY_FUSION_VECTOR_WEIGHT", NULL, false, false,
	 "weight of the vector ranking in hybrid search (full text weighs 1); 0 means 1 with the "
	 "hashing embedder and 2 with memory.embed_url's model", COMMON(fusion_vector_weight)},
	{"blob.threshold_bytes", LH_CFG_INT, "16384", 0, 900000, NULL, "LH_BLOB_THRESHOLD", NULL,
	 false, false,
	 "outputs whose JSON is longer are stored content-addressed in the blobs table before the "
	 "event naming them (output_ref) is produced",
	 COMMON(blob_threshold)},
	LH_CFG_END,
};

/* One pending value per definition while loading: validated text, applied at the end. */
typedef struct pending {
	const lh_cfg_def_t *def;
	char *text; /* NULL = keep default */
	const char *source;
} pending_t;

static const char *type_name(lh_cfg_type_t t)
{
	switch (t) {
	case LH_CFG_STR: return "string";
	case LH_CFG_INT: return "integer";
	case LH_CFG_DOUBLE: return "number";
	case LH_CFG_BOOL: return "boolean";
	case LH_CFG_ENUM: return "word";
	}
	return "?";
}

static int parse_bool(const char *s)
{
	static const char *t[] = {"true", "1", "yes", "on"}, *f[] = {"false", "0", "no", "off"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, t[i]) == 0)
			return 1;
		if (strcasecmp(s, f[i]) == 0)
			return 0;
	}
	return -1;
}

static bool choice_ok(const char *choices, const char *s)
{
	size_t n = strlen(s);
	const char *p = choices;
	while (p && *p) {
		size_t w = strcspn(p, "|");
		if (w == n && strncmp(p, s, n) == 0)
			return true;
		p += w;
		if (*p == '|')
			p++;
	}
	return false;
}

static lh_err_t validate(const lh_cfg_def_t *d, const char *s, const char *source, lh_error_t *err)
{
	char *end;
	switch (d->type) {
	case LH_CFG_STR:
		if (strlen(s) > 65536)
			return lh_error_set(err, LH_ERR_CONFIG, "%s (from %s): value longer than 65536 bytes",
					    d->name, source);
		return LH_OK;
	case LH_CFG_INT: {
		long long v;
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno || end == s || *end)
			return lh_error_set(err, LH_ERR_CONFIG, "%s (from %s): \"%s\" is not an integer",
					    d->name, source, s);
		if ((d->min != 0 || d->max != 0) && ((double)v < d->min || (double)v > d->max))
			return lh_error_set(err, LH_ERR_CONFIG,
					    "%s (from %s): %lld is out of range [%.0f, %.0f]", d->name,
					    source, v, d->min, d->max);
		return LH_OK;
	}
	case LH_CFG_DOUBLE: {
		double v;
		errno = 0;
		v = strtod(s, &end);
		if (errno || end == s || *end || !isfinite(v))
			return lh_error_set(err, LH_ERR_CONFIG, "%s (from %s): \"%s\" is not a number",
					    d->name, source, s);
		if ((d->min != 0 || d->max != 0) && (v < d->min || v > d->max))
			return lh_error_set(err, LH_ERR_CONFIG,
					    "%s (from %s): %g is out of range [%g, %g]", d->name, source,
					    v, d->min, d->max);
		return LH_OK;
	}
	case LH_CFG_BOOL:
		if (parse_bool(s) < 0)
			return lh_error_set(err, LH_ERR_CONFIG,
					    "%s (from %s): \"%s\" is not a boolean (true or false)",
					    d->name, source, s);
		return LH_OK;
	case LH_CFG_ENUM:
		if (!choice_ok(d->choices, s))
			return lh_error_set(err, LH_ERR_CONFIG, "%s (from %s): \"%s\" is not one of %s",
					    d->name, source, s, d->choices);
		return LH_OK;
	}
	return lh_error_set(err, LH_ERR_INTERNAL, "%s: unknown type", d->name);
}

static void assign(const lh_cfg_def_t *d, void *cfg, const char *s)
{
	char *p = (char *)cfg + d->offset;
	switch (d->type) {
	case LH_CFG_STR:
	case LH_CFG_ENUM:
		free(*(char **)p);
		*(char **)p = strdup(s ? s : "");
		break;
	case LH_CFG_INT:
		*(int64_t *)p = s && *s ? strtoll(s, NULL, 10) : 0;
		break;
	case LH_CFG_DOUBLE:
		*(double *)p = s && *s ? strtod(s, NULL) : 0;
		break;
	case LH_CFG_BOOL:
		*(bool *)p = s && parse_bool(s) == 1;
		break;
	}
}

static size_t count_defs(const lh_cfg_spec_t *spec)
{
	size_t n = 0;
	for (int t = 0; spec->tables[t]; t++)
		for (const lh_cfg_def_t *d = spec->tables[t]; d->name; d++)
			n++;
	return n;
}

static pending_t *find_by(pending_t *pend, size_t n, const char *name, const char *flag, size_t flen)
{
	for (size_t i = 0; i < n; i++) {
		if (name && strcmp(pend[i].def->name, name) == 0)
			return &pend[i];
		if (flag && pend[i].def->flag && strlen(pend[i].def->flag) == flen &&
		    strncmp(pend[i].def->flag, flag, flen) == 0)
			return &pend[i];
	}
	return NULL;
}

static lh_err_t set_pending(pending_t *p, const char *text, const char *source, lh_error_t *err)
{
	lh_err_t rc = validate(p->def, text, source, err);
	if (rc)
		return rc;
	free(p->text);
	p->text = strdup(text);
	p->source = source;
	return LH_OK;
}

static lh_err_t load_file(const char *path, pending_t *pend, size_t n, lh_error_t *err)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v;
	const char *key;
	lh_err_t rc = LH_OK;
	if (!root)
		return lh_error_set(err, LH_ERR_CONFIG, "could not read config file \"%s\": %s (line %d)",
				    path, jerr.text, jerr.line);
	if (!json_is_object(root)) {
		json_decref(root);
		return lh_error_set(err, LH_ERR_CONFIG,
				    "config file \"%s\": expected a JSON object of \"name\": value",
				    path);
	}
	json_object_foreach(root, key, v) {
		pending_t *p = find_by(pend, n, key, NULL, 0);
		char num[64];
		const char *text;
		if (!p) {
			rc = lh_error_set(err, LH_ERR_CONFIG, "config file \"%s\": unknown setting \"%s\"",
					  path, key);
			break;
		}
		if (json_is_string(v))
			text = json_string_value(v);
		else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			text = num;
		} else if (json_is_real(v)) {
			snprintf(num, sizeof(num), "%.17g", json_real_value(v));
			text = num;
		} else if (json_is_boolean(v))
			text = json_is_true(v) ? "true" : "false";
		else {
			rc = lh_error_set(err, LH_ERR_CONFIG, "config file \"%s\": \"%s\" must be a %s",
					  path, key, type_name(p->def->type));
			break;
		}
		if ((rc = set_pending(p, text, "config file", err)))
			break;
	}
	json_decref(root);
	return rc;
}

lh_err_t lh_config_load(const lh_cfg_spec_t *spec, void *cfg, int argc, char **argv,
			char ***ret_rest, int *ret_nrest, lh_error_t *err)
{
	size_t n = count_defs(spec), k = 0;
	pending_t *pend = calloc(n ? n : 1, sizeof(*pend));
	const char *config_file = getenv("LH_CONFIG");
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	int nrest = 0;
	lh_err_t rc = LH_OK;

	if (!pend || !rest)
		abort();
	for (int t = 0; spec->tables[t]; t++)
		for (const lh_cfg_def_t *d = spec->tables[t]; d->name; d++)
			pend[k++].def = d;

	/* First pass over argv: --help and --config only. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			lh_config_help(spec, stdout);
			rc = LH_ERR_NOT_FOUND;
			goto out_free;
		}
		if (strcmp(argv[i], "--config-doc") == 0) { /* docs/configuration.md */
			lh_config_markdown(spec, stdout);
			rc = LH_ERR_NOT_FOUND;
			goto out_free;
		}
		if (strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc) {
				rc = lh_error_set(err, LH_ERR_CONFIG, "--config needs a file name");
				goto out_free;
			}
			config_file = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0)
			config_file = argv[i] + 9;
	}
	if (config_file && *config_file && (rc = load_file(config_file, pend, n, err)))
		goto out_free;
	for (size_t i = 0; i < n; i++) {
		const char *v = pend[i].def->env ? getenv(pend[i].def->env) : NULL;
		if (v && (rc = set_pending(&pend[i], v, pend[i].def->env, err)))
			goto out_free;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		size_t flen;
		pending_t *p;
		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				rest[nrest++] = argv[i];
			break;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
			rest[nrest++] = argv[i];
			continue;
		}
		a += 2;
		flen = strcspn(a, "=");
		if (flen == 6 && strncmp(a, "config", 6) == 0) {
			if (!a[flen])
				i++;
			continue;
		}
		p = find_by(pend, n, NULL, a, flen);
		if (!p && strncmp(a, "no-", 3) == 0) {
			/* --no-flag for booleans */
			p = find_by(pend, n, NULL, a + 3, flen - 3);
			if (p && p->def->type == LH_CFG_BOOL && !a[flen]) {
				if ((rc = set_pending(p, "false", "flags", err)))
					goto out_free;
				continue;
			}
			p = NULL;
		}
		if (!p) {
			rc = lh_error_set(err, LH_ERR_CONFIG, "unknown option \"--%.*s\" (see --help)",
					  (int)flen, a);
			goto out_free;
		}
		if (a[flen] == '=')
			val = a + flen + 1;
		else if (p->def->type == LH_CFG_BOOL)
			val = "true";
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			rc = lh_error_set(err, LH_ERR_CONFIG, "option \"--%s\" needs a value", p->def->flag);
			goto out_free;
		}
		if ((rc = set_pending(p, val, "flags", err)))
			goto out_free;
	}
	/* Defaults must validate too: a broken table is a bug worth hearing about. */
	for (size_t i = 0; i < n; i++)
		if (!pend[i].text && pend[i].def->def && *pend[i].def->def &&
		    (rc = validate(pend[i].def, pend[i].def->def, "default", err)))
			goto out_free;
	/* Everything valid: apply. */
	for (size_t i = 0; i < n; i++)
		assign(pend[i].def, cfg, pend[i].text ? pend[i].text : pend[i].def->def);
	if (ret_rest) {
		*ret_rest = rest;
		rest = NULL;
	}
	if (ret_nrest)
		*ret_nrest = nrest;
out_free:
	for (size_t i = 0; i < n; i++)
		free(pend[i].text);
	free(pend);
	free(rest);
	return rc;
}

void lh_config_finish(const lh_cfg_spec_t *spec, void *cfg)
{
	for (int t = 0; spec->tables[t]; t++)
		for (const lh_cfg_def_t *d = spec->tables[t]; d->name; d++)
			if (d->type == LH_CFG_STR || d->type == LH_CFG_ENUM) {
				char **p = (char **)((char *)cfg + d->offset);
				free(*p);
				*p = NULL;
			}
}

void lh_config_help(const lh_cfg_spec_t *spec, FILE *out)
{
	fprintf(out, "usage: %s %s\n\n%s\n\noptions (flag / environment / config-file key):\n",
		spec->prog, spec->usage ? spec->usage : "[options]", spec->summary ? spec->summary : "");
	fprintf(out, "  --config FILE                  JSON file of settings (env LH_CONFIG)\n");
	fprintf(out, "  --help                         this text\n");
	for (int t = 0; spec->tables[t]; t++)
		for (const lh_cfg_def_t *d = spec->tables[t]; d->name; d++) {
			char flag[64];
			snprintf(flag, sizeof(flag), "--%s %s", d->flag ? d->flag : "",
				 d->type == LH_CFG_BOOL ? "" : "VALUE");
			fprintf(out, "  %-30s %s\n", d->flag ? flag : "(no flag)", d->desc);
			fprintf(out, "  %-30s   %s%s%s, key %s", "", d->env ? "env " : "",
				d->env ? d->env : "", d->env ? "" : "no env", d->name);
			if (d->type == LH_CFG_ENUM)
				fprintf(out, ", one of %s", d->choices);
			if ((d->type == LH_CFG_INT || d->type == LH_CFG_DOUBLE) && (d->min || d->max))
				fprintf(out, ", %g..%g", d->min, d->max);
			if (d->def && *d->def && !d->secret)
				fprintf(out, ", default %s", d->def);
			fprintf(out, "\n");
		}
}

void lh_config_markdown(const lh_cfg_spec_t *spec, FILE *out)
{
	fprintf(out, "## %s\n\n%s\n\n| key | flag | env | type | default | reload | description |\n"
		     "|---|---|---|---|---|---|---|\n",
		spec->prog, spec->summary ? spec->summary : "");
	for (int t = 0; spec->tables[t]; t++)
		for (const lh_cfg_def_t *d = spec->tables[t]; d->name; d++) {
			fprintf(out, "| `%s` | %s%s%s | %s%s%s | %s", d->name, d->flag ? "`--" : "",
				d->flag ? d->flag : "", d->flag ? "`" : "", d->env ? "`" : "",
				d->env ? d->env : "", d->env ? "`" : "", type_name(d->type));
			if (d->type == LH_CFG_ENUM) {
				fprintf(out, " (");
				for (const char *c = d->choices; *c; c++)
					fprintf(out, *c == '|' ? ", " : "%c", *c);
				fprintf(out, ")");
			}
			if ((d->type == LH_CFG_INT || d->type == LH_CFG_DOUBLE) && (d->min || d->max))
				fprintf(out, " %g..%g", d->min, d->max);
			fprintf(out, " | %s | %s | %s |\n", d->def && *d->def ? d->def : "",
				d->reloadable ? "yes" : "no", d->desc);
		}
	fprintf(out, "\n");
}

lh_err_t lh_config_apply_logging(const lh_common_cfg_t *c, lh_error_t *err)
{
	int lvl = lh_log_level_parse(c->log_level), dbg = lh_log_debug_parse(c->log_debug);
	if (lvl < 0)
		return lh_error_set(err, LH_ERR_CONFIG, "log.level: unknown level \"%s\"", c->log_level);
	if (dbg < 0)
		return lh_error_set(err, LH_ERR_CONFIG, "log.debug: unknown category in \"%s\"",
				    c->log_debug);
	lh_log_set_level((lh_log_level_t)lvl);
	lh_log_set_debug(dbg);
	return LH_OK;
}

int lh_config_split(const char *list, char *buf, size_t bufsz, const char **out, int max)
{
	int n = 0;
	size_t len = strlen(list);
	char *p;
	if (len + 1 > bufsz)
		return -1;
	memcpy(buf, list, len + 1);
	for (p = buf; *p;) {
		char *w = p, *e;
		size_t l = strcspn(p, ",");
		p += l;
		if (*p)
			*p++ = 0;
		while (isspace((unsigned char)*w))
			w++;
		e = w + strlen(w);
		while (e > w && isspace((unsigned char)e[-1]))
			*--e = 0;
		if (!*w)
			continue;
		if (n >= max)
			return -1;
		out[n++] = w;
	}
	return n;
}
