/*
 * The AES-CCM encrypted device.  mirage-block-ccm's fixture images decrypt
 * to the plain image and mount, and modified images fail where they were
 * modified and nowhere else.  Keys and sizes are checked.  littlefs works
 * on top of the device at several block sizes, on zero-filled images, and
 * across power loss at every write.
 *
 * The fixtures live in $FIXTURES_DIR/ccm and $FIXTURES_DIR/littlefs
 * (default tests/fixtures, relative to the repository root where tests
 * run).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "lfs_test_tree.h"

#define SECTOR BD_CCM_SECTOR_SIZE
#define PAIR BD_CCM_PAIR_SIZE
#define PLAIN_SIZE 131072          /* small-512-v20.img */
#define PLAIN_SECTORS (PLAIN_SIZE / SECTOR)

/* The key of every shared fixture, in hex and as bytes. */
#define FIXTURE_KEY_HEX "1234567890ABCDEF1234567890ABCDEF"
static const uint8_t fixture_key[16] = {
    0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef,
    0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef,
};

static const uint8_t other_key[16] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

/* ---- Fixtures ---- */

static const char *fixtures_dir(void)
{
    const char *dir = getenv("FIXTURES_DIR");

    return dir != NULL && dir[0] != '\0' ? dir : "tests/fixtures";
}

static void fixture_path(char *out, size_t len, const char *sub,
                         const char *name)
{
    snprintf(out, len, "%s/%s/%s", fixtures_dir(), sub, name);
}

static uint8_t *load_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long len;

    if (f == NULL)
        fail_msg("cannot open %s (set FIXTURES_DIR to the fixtures folder)",
                 path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    data = tree_xmalloc((size_t)len + 1);
    assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    data[len] = '\0';
    *size = (size_t)len;
    return data;
}

static uint8_t *load_fixture(const char *sub, const char *name, size_t *size)
{
    char path[512];

    fixture_path(path, sizeof(path), sub, name);
    return load_file(path, size);
}

static uint8_t *load_plain_image(void)
{
    size_t size;
    uint8_t *plain = load_fixture("littlefs", "small-512-v20.img", &size);

    assert_int_equal(size, PLAIN_SIZE);
    return plain;
}

/* A memory device holding a copy of size bytes of data. */
static struct bd *mem_with(const uint8_t *data, size_t size)
{
    struct bd *mem = bd_mem_new(size);

    assert_non_null(mem);
    memcpy(bd_mem_data(mem), data, size);
    return mem;
}

static struct bd *mem_with_fixture(const char *name)
{
    size_t size;
    uint8_t *data = load_fixture("ccm", name, &size);
    struct bd *mem = mem_with(data, size);

    free(data);
    return mem;
}

/* The encrypted device over inner, which it then owns. */
static struct bd *ccm_over(struct bd *inner, const uint8_t *key,
                           size_t keylen)
{
    char err[256] = "";
    struct bd *ccm = bd_ccm_new(inner, key, keylen, err, sizeof(err));

    if (ccm == NULL)
        fail_msg("bd_ccm_new failed: %s", err);
    return ccm;
}

/* The encrypted device over mem that leaves mem open when it closes: the
 * fault-injecting wrapper in between never cuts and does not own mem. */
static struct bd *ccm_view(struct bd *mem, const uint8_t *key, size_t keylen)
{
    struct bd *passthrough = bd_faulty_new(mem, 0, 0);

    assert_non_null(passthrough);
    return ccm_over(passthrough, key, keylen);
}

/* ---- Manifests and files ---- */

struct manifest_entry {
    char path[TREE_PATH_MAX];
    uint8_t type;
    size_t size;
    char sha256[65];
};

struct manifest {
    struct manifest_entry entries[32];
    size_t count;
};

/* Read the "f PATH SIZE SHA256" and "d PATH - -" lines of a manifest. */
static void load_manifest(const char *name, struct manifest *m)
{
    size_t size;
    char *text = (char *)load_fixture("ccm", name, &size);
    char *save = NULL;

    memset(m, 0, sizeof(*m));
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        struct manifest_entry *e;
        char kind;
        char third[32];

        if (line[0] == '#')
            continue;
        assert_true(m->count < sizeof(m->entries) / sizeof(m->entries[0]));
        e = &m->entries[m->count++];
        assert_int_equal(sscanf(line, "%c %4095s %31s %64s", &kind, e->path,
                                third, e->sha256), 4);
        assert_true(kind == 'f' || kind == 'd');
        e->type = kind == 'f' ? LFS_TYPE_REG : LFS_TYPE_DIR;
        e->size = kind == 'f' ? strtoull(third, NULL, 10) : 0;
    }
    free(text);
    assert_int_equal(m->count, 10);
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;

    assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL),
                     1);
    assert_int_equal(md_len, 32);
    for (unsigned i = 0; i < md_len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Read a whole file.  Returns its size, or a negative engine error. */
static ssize_t read_file(struct lfs *lfs, const char *path, uint8_t *buf,
                         size_t cap)
{
    struct lfs_file *file = NULL;
    ssize_t got;
    int err = lfs_file_open(lfs, &file, path, LFS_O_RDONLY);

    if (err < 0)
        return err;
    got = lfs_file_read(file, buf, cap);
    err = lfs_file_close(file);
    if (got < 0)
        return got;
    if (err < 0)
        return err;
    return got;
}

/* Check every manifest file except skip (may be NULL): size and sha256. */
static void check_manifest_files(struct lfs *lfs, const struct manifest *m,
                                 const char *skip)
{
    static uint8_t buf[8192];

    for (size_t i = 0; i < m->count; i++) {
        const struct manifest_entry *e = &m->entries[i];
        struct lfs_info info;
        char digest[65];
        ssize_t got;

        assert_int_equal(lfs_stat(lfs, e->path, &info), 0);
        assert_int_equal(info.type, e->type);
        if (e->type != LFS_TYPE_REG || (skip && strcmp(e->path, skip) == 0))
            continue;

        got = read_file(lfs, e->path, buf, sizeof(buf));
        if (got < 0)
            fail_msg("reading %s failed: %s (%s)", e->path,
                     lfs_strerror((int)got), lfs_error_detail(lfs));
        assert_int_equal(got, e->size);
        sha256_hex(buf, (size_t)got, digest);
        assert_string_equal(digest, e->sha256);
    }
}

/* A failed read leaves the caller's buffer as it was (0xaa bytes) or wiped
 * by the device (zeros): never the sector's bytes. */
static void assert_bytes_untouched_or_wiped(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != 0xaa && buf[i] != 0)
            fail_msg("byte %zu is 0x%02x after a failed read", i, buf[i]);
    }
}

static struct lfs *mount_or_fail(struct bd *bd, uint32_t block_size)
{
    struct lfs_mount_options opts = { .block_size = block_size };
    struct lfs *lfs = NULL;
    int err = lfs_mount(&lfs, bd, &opts);

    if (err != 0)
        fail_msg("mount failed: %s (%s)", lfs_strerror(err),
                 lfs_error_detail(lfs));
    return lfs;
}

static void collect_report(void *ctx, const char *line)
{
    struct tree *t = ctx;

    snprintf(t->error, sizeof(t->error), "%s", line);
}

