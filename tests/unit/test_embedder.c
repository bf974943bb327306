/* test_embedder — common/embedder.c without PostgreSQL: the answer parser (table), real[]
 * literals both ways, and the HTTP client against an evhttp server on a thread of this process:
 * batching, query and document model names, the bearer key sent and never echoed in errors,
 * 429 with retry-after-ms retried, 400 not retried, a server that never answers times out, a
 * server that changes its dimensions is refused. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "embed.h"
#include "embedder.h"
#include "t.h"

static void parse_table(void)
{
	static const struct {
		const char *body;
		size_t n;
		int dims;
		lh_err_t want;
	} cases[] = {
		{"{\"data\":[{\"index\":0,\"embedding\":[3,4]}]}", 1, 0, LH_OK},
		{"{\"data\":[{\"index\":1,\"embedding\":[0,1]},{\"index\":0,\"embedding\":[1,0]}]}",
		 2, 2, LH_OK},
		{"{\"data\":[{\"embedding\":[1,0]},{\"embedding\":[0,2]}]}", 2, 0, LH_OK},
		{"{\"data\":[{\"index\":0,\"embedding\":[1,0]}]}", 1, 3, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":0,\"embedding\":[1,0]},{\"index\":0,\"embedding\":[0,1]}]}",
		 2, 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":0,\"embedding\":[1,0]},{\"index\":1,\"embedding\":[1]}]}", 2,
		 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":5,\"embedding\":[1,0]}]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":-1,\"embedding\":[1,0]}]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":0,\"embedding\":[0,0]}]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":0,\"embedding\":[\"1\",0]}]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":0,\"embedding\":[]}]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":0.5,\"embedding\":[1]}]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":{}}", 1, 0, LH_ERR_DECODE},
		{"[]", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[{\"index\":0,\"embedding\":[1e300,1]}]}", 1, 0, LH_ERR_DECODE},
		{"{\"data\":[", 1, 0, LH_ERR_DECODE},
		{"", 1, 0, LH_ERR_DECODE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		float *v = NULL;
		int dims = -7;
		lh_error_t err = {0};
		lh_err_t rc = lh_embedder_parse_response(cases[i].body, strlen(cases[i].body),
							 cases[i].n, cases[i].dims, &v, &dims, &err);
		if (rc != cases[i].want)
			fprintf(stderr, "case %zu: %s\n", i, err.msg);
		T_EQ_INT(rc, cases[i].want);
		if (rc == LH_OK) {
			for (size_t r = 0; r < cases[i].n; r++) {
				double norm = 0;
				for (int d = 0; d < dims; d++)
					norm += (double)v[r * (size_t)dims + d] * v[r * (size_t)dims + d];
				T_CHECK(fabs(norm - 1) < 1e-6);
			}
			free(v);
		} else {
			T_EQ_INT(dims, -7); /* nothing written */
			T_CHECK(err.msg[0] != 0);
		}
	}
	/* index order, and normalized: [3,4] -> [0.6,0.8] */
	float *v;
	int dims;
	const char *b = "{\"data\":[{\"index\":1,\"embedding\":[0,2]},{\"index\":0,\"embedding\":[3,4]}]}";
	T_EQ_INT(lh_embedder_parse_response(b, strlen(b), 2, 0, &v, &dims, NULL), LH_OK);
	T_EQ_INT(dims, 2);
	T_CHECK(fabsf(v[0] - 0.6f) < 1e-6f && fabsf(v[1] - 0.8f) < 1e-6f);
	T_CHECK(fabsf(v[2]) < 1e-6f && fabsf(v[3] - 1) < 1e-6f);
	free(v);
}

