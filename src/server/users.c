/*
 * Users and keys from the image's root directory (see users.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs.h"
#include "server/log.h"
#include "server/users.h"
#include "ssh/ssh.h"

#define AUTHORIZED_KEYS_PATH "/authorized_keys"
#define PUB_SUFFIX ".pub"

/// The entry table ///

void users_init(struct users *u, const char *reserved_user)
{
    memset(u, 0, sizeof(*u));
    u->reserved_user = reserved_user;
}

void users_clear(struct users *u)
{
    for (size_t i = 0; i < u->count; i++) {
        free(u->entries[i].name);
        ssh_pubkey_free(u->entries[i].key);
    }
    free(u->entries);
    u->entries = NULL;
    u->count = 0;
    u->capacity = 0;
    u->rejected_lines = 0;
}

void users_free(struct users *u)
{
    users_clear(u);
    free(u->warnings);
    free(u->previous_warnings);
    u->warnings = NULL;
    u->warnings_len = 0;
    u->previous_warnings = NULL;
}

/// Warnings ///

/* Log a problem with a key file, or while the image is read, keep it for
 * flush_warnings().  Without memory to keep it, it is logged at once. */
static void users_warn(struct users *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void users_warn(struct users *u, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;
    char *grown;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    if (!u->collecting) {
        log_warn("%s", line);
        return;
    }
    grown = realloc(u->warnings, u->warnings_len + (size_t)n + 2);
    if (!grown) {
        log_warn("%s", line);
        return;
    }
    u->warnings = grown;
    memcpy(u->warnings + u->warnings_len, line, (size_t)n);
    u->warnings_len += (size_t)n;
    u->warnings[u->warnings_len++] = '\n';
    u->warnings[u->warnings_len] = '\0';
}

/* Log the warnings of the reading that just ended, unless they are the
 * same as the previous reading's. */
static void flush_warnings(struct users *u)
{
    const char *text = u->warnings ? u->warnings : "";
    const char *previous = u->previous_warnings ? u->previous_warnings : "";

    if (strcmp(text, previous) == 0) {
        if (text[0])
            log_debug("key files unchanged: their warnings are not "
                      "repeated");
    } else {
        for (const char *p = text; *p;) {
            const char *end = strchr(p, '\n');

            log_warn("%.*s", (int)(end - p), p);
            p = end + 1;
        }
    }
    free(u->previous_warnings);
    u->previous_warnings = u->warnings;
    u->warnings = NULL;
    u->warnings_len = 0;
}

/* Take ownership of key.  Returns 0, or -1 when the table is full or
 * memory ran out (key is freed then). */
static int add_entry(struct users *u, const char *name,
                     struct ssh_pubkey *key)
{
    struct users_entry *grown;
    size_t capacity;
    char *copy;

    if (u->count == USERS_KEYS_MAX)
        goto fail;
    if (u->count == u->capacity) {
        capacity = u->capacity ? u->capacity * 2 : 16;
        grown = realloc(u->entries, capacity * sizeof(*grown));
        if (!grown)
            goto fail;
        u->entries = grown;
        u->capacity = capacity;
    }
    copy = strdup(name);
    if (!copy)
        goto fail;
    u->entries[u->count].name = copy;
    u->entries[u->count].key = key;
    u->count++;
    return 0;

fail:
    ssh_pubkey_free(key);
    return -1;
}

bool users_exists(const struct users *u, const char *name)
{
    for (size_t i = 0; i < u->count; i++)
        if (strcmp(u->entries[i].name, name) == 0)
            return true;
    return false;
}

bool users_key_allowed(const struct users *u, const char *name,
                       const struct ssh_pubkey *key)
{
    for (size_t i = 0; i < u->count; i++)
        if (strcmp(u->entries[i].name, name) == 0 &&
            ssh_pubkey_equal(u->entries[i].key, key))
            return true;
    return false;
}

/// Parsing key lines ///

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Key types as OpenSSH writes them start with one of these prefixes.  A
 * line whose first word has none of them, but a later word does, has
 * options in front of the key. */
static bool looks_like_key_type(const char *word, size_t len)
{
    static const char *const prefixes[] = {
        "ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-",
    };

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);

        if (len > n && memcmp(word, prefixes[i], n) == 0)
            return true;
    }
    return false;
}

/* True when a word after the first one, outside double quotes (option
 * values such as from="a, b" may contain blanks), looks like a key
 * type. */
