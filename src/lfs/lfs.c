/*
 * The littlefs engine: mounting, paths, directories, renames and
 * attributes.  Files live in file.c, metadata pairs in mdir.c, the block
 * allocator in alloc.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs_internal.h"

#define LFS_MAX_DEPTH 256

/// Errors and device access ///

const char *lfs_strerror(int err)
{
    switch (err) {
    case LFS_ERR_OK: return "success";
    case LFS_ERR_IO: return "input/output error";
    case LFS_ERR_CORRUPT: return "corrupted filesystem";
    case LFS_ERR_NOENT: return "no such file or directory";
    case LFS_ERR_EXIST: return "file exists";
    case LFS_ERR_NOTDIR: return "not a directory";
    case LFS_ERR_ISDIR: return "is a directory";
    case LFS_ERR_NOTEMPTY: return "directory not empty";
    case LFS_ERR_BADF: return "bad file handle";
    case LFS_ERR_FBIG: return "file too large";
    case LFS_ERR_INVAL: return "invalid argument";
    case LFS_ERR_NOSPC: return "no space left on the image";
    case LFS_ERR_NOMEM: return "out of memory";
    case LFS_ERR_NOATTR: return "no such attribute";
    case LFS_ERR_NAMETOOLONG: return "name too long";
    case LFS_ERR_ROFS: return "read-only filesystem";
    case LFS_ERR_NOTLFS: return "not a littlefs image";
    case LFS_ERR_VERSION: return "unsupported littlefs version";
    case LFS_ERR_AUTH: return "data failed authentication";
    case LFS_ERR_GEOMETRY: return "block size or count does not match";
    case LFS_ERR_UNWRITTEN: return "block was never written";
    default: return "unknown error";
    }
}

const char *lfs_error_detail(const struct lfs *lfs)
{
    return lfs ? lfs->detail : "";
}

int lfs_map_bd_error(struct lfs *lfs, int err)
{
    if (lfs->bd->error[0])
        snprintf(lfs->detail, sizeof(lfs->detail), "%s", lfs->bd->error);
    switch (err) {
    case BD_ERR_AUTH: return LFS_ERR_AUTH;
    case BD_ERR_RANGE: return LFS_ERR_CORRUPT;
    case BD_ERR_NOMEM: return LFS_ERR_NOMEM;
    case BD_ERR_INVAL: return LFS_ERR_INVAL;
    case BD_ERR_UNWRITTEN: return LFS_ERR_UNWRITTEN;
    default: return LFS_ERR_IO;
    }
}

int lfs_bd_read(struct lfs *lfs, uint32_t block, uint32_t off, void *buf,
                size_t len)
{
    if (block >= lfs->block_count || off + len > lfs->block_size) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "block %u is outside the image (%u blocks)", block,
                 lfs->block_count);
        return LFS_ERR_CORRUPT;
    }
    int err = bd_read(lfs->bd, block, off, buf, len);
    return err ? lfs_map_bd_error(lfs, err) : 0;
}

int lfs_bd_prog(struct lfs *lfs, uint32_t block, uint32_t off,
                const void *buf, size_t len)
{
    if (block >= lfs->block_count || off + len > lfs->block_size)
        return LFS_ERR_CORRUPT;
    int err = bd_prog(lfs->bd, block, off, buf, len);
    if (err)
        return lfs_map_bd_error(lfs, err);
    if (!lfs->writes_since_sync) {
        lfs->writes_since_sync = true;
        lfs->last_block = block;
    } else if (lfs->last_block != block) {
        lfs->last_block = LFS_BLOCK_NULL;
    }
    return 0;
}

/*
 * A metadata commit must not reach the disk before the blocks it points
 * at, and the page cache or the disk may reorder writes.  So before a
 * commit to block, sync if anything was written elsewhere since the last
 * sync.  Successive commits to one block need no sync: a torn commit fails
 * its CRC and the log ends at the previous one.
 */
int lfs_bd_barrier(struct lfs *lfs, uint32_t block)
{
    if (lfs->writes_since_sync && lfs->last_block != block)
        return lfs_bd_sync(lfs);
    return 0;
}

int lfs_bd_sync(struct lfs *lfs)
{
    int err = bd_sync(lfs->bd);
    if (err)
        return lfs_map_bd_error(lfs, err);
    lfs->writes_since_sync = false;
    return 0;
}

/// Paths ///

struct lfs_path {
    int depth;
    const char *name[LFS_MAX_DEPTH];
    uint16_t len[LFS_MAX_DEPTH];
};

/* Split a path into components, resolving "." and ".." lexically. */
static int path_parse(struct lfs *lfs, const char *path, struct lfs_path *p)
{
    p->depth = 0;
    while (*path) {
        while (*path == '/')
            path++;
        if (!*path)
            break;
        const char *start = path;
        while (*path && *path != '/')
            path++;
        size_t len = (size_t)(path - start);

        if (len == 1 && start[0] == '.')
            continue;
        if (len == 2 && start[0] == '.' && start[1] == '.') {
            if (p->depth > 0)
                p->depth--;
            continue;
        }
        if (len > lfs->name_max || len > lfs->name_fit)
            return LFS_ERR_NAMETOOLONG;
        if (p->depth == LFS_MAX_DEPTH)
            return LFS_ERR_NAMETOOLONG;
        p->name[p->depth] = start;
        p->len[p->depth] = (uint16_t)len;
        p->depth++;
    }
    return 0;
}

static bool entry_is_moved(struct lfs *lfs, const struct lfs_mdir *m,
                           uint16_t id)
{
    return lfs_gstate_hasmove(&lfs->gdisk) &&
           lfs_pair_eq(lfs->gdisk.pair, m->pair) &&
           LFS_TAG_ID(lfs->gdisk.tag) == id;
}

static bool entry_visible(struct lfs *lfs, const struct lfs_mdir *m,
                          uint16_t id)
{
    uint16_t type = m->entries[id].type;
    return (type == LFS_T_REG || type == LFS_T_DIR) &&
           !entry_is_moved(lfs, m, id);
}

/* Follow hard tails to the next pair of a directory, with a bound on the
 * number of hops so a cycle on a corrupt image cannot hang us. */
static int next_in_dir(struct lfs *lfs, struct lfs_mdir **m, uint32_t *hops)
{
    if (++*hops > lfs->block_count) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "directory chain through {%u, %u} loops", (*m)->pair[0],
                 (*m)->pair[1]);
        return LFS_ERR_CORRUPT;
    }
    uint32_t tail[2] = {(*m)->tail[0], (*m)->tail[1]};
    return lfs_mdir_get(lfs, tail, m);
}

