/*
 * sshfsd-image: the command-line tool that creates, inspects and edits
 * littlefs disk images.  image_main.c parses the command line into a
 * struct image_args, and each command is one image_cmd_* function.  The
 * helpers below open the image, mount it and report errors, so every
 * command fails the same way.
 */
#ifndef SSHFSD_TOOLS_IMAGE_TOOL_H
#define SSHFSD_TOOLS_IMAGE_TOOL_H

#include <stddef.h>
#include <stdint.h>

#include "block/bd.h"
#include "lfs/lfs.h"

#define IMAGE_PROGRAM "sshfsd-image"

/* Exit statuses. */
enum image_exit {
    IMAGE_EXIT_OK = 0,
    IMAGE_EXIT_FAILED = 1,   /* the operation failed */
    IMAGE_EXIT_USAGE = 2,    /* invalid command line */

    /* check: the image has problems, or the check could not run. */
    IMAGE_EXIT_CHECK_PROBLEMS = 1,
    IMAGE_EXIT_CHECK_NOT_RUN = 2,
};

#define IMAGE_MAX_POSITIONAL 8

/* Chunk size for copying file contents between the image and stdio. */
#define IMAGE_COPY_CHUNK (64 * 1024)

/* AES keys are 16, 24 or 32 bytes. */
#define IMAGE_KEY_MAX 32

/* Environment variable that can hold the key instead of the command
 * line, where every user of the host could read it. */
#define IMAGE_KEY_ENV "SSHFSD_BLOCKKEY"

/* Key for encrypted images, from --key, --blockkey or --key-file. */
struct image_key {
    int present;
    uint8_t bytes[IMAGE_KEY_MAX];
    size_t len;
    const char *option;   /* "--key", "--key-file" or "$SSHFSD_BLOCKKEY" */
};

/* The parsed command line.  Strings point into argv. */
struct image_args {
    const char *command;
    const char *positional[IMAGE_MAX_POSITIONAL];
    int positional_count;

    /* The block size given as a positional argument after IMAGE, 0 if
     * none.  Commands other than format check it against the superblock. */
    uint32_t block_size;

    /* Global options. */
    const char *key_hex;       /* --key or --blockkey */
    const char *key_file;      /* --key-file */
    struct image_key key;

    /* Command options; NULL or 0 when not given. */
    const char *size;          /* format --size */
    const char *name_max;      /* format --name-max */
    const char *disk_version;  /* format --disk-version */
    int long_listing;          /* ls -l */
    int parents;               /* mkdir -p */
    int recursive;             /* rm -r */
    const char *in_path;       /* encrypt/decrypt --in */
    const char *out_path;      /* encrypt/decrypt --out */
};

/* An image opened by image_open(): the block device and its mount. */
struct image {
    const char *path;
    struct bd *bd;
    struct lfs *lfs;
};

/* Error reporting (image_device.c) */

/* Print "sshfsd-image: IMAGE: PATH: message" on stderr; image and path
 * may be NULL to leave that part out. */
void image_error(const char *image, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Print an engine error with lfs_strerror() and, when it has one, the
 * detail lfs_error_detail() or the block device recorded. */
void image_lfs_error(const struct image *img, const char *path, int err);

/* Devices and mounts (image_device.c) */

/* Decode --key, --blockkey or --key-file into args->key.  Returns an
 * enum image_exit value, after printing the error when it is not OK. */
int image_key_load(struct image_args *args);

/* Wipe the key bytes. */
void image_key_wipe(struct image_key *key);

/* Open the image file as a block device (wrapped in the encryption device
 * when a key was given).  Prints the error and returns -1 on failure. */
int image_open_device(const struct image_args *args, const char *path,
                      int writable, struct bd **out);

/* Open and mount IMAGE (the first positional argument); read-only mounts
 * open the file read-only.  Prints the error and returns -1 on failure. */
int image_open(const struct image_args *args, int writable,
               struct image *img);

/* Unmount and close; returns the unmount error (already printed) or 0. */
int image_close(struct image *img);

/* Parse a block size: a power of two from 128 to 65536. */
int image_parse_block_size(const char *text, uint32_t *out);

/* Join a directory path and an entry name into a new string (malloc). */
char *image_join_path(const char *dir, const char *name);

/* Commands: each returns an enum image_exit value. */

int image_cmd_format(struct image_args *args);
int image_cmd_info(struct image_args *args);
int image_cmd_check(struct image_args *args);
int image_cmd_ls(struct image_args *args);
int image_cmd_read(struct image_args *args);
int image_cmd_write(struct image_args *args);
int image_cmd_mkdir(struct image_args *args);
int image_cmd_rm(struct image_args *args);
int image_cmd_mv(struct image_args *args);
int image_cmd_encrypt(struct image_args *args);
int image_cmd_decrypt(struct image_args *args);

#endif
