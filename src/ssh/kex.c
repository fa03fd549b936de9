/*
 * Key exchange: KEXINIT negotiation (RFC 4253 7), curve25519-sha256
 * (RFC 8731), key derivation (RFC 4253 7.2), strict key exchange
 * (OpenSSH's PROTOCOL, "kex-strict-*-v00@openssh.com") and EXT_INFO with
 * server-sig-algs (RFC 8308).
 *
 * The server supports one key exchange method (under two names) and one
 * host key type, so the negotiation that matters is of the ciphers and
 * MACs.  A key exchange runs the same way whether the client or the
 * server started it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ssh/ssh_internal.h"

#define X25519_LEN 32
#define SHA256_LEN 32
#define KEXINIT_COOKIE_LEN 16

static const char kex_names[] =
    "curve25519-sha256,curve25519-sha256@libssh.org";
static const char strict_kex_server[] = "kex-strict-s-v00@openssh.com";
static const char strict_kex_client[] = "kex-strict-c-v00@openssh.com";
static const char ext_info_client[] = "ext-info-c";
static const char hostkey_names[] = "ssh-ed25519";

/* The negotiated algorithms of one direction. */
struct kex_dir {
    const struct ssh_cipher_alg *cipher;
    const struct ssh_mac_alg *mac;
};

struct ssh_kex {
    bool sent_kexinit;
    bool got_kexinit;
    bool sent_newkeys;
    bool ignore_guess;          /* the client's guessed packet follows and
                                   the guess was wrong: drop it */
    struct wbuf i_c;            /* the client's KEXINIT payload */
    struct wbuf i_s;            /* ours */
    struct kex_dir c2s;
    struct kex_dir s2c;
    struct ssh_crypt *next_rx;  /* installed at the client's NEWKEYS */
};

/// Name-lists ///

