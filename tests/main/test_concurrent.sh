#!/usr/bin/env bash
# Several clients, one image: three sshfs mounts and OpenSSH sftp batch
# clients use one sshfsd at the same time, on a plain image (4096-byte
# blocks) and on an encrypted one (512-byte blocks).
#
# Mounts a and b use sshfs's default options.  Mounts c and d turn off
# sshfs's directory cache and the kernel's name and attribute caches, so
# that every lookup on them reaches the server.  Checks:
#   - a name created on a is found on b at its next lookup;
#   - four writers on the mounts and two sftp clients create files in one
#     directory at once, and every mount reads every file back exactly;
#   - four writers overwrite the same 1 MiB in 32 KiB writes at once, and
#     every byte is then one of the writers' fill bytes;
#   - mkdir, rename and remove on one client are seen from another;
#   - a process on c and one on d create, write, truncate and remove
#     the same few names at random, with no I/O error;
#   - the image checks clean after the server stops, and a restarted
#     server serves the same contents.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../ssh/ssh_lib.sh"
source "$(dirname "$0")/sshfs_lib.sh"

export LC_ALL=C
BLOCKKEY=00112233445566778899aabbccddeeff
FILES_PER_WRITER=50
FILES_PER_SFTP=25
SHARED_SIZE=1048576
SHARED_CHUNK=32768
FILL_PASSES=8
RANDOM_SECONDS=8
NO_CACHE=(-o dir_cache=no -o attr_timeout=0 -o entry_timeout=0)
FILE_WRITERS=(w0 w1 w2 w3)
SFTP_WRITERS=(s0 s1)

trap 'unmount_all; kill_server' EXIT
# Run the EXIT trap when tests/run.sh's timeout stops the script too.
trap 'exit 1' INT TERM HUP

cd "$TMPDIR" || exit 1
make_key id_ed25519 ed25519
CLIENT_KEY=$TMPDIR/id_ed25519
printf '%s\n' "$BLOCKKEY" >blockkey

# verify_many DIR: every writer's files in DIR have their exact content.
verify_many() {
    local prefix status=0
    for prefix in "${FILE_WRITERS[@]}"; do
        "${MOUNT_IO[@]}" verify-files "$1" "$prefix" "$FILES_PER_WRITER" ||
            status=1
    done
    for prefix in "${SFTP_WRITERS[@]}"; do
        "${MOUNT_IO[@]}" verify-files "$1" "$prefix" "$FILES_PER_SFTP" ||
            status=1
    done
    return $status
}

# expected_many: the sorted names that verify_many checks.
expected_many() {
    local prefix i
    {
        for prefix in "${FILE_WRITERS[@]}"; do
            for i in $(seq 0 $((FILES_PER_WRITER - 1))); do
                echo "$prefix-$i"
            done
        done
        for prefix in "${SFTP_WRITERS[@]}"; do
            for i in $(seq 0 $((FILES_PER_SFTP - 1))); do
                echo "$prefix-$i"
            done
        done
    } | sort
}

# check_jobs LABEL NAME=PID...: wait up to 120 seconds for the jobs;
# each must exit 0.
check_jobs() {
    local label=$1 job status pids=()
    shift
    for job in "$@"; do
        pids+=("${job#*=}")
    done
    wait_bounded 120 "${pids[@]}" ||
        check_fail "$label: jobs finish within 120 seconds" "a mount hung"
    for job in "$@"; do
        status=0
        wait "${job#*=}" || status=$?
        if [ "$status" -eq 0 ]; then
            check_pass "$label: ${job%%=*} finishes without errors"
        else
            check_fail "$label: ${job%%=*} finishes without errors" \
                "exit status $status" "${job%%=*}.out"
        fi
    done
}

# check_shared LABEL MOUNT: the shared file read through MOUNT is 1 MiB of
# fill bytes 41 to 44 only.
check_shared() {
    local counts others
    counts=$("${MOUNT_IO[@]}" byte-counts "$2/shared" 2>&1)
    echo "    $2/shared: $counts"
    check_eq "$1: shared file is 1 MiB" "size $SHARED_SIZE" \
        "$(cut -d' ' -f1,2 <<<"$counts")"
    others=$(tr ' ' '\n' <<<"$counts" | tail -n +3 | grep -v '^4[1-4]:')
    check_eq "$1: every byte of the shared file is a writer's" "" "$others"
}

# new_name_visible LABEL: names made on a are found on b.
new_name_visible() {
    local label=$1 a=$PWD/a b=$PWD/b
    check_fails "$label: new name is missing on b before it exists" \
        stat "$b/fresh.txt"
    echo hello >"$a/fresh.txt"
    check_eq "$label: file created on a has its size on b" 6 \
        "$(stat -c %s "$b/fresh.txt" 2>&1)"
    check_eq "$label: file created on a reads back on b" hello \
        "$(cat "$b/fresh.txt" 2>&1)"
    mkdir "$a/fresh-dir"
    check_eq "$label: directory made on a is a directory on b" directory \
        "$(stat -c %F "$b/fresh-dir" 2>&1)"
}

