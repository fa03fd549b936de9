/*
 * SFTP file requests over an in-memory image: OPEN, READ, WRITE, CLOSE,
 * STAT, LSTAT, FSTAT, SETSTAT and FSETSTAT, with the exact status codes
 * OpenSSH's sftp-server gives in the same cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sftp_test_client.h"

#define RW_CREAT (SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT)

struct handle {
    uint8_t bytes[64];
    uint32_t len;
};

static struct handle take_handle(struct st *t)
{
    struct handle h;

    memcpy(h.bytes, t->handle, t->handle_len);
    h.len = t->handle_len;
    return h;
}

static struct handle open_ok(struct st *t, const char *path, uint32_t pflags)
{
    assert_int_equal(st_open(t, path, pflags, -1), SSH_FX_OK);
    return take_handle(t);
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((i * 31 + seed) ^ (i >> 8));
}

/// OPEN ///

static void open_missing_without_creat_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    assert_int_equal(st_open(t, "/missing", SSH_FXF_READ, -1),
                     SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_open(t, "/missing", SSH_FXF_WRITE, -1),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void open_creat_in_missing_directory_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    assert_int_equal(st_open(t, "/nodir/f", RW_CREAT, -1),
                     SSH_FX_NO_SUCH_FILE);
    st_put_file(t, "/file", "x", 1);
    assert_int_equal(st_open(t, "/file/f", RW_CREAT, -1),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void open_creat_excl_on_existing_fails_untouched(void **state)
{
    struct st *t = st_new(NULL);
    size_t len;
    uint8_t *data;

    (void)state;
    st_put_file(t, "/f", "keep me", 7);
    assert_int_equal(st_open(t, "/f", SSH_FXF_WRITE | SSH_FXF_CREAT |
                             SSH_FXF_EXCL | SSH_FXF_TRUNC, -1),
                     SSH_FX_FAILURE);
    assert_string_equal(t->message, "File exists");
    data = st_get_file(t, "/f", &len);
    assert_int_equal(len, 7);
    assert_memory_equal(data, "keep me", 7);
    free(data);
    st_free(t);
}

static void open_creat_excl_on_new_name_creates(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    open_ok(t, "/new", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_EXCL);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/new", &attr), SSH_FX_OK);
    assert_int_equal(attr.size, 0);
    st_free(t);
}

static void open_creat_takes_permissions_from_request(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    assert_int_equal(st_open(t, "/secret", RW_CREAT, 0600), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/secret", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100600);
    st_free(t);
}

static void open_creat_applies_umask(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    assert_int_equal(st_open(t, "/a", RW_CREAT, 0666), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/a", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100644);

    /* No permissions in the request: 0666 before the umask. */
    assert_int_equal(st_open(t, "/b", RW_CREAT, -1), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/b", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100644);
    st_free(t);
}

static void open_creat_on_existing_keeps_permissions(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    assert_int_equal(st_open(t, "/f", RW_CREAT, 0600), SSH_FX_OK);
    assert_int_equal(st_open(t, "/f", RW_CREAT, 0666), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100600);
    st_free(t);
}

static void open_trunc_empties_file(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    st_put_file(t, "/f", "0123456789", 10);
    open_ok(t, "/f", SSH_FXF_WRITE | SSH_FXF_TRUNC);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.size, 0);
    st_free(t);
}

static void open_directory_is_failure(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    assert_int_equal(st_open(t, "/d", SSH_FXF_WRITE, -1), SSH_FX_FAILURE);
    assert_string_equal(t->message, "Is a directory");
    assert_int_equal(st_open(t, "/", SSH_FXF_READ, -1), SSH_FX_FAILURE);
    st_free(t);
}

static void open_name_too_long_is_bad_message(void **state)
{
    struct st *t = st_new(NULL);
    char name[302];

    (void)state;
    name[0] = '/';
    memset(name + 1, 'x', 300);
    name[301] = '\0';
    assert_int_equal(st_open(t, name, RW_CREAT, -1), SSH_FX_BAD_MESSAGE);
    assert_string_equal(t->message, "File name too long");
    st_free(t);
}

