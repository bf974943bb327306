#include "conncap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "ids.h"
#include "stack.h"

#define MAXC 128

static int fds_of(pid_t pid)
{
	char path[64];
	int n = 0;
	DIR *d;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2; /* "." and ".." */
}

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

static long get(int port)
{
	char url[64];
	lh_buf_t body;
	long st;
	lh_buf_init(&body);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	st = ts_http_get(url, &body);
	lh_buf_finish(&body);
	return st;
}

void ts_conncap_probe(pid_t pid, int port, int cap, int extra, ts_conncap_t *ret)
{
	struct pollfd p[MAXC];
	int n = cap + extra < MAXC ? cap + extra : MAXC, f;
	int64_t until;
	memset(ret, 0, sizeof(*ret));
	ret->fds_before = ret->fds_peak = fds_of(pid);
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = dial(port), .events = POLLIN};
	/* the ones past the cap are closed at once; the idle timeout is 10 s away */
	until = lh_mono_us() + 5000000;
	while (ret->refused < extra && lh_mono_us() < until) {
		if (poll(p, (nfds_t)n, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			char buf[128];
			ssize_t r;
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = recv(p[i].fd, buf, sizeof(buf), 0);
			if (r > 0 && strncmp(buf, "HTTP/1.1 503", 12) != 0)
				continue; /* nothing else is expected; keep watching */
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				continue;
			close(p[i].fd); /* a 503, EOF or a reset: refused */
			p[i].fd = -1;
			ret->refused++;
		}
		if ((f = fds_of(pid)) > ret->fds_peak)
			ret->fds_peak = f;
	}
	if ((f = fds_of(pid)) > ret->fds_peak)
		ret->fds_peak = f;
	for (int i = 0; i < n; i++)
		ret->held += p[i].fd >= 0;
	ret->get_at_cap = get(port);
	for (int i = 0; i < n; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	/* the daemon sees the closes and frees its side; then a scrape is answered again */
	until = lh_mono_us() + 15000000;
	while ((ret->fds_after = fds_of(pid)) > ret->fds_before && lh_mono_us() < until)
		poll(NULL, 0, 20);
	do
		ret->get_after = get(port);
	while (ret->get_after != 200 && lh_mono_us() < until && poll(NULL, 0, 100) >= 0);
}

bool ts_conncap_ok(const ts_conncap_t *cc, int cap, int extra)
{
	struct {
		bool ok;
		const char *what;
	} c[] = {
		{cc->refused == extra, "refused == extra"},
		{cc->held == cap, "held == cap"},
		{cc->fds_before > 0 && cc->fds_peak <= cc->fds_before + cap + 8,
		 "descriptors at most cap + 8 more"},
		{cc->get_at_cap != 200, "no 200 at the cap"},
		{cc->get_after == 200, "a 200 after"},
		{cc->fds_after <= cc->fds_before + 8, "descriptors back down"},
	};
	bool all = true;
	printf("# refused %d, held %d, fds %d -> peak %d -> %d, GET at the cap %ld, after %ld\n",
	       cc->refused, cc->held, cc->fds_before, cc->fds_peak, cc->fds_after, cc->get_at_cap,
	       cc->get_after);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (!c[i].ok) {
			printf("# connection cap: not so: %s\n", c[i].what);
			all = false;
		}
	return all;
}
