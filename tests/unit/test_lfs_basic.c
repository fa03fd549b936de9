/*
 * Behaviour of every public call of the littlefs engine, one case per
 * test: format and mount, files, directories, renames, attributes,
 * read-only mounts, running out of space, large trees and large files.
 * Each test formats its own image on an in-memory device.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "lfs_test_tree.h"

struct fs {
    struct bd *bd;
    struct lfs *lfs;
};

static void fs_mount(struct fs *fs, int read_only)
{
    struct lfs_mount_options opts = { .read_only = read_only, .no_mtime = 1 };
    int err = lfs_mount(&fs->lfs, fs->bd, &opts);

    if (err != 0)
        fail_msg("mount failed: %s", lfs_strerror(err));
}

static void fs_unmount(struct fs *fs)
{
    assert_int_equal(lfs_unmount(fs->lfs), 0);
    fs->lfs = NULL;
}

static void fs_remount(struct fs *fs)
{
    fs_unmount(fs);
    fs_mount(fs, 0);
}

/* Format an image of block_count blocks and mount it. */
static void fs_new_with(struct fs *fs, uint32_t block_size,
                        uint32_t block_count, uint32_t name_max,
                        uint32_t disk_version)
{
    struct lfs_format_options opts = {
        .block_size = block_size,
        .name_max = name_max,
        .disk_version = disk_version,
    };
    int err;

    fs->bd = bd_mem_new((uint64_t)block_size * block_count);
    assert_non_null(fs->bd);
    err = lfs_format(fs->bd, &opts);
    if (err != 0)
        fail_msg("format failed: %s", lfs_strerror(err));
    fs_mount(fs, 0);
}

static void fs_new(struct fs *fs)
{
    fs_new_with(fs, 512, 256, 0, 0);
}

static void fs_free(struct fs *fs)
{
    if (fs->lfs != NULL)
        fs_unmount(fs);
    bd_close(fs->bd);
}

static struct lfs_file *open_ok(struct fs *fs, const char *path, int flags)
{
    struct lfs_file *file = NULL;
    int err = lfs_file_open(fs->lfs, &file, path, flags);

    if (err != 0)
        fail_msg("open %s (flags 0x%x): %s", path, flags, lfs_strerror(err));
    assert_non_null(file);
    return file;
}

static void write_file(struct fs *fs, const char *path, const void *data,
                       size_t size)
{
    int err = test_write_file(fs->lfs, path, data, size);

    if (err != 0)
        fail_msg("write %s: %s", path, lfs_strerror(err));
}

/* Read the whole file and compare it with data. */
static void expect_file(struct fs *fs, const char *path, const void *data,
                        size_t size)
{
    struct lfs_file *file = open_ok(fs, path, LFS_O_RDONLY);
    uint8_t *buf = tree_xmalloc(size + 16);

    assert_int_equal(lfs_file_size(file), (int64_t)size);
    assert_int_equal(lfs_file_read(file, buf, size + 16), (ssize_t)size);
    if (size > 0)
        assert_memory_equal(buf, data, size);
    assert_int_equal(lfs_file_read(file, buf, 16), 0);
    assert_int_equal(lfs_file_close(file), 0);
    free(buf);
}

static void expect_stat(struct fs *fs, const char *path, uint8_t type,
                        uint32_t size)
{
    struct lfs_info info;
    int err = lfs_stat(fs->lfs, path, &info);

    if (err != 0)
        fail_msg("stat %s: %s", path, lfs_strerror(err));
    assert_int_equal(info.type, type);
    assert_int_equal(info.size, size);
}

static void expect_missing(struct fs *fs, const char *path)
{
    struct lfs_info info;

    assert_int_equal(lfs_stat(fs->lfs, path, &info), LFS_ERR_NOENT);
}

/* Names listed by readdir, in order, joined by ','. */
static void list_dir(struct fs *fs, const char *path, char *out, size_t len)
{
    struct lfs_dir *dir = NULL;
    struct lfs_info info;
    int got;

    out[0] = '\0';
    assert_int_equal(lfs_dir_open(fs->lfs, &dir, path), 0);
    while ((got = lfs_dir_read(dir, &info)) == 1) {
        size_t used = strlen(out);

        snprintf(out + used, len - used, "%s%s", used ? "," : "", info.name);
    }
    assert_int_equal(got, 0);
    assert_int_equal(lfs_dir_close(dir), 0);
}

static void expect_listing(struct fs *fs, const char *path, const char *want)
{
    char got[4096];

    list_dir(fs, path, got, sizeof(got));
    assert_string_equal(got, want);
}

/* ---- Format and mount ---- */

static void format_gives_empty_root(void **state)
{
    struct fs fs;
    struct lfs_fsinfo info;

    (void)state;
    fs_new(&fs);
    expect_listing(&fs, "/", "");
    expect_stat(&fs, "/", LFS_TYPE_DIR, 0);
    assert_int_equal(lfs_fs_stat(fs.lfs, &info), 0);
    assert_int_equal(info.disk_version, LFS_DISK_VERSION_2_0);
    assert_int_equal(info.block_size, 512);
    assert_int_equal(info.block_count, 256);
    assert_int_equal(info.name_max, 255);
    assert_int_equal(info.file_max, LFS_FILE_MAX_LIMIT);
    assert_int_equal(info.attr_max, LFS_ATTR_MAX_LIMIT);
    assert_int_equal(lfs_fs_size(fs.lfs), 2);
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);
    fs_remount(&fs);
    expect_listing(&fs, "/", "");
    fs_free(&fs);
}

static void format_records_disk_version_2_1(void **state)
{
    struct fs fs;
    struct lfs_fsinfo info;

    (void)state;
    fs_new_with(&fs, 4096, 64, 32, LFS_DISK_VERSION_2_1);
    write_file(&fs, "/a", "a", 1);
    fs_remount(&fs);
    assert_int_equal(lfs_fs_stat(fs.lfs, &info), 0);
    assert_int_equal(info.disk_version, LFS_DISK_VERSION_2_1);
    assert_int_equal(info.block_size, 4096);
    assert_int_equal(info.block_count, 64);
    assert_int_equal(info.name_max, 32);
    expect_file(&fs, "/a", "a", 1);
    fs_free(&fs);
}

static void format_rejects_invalid_options(void **state)
{
    static const uint32_t bad_sizes[] = { 0, 64, 100, 768, 131072 };
    struct bd *bd = bd_mem_new(1 << 20);

    (void)state;
    assert_non_null(bd);
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        struct lfs_format_options opts = { .block_size = bad_sizes[i] };
        int err = lfs_format(bd, &opts);

        if (err != LFS_ERR_INVAL)
            fail_msg("format with block size %u returned %d, expected "
                     "LFS_ERR_INVAL", bad_sizes[i], err);
    }

    struct lfs_format_options long_names = {
        .block_size = 512, .name_max = LFS_NAME_MAX_LIMIT + 1,
    };
    assert_int_equal(lfs_format(bd, &long_names), LFS_ERR_INVAL);

    struct lfs_format_options future = {
        .block_size = 512, .disk_version = 0x00030000,
    };
    assert_int_equal(lfs_format(bd, &future), LFS_ERR_INVAL);
    bd_close(bd);
}

static void mount_erased_device_is_not_lfs(void **state)
{
    struct bd *bd = bd_mem_new(65536);
    struct lfs *lfs = NULL;

    (void)state;
    assert_non_null(bd);
    assert_int_equal(lfs_mount(&lfs, bd, NULL), LFS_ERR_NOTLFS);
    bd_close(bd);
}

static void strerror_names_every_error(void **state)
{
    static const int errors[] = {
        LFS_ERR_IO, LFS_ERR_CORRUPT, LFS_ERR_NOENT, LFS_ERR_EXIST,
        LFS_ERR_NOTDIR, LFS_ERR_ISDIR, LFS_ERR_NOTEMPTY, LFS_ERR_BADF,
        LFS_ERR_FBIG, LFS_ERR_INVAL, LFS_ERR_NOSPC, LFS_ERR_NOMEM,
        LFS_ERR_NOATTR, LFS_ERR_NAMETOOLONG, LFS_ERR_ROFS, LFS_ERR_NOTLFS,
        LFS_ERR_VERSION, LFS_ERR_AUTH, LFS_ERR_GEOMETRY, LFS_ERR_UNWRITTEN,
    };
    const char *unknown = lfs_strerror(-77777);

    (void)state;
    assert_non_null(unknown);
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        const char *text = lfs_strerror(errors[i]);

        assert_non_null(text);
        assert_true(strlen(text) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(text, lfs_strerror(errors[j]));
    }
}

