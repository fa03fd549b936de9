#!/usr/bin/env bash
# The lock-down of both servers (src/server/sandbox.h), in every tree.
# It checks what /proc shows of a locked-down server, the users it runs
# as, and the probe build that makes a forbidden call.  Full sessions run
# under strace -f, which must show no forbidden call after the lock-down.
#
# The servers here always run locked down, also in the sanitizer tree
# (SERVER_SANDBOX_ARGS is not used).  Most checks need root, as the
# chroot and the user switch do; run as another user, the script checks
# only the unprivileged lock-down.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../ssh/ssh_lib.sh"
source "$(dirname "$0")/../main/sshfs_lib.sh"
cd "$TMPDIR" || exit 1
# Locked down in every tree, the sanitizer tree too (tests/lib.sh).
SERVER_SANDBOX_ARGS=()

SFTP_SERVER=$BUILD/sshfsd-sftp-server
PROBE=$BUILD/tests/sshfsd-lockdown-probe
BLOCKKEY=00112233445566778899aabbccddeeff
CLIENT_KEY=$PWD/id_ed25519
IS_ROOT=0
if [ "$(id -u)" -eq 0 ]; then
    IS_ROOT=1
fi

trap 'unmount_all; kill_server' EXIT

make_key id_ed25519 ed25519
make_image disk.img 16
head -c 1500000 /dev/urandom >big.bin

# status_field PID FIELD: a field of /proc/PID/status, tabs as spaces.
status_field() {
    sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr '\t' ' ' |
        sed 's/ *$//'
}

# limit PID NAME: the soft and hard values of a /proc/PID/limits line.
limit() {
    grep "^$2 " "/proc/$1/limits" | awk '{ print $(NF-2), $(NF-1) }'
}

# server_pid LOG: the PID in the server's log lines.
server_pid() {
    sed -n 's/.* sshfsd\[\([0-9]*\)\]: .*/\1/p' "$1" | head -n 1
}

# sftp_round_trip LABEL: put and get a file through the running server.
sftp_round_trip() {
    rm -f back.bin
    printf 'put big.bin\nget big.bin back.bin\nrm big.bin\n' >rt.batch
    if run_sftp "$CLIENT_KEY" rt.batch >rt.out 2>&1 && cmp -s big.bin back.bin
    then
        check_pass "$1"
    else
        check_fail "$1" "sftp round trip failed" rt.out
    fi
}

# check_lockdown_log NAME LOG [ROOT]: the log names each step, in order;
# ROOT is 1 (the default when this script runs as root) for a server
# started as root, which also changes root directory and user.  A kernel
# without Landlock logs a warning ("this kernel has no Landlock") in
# place of the Landlock line.
check_lockdown_log() {
    local steps landlock=Landlock
    steps=$(sed -n 's/.*lock-down: \([a-zA-Z]*\).*/\1/p' "$2" | tr '\n' ' ')
    if grep -q "lock-down: this kernel has no Landlock" "$2"; then
        landlock=this
    fi
    if [ "${3:-$IS_ROOT}" -eq 1 ]; then
        check_eq "$1" "no root running no $landlock seccomp " "$steps"
    else
        check_eq "$1" "no not no $landlock seccomp " "$steps"
    fi
}

KEY=$(cat id_ed25519.pub)

###########################################################################
# A locked-down server as /proc shows it.

# "Server listening" comes before the lock-down; the seccomp line ends it.
LOCKED_LINE="lock-down: seccomp allows"

start_server locked.log --user mirage --key "$KEY" disk.img || exit 1
wait_for_log "$LOCKED_LINE"
check_lockdown_log "the log names every lock-down step" locked.log
check_eq "NoNewPrivs is set" 1 "$(status_field "$SERVER_PID" NoNewPrivs)"
check_eq "seccomp filter mode" 2 "$(status_field "$SERVER_PID" Seccomp)"
check_eq "no effective capabilities" 0000000000000000 \
    "$(status_field "$SERVER_PID" CapEff)"
