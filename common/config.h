/* config.h — one declarative table of settings per daemon (Redis static_configs[], librdkafka's
 * property table).
 *
 * Precedence: default < file (--config FILE or LH_CONFIG, a JSON object of "name": value) <
 * environment (LH_…) < flags (--flag VALUE or --flag=VALUE). Every value is validated (type,
 * bounds, allowed words) before anything is applied: lh_config_load either fills the whole struct
 * or leaves it untouched and says what is wrong. --help output and docs/configuration.md are
 * generated from the same tables. */
#ifndef LH_CONFIG_H
#define LH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef enum lh_cfg_type {
	LH_CFG_STR,    /* char * (owned by the struct; freed by lh_config_finish) */
	LH_CFG_INT,    /* int64_t, within [min, max] */
	LH_CFG_DOUBLE, /* double, within [min, max] */
	LH_CFG_BOOL,   /* bool: true/false/1/0/yes/no/on/off */
	LH_CFG_ENUM,   /* char *, one of the words in `choices` ("a|b|c") */
} lh_cfg_type_t;

typedef struct lh_cfg_def {
	const char *name; /* "kafka.brokers": the key in the file */
	lh_cfg_type_t type;
	const char *def;  /* default, as text; NULL = unset (empty for STR) */
	double min, max;  /* bounds for INT and DOUBLE (ignored when min == max == 0) */
	const char *choices; /* ENUM words, "a|b|c" */
	const char *env;  /* "LH_KAFKA_BROKERS", or NULL */
	const char *flag; /* "brokers" for --brokers, or NULL */
	bool reloadable;
	bool secret;      /* never printed, not even in --help defaults */
	const char *desc;
	size_t offset;    /* offsetof(daemon config struct, field) */
} lh_cfg_def_t;

#define LH_CFG_END {NULL, 0, NULL, 0, 0, NULL, NULL, NULL, false, false, NULL, 0}

/* A daemon's settings are a NULL-terminated array of tables (the common one first). */
typedef struct lh_cfg_spec {
	const char *prog;	     /* "lh-coordinator" */
	const char *usage;	     /* one line after "usage: prog " */
	const char *summary;	     /* a paragraph for --help */
	const lh_cfg_def_t *tables[4]; /* NULL-terminated */
} lh_cfg_spec_t;

/* Load settings into cfg. argv may hold the flags of the tables, --config FILE, --help,
 * --config-doc (prints the tables as Markdown for docs/configuration.md). Positional
 * arguments (and everything after "--") are left for the caller: *ret_rest / *ret_nrest point into
 * argv (borrowed). Returns LH_OK, LH_ERR_CONFIG with err explaining, or LH_ERR_NOT_FOUND when
 * --help or --config-doc was asked (printed to stdout then). */
lh_err_t lh_config_load(const lh_cfg_spec_t *spec, void *cfg, int argc, char **argv,
			char ***ret_rest, int *ret_nrest, lh_error_t *err);
/* Free the strings held in cfg. */
void lh_config_finish(const lh_cfg_spec_t *spec, void *cfg);
void lh_config_help(const lh_cfg_spec_t *spec, FILE *out);
/* Markdown reference of the tables, for docs/configuration.md. */
void lh_config_markdown(const lh_cfg_spec_t *spec, FILE *out);

/* Settings every daemon shares. */
typedef struct lh_common_cfg {
	char *brokers;
	char *topic_prefix;
	char *pg_url;
	char *log_level;
	char *log_debug;
	char *tenant;
	char *tiers; /* "fast,standard,frontier" */
	char *state_dir;
	int64_t events_partitions;
	/* memory embeddings (common/embedder.h): empty url = the hashing embedder */
	char *embed_url;
	char *embed_model;
	char *embed_query_model;
	char *embed_key_env;
	char *embed_key_file;
	int64_t embed_batch;
	int64_t embed_timeout_ms;
	int64_t embed_dims;
	double embed_near_dup;
	double fusion_k;
	double fusion_vector_weight;
	int64_t blob_threshold; /* bytes: larger outputs go to the blobs table */
} lh_common_cfg_t;

/* The common table. A daemon's config struct starts with `lh_common_cfg_t common;` so that these
 * offsets hold for it. Static. */
extern const lh_cfg_def_t lh_config_common_table[];

/* Applies log_level / log_debug of a loaded common config to the logger. */
lh_err_t lh_config_apply_logging(const lh_common_cfg_t *c, lh_error_t *err);

/* Split "a,b,c" into at most max words (trimmed, non-empty) stored in out (pointers into a copy
 * made in buf of size bufsz). Returns the count, or -1 if there were more than max or buf is too
 * small. */
int lh_config_split(const char *list, char *buf, size_t bufsz, const char **out, int max);

#endif
