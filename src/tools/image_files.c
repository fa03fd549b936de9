/*
 * sshfsd-image commands that read and write files: ls, read and write.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/image_tool.h"

/* One directory entry collected for sorting. */
struct image_entry {
    char *name;
    uint8_t type;
    uint32_t size;
};

struct image_entry_list {
    struct image_entry *items;
    size_t count;
    size_t capacity;
};

static int image_stdout_error(const char *image)
{
    image_error(image, NULL, "cannot write to stdout: %s", strerror(errno));
    return IMAGE_EXIT_FAILED;
}

/* ls */

/* Format the modification time of path as "YYYY-MM-DDTHH:MM:SSZ" (UTC),
 * "-" when it has none, or "?" when the stored value cannot be decoded. */
static int image_format_mtime(struct image *img, const char *path,
                              char *out, size_t size)
{
    uint8_t raw[LFS_TIME_ATTR_SIZE];
    ssize_t len = lfs_getattr(img->lfs, path, LFS_ATTR_MTIME, raw,
                              sizeof(raw));
    struct timespec ts;
    struct tm tm;

    if (len == LFS_ERR_NOATTR) {
        snprintf(out, size, "-");
        return 0;
    }
    if (len < 0) {
        image_lfs_error(img, path, (int)len);
        return -1;
    }

    if (len != LFS_TIME_ATTR_SIZE
        || lfs_time_decode(raw, (size_t)len, &ts) != LFS_ERR_OK
        || !gmtime_r(&ts.tv_sec, &tm)
        || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, size, "?");
    return 0;
}

/* Print one ls line; path is where the entry is in the image, name is
 * what to show. */
static int image_print_entry(struct image *img, const char *path,
                             const char *name, uint8_t type, uint32_t size,
                             int long_listing)
{
    char mtime[64];

    if (!long_listing) {
        printf("%s\n", name);
        return 0;
    }
    if (image_format_mtime(img, path, mtime, sizeof(mtime)) < 0)
        return -1;

    printf("%c %10" PRIu32 " %-20s %s\n", type == LFS_TYPE_DIR ? 'd' : '-',
           size, mtime, name);
    return 0;
}

static void image_free_entries(struct image_entry_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].name);
    free(list->items);
    memset(list, 0, sizeof(*list));
}

static int image_add_entry(struct image_entry_list *list,
                           const struct lfs_info *info)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        struct image_entry *items = realloc(list->items,
                                            capacity * sizeof(*items));

        if (!items)
            return LFS_ERR_NOMEM;
        list->items = items;
        list->capacity = capacity;
    }

    char *name = strdup(info->name);

    if (!name)
        return LFS_ERR_NOMEM;
    list->items[list->count].name = name;
    list->items[list->count].type = info->type;
    list->items[list->count].size = info->size;
    list->count++;
    return LFS_ERR_OK;
}

/* Read every entry of the directory at path into list. */
static int image_read_dir(struct image *img, const char *path,
                          struct image_entry_list *list)
{
    struct lfs_dir *dir;
    struct lfs_info info;
    int err = lfs_dir_open(img->lfs, &dir, path);

    if (err != LFS_ERR_OK)
        return err;

    while ((err = lfs_dir_read(dir, &info)) == 1) {
        err = image_add_entry(list, &info);
        if (err != LFS_ERR_OK)
            break;
    }

    int close_err = lfs_dir_close(dir);

    if (err == LFS_ERR_OK)
        err = close_err;
    if (err != LFS_ERR_OK)
        image_free_entries(list);
    return err;
}

static int image_compare_entries(const void *a, const void *b)
{
    const struct image_entry *x = a;
    const struct image_entry *y = b;

    return strcmp(x->name, y->name);
}

/* List a directory's entries sorted by name, in byte order like ls in
 * the C locale. */
static int image_list_dir(struct image *img, const char *path,
                          int long_listing)
{
    struct image_entry_list list = { 0 };
    int err = image_read_dir(img, path, &list);

    if (err != LFS_ERR_OK) {
        image_lfs_error(img, path, err);
        return -1;
    }
    if (list.count > 1)
        qsort(list.items, list.count, sizeof(list.items[0]),
              image_compare_entries);

    int result = 0;

    for (size_t i = 0; i < list.count && result == 0; i++) {
        const struct image_entry *entry = &list.items[i];
        char *child = image_join_path(path, entry->name);

        if (!child) {
            image_lfs_error(img, path, LFS_ERR_NOMEM);
            result = -1;
            break;
        }
        result = image_print_entry(img, child, entry->name, entry->type,
                                   entry->size, long_listing);
        free(child);
    }
    image_free_entries(&list);
    return result;
}

int image_cmd_ls(struct image_args *args)
{
    const char *path = args->positional_count > 1 ? args->positional[1] : "/";
    struct image img;
    struct lfs_info info;

    if (image_open(args, 0, &img) < 0)
        return IMAGE_EXIT_FAILED;

    int err = lfs_stat(img.lfs, path, &info);
    int result;

    if (err != LFS_ERR_OK) {
        image_lfs_error(&img, path, err);
        result = -1;
    } else if (info.type == LFS_TYPE_DIR) {
        result = image_list_dir(&img, path, args->long_listing);
    } else {
        /* Like ls(1), a file is shown under the path it was given as. */
        result = image_print_entry(&img, path, path, info.type, info.size,
                                   args->long_listing);
    }

    if (image_close(&img) != LFS_ERR_OK || result < 0)
        return IMAGE_EXIT_FAILED;
    if (fflush(stdout) != 0)
        return image_stdout_error(img.path);
    return IMAGE_EXIT_OK;
}

