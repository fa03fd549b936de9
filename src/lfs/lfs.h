/*
 * A littlefs v2 engine: reads and writes images in the on-disk format of
 * the reference littlefs (format versions 2.0 and 2.1) and of chamelon.
 *
 * One struct lfs is one mounted image.  It is not thread-safe: the server
 * is single-threaded and serializes every call.  Paths are '/'-separated
 * byte strings relative to the image root ("" and "/" are the root); "."
 * components are skipped and ".." goes to the parent, never above the root.
 */
#ifndef SSHFSD_LFS_LFS_H
#define SSHFSD_LFS_LFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "block/bd.h"

/* Errors: negative values, named after the errno they correspond to. */
enum lfs_error {
    LFS_ERR_OK = 0,
    LFS_ERR_IO = -5,          /* the block device failed */
    LFS_ERR_CORRUPT = -84,    /* on-disk structure is invalid */
    LFS_ERR_NOENT = -2,       /* no such file or directory */
    LFS_ERR_EXIST = -17,      /* file exists */
    LFS_ERR_NOTDIR = -20,     /* a path component is not a directory */
    LFS_ERR_ISDIR = -21,      /* is a directory */
    LFS_ERR_NOTEMPTY = -39,   /* directory not empty */
    LFS_ERR_BADF = -9,        /* handle not open for this operation */
    LFS_ERR_FBIG = -27,       /* file too large */
    LFS_ERR_INVAL = -22,      /* invalid argument */
    LFS_ERR_NOSPC = -28,      /* no space left on the image */
    LFS_ERR_NOMEM = -12,      /* out of memory */
    LFS_ERR_NOATTR = -61,     /* no such attribute */
    LFS_ERR_NAMETOOLONG = -36,/* name longer than the image's name_max */
    LFS_ERR_ROFS = -30,       /* mounted read-only */
    LFS_ERR_NOTLFS = -1001,   /* not a littlefs image */
    LFS_ERR_VERSION = -1002,  /* unsupported on-disk version */
    LFS_ERR_AUTH = -1003,     /* data failed authentication (wrong key or
                                 modified encrypted image) */
    LFS_ERR_GEOMETRY = -1004, /* block size or count does not match */
    LFS_ERR_UNWRITTEN = -1005,/* a block read was never written (encrypted
                                 images made with dd): not valid data */
};

/* Entry types, as stored in littlefs NAME tags. */
enum lfs_type {
    LFS_TYPE_REG = 0x001,
    LFS_TYPE_DIR = 0x002,
};

/* Open flags (lfs_file_open). */
enum lfs_open_flags {
    LFS_O_RDONLY = 1,
    LFS_O_WRONLY = 2,
    LFS_O_RDWR = 3,
    LFS_O_CREAT = 0x0100,
    LFS_O_EXCL = 0x0200,
    LFS_O_TRUNC = 0x0400,
    LFS_O_APPEND = 0x0800,
};

enum lfs_whence { LFS_SEEK_SET = 0, LFS_SEEK_CUR = 1, LFS_SEEK_END = 2 };

/* On-disk versions. */
#define LFS_DISK_VERSION_2_0 0x00020000u
#define LFS_DISK_VERSION_2_1 0x00020001u

/* Limits fixed by the format. */
#define LFS_NAME_MAX_LIMIT 1022u     /* a NAME tag carries at most 1022 bytes */
#define LFS_ATTR_MAX_LIMIT 1022u
#define LFS_FILE_MAX_LIMIT 2147483647u

/* User attribute types this project stores (see docs/FORMAT.md). */
#define LFS_ATTR_MTIME 0x74  /* chamelon's mtime: u32 days, u64 ps in day */
#define LFS_ATTR_ATIME 0x61  /* same 12-byte layout as LFS_ATTR_MTIME */
#define LFS_ATTR_MODE  0x70  /* u32 LE: POSIX permission bits (07777) */
#define LFS_TIME_ATTR_SIZE 12

struct lfs;
struct lfs_file;
struct lfs_dir;

struct lfs_format_options {
    uint32_t block_size;   /* required: power of two, 128..65536 */
    uint32_t name_max;     /* 0 means 255 */
    uint32_t disk_version; /* 0 means LFS_DISK_VERSION_2_0 */
};

struct lfs_mount_options {
    uint32_t block_size;   /* 0: read it from the superblock */
    int read_only;         /* reject every change with LFS_ERR_ROFS */
    int no_mtime;          /* do not stamp LFS_ATTR_MTIME on file writes */
};

struct lfs_info {
    uint8_t type;          /* LFS_TYPE_REG or LFS_TYPE_DIR */
    uint32_t size;         /* file size in bytes, 0 for directories */
    char name[LFS_NAME_MAX_LIMIT + 1];
};

struct lfs_fsinfo {
    uint32_t disk_version;
    uint32_t block_size;
    uint32_t block_count;
    uint32_t name_max;
    uint32_t file_max;
    uint32_t attr_max;
};

