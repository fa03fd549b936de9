#!/usr/bin/env bash
# OpenSSH's sftp and ssh against sshfsd: every key exchange, cipher and
# MAC combination, every user key type, and re-keying in the middle of
# transfers, started by the client and by the server.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/ssh_lib.sh"

cd "$TMPDIR"
make_image disk.img 96
make_key id_ed25519 ed25519
head -c 3000000 /dev/urandom >up.bin

start_server server.log --key "$(cat id_ed25519.pub)" disk.img || exit 1

# The fingerprint in the log is the one clients see.
logged=$(sed -n 's/.*host key: 256 \(SHA256:[^ ]*\) (ED25519)$/\1/p' \
    server.log)
scanned=$(ssh-keyscan -t ed25519 -p "$PORT" 127.0.0.1 2>/dev/null |
    ssh-keygen -lf - | awk '{ print $2 }')
check_eq "logged host key fingerprint matches ssh-keyscan" "$scanned" \
    "$logged"

# One put and one get per combination; the file comes back unchanged.
sweep() {
    local kex=$1 cipher=$2 mac=$3 name
    name="sftp $kex $cipher ${mac:-implicit}"
    rm -f down.bin
    printf 'put up.bin /up.bin\nget /up.bin down.bin\nrm /up.bin\n' \
        >batch
    local opts=(-o KexAlgorithms="$kex" -o Ciphers="$cipher")
    [ -n "$mac" ] && opts+=(-o MACs="$mac")
    if run_sftp id_ed25519 batch "${opts[@]}" >out 2>&1 &&
        [ "$(sha down.bin)" = "$(sha up.bin)" ]; then
        check_pass "$name"
    else
        check_fail "$name" "transfer failed or changed the data" out
    fi
}

for kex in curve25519-sha256 curve25519-sha256@libssh.org; do
    for cipher in chacha20-poly1305@openssh.com aes128-gcm@openssh.com \
        aes256-gcm@openssh.com; do
        sweep "$kex" "$cipher" ""
    done
    for cipher in aes128-ctr aes256-ctr; do
        for mac in hmac-sha2-256-etm@openssh.com \
            hmac-sha2-512-etm@openssh.com hmac-sha2-256 hmac-sha2-512; do
            sweep "$kex" "$cipher" "$mac"
        done
    done
done

# ssh -s runs the subsystem: an SFTP INIT (version 3) gets a VERSION
# reply (type 2) carrying version 3.
for cipher in chacha20-poly1305@openssh.com aes256-gcm@openssh.com \
    aes128-ctr; do
    reply=$(printf '\000\000\000\005\001\000\000\000\003' |
        timeout 30 ssh -s -p "$PORT" -i id_ed25519 "${SSH_OPTS[@]}" \
            -c "$cipher" mirage@127.0.0.1 sftp 2>/dev/null |
        head -c 9 | xxd -p | cut -c 9-18)
    check_eq "ssh -s sftp answers INIT with VERSION 3 ($cipher)" \
        "0200000003" "$reply"
done

# Requests larger than the channel's maximum packet (here 200000-byte
# reads and writes) arrive split over several CHANNEL_DATA messages.
rm -f down.bin
printf 'put up.bin /large.bin\nget /large.bin down.bin\n' >batch
check_ok "sftp with 200000-byte requests" run_sftp id_ed25519 batch \
    -B 200000 -R 16
check_eq "large requests keep the data" "$(sha up.bin)" "$(sha down.bin)"

# ServerAliveInterval: keepalive@openssh.com requests want a reply; two
# unanswered ones would make ssh give up within 3 seconds.
status=0
(sleep 4; printf '') | timeout 30 ssh -s -p "$PORT" -i id_ed25519 \
    "${SSH_OPTS[@]}" -o ServerAliveInterval=1 -o ServerAliveCountMax=2 \
    mirage@127.0.0.1 sftp >/dev/null 2>alive.err || status=$?
check_eq "keepalives are answered for 4 seconds" 0 "$status"

# An algorithm the server lacks ends the connection with an error.
# The client's message depends on whether it saw the server's DISCONNECT
# first; both say "no matching".
check_rejected "cipher aes128-cbc is rejected" "no matching" \
    timeout 30 ssh -o LogLevel=INFO -p "$PORT" -i id_ed25519 "${SSH_OPTS[@]}" \
        -o Ciphers=aes128-cbc mirage@127.0.0.1 true
