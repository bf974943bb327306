#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

volatile sig_atomic_t lhctl_interrupted;

static void on_signal(int sig) { lhctl_interrupted = sig; }

void lhctl_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int lhctl_fail(int code, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line: line breaks and tabs (libpq's "...\n\tIs the server running...") become one
	 * space each run. */
	{
		char *w = msg;
		bool blank = false;
		for (char *p = msg; *p; p++) {
			bool ws = *p == '\n' || *p == '\r' || *p == '\t';
			if (ws || (*p == ' ' && blank)) {
				if (!blank && w > msg)
					*w++ = ' ';
				blank = true;
				continue;
			}
			blank = *p == ' ';
			*w++ = *p;
		}
		while (w > msg && w[-1] == ' ')
			w--;
		*w = 0;
	}
	fprintf(stderr, "lhctl: %s\n", msg);
	return code;
}

static bool asked_for_logs(int argc, char **argv)
{
	if (getenv("LH_LOG_LEVEL") || getenv("LH_LOG_DEBUG"))
		return true;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strncmp(argv[i], "--log-level", 11) == 0 || strncmp(argv[i], "--debug", 7) == 0)
			return true;
	}
	return false;
}

int lhctl_load(const lh_cfg_spec_t *spec, void *cfg, int argc, char **argv, char ***ret_rest,
	       int *ret_nrest)
{
	lh_error_t err = {0};
	lh_err_t rc = lh_config_load(spec, cfg, argc, argv, ret_rest, ret_nrest, &err);
	if (rc == LH_ERR_NOT_FOUND)
		return LHCTL_EXIT_OK; /* --help printed */
	if (rc)
		return lhctl_fail(LHCTL_EXIT_USAGE, "%s", err.msg);
	if (asked_for_logs(argc, argv) &&
	    lh_config_apply_logging((const lh_common_cfg_t *)cfg, &err)) {
		lh_config_finish(spec, cfg);
		if (ret_rest) {
			free(*ret_rest);
			*ret_rest = NULL;
		}
		return lhctl_fail(LHCTL_EXIT_USAGE, "%s", err.msg);
	}
	return -1;
}

char *lhctl_state_dir(const char *flag, lh_error_t *err)
{
	const char *v;
	char *out = NULL;
	if (flag && *flag)
		return strdup(flag);
	if ((v = getenv("LH_STATE_DIR")) && *v)
		return strdup(v);
	if ((v = getenv("XDG_STATE_HOME")) && *v && v[0] == '/') {
		if (asprintf(&out, "%s/longhaul", v) < 0)
			abort();
		return out;
	}
	v = getenv("HOME");
	if (!v || !*v) {
		struct passwd *pw = getpwuid(getuid());
		v = pw ? pw->pw_dir : NULL;
	}
	if (!v || !*v) {
		lh_error_set(err, LH_ERR_CONFIG,
			     "could not find a state directory: HOME is not set (use --state-dir)");
		return NULL;
	}
	if (asprintf(&out, "%s/.local/state/longhaul", v) < 0)
		abort();
	return out;
}

lh_err_t lhctl_mkdirs(const char *path, mode_t mode, lh_error_t *err)
{
	char *p = strdup(path);
	lh_err_t rc = LH_OK;
	if (!p)
		abort();
	for (char *s = p + 1;; s++) {
		bool end = *s == 0;
		if (*s != '/' && !end)
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			rc = lh_error_set(err, LH_ERR_IO, "could not create directory \"%s\": %s", p,
					  strerror(errno));
			break;
		}
		if (end)
			break;
		*s = '/';
	}
	if (rc == LH_OK) {
		struct stat st;
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			rc = lh_error_set(err, LH_ERR_IO, "\"%s\" is not a directory", path);
	}
	free(p);
	return rc;
}

/* ---- dev.json ------------------------------------------------------------------------------- */

static char *json_strdup(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? strdup(s) : NULL;
}

