#!/usr/bin/env bash
# The server killed with SIGKILL during a large write, on a plain image
# (4096-byte blocks) and on an encrypted one (512-byte blocks).
#
# Files are first written through an sshfs mount with fsync (dd
# conv=fsync, which sshfs forwards as fsync@openssh.com).  Then a writer
# copies 64 MiB of random data into one file and kills the server itself
# part-way, so that the moment is exact and repeatable:
#   round 1: after 6 MiB, with no fsync at all;
#   round 2: after 18.5 MiB, with an fsync after every 4 MiB;
#   round 3: about 1 ms into the fsync at 32 MiB;
#   round 4: among small files created in one directory, each with an
#   fsync, about 1 ms after the 121st is opened.
# After each kill the image must check clean, and a restarted server must
# serve every file that was fsync'd (or survived an earlier round)
# byte for byte.  The file being written may be missing or of any size,
# but it must read to its end without an error, contain the start of the
# data, and be at least as long as its last completed fsync.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../ssh/ssh_lib.sh"
source "$(dirname "$0")/sshfs_lib.sh"

export LC_ALL=C
BLOCKKEY=0f1e2d3c4b5a69788796a5b4c3d2e1f0
MIB=1048576
SYNCED_FILES=4
# Round 4 writes SMALL_FILES files and kills the server about 1 ms after
# it opens the file with index SMALL_FILES_KILL_AFTER (counted from 0).
SMALL_FILES=400
SMALL_FILES_KILL_AFTER=120
# Rounds 1 to 3, each "KILL_AT_BYTES SYNC_EVERY_BYTES KILL_DURING_SYNC".
ROUNDS=("$((6 * MIB)) 0 0"
    "$((18 * MIB + MIB / 2)) $((4 * MIB)) 0"
    "$((32 * MIB)) $((4 * MIB)) 1")

trap 'unmount_all; kill_server' EXIT
# Run the EXIT trap when tests/run.sh's timeout stops the script too.
trap 'exit 1' INT TERM HUP

cd "$TMPDIR" || exit 1
make_key id_ed25519 ed25519
CLIENT_KEY=$TMPDIR/id_ed25519
head -c $((64 * MIB)) /dev/urandom >data.bin

# check_known LABEL MOUNT: every file listed in known.sha ("NAME SHA"
# lines) has that SHA-256 on MOUNT.
check_known() {
    local name sum
    while read -r name sum; do
        check_eq "$1: $name is unchanged" "$sum" \
            "$(sha "$2/$name" 2>&1)"
    done <known.sha
}

# reap_server: wait up to 10 seconds for the server to die, kill it if
# it did not, and set SERVER_STATUS to its exit status (not in a
# subshell: only the shell that started the server can wait for it).
reap_server() {
    kill_if_alive "$SERVER_PID"
    SERVER_STATUS=0
    wait "$SERVER_PID" || SERVER_STATUS=$?
    SERVER_PID=""
}

