#!/usr/bin/env bash
# tests/e2e/run-e2e.sh — end-to-end test of the embedded default stack through lhctl.
#
# Builds nothing: uses the binaries in ./build (BUILD_DIR overrides). In a temporary state
# directory it starts `lhctl dev --detach` (embedded broker + private PostgreSQL + every daemon),
# runs goals, inspects them, checks the error paths, kills a daemon to see it restarted, and stops
# the stack. Every check is one test; the last line is "N passed, N failed"; the exit status is
# non-zero when any check failed. Every command runs under `timeout`, so nothing hangs.
#
# Environment: BUILD_DIR (default build), E2E_KEEP=1 keeps the state directory (logs, cluster) for
# a post-mortem and skips the --wipe checks.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
lhctl=$build/cli/lhctl
passed=0
failed=0

say() { printf '%s\n' "$*"; }
ok() { passed=$((passed + 1)); say "ok   $1"; }
bad() {
	failed=$((failed + 1))
	say "FAIL $1"
	[[ -n ${2:-} ]] && printf '%s\n' "$2" | sed 's/^/       | /' | head -n 40
	return 0
}

# run SECONDS CMD... — sets out, err, rc, ms (stdout, stderr, status, wall time in ms).
run() {
	local limit=$1 t0 t1
	shift
	t0=$(date +%s%N)
	out=$(timeout --kill-after=5 "$limit" "$@" 2>"$tmp/stderr")
	rc=$?
	t1=$(date +%s%N)
	err=$(cat "$tmp/stderr")
	ms=$(((t1 - t0) / 1000000))
}

# True when process $1 exists and is not a zombie (kill -0 succeeds on zombies, and an init that
# reaps slowly leaves them around for a while).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]]
}

# The shape every error must have: a non-zero status, one line on stderr starting "lhctl: ".
one_error_line() {
	[[ $rc -ne 0 ]] && [[ $(printf '%s\n' "$err" | wc -l) -eq 1 ]] && [[ $err == lhctl:* ]]
}

[[ -x $lhctl ]] || { say "no $lhctl: build first (ninja -C build)"; say "0 passed, 1 failed"; exit 1; }
for d in coordinator/lh-coordinator materializer/lh-materializer worker/lh-worker; do
	[[ -x $build/$d ]] || { say "no $build/$d: build first"; say "0 passed, 1 failed"; exit 1; }
done

tmp=$(mktemp -d /tmp/lh-e2e.XXXXXX)
# As root the server runs as postgres, which must be able to enter the state directory; mktemp
# makes 0700 directories.
chmod 711 "$tmp"
state=$tmp/state
export LH_STATE_DIR=$state
# The stack must use its own embedded services, whatever the caller's environment says.
unset LH_KAFKA_BROKERS LH_PG_URL OPENAI_API_KEY LH_LLM_BASE_URL LH_LLM_PROVIDER LH_TIERS \
	LH_TOPIC_PREFIX LH_CONFIG LH_BIN_DIR XDG_STATE_HOME

