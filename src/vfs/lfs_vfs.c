/*
 * The vfs over a mounted littlefs image.
 *
 * littlefs stores names, sizes and user attributes only.  Permission bits
 * and times are user attributes (LFS_ATTR_MODE, LFS_ATTR_MTIME,
 * LFS_ATTR_ATIME), written only when they differ from what a reader would
 * assume without them, so images written by other littlefs tools read
 * back with sensible defaults.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lfs/lfs.h"
#include "vfs/vfs.h"

#define LFS_VFS_FILE_MODE 0644u
#define LFS_VFS_DIR_MODE 0755u

struct lfs_vfs {
    struct vfs base;
    struct lfs *lfs;
    struct vfs_lfs_options opts;
};

struct vfs_file {
    struct lfs_file *file;
    bool can_read;
    bool can_write;
};

struct vfs_dir {
    struct lfs_dir *dir;
    char *path;                /* the directory, to name its entries */
    size_t path_len;
};

/*
 * The entry whose attributes are read or written: a path, or an open
 * file.  An open file is addressed through its handle, so that a rename by
 * another request does not make it lose its attributes.
 */
struct attr_target {
    struct lfs *lfs;
    const char *path;          /* NULL when file is set */
    struct lfs_file *file;
};

static struct lfs_vfs *lfs_vfs_of(struct vfs *vfs)
{
    return (struct lfs_vfs *)vfs;
}

/// Errors ///

const char *vfs_strerror(int err)
{
    switch (err) {
    case VFS_OK: return "Success";
    case VFS_ERR_NOENT: return "No such file or directory";
    case VFS_ERR_NOTDIR: return "Not a directory";
    case VFS_ERR_ISDIR: return "Is a directory";
    case VFS_ERR_EXIST: return "File exists";
    case VFS_ERR_NOTEMPTY: return "Directory not empty";
    case VFS_ERR_NOSPC: return "No space left on the image";
    case VFS_ERR_FBIG: return "File too large";
    case VFS_ERR_NAMETOOLONG: return "File name too long";
    case VFS_ERR_INVAL: return "Invalid argument";
    case VFS_ERR_PERM: return "Operation not permitted";
    case VFS_ERR_ROFS: return "The image is read-only";
    case VFS_ERR_BADF: return "Handle not open for this operation";
    case VFS_ERR_BUSY: return "The root directory cannot be changed";
    case VFS_ERR_IO: return "Input/output error on the image";
    case VFS_ERR_CORRUPT: return "The image is corrupted";
    case VFS_ERR_AUTH: return "Encrypted data failed authentication";
    case VFS_ERR_NOMEM: return "Out of memory";
    case VFS_ERR_UNSUPPORTED: return "Operation not supported";
    }
    return "Unknown error";
}

int vfs_lfs_error(int lfs_err)
{
    switch (lfs_err) {
    case LFS_ERR_OK: return VFS_OK;
    case LFS_ERR_NOENT: return VFS_ERR_NOENT;
    case LFS_ERR_EXIST: return VFS_ERR_EXIST;
    case LFS_ERR_NOTDIR: return VFS_ERR_NOTDIR;
    case LFS_ERR_ISDIR: return VFS_ERR_ISDIR;
    case LFS_ERR_NOTEMPTY: return VFS_ERR_NOTEMPTY;
    case LFS_ERR_BADF: return VFS_ERR_BADF;
    case LFS_ERR_FBIG: return VFS_ERR_FBIG;
    case LFS_ERR_INVAL: return VFS_ERR_INVAL;
    case LFS_ERR_NOSPC: return VFS_ERR_NOSPC;
    case LFS_ERR_NOMEM: return VFS_ERR_NOMEM;
    case LFS_ERR_NAMETOOLONG: return VFS_ERR_NAMETOOLONG;
    case LFS_ERR_ROFS: return VFS_ERR_ROFS;
    case LFS_ERR_IO: return VFS_ERR_IO;
    case LFS_ERR_AUTH: return VFS_ERR_AUTH;
    case LFS_ERR_CORRUPT:
    case LFS_ERR_NOATTR:
    case LFS_ERR_NOTLFS:
    case LFS_ERR_VERSION:
    case LFS_ERR_GEOMETRY:
    case LFS_ERR_UNWRITTEN:
        return VFS_ERR_CORRUPT;
    }
    return VFS_ERR_IO;
}

/// Attributes ///

static ssize_t target_getattr(const struct attr_target *t, uint8_t type,
                              void *buf, size_t size)
{
    if (t->file)
        return lfs_file_getattr(t->file, type, buf, size);
    return lfs_getattr(t->lfs, t->path, type, buf, size);
}