static void check_clean(struct lfs *lfs)
{
    struct tree report;

    tree_init(&report);
    int result = lfs_check(lfs, collect_report, &report);

    if (result != 0)
        fail_msg("lfs_check returned %d: %s", result, report.error);
}

/* ---- The fixture images ---- */

static void fixture_decrypts_to_plain_image(void **state)
{
    char path[512];
    char err[256] = "";
    uint8_t *plain = load_plain_image();
    uint8_t *got = tree_xmalloc(PLAIN_SIZE);
    uint8_t key[BD_CCM_KEY_MAX];
    size_t keylen = 0;
    struct bd *file;
    struct bd *ccm;

    (void)state;
    /* The key as the fixture's manifest gives it. */
    assert_int_equal(bd_ccm_parse_key(FIXTURE_KEY_HEX, key, &keylen, err,
                                      sizeof(err)), BD_OK);
    assert_int_equal(keylen, sizeof(fixture_key));
    assert_memory_equal(key, fixture_key, sizeof(fixture_key));

    fixture_path(path, sizeof(path), "ccm", "small-512.ccm.img");
    file = bd_file_open(path, 0, err, sizeof(err));
    assert_non_null(file);
    ccm = ccm_over(file, key, keylen);
    assert_int_equal(ccm->size, PLAIN_SIZE);
    assert_int_equal(ccm->sector_size, SECTOR);

    /* Before a block size is chosen, as mount probing reads it. */
    assert_int_equal(bd_read_raw(ccm, 0, got, PLAIN_SIZE), BD_OK);
    assert_memory_equal(got, plain, PLAIN_SIZE);

    /* Sector by sector, and in odd pieces that cross sector ends. */
    memset(got, 0, PLAIN_SIZE);
    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);
    for (uint32_t s = 0; s < PLAIN_SECTORS; s++)
        assert_int_equal(bd_read(ccm, s, 0, got + s * SECTOR, SECTOR), BD_OK);
    assert_memory_equal(got, plain, PLAIN_SIZE);
    memset(got, 0, PLAIN_SIZE);
    for (size_t pos = 0; pos < PLAIN_SIZE; pos += 700) {
        size_t len = PLAIN_SIZE - pos < 700 ? PLAIN_SIZE - pos : 700;

        assert_int_equal(bd_read_raw(ccm, pos, got + pos, len), BD_OK);
    }
    assert_memory_equal(got, plain, PLAIN_SIZE);

    bd_close(ccm);
    free(got);
    free(plain);
}

static void fixture_mounts_with_manifest_files(void **state)
{
    struct manifest m;
    struct bd *ccm = ccm_over(mem_with_fixture("small-512.ccm.img"),
                              fixture_key, sizeof(fixture_key));
    struct lfs_fsinfo info;
    struct lfs *lfs;

    (void)state;
    load_manifest("small-512.ccm.manifest", &m);

    /* No block size given: the engine reads it from the superblock. */
    lfs = mount_or_fail(ccm, 0);
    assert_int_equal(lfs_fs_stat(lfs, &info), 0);
    assert_int_equal(info.block_size, 512);
    assert_int_equal(info.block_count, 256);
    assert_int_equal(info.disk_version, LFS_DISK_VERSION_2_0);
    check_manifest_files(lfs, &m, NULL);
    check_clean(lfs);
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(ccm);
}

static void tampered_sector_fails_authentication(void **state)
{
    uint8_t *plain = load_plain_image();
    struct bd *ccm = ccm_over(mem_with_fixture("small-512.ccm.tampered.img"),
                              fixture_key, sizeof(fixture_key));
    uint8_t sector[SECTOR];

    (void)state;
    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);
    for (uint32_t s = 0; s < PLAIN_SECTORS; s++) {
        int err;

        memset(sector, 0xaa, sizeof(sector));
        err = bd_read(ccm, s, 0, sector, sizeof(sector));
        if (s != 3) {
            assert_int_equal(err, BD_OK);
            assert_memory_equal(sector, plain + s * SECTOR, SECTOR);
            continue;
        }
        assert_int_equal(err, BD_ERR_AUTH);
        assert_string_equal(ccm->error, "sector 3 failed authentication: "
                            "wrong key or modified image");
        for (size_t i = 0; i < sizeof(sector); i++)
            assert_int_equal(sector[i], 0);
    }

    /* One read that spans the bad sector fails as a whole and returns no
     * bytes, not even those of the good sectors around it. */
    struct bd *wide = ccm_over(
        mem_with_fixture("small-512.ccm.tampered.img"), fixture_key,
        sizeof(fixture_key));
    uint8_t span[1900];

    assert_int_equal(bd_set_block_size(wide, 2048), BD_OK);
    memset(span, 0xaa, sizeof(span));
    assert_int_equal(bd_read(wide, 0, 100, span, sizeof(span)), BD_ERR_AUTH);
    for (size_t i = 0; i < sizeof(span); i++)
        assert_int_equal(span[i], 0);
    assert_int_equal(bd_read(wide, 1, 0, span, sizeof(span)), BD_OK);
    assert_memory_equal(span, plain + 2048, sizeof(span));
    bd_close(wide);

    /* Block 3 is unused in the plain image, so littlefs never reads it. */
    struct manifest m;
    struct lfs *lfs = mount_or_fail(ccm, 512);

    load_manifest("small-512.ccm.manifest", &m);
    check_manifest_files(lfs, &m, NULL);
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(ccm);
    free(plain);
}

static void tampered_data_fails_only_its_file(void **state)
{
    struct bd *ccm = ccm_over(
        mem_with_fixture("small-512.ccm.tampered-data.img"), fixture_key,
        sizeof(fixture_key));
    struct manifest m;
    uint8_t buf[512];
    struct lfs *lfs;
    struct lfs_info info;

    (void)state;
    load_manifest("small-512.ccm.manifest", &m);

    /* the block size comes from the superblock, whose sector is intact */
    lfs = mount_or_fail(ccm, 0);

    assert_int_equal(lfs_stat(lfs, "/username.pub", &info), 0);
    assert_int_equal(info.size, 94);
    memset(buf, 0xaa, sizeof(buf));
    assert_int_equal(read_file(lfs, "/username.pub", buf, sizeof(buf)),
                     LFS_ERR_AUTH);
    assert_string_equal(lfs_error_detail(lfs), "sector 5 failed "
                        "authentication: wrong key or modified image");
    assert_bytes_untouched_or_wiped(buf, sizeof(buf));

    check_manifest_files(lfs, &m, "/username.pub");
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(ccm);
}

/* Swapped pairs authenticate: the format binds no sector number.  Only
 * littlefs notices, because a metadata block moved. */
