/* endpoints.c — llm.models parsed into endpoints (see endpoints.h). */
#include "endpoints.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or(const char *s, const char *dflt)
{
	char *r = strdup(s ? s : dflt ? dflt : "");
	if (!r)
		abort();
	return r;
}

void lh_endpoints_free(lh_endpoint_t *eps, size_t n)
{
	for (size_t i = 0; eps && i < n; i++) {
		free(eps[i].provider);
		free(eps[i].base_url);
		free(eps[i].model);
		free(eps[i].api_key_env);
		free(eps[i].api_key_file);
	}
	free(eps);
}

static void copy_cfg(lh_endpoint_t *e, const lh_endpoint_t *d)
{
	memset(e, 0, sizeof(*e));
	e->provider = dup_or(d->provider, "auto");
	e->base_url = dup_or(d->base_url, "");
	e->model = dup_or(d->model, "");
	e->api_key_env = dup_or(d->api_key_env, "");
	e->api_key_file = dup_or(d->api_key_file, "");
	e->price_input = d->price_input;
	e->price_output = d->price_output;
	e->price_cached = d->price_cached;
	e->context_window = d->context_window;
	e->max_concurrency = d->max_concurrency;
	e->requests_per_minute = d->requests_per_minute;
	e->tokens_per_minute = d->tokens_per_minute;
}

lh_err_t lh_endpoints_parse(const char *json, const lh_endpoint_t *dflt, lh_endpoint_t **ret_eps,
			    size_t *ret_n, lh_error_t *err)
{
	json_error_t jerr;
	json_t *root, *item;
	lh_endpoint_t *eps;
	size_t i, n;

	if (!json || !*json) {
		eps = calloc(1, sizeof(*eps));
		if (!eps)
			abort();
		copy_cfg(&eps[0], dflt);
		*ret_eps = eps;
		*ret_n = 1;
		return LH_OK;
	}
	root = json_loads(json, 0, &jerr);
	if (!json_is_array(root) || json_array_size(root) == 0 ||
	    json_array_size(root) > LH_ENDPOINTS_MAX) {
		json_decref(root);
		return lh_error_set(err, LH_ERR_CONFIG,
				    "llm.models must be a JSON array of 1 to %d models%s%s",
				    LH_ENDPOINTS_MAX, root ? "" : ": ", root ? "" : jerr.text);
	}
	n = json_array_size(root);
	eps = calloc(n, sizeof(*eps));
	if (!eps)
		abort();
	json_array_foreach(root, i, item)
	{
		const char *provider = NULL, *base_url = NULL, *model = NULL, *key_env = NULL,
			   *key_file = NULL;
		double pi = dflt->price_input, po = dflt->price_output, pc = dflt->price_cached;
		double rpm = dflt->requests_per_minute, tpm = dflt->tokens_per_minute;
		json_int_t window = dflt->context_window, conc = dflt->max_concurrency;
		lh_endpoint_t *e = &eps[i];
		copy_cfg(e, dflt);
		if (json_unpack_ex(item, &jerr, JSON_STRICT,
				   "{s:s, s?s, s?s, s?s, s?s, s?F, s?F, s?F, s?I, s?I, s?F, s?F}",
				   "model", &model, "provider", &provider, "base_url", &base_url,
				   "api_key_env", &key_env, "api_key_file", &key_file, "price_input",
				   &pi, "price_output", &po,
				   "price_cached", &pc, "context_window", &window, "max_concurrency",
				   &conc, "requests_per_minute", &rpm, "tokens_per_minute",
				   &tpm) != 0) {
			lh_endpoints_free(eps, n);
			json_decref(root);
			return lh_error_set(err, LH_ERR_CONFIG, "llm.models[%zu]: %s", i, jerr.text);
		}
		if (!*model || (provider && strcmp(provider, "openai") && strcmp(provider, "anthropic") &&
				strcmp(provider, "scripted") && strcmp(provider, "auto")) ||
		    pi < 0 || po < 0 || pc < 0 || window < 0 || conc < 0 || rpm < 0 || tpm < 0) {
			lh_endpoints_free(eps, n);
			json_decref(root);
			return lh_error_set(err, LH_ERR_CONFIG,
					    "llm.models[%zu]: a model name is required, provider is "
					    "openai, anthropic, scripted or auto, numbers are >= 0",
					    i);
		}
		free(e->model);
		e->model = dup_or(model, NULL);
		if (provider) {
			free(e->provider);
			e->provider = dup_or(provider, NULL);
		}
		if (base_url) {
			free(e->base_url);
			e->base_url = dup_or(base_url, NULL);
		}
		if (key_env) {
			free(e->api_key_env);
			e->api_key_env = dup_or(key_env, NULL);
		}
		if (key_file) {
			free(e->api_key_file);
			e->api_key_file = dup_or(key_file, NULL);
		}
		e->price_input = pi;
		e->price_output = po;
		e->price_cached = pc;
		e->context_window = window;
		e->max_concurrency = conc;
		e->requests_per_minute = rpm;
		e->tokens_per_minute = tpm;
	}
	json_decref(root);
	*ret_eps = eps;
	*ret_n = n;
	return LH_OK;
}
