/*
 * Keys and packet protection: OpenSSH public-key lines and fingerprints,
 * signatures made by OpenSSH verified here, private key files, host keys
 * from seeds, and every cipher sealing and opening packets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "ssh/ssh_internal.h"

/* Keys, fingerprints (ssh-keygen -l) and signatures (ssh-keygen -Y sign
 * -n file over the message "sshfsd test") made with OpenSSH 9.2. */
struct key_fixture {
    const char *line;
    const char *fingerprint;
    const char *label;
    unsigned bits;
    const char *sshsig;         /* base64 of the SSHSIG blob */
};

static const struct key_fixture key_fixtures[] = {
    {
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILYHWPvhqBanXexY3sYHgWIU"
      "lVhDjAyQz8V0Sa9wYSXv k-ed25519",
      "SHA256:K7ipOfLMglZ4EYSrYG4RHroc7UlNSs8bDdiiyDVe2OE", "ED25519", 256,
      "U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgtgdY++GoFqdd7Fje"
      "xgeBYhSVWEOMDJDPxXRJr3BhJe8AAAAEZmlsZQAAAAAAAAAGc2hhNTEyAAAA"
      "UwAAAAtzc2gtZWQyNTUxOQAAAECK8GoFt24pgOGMRq04pjq2Ga8cx2roi6jD"
      "8xNxW9GVv2UrgE/3QYj1haT5bf2Msp50JangCSy1EMSTiiaaA1EI" },
    {
      "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlz"
      "dHAyNTYAAABBBCwe8Gd1JA2MHvDKBNLUqOlIRSzURv5Sjn8YdmW0XgZxnlj+"
      "AWWGDyHFuHG7zMOm5I3+WS3dIwv8vdgn3hM8CCs= k-ecdsa256",
      "SHA256:sHzyqZBuveJWVsGw0g7HYIrU+gaUgErdo1N78aLf++U", "ECDSA", 256,
      "U1NIU0lHAAAAAQAAAGgAAAATZWNkc2Etc2hhMi1uaXN0cDI1NgAAAAhuaXN0"
      "cDI1NgAAAEEELB7wZ3UkDYwe8MoE0tSo6UhFLNRG/lKOfxh2ZbReBnGeWP4B"
      "ZYYPIcW4cbvMw6bkjf5ZLd0jC/y92CfeEzwIKwAAAARmaWxlAAAAAAAAAAZz"
      "aGE1MTIAAABkAAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAABJAAAAIBWFWaqg"
      "qbg/11iG/PkxGlZq3ZeswxX8oLfnWCRr06KvAAAAIQDuP8yqzp9WgC/0VvdS"
      "KHVG8qtMi0B2zpqdzD/OYNZkbg==" },
    {
      "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlz"
      "dHAzODQAAABhBFDhLdPG3cEnzUiw7LwixsB24TZw3cb7Yefa0YH6qiTw23WM"
      "qzaoERMcz7uBO0sb00XDTq7bJC7snYjS7zDw9Fkk25deQ9wC4rywI1+UPfhw"
      "5efubOlR4wS9I7PJpdTuoA== k-ecdsa384",
      "SHA256:ITCgi6YdQm3q5wUQHNgyHuPs7ETMFXVPI/OY7BnbFnE", "ECDSA", 384,
      "U1NIU0lHAAAAAQAAAIgAAAATZWNkc2Etc2hhMi1uaXN0cDM4NAAAAAhuaXN0"
      "cDM4NAAAAGEEUOEt08bdwSfNSLDsvCLGwHbhNnDdxvth59rRgfqqJPDbdYyr"
      "NqgRExzPu4E7SxvTRcNOrtskLuydiNLvMPD0WSTbl15D3ALivLAjX5Q9+HDl"
      "5+5s6VHjBL0js8ml1O6gAAAABGZpbGUAAAAAAAAABnNoYTUxMgAAAIQAAAAT"
      "ZWNkc2Etc2hhMi1uaXN0cDM4NAAAAGkAAAAxAPe5fFKPI5jd4WVVyAtLSYv+"
      "XSS8lvc4R1o40YO7DY+rhFQqsdkG+HrFGZlNiDu0VAAAADB8IgXPMSRFIHgp"
      "52DEXUJJUux6ntqXf3pUX9As/KiPu8oYgw7ENNEBHtxLZrwQT1g=" },
    {
      "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlz"
      "dHA1MjEAAACFBAE2/fxsOl+v/15xaNHlHQjviw6Tlg1DDfZ04BQDk3XcAw2P"
      "v/DdUOyuQ0KxnQ66VxB87a5w3g+1sRX1mk7dlj592AAb2fI3YS+3Sq0DnCAB"
      "vNoB0+sWGyfc4jueI4F8Htbd8/mvUVds8rtGwWfumEy1ZvbHYFs6HLXcsur2"
      "3Qiw4a4DhQ== k-ecdsa521",
      "SHA256:1P5Aj+p/FlJzOflCdFv5nekYJos6b4SZomcth0jmGsA", "ECDSA", 521,
      "U1NIU0lHAAAAAQAAAKwAAAATZWNkc2Etc2hhMi1uaXN0cDUyMQAAAAhuaXN0"
      "cDUyMQAAAIUEATb9/Gw6X6//XnFo0eUdCO+LDpOWDUMN9nTgFAOTddwDDY+/"
      "8N1Q7K5DQrGdDrpXEHztrnDeD7WxFfWaTt2WPn3YABvZ8jdhL7dKrQOcIAG8"
      "2gHT6xYbJ9ziO54jgXwe1t3z+a9RV2zyu0bBZ+6YTLVm9sdgWzoctdyy6vbd"
      "CLDhrgOFAAAABGZpbGUAAAAAAAAABnNoYTUxMgAAAKcAAAATZWNkc2Etc2hh"
      "Mi1uaXN0cDUyMQAAAIwAAABCAdw7FDT/TNXDJYNS3Qgx5KW1omDfWso5BLqC"
      "cK5HNNnGCSWLdm2LGmN5xO5Yx6Ik2/GjCPE7qPXxUivxKg5vClREAAAAQgGw"
      "wpvpDbongAZfTiWFVwMLjEcJGR5mjiINb+sVjilKiGkWfJ2omN7ddVJ084sa"
      "fVN5reYcJugYFcUMF1g064Yy1A==" },
    {
      "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC6lpEstSfCyjU44RKwK63L"
      "DyN5E7mDzB2WEN72CVNdQVR06wCmtI6luE1slD9PQxMvzY3yrkAhENZZnAPF"
      "OBnywx3gh4IkHfArRbkwCyygoEWUes4cFKZWmWRtoqiU+YAwaYoEm6ezmT3t"
      "Sk0KwDEI1eCBbMaMTomJXSU0L3rNr6pAXNR7M1bfnmBXXeVhD0wlUsyatdpY"
      "JEGUSoMJARSXxWZIORlJwMmuc45Ck8g2WEMVRNtP42BHtdYHEgADZbrYSGdC"
      "EJGj2PD2oDaf7mS0rHmU7M7hho3qedCD/ILsEp9TL6blwvhaB3vmPnxbayJR"
      "XF0vTJsUI/d5hPXWRbKL k-rsa2048",
      "SHA256:iisBH3xRIjFUHruPmVEFsKigt0LrdDDGaL5Y+TDFgwg", "RSA", 2048,
      "U1NIU0lHAAAAAQAAARcAAAAHc3NoLXJzYQAAAAMBAAEAAAEBALqWkSy1J8LK"
      "NTjhErArrcsPI3kTuYPMHZYQ3vYJU11BVHTrAKa0jqW4TWyUP09DEy/NjfKu"
      "QCEQ1lmcA8U4GfLDHeCHgiQd8CtFuTALLKCgRZR6zhwUplaZZG2iqJT5gDBp"
      "igSbp7OZPe1KTQrAMQjV4IFsxoxOiYldJTQves2vqkBc1HszVt+eYFdd5WEP"
      "TCVSzJq12lgkQZRKgwkBFJfFZkg5GUnAya5zjkKTyDZYQxVE20/jYEe11gcS"
      "AANluthIZ0IQkaPY8PagNp/uZLSseZTszuGGjep50IP8guwSn1MvpuXC+FoH"
      "e+Y+fFtrIlFcXS9MmxQj93mE9dZFsosAAAAEZmlsZQAAAAAAAAAGc2hhNTEy"
      "AAABFAAAAAxyc2Etc2hhMi01MTIAAAEAq7e5kcVP2cKOdRoPesPT8dfvvdkT"
      "rnNkCV+/JwQCUcQJOyZCZxR4DdMMZuvBam9Po+LsfyVHtx6TpagyG1EWXXl9"
      "Mx4ycsS47c/PSmctnbdSxKxfYLU7j9K04EuGPJLV8kxjonG4pjcqVajf1Mue"
      "aSRsbn4v8/njJ1UEcmKABrwxtDvraV1PxCyWse1lq62CdbuN7bBzKDv658GM"
      "aCRA+L5mKSnLTDyXEsghTvlGa9dMvGAdAAGxyn4RUO/qIlQCel/69ZilhMMW"
      "0+54YTKxoTyr7tNLESQI1GgAjX51RptKlufkCWxvJzMECSGUNr2vvk+2k2fR"
      "QR5SCokTk6QyIw==" },
};

