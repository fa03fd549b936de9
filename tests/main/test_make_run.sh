#!/usr/bin/env bash
# scripts/run-demo.sh, what `make run` starts: it creates the demo key and
# image, prints the commands to connect, serves the image to mirage, stops
# with status 0 on SIGINT, and reuses the image on the next run.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../ssh/ssh_lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEMO=$TMPDIR/demo
cd "$TMPDIR"
DEMO_PID=""

stop_demo() {
    if [ -n "$DEMO_PID" ]; then
        kill -KILL "$DEMO_PID" 2>/dev/null || true
    fi
}
trap stop_demo EXIT

# start_demo LOG: start the script in the background on a free port and
# wait until the server listens.  Sets DEMO_PID and PORT.
start_demo() {
    local i
    PORT=$(pick_port)
    DEMO_DIR=$DEMO SSHFSD_DEMO_PORT=$PORT BUILD=$BUILD \
        timeout 120 "$ROOT/scripts/run-demo.sh" >"$1" 2>&1 &
    DEMO_PID=$!
    for i in $(seq 100); do
        grep -q "Server listening" "$1" && return 0
        kill -0 "$DEMO_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "run-demo.sh did not start:" >&2
    sed 's/^/    /' "$1" >&2
    return 1
}

# stop_demo_with_sigint NAME: send SIGINT; the script must exit 0 within
# 10 seconds.
stop_demo_with_sigint() {
    local i status=0
    kill -INT "$DEMO_PID"
    for i in $(seq 100); do
        kill -0 "$DEMO_PID" 2>/dev/null || break
        sleep 0.1
    done
    wait "$DEMO_PID" || status=$?
    DEMO_PID=""
    check_eq "$1" 0 "$status"
}

demo_sftp() {
    timeout 60 sftp -q -b - -P "$PORT" -i "$DEMO/id_ed25519" \
        "${SSH_OPTS[@]}" mirage@127.0.0.1
}

start_demo run1.log || exit 1
check_ok "demo key created" test -f "$DEMO/id_ed25519"
check_eq "demo image is 32 MiB" $((32 * 1024 * 1024)) \
    "$(stat -c %s "$DEMO/disk.img")"
check_contains "prints the sshfs command" \
    "sshfs mirage@127.0.0.1:/ /tmp/sshfsd-demo -p $PORT -o IdentityFile=$DEMO/id_ed25519" \
    "$(cat run1.log)"
check_contains "prints the sftp command" \
    "sftp -P $PORT -i $DEMO/id_ed25519" "$(cat run1.log)"
check_eq "mirage lists the demo image" "/mirage.pub" \
    "$(echo "ls -1 /" | demo_sftp 2>&1 | grep -v '^sftp>')"
echo "kept across runs" >kept.txt
check_ok "mirage uploads a file" demo_sftp <<<"put kept.txt /kept.txt"
stop_demo_with_sigint "SIGINT stops the demo with status 0"
check_contains "server logged its stop" "stopped" "$(cat run1.log)"

start_demo run2.log || exit 1
check_eq "second run reuses the image" "kept across runs" \
    "$(echo "get /kept.txt got.txt" | demo_sftp >/dev/null 2>&1;
       cat got.txt 2>/dev/null)"
stop_demo_with_sigint "second run stops with status 0"

check_finish
