/* fuzz_event.c — fuzz target for the event decoders (common/codec.c).
 *
 * msgpack: decode any bytes; when they decode, the event must re-encode, the re-encoding must
 * decode to the same JSON form, and encoding is a fixed point (encode(decode(encode(ev))) ==
 * encode(ev)). JSON: when the bytes parse as JSON, lh_event_from_json must not crash, and an
 * event it accepts must survive msgpack and JSON round trips unchanged. Any violation aborts.
 *
 * Built with -DLH_FUZZ_LIBFUZZER and -fsanitize=fuzzer it is a libFuzzer target (see README.md);
 * otherwise main() replays every file of the directories (or files) given as arguments, which is
 * how the seed corpus runs as an ordinary test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "event.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const lh_error_t *err)
{
	fprintf(stderr, "fuzz_event: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
	abort();
}

/* ev must encode, decode back and keep its JSON form; returns the encoding in out. */
static void check_roundtrip(const lh_event_t *ev, lh_buf_t *out)
{
	lh_event_t *back = NULL;
	lh_buf_t again;
	lh_error_t err = {0};
	json_t *j1, *j2;
	lh_err_t rc = lh_event_encode(ev, out, &err);

	if (rc == LH_ERR_TOO_LARGE)
		return; /* float32 inputs grow to float64: a 1 MiB input may not fit again */
	if (rc)
		die("a decoded event does not encode", &err);
	if (lh_event_decode(out->data, out->len, &back, &err))
		die("an encoded event does not decode", &err);
	j1 = lh_event_to_json(ev);
	j2 = lh_event_to_json(back);
	if (!j1 || !j2 || !json_equal(j1, j2))
		die("the JSON form changed across encode and decode", NULL);
	lh_buf_init(&again);
	if (lh_event_encode(back, &again, &err))
		die("a re-decoded event does not encode", &err);
	if (again.len != out->len || memcmp(again.data, out->data, out->len) != 0)
		die("encoding is not a fixed point", NULL);
	lh_buf_finish(&again);
	json_decref(j1);
	json_decref(j2);
	lh_event_free(back);
}

static void check_json_form(const lh_event_t *ev)
{
	lh_event_t *back = NULL;
	lh_error_t err = {0};
	json_t *j = lh_event_to_json(ev), *j2;
	if (!j)
		die("lh_event_to_json failed", NULL);
	if (lh_event_from_json(j, &back, &err))
		die("the JSON form of a decoded event is rejected", &err);
	j2 = lh_event_to_json(back);
	if (!j2 || !json_equal(j, j2))
		die("the JSON form changed across lh_event_from_json", NULL);
	json_decref(j);
	json_decref(j2);
	lh_event_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lh_event_t *ev = NULL;
	lh_error_t err = {0};
	lh_buf_t buf;
	json_t *j;

	lh_buf_init(&buf);
	if (lh_event_decode(data, size, &ev, &err) == LH_OK) {
		check_roundtrip(ev, &buf);
		check_json_form(ev);
		lh_event_free(ev);
		ev = NULL;
	} else if (!err.msg[0] || strlen(err.msg) >= sizeof(err.msg)) {
		die("an error without a message", NULL);
	}

	/* the JSON form, for inputs that are JSON text */
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	if (j) {
		if (lh_event_from_json(j, &ev, &err) == LH_OK) {
			lh_buf_reset(&buf);
			check_roundtrip(ev, &buf);
			check_json_form(ev);
			lh_event_free(ev);
		}
		json_decref(j);
	}
	lh_buf_finish(&buf);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_event"); }
#endif
