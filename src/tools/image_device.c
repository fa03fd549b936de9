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

static int image_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode len hex digits (an optional "0x" prefix is skipped, as ccmblock
 * does) into an AES key of 16, 24 or 32 bytes. */
static int image_decode_key(const char *hex, size_t len, struct image_key *key)
{
    if (len >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) {
        hex += 2;
        len -= 2;
    }
    if (len != 32 && len != 48 && len != 64)
        return -1;

    for (size_t i = 0; i < len / 2; i++) {
        int high = image_hex_value(hex[2 * i]);
        int low = image_hex_value(hex[2 * i + 1]);

        if (high < 0 || low < 0) {
            image_key_wipe(key);
            return -1;
        }
        key->bytes[i] = (uint8_t)(high << 4 | low);
    }
    key->len = len / 2;
    key->present = 1;
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
    static const char key_help[] =
        "expected 32, 48 or 64 hex digits (an AES key of 16, 24 or 32 bytes)";

    if (args->key_hex && args->key_file) {
        image_error(NULL, NULL, "give the key with --key or with --key-file, "
                    "not both");
        return IMAGE_EXIT_USAGE;
    }

    if (args->key_hex) {
        if (image_decode_key(args->key_hex, strlen(args->key_hex),
                             &args->key) < 0) {
            image_error(NULL, NULL, "invalid key: %s", key_help);
            return IMAGE_EXIT_USAGE;
        }
        return IMAGE_EXIT_OK;
    }

    if (args->key_file) {
        char buf[IMAGE_KEY_FILE_MAX];
        int status = IMAGE_EXIT_OK;

        if (image_read_key_file(args->key_file, buf, sizeof(buf)) < 0) {
            status = IMAGE_EXIT_FAILED;
        } else if (image_decode_key(buf, strlen(buf), &args->key) < 0) {
            image_error(args->key_file, NULL, "invalid key: %s", key_help);
            status = IMAGE_EXIT_USAGE;
        }
        explicit_bzero(buf, sizeof(buf));
        return status;
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

    /* TODO: wrap the file device in the AES-CCM device once it exists.
     * Until then every command given a key fails here, before the image
     * is opened. */
    if (args->key.present) {
        image_error(path, NULL, "encrypted images are not supported yet");
        return -1;
    }

    err[0] = '\0';
    *out = bd_file_open(path, writable, err, sizeof(err));
    if (!*out) {
        image_error(path, NULL, "%s", err[0] ? err : "cannot open image");
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

    if (actual && actual != args->block_size)
        image_error(img->path, NULL, "block size %u does not match the "
                    "image's block size %u", (unsigned)args->block_size,
                    (unsigned)actual);
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
