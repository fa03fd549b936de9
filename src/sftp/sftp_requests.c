/*
 * The request handlers of SFTP version 3.
 *
 * Every handler has the same shape: parse the whole request, act through
 * the vfs, send exactly one reply.  A request that cannot be parsed gets
 * SSH_FX_BAD_MESSAGE, and the session goes on with the next packet.
 * Status codes follow what OpenSSH's sftp-server sends in the same case.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sftp/sftp_internal.h"

/* Permissions of new entries whose request gives none, before the
 * umask, as open(2) and mkdir(2) get them in OpenSSH's server. */
#define SFTP_CREATE_FILE_MODE 0666u
#define SFTP_CREATE_DIR_MODE 0777u

/* Permissions of "." and ".." when their directory cannot be read. */
#define SFTP_FALLBACK_DIR_MODE 0755u

/* Maximum longname length: the name plus mode, link count, owner, group,
 * size and date. */
#define SFTP_LONGNAME_MAX (VFS_NAME_MAX + 256)

static int vfs_flags_of(uint32_t pflags)
{
    int flags = 0;

    if (pflags & SSH_FXF_READ)
        flags |= VFS_O_READ;
    if (pflags & SSH_FXF_WRITE)
        flags |= VFS_O_WRITE;
    if (pflags & SSH_FXF_APPEND)
        flags |= VFS_O_APPEND;
    if (pflags & SSH_FXF_CREAT)
        flags |= VFS_O_CREAT;
    if (pflags & SSH_FXF_TRUNC)
        flags |= VFS_O_TRUNC;
    if (pflags & SSH_FXF_EXCL)
        flags |= VFS_O_EXCL;
    return flags;
}

/* "READ,WRITE,..." for logs. */
static void format_open_flags(uint32_t pflags, char *out, size_t size)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        { SSH_FXF_READ, "READ" },     { SSH_FXF_WRITE, "WRITE" },
        { SSH_FXF_APPEND, "APPEND" }, { SSH_FXF_CREAT, "CREATE" },
        { SSH_FXF_TRUNC, "TRUNCATE" }, { SSH_FXF_EXCL, "EXCL" },
    };
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(pflags & names[i].bit) || len >= size)
            continue;
        len += (size_t)snprintf(out + len, size - len, "%s%s",
                                len ? "," : "", names[i].name);
    }
}

/// Files ///

/* OPEN: a file handle; CREAT takes its permissions from the attributes. */
static void process_open(struct sftp_session *s, uint32_t id,
                         struct rd *req)
{
    char path[SFTP_PATH_MAX], flag_names[64];
    struct vfs_attr attr;
    uint32_t pflags;

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;
    if (rd_u32(req, &pflags) || sftp_get_attrs(req, &attr)) {
        sftp_send_malformed(s, id);
        return;
    }

    uint32_t mode = (attr.fields & VFS_ATTR_MODE) ? attr.mode
                                                  : SFTP_CREATE_FILE_MODE;

    mode &= VFS_PERM_MASK & ~s->opts.umask;

    format_open_flags(pflags, flag_names, sizeof(flag_names));
    if (pflags & SSH_FXF_CREAT)
        sftp_log(s, SFTP_LOG_INFO, "open \"%s\" flags %s mode 0%o", path,
                 flag_names, mode);
    else
        sftp_log(s, SFTP_LOG_INFO, "open \"%s\" flags %s", path,
                 flag_names);
    if (s->opts.read_only &&
        (pflags & (SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC))) {
        sftp_log(s, SFTP_LOG_INFO, "request %u: open for writing "
                 "rejected: read-only", id);
        sftp_send_status(s, id, SSH_FX_PERMISSION_DENIED,
                         "The image is read-only");
        return;
    }

    struct sftp_handle *h = sftp_handle_new(s, SFTP_HANDLE_FILE, path);

    if (!h) {
        sftp_send_status(s, id, SSH_FX_FAILURE, "Too many open handles");
        return;
    }

    int err = vfs_open(s->vfs, path, vfs_flags_of(pflags), mode, &h->file);

    if (err) {
        sftp_handle_release(s, h);
        sftp_send_vfs_status(s, id, err);
        return;
    }
    h->open_flags = pflags;
    sftp_send_handle(s, id, h);
}

