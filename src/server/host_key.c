/*
 * The host key: derived from --seed, read from --host-key, or kept in the
 * image as an attribute of the root directory (docs/FORMAT.md), made on
 * the first start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lfs/lfs.h"
#include "server/log.h"
#include "server/server.h"

/* The root attribute holding the host key: a format byte, then the
 * ed25519 private seed. */
#define HOSTKEY_ATTR 0x6b
#define HOSTKEY_ATTR_ED25519 1
#define HOSTKEY_ATTR_LEN (1 + SSH_ED25519_SEED_LEN)
#define HOST_KEY_FILE_MAX (64 * 1024)

static int load_file(struct server *srv, const char *path)
{
    char *text = malloc(HOST_KEY_FILE_MAX);
    ssize_t n = -1;
    int fd, err;

    if (!text)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, text, HOST_KEY_FILE_MAX);
        close(fd);
    }
    if (n < 0) {
        log_error("cannot read host key %s: %s", path, strerror(errno));
        free(text);
        return -1;
    }
    err = ssh_hostkey_parse_openssh(&srv->hostkey, text, (size_t)n);
    OPENSSL_cleanse(text, HOST_KEY_FILE_MAX);
    free(text);
    if (err) {
        log_error("cannot load host key %s: not an unencrypted OpenSSH "
                  "ed25519 private key", path);
        return -1;
    }
    return 0;
}

static int store_new_key(struct server *srv, uint8_t attr[HOSTKEY_ATTR_LEN])
{
    int err;

    if (ssh_hostkey_generate(&srv->hostkey, attr + 1)) {
        log_error("cannot generate a host key");
        return -1;
    }
    attr[0] = HOSTKEY_ATTR_ED25519;
    if (srv->opts->read_only) {
        log_warn("the image contains no host key and is served read-only: "
                 "using a temporary host key, which changes on every "
                 "start");
        return 0;
    }
    err = lfs_setattr(srv->lfs, "/", HOSTKEY_ATTR, attr, HOSTKEY_ATTR_LEN);
    if (!err)
        err = lfs_fs_sync(srv->lfs);
    if (err) {
        log_error("cannot store the new host key in the image: %s",
                  lfs_strerror(err));
        return -1;
    }
    log_info("generated a new host key and stored it in the image");
    return 0;
}

static int load_from_image(struct server *srv)
{
    uint8_t attr[HOSTKEY_ATTR_LEN];
    ssize_t n = lfs_getattr(srv->lfs, "/", HOSTKEY_ATTR, attr, sizeof(attr));
    int rc = -1;

    if (n == LFS_ERR_NOATTR) {
        rc = store_new_key(srv, attr);
    } else if (n < 0) {
        log_error("cannot read the host key from the image: %s",
                  lfs_strerror((int)n));
    } else if (n != HOSTKEY_ATTR_LEN || attr[0] != HOSTKEY_ATTR_ED25519) {
        log_error("the host key stored in the image has an unknown format "
                  "(attribute 0x%02x, %zd bytes)", HOSTKEY_ATTR, n);
    } else if (ssh_hostkey_from_seed(&srv->hostkey, attr + 1)) {
        log_error("the host key stored in the image is invalid");
    } else {
        rc = 0;
    }
    OPENSSL_cleanse(attr, sizeof(attr));
    return rc;
}

int server_load_host_key(struct server *srv)
{
    char fp[SSH_FINGERPRINT_MAX];
    const uint8_t *blob;
    size_t len;
    int rc;

    if (srv->opts->seed)
        rc = ssh_hostkey_derive(&srv->hostkey, srv->opts->seed) ? -1 : 0;
    else if (srv->opts->host_key_file)
        rc = load_file(srv, srv->opts->host_key_file);
    else
        rc = load_from_image(srv);
    if (rc)
        return rc;

    /* The form ssh-keygen -l prints, to compare with ssh's prompt. */
    blob = ssh_hostkey_blob(srv->hostkey, &len);
    ssh_fingerprint(blob, len, fp);
    log_info("host key: 256 %s (ED25519)", fp);
    return 0;
}