check_rejected "kex diffie-hellman-group14-sha256 is rejected" \
    "no matching" \
    timeout 30 ssh -o LogLevel=INFO -p "$PORT" -i id_ed25519 "${SSH_OPTS[@]}" \
        -o KexAlgorithms=diffie-hellman-group14-sha256 mirage@127.0.0.1 true
check_rejected "MAC hmac-sha1 is rejected" "no matching" \
    timeout 30 ssh -o LogLevel=INFO -p "$PORT" -i id_ed25519 "${SSH_OPTS[@]}" \
        -o Ciphers=aes128-ctr -o MACs=hmac-sha1 mirage@127.0.0.1 true
check_stopped "server exits 0 on SIGTERM"

# User key types: each key logs in as the --key user and transfers.
key_type() {
    local name=$1 type=$2 bits=$3 alg=${4:-}
    make_key "key_$name" "$type" "$bits"
    start_server "server_$name.log" --key "$(cat "key_$name.pub")" \
        disk.img || { check_fail "login with $name key" "no server"; return; }
    rm -f down.bin
    printf 'put up.bin /k.bin\nget /k.bin down.bin\n' >batch
    local opts=()
    [ -n "$alg" ] && opts=(-o PubkeyAcceptedAlgorithms="$alg")
    if run_sftp "key_$name" batch "${opts[@]}" >out 2>&1 &&
        [ "$(sha down.bin)" = "$(sha up.bin)" ]; then
        check_pass "login with $name key"
    else
        check_fail "login with $name key" "sftp failed" out
    fi
    label=$(ssh-keygen -lf "key_$name.pub" | awk '{ print $2 }')
    check_contains "log names the $name key" \
        "Accepted publickey for mirage from 127.0.0.1 port" \
        "$(grep -F "$label" "server_$name.log")"
    stop_server
}

key_type ecdsa256 ecdsa 256
key_type ecdsa384 ecdsa 384
key_type ecdsa521 ecdsa 521
key_type rsa-sha2-256 rsa 2048 rsa-sha2-256
key_type rsa-sha2-512 rsa 3072 rsa-sha2-512

# Re-keying started by the client (OpenSSH's RekeyLimit) every 64 MiB
# during 1 GiB each way, then by the server every 16 MiB during 256 MiB
# each way: the data arrives intact and the debug log counts the key
# exchanges.  Each run uses one side's limit only, because every key
# exchange restarts both sides' byte counts.
rekey_run() {
    local name=$1 size_mb=$2 cipher=$3
    shift 3
    head -c $((size_mb * 1024 * 1024)) /dev/urandom >big.bin
    rm -f big.down
    printf 'put big.bin /big.bin\nget /big.bin big.down\nrm /big.bin\n' \
        >batch
    if run_sftp id_ed25519 batch -o Ciphers="$cipher" "$@" >out 2>&1 &&
        [ "$(sha big.down)" = "$(sha big.bin)" ]; then
        check_pass "$name"
    else
        check_fail "$name" "transfer failed or changed the data" out
    fi
    rm -f big.bin big.down
}

make_image big.img 1200
start_server rekey_client.log -l debug --key "$(cat id_ed25519.pub)" \
    big.img || exit 1
rekey_run "1 GiB both ways with client re-keys every 64 MiB" 1024 \
    chacha20-poly1305@openssh.com -o RekeyLimit=64M
count=$(grep -c "started by the client" rekey_client.log)
# 2 GiB moved: 32 re-keys, less a few for the counters' slack.
check_ok "client started at least 28 re-keys ($count)" test "$count" -ge 28
check_stopped "server exits 0 after client re-keys"

start_server rekey_server.log -l debug --rekey-limit 16M \
    --key "$(cat id_ed25519.pub)" big.img || exit 1
rekey_run "256 MiB both ways with server re-keys every 16 MiB (chacha)" \
    256 chacha20-poly1305@openssh.com
rekey_run "256 MiB both ways with server re-keys every 16 MiB (ctr)" \
    256 aes128-ctr -o MACs=hmac-sha2-256
count=$(grep -c "started by the server" rekey_server.log)
# 1 GiB moved: 64 re-keys, less a few for the counters' slack.
check_ok "server started at least 56 re-keys ($count)" test "$count" -ge 56
check_stopped "server exits 0 after server re-keys"

check_finish
