/*
 * The in-process SSH client of the unit tests (see ssh_test_client.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ssh_test_client.h"

#define STC_VERSION "SSH-2.0-stc_test"
#define X25519_LEN 32

/// The server under test ///

static bool stc_user_exists(void *ctx, const char *user)
{
    (void)ctx;
    return strcmp(user, STC_USER) == 0;
}

static bool stc_key_allowed(void *ctx, const char *user,
                            const struct ssh_pubkey *key)
{
    struct stc *c = ctx;

    return strcmp(user, STC_USER) == 0 && ssh_pubkey_equal(key, c->user_pub);
}

static void stc_log_line(void *ctx, void *conn_ctx, enum ssh_log_level level,
                         const char *line)
{
    struct stc *c = ctx;

    (void)conn_ctx;
    (void)level;
    wb_bytes(&c->log, line, strlen(line));
    wb_u8(&c->log, '\n');
}

static void *echo_start(void *ctx, const char *user)
{
    (void)user;
    return ctx;
}

/* Copies input to output, at most up to the output limit. */
static int echo_process(void *app, struct bq *in, bool in_eof,
                        struct bq *out, size_t out_limit)
{
    struct stc *c = app;
    size_t limit = c->echo_out_limit ? c->echo_out_limit : out_limit;
    size_t n = bq_len(in);

    if (bq_len(out) >= limit)
        n = 0;
    else if (n > limit - bq_len(out))
        n = limit - bq_len(out);
    if (n && bq_append(out, bq_data(in), n))
        return SSH_ERR_NOMEM;
    bq_consume(in, n);
    return in_eof && bq_len(in) == 0 ? SSH_APP_DONE : SSH_APP_RUNNING;
}

static void echo_stop(void *app)
{
    (void)app;
}

static void put_key_blob(struct wbuf *w, EVP_PKEY *key)
{
    uint8_t pub[32];
    size_t len = sizeof(pub);

    assert_int_equal(EVP_PKEY_get_raw_public_key(key, pub, &len), 1);
    wb_cstring(w, "ssh-ed25519");
    wb_string(w, pub, len);
}

EVP_PKEY *stc_new_key(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

    assert_non_null(key);
    return key;
}

static void collect(struct stc *c)
{
    size_t len;
    const uint8_t *out = ssh_session_output(c->server, &len);

    if (len) {
        assert_int_equal(bq_append(&c->from_server, out, len), 0);
        ssh_session_output_consume(c->server, len);
    }
}

void stc_init(struct stc *c, const struct stc_options *opts)
{
    struct wbuf blob;

    memset(c, 0, sizeof(*c));
    if (opts)
        c->opts = *opts;
    bq_init(&c->from_server, 0);
    wb_init(&c->held, 0);
    wb_init(&c->log, 0);
    assert_int_equal(ssh_hostkey_derive(&c->hostkey, "test host"), SSH_OK);
    c->user_key = stc_new_key();
    wb_init(&blob, 0);
    put_key_blob(&blob, c->user_key);
    assert_int_equal(ssh_pubkey_from_blob(&c->user_pub, blob.data,
                                          blob.len), SSH_OK);
    wb_free(&blob);

    c->echo = (struct ssh_subsystem){ "echo", echo_start, echo_process,
                                      echo_stop };
    c->cfg.hostkey = c->hostkey;
    c->cfg.rekey_bytes = c->opts.rekey_bytes;
    c->cfg.max_auth_tries = c->opts.max_auth_tries;
    c->cfg.log_level = SSH_LOG_TRACE;
    c->cfg.log = stc_log_line;
    c->cfg.user_exists = stc_user_exists;
    c->cfg.key_allowed = stc_key_allowed;
    c->cfg.subsystems = &c->echo;
    c->cfg.subsystem_count = 1;
    c->cfg.ctx = c;

    c->now = 1000;
    c->server = ssh_session_new(&c->cfg, c, "127.0.0.1", 5555, c->now);
    assert_non_null(c->server);
    collect(c);
}

void stc_free(struct stc *c)
{
    ssh_session_free(c->server);
    ssh_hostkey_free(c->hostkey);
    ssh_pubkey_free(c->user_pub);
    EVP_PKEY_free(c->user_key);
    ssh_crypt_free(c->rx);
    ssh_crypt_free(c->tx);
    bq_free(&c->from_server);
    wb_free(&c->held);
    wb_free(&c->log);
}

