#!/usr/bin/env bash
# Full-stack benchmark: sshfsd serving an AES-CCM encrypted littlefs image
# with 4096-byte blocks, against OpenSSH's sshd (internal-sftp, a private
# configuration on a loopback port) serving a directory.  The same clients
# (OpenSSH's sftp, sshfs) and the same cipher, chacha20-poly1305@openssh.com,
# talk to both servers.  The image and the directory are both in $TMPDIR.
#
# Steps, each timed by wall clock:
#   - sftp put, then sftp get, of one BENCH_MB MiB file (sftp -b);
#   - on an sshfs mount, sequential write (dd bs=1M conv=fsync) and
#     sequential read (dd bs=1M) of BENCH_MB MiB;
#   - on an sshfs mount, create BENCH_FILES small files in a new
#     directory, list them with ls -l, remove them with rm -r;
#   - untar a tree of 2 x BENCH_FILES files onto an sshfs mount, and tar
#     it back into a local file.  The tree has BENCH_FILES / 10
#     directories of 20 files, 200 to 6000 bytes each, and is made once,
#     the same for every run.
# Every sshfs step runs on a fresh mount, with the same options for both
# servers, so that neither the client's page cache nor sshfs's attribute
# and directory caches hold anything from an earlier step.  The host's
# page cache is not dropped, so both servers read their storage from
# memory.  Each step runs BENCH_RUNS times on each server, alternating
# which server goes first, and the table shows the medians.  Data read
# back (sftp get, sshfs read, tar) is compared with what was written.
#
# Usage: BUILD=build bash bench/bench_stack.sh   (make bench sets BUILD)
# Environment:
#   BENCH_MB            size of the large file in MiB (default 256)
#   BENCH_FILES         number of small files (default 1000, at least 10)
#   BENCH_RUNS          runs of each step on each server (default 5)
#   BENCH_STEP_TIMEOUT  seconds one step may take before the benchmark
#                       stops both servers and fails (default 300)
#   BENCH_SSHFSD_OPTIONS  more sshfsd options, split at spaces (default
#                       none); the output repeats them
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
MB=${BENCH_MB:-256}
FILES=${BENCH_FILES:-1000}
RUNS=${BENCH_RUNS:-5}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-300}
read -r -a sshfsd_options <<<"${BENCH_SSHFSD_OPTIONS:-}"
CIPHER=chacha20-poly1305@openssh.com
. bench/lib.sh

if [ "$FILES" -lt 10 ]; then
    echo "bench_stack: BENCH_FILES must be at least 10, not $FILES" >&2
    exit 2
fi
TREE_DIRS=$((FILES / 10))
TREE_FILES=$((TREE_DIRS * 20))

bench_init sshfsd-bench-stack

# Setup: the large file, the tree, both servers.  The filesystem inside
# the image has room for the large file four times over (one copy from
# sftp put, one from the sshfs write, and slack) plus the tree, and the
# encrypted image file is twice its size.
head -c $((MB * 1024 * 1024)) /dev/urandom >data.bin
/usr/bin/python3 - "$TREE_DIRS" tree.tar <<'EOF'
import io, random, sys, tarfile

dirs, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(1)
mtime = 1700000000


def entry(name, kind, mode, size=0):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, mtime
    return info


with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
    tar.addfile(entry("tree", tarfile.DIRTYPE, 0o755))
    for d in range(dirs):
        tar.addfile(entry(f"tree/d{d:03}", tarfile.DIRTYPE, 0o755))
        for f in range(20):
            data = rng.randbytes(rng.randint(200, 6000))
            info = entry(f"tree/d{d:03}/f{f:02}.dat", tarfile.REGTYPE,
                         0o644, len(data))
            tar.addfile(info, io.BytesIO(data))
EOF
mkdir reference
tar -xf tree.tar -C reference

openssl rand -hex 16 >block.key
"$BUILD/sshfsd-image" format --key-file block.key \
    --size $((MB * 4 + 64))M disk.img 4096 >/dev/null
mkdir -p served mnt_sshfsd mnt_sshd
start_sshd
start_sshfsd --blockkey-file block.key "${sshfsd_options[@]}" disk.img

# Per server: its port, the directory that sftp paths and sshfs mounts
# start from, and its mount point.
declare -A port=([sshfsd]=$sshfsd_port [sshd]=$sshd_port)
declare -A root=([sshfsd]="" [sshd]=$work/served)
declare -A mnt=([sshfsd]=$work/mnt_sshfsd [sshd]=$work/mnt_sshd)

mount_fresh() {
    sshfs_mount "${port[$1]}" "${root[$1]:-/}" "${mnt[$1]}"
}
unmount() {
    fusermount3 -u "${mnt[$1]}"
}