static void swapped_pairs_decrypt_but_mount_fails(void **state)
{
    uint8_t *plain = load_plain_image();
    uint8_t *expected = tree_xmalloc(PLAIN_SIZE);
    uint8_t *got = tree_xmalloc(PLAIN_SIZE);
    struct bd *ccm = ccm_over(mem_with_fixture("small-512.ccm.swapped.img"),
                              fixture_key, sizeof(fixture_key));
    struct lfs_mount_options opts = { .block_size = 512 };
    struct lfs *lfs = NULL;

    (void)state;
    memcpy(expected, plain, PLAIN_SIZE);
    memcpy(expected + 5 * SECTOR, plain + 6 * SECTOR, SECTOR);
    memcpy(expected + 6 * SECTOR, plain + 5 * SECTOR, SECTOR);

    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);
    for (uint32_t s = 0; s < PLAIN_SECTORS; s++)
        assert_int_equal(bd_read(ccm, s, 0, got + s * SECTOR, SECTOR), BD_OK);
    assert_memory_equal(got, expected, PLAIN_SIZE);

    /* The root's metadata lists /docs at pair {6, 7}, and block 6 now
     * contains file data, so the engine finds no valid commit when it walks
     * the directory list at mount. */
    assert_int_equal(lfs_mount(&lfs, ccm, &opts), LFS_ERR_CORRUPT);

    bd_close(ccm);
    free(got);
    free(expected);
    free(plain);
}

/* ---- Keys and the mount-failure explanations ---- */

static void wrong_key_fails_first_sector(void **state)
{
    struct bd *ccm = ccm_over(mem_with_fixture("small-512.ccm.img"),
                              other_key, sizeof(other_key));
    struct lfs *lfs = NULL;
    uint8_t sector[SECTOR];
    char why[256];

    (void)state;
    assert_int_equal(bd_read_raw(ccm, 0, sector, sizeof(sector)),
                     BD_ERR_AUTH);
    assert_string_equal(ccm->error, "sector 0 failed authentication: wrong "
                        "key or modified image");
    assert_int_equal(lfs_mount(&lfs, ccm, NULL), LFS_ERR_AUTH);

    assert_int_equal(bd_ccm_explain_mount_failure(ccm, "--key", why,
                                                  sizeof(why)), 1);
    assert_string_equal(why, "wrong key, or not an encrypted image");
    bd_close(ccm);
}

static void plain_image_with_key_is_explained(void **state)
{
    uint8_t *plain = load_plain_image();
    struct bd *mem = mem_with(plain, PLAIN_SIZE);
    struct bd *ccm;
    struct lfs *lfs = NULL;
    char why[256];

    (void)state;
    assert_int_equal(bd_ccm_probe(mem), BD_CCM_PROBE_PLAIN);
    ccm = ccm_over(mem, fixture_key, sizeof(fixture_key));
    assert_int_not_equal(lfs_mount(&lfs, ccm, NULL), 0);

    assert_int_equal(bd_ccm_explain_mount_failure(ccm, "--key", why,
                                                  sizeof(why)), 1);
    assert_string_equal(why, "this is a plain (unencrypted) image: open it "
                        "without --key");
    bd_close(ccm);
    free(plain);
}

static void plain_image_with_superblock_in_block_1_is_plain(void **state)
{
    uint8_t *plain = load_plain_image();
    struct bd *mem;

    (void)state;
    /* Move block 0 to block 1, as after the superblock pair's first
     * compaction into its second block. */
    memcpy(plain + 512, plain, 512);
    memset(plain, 0xff, 512);
    mem = mem_with(plain, PLAIN_SIZE);
    assert_int_equal(bd_ccm_probe(mem), BD_CCM_PROBE_PLAIN);
    bd_close(mem);
    free(plain);
}

static void encrypted_image_without_key_is_explained(void **state)
{
    struct bd *mem = mem_with_fixture("small-512.ccm.img");
    struct lfs *lfs = NULL;
    char why[256];

    (void)state;
    assert_int_equal(bd_ccm_probe(mem), BD_CCM_PROBE_ENCRYPTED);
    assert_int_not_equal(lfs_mount(&lfs, mem, NULL), 0);

    assert_int_equal(bd_ccm_explain_mount_failure(mem, "--blockkey", why,
                                                  sizeof(why)), 1);
    assert_string_equal(why, "this looks like an encrypted image: give its "
                        "key with --blockkey");
    bd_close(mem);
}

static void unrelated_mount_failures_get_no_explanation(void **state)
{
    struct bd *erased = bd_mem_new(65536);
    struct bd *zeros = bd_mem_new(65536);
    struct bd *ccm;
    char why[256];

    (void)state;
    /* A blank (erased) image without a key is neither plain nor
     * encrypted. */
    assert_non_null(erased);
    assert_int_equal(bd_ccm_probe(erased), BD_CCM_PROBE_UNKNOWN);
    assert_int_equal(bd_ccm_explain_mount_failure(erased, "--key", why,
                                                  sizeof(why)), 0);
    assert_string_equal(why, "");
    bd_close(erased);

    /* A zero-filled image with a key was never formatted. */
    assert_non_null(zeros);
    memset(bd_mem_data(zeros), 0, 65536);
    assert_int_equal(bd_ccm_probe(zeros), BD_CCM_PROBE_UNKNOWN);
    ccm = ccm_over(zeros, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_ccm_explain_mount_failure(ccm, "--key", why,
                                                  sizeof(why)), 1);
    assert_string_equal(why, "the encrypted image was never formatted (its "
                        "first sector is all zeros)");

    /* With the right key and a sound first sector, a failure is the
     * filesystem's own: here sector 0 contains encrypted 0xff bytes. */
    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);
    assert_int_equal(bd_erase(ccm, 0), BD_OK);
    assert_int_equal(bd_ccm_explain_mount_failure(ccm, "--key", why,
                                                  sizeof(why)), 0);
    assert_string_equal(why, "");
    bd_close(ccm);
}

static void key_sizes_select_aes_variants(void **state)
{
    static const struct {
        const char *hex;
        size_t len;
    } keys[] = {
        { "000102030405060708090a0b0c0d0e0f", 16 },
        { "0x000102030405060708090A0B0C0D0E0F", 16 },
        { "000102030405060708090a0b0c0d0e0f1011121314151617", 24 },
        { "0X000102030405060708090a0b0c0d0e0f1011121314151617", 24 },
        { "000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f", 32 },
        { "0x000102030405060708090a0b0c0d0e0f"
          "101112131415161718191A1B1C1D1E1F", 32 },
    };
    uint8_t encrypted[3][PAIR];

    (void)state;
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        uint8_t key[BD_CCM_KEY_MAX];
        size_t keylen = 0;
        char err[256] = "";
        uint8_t data[SECTOR];
        uint8_t back[SECTOR];
        struct bd *mem = bd_mem_new(16 * PAIR);
        struct bd *ccm;

        assert_int_equal(bd_ccm_parse_key(keys[k].hex, key, &keylen, err,
                                          sizeof(err)), BD_OK);
        assert_int_equal(keylen, keys[k].len);
        for (size_t i = 0; i < keylen; i++)
            assert_int_equal(key[i], i);

        assert_non_null(mem);
        ccm = ccm_view(mem, key, keylen);
        assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);
        memset(data, (int)k, sizeof(data));
        assert_int_equal(bd_prog(ccm, 2, 0, data, sizeof(data)), BD_OK);
        assert_int_equal(bd_read(ccm, 2, 0, back, sizeof(back)), BD_OK);
        assert_memory_equal(back, data, SECTOR);
        bd_close(ccm);

        /* The same key with a "0x" prefix reads what the other wrote;
         * a key of another length does not. */
        if (k % 2 == 0) {
            memcpy(encrypted[k / 2], bd_mem_data(mem) + 2 * PAIR, PAIR);
        } else {
            ccm = ccm_view(mem, key, keylen);
            assert_int_equal(bd_read_raw(ccm, 2 * SECTOR, back, SECTOR),
                             BD_OK);
            assert_int_equal(back[0], k);
            bd_close(ccm);
            ccm = ccm_view(mem, key, keylen == 16 ? 24 : 16);
            assert_int_equal(bd_read_raw(ccm, 2 * SECTOR, back, SECTOR),
                             BD_ERR_AUTH);
            bd_close(ccm);
        }
        bd_close(mem);
    }
}

