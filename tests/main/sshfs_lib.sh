# Helpers for the tests that mount sshfsd with sshfs (tests/main/test_*.sh
# source this after tests/lib.sh and tests/ssh/ssh_lib.sh).
#
# Each sshfs runs in the foreground (-f) as a job of the test, so that it
# is stopped by its PID and the test waits for it to exit.  Mounts log in
# as mirage with the key in $CLIENT_KEY on the server's $PORT.

MOUNT_IO=("$PYTHON" "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/mount_io.py")
CLIENT_KEY=""
MOUNT_DIRS=()
MOUNT_PIDS=()

# mount_sshfs DIR [SSHFS_OPTION...]: mount / of the server at DIR and wait
# up to 15 seconds for the mount.  sshfs's messages go to DIR.err.
# Returns 1 if DIR was not mounted.
mount_sshfs() {
    local dir=$1 pid i
    shift
    mkdir -p "$dir"
    sshfs -f "mirage@127.0.0.1:/" "$dir" -p "$PORT" \
        -o IdentityFile="$CLIENT_KEY" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
        -o BatchMode=yes -o ConnectTimeout=10 "$@" >"$dir.err" 2>&1 &
    pid=$!
    for i in $(seq 150); do
        if mountpoint -q "$dir"; then
            MOUNT_DIRS+=("$dir")
            MOUNT_PIDS+=("$pid")
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 1
}

# check_mount NAME DIR [SSHFS_OPTION...]: mount_sshfs as a check.
check_mount() {
    local name=$1
    shift
    if mount_sshfs "$@"; then
        check_pass "$name"
        return 0
    fi
    check_fail "$name" "sshfs did not mount $1" "$1.err"
    return 1
}

# unmount_all: unmount every mount of mount_sshfs (lazily if it is busy
# or its server is gone) and wait up to 10 seconds for each sshfs to exit
# before killing it.
unmount_all() {
    local k dir pid
    for k in "${!MOUNT_DIRS[@]}"; do
        dir=${MOUNT_DIRS[$k]}
        pid=${MOUNT_PIDS[$k]}
        if mountpoint -q "$dir"; then
            fusermount3 -u "$dir" 2>/dev/null || fusermount3 -uz "$dir"
        fi
        kill_if_alive "$pid"
        wait "$pid" 2>/dev/null
    done
    MOUNT_DIRS=()
    MOUNT_PIDS=()
}

# wait_bounded SECONDS PID...: wait until every PID has exited, for at
# most SECONDS.  On a timeout, unmount and stop every sshfs, so that
# requests stuck on a mount fail and their processes can exit, and
# return 1.  The caller still waits for each PID to get its status.
wait_bounded() {
    local i pid alive
    for i in $(seq $(($1 * 10))); do
        alive=0
        for pid in "${@:2}"; do
            if kill -0 "$pid" 2>/dev/null; then
                alive=1
            fi
        done
        [ "$alive" -eq 1 ] || return 0
        sleep 0.1
    done
    echo "    still running after $1 seconds: stopping every sshfs"
    unmount_all
    return 1
}
