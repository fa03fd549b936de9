/*
 * The littlefs engine against images written by the reference littlefs
 * (v2.11.2, disk versions 2.0 and 2.1).  Every image must mount and read
 * back exactly as its manifest lists.  After this engine changes it, it
 * must stay readable and keep its disk version.
 *
 * The images and manifests live in $FIXTURES_DIR/littlefs (default
 * tests/fixtures, relative to the repository root where tests run).
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
#include <openssl/evp.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "lfs_test_tree.h"

#define FIXTURE_TIME_SECONDS 1632601996  /* 2021-09-25T20:33:16Z */

static const char *const image_names[] = {
    "empty-512-v20", "empty-512-v21",
    "small-512-v20", "small-512-v21",
    "attrs-512-v20", "attrs-512-v21",
    "big-4096-v20", "big-4096-v21",
};

#define IMAGE_COUNT (sizeof(image_names) / sizeof(image_names[0]))

/* ---- Manifests ---- */

struct manifest_entry {
    char path[TREE_PATH_MAX];
    uint8_t type;
    size_t size;
    char sha256[65];
};

struct manifest_attr {
    char path[TREE_PATH_MAX];
    uint8_t type;
    size_t size;
    uint8_t data[LFS_ATTR_MAX_LIMIT];
};

struct manifest {
    uint32_t block_size;
    uint32_t block_count;
    uint32_t disk_version;
    int64_t used_blocks;
    struct manifest_entry *entries;
    size_t entry_count;
    struct manifest_attr *attrs;
    size_t attr_count;
};

static const char *fixtures_dir(void)
{
    const char *dir = getenv("FIXTURES_DIR");

    return dir != NULL && dir[0] != '\0' ? dir : "tests/fixtures";
}

static uint8_t *load_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long len;

    if (f == NULL)
        fail_msg("cannot open %s (set FIXTURES_DIR to the fixtures folder)",
                 path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    data = tree_xmalloc((size_t)len + 1);
    assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    data[len] = '\0';
    *size = (size_t)len;
    return data;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static size_t parse_hex(const char *hex, uint8_t *out, size_t max)
{
    size_t len = strlen(hex);

    assert_int_equal(len % 2, 0);
    assert_true(len / 2 <= max);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hex_value(hex[2 * i + 1]);

        assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return len / 2;
}

static void parse_header(struct manifest *m, const char *line)
{
    unsigned major;
    unsigned minor;
    long long used;

    if (sscanf(line, "# block_size: %u", &m->block_size) == 1)
        return;
    if (sscanf(line, "# block_count: %u", &m->block_count) == 1)
        return;
    if (sscanf(line, "# disk_version: %u.%u", &major, &minor) == 2) {
        m->disk_version = (uint32_t)major << 16 | minor;
        return;
    }
    if (sscanf(line, "# used_blocks (lfs_fs_size): %lld", &used) == 1)
        m->used_blocks = used;
}

static void parse_entry(struct manifest *m, const char *line)
{
    char kind;
    char path[TREE_PATH_MAX];
    char third[64];
    char fourth[2 * LFS_ATTR_MAX_LIMIT + 1];

    assert_int_equal(sscanf(line, "%c %4095s %63s %2044s", &kind, path, third,
                            fourth), 4);
    if (kind == 'a') {
        struct manifest_attr *a;

        m->attrs = realloc(m->attrs, (m->attr_count + 1) * sizeof(*a));
        assert_non_null(m->attrs);
        a = &m->attrs[m->attr_count++];
        snprintf(a->path, sizeof(a->path), "%s", path);
        a->type = (uint8_t)strtoul(third, NULL, 16);
        a->size = parse_hex(fourth, a->data, sizeof(a->data));
        return;
    }

    assert_true(kind == 'f' || kind == 'd');
    m->entries = realloc(m->entries, (m->entry_count + 1) *
                                     sizeof(*m->entries));
    assert_non_null(m->entries);
    struct manifest_entry *e = &m->entries[m->entry_count++];
    snprintf(e->path, sizeof(e->path), "%s", path);
    e->type = kind == 'f' ? LFS_TYPE_REG : LFS_TYPE_DIR;
    e->size = kind == 'f' ? strtoull(third, NULL, 10) : 0;
    if (kind == 'f') {
        assert_int_equal(strlen(fourth), 64);
        memcpy(e->sha256, fourth, 65);
    } else {
        e->sha256[0] = '\0';
    }
}

static void load_manifest(const char *name, struct manifest *m)
{
    char path[TREE_PATH_MAX];
    size_t size;
    char *text;
    char *line;
    char *save = NULL;

    memset(m, 0, sizeof(*m));
    m->used_blocks = -1;
    snprintf(path, sizeof(path), "%s/littlefs/%s.manifest", fixtures_dir(),
             name);
    text = (char *)load_file(path, &size);

    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            parse_header(m, line);
        else if (line[0] != '\0')
            parse_entry(m, line);
    }
    free(text);

    assert_true(m->block_size >= 128);
    assert_true(m->block_count > 0);
    assert_true(m->disk_version == LFS_DISK_VERSION_2_0 ||
                m->disk_version == LFS_DISK_VERSION_2_1);
    assert_true(m->used_blocks > 0);
}

