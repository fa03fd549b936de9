/*
 * Users' public keys: the SSH wire encoding (RFC 4253 6.6, RFC 5656 3.1,
 * RFC 8709), OpenSSH's one-line text form, fingerprints, and signature
 * verification for public-key authentication (RFC 4252 7, RFC 8332).
 *
 * Every key is decoded into an OpenSSL EVP_PKEY once, when it is parsed;
 * verification is libcrypto's.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "ssh/ssh_internal.h"

enum key_kind { KEY_ED25519, KEY_ECDSA, KEY_RSA };

struct key_type {
    const char *name;        /* as in key blobs and key files */
    const char *label;       /* as OpenSSH logs it */
    enum key_kind kind;
    const char *curve_id;    /* ECDSA: the curve name inside the blob */
    const char *group;       /* ECDSA: OpenSSL's group name */
    const char *digest;      /* ECDSA: the hash the curve signs with */
    unsigned bits;           /* ED25519 and ECDSA: fixed size */
};

static const struct key_type key_types[] = {
    { "ssh-ed25519", "ED25519", KEY_ED25519, NULL, NULL, NULL, 256 },
    { "ecdsa-sha2-nistp256", "ECDSA", KEY_ECDSA, "nistp256", "P-256",
      "SHA256", 256 },
    { "ecdsa-sha2-nistp384", "ECDSA", KEY_ECDSA, "nistp384", "P-384",
      "SHA384", 384 },
    { "ecdsa-sha2-nistp521", "ECDSA", KEY_ECDSA, "nistp521", "P-521",
      "SHA512", 521 },
    { "ssh-rsa", "RSA", KEY_RSA, NULL, NULL, NULL, 0 },
};

/* RSA keys smaller than this are rejected, as OpenSSH 9 does by
 * default; larger than the maximum is a denial-of-service risk. */
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64

const char ssh_sig_alg_names[] =
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
    "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";

struct ssh_pubkey {
    const struct key_type *type;
    EVP_PKEY *pkey;
    uint8_t *blob;
    size_t blob_len;
};

/// Base64 ///

int ssh_base64_decode(const char *in, size_t len, struct wbuf *out)
{
    size_t pad = 0;
    uint8_t *p;
    int n;

    /* EVP_DecodeBlock wants whole quanta and counts '=' as zero bytes. */
    if (len == 0 || len % 4 != 0 || len > INT32_MAX)
        return SSH_ERR_INVAL;
    if (len > 0 && in[len - 1] == '=')
        pad++;
    if (len > 1 && in[len - 2] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++) {
        if (in[i] == '=')
            return SSH_ERR_INVAL;
    }
    p = wb_reserve(out, len / 4 * 3);
    if (!p)
        return SSH_ERR_NOMEM;
    n = EVP_DecodeBlock(p, (const unsigned char *)in, (int)len);
    if (n < 0 || (size_t)n < pad)
        return SSH_ERR_INVAL;
    wb_commit(out, (size_t)n - pad);
    return SSH_OK;
}

int ssh_base64_encode(const uint8_t *in, size_t len, struct wbuf *out,
                      bool pad)
{
    size_t n = (len + 2) / 3 * 4;
    uint8_t *p;

    if (len > INT32_MAX / 2)
        return SSH_ERR_INVAL;
    p = wb_reserve(out, n + 1);
    if (!p)
        return SSH_ERR_NOMEM;
    EVP_EncodeBlock(p, in, (int)len);
    while (!pad && n > 0 && p[n - 1] == '=')
        n--;
    wb_commit(out, n);
    return SSH_OK;
}

void ssh_fingerprint(const uint8_t *blob, size_t len,
                     char out[SSH_FINGERPRINT_MAX])
{
    uint8_t digest[32];
    unsigned int dlen = 0;
    struct wbuf b64;

    strcpy(out, "SHA256:");
    if (EVP_Digest(blob, len, digest, &dlen, EVP_sha256(), NULL) != 1)
        return;
    wb_init(&b64, 0);
    if (ssh_base64_encode(digest, dlen, &b64, false) == SSH_OK &&
        b64.len < SSH_FINGERPRINT_MAX - 8) {
        memcpy(out + 7, b64.data, b64.len);
        out[7 + b64.len] = '\0';
    }
    wb_free(&b64);
}

/// Decoding key blobs ///

