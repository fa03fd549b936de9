/*
 * libFuzzer target: SSH messages as the server sees them after
 * decryption.  The session is put straight into the state the first
 * byte selects, without a key exchange, and the rest of the input is a
 * series of messages (u16 big-endian length, then the payload), each
 * framed as a packet in the clear:
 *   first byte even  logged in, with an "echo" subsystem for channels
 *                    (connection protocol, transport messages, re-keys)
 *   first byte odd   the userauth service accepted, not logged in
 *                    (publickey requests, key blobs, signatures)
 * Any crash, hang, leak or sanitizer report is a bug; disconnects are
 * the expected result for most inputs.
 *
 * Seeds: tests/fuzz/seeds/fuzz_ssh_messages/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssh/ssh_internal.h"

static struct ssh_hostkey *hostkey;
static struct ssh_pubkey *user_key;

static bool user_exists(void *ctx, const char *user)
{
    (void)ctx;
    return strcmp(user, "fuzz") == 0;
}

static bool key_allowed(void *ctx, const char *user,
                        const struct ssh_pubkey *key)
{
    (void)ctx;
    return strcmp(user, "fuzz") == 0 && ssh_pubkey_equal(key, user_key);
}

static void *echo_start(void *ctx, const char *user)
{
    (void)user;
    return ctx;
}

static int echo_process(void *app, struct bq *in, bool in_eof,
                        struct bq *out, size_t out_limit)
{
    size_t n = bq_len(in);

    (void)app;
    if (bq_len(out) >= out_limit)
        return SSH_APP_RUNNING;
    if (n > out_limit - bq_len(out))
        n = out_limit - bq_len(out);
    if (bq_append(out, bq_data(in), n))
        return SSH_ERR_NOMEM;
    bq_consume(in, n);
    return in_eof && bq_len(in) == 0 ? SSH_APP_DONE : SSH_APP_RUNNING;
}

static void echo_stop(void *app)
{
    (void)app;
}

static const struct ssh_subsystem echo = {
    "echo", echo_start, echo_process, echo_stop,
};

static void setup(void)
{
    static const uint8_t seed[SSH_ED25519_SEED_LEN] = { 1, 2, 3 };
    /* The fuzzer's user key: the public half of a fixed ed25519 key. */
    static const char line[] =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILYHWPvhqBanXexY3sYHgWIUlVhDjAyQ"
        "z8V0Sa9wYSXv fuzz";

    if (hostkey)
        return;
    if (ssh_hostkey_from_seed(&hostkey, seed) ||
        ssh_pubkey_parse_line(&user_key, line, NULL))
        abort();
}

/* Skip the key exchange: the state right after NEWKEYS, with null
 * ciphers, plus the authentication state the mode asks for. */
static void enter_state(struct ssh_session *s, bool logged_in)
{
    ssh_kex_free(s->kex);
    s->kex = NULL;
    bq_consume(&s->out, bq_len(&s->out));
    strcpy(s->client_version, "SSH-2.0-fuzz");
    s->phase = SSH_PHASE_PACKETS;
    s->kex_count = 1;
    s->session_id_len = 32;
    memset(s->session_id, 0x5a, 32);
    s->client_ext_info = true;
    s->userauth_started = true;
    if (logged_in) {
        s->authenticated = true;
        s->user = strdup("fuzz");
    }
}

static void feed_packet(struct ssh_session *s, const uint8_t *payload,
                        size_t len)
{
    size_t pad = 8 - (5 + len) % 8;
    size_t total;
    uint8_t *p;
    size_t room;

    if (pad < 4)
        pad += 8;
    total = 5 + len + pad;
    p = ssh_session_input_space(s, &room);
    if (!p || room < total)
        return;
    put_be32(p, (uint32_t)(total - 4));
    p[4] = (uint8_t)pad;
    memcpy(p + 5, payload, len);
    memset(p + 5 + len, 0, pad);
    ssh_session_input_commit(s, total);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ssh_server_config cfg = { 0 };
    struct ssh_session *s;
    uint64_t now = 1000;
    struct rd r;
    uint8_t mode;

    setup();
    cfg.hostkey = hostkey;
    cfg.rekey_bytes = 4096;
    cfg.log_level = SSH_LOG_ERROR;
    cfg.user_exists = user_exists;
    cfg.key_allowed = key_allowed;
    cfg.subsystems = &echo;
    cfg.subsystem_count = 1;

    rd_init(&r, data, size);
    if (rd_u8(&r, &mode))
        return 0;
    s = ssh_session_new(&cfg, NULL, "127.0.0.1", 1, now);
    if (!s)
        return 0;
    enter_state(s, (mode & 1) == 0);

    while (rd_left(&r) >= 2) {
        const uint8_t *payload, *len_be;
        size_t out_len;

        if (rd_bytes(&r, 2, &len_be))
            break;
        size_t len = (size_t)len_be[0] << 8 | len_be[1];
        if (len == 0 || rd_bytes(&r, len, &payload))
            break;
        feed_packet(s, payload, len);
        now += 1000;
        if (ssh_session_process(s, now) != SSH_OK)
            break;
        /* The client reads everything: the server's output is dropped. */
        ssh_session_output(s, &out_len);
        ssh_session_output_consume(s, out_len);
        if (ssh_session_process(s, now) != SSH_OK)
            break;
    }
    ssh_session_free(s);
    return 0;
}
