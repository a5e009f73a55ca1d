#!/usr/bin/env bash
#
# contrib/test.sh: build sluice and run the whole test suite; exit non-zero on any failure.
#
#   bash contrib/test.sh              install missing packages (contrib/deps.sh, as root),
#                                     ./autogen.sh && ./configure && make, then the unit
#                                     and integration tests in this tree
#   bash contrib/test.sh --sanitize   the same with ./configure --enable-sanitizers
#                                     (AddressSanitizer + UBSan), built in a temporary copy
#                                     of the tree so this tree's build is left alone; any
#                                     sanitizer report fails the run
#   bash contrib/test.sh --pgbouncer  run only the integration tests against PgBouncer
#                                     (/usr/sbin/pgbouncer), no build: checks the tests
#
# Anything after -- goes to pytest (PYTEST_ARGS), e.g. contrib/test.sh -- -k cancel -x
#
# Environment: SLUICE_TEST_KEEP=1 keeps the temporary directories (build copy, test logs);
# MAKEFLAGS as usual (default -j<nproc>).

set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SANITIZE=0
PGBOUNCER=0
PYTEST_EXTRA=()
while [ $# -gt 0 ]; do
	case $1 in
	--sanitize) SANITIZE=1 ;;
	--pgbouncer) PGBOUNCER=1 ;;
	--)
		shift
		PYTEST_EXTRA=("$@")
		break
		;;
	-h | --help)
		sed -n '2,20p' "$0"
		exit 0
		;;
	*)
		echo "test.sh: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done

say() { printf '\n==> %s\n' "$*" >&2; }
die() {
	printf 'test.sh: %s\n' "$*" >&2
	exit 1
}

exec </dev/null
export LC_ALL=C.UTF-8
: "${MAKEFLAGS:=-j$(nproc 2>/dev/null || echo 2)}"
export MAKEFLAGS
# The suite decides what it tests from these; a stray value from the caller's
# environment must not silently switch the pooler under test.
unset SLUICE_BIN SLUICE_TEST_POOLER SLUICE_TEST_NO_SKIP PGBOUNCER_BIN

# ------------------------------------------------------------------ dependencies
if ! bash "$ROOT/contrib/deps.sh" --check; then
	if [ "$(id -u)" = 0 ]; then
		say "installing missing packages (contrib/deps.sh)"
		bash "$ROOT/contrib/deps.sh"
	else
		die "packages are missing: run  sudo bash contrib/deps.sh  first"
	fi
fi

# pytest's exit status 5 means "no tests collected": a failure for us. make
# check-integration passes pytest's status through, so it already fails make;
# this wrapper keeps that true for direct pytest runs below too.
run_pytest() { # $1 = tree
	local rc=0
	/usr/bin/python3 -m pytest -q "$1/test/integration" "${PYTEST_EXTRA[@]}" || rc=$?
	if [ "$rc" = 5 ]; then
		echo "test.sh: pytest collected no tests" >&2
	fi
	return "$rc"
}

if [ "$PGBOUNCER" = 1 ]; then
	say "integration tests against PgBouncer (/usr/sbin/pgbouncer)"
	export SLUICE_TEST_POOLER=pgbouncer
	run_pytest "$ROOT"
	say "OK (PgBouncer)"
	exit 0
fi

build_and_check() { # $1 = tree, rest = configure args
	local tree=$1
	shift
	cd "$tree"
	say "build in $tree: ./autogen.sh && ./configure${*:+ $*} && make"
	./autogen.sh
	./configure "$@"
	make
	say "make check-unit, then the integration tests"
	MAKEFLAGS='' make check-unit
	# pytest is run from here, not by make check: each argument after -- then reaches it
	# as given (make's PYTEST_ARGS split "-k 'a or b'" at the blanks)
	make integration-deps
	run_pytest "$tree"
}

if [ "$SANITIZE" = 0 ]; then
	build_and_check "$ROOT"
	say "OK: all tests passed"
	exit 0
fi

# ------------------------------------------------------------------ sanitizer build
WORK=$(mktemp -d /tmp/sluice-san.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	if [ -n "${SLUICE_TEST_KEEP:-}" ]; then
		echo "test.sh: kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# Copy the source tree (tracked and untracked-but-not-ignored files, so local
# changes are tested too; no build products).
TREE=$WORK/src
mkdir -p "$TREE"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$ROOT" && git ls-files -z -c -o --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -C "$TREE" -xf -
else
	tar -C "$ROOT" --exclude=.git --exclude='*.o' --exclude='*.a' --exclude='*.d' \
		--exclude=./src/sluice --exclude=./config.mk --exclude=./config.status \
		--exclude=./config.log --exclude=./autom4te.cache --exclude=__pycache__ \
		--exclude='./build-*' -cf - . | tar -C "$TREE" -xf -
fi

# Does LeakSanitizer work here? It does not under ptrace (strace, gdb, some
# container sandboxes); then leak checking is off, loudly, and the rest stays.
LEAKS=1
probe=$WORK/lsan-probe
printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void){p=malloc(33);p=0;return 0;}\n' >"$probe.c"
if gcc -fsanitize=address -g -o "$probe" "$probe.c" 2>"$probe.log"; then
	ASAN_OPTIONS=detect_leaks=1 "$probe" >"$probe.out" 2>&1 || true
	if ! grep -q "ERROR: LeakSanitizer: detected memory leaks" "$probe.out"; then
		LEAKS=0
		echo "test.sh: WARNING: LeakSanitizer does not work here (ptrace?); leak checks are OFF:" >&2
		sed 's/^/    /' "$probe.out" >&2
	fi
else
	die "cannot build with -fsanitize=address: $(cat "$probe.log")"
fi

export ASAN_OPTIONS="detect_leaks=$LEAKS:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="print_suppressions=0"
say "sanitizer build: ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS"
build_and_check "$TREE" --enable-sanitizers
say "OK: all tests passed under AddressSanitizer + UBSan"
