/*
 * The SSH transport as a state machine, driven by the in-process test
 * client: key exchange with every cipher, strict key exchange, EXT_INFO,
 * re-keying started by either side, sequence numbers, corrupted packets,
 * unknown messages and the login grace time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ssh_test_client.h"

/* The reason code of the DISCONNECT the server sent next. */
static uint32_t expect_disconnect(struct stc *c)
{
    struct wbuf msg;
    uint32_t reason;

    wb_init(&msg, 0);
    stc_expect(c, SSH_MSG_DISCONNECT, &msg);
    assert_true(msg.len >= 5);
    reason = get_be32(msg.data + 1);
    wb_free(&msg);
    return reason;
}

/* Nothing but IGNORE, DEBUG or EXT_INFO is waiting from the server. */
static void expect_nothing(struct stc *c)
{
    struct wbuf msg;
    int r;

    wb_init(&msg, 0);
    while ((r = stc_recv(c, &msg)) == 1)
        assert_true(msg.data[0] == SSH_MSG_EXT_INFO ||
                    msg.data[0] == SSH_MSG_IGNORE);
    assert_int_equal(r, 0);
    wb_free(&msg);
}

static void send_ignore(struct stc *c)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_IGNORE);
    wb_cstring(&msg, "padding");
    stc_send_wb(c, &msg);
    wb_free(&msg);
}

/* After login, a global request with want_reply gets REQUEST_FAILURE:
 * proof that both directions still work. */
static void check_link_alive(struct stc *c)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_GLOBAL_REQUEST);
    wb_cstring(&msg, "keepalive@openssh.com");
    wb_bool(&msg, true);
    stc_send_wb(c, &msg);
    stc_expect(c, SSH_MSG_REQUEST_FAILURE, &msg);
    wb_free(&msg);
}

static void login_with(const char *cipher, const char *mac)
{
    struct stc_options o = { .cipher = cipher, .mac = mac };
    struct stc c;

    stc_init(&c, &o);
    stc_handshake(&c);
    stc_login(&c);
    check_link_alive(&c);
    assert_true(ssh_session_authenticated(c.server));
    stc_free(&c);
}

static void login_works_with_every_cipher(void **state)
{
    (void)state;
    login_with("chacha20-poly1305@openssh.com", NULL);
    login_with("aes128-gcm@openssh.com", NULL);
    login_with("aes256-gcm@openssh.com", NULL);
    login_with("aes128-ctr", "hmac-sha2-256-etm@openssh.com");
    login_with("aes128-ctr", "hmac-sha2-512-etm@openssh.com");
    login_with("aes256-ctr", "hmac-sha2-256");
    login_with("aes256-ctr", "hmac-sha2-512");
}

