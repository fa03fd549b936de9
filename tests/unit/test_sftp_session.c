/*
 * SFTP session framing and bad input: requests before INIT, a second
 * INIT, packets of invalid length, truncated requests, pipelining, and
 * the bounds on the memory a client can make the session hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sftp/sftp_internal.h"
#include "sftp_test_client.h"

/* Append a framed packet to w: length, type, then body. */
static void frame(struct wbuf *w, uint8_t type, const void *body, size_t len)
{
    assert_int_equal(wb_u32(w, (uint32_t)(1 + len)), 0);
    assert_int_equal(wb_u8(w, type), 0);
    assert_int_equal(wb_bytes(w, body, len), 0);
}

/* Append a READ request for handle. */
static void frame_read(struct wbuf *w, uint32_t id, const uint8_t *handle,
                       uint64_t off, uint32_t len)
{
    struct wbuf body;

    wb_init(&body, 0);
    assert_int_equal(wb_u32(&body, id), 0);
    assert_int_equal(wb_string(&body, handle, 8), 0);
    assert_int_equal(wb_u64(&body, off), 0);
    assert_int_equal(wb_u32(&body, len), 0);
    frame(w, SSH_FXP_READ, body.data, body.len);
    wb_free(&body);
}

static void put_pattern_file(struct st *t, const char *path, size_t len)
{
    uint8_t *data = malloc(len);

    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i ^ (i >> 10));
    st_put_file(t, path, data, len);
    free(data);
}

/// Version negotiation ///

static void request_before_init_ends_session(void **state)
{
    struct st *t = st_new_uninitialized(NULL);
    struct wbuf w;

    (void)state;
    wb_init(&w, 0);
    frame(&w, SSH_FXP_STAT, "\0\0\0\1\0\0\0\1/", 9);
    assert_int_equal(st_feed(t, w.data, w.len), w.len);
    assert_int_equal(sftp_session_error(t->s), SFTP_ERR_NOT_INITIALIZED);
    assert_int_equal(st_output_len(t), 0);
    assert_false(sftp_session_wants_input(t->s));

    /* A failed session takes nothing more. */
    assert_int_equal(st_feed(t, w.data, w.len), 0);
    wb_free(&w);
    st_free(t);
}

static void second_init_ends_session_after_earlier_replies(void **state)
{
    struct st *t = st_new(NULL);
    struct wbuf w;

    (void)state;
    wb_init(&w, 0);
    frame(&w, SSH_FXP_STAT, "\0\0\0\7\0\0\0\1/", 9);
    frame(&w, SSH_FXP_INIT, "\0\0\0\3", 4);
    frame(&w, SSH_FXP_STAT, "\0\0\0\10\0\0\0\1/", 9);
    assert_true(st_feed(t, w.data, w.len) < w.len);
    assert_int_equal(sftp_session_error(t->s), SFTP_ERR_REINIT);

    /* The STAT before the second INIT got its reply, the one after did
     * not. */
    assert_int_equal(st_read_reply(t), 0);
    assert_int_equal(t->type, SSH_FXP_ATTRS);
    assert_int_equal(t->id, 7);
    assert_int_equal(st_output_len(t), 0);
    wb_free(&w);
    st_free(t);
}

static void init_without_version_ends_session(void **state)
{
    struct st *t = st_new_uninitialized(NULL);
    static const uint8_t init[] = { 0, 0, 0, 3, SSH_FXP_INIT, 0, 0 };

    (void)state;
    assert_int_equal(st_feed(t, init, sizeof(init)), sizeof(init));
    assert_int_equal(sftp_session_error(t->s), SFTP_ERR_TRUNCATED);
    assert_int_equal(st_output_len(t), 0);
    st_free(t);
}

/// Packet lengths ///

static void empty_packet_ends_session(void **state)
{
    struct st *t = st_new(NULL);
    static const uint8_t empty[] = { 0, 0, 0, 0 };

    (void)state;
    assert_int_equal(st_feed(t, empty, sizeof(empty)), 0);
    assert_int_equal(sftp_session_error(t->s), SFTP_ERR_PACKET_LENGTH);
    st_free(t);
}

