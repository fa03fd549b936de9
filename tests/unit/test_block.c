/*
 * Block devices: range checks, the memory and file devices, and the exact
 * bytes the fault-injecting wrapper leaves behind when power is cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/bd.h"

/* Per-test scratch directory and an image path inside it. */
struct scratch {
    char dir[256];
    char path[300];
};

static int scratch_setup(void **state)
{
    struct scratch *s = calloc(1, sizeof(*s));
    const char *tmp = getenv("TMPDIR");

    if (s == NULL)
        return -1;
    snprintf(s->dir, sizeof(s->dir), "%s/test_block.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(s->dir) == NULL) {
        free(s);
        return -1;
    }
    snprintf(s->path, sizeof(s->path), "%s/disk.img", s->dir);
    *state = s;
    return 0;
}

static int scratch_teardown(void **state)
{
    struct scratch *s = *state;

    unlink(s->path);
    rmdir(s->dir);
    free(s);
    return 0;
}

/* Create path with size bytes, byte i being (i & 0xff). */
static void write_pattern_file(const char *path, size_t size)
{
    uint8_t *data = malloc(size > 0 ? size : 1);
    int fd;

    assert_non_null(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)i;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, size), (ssize_t)size);
    assert_int_equal(close(fd), 0);
    free(data);
}

static void read_file_at(const char *path, uint64_t off, void *buf,
                         size_t len)
{
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void assert_all_bytes(const uint8_t *buf, size_t len, uint8_t value)
{
    for (size_t i = 0; i < len; i++)
        assert_int_equal(buf[i], value);
}

static struct bd *mem_device(uint64_t size, uint32_t block_size)
{
    struct bd *bd = bd_mem_new(size);

    assert_non_null(bd);
    assert_int_equal(bd_set_block_size(bd, block_size), BD_OK);
    return bd;
}

/* ---- geometry and range checks (through the memory device) ---- */

static void set_block_size_computes_block_count(void **state)
{
    struct bd *bd = bd_mem_new(4096);

    (void)state;
    assert_int_equal(bd->block_size, 0);
    assert_int_equal(bd_set_block_size(bd, 512), BD_OK);
    assert_int_equal(bd->block_size, 512);
    assert_int_equal(bd->block_count, 8);
    bd_close(bd);
}

static void set_block_size_rejects_non_multiple(void **state)
{
    struct bd *bd = bd_mem_new(1000);

    (void)state;
    assert_int_equal(bd_set_block_size(bd, 512), BD_ERR_INVAL);
    assert_string_equal(bd->error, "image size 1000 bytes is not a multiple "
                        "of the block size 512");
    assert_int_equal(bd->block_size, 0);
    assert_int_equal(bd->block_count, 0);
    bd_close(bd);
}

static void set_block_size_rejects_zero(void **state)
{
    struct bd *bd = bd_mem_new(4096);

    (void)state;
    assert_int_equal(bd_set_block_size(bd, 0), BD_ERR_INVAL);
    assert_string_equal(bd->error, "block size must not be 0");
    bd_close(bd);
}

static void set_block_size_rejects_empty_device(void **state)
{
    struct bd *bd = bd_mem_new(0);

    (void)state;
    assert_non_null(bd);
    assert_int_equal(bd_set_block_size(bd, 512), BD_ERR_INVAL);
    assert_string_equal(bd->error, "image is empty (0 bytes)");
    bd_close(bd);
}

static void read_before_block_size_fails(void **state)
{
    struct bd *bd = bd_mem_new(4096);
    uint8_t buf[4];

    (void)state;
    assert_int_equal(bd_read(bd, 0, 0, buf, sizeof(buf)), BD_ERR_INVAL);
    assert_string_equal(bd->error, "read of block 0 before the block size "
                        "was set");
    bd_close(bd);
}

static void read_past_last_block_fails(void **state)
{
    struct bd *bd = mem_device(4096, 512);
    uint8_t buf[4];

    (void)state;
    assert_int_equal(bd_read(bd, 8, 0, buf, sizeof(buf)), BD_ERR_RANGE);
    assert_string_equal(bd->error, "read of block 8, but the device has 8 "
                        "blocks");
    assert_int_equal(bd_read(bd, UINT32_MAX, 0, buf, sizeof(buf)),
                     BD_ERR_RANGE);
    bd_close(bd);
}

static void read_crossing_block_end_fails(void **state)
{
    struct bd *bd = mem_device(4096, 512);
    uint8_t buf[8];

    (void)state;
    assert_int_equal(bd_read(bd, 1, 508, buf, 8), BD_ERR_RANGE);
    assert_string_equal(bd->error, "read of 8 bytes at offset 508 crosses "
                        "the end of block 1 (512 bytes)");
    assert_int_equal(bd_read(bd, 1, 513, buf, 0), BD_ERR_RANGE);
    assert_int_equal(bd_read(bd, 1, UINT32_MAX, buf, 8), BD_ERR_RANGE);
    assert_int_equal(bd_read(bd, 1, 504, buf, 8), BD_OK);
    assert_int_equal(bd_read(bd, 1, 512, buf, 0), BD_OK);
    bd_close(bd);
}

static void prog_out_of_range_changes_nothing(void **state)
{
    struct bd *bd = mem_device(1024, 512);
    uint8_t data[16];

    (void)state;
    memset(data, 0x11, sizeof(data));
    assert_int_equal(bd_prog(bd, 2, 0, data, sizeof(data)), BD_ERR_RANGE);
    assert_int_equal(bd_prog(bd, 1, 500, data, sizeof(data)), BD_ERR_RANGE);
    assert_string_equal(bd->error, "prog of 16 bytes at offset 500 crosses "
                        "the end of block 1 (512 bytes)");
    assert_all_bytes(bd_mem_data(bd), 1024, 0xff);
    bd_close(bd);
}

static void erase_past_last_block_fails(void **state)
{
    struct bd *bd = mem_device(1024, 512);

    (void)state;
    assert_int_equal(bd_erase(bd, 2), BD_ERR_RANGE);
    assert_string_equal(bd->error, "erase of block 2, but the device has 2 "
                        "blocks");
    bd_close(bd);
}

static void read_raw_spans_sectors_before_block_size(void **state)
{
    struct bd *bd = bd_mem_new(2048);
    uint8_t *data = bd_mem_data(bd);
    uint8_t buf[1100];

    (void)state;
    for (size_t i = 0; i < 2048; i++)
        data[i] = (uint8_t)(i * 7);
    assert_int_equal(bd_read_raw(bd, 300, buf, sizeof(buf)), BD_OK);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], (uint8_t)((300 + i) * 7));
    bd_close(bd);
}