/* read */

static int image_copy_to_stdout(struct image *img, const char *path,
                                struct lfs_file *file)
{
    char *buf = malloc(IMAGE_COPY_CHUNK);

    if (!buf) {
        image_lfs_error(img, path, LFS_ERR_NOMEM);
        return -1;
    }

    int result = 0;

    for (;;) {
        ssize_t n = lfs_file_read(file, buf, IMAGE_COPY_CHUNK);

        if (n < 0) {
            image_lfs_error(img, path, (int)n);
            result = -1;
            break;
        }
        if (n == 0)
            break;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            image_stdout_error(img->path);
            result = -1;
            break;
        }
    }
    free(buf);
    return result;
}

int image_cmd_read(struct image_args *args)
{
    const char *path = args->positional[1];
    struct image img;
    struct lfs_file *file;

    if (image_open(args, 0, &img) < 0)
        return IMAGE_EXIT_FAILED;

    int err = lfs_file_open(img.lfs, &file, path, LFS_O_RDONLY);
    int result = -1;

    if (err != LFS_ERR_OK) {
        image_lfs_error(&img, path, err);
    } else {
        result = image_copy_to_stdout(&img, path, file);
        err = lfs_file_close(file);
        if (err != LFS_ERR_OK && result == 0) {
            image_lfs_error(&img, path, err);
            result = -1;
        }
    }

    if (image_close(&img) != LFS_ERR_OK || result < 0)
        return IMAGE_EXIT_FAILED;
    if (fflush(stdout) != 0)
        return image_stdout_error(img.path);
    return IMAGE_EXIT_OK;
}

/* write */

/* The mount and file that a failed write leaves open on purpose (see
 * image_cmd_write).  They stay reachable here, so leak checkers do not
 * report them as lost. */
static struct image image_abandoned;
static struct lfs_file *image_abandoned_file;

/* Write all of buf; returns 0 or an lfs error. */
static int image_write_all(struct lfs_file *file, const char *buf,
                           size_t len)
{
    while (len > 0) {
        ssize_t n = lfs_file_write(file, buf, len);

        if (n < 0)
            return (int)n;
        if (n == 0)
            return LFS_ERR_NOSPC;
        buf += n;
        len -= (size_t)n;
    }
    return LFS_ERR_OK;
}

/* Copy stdin into file in chunks, so a stream larger than memory fits.
 * Returns 0 or, after printing the error, an lfs error (LFS_ERR_IO when
 * reading stdin failed). */
static int image_copy_from_stdin(struct image *img, const char *path,
                                 struct lfs_file *file)
{
    char *buf = malloc(IMAGE_COPY_CHUNK);

    if (!buf) {
        image_lfs_error(img, path, LFS_ERR_NOMEM);
        return LFS_ERR_NOMEM;
    }

    int result = LFS_ERR_OK;

    for (;;) {
        size_t n = fread(buf, 1, IMAGE_COPY_CHUNK, stdin);

        if (n > 0) {
            result = image_write_all(file, buf, n);
            if (result != LFS_ERR_OK) {
                image_lfs_error(img, path, result);
                break;
            }
        }
        if (n < IMAGE_COPY_CHUNK) {
            if (ferror(stdin)) {
                image_error(img->path, path, "cannot read stdin: %s",
                            strerror(errno));
                result = LFS_ERR_IO;
            }
            break;
        }
    }
    free(buf);
    return result;
}

int image_cmd_write(struct image_args *args)
{
    const char *path = args->positional[1];
    const char *data = args->positional_count > 2 ? args->positional[2] : "-";
    struct image img;
    struct lfs_file *file;

    if (image_open(args, 1, &img) < 0)
        return IMAGE_EXIT_FAILED;

    int err = lfs_file_open(img.lfs, &file, path,
                            LFS_O_WRONLY | LFS_O_CREAT | LFS_O_TRUNC);

    if (err != LFS_ERR_OK) {
        image_lfs_error(&img, path, err);
        (void)image_close(&img);
        return IMAGE_EXIT_FAILED;
    }

    if (strcmp(data, "-") == 0) {
        err = image_copy_from_stdin(&img, path, file);
    } else {
        err = image_write_all(file, data, strlen(data));
        if (err != LFS_ERR_OK)
            image_lfs_error(&img, path, err);
    }

    /* NOTE: when the data cannot be written in full, return without
     * closing the file or unmounting.  Both would commit the partial
     * contents, so this is the only way to keep the old ones.  A file that
     * did not exist before stays behind, empty.  The process exits next,
     * which releases the memory and the descriptor. */
    if (err != LFS_ERR_OK) {
        image_abandoned = img;
        image_abandoned_file = file;
        return IMAGE_EXIT_FAILED;
    }

    err = lfs_file_close(file);
    if (err != LFS_ERR_OK)
        image_lfs_error(&img, path, err);
    if (image_close(&img) != LFS_ERR_OK)
        return IMAGE_EXIT_FAILED;
    return err == LFS_ERR_OK ? IMAGE_EXIT_OK : IMAGE_EXIT_FAILED;
}