/* ---- Opening files ---- */

static void open_missing_without_creat_fails(void **state)
{
    struct fs fs;
    struct lfs_file *file = NULL;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/nope", LFS_O_RDONLY),
                     LFS_ERR_NOENT);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/nope", LFS_O_RDWR),
                     LFS_ERR_NOENT);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/no/such",
                                   LFS_O_WRONLY | LFS_O_CREAT),
                     LFS_ERR_NOENT);
    expect_missing(&fs, "/nope");
    fs_free(&fs);
}

static void open_creat_makes_empty_file(void **state)
{
    struct fs fs;
    struct lfs_file *file;

    (void)state;
    fs_new(&fs);
    file = open_ok(&fs, "/new", LFS_O_WRONLY | LFS_O_CREAT);
    assert_int_equal(lfs_file_size(file), 0);
    assert_int_equal(lfs_file_close(file), 0);
    expect_stat(&fs, "/new", LFS_TYPE_REG, 0);
    fs_remount(&fs);
    expect_stat(&fs, "/new", LFS_TYPE_REG, 0);
    expect_file(&fs, "/new", "", 0);
    fs_free(&fs);
}

static void open_excl_on_existing_fails(void **state)
{
    struct fs fs;
    struct lfs_file *file = NULL;

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/keep", "precious", 8);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/keep",
                                   LFS_O_WRONLY | LFS_O_CREAT | LFS_O_EXCL |
                                   LFS_O_TRUNC), LFS_ERR_EXIST);
    expect_file(&fs, "/keep", "precious", 8);

    assert_int_equal(lfs_mkdir(fs.lfs, "/dir"), 0);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/dir",
                                   LFS_O_WRONLY | LFS_O_CREAT | LFS_O_EXCL),
                     LFS_ERR_EXIST);

    file = open_ok(&fs, "/fresh", LFS_O_WRONLY | LFS_O_CREAT | LFS_O_EXCL);
    assert_int_equal(lfs_file_close(file), 0);
    expect_stat(&fs, "/fresh", LFS_TYPE_REG, 0);
    fs_remount(&fs);
    expect_file(&fs, "/keep", "precious", 8);
    fs_free(&fs);
}

static void open_trunc_empties_file(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t big[3000];

    (void)state;
    memset(big, 'b', sizeof(big));
    fs_new(&fs);
    write_file(&fs, "/small", "0123456789", 10);
    write_file(&fs, "/big", big, sizeof(big));

    file = open_ok(&fs, "/small", LFS_O_WRONLY | LFS_O_TRUNC);
    assert_int_equal(lfs_file_size(file), 0);
    assert_int_equal(lfs_file_write(file, "xy", 2), 2);
    assert_int_equal(lfs_file_close(file), 0);
    file = open_ok(&fs, "/big", LFS_O_RDWR | LFS_O_TRUNC);
    assert_int_equal(lfs_file_close(file), 0);

    expect_file(&fs, "/small", "xy", 2);
    expect_file(&fs, "/big", "", 0);
    fs_remount(&fs);
    expect_file(&fs, "/small", "xy", 2);
    expect_file(&fs, "/big", "", 0);
    fs_free(&fs);
}

static void open_append_writes_at_end(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t buf[32];

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/log", "abc", 3);

    file = open_ok(&fs, "/log", LFS_O_RDWR | LFS_O_APPEND);
    assert_int_equal(lfs_file_seek(file, 0, LFS_SEEK_SET), 0);
    assert_int_equal(lfs_file_write(file, "de", 2), 2);
    assert_int_equal(lfs_file_tell(file), 5);
    assert_int_equal(lfs_file_seek(file, 1, LFS_SEEK_SET), 1);
    assert_int_equal(lfs_file_read(file, buf, 2), 2);
    assert_memory_equal(buf, "bc", 2);
    assert_int_equal(lfs_file_write(file, "f", 1), 1);
    assert_int_equal(lfs_file_pwrite(file, "g", 1, 0), 1);
    assert_int_equal(lfs_file_size(file), 7);
    assert_int_equal(lfs_file_close(file), 0);

    expect_file(&fs, "/log", "abcdefg", 7);
    fs_remount(&fs);
    expect_file(&fs, "/log", "abcdefg", 7);
    fs_free(&fs);
}

static void open_directory_as_file_fails(void **state)
{
    struct fs fs;
    struct lfs_file *file = NULL;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/d", LFS_O_RDONLY),
                     LFS_ERR_ISDIR);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/d",
                                   LFS_O_WRONLY | LFS_O_CREAT),
                     LFS_ERR_ISDIR);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/", LFS_O_RDONLY),
                     LFS_ERR_ISDIR);
    fs_free(&fs);
}

static void open_below_file_is_notdir(void **state)
{
    struct fs fs;
    struct lfs_file *file = NULL;
    struct lfs_dir *dir = NULL;

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "x", 1);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/f/g", LFS_O_RDONLY),
                     LFS_ERR_NOTDIR);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/f/g",
                                   LFS_O_WRONLY | LFS_O_CREAT),
                     LFS_ERR_NOTDIR);
    assert_int_equal(lfs_dir_open(fs.lfs, &dir, "/f"), LFS_ERR_NOTDIR);
    assert_int_equal(lfs_dir_open(fs.lfs, &dir, "/missing"), LFS_ERR_NOENT);
    fs_free(&fs);
}

static void handle_mode_limits_calls(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t buf[8];

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "12345", 5);

    file = open_ok(&fs, "/f", LFS_O_RDONLY);
    assert_int_equal(lfs_file_write(file, "x", 1), LFS_ERR_BADF);
    assert_int_equal(lfs_file_pwrite(file, "x", 1, 0), LFS_ERR_BADF);
    assert_int_equal(lfs_file_truncate(file, 1), LFS_ERR_BADF);
    assert_int_equal(lfs_file_close(file), 0);

    file = open_ok(&fs, "/f", LFS_O_WRONLY);
    assert_int_equal(lfs_file_read(file, buf, sizeof(buf)), LFS_ERR_BADF);
    assert_int_equal(lfs_file_pread(file, buf, sizeof(buf), 0), LFS_ERR_BADF);
    assert_int_equal(lfs_file_close(file), 0);
    expect_file(&fs, "/f", "12345", 5);
    fs_free(&fs);
}

/* ---- Reading, writing, seeking ---- */

static void write_read_seek_round_trip(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t data[1500];
    uint8_t buf[1500];
    uint64_t seed = 7;

    (void)state;
    test_rand_fill(&seed, data, sizeof(data));
    fs_new(&fs);
    file = open_ok(&fs, "/f", LFS_O_RDWR | LFS_O_CREAT);
    assert_int_equal(lfs_file_write(file, data, 1000), 1000);
    assert_int_equal(lfs_file_tell(file), 1000);
    assert_int_equal(lfs_file_write(file, data + 1000, 500), 500);
    assert_int_equal(lfs_file_size(file), 1500);

    assert_int_equal(lfs_file_seek(file, 100, LFS_SEEK_SET), 100);
    assert_int_equal(lfs_file_read(file, buf, 50), 50);
    assert_memory_equal(buf, data + 100, 50);
    assert_int_equal(lfs_file_seek(file, 25, LFS_SEEK_CUR), 175);
    assert_int_equal(lfs_file_read(file, buf, 10), 10);
    assert_memory_equal(buf, data + 175, 10);
    assert_int_equal(lfs_file_seek(file, -10, LFS_SEEK_END), 1490);
    assert_int_equal(lfs_file_read(file, buf, 100), 10);
    assert_memory_equal(buf, data + 1490, 10);
    assert_int_equal(lfs_file_read(file, buf, 100), 0);

    assert_int_equal(lfs_file_seek(file, -1, LFS_SEEK_SET), LFS_ERR_INVAL);
    assert_int_equal(lfs_file_seek(file, -1501, LFS_SEEK_END), LFS_ERR_INVAL);
    assert_int_equal(lfs_file_tell(file), 1500);
    assert_int_equal(lfs_file_seek(file, 0, 99), LFS_ERR_INVAL);

    assert_int_equal(lfs_file_pread(file, buf, 300, 1400), 100);
    assert_memory_equal(buf, data + 1400, 100);
    assert_int_equal(lfs_file_pread(file, buf, 10, 5000), 0);
    assert_int_equal(lfs_file_tell(file), 1500);

    /* Overwrite in the middle: the rest of the file is kept. */
    memset(data + 600, 'M', 300);
    assert_int_equal(lfs_file_pwrite(file, data + 600, 300, 600), 300);
    assert_int_equal(lfs_file_tell(file), 1500);
    assert_int_equal(lfs_file_close(file), 0);

    expect_file(&fs, "/f", data, sizeof(data));
    fs_remount(&fs);
    expect_file(&fs, "/f", data, sizeof(data));
    fs_free(&fs);
}

