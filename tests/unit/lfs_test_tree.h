/*
 * Test helpers shared by the littlefs engine tests.  struct tree is an
 * in-memory picture of a file tree (paths, types, contents, user
 * attributes).  tree_snapshot takes that picture of a mounted image
 * through the public API, and tree_compare names the first difference.
 *
 * The same struct tree serves as the expected tree (built by hand or by a
 * model) and as the tree read back from the engine.  Everything here is
 * static inline so that a test may use any subset without warnings.
 */
#ifndef SSHFSD_TESTS_LFS_TEST_TREE_H
#define SSHFSD_TESTS_LFS_TEST_TREE_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs.h"

/* Walk limits, so that a corrupt image with a directory cycle cannot make
 * the walker recurse or loop forever. */
#define TREE_MAX_DEPTH 32
#define TREE_MAX_NODES 200000
#define TREE_PATH_MAX 4096

/* tree_snapshot's result when every call succeeded but the results
 * disagree (stat differs from readdir, a name is listed twice, a file
 * reads back shorter than its size).  Engine errors are negative. */
#define TREE_INCONSISTENT 1

struct tree_attr {
    uint8_t type;
    size_t size;
    uint8_t *data;
};

struct tree_node {
    char *path;             /* absolute, "/a/b"; the root is not stored */
    uint8_t type;           /* LFS_TYPE_REG or LFS_TYPE_DIR */
    size_t size;            /* file size, 0 for directories */
    uint8_t *data;          /* file contents (size bytes), NULL if empty */
    size_t attr_count;
    struct tree_attr *attrs;
};

struct tree {
    struct tree_node *nodes;
    size_t count;
    size_t cap;
    char error[512];        /* why the last snapshot or comparison failed */
};

/* The attribute types tree_snapshot requests on every entry. */
struct tree_probe {
    const uint8_t *types;
    size_t count;
    int read_contents;      /* 0: only sizes, for walks of huge trees */
};

static inline void *tree_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", size);
        abort();
    }
    return p;
}

static inline char *tree_xstrdup(const char *s)
{
    size_t len = strlen(s);
    char *copy = tree_xmalloc(len + 1);

    memcpy(copy, s, len + 1);
    return copy;
}

static inline void tree_init(struct tree *t)
{
    memset(t, 0, sizeof(*t));
}

static inline void tree_node_free(struct tree_node *n)
{
    for (size_t i = 0; i < n->attr_count; i++)
        free(n->attrs[i].data);
    free(n->attrs);
    free(n->data);
    free(n->path);
    memset(n, 0, sizeof(*n));
}

static inline void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->count; i++)
        tree_node_free(&t->nodes[i]);
    free(t->nodes);
    tree_init(t);
}

static inline void tree_fail(struct tree *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void tree_fail(struct tree *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->error, sizeof(t->error), fmt, ap);
    va_end(ap);
}

static inline struct tree_node *tree_find(const struct tree *t,
                                          const char *path)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->nodes[i].path, path) == 0)
            return &t->nodes[i];
    }
    return NULL;
}

static inline struct tree_node *tree_add(struct tree *t, const char *path,
                                         uint8_t type)
{
    struct tree_node *n;

    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct tree_node *nodes = realloc(t->nodes, cap * sizeof(*nodes));

        if (nodes == NULL)
            abort();
        t->nodes = nodes;
        t->cap = cap;
    }
    n = &t->nodes[t->count++];
    memset(n, 0, sizeof(*n));
    n->path = tree_xstrdup(path);
    n->type = type;
    return n;
}

static inline void tree_node_set_data(struct tree_node *n, const void *data,
                                      size_t size)
{
    uint8_t *copy = NULL;

    if (size > 0) {
        copy = tree_xmalloc(size);
        memcpy(copy, data, size);
    }
    free(n->data);
    n->data = copy;
    n->size = size;
}