static int lookup(struct lfs *lfs, const uint32_t dirpair[2],
                  const char *name, uint16_t len, struct lfs_mdir **out,
                  uint16_t *id)
{
    uint32_t hash = lfs_name_hash((const uint8_t *)name, len);
    uint32_t hops = 0;
    struct lfs_mdir *m;
    int err = lfs_mdir_get(lfs, dirpair, &m);
    if (err)
        return err;

    int found = lfs_dindex_lookup(lfs, m, name, len, hash, entry_visible,
                                  out, id);
    if (found >= 0)
        return found ? 0 : LFS_ERR_NOENT;
    while (!err) {
        for (uint16_t i = 0; i < m->count; i++) {
            const struct lfs_entry *e = &m->entries[i];
            if (e->name_hash == hash && e->name_len == len &&
                entry_visible(lfs, m, i) && memcmp(e->name, name, len) == 0) {
                *out = m;
                *id = i;
                return 0;
            }
        }
        if (!m->split)
            return LFS_ERR_NOENT;
        err = next_in_dir(lfs, &m, &hops);
    }
    return err;
}

int lfs_entry_dirpair(struct lfs *lfs, const struct lfs_entry *e,
                      uint32_t pair[2])
{
    if (e->struct_type != LFS_T_DIRSTRUCT || e->struct_len < 8) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "directory entry has no directory pointer");
        return LFS_ERR_CORRUPT;
    }
    pair[0] = lfs_le32(e->struct_data);
    pair[1] = lfs_le32(e->struct_data + 4);
    return 0;
}

/* The result of resolving a path. */
struct lfs_res {
    bool is_root;
    uint32_t parent[2];     /* head pair of the parent directory */
    struct lfs_mdir *m;     /* where the entry is (NULL if not found) */
    uint16_t id;
    const char *name;       /* last component */
    uint16_t name_len;
};

/* Resolve path.  Returns 0 when the entry exists, LFS_ERR_NOENT when only
 * the last component is missing (res->parent is valid then), or another
 * error. */
static int resolve_parsed(struct lfs *lfs, const struct lfs_path *p,
                          struct lfs_res *res)
{
    uint32_t dir[2] = {lfs->root[0], lfs->root[1]};

    memset(res, 0, sizeof(*res));
    if (p->depth == 0) {
        res->is_root = true;
        res->parent[0] = dir[0];
        res->parent[1] = dir[1];
        return 0;
    }
    for (int i = 0; i < p->depth; i++) {
        struct lfs_mdir *m;
        uint16_t id;
        bool last = i == p->depth - 1;

        res->parent[0] = dir[0];
        res->parent[1] = dir[1];
        res->name = p->name[i];
        res->name_len = p->len[i];
        int err = lookup(lfs, dir, p->name[i], p->len[i], &m, &id);
        if (err)
            return (err == LFS_ERR_NOENT && !last) ? LFS_ERR_NOENT : err;
        if (last) {
            res->m = m;
            res->id = id;
            return 0;
        }
        if (m->entries[id].type != LFS_T_DIR)
            return LFS_ERR_NOTDIR;
        err = lfs_entry_dirpair(lfs, &m->entries[id], dir);
        if (err)
            return err;
    }
    return 0;
}

static int resolve(struct lfs *lfs, const char *path, struct lfs_res *res,
                   struct lfs_path *p)
{
    int err = path_parse(lfs, path, p);
    if (err)
        return err;
    return resolve_parsed(lfs, p, res);
}

/* When resolve failed with NOENT, tell "only the last component is
 * missing" (parent usable) from "an earlier component is missing". */
static bool parent_exists(const struct lfs_res *res, const struct lfs_path *p)
{
    return p->depth > 0 && res->name == p->name[p->depth - 1];
}

static int walk_to_last(struct lfs *lfs, const uint32_t head[2],
                        struct lfs_mdir **out)
{
    uint32_t hops = 0;
    struct lfs_mdir *m;
    int err = lfs_mdir_get(lfs, head, &m);

    /* large directories remember their last pair in their name index */
    struct lfs_mdir *last = err ? NULL : lfs_dindex_last(m);
    if (last && !last->split) {
        *out = last;
        return 0;
    }
    while (!err && m->split)
        err = next_in_dir(lfs, &m, &hops);
    if (!err)
        *out = m;
    return err;
}

static int name_cmp(const uint8_t *a, uint16_t alen, const char *b,
                    uint16_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r)
        return r;
    if (alen == blen)
        return 0;
    return alen < blen ? -1 : 1;
}

/* Id where a new name goes in m to keep the pair sorted, as the
 * reference does (it inserts into the last pair of a directory). */
static uint16_t insert_position(const struct lfs_mdir *m, const char *name,
                                uint16_t len)
{
    for (uint16_t i = 0; i < m->count; i++) {
        const struct lfs_entry *e = &m->entries[i];
        if ((e->type == LFS_T_REG || e->type == LFS_T_DIR) &&
            name_cmp(e->name, e->name_len, name, len) > 0)
            return i;
    }
    return m->count;
}

static bool dir_is_empty_chain(struct lfs *lfs, const uint32_t head[2],
                               int *err)
{
    uint32_t hops = 0;
    struct lfs_mdir *m;

    *err = lfs_mdir_get(lfs, head, &m);
    while (!*err) {
        for (uint16_t i = 0; i < m->count; i++) {
            if (entry_visible(lfs, m, i))
                return false;
        }
        if (!m->split)
            return true;
        *err = next_in_dir(lfs, &m, &hops);
    }
    return false;
}

/// The metadata tail list ///

/* Find the pair whose tail points at pair.  *pred is NULL and the result
 * 0 when pair is not on the tail list (chamelon leaves directories off
 * it). */
int lfs_find_pred(struct lfs *lfs, const uint32_t pair[2],
                  struct lfs_mdir **pred)
{
    static const uint32_t first[2] = {0, 1};
    uint32_t hops = 0;
    struct lfs_mdir *m;
    int err = lfs_mdir_get(lfs, first, &m);

    *pred = NULL;
    while (!err && !lfs_pair_isnull(m->tail)) {
        if (lfs_pair_eq(m->tail, pair)) {
            *pred = m;
            return 0;
        }
        if (++hops > lfs->block_count)
            return LFS_ERR_CORRUPT;
        uint32_t tail[2] = {m->tail[0], m->tail[1]};
        err = lfs_mdir_get(lfs, tail, &m);
    }
    return err;
}

static void gstate_xor(struct lfs_gstate *a, const struct lfs_gstate *b)
{
    a->tag ^= b->tag;
    a->pair[0] ^= b->pair[0];
    a->pair[1] ^= b->pair[1];
}

/* Count directories being removed in the size bits of the wanted global
 * state (memory only: commits store just the top bit, as the reference
 * does). */
static void gstate_orphans(struct lfs *lfs, int delta)
{
    uint32_t n = (LFS_TAG_SIZE(lfs->gstate.tag) & 0x1ffu) + (uint32_t)delta;
    lfs->gstate.tag = (lfs->gstate.tag & ~0x800003ffu) | (n & 0x1ffu) |
                      (n ? 0x80000000u : 0u);
}

/*
 * Unlink the pairs from first to last (one directory's chain, or a single
 * empty pair) from the tail list: their predecessor takes over last's
 * tail, and their global-state deltas, which vanish with them.
 */