/* True when the comma-separated list contains name. */
static bool list_has(const uint8_t *list, size_t len, const char *name)
{
    size_t name_len = strlen(name);
    size_t i = 0;

    while (i <= len) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        if (j - i == name_len && memcmp(list + i, name, name_len) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

/* The first name of the client's list that the server's list contains:
 * RFC 4253 7.1 gives the client's preference order the last word. */
static bool choose(const uint8_t *client, size_t len, const char *server,
                   const uint8_t **name, size_t *name_len)
{
    size_t i = 0;

    while (i < len) {
        size_t j = i;
        char buf[128];
        while (j < len && client[j] != ',')
            j++;
        if (j - i > 0 && j - i < sizeof(buf)) {
            memcpy(buf, client + i, j - i);
            buf[j - i] = '\0';
            if (list_has((const uint8_t *)server, strlen(server), buf)) {
                *name = client + i;
                *name_len = j - i;
                return true;
            }
        }
        i = j + 1;
    }
    return false;
}

/* The first name of a list (for the guess check). */
static size_t first_name_len(const uint8_t *list, size_t len)
{
    size_t i = 0;
    while (i < len && list[i] != ',')
        i++;
    return i;
}

/// Sending KEXINIT ///

static int build_kexinit(struct ssh_session *s, struct wbuf *w)
{
    uint8_t cookie[KEXINIT_COOKIE_LEN];
    char kex_list[sizeof(kex_names) + sizeof(strict_kex_server) + 1];
    int err = 0;

    if (RAND_bytes(cookie, sizeof(cookie)) != 1)
        return SSH_ERR_CRYPTO;
    /* The strict-kex marker only means something in the first KEXINIT. */
    strcpy(kex_list, kex_names);
    if (s->session_id_len == 0) {
        strcat(kex_list, ",");
        strcat(kex_list, strict_kex_server);
    }

    err |= wb_u8(w, SSH_MSG_KEXINIT);
    err |= wb_bytes(w, cookie, sizeof(cookie));
    err |= wb_cstring(w, kex_list);
    err |= wb_cstring(w, hostkey_names);
    err |= wb_cstring(w, ssh_cipher_names);
    err |= wb_cstring(w, ssh_cipher_names);
    err |= wb_cstring(w, ssh_mac_names);
    err |= wb_cstring(w, ssh_mac_names);
    err |= wb_cstring(w, "none");
    err |= wb_cstring(w, "none");
    err |= wb_cstring(w, "");
    err |= wb_cstring(w, "");
    err |= wb_bool(w, false);
    err |= wb_u32(w, 0);
    return err ? SSH_ERR_NOMEM : SSH_OK;
}

int ssh_kex_start(struct ssh_session *s)
{
    struct wbuf *msg;
    int err;

    if (!s->kex) {
        s->kex = calloc(1, sizeof(*s->kex));
        if (!s->kex)
            return SSH_ERR_NOMEM;
        wb_init(&s->kex->i_c, 0);
        wb_init(&s->kex->i_s, 0);
    }
    if (s->kex->sent_kexinit)
        return SSH_OK;

    err = build_kexinit(s, &s->kex->i_s);
    if (err)
        return err;
    msg = ssh_msg_start(s, SSH_MSG_KEXINIT);
    wb_reset(msg);
    if (wb_bytes(msg, s->kex->i_s.data, s->kex->i_s.len))
        return SSH_ERR_NOMEM;
    s->kex->sent_kexinit = true;
    return ssh_msg_send(s);
}

void ssh_kex_free(struct ssh_kex *kex)
{
    if (!kex)
        return;
    wb_free(&kex->i_c);
    wb_free(&kex->i_s);
    ssh_crypt_free(kex->next_rx);
    free(kex);
}

bool ssh_kex_blocks_output(const struct ssh_session *s)
{
    return s->kex && s->kex->sent_kexinit && !s->kex->sent_newkeys;
}

bool ssh_kex_in_progress(const struct ssh_session *s)
{
    return s->kex && s->kex->got_kexinit;
}

/// Receiving KEXINIT ///

struct kexinit_lists {
    const uint8_t *list[10];
    uint32_t len[10];
    bool guess_follows;
};

enum {
    L_KEX, L_HOSTKEY, L_ENC_C2S, L_ENC_S2C, L_MAC_C2S, L_MAC_S2C,
    L_COMP_C2S, L_COMP_S2C,
};

static int parse_kexinit(const uint8_t *msg, size_t len,
                         struct kexinit_lists *l)
{
    const uint8_t *cookie;
    uint32_t reserved;
    uint8_t type;
    struct rd r;

    rd_init(&r, msg, len);
    if (rd_u8(&r, &type) || rd_bytes(&r, KEXINIT_COOKIE_LEN, &cookie))
        return SSH_ERR_PROTOCOL;
    for (int i = 0; i < 10; i++) {
        if (rd_string(&r, &l->list[i], &l->len[i]))
            return SSH_ERR_PROTOCOL;
        if (l->len[i] > SSH_NAMELIST_MAX)
            return SSH_ERR_TOO_LARGE;
    }
    if (rd_bool(&r, &l->guess_follows) || rd_u32(&r, &reserved))
        return SSH_ERR_PROTOCOL;
    return SSH_OK;
}

static int choose_dir(const struct kexinit_lists *l, int enc, int mac,
                      struct kex_dir *dir)
{
    const uint8_t *name;
    size_t n;

    if (!choose(l->list[enc], l->len[enc], ssh_cipher_names, &name, &n))
        return SSH_ERR_NEGOTIATION;
    dir->cipher = ssh_cipher_find((const char *)name, n);
    dir->mac = NULL;
    if (ssh_cipher_is_aead(dir->cipher))
        return SSH_OK;
    if (!choose(l->list[mac], l->len[mac], ssh_mac_names, &name, &n))
        return SSH_ERR_NEGOTIATION;
    dir->mac = ssh_mac_find((const char *)name, n);
    return SSH_OK;
}

static int negotiate(struct ssh_session *s, const struct kexinit_lists *l)
{
    struct ssh_kex *kex = s->kex;
    const uint8_t *name;
    size_t n;

    if (!choose(l->list[L_KEX], l->len[L_KEX], kex_names, &name, &n) ||
        !choose(l->list[L_HOSTKEY], l->len[L_HOSTKEY], hostkey_names, &name,
                &n) ||
        !list_has(l->list[L_COMP_C2S], l->len[L_COMP_C2S], "none") ||
        !list_has(l->list[L_COMP_S2C], l->len[L_COMP_S2C], "none"))
        return SSH_ERR_NEGOTIATION;
    if (choose_dir(l, L_ENC_C2S, L_MAC_C2S, &kex->c2s) ||
        choose_dir(l, L_ENC_S2C, L_MAC_S2C, &kex->s2c))
        return SSH_ERR_NEGOTIATION;

    /* A guessed key exchange packet is right only if the client's first
     * choices are the negotiated ones (RFC 4253 7). */
    if (l->guess_follows) {
        size_t kex_first = first_name_len(l->list[L_KEX], l->len[L_KEX]);
        size_t hk_first = first_name_len(l->list[L_HOSTKEY],
                                         l->len[L_HOSTKEY]);
        bool right =
            choose(l->list[L_KEX], kex_first, kex_names, &name, &n) &&
            hk_first == strlen(hostkey_names) &&
            memcmp(l->list[L_HOSTKEY], hostkey_names, hk_first) == 0;
        kex->ignore_guess = !right;
    }
    return SSH_OK;
}

static int handle_kexinit(struct ssh_session *s, const uint8_t *msg,
                          size_t len)
{
    struct kexinit_lists l;
    bool first = s->session_id_len == 0;
    int err;

    if (s->kex && s->kex->got_kexinit)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "KEXINIT during key exchange");
    err = parse_kexinit(msg, len, &l);
    if (err)
        return ssh_disconnect(s, err, SSH_DISCONNECT_PROTOCOL_ERROR,
                              "invalid KEXINIT");

    if (first) {
        s->strict_kex = list_has(l.list[L_KEX], l.len[L_KEX],
                                 strict_kex_client);
        s->client_ext_info = list_has(l.list[L_KEX], l.len[L_KEX],
                                      ext_info_client);
        /* Under strict kex nothing may come before the first KEXINIT. */
        if (s->strict_kex && s->packets_in != 1)
            return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                                  SSH_DISCONNECT_PROTOCOL_ERROR,
                                  "strict key exchange: KEXINIT was not "
                                  "the first packet");
    }

    if (!first && !(s->kex && s->kex->sent_kexinit))
        ssh_log(s, SSH_LOG_DEBUG, "re-key %u started by the client",
                s->kex_count);
    err = ssh_kex_start(s);
    if (err)
        return err;
    if (wb_bytes(&s->kex->i_c, msg, len))
        return SSH_ERR_NOMEM;
    s->kex->got_kexinit = true;

    err = negotiate(s, &l);
    if (err)
        return ssh_disconnect(s, err, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                              "no matching key exchange, cipher, MAC or "
                              "compression algorithm");
    ssh_log(s, SSH_LOG_DEBUG, "kex: cipher %s/%s mac %s/%s%s",
            ssh_cipher_name(s->kex->c2s.cipher),
            ssh_cipher_name(s->kex->s2c.cipher),
            s->kex->c2s.mac ? ssh_mac_name(s->kex->c2s.mac) : "<implicit>",
            s->kex->s2c.mac ? ssh_mac_name(s->kex->s2c.mac) : "<implicit>",
            s->strict_kex ? " strict" : "");
    return SSH_OK;
}