const char *lfs_strerror(int err);

/* Detail of the last failure that came from the block device (for
 * example which sector failed authentication), or "" if none. */
const char *lfs_error_detail(const struct lfs *lfs);

/* Filesystem */

/* Write an empty filesystem over the whole device (bd->size bytes). */
int lfs_format(struct bd *bd, const struct lfs_format_options *opts);

/* Mount; on success *out is the new mount.  opts may be NULL. */
int lfs_mount(struct lfs **out, struct bd *bd,
              const struct lfs_mount_options *opts);

/* Write back every open file, sync the device and free the mount.
 * File and directory handles still open are closed and freed: the caller
 * must not use them afterwards. */
int lfs_unmount(struct lfs *lfs);

int lfs_fs_stat(struct lfs *lfs, struct lfs_fsinfo *info);

/* Number of blocks in use (metadata pairs, file data, open files). */
int64_t lfs_fs_size(struct lfs *lfs);

/* Make every completed operation durable (file writes are durable only
 * after lfs_file_sync or lfs_file_close). */
int lfs_fs_sync(struct lfs *lfs);

/* Entries */

int lfs_stat(struct lfs *lfs, const char *path, struct lfs_info *info);
int lfs_mkdir(struct lfs *lfs, const char *path);
/* Remove a file or an empty directory. */
int lfs_remove(struct lfs *lfs, const char *path);
/* Atomically rename; an existing target file or empty directory is
 * replaced, as with POSIX rename(2). */
int lfs_rename(struct lfs *lfs, const char *oldpath, const char *newpath);

/* User attributes.  getattr returns the attribute's full size (copying at
 * most size bytes into buf) or LFS_ERR_NOATTR. */
ssize_t lfs_getattr(struct lfs *lfs, const char *path, uint8_t type,
                    void *buf, size_t size);
int lfs_setattr(struct lfs *lfs, const char *path, uint8_t type,
                const void *buf, size_t size);
int lfs_removeattr(struct lfs *lfs, const char *path, uint8_t type);

/* Files */

int lfs_file_open(struct lfs *lfs, struct lfs_file **out, const char *path,
                  int flags);
/* Sync and free the handle (freed even when the sync fails). */
int lfs_file_close(struct lfs_file *file);
/* Free the handle without syncing.  When no other handle is open on the
 * file, its unsynced changes are dropped and the file stays as it was
 * last synced. */
void lfs_file_discard(struct lfs_file *file);
int lfs_file_sync(struct lfs_file *file);
ssize_t lfs_file_read(struct lfs_file *file, void *buf, size_t size);
ssize_t lfs_file_write(struct lfs_file *file, const void *buf, size_t size);
/* Positional forms: do not move the handle's position.  pwrite on a
 * handle opened with LFS_O_APPEND writes at the end of the file. */
ssize_t lfs_file_pread(struct lfs_file *file, void *buf, size_t size,
                       uint64_t off);
ssize_t lfs_file_pwrite(struct lfs_file *file, const void *buf, size_t size,
                        uint64_t off);
int64_t lfs_file_seek(struct lfs_file *file, int64_t off, int whence);
int64_t lfs_file_tell(struct lfs_file *file);
int64_t lfs_file_size(struct lfs_file *file);
int lfs_file_truncate(struct lfs_file *file, uint64_t size);
int lfs_file_stat(struct lfs_file *file, struct lfs_info *info);
ssize_t lfs_file_getattr(struct lfs_file *file, uint8_t type, void *buf,
                         size_t size);
int lfs_file_setattr(struct lfs_file *file, uint8_t type, const void *buf,
                     size_t size);

/* Directories: entries come in on-disk order, without "." and "..". */

int lfs_dir_open(struct lfs *lfs, struct lfs_dir **out, const char *path);
/* Returns 1 and fills info for the next entry, 0 at the end, or an error. */
int lfs_dir_read(struct lfs_dir *dir, struct lfs_info *info);
int lfs_dir_rewind(struct lfs_dir *dir);
int lfs_dir_close(struct lfs_dir *dir);

/* Times in chamelon's 12-byte layout (u32 LE days since 1970-01-01, u64 LE
 * picoseconds within the day).  decode fails with LFS_ERR_CORRUPT on a
 * wrong size or a picosecond count past the end of the day. */
void lfs_time_encode(const struct timespec *ts,
                     uint8_t out[LFS_TIME_ATTR_SIZE]);
int lfs_time_decode(const uint8_t *buf, size_t len, struct timespec *ts);

/* Consistency check (lfs/check.c): every report line goes to the callback.
 * Returns 0 when the image is clean, 1 when problems were found, or a
 * negative error when the check itself could not run. */
typedef void (*lfs_check_report)(void *ctx, const char *line);
int lfs_check(struct lfs *lfs, lfs_check_report report, void *ctx);

#endif
