#!/usr/bin/env bash
# Serve a demo image with sshfsd in the foreground (`make run`).
#
# The first run creates, in DEMO_DIR, a client key pair id_ed25519 and a
# 32 MiB image disk.img holding the public key as /mirage.pub.  Later
# runs reuse both.  The server listens on 127.0.0.1 only; Ctrl-C
# (SIGINT) stops it.
#
# Environment (relative paths start at the current directory):
#   DEMO_DIR           where the key and the image live (default demo/ in
#                      the source tree)
#   SSHFSD_DEMO_PORT   TCP port (default 22022)
#   BUILD              the build tree with sshfsd and sshfsd-image
#                      (default build/ in the source tree)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
demo_dir=${DEMO_DIR:-$root/demo}
port=${SSHFSD_DEMO_PORT:-22022}
build=$(cd "${BUILD:-$root/build}" && pwd)

mkdir -p "$demo_dir"
demo_dir=$(cd "$demo_dir" && pwd)
key=$demo_dir/id_ed25519
image=$demo_dir/disk.img
new_key=0

if [ ! -f "$key" ]; then
    rm -f "$key.pub"
    ssh-keygen -q -t ed25519 -N '' -C sshfsd-demo -f "$key"
    new_key=1
fi
if [ ! -f "$image" ]; then
    truncate -s 32M "$image.tmp"
    "$build/sshfsd-image" format "$image.tmp" 4096 >/dev/null
    mv "$image.tmp" "$image"
    new_key=1
fi
# A key made after the image replaces the one the image holds.
if [ "$new_key" = 1 ]; then
    "$build/sshfsd-image" write "$image" /mirage.pub - <"$key.pub" >/dev/null
fi

known_hosts=$demo_dir/known_hosts
cat <<TEXT
Serving $image on 127.0.0.1 port $port as user mirage.
Connect from another terminal with:

  mkdir -p /tmp/sshfsd-demo
  sshfs mirage@127.0.0.1:/ /tmp/sshfsd-demo -p $port -o IdentityFile=$key -o UserKnownHostsFile=$known_hosts -o StrictHostKeyChecking=accept-new
  sftp -P $port -i $key -o UserKnownHostsFile=$known_hosts -o StrictHostKeyChecking=accept-new mirage@127.0.0.1

Unmount with: fusermount3 -u /tmp/sshfsd-demo
Press Ctrl-C to stop the server.

TEXT

exec "$build/sshfsd" --listen 127.0.0.1 --port "$port" -l info "$image"