static const struct key_type *find_type(const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++) {
        if (strlen(key_types[i].name) == len &&
            memcmp(key_types[i].name, name, len) == 0)
            return &key_types[i];
    }
    return NULL;
}

static bool string_is(const uint8_t *s, uint32_t len, const char *text)
{
    return strlen(text) == len && memcmp(s, text, len) == 0;
}

/* An mpint that must be positive and minimally encoded (RFC 4251 5). */
static int read_positive_mpint(struct rd *r, const uint8_t **data,
                               uint32_t *len)
{
    if (rd_string(r, data, len))
        return SSH_ERR_INVAL;
    if (*len == 0 || ((*data)[0] & 0x80))
        return SSH_ERR_KEY;
    if ((*data)[0] == 0 && (*len == 1 || !((*data)[1] & 0x80)))
        return SSH_ERR_KEY;
    if ((*data)[0] == 0) {
        (*data)++;
        (*len)--;
    }
    return SSH_OK;
}

static EVP_PKEY *pkey_from_params(const char *alg, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    EVP_PKEY *pkey = NULL;

    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static int decode_ed25519(struct ssh_pubkey *key, struct rd *r)
{
    const uint8_t *pub;
    uint32_t len;

    if (rd_string(r, &pub, &len) || len != ED25519_KEY_LEN)
        return SSH_ERR_KEY;
    key->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
                                            len);
    return key->pkey ? SSH_OK : SSH_ERR_KEY;
}

static int decode_ecdsa(struct ssh_pubkey *key, struct rd *r)
{
    const struct key_type *t = key->type;
    size_t field = (t->bits + 7) / 8;
    const uint8_t *curve, *point;
    uint32_t curve_len, point_len;
    OSSL_PARAM_BLD *bld;

    if (rd_string(r, &curve, &curve_len) ||
        !string_is(curve, curve_len, t->curve_id))
        return SSH_ERR_KEY;
    /* Only uncompressed points: 0x04, then x and y. */
    if (rd_string(r, &point, &point_len) || point_len != 1 + 2 * field ||
        point[0] != 0x04)
        return SSH_ERR_KEY;

    bld = OSSL_PARAM_BLD_new();
    if (!bld)
        return SSH_ERR_NOMEM;
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        t->group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                         point, point_len) == 1)
        key->pkey = pkey_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return key->pkey ? SSH_OK : SSH_ERR_KEY;
}

static int decode_rsa(struct ssh_pubkey *key, struct rd *r)
{
    const uint8_t *e, *n;
    uint32_t e_len, n_len;
    BIGNUM *bn_e = NULL, *bn_n = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int err = SSH_ERR_KEY;

    if (read_positive_mpint(r, &e, &e_len) ||
        read_positive_mpint(r, &n, &n_len))
        return SSH_ERR_KEY;
    if (n_len * 8 > RSA_MAX_BITS + 8 || e_len > 8)
        return SSH_ERR_KEY;

    bn_e = BN_bin2bn(e, (int)e_len, NULL);
    bn_n = BN_bin2bn(n, (int)n_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn_e || !bn_n || !bld) {
        err = SSH_ERR_NOMEM;
        goto out;
    }
    if (BN_num_bits(bn_n) < RSA_MIN_BITS ||
        BN_num_bits(bn_n) > RSA_MAX_BITS || !BN_is_odd(bn_e) ||
        BN_is_one(bn_e))
        goto out;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
        key->pkey = pkey_from_params("RSA", bld);
    if (key->pkey)
        err = SSH_OK;
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_e);
    BN_free(bn_n);
    return err;
}

int ssh_pubkey_from_blob(struct ssh_pubkey **out, const uint8_t *blob,
                         size_t len)
{
    struct ssh_pubkey *key;
    const uint8_t *name;
    uint32_t name_len;
    struct rd r;
    int err;

    rd_init(&r, blob, len);
    if (rd_string(&r, &name, &name_len))
        return SSH_ERR_KEY;
    key = calloc(1, sizeof(*key));
    if (!key)
        return SSH_ERR_NOMEM;
    key->type = find_type(name, name_len);
    if (!key->type) {
        free(key);
        return SSH_ERR_KEY;
    }

    switch (key->type->kind) {
    case KEY_ED25519:
        err = decode_ed25519(key, &r);
        break;
    case KEY_ECDSA:
        err = decode_ecdsa(key, &r);
        break;
    default:
        err = decode_rsa(key, &r);
        break;
    }
    if (!err && rd_left(&r) != 0)
        err = SSH_ERR_KEY;
    if (!err) {
        key->blob = malloc(len);
        if (!key->blob)
            err = SSH_ERR_NOMEM;
    }
    if (err) {
        ssh_pubkey_free(key);
        return err;
    }
    memcpy(key->blob, blob, len);
    key->blob_len = len;
    *out = key;
    return SSH_OK;
}

