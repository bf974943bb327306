/* tools.h — the worker's built-in tools and the pure checks around them.
 *
 * Tools offered to act tasks:
 *   http_fetch {url, max_bytes?} — GET of an allow-listed host over lh_http_t: no redirects
 *     followed (a 3xx comes back with its Location, which the model must fetch as a new call,
 *     checked again), private, loopback and link-local addresses refused unless allowed — by
 *     name and literal before the request, and on the address actually connected to (after
 *     DNS, so a name that resolves to such an address is refused: DNS rebinding), body cut to a size limit, a time limit; sends the call's
 *     idempotency key as Idempotency-Key. The result is JSON text {status, truncated, body,
 *     location?} or {error}.
 *   ask_human {question} — handled by the worker itself: the attempt ends with input.requested.
 * Everything here runs on the worker's loop; nothing blocks. */
#ifndef LH_WORKER_TOOLS_H
#define LH_WORKER_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "http_client.h"
#include "llm.h"

#define LH_TOOLS_N 2
#define LH_TOOL_HASH_LEN 16 /* hex digits of a call's args hash */
/* Bodies up to max(4 x the limit, this) are fetched and cut; larger ones are an error. */
#define LH_TOOL_FETCH_CAP (1024 * 1024)

typedef struct lh_tools_cfg {
	const char *allow_hosts; /* comma-separated host names or addresses; "" = none allowed */
	bool allow_private;	 /* loopback, private and link-local addresses (tests) */
	size_t max_bytes;	 /* body cap, and the largest max_bytes a call may ask for */
	long timeout_ms;	 /* whole exchange */
	/* "host:port:address" entries pinning names (curl's --resolve); NULL-ended, may be NULL.
	 * The address check below applies to pinned addresses too (tests use it to play a DNS
	 * server that answers with a loopback address). */
	const char *const *resolve;
} lh_tools_cfg_t;

/* The tool definitions (LH_TOOLS_N of them: http_fetch, ask_human). Their parameter schemas are
 * new references owned by *ret_params (free with lh_tools_defs_finish). */
void lh_tools_defs(lh_llm_tool_t ret_defs[LH_TOOLS_N], json_t *ret_params[LH_TOOLS_N]);
void lh_tools_defs_finish(json_t *params[LH_TOOLS_N]);

/* True when host (a name or an IPv4/IPv6 literal, brackets allowed) is "localhost" or an
 * address in a loopback, private (RFC 1918, fc00::/7), link-local, carrier-grade NAT,
 * unspecified or IPv4-mapped private range. */
bool lh_tool_host_private(const char *host);

struct sockaddr;
/* True when addr (AF_INET or AF_INET6) is loopback, private, link-local, CGNAT, unspecified,
 * multicast or an IPv4-mapped one of those; other families are refused too (true). */
bool lh_tool_addr_private(const struct sockaddr *addr);

/* Check url for http_fetch: http or https, a host in allow_hosts (exact, case-insensitive), no
 * user info, and not a private address unless allow_private. ret_host (size n) receives the
 * host. LH_ERR_INVALID with the reason. */
lh_err_t lh_tool_url_check(const char *url, const char *allow_hosts, bool allow_private,
			   char *ret_host, size_t n, lh_error_t *err);

/* A call's identity for no-progress detection: the first LH_TOOL_HASH_LEN hex digits of
 * sha256(name "\n" canonical arguments), canonical = compact JSON with sorted keys (NULL
 * arguments hash as "null"). */
void lh_tool_call_hash(const char *name, const json_t *args, char ret_hex[LH_TOOL_HASH_LEN + 1]);

/* Idempotency key of call number index of an attempt: "lh-PLANHEX32-tN-aN-cN". */
void lh_tool_idempotency_key(const char *plan_hex, long long task_no, long long attempt,
			     int index, char ret_key[96]);

/* Result text of an http_fetch (new string). */
typedef void (*lh_tool_done_cb)(char *result, void *opaque);

/* Start an http_fetch with arguments args (borrowed). LH_OK: cb runs once, later, on the loop,
 * with the result (steals it). Anything wrong with the arguments or the URL: an error is
 * returned, cb never runs, and *ret_result (new string) is the {error} the model sees. */
lh_err_t lh_tool_http_fetch(lh_http_t *http, const lh_tools_cfg_t *cfg, const json_t *args,
			    const char *idempotency_key, lh_tool_done_cb cb, void *opaque,
			    char **ret_result, lh_error_t *err);

/* {"error": msg} as a new string. */
char *lh_tool_error_result(const char *msg);

#endif
