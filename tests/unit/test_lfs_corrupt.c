/*
 * Corrupt images: every call on a damaged image must return an error or
 * data, and never crash, hang or read outside its buffers (the sanitizer
 * build catches the last).  An alarm() watchdog
 * turns a hang into a failure that names the case.
 *
 * The damage: every byte of every metadata block flipped in turn (a
 * sample on the larger image), the first bytes of data blocks (skip-list
 * pointers), truncated images, tails that form cycles, block pointers out
 * of range, absurd file sizes, and appended commits whose tags carry
 * lengths, ids and values no writer would produce.  Commits that must get
 * past the CRC check are sealed with a correct CRC by this file's own
 * small reader of the littlefs log format.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "lfs_test_tree.h"

#define WATCHDOG_SECONDS 20
#define MAX_TAGS 4096

/* Tag types of the littlefs v2 format (the 11-bit type field). */
#define TAG_NAME_REG 0x001
#define TAG_NAME_DIR 0x002
#define TAG_SUPERBLOCK 0x0ff
#define TAG_DIRSTRUCT 0x200
#define TAG_INLINESTRUCT 0x201
#define TAG_CTZSTRUCT 0x202
#define TAG_USERATTR 0x300
#define TAG_CREATE 0x401
#define TAG_DELETE 0x4ff
#define TAG_CCRC 0x500
#define TAG_SOFTTAIL 0x600
#define TAG_HARDTAIL 0x601
#define TAG_MOVESTATE 0x7ff
#define ID_NONE 0x3ff

#define MKTAG(type, id, size) \
    ((uint32_t)(type) << 20 | (uint32_t)(id) << 10 | (uint32_t)(size))
#define TAG_TYPE(tag) (((tag) >> 20) & 0x7ff)
#define TAG_ID(tag) (((tag) >> 10) & 0x3ff)
#define TAG_SIZE(tag) ((tag) & 0x3ff)

/* ---- Watchdog ---- */

static char current_case[256];

static void on_alarm(int sig)
{
    static const char msg[] = "watchdog: the engine hung on case: ";

    (void)sig;
    (void)!write(2, msg, sizeof(msg) - 1);
    (void)!write(2, current_case, strlen(current_case));
    (void)!write(2, "\n", 1);
    abort();
}

static void set_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void set_case(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(current_case, sizeof(current_case), fmt, ap);
    va_end(ap);
    alarm(WATCHDOG_SECONDS);
}

/* ---- A small reader of metadata logs, for finding and sealing tags ---- */

