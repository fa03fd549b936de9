/*
 * The handle table: a fixed array of slots, one per open file or
 * directory.
 *
 * A handle on the wire is the slot index and a generation number.  Each
 * new handle takes the session's next generation, so a handle kept after
 * its CLOSE names a slot whose generation has changed, and never reaches
 * the file opened there later.  The generation is a u32 counter: it would
 * take 2^32 opens in one session for a stale handle to match again.
 */
#include <stdlib.h>
#include <string.h>

#include "sftp/sftp_internal.h"

int sftp_handles_init(struct sftp_session *s)
{
    s->handles = calloc(s->max_handles, sizeof(*s->handles));
    s->next_generation = 1;
    return s->handles ? 0 : -1;
}

static void handle_close(struct sftp_session *s, struct sftp_handle *h)
{
    int err = VFS_OK;

    if (h->kind == SFTP_HANDLE_FILE)
        err = vfs_close(s->vfs, h->file);
    else if (h->kind == SFTP_HANDLE_DIR)
        err = vfs_closedir(s->vfs, h->dir);
    if (err)
        sftp_log(s, SFTP_LOG_ERROR, "close \"%s\" at session end: %s",
                 h->path, vfs_strerror(err));
    else
        sftp_log(s, SFTP_LOG_INFO, "forced close \"%s\"", h->path);
    sftp_handle_release(s, h);
}

void sftp_handles_close_all(struct sftp_session *s)
{
    if (!s->handles)
        return;
    for (uint32_t i = 0; i < s->max_handles; i++) {
        if (s->handles[i].kind != SFTP_HANDLE_FREE)
            handle_close(s, &s->handles[i]);
    }
    free(s->handles);
    s->handles = NULL;
}

struct sftp_handle *sftp_handle_new(struct sftp_session *s,
                                    enum sftp_handle_kind kind,
                                    const char *path)
{
    struct sftp_handle *h = NULL;

    for (uint32_t i = 0; i < s->max_handles; i++) {
        if (s->handles[i].kind == SFTP_HANDLE_FREE) {
            h = &s->handles[i];
            break;
        }
    }
    if (!h)
        return NULL;

    memset(h, 0, sizeof(*h));
    h->path = strdup(path);
    if (!h->path)
        return NULL;
    if (kind == SFTP_HANDLE_DIR) {
        h->pending = malloc(sizeof(*h->pending));
        if (!h->pending) {
            free(h->path);
            h->path = NULL;
            return NULL;
        }
    }

    h->kind = kind;
    h->generation = s->next_generation++;
    if (s->next_generation == 0)
        s->next_generation = 1;
    s->open_handles++;
    return h;
}

void sftp_handle_release(struct sftp_session *s, struct sftp_handle *h)
{
    free(h->path);
    free(h->pending);
    memset(h, 0, sizeof(*h));
    s->open_handles--;
}

void sftp_handle_encode(const struct sftp_session *s,
                        const struct sftp_handle *h, uint8_t *out)
{
    put_be32(out, (uint32_t)(h - s->handles));
    put_be32(out + 4, h->generation);
}

int sftp_get_handle(struct sftp_session *s, struct rd *req,
                    enum sftp_handle_kind kind, struct sftp_handle **out)
{
    const uint8_t *wire;
    uint32_t len;

    if (rd_string(req, &wire, &len))
        return -1;
    if (len != SFTP_HANDLE_LEN)
        return 1;

    uint32_t index = get_be32(wire);
    uint32_t generation = get_be32(wire + 4);

    if (index >= s->max_handles)
        return 1;

    struct sftp_handle *h = &s->handles[index];

    if (h->kind == SFTP_HANDLE_FREE || h->generation != generation)
        return 1;
    if (kind != SFTP_HANDLE_FREE && h->kind != kind)
        return 1;
    *out = h;
    return 0;
}

struct sftp_handle *sftp_get_handle_or_reply(struct sftp_session *s,
                                             uint32_t id, struct rd *req,
                                             enum sftp_handle_kind kind,
                                             uint32_t invalid_code)
{
    struct sftp_handle *h = NULL;
    int r = sftp_get_handle(s, req, kind, &h);

    if (r < 0)
        sftp_send_malformed(s, id);
    else if (r > 0)
        sftp_send_status(s, id, invalid_code, "Invalid handle");
    return r == 0 ? h : NULL;
}