static void write_past_end_fills_zeros(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t want[6000];

    (void)state;
    memset(want, 0, sizeof(want));
    memcpy(want, "head", 4);
    memcpy(want + 3000, "mid", 3);
    memcpy(want + 5996, "tail", 4);

    fs_new(&fs);
    file = open_ok(&fs, "/sparse", LFS_O_RDWR | LFS_O_CREAT);
    assert_int_equal(lfs_file_write(file, "head", 4), 4);
    assert_int_equal(lfs_file_seek(file, 3000, LFS_SEEK_SET), 3000);
    assert_int_equal(lfs_file_size(file), 4);
    assert_int_equal(lfs_file_write(file, "mid", 3), 3);
    assert_int_equal(lfs_file_pwrite(file, "tail", 4, 5996), 4);
    assert_int_equal(lfs_file_size(file), 6000);
    assert_int_equal(lfs_file_close(file), 0);

    expect_file(&fs, "/sparse", want, sizeof(want));
    fs_remount(&fs);
    expect_file(&fs, "/sparse", want, sizeof(want));
    fs_free(&fs);
}

static void write_beyond_file_max_fails(void **state)
{
    struct fs fs;
    struct lfs_file *file;

    (void)state;
    fs_new(&fs);
    file = open_ok(&fs, "/f", LFS_O_RDWR | LFS_O_CREAT);
    assert_int_equal(lfs_file_pwrite(file, "xy", 2, LFS_FILE_MAX_LIMIT - 1),
                     LFS_ERR_FBIG);
    assert_int_equal(lfs_file_size(file), 0);
    assert_int_equal(lfs_file_close(file), 0);
    expect_stat(&fs, "/f", LFS_TYPE_REG, 0);
    fs_free(&fs);
}

static void truncate_shrinks_and_grows(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t data[4000];
    uint8_t want[5000];
    uint64_t seed = 11;

    (void)state;
    test_rand_fill(&seed, data, sizeof(data));
    fs_new(&fs);
    write_file(&fs, "/t", data, sizeof(data));

    file = open_ok(&fs, "/t", LFS_O_RDWR);
    assert_int_equal(lfs_file_truncate(file, 1000), 0);
    assert_int_equal(lfs_file_size(file), 1000);
    assert_int_equal(lfs_file_truncate(file, 5000), 0);
    assert_int_equal(lfs_file_size(file), 5000);
    assert_int_equal(lfs_file_close(file), 0);

    memset(want, 0, sizeof(want));
    memcpy(want, data, 1000);
    expect_file(&fs, "/t", want, sizeof(want));
    fs_remount(&fs);
    expect_file(&fs, "/t", want, sizeof(want));

    file = open_ok(&fs, "/t", LFS_O_RDWR);
    assert_int_equal(lfs_file_truncate(file, 10), 0);
    assert_int_equal(lfs_file_truncate(file, 0), 0);
    assert_int_equal(lfs_file_close(file), 0);
    expect_file(&fs, "/t", "", 0);
    fs_remount(&fs);
    expect_file(&fs, "/t", "", 0);
    fs_free(&fs);
}

/* Shrinking a file on its own blocks, with nothing else done to the
 * handle before close, and truncating to the size it already has. */
static void truncate_only_then_close(void **state)
{
    static const size_t sizes[] = { 4000, 1000, 600, 64, 0 };
    struct fs fs;
    uint8_t data[4000];
    uint64_t seed = 13;

    (void)state;
    test_rand_fill(&seed, data, sizeof(data));
    fs_new(&fs);
    write_file(&fs, "/t", data, sizeof(data));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct lfs_file *file = open_ok(&fs, "/t", LFS_O_RDWR);

        assert_int_equal(lfs_file_truncate(file, sizes[i]), 0);
        assert_int_equal(lfs_file_close(file), 0);
        expect_file(&fs, "/t", data, sizes[i]);
        fs_remount(&fs);
        expect_file(&fs, "/t", data, sizes[i]);
    }
    fs_free(&fs);
}

static void truncate_inline_file_grows_zeros(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t want[40];

    (void)state;
    memset(want, 0, sizeof(want));
    memcpy(want, "abc", 3);
    fs_new(&fs);
    write_file(&fs, "/t", "abcdef", 6);
    file = open_ok(&fs, "/t", LFS_O_RDWR);
    assert_int_equal(lfs_file_truncate(file, 3), 0);
    assert_int_equal(lfs_file_truncate(file, 40), 0);
    assert_int_equal(lfs_file_close(file), 0);
    fs_remount(&fs);
    expect_file(&fs, "/t", want, sizeof(want));
    fs_free(&fs);
}

static void two_handles_stay_coherent(void **state)
{
    struct fs fs;
    struct lfs_file *writer;
    struct lfs_file *reader;
    uint8_t big[2000];
    uint8_t buf[2000];

    (void)state;
    memset(big, 'z', sizeof(big));
    fs_new(&fs);
    write_file(&fs, "/shared", "old", 3);
    writer = open_ok(&fs, "/shared", LFS_O_RDWR);
    reader = open_ok(&fs, "/shared", LFS_O_RDONLY);

    assert_int_equal(lfs_file_write(writer, "hello", 5), 5);
    assert_int_equal(lfs_file_size(reader), 5);
    assert_int_equal(lfs_file_pread(reader, buf, sizeof(buf), 0), 5);
    assert_memory_equal(buf, "hello", 5);

    assert_int_equal(lfs_file_sync(writer), 0);
    assert_int_equal(lfs_file_pread(reader, buf, sizeof(buf), 0), 5);
    assert_memory_equal(buf, "hello", 5);
    expect_stat(&fs, "/shared", LFS_TYPE_REG, 5);

    /* Past the inline limit, so the file moves to its own blocks. */
    assert_int_equal(lfs_file_write(writer, big, sizeof(big)), 2000);
    assert_int_equal(lfs_file_read(reader, buf, 5), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(lfs_file_read(reader, buf, sizeof(buf)), 2000);
    assert_memory_equal(buf, big, sizeof(big));

    /* And the other way round: the reader's truncate is seen by the
     * writer. */
    assert_int_equal(lfs_file_close(reader), 0);
    reader = open_ok(&fs, "/shared", LFS_O_RDWR);
    assert_int_equal(lfs_file_truncate(reader, 4), 0);
    assert_int_equal(lfs_file_size(writer), 4);
    assert_int_equal(lfs_file_close(reader), 0);
    assert_int_equal(lfs_file_close(writer), 0);

    expect_file(&fs, "/shared", "hell", 4);
    fs_remount(&fs);
    expect_file(&fs, "/shared", "hell", 4);
    fs_free(&fs);
}

static void file_stat_reports_handle_state(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    struct lfs_info info;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    file = open_ok(&fs, "/d/f", LFS_O_RDWR | LFS_O_CREAT);
    assert_int_equal(lfs_file_write(file, "12345678", 8), 8);
    assert_int_equal(lfs_file_stat(file, &info), 0);
    assert_int_equal(info.type, LFS_TYPE_REG);
    assert_int_equal(info.size, 8);
    assert_string_equal(info.name, "f");
    assert_int_equal(lfs_file_close(file), 0);
    fs_free(&fs);
}

static void discard_drops_unsynced_changes(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t big[3000];

    (void)state;
    memset(big, 'B', sizeof(big));
    fs_new(&fs);
    file = open_ok(&fs, "/f", LFS_O_RDWR | LFS_O_CREAT);
    assert_int_equal(lfs_file_write(file, "synced", 6), 6);
    assert_int_equal(lfs_file_sync(file), 0);
    assert_int_equal(lfs_file_write(file, big, sizeof(big)), 3000);
    assert_int_equal(lfs_file_truncate(file, 2), 0);
    lfs_file_discard(file);
    expect_file(&fs, "/f", "synced", 6);

    /* A file created by open exists, empty, even when discarded. */
    file = open_ok(&fs, "/g", LFS_O_WRONLY | LFS_O_CREAT);
    assert_int_equal(lfs_file_write(file, big, sizeof(big)), 3000);
    lfs_file_discard(file);
    expect_file(&fs, "/g", "", 0);

    /* Truncation at open is undone as well. */
    file = open_ok(&fs, "/f", LFS_O_WRONLY | LFS_O_TRUNC);
    lfs_file_discard(file);
    expect_file(&fs, "/f", "synced", 6);

    fs_remount(&fs);
    expect_file(&fs, "/f", "synced", 6);
    expect_file(&fs, "/g", "", 0);
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);

    /* Blocks of dropped data are free again after a remount. */
    assert_int_equal(lfs_fs_size(fs.lfs), 2);
    fs_free(&fs);
}

