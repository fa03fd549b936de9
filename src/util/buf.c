/*
 * Wire buffers: bounds-checked readers and growable writers.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/buf.h"

/// Readers ///

void rd_init(struct rd *r, const void *data, size_t len)
{
    r->p = data;
    r->len = len;
    r->off = 0;
    r->failed = false;
}

size_t rd_left(const struct rd *r)
{
    return r->len - r->off;
}

int rd_bytes(struct rd *r, size_t n, const uint8_t **data)
{
    if (r->failed || n > r->len - r->off) {
        r->failed = true;
        return -1;
    }
    *data = r->p + r->off;
    r->off += n;
    return 0;
}

int rd_u8(struct rd *r, uint8_t *v)
{
    const uint8_t *p;
    if (rd_bytes(r, 1, &p))
        return -1;
    *v = p[0];
    return 0;
}

int rd_bool(struct rd *r, bool *v)
{
    uint8_t b;
    if (rd_u8(r, &b))
        return -1;
    *v = b != 0;
    return 0;
}

int rd_u32(struct rd *r, uint32_t *v)
{
    const uint8_t *p;
    if (rd_bytes(r, 4, &p))
        return -1;
    *v = get_be32(p);
    return 0;
}

int rd_u64(struct rd *r, uint64_t *v)
{
    const uint8_t *p;
    if (rd_bytes(r, 8, &p))
        return -1;
    *v = (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
    return 0;
}

int rd_string(struct rd *r, const uint8_t **data, uint32_t *len)
{
    uint32_t n;
    if (rd_u32(r, &n) || rd_bytes(r, n, data))
        return -1;
    *len = n;
    return 0;
}

int rd_cstring(struct rd *r, char **out, size_t max)
{
    const uint8_t *s;
    uint32_t n;

    if (rd_string(r, &s, &n))
        return -1;
    if (n > max || memchr(s, 0, n)) {
        r->failed = true;
        return -1;
    }
    char *c = malloc((size_t)n + 1);
    if (!c) {
        r->failed = true;
        return -1;
    }
    memcpy(c, s, n);
    c[n] = '\0';
    *out = c;
    return 0;
}

/// Writers ///

void wb_init(struct wbuf *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
}

void wb_free(struct wbuf *w)
{
    if (w->data && w->secret)
        OPENSSL_cleanse(w->data, w->cap);
    free(w->data);
    w->data = NULL;
    w->len = w->cap = 0;
}

void wb_reset(struct wbuf *w)
{
    if (w->data && w->secret)
        OPENSSL_cleanse(w->data, w->len);
    w->len = 0;
    w->failed = false;
}

void wb_consume(struct wbuf *w, size_t n)
{
    if (n >= w->len) {
        wb_reset(w);
        return;
    }
    memmove(w->data, w->data + n, w->len - n);
    if (w->secret)
        OPENSSL_cleanse(w->data + w->len - n, n);
    w->len -= n;
}

uint8_t *wb_reserve(struct wbuf *w, size_t n)
{
    if (w->failed)
        return NULL;
    if (n > SIZE_MAX / 2 - w->len || (w->max && w->len + n > w->max)) {
        w->failed = true;
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        if (w->max && cap > w->max)
            cap = w->max;
        uint8_t *p = malloc(cap);
        if (!p) {
            w->failed = true;
            return NULL;
        }
        if (w->len)
            memcpy(p, w->data, w->len);
        /* copy instead of realloc so a secret never stays behind */
        if (w->data && w->secret)
            OPENSSL_cleanse(w->data, w->cap);
        free(w->data);
        w->data = p;
        w->cap = cap;
    }
    return w->data + w->len;
}

void wb_commit(struct wbuf *w, size_t n)
{
    w->len += n;
}

int wb_bytes(struct wbuf *w, const void *data, size_t n)
{
    uint8_t *p = wb_reserve(w, n);
    if (!p)
        return -1;
    if (n)
        memcpy(p, data, n);
    w->len += n;
    return 0;
}

int wb_u8(struct wbuf *w, uint8_t v)
{
    return wb_bytes(w, &v, 1);
}

int wb_bool(struct wbuf *w, bool v)
{
    return wb_u8(w, v ? 1 : 0);
}

int wb_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    return wb_bytes(w, b, 4);
}

int wb_u64(struct wbuf *w, uint64_t v)
{
    uint8_t b[8];
    put_be32(b, (uint32_t)(v >> 32));
    put_be32(b + 4, (uint32_t)v);
    return wb_bytes(w, b, 8);
}

int wb_string(struct wbuf *w, const void *data, size_t n)
{
    if (n > UINT32_MAX) {
        w->failed = true;
        return -1;
    }
    if (wb_u32(w, (uint32_t)n))
        return -1;
    return wb_bytes(w, data, n);
}

int wb_cstring(struct wbuf *w, const char *s)
{
    return wb_string(w, s, strlen(s));
}

void wb_set_u32(struct wbuf *w, size_t off, uint32_t v)
{
    if (off + 4 <= w->len)
        put_be32(w->data + off, v);
}

/// Byte queues ///

void bq_init(struct bq *q, size_t max)
{
    wb_init(&q->w, max);
    q->head = 0;
}

void bq_free(struct bq *q)
{
    wb_free(&q->w);
    q->head = 0;
}

void bq_consume(struct bq *q, size_t n)
{
    if (n >= bq_len(q)) {
        wb_reset(&q->w);
        q->head = 0;
        return;
    }
    if (q->w.secret)
        OPENSSL_cleanse(q->w.data + q->head, n);
    q->head += n;
}

uint8_t *bq_reserve(struct bq *q, size_t n)
{
    bool no_room = q->w.cap - q->w.len < n ||
                   (q->w.max && n > q->w.max - q->w.len);

    /* Move the queued bytes down instead of growing when that makes
     * room, so a queue drained as fast as it fills keeps its size.  The
     * limit counts queued bytes only. */
    if (q->head > 0 && no_room) {
        size_t len = bq_len(q);
        memmove(q->w.data, q->w.data + q->head, len);
        if (q->w.secret)
            OPENSSL_cleanse(q->w.data + len, q->head);
        q->w.len = len;
        q->head = 0;
    }
    return wb_reserve(&q->w, n);
}

void bq_commit(struct bq *q, size_t n)
{
    wb_commit(&q->w, n);
}

int bq_append(struct bq *q, const void *data, size_t n)
{
    uint8_t *p = bq_reserve(q, n);
    if (!p)
        return -1;
    if (n)
        memcpy(p, data, n);
    bq_commit(q, n);
    return 0;
}