static int drop_pairs(struct lfs *lfs, struct lfs_mdir *pred,
                      const uint32_t first[2], struct lfs_mdir *last,
                      bool keep_split)
{
    struct lfs_tagops ops = {0};
    uint8_t tail[8];
    uint32_t hops = 0;
    struct lfs_mdir *m;
    int err = lfs_mdir_get(lfs, first, &m);

    while (!err) {
        gstate_xor(&lfs->gdisk, &m->gdelta);
        memset(&m->gdelta, 0, sizeof(m->gdelta));
        if (m == last)
            break;
        err = next_in_dir(lfs, &m, &hops);
    }
    if (err)
        return err;

    lfs_put_le32(tail, last->tail[0]);
    lfs_put_le32(tail + 4, last->tail[1]);
    bool split = keep_split && last->split;
    if (lfs_pair_isnull(last->tail)) {
        lfs_put_le32(tail, LFS_BLOCK_NULL);
        lfs_put_le32(tail + 4, LFS_BLOCK_NULL);
    }
    lfs_tagops_add(&ops, LFS_MKTAG(split ? LFS_T_HARDTAIL : LFS_T_SOFTTAIL,
                                   LFS_ID_NONE, 8), tail);
    uint32_t next[2] = {last->tail[0], last->tail[1]};
    err = lfs_mdir_commit(lfs, pred, &ops);
    if (err)
        return err;

    /* forget the dropped pairs */
    uint32_t cur[2] = {first[0], first[1]};
    for (hops = 0; hops <= lfs->block_count; hops++) {
        if (lfs_mdir_get(lfs, cur, &m))
            break;
        bool at_last = m == last;
        uint32_t t[2] = {m->tail[0], m->tail[1]};
        /* readers inside the dropped pairs continue with the next pair
         * only when it belongs to the same directory */
        lfs_open_drop(lfs, m->pair, next, !split);
        lfs_mdir_forget(lfs, m);
        if (at_last)
            break;
        cur[0] = t[0];
        cur[1] = t[1];
    }
    return 0;
}

/* After a delete, unlink m when it became empty and is not the first
 * pair of its directory (the reference does the same). */
static int drop_if_empty(struct lfs *lfs, struct lfs_mdir *m)
{
    for (uint16_t i = 0; i < m->count; i++) {
        if (m->entries[i].type)
            return 0;
    }
    struct lfs_mdir *pred;
    int err = lfs_find_pred(lfs, m->pair, &pred);
    if (err || !pred || !pred->split)
        return err;
    uint32_t first[2] = {m->pair[0], m->pair[1]};
    return drop_pairs(lfs, pred, first, m, true);
}

/* Unlink a removed directory's whole chain from the tail list and clear
 * the orphan mark set before its entry was deleted. */
static int drop_dir(struct lfs *lfs, const uint32_t head[2])
{
    struct lfs_mdir *last, *pred;
    int err = walk_to_last(lfs, head, &last);
    if (err)
        return err;
    err = lfs_find_pred(lfs, head, &pred);
    if (err)
        return err;
    gstate_orphans(lfs, -1);
    if (!pred) {
        /* not on the tail list: only the orphan mark needs clearing */
        static const uint32_t root[2] = {0, 1};
        struct lfs_mdir *r;
        struct lfs_tagops ops = {0};
        err = lfs_mdir_get(lfs, root, &r);
        return err ? err : lfs_mdir_commit(lfs, r, &ops);
    }
    return drop_pairs(lfs, pred, head, last, false);
}

/// Consistency after power loss ///

static int collect_dirstructs(struct lfs *lfs, uint32_t **out, size_t *n)
{
    static const uint32_t first[2] = {0, 1};
    uint32_t *pairs = NULL;
    size_t count = 0, cap = 0;
    uint32_t hops = 0;
    struct lfs_mdir *m;
    int err = lfs_mdir_get(lfs, first, &m);

    while (!err) {
        for (uint16_t i = 0; i < m->count; i++) {
            const struct lfs_entry *e = &m->entries[i];
            if (e->type != LFS_T_DIR || e->struct_type != LFS_T_DIRSTRUCT ||
                e->struct_len < 8)
                continue;
            if (count + 2 > cap) {
                cap = cap ? cap * 2 : 64;
                uint32_t *p = realloc(pairs, cap * sizeof(*p));
                if (!p) {
                    free(pairs);
                    return LFS_ERR_NOMEM;
                }
                pairs = p;
            }
            pairs[count++] = lfs_le32(e->struct_data);
            pairs[count++] = lfs_le32(e->struct_data + 4);
        }
        if (lfs_pair_isnull(m->tail))
            break;
        if (++hops > lfs->block_count) {
            err = LFS_ERR_CORRUPT;
            break;
        }
        uint32_t tail[2] = {m->tail[0], m->tail[1]};
        err = lfs_mdir_get(lfs, tail, &m);
    }
    if (err) {
        free(pairs);
        return err;
    }
    *out = pairs;
    *n = count / 2;
    return 0;
}

/* Remove directories that are on the tail list but no longer referenced
 * by any directory entry: a remove that lost power between its two
 * commits leaves one behind. */
static int deorphan(struct lfs *lfs)
{
    static const uint32_t first[2] = {0, 1};
    uint32_t *dirs;
    size_t ndirs;
    int err = collect_dirstructs(lfs, &dirs, &ndirs);
    if (err)
        return err;

    struct lfs_mdir *pred;
    err = lfs_mdir_get(lfs, first, &pred);
    for (uint32_t hops = 0; !err && !lfs_pair_isnull(pred->tail); hops++) {
        if (hops > lfs->block_count) {
            err = LFS_ERR_CORRUPT;
            break;
        }
        uint32_t t[2] = {pred->tail[0], pred->tail[1]};
        bool referenced = pred->split || lfs_pair_eq(t, lfs->root);
        for (size_t i = 0; !referenced && i < ndirs; i++)
            referenced = lfs_pair_eq(t, &dirs[2 * i]);
        if (referenced) {
            err = lfs_mdir_get(lfs, t, &pred);
            continue;
        }
        struct lfs_mdir *last;
        err = walk_to_last(lfs, t, &last);
        if (!err)
            err = drop_pairs(lfs, pred, t, last, false);
    }
    free(dirs);
    if (err)
        return err;

    /* clear the orphan count with a commit to the first pair */
    lfs->gstate.tag &= ~0x800003ffu;
    struct lfs_tagops ops = {0};
    err = lfs_mdir_get(lfs, first, &pred);
    return err ? err : lfs_mdir_commit(lfs, pred, &ops);
}

/* Finish what a power loss interrupted: a pending move's delete, and
 * orphaned directories.  Runs before the first change of a mount. */
