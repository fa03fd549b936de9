/*
 * SFTP sessions: packet framing, dispatch of requests to their handlers,
 * the reply helpers and logging.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftp/sftp_internal.h"

/* Sent bytes are dropped from the front of the output buffer once this
 * many have gathered, so that memmove runs rarely. */
#define SFTP_OUTPUT_COMPACT (256 * 1024)

/* The output buffer contains the bytes sent but not dropped yet, the
 * queue up to SFTP_OUTPUT_HIGH, and the one reply that crossed it, which
 * is never longer than a packet. */
#define SFTP_OUTPUT_MAX \
    (SFTP_OUTPUT_COMPACT + SFTP_OUTPUT_HIGH + SFTP_MAX_PACKET + 4096)

const char *sftp_strerror(int err)
{
    switch (err) {
    case SFTP_OK: return "no error";
    case SFTP_ERR_PACKET_LENGTH: return "packet length is invalid";
    case SFTP_ERR_NOT_INITIALIZED: return "request received before INIT";
    case SFTP_ERR_REINIT: return "second INIT received";
    case SFTP_ERR_TRUNCATED:
        return "packet ends before its request id or version";
    case SFTP_ERR_NOMEM: return "out of memory";
    }
    return "unknown SFTP session error";
}

/// Logging ///

