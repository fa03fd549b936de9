/*
 * OpenSSH's SFTP extensions (OpenSSH's PROTOCOL file, section 4), plus
 * "copy-data" and "home-directory" (draft-ietf-secsh-filexfer-extensions).
 *
 * Clients recognise an extension only with the exact version string
 * OpenSSH advertises: "2" for the statvfs pair, "1" for the others.
 */
#include <stdlib.h>
#include <string.h>

#include "sftp/sftp_internal.h"

/* copy-data moves data through a buffer of this size. */
#define SFTP_COPY_CHUNK (64 * 1024)

/* posix-rename@openssh.com: rename, replacing the target atomically. */
static void process_posix_rename(struct sftp_session *s, uint32_t id,
                                 struct rd *req)
{
    char from[SFTP_PATH_MAX], to[SFTP_PATH_MAX];

    if (!sftp_get_path_or_reply(s, id, req, from) ||
        !sftp_get_path_or_reply(s, id, req, to))
        return;
    sftp_log(s, SFTP_LOG_INFO, "posix-rename old \"%s\" new \"%s\"", from,
             to);
    sftp_send_vfs_status(s, id, vfs_rename(s->vfs, from, to));
}

static void send_statvfs(struct sftp_session *s, uint32_t id)
{
    struct vfs_statvfs st;
    int err = vfs_statvfs(s->vfs, &st);

    if (err) {
        sftp_send_vfs_status(s, id, err);
        return;
    }

    uint64_t flags = st.read_only ? SSH_FXE_STATVFS_ST_RDONLY : 0;

    sftp_reply_begin(s, SSH_FXP_EXTENDED_REPLY, id);
    (void)wb_u64(&s->out, st.block_size);     /* f_bsize */
    (void)wb_u64(&s->out, st.block_size);     /* f_frsize */
    (void)wb_u64(&s->out, st.blocks);         /* f_blocks */
    (void)wb_u64(&s->out, st.blocks_free);    /* f_bfree */
    (void)wb_u64(&s->out, st.blocks_free);    /* f_bavail */
    (void)wb_u64(&s->out, st.files);          /* f_files */
    (void)wb_u64(&s->out, st.files_free);     /* f_ffree */
    (void)wb_u64(&s->out, st.files_free);     /* f_favail */
    (void)wb_u64(&s->out, 0);                 /* f_fsid */
    (void)wb_u64(&s->out, flags);             /* f_flag */
    (void)wb_u64(&s->out, st.name_max);       /* f_namemax */
    sftp_reply_end(s);
}

/* statvfs@openssh.com: file system sizes, for `df`. */
static void process_statvfs(struct sftp_session *s, uint32_t id,
                            struct rd *req)
{
    char path[SFTP_PATH_MAX];
    struct vfs_attr attr;

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;

    int err = vfs_stat(s->vfs, path, &attr);

    if (err)
        sftp_send_vfs_status(s, id, err);
    else
        send_statvfs(s, id);
}

static void process_fstatvfs(struct sftp_session *s, uint32_t id,
                             struct rd *req)
{
    if (sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FREE,
                                 SSH_FX_FAILURE))
        send_statvfs(s, id);
}

static void process_fsync(struct sftp_session *s, uint32_t id,
                          struct rd *req)
{
    struct sftp_handle *h = sftp_get_handle_or_reply(
        s, id, req, SFTP_HANDLE_FILE, SSH_FX_FAILURE);

    if (!h)
        return;
    sftp_log(s, SFTP_LOG_DEBUG, "fsync \"%s\"", h->path);
    sftp_send_vfs_status(s, id, vfs_fsync(s->vfs, h->file));
}

/* limits@openssh.com: OpenSSH's sftp ends the session when this fails,
 * and sizes its reads and writes from the reply. */
static void process_limits(struct sftp_session *s, uint32_t id,
                           struct rd *req)
{
    (void)req;
    sftp_reply_begin(s, SSH_FXP_EXTENDED_REPLY, id);
    (void)wb_u64(&s->out, SFTP_MAX_PACKET);
    (void)wb_u64(&s->out, SFTP_MAX_READ);
    (void)wb_u64(&s->out, SFTP_MAX_WRITE);
    (void)wb_u64(&s->out, s->max_handles);
    sftp_reply_end(s);
}

