/*
 * Opening the image: the AES key when the image is encrypted, the block
 * device, the littlefs mount and the vfs over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "server/log.h"
#include "server/server.h"
#include "vfs/vfs.h"

/* A key file contains hex digits and maybe a newline. */
#define KEY_FILE_MAX 256

static int read_key_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        log_error("cannot open block key file %s: %s", path,
                  strerror(errno));
        return -1;
    }
    n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) {
        log_error("cannot read block key file %s: %s", path,
                  strerror(errno));
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    return 0;
}

int server_load_block_key(const char *hex, const char *file,
                          uint8_t key[BD_CCM_KEY_MAX], size_t *len)
{
    char text[KEY_FILE_MAX], err[256];
    const char *source = "--blockkey";
    int rc = 0;

    *len = 0;
    if (file) {
        if (read_key_file(file, text, sizeof(text)))
            return -1;
        hex = text;
        source = file;
    } else if (!hex && getenv(OPTIONS_BLOCKKEY_ENV) &&
               getenv(OPTIONS_BLOCKKEY_ENV)[0]) {
        hex = getenv(OPTIONS_BLOCKKEY_ENV);
        source = "$" OPTIONS_BLOCKKEY_ENV;
    }
    if (hex && bd_ccm_parse_key(hex, key, len, err, sizeof(err)) != BD_OK) {
        log_error("invalid block key in %s: %s", source, err);
        rc = -1;
    }
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

static int mount_image(struct server *srv, const char *path)
{
    struct lfs_mount_options mopts = { .read_only = srv->opts->read_only };
    char why[256];
    int err = lfs_mount(&srv->lfs, srv->bd, &mopts);

    if (err == 0)
        return 0;
    if (bd_ccm_explain_mount_failure(srv->bd, "--blockkey", why,
                                     sizeof(why)))
        log_error("cannot mount %s: %s", path, why);
    else
        log_error("cannot mount %s: %s%s%s", path, lfs_strerror(err),
                  srv->bd->error[0] ? ": " : "", srv->bd->error);
    return -1;
}

int server_open_image(struct server *srv)
{
    const struct server_options *o = srv->opts;
    uint8_t key[BD_CCM_KEY_MAX];
    size_t key_len;
    char err[BD_ERROR_MAX];
    struct vfs_lfs_options vopts = {
        .uid = srv->owner_uid,
        .gid = srv->owner_gid,
        .read_only = o->read_only,
    };

    if (server_load_block_key(o->blockkey_hex, o->blockkey_file, key,
                              &key_len))
        return -1;
    err[0] = '\0';
    srv->bd = bd_open_image(o->image, !o->read_only, key_len ? key : NULL,
                            key_len, err, sizeof(err));
    OPENSSL_cleanse(key, sizeof(key));
    if (!srv->bd) {
        log_error("%s", err[0] ? err : "cannot open the image");
        return -1;
    }
    if (mount_image(srv, o->image))
        return -1;
    srv->vfs = vfs_lfs_new(srv->lfs, &vopts);
    if (!srv->vfs) {
        log_error("out of memory");
        return -1;
    }
    log_info("serving %s%s%s", o->image, key_len ? " (encrypted)" : "",
             o->read_only ? " read-only" : "");
    return 0;
}

void server_close_image(struct server *srv)
{
    int err;

    vfs_free(srv->vfs);
    srv->vfs = NULL;
    if (srv->lfs) {
        err = lfs_unmount(srv->lfs);
        if (err)
            log_error("unmounting %s failed: %s", srv->opts->image,
                      lfs_strerror(err));
        srv->lfs = NULL;
    }
    if (srv->bd) {
        bd_close(srv->bd);
        srv->bd = NULL;
    }
}