static inline struct tree_node *tree_add_file(struct tree *t, const char *path,
                                              const void *data, size_t size)
{
    struct tree_node *n = tree_add(t, path, LFS_TYPE_REG);

    tree_node_set_data(n, data, size);
    return n;
}

static inline struct tree_node *tree_add_dir(struct tree *t, const char *path)
{
    return tree_add(t, path, LFS_TYPE_DIR);
}

static inline struct tree_attr *tree_node_attr(const struct tree_node *n,
                                               uint8_t type)
{
    for (size_t i = 0; i < n->attr_count; i++) {
        if (n->attrs[i].type == type)
            return &n->attrs[i];
    }
    return NULL;
}

static inline void tree_node_set_attr(struct tree_node *n, uint8_t type,
                                      const void *data, size_t size)
{
    struct tree_attr *a = tree_node_attr(n, type);

    if (a == NULL) {
        struct tree_attr *attrs = realloc(n->attrs, (n->attr_count + 1) *
                                                    sizeof(*attrs));
        if (attrs == NULL)
            abort();
        n->attrs = attrs;
        a = &n->attrs[n->attr_count++];
        a->type = type;
        a->data = NULL;
    }
    free(a->data);
    a->data = tree_xmalloc(size);
    if (size > 0)
        memcpy(a->data, data, size);
    a->size = size;
}

static inline int tree_node_remove_attr(struct tree_node *n, uint8_t type)
{
    struct tree_attr *a = tree_node_attr(n, type);

    if (a == NULL)
        return 0;
    free(a->data);
    *a = n->attrs[--n->attr_count];
    return 1;
}

static inline void tree_remove_node(struct tree *t, struct tree_node *n)
{
    size_t index = (size_t)(n - t->nodes);

    tree_node_free(n);
    t->nodes[index] = t->nodes[--t->count];
}

static inline void tree_copy(struct tree *dst, const struct tree *src)
{
    tree_init(dst);
    for (size_t i = 0; i < src->count; i++) {
        const struct tree_node *s = &src->nodes[i];
        struct tree_node *d = tree_add(dst, s->path, s->type);

        tree_node_set_data(d, s->data, s->size);
        for (size_t j = 0; j < s->attr_count; j++)
            tree_node_set_attr(d, s->attrs[j].type, s->attrs[j].data,
                               s->attrs[j].size);
    }
}

static inline int tree_cmp_nodes(const void *a, const void *b)
{
    const struct tree_node *x = a;
    const struct tree_node *y = b;

    return strcmp(x->path, y->path);
}

static inline int tree_cmp_attrs(const void *a, const void *b)
{
    const struct tree_attr *x = a;
    const struct tree_attr *y = b;

    return (int)x->type - (int)y->type;
}

static inline void tree_sort(struct tree *t)
{
    /* qsort must not see the NULL array of an empty list. */
    if (t->count > 1)
        qsort(t->nodes, t->count, sizeof(*t->nodes), tree_cmp_nodes);
    for (size_t i = 0; i < t->count; i++) {
        if (t->nodes[i].attr_count > 1)
            qsort(t->nodes[i].attrs, t->nodes[i].attr_count,
                  sizeof(*t->nodes[i].attrs), tree_cmp_attrs);
    }
}

/* Join a directory path and an entry name ("/" + "a" is "/a"). */
static inline void tree_join(char *out, size_t outlen, const char *dir,
                             const char *name)
{
    if (strcmp(dir, "/") == 0)
        snprintf(out, outlen, "/%s", name);
    else
        snprintf(out, outlen, "%s/%s", dir, name);
}

/* ---- Reading a mounted image ---- */

static inline int tree_read_contents(struct lfs *lfs, struct tree *t,
                                     struct tree_node *n)
{
    struct lfs_file *file = NULL;
    uint8_t *data = tree_xmalloc(n->size + 1);
    size_t total = 0;
    ssize_t got;
    int err;

