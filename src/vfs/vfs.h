/*
 * The file-system interface that the SFTP core calls.
 *
 * Paths are absolute, '/'-separated byte strings already normalized by
 * the caller: they start with '/', contain no "." or ".." components, no
 * empty components and no trailing '/' ("/" itself is the root).  Every
 * function returns 0 or a negative enum vfs_error; each backend maps its
 * own errors to this enum in one place.
 *
 * A struct vfs is a table of operations plus the backend's state, so that
 * tests can wrap a backend (to inject failures, for example).  Callers use
 * the vfs_* wrappers below.  A vfs is not thread-safe: the server is
 * single-threaded and every session calls it in turn.
 */
#ifndef SSHFSD_VFS_VFS_H
#define SSHFSD_VFS_VFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Errors: negative values, named after the errno they correspond to. */
enum vfs_error {
    VFS_OK = 0,
    VFS_ERR_NOENT = -1,        /* no such file or directory */
    VFS_ERR_NOTDIR = -2,       /* a path component is not a directory */
    VFS_ERR_ISDIR = -3,        /* is a directory */
    VFS_ERR_EXIST = -4,        /* file exists */
    VFS_ERR_NOTEMPTY = -5,     /* directory not empty */
    VFS_ERR_NOSPC = -6,        /* no space left on the image */
    VFS_ERR_FBIG = -7,         /* file too large */
    VFS_ERR_NAMETOOLONG = -8,  /* a name is longer than the image allows */
    VFS_ERR_INVAL = -9,        /* invalid argument */
    VFS_ERR_PERM = -10,        /* operation not permitted (ownership) */
    VFS_ERR_ROFS = -11,        /* the image is read-only */
    VFS_ERR_BADF = -12,        /* handle not open for this operation */
    VFS_ERR_BUSY = -13,        /* the root cannot be removed or renamed */
    VFS_ERR_IO = -14,          /* the disk image failed */
    VFS_ERR_CORRUPT = -15,     /* the image's structure is damaged */
    VFS_ERR_AUTH = -16,        /* encrypted data failed authentication */
    VFS_ERR_NOMEM = -17,       /* out of memory */
    VFS_ERR_UNSUPPORTED = -18, /* the file system cannot do this */
};

const char *vfs_strerror(int err);

/* File type bits of struct vfs_attr.mode (the POSIX values). */
#define VFS_S_IFMT  0170000u
#define VFS_S_IFDIR 0040000u
#define VFS_S_IFREG 0100000u
#define VFS_PERM_MASK 07777u

/* Flags of struct vfs_attr.fields: the fields that are set. */
enum vfs_attr_fields {
    VFS_ATTR_SIZE = 0x1,
    VFS_ATTR_OWNER = 0x2,      /* uid and gid */
    VFS_ATTR_MODE = 0x4,       /* permission bits; type bits when read */
    VFS_ATTR_TIMES = 0x8,      /* atime and mtime */
};

struct vfs_attr {
    uint32_t fields;           /* enum vfs_attr_fields */
    uint64_t size;
    uint32_t uid;
    uint32_t gid;
    uint32_t mode;             /* VFS_S_IF* type bits | permission bits */
    int64_t atime;             /* seconds since 1970-01-01 UTC */
    int64_t mtime;
};

/* Open flags (vfs_open).  READ and WRITE may be combined; CREAT and TRUNC
 * work on a handle opened for reading only, as open(2) does on Linux. */
enum vfs_open_flags {
    VFS_O_READ = 0x01,
    VFS_O_WRITE = 0x02,
    VFS_O_APPEND = 0x04,       /* every write goes to the end of the file */
    VFS_O_CREAT = 0x08,
    VFS_O_TRUNC = 0x10,
    VFS_O_EXCL = 0x20,         /* with CREAT: fail if the name exists */
};

/* Maximum length of an entry name from any backend, in bytes. */
#define VFS_NAME_MAX 1022

struct vfs_dirent {
    char name[VFS_NAME_MAX + 1];
    struct vfs_attr attr;
};

struct vfs_statvfs {
    uint64_t block_size;
    uint64_t blocks;
    uint64_t blocks_free;
    uint64_t files;            /* the backend's best estimate */
    uint64_t files_free;
    uint64_t name_max;
    int read_only;
};

struct vfs;
struct vfs_file;
struct vfs_dir;

struct vfs_ops {
    int (*stat)(struct vfs *vfs, const char *path, struct vfs_attr *attr);
    /* Apply the fields set in attr.  The owner is checked first; then
     * size, mode and times are applied in that order, up to the first
     * failure. */
    int (*setstat)(struct vfs *vfs, const char *path,
                   const struct vfs_attr *attr);
    int (*mkdir)(struct vfs *vfs, const char *path, uint32_t mode);
    /* Remove a file; a directory fails with VFS_ERR_ISDIR. */
    int (*remove)(struct vfs *vfs, const char *path);
    /* Remove an empty directory. */
    int (*rmdir)(struct vfs *vfs, const char *path);
    /* Rename; an existing target is replaced as rename(2) does. */
    int (*rename)(struct vfs *vfs, const char *from, const char *to);
    int (*statvfs)(struct vfs *vfs, struct vfs_statvfs *st);

