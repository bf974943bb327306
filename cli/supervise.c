#include "supervise.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "ids.h"
#include "proc.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define HEALTHY_RUN_US (60 * 1000000LL) /* a child that ran this long restarts without delay */
#define REAP_GRACE_MS 5000		/* after SIGKILL, how long to wait for the reaping */
#define READY_SCAN_MAX (1 << 20)

static void tell(lhctl_sup_t *sup, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tell(lhctl_sup_t *sup, const char *fmt, ...)
{
	char ts[16];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;
	localtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	fprintf(sup->out, "[%s] ", ts);
	va_start(ap, fmt);
	vfprintf(sup->out, fmt, ap);
	va_end(ap);
	fputc('\n', sup->out);
	fflush(sup->out);
}

void lhctl_sup_init(lhctl_sup_t *sup, char **envp, FILE *out)
{
	memset(sup, 0, sizeof(*sup));
	sup->envp = envp;
	sup->out = out;
	sup->kill_timeout_ms = 10000;
}

lh_err_t lhctl_sup_add(lhctl_sup_t *sup, const char *path, const char *log_dir,
		       const char *log_name, const char *const *argv, bool optional,
		       lh_error_t *err)
{
	lhctl_child_t *c;
	size_t o = 0;
	if (sup->n >= LHCTL_SUP_MAX)
		return lh_error_set(err, LH_ERR_TOO_LARGE, "at most %d daemons", LHCTL_SUP_MAX);
	c = &sup->children[sup->n++];
	memset(c, 0, sizeof(*c));
	c->sup = sup;
	c->path = strdup(path);
	for (int i = 0; argv[i] && i < LHCTL_SUP_ARGS - 1; i++) {
		c->argv[i] = strdup(argv[i]);
		o += (size_t)snprintf(c->name + o, o < sizeof(c->name) ? sizeof(c->name) - o : 0,
				      "%s%s", i ? " " : "", argv[i]);
		if (o >= sizeof(c->name))
			o = sizeof(c->name) - 1;
	}
	snprintf(c->log_name, sizeof(c->log_name), "%s", log_name);
	if (asprintf(&c->log_path, "%s/%s.log", log_dir, log_name) < 0)
		abort();
	c->backoff_ms = BACKOFF_MIN_MS;
	c->optional = optional;
	return LH_OK;
}

static lh_err_t spawn_child(lhctl_child_t *c, lh_error_t *err)
{
	struct stat st;
	lhctl_spawn_t s = {.path = c->path, .argv = c->argv, .envp = c->sup->envp,
			   .log_path = c->log_path, .own_pgroup = true, .die_with_parent = true};
	lh_err_t rc;
	c->log_offset = stat(c->log_path, &st) == 0 ? (int64_t)st.st_size : 0;
	c->ready = false;
	if ((rc = lhctl_spawn(&s, &c->pid, err)))
		return rc;
	c->started_us = lh_mono_us();
	return LH_OK;
}

/* Look for `"event":"….started"` in the log lines this run wrote. */
static bool scan_ready(lhctl_child_t *c)
{
	char *buf;
	ssize_t n;
	int fd = open(c->log_path, O_RDONLY | O_CLOEXEC);
	bool found = false;
	if (fd < 0)
		return false;
	buf = malloc(READY_SCAN_MAX + 1);
	if (!buf)
		abort();
	n = pread(fd, buf, READY_SCAN_MAX, (off_t)c->log_offset);
	close(fd);
	if (n > 0) {
		char *p = buf, *last_nl;
		buf[n] = 0;
		while (!found && (p = strstr(p, "\"event\":\""))) {
			char *end;
			p += 9;
			end = strchr(p, '"');
			if (!end)
				break;
			found = end - p > 8 && strncmp(end - 8, ".started", 8) == 0;
			p = end;
		}
		/* Next time, start after the last complete line. */
		last_nl = memrchr(buf, '\n', (size_t)n);
		if (!found && last_nl)
			c->log_offset += last_nl - buf + 1;
	}
	free(buf);
	return found;
}

lh_err_t lhctl_sup_start(lhctl_sup_t *sup, int timeout_ms, lh_error_t *err)
{
	int64_t deadline = lh_mono_us() + (int64_t)timeout_ms * 1000;
	lh_err_t rc;
	int waiting;

	for (int i = 0; i < sup->n; i++)
		if ((rc = spawn_child(&sup->children[i], err)))
			return rc;
	for (;;) {
		waiting = 0;
		for (int i = 0; i < sup->n; i++) {
			lhctl_child_t *c = &sup->children[i];
			int st;
			char how[96], last[400];
			if (c->ready)
				continue;
			if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
				c->pid = 0;
				if (c->optional) {
					/* lhctl_sup_run restarts it with backoff. */
					c->ready = true;
					tell(sup, "%s exited during start-up (%s): %s; the stack goes on "
						  "without it and retries (see %s)",
					     c->name, lhctl_status_str(st, how, sizeof(how)),
					     lhctl_last_line(c->log_path, last, sizeof(last)),
					     c->log_path);
					continue;
				}
				return lh_error_set(err, LH_ERR_UNAVAILABLE,
						    "%s exited during start-up (%s): %s (see %s)",
						    c->name, lhctl_status_str(st, how, sizeof(how)),
						    lhctl_last_line(c->log_path, last, sizeof(last)),
						    c->log_path);
			}
			if (scan_ready(c))
				c->ready = true;
			else
				waiting++;
		}
		if (waiting == 0)
			return LH_OK;
		if (lhctl_interrupted)
			return lh_error_set(err, LH_ERR_UNAVAILABLE, "interrupted during start-up");
		if (lh_mono_us() >= deadline)
			break;
		{
			struct timespec d = {0, 50 * 1000000}; /* poll interval of the log files */
			nanosleep(&d, NULL);
		}
	}
	for (int i = 0; i < sup->n; i++)
		if (!sup->children[i].ready)
			tell(sup, "%s has not reported that it started within %d s; it keeps running "
				  "(see %s)",
			     sup->children[i].name, timeout_ms / 1000, sup->children[i].log_path);
	return LH_OK;
}

