/* Wire buffer tests: readers fail cleanly at the end, writers grow and
 * respect their limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/buf.h"

static void reader_reads_fields_in_order(void **state)
{
    static const uint8_t msg[] = {
        7, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 'h', 'e', 'y', 1,
    };
    struct rd r;
    uint8_t b;
    uint32_t u;
    uint64_t q;
    const uint8_t *s;
    uint32_t len;
    bool flag;

    (void)state;
    rd_init(&r, msg, sizeof(msg));
    assert_int_equal(rd_u8(&r, &b), 0);
    assert_int_equal(b, 7);
    assert_int_equal(rd_u32(&r, &u), 0);
    assert_int_equal(u, 5);
    assert_int_equal(rd_u64(&r, &q), 0);
    assert_int_equal(q, 0x0000000100000002ull);
    assert_int_equal(rd_string(&r, &s, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "hey", 3);
    assert_int_equal(rd_bool(&r, &flag), 0);
    assert_true(flag);
    assert_int_equal(rd_left(&r), 0);
    assert_false(r.failed);
}

static void reader_fails_past_end(void **state)
{
    static const uint8_t msg[] = {0, 0, 0, 9, 'a', 'b'};
    struct rd r;
    const uint8_t *s;
    uint32_t len, u;

    (void)state;
    rd_init(&r, msg, sizeof(msg));
    assert_int_equal(rd_string(&r, &s, &len), -1);
    assert_true(r.failed);
    /* once failed, every later get fails too */
    assert_int_equal(rd_u32(&r, &u), -1);
}

static void reader_rejects_nul_and_long_cstrings(void **state)
{
    static const uint8_t nul[] = {0, 0, 0, 3, 'a', 0, 'b'};
    static const uint8_t ok[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    struct rd r;
    char *s = NULL;

    (void)state;
    rd_init(&r, nul, sizeof(nul));
    assert_int_equal(rd_cstring(&r, &s, 100), -1);
    rd_init(&r, ok, sizeof(ok));
    assert_int_equal(rd_cstring(&r, &s, 2), -1);
    rd_init(&r, ok, sizeof(ok));
    assert_int_equal(rd_cstring(&r, &s, 3), 0);
    assert_string_equal(s, "abc");
    free(s);
}

static void writer_encodes_and_patches(void **state)
{
    static const uint8_t want[] = {
        0, 0, 0, 12, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 'o', 'k',
    };
    struct wbuf w;

    (void)state;
    wb_init(&w, 0);
    assert_int_equal(wb_u32(&w, 0), 0);
    assert_int_equal(wb_u8(&w, 9), 0);
    assert_int_equal(wb_u64(&w, 1), 0);
    assert_int_equal(wb_cstring(&w, "ok"), 0);
    wb_set_u32(&w, 0, 12);
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(w.data, want, sizeof(want));
    wb_consume(&w, 4);
    assert_int_equal(w.len, sizeof(want) - 4);
    assert_int_equal(w.data[0], 9);
    wb_free(&w);
}

static void writer_stops_at_its_limit(void **state)
{
    struct wbuf w;
    uint8_t big[100];

    (void)state;
    memset(big, 1, sizeof(big));
    wb_init(&w, 64);
    assert_int_equal(wb_bytes(&w, big, 60), 0);
    assert_int_equal(wb_bytes(&w, big, 5), -1);
    assert_true(w.failed);
    assert_int_equal(w.len, 60);
    wb_free(&w);
}

static void writer_grows_for_large_data(void **state)
{
    struct wbuf w;
    uint8_t *big = malloc(1 << 20);

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < (1 << 20); i++)
        big[i] = (uint8_t)i;
    wb_init(&w, 0);
    w.secret = true;
    for (int i = 0; i < 4; i++)
        assert_int_equal(wb_bytes(&w, big, 1 << 20), 0);
    assert_int_equal(w.len, 4u << 20);
    assert_memory_equal(w.data + (3u << 20), big, 1 << 20);
    wb_free(&w);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reader_reads_fields_in_order),
        cmocka_unit_test(reader_fails_past_end),
        cmocka_unit_test(reader_rejects_nul_and_long_cstrings),
        cmocka_unit_test(writer_encodes_and_patches),
        cmocka_unit_test(writer_stops_at_its_limit),
        cmocka_unit_test(writer_grows_for_large_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