static void free_manifest(struct manifest *m)
{
    free(m->entries);
    free(m->attrs);
}

/* ---- Images ---- */

static struct bd *load_image(const char *name, uint8_t **copy)
{
    char path[TREE_PATH_MAX];
    size_t size;
    uint8_t *data;
    struct bd *bd;

    snprintf(path, sizeof(path), "%s/littlefs/%s.img", fixtures_dir(), name);
    data = load_file(path, &size);
    bd = bd_mem_new(size);
    assert_non_null(bd);
    assert_int_equal(bd->size, size);
    memcpy(bd_mem_data(bd), data, size);
    if (copy != NULL)
        *copy = data;
    else
        free(data);
    return bd;
}

static struct lfs *mount_image(struct bd *bd, uint32_t block_size,
                               int read_only, int no_mtime)
{
    struct lfs_mount_options opts = {
        .block_size = block_size,
        .read_only = read_only,
        .no_mtime = no_mtime,
    };
    struct lfs *lfs = NULL;
    int err = lfs_mount(&lfs, bd, &opts);

    if (err != 0)
        fail_msg("mount failed: %s", lfs_strerror(err));
    assert_non_null(lfs);
    return lfs;
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65])
{
    uint8_t digest[32];
    unsigned int digest_len = 0;

    assert_int_equal(EVP_Digest(data, len, digest, &digest_len, EVP_sha256(),
                                NULL), 1);
    assert_int_equal(digest_len, 32);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static const uint8_t *all_attr_types(void)
{
    static uint8_t types[256];

    for (int i = 0; i < 256; i++)
        types[i] = (uint8_t)i;
    return types;
}

/* Every attribute type on the small images.  big-4096 has 500 entries,
 * so 256 lookups each would be slow under sanitizers: there the probe is
 * the types this project uses plus both ends of the range. */
static struct tree_probe probe_for(const char *name)
{
    static const uint8_t few[] = {
        0x00, 0x01, LFS_ATTR_ATIME, LFS_ATTR_MODE, LFS_ATTR_MTIME, 0xff,
    };
    struct tree_probe probe = { all_attr_types(), 256, 1 };

    if (strncmp(name, "big-", 4) == 0) {
        probe.types = few;
        probe.count = sizeof(few);
    }
    return probe;
}

static void snapshot_or_fail(struct lfs *lfs, const char *name,
                             const struct tree_probe *probe, struct tree *out)
{
    int err = tree_snapshot(lfs, probe, out);

    if (err != 0)
        fail_msg("%s: walking the tree failed: %s", name, out->error);
}

static void check_clean(struct lfs *lfs, const char *name)
{
    int result = lfs_check(lfs, NULL, NULL);

    if (result != 0)
        fail_msg("%s: lfs_check returned %d", name, result);
}

/* ---- Comparing a read-back tree with a manifest ---- */

static void compare_entry(const char *name, const struct manifest_entry *e,
                          const struct tree_node *n)
{
    char sha[65];

    if (n == NULL)
        fail_msg("%s: %s is missing", name, e->path);
    if (n->type != e->type)
        fail_msg("%s: %s has type %u, expected %u", name, e->path, n->type,
                 e->type);
    if (n->size != e->size)
        fail_msg("%s: %s has size %zu, expected %zu", name, e->path, n->size,
                 e->size);
    if (e->type == LFS_TYPE_REG) {
        sha256_hex(n->data, n->size, sha);
        if (strcmp(sha, e->sha256) != 0)
            fail_msg("%s: %s has sha256 %s, expected %s", name, e->path, sha,
                     e->sha256);
    }
}

static void compare_attrs(const char *name, const struct manifest *m,
                          const struct tree *t)
{
    size_t found = 0;

    for (size_t i = 0; i < m->attr_count; i++) {
        const struct manifest_attr *a = &m->attrs[i];
        const struct tree_node *n = tree_find(t, a->path);
        const struct tree_attr *got = n ? tree_node_attr(n, a->type) : NULL;

        if (got == NULL)
            fail_msg("%s: attribute 0x%02x of %s is missing", name, a->type,
                     a->path);
        assert_int_equal(got->size, a->size);
        assert_memory_equal(got->data, a->data, a->size);
    }

    /* Every attribute read back must be one the manifest lists. */
    for (size_t i = 0; i < t->count; i++)
        found += t->nodes[i].attr_count;
    if (found != m->attr_count)
        fail_msg("%s: %zu attributes read back, manifest lists %zu", name,
                 found, m->attr_count);
}

static void compare_with_manifest(const char *name, const struct manifest *m,
                                  const struct tree *t)
{
    for (size_t i = 0; i < m->entry_count; i++)
        compare_entry(name, &m->entries[i], tree_find(t, m->entries[i].path));

    for (size_t i = 0; i < t->count; i++) {
        int listed = 0;

        for (size_t j = 0; j < m->entry_count && !listed; j++)
            listed = strcmp(m->entries[j].path, t->nodes[i].path) == 0;
        if (!listed)
            fail_msg("%s: %s is not in the manifest", name, t->nodes[i].path);
    }
    assert_int_equal(t->count, m->entry_count);
    compare_attrs(name, m, t);
}

static void check_fs_stat(struct lfs *lfs, const char *name,
                          const struct manifest *m)
{
    struct lfs_fsinfo info;

    assert_int_equal(lfs_fs_stat(lfs, &info), 0);
    if (info.disk_version != m->disk_version)
        fail_msg("%s: disk version 0x%08x, expected 0x%08x", name,
                 info.disk_version, m->disk_version);
    assert_int_equal(info.block_size, m->block_size);
    assert_int_equal(info.block_count, m->block_count);
    assert_int_equal(info.name_max, 255);
    assert_int_equal(info.file_max, LFS_FILE_MAX_LIMIT);
    assert_int_equal(info.attr_max, LFS_ATTR_MAX_LIMIT);
}

/* ---- Reading the images as they are ---- */

static void mount_matches_manifest(void **state)
{
    (void)state;

    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        const char *name = image_names[i];
        struct tree_probe probe = probe_for(name);
        struct manifest m;
        struct tree t;
        struct bd *bd = load_image(name, NULL);
        struct lfs *lfs = mount_image(bd, 0, 0, 1);
        int64_t used;

        load_manifest(name, &m);
        snapshot_or_fail(lfs, name, &probe, &t);
        compare_with_manifest(name, &m, &t);
        check_fs_stat(lfs, name, &m);

        used = lfs_fs_size(lfs);
        if (used != m.used_blocks)
            fail_msg("%s: lfs_fs_size %lld, reference said %lld", name,
                     (long long)used, (long long)m.used_blocks);
        check_clean(lfs, name);

        assert_int_equal(lfs_unmount(lfs), 0);
        bd_close(bd);
        tree_free(&t);
        free_manifest(&m);
    }
}