static void read_raw_spans_blocks_after_block_size(void **state)
{
    struct bd *bd = mem_device(4096, 1024);
    uint8_t *data = bd_mem_data(bd);
    uint8_t buf[2000];

    (void)state;
    for (size_t i = 0; i < 4096; i++)
        data[i] = (uint8_t)(i * 3);
    assert_int_equal(bd_read_raw(bd, 1000, buf, sizeof(buf)), BD_OK);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], (uint8_t)((1000 + i) * 3));
    bd_close(bd);
}

static void read_raw_past_end_fails(void **state)
{
    struct bd *bd = bd_mem_new(1000);
    uint8_t buf[16];

    (void)state;
    assert_int_equal(bd_read_raw(bd, 990, buf, 10), BD_OK);
    assert_int_equal(bd_read_raw(bd, 990, buf, 11), BD_ERR_RANGE);
    assert_string_equal(bd->error, "raw read of 11 bytes at offset 990 past "
                        "the end of the device (1000 bytes)");
    assert_int_equal(bd_read_raw(bd, UINT64_MAX, buf, 1), BD_ERR_RANGE);
    bd_close(bd);
}

static void strerror_names_every_error(void **state)
{
    (void)state;
    assert_string_equal(bd_strerror(BD_OK), "success");
    assert_string_equal(bd_strerror(BD_ERR_IO), "input/output error");
    assert_string_equal(bd_strerror(BD_ERR_RANGE),
                        "request outside the device");
    assert_string_equal(bd_strerror(BD_ERR_AUTH),
                        "data failed authentication");
    assert_string_equal(bd_strerror(BD_ERR_NOMEM), "out of memory");
    assert_string_equal(bd_strerror(BD_ERR_INVAL), "invalid argument");
    assert_string_equal(bd_strerror(BD_ERR_POWERLOSS),
                        "power loss (fault injection)");
    assert_string_equal(bd_strerror(-99), "unknown block device error");
}

