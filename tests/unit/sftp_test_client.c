/*
 * The SFTP test client (see sftp_test_client.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sftp_test_client.h"

struct sftp_options st_default_options(void)
{
    struct sftp_options opts = {
        .uid = ST_UID,
        .gid = ST_GID,
        .user_name = "alice",
        .group_name = "staff",
        .umask = SFTP_DEFAULT_UMASK,
    };

    return opts;
}

static void st_mount(struct st *t)
{
    struct lfs_mount_options mount_opts = { .read_only = t->opts.read_only };
    struct vfs_lfs_options vfs_opts = {
        .uid = t->opts.uid,
        .gid = t->opts.gid,
        .read_only = t->opts.read_only,
    };

    assert_int_equal(lfs_mount(&t->lfs, t->bd, &mount_opts), 0);
    t->vfs = vfs_lfs_new(t->lfs, &vfs_opts);
    assert_non_null(t->vfs);
    t->s = sftp_session_new(t->vfs, &t->opts);
    assert_non_null(t->s);
}

static void st_init(struct st *t)
{
    uint8_t init[9] = { 0, 0, 0, 5, SSH_FXP_INIT, 0, 0, 0, 3 };

    assert_int_equal(st_feed(t, init, sizeof(init)), sizeof(init));
    assert_int_equal(st_read_reply(t), 0);
    assert_int_equal(t->type, SSH_FXP_VERSION);
}

static struct st *st_create(struct bd *bd, const struct sftp_options *opts)
{
    struct st *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    t->opts = opts ? *opts : st_default_options();
    t->next_id = 1;
    wb_init(&t->req, 0);
    if (bd) {
        t->bd = bd;
    } else {
        struct lfs_format_options fmt = { .block_size = ST_BLOCK_SIZE };

        t->bd = bd_mem_new((uint64_t)ST_BLOCK_SIZE * ST_BLOCK_COUNT);
        assert_non_null(t->bd);
        assert_int_equal(lfs_format(t->bd, &fmt), 0);
    }
    st_mount(t);
    return t;
}

struct st *st_new_uninitialized(const struct sftp_options *opts)
{
    return st_create(NULL, opts);
}

struct st *st_new(const struct sftp_options *opts)
{
    struct st *t = st_create(NULL, opts);

    st_init(t);
    return t;
}

struct st *st_new_on(struct bd *bd, const struct sftp_options *opts)
{
    struct st *t = st_create(bd, opts);

    st_init(t);
    return t;
}

static void st_unmount(struct st *t)
{
    sftp_session_free(t->s);
    vfs_free(t->vfs);
    assert_int_equal(lfs_unmount(t->lfs), 0);
    t->s = NULL;
    t->vfs = NULL;
    t->lfs = NULL;
}

void st_free(struct st *t)
{
    st_unmount(t);
    bd_close(t->bd);
    wb_free(&t->req);
    free(t->reply);
    free(t);
}

void st_remount(struct st *t)
{
    st_unmount(t);
    st_mount(t);
    st_init(t);
}

size_t st_feed(struct st *t, const void *data, size_t len)
{
    return sftp_session_input(t->s, data, len);
}

size_t st_output_len(struct st *t)
{
    size_t len;

    (void)sftp_session_output(t->s, &len);
    return len;
}

int st_read_reply(struct st *t)
{
    size_t len;
    const uint8_t *out = sftp_session_output(t->s, &len);

    if (len < 4)
        return -1;

    uint32_t plen = get_be32(out);

    if (len - 4 < plen)
        return -1;
    assert_true(plen >= 1);

    free(t->reply);
    t->type = out[4];
    if (t->type == SSH_FXP_VERSION) {
        t->id = 0;
        t->reply_len = plen - 1;
        t->reply = malloc(t->reply_len + 1);
        memcpy(t->reply, out + 5, t->reply_len);
    } else {
        assert_true(plen >= 5);
        t->id = get_be32(out + 5);
        t->reply_len = plen - 5;
        t->reply = malloc(t->reply_len + 1);
        memcpy(t->reply, out + 9, t->reply_len);
    }
    rd_init(&t->rd, t->reply, t->reply_len);
    sftp_session_output_sent(t->s, 4 + (size_t)plen);
    return 0;
}

void st_begin(struct st *t, uint8_t type)
{
    wb_reset(&t->req);
    t->req_id = t->next_id++;
    assert_int_equal(wb_u32(&t->req, 0), 0);
    assert_int_equal(wb_u8(&t->req, type), 0);
    assert_int_equal(wb_u32(&t->req, t->req_id), 0);
}

void st_send(struct st *t)
{
    wb_set_u32(&t->req, 0, (uint32_t)(t->req.len - 4));
    assert_false(t->req.failed);
    assert_int_equal(st_feed(t, t->req.data, t->req.len), t->req.len);
    assert_int_equal(st_read_reply(t), 0);
    assert_int_equal(t->id, t->req_id);

    /* One request, one reply. */
    assert_int_equal(st_output_len(t), 0);
}

