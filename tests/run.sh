#!/usr/bin/env bash
# Run sshfsd's tests: one line per test program, then a final line
# "N passed, N failed" where N counts test cases (cmocka tests, shell-test
# checks, and one per fuzz target).  Exits 1 if anything failed.
#
# Usage: tests/run.sh [--fuzz DIR] [--fuzz-seconds N] [TREE...]
#   TREE            a build tree (build, build-asan): runs its unit tests
#                   TREE/tests/test_* and every tests/*/test_*.sh with
#                   BUILD=TREE and a fresh TMPDIR
#   --fuzz DIR      runs every libFuzzer target DIR/fuzz/fuzz_*, each for
#                   --fuzz-seconds seconds (default 30), with its corpus in
#                   DIR/corpus/NAME and seeds from tests/fuzz/seeds/NAME
# Environment:
#   TESTS           keep only tests whose name (unit/test_block,
#                   tool/test_image, fuzz/fuzz_packet) contains this text;
#                   shell glob characters work too
#   TEST_TIMEOUT    seconds one test program or script may run (default 900)
set -euo pipefail
shopt -s nullglob

cd "$(dirname "$0")/.."
root=$(pwd)

fuzz_dir=""
fuzz_seconds=30
trees=()
while [ $# -gt 0 ]; do
    case "$1" in
    --fuzz)
        fuzz_dir=$2
        shift 2
        ;;
    --fuzz-seconds)
        fuzz_seconds=$2
        shift 2
        ;;
    -*)
        echo "tests/run.sh: unknown option $1" >&2
        exit 2
        ;;
    *)
        trees+=("$1")
        shift
        ;;
    esac
done

filter=${TESTS:-}
timeout_seconds=${TEST_TIMEOUT:-900}

# Sanitizer reports exit with a status of their own (see tests/lib.sh), and
# cmocka prints to stdout.  The caller's own options come last and win.
export ASAN_OPTIONS="exitcode=86:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="exitcode=86:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export CMOCKA_MESSAGE_OUTPUT=STDOUT

total_passed=0
total_failed=0
programs_run=0

selected() {
    [ -z "$filter" ] && return 0
    # Unquoted on purpose, so that glob characters in TESTS match.
    # shellcheck disable=SC2053
    [[ $1 == *$filter* ]]
}

# record LABEL PASSED FAILED LOG [NOTE]: add to the totals and print the
# program's line, with the end of its log when something failed.
record() {
    local label=$1 passed=$2 failed=$3 log=$4 note=${5:-}
    local counts="$passed passed"

    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    programs_run=$((programs_run + 1))

    if [ "$failed" -eq 0 ]; then
        printf 'ok    %-44s %s\n' "$label" "$counts"
        return
    fi
    counts="$counts, $failed failed"
    printf 'FAIL  %-44s %s%s\n' "$label" "$counts" "${note:+ ($note)}"
    if [ -s "$log" ]; then
        echo "      last lines of $log:"
        tail -n 40 "$log" | sed 's/^/      | /'
    fi
}

# Describe an exit status that the test's own reports did not explain.
status_note() {
    case "$1" in
    124) echo "timed out after ${timeout_seconds}s" ;;
    86) echo "sanitizer report" ;;
    *) echo "exit status $1" ;;
    esac
}

# A cmocka program counts its "[  PASSED  ] N test(s)." and
# "[  FAILED  ] N test(s), listed below:" lines (cmocka 1.1 writes them to
# stderr).  A crash, a non-zero exit that no failed test explains, or a
# missing summary counts as one more failure.
run_unit() {
    local tree=$1 name=$2
    local bin="$tree/tests/$name" log="$tree/test-logs/unit_$name.log"
    local label="$tree/unit/$name" status=0 passed failed summaries

    mkdir -p "$tree/test-logs"
    if [ ! -x "$bin" ]; then
        : >"$log"
        record "$label" 0 1 "$log" "not built: $bin is missing"
        return
    fi

    timeout --kill-after=10 "$timeout_seconds" "$bin" >"$log.out" \
        2>"$log.err" || status=$?
    cat "$log.out" "$log.err" >"$log"
    rm -f "$log.out" "$log.err"

    passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\.$/\1/p' "$log" |
        awk '{ sum += $1 } END { print sum + 0 }')
    failed=$(sed -n \
        's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:$/\1/p' "$log" |
        awk '{ sum += $1 } END { print sum + 0 }')
    summaries=$(grep -c -E '^\[  (PASSED|FAILED)  \] [0-9]+ test' "$log" ||
        true)

    if [ "$summaries" -eq 0 ]; then
        record "$label" "$passed" $((failed + 1)) "$log" \
            "no cmocka summary, $(status_note "$status")"
    elif [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        record "$label" "$passed" 1 "$log" "$(status_note "$status")"
    else
        record "$label" "$passed" "$failed" "$log"
    fi
}