check_eq "no core dumps" "0 0" "$(limit "$SERVER_PID" "Max core file size")"
check_eq "no new processes" "0 0" "$(limit "$SERVER_PID" "Max processes")"
check_eq "open files bounded by --max-connections" "96 96" \
    "$(limit "$SERVER_PID" "Max open files")"
if [ "$IS_ROOT" -eq 1 ]; then
    nobody_uid=$(id -u nobody)
    nobody_gid=$(id -g nobody)
    check_eq "runs as nobody" \
        "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" \
        "$(status_field "$SERVER_PID" Uid)"
    check_eq "with nobody's group" \
        "$nobody_gid $nobody_gid $nobody_gid $nobody_gid" \
        "$(status_field "$SERVER_PID" Gid)"
    check_eq "no supplementary groups" "" \
        "$(status_field "$SERVER_PID" Groups)"
    root_link=$(readlink "/proc/$SERVER_PID/root")
    if [[ $root_link =~ ^/run/sshfsd-root\.[A-Za-z0-9]{6}\ \(deleted\)$ ]]
    then
        check_pass "root directory is a deleted directory under /run"
    else
        check_fail "root directory is a deleted directory under /run" \
            "root is '$root_link'"
    fi
    check_eq "root directory is empty" "" \
        "$(ls -A "/proc/$SERVER_PID/root/" 2>&1)"
fi
sftp_round_trip "a locked-down server serves files"
check_stopped "a locked-down server stops cleanly"
check_eq "nothing left under /run" "" \
    "$(ls -d /run/sshfsd-root.* 2>/dev/null)"

###########################################################################
# Users.

if [ "$IS_ROOT" -eq 1 ]; then
    start_server runas.log --run-as daemon --user mirage --key "$KEY" \
        disk.img || exit 1
    wait_for_log "$LOCKED_LINE"
    check_eq "--run-as switches to that user" \
        "$(id -u daemon) $(id -u daemon) $(id -u daemon) $(id -u daemon)" \
        "$(status_field "$SERVER_PID" Uid)"
    sftp_round_trip "a server run as daemon serves files"
    check_stopped "the server run as daemon stops cleanly"

    status=0
    "$SSHFSD" --listen 127.0.0.1 --port "$(pick_port)" --run-as root \
        disk.img >runas-root.log 2>&1 || status=$?
    check_eq "--run-as root is refused" 1 "$status"
    check_contains "and the log says why" \
        "--run-as user root is root; name an unprivileged user" \
        "$(cat runas-root.log)"
    status=0
    "$SSHFSD" --listen 127.0.0.1 --port "$(pick_port)" \
        --run-as no-such-user-sshfsd disk.img >runas-unknown.log 2>&1 ||
        status=$?
    check_eq "an unknown --run-as user is a command-line error" 2 "$status"
    check_contains "and the log names it" \
        "unknown user 'no-such-user-sshfsd' for --run-as" \
        "$(cat runas-unknown.log)"

    # Started as nobody: no chroot, the rest of the lock-down all the same.
    # The test's directory must be searchable for nobody to reach the
    # image.
    chmod 0711 "$PWD"
    mkdir -m 0777 shared
    cp disk.img shared/disk.img
    chmod 0666 shared/disk.img
    PORT=$(pick_port)
    SERVER_LOG=unpriv.log
    setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups -- \
        "$SSHFSD" --listen 127.0.0.1 --port "$PORT" --user mirage \
        --key "$KEY" --seed unprivileged shared/disk.img >unpriv.log 2>&1 &
    SERVER_PID=$!
    wait_for_log "$LOCKED_LINE" 10
    check_lockdown_log "started as nobody: every step but the chroot" \
        unpriv.log 0
    check_eq "started as nobody: NoNewPrivs" 1 \
        "$(status_field "$SERVER_PID" NoNewPrivs)"
    check_eq "started as nobody: seccomp" 2 \
        "$(status_field "$SERVER_PID" Seccomp)"
    sftp_round_trip "a server started as nobody serves files"
    check_stopped "the server started as nobody stops cleanly"

    status=0
    setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups -- \
        "$SSHFSD" --listen 127.0.0.1 --port "$(pick_port)" --run-as daemon \
        --seed x shared/disk.img >unpriv-runas.log 2>&1 || status=$?
    check_eq "--run-as without root is refused" 1 "$status"
    check_contains "and the log says it needs root" \
        "--run-as daemon needs a server started as root" \
        "$(cat unpriv-runas.log)"
