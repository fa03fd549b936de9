/*
 * Users and keys read from the image: NAME.pub files, authorized_keys,
 * rejected lines, the --key user's precedence and the root-directory
 * scan over a real littlefs image.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "server/log.h"
#include "server/users.h"
#include "ssh/ssh.h"

#define KEY_A "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGs5zDy3MabapKK4NeaN59Tya1wpzFO+2m7+4xi7+u+y"
#define KEY_B "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK/w27qtm8clt8a/gu1Tlx/chYOVC+CBKgydduVSwJu1"
/* KEY_A without its last base64 character, so the blob is too short. */
#define KEY_BROKEN "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGs5zDy3MabapKK4NeaN59Tya1wpzFO+2m7+4xi7+u+"

static struct ssh_pubkey *key_a, *key_b;

static int setup(void **state)
{
    (void)state;
    /* Rejected lines are logged as warnings, which would clutter the
     * test output. */
    log_set_level(LOG_LEVEL_ERROR);
    if (ssh_pubkey_parse_line(&key_a, KEY_A, NULL) ||
        ssh_pubkey_parse_line(&key_b, KEY_B, NULL))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ssh_pubkey_free(key_a);
    ssh_pubkey_free(key_b);
    return 0;
}

static void parse_pub(struct users *u, const char *name, const char *text)
{
    users_parse_pub_file(u, "/test.pub", name, text, strlen(text));
}

static void parse_authorized(struct users *u, const char *text)
{
    users_parse_authorized_keys(u, "/authorized_keys", text, strlen(text));
}

static void pub_file_keys_belong_to_file_name(void **state)
{
    struct users u;

    (void)state;
    users_init(&u, NULL);
    parse_pub(&u, "alice", "# alice's keys\n\n" KEY_A " laptop\r\n"
              "   " KEY_B "   \n");
    assert_int_equal(u.count, 2);
    assert_int_equal(u.rejected_lines, 0);
    assert_true(users_exists(&u, "alice"));
    assert_false(users_exists(&u, "laptop"));
    assert_true(users_key_allowed(&u, "alice", key_a));
    assert_true(users_key_allowed(&u, "alice", key_b));
    assert_false(users_key_allowed(&u, "bob", key_a));
    users_clear(&u);
    assert_int_equal(u.count, 0);
    assert_false(users_exists(&u, "alice"));
}

static void pub_file_without_newline_is_read(void **state)
{
    struct users u;

    (void)state;
    users_init(&u, NULL);
    parse_pub(&u, "username", KEY_A " mirage_sshfs");
    assert_int_equal(u.count, 1);
    assert_true(users_key_allowed(&u, "username", key_a));
    users_clear(&u);
}

static void authorized_keys_user_is_comment(void **state)
{
    struct users u;

    (void)state;
    users_init(&u, NULL);
    parse_authorized(&u, "# comment\n" KEY_A " alice\n\n" KEY_B " bob\n"
                     KEY_B " alice");
    assert_int_equal(u.count, 3);
    assert_int_equal(u.rejected_lines, 0);
    assert_true(users_key_allowed(&u, "alice", key_a));
    assert_true(users_key_allowed(&u, "alice", key_b));
    assert_true(users_key_allowed(&u, "bob", key_b));
    assert_false(users_key_allowed(&u, "bob", key_a));
    users_clear(&u);
}

static void authorized_keys_options_are_rejected(void **state)
{
    struct users u;

    (void)state;
    users_init(&u, NULL);
    parse_authorized(&u, "restrict " KEY_A " alice\n"
                     "from=\"10.0.0.1, 10.0.0.2\",no-pty " KEY_A " bob\n"
                     "command=\"echo ssh-ed25519\" " KEY_B " carol\n");
    assert_int_equal(u.count, 0);
    assert_int_equal(u.rejected_lines, 3);
    assert_false(users_exists(&u, "alice"));
    assert_false(users_exists(&u, "bob"));
    assert_false(users_exists(&u, "carol"));
    users_clear(&u);
}

static void malformed_lines_are_skipped(void **state)
{
    struct users u;

    (void)state;
    users_init(&u, NULL);
    parse_authorized(&u, "garbage\n"
                     KEY_BROKEN " alice\n"
                     KEY_A "\n"
                     KEY_A " two words\n"
                     "ssh-dss AAAAB3NzaC1kc3MAAACBAP alice\n"
                     KEY_B " bob\n");
    assert_int_equal(u.rejected_lines, 5);
    assert_int_equal(u.count, 1);
    assert_false(users_exists(&u, "alice"));
    assert_false(users_exists(&u, "two"));
    assert_true(users_key_allowed(&u, "bob", key_b));
    users_clear(&u);
    assert_int_equal(u.rejected_lines, 0);
}