    /* mode gives the permission bits of a file that CREAT creates. */
    int (*open)(struct vfs *vfs, const char *path, int flags, uint32_t mode,
                struct vfs_file **out);
    /* Sync and free the handle; it is freed even when the sync fails. */
    int (*close)(struct vfs *vfs, struct vfs_file *file);
    /* Read up to len bytes at off; fewer only at the end of the file. */
    ssize_t (*pread)(struct vfs *vfs, struct vfs_file *file, void *buf,
                     size_t len, uint64_t off);
    /* Write all len bytes at off (at the end with VFS_O_APPEND). */
    ssize_t (*pwrite)(struct vfs *vfs, struct vfs_file *file,
                      const void *buf, size_t len, uint64_t off);
    int (*fstat)(struct vfs *vfs, struct vfs_file *file,
                 struct vfs_attr *attr);
    int (*fsetstat)(struct vfs *vfs, struct vfs_file *file,
                    const struct vfs_attr *attr);
    /* Make the file's contents and attributes durable. */
    int (*fsync)(struct vfs *vfs, struct vfs_file *file);

    int (*opendir)(struct vfs *vfs, const char *path, struct vfs_dir **out);
    /* Fill ent with the next entry ("." and ".." excluded): returns 1,
     * 0 at the end, or an error. */
    int (*readdir)(struct vfs *vfs, struct vfs_dir *dir,
                   struct vfs_dirent *ent);
    int (*closedir)(struct vfs *vfs, struct vfs_dir *dir);

    /* Free the vfs itself (not what it was created over). */
    void (*free)(struct vfs *vfs);
};

struct vfs {
    const struct vfs_ops *ops;
};

/// Wrappers ///

static inline int vfs_stat(struct vfs *vfs, const char *path,
                           struct vfs_attr *attr)
{
    return vfs->ops->stat(vfs, path, attr);
}

static inline int vfs_setstat(struct vfs *vfs, const char *path,
                              const struct vfs_attr *attr)
{
    return vfs->ops->setstat(vfs, path, attr);
}

static inline int vfs_mkdir(struct vfs *vfs, const char *path, uint32_t mode)
{
    return vfs->ops->mkdir(vfs, path, mode);
}

static inline int vfs_remove(struct vfs *vfs, const char *path)
{
    return vfs->ops->remove(vfs, path);
}

static inline int vfs_rmdir(struct vfs *vfs, const char *path)
{
    return vfs->ops->rmdir(vfs, path);
}

static inline int vfs_rename(struct vfs *vfs, const char *from,
                             const char *to)
{
    return vfs->ops->rename(vfs, from, to);
}

static inline int vfs_statvfs(struct vfs *vfs, struct vfs_statvfs *st)
{
    return vfs->ops->statvfs(vfs, st);
}

static inline int vfs_open(struct vfs *vfs, const char *path, int flags,
                           uint32_t mode, struct vfs_file **out)
{
    return vfs->ops->open(vfs, path, flags, mode, out);
}

static inline int vfs_close(struct vfs *vfs, struct vfs_file *file)
{
    return vfs->ops->close(vfs, file);
}

static inline ssize_t vfs_pread(struct vfs *vfs, struct vfs_file *file,
                                void *buf, size_t len, uint64_t off)
{
    return vfs->ops->pread(vfs, file, buf, len, off);
}

static inline ssize_t vfs_pwrite(struct vfs *vfs, struct vfs_file *file,
                                 const void *buf, size_t len, uint64_t off)
{
    return vfs->ops->pwrite(vfs, file, buf, len, off);
}

static inline int vfs_fstat(struct vfs *vfs, struct vfs_file *file,
                            struct vfs_attr *attr)
{
    return vfs->ops->fstat(vfs, file, attr);
}

static inline int vfs_fsetstat(struct vfs *vfs, struct vfs_file *file,
                               const struct vfs_attr *attr)
{
    return vfs->ops->fsetstat(vfs, file, attr);
}

static inline int vfs_fsync(struct vfs *vfs, struct vfs_file *file)
{
    return vfs->ops->fsync(vfs, file);
}

static inline int vfs_opendir(struct vfs *vfs, const char *path,
                              struct vfs_dir **out)
{
    return vfs->ops->opendir(vfs, path, out);
}

static inline int vfs_readdir(struct vfs *vfs, struct vfs_dir *dir,
                              struct vfs_dirent *ent)
{
    return vfs->ops->readdir(vfs, dir, ent);
}

static inline int vfs_closedir(struct vfs *vfs, struct vfs_dir *dir)
{
    return vfs->ops->closedir(vfs, dir);
}

static inline void vfs_free(struct vfs *vfs)
{
    if (vfs)
        vfs->ops->free(vfs);
}

/// The littlefs backend (vfs/lfs_vfs.c) ///

struct lfs;

struct vfs_lfs_options {
    uint32_t uid;              /* the owner every entry reports */
    uint32_t gid;
    int read_only;             /* reject every change with VFS_ERR_ROFS */
};

/*
 * A vfs over a mounted littlefs image.  Permission bits live in the
 * LFS_ATTR_MODE attribute (default 0644 for files, 0755 for directories),
 * mtime in LFS_ATTR_MTIME and atime in LFS_ATTR_ATIME (atime equals mtime
 * unless it was set apart).  littlefs has no owners: every entry reports
 * the configured uid/gid, and changing them to anything else fails with
 * VFS_ERR_PERM.  Permission bits are stored and reported, not enforced:
 * the one user of an image owns every file in it.
 *
 * The vfs does not own the mount.  Returns NULL when out of memory.
 */
struct vfs *vfs_lfs_new(struct lfs *lfs, const struct vfs_lfs_options *opts);

/* Map a littlefs error (enum lfs_error) to an enum vfs_error. */
int vfs_lfs_error(int lfs_err);

#endif