lh_err_t lhctl_devinfo_read(const char *dir, lhctl_devinfo_t *ret_info, lh_error_t *err)
{
	char path[4096];
	json_error_t jerr;
	json_t *root;
	lhctl_devinfo_t info = {0};
	snprintf(path, sizeof(path), "%s/dev.json", dir);
	if (access(path, F_OK) < 0)
		return lh_error_set(err, LH_ERR_NOT_FOUND, "no dev stack runs in %s", dir);
	root = json_load_file(path, 0, &jerr);
	if (!root || !json_is_object(root) || !json_is_integer(json_object_get(root, "pid"))) {
		json_decref(root);
		return lh_error_set(err, LH_ERR_DECODE, "could not read %s: %s", path,
				    root ? "not a dev stack description" : jerr.text);
	}
	info.pid = (pid_t)json_integer_value(json_object_get(root, "pid"));
	info.start_ticks =
		(unsigned long long)json_integer_value(json_object_get(root, "start_ticks"));
	info.brokers = json_strdup(root, "brokers");
	info.pg_url = json_strdup(root, "pg_url");
	info.embedded_broker = json_is_true(json_object_get(root, "embedded_broker"));
	info.private_pg = json_is_true(json_object_get(root, "private_pg"));
	info.pg_dir = json_strdup(root, "pg_dir");
	info.started_at = json_strdup(root, "started_at");
	info.children = json_incref(json_object_get(root, "children"));
	json_decref(root);
	*ret_info = info;
	return LH_OK;
}

void lhctl_devinfo_finish(lhctl_devinfo_t *info)
{
	free(info->brokers);
	free(info->pg_url);
	free(info->pg_dir);
	free(info->started_at);
	json_decref(info->children);
	memset(info, 0, sizeof(*info));
}

bool lhctl_devinfo_alive(const lhctl_devinfo_t *info)
{
	unsigned long long t;
	if (info->pid <= 0 || !lhctl_proc_alive(info->pid))
		return false;
	t = lhctl_proc_start_ticks(info->pid);
	return info->start_ticks == 0 || t == info->start_ticks;
}

lh_err_t lhctl_resolve(lh_common_cfg_t *c, bool need_kafka, bool need_pg, bool *ret_from_dev,
		       lh_error_t *err)
{
	bool want_k = need_kafka && (!c->brokers || !*c->brokers);
	bool want_p = need_pg && (!c->pg_url || !*c->pg_url);
	lhctl_devinfo_t info;
	char *dir;
	lh_err_t rc;

	if (ret_from_dev)
		*ret_from_dev = false;
	if (!want_k && !want_p)
		return LH_OK;
	if (!(dir = lhctl_state_dir(c->state_dir, err)))
		return LH_ERR_CONFIG;
	rc = lhctl_devinfo_read(dir, &info, err);
	if (rc == LH_ERR_NOT_FOUND) {
		lh_error_set(err, LH_ERR_CONFIG,
			     "no %s configured and no dev stack runs in %s: start one with `lhctl dev` "
			     "or set %s",
			     want_k ? "kafka brokers" : "postgresql url", dir,
			     want_k ? "LH_KAFKA_BROKERS (--brokers)" : "LH_PG_URL (--pg-url)");
		free(dir);
		return LH_ERR_CONFIG;
	}
	if (rc) {
		free(dir);
		return rc;
	}
	if (!lhctl_devinfo_alive(&info)) {
		lh_error_set(err, LH_ERR_UNAVAILABLE,
			     "the dev stack in %s is not running (pid %d has exited): start it with "
			     "`lhctl dev`",
			     dir, (int)info.pid);
		lhctl_devinfo_finish(&info);
		free(dir);
		return LH_ERR_UNAVAILABLE;
	}
	if (want_k && info.brokers) {
		free(c->brokers);
		c->brokers = info.brokers;
		info.brokers = NULL;
	}
	if (want_p && info.pg_url) {
		free(c->pg_url);
		c->pg_url = info.pg_url;
		info.pg_url = NULL;
	}
	if (ret_from_dev)
		*ret_from_dev = true;
	lhctl_devinfo_finish(&info);
	free(dir);
	return LH_OK;
}

/* ---- processes ------------------------------------------------------------------------------ */