    err = lfs_file_open(lfs, &file, n->path, LFS_O_RDONLY);
    if (err < 0) {
        free(data);
        tree_fail(t, "open %s for reading: %s", n->path, lfs_strerror(err));
        return err;
    }

    /* Request one byte more than the size, so that a file that reads back
     * longer than its stat size is caught too. */
    do {
        size_t want = n->size + 1 - total;

        got = lfs_file_read(file, data + total, want > 65536 ? 65536 : want);
        if (got > 0)
            total += (size_t)got;
    } while (got > 0 && total < n->size + 1);

    err = lfs_file_close(file);
    if (got < 0 || err < 0) {
        free(data);
        err = got < 0 ? (int)got : err;
        tree_fail(t, "read %s: %s", n->path, lfs_strerror(err));
        return err;
    }
    if (total != n->size) {
        free(data);
        tree_fail(t, "%s: stat size %zu but %zu bytes read", n->path,
                  n->size, total);
        return TREE_INCONSISTENT;
    }
    free(n->data);
    n->data = total > 0 ? data : NULL;
    if (total == 0)
        free(data);
    return 0;
}

static inline int tree_read_attrs(struct lfs *lfs, struct tree *t,
                                  struct tree_node *n,
                                  const struct tree_probe *probe)
{
    uint8_t buf[LFS_ATTR_MAX_LIMIT + 1];

    for (size_t i = 0; i < probe->count; i++) {
        ssize_t got = lfs_getattr(lfs, n->path, probe->types[i], buf,
                                  sizeof(buf));

        if (got == LFS_ERR_NOATTR)
            continue;
        if (got < 0) {
            tree_fail(t, "getattr %s type 0x%02x: %s", n->path,
                      probe->types[i], lfs_strerror((int)got));
            return (int)got;
        }
        if ((size_t)got > LFS_ATTR_MAX_LIMIT) {
            tree_fail(t, "getattr %s type 0x%02x: size %zd over the limit",
                      n->path, probe->types[i], got);
            return TREE_INCONSISTENT;
        }
        tree_node_set_attr(n, probe->types[i], buf, (size_t)got);
    }
    return 0;
}

/* Check that lfs_stat agrees with what readdir listed. */
static inline int tree_check_stat(struct lfs *lfs, struct tree *t,
                                  const char *path,
                                  const struct lfs_info *listed)
{
    struct lfs_info info;
    int err = lfs_stat(lfs, path, &info);

    if (err < 0) {
        tree_fail(t, "stat %s (listed by readdir): %s", path,
                  lfs_strerror(err));
        return err;
    }
    if (info.type != listed->type || info.size != listed->size ||
        strcmp(info.name, listed->name) != 0) {
        tree_fail(t, "stat %s gives type %u size %u name '%s', readdir gave "
                  "type %u size %u name '%s'", path, info.type, info.size,
                  info.name, listed->type, listed->size, listed->name);
        return TREE_INCONSISTENT;
    }
    return 0;
}

static inline int tree_check_name(struct tree *t, const char *dir,
                                  const struct lfs_info *info)
{
    if (info->name[0] == '\0' || strchr(info->name, '/') != NULL ||
        strcmp(info->name, ".") == 0 || strcmp(info->name, "..") == 0) {
        tree_fail(t, "readdir %s listed the invalid name '%s'", dir,
                  info->name);
        return TREE_INCONSISTENT;
    }
    if (info->type != LFS_TYPE_REG && info->type != LFS_TYPE_DIR) {
        tree_fail(t, "readdir %s listed '%s' with type %u", dir, info->name,
                  info->type);
        return TREE_INCONSISTENT;
    }
    if (info->type == LFS_TYPE_DIR && info->size != 0) {
        tree_fail(t, "readdir %s listed directory '%s' with size %u", dir,
                  info->name, info->size);
        return TREE_INCONSISTENT;
    }
    return 0;
}

static inline int tree_walk_dir(struct lfs *lfs, struct tree *t,
                                const char *dir,
                                const struct tree_probe *probe, int depth);