static void oversize_packet_ends_session_before_buffering(void **state)
{
    struct st *t = st_new(NULL);
    uint8_t header[5] = { 0, 0, 0, 0, SSH_FXP_WRITE };

    (void)state;
    put_be32(header, SFTP_MAX_PACKET + 1);

    /* Split header: the length arrives in two pieces. */
    assert_int_equal(st_feed(t, header, 2), 2);
    assert_int_equal(sftp_session_error(t->s), SFTP_OK);
    st_feed(t, header + 2, 3);
    assert_int_equal(sftp_session_error(t->s), SFTP_ERR_PACKET_LENGTH);
    assert_true(t->s->in.cap <= 256);

    /* The same header in one piece. */
    st_free(t);
    t = st_new(NULL);
    put_be32(header, 0xffffffffu);
    assert_int_equal(st_feed(t, header, sizeof(header)), 0);
    assert_int_equal(sftp_session_error(t->s), SFTP_ERR_PACKET_LENGTH);
    st_free(t);
}

static void largest_write_fits_in_a_packet(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t data[SFTP_MAX_WRITE];
    struct vfs_attr attr;

    (void)state;
    memset(data, 0x5a, sizeof(data));
    assert_int_equal(st_open(t, "/f", SSH_FXF_WRITE | SSH_FXF_CREAT, -1),
                     SSH_FX_OK);
    assert_int_equal(st_write(t, t->handle, t->handle_len, 0, data,
                              sizeof(data)), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.size, SFTP_MAX_WRITE);
    st_free(t);
}

static void packet_without_id_ends_session(void **state)
{
    struct st *t = st_new(NULL);
    static const uint8_t packet[] = { 0, 0, 0, 3, SSH_FXP_STAT, 0, 1 };

    (void)state;
    assert_int_equal(st_feed(t, packet, sizeof(packet)), sizeof(packet));
    assert_int_equal(sftp_session_error(t->s), SFTP_ERR_TRUNCATED);
    assert_int_equal(st_output_len(t), 0);
    st_free(t);
}

/// Malformed requests ///

static void truncated_request_is_bad_message_and_session_goes_on(void **state)
{
    struct st *t = st_new(NULL);
    struct vfs_attr attr;

    (void)state;

    /* OPEN without its flags and attributes. */
    st_begin(t, SSH_FXP_OPEN);
    assert_int_equal(wb_cstring(&t->req, "/f"), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_BAD_MESSAGE);
    assert_string_equal(t->message, "Malformed request");

    /* READ without its length. */
    assert_int_equal(st_open(t, "/f", SSH_FXF_WRITE | SSH_FXF_CREAT, -1),
                     SSH_FX_OK);
    st_begin(t, SSH_FXP_READ);
    assert_int_equal(wb_string(&t->req, t->handle, t->handle_len), 0);
    assert_int_equal(wb_u64(&t->req, 0), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_BAD_MESSAGE);

    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(sftp_session_error(t->s), SFTP_OK);
    st_free(t);
}

static void string_longer_than_packet_is_bad_message(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_begin(t, SSH_FXP_STAT);
    assert_int_equal(wb_u32(&t->req, 1000), 0);
    assert_int_equal(wb_bytes(&t->req, "/ab", 3), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_BAD_MESSAGE);

    st_begin(t, SSH_FXP_WRITE);
    assert_int_equal(wb_u32(&t->req, 0xffffffffu), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_BAD_MESSAGE);
    st_free(t);
}

static void attrs_with_huge_extended_count_is_bad_message(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_put_file(t, "/f", "x", 1);
    st_begin(t, SSH_FXP_SETSTAT);
    assert_int_equal(wb_cstring(&t->req, "/f"), 0);
    assert_int_equal(wb_u32(&t->req, SSH_FILEXFER_ATTR_EXTENDED), 0);
    assert_int_equal(wb_u32(&t->req, 0xffffffffu), 0);
    assert_int_equal(wb_cstring(&t->req, "name"), 0);
    assert_int_equal(wb_cstring(&t->req, "value"), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_BAD_MESSAGE);

    /* Well-formed extended attributes are accepted and ignored. */
    st_begin(t, SSH_FXP_SETSTAT);
    assert_int_equal(wb_cstring(&t->req, "/f"), 0);
    assert_int_equal(wb_u32(&t->req, SSH_FILEXFER_ATTR_EXTENDED), 0);
    assert_int_equal(wb_u32(&t->req, 1), 0);
    assert_int_equal(wb_cstring(&t->req, "name"), 0);
    assert_int_equal(wb_cstring(&t->req, "value"), 0);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_OK);
    st_free(t);
}

static void unknown_request_type_is_op_unsupported(void **state)
{
    struct st *t = st_new(NULL);

    (void)state;
    st_begin(t, 77);
    assert_int_equal(wb_cstring(&t->req, "whatever"), 0);
    st_send(t);
    assert_int_equal(t->id, t->req_id);
    assert_int_equal(st_status(t), SSH_FX_OP_UNSUPPORTED);
    assert_string_equal(t->message, "Unknown request type");

    /* Reply types sent as requests are unknown requests too. */
    st_begin(t, SSH_FXP_STATUS);
    st_send(t);
    assert_int_equal(st_status(t), SSH_FX_OP_UNSUPPORTED);
    st_free(t);
}