/* Fields of /proc/PID/stat after the command name: state is field 3, starttime field 22. */
static bool read_stat(pid_t pid, char *ret_state, unsigned long long *ret_start)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;
	unsigned long long start = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	if (!(p = strrchr(buf, ')')) || p[1] != ' ')
		return false;
	p += 2;
	if (ret_state)
		*ret_state = *p;
	/* p points at field 3; starttime is field 22 */
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p)
		start = strtoull(p, NULL, 10);
	if (ret_start)
		*ret_start = start;
	return true;
}

unsigned long long lhctl_proc_start_ticks(pid_t pid)
{
	unsigned long long t = 0;
	return read_stat(pid, NULL, &t) ? t : 0;
}

bool lhctl_proc_alive(pid_t pid)
{
	char st = 0;
	if (pid <= 0 || !read_stat(pid, &st, NULL))
		return false;
	return st != 'Z' && st != 'X';
}

bool lhctl_proc_wait_gone(pid_t pid, int timeout_ms)
{
	struct timespec t0, now;
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		/* Readable once the process has exited (or is a zombie). */
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			long left;
			clock_gettime(CLOCK_MONOTONIC, &now);
			left = timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 +
					     (now.tv_nsec - t0.tv_nsec) / 1000000);
			if (left < 0)
				left = 0;
			r = poll(&pfd, 1, (int)left);
			if (r > 0 || left == 0 || (r < 0 && errno != EINTR))
				break;
		}
		close(fd);
		if (r > 0)
			return true;
		return !lhctl_proc_alive(pid);
	}
#endif
	/* No pidfd (old kernel, or no such process): look at /proc every 50 ms. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (lhctl_proc_alive(pid)) {
		struct timespec d = {0, 50 * 1000000};
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >= timeout_ms)
			return false;
		nanosleep(&d, NULL);
	}
	return true;
}

static bool port_free(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	bool ok;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

int lhctl_port_pick(int preferred)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd, port = 0;
	if (preferred > 0 && preferred < 65536 && port_free(preferred))
		return preferred;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ---- formatting ----------------------------------------------------------------------------- */

const char *lhctl_fmt_int(char buf[32], long long v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%lld", v < 0 ? -v : v), o = 0, lead = n % 3;
	if (v < 0)
		buf[o++] = '-';
	for (int i = 0; i < n; i++) {
		if (i > 0 && (i - lead) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = 0;
	return buf;
}

const char *lhctl_fmt_dur(char buf[32], long long ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(buf, 32, "%lld ms", ms);
	else if (ms < 60000)
		snprintf(buf, 32, "%.1f s", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, 32, "%lld min %lld s", ms / 60000, (ms / 1000) % 60);
	else if (ms < 86400000LL)
		snprintf(buf, 32, "%lld h %lld min", ms / 3600000, (ms / 60000) % 60);
	else
		snprintf(buf, 32, "%lld d %lld h", ms / 86400000LL, (ms / 3600000) % 24);
	return buf;
}

char *lhctl_one_line(const char *s, size_t max_bytes)
{
	size_t n = strlen(s ? s : ""), cut = n;
	char *out;
	bool more = false;
	if (!s)
		s = "";
	if (n > max_bytes) {
		cut = max_bytes;
		while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
			cut--;
		more = true;
	}
	out = malloc(cut + 4);
	if (!out)
		abort();
	for (size_t i = 0; i < cut; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	out[cut] = 0;
	if (more)
		strcat(out, "\xe2\x80\xa6"); /* … */
	return out;
}

char *lhctl_redact_url(const char *url)
{
	const char *scheme = url ? strstr(url, "://") : NULL, *at, *colon;
	char *out;
	if (!url)
		return strdup("");
	if (!scheme)
		return strdup(url);
	at = strchr(scheme + 3, '@');
	colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
	if (!colon)
		return strdup(url);
	if (asprintf(&out, "%.*s:***%s", (int)(colon - url), url, at) < 0)
		abort();
	return out;
}

bool lhctl_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		int n;
		unsigned cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else
			return false;
		if (end - p <= n)
			return false;
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		p += n + 1;
	}
	return true;
}

const char *lhctl_iso_now(char buf[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}
