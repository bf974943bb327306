#include "err.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	const char *str;
} errs[LH_ERR__COUNT] = {
	{"LH_OK", "success"},
	{"LH_ERR_INVALID", "invalid input"},
	{"LH_ERR_NOMEM", "out of memory"},
	{"LH_ERR_IO", "input/output error"},
	{"LH_ERR_DECODE", "could not decode"},
	{"LH_ERR_TOO_LARGE", "too large"},
	{"LH_ERR_NOT_FOUND", "not found"},
	{"LH_ERR_KAFKA", "kafka error"},
	{"LH_ERR_PG", "postgresql error"},
	{"LH_ERR_HTTP", "http error"},
	{"LH_ERR_TIMEOUT", "timed out"},
	{"LH_ERR_CONFIG", "configuration error"},
	{"LH_ERR_STATE", "illegal state transition"},
	{"LH_ERR_SCHEMA", "does not match schema"},
	{"LH_ERR_UNSUPPORTED", "not supported"},
	{"LH_ERR_CONFLICT", "conflict"},
	{"LH_ERR_INTERNAL", "internal error"},
	{"LH_ERR_UNAVAILABLE", "service unavailable"},
};

const char *lh_err_name(lh_err_t code)
{
	int i = -(int)code;
	if (i < 0 || i >= LH_ERR__COUNT)
		return "LH_ERR_UNKNOWN";
	return errs[i].name;
}

const char *lh_err_str(lh_err_t code)
{
	int i = -(int)code;
	if (i < 0 || i >= LH_ERR__COUNT)
		return "unknown error";
	return errs[i].str;
}

lh_err_t lh_error_setv(lh_error_t *err, lh_err_t code, const char *fmt, va_list ap)
{
	if (!err)
		return code;
	err->code = code;
	err->retriable = false;
	err->fatal = false;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

lh_err_t lh_error_set(lh_error_t *err, lh_err_t code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lh_error_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

lh_err_t lh_error_retry(lh_error_t *err, lh_err_t code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lh_error_setv(err, code, fmt, ap);
	va_end(ap);
	if (err)
		err->retriable = true;
	return code;
}

void lh_error_prefix(lh_error_t *err, const char *fmt, ...)
{
	char pre[256], old[sizeof(err->msg)];
	va_list ap;
	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", pre, old);
}

void lh_error_clear(lh_error_t *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}
