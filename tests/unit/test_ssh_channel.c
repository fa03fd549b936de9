/*
 * Session channels: subsystems, refused requests and channel types,
 * global requests, windows and maximum packets in both directions,
 * EOF and CLOSE, several channels, and re-keying with data in flight.
 * The subsystem is the test client's "echo".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ssh_test_client.h"

/* The client's channel number (stc_open_session uses 7). */
#define CLIENT_CHANNEL 7

static void start(struct stc *c, const struct stc_options *o)
{
    stc_init(c, o);
    stc_handshake(c);
    stc_login(c);
}

static void send_data(struct stc *c, uint32_t channel, const void *data,
                      size_t len)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_CHANNEL_DATA);
    wb_u32(&msg, channel);
    wb_string(&msg, data, len);
    stc_send_wb(c, &msg);
    wb_free(&msg);
}

static void send_channel_msg(struct stc *c, uint8_t type, uint32_t channel)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, type);
    wb_u32(&msg, channel);
    stc_send_wb(c, &msg);
    wb_free(&msg);
}

static void send_window_adjust(struct stc *c, uint32_t channel,
                               uint32_t bytes)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_CHANNEL_WINDOW_ADJUST);
    wb_u32(&msg, channel);
    wb_u32(&msg, bytes);
    stc_send_wb(c, &msg);
    wb_free(&msg);
}

static void global_request(struct stc *c, const char *name, bool want_reply)
{
    struct wbuf msg;

    wb_init(&msg, 0);
    wb_u8(&msg, SSH_MSG_GLOBAL_REQUEST);
    wb_cstring(&msg, name);
    wb_bool(&msg, want_reply);
    stc_send_wb(c, &msg);
    wb_free(&msg);
}

/* Collect CHANNEL_DATA for our channel into out until none is waiting;
 * returns the largest data length of one message.  Window adjustments
 * from the server are added to *adjusted when it is not NULL.  Any
 * other message fails the test. */
static size_t collect_data(struct stc *c, struct wbuf *out,
                           uint64_t *adjusted)
{
    struct wbuf msg;
    size_t largest = 0;

    wb_init(&msg, 0);
    while (stc_recv(c, &msg) == 1) {
        uint8_t type = msg.data[0];
        if (type == SSH_MSG_EXT_INFO || type == SSH_MSG_IGNORE)
            continue;
        if (type == SSH_MSG_CHANNEL_WINDOW_ADJUST && adjusted) {
            *adjusted += get_be32(msg.data + 5);
            continue;
        }
        assert_int_equal(type, SSH_MSG_CHANNEL_DATA);
        assert_int_equal(get_be32(msg.data + 1), CLIENT_CHANNEL);
        uint32_t len = get_be32(msg.data + 5);
        assert_int_equal(msg.len, 9 + len);
        wb_bytes(out, msg.data + 9, len);
        if (len > largest)
            largest = len;
    }
    wb_free(&msg);
    return largest;
}

static uint32_t open_echo(struct stc *c, uint32_t window,
                          uint32_t max_packet)
{
    uint32_t ch = stc_open_session(c, window, max_packet);

    assert_int_equal(stc_channel_request(c, ch, "subsystem", true, "echo"),
                     SSH_MSG_CHANNEL_SUCCESS);
    return ch;
}

static void fill_pattern(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7 + i / 251);
}

static void subsystem_echoes_data(void **state)
{
    struct stc c;
    struct wbuf got;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&got, 0);
    ch = open_echo(&c, 1 << 20, 32768);
    assert_true(stc_log_has(&c, "Accepted subsystem request for echo by "
                                "user alice"));
    send_data(&c, ch, "hello", 5);
    collect_data(&c, &got, NULL);
    assert_int_equal(got.len, 5);
    assert_memory_equal(got.data, "hello", 5);
    wb_free(&got);
    stc_free(&c);
}

