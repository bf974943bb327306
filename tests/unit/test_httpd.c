/* test_httpd: common/httpd.c — the metrics endpoints' connection cap, in-process.
 *
 * The server runs on an event_base this test drives itself (pump: the loop for at most 10 ms at
 * a time, until an observable condition holds or a deadline passes); the clients are plain
 * sockets. Cases: cap+N idle connections leave exactly cap held and N refused at once (a 503 or
 * a close, never a hang), the server's descriptors stay bounded, the refusals are reported once,
 * and once the idle ones close a fresh GET is answered; idle connections time out; freeing with
 * connections open; bad addresses. Removing the cap (on_accept never refusing) fails the first
 * case on the refused count, the descriptor bound and the GET at the cap. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "ids.h"
#include "t.h"

#define CAP 4
#define EXTRA 40

static struct event_base *base;
static int reports;
static uint64_t reported;

static void on_refused(uint64_t n, int max_conns, void *arg)
{
	reports++;
	reported += n;
	T_EQ_INT(max_conns, CAP);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "ok\n");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* Run the loop for at most 10 ms. */
static void pump(void)
{
	struct timeval tv = {0, 10000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own descriptor */
}

/* A connected socket to 127.0.0.1:port (the kernel completes the handshake without the loop),
 * non-blocking. */
static int dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int s = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	fcntl(s, F_SETFL, O_NONBLOCK);
	return s;
}

/* 1 when the server closed or refused s (a 503, EOF or a reset), 0 while it holds it open. */
static int refused_side(int s)
{
	char buf[256];
	ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = 0;
		return strncmp(buf, "HTTP/1.1 503", 12) == 0;
	}
	if (n == 0)
		return 1;
	return errno != EAGAIN && errno != EWOULDBLOCK;
}

/* Pump until h holds live connections and has refused at least refused; false after ms. */
static bool wait_conns(const lh_httpd_t *h, int live, uint64_t refused, int ms)
{
	int64_t until = lh_mono_us() + (int64_t)ms * 1000;
	while (lh_httpd_live(h) != live || lh_httpd_refused(h) < refused) {
		if (lh_mono_us() >= until)
			return false;
		pump();
	}
	return true;
}

/* Pump until this process has at most max descriptors open; false after ms. */
static bool wait_fds(int max, int ms)
{
	int64_t until = lh_mono_us() + (int64_t)ms * 1000;
	while (open_fds() > max) {
		if (lh_mono_us() >= until)
			return false;
		pump();
	}
	return true;
}

/* Pump until the server has closed or refused s; false after ms. */
static bool wait_closed(int s, int ms)
{
	int64_t until = lh_mono_us() + (int64_t)ms * 1000;
	while (!refused_side(s)) {
		if (lh_mono_us() >= until)
			return false;
		pump();
	}
	return true;
}

