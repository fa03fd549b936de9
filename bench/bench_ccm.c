/*
 * Throughput of the AES-CCM device, run by bench/bench_ccm.sh.
 *
 * Usage: bench_ccm DIR SIZE_MIB
 *
 * Writes and then reads SIZE_MIB of plaintext sequentially in 4096-byte
 * blocks through several stacks.  The plain file device is the reference.
 * The encrypted device over memory shows the cost of the cryptography
 * alone, and over an image file in DIR the cost with the file.  littlefs
 * (one large file, 64 KiB per call) runs on the plain and the encrypted
 * file.  Each line of output is
 * "NAME MB/S", MB being 10^6 bytes of plaintext, as openssl speed counts.
 *
 * Writes are not followed by fdatasync and reads come from the page
 * cache, so the figures measure the CPU path, not the disk.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block/bd.h"
#include "lfs/lfs.h"

#define BLOCK_SIZE 4096
#define FILE_CHUNK 65536
/* The file takes this share of the filesystem, leaving room for
 * littlefs's metadata and its CTZ skip-list pointers. */
#define FILE_SHARE_PERCENT 75

/* A benchmark key: it protects nothing. */
static const uint8_t bench_key[16] = {
    0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef,
    0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef,
};

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *name, uint64_t bytes, double seconds)
{
    printf("%s %.1f\n", name, (double)bytes / seconds / 1e6);
    fflush(stdout);
}

static void die(const char *step, const char *detail)
{
    fprintf(stderr, "bench_ccm: %s failed: %s\n", step, detail);
    exit(1);
}

/* Create path with size bytes of zeros (a dd-made image) and open it. */
static struct bd *open_new_image(const char *path, uint64_t size,
                                 const uint8_t *key)
{
    char err[BD_ERROR_MAX] = "";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct bd *bd;

    if (fd < 0 || ftruncate(fd, (off_t)size) != 0 || close(fd) != 0)
        die("creating the image", path);
    bd = bd_open_image(path, 1, key, sizeof(bench_key), err, sizeof(err));
    if (bd == NULL)
        die("opening the image", err);
    return bd;
}

/* Write, then read, every block of bd once. */
static void bench_device(const char *name, struct bd *bd, uint8_t *buf)
{
    char label[128];
    double start;

    if (bd_set_block_size(bd, BLOCK_SIZE) != BD_OK)
        die("setting the block size", bd->error);

    start = now_seconds();
    for (uint32_t b = 0; b < bd->block_count; b++) {
        buf[0] = (uint8_t)b;
        if (bd_prog(bd, b, 0, buf, BLOCK_SIZE) != BD_OK)
            die("prog", bd->error);
    }
    snprintf(label, sizeof(label), "%s_write", name);
    report(label, bd->size, now_seconds() - start);

    start = now_seconds();
    for (uint32_t b = 0; b < bd->block_count; b++) {
        if (bd_read(bd, b, 0, buf, BLOCK_SIZE) != BD_OK)
            die("read", bd->error);
    }
    snprintf(label, sizeof(label), "%s_read", name);
    report(label, bd->size, now_seconds() - start);
}

static struct lfs *mount_image(struct bd *bd)
{
    struct lfs_mount_options opts = { .block_size = BLOCK_SIZE };
    struct lfs *lfs = NULL;
    int err = lfs_mount(&lfs, bd, &opts);

    if (err != 0)
        die("mount", lfs_strerror(err));
    return lfs;
}

static void bench_file_write(const char *name, struct bd *bd, uint8_t *buf,
                             uint64_t bytes)
{
    struct lfs_format_options fmt = { .block_size = BLOCK_SIZE };
    struct lfs_file *file = NULL;
    struct lfs *lfs;
    char label[128];
    double start;
    int err = lfs_format(bd, &fmt);

    if (err != 0)
        die("format", lfs_strerror(err));
    lfs = mount_image(bd);

    start = now_seconds();
    err = lfs_file_open(lfs, &file, "/big", LFS_O_WRONLY | LFS_O_CREAT);
    if (err != 0)
        die("open for writing", lfs_strerror(err));
    for (uint64_t done = 0; done < bytes; done += FILE_CHUNK) {
        buf[0] = (uint8_t)(done / FILE_CHUNK);
        if (lfs_file_write(file, buf, FILE_CHUNK) != FILE_CHUNK)
            die("write", lfs_error_detail(lfs));
    }
    err = lfs_file_close(file);
    if (err == 0)
        err = lfs_unmount(lfs);
    if (err != 0)
        die("close", lfs_strerror(err));
    snprintf(label, sizeof(label), "%s_write", name);
    report(label, bytes, now_seconds() - start);
}

static void bench_file_read(const char *name, struct bd *bd, uint8_t *buf,
                            uint64_t bytes)
{
    struct lfs_file *file = NULL;
    struct lfs *lfs = mount_image(bd);
    char label[128];
    double start = now_seconds();
    int err = lfs_file_open(lfs, &file, "/big", LFS_O_RDONLY);

    if (err != 0)
        die("open for reading", lfs_strerror(err));
    for (uint64_t done = 0; done < bytes; done += FILE_CHUNK) {
        if (lfs_file_read(file, buf, FILE_CHUNK) != FILE_CHUNK)
            die("read", lfs_error_detail(lfs));
    }
    err = lfs_file_close(file);
    if (err == 0)
        err = lfs_unmount(lfs);
    if (err != 0)
        die("close", lfs_strerror(err));
    snprintf(label, sizeof(label), "%s_read", name);
    report(label, bytes, now_seconds() - start);
}

static void bench_littlefs(const char *name, struct bd *bd, uint8_t *buf)
{
    uint64_t bytes = bd->size / 100 * FILE_SHARE_PERCENT;

    bytes -= bytes % FILE_CHUNK;
    bench_file_write(name, bd, buf, bytes);
    bench_file_read(name, bd, buf, bytes);
}

int main(int argc, char **argv)
{
    char path[4096];
    uint8_t *buf = malloc(FILE_CHUNK);
    uint64_t size;
    struct bd *bd;
    char err[BD_ERROR_MAX] = "";

    if (argc != 3 || atoi(argv[2]) <= 0) {
        fprintf(stderr, "usage: bench_ccm DIR SIZE_MIB\n");
        return 2;
    }
    if (buf == NULL)
        die("malloc", "out of memory");
    size = (uint64_t)atoi(argv[2]) << 20;
    memset(buf, 0x5a, FILE_CHUNK);

    snprintf(path, sizeof(path), "%s/plain.img", argv[1]);
    bd = open_new_image(path, size, NULL);
    bench_device("device_plain_file", bd, buf);
    bench_littlefs("littlefs_plain_file", bd, buf);
    bd_close(bd);
    unlink(path);

    bd = bd_mem_new(2 * size);
    if (bd == NULL)
        die("bd_mem_new", "out of memory");
    bd = bd_ccm_new(bd, bench_key, sizeof(bench_key), err, sizeof(err));
    if (bd == NULL)
        die("bd_ccm_new", err);
    bench_device("device_ccm_memory", bd, buf);
    bd_close(bd);

    snprintf(path, sizeof(path), "%s/encrypted.img", argv[1]);
    bd = open_new_image(path, 2 * size, bench_key);
    bench_device("device_ccm_file", bd, buf);
    bench_littlefs("littlefs_ccm_file", bd, buf);
    bd_close(bd);
    unlink(path);

    free(buf);
    return 0;
}
