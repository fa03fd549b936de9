/*
 * The block allocator.
 *
 * littlefs keeps no free list on disk: a block is free when nothing
 * references it.  We keep a bitmap of blocks known to be in use, built by
 * walking the whole filesystem at the first allocation of a mount.
 * Allocation takes the next clear bit after a cursor and sets it.  Blocks
 * freed by later commits are not cleared one by one.  When the bitmap runs
 * out, the device is synced (so the commits that freed blocks are durable
 * before their blocks are
 * reused) and the bitmap is rebuilt by another walk.
 *
 * The walk covers the metadata tail list and also the directory tree,
 * because chamelon does not put its directories on the tail list; plus
 * the blocks of open files and of unfinished operations.
 *
 * FUTURE: the walk reads one pointer from every block of every file, so
 * a rebuild costs time proportional to the data stored; caching block
 * lists of closed files would make it proportional to the metadata.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs_internal.h"

struct scan {
    struct lfs *lfs;
    uint8_t *bitmap;
    uint8_t *seen_pairs;   /* pairs already walked, by their first block */
};

static void mark(uint8_t *bitmap, uint32_t block)
{
    bitmap[block / 8] |= (uint8_t)(1u << (block % 8));
}

static bool is_marked(const uint8_t *bitmap, uint32_t block)
{
    return bitmap[block / 8] & (1u << (block % 8));
}

static int mark_cb(void *ctx, uint32_t block)
{
    struct scan *s = ctx;
    mark(s->bitmap, block);
    return 0;
}

static int scan_entries(struct scan *s, struct lfs_mdir *m, uint32_t *dirs,
                        size_t *ndirs, size_t cap)
{
    for (uint16_t i = 0; i < m->count; i++) {
        const struct lfs_entry *e = &m->entries[i];
        if (e->struct_type == LFS_T_CTZSTRUCT && e->struct_len >= 8 &&
            e->type == LFS_T_REG) {
            int err = lfs_ctz_traverse(s->lfs, lfs_le32(e->struct_data),
                                       lfs_le32(e->struct_data + 4), mark_cb,
                                       s);
            /* a damaged file must not make the whole image unusable: its
             * readable blocks stay marked, reading it reports the damage,
             * and lfs_check lists it */
            if (err && err != LFS_ERR_CORRUPT && err != LFS_ERR_AUTH &&
                err != LFS_ERR_UNWRITTEN)
                return err;
        } else if (e->type == LFS_T_DIR && e->struct_type == LFS_T_DIRSTRUCT &&
                   e->struct_len >= 8 && dirs && *ndirs + 2 <= cap) {
            dirs[(*ndirs)++] = lfs_le32(e->struct_data);
            dirs[(*ndirs)++] = lfs_le32(e->struct_data + 4);
        }
    }
    return 0;
}

/* Walk a chain of pairs from pair, following every tail (soft tails too
 * when all is set), marking the pairs and the files in them. */
static int scan_chain(struct scan *s, const uint32_t start[2], bool all,
                      uint32_t *dirs, size_t *ndirs, size_t cap)
{
    struct lfs *lfs = s->lfs;
    uint32_t pair[2] = {start[0], start[1]};

    while (!lfs_pair_isnull(pair)) {
        if (pair[0] >= lfs->block_count || pair[1] >= lfs->block_count)
            return LFS_ERR_CORRUPT;
        if (is_marked(s->seen_pairs, pair[0]) ||
            is_marked(s->seen_pairs, pair[1]))
            return 0;
        mark(s->seen_pairs, pair[0]);
        mark(s->seen_pairs, pair[1]);

        struct lfs_mdir *m;
        int err = lfs_mdir_get(lfs, pair, &m);
        if (err)
            return err;
        mark(s->bitmap, m->pair[0]);
        mark(s->bitmap, m->pair[1]);
        err = scan_entries(s, m, dirs, ndirs, cap);
        if (err)
            return err;
        if (!all && !m->split)
            return 0;
        pair[0] = m->tail[0];
        pair[1] = m->tail[1];
    }
    return 0;
}

/* Walk the directory tree from the root, for directories missing from
 * the tail list.  The pending list grows as subdirectories are found. */
static int scan_tree(struct scan *s)
{
    struct lfs *lfs = s->lfs;
    size_t cap = 2 * (size_t)lfs->block_count + 4;
    uint32_t *dirs = malloc(cap * sizeof(*dirs));
    size_t ndirs = 0;
    int err = 0;

    if (!dirs)
        return LFS_ERR_NOMEM;
    /* pairs already walked through the tail list are known; start over
     * for the tree walk so their subdirectories are found too */
    memset(s->seen_pairs, 0, (lfs->block_count + 7) / 8);
    dirs[ndirs++] = lfs->root[0];
    dirs[ndirs++] = lfs->root[1];
    for (size_t i = 0; i < ndirs && !err; i += 2) {
        err = scan_chain(s, &dirs[i], false, dirs, &ndirs, cap);
        /* an unreadable directory must not make the image unusable; its
         * entries cannot be reached, and lfs_check reports it */
        if (i > 0 && (err == LFS_ERR_CORRUPT || err == LFS_ERR_AUTH ||
                      err == LFS_ERR_UNWRITTEN))
            err = 0;
    }
    free(dirs);
    return err;
}