static void nul_byte_line_is_rejected(void **state)
{
    static const char text[] = KEY_A " alice\0x\n" KEY_B " bob\n";
    struct users u;

    (void)state;
    users_init(&u, NULL);
    users_parse_authorized_keys(&u, "/authorized_keys", text,
                                sizeof(text) - 1);
    assert_int_equal(u.rejected_lines, 1);
    assert_int_equal(u.count, 1);
    assert_true(users_key_allowed(&u, "bob", key_b));
    users_clear(&u);
}

static void reserved_user_lines_are_skipped(void **state)
{
    struct users u;

    (void)state;
    users_init(&u, "mirage");
    parse_pub(&u, "mirage", KEY_A "\n");
    parse_authorized(&u, KEY_B " mirage\n" KEY_B " alice\n");
    assert_int_equal(u.rejected_lines, 0);
    assert_int_equal(u.count, 1);
    assert_false(users_exists(&u, "mirage"));
    assert_true(users_key_allowed(&u, "alice", key_b));
    users_clear(&u);
}

/// Reading an image ///

static void write_file(struct lfs *lfs, const char *path, const char *text,
                       size_t len)
{
    struct lfs_file *file;

    assert_int_equal(lfs_file_open(lfs, &file, path,
                                   LFS_O_WRONLY | LFS_O_CREAT), 0);
    assert_int_equal(lfs_file_write(file, text, len), (ssize_t)len);
    assert_int_equal(lfs_file_close(file), 0);
}

static void image_root_files_are_read(void **state)
{
    static const char pub[] = KEY_A " laptop";
    static const char authorized[] = KEY_B " bob\nrestrict " KEY_A " eve\n";
    struct lfs_format_options fopts = { .block_size = 512 };
    struct bd *bd = bd_mem_new(512 * 512);
    struct lfs *lfs = NULL;
    struct users u;
    char *big;

    (void)state;
    assert_non_null(bd);
    assert_int_equal(lfs_format(bd, &fopts), 0);
    assert_int_equal(lfs_mount(&lfs, bd, NULL), 0);
    write_file(lfs, "/alice.pub", pub, strlen(pub));
    write_file(lfs, "/authorized_keys", authorized, strlen(authorized));
    /* Not read: a directory, a file in a subdirectory, a bare ".pub",
     * and a file over the size limit. */
    assert_int_equal(lfs_mkdir(lfs, "/dir.pub"), 0);
    assert_int_equal(lfs_mkdir(lfs, "/sub"), 0);
    write_file(lfs, "/sub/carol.pub", pub, strlen(pub));
    write_file(lfs, "/.pub", pub, strlen(pub));
    big = malloc(USERS_FILE_MAX + 1);
    assert_non_null(big);
    memset(big, '#', USERS_FILE_MAX + 1);
    memcpy(big, KEY_A "\n", strlen(KEY_A) + 1);
    write_file(lfs, "/big.pub", big, USERS_FILE_MAX + 1);
    free(big);

    users_init(&u, NULL);
    users_load_image(&u, lfs);
    assert_int_equal(u.count, 2);
    assert_int_equal(u.rejected_lines, 1);
    assert_true(users_key_allowed(&u, "alice", key_a));
    assert_true(users_key_allowed(&u, "bob", key_b));
    assert_false(users_exists(&u, "eve"));
    assert_false(users_exists(&u, "carol"));
    assert_false(users_exists(&u, "big"));
    assert_false(users_exists(&u, "dir"));

    /* A second reading replaces the first one. */
    assert_int_equal(lfs_remove(lfs, "/alice.pub"), 0);
    users_load_image(&u, lfs);
    assert_int_equal(u.count, 1);
    assert_false(users_exists(&u, "alice"));
    assert_true(users_key_allowed(&u, "bob", key_b));

    users_free(&u);
    assert_int_equal(lfs_unmount(lfs), 0);
    bd_close(bd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pub_file_keys_belong_to_file_name),
        cmocka_unit_test(pub_file_without_newline_is_read),
        cmocka_unit_test(authorized_keys_user_is_comment),
        cmocka_unit_test(authorized_keys_options_are_rejected),
        cmocka_unit_test(malformed_lines_are_skipped),
        cmocka_unit_test(nul_byte_line_is_rejected),
        cmocka_unit_test(reserved_user_lines_are_skipped),
        cmocka_unit_test(image_root_files_are_read),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
