/*
 * Packet protection: the ciphers and MACs of the binary packet protocol.
 *
 * Every primitive is OpenSSL's (EVP ciphers, EVP_MAC); this file only
 * arranges them the way each SSH mode defines:
 *   chacha20-poly1305@openssh.com  OpenSSH's PROTOCOL.chacha20poly1305
 *   aes128/256-gcm@openssh.com     RFC 5647, as OpenSSH's PROTOCOL amends
 *   aes128/256-ctr                 RFC 4344, with an HMAC-SHA2 (RFC 6668)
 *                                  either over the plaintext or, for the
 *                                  -etm@openssh.com MACs, over the
 *                                  ciphertext
 * Packets are processed in place: pkt points at the 4-byte length,
 * followed by len bytes of padding length, payload and padding, followed
 * by room for the tag.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ssh/ssh_internal.h"

enum cipher_kind { CIPHER_CHACHA, CIPHER_GCM, CIPHER_CTR };

struct ssh_cipher_alg {
    const char *name;
    enum cipher_kind kind;
    size_t key_len;
    size_t iv_len;
    size_t block;
    const EVP_CIPHER *(*evp)(void);
};

struct ssh_mac_alg {
    const char *name;
    const char *digest;
    size_t key_len;
    size_t mac_len;
    bool etm;
};

#define CHACHA_KEY_LEN 32
#define POLY1305_TAG_LEN 16
#define GCM_TAG_LEN 16
#define GCM_IV_LEN 12

static const struct ssh_cipher_alg cipher_algs[] = {
    { "chacha20-poly1305@openssh.com", CIPHER_CHACHA, 64, 0, 8,
      EVP_chacha20 },
    { "aes128-gcm@openssh.com", CIPHER_GCM, 16, GCM_IV_LEN, 16,
      EVP_aes_128_gcm },
    { "aes256-gcm@openssh.com", CIPHER_GCM, 32, GCM_IV_LEN, 16,
      EVP_aes_256_gcm },
    { "aes128-ctr", CIPHER_CTR, 16, 16, 16, EVP_aes_128_ctr },
    { "aes256-ctr", CIPHER_CTR, 32, 16, 16, EVP_aes_256_ctr },
};

static const struct ssh_mac_alg mac_algs[] = {
    { "hmac-sha2-256-etm@openssh.com", "SHA256", 32, 32, true },
    { "hmac-sha2-512-etm@openssh.com", "SHA512", 64, 64, true },
    { "hmac-sha2-256", "SHA256", 32, 32, false },
    { "hmac-sha2-512", "SHA512", 64, 64, false },
};

const char ssh_cipher_names[] =
    "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,"
    "aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";
const char ssh_mac_names[] =
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
    "hmac-sha2-256,hmac-sha2-512";

struct ssh_crypt {
    const struct ssh_cipher_alg *alg;
    const struct ssh_mac_alg *mac;
    bool encrypt;
    EVP_CIPHER_CTX *ctx;        /* chacha K_2, the GCM or the CTR cipher */
    EVP_CIPHER_CTX *len_ctx;    /* chacha K_1: the packet length only */
    EVP_MAC_CTX *mac_ctx;       /* Poly1305 or HMAC */
    uint8_t gcm_iv[GCM_IV_LEN]; /* fixed field, then invocation counter */
    bool first_block_open;      /* CTR without ETM: the first block of the
                                   current packet is decrypted in place */
};

/// Algorithm lookup ///

const struct ssh_cipher_alg *ssh_cipher_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(cipher_algs) / sizeof(cipher_algs[0]);
         i++) {
        if (strlen(cipher_algs[i].name) == len &&
            memcmp(cipher_algs[i].name, name, len) == 0)
            return &cipher_algs[i];
    }
    return NULL;
}

const struct ssh_mac_alg *ssh_mac_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(mac_algs) / sizeof(mac_algs[0]); i++) {
        if (strlen(mac_algs[i].name) == len &&
            memcmp(mac_algs[i].name, name, len) == 0)
            return &mac_algs[i];
    }
    return NULL;
}

size_t ssh_cipher_key_len(const struct ssh_cipher_alg *alg)
{
    return alg->key_len;
}

size_t ssh_cipher_iv_len(const struct ssh_cipher_alg *alg)
{
    return alg->iv_len;
}

bool ssh_cipher_is_aead(const struct ssh_cipher_alg *alg)
{
    return alg->kind != CIPHER_CTR;
}

const char *ssh_cipher_name(const struct ssh_cipher_alg *alg)
{
    return alg->name;
}

size_t ssh_mac_key_len(const struct ssh_mac_alg *alg)
{
    return alg->key_len;
}