static inline int tree_visit(struct lfs *lfs, struct tree *t,
                             const char *dir, const struct lfs_info *info,
                             const struct tree_probe *probe, int depth)
{
    char path[TREE_PATH_MAX];
    struct tree_node *n;
    int err;

    err = tree_check_name(t, dir, info);
    if (err != 0)
        return err;
    tree_join(path, sizeof(path), dir, info->name);
    err = tree_check_stat(lfs, t, path, info);
    if (err != 0)
        return err;
    if (t->count >= TREE_MAX_NODES) {
        tree_fail(t, "more than %d entries: a directory cycle?",
                  TREE_MAX_NODES);
        return TREE_INCONSISTENT;
    }

    n = tree_add(t, path, info->type);
    n->size = info->size;
    if (info->type == LFS_TYPE_REG && probe->read_contents) {
        err = tree_read_contents(lfs, t, n);
        if (err != 0)
            return err;
    }
    err = tree_read_attrs(lfs, t, n, probe);
    if (err != 0)
        return err;
    if (info->type == LFS_TYPE_DIR)
        return tree_walk_dir(lfs, t, path, probe, depth + 1);
    return 0;
}

static inline int tree_walk_dir(struct lfs *lfs, struct tree *t,
                                const char *dir,
                                const struct tree_probe *probe, int depth)
{
    struct lfs_dir *d = NULL;
    struct lfs_info info;
    int err;
    int got;

    if (depth > TREE_MAX_DEPTH) {
        tree_fail(t, "%s: deeper than %d levels: a directory cycle?", dir,
                  TREE_MAX_DEPTH);
        return TREE_INCONSISTENT;
    }
    err = lfs_dir_open(lfs, &d, dir);
    if (err < 0) {
        tree_fail(t, "opendir %s: %s", dir, lfs_strerror(err));
        return err;
    }

    err = 0;
    while ((got = lfs_dir_read(d, &info)) == 1) {
        err = tree_visit(lfs, t, dir, &info, probe, depth);
        if (err != 0)
            break;
    }
    if (got < 0 && err == 0) {
        tree_fail(t, "readdir %s: %s", dir, lfs_strerror(got));
        err = got;
    }

    got = lfs_dir_close(d);
    if (got < 0 && err == 0) {
        tree_fail(t, "closedir %s: %s", dir, lfs_strerror(got));
        err = got;
    }
    return err;
}

/*
 * Read the whole tree of a mounted image into out (sorted by path).
 * Returns 0, a negative engine error, or TREE_INCONSISTENT, and then
 * out->error describes the failure.  out is filled as far as the walk
 * got either way.
 */
static inline int tree_snapshot(struct lfs *lfs,
                                const struct tree_probe *probe,
                                struct tree *out)
{
    int err;

    tree_init(out);
    err = tree_walk_dir(lfs, out, "/", probe, 0);
    tree_sort(out);
    if (err != 0)
        return err;

    for (size_t i = 1; i < out->count; i++) {
        if (strcmp(out->nodes[i - 1].path, out->nodes[i].path) == 0) {
            tree_fail(out, "%s is listed twice", out->nodes[i].path);
            return TREE_INCONSISTENT;
        }
    }
    return 0;
}

/* ---- Comparing ---- */

static inline size_t tree_first_difference(const uint8_t *a,
                                           const uint8_t *b, size_t len)
{
    size_t i = 0;

    while (i < len && a[i] == b[i])
        i++;
    return i;
}