/* GET / on a new connection, pumping the loop; the status, 0 when none came within 3 s. */
static int get_status(int port)
{
	char buf[512];
	size_t len = 0;
	int s = dial(port), status = 0;
	int64_t until = lh_mono_us() + 3000000;
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	if (s < 0)
		return 0;
	if (send(s, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
		close(s);
		return 0;
	}
	while (lh_mono_us() < until && len < sizeof(buf) - 1) {
		ssize_t n = recv(s, buf + len, sizeof(buf) - 1 - len, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			break;
		pump();
	}
	buf[len] = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = 0;
	close(s);
	return status;
}

static lh_httpd_t *serve(int timeout_s)
{
	lh_httpd_t *h = NULL;
	lh_error_t err = {0};
	T_EQ_INT(lh_httpd_new(base, "127.0.0.1:0", CAP, timeout_s, on_refused, NULL, &h, &err),
		 LH_OK);
	if (h)
		evhttp_set_gencb(lh_httpd_evhttp(h), on_request, NULL);
	return h;
}

static void cap_holds(void)
{
	int c[CAP + EXTRA], port, before, closed = 0, open = 0;
	lh_httpd_t *h = serve(60);
	if (!h)
		return;
	port = lh_httpd_port(h);
	T_CHECK(port > 0);
	T_EQ_INT(get_status(port), 200);
	T_CHECK(wait_conns(h, 0, 0, 3000));
	reports = 0;
	reported = 0;
	before = open_fds();
	for (int i = 0; i < CAP + EXTRA; i++) {
		c[i] = dial(port);
		T_CHECK(c[i] >= 0);
	}
	/* the cap held, the rest refused at once (60 s before any timeout could close them) */
	T_CHECK(wait_conns(h, CAP, EXTRA, 5000));
	T_EQ_INT(lh_httpd_live(h), CAP);
	T_EQ_INT(lh_httpd_refused(h), EXTRA);
	/* the clients hold theirs; the server's side at most CAP (+ one being refused) */
	T_CHECK(wait_fds(before + CAP + EXTRA + CAP + 1, 2000));
	/* a refused client has its 503 (or EOF) already; a held one reads nothing */
	for (int i = 0; i < CAP + EXTRA; i++) {
		if (c[i] >= 0 && refused_side(c[i]))
			closed++;
		else
			open++;
	}
	T_EQ_INT(closed, EXTRA);
	T_EQ_INT(open, CAP);
	/* one report for the burst, naming the first refusal; the rest wait for the next window */
	T_EQ_INT(reports, 1);
	T_EQ_INT(reported, 1);
	/* at the cap a fresh GET is refused too (a 503, or closed before it) */
	T_CHECK(get_status(port) != 200);
	/* once the idle ones go, a fresh GET is answered, and the descriptors are back */
	for (int i = 0; i < CAP + EXTRA; i++)
		if (c[i] >= 0)
			close(c[i]);
	T_CHECK(wait_conns(h, 0, 0, 5000));
	T_EQ_INT(get_status(port), 200);
	T_CHECK(wait_fds(before, 2000));
	lh_httpd_free(h);
}

static void idle_times_out(void)
{
	int c[CAP];
	lh_httpd_t *h = serve(1);
	if (!h)
		return;
	for (int i = 0; i < CAP; i++)
		c[i] = dial(lh_httpd_port(h));
	T_CHECK(wait_conns(h, CAP, 0, 3000));
	/* evhttp's timeout closes them without any help from the client */
	T_CHECK(wait_conns(h, 0, 0, 5000));
	for (int i = 0; i < CAP; i++) {
		T_CHECK(c[i] >= 0 && wait_closed(c[i], 2000));
		close(c[i]);
	}
	T_EQ_INT(get_status(lh_httpd_port(h)), 200);
	lh_httpd_free(h);
}

static void free_while_open(void)
{
	int c[CAP + 2];
	lh_httpd_t *h = serve(60);
	if (!h)
		return;
	for (int i = 0; i < CAP + 2; i++)
		c[i] = dial(lh_httpd_port(h));
	T_CHECK(wait_conns(h, CAP, 2, 3000));
	lh_httpd_free(h); /* every connection closed, nothing leaked (valgrind) */
	for (int i = 0; i < CAP + 2; i++) {
		T_CHECK(c[i] >= 0 && wait_closed(c[i], 2000));
		close(c[i]);
	}
	T_CHECK(lh_httpd_free(NULL) == NULL);
}

static void bad_address(void)
{
	lh_httpd_t *h = NULL, *h2 = NULL;
	lh_error_t err = {0};
	char addr[32];
	T_EQ_INT(lh_httpd_new(base, "nonsense", CAP, 1, NULL, NULL, &h, &err), LH_ERR_CONFIG);
	T_CHECK(h == NULL);
	T_EQ_INT(lh_httpd_new(base, "127.0.0.1:0", 0, 1, NULL, NULL, &h, &err), LH_ERR_INVALID);
	T_EQ_INT(lh_httpd_new(base, "127.0.0.1:0", CAP, 1, NULL, NULL, &h, &err), LH_OK);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lh_httpd_port(h));
	T_EQ_INT(lh_httpd_new(base, addr, CAP, 1, NULL, NULL, &h2, &err), LH_ERR_IO);
	T_CHECK(h2 == NULL);
	T_CHECK(strstr(err.msg, "could not listen on") != NULL);
	lh_httpd_free(h);
}

int main(void)
{
	base = event_base_new();
	T_RUN(cap_holds);
	T_RUN(idle_times_out);
	T_RUN(free_while_open);
	T_RUN(bad_address);
	event_base_free(base);
	return t_done();
}