/// curve25519-sha256 ///

/* The shared secret as an SSH mpint: the 32 bytes are a big-endian
 * unsigned number (RFC 8731 3.1). */
static int put_shared_secret(struct wbuf *w, const uint8_t k[X25519_LEN])
{
    size_t i = 0;

    while (i < X25519_LEN && k[i] == 0)
        i++;
    if (i < X25519_LEN && (k[i] & 0x80)) {
        if (wb_u32(w, (uint32_t)(X25519_LEN - i + 1)) || wb_u8(w, 0))
            return -1;
    } else if (wb_u32(w, (uint32_t)(X25519_LEN - i))) {
        return -1;
    }
    return wb_bytes(w, k + i, X25519_LEN - i);
}

/* An ephemeral X25519 key pair: our public value and the shared secret
 * with the client's public value. */
static int x25519_agree(const uint8_t *peer, uint8_t ours[X25519_LEN],
                        uint8_t shared[X25519_LEN])
{
    EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    EVP_PKEY *key = NULL, *peer_key = NULL;
    EVP_PKEY_CTX *derive = NULL;
    size_t ours_len = X25519_LEN, shared_len = X25519_LEN;
    int err = SSH_ERR_CRYPTO;

    if (!gen || EVP_PKEY_keygen_init(gen) != 1 ||
        EVP_PKEY_keygen(gen, &key) != 1)
        goto out;
    if (EVP_PKEY_get_raw_public_key(key, ours, &ours_len) != 1)
        goto out;
    peer_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer,
                                           X25519_LEN);
    derive = EVP_PKEY_CTX_new(key, NULL);
    /* libcrypto fails the derivation when the result is all zeros, the
     * check RFC 8731 3 requires. */
    if (peer_key && derive && EVP_PKEY_derive_init(derive) == 1 &&
        EVP_PKEY_derive_set_peer(derive, peer_key) == 1 &&
        EVP_PKEY_derive(derive, shared, &shared_len) == 1 &&
        shared_len == X25519_LEN)
        err = SSH_OK;
