#!/usr/bin/env bash
# Storage engine benchmark: builds bench/bench_lfs.c against the release
# library and runs it on a 256 MiB image with 4096-byte blocks in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s lib
out=${TMPDIR:-/tmp}/sshfsd-bench-lfs
mkdir -p "$out"
cc -std=gnu11 -O2 -Isrc -o "$out/bench_lfs" bench/bench_lfs.c \
    build/libsshfsd.a -lcrypto
echo "== littlefs engine ($(nproc) cores, image in ${TMPDIR:-/tmp})"
"$out/bench_lfs" "$out/bench.img"
rm -f "$out/bench.img"