const char *ssh_mac_name(const struct ssh_mac_alg *alg)
{
    return alg->name;
}

/// Setting up one direction ///

static EVP_CIPHER_CTX *new_cipher_ctx(const EVP_CIPHER *evp,
                                      const uint8_t *key, const uint8_t *iv,
                                      int encrypt)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (!ctx)
        return NULL;
    if (EVP_CipherInit_ex(ctx, evp, NULL, key, iv, encrypt) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static EVP_MAC_CTX *new_mac_ctx(const char *mac_name, const char *digest,
                                const uint8_t *key, size_t key_len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, mac_name, NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

    /* The context keeps its own reference to the algorithm. */
    EVP_MAC_free(mac);
    if (!ctx)
        return NULL;
    if (digest) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                             (char *)digest, 0),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_MAC_init(ctx, key, key_len, params) != 1) {
            EVP_MAC_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

int ssh_crypt_new(struct ssh_crypt **out, const struct ssh_cipher_alg *alg,
                  const struct ssh_mac_alg *mac, bool encrypt,
                  const uint8_t *key, const uint8_t *iv,
                  const uint8_t *mac_key)
{
    struct ssh_crypt *c = calloc(1, sizeof(*c));
    int enc = encrypt ? 1 : 0;

    if (!c)
        return SSH_ERR_NOMEM;
    c->alg = alg;
    c->mac = alg->kind == CIPHER_CTR ? mac : NULL;
    c->encrypt = encrypt;

    switch (alg->kind) {
    case CIPHER_CHACHA:
        /* The first 32 bytes are K_2 (payload and Poly1305 key), the
         * second 32 bytes K_1 (length).  Both run as keystreams, so they
         * are always set up for encryption. */
        c->ctx = new_cipher_ctx(alg->evp(), key, NULL, 1);
        c->len_ctx = new_cipher_ctx(alg->evp(), key + CHACHA_KEY_LEN, NULL,
                                    1);
        c->mac_ctx = new_mac_ctx("POLY1305", NULL, NULL, 0);
        if (!c->ctx || !c->len_ctx || !c->mac_ctx)
            goto fail;
        break;
    case CIPHER_GCM:
        c->ctx = new_cipher_ctx(alg->evp(), key, NULL, enc);
        if (!c->ctx)
            goto fail;
        memcpy(c->gcm_iv, iv, GCM_IV_LEN);
        break;
    case CIPHER_CTR:
        if (!c->mac)
            goto fail;
        c->ctx = new_cipher_ctx(alg->evp(), key, iv, enc);
        c->mac_ctx = new_mac_ctx("HMAC", mac->digest, mac_key,
                                 mac->key_len);
        if (!c->ctx || !c->mac_ctx)
            goto fail;
        break;
    }
    *out = c;
    return SSH_OK;

fail:
    ssh_crypt_free(c);
    return SSH_ERR_CRYPTO;
}

void ssh_crypt_free(struct ssh_crypt *c)
{
    if (!c)
        return;
    EVP_CIPHER_CTX_free(c->ctx);
    EVP_CIPHER_CTX_free(c->len_ctx);
    EVP_MAC_CTX_free(c->mac_ctx);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

/// Packet format of a direction ///

size_t ssh_crypt_block(const struct ssh_crypt *c)
{
    return c ? c->alg->block : 8;
}

bool ssh_crypt_aad(const struct ssh_crypt *c)
{
    if (!c)
        return false;
    return c->alg->kind != CIPHER_CTR || c->mac->etm;
}

size_t ssh_crypt_tag_len(const struct ssh_crypt *c)
{
    if (!c)
        return 0;
    if (c->alg->kind == CIPHER_CHACHA)
        return POLY1305_TAG_LEN;
    if (c->alg->kind == CIPHER_GCM)
        return GCM_TAG_LEN;
    return c->mac->mac_len;
}

size_t ssh_crypt_first_len(const struct ssh_crypt *c)
{
    if (c && c->alg->kind == CIPHER_CTR && !c->mac->etm)
        return c->alg->block;
    return 4;
}

/// ChaCha20-Poly1305 ///

/*
 * OpenSSH uses the original ChaCha20 with a 64-bit block counter and a
 * 64-bit nonce (the sequence number).  OpenSSL's 16-byte IV is a 32-bit
 * little-endian counter and a 96-bit nonce, so the same state is the
 * counter, four zero bytes (the counter's high half) and the nonce.
 */
static int chacha_set(EVP_CIPHER_CTX *ctx, uint32_t counter, uint32_t seq)
{
    uint8_t iv[16] = { 0 };

    iv[0] = (uint8_t)counter;
    iv[1] = (uint8_t)(counter >> 8);
    iv[2] = (uint8_t)(counter >> 16);
    iv[3] = (uint8_t)(counter >> 24);
    put_be32(iv + 12, seq);
    return EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) == 1 ? 0 : -1;
}

static int chacha_xor(EVP_CIPHER_CTX *ctx, uint8_t *data, size_t len)
{
    int outl;

    while (len > 0) {
        int n = len > (1u << 30) ? 1 << 30 : (int)len;
        if (EVP_CipherUpdate(ctx, data, &outl, data, n) != 1)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int chacha_tag(struct ssh_crypt *c, uint32_t seq, const uint8_t *pkt,
                      size_t total, uint8_t tag[POLY1305_TAG_LEN])
{
    uint8_t poly_key[32] = { 0 };
    size_t outl;
    int ok;

    /* The Poly1305 key is the first 32 bytes of K_2's keystream for
     * this sequence number (block counter 0). */
    ok = chacha_set(c->ctx, 0, seq) == 0 &&
         chacha_xor(c->ctx, poly_key, sizeof(poly_key)) == 0 &&
         EVP_MAC_init(c->mac_ctx, poly_key, sizeof(poly_key), NULL) == 1 &&
         EVP_MAC_update(c->mac_ctx, pkt, total) == 1 &&
         EVP_MAC_final(c->mac_ctx, tag, &outl, POLY1305_TAG_LEN) == 1;
    OPENSSL_cleanse(poly_key, sizeof(poly_key));
    return ok ? 0 : -1;
}

static int chacha_peek(struct ssh_crypt *c, uint32_t seq, const uint8_t *pkt,
                       uint32_t *len)
{
    uint8_t plain[4];

    memcpy(plain, pkt, 4);
    if (chacha_set(c->len_ctx, 0, seq) || chacha_xor(c->len_ctx, plain, 4))
        return SSH_ERR_CRYPTO;
    *len = get_be32(plain);
    return SSH_OK;
}

static int chacha_open(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                       size_t len)
{
    uint8_t tag[POLY1305_TAG_LEN];
    uint32_t plain_len;

    if (chacha_tag(c, seq, pkt, 4 + len, tag))
        return SSH_ERR_CRYPTO;
    if (CRYPTO_memcmp(tag, pkt + 4 + len, POLY1305_TAG_LEN) != 0)
        return SSH_ERR_MAC;
    if (chacha_peek(c, seq, pkt, &plain_len))
        return SSH_ERR_CRYPTO;
    put_be32(pkt, plain_len);
    if (chacha_set(c->ctx, 1, seq) || chacha_xor(c->ctx, pkt + 4, len))
        return SSH_ERR_CRYPTO;
    return SSH_OK;
}

static int chacha_seal(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                       size_t len)
{
    if (chacha_set(c->len_ctx, 0, seq) || chacha_xor(c->len_ctx, pkt, 4))
        return SSH_ERR_CRYPTO;
    if (chacha_set(c->ctx, 1, seq) || chacha_xor(c->ctx, pkt + 4, len))
        return SSH_ERR_CRYPTO;
    if (chacha_tag(c, seq, pkt, 4 + len, pkt + 4 + len))
        return SSH_ERR_CRYPTO;
    return SSH_OK;
}

/// AES-GCM ///

/* The last 8 bytes of the nonce count packets (RFC 5647 section 7.1). */
static void gcm_next_iv(struct ssh_crypt *c)
{
    for (int i = GCM_IV_LEN - 1; i >= 4; i--) {
        if (++c->gcm_iv[i] != 0)
            break;
    }
}

static int gcm_run(struct ssh_crypt *c, uint8_t *pkt, size_t len)
{
    int outl;

    if (EVP_CipherInit_ex(c->ctx, NULL, NULL, NULL, c->gcm_iv, -1) != 1)
        return SSH_ERR_CRYPTO;
    if (EVP_CipherUpdate(c->ctx, NULL, &outl, pkt, 4) != 1)
        return SSH_ERR_CRYPTO;
    if (len > 0 && EVP_CipherUpdate(c->ctx, pkt + 4, &outl, pkt + 4,
                                    (int)len) != 1)
        return SSH_ERR_CRYPTO;
    return SSH_OK;
}

static int gcm_open(struct ssh_crypt *c, uint8_t *pkt, size_t len)
{
    int outl;
    int err = gcm_run(c, pkt, len);

    if (err)
        return err;
    if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN,
                            pkt + 4 + len) != 1)
        return SSH_ERR_CRYPTO;
    if (EVP_CipherFinal_ex(c->ctx, pkt + 4 + len, &outl) != 1)
        return SSH_ERR_MAC;
    gcm_next_iv(c);
    return SSH_OK;
}

static int gcm_seal(struct ssh_crypt *c, uint8_t *pkt, size_t len)
{
    int outl;
    int err = gcm_run(c, pkt, len);

    if (err)
        return err;
    if (EVP_CipherFinal_ex(c->ctx, pkt + 4 + len, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN,
                            pkt + 4 + len) != 1)
        return SSH_ERR_CRYPTO;
    gcm_next_iv(c);
    return SSH_OK;
}

/// AES-CTR with HMAC ///

static int ctr_xor(struct ssh_crypt *c, uint8_t *data, size_t len)
{
    int outl;

    if (len == 0)
        return SSH_OK;
    if (EVP_CipherUpdate(c->ctx, data, &outl, data, (int)len) != 1)
        return SSH_ERR_CRYPTO;
    return SSH_OK;
}

/* HMAC(key, u32 sequence number || data) into out. */
static int hmac_packet(struct ssh_crypt *c, uint32_t seq, const uint8_t *data,
                       size_t len, uint8_t *out)
{
    uint8_t seq_be[4];
    size_t outl;

    put_be32(seq_be, seq);
    if (EVP_MAC_init(c->mac_ctx, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(c->mac_ctx, seq_be, 4) != 1 ||
        EVP_MAC_update(c->mac_ctx, data, len) != 1 ||
        EVP_MAC_final(c->mac_ctx, out, &outl, c->mac->mac_len) != 1)
        return SSH_ERR_CRYPTO;
    return SSH_OK;
}

static int ctr_peek(struct ssh_crypt *c, uint8_t *pkt, uint32_t *len)
{
    if (!c->mac->etm && !c->first_block_open) {
        int err = ctr_xor(c, pkt, c->alg->block);
        if (err)
            return err;
        c->first_block_open = true;
    }
    *len = get_be32(pkt);
    return SSH_OK;
}

static int ctr_open(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                    size_t len)
{
    uint8_t mac[SSH_MAC_MAX];
    size_t total = 4 + len;
    int err;

    if (c->mac->etm) {
        err = hmac_packet(c, seq, pkt, total, mac);
        if (err)
            return err;
        if (CRYPTO_memcmp(mac, pkt + total, c->mac->mac_len) != 0)
            return SSH_ERR_MAC;
        return ctr_xor(c, pkt + 4, len);
    }

    /* The first block was decrypted by ctr_peek(). */
    c->first_block_open = false;
    err = ctr_xor(c, pkt + c->alg->block, total - c->alg->block);
    if (!err)
        err = hmac_packet(c, seq, pkt, total, mac);
    if (err)
        return err;
    if (CRYPTO_memcmp(mac, pkt + total, c->mac->mac_len) != 0)
        return SSH_ERR_MAC;
    return SSH_OK;
}

static int ctr_seal(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                    size_t len)
{
    size_t total = 4 + len;
    int err;

    if (c->mac->etm) {
        err = ctr_xor(c, pkt + 4, len);
        if (!err)
            err = hmac_packet(c, seq, pkt, total, pkt + total);
        return err;
    }
    err = hmac_packet(c, seq, pkt, total, pkt + total);
    if (!err)
        err = ctr_xor(c, pkt, total);
    return err;
}

/// Dispatch on the mode ///

int ssh_crypt_peek_length(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                          uint32_t *len)
{
    if (!c) {
        *len = get_be32(pkt);
        return SSH_OK;
    }
    switch (c->alg->kind) {
    case CIPHER_CHACHA:
        return chacha_peek(c, seq, pkt, len);
    case CIPHER_GCM:
        *len = get_be32(pkt);
        return SSH_OK;
    case CIPHER_CTR:
        return ctr_peek(c, pkt, len);
    }
    return SSH_ERR_INVAL;
}

int ssh_crypt_open(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                   size_t len)
{
    if (!c)
        return SSH_OK;
    switch (c->alg->kind) {
    case CIPHER_CHACHA:
        return chacha_open(c, seq, pkt, len);
    case CIPHER_GCM:
        return gcm_open(c, pkt, len);
    case CIPHER_CTR:
        return ctr_open(c, seq, pkt, len);
    }
    return SSH_ERR_INVAL;
}

int ssh_crypt_seal(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                   size_t len)
{
    if (!c)
        return SSH_OK;
    switch (c->alg->kind) {
    case CIPHER_CHACHA:
        return chacha_seal(c, seq, pkt, len);
    case CIPHER_GCM:
        return gcm_seal(c, pkt, len);
    case CIPHER_CTR:
        return ctr_seal(c, seq, pkt, len);
    }
    return SSH_ERR_INVAL;
}
