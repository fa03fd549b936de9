/*
 * sshfsd's command line: defaults, the original unikernel's flags, this
 * server's own flags, size suffixes and rejected combinations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/options.h"

#define PARSE(opts, ...)                                                  \
    ({                                                                    \
        char *argv[] = { "sshfsd", __VA_ARGS__, NULL };                   \
        options_parse((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv,   \
                      (opts));                                            \
    })

static void defaults_match_the_original(void **state)
{
    struct server_options o;
    char *argv[] = { "sshfsd", NULL };

    (void)state;
    assert_int_equal(options_parse(1, argv, &o), OPTIONS_OK);
    assert_string_equal(o.image, "disk.img");
    assert_int_equal(o.port, 18022);
    assert_string_equal(o.user, "mirage");
    assert_null(o.key);
    assert_null(o.seed);
    assert_int_equal(o.listen_count, 0);
    assert_int_equal(o.log_level, LOG_LEVEL_INFO);
    assert_int_equal(o.max_connections, 64);
    assert_int_equal(o.max_startups, 10);
    assert_int_equal(o.rekey_bytes, 0);
    assert_false(o.read_only);
}

static void original_flags_are_understood(void **state)
{
    struct server_options o;

    (void)state;
    assert_int_equal(PARSE(&o, "--port", "22022", "--user", "username",
                           "--seed", "111213", "--blockkey",
                           "1234567890ABCDEF1234567890ABCDEF", "-l", "debug",
                           "--key", "ssh-ed25519 AAAA x", "encrypted.img"),
                     OPTIONS_OK);
    assert_int_equal(o.port, 22022);
    assert_string_equal(o.user, "username");
    assert_string_equal(o.seed, "111213");
    assert_string_equal(o.blockkey_hex, "1234567890ABCDEF1234567890ABCDEF");
    assert_int_equal(o.log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(o.key, "ssh-ed25519 AAAA x");
    assert_string_equal(o.image, "encrypted.img");
}

static void own_flags_are_understood(void **state)
{
    struct server_options o;

    (void)state;
    assert_int_equal(PARSE(&o, "--listen", "127.0.0.1", "--listen", "::1",
                           "--host-key", "/k", "--read-only",
                           "--rekey-limit", "64M", "--rekey-interval", "30",
                           "--login-grace-time", "5", "--max-connections",
                           "3", "--max-startups", "2", "-l", "warning"),
                     OPTIONS_OK);
    assert_int_equal(o.listen_count, 2);
    assert_string_equal(o.listen[0], "127.0.0.1");
    assert_string_equal(o.listen[1], "::1");
    assert_string_equal(o.host_key_file, "/k");
    assert_true(o.read_only);
    assert_int_equal(o.rekey_bytes, 64ull * 1024 * 1024);
    assert_int_equal(o.rekey_interval_ms, 30000);
    assert_int_equal(o.login_grace_ms, 5000);
    assert_int_equal(o.max_connections, 3);
    assert_int_equal(o.max_startups, 2);
    assert_int_equal(o.log_level, LOG_LEVEL_WARN);

    assert_int_equal(PARSE(&o, "--rekey-limit", "1G"), OPTIONS_OK);
    assert_int_equal(o.rekey_bytes, 1ull << 30);
    assert_int_equal(PARSE(&o, "--rekey-limit", "65536"), OPTIONS_OK);
    assert_int_equal(o.rekey_bytes, 65536);
}

static void invalid_values_are_rejected(void **state)
{
    struct server_options o;

    (void)state;
    assert_int_equal(PARSE(&o, "--port", "0"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--port", "65536"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--port", "22x"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--port", "-1"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--rekey-limit", "1K"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--rekey-limit", "5T"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "-l", "verbose"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--max-connections", "0"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--no-such-flag"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "a.img", "b.img"), OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--seed", "x", "--host-key", "k"),
                     OPTIONS_USAGE);
    assert_int_equal(PARSE(&o, "--blockkey", "00", "--blockkey-file", "f"),
                     OPTIONS_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_the_original),
        cmocka_unit_test(original_flags_are_understood),
        cmocka_unit_test(own_flags_are_understood),
        cmocka_unit_test(invalid_values_are_rejected),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
