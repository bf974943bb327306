/* fuzz_jsonschema.c — fuzz target for the JSON Schema validator (common/jsonschema*.c).
 *
 * Input: SCHEMA NUL VALUE (both JSON texts; without a NUL the same text is both). When the
 * schema compiles, validating the value must return LH_OK, LH_ERR_SCHEMA or LH_ERR_TOO_LARGE,
 * never crash, loop or leak, and every message — compile errors too — must be non-empty, valid
 * UTF-8 (Jansson accepts it as a string: messages end up in JSON) and shorter than the error
 * buffer. Validation is repeated to check that it is deterministic. External refs resolve
 * through a resolver: "self" is the schema itself, "str" a fixed string schema. */
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"
#include "replay.h"

struct ctx {
	const json_t *self;
	json_t *str;
};

static const json_t *resolve(const char *ref, void *opaque)
{
	struct ctx *c = opaque;
	if (strcmp(ref, "self") == 0)
		return c->self;
	if (strcmp(ref, "str") == 0)
		return c->str;
	return NULL;
}

static void check_msg(const lh_error_t *err)
{
	json_t *s;
	if (!err->msg[0] || strlen(err->msg) >= sizeof(err->msg))
		abort();
	s = json_string(err->msg);
	if (!s)
		abort(); /* not valid UTF-8 */
	json_decref(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t slen = nul ? (size_t)(nul - data) : size;
	const uint8_t *vdata = nul ? nul + 1 : data;
	size_t vlen = nul ? size - slen - 1 : size;
	json_t *schema = json_loadb((const char *)data, slen, JSON_DECODE_ANY, NULL);
	json_t *value = json_loadb((const char *)vdata, vlen, JSON_DECODE_ANY, NULL);
	struct ctx c = {.self = schema,
			.str = json_pack("{s:s, s:i}", "type", "string", "maxLength", 3)};
	lh_jsonschema_opts_t opts = {.resolve = resolve, .opaque = &c};
	lh_jsonschema_t *s = NULL;
	lh_error_t err = {0}, again = {0};
	lh_err_t rc;

	if (schema) {
		rc = lh_jsonschema_compile_ex(schema, &opts, &s, &err);
		if (rc != LH_OK) {
			if (s)
				abort();
			check_msg(&err);
		} else if (value) {
			rc = lh_jsonschema_validate(s, value, &err);
			if (rc != LH_OK && rc != LH_ERR_SCHEMA && rc != LH_ERR_TOO_LARGE)
				abort();
			if (rc != LH_OK)
				check_msg(&err);
			if (lh_jsonschema_validate(s, value, &again) != rc ||
			    (rc != LH_OK && strcmp(err.msg, again.msg) != 0))
				abort(); /* deterministic */
		}
	}
	lh_jsonschema_free(s);
	json_decref(schema);
	json_decref(value);
	json_decref(c.str);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv)
{
	return lh_fuzz_replay_main(argc, argv, "fuzz_jsonschema");
}
#endif
