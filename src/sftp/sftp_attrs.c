/*
 * SFTP ATTRS: decoding them from requests, encoding them in replies, and
 * the `ls -l` style longname of READDIR entries.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sftp/sftp_internal.h"

/* Listings show the time of day for files changed in the last half year
 * and the year for older ones (and for future times), as ls(1) does. */
#define SFTP_RECENT_SECONDS (365 * 24 * 60 * 60 / 2)

int sftp_get_attrs(struct rd *req, struct vfs_attr *attr)
{
    uint32_t flags;

    memset(attr, 0, sizeof(*attr));
    if (rd_u32(req, &flags))
        return -1;

    if (flags & SSH_FILEXFER_ATTR_SIZE) {
        if (rd_u64(req, &attr->size))
            return -1;
        attr->fields |= VFS_ATTR_SIZE;
    }
    if (flags & SSH_FILEXFER_ATTR_UIDGID) {
        if (rd_u32(req, &attr->uid) || rd_u32(req, &attr->gid))
            return -1;
        attr->fields |= VFS_ATTR_OWNER;
    }
    if (flags & SSH_FILEXFER_ATTR_PERMISSIONS) {
        if (rd_u32(req, &attr->mode))
            return -1;
        attr->fields |= VFS_ATTR_MODE;
    }
    if (flags & SSH_FILEXFER_ATTR_ACMODTIME) {
        uint32_t atime, mtime;

        if (rd_u32(req, &atime) || rd_u32(req, &mtime))
            return -1;
        attr->atime = atime;
        attr->mtime = mtime;
        attr->fields |= VFS_ATTR_TIMES;
    }

    /* Extended attributes are parsed so that the request is checked
     * whole, and ignored, as OpenSSH's server does. */
    if (flags & SSH_FILEXFER_ATTR_EXTENDED) {
        uint32_t count;

        if (rd_u32(req, &count))
            return -1;
        for (uint32_t i = 0; i < count; i++) {
            const uint8_t *s;
            uint32_t len;

            if (rd_string(req, &s, &len) || rd_string(req, &s, &len))
                return -1;
        }
    }
    return 0;
}

static uint32_t clamp_time(int64_t t)
{
    if (t < 0)
        return 0;
    if (t > UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)t;
}

size_t sftp_attrs_len(const struct vfs_attr *attr)
{
    size_t len = 4;

    if (attr->fields & VFS_ATTR_SIZE)
        len += 8;
    if (attr->fields & VFS_ATTR_OWNER)
        len += 8;
    if (attr->fields & VFS_ATTR_MODE)
        len += 4;
    if (attr->fields & VFS_ATTR_TIMES)
        len += 8;
    return len;
}

int sftp_put_attrs(struct wbuf *w, const struct vfs_attr *attr)
{
    uint32_t flags = 0;
    int err = 0;

    if (attr->fields & VFS_ATTR_SIZE)
        flags |= SSH_FILEXFER_ATTR_SIZE;
    if (attr->fields & VFS_ATTR_OWNER)
        flags |= SSH_FILEXFER_ATTR_UIDGID;
    if (attr->fields & VFS_ATTR_MODE)
        flags |= SSH_FILEXFER_ATTR_PERMISSIONS;
    if (attr->fields & VFS_ATTR_TIMES)
        flags |= SSH_FILEXFER_ATTR_ACMODTIME;

    err |= wb_u32(w, flags);
    if (flags & SSH_FILEXFER_ATTR_SIZE)
        err |= wb_u64(w, attr->size);
    if (flags & SSH_FILEXFER_ATTR_UIDGID) {
        err |= wb_u32(w, attr->uid);
        err |= wb_u32(w, attr->gid);
    }
    if (flags & SSH_FILEXFER_ATTR_PERMISSIONS)
        err |= wb_u32(w, attr->mode);
    if (flags & SSH_FILEXFER_ATTR_ACMODTIME) {
        err |= wb_u32(w, clamp_time(attr->atime));
        err |= wb_u32(w, clamp_time(attr->mtime));
    }
    return err ? -1 : 0;
}

/// Longnames ///

/* The ten type and permission letters of `ls -l`, NUL-terminated.
 * FileZilla and WinSCP read the entry's type from the first one. */
static void format_mode(uint32_t mode, char out[11])
{
    static const char letters[] = "rwxrwxrwx";

    switch (mode & VFS_S_IFMT) {
    case VFS_S_IFDIR: out[0] = 'd'; break;
    case VFS_S_IFREG: out[0] = '-'; break;
    default: out[0] = '?'; break;
    }
    for (int i = 0; i < 9; i++)
        out[1 + i] = (mode & (0400u >> i)) ? letters[i] : '-';

    if (mode & 04000u)
        out[3] = out[3] == 'x' ? 's' : 'S';
    if (mode & 02000u)
        out[6] = out[6] == 'x' ? 's' : 'S';
    if (mode & 01000u)
        out[9] = out[9] == 'x' ? 't' : 'T';
    out[10] = '\0';
}

static void format_date(int64_t mtime, time_t now, char *out, size_t size)
{
    time_t t = (time_t)mtime;
    struct tm tm;
    const char *format = "%b %e  %Y";

    if (!localtime_r(&t, &tm)) {
        out[0] = '\0';
        return;
    }
    if (mtime <= now && now - mtime < SFTP_RECENT_SECONDS)
        format = "%b %e %H:%M";
    if (strftime(out, size, format, &tm) == 0)
        out[0] = '\0';
}

/*
 * The layout is the one OpenSSH's sftp-server sends, which clients that
 * show longnames as they are expect: mode, link count, owner and group
 * (at least 8 wide), size, date, name.  littlefs has no link counts:
 * directories show 2 and files 1.
 */
void sftp_format_longname(char *out, size_t size, const char *name,
                          const struct vfs_attr *attr, const char *user,
                          const char *group, time_t now)
{
    char mode[11], date[32], user_buf[16], group_buf[16];
    bool is_dir = (attr->mode & VFS_S_IFMT) == VFS_S_IFDIR;

    format_mode(attr->mode, mode);
    format_date(attr->mtime, now, date, sizeof(date));
    if (!user) {
        snprintf(user_buf, sizeof(user_buf), "%u", attr->uid);
        user = user_buf;
    }
    if (!group) {
        snprintf(group_buf, sizeof(group_buf), "%u", attr->gid);
        group = group_buf;
    }
    snprintf(out, size, "%s  %3u %-8s %-8s %8llu %s %s", mode,
             is_dir ? 2u : 1u, user, group, (unsigned long long)attr->size,
             date, name);
}