static void invalid_keys_are_rejected(void **state)
{
    static const struct {
        const char *hex;
        const char *message;
    } cases[] = {
        { "", "invalid key: 0 hex digits, expected 32, 48 or 64 (an AES key "
              "of 16, 24 or 32 bytes)" },
        { "0x", "invalid key: 0 hex digits, expected 32, 48 or 64 (an AES "
                "key of 16, 24 or 32 bytes)" },
        { "1234567890ABCDEF1234567890ABCD", "invalid key: 30 hex digits, "
          "expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)" },
        { "0x1234567890ABCDEF1234567890ABCDEF12", "invalid key: 34 hex "
          "digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 "
          "bytes)" },
        { "1234567890ABCDEF1234567890ABCDE", "invalid key: 31 hex digits, "
          "expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)" },
        { "1234567890ABCDEF1234567890ABCDEG", "invalid key: character 32 is "
          "not a hex digit" },
        { "0x1234567890ABCDEF 234567890ABCDEF", "invalid key: character 19 "
          "is not a hex digit" },
        { "00x234567890ABCDEF1234567890ABCDEF", "invalid key: character 3 "
          "is not a hex digit" },
        { "1234567890ABCDEF1234567890ABCDEF\n", "invalid key: character 33 "
          "is not a hex digit" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t key[BD_CCM_KEY_MAX];
        size_t keylen = 99;
        char err[256] = "";

        assert_int_equal(bd_ccm_parse_key(cases[i].hex, key, &keylen, err,
                                          sizeof(err)), BD_ERR_INVAL);
        assert_string_equal(err, cases[i].message);
        assert_int_equal(keylen, 99);
    }
}

static void invalid_key_lengths_fail_device(void **state)
{
    static const size_t lengths[] = { 0, 8, 15, 17, 20, 31, 33, 64 };
    uint8_t key[64] = { 0 };

    (void)state;
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        struct bd *mem = bd_mem_new(4 * PAIR);
        char err[256] = "";
        char expected[256];

        assert_non_null(mem);
        assert_null(bd_ccm_new(mem, key, lengths[i], err, sizeof(err)));
        snprintf(expected, sizeof(expected), "invalid key length %zu bytes: "
                 "AES-CCM needs 16, 24 or 32 bytes", lengths[i]);
        assert_string_equal(err, expected);
        bd_close(mem);
    }
}

/* ---- Sizes ---- */

static void odd_sizes_are_rejected(void **state)
{
    static const size_t sizes[] = { 512, 1023, 1536, 262144 + 512, 1025 };

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct bd *mem = bd_mem_new(sizes[i]);
        char err[256] = "";
        char expected[256];

        assert_non_null(mem);
        assert_null(bd_ccm_new(mem, fixture_key, sizeof(fixture_key), err,
                               sizeof(err)));
        snprintf(expected, sizeof(expected), "image size %zu bytes is not a "
                 "whole number of encrypted sectors (1024 bytes each)",
                 sizes[i]);
        assert_string_equal(err, expected);
        assert_int_equal(bd_ccm_probe(mem), BD_CCM_PROBE_UNKNOWN);
        bd_close(mem);
    }

    struct bd *empty = bd_mem_new(0);
    char err[256] = "";

    assert_non_null(empty);
    assert_null(bd_ccm_new(empty, fixture_key, sizeof(fixture_key), err,
                           sizeof(err)));
    assert_string_equal(err, "encrypted image is empty (0 bytes)");
    bd_close(empty);
}

static void truncated_image_file_is_rejected(void **state)
{
    char dir[256];
    char path[300];
    char err[256] = "";
    char expected[512];
    size_t size;
    uint8_t *data = load_fixture("ccm", "small-512.ccm.img", &size);
    const char *tmp = getenv("TMPDIR");
    FILE *f;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/test_ccm.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/cut.img", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, 200000, f), 200000);
    assert_int_equal(fclose(f), 0);

    assert_null(bd_open_image(path, 0, fixture_key, sizeof(fixture_key), err,
                              sizeof(err)));
    snprintf(expected, sizeof(expected), "%s: image size 200000 bytes is not "
             "a whole number of encrypted sectors (1024 bytes each)", path);
    assert_string_equal(err, expected);

    /* Without a key the same path opens as a plain file device. */
    struct bd *plain = bd_open_image(path, 0, NULL, 0, err, sizeof(err));

    assert_non_null(plain);
    assert_int_equal(plain->size, 200000);
    bd_close(plain);

    unlink(path);
    rmdir(dir);
    free(data);
}

static void open_image_reads_fixture(void **state)
{
    char path[512];
    char err[256] = "";
    uint8_t *plain = load_plain_image();
    uint8_t got[SECTOR];
    struct bd *bd;

    (void)state;
    fixture_path(path, sizeof(path), "ccm", "small-512.ccm.img");
    bd = bd_open_image(path, 0, fixture_key, sizeof(fixture_key), err,
                       sizeof(err));
    assert_non_null(bd);
    assert_non_null(bd_ccm_inner(bd));
    assert_int_equal(bd->size, PLAIN_SIZE);
    assert_int_equal(bd_read_raw(bd, 40 * SECTOR, got, SECTOR), BD_OK);
    assert_memory_equal(got, plain + 40 * SECTOR, SECTOR);
    bd_close(bd);

    assert_null(bd_open_image("/nonexistent/disk.img", 0, fixture_key,
                              sizeof(fixture_key), err, sizeof(err)));
    assert_string_equal(err, "opening /nonexistent/disk.img failed: No such "
                        "file or directory");
    free(plain);
}

/* ---- Reading and writing through the device ---- */