# restart_after_kill LABEL ROUND IMAGE [SERVER_OPTION...]: reap the
# killed server, unmount, check the image, start the server again, mount
# it on mnt and check the files in known.sha.
restart_after_kill() {
    local label=$1 round=$2 image=$3 key_option=()
    shift 3
    if [ $# -gt 0 ]; then
        key_option=(--key "$BLOCKKEY")
    fi

    reap_server
    check_eq "$label: server was killed by SIGKILL" 137 "$SERVER_STATUS"
    unmount_all

    check_ok "$label: image checks clean after the kill" \
        "$IMAGE_TOOL" check "${key_option[@]}" "$image"

    start_server "server-$round.log" --seed crash \
        --key "$(cat "$CLIENT_KEY.pub")" "$@" "$image" || {
        check_fail "$label: server restarts" "see server-$round.log" \
            "server-$round.log"
        return 1
    }
    check_mount "$label: mounts after the restart" "$PWD/mnt" || return 1
    check_known "$label" "$PWD/mnt"
}

# kill_round LABEL ROUND IMAGE KILL_AT SYNC_EVERY DURING_SYNC
# [SERVER_OPTION...]: write ROUND's large file until the server is
# killed, restart and check every file.
kill_round() {
    local label="$1 round $2" round=$2 image=$3 kill_at=$4 sync_every=$5
    local during=$6 status=0 synced size partial
    shift 6
    partial=partial-$round

    "${MOUNT_IO[@]}" stream "$TMPDIR/data.bin" "$PWD/mnt/$partial" \
        "$sync_every" "$SERVER_PID" "$kill_at" "$during" \
        >"$partial.out" 2>&1 &
    wait_bounded 120 $! || echo "    the writer hung"
    wait $! || status=$?
    check_eq "$label: writer stops after the kill" 0 "$status"
    synced=$(sed -n 's/^synced //p' "$partial.out" | tail -n 1)
    synced=${synced:-0}
    echo "    $(tail -n 1 "$partial.out"); last fsync at $synced bytes"

    restart_after_kill "$label" "$round" "$image" "$@" || return 1

    if [ ! -e "$PWD/mnt/$partial" ]; then
        check_eq "$label: file being written is missing only if never synced" \
            0 "$synced"
        return 0
    fi
    check_ok "$label: file being written reads to its end as a prefix of the data" \
        "${MOUNT_IO[@]}" prefix "$TMPDIR/data.bin" "$PWD/mnt/$partial"
    size=$(stat -c %s "$PWD/mnt/$partial")
    echo "    $partial has $size bytes after the restart"
    if [ "$size" -ge "$synced" ]; then
        check_pass "$label: file being written keeps its last fsync"
    else
        check_fail "$label: file being written keeps its last fsync" \
            "$size bytes, but $synced bytes were synced"
    fi
    echo "$partial $(sha "$PWD/mnt/$partial")" >>known.sha
}

# small_files_round LABEL ROUND IMAGE [SERVER_OPTION...]: create small
# files in one directory, each with an fsync, until the server is killed
# among those commits.  Then restart and check every file.
small_files_round() {
    local label="$1 round $2" round=$2 image=$3 status=0 synced
    shift 3

    mkdir "$PWD/mnt/small"
    "${MOUNT_IO[@]}" small-files "$PWD/mnt/small" f "$SMALL_FILES" \
        "$SERVER_PID" "$SMALL_FILES_KILL_AFTER" >small.out 2>&1 &
    wait_bounded 120 $! || echo "    the small-file writer hung"
    wait $! || status=$?
    check_eq "$label: small-file writer stops after the kill" 0 "$status"
    synced=$(sed -n 's/^synced //p' small.out | tail -n 1)
    synced=${synced:-0}
    echo "    $(tail -n 1 small.out); $synced files synced"

    restart_after_kill "$label" "$round" "$image" "$@" || return 1
    check_ok "$label: every synced small file is intact, later ones are prefixes" \
        "${MOUNT_IO[@]}" verify-synced "$PWD/mnt/small" f "$SMALL_FILES" \
        "$synced"
}

# crash_rounds LABEL IMAGE [SERVER_OPTION...]: the synced files, then every
# round, in the directory LABEL.
crash_rounds() {
    local label=$1 image=$2 i round key_option=()
    shift 2
    if [ $# -gt 0 ]; then
        key_option=(--key "$BLOCKKEY")
    fi
    mkdir -p "$TMPDIR/$label" && cd "$TMPDIR/$label" || exit 1
    : >known.sha

    start_server server.log --seed crash --key "$(cat "$CLIENT_KEY.pub")" \
        -l debug "$@" "$image" || {
        check_fail "$label: server starts" "see server.log" server.log
        return
    }
    check_mount "$label: mounts" "$PWD/mnt" || return

    for i in $(seq "$SYNCED_FILES"); do
        head -c $((i * 300000 + i)) /dev/urandom >"synced-$i"
        check_ok "$label: synced-$i is written with fsync" \
            dd if="synced-$i" of="$PWD/mnt/synced-$i" bs=65536 conv=fsync \
            status=none
        echo "synced-$i $(sha "synced-$i")" >>known.sha
    done
    check_contains "$label: sshfs sends fsync to the server" \
        'sftp: fsync "/synced-1"' "$(cat server.log)"

    for round in "${!ROUNDS[@]}"; do
        # shellcheck disable=SC2086
        kill_round "$label" $((round + 1)) "$image" ${ROUNDS[$round]} \
            "$@" || return
    done
    small_files_round "$label" $((${#ROUNDS[@]} + 1)) "$image" "$@" ||
        return

    unmount_all
    check_stopped "$label: server stops cleanly after the last round"
    check_ok "$label: image checks clean at the end" \
        "$IMAGE_TOOL" check "${key_option[@]}" "$image"
    cd "$TMPDIR" || exit 1
}

make_image plain.img 96 4096
crash_rounds plain "$TMPDIR/plain.img"

"$IMAGE_TOOL" format --key "$BLOCKKEY" --size 96M encrypted.img 512 \
    >/dev/null || exit 1
crash_rounds encrypted "$TMPDIR/encrypted.img" --blockkey "$BLOCKKEY"

check_finish