# watchdog_start: after STEP_TIMEOUT seconds, kill both servers and
# sshd's per-connection processes, so that a client blocked on a hung
# server fails (sshfs exits when its connection closes) and the benchmark
# stops instead of hanging.  watchdog_stop cancels it.
watchdog_start() {
    (
        set +e
        trap 'kill "${sleeper:-}" 2>/dev/null; exit 0' TERM
        sleep "$STEP_TIMEOUT" &
        sleeper=$!
        wait "$sleeper"
        echo "bench_stack: a step timed out after $STEP_TIMEOUT s" \
            "(BENCH_STEP_TIMEOUT); killing both servers" >&2
        for pid in $(pgrep -P "$sshd_pid"); do
            kill -KILL $(pgrep -P "$pid") "$pid" 2>/dev/null
        done
        kill -KILL "$sshd_pid" "$sshfsd_pid" 2>/dev/null
    ) &
    watchdog_pid=$!
}
watchdog_pid=""
watchdog_stop() {
    if [ -n "$watchdog_pid" ]; then
        kill "$watchdog_pid" 2>/dev/null || true
        wait "$watchdog_pid" || true
        watchdog_pid=""
    fi
}
trap 'watchdog_stop; bench_cleanup' EXIT

# fail MESSAGE: print MESSAGE, which server has exited, and the end of
# both servers' logs (the work directory is removed at exit), and exit.
fail() {
    local name pid_variable
    echo "bench_stack: $1" >&2
    for name in sshfsd sshd; do
        pid_variable=${name}_pid
        if ! kill -0 "${!pid_variable}" 2>/dev/null; then
            echo "bench_stack: $name (PID ${!pid_variable}) is no longer" \
                "running" >&2
        fi
        echo "--- end of $name.log:" >&2
        tail -n 5 "$work/$name.log" >&2
    done
    exit 1
}

# timed STEP SERVER COMMAND...: run COMMAND, which must not write to
# stdout, and append its wall-clock seconds to times/STEP.SERVER.
mkdir times
timed() {
    local step=$1 server=$2 spent
    shift 2
    spent=$(seconds "$@") ||
        fail "step $step on $server failed with exit status $?: $*"
    echo "$spent" >>"times/$step.$server"
}

sftp_batch() {
    local server=$1
    shift
    printf '%s\n' "$@" >batch.$server
    sftp_run "${port[$server]}" "$CIPHER" batch.$server >/dev/null
}

# The steps, in the order they run.  Each takes the server's name.
step_put() {
    # "-rm": ignore the error when the file is not there yet.
    sftp_batch "$1" "-rm ${root[$1]}/bench.bin" 2>/dev/null
    timed put "$1" sftp_batch "$1" "put $work/data.bin ${root[$1]}/bench.bin"
}

step_get() {
    rm -f down.bin
    timed get "$1" sftp_batch "$1" "get ${root[$1]}/bench.bin $work/down.bin"
    if ! cmp -s data.bin down.bin; then
        fail "sftp get from $1 returned different data"
    fi
}

dd_write() { dd if="$work/data.bin" of="$1" bs=1M conv=fsync status=none; }
dd_read() { dd if="$1" of=/dev/null bs=1M status=none; }

step_write() {
    mount_fresh "$1"
    rm -f "${mnt[$1]}/seq.bin"
    timed write "$1" dd_write "${mnt[$1]}/seq.bin"
    unmount "$1"
}

step_read() {
    mount_fresh "$1"
    timed read "$1" dd_read "${mnt[$1]}/seq.bin"
    unmount "$1"
}

# create_files DIR COUNT: create DIR and COUNT files of 300 bytes in it.
create_files() {
    local line i
    line=$(printf '%0299d' 0)
    mkdir "$1"
    for ((i = 0; i < $2; i++)); do
        printf '%s\n' "$line" >"$1/f$i" || return
    done
}

step_create() {
    mount_fresh "$1"
    timed create "$1" create_files "${mnt[$1]}/small" "$FILES"
    unmount "$1"
}

list_files() { ls -l "$1" >"$2"; }

step_list() {
    local count
    mount_fresh "$1"
    timed list "$1" list_files "${mnt[$1]}/small" listing
    unmount "$1"
    count=$(grep -c ' f[0-9]*$' listing || true)
    if [ "$count" != "$FILES" ]; then
        fail "ls -l on $1 listed $count files, expected $FILES"
    fi
}

step_remove() {
    mount_fresh "$1"
    timed remove "$1" rm -r "${mnt[$1]}/small"
    unmount "$1"
}

