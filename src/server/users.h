/*
 * Users and their public keys from the image:
 *   /NAME.pub          user NAME, one OpenSSH public-key line per line
 *   /authorized_keys   one key per line, the user name is its comment
 * Blank lines and lines starting with '#' are skipped.  Lines with
 * options before the key type ("restrict,from=... ssh-ed25519 ...") are
 * rejected, because sshfsd does not implement options.  Every rejected
 * line is logged as a warning with its file and line number and skipped.
 *
 * The server re-reads these files for every new connection, so a key
 * uploaded over SFTP works for the next login.  Problems found while
 * reading are logged again only when they differ from the previous
 * reading, so that every connection does not repeat the same warnings.
 * The --user/--key user is not kept here: server.c checks it first.
 */
#ifndef SSHFSD_SERVER_USERS_H
#define SSHFSD_SERVER_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct lfs;
struct ssh_pubkey;

/* Files larger than this are skipped with a warning. */
#define USERS_FILE_MAX (64 * 1024)
/* Keys kept from one reading of the image; later ones are skipped. */
#define USERS_KEYS_MAX 4096
/* At most this many NAME.pub files are read from the root directory. */
#define USERS_PUB_FILES_MAX 1024

struct users_entry {
    char *name;
    struct ssh_pubkey *key;
};

struct users {
    /* Lines naming this user are skipped, because --key is its only key.
     * NULL when --key was not given. */
    const char *reserved_user;
    struct users_entry *entries;
    size_t count;
    size_t capacity;
    unsigned rejected_lines;    /* malformed, with options, or past the key cap */

    /* Warnings of the reading in progress, one per line, and those of the
     * previous reading (users_load_image). */
    bool collecting;
    char *warnings;
    size_t warnings_len;
    char *previous_warnings;
};

void users_init(struct users *u, const char *reserved_user);
/* Free every entry and reset the counters; reserved_user stays. */
void users_clear(struct users *u);
/* users_clear, and forget the warnings of the last reading too. */
void users_free(struct users *u);

/* Add the keys in the text of a NAME.pub file for user name.  file names
 * the file in log lines. */
void users_parse_pub_file(struct users *u, const char *file,
                          const char *name, const char *text, size_t len);
/* Add the keys in the text of an authorized_keys file. */
void users_parse_authorized_keys(struct users *u, const char *file,
                                 const char *text, size_t len);

/* Replace the entries with the keys read from the image's root
 * directory.  Problems are logged; none is fatal. */
void users_load_image(struct users *u, struct lfs *lfs);

/* True when name has at least one key. */
bool users_exists(const struct users *u, const char *name);
bool users_key_allowed(const struct users *u, const char *name,
                       const struct ssh_pubkey *key);

#endif
