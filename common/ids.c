#include "ids.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t lh_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t lh_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

lh_id_t lh_uuid7_new(void)
{
	lh_id_t id;
	uint64_t ms = (uint64_t)(lh_now_us() / 1000);
	if (RAND_bytes(id.b, sizeof(id.b)) != 1) {
		/* libcrypto's generator failing is not recoverable; fall back to time entropy */
		uint64_t x = (uint64_t)lh_mono_us() * 0x9E3779B97F4A7C15ull;
		memcpy(id.b + 8, &x, 8);
	}
	for (int i = 0; i < 6; i++)
		id.b[i] = (uint8_t)(ms >> (40 - 8 * i));
	id.b[6] = (uint8_t)(0x70 | (id.b[6] & 0x0f));
	id.b[8] = (uint8_t)(0x80 | (id.b[8] & 0x3f));
	return id;
}

void lh_hex(const uint8_t *bytes, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[bytes[i] >> 4];
		out[2 * i + 1] = hx[bytes[i] & 15];
	}
	out[2 * n] = 0;
}

void lh_uuid_fmt(const lh_id_t *id, char out[LH_UUID_STR_LEN + 1])
{
	char h[33];
	lh_hex(id->b, 16, h);
	snprintf(out, LH_UUID_STR_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16,
		 h + 20);
}

void lh_id_hex(const lh_id_t *id, char out[LH_ID_HEX_LEN + 1]) { lh_hex(id->b, 16, out); }

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

lh_err_t lh_uuid_parse(const char *s, lh_id_t *ret_id)
{
	lh_id_t id;
	int n = 0;
	size_t len;
	if (!s)
		return LH_ERR_INVALID;
	len = strlen(s);
	if (len != 36 && len != 32)
		return LH_ERR_INVALID;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-')
				return LH_ERR_INVALID;
			continue;
		}
		if (i + 1 >= len)
			return LH_ERR_INVALID;
		hi = hexval(s[i]);
		lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0 || n >= 16)
			return LH_ERR_INVALID;
		id.b[n++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	if (n != 16)
		return LH_ERR_INVALID;
	*ret_id = id;
	return LH_OK;
}

bool lh_id_is_zero(const lh_id_t *id)
{
	for (int i = 0; i < 16; i++)
		if (id->b[i])
			return false;
	return true;
}

bool lh_id_eq(const lh_id_t *a, const lh_id_t *b) { return memcmp(a->b, b->b, 16) == 0; }

void lh_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void lh_sha256_hex(const void *data, size_t len, char hex[65])
{
	uint8_t d[32];
	lh_sha256(data, len, d);
	lh_hex(d, 32, hex);
}

lh_id_t lh_event_id_derive(const lh_id_t *plan_id, const void *cause, size_t cause_len,
			   const char *type, uint32_t index)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t d[32], ix[4] = {(uint8_t)(index >> 24), (uint8_t)(index >> 16), (uint8_t)(index >> 8),
				  (uint8_t)index};
	unsigned int n = 32;
	lh_id_t id;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, plan_id->b, 16);
	EVP_DigestUpdate(ctx, "", 1);
	EVP_DigestUpdate(ctx, cause, cause_len);
	EVP_DigestUpdate(ctx, "", 1);
	EVP_DigestUpdate(ctx, type, strlen(type));
	EVP_DigestUpdate(ctx, "", 1);
	EVP_DigestUpdate(ctx, ix, 4);
	EVP_DigestFinal_ex(ctx, d, &n);
	EVP_MD_CTX_free(ctx);
	memcpy(id.b, d, 16);
	return id;
}

lh_id_t lh_event_id_derivef(const lh_id_t *plan_id, const char *type, uint32_t index,
			    const char *cause_fmt, ...)
{
	char cause[512];
	va_list ap;
	int n;
	va_start(ap, cause_fmt);
	n = vsnprintf(cause, sizeof(cause), cause_fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(cause))
		n = sizeof(cause) - 1;
	return lh_event_id_derive(plan_id, cause, (size_t)n, type, index);
}
