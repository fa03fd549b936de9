#!/usr/bin/env bash
# Real SFTP clients against sshfsd-sftp-server in stdio mode: OpenSSH's
# sftp in batch mode, and an sshfs FUSE mount in passive mode, over a
# littlefs image.  Every scenario also runs against OpenSSH's own
# sftp-server on a plain directory, and the observable results of the two
# must agree wherever both support the operation.  Run by tests/run.sh
# with BUILD and TMPDIR.
set -u

# Listings are sorted byte by byte, whatever the caller's locale.
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"

SERVER="$BUILD/sshfsd-sftp-server"
IMAGE_TOOL="$BUILD/sshfsd-image"
OPENSSH_SERVER=/usr/lib/openssh/sftp-server
WORK="$TMPDIR/sftp-client"
mkdir -p "$WORK"
cd "$WORK" || exit 1

# Both servers clear the same permission bits from new files.
UMASK=022

# Seconds to wait for a mount to appear.
MOUNT_WAIT_TENTHS=100

for tool in sftp sshfs fusermount3 "$OPENSSH_SERVER"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        check_fail "client $tool is installed" "$tool not found: run scripts/deps.sh"
        check_finish
    fi
done

# The commands that serve the image, and the reference directory.
IMAGE="$WORK/disk.img"
REFERENCE="$WORK/reference"
OURS=("$SERVER" ${SERVER_SANDBOX_ARGS[@]+"${SERVER_SANDBOX_ARGS[@]}"}
    -u "$UMASK" "$IMAGE")
THEIRS=("$OPENSSH_SERVER" -u "$UMASK" -d "$REFERENCE")

"$IMAGE_TOOL" format "$IMAGE" 4096 --size 256M >/dev/null || {
    check_fail "format the test image" "sshfsd-image format failed"
    check_finish
}
mkdir -p "$REFERENCE"

MOUNTS=()
PIDS=()

cleanup() {
    local mnt pid
    for mnt in "${MOUNTS[@]}"; do
        if mountpoint -q "$mnt"; then
            fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
        fi
    done
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
}
trap cleanup EXIT

# ---- sftp -D in batch mode ----

# run_sftp NAME BATCH SERVER...: run the batch file against a server; the
# output goes to NAME.out, errors to NAME.err, the status to STATUS.
run_sftp() {
    local name=$1 batch=$2
    shift 2
    STATUS=0
    timeout 120 sftp -q -D "$*" -b "$batch" >"$name.out" 2>"$name.err" \
        </dev/null || STATUS=$?
}

# Local files to transfer: a 3 MiB file, its first MiB, and an empty one.
head -c $((3 * 1024 * 1024)) /dev/urandom >full.bin
head -c $((1024 * 1024)) full.bin >first-mib.bin
: >empty.bin
printf 'notes\n' >notes.txt

cat >upload.batch <<'EOF'
mkdir docs
mkdir gone
put notes.txt docs/notes.txt
put empty.bin docs/empty.bin
put first-mib.bin docs/big.bin
reput full.bin docs/big.bin
put notes.txt docs/old-name
rename docs/old-name docs/new-name
put notes.txt docs/doomed
rm docs/doomed
rmdir gone
chmod 600 docs/notes.txt
df -h
EOF

cat >download.batch <<'EOF'
get docs/big.bin got/big.bin
reget docs/big.bin got/partial.bin
get docs/empty.bin got/empty.bin
ls -l docs
EOF

for side in ours theirs; do
    if [ "$side" = ours ]; then
        server=("${OURS[@]}")
    else
        server=("${THEIRS[@]}")
    fi
    rm -rf got && mkdir got
    head -c 12345 full.bin >got/partial.bin

    run_sftp "$side-upload" upload.batch "${server[@]}"
    check_eq "sftp batch of uploads on $side exits 0" 0 "$STATUS"
    run_sftp "$side-download" download.batch "${server[@]}"
    check_eq "sftp batch of downloads on $side exits 0" 0 "$STATUS"

    check_ok "reput on $side completes the upload" cmp got/big.bin full.bin
    check_ok "reget on $side completes the download" cmp got/partial.bin full.bin
    check_ok "empty file from $side is empty" test ! -s got/empty.bin

    # Permissions, size and name of each entry; dates and owners differ.
    awk '$1 ~ /^[-d]/ { print $1, $5, $NF }' "$side-download.out" |
        sort >"$side.listing"
    grep -E '^ +Size +Used +Avail' "$side-upload.out" >"$side.df-header"
done

check_eq "ls -l shows the same entries on both" \
    "$(cat theirs.listing)" "$(cat ours.listing)"
