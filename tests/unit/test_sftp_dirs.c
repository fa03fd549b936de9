/*
 * SFTP directory and name requests over an in-memory image: OPENDIR,
 * READDIR, MKDIR, RMDIR, REMOVE, RENAME, REALPATH, READLINK and SYMLINK,
 * and the longname format.
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

#include "sftp/sftp_internal.h"
#include "sftp_test_client.h"

struct entry {
    char name[VFS_NAME_MAX + 1];
    char longname[VFS_NAME_MAX + 256];
    struct vfs_attr attr;
};

struct listing {
    struct entry *entries;
    size_t count;
    size_t batches;
    size_t largest_reply;
};

static void open_dir(struct st *t, const char *path, uint8_t *handle,
                     uint32_t *len)
{
    st_path_request(t, SSH_FXP_OPENDIR, path);
    assert_int_equal(t->type, SSH_FXP_HANDLE);

    const uint8_t *h;

    assert_int_equal(rd_string(&t->rd, &h, len), 0);
    memcpy(handle, h, *len);
}

/* One READDIR: returns its status, with the entries appended to list. */
static uint32_t readdir_once(struct st *t, const uint8_t *handle,
                             uint32_t handle_len, struct listing *list)
{
    uint32_t count;

    st_begin(t, SSH_FXP_READDIR);
    assert_int_equal(wb_string(&t->req, handle, handle_len), 0);
    st_send(t);
    if (t->type == SSH_FXP_STATUS)
        return st_status(t);

    assert_int_equal(t->type, SSH_FXP_NAME);
    if (t->reply_len + 9 > list->largest_reply)
        list->largest_reply = t->reply_len + 9;
    assert_int_equal(rd_u32(&t->rd, &count), 0);
    assert_true(count > 0);
    list->entries = realloc(list->entries,
                            (list->count + count) * sizeof(struct entry));
    assert_non_null(list->entries);
    for (uint32_t i = 0; i < count; i++) {
        struct entry *e = &list->entries[list->count++];
        const uint8_t *s;
        uint32_t len;

        assert_int_equal(rd_string(&t->rd, &s, &len), 0);
        memcpy(e->name, s, len);
        e->name[len] = '\0';
        assert_int_equal(rd_string(&t->rd, &s, &len), 0);
        memcpy(e->longname, s, len);
        e->longname[len] = '\0';
        st_get_attrs(t, &e->attr);
    }
    assert_int_equal(rd_left(&t->rd), 0);
    list->batches++;
    return SSH_FX_OK;
}

static void list_dir(struct st *t, const char *path, struct listing *list)
{
    uint8_t handle[64];
    uint32_t handle_len;

    memset(list, 0, sizeof(*list));
    open_dir(t, path, handle, &handle_len);
    while (readdir_once(t, handle, handle_len, list) == SSH_FX_OK)
        ;
    assert_int_equal(t->status, SSH_FX_EOF);
    assert_int_equal(st_close(t, handle, handle_len), SSH_FX_OK);
}

static const struct entry *find_entry(const struct listing *list,
                                      const char *name)
{
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->entries[i].name, name) == 0)
            return &list->entries[i];
    }
    return NULL;
}

/// OPENDIR and READDIR ///