bool stc_log_has(const struct stc *c, const char *text)
{
    return c->log.len && memmem(c->log.data, c->log.len, text,
                                strlen(text)) != NULL;
}

/// Moving bytes ///

void stc_run(struct stc *c, uint64_t now)
{
    c->now = now;
    c->server_status = ssh_session_process(c->server, now);
    collect(c);
}

void stc_feed(struct stc *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        size_t room;
        uint8_t *space = ssh_session_input_space(c->server, &room);
        size_t n = len < room ? len : room;

        assert_non_null(space);
        memcpy(space, p, n);
        ssh_session_input_commit(c->server, n);
        p += n;
        len -= n;
        stc_run(c, c->now);
    }
}

void stc_send(struct stc *c, const void *payload, size_t len)
{
    size_t block = ssh_crypt_block(c->tx);
    size_t aligned = (ssh_crypt_aad(c->tx) ? 0 : 4) + 1 + len;
    size_t pad = block - aligned % block;
    size_t tag = ssh_crypt_tag_len(c->tx);
    uint8_t *pkt;

    if (pad < 4)
        pad += block;
    pkt = calloc(1, 5 + len + pad + tag);
    assert_non_null(pkt);
    put_be32(pkt, (uint32_t)(1 + len + pad));
    pkt[4] = (uint8_t)pad;
    memcpy(pkt + 5, payload, len);
    assert_int_equal(ssh_crypt_seal(c->tx, c->seq_out, pkt,
                                    1 + len + pad), SSH_OK);
    c->seq_out++;
    stc_feed(c, pkt, 5 + len + pad + tag);
    free(pkt);
}

void stc_send_wb(struct stc *c, struct wbuf *w)
{
    assert_false(w->failed);
    stc_send(c, w->data, w->len);
}

static int read_version(struct stc *c)
{
    const uint8_t *data = bq_data(&c->from_server);
    const uint8_t *nl = memchr(data, '\n', bq_len(&c->from_server));
    size_t len;

    if (!nl)
        return 0;
    len = (size_t)(nl - data);
    assert_true(len >= 9 && data[len - 1] == '\r');
    assert_memory_equal(data, "SSH-2.0-", 8);
    assert_true(len - 1 < sizeof(c->server_version));
    memcpy(c->server_version, data, len - 1);
    c->server_version[len - 1] = '\0';
    bq_consume(&c->from_server, len + 1);
    c->got_version = true;
    return 1;
}

static int pop_held(struct stc *c, struct wbuf *msg)
{
    uint32_t len;

    if (c->held_off >= c->held.len)
        return 0;
    len = get_be32(c->held.data + c->held_off);
    wb_reset(msg);
    wb_bytes(msg, c->held.data + c->held_off + 4, len);
    c->held_off += 4 + len;
    if (c->held_off == c->held.len) {
        wb_reset(&c->held);
        c->held_off = 0;
    }
    return 1;
}

int stc_recv(struct stc *c, struct wbuf *msg)
{
    uint8_t *p;
    uint32_t len;
    size_t total, pad;

    if (pop_held(c, msg))
        return 1;
    if (!c->got_version && !read_version(c))
        return 0;
    if (bq_len(&c->from_server) < ssh_crypt_first_len(c->rx))
        return 0;
    p = bq_data_mut(&c->from_server);
    if (ssh_crypt_peek_length(c->rx, c->seq_in, p, &len) != SSH_OK)
        return -1;
    total = 4 + (size_t)len + ssh_crypt_tag_len(c->rx);
    if (bq_len(&c->from_server) < total)
        return 0;
    if (ssh_crypt_open(c->rx, c->seq_in, p, len) != SSH_OK)
        return -1;
    pad = p[4];
    assert_true(pad >= 4 && pad + 1 < len);
    wb_reset(msg);
    wb_bytes(msg, p + 5, len - pad - 1);
    bq_consume(&c->from_server, total);
    c->seq_in++;
    return 1;
}