cleanup() {
	local wipe=--wipe
	[[ ${E2E_KEEP:-0} == 1 ]] && wipe=
	timeout 180 "$lhctl" dev stop $wipe >/dev/null 2>&1
	[[ -n ${state2:-} ]] && timeout 180 "$lhctl" dev stop $wipe --state-dir "$state2" >/dev/null 2>&1
	if [[ -n $wipe ]]; then
		rm -rf "$tmp"
	else
		echo "state kept in $tmp" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "# lhctl e2e in $state"

# ---- the stack comes up --------------------------------------------------------------------
run 240 "$lhctl" dev --detach
if [[ $rc -eq 0 && -f $state/dev.json ]]; then
	ok "dev --detach starts the stack (${ms} ms)"
else
	bad "dev --detach starts the stack (rc=$rc)" "$out
$err
$(tail -n 20 "$state/logs/lhctl-dev.log" 2>/dev/null)"
	say "$passed passed, $((failed + 1)) failed"
	exit 1
fi
[[ $out == *"embedded broker (librdkafka mock cluster) at 127.0.0.1:"*"NOT durable"* ]] &&
	ok "dev says the embedded broker is in memory and not durable" ||
	bad "dev says the embedded broker is in memory and not durable" "$out"
[[ $out == *"model: scripted (no LLM key configured; set OPENAI_API_KEY to use a real model)"* ]] &&
	ok "dev says the model is scripted" || bad "dev says the model is scripted" "$out"
[[ $out == *"postgresql: private cluster in "* ]] &&
	ok "dev runs a private postgresql cluster" || bad "dev runs a private postgresql cluster" "$out"

run 30 "$lhctl" dev status
[[ $rc -eq 0 && $out == *"lh-coordinator"*running* && $out == *reachable* ]] &&
	ok "dev status: everything runs" || bad "dev status: everything runs (rc=$rc)" "$out$err"

run 30 "$lhctl" dev --detach
one_error_line && [[ $err == *"already runs"* ]] &&
	ok "a second dev in the same state dir is refused" ||
	bad "a second dev in the same state dir is refused (rc=$rc)" "$out$err"

# ---- a goal runs to the end ----------------------------------------------------------------
run 120 "$lhctl" run "Compare three ways to make a durable job queue"
plan_id=$(printf '%s\n' "$out" | sed -n 's/^plan \([0-9a-f-]\{36\}\) submitted$/\1/p' | head -n 1)
if [[ $rc -eq 0 && $out == *" completed: 5 tasks"* && -n $plan_id ]]; then
	ok "run completes a plan (${ms} ms)"
else
	bad "run completes a plan (rc=$rc)" "$out
$err"
fi
# Five scripted tasks take milliseconds each; the first plan also waits for the consumer groups
# to form (about 3 s on the embedded broker). Anything near a minute is a stall somewhere.
[[ $rc -eq 0 && $ms -lt 30000 ]] && ok "the plan completes within 30 s (took ${ms} ms)" ||
	bad "the plan completes within 30 s (took ${ms} ms)" "$(printf '%s\n' "$out" | tail -n 4)"
[[ $out == *"task 1 succeeded on fast (scripted, "*" tokens)"* ]] &&
	ok "run prints one line per task when not on a terminal" ||
	bad "run prints one line per task when not on a terminal" "$out"
[[ $out == *"next: lhctl plan show $plan_id"* && $out != *"not caught up"* ]] &&
	ok "run waits for the database and says where to look next" ||
	bad "run waits for the database and says where to look next" "$out"

run 30 "$lhctl" plan show "$plan_id"
succeeded=$(printf '%s\n' "$out" | awk '$1 ~ /^[1-9][0-9]*$/ && $4 == "succeeded"' | wc -l)
if [[ $rc -eq 0 && $out == *"status    completed"* && $out == *"tasks     5/5 succeeded"* &&
	$succeeded -eq 5 ]]; then
	ok "plan show: completed, 5 succeeded tasks"
else
	bad "plan show: completed, 5 succeeded tasks (rc=$rc, rows=$succeeded)" "$out$err"
fi

run 30 "$lhctl" plan list
[[ $rc -eq 0 && $out == *"$plan_id  completed"* ]] && ok "plan list shows the plan" ||
	bad "plan list shows the plan (rc=$rc)" "$out$err"

run 30 "$lhctl" events tail --plan "$plan_id"
if [[ $rc -eq 0 ]] && printf '%s\n' "$out" | python3 -c '
import json, sys
evs = [json.loads(l) for l in sys.stdin if l.strip()]
assert evs and evs[0]["type"] == "goal.submitted", "first is not goal.submitted"
assert evs[-1]["type"] in ("plan.completed", "decision.logged"), evs[-1]["type"]
assert any(e["type"] == "plan.completed" for e in evs), "no plan.completed"
assert all(e["plan_id"] == sys.argv[1] for e in evs), "another plan leaked in"
' "$plan_id" 2>"$tmp/py"; then
	ok "events tail --plan decodes the plan's events to JSON lines"
else
	bad "events tail --plan decodes the plan's events to JSON lines (rc=$rc)" "$(cat "$tmp/py")
$err"
fi

run 60 bash -c "\"$lhctl\" events tail --follow --from-beginning --plan $plan_id & p=\$!; sleep 3; kill -INT \$p; wait \$p"
[[ $rc -eq 0 && $out == *'"type":"plan.completed"'* ]] &&
	ok "events tail --follow prints history and stops cleanly on SIGINT" ||
	bad "events tail --follow prints history and stops cleanly on SIGINT (rc=$rc)" "$err"

# The scripted planner answers a goal's "lh-script:" line verbatim: not JSON, so every attempt of
# the planning task fails and the plan fails.
run 120 "$lhctl" run "$(printf 'A plan that cannot be made\nlh-script: this is not json')"
failed_id=$(printf '%s\n' "$out" | sed -n 's/^plan \([0-9a-f-]\{36\}\) submitted$/\1/p' | head -n 1)
[[ $rc -eq 1 && $out == *" failed after "*"not JSON"* && -n $failed_id ]] &&
	ok "run of a plan that fails: the reason, exit 1" ||
	bad "run of a plan that fails (rc=$rc)" "$out$err"
run 30 "$lhctl" plan show "$failed_id"
[[ $rc -eq 0 && $out == *"status    failed"* && $out == *"reason    "*"not JSON"* ]] &&
	ok "plan show of a failed plan: status and reason" ||
	bad "plan show of a failed plan (rc=$rc)" "$out$err"

# ---- bad input and unreachable services ----------------------------------------------------
run 30 "$lhctl" run ""
one_error_line && [[ -z $out ]] && ok "empty goal: one error line, exit $rc" ||
	bad "empty goal: one error line (rc=$rc)" "$out$err"

run 30 "$lhctl" run "   "
one_error_line && ok "blank goal: one error line, exit $rc" || bad "blank goal (rc=$rc)" "$err"

run 30 "$lhctl" run "$(head -c 70000 /dev/zero | tr '\0' x)"
one_error_line && [[ $err == *"limit is 65536"* ]] && ok "oversized goal: one error line" ||
	bad "oversized goal (rc=$rc)" "$err"

run 30 "$lhctl" plan show 01900000-0000-7000-8000-000000000000
[[ $rc -eq 1 ]] && one_error_line && [[ $err == *"not found"* ]] &&
	ok "plan show of an unknown id: exit 1, not found" ||
	bad "plan show of an unknown id (rc=$rc)" "$out$err"

run 30 "$lhctl" plan show not-a-uuid
one_error_line && ok "plan show of a malformed id: one error line, exit $rc" ||
	bad "plan show of a malformed id (rc=$rc)" "$err"

run 30 "$lhctl" run "hello" --tier nosuchtier
one_error_line && ok "run with an unknown tier: one error line" || bad "unknown tier (rc=$rc)" "$err"

run 30 "$lhctl" run "hello" --no-such-flag
one_error_line && ok "unknown option: one error line" || bad "unknown option (rc=$rc)" "$err"

run 30 env LH_KAFKA_BROKERS=127.0.0.1:1 "$lhctl" run "hello"
[[ $rc -eq 1 && $ms -lt 15000 ]] && one_error_line && [[ $err == *"could not reach kafka at 127.0.0.1:1"* ]] &&
	ok "run against an unreachable broker: exit 1 in ${ms} ms" ||
	bad "run against an unreachable broker (rc=$rc, ${ms} ms)" "$err"

run 30 env LH_PG_URL=postgresql://lh@127.0.0.1:1/lh "$lhctl" plan show "$plan_id"
[[ $rc -eq 1 && $ms -lt 15000 ]] && one_error_line &&
	ok "plan show against an unreachable database: exit 1 in ${ms} ms" ||
	bad "plan show against an unreachable database (rc=$rc, ${ms} ms)" "$err"

# No worker takes tier "idle" (the coordinator does not check planner tiers), so the plan
# cannot finish within --timeout.
run 60 env LH_TIERS=fast,standard,frontier,idle "$lhctl" run "wait for me" --tier idle --timeout 2
[[ $rc -eq 3 && $err == *"still running"*"lhctl events tail --plan"* ]] &&
	ok "run --timeout: exit 3 and how to follow the plan" ||
	bad "run --timeout: exit 3 (rc=$rc)" "$out$err"

# ---- a daemon that dies is restarted, and the stack still works ----------------------------
worker_pid=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print([c["pid"] for c in d["children"] if c["name"] == "lh-worker --tier fast"][0])' "$state/dev.json")
kill -KILL "$worker_pid" 2>/dev/null
restarted=0
for _ in $(seq 1 100); do # up to 10 s: the first restart waits 1 s
	new_pid=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
c=[c for c in d["children"] if c["name"] == "lh-worker --tier fast"][0]
print(c["pid"] if c["restarts"] > 0 else 0)' "$state/dev.json" 2>/dev/null)
	if [[ -n $new_pid && $new_pid != 0 && $new_pid != "$worker_pid" ]] && alive "$new_pid"; then
		restarted=1
		break
	fi
	sleep 0.1
done
[[ $restarted -eq 1 ]] && ok "a killed worker is restarted" || bad "a killed worker is restarted" \
	"$(tail -n 5 "$state/logs/lhctl-dev.log")"

run 120 "$lhctl" run --quiet "A second goal after a worker restart"
[[ $rc -eq 0 && $out == *" completed: 5 tasks"* && $out != *submitted* && $ms -lt 30000 ]] &&
	ok "run --quiet completes a second plan after the restart (${ms} ms)" ||
	bad "run --quiet completes a second plan (rc=$rc)" "$out$err"

# ---- the tables are the log's image: a rebuild from the log checksums equal -----------------
# (issue 5: "rebuild equality on a log produced by the end-to-end suite") The rebuild replays
# lh.events from the beginning into a schema of its own, up to the high watermarks it sees at its
# start; the live materializer may still be storing the last events then, and the memory relay
# may publish a memory's change after it, so the comparison is repeated (rebuild and checksum)
# until equal, for up to 60 s.
mat=$build/materializer/lh-materializer
dev_brokers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["brokers"])' "$state/dev.json")
dev_pg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pg_url"])' "$state/dev.json")
equal=0
rb_out=
for i in $(seq 1 30); do
	rb=e2e_rb_$i
	run 60 "$mat" --rebuild --schema "$rb" --brokers "$dev_brokers" --pg-url "$dev_pg"
	rb_out="$out$err"
	[[ $rc -eq 0 ]] || break
	run 60 "$mat" checksum --against-schema "$rb" --brokers "$dev_brokers" --pg-url "$dev_pg"
	rb_out="$rb_out