static void discard_keeps_changes_of_other_handle(void **state)
{
    struct fs fs;
    struct lfs_file *a;
    struct lfs_file *b;

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "old", 3);
    a = open_ok(&fs, "/f", LFS_O_RDWR);
    b = open_ok(&fs, "/f", LFS_O_RDWR);
    assert_int_equal(lfs_file_write(a, "new", 3), 3);
    lfs_file_discard(a);
    expect_file(&fs, "/f", "new", 3);
    assert_int_equal(lfs_file_close(b), 0);
    fs_remount(&fs);
    expect_file(&fs, "/f", "new", 3);
    fs_free(&fs);
}

static void unmount_writes_back_open_handles(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    struct lfs_dir *dir = NULL;
    uint8_t data[2000];

    (void)state;
    memset(data, 'u', sizeof(data));
    fs_new(&fs);
    file = open_ok(&fs, "/open", LFS_O_WRONLY | LFS_O_CREAT);
    assert_int_equal(lfs_file_write(file, data, sizeof(data)), 2000);
    assert_int_equal(lfs_dir_open(fs.lfs, &dir, "/"), 0);

    /* Both handles are freed by the unmount (the sanitizer build would
     * report a leak otherwise). */
    fs_remount(&fs);
    expect_file(&fs, "/open", data, sizeof(data));
    fs_free(&fs);
}

static void open_rejects_invalid_flags(void **state)
{
    struct fs fs;
    struct lfs_file *file = NULL;

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "x", 1);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/f", 0), LFS_ERR_INVAL);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/f",
                                   LFS_O_RDONLY | LFS_O_TRUNC),
                     LFS_ERR_INVAL);
    expect_file(&fs, "/f", "x", 1);
    fs_free(&fs);
}

/* ---- Entries ---- */

static void stat_reports_type_and_size(void **state)
{
    struct fs fs;
    struct lfs_info info;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/dir"), 0);
    write_file(&fs, "/dir/file", "0123456789", 10);

    assert_int_equal(lfs_stat(fs.lfs, "/dir/file", &info), 0);
    assert_int_equal(info.type, LFS_TYPE_REG);
    assert_int_equal(info.size, 10);
    assert_string_equal(info.name, "file");
    assert_int_equal(lfs_stat(fs.lfs, "dir", &info), 0);
    assert_int_equal(info.type, LFS_TYPE_DIR);
    assert_int_equal(info.size, 0);
    assert_string_equal(info.name, "dir");

    /* "." is skipped and ".." goes up, never above the root. */
    assert_int_equal(lfs_stat(fs.lfs, "/./dir/../dir/./file", &info), 0);
    assert_string_equal(info.name, "file");
    assert_int_equal(lfs_stat(fs.lfs, "/../../dir", &info), 0);
    assert_string_equal(info.name, "dir");
    assert_int_equal(lfs_stat(fs.lfs, "//dir//file", &info), 0);
    assert_int_equal(info.size, 10);

    assert_int_equal(lfs_stat(fs.lfs, "/dir/none", &info), LFS_ERR_NOENT);
    assert_int_equal(lfs_stat(fs.lfs, "/none/file", &info), LFS_ERR_NOENT);
    assert_int_equal(lfs_stat(fs.lfs, "/dir/file/x", &info), LFS_ERR_NOTDIR);
    fs_free(&fs);
}

static void mkdir_reports_errors(void **state)
{
    struct fs fs;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/a"), 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/a/b"), 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/a"), LFS_ERR_EXIST);
    assert_int_equal(lfs_mkdir(fs.lfs, "/"), LFS_ERR_EXIST);
    assert_int_equal(lfs_mkdir(fs.lfs, "/x/y"), LFS_ERR_NOENT);
    write_file(&fs, "/f", "x", 1);
    assert_int_equal(lfs_mkdir(fs.lfs, "/f"), LFS_ERR_EXIST);
    assert_int_equal(lfs_mkdir(fs.lfs, "/f/d"), LFS_ERR_NOTDIR);

    expect_stat(&fs, "/a/b", LFS_TYPE_DIR, 0);
    expect_missing(&fs, "/x");
    fs_remount(&fs);
    expect_listing(&fs, "/", "a,f");
    expect_listing(&fs, "/a", "b");
    expect_listing(&fs, "/a/b", "");
    fs_free(&fs);
}

static void remove_reports_errors(void **state)
{
    struct fs fs;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    write_file(&fs, "/d/f", "x", 1);
    assert_int_equal(lfs_remove(fs.lfs, "/d"), LFS_ERR_NOTEMPTY);
    assert_int_equal(lfs_remove(fs.lfs, "/missing"), LFS_ERR_NOENT);
    assert_int_equal(lfs_remove(fs.lfs, "/missing/f"), LFS_ERR_NOENT);
    assert_int_equal(lfs_remove(fs.lfs, "/d/f/g"), LFS_ERR_NOTDIR);
    expect_stat(&fs, "/d/f", LFS_TYPE_REG, 1);

    assert_int_equal(lfs_remove(fs.lfs, "/d/f"), 0);
    assert_int_equal(lfs_remove(fs.lfs, "/d/f"), LFS_ERR_NOENT);
    assert_int_equal(lfs_remove(fs.lfs, "/d"), 0);
    expect_missing(&fs, "/d");
    fs_remount(&fs);
    expect_listing(&fs, "/", "");
    assert_int_equal(lfs_fs_size(fs.lfs), 2);
    fs_free(&fs);
}

static void remove_frees_file_blocks(void **state)
{
    struct fs fs;
    uint8_t data[20000];
    int64_t empty;
    int64_t full;

    (void)state;
    memset(data, 'q', sizeof(data));
    fs_new(&fs);
    empty = lfs_fs_size(fs.lfs);
    assert_int_equal(empty, 2);
    write_file(&fs, "/big", data, sizeof(data));
    full = lfs_fs_size(fs.lfs);
    /* 20000 bytes need at least 40 blocks of 512 bytes. */
    assert_true(full >= empty + 40);
    assert_true(full <= empty + 48);
    assert_int_equal(lfs_remove(fs.lfs, "/big"), 0);
    assert_int_equal(lfs_fs_size(fs.lfs), empty);
    fs_free(&fs);
}

/* ---- Renames ---- */

static void rename_moves_across_directories(void **state)
{
    struct fs fs;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/a"), 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/b"), 0);
    write_file(&fs, "/a/f", "contents", 8);
    assert_int_equal(lfs_mkdir(fs.lfs, "/a/sub"), 0);
    write_file(&fs, "/a/sub/g", "g", 1);

    assert_int_equal(lfs_rename(fs.lfs, "/a/f", "/b/f2"), 0);
    assert_int_equal(lfs_rename(fs.lfs, "/a/sub", "/b/sub2"), 0);
    expect_missing(&fs, "/a/f");
    expect_missing(&fs, "/a/sub");
    expect_file(&fs, "/b/f2", "contents", 8);
    expect_file(&fs, "/b/sub2/g", "g", 1);
    fs_remount(&fs);
    expect_listing(&fs, "/a", "");
    expect_listing(&fs, "/b", "f2,sub2");
    expect_file(&fs, "/b/sub2/g", "g", 1);
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);
    fs_free(&fs);
}

