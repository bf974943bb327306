#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

extern char **environ;

#define ERR_FD 3 /* where the child keeps the exec-error pipe */

/* Close every descriptor from `from` on: librdkafka's sockets, lhctl's lock file, other pipes. */
static void close_from(int from)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0)
		return;
#endif
	for (int fd = from; fd < 4096; fd++)
		close(fd);
}

/* In the child: only async-signal-safe calls until execve. */
static void child(const lhctl_spawn_t *s, int errfd, pid_t parent)
{
	int fd, e;
	if (s->own_pgroup)
		setpgid(0, 0);
	if (s->die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent) /* the parent died before prctl */
			_exit(127);
	}
	/* Signal dispositions and the mask are inherited: give the program a clean slate. */
	{
		sigset_t all;
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		for (int sig = 1; sig < NSIG; sig++)
			sigaction(sig, &dfl, NULL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
	}
	if (errfd != ERR_FD) {
		if (dup2(errfd, ERR_FD) < 0)
			goto out_fail;
		close(errfd);
	}
	fcntl(ERR_FD, F_SETFD, FD_CLOEXEC);
	if (s->set_user) {
		if (setgroups(0, NULL) < 0 || setgid(s->gid) < 0 || setuid(s->uid) < 0)
			goto out_fail;
	}
	if (chdir("/") < 0)
		goto out_fail;
	if ((fd = open("/dev/null", O_RDONLY)) < 0 || dup2(fd, 0) < 0)
		goto out_fail;
	if (fd != 0)
		close(fd);
	fd = s->log_path ? open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0640)
			 : open("/dev/null", O_WRONLY);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		goto out_fail;
	if (fd > 2)
		close(fd);
	close_from(ERR_FD + 1);
	execve(s->path, s->argv, s->envp ? s->envp : environ);
out_fail:
	e = errno;
	if (write(ERR_FD, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

lh_err_t lhctl_spawn(const lhctl_spawn_t *s, pid_t *ret_pid, lh_error_t *err)
{
	int p[2], e = 0;
	pid_t pid, self = getpid();
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return lh_error_set(err, LH_ERR_IO, "could not create a pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(p[0]);
		close(p[1]);
		return lh_error_set(err, LH_ERR_IO, "could not fork: %s", strerror(e));
	}
	if (pid == 0) {
		close(p[0]);
		child(s, p[1], self);
	}
	close(p[1]);
	do
		n = read(p[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(e)) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return lh_error_set(err, LH_ERR_IO, "could not run %s: %s", s->path, strerror(e));
	}
	*ret_pid = pid;
	return LH_OK;
}

lh_err_t lhctl_spawn_wait(const lhctl_spawn_t *s, int timeout_ms, int *ret_status,
			  lh_error_t *err)
{
	pid_t pid;
	int st = 0;
	lh_err_t rc = lhctl_spawn(s, &pid, err);
	if (rc)
		return rc;
	if (!lhctl_proc_wait_gone(pid, timeout_ms)) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return lh_error_set(err, LH_ERR_TIMEOUT, "%s did not finish within %d s", s->path,
				    timeout_ms / 1000);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return LH_OK;
}

const char *lhctl_status_str(int wstatus, char *buf, size_t n)
{
	if (WIFEXITED(wstatus))
		snprintf(buf, n, "exit status %d", WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(wstatus),
			 strsignal(WTERMSIG(wstatus)));
	else
		snprintf(buf, n, "status 0x%x", (unsigned)wstatus);
	return buf;
}

const char *lhctl_last_line(const char *path, char *buf, size_t n)
{
	char tail[4096];
	ssize_t got;
	off_t size, from;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *end, *start;
	buf[0] = 0;
	if (fd < 0)
		return buf;
	size = lseek(fd, 0, SEEK_END);
	from = size > (off_t)sizeof(tail) - 1 ? size - (off_t)sizeof(tail) + 1 : 0;
	got = pread(fd, tail, sizeof(tail) - 1, from);
	close(fd);
	if (got <= 0)
		return buf;
	tail[got] = 0;
	end = tail + got;
	while (end > tail && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	*end = 0;
	start = strrchr(tail, '\n');
	start = start ? start + 1 : tail;
	snprintf(buf, n, "%s", start);
	return buf;
}