static bool has_options(const char *line)
{
    bool quoted = false, first = true;
    const char *p = line;

    while (*p) {
        const char *word = p;

        while (*p && (quoted || !is_blank(*p))) {
            if (*p == '"')
                quoted = !quoted;
            p++;
        }
        if (!first && looks_like_key_type(word, (size_t)(p - word)))
            return true;
        first = false;
        while (is_blank(*p))
            p++;
    }
    return false;
}

static void reject_line(struct users *u, const char *file, unsigned line_no,
                        const char *why)
{
    u->rejected_lines++;
    users_warn(u, "%s line %u skipped: %s", file, line_no, why);
}

/* Parse one key line.  Returns the key and sets *comment (NULL when the
 * line has none), or returns NULL after logging why the line is
 * rejected. */
static struct ssh_pubkey *parse_key_line(struct users *u, const char *file,
                                         unsigned line_no, const char *line,
                                         char **comment)
{
    const char *end = line;
    struct ssh_pubkey *key = NULL;
    int err;

    while (*end && !is_blank(*end))
        end++;
    *comment = NULL;
    if (!looks_like_key_type(line, (size_t)(end - line))) {
        if (has_options(line))
            reject_line(u, file, line_no,
                        "key options are not supported (remove the "
                        "options in front of the key type)");
        else
            reject_line(u, file, line_no,
                        "not an OpenSSH public-key line");
        return NULL;
    }
    err = ssh_pubkey_parse_line(&key, line, comment);
    if (err) {
        reject_line(u, file, line_no, ssh_strerror(err));
        return NULL;
    }
    return key;
}

/* Source of a line's user name. */
enum name_source {
    NAME_FROM_FILE,         /* NAME.pub: the file's name */
    NAME_FROM_COMMENT,      /* authorized_keys: the line's comment */
};

static void parse_line(struct users *u, const char *file, unsigned line_no,
                       const char *line, enum name_source source,
                       const char *file_user)
{
    char *comment = NULL;
    struct ssh_pubkey *key;
    const char *name = file_user;

    key = parse_key_line(u, file, line_no, line, &comment);
    if (!key)
        return;

    if (source == NAME_FROM_COMMENT) {
        if (!comment) {
            reject_line(u, file, line_no,
                        "no user name after the key");
            goto out;
        }
        if (strpbrk(comment, " \t")) {
            reject_line(u, file, line_no,
                        "the comment must be one user name without blanks");
            goto out;
        }
        name = comment;
    }

    if (u->reserved_user && strcmp(name, u->reserved_user) == 0) {
        log_debug("%s line %u skipped: user %s takes its key from --key "
                  "only", file, line_no, name);
        goto out;
    }
    if (add_entry(u, name, key))
        reject_line(u, file, line_no, "too many keys or out of memory");
    key = NULL;

out:
    ssh_pubkey_free(key);
    free(comment);
}

/* Call parse_line for every line of text that is not blank or a
 * comment, with surrounding blanks and a trailing CR removed. */
static void parse_text(struct users *u, const char *file, const char *text,
                       size_t len, enum name_source source,
                       const char *file_user)
{
    const char *p = text, *end = text + len;
    unsigned line_no = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *last = eol ? eol : end;
        char *line;

        line_no++;
        while (p < last && is_blank(*p))
            p++;
        while (last > p && (is_blank(last[-1]) || last[-1] == '\r'))
            last--;
        if (p == last || *p == '#') {
            p = next;
            continue;
        }
        if (memchr(p, '\0', (size_t)(last - p))) {
            reject_line(u, file, line_no, "the line contains a NUL byte");
            p = next;
            continue;
        }
        line = strndup(p, (size_t)(last - p));
        if (!line) {
            reject_line(u, file, line_no, "out of memory");
            return;
        }
        parse_line(u, file, line_no, line, source, file_user);
        free(line);
        p = next;
    }
}

void users_parse_pub_file(struct users *u, const char *file,
                          const char *name, const char *text, size_t len)
{
    parse_text(u, file, text, len, NAME_FROM_FILE, name);
}

void users_parse_authorized_keys(struct users *u, const char *file,
                                 const char *text, size_t len)
{
    parse_text(u, file, text, len, NAME_FROM_COMMENT, NULL);
}

/// Reading the image ///

/* Read a whole file of at most USERS_FILE_MAX bytes.  Returns the
 * contents (to be freed) and sets *len, or returns NULL after logging
 * why, except for a missing file when missing_ok. */