/* ---- the loop ------------------------------------------------------------------------------- */

static int running(const lhctl_sup_t *sup)
{
	int n = 0;
	for (int i = 0; i < sup->n; i++)
		n += sup->children[i].pid > 0;
	return n;
}

static void signal_all(lhctl_sup_t *sup, int sig)
{
	for (int i = 0; i < sup->n; i++) {
		pid_t pid = sup->children[i].pid;
		/* The child leads its own process group: signal the group, so helpers go too. */
		if (pid > 0 && kill(-pid, sig) < 0)
			kill(pid, sig);
	}
}

static void begin_stop(lhctl_sup_t *sup)
{
	struct timeval kill_tv = {sup->kill_timeout_ms / 1000, (sup->kill_timeout_ms % 1000) * 1000};
	if (sup->stopping)
		return;
	sup->stopping = true;
	for (int i = 0; i < sup->n; i++)
		if (sup->children[i].ev_restart)
			event_del(sup->children[i].ev_restart);
	if (running(sup) == 0) {
		event_base_loopbreak(sup->base);
		return;
	}
	tell(sup, "stopping %d daemon%s (SIGTERM; SIGKILL after %d s)", running(sup),
	     running(sup) == 1 ? "" : "s", sup->kill_timeout_ms / 1000);
	signal_all(sup, SIGTERM);
	evtimer_add(sup->ev_kill, &kill_tv);
}

static void on_kill(evutil_socket_t fd, short what, void *arg)
{
	lhctl_sup_t *sup = arg;
	struct timeval tv = {REAP_GRACE_MS / 1000, 0};
	for (int i = 0; i < sup->n; i++)
		if (sup->children[i].pid > 0)
			tell(sup, "%s did not stop in time; SIGKILL", sup->children[i].name);
	signal_all(sup, SIGKILL);
	evtimer_add(sup->ev_give_up, &tv);
}