static void random_data_round_trips(void **state)
{
    const size_t size = 1 << 20;
    uint64_t rng = 0x5eed;
    uint8_t *data = tree_xmalloc(size);
    uint8_t *back = tree_xmalloc(size);
    struct bd *mem = bd_mem_new(2 * size);
    struct bd *ccm;
    uint8_t first_pair[PAIR];

    (void)state;
    assert_non_null(mem);
    test_rand_fill(&rng, data, size);
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_set_block_size(ccm, 4096), BD_OK);
    for (uint32_t b = 0; b < size / 4096; b++)
        assert_int_equal(bd_prog(ccm, b, 0, data + b * 4096, 4096), BD_OK);
    assert_int_equal(bd_sync(ccm), BD_OK);
    for (uint32_t b = 0; b < size / 4096; b++)
        assert_int_equal(bd_read(ccm, b, 0, back + b * 4096, 4096), BD_OK);
    assert_memory_equal(back, data, size);
    bd_close(ccm);

    /* A fresh device (new contexts, empty cache) reads the same bytes. */
    memset(back, 0, size);
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_read_raw(ccm, 0, back, size), BD_OK);
    assert_memory_equal(back, data, size);

    /* Writing the same plaintext again gives a new nonce, so a new
     * ciphertext and tag, and new random adata. */
    memcpy(first_pair, bd_mem_data(mem), PAIR);
    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);
    assert_int_equal(bd_prog(ccm, 0, 0, data, SECTOR), BD_OK);
    assert_memory_not_equal(bd_mem_data(mem), first_pair, SECTOR);
    assert_memory_not_equal(bd_mem_data(mem) + 512, first_pair + 512, 16);
    assert_memory_not_equal(bd_mem_data(mem) + 528, first_pair + 528, 8);
    assert_memory_not_equal(bd_mem_data(mem) + 536, first_pair + 536,
                            PAIR - 536);
    assert_int_equal(bd_read(ccm, 0, 0, back, SECTOR), BD_OK);
    assert_memory_equal(back, data, SECTOR);

    /* The image never contains the plaintext. */
    assert_null(memmem(bd_mem_data(mem), 2 * size, data + 1000, 32));

    bd_close(ccm);
    bd_close(mem);
    free(back);
    free(data);
}

static void erase_writes_encrypted_ff(void **state)
{
    struct bd *mem = bd_mem_new(64 * PAIR);
    struct bd *ccm;
    uint8_t block[4096];
    uint8_t ff[4096];

    (void)state;
    assert_non_null(mem);
    memset(bd_mem_data(mem), 0, 64 * PAIR);
    memset(ff, 0xff, sizeof(ff));
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_set_block_size(ccm, 4096), BD_OK);
    assert_int_equal(bd_erase(ccm, 3), BD_OK);
    assert_int_equal(bd_read(ccm, 3, 0, block, sizeof(block)), BD_OK);
    assert_memory_equal(block, ff, sizeof(block));

    /* The pairs are encrypted, not raw 0xff, and their neighbours stay
     * unwritten. */
    assert_memory_not_equal(bd_mem_data(mem) + 3 * 8 * PAIR, ff, SECTOR);
    assert_int_equal(bd_read(ccm, 2, 0, block, sizeof(block)),
                     BD_ERR_UNWRITTEN);
    assert_int_equal(bd_read(ccm, 4, 0, block, sizeof(block)),
                     BD_ERR_UNWRITTEN);
    bd_close(ccm);
    bd_close(mem);
}

static void unwritten_sector_is_reported(void **state)
{
    struct bd *mem = bd_mem_new(16 * PAIR);
    struct bd *ccm;
    uint8_t sector[SECTOR];
    uint8_t expected[SECTOR];

    (void)state;
    assert_non_null(mem);
    memset(bd_mem_data(mem), 0, 16 * PAIR);
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);

    memset(sector, 0xaa, sizeof(sector));
    assert_int_equal(bd_read(ccm, 7, 0, sector, sizeof(sector)),
                     BD_ERR_UNWRITTEN);
    assert_string_equal(ccm->error, "sector 7 was never written through the "
                        "encryption (all zero bytes)");
    for (size_t i = 0; i < sizeof(sector); i++)
        assert_int_equal(sector[i], 0);

    /* Writing part of it keeps the rest as erased (0xff) bytes. */
    assert_int_equal(bd_prog(ccm, 7, 100, "abc", 3), BD_OK);
    memset(expected, 0xff, sizeof(expected));
    memcpy(expected + 100, "abc", 3);
    assert_int_equal(bd_read(ccm, 7, 0, sector, sizeof(sector)), BD_OK);
    assert_memory_equal(sector, expected, SECTOR);
    bd_close(ccm);

    /* A pair that is zero only in part (here its ciphertext) is not
     * unwritten: it fails authentication. */
    memset(bd_mem_data(mem) + 7 * PAIR, 0, SECTOR);
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_read_raw(ccm, 7 * SECTOR, sector, sizeof(sector)),
                     BD_ERR_AUTH);
    bd_close(ccm);
    bd_close(mem);
}

/* Partial writes into a sector that is already in the cache. */
static void partial_writes_keep_cache_coherent(void **state)
{
    struct bd *mem = bd_mem_new(8 * PAIR);
    struct bd *ccm;
    struct bd *other;
    uint8_t sector[SECTOR];
    uint8_t expected[SECTOR];
    uint8_t word[4];

    (void)state;
    assert_non_null(mem);
    memset(bd_mem_data(mem), 0, 8 * PAIR);
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_set_block_size(ccm, 128), BD_OK);
    for (uint32_t b = 0; b < 4; b++)
        assert_int_equal(bd_erase(ccm, b), BD_OK);

    /* Blocks 0..3 share sector 0.  Read a word of block 1 (cached), write
     * blocks 0 and 2 in part, and every byte must show the last write. */
    assert_int_equal(bd_read(ccm, 1, 0, word, sizeof(word)), BD_OK);
    assert_memory_equal(word, "\xff\xff\xff\xff", 4);
    assert_int_equal(bd_prog(ccm, 0, 10, "first", 5), BD_OK);
    assert_int_equal(bd_prog(ccm, 2, 0, "second", 6), BD_OK);
    assert_int_equal(bd_prog(ccm, 1, 124, "wxyz", 4), BD_OK);
    assert_int_equal(bd_read(ccm, 1, 124, word, sizeof(word)), BD_OK);
    assert_memory_equal(word, "wxyz", 4);

    memset(expected, 0xff, sizeof(expected));
    memcpy(expected + 10, "first", 5);
    memcpy(expected + 256, "second", 6);
    memcpy(expected + 252, "wxyz", 4);
    assert_int_equal(bd_read_raw(ccm, 0, sector, sizeof(sector)), BD_OK);
    assert_memory_equal(sector, expected, SECTOR);

    /* A second device over the same bytes (its own cache) agrees. */
    other = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_read_raw(other, 0, sector, sizeof(sector)), BD_OK);
    assert_memory_equal(sector, expected, SECTOR);

    /* Erasing block 2 changes only its quarter. */
    assert_int_equal(bd_erase(ccm, 2), BD_OK);
    memset(expected + 256, 0xff, 128);
    assert_int_equal(bd_read_raw(other, 0, sector, sizeof(sector)), BD_OK);
    assert_memory_equal(sector, expected, SECTOR);
    assert_int_equal(bd_read_raw(ccm, 0, sector, sizeof(sector)), BD_OK);
    assert_memory_equal(sector, expected, SECTOR);

    bd_close(other);
    bd_close(ccm);
    bd_close(mem);
}

/* A whole-sector write after a partial read (which cached the sector)
 * must not leave the old copy behind. */
