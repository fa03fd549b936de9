#!/usr/bin/env bash
# Throughput of put and get of one large file through OpenSSH's sftp in
# stdio mode (sftp -D, so no SSH and no crypto in the path).
# sshfsd-sftp-server serves a littlefs image with 4096-byte blocks, and
# OpenSSH's sftp-server a plain directory, in the same run and on the same
# storage (tmpfs by default).  Prints MB/s for each and the ratio.
#
# Environment:
#   BUILD        build tree with sshfsd-sftp-server (default: build)
#   BENCH_DIR    where the image, the directory and the files go
#                (default: /dev/shm when it exists, else TMPDIR or /tmp)
#   BENCH_MIB    file size in MiB (default 256)
#   BENCH_RUNS   runs of each transfer; the median is reported (default 5)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SERVER="$BUILD/sshfsd-sftp-server"
IMAGE_TOOL="$BUILD/sshfsd-image"
OPENSSH_SERVER=/usr/lib/openssh/sftp-server
MIB=${BENCH_MIB:-256}
RUNS=${BENCH_RUNS:-5}
. "$ROOT/bench/lib.sh"

if [ -z "${BENCH_DIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        BENCH_DIR=/dev/shm
    else
        BENCH_DIR=${TMPDIR:-/tmp}
    fi
fi
WORK=$(mktemp -d "$BENCH_DIR/bench-sftp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for needed in "$SERVER" "$IMAGE_TOOL" "$OPENSSH_SERVER"; do
    if [ ! -x "$needed" ]; then
        echo "bench_sftp: $needed is missing (run make, or scripts/deps.sh)" >&2
        exit 1
    fi
done

# The image has room for the file twice over, because a put replaces the
# old copy only when the new one is complete.
"$IMAGE_TOOL" format "$WORK/disk.img" 4096 --size "$((MIB * 2 + 64))M" \
    >/dev/null
mkdir "$WORK/dir"
head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$WORK/source.bin"

OURS="$SERVER $WORK/disk.img"
THEIRS="$OPENSSH_SERVER -d $WORK/dir"

transfer() {
    local server=$1 direction=$2 batch="$WORK/batch"
    if [ "$direction" = put ]; then
        echo "put $WORK/source.bin big.bin" >"$batch"
    else
        rm -f "$WORK/copy.bin"
        echo "get big.bin $WORK/copy.bin" >"$batch"
    fi
    sftp -q -D "$server" -b "$batch" >/dev/null </dev/null
    if [ "$direction" = get ]; then
        cmp "$WORK/source.bin" "$WORK/copy.bin"
    fi
}

declare -A result
for direction in put get; do
    for side in ours theirs; do
        : >"$WORK/times.$side.$direction"
    done
    for _ in $(seq 1 "$RUNS"); do
        # Alternate, so that neither side always runs on a warmer machine.
        for side in ours theirs; do
            if [ "$side" = ours ]; then server=$OURS; else server=$THEIRS; fi
            seconds transfer "$server" "$direction" \
                >>"$WORK/times.$side.$direction"
        done
    done
    for side in ours theirs; do
        t=$(median <"$WORK/times.$side.$direction")
        result[$side.$direction]=$(awk -v mib="$MIB" -v t="$t" \
            'BEGIN { print mib * 1.048576 / t }')
    done
done

# Each sftp -D starts a server, which mounts the image: time a session
# that sends nothing, with the file in place, to show that fixed cost.
: >"$WORK/times.mount"
for _ in $(seq 1 "$RUNS"); do
    seconds "$SERVER" "$WORK/disk.img" </dev/null >>"$WORK/times.mount"
done
mount_seconds=$(median <"$WORK/times.mount")

echo "sftp -D, $MIB MiB file, median of $RUNS runs, storage: $BENCH_DIR"
printf '%-6s %22s %22s %8s\n' "" "sshfsd (image) MB/s" "OpenSSH (dir) MB/s" "ratio"
for direction in put get; do
    ours=${result[ours.$direction]}
    theirs=${result[theirs.$direction]}
    printf '%-6s %22.1f %22.1f %7.2fx\n' "$direction" "$ours" "$theirs" \
        "$(awk -v a="$ours" -v b="$theirs" 'BEGIN { print a / b }')"
done
printf 'an empty sshfsd session (mount and unmount) takes %.3f s\n' \
    "$mount_seconds"
