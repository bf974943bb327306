#!/usr/bin/env bash
# scripts/kafka.sh — a real single-node Apache Kafka 3.9 broker (KRaft, combined
# broker+controller) on 127.0.0.1 for Longhaul's tests.  See scripts/README.md.
#
#   kafka.sh fetch           copy the broker's jars from Maven into the cache (once)
#   kafka.sh start           format storage if needed, start, wait until it answers
#   kafka.sh stop [--wipe]   SIGTERM, bounded wait, SIGKILL; --wipe deletes the data dir
#   kafka.sh restart         stop then start (data kept)
#   kafka.sh kill9           SIGKILL the broker (crash tests); start recovers the data
#   kafka.sh status          exit 0 when running and answering, 3 otherwise
#   kafka.sh env             print `export LH_KAFKA_BROKERS=...` for eval
#
# Environment: LH_KAFKA_HOME (jar cache), LH_TEST_DIR (data under $LH_TEST_DIR/kafka),
# LH_KAFKA_DIR (data dir itself), LH_KAFKA_PORT (default 19092; controller = port+1),
# LH_KAFKA_VERSION (default 3.9.1, falls back to 3.9.0), LH_KAFKA_START_TIMEOUT (90 s),
# LH_KAFKA_STOP_TIMEOUT (60 s), LH_KAFKA_HEAP (512m), LH_KAFKA_SESSION_MS (3000).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kafka_home=${LH_KAFKA_HOME:-${HOME:-/tmp}/.cache/longhaul/kafka-3.9}
lib_dir=$kafka_home/lib
test_dir=${LH_TEST_DIR:-/tmp/lh-test}
data_dir=${LH_KAFKA_DIR:-$test_dir/kafka}
port=${LH_KAFKA_PORT:-19092}
controller_port=$((port + 1))
start_timeout=${LH_KAFKA_START_TIMEOUT:-90}
stop_timeout=${LH_KAFKA_STOP_TIMEOUT:-60}
heap=${LH_KAFKA_HEAP:-512m}
session_ms=${LH_KAFKA_SESSION_MS:-3000}
versions=${LH_KAFKA_VERSION:-3.9.1 3.9.0}

pid_file=$data_dir/kafka.pid
log_dir=$data_dir/logs          # broker's own log4j output
kraft_dir=$data_dir/kraft       # log.dirs: partitions and the metadata log
props=$data_dir/server.properties
log4j_props=$data_dir/log4j.properties
out_file=$data_dir/kafka.out    # JVM stdout/stderr
bootstrap=127.0.0.1:$port

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*"; }

kcat_bin() {
	local c
	for c in kcat kafkacat; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when process $1 exists and is not a zombie (kill -0 succeeds on zombies).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]]
}