static void whole_sector_write_replaces_cached_copy(void **state)
{
    struct bd *mem = bd_mem_new(8 * PAIR);
    struct bd *ccm;
    uint8_t sector[SECTOR];
    uint8_t word[4];

    (void)state;
    assert_non_null(mem);
    memset(bd_mem_data(mem), 0, 8 * PAIR);
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);

    memset(sector, 'a', sizeof(sector));
    assert_int_equal(bd_prog(ccm, 4, 0, sector, sizeof(sector)), BD_OK);
    assert_int_equal(bd_read(ccm, 4, 200, word, sizeof(word)), BD_OK);
    assert_memory_equal(word, "aaaa", 4);

    memset(sector, 'b', sizeof(sector));
    assert_int_equal(bd_prog(ccm, 4, 0, sector, sizeof(sector)), BD_OK);
    assert_int_equal(bd_read(ccm, 4, 200, word, sizeof(word)), BD_OK);
    assert_memory_equal(word, "bbbb", 4);

    assert_int_equal(bd_erase(ccm, 4), BD_OK);
    assert_int_equal(bd_read(ccm, 4, 200, word, sizeof(word)), BD_OK);
    assert_memory_equal(word, "\xff\xff\xff\xff", 4);
    bd_close(ccm);
    bd_close(mem);
}

/* A failed inner write leaves no trace of the new data in the cache. */
static void failed_write_leaves_old_data(void **state)
{
    struct bd *mem = bd_mem_new(8 * PAIR);
    struct bd *faulty;
    struct bd *ccm;
    uint8_t word[8];

    (void)state;
    assert_non_null(mem);
    memset(bd_mem_data(mem), 0, 8 * PAIR);
    faulty = bd_faulty_new(mem, 0, 0);
    assert_non_null(faulty);
    ccm = ccm_over(faulty, fixture_key, sizeof(fixture_key));
    assert_int_equal(bd_set_block_size(ccm, 512), BD_OK);
    assert_int_equal(bd_prog(ccm, 1, 0, "old-data", 8), BD_OK);
    assert_int_equal(bd_read(ccm, 1, 0, word, sizeof(word)), BD_OK);

    bd_faulty_rearm(faulty, 1, 0);
    assert_int_equal(bd_prog(ccm, 1, 0, "new-data", 8), BD_ERR_POWERLOSS);
    assert_string_equal(ccm->error, "prog failed: power was cut at write 1");
    bd_faulty_rearm(faulty, 0, 0);
    assert_int_equal(bd_read(ccm, 1, 0, word, sizeof(word)), BD_OK);
    assert_memory_equal(word, "old-data", 8);
    bd_close(ccm);
    bd_close(mem);
}

/* ---- Littlefs on top ---- */

/* Files of the given sizes with contents from a seed, spread over three
 * directories. */
static void write_files(struct lfs *lfs, const size_t *sizes, size_t count,
                        uint64_t seed)
{
    for (size_t i = 0; i < count; i++) {
        char path[32];
        uint8_t *data = tree_xmalloc(sizes[i]);
        uint64_t rng = seed + i;
        int err;

        snprintf(path, sizeof(path), "/dir%zu", i % 3);
        err = lfs_mkdir(lfs, path);
        assert_true(err == 0 || err == LFS_ERR_EXIST);

        test_rand_fill(&rng, data, sizes[i]);
        snprintf(path, sizeof(path), "/dir%zu/file%zu", i % 3, i);
        assert_int_equal(test_write_file(lfs, path, data, sizes[i]), 0);
        free(data);
    }
}

static void check_files(struct lfs *lfs, const size_t *sizes, size_t count,
                        uint64_t seed)
{
    for (size_t i = 0; i < count; i++) {
        char path[32];
        uint8_t *data = tree_xmalloc(sizes[i]);
        uint8_t *back = tree_xmalloc(sizes[i] + 1);
        uint64_t rng = seed + i;

        test_rand_fill(&rng, data, sizes[i]);
        snprintf(path, sizeof(path), "/dir%zu/file%zu", i % 3, i);
        assert_int_equal(read_file(lfs, path, back, sizes[i] + 1), sizes[i]);
        assert_memory_equal(back, data, sizes[i]);
        free(back);
        free(data);
    }
}

/* Blocks smaller than a sector would share a sector that tears as a
 * whole, so the encrypted device takes only blocks of 512 bytes or more. */
static void small_blocks_are_refused(void **state)
{
    static const uint32_t block_sizes[] = { 128, 256 };

    (void)state;
    for (size_t b = 0; b < 2; b++) {
        struct lfs_format_options fmt = { .block_size = block_sizes[b] };
        struct bd *mem = bd_mem_new(2 * 64 * 1024);
        struct bd *ccm;

        assert_non_null(mem);
        memset(bd_mem_data(mem), 0, 2 * 64 * 1024);
        ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
        assert_int_equal(lfs_format(ccm, &fmt), LFS_ERR_GEOMETRY);
        bd_close(ccm);
        bd_close(mem);
    }
}

static void littlefs_block_sizes_work(void **state)
{
    static const uint32_t block_sizes[] = { 512, 1024, 4096 };
    static const size_t sizes[] = { 0, 10, 100, 700, 1500, 5000 };

    (void)state;
    for (size_t b = 0; b < 3; b++) {
        uint32_t bs = block_sizes[b];
        uint64_t logical = 256ull * bs;
        struct bd *mem = bd_mem_new(2 * logical);
        struct lfs_format_options fmt = { .block_size = bs };
        struct bd *ccm;
        struct lfs *lfs;
        struct lfs_fsinfo info;
        uint8_t moved[6000];
        uint8_t expected[5000];
        uint64_t rng;

        assert_non_null(mem);
        memset(bd_mem_data(mem), 0, 2 * logical);
        ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
        assert_int_equal(lfs_format(ccm, &fmt), 0);
        lfs = mount_or_fail(ccm, bs);
        write_files(lfs, sizes, 6, bs);
        assert_int_equal(lfs_unmount(lfs), 0);
        bd_close(ccm);

        /* Remount on a fresh device and change something after reading. */
        ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
        lfs = mount_or_fail(ccm, bs);
        assert_int_equal(lfs_fs_stat(lfs, &info), 0);
        assert_int_equal(info.block_size, bs);
        check_files(lfs, sizes, 6, bs);
        check_clean(lfs);
        assert_int_equal(lfs_remove(lfs, "/dir1/file1"), 0);
        assert_int_equal(lfs_rename(lfs, "/dir2/file5", "/moved"), 0);
        assert_int_equal(lfs_unmount(lfs), 0);
        bd_close(ccm);

        ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
        lfs = mount_or_fail(ccm, bs);
        check_clean(lfs);
        assert_int_equal(lfs_stat(lfs, "/dir1/file1", &(struct lfs_info){0}),
                         LFS_ERR_NOENT);
        assert_int_equal(read_file(lfs, "/moved", moved, sizeof(moved)),
                         sizes[5]);
        rng = bs + 5;
        test_rand_fill(&rng, expected, sizes[5]);
        assert_memory_equal(moved, expected, sizes[5]);
        assert_int_equal(lfs_unmount(lfs), 0);
        bd_close(ccm);
        bd_close(mem);
    }
}