static inline int tree_compare_attrs(const struct tree_node *want,
                                     const struct tree_node *got,
                                     char *why, size_t whylen)
{
    for (size_t i = 0; i < want->attr_count; i++) {
        const struct tree_attr *w = &want->attrs[i];
        const struct tree_attr *g = tree_node_attr(got, w->type);

        if (g == NULL) {
            snprintf(why, whylen, "%s: attribute 0x%02x (%zu bytes) missing",
                     want->path, w->type, w->size);
            return 1;
        }
        if (g->size != w->size || memcmp(g->data, w->data, w->size) != 0) {
            snprintf(why, whylen, "%s: attribute 0x%02x is %zu bytes, "
                     "expected %zu, first difference at byte %zu", want->path,
                     w->type, g->size, w->size,
                     tree_first_difference(g->data, w->data,
                                           g->size < w->size ? g->size
                                                             : w->size));
            return 1;
        }
    }
    for (size_t i = 0; i < got->attr_count; i++) {
        if (tree_node_attr(want, got->attrs[i].type) == NULL) {
            snprintf(why, whylen, "%s: unexpected attribute 0x%02x "
                     "(%zu bytes)", got->path, got->attrs[i].type,
                     got->attrs[i].size);
            return 1;
        }
    }
    return 0;
}

static inline int tree_compare_node(const struct tree_node *want,
                                    const struct tree_node *got,
                                    int compare_contents, char *why,
                                    size_t whylen)
{
    if (want->type != got->type) {
        snprintf(why, whylen, "%s: type %u, expected %u", want->path,
                 got->type, want->type);
        return 1;
    }
    if (want->size != got->size) {
        snprintf(why, whylen, "%s: size %zu, expected %zu", want->path,
                 got->size, want->size);
        return 1;
    }
    if (compare_contents && want->size > 0 &&
        memcmp(want->data, got->data, want->size) != 0) {
        snprintf(why, whylen, "%s: contents differ first at byte %zu of %zu",
                 want->path,
                 tree_first_difference(want->data, got->data, want->size),
                 want->size);
        return 1;
    }
    return tree_compare_attrs(want, got, why, whylen);
}

/*
 * Compare two trees entry by entry (both must be sorted by tree_sort).
 * Returns 0 when equal, else 1 with the first difference in why.
 */
static inline int tree_compare(const struct tree *want, const struct tree *got,
                               int compare_contents, char *why, size_t whylen)
{
    size_t i = 0;
    size_t j = 0;

    while (i < want->count || j < got->count) {
        int order;

        if (i == want->count)
            order = 1;
        else if (j == got->count)
            order = -1;
        else
            order = strcmp(want->nodes[i].path, got->nodes[j].path);

        if (order < 0) {
            snprintf(why, whylen, "%s is missing", want->nodes[i].path);
            return 1;
        }
        if (order > 0) {
            snprintf(why, whylen, "%s should not exist", got->nodes[j].path);
            return 1;
        }
        if (tree_compare_node(&want->nodes[i], &got->nodes[j],
                              compare_contents, why, whylen) != 0)
            return 1;
        i++;
        j++;
    }
    return 0;
}

/* ---- Small helpers for tests ---- */

/* splitmix64: a tiny seeded generator, so every run can be repeated. */
static inline uint64_t test_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [0, bound), bound > 0. */
static inline uint32_t test_rand_below(uint64_t *state, uint32_t bound)
{
    return (uint32_t)(test_rand_next(state) % bound);
}

static inline void test_rand_fill(uint64_t *state, void *buf, size_t len)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)test_rand_next(state);
}

/* Write a whole file (create or truncate); returns 0 or the engine error. */
static inline int test_write_file(struct lfs *lfs, const char *path,
                                  const void *data, size_t size)
{
    struct lfs_file *file = NULL;
    ssize_t wrote = 0;
    int err;

    err = lfs_file_open(lfs, &file, path,
                        LFS_O_WRONLY | LFS_O_CREAT | LFS_O_TRUNC);
    if (err < 0)
        return err;
    if (size > 0)
        wrote = lfs_file_write(file, data, size);
    err = lfs_file_close(file);
    if (wrote < 0)
        return (int)wrote;
    if ((size_t)wrote != size)
        return LFS_ERR_IO;
    return err;
}

#endif