$out$err"
	if [[ $rc -eq 0 ]]; then
		equal=1
		break
	fi
	sleep 2 # the next comparison after the relay's interval (0.5 s) and a batch (50 ms)
done
# both plans' rows were compared: 10 tasks (two plans of 5, plus their plan tasks) and more
ntasks=$(printf '%s\n' "$out" | awk '$1 == "tasks" { print $2 }')
[[ $equal -eq 1 && ${ntasks:-0} -ge 10 ]] &&
	ok "a rebuild from the log checksums equal to the live tables (attempt $i)" ||
	bad "a rebuild from the log checksums equal to the live tables (rc=$rc, tasks=$ntasks)" "$rb_out"

# ---- stop ------------------------------------------------------------------------------------
dev_pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state/dev.json")
pg_data=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pg_dir"])' "$state/dev.json")/data
# A run that is watching when the stack goes away must say so, not wait for its --timeout.
(
	env LH_TIERS=fast,standard,frontier,idle timeout 60 "$lhctl" run "orphan" --tier idle \
		--timeout 50 >"$tmp/orphan.out" 2>"$tmp/orphan.err"
	echo $? >"$tmp/orphan.rc"
) &
orphan=$!
for _ in $(seq 1 100); do # until it has submitted
	grep -q submitted "$tmp/orphan.out" 2>/dev/null && break
	sleep 0.1
