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

# New directories and files lose the umask's bits: 022 by default, as
# under sshd, or --umask.
printf 'mkdir dir-default\nput %s file-default\nls -l\n' \
    "$PWD/id_ed25519.pub" >umask.batch
start_server umask.log --seed umask --key "$KEY" disk.img || exit 1
run_sftp id_ed25519 umask.batch >umask.out 2>&1
check_stopped "server with the default umask stops cleanly"
check_eq "default umask: directory mode" "drwxr-xr-x" \
    "$(awk '$1 != "sftp>" && $NF == "dir-default" { print $1 }' umask.out)"
check_eq "default umask: file mode" "-rw-r--r--" \
    "$(awk '$1 != "sftp>" && $NF == "file-default" { print $1 }' umask.out)"
sed -i 's/default/077/g' umask.batch
start_server umask.log --seed umask --umask 077 --key "$KEY" disk.img ||
    exit 1
run_sftp id_ed25519 umask.batch >umask.out 2>&1
check_stopped "server with --umask 077 stops cleanly"
check_eq "--umask 077: directory mode" "drwx------" \
    "$(awk '$1 != "sftp>" && $NF == "dir-077" { print $1 }' umask.out)"
check_eq "--umask 077: file mode" "-rw-------" \
    "$(awk '$1 != "sftp>" && $NF == "file-077" { print $1 }' umask.out)"

# One program at a time writes an image: the others are turned away
# instead of erasing each other's changes.
start_server locked.log --seed lock --key "$KEY" disk.img || exit 1
status=0
"$IMAGE_TOOL" write disk.img /from-tool "x" >tool.log 2>&1 || status=$?
check_eq "the image tool cannot write a served image" 1 "$status"
check_contains "and says the image is in use" "disk.img is in use" \
    "$(cat tool.log)"
status=0
"$IMAGE_TOOL" ls disk.img >tool.log 2>&1 || status=$?
check_eq "nor read it while it is written" 1 "$status"
status=0
"$SSHFSD" --listen 127.0.0.1 --port "$(pick_port)" --seed lock disk.img \
    >second.log 2>&1 || status=$?
check_eq "a second server on the same image exits 1" 1 "$status"
check_contains "and says the image is in use" "disk.img is in use" \
    "$(cat second.log)"
status=0
"$BUILD/sshfsd-sftp-server" disk.img </dev/null >stdio.log 2>&1 ||
    status=$?
check_eq "so does the stdio server" 1 "$status"
check_stopped "the first server stops cleanly"
check_ok "after it stopped, the image tool writes" \
    "$IMAGE_TOOL" write disk.img /from-tool "x"

# Command-line errors exit 2 with a message.
status=0
"$SSHFSD" --port 70000 disk.img >bad.log 2>&1 || status=$?
check_eq "invalid port exits 2" 2 "$status"
check_contains "invalid port is explained" "invalid value '70000' for --port" \
    "$(cat bad.log)"
status=0
"$SSHFSD" --key "ssh-ed25519 AAAAnotbase64" --listen 127.0.0.1 \
    --port "$(pick_port)" disk.img >bad.log 2>&1 || status=$?
check_eq "invalid --key exits 2" 2 "$status"
check_contains "invalid --key is explained" "invalid --key" "$(cat bad.log)"

# Values checked before the image is touched: nothing is written to it.
before=$(sha256sum <disk.img)
for bad in "--listen localhost" "--blockkey 1234" \
    "--run-as no-such-user-sshfsd"; do
    status=0
    # shellcheck disable=SC2086
    "$SSHFSD" $bad --port "$(pick_port)" disk.img >bad.log 2>&1 ||
        status=$?
    check_eq "$bad exits 2" 2 "$status"
    check_eq "$bad leaves the image alone" "$before" \
        "$(sha256sum <disk.img)"
done
check_contains "an invalid --listen address is explained" \
    "invalid --listen address 'localhost'" \
    "$("$SSHFSD" --listen localhost disk.img 2>&1)"

check_finish