static void rename_replaces_existing_file(void **state)
{
    struct fs fs;
    uint8_t big[3000];
    int64_t before;

    (void)state;
    memset(big, 'o', sizeof(big));
    fs_new(&fs);
    write_file(&fs, "/new", "new", 3);
    write_file(&fs, "/old", big, sizeof(big));
    before = lfs_fs_size(fs.lfs);
    assert_int_equal(lfs_rename(fs.lfs, "/new", "/old"), 0);
    expect_missing(&fs, "/new");
    expect_file(&fs, "/old", "new", 3);
    /* The replaced file's blocks are free again. */
    assert_true(lfs_fs_size(fs.lfs) < before);
    fs_remount(&fs);
    expect_listing(&fs, "/", "old");
    expect_file(&fs, "/old", "new", 3);
    fs_free(&fs);
}

static void rename_replaces_empty_directory(void **state)
{
    struct fs fs;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/src"), 0);
    write_file(&fs, "/src/inside", "i", 1);
    assert_int_equal(lfs_mkdir(fs.lfs, "/dst"), 0);
    assert_int_equal(lfs_rename(fs.lfs, "/src", "/dst"), 0);
    expect_missing(&fs, "/src");
    expect_file(&fs, "/dst/inside", "i", 1);
    fs_remount(&fs);
    expect_listing(&fs, "/", "dst");
    expect_listing(&fs, "/dst", "inside");
    assert_int_equal(lfs_fs_size(fs.lfs), 4);
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);
    fs_free(&fs);
}

static void rename_reports_errors(void **state)
{
    struct fs fs;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/full"), 0);
    write_file(&fs, "/full/x", "x", 1);
    assert_int_equal(lfs_mkdir(fs.lfs, "/empty"), 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/dir"), 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/dir/sub"), 0);
    write_file(&fs, "/file", "f", 1);

    assert_int_equal(lfs_rename(fs.lfs, "/empty", "/full"),
                     LFS_ERR_NOTEMPTY);
    assert_int_equal(lfs_rename(fs.lfs, "/empty", "/file"), LFS_ERR_NOTDIR);
    assert_int_equal(lfs_rename(fs.lfs, "/file", "/empty"), LFS_ERR_ISDIR);
    assert_int_equal(lfs_rename(fs.lfs, "/dir", "/dir/sub/inner"),
                     LFS_ERR_INVAL);
    assert_int_equal(lfs_rename(fs.lfs, "/dir", "/dir/new"), LFS_ERR_INVAL);
    assert_int_equal(lfs_rename(fs.lfs, "/missing", "/other"),
                     LFS_ERR_NOENT);
    assert_int_equal(lfs_rename(fs.lfs, "/file", "/missing/file"),
                     LFS_ERR_NOENT);
    assert_int_equal(lfs_rename(fs.lfs, "/file", "/file/x"), LFS_ERR_NOTDIR);

    expect_listing(&fs, "/", "dir,empty,file,full");
    expect_listing(&fs, "/dir", "sub");
    expect_listing(&fs, "/full", "x");
    expect_file(&fs, "/file", "f", 1);
    fs_free(&fs);
}

static void rename_to_itself_changes_nothing(void **state)
{
    struct fs fs;

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "same", 4);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    write_file(&fs, "/d/g", "g", 1);
    assert_int_equal(lfs_rename(fs.lfs, "/f", "/f"), 0);
    assert_int_equal(lfs_rename(fs.lfs, "/d", "/d"), 0);
    assert_int_equal(lfs_rename(fs.lfs, "/d", "/./d"), 0);
    expect_file(&fs, "/f", "same", 4);
    fs_remount(&fs);
    expect_listing(&fs, "/", "d,f");
    expect_file(&fs, "/f", "same", 4);
    expect_file(&fs, "/d/g", "g", 1);
    fs_free(&fs);
}

static void rename_keeps_attributes(void **state)
{
    struct fs fs;
    uint8_t buf[16];

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "x", 1);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0x42, "attr", 4), 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    assert_int_equal(lfs_rename(fs.lfs, "/f", "/d/g"), 0);
    fs_remount(&fs);
    assert_int_equal(lfs_getattr(fs.lfs, "/d/g", 0x42, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "attr", 4);
    fs_free(&fs);
}

/* ---- Directories ---- */

static void readdir_lists_names_in_byte_order(void **state)
{
    static const char *const names[] = {
        "zeta", "alpha", "Beta", "mid", "a", "ab", "caf\xc3\xa9", "0",
    };
    struct fs fs;

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[64];

        snprintf(path, sizeof(path), "/d/%s", names[i]);
        if (i % 2)
            assert_int_equal(lfs_mkdir(fs.lfs, path), 0);
        else
            write_file(&fs, path, names[i], strlen(names[i]));
    }
    expect_listing(&fs, "/d", "0,Beta,a,ab,alpha,caf\xc3\xa9,mid,zeta");
    fs_remount(&fs);
    expect_listing(&fs, "/d", "0,Beta,a,ab,alpha,caf\xc3\xa9,mid,zeta");
    fs_free(&fs);
}

static void readdir_rewind_restarts(void **state)
{
    struct fs fs;
    struct lfs_dir *dir = NULL;
    struct lfs_info info;

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/one", "1", 1);
    write_file(&fs, "/two", "22", 2);
    assert_int_equal(lfs_dir_open(fs.lfs, &dir, "/"), 0);
    assert_int_equal(lfs_dir_read(dir, &info), 1);
    assert_string_equal(info.name, "one");
    assert_int_equal(info.size, 1);
    assert_int_equal(lfs_dir_read(dir, &info), 1);
    assert_string_equal(info.name, "two");
    assert_int_equal(info.size, 2);
    assert_int_equal(lfs_dir_read(dir, &info), 0);
    assert_int_equal(lfs_dir_read(dir, &info), 0);
    assert_int_equal(lfs_dir_rewind(dir), 0);
    assert_int_equal(lfs_dir_read(dir, &info), 1);
    assert_string_equal(info.name, "one");
    assert_int_equal(lfs_dir_close(dir), 0);
    fs_free(&fs);
}

/* Removing entries while a directory is being read: every entry that was
 * not removed is listed exactly once, and a removed one at most once. */
static void readdir_survives_concurrent_removal(void **state)
{
    enum { COUNT = 600 };
    static uint8_t seen[COUNT];
    struct fs fs;
    struct lfs_dir *dir = NULL;
    struct lfs_info info;
    int got;
    int listed = 0;

    (void)state;
    memset(seen, 0, sizeof(seen));
    fs_new_with(&fs, 512, 512, 0, 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    for (int i = 0; i < COUNT; i++) {
        char path[32];

        snprintf(path, sizeof(path), "/d/f%04d", i);
        write_file(&fs, path, "", 0);
    }

    assert_int_equal(lfs_dir_open(fs.lfs, &dir, "/d"), 0);
    while ((got = lfs_dir_read(dir, &info)) == 1) {
        int n = atoi(info.name + 1);
        char path[LFS_NAME_MAX_LIMIT + 8];

        assert_true(n >= 0 && n < COUNT);
        assert_int_equal(seen[n], 0);
        seen[n] = 1;
        listed++;

        /* Remove this entry and one far ahead, not yet listed. */
        snprintf(path, sizeof(path), "/d/%s", info.name);
        assert_int_equal(lfs_remove(fs.lfs, path), 0);
        if (n % 3 == 0 && n + 300 < COUNT) {
            snprintf(path, sizeof(path), "/d/f%04d", n + 300);
            assert_int_equal(lfs_remove(fs.lfs, path), 0);
            seen[n + 300] = 2;
        }
    }
    assert_int_equal(got, 0);
    assert_int_equal(lfs_dir_close(dir), 0);

    for (int i = 0; i < COUNT; i++) {
        if (seen[i] == 0)
            fail_msg("f%04d was never listed", i);
    }
    assert_int_equal(listed, COUNT - 100);
    expect_listing(&fs, "/d", "");
    fs_remount(&fs);
    expect_listing(&fs, "/d", "");
    assert_int_equal(lfs_remove(fs.lfs, "/d"), 0);
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);
    fs_free(&fs);
}

static void readdir_sees_entries_added_later(void **state)
{
    struct fs fs;
    struct lfs_dir *dir = NULL;
    struct lfs_info info;

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/b", "", 0);
    assert_int_equal(lfs_dir_open(fs.lfs, &dir, "/"), 0);
    assert_int_equal(lfs_dir_read(dir, &info), 1);
    assert_string_equal(info.name, "b");
    write_file(&fs, "/c", "", 0);
    assert_int_equal(lfs_dir_read(dir, &info), 1);
    assert_string_equal(info.name, "c");
    assert_int_equal(lfs_dir_read(dir, &info), 0);
    assert_int_equal(lfs_dir_close(dir), 0);
    fs_free(&fs);
}

