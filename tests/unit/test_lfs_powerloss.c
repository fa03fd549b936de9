/*
 * Power loss at every write: a fixed workload of about 200 steps runs on a
 * fault-injecting device that cuts the power at its k-th prog or erase,
 * for every k the workload reaches.  After each cut the image is mounted
 * afresh on the memory device below and must pass lfs_check.  Its tree
 * must be the one before the interrupted step, after it, or at one of the
 * step's own sync points, so everything synced before the cut is intact.
 * The image must then still take writes.
 *
 * Each step is one user-level operation (write a file and close it,
 * rename, mkdir, ...).  The run is repeated with torn progs, where the
 * cut prog writes its first half, and for three block sizes.
 *
 * LFS_POWERLOSS_CUT=k runs only cut k; LFS_POWERLOSS_TRACE=1 prints every
 * prog, erase and sync the engine makes (the uncut run is traced too);
 * LFS_POWERLOSS_SEED=n plans a different workload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "lfs_test_tree.h"

#define STEP_COUNT 200
#define MAX_MIDS 2
#define MAX_ENTRIES 24
#define WORKLOAD_SEED 0x9e3779b9u

/* One image geometry with the sizes its workload uses: file lengths,
 * overwrite spans and attribute values scale with the block size, and all
 * file bytes together stay well below the image size (no NOSPC). */
struct config {
    uint32_t block_size;
    uint32_t block_count;
    size_t budget;
    uint32_t max_length;
    uint32_t max_attr;
    uint32_t disk_version;
};

static const struct config *cfg;

static const uint8_t probe_types[] = { 0x01, 0x42 };
static const struct tree_probe probe = { probe_types, sizeof(probe_types), 1 };

enum step_kind {
    STEP_WRITE,      /* open CREAT|TRUNC, write, close */
    STEP_APPEND,     /* open APPEND, write, close */
    STEP_OVERWRITE,  /* open, pwrite somewhere (maybe past the end), close */
    STEP_TRUNCATE,   /* open, truncate, close */
    STEP_TWO_SYNCS,  /* open CREAT|APPEND, write, sync, write, close */
    STEP_MKDIR,
    STEP_REMOVE,
    STEP_RENAME,
    STEP_SETATTR,
    STEP_KINDS,
};

struct step {
    enum step_kind kind;
    char path[64];
    char path2[64];
    uint8_t *data;
    size_t len;
    size_t len1;      /* STEP_TWO_SYNCS: bytes written before the sync */
    uint64_t off;     /* STEP_OVERWRITE offset, STEP_TRUNCATE size */
    uint8_t attr_type;
};

/* The workload and every tree it may leave behind. */
struct workload {
    struct step steps[STEP_COUNT];
    struct tree states[STEP_COUNT + 1];       /* after step i (0: empty) */
    struct tree mids[STEP_COUNT + 1][MAX_MIDS];
    int nmids[STEP_COUNT + 1];
    uint8_t *pristine;                        /* the formatted image */
};

static struct workload wl;

/* How the recovered trees matched, over all cuts of one run. */
struct cut_stats {
    int before;
    int after;
    int mid;
    uint64_t wrong_error_cut;  /* first cut that failed with no IO error */
    int wrong_error;
    int wrong_error_step;
};

static struct cut_stats stats;

/* ---- Building the workload and its expected trees ---- */

static uint32_t pick(uint64_t *rng, uint32_t bound)
{
    return test_rand_below(rng, bound);
}

static size_t tree_bytes(const struct tree *t)
{
    size_t total = 0;

    for (size_t i = 0; i < t->count; i++)
        total += t->nodes[i].size;
    return total;
}

static int has_children(const struct tree *t, const char *dir)
{
    size_t len = strlen(dir);

    for (size_t i = 0; i < t->count; i++) {
        if (strncmp(t->nodes[i].path, dir, len) == 0 &&
            t->nodes[i].path[len] == '/')
            return 1;
    }
    return 0;
}