static int target_setattr(const struct attr_target *t, uint8_t type,
                          const void *buf, size_t size)
{
    if (t->file)
        return lfs_file_setattr(t->file, type, buf, size);
    return lfs_setattr(t->lfs, t->path, type, buf, size);
}

/* Read a time attribute.  *found is false when the entry has none or an
 * unreadable one (written by another tool): the caller picks a default. */
static int read_time(const struct attr_target *t, uint8_t type,
                     int64_t *out, bool *found)
{
    uint8_t raw[LFS_TIME_ATTR_SIZE];
    struct timespec ts;
    ssize_t n = target_getattr(t, type, raw, sizeof(raw));

    *found = false;
    if (n == LFS_ERR_NOATTR)
        return 0;
    if (n < 0)
        return (int)n;
    if (lfs_time_decode(raw, (size_t)n, &ts) == 0) {
        *out = (int64_t)ts.tv_sec;
        *found = true;
    }
    return 0;
}

static int read_mode(const struct attr_target *t, bool is_dir,
                     uint32_t *mode)
{
    uint8_t raw[4];
    ssize_t n = target_getattr(t, LFS_ATTR_MODE, raw, sizeof(raw));

    *mode = is_dir ? LFS_VFS_DIR_MODE : LFS_VFS_FILE_MODE;
    if (n == LFS_ERR_NOATTR)
        return 0;
    if (n < 0)
        return (int)n;
    if (n == 4) {
        *mode = ((uint32_t)raw[0] | (uint32_t)raw[1] << 8 |
                 (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 24) &
                VFS_PERM_MASK;
    }
    return 0;
}

/* Fill attr from an entry's littlefs info and its user attributes. */
static int load_attrs(const struct lfs_vfs *lv, const struct attr_target *t,
                      const struct lfs_info *info, struct vfs_attr *attr)
{
    bool is_dir = info->type == LFS_TYPE_DIR;
    bool found;
    uint32_t perm;
    int err;

    memset(attr, 0, sizeof(*attr));
    attr->fields = VFS_ATTR_SIZE | VFS_ATTR_OWNER | VFS_ATTR_MODE |
                   VFS_ATTR_TIMES;
    attr->size = is_dir ? 0 : info->size;
    attr->uid = lv->opts.uid;
    attr->gid = lv->opts.gid;

    err = read_mode(t, is_dir, &perm);
    if (err)
        return err;
    attr->mode = (is_dir ? VFS_S_IFDIR : VFS_S_IFREG) | perm;

    err = read_time(t, LFS_ATTR_MTIME, &attr->mtime, &found);
    if (err)
        return err;
    err = read_time(t, LFS_ATTR_ATIME, &attr->atime, &found);
    if (err)
        return err;
    if (!found)
        attr->atime = attr->mtime;
    return 0;
}

static int write_mode(const struct attr_target *t, uint32_t mode)
{
    uint8_t raw[4];

    mode &= VFS_PERM_MASK;
    raw[0] = (uint8_t)mode;
    raw[1] = (uint8_t)(mode >> 8);
    raw[2] = (uint8_t)(mode >> 16);
    raw[3] = (uint8_t)(mode >> 24);
    return target_setattr(t, LFS_ATTR_MODE, raw, sizeof(raw));
}

static int write_time(const struct attr_target *t, uint8_t type,
                      int64_t seconds)
{
    uint8_t raw[LFS_TIME_ATTR_SIZE];
    struct timespec ts = { .tv_sec = (time_t)seconds, .tv_nsec = 0 };

    lfs_time_encode(&ts, raw);
    return target_setattr(t, type, raw, sizeof(raw));
}

/* atime is stored only once it differs from mtime.  After that it is kept
 * up to date, because removing it would cost a commit of its own. */
static int write_times(const struct attr_target *t, int64_t atime,
                       int64_t mtime)
{
    uint8_t raw[LFS_TIME_ATTR_SIZE];
    int err = write_time(t, LFS_ATTR_MTIME, mtime);

    if (err)
        return err;

    ssize_t n = target_getattr(t, LFS_ATTR_ATIME, raw, sizeof(raw));

    if (n < 0 && n != LFS_ERR_NOATTR)
        return (int)n;
    if (atime == mtime && n == LFS_ERR_NOATTR)
        return 0;
    return write_time(t, LFS_ATTR_ATIME, atime);
}

static int truncate_path(struct lfs *lfs, const char *path, uint64_t size)
{
    struct lfs_file *file;
    int err = lfs_file_open(lfs, &file, path, LFS_O_WRONLY);

    if (err)
        return err;
    err = lfs_file_truncate(file, size);
    if (err) {
        lfs_file_discard(file);
        return err;
    }
    return lfs_file_close(file);
}

/*
 * Apply a SETSTAT-style change.  The owner is checked first, so that a
 * rejected owner change leaves the entry as it was.  Then size, mode and
 * times are applied in that order, up to the first failure.
 */
static int apply_attrs(struct lfs_vfs *lv, const struct attr_target *t,
                       const struct vfs_attr *attr, bool can_truncate)
{
    int err;

    if (lv->opts.read_only)
        return VFS_ERR_ROFS;
    if ((attr->fields & VFS_ATTR_OWNER) &&
        (attr->uid != lv->opts.uid || attr->gid != lv->opts.gid))
        return VFS_ERR_PERM;

    if (attr->fields & VFS_ATTR_SIZE) {
        if (!can_truncate)
            return VFS_ERR_INVAL;
        if (t->file)
            err = lfs_file_truncate(t->file, attr->size);
        else
            err = truncate_path(t->lfs, t->path, attr->size);
        if (err)
            return vfs_lfs_error(err);
    }
    if (attr->fields & VFS_ATTR_MODE) {
        err = write_mode(t, attr->mode);
        if (err)
            return vfs_lfs_error(err);
    }
    if (attr->fields & VFS_ATTR_TIMES) {
        err = write_times(t, attr->atime, attr->mtime);
        if (err)
            return vfs_lfs_error(err);
    }
    return VFS_OK;
}

/// Paths ///

static bool is_root(const char *path)
{
    return path[0] == '/' && path[1] == '\0';
}

static int lfs_vfs_stat(struct vfs *vfs, const char *path,
                        struct vfs_attr *attr)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct attr_target t = { .lfs = lv->lfs, .path = path };
    struct lfs_info info;
    int err = lfs_stat(lv->lfs, path, &info);

    if (!err)
        err = load_attrs(lv, &t, &info, attr);
    return vfs_lfs_error(err);
}