/// Pipelining and memory bounds ///

static void input_split_at_every_byte_gives_same_replies(void **state)
{
    struct st *t = st_new(NULL);
    struct wbuf w;
    uint8_t handle[8];

    (void)state;
    put_pattern_file(t, "/f", 5000);
    assert_int_equal(st_open(t, "/f", SSH_FXF_READ, -1), SSH_FX_OK);
    memcpy(handle, t->handle, 8);

    wb_init(&w, 0);
    frame_read(&w, 100, handle, 0, 3000);
    frame_read(&w, 101, handle, 3000, 3000);
    frame_read(&w, 102, handle, 5000, 10);
    for (size_t i = 0; i < w.len; i++)
        assert_int_equal(st_feed(t, w.data + i, 1), 1);

    for (uint32_t id = 100; id <= 102; id++) {
        assert_int_equal(st_read_reply(t), 0);
        assert_int_equal(t->id, id);
    }
    assert_int_equal(t->type, SSH_FXP_STATUS);
    assert_int_equal(st_status(t), SSH_FX_EOF);
    assert_int_equal(st_output_len(t), 0);
    wb_free(&w);
    st_free(t);
}

static void pipelined_reads_are_answered_in_order(void **state)
{
    struct st *t = st_new(NULL);
    struct wbuf w;
    uint8_t handle[8];
    const uint8_t *data;
    uint32_t len;

    (void)state;
    put_pattern_file(t, "/f", 64 * 1024);
    assert_int_equal(st_open(t, "/f", SSH_FXF_READ, -1), SSH_FX_OK);
    memcpy(handle, t->handle, 8);

    /* sshfs keeps dozens of requests in flight. */
    wb_init(&w, 0);
    for (uint32_t i = 0; i < 64; i++)
        frame_read(&w, 1000 + i, handle, (uint64_t)i * 1024, 1024);
    assert_int_equal(st_feed(t, w.data, w.len), w.len);
    for (uint32_t i = 0; i < 64; i++) {
        assert_int_equal(st_read_reply(t), 0);
        assert_int_equal(t->id, 1000 + i);
        assert_int_equal(t->type, SSH_FXP_DATA);
        assert_int_equal(rd_string(&t->rd, &data, &len), 0);
        assert_int_equal(len, 1024);
        assert_int_equal(data[0], (uint8_t)((i * 1024) ^ i));
    }
    assert_int_equal(st_output_len(t), 0);
    wb_free(&w);
    st_free(t);
}

static void full_output_stops_input_until_drained(void **state)
{
    struct sftp_options opts = st_default_options();
    struct st *t;
    struct wbuf w;
    uint8_t handle[8];
    size_t used, total = 0;
    uint32_t next_id = 1;
    const uint32_t requests = 48;

    (void)state;

    /* Reads of the whole file in 48 requests: 12 MiB of replies. */
    t = st_new(&opts);
    put_pattern_file(t, "/f", SFTP_MAX_READ);
    assert_int_equal(st_open(t, "/f", SSH_FXF_READ, -1), SSH_FX_OK);
    memcpy(handle, t->handle, 8);
    wb_init(&w, 0);
    for (uint32_t i = 0; i < requests; i++)
        frame_read(&w, 1 + i, handle, 0, SFTP_MAX_READ);

    used = st_feed(t, w.data, w.len);
    assert_true(used < w.len);
    assert_false(sftp_session_wants_input(t->s));
    assert_true(st_output_len(t) >= SFTP_OUTPUT_HIGH);
    assert_true(st_output_len(t) <= SFTP_OUTPUT_HIGH + SFTP_MAX_PACKET);
    assert_int_equal(st_feed(t, w.data + used, w.len - used), 0);
    total = used;

    /* Reading replies lets the rest in, and every reply comes, in order. */
    while (next_id <= requests) {
        while (st_read_reply(t) == 0) {
            assert_int_equal(t->id, next_id);
            assert_int_equal(t->type, SSH_FXP_DATA);
            assert_int_equal(t->reply_len, 4 + SFTP_MAX_READ);
            next_id++;
        }
        total += st_feed(t, w.data + total, w.len - total);
    }
    assert_int_equal(total, w.len);
    assert_int_equal(st_output_len(t), 0);
    assert_int_equal(sftp_session_error(t->s), SFTP_OK);
    wb_free(&w);
    st_free(t);
}