/* A random existing entry of the given type (0: any), or NULL. */
static struct tree_node *pick_node(uint64_t *rng, struct tree *t, int type)
{
    size_t matches = 0;
    uint32_t choice;

    for (size_t i = 0; i < t->count; i++)
        matches += type == 0 || t->nodes[i].type == type;
    if (matches == 0)
        return NULL;
    choice = pick(rng, (uint32_t)matches);
    for (size_t i = 0; i < t->count; i++) {
        if (type != 0 && t->nodes[i].type != type)
            continue;
        if (choice-- == 0)
            return &t->nodes[i];
    }
    return NULL;
}

/* A path that does not exist yet, in the root or in an existing dir. */
static void pick_new_path(uint64_t *rng, struct tree *t, char *out,
                          size_t len)
{
    for (;;) {
        struct tree_node *dir = pick(rng, 3) ? pick_node(rng, t, LFS_TYPE_DIR)
                                             : NULL;
        char name[16];

        snprintf(name, sizeof(name), "n%u", pick(rng, 40));
        tree_join(out, len, dir ? dir->path : "/", name);
        if (tree_find(t, out) == NULL && strlen(out) < 48)
            return;
    }
}

static void add_mid(int index, const struct tree *t)
{
    assert_true(wl.nmids[index] < MAX_MIDS);
    tree_copy(&wl.mids[index][wl.nmids[index]++], t);
    tree_sort(&wl.mids[index][wl.nmids[index] - 1]);
}

static void fill_data(uint64_t *rng, struct step *s, size_t len)
{
    s->len = len;
    s->data = tree_xmalloc(len);
    test_rand_fill(rng, s->data, len);
}

static void node_write(struct tree_node *n, uint64_t off, const uint8_t *data,
                       size_t len)
{
    size_t size = off + len > n->size ? (size_t)(off + len) : n->size;
    uint8_t *joined = tree_xmalloc(size);

    memset(joined, 0, size);
    if (n->size > 0)
        memcpy(joined, n->data, n->size);
    memcpy(joined + off, data, len);
    tree_node_set_data(n, joined, size);
    free(joined);
}

static void node_truncate(struct tree_node *n, size_t size)
{
    uint8_t *data = tree_xmalloc(size);

    memset(data, 0, size);
    if (n->size > 0)
        memcpy(data, n->data, n->size < size ? n->size : size);
    tree_node_set_data(n, data, size);
    free(data);
}

/* Lengths mix inline files (up to a few dozen bytes) and files on their
 * own blocks, up to a few blocks long. */
static size_t pick_length(uint64_t *rng)
{
    return pick(rng, 4) == 0 ? pick(rng, 48) : pick(rng, cfg->max_length);
}

static int plan_write(uint64_t *rng, int i, struct step *s, struct tree *t)
{
    struct tree_node *n = pick(rng, 2) ? pick_node(rng, t, LFS_TYPE_REG)
                                       : NULL;

    if (n == NULL && t->count >= MAX_ENTRIES)
        return -1;
    if (n != NULL)
        snprintf(s->path, sizeof(s->path), "%s", n->path);
    else
        pick_new_path(rng, t, s->path, sizeof(s->path));
    fill_data(rng, s, pick_length(rng));

    /* Creating and truncating may be committed before the data. */
    if (n == NULL)
        n = tree_add_file(t, s->path, NULL, 0);
    else
        tree_node_set_data(n, NULL, 0);
    add_mid(i, t);
    tree_node_set_data(n, s->data, s->len);
    return 0;
}

static int plan_append(uint64_t *rng, struct step *s, struct tree *t)
{
    struct tree_node *n = pick_node(rng, t, LFS_TYPE_REG);

    if (n == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "%s", n->path);
    fill_data(rng, s, pick_length(rng) / 2 + 1);
    node_write(n, n->size, s->data, s->len);
    return 0;
}