static void open_without_access_flags_reads(void **state)
{
    struct st *t = st_new(NULL);
    const uint8_t *data;
    uint32_t n;

    (void)state;
    st_put_file(t, "/f", "abc", 3);
    struct handle h = open_ok(t, "/f", 0);

    assert_int_equal(st_read(t, h.bytes, h.len, 0, 10, &data, &n),
                     SSH_FX_OK);
    assert_int_equal(n, 3);
    assert_int_equal(st_write(t, h.bytes, h.len, 0, "z", 1),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void open_creat_without_write_creates_readable_file(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;
    const uint8_t *data;
    uint32_t n;

    (void)state;
    struct handle h = open_ok(t, "/f", SSH_FXF_READ | SSH_FXF_CREAT);

    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(st_read(t, h.bytes, h.len, 0, 10, &data, &n),
                     SSH_FX_EOF);
    assert_int_equal(st_write(t, h.bytes, h.len, 0, "z", 1),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

/// READ ///

static void read_at_end_of_file_is_eof(void **state)
{
    struct st *t = st_new(NULL);
    const uint8_t *data;
    uint32_t n;

    (void)state;
    st_put_file(t, "/f", "hello", 5);
    struct handle h = open_ok(t, "/f", SSH_FXF_READ);

    assert_int_equal(st_read(t, h.bytes, h.len, 5, 10, &data, &n),
                     SSH_FX_EOF);
    assert_string_equal(t->message, "End of file");
    assert_int_equal(st_read(t, h.bytes, h.len, 1000, 10, &data, &n),
                     SSH_FX_EOF);
    st_free(t);
}

static void read_returns_full_length_unless_file_ends(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t content[200000];
    const uint8_t *data;
    uint32_t n;

    (void)state;
    fill_pattern(content, sizeof(content), 1);
    st_put_file(t, "/big", content, sizeof(content));
    struct handle h = open_ok(t, "/big", SSH_FXF_READ);

    assert_int_equal(st_read(t, h.bytes, h.len, 1000, 65536, &data, &n),
                     SSH_FX_OK);
    assert_int_equal(n, 65536);
    assert_memory_equal(data, content + 1000, 65536);

    /* At the end: the bytes that are left, then EOF. */
    assert_int_equal(st_read(t, h.bytes, h.len, 190000, 65536, &data, &n),
                     SSH_FX_OK);
    assert_int_equal(n, 10000);
    assert_memory_equal(data, content + 190000, 10000);
    assert_int_equal(st_read(t, h.bytes, h.len, 200000, 65536, &data, &n),
                     SSH_FX_EOF);
    st_free(t);
}

static void read_is_capped_at_max_read_length(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t content[300000];
    const uint8_t *data;
    uint32_t n;

    (void)state;
    fill_pattern(content, sizeof(content), 2);
    st_put_file(t, "/big", content, sizeof(content));
    struct handle h = open_ok(t, "/big", SSH_FXF_READ);

    assert_int_equal(st_read(t, h.bytes, h.len, 0, 1024 * 1024, &data, &n),
                     SSH_FX_OK);
    assert_int_equal(n, SFTP_MAX_READ);
    assert_memory_equal(data, content, SFTP_MAX_READ);
    st_free(t);
}

static void read_of_zero_bytes_returns_empty_data(void **state)
{
    struct st *t = st_new(NULL);
    const uint8_t *data;
    uint32_t n = 99;

    (void)state;
    st_put_file(t, "/f", "abc", 3);
    struct handle h = open_ok(t, "/f", SSH_FXF_READ);

    assert_int_equal(st_read(t, h.bytes, h.len, 0, 0, &data, &n), SSH_FX_OK);
    assert_int_equal(n, 0);
    st_free(t);
}

static void read_on_write_only_handle_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);
    const uint8_t *data;
    uint32_t n;

    (void)state;
    st_put_file(t, "/f", "abc", 3);
    struct handle h = open_ok(t, "/f", SSH_FXF_WRITE);

    assert_int_equal(st_read(t, h.bytes, h.len, 0, 3, &data, &n),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

/* A device that fails every read once armed, to check that a failed read
 * is FAILURE and never EOF. */
struct failing_bd {
    struct bd bd;
    struct bd *inner;
    int fail_reads;
};

static int failing_read(struct bd *bd, uint32_t block, uint32_t off,
                        void *buf, size_t len)
{
    struct failing_bd *f = (struct failing_bd *)bd;

    if (f->fail_reads)
        return bd_fail(bd, BD_ERR_IO, "injected read failure");
    return bd_read(f->inner, block, off, buf, len);
}

static int failing_prog(struct bd *bd, uint32_t block, uint32_t off,
                        const void *buf, size_t len)
{
    return bd_prog(((struct failing_bd *)bd)->inner, block, off, buf, len);
}

static int failing_erase(struct bd *bd, uint32_t block)
{
    return bd_erase(((struct failing_bd *)bd)->inner, block);
}

static int failing_sync(struct bd *bd)
{
    return bd_sync(((struct failing_bd *)bd)->inner);
}

static void failing_close(struct bd *bd)
{
    bd_close(((struct failing_bd *)bd)->inner);
    free(bd);
}

static int failing_set_block_size(struct bd *bd, uint32_t block_size)
{
    return bd_set_block_size(((struct failing_bd *)bd)->inner, block_size);
}

static const struct bd_ops failing_ops = {
    .read = failing_read,
    .prog = failing_prog,
    .erase = failing_erase,
    .sync = failing_sync,
    .close = failing_close,
    .set_block_size = failing_set_block_size,
};

static struct failing_bd *failing_bd_new(void)
{
    struct failing_bd *f = calloc(1, sizeof(*f));
    struct lfs_format_options fmt = { .block_size = ST_BLOCK_SIZE };

    assert_non_null(f);
    f->inner = bd_mem_new((uint64_t)ST_BLOCK_SIZE * ST_BLOCK_COUNT);
    assert_non_null(f->inner);
    assert_int_equal(lfs_format(f->inner, &fmt), 0);
    f->bd.ops = &failing_ops;
    f->bd.size = f->inner->size;
    f->bd.sector_size = f->inner->sector_size;
    return f;
}

static void read_io_error_is_failure_not_eof(void **state)
{
    struct failing_bd *f = failing_bd_new();
    struct st *t = st_new_on(&f->bd, NULL);
    static uint8_t content[20000];
    const uint8_t *data;
    uint32_t n;

    (void)state;
    fill_pattern(content, sizeof(content), 3);
    st_put_file(t, "/f", content, sizeof(content));
    struct handle h = open_ok(t, "/f", SSH_FXF_READ);

    f->fail_reads = 1;
    assert_int_equal(st_read(t, h.bytes, h.len, 8192, 4096, &data, &n),
                     SSH_FX_FAILURE);
    assert_string_equal(t->message, "Input/output error on the image");
    f->fail_reads = 0;
    assert_int_equal(st_read(t, h.bytes, h.len, 8192, 4096, &data, &n),
                     SSH_FX_OK);
    assert_int_equal(n, 4096);
    st_free(t);
}

/// WRITE ///

static void write_on_read_only_handle_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_put_file(t, "/f", "abc", 3);
    struct handle h = open_ok(t, "/f", SSH_FXF_READ);

    assert_int_equal(st_write(t, h.bytes, h.len, 0, "xyz", 3),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void write_with_append_ignores_offset(void **state)
{
    struct st *t = st_new(NULL);
    size_t len;
    uint8_t *data;

    (void)state;
    st_put_file(t, "/log", "one\n", 4);
    struct handle h = open_ok(t, "/log", SSH_FXF_WRITE | SSH_FXF_APPEND);

    assert_int_equal(st_write(t, h.bytes, h.len, 0, "two\n", 4), SSH_FX_OK);
    assert_int_equal(st_write(t, h.bytes, h.len, 1, "three\n", 6),
                     SSH_FX_OK);
    assert_int_equal(st_close(t, h.bytes, h.len), SSH_FX_OK);
    data = st_get_file(t, "/log", &len);
    assert_int_equal(len, 14);
    assert_memory_equal(data, "one\ntwo\nthree\n", 14);
    free(data);
    st_free(t);
}

static void write_past_end_fills_gap_with_zeros(void **state)
{
    struct st *t = st_new(NULL);
    size_t len;
    uint8_t *data;

    (void)state;
    struct handle h = open_ok(t, "/f", RW_CREAT);

    assert_int_equal(st_write(t, h.bytes, h.len, 5, "end", 3), SSH_FX_OK);
    assert_int_equal(st_close(t, h.bytes, h.len), SSH_FX_OK);
    data = st_get_file(t, "/f", &len);
    assert_int_equal(len, 8);
    assert_memory_equal(data, "\0\0\0\0\0end", 8);
    free(data);
    st_free(t);
}

static void write_overwrites_in_place(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t content[10000];
    size_t len;
    uint8_t *data;

    (void)state;
    fill_pattern(content, sizeof(content), 4);
    st_put_file(t, "/f", content, sizeof(content));
    struct handle h = open_ok(t, "/f", SSH_FXF_WRITE);

    assert_int_equal(st_write(t, h.bytes, h.len, 4000, "XYZ", 3), SSH_FX_OK);
    assert_int_equal(st_close(t, h.bytes, h.len), SSH_FX_OK);
    memcpy(content + 4000, "XYZ", 3);
    data = st_get_file(t, "/f", &len);
    assert_int_equal(len, sizeof(content));
    assert_memory_equal(data, content, sizeof(content));
    free(data);
    st_free(t);
}

static void write_beyond_free_space_is_failure(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t chunk[65536];
    uint32_t status = SSH_FX_OK;
    uint64_t off = 0;

    (void)state;
    struct handle h = open_ok(t, "/fill", RW_CREAT);

    /* The image is 2 MiB: 64 chunks of 64 KiB cannot all fit. */
    for (int i = 0; i < 64 && status == SSH_FX_OK; i++) {
        status = st_write(t, h.bytes, h.len, off, chunk, sizeof(chunk));
        off += sizeof(chunk);
    }
    assert_int_equal(status, SSH_FX_FAILURE);
    assert_string_equal(t->message, "No space left on the image");
    st_free(t);
}

/// CLOSE and handles ///

static void close_twice_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    struct handle h = open_ok(t, "/f", RW_CREAT);

    assert_int_equal(st_close(t, h.bytes, h.len), SSH_FX_OK);
    assert_int_equal(st_close(t, h.bytes, h.len), SSH_FX_NO_SUCH_FILE);
    assert_string_equal(t->message, "Invalid handle");
    st_free(t);
}

static void closed_handle_is_rejected_by_every_request(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr = { .fields = VFS_ATTR_MODE, .mode = 0600 };
    const uint8_t *data;
    uint32_t n;

    (void)state;
    struct handle h = open_ok(t, "/f", RW_CREAT);

    assert_int_equal(st_close(t, h.bytes, h.len), SSH_FX_OK);
    assert_int_equal(st_read(t, h.bytes, h.len, 0, 10, &data, &n),
                     SSH_FX_FAILURE);
    assert_int_equal(st_write(t, h.bytes, h.len, 0, "x", 1),
                     SSH_FX_FAILURE);
    assert_int_equal(st_fstat(t, h.bytes, h.len, &attr), SSH_FX_FAILURE);

    st_begin(t, SSH_FXP_FSETSTAT);
    assert_int_equal(wb_string(&t->req, h.bytes, h.len), 0);
    st_put_attrs(&t->req, &attr);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_FAILURE);

    st_begin(t, SSH_FXP_READDIR);
    assert_int_equal(wb_string(&t->req, h.bytes, h.len), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_FAILURE);
    st_free(t);
}

static void forged_handles_are_rejected(void **state)
{
    struct st *t = st_new(NULL);
    const uint8_t *data;
    uint32_t n;

    (void)state;
    st_put_file(t, "/f", "abc", 3);
    struct handle h = open_ok(t, "/f", SSH_FXF_READ);
    struct handle forged = h;

    assert_int_equal(h.len, 8);

    /* Another generation of the same slot. */
    forged.bytes[7] ^= 0x55;
    assert_int_equal(st_read(t, forged.bytes, forged.len, 0, 3, &data, &n),
                     SSH_FX_FAILURE);

    /* A slot past the table. */
    forged = h;
    forged.bytes[0] = 0x7f;
    assert_int_equal(st_read(t, forged.bytes, forged.len, 0, 3, &data, &n),
                     SSH_FX_FAILURE);

    /* The wrong length, longer and shorter. */
    assert_int_equal(st_read(t, h.bytes, 9, 0, 3, &data, &n),
                     SSH_FX_FAILURE);
    assert_int_equal(st_read(t, h.bytes, 4, 0, 3, &data, &n),
                     SSH_FX_FAILURE);
    assert_int_equal(st_close(t, h.bytes, 0), SSH_FX_NO_SUCH_FILE);

    /* The real one still works. */
    assert_int_equal(st_read(t, h.bytes, h.len, 0, 3, &data, &n), SSH_FX_OK);
    st_free(t);
}

static void old_handle_does_not_reach_file_opened_later(void **state)
{
    struct st *t = st_new(NULL);
    const uint8_t *data;
    uint32_t n;

    (void)state;
    st_put_file(t, "/a", "aaa", 3);
    st_put_file(t, "/b", "bbb", 3);
    struct handle old = open_ok(t, "/a", SSH_FXF_READ);

    assert_int_equal(st_close(t, old.bytes, old.len), SSH_FX_OK);
    struct handle now = open_ok(t, "/b", SSH_FXF_READ);

    /* The same slot, a new generation. */
    assert_memory_equal(now.bytes, old.bytes, 4);
    assert_memory_not_equal(now.bytes + 4, old.bytes + 4, 4);
    assert_int_equal(st_read(t, old.bytes, old.len, 0, 3, &data, &n),
                     SSH_FX_FAILURE);
    assert_int_equal(st_close(t, old.bytes, old.len), SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_read(t, now.bytes, now.len, 0, 3, &data, &n),
                     SSH_FX_OK);
    assert_memory_equal(data, "bbb", 3);
    st_free(t);
}

static void handle_table_is_bounded(void **state)
{
    struct sftp_options opts = st_default_options();
    struct st *t;

    (void)state;
    opts.max_handles = 3;
    t = st_new(&opts);
    st_put_file(t, "/f", "x", 1);
    struct handle first = open_ok(t, "/f", SSH_FXF_READ);

    open_ok(t, "/f", SSH_FXF_READ);
    st_path_request(t, SSH_FXP_OPENDIR, "/");
    assert_int_equal(t->type, SSH_FXP_HANDLE);
    assert_int_equal(st_open(t, "/f", SSH_FXF_READ, -1), SSH_FX_FAILURE);
    assert_string_equal(t->message, "Too many open handles");
    assert_int_equal(st_path_status(t, SSH_FXP_OPENDIR, "/"),
                     SSH_FX_FAILURE);

    /* Closing one makes room again. */
    assert_int_equal(st_close(t, first.bytes, first.len), SSH_FX_OK);
    open_ok(t, "/f", SSH_FXF_READ);
    st_free(t);
}

/// STAT, LSTAT, FSTAT ///

static void stat_root_is_directory_with_type_bits(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/", &attr), SSH_FX_OK);
    assert_int_equal(attr.fields, VFS_ATTR_SIZE | VFS_ATTR_OWNER |
                     VFS_ATTR_MODE | VFS_ATTR_TIMES);
    assert_int_equal(attr.mode, 040755);
    assert_int_equal(attr.uid, ST_UID);
    assert_int_equal(attr.gid, ST_GID);
    st_free(t);
}

static void stat_file_reports_size_mode_owner_and_times(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr, lattr;
    time_t before = time(NULL);

    (void)state;
    st_put_file(t, "/f", "12345", 5);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.size, 5);
    assert_int_equal(attr.mode, 0100644);
    assert_int_equal(attr.uid, ST_UID);
    assert_int_equal(attr.gid, ST_GID);
    assert_true(attr.mtime >= before - 1 && attr.mtime <= time(NULL) + 1);
    assert_int_equal(attr.atime, attr.mtime);

    /* Without symbolic links, LSTAT agrees with STAT. */
    assert_int_equal(st_stat(t, SSH_FXP_LSTAT, "/f", &lattr), SSH_FX_OK);
    assert_memory_equal(&lattr, &attr, sizeof(attr));
    st_free(t);
}

static void stat_missing_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/missing", &attr),
                     SSH_FX_NO_SUCH_FILE);
    assert_string_equal(t->message, "No such file or directory");
    assert_int_equal(st_stat(t, SSH_FXP_LSTAT, "/missing/x", &attr),
                     SSH_FX_NO_SUCH_FILE);
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f/x", &attr),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void fstat_sees_unclosed_writes(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    struct handle h = open_ok(t, "/f", RW_CREAT);

    assert_int_equal(st_write(t, h.bytes, h.len, 0, "abcdef", 6), SSH_FX_OK);
    assert_int_equal(st_fstat(t, h.bytes, h.len, &attr), SSH_FX_OK);
    assert_int_equal(attr.size, 6);
    assert_int_equal(attr.mode, 0100644);
    st_free(t);
}

