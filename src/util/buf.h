/*
 * Wire buffers: every byte from the network is read through struct rd,
 * and every message is built in a struct wbuf.
 *
 * Readers never index raw bytes: each get function checks the remaining
 * length first and returns -1 (leaving the reader failed) when the field
 * does not fit, so a handler can parse a whole request and check once.
 * Integers are big-endian, as SSH and SFTP encode them.
 */
#ifndef SSHFSD_UTIL_BUF_H
#define SSHFSD_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rd {
    const uint8_t *p;
    size_t len;
    size_t off;
    bool failed;        /* a get ran past the end */
};

void rd_init(struct rd *r, const void *data, size_t len);
size_t rd_left(const struct rd *r);
int rd_u8(struct rd *r, uint8_t *v);
int rd_bool(struct rd *r, bool *v);
int rd_u32(struct rd *r, uint32_t *v);
int rd_u64(struct rd *r, uint64_t *v);
/* Raw bytes: *data points into the reader's buffer. */
int rd_bytes(struct rd *r, size_t n, const uint8_t **data);
/* An SSH string (u32 length, bytes): *data points into the buffer. */
int rd_string(struct rd *r, const uint8_t **data, uint32_t *len);
/* A string copied into a new NUL-terminated allocation; fails on an
 * embedded NUL byte or one longer than max. The caller frees *out. */
int rd_cstring(struct rd *r, char **out, size_t max);

struct wbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;         /* 0: no limit; growing past it fails */
    bool failed;        /* an allocation or the limit failed */
    bool secret;        /* wipe the contents when freed or shrunk */
};

void wb_init(struct wbuf *w, size_t max);
void wb_free(struct wbuf *w);
/* Empty the buffer, keeping its memory. */
void wb_reset(struct wbuf *w);
/* Drop the first n bytes (consumed by a writer). */
void wb_consume(struct wbuf *w, size_t n);
/* Make room for n more bytes; returns a pointer to them or NULL. The
 * caller fills them and then calls wb_commit(w, n). */
uint8_t *wb_reserve(struct wbuf *w, size_t n);
void wb_commit(struct wbuf *w, size_t n);
int wb_u8(struct wbuf *w, uint8_t v);
int wb_bool(struct wbuf *w, bool v);
int wb_u32(struct wbuf *w, uint32_t v);
int wb_u64(struct wbuf *w, uint64_t v);
int wb_bytes(struct wbuf *w, const void *data, size_t n);
int wb_string(struct wbuf *w, const void *data, size_t n);
int wb_cstring(struct wbuf *w, const char *s);
/* Overwrite a u32 already in the buffer (length fields filled in late). */
void wb_set_u32(struct wbuf *w, size_t off, uint32_t v);

/*
 * A byte queue: bytes are appended at the end and consumed from the
 * front.  Consuming only advances head.  The remaining bytes move down to
 * the start of the buffer only when room is needed at the end, so taking
 * many small pieces out of a large queue costs no copying per piece.
 */
struct bq {
    struct wbuf w;      /* w.data[head .. w.len) are the queued bytes */
    size_t head;
};

void bq_init(struct bq *q, size_t max);
void bq_free(struct bq *q);
/* Drop the first n queued bytes (n larger than the queue empties it). */
void bq_consume(struct bq *q, size_t n);
/* Make room for n more bytes at the end; returns a pointer to them or
 * NULL when the limit or an allocation failed.  Fill them, then call
 * bq_commit(q, n). */
uint8_t *bq_reserve(struct bq *q, size_t n);
void bq_commit(struct bq *q, size_t n);
int bq_append(struct bq *q, const void *data, size_t n);

/* The queued bytes; NULL when the queue never held any. */
static inline const uint8_t *bq_data(const struct bq *q)
{
    return q->w.data ? q->w.data + q->head : NULL;
}

static inline uint8_t *bq_data_mut(struct bq *q)
{
    return q->w.data ? q->w.data + q->head : NULL;
}

static inline size_t bq_len(const struct bq *q)
{
    return q->w.len - q->head;
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