uint32_t st_status(struct st *t)
{
    const uint8_t *msg, *lang;
    uint32_t code, msg_len, lang_len;

    assert_int_equal(t->type, SSH_FXP_STATUS);
    assert_int_equal(rd_u32(&t->rd, &code), 0);
    assert_int_equal(rd_string(&t->rd, &msg, &msg_len), 0);
    assert_int_equal(rd_string(&t->rd, &lang, &lang_len), 0);
    assert_int_equal(lang_len, 0);
    assert_int_equal(rd_left(&t->rd), 0);
    assert_true(msg_len > 0 && msg_len < sizeof(t->message));
    memcpy(t->message, msg, msg_len);
    t->message[msg_len] = '\0';
    t->status = code;
    return code;
}

/* The status of the last reply, or SSH_FX_OK when it is another type. */
static uint32_t reply_status(struct st *t)
{
    return t->type == SSH_FXP_STATUS ? st_status(t) : SSH_FX_OK;
}

void st_put_attrs(struct wbuf *w, const struct vfs_attr *attr)
{
    uint32_t flags = 0;

    if (attr->fields & VFS_ATTR_SIZE)
        flags |= SSH_FILEXFER_ATTR_SIZE;
    if (attr->fields & VFS_ATTR_OWNER)
        flags |= SSH_FILEXFER_ATTR_UIDGID;
    if (attr->fields & VFS_ATTR_MODE)
        flags |= SSH_FILEXFER_ATTR_PERMISSIONS;
    if (attr->fields & VFS_ATTR_TIMES)
        flags |= SSH_FILEXFER_ATTR_ACMODTIME;
    assert_int_equal(wb_u32(w, flags), 0);
    if (flags & SSH_FILEXFER_ATTR_SIZE)
        assert_int_equal(wb_u64(w, attr->size), 0);
    if (flags & SSH_FILEXFER_ATTR_UIDGID) {
        assert_int_equal(wb_u32(w, attr->uid), 0);
        assert_int_equal(wb_u32(w, attr->gid), 0);
    }
    if (flags & SSH_FILEXFER_ATTR_PERMISSIONS)
        assert_int_equal(wb_u32(w, attr->mode), 0);
    if (flags & SSH_FILEXFER_ATTR_ACMODTIME) {
        assert_int_equal(wb_u32(w, (uint32_t)attr->atime), 0);
        assert_int_equal(wb_u32(w, (uint32_t)attr->mtime), 0);
    }
}

void st_get_attrs(struct st *t, struct vfs_attr *attr)
{
    uint32_t flags, u;

    memset(attr, 0, sizeof(*attr));
    assert_int_equal(rd_u32(&t->rd, &flags), 0);
    assert_int_equal(flags & ~0xfu, 0);
    if (flags & SSH_FILEXFER_ATTR_SIZE) {
        assert_int_equal(rd_u64(&t->rd, &attr->size), 0);
        attr->fields |= VFS_ATTR_SIZE;
    }
    if (flags & SSH_FILEXFER_ATTR_UIDGID) {
        assert_int_equal(rd_u32(&t->rd, &attr->uid), 0);
        assert_int_equal(rd_u32(&t->rd, &attr->gid), 0);
        attr->fields |= VFS_ATTR_OWNER;
    }
    if (flags & SSH_FILEXFER_ATTR_PERMISSIONS) {
        assert_int_equal(rd_u32(&t->rd, &attr->mode), 0);
        attr->fields |= VFS_ATTR_MODE;
    }
    if (flags & SSH_FILEXFER_ATTR_ACMODTIME) {
        assert_int_equal(rd_u32(&t->rd, &u), 0);
        attr->atime = u;
        assert_int_equal(rd_u32(&t->rd, &u), 0);
        attr->mtime = u;
        attr->fields |= VFS_ATTR_TIMES;
    }
}

