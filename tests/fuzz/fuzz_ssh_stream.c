/*
 * libFuzzer target: the raw bytes a client sends from the first byte of
 * the connection: version line, then packets in the clear up to and into
 * the key exchange (KEXINIT, KEX_ECDH_INIT, NEWKEYS).  The input is cut
 * into reads of the sizes its first bytes pick, so that packets also
 * arrive split.  Any crash, hang, leak or sanitizer report is a bug.
 *
 * Seeds: tests/fuzz/seeds/fuzz_ssh_stream/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssh/ssh.h"

static struct ssh_hostkey *hostkey;

static bool no_user(void *ctx, const char *user)
{
    (void)ctx;
    (void)user;
    return false;
}

static bool no_key(void *ctx, const char *user, const struct ssh_pubkey *key)
{
    (void)ctx;
    (void)user;
    (void)key;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t seed[SSH_ED25519_SEED_LEN] = { 7 };
    struct ssh_server_config cfg = { 0 };
    struct ssh_session *s;
    size_t chunk = 1, off;
    uint64_t now = 1000;

    if (!hostkey && ssh_hostkey_from_seed(&hostkey, seed))
        abort();
    cfg.hostkey = hostkey;
    cfg.log_level = SSH_LOG_ERROR;
    cfg.user_exists = no_user;
    cfg.key_allowed = no_key;

    if (size < 1)
        return 0;
    chunk = (size_t)data[0] % 64 + 1;
    s = ssh_session_new(&cfg, NULL, "127.0.0.1", 1, now);
    if (!s)
        return 0;
    for (off = 1; off < size;) {
        size_t room, n = size - off < chunk ? size - off : chunk;
        uint8_t *p = ssh_session_input_space(s, &room);
        size_t out_len;

        if (!p)
            break;
        if (n > room)
            n = room;
        memcpy(p, data + off, n);
        ssh_session_input_commit(s, n);
        off += n;
        if (ssh_session_process(s, ++now) != SSH_OK)
            break;
        ssh_session_output(s, &out_len);
        ssh_session_output_consume(s, out_len);
    }
    ssh_session_free(s);
    return 0;
}