void ssh_pubkey_free(struct ssh_pubkey *key)
{
    if (!key)
        return;
    EVP_PKEY_free(key->pkey);
    free(key->blob);
    free(key);
}

/// Key lines ///

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *skip_blanks(const char *p)
{
    while (*p && is_blank(*p))
        p++;
    return p;
}

static const char *skip_word(const char *p)
{
    while (*p && !is_blank(*p))
        p++;
    return p;
}

static int copy_comment(const char *p, char **comment)
{
    const char *end;

    p = skip_blanks(p);
    end = p + strlen(p);
    while (end > p && is_blank(end[-1]))
        end--;
    *comment = NULL;
    if (end == p)
        return SSH_OK;
    *comment = strndup(p, (size_t)(end - p));
    return *comment ? SSH_OK : SSH_ERR_NOMEM;
}

int ssh_pubkey_parse_line(struct ssh_pubkey **out, const char *line,
                          char **comment)
{
    const char *type = skip_blanks(line);
    const char *type_end = skip_word(type);
    const char *b64 = skip_blanks(type_end);
    const char *b64_end = skip_word(b64);
    struct ssh_pubkey *key = NULL;
    struct wbuf blob;
    int err;

    if (!find_type((const uint8_t *)type, (size_t)(type_end - type)))
        return SSH_ERR_KEY;

    wb_init(&blob, 64 * 1024);
    err = ssh_base64_decode(b64, (size_t)(b64_end - b64), &blob);
    if (!err)
        err = ssh_pubkey_from_blob(&key, blob.data, blob.len);
    wb_free(&blob);
    if (err)
        return err == SSH_ERR_NOMEM ? err : SSH_ERR_KEY;

    /* The type before the base64 must name the key inside it. */
    if (strlen(key->type->name) != (size_t)(type_end - type) ||
        memcmp(key->type->name, type, (size_t)(type_end - type)) != 0) {
        ssh_pubkey_free(key);
        return SSH_ERR_KEY;
    }
    if (comment) {
        err = copy_comment(b64_end, comment);
        if (err) {
            ssh_pubkey_free(key);
            return err;
        }
    }
    *out = key;
    return SSH_OK;
}

/// Properties ///

bool ssh_pubkey_equal(const struct ssh_pubkey *a, const struct ssh_pubkey *b)
{
    return a->blob_len == b->blob_len &&
           memcmp(a->blob, b->blob, a->blob_len) == 0;
}

const uint8_t *ssh_pubkey_blob(const struct ssh_pubkey *key, size_t *len)
{
    *len = key->blob_len;
    return key->blob;
}

const char *ssh_pubkey_type_name(const struct ssh_pubkey *key)
{
    return key->type->name;
}

const char *ssh_pubkey_type_label(const struct ssh_pubkey *key)
{
    return key->type->label;
}

unsigned ssh_pubkey_bits(const struct ssh_pubkey *key)
{
    if (key->type->kind == KEY_RSA)
        return (unsigned)EVP_PKEY_get_bits(key->pkey);
    return key->type->bits;
}

/// Signatures ///

bool ssh_sig_alg_supported(const char *sig_alg)
{
    size_t len = strlen(sig_alg);
    const char *p = ssh_sig_alg_names;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, sig_alg, len) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

static int verify_digest(EVP_PKEY *pkey, const char *digest,
                         const uint8_t *sig, size_t sig_len,
                         const uint8_t *data, size_t data_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    if (!md)
        return SSH_ERR_NOMEM;
    ok = EVP_DigestVerifyInit_ex(md, NULL, digest, NULL, NULL, pkey,
                                 NULL) == 1 &&
         EVP_DigestVerify(md, sig, sig_len, data, data_len) == 1;
    EVP_MD_CTX_free(md);
    return ok ? SSH_OK : SSH_ERR_SIGNATURE;
}