out:
    EVP_PKEY_CTX_free(derive);
    EVP_PKEY_free(peer_key);
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(gen);
    return err;
}

static int exchange_hash(struct ssh_session *s, const uint8_t *q_c,
                         const uint8_t *q_s, const uint8_t *k,
                         uint8_t h[SHA256_LEN])
{
    const uint8_t *k_s;
    size_t k_s_len;
    unsigned int h_len;
    struct wbuf w;
    int err = 0;

    k_s = ssh_hostkey_blob(s->cfg->hostkey, &k_s_len);
    wb_init(&w, 0);
    w.secret = true;
    err |= wb_cstring(&w, s->client_version);
    err |= wb_cstring(&w, SSH_SERVER_VERSION);
    err |= wb_string(&w, s->kex->i_c.data, s->kex->i_c.len);
    err |= wb_string(&w, s->kex->i_s.data, s->kex->i_s.len);
    err |= wb_string(&w, k_s, k_s_len);
    err |= wb_string(&w, q_c, X25519_LEN);
    err |= wb_string(&w, q_s, X25519_LEN);
    err |= put_shared_secret(&w, k);
    if (!err && EVP_Digest(w.data, w.len, h, &h_len, EVP_sha256(),
                           NULL) != 1)
        err = -1;
    wb_free(&w);
    return err ? SSH_ERR_CRYPTO : SSH_OK;
}

/*
 * Key material for letter X (RFC 4253 7.2): HASH(K || H || X ||
 * session_id), extended by HASH(K || H || K1 || K2 ...) to need bytes.
 */
static int derive_key(struct ssh_session *s, const uint8_t *k,
                      const uint8_t *h, char letter, uint8_t *out,
                      size_t need)
{
    uint8_t block[SHA256_LEN];
    struct wbuf w;
    size_t have = 0;
    unsigned int len;
    int err = 0;

    wb_init(&w, 0);
    w.secret = true;
    err |= put_shared_secret(&w, k);
    err |= wb_bytes(&w, h, SHA256_LEN);
    size_t prefix = w.len;
    err |= wb_u8(&w, (uint8_t)letter);
    err |= wb_bytes(&w, s->session_id, s->session_id_len);

    while (!err && have < need) {
        if (EVP_Digest(w.data, w.len, block, &len, EVP_sha256(),
                       NULL) != 1) {
            err = -1;
            break;
        }
        size_t n = need - have < SHA256_LEN ? need - have : SHA256_LEN;
        memcpy(out + have, block, n);
        have += n;
        /* Next block: K || H || everything so far. */
        w.len = prefix;
        err |= wb_bytes(&w, out, have);
    }
    OPENSSL_cleanse(block, sizeof(block));
    wb_free(&w);
    return err ? SSH_ERR_CRYPTO : SSH_OK;
}

/* Keys for one direction from letters iv, key and mac. */
static int make_crypt(struct ssh_session *s, const struct kex_dir *dir,
                      bool encrypt, const uint8_t *k, const uint8_t *h,
                      char iv_letter, struct ssh_crypt **out)
{
    uint8_t iv[16], key[64], mac_key[64];
    size_t mac_len = dir->mac ? ssh_mac_key_len(dir->mac) : 0;
    int err;

    err = derive_key(s, k, h, iv_letter, iv, ssh_cipher_iv_len(dir->cipher));
    if (!err)
        err = derive_key(s, k, h, (char)(iv_letter + 2), key,
                         ssh_cipher_key_len(dir->cipher));
    if (!err && mac_len)
        err = derive_key(s, k, h, (char)(iv_letter + 4), mac_key, mac_len);
    if (!err)
        err = ssh_crypt_new(out, dir->cipher, dir->mac, encrypt, key, iv,
                            mac_key);
    OPENSSL_cleanse(iv, sizeof(iv));
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(mac_key, sizeof(mac_key));
    return err;
}

static int send_ecdh_reply(struct ssh_session *s, const uint8_t *q_s,
                           const uint8_t *h)
{
    const uint8_t *k_s;
    size_t k_s_len;
    struct wbuf sig;
    struct wbuf *msg;
    int err;

    wb_init(&sig, 0);
    err = ssh_hostkey_sign(s->cfg->hostkey, h, SHA256_LEN, &sig);
    if (err) {
        wb_free(&sig);
        return err;
    }
    k_s = ssh_hostkey_blob(s->cfg->hostkey, &k_s_len);
    msg = ssh_msg_start(s, SSH_MSG_KEX_ECDH_REPLY);
    if (wb_string(msg, k_s, k_s_len) || wb_string(msg, q_s, X25519_LEN) ||
        wb_string(msg, sig.data, sig.len))
        err = SSH_ERR_NOMEM;
    wb_free(&sig);
    return err ? err : ssh_msg_send(s);
}