static int plan_overwrite(uint64_t *rng, struct step *s, struct tree *t)
{
    struct tree_node *n = pick_node(rng, t, LFS_TYPE_REG);

    if (n == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "%s", n->path);
    s->off = pick(rng, (uint32_t)n->size + cfg->max_length / 2);
    fill_data(rng, s, pick(rng, cfg->max_length / 2) + 1);
    node_write(n, s->off, s->data, s->len);
    return 0;
}

static int plan_truncate(uint64_t *rng, struct step *s, struct tree *t)
{
    struct tree_node *n = pick_node(rng, t, LFS_TYPE_REG);

    if (n == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "%s", n->path);
    s->off = pick(rng, (uint32_t)n->size * 2 + 64);
    node_truncate(n, (size_t)s->off);
    return 0;
}

static int plan_two_syncs(uint64_t *rng, int i, struct step *s,
                          struct tree *t)
{
    struct tree_node *n = pick(rng, 2) ? pick_node(rng, t, LFS_TYPE_REG)
                                       : NULL;

    if (n == NULL && t->count >= MAX_ENTRIES)
        return -1;
    if (n != NULL)
        snprintf(s->path, sizeof(s->path), "%s", n->path);
    else
        pick_new_path(rng, t, s->path, sizeof(s->path));
    fill_data(rng, s, pick_length(rng) + 2);
    s->len1 = 1 + pick(rng, (uint32_t)s->len - 1);

    if (n == NULL) {
        n = tree_add_file(t, s->path, NULL, 0);
        add_mid(i, t);
    }
    node_write(n, n->size, s->data, s->len1);
    add_mid(i, t);
    node_write(n, n->size, s->data + s->len1, s->len - s->len1);
    return 0;
}

static int plan_mkdir(uint64_t *rng, struct step *s, struct tree *t)
{
    if (t->count >= MAX_ENTRIES)
        return -1;
    pick_new_path(rng, t, s->path, sizeof(s->path));
    if (strchr(s->path + 1, '/') != NULL && pick(rng, 2))
        return -1;
    tree_add_dir(t, s->path);
    return 0;
}

static int plan_remove(uint64_t *rng, struct step *s, struct tree *t)
{
    struct tree_node *n = pick_node(rng, t, 0);

    if (n == NULL || (n->type == LFS_TYPE_DIR && has_children(t, n->path)))
        return -1;
    snprintf(s->path, sizeof(s->path), "%s", n->path);
    tree_remove_node(t, n);
    return 0;
}

static void rename_in_tree(struct tree *t, const char *from, const char *to)
{
    size_t len = strlen(from);

    for (size_t i = 0; i < t->count; i++) {
        char renamed[TREE_PATH_MAX];
        char *path = t->nodes[i].path;

        if (strncmp(path, from, len) != 0 ||
            (path[len] != '\0' && path[len] != '/'))
            continue;
        snprintf(renamed, sizeof(renamed), "%s%s", to, path + len);
        free(path);
        t->nodes[i].path = tree_xstrdup(renamed);
    }
}

static int plan_rename(uint64_t *rng, struct step *s, struct tree *t)
{
    struct tree_node *n = pick_node(rng, t, 0);
    struct tree_node *target;

    if (n == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "%s", n->path);

    /* A file may replace another file; otherwise the target is new. */
    target = n->type == LFS_TYPE_REG && pick(rng, 3) == 0
             ? pick_node(rng, t, LFS_TYPE_REG) : NULL;
    if (target != NULL && target != n) {
        snprintf(s->path2, sizeof(s->path2), "%s", target->path);
        tree_remove_node(t, target);
    } else {
        pick_new_path(rng, t, s->path2, sizeof(s->path2));
        if (strncmp(s->path2, s->path, strlen(s->path)) == 0 &&
            s->path2[strlen(s->path)] == '/')
            return -1;
    }
    rename_in_tree(t, s->path, s->path2);
    return 0;
}

