/* listen.h — the "ADDR:PORT" form of a daemon's metrics endpoint (lh-materializer and lh-worker
 * --metrics-listen). Pure; fuzzed by tests/fuzz/fuzz_metrics_listen.c. */
#ifndef LH_LISTEN_H
#define LH_LISTEN_H

#include <stddef.h>

#include "err.h"

/* "ADDR:PORT" (ADDR an IPv4 address or host name, or an IPv6 address in brackets: "[::1]:9400";
 * PORT 0..65535, 0 for any free port). Writes the address without brackets into ret_host
 * (host_size bytes, NUL-terminated) and the port, only on success; LH_ERR_CONFIG with a message
 * naming what is wrong otherwise. */
lh_err_t lh_listen_parse(const char *s, char *ret_host, size_t host_size, int *ret_port,
			 lh_error_t *err);

#endif