fi

###########################################################################
# --no-sandbox.

start_server nosandbox.log --no-sandbox --user mirage --key "$KEY" \
    disk.img || exit 1
check_contains "--no-sandbox warns" \
    "warning: --no-sandbox: the server runs without its lock-down" \
    "$(cat nosandbox.log)"
check_eq "--no-sandbox: no lock-down step" "" \
    "$(grep 'lock-down:' nosandbox.log)"
check_eq "--no-sandbox: no seccomp" 0 "$(status_field "$SERVER_PID" Seccomp)"
check_stopped "the server without lock-down stops cleanly"

###########################################################################
# The probe build calls openat() right after the lock-down.

status=0
timeout 30 "$PROBE" --listen 127.0.0.1 --port "$(pick_port)" --user mirage \
    --key "$KEY" disk.img >probe.log 2>&1 || status=$?
check_eq "openat() after the lock-down ends the process with SIGSYS" \
    $((128 + $(kill -l SYS))) "$status"
check_contains "the probe reached its call" \
    "lock-down probe: calling openat()" "$(cat probe.log)"
check_eq "the call never returned" "" "$(grep 'openat() returned' probe.log)"

###########################################################################
# Out of descriptors: with a tiny open-files limit from outside (and no
# lock-down, which would set its own), the server pauses accepting
# instead of spinning, and resumes when a connection closes.

PORT=$(pick_port)
SERVER_LOG=emfile.log
prlimit --nofile=9 "$SSHFSD" --no-sandbox --listen 127.0.0.1 --port "$PORT" \
    --user mirage --key "$KEY" disk.img >emfile.log 2>&1 &
SERVER_PID=$!
wait_for_log "Server listening" 10
"$PYTHON" - "$PORT" "$SERVER_PID" >emfile.out 2>&1 <<'PY'
import socket, sys, time

port, pid = int(sys.argv[1]), sys.argv[2]


def cpu_ticks():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def banner(sock, seconds):
    sock.settimeout(seconds)
    try:
        return sock.recv(8).startswith(b"SSH-2.0")
    except socket.timeout:
        return False


# Descriptors 0-2, the image, the listening socket, epoll and the
# signalfd leave room for two connections under a limit of 9.
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
print("banners", [banner(s, 1.0) for s in socks])
before = cpu_ticks()
time.sleep(2)
print("busy", cpu_ticks() - before > 50)
socks[0].close()
print("third after a close", banner(socks[2], 10.0))
PY
check_eq "out of descriptors: two connections get a banner, the third waits" \
    "banners [True, True, False]" "$(sed -n 1p emfile.out)"
check_eq "out of descriptors: the server does not spin" "busy False" \
    "$(sed -n 2p emfile.out)"
check_eq "out of descriptors: a close lets the third in" \
    "third after a close True" "$(sed -n 3p emfile.out)"
check_contains "out of descriptors: the pause is logged" \
    "cannot accept connections: Too many open files; waiting until a connection closes" \
    "$(cat emfile.log)"
check_contains "out of descriptors: so is the resumption" \
    "accepting connections again" "$(cat emfile.log)"
check_stopped "out of descriptors: the server stops cleanly"

