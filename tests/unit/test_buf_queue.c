/*
 * struct bq, the byte queue of util/buf.h: appending, consuming from the
 * front, reuse of consumed room, the size limit and wiping of secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"

static void queue_keeps_order(void **state)
{
    struct bq q;
    uint8_t *p;

    (void)state;
    bq_init(&q, 0);
    assert_int_equal(bq_len(&q), 0);
    assert_null(bq_data(&q));
    assert_int_equal(bq_append(&q, "hello ", 6), 0);
    p = bq_reserve(&q, 5);
    assert_non_null(p);
    memcpy(p, "world", 5);
    bq_commit(&q, 5);
    assert_int_equal(bq_len(&q), 11);
    assert_memory_equal(bq_data(&q), "hello world", 11);
    bq_consume(&q, 6);
    assert_int_equal(bq_len(&q), 5);
    assert_memory_equal(bq_data(&q), "world", 5);
    bq_consume(&q, 100);
    assert_int_equal(bq_len(&q), 0);
    bq_free(&q);
}

/* Consumed room at the front is reused instead of growing the buffer. */
static void consumed_room_is_reused(void **state)
{
    uint8_t chunk[1000];
    struct bq q;
    size_t cap;

    (void)state;
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (uint8_t)i;
    bq_init(&q, 0);
    assert_int_equal(bq_append(&q, chunk, sizeof(chunk)), 0);
    assert_int_equal(bq_append(&q, chunk, sizeof(chunk)), 0);
    cap = q.w.cap;
    for (int round = 0; round < 100; round++) {
        bq_consume(&q, sizeof(chunk));
        assert_int_equal(bq_append(&q, chunk, sizeof(chunk)), 0);
        assert_int_equal(bq_len(&q), 2 * sizeof(chunk));
        assert_memory_equal(bq_data(&q), chunk, sizeof(chunk));
        assert_memory_equal(bq_data(&q) + sizeof(chunk), chunk,
                            sizeof(chunk));
    }
    assert_int_equal(q.w.cap, cap);
    bq_free(&q);
}

/* The limit counts queued bytes, not bytes consumed earlier. */
static void limit_counts_queued_bytes(void **state)
{
    uint8_t chunk[100] = { 0 };
    struct bq q;

    (void)state;
    bq_init(&q, 250);
    assert_int_equal(bq_append(&q, chunk, 100), 0);
    assert_int_equal(bq_append(&q, chunk, 100), 0);
    assert_int_equal(bq_append(&q, chunk, 100), -1);
    bq_free(&q);

    bq_init(&q, 250);
    assert_int_equal(bq_append(&q, chunk, 100), 0);
    assert_int_equal(bq_append(&q, chunk, 100), 0);
    bq_consume(&q, 150);
    assert_int_equal(bq_append(&q, chunk, 100), 0);
    assert_int_equal(bq_append(&q, chunk, 100), 0);
    assert_int_equal(bq_len(&q), 250);
    bq_free(&q);
}

static void secret_queue_wipes_consumed_bytes(void **state)
{
    static const uint8_t zeros[8] = { 0 };
    struct bq q;

    (void)state;
    bq_init(&q, 0);
    q.w.secret = true;
    assert_int_equal(bq_append(&q, "secretkeyrest", 13), 0);
    bq_consume(&q, 9);
    assert_memory_equal(q.w.data, zeros, 8);
    assert_memory_equal(bq_data(&q), "rest", 4);
    bq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_keeps_order),
        cmocka_unit_test(consumed_room_is_reused),
        cmocka_unit_test(limit_counts_queued_bytes),
        cmocka_unit_test(secret_queue_wipes_consumed_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
