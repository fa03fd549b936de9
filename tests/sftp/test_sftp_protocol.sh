#!/usr/bin/env bash
# The same raw SFTP requests (tests/sftp/sftp_probe.py) to OpenSSH's
# sftp-server on a plain directory and to sshfsd-sftp-server on an image:
# every reply must have the same outcome, status code included.  OpenSSH's
# server runs as an ordinary user, so that refused owner changes are
# compared too.  Run by tests/run.sh with BUILD and TMPDIR.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"

SERVER="$BUILD/sshfsd-sftp-server"
OPENSSH_SERVER=/usr/lib/openssh/sftp-server
PROBE="$ROOT/tests/sftp/sftp_probe.py"
WORK="$TMPDIR/sftp-protocol"
mkdir -p "$WORK"
cd "$WORK" || exit 1

if [ ! -x "$OPENSSH_SERVER" ] || ! command -v python3 >/dev/null; then
    check_fail "OpenSSH's sftp-server and python3 are installed" \
        "run scripts/deps.sh"
    check_finish
fi

# As root, OpenSSH's server runs as the unprivileged user 65534 (nobody);
# otherwise as the caller.
if [ "$(id -u)" -eq 0 ]; then
    OWNER_UID=65534
    OWNER_GID=65534
    RUN_AS=(setpriv --reuid="$OWNER_UID" --regid="$OWNER_GID"
        --clear-groups)
    OTHER_UID=0
else
    OWNER_UID=$(id -u)
    OWNER_GID=$(id -g)
    RUN_AS=()
    OTHER_UID=0
fi

# The reference directory must be reachable for that user: tests/run.sh
# makes TMPDIR private to the caller.
chmod 755 "$TMPDIR" "$WORK"
REFERENCE="$WORK/reference"
mkdir -p "$REFERENCE"
chown "$OWNER_UID:$OWNER_GID" "$REFERENCE"
chmod 755 "$REFERENCE"
"$BUILD/sshfsd-image" format disk.img 512 --size 4M >/dev/null

run_probe() {
    local out=$1 strip=$2
    shift 2
    timeout 120 python3 "$PROBE" --strip "$strip" \
        --owner "$OWNER_UID:$OWNER_GID" --other-uid "$OTHER_UID" -- "$@" \
        >"$out" 2>"$out.err"
}

if ! run_probe theirs.txt "$REFERENCE" "${RUN_AS[@]}" "$OPENSSH_SERVER" \
    -u 022 -d "$REFERENCE"; then
    check_fail "probe runs against OpenSSH's sftp-server" "probe failed" \
        theirs.txt.err
    check_finish
fi
if ! run_probe ours.txt "" "$SERVER" \
    ${SERVER_SANDBOX_ARGS[@]+"${SERVER_SANDBOX_ARGS[@]}"} -u 022 \
    --uid "$OWNER_UID" --gid "$OWNER_GID" disk.img; then
    check_fail "probe runs against sshfsd-sftp-server" "probe failed" \
        ours.txt.err
    check_finish
fi

check_eq "both servers answer every request" \
    "$(wc -l <theirs.txt)" "$(wc -l <ours.txt)"

# Directories report size 0 on the image and 4096 on the host.  Times
# that a request set are compared exactly, times the server stamped (from
# 2020 on) only as being there.
normalize() {
    sed -E 's/^(stat dir|stat mkdir default perm): ATTRS (.*)size=[0-9]+/\1: ATTRS \2size=-/;
            s/ (atime|mtime)=(1[6-9]|[2-9][0-9])[0-9]{8}/ \1=now/g' "$1"
}

while IFS= read -r theirs && IFS= read -r ours; do
    check_eq "${theirs%%:*}" "$theirs" "$ours"
done < <(paste -d '\n' <(normalize theirs.txt) <(normalize ours.txt))

check_finish