###########################################################################
# Full sessions under strace -f.

# check_trace LABEL TRACE: after the seccomp filter is loaded, TRACE has
# none of the calls the lock-down forbids, and the process exited with
# status 0.
check_trace() {
    local label=$1 trace=$2 after forbidden
    if ! grep -qE 'seccomp\(SECCOMP_SET_MODE_FILTER, 0, .*\) = 0$' "$trace"
    then
        check_fail "$label: the seccomp filter was loaded" \
            "no successful seccomp(SECCOMP_SET_MODE_FILTER) in $trace"
        return
    fi
    check_pass "$label: the seccomp filter was loaded"

    after=$(awk '/seccomp\(SECCOMP_SET_MODE_FILTER, 0, .*\) = 0$/ { on = 1;
        next } on' "$trace")
    # The session itself is in the trace: at least one pread64 of the
    # image and one write.  grep reads a here-string, because a pipe would
    # fail under pipefail when grep -q stops reading early.
    if grep -qE '^[0-9]+ +pread64\(' <<<"$after" &&
        grep -qE '^[0-9]+ +write\(' <<<"$after"; then
        check_pass "$label: the session ran after the lock-down"
    else
        check_fail "$label: the session ran after the lock-down" \
            "no pread64 or write after the filter was loaded"
    fi

    forbidden=$(grep -E \
        '^[0-9]+ +(open|openat|openat2|execve|execveat|connect|socket|ptrace|bind|listen|clone|clone3|fork|vfork)\(' \
        <<<"$after" | head -n 5)
    check_eq "$label: no open, exec, socket, connect or ptrace after the lock-down" \
        "" "$forbidden"
    check_eq "$label: no call was refused" "" \
        "$(grep -E 'killed by SIGSYS|SIGSYS' "$trace" | head -n 3)"
    check_contains "$label: the process exited with status 0" \
        "+++ exited with 0 +++" "$(tail -n 1 "$trace")"
}

# A session that uses every SFTP request sshfs makes on this server:
# files of several sizes, directories, renames, attributes, statvfs,
# fsync.  (littlefs has no links, so the server refuses them before any
# system call.)
exercise_mount() {
    local m=$1 tag=$2
    mkdir "$m/dir-$tag" &&
        cp big.bin "$m/dir-$tag/big" &&
        cmp -s big.bin "$m/dir-$tag/big" &&
        echo "small $tag" >"$m/dir-$tag/small" &&
        sync "$m/dir-$tag/small" &&
        mv "$m/dir-$tag/small" "$m/dir-$tag/renamed" &&
        chmod 0600 "$m/dir-$tag/renamed" &&
        touch -d 2001-02-03T04:05:06Z "$m/dir-$tag/renamed" &&
        truncate -s 3 "$m/dir-$tag/renamed" &&
        [ "$(cat "$m/dir-$tag/renamed")" = "sma" ] &&
        [ "$(stat -c %s "$m/dir-$tag/big")" = 1500000 ] &&
        ls -la "$m" "$m/dir-$tag" >/dev/null &&
        df "$m" >/dev/null &&
        rm -r "$m/dir-$tag"
}

make_image plain-for-enc.img 16
"$IMAGE_TOOL" encrypt --in plain-for-enc.img --out enc.img \
    --key "$BLOCKKEY" >/dev/null
PORT=$(pick_port)
SERVER_LOG=strace-server.log
strace -f -o server.trace "$SSHFSD" --listen 127.0.0.1 --port "$PORT" \
    --user mirage --key "$KEY" --blockkey "$BLOCKKEY" --seed traced \
    --rekey-limit 256K --log-level debug enc.img >strace-server.log 2>&1 &