int lfs_force_consistency(struct lfs *lfs)
{
    int err;

    if (lfs->consistent || lfs->read_only)
        return 0;
    if (lfs_gstate_hasmove(&lfs->gdisk)) {
        uint32_t pair[2] = {lfs->gdisk.pair[0], lfs->gdisk.pair[1]};
        uint16_t id = (uint16_t)LFS_TAG_ID(lfs->gdisk.tag);
        struct lfs_mdir *m;
        err = lfs_mdir_get(lfs, pair, &m);
        if (err)
            return err;
        lfs->gstate.tag &= ~0x7ffffc00u; /* keep the orphan bits */
        lfs->gstate.pair[0] = lfs->gstate.pair[1] = 0;
        struct lfs_tagops ops = {0};
        if (id < m->count)
            lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_DELETE, id, 0), NULL);
        err = lfs_mdir_commit(lfs, m, &ops);
        if (err)
            return err;
    }
    if (lfs_gstate_hasorphans(&lfs->gdisk)) {
        err = deorphan(lfs);
        if (err)
            return err;
    }
    lfs->consistent = true;
    return 0;
}

/* Common start of every change. */
int lfs_begin_change(struct lfs *lfs)
{
    if (lfs->read_only)
        return LFS_ERR_ROFS;
    lfs->detail[0] = '\0';
    return lfs_force_consistency(lfs);
}

/// Format and mount ///

static int superblock_decode(struct lfs *lfs, const struct lfs_mdir *m,
                             uint32_t *fields)
{
    if (m->count < 1)
        return LFS_ERR_NOTLFS;
    const struct lfs_entry *e = &m->entries[0];
    if (e->type != LFS_T_SUPERBLOCK || e->name_len != 8 ||
        memcmp(e->name, "littlefs", 8) != 0)
        return LFS_ERR_NOTLFS;
    if (e->struct_type != LFS_T_INLINESTRUCT || e->struct_len < 24) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "superblock entry is too short");
        return LFS_ERR_CORRUPT;
    }
    for (int i = 0; i < 6; i++)
        fields[i] = lfs_le32(e->struct_data + 4 * i);
    return 0;
}

/* Decode the superblock from a block read at a guessed size; used to
 * learn the block size when the caller did not give one. */
static int probe_block(struct lfs *lfs, uint64_t off, uint32_t len,
                       uint32_t *block_size, uint32_t *block_count)
{
    uint8_t *buf = malloc(len);
    struct lfs_mdir m;
    uint32_t fields[6];
    int err;

    if (!buf)
        return LFS_ERR_NOMEM;
    /* read sector by sector and decode what could be read: an unreadable
     * sector past the superblock's commit (unwritten or torn on an
     * encrypted image) must not hide the superblock */
    uint32_t step = lfs->bd->sector_size ? lfs->bd->sector_size : 512;
    uint32_t got = 0;
    while (got < len) {
        uint32_t n = len - got < step ? len - got : step;
        err = bd_read_raw(lfs->bd, off + got, buf + got, n);
        if (err)
            break;
        got += n;
    }
    if (got == 0) {
        free(buf);
        return lfs_map_bd_error(lfs, err);
    }
    memset(&m, 0, sizeof(m));
    int res = lfs_mdir_decode_block(lfs, buf, got, &m);
    err = res < 0 ? res : res == 0 ? LFS_ERR_NOTLFS
                                   : superblock_decode(lfs, &m, fields);
    if (!err) {
        *block_size = fields[1];
        *block_count = fields[2];
    }
    lfs_mdir_free_entries(&m);
    free(buf);
    return err;
}

/* Find the block size from the superblock: first from block 0 (whose
 * first commit sits at offset 0 whatever the block size is), then from a
 * copy in block 1 at each candidate size. */
static int probe_block_size(struct lfs *lfs, uint32_t *block_size)
{
    uint64_t size = lfs->bd->size;
    uint32_t len = size < (1u << 20) ? (uint32_t)size : (1u << 20);
    uint32_t count;

    if (size < 128)
        return LFS_ERR_NOTLFS;
    int err = probe_block(lfs, 0, len, block_size, &count);
    if (err == 0) {
        if ((uint64_t)*block_size * count > size) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "the image is truncated: the superblock says %u blocks "
                     "of %u bytes, the image has %llu bytes", count,
                     *block_size, (unsigned long long)size);
            return LFS_ERR_GEOMETRY;
        }
        return 0;
    }
    if (err != LFS_ERR_NOTLFS && err != LFS_ERR_CORRUPT)
        return err;
    for (uint32_t bs = 128; bs <= (1u << 20) && 2ull * bs <= size; bs *= 2) {
        uint32_t found;
        if (probe_block(lfs, bs, bs, &found, &count) == 0 && found == bs) {
            *block_size = bs;
            return 0;
        }
    }
    return LFS_ERR_NOTLFS;
}

static struct lfs *lfs_alloc_struct(struct bd *bd)
{
    struct lfs *lfs = calloc(1, sizeof(*lfs));
    if (lfs) {
        lfs->bd = bd;
        lfs->size_cache = -1;
    }
    return lfs;
}

static int lfs_set_geometry(struct lfs *lfs, uint32_t block_size)
{
    if (block_size < 104 || block_size > (1u << 20)) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "block size %u is out of range", block_size);
        return LFS_ERR_GEOMETRY;
    }
    if (bd_set_block_size(lfs->bd, block_size)) {
        snprintf(lfs->detail, sizeof(lfs->detail), "%s", lfs->bd->error);
        return LFS_ERR_GEOMETRY;
    }
    lfs->block_size = block_size;
    lfs->block_count = lfs->bd->block_count;
    /* appending into a sector that an encrypted device rewrites whole
     * would put committed data at risk when the write tears: start every
     * commit on a fresh sector there */
    lfs->prog_align = 16;
    if (lfs->bd->prog_align > lfs->prog_align)
        lfs->prog_align = lfs->bd->prog_align < block_size
                              ? lfs->bd->prog_align : block_size;
    free(lfs->buf);
    free(lfs->buf2);
    lfs->buf = malloc(block_size);
    lfs->buf2 = malloc(block_size);
    if (!lfs->buf || !lfs->buf2)
        return LFS_ERR_NOMEM;
    return 0;
}

static void lfs_free_struct(struct lfs *lfs)
{
    lfs_mdir_cache_clear(lfs);
    free(lfs->used);
    free(lfs->pinned);
    free(lfs->buf);
    free(lfs->buf2);
    free(lfs);
}