static const char rsa1024_line[] =
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCRC3MNlglBeyQGSQ+nFd3+"
    "/RbJ61QZjqSXW+sxuObABQA2SD6GVGOJmwYkD6nn59sg8sEJWwGrtRYK+7OV"
    "dgjt+6rl6nZbmScl2rXxVE7bL7uRc551SNkGmgeVKxXypZcV5B/zEmTx2Nis"
    "MhbCpka1oGoGCs9gYO7td5A9QlpvAQ== small";

/* The private half of key_fixtures[0]. */
static const char ed25519_private[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACC2B1j74agWp13sWN7GB4FiFJVYQ4wMkM/FdEmvcGEl7wAAAJDKMIZGyjCG\n"
    "RgAAAAtzc2gtZWQyNTUxOQAAACC2B1j74agWp13sWN7GB4FiFJVYQ4wMkM/FdEmvcGEl7w\n"
    "AAAECkWxF0ONrra6kh5LHJ+GSvVbG+iEU8lLTaUJ4hOZJS2LYHWPvhqBanXexY3sYHgWIU\n"
    "lVhDjAyQz8V0Sa9wYSXvAAAACWstZWQyNTUxOQECAwQ=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";

/* An ed25519 key encrypted with a passphrase. */
static const char encrypted_private[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABDmhLxowJ\n"
    "z84KMAzY8X47HQAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIKVHAjqwK00aIWfU\n"
    "IccT/LlmdsvH04hbuvr66sI/rJgXAAAAkJDUmplzaK04JP3Xbw/V0f/7mvycB4USZUA0Gc\n"
    "+WvPjYP1ZlHEmp9aBFLFEF+9YnlhBeKfHHA3iCbxnxdZK0Dw34YmsOPTISp1JCR0Q5ncsG\n"
    "w5eAzqjbMe2RBCFgSfxdpWAdjZoMrtKgM/3+3gp76vMUuZoG7oUx4bveqDNP0lpMp2LZZO\n"
    "rC6+MT/OxdTg8fRA==\n"
    "-----END OPENSSH PRIVATE KEY-----\n";

/* HKDF-SHA256 of the seed "111213" as docs/DESIGN.md describes it,
 * computed with Python's cryptography package. */
static const char seed_111213_fingerprint[] =
    "SHA256:wI+m2PEDXWed+JoF5NmuAgQ2jMxFzIt+lJF4tE0ZlcE";

static const size_t fixture_count =
    sizeof(key_fixtures) / sizeof(key_fixtures[0]);

static struct ssh_pubkey *parse(const char *line)
{
    struct ssh_pubkey *key = NULL;

    assert_int_equal(ssh_pubkey_parse_line(&key, line, NULL), SSH_OK);
    return key;
}

static void key_lines_parse_with_fingerprints(void **state)
{
    (void)state;
    for (size_t i = 0; i < fixture_count; i++) {
        const struct key_fixture *f = &key_fixtures[i];
        struct ssh_pubkey *key = NULL;
        char fp[SSH_FINGERPRINT_MAX], *comment = NULL;
        const uint8_t *blob;
        size_t len;

        assert_int_equal(ssh_pubkey_parse_line(&key, f->line, &comment),
                         SSH_OK);
        blob = ssh_pubkey_blob(key, &len);
        ssh_fingerprint(blob, len, fp);
        assert_string_equal(fp, f->fingerprint);
        assert_string_equal(ssh_pubkey_type_label(key), f->label);
        assert_int_equal(ssh_pubkey_bits(key), f->bits);
        assert_non_null(comment);
        assert_memory_equal(comment, "k-", 2);
        free(comment);
        ssh_pubkey_free(key);
    }
}

static void key_line_without_comment_parses(void **state)
{
    struct ssh_pubkey *key = NULL;
    char *comment = (char *)"unset";
    char line[256];

    (void)state;
    /* Type and base64 only, with surrounding blanks. */
    snprintf(line, sizeof(line), "  %.*s  \n",
             (int)(strrchr(key_fixtures[0].line, ' ') -
                   key_fixtures[0].line),
             key_fixtures[0].line);
    assert_int_equal(ssh_pubkey_parse_line(&key, line, &comment), SSH_OK);
    assert_null(comment);
    assert_true(ssh_pubkey_equal(key, key));
    ssh_pubkey_free(key);
}

static void invalid_key_lines_are_rejected(void **state)
{
    static const char *const lines[] = {
        "",
        "ssh-ed25519",
        "ssh-ed25519 not-base64!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILYHWPvhqBanXexY3sYHgWIU",
        /* A valid ed25519 blob under another type name. */
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAILYHWPvhqBanXexY3sYHgWIUlVhDjAyQ"
        "z8V0Sa9wYSXv",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMe",
        /* ssh-ed25519 with one extra byte inside the blob. */
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILYHWPvhqBanXexY3sYHgWIUlVhD"
        "jAyQz8V0Sa9wYSXvAA==",
    };
    struct ssh_pubkey *key = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_int_equal(ssh_pubkey_parse_line(&key, lines[i], NULL),
                         SSH_ERR_KEY);
    /* RSA below 2048 bits, as OpenSSH 9 refuses too. */
    assert_int_equal(ssh_pubkey_parse_line(&key, rsa1024_line, NULL),
                     SSH_ERR_KEY);
}

/* An SSHSIG blob: its signature covers "SSHSIG", the namespace, the
 * reserved field, the hash name and the message's hash. */
struct sshsig {
    struct wbuf raw;
    struct wbuf signed_data;
    const uint8_t *pub;
    uint32_t pub_len;
    const uint8_t *sig;
    uint32_t sig_len;
    char sig_alg[32];
};

static void decode_sshsig(const char *b64, const char *message,
                          struct sshsig *out)
{
    const uint8_t *magic, *ns, *reserved, *hash_alg, *alg;
    uint32_t version, ns_len, reserved_len, hash_alg_len, alg_len;
    uint8_t digest[64];
    unsigned int digest_len;
    struct rd r;

    wb_init(&out->raw, 0);
    wb_init(&out->signed_data, 0);
    assert_int_equal(ssh_base64_decode(b64, strlen(b64), &out->raw), 0);
    rd_init(&r, out->raw.data, out->raw.len);
    assert_int_equal(rd_bytes(&r, 6, &magic), 0);
    assert_memory_equal(magic, "SSHSIG", 6);
    assert_int_equal(rd_u32(&r, &version), 0);
    assert_int_equal(version, 1);
    assert_int_equal(rd_string(&r, &out->pub, &out->pub_len), 0);
    assert_int_equal(rd_string(&r, &ns, &ns_len), 0);
    assert_int_equal(rd_string(&r, &reserved, &reserved_len), 0);
    assert_int_equal(rd_string(&r, &hash_alg, &hash_alg_len), 0);
    assert_int_equal(rd_string(&r, &out->sig, &out->sig_len), 0);
    assert_int_equal(rd_left(&r), 0);
    assert_int_equal(hash_alg_len, 6);
    assert_memory_equal(hash_alg, "sha512", 6);

    rd_init(&r, out->sig, out->sig_len);
    assert_int_equal(rd_string(&r, &alg, &alg_len), 0);
    assert_true(alg_len < sizeof(out->sig_alg));
    memcpy(out->sig_alg, alg, alg_len);
    out->sig_alg[alg_len] = '\0';

    assert_int_equal(EVP_Digest(message, strlen(message), digest,
                                &digest_len, EVP_sha512(), NULL), 1);
    wb_bytes(&out->signed_data, "SSHSIG", 6);
    wb_string(&out->signed_data, ns, ns_len);
    wb_string(&out->signed_data, reserved, reserved_len);
    wb_string(&out->signed_data, hash_alg, hash_alg_len);
    wb_string(&out->signed_data, digest, digest_len);
}

static void openssh_signatures_verify(void **state)
{
    (void)state;
    for (size_t i = 0; i < fixture_count; i++) {
        struct ssh_pubkey *key = parse(key_fixtures[i].line);
        struct sshsig sig;
        const uint8_t *blob;
        size_t blob_len;

        decode_sshsig(key_fixtures[i].sshsig, "sshfsd test", &sig);
        blob = ssh_pubkey_blob(key, &blob_len);
        assert_int_equal(sig.pub_len, blob_len);
        assert_memory_equal(sig.pub, blob, blob_len);
        assert_int_equal(ssh_pubkey_verify(key, sig.sig_alg, sig.sig,
                                           sig.sig_len, sig.signed_data.data,
                                           sig.signed_data.len), SSH_OK);

        /* One changed byte of the signed data fails. */
        sig.signed_data.data[sig.signed_data.len - 1] ^= 1;
        assert_int_equal(ssh_pubkey_verify(key, sig.sig_alg, sig.sig,
                                           sig.sig_len, sig.signed_data.data,
                                           sig.signed_data.len),
                         SSH_ERR_SIGNATURE);
        wb_free(&sig.raw);
        wb_free(&sig.signed_data);
        ssh_pubkey_free(key);
    }
}

static void signature_algorithm_must_match(void **state)
{
    struct ssh_pubkey *rsa = parse(key_fixtures[4].line);
    struct ssh_pubkey *ed = parse(key_fixtures[0].line);
    struct sshsig sig;

    (void)state;
    decode_sshsig(key_fixtures[4].sshsig, "sshfsd test", &sig);
    assert_string_equal(sig.sig_alg, "rsa-sha2-512");
    /* The request names another algorithm than the signature blob. */
    assert_int_equal(ssh_pubkey_verify(rsa, "rsa-sha2-256", sig.sig,
                                       sig.sig_len, sig.signed_data.data,
                                       sig.signed_data.len),
                     SSH_ERR_SIGNATURE);
    /* SHA-1 RSA signatures are never accepted. */
    assert_int_equal(ssh_pubkey_verify(rsa, "ssh-rsa", sig.sig, sig.sig_len,
                                       sig.signed_data.data,
                                       sig.signed_data.len),
                     SSH_ERR_SIGNATURE);
    assert_false(ssh_sig_alg_supported("ssh-rsa"));
    assert_true(ssh_sig_alg_supported("rsa-sha2-256"));
    /* An RSA signature does not verify under an ed25519 key. */
    assert_int_equal(ssh_pubkey_verify(ed, "rsa-sha2-512", sig.sig,
                                       sig.sig_len, sig.signed_data.data,
                                       sig.signed_data.len),
                     SSH_ERR_SIGNATURE);
    wb_free(&sig.raw);
    wb_free(&sig.signed_data);
    ssh_pubkey_free(rsa);
    ssh_pubkey_free(ed);
}

static void private_key_file_loads(void **state)
{
    struct ssh_hostkey *host = NULL;
    struct ssh_pubkey *pub = parse(key_fixtures[0].line);
    const uint8_t *a, *b;
    size_t a_len, b_len;

    (void)state;
    assert_int_equal(ssh_hostkey_parse_openssh(&host, ed25519_private,
                                               strlen(ed25519_private)),
                     SSH_OK);
    a = ssh_hostkey_blob(host, &a_len);
    b = ssh_pubkey_blob(pub, &b_len);
    assert_int_equal(a_len, b_len);
    assert_memory_equal(a, b, a_len);
    ssh_hostkey_free(host);
    ssh_pubkey_free(pub);
}

static void unusable_private_keys_are_rejected(void **state)
{
    struct ssh_hostkey *host = NULL;
    char broken[sizeof(ed25519_private)];

    (void)state;
    assert_int_equal(ssh_hostkey_parse_openssh(&host, encrypted_private,
                                               strlen(encrypted_private)),
                     SSH_ERR_KEY);
    assert_int_equal(ssh_hostkey_parse_openssh(&host, "", 0), SSH_ERR_KEY);
    /* The armor without its end line. */
    assert_int_equal(ssh_hostkey_parse_openssh(&host, ed25519_private, 120),
                     SSH_ERR_KEY);
    /* A changed base64 character inside the private seed: the public
     * key stored beside it no longer matches. */
    memcpy(broken, ed25519_private, sizeof(broken));
    char *p = strstr(broken, "ONrra6");
    assert_non_null(p);
    p[0] = 'P';
    assert_int_equal(ssh_hostkey_parse_openssh(&host, broken,
                                               strlen(broken)),
                     SSH_ERR_KEY);
}

static void host_key_from_seed_is_stable(void **state)
{
    struct ssh_hostkey *a = NULL, *b = NULL, *c = NULL;
    char fp[SSH_FINGERPRINT_MAX];
    const uint8_t *blob;
    size_t len;

    (void)state;
    assert_int_equal(ssh_hostkey_derive(&a, "111213"), SSH_OK);
    assert_int_equal(ssh_hostkey_derive(&b, "111213"), SSH_OK);
    assert_int_equal(ssh_hostkey_derive(&c, "111214"), SSH_OK);
    blob = ssh_hostkey_blob(a, &len);
    ssh_fingerprint(blob, len, fp);
    assert_string_equal(fp, seed_111213_fingerprint);
    assert_memory_equal(blob, ssh_hostkey_blob(b, &len), len);
    assert_memory_not_equal(blob, ssh_hostkey_blob(c, &len), len);
    ssh_hostkey_free(a);
    ssh_hostkey_free(b);
    ssh_hostkey_free(c);
}

static void host_key_signature_verifies(void **state)
{
    uint8_t seed[SSH_ED25519_SEED_LEN];
    struct ssh_hostkey *host = NULL;
    struct ssh_pubkey *pub = NULL;
    const uint8_t *blob;
    size_t len;
    struct wbuf sig;

    (void)state;
    wb_init(&sig, 0);
    assert_int_equal(ssh_hostkey_generate(&host, seed), SSH_OK);
    blob = ssh_hostkey_blob(host, &len);
    assert_int_equal(ssh_pubkey_from_blob(&pub, blob, len), SSH_OK);
    assert_int_equal(ssh_hostkey_sign(host, (const uint8_t *)"hash", 4,
                                      &sig), SSH_OK);
    assert_int_equal(ssh_pubkey_verify(pub, "ssh-ed25519", sig.data,
                                       sig.len, (const uint8_t *)"hash", 4),
                     SSH_OK);
    assert_int_equal(ssh_pubkey_verify(pub, "ssh-ed25519", sig.data,
                                       sig.len, (const uint8_t *)"hasH", 4),
                     SSH_ERR_SIGNATURE);
    wb_free(&sig);
    ssh_pubkey_free(pub);
    ssh_hostkey_free(host);
}

/* Seal a packet with one direction's keys and open it with the other's,
 * as the two ends of a connection do. */
static void seal_and_open(const char *cipher, const char *mac_name)
{
    const struct ssh_cipher_alg *alg = ssh_cipher_find(cipher,
                                                       strlen(cipher));
    const struct ssh_mac_alg *mac = mac_name
        ? ssh_mac_find(mac_name, strlen(mac_name)) : NULL;
    uint8_t key[64], iv[16], mac_key[64], pkt[2048], copy[2048];
    struct ssh_crypt *tx = NULL, *rx = NULL;
    size_t len, tag;
    uint32_t plain_len;

    assert_non_null(alg);
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)i;
        mac_key[i] = (uint8_t)(3 * i);
    }
    memset(iv, 0x42, sizeof(iv));
    assert_int_equal(ssh_crypt_new(&tx, alg, mac, true, key, iv, mac_key),
                     SSH_OK);
    assert_int_equal(ssh_crypt_new(&rx, alg, mac, false, key, iv, mac_key),
                     SSH_OK);
    tag = ssh_crypt_tag_len(tx);

    for (uint32_t seq = 5; seq < 8; seq++) {
        len = ssh_crypt_aad(tx) ? 1008 : 1004;
        for (size_t i = 0; i < len; i++)
            pkt[4 + i] = (uint8_t)(i + seq);
        put_be32(pkt, (uint32_t)len);
        memcpy(copy, pkt, 4 + len);
        assert_int_equal(ssh_crypt_seal(tx, seq, pkt, len), SSH_OK);
        assert_memory_not_equal(pkt + 8, copy + 8, 16);

        assert_int_equal(ssh_crypt_peek_length(rx, seq, pkt, &plain_len),
                         SSH_OK);
        assert_int_equal(plain_len, len);
        assert_int_equal(ssh_crypt_open(rx, seq, pkt, len), SSH_OK);
        assert_memory_equal(pkt + 4, copy + 4, len);
    }

    /* A flipped bit in the tag fails, and so does the wrong sequence
     * number. */
    len = ssh_crypt_aad(tx) ? 64 : 60;
    put_be32(pkt, (uint32_t)len);
    assert_int_equal(ssh_crypt_seal(tx, 8, pkt, len), SSH_OK);
    memcpy(copy, pkt, 4 + len + tag);
    pkt[4 + len + tag - 1] ^= 0x80;
    assert_int_equal(ssh_crypt_peek_length(rx, 8, pkt, &plain_len), SSH_OK);
    assert_int_equal(ssh_crypt_open(rx, 8, pkt, len), SSH_ERR_MAC);
    ssh_crypt_free(tx);
    ssh_crypt_free(rx);
}

