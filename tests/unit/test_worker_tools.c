/* worker tools and limits: URL checks, call hashes, http_fetch against an in-process server,
 * the circuit breaker and the token bucket. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#include "breaker.h"
#include "endpoints.h"
#include "t.h"
#include "tools.h"

static void t_host_private(void)
{
	T_CHECK(lh_tool_host_private("127.0.0.1"));
	T_CHECK(lh_tool_host_private("127.8.9.1"));
	T_CHECK(lh_tool_host_private("10.1.2.3"));
	T_CHECK(lh_tool_host_private("172.16.0.1"));
	T_CHECK(lh_tool_host_private("172.31.255.255"));
	T_CHECK(!lh_tool_host_private("172.32.0.1"));
	T_CHECK(lh_tool_host_private("192.168.1.1"));
	T_CHECK(lh_tool_host_private("169.254.169.254"));
	T_CHECK(lh_tool_host_private("100.64.0.1"));
	T_CHECK(lh_tool_host_private("0.0.0.0"));
	T_CHECK(lh_tool_host_private("localhost"));
	T_CHECK(lh_tool_host_private("LocalHost"));
	T_CHECK(lh_tool_host_private("a.localhost"));
	T_CHECK(lh_tool_host_private("[::1]"));
	T_CHECK(lh_tool_host_private("::"));
	T_CHECK(lh_tool_host_private("[fe80::1]"));
	T_CHECK(lh_tool_host_private("[fd00::5]"));
	T_CHECK(lh_tool_host_private("[::ffff:10.0.0.1]"));
	T_CHECK(!lh_tool_host_private("[::ffff:8.8.8.8]"));
	T_CHECK(!lh_tool_host_private("8.8.8.8"));
	T_CHECK(!lh_tool_host_private("[2001:db8::1]"));
	T_CHECK(!lh_tool_host_private("docs.example.org"));
}

static void t_url_check(void)
{
	char host[64];
	lh_error_t err = {0};
	const char *allow = "docs.example.org, 127.0.0.1,[::1]";
	T_EQ_INT(lh_tool_url_check("https://docs.example.org/a?b=1", allow, false, host,
				   sizeof(host), &err),
		 LH_OK);
	T_EQ_STR(host, "docs.example.org");
	T_EQ_INT(lh_tool_url_check("http://DOCS.example.org:8080/", allow, false, host, sizeof(host),
				   &err),
		 LH_OK);
	T_EQ_STR(host, "DOCS.example.org");
	memset(&err, 0, sizeof(err));
	T_EQ_INT(lh_tool_url_check("https://evil.example.org/", allow, false, host, sizeof(host),
				   &err),
		 LH_ERR_INVALID);
	T_CHECK(strstr(err.msg, "not in the allowed hosts") != NULL);
	memset(&err, 0, sizeof(err));
	/* listed but loopback: refused unless private addresses are allowed */
	T_EQ_INT(lh_tool_url_check("http://127.0.0.1:9/x", allow, false, host, sizeof(host), &err),
		 LH_ERR_INVALID);
	T_CHECK(strstr(err.msg, "loopback") != NULL);
	memset(&err, 0, sizeof(err));
	T_EQ_INT(lh_tool_url_check("http://127.0.0.1:9/x", allow, true, host, sizeof(host), &err),
		 LH_OK);
	T_EQ_INT(lh_tool_url_check("http://[::1]:9/x", allow, true, host, sizeof(host), &err), LH_OK);
	T_EQ_STR(host, "[::1]");
	memset(&err, 0, sizeof(err));
	T_EQ_INT(lh_tool_url_check("http://[::1]:9/x", allow, false, host, sizeof(host), &err),
		 LH_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	/* user info is a classic way to smuggle another host */
	T_EQ_INT(lh_tool_url_check("http://docs.example.org@127.0.0.1/", allow, true, host,
				   sizeof(host), &err),
		 LH_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	T_EQ_INT(lh_tool_url_check("ftp://docs.example.org/", allow, true, host, sizeof(host), &err),
		 LH_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	T_EQ_INT(lh_tool_url_check("file:///etc/passwd", allow, true, host, sizeof(host), &err),
		 LH_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	T_EQ_INT(lh_tool_url_check("http://docs.example.org /", allow, true, host, sizeof(host),
				   &err),
		 LH_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	/* an empty list allows nothing */
	T_EQ_INT(lh_tool_url_check("https://docs.example.org/", "", true, host, sizeof(host), &err),
		 LH_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	T_EQ_INT(lh_tool_url_check("https://docs.example.org.evil.net/", allow, true, host,
				   sizeof(host), &err),
		 LH_ERR_INVALID);
}

static void t_call_hash(void)
{
	char a[LH_TOOL_HASH_LEN + 1], b[LH_TOOL_HASH_LEN + 1], c[LH_TOOL_HASH_LEN + 1];
	char k[96];
	json_t *x = json_loads("{\"url\":\"u\",\"max_bytes\":5}", 0, NULL);
	json_t *y = json_loads("{\"max_bytes\":5, \"url\":\"u\"}", 0, NULL);
	lh_tool_call_hash("http_fetch", x, a);
	lh_tool_call_hash("http_fetch", y, b);
	lh_tool_call_hash("ask_human", y, c);
	T_EQ_STR(a, b); /* key order does not matter */
	T_CHECK(strcmp(a, c) != 0);
	T_EQ_INT(strlen(a), LH_TOOL_HASH_LEN);
	json_decref(x);
	json_decref(y);
	lh_tool_idempotency_key("0123456789abcdef0123456789abcdef", 3, 2, 7, k);
	T_EQ_STR(k, "lh-0123456789abcdef0123456789abcdef-t3-a2-c7");
}

/* ---- http_fetch against an evhttp server in this process ---- */

static char last_idem[128];

static void serve(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	const char *idem = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Idempotency-Key");
	struct evbuffer *b = evbuffer_new();
	snprintf(last_idem, sizeof(last_idem), "%s", idem ? idem : "");
	if (strcmp(uri, "/big") == 0) {
		for (int i = 0; i < 1000; i++)
			evbuffer_add(b, "0123456789", 10);
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(uri, "/moved") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
				  "http://169.254.169.254/latest/meta-data/");
		evhttp_send_reply(req, 302, "Found", b);
	} else {
		evbuffer_add_printf(b, "{\"hello\":\"world\"}");
		evhttp_send_reply(req, 200, "OK", b);
	}
	evbuffer_free(b);
}

static char *fetched;

static void on_fetch(char *result, void *opaque)
{
	fetched = result;
	event_base_loopbreak(opaque);
}

static json_t *fetch(struct event_base *base, lh_http_t *http, const lh_tools_cfg_t *cfg,
		     const char *args_json)
{
	json_t *args = json_loads(args_json, 0, NULL), *out;
	char *sync = NULL;
	lh_error_t err = {0};
	fetched = NULL;
	if (lh_tool_http_fetch(http, cfg, args, "lh-key-1", on_fetch, base, &sync, &err) == LH_OK)
		event_base_dispatch(base);
	else
		fetched = sync;
	json_decref(args);
	out = fetched ? json_loads(fetched, 0, NULL) : NULL;
	free(fetched);
	return out;
}

static void t_http_fetch(void)
{
	struct event_base *base = event_base_new();
	struct evhttp *srv = evhttp_new(base);
	struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(srv, "127.0.0.1", 0);
	struct sockaddr_storage ss;
	ev_socklen_t sl = sizeof(ss);
	char allow[64], args[256];
	int port;
	lh_error_t err = {0};
	lh_http_t *http = lh_http_new(base, NULL, &err);
	lh_tools_cfg_t cfg = {.allow_hosts = allow, .allow_private = true, .max_bytes = 4096,
			      .timeout_ms = 5000};
	json_t *r;
	T_CHECK(sock && http);
	if (!sock || !http)
		return;
	getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl);
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	evhttp_set_gencb(srv, serve, NULL);
	snprintf(allow, sizeof(allow), "127.0.0.1");

	snprintf(args, sizeof(args), "{\"url\":\"http://127.0.0.1:%d/hello\"}", port);
	r = fetch(base, http, &cfg, args);
	T_EQ_INT(json_integer_value(json_object_get(r, "status")), 200);
	T_EQ_STR(json_string_value(json_object_get(r, "body")), "{\"hello\":\"world\"}");
	T_CHECK(json_is_false(json_object_get(r, "truncated")));
	T_EQ_STR(last_idem, "lh-key-1");
	json_decref(r);

	/* cut to the configured limit, and to a smaller one the call asks for */
	snprintf(args, sizeof(args), "{\"url\":\"http://127.0.0.1:%d/big\"}", port);
	r = fetch(base, http, &cfg, args);
	T_EQ_INT(json_string_length(json_object_get(r, "body")), 4096);
	T_CHECK(json_is_true(json_object_get(r, "truncated")));
	json_decref(r);
	snprintf(args, sizeof(args), "{\"url\":\"http://127.0.0.1:%d/big\",\"max_bytes\":10}", port);
	r = fetch(base, http, &cfg, args);
	T_EQ_STR(json_string_value(json_object_get(r, "body")), "0123456789");
	json_decref(r);

	/* a redirect is reported, not followed */
	snprintf(args, sizeof(args), "{\"url\":\"http://127.0.0.1:%d/moved\"}", port);
	r = fetch(base, http, &cfg, args);
	T_EQ_INT(json_integer_value(json_object_get(r, "status")), 302);
	T_EQ_STR(json_string_value(json_object_get(r, "location")),
		 "http://169.254.169.254/latest/meta-data/");
	json_decref(r);

	/* refused before any request: the model sees {error} */
	cfg.allow_private = false;
	snprintf(args, sizeof(args), "{\"url\":\"http://127.0.0.1:%d/hello\"}", port);
	last_idem[0] = '\0';
	r = fetch(base, http, &cfg, args);
	T_CHECK(strstr(json_string_value(json_object_get(r, "error")), "loopback") != NULL);
	T_EQ_STR(last_idem, "");
	json_decref(r);
	r = fetch(base, http, &cfg, "{\"url\":\"https://not-allowed.example/\"}");
	T_CHECK(strstr(json_string_value(json_object_get(r, "error")), "not in the allowed") != NULL);
	json_decref(r);
	r = fetch(base, http, &cfg, "{\"nope\":1}");
	T_CHECK(json_string_value(json_object_get(r, "error")) != NULL);
	json_decref(r);

	/* DNS rebinding: an allowed public-looking name whose DNS answer is loopback. The name
	 * passes the check before the request; the address connected to does not. */
	{
		char pin[96], pin6[96];
		const char *resolve[] = {pin, NULL};
		lh_http_t *http2 = lh_http_new(base, NULL, &err); /* no connection to reuse */
		snprintf(pin, sizeof(pin), "rebind.example:%d:127.0.0.1", port);
		snprintf(allow, sizeof(allow), "rebind.example");
		cfg.resolve = resolve;
		cfg.allow_private = false;
		snprintf(args, sizeof(args), "{\"url\":\"http://rebind.example:%d/hello\"}", port);
		last_idem[0] = '\0';
		r = fetch(base, http2, &cfg, args);
		T_CHECK(json_string_value(json_object_get(r, "error")) &&
			strstr(json_string_value(json_object_get(r, "error")),
			       "refused to connect to 127.0.0.1") != NULL);
		T_EQ_STR(last_idem, ""); /* the server never saw it */
		json_decref(r);
		/* the same through an IPv4-mapped IPv6 loopback answer */
		snprintf(pin6, sizeof(pin6), "rebind.example:%d:[::ffff:127.0.0.1]", port);
		resolve[0] = pin6;
		r = fetch(base, http2, &cfg, args);
		T_CHECK(json_string_value(json_object_get(r, "error")) != NULL);
		T_EQ_STR(last_idem, "");
		json_decref(r);
		/* allowed when private addresses are (tests, intranets) */
		resolve[0] = pin;
		cfg.allow_private = true;
		r = fetch(base, http2, &cfg, args);
		T_EQ_INT(json_integer_value(json_object_get(r, "status")), 200);
		T_EQ_STR(last_idem, "lh-key-1");
		json_decref(r);
		cfg.resolve = NULL;
		lh_http_free(http2);
	}

	lh_http_free(http);
	evhttp_free(srv);
	event_base_free(base);
}

/* ---- request bodies with cached tools (common/llm_http.c) ---- */

static char *captured;

static void serve_chat(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req), *out = evbuffer_new();
	size_t n = evbuffer_get_length(in);
	free(captured);
	captured = malloc(n + 1);
	evbuffer_remove(in, captured, n);
	captured[n] = '\0';
	evbuffer_add_printf(out, "{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,"
				 "\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},"
				 "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
				 "\"completion_tokens\":1,\"total_tokens\":2}}");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void on_chat(lh_llm_resp_t *resp, const lh_llm_error_t *e, void *opaque)
{
	*(int *)opaque = resp ? 1 : -1;
}

/* What the provider sent for req equals lh_llm_openai_build_body(req). */
static void check_sent(struct event_base *base, lh_llm_provider_t *p, const lh_llm_req_t *req)
{
	lh_error_t err = {0};
	int done = 0;
	json_t *want = lh_llm_openai_build_body(req, &err), *got;
	T_EQ_INT(lh_llm_call(p, req, on_chat, &done, &err), LH_OK);
	while (!done)
		event_base_loop(base, EVLOOP_ONCE);
	T_EQ_INT(done, 1);
	got = captured ? json_loads(captured, 0, NULL) : NULL;
	T_CHECK(got && want && json_equal(got, want));
	json_decref(got);
	json_decref(want);
}

static void t_cached_tools_body(void)
{
	struct event_base *base = event_base_new();
	struct evhttp *srv = evhttp_new(base);
	struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(srv, "127.0.0.1", 0);
	struct sockaddr_storage ss;
	ev_socklen_t sl = sizeof(ss);
	char url[64];
	lh_error_t err = {0};
	lh_http_t *http = lh_http_new(base, NULL, &err);
	lh_llm_provider_t *p;
	json_t *params[LH_TOOLS_N], *other = json_loads("{\"type\":\"object\"}", 0, NULL);
	lh_llm_tool_t defs[LH_TOOLS_N];
	lh_llm_message_t msgs[] = {{.role = LH_LLM_ROLE_USER, .content = "hi"}};
	lh_llm_req_t req = {.model = "m", .messages = msgs, .n_messages = 1, .tools = defs,
			    .n_tools = LH_TOOLS_N};
	T_CHECK(sock && http);
	if (!sock || !http)
		return;
	getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1",
		 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	evhttp_set_gencb(srv, serve_chat, NULL);
	p = lh_llm_openai_new(http, url, NULL, NULL, &err);
	lh_tools_defs(defs, params);
	check_sent(base, p, &req); /* serialized */
	check_sent(base, p, &req); /* from the cache */
	defs[1].description = "Ask someone else."; /* other text: not the cached one */
	check_sent(base, p, &req);
	T_CHECK(captured && strstr(captured, "Ask someone else.") != NULL);
	defs[0].parameters = other; /* another schema object */
	check_sent(base, p, &req);
	req.n_tools = 1; /* fewer tools */
	check_sent(base, p, &req);
	req.n_tools = 0; /* none: no "tools" at all */
	check_sent(base, p, &req);
	T_CHECK(captured && !strstr(captured, "\"tools\""));
	lh_llm_provider_free(p);
	lh_tools_defs_finish(params);
	json_decref(other);
	lh_http_free(http);
	evhttp_free(srv);
	event_base_free(base);
	free(captured);
	captured = NULL;
}

static void t_addr_private(void)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	struct sockaddr un = {.sa_family = AF_UNIX};
	static const char *priv4[] = {"127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.5",
				      "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1"};
	static const char *pub4[] = {"8.8.8.8", "172.32.0.1", "100.128.0.1", "203.0.113.9"};
	static const char *priv6[] = {"::1", "::", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "ff02::1"};
	for (size_t i = 0; i < sizeof(priv4) / sizeof(priv4[0]); i++) {
		inet_pton(AF_INET, priv4[i], &v4.sin_addr);
		T_CHECK(lh_tool_addr_private((struct sockaddr *)&v4));
	}
	for (size_t i = 0; i < sizeof(pub4) / sizeof(pub4[0]); i++) {
		inet_pton(AF_INET, pub4[i], &v4.sin_addr);
		T_CHECK(!lh_tool_addr_private((struct sockaddr *)&v4));
	}
	for (size_t i = 0; i < sizeof(priv6) / sizeof(priv6[0]); i++) {
		inet_pton(AF_INET6, priv6[i], &v6.sin6_addr);
		T_CHECK(lh_tool_addr_private((struct sockaddr *)&v6));
	}
	inet_pton(AF_INET6, "2606:4700::1111", &v6.sin6_addr);
	T_CHECK(!lh_tool_addr_private((struct sockaddr *)&v6));
	T_CHECK(lh_tool_addr_private(&un));
}

static void t_breaker(void)
{
	lh_breaker_t b;
	lh_breaker_init(&b, 3, 1000);
	T_CHECK(lh_breaker_allow(&b, 0));
	lh_breaker_record(&b, true, 0);
	lh_breaker_record(&b, true, 1);
	lh_breaker_record(&b, false, 2); /* a success resets the streak */
	lh_breaker_record(&b, true, 3);
	lh_breaker_record(&b, true, 4);
	T_EQ_INT(b.state, LH_BREAKER_CLOSED);
	lh_breaker_record(&b, true, 5);
	T_EQ_INT(b.state, LH_BREAKER_OPEN);
	T_EQ_INT(b.opens, 1);
	T_CHECK(!lh_breaker_allow(&b, 6));
	T_EQ_INT(lh_breaker_wait_us(&b, 6), 999);
	T_CHECK(!lh_breaker_allow(&b, 1004));
	/* after the cool-down exactly one trial call */
	T_CHECK(lh_breaker_allow(&b, 1005));
	T_EQ_INT(b.state, LH_BREAKER_HALF_OPEN);
	T_CHECK(!lh_breaker_allow(&b, 1006));
	lh_breaker_record(&b, true, 1010); /* the trial failed: open again */
	T_EQ_INT(b.state, LH_BREAKER_OPEN);
	T_CHECK(!lh_breaker_allow(&b, 2000));
	T_CHECK(lh_breaker_allow(&b, 2010));
	lh_breaker_record(&b, false, 2020); /* the trial worked: closed */
	T_EQ_INT(b.state, LH_BREAKER_CLOSED);
	T_CHECK(lh_breaker_allow(&b, 2021));
	T_CHECK(lh_breaker_allow(&b, 2022));
	/* threshold 0: never opens */
	lh_breaker_init(&b, 0, 1000);
	for (int i = 0; i < 100; i++)
		lh_breaker_record(&b, true, i);
	T_CHECK(lh_breaker_allow(&b, 100));
}

static void t_bucket(void)
{
	lh_bucket_t b;
	int taken = 0;
	lh_bucket_init(&b, 60, 2, 0); /* one a second, two saved up */
	T_EQ_INT(lh_bucket_take(&b, 0), 0);
	T_EQ_INT(lh_bucket_take(&b, 0), 0);
	T_EQ_INT(lh_bucket_take(&b, 0), 1000000);
	T_EQ_INT(lh_bucket_take(&b, 400000), 600000);
	T_EQ_INT(lh_bucket_take(&b, 1000000), 0);
	/* over 10 s at most 10 more, never more than the burst at once */
	for (int64_t t = 1000000; t <= 11000000; t += 100000)
		if (lh_bucket_take(&b, t) == 0)
			taken++;
	T_EQ_INT(taken, 10);
	/* the provider says fewer are left: the bucket believes it */
	lh_bucket_init(&b, 60, 5, 0);
	lh_bucket_observe_remaining(&b, 1, 0);
	T_EQ_INT(lh_bucket_take(&b, 0), 0);
	T_CHECK(lh_bucket_take(&b, 0) > 0);
	/* 0 a minute: no limit */
	lh_bucket_init(&b, 0, 0, 0);
	for (int i = 0; i < 1000; i++)
		T_EQ_INT(lh_bucket_take(&b, 0), 0);
}

static void t_endpoints(void)
{
	lh_endpoint_t dflt = {.provider = "auto", .base_url = "http://a/v1", .model = "m0",
			      .api_key_env = "", .price_input = 1, .price_output = 2,
			      .price_cached = 0.5, .context_window = 8000, .max_concurrency = 3,
			      .requests_per_minute = 60, .tokens_per_minute = 1000};
	lh_endpoint_t *eps = NULL;
	size_t n = 0;
	lh_error_t err = {0};
	/* empty: one endpoint, the defaults */
	T_EQ_INT(lh_endpoints_parse("", &dflt, &eps, &n, &err), LH_OK);
	T_EQ_INT(n, 1);
	T_EQ_STR(eps[0].model, "m0");
	T_EQ_STR(eps[0].base_url, "http://a/v1");
	T_EQ_INT(eps[0].max_concurrency, 3);
	lh_endpoints_free(eps, n);
	/* a list: missing fields from the defaults, given ones win */
	T_EQ_INT(lh_endpoints_parse("[{\"model\":\"x\"},{\"model\":\"y\",\"provider\":\"anthropic\","
				    "\"base_url\":\"http://b/v1\",\"price_output\":9,"
				    "\"context_window\":200000,\"tokens_per_minute\":5}]",
				    &dflt, &eps, &n, &err),
		 LH_OK);
	T_EQ_INT(n, 2);
	T_EQ_STR(eps[0].model, "x");
	T_EQ_STR(eps[0].provider, "auto");
	T_EQ_STR(eps[0].base_url, "http://a/v1");
	T_EQ_STR(eps[1].provider, "anthropic");
	T_EQ_STR(eps[1].base_url, "http://b/v1");
	T_CHECK(eps[1].price_output == 9 && eps[1].price_input == 1);
	T_EQ_INT(eps[1].context_window, 200000);
	T_CHECK(eps[1].tokens_per_minute == 5 && eps[1].requests_per_minute == 60);
	T_CHECK(eps[1].llm == NULL && eps[1].inflight == 0);
	lh_endpoints_free(eps, n);
	/* refused: not an array, empty, unknown key, no model, bad provider, negative price */
	eps = NULL;
	T_EQ_INT(lh_endpoints_parse("{}", &dflt, &eps, &n, &err), LH_ERR_CONFIG);
	T_EQ_INT(lh_endpoints_parse("[]", &dflt, &eps, &n, &err), LH_ERR_CONFIG);
	T_EQ_INT(lh_endpoints_parse("[{\"model\":\"x\",\"colour\":1}]", &dflt, &eps, &n, &err),
		 LH_ERR_CONFIG);
	T_EQ_INT(lh_endpoints_parse("[{\"provider\":\"openai\"}]", &dflt, &eps, &n, &err),
		 LH_ERR_CONFIG);
	T_EQ_INT(lh_endpoints_parse("[{\"model\":\"x\",\"provider\":\"bard\"}]", &dflt, &eps, &n,
				    &err),
		 LH_ERR_CONFIG);
	T_EQ_INT(lh_endpoints_parse("[{\"model\":\"x\",\"price_input\":-1}]", &dflt, &eps, &n,
				    &err),
		 LH_ERR_CONFIG);
	T_EQ_INT(lh_endpoints_parse("not json", &dflt, &eps, &n, &err), LH_ERR_CONFIG);
	T_CHECK(strstr(err.msg, "llm.models") != NULL);
	T_CHECK(eps == NULL);
}

int main(void)
{
	T_RUN(t_host_private);
	T_RUN(t_url_check);
	T_RUN(t_call_hash);
	T_RUN(t_http_fetch);
	T_RUN(t_addr_private);
	T_RUN(t_cached_tools_body);
	T_RUN(t_breaker);
	T_RUN(t_bucket);
	T_RUN(t_endpoints);
	return t_done();
}