int lfs_format(struct bd *bd, const struct lfs_format_options *opts)
{
    uint32_t bs = opts->block_size;
    uint32_t name_max = opts->name_max ? opts->name_max : 255;
    uint32_t version = opts->disk_version ? opts->disk_version
                                          : LFS_DISK_VERSION_2_0;

    if (bs < 128 || bs > 65536 || (bs & (bs - 1)))
        return LFS_ERR_INVAL;
    if (name_max > LFS_NAME_MAX_LIMIT || name_max < 1)
        return LFS_ERR_INVAL;
    if (version != LFS_DISK_VERSION_2_0 && version != LFS_DISK_VERSION_2_1)
        return LFS_ERR_INVAL;

    if (bd->prog_align > bs) {
        snprintf(bd->error, sizeof(bd->error), "blocks of %u bytes are too "
                 "small for this device (at least %u needed)", bs,
                 bd->prog_align);
        return LFS_ERR_GEOMETRY;
    }
    struct lfs *lfs = lfs_alloc_struct(bd);
    if (!lfs)
        return LFS_ERR_NOMEM;
    int err = lfs_set_geometry(lfs, bs);
    if (!err && lfs->block_count < 2)
        err = LFS_ERR_GEOMETRY;
    if (err)
        goto out;
    lfs->disk_version = version;

    /* the root pair holds the superblock entry at id 0 */
    struct lfs_mdir m;
    memset(&m, 0, sizeof(m));
    m.tail[0] = m.tail[1] = LFS_BLOCK_NULL;
    m.count = 1;
    m.cap = 1;
    m.entries = calloc(1, sizeof(struct lfs_entry));
    uint8_t *name = malloc(8), *sb = malloc(24);
    if (!m.entries || !name || !sb) {
        free(m.entries);
        free(name);
        free(sb);
        err = LFS_ERR_NOMEM;
        goto out;
    }
    memcpy(name, "littlefs", 8);
    uint32_t fields[6] = {version, bs, lfs->block_count, name_max,
                          LFS_FILE_MAX_LIMIT, LFS_ATTR_MAX_LIMIT};
    for (int i = 0; i < 6; i++)
        lfs_put_le32(sb + 4 * i, fields[i]);
    m.entries[0] = (struct lfs_entry){
        .type = LFS_T_SUPERBLOCK, .name_len = 8, .name = name,
        .struct_type = LFS_T_INLINESTRUCT, .struct_len = 24,
        .struct_data = sb,
    };

    /* write both blocks, block 0 newer, so no older filesystem left on
     * the device can ever be mounted instead */
    err = lfs_mdir_write_compact(lfs, &m, 0, 1, 1, 1, m.tail, false, NULL,
                                 NULL);
    if (!err)
        err = lfs_mdir_write_compact(lfs, &m, 0, 1, 0, 2, m.tail, false,
                                     NULL, NULL);
    if (!err)
        err = lfs_bd_sync(lfs);
    lfs_mdir_free_entries(&m);
out:
    lfs_free_struct(lfs);
    return err;
}

/* Walk the tail list from {0, 1}: sum the global state and find the root
 * (the last pair that holds a superblock entry). */
static int mount_walk(struct lfs *lfs)
{
    uint32_t pair[2] = {0, 1};
    uint32_t hops = 0;

    memset(&lfs->gdisk, 0, sizeof(lfs->gdisk));
    lfs->root[0] = 0;
    lfs->root[1] = 1;
    while (!lfs_pair_isnull(pair)) {
        struct lfs_mdir *m;
        int err = lfs_mdir_get(lfs, pair, &m);
        if (err)
            return err;
        if (++hops > lfs->block_count) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "the metadata tail list loops");
            return LFS_ERR_CORRUPT;
        }
        gstate_xor(&lfs->gdisk, &m->gdelta);
        if (m->count > 0 && m->entries[0].type == LFS_T_SUPERBLOCK) {
            lfs->root[0] = m->pair[0];
            lfs->root[1] = m->pair[1];
        }
        pair[0] = m->tail[0];
        pair[1] = m->tail[1];
    }
    lfs->gstate = lfs->gdisk;
    return 0;
}

static int mount_superblock(struct lfs *lfs, uint32_t image_blocks)
{
    static const uint32_t first[2] = {0, 1};
    struct lfs_mdir *m;
    uint32_t f[6];
    int err = lfs_mdir_get(lfs, first, &m);

    if (err == LFS_ERR_CORRUPT)
        return LFS_ERR_NOTLFS;
    if (err)
        return err;
    err = superblock_decode(lfs, m, f);
    if (err)
        return err;

    if ((f[0] >> 16) != 2 || (f[0] & 0xffff) > 1) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "on-disk version %u.%u (this engine reads 2.0 and 2.1)",
                 f[0] >> 16, f[0] & 0xffff);
        return LFS_ERR_VERSION;
    }
    if (f[1] != lfs->block_size) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "the superblock says block size %u, not %u", f[1],
                 lfs->block_size);
        return LFS_ERR_GEOMETRY;
    }
    if (f[2] > image_blocks || f[2] < 2) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "the superblock says %u blocks but the image holds %u "
                 "(truncated image?)", f[2], image_blocks);
        return LFS_ERR_GEOMETRY;
    }
    lfs->disk_version = f[0];
    lfs->block_count = f[2];
    lfs->name_max = f[3] && f[3] <= LFS_NAME_MAX_LIMIT ? f[3] : 255;
    lfs->file_max = f[4] && f[4] <= LFS_FILE_MAX_LIMIT ? f[4]
                                                       : LFS_FILE_MAX_LIMIT;
    lfs->attr_max = f[5] && f[5] <= LFS_ATTR_MAX_LIMIT ? f[5]
                                                       : LFS_ATTR_MAX_LIMIT;
    /* the reference's limit: a small file is kept inline when it fits
     * in an eighth of a block (and in an attribute) */
    /* the longest name whose entry (with a file struct and an mtime)
     * still fits a compacted metadata block, even if name_max is larger */
    lfs->name_fit = lfs->block_size - 92;
    lfs->inline_max = lfs->block_size / 8;
    if (lfs->inline_max > lfs->attr_max)
        lfs->inline_max = lfs->attr_max;
    return 0;
}

int lfs_mount(struct lfs **out, struct bd *bd,
              const struct lfs_mount_options *opts)
{
    static const struct lfs_mount_options defaults = {0};
    struct lfs *lfs = lfs_alloc_struct(bd);
    uint32_t bs;
    int err;

    if (!opts)
        opts = &defaults;
    if (!lfs)
        return LFS_ERR_NOMEM;
    lfs->read_only = opts->read_only != 0;
    lfs->stamp_mtime = !opts->no_mtime;
    lfs->block_count = UINT32_MAX;
    lfs->name_max = 255;
    lfs->name_fit = UINT32_MAX;

    bs = opts->block_size;
    if (!bs) {
        err = probe_block_size(lfs, &bs);
        if (err)
            goto fail;
    }
    err = lfs_set_geometry(lfs, bs);
    if (err)
        goto fail;
    err = mount_superblock(lfs, lfs->block_count);
    if (!err && !lfs->read_only && lfs->bd->prog_align > lfs->block_size) {
        /* two blocks sharing a sector that tears as a whole: one torn
         * write could take both copies of a metadata pair */
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "blocks of %u bytes are too small to write safely on this "
                 "device (at least %u needed); mount it read-only",
                 lfs->block_size, lfs->bd->prog_align);
        err = LFS_ERR_GEOMETRY;
    }
    if (err == LFS_ERR_NOTLFS && opts->block_size) {
        /* maybe a littlefs image of another block size */
        uint32_t real;
        struct lfs *probe = lfs_alloc_struct(bd);
        if (probe && probe_block_size(probe, &real) == 0 && real != bs) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "the image has block size %u, not %u", real, bs);
            err = LFS_ERR_GEOMETRY;
        }
        if (probe)
            lfs_free_struct(probe);
        bd_set_block_size(bd, bs);
    }
    if (err)
        goto fail;
    /* drop pairs cached under the device's block count */
    lfs_mdir_cache_clear(lfs);

    err = mount_walk(lfs);
    if (err)
        goto fail;
    /* the block bitmap is built on the first allocation (alloc.c) */
    lfs->consistent = !lfs_gstate_hasmove(&lfs->gdisk) &&
                      !lfs_gstate_hasorphans(&lfs->gdisk);
    err = lfs_force_consistency(lfs);
    if (err)
        goto fail;
    *out = lfs;
    return 0;

