/*
 * SFTP version negotiation, OpenSSH's extensions and read-only mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sftp_test_client.h"

static void begin_extended(struct st *t, const char *name)
{
    st_begin(t, SSH_FXP_EXTENDED);
    assert_int_equal(wb_cstring(&t->req, name), 0);
}

static void take_handle(struct st *t, uint8_t *out, uint32_t *len)
{
    memcpy(out, t->handle, t->handle_len);
    *len = t->handle_len;
}

/* Read a string from the reply and compare it with the expected bytes. */
static void check_reply_bytes(struct st *t, const void *expected,
                              size_t expected_len)
{
    const uint8_t *s;
    uint32_t len;

    assert_int_equal(rd_string(&t->rd, &s, &len), 0);
    assert_int_equal(len, expected_len);
    assert_memory_equal(s, expected, len);
}

static void check_reply_string(struct st *t, const char *expected)
{
    check_reply_bytes(t, expected, strlen(expected));
}

static void check_reply_u64(struct st *t, uint64_t expected)
{
    uint64_t v;

    assert_int_equal(rd_u64(&t->rd, &v), 0);
    assert_int_equal(v, expected);
}

/// VERSION ///

static void version_lists_extensions_in_openssh_order(void **state)
{
    static const char *const expected[][2] = {
        { "posix-rename@openssh.com", "1" },
        { "statvfs@openssh.com", "2" },
        { "fstatvfs@openssh.com", "2" },
        { "fsync@openssh.com", "1" },
        { "lsetstat@openssh.com", "1" },
        { "limits@openssh.com", "1" },
        { "expand-path@openssh.com", "1" },
        { "copy-data", "1" },
        { "home-directory", "1" },
        { "users-groups-by-id@openssh.com", "1" },
    };
    struct st *t = st_new_uninitialized(NULL);
    uint8_t init[9] = { 0, 0, 0, 5, SSH_FXP_INIT, 0, 0, 0, 6 };
    uint32_t version;

    (void)state;

    /* A client offering version 6 still gets 3. */
    assert_int_equal(st_feed(t, init, sizeof(init)), sizeof(init));
    assert_int_equal(st_read_reply(t), 0);
    assert_int_equal(t->type, SSH_FXP_VERSION);
    assert_int_equal(rd_u32(&t->rd, &version), 0);
    assert_int_equal(version, 3);
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        check_reply_string(t, expected[i][0]);
        check_reply_string(t, expected[i][1]);
    }

    /* hardlink@openssh.com is not advertised: littlefs has no links. */
    assert_int_equal(rd_left(&t->rd), 0);
    st_free(t);
}

/// Extensions ///

static void unknown_extension_is_op_unsupported(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    begin_extended(t, "frobnicate@example.com");
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_OP_UNSUPPORTED);
    assert_string_equal(t->message, "Unknown extended request");

    begin_extended(t, "hardlink@openssh.com");
    assert_int_equal(wb_cstring(&t->req, "/a"), 0);
    assert_int_equal(wb_cstring(&t->req, "/b"), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_OP_UNSUPPORTED);
    assert_string_equal(t->message,
                        "Hard links are not supported on this image");
    st_free(t);
}

static void limits_match_openssh_values(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    begin_extended(t, "limits@openssh.com");
    st_send(t);
    assert_int_equal(t->type, SSH_FXP_EXTENDED_REPLY);
    check_reply_u64(t, 256 * 1024);
    check_reply_u64(t, 255 * 1024);
    check_reply_u64(t, 255 * 1024);
    check_reply_u64(t, SFTP_DEFAULT_MAX_HANDLES);
    assert_int_equal(rd_left(&t->rd), 0);
    st_free(t);
}