check_eq "ls -l of docs on ours" \
    "-rw------- 6 docs/notes.txt
-rw-r--r-- 0 docs/empty.bin
-rw-r--r-- 3145728 docs/big.bin
-rw-r--r-- 6 docs/new-name" "$(cat ours.listing)"
check_eq "df -h prints the same header on both" \
    "$(cat theirs.df-header)" "$(cat ours.df-header)"
check_contains "df -h on ours shows the image size" "256MB" \
    "$(cat ours-upload.out)"

# symlink: littlefs has none, and the client says so cleanly.
cat >symlink.batch <<'EOF'
-symlink docs/notes.txt docs/link
ls docs/notes.txt
EOF
run_sftp ours-symlink symlink.batch "${OURS[@]}"
check_eq "sftp batch with a refused symlink exits 0" 0 "$STATUS"
check_contains "symlink is refused as unsupported" \
    'remote symlink file "docs/notes.txt" to "/docs/link": Operation unsupported' \
    "$(cat ours-symlink.err)"

# ---- sshfs in passive mode ----

# mount_sshfs MOUNTPOINT SERVER...: mount the server's files through
# sshfs -o passive, over two FIFOs.  Each side opens the FIFO the other
# one waits on first, so neither blocks.
mount_sshfs() {
    local mnt=$1 tries=0
    shift
    mkdir -p "$mnt"
    rm -f "$mnt.to-server" "$mnt.from-server"
    mkfifo "$mnt.to-server" "$mnt.from-server"
    "$@" <"$mnt.to-server" >"$mnt.from-server" 2>>"$mnt.server.log" &
    PIDS+=($!)
    SERVER_PID=$!
    sshfs -f -o passive localhost: "$mnt" >"$mnt.to-server" \
        <"$mnt.from-server" 2>>"$mnt.sshfs.log" &
    PIDS+=($!)
    SSHFS_PID=$!
    MOUNTS+=("$mnt")
    while ! mountpoint -q "$mnt" && [ "$tries" -lt "$MOUNT_WAIT_TENTHS" ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    mountpoint -q "$mnt"
}

# unmount_sshfs MOUNTPOINT: unmount and wait for sshfs and the server to
# exit; fails when the server exits with an error.
unmount_sshfs() {
    local mnt=$1 status=0
    fusermount3 -u "$mnt" || return 1
    wait "$SSHFS_PID" || status=1
    wait "$SERVER_PID" || status=1
    rm -f "$mnt.to-server" "$mnt.from-server"
    return "$status"
}

# A tree of 500 files in 25 directories, 0 to about 40 KiB each.
make_tree() {
    local root=$1 d f
    for d in $(seq 1 25); do
        mkdir -p "$root/dir$d/sub"
        for f in $(seq 1 20); do
            if [ "$f" -le 10 ]; then
                head -c $(((d * 37 + f * 1013) % 40000)) /dev/urandom \
                    >"$root/dir$d/file$f"
            else
                head -c $(((d + f) % 7 * 100)) /dev/urandom \
                    >"$root/dir$d/sub/file$f"
            fi
        done
    done
}

make_tree tree
head -c $((100 * 1024 * 1024)) /dev/urandom >hundred.bin

# Past date for touch -d, as seconds since the epoch (2001-02-03).
PAST=981173106

# exercise_mount SIDE MOUNTPOINT SERVER...: the file operations, with a
# remount in the middle; leaves SIDE.manifest describing the final tree.
exercise_mount() {
    local side=$1 mnt=$2
    shift 2

    if ! mount_sshfs "$mnt" "$@"; then
        check_fail "sshfs mounts $side" "no mount after 10 s" "$mnt.sshfs.log"
        return
    fi
    check_pass "sshfs mounts $side"

    check_ok "cp -r of 500 files onto $side" cp -r tree "$mnt/tree"
    check_ok "diff -r of the copied tree on $side" diff -r tree "$mnt/tree"

    printf 'first\n' >"$mnt/replacement"
    printf 'second\n' >"$mnt/target"
    check_ok "mv over an existing file on $side" \
        mv -f "$mnt/replacement" "$mnt/target"
    check_eq "moved file has the new contents on $side" "first" \
        "$(cat "$mnt/target")"
    check_ok "mv leaves no source behind on $side" \
        test ! -e "$mnt/replacement"

    head -c 100 tree/dir1/file1 >"$mnt/cut"
    check_ok "truncate to 10 bytes on $side" truncate -s 10 "$mnt/cut"
    check_ok "truncate to 20 bytes on $side" truncate -s 20 "$mnt/cut"
    check_eq "truncated file size on $side" 20 "$(stat -c %s "$mnt/cut")"
    check_eq "extension reads as zeros on $side" \
        "$(head -c 10 tree/dir1/file1 | od -An -tx1; head -c 10 /dev/zero | od -An -tx1)" \
        "$(od -An -tx1 -N10 "$mnt/cut"; od -An -tx1 -j10 "$mnt/cut")"

    printf 'one\n' >"$mnt/log"
    printf 'two\n' >>"$mnt/log"
    printf 'three\n' >>"$mnt/log"
    check_eq "append with >> on $side" "one
two
three" "$(cat "$mnt/log")"

    : >"$mnt/empty"
    check_ok "touch -d with a past date on $side" \
        touch -d "@$PAST" "$mnt/log"
    check_ok "cp of a 100 MiB file onto $side" cp hundred.bin "$mnt/hundred"

    if ! unmount_sshfs "$mnt"; then
        check_fail "unmount $side cleanly" "sshfs or the server failed" \
            "$mnt.server.log"
    fi
    if ! mount_sshfs "$mnt" "$@"; then
        check_fail "sshfs mounts $side again" "no mount after 10 s" \
            "$mnt.sshfs.log"
        return
    fi

    check_eq "past mtime survives a remount on $side" "$PAST" \
        "$(stat -c %Y "$mnt/log")"
    check_ok "100 MiB file reads back the same on $side" \
        cmp hundred.bin "$mnt/hundred"
    check_eq "0-byte file survives a remount on $side" "0" \
        "$(stat -c %s "$mnt/empty")"
    check_ok "tree survives a remount on $side" diff -r tree "$mnt/tree"
    check_ok "df of the mount on $side" df "$mnt"
    check_ok "df reports a size for $side" \
        test "$(df --output=size "$mnt" | tail -n 1)" -gt 0

    check_ok "rm -r of the tree on $side" rm -r "$mnt/tree"
    check_ok "rm -r leaves nothing on $side" test ! -e "$mnt/tree"
    rm -f "$mnt/hundred"

    (cd "$mnt" && find . -printf '%y %m %s %p\n' | sort) >"$side.manifest"
    if ! unmount_sshfs "$mnt"; then
        check_fail "unmount $side cleanly" "sshfs or the server failed" \
            "$mnt.server.log"
    fi
}

# Start both from the same empty state.
rm -rf "$REFERENCE" && mkdir -p "$REFERENCE"
"$IMAGE_TOOL" format "$IMAGE" 4096 --size 256M >/dev/null

exercise_mount ours "$WORK/mnt-ours" "${OURS[@]}"
exercise_mount theirs "$WORK/mnt-theirs" "${THEIRS[@]}"

# Directory sizes are the one thing a littlefs image reports differently
# (0 instead of the host's 4096), so they are left out.
for side in ours theirs; do
    awk '$1 == "d" { $3 = "-" } { print }' "$side.manifest" \
        >"$side.manifest.cmp"
done
check_eq "final trees agree between ours and OpenSSH's" \
    "$(cat theirs.manifest.cmp)" "$(cat ours.manifest.cmp)"
check_eq "final tree on ours" "d 755 - .
f 644 0 ./empty
f 644 14 ./log
f 644 20 ./cut
f 644 6 ./target" "$(cat ours.manifest.cmp)"

# An encrypted image: the key from a file, and a wrong key that the
# server explains instead of serving garbage.
KEY_HEX=000102030405060708090a0b0c0d0e0f
echo "$KEY_HEX" >enc.key
"$IMAGE_TOOL" format --key "$KEY_HEX" --size 8M enc.img 512 >/dev/null
"$IMAGE_TOOL" write --key "$KEY_HEX" enc.img /hello.txt "encrypted hello" \
    >/dev/null
rm -f hello.out
timeout 60 sftp -q -b - -D "$SERVER ${SERVER_SANDBOX_ARGS[*]} --blockkey-file $WORK/enc.key $WORK/enc.img" \
    >enc.out 2>&1 <<'BATCH'
get /hello.txt hello.out
BATCH
check_eq "encrypted image served with --blockkey-file" "encrypted hello" \
    "$(cat hello.out 2>/dev/null)"
status=0
"$SERVER" ${SERVER_SANDBOX_ARGS[@]+"${SERVER_SANDBOX_ARGS[@]}"} \
    --blockkey ffffffffffffffffffffffffffffffff enc.img </dev/null \
    >wrongkey.out 2>&1 || status=$?
check_eq "a wrong key stops the server" 1 "$status"
check_contains "and the error says why" "wrong key" "$(cat wrongkey.out)"

check_finish