fail:
    if (err == LFS_ERR_NOTLFS && !lfs->detail[0])
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "no littlefs superblock in block 0 or 1");
    /* keep the detail reachable for the caller's message */
    snprintf(bd->error, sizeof(bd->error), "%s", lfs->detail);
    lfs_free_struct(lfs);
    return err;
}

int lfs_unmount(struct lfs *lfs)
{
    int err = 0;

    if (!lfs)
        return 0;
    if (!lfs->read_only)
        err = lfs_nodes_flush(lfs);
    /* handles still open now point at freed state and must not be used */
    lfs_nodes_free(lfs);
    while (lfs->dirs) {
        struct lfs_dir *d = lfs->dirs;
        lfs->dirs = d->next;
        free(d);
    }
    if (!lfs->read_only) {
        int e = lfs_bd_sync(lfs);
        if (e && !err)
            err = e;
    }
    lfs_free_struct(lfs);
    return err;
}

int lfs_fs_stat(struct lfs *lfs, struct lfs_fsinfo *info)
{
    info->disk_version = lfs->disk_version;
    info->block_size = lfs->block_size;
    info->block_count = lfs->block_count;
    info->name_max = lfs->name_max;
    info->file_max = lfs->file_max;
    info->attr_max = lfs->attr_max;
    return 0;
}

int lfs_fs_sync(struct lfs *lfs)
{
    if (lfs->read_only)
        return 0;
    int err = lfs_nodes_flush(lfs);
    return err ? err : lfs_bd_sync(lfs);
}

/// Entries ///

int lfs_stat(struct lfs *lfs, const char *path, struct lfs_info *info)
{
    struct lfs_path p;
    struct lfs_res res;
    int err = resolve(lfs, path, &res, &p);

    if (err)
        return err;
    if (res.is_root) {
        memset(info, 0, sizeof(*info));
        info->type = LFS_TYPE_DIR;
        strcpy(info->name, "/");
        return 0;
    }
    return lfs_entry_info(lfs, res.m, res.id, info);
}

int lfs_mkdir(struct lfs *lfs, const char *path)
{
    struct lfs_path p;
    struct lfs_res res;
    int err = lfs_begin_change(lfs);
    if (err)
        return err;

    err = resolve(lfs, path, &res, &p);
    if (err == 0)
        return LFS_ERR_EXIST;
    if (err != LFS_ERR_NOENT || !parent_exists(&res, &p))
        return err;

    struct lfs_mdir *last;
    err = walk_to_last(lfs, res.parent, &last);
    if (err)
        return err;

    /* the new directory goes on the tail list right after its parent's
     * last pair, and takes over that pair's tail */
    struct lfs_mdir *d;
    err = lfs_mdir_create(lfs, last->tail, false, &d);
    if (err)
        goto out;
    err = lfs_mdir_write_compact(lfs, d, 0, 0, d->pair[0], d->rev, d->tail,
                                 false, NULL, d);
    if (err) {
        lfs_mdir_forget(lfs, d);
        goto out;
    }

    uint8_t pair[8];
    lfs_put_le32(pair, d->pair[0]);
    lfs_put_le32(pair + 4, d->pair[1]);
    uint16_t id = insert_position(last, res.name, res.name_len);
    struct lfs_tagops ops = {0};
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_CREATE, id, 0), NULL);
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_DIR, id, res.name_len), res.name);
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_DIRSTRUCT, id, 8), pair);
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_SOFTTAIL, LFS_ID_NONE, 8), pair);
    err = lfs_mdir_commit(lfs, last, &ops);
    if (err)
        lfs_mdir_forget(lfs, d);
out:
    lfs_unpin_all(lfs);
    return err;
}

int lfs_remove(struct lfs *lfs, const char *path)
{
    struct lfs_path p;
    struct lfs_res res;
    uint32_t head[2] = {LFS_BLOCK_NULL, LFS_BLOCK_NULL};
    int err = lfs_begin_change(lfs);
    if (err)
        return err;

    err = resolve(lfs, path, &res, &p);
    if (err)
        return err;
    if (res.is_root)
        return LFS_ERR_INVAL;

    bool is_dir = res.m->entries[res.id].type == LFS_T_DIR;
    if (is_dir) {
        err = lfs_entry_dirpair(lfs, &res.m->entries[res.id], head);
        if (err)
            return err;
        if (!dir_is_empty_chain(lfs, head, &err))
            return err ? err : LFS_ERR_NOTEMPTY;
        gstate_orphans(lfs, +1);
    }

    struct lfs_tagops ops = {0};
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_DELETE, res.id, 0), NULL);
    struct lfs_mdir *m = res.m;
    err = lfs_mdir_commit(lfs, m, &ops);
    if (err)
        return err;
    if (is_dir) {
        err = drop_dir(lfs, head);
        if (err)
            return err;
    }
    return drop_if_empty(lfs, m);
}

/* Copies of an entry's struct and attributes, taken before a commit that
 * may move the entries array. */
struct entry_copy {
    uint16_t type;
    uint16_t struct_type;
    uint16_t struct_len;
    uint8_t struct_data[LFS_ATTR_MAX_LIMIT];
    uint16_t nattrs;
    struct lfs_uattr attrs[256];
};

static int entry_copy_take(const struct lfs_entry *e, struct entry_copy *c)
{
    c->type = e->type;
    c->struct_type = e->struct_type;
    c->struct_len = e->struct_len;
    if (e->struct_len)
        memcpy(c->struct_data, e->struct_data, e->struct_len);
    c->nattrs = 0;
    for (int i = 0; i < e->nattrs && i < 256; i++) {
        c->attrs[i] = e->attrs[i];
        c->attrs[i].data = malloc(e->attrs[i].size ? e->attrs[i].size : 1);
        if (!c->attrs[i].data)
            return LFS_ERR_NOMEM;
        memcpy(c->attrs[i].data, e->attrs[i].data, e->attrs[i].size);
        c->nattrs++;
    }
    return 0;
}

static void entry_copy_free(struct entry_copy *c)
{
    for (int i = 0; i < c->nattrs; i++)
        free(c->attrs[i].data);
    c->nattrs = 0;
}

static bool path_is_prefix(const struct lfs_path *a, const struct lfs_path *b)
{
    if (a->depth > b->depth)
        return false;
    for (int i = 0; i < a->depth; i++) {
        if (a->len[i] != b->len[i] ||
            memcmp(a->name[i], b->name[i], a->len[i]) != 0)
            return false;
    }
    return true;
}