uint8_t stc_expect_any(struct stc *c, struct wbuf *msg)
{
    for (;;) {
        int r = stc_recv(c, msg);
        assert_int_equal(r, 1);
        assert_true(msg->len >= 1);
        if (msg->data[0] != SSH_MSG_IGNORE && msg->data[0] != SSH_MSG_DEBUG &&
            msg->data[0] != SSH_MSG_EXT_INFO)
            return msg->data[0];
    }
}

void stc_expect(struct stc *c, uint8_t type, struct wbuf *msg)
{
    assert_int_equal(stc_expect_any(c, msg), type);
}

/// Key exchange, client side ///

static void client_kexinit(struct stc *c, bool first, struct wbuf *i_c)
{
    uint8_t cookie[16];
    char kex[256];

    snprintf(kex, sizeof(kex), "curve25519-sha256%s%s",
             first && !c->opts.no_ext_info ? ",ext-info-c" : "",
             first && !c->opts.no_strict ? ",kex-strict-c-v00@openssh.com"
                                         : "");
    RAND_bytes(cookie, sizeof(cookie));
    wb_reset(i_c);
    wb_u8(i_c, SSH_MSG_KEXINIT);
    wb_bytes(i_c, cookie, sizeof(cookie));
    wb_cstring(i_c, kex);
    wb_cstring(i_c, "ssh-ed25519");
    for (int i = 0; i < 2; i++)
        wb_cstring(i_c, c->opts.cipher ? c->opts.cipher
                                       : "chacha20-poly1305@openssh.com");
    for (int i = 0; i < 2; i++)
        wb_cstring(i_c, c->opts.mac ? c->opts.mac
                                    : "hmac-sha2-256-etm@openssh.com");
    wb_cstring(i_c, "none");
    wb_cstring(i_c, "none");
    wb_cstring(i_c, "");
    wb_cstring(i_c, "");
    wb_bool(i_c, false);
    wb_u32(i_c, 0);
    stc_send_wb(c, i_c);
}

static void put_mpint_secret(struct wbuf *w, const uint8_t *k)
{
    size_t i = 0;

    while (i < X25519_LEN && k[i] == 0)
        i++;
    if (i < X25519_LEN && (k[i] & 0x80)) {
        wb_u32(w, (uint32_t)(X25519_LEN - i + 1));
        wb_u8(w, 0);
    } else {
        wb_u32(w, (uint32_t)(X25519_LEN - i));
    }
    wb_bytes(w, k + i, X25519_LEN - i);
}

static void derive(struct stc *c, const uint8_t *k, const uint8_t *h,
                   char letter, uint8_t *out, size_t need)
{
    struct wbuf w;
    uint8_t block[32];
    unsigned int len;
    size_t have = 0;

    wb_init(&w, 0);
    put_mpint_secret(&w, k);
    wb_bytes(&w, h, 32);
    size_t prefix = w.len;
    wb_u8(&w, (uint8_t)letter);
    wb_bytes(&w, c->session_id, 32);
    while (have < need) {
        assert_int_equal(EVP_Digest(w.data, w.len, block, &len,
                                    EVP_sha256(), NULL), 1);
        size_t n = need - have < 32 ? need - have : 32;
        memcpy(out + have, block, n);
        have += n;
        w.len = prefix;
        wb_bytes(&w, out, have);
    }
    wb_free(&w);
}

static struct ssh_crypt *make_dir_crypt(struct stc *c, const uint8_t *k,
                                        const uint8_t *h, char iv_letter,
                                        bool encrypt)
{
    const char *cn = c->opts.cipher ? c->opts.cipher
                                    : "chacha20-poly1305@openssh.com";
    const char *mn = c->opts.mac ? c->opts.mac
                                 : "hmac-sha2-256-etm@openssh.com";
    const struct ssh_cipher_alg *alg = ssh_cipher_find(cn, strlen(cn));
    const struct ssh_mac_alg *mac = ssh_mac_find(mn, strlen(mn));
    uint8_t iv[16], key[64], mac_key[64];
    struct ssh_crypt *crypt = NULL;

    assert_non_null(alg);
    derive(c, k, h, iv_letter, iv, ssh_cipher_iv_len(alg));
    derive(c, k, h, (char)(iv_letter + 2), key, ssh_cipher_key_len(alg));
    if (!ssh_cipher_is_aead(alg))
        derive(c, k, h, (char)(iv_letter + 4), mac_key,
               ssh_mac_key_len(mac));
    assert_int_equal(ssh_crypt_new(&crypt, alg, mac, encrypt, key, iv,
                                   mac_key), SSH_OK);
    return crypt;
}

