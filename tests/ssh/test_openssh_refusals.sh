#!/usr/bin/env bash
# What sshfsd refuses, checked with real clients: wrong keys, unknown
# users, passwords, keyboard-interactive, SHA-1 RSA signatures, too many
# attempts, commands, shells and forwarding; and the log lines sshd
# would write for them.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/ssh_lib.sh"

cd "$TMPDIR"
make_image disk.img 32
make_key id_ed25519 ed25519
make_key other ed25519
make_key rsa rsa 2048
fp_other=$(ssh-keygen -lf other.pub | awk '{ print $2 }')

start_server server.log --key "$(cat id_ed25519.pub)" disk.img || exit 1
ssh_cmd=(timeout 30 ssh -o LogLevel=INFO -p "$PORT" "${SSH_OPTS[@]}")

check_rejected "wrong key is rejected" "Permission denied (publickey)" \
    "${ssh_cmd[@]}" -i other -s mirage@127.0.0.1 sftp
check_ok "wrong key is logged as sshd does" wait_for_log \
    "Failed publickey for mirage from 127.0.0.1 port"
check_contains "failed key is logged with its fingerprint" \
    "ssh2: ED25519 $fp_other" "$(grep 'Failed publickey for mirage' \
        server.log)"

check_rejected "unknown user is rejected" "Permission denied (publickey)" \
    "${ssh_cmd[@]}" -i id_ed25519 -s bob@127.0.0.1 sftp
check_ok "unknown user is logged as invalid" wait_for_log \
    "Invalid user bob from 127.0.0.1 port"
check_ok "unknown user's key is logged as failed" wait_for_log \
    "Failed publickey for invalid user bob from 127.0.0.1 port"

check_eq "none lists only publickey" "rejected; allowed: publickey" \
    "$("${PARAMIKO[@]}" "$PORT" none mirage 2>/dev/null)"
check_eq "password is rejected" "rejected; allowed: publickey" \
    "$("${PARAMIKO[@]}" "$PORT" password mirage 2>/dev/null)"
check_ok "password attempt is logged" wait_for_log \
    "Failed password for mirage from 127.0.0.1"
check_eq "keyboard-interactive is rejected" "rejected; allowed: publickey" \
    "$("${PARAMIKO[@]}" "$PORT" interactive mirage 2>/dev/null)"
check_ok "keyboard-interactive attempt is logged" wait_for_log \
    "Failed keyboard-interactive for mirage from 127.0.0.1"

# Seven keys offered, none of them right: the sixth failure ends the
# connection.
many=()
for i in 1 2 3 4 5 6 7; do
    make_key "k$i" ed25519
    many+=(-i "k$i")
done
check_rejected "seventh key is never tried" \
    "Too many authentication failures" \
    "${ssh_cmd[@]}" "${many[@]}" -s mirage@127.0.0.1 sftp
check_ok "attempts are logged as exceeded" wait_for_log \
    "maximum authentication attempts exceeded for mirage"
check_eq "exactly six failed attempts logged" 6 \
    "$(grep -c 'Failed publickey for mirage from .* ssh2: ED25519' \
        server.log | awk '{ print $1 - 1 }')"

# After logging in: no commands, shells or forwarding.
check_rejected "ssh host id is refused" "exec request failed" \
    "${ssh_cmd[@]}" -i id_ed25519 mirage@127.0.0.1 id
check_ok "exec refusal is logged" wait_for_log \
    "rejected channel request exec from user mirage"
check_rejected "shell is refused" "shell request failed" \
    "${ssh_cmd[@]}" -i id_ed25519 -T mirage@127.0.0.1
check_rejected "subsystem other than sftp is refused" \
    "subsystem request failed" \
    "${ssh_cmd[@]}" -i id_ed25519 -s mirage@127.0.0.1 netconf
check_rejected "remote forwarding is refused" \
    "remote port forwarding failed" \
    "${ssh_cmd[@]}" -i id_ed25519 -N -o ExitOnForwardFailure=yes \
        -R "127.0.0.1:$(pick_port):127.0.0.1:9" mirage@127.0.0.1

# ssh -N -L: the local side listens, but the server refuses every
# direct-tcpip channel, so a connection through it closes at once.
fwd_port=$(pick_port)
timeout 60 ssh -p "$PORT" "${SSH_OPTS[@]}" -i id_ed25519 -N \
    -L "127.0.0.1:$fwd_port:127.0.0.1:$PORT" mirage@127.0.0.1 \
    >fwd.out 2>&1 &
fwd_pid=$!
got=$("$PYTHON" - "$fwd_port" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
        break
    except OSError:
        time.sleep(0.1)
else:
    print("no listener")
    sys.exit(0)
s.settimeout(10)
data = s.recv(100)
print("closed" if data == b"" else "data: %r" % data[:20])
PY
)
kill "$fwd_pid" 2>/dev/null
wait "$fwd_pid" 2>/dev/null
check_eq "ssh -N -L forwarded connection is closed" closed "$got"
check_ok "direct-tcpip refusal is logged" wait_for_log \
    "rejected channel of type direct-tcpip"
check_stopped "server exits 0 after the refusals"

# An RSA key allowed for the user still fails with ssh-rsa (SHA-1)
# signatures, and works with rsa-sha2-256.
start_server rsa.log --key "$(cat rsa.pub)" disk.img || exit 1
check_eq "ssh-rsa (SHA-1) signature is rejected" "rejected" \
    "$("${PARAMIKO[@]}" "$PORT" rsa-sha1 mirage rsa 2>/dev/null)"
check_ok "ssh-rsa refusal is logged" wait_for_log \
    "signature algorithm ssh-rsa is not accepted"
printf 'ls /\n' >batch
check_ok "the same key logs in with rsa-sha2-256" run_sftp rsa batch \
    -o PubkeyAcceptedAlgorithms=rsa-sha2-256
check_stopped "server exits 0 after the RSA checks"

check_finish