static void literals(void)
{
	float v[LH_EMBED_DIMS], w[LH_EMBED_DIMS];
	lh_embed_text("the billing service listens on port 8000", v);
	char *lit = lh_embedder_literal(v, LH_EMBED_DIMS);
	T_CHECK(lit && lit[0] == '{');
	T_EQ_INT(lh_embedder_parse_literal(lit, LH_EMBED_DIMS, w), LH_OK);
	T_CHECK(memcmp(v, w, sizeof(v)) == 0); /* %.9g round-trips a float exactly */
	T_EQ_INT(lh_embedder_parse_literal(lit, LH_EMBED_DIMS - 1, w), LH_ERR_DECODE);
	T_EQ_INT(lh_embedder_parse_literal(lit, LH_EMBED_DIMS + 1, w), LH_ERR_DECODE);
	free(lit);
	static const char *const bad[] = {"", "{", "{}", "{1,}", "{1,2", "{1,2}x", "{1,NULL}",
					  "1,2}", "{1;2}", "{1,nan}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		T_EQ_INT(lh_embedder_parse_literal(bad[i], 2, w), LH_ERR_DECODE);
	T_EQ_INT(lh_embedder_parse_literal("{1.5,-2}", 2, w), LH_OK);
	T_CHECK(w[0] == 1.5f && w[1] == -2.0f);
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* array_send(ARRAY[vals]::real[]) as PostgreSQL writes it: ndim 1, no nulls, float4 (oid 700),
 * size n, lower bound 1, then (length 4, IEEE bits) per element. */
static size_t array_bin(unsigned char *out, const float *vals, int n)
{
	put_be32(out, 1);
	put_be32(out + 4, 0);
	put_be32(out + 8, 700);
	put_be32(out + 12, (uint32_t)n);
	put_be32(out + 16, 1);
	for (int i = 0; i < n; i++) {
		uint32_t bits;
		memcpy(&bits, &vals[i], sizeof(bits));
		put_be32(out + 20 + 8 * i, 4);
		put_be32(out + 24 + 8 * i, bits);
	}
	return 20 + 8 * (size_t)n;
}

static void array_bin_parse(void)
{
	const float vals[3] = {0.5f, -1.25f, 3e-7f};
	unsigned char b[64], c[64];
	float w[3] = {9, 9, 9};
	size_t len = array_bin(b, vals, 3);
	T_EQ_INT(lh_embedder_parse_array_bin(b, len, 3, w), LH_OK);
	T_CHECK(memcmp(vals, w, sizeof(w)) == 0);
	/* wrong dimensions, a truncated or longer buffer */
	T_EQ_INT(lh_embedder_parse_array_bin(b, len, 2, w), LH_ERR_DECODE);
	T_EQ_INT(lh_embedder_parse_array_bin(b, len - 1, 3, w), LH_ERR_DECODE);
	T_EQ_INT(lh_embedder_parse_array_bin(b, len + 1, 3, w), LH_ERR_DECODE);
	T_EQ_INT(lh_embedder_parse_array_bin(NULL, 0, 3, w), LH_ERR_DECODE);
	/* each header field and element refused in turn; nothing written */
	static const size_t field[] = {0, 4, 8, 12, 20, 36};
	for (size_t i = 0; i < sizeof(field) / sizeof(field[0]); i++) {
		float z[3] = {7, 7, 7};
		memcpy(c, b, len);
		c[field[i] + 3] ^= 0x10;
		T_EQ_INT(lh_embedder_parse_array_bin(c, len, 3, z), LH_ERR_DECODE);
		T_CHECK(z[0] == 7 && z[1] == 7 && z[2] == 7);
	}
	const float inf[3] = {1, INFINITY, 0}, huge[3] = {1, 2, 1e31f};
	len = array_bin(c, inf, 3);
	T_EQ_INT(lh_embedder_parse_array_bin(c, len, 3, w), LH_ERR_DECODE);
	len = array_bin(c, huge, 3);
	T_EQ_INT(lh_embedder_parse_array_bin(c, len, 3, w), LH_ERR_DECODE);
}

/* ---- a fake /v1/embeddings on its own thread ---- */

static struct {
	struct event_base *base;
	struct evhttp *http;
	int port;
	pthread_t thread;
	atomic_int requests;
	atomic_int fail_next; /* answer 429 (retry-after-ms: 20) this many times */
	atomic_int dims;      /* dimensions of the answers */
	atomic_int bad_request;
	char last_auth[128];
	char last_model[64];
	int max_batch;
} F;

/* A vector for a text: component i = 1 + (byte sum + i) % 7, so texts differ and none is zero. */
static json_t *fake_vec(const char *text, int dims)
{
	unsigned sum = 0;
	json_t *a = json_array();
	for (const char *p = text; *p; p++)
		sum += (unsigned char)*p;
	for (int i = 0; i < dims; i++)
		json_array_append_new(a, json_real(1 + (double)((sum + (unsigned)i * 3) % 7)));
	return a;
}

static void fake_serve(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req), *out = evbuffer_new();
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Authorization");
	size_t len = evbuffer_get_length(in);
	if (strcmp(evhttp_request_get_uri(req), "/quit") == 0) {
		evhttp_send_reply(req, 200, "OK", out);
		evbuffer_free(out);
		event_base_loopbreak(F.base);
		return;
	}
	json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL), *input;
	atomic_fetch_add(&F.requests, 1);
	snprintf(F.last_auth, sizeof(F.last_auth), "%s", auth ? auth : "");
	if (atomic_load(&F.fail_next) > 0) {
		atomic_fetch_sub(&F.fail_next, 1);
		evhttp_add_header(evhttp_request_get_output_headers(req), "retry-after-ms", "20");
		evbuffer_add_printf(out, "{\"error\":{\"message\":\"slow down\"}}");
		evhttp_send_reply(req, 429, "Too Many Requests", out);
		goto out;
	}
	if (atomic_load(&F.bad_request) || !body) {
		evbuffer_add_printf(out, "{\"error\":{\"message\":\"bad input, key was %s\"}}",
				    auth ? auth : "");
		evhttp_send_reply(req, 400, "Bad Request", out);
		goto out;
	}
	snprintf(F.last_model, sizeof(F.last_model), "%s",
		 json_string_value(json_object_get(body, "model")));
	input = json_object_get(body, "input");
	if ((int)json_array_size(input) > F.max_batch)
		F.max_batch = (int)json_array_size(input);
	{
		json_t *data = json_array(), *resp;
		char *s;
		for (size_t i = 0; i < json_array_size(input); i++)
			json_array_append_new(data, json_pack("{s:I, s:o}", "index", (json_int_t)i,
							      "embedding",
							      fake_vec(json_string_value(
								  json_array_get(input, i)),
								  atomic_load(&F.dims))));
		resp = json_pack("{s:s, s:o}", "object", "list", "data", data);
		s = json_dumps(resp, JSON_COMPACT);
		evbuffer_add(out, s, strlen(s));
		free(s);
		json_decref(resp);
		evhttp_send_reply(req, 200, "OK", out);
	}
out:
	json_decref(body);
	evbuffer_free(out);
}