static void on_give_up(evutil_socket_t fd, short what, void *arg)
{
	lhctl_sup_t *sup = arg;
	tell(sup, "%d daemon%s not reaped after SIGKILL; leaving", running(sup),
	     running(sup) == 1 ? "" : "s");
	event_base_loopbreak(sup->base);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	lhctl_sup_t *sup = arg;
	if (sup->stopping) {
		/* Asked twice: do not wait any longer. */
		if (sig == SIGINT || sig == SIGTERM) {
			tell(sup, "second interrupt: SIGKILL");
			event_del(sup->ev_kill);
			on_kill(-1, 0, sup);
		}
		return;
	}
	tell(sup, "%s: stopping the dev stack", strsignal((int)sig));
	begin_stop(sup);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	lhctl_child_t *c = arg;
	lhctl_sup_t *sup = c->sup;
	lh_error_t err = {0};
	struct timeval tv;
	if (sup->stopping)
		return;
	c->restarts++;
	if (spawn_child(c, &err) == LH_OK) {
		tell(sup, "%s restarted (pid %d, restart %d)", c->name, (int)c->pid, c->restarts);
		if (sup->on_change)
			sup->on_change(sup->opaque);
		return;
	}
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
	tell(sup, "could not restart %s: %s; trying again in %d s", c->name, err.msg,
	     c->backoff_ms / 1000);
	tv = (struct timeval){c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
	evtimer_add(c->ev_restart, &tv);
}

static void child_exited(lhctl_sup_t *sup, lhctl_child_t *c, int st)
{
	char how[96], ran[32];
	int64_t ran_us = lh_mono_us() - c->started_us;
	struct timeval tv;
	c->pid = 0;
	if (sup->stopping) {
		if (running(sup) == 0)
			event_base_loopbreak(sup->base);
		return;
	}
	if (ran_us >= HEALTHY_RUN_US)
		c->backoff_ms = BACKOFF_MIN_MS;
	tell(sup, "%s exited (%s) after %s; restarting in %d s (log: %s)", c->name,
	     lhctl_status_str(st, how, sizeof(how)), lhctl_fmt_dur(ran, ran_us / 1000),
	     c->backoff_ms / 1000, c->log_path);
	tv = (struct timeval){c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
	evtimer_add(c->ev_restart, &tv);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
	if (sup->on_change)
		sup->on_change(sup->opaque);
}

static void on_chld(evutil_socket_t fd, short what, void *arg)
{
	lhctl_sup_t *sup = arg;
	/* Only our daemons: pg_ctl and initdb are waited for where they are run. */
	for (int i = 0; i < sup->n; i++) {
		lhctl_child_t *c = &sup->children[i];
		int st;
		if (c->pid > 0 && waitpid(c->pid, &st, WNOHANG) == c->pid)
			child_exited(sup, c, st);
	}
}

void lhctl_sup_run(lhctl_sup_t *sup)
{
	sup->base = event_base_new();
	if (!sup->base)
		abort();
	sup->ev_chld = evsignal_new(sup->base, SIGCHLD, on_chld, sup);
	sup->ev_int = evsignal_new(sup->base, SIGINT, on_stop_signal, sup);
	sup->ev_term = evsignal_new(sup->base, SIGTERM, on_stop_signal, sup);
	sup->ev_hup = evsignal_new(sup->base, SIGHUP, on_stop_signal, sup);
	sup->ev_kill = evtimer_new(sup->base, on_kill, sup);
	sup->ev_give_up = evtimer_new(sup->base, on_give_up, sup);
	for (int i = 0; i < sup->n; i++)
		sup->children[i].ev_restart =
			evtimer_new(sup->base, on_restart, &sup->children[i]);
	event_add(sup->ev_chld, NULL);
	event_add(sup->ev_int, NULL);
	event_add(sup->ev_term, NULL);
	event_add(sup->ev_hup, NULL);
	/* A child may have died, or a stop been asked, before the loop listened. */
	on_chld(-1, 0, sup);
	for (int i = 0; i < sup->n; i++) {
		lhctl_child_t *c = &sup->children[i];
		if (c->pid == 0 && !evtimer_pending(c->ev_restart, NULL)) {
			struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
			evtimer_add(c->ev_restart, &tv);
		}
	}
	if (lhctl_interrupted)
		begin_stop(sup);
	if (!sup->stopping || running(sup) > 0)
		event_base_dispatch(sup->base);
	for (int i = 0; i < sup->n; i++) {
		if (sup->children[i].ev_restart)
			event_free(sup->children[i].ev_restart);
		sup->children[i].ev_restart = NULL;
	}
	event_free(sup->ev_chld);
	event_free(sup->ev_int);
	event_free(sup->ev_term);
	event_free(sup->ev_hup);
	event_free(sup->ev_kill);
	event_free(sup->ev_give_up);
	event_base_free(sup->base);
	sup->base = NULL;
	/* From now on a signal only sets the flag (the loop's handlers are gone). */
	lhctl_catch_signals();
}

void lhctl_sup_stop_now(lhctl_sup_t *sup)
{
	int64_t deadline = lh_mono_us() + (int64_t)sup->kill_timeout_ms * 1000;
	sup->stopping = true;
	signal_all(sup, SIGTERM);
	for (int i = 0; i < sup->n; i++) {
		lhctl_child_t *c = &sup->children[i];
		int64_t left = (deadline - lh_mono_us()) / 1000;
		int st;
		if (c->pid <= 0)
			continue;
		if (!lhctl_proc_wait_gone(c->pid, left > 0 ? (int)left : 0)) {
			if (kill(-c->pid, SIGKILL) < 0)
				kill(c->pid, SIGKILL);
			lhctl_proc_wait_gone(c->pid, REAP_GRACE_MS);
		}
		while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
}

json_t *lhctl_sup_json(const lhctl_sup_t *sup)
{
	json_t *a = json_array();
	for (int i = 0; i < sup->n; i++) {
		const lhctl_child_t *c = &sup->children[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:s, s:i}", "name", c->name,
						   "path", c->path, "pid", (json_int_t)c->pid, "log",
						   c->log_path, "restarts", c->restarts));
	}
	return a;
}

void lhctl_sup_finish(lhctl_sup_t *sup)
{
	for (int i = 0; i < sup->n; i++) {
		lhctl_child_t *c = &sup->children[i];
		free(c->path);
		free(c->log_path);
		for (int j = 0; j < LHCTL_SUP_ARGS; j++)
			free(c->argv[j]);
	}
	memset(sup, 0, sizeof(*sup));
}
