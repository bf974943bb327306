/* conncap.h — the metrics endpoints' connection cap seen from outside (common/httpd.h), for the
 * integration tests of both daemons (0038 lh-materializer, 0041 lh-worker). */
#ifndef LH_TEST_CONNCAP_H
#define LH_TEST_CONNCAP_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct ts_conncap {
	int refused;	  /* connections the daemon closed or answered 503 within 5 s */
	int held;	  /* connections it kept open */
	int fds_before;	  /* the daemon's open descriptors before */
	int fds_peak;	  /* ... the most seen while the connections were open */
	int fds_after;	  /* ... once they were closed again */
	long get_at_cap;  /* GET /metrics while they were open: the status, 0 for none */
	long get_after;	  /* GET /metrics once they were closed (tried for up to 15 s) */
} ts_conncap_t;

/* Open cap + extra idle TCP connections to 127.0.0.1:port, served by process pid, without
 * sending anything; watch for 5 s (less than the endpoints' 10 s idle timeout, so only the cap
 * can close any) which the daemon closes, and its descriptor count (/proc/PID/fd); GET /metrics
 * while the rest are open; close them; wait (15 s at most) for the daemon's descriptors to come
 * back down, and GET /metrics again. cap + extra must stay under the listen backlog (128). */
void ts_conncap_probe(pid_t pid, int port, int cap, int extra, ts_conncap_t *ret);

/* What a capped endpoint must show after ts_conncap_probe(..., cap, extra, cc): extra refused,
 * cap held, the descriptors bounded (8 to spare for the daemon's other work) and back down, no
 * 200 at the cap and a 200 after. Prints the figures, and each failed condition; true when all
 * hold. (The tests' T_ counters are per file, so this returns instead of checking.) */
bool ts_conncap_ok(const ts_conncap_t *cc, int cap, int extra);

#endif
