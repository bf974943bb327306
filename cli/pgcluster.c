#include "pgcluster.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "common.h"
#include "ids.h"
#include "pg.h"
#include "proc.h"

#define INITDB_TIMEOUT_MS (180 * 1000)
#define PG_CTL_TIMEOUT_S 60
#define PG_CTL_WAIT_MS ((PG_CTL_TIMEOUT_S + 15) * 1000)
#define SOCKET_NAME_MAX 16 /* "/.s.PGSQL.65535" and its NUL */

static char *path_join(const char *a, const char *b)
{
	char *p;
	if (asprintf(&p, "%s/%s", a, b) < 0)
		abort();
	return p;
}

/* Read a small file into a new trimmed string; NULL when it cannot be read. */
static char *read_small(const char *path)
{
	char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return strdup(buf);
}

/* Write text to path (mode), replacing it atomically; chown to the server's user when asked. */
static lh_err_t write_file(const lhctl_pgc_t *pgc, const char *path, const char *text, mode_t mode,
			   bool give_to_server, lh_error_t *err)
{
	char *tmp;
	int fd;
	size_t len = strlen(text);
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		abort();
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0 ||
	    (give_to_server && pgc->as_user && fchown(fd, pgc->uid, pgc->gid) < 0) || close(fd) < 0 ||
	    rename(tmp, path) < 0) {
		lh_error_set(err, LH_ERR_IO, "could not write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		free(tmp);
		return LH_ERR_IO;
	}
	free(tmp);
	return LH_OK;
}

/* Newest /usr/lib/postgresql/N/bin with initdb and pg_ctl; want > 0 asks for that major. */
static lh_err_t find_bin(int want, char **ret_bin, int *ret_major, lh_error_t *err)
{
	const char *env = getenv("LH_PG_BIN");
	glob_t g;
	int bestv = 0;
	if (env && *env) {
		char *ctl = path_join(env, "pg_ctl");
		bool ok = access(ctl, X_OK) == 0;
		free(ctl);
		if (!ok)
			return lh_error_set(err, LH_ERR_CONFIG, "LH_PG_BIN=%s holds no pg_ctl", env);
		*ret_bin = strdup(env);
		*ret_major = want;
		return LH_OK;
	}
	memset(&g, 0, sizeof(g));
	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			int major = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
			char ctl[512];
			snprintf(ctl, sizeof(ctl), "/usr/lib/postgresql/%d/bin/pg_ctl", major);
			if (major <= 0 || access(ctl, X_OK) < 0)
				continue;
			if ((want > 0 && major == want) || (want <= 0 && major > bestv))
				bestv = major;
		}
		globfree(&g);
	}
	if (bestv == 0 && want > 0)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "the cluster was made by PostgreSQL %d, whose server is not installed "
				    "(no /usr/lib/postgresql/%d/bin)",
				    want, want);
	if (bestv == 0)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "could not find a PostgreSQL server under /usr/lib/postgresql "
				    "(install the postgresql package, set LH_PG_BIN, or give --pg-url)");
	if (asprintf(ret_bin, "/usr/lib/postgresql/%d/bin", bestv) < 0)
		abort();
	*ret_major = bestv;
	return LH_OK;
}

static void spawn_opts(const lhctl_pgc_t *pgc, lhctl_spawn_t *s, const char *path,
		       char *const *argv, const char *log)
{
	*s = (lhctl_spawn_t){.path = path, .argv = argv, .log_path = log, .set_user = pgc->as_user,
			     .uid = pgc->uid, .gid = pgc->gid};
}

/* Whether the server's user can enter dir (run `test -x dir` as that user). */
static bool user_can_enter(const lhctl_pgc_t *pgc, const char *dir)
{
	char *argv[] = {"test", "-x", (char *)dir, NULL};
	lhctl_spawn_t s;
	int status = 1;
	const char *test = access("/usr/bin/test", X_OK) == 0 ? "/usr/bin/test" : "/bin/test";
	spawn_opts(pgc, &s, test, argv, NULL);
	if (lhctl_spawn_wait(&s, 10000, &status, NULL))
		return false;
	return status == 0;
}