int lfs_alloc_scan(struct lfs *lfs, uint8_t *bitmap, bool include_open)
{
    static const uint32_t first[2] = {0, 1};
    size_t bytes = (lfs->block_count + 7) / 8;
    struct scan s = {.lfs = lfs, .bitmap = bitmap};
    int err;

    s.seen_pairs = calloc(1, bytes);
    if (!s.seen_pairs)
        return LFS_ERR_NOMEM;
    memset(bitmap, 0, bytes);

    err = scan_chain(&s, first, true, NULL, NULL, 0);
    if (!err)
        err = scan_tree(&s);
    free(s.seen_pairs);
    if (err)
        return err;

    if (include_open) {
        for (struct lfs_node *n = lfs->nodes; n; n = n->next) {
            if (n->is_inline)
                continue;
            if (n->blocks_loaded) {
                for (uint32_t i = 0; i < n->nblocks; i++)
                    mark(bitmap, n->blocks[i]);
                /* blocks past the end may still be the committed copy */
            }
            if (n->ctz_size) {
                err = lfs_ctz_traverse(lfs, n->ctz_head, n->ctz_size,
                                       mark_cb, &s);
                if (err)
                    return err;
            }
        }
        for (int i = 0; i < lfs->npinned; i++)
            mark(bitmap, lfs->pinned[i]);
        for (int i = 0; i < lfs->nprotect; i++) {
            err = lfs_ctz_traverse(lfs, lfs->protect[i][0],
                                   lfs->protect[i][1], mark_cb, &s);
            if (err && err != LFS_ERR_CORRUPT && err != LFS_ERR_AUTH &&
                err != LFS_ERR_UNWRITTEN)
                return err;
        }
    }
    return 0;
}

int lfs_alloc_init(struct lfs *lfs)
{
    uint8_t *used = malloc((lfs->block_count + 7) / 8);
    if (!used)
        return LFS_ERR_NOMEM;
    int err = lfs_alloc_scan(lfs, used, true);
    if (err) {
        free(used);
        return err;
    }
    free(lfs->used);
    lfs->used = used;
    lfs->alloc_cursor = 0;
    return 0;
}

static bool alloc_find(struct lfs *lfs, uint32_t *block)
{
    uint32_t count = lfs->block_count;

    for (uint32_t k = 0; k < count; k++) {
        uint32_t b = lfs->alloc_cursor + k;
        if (b >= count)
            b -= count;
        if (!is_marked(lfs->used, b)) {
            mark(lfs->used, b);
            lfs->alloc_cursor = b + 1 >= count ? 0 : b + 1;
            *block = b;
            return true;
        }
    }
    return false;
}

int lfs_alloc(struct lfs *lfs, uint32_t *block)
{
    if (lfs->read_only)
        return LFS_ERR_ROFS;
    /* the bitmap is built on the first allocation, not at mount: the walk
     * reads a pointer from every file block, and sessions that only read
     * never need it */
    if (!lfs->used) {
        int err = lfs_alloc_init(lfs);
        if (err)
            return err;
    }
    lfs->size_cache = -1;
    if (alloc_find(lfs, block))
        return 0;

    /* freed blocks become reusable only once the commits that freed them
     * are on disk */
    int err = lfs_bd_sync(lfs);
    if (err)
        return err;
    err = lfs_alloc_scan(lfs, lfs->used, true);
    if (err)
        return err;
    if (alloc_find(lfs, block))
        return 0;
    snprintf(lfs->detail, sizeof(lfs->detail), "all %u blocks are in use",
             lfs->block_count);
    return LFS_ERR_NOSPC;
}

int lfs_pin(struct lfs *lfs, uint32_t block)
{
    if (lfs->npinned == lfs->pinned_cap) {
        int cap = lfs->pinned_cap ? lfs->pinned_cap * 2 : 16;
        uint32_t *p = realloc(lfs->pinned, (size_t)cap * sizeof(*p));
        if (!p)
            return LFS_ERR_NOMEM;
        lfs->pinned = p;
        lfs->pinned_cap = cap;
    }
    lfs->pinned[lfs->npinned++] = block;
    return 0;
}

void lfs_unpin_all(struct lfs *lfs)
{
    lfs->npinned = 0;
}

/* Count by a full walk, cached until the next allocation or commit:
 * statvfs calls come often and the walk reads every file's blocks. */
int64_t lfs_fs_size(struct lfs *lfs)
{
    size_t bytes = (lfs->block_count + 7) / 8;
    uint8_t *bitmap;
    int64_t count = 0;

    if (lfs->size_cache >= 0)
        return lfs->size_cache;
    bitmap = malloc(bytes);
    if (!bitmap)
        return LFS_ERR_NOMEM;
    int err = lfs_alloc_scan(lfs, bitmap, true);
    if (err) {
        free(bitmap);
        return err;
    }
    for (uint32_t b = 0; b < lfs->block_count; b++)
        count += is_marked(bitmap, b);
    free(bitmap);
    lfs->size_cache = count;
    return count;
}