static bool is_own_user(const struct sftp_session *s, const uint8_t *name,
                        size_t len)
{
    const char *own = s->opts.user_name;

    return own && strlen(own) == len && memcmp(own, name, len) == 0;
}

/* expand-path@openssh.com: "~" and "~user" are the home directory "/",
 * the rest resolves as REALPATH does. */
static void process_expand_path(struct sftp_session *s, uint32_t id,
                                struct rd *req)
{
    char path[SFTP_PATH_MAX];
    const uint8_t *raw;
    uint32_t len;

    if (rd_string(req, &raw, &len)) {
        sftp_send_malformed(s, id);
        return;
    }
    if (len > 0 && raw[0] == '~') {
        const uint8_t *slash = memchr(raw, '/', len);
        size_t user_len = (slash ? (size_t)(slash - raw) : len) - 1;

        if (user_len > 0 && !is_own_user(s, raw + 1, user_len)) {
            sftp_send_status(s, id, SSH_FX_NO_SUCH_FILE, "No such user");
            return;
        }
        len -= (uint32_t)(1 + user_len);
        raw += 1 + user_len;
    }

    int err = sftp_path_resolve(raw, len, path);

    if (err) {
        sftp_send_vfs_status(s, id, err);
        return;
    }
    sftp_send_realpath(s, id, path);
}

/* Copy len bytes between two open files, chunk by chunk.  Returns a vfs
 * error or 0; the copy stops early at the end of the source. */
static int copy_range(struct sftp_session *s, struct sftp_handle *from,
                      uint64_t from_off, uint64_t len,
                      struct sftp_handle *to, uint64_t to_off)
{
    uint8_t *chunk = malloc(SFTP_COPY_CHUNK);
    uint64_t left = len;
    int err = VFS_OK;

    if (!chunk)
        return VFS_ERR_NOMEM;
    while (left > 0) {
        size_t want = left < SFTP_COPY_CHUNK ? (size_t)left : SFTP_COPY_CHUNK;

        ssize_t n = vfs_pread(s->vfs, from->file, chunk, want, from_off);

        if (n <= 0) {
            err = (int)n;
            break;
        }

        ssize_t w = vfs_pwrite(s->vfs, to->file, chunk, (size_t)n, to_off);

        if (w < 0) {
            err = (int)w;
            break;
        }
        from->bytes_read += (uint64_t)n;
        to->bytes_written += (uint64_t)n;
        from_off += (uint64_t)n;
        to_off += (uint64_t)n;
        left -= (uint64_t)n;
    }
    free(chunk);
    return err;
}

/* copy-data: a copy inside the server (sftp's "cp").  A length of 0
 * copies to the end of the source.  Source and destination must be
 * different files, as in OpenSSH's server. */
static void process_copy_data(struct sftp_session *s, uint32_t id,
                              struct rd *req)
{
    struct sftp_handle *from, *to;
    uint64_t from_off, len, to_off;

    from = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FILE,
                                    SSH_FX_FAILURE);
    if (!from)
        return;
    if (rd_u64(req, &from_off) || rd_u64(req, &len)) {
        sftp_send_malformed(s, id);
        return;
    }
    to = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FILE,
                                  SSH_FX_FAILURE);
    if (!to)
        return;
    if (rd_u64(req, &to_off)) {
        sftp_send_malformed(s, id);
        return;
    }

    sftp_log(s, SFTP_LOG_INFO, "copy \"%s\" at %llu to \"%s\" at %llu, "
             "%llu bytes", from->path, (unsigned long long)from_off,
             to->path, (unsigned long long)to_off, (unsigned long long)len);
    if (from == to || strcmp(from->path, to->path) == 0) {
        sftp_send_status(s, id, SSH_FX_FAILURE,
                         "Source and destination are the same file");
        return;
    }

    /* "To the end" means the end at the start of the copy: a file renamed
     * after it was opened can be both source and destination under two
     * names, and would otherwise grow until the image is full. */
    if (len == 0) {
        struct vfs_attr attr;
        int err = vfs_fstat(s->vfs, from->file, &attr);

        if (err) {
            sftp_send_vfs_status(s, id, err);
            return;
        }
        if (attr.size <= from_off) {
            sftp_send_status(s, id, SSH_FX_OK, "Success");
            return;
        }
        len = attr.size - from_off;
    }
    sftp_send_vfs_status(s, id, copy_range(s, from, from_off, len, to,
                                           to_off));
}

