/*
 * File-backed block device: an image file or a raw block device, accessed
 * with pread/pwrite and made durable with fdatasync.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/bd.h"

/* Sector size reported for regular files, which have no native one. */
#define FILE_SECTOR_SIZE 512u

/* Erasing writes this many 0xff bytes per pwrite. */
#define ERASE_CHUNK 4096

struct bd_file {
    struct bd bd;      /* first, so a struct bd * converts back */
    int fd;
    int own_fd;
    char name[];       /* the path, or "file descriptor N", for messages */
};

static const uint8_t erased_bytes[ERASE_CHUNK] = {
    [0 ... ERASE_CHUNK - 1] = 0xff,
};

static struct bd_file *to_file(struct bd *bd)
{
    return (struct bd_file *)bd;
}

static int pread_all(struct bd_file *file, uint8_t *buf, size_t len,
                     uint64_t pos)
{
    while (len > 0) {
        ssize_t n = pread(file->fd, buf, len, (off_t)pos);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return bd_fail(&file->bd, BD_ERR_IO, "read of %zu bytes at "
                           "offset %llu of %s failed: %s", len,
                           (unsigned long long)pos, file->name,
                           strerror(errno));
        if (n == 0)
            return bd_fail(&file->bd, BD_ERR_IO, "read at offset %llu of "
                           "%s failed: unexpected end of file (was the "
                           "image truncated?)", (unsigned long long)pos,
                           file->name);

        buf += n;
        len -= (size_t)n;
        pos += (uint64_t)n;
    }
    return BD_OK;
}

static int pwrite_all(struct bd_file *file, const uint8_t *buf, size_t len,
                      uint64_t pos)
{
    while (len > 0) {
        ssize_t n = pwrite(file->fd, buf, len, (off_t)pos);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return bd_fail(&file->bd, BD_ERR_IO, "write of %zu bytes at "
                           "offset %llu of %s failed: %s", len,
                           (unsigned long long)pos, file->name,
                           strerror(errno));
        if (n == 0)
            return bd_fail(&file->bd, BD_ERR_IO, "write at offset %llu of "
                           "%s failed: no bytes written",
                           (unsigned long long)pos, file->name);

        buf += n;
        len -= (size_t)n;
        pos += (uint64_t)n;
    }
    return BD_OK;
}

static int file_read(struct bd *bd, uint32_t block, uint32_t off, void *buf,
                     size_t len)
{
    return pread_all(to_file(bd), buf, len, bd_byte_offset(bd, block, off));
}

static int file_prog(struct bd *bd, uint32_t block, uint32_t off,
                     const void *buf, size_t len)
{
    return pwrite_all(to_file(bd), buf, len, bd_byte_offset(bd, block, off));
}

static int file_erase(struct bd *bd, uint32_t block)
{
    uint64_t pos = bd_byte_offset(bd, block, 0);
    size_t left = bd->block_size;

    while (left > 0) {
        size_t piece = left < ERASE_CHUNK ? left : ERASE_CHUNK;
        int err = pwrite_all(to_file(bd), erased_bytes, piece, pos);

        if (err != BD_OK)
            return err;
        pos += piece;
        left -= piece;
    }
    return BD_OK;
}

static int file_sync(struct bd *bd)
{
    struct bd_file *file = to_file(bd);

    while (fdatasync(file->fd) != 0) {
        if (errno != EINTR)
            return bd_fail(bd, BD_ERR_IO, "fdatasync of %s failed: %s",
                           file->name, strerror(errno));
    }
    return BD_OK;
}

static void file_close(struct bd *bd)
{
    struct bd_file *file = to_file(bd);

    if (file->own_fd)
        close(file->fd);
    free(file);
}

static const struct bd_ops file_ops = {
    .read = file_read,
    .prog = file_prog,
    .erase = file_erase,
    .sync = file_sync,
    .close = file_close,
};

/* Find the size and native sector size behind fd.  Returns 0, or -1 with
 * a message in errbuf. */
static int probe_geometry(int fd, const char *name, uint64_t *size,
                          uint32_t *sector_size, char *errbuf, size_t errlen)
{
    struct stat st;
    int sector = 0;

    if (fstat(fd, &st) != 0) {
        snprintf(errbuf, errlen, "fstat of %s failed: %s", name,
                 strerror(errno));
        return -1;
    }

    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        *sector_size = FILE_SECTOR_SIZE;
        return 0;
    }
    if (!S_ISBLK(st.st_mode)) {
        snprintf(errbuf, errlen, "%s is neither a regular file nor a block "
                 "device", name);
        return -1;
    }

    if (ioctl(fd, BLKGETSIZE64, size) != 0) {
        snprintf(errbuf, errlen, "reading the size of block device %s "
                 "failed: %s", name, strerror(errno));
        return -1;
    }
    if (ioctl(fd, BLKSSZGET, &sector) != 0) {
        snprintf(errbuf, errlen, "reading the sector size of block device "
                 "%s failed: %s", name, strerror(errno));
        return -1;
    }
    if (sector <= 0) {
        snprintf(errbuf, errlen, "block device %s reports an invalid sector "
                 "size %d", name, sector);
        return -1;
    }
    *sector_size = (uint32_t)sector;
    return 0;
}

static struct bd *file_new(int fd, int own_fd, const char *name,
                           char *errbuf, size_t errlen)
{
    struct bd_file *file;
    uint64_t size;
    uint32_t sector_size;
    size_t name_len = strlen(name);

    if (probe_geometry(fd, name, &size, &sector_size, errbuf, errlen) != 0)
        return NULL;

    file = calloc(1, sizeof(*file) + name_len + 1);
    if (file == NULL) {
        snprintf(errbuf, errlen, "opening %s failed: out of memory", name);
        return NULL;
    }

    file->bd.ops = &file_ops;
    file->bd.size = size;
    file->bd.sector_size = sector_size;
    file->fd = fd;
    file->own_fd = own_fd;
    memcpy(file->name, name, name_len + 1);
    return &file->bd;
}

struct bd *bd_file_open(const char *path, int writable, char *errbuf,
                        size_t errlen)
{
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    struct bd *bd;
    int fd;

    do {
        fd = open(path, flags);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        snprintf(errbuf, errlen, "opening %s failed: %s", path,
                 strerror(errno));
        return NULL;
    }
    /* Every program of this project caches the image's metadata, so two
     * writers, or a reader next to a writer, would each see only their
     * own changes and the last to write would erase the other's.  The
     * lock lasts as long as the descriptor, and ends with the process
     * even when it is killed. */
    if (flock(fd, (writable ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            snprintf(errbuf, errlen, "%s is in use: another program "
                     "(sshfsd, sshfsd-sftp-server or sshfsd-image) has it "
                     "open%s; stop that program first", path,
                     writable ? "" : " for writing");
        else
            snprintf(errbuf, errlen, "locking %s failed: %s", path,
                     strerror(errno));
        close(fd);
        return NULL;
    }

    bd = file_new(fd, 1, path, errbuf, errlen);
    if (bd == NULL)
        close(fd);
    return bd;
}

struct bd *bd_file_from_fd(int fd, int own_fd, char *errbuf, size_t errlen)
{
    char name[48];

    snprintf(name, sizeof(name), "file descriptor %d", fd);
    return file_new(fd, own_fd, name, errbuf, errlen);
}