/* ---- Names ---- */

static void name_max_limits_names(void **state)
{
    struct fs fs;
    struct lfs_file *file = NULL;
    char ok[64];
    char too_long[64];
    struct lfs_info info;

    (void)state;
    snprintf(ok, sizeof(ok), "/%.32s", "0123456789abcdefghijklmnopqrstuvwxyz");
    snprintf(too_long, sizeof(too_long), "/%.33s",
             "0123456789abcdefghijklmnopqrstuvwxyz");
    fs_new_with(&fs, 512, 128, 32, 0);

    write_file(&fs, ok, "x", 1);
    assert_int_equal(lfs_file_open(fs.lfs, &file, too_long,
                                   LFS_O_WRONLY | LFS_O_CREAT),
                     LFS_ERR_NAMETOOLONG);
    assert_int_equal(lfs_mkdir(fs.lfs, too_long), LFS_ERR_NAMETOOLONG);
    assert_int_equal(lfs_rename(fs.lfs, ok, too_long), LFS_ERR_NAMETOOLONG);
    assert_int_equal(lfs_stat(fs.lfs, too_long, &info), LFS_ERR_NAMETOOLONG);

    fs_remount(&fs);
    assert_int_equal(lfs_stat(fs.lfs, ok, &info), 0);
    assert_int_equal(strlen(info.name), 32);
    assert_string_equal(info.name, ok + 1);
    expect_listing(&fs, "/", ok + 1);
    fs_free(&fs);
}

static void long_names_up_to_default_max(void **state)
{
    struct fs fs;
    char name[300];
    char path[310];

    (void)state;
    memset(name, 'n', 255);
    name[255] = '\0';
    snprintf(path, sizeof(path), "/%s", name);
    fs_new_with(&fs, 4096, 64, 0, 0);
    write_file(&fs, path, "long", 4);
    fs_remount(&fs);
    expect_file(&fs, path, "long", 4);
    expect_listing(&fs, "/", name);
    strcat(path, "x");
    assert_int_equal(lfs_mkdir(fs.lfs, path), LFS_ERR_NAMETOOLONG);
    fs_free(&fs);
}

/* ---- Attributes ---- */

static void attributes_set_get_remove(void **state)
{
    struct fs fs;
    uint8_t buf[64];

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "x", 1);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);

    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x10, buf, sizeof(buf)),
                     LFS_ERR_NOATTR);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0x10, "first value", 11), 0);
    assert_int_equal(lfs_setattr(fs.lfs, "/d", 0x10, "on a dir", 8), 0);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0x00, "", 0), 0);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0xff, "ff", 2), 0);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x10, buf, sizeof(buf)), 11);
    assert_memory_equal(buf, "first value", 11);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x00, buf, sizeof(buf)), 0);

    /* A shorter value replaces the whole attribute. */
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0x10, "2nd", 3), 0);
    fs_remount(&fs);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x10, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "2nd", 3);
    assert_int_equal(lfs_getattr(fs.lfs, "/d", 0x10, buf, sizeof(buf)), 8);
    assert_memory_equal(buf, "on a dir", 8);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0xff, buf, sizeof(buf)), 2);

    assert_int_equal(lfs_removeattr(fs.lfs, "/f", 0x10), 0);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x10, buf, sizeof(buf)),
                     LFS_ERR_NOATTR);
    fs_remount(&fs);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x10, buf, sizeof(buf)),
                     LFS_ERR_NOATTR);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0xff, buf, sizeof(buf)), 2);
    expect_file(&fs, "/f", "x", 1);
    fs_free(&fs);
}

static void getattr_short_buffer_copies_prefix(void **state)
{
    struct fs fs;
    uint8_t buf[8];

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "x", 1);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0x20, "0123456789", 10), 0);
    memset(buf, '#', sizeof(buf));
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x20, buf, 4), 10);
    assert_memory_equal(buf, "0123####", 8);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x20, NULL, 0), 10);
    fs_free(&fs);
}

static void attributes_on_missing_path_fail(void **state)
{
    struct fs fs;
    uint8_t buf[8];

    (void)state;
    fs_new(&fs);
    assert_int_equal(lfs_setattr(fs.lfs, "/none", 1, "x", 1), LFS_ERR_NOENT);
    assert_int_equal(lfs_getattr(fs.lfs, "/none", 1, buf, sizeof(buf)),
                     LFS_ERR_NOENT);
    assert_int_equal(lfs_removeattr(fs.lfs, "/none", 1), LFS_ERR_NOENT);
    fs_free(&fs);
}

static void attribute_size_limit(void **state)
{
    struct fs fs;
    uint8_t value[LFS_ATTR_MAX_LIMIT + 1];
    uint8_t buf[LFS_ATTR_MAX_LIMIT + 1];
    uint64_t seed = 3;

    (void)state;
    test_rand_fill(&seed, value, sizeof(value));
    fs_new_with(&fs, 4096, 64, 0, 0);
    write_file(&fs, "/f", "x", 1);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0x30, value,
                                 LFS_ATTR_MAX_LIMIT), 0);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 0x31, value,
                                 LFS_ATTR_MAX_LIMIT + 1), LFS_ERR_NOSPC);
    fs_remount(&fs);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x30, buf, sizeof(buf)),
                     LFS_ATTR_MAX_LIMIT);
    assert_memory_equal(buf, value, LFS_ATTR_MAX_LIMIT);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x31, buf, sizeof(buf)),
                     LFS_ERR_NOATTR);
    fs_free(&fs);
}

static void file_handle_attributes(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t buf[16];

    (void)state;
    fs_new(&fs);
    file = open_ok(&fs, "/f", LFS_O_RDWR | LFS_O_CREAT);
    assert_int_equal(lfs_file_setattr(file, 0x55, "handle", 6), 0);
    assert_int_equal(lfs_file_getattr(file, 0x55, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "handle", 6);
    assert_int_equal(lfs_file_getattr(file, 0x56, buf, sizeof(buf)),
                     LFS_ERR_NOATTR);
    assert_int_equal(lfs_file_close(file), 0);
    fs_remount(&fs);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 0x55, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "handle", 6);
    fs_free(&fs);
}

/* ---- Read-only mounts ---- */

static void read_only_mount_rejects_changes(void **state)
{
    struct fs fs;
    struct lfs_file *file = NULL;
    uint8_t *before;
    uint8_t buf[16];

    (void)state;
    fs_new(&fs);
    write_file(&fs, "/f", "data", 4);
    assert_int_equal(lfs_mkdir(fs.lfs, "/d"), 0);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 1, "a", 1), 0);
    fs_unmount(&fs);
    before = tree_xmalloc(fs.bd->size);
    memcpy(before, bd_mem_data(fs.bd), fs.bd->size);
    fs_mount(&fs, 1);

    assert_int_equal(lfs_file_open(fs.lfs, &file, "/g",
                                   LFS_O_WRONLY | LFS_O_CREAT), LFS_ERR_ROFS);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/f", LFS_O_WRONLY),
                     LFS_ERR_ROFS);
    assert_int_equal(lfs_file_open(fs.lfs, &file, "/f", LFS_O_RDWR),
                     LFS_ERR_ROFS);
    assert_int_equal(lfs_mkdir(fs.lfs, "/e"), LFS_ERR_ROFS);
    assert_int_equal(lfs_remove(fs.lfs, "/f"), LFS_ERR_ROFS);
    assert_int_equal(lfs_remove(fs.lfs, "/d"), LFS_ERR_ROFS);
    assert_int_equal(lfs_rename(fs.lfs, "/f", "/g"), LFS_ERR_ROFS);
    assert_int_equal(lfs_setattr(fs.lfs, "/f", 1, "b", 1), LFS_ERR_ROFS);
    assert_int_equal(lfs_removeattr(fs.lfs, "/f", 1), LFS_ERR_ROFS);

    file = open_ok(&fs, "/f", LFS_O_RDONLY);
    assert_int_equal(lfs_file_setattr(file, 2, "c", 1), LFS_ERR_ROFS);
    assert_int_equal(lfs_file_read(file, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "data", 4);
    assert_int_equal(lfs_file_close(file), 0);
    assert_int_equal(lfs_getattr(fs.lfs, "/f", 1, buf, sizeof(buf)), 1);
    assert_int_equal(lfs_fs_sync(fs.lfs), 0);
    fs_unmount(&fs);

    assert_memory_equal(bd_mem_data(fs.bd), before, fs.bd->size);
    free(before);
    fs_free(&fs);
}