static char *read_small_file(struct users *u, struct lfs *lfs,
                             const char *path, bool missing_ok, size_t *len)
{
    struct lfs_file *file = NULL;
    struct lfs_info info;
    char *buf = NULL;
    ssize_t n;
    int err;

    err = lfs_stat(lfs, path, &info);
    if (err == LFS_ERR_NOENT && missing_ok)
        return NULL;
    if (err) {
        users_warn(u, "reading %s failed: %s", path, lfs_strerror(err));
        return NULL;
    }
    if (info.type != LFS_TYPE_REG) {
        users_warn(u, "%s is not a regular file; skipped", path);
        return NULL;
    }
    if (info.size > USERS_FILE_MAX) {
        users_warn(u, "%s is %u bytes, over the limit of %u for key files; "
                   "skipped", path, (unsigned)info.size,
                   (unsigned)USERS_FILE_MAX);
        return NULL;
    }

    err = lfs_file_open(lfs, &file, path, LFS_O_RDONLY);
    if (err) {
        users_warn(u, "opening %s failed: %s", path, lfs_strerror(err));
        return NULL;
    }
    /* Reading one byte past the limit detects a file that grew since
     * lfs_stat. */
    buf = malloc(USERS_FILE_MAX + 1);
    n = buf ? lfs_file_read(file, buf, USERS_FILE_MAX + 1) : LFS_ERR_NOMEM;
    lfs_file_discard(file);
    if (n < 0 || n > USERS_FILE_MAX) {
        if (n < 0)
            users_warn(u, "reading %s failed: %s", path,
                       lfs_strerror((int)n));
        else
            users_warn(u, "%s is over the limit of %u bytes for key "
                       "files; skipped", path, (unsigned)USERS_FILE_MAX);
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

static bool is_pub_file(const struct lfs_info *info)
{
    size_t len = strlen(info->name), suffix = strlen(PUB_SUFFIX);

    return info->type == LFS_TYPE_REG && len > suffix &&
           strcmp(info->name + len - suffix, PUB_SUFFIX) == 0;
}

static void load_pub_file(struct users *u, struct lfs *lfs,
                          const char *file_name)
{
    size_t name_len = strlen(file_name) - strlen(PUB_SUFFIX), len;
    char path[LFS_NAME_MAX_LIMIT + 2], name[LFS_NAME_MAX_LIMIT + 1];
    char *text;

    snprintf(path, sizeof(path), "/%s", file_name);
    memcpy(name, file_name, name_len);
    name[name_len] = '\0';
    text = read_small_file(u, lfs, path, false, &len);
    if (!text)
        return;
    users_parse_pub_file(u, path, name, text, len);
    free(text);
}

static void load_pub_files(struct users *u, struct lfs *lfs)
{
    struct lfs_dir *dir = NULL;
    struct lfs_info *info;
    unsigned files = 0;
    int rc;

    /* struct lfs_info has room for the longest name: keep it off the
     * stack. */
    info = malloc(sizeof(*info));
    if (!info) {
        users_warn(u, "listing / for key files failed: out of memory");
        return;
    }
    rc = lfs_dir_open(lfs, &dir, "/");
    if (rc) {
        users_warn(u, "listing / for key files failed: %s",
                   lfs_strerror(rc));
        free(info);
        return;
    }
    while ((rc = lfs_dir_read(dir, info)) == 1) {
        if (!is_pub_file(info))
            continue;
        if (files == USERS_PUB_FILES_MAX) {
            users_warn(u, "more than %u .pub files in /; the rest are "
                       "skipped", (unsigned)USERS_PUB_FILES_MAX);
            break;
        }
        files++;
        load_pub_file(u, lfs, info->name);
    }
    if (rc < 0)
        users_warn(u, "listing / for key files failed: %s",
                   lfs_strerror(rc));
    rc = lfs_dir_close(dir);
    if (rc)
        users_warn(u, "closing / failed: %s", lfs_strerror(rc));
    free(info);
}

void users_load_image(struct users *u, struct lfs *lfs)
{
    size_t len;
    char *text;

    users_clear(u);
    u->collecting = true;
    load_pub_files(u, lfs);
    text = read_small_file(u, lfs, AUTHORIZED_KEYS_PATH, true, &len);
    if (text) {
        users_parse_authorized_keys(u, AUTHORIZED_KEYS_PATH, text, len);
        free(text);
    }
    u->collecting = false;
    flush_warnings(u);
    log_debug("read %zu user keys from the image", u->count);
}