static void statvfs_reports_image_geometry(void **state)
{
    struct st *t = st_new(NULL);
    uint64_t free_before, free_after, v;
    static uint8_t data[100 * 1024];

    (void)state;
    begin_extended(t, "statvfs@openssh.com");
    assert_int_equal(wb_cstring(&t->req, "/"), 0);
    st_send(t);
    assert_int_equal(t->type, SSH_FXP_EXTENDED_REPLY);
    check_reply_u64(t, ST_BLOCK_SIZE);                 /* f_bsize */
    check_reply_u64(t, ST_BLOCK_SIZE);                 /* f_frsize */
    check_reply_u64(t, ST_BLOCK_COUNT);                /* f_blocks */
    assert_int_equal(rd_u64(&t->rd, &free_before), 0);
    assert_true(free_before > ST_BLOCK_COUNT - 10);
    assert_true(free_before < ST_BLOCK_COUNT);
    check_reply_u64(t, free_before);                   /* f_bavail */
    check_reply_u64(t, ST_BLOCK_COUNT);                /* f_files */
    check_reply_u64(t, free_before);                   /* f_ffree */
    check_reply_u64(t, free_before);                   /* f_favail */
    check_reply_u64(t, 0);                             /* f_fsid */
    check_reply_u64(t, 0);                             /* f_flag */
    check_reply_u64(t, 255);                           /* f_namemax */
    assert_int_equal(rd_left(&t->rd), 0);

    /* 100 KiB of data take at least 200 blocks of 512 bytes. */
    st_put_file(t, "/f", data, sizeof(data));
    begin_extended(t, "statvfs@openssh.com");
    assert_int_equal(wb_cstring(&t->req, "/f"), 0);
    st_send(t);
    assert_int_equal(t->type, SSH_FXP_EXTENDED_REPLY);
    assert_int_equal(rd_u64(&t->rd, &v), 0);
    assert_int_equal(rd_u64(&t->rd, &v), 0);
    assert_int_equal(rd_u64(&t->rd, &v), 0);
    assert_int_equal(rd_u64(&t->rd, &free_after), 0);
    assert_true(free_after <= free_before - 200);
    st_free(t);
}

static void statvfs_of_missing_path_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    begin_extended(t, "statvfs@openssh.com");
    assert_int_equal(wb_cstring(&t->req, "/missing"), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void fstatvfs_and_fsync_take_open_handles(void **state)
{
    struct st *t = st_new(NULL);
    uint8_t h[64];
    uint32_t hlen;

    (void)state;
    assert_int_equal(st_open(t, "/f", SSH_FXF_WRITE | SSH_FXF_CREAT, -1),
                     SSH_FX_OK);
    take_handle(t, h, &hlen);
    assert_int_equal(st_write(t, h, hlen, 0, "abc", 3), SSH_FX_OK);

    begin_extended(t, "fsync@openssh.com");
    assert_int_equal(wb_string(&t->req, h, hlen), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_OK);

    begin_extended(t, "fstatvfs@openssh.com");
    assert_int_equal(wb_string(&t->req, h, hlen), 0);
    st_send(t);
    assert_int_equal(t->type, SSH_FXP_EXTENDED_REPLY);
    check_reply_u64(t, ST_BLOCK_SIZE);

    assert_int_equal(st_close(t, h, hlen), SSH_FX_OK);
    begin_extended(t, "fsync@openssh.com");
    assert_int_equal(wb_string(&t->req, h, hlen), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_FAILURE);
    begin_extended(t, "fstatvfs@openssh.com");
    assert_int_equal(wb_string(&t->req, h, hlen), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_FAILURE);
    st_free(t);
}

static void lsetstat_sets_like_setstat(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr set = { .fields = VFS_ATTR_MODE, .mode = 0640 };
    struct vfs_attr attr;

    (void)state;
    st_put_file(t, "/f", "x", 1);
    begin_extended(t, "lsetstat@openssh.com");
    assert_int_equal(wb_cstring(&t->req, "/f"), 0);
    st_put_attrs(&t->req, &set);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100640);
    st_free(t);
}

