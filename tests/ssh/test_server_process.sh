#!/usr/bin/env bash
# The sshfsd process: host keys from --seed, --host-key and the image,
# connection limits, the login grace time, bad version lines, signals,
# read-only and encrypted images, and command-line errors.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/ssh_lib.sh"

cd "$TMPDIR"
make_image disk.img 32
make_key id_ed25519 ed25519
KEY=$(cat id_ed25519.pub)

logged_fp() {
    sed -n 's/.*host key: 256 \(SHA256:[^ ]*\) (ED25519)$/\1/p' "$1"
}

# --seed: the same seed gives the same key on every start, another seed
# another key.
start_server seed1.log --seed 111213 --key "$KEY" disk.img || exit 1
stop_server
start_server seed2.log --seed 111213 --key "$KEY" disk.img || exit 1
scanned=$(ssh-keyscan -t ed25519 -p "$PORT" 127.0.0.1 2>/dev/null |
    ssh-keygen -lf - | awk '{ print $2 }')
stop_server
start_server seed3.log --seed 111214 --key "$KEY" disk.img || exit 1
stop_server
check_eq "same seed gives the same host key" "$(logged_fp seed1.log)" \
    "$(logged_fp seed2.log)"
check_eq "seeded host key is the one clients see" "$(logged_fp seed2.log)" \
    "$scanned"
check_ok "another seed gives another host key" \
    test "$(logged_fp seed1.log)" != "$(logged_fp seed3.log)"
# The derivation is documented (HKDF-SHA256), so the fingerprint for a
# given seed is fixed for all versions.
expected_seed_fp=$("$PYTHON" - <<'PY'
import base64, hashlib, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
prk = hmac.new(b"sshfsd host key", b"111213", hashlib.sha256).digest()
okm = hmac.new(prk, b"ssh-ed25519" + b"\x01", hashlib.sha256).digest()
pub = Ed25519PrivateKey.from_private_bytes(okm).public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
def s(b): return len(b).to_bytes(4, "big") + b
blob = s(b"ssh-ed25519") + s(pub)
digest = hashlib.sha256(blob).digest()
print("SHA256:" + base64.b64encode(digest).decode().rstrip("="))
PY
)
check_eq "seed derivation is HKDF-SHA256 as documented" \
    "$expected_seed_fp" "$(logged_fp seed1.log)"

# --host-key: an OpenSSH key file.
ssh-keygen -q -t ed25519 -N '' -f hostkey
start_server hostkey.log --host-key hostkey --key "$KEY" disk.img || exit 1
stop_server
check_eq "host key file is used" \
    "$(ssh-keygen -lf hostkey.pub | awk '{ print $2 }')" \
    "$(logged_fp hostkey.log)"
ssh-keygen -q -t ed25519 -N 'secret' -f hostkey_enc
check_fails "encrypted host key file is rejected" \
    "$SSHFSD" --listen 127.0.0.1 --port "$(pick_port)" \
    --host-key hostkey_enc disk.img
check_fails "seed and host key together are rejected" \
    "$SSHFSD" --seed x --host-key hostkey disk.img

# Neither: the key is generated once, stored in the image, and travels
# with a copy of it.
start_server image1.log --key "$KEY" disk.img || exit 1
stop_server
start_server image2.log --key "$KEY" disk.img || exit 1
stop_server
cp disk.img copy.img
start_server image3.log --key "$KEY" copy.img || exit 1
stop_server
check_ok "first start generates a host key" \
    grep -q "generated a new host key" image1.log
check_ok "second start does not" \
    bash -c '! grep -q "generated a new host key" image2.log'
check_eq "stored host key survives a restart" "$(logged_fp image1.log)" \
    "$(logged_fp image2.log)"
check_eq "stored host key travels with the image" "$(logged_fp image1.log)" \
    "$(logged_fp image3.log)"
check_eq "the host key is invisible to SFTP clients" "" \
    "$("$IMAGE_TOOL" ls disk.img /)"
check_ok "image stays consistent" "$IMAGE_TOOL" check disk.img

# Limits: --max-startups counts connections not logged in.
start_server limits.log --max-startups 2 --login-grace-time 2 \
    --key "$KEY" disk.img || exit 1
result=$("$PYTHON" - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(2):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.recv(100)
    socks.append(s)
time.sleep(0.2)
third = socket.create_connection(("127.0.0.1", port), 5)
third.settimeout(5)
print("third: " + ("closed" if third.recv(100) == b"" else "open"))
# The first two get the grace time of 2 seconds, then are closed.
for s in socks:
    s.settimeout(10)
    try:
        while s.recv(4096):
            pass
        print("closed")
    except socket.timeout:
        print("still open")
PY
)
check_eq "connection past --max-startups is dropped" \
    "third: closed closed closed" "$(echo $result)"
