/*
 * The server's ed25519 host key (RFC 8709): made from a 32-byte private
 * seed, which comes from a key file, from --seed through HKDF, or from
 * the random generator; and the signature over each exchange hash.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "ssh/ssh_internal.h"

#define ED25519_PUB_LEN 32
#define ED25519_SIG_LEN 64
/* string "ssh-ed25519" (4 + 11), string public key (4 + 32) */
#define ED25519_BLOB_LEN 51

static const char hostkey_kdf_salt[] = "sshfsd host key";
static const char hostkey_kdf_info[] = "ssh-ed25519";

static const char armor_begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
static const char armor_end[] = "-----END OPENSSH PRIVATE KEY-----";
static const char openssh_magic[] = "openssh-key-v1"; /* and a NUL byte */
/* Private key files larger than this are not host keys. */
#define PRIVATE_KEY_FILE_MAX (64 * 1024)

struct ssh_hostkey {
    EVP_PKEY *pkey;
    uint8_t blob[ED25519_BLOB_LEN];
};

int ssh_hostkey_from_seed(struct ssh_hostkey **out,
                          const uint8_t seed[SSH_ED25519_SEED_LEN])
{
    struct ssh_hostkey *key = calloc(1, sizeof(*key));
    uint8_t pub[ED25519_PUB_LEN];
    size_t pub_len = sizeof(pub);
    struct wbuf blob;

    if (!key)
        return SSH_ERR_NOMEM;
    key->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
                                             SSH_ED25519_SEED_LEN);
    if (!key->pkey ||
        EVP_PKEY_get_raw_public_key(key->pkey, pub, &pub_len) != 1 ||
        pub_len != ED25519_PUB_LEN) {
        ssh_hostkey_free(key);
        return SSH_ERR_CRYPTO;
    }

    wb_init(&blob, 0);
    if (wb_cstring(&blob, "ssh-ed25519") || wb_string(&blob, pub, pub_len) ||
        blob.len != ED25519_BLOB_LEN) {
        wb_free(&blob);
        ssh_hostkey_free(key);
        return SSH_ERR_NOMEM;
    }
    memcpy(key->blob, blob.data, ED25519_BLOB_LEN);
    wb_free(&blob);
    *out = key;
    return SSH_OK;
}

int ssh_hostkey_derive(struct ssh_hostkey **out, const char *text)
{
    uint8_t seed[SSH_ED25519_SEED_LEN];
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)text,
                                          strlen(text)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                          (void *)hostkey_kdf_salt,
                                          strlen(hostkey_kdf_salt)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                          (void *)hostkey_kdf_info,
                                          strlen(hostkey_kdf_info)),
        OSSL_PARAM_construct_end(),
    };
    int err = SSH_ERR_CRYPTO;

    if (ctx && EVP_KDF_derive(ctx, seed, sizeof(seed), params) == 1)
        err = ssh_hostkey_from_seed(out, seed);
    OPENSSL_cleanse(seed, sizeof(seed));
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return err;
}

int ssh_hostkey_generate(struct ssh_hostkey **out,
                         uint8_t seed[SSH_ED25519_SEED_LEN])
{
    if (RAND_bytes(seed, SSH_ED25519_SEED_LEN) != 1)
        return SSH_ERR_CRYPTO;
    return ssh_hostkey_from_seed(out, seed);
}

void ssh_hostkey_free(struct ssh_hostkey *key)
{
    if (!key)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

const uint8_t *ssh_hostkey_blob(const struct ssh_hostkey *key, size_t *len)
{
    *len = ED25519_BLOB_LEN;
    return key->blob;
}

int ssh_hostkey_sign(const struct ssh_hostkey *key, const uint8_t *data,
                     size_t len, struct wbuf *sig)
{
    uint8_t raw[ED25519_SIG_LEN];
    size_t raw_len = sizeof(raw);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    if (!md)
        return SSH_ERR_NOMEM;
    ok = EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, key->pkey,
                               NULL) == 1 &&
         EVP_DigestSign(md, raw, &raw_len, data, len) == 1 &&
         raw_len == ED25519_SIG_LEN;
    EVP_MD_CTX_free(md);
    if (!ok)
        return SSH_ERR_CRYPTO;
    if (wb_cstring(sig, "ssh-ed25519") || wb_string(sig, raw, raw_len))
        return SSH_ERR_NOMEM;
    return SSH_OK;
}

/// OpenSSH private key files (OpenSSH's PROTOCOL.key) ///