/* The ECDSA signature blob contains mpint r and mpint s, which libcrypto
 * takes as a DER ECDSA-Sig-Value. */
static int verify_ecdsa(const struct ssh_pubkey *key, const uint8_t *sig,
                        uint32_t sig_len, const uint8_t *data,
                        size_t data_len)
{
    const uint8_t *r_bytes, *s_bytes;
    uint32_t r_len, s_len;
    ECDSA_SIG *esig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    int der_len, err = SSH_ERR_SIGNATURE;
    struct rd rd;

    rd_init(&rd, sig, sig_len);
    if (read_positive_mpint(&rd, &r_bytes, &r_len) ||
        read_positive_mpint(&rd, &s_bytes, &s_len) || rd_left(&rd) != 0)
        return SSH_ERR_SIGNATURE;

    esig = ECDSA_SIG_new();
    r = BN_bin2bn(r_bytes, (int)r_len, NULL);
    s = BN_bin2bn(s_bytes, (int)s_len, NULL);
    if (!esig || !r || !s || ECDSA_SIG_set0(esig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        err = SSH_ERR_NOMEM;
        goto out;
    }
    der_len = i2d_ECDSA_SIG(esig, &der);
    if (der_len > 0)
        err = verify_digest(key->pkey, key->type->digest, der,
                            (size_t)der_len, data, data_len);
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(esig);
    return err;
}

/* PKCS #1 v1.5 signatures are as long as the modulus; OpenSSH accepts
 * shorter ones (leading zero bytes dropped) and so do we. */
static int verify_rsa(const struct ssh_pubkey *key, const char *digest,
                      const uint8_t *sig, uint32_t sig_len,
                      const uint8_t *data, size_t data_len)
{
    size_t mod_len = (size_t)EVP_PKEY_get_size(key->pkey);
    uint8_t *padded;
    int err;

    if (sig_len == 0 || sig_len > mod_len)
        return SSH_ERR_SIGNATURE;
    if (sig_len == mod_len)
        return verify_digest(key->pkey, digest, sig, sig_len, data,
                             data_len);
    padded = calloc(1, mod_len);
    if (!padded)
        return SSH_ERR_NOMEM;
    memcpy(padded + mod_len - sig_len, sig, sig_len);
    err = verify_digest(key->pkey, digest, padded, mod_len, data, data_len);
    free(padded);
    return err;
}

/* The digest an RSA signature algorithm names, or NULL (ssh-rsa's SHA-1
 * among them). */
static const char *rsa_digest(const char *sig_alg)
{
    if (strcmp(sig_alg, "rsa-sha2-256") == 0)
        return "SHA256";
    if (strcmp(sig_alg, "rsa-sha2-512") == 0)
        return "SHA512";
    return NULL;
}

int ssh_pubkey_verify(const struct ssh_pubkey *key, const char *sig_alg,
                      const uint8_t *sig, size_t sig_len,
                      const uint8_t *data, size_t data_len)
{
    const char *digest = NULL;
    const uint8_t *alg, *raw;
    uint32_t alg_len, raw_len;
    struct rd r;

    if (key->type->kind == KEY_RSA) {
        digest = rsa_digest(sig_alg);
        if (!digest)
            return SSH_ERR_SIGNATURE;
    } else if (strcmp(sig_alg, key->type->name) != 0) {
        return SSH_ERR_SIGNATURE;
    }

    /* The blob repeats the algorithm, which must be the one requested. */
    rd_init(&r, sig, sig_len);
    if (rd_string(&r, &alg, &alg_len) || rd_string(&r, &raw, &raw_len) ||
        rd_left(&r) != 0 || !string_is(alg, alg_len, sig_alg))
        return SSH_ERR_SIGNATURE;

    switch (key->type->kind) {
    case KEY_ED25519:
        if (raw_len != ED25519_SIG_LEN)
            return SSH_ERR_SIGNATURE;
        return verify_digest(key->pkey, NULL, raw, raw_len, data, data_len);
    case KEY_ECDSA:
        return verify_ecdsa(key, raw, raw_len, data, data_len);
    case KEY_RSA:
        return verify_rsa(key, digest, raw, raw_len, data, data_len);
    }
    return SSH_ERR_SIGNATURE;
}