uint32_t st_open(struct st *t, const char *path, uint32_t pflags, int perm)
{
    struct vfs_attr attr = { .fields = 0 };

    if (perm >= 0) {
        attr.fields = VFS_ATTR_MODE;
        attr.mode = (uint32_t)perm;
    }
    st_begin(t, SSH_FXP_OPEN);
    assert_int_equal(wb_cstring(&t->req, path), 0);
    assert_int_equal(wb_u32(&t->req, pflags), 0);
    st_put_attrs(&t->req, &attr);
    st_send(t);
    if (t->type == SSH_FXP_STATUS)
        return st_status(t);

    const uint8_t *h;

    assert_int_equal(t->type, SSH_FXP_HANDLE);
    assert_int_equal(rd_string(&t->rd, &h, &t->handle_len), 0);
    assert_true(t->handle_len <= sizeof(t->handle));
    memcpy(t->handle, h, t->handle_len);
    return SSH_FX_OK;
}

uint32_t st_close(struct st *t, const uint8_t *handle, uint32_t len)
{
    st_begin(t, SSH_FXP_CLOSE);
    assert_int_equal(wb_string(&t->req, handle, len), 0);
    st_send(t);
    return st_status(t);
}

uint32_t st_write(struct st *t, const uint8_t *handle, uint32_t handle_len,
                  uint64_t off, const void *data, uint32_t len)
{
    st_begin(t, SSH_FXP_WRITE);
    assert_int_equal(wb_string(&t->req, handle, handle_len), 0);
    assert_int_equal(wb_u64(&t->req, off), 0);
    assert_int_equal(wb_string(&t->req, data, len), 0);
    st_send(t);
    return st_status(t);
}

uint32_t st_read(struct st *t, const uint8_t *handle, uint32_t handle_len,
                 uint64_t off, uint32_t want, const uint8_t **data,
                 uint32_t *len)
{
    st_begin(t, SSH_FXP_READ);
    assert_int_equal(wb_string(&t->req, handle, handle_len), 0);
    assert_int_equal(wb_u64(&t->req, off), 0);
    assert_int_equal(wb_u32(&t->req, want), 0);
    st_send(t);
    if (t->type == SSH_FXP_STATUS)
        return st_status(t);
    assert_int_equal(t->type, SSH_FXP_DATA);
    assert_int_equal(rd_string(&t->rd, data, len), 0);
    assert_int_equal(rd_left(&t->rd), 0);
    return SSH_FX_OK;
}

void st_path_request(struct st *t, uint8_t type, const char *path)
{
    st_begin(t, type);
    assert_int_equal(wb_cstring(&t->req, path), 0);
    st_send(t);
}

uint32_t st_path_status(struct st *t, uint8_t type, const char *path)
{
    st_path_request(t, type, path);
    return reply_status(t);
}

uint32_t st_mkdir(struct st *t, const char *path, int perm)
{
    struct vfs_attr attr = { .fields = 0 };

    if (perm >= 0) {
        attr.fields = VFS_ATTR_MODE;
        attr.mode = (uint32_t)perm;
    }
    st_begin(t, SSH_FXP_MKDIR);
    assert_int_equal(wb_cstring(&t->req, path), 0);
    st_put_attrs(&t->req, &attr);
    st_send(t);
    return st_status(t);
}

uint32_t st_rename(struct st *t, const char *from, const char *to)
{
    st_begin(t, SSH_FXP_RENAME);
    assert_int_equal(wb_cstring(&t->req, from), 0);
    assert_int_equal(wb_cstring(&t->req, to), 0);
    st_send(t);
    return st_status(t);
}