/* Find the logical sector whose plaintext starts with needle. */
static uint32_t find_sector(struct bd *ccm, const uint8_t *needle,
                            size_t len)
{
    uint8_t sector[SECTOR];

    for (uint32_t s = 0; s < ccm->size / SECTOR; s++) {
        if (bd_read_raw(ccm, (uint64_t)s * SECTOR, sector, SECTOR) != BD_OK)
            continue;
        if (memcmp(sector, needle, len) == 0)
            return s;
    }
    fail_msg("no sector starts with the file's data");
    return 0;
}

static void zero_filled_image_formats_encrypted(void **state)
{
    const size_t physical = 512 * PAIR;
    static const size_t sizes[] = { 3, 300, 2000, 6000 };
    struct bd *mem = bd_mem_new(physical);
    struct lfs_format_options fmt = { .block_size = 512 };
    struct bd *ccm;
    struct lfs *lfs;
    uint8_t data[2000];
    uint8_t back[2001];
    uint64_t rng = 42;
    uint32_t sector;

    (void)state;
    assert_non_null(mem);
    memset(bd_mem_data(mem), 0, physical);   /* dd if=/dev/zero */

    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(lfs_format(ccm, &fmt), 0);
    lfs = mount_or_fail(ccm, 512);
    write_files(lfs, sizes, 4, 7);
    test_rand_fill(&rng, data, sizeof(data));
    assert_int_equal(test_write_file(lfs, "/victim", data, sizeof(data)), 0);
    check_clean(lfs);
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(ccm);

    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    lfs = mount_or_fail(ccm, 512);
    check_files(lfs, sizes, 4, 7);
    assert_int_equal(read_file(lfs, "/victim", back, sizeof(back)), 2000);
    assert_memory_equal(back, data, sizeof(data));
    check_clean(lfs);
    assert_int_equal(lfs_unmount(lfs), 0);

    /* Zero the pair of the victim's first data block: the file must fail
     * to read, never return zeros or stale bytes. */
    sector = find_sector(ccm, data, 64);
    bd_close(ccm);
    memset(bd_mem_data(mem) + (size_t)sector * PAIR, 0, PAIR);

    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    lfs = mount_or_fail(ccm, 512);
    memset(back, 0xaa, sizeof(back));
    assert_int_equal(read_file(lfs, "/victim", back, sizeof(back)),
                     LFS_ERR_UNWRITTEN);
    assert_bytes_untouched_or_wiped(back, sizeof(back));
    char detail[128];

    snprintf(detail, sizeof(detail), "sector %u was never written through "
             "the encryption (all zero bytes)", sector);
    assert_string_equal(lfs_error_detail(lfs), detail);
    check_files(lfs, sizes, 4, 7);
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(ccm);
    bd_close(mem);
}

/* ---- Power loss under the encryption ---- */

#define PL_BLOCK_SIZE 512
#define PL_BLOCK_COUNT 128

enum pl_kind { PL_WRITE, PL_APPEND, PL_MKDIR, PL_RENAME, PL_REMOVE };

struct pl_step {
    enum pl_kind kind;
    const char *path;
    const char *path2;
    size_t len;
};

static const struct pl_step pl_steps[] = {
    { PL_WRITE, "/a", NULL, 700 },
    { PL_MKDIR, "/d", NULL, 0 },
    { PL_WRITE, "/d/b", NULL, 1500 },
    { PL_APPEND, "/a", NULL, 300 },
    { PL_WRITE, "/c", NULL, 40 },
    { PL_RENAME, "/a", "/d/a", 0 },
    { PL_REMOVE, "/d/b", NULL, 0 },
    { PL_WRITE, "/d/a", NULL, 2100 },
    { PL_WRITE, "/e", NULL, 3000 },
    { PL_WRITE, "/f1", NULL, 20 },
    { PL_WRITE, "/f2", NULL, 30 },
    { PL_WRITE, "/c", NULL, 45 },
    { PL_WRITE, "/f3", NULL, 600 },
    { PL_WRITE, "/c", NULL, 50 },
    { PL_MKDIR, "/d/x", NULL, 0 },
    { PL_RENAME, "/c", "/d/x/c", 0 },
    { PL_APPEND, "/e", NULL, 1200 },
    { PL_REMOVE, "/f1", NULL, 0 },
    { PL_WRITE, "/d/x/c", NULL, 35 },
    { PL_WRITE, "/f2", NULL, 1000 },
    { PL_REMOVE, "/d/a", NULL, 0 },
    { PL_WRITE, "/g", NULL, 4000 },
    /* Small rewrites fill the root's metadata block until it compacts. */
    { PL_WRITE, "/s", NULL, 60 },
    { PL_WRITE, "/s", NULL, 61 },
    { PL_WRITE, "/s", NULL, 62 },
    { PL_WRITE, "/s", NULL, 63 },
    { PL_WRITE, "/s", NULL, 64 },
    { PL_WRITE, "/s", NULL, 65 },
    { PL_WRITE, "/s", NULL, 66 },
    { PL_WRITE, "/s", NULL, 67 },
};

#define PL_STEPS (sizeof(pl_steps) / sizeof(pl_steps[0]))

static const struct tree_probe pl_probe = { NULL, 0, 1 };

static uint8_t *pl_data(size_t step)
{
    uint64_t rng = 1000 + step;
    uint8_t *data = tree_xmalloc(pl_steps[step].len);

    test_rand_fill(&rng, data, pl_steps[step].len);
    return data;
}

/* Apply step i to the model tree t. */
static void pl_model(struct tree *t, size_t i)
{
    const struct pl_step *s = &pl_steps[i];
    uint8_t *data = pl_data(i);
    struct tree_node *n = tree_find(t, s->path);

    switch (s->kind) {
    case PL_WRITE:
        if (n == NULL)
            n = tree_add_file(t, s->path, NULL, 0);
        tree_node_set_data(n, data, s->len);
        break;
    case PL_APPEND: {
        uint8_t *joined = tree_xmalloc(n->size + s->len);

        memcpy(joined, n->data, n->size);
        memcpy(joined + n->size, data, s->len);
        tree_node_set_data(n, joined, n->size + s->len);
        free(joined);
        break;
    }
    case PL_MKDIR:
        tree_add_dir(t, s->path);
        break;
    case PL_RENAME:
        free(n->path);
        n->path = tree_xstrdup(s->path2);
        break;
    case PL_REMOVE:
        tree_remove_node(t, n);
        break;
    }
    tree_sort(t);
    free(data);
}

static int pl_run_step(struct lfs *lfs, size_t i)
{
    const struct pl_step *s = &pl_steps[i];
    uint8_t *data = pl_data(i);
    struct lfs_file *file = NULL;
    int err = 0;

    switch (s->kind) {
    case PL_WRITE:
        err = test_write_file(lfs, s->path, data, s->len);
        break;
    case PL_APPEND:
        err = lfs_file_open(lfs, &file, s->path, LFS_O_WRONLY | LFS_O_APPEND);
        if (err == 0) {
            ssize_t wrote = lfs_file_write(file, data, s->len);
            int closed = lfs_file_close(file);

            err = wrote < 0 ? (int)wrote : closed;
        }
        break;
    case PL_MKDIR:
        err = lfs_mkdir(lfs, s->path);
        break;
    case PL_RENAME:
        err = lfs_rename(lfs, s->path, s->path2);
        break;
    case PL_REMOVE:
        err = lfs_remove(lfs, s->path);
        break;
    }
    free(data);
    return err;
}