static void *fake_run(void *arg)
{
	(void)arg;
	event_base_dispatch(F.base);
	return NULL;
}

static void fake_start(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	F.base = event_base_new();
	F.http = evhttp_new(F.base);
	struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(F.http, "127.0.0.1", 0);
	getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sa, &sl);
	F.port = ntohs(sa.sin_port);
	F.dims = 4;
	evhttp_set_gencb(F.http, fake_serve, NULL);
	pthread_create(&F.thread, NULL, fake_run, NULL);
}

static void fake_stop(void)
{
	/* libevent's threading is not enabled: the loop stops itself on a request for /quit */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)F.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	const char *q = "GET /quit HTTP/1.0\r\n\r\n";
	/* the loop ends when it has read the request; the answer is never sent, so do not wait */
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(s, q, strlen(q)) != (ssize_t)strlen(q))
		abort();
	pthread_join(F.thread, NULL);
	close(s);
	evhttp_free(F.http);
	event_base_free(F.base);
}

static char url[64];

static void http_batches(void)
{
	lh_embedder_t *emb;
	lh_error_t err;
	const char *texts[150];
	char bufs[150][32];
	float *v;
	int dims;
	lh_embedder_stats_t st;
	setenv("LH_TEST_EMBED_KEY", "sekrit-123", 1);
	lh_embedder_cfg_t cfg = {.url = url, .model = "doc-model", .query_model = "q-model",
				 .key_env = "LH_TEST_EMBED_KEY", .batch = 64, .max_retries = -1};
	T_EQ_INT(lh_embedder_new(&cfg, &emb, &err), LH_OK);
	T_EQ_STR(lh_embedder_name(emb), "http:doc-model");
	T_EQ_INT(lh_embedder_dims(emb), 0);
	for (int i = 0; i < 150; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "text number %d", i);
		texts[i] = bufs[i];
	}
	texts[149] = texts[3]; /* a repeat is sent once and answered with the first one's vector */
	F.requests = 0;
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, texts, 150, &v, &dims, &err), LH_OK);
	T_EQ_INT(dims, 4);
	T_EQ_INT(F.requests, 3); /* 149 distinct texts, 64 a request */
	T_EQ_INT(F.max_batch, 64);
	T_EQ_STR(F.last_model, "doc-model");
	T_EQ_STR(F.last_auth, "Bearer sekrit-123");
	T_CHECK(memcmp(v + 3 * 4, v + 149 * 4, 4 * sizeof(float)) == 0);
	for (int i = 0; i < 150; i++) {
		double n = 0;
		for (int d = 0; d < 4; d++)
			n += (double)v[i * 4 + d] * v[i * 4 + d];
		T_CHECK(fabs(n - 1) < 1e-5);
	}
	free(v);
	T_EQ_INT(lh_embedder_embed(emb, NULL, true, texts, 1, &v, &dims, &err), LH_OK);
	T_EQ_STR(F.last_model, "q-model");
	free(v);
	lh_embedder_stats(emb, &st);
	T_EQ_INT(st.requests, 4);
	T_EQ_INT(st.texts_sent, 150);

	/* 429 twice with retry-after-ms, then an answer */
	F.fail_next = 2;
	F.requests = 0;
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, texts, 2, &v, &dims, &err), LH_OK);
	T_EQ_INT(F.requests, 3);
	free(v);
	lh_embedder_stats(emb, &st);
	T_EQ_INT(st.retries, 2);
	/* 429 more often than max_retries allows: the error is retriable */
	F.fail_next = 5;
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, texts, 1, &v, &dims, &err), LH_ERR_HTTP);
	T_CHECK(err.retriable);
	T_CHECK(strstr(err.msg, "429") != NULL);
	F.fail_next = 0;
	/* 400 is not retried, and the key never reaches the message even when the server echoes it */
	F.bad_request = 1;
	F.requests = 0;
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, texts, 1, &v, &dims, &err), LH_ERR_HTTP);
	T_EQ_INT(F.requests, 1);
	T_CHECK(!err.retriable);
	T_CHECK(strstr(err.msg, "400") != NULL);
	F.bad_request = 0;
	/* dimensions change: refused */
	F.dims = 5;
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, texts, 1, &v, &dims, &err), LH_ERR_CONFLICT);
	F.dims = 4;
	lh_embedder_free(emb);
}