/* Send expand-path and return its status; the name goes to out. */
static uint32_t expand_path(struct st *t, const char *path, char *out)
{
    const uint8_t *name, *longname;
    uint32_t count, len, long_len;
    struct vfs_attr attr;

    begin_extended(t, "expand-path@openssh.com");
    assert_int_equal(wb_cstring(&t->req, path), 0);
    st_send(t);
    if (t->type == SSH_FXP_STATUS)
        return st_status(t);
    assert_int_equal(t->type, SSH_FXP_NAME);
    assert_int_equal(rd_u32(&t->rd, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(rd_string(&t->rd, &name, &len), 0);
    assert_int_equal(rd_string(&t->rd, &longname, &long_len), 0);
    st_get_attrs(t, &attr);
    memcpy(out, name, len);
    out[len] = '\0';
    return SSH_FX_OK;
}

static void expand_path_maps_tilde_to_root(void **state)
{
    struct st *t = st_new(NULL);
    char out[SFTP_PATH_MAX];

    (void)state;
    assert_int_equal(st_mkdir(t, "/docs", -1), SSH_FX_OK);
    assert_int_equal(expand_path(t, "~", out), SSH_FX_OK);
    assert_string_equal(out, "/");
    assert_int_equal(expand_path(t, "~/docs/../docs/x", out), SSH_FX_OK);
    assert_string_equal(out, "/docs/x");
    assert_int_equal(expand_path(t, "~alice/docs", out), SSH_FX_OK);
    assert_string_equal(out, "/docs");
    assert_int_equal(expand_path(t, "docs", out), SSH_FX_OK);
    assert_string_equal(out, "/docs");
    assert_int_equal(expand_path(t, "~bob/docs", out), SSH_FX_NO_SUCH_FILE);
    assert_string_equal(t->message, "No such user");
    assert_int_equal(expand_path(t, "~/missing/x", out),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void home_directory_is_root_for_own_user(void **state)
{
    struct st *t = st_new(NULL);
    static const char *const users[] = { "", "alice" };
    uint32_t count;

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        begin_extended(t, "home-directory");
        assert_int_equal(wb_cstring(&t->req, users[i]), 0);
        st_send(t);
        assert_int_equal(t->type, SSH_FXP_NAME);
        assert_int_equal(rd_u32(&t->rd, &count), 0);
        assert_int_equal(count, 1);
        check_reply_string(t, "/");
    }
    begin_extended(t, "home-directory");
    assert_int_equal(wb_cstring(&t->req, "mallory"), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_FAILURE);
    st_free(t);
}

static void users_groups_by_id_names_only_the_owner(void **state)
{
    struct st *t = st_new(NULL);
    uint8_t uids[12], gids[8];

    (void)state;
    put_be32(uids, ST_UID);
    put_be32(uids + 4, 0);
    put_be32(uids + 8, ST_UID);
    put_be32(gids, 7);
    put_be32(gids + 4, ST_GID);
    begin_extended(t, "users-groups-by-id@openssh.com");
    assert_int_equal(wb_string(&t->req, uids, sizeof(uids)), 0);
    assert_int_equal(wb_string(&t->req, gids, sizeof(gids)), 0);
    st_send(t);
    assert_int_equal(t->type, SSH_FXP_EXTENDED_REPLY);

    /* Each list is one string made of strings. */
    check_reply_bytes(t, "\0\0\0\5alice\0\0\0\0\0\0\0\5alice", 22);
    check_reply_bytes(t, "\0\0\0\0\0\0\0\5staff", 13);
    assert_int_equal(rd_left(&t->rd), 0);

    /* A list whose length is not a multiple of 4 is malformed. */
    begin_extended(t, "users-groups-by-id@openssh.com");
    assert_int_equal(wb_string(&t->req, uids, 3), 0);
    assert_int_equal(wb_string(&t->req, gids, 0), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_BAD_MESSAGE);
    st_free(t);
}

static uint32_t copy_data(struct st *t, const uint8_t *from, uint64_t off,
                          uint64_t len, const uint8_t *to, uint64_t to_off)
{
    begin_extended(t, "copy-data");
    assert_int_equal(wb_string(&t->req, from, 8), 0);
    assert_int_equal(wb_u64(&t->req, off), 0);
    assert_int_equal(wb_u64(&t->req, len), 0);
    assert_int_equal(wb_string(&t->req, to, 8), 0);
    assert_int_equal(wb_u64(&t->req, to_off), 0);
    st_send(t);
    return st_status(t);
}

static void copy_data_copies_ranges_between_files(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t content[150000];
    uint8_t src[64], dst[64];
    uint32_t len;
    size_t got;
    uint8_t *data;

    (void)state;
    for (size_t i = 0; i < sizeof(content); i++)
        content[i] = (uint8_t)(i * 7);
    st_put_file(t, "/src", content, sizeof(content));
    assert_int_equal(st_open(t, "/src", SSH_FXF_READ, -1), SSH_FX_OK);
    take_handle(t, src, &len);
    assert_int_equal(st_open(t, "/dst", SSH_FXF_WRITE | SSH_FXF_CREAT, -1),
                     SSH_FX_OK);
    take_handle(t, dst, &len);

    /* Length 0: to the end of the source. */
    assert_int_equal(copy_data(t, src, 0, 0, dst, 0), SSH_FX_OK);
    assert_int_equal(copy_data(t, src, 10, 5, dst, 150000), SSH_FX_OK);

    /* Past the end of the source there is nothing to copy. */
    assert_int_equal(copy_data(t, src, 200000, 10, dst, 0), SSH_FX_OK);
    assert_int_equal(st_close(t, dst, 8), SSH_FX_OK);
    data = st_get_file(t, "/dst", &got);
    assert_int_equal(got, 150005);
    assert_memory_equal(data, content, sizeof(content));
    assert_memory_equal(data + 150000, content + 10, 5);
    free(data);
    st_free(t);
}

static void copy_data_to_end_stops_at_starting_size(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t content[1000];
    struct vfs_attr attr;
    uint8_t old_name[64], new_name[64];
    uint32_t len;

    (void)state;
    memset(content, 'c', sizeof(content));
    st_put_file(t, "/a", content, sizeof(content));
    assert_int_equal(st_open(t, "/a", SSH_FXF_READ, -1), SSH_FX_OK);
    take_handle(t, old_name, &len);

    /* After a rename, two handles with different paths share one file. */
    assert_int_equal(st_rename(t, "/a", "/b"), SSH_FX_OK);
    assert_int_equal(st_open(t, "/b", SSH_FXF_WRITE, -1), SSH_FX_OK);
    take_handle(t, new_name, &len);
    assert_int_equal(copy_data(t, old_name, 0, 0, new_name, 1000), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/b", &attr), SSH_FX_OK);
    assert_int_equal(attr.size, 2000);
    st_free(t);
}

static void copy_data_rejects_same_file_and_bad_access(void **state)
{
    struct st *t = st_new(NULL);
    uint8_t a_read[64], a_write[64], b_read[64];
    uint32_t len;

    (void)state;
    st_put_file(t, "/a", "aaa", 3);
    st_put_file(t, "/b", "bbb", 3);
    assert_int_equal(st_open(t, "/a", SSH_FXF_READ, -1), SSH_FX_OK);
    take_handle(t, a_read, &len);
    assert_int_equal(st_open(t, "/a", SSH_FXF_WRITE, -1), SSH_FX_OK);
    take_handle(t, a_write, &len);
    assert_int_equal(st_open(t, "/b", SSH_FXF_READ, -1), SSH_FX_OK);
    take_handle(t, b_read, &len);

    assert_int_equal(copy_data(t, a_read, 0, 0, a_write, 0), SSH_FX_FAILURE);
    assert_string_equal(t->message,
                        "Source and destination are the same file");
    assert_int_equal(copy_data(t, a_read, 0, 0, a_read, 0), SSH_FX_FAILURE);

    /* Writing through a read handle: EBADF, as OpenSSH maps it. */
    assert_int_equal(copy_data(t, a_read, 0, 0, b_read, 0),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

/// Read-only mode ///

static void read_only_mode_denies_every_change(void **state)
{
    struct sftp_options opts = st_default_options();
    struct st *t = st_new(NULL);
    struct vfs_attr set = { .fields = VFS_ATTR_MODE, .mode = 0600 };
    struct vfs_attr attr;
    const uint8_t *data;
    uint8_t h[64];
    uint32_t hlen, n;

    (void)state;
    st_put_file(t, "/f", "abc", 3);
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    opts.read_only = 1;
    t->opts = opts;
    st_remount(t);

    assert_int_equal(st_open(t, "/f", SSH_FXF_WRITE, -1),
                     SSH_FX_PERMISSION_DENIED);
    assert_string_equal(t->message, "The image is read-only");
    assert_int_equal(st_open(t, "/new", SSH_FXF_READ | SSH_FXF_CREAT, -1),
                     SSH_FX_PERMISSION_DENIED);
    assert_int_equal(st_open(t, "/f", SSH_FXF_READ | SSH_FXF_TRUNC, -1),
                     SSH_FX_PERMISSION_DENIED);
    assert_int_equal(st_setstat(t, "/f", &set), SSH_FX_PERMISSION_DENIED);
    assert_int_equal(st_path_status(t, SSH_FXP_REMOVE, "/f"),
                     SSH_FX_PERMISSION_DENIED);
    assert_int_equal(st_mkdir(t, "/e", -1), SSH_FX_PERMISSION_DENIED);
    assert_int_equal(st_path_status(t, SSH_FXP_RMDIR, "/d"),
                     SSH_FX_PERMISSION_DENIED);
    assert_int_equal(st_rename(t, "/f", "/g"), SSH_FX_PERMISSION_DENIED);
    assert_int_equal(st_posix_rename(t, "/f", "/g"),
                     SSH_FX_PERMISSION_DENIED);

    begin_extended(t, "lsetstat@openssh.com");
    assert_int_equal(wb_cstring(&t->req, "/f"), 0);
    st_put_attrs(&t->req, &set);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_PERMISSION_DENIED);

    /* Reading still works, and writes through a read handle are denied
     * before the handle is even looked at. */
    assert_int_equal(st_open(t, "/f", SSH_FXF_READ, -1), SSH_FX_OK);
    take_handle(t, h, &hlen);
    assert_int_equal(st_read(t, h, hlen, 0, 3, &data, &n), SSH_FX_OK);
    assert_int_equal(st_write(t, h, hlen, 0, "x", 1),
                     SSH_FX_PERMISSION_DENIED);
    assert_int_equal(copy_data(t, h, 0, 0, h, 0), SSH_FX_PERMISSION_DENIED);

    st_begin(t, SSH_FXP_FSETSTAT);
    assert_int_equal(wb_string(&t->req, h, hlen), 0);
    st_put_attrs(&t->req, &set);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_PERMISSION_DENIED);

    /* Nothing changed. */
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 0100644);
    assert_int_equal(attr.size, 3);

    begin_extended(t, "statvfs@openssh.com");
    assert_int_equal(wb_cstring(&t->req, "/"), 0);
    st_send(t);
    assert_int_equal(t->type, SSH_FXP_EXTENDED_REPLY);
    for (int i = 0; i < 9; i++)
        assert_int_equal(rd_u64(&t->rd, &attr.size), 0);
    check_reply_u64(t, 1);                             /* f_flag: ST_RDONLY */
    st_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_lists_extensions_in_openssh_order),
        cmocka_unit_test(unknown_extension_is_op_unsupported),
        cmocka_unit_test(limits_match_openssh_values),
        cmocka_unit_test(statvfs_reports_image_geometry),
        cmocka_unit_test(statvfs_of_missing_path_is_no_such_file),
        cmocka_unit_test(fstatvfs_and_fsync_take_open_handles),
        cmocka_unit_test(lsetstat_sets_like_setstat),
        cmocka_unit_test(expand_path_maps_tilde_to_root),
        cmocka_unit_test(home_directory_is_root_for_own_user),
        cmocka_unit_test(users_groups_by_id_names_only_the_owner),
        cmocka_unit_test(copy_data_copies_ranges_between_files),
        cmocka_unit_test(copy_data_to_end_stops_at_starting_size),
        cmocka_unit_test(copy_data_rejects_same_file_and_bad_access),
        cmocka_unit_test(read_only_mode_denies_every_change),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