static void opendir_of_file_or_missing_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_path_status(t, SSH_FXP_OPENDIR, "/f"),
                     SSH_FX_NO_SUCH_FILE);
    assert_string_equal(t->message, "Not a directory");
    assert_int_equal(st_path_status(t, SSH_FXP_OPENDIR, "/missing"),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void readdir_lists_dots_and_entries_with_attributes(void **state)
{
    struct st *t = st_new(NULL);
    struct listing list;
    const struct entry *e;

    (void)state;
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    st_put_file(t, "/d/file", "12345", 5);
    assert_int_equal(st_mkdir(t, "/d/sub", 0700), SSH_FX_OK);
    list_dir(t, "/d", &list);

    assert_int_equal(list.count, 4);
    assert_string_equal(list.entries[0].name, ".");
    assert_string_equal(list.entries[1].name, "..");
    assert_int_equal(list.entries[0].attr.mode, 040755);
    assert_int_equal(list.entries[1].attr.mode, 040755);

    e = find_entry(&list, "file");
    assert_non_null(e);
    assert_int_equal(e->attr.size, 5);
    assert_int_equal(e->attr.mode, 0100644);
    assert_int_equal(e->attr.uid, ST_UID);
    assert_int_equal(e->attr.gid, ST_GID);
    assert_true(e->attr.fields & VFS_ATTR_TIMES);
    assert_int_equal(e->longname[0], '-');

    e = find_entry(&list, "sub");
    assert_non_null(e);
    assert_int_equal(e->attr.mode, 040700);
    assert_int_equal(e->longname[0], 'd');
    free(list.entries);
    st_free(t);
}

static void readdir_keeps_answering_eof(void **state)
{
    struct st *t = st_new(NULL);
    struct listing list = { 0 };
    uint8_t handle[64];
    uint32_t handle_len;

    (void)state;
    open_dir(t, "/", handle, &handle_len);
    assert_int_equal(readdir_once(t, handle, handle_len, &list), SSH_FX_OK);
    assert_int_equal(list.count, 2);

    /* sshfs keeps asking after the end, with many requests in flight. */
    for (int i = 0; i < 32; i++) {
        assert_int_equal(readdir_once(t, handle, handle_len, &list),
                         SSH_FX_EOF);
        assert_string_equal(t->message, "End of file");
    }
    free(list.entries);
    st_free(t);
}

static void readdir_sends_batches_of_at_most_100(void **state)
{
    struct st *t = st_new(NULL);
    struct listing list;
    char path[32];

    (void)state;
    assert_int_equal(st_mkdir(t, "/many", -1), SSH_FX_OK);
    for (int i = 0; i < 250; i++) {
        snprintf(path, sizeof(path), "/many/f%03d", i);
        assert_int_equal(st_open(t, path, SSH_FXF_WRITE | SSH_FXF_CREAT, -1),
                         SSH_FX_OK);
        assert_int_equal(st_close(t, t->handle, t->handle_len), SSH_FX_OK);
    }
    list_dir(t, "/many", &list);

    /* 250 entries plus "." and "..": 100, 100, 52. */
    assert_int_equal(list.count, 252);
    assert_int_equal(list.batches, 3);
    for (int i = 0; i < 250; i++) {
        snprintf(path, sizeof(path), "f%03d", i);
        assert_non_null(find_entry(&list, path));
    }
    free(list.entries);
    st_free(t);
}

static void readdir_replies_stay_under_byte_limit(void **state)
{
    /* Names this long need metadata blocks larger than 512 bytes. */
    struct lfs_format_options fmt = { .block_size = 4096, .name_max = 1022 };
    struct bd *bd = bd_mem_new(4096u * 1024);
    struct listing list;
    char path[1100];
    struct st *t;

    (void)state;
    assert_non_null(bd);
    assert_int_equal(lfs_format(bd, &fmt), 0);
    t = st_new_on(bd, NULL);
    assert_int_equal(st_mkdir(t, "/long", -1), SSH_FX_OK);
    for (int i = 0; i < 60; i++) {
        memset(path, 'n', sizeof(path));
        memcpy(path, "/long/", 6);
        snprintf(path + 6 + 1000, 20, "%03d", i);
        assert_int_equal(st_open(t, path, SSH_FXF_WRITE | SSH_FXF_CREAT, -1),
                         SSH_FX_OK);
        assert_int_equal(st_close(t, t->handle, t->handle_len), SSH_FX_OK);
    }
    list_dir(t, "/long", &list);
    assert_int_equal(list.count, 62);

    /* Each entry takes about 2 KiB: 62 of them pass 64 KiB, but no
     * reply may. */
    assert_true(list.largest_reply <= 64 * 1024);
    assert_int_equal(list.batches, 2);
    free(list.entries);
    st_free(t);
}

static void longname_reads_like_ls(void **state)
{
    struct vfs_attr attr = {
        .fields = VFS_ATTR_SIZE | VFS_ATTR_OWNER | VFS_ATTR_MODE |
                  VFS_ATTR_TIMES,
        .size = 12345,
        .uid = 1000,
        .gid = 100,
        .mode = 0100754,
        .mtime = 1577934245,       /* 2020-01-02 03:04:05 UTC */
    };
    char line[512];

    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();

    /* Old files show the year, recent ones the time of day. */
    sftp_format_longname(line, sizeof(line), "notes.txt", &attr, "alice",
                         "staff", 1700000000);
    assert_string_equal(line, "-rwxr-xr--    1 alice    staff       12345 "
                              "Jan  2  2020 notes.txt");
    sftp_format_longname(line, sizeof(line), "notes.txt", &attr, "alice",
                         "staff", 1577934245 + 3600);
    assert_string_equal(line, "-rwxr-xr--    1 alice    staff       12345 "
                              "Jan  2 03:04 notes.txt");

    /* Numbers without names, directories, special bits. */
    attr.mode = 041777;
    attr.size = 0;
    sftp_format_longname(line, sizeof(line), "tmp", &attr, NULL, NULL,
                         1700000000);
    assert_string_equal(line, "drwxrwxrwt    2 1000     100             0 "
                              "Jan  2  2020 tmp");
    attr.mode = 0106644;
    sftp_format_longname(line, sizeof(line), "odd", &attr, "a", "b",
                         1700000000);
    assert_string_equal(line, "-rwSr-Sr--    1 a        b               0 "
                              "Jan  2  2020 odd");
}

/// MKDIR, RMDIR, REMOVE ///

static void mkdir_applies_umask_to_requested_permissions(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;
    assert_int_equal(st_mkdir(t, "/a", 0777), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/a", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 040755);
    assert_int_equal(st_mkdir(t, "/b", -1), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/b", &attr), SSH_FX_OK);
    assert_int_equal(attr.mode, 040755);
    assert_true(attr.mtime > 0);
    st_free(t);
}

static void mkdir_existing_or_orphan_fails(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_FAILURE);
    assert_string_equal(t->message, "File exists");
    assert_int_equal(st_mkdir(t, "/", -1), SSH_FX_FAILURE);
    assert_int_equal(st_mkdir(t, "/nope/x", -1), SSH_FX_NO_SUCH_FILE);
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_mkdir(t, "/f/x", -1), SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void rmdir_cases_match_openssh(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    assert_int_equal(st_mkdir(t, "/d/sub", -1), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_RMDIR, "/d"), SSH_FX_FAILURE);
    assert_string_equal(t->message, "Directory not empty");
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_path_status(t, SSH_FXP_RMDIR, "/f"),
                     SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_path_status(t, SSH_FXP_RMDIR, "/missing"),
                     SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_path_status(t, SSH_FXP_RMDIR, "/"), SSH_FX_FAILURE);
    assert_int_equal(st_path_status(t, SSH_FXP_RMDIR, "/d/sub"), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_RMDIR, "/d"), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_STAT, "/d"),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void remove_cases_match_openssh(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_REMOVE, "/d"), SSH_FX_FAILURE);
    assert_string_equal(t->message, "Is a directory");
    assert_int_equal(st_path_status(t, SSH_FXP_REMOVE, "/"), SSH_FX_FAILURE);
    assert_int_equal(st_path_status(t, SSH_FXP_REMOVE, "/missing"),
                     SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_path_status(t, SSH_FXP_REMOVE, "/f"), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_STAT, "/f"),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