static void fail_formats_detail_and_returns_error(void **state)
{
    struct bd *bd = bd_mem_new(512);

    (void)state;
    assert_string_equal(bd->error, "");
    assert_int_equal(bd_fail(bd, BD_ERR_AUTH, "sector %d of %s", 7, "x"),
                     BD_ERR_AUTH);
    assert_string_equal(bd->error, "sector 7 of x");
    bd_close(bd);
}

/* ---- memory device ---- */

static void mem_device_starts_erased(void **state)
{
    struct bd *bd = mem_device(2048, 512);
    uint8_t buf[512];

    (void)state;
    assert_int_equal(bd->size, 2048);
    assert_int_equal(bd->sector_size, 512);
    for (uint32_t block = 0; block < 4; block++) {
        memset(buf, 0, sizeof(buf));
        assert_int_equal(bd_read(bd, block, 0, buf, sizeof(buf)), BD_OK);
        assert_all_bytes(buf, sizeof(buf), 0xff);
    }
    bd_close(bd);
}

static void mem_prog_lands_at_block_offset(void **state)
{
    struct bd *bd = mem_device(2048, 512);
    const uint8_t data[5] = { 1, 2, 3, 4, 5 };
    uint8_t buf[5];
    uint8_t *bytes = bd_mem_data(bd);

    (void)state;
    assert_int_equal(bd_prog(bd, 2, 100, data, sizeof(data)), BD_OK);
    assert_memory_equal(bytes + 2 * 512 + 100, data, sizeof(data));
    assert_int_equal(bytes[2 * 512 + 99], 0xff);
    assert_int_equal(bytes[2 * 512 + 105], 0xff);
    assert_int_equal(bd_read(bd, 2, 100, buf, sizeof(buf)), BD_OK);
    assert_memory_equal(buf, data, sizeof(data));
    bd_close(bd);
}

static void mem_erase_reads_back_ff(void **state)
{
    struct bd *bd = mem_device(1536, 512);
    uint8_t *bytes = bd_mem_data(bd);
    uint8_t buf[512];

    (void)state;
    memset(bytes, 0x5a, 1536);
    assert_int_equal(bd_erase(bd, 1), BD_OK);
    assert_int_equal(bd_read(bd, 1, 0, buf, sizeof(buf)), BD_OK);
    assert_all_bytes(buf, sizeof(buf), 0xff);
    assert_all_bytes(bytes, 512, 0x5a);
    assert_all_bytes(bytes + 1024, 512, 0x5a);
    bd_close(bd);
}

static void mem_data_is_null_for_other_devices(void **state)
{
    struct bd *mem = bd_mem_new(512);
    struct bd *faulty = bd_faulty_new(mem, 0, 0);

    (void)state;
    assert_non_null(bd_mem_data(mem));
    assert_null(bd_mem_data(faulty));
    assert_null(bd_mem_data(NULL));
    bd_close(faulty);
    bd_close(mem);
}

/* ---- file device ---- */

static void file_open_missing_path_names_path(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    char expected[400];

    assert_null(bd_file_open(s->path, 1, err, sizeof(err)));
    snprintf(expected, sizeof(expected), "opening %s failed: %s", s->path,
             strerror(ENOENT));
    assert_string_equal(err, expected);
}

static void file_open_directory_fails(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    char expected[400];

    assert_null(bd_file_open(s->dir, 0, err, sizeof(err)));
    snprintf(expected, sizeof(expected), "%s is neither a regular file nor "
             "a block device", s->dir);
    assert_string_equal(err, expected);
}

static void file_geometry_comes_from_file_size(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    struct bd *bd;

    write_pattern_file(s->path, 8192);
    bd = bd_file_open(s->path, 0, err, sizeof(err));
    assert_non_null(bd);
    assert_string_equal(err, "");
    assert_int_equal(bd->size, 8192);
    assert_int_equal(bd->sector_size, 512);
    assert_int_equal(bd->block_size, 0);
    assert_int_equal(bd_set_block_size(bd, 4096), BD_OK);
    assert_int_equal(bd->block_count, 2);
    bd_close(bd);
}

