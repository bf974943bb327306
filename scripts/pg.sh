#!/usr/bin/env bash
# scripts/pg.sh — a real PostgreSQL server (newest installed, 15 on Debian 12) in a
# private directory for Longhaul's tests.  See scripts/README.md.
#
#   pg.sh start           initdb if needed, start, wait for pg_isready, create role and db `lh`
#   pg.sh stop [--wipe]   fast shutdown (immediate after a bounded wait); --wipe deletes the dir
#   pg.sh restart         fast restart (clients are disconnected), data kept
#   pg.sh kill9           SIGKILL the postmaster and all its children (crash test); start recovers
#   pg.sh status          exit 0 when accepting connections, 3 otherwise
#   pg.sh env             print `export LH_PG_URL=...` (and LH_PG_ADMIN_URL) for eval
#
# Environment: LH_TEST_DIR (default /tmp/lh-test; the server lives in $LH_TEST_DIR/pg),
# LH_PG_DIR (the directory itself), LH_PG_PORT (default 15432), LH_PG_USER (OS user that
# runs the server when this script runs as root; default postgres), LH_PG_BIN (directory
# holding initdb and pg_ctl), LH_PG_START_TIMEOUT (60 s).
set -euo pipefail

test_dir=${LH_TEST_DIR:-/tmp/lh-test}
pg_dir=${LH_PG_DIR:-$test_dir/pg}
port=${LH_PG_PORT:-15432}
start_timeout=${LH_PG_START_TIMEOUT:-60}
data=$pg_dir/data
log_file=$pg_dir/postgres.log
url=postgresql://lh@127.0.0.1:$port/lh
admin_url=postgresql://postgres@127.0.0.1:$port/lh

die() { echo "pg.sh: $*" >&2; exit 1; }
say() { echo "pg.sh: $*"; }

# Directory of the newest installed server version (…/postgresql/N/bin).
find_bin() {
	local d best="" bestv=0 v
	if [[ -n ${LH_PG_BIN:-} ]]; then
		[[ -x $LH_PG_BIN/pg_ctl ]] || die "LH_PG_BIN=$LH_PG_BIN has no pg_ctl"
		echo "$LH_PG_BIN"
		return
	fi
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/initdb && -x $d/pg_ctl ]] || continue
		v=$(basename "$(dirname "$d")")
		[[ $v =~ ^[0-9]+$ ]] || continue
		if ((v > bestv)); then
			bestv=$v
			best=$d
		fi
	done
	[[ -n $best ]] || die "no PostgreSQL server under /usr/lib/postgresql (run scripts/deps.sh)"
	echo "$best"
}

bin=$(find_bin)

# initdb and postgres refuse to run as root: as root, run the server as $run_user.
if [[ $(id -u) -eq 0 ]]; then
	run_user=${LH_PG_USER:-postgres}
	id -u "$run_user" >/dev/null 2>&1 ||
		die "user $run_user does not exist (the postgresql package creates postgres; or set LH_PG_USER)"
	runuser_bin=$(command -v runuser || echo /usr/sbin/runuser)
	[[ -x $runuser_bin ]] || die "runuser (util-linux) is needed to run the server as $run_user"
else
	run_user=$(id -un)
fi

# Runs "$@" as the server's OS user, from / so that an unreadable working
# directory of the caller does not matter.
as_owner() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd / && "$runuser_bin" -u "$run_user" -- "$@")
	else
		(cd / && "$@")
	fi
}

ready() {
	"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U postgres -t 2 >/dev/null 2>&1
}

# True when process $1 exists and is not a zombie (kill -0 succeeds on zombies).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]]
}

# The postmaster's pid from postmaster.pid when that process is alive.
postmaster_pid() {
	local pid
	[[ -f $data/postmaster.pid ]] || return 1
	pid=$(head -n 1 "$data/postmaster.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	echo "$pid"
}

# Every live process of this server: the postmaster and its children all run
# with the data directory as working directory.  (Children call setsid(), so a
# process group does not cover them, and after a crash their parent is gone.)
cluster_pids() {
	local p real
	[[ -d $data ]] || return 0
	real=$(cd "$data" 2>/dev/null && pwd -P) || return 0
	for p in /proc/[0-9]*; do
		[[ $(readlink "$p/cwd" 2>/dev/null) == "$real" ]] || continue
		alive "${p#/proc/}" && echo "${p#/proc/}"
	done
	return 0
}

# Waits up to $1 seconds until no process of this server is left.
wait_cluster_gone() {
	local limit=$1 t0=$SECONDS
	while [[ -n $(cluster_pids) ]]; do
		((SECONDS - t0 < limit)) || return 1
		sleep 0.1
	done
}

# After a crash the lock files name a dead postmaster.  PostgreSQL removes such
# files itself, but it tests the pid with kill(pid, 0), which succeeds on a zombie
# that init has not reaped yet (here PID 1 reaps orphans only every few seconds).
# Called only once no process of this server is alive.
remove_stale_locks() {
	local f pid
	for f in "$data/postmaster.pid" "$data/.s.PGSQL.$port.lock"; do
		[[ -f $f ]] || continue
		pid=$(head -n 1 "$f")
		if [[ $pid =~ ^-?[0-9]+$ ]] && alive "${pid#-}"; then
			continue
		fi
		rm -f "$f"
	done
}

init_cluster() {
	local parent
	if [[ -f $data/PG_VERSION ]]; then
		return 0
	fi
	(umask 022 && mkdir -p "$pg_dir")
	# The server's user must be able to reach the directory.
	parent=$pg_dir
	while [[ $parent != / ]]; do
		if [[ $(id -u) -eq 0 ]] && ! as_owner test -x "$parent"; then
			die "$run_user cannot enter $parent: choose LH_TEST_DIR under a world-searchable directory such as /tmp"
		fi
		parent=$(dirname "$parent")
	done
	chown "$run_user" "$pg_dir"
	say "initdb ($bin) in $data as $run_user"
	as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
		--no-instructions >"$pg_dir/initdb.log" 2>&1 ||
		{ cat "$pg_dir/initdb.log" >&2; die "could not initdb $data"; }
	# Settings for a private test server.  fsync stays on: the tests check crash safety.
	as_owner tee -a "$data/postgresql.conf" >/dev/null <<EOF

# --- written by scripts/pg.sh ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = -1
EOF
}

ensure_role_and_db() {
	local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
	"${psql[@]}" -d postgres >/dev/null <<'EOF'
SELECT 'CREATE ROLE lh LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lh') \gexec
SELECT 'CREATE DATABASE lh OWNER lh'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'lh') \gexec
EOF
	"${psql[@]}" -d lh -c 'ALTER SCHEMA public OWNER TO lh' >/dev/null
}