static int rename_commit(struct lfs *lfs, struct lfs_res *old,
                         struct lfs_res *new, bool replace,
                         struct entry_copy *c)
{
    struct lfs_mdir *target = new->m;
    uint16_t newid = new->id;
    int err;

    if (!replace) {
        err = walk_to_last(lfs, new->parent, &target);
        if (err)
            return err;
        newid = insert_position(target, new->name, new->name_len);
    }
    bool samepair = target == old->m;
    uint16_t oldid = old->id;
    if (samepair && !replace && newid <= oldid)
        oldid++;

    if (!samepair) {
        lfs->gstate.tag = (lfs->gstate.tag & 0x800003ffu) |
                          LFS_MKTAG(LFS_T_DELETE, old->id, 0);
        lfs->gstate.pair[0] = old->m->pair[0];
        lfs->gstate.pair[1] = old->m->pair[1];
    }

    struct lfs_tagops ops = {0};
    if (replace)
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_DELETE, newid, 0), NULL);
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_CREATE, newid, 0), NULL);
    lfs_tagops_add(&ops, LFS_MKTAG(c->type, newid, new->name_len),
                   new->name);
    if (c->struct_type)
        lfs_tagops_add(&ops, LFS_MKTAG(c->struct_type, newid, c->struct_len),
                       c->struct_data);
    for (int i = 0; i < c->nattrs && ops.count < LFS_MAX_TAGOPS - 3; i++)
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_USERATTR | c->attrs[i].type,
                                       newid, c->attrs[i].size),
                       c->attrs[i].data);
    if (samepair)
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_DELETE, oldid, 0), NULL);
    err = lfs_mdir_commit(lfs, target, &ops);
    if (err)
        return err;

    if (!samepair) {
        lfs->gstate.tag &= 0x800003ffu;
        lfs->gstate.pair[0] = lfs->gstate.pair[1] = 0;
        struct lfs_tagops del = {0};
        lfs_tagops_add(&del, LFS_MKTAG(LFS_T_DELETE, old->id, 0), NULL);
        err = lfs_mdir_commit(lfs, old->m, &del);
        if (err)
            return err;
    }
    return 0;
}

int lfs_rename(struct lfs *lfs, const char *oldpath, const char *newpath)
{
    struct lfs_path op, np;
    struct lfs_res old, new;
    uint32_t prevhead[2] = {LFS_BLOCK_NULL, LFS_BLOCK_NULL};
    int err = lfs_begin_change(lfs);
    if (err)
        return err;

    err = resolve(lfs, oldpath, &old, &op);
    if (err)
        return err;
    if (old.is_root)
        return LFS_ERR_INVAL;
    err = resolve(lfs, newpath, &new, &np);
    if (err && (err != LFS_ERR_NOENT || !parent_exists(&new, &np)))
        return err;
    if (new.is_root)
        return LFS_ERR_INVAL;
    bool replace = err == 0;
    uint16_t oldtype = old.m->entries[old.id].type;

    if (replace && new.m == old.m && new.id == old.id)
        return 0;
    if (oldtype == LFS_T_DIR && path_is_prefix(&op, &np))
        return LFS_ERR_INVAL;
    if (replace) {
        uint16_t newtype = new.m->entries[new.id].type;
        if (oldtype == LFS_T_DIR && newtype != LFS_T_DIR)
            return LFS_ERR_NOTDIR;
        if (oldtype != LFS_T_DIR && newtype == LFS_T_DIR)
            return LFS_ERR_ISDIR;
        if (newtype == LFS_T_DIR) {
            err = lfs_entry_dirpair(lfs, &new.m->entries[new.id], prevhead);
            if (err)
                return err;
            if (!dir_is_empty_chain(lfs, prevhead, &err))
                return err ? err : LFS_ERR_NOTEMPTY;
            gstate_orphans(lfs, +1);
        }
    }

    /* handles open on the source follow it to its new name */
    int nmoved = 0;
    struct lfs_node **moved = lfs_nodes_at(lfs, old.m, old.id, &nmoved);
    struct entry_copy *c = malloc(sizeof(*c));
    if (!c) {
        free(moved);
        return LFS_ERR_NOMEM;
    }
    err = entry_copy_take(&old.m->entries[old.id], c);
    if (!err)
        err = rename_commit(lfs, &old, &new, replace, c);
    entry_copy_free(c);
    free(c);
    if (err) {
        /* a failed commit has reset the wanted global state */
        free(moved);
        return err;
    }

    struct lfs_res now;
    struct lfs_path tmp;
    if (resolve(lfs, newpath, &now, &tmp) == 0) {
        for (int i = 0; i < nmoved; i++) {
            moved[i]->removed = false;
            moved[i]->loc.pair[0] = now.m->pair[0];
            moved[i]->loc.pair[1] = now.m->pair[1];
            moved[i]->loc.id = now.id;
        }
    }
    free(moved);

    if (!lfs_pair_isnull(prevhead)) {
        err = drop_dir(lfs, prevhead);
        if (err)
            return err;
    }
    if (old.m != new.m || !replace) {
        struct lfs_mdir *oldm;
        if (lfs_mdir_get(lfs, old.m->pair, &oldm) == 0)
            return drop_if_empty(lfs, oldm);
    }
    return 0;
}

/// Attributes ///

static int attr_target(struct lfs *lfs, const char *path,
                       struct lfs_mdir **m, uint16_t *id)
{
    struct lfs_path p;
    struct lfs_res res;
    int err = resolve(lfs, path, &res, &p);

    if (err)
        return err;
    if (res.is_root) {
        /* the root has no entry: like the reference, keep its attributes
         * on the superblock entry (id 0 of the root pair) */
        err = lfs_mdir_get(lfs, lfs->root, m);
        *id = 0;
        return err;
    }
    *m = res.m;
    *id = res.id;
    return 0;
}

ssize_t lfs_entry_getattr(struct lfs *lfs, const struct lfs_mdir *m,
                          uint16_t id, uint8_t type, void *buf, size_t size)
{
    (void)lfs;
    if (id >= m->count)
        return LFS_ERR_NOENT;
    const struct lfs_uattr *a = lfs_entry_attr(&m->entries[id], type);
    if (!a)
        return LFS_ERR_NOATTR;
    size_t n = a->size < size ? a->size : size;
    if (n)
        memcpy(buf, a->data, n);
    return a->size;
}

int lfs_entry_setattr(struct lfs *lfs, struct lfs_mdir *m, uint16_t id,
                      uint8_t type, const void *buf, size_t size, bool remove)
{
    if (id >= m->count)
        return LFS_ERR_NOENT;
    if (!remove && size > lfs->attr_max)
        return LFS_ERR_NOSPC;
    if (remove && !lfs_entry_attr(&m->entries[id], type))
        return 0;

    struct lfs_tagops ops = {0};
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_USERATTR | type, id,
                                   remove ? 0x3ffu : (uint32_t)size), buf);
    return lfs_mdir_commit(lfs, m, &ops);
}