uint32_t st_posix_rename(struct st *t, const char *from, const char *to)
{
    st_begin(t, SSH_FXP_EXTENDED);
    assert_int_equal(wb_cstring(&t->req, "posix-rename@openssh.com"), 0);
    assert_int_equal(wb_cstring(&t->req, from), 0);
    assert_int_equal(wb_cstring(&t->req, to), 0);
    st_send(t);
    return st_status(t);
}

uint32_t st_stat(struct st *t, uint8_t type, const char *path,
                 struct vfs_attr *attr)
{
    st_path_request(t, type, path);
    if (t->type == SSH_FXP_STATUS)
        return st_status(t);
    assert_int_equal(t->type, SSH_FXP_ATTRS);
    st_get_attrs(t, attr);
    assert_int_equal(rd_left(&t->rd), 0);
    return SSH_FX_OK;
}

uint32_t st_fstat(struct st *t, const uint8_t *handle, uint32_t len,
                  struct vfs_attr *attr)
{
    st_begin(t, SSH_FXP_FSTAT);
    assert_int_equal(wb_string(&t->req, handle, len), 0);
    st_send(t);
    if (t->type == SSH_FXP_STATUS)
        return st_status(t);
    assert_int_equal(t->type, SSH_FXP_ATTRS);
    st_get_attrs(t, attr);
    return SSH_FX_OK;
}

uint32_t st_setstat(struct st *t, const char *path,
                    const struct vfs_attr *attr)
{
    st_begin(t, SSH_FXP_SETSTAT);
    assert_int_equal(wb_cstring(&t->req, path), 0);
    st_put_attrs(&t->req, attr);
    st_send(t);
    return st_status(t);
}

uint32_t st_realpath(struct st *t, const char *path, char *out, size_t size)
{
    const uint8_t *name, *longname;
    uint32_t count, name_len, long_len;
    struct vfs_attr attr;

    st_path_request(t, SSH_FXP_REALPATH, path);
    if (t->type == SSH_FXP_STATUS)
        return st_status(t);
    assert_int_equal(t->type, SSH_FXP_NAME);
    assert_int_equal(rd_u32(&t->rd, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(rd_string(&t->rd, &name, &name_len), 0);
    assert_int_equal(rd_string(&t->rd, &longname, &long_len), 0);
    st_get_attrs(t, &attr);
    assert_int_equal(attr.fields, 0);
    assert_true(name_len < size);
    memcpy(out, name, name_len);
    out[name_len] = '\0';
    return SSH_FX_OK;
}

void st_put_file(struct st *t, const char *path, const void *data,
                 size_t len)
{
    const uint8_t *p = data;
    uint8_t handle[64];
    uint32_t handle_len;

    assert_int_equal(st_open(t, path, SSH_FXF_WRITE | SSH_FXF_CREAT |
                             SSH_FXF_TRUNC, -1), SSH_FX_OK);
    memcpy(handle, t->handle, t->handle_len);
    handle_len = t->handle_len;
    for (size_t off = 0; off < len; off += 32768) {
        size_t chunk = len - off < 32768 ? len - off : 32768;

        assert_int_equal(st_write(t, handle, handle_len, off, p + off,
                                  (uint32_t)chunk), SSH_FX_OK);
    }
    assert_int_equal(st_close(t, handle, handle_len), SSH_FX_OK);
}

uint8_t *st_get_file(struct st *t, const char *path, size_t *len)
{
    uint8_t handle[64];
    uint32_t handle_len;
    uint8_t *out = NULL;
    size_t out_len = 0;

    assert_int_equal(st_open(t, path, SSH_FXF_READ, -1), SSH_FX_OK);
    memcpy(handle, t->handle, t->handle_len);
    handle_len = t->handle_len;
    for (;;) {
        const uint8_t *data;
        uint32_t n;
        uint32_t status = st_read(t, handle, handle_len, out_len, 65536,
                                  &data, &n);

        if (status == SSH_FX_EOF)
            break;
        assert_int_equal(status, SSH_FX_OK);
        out = realloc(out, out_len + n + 1);
        assert_non_null(out);
        memcpy(out + out_len, data, n);
        out_len += n;
    }
    assert_int_equal(st_close(t, handle, handle_len), SSH_FX_OK);
    *len = out_len;
    return out ? out : calloc(1, 1);
}