static void ext_info_follows_first_newkeys(void **state)
{
    struct stc c;
    struct wbuf msg;
    const uint8_t *name, *value;
    uint32_t count, name_len, value_len;
    uint8_t type;
    struct rd r;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    wb_init(&msg, 0);
    assert_int_equal(stc_recv(&c, &msg), 1);
    rd_init(&r, msg.data, msg.len);
    assert_int_equal(rd_u8(&r, &type), 0);
    assert_int_equal(type, SSH_MSG_EXT_INFO);
    assert_int_equal(rd_u32(&r, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(rd_string(&r, &name, &name_len), 0);
    assert_int_equal(name_len, strlen("server-sig-algs"));
    assert_memory_equal(name, "server-sig-algs", name_len);
    assert_int_equal(rd_string(&r, &value, &value_len), 0);
    assert_int_equal(value_len, strlen(ssh_sig_alg_names));
    assert_memory_equal(value, ssh_sig_alg_names, value_len);
    wb_free(&msg);
    stc_free(&c);
}

static void ext_info_only_when_client_asks(void **state)
{
    struct stc_options o = { .no_ext_info = true };
    struct stc c;
    struct wbuf msg;

    (void)state;
    stc_init(&c, &o);
    stc_handshake(&c);
    wb_init(&msg, 0);
    assert_int_equal(stc_recv(&c, &msg), 0);
    wb_free(&msg);
    stc_login(&c);
    check_link_alive(&c);
    stc_free(&c);
}

/* Under strict kex, an IGNORE between KEXINIT and NEWKEYS (the Terrapin
 * attack's tool) ends the connection. */
static void strict_kex_rejects_ignore_before_newkeys(void **state)
{
    struct stc c;
    struct wbuf i_s, msg;

    (void)state;
    stc_init(&c, NULL);
    wb_init(&i_s, 0);
    wb_init(&msg, 0);
    c.strict = true;
    stc_feed(&c, "SSH-2.0-stc_test\r\n", 18);
    stc_expect(&c, SSH_MSG_KEXINIT, &i_s);

    wb_u8(&msg, SSH_MSG_KEXINIT);
    wb_bytes(&msg, "0123456789abcdef", 16);
    wb_cstring(&msg, "curve25519-sha256,kex-strict-c-v00@openssh.com");
    wb_cstring(&msg, "ssh-ed25519");
    wb_cstring(&msg, "aes128-ctr");
    wb_cstring(&msg, "aes128-ctr");
    wb_cstring(&msg, "hmac-sha2-256");
    wb_cstring(&msg, "hmac-sha2-256");
    wb_cstring(&msg, "none");
    wb_cstring(&msg, "none");
    wb_cstring(&msg, "");
    wb_cstring(&msg, "");
    wb_bool(&msg, false);
    wb_u32(&msg, 0);
    stc_send_wb(&c, &msg);
    send_ignore(&c);

    assert_int_equal(expect_disconnect(&c), SSH_DISCONNECT_PROTOCOL_ERROR);
    assert_int_equal(c.server_status, SSH_ERR_PROTOCOL);
    assert_true(stc_log_has(&c, "strict key exchange violation"));
    wb_free(&i_s);
    wb_free(&msg);
    stc_free(&c);
}

static void strict_kex_requires_kexinit_first(void **state)
{
    struct stc c;
    struct wbuf i_s, i_c, msg;

    (void)state;
    stc_init(&c, NULL);
    wb_init(&i_s, 0);
    wb_init(&i_c, 0);
    wb_init(&msg, 0);
    stc_feed(&c, "SSH-2.0-stc_test\r\n", 18);
    stc_expect(&c, SSH_MSG_KEXINIT, &i_s);
    send_ignore(&c);
    /* Accepted so far: the server cannot know yet that kex is strict. */
    assert_int_equal(c.server_status, SSH_OK);

    wb_u8(&i_c, SSH_MSG_KEXINIT);
    wb_bytes(&i_c, "0123456789abcdef", 16);
    wb_cstring(&i_c, "curve25519-sha256,kex-strict-c-v00@openssh.com");
    for (int i = 0; i < 5; i++)
        wb_cstring(&i_c, i == 0 ? "ssh-ed25519"
                                : (i < 3 ? "aes128-gcm@openssh.com"
                                         : "hmac-sha2-256"));
    wb_cstring(&i_c, "none");
    wb_cstring(&i_c, "none");
    wb_cstring(&i_c, "");
    wb_cstring(&i_c, "");
    wb_bool(&i_c, false);
    wb_u32(&i_c, 0);
    stc_send_wb(&c, &i_c);
    assert_int_equal(expect_disconnect(&c), SSH_DISCONNECT_PROTOCOL_ERROR);
    assert_true(stc_log_has(&c, "KEXINIT was not the first packet"));
    wb_free(&i_s);
    wb_free(&i_c);
    wb_free(&msg);
    stc_free(&c);
}

/* Without strict kex, IGNORE during the first exchange is allowed and
 * sequence numbers keep counting across NEWKEYS. */
static void non_strict_kex_allows_ignore(void **state)
{
    struct stc_options o = { .no_strict = true };
    struct stc c;
    struct wbuf i_s;

    (void)state;
    stc_init(&c, &o);
    wb_init(&i_s, 0);
    stc_feed(&c, "SSH-2.0-stc_test\r\n", 18);
    send_ignore(&c);
    assert_int_equal(c.server_status, SSH_OK);
    stc_free(&c);
    wb_free(&i_s);

    stc_init(&c, &o);
    stc_handshake(&c);
    /* Non-strict: the client's numbering went on from the handshake. */
    assert_true(c.seq_out > 2);
    stc_login(&c);
    check_link_alive(&c);
    stc_free(&c);
}

static void strict_kex_resets_sequence_numbers(void **state)
{
    struct stc c;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    assert_int_equal(c.seq_out, 0);
    stc_login(&c);
    stc_rekey(&c, NULL);
    assert_int_equal(c.seq_out, 0);
    check_link_alive(&c);
    stc_free(&c);
}

static void client_rekey_keeps_session(void **state)
{
    struct stc c;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    stc_login(&c);
    for (int i = 0; i < 3; i++) {
        stc_rekey(&c, NULL);
        check_link_alive(&c);
    }
    assert_true(stc_log_has(&c, "re-key 3 started by the client"));
    stc_free(&c);
}

static void server_rekeys_after_byte_limit(void **state)
{
    struct stc_options o = { .rekey_bytes = 64 * 1024 };
    struct stc c;
    struct wbuf msg, kexinit;
    uint8_t junk[8192] = { 0 };

    (void)state;
    stc_init(&c, &o);
    stc_handshake(&c);
    stc_login(&c);
    wb_init(&msg, 0);
    wb_init(&kexinit, 0);

    /* IGNORE messages count like any other bytes. */
    for (int i = 0; i < 9; i++) {
        wb_reset(&msg);
        wb_u8(&msg, SSH_MSG_IGNORE);
        wb_string(&msg, junk, sizeof(junk));
        stc_send_wb(&c, &msg);
    }
    stc_expect(&c, SSH_MSG_KEXINIT, &kexinit);
    assert_true(stc_log_has(&c, "started by the server"));
    stc_rekey(&c, &kexinit);
    check_link_alive(&c);
    wb_free(&msg);
    wb_free(&kexinit);
    stc_free(&c);
}

static void server_rekeys_after_one_hour(void **state)
{
    struct stc c;
    struct wbuf kexinit;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    stc_login(&c);
    wb_init(&kexinit, 0);
    assert_int_equal(ssh_session_deadline(c.server), c.now + 3600 * 1000);
    stc_run(&c, c.now + 3600 * 1000 - 1);
    expect_nothing(&c);
    stc_run(&c, c.now + 1);
    stc_expect(&c, SSH_MSG_KEXINIT, &kexinit);
    stc_rekey(&c, &kexinit);
    check_link_alive(&c);
    wb_free(&kexinit);
    stc_free(&c);
}

static void corrupted_packet_disconnects(void **state)
{
    const char *ciphers[] = { "chacha20-poly1305@openssh.com",
                              "aes256-gcm@openssh.com", "aes128-ctr" };

    (void)state;
    for (int i = 0; i < 3; i++) {
        struct stc_options o = { .cipher = ciphers[i],
                                 .mac = "hmac-sha2-256" };
        struct stc c;
        uint8_t pkt[256];
        struct wbuf msg;

        stc_init(&c, &o);
        stc_handshake(&c);
        wb_init(&msg, 0);

        /* A sealed IGNORE with one bit flipped in its last byte (the tag
         * or MAC).  Its length is aligned as each mode requires. */
        memset(pkt, 0, sizeof(pkt));
        size_t len = ssh_crypt_aad(c.tx) ? 32 : 28;
        size_t tag = ssh_crypt_tag_len(c.tx);
        put_be32(pkt, (uint32_t)len);
        pkt[4] = 4;
        pkt[5] = SSH_MSG_IGNORE;
        assert_int_equal(ssh_crypt_seal(c.tx, c.seq_out, pkt, len), 0);
        pkt[4 + len + tag - 1] ^= 1;
        stc_feed(&c, pkt, 4 + len + tag);

        assert_int_equal(c.server_status, SSH_ERR_MAC);
        assert_int_equal(expect_disconnect(&c), SSH_DISCONNECT_MAC_ERROR);
        wb_free(&msg);
        stc_free(&c);
    }
}

static void oversized_packet_disconnects(void **state)
{
    struct stc_options o = { .cipher = "aes128-gcm@openssh.com" };
    struct stc c;
    uint8_t header[4];
    struct wbuf msg;

    (void)state;
    stc_init(&c, &o);
    stc_handshake(&c);
    wb_init(&msg, 0);
    put_be32(header, SSH_PACKET_MAX + 16);
    stc_feed(&c, header, 4);
    assert_int_equal(c.server_status, SSH_ERR_PROTOCOL);
    assert_int_equal(expect_disconnect(&c), SSH_DISCONNECT_PROTOCOL_ERROR);
    wb_free(&msg);
    stc_free(&c);
}

static void unknown_message_gets_unimplemented(void **state)
{
    struct stc c;
    struct wbuf msg;
    uint32_t seq;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    stc_login(&c);
    wb_init(&msg, 0);
    seq = c.seq_out;
    wb_u8(&msg, 200);
    wb_cstring(&msg, "future");
    stc_send_wb(&c, &msg);
    stc_expect(&c, SSH_MSG_UNIMPLEMENTED, &msg);
    assert_int_equal(msg.len, 5);
    assert_int_equal(get_be32(msg.data + 1), seq);
    check_link_alive(&c);
    wb_free(&msg);
    stc_free(&c);
}

static void login_grace_time_disconnects(void **state)
{
    struct stc c;
    struct wbuf msg;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    wb_init(&msg, 0);
    assert_int_equal(ssh_session_deadline(c.server), 1000 + 60 * 1000);
    stc_run(&c, 1000 + 60 * 1000 - 1);
    expect_nothing(&c);
    stc_run(&c, 1000 + 60 * 1000);
    assert_int_equal(c.server_status, SSH_ERR_TIMEOUT);
    assert_int_equal(expect_disconnect(&c), SSH_DISCONNECT_PROTOCOL_ERROR);
    assert_true(stc_log_has(&c, "Timeout before authentication for "
                                "127.0.0.1 port 5555"));
    assert_true(ssh_session_done(c.server));
    wb_free(&msg);
    stc_free(&c);
}

static void peer_disconnect_ends_session(void **state)
{
    struct stc c;
    struct wbuf msg;

    (void)state;
    stc_init(&c, NULL);
    stc_handshake(&c);
    stc_login(&c);
    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_DISCONNECT);
    wb_u32(&msg, SSH_DISCONNECT_BY_APPLICATION);
    wb_cstring(&msg, "bye\n\x01");
    wb_cstring(&msg, "");
    stc_send_wb(&c, &msg);
    assert_int_equal(c.server_status, SSH_ERR_CLOSED);
    assert_true(ssh_session_done(c.server));
    /* Control characters from the peer never reach the log. */
    assert_true(stc_log_has(&c, "Received disconnect from 127.0.0.1 port "
                                "5555:11: bye??"));
    wb_free(&msg);
    stc_free(&c);
}

static void version_line_limits(void **state)
{
    struct stc c;
    char line[300];

    (void)state;
    stc_init(&c, NULL);
    memset(line, 'x', sizeof(line));
    stc_feed(&c, line, sizeof(line));
    assert_int_equal(c.server_status, SSH_ERR_TOO_LARGE);
    assert_true(ssh_session_done(c.server) ||
                !ssh_session_wants_input(c.server));
    stc_free(&c);

    stc_init(&c, NULL);
    stc_feed(&c, "SSH-1.5-old\r\n", 13);
    assert_int_equal(c.server_status, SSH_ERR_VERSION);
    stc_free(&c);

    /* Other lines may come first, up to a bound. */
    stc_init(&c, NULL);
    stc_feed(&c, "hello\r\nSSH-2.0-late\r\n", 21);
    assert_int_equal(c.server_status, SSH_OK);
    stc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(login_works_with_every_cipher),
        cmocka_unit_test(ext_info_follows_first_newkeys),
        cmocka_unit_test(ext_info_only_when_client_asks),
        cmocka_unit_test(strict_kex_rejects_ignore_before_newkeys),
        cmocka_unit_test(strict_kex_requires_kexinit_first),
        cmocka_unit_test(non_strict_kex_allows_ignore),
        cmocka_unit_test(strict_kex_resets_sequence_numbers),
        cmocka_unit_test(client_rekey_keeps_session),
        cmocka_unit_test(server_rekeys_after_byte_limit),
        cmocka_unit_test(server_rekeys_after_one_hour),
        cmocka_unit_test(corrupted_packet_disconnects),
        cmocka_unit_test(oversized_packet_disconnects),
        cmocka_unit_test(unknown_message_gets_unimplemented),
        cmocka_unit_test(login_grace_time_disconnects),
        cmocka_unit_test(peer_disconnect_ends_session),
        cmocka_unit_test(version_line_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