/* Server user and binaries for a cluster in dir (existing or not). */
static lh_err_t prepare(lhctl_pgc_t *pgc, const char *dir, lh_error_t *err)
{
	char *pgv, *vf;
	int want = 0;
	pgc->dir = strdup(dir);
	pgc->data = path_join(dir, "data");
	vf = path_join(pgc->data, "PG_VERSION");
	if ((pgv = read_small(vf)))
		want = atoi(pgv);
	free(pgv);
	free(vf);
	if (strlen(dir) + SOCKET_NAME_MAX <= sizeof(((struct sockaddr_un *)0)->sun_path))
		pgc->sockdir = strdup(dir);
	return find_bin(want, &pgc->bin, &pgc->major, err);
}

static lh_err_t pick_user(lhctl_pgc_t *pgc, lh_error_t *err)
{
	const char *name = getenv("LH_PG_USER");
	struct passwd *pw;
	if (geteuid() != 0)
		return LH_OK;
	if (!name || !*name)
		name = "postgres";
	if (!(pw = getpwnam(name)) || pw->pw_uid == 0)
		return lh_error_set(err, LH_ERR_CONFIG,
				    "lhctl runs as root and PostgreSQL refuses root, but user \"%s\" "
				    "%s (set LH_PG_USER to another user, or give --pg-url)",
				    name, pw ? "is root too" : "does not exist");
	pgc->as_user = true;
	pgc->uid = pw->pw_uid;
	pgc->gid = pw->pw_gid;
	pgc->user = strdup(name);
	return LH_OK;
}

char *lhctl_pgc_fallback_dir(const char *state_dir)
{
	char real[4096], hex[65], *dir;
	if (!realpath(state_dir, real))
		snprintf(real, sizeof(real), "%s", state_dir);
	lh_sha256_hex(real, strlen(real), hex);
	if (asprintf(&dir, "/var/tmp/longhaul-pg-%.12s", hex) < 0)
		abort();
	return dir;
}

static bool holds_cluster(const char *dir)
{
	char *vf;
	bool yes;
	if (asprintf(&vf, "%s/data/PG_VERSION", dir) < 0)
		abort();
	yes = access(vf, F_OK) == 0;
	free(vf);
	return yes;
}

/* Where the cluster lives: STATE_DIR/pg, unless the server's user cannot get there (then the
 * fallback). An existing cluster stays where it is. */
static char *choose_dir(lhctl_pgc_t *pgc, const char *state_dir)
{
	struct stat st;
	char *dir = path_join(state_dir, "pg"), *fallback;
	if (!pgc->as_user || holds_cluster(dir))
		return dir;
	fallback = lhctl_pgc_fallback_dir(state_dir);
	if (holds_cluster(fallback)) {
		free(dir);
		pgc->moved = true;
		return fallback;
	}
	/* Let the server's user traverse (not list) the state directory we own. */
	if (stat(state_dir, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & S_IXOTH))
		chmod(state_dir, (st.st_mode & 07777) | S_IXOTH);
	if (user_can_enter(pgc, state_dir)) {
		free(fallback);
		return dir;
	}
	free(dir);
	pgc->moved = true;
	return fallback;
}

static lh_err_t make_password(char **ret, lh_error_t *err)
{
	uint8_t raw[18];
	char hex[37];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return lh_error_set(err, LH_ERR_INTERNAL, "could not generate a password: libcrypto's "
							  "random generator failed");
	lh_hex(raw, sizeof(raw), hex);
	*ret = strdup(hex);
	return LH_OK;
}

static bool dir_empty(const char *path)
{
	glob_t g;
	char *pat = path_join(path, "*");
	bool empty = glob(pat, GLOB_PERIOD, NULL, &g) != 0;
	if (!empty) {
		size_t real = 0;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			const char *b = strrchr(g.gl_pathv[i], '/') + 1;
			if (strcmp(b, ".") && strcmp(b, ".."))
				real++;
		}
		empty = real == 0;
		globfree(&g);
	}
	free(pat);
	return empty;
}