STRACE_PID=$!
if wait_for_log "Server listening" 30; then
    SERVER_PID=$(server_pid strace-server.log)
    check_mount "traced server: first sshfs mount" "$PWD/m1" &&
        check_mount "traced server: second sshfs mount" "$PWD/m2"
    exercise_mount "$PWD/m1" one >ex1.out 2>&1 &
    ex1=$!
    exercise_mount "$PWD/m2" two >ex2.out 2>&1 &
    ex2=$!
    cat >session.batch <<'EOF'
put big.bin
get big.bin back.bin
mkdir sftp-dir
rename big.bin sftp-dir/big.bin
ls -l
chmod 600 sftp-dir/big.bin
df
rm sftp-dir/big.bin
rmdir sftp-dir
EOF
    run_sftp "$CLIENT_KEY" session.batch >session.out 2>&1
    sftp_status=$?
    wait "$ex1"
    ex1_status=$?
    wait "$ex2"
    ex2_status=$?
    check_eq "traced server: the sftp session succeeded" 0 "$sftp_status"
    check_ok "traced server: the file came back" cmp big.bin back.bin
    check_eq "traced server: the first mount's operations succeeded" 0 \
        "$ex1_status"
    check_eq "traced server: the second mount's operations succeeded" 0 \
        "$ex2_status"
    unmount_all
    rekeys=$(grep -c 're-key [0-9]* finished' strace-server.log)
    if [ "$rekeys" -ge 2 ]; then
        check_pass "traced server: sessions re-keyed ($rekeys times)"
    else
        check_fail "traced server: sessions re-keyed" "$rekeys re-keys"
    fi
    kill -TERM "$SERVER_PID"
    wait "$STRACE_PID"
    SERVER_PID=""
    check_trace "traced server" server.trace
else
    check_fail "traced server starts" "no listening line" strace-server.log
    kill -KILL "$STRACE_PID" 2>/dev/null
    wait "$STRACE_PID" 2>/dev/null
fi
check_ok "the image checks clean after the traced session" \
    "$IMAGE_TOOL" check --key "$BLOCKKEY" enc.img

# The stdio server under sftp -D, on the encrypted image, with an error
# in the log after the lock-down (a missing file).
cat >stdio.batch <<'EOF'
put big.bin
get big.bin back2.bin
-get no-such-file nothing
mkdir d
rename big.bin d/big.bin
ls -l d
rm d/big.bin
rmdir d
EOF
rm -f back2.bin
SSHFSD_BLOCKKEY=$BLOCKKEY timeout 120 sftp -q -b stdio.batch \
    -D "strace -f -o $PWD/stdio.trace $SFTP_SERVER -l info enc.img" \
    >stdio.out 2>&1
check_eq "stdio server: the sftp session succeeded" 0 "$?"
check_ok "stdio server: the file came back" cmp big.bin back2.bin
check_trace "stdio server" stdio.trace

# The stdio server as /proc shows it, waiting for its client.
mkfifo stdin.fifo
SSHFSD_BLOCKKEY=$BLOCKKEY "$SFTP_SERVER" -l info enc.img <stdin.fifo \
    >/dev/null 2>stdio-proc.log &
stdio_pid=$!
exec 7>stdin.fifo
for i in $(seq 50); do
    grep -q "$LOCKED_LINE" stdio-proc.log && break
    sleep 0.1
done
check_lockdown_log "stdio server: the log names every step" stdio-proc.log
check_eq "stdio server: NoNewPrivs" 1 "$(status_field "$stdio_pid" NoNewPrivs)"
check_eq "stdio server: seccomp" 2 "$(status_field "$stdio_pid" Seccomp)"
check_eq "stdio server: at most 16 open files" "16 16" \
    "$(limit "$stdio_pid" "Max open files")"
if [ "$IS_ROOT" -eq 1 ]; then
    check_eq "stdio server: runs as nobody" \
        "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" \
        "$(status_field "$stdio_pid" Uid)"
fi
exec 7>&-
wait "$stdio_pid"
check_eq "stdio server: exits with status 0 at end of input" 0 "$?"

check_finish