static void key_never_in_errors(void)
{
	lh_embedder_t *emb;
	lh_error_t err;
	float *v;
	int dims;
	const char *t = "x";
	setenv("LH_TEST_EMBED_KEY", "sekrit-123", 1);
	lh_embedder_cfg_t cfg = {.url = url, .model = "m", .key_env = "LH_TEST_EMBED_KEY",
				 .max_retries = 0};
	T_EQ_INT(lh_embedder_new(&cfg, &emb, &err), LH_OK);
	F.bad_request = 1;
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, &t, 1, &v, &dims, &err), LH_ERR_HTTP);
	F.bad_request = 0;
	/* the server echoed the key in its error body: the message quotes the body without it */
	T_CHECK(strstr(err.msg, "key was Bearer [redacted]") != NULL);
	T_CHECK(strstr(err.msg, "sekrit") == NULL);
	lh_embedder_free(emb);

	/* missing variable without a key file: a configuration error naming the variable only */
	unsetenv("LH_TEST_EMBED_KEY");
	T_EQ_INT(lh_embedder_new(&cfg, &emb, &err), LH_ERR_CONFIG);
	T_CHECK(strstr(err.msg, "LH_TEST_EMBED_KEY") != NULL);
	/* key file: first line, trailing blanks trimmed */
	char path[] = "/tmp/lh-embed-key-XXXXXX";
	int fd = mkstemp(path);
	T_CHECK(fd >= 0);
	T_CHECK(write(fd, "filekey-9 \nsecond\n", 18) == 18);
	close(fd);
	cfg.key_file = path;
	T_EQ_INT(lh_embedder_new(&cfg, &emb, &err), LH_OK);
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, &t, 1, &v, &dims, &err), LH_OK);
	free(v);
	T_EQ_STR(F.last_auth, "Bearer filekey-9");
	lh_embedder_free(emb);
	unlink(path);
	T_EQ_INT(lh_embedder_new(&cfg, &emb, &err), LH_ERR_CONFIG); /* unreadable now */
	/* no model with a url */
	lh_embedder_cfg_t nomodel = {.url = url};
	T_EQ_INT(lh_embedder_new(&nomodel, &emb, &err), LH_ERR_CONFIG);
}