static int lfs_vfs_setstat(struct vfs *vfs, const char *path,
                           const struct vfs_attr *attr)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct attr_target t = { .lfs = lv->lfs, .path = path };
    struct lfs_info info;
    int err = lfs_stat(lv->lfs, path, &info);

    if (err)
        return vfs_lfs_error(err);
    return apply_attrs(lv, &t, attr, true);
}

static int lfs_vfs_mkdir(struct vfs *vfs, const char *path, uint32_t mode)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct attr_target t = { .lfs = lv->lfs, .path = path };
    struct timespec now;
    int err;

    if (lv->opts.read_only)
        return VFS_ERR_ROFS;
    err = lfs_mkdir(lv->lfs, path);
    if (err)
        return vfs_lfs_error(err);

    /* littlefs stamps the mtime of files only: give directories one too,
     * so that listings do not show them as made in 1970. */
    clock_gettime(CLOCK_REALTIME, &now);
    err = write_time(&t, LFS_ATTR_MTIME, (int64_t)now.tv_sec);
    if (!err && (mode & VFS_PERM_MASK) != LFS_VFS_DIR_MODE)
        err = write_mode(&t, mode);
    return vfs_lfs_error(err);
}

static int lfs_vfs_remove(struct vfs *vfs, const char *path)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct lfs_info info;
    int err;

    if (lv->opts.read_only)
        return VFS_ERR_ROFS;
    err = lfs_stat(lv->lfs, path, &info);
    if (err)
        return vfs_lfs_error(err);
    if (info.type == LFS_TYPE_DIR)
        return VFS_ERR_ISDIR;
    return vfs_lfs_error(lfs_remove(lv->lfs, path));
}

static int lfs_vfs_rmdir(struct vfs *vfs, const char *path)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct lfs_info info;
    int err;

    if (lv->opts.read_only)
        return VFS_ERR_ROFS;
    err = lfs_stat(lv->lfs, path, &info);
    if (err)
        return vfs_lfs_error(err);
    if (info.type != LFS_TYPE_DIR)
        return VFS_ERR_NOTDIR;
    if (is_root(path))
        return VFS_ERR_BUSY;
    return vfs_lfs_error(lfs_remove(lv->lfs, path));
}

static int lfs_vfs_rename(struct vfs *vfs, const char *from, const char *to)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct lfs_info info;
    int err;

    if (lv->opts.read_only)
        return VFS_ERR_ROFS;
    err = lfs_stat(lv->lfs, from, &info);
    if (err)
        return vfs_lfs_error(err);
    if (is_root(from) || is_root(to))
        return VFS_ERR_BUSY;
    return vfs_lfs_error(lfs_rename(lv->lfs, from, to));
}