/* ECDH_INIT, the reply and its signature, new keys both ways. */
static void client_ecdh(struct stc *c, const struct wbuf *i_c,
                        const struct wbuf *i_s)
{
    EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    uint8_t q_c[X25519_LEN], k[X25519_LEN], h[32];
    size_t q_len = X25519_LEN, k_len = X25519_LEN;
    const uint8_t *k_s, *q_s, *sig;
    uint32_t k_s_len, q_s_len, sig_len;
    struct ssh_pubkey *hostkey = NULL;
    struct wbuf msg, hash;
    unsigned int h_len;
    uint8_t type;
    struct rd r;

    assert_int_equal(EVP_PKEY_get_raw_public_key(eph, q_c, &q_len), 1);
    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_KEX_ECDH_INIT);
    wb_string(&msg, q_c, X25519_LEN);
    stc_send_wb(c, &msg);

    stc_expect(c, SSH_MSG_KEX_ECDH_REPLY, &msg);
    rd_init(&r, msg.data, msg.len);
    assert_int_equal(rd_u8(&r, &type), 0);
    assert_int_equal(rd_string(&r, &k_s, &k_s_len), 0);
    assert_int_equal(rd_string(&r, &q_s, &q_s_len), 0);
    assert_int_equal(rd_string(&r, &sig, &sig_len), 0);
    assert_int_equal(q_s_len, X25519_LEN);

    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, q_s,
                                                 X25519_LEN);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(eph, NULL);
    assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(ctx, peer), 1);
    assert_int_equal(EVP_PKEY_derive(ctx, k, &k_len), 1);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(eph);

    wb_init(&hash, 0);
    wb_cstring(&hash, STC_VERSION);
    wb_cstring(&hash, c->server_version);
    wb_string(&hash, i_c->data, i_c->len);
    wb_string(&hash, i_s->data, i_s->len);
    wb_string(&hash, k_s, k_s_len);
    wb_string(&hash, q_c, X25519_LEN);
    wb_string(&hash, q_s, X25519_LEN);
    put_mpint_secret(&hash, k);
    assert_int_equal(EVP_Digest(hash.data, hash.len, h, &h_len,
                                EVP_sha256(), NULL), 1);
    wb_free(&hash);

    /* The server proves its host key by signing the exchange hash. */
    assert_int_equal(ssh_pubkey_from_blob(&hostkey, k_s, k_s_len), SSH_OK);
    assert_int_equal(ssh_pubkey_verify(hostkey, "ssh-ed25519", sig, sig_len,
                                       h, 32), SSH_OK);
    ssh_pubkey_free(hostkey);
    if (!c->have_session_id) {
        memcpy(c->session_id, h, 32);
        c->have_session_id = true;
    }

    wb_reset(&msg);
    wb_u8(&msg, SSH_MSG_NEWKEYS);
    stc_send_wb(c, &msg);
    ssh_crypt_free(c->tx);
    c->tx = make_dir_crypt(c, k, h, 'A', true);
    if (c->strict)
        c->seq_out = 0;

    stc_expect(c, SSH_MSG_NEWKEYS, &msg);
    ssh_crypt_free(c->rx);
    c->rx = make_dir_crypt(c, k, h, 'B', false);
    if (c->strict)
        c->seq_in = 0;
    wb_free(&msg);
}

void stc_handshake(struct stc *c)
{
    struct wbuf i_c, i_s;

    wb_init(&i_c, 0);
    wb_init(&i_s, 0);
    c->strict = !c->opts.no_strict;
    stc_feed(c, STC_VERSION "\r\n", strlen(STC_VERSION) + 2);
    stc_expect(c, SSH_MSG_KEXINIT, &i_s);
    client_kexinit(c, true, &i_c);
    client_ecdh(c, &i_c, &i_s);
    wb_free(&i_c);
    wb_free(&i_s);
}