static void mount_and_walk_leave_image_unchanged(void **state)
{
    (void)state;

    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        const char *name = image_names[i];
        struct tree_probe probe = probe_for(name);
        uint8_t *original;
        struct bd *bd = load_image(name, &original);
        struct lfs *lfs = mount_image(bd, 0, 0, 0);
        struct tree t;

        snapshot_or_fail(lfs, name, &probe, &t);
        assert_int_equal(lfs_unmount(lfs), 0);
        if (memcmp(bd_mem_data(bd), original, bd->size) != 0)
            fail_msg("%s: mounting and reading changed the image", name);

        tree_free(&t);
        free(original);
        bd_close(bd);
    }
}

static void mount_with_matching_block_size(void **state)
{
    (void)state;

    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        const char *name = image_names[i];
        struct tree_probe probe = probe_for(name);
        struct manifest m;
        struct tree t;
        struct bd *bd = load_image(name, NULL);
        struct lfs *lfs;

        load_manifest(name, &m);
        lfs = mount_image(bd, m.block_size, 0, 1);
        snapshot_or_fail(lfs, name, &probe, &t);
        compare_with_manifest(name, &m, &t);
        assert_int_equal(lfs_unmount(lfs), 0);

        bd_close(bd);
        tree_free(&t);
        free_manifest(&m);
    }
}