/* Every tree a cut in step i may leave: before it, after it, and for a
 * write, the file created or truncated but still empty. */
static int pl_tree_is_expected(const struct tree *states, size_t i,
                               const struct tree *got, char *why,
                               size_t whylen)
{
    struct tree mid;
    int differs;

    if (tree_compare(&states[i], got, 1, why, whylen) == 0 ||
        tree_compare(&states[i + 1], got, 1, why, whylen) == 0)
        return 1;
    if (pl_steps[i].kind != PL_WRITE)
        return 0;

    tree_copy(&mid, &states[i]);
    struct tree_node *n = tree_find(&mid, pl_steps[i].path);

    if (n == NULL)
        n = tree_add_file(&mid, pl_steps[i].path, NULL, 0);
    tree_node_set_data(n, NULL, 0);
    tree_sort(&mid);
    differs = tree_compare(&mid, got, 1, why, whylen);
    tree_free(&mid);
    return !differs;
}

/* Mount what a cut left behind, check it, and make sure it takes new
 * writes.  Fills got with the tree found. */
static void pl_check_after_cut(struct bd *mem, struct tree *got)
{
    struct bd *ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    struct lfs *lfs = mount_or_fail(ccm, PL_BLOCK_SIZE);
    uint8_t data[900];
    uint8_t back[901];

    check_clean(lfs);
    assert_int_equal(tree_snapshot(lfs, &pl_probe, got), 0);

    memset(data, 0x5a, sizeof(data));
    int err = test_write_file(lfs, "/after", data, sizeof(data));
    if (err != 0)
        fail_msg("writing after the cut failed: %s (%s)", lfs_strerror(err),
                 lfs_error_detail(lfs));
    assert_int_equal(lfs_unmount(lfs), 0);
    lfs = mount_or_fail(ccm, PL_BLOCK_SIZE);
    assert_int_equal(read_file(lfs, "/after", back, sizeof(back)),
                     sizeof(data));
    assert_memory_equal(back, data, sizeof(data));
    check_clean(lfs);
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(ccm);
}

/* Run the workload on ccm(faulty(mem)), cutting the power at write cut,
 * with the cut write torn in half when tear is set (a torn pair fails
 * authentication, and the metadata log must end before it).  Returns the
 * step that failed, or PL_STEPS when none did. */
static size_t pl_run_until_cut(struct bd *mem, uint64_t cut, int tear,
                               uint64_t *writes)
{
    struct bd *faulty = bd_faulty_new(mem, cut, tear);
    struct bd *ccm;
    struct lfs *lfs;
    size_t i;

    assert_non_null(faulty);
    ccm = ccm_over(faulty, fixture_key, sizeof(fixture_key));
    lfs = mount_or_fail(ccm, PL_BLOCK_SIZE);
    for (i = 0; i < PL_STEPS; i++) {
        if (pl_run_step(lfs, i) != 0)
            break;
    }
    int err = lfs_unmount(lfs);

    assert_true(err == 0 || i < PL_STEPS);
    *writes = bd_faulty_writes(faulty);
    bd_close(ccm);
    return i;
}

static void power_loss_under_encryption_keeps_synced_files(void **state)
{
    const size_t physical = 2 * PL_BLOCK_SIZE * PL_BLOCK_COUNT;
    struct lfs_format_options fmt = { .block_size = PL_BLOCK_SIZE };
    struct tree states[PL_STEPS + 1];
    struct bd *mem = bd_mem_new(physical);
    uint8_t *pristine = tree_xmalloc(physical);
    uint64_t total;
    struct bd *ccm;

    (void)state;
    assert_non_null(mem);
    tree_init(&states[0]);
    for (size_t i = 0; i < PL_STEPS; i++) {
        tree_copy(&states[i + 1], &states[i]);
        pl_model(&states[i + 1], i);
    }

    /* A zero-filled image formatted through the encryption. */
    memset(bd_mem_data(mem), 0, physical);
    ccm = ccm_view(mem, fixture_key, sizeof(fixture_key));
    assert_int_equal(lfs_format(ccm, &fmt), 0);
    bd_close(ccm);
    memcpy(pristine, bd_mem_data(mem), physical);

    assert_int_equal(pl_run_until_cut(mem, 0, 0, &total), PL_STEPS);
    assert_true(total > 80);

    for (int tear = 0; tear <= 1; tear++) {
        for (uint64_t cut = 1; cut <= total; cut++) {
            uint64_t writes;
            struct tree got;
            char why[512] = "";
            size_t failed;

            memcpy(bd_mem_data(mem), pristine, physical);
            failed = pl_run_until_cut(mem, cut, tear, &writes);
            assert_true(writes >= cut);
            if (failed == PL_STEPS)
                fail_msg("cut at write %llu of %llu interrupted no step",
                         (unsigned long long)cut, (unsigned long long)total);

            pl_check_after_cut(mem, &got);
            if (!pl_tree_is_expected(states, failed, &got, why, sizeof(why)))
                fail_msg("cut at write %llu (tear %d, step %zu): %s",
                         (unsigned long long)cut, tear, failed, why);
            tree_free(&got);
        }
    }

    for (size_t i = 0; i <= PL_STEPS; i++)
        tree_free(&states[i]);
    free(pristine);
    bd_close(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_decrypts_to_plain_image),
        cmocka_unit_test(fixture_mounts_with_manifest_files),
        cmocka_unit_test(tampered_sector_fails_authentication),
        cmocka_unit_test(tampered_data_fails_only_its_file),
        cmocka_unit_test(swapped_pairs_decrypt_but_mount_fails),
        cmocka_unit_test(wrong_key_fails_first_sector),
        cmocka_unit_test(plain_image_with_key_is_explained),
        cmocka_unit_test(plain_image_with_superblock_in_block_1_is_plain),
        cmocka_unit_test(encrypted_image_without_key_is_explained),
        cmocka_unit_test(unrelated_mount_failures_get_no_explanation),
        cmocka_unit_test(key_sizes_select_aes_variants),
        cmocka_unit_test(invalid_keys_are_rejected),
        cmocka_unit_test(invalid_key_lengths_fail_device),
        cmocka_unit_test(odd_sizes_are_rejected),
        cmocka_unit_test(truncated_image_file_is_rejected),
        cmocka_unit_test(open_image_reads_fixture),
        cmocka_unit_test(random_data_round_trips),
        cmocka_unit_test(erase_writes_encrypted_ff),
        cmocka_unit_test(unwritten_sector_is_reported),
        cmocka_unit_test(partial_writes_keep_cache_coherent),
        cmocka_unit_test(whole_sector_write_replaces_cached_copy),
        cmocka_unit_test(failed_write_leaves_old_data),
        cmocka_unit_test(littlefs_block_sizes_work),
        cmocka_unit_test(small_blocks_are_refused),
        cmocka_unit_test(zero_filled_image_formats_encrypted),
        cmocka_unit_test(power_loss_under_encryption_keeps_synced_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
