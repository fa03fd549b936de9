/*
 * sshfsd-image commands that work on the whole filesystem: format, info
 * and check.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/image_tool.h"

#define IMAGE_DEFAULT_BLOCK_SIZE 512u
#define IMAGE_DEFAULT_NAME_MAX 255u

/* littlefs needs at least the two blocks of the superblock pair. */
#define IMAGE_MIN_BLOCKS 2u

/* Parse a byte count with an optional K, M or G suffix (powers of 1024). */
static int image_parse_size(const char *text, uint64_t *out)
{
    uint64_t value = 0;
    const char *p = text;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (value > (UINT64_MAX - 9) / 10)
            return -1;
        value = value * 10 + (uint64_t)(*p - '0');
    }

    unsigned shift = 0;

    switch (*p) {
    case '\0': break;
    case 'K': case 'k': shift = 10; p++; break;
    case 'M': case 'm': shift = 20; p++; break;
    case 'G': case 'g': shift = 30; p++; break;
    default: return -1;
    }
    if (*p != '\0' || value == 0 || value > (UINT64_MAX >> shift))
        return -1;

    *out = value << shift;
    return 0;
}

static int image_parse_name_max(const char *text, uint32_t *out)
{
    unsigned long value = 0;

    if (*text == '\0' || strlen(text) > 4)
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (unsigned long)(*p - '0');
    }
    if (value < 1 || value > LFS_NAME_MAX_LIMIT)
        return -1;

    *out = (uint32_t)value;
    return 0;
}

/* Check the geometry before anything touches the image. */
static int image_check_geometry(const char *image, uint64_t size,
                                uint32_t block_size)
{
    if (size % block_size != 0) {
        image_error(image, NULL, "image size %" PRIu64 " is not a multiple "
                    "of the block size %u", size, (unsigned)block_size);
        return -1;
    }
    if (size / block_size < IMAGE_MIN_BLOCKS) {
        image_error(image, NULL, "image size %" PRIu64 " is too small: "
                    "littlefs needs at least %u blocks of %u bytes", size,
                    IMAGE_MIN_BLOCKS, (unsigned)block_size);
        return -1;
    }
    if (size / block_size > UINT32_MAX) {
        image_error(image, NULL, "image size %" PRIu64 " is too large: "
                    "more than %" PRIu32 " blocks of %u bytes", size,
                    UINT32_MAX, (unsigned)block_size);
        return -1;
    }
    return 0;
}

/* Create IMAGE or change its size (--size).  Growing adds zero bytes,
 * which format then overwrites where littlefs needs them. */