static void mount_with_wrong_block_size_fails(void **state)
{
    static const uint32_t sizes[] = { 128, 256, 1024, 2048, 4096, 8192 };

    (void)state;
    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        const char *name = image_names[i];
        struct manifest m;
        struct bd *bd;

        load_manifest(name, &m);
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
            struct lfs_mount_options opts = { .block_size = sizes[j] };
            struct lfs *lfs = NULL;
            int err;

            if (sizes[j] == m.block_size)
                continue;
            bd = load_image(name, NULL);
            err = lfs_mount(&lfs, bd, &opts);
            if (err != LFS_ERR_GEOMETRY)
                fail_msg("%s: mount with block size %u returned %d (%s), "
                         "expected LFS_ERR_GEOMETRY", name, sizes[j], err,
                         lfs_strerror(err));
            bd_close(bd);
        }
        free_manifest(&m);
    }
}

static void expect_not_lfs(struct bd *bd, uint32_t block_size,
                           const char *what)
{
    struct lfs_mount_options opts = { .block_size = block_size };
    struct lfs *lfs = NULL;
    int err = lfs_mount(&lfs, bd, &opts);

    if (err != LFS_ERR_NOTLFS)
        fail_msg("mount of %s with block size %u returned %d (%s), expected "
                 "LFS_ERR_NOTLFS", what, block_size, err, lfs_strerror(err));
}

static void mount_zero_image_is_not_lfs(void **state)
{
    struct bd *bd = bd_mem_new(65536);

    (void)state;
    assert_non_null(bd);
    memset(bd_mem_data(bd), 0, 65536);
    expect_not_lfs(bd, 0, "a zero-filled image");
    expect_not_lfs(bd, 512, "a zero-filled image");
    expect_not_lfs(bd, 4096, "a zero-filled image");
    bd_close(bd);
}

static void mount_erased_image_is_not_lfs(void **state)
{
    struct bd *bd = bd_mem_new(65536);

    (void)state;
    assert_non_null(bd);
    expect_not_lfs(bd, 0, "an erased (0xff) image");
    expect_not_lfs(bd, 512, "an erased (0xff) image");
    bd_close(bd);
}

static void mount_random_image_is_not_lfs(void **state)
{
    uint64_t seed = 0x5eed0001;

    (void)state;
    for (int round = 0; round < 8; round++) {
        struct bd *bd = bd_mem_new(65536);

        assert_non_null(bd);
        test_rand_fill(&seed, bd_mem_data(bd), 65536);
        expect_not_lfs(bd, 0, "a random image");
        expect_not_lfs(bd, 512, "a random image");
        bd_close(bd);
    }
}