static lh_err_t init_cluster(lhctl_pgc_t *pgc, lh_error_t *err)
{
	char *initdb = path_join(pgc->bin, "initdb"), *log = path_join(pgc->dir, "initdb.log");
	char *pwfile = path_join(pgc->dir, "password"), *pwopt = NULL, *conf = NULL, last[300];
	char *argv[] = {"initdb", "-D", pgc->data, "-U", "lh", NULL /* --pwfile */,
			"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
			"--locale=C", "--no-instructions", NULL};
	lhctl_spawn_t s;
	int status = 0, fd = -1;
	lh_err_t rc;
	struct stat st;

	if (stat(pgc->data, &st) == 0 && !dir_empty(pgc->data)) {
		rc = lh_error_set(err, LH_ERR_CONFLICT,
				  "%s is not a PostgreSQL cluster but is not empty (an interrupted "
				  "initdb?): remove it and start again",
				  pgc->data);
		goto out_free;
	}
	if ((rc = make_password(&pgc->password, err)))
		goto out_free;
	/* The server's user reads the password file (initdb --pwfile) and keeps it. */
	if ((rc = write_file(pgc, pwfile, pgc->password, 0600, true, err)))
		goto out_free;
	if (asprintf(&pwopt, "--pwfile=%s", pwfile) < 0)
		abort();
	argv[5] = pwopt;
	spawn_opts(pgc, &s, initdb, argv, log);
	if ((rc = lhctl_spawn_wait(&s, INITDB_TIMEOUT_MS, &status, err)))
		goto out_free;
	if (status != 0) {
		rc = lh_error_set(err, LH_ERR_IO, "initdb failed (exit status %d): %s; see %s", status,
				  lhctl_last_line(log, last, sizeof(last)), log);
		goto out_free;
	}
	/* Settings that change per start live in longhaul.conf, included from postgresql.conf. */
	conf = path_join(pgc->data, "postgresql.conf");
	fd = open(conf, O_WRONLY | O_APPEND | O_CLOEXEC);
	{
		static const char inc[] = "\n# lhctl dev: listen address, port and socket directory\n"
					  "include_if_exists = 'longhaul.conf'\n";
		if (fd < 0 || write(fd, inc, sizeof(inc) - 1) != (ssize_t)sizeof(inc) - 1) {
			rc = lh_error_set(err, LH_ERR_IO, "could not write %s: %s", conf,
					  strerror(errno));
			goto out_free;
		}
	}
	pgc->created = true;
	if (pgc->major <= 0) { /* LH_PG_BIN named the binaries: the cluster says which they are */
		char *vf = path_join(pgc->data, "PG_VERSION"), *v = read_small(vf);
		pgc->major = v ? atoi(v) : 0;
		free(v);
		free(vf);
	}
out_free:
	if (fd >= 0)
		close(fd);
	free(conf);
	free(pwopt);
	free(pwfile);
	free(log);
	free(initdb);
	return rc;
}

/* The pid and port of a server already running in data/ (postmaster.pid lines 1 and 4). */
static bool running_server(const lhctl_pgc_t *pgc, pid_t *ret_pid, int *ret_port)
{
	char *path = path_join(pgc->data, "postmaster.pid"), line[4][256];
	FILE *f = fopen(path, "re");
	int n = 0;
	free(path);
	if (!f)
		return false;
	while (n < 4 && fgets(line[n], sizeof(line[n]), f))
		n++;
	fclose(f);
	if (n < 4 || atoi(line[0]) <= 0 || !lhctl_proc_alive((pid_t)atoi(line[0])))
		return false;
	*ret_pid = (pid_t)atoi(line[0]);
	*ret_port = atoi(line[3]);
	return true;
}

/* '...' for postgresql.conf: quotes doubled. New string. */
static char *conf_quote(const char *s)
{
	lh_buf_t b;
	lh_buf_init(&b);
	lh_buf_appends(&b, "'");
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			lh_buf_appends(&b, "''");
		else
			lh_buf_append(&b, p, 1);
	}
	lh_buf_appends(&b, "'");
	return lh_buf_steal(&b, NULL);
}

