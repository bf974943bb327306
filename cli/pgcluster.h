/* pgcluster.h — the dev stack's private PostgreSQL cluster.
 *
 * Lives in STATE_DIR/pg: data/ (initdb'ed once, reused on every start), password (the lh role's,
 * 0600), port (the last port used), longhaul.conf inside data/ (listen address, port and socket
 * directory, rewritten at each start), initdb.log and postgres.log. The server listens on
 * 127.0.0.1 on a free port (the previous one when it is still free) and on a unix socket in
 * STATE_DIR/pg. Host connections need the password (scram-sha-256); the socket, in a 0700
 * directory, trusts its local users.
 *
 * The binaries are the newest /usr/lib/postgresql/N/bin (LH_PG_BIN overrides; an existing cluster
 * uses its own major version). PostgreSQL refuses to run as root: when lhctl is root the server
 * runs as LH_PG_USER (default "postgres"), set in a forked child before exec, and owns the
 * directory. When that user cannot reach STATE_DIR (e.g. under /root, mode 0700) the cluster goes
 * to /var/tmp/longhaul-pg-HASH instead, and lhctl says so. */
#ifndef LHCTL_PGCLUSTER_H
#define LHCTL_PGCLUSTER_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

typedef struct lhctl_pgc {
	char *dir;     /* the cluster's directory */
	char *data;    /* dir/data */
	char *bin;     /* directory of initdb, pg_ctl */
	int major;     /* server major version of bin */
	char *sockdir; /* unix socket directory, or NULL when the path would be too long */
	int port;
	char *password;
	char *url;     /* postgresql://lh:PASSWORD@127.0.0.1:PORT/lh */
	bool as_user;  /* the server runs as uid/gid, not as this process's user */
	uid_t uid;
	gid_t gid;
	char *user;
	bool running;  /* started (or found running) by this lhctl: stop it when done */
	bool reused;   /* it was already running when lhctl started */
	bool created;  /* initdb ran now */
	bool moved;    /* dir is the /var/tmp fallback, not STATE_DIR/pg */
} lhctl_pgc_t;

/* Find or create the cluster for state_dir, start it (or adopt it when already running), and
 * make sure database "lh" exists. Fills pgc (release with lhctl_pgc_finish). */
lh_err_t lhctl_pgc_start(lhctl_pgc_t *pgc, const char *state_dir, lh_error_t *err);
/* Stop the server (fast shutdown, then immediate) when pgc->running. Bounded (about 60 s). */
lh_err_t lhctl_pgc_stop(lhctl_pgc_t *pgc, lh_error_t *err);
/* Stop a cluster left running in dir by a dev stack that died. LH_ERR_NOT_FOUND when no server
 * runs there. */
lh_err_t lhctl_pgc_stop_dir(const char *dir, lh_error_t *err);
void lhctl_pgc_finish(lhctl_pgc_t *pgc);
/* /var/tmp/longhaul-pg-HASH: where the cluster of state_dir goes when the server's user cannot
 * enter state_dir. New string. */
char *lhctl_pgc_fallback_dir(const char *state_dir);

#endif
