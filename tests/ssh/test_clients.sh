#!/usr/bin/env bash
# Other SSH clients against sshfsd: sshfs (a FUSE mount), PuTTY's psftp,
# paramiko, rclone's sftp backend, lftp and curl.  Each logs in with a
# key and moves files both ways; the image is consistent afterwards.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/ssh_lib.sh"

cd "$TMPDIR"
make_image disk.img 128
make_key id_ed25519 ed25519
head -c 5000000 /dev/urandom >up.bin
start_server server.log --key "$(cat id_ed25519.pub)" disk.img || exit 1

# sshfs: file and directory operations through the kernel.
mnt=$TMPDIR/mnt
mkdir -p "$mnt"
cleanup_mount() {
    if mountpoint -q "$mnt"; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
    fi
}
trap 'cleanup_mount; kill_server' EXIT
if sshfs -p "$PORT" -o IdentityFile="$TMPDIR/id_ed25519" \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o IdentitiesOnly=yes -o BatchMode=yes mirage@127.0.0.1:/ "$mnt" \
    2>sshfs.err; then
    check_pass "sshfs mounts"
    cp up.bin "$mnt/up.bin"
    check_eq "sshfs file round trip" "$(sha up.bin)" "$(sha "$mnt/up.bin")"
    mkdir -p "$mnt/dir/sub"
    echo one >"$mnt/dir/sub/a.txt"
    echo two >>"$mnt/dir/sub/a.txt"
    check_eq "sshfs append" "one two" "$(echo $(cat "$mnt/dir/sub/a.txt"))"
    mv "$mnt/dir/sub/a.txt" "$mnt/dir/b.txt"
    check_eq "sshfs rename" "b.txt sub" "$(echo $(ls "$mnt/dir"))"
    truncate -s 3 "$mnt/dir/b.txt"
    check_eq "sshfs truncate" "one" "$(cat "$mnt/dir/b.txt")"
    chmod 600 "$mnt/dir/b.txt"
    check_eq "sshfs chmod" "600" "$(stat -c %a "$mnt/dir/b.txt")"
    touch -d "2020-01-02 03:04:05 UTC" "$mnt/dir/b.txt"
    check_eq "sshfs utimes" "2020-01-02 03:04:05" \
        "$(TZ=UTC stat -c %y "$mnt/dir/b.txt" | cut -c 1-19)"
    rm "$mnt/dir/b.txt"
    rmdir "$mnt/dir/sub" "$mnt/dir"
    check_eq "sshfs remove" "up.bin" "$(echo $(ls "$mnt"))"
    check_ok "sshfs statfs" df "$mnt"
    dd if=/dev/urandom of=seq.bin bs=1M count=40 status=none
    dd if=seq.bin of="$mnt/seq.bin" bs=1M status=none conv=fsync
    check_eq "sshfs 40 MiB sequential write and read" "$(sha seq.bin)" \
        "$(sha "$mnt/seq.bin")"
    check_ok "sshfs unmounts" fusermount3 -u "$mnt"
else
    check_fail "sshfs mounts" "sshfs failed" sshfs.err
fi

# psftp: with a PuTTY key and the host key fingerprint pinned.
puttygen id_ed25519 -O private -o key.ppk
fp=$(ssh-keyscan -t ed25519 -p "$PORT" 127.0.0.1 2>/dev/null |
    ssh-keygen -lf - | awk '{ print $2 }')
printf 'put up.bin /putty.bin\nget /putty.bin putty.down\n' >putty.batch
timeout 60 psftp -batch -P "$PORT" -i key.ppk -hostkey "$fp" \
    -b putty.batch mirage@127.0.0.1 >putty.out 2>&1
check_eq "psftp round trip" "$(sha up.bin)" "$(sha putty.down 2>/dev/null)"

# paramiko: upload, then read back with prefetch (pipelined reads).
check_eq "paramiko round trip" "$(sha up.bin)" \
    "$("${PARAMIKO[@]}" "$PORT" transfer mirage id_ed25519 up.bin \
        paramiko.bin 2>paramiko.err)"

# rclone: hash checks would run commands over SSH, which do not exist.
export RCLONE_CONFIG=$TMPDIR/rclone.conf
remote=":sftp,host=127.0.0.1,port=$PORT,user=mirage"
remote+=",key_file=$TMPDIR/id_ed25519,shell_type=none,disable_hashcheck=true:"
timeout 60 rclone -q copyto up.bin "$remote/rclone.bin" 2>rclone.err &&
    timeout 60 rclone -q copyto "$remote/rclone.bin" rclone.down \
        2>>rclone.err
check_eq "rclone round trip" "$(sha up.bin)" "$(sha rclone.down 2>/dev/null)"
check_contains "rclone lists the files" "rclone.bin" \
    "$(timeout 60 rclone lsf "$remote/" 2>&1)"

# lftp: its sftp runs OpenSSH's ssh underneath.
connect="ssh -a -x -i $TMPDIR/id_ed25519 -o IdentitiesOnly=yes"
connect+=" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
connect+=" -o BatchMode=yes"
timeout 60 lftp -c "set sftp:connect-program '$connect';
    open -u mirage,unused sftp://127.0.0.1:$PORT;
    put up.bin -o /lftp.bin; get /lftp.bin -o lftp.down" >lftp.out 2>&1
check_eq "lftp round trip" "$(sha up.bin)" "$(sha lftp.down 2>/dev/null)"

# curl (libssh2): no strict kex and no AEAD ciphers in Debian 12's
# libssh2, so this also covers aes-ctr with plain HMAC.
curl_opts=(-sS -k --key id_ed25519 --pubkey id_ed25519.pub -u mirage:)
timeout 60 curl "${curl_opts[@]}" -T up.bin \
    "sftp://127.0.0.1:$PORT/curl.bin" 2>curl.err &&
    timeout 60 curl "${curl_opts[@]}" -o curl.down \
        "sftp://127.0.0.1:$PORT/curl.bin" 2>>curl.err
check_eq "curl sftp:// round trip" "$(sha up.bin)" \
    "$(sha curl.down 2>/dev/null)"

check_stopped "server exits 0 after the clients"
check_ok "image is consistent after all clients" "$IMAGE_TOOL" check \
    disk.img
check_eq "files written by every client" \
    "curl.bin lftp.bin paramiko.bin putty.bin rclone.bin seq.bin up.bin" \
    "$(echo $("$IMAGE_TOOL" ls disk.img / | sort))"

check_finish