static void shells_commands_and_forwarding_are_refused(void **state)
{
    static const char *const requests[] = {
        "exec", "shell", "pty-req", "x11-req",
        "auth-agent-req@openssh.com", "keepalive@openssh.com",
    };
    static const char *const types[] = {
        "direct-tcpip", "x11", "forwarded-tcpip",
        "direct-streamlocal@openssh.com",
    };
    struct stc c;
    struct wbuf msg;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&msg, 0);
    ch = stc_open_session(&c, 1 << 20, 32768);
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
        assert_int_equal(stc_channel_request(&c, ch, requests[i], true,
                                             "x"),
                         SSH_MSG_CHANNEL_FAILURE);
    assert_int_equal(stc_channel_request(&c, ch, "subsystem", true,
                                         "netconf"),
                     SSH_MSG_CHANNEL_FAILURE);
    assert_true(stc_log_has(&c, "rejected channel request exec from user "
                                "alice"));

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        wb_reset(&msg);
        wb_u8(&msg, SSH_MSG_CHANNEL_OPEN);
        wb_cstring(&msg, types[i]);
        wb_u32(&msg, 42);
        wb_u32(&msg, 1 << 20);
        wb_u32(&msg, 32768);
        stc_send_wb(&c, &msg);
        stc_expect(&c, SSH_MSG_CHANNEL_OPEN_FAILURE, &msg);
        assert_int_equal(get_be32(msg.data + 1), 42);
        assert_int_equal(get_be32(msg.data + 5),
                         SSH_OPEN_ADMINISTRATIVELY_PROHIBITED);
    }
    global_request(&c, "tcpip-forward", true);
    stc_expect(&c, SSH_MSG_REQUEST_FAILURE, &msg);
    wb_free(&msg);
    stc_free(&c);
}

/* env and no-more-sessions come without want-reply and get no reply:
 * the next message is the reply to the request after them. */
static void requests_without_want_reply_get_no_reply(void **state)
{
    struct stc c;
    struct wbuf msg;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&msg, 0);
    ch = stc_open_session(&c, 1 << 20, 32768);
    assert_int_equal(stc_channel_request(&c, ch, "env", false, "LANG"), 0);
    assert_int_equal(stc_channel_request(&c, ch, "subsystem", true, "echo"),
                     SSH_MSG_CHANNEL_SUCCESS);
    /* A second subsystem on the same channel is refused. */
    assert_int_equal(stc_channel_request(&c, ch, "subsystem", true, "echo"),
                     SSH_MSG_CHANNEL_FAILURE);

    global_request(&c, "no-more-sessions@openssh.com", false);
    global_request(&c, "keepalive@openssh.com", true);
    stc_expect(&c, SSH_MSG_REQUEST_FAILURE, &msg);
    assert_int_equal(msg.len, 1);

    /* After no-more-sessions, new session channels are refused. */
    wb_reset(&msg);
    wb_u8(&msg, SSH_MSG_CHANNEL_OPEN);
    wb_cstring(&msg, "session");
    wb_u32(&msg, 8);
    wb_u32(&msg, 1 << 20);
    wb_u32(&msg, 32768);
    stc_send_wb(&c, &msg);
    stc_expect(&c, SSH_MSG_CHANNEL_OPEN_FAILURE, &msg);
    assert_int_equal(get_be32(msg.data + 5),
                     SSH_OPEN_ADMINISTRATIVELY_PROHIBITED);
    wb_free(&msg);
    stc_free(&c);
}

/* Output waits for the client's window while input keeps being read: a
 * request sent behind the blocked data is still answered. */
static void output_waits_for_window_but_input_flows(void **state)
{
    uint8_t data[5000];
    struct stc c;
    struct wbuf got, msg;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&got, 0);
    wb_init(&msg, 0);
    fill_pattern(data, sizeof(data));
    ch = open_echo(&c, 1000, 32768);
    send_data(&c, ch, data, sizeof(data));
    collect_data(&c, &got, NULL);
    assert_int_equal(got.len, 1000);

    global_request(&c, "keepalive@openssh.com", true);
    stc_expect(&c, SSH_MSG_REQUEST_FAILURE, &msg);

    send_window_adjust(&c, ch, 1500);
    collect_data(&c, &got, NULL);
    assert_int_equal(got.len, 2500);
    send_window_adjust(&c, ch, 1 << 20);
    collect_data(&c, &got, NULL);
    assert_int_equal(got.len, sizeof(data));
    assert_memory_equal(got.data, data, sizeof(data));
    wb_free(&got);
    wb_free(&msg);
    stc_free(&c);
}