static int plan_setattr(uint64_t *rng, struct step *s, struct tree *t)
{
    struct tree_node *n = pick_node(rng, t, 0);

    if (n == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "%s", n->path);
    s->attr_type = probe_types[pick(rng, sizeof(probe_types))];
    fill_data(rng, s, pick(rng, cfg->max_attr + 1));
    tree_node_set_attr(n, s->attr_type, s->data, s->len);
    return 0;
}

static int plan_step(uint64_t *rng, int i, struct step *s, struct tree *t)
{
    switch (s->kind) {
    case STEP_WRITE:
        return plan_write(rng, i, s, t);
    case STEP_APPEND:
        return plan_append(rng, s, t);
    case STEP_OVERWRITE:
        return plan_overwrite(rng, s, t);
    case STEP_TRUNCATE:
        return plan_truncate(rng, s, t);
    case STEP_TWO_SYNCS:
        return plan_two_syncs(rng, i, s, t);
    case STEP_MKDIR:
        return plan_mkdir(rng, s, t);
    case STEP_REMOVE:
        return plan_remove(rng, s, t);
    case STEP_RENAME:
        return plan_rename(rng, s, t);
    case STEP_SETATTR:
        return plan_setattr(rng, s, t);
    default:
        return -1;
    }
}

static void free_step(struct step *s)
{
    free(s->data);
    memset(s, 0, sizeof(*s));
}

static void reset_mids(int index)
{
    for (int m = 0; m < wl.nmids[index]; m++)
        tree_free(&wl.mids[index][m]);
    wl.nmids[index] = 0;
}

/* Plan step i on a copy of the previous state; retry with other kinds
 * until one fits (the tree may lack files, or be full). */
static void plan_workload(void)
{
    const char *seed = getenv("LFS_POWERLOSS_SEED");
    uint64_t rng = seed != NULL && seed[0] != '\0'
                   ? strtoull(seed, NULL, 0) : WORKLOAD_SEED;

    tree_init(&wl.states[0]);
    for (int i = 1; i <= STEP_COUNT; i++) {
        struct step *s = &wl.steps[i - 1];

        for (;;) {
            struct tree next;

            memset(s, 0, sizeof(*s));
            s->kind = (enum step_kind)pick(&rng, STEP_KINDS);
            tree_copy(&next, &wl.states[i - 1]);
            if (plan_step(&rng, i, s, &next) == 0 &&
                tree_bytes(&next) <= cfg->budget) {
                tree_sort(&next);
                wl.states[i] = next;
                break;
            }
            tree_free(&next);
            free_step(s);
            reset_mids(i);
        }
    }
}

/* ---- Running the workload on the engine ---- */

static int finish(struct lfs_file *file, int err)
{
    int closed = lfs_file_close(file);

    return err != 0 ? err : closed;
}

static int write_all(struct lfs_file *file, const uint8_t *data, size_t len)
{
    ssize_t wrote = len > 0 ? lfs_file_write(file, data, len) : 0;

    if (wrote < 0)
        return (int)wrote;
    return (size_t)wrote == len ? 0 : LFS_ERR_IO;
}

/* Set once a step's lfs_file_sync returned 0: from then on the data
 * written before it must survive any cut. */
static int synced_inside_step;

static int run_file_step(struct lfs *lfs, const struct step *s)
{
    struct lfs_file *file = NULL;
    ssize_t wrote;
    int flags = LFS_O_RDWR;
    int err;

    if (s->kind == STEP_WRITE)
        flags = LFS_O_WRONLY | LFS_O_CREAT | LFS_O_TRUNC;
    else if (s->kind == STEP_APPEND)
        flags = LFS_O_WRONLY | LFS_O_APPEND;
    else if (s->kind == STEP_TWO_SYNCS)
        flags = LFS_O_WRONLY | LFS_O_CREAT | LFS_O_APPEND;
    err = lfs_file_open(lfs, &file, s->path, flags);
    if (err != 0)
        return err;

    switch (s->kind) {
    case STEP_OVERWRITE:
        wrote = lfs_file_pwrite(file, s->data, s->len, s->off);
        err = wrote < 0 ? (int)wrote : (size_t)wrote == s->len ? 0
                                                              : LFS_ERR_IO;
        break;
    case STEP_TRUNCATE:
        err = lfs_file_truncate(file, s->off);
        break;
    case STEP_TWO_SYNCS:
        err = write_all(file, s->data, s->len1);
        if (err == 0)
            err = lfs_file_sync(file);
        if (err == 0) {
            synced_inside_step = 1;
            err = write_all(file, s->data + s->len1, s->len - s->len1);
        }
        break;
    default:
        err = write_all(file, s->data, s->len);
        break;
    }
    return finish(file, err);
}