static lh_err_t start_server(lhctl_pgc_t *pgc, lh_error_t *err)
{
	char *portfile = path_join(pgc->dir, "port"), *prev = read_small(portfile);
	char *confpath = path_join(pgc->data, "longhaul.conf"), *sock = NULL, *conf = NULL;
	char *pg_ctl = path_join(pgc->bin, "pg_ctl"), *log = path_join(pgc->dir, "postgres.log");
	char *ctl_log = path_join(pgc->dir, "pg_ctl.log"), tmo[16], portstr[16], last[300];
	char *argv[] = {"pg_ctl", "-D", pgc->data, "-l", log, "-w", "-t", tmo, "start", NULL};
	lhctl_spawn_t s;
	int status = 0;
	lh_err_t rc;

	pgc->port = lhctl_port_pick(prev ? atoi(prev) : 0);
	if (pgc->port <= 0) {
		rc = lh_error_set(err, LH_ERR_IO, "could not find a free port on 127.0.0.1");
		goto out_free;
	}
	sock = conf_quote(pgc->sockdir ? pgc->sockdir : "");
	if (asprintf(&conf,
		     "# written by lhctl dev at each start; do not edit\n"
		     "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = %s\n",
		     pgc->port, sock) < 0)
		abort();
	snprintf(portstr, sizeof(portstr), "%d\n", pgc->port);
	snprintf(tmo, sizeof(tmo), "%d", PG_CTL_TIMEOUT_S);
	if ((rc = write_file(pgc, confpath, conf, 0600, true, err)) ||
	    (rc = write_file(pgc, portfile, portstr, 0600, false, err)))
		goto out_free;
	spawn_opts(pgc, &s, pg_ctl, argv, ctl_log);
	if ((rc = lhctl_spawn_wait(&s, PG_CTL_WAIT_MS, &status, err)))
		goto out_free;
	if (status != 0) {
		rc = lh_error_set(err, LH_ERR_IO, "could not start postgresql (pg_ctl exit status %d): "
						  "%s; see %s",
				  status, lhctl_last_line(log, last, sizeof(last)), log);
		goto out_free;
	}
	pgc->running = true;
out_free:
	free(ctl_log);
	free(log);
	free(pg_ctl);
	free(conf);
	free(sock);
	free(confpath);
	free(prev);
	free(portfile);
	return rc;
}

/* CREATE DATABASE lh unless it exists (the cluster's superuser is lh). */
static lh_err_t ensure_db(lhctl_pgc_t *pgc, lh_error_t *err)
{
	char *admin;
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	const char *params[1] = {"lh"};
	lh_err_t rc;
	if (asprintf(&admin, "postgresql://lh:%s@127.0.0.1:%d/postgres", pgc->password, pgc->port) < 0)
		abort();
	if (!(rc = lh_pg_connect(admin, &pg, err)) &&
	    !(rc = lh_pg_query(pg, "dev_database_exists", 1, params, NULL, NULL, &res, err)) &&
	    lh_pg_nrows(res) == 0)
		rc = lh_pg_exec(pg, "CREATE DATABASE lh", err);
	lh_pg_res_free(res);
	lh_pg_free(pg);
	free(admin);
	return rc;
}

