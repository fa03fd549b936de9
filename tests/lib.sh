# Checks for bash shell tests, which source this file
# (tests/*/test_*.sh).
#
# Every check prints one line, "PASS: NAME" or "FAIL: NAME (detail)", and
# tests/run.sh counts those lines.  Further detail follows on lines
# indented by four spaces.  End a test with check_finish, which exits 1 if
# any check failed.  tests/run.sh sets BUILD (the build tree under test)
# and a fresh TMPDIR for each script.

# Exit status the sanitizer trees use (tests/run.sh sets it in
# ASAN_OPTIONS), so that a sanitizer report never passes for an ordinary
# error exit.
SANITIZER_EXIT_STATUS=86

CHECKS_FAILED=0

# LeakSanitizer checks a process as it exits, through ptrace and /proc,
# which the lock-down forbids, so a locked-down server in the sanitizer
# tree skips that check (src/server/sandbox.c).  So that leaks are still
# found there, the SFTP, SSH and main-job tests start their servers with
# these arguments: --no-sandbox in the sanitizer tree, nothing in the
# release tree, which runs them locked down as users do.  The tests in
# tests/isolation/ run the servers locked down in both trees.
SERVER_SANDBOX_ARGS=()
case "${BUILD:-}" in
*-asan)
    SERVER_SANDBOX_ARGS=(--no-sandbox)
    ;;
esac

check_pass() {
    echo "PASS: $1"
}

# check_fail NAME DETAIL [OUTPUT_FILE]: print a failure, with the last
# lines of OUTPUT_FILE when given.
check_fail() {
    echo "FAIL: $1 ($2)"
    if [ -n "${3:-}" ] && [ -s "$3" ]; then
        tail -n 20 "$3" | sed 's/^/    /'
    fi
    CHECKS_FAILED=$((CHECKS_FAILED + 1))
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then
        check_pass "$1"
    else
        check_fail "$1" "expected '$2', got '$3'"
    fi
}

# check_contains NAME NEEDLE HAYSTACK: HAYSTACK contains NEEDLE.
check_contains() {
    case "$3" in
    *"$2"*)
        check_pass "$1"
        ;;
    *)
        check_fail "$1" "'$2' not found in '$3'"
        ;;
    esac
}

# check_ok NAME CMD...: CMD exits with status 0.
check_ok() {
    local name=$1 out status=0
    shift
    out=$(mktemp)
    "$@" >"$out" 2>&1 || status=$?
    if [ "$status" -eq 0 ]; then
        check_pass "$name"
    else
        check_fail "$name" "exit status $status from: $*" "$out"
    fi
    rm -f "$out"
}

# check_fails NAME CMD...: CMD exits with an error status.  A crash (killed
# by a signal, status 126 or above) or a sanitizer report is not the
# expected failure and fails the check.
check_fails() {
    local name=$1 out status=0
    shift
    out=$(mktemp)
    "$@" >"$out" 2>&1 || status=$?
    if [ "$status" -eq 0 ]; then
        check_fail "$name" "succeeded but should have failed: $*" "$out"
    elif [ "$status" -ge 126 ] || [ "$status" -eq "$SANITIZER_EXIT_STATUS" ]
    then
        check_fail "$name" "crashed with exit status $status: $*" "$out"
    else
        check_pass "$name"
    fi
    rm -f "$out"
}

# kill_if_alive PID [SECONDS]: wait up to SECONDS (default 10) for PID to
# exit, then kill it with SIGKILL.  The caller still waits for it.
kill_if_alive() {
    local i
    for i in $(seq $((${2:-10} * 10))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

# check_finish: exit 1 if any check failed, else 0.
check_finish() {
    if [ "$CHECKS_FAILED" -ne 0 ]; then
        exit 1
    fi
    exit 0
}