static void fixture_mtime_decodes(void **state)
{
    (void)state;

    for (int v = 0; v < 2; v++) {
        const char *name = v == 0 ? "attrs-512-v20" : "attrs-512-v21";
        struct bd *bd = load_image(name, NULL);
        struct lfs *lfs = mount_image(bd, 0, 1, 1);
        uint8_t raw[LFS_TIME_ATTR_SIZE + 4];
        struct timespec ts;
        struct tm tm;
        char text[32];
        ssize_t got;

        got = lfs_getattr(lfs, "/stamped.txt", LFS_ATTR_MTIME, raw,
                          sizeof(raw));
        assert_int_equal(got, LFS_TIME_ATTR_SIZE);
        assert_int_equal(lfs_time_decode(raw, (size_t)got, &ts), 0);
        assert_int_equal(ts.tv_sec, FIXTURE_TIME_SECONDS);
        assert_int_equal(ts.tv_nsec, 0);
        assert_non_null(gmtime_r(&ts.tv_sec, &tm));
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_string_equal(text, "2021-09-25T20:33:16Z");

        got = lfs_getattr(lfs, "/plain.txt", LFS_ATTR_MTIME, raw,
                          sizeof(raw));
        assert_int_equal(got, LFS_ERR_NOATTR);

        assert_int_equal(lfs_unmount(lfs), 0);
        bd_close(bd);
    }
}

static void read_only_mount_keeps_fixture_unchanged(void **state)
{
    (void)state;

    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        const char *name = image_names[i];
        uint8_t *original;
        struct bd *bd = load_image(name, &original);
        struct lfs *lfs = mount_image(bd, 0, 1, 0);
        struct lfs_file *file = NULL;
        int err;

        err = lfs_file_open(lfs, &file, "/ro.txt",
                            LFS_O_WRONLY | LFS_O_CREAT);
        assert_int_equal(err, LFS_ERR_ROFS);
        assert_int_equal(lfs_mkdir(lfs, "/ro"), LFS_ERR_ROFS);
        assert_int_equal(lfs_unmount(lfs), 0);
        if (memcmp(bd_mem_data(bd), original, bd->size) != 0)
            fail_msg("%s: a read-only mount changed the image", name);
        free(original);
        bd_close(bd);
    }
}

/* ---- Changing the images ---- */

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    uint64_t state = seed;

    test_rand_fill(&state, buf, len);
}

/* The first and last regular files in path order, or NULL. */
static const struct tree_node *pick_file(const struct tree *t, int last)
{
    const struct tree_node *found = NULL;

    for (size_t i = 0; i < t->count; i++) {
        if (t->nodes[i].type != LFS_TYPE_REG)
            continue;
        if (found == NULL || last)
            found = &t->nodes[i];
    }
    return found;
}

static void append_both(struct lfs *lfs, struct tree *want, const char *path,
                        size_t len, uint32_t seed)
{
    struct tree_node *n = tree_find(want, path);
    uint8_t *buf = tree_xmalloc(len);
    uint8_t *joined;
    struct lfs_file *file = NULL;

    fill_pattern(buf, len, seed);
    assert_int_equal(lfs_file_open(lfs, &file, path,
                                   LFS_O_WRONLY | LFS_O_APPEND), 0);
    assert_int_equal(lfs_file_write(file, buf, len), (ssize_t)len);
    assert_int_equal(lfs_file_close(file), 0);

    joined = tree_xmalloc(n->size + len);
    if (n->size > 0)
        memcpy(joined, n->data, n->size);
    memcpy(joined + n->size, buf, len);
    tree_node_set_data(n, joined, n->size + len);
    free(joined);
    free(buf);
}

static void create_both(struct lfs *lfs, struct tree *want, const char *path,
                        size_t len, uint32_t seed)
{
    uint8_t *buf = tree_xmalloc(len);

    fill_pattern(buf, len, seed);
    assert_int_equal(test_write_file(lfs, path, buf, len), 0);
    tree_add_file(want, path, buf, len);
    free(buf);
}

static void rename_in_tree(struct tree *t, const char *from, const char *to)
{
    size_t from_len = strlen(from);

    for (size_t i = 0; i < t->count; i++) {
        char *path = t->nodes[i].path;
        char renamed[TREE_PATH_MAX];

        if (strncmp(path, from, from_len) != 0 ||
            (path[from_len] != '\0' && path[from_len] != '/'))
            continue;
        snprintf(renamed, sizeof(renamed), "%s%s", to, path + from_len);
        free(path);
        t->nodes[i].path = tree_xstrdup(renamed);
    }
}