void sftp_log(struct sftp_session *s, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (!s->opts.log || level > s->opts.log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->opts.log(s->opts.log_ctx, level, line);
}

/* End the session: it takes no more input and the caller closes it. */
static void session_fail(struct sftp_session *s, int err)
{
    if (s->error)
        return;
    s->error = err;
    sftp_log(s, SFTP_LOG_ERROR, "closing the session: %s",
             sftp_strerror(err));
}

/// Replies ///

void sftp_reply_begin(struct sftp_session *s, uint8_t type, uint32_t id)
{
    s->reply_start = s->out.len;
    if (wb_u32(&s->out, 0) || wb_u8(&s->out, type))
        return;
    if (type != SSH_FXP_VERSION)
        (void)wb_u32(&s->out, id);
}

size_t sftp_reply_len(const struct sftp_session *s)
{
    return s->out.len - s->reply_start;
}

void sftp_reply_cancel(struct sftp_session *s)
{
    s->out.len = s->reply_start;
    s->out.failed = false;
}

void sftp_reply_end(struct sftp_session *s)
{
    /* Every reply is built to fit a packet, so the only way to fail is
     * running out of memory. */
    if (s->out.failed) {
        sftp_reply_cancel(s);
        session_fail(s, SFTP_ERR_NOMEM);
        return;
    }
    wb_set_u32(&s->out, s->reply_start,
               (uint32_t)(sftp_reply_len(s) - 4));
}

void sftp_send_status(struct sftp_session *s, uint32_t id, uint32_t code,
                      const char *message)
{
    sftp_reply_begin(s, SSH_FXP_STATUS, id);
    (void)wb_u32(&s->out, code);
    (void)wb_cstring(&s->out, message);
    (void)wb_cstring(&s->out, "");
    sftp_reply_end(s);
    sftp_log(s, SFTP_LOG_DEBUG, "request %u: sent status %u (%s)", id, code,
             message);
}

void sftp_send_malformed(struct sftp_session *s, uint32_t id)
{
    sftp_send_status(s, id, SSH_FX_BAD_MESSAGE, "Malformed request");
}

/* The status code OpenSSH's sftp-server sends for the matching errno. */
static uint32_t status_of_vfs_error(int err)
{
    switch (err) {
    case VFS_OK:
        return SSH_FX_OK;
    case VFS_ERR_NOENT:
    case VFS_ERR_NOTDIR:
    case VFS_ERR_BADF:
        return SSH_FX_NO_SUCH_FILE;
    case VFS_ERR_PERM:
    case VFS_ERR_ROFS:
        return SSH_FX_PERMISSION_DENIED;
    case VFS_ERR_NAMETOOLONG:
    case VFS_ERR_INVAL:
        return SSH_FX_BAD_MESSAGE;
    case VFS_ERR_UNSUPPORTED:
        return SSH_FX_OP_UNSUPPORTED;
    }
    return SSH_FX_FAILURE;
}

void sftp_send_vfs_status(struct sftp_session *s, uint32_t id, int err)
{
    /* Failures are common (sshfs looks up names that do not exist), so
     * they are logged at debug level only. */
    if (err)
        sftp_log(s, SFTP_LOG_DEBUG, "request %u failed: %s", id,
                 vfs_strerror(err));
    sftp_send_status(s, id, status_of_vfs_error(err), vfs_strerror(err));
}

void sftp_send_handle(struct sftp_session *s, uint32_t id,
                      const struct sftp_handle *h)
{
    uint8_t wire[SFTP_HANDLE_LEN];

    sftp_handle_encode(s, h, wire);
    sftp_reply_begin(s, SSH_FXP_HANDLE, id);
    (void)wb_string(&s->out, wire, sizeof(wire));
    sftp_reply_end(s);
}

void sftp_send_attrs(struct sftp_session *s, uint32_t id,
                     const struct vfs_attr *attr)
{
    sftp_reply_begin(s, SSH_FXP_ATTRS, id);
    (void)sftp_put_attrs(&s->out, attr);
    sftp_reply_end(s);
}

void sftp_send_name(struct sftp_session *s, uint32_t id, const char *path)
{
    struct vfs_attr none = { .fields = 0 };

    sftp_reply_begin(s, SSH_FXP_NAME, id);
    (void)wb_u32(&s->out, 1);
    (void)wb_cstring(&s->out, path);
    (void)wb_cstring(&s->out, path);
    (void)sftp_put_attrs(&s->out, &none);
    sftp_reply_end(s);
}

/// Version negotiation ///

static void process_init(struct sftp_session *s, struct rd *req)
{
    uint32_t version;

    if (rd_u32(req, &version)) {
        session_fail(s, SFTP_ERR_TRUNCATED);
        return;
    }
    s->client_version = version;
    s->initialized = true;
    sftp_log(s, SFTP_LOG_INFO, "received client version %u", version);

    /* Whatever version the client offers, the reply is 3: a server sends
     * its own version and the client adapts to it. */
    sftp_reply_begin(s, SSH_FXP_VERSION, 0);
    (void)wb_u32(&s->out, SSH_FILEXFER_VERSION);
    for (const struct sftp_extension_handler *e = sftp_extension_handlers;
         e->name; e++) {
        if (!e->version)
            continue;
        (void)wb_cstring(&s->out, e->name);
        (void)wb_cstring(&s->out, e->version);
    }
    sftp_reply_end(s);
}

/// Dispatch ///

static const struct sftp_request_handler *find_handler(uint8_t type)
{
    for (const struct sftp_request_handler *h = sftp_request_handlers;
         h->handler; h++) {
        if (h->type == type)
            return h;
    }
    return NULL;
}

/* Handle one complete packet (without its length field). */
static void process_packet(struct sftp_session *s, const uint8_t *packet,
                           size_t len)
{
    struct rd req;
    uint8_t type;
    uint32_t id;

    rd_init(&req, packet, len);
    if (rd_u8(&req, &type)) {
        session_fail(s, SFTP_ERR_PACKET_LENGTH);
        return;
    }
    if (type == SSH_FXP_INIT) {
        if (s->initialized)
            session_fail(s, SFTP_ERR_REINIT);
        else
            process_init(s, &req);
        return;
    }
    if (!s->initialized) {
        session_fail(s, SFTP_ERR_NOT_INITIALIZED);
        return;
    }
    if (rd_u32(&req, &id)) {
        session_fail(s, SFTP_ERR_TRUNCATED);
        return;
    }

    const struct sftp_request_handler *h = find_handler(type);

    if (!h) {
        sftp_log(s, SFTP_LOG_WARN, "request %u: unknown type %u", id, type);
        sftp_send_status(s, id, SSH_FX_OP_UNSUPPORTED,
                         "Unknown request type");
        return;
    }
    sftp_log(s, SFTP_LOG_TRACE, "request %u: %s, %zu bytes", id, h->name,
             len);
    if ((h->flags & SFTP_CHANGES_IMAGE) && s->opts.read_only) {
        sftp_log(s, SFTP_LOG_INFO, "request %u: %s rejected: read-only",
                 id, h->name);
        sftp_send_status(s, id, SSH_FX_PERMISSION_DENIED,
                         "The image is read-only");
        return;
    }
    h->handler(s, id, &req);
}

/// Input and output ///

static bool output_full(const struct sftp_session *s)
{
    return s->out.len - s->out_sent >= SFTP_OUTPUT_HIGH;
}

int sftp_session_wants_input(const struct sftp_session *s)
{
    return !s->error && !output_full(s);
}

/* Check a packet's length field: a packet contains at least its type
 * byte and at most SFTP_MAX_PACKET bytes. */
static bool packet_length_valid(struct sftp_session *s, uint32_t len)
{
    if (len >= 1 && len <= SFTP_MAX_PACKET)
        return true;
    sftp_log(s, SFTP_LOG_ERROR, "packet of %u bytes is outside 1..%u", len,
             SFTP_MAX_PACKET);
    session_fail(s, SFTP_ERR_PACKET_LENGTH);
    return false;
}

/* Copy bytes of the current packet into s->in; process it once whole.
 * Returns the bytes taken. */
static size_t input_buffered(struct sftp_session *s, const uint8_t *data,
                             size_t len)
{
    size_t want = 4;

    if (s->in.len >= 4) {
        uint32_t plen = get_be32(s->in.data);

        want = 4 + (size_t)plen;
    }

    size_t take = want - s->in.len;

    if (take > len)
        take = len;
    if (wb_bytes(&s->in, data, take)) {
        session_fail(s, SFTP_ERR_NOMEM);
        return 0;
    }

    if (s->in.len == 4 && !packet_length_valid(s, get_be32(s->in.data)))
        return take;
    if (s->in.len > 4 && s->in.len == 4 + (size_t)get_be32(s->in.data)) {
        process_packet(s, s->in.data + 4, s->in.len - 4);
        wb_reset(&s->in);
    }
    return take;
}

size_t sftp_session_input(struct sftp_session *s, const void *data,
                          size_t len)
{
    const uint8_t *p = data;
    size_t used = 0;

    while (used < len && sftp_session_wants_input(s)) {
        size_t left = len - used;

        /* Whole packets in the caller's bytes are processed in place,
         * without a copy (WRITE requests are most of the input). */
        if (s->in.len == 0 && left >= 4) {
            uint32_t plen = get_be32(p + used);

            if (!packet_length_valid(s, plen))
                break;
            if (left - 4 >= plen) {
                process_packet(s, p + used + 4, plen);
                used += 4 + (size_t)plen;
                continue;
            }
        }
        used += input_buffered(s, p + used, left);
    }
    return used;
}

const uint8_t *sftp_session_output(struct sftp_session *s, size_t *len)
{
    *len = s->out.len - s->out_sent;
    return s->out.data ? s->out.data + s->out_sent : NULL;
}

void sftp_session_output_sent(struct sftp_session *s, size_t n)
{
    size_t pending = s->out.len - s->out_sent;

    s->out_sent += n < pending ? n : pending;
    if (s->out_sent == s->out.len) {
        wb_reset(&s->out);
        s->out_sent = 0;
    } else if (s->out_sent >= SFTP_OUTPUT_COMPACT) {
        wb_consume(&s->out, s->out_sent);
        s->out_sent = 0;
    }
}

int sftp_session_error(const struct sftp_session *s)
{
    return s->error;
}

/// Creation ///

static char *copy_name(const char *name, bool *failed)
{
    char *copy;

    if (!name)
        return NULL;
    copy = strdup(name);
    if (!copy)
        *failed = true;
    return copy;
}

struct sftp_session *sftp_session_new(struct vfs *vfs,
                                      const struct sftp_options *opts)
{
    struct sftp_session *s = calloc(1, sizeof(*s));
    bool failed = false;

    if (!s)
        return NULL;
    s->vfs = vfs;
    s->opts = *opts;
    s->user_name = copy_name(opts->user_name, &failed);
    s->group_name = copy_name(opts->group_name, &failed);
    s->opts.user_name = s->user_name;
    s->opts.group_name = s->group_name;
    s->max_handles = opts->max_handles ? opts->max_handles
                                       : SFTP_DEFAULT_MAX_HANDLES;
    wb_init(&s->in, 4 + SFTP_MAX_PACKET);
    wb_init(&s->out, SFTP_OUTPUT_MAX);

    if (failed || sftp_handles_init(s)) {
        sftp_session_free(s);
        return NULL;
    }
    return s;
}

void sftp_session_free(struct sftp_session *s)
{
    if (!s)
        return;
    sftp_handles_close_all(s);
    wb_free(&s->in);
    wb_free(&s->out);
    free(s->user_name);
    free(s->group_name);
    free(s);
}