static int run_step(struct lfs *lfs, const struct step *s)
{
    switch (s->kind) {
    case STEP_MKDIR:
        return lfs_mkdir(lfs, s->path);
    case STEP_REMOVE:
        return lfs_remove(lfs, s->path);
    case STEP_RENAME:
        return lfs_rename(lfs, s->path, s->path2);
    case STEP_SETATTR:
        return lfs_setattr(lfs, s->path, s->attr_type, s->data, s->len);
    default:
        return run_file_step(lfs, s);
    }
}

static const char *step_name(const struct step *s)
{
    static const char *const names[] = {
        "write", "append", "overwrite", "truncate", "two-syncs", "mkdir",
        "remove", "rename", "setattr",
    };

    return names[s->kind];
}

/* ---- Tracing writes (LFS_POWERLOSS_TRACE=1), for reproducing a cut ---- */

struct trace_bd {
    struct bd bd;
    struct bd *inner;
    uint64_t writes;
};

static int trace_read(struct bd *bd, uint32_t block, uint32_t off, void *buf,
                      size_t len)
{
    struct trace_bd *t = (struct trace_bd *)bd;

    return t->inner->ops->read(t->inner, block, off, buf, len);
}

static int trace_prog(struct bd *bd, uint32_t block, uint32_t off,
                      const void *buf, size_t len)
{
    struct trace_bd *t = (struct trace_bd *)bd;

    fprintf(stderr, "write %llu: prog block %u offset %u, %zu bytes\n",
            (unsigned long long)++t->writes, block, off, len);
    return t->inner->ops->prog(t->inner, block, off, buf, len);
}

static int trace_erase(struct bd *bd, uint32_t block)
{
    struct trace_bd *t = (struct trace_bd *)bd;

    fprintf(stderr, "write %llu: erase block %u\n",
            (unsigned long long)++t->writes, block);
    return t->inner->ops->erase(t->inner, block);
}

static int trace_sync(struct bd *bd)
{
    struct trace_bd *t = (struct trace_bd *)bd;

    fprintf(stderr, "sync after write %llu\n", (unsigned long long)t->writes);
    return t->inner->ops->sync(t->inner);
}

static void trace_close(struct bd *bd)
{
    free(bd);
}

static int trace_set_block_size(struct bd *bd, uint32_t block_size)
{
    struct trace_bd *t = (struct trace_bd *)bd;

    return bd_set_block_size(t->inner, block_size);
}

static const struct bd_ops trace_ops = {
    .read = trace_read,
    .prog = trace_prog,
    .erase = trace_erase,
    .sync = trace_sync,
    .close = trace_close,
    .set_block_size = trace_set_block_size,
};

/* A device that prints every write before passing it to inner, or inner
 * itself when tracing is off. */
static struct bd *maybe_trace(struct bd *inner)
{
    struct trace_bd *t;
    const char *env = getenv("LFS_POWERLOSS_TRACE");

    if (env == NULL || env[0] == '\0')
        return inner;
    t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->bd = *inner;
    t->bd.ops = &trace_ops;
    t->bd.error[0] = '\0';
    t->inner = inner;
    return &t->bd;
}

/* ---- Checking an image after a cut ---- */

static struct bd *fresh_device(void)
{
    struct bd *bd = bd_mem_new((uint64_t)cfg->block_size *
                               cfg->block_count);

