# Helpers for the tests that run real SSH clients against sshfsd
# (tests/ssh/test_*.sh source this after tests/lib.sh).
#
# Every server listens on 127.0.0.1 on a free port above 20000 and is
# stopped by its PID.

SSHFSD=$BUILD/sshfsd
# Debian's Python, with python3-paramiko and python3-cryptography, not
# one from a user's own environment.
PYTHON=${PYTHON:-/usr/bin/python3}
SSH_TEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PARAMIKO=("$PYTHON" "$SSH_TEST_DIR/paramiko_client.py")
IMAGE_TOOL=$BUILD/sshfsd-image
SERVER_PID=""
SERVER_LOG=""
PORT=""

# Client options: no host-key prompts or files, keys only, no agent.
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes
    -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=10
    -o IdentityAgent=none)

# pick_port: print a TCP port above 20000 that is free on 127.0.0.1.
pick_port() {
    "$PYTHON" - <<'PY'
import random, socket
for _ in range(200):
    port = random.randint(20000, 60000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

# make_image PATH SIZE_MB [BLOCK_SIZE]: a freshly formatted image.
make_image() {
    rm -f "$1"
    truncate -s "$2M" "$1"
    "$IMAGE_TOOL" format "$1" "${3:-4096}" >/dev/null
}

# make_key NAME TYPE [BITS]: an unencrypted client key pair NAME, NAME.pub.
make_key() {
    rm -f "$1" "$1.pub"
    if [ -n "${3:-}" ]; then
        ssh-keygen -q -t "$2" -b "$3" -N '' -C "test-$2" -f "$1"
    else
        ssh-keygen -q -t "$2" -N '' -C "test-$2" -f "$1"
    fi
}

# start_server LOG ARGS...: start sshfsd on a free port with ARGS (which
# name the image) and wait until it listens.  Sets SERVER_PID, PORT and
# SERVER_LOG.  Returns 1 if it did not start within 10 seconds.
start_server() {
    local log=$1 i
    shift
    SERVER_LOG=$log
    PORT=$(pick_port)
    "$SSHFSD" --listen 127.0.0.1 --port "$PORT" \
        ${SERVER_SANDBOX_ARGS[@]+"${SERVER_SANDBOX_ARGS[@]}"} "$@" \
        >"$log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 100); do
        if grep -q "Server listening" "$log"; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "sshfsd did not start:" >&2
    sed 's/^/    /' "$log" >&2
    return 1
}

# stop_server: SIGTERM, wait up to 10 seconds, and set SERVER_STATUS to
# the exit status (not in a subshell: only the shell that started the
# server can wait for it).
stop_server() {
    local status=0
    SERVER_STATUS=""
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    kill_if_alive "$SERVER_PID"
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    SERVER_STATUS=$status
}

# check_stopped NAME: stop the server; it must exit with status 0.
check_stopped() {
    stop_server
    check_eq "$1" 0 "$SERVER_STATUS"
}

# check_rejected NAME TEXT CMD...: CMD fails (an ssh client exits 255)
# and its output contains TEXT.
check_rejected() {
    local name=$1 text=$2 out status=0
    shift 2
    out=$(mktemp)
    "$@" >"$out" 2>&1 </dev/null || status=$?
    if [ "$status" -eq 0 ]; then
        check_fail "$name" "succeeded but should have failed: $*" "$out"
    elif ! grep -qF -- "$text" "$out"; then
        check_fail "$name" "exit status $status without '$text'" "$out"
    else
        check_pass "$name"
    fi
    rm -f "$out"
}

# Stop a server a failed check left running.
kill_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
}
trap kill_server EXIT

# run_sftp KEY BATCH [SSH_OPTION...]: run an sftp batch as mirage.
run_sftp() {
    local key=$1 batch=$2
    shift 2
    timeout 120 sftp -q -b "$batch" -P "$PORT" -i "$key" "${SSH_OPTS[@]}" \
        "$@" mirage@127.0.0.1
}

# sha FILE: the file's SHA-256.
sha() {
    sha256sum "$1" | cut -d' ' -f1
}

# wait_for_log TEXT [SECONDS]: wait until the server log contains TEXT.
wait_for_log() {
    local i
    for i in $(seq $((${2:-5} * 10))); do
        if grep -qF -- "$1" "$SERVER_LOG"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