static void remove_both(struct lfs *lfs, struct tree *want, const char *path)
{
    assert_int_equal(lfs_remove(lfs, path), 0);
    tree_remove_node(want, tree_find(want, path));
}

static void rename_first_dir(struct lfs *lfs, struct tree *want)
{
    for (size_t i = 0; i < want->count; i++) {
        char from[TREE_PATH_MAX];
        char to[TREE_PATH_MAX + 16];

        if (want->nodes[i].type != LFS_TYPE_DIR ||
            strchr(want->nodes[i].path + 1, '/') != NULL ||
            strcmp(want->nodes[i].path, "/newdir") == 0)
            continue;
        snprintf(from, sizeof(from), "%s", want->nodes[i].path);
        snprintf(to, sizeof(to), "%s.renamed", from);
        assert_int_equal(lfs_rename(lfs, from, to), 0);
        rename_in_tree(want, from, to);
        return;
    }
}

/*
 * Apply the same changes to the mounted image and to want: new files and
 * directories, appends to the first and last files, a remove, a rename of
 * a file into another directory and of a whole directory.
 */
static void change_image(struct lfs *lfs, struct tree *want)
{
    const struct tree_node *first = pick_file(want, 0);
    const struct tree_node *last = pick_file(want, 1);
    char first_path[TREE_PATH_MAX] = "";
    char last_path[TREE_PATH_MAX] = "";

    if (first != NULL)
        snprintf(first_path, sizeof(first_path), "%s", first->path);
    if (last != NULL)
        snprintf(last_path, sizeof(last_path), "%s", last->path);

    assert_int_equal(lfs_mkdir(lfs, "/newdir"), 0);
    tree_add_dir(want, "/newdir");
    assert_int_equal(lfs_mkdir(lfs, "/newdir/sub"), 0);
    tree_add_dir(want, "/newdir/sub");
    create_both(lfs, want, "/new.txt", 100, 1);
    create_both(lfs, want, "/newdir/inner.bin", 3000, 2);
    create_both(lfs, want, "/newdir/sub/tiny", 7, 3);

    if (first_path[0] != '\0')
        append_both(lfs, want, first_path, 700, 4);
    if (last_path[0] != '\0' && strcmp(last_path, first_path) != 0)
        append_both(lfs, want, last_path, 5, 5);

    if (first_path[0] != '\0') {
        assert_int_equal(lfs_rename(lfs, first_path, "/newdir/moved"), 0);
        rename_in_tree(want, first_path, "/newdir/moved");
    }
    if (last_path[0] != '\0' && strcmp(last_path, first_path) != 0)
        remove_both(lfs, want, last_path);
    rename_first_dir(lfs, want);
    tree_sort(want);
}

static void changed_fixture_remounts_as_expected(void **state)
{
    (void)state;

    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        const char *name = image_names[i];
        struct tree_probe probe = probe_for(name);
        struct manifest m;
        struct tree want;
        struct tree got;
        struct bd *bd = load_image(name, NULL);
        struct lfs *lfs = mount_image(bd, 0, 0, 1);
        char why[512];

        load_manifest(name, &m);
        snapshot_or_fail(lfs, name, &probe, &want);
        compare_with_manifest(name, &m, &want);
        change_image(lfs, &want);
        assert_int_equal(lfs_unmount(lfs), 0);

        lfs = mount_image(bd, 0, 0, 1);
        snapshot_or_fail(lfs, name, &probe, &got);
        if (tree_compare(&want, &got, 1, why, sizeof(why)) != 0)
            fail_msg("%s after changes and remount: %s", name, why);
        check_fs_stat(lfs, name, &m);
        check_clean(lfs, name);
        assert_int_equal(lfs_unmount(lfs), 0);

        tree_free(&want);
        tree_free(&got);
        free_manifest(&m);
        bd_close(bd);
    }
}