    assert_non_null(bd);
    memcpy(bd_mem_data(bd), wl.pristine, bd->size);
    return bd;
}

static int matches(const struct tree *want, const struct tree *got)
{
    char why[512];

    return tree_compare(want, got, 1, why, sizeof(why)) == 0;
}

static void report_mismatch(int cut, int tear, int step,
                            const struct tree *got)
{
    char why_before[512];
    char why_after[512];
    int before = step > 0 ? step - 1 : 0;
    int after = step <= STEP_COUNT ? step : STEP_COUNT;

    tree_compare(&wl.states[before], got, 1, why_before, sizeof(why_before));
    tree_compare(&wl.states[after], got, 1, why_after, sizeof(why_after));
    fail_msg("cut at write %d (tear %d) during step %d (%s %s): the tree "
             "matches no allowed state; against the state before: %s; "
             "after: %s", cut, tear, step,
             step >= 1 && step <= STEP_COUNT ? step_name(&wl.steps[step - 1])
                                             : "mount/unmount",
             step >= 1 && step <= STEP_COUNT ? wl.steps[step - 1].path : "",
             why_before, why_after);
}

static void check_recovered(struct bd *bd, int cut, int tear, int step,
                            int synced)
{
    int first_mid;
    struct lfs_mount_options opts = { 0 };
    struct lfs *lfs = NULL;
    struct tree got;
    int before = step > 0 ? step - 1 : 0;
    int after = step <= STEP_COUNT ? step : STEP_COUNT;
    int ok;
    int err = lfs_mount(&lfs, bd, &opts);

    if (err != 0)
        fail_msg("cut at write %d (tear %d), step %d: mount after the cut "
                 "failed: %s", cut, tear, step, lfs_strerror(err));
    err = lfs_check(lfs, NULL, NULL);
    if (err != 0)
        fail_msg("cut at write %d (tear %d), step %d: lfs_check returned %d",
                 cut, tear, step, err);
    err = tree_snapshot(lfs, &probe, &got);
    if (err != 0)
        fail_msg("cut at write %d (tear %d), step %d: walking the tree: %s",
                 cut, tear, step, got.error);

    /* After a sync inside the step, only its last sync point (the last
     * intermediate state) and the state after the step remain. */
    ok = !synced && matches(&wl.states[before], &got);
    stats.before += ok;
    if (!ok) {
        ok = matches(&wl.states[after], &got);
        stats.after += ok;
    }
    first_mid = synced && step <= STEP_COUNT ? wl.nmids[step] - 1 : 0;
    for (int m = first_mid; !ok && step <= STEP_COUNT && m < wl.nmids[step];
         m++) {
        ok = matches(&wl.mids[step][m], &got);
        stats.mid += ok;
    }
    if (!ok)
        report_mismatch(cut, tear, step, &got);
    tree_free(&got);

    /* The recovered image takes new writes. */
    err = test_write_file(lfs, "/after-cut", "recovered", 9);
    if (err != 0)
        fail_msg("cut at write %d (tear %d): writing after recovery failed: "
                 "%s", cut, tear, lfs_strerror(err));
    assert_int_equal(lfs_unmount(lfs), 0);
    assert_int_equal(lfs_mount(&lfs, bd, &opts), 0);
    assert_int_equal(lfs_check(lfs, NULL, NULL), 0);
    assert_int_equal(lfs_unmount(lfs), 0);
}

/*
 * Run the workload on a device that loses power at write cut (0: never).
 * Returns the step that failed (1-based), 0 when mounting failed, or
 * STEP_COUNT + 1 when only the unmount failed; STEP_COUNT + 2 means
 * nothing failed.  *writes gets the number of writes the device saw.
 */
