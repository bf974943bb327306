/* codec_scan.c — the pre-scan of raw msgpack (step 1 of decoding, see codec.c): one linear pass
 * that checks lengths, nesting depth, string map keys and trailing bytes, so that msgpack-c never
 * allocates for elements that do not exist. */
#include "codec_int.h"

#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * msgpack: structural scan
 * ------------------------------------------------------------------------------------------- */

typedef struct scan_level {
	uint64_t left; /* items still to read (a map of n pairs has 2n) */
	uint64_t done; /* items read */
	bool map;
	const char *key; /* maps: the key of the value being read */
	size_t key_len;
} scan_level_t;

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void scan_path(lh_codec_ctx_t *c, const scan_level_t *lv, int top)
{
	c->n = 0;
	for (int i = 0; i < top; i++) {
		if (lv[i].map)
			lh_codec_push_key(c, lv[i].key ? lv[i].key : "?", lv[i].key ? lv[i].key_len : 1);
		else
			lh_codec_push_index(c, (size_t)lv[i].done);
	}
}

lh_err_t lh_codec_mp_scan(lh_codec_ctx_t *c, const unsigned char *d, size_t len)
{
	scan_level_t lv[LH_CODEC_MAX_DEPTH];
	int top = 0;
	size_t pos = 0;

	for (;;) {
		unsigned char b;
		size_t hdr = 1;	    /* header bytes */
		uint64_t skip = 0;  /* payload bytes */
		uint64_t items = 0; /* container: items to read */
		bool container = false, is_str = false;

		if (pos >= len)
			goto truncated;
		b = d[pos];
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
			/* fixint, nil, bool */
		} else if (b <= 0x8f) {
			container = true;
			items = 2u * (b & 0x0f);
		} else if (b <= 0x9f) {
			container = true;
			items = b & 0x0f;
		} else if (b <= 0xbf) {
			is_str = true;
			skip = b & 0x1f;
		} else {
			static const unsigned char fixed[] = {
				/* c4..df: payload bytes after the type byte for fixed-size types */
				[0xca - 0xc4] = 4, [0xcb - 0xc4] = 8, [0xcc - 0xc4] = 1, [0xcd - 0xc4] = 2,
				[0xce - 0xc4] = 4, [0xcf - 0xc4] = 8, [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2,
				[0xd2 - 0xc4] = 4, [0xd3 - 0xc4] = 8, [0xd4 - 0xc4] = 2, [0xd5 - 0xc4] = 3,
				[0xd6 - 0xc4] = 5, [0xd7 - 0xc4] = 9, [0xd8 - 0xc4] = 17,
			};
			int lenbytes = 0;
			switch (b) {
			case 0xc1:
				scan_path(c, lv, top);
				return lh_codec_fail(c, LH_ERR_DECODE, "invalid msgpack byte 0xc1 at offset %zu",
					    pos);
			case 0xc4: case 0xd9: lenbytes = 1; break;
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1; break;
			case 0xc8: lenbytes = 2; break;
			case 0xc9: lenbytes = 4; break;
			case 0xdc: case 0xde: lenbytes = 2; container = true; break;
			case 0xdd: case 0xdf: lenbytes = 4; container = true; break;
			default:
				skip = fixed[b - 0xc4];
			}
			if (lenbytes) {
				uint64_t n;
				if (len - pos - 1 < (size_t)lenbytes)
					goto truncated;
				n = be(d + pos + 1, lenbytes);
				hdr += (size_t)lenbytes;
				if (container)
					items = (b == 0xde || b == 0xdf) ? 2 * n : n;
				else
					skip = n + (b >= 0xc7 && b <= 0xc9 ? 1 : 0); /* ext: type byte */
				is_str = b >= 0xd9 && b <= 0xdb;
			}
		}
		if (len - pos < hdr)
			goto truncated;
		/* a map key must be a string */
		if (top > 0 && lv[top - 1].map && lv[top - 1].done % 2 == 0) {
			if (!is_str) {
				lv[top - 1].key = NULL;
				scan_path(c, lv, top - 1);
				return lh_codec_fail(c, LH_ERR_DECODE, "map key is not a string");
			}
			if (len - pos - hdr < skip)
				goto truncated;
			lv[top - 1].key = (const char *)d + pos + hdr;
			lv[top - 1].key_len = (size_t)skip;
		}
		if (container) {
			if (top + 1 > LH_CODEC_MAX_DEPTH) {
				scan_path(c, lv, top);
				return lh_codec_fail(c, LH_ERR_DECODE, "nesting deeper than %d levels",
					    LH_CODEC_MAX_DEPTH);
			}
			if (items > len - pos - hdr) /* every item takes at least one byte */
				goto truncated;
			pos += hdr;
			if (items > 0) {
				lv[top++] = (scan_level_t){.left = items, .map = (b & 0xf0) == 0x80 ||
										 b == 0xde || b == 0xdf};
				continue;
			}
		} else {
			if (len - pos - hdr < skip)
				goto truncated;
			pos += hdr + (size_t)skip;
		}
		/* one item complete: close every container it completes */
		while (top > 0) {
			scan_level_t *l = &lv[top - 1];
			l->done++;
			if (--l->left > 0)
				break;
			top--;
		}
		if (top == 0)
			break;
	}
	if (pos != len) {
		c->n = 0;
		return lh_codec_fail(c, LH_ERR_DECODE, "trailing bytes after the event (%zu of %zu bytes used)",
			    pos, len);
	}
	return LH_OK;

truncated:
	scan_path(c, lv, top);
	return lh_codec_fail(c, LH_ERR_DECODE, "truncated msgpack (%zu bytes)", len);
}

