#!/usr/bin/env python3
"""Encrypt or decrypt a whole image in mirage-block-ccm's sector format.

An implementation independent of sshfsd's C code, for cross-checks: it
uses the AESCCM primitive of the Python cryptography package (Debian's
python3-cryptography) and nothing from this repository.

Logical 512-byte sector n is stored in the 1024 bytes at offset 1024 * n:
AES-CCM ciphertext (512) | tag (16) | nonce (8) | associated data (488).
The nonce and the associated data are random on every write.

Usage: ccm_crypt.py encrypt|decrypt KEY_HEX INPUT OUTPUT
Exits 1 with a message naming the sector when a sector fails to decrypt.
"""
import os
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

SECTOR = 512
PAIR = 1024
TAG = 16
NONCE = 8
ADATA = 488


def parse_key(text):
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    key = bytes.fromhex(text)
    if len(key) not in (16, 24, 32):
        raise ValueError("key must be 16, 24 or 32 bytes, got %d" % len(key))
    return key


def encrypt(aead, plain):
    if len(plain) % SECTOR != 0:
        raise ValueError("plain image size %d is not a multiple of %d"
                         % (len(plain), SECTOR))
    out = bytearray()
    for start in range(0, len(plain), SECTOR):
        fresh = os.urandom(NONCE + ADATA)
        nonce, adata = fresh[:NONCE], fresh[NONCE:]
        sealed = aead.encrypt(nonce, plain[start:start + SECTOR], adata)
        out += sealed + fresh
    return bytes(out)


def decrypt(aead, image):
    if len(image) % PAIR != 0:
        raise ValueError("encrypted image size %d is not a multiple of %d"
                         % (len(image), PAIR))
    out = bytearray()
    for sector, start in enumerate(range(0, len(image), PAIR)):
        pair = image[start:start + PAIR]
        sealed = pair[:SECTOR + TAG]
        nonce = pair[SECTOR + TAG:SECTOR + TAG + NONCE]
        adata = pair[SECTOR + TAG + NONCE:]
        try:
            out += aead.decrypt(nonce, sealed, adata)
        except InvalidTag:
            raise ValueError("sector %d failed authentication" % sector)
    return bytes(out)


def main(argv):
    if len(argv) != 5 or argv[1] not in ("encrypt", "decrypt"):
        sys.stderr.write(__doc__)
        return 2
    command, key_hex, in_path, out_path = argv[1:]
    try:
        aead = AESCCM(parse_key(key_hex), tag_length=TAG)
        with open(in_path, "rb") as f:
            data = f.read()
        result = encrypt(aead, data) if command == "encrypt" \
            else decrypt(aead, data)
    except ValueError as e:
        sys.stderr.write("ccm_crypt.py: %s: %s\n" % (in_path, e))
        return 1
    with open(out_path, "wb") as f:
        f.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