static void process_close(struct sftp_session *s, uint32_t id,
                          struct rd *req)
{
    struct sftp_handle *h = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FREE,
                                                SSH_FX_NO_SUCH_FILE);
    int err;

    if (!h)
        return;
    if (h->kind == SFTP_HANDLE_FILE) {
        err = vfs_close(s->vfs, h->file);
        sftp_log(s, SFTP_LOG_INFO,
                 "close \"%s\" bytes read %llu written %llu", h->path,
                 (unsigned long long)h->bytes_read,
                 (unsigned long long)h->bytes_written);
    } else {
        err = vfs_closedir(s->vfs, h->dir);
        sftp_log(s, SFTP_LOG_INFO, "closedir \"%s\"", h->path);
    }
    if (err)
        sftp_log(s, SFTP_LOG_ERROR, "close \"%s\": %s", h->path,
                 vfs_strerror(err));
    sftp_handle_release(s, h);
    sftp_send_vfs_status(s, id, err);
}

/*
 * READ: up to SFTP_MAX_READ bytes, read straight into the reply.  The
 * reply is as long as requested unless the file ends first, because sshfs
 * takes a short reply for the end of the file.  A failed read is
 * SSH_FX_FAILURE, never EOF, so a failed copy is not taken for a
 * complete one.
 */
static void process_read(struct sftp_session *s, uint32_t id,
                         struct rd *req)
{
    struct sftp_handle *h = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FILE,
                                                SSH_FX_FAILURE);
    uint64_t off;
    uint32_t len;

    if (!h)
        return;
    if (rd_u64(req, &off) || rd_u32(req, &len)) {
        sftp_send_malformed(s, id);
        return;
    }
    if (len > SFTP_MAX_READ)
        len = SFTP_MAX_READ;

    sftp_reply_begin(s, SSH_FXP_DATA, id);

    uint8_t *data = wb_reserve(&s->out, 4 + (size_t)len);

    if (!data) {
        sftp_reply_end(s);
        return;
    }

    ssize_t n = vfs_pread(s->vfs, h->file, data + 4, len, off);

    if (n < 0 || (n == 0 && len > 0)) {
        sftp_reply_cancel(s);
        if (n < 0) {
            sftp_log(s, SFTP_LOG_ERROR, "read \"%s\" at %llu: %s", h->path,
                     (unsigned long long)off, vfs_strerror((int)n));
            sftp_send_vfs_status(s, id, (int)n);
        } else {
            sftp_send_status(s, id, SSH_FX_EOF, "End of file");
        }
        return;
    }
    put_be32(data, (uint32_t)n);
    wb_commit(&s->out, 4 + (size_t)n);
    sftp_reply_end(s);
    h->bytes_read += (uint64_t)n;
}

/* WRITE: all of the data at the offset (at the end with APPEND). */
static void process_write(struct sftp_session *s, uint32_t id,
                          struct rd *req)
{
    struct sftp_handle *h = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FILE,
                                                SSH_FX_FAILURE);
    const uint8_t *data;
    uint32_t len;
    uint64_t off;

    if (!h)
        return;
    if (rd_u64(req, &off) || rd_string(req, &data, &len)) {
        sftp_send_malformed(s, id);
        return;
    }

    ssize_t n = vfs_pwrite(s->vfs, h->file, data, len, off);

    if (n < 0) {
        sftp_log(s, SFTP_LOG_ERROR, "write \"%s\" at %llu: %s", h->path,
                 (unsigned long long)off, vfs_strerror((int)n));
        sftp_send_vfs_status(s, id, (int)n);
        return;
    }
    h->bytes_written += (uint64_t)n;
    sftp_send_status(s, id, SSH_FX_OK, "Success");
}

/// Attributes ///

/* STAT and LSTAT: the image has no symbolic links, so they agree. */
static void process_stat(struct sftp_session *s, uint32_t id, struct rd *req)
{
    char path[SFTP_PATH_MAX];
    struct vfs_attr attr;

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;

    int err = vfs_stat(s->vfs, path, &attr);

    if (err)
        sftp_send_vfs_status(s, id, err);
    else
        sftp_send_attrs(s, id, &attr);
}

static void process_fstat(struct sftp_session *s, uint32_t id,
                          struct rd *req)
{
    struct sftp_handle *h = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FILE,
                                                SSH_FX_FAILURE);
    struct vfs_attr attr;

    if (!h)
        return;

    int err = vfs_fstat(s->vfs, h->file, &attr);

    if (err)
        sftp_send_vfs_status(s, id, err);
    else
        sftp_send_attrs(s, id, &attr);
}