done
run 180 "$lhctl" dev stop
if [[ $rc -eq 0 && ! -e $state/dev.json ]] && ! alive "$dev_pid" &&
	[[ ! -e $pg_data/postmaster.pid ]]; then
	ok "dev stop stops the stack and its postgresql (${ms} ms)"
else
	bad "dev stop stops the stack (rc=$rc)" "$out$err"
fi

t0=$(date +%s)
wait "$orphan"
orphan_rc=$(cat "$tmp/orphan.rc" 2>/dev/null)
[[ $orphan_rc == 1 && $(date +%s) -lt $((t0 + 30)) && $(cat "$tmp/orphan.err") == *"lost contact with kafka"* ]] &&
	ok "a watching run notices the stack going away (exit 1)" ||
	bad "a watching run notices the stack going away (rc=$orphan_rc)" "$(cat "$tmp/orphan.err")"

run 30 "$lhctl" dev status
[[ $rc -eq 3 ]] && ok "dev status after stop: not running (exit 3)" ||
	bad "dev status after stop (rc=$rc)" "$out$err"

run 30 "$lhctl" run "anyone there?"
one_error_line && [[ $err == *"lhctl dev"* ]] && ok "run without a stack: one error line naming lhctl dev" ||
	bad "run without a stack (rc=$rc)" "$err"