ssize_t lfs_getattr(struct lfs *lfs, const char *path, uint8_t type,
                    void *buf, size_t size)
{
    struct lfs_mdir *m;
    uint16_t id;
    int err = attr_target(lfs, path, &m, &id);

    return err ? err : lfs_entry_getattr(lfs, m, id, type, buf, size);
}

int lfs_setattr(struct lfs *lfs, const char *path, uint8_t type,
                const void *buf, size_t size)
{
    struct lfs_mdir *m;
    uint16_t id;
    int err = lfs_begin_change(lfs);

    if (!err)
        err = attr_target(lfs, path, &m, &id);
    if (err)
        return err;
    /* a file open with unsynced writes would stamp the time of its next
     * sync over an explicit mtime: hand the value to it as well */
    if (type == LFS_ATTR_MTIME)
        lfs_node_note_mtime(lfs, m, id, buf, size);
    return lfs_entry_setattr(lfs, m, id, type, buf, size, false);
}

int lfs_removeattr(struct lfs *lfs, const char *path, uint8_t type)
{
    struct lfs_mdir *m;
    uint16_t id;
    int err = lfs_begin_change(lfs);

    if (!err)
        err = attr_target(lfs, path, &m, &id);
    return err ? err : lfs_entry_setattr(lfs, m, id, type, NULL, 0, true);
}

/// Directories ///

int lfs_dir_open(struct lfs *lfs, struct lfs_dir **out, const char *path)
{
    struct lfs_path p;
    struct lfs_res res;
    uint32_t head[2];
    int err = resolve(lfs, path, &res, &p);

    if (err)
        return err;
    if (res.is_root) {
        head[0] = lfs->root[0];
        head[1] = lfs->root[1];
    } else {
        if (res.m->entries[res.id].type != LFS_T_DIR)
            return LFS_ERR_NOTDIR;
        err = lfs_entry_dirpair(lfs, &res.m->entries[res.id], head);
        if (err)
            return err;
    }
    struct lfs_mdir *m;
    err = lfs_mdir_get(lfs, head, &m);
    if (err)
        return err;

    struct lfs_dir *d = calloc(1, sizeof(*d));
    if (!d)
        return LFS_ERR_NOMEM;
    d->lfs = lfs;
    d->head[0] = head[0];
    d->head[1] = head[1];
    d->pos.pair[0] = head[0];
    d->pos.pair[1] = head[1];
    d->next = lfs->dirs;
    lfs->dirs = d;
    *out = d;
    return 0;
}

int lfs_dir_read(struct lfs_dir *d, struct lfs_info *info)
{
    struct lfs *lfs = d->lfs;
    uint32_t hops = 0;

    if (!lfs)
        return LFS_ERR_BADF;
    while (!d->end) {
        struct lfs_mdir *m;
        int err = lfs_mdir_get(lfs, d->pos.pair, &m);
        if (err)
            return err;
        if (d->pos.id >= m->count) {
            if (!m->split) {
                d->end = true;
                break;
            }
            if (++hops > lfs->block_count)
                return LFS_ERR_CORRUPT;
            d->pos.pair[0] = m->tail[0];
            d->pos.pair[1] = m->tail[1];
            d->pos.id = 0;
            continue;
        }
        uint16_t id = d->pos.id++;
        if (entry_visible(lfs, m, id))
            return lfs_entry_info(lfs, m, id, info) ?: 1;
    }
    return 0;
}

int lfs_dir_rewind(struct lfs_dir *d)
{
    d->pos.pair[0] = d->head[0];
    d->pos.pair[1] = d->head[1];
    d->pos.id = 0;
    d->end = false;
    return 0;
}

int lfs_dir_close(struct lfs_dir *d)
{
    if (!d)
        return 0;
    if (d->lfs) {
        struct lfs_dir **pp = &d->lfs->dirs;
        while (*pp && *pp != d)
            pp = &(*pp)->next;
        if (*pp)
            *pp = d->next;
    }
    free(d);
    return 0;
}

/// Times ///

void lfs_time_encode(const struct timespec *ts,
                     uint8_t out[LFS_TIME_ATTR_SIZE])
{
    int64_t sec = ts->tv_sec < 0 ? 0 : (int64_t)ts->tv_sec;
    uint64_t days = (uint64_t)sec / 86400u;
    uint64_t ps = ((uint64_t)sec % 86400u) * 1000000000000ull +
                  (uint64_t)(ts->tv_nsec < 0 ? 0 : ts->tv_nsec) * 1000u;

    if (days > UINT32_MAX)
        days = UINT32_MAX;
    lfs_put_le32(out, (uint32_t)days);
    lfs_put_le32(out + 4, (uint32_t)ps);
    lfs_put_le32(out + 8, (uint32_t)(ps >> 32));
}

int lfs_time_decode(const uint8_t *buf, size_t len, struct timespec *ts)
{
    if (len != LFS_TIME_ATTR_SIZE)
        return LFS_ERR_CORRUPT;
    uint64_t days = lfs_le32(buf);
    uint64_t ps = (uint64_t)lfs_le32(buf + 4) |
                  (uint64_t)lfs_le32(buf + 8) << 32;
    if (ps >= 86400ull * 1000000000000ull)
        return LFS_ERR_CORRUPT;
    ts->tv_sec = (time_t)(days * 86400u + ps / 1000000000000ull);
    ts->tv_nsec = (long)((ps % 1000000000000ull) / 1000u);
    return 0;
}

/// Files: finding and creating their entries ///

/*
 * Find the regular file at path, creating an empty one when it is missing
 * and create is set.  *created is set when the file was created.
 */
int lfs_create_entry(struct lfs *lfs, const char *path, struct lfs_mdir **m,
                     uint16_t *id, bool *created, bool create)
{
    struct lfs_path p;
    struct lfs_res res;
    int err = resolve(lfs, path, &res, &p);

    *created = false;
    if (err == 0) {
        if (res.is_root)
            return LFS_ERR_ISDIR;
        *m = res.m;
        *id = res.id;
        return 0;
    }
    if (err != LFS_ERR_NOENT || !parent_exists(&res, &p) || !create)
        return err;

    err = lfs_begin_change(lfs);
    if (err)
        return err;
    struct lfs_mdir *last;
    err = walk_to_last(lfs, res.parent, &last);
    if (err)
        return err;

    uint8_t mtime[LFS_TIME_ATTR_SIZE];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    lfs_time_encode(&now, mtime);

    uint16_t nid = insert_position(last, res.name, res.name_len);
    struct lfs_tagops ops = {0};
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_CREATE, nid, 0), NULL);
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_REG, nid, res.name_len), res.name);
    lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_INLINESTRUCT, nid, 0), NULL);
    if (lfs->stamp_mtime)
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_USERATTR | LFS_ATTR_MTIME, nid,
                                       LFS_TIME_ATTR_SIZE), mtime);
    err = lfs_mdir_commit(lfs, last, &ops);
    if (err)
        return err;

    /* a split may have moved the new entry to another pair */
    err = lookup(lfs, res.parent, res.name, res.name_len, m, id);
    if (err)
        return err;
    *created = true;
    return 0;
}
