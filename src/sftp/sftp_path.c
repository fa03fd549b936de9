/*
 * Client paths to image paths.
 *
 * The image has no symbolic links, so resolving "." and ".." by the text
 * of the path gives the same result as walking the tree would.
 */
#include <string.h>

#include "sftp/sftp_internal.h"

int sftp_path_resolve(const uint8_t *in, size_t len, char *out)
{
    size_t out_len = 0;
    size_t pos = 0;

    if (memchr(in, '\0', len) != NULL)
        return VFS_ERR_INVAL;

    while (pos < len) {
        while (pos < len && in[pos] == '/')
            pos++;

        size_t start = pos;

        while (pos < len && in[pos] != '/')
            pos++;

        size_t name_len = pos - start;

        if (name_len == 0 || (name_len == 1 && in[start] == '.'))
            continue;
        if (name_len == 2 && in[start] == '.' && in[start + 1] == '.') {
            while (out_len > 0 && out[out_len - 1] != '/')
                out_len--;
            if (out_len > 0)
                out_len--;
            continue;
        }

        /* "/" + name + the final NUL must fit. */
        if (name_len > SFTP_PATH_MAX - 2 - out_len)
            return VFS_ERR_NAMETOOLONG;
        out[out_len++] = '/';
        memcpy(out + out_len, in + start, name_len);
        out_len += name_len;
    }

    if (out_len == 0)
        out[out_len++] = '/';
    out[out_len] = '\0';
    return VFS_OK;
}

void sftp_path_parent(const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;

    if (len == 0) {
        strcpy(out, "/");
        return;
    }
    memcpy(out, path, len);
    out[len] = '\0';
}

int sftp_get_path(struct rd *req, char *out, const char **message)
{
    const uint8_t *raw;
    uint32_t len;

    if (rd_string(req, &raw, &len)) {
        *message = "Malformed request";
        return SSH_FX_BAD_MESSAGE;
    }

    int err = sftp_path_resolve(raw, len, out);

    if (err == VFS_ERR_INVAL) {
        *message = "Path contains a NUL byte";
        return SSH_FX_BAD_MESSAGE;
    }
    if (err) {
        *message = "Path is too long";
        return SSH_FX_BAD_MESSAGE;
    }
    return SSH_FX_OK;
}

bool sftp_get_path_or_reply(struct sftp_session *s, uint32_t id,
                            struct rd *req, char *path)
{
    const char *message;
    int status = sftp_get_path(req, path, &message);

    if (status == SSH_FX_OK)
        return true;
    sftp_send_status(s, id, (uint32_t)status, message);
    return false;
}