# ---- the cluster is reused on the next start -------------------------------------------------
run 240 "$lhctl" dev --detach
[[ $rc -eq 0 && $out == *"; reused)"* ]] && ok "a second start reuses the postgresql cluster" ||
	bad "a second start reuses the postgresql cluster (rc=$rc)" "$out$err"
run 30 "$lhctl" plan show "$plan_id"
[[ $rc -eq 0 && $out == *"status    completed"* ]] && ok "plans survive in postgresql across restarts" ||
	bad "plans survive in postgresql across restarts (rc=$rc)" "$out$err"
# ---- lhctl killed outright: its daemons follow it, dev stop cleans up the rest ---------------
dev_pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state/dev.json")
child_pids=$(python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(open(sys.argv[1]))["children"]))' "$state/dev.json")
kill -KILL "$dev_pid"
gone=0
for _ in $(seq 1 100); do # PR_SET_PDEATHSIG: SIGTERM as soon as lhctl dies
	gone=1
	for p in $child_pids; do alive "$p" && gone=0; done
	[[ $gone -eq 1 ]] && break
	sleep 0.1
done
[[ $gone -eq 1 ]] && ok "daemons exit when lhctl dev is killed with SIGKILL" ||
	bad "daemons exit when lhctl dev is killed with SIGKILL" "$(ps -o pid,stat,cmd -p ${child_pids// /,})"
[[ -e $pg_data/postmaster.pid ]] && pg_left=1 || pg_left=0
run 120 "$lhctl" dev stop
[[ $rc -eq 0 && $pg_left -eq 1 && ! -e $pg_data/postmaster.pid && ! -e $state/dev.json &&
	$out == *"stopped the postgresql server the dead stack left running"* ]] &&
	ok "dev stop after a crash stops the orphaned postgresql and removes dev.json" ||
	bad "dev stop after a crash (rc=$rc, pg_left=$pg_left)" "$out$err"

if [[ ${E2E_KEEP:-0} == 1 ]]; then
	say "# E2E_KEEP=1: the --wipe checks are skipped"
	say "$passed passed, $failed failed"
	[[ $failed -eq 0 ]]
	exit
fi
run 60 "$lhctl" dev stop --wipe
[[ $rc -eq 0 && ! -e $state/pg && ! -e $state/logs ]] && ok "dev stop --wipe deletes the cluster and the logs" ||
	bad "dev stop --wipe deletes the cluster and the logs (rc=$rc)" "$out$err"

# ---- as root, a state dir the postgres user cannot enter: the cluster moves to /var/tmp -------
if [[ $(id -u) -eq 0 ]] && id -u postgres >/dev/null 2>&1; then
	mkdir -m 700 "$tmp/private"
	state2=$tmp/private/state
	run 240 "$lhctl" dev --detach --state-dir "$state2"
	moved=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pg_dir"])' "$state2/dev.json" 2>/dev/null)
	[[ $rc -eq 0 && $out == *"cannot enter"* && $moved == /var/tmp/longhaul-pg-* ]] &&
		ok "root, unreachable state dir: the cluster lives in $moved" ||
		bad "root, unreachable state dir (rc=$rc)" "$out$err"
	run 120 "$lhctl" run --quiet --state-dir "$state2" "A goal on the moved cluster"
	[[ $rc -eq 0 ]] && ok "a plan completes on the moved cluster" || bad "plan on the moved cluster (rc=$rc)" "$out$err"
	run 180 "$lhctl" dev stop --wipe --state-dir "$state2"
	[[ $rc -eq 0 && -n $moved && ! -e $moved ]] && ok "dev stop --wipe deletes the moved cluster" ||
		bad "dev stop --wipe deletes the moved cluster (rc=$rc)" "$out$err"
fi

say "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