# The broker's pid if the pid file names a live process, else nothing (status 1).
live_pid() {
	local pid
	[[ -f $pid_file ]] || return 1
	pid=$(<"$pid_file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	echo "$pid"
}

# True when the broker answers a metadata request and lists itself.
answers() {
	local kc
	kc=$(kcat_bin) || die "neither kcat nor kafkacat is installed (run scripts/deps.sh)"
	"$kc" -L -b "$bootstrap" -m 5 -q 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$port"
}

lib_complete() {
	[[ -f $lib_dir/.complete ]] && compgen -G "$lib_dir/kafka_2.13-*.jar" >/dev/null
}

cmd_fetch() {
	if lib_complete; then
		say "jars already in $lib_dir ($(<"$lib_dir/.complete"))"
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "mvn is not installed (run scripts/deps.sh)"
	mkdir -p "$kafka_home"
	local v tmp mvn_log
	mvn_log=$kafka_home/mvn.log
	for v in $versions; do
		tmp=$kafka_home/lib.tmp
		rm -rf "$tmp"
		say "fetching kafka_2.13 $v and its runtime dependencies into $lib_dir"
		if (cd "$kafka_home" && mvn -q -B -Dstyle.color=never \
			-f "$script_dir/kafka/pom.xml" -Dkafka.version="$v" \
			dependency:copy-dependencies -DoutputDirectory="$tmp" \
			-DincludeScope=runtime) >"$mvn_log" 2>&1; then
			echo "kafka_2.13 $v" >"$tmp/.complete"
			rm -rf "$lib_dir"
			mv "$tmp" "$lib_dir"
			say "fetched kafka_2.13 $v ($(find "$lib_dir" -name '*.jar' | wc -l) jars)"
			return 0
		fi
		say "could not fetch kafka_2.13 $v: see $mvn_log"
		tail -n 20 "$mvn_log" >&2 || true
	done
	rm -rf "$kafka_home/lib.tmp"
	die "could not fetch any of: $versions"
}

write_config() {
	mkdir -p "$data_dir" "$log_dir" "$kraft_dir"
	cat >"$props" <<EOF
# Written by scripts/kafka.sh on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$kraft_dir
# Longhaul creates its topics with the Admin API; a typo must not create one.
auto.create.topics.enable=false
num.partitions=8
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# After kill9 the restarted broker cannot register until its old session expires
# (default 9 s); a shorter session makes crash tests recover faster.
broker.session.timeout.ms=$session_ms
broker.heartbeat.interval.ms=1000
EOF
	cat >"$log4j_props" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$log_dir/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
EOF
}

format_storage() {
	local id
	if [[ -f $kraft_dir/meta.properties ]]; then
		return 0
	fi
	if [[ -s $data_dir/cluster.id ]]; then
		id=$(<"$data_dir/cluster.id")
	else
		id=$(java -cp "$lib_dir/*" -Dlog4j.configuration="file:$log4j_props" \
			kafka.tools.StorageTool random-uuid 2>>"$out_file" | tail -n 1)
		[[ -n $id ]] || die "could not create a cluster id: see $out_file"
		echo "$id" >"$data_dir/cluster.id"
	fi
	java -cp "$lib_dir/*" -Dlog4j.configuration="file:$log4j_props" \
		kafka.tools.StorageTool format -t "$id" -c "$props" -g >>"$out_file" 2>&1 ||
		die "could not format $kraft_dir: see $out_file"
}

cmd_start() {
	local pid t0 now
	if pid=$(live_pid) && answers; then
		say "already running (pid $pid) on $bootstrap"
		echo "LH_KAFKA_BROKERS=$bootstrap"
		return 0
	fi
	if pid=$(live_pid); then
		# Alive but not answering: still starting, or stuck.  Give it the start
		# timeout before deciding.
		say "pid $pid is alive but not answering yet; waiting"
	else
		rm -f "$pid_file"
		if port_open "$port" || port_open "$controller_port"; then
			die "port $port or $controller_port is already in use by another process"
		fi
		cmd_fetch >/dev/null
		command -v java >/dev/null 2>&1 || die "java is not installed (run scripts/deps.sh)"
		write_config
		format_storage
		echo "=== start $(date -u +%FT%TZ)" >>"$out_file"
		# setsid + every descriptor redirected: the broker outlives this script and
		# never holds a caller's pipe open.
		setsid java -Xms"$heap" -Xmx"$heap" \
			-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
			-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
			-Dlog4j.configuration="file:$log4j_props" -Dkafka.logs.dir="$log_dir" \
			-cp "$lib_dir/*" kafka.Kafka "$props" \
			</dev/null >>"$out_file" 2>&1 &
		pid=$!
		echo "$pid" >"$pid_file"
	fi
	t0=$SECONDS
	while ! answers; do
		if ! alive "$pid"; then
			rm -f "$pid_file"
			tail -n 30 "$out_file" >&2 || true
			tail -n 30 "$log_dir/server.log" >&2 2>/dev/null || true
			die "broker exited during start-up: see $out_file and $log_dir/server.log"
		fi
		now=$SECONDS
		if ((now - t0 >= start_timeout)); then
			tail -n 30 "$log_dir/server.log" >&2 2>/dev/null || true
			die "broker (pid $pid) did not answer on $bootstrap within ${start_timeout}s"
		fi
		sleep 0.2 # poll interval of the readiness check, not a wait for readiness
	done
	say "started (pid $pid) in $((SECONDS - t0))s; data in $data_dir"
	echo "LH_KAFKA_BROKERS=$bootstrap"
}

# Waits up to $2 seconds for pid $1 to exit; status 1 if it is still alive.
wait_exit() {
	local pid=$1 limit=$2 t0=$SECONDS
	while alive "$pid"; do
		((SECONDS - t0 < limit)) || return 1
		sleep 0.2
	done
}

cmd_stop() {
	local wipe=0 pid
	case ${1:-} in
	--wipe) wipe=1 ;;
	"") ;;
	*) die "unknown option to stop: $1" ;;
	esac
	if pid=$(live_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_exit "$pid" "$stop_timeout"; then
			say "pid $pid did not exit within ${stop_timeout}s of SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			wait_exit "$pid" 10 || die "pid $pid survived SIGKILL"
		fi
		say "stopped (pid $pid)"
	else
		say "not running"
	fi
	rm -f "$pid_file"
	if ((wipe)); then
		rm -rf "$data_dir"
		say "removed $data_dir"
	fi
}

cmd_kill9() {
	local pid
	pid=$(live_pid) || die "not running"
	kill -KILL "$pid"
	wait_exit "$pid" 10 || die "pid $pid survived SIGKILL"
	rm -f "$pid_file"
	say "killed (pid $pid) with SIGKILL"
}

cmd_status() {
	local pid
	if pid=$(live_pid); then
		if answers; then
			say "running (pid $pid) on $bootstrap"
			return 0
		fi
		say "pid $pid is alive but does not answer on $bootstrap"
		return 3
	fi
	say "not running"
	return 3
}

usage() {
	sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

case ${1:-} in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) shift; cmd_stop "$@" ;;
restart) cmd_stop; cmd_start ;;
kill9) cmd_kill9 ;;
status) cmd_status ;;
env) echo "export LH_KAFKA_BROKERS=$bootstrap" ;;
*) usage ;;
esac
