#!/usr/bin/env bash
# scripts/deps.sh — install every Debian 12 package Longhaul needs to build and
# test.  Idempotent: when everything is installed already it does not call apt
# at all.  Needs root (or sudo) only when something is missing.
#
#   scripts/deps.sh           install what is missing
#   scripts/deps.sh --check   list what is missing; exit 1 if anything is
#
# The Kafka broker's jars are not Debian packages: scripts/kafka.sh fetch gets them.
set -euo pipefail

packages=(
	build-essential pkg-config meson ninja-build
	librdkafka-dev libpq-dev libcurl4-openssl-dev libmsgpack-dev libevent-dev
	libjansson-dev libssl-dev
	postgresql postgresql-contrib
	kafkacat
	valgrind clang
	openjdk-17-jre-headless maven
	python3 python3-venv ca-certificates
	chromium
)

# The dashboard's browser test (tests/integration/0025-dashboard.c) drives Debian's chromium
# with playwright-core from npm (tests/browser/package-lock.json; needs node >= 20 and npm).
# Installed with `npm ci` whenever tests/browser/node_modules is missing or older than the lock.
browser_deps() {
	local dir
	dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser
	if [[ -d $dir/node_modules/playwright-core && $dir/node_modules -nt $dir/package-lock.json ]]; then
		return 0
	fi
	if [[ ${1:-} == --check ]]; then
		echo "deps.sh: missing: tests/browser/node_modules (npm ci)"
		return 1
	fi
	# A failure here fails only the dashboard test (which says what is missing), not every
	# build and test after deps.sh.
	command -v npm >/dev/null 2>&1 || {
		echo "deps.sh: npm is not installed: the dashboard test needs node >= 20 with npm" >&2
		return 0
	}
	echo "deps.sh: npm ci in tests/browser"
	if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null); then
		touch "$dir/node_modules"
	else
		echo "deps.sh: npm ci in tests/browser failed: the dashboard test will fail" >&2
	fi
	return 0
}

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[[ $status == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "deps.sh: all ${#packages[@]} packages are installed"
	browser_deps "${1:-}"
	exit $?
fi

if [[ ${1:-} == --check ]]; then
	echo "deps.sh: missing: ${missing[*]}"
	browser_deps --check || true
	exit 1
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps.sh: missing ${missing[*]}; run as root to install them" >&2
		exit 1
	}
	sudo=(sudo)
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" </dev/null

still=()
for p in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[[ $status == installed ]] || still+=("$p")
done
if ((${#still[@]})); then
	echo "deps.sh: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
echo "deps.sh: installed ${missing[*]}"
browser_deps