/// RENAME ///

static void rename_moves_a_file(void **state)
{
    struct st *t = st_new(NULL);
    size_t len;
    uint8_t *data;

    (void)state;
    st_put_file(t, "/a", "contents", 8);
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    assert_int_equal(st_rename(t, "/a", "/d/b"), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_STAT, "/a"),
                     SSH_FX_NO_SUCH_FILE);
    data = st_get_file(t, "/d/b", &len);
    assert_int_equal(len, 8);
    assert_memory_equal(data, "contents", 8);
    free(data);
    st_free(t);
}

static void rename_refuses_existing_target(void **state)
{
    struct st *t = st_new(NULL);
    size_t len;
    uint8_t *data;

    (void)state;
    st_put_file(t, "/a", "aaa", 3);
    st_put_file(t, "/b", "bb", 2);
    assert_int_equal(st_rename(t, "/a", "/b"), SSH_FX_FAILURE);
    assert_string_equal(t->message, "File exists");
    assert_int_equal(st_rename(t, "/a", "/a"), SSH_FX_FAILURE);
    data = st_get_file(t, "/b", &len);
    assert_int_equal(len, 2);
    free(data);
    data = st_get_file(t, "/a", &len);
    assert_int_equal(len, 3);
    free(data);
    st_free(t);
}