# A shell test counts its "PASS: " and "FAIL: " lines (tests/lib.sh).  A
# non-zero exit without a FAIL line, or a script that reports no check at
# all, counts as one more failure.
run_shell() {
    local tree=$1 script=$2
    local dir name log label tmp status=0 passed failed

    dir=$(basename "$(dirname "$script")")
    name=$(basename "$script" .sh)
    log="$tree/test-logs/${dir}_$name.log"
    label="$tree/$dir/$name"
    mkdir -p "$tree/test-logs"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/sshfsd-test.XXXXXX")

    BUILD="$root/$tree" TMPDIR="$tmp" \
        timeout --kill-after=10 "$timeout_seconds" bash "$script" \
        >"$log" 2>&1 </dev/null || status=$?
    # A test that left a mount behind must not have it emptied by rm.
    rm -rf --one-file-system "$tmp" 2>/dev/null || true

    passed=$(grep -c '^PASS: ' "$log" || true)
    failed=$(grep -c '^FAIL: ' "$log" || true)

    if [ $((passed + failed)) -eq 0 ]; then
        record "$label" 0 1 "$log" "reported no checks, $(status_note "$status")"
    elif [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        record "$label" "$passed" 1 "$log" "$(status_note "$status")"
    else
        record "$label" "$passed" "$failed" "$log"
    fi
}

# A fuzz target passes when libFuzzer runs for the whole time and exits 0.
run_fuzz() {
    local name=$1
    local bin="$fuzz_dir/fuzz/$name" log="$fuzz_dir/test-logs/fuzz_$name.log"
    local label="$fuzz_dir/fuzz/$name" corpus="$fuzz_dir/corpus/$name"
    local seeds="tests/fuzz/seeds/$name" status=0
    local args=()

    mkdir -p "$fuzz_dir/test-logs" "$fuzz_dir/artifacts" "$corpus"
    if [ ! -x "$bin" ]; then
        : >"$log"
        record "$label" 0 1 "$log" "not built: $bin is missing"
        return
    fi

    args=(-max_total_time="$fuzz_seconds" -timeout=25
        -artifact_prefix="$fuzz_dir/artifacts/$name-" "$corpus")
    if [ -d "$seeds" ]; then
        args+=("$seeds")
    fi
    timeout --kill-after=10 $((fuzz_seconds + 300)) "$bin" "${args[@]}" \
        >"$log" 2>&1 </dev/null || status=$?

    if [ "$status" -eq 0 ]; then
        record "$label" 1 0 "$log"
    else
        record "$label" 0 1 "$log" "$(status_note "$status"), crash inputs in $fuzz_dir/artifacts"
    fi
}

for tree in "${trees[@]}"; do
    for source in tests/unit/test_*.c; do
        name=$(basename "$source" .c)
        if selected "unit/$name"; then
            run_unit "$tree" "$name"
        fi
    done
    for script in tests/*/test_*.sh; do
        name="$(basename "$(dirname "$script")")/$(basename "$script" .sh)"
        if selected "$name"; then
            run_shell "$tree" "$script"
        fi
    done
done

if [ -n "$fuzz_dir" ]; then
    for source in tests/fuzz/fuzz_*.c; do
        name=$(basename "$source" .c)
        if selected "fuzz/$name"; then
            run_fuzz "$name"
        fi
    done
fi

if [ -n "$filter" ] && [ "$programs_run" -eq 0 ]; then
    echo "no test matches TESTS=$filter" >&2
    echo "0 passed, 0 failed"
    exit 1
fi

echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