/// SETSTAT and FSETSTAT ///

static void setstat_size_truncates_and_extends(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr = { .fields = VFS_ATTR_SIZE, .size = 3 };
    size_t len;
    uint8_t *data;

    (void)state;
    st_put_file(t, "/f", "abcdefgh", 8);
    assert_int_equal(st_setstat(t, "/f", &attr), SSH_FX_OK);
    data = st_get_file(t, "/f", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "abc", 3);
    free(data);

    attr.size = 6;
    assert_int_equal(st_setstat(t, "/f", &attr), SSH_FX_OK);
    data = st_get_file(t, "/f", &len);
    assert_int_equal(len, 6);
    assert_memory_equal(data, "abc\0\0\0", 6);
    free(data);

    attr.size = 0;
    assert_int_equal(st_setstat(t, "/f", &attr), SSH_FX_OK);
    data = st_get_file(t, "/f", &len);
    assert_int_equal(len, 0);
    free(data);
    st_free(t);
}

static void setstat_permissions_and_times_survive_remount(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = {
        .fields = VFS_ATTR_MODE | VFS_ATTR_TIMES,
        .mode = 0100640,
        .atime = 1000000000,
        .mtime = 1200000000,
    };
    struct vfs_attr attr;

    (void)state;
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    assert_int_equal(st_setstat(t, "/f", &set), SSH_FX_OK);
    set.mode = 0700;
    assert_int_equal(st_setstat(t, "/d", &set), SSH_FX_OK);

    st_remount(t);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100640);
    assert_int_equal(attr.atime, 1000000000);
    assert_int_equal(attr.mtime, 1200000000);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/d", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 040700);
    assert_int_equal(attr.mtime, 1200000000);
    st_free(t);
}

