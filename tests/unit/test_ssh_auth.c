/*
 * Public-key user authentication: queries, signed requests, unknown
 * users answered exactly like wrong keys, the attempt limit, other
 * methods, and messages out of order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ssh_test_client.h"

static void request_userauth_service(struct stc *c)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_SERVICE_REQUEST);
    wb_cstring(&msg, "ssh-userauth");
    stc_send_wb(c, &msg);
    stc_expect(c, SSH_MSG_SERVICE_ACCEPT, &msg);
    wb_free(&msg);
}

static void start(struct stc *c, unsigned max_tries)
{
    struct stc_options o = { .max_auth_tries = max_tries };

    stc_init(c, &o);
    stc_handshake(c);
    request_userauth_service(c);
}

/* The FAILURE message lists publickey only, without partial success. */
static void expect_failure(struct stc *c)
{
    static const uint8_t expected[] = {
        SSH_MSG_USERAUTH_FAILURE, 0, 0, 0, 9, 'p', 'u', 'b', 'l', 'i', 'c',
        'k', 'e', 'y', 0,
    };
    struct wbuf msg;

    wb_init(&msg, 0);
    stc_expect(c, SSH_MSG_USERAUTH_FAILURE, &msg);
    assert_int_equal(msg.len, sizeof(expected));
    assert_memory_equal(msg.data, expected, sizeof(expected));
    wb_free(&msg);
}

static void signed_request_logs_in(void **state)
{
    struct stc c;

    (void)state;
    start(&c, 0);
    assert_false(ssh_session_authenticated(c.server));
    stc_send_publickey(&c, STC_USER, c.user_key, true);
    {
        struct wbuf msg;
        wb_init(&msg, 0);
        stc_expect(&c, SSH_MSG_USERAUTH_SUCCESS, &msg);
        assert_int_equal(msg.len, 1);
        wb_free(&msg);
    }
    assert_true(ssh_session_authenticated(c.server));
    assert_true(stc_log_has(&c, "Accepted publickey for alice from "
                                "127.0.0.1 port 5555 ssh2: ED25519 "
                                "SHA256:"));
    /* The login grace timer no longer applies. */
    assert_int_not_equal(ssh_session_deadline(c.server), 1000 + 60 * 1000);
    stc_free(&c);
}

static void query_for_allowed_key_gets_pk_ok(void **state)
{
    struct stc c;
    struct wbuf msg;
    const uint8_t *alg;
    uint32_t alg_len;
    uint8_t type;
    struct rd r;

    (void)state;
    start(&c, 0);
    wb_init(&msg, 0);
    stc_send_publickey(&c, STC_USER, c.user_key, false);
    stc_expect(&c, SSH_MSG_USERAUTH_PK_OK, &msg);
    rd_init(&r, msg.data, msg.len);
    assert_int_equal(rd_u8(&r, &type), 0);
    assert_int_equal(rd_string(&r, &alg, &alg_len), 0);
    assert_int_equal(alg_len, 11);
    assert_memory_equal(alg, "ssh-ed25519", 11);
    /* A query that succeeds is no failed attempt. */
    assert_int_equal(c.server->auth_failures, 0);
    assert_false(ssh_session_authenticated(c.server));
    wb_free(&msg);
    stc_free(&c);
}

static void wrong_key_and_unknown_user_look_alike(void **state)
{
    struct stc c;
    EVP_PKEY *other = stc_new_key();

    (void)state;
    start(&c, 0);
    stc_send_publickey(&c, STC_USER, other, false);
    expect_failure(&c);
    stc_send_publickey(&c, STC_USER, other, true);
    expect_failure(&c);
    assert_true(stc_log_has(&c, "Failed publickey for alice from "
                                "127.0.0.1 port 5555 ssh2: ED25519"));
    stc_free(&c);

    start(&c, 0);
    stc_send_publickey(&c, "mallory", c.user_key, false);
    expect_failure(&c);
    stc_send_publickey(&c, "mallory", c.user_key, true);
    expect_failure(&c);
    assert_true(stc_log_has(&c, "Invalid user mallory from 127.0.0.1 "
                                "port 5555"));
    assert_true(stc_log_has(&c, "Failed publickey for invalid user mallory "
                                "from 127.0.0.1 port 5555 ssh2: ED25519"));
    assert_false(ssh_session_authenticated(c.server));
    stc_free(&c);
    EVP_PKEY_free(other);
}

static void bad_signature_is_rejected(void **state)
{
    struct stc c;
    struct wbuf msg;
    uint8_t pub[32];
    size_t pub_len = sizeof(pub);
    uint8_t bogus[64];

    (void)state;
    start(&c, 0);
    wb_init(&msg, 0);
    assert_int_equal(EVP_PKEY_get_raw_public_key(c.user_key, pub, &pub_len),
                     1);
    memset(bogus, 0x5a, sizeof(bogus));
    wb_u8(&msg, SSH_MSG_USERAUTH_REQUEST);
    wb_cstring(&msg, STC_USER);
    wb_cstring(&msg, "ssh-connection");
    wb_cstring(&msg, "publickey");
    wb_bool(&msg, true);
    wb_cstring(&msg, "ssh-ed25519");
    wb_u32(&msg, 4 + 11 + 4 + 32);
    wb_cstring(&msg, "ssh-ed25519");
    wb_string(&msg, pub, pub_len);
    wb_u32(&msg, 4 + 11 + 4 + 64);
    wb_cstring(&msg, "ssh-ed25519");
    wb_string(&msg, bogus, sizeof(bogus));
    stc_send_wb(&c, &msg);
    expect_failure(&c);
    assert_false(ssh_session_authenticated(c.server));
    wb_free(&msg);
    stc_free(&c);
}