static void file_size_not_multiple_of_block_size_fails(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    uint8_t buf[8];
    struct bd *bd;

    write_pattern_file(s->path, 1000);
    bd = bd_file_open(s->path, 1, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(bd->size, 1000);
    assert_int_equal(bd_set_block_size(bd, 512), BD_ERR_INVAL);
    assert_string_equal(bd->error, "image size 1000 bytes is not a multiple "
                        "of the block size 512");

    /* The tail sector is partial, but raw reads inside the file work. */
    assert_int_equal(bd_read_raw(bd, 992, buf, 8), BD_OK);
    for (int i = 0; i < 8; i++)
        assert_int_equal(buf[i], (uint8_t)(992 + i));
    bd_close(bd);
}

static void file_read_returns_file_bytes(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    uint8_t buf[300];
    struct bd *bd;

    write_pattern_file(s->path, 4096);
    bd = bd_file_open(s->path, 0, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(bd_set_block_size(bd, 1024), BD_OK);
    assert_int_equal(bd_read(bd, 3, 700, buf, sizeof(buf)), BD_OK);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], (uint8_t)(3 * 1024 + 700 + i));
    bd_close(bd);
}

static void file_prog_writes_at_block_offset(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    const uint8_t data[4] = { 0xde, 0xad, 0xbe, 0xef };
    uint8_t on_disk[6];
    struct bd *bd;

    write_pattern_file(s->path, 2048);
    bd = bd_file_open(s->path, 1, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(bd_set_block_size(bd, 512), BD_OK);
    assert_int_equal(bd_prog(bd, 2, 10, data, sizeof(data)), BD_OK);
    assert_int_equal(bd_sync(bd), BD_OK);
    bd_close(bd);

    read_file_at(s->path, 2 * 512 + 9, on_disk, sizeof(on_disk));
    assert_int_equal(on_disk[0], (uint8_t)(2 * 512 + 9));
    assert_memory_equal(on_disk + 1, data, sizeof(data));
    assert_int_equal(on_disk[5], (uint8_t)(2 * 512 + 14));
}

static void file_erase_writes_ff_over_block(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    uint8_t *on_disk = malloc(3 * 8192);
    struct bd *bd;

    /* 8192-byte blocks take more than one pwrite of 0xff bytes. */
    assert_non_null(on_disk);
    write_pattern_file(s->path, 3 * 8192);
    bd = bd_file_open(s->path, 1, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(bd_set_block_size(bd, 8192), BD_OK);
    assert_int_equal(bd_erase(bd, 1), BD_OK);
    bd_close(bd);

    read_file_at(s->path, 0, on_disk, 3 * 8192);
    for (size_t i = 0; i < 8192; i++)
        assert_int_equal(on_disk[i], (uint8_t)i);
    assert_all_bytes(on_disk + 8192, 8192, 0xff);
    for (size_t i = 2 * 8192; i < 3 * 8192; i++)
        assert_int_equal(on_disk[i], (uint8_t)i);
    free(on_disk);
}

static void file_prog_on_read_only_device_fails(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    char expected[400];
    const uint8_t data[2] = { 1, 2 };
    uint8_t on_disk[2];
    struct bd *bd;

    write_pattern_file(s->path, 1024);
    bd = bd_file_open(s->path, 0, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(bd_set_block_size(bd, 512), BD_OK);
    assert_int_equal(bd_prog(bd, 1, 0, data, sizeof(data)), BD_ERR_IO);
    snprintf(expected, sizeof(expected), "write of 2 bytes at offset 512 of "
             "%s failed: %s", s->path, strerror(EBADF));
    assert_string_equal(bd->error, expected);
    bd_close(bd);

    read_file_at(s->path, 512, on_disk, sizeof(on_disk));
    assert_int_equal(on_disk[0], 0);
    assert_int_equal(on_disk[1], 1);
}

static void file_read_after_truncation_fails(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    char expected[400];
    uint8_t buf[16];
    struct bd *bd;

    write_pattern_file(s->path, 2048);
    bd = bd_file_open(s->path, 1, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(bd_set_block_size(bd, 512), BD_OK);
    assert_int_equal(truncate(s->path, 1024), 0);

    assert_int_equal(bd_read(bd, 3, 0, buf, sizeof(buf)), BD_ERR_IO);
    snprintf(expected, sizeof(expected), "read at offset 1536 of %s failed: "
             "unexpected end of file (was the image truncated?)", s->path);
    assert_string_equal(bd->error, expected);
    bd_close(bd);
}

static void file_from_fd_leaves_unowned_fd_open(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    uint8_t buf[4];
    struct bd *bd;
    int fd;

    write_pattern_file(s->path, 1024);
    fd = open(s->path, O_RDONLY);
    assert_true(fd >= 0);
    bd = bd_file_from_fd(fd, 0, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(bd->size, 1024);
    assert_int_equal(bd_read_raw(bd, 600, buf, sizeof(buf)), BD_OK);
    assert_int_equal(buf[0], (uint8_t)600);
    bd_close(bd);

    assert_int_not_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(close(fd), 0);
}

static void file_from_fd_closes_owned_fd(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    struct bd *bd;
    int fd;

    write_pattern_file(s->path, 1024);
    fd = open(s->path, O_RDONLY);
    assert_true(fd >= 0);
    bd = bd_file_from_fd(fd, 1, err, sizeof(err));
    assert_non_null(bd);
    bd_close(bd);

    errno = 0;
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
}

static void file_from_fd_on_pipe_fails(void **state)
{
    char err[256] = "";
    char expected[256];
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_null(bd_file_from_fd(fds[0], 1, err, sizeof(err)));
    snprintf(expected, sizeof(expected), "file descriptor %d is neither a "
             "regular file nor a block device", fds[0]);
    assert_string_equal(err, expected);

    /* A failed call leaves the descriptor to the caller. */
    assert_int_equal(close(fds[0]), 0);
    assert_int_equal(close(fds[1]), 0);
}

/* ---- fault-injecting wrapper ---- */

static void faulty_mirrors_inner_geometry(void **state)
{
    struct bd *mem = mem_device(4096, 1024);
    struct bd *bd = bd_faulty_new(mem, 0, 0);

    (void)state;
    assert_non_null(bd);
    assert_int_equal(bd->size, 4096);
    assert_int_equal(bd->sector_size, 512);
    assert_int_equal(bd->block_size, 1024);
    assert_int_equal(bd->block_count, 4);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_set_block_size_sets_inner(void **state)
{
    struct bd *mem = bd_mem_new(4096);
    struct bd *bd = bd_faulty_new(mem, 0, 0);

    (void)state;
    assert_int_equal(bd->block_size, 0);
    assert_int_equal(bd_set_block_size(bd, 2048), BD_OK);
    assert_int_equal(bd->block_size, 2048);
    assert_int_equal(bd->block_count, 2);
    assert_int_equal(mem->block_size, 2048);
    assert_int_equal(mem->block_count, 2);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_rejects_inner_block_size_change(void **state)
{
    struct bd *mem = bd_mem_new(4096);
    struct bd *bd = bd_faulty_new(mem, 0, 0);
    uint8_t buf[4];

    (void)state;
    assert_int_equal(bd_set_block_size(bd, 1024), BD_OK);
    assert_int_equal(bd_set_block_size(mem, 512), BD_OK);
    assert_int_equal(bd_read(bd, 0, 0, buf, sizeof(buf)), BD_ERR_INVAL);
    assert_string_equal(bd->error, "inner device block size 512 differs "
                        "from the wrapper's 1024");
    bd_close(bd);
    bd_close(mem);
}

static void faulty_forwards_to_inner_until_cut(void **state)
{
    struct bd *mem = mem_device(2048, 512);
    struct bd *bd = bd_faulty_new(mem, 0, 0);
    uint8_t *bytes = bd_mem_data(mem);
    const uint8_t data[3] = { 7, 8, 9 };
    uint8_t buf[3];

    (void)state;
    memset(bytes, 0x00, 2048);
    assert_int_equal(bd_erase(bd, 1), BD_OK);
    assert_all_bytes(bytes + 512, 512, 0xff);
    assert_int_equal(bd_prog(bd, 1, 4, data, sizeof(data)), BD_OK);
    assert_memory_equal(bytes + 516, data, sizeof(data));
    assert_int_equal(bd_read(bd, 1, 4, buf, sizeof(buf)), BD_OK);
    assert_memory_equal(buf, data, sizeof(data));
    assert_int_equal(bd_sync(bd), BD_OK);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_never_cuts_with_cut_after_zero(void **state)
{
    struct bd *mem = mem_device(2048, 512);
    struct bd *bd = bd_faulty_new(mem, 0, 1);
    const uint8_t byte = 0x42;

    (void)state;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(bd_erase(bd, 0), BD_OK);
        assert_int_equal(bd_prog(bd, 0, 0, &byte, 1), BD_OK);
    }
    assert_int_equal(bd_sync(bd), BD_OK);
    assert_int_equal(bd_faulty_writes(bd), 400);
    assert_int_equal(bd_mem_data(mem)[0], 0x42);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_counts_prog_and_erase_only(void **state)
{
    struct bd *mem = mem_device(2048, 512);
    struct bd *bd = bd_faulty_new(mem, 0, 0);
    uint8_t buf[4] = { 0 };

    (void)state;
    assert_int_equal(bd_faulty_writes(bd), 0);
    assert_int_equal(bd_read(bd, 0, 0, buf, sizeof(buf)), BD_OK);
    assert_int_equal(bd_read_raw(bd, 0, buf, sizeof(buf)), BD_OK);
    assert_int_equal(bd_sync(bd), BD_OK);
    assert_int_equal(bd_faulty_writes(bd), 0);
    assert_int_equal(bd_prog(bd, 0, 0, buf, sizeof(buf)), BD_OK);
    assert_int_equal(bd_erase(bd, 1), BD_OK);
    assert_int_equal(bd_faulty_writes(bd), 2);

    /* Requests the range checks reject never reach the wrapper. */
    assert_int_equal(bd_erase(bd, 4), BD_ERR_RANGE);
    assert_int_equal(bd_faulty_writes(bd), 2);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_cut_prog_changes_nothing(void **state)
{
    struct bd *mem = mem_device(2048, 512);
    struct bd *bd = bd_faulty_new(mem, 3, 0);
    uint8_t *bytes = bd_mem_data(mem);
    const uint8_t first[4] = { 1, 2, 3, 4 };
    const uint8_t second[4] = { 5, 6, 7, 8 };
    uint8_t buf[4];

    (void)state;
    assert_int_equal(bd_erase(bd, 0), BD_OK);
    assert_int_equal(bd_prog(bd, 0, 0, first, sizeof(first)), BD_OK);
    assert_int_equal(bd_prog(bd, 0, 0, second, sizeof(second)),
                     BD_ERR_POWERLOSS);
    assert_string_equal(bd->error, "prog failed: power was cut at write 3");
    assert_memory_equal(bytes, first, sizeof(first));
    assert_all_bytes(bytes + 4, 2044, 0xff);

    /* Reads still pass through and see the last completed write. */
    assert_int_equal(bd_read(bd, 0, 0, buf, sizeof(buf)), BD_OK);
    assert_memory_equal(buf, first, sizeof(first));
    assert_int_equal(bd_faulty_writes(bd), 3);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_stays_off_after_cut(void **state)
{
    struct bd *mem = mem_device(2048, 512);
    struct bd *bd = bd_faulty_new(mem, 1, 1);
    uint8_t *bytes = bd_mem_data(mem);
    const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

    (void)state;
    memset(bytes, 0x33, 2048);
    assert_int_equal(bd_erase(bd, 0), BD_ERR_POWERLOSS);
    assert_string_equal(bd->error, "erase failed: power was cut at write 1");
    assert_int_equal(bd_prog(bd, 1, 0, data, sizeof(data)),
                     BD_ERR_POWERLOSS);
    assert_int_equal(bd_erase(bd, 2), BD_ERR_POWERLOSS);
    assert_int_equal(bd_sync(bd), BD_ERR_POWERLOSS);
    assert_string_equal(bd->error, "sync failed: power was cut at write 1");

    /* Neither the cut erase nor the later calls (even a prog with tear
     * set) changed a byte. */
    assert_all_bytes(bytes, 2048, 0x33);
    assert_int_equal(bd_faulty_writes(bd), 3);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_torn_prog_writes_first_half(void **state)
{
    struct bd *mem = mem_device(2048, 512);
    struct bd *bd = bd_faulty_new(mem, 2, 1);
    uint8_t *bytes = bd_mem_data(mem);
    const uint8_t old[7] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6 };
    const uint8_t new[7] = { 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16 };
    const uint8_t torn[7] = { 0x10, 0x11, 0x12, 0xa3, 0xa4, 0xa5, 0xa6 };

    (void)state;
    assert_int_equal(bd_prog(bd, 1, 20, old, sizeof(old)), BD_OK);
    assert_int_equal(bd_prog(bd, 1, 20, new, sizeof(new)), BD_ERR_POWERLOSS);

    /* 7 bytes torn in half write 3 of them (rounded down). */
    assert_memory_equal(bytes + 512 + 20, torn, sizeof(torn));
    assert_all_bytes(bytes, 512 + 20, 0xff);
    assert_all_bytes(bytes + 512 + 27, 2048 - 512 - 27, 0xff);

    /* Only the cut call tears: the next prog writes nothing. */
    assert_int_equal(bd_prog(bd, 1, 20, new, sizeof(new)), BD_ERR_POWERLOSS);
    assert_memory_equal(bytes + 512 + 20, torn, sizeof(torn));
    bd_close(bd);
    bd_close(mem);
}

static void faulty_torn_one_byte_prog_writes_nothing(void **state)
{
    struct bd *mem = mem_device(1024, 512);
    struct bd *bd = bd_faulty_new(mem, 1, 1);
    const uint8_t byte = 0x00;

    (void)state;
    assert_int_equal(bd_prog(bd, 0, 0, &byte, 1), BD_ERR_POWERLOSS);
    assert_all_bytes(bd_mem_data(mem), 1024, 0xff);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_torn_erase_changes_nothing(void **state)
{
    struct bd *mem = mem_device(1024, 512);
    struct bd *bd = bd_faulty_new(mem, 1, 1);

    (void)state;
    memset(bd_mem_data(mem), 0x44, 1024);
    assert_int_equal(bd_erase(bd, 1), BD_ERR_POWERLOSS);
    assert_all_bytes(bd_mem_data(mem), 1024, 0x44);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_rearm_restores_power(void **state)
{
    struct bd *mem = mem_device(1024, 512);
    struct bd *bd = bd_faulty_new(mem, 1, 0);
    const uint8_t data[2] = { 9, 9 };

    (void)state;
    assert_int_equal(bd_prog(bd, 0, 0, data, sizeof(data)), BD_ERR_POWERLOSS);
    assert_int_equal(bd_faulty_writes(bd), 1);

    bd_faulty_rearm(bd, 2, 1);
    assert_int_equal(bd_faulty_writes(bd), 0);
    assert_int_equal(bd_sync(bd), BD_OK);
    assert_int_equal(bd_prog(bd, 0, 0, data, sizeof(data)), BD_OK);
    assert_int_equal(bd_prog(bd, 0, 4, data, sizeof(data)), BD_ERR_POWERLOSS);
    assert_string_equal(bd->error, "prog failed: power was cut at write 2");

    /* The torn prog of 2 bytes wrote 1. */
    assert_int_equal(bd_mem_data(mem)[0], 9);
    assert_int_equal(bd_mem_data(mem)[1], 9);
    assert_int_equal(bd_mem_data(mem)[4], 9);
    assert_int_equal(bd_mem_data(mem)[5], 0xff);

    bd_faulty_rearm(bd, 0, 0);
    assert_int_equal(bd_prog(bd, 0, 5, data, 1), BD_OK);
    assert_int_equal(bd_mem_data(mem)[5], 9);
    bd_close(bd);
    bd_close(mem);
}

static void faulty_functions_ignore_other_devices(void **state)
{
    struct bd *mem = mem_device(1024, 512);
    const uint8_t byte = 1;

    (void)state;
    assert_int_equal(bd_prog(mem, 0, 0, &byte, 1), BD_OK);
    assert_int_equal(bd_faulty_writes(mem), 0);
    bd_faulty_rearm(mem, 1, 1);
    assert_int_equal(bd_prog(mem, 0, 1, &byte, 1), BD_OK);
    assert_int_equal(bd_faulty_writes(NULL), 0);
    assert_null(bd_faulty_new(NULL, 0, 0));
    bd_close(mem);
}

static void faulty_over_file_reports_inner_errors(void **state)
{
    struct scratch *s = *state;
    char err[256] = "";
    char expected[400];
    const uint8_t data[4] = { 1, 2, 3, 4 };
    struct bd *file;
    struct bd *bd;

    write_pattern_file(s->path, 2048);
    file = bd_file_open(s->path, 0, err, sizeof(err));
    assert_non_null(file);
    bd = bd_faulty_new(file, 0, 0);
    assert_int_equal(bd_set_block_size(bd, 1024), BD_OK);
    assert_int_equal(file->block_size, 1024);

    assert_int_equal(bd_prog(bd, 1, 8, data, sizeof(data)), BD_ERR_IO);
    snprintf(expected, sizeof(expected), "write of 4 bytes at offset 1032 "
             "of %s failed: %s", s->path, strerror(EBADF));
    assert_string_equal(bd->error, expected);
    bd_close(bd);
    bd_close(file);
}

static void faulty_set_block_size_failure_sets_neither(void **state)
{
    struct bd *mem = bd_mem_new(1000);
    struct bd *bd = bd_faulty_new(mem, 0, 0);

    (void)state;
    assert_int_equal(bd_set_block_size(bd, 512), BD_ERR_INVAL);
    assert_string_equal(bd->error, "image size 1000 bytes is not a multiple "
                        "of the block size 512");
    assert_int_equal(bd->block_size, 0);
    assert_int_equal(mem->block_size, 0);
    bd_close(bd);
    bd_close(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_block_size_computes_block_count),
        cmocka_unit_test(set_block_size_rejects_non_multiple),
        cmocka_unit_test(set_block_size_rejects_zero),
        cmocka_unit_test(set_block_size_rejects_empty_device),
        cmocka_unit_test(read_before_block_size_fails),
        cmocka_unit_test(read_past_last_block_fails),
        cmocka_unit_test(read_crossing_block_end_fails),
        cmocka_unit_test(prog_out_of_range_changes_nothing),
        cmocka_unit_test(erase_past_last_block_fails),
        cmocka_unit_test(read_raw_spans_sectors_before_block_size),
        cmocka_unit_test(read_raw_spans_blocks_after_block_size),
        cmocka_unit_test(read_raw_past_end_fails),
        cmocka_unit_test(strerror_names_every_error),
        cmocka_unit_test(fail_formats_detail_and_returns_error),
        cmocka_unit_test(mem_device_starts_erased),
        cmocka_unit_test(mem_prog_lands_at_block_offset),
        cmocka_unit_test(mem_erase_reads_back_ff),
        cmocka_unit_test(mem_data_is_null_for_other_devices),
        cmocka_unit_test_setup_teardown(file_open_missing_path_names_path,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_open_directory_fails,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_geometry_comes_from_file_size,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(
            file_size_not_multiple_of_block_size_fails, scratch_setup,
            scratch_teardown),
        cmocka_unit_test_setup_teardown(file_read_returns_file_bytes,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_prog_writes_at_block_offset,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_erase_writes_ff_over_block,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_prog_on_read_only_device_fails,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_read_after_truncation_fails,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_from_fd_leaves_unowned_fd_open,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(file_from_fd_closes_owned_fd,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test(file_from_fd_on_pipe_fails),
        cmocka_unit_test(faulty_mirrors_inner_geometry),
        cmocka_unit_test(faulty_set_block_size_sets_inner),
        cmocka_unit_test(faulty_rejects_inner_block_size_change),
        cmocka_unit_test(faulty_forwards_to_inner_until_cut),
        cmocka_unit_test(faulty_never_cuts_with_cut_after_zero),
        cmocka_unit_test(faulty_counts_prog_and_erase_only),
        cmocka_unit_test(faulty_cut_prog_changes_nothing),
        cmocka_unit_test(faulty_stays_off_after_cut),
        cmocka_unit_test(faulty_torn_prog_writes_first_half),
        cmocka_unit_test(faulty_torn_one_byte_prog_writes_nothing),
        cmocka_unit_test(faulty_torn_erase_changes_nothing),
        cmocka_unit_test(faulty_rearm_restores_power),
        cmocka_unit_test(faulty_functions_ignore_other_devices),
        cmocka_unit_test_setup_teardown(faulty_over_file_reports_inner_errors,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test(faulty_set_block_size_failure_sets_neither),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