static void setstat_equal_times_keep_atime_following_mtime(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = {
        .fields = VFS_ATTR_TIMES, .atime = 1500000000, .mtime = 1500000000,
    };
    struct vfs_attr attr;

    (void)state;
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_setstat(t, "/f", &set), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.atime, 1500000000);
    assert_int_equal(attr.mtime, 1500000000);

    /* A later write moves mtime, and atime with it. */
    st_put_file(t, "/f", "y", 1);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_true(attr.mtime > 1500000000);
    assert_int_equal(attr.atime, attr.mtime);
    st_free(t);
}

static void setstat_owner_must_match_reported_pair(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = {
        .fields = VFS_ATTR_OWNER | VFS_ATTR_MODE,
        .uid = 0, .gid = 0, .mode = 0600,
    };
    struct vfs_attr attr;

    (void)state;
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_setstat(t, "/f", &set), SSH_FX_PERMISSION_DENIED);
    assert_string_equal(t->message, "Operation not permitted");

    /* The rejected request changed nothing. */
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100644);

    set.uid = ST_UID;
    set.gid = ST_GID;
    assert_int_equal(st_setstat(t, "/f", &set), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100600);
    st_free(t);
}

static void setstat_missing_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = { .fields = VFS_ATTR_MODE, .mode = 0600 };

    (void)state;
    assert_int_equal(st_setstat(t, "/missing", &set), SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void setstat_size_on_directory_is_failure(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = { .fields = VFS_ATTR_SIZE, .size = 0 };

    (void)state;
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    assert_int_equal(st_setstat(t, "/d", &set), SSH_FX_FAILURE);
    assert_string_equal(t->message, "Is a directory");
    st_free(t);
}

static uint32_t fsetstat(struct st *t, const struct handle *h,
                         const struct vfs_attr *attr)
{
    st_begin(t, SSH_FXP_FSETSTAT);
    assert_int_equal(wb_string(&t->req, h->bytes, h->len), 0);
    st_put_attrs(&t->req, attr);
    st_send(t);
    return st_status(t);
}

static void fsetstat_size_needs_write_access(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = { .fields = VFS_ATTR_SIZE, .size = 1 };
    struct vfs_attr attr;

    (void)state;
    st_put_file(t, "/f", "abc", 3);
    struct handle ro = open_ok(t, "/f", SSH_FXF_READ);
    struct handle rw = open_ok(t, "/f", SSH_FXF_READ | SSH_FXF_WRITE);

    /* As ftruncate(2) on a descriptor opened for reading: EINVAL. */
    assert_int_equal(fsetstat(t, &ro, &set), SSH_FX_BAD_MESSAGE);
    assert_int_equal(fsetstat(t, &rw, &set), SSH_FX_OK);
    assert_int_equal(st_fstat(t, ro.bytes, ro.len, &attr), SSH_FX_OK);
    assert_int_equal(attr.size, 1);

    /* Permissions change through a read handle, as fchmod(2) allows. */
    set.fields = VFS_ATTR_MODE;
    set.mode = 0604;
    assert_int_equal(fsetstat(t, &ro, &set), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100604);
    st_free(t);
}

static void fsetstat_times_before_close_survive_close(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = {
        .fields = VFS_ATTR_TIMES, .atime = 1300000000, .mtime = 1300000000,
    };
    struct vfs_attr attr;

    (void)state;
    struct handle h = open_ok(t, "/f", RW_CREAT);

    /* sftp's put -p: write, set the times through the handle, close. */
    assert_int_equal(st_write(t, h.bytes, h.len, 0, "data", 4), SSH_FX_OK);
    assert_int_equal(fsetstat(t, &h, &set), SSH_FX_OK);
    assert_int_equal(st_close(t, h.bytes, h.len), SSH_FX_OK);
    st_remount(t);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mtime, 1300000000);
    assert_int_equal(attr.size, 4);
    st_free(t);
}

