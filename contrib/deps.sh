#!/usr/bin/env bash
#
# contrib/deps.sh: install (apt) what building and testing sluice needs on Debian 12.
#
#   bash contrib/deps.sh           install whatever is missing (as root); when everything is
#                                  installed already it does not touch apt at all
#   bash contrib/deps.sh --check   only report: exit 0 if all is there, 1 (listing) if not
#   bash contrib/deps.sh --list    print the package list
#
# Services: the postgresql-15 and pgbouncer packages would start system-wide instances
# (ports 5432 and 6432) when installed. The tests start their own servers, so by default
# this script stops packages from starting services during the install (a temporary
# /usr/sbin/policy-rc.d, only if there is none). SLUICE_DEPS_START_SERVICES=1 allows it.

set -euo pipefail

PACKAGES=(
	# build
	gcc libc6-dev make autoconf automake pkg-config
	libssl-dev libc-ares-dev libinih-dev check libpq-dev
	clang-format git ca-certificates
	# fuzzing (make fuzz): clang with libFuzzer and the sanitizer runtimes
	clang libclang-rt-14-dev
	# test: servers and clients
	postgresql-15 postgresql-client-15 pgbouncer
	python3 python3-pytest python3-psycopg python3-psycopg2 python3-asyncpg
	# promtool, to check the /metrics output (test_metrics.py)
	prometheus
	# tools used by the scripts (runuser/setpriv are in util-linux; ss in iproute2)
	util-linux iproute2 procps tar
)

missing_packages() {
	local p status
	for p in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		[ "$status" = "install ok installed" ] || printf '%s\n' "$p"
	done
}

case "${1:-}" in
--list)
	printf '%s\n' "${PACKAGES[@]}"
	exit 0
	;;
--check)
	missing=$(missing_packages)
	if [ -n "$missing" ]; then
		# shellcheck disable=SC2086
		echo "deps: missing:" $missing >&2 # one line, word-split on purpose
		exit 1
	fi
	exit 0
	;;
"") ;;
*)
	echo "usage: $0 [--check|--list]" >&2
	exit 2
	;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: this script needs Debian (dpkg/apt); install by hand: ${PACKAGES[*]}" >&2
	exit 1
fi

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} packages installed"
	exit 0
fi

echo "deps: installing: ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -n env SLUICE_DEPS_START_SERVICES="${SLUICE_DEPS_START_SERVICES:-}" bash "$0" "$@"
	fi
	echo "deps: installing packages needs root: sudo bash $0" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
	if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT
if [ "${SLUICE_DEPS_START_SERVICES:-0}" != 1 ] && [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# temporary, from sluice contrib/deps.sh: no service starts during install\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	made_policy=1
fi

apt_opts=(-o Acquire::Retries=3 -o Dpkg::Use-Pty=0)
apt-get "${apt_opts[@]}" update </dev/null
apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null

mapfile -t still < <(missing_packages)
if [ "${#still[@]}" -ne 0 ]; then
	echo "deps: still missing after install: ${still[*]}" >&2
	exit 1
fi
echo "deps: done"