static int lfs_vfs_statvfs(struct vfs *vfs, struct vfs_statvfs *st)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct lfs_fsinfo info;
    int err = lfs_fs_stat(lv->lfs, &info);

    if (err)
        return vfs_lfs_error(err);

    /* lfs_fs_size walks the whole image: statvfs costs time
     * proportional to the metadata and the number of file blocks. */
    int64_t used = lfs_fs_size(lv->lfs);

    if (used < 0)
        return vfs_lfs_error((int)used);
    if ((uint64_t)used > info.block_count)
        used = info.block_count;

    memset(st, 0, sizeof(*st));
    st->block_size = info.block_size;
    st->blocks = info.block_count;
    st->blocks_free = info.block_count - (uint64_t)used;

    /* littlefs has no inode table: every file needs at least a share of
     * a metadata block, so free blocks bound the files that still fit. */
    st->files = st->blocks;
    st->files_free = st->blocks_free;
    st->name_max = info.name_max;
    st->read_only = lv->opts.read_only;
    return VFS_OK;
}

/// Files ///

static int lfs_vfs_open(struct vfs *vfs, const char *path, int flags,
                        uint32_t mode, struct vfs_file **out)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    bool can_write = (flags & VFS_O_WRITE) != 0;
    bool can_read = (flags & VFS_O_READ) != 0 || !can_write;
    bool changes = can_write || (flags & (VFS_O_CREAT | VFS_O_TRUNC));
    bool created = false;
    struct lfs_info info;
    int lflags = 0;
    int err;

    if (changes && lv->opts.read_only)
        return VFS_ERR_ROFS;

    /* littlefs opens for writing whenever CREAT or TRUNC is set; the
     * handle still refuses writes the client did not open it for. */
    if (can_read)
        lflags |= LFS_O_RDONLY;
    if (changes)
        lflags |= LFS_O_WRONLY;
    if (flags & VFS_O_APPEND)
        lflags |= LFS_O_APPEND;
    if (flags & VFS_O_CREAT) {
        lflags |= LFS_O_CREAT;
        if (flags & VFS_O_EXCL)
            lflags |= LFS_O_EXCL;
        err = lfs_stat(lv->lfs, path, &info);
        if (err && err != LFS_ERR_NOENT)
            return vfs_lfs_error(err);
        created = err == LFS_ERR_NOENT;
    }
    if (flags & VFS_O_TRUNC)
        lflags |= LFS_O_TRUNC;

    struct vfs_file *f = calloc(1, sizeof(*f));

    if (!f)
        return VFS_ERR_NOMEM;
    err = lfs_file_open(lv->lfs, &f->file, path, lflags);
    if (err) {
        free(f);
        return vfs_lfs_error(err);
    }
    f->can_read = can_read;
    f->can_write = can_write;

    if (created && (mode & VFS_PERM_MASK) != LFS_VFS_FILE_MODE) {
        struct attr_target t = { .lfs = lv->lfs, .file = f->file };

        err = write_mode(&t, mode);
        if (err) {
            lfs_file_discard(f->file);
            free(f);
            return vfs_lfs_error(err);
        }
    }
    *out = f;
    return VFS_OK;
}

static int lfs_vfs_close(struct vfs *vfs, struct vfs_file *f)
{
    int err = lfs_file_close(f->file);

    (void)vfs;
    free(f);
    return vfs_lfs_error(err);
}