cmd_start() {
	local pid t0
	if pid=$(postmaster_pid) && ready; then
		say "already running (pid $pid) on 127.0.0.1:$port"
		echo "LH_PG_URL=$url"
		return 0
	fi
	init_cluster
	if ! postmaster_pid >/dev/null; then
		# After a crash the old backends may still be exiting; a new postmaster
		# refuses to start while they hold the old shared memory.
		wait_cluster_gone 30 ||
			die "processes of a previous server in $data are still alive: $(cluster_pids | tr '\n' ' ')"
		remove_stale_locks
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			die "port $port is already in use by another process"
		fi
		t0=$SECONDS
		# pg_ctl -w waits until the server reports itself ready (or failed).
		as_owner "$bin/pg_ctl" -D "$data" -l "$log_file" -w -t "$start_timeout" start >/dev/null ||
			{ tail -n 30 "$log_file" >&2; die "could not start the server: see $log_file"; }
	else
		t0=$SECONDS
	fi
	while ! ready; do
		if ! postmaster_pid >/dev/null; then
			tail -n 30 "$log_file" >&2
			die "server exited during start-up: see $log_file"
		fi
		((SECONDS - t0 < start_timeout)) || die "server did not accept connections within ${start_timeout}s"
		sleep 0.1 # poll interval of pg_isready, not a wait for readiness
	done
	ensure_role_and_db
	pid=$(postmaster_pid)
	say "started (pid $pid) in $((SECONDS - t0))s; data in $data"
	echo "LH_PG_URL=$url"
}

cmd_stop() {
	local wipe=0 pid
	case ${1:-} in
	--wipe) wipe=1 ;;
	"") ;;
	*) die "unknown option to stop: $1" ;;
	esac
	if pid=$(postmaster_pid); then
		if ! as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1; then
			say "fast shutdown did not finish within 60s; immediate shutdown"
			as_owner "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
		fi
		wait_cluster_gone 30 || die "processes of the server are still alive: $(cluster_pids | tr '\n' ' ')"
		say "stopped (pid $pid)"
	else
		say "not running"
	fi
	if ((wipe)); then
		rm -rf "$pg_dir"
		say "removed $pg_dir"
	fi
}

cmd_restart() {
	local pid t0=$SECONDS
	postmaster_pid >/dev/null || { cmd_start; return; }
	as_owner "$bin/pg_ctl" -D "$data" -l "$log_file" -m fast -w -t "$start_timeout" restart >/dev/null ||
		{ tail -n 30 "$log_file" >&2; die "could not restart the server: see $log_file"; }
	while ! ready; do
		((SECONDS - t0 < start_timeout)) || die "server did not accept connections within ${start_timeout}s"
		sleep 0.1 # poll interval of pg_isready, not a wait for readiness
	done
	pid=$(postmaster_pid) || die "server exited after restart: see $log_file"
	say "restarted (pid $pid) in $((SECONDS - t0))s"
	echo "LH_PG_URL=$url"
}

# SIGKILL to the postmaster and every backend at once: the closest to a machine
# crash a test can get without losing the page cache.
cmd_kill9() {
	local pid pids
	pid=$(postmaster_pid) || die "not running"
	pids=$(cluster_pids)
	# shellcheck disable=SC2086 # one pid per word
	kill -KILL $pids "$pid" 2>/dev/null || true
	wait_cluster_gone 30 || die "processes survived SIGKILL: $(cluster_pids | tr '\n' ' ')"
	say "killed the postmaster (pid $pid) and its children with SIGKILL ($(wc -w <<<"$pids $pid") signals)"
}

cmd_status() {
	local pid
	if pid=$(postmaster_pid); then
		if ready; then
			say "running (pid $pid) on 127.0.0.1:$port"
			return 0
		fi
		say "pid $pid is alive but does not accept connections on 127.0.0.1:$port"
		return 3
	fi
	say "not running"
	return 3
}

usage() {
	sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

case ${1:-} in
start) cmd_start ;;
stop) shift; cmd_stop "$@" ;;
restart) cmd_restart ;;
kill9) cmd_kill9 ;;
status) cmd_status ;;
env)
	echo "export LH_PG_URL=$url"
	echo "export LH_PG_ADMIN_URL=$admin_url"
	;;
*) usage ;;
esac