static void timeout(void)
{
	/* a socket that listens but never answers: the connection is accepted by the kernel */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	char u[64];
	T_CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(s, 4) == 0);
	getsockname(s, (struct sockaddr *)&sa, &sl);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1", ntohs(sa.sin_port));
	lh_embedder_cfg_t cfg = {.url = u, .model = "m", .timeout_ms = 300, .max_retries = 0};
	lh_embedder_t *emb;
	lh_error_t err;
	float *v;
	int dims;
	const char *t = "x";
	T_EQ_INT(lh_embedder_new(&cfg, &emb, &err), LH_OK);
	T_EQ_INT(lh_embedder_embed(emb, NULL, false, &t, 1, &v, &dims, &err), LH_ERR_TIMEOUT);
	T_CHECK(err.retriable);
	lh_embedder_free(emb);
	close(s);
}

static void hashing(void)
{
	lh_embedder_t *emb;
	lh_error_t err;
	float *v, w[LH_EMBED_DIMS];
	int dims;
	const char *t[] = {"billing port", ""};
	T_EQ_INT(lh_embedder_new(NULL, &emb, &err), LH_OK);
	T_EQ_STR(lh_embedder_name(emb), "hash-512");
	T_CHECK(!lh_embedder_is_http(emb));
	T_EQ_INT(lh_embedder_embed(emb, NULL, true, t, 2, &v, &dims, &err), LH_OK);
	T_EQ_INT(dims, LH_EMBED_DIMS);
	lh_embed_text(t[0], w);
	T_CHECK(memcmp(v, w, sizeof(w)) == 0);
	free(v);
	lh_embedder_free(emb);
}

static void from_config(void)
{
	/* the memory.embed_* settings of the common table, loaded with their defaults + env */
	static const lh_cfg_spec_t spec = {"test", "", "", {lh_config_common_table, NULL}};
	lh_common_cfg_t c;
	lh_embedder_t *emb;
	lh_error_t err;
	char *argv[] = {"test", "--embed-url", "http://127.0.0.1:1/v1", NULL};
	unsetenv("LH_EMBED_URL");
	setenv("LH_EMBED_MODEL", "e5-passage", 1);
	memset(&c, 0, sizeof(c));
	T_EQ_INT(lh_config_load(&spec, &c, 1, argv, NULL, NULL, &err), LH_OK);
	T_EQ_INT(lh_embedder_new_from_config(&c, &emb, &err), LH_OK);
	T_CHECK(!lh_embedder_is_http(emb)); /* no url: hashing */
	lh_embedder_free(emb);
	lh_config_finish(&spec, &c);
	memset(&c, 0, sizeof(c));
	T_EQ_INT(lh_config_load(&spec, &c, 3, argv, NULL, NULL, &err), LH_OK);
	T_EQ_INT(c.embed_batch, 64);
	T_EQ_INT(lh_embedder_new_from_config(&c, &emb, &err), LH_OK);
	T_EQ_STR(lh_embedder_name(emb), "http:e5-passage");
	T_CHECK(lh_embedder_near_dup(emb) > 0.98 && lh_embedder_near_dup(emb) < 0.99);
	lh_embedder_free(emb);
	lh_config_finish(&spec, &c);
	unsetenv("LH_EMBED_MODEL");
}

int main(void)
{
	T_RUN(parse_table);
	T_RUN(literals);
	T_RUN(array_bin_parse);
	T_RUN(hashing);
	T_RUN(from_config);
	fake_start();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/", F.port);
	T_RUN(http_batches);
	T_RUN(key_never_in_errors);
	T_RUN(timeout);
	fake_stop();
	return t_done();
}
