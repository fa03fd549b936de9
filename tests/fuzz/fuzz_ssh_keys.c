/*
 * libFuzzer target: key parsing.  The input is tried as an OpenSSH
 * public-key line, as a key blob in the SSH wire encoding (and, when it
 * parses, as the key of a signature check over the input itself), and
 * as the contents of an OpenSSH private key file, both raw and wrapped
 * in the armor lines around its base64 encoding.  Errors are the
 * expected result; crashes, leaks and sanitizer reports are bugs.
 *
 * Seeds: tests/fuzz/seeds/fuzz_ssh_keys/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssh/ssh_internal.h"

static void try_line(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    struct ssh_pubkey *key = NULL;
    char *comment = NULL;

    if (!line)
        return;
    memcpy(line, data, size);
    line[size] = '\0';
    if (ssh_pubkey_parse_line(&key, line, &comment) == SSH_OK) {
        ssh_pubkey_free(key);
        free(comment);
    }
    free(line);
}

static void try_blob(const uint8_t *data, size_t size)
{
    static const char *const algs[] = {
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521", "rsa-sha2-256", "rsa-sha2-512", "ssh-rsa",
    };
    struct ssh_pubkey *key = NULL;
    char fp[SSH_FINGERPRINT_MAX];

    if (ssh_pubkey_from_blob(&key, data, size) != SSH_OK)
        return;
    ssh_fingerprint(data, size, fp);
    (void)ssh_pubkey_bits(key);
    /* The input is no valid signature, but every parser runs. */
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        (void)ssh_pubkey_verify(key, algs[i], data, size, data, size);
    ssh_pubkey_free(key);
}

static void try_private(const uint8_t *data, size_t size)
{
    static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
    static const char end[] = "\n-----END OPENSSH PRIVATE KEY-----\n";
    struct ssh_hostkey *host = NULL;
    struct wbuf text, b64;

    if (ssh_hostkey_parse_openssh(&host, (const char *)data, size) ==
        SSH_OK)
        ssh_hostkey_free(host);

    wb_init(&text, 0);
    wb_init(&b64, 0);
    if (size > 0 && ssh_base64_encode(data, size, &b64, true) == SSH_OK &&
        wb_bytes(&text, begin, strlen(begin)) == 0 &&
        wb_bytes(&text, b64.data, b64.len) == 0 &&
        wb_bytes(&text, end, strlen(end)) == 0 &&
        ssh_hostkey_parse_openssh(&host, (const char *)text.data,
                                  text.len) == SSH_OK)
        ssh_hostkey_free(host);
    wb_free(&text);
    wb_free(&b64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    try_line(data, size);
    try_blob(data, size);
    try_private(data, size);
    return 0;
}