static int run_until_cut(struct bd *inner, uint64_t cut, int tear,
                         uint64_t *writes, int *error)
{
    struct bd *traced = maybe_trace(inner);
    struct bd *faulty = bd_faulty_new(traced, cut, tear);
    /* No mtime stamps: with them the writes would depend on the clock. */
    struct lfs_mount_options opts = { .no_mtime = 1 };
    struct lfs *lfs = NULL;
    int failed = STEP_COUNT + 2;
    int err;

    assert_non_null(faulty);
    *error = 0;
    synced_inside_step = 0;
    err = lfs_mount(&lfs, faulty, &opts);
    if (err != 0) {
        *error = err;
        bd_close(faulty);
        if (traced != inner)
            bd_close(traced);
        return 0;
    }
    for (int i = 1; i <= STEP_COUNT; i++) {
        synced_inside_step = 0;
        err = run_step(lfs, &wl.steps[i - 1]);
        if (err != 0) {
            *error = err;
            failed = i;
            break;
        }
    }

    /* After a cut this only frees the mount; its error is expected. */
    err = lfs_unmount(lfs);
    if (failed == STEP_COUNT + 2 && err != 0) {
        *error = err;
        failed = STEP_COUNT + 1;
    }
    *writes = bd_faulty_writes(faulty);
    bd_close(faulty);
    if (traced != inner)
        bd_close(traced);
    return failed;
}

static void free_workload(void);

static void setup_workload(void)
{
    struct lfs_format_options fmt = {
        .block_size = cfg->block_size, .disk_version = cfg->disk_version,
    };
    struct bd *bd;

    free_workload();
    plan_workload();
    bd = bd_mem_new((uint64_t)cfg->block_size * cfg->block_count);
    assert_non_null(bd);
    assert_int_equal(lfs_format(bd, &fmt), 0);
    wl.pristine = tree_xmalloc(bd->size);
    memcpy(wl.pristine, bd_mem_data(bd), bd->size);
    bd_close(bd);
}

/* The workload without cuts: every step succeeds and the final tree is
 * the last planned state.  Returns the number of writes it makes. */
static uint64_t count_writes(void)
{
    struct bd *bd = fresh_device();
    uint64_t writes = 0;
    int error;
    int failed = run_until_cut(bd, 0, 0, &writes, &error);

    if (failed != STEP_COUNT + 2)
        fail_msg("uncut workload failed at step %d (%s %s): %s", failed,
                 failed >= 1 && failed <= STEP_COUNT
                 ? step_name(&wl.steps[failed - 1]) : "mount/unmount",
                 failed >= 1 && failed <= STEP_COUNT
                 ? wl.steps[failed - 1].path : "", lfs_strerror(error));
    check_recovered(bd, 0, 0, STEP_COUNT + 1, 0);
    bd_close(bd);
    assert_true(writes > STEP_COUNT);
    return writes;
}


static void cut_at_every_write(int tear)
{
    const char *only = getenv("LFS_POWERLOSS_CUT");
    uint64_t total;
    uint64_t first;
    uint64_t last;

    setup_workload();
    memset(&stats, 0, sizeof(stats));
    total = count_writes();
    first = 1;
    last = total;
    if (only != NULL && only[0] != '\0') {
        first = strtoull(only, NULL, 0);
        last = first;
    }
    print_message("block size %u, disk version 2.%u, %s: the workload of "
                  "%d steps makes %llu writes\n", cfg->block_size,
                  cfg->disk_version & 0xffff, tear ? "torn progs"
                  : "plain cuts", STEP_COUNT, (unsigned long long)total);

    for (uint64_t cut = first; cut <= last; cut++) {
        struct bd *bd = fresh_device();
        uint64_t writes = 0;
        int error;
        int failed = run_until_cut(bd, cut, tear, &writes, &error);

        if (writes < cut)
            fail_msg("cut at write %llu: the run made only %llu writes, "
                     "fewer than the uncut run", (unsigned long long)cut,
                     (unsigned long long)writes);
        /* The device saw the cut write, so something must have failed. */
        if (failed == STEP_COUNT + 2)
            fail_msg("cut at write %llu (tear %d) went unnoticed: every step "
                     "and the unmount returned 0", (unsigned long long)cut,
                     tear);
        if (!tear && error != LFS_ERR_IO && stats.wrong_error_cut == 0) {
            stats.wrong_error_cut = cut;
            stats.wrong_error = error;
            stats.wrong_error_step = failed;
        }
        check_recovered(bd, (int)cut, tear, failed, synced_inside_step);
        bd_close(bd);
    }
    print_message("recovered trees: %d as before the step, %d as after it, "
                  "%d at a sync point inside it\n", stats.before,
                  stats.after, stats.mid);

    /* A lost write is an I/O error; reported last, so that recovery
     * failures of later cuts show first. */
    if (stats.wrong_error_cut != 0) {
        int step = stats.wrong_error_step;
        int named = step >= 1 && step <= STEP_COUNT;

        fail_msg("cut at write %llu, step %d (%s %s): the failed call "
                 "returned %d (%s), expected LFS_ERR_IO",
                 (unsigned long long)stats.wrong_error_cut, step,
                 named ? step_name(&wl.steps[step - 1]) : "mount/unmount",
                 named ? wl.steps[step - 1].path : "", stats.wrong_error,
                 lfs_strerror(stats.wrong_error));
    }
}

