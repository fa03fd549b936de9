# Helpers for the benchmarks: timing (all of them), and for those that
# run sshfsd next to OpenSSH's sshd on loopback ports (bench_ssh.sh,
# bench_stack.sh), the work directory, both servers and the clients.
#
# Source it with BUILD set to the build tree.  bench_init, start_sshd and
# start_sshfsd set these variables:
#   work                    the work directory, also the current directory
#   client_opts             ssh options for sftp and sshfs: the client key
#                           work/client_key, no host-key checks
#   sshd_port, sshd_pid     OpenSSH's sshd
#   sshfsd_port, sshfsd_pid sshfsd
# Every server listens on 127.0.0.1 only and is stopped by its PID.

SSHD=/usr/sbin/sshd
bench_mounts=()
bench_pids=()

# bench_init NAME: create the work directory NAME.XXXXXX under
# ${TMPDIR:-/tmp} with a client key pair in it, and change into it.  At
# exit, unmount every sshfs mount made by sshfs_mount, stop the servers
# and remove the directory.
bench_init() {
    BUILD=$(cd "$BUILD" && pwd)
    work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap bench_cleanup EXIT
    cd "$work"
    ssh-keygen -q -t ed25519 -N '' -f client_key
    client_opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        -o IdentitiesOnly=yes -o BatchMode=yes
        -o IdentityFile="$work/client_key" -o LogLevel=ERROR)
}

bench_cleanup() {
    set +e
    local mount pid
    for mount in "${bench_mounts[@]}"; do
        if mountpoint -q "$mount" 2>/dev/null; then
            fusermount3 -u "$mount" || fusermount3 -u -z "$mount"
        fi
    done
    for pid in "${bench_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$work"
}

# free_port: print a TCP port above 20000 that is free on 127.0.0.1.
free_port() {
    /usr/bin/python3 -c '
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); s.close(); print(p); break
    except OSError:
        s.close()'
}

# wait_port PORT: wait up to 10 seconds for a server on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "no server is listening on port $1 after 10 seconds" >&2
    return 1
}

# start_sshd: start OpenSSH's sshd with a private configuration
# (internal-sftp, the key work/client_key.pub for every user) on a free
# port, and wait until it listens.  Its log is work/sshd.log.
start_sshd() {
    ssh-keygen -q -t ed25519 -N '' -f sshd_host_key
    cp client_key.pub authorized_keys
    sshd_port=$(free_port)
    cat >sshd_config <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/sshd_host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
EOF
    # sshd refuses to start without its privilege separation directory,
    # which the openssh-server package only creates when its service
    # starts.
    if [ ! -d /run/sshd ]; then
        mkdir -p -m 0755 /run/sshd
    fi
    "$SSHD" -D -e -f sshd_config 2>sshd.log &
    sshd_pid=$!
    bench_pids+=("$sshd_pid")
    wait_port "$sshd_port"
}

# start_sshfsd [OPTION...] IMAGE: start $BUILD/sshfsd on a free port for
# the current user with the key work/client_key.pub, and wait until it
# listens.  Its log (level warning) is work/sshfsd.log.
start_sshfsd() {
    sshfsd_port=$(free_port)
    "$BUILD/sshfsd" --listen 127.0.0.1 --port "$sshfsd_port" -l warning \
        --user "$(id -un)" --key "$(cat client_key.pub)" "$@" \
        2>sshfsd.log &
    sshfsd_pid=$!
    bench_pids+=("$sshfsd_pid")
    wait_port "$sshfsd_port"
}

# sftp_run PORT CIPHER BATCH [SSH_OPTION...]: run OpenSSH's sftp with
# the batch file BATCH against 127.0.0.1:PORT.
sftp_run() {
    local port=$1 cipher=$2 batch=$3
    shift 3
    sftp -q -b "$batch" -P "$port" "${client_opts[@]}" -c "$cipher" "$@" \
        "$(id -un)@127.0.0.1"
}

# sshfs_mount PORT REMOTE_DIR MOUNTPOINT: mount REMOTE_DIR of
# 127.0.0.1:PORT with sshfs and chacha20-poly1305@openssh.com.
sshfs_mount() {
    bench_mounts+=("$3")
    sshfs -p "$1" "${client_opts[@]}" \
        -o Ciphers=chacha20-poly1305@openssh.com \
        "$(id -un)@127.0.0.1:$2" "$3"
}

# seconds COMMAND...: run COMMAND and print the wall-clock seconds it
# took.  When COMMAND fails, print nothing and return its exit status.
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" || return
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

# median: print the median of the numbers on stdin, one per line (the
# lower of the two middle values for an even count).
median() {
    sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