lh_err_t lhctl_pgc_start(lhctl_pgc_t *pgc, const char *state_dir, lh_error_t *err)
{
	char *dir = NULL, *pwfile = NULL, vfile[4096];
	pid_t pid;
	lh_err_t rc;

	memset(pgc, 0, sizeof(*pgc));
	if ((rc = pick_user(pgc, err)))
		return rc;
	dir = choose_dir(pgc, state_dir);
	if ((rc = lhctl_mkdirs(dir, 0700, err)))
		goto out_free;
	if (pgc->as_user && chown(dir, pgc->uid, pgc->gid) < 0) {
		rc = lh_error_set(err, LH_ERR_IO, "could not give %s to user %s: %s", dir, pgc->user,
				  strerror(errno));
		goto out_free;
	}
	if ((rc = prepare(pgc, dir, err)))
		goto out_free;
	snprintf(vfile, sizeof(vfile), "%s/PG_VERSION", pgc->data);
	if (access(vfile, F_OK) < 0) {
		if ((rc = init_cluster(pgc, err)))
			goto out_free;
	} else {
		pwfile = path_join(pgc->dir, "password");
		if (!(pgc->password = read_small(pwfile)) || !*pgc->password) {
			rc = lh_error_set(err, LH_ERR_CONFIG,
					  "%s is missing, so lhctl cannot log in to the cluster in %s: "
					  "remove %s to start over",
					  pwfile, pgc->data, pgc->dir);
			goto out_free;
		}
	}
	if (running_server(pgc, &pid, &pgc->port)) {
		pgc->running = true;
		pgc->reused = true;
	} else if ((rc = start_server(pgc, err)))
		goto out_free;
	if (asprintf(&pgc->url, "postgresql://lh:%s@127.0.0.1:%d/lh", pgc->password, pgc->port) < 0)
		abort();
	rc = ensure_db(pgc, err);
out_free:
	free(pwfile);
	free(dir);
	return rc;
}

static lh_err_t stop_server(const lhctl_pgc_t *pgc, lh_error_t *err)
{
	char *pg_ctl = path_join(pgc->bin, "pg_ctl"), *log = path_join(pgc->dir, "pg_ctl.log");
	char tmo[16];
	char *fast[] = {"pg_ctl", "-D", pgc->data, "-m", "fast", "-w", "-t", tmo, "stop", NULL};
	char *now[] = {"pg_ctl", "-D", pgc->data, "-m", "immediate", "-w", "-t", tmo, "stop", NULL};
	lhctl_spawn_t s;
	int status = 1;
	lh_err_t rc;
	snprintf(tmo, sizeof(tmo), "%d", 30);
	spawn_opts(pgc, &s, pg_ctl, fast, log);
	rc = lhctl_spawn_wait(&s, 45000, &status, err);
	if (rc || status != 0) {
		spawn_opts(pgc, &s, pg_ctl, now, log);
		rc = lhctl_spawn_wait(&s, 45000, &status, err);
		if (!rc && status != 0)
			rc = lh_error_set(err, LH_ERR_IO, "could not stop postgresql in %s; see %s",
					  pgc->data, log);
	}
	free(log);
	free(pg_ctl);
	return rc;
}

lh_err_t lhctl_pgc_stop(lhctl_pgc_t *pgc, lh_error_t *err)
{
	lh_err_t rc;
	if (!pgc->running)
		return LH_OK;
	rc = stop_server(pgc, err);
	if (rc == LH_OK)
		pgc->running = false;
	return rc;
}

lh_err_t lhctl_pgc_stop_dir(const char *dir, lh_error_t *err)
{
	lhctl_pgc_t pgc = {0};
	struct stat st;
	pid_t pid;
	int port;
	lh_err_t rc;
	pgc.data = path_join(dir, "data");
	if (!running_server(&pgc, &pid, &port)) {
		rc = LH_ERR_NOT_FOUND;
		goto out_free;
	}
	free(pgc.data);
	pgc.data = NULL;
	if ((rc = prepare(&pgc, dir, err)))
		goto out_free;
	/* pg_ctl runs as the owner of the data directory. */
	if (geteuid() == 0 && stat(pgc.data, &st) == 0 && st.st_uid != 0) {
		pgc.as_user = true;
		pgc.uid = st.st_uid;
		pgc.gid = st.st_gid;
	}
	rc = stop_server(&pgc, err);
out_free:
	lhctl_pgc_finish(&pgc);
	return rc;
}

void lhctl_pgc_finish(lhctl_pgc_t *pgc)
{
	free(pgc->dir);
	free(pgc->data);
	free(pgc->bin);
	free(pgc->sockdir);
	free(pgc->password);
	free(pgc->url);
	free(pgc->user);
	memset(pgc, 0, sizeof(*pgc));
}