/* Changes made twice, with a remount between, keep the version too. */
static void changed_fixture_keeps_disk_version(void **state)
{
    (void)state;

    for (size_t i = 0; i < IMAGE_COUNT; i++) {
        const char *name = image_names[i];
        struct manifest m;
        struct bd *bd = load_image(name, NULL);
        struct lfs *lfs;
        struct lfs_fsinfo info;

        load_manifest(name, &m);
        for (int round = 0; round < 2; round++) {
            char path[32];
            uint8_t buf[200];

            lfs = mount_image(bd, 0, 0, 0);
            fill_pattern(buf, sizeof(buf), (uint32_t)round);
            snprintf(path, sizeof(path), "/round%d", round);
            assert_int_equal(test_write_file(lfs, path, buf, sizeof(buf)), 0);
            assert_int_equal(lfs_mkdir(lfs, "/rounddir"),
                             round == 0 ? 0 : LFS_ERR_EXIST);
            assert_int_equal(lfs_fs_stat(lfs, &info), 0);
            assert_int_equal(info.disk_version, m.disk_version);
            assert_int_equal(lfs_unmount(lfs), 0);
        }

        lfs = mount_image(bd, 0, 1, 0);
        assert_int_equal(lfs_fs_stat(lfs, &info), 0);
        if (info.disk_version != m.disk_version)
            fail_msg("%s: disk version 0x%08x after writes, expected "
                     "0x%08x", name, info.disk_version, m.disk_version);
        assert_int_equal(lfs_unmount(lfs), 0);
        free_manifest(&m);
        bd_close(bd);
    }
}

static void write_stamps_mtime(void **state)
{
    (void)state;

    for (int v = 0; v < 2; v++) {
        const char *name = v == 0 ? "attrs-512-v20" : "attrs-512-v21";
        struct bd *bd = load_image(name, NULL);
        struct lfs *lfs = mount_image(bd, 0, 0, 0);
        uint8_t raw[LFS_TIME_ATTR_SIZE];
        struct timespec ts;
        time_t before = time(NULL);
        time_t after;

        assert_int_equal(test_write_file(lfs, "/fresh.txt", "fresh\n", 6), 0);
        after = time(NULL);
        assert_int_equal(lfs_unmount(lfs), 0);

        lfs = mount_image(bd, 0, 1, 0);
        assert_int_equal(lfs_getattr(lfs, "/fresh.txt", LFS_ATTR_MTIME, raw,
                                     sizeof(raw)), LFS_TIME_ATTR_SIZE);
        assert_int_equal(lfs_time_decode(raw, sizeof(raw), &ts), 0);
        assert_true(ts.tv_sec >= before);
        assert_true(ts.tv_sec <= after);

        /* Files that were not written keep their attributes. */
        assert_int_equal(lfs_getattr(lfs, "/plain.txt", LFS_ATTR_MTIME, raw,
                                     sizeof(raw)), LFS_ERR_NOATTR);
        assert_int_equal(lfs_getattr(lfs, "/stamped.txt", LFS_ATTR_MTIME, raw,
                                     sizeof(raw)), LFS_TIME_ATTR_SIZE);
        assert_int_equal(lfs_time_decode(raw, sizeof(raw), &ts), 0);
        assert_int_equal(ts.tv_sec, FIXTURE_TIME_SECONDS);
        assert_int_equal(lfs_unmount(lfs), 0);
        bd_close(bd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mount_matches_manifest),
        cmocka_unit_test(mount_and_walk_leave_image_unchanged),
        cmocka_unit_test(mount_with_matching_block_size),
        cmocka_unit_test(mount_with_wrong_block_size_fails),
        cmocka_unit_test(mount_zero_image_is_not_lfs),
        cmocka_unit_test(mount_erased_image_is_not_lfs),
        cmocka_unit_test(mount_random_image_is_not_lfs),
        cmocka_unit_test(fixture_mtime_decodes),
        cmocka_unit_test(read_only_mount_keeps_fixture_unchanged),
        cmocka_unit_test(changed_fixture_remounts_as_expected),
        cmocka_unit_test(changed_fixture_keeps_disk_version),
        cmocka_unit_test(write_stamps_mtime),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