step_untar() {
    mount_fresh "$1"
    timed untar "$1" tar -xf tree.tar --no-same-owner -C "${mnt[$1]}"
    unmount "$1"
}

# The tar goes into a file, because GNU tar reads no file contents when
# its archive is /dev/null.  The tree is removed afterwards, so that the
# next untar creates every file again.
step_tar() {
    mount_fresh "$1"
    rm -f back.tar
    timed tar "$1" tar -cf back.tar -C "${mnt[$1]}" tree
    rm -rf back
    mkdir back
    tar -xf back.tar -C back
    if ! diff -r reference/tree back/tree >/dev/null; then
        fail "the tree that tar read back from $1 differs from the original"
    fi
    rm -r "${mnt[$1]}/tree"
    unmount "$1"
}

steps=(put get write read create list remove untar tar)
for run in $(seq "$RUNS"); do
    if [ $((run % 2)) = 1 ]; then
        order=(sshfsd sshd)
    else
        order=(sshd sshfsd)
    fi
    for step in "${steps[@]}"; do
        for server in "${order[@]}"; do
            watchdog_start
            "step_$step" "$server"
            watchdog_stop
        done
    done
done

# Compare the file that the sshfs read steps timed with the original,
# each on a fresh mount.
for server in sshfsd sshd; do
    watchdog_start
    mount_fresh "$server"
    if ! cmp -s data.bin "${mnt[$server]}/seq.bin"; then
        fail "sshfs read from $server returned different data"
    fi
    unmount "$server"
    watchdog_stop
done

# The table: throughput for the large file, seconds for the others.  The
# ratio is sshd's time / sshfsd's time, which for the large file equals
# sshfsd's throughput / sshd's throughput: above 1, sshfsd is faster.
declare -A label=(
    [put]="sftp put $MB MiB"
    [get]="sftp get $MB MiB"
    [write]="sshfs sequential write $MB MiB"
    [read]="sshfs sequential read $MB MiB"
    [create]="sshfs create $FILES files"
    [list]="sshfs ls -l $FILES files"
    [remove]="sshfs rm -r $FILES files"
    [untar]="sshfs untar $TREE_FILES files"
    [tar]="sshfs tar $TREE_FILES files"
)
rows=()
for step in "${steps[@]}"; do
    s=$(median <"times/$step.sshfsd")
    o=$(median <"times/$step.sshd")
    case $step in
        put | get | write | read)
            s_text=$(awk -v mb="$MB" -v t="$s" \
                'BEGIN { printf "%.0f MiB/s", mb / t }')
            o_text=$(awk -v mb="$MB" -v t="$o" \
                'BEGIN { printf "%.0f MiB/s", mb / t }')
            ;;
        *)
            s_text=$(awk -v t="$s" 'BEGIN { printf "%.2f s", t }')
            o_text=$(awk -v t="$o" 'BEGIN { printf "%.2f s", t }')
            ;;
    esac
    ratio=$(awk -v s="$s" -v o="$o" 'BEGIN { printf "%.2f", o / s }')
    rows+=("${label[$step]}|$s_text|$o_text|$ratio")
done

openssh=$("$SSHD" -V 2>&1 | head -1 | cut -d, -f1)
sshfs_version=$(sshfs -V 2>&1 | awk '/^SSHFS/ { print $3 }')
storage=$(df --output=fstype "$work" | tail -1)
echo "== full stack: sshfsd (AES-CCM encrypted image, 4096-byte blocks)" \
    "vs $openssh sshd (directory)"
echo "cipher $CIPHER for both; clients: OpenSSH sftp, sshfs" \
    "$sshfs_version; $(nproc) cores; storage: $storage in ${TMPDIR:-/tmp};" \
    "each figure is the median of $RUNS run(s)"
if [ "${#sshfsd_options[@]}" -gt 0 ]; then
    echo "sshfsd options: ${sshfsd_options[*]}"
fi
printf '%-34s %12s %14s %7s\n' operation sshfsd "OpenSSH sshd" ratio
for row in "${rows[@]}"; do
    IFS='|' read -r op s_text o_text ratio <<<"$row"
    printf '%-34s %12s %14s %7s\n' "$op" "$s_text" "$o_text" "$ratio"
done
echo "ratio: sshd time / sshfsd time (for MiB/s rows the same as sshfsd" \
    "throughput / sshd throughput); higher is better for sshfsd, above 1" \
    "sshfsd is faster"
echo
echo "Markdown:"
echo
echo "| operation | sshfsd | OpenSSH sshd | ratio (higher is better) |"
echo "|---|---:|---:|---:|"
for row in "${rows[@]}"; do
    IFS='|' read -r op s_text o_text ratio <<<"$row"
    echo "| $op | $s_text | $o_text | $ratio |"
done