/* ---- Running out of space ---- */

static int fill_until_full(struct fs *fs, uint8_t *data, size_t size,
                           int *failed_at)
{
    for (int i = 0; i < 1000; i++) {
        char path[32];
        int err;

        snprintf(path, sizeof(path), "/fill%03d", i);
        err = test_write_file(fs->lfs, path, data, size);
        if (err != 0) {
            *failed_at = i;
            return err;
        }
    }
    return 0;
}

static void full_image_reports_nospc_and_recovers(void **state)
{
    struct fs fs;
    uint8_t data[1000];
    int full = -1;
    char path[32];

    (void)state;
    memset(data, 'F', sizeof(data));
    fs_new_with(&fs, 512, 64, 0, 0);
    assert_int_equal(fill_until_full(&fs, data, sizeof(data), &full),
                     LFS_ERR_NOSPC);
    assert_true(full > 5);
    assert_true(lfs_fs_size(fs.lfs) <= 64);

    /* Everything written before is intact, now and after a remount. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < full; i++) {
            snprintf(path, sizeof(path), "/fill%03d", i);
            expect_file(&fs, path, data, sizeof(data));
        }
        fs_remount(&fs);
    }
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);

    /* Freeing space makes writing work again. */
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/fill%03d", i);
        assert_int_equal(lfs_remove(fs.lfs, path), 0);
    }
    snprintf(path, sizeof(path), "/fill%03d", full);
    (void)lfs_remove(fs.lfs, path);
    write_file(&fs, "/again", data, sizeof(data));
    fs_remount(&fs);
    expect_file(&fs, "/again", data, sizeof(data));
    for (int i = 3; i < full; i++) {
        snprintf(path, sizeof(path), "/fill%03d", i);
        expect_file(&fs, path, data, sizeof(data));
    }
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);
    fs_free(&fs);
}

static void full_image_keeps_open_file_readable(void **state)
{
    struct fs fs;
    struct lfs_file *file;
    uint8_t data[4096];
    ssize_t wrote = 0;
    size_t total = 0;
    int err;

    (void)state;
    memset(data, 'G', sizeof(data));
    fs_new_with(&fs, 512, 32, 0, 0);
    write_file(&fs, "/keep", "kept", 4);
    file = open_ok(&fs, "/grow", LFS_O_WRONLY | LFS_O_CREAT);
    for (int i = 0; i < 64 && wrote >= 0; i++) {
        wrote = lfs_file_write(file, data, sizeof(data));
        if (wrote > 0)
            total += (size_t)wrote;
    }
    assert_int_equal(wrote, LFS_ERR_NOSPC);
    assert_true(total < 32 * 512);
    (void)lfs_file_close(file);
    fs_remount(&fs);
    expect_file(&fs, "/keep", "kept", 4);
    err = lfs_remove(fs.lfs, "/grow");
    assert_true(err == 0 || err == LFS_ERR_NOENT);
    write_file(&fs, "/after", data, 2000);
    expect_file(&fs, "/after", data, 2000);
    fs_free(&fs);
}

/* With 128-byte blocks, an entry with four small attributes still fits a
 * metadata block, inline data or not: an almost empty image must not
 * report NOSPC when such a file is rewritten short enough to be inline. */
static void small_blocks_fit_entry_with_attributes(void **state)
{
    struct fs fs;
    uint8_t data[300];
    uint8_t buf[8];

    (void)state;
    memset(data, 's', sizeof(data));
    fs_new_with(&fs, 128, 2048, 0, 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/c"), 0);
    write_file(&fs, "/c/dd", data, 295);
    for (uint8_t type = 1; type <= 4; type++)
        assert_int_equal(lfs_setattr(fs.lfs, "/c/dd", type, "123456", 6), 0);
    write_file(&fs, "/c/g", data, 237);
    write_file(&fs, "/c/dd", data, 16);

    fs_remount(&fs);
    expect_file(&fs, "/c/dd", data, 16);
    expect_file(&fs, "/c/g", data, 237);
    for (uint8_t type = 1; type <= 4; type++) {
        assert_int_equal(lfs_getattr(fs.lfs, "/c/dd", type, buf, sizeof(buf)),
                         6);
        assert_memory_equal(buf, "123456", 6);
    }
    fs_free(&fs);
}

/* ---- Device failures ---- */

/* Every call that writes past a failed device write reports LFS_ERR_IO,
 * not some other error (the data did not run out of space). */
static void device_failure_is_io_error(void **state)
{
    struct bd *mem = bd_mem_new(512 * 128);
    struct bd *faulty;
    struct lfs_format_options fmt = { .block_size = 512 };
    struct lfs_mount_options opts = { .no_mtime = 1 };
    struct lfs *lfs = NULL;
    struct lfs_file *file = NULL;
    uint8_t data[600];

    (void)state;
    memset(data, 'd', sizeof(data));
    assert_non_null(mem);
    assert_int_equal(lfs_format(mem, &fmt), 0);
    faulty = bd_faulty_new(mem, 0, 0);
    assert_non_null(faulty);
    assert_int_equal(lfs_mount(&lfs, faulty, &opts), 0);
    assert_int_equal(test_write_file(lfs, "/f", data, sizeof(data)), 0);

    /* The very next prog or erase fails, and every later one. */
    bd_faulty_rearm(faulty, 1, 0);
    assert_int_equal(lfs_file_open(lfs, &file, "/f", LFS_O_RDWR), 0);
    assert_int_equal(lfs_file_pwrite(file, "x", 1, 5000), LFS_ERR_IO);
    assert_int_equal(lfs_file_truncate(file, 9000), LFS_ERR_IO);
    (void)lfs_file_close(file);
    assert_int_equal(lfs_mkdir(lfs, "/d"), LFS_ERR_IO);
    (void)lfs_unmount(lfs);
    bd_close(faulty);

    /* What was synced before is intact. */
    assert_int_equal(lfs_mount(&lfs, mem, &opts), 0);
    assert_int_equal(lfs_check(lfs, NULL, NULL), 0);
    assert_int_equal(lfs_unmount(lfs), 0);
    {
        struct fs fs = { mem, NULL };

        fs_mount(&fs, 1);
        expect_file(&fs, "/f", data, sizeof(data));
        fs_free(&fs);
    }
}

/* ---- Scale ---- */

static void many_files_in_one_directory(void **state)
{
    enum { COUNT = 10000 };
    static uint8_t seen[COUNT];
    struct fs fs;
    struct lfs_dir *dir = NULL;
    struct lfs_info info;
    int got;
    int listed = 0;

    (void)state;
    memset(seen, 0, sizeof(seen));
    fs_new_with(&fs, 4096, 1024, 0, 0);
    assert_int_equal(lfs_mkdir(fs.lfs, "/many"), 0);
    for (int i = 0; i < COUNT; i++) {
        char path[32];
        char body[16];
        int len = snprintf(body, sizeof(body), "%d", i);

        snprintf(path, sizeof(path), "/many/file%05d", i);
        write_file(&fs, path, body, (size_t)len);
    }
    fs_remount(&fs);

    for (int i = 0; i < COUNT; i++) {
        char path[32];

        snprintf(path, sizeof(path), "/many/file%05d", i);
        assert_int_equal(lfs_stat(fs.lfs, path, &info), 0);
        assert_int_equal(info.size, i < 10 ? 1 : i < 100 ? 2 :
                                     i < 1000 ? 3 : 4);
    }
    assert_int_equal(lfs_dir_open(fs.lfs, &dir, "/many"), 0);
    while ((got = lfs_dir_read(dir, &info)) == 1) {
        int n = atoi(info.name + 4);

        assert_int_equal(strncmp(info.name, "file", 4), 0);
        assert_true(n >= 0 && n < COUNT);
        if (seen[n])
            fail_msg("%s listed twice", info.name);
        seen[n] = 1;
        listed++;
    }
    assert_int_equal(got, 0);
    assert_int_equal(lfs_dir_close(dir), 0);
    assert_int_equal(listed, COUNT);
    expect_file(&fs, "/many/file09999", "9999", 4);
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);
    fs_free(&fs);
}

