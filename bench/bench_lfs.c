/*
 * Storage engine benchmark: sequential throughput and per-operation cost
 * of the littlefs engine on a file-backed image.
 *
 * usage: bench_lfs IMAGE
 * IMAGE is created (256 MiB) and formatted with 4096-byte blocks.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lfs/lfs.h"

#define IMAGE_SIZE (256ull << 20)
#define FILE_SIZE (128u << 20)
#define CHUNK (32u << 10)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_lfs: %s failed: %s\n", what, lfs_strerror(err));
    exit(1);
}

static struct lfs *fresh_mount(const char *path, struct bd **bd)
{
    char msg[256];
    struct lfs_format_options fo = {.block_size = 4096};
    struct lfs *lfs;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

    if (fd < 0 || ftruncate(fd, (off_t)IMAGE_SIZE) != 0) {
        perror(path);
        exit(1);
    }
    close(fd);
    *bd = bd_file_open(path, 1, msg, sizeof(msg));
    if (!*bd) {
        fprintf(stderr, "bench_lfs: %s\n", msg);
        exit(1);
    }
    int err = lfs_format(*bd, &fo);
    if (err)
        die("format", err);
    err = lfs_mount(&lfs, *bd, NULL);
    if (err)
        die("mount", err);
    return lfs;
}

static void sequential(const char *path)
{
    struct bd *bd;
    struct lfs *lfs = fresh_mount(path, &bd);
    struct lfs_file *f;
    uint8_t *buf = malloc(CHUNK);

    for (size_t i = 0; i < CHUNK; i++)
        buf[i] = (uint8_t)(i * 7);
    int err = lfs_file_open(lfs, &f, "/big", LFS_O_WRONLY | LFS_O_CREAT);
    if (err)
        die("open", err);
    double t0 = now();
    for (uint32_t off = 0; off < FILE_SIZE; off += CHUNK) {
        if (lfs_file_write(f, buf, CHUNK) != CHUNK)
            die("write", LFS_ERR_IO);
    }
    double tw = now();
    err = lfs_file_close(f);
    if (err)
        die("close", err);
    double t1 = now();
    printf("sequential write 128 MiB: %8.1f MB/s into the page cache, "
           "%8.1f MB/s with the closing commit and its fdatasync "
           "(%.2f s)\n", FILE_SIZE / 1e6 / (tw - t0),
           FILE_SIZE / 1e6 / (t1 - t0), t1 - tw);

    err = lfs_file_open(lfs, &f, "/big", LFS_O_RDONLY);
    if (err)
        die("open", err);
    t0 = now();
    ssize_t r;
    uint64_t total = 0;
    while ((r = lfs_file_read(f, buf, CHUNK)) > 0)
        total += (uint64_t)r;
    t1 = now();
    lfs_file_close(f);
    printf("sequential read  128 MiB: %8.1f MB/s\n", total / 1e6 / (t1 - t0));
    lfs_unmount(lfs);
    bd_close(bd);
    free(buf);
}

/* Create, stat and remove n small files, in one directory (fanout 0) or
 * spread over directories of fanout entries each. */
static void small_files(const char *path, int n, int fanout)
{
    struct bd *bd;
    struct lfs *lfs = fresh_mount(path, &bd);
    char name[64];
    struct lfs_info info;
    int err;

    if (!fanout) {
        err = lfs_mkdir(lfs, "/d");
        if (err)
            die("mkdir", err);
    }
    double t0 = now();
    for (int i = 0; i < n; i++) {
        struct lfs_file *f;
        if (fanout && i % fanout == 0) {
            snprintf(name, sizeof(name), "/d%03d", i / fanout);
            err = lfs_mkdir(lfs, name);
            if (err)
                die("mkdir", err);
        }
        if (fanout)
            snprintf(name, sizeof(name), "/d%03d/f%05d", i / fanout, i);
        else
            snprintf(name, sizeof(name), "/d/f%05d", i);
        err = lfs_file_open(lfs, &f, name, LFS_O_WRONLY | LFS_O_CREAT);
        if (err)
            die("create", err);
        if (lfs_file_write(f, "small file\n", 11) != 11)
            die("write", LFS_ERR_IO);
        err = lfs_file_close(f);
        if (err)
            die("close", err);
    }
    double t1 = now();
    double create = n / (t1 - t0);

    for (int i = 0; i < n; i++) {
        if (fanout)
            snprintf(name, sizeof(name), "/d%03d/f%05d", i / fanout, i);
        else
            snprintf(name, sizeof(name), "/d/f%05d", i);
        err = lfs_stat(lfs, name, &info);
        if (err)
            die("stat", err);
    }
    double t2 = now();
    for (int i = 0; i < n; i++) {
        if (fanout)
            snprintf(name, sizeof(name), "/d%03d/f%05d", i / fanout, i);
        else
            snprintf(name, sizeof(name), "/d/f%05d", i);
        err = lfs_remove(lfs, name);
        if (err)
            die("remove", err);
    }
    double t3 = now();
    printf("%6d files %-18s create %8.0f/s  stat %9.0f/s  remove %8.0f/s\n",
           n, fanout ? "in a 100x100 tree:" : "in one directory:", create,
           n / (t2 - t1), n / (t3 - t2));
    lfs_unmount(lfs);
    bd_close(bd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_lfs IMAGE\n");
        return 2;
    }
    sequential(argv[1]);
    small_files(argv[1], 1000, 0);
    small_files(argv[1], 10000, 0);
    small_files(argv[1], 10000, 100);
    return 0;
}