static void sixth_failure_disconnects(void **state)
{
    struct stc c;
    EVP_PKEY *other = stc_new_key();
    struct wbuf msg;

    (void)state;
    start(&c, 0);
    wb_init(&msg, 0);
    for (int i = 0; i < 5; i++) {
        stc_send_publickey(&c, STC_USER, other, false);
        expect_failure(&c);
    }
    stc_send_publickey(&c, STC_USER, other, false);
    stc_expect(&c, SSH_MSG_DISCONNECT, &msg);
    assert_int_equal(get_be32(msg.data + 1),
                     SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE);
    assert_int_equal(c.server_status, SSH_ERR_AUTH);
    assert_true(stc_log_has(&c, "maximum authentication attempts exceeded "
                                "for alice from 127.0.0.1 port 5555"));
    wb_free(&msg);
    EVP_PKEY_free(other);
    stc_free(&c);
}

static void none_is_not_counted(void **state)
{
    struct stc c;
    struct wbuf msg;

    (void)state;
    start(&c, 2);
    wb_init(&msg, 0);
    for (int i = 0; i < 5; i++) {
        wb_reset(&msg);
        wb_u8(&msg, SSH_MSG_USERAUTH_REQUEST);
        wb_cstring(&msg, STC_USER);
        wb_cstring(&msg, "ssh-connection");
        wb_cstring(&msg, "none");
        stc_send_wb(&c, &msg);
        expect_failure(&c);
    }
    stc_send_publickey(&c, STC_USER, c.user_key, true);
    stc_expect(&c, SSH_MSG_USERAUTH_SUCCESS, &msg);
    wb_free(&msg);
    stc_free(&c);
}

static void password_is_a_failed_attempt(void **state)
{
    struct stc c;
    struct wbuf msg;

    (void)state;
    start(&c, 0);
    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_USERAUTH_REQUEST);
    wb_cstring(&msg, STC_USER);
    wb_cstring(&msg, "ssh-connection");
    wb_cstring(&msg, "password");
    wb_bool(&msg, false);
    wb_cstring(&msg, "secret");
    stc_send_wb(&c, &msg);
    expect_failure(&c);
    assert_int_equal(c.server->auth_failures, 1);
    assert_true(stc_log_has(&c, "Failed password for alice from 127.0.0.1 "
                                "port 5555 ssh2"));
    /* The password itself is never logged. */
    assert_false(stc_log_has(&c, "secret"));
    wb_free(&msg);
    stc_free(&c);
}

static void user_change_disconnects(void **state)
{
    struct stc c;
    EVP_PKEY *other = stc_new_key();
    struct wbuf msg;

    (void)state;
    start(&c, 0);
    wb_init(&msg, 0);
    stc_send_publickey(&c, STC_USER, other, false);
    expect_failure(&c);
    stc_send_publickey(&c, "bob", other, false);
    stc_expect(&c, SSH_MSG_DISCONNECT, &msg);
    assert_true(stc_log_has(&c, "Change of username or service not "
                                "allowed"));
    wb_free(&msg);
    EVP_PKEY_free(other);
    stc_free(&c);
}

static void connection_messages_need_login(void **state)
{
    struct stc c;
    struct wbuf msg;

    (void)state;
    start(&c, 0);
    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_CHANNEL_OPEN);
    wb_cstring(&msg, "session");
    wb_u32(&msg, 0);
    wb_u32(&msg, 1024);
    wb_u32(&msg, 1024);
    stc_send_wb(&c, &msg);
    stc_expect(&c, SSH_MSG_DISCONNECT, &msg);
    assert_int_equal(c.server_status, SSH_ERR_PROTOCOL);
    wb_free(&msg);
    stc_free(&c);
}

static void userauth_needs_service_request(void **state)
{
    struct stc c;
    struct wbuf msg;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    wb_init(&msg, 0);
    stc_send_publickey(&c, STC_USER, c.user_key, true);
    stc_expect(&c, SSH_MSG_DISCONNECT, &msg);
    assert_false(ssh_session_authenticated(c.server));
    wb_free(&msg);
    stc_free(&c);

    stc_init(&c, NULL);
    stc_handshake(&c);
    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_SERVICE_REQUEST);
    wb_cstring(&msg, "ssh-connection");
    stc_send_wb(&c, &msg);
    stc_expect(&c, SSH_MSG_DISCONNECT, &msg);
    assert_int_equal(get_be32(msg.data + 1),
                     SSH_DISCONNECT_SERVICE_NOT_AVAILABLE);
    wb_free(&msg);
    stc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signed_request_logs_in),
        cmocka_unit_test(query_for_allowed_key_gets_pk_ok),
        cmocka_unit_test(wrong_key_and_unknown_user_look_alike),
        cmocka_unit_test(bad_signature_is_rejected),
        cmocka_unit_test(sixth_failure_disconnects),
        cmocka_unit_test(none_is_not_counted),
        cmocka_unit_test(password_is_a_failed_attempt),
        cmocka_unit_test(user_change_disconnects),
        cmocka_unit_test(connection_messages_need_login),
        cmocka_unit_test(userauth_needs_service_request),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