# writers_in_one_directory LABEL: four mount writers and two sftp clients
# fill /many at once.
writers_in_one_directory() {
    local label=$1 a=$PWD/a b=$PWD/b c=$PWD/c prefix i mount jobs=()
    local mounts=("$a" "$b" "$c" "$a")

    mkdir -p up "$a/many"
    for prefix in "${SFTP_WRITERS[@]}"; do
        "${MOUNT_IO[@]}" write-files up "$prefix" "$FILES_PER_SFTP" \
            >/dev/null
        for i in $(seq 0 $((FILES_PER_SFTP - 1))); do
            echo "put up/$prefix-$i /many/$prefix-$i"
        done >"$prefix.batch"
    done

    for i in "${!FILE_WRITERS[@]}"; do
        prefix=${FILE_WRITERS[$i]}
        "${MOUNT_IO[@]}" write-files "${mounts[$i]}/many" "$prefix" \
            "$FILES_PER_WRITER" >"$prefix.out" 2>&1 &
        jobs+=("$prefix=$!")
    done
    for prefix in "${SFTP_WRITERS[@]}"; do
        run_sftp "$CLIENT_KEY" "$prefix.batch" >"$prefix.out" 2>&1 &
        jobs+=("$prefix=$!")
    done
    check_jobs "$label" "${jobs[@]}"

    expected_many >many.expected
    for mount in a b c; do
        check_ok "$label: every file has its content on $mount" \
            verify_many "$PWD/$mount/many"
        ls "$PWD/$mount/many" >"many.$mount" 2>&1
        check_ok "$label: directory lists every file on $mount" \
            diff many.expected "many.$mount"
    done

    echo "get /many/w2-7 w2-7.down" >get.batch
    run_sftp "$CLIENT_KEY" get.batch >get.out 2>&1
    check_eq "$label: sftp reads a file written on c" \
        "$(sha "$c/many/w2-7")" "$(sha w2-7.down 2>&1)"
}

# writers_on_one_file LABEL: four writers overwrite the same 1 MiB.
writers_on_one_file() {
    local label=$1 a=$PWD/a b=$PWD/b c=$PWD/c jobs=() sums

    head -c "$SHARED_SIZE" /dev/zero >"$c/shared"
    "${MOUNT_IO[@]}" fill "$a/shared" 41 "$SHARED_SIZE" "$SHARED_CHUNK" 0 \
        "$FILL_PASSES" >fill41.out 2>&1 &
    jobs+=("fill41=$!")
    "${MOUNT_IO[@]}" fill "$b/shared" 42 "$SHARED_SIZE" "$SHARED_CHUNK" 8 \
        "$FILL_PASSES" >fill42.out 2>&1 &
    jobs+=("fill42=$!")
    "${MOUNT_IO[@]}" fill "$c/shared" 43 "$SHARED_SIZE" "$SHARED_CHUNK" 16 \
        "$FILL_PASSES" >fill43.out 2>&1 &
    jobs+=("fill43=$!")
    "${MOUNT_IO[@]}" fill "$a/shared" 44 "$SHARED_SIZE" "$SHARED_CHUNK" 24 \
        "$FILL_PASSES" >fill44.out 2>&1 &
    jobs+=("fill44=$!")
    check_jobs "$label" "${jobs[@]}"

    check_shared "$label" "$c"
    sums="$(sha "$c/shared")"
    check_eq "$label: a reads the same shared file as c" "$sums" \
        "$(sha "$a/shared")"
    check_eq "$label: b reads the same shared file as c" "$sums" \
        "$(sha "$b/shared")"
    echo "$sums" >shared.sha
}

# changes_seen_elsewhere LABEL: mkdir, rename and remove on a, b and sftp,
# observed on c (which caches nothing).
changes_seen_elsewhere() {
    local label=$1 a=$PWD/a b=$PWD/b c=$PWD/c

    mkdir -p "$a/tree/sub"
    echo one >"$a/tree/sub/f.txt"
    check_eq "$label: tree made on a is listed on c" "f.txt" \
        "$(ls "$c/tree/sub" 2>&1)"
    mv "$a/tree/sub/f.txt" "$a/tree/g.txt"
    check_eq "$label: file renamed on a is listed on c" "g.txt sub" \
        "$(ls "$c/tree" 2>&1 | paste -sd " ")"
    check_eq "$label: renamed file reads back on c" one \
        "$(cat "$c/tree/g.txt" 2>&1)"
    mv "$b/tree" "$b/moved"
    check_fails "$label: directory renamed on b is gone on c" \
        stat "$c/tree"
    check_eq "$label: renamed directory is listed on c" "g.txt sub" \
        "$(ls "$c/moved" 2>&1 | paste -sd " ")"
    rm "$b/moved/g.txt"
    rmdir "$b/moved/sub"
    check_eq "$label: removals on b leave an empty directory on c" "" \
        "$(ls -A "$c/moved" 2>&1)"
    check_ok "$label: c removes the directory that b emptied" \
        rmdir "$c/moved"

    printf '%s\n' "mkdir /by-sftp" "put up/s0-1 /by-sftp/first" \
        "rename /by-sftp/first /by-sftp/second" >changes.batch
    check_ok "$label: sftp makes a directory and renames a file in it" \
        run_sftp "$CLIENT_KEY" changes.batch
    check_eq "$label: sftp's changes are listed on c" "second" \
        "$(ls "$c/by-sftp" 2>&1)"
    check_eq "$label: file renamed by sftp reads back on c" \
        "$(sha up/s0-1)" "$(sha "$c/by-sftp/second" 2>&1)"
    rm "$c/by-sftp/second"
    rmdir "$c/by-sftp"
    echo "ls /by-sftp" >ls.batch
    check_fails "$label: directory removed on c is gone for sftp" \
        run_sftp "$CLIENT_KEY" ls.batch
}

