/*
 * sshfsd-image: error reporting, keys, and opening and mounting images.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/image_tool.h"

/* Maximum size of a key file, which contains the key in hex. */
#define IMAGE_KEY_FILE_MAX 1024

/* Error reporting */

void image_error(const char *image, const char *path, const char *fmt, ...)
{
    va_list ap;

    fputs(IMAGE_PROGRAM ": ", stderr);
    if (image)
        fprintf(stderr, "%s: ", image);
    if (path)
        fprintf(stderr, "%s: ", path);

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void image_lfs_error(const struct image *img, const char *path, int err)
{
    const char *detail = "";

    /* After a failed mount or an unmount there is no struct lfs any more,
     * but the block device still has the detail of its last failure. */
    if (img->lfs)
        detail = lfs_error_detail(img->lfs);
    else if (img->bd)
        detail = img->bd->error;

    if (detail && detail[0])
        image_error(img->path, path, "%s (%s)", lfs_strerror(err), detail);
    else
        image_error(img->path, path, "%s", lfs_strerror(err));
}

/* Keys */

/* Decode hex digits (an optional "0x" prefix is skipped, as ccmblock
 * does) into an AES key, and record the option the key came from for
 * later messages.  Prints the error, prefixed with source when it is not
 * NULL. */
static int image_decode_key(const char *source, const char *option,
                            const char *hex, struct image_key *key)
{
    char err[BD_ERROR_MAX];
    size_t len;

    /* The message starts with "invalid key:" already. */
    if (bd_ccm_parse_key(hex, key->bytes, &len, err, sizeof(err)) != BD_OK) {
        image_error(source, NULL, "%s", err);
        image_key_wipe(key);
        return -1;
    }
    key->len = len;
    key->present = 1;
    key->option = option;
    return 0;
}

/* Read the key file into buf (NUL-terminated, trailing whitespace cut). */
static int image_read_key_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");

    if (!f) {
        image_error(path, NULL, "cannot open key file: %s", strerror(errno));
        return -1;
    }

    size_t len = fread(buf, 1, size - 1, f);
    int failed = ferror(f);
    int too_long = !failed && len == size - 1 && fgetc(f) != EOF;

    fclose(f);
    if (failed) {
        image_error(path, NULL, "cannot read key file");
        return -1;
    }
    if (too_long) {
        image_error(path, NULL, "key file is longer than %d bytes",
                    IMAGE_KEY_FILE_MAX - 1);
        return -1;
    }

    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'
                       || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    return 0;
}

int image_key_load(struct image_args *args)
{
    if (args->key_hex && args->key_file) {
        image_error(NULL, NULL, "give the key with --key or with --key-file, "
                    "not both");
        return IMAGE_EXIT_USAGE;
    }

    if (args->key_hex) {
        if (image_decode_key(NULL, "--key", args->key_hex, &args->key) < 0)
            return IMAGE_EXIT_USAGE;
        return IMAGE_EXIT_OK;
    }

    if (args->key_file) {
        char buf[IMAGE_KEY_FILE_MAX];
        int status = IMAGE_EXIT_OK;

        if (image_read_key_file(args->key_file, buf, sizeof(buf)) < 0)
            status = IMAGE_EXIT_FAILED;
        else if (image_decode_key(args->key_file, "--key-file", buf,
                                  &args->key) < 0)
            status = IMAGE_EXIT_USAGE;
        explicit_bzero(buf, sizeof(buf));
        return status;
    }

    /* the environment keeps the key out of the process list */
    const char *env = getenv(IMAGE_KEY_ENV);
    if (env && env[0]) {
        if (image_decode_key("$" IMAGE_KEY_ENV, "$" IMAGE_KEY_ENV, env,
                             &args->key) < 0)
            return IMAGE_EXIT_USAGE;
    }
    return IMAGE_EXIT_OK;
}

void image_key_wipe(struct image_key *key)
{
    explicit_bzero(key, sizeof(*key));
}

/* Devices and mounts */

int image_open_device(const struct image_args *args, const char *path,
                      int writable, struct bd **out)
{
    char err[BD_ERROR_MAX];

    err[0] = '\0';
    *out = bd_open_image(path, writable,
                         args->key.present ? args->key.bytes : NULL,
                         args->key.len, err, sizeof(err));
    if (!*out) {
        /* bd_open_image()'s messages name the path themselves. */
        if (err[0])
            image_error(NULL, NULL, "%s", err);
        else
            image_error(path, NULL, "cannot open image");
        return -1;
    }
    return 0;
}

/* Read the block size the image's superblock records, or 0 when the
 * image cannot be mounted without one. */
static uint32_t image_probe_block_size(struct bd *bd)
{
    struct lfs_mount_options opts = { .block_size = 0, .read_only = 1 };
    struct lfs *lfs;
    struct lfs_fsinfo info;
    uint32_t block_size = 0;

    if (lfs_mount(&lfs, bd, &opts) != LFS_ERR_OK)
        return 0;
    if (lfs_fs_stat(lfs, &info) == LFS_ERR_OK)
        block_size = info.block_size;
    if (lfs_unmount(lfs) != LFS_ERR_OK)
        return 0;
    return block_size;
}

int image_open(const struct image_args *args, int writable,
               struct image *img)
{
    struct lfs_mount_options opts = {
        .block_size = args->block_size,
        .read_only = !writable,
    };

    memset(img, 0, sizeof(*img));
    img->path = args->positional[0];
    if (image_open_device(args, img->path, writable, &img->bd) < 0)
        return -1;

    int err = lfs_mount(&img->lfs, img->bd, &opts);

    if (err == LFS_ERR_OK)
        return 0;
    img->lfs = NULL;

    /* A wrong block size may show up as a geometry error or as a missing
     * superblock, so mount again without one to tell the user which block
     * size the image has. */
    uint32_t actual = args->block_size ? image_probe_block_size(img->bd) : 0;

    char why[BD_ERROR_MAX];

    if (actual && actual != args->block_size)
        image_error(img->path, NULL, "block size %u does not match the "
                    "image's block size %u", (unsigned)args->block_size,
                    (unsigned)actual);
    else if (bd_ccm_explain_mount_failure(img->bd, args->key.present
                                          ? args->key.option : "--key",
                                          why, sizeof(why)) == 1)
        image_error(img->path, NULL, "%s", why);
    else
        image_lfs_error(img, NULL, err);

    bd_close(img->bd);
    img->bd = NULL;
    return -1;
}

int image_close(struct image *img)
{
    int err = LFS_ERR_OK;

    if (img->lfs) {
        err = lfs_unmount(img->lfs);
        img->lfs = NULL;
        if (err != LFS_ERR_OK)
            image_lfs_error(img, NULL, err);
    }
    if (img->bd) {
        bd_close(img->bd);
        img->bd = NULL;
    }
    return err;
}

/* Small helpers */

int image_parse_block_size(const char *text, uint32_t *out)
{
    unsigned long value = 0;

    if (*text == '\0' || strlen(text) > 6)
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (unsigned long)(*p - '0');
    }
    if (value < 128 || value > 65536 || (value & (value - 1)) != 0)
        return -1;

    *out = (uint32_t)value;
    return 0;
}

char *image_join_path(const char *dir, const char *name)
{
    size_t dir_len = strlen(dir);

    while (dir_len > 0 && dir[dir_len - 1] == '/')
        dir_len--;

    size_t len = dir_len + 1 + strlen(name) + 1;
    char *path = malloc(len);

    if (path)
        snprintf(path, len, "%.*s/%s", (int)dir_len, dir, name);
    return path;
}
