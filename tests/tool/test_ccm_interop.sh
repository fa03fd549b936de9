#!/usr/bin/env bash
# Cross-check of the AES-CCM device against an independent implementation
# of mirage-block-ccm's sector format: ccm_crypt.py, built on the AESCCM
# primitive of Debian's python3-cryptography.  Each side decrypts what the
# other encrypted, with AES-128, -192 and -256 keys, and both decrypt the
# shared fixture made by the reference format's generator.  Run by
# tests/run.sh with BUILD and TMPDIR.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"

# Debian's interpreter, so that the package under test is Debian's
# python3-cryptography and not one from a user's own environment.
PYTHON=${PYTHON:-/usr/bin/python3}
CRYPT="$ROOT/tests/tool/ccm_crypt.py"
CONVERT="$TMPDIR/ccm_convert"
PLAIN="$ROOT/tests/fixtures/littlefs/small-512-v20.img"
BIG="$ROOT/tests/fixtures/littlefs/big-4096-v20.img"
FIXTURES="$ROOT/tests/fixtures/ccm"
FIXTURE_KEY=1234567890ABCDEF1234567890ABCDEF
WORK="$TMPDIR/ccm-interop"
mkdir -p "$WORK"

# Build the converter against the tree under test.  A sanitizer tree's
# archive needs the same sanitizer flags at link time (the Makefile's
# SANITIZE), which its __asan symbols reveal.
build_converter() {
    local cc=${CC:-cc} flags=()

    if nm "$BUILD/libsshfsd.a" 2>/dev/null | grep -q __asan_; then
        cc=${CLANG:-clang}
        flags=(-fsanitize=address,undefined -fno-omit-frame-pointer
            -fno-sanitize-recover=all)
    fi
    "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE \
        -I"$ROOT/src" "${flags[@]}" "$ROOT/tests/tool/ccm_convert.c" \
        "$BUILD/libsshfsd.a" -lcrypto -o "$CONVERT"
}

# run NAME CMD...: run CMD; sets STATUS and ERR (its standard error).
run() {
    STATUS=0
    "$@" >/dev/null 2>"$WORK/stderr" || STATUS=$?
    ERR=$(cat "$WORK/stderr")
}

if ! "$PYTHON" -c 'from cryptography.hazmat.primitives.ciphers.aead import AESCCM' \
    2>"$WORK/stderr"; then
    check_fail "python3-cryptography is importable" \
        "install it with scripts/deps.sh" "$WORK/stderr"
    check_finish
fi
if ! build_converter 2>"$WORK/stderr"; then
    check_fail "ccm_convert builds" "compiler failed" "$WORK/stderr"
    check_finish
fi
check_pass "ccm_convert builds"

# The independent implementation reads the shared fixture correctly.
run "$PYTHON" "$CRYPT" decrypt "$FIXTURE_KEY" "$FIXTURES/small-512.ccm.img" \
    "$WORK/fixture.plain"
check_eq "python decrypts the fixture" 0 "$STATUS"
check_ok "python's fixture plaintext is the plain image" \
    cmp "$WORK/fixture.plain" "$PLAIN"

run "$CONVERT" decrypt "$FIXTURE_KEY" "$FIXTURES/small-512.ccm.img" \
    "$WORK/fixture.ours"
check_eq "sshfsd decrypts the fixture" 0 "$STATUS"
check_ok "sshfsd's fixture plaintext is the plain image" \
    cmp "$WORK/fixture.ours" "$PLAIN"

# Both sides reject the tampered sector.
run "$PYTHON" "$CRYPT" decrypt "$FIXTURE_KEY" \
    "$FIXTURES/small-512.ccm.tampered.img" "$WORK/tampered.plain"
check_eq "python rejects the tampered fixture" 1 "$STATUS"
check_contains "python names sector 3" "sector 3 failed authentication" \
    "$ERR"
run "$CONVERT" decrypt "$FIXTURE_KEY" \
    "$FIXTURES/small-512.ccm.tampered.img" "$WORK/tampered.ours"
check_eq "sshfsd rejects the tampered fixture" 1 "$STATUS"
check_eq "sshfsd names sector 3" "ccm_convert: reading failed: sector 3 \
failed authentication: wrong key or modified image" "$ERR"

# Each side decrypts what the other encrypted, for every AES key size
# (BITS:KEY, one key with the optional "0x" prefix).
for entry in 128:000102030405060708090a0b0c0d0e0f \
    192:0x00112233445566778899AABBCCDDEEFF0011223344556677 \
    256:f0e1d2c3b4a5968778695a4b3c2d1e0f0f1e2d3c4b5a69788796a5b4c3d2e1f0; do
    bits=${entry%%:*}
    key=${entry#*:}

    for image in "$PLAIN" "$BIG"; do
        name="AES-$bits $(basename "$image" .img)"

        run "$CONVERT" encrypt "$key" "$image" "$WORK/ours.ccm"
        check_eq "$name: sshfsd encrypts" 0 "$STATUS"
        check_eq "$name: encrypted size is twice the plain size" \
            $(($(stat -c %s "$image") * 2)) "$(stat -c %s "$WORK/ours.ccm")"
        run "$PYTHON" "$CRYPT" decrypt "$key" "$WORK/ours.ccm" \
            "$WORK/ours.plain"
        check_eq "$name: python decrypts sshfsd's image" 0 "$STATUS"
        check_ok "$name: python's plaintext is the plain image" \
            cmp "$WORK/ours.plain" "$image"

        run "$PYTHON" "$CRYPT" encrypt "$key" "$image" "$WORK/python.ccm"
        check_eq "$name: python encrypts" 0 "$STATUS"
        run "$CONVERT" decrypt "$key" "$WORK/python.ccm" "$WORK/python.plain"
        check_eq "$name: sshfsd decrypts python's image" 0 "$STATUS"
        check_ok "$name: sshfsd's plaintext is the plain image" \
            cmp "$WORK/python.plain" "$image"
    done
done

# The wrong key fails at the first sector on both sides.
run "$CONVERT" decrypt 000102030405060708090a0b0c0d0e0f \
    "$FIXTURES/small-512.ccm.img" "$WORK/wrong.plain"
check_eq "sshfsd rejects the wrong key" 1 "$STATUS"
check_eq "sshfsd's wrong-key message" "ccm_convert: reading failed: sector \
0 failed authentication: wrong key or modified image" "$ERR"
run "$PYTHON" "$CRYPT" decrypt 000102030405060708090a0b0c0d0e0f \
    "$FIXTURES/small-512.ccm.img" "$WORK/wrong.plain"
check_eq "python rejects the wrong key" 1 "$STATUS"
check_contains "python names sector 0" "sector 0 failed authentication" "$ERR"

check_finish
