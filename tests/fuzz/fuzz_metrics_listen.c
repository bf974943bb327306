/* fuzz_metrics_listen.c — fuzz target for lh_listen_parse (common/listen.c), the
 * parser of lh-materializer's --metrics-listen ADDR:PORT.
 *
 * Properties: an accepted input gives a non-empty address without brackets, blanks, '/' or
 * control bytes, with a ':' only when the input was bracketed, and a port from 0 to 65535; the
 * address and port written back in the canonical form parse again to the same values. A refused
 * input leaves the outputs untouched and says why (a non-empty message). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listen.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), host[64], again[64], canon[96];
	int port = -7, port2 = -7;
	lh_error_t err = {0};
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	memset(host, 'x', sizeof(host));
	if (lh_listen_parse(s, host, sizeof(host), &port, &err) != LH_OK) {
		if (!err.msg[0] || port != -7 || host[0] != 'x')
			abort();
		free(s);
		return 0;
	}
	if (!host[0] || port < 0 || port > 65535 || strlen(host) >= sizeof(host))
		abort();
	for (const char *c = host; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == '/' || *c == '[' || *c == ']' ||
		    (unsigned char)*c >= 0x7f)
			abort();
	if (strchr(host, ':') && s[0] != '[')
		abort();
	snprintf(canon, sizeof(canon), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	if (lh_listen_parse(canon, again, sizeof(again), &port2, &err) != LH_OK ||
	    strcmp(again, host) != 0 || port2 != port)
		abort();
	free(s);
	return 0;
}

#ifndef LH_FUZZ_LIBFUZZER
int main(int argc, char **argv) { return lh_fuzz_replay_main(argc, argv, "fuzz_metrics_listen"); }
#endif