static ssize_t lfs_vfs_pread(struct vfs *vfs, struct vfs_file *f, void *buf,
                             size_t len, uint64_t off)
{
    size_t done = 0;

    (void)vfs;
    if (!f->can_read)
        return VFS_ERR_BADF;
    while (done < len) {
        ssize_t n = lfs_file_pread(f->file, (uint8_t *)buf + done,
                                   len - done, off + done);

        if (n < 0)
            return vfs_lfs_error((int)n);
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static ssize_t lfs_vfs_pwrite(struct vfs *vfs, struct vfs_file *f,
                              const void *buf, size_t len, uint64_t off)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    size_t done = 0;

    if (!f->can_write)
        return VFS_ERR_BADF;
    if (lv->opts.read_only)
        return VFS_ERR_ROFS;
    while (done < len) {
        ssize_t n = lfs_file_pwrite(f->file, (const uint8_t *)buf + done,
                                    len - done, off + done);

        if (n < 0)
            return vfs_lfs_error((int)n);
        if (n == 0)
            return VFS_ERR_NOSPC;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int lfs_vfs_fstat(struct vfs *vfs, struct vfs_file *f,
                         struct vfs_attr *attr)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct attr_target t = { .lfs = lv->lfs, .file = f->file };
    struct lfs_info info;
    int err = lfs_file_stat(f->file, &info);

    if (!err)
        err = load_attrs(lv, &t, &info, attr);
    return vfs_lfs_error(err);
}

static int lfs_vfs_fsetstat(struct vfs *vfs, struct vfs_file *f,
                            const struct vfs_attr *attr)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct attr_target t = { .lfs = lv->lfs, .file = f->file };

    /* ftruncate(2) fails with EINVAL on a descriptor not open for
     * writing, and SFTP clients see the same here. */
    return apply_attrs(lv, &t, attr, f->can_write);
}

static int lfs_vfs_fsync(struct vfs *vfs, struct vfs_file *f)
{
    (void)vfs;
    return vfs_lfs_error(lfs_file_sync(f->file));
}

/// Directories ///

static int lfs_vfs_opendir(struct vfs *vfs, const char *path,
                           struct vfs_dir **out)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    size_t len = strlen(path);
    struct vfs_dir *d = calloc(1, sizeof(*d));
    int err;

    if (!d)
        return VFS_ERR_NOMEM;
    d->path = malloc(len + 1);
    if (!d->path) {
        free(d);
        return VFS_ERR_NOMEM;
    }
    memcpy(d->path, path, len + 1);

    /* The root is "/": its entries are "/name", not "//name". */
    d->path_len = is_root(path) ? 0 : len;

    err = lfs_dir_open(lv->lfs, &d->dir, path);
    if (err) {
        free(d->path);
        free(d);
        return vfs_lfs_error(err);
    }
    *out = d;
    return VFS_OK;
}

/* Reading each entry's attributes resolves its path again, so listing a
 * directory of n entries costs O(n) lookups of O(n) each.  Fine for the
 * directories SFTP clients list; an engine call that returns attributes
 * with the entry would make it linear. */
static int lfs_vfs_readdir(struct vfs *vfs, struct vfs_dir *d,
                           struct vfs_dirent *ent)
{
    struct lfs_vfs *lv = lfs_vfs_of(vfs);
    struct lfs_info info;
    int r = lfs_dir_read(d->dir, &info);

    if (r <= 0)
        return r == 0 ? 0 : vfs_lfs_error(r);

    size_t name_len = strlen(info.name);
    char *child = malloc(d->path_len + 1 + name_len + 1);

    if (!child)
        return VFS_ERR_NOMEM;
    memcpy(child, d->path, d->path_len);
    child[d->path_len] = '/';
    memcpy(child + d->path_len + 1, info.name, name_len + 1);

    struct attr_target t = { .lfs = lv->lfs, .path = child };
    int err = load_attrs(lv, &t, &info, &ent->attr);

    free(child);
    if (err)
        return vfs_lfs_error(err);
    memcpy(ent->name, info.name, name_len + 1);
    return 1;
}

static int lfs_vfs_closedir(struct vfs *vfs, struct vfs_dir *d)
{
    int err = lfs_dir_close(d->dir);

    (void)vfs;
    free(d->path);
    free(d);
    return vfs_lfs_error(err);
}

static void lfs_vfs_free(struct vfs *vfs)
{
    free(lfs_vfs_of(vfs));
}

static const struct vfs_ops lfs_vfs_ops = {
    .stat = lfs_vfs_stat,
    .setstat = lfs_vfs_setstat,
    .mkdir = lfs_vfs_mkdir,
    .remove = lfs_vfs_remove,
    .rmdir = lfs_vfs_rmdir,
    .rename = lfs_vfs_rename,
    .statvfs = lfs_vfs_statvfs,
    .open = lfs_vfs_open,
    .close = lfs_vfs_close,
    .pread = lfs_vfs_pread,
    .pwrite = lfs_vfs_pwrite,
    .fstat = lfs_vfs_fstat,
    .fsetstat = lfs_vfs_fsetstat,
    .fsync = lfs_vfs_fsync,
    .opendir = lfs_vfs_opendir,
    .readdir = lfs_vfs_readdir,
    .closedir = lfs_vfs_closedir,
    .free = lfs_vfs_free,
};

struct vfs *vfs_lfs_new(struct lfs *lfs, const struct vfs_lfs_options *opts)
{
    struct lfs_vfs *lv = calloc(1, sizeof(*lv));

    if (!lv)
        return NULL;
    lv->base.ops = &lfs_vfs_ops;
    lv->lfs = lfs;
    lv->opts = *opts;
    return &lv->base;
}