static void data_respects_client_max_packet(void **state)
{
    static uint8_t data[100000];
    struct stc c;
    struct wbuf got;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&got, 0);
    fill_pattern(data, sizeof(data));
    ch = open_echo(&c, 1 << 20, 512);
    for (size_t off = 0; off < sizeof(data); off += 20000)
        send_data(&c, ch, data + off, 20000);
    assert_int_equal(collect_data(&c, &got, NULL), 512);
    assert_int_equal(got.len, sizeof(data));
    assert_memory_equal(got.data, data, sizeof(data));
    wb_free(&got);
    stc_free(&c);
}

/* The server gives window back as the subsystem consumes input. */
static void receive_window_is_replenished(void **state)
{
    static uint8_t data[32768];
    struct stc c;
    struct wbuf got;
    uint64_t adjusted = 0, sent = 0;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&got, 0);
    ch = open_echo(&c, UINT32_MAX, 32768);
    /* Three times the initial window, so it must be replenished. */
    while (sent < 3ull * SSH_CHANNEL_WINDOW) {
        send_data(&c, ch, data, sizeof(data));
        sent += sizeof(data);
        collect_data(&c, &got, &adjusted);
        wb_reset(&got);
    }
    assert_true(adjusted >= sent - SSH_CHANNEL_WINDOW);
    assert_int_equal(c.server_status, SSH_OK);
    wb_free(&got);
    stc_free(&c);
}

static void data_beyond_window_disconnects(void **state)
{
    static uint8_t data[65536];
    struct stc c;
    struct wbuf msg;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&msg, 0);
    /* The echo keeps 1000 bytes at most and the client opens no window,
     * so the server never consumes input nor gives window back. */
    c.echo_out_limit = 1000;
    ch = open_echo(&c, 0, 32768);
    for (uint32_t i = 0; i < SSH_CHANNEL_WINDOW / sizeof(data); i++)
        send_data(&c, ch, data, sizeof(data));
    assert_int_equal(c.server_status, SSH_OK);
    send_data(&c, ch, data, 1);
    assert_int_equal(c.server_status, SSH_ERR_PROTOCOL);
    stc_expect(&c, SSH_MSG_DISCONNECT, &msg);
    assert_true(stc_log_has(&c, "channel data exceeds the window"));
    wb_free(&msg);
    stc_free(&c);
}

/* Client EOF: the echo finishes, and the server sends exit-status 0,
 * EOF and CLOSE, then frees the channel on the client's CLOSE. */
static void eof_ends_subsystem_with_exit_status(void **state)
{
    struct stc c;
    struct wbuf msg;
    const uint8_t *name;
    uint32_t name_len, status;
    uint8_t type, want_reply;
    struct rd r;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&msg, 0);
    ch = open_echo(&c, 1 << 20, 32768);
    send_data(&c, ch, "bye", 3);
    send_channel_msg(&c, SSH_MSG_CHANNEL_EOF, ch);

    stc_expect(&c, SSH_MSG_CHANNEL_DATA, &msg);
    assert_int_equal(msg.len, 12);
    stc_expect(&c, SSH_MSG_CHANNEL_REQUEST, &msg);
    rd_init(&r, msg.data, msg.len);
    assert_int_equal(rd_u8(&r, &type), 0);
    assert_int_equal(rd_u32(&r, &status), 0);
    assert_int_equal(status, CLIENT_CHANNEL);
    assert_int_equal(rd_string(&r, &name, &name_len), 0);
    assert_int_equal(name_len, 11);
    assert_memory_equal(name, "exit-status", 11);
    assert_int_equal(rd_u8(&r, &want_reply), 0);
    assert_int_equal(want_reply, 0);
    assert_int_equal(rd_u32(&r, &status), 0);
    assert_int_equal(status, 0);
    stc_expect(&c, SSH_MSG_CHANNEL_EOF, &msg);
    stc_expect(&c, SSH_MSG_CHANNEL_CLOSE, &msg);
    assert_int_equal(get_be32(msg.data + 1), CLIENT_CHANNEL);

    send_channel_msg(&c, SSH_MSG_CHANNEL_CLOSE, ch);
    assert_int_equal(c.server_status, SSH_OK);
    assert_null(c.server->channels[ch]);
    wb_free(&msg);
    stc_free(&c);
}

