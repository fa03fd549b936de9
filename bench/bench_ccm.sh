#!/usr/bin/env bash
# Throughput of the AES-CCM encrypted device next to OpenSSL's own AES-CCM
# figure on the same machine in the same run.
#
# Builds bench/bench_ccm.c against $BUILD/libsshfsd.a (make bench sets
# BUILD), runs it on a filesystem of BENCH_CCM_MIB MiB (default 256, so
# the encrypted image file is twice that) in 4096-byte blocks under
# ${TMPDIR:-/tmp}, and runs `openssl speed -evp aes-128-ccm` on 1 KiB
# buffers.  Prints every figure in MB/s (10^6 bytes of plaintext per
# second) and its ratio to OpenSSL's.
#
# NOTE: one mirage-block-ccm sector runs AES over 512 bytes of plaintext
# and 488 bytes of associated data, while openssl speed's 1 KiB buffer is
# all plaintext, so the encrypted device cannot reach more than about
# half of OpenSSL's figure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SIZE_MIB=${BENCH_CCM_MIB:-256}
SPEED_SECONDS=${BENCH_CCM_SPEED_SECONDS:-3}

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_ccm.XXXXXX")
trap 'rm -rf "$work"' EXIT

"${CC:-cc}" -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE \
    -I"$ROOT/src" "$ROOT/bench/bench_ccm.c" "$BUILD/libsshfsd.a" -lcrypto \
    -o "$work/bench_ccm"

# openssl speed prints "AES-128-CCM <n>k" with n in 1000s of bytes/s.
openssl_mbs=$(openssl speed -evp aes-128-ccm -bytes 1024 \
    -seconds "$SPEED_SECONDS" 2>/dev/null |
    awk '$1 == "AES-128-CCM" { sub(/k$/, "", $2); printf "%.1f", $2 / 1000 }')
if [ -z "$openssl_mbs" ]; then
    echo "bench_ccm.sh: could not read the openssl speed figure" >&2
    exit 1
fi

echo "AES-CCM device, ${SIZE_MIB} MiB of plaintext, 4096-byte blocks," \
    "page cache (no fdatasync)"
printf '%-28s %10s %8s\n' "path" "MB/s" "/openssl"
printf '%-28s %10s %8s\n' "openssl_aes-128-ccm_1KiB" "$openssl_mbs" "1.00"
"$work/bench_ccm" "$work" "$SIZE_MIB" |
    awk -v base="$openssl_mbs" \
        '{ printf "%-28s %10.1f %8.2f\n", $1, $2, $2 / base }'