static void large_file_round_trip(uint32_t block_size)
{
    enum { SIZE = 3 * 1024 * 1024 + 12345 };
    struct fs fs;
    struct lfs_file *file;
    uint8_t *data = tree_xmalloc(SIZE);
    uint8_t *back = tree_xmalloc(SIZE);
    uint64_t seed = block_size;
    size_t done = 0;

    test_rand_fill(&seed, data, SIZE);
    fs_new_with(&fs, block_size, (8u << 20) / block_size, 0, 0);

    /* Odd write sizes, so writes straddle block boundaries. */
    file = open_ok(&fs, "/large", LFS_O_WRONLY | LFS_O_CREAT);
    while (done < SIZE) {
        size_t chunk = SIZE - done < 7919 ? SIZE - done : 7919;

        assert_int_equal(lfs_file_write(file, data + done, chunk),
                         (ssize_t)chunk);
        done += chunk;
    }
    assert_int_equal(lfs_file_close(file), 0);
    fs_remount(&fs);

    file = open_ok(&fs, "/large", LFS_O_RDONLY);
    assert_int_equal(lfs_file_size(file), SIZE);
    for (done = 0; done < SIZE;) {
        ssize_t got = lfs_file_read(file, back + done, 65537);

        assert_true(got > 0);
        done += (size_t)got;
    }
    assert_int_equal(done, SIZE);
    assert_memory_equal(back, data, SIZE);
    for (int i = 0; i < 50; i++) {
        uint64_t off = test_rand_below(&seed, SIZE - 1000);

        assert_int_equal(lfs_file_pread(file, back, 1000, off), 1000);
        assert_memory_equal(back, data + off, 1000);
    }
    assert_int_equal(lfs_file_close(file), 0);
    assert_int_equal(lfs_check(fs.lfs, NULL, NULL), 0);

    free(data);
    free(back);
    fs_free(&fs);
}

static void large_file_block_128(void **state)
{
    (void)state;
    large_file_round_trip(128);
}

static void large_file_block_512(void **state)
{
    (void)state;
    large_file_round_trip(512);
}

static void large_file_block_4096(void **state)
{
    (void)state;
    large_file_round_trip(4096);
}

static void large_file_block_65536(void **state)
{
    (void)state;
    large_file_round_trip(65536);
}

/* ---- Times ---- */

static void time_round_trips(void **state)
{
    static const struct timespec times[] = {
        { 0, 0 },
        { 1632601996, 0 },
        { 1632601996, 123456789 },
        { 86399, 999999999 },
        { 86400, 0 },
        { 4102444800, 1 },  /* 2100-01-01 */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        uint8_t raw[LFS_TIME_ATTR_SIZE];
        struct timespec back;

        lfs_time_encode(&times[i], raw);
        assert_int_equal(lfs_time_decode(raw, sizeof(raw), &back), 0);
        assert_int_equal(back.tv_sec, times[i].tv_sec);
        assert_int_equal(back.tv_nsec, times[i].tv_nsec);
    }
}

static void time_encodes_chamelon_layout(void **state)
{
    static const uint8_t fixture[LFS_TIME_ATTR_SIZE] = {
        0xcf, 0x49, 0x00, 0x00, 0x00, 0xc0, 0xcc, 0x4e,
        0xf8, 0xe2, 0x06, 0x01,
    };
    struct timespec ts = { 1632601996, 0 };
    uint8_t raw[LFS_TIME_ATTR_SIZE];

    (void)state;
    lfs_time_encode(&ts, raw);
    assert_memory_equal(raw, fixture, sizeof(raw));
}

static void time_decode_rejects_bad_input(void **state)
{
    uint8_t raw[LFS_TIME_ATTR_SIZE + 1];
    struct timespec ts;
    /* 86400 * 10^12 picoseconds: one past the last of the day. */
    uint64_t ps = 86400000000000000ull;

    (void)state;
    memset(raw, 0, sizeof(raw));
    assert_int_equal(lfs_time_decode(raw, 0, &ts), LFS_ERR_CORRUPT);
    assert_int_equal(lfs_time_decode(raw, 11, &ts), LFS_ERR_CORRUPT);
    assert_int_equal(lfs_time_decode(raw, 13, &ts), LFS_ERR_CORRUPT);

    for (int i = 0; i < 8; i++)
        raw[4 + i] = (uint8_t)(ps >> (8 * i));
    assert_int_equal(lfs_time_decode(raw, 12, &ts), LFS_ERR_CORRUPT);

    ps -= 1;
    for (int i = 0; i < 8; i++)
        raw[4 + i] = (uint8_t)(ps >> (8 * i));
    assert_int_equal(lfs_time_decode(raw, 12, &ts), 0);
    assert_int_equal(ts.tv_sec, 86399);
    assert_int_equal(ts.tv_nsec, 999999999);

    memset(raw + 4, 0xff, 8);
    assert_int_equal(lfs_time_decode(raw, 12, &ts), LFS_ERR_CORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_gives_empty_root),
        cmocka_unit_test(format_records_disk_version_2_1),
        cmocka_unit_test(format_rejects_invalid_options),
        cmocka_unit_test(mount_erased_device_is_not_lfs),
        cmocka_unit_test(strerror_names_every_error),
        cmocka_unit_test(open_missing_without_creat_fails),
        cmocka_unit_test(open_creat_makes_empty_file),
        cmocka_unit_test(open_excl_on_existing_fails),
        cmocka_unit_test(open_trunc_empties_file),
        cmocka_unit_test(open_append_writes_at_end),
        cmocka_unit_test(open_directory_as_file_fails),
        cmocka_unit_test(open_below_file_is_notdir),
        cmocka_unit_test(handle_mode_limits_calls),
        cmocka_unit_test(write_read_seek_round_trip),
        cmocka_unit_test(write_past_end_fills_zeros),
        cmocka_unit_test(write_beyond_file_max_fails),
        cmocka_unit_test(truncate_shrinks_and_grows),
        cmocka_unit_test(truncate_only_then_close),
        cmocka_unit_test(truncate_inline_file_grows_zeros),
        cmocka_unit_test(two_handles_stay_coherent),
        cmocka_unit_test(file_stat_reports_handle_state),
        cmocka_unit_test(discard_drops_unsynced_changes),
        cmocka_unit_test(discard_keeps_changes_of_other_handle),
        cmocka_unit_test(unmount_writes_back_open_handles),
        cmocka_unit_test(open_rejects_invalid_flags),
        cmocka_unit_test(stat_reports_type_and_size),
        cmocka_unit_test(mkdir_reports_errors),
        cmocka_unit_test(remove_reports_errors),
        cmocka_unit_test(remove_frees_file_blocks),
        cmocka_unit_test(rename_moves_across_directories),
        cmocka_unit_test(rename_replaces_existing_file),
        cmocka_unit_test(rename_replaces_empty_directory),
        cmocka_unit_test(rename_reports_errors),
        cmocka_unit_test(rename_to_itself_changes_nothing),
        cmocka_unit_test(rename_keeps_attributes),
        cmocka_unit_test(readdir_lists_names_in_byte_order),
        cmocka_unit_test(readdir_rewind_restarts),
        cmocka_unit_test(readdir_survives_concurrent_removal),
        cmocka_unit_test(readdir_sees_entries_added_later),
        cmocka_unit_test(name_max_limits_names),
        cmocka_unit_test(long_names_up_to_default_max),
        cmocka_unit_test(attributes_set_get_remove),
        cmocka_unit_test(getattr_short_buffer_copies_prefix),
        cmocka_unit_test(attributes_on_missing_path_fail),
        cmocka_unit_test(attribute_size_limit),
        cmocka_unit_test(file_handle_attributes),
        cmocka_unit_test(read_only_mount_rejects_changes),
        cmocka_unit_test(full_image_reports_nospc_and_recovers),
        cmocka_unit_test(full_image_keeps_open_file_readable),
        cmocka_unit_test(small_blocks_fit_entry_with_attributes),
        cmocka_unit_test(device_failure_is_io_error),
        cmocka_unit_test(many_files_in_one_directory),
        cmocka_unit_test(large_file_block_128),
        cmocka_unit_test(large_file_block_512),
        cmocka_unit_test(large_file_block_4096),
        cmocka_unit_test(large_file_block_65536),
        cmocka_unit_test(time_round_trips),
        cmocka_unit_test(time_encodes_chamelon_layout),
        cmocka_unit_test(time_decode_rejects_bad_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