static void log_setstat(struct sftp_session *s, const char *path,
                        const struct vfs_attr *attr)
{
    if (attr->fields & VFS_ATTR_SIZE)
        sftp_log(s, SFTP_LOG_INFO, "set \"%s\" size %llu", path,
                 (unsigned long long)attr->size);
    if (attr->fields & VFS_ATTR_MODE)
        sftp_log(s, SFTP_LOG_INFO, "set \"%s\" mode %04o", path,
                 attr->mode & VFS_PERM_MASK);
    if (attr->fields & VFS_ATTR_TIMES)
        sftp_log(s, SFTP_LOG_INFO, "set \"%s\" modtime %lld", path,
                 (long long)attr->mtime);
    if (attr->fields & VFS_ATTR_OWNER)
        sftp_log(s, SFTP_LOG_INFO, "set \"%s\" owner %u group %u", path,
                 attr->uid, attr->gid);
}

/* SETSTAT, and lsetstat@openssh.com, which is the same without links. */
void sftp_process_setstat(struct sftp_session *s, uint32_t id,
                          struct rd *req)
{
    char path[SFTP_PATH_MAX];
    struct vfs_attr attr;

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;
    if (sftp_get_attrs(req, &attr)) {
        sftp_send_malformed(s, id);
        return;
    }
    log_setstat(s, path, &attr);
    sftp_send_vfs_status(s, id, vfs_setstat(s->vfs, path, &attr));
}

static void process_fsetstat(struct sftp_session *s, uint32_t id,
                             struct rd *req)
{
    struct sftp_handle *h = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_FILE,
                                                SSH_FX_FAILURE);
    struct vfs_attr attr;

    if (!h)
        return;
    if (sftp_get_attrs(req, &attr)) {
        sftp_send_malformed(s, id);
        return;
    }
    log_setstat(s, h->path, &attr);
    sftp_send_vfs_status(s, id, vfs_fsetstat(s->vfs, h->file, &attr));
}

/// Directories ///

static void process_opendir(struct sftp_session *s, uint32_t id,
                            struct rd *req)
{
    char path[SFTP_PATH_MAX];

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;
    sftp_log(s, SFTP_LOG_INFO, "opendir \"%s\"", path);

    struct sftp_handle *h = sftp_handle_new(s, SFTP_HANDLE_DIR, path);

    if (!h) {
        sftp_send_status(s, id, SSH_FX_FAILURE, "Too many open handles");
        return;
    }

    int err = vfs_opendir(s->vfs, path, &h->dir);

    if (err) {
        sftp_handle_release(s, h);
        sftp_send_vfs_status(s, id, err);
        return;
    }
    sftp_send_handle(s, id, h);
}

/* Put the next entry in h->pending unless one waits there already:
 * "." and ".." first, then the directory's own entries.  Returns 1, 0 at
 * the end of the directory, or a vfs error. */
static int fill_pending(struct sftp_session *s, struct sftp_handle *h)
{
    struct vfs_dirent *ent = h->pending;

    if (h->has_pending)
        return 1;
    if (h->dots_sent < 2) {
        char parent[SFTP_PATH_MAX];
        const char *path = h->path;

        if (h->dots_sent == 1) {
            sftp_path_parent(h->path, parent);
            path = parent;
        }

        /* The directory may have been removed since it was opened: list
         * the dots anyway, with the attributes of an empty directory. */
        if (vfs_stat(s->vfs, path, &ent->attr) != VFS_OK) {
            memset(&ent->attr, 0, sizeof(ent->attr));
            ent->attr.fields = VFS_ATTR_MODE;
            ent->attr.mode = VFS_S_IFDIR | SFTP_FALLBACK_DIR_MODE;
        }
        strcpy(ent->name, h->dots_sent == 0 ? "." : "..");
        h->dots_sent++;
        h->has_pending = true;
        return 1;
    }

    int r = vfs_readdir(s->vfs, h->dir, ent);

    if (r == 1)
        h->has_pending = true;
    return r;
}

/*
 * READDIR: a NAME reply with up to SFTP_READDIR_MAX_ENTRIES entries in at
 * most SFTP_READDIR_MAX_BYTES, then EOF, repeated for every later call.
 * An entry that does not fit waits for the next call.
 */
static void process_readdir(struct sftp_session *s, uint32_t id,
                            struct rd *req)
{
    struct sftp_handle *h = sftp_get_handle_or_reply(s, id, req, SFTP_HANDLE_DIR,
                                                SSH_FX_FAILURE);
    char longname[SFTP_LONGNAME_MAX];
    time_t now = time(NULL);
    uint32_t count = 0;
    int r = 0;