# random_ops LABEL: one process on each of c and d runs random
# operations on the same few names in /random at once.
random_ops() {
    local label=$1 mount jobs=() seed=0
    mkdir -p "$PWD/a/random/d0/e" "$PWD/a/random/d1"
    for mount in c d; do
        seed=$((seed + 1))
        "${MOUNT_IO[@]}" random-ops "$PWD/$mount/random" "$seed" \
            "$RANDOM_SECONDS" >"random-$mount.out" 2>&1 &
        jobs+=("random-$mount=$!")
    done
    check_jobs "$label" "${jobs[@]}"
    for mount in c d; do
        echo "    random-ops on $mount: $(tail -n 1 "random-$mount.out")"
    done
}

# tree_sums DIR: every file under DIR with its SHA-256, and every
# directory, sorted by path.
tree_sums() {
    (cd "$1" && find . -type d | sort && find . -type f -print0 |
        sort -z | xargs -0 -r sha256sum)
}

# check_image LABEL IMAGE [KEY_OPTION]: sshfsd-image check passes.
check_image() {
    local label=$1
    shift
    check_ok "$label" "$IMAGE_TOOL" check "$@"
}

# several_clients LABEL IMAGE [SERVER_OPTION...]: the whole sequence on
# IMAGE in the directory LABEL.
several_clients() {
    local label=$1 image=$2 key_option=() server=()
    shift 2
    server=(--seed concurrent --key "$(cat "$CLIENT_KEY.pub")" "$@")
    if [ $# -gt 0 ]; then
        key_option=(--key-file "$TMPDIR/blockkey")
    fi
    mkdir -p "$TMPDIR/$label" && cd "$TMPDIR/$label" || exit 1

    start_server server1.log "${server[@]}" "$image" || {
        check_fail "$label: server starts" "see server1.log" server1.log
        return
    }
    check_mount "$label: a mounts" "$PWD/a" &&
        check_mount "$label: b mounts" "$PWD/b" &&
        check_mount "$label: c mounts without caches" "$PWD/c" \
            "${NO_CACHE[@]}" &&
        check_mount "$label: d mounts without caches" "$PWD/d" \
            "${NO_CACHE[@]}" || return

    new_name_visible "$label"
    writers_in_one_directory "$label"
    writers_on_one_file "$label"
    changes_seen_elsewhere "$label"
    random_ops "$label"
    tree_sums "$PWD/c/random" >random.sums

    unmount_all
    check_stopped "$label: server stops cleanly"
    check_image "$label: image checks clean" "${key_option[@]}" "$image"

    start_server server2.log "${server[@]}" "$image" || {
        check_fail "$label: server restarts" "see server2.log" server2.log
        return
    }
    check_mount "$label: c mounts after a restart" "$PWD/c" \
        "${NO_CACHE[@]}" || return
    check_eq "$label: root lists the same names after a restart" \
        "fresh-dir fresh.txt many random shared" \
        "$(ls "$PWD/c" 2>&1 | paste -sd " ")"
    check_ok "$label: every file has its content after a restart" \
        verify_many "$PWD/c/many"
    check_eq "$label: shared file is the same after a restart" \
        "$(cat shared.sha)" "$(sha "$PWD/c/shared")"
    tree_sums "$PWD/c/random" >random.sums.restarted
    check_ok "$label: random-ops tree is the same after a restart" \
        diff random.sums random.sums.restarted
    unmount_all
    check_stopped "$label: restarted server stops cleanly"
    check_image "$label: image checks clean at the end" \
        "${key_option[@]}" "$image"
    cd "$TMPDIR" || exit 1
}

make_image plain.img 32 4096
several_clients plain "$TMPDIR/plain.img"

cd "$TMPDIR" || exit 1
"$IMAGE_TOOL" format --key-file blockkey --size 32M encrypted.img 512 \
    >/dev/null || exit 1
several_clients encrypted "$TMPDIR/encrypted.img" \
    --blockkey-file "$TMPDIR/blockkey"

check_finish