static void client_close_is_answered(void **state)
{
    struct stc c;
    struct wbuf msg;
    uint32_t ch;

    (void)state;
    start(&c, NULL);
    wb_init(&msg, 0);
    ch = open_echo(&c, 1 << 20, 32768);
    send_channel_msg(&c, SSH_MSG_CHANNEL_CLOSE, ch);
    stc_expect(&c, SSH_MSG_CHANNEL_CLOSE, &msg);
    assert_null(c.server->channels[ch]);
    /* The channel number is free again. */
    assert_int_equal(stc_open_session(&c, 1 << 20, 32768), ch);
    wb_free(&msg);
    stc_free(&c);
}

static void channel_count_is_limited(void **state)
{
    struct stc c;
    struct wbuf msg;

    (void)state;
    start(&c, NULL);
    wb_init(&msg, 0);
    for (int i = 0; i < SSH_CHANNELS_MAX; i++)
        stc_open_session(&c, 1 << 20, 32768);
    wb_u8(&msg, SSH_MSG_CHANNEL_OPEN);
    wb_cstring(&msg, "session");
    wb_u32(&msg, 99);
    wb_u32(&msg, 1 << 20);
    wb_u32(&msg, 32768);
    stc_send_wb(&c, &msg);
    stc_expect(&c, SSH_MSG_CHANNEL_OPEN_FAILURE, &msg);
    assert_int_equal(get_be32(msg.data + 5), SSH_OPEN_RESOURCE_SHORTAGE);
    wb_free(&msg);
    stc_free(&c);
}

static void two_channels_stay_apart(void **state)
{
    struct stc c;
    struct wbuf msg;
    uint32_t a, b;

    (void)state;
    start(&c, NULL);
    wb_init(&msg, 0);
    a = open_echo(&c, 1 << 20, 32768);
    b = open_echo(&c, 1 << 20, 32768);
    assert_int_not_equal(a, b);
    send_data(&c, a, "first", 5);
    send_data(&c, b, "second", 6);
    stc_expect(&c, SSH_MSG_CHANNEL_DATA, &msg);
    assert_int_equal(msg.len, 14);
    assert_memory_equal(msg.data + 9, "first", 5);
    stc_expect(&c, SSH_MSG_CHANNEL_DATA, &msg);
    assert_int_equal(msg.len, 15);
    assert_memory_equal(msg.data + 9, "second", 6);
    wb_free(&msg);
    stc_free(&c);
}

/* A server-started key exchange in the middle of a transfer: channel
 * data is held while it runs and then flows on, in order. */
static void rekey_during_transfer_keeps_data(void **state)
{
    static uint8_t data[600000];
    struct stc_options o = { .rekey_bytes = 100000,
                             .cipher = "aes128-ctr",
                             .mac = "hmac-sha2-256" };
    struct stc c;
    struct wbuf got, msg;
    unsigned rekeys = 0;
    uint32_t ch;

    (void)state;
    start(&c, &o);
    wb_init(&got, 0);
    wb_init(&msg, 0);
    fill_pattern(data, sizeof(data));
    ch = open_echo(&c, UINT32_MAX, 32768);
    for (size_t off = 0; off < sizeof(data); off += 30000) {
        send_data(&c, ch, data + off, 30000);
        while (stc_recv(&c, &msg) == 1) {
            if (msg.data[0] == SSH_MSG_KEXINIT) {
                stc_rekey(&c, &msg);
                rekeys++;
                continue;
            }
            if (msg.data[0] != SSH_MSG_CHANNEL_DATA)
                continue;
            wb_bytes(&got, msg.data + 9, get_be32(msg.data + 5));
        }
    }
    assert_true(rekeys >= 4);
    assert_int_equal(got.len, sizeof(data));
    assert_memory_equal(got.data, data, sizeof(data));
    wb_free(&got);
    wb_free(&msg);
    stc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subsystem_echoes_data),
        cmocka_unit_test(shells_commands_and_forwarding_are_refused),
        cmocka_unit_test(requests_without_want_reply_get_no_reply),
        cmocka_unit_test(output_waits_for_window_but_input_flows),
        cmocka_unit_test(data_respects_client_max_packet),
        cmocka_unit_test(receive_window_is_replenished),
        cmocka_unit_test(data_beyond_window_disconnects),
        cmocka_unit_test(eof_ends_subsystem_with_exit_status),
        cmocka_unit_test(client_close_is_answered),
        cmocka_unit_test(channel_count_is_limited),
        cmocka_unit_test(two_channels_stay_apart),
        cmocka_unit_test(rekey_during_transfer_keeps_data),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
