/* listen.c — ADDR:PORT parsing for the metrics endpoints (listen.h). */
#include "listen.h"

#include <string.h>

lh_err_t lh_listen_parse(const char *s, char *ret_host, size_t host_size, int *ret_port,
				  lh_error_t *err)
{
	const char *colon, *h0, *h1, *p;
	long port = 0;
	size_t hl;
	if (!s || !*s)
		return lh_error_set(err, LH_ERR_CONFIG, "metrics listen address is empty: give ADDR:PORT");
	if (*s == '[') {
		h0 = s + 1;
		h1 = strchr(h0, ']');
		if (!h1 || h1[1] != ':')
			return lh_error_set(err, LH_ERR_CONFIG,
					    "metrics listen address \"%.64s\": an IPv6 address is "
					    "written [ADDR]:PORT",
					    s);
		colon = h1 + 1;
	} else {
		h0 = s;
		colon = strrchr(s, ':');
		if (!colon)
			return lh_error_set(err, LH_ERR_CONFIG,
					    "metrics listen address \"%.64s\" has no port: give "
					    "ADDR:PORT",
					    s);
		h1 = colon;
		if (memchr(h0, ':', (size_t)(h1 - h0)))
			return lh_error_set(err, LH_ERR_CONFIG,
					    "metrics listen address \"%.64s\": an IPv6 address is "
					    "written [ADDR]:PORT",
					    s);
	}
	hl = (size_t)(h1 - h0);
	if (hl == 0)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "metrics listen address \"%.64s\" has no address before the port",
				    s);
	if (hl >= host_size)
		return lh_error_set(err, LH_ERR_CONFIG, "metrics listen address is too long (%zu bytes)",
				    hl);
	for (const char *c = h0; c < h1; c++)
		if ((unsigned char)*c <= ' ' || *c == '/' || *c == '[' || *c == ']' ||
		    (unsigned char)*c >= 0x7f)
			return lh_error_set(err, LH_ERR_CONFIG,
					    "metrics listen address \"%.64s\" holds a character not "
					    "allowed in an address",
					    s);
	p = colon + 1;
	if (!*p)
		return lh_error_set(err, LH_ERR_CONFIG, "metrics listen address \"%.64s\" has no port", s);
	for (const char *c = p; *c; c++) {
		if (*c < '0' || *c > '9' || port > 65535)
			return lh_error_set(err, LH_ERR_CONFIG,
					    "metrics listen port \"%.16s\" is not a number from 0 to "
					    "65535",
					    p);
		port = port * 10 + (*c - '0');
	}
	if (port > 65535)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "metrics listen port \"%.16s\" is not a number from 0 to 65535", p);
	memcpy(ret_host, h0, hl);
	ret_host[hl] = 0;
	*ret_port = (int)port;
	return LH_OK;
}
