/*
 * sshfsd-image encrypt and decrypt: convert a plain image to an AES-CCM
 * encrypted one and back, as ccmblock's enc and dec do.  The output file
 * is written in full (twice or half the input's size) and removed again
 * when the conversion fails, so a failed run leaves no half image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/image_tool.h"

/* Return whether both paths name one existing file, under any spelling
 * (./x, a link).  Creating the output truncates it, which would destroy
 * the input before it is read. */
static int image_same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0
           && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Check the options both conversions need. */
static int image_check_conversion(const struct image_args *args)
{
    if (!args->in_path) {
        image_error(NULL, NULL, "command '%s' needs --in IMAGE",
                    args->command);
        return IMAGE_EXIT_USAGE;
    }
    if (!args->out_path) {
        image_error(args->in_path, NULL, "command '%s' needs --out IMAGE",
                    args->command);
        return IMAGE_EXIT_USAGE;
    }
    if (!args->key.present) {
        image_error(args->in_path, NULL, "command '%s' needs --key HEX, "
                    "--key-file FILE or $%s", args->command, IMAGE_KEY_ENV);
        return IMAGE_EXIT_USAGE;
    }
    if (strcmp(args->in_path, args->out_path) == 0
        || image_same_file(args->in_path, args->out_path)) {
        image_error(args->in_path, NULL, "--in and --out must be different "
                    "files");
        return IMAGE_EXIT_USAGE;
    }
    return IMAGE_EXIT_OK;
}

/* Create (or truncate) the output file with the given size and open it
 * as a plain device.  Only a regular file is accepted, so that a failed
 * conversion can remove it without removing a device node. */
static struct bd *create_output(const char *path, uint64_t size)
{
    char err[BD_ERROR_MAX];
    struct stat st;

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        image_error(path, NULL, "cannot create output: not a regular file");
        return NULL;
    }

    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

    if (fd < 0) {
        image_error(path, NULL, "cannot create output: %s", strerror(errno));
        return NULL;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        image_error(path, NULL, "cannot size output: %s", strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    struct bd *bd = bd_file_from_fd(fd, 1, err, sizeof(err));
    if (!bd) {
        image_error(path, NULL, "%s", err);
        close(fd);
        unlink(path);
    }
    return bd;
}

static struct bd *wrap(const struct image_args *args, const char *path,
                       struct bd *inner)
{
    char err[BD_ERROR_MAX];
    struct bd *ccm = bd_ccm_new(inner, args->key.bytes, args->key.len, err,
                                sizeof(err));
    if (!ccm) {
        image_error(path, NULL, "%s", err);
        bd_close(inner);
    }
    return ccm;
}

/* Copy every 512-byte sector from src to dst.  A sector of src that was
 * never written through the encryption (all zero bytes) becomes an
 * erased sector (0xff bytes) and is counted in *unwritten. */
static int copy_sectors(const struct image_args *args, struct bd *src,
                        struct bd *dst, uint64_t *unwritten)
{
    uint8_t p[BD_CCM_SECTOR_SIZE];
    uint64_t sectors = src->size / BD_CCM_SECTOR_SIZE;
    int err = BD_OK;

    *unwritten = 0;
    for (uint64_t s = 0; s < sectors && err == BD_OK; s++) {
        err = bd_read_raw(src, s * BD_CCM_SECTOR_SIZE, p, BD_CCM_SECTOR_SIZE);
        if (err == BD_ERR_UNWRITTEN) {
            memset(p, 0xff, BD_CCM_SECTOR_SIZE);
            (*unwritten)++;
            err = BD_OK;
        }
        if (err != BD_OK) {
            image_error(args->in_path, NULL, "%s", src->error[0]
                        ? src->error : bd_strerror(err));
            break;
        }
        err = bd_prog(dst, (uint32_t)s, 0, p, BD_CCM_SECTOR_SIZE);
        if (err != BD_OK)
            image_error(args->out_path, NULL, "%s", dst->error[0]
                        ? dst->error : bd_strerror(err));
    }
    if (err == BD_OK) {
        err = bd_sync(dst);
        if (err != BD_OK)
            image_error(args->out_path, NULL, "cannot sync: %s",
                        bd_strerror(err));
    }
    explicit_bzero(p, sizeof(p));
    return err == BD_OK ? 0 : -1;
}

static int image_convert(const struct image_args *args, int encrypt)
{
    char err[BD_ERROR_MAX];
    int status = image_check_conversion(args);

    if (status != IMAGE_EXIT_OK)
        return status;

    /* bd_file_open()'s messages name the path themselves. */
    struct bd *in = bd_file_open(args->in_path, 0, err, sizeof(err));
    if (!in) {
        image_error(NULL, NULL, "%s", err);
        return IMAGE_EXIT_FAILED;
    }
    if (encrypt && in->size % BD_CCM_SECTOR_SIZE != 0) {
        image_error(args->in_path, NULL, "size %llu is not a whole number "
                    "of 512-byte sectors", (unsigned long long)in->size);
        bd_close(in);
        return IMAGE_EXIT_FAILED;
    }
    if (!encrypt && !(in = wrap(args, args->in_path, in)))
        return IMAGE_EXIT_FAILED;

    /* From here on the output exists, and every failure removes it. */
    uint64_t out_size = encrypt ? 2 * in->size : in->size;
    struct bd *out = create_output(args->out_path, out_size);
    if (!out) {
        bd_close(in);
        return IMAGE_EXIT_FAILED;
    }
    if (encrypt && !(out = wrap(args, args->out_path, out))) {
        bd_close(in);
        unlink(args->out_path);
        return IMAGE_EXIT_FAILED;
    }
    if (bd_set_block_size(out, BD_CCM_SECTOR_SIZE) != BD_OK) {
        image_error(args->out_path, NULL, "%s", out->error);
        bd_close(in);
        bd_close(out);
        unlink(args->out_path);
        return IMAGE_EXIT_FAILED;
    }

    uint64_t unwritten = 0;
    int failed = copy_sectors(args, in, out, &unwritten);
    bd_close(in);
    bd_close(out);
    if (failed) {
        unlink(args->out_path);
        return IMAGE_EXIT_FAILED;
    }
    if (unwritten == 1)
        fprintf(stderr, IMAGE_PROGRAM ": %s: note: 1 sector was never "
                "written through the encryption and is an erased (0xff) "
                "sector in the output\n", args->in_path);
    else if (unwritten > 1)
        fprintf(stderr, IMAGE_PROGRAM ": %s: note: %llu sectors were never "
                "written through the encryption and are erased (0xff) "
                "sectors in the output\n", args->in_path,
                (unsigned long long)unwritten);
    return IMAGE_EXIT_OK;
}

int image_cmd_encrypt(struct image_args *args)
{
    return image_convert(args, 1);
}

int image_cmd_decrypt(struct image_args *args)
{
    return image_convert(args, 0);
}