/* home-directory: every user's home is the image root. */
static void process_home_directory(struct sftp_session *s, uint32_t id,
                                   struct rd *req)
{
    const uint8_t *name;
    uint32_t len;

    if (rd_string(req, &name, &len)) {
        sftp_send_malformed(s, id);
        return;
    }
    if (len > 0 && !is_own_user(s, name, len)) {
        sftp_send_status(s, id, SSH_FX_FAILURE, "No such user");
        return;
    }
    sftp_send_name(s, id, "/");
}

/* Append, as one string, the name of each u32 id in ids: own_name for
 * own_id and "" for every other id.  Returns false when the reply would
 * outgrow a packet. */
static bool put_names(struct sftp_session *s, const uint8_t *ids,
                      uint32_t ids_len, uint32_t own_id,
                      const char *own_name)
{
    size_t start = s->out.len;

    (void)wb_u32(&s->out, 0);
    for (uint32_t off = 0; off < ids_len; off += 4) {
        const char *name = "";

        if (own_name && get_be32(ids + off) == own_id)
            name = own_name;
        if (sftp_reply_len(s) + 4 + strlen(name) > SFTP_MAX_PACKET)
            return false;
        (void)wb_cstring(&s->out, name);
    }
    wb_set_u32(&s->out, start, (uint32_t)(s->out.len - start - 4));
    return true;
}

/* users-groups-by-id@openssh.com: names for uids and gids, "" where the
 * id is not the image's owner. */
static void process_users_groups_by_id(struct sftp_session *s, uint32_t id,
                                       struct rd *req)
{
    const uint8_t *uids, *gids;
    uint32_t uids_len, gids_len;

    if (rd_string(req, &uids, &uids_len) ||
        rd_string(req, &gids, &gids_len) || uids_len % 4 != 0 ||
        gids_len % 4 != 0) {
        sftp_send_malformed(s, id);
        return;
    }

    sftp_reply_begin(s, SSH_FXP_EXTENDED_REPLY, id);
    if (!put_names(s, uids, uids_len, s->opts.uid, s->opts.user_name) ||
        !put_names(s, gids, gids_len, s->opts.gid, s->opts.group_name)) {
        sftp_reply_cancel(s);
        sftp_send_status(s, id, SSH_FX_FAILURE,
                         "Too many ids for one reply");
        return;
    }
    sftp_reply_end(s);
}

/* hardlink@openssh.com is not advertised, but a client may still try. */
static void process_hardlink(struct sftp_session *s, uint32_t id,
                             struct rd *req)
{
    (void)req;
    sftp_send_status(s, id, SSH_FX_OP_UNSUPPORTED,
                     "Hard links are not supported on this image");
}

/* In the order OpenSSH's sftp-server lists them. */
const struct sftp_extension_handler sftp_extension_handlers[] = {
    { "posix-rename@openssh.com", "1", process_posix_rename,
      SFTP_CHANGES_IMAGE },
    { "statvfs@openssh.com", "2", process_statvfs, 0 },
    { "fstatvfs@openssh.com", "2", process_fstatvfs, 0 },
    { "hardlink@openssh.com", NULL, process_hardlink, 0 },
    { "fsync@openssh.com", "1", process_fsync, 0 },
    { "lsetstat@openssh.com", "1", sftp_process_setstat,
      SFTP_CHANGES_IMAGE },
    { "limits@openssh.com", "1", process_limits, 0 },
    { "expand-path@openssh.com", "1", process_expand_path, 0 },
    { "copy-data", "1", process_copy_data, SFTP_CHANGES_IMAGE },
    { "home-directory", "1", process_home_directory, 0 },
    { "users-groups-by-id@openssh.com", "1", process_users_groups_by_id,
      0 },
    { NULL, NULL, NULL, 0 },
};