void stc_rekey(struct stc *c, const struct wbuf *server_kexinit)
{
    struct wbuf i_c, i_s, msg;

    wb_init(&i_c, 0);
    wb_init(&i_s, 0);
    wb_init(&msg, 0);
    client_kexinit(c, false, &i_c);
    if (server_kexinit) {
        wb_bytes(&i_s, server_kexinit->data, server_kexinit->len);
    } else {
        /* Messages sent before the server saw our KEXINIT are kept for
         * the test. */
        for (;;) {
            assert_int_equal(stc_recv(c, &msg), 1);
            if (msg.data[0] == SSH_MSG_KEXINIT)
                break;
            wb_u32(&c->held, (uint32_t)msg.len);
            wb_bytes(&c->held, msg.data, msg.len);
        }
        wb_bytes(&i_s, msg.data, msg.len);
    }
    client_ecdh(c, &i_c, &i_s);
    wb_free(&i_c);
    wb_free(&i_s);
    wb_free(&msg);
}

/// Authentication and channels ///

void stc_send_publickey(struct stc *c, const char *user, EVP_PKEY *key,
                        bool sign)
{
    struct wbuf msg, blob;

    wb_init(&msg, 0);
    wb_init(&blob, 0);
    put_key_blob(&blob, key);
    if (sign) {
        /* The signed data: session id, then the request up to the key. */
        wb_string(&msg, c->session_id, 32);
    }
    wb_u8(&msg, SSH_MSG_USERAUTH_REQUEST);
    wb_cstring(&msg, user);
    wb_cstring(&msg, "ssh-connection");
    wb_cstring(&msg, "publickey");
    wb_bool(&msg, sign);
    wb_cstring(&msg, "ssh-ed25519");
    wb_string(&msg, blob.data, blob.len);
    if (sign) {
        uint8_t sig[64];
        size_t sig_len = sizeof(sig);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        struct wbuf sig_blob;

        assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &sig_len, msg.data,
                                        msg.len), 1);
        EVP_MD_CTX_free(md);
        wb_init(&sig_blob, 0);
        wb_cstring(&sig_blob, "ssh-ed25519");
        wb_string(&sig_blob, sig, sig_len);
        wb_string(&msg, sig_blob.data, sig_blob.len);
        wb_free(&sig_blob);
        stc_send(c, msg.data + 36, msg.len - 36);
    } else {
        stc_send_wb(c, &msg);
    }
    wb_free(&msg);
    wb_free(&blob);
}

void stc_login(struct stc *c)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_SERVICE_REQUEST);
    wb_cstring(&msg, "ssh-userauth");
    stc_send_wb(c, &msg);
    stc_expect(c, SSH_MSG_SERVICE_ACCEPT, &msg);
    stc_send_publickey(c, STC_USER, c->user_key, true);
    stc_expect(c, SSH_MSG_USERAUTH_SUCCESS, &msg);
    wb_free(&msg);
}

uint32_t stc_open_session(struct stc *c, uint32_t window,
                          uint32_t max_packet)
{
    uint32_t recipient, sender;
    struct wbuf msg;
    uint8_t type;
    struct rd r;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_CHANNEL_OPEN);
    wb_cstring(&msg, "session");
    wb_u32(&msg, 7);
    wb_u32(&msg, window);
    wb_u32(&msg, max_packet);
    stc_send_wb(c, &msg);
    stc_expect(c, SSH_MSG_CHANNEL_OPEN_CONFIRMATION, &msg);
    rd_init(&r, msg.data, msg.len);
    assert_int_equal(rd_u8(&r, &type), 0);
    assert_int_equal(rd_u32(&r, &recipient), 0);
    assert_int_equal(rd_u32(&r, &sender), 0);
    assert_int_equal(recipient, 7);
    wb_free(&msg);
    return sender;
}

uint8_t stc_channel_request(struct stc *c, uint32_t channel,
                            const char *type, bool want_reply,
                            const char *arg)
{
    struct wbuf msg;
    uint8_t reply = 0;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_CHANNEL_REQUEST);
    wb_u32(&msg, channel);
    wb_cstring(&msg, type);
    wb_bool(&msg, want_reply);
    if (arg)
        wb_cstring(&msg, arg);
    stc_send_wb(c, &msg);
    if (want_reply)
        reply = stc_expect_any(c, &msg);
    wb_free(&msg);
    return reply;
}