    if (!h)
        return;
    sftp_reply_begin(s, SSH_FXP_NAME, id);

    size_t count_at = sftp_reply_len(s);

    (void)wb_u32(&s->out, 0);
    while (count < SFTP_READDIR_MAX_ENTRIES) {
        r = fill_pending(s, h);
        if (r <= 0)
            break;

        struct vfs_dirent *ent = h->pending;

        sftp_format_longname(longname, sizeof(longname), ent->name,
                             &ent->attr, s->opts.user_name,
                             s->opts.group_name, now);

        size_t entry_len = 4 + strlen(ent->name) + 4 + strlen(longname) +
                           sftp_attrs_len(&ent->attr);

        if (count > 0 &&
            sftp_reply_len(s) + entry_len > SFTP_READDIR_MAX_BYTES)
            break;
        (void)wb_cstring(&s->out, ent->name);
        (void)wb_cstring(&s->out, longname);
        (void)sftp_put_attrs(&s->out, &ent->attr);
        h->has_pending = false;
        count++;
    }

    if (count == 0) {
        sftp_reply_cancel(s);
        if (r < 0) {
            sftp_log(s, SFTP_LOG_ERROR, "readdir \"%s\": %s", h->path,
                     vfs_strerror(r));
            sftp_send_vfs_status(s, id, r);
        } else {
            sftp_send_status(s, id, SSH_FX_EOF, "End of file");
        }
        return;
    }
    wb_set_u32(&s->out, s->reply_start + count_at, count);
    sftp_reply_end(s);
}

static void process_remove(struct sftp_session *s, uint32_t id,
                           struct rd *req)
{
    char path[SFTP_PATH_MAX];

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;
    sftp_log(s, SFTP_LOG_INFO, "remove name \"%s\"", path);
    sftp_send_vfs_status(s, id, vfs_remove(s->vfs, path));
}

static void process_mkdir(struct sftp_session *s, uint32_t id,
                          struct rd *req)
{
    char path[SFTP_PATH_MAX];
    struct vfs_attr attr;

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;
    if (sftp_get_attrs(req, &attr)) {
        sftp_send_malformed(s, id);
        return;
    }

    uint32_t mode = (attr.fields & VFS_ATTR_MODE) ? attr.mode
                                                  : SFTP_CREATE_DIR_MODE;

    mode &= VFS_PERM_MASK & ~s->opts.umask;

    sftp_log(s, SFTP_LOG_INFO, "mkdir name \"%s\" mode 0%o", path, mode);
    sftp_send_vfs_status(s, id, vfs_mkdir(s->vfs, path, mode));
}

static void process_rmdir(struct sftp_session *s, uint32_t id,
                          struct rd *req)
{
    char path[SFTP_PATH_MAX];

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;
    sftp_log(s, SFTP_LOG_INFO, "rmdir name \"%s\"", path);
    sftp_send_vfs_status(s, id, vfs_rmdir(s->vfs, path));
}

/// Names ///

/*
 * Reply to REALPATH (and expand-path@openssh.com) for a resolved path.
 * As realpath(3) in OpenSSH's server, the last component need not exist
 * (clients resolve the name of a file before creating it), but the
 * directory that would hold it must.
 */
void sftp_send_realpath(struct sftp_session *s, uint32_t id,
                        const char *path)
{
    char parent[SFTP_PATH_MAX];
    struct vfs_attr attr;
    int err = vfs_stat(s->vfs, path, &attr);

    if (err == VFS_ERR_NOENT) {
        sftp_path_parent(path, parent);
        err = vfs_stat(s->vfs, parent, &attr);
        if (!err && (attr.mode & VFS_S_IFMT) != VFS_S_IFDIR)
            err = VFS_ERR_NOTDIR;
    }
    if (err) {
        sftp_send_vfs_status(s, id, err);
        return;
    }
    sftp_send_name(s, id, path);
}

static void process_realpath(struct sftp_session *s, uint32_t id,
                             struct rd *req)
{
    char path[SFTP_PATH_MAX];

    if (!sftp_get_path_or_reply(s, id, req, path))
        return;
    sftp_send_realpath(s, id, path);
}

/* RENAME never replaces an existing target (posix-rename@openssh.com
 * does): OpenSSH's server gives SSH_FX_FAILURE then. */