static int send_ext_info(struct ssh_session *s)
{
    struct wbuf *msg = ssh_msg_start(s, SSH_MSG_EXT_INFO);

    if (wb_u32(msg, 1) || wb_cstring(msg, "server-sig-algs") ||
        wb_cstring(msg, ssh_sig_alg_names))
        return SSH_ERR_NOMEM;
    return ssh_msg_send(s);
}

/* Reply, switch our direction to the new keys, and release what was
 * held during the exchange. */
static int finish_server_side(struct ssh_session *s, const uint8_t *q_s,
                              const uint8_t *k, const uint8_t *h)
{
    struct ssh_crypt *tx = NULL;
    bool first = s->session_id_len == 0;
    int err;

    if (first) {
        memcpy(s->session_id, h, SHA256_LEN);
        s->session_id_len = SHA256_LEN;
    }
    err = make_crypt(s, &s->kex->s2c, true, k, h, 'B', &tx);
    if (!err)
        err = make_crypt(s, &s->kex->c2s, false, k, h, 'A',
                         &s->kex->next_rx);
    if (!err)
        err = send_ecdh_reply(s, q_s, h);
    if (!err) {
        ssh_msg_start(s, SSH_MSG_NEWKEYS);
        err = ssh_msg_send(s);
    }
    if (err) {
        ssh_crypt_free(tx);
        return err;
    }

    ssh_transport_set_tx(s, tx);
    s->kex->sent_newkeys = true;
    /* EXT_INFO must be the first message under the new keys. */
    if (first && s->client_ext_info) {
        err = send_ext_info(s);
        if (err)
            return err;
    }
    return ssh_transport_flush_deferred(s);
}

static int handle_ecdh_init(struct ssh_session *s, const uint8_t *msg,
                            size_t len)
{
    uint8_t q_s[X25519_LEN], k[X25519_LEN], h[SHA256_LEN];
    const uint8_t *q_c;
    uint32_t q_c_len;
    uint8_t type;
    struct rd r;
    int err;

    rd_init(&r, msg, len);
    if (rd_u8(&r, &type) || rd_string(&r, &q_c, &q_c_len) ||
        q_c_len != X25519_LEN || rd_left(&r) != 0)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                              "invalid KEX_ECDH_INIT");
    err = x25519_agree(q_c, q_s, k);
    if (err)
        return ssh_disconnect(s, err, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                              "invalid curve25519 public key");
    err = exchange_hash(s, q_c, q_s, k, h);
    if (!err)
        err = finish_server_side(s, q_s, k, h);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(h, sizeof(h));
    return err;
}

static int handle_newkeys(struct ssh_session *s, size_t len)
{
    if (len != 1 || !s->kex->sent_newkeys)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "unexpected NEWKEYS");
    ssh_transport_set_rx(s, s->kex->next_rx);
    s->kex->next_rx = NULL;
    ssh_kex_free(s->kex);
    s->kex = NULL;
    s->rx_bytes = 0;
    s->tx_bytes = 0;
    s->kex_done_ms = s->now_ms;
    if (s->kex_count > 0)
        ssh_log(s, SSH_LOG_DEBUG, "re-key %u finished", s->kex_count);
    s->kex_count++;
    return SSH_OK;
}

/// Dispatch ///

int ssh_kex_handle(struct ssh_session *s, uint8_t type, const uint8_t *msg,
                   size_t len)
{
    if (type == SSH_MSG_KEXINIT)
        return handle_kexinit(s, msg, len);

    if (!s->kex || !s->kex->got_kexinit)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "key exchange message outside key exchange");
    if (s->kex->ignore_guess) {
        s->kex->ignore_guess = false;
        return SSH_OK;
    }
    if (type == SSH_MSG_KEX_ECDH_INIT && !s->kex->sent_newkeys)
        return handle_ecdh_init(s, msg, len);
    if (type == SSH_MSG_NEWKEYS)
        return handle_newkeys(s, len);
    return ssh_disconnect(s, SSH_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR,
                          "unexpected key exchange message");
}
