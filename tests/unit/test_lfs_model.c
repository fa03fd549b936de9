/*
 * Model-checked random workloads for the littlefs engine.
 *
 * A seeded generator picks operations (create, open, write at any offset,
 * truncate, sync, close, discard, mkdir, remove, rename, attributes).
 * Each one is applied to the engine on an in-memory device and to a model
 * of the tree kept in plain memory, and the result codes must match.
 * After every operation the whole visible tree (readdir, stat, contents,
 * attributes, open handles) must equal the model.  Every few dozen operations the
 * image is unmounted and mounted again and compared once more.
 *
 * LFS_MODEL_SEED=N runs only seed N (for every block size);
 * LFS_MODEL_ITERATIONS=N sets the operations per seed (default 2500).
 * A failure prints the seed, the block size and the last operations;
 * LFS_MODEL_TRACE=1 prints every operation as it runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "lfs_test_tree.h"

#define MAX_HANDLES 4
#define MAX_NODES 64
#define MAX_DEPTH 3
#define REMOUNT_EVERY 40
#define LOG_LINES 24
#define SEEDS_PER_SIZE 3
#define DEFAULT_ITERATIONS 2500

static const char *const name_pool[] = {
    "a", "b", "c", "dd", "e", "f.txt", "g", "h1", "i", "jj", "k", "l.bin",
};
#define NAME_POOL (sizeof(name_pool) / sizeof(name_pool[0]))

static const uint8_t attr_types[] = { 0x01, 0x42, 0x99, 0xfe };
#define ATTR_TYPES (sizeof(attr_types) / sizeof(attr_types[0]))

/* An open handle in the model.  path names the file in the model tree,
 * or in the orphan tree once the file was removed while open. */
struct model_handle {
    struct lfs_file *file;
    char path[TREE_PATH_MAX];
    int orphan;
    int flags;
    uint64_t pos;
    int wrote;        /* wrote since the last sync through a writer */
};

struct geometry {
    uint32_t block_size;
    uint32_t block_count;
    size_t max_file;  /* largest file the workload makes */
    size_t budget;    /* all file bytes together, to stay clear of NOSPC */
    size_t max_write; /* largest single write */
};

struct run {
    const struct geometry *geo;
    uint64_t seed;
    uint64_t rng;
    int op;
    struct bd *bd;
    struct lfs *lfs;
    struct tree tree;
    struct tree committed;  /* file contents as of their last sync */
    struct tree orphans;
    int orphan_seq;
    struct model_handle handles[MAX_HANDLES];
    int nhandles;
    char log[LOG_LINES][200];
    int ran;              /* operations that reached the engine */
    size_t most_entries;
    size_t most_bytes;
};

/* ---- Failure reports ---- */

static void run_log(struct run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void run_log(struct run *r, const char *fmt, ...)
{
    char *line = r->log[r->op % LOG_LINES];
    int used = snprintf(line, sizeof(r->log[0]), "op %d: ", r->op);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line + used, sizeof(r->log[0]) - (size_t)used, fmt, ap);
    va_end(ap);
    r->ran++;
    if (getenv("LFS_MODEL_TRACE") != NULL)
        fprintf(stderr, "%s\n", line);
}

