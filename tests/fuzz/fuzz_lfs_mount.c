/*
 * libFuzzer target: the input is a disk image of at most 128 KiB, padded
 * with 0xff (erased bytes) to a multiple of 512 bytes.  It is mounted
 * read-only with the block size read from the superblock, with 512, and
 * with one more size picked by the first byte.  Each mount is walked
 * (readdir, stat, every file read to the end, an attribute), checked with
 * lfs_check and unmounted.  Any crash, hang or sanitizer report is a bug,
 * while errors are the expected result for most inputs.
 *
 * Seeds: tests/fuzz/seeds/fuzz_lfs_mount/ (the small fixture images).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "block/bd.h"
#include "lfs/lfs.h"

#define IMAGE_UNIT 512
#define IMAGE_MAX (128 * 1024)
#define WALK_MAX_DEPTH 16
#define WALK_MAX_ENTRIES 4096
#define READ_MAX (1 << 20)

struct walk {
    struct lfs *lfs;
    int entries;
};

static void read_file(struct lfs *lfs, const char *path)
{
    static uint8_t buf[4096];
    struct lfs_file *file = NULL;
    size_t total = 0;
    ssize_t got;

    if (lfs_file_open(lfs, &file, path, LFS_O_RDONLY) != 0)
        return;
    (void)lfs_file_size(file);
    do {
        got = lfs_file_read(file, buf, sizeof(buf));
        if (got > 0)
            total += (size_t)got;
    } while (got > 0 && total < READ_MAX);
    (void)lfs_file_pread(file, buf, 16, 1u << 20);
    (void)lfs_file_close(file);
}

static void visit(struct walk *w, const char *path, int depth);

static void visit_entry(struct walk *w, const char *dir,
                        const struct lfs_info *info, int depth)
{
    char path[4096];
    struct lfs_info st;
    uint8_t attr[LFS_ATTR_MAX_LIMIT];

    if (strcmp(dir, "/") == 0)
        snprintf(path, sizeof(path), "/%s", info->name);
    else
        snprintf(path, sizeof(path), "%s/%s", dir, info->name);
    (void)lfs_stat(w->lfs, path, &st);
    (void)lfs_getattr(w->lfs, path, LFS_ATTR_MTIME, attr, sizeof(attr));
    if (info->type == LFS_TYPE_DIR)
        visit(w, path, depth + 1);
    else
        read_file(w->lfs, path);
}

static void visit(struct walk *w, const char *path, int depth)
{
    struct lfs_dir *dir = NULL;
    struct lfs_info info;

    if (depth > WALK_MAX_DEPTH || lfs_dir_open(w->lfs, &dir, path) != 0)
        return;
    while (w->entries < WALK_MAX_ENTRIES && lfs_dir_read(dir, &info) == 1) {
        w->entries++;
        visit_entry(w, path, &info, depth);
    }
    (void)lfs_dir_close(dir);
}

static void mount_and_walk(const uint8_t *image, size_t size,
                           uint32_t block_size)
{
    struct lfs_mount_options opts = { .block_size = block_size,
                                      .read_only = 1 };
    struct bd *bd = bd_mem_new(size);
    struct lfs *lfs = NULL;
    struct lfs_fsinfo info;
    struct walk w;

    if (bd == NULL)
        return;
    memcpy(bd_mem_data(bd), image, size);
    if (lfs_mount(&lfs, bd, &opts) == 0) {
        w.lfs = lfs;
        w.entries = 0;
        (void)lfs_fs_stat(lfs, &info);
        (void)lfs_fs_size(lfs);
        visit(&w, "/", 0);
        (void)lfs_check(lfs, NULL, NULL);
        (void)lfs_unmount(lfs);
    }
    bd_close(bd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t image[IMAGE_MAX];
    size_t padded;
    uint32_t extra;

    if (size == 0 || size > IMAGE_MAX)
        return 0;
    padded = (size + IMAGE_UNIT - 1) / IMAGE_UNIT * IMAGE_UNIT;
    memset(image, 0xff, padded);
    memcpy(image, data, size);

    mount_and_walk(image, padded, 0);
    mount_and_walk(image, padded, 512);

    /* 128 to 16384: other block sizes that divide the image. */
    extra = 128u << (data[0] & 7);
    if (extra != 512 && padded % extra == 0)
        mount_and_walk(image, padded, extra);
    return 0;
}
