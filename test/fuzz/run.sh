#!/usr/bin/env bash
#
# test/fuzz/run.sh BUILD_DIR TARGET SECONDS MAX_LEN: runs one libFuzzer target for
# SECONDS on a scratch copy of its seed corpus (new inputs stay in BUILD_DIR, the
# committed seeds are never touched). Exits non-zero on a crash, leak, timeout or
# sanitizer report; the input that did it is kept as BUILD_DIR/artifacts/TARGET-*.
# Prints one summary line: executions, coverage (cov: edges, ft: features), corpus.
set -euo pipefail
build=$1 target=$2 seconds=$3 maxlen=$4
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus/fuzz_$target
work=$build/corpus/fuzz_$target
log=$build/fuzz_$target.log
mkdir -p "$work" "$build/artifacts"
# LeakSanitizer does not work under ptrace (strace, gdb, some sandboxes): then leak
# checks are off, loudly, as in contrib/test.sh, and everything else still runs
leaks=1
probe=$build/lsan-probe
printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void){p=malloc(33);p=0;return 0;}\n' >"$probe.c"
if ${FUZZ_CC:-clang} -fsanitize=address -o "$probe" "$probe.c" 2>/dev/null; then
	ASAN_OPTIONS=detect_leaks=1 "$probe" >"$probe.out" 2>&1 || true
fi
if ! grep -q "LeakSanitizer: detected memory leaks" "$probe.out" 2>/dev/null; then
	leaks=0
	echo "fuzz_$target: WARNING: LeakSanitizer does not work here; leak checks are OFF" >&2
fi
# leaks are checked per input and at exit; UBSan stops at its first report
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=$leaks:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
"$build/fuzz_$target" -max_total_time="$seconds" -max_len="$maxlen" -timeout=10 \
	-rss_limit_mb=2048 -detect_leaks=$leaks -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
	"$work" "$seeds" >"$log" 2>&1 || rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
if [ "$rc" -ne 0 ]; then
	echo "fuzz_$target: FAILED (exit $rc) after ${execs:-?} executions; see $log" >&2
	grep -E 'ERROR: |SUMMARY: |runtime error|Test unit written' "$log" | head -5 >&2 || true
	exit 1
fi
echo "fuzz_$target: ${seconds}s, ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