static void run_fail(struct run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void run_fail(struct run *r, const char *fmt, ...)
{
    char why[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);

    print_error("model check failed: LFS_MODEL_SEED=%llu block size %u "
                "(disk version 2.%d), op %d\n", (unsigned long long)r->seed,
                r->geo->block_size, (int)(r->seed % 2), r->op);
    print_error("last operations:\n");
    for (int i = r->op - LOG_LINES + 1; i <= r->op; i++) {
        if (i >= 0)
            print_error("  %s\n", r->log[i % LOG_LINES]);
    }
    fail_msg("%s", why);
    abort();
}

static void expect_code(struct run *r, const char *what, int64_t got,
                        int64_t want)
{
    if (got != want)
        run_fail(r, "%s returned %lld (%s), model expects %lld (%s)", what,
                 (long long)got, got < 0 ? lfs_strerror((int)got) : "ok",
                 (long long)want, want < 0 ? lfs_strerror((int)want) : "ok");
}

/* ---- The model's path rules ---- */

static int is_inside(const char *path, const char *dir)
{
    size_t len = strlen(dir);

    return strncmp(path, dir, len) == 0 && path[len] == '/';
}

/* Check every directory above path: NOENT for a missing one, NOTDIR for a
 * file where a directory should be. */
static int model_check_parents(const struct tree *t, const char *path)
{
    char prefix[TREE_PATH_MAX];

    for (const char *p = strchr(path + 1, '/'); p != NULL;
         p = strchr(p + 1, '/')) {
        const struct tree_node *n;

        snprintf(prefix, sizeof(prefix), "%.*s", (int)(p - path), path);
        n = tree_find(t, prefix);
        if (n == NULL)
            return LFS_ERR_NOENT;
        if (n->type != LFS_TYPE_DIR)
            return LFS_ERR_NOTDIR;
    }
    return 0;
}

static int model_has_children(const struct tree *t, const char *dir)
{
    for (size_t i = 0; i < t->count; i++) {
        if (is_inside(t->nodes[i].path, dir))
            return 1;
    }
    return 0;
}

static int path_depth(const char *path)
{
    int depth = 0;

    for (const char *p = path; *p; p++)
        depth += *p == '/';
    return depth;
}

/* ---- Handles in the model ---- */

static struct tree_node *handle_node(struct run *r, struct model_handle *h)
{
    struct tree_node *n = tree_find(h->orphan ? &r->orphans : &r->tree,
                                    h->path);

    if (n == NULL)
        run_fail(r, "model lost the file of a handle (%s)", h->path);
    return n;
}

static int file_is_dirty(const struct run *r, const char *path)
{
    for (int i = 0; i < r->nhandles; i++) {
        const struct model_handle *h = &r->handles[i];

        if (!h->orphan && h->wrote && strcmp(h->path, path) == 0)
            return 1;
    }
    return 0;
}

static int file_is_open(const struct run *r, const char *path)
{
    for (int i = 0; i < r->nhandles; i++) {
        if (!r->handles[i].orphan && strcmp(r->handles[i].path, path) == 0)
            return 1;
    }
    return 0;
}

/* The file's current contents are now on disk: a later discard goes back
 * to them. */
static void commit_file(struct run *r, const char *path)
{
    const struct tree_node *n = tree_find(&r->tree, path);
    struct tree_node *c = tree_find(&r->committed, path);

    if (n == NULL)
        return;
    if (c == NULL)
        c = tree_add_file(&r->committed, path, NULL, 0);
    tree_node_set_data(c, n->data, n->size);
}

static void uncommit_file(struct run *r, const char *path)
{
    struct tree_node *c = tree_find(&r->committed, path);

    if (c != NULL)
        tree_remove_node(&r->committed, c);
}

/* The file at path goes away while handles may still be open on it: its
 * contents move to the orphan tree, where those handles keep using them. */
static void orphan_file(struct run *r, struct tree_node *n)
{
    char name[64];

    if (file_is_open(r, n->path)) {
        struct tree_node *o;

        snprintf(name, sizeof(name), "#orphan%d", r->orphan_seq++);
        o = tree_add_file(&r->orphans, name, n->data, n->size);
        for (size_t i = 0; i < n->attr_count; i++)
            tree_node_set_attr(o, n->attrs[i].type, n->attrs[i].data,
                               n->attrs[i].size);
        for (int i = 0; i < r->nhandles; i++) {
            struct model_handle *h = &r->handles[i];

            if (!h->orphan && strcmp(h->path, n->path) == 0) {
                h->orphan = 1;
                snprintf(h->path, sizeof(h->path), "%s", name);
            }
        }
    }
    uncommit_file(r, n->path);
    tree_remove_node(&r->tree, n);
}

static void drop_unused_orphans(struct run *r)
{
    for (size_t i = 0; i < r->orphans.count;) {
        int used = 0;

        for (int j = 0; j < r->nhandles; j++)
            used |= r->handles[j].orphan &&
                    strcmp(r->handles[j].path, r->orphans.nodes[i].path) == 0;
        if (used)
            i++;
        else
            tree_remove_node(&r->orphans, &r->orphans.nodes[i]);
    }
}

static size_t model_bytes(const struct run *r)
{
    size_t total = 0;

    for (size_t i = 0; i < r->tree.count; i++)
        total += r->tree.nodes[i].size;
    for (size_t i = 0; i < r->orphans.count; i++)
        total += r->orphans.nodes[i].size;
    return total;
}

static void resize_node(struct tree_node *n, size_t size)
{
    uint8_t *data = tree_xmalloc(size);

    memset(data, 0, size);
    if (n->size > 0)
        memcpy(data, n->data, n->size < size ? n->size : size);
    tree_node_set_data(n, data, size);
    free(data);
}

/* ---- Comparing engine and model ---- */

static void compare_attrs(struct run *r, const char *path,
                          const struct tree_node *n)
{
    uint8_t buf[LFS_ATTR_MAX_LIMIT];

    for (size_t i = 0; i < ATTR_TYPES; i++) {
        const struct tree_attr *want = n ? tree_node_attr(n, attr_types[i])
                                         : NULL;
        ssize_t got = lfs_getattr(r->lfs, path, attr_types[i], buf,
                                  sizeof(buf));

        if (want == NULL) {
            if (got != LFS_ERR_NOATTR)
                run_fail(r, "getattr %s 0x%02x returned %zd, model has no "
                         "such attribute", path, attr_types[i], got);
            continue;
        }
        if (got != (ssize_t)want->size)
            run_fail(r, "getattr %s 0x%02x returned %zd, model has %zu "
                     "bytes", path, attr_types[i], got, want->size);
        if (want->size > 0 && memcmp(buf, want->data, want->size) != 0)
            run_fail(r, "getattr %s 0x%02x: value differs", path,
                     attr_types[i]);
    }
}

static void compare_contents(struct run *r, const struct tree_node *n)
{
    struct lfs_file *file = NULL;
    uint8_t *buf = tree_xmalloc(n->size + 1);
    ssize_t got;
    int err;

    err = lfs_file_open(r->lfs, &file, n->path, LFS_O_RDONLY);
    if (err != 0)
        run_fail(r, "open %s for reading: %s", n->path, lfs_strerror(err));
    if (lfs_file_size(file) != (int64_t)n->size)
        run_fail(r, "%s: handle size %lld, model %zu", n->path,
                 (long long)lfs_file_size(file), n->size);
    got = lfs_file_pread(file, buf, n->size + 1, 0);
    if (got != (ssize_t)n->size)
        run_fail(r, "%s: read %zd bytes, model has %zu", n->path, got,
                 n->size);
    if (n->size > 0 && memcmp(buf, n->data, n->size) != 0)
        run_fail(r, "%s: contents differ first at byte %zu", n->path,
                 tree_first_difference(buf, n->data, n->size));
    err = lfs_file_close(file);
    if (err != 0)
        run_fail(r, "close %s after reading: %s", n->path, lfs_strerror(err));
    free(buf);
}

static void compare_entry(struct run *r, const struct lfs_info *info,
                          const char *path)
{
    const struct tree_node *n = tree_find(&r->tree, path);
    struct lfs_info st;
    int err;

    if (n == NULL)
        run_fail(r, "readdir lists %s, which the model does not have", path);
    if (info->type != n->type)
        run_fail(r, "%s: readdir type %u, model %u", path, info->type,
                 n->type);
    err = lfs_stat(r->lfs, path, &st);
    if (err != 0)
        run_fail(r, "stat %s: %s", path, lfs_strerror(err));
    if (st.type != n->type || strcmp(st.name, info->name) != 0)
        run_fail(r, "stat %s: type %u name '%s' disagree with readdir", path,
                 st.type, st.name);

    /* Sizes on disk lag behind writes that are not synced yet; the
     * contents read through a new handle must not. */
    if (n->type == LFS_TYPE_REG && !file_is_dirty(r, path)) {
        if (info->size != n->size || st.size != n->size)
            run_fail(r, "%s: readdir size %u, stat size %u, model %zu", path,
                     info->size, st.size, n->size);
    }
    if (n->type == LFS_TYPE_REG)
        compare_contents(r, n);
    compare_attrs(r, path, n);
}

static size_t compare_dir(struct run *r, const char *dir)
{
    struct lfs_dir *d = NULL;
    struct lfs_info info;
    char path[TREE_PATH_MAX];
    char (*subdirs)[TREE_PATH_MAX] = tree_xmalloc(MAX_NODES *
                                                  sizeof(*subdirs));
    size_t nsub = 0;
    size_t listed = 0;
    int got;
    int err = lfs_dir_open(r->lfs, &d, dir);

    if (err != 0)
        run_fail(r, "opendir %s: %s", dir, lfs_strerror(err));
    while ((got = lfs_dir_read(d, &info)) == 1) {
        tree_join(path, sizeof(path), dir, info.name);
        compare_entry(r, &info, path);
        listed++;
        if (info.type == LFS_TYPE_DIR && nsub < MAX_NODES)
            snprintf(subdirs[nsub++], TREE_PATH_MAX, "%s", path);
    }
    if (got != 0)
        run_fail(r, "readdir %s: %s", dir, lfs_strerror(got));
    err = lfs_dir_close(d);
    if (err != 0)
        run_fail(r, "closedir %s: %s", dir, lfs_strerror(err));

    for (size_t i = 0; i < nsub; i++)
        listed += compare_dir(r, subdirs[i]);
    free(subdirs);
    return listed;
}

static void compare_handles(struct run *r)
{
    for (int i = 0; i < r->nhandles; i++) {
        struct model_handle *h = &r->handles[i];
        const struct tree_node *n = handle_node(r, h);
        int64_t size = lfs_file_size(h->file);
        int64_t pos = lfs_file_tell(h->file);

        if (size != (int64_t)n->size)
            run_fail(r, "handle %d on %s: size %lld, model %zu", i, h->path,
                     (long long)size, n->size);
        if (pos != (int64_t)h->pos)
            run_fail(r, "handle %d on %s: position %lld, model %llu", i,
                     h->path, (long long)pos, (unsigned long long)h->pos);
    }
}

/* The whole visible tree equals the model: every entry listed once (the
 * walk finds each path in the model, and the counts match). */
static void compare_all(struct run *r)
{
    size_t listed = compare_dir(r, "/");

    if (listed != r->tree.count)
        run_fail(r, "readdir listed %zu entries, model has %zu", listed,
                 r->tree.count);
    compare_handles(r);
}

/* ---- Picking arguments ---- */

static uint32_t pick(struct run *r, uint32_t bound)
{
    return test_rand_below(&r->rng, bound);
}

/* A random directory of the model, or the root. */
static const char *pick_dir(struct run *r)
{
    size_t dirs = 0;
    uint32_t choice;

    for (size_t i = 0; i < r->tree.count; i++)
        dirs += r->tree.nodes[i].type == LFS_TYPE_DIR;
    choice = pick(r, (uint32_t)dirs + 1);
    for (size_t i = 0; i < r->tree.count; i++) {
        if (r->tree.nodes[i].type != LFS_TYPE_DIR)
            continue;
        if (choice-- == 0)
            return r->tree.nodes[i].path;
    }
    return "/";
}

/* Mostly existing entries and new names in existing directories, now
 * and then a path below a file or below a missing directory. */
static void pick_path(struct run *r, char *out, size_t len)
{
    uint32_t kind = pick(r, 10);
    const char *name = name_pool[pick(r, NAME_POOL)];

    if (kind < 4 && r->tree.count > 0) {
        snprintf(out, len, "%s", r->tree.nodes[pick(r, (uint32_t)
                                                    r->tree.count)].path);
        return;
    }
    if (kind == 9 && r->tree.count > 0) {
        const char *base = r->tree.nodes[pick(r, (uint32_t)
                                              r->tree.count)].path;

        snprintf(out, len, "%s/zz/%s", base, name);
        return;
    }
    tree_join(out, len, pick_dir(r), name);
}

static int pick_handle(struct run *r)
{
    return r->nhandles > 0 ? (int)pick(r, (uint32_t)r->nhandles) : -1;
}

/* Attribute sizes stay small enough that an entry with its name and all
 * four attributes fits one metadata block of the smallest block size. */
static void pick_attr_value(struct run *r, uint8_t *buf, size_t *size)
{
    size_t limit = r->geo->block_size >= 4096 ? 300
                   : r->geo->block_size >= 512 ? 24 : 8;

    *size = pick(r, (uint32_t)limit + 1);
    test_rand_fill(&r->rng, buf, *size);
}

/* ---- Operations: each computes the model's result, runs the engine,
 * compares the two, and changes the model when the operation succeeds ---- */

static void op_mkdir(struct run *r)
{
    char path[TREE_PATH_MAX];
    int want;

    pick_path(r, path, sizeof(path));
    run_log(r, "mkdir %s", path);
    want = model_check_parents(&r->tree, path);
    if (want == 0 && tree_find(&r->tree, path) != NULL)
        want = LFS_ERR_EXIST;
    if (want == 0 && (r->tree.count >= MAX_NODES ||
                      path_depth(path) > MAX_DEPTH))
        return;

    expect_code(r, "mkdir", lfs_mkdir(r->lfs, path), want);
    if (want == 0)
        tree_add_dir(&r->tree, path);
}

static void op_remove(struct run *r)
{
    char path[TREE_PATH_MAX];
    struct tree_node *n;
    int want;

    pick_path(r, path, sizeof(path));
    run_log(r, "remove %s", path);
    want = model_check_parents(&r->tree, path);
    n = want == 0 ? tree_find(&r->tree, path) : NULL;
    if (want == 0 && n == NULL)
        want = LFS_ERR_NOENT;
    if (want == 0 && n->type == LFS_TYPE_DIR &&
        model_has_children(&r->tree, path))
        want = LFS_ERR_NOTEMPTY;

    expect_code(r, "remove", lfs_remove(r->lfs, path), want);
    if (want == 0)
        orphan_file(r, n);
}

static int rename_expected(struct run *r, const char *from, const char *to)
{
    const struct tree_node *src;
    const struct tree_node *dst;
    int want = model_check_parents(&r->tree, from);

    if (want != 0)
        return want;
    src = tree_find(&r->tree, from);
    if (src == NULL)
        return LFS_ERR_NOENT;
    want = model_check_parents(&r->tree, to);
    if (want != 0)
        return want;
    if (strcmp(from, to) == 0)
        return 0;
    if (src->type == LFS_TYPE_DIR && is_inside(to, from))
        return LFS_ERR_INVAL;
    dst = tree_find(&r->tree, to);
    if (dst == NULL)
        return 0;
    if (src->type == LFS_TYPE_DIR && dst->type != LFS_TYPE_DIR)
        return LFS_ERR_NOTDIR;
    if (src->type != LFS_TYPE_DIR && dst->type == LFS_TYPE_DIR)
        return LFS_ERR_ISDIR;
    if (dst->type == LFS_TYPE_DIR && model_has_children(&r->tree, to))
        return LFS_ERR_NOTEMPTY;
    return 0;
}

static void rename_paths(char *path, size_t len, const char *from,
                         const char *to)
{
    char renamed[TREE_PATH_MAX];
    size_t from_len = strlen(from);

    if (strcmp(path, from) != 0 && !is_inside(path, from))
        return;
    snprintf(renamed, sizeof(renamed), "%s%s", to, path + from_len);
    snprintf(path, len, "%s", renamed);
}

static void rename_tree(struct tree *t, const char *from, const char *to)
{
    for (size_t i = 0; i < t->count; i++) {
        char path[TREE_PATH_MAX];

        snprintf(path, sizeof(path), "%s", t->nodes[i].path);
        rename_paths(path, sizeof(path), from, to);
        free(t->nodes[i].path);
        t->nodes[i].path = tree_xstrdup(path);
    }
}

static void rename_model(struct run *r, const char *from, const char *to)
{
    struct tree_node *dst = tree_find(&r->tree, to);

    if (strcmp(from, to) == 0)
        return;
    if (dst != NULL)
        orphan_file(r, dst);
    rename_tree(&r->tree, from, to);
    rename_tree(&r->committed, from, to);
    for (int i = 0; i < r->nhandles; i++) {
        if (!r->handles[i].orphan)
            rename_paths(r->handles[i].path, sizeof(r->handles[i].path),
                         from, to);
    }
}

static void op_rename(struct run *r)
{
    char from[TREE_PATH_MAX];
    char to[TREE_PATH_MAX];
    int want;

    pick_path(r, from, sizeof(from));
    pick_path(r, to, sizeof(to));
    run_log(r, "rename %s -> %s", from, to);

    /* POSIX leaves some combinations to taste (the target an ancestor of
     * the source); the workload skips them. */
    if (is_inside(from, to))
        return;
    want = rename_expected(r, from, to);
    if (want == 0 && tree_find(&r->tree, from)->type == LFS_TYPE_DIR) {
        int deepest = 0;

        for (size_t i = 0; i < r->tree.count; i++) {
            const char *p = r->tree.nodes[i].path;

            if (strcmp(p, from) == 0 || is_inside(p, from)) {
                int d = path_depth(p) - path_depth(from);

                deepest = d > deepest ? d : deepest;
            }
        }
        if (path_depth(to) + deepest > MAX_DEPTH)
            return;
    }

    expect_code(r, "rename", lfs_rename(r->lfs, from, to), want);
    if (want == 0)
        rename_model(r, from, to);
}

static void op_setattr(struct run *r)
{
    char path[TREE_PATH_MAX];
    uint8_t value[LFS_ATTR_MAX_LIMIT];
    uint8_t type = attr_types[pick(r, ATTR_TYPES)];
    size_t size;
    struct tree_node *n;
    int want;

    pick_path(r, path, sizeof(path));
    pick_attr_value(r, value, &size);
    run_log(r, "setattr %s 0x%02x (%zu bytes)", path, type, size);
    want = model_check_parents(&r->tree, path);
    n = want == 0 ? tree_find(&r->tree, path) : NULL;
    if (want == 0 && n == NULL)
        want = LFS_ERR_NOENT;

    expect_code(r, "setattr", lfs_setattr(r->lfs, path, type, value, size),
                want);
    if (want == 0)
        tree_node_set_attr(n, type, value, size);
}

static void op_removeattr(struct run *r)
{
    char path[TREE_PATH_MAX];
    uint8_t type = attr_types[pick(r, ATTR_TYPES)];
    struct tree_node *n;
    int want;

    pick_path(r, path, sizeof(path));
    want = model_check_parents(&r->tree, path);
    n = want == 0 ? tree_find(&r->tree, path) : NULL;
    if (want == 0 && n == NULL)
        want = LFS_ERR_NOENT;
    /* Removing an attribute that is not there is not part of the
     * contract; only existing ones are removed. */
    if (want == 0 && tree_node_attr(n, type) == NULL)
        return;
    run_log(r, "removeattr %s 0x%02x", path, type);

    expect_code(r, "removeattr", lfs_removeattr(r->lfs, path, type), want);
    if (want == 0)
        tree_node_remove_attr(n, type);
}

static void op_stat(struct run *r)
{
    char path[TREE_PATH_MAX];
    struct lfs_info info;
    const struct tree_node *n;
    int want;
    int got;

    pick_path(r, path, sizeof(path));
    run_log(r, "stat %s", path);
    want = model_check_parents(&r->tree, path);
    n = want == 0 ? tree_find(&r->tree, path) : NULL;
    if (want == 0 && n == NULL)
        want = LFS_ERR_NOENT;
    got = lfs_stat(r->lfs, path, &info);
    expect_code(r, "stat", got, want);
    if (want == 0 && info.type != n->type)
        run_fail(r, "stat %s: type %u, model %u", path, info.type, n->type);
}

static int open_expected(struct run *r, const char *path, int flags)
{
    const struct tree_node *n;
    int want = model_check_parents(&r->tree, path);

    if (want != 0)
        return want;
    n = tree_find(&r->tree, path);
    if (n != NULL && (flags & LFS_O_CREAT) && (flags & LFS_O_EXCL))
        return LFS_ERR_EXIST;
    if (n != NULL && n->type == LFS_TYPE_DIR)
        return LFS_ERR_ISDIR;
    if (n == NULL && !(flags & LFS_O_CREAT))
        return LFS_ERR_NOENT;
    return 0;
}

static void op_open(struct run *r)
{
    static const int modes[] = { LFS_O_RDONLY, LFS_O_WRONLY, LFS_O_RDWR };
    char path[TREE_PATH_MAX];
    struct lfs_file *file = NULL;
    struct model_handle *h;
    int flags = modes[pick(r, 3)];
    int want;

    if (r->nhandles == MAX_HANDLES)
        return;
    pick_path(r, path, sizeof(path));
    if (flags != LFS_O_RDONLY) {
        flags |= pick(r, 2) ? LFS_O_CREAT : 0;
        flags |= pick(r, 4) == 0 ? LFS_O_EXCL : 0;
        flags |= pick(r, 5) == 0 ? LFS_O_TRUNC : 0;
        flags |= pick(r, 4) == 0 ? LFS_O_APPEND : 0;
    }
    run_log(r, "open %s flags 0x%x -> handle %d", path, flags, r->nhandles);
    want = open_expected(r, path, flags);
    if (want == 0 && tree_find(&r->tree, path) == NULL &&
        (r->tree.count >= MAX_NODES || path_depth(path) > MAX_DEPTH))
        return;

    expect_code(r, "open", lfs_file_open(r->lfs, &file, path, flags), want);
    if (want != 0)
        return;

    h = &r->handles[r->nhandles++];
    memset(h, 0, sizeof(*h));
    h->file = file;
    h->flags = flags;
    snprintf(h->path, sizeof(h->path), "%s", path);
    /* Creating the file is committed at once; its data is not. */
    if (tree_find(&r->tree, path) == NULL) {
        tree_add_file(&r->tree, path, NULL, 0);
        commit_file(r, path);
    }
    if ((flags & LFS_O_TRUNC) && handle_node(r, h)->size > 0) {
        tree_node_set_data(handle_node(r, h), NULL, 0);
        h->wrote = 1;
    }
}

static int can_write(const struct model_handle *h);

/* Create or replace a whole file in one go: open, write, close. */
static void op_create(struct run *r)
{
    char path[TREE_PATH_MAX];
    struct lfs_file *file = NULL;
    struct tree_node *n;
    size_t len = pick(r, (uint32_t)r->geo->max_write + 1);
    int flags = LFS_O_WRONLY | LFS_O_CREAT | LFS_O_TRUNC;
    uint8_t *data;
    int want;

    pick_path(r, path, sizeof(path));
    want = open_expected(r, path, flags);
    n = tree_find(&r->tree, path);
    if (want == 0 && n == NULL &&
        (r->tree.count >= MAX_NODES || path_depth(path) > MAX_DEPTH))
        return;
    if (want == 0 && model_bytes(r) + len > r->geo->budget)
        return;
    run_log(r, "create %s with %zu bytes", path, len);

    expect_code(r, "open", lfs_file_open(r->lfs, &file, path, flags), want);
    if (want != 0)
        return;
    data = tree_xmalloc(len);
    test_rand_fill(&r->rng, data, len);
    expect_code(r, "write", lfs_file_write(file, data, len), (ssize_t)len);
    expect_code(r, "close", lfs_file_close(file), 0);

    /* Handles already open on the file see it truncated and rewritten. */
    if (n == NULL)
        n = tree_add_file(&r->tree, path, NULL, 0);
    tree_node_set_data(n, data, len);
    commit_file(r, path);
    for (int i = 0; i < r->nhandles; i++) {
        if (!r->handles[i].orphan && strcmp(r->handles[i].path, path) == 0)
            r->handles[i].wrote = 0;
    }
    free(data);
}

static int can_write(const struct model_handle *h)
{
    return (h->flags & LFS_O_WRONLY) == LFS_O_WRONLY;
}

static int can_read(const struct model_handle *h)
{
    return (h->flags & LFS_O_RDONLY) == LFS_O_RDONLY;
}

/* As with POSIX write(2), writing nothing does not extend the file. */
static void model_write(struct model_handle *h, struct tree_node *n,
                        uint64_t off, const uint8_t *data, size_t len)
{
    if (len == 0)
        return;
    if (off + len > n->size)
        resize_node(n, (size_t)(off + len));
    if (len > 0)
        memcpy(n->data + off, data, len);
    h->wrote = 1;
}

static void op_write(struct run *r)
{
    int index = pick_handle(r);
    struct model_handle *h;
    struct tree_node *n;
    uint8_t *data;
    size_t len;
    uint64_t off;
    int positional = pick(r, 2);
    ssize_t got;

    if (index < 0)
        return;
    h = &r->handles[index];
    n = handle_node(r, h);
    len = pick(r, (uint32_t)r->geo->max_write + 1);
    off = pick(r, (uint32_t)n->size + r->geo->block_size * 2 + 1);
    if (h->flags & LFS_O_APPEND)
        off = n->size;
    if (can_write(h) && (off + len > r->geo->max_file ||
                         model_bytes(r) + off + len > r->geo->budget))
        return;

    data = tree_xmalloc(len);
    test_rand_fill(&r->rng, data, len);
    run_log(r, "%s handle %d (%s) %zu bytes at %llu",
            positional ? "pwrite" : "write", index, h->path, len,
            (unsigned long long)off);
    if (positional) {
        got = lfs_file_pwrite(h->file, data, len, off);
    } else {
        /* The same target offset, from each of the three origins. */
        int whence = (int)pick(r, 3);
        int64_t base = whence == LFS_SEEK_SET ? 0
                       : whence == LFS_SEEK_CUR ? (int64_t)h->pos
                                                : (int64_t)n->size;

        expect_code(r, "seek", lfs_file_seek(h->file, (int64_t)off - base,
                                             whence), (int64_t)off);
        h->pos = off;
        got = lfs_file_write(h->file, data, len);
    }
    expect_code(r, "write", got, can_write(h) ? (ssize_t)len : LFS_ERR_BADF);

    if (can_write(h)) {
        model_write(h, n, off, data, len);
        if (!positional)
            h->pos = off + len;
    }
    free(data);
}

static void op_read(struct run *r)
{
    int index = pick_handle(r);
    struct model_handle *h;
    const struct tree_node *n;
    uint8_t *buf;
    size_t len;
    uint64_t off;
    int positional = pick(r, 2);
    ssize_t got;
    ssize_t want;

    if (index < 0)
        return;
    h = &r->handles[index];
    n = handle_node(r, h);
    len = pick(r, (uint32_t)r->geo->max_write + 1);
    off = positional ? pick(r, (uint32_t)n->size + 100) : h->pos;
    run_log(r, "%s handle %d (%s) %zu bytes at %llu",
            positional ? "pread" : "read", index, h->path, len,
            (unsigned long long)off);

    buf = tree_xmalloc(len);
    got = positional ? lfs_file_pread(h->file, buf, len, off)
                     : lfs_file_read(h->file, buf, len);
    want = off >= n->size ? 0 : (ssize_t)(n->size - off < len ? n->size - off
                                                              : len);
    if (!can_read(h))
        want = LFS_ERR_BADF;
    expect_code(r, "read", got, want);
    if (want > 0 && memcmp(buf, n->data + off, (size_t)want) != 0)
        run_fail(r, "read handle %d: data differs first at byte %zu", index,
                 tree_first_difference(buf, n->data + off, (size_t)want));
    if (!positional && want > 0)
        h->pos += (uint64_t)want;
    free(buf);
}

static void op_truncate(struct run *r)
{
    int index = pick_handle(r);
    struct model_handle *h;
    struct tree_node *n;
    size_t size;

    if (index < 0)
        return;
    h = &r->handles[index];
    n = handle_node(r, h);
    size = pick(r, (uint32_t)r->geo->max_file + 1);
    if (can_write(h) && model_bytes(r) + size > r->geo->budget)
        return;
    run_log(r, "truncate handle %d (%s) to %zu", index, h->path, size);

    expect_code(r, "truncate", lfs_file_truncate(h->file, size),
                can_write(h) ? 0 : LFS_ERR_BADF);
    if (can_write(h)) {
        resize_node(n, size);
        h->wrote = 1;
    }
}

static void mark_synced(struct run *r, const struct model_handle *h)
{
    if (!can_write(h))
        return;
    if (!h->orphan)
        commit_file(r, h->path);
    for (int i = 0; i < r->nhandles; i++) {
        if (r->handles[i].orphan == h->orphan &&
            strcmp(r->handles[i].path, h->path) == 0)
            r->handles[i].wrote = 0;
    }
}

static void op_sync(struct run *r)
{
    int index = pick_handle(r);

    if (index < 0)
        return;
    run_log(r, "sync handle %d (%s)", index, r->handles[index].path);
    expect_code(r, "sync", lfs_file_sync(r->handles[index].file), 0);
    mark_synced(r, &r->handles[index]);
}

static struct model_handle *other_handle(struct run *r,
                                         const struct model_handle *h)
{
    for (int i = 0; i < r->nhandles; i++) {
        struct model_handle *o = &r->handles[i];

        if (o != h && o->orphan == h->orphan && strcmp(o->path, h->path) == 0)
            return o;
    }
    return NULL;
}

/* Close (or, with discard, drop) a handle.  Unsynced changes stay in the
 * file as long as any handle is open on it.  When the last handle goes
 * and no writer synced them (a discard, or a read-only handle that
 * outlived a discarded writer), the file returns to its last sync. */
static void close_handle(struct run *r, int index, int discard)
{
    struct model_handle *h = &r->handles[index];
    struct model_handle *other = other_handle(r, h);

    run_log(r, "%s handle %d (%s)", discard ? "discard" : "close", index,
            h->path);
    if (discard) {
        lfs_file_discard(h->file);
    } else {
        expect_code(r, "close", lfs_file_close(h->file), 0);
        mark_synced(r, h);
    }

    if (h->wrote && other != NULL) {
        other->wrote = 1;
    } else if (h->wrote && !h->orphan) {
        const struct tree_node *c = tree_find(&r->committed, h->path);

        if (c == NULL)
            run_fail(r, "model has no committed copy of %s", h->path);
        tree_node_set_data(handle_node(r, h), c->data, c->size);
    }
    r->handles[index] = r->handles[--r->nhandles];
    drop_unused_orphans(r);
}

static void op_close(struct run *r)
{
    int index = pick_handle(r);

    if (index >= 0)
        close_handle(r, index, pick(r, 4) == 0);
}

static void op_file_setattr(struct run *r)
{
    int index = pick_handle(r);
    struct model_handle *h;
    uint8_t value[LFS_ATTR_MAX_LIMIT];
    uint8_t type = attr_types[pick(r, ATTR_TYPES)];
    size_t size;

    if (index < 0)
        return;
    h = &r->handles[index];

    /* Whether a read-only handle may set attributes is left open (SFTP
     * allows fsetstat on any handle); only writers do it here. */
    if (!can_write(h))
        return;
    pick_attr_value(r, value, &size);
    run_log(r, "file_setattr handle %d (%s) 0x%02x (%zu bytes)", index,
            h->path, type, size);
    expect_code(r, "file_setattr",
                lfs_file_setattr(h->file, type, value, size), 0);
    tree_node_set_attr(handle_node(r, h), type, value, size);
}

/* ---- Remounting ---- */

static void mount_engine(struct run *r)
{
    struct lfs_mount_options opts = { .no_mtime = 1 };
    int err = lfs_mount(&r->lfs, r->bd, &opts);

    if (err != 0)
        run_fail(r, "mount: %s", lfs_strerror(err));
}

/* Unmount and mount again.  Half of the time the handles are closed one
 * by one, else lfs_unmount must sync and close them itself. */
static void remount(struct run *r)
{
    int check;

    if (pick(r, 2)) {
        while (r->nhandles > 0)
            close_handle(r, r->nhandles - 1, 0);
    }
    run_log(r, "remount with %d handles open", r->nhandles);
    r->nhandles = 0;
    drop_unused_orphans(r);
    expect_code(r, "unmount", lfs_unmount(r->lfs), 0);
    r->lfs = NULL;

    /* lfs_unmount wrote back every open file. */
    tree_free(&r->committed);
    for (size_t i = 0; i < r->tree.count; i++) {
        if (r->tree.nodes[i].type == LFS_TYPE_REG)
            commit_file(r, r->tree.nodes[i].path);
    }
    mount_engine(r);
    compare_all(r);
    check = lfs_check(r->lfs, NULL, NULL);
    expect_code(r, "lfs_check", check, 0);
}

/* ---- The driver ---- */

static void run_one_op(struct run *r)
{
    uint32_t roll = pick(r, 100);

    if (roll < 8)
        op_open(r);
    else if (roll < 16)
        op_create(r);
    else if (roll < 32)
        op_write(r);
    else if (roll < 40)
        op_read(r);
    else if (roll < 45)
        op_truncate(r);
    else if (roll < 50)
        op_sync(r);
    else if (roll < 58)
        op_close(r);
    else if (roll < 66)
        op_mkdir(r);
    else if (roll < 74)
        op_remove(r);
    else if (roll < 84)
        op_rename(r);
    else if (roll < 90)
        op_setattr(r);
    else if (roll < 93)
        op_removeattr(r);
    else if (roll < 96)
        op_file_setattr(r);
    else
        op_stat(r);
}

static void run_workload(const struct geometry *geo, uint64_t seed,
                         int iterations)
{
    /* Odd seeds write disk version 2.1 (commits with FCRC tags). */
    struct lfs_format_options fmt = {
        .block_size = geo->block_size,
        .disk_version = seed % 2 ? LFS_DISK_VERSION_2_1
                                 : LFS_DISK_VERSION_2_0,
    };
    struct run *r = calloc(1, sizeof(*r));
    clock_t started = clock();
    int err;

    assert_non_null(r);
    r->geo = geo;
    r->seed = seed;
    r->rng = seed * 0x2545f4914f6cdd1dull + geo->block_size;
    tree_init(&r->tree);
    tree_init(&r->committed);
    tree_init(&r->orphans);
    r->bd = bd_mem_new((uint64_t)geo->block_size * geo->block_count);
    assert_non_null(r->bd);
    err = lfs_format(r->bd, &fmt);
    if (err != 0)
        run_fail(r, "format: %s", lfs_strerror(err));
    mount_engine(r);

    for (r->op = 0; r->op < iterations; r->op++) {
        snprintf(r->log[r->op % LOG_LINES], sizeof(r->log[0]), "op %d: "
                 "(skipped)", r->op);
        run_one_op(r);
        compare_all(r);
        if (r->tree.count > r->most_entries)
            r->most_entries = r->tree.count;
        if (model_bytes(r) > r->most_bytes)
            r->most_bytes = model_bytes(r);
        if (r->op % REMOUNT_EVERY == REMOUNT_EVERY - 1)
            remount(r);
    }
    remount(r);
    print_message("seed %llu, block size %u: %d of %d operations ran, at "
                  "most %zu entries and %zu bytes, %.1f s\n",
                  (unsigned long long)seed, geo->block_size, r->ran,
                  iterations, r->most_entries, r->most_bytes,
                  (double)(clock() - started) / CLOCKS_PER_SEC);

    expect_code(r, "unmount", lfs_unmount(r->lfs), 0);
    bd_close(r->bd);
    tree_free(&r->tree);
    tree_free(&r->committed);
    tree_free(&r->orphans);
    free(r);
}

static int env_int(const char *name, int fallback)
{
    const char *value = getenv(name);

    return value != NULL && value[0] != '\0' ? atoi(value) : fallback;
}

static void run_geometry(const struct geometry *geo, int iterations)
{
    const char *only = getenv("LFS_MODEL_SEED");
    int total = env_int("LFS_MODEL_ITERATIONS", DEFAULT_ITERATIONS);

    if (only != NULL && only[0] != '\0') {
        run_workload(geo, strtoull(only, NULL, 0), total);
        return;
    }
    /* Big blocks make every metadata commit and compaction slower, so they
     * get fewer operations per seed. */
    total = total * iterations / DEFAULT_ITERATIONS;
    for (uint64_t seed = 1; seed <= SEEDS_PER_SIZE; seed++)
        run_workload(geo, seed, total);
}

static void model_block_128(void **state)
{
    static const struct geometry geo = {
        .block_size = 128, .block_count = 2048,
        .max_file = 3000, .budget = 24 * 1024, .max_write = 400,
    };

    (void)state;
    run_geometry(&geo, DEFAULT_ITERATIONS);
}

static void model_block_512(void **state)
{
    static const struct geometry geo = {
        .block_size = 512, .block_count = 1024,
        .max_file = 8192, .budget = 64 * 1024, .max_write = 1500,
    };

    (void)state;
    run_geometry(&geo, DEFAULT_ITERATIONS);
}

static void model_block_4096(void **state)
{
    static const struct geometry geo = {
        .block_size = 4096, .block_count = 512,
        .max_file = 40000, .budget = 256 * 1024, .max_write = 10000,
    };

    (void)state;
    run_geometry(&geo, DEFAULT_ITERATIONS);
}

static void model_block_65536(void **state)
{
    static const struct geometry geo = {
        .block_size = 65536, .block_count = 512,
        .max_file = 200000, .budget = 2 * 1024 * 1024, .max_write = 70000,
    };

    (void)state;
    run_geometry(&geo, DEFAULT_ITERATIONS / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_block_128),
        cmocka_unit_test(model_block_512),
        cmocka_unit_test(model_block_4096),
        cmocka_unit_test(model_block_65536),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