check_ok "drop is logged" wait_for_log "past MaxStartups"
check_ok "login grace timeout is logged" wait_for_log \
    "Timeout before authentication for 127.0.0.1"
stop_server

# Bad version lines: a long line and an SSH-1 client are cut off.
start_server version.log --key "$KEY" disk.img || exit 1
result=$("$PYTHON" - "$PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
for line in [b"x" * 300 + b"\r\n", b"SSH-1.5-old\r\n",
             b"GET / HTTP/1.0\r\n" * 600]:
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(10)
    banner = s.recv(100)
    s.sendall(line)
    rest = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            rest += d
    except (socket.timeout, ConnectionResetError):
        print("not closed")
        continue
    print("closed" if banner.startswith(b"SSH-2.0-sshfsd") else "bad banner")
PY
)
check_eq "invalid version lines close the connection" \
    "closed closed closed" "$(echo $result)"
check_ok "SSH-1 client is logged" wait_for_log \
    "Protocol major versions differ"
check_ok "garbage before the version is logged" wait_for_log \
    "banner exchange: Connection from 127.0.0.1"

# SIGTERM during a session: the client gets a DISCONNECT, the image is
# unmounted cleanly and the server exits 0.
printf 'put %s /held.bin\n' "$(pwd)/id_ed25519.pub" >batch
coproc SFTP { timeout 60 sftp -q -P "$PORT" -i id_ed25519 \
    "${SSH_OPTS[@]}" mirage@127.0.0.1 2>&1; }
sleep 1
check_ok "session is up before SIGTERM" wait_for_log \
    "Accepted subsystem request for sftp"
check_stopped "SIGTERM with a session open exits 0"
wait "$SFTP_PID" 2>/dev/null
check_ok "shutdown is logged" grep -q "Received signal 15; terminating." \
    version.log
check_ok "image is consistent after SIGTERM" "$IMAGE_TOOL" check disk.img

# --read-only: reads work, changes fail.
"$IMAGE_TOOL" write disk.img /hello.txt "hello" >/dev/null
start_server ro.log --read-only --key "$KEY" disk.img || exit 1
printf 'get /hello.txt hello.txt\n' >batch
check_ok "read-only image serves reads" run_sftp id_ed25519 batch
check_eq "read-only file content" "hello" "$(cat hello.txt)"
printf 'put hello.txt /new.txt\n' >batch
check_fails "read-only image rejects writes" run_sftp id_ed25519 batch
stop_server

# Encrypted images: --blockkey, --blockkey-file and $SSHFSD_BLOCKKEY.
blockkey=1234567890ABCDEF1234567890ABCDEF
truncate -s 8M plain.img
"$IMAGE_TOOL" format plain.img 512 >/dev/null
"$IMAGE_TOOL" write plain.img /secret.txt "encrypted hello" >/dev/null
"$IMAGE_TOOL" encrypt --in plain.img --out enc.img --key "$blockkey" \
    >/dev/null
for how in flag file env; do
    args=(--key "$KEY")
    case $how in
    flag) args+=(--blockkey "$blockkey") ;;
    file) echo "$blockkey" >key.hex; args+=(--blockkey-file key.hex) ;;
    env) export SSHFSD_BLOCKKEY=$blockkey ;;
    esac
    rm -f secret.txt
    if start_server "enc_$how.log" "${args[@]}" enc.img; then
        printf 'get /secret.txt secret.txt\n' >batch
        run_sftp id_ed25519 batch >/dev/null 2>&1
        check_eq "encrypted image with key from $how" "encrypted hello" \
            "$(cat secret.txt 2>/dev/null)"
        stop_server
    else
        check_fail "encrypted image with key from $how" "no server"
    fi
    unset SSHFSD_BLOCKKEY
done
"$SSHFSD" --listen 127.0.0.1 --port "$(pick_port)" enc.img >nokey.log 2>&1
check_contains "encrypted image without a key is explained" \
    "give its key with --blockkey" "$(cat nokey.log)"

# Command-line errors exit 2 with a message.
status=0
"$SSHFSD" --port 70000 disk.img >bad.log 2>&1 || status=$?
check_eq "invalid port exits 2" 2 "$status"
check_contains "invalid port is explained" "invalid value '70000' for --port" \
    "$(cat bad.log)"
status=0
"$SSHFSD" --key "ssh-ed25519 AAAAnotbase64" --listen 127.0.0.1 \
    --port "$(pick_port)" disk.img >bad.log 2>&1 || status=$?
check_eq "invalid --key exits 1" 1 "$status"
check_contains "invalid --key is explained" "invalid --key" "$(cat bad.log)"

check_finish