static void output_taken_in_pieces_loses_no_reply(void **state)
{
    struct st *t = st_new(NULL);
    struct wbuf w, stream;
    uint8_t handle[8];
    size_t fed = 0, parsed = 0;
    uint32_t next_id = 1;
    const uint32_t requests = 64;

    (void)state;

    /* What OpenSSH's sftp does: 64 reads of the maximum length in flight,
     * while the caller writes the output out in pieces of any size. */
    put_pattern_file(t, "/f", SFTP_MAX_READ);
    assert_int_equal(st_open(t, "/f", SSH_FXF_READ, -1), SSH_FX_OK);
    memcpy(handle, t->handle, 8);
    wb_init(&w, 0);
    wb_init(&stream, 0);
    for (uint32_t i = 0; i < requests; i++)
        frame_read(&w, 1 + i, handle, 0, SFTP_MAX_READ);

    while (next_id <= requests) {
        size_t len;
        const uint8_t *out;

        fed += st_feed(t, w.data + fed, w.len - fed);
        assert_int_equal(sftp_session_error(t->s), SFTP_OK);
        out = sftp_session_output(t->s, &len);
        assert_true(len > 0);
        if (len > 70001)
            len = 70001;
        assert_int_equal(wb_bytes(&stream, out, len), 0);
        sftp_session_output_sent(t->s, len);

        while (stream.len - parsed >= 4 &&
               stream.len - parsed - 4 >= get_be32(stream.data + parsed)) {
            uint32_t plen = get_be32(stream.data + parsed);

            assert_int_equal(plen, 1 + 4 + 4 + SFTP_MAX_READ);
            assert_int_equal(stream.data[parsed + 4], SSH_FXP_DATA);
            assert_int_equal(get_be32(stream.data + parsed + 5), next_id);
            next_id++;
            parsed += 4 + plen;
        }
    }
    assert_int_equal(fed, w.len);
    assert_int_equal(st_output_len(t), 0);
    wb_free(&w);
    wb_free(&stream);
    st_free(t);
}

static void partial_packet_is_buffered_once(void **state)
{
    struct st *t = st_new(NULL);
    static uint8_t data[200000];
    struct wbuf w, body;
    struct vfs_attr attr;

    (void)state;
    assert_int_equal(st_open(t, "/f", SSH_FXF_WRITE | SSH_FXF_CREAT, -1),
                     SSH_FX_OK);
    wb_init(&w, 0);
    wb_init(&body, 0);
    assert_int_equal(wb_u32(&body, 42), 0);
    assert_int_equal(wb_string(&body, t->handle, 8), 0);
    assert_int_equal(wb_u64(&body, 0), 0);
    assert_int_equal(wb_string(&body, data, sizeof(data)), 0);
    frame(&w, SSH_FXP_WRITE, body.data, body.len);

    /* Half the packet is taken and held; the rest completes it. */
    assert_int_equal(st_feed(t, w.data, 100000), 100000);
    assert_int_equal(st_output_len(t), 0);
    assert_true(t->s->in.cap <= 4 + SFTP_MAX_PACKET);
    assert_int_equal(st_feed(t, w.data + 100000, w.len - 100000),
                     w.len - 100000);
    assert_int_equal(st_read_reply(t), 0);
    assert_int_equal(t->id, 42);
    assert_int_equal(st_status(t), SSH_FX_OK);
    assert_int_equal(st_stat(t, SSH_FXP_STAT, "/f", &attr), SSH_FX_OK);
    assert_int_equal(attr.size, sizeof(data));
    wb_free(&w);
    wb_free(&body);
    st_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_before_init_ends_session),
        cmocka_unit_test(second_init_ends_session_after_earlier_replies),
        cmocka_unit_test(init_without_version_ends_session),
        cmocka_unit_test(empty_packet_ends_session),
        cmocka_unit_test(oversize_packet_ends_session_before_buffering),
        cmocka_unit_test(largest_write_fits_in_a_packet),
        cmocka_unit_test(packet_without_id_ends_session),
        cmocka_unit_test(truncated_request_is_bad_message_and_session_goes_on),
        cmocka_unit_test(string_longer_than_packet_is_bad_message),
        cmocka_unit_test(attrs_with_huge_extended_count_is_bad_message),
        cmocka_unit_test(unknown_request_type_is_op_unsupported),
        cmocka_unit_test(input_split_at_every_byte_gives_same_replies),
        cmocka_unit_test(pipelined_reads_are_answered_in_order),
        cmocka_unit_test(full_output_stops_input_until_drained),
        cmocka_unit_test(output_taken_in_pieces_loses_no_reply),
        cmocka_unit_test(partial_packet_is_buffered_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