/* The base64 text between the armor lines, with line breaks removed. */
static int unarmor(const char *text, size_t len, struct wbuf *b64)
{
    const char *end = text + len;
    const char *begin = memmem(text, len, armor_begin, strlen(armor_begin));
    const char *stop;

    if (!begin)
        return SSH_ERR_KEY;
    begin += strlen(armor_begin);
    stop = memmem(begin, (size_t)(end - begin), armor_end,
                  strlen(armor_end));
    if (!stop)
        return SSH_ERR_KEY;
    for (const char *p = begin; p < stop; p++) {
        if (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')
            continue;
        if (wb_u8(b64, (uint8_t)*p))
            return SSH_ERR_NOMEM;
    }
    return SSH_OK;
}

/* The private section: two equal check words, one key, padding 1, 2,
 * 3 ... up to the cipher block size (8 for "none"). */
static int parse_private_section(const uint8_t *data, size_t len,
                                 uint8_t seed[SSH_ED25519_SEED_LEN],
                                 uint8_t pub[ED25519_PUB_LEN])
{
    const uint8_t *type, *key_pub, *priv, *comment, *pad;
    uint32_t check1, check2, type_len, pub_len, priv_len, comment_len;
    size_t pad_len;
    struct rd r;

    rd_init(&r, data, len);
    if (rd_u32(&r, &check1) || rd_u32(&r, &check2) || check1 != check2)
        return SSH_ERR_KEY;
    if (rd_string(&r, &type, &type_len) || type_len != 11 ||
        memcmp(type, "ssh-ed25519", 11) != 0)
        return SSH_ERR_KEY;
    if (rd_string(&r, &key_pub, &pub_len) || pub_len != ED25519_PUB_LEN ||
        rd_string(&r, &priv, &priv_len) ||
        priv_len != SSH_ED25519_SEED_LEN + ED25519_PUB_LEN ||
        rd_string(&r, &comment, &comment_len))
        return SSH_ERR_KEY;

    pad_len = rd_left(&r);
    if (pad_len >= 8 || rd_bytes(&r, pad_len, &pad))
        return SSH_ERR_KEY;
    for (size_t i = 0; i < pad_len; i++) {
        if (pad[i] != i + 1)
            return SSH_ERR_KEY;
    }
    if (memcmp(priv + SSH_ED25519_SEED_LEN, key_pub, ED25519_PUB_LEN) != 0)
        return SSH_ERR_KEY;
    memcpy(seed, priv, SSH_ED25519_SEED_LEN);
    memcpy(pub, key_pub, ED25519_PUB_LEN);
    return SSH_OK;
}

static int parse_key_container(const uint8_t *data, size_t len,
                               uint8_t seed[SSH_ED25519_SEED_LEN],
                               uint8_t pub[ED25519_PUB_LEN])
{
    const uint8_t *magic, *cipher, *kdf, *kdf_opts, *pub_blob, *section;
    uint32_t cipher_len, kdf_len, kdf_opts_len, count, pub_blob_len;
    uint32_t section_len;
    struct rd r;

    rd_init(&r, data, len);
    if (rd_bytes(&r, sizeof(openssh_magic), &magic) ||
        memcmp(magic, openssh_magic, sizeof(openssh_magic)) != 0)
        return SSH_ERR_KEY;
    if (rd_string(&r, &cipher, &cipher_len) ||
        rd_string(&r, &kdf, &kdf_len) ||
        rd_string(&r, &kdf_opts, &kdf_opts_len) || rd_u32(&r, &count))
        return SSH_ERR_KEY;
    /* Encrypted keys would need a passphrase, which a server has no one
     * to ask for. */
    if (cipher_len != 4 || memcmp(cipher, "none", 4) != 0 ||
        kdf_len != 4 || memcmp(kdf, "none", 4) != 0 || kdf_opts_len != 0)
        return SSH_ERR_KEY;
    if (count != 1 || rd_string(&r, &pub_blob, &pub_blob_len) ||
        rd_string(&r, &section, &section_len) || rd_left(&r) != 0)
        return SSH_ERR_KEY;
    if (section_len % 8 != 0)
        return SSH_ERR_KEY;
    return parse_private_section(section, section_len, seed, pub);
}

int ssh_hostkey_parse_openssh(struct ssh_hostkey **out, const char *text,
                              size_t len)
{
    uint8_t seed[SSH_ED25519_SEED_LEN], pub[ED25519_PUB_LEN];
    struct wbuf b64, raw;
    struct ssh_hostkey *key = NULL;
    int err;

    if (len > PRIVATE_KEY_FILE_MAX)
        return SSH_ERR_KEY;
    wb_init(&b64, 0);
    wb_init(&raw, 0);
    b64.secret = true;
    raw.secret = true;

    err = unarmor(text, len, &b64);
    if (!err)
        err = ssh_base64_decode((const char *)b64.data, b64.len, &raw);
    if (!err)
        err = parse_key_container(raw.data, raw.len, seed, pub);
    if (!err)
        err = ssh_hostkey_from_seed(&key, seed);

    /* The stored public key must be the one the seed makes. */
    if (!err && memcmp(key->blob + ED25519_BLOB_LEN - ED25519_PUB_LEN, pub,
                       ED25519_PUB_LEN) != 0) {
        ssh_hostkey_free(key);
        err = SSH_ERR_KEY;
    }
    OPENSSL_cleanse(seed, sizeof(seed));
    wb_free(&b64);
    wb_free(&raw);
    if (err)
        return err == SSH_ERR_NOMEM ? err : SSH_ERR_KEY;
    *out = key;
    return SSH_OK;
}