static void rename_of_missing_source_is_no_such_file(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_put_file(t, "/b", "bb", 2);
    assert_int_equal(st_rename(t, "/missing", "/b"), SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_rename(t, "/missing", "/c"), SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_posix_rename(t, "/missing", "/c"),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void posix_rename_replaces_target(void **state)
{
    struct st *t = st_new(NULL);
    size_t len;
    uint8_t *data;

    (void)state;
    st_put_file(t, "/a", "new", 3);
    st_put_file(t, "/b", "old contents", 12);
    assert_int_equal(st_posix_rename(t, "/a", "/b"), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_STAT, "/a"),
                     SSH_FX_NO_SUCH_FILE);
    data = st_get_file(t, "/b", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "new", 3);
    free(data);

    /* Onto itself: nothing changes. */
    assert_int_equal(st_posix_rename(t, "/b", "/b"), SSH_FX_OK);
    st_free(t);
}

static void posix_rename_directory_cases_match_openssh(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    assert_int_equal(st_mkdir(t, "/d1", -1), SSH_FX_OK);
    assert_int_equal(st_mkdir(t, "/d2", -1), SSH_FX_OK);
    assert_int_equal(st_mkdir(t, "/d2/x", -1), SSH_FX_OK);
    st_put_file(t, "/f", "x", 1);

    assert_int_equal(st_posix_rename(t, "/d1", "/d1/sub"),
                     SSH_FX_BAD_MESSAGE);
    assert_int_equal(st_posix_rename(t, "/d1", "/d2"), SSH_FX_FAILURE);
    assert_string_equal(t->message, "Directory not empty");
    assert_int_equal(st_posix_rename(t, "/d1", "/f"), SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_posix_rename(t, "/f", "/d1"), SSH_FX_FAILURE);
    assert_string_equal(t->message, "Is a directory");
    assert_int_equal(st_posix_rename(t, "/", "/r"), SSH_FX_FAILURE);

    /* An empty directory is replaced. */
    assert_int_equal(st_posix_rename(t, "/d2/x", "/d1"), SSH_FX_OK);
    assert_int_equal(st_path_status(t, SSH_FXP_STAT, "/d2/x"),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

/// REALPATH ///

static void realpath_resolves_lexically_under_root(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        { ".", "/" },
        { "", "/" },
        { "/", "/" },
        { "..", "/" },
        { "../../..", "/" },
        { "d", "/d" },
        { "/d/", "/d" },
        { "//d//./f", "/d/f" },
        { "d/../d/f", "/d/f" },
        { "/../d", "/d" },
        { "d/new", "/d/new" },
    };
    struct st *t = st_new(NULL);
    char out[SFTP_PATH_MAX];

    (void)state;
    assert_int_equal(st_mkdir(t, "/d", -1), SSH_FX_OK);
    st_put_file(t, "/d/f", "x", 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(st_realpath(t, cases[i].in, out, sizeof(out)),
                         SSH_FX_OK);
        assert_string_equal(out, cases[i].out);
    }
    st_free(t);
}

static void realpath_needs_parent_of_missing_name(void **state)
{
    struct st *t = st_new(NULL);
    char out[SFTP_PATH_MAX];

    (void)state;
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_realpath(t, "/missing", out, sizeof(out)),
                     SSH_FX_OK);
    assert_string_equal(out, "/missing");
    assert_int_equal(st_realpath(t, "/missing/x", out, sizeof(out)),
                     SSH_FX_NO_SUCH_FILE);
    assert_int_equal(st_realpath(t, "/f/x", out, sizeof(out)),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

static void path_resolution_rejects_nul_and_overlong_paths(void **state)
{
    char out[SFTP_PATH_MAX];
    static uint8_t long_path[SFTP_PATH_MAX + 10];

    (void)state;
    assert_int_equal(sftp_path_resolve((const uint8_t *)"a\0b", 3, out),
                     VFS_ERR_INVAL);
    memset(long_path, 'a', sizeof(long_path));
    for (size_t i = 100; i < sizeof(long_path); i += 100)
        long_path[i] = '/';
    assert_int_equal(sftp_path_resolve(long_path, sizeof(long_path), out),
                     VFS_ERR_NAMETOOLONG);

    /* ".." may shorten an overlong path back under the limit. */
    assert_int_equal(sftp_path_resolve(long_path, SFTP_PATH_MAX - 200, out),
                     VFS_OK);
    assert_int_equal(strlen(out), SFTP_PATH_MAX - 200 + 1);
}

static void path_with_nul_byte_is_bad_message(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_begin(t, SSH_FXP_STAT);
    assert_int_equal(wb_string(&t->req, "/a\0b", 4), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_BAD_MESSAGE);
    assert_string_equal(t->message, "Path contains a NUL byte");
    st_free(t);
}

/// Links ///

static void symlink_and_readlink_are_unsupported(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_put_file(t, "/f", "x", 1);
    assert_int_equal(st_path_status(t, SSH_FXP_READLINK, "/f"),
                     SSH_FX_OP_UNSUPPORTED);
    assert_string_equal(t->message,
                        "Symbolic links are not supported on this image");

    st_begin(t, SSH_FXP_SYMLINK);
    assert_int_equal(wb_cstring(&t->req, "/link"), 0);
    assert_int_equal(wb_cstring(&t->req, "/f"), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_OP_UNSUPPORTED);
    assert_int_equal(st_path_status(t, SSH_FXP_STAT, "/link"),
                     SSH_FX_NO_SUCH_FILE);
    st_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opendir_of_file_or_missing_is_no_such_file),
        cmocka_unit_test(readdir_lists_dots_and_entries_with_attributes),
        cmocka_unit_test(readdir_keeps_answering_eof),
        cmocka_unit_test(readdir_sends_batches_of_at_most_100),
        cmocka_unit_test(readdir_replies_stay_under_byte_limit),
        cmocka_unit_test(longname_reads_like_ls),
        cmocka_unit_test(mkdir_applies_umask_to_requested_permissions),
        cmocka_unit_test(mkdir_existing_or_orphan_fails),
        cmocka_unit_test(rmdir_cases_match_openssh),
        cmocka_unit_test(remove_cases_match_openssh),
        cmocka_unit_test(rename_moves_a_file),
        cmocka_unit_test(rename_refuses_existing_target),
        cmocka_unit_test(rename_of_missing_source_is_no_such_file),
        cmocka_unit_test(posix_rename_replaces_target),
        cmocka_unit_test(posix_rename_directory_cases_match_openssh),
        cmocka_unit_test(realpath_resolves_lexically_under_root),
        cmocka_unit_test(realpath_needs_parent_of_missing_name),
        cmocka_unit_test(path_resolution_rejects_nul_and_overlong_paths),
        cmocka_unit_test(path_with_nul_byte_is_bad_message),
        cmocka_unit_test(symlink_and_readlink_are_unsupported),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
