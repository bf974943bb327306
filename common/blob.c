/* blob.c — content-addressed blobs (blob.h). Hashes from OpenSSL's libcrypto. */
#include "blob.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void lh_blob_ref_of(const void *data, size_t len, char ret_ref[LH_BLOB_REF_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++) {
		ret_ref[2 * i] = hex[md[i] >> 4];
		ret_ref[2 * i + 1] = hex[md[i] & 15];
	}
	ret_ref[LH_BLOB_REF_LEN] = 0;
}

bool lh_blob_ref_ok(const char *s)
{
	if (!s || strlen(s) != LH_BLOB_REF_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

lh_err_t lh_blob_put(lh_pg_t *pg, const void *data, size_t len, const char *content_type,
		     char ret_ref[LH_BLOB_REF_LEN + 1], lh_error_t *err)
{
	char ref[LH_BLOB_REF_LEN + 1], size[24];
	const char *params[4];
	int lens[4] = {0, 0, 0, 0}, binary[4] = {0, 0, 0, 1};
	lh_err_t rc;
	if (len > LH_BLOB_MAX_BYTES)
		return lh_error_set(err, LH_ERR_TOO_LARGE, "blob of %zu bytes exceeds the %d-byte limit",
				    len, LH_BLOB_MAX_BYTES);
	lh_blob_ref_of(data, len, ref);
	snprintf(size, sizeof(size), "%zu", len);
	params[0] = ref;
	params[1] = content_type ? content_type : "application/json";
	params[2] = size;
	params[3] = len ? data : "";
	lens[3] = (int)len;
	if ((rc = lh_pg_query(pg, "blob_put", 4, params, lens, binary, NULL, err))) {
		lh_error_prefix(err, "could not store blob %.12s", ref);
		return rc;
	}
	memcpy(ret_ref, ref, sizeof(ref));
	return LH_OK;
}

lh_err_t lh_blob_get(lh_pg_t *pg, const char *ref, lh_buf_t *out, lh_error_t *err)
{
	const char *params[1] = {ref};
	lh_pg_res_t *res = NULL;
	char check[LH_BLOB_REF_LEN + 1];
	lh_err_t rc;
	if (!lh_blob_ref_ok(ref))
		return lh_error_set(err, LH_ERR_INVALID, "not a blob ref: want 64 lower-case hex digits");
	if ((rc = lh_pg_query(pg, "blob_get", 1, params, NULL, NULL, &res, err)))
		return rc;
	if (lh_pg_nrows(res) == 0) {
		lh_pg_res_free(res);
		return lh_error_set(err, LH_ERR_NOT_FOUND, "no blob %.12s", ref);
	}
	/* blob_get returns content_type and the bytes in bytea's text form, "\\x" then hex */
	{
		const char *hex = lh_pg_get(res, 0, 1);
		size_t n;
		if (hex[0] == '\\' && hex[1] == 'x')
			hex += 2;
		n = strlen(hex);
		lh_buf_reset(out);
		if (n % 2) {
			lh_pg_res_free(res);
			return lh_error_set(err, LH_ERR_PG, "blob %.12s: malformed hex from server", ref);
		}
		for (size_t i = 0; i < n; i += 2) {
			unsigned char c;
			char pair[3] = {hex[i], hex[i + 1], 0};
			char *end;
			c = (unsigned char)strtoul(pair, &end, 16);
			if (*end) {
				lh_pg_res_free(res);
				return lh_error_set(err, LH_ERR_PG, "blob %.12s: malformed hex from server",
						    ref);
			}
			lh_buf_append(out, &c, 1);
		}
	}
	lh_pg_res_free(res);
	lh_blob_ref_of(out->data ? out->data : "", out->len, check);
	if (strcmp(check, ref) != 0)
		return lh_error_set(err, LH_ERR_PG, "blob %.12s is corrupt: its bytes hash to %.12s", ref,
				    check);
	return LH_OK;
}

lh_err_t lh_blob_get_json(lh_pg_t *pg, const char *ref, json_t **ret_value, lh_error_t *err)
{
	lh_buf_t b;
	json_error_t je;
	json_t *v;
	lh_err_t rc;
	lh_buf_init(&b);
	if ((rc = lh_blob_get(pg, ref, &b, err)))
		goto out_free;
	v = json_loadb(b.data ? b.data : "", b.len, JSON_DECODE_ANY, &je);
	if (!v) {
		rc = lh_error_set(err, LH_ERR_INVALID, "blob %.12s is not JSON: %s", ref, je.text);
		goto out_free;
	}
	*ret_value = v;
out_free:
	lh_buf_finish(&b);
	return rc;
}

lh_err_t lh_blob_offload(lh_pg_t *pg, const json_t *value, size_t threshold,
			 char ret_ref[LH_BLOB_REF_LEN + 1], bool *ret_stored, lh_error_t *err)
{
	char *dump = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n;
	lh_err_t rc = LH_OK;
	if (!dump)
		return lh_error_set(err, LH_ERR_NOMEM, "could not encode the output");
	n = strlen(dump);
	ret_ref[0] = 0;
	*ret_stored = false;
	if (n > threshold) {
		if ((rc = lh_blob_put(pg, dump, n, "application/json", ret_ref, err)) == LH_OK)
			*ret_stored = true;
	}
	free(dump);
	return rc;
}

lh_err_t lh_blob_resolve_output(lh_pg_t *pg, json_t *obj, lh_error_t *err)
{
	const char *ref = json_string_value(json_object_get(obj, "output_ref"));
	json_t *out = json_object_get(obj, "output"), *v = NULL;
	lh_err_t rc;
	if (!json_is_object(obj) || !ref || (out && !json_is_null(out)))
		return LH_OK;
	if ((rc = lh_blob_get_json(pg, ref, &v, err)))
		return rc;
	if (json_object_set_new(obj, "output", v))
		return lh_error_set(err, LH_ERR_NOMEM, "could not set the output");
	return LH_OK;
}

lh_err_t lh_blob_gc(lh_pg_t *pg, int older_than_days, int64_t *ret_deleted, lh_error_t *err)
{
	char days[16];
	const char *params[1] = {days};
	lh_pg_res_t *res = NULL;
	lh_err_t rc;
	if (older_than_days < 0 || older_than_days > 36500)
		return lh_error_set(err, LH_ERR_INVALID, "older-than-days must be 0..36500");
	snprintf(days, sizeof(days), "%d", older_than_days);
	if ((rc = lh_pg_query(pg, "blob_gc", 1, params, NULL, NULL, &res, err)))
		return rc;
	if (ret_deleted)
		*ret_deleted = lh_pg_nrows(res) ? lh_pg_get_i64(res, 0, 0) : 0;
	lh_pg_res_free(res);
	return LH_OK;
}

struct lh_blob_store {
	char *pg_url;
	size_t threshold;
	lh_pg_t *pg;
};

lh_blob_store_t *lh_blob_store_new(const char *pg_url, size_t threshold)
{
	lh_blob_store_t *bs = calloc(1, sizeof(*bs));
	if (!bs)
		abort();
	bs->pg_url = strdup(pg_url ? pg_url : "");
	if (!bs->pg_url)
		abort();
	bs->threshold = threshold;
	return bs;
}

lh_blob_store_t *lh_blob_store_free(lh_blob_store_t *bs)
{
	if (!bs)
		return NULL;
	lh_pg_free(bs->pg);
	free(bs->pg_url);
	free(bs);
	return NULL;
}

bool lh_blob_store_offload(lh_blob_store_t *bs, const json_t *output,
			   char ret_ref[LH_BLOB_REF_LEN + 1])
{
	lh_error_t err = {0};
	bool stored = false;
	ret_ref[0] = 0;
	if (!bs || !*bs->pg_url || !output)
		return false;
	if (!bs->pg && lh_pg_connect(bs->pg_url, &bs->pg, &err))
		goto out_warn;
	if (lh_blob_offload(bs->pg, output, bs->threshold, ret_ref, &stored, &err))
		goto out_warn;
	return stored;
out_warn:
	lh_log_warn("blob.offload_failed", err.msg, "action", "output sent inline");
	ret_ref[0] = 0;
	return false;
}

lh_err_t lh_blob_store_get_json(lh_blob_store_t *bs, const char *ref, json_t **ret_value,
				lh_error_t *err)
{
	lh_err_t rc;
	if (!bs || !*bs->pg_url)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "output is a blob but no postgresql url is configured");
	if (!bs->pg && (rc = lh_pg_connect(bs->pg_url, &bs->pg, err)))
		return rc;
	return lh_blob_get_json(bs->pg, ref, ret_value, err);
}