static int image_resize_file(const char *image, uint64_t size)
{
    struct stat st;
    int existed = stat(image, &st) == 0;

    if (existed && !S_ISREG(st.st_mode)) {
        image_error(image, NULL, "--size needs a regular file, and this "
                    "is not one");
        return -1;
    }

    int fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        image_error(image, NULL, "cannot create image: %s", strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        image_error(image, NULL, "cannot resize image to %" PRIu64
                    " bytes: %s", size, strerror(errno));
        close(fd);
        if (!existed)
            unlink(image);
        return -1;
    }
    if (close(fd) < 0) {
        image_error(image, NULL, "cannot close image: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Fill opts from the format options; prints the error on failure. */
static int image_format_options(const struct image_args *args,
                                struct lfs_format_options *opts)
{
    const char *image = args->positional[0];

    opts->block_size = args->block_size ? args->block_size
                                        : IMAGE_DEFAULT_BLOCK_SIZE;
    opts->name_max = IMAGE_DEFAULT_NAME_MAX;
    opts->disk_version = LFS_DISK_VERSION_2_0;

    if (args->name_max
        && image_parse_name_max(args->name_max, &opts->name_max) < 0) {
        image_error(image, NULL, "invalid --name-max '%s': expected a "
                    "number from 1 to %u", args->name_max, LFS_NAME_MAX_LIMIT);
        return -1;
    }

    if (args->disk_version) {
        if (strcmp(args->disk_version, "2.0") == 0) {
            opts->disk_version = LFS_DISK_VERSION_2_0;
        } else if (strcmp(args->disk_version, "2.1") == 0) {
            opts->disk_version = LFS_DISK_VERSION_2_1;
        } else {
            image_error(image, NULL, "invalid --disk-version '%s': expected "
                        "2.0 or 2.1", args->disk_version);
            return -1;
        }
    }
    return 0;
}

/* Write encrypted erased (0xff) sectors over the whole device. */
static int image_wipe_encrypted(const char *image, struct bd *bd)
{
    uint32_t unit = bd->size % 65536 == 0 ? 65536 : BD_CCM_SECTOR_SIZE;
    int err = bd_set_block_size(bd, unit);

    for (uint32_t b = 0; err == BD_OK && b < bd->block_count; b++)
        err = bd_erase(bd, b);
    if (err != BD_OK) {
        image_error(image, NULL, "cannot write the encrypted image: %s",
                    bd->error[0] ? bd->error : bd_strerror(err));
        return -1;
    }
    return 0;
}

int image_cmd_format(struct image_args *args)
{
    const char *image = args->positional[0];
    struct lfs_format_options opts;
    uint64_t size = 0;

    if (image_format_options(args, &opts) < 0)
        return IMAGE_EXIT_USAGE;
    if (args->size) {
        if (image_parse_size(args->size, &size) < 0) {
            image_error(image, NULL, "invalid --size '%s': expected a "
                        "number of bytes with an optional K, M or G suffix",
                        args->size);
            return IMAGE_EXIT_USAGE;
        }
        if (image_check_geometry(image, size, opts.block_size) < 0)
            return IMAGE_EXIT_USAGE;
    }

    if (args->key.present && opts.block_size < BD_CCM_SECTOR_SIZE) {
        image_error(image, NULL, "encrypted images need a block size of at "
                    "least %u bytes", BD_CCM_SECTOR_SIZE);
        return IMAGE_EXIT_USAGE;
    }

    /* --size is the filesystem's size: an encrypted image stores every
     * 512-byte sector in 1024 bytes, so its file is twice as large */
    uint64_t file_size = args->key.present ? 2 * size : size;
    if (args->size && image_resize_file(image, file_size) < 0)
        return IMAGE_EXIT_FAILED;

    struct image img = { .path = image };

    if (image_open_device(args, image, 1, &img.bd) < 0)
        return IMAGE_EXIT_FAILED;
    if (image_check_geometry(image, img.bd->size, opts.block_size) < 0) {
        bd_close(img.bd);
        return IMAGE_EXIT_FAILED;
    }

    /* an encrypted format first writes every sector, so nothing the file
     * held before stays readable in the clear */
    if (args->key.present && image_wipe_encrypted(image, img.bd) < 0) {
        bd_close(img.bd);
        return IMAGE_EXIT_FAILED;
    }

    int err = lfs_format(img.bd, &opts);

    if (err == LFS_ERR_OK) {
        int sync_err = bd_sync(img.bd);

        if (sync_err != BD_OK)
            image_error(image, NULL, "cannot sync image: %s%s%s",
                        bd_strerror(sync_err), img.bd->error[0] ? ": " : "",
                        img.bd->error);
        err = sync_err == BD_OK ? LFS_ERR_OK : LFS_ERR_IO;
    } else {
        image_lfs_error(&img, NULL, err);
    }
    bd_close(img.bd);
    return err == LFS_ERR_OK ? IMAGE_EXIT_OK : IMAGE_EXIT_FAILED;
}

int image_cmd_info(struct image_args *args)
{
    struct image img;
    struct lfs_fsinfo info;

    if (image_open(args, 0, &img) < 0)
        return IMAGE_EXIT_FAILED;

    int err = lfs_fs_stat(img.lfs, &info);
    int64_t used = err == LFS_ERR_OK ? lfs_fs_size(img.lfs) : err;

    if (err != LFS_ERR_OK || used < 0) {
        image_lfs_error(&img, NULL, err != LFS_ERR_OK ? err : (int)used);
        (void)image_close(&img);
        return IMAGE_EXIT_FAILED;
    }

    printf("disk_version: %" PRIu32 ".%" PRIu32 "\n",
           info.disk_version >> 16, info.disk_version & 0xffff);
    printf("block_size: %" PRIu32 "\n", info.block_size);
    printf("block_count: %" PRIu32 "\n", info.block_count);
    printf("used_blocks: %" PRId64 "\n", used);
    printf("name_max: %" PRIu32 "\n", info.name_max);
    printf("file_max: %" PRIu32 "\n", info.file_max);
    printf("attr_max: %" PRIu32 "\n", info.attr_max);

    if (image_close(&img) != LFS_ERR_OK)
        return IMAGE_EXIT_FAILED;
    if (fflush(stdout) != 0) {
        image_error(args->positional[0], NULL, "cannot write to stdout: %s",
                    strerror(errno));
        return IMAGE_EXIT_FAILED;
    }
    return IMAGE_EXIT_OK;
}

static void image_print_check_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

int image_cmd_check(struct image_args *args)
{
    struct image img;

    if (image_open(args, 0, &img) < 0)
        return IMAGE_EXIT_CHECK_NOT_RUN;

    int result = lfs_check(img.lfs, image_print_check_line, NULL);

    if (result < 0)
        image_lfs_error(&img, NULL, result);
    if (image_close(&img) != LFS_ERR_OK)
        return IMAGE_EXIT_CHECK_NOT_RUN;
    if (fflush(stdout) != 0) {
        image_error(args->positional[0], NULL, "cannot write to stdout: %s",
                    strerror(errno));
        return IMAGE_EXIT_CHECK_NOT_RUN;
    }

    if (result < 0)
        return IMAGE_EXIT_CHECK_NOT_RUN;
    return result == 0 ? IMAGE_EXIT_OK : IMAGE_EXIT_CHECK_PROBLEMS;
}