static uint32_t crc32_lfs(uint32_t crc, const uint8_t *data, size_t len)
{
    /* CRC-32 (reflected polynomial 0xedb88320) without the final
     * inversion, as littlefs uses it; callers start from 0xffffffff. */
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return crc;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* One tag of a valid commit, with where its commit starts and where the
 * commit's CRC tag is, so that a changed tag can be sealed again. */
struct tag_ref {
    uint32_t block;
    uint32_t off;
    uint32_t tag;
    uint32_t commit_start;
    uint32_t crc_off;
};

struct log_scan {
    int commits;
    uint32_t end;     /* end of the last valid commit */
    uint32_t ptag;    /* what the next commit's first tag is XORed with */
    struct tag_ref *tags;
    size_t ntags;
    size_t cap;
};

static uint32_t tag_dsize(uint32_t tag)
{
    return 4 + (TAG_SIZE(tag) == 0x3ff ? 0 : TAG_SIZE(tag));
}

static void scan_add(struct log_scan *scan, const struct tag_ref *ref)
{
    if (scan->ntags == scan->cap) {
        scan->cap = scan->cap ? scan->cap * 2 : 64;
        scan->tags = realloc(scan->tags, scan->cap * sizeof(*scan->tags));
        assert_non_null(scan->tags);
    }
    scan->tags[scan->ntags++] = *ref;
}

/* Scan one block: every commit whose CRC checks, the way littlefs reads
 * them (tags XORed with the previous tag, a CRC tag closing each commit,
 * the CRC restarting after it). */
static void scan_block(const uint8_t *blk, uint32_t block, uint32_t size,
                       struct log_scan *scan)
{
    uint32_t off = 4;
    uint32_t ptag = 0xffffffffu;
    uint32_t crc = crc32_lfs(0xffffffffu, blk, 4);
    uint32_t start = 0;
    size_t first_pending = 0;

    memset(scan, 0, sizeof(*scan));
    scan->end = 4;
    scan->ptag = ptag;
    while (off + 4 <= size) {
        uint32_t tag = get_be32(blk + off) ^ ptag;
        struct tag_ref ref = { block, off, tag, start, 0 };

        if (tag & 0x80000000u || off + tag_dsize(tag) > size)
            break;
        crc = crc32_lfs(crc, blk + off, 4);
        ptag = tag;
        if ((TAG_TYPE(tag) & 0x780) == TAG_CCRC) {
            if (off + 8 > size || get_le32(blk + off + 4) != crc)
                break;
            for (size_t i = first_pending; i < scan->ntags; i++)
                scan->tags[i].crc_off = off;
            first_pending = scan->ntags;
            ptag ^= (TAG_TYPE(tag) & 1u) << 31;
            off += tag_dsize(tag);
            scan->commits++;
            scan->end = off;
            scan->ptag = ptag;
            start = off;
            crc = 0xffffffffu;
            continue;
        }
        crc = crc32_lfs(crc, blk + off + 4, tag_dsize(tag) - 4);
        scan_add(scan, &ref);
        off += tag_dsize(tag);
    }
    /* Tags of an unfinished commit at the end are not part of the log. */
    scan->ntags = first_pending;
}

/* Recompute the CRC of the commit that contains ref. */
static void seal_commit(uint8_t *blk, const struct tag_ref *ref)
{
    uint32_t crc = crc32_lfs(0xffffffffu, blk + ref->commit_start,
                             ref->crc_off + 4 - ref->commit_start);

    put_le32(blk + ref->crc_off + 4, crc);
}

/* Append a commit of the given tags after the last valid commit of blk.
 * Returns 0, or -1 when it does not fit. */
struct craft_tag {
    uint32_t type;
    uint32_t id;
    const void *data;
    uint32_t len;
};

static int append_commit(uint8_t *blk, uint32_t size,
                         const struct craft_tag *tags, size_t count)
{
    struct log_scan scan;
    uint32_t off;
    uint32_t ptag;
    uint32_t crc = 0xffffffffu;
    uint32_t need = 8;

    scan_block(blk, 0, size, &scan);
    free(scan.tags);
    if (scan.commits == 0)
        return -1;
    for (size_t i = 0; i < count; i++)
        need += 4 + tags[i].len;
    if (scan.end + need > size)
        return -1;

    off = scan.end;
    ptag = scan.ptag;
    for (size_t i = 0; i < count; i++) {
        uint32_t tag = MKTAG(tags[i].type, tags[i].id, tags[i].len);

        put_be32(blk + off, tag ^ ptag);
        crc = crc32_lfs(crc, blk + off, 4);
        if (tags[i].len > 0 && tags[i].len != 0x3ff) {
            memcpy(blk + off + 4, tags[i].data, tags[i].len);
            crc = crc32_lfs(crc, blk + off + 4, tags[i].len);
        }
        ptag = tag;
        off += tag_dsize(tag);
    }
    put_be32(blk + off, MKTAG(TAG_CCRC, ID_NONE, 4) ^ ptag);
    crc = crc32_lfs(crc, blk + off, 4);
    put_le32(blk + off + 4, crc);
    return 0;
}

/* ---- Populated images ---- */

struct image {
    uint32_t block_size;
    uint32_t block_count;
    size_t size;
    uint8_t *data;
    uint8_t *is_meta;    /* per block: contains a valid commit */
    uint8_t *is_used;    /* per block: not erased */
};

static void write_or_fail(struct lfs *lfs, const char *path, size_t len,
                          uint8_t fill)
{
    uint8_t *buf = tree_xmalloc(len);

    memset(buf, fill, len);
    for (size_t i = 0; i < len; i += 37)
        buf[i] = (uint8_t)i;
    assert_int_equal(test_write_file(lfs, path, buf, len), 0);
    free(buf);
}

/* A tree with inline and multi-block files, nested and split
 * directories, attributes, a rename and a remove in the logs. */
static void populate(struct lfs *lfs, int many)
{
    char path[32];

    assert_int_equal(lfs_mkdir(lfs, "/a"), 0);
    assert_int_equal(lfs_mkdir(lfs, "/a/b"), 0);
    assert_int_equal(lfs_mkdir(lfs, "/c"), 0);
    write_or_fail(lfs, "/tiny", 10, 't');
    write_or_fail(lfs, "/a/b/multi", 2500, 'm');
    write_or_fail(lfs, "/c/big", 6000, 'g');
    write_or_fail(lfs, "/a/inline", 40, 'i');
    assert_int_equal(lfs_setattr(lfs, "/tiny", 0x42, "attribute", 9), 0);
    assert_int_equal(lfs_setattr(lfs, "/a", 0x43, "dir attribute", 13), 0);
    for (int i = 0; i < many; i++) {
        snprintf(path, sizeof(path), "/c/entry%02d", i);
        write_or_fail(lfs, path, (size_t)(i % 3) * 20, 'e');
    }
    if (many >= 2) {
        assert_int_equal(lfs_rename(lfs, "/c/entry00", "/a/moved"), 0);
        assert_int_equal(lfs_remove(lfs, "/c/entry01"), 0);
    }
}

static void classify_blocks(struct image *img)
{
    img->is_meta = calloc(img->block_count, 1);
    img->is_used = calloc(img->block_count, 1);
    assert_non_null(img->is_meta);
    assert_non_null(img->is_used);
    for (uint32_t b = 0; b < img->block_count; b++) {
        const uint8_t *blk = img->data + (size_t)b * img->block_size;
        struct log_scan scan;

        for (uint32_t i = 0; i < img->block_size && !img->is_used[b]; i++)
            img->is_used[b] = blk[i] != 0xff;
        scan_block(blk, b, img->block_size, &scan);
        img->is_meta[b] = scan.commits > 0;
        free(scan.tags);
    }
}

static void make_image(struct image *img, uint32_t block_size,
                       uint32_t block_count, int many)
{
    struct lfs_format_options fmt = { .block_size = block_size };
    struct lfs_mount_options opts = { .no_mtime = 1 };
    struct bd *bd = bd_mem_new((uint64_t)block_size * block_count);
    struct lfs *lfs = NULL;
    struct log_scan scan;

    assert_non_null(bd);
    assert_int_equal(lfs_format(bd, &fmt), 0);
    assert_int_equal(lfs_mount(&lfs, bd, &opts), 0);
    populate(lfs, many);
    assert_int_equal(lfs_unmount(lfs), 0);

    img->block_size = block_size;
    img->block_count = block_count;
    img->size = bd->size;
    img->data = tree_xmalloc(img->size);
    memcpy(img->data, bd_mem_data(bd), img->size);
    bd_close(bd);
    classify_blocks(img);

    /* The reader above must understand the engine's own logs, or the
     * sealed corruptions below would test nothing. */
    scan_block(img->data, 0, block_size, &scan);
    assert_true(scan.commits > 0);
    free(scan.tags);
    assert_true(img->is_meta[0] || img->is_meta[1]);
}

static void free_image(struct image *img)
{
    free(img->data);
    free(img->is_meta);
    free(img->is_used);
}

static uint8_t *block_of(uint8_t *data, const struct image *img, uint32_t b)
{
    return data + (size_t)b * img->block_size;
}

/* All tags of all metadata blocks of data (an image of img's geometry). */
static void scan_image(const struct image *img, const uint8_t *data,
                       struct log_scan *all)
{
    memset(all, 0, sizeof(*all));
    for (uint32_t b = 0; b < img->block_count; b++) {
        struct log_scan scan;

        if (!img->is_meta[b])
            continue;
        scan_block(data + (size_t)b * img->block_size, b, img->block_size,
                   &scan);
        for (size_t i = 0; i < scan.ntags; i++)
            scan_add(all, &scan.tags[i]);
        free(scan.tags);
    }
}

/* ---- Exercising a damaged image ---- */

/* Outcomes over one test, printed at its end to show the damage reached
 * the engine (a case that never mounts tests only the mount). */
static struct {
    size_t mounts;
    size_t mounted;
    size_t walked_clean;
    size_t checked_clean;
} outcome;

static void print_outcome(const char *what)
{
    print_message("%s: %zu of %zu mounts succeeded, %zu walks read the "
                  "whole tree, lfs_check found %zu images clean\n", what,
                  outcome.mounted, outcome.mounts, outcome.walked_clean,
                  outcome.checked_clean);
    memset(&outcome, 0, sizeof(outcome));
}

static void exercise_mounted(struct lfs *lfs, int writable)
{
    static const uint8_t types[] = { 0x42, 0x43, 0x74 };
    struct tree_probe probe = { types, sizeof(types), 1 };
    struct tree t;
    struct lfs_fsinfo info;
    struct lfs_info st;

    outcome.mounted++;
    outcome.walked_clean += tree_snapshot(lfs, &probe, &t) == 0;
    tree_free(&t);
    (void)lfs_stat(lfs, "/c/big", &st);
    (void)lfs_stat(lfs, "/a/b/multi", &st);
    (void)lfs_fs_stat(lfs, &info);
    (void)lfs_fs_size(lfs);
    outcome.checked_clean += lfs_check(lfs, NULL, NULL) == 0;
    if (writable) {
        (void)test_write_file(lfs, "/new-after-damage", "new", 3);
        (void)lfs_mkdir(lfs, "/c/newdir");
        (void)lfs_remove(lfs, "/tiny");
        (void)lfs_rename(lfs, "/a/inline", "/c/renamed");
        (void)lfs_setattr(lfs, "/c", 0x44, "x", 1);
    }
}

/* Mount a copy of data twice, with the block size read from the
 * superblock and with the right one given, and walk it.  When writable,
 * try changes as well. */
static void exercise(const struct image *img, const uint8_t *data,
                     size_t size, int writable)
{
    uint32_t sizes[2] = { 0, img->block_size };

    for (int i = 0; i < 2; i++) {
        struct lfs_mount_options opts = {
            .block_size = sizes[i], .read_only = !writable, .no_mtime = 1,
        };
        struct bd *bd = bd_mem_new(size);
        struct lfs *lfs = NULL;

        assert_non_null(bd);
        memcpy(bd_mem_data(bd), data, size);
        outcome.mounts++;
        if (lfs_mount(&lfs, bd, &opts) == 0) {
            exercise_mounted(lfs, writable);
            (void)lfs_unmount(lfs);
        }
        bd_close(bd);
    }
}

static void check_clean_image(const struct image *img)
{
    struct bd *bd = bd_mem_new(img->size);
    struct lfs *lfs = NULL;

    assert_non_null(bd);
    memcpy(bd_mem_data(bd), img->data, img->size);
    assert_int_equal(lfs_mount(&lfs, bd, NULL), 0);
    assert_int_equal(lfs_check(lfs, NULL, NULL), 0);
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(bd);
}

/* ---- The cases ---- */

static void flip_every_metadata_byte(void **state)
{
    struct image img;
    uint8_t *copy;
    uint64_t rng = 0xf11b;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    check_clean_image(&img);
    copy = tree_xmalloc(img.size);

    for (uint32_t b = 0; b < img.block_count; b++) {
        struct log_scan scan;
        uint32_t limit;

        if (!img.is_meta[b])
            continue;
        scan_block(block_of(img.data, &img, b), b, img.block_size, &scan);
        free(scan.tags);
        /* Every byte of the valid log and a few erased bytes after it. */
        limit = scan.end + 16 < img.block_size ? scan.end + 16
                                               : img.block_size;
        for (uint32_t off = 0; off < limit; off++) {
            uint8_t mask = (uint8_t)(test_rand_next(&rng) | 1);

            memcpy(copy, img.data, img.size);
            block_of(copy, &img, b)[off] ^= mask;
            set_case("block %u byte %u xor 0x%02x", b, off, mask);
            exercise(&img, copy, img.size, off % 4 == 0);
            cases++;
        }
    }
    alarm(0);
    print_message("flipped %zu metadata bytes\n", cases);
    assert_true(cases > 1000);
    free(copy);
    free_image(&img);
    print_outcome(__func__);
}

static void flip_data_block_pointers(void **state)
{
    struct image img;
    uint8_t *copy;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    copy = tree_xmalloc(img.size);
    for (uint32_t b = 0; b < img.block_count; b++) {
        if (img.is_meta[b] || !img.is_used[b])
            continue;
        for (uint32_t off = 0; off < 16; off++) {
            static const uint8_t masks[] = { 0x01, 0x80, 0xff };

            for (size_t m = 0; m < sizeof(masks); m++) {
                memcpy(copy, img.data, img.size);
                block_of(copy, &img, b)[off] ^= masks[m];
                set_case("data block %u byte %u xor 0x%02x", b, off,
                         masks[m]);
                exercise(&img, copy, img.size, 1);
                cases++;
            }
        }
    }
    alarm(0);
    assert_true(cases > 100);
    free(copy);
    free_image(&img);
    print_outcome(__func__);
}

static void flip_sampled_bytes_large_blocks(void **state)
{
    struct image img;
    uint64_t rng = 0xb16;
    size_t meta_blocks = 0;
    uint8_t *copy;

    (void)state;
    make_image(&img, 4096, 64, 120);
    copy = tree_xmalloc(img.size);
    for (uint32_t b = 0; b < img.block_count; b++)
        meta_blocks += img.is_meta[b];
    assert_true(meta_blocks >= 4);

    for (int i = 0; i < 1500; i++) {
        uint32_t b = test_rand_below(&rng, img.block_count);
        uint32_t off;
        struct log_scan scan;

        if (!img.is_meta[b])
            continue;
        scan_block(block_of(img.data, &img, b), b, img.block_size, &scan);
        free(scan.tags);
        off = test_rand_below(&rng, scan.end + 8);
        memcpy(copy, img.data, img.size);
        block_of(copy, &img, b)[off] ^= (uint8_t)(test_rand_next(&rng) | 1);
        set_case("4096-byte blocks: block %u byte %u", b, off);
        exercise(&img, copy, img.size, i % 2);
    }
    alarm(0);
    free(copy);
    free_image(&img);
    print_outcome(__func__);
}

static void flip_sampled_bytes_in_fixture(void **state)
{
    static const char *const names[] = { "big-4096-v20", "big-4096-v21" };
    const char *dir = getenv("FIXTURES_DIR");

    (void)state;
    for (size_t n = 0; n < 2; n++) {
        char path[TREE_PATH_MAX];
        struct image img = { .block_size = 4096 };
        uint64_t rng = 0xf1c + n;
        FILE *f;
        struct bd *bd;

        snprintf(path, sizeof(path), "%s/littlefs/%s.img",
                 dir != NULL && dir[0] ? dir : "tests/fixtures", names[n]);
        f = fopen(path, "rb");
        if (f == NULL)
            fail_msg("cannot open %s (set FIXTURES_DIR)", path);
        img.size = 4u << 20;
        img.block_count = (uint32_t)(img.size / img.block_size);
        bd = bd_mem_new(img.size);
        assert_non_null(bd);
        assert_int_equal(fread(bd_mem_data(bd), 1, img.size, f), img.size);
        fclose(f);
        img.data = bd_mem_data(bd);
        classify_blocks(&img);

        /* Read-only mounts, so one device serves every case: the byte is
         * put back after each. */
        uint32_t meta[64];
        uint32_t nmeta = 0;

        for (uint32_t b = 0; b < img.block_count && nmeta < 64; b++) {
            if (img.is_meta[b])
                meta[nmeta++] = b;
        }
        assert_true(nmeta >= 4);
        for (int i = 0; i < 300; i++) {
            uint32_t b = meta[test_rand_below(&rng, nmeta)];
            struct log_scan scan;
            struct lfs_mount_options opts = { .read_only = 1 };
            struct lfs *lfs = NULL;
            uint32_t off;
            uint8_t saved;

            scan_block(block_of(img.data, &img, b), b, 4096, &scan);
            free(scan.tags);
            off = test_rand_below(&rng, scan.end);
            saved = block_of(img.data, &img, b)[off];
            block_of(img.data, &img, b)[off] ^= 0x10;
            set_case("%s block %u byte %u", names[n], b, off);
            outcome.mounts++;
            if (lfs_mount(&lfs, bd, &opts) == 0) {
                exercise_mounted(lfs, 0);
                (void)lfs_unmount(lfs);
            }
            block_of(img.data, &img, b)[off] = saved;
        }
        alarm(0);
        img.data = NULL;
        free_image(&img);
        bd_close(bd);
    }
    print_outcome(__func__);
}

static void truncated_image_fails_to_mount(void **state)
{
    struct image img;

    (void)state;
    make_image(&img, 512, 96, 30);
    for (uint32_t blocks = 2; blocks < img.block_count; blocks++) {
        size_t size = (size_t)blocks * img.block_size;
        struct bd *bd = bd_mem_new(size);
        struct lfs *lfs = NULL;
        int err;

        assert_non_null(bd);
        memcpy(bd_mem_data(bd), img.data, size);
        set_case("image truncated to %u blocks", blocks);
        err = lfs_mount(&lfs, bd, NULL);
        if (err != LFS_ERR_GEOMETRY)
            fail_msg("mount of an image truncated to %u of %u blocks "
                     "returned %d (%s), expected LFS_ERR_GEOMETRY", blocks,
                     img.block_count, err, lfs_strerror(err));
        bd_close(bd);
    }

    /* Sizes that are no multiple of the block size. */
    for (size_t size = 100; size < img.size; size += 1000) {
        set_case("image truncated to %zu bytes", size);
        exercise(&img, img.data, size, 1);
    }
    alarm(0);
    free_image(&img);
    print_outcome(__func__);
}

/* Rewrite the data of every tag of the given type (in every metadata
 * block) with fn, seal the commits, and exercise the result. */
typedef void (*patch_fn)(uint8_t *data, uint32_t len, uint32_t arg,
                         const struct image *img);

static size_t patch_and_exercise(const struct image *img, uint32_t type,
                                 patch_fn fn, uint32_t arg, const char *what)
{
    struct log_scan all;
    uint8_t *copy = tree_xmalloc(img->size);
    size_t cases = 0;

    scan_image(img, img->data, &all);
    for (size_t i = 0; i < all.ntags; i++) {
        const struct tag_ref *ref = &all.tags[i];
        uint8_t *blk;

        if (TAG_TYPE(ref->tag) != type || TAG_SIZE(ref->tag) == 0x3ff)
            continue;
        memcpy(copy, img->data, img->size);
        blk = block_of(copy, img, ref->block);
        fn(blk + ref->off + 4, TAG_SIZE(ref->tag), arg, img);
        seal_commit(blk, ref);
        set_case("%s (arg %u) in tag 0x%08x at block %u offset %u", what, arg,
                 ref->tag, ref->block, ref->off);
        exercise(img, copy, img->size, 1);
        cases++;
    }
    alarm(0);
    free(all.tags);
    free(copy);
    return cases;
}

static void set_pair(uint8_t *data, uint32_t len, uint32_t arg,
                     const struct image *img)
{
    uint32_t pairs[][2] = {
        { 0, 1 }, { 1, 0 },
        { img->block_count, img->block_count + 1 },
        { 0xffffffffu, 0xfffffffeu }, { 0x7fffffffu, 3 },
        { 2, 2 }, { 0xffffffffu, 0xffffffffu },
    };

    if (len < 8)
        return;
    put_le32(data, pairs[arg][0]);
    put_le32(data + 4, pairs[arg][1]);
}

#define PAIR_VARIANTS 7

/* Point every tail (soft and hard) at other pairs: the root (a cycle),
 * itself, and blocks that do not exist. */
static void tails_form_cycles_or_point_outside(void **state)
{
    struct image img;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    for (uint32_t v = 0; v < PAIR_VARIANTS; v++) {
        cases += patch_and_exercise(&img, TAG_SOFTTAIL, set_pair, v,
                                    "soft tail pair");
        cases += patch_and_exercise(&img, TAG_HARDTAIL, set_pair, v,
                                    "hard tail pair");
    }
    assert_true(cases > 0);
    free_image(&img);
    print_outcome(__func__);
}

static void set_to_own_pair(uint8_t *data, uint32_t len, uint32_t arg,
                            const struct image *img)
{
    (void)img;
    if (len < 8)
        return;
    /* arg is the block the tag lives in; the partner is made up, since
     * the two blocks of a pair need not be neighbours. */
    put_le32(data, arg);
    put_le32(data + 4, arg ^ 1u);
}

static void tails_point_to_own_pair(void **state)
{
    struct image img;
    struct log_scan all;
    uint8_t *copy;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    copy = tree_xmalloc(img.size);
    scan_image(&img, img.data, &all);
    for (size_t i = 0; i < all.ntags; i++) {
        const struct tag_ref *ref = &all.tags[i];
        uint32_t type = TAG_TYPE(ref->tag);
        uint8_t *blk;

        if ((type != TAG_SOFTTAIL && type != TAG_HARDTAIL &&
             type != TAG_DIRSTRUCT) || TAG_SIZE(ref->tag) < 8)
            continue;
        memcpy(copy, img.data, img.size);
        blk = block_of(copy, &img, ref->block);
        set_to_own_pair(blk + ref->off + 4, 8, ref->block, &img);
        seal_commit(blk, ref);
        set_case("tag 0x%08x in block %u points at its own block", ref->tag,
                 ref->block);
        exercise(&img, copy, img.size, 1);
        cases++;
    }
    alarm(0);
    assert_true(cases > 0);
    free(all.tags);
    free(copy);
    free_image(&img);
    print_outcome(__func__);
}

static void dir_pointers_out_of_range(void **state)
{
    struct image img;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    for (uint32_t v = 0; v < PAIR_VARIANTS; v++)
        cases += patch_and_exercise(&img, TAG_DIRSTRUCT, set_pair, v,
                                    "directory pair");
    assert_true(cases >= 3 * PAIR_VARIANTS);
    free_image(&img);
    print_outcome(__func__);
}

static void set_ctz(uint8_t *data, uint32_t len, uint32_t arg,
                    const struct image *img)
{
    uint32_t size = len >= 8 ? get_le32(data + 4) : 0;
    uint32_t heads[] = {
        img->block_count, img->block_count + 7, 0xffffffffu, 0, 1,
        0x80000000u,
    };
    uint32_t sizes[] = {
        0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu,
        img->block_count * img->block_size, size + img->block_size * 100,
        size * 2, size - 1,
    };
    uint32_t nheads = sizeof(heads) / sizeof(heads[0]);

    if (len < 8)
        return;
    if (arg < nheads)
        put_le32(data, heads[arg]);
    else
        put_le32(data + 4, sizes[arg - nheads]);
}

#define CTZ_VARIANTS 15

static void file_heads_and_sizes_absurd(void **state)
{
    struct image img;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    for (uint32_t v = 0; v < CTZ_VARIANTS; v++)
        cases += patch_and_exercise(&img, TAG_CTZSTRUCT, set_ctz, v,
                                    "file skip-list");
    assert_true(cases >= 2 * CTZ_VARIANTS);
    free_image(&img);
    print_outcome(__func__);
}

static void set_superblock_field(uint8_t *data, uint32_t len, uint32_t arg,
                                 const struct image *img)
{
    /* version, block_size, block_count, name_max, file_max, attr_max */
    static const uint32_t values[][2] = {
        { 0, 0x00030000 }, { 0, 0x00010000 }, { 0, 0x0002ffff },
        { 1, 0 }, { 1, 1 }, { 1, 256 }, { 1, 0x80000000u },
        { 2, 0 }, { 2, 0xffffffffu }, { 2, 1 },
        { 3, 0 }, { 3, 5000 }, { 4, 0 }, { 4, 0xffffffffu },
        { 5, 0 }, { 5, 70000 },
    };

    (void)img;
    if (len < 4 * (values[arg][0] + 1))
        return;
    put_le32(data + 4 * values[arg][0], values[arg][1]);
}

#define SUPERBLOCK_VARIANTS 16

static void superblock_fields_absurd(void **state)
{
    struct image img;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    for (uint32_t v = 0; v < SUPERBLOCK_VARIANTS; v++)
        cases += patch_and_exercise(&img, TAG_INLINESTRUCT,
                                    set_superblock_field, v,
                                    "inline struct (superblock field)");
    assert_true(cases >= SUPERBLOCK_VARIANTS);
    free_image(&img);
    print_outcome(__func__);
}

/* Set one field of every superblock entry (the inline struct of id 0 in
 * blocks 0 and 1) and mount; returns the mount's result. */
static int mount_with_superblock_field(const struct image *img, int field,
                                       uint32_t value)
{
    uint8_t *copy = tree_xmalloc(img->size);
    struct bd *bd = bd_mem_new(img->size);
    struct lfs *lfs = NULL;
    int patched = 0;
    int err;

    memcpy(copy, img->data, img->size);
    for (uint32_t b = 0; b < 2; b++) {
        struct log_scan scan;
        uint8_t *blk = block_of(copy, img, b);

        scan_block(blk, b, img->block_size, &scan);
        for (size_t i = 0; i < scan.ntags; i++) {
            const struct tag_ref *ref = &scan.tags[i];

            if (TAG_TYPE(ref->tag) != TAG_INLINESTRUCT ||
                TAG_ID(ref->tag) != 0 || TAG_SIZE(ref->tag) != 24)
                continue;
            put_le32(blk + ref->off + 4 + 4 * (uint32_t)field, value);
            seal_commit(blk, ref);
            patched++;
        }
        free(scan.tags);
    }
    assert_true(patched > 0);

    assert_non_null(bd);
    memcpy(bd_mem_data(bd), copy, img->size);
    set_case("superblock field %d set to 0x%08x", field, value);
    outcome.mounts++;
    err = lfs_mount(&lfs, bd, NULL);
    if (err == 0)
        exercise_mounted(lfs, 1);
    if (err == 0)
        (void)lfs_unmount(lfs);
    alarm(0);
    bd_close(bd);
    free(copy);
    return err;
}

static void superblock_version_and_geometry_checked(void **state)
{
    struct image img;

    (void)state;
    make_image(&img, 512, 96, 0);
    assert_int_equal(mount_with_superblock_field(&img, 0, 0x00020000), 0);
    assert_int_equal(mount_with_superblock_field(&img, 0, 0x00030000),
                     LFS_ERR_VERSION);
    assert_int_equal(mount_with_superblock_field(&img, 0, 0x00010000),
                     LFS_ERR_VERSION);
    assert_int_equal(mount_with_superblock_field(&img, 0, 0x00020002),
                     LFS_ERR_VERSION);
    assert_int_equal(mount_with_superblock_field(&img, 1, 1024),
                     LFS_ERR_GEOMETRY);
    /* As with the reference littlefs, a device larger than the
     * filesystem is fine; a smaller one is not. */
    assert_int_equal(mount_with_superblock_field(&img, 2, 95), 0);
    assert_int_equal(mount_with_superblock_field(&img, 2, 97),
                     LFS_ERR_GEOMETRY);
    free_image(&img);
    print_outcome(__func__);
}

/* ---- Damage that lfs_check must report ---- */

/* Rewrite the data of every tag of one type (all versions in every log,
 * so the newest is changed too), sealing each commit again. */
static void patch_all(const struct image *img, uint8_t *data, uint32_t type,
                      patch_fn fn, uint32_t arg)
{
    struct log_scan all;
    size_t patched = 0;

    scan_image(img, data, &all);
    for (size_t i = 0; i < all.ntags; i++) {
        const struct tag_ref *ref = &all.tags[i];
        uint8_t *blk = block_of(data, img, ref->block);

        if (TAG_TYPE(ref->tag) != type || TAG_SIZE(ref->tag) == 0x3ff)
            continue;
        fn(blk + ref->off + 4, TAG_SIZE(ref->tag), arg, img);
        seal_commit(blk, ref);
        patched++;
    }
    free(all.tags);
    assert_true(patched > 0);
}

/* An image with one directory /d holding one file of several blocks. */
static void make_small_image(struct image *img)
{
    struct lfs_format_options fmt = { .block_size = 512 };
    struct lfs_mount_options opts = { .no_mtime = 1 };
    struct bd *bd = bd_mem_new(512 * 64);
    struct lfs *lfs = NULL;

    assert_non_null(bd);
    assert_int_equal(lfs_format(bd, &fmt), 0);
    assert_int_equal(lfs_mount(&lfs, bd, &opts), 0);
    assert_int_equal(lfs_mkdir(lfs, "/d"), 0);
    write_or_fail(lfs, "/d/f", 3000, 'f');
    assert_int_equal(lfs_unmount(lfs), 0);

    img->block_size = 512;
    img->block_count = 64;
    img->size = bd->size;
    img->data = tree_xmalloc(img->size);
    memcpy(img->data, bd_mem_data(bd), img->size);
    bd_close(bd);
    classify_blocks(img);
}

/* Mount a patched copy read-only; the caller checks and unmounts.  The
 * damage is confined to one entry, so the mount must succeed: the rest
 * of the image stays readable and lfs_check can report the damage.  On
 * failure everything is freed before the test fails. */
static struct lfs *mount_patched(struct image *img, uint8_t *data,
                                 struct bd **bd, const char *what)
{
    struct lfs_mount_options opts = { .read_only = 1 };
    struct lfs *lfs = NULL;
    int err;

    *bd = bd_mem_new(img->size);
    assert_non_null(*bd);
    memcpy(bd_mem_data(*bd), data, img->size);
    err = lfs_mount(&lfs, *bd, &opts);
    if (err != 0) {
        alarm(0);
        bd_close(*bd);
        free(data);
        free_image(img);
        fail_msg("%s: read-only mount failed with %d (%s), expected 0",
                 what, err, lfs_strerror(err));
    }
    return lfs;
}

static void count_report(void *ctx, const char *line)
{
    (void)line;
    (*(int *)ctx)++;
}

static void expect_check_finds(struct lfs *lfs, const char *what)
{
    int lines = 0;
    int result = lfs_check(lfs, count_report, &lines);

    if (result != 1)
        fail_msg("%s: lfs_check returned %d, expected 1 (problems found)",
                 what, result);
    if (lines == 0)
        fail_msg("%s: lfs_check found problems but reported no line", what);
}

static void check_reports_directory_out_of_range(void **state)
{
    struct image img;
    uint8_t *copy;
    struct bd *bd;
    struct lfs *lfs;
    struct lfs_dir *dir = NULL;
    struct lfs_info info;

    (void)state;
    make_small_image(&img);
    copy = tree_xmalloc(img.size);
    memcpy(copy, img.data, img.size);
    patch_all(&img, copy, TAG_DIRSTRUCT, set_pair, 2);
    set_case("directory pair out of range");
    lfs = mount_patched(&img, copy, &bd, "directory pair out of range");

    assert_int_equal(lfs_stat(lfs, "/d", &info), 0);
    assert_int_equal(info.type, LFS_TYPE_DIR);
    assert_int_equal(lfs_dir_open(lfs, &dir, "/d"), LFS_ERR_CORRUPT);
    assert_int_equal(lfs_stat(lfs, "/d/f", &info), LFS_ERR_CORRUPT);
    expect_check_finds(lfs, "directory pair out of range");
    assert_int_equal(lfs_unmount(lfs), 0);
    alarm(0);
    bd_close(bd);
    free(copy);
    free_image(&img);
}

static void check_reports_file_head_out_of_range(void **state)
{
    struct image img;
    uint8_t *copy;
    struct bd *bd;
    struct lfs *lfs;
    struct lfs_file *file = NULL;
    uint8_t buf[64];
    int err;

    (void)state;
    make_small_image(&img);
    copy = tree_xmalloc(img.size);
    memcpy(copy, img.data, img.size);
    patch_all(&img, copy, TAG_CTZSTRUCT, set_ctz, 1);
    set_case("file head out of range");
    lfs = mount_patched(&img, copy, &bd, "file head out of range");

    /* The damage shows at open or at the first read. */
    err = lfs_file_open(lfs, &file, "/d/f", LFS_O_RDONLY);
    if (err == 0) {
        assert_int_equal(lfs_file_read(file, buf, sizeof(buf)),
                         LFS_ERR_CORRUPT);
        assert_int_equal(lfs_file_close(file), 0);
    } else {
        assert_int_equal(err, LFS_ERR_CORRUPT);
    }
    expect_check_finds(lfs, "file head out of range");
    assert_int_equal(lfs_unmount(lfs), 0);
    alarm(0);
    bd_close(bd);
    free(copy);
    free_image(&img);
}

static void check_reports_file_too_large(void **state)
{
    struct image img;
    uint8_t *copy;
    struct bd *bd;
    struct lfs *lfs;
    struct lfs_file *file = NULL;
    struct lfs_info info;
    uint32_t nheads = 6;

    (void)state;
    make_small_image(&img);
    copy = tree_xmalloc(img.size);
    memcpy(copy, img.data, img.size);
    /* Size 0x80000000: past the largest file the format allows. */
    patch_all(&img, copy, TAG_CTZSTRUCT, set_ctz, nheads + 3);
    set_case("file size past file_max");
    lfs = mount_patched(&img, copy, &bd, "file size past file_max");

    assert_int_equal(lfs_file_open(lfs, &file, "/d/f", LFS_O_RDONLY),
                     LFS_ERR_CORRUPT);
    assert_int_equal(lfs_stat(lfs, "/d", &info), 0);
    expect_check_finds(lfs, "file size past file_max");
    assert_int_equal(lfs_unmount(lfs), 0);
    alarm(0);
    bd_close(bd);
    free(copy);
    free_image(&img);
}

/* A file whose size needs more blocks than the image has. */
static void check_reports_file_longer_than_image(void **state)
{
    struct image img;
    uint8_t *copy;
    struct bd *bd;
    struct lfs *lfs;

    (void)state;
    make_small_image(&img);
    copy = tree_xmalloc(img.size);
    memcpy(copy, img.data, img.size);
    patch_all(&img, copy, TAG_CTZSTRUCT, set_ctz, 6 + 5);
    set_case("file longer than the image");
    lfs = mount_patched(&img, copy, &bd, "file longer than the image");
    expect_check_finds(lfs, "file longer than the image");
    assert_int_equal(lfs_unmount(lfs), 0);
    alarm(0);
    bd_close(bd);
    free(copy);
    free_image(&img);
}

/* The split directory's hard tails all point back at the root pair. */
static void check_reports_tail_cycle(void **state)
{
    struct image img;
    uint8_t *copy;
    struct bd *bd;
    struct lfs_mount_options opts = { .read_only = 1 };
    struct lfs *lfs = NULL;
    struct lfs_dir *dir = NULL;
    struct lfs_info info;
    int got;
    int listed = 0;
    int err;

    (void)state;
    make_image(&img, 512, 96, 30);
    copy = tree_xmalloc(img.size);
    memcpy(copy, img.data, img.size);
    patch_all(&img, copy, TAG_HARDTAIL, set_pair, 0);
    set_case("hard tails point at the root");

    bd = bd_mem_new(img.size);
    assert_non_null(bd);
    memcpy(bd_mem_data(bd), copy, img.size);
    err = lfs_mount(&lfs, bd, &opts);
    if (err == 0) {
        /* Reading /c must end, with an error or after finitely many
         * entries. */
        if (lfs_dir_open(lfs, &dir, "/c") == 0) {
            while ((got = lfs_dir_read(dir, &info)) == 1 && listed < 100000)
                listed++;
            assert_true(got <= 0);
            assert_int_equal(lfs_dir_close(dir), 0);
        }
        expect_check_finds(lfs, "tail cycle");
        assert_int_equal(lfs_unmount(lfs), 0);
    } else {
        assert_int_equal(err, LFS_ERR_CORRUPT);
    }
    alarm(0);
    bd_close(bd);
    free(copy);
    free_image(&img);
}

/* Commits no writer makes, appended (with a correct CRC) to the newest
 * log of every metadata block. */
static void crafted_commits_are_rejected_safely(void **state)
{
    static uint8_t big[1022];
    static const uint8_t move[12] = {
        0xff, 0xf0, 0x0f, 0x00, 0x39, 0x30, 0, 0, 3, 0, 0, 0,
    };
    static const uint8_t bad_super[24] = {
        0, 0, 3, 0, 0, 0x10, 0, 0, 0xff, 0xff, 0xff, 0xff,
    };
    uint8_t pair_out[8];
    struct image img;
    uint8_t *copy;
    size_t cases = 0;

    (void)state;
    memset(big, 'B', sizeof(big));
    put_le32(pair_out, 1000000);
    put_le32(pair_out + 4, 1000001);
    const struct craft_tag crafts[][2] = {
        { { TAG_CREATE, 200, NULL, 0 }, { TAG_NAME_REG, 200, "ghost", 5 } },
        { { TAG_DELETE, 300, NULL, 0 }, { TAG_DELETE, 0x3fe, NULL, 0 } },
        { { TAG_NAME_REG, 1, big, 1000 }, { 0, 0, NULL, 0 } },
        { { TAG_NAME_DIR, 1, NULL, 0 }, { TAG_DIRSTRUCT, 1, "abcd", 4 } },
        { { TAG_CTZSTRUCT, 1, "abc", 3 }, { 0, 0, NULL, 0 } },
        { { TAG_DIRSTRUCT, 1, pair_out, 8 }, { 0, 0, NULL, 0 } },
        { { TAG_INLINESTRUCT, 1, big, 1000 }, { 0, 0, NULL, 0 } },
        { { TAG_MOVESTATE, ID_NONE, move, 12 }, { 0, 0, NULL, 0 } },
        { { TAG_MOVESTATE, ID_NONE, move, 7 }, { 0, 0, NULL, 0 } },
        { { TAG_SOFTTAIL, ID_NONE, "abc", 3 }, { 0, 0, NULL, 0 } },
        { { TAG_HARDTAIL, ID_NONE, pair_out, 8 }, { 0, 0, NULL, 0 } },
        { { TAG_SUPERBLOCK, 0, "littlefs", 8 },
          { TAG_INLINESTRUCT, 0, bad_super, 24 } },
        { { TAG_CREATE, 0, NULL, 0 }, { TAG_NAME_DIR, 0, "x", 1 } },
        { { 0x0ab, 2, "??", 2 }, { 0x3ff, 1, NULL, 0 } },
        { { TAG_USERATTR | 0x42, 1, big, 1022 }, { 0, 0, NULL, 0 } },
        { { TAG_NAME_REG, 0x3fe, "far", 3 }, { TAG_CTZSTRUCT, 0x3fe,
                                                pair_out, 8 } },
    };
    size_t ncrafts = sizeof(crafts) / sizeof(crafts[0]);

    make_image(&img, 4096, 64, 120);
    copy = tree_xmalloc(img.size);
    for (uint32_t b = 0; b < img.block_count; b++) {
        if (!img.is_meta[b])
            continue;
        for (size_t c = 0; c < ncrafts; c++) {
            size_t count = crafts[c][1].type == 0 &&
                           crafts[c][1].len == 0 ? 1 : 2;

            memcpy(copy, img.data, img.size);
            if (append_commit(block_of(copy, &img, b), img.block_size,
                              crafts[c], count) != 0)
                continue;
            set_case("crafted commit %zu appended to block %u", c, b);
            exercise(&img, copy, img.size, 1);
            cases++;
        }
    }
    alarm(0);
    print_message("appended %zu crafted commits\n", cases);
    assert_true(cases >= ncrafts * 2);
    free(copy);
    free_image(&img);
    print_outcome(__func__);
}

/* A tag whose length runs past the end of the block, sealed or not. */
static void tag_length_past_block_end(void **state)
{
    struct image img;
    uint8_t *copy;
    size_t cases = 0;

    (void)state;
    make_image(&img, 512, 96, 30);
    copy = tree_xmalloc(img.size);
    for (uint32_t b = 0; b < img.block_count; b++) {
        struct log_scan scan;
        uint8_t *blk;

        if (!img.is_meta[b])
            continue;
        for (uint32_t len = 0x300; len <= 0x3fe; len += 0x7f) {
            memcpy(copy, img.data, img.size);
            blk = block_of(copy, &img, b);
            scan_block(blk, b, img.block_size, &scan);
            free(scan.tags);
            if (scan.end + 8 > img.block_size)
                continue;
            put_be32(blk + scan.end, MKTAG(TAG_INLINESTRUCT, 1, len) ^
                                     scan.ptag);
            set_case("tag of length %u at block %u offset %u", len, b,
                     scan.end);
            exercise(&img, copy, img.size, 1);
            cases++;
        }
    }
    alarm(0);
    assert_true(cases > 0);
    free(copy);
    free_image(&img);
    print_outcome(__func__);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGALRM, on_alarm);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flip_every_metadata_byte),
        cmocka_unit_test(flip_data_block_pointers),
        cmocka_unit_test(flip_sampled_bytes_large_blocks),
        cmocka_unit_test(flip_sampled_bytes_in_fixture),
        cmocka_unit_test(truncated_image_fails_to_mount),
        cmocka_unit_test(tails_form_cycles_or_point_outside),
        cmocka_unit_test(tails_point_to_own_pair),
        cmocka_unit_test(dir_pointers_out_of_range),
        cmocka_unit_test(file_heads_and_sizes_absurd),
        cmocka_unit_test(superblock_fields_absurd),
        cmocka_unit_test(superblock_version_and_geometry_checked),
        cmocka_unit_test(check_reports_directory_out_of_range),
        cmocka_unit_test(check_reports_file_head_out_of_range),
        cmocka_unit_test(check_reports_file_too_large),
        cmocka_unit_test(check_reports_file_longer_than_image),
        cmocka_unit_test(check_reports_tail_cycle),
        cmocka_unit_test(crafted_commits_are_rejected_safely),
        cmocka_unit_test(tag_length_past_block_end),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