static void free_workload(void)
{
    for (int i = 0; i <= STEP_COUNT; i++) {
        tree_free(&wl.states[i]);
        reset_mids(i);
        if (i < STEP_COUNT)
            free_step(&wl.steps[i]);
    }
    free(wl.pristine);
    wl.pristine = NULL;
}

static void run_config(const struct config *config, int tear)
{
    cfg = config;
    cut_at_every_write(tear);
    free_workload();
}

static const struct config small_blocks = {
    .block_size = 128, .block_count = 512, .budget = 12 * 1024,
    .max_length = 700, .max_attr = 8,
};
static const struct config medium_blocks = {
    .block_size = 512, .block_count = 128, .budget = 20 * 1024,
    .max_length = 1800, .max_attr = 40,
};
static const struct config medium_blocks_2_1 = {
    .block_size = 512, .block_count = 128, .budget = 20 * 1024,
    .max_length = 1800, .max_attr = 40,
    .disk_version = LFS_DISK_VERSION_2_1,
};
static const struct config large_blocks = {
    .block_size = 4096, .block_count = 128, .budget = 48 * 1024,
    .max_length = 12000, .max_attr = 100,
};

static void cut_every_write_block_128(void **state)
{
    (void)state;
    run_config(&small_blocks, 0);
}

static void tear_every_write_block_128(void **state)
{
    (void)state;
    run_config(&small_blocks, 1);
}

static void cut_every_write_block_512(void **state)
{
    (void)state;
    run_config(&medium_blocks, 0);
}

static void tear_every_write_block_512(void **state)
{
    (void)state;
    run_config(&medium_blocks, 1);
}

static void cut_every_write_version_2_1(void **state)
{
    (void)state;
    run_config(&medium_blocks_2_1, 0);
}

static void tear_every_write_version_2_1(void **state)
{
    (void)state;
    run_config(&medium_blocks_2_1, 1);
}

static void cut_every_write_block_4096(void **state)
{
    (void)state;
    run_config(&large_blocks, 0);
}

static void tear_every_write_block_4096(void **state)
{
    (void)state;
    run_config(&large_blocks, 1);
}

static int teardown(void **state)
{
    (void)state;
    free_workload();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cut_every_write_block_128),
        cmocka_unit_test(tear_every_write_block_128),
        cmocka_unit_test(cut_every_write_block_512),
        cmocka_unit_test(tear_every_write_block_512),
        cmocka_unit_test(cut_every_write_version_2_1),
        cmocka_unit_test(tear_every_write_version_2_1),
        cmocka_unit_test(cut_every_write_block_4096),
        cmocka_unit_test(tear_every_write_block_4096),
    };

    return cmocka_run_group_tests(tests, NULL, teardown);
}