static void process_rename(struct sftp_session *s, uint32_t id,
                           struct rd *req)
{
    char from[SFTP_PATH_MAX], to[SFTP_PATH_MAX];
    struct vfs_attr attr;

    if (!sftp_get_path_or_reply(s, id, req, from) ||
        !sftp_get_path_or_reply(s, id, req, to))
        return;
    sftp_log(s, SFTP_LOG_INFO, "rename old \"%s\" new \"%s\"", from, to);

    int err = vfs_stat(s->vfs, from, &attr);

    if (!err && vfs_stat(s->vfs, to, &attr) == VFS_OK)
        err = VFS_ERR_EXIST;
    if (!err)
        err = vfs_rename(s->vfs, from, to);
    sftp_send_vfs_status(s, id, err);
}

static void send_no_links(struct sftp_session *s, uint32_t id)
{
    sftp_send_status(s, id, SSH_FX_OP_UNSUPPORTED,
                     "Symbolic links are not supported on this image");
}

static void process_readlink(struct sftp_session *s, uint32_t id,
                             struct rd *req)
{
    char path[SFTP_PATH_MAX];

    if (sftp_get_path_or_reply(s, id, req, path))
        send_no_links(s, id);
}

static void process_symlink(struct sftp_session *s, uint32_t id,
                            struct rd *req)
{
    char link[SFTP_PATH_MAX], target[SFTP_PATH_MAX];

    if (sftp_get_path_or_reply(s, id, req, link) &&
        sftp_get_path_or_reply(s, id, req, target))
        send_no_links(s, id);
}

/// Extensions ///

static void process_extended(struct sftp_session *s, uint32_t id,
                             struct rd *req)
{
    const uint8_t *name;
    uint32_t len;

    if (rd_string(req, &name, &len)) {
        sftp_send_malformed(s, id);
        return;
    }
    for (const struct sftp_extension_handler *e = sftp_extension_handlers;
         e->name; e++) {
        if (strlen(e->name) != len || memcmp(e->name, name, len) != 0)
            continue;
        if ((e->flags & SFTP_CHANGES_IMAGE) && s->opts.read_only) {
            sftp_send_status(s, id, SSH_FX_PERMISSION_DENIED,
                             "The image is read-only");
            return;
        }
        e->handler(s, id, req);
        return;
    }
    sftp_log(s, SFTP_LOG_WARN, "request %u: unknown extended request "
             "\"%.*s\"", id, (int)(len > 100 ? 100 : len), (const char *)name);
    sftp_send_status(s, id, SSH_FX_OP_UNSUPPORTED,
                     "Unknown extended request");
}

const struct sftp_request_handler sftp_request_handlers[] = {
    { SSH_FXP_OPEN, "open", process_open, 0 },
    { SSH_FXP_CLOSE, "close", process_close, 0 },
    { SSH_FXP_READ, "read", process_read, 0 },
    { SSH_FXP_WRITE, "write", process_write, SFTP_CHANGES_IMAGE },
    { SSH_FXP_LSTAT, "lstat", process_stat, 0 },
    { SSH_FXP_FSTAT, "fstat", process_fstat, 0 },
    { SSH_FXP_SETSTAT, "setstat", sftp_process_setstat,
      SFTP_CHANGES_IMAGE },
    { SSH_FXP_FSETSTAT, "fsetstat", process_fsetstat, SFTP_CHANGES_IMAGE },
    { SSH_FXP_OPENDIR, "opendir", process_opendir, 0 },
    { SSH_FXP_READDIR, "readdir", process_readdir, 0 },
    { SSH_FXP_REMOVE, "remove", process_remove, SFTP_CHANGES_IMAGE },
    { SSH_FXP_MKDIR, "mkdir", process_mkdir, SFTP_CHANGES_IMAGE },
    { SSH_FXP_RMDIR, "rmdir", process_rmdir, SFTP_CHANGES_IMAGE },
    { SSH_FXP_REALPATH, "realpath", process_realpath, 0 },
    { SSH_FXP_STAT, "stat", process_stat, 0 },
    { SSH_FXP_RENAME, "rename", process_rename, SFTP_CHANGES_IMAGE },
    { SSH_FXP_READLINK, "readlink", process_readlink, 0 },
    { SSH_FXP_SYMLINK, "symlink", process_symlink, SFTP_CHANGES_IMAGE },
    { SSH_FXP_EXTENDED, "extended", process_extended, 0 },
    { 0, NULL, NULL, 0 },
};
