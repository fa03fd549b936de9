#!/usr/bin/env bash
# The walkthrough from the README, command by command, on a plain and on
# an encrypted image.  It makes a client key and a 32 MiB image that
# contains the public key as /username.pub.  sshfsd serves the image to
# that user over an sshfs mount, a tree is copied in, and everything is
# still there after the server restarts.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../ssh/ssh_lib.sh"

BLOCKKEY=1234567890ABCDEF1234567890ABCDEF
MOUNT=""

unmount() {
    if [ -n "$MOUNT" ] && mountpoint -q "$MOUNT"; then
        fusermount3 -u "$MOUNT" 2>/dev/null || fusermount3 -uz "$MOUNT"
    fi
}
trap 'unmount; kill_server' EXIT

# mount_image LABEL: mount / of the running server as username on $MOUNT.
mount_image() {
    if timeout 60 sshfs "username@127.0.0.1:/" "$MOUNT" -p "$PORT" \
        -o IdentityFile="$PWD/username" \
        -o StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null \
        -o IdentitiesOnly=yes,BatchMode=yes 2>sshfs.err; then
        check_pass "$1"
        return 0
    fi
    check_fail "$1" "sshfs failed" sshfs.err
    return 1
}

# make_tree DIR: a small tree with nested directories, an empty file and
# a binary file larger than one SFTP read.
make_tree() {
    mkdir -p "$1/docs/notes" "$1/empty-dir" "$1/bin"
    echo "first file" >"$1/readme.txt"
    printf 'line one\nline two\n' >"$1/docs/notes/a.txt"
    : >"$1/docs/empty.txt"
    head -c 300000 /dev/urandom >"$1/bin/random.bin"
}

# walkthrough LABEL IMAGE [SERVER_OPTION...]: serve IMAGE, mount it, copy
# a tree in, restart, mount again and check.
walkthrough() {
    local label=$1 image=$2 listing
    shift 2
    MOUNT=$PWD/mnt
    mkdir -p "$MOUNT"

    start_server server1.log --user username --seed 111213 "$@" \
        "$image" || return 1
    if mount_image "$label: sshfs mounts"; then
        # Every field but the modification time.
        listing=$(ls -l "$MOUNT" |
            awk 'NR > 1 { print $1, $2, $3, $4, $5, $NF }')
        check_eq "$label: ls -l shows the key file" \
            "-rw-r--r-- 1 $(id -un) $(id -gn) $(stat -c %s username.pub.stored) username.pub" \
            "$listing"
        check_eq "$label: cat shows the key" "$(cat username.pub)" \
            "$(cat "$MOUNT/username.pub")"
        check_ok "$label: cp -r copies a tree in" cp -r tree "$MOUNT/tree"
        check_ok "$label: copied tree matches" diff -r tree "$MOUNT/tree"
        check_ok "$label: unmounts" fusermount3 -u "$MOUNT"
    fi
    check_stopped "$label: server stops cleanly"

    start_server server2.log --user username --seed 111213 "$@" \
        "$image" || return 1
    if mount_image "$label: sshfs mounts after a restart"; then
        check_ok "$label: tree still there after a restart" \
            diff -r tree "$MOUNT/tree"
        check_eq "$label: key file still there after a restart" \
            "$(cat username.pub)" "$(cat "$MOUNT/username.pub")"
        check_ok "$label: unmounts again" fusermount3 -u "$MOUNT"
    fi
    check_stopped "$label: restarted server stops cleanly"
}

# The walkthrough's preparation, once per variant in its own directory.
prepare() {
    mkdir -p "$TMPDIR/$1" && cd "$TMPDIR/$1" || exit 1
    ssh-keygen -q -t ed25519 -C mirage_sshfs -f username -N '' || exit 1
    dd if=/dev/zero of=disk.img bs=1M count=32 status=none
    "$IMAGE_TOOL" format disk.img 512 >/dev/null || exit 1
    "$IMAGE_TOOL" write ./disk.img 512 /username.pub "$(cat username.pub)" \
        >/dev/null || exit 1
    # $(...) dropped the trailing newline: this is what the image holds.
    printf '%s' "$(cat username.pub)" >username.pub.stored
    make_tree tree
}

prepare plain
walkthrough plain disk.img
check_ok "plain: image check passes" "$IMAGE_TOOL" check disk.img

prepare encrypted
check_ok "encrypted: enc converts the image" "$IMAGE_TOOL" enc \
    --in=disk.img --out=encrypted.img --key=$BLOCKKEY
walkthrough encrypted encrypted.img --blockkey $BLOCKKEY
check_ok "encrypted: image check passes" "$IMAGE_TOOL" check \
    --key=$BLOCKKEY encrypted.img
check_fails "encrypted: image check fails without the key" \
    "$IMAGE_TOOL" check encrypted.img

check_finish
