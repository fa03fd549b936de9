/*
 * sshfsd-image commands that change the directory tree: mkdir, rm and mv.
 */
#include <stdlib.h>
#include <string.h>

#include "tools/image_tool.h"

/* mkdir */

/* Create path and every missing parent; existing directories are fine. */
static int image_mkdir_parents(struct image *img, const char *path)
{
    size_t len = strlen(path);
    char *prefix = malloc(len + 1);
    int err = LFS_ERR_OK;

    if (!prefix)
        return LFS_ERR_NOMEM;

    /* Each '/' after a component ends one prefix to create, and so does
     * the end of the path. */
    for (size_t i = 1; i <= len && err == LFS_ERR_OK; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (path[i - 1] == '/')
            continue;

        struct lfs_info info;

        memcpy(prefix, path, i);
        prefix[i] = '\0';
        err = lfs_mkdir(img->lfs, prefix);
        if (err == LFS_ERR_EXIST) {
            err = lfs_stat(img->lfs, prefix, &info);
            if (err == LFS_ERR_OK && info.type != LFS_TYPE_DIR)
                err = LFS_ERR_EXIST;
        }
    }
    free(prefix);
    return err;
}

int image_cmd_mkdir(struct image_args *args)
{
    const char *path = args->positional[1];
    struct image img;

    if (image_open(args, 1, &img) < 0)
        return IMAGE_EXIT_FAILED;

    int err = args->parents ? image_mkdir_parents(&img, path)
                            : lfs_mkdir(img.lfs, path);

    if (err != LFS_ERR_OK)
        image_lfs_error(&img, path, err);
    if (image_close(&img) != LFS_ERR_OK)
        return IMAGE_EXIT_FAILED;
    return err == LFS_ERR_OK ? IMAGE_EXIT_OK : IMAGE_EXIT_FAILED;
}

/* rm */

/* Whether path names the root: its components, with "." skipped and ".."
 * going up but never above the root as the engine resolves them, end at
 * the root. */
static int image_path_is_root(const char *path)
{
    size_t depth = 0;

    while (*path) {
        size_t len = strcspn(path, "/");

        if (len == 2 && path[0] == '.' && path[1] == '.') {
            if (depth > 0)
                depth--;
        } else if (len > 0 && !(len == 1 && path[0] == '.')) {
            depth++;
        }
        path += len;
        if (*path == '/')
            path++;
    }
    return depth == 0;
}

/* Collect the names in the directory at path into a NULL-terminated
 * array (malloc), so entries can be removed after the listing closes. */
static int image_list_names(struct image *img, const char *path,
                            char ***out)
{
    struct lfs_dir *dir;
    struct lfs_info info;
    char **names = NULL;
    size_t count = 0;
    int err = lfs_dir_open(img->lfs, &dir, path);

    if (err != LFS_ERR_OK)
        return err;

    while ((err = lfs_dir_read(dir, &info)) == 1) {
        char **grown = realloc(names, (count + 2) * sizeof(*names));

        if (!grown || !(grown[count] = strdup(info.name))) {
            names = grown ? grown : names;
            err = LFS_ERR_NOMEM;
            break;
        }
        names = grown;
        count++;
        names[count] = NULL;
    }

    int close_err = lfs_dir_close(dir);

    if (err == LFS_ERR_OK)
        err = close_err;
    if (err != LFS_ERR_OK) {
        for (size_t i = 0; i < count; i++)
            free(names[i]);
        free(names);
        return err;
    }
    *out = names;
    return LFS_ERR_OK;
}

/* Remove path and, when it is a directory, everything below it.  On
 * failure *failed_path is the path that could not be removed (malloc). */
static int image_remove_tree(struct image *img, const char *path,
                             char **failed_path)
{
    struct lfs_info info;
    char **names = NULL;
    int err = lfs_stat(img->lfs, path, &info);

    if (err == LFS_ERR_OK && info.type == LFS_TYPE_DIR)
        err = image_list_names(img, path, &names);

    for (size_t i = 0; err == LFS_ERR_OK && names && names[i]; i++) {
        char *child = image_join_path(path, names[i]);

        err = child ? image_remove_tree(img, child, failed_path)
                    : LFS_ERR_NOMEM;
        free(child);
    }
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);

    if (err == LFS_ERR_OK)
        err = lfs_remove(img->lfs, path);
    if (err != LFS_ERR_OK && !*failed_path)
        *failed_path = strdup(path);
    return err;
}

int image_cmd_rm(struct image_args *args)
{
    const char *path = args->positional[1];
    struct image img;

    if (image_path_is_root(path)) {
        image_error(args->positional[0], path,
                    "cannot remove the root directory");
        return IMAGE_EXIT_FAILED;
    }
    if (image_open(args, 1, &img) < 0)
        return IMAGE_EXIT_FAILED;

    char *failed_path = NULL;
    int err = args->recursive ? image_remove_tree(&img, path, &failed_path)
                              : lfs_remove(img.lfs, path);

    if (err != LFS_ERR_OK)
        image_lfs_error(&img, failed_path ? failed_path : path, err);
    free(failed_path);
    if (image_close(&img) != LFS_ERR_OK)
        return IMAGE_EXIT_FAILED;
    return err == LFS_ERR_OK ? IMAGE_EXIT_OK : IMAGE_EXIT_FAILED;
}

/* mv */

int image_cmd_mv(struct image_args *args)
{
    const char *old_path = args->positional[1];
    const char *new_path = args->positional[2];
    struct image img;
    struct lfs_info info;

    if (image_open(args, 1, &img) < 0)
        return IMAGE_EXIT_FAILED;

    /* Once OLD is known to exist, a failure is about NEW (its parent is
     * missing, or it is a directory that is not empty), so the message
     * names the path that needs fixing. */
    const char *blamed = old_path;
    int err = lfs_stat(img.lfs, old_path, &info);

    if (err == LFS_ERR_OK) {
        blamed = new_path;
        err = lfs_rename(img.lfs, old_path, new_path);
    }

    if (err != LFS_ERR_OK)
        image_lfs_error(&img, blamed, err);
    if (image_close(&img) != LFS_ERR_OK)
        return IMAGE_EXIT_FAILED;
    return err == LFS_ERR_OK ? IMAGE_EXIT_OK : IMAGE_EXIT_FAILED;
}