static void handles_left_open_are_written_back(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    struct handle h = open_ok(t, "/f", RW_CREAT);

    assert_int_equal(st_write(t, h.bytes, h.len, 0, "unclosed", 8),
                     SSH_FX_OK);
    st_remount(t);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.size, 8);
    st_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_missing_without_creat_is_no_such_file),
        cmocka_unit_test(open_creat_in_missing_directory_is_no_such_file),
        cmocka_unit_test(open_creat_excl_on_existing_fails_untouched),
        cmocka_unit_test(open_creat_excl_on_new_name_creates),
        cmocka_unit_test(open_creat_takes_permissions_from_request),
        cmocka_unit_test(open_creat_applies_umask),
        cmocka_unit_test(open_creat_on_existing_keeps_permissions),
        cmocka_unit_test(open_trunc_empties_file),
        cmocka_unit_test(open_directory_is_failure),
        cmocka_unit_test(open_name_too_long_is_bad_message),
        cmocka_unit_test(open_without_access_flags_reads),
        cmocka_unit_test(open_creat_without_write_creates_readable_file),
        cmocka_unit_test(read_at_end_of_file_is_eof),
        cmocka_unit_test(read_returns_full_length_unless_file_ends),
        cmocka_unit_test(read_is_capped_at_max_read_length),
        cmocka_unit_test(read_of_zero_bytes_returns_empty_data),
        cmocka_unit_test(read_on_write_only_handle_is_no_such_file),
        cmocka_unit_test(read_io_error_is_failure_not_eof),
        cmocka_unit_test(write_on_read_only_handle_is_no_such_file),
        cmocka_unit_test(write_with_append_ignores_offset),
        cmocka_unit_test(write_past_end_fills_gap_with_zeros),
        cmocka_unit_test(write_overwrites_in_place),
        cmocka_unit_test(write_beyond_free_space_is_failure),
        cmocka_unit_test(close_twice_is_no_such_file),
        cmocka_unit_test(closed_handle_is_rejected_by_every_request),
        cmocka_unit_test(forged_handles_are_rejected),
        cmocka_unit_test(old_handle_does_not_reach_file_opened_later),
        cmocka_unit_test(handle_table_is_bounded),
        cmocka_unit_test(stat_root_is_directory_with_type_bits),
        cmocka_unit_test(stat_file_reports_size_mode_owner_and_times),
        cmocka_unit_test(stat_missing_is_no_such_file),
        cmocka_unit_test(fstat_sees_unclosed_writes),
        cmocka_unit_test(setstat_size_truncates_and_extends),
        cmocka_unit_test(setstat_permissions_and_times_survive_remount),
        cmocka_unit_test(setstat_equal_times_keep_atime_following_mtime),
        cmocka_unit_test(setstat_owner_must_match_reported_pair),
        cmocka_unit_test(setstat_missing_is_no_such_file),
        cmocka_unit_test(setstat_size_on_directory_is_failure),
        cmocka_unit_test(fsetstat_size_needs_write_access),
        cmocka_unit_test(fsetstat_times_before_close_survive_close),
        cmocka_unit_test(handles_left_open_are_written_back),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