static void every_cipher_seals_and_opens(void **state)
{
    (void)state;
    seal_and_open("chacha20-poly1305@openssh.com", NULL);
    seal_and_open("aes128-gcm@openssh.com", NULL);
    seal_and_open("aes256-gcm@openssh.com", NULL);
    seal_and_open("aes128-ctr", "hmac-sha2-256");
    seal_and_open("aes256-ctr", "hmac-sha2-512");
    seal_and_open("aes128-ctr", "hmac-sha2-256-etm@openssh.com");
    seal_and_open("aes256-ctr", "hmac-sha2-512-etm@openssh.com");
    assert_null(ssh_cipher_find("aes128-cbc", 10));
    assert_null(ssh_mac_find("hmac-sha1", 9));
}

static void base64_decodes_exactly(void **state)
{
    struct wbuf out;

    (void)state;
    wb_init(&out, 0);
    assert_int_equal(ssh_base64_decode("c3NoZnNk", 8, &out), SSH_OK);
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.data, "sshfsd", 6);
    wb_reset(&out);
    assert_int_equal(ssh_base64_decode("c3No", 4, &out), SSH_OK);
    assert_int_equal(out.len, 3);
    wb_reset(&out);
    assert_int_equal(ssh_base64_decode("c2g=", 4, &out), SSH_OK);
    assert_int_equal(out.len, 2);
    wb_reset(&out);
    assert_int_equal(ssh_base64_decode("cw==", 4, &out), SSH_OK);
    assert_int_equal(out.len, 1);
    wb_reset(&out);
    assert_int_equal(ssh_base64_decode("c3N", 3, &out), SSH_ERR_INVAL);
    assert_int_equal(ssh_base64_decode("c=No", 4, &out), SSH_ERR_INVAL);
    assert_int_equal(ssh_base64_decode("c3N!", 4, &out), SSH_ERR_INVAL);
    wb_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_lines_parse_with_fingerprints),
        cmocka_unit_test(key_line_without_comment_parses),
        cmocka_unit_test(invalid_key_lines_are_rejected),
        cmocka_unit_test(openssh_signatures_verify),
        cmocka_unit_test(signature_algorithm_must_match),
        cmocka_unit_test(private_key_file_loads),
        cmocka_unit_test(unusable_private_keys_are_rejected),
        cmocka_unit_test(host_key_from_seed_is_stable),
        cmocka_unit_test(host_key_signature_verifies),
        cmocka_unit_test(every_cipher_seals_and_opens),
        cmocka_unit_test(base64_decodes_exactly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
