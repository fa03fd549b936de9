/*
 * Files: open handles, reads, writes, truncation and syncing.
 *
 * Every handle open on one file shares a struct lfs_node, so writes
 * through one handle are seen at once by the others.  A node holds the
 * file's contents as an inline buffer (small files) or as the array of
 * its CTZ skip-list blocks.
 *
 * Writes are copy-on-write: a committed block is never written again.  A
 * block changed since the last commit is "fresh": it is referenced by no
 * committed metadata, so later writes may change it in place.  Because
 * every block points at earlier ones, changing block i moves it, and all
 * later blocks must then be rewritten with new pointers before the commit
 * (rewrite_from).  Appending, the common case, only ever adds blocks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs_internal.h"

/// Open nodes and the hooks that keep their locations current ///

static bool loc_at(const struct lfs_loc *loc, const uint32_t pair[2])
{
    return lfs_pair_eq(loc->pair, pair);
}

void lfs_open_splice(struct lfs *lfs, const uint32_t pair[2], uint16_t id,
                     int delta)
{
    for (struct lfs_node *n = lfs->nodes; n; n = n->next) {
        if (n->removed || !loc_at(&n->loc, pair))
            continue;
        if (delta > 0 && n->loc.id >= id)
            n->loc.id++;
        else if (delta < 0 && n->loc.id == id)
            n->removed = true;
        else if (delta < 0 && n->loc.id > id)
            n->loc.id--;
    }
    for (struct lfs_dir *d = lfs->dirs; d; d = d->next) {
        if (!loc_at(&d->pos, pair))
            continue;
        if (delta > 0 && id < d->pos.id)
            d->pos.id++;
        else if (delta < 0 && id < d->pos.id)
            d->pos.id--;
    }
}

void lfs_open_split(struct lfs *lfs, const uint32_t oldpair[2],
                    uint16_t split, const uint32_t newpair[2])
{
    for (struct lfs_node *n = lfs->nodes; n; n = n->next) {
        if (!n->removed && loc_at(&n->loc, oldpair) && n->loc.id >= split) {
            n->loc.pair[0] = newpair[0];
            n->loc.pair[1] = newpair[1];
            n->loc.id -= split;
        }
    }
    for (struct lfs_dir *d = lfs->dirs; d; d = d->next) {
        if (loc_at(&d->pos, oldpair) && d->pos.id >= split) {
            d->pos.pair[0] = newpair[0];
            d->pos.pair[1] = newpair[1];
            d->pos.id -= split;
        }
    }
}

void lfs_open_drop(struct lfs *lfs, const uint32_t pair[2],
                   const uint32_t next[2], bool dir_removed)
{
    for (struct lfs_dir *d = lfs->dirs; d; d = d->next) {
        if (dir_removed && lfs_pair_eq(d->head, pair)) {
            d->removed = true;
            d->end = true;
        }
        if (!loc_at(&d->pos, pair))
            continue;
        if (dir_removed) {
            d->end = true;
        } else {
            d->pos.pair[0] = next[0];
            d->pos.pair[1] = next[1];
            d->pos.id = 0;
        }
    }
}

static struct lfs_node *node_find(struct lfs *lfs, const uint32_t pair[2],
                                  uint16_t id)
{
    for (struct lfs_node *n = lfs->nodes; n; n = n->next) {
        if (!n->removed && loc_at(&n->loc, pair) && n->loc.id == id)
            return n;
    }
    return NULL;
}

struct lfs_node **lfs_nodes_at(struct lfs *lfs, const struct lfs_mdir *m,
                               uint16_t id, int *count)
{
    struct lfs_node **list = NULL;
    int n = 0;

    for (struct lfs_node *node = lfs->nodes; node; node = node->next) {
        if (node->removed || !loc_at(&node->loc, m->pair) ||
            node->loc.id != id)
            continue;
        struct lfs_node **l = realloc(list, (n + 1) * sizeof(*l));
        if (!l)
            break;
        list = l;
        list[n++] = node;
    }
    *count = n;
    return list;
}

static void node_free(struct lfs_node *n)
{
    free(n->inline_buf);
    free(n->blocks);
    free(n->fresh);
    free(n->cache);
    free(n);
}

void lfs_nodes_free(struct lfs *lfs)
{
    while (lfs->files) {
        struct lfs_file *f = lfs->files;
        lfs->files = f->next;
        free(f);
    }
    while (lfs->nodes) {
        struct lfs_node *n = lfs->nodes;
        lfs->nodes = n->next;
        node_free(n);
    }
}

/// Node contents ///

static int node_reserve_blocks(struct lfs_node *n, uint32_t count)
{
    if (count <= n->blocks_cap)
        return 0;
    uint32_t cap = n->blocks_cap ? n->blocks_cap : 16;
    while (cap < count)
        cap *= 2;
    uint32_t *b = realloc(n->blocks, cap * sizeof(*b));
    if (!b)
        return LFS_ERR_NOMEM;
    n->blocks = b;
    uint8_t *f = realloc(n->fresh, cap);
    if (!f)
        return LFS_ERR_NOMEM;
    memset(f + n->blocks_cap, 0, cap - n->blocks_cap);
    n->fresh = f;
    n->blocks_cap = cap;
    return 0;
}

/* Read the block list of a committed CTZ file into memory. */
static int node_load_blocks(struct lfs_node *n)
{
    struct lfs *lfs = n->lfs;

    if (n->blocks_loaded || n->is_inline)
        return 0;
    if (n->nblocks == 0) {
        /* truncated to nothing: the old list is not needed */
        n->rewrite_from = 0;
        n->moved_from = UINT32_MAX;
        n->blocks_loaded = true;
        return 0;
    }
    /* the committed list may be longer than the file after a truncate */
    uint32_t committed = lfs_ctz_count(lfs->block_size, n->ctz_size);
    int err = node_reserve_blocks(n, committed > n->nblocks ? committed
                                                            : n->nblocks);
    if (err)
        return err;
    err = lfs_ctz_load(lfs, n->ctz_head, n->ctz_size, n->blocks, committed);
    if (err)
        return err;
    memset(n->fresh, 0, n->blocks_cap);
    n->rewrite_from = n->nblocks;
    n->moved_from = UINT32_MAX;
    n->blocks_loaded = true;
    return 0;
}

static int node_load(struct lfs_node *n, const struct lfs_entry *e)
{
    struct lfs *lfs = n->lfs;

    n->is_inline = true;
    n->size = 0;
    if (e->struct_type == LFS_T_CTZSTRUCT && e->struct_len >= 8) {
        n->is_inline = false;
        n->ctz_head = lfs_le32(e->struct_data);
        n->ctz_size = lfs_le32(e->struct_data + 4);
        n->size = n->ctz_size;
        if (n->size > lfs->file_max) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "file size %u is larger than the image allows",
                     n->ctz_size);
            return LFS_ERR_CORRUPT;
        }
        n->nblocks = lfs_ctz_count(lfs->block_size, n->size);
        if (n->nblocks > lfs->block_count) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "file size %u needs more blocks than the image has",
                     n->ctz_size);
            return LFS_ERR_CORRUPT;
        }
        if (n->nblocks && n->ctz_head >= lfs->block_count) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "file head block %u is outside the image", n->ctz_head);
            return LFS_ERR_CORRUPT;
        }
        return 0;
    }
    if (e->struct_type == LFS_T_INLINESTRUCT) {
        n->size = e->struct_len;
        n->inline_cap = e->struct_len ? e->struct_len : 16;
        n->inline_buf = malloc(n->inline_cap);
        if (!n->inline_buf)
            return LFS_ERR_NOMEM;
        memcpy(n->inline_buf, e->struct_data, e->struct_len);
    }
    return 0;
}

static int node_cache_alloc(struct lfs_node *n)
{
    if (!n->cache) {
        n->cache = malloc(n->lfs->block_size);
        if (!n->cache)
            return LFS_ERR_NOMEM;
    }
    return 0;
}

/* Bytes of block index that hold header or data for the current size. */
static uint32_t block_used(struct lfs_node *n, uint32_t index)
{
    uint32_t bs = n->lfs->block_size, boff;
    if (n->size == 0)
        return 0;
    uint32_t last = lfs_ctz_index(bs, n->size - 1, &boff);
    if (index < last)
        return bs;
    return index == last ? boff + 1 : 0;
}

/* Bytes to write for a block whose first used bytes matter: whole
 * device sectors, so an encrypted device never reads back (and must
 * authenticate) the stale sector it would otherwise merge with. */
static uint32_t prog_len(const struct lfs *lfs, uint32_t used)
{
    uint32_t sector = lfs->bd->sector_size ? lfs->bd->sector_size : 1;
    uint64_t len = ((uint64_t)used + sector - 1) / sector * sector;
    return len < lfs->block_size ? (uint32_t)len : lfs->block_size;
}

static void put_header(struct lfs_node *n, uint32_t index, uint8_t *buf)
{
    uint32_t words = lfs_ctz_header(index) / 4;
    for (uint32_t k = 0; k < words; k++)
        lfs_put_le32(buf + 4 * k, n->blocks[index - (1u << k)]);
}

static int node_cache_flush(struct lfs_node *n)
{
    if (!n->cache_valid || !n->cache_dirty)
        return 0;

    uint32_t index = n->cache_index;
    uint32_t used = block_used(n, index);
    n->cache_dirty = false;
    if (used == 0)
        return 0;
    put_header(n, index, n->cache);
    if (index + 1 > n->flushed_hi)
        n->flushed_hi = index + 1;
    return lfs_bd_prog(n->lfs, n->blocks[index], 0, n->cache,
                       prog_len(n->lfs, used));
}

/* Give block index a new physical block (its old one, if any, stays
 * untouched for the committed version of the file). */
static int node_move_block(struct lfs_node *n, uint32_t index)
{
    uint32_t block;
    int err = lfs_alloc(n->lfs, &block);
    if (err)
        return err;
    n->blocks[index] = block;
    n->fresh[index] = 1;
    /* later blocks already on disk point at the old block */
    if (index + 1 < n->flushed_hi && index < n->moved_from)
        n->moved_from = index;
    return 0;
}

/* Load block index into the cache, ready to be changed.  with_old is
 * false when the caller overwrites every byte that matters, so the
 * current contents need not be read. */
static int node_cache_take(struct lfs_node *n, uint32_t index,
                           uint32_t old_nblocks, bool with_old)
{
    struct lfs *lfs = n->lfs;
    int err;

    if (n->cache_valid && n->cache_index == index) {
        /* a clean copy of a committed block: move it before changing it */
        if (index < old_nblocks && !n->fresh[index]) {
            if (index + 1 < n->rewrite_from)
                n->rewrite_from = index + 1;
            return node_move_block(n, index);
        }
        return 0;
    }
    err = node_cache_flush(n);
    if (err)
        return err;
    err = node_cache_alloc(n);
    if (err)
        return err;

    n->cache_valid = false;
    memset(n->cache, 0, lfs->block_size);
    if (index < old_nblocks && with_old) {
        /* only the bytes the file uses were ever written */
        err = lfs_bd_read(lfs, n->blocks[index], 0, n->cache,
                          block_used(n, index));
        if (err)
            return err;
    }
    if (index >= old_nblocks || !n->fresh[index]) {
        if (index < old_nblocks && index + 1 < n->rewrite_from)
            n->rewrite_from = index + 1;
        err = node_move_block(n, index);
        if (err)
            return err;
    }
    n->cache_index = index;
    n->cache_valid = true;
    return 0;
}

/// Inline and CTZ conversions ///

static int inline_reserve(struct lfs_node *n, size_t size)
{
    if (size <= n->inline_cap)
        return 0;
    size_t cap = n->inline_cap ? n->inline_cap : 16;
    while (cap < size)
        cap *= 2;
    uint8_t *p = realloc(n->inline_buf, cap);
    if (!p)
        return LFS_ERR_NOMEM;
    n->inline_buf = p;
    n->inline_cap = cap;
    return 0;
}

static ssize_t ctz_write(struct lfs_node *n, const uint8_t *data,
                         size_t size, uint64_t off);

/* Move inline contents out into blocks: the file outgrew its entry. */
static int node_uninline(struct lfs_node *n)
{
    uint64_t size = n->size;
    uint8_t *data = n->inline_buf;

    n->inline_buf = NULL;
    n->inline_cap = 0;
    n->is_inline = false;
    n->blocks_loaded = true;
    n->nblocks = 0;
    n->size = 0;
    n->ctz_head = LFS_BLOCK_NULL;
    n->ctz_size = 0;
    n->rewrite_from = 0;
    n->moved_from = UINT32_MAX;
    ssize_t r = size ? ctz_write(n, data, size, 0) : 0;
    free(data);
    return r < 0 ? (int)r : 0;
}

static ssize_t node_read(struct lfs_node *n, uint8_t *buf, size_t size,
                         uint64_t off);

/* Bring a small CTZ file back into its entry, freeing its blocks. */
static int node_reinline(struct lfs_node *n)
{
    size_t size = (size_t)n->size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data)
        return LFS_ERR_NOMEM;
    ssize_t r = node_read(n, data, size, 0);
    if (r < 0) {
        free(data);
        return (int)r;
    }
    free(n->inline_buf);
    n->inline_buf = data;
    n->inline_cap = size ? size : 1;
    n->is_inline = true;
    n->blocks_loaded = false;
    n->nblocks = 0;
    n->cache_valid = false;
    n->cache_dirty = false;
    return 0;
}

/// Reading and writing ///

static ssize_t node_read(struct lfs_node *n, uint8_t *buf, size_t size,
                         uint64_t off)
{
    struct lfs *lfs = n->lfs;

    if (off >= n->size)
        return 0;
    if (size > n->size - off)
        size = (size_t)(n->size - off);
    if (n->is_inline) {
        memcpy(buf, n->inline_buf + off, size);
        return (ssize_t)size;
    }
    int err = node_load_blocks(n);
    if (err)
        return err;

    size_t done = 0;
    while (done < size) {
        uint32_t boff;
        uint32_t index = lfs_ctz_index(lfs->block_size, off + done, &boff);
        size_t chunk = lfs->block_size - boff;
        if (chunk > size - done)
            chunk = size - done;
        if (n->cache_valid && n->cache_index == index) {
            memcpy(buf + done, n->cache + boff, chunk);
        } else {
            err = lfs_bd_read(lfs, n->blocks[index], boff, buf + done, chunk);
            if (err)
                return err;
        }
        done += chunk;
    }
    return (ssize_t)done;
}

/* Write to a CTZ file; data NULL writes zeros. */
static ssize_t ctz_write(struct lfs_node *n, const uint8_t *data,
                         size_t size, uint64_t off)
{
    struct lfs *lfs = n->lfs;
    uint32_t bs = lfs->block_size;
    int err = node_load_blocks(n);
    if (err)
        return err;

    uint32_t old_nblocks = n->nblocks;
    size_t done = 0;
    while (done < size) {
        uint32_t boff;
        uint32_t index = lfs_ctz_index(bs, off + done, &boff);
        size_t chunk = bs - boff;
        if (chunk > size - done)
            chunk = size - done;

        if (index >= n->nblocks) {
            err = node_reserve_blocks(n, index + 1);
            if (err)
                break;
        }
        /* old contents matter unless the write covers the block's data
         * up to the file's end inside it */
        uint32_t used = index < old_nblocks ? block_used(n, index) : 0;
        bool covers = boff <= lfs_ctz_header(index) && boff + chunk >= used;
        err = node_cache_take(n, index, old_nblocks, !covers);
        if (err)
            break;
        if (data)
            memcpy(n->cache + boff, data + done, chunk);
        else
            memset(n->cache + boff, 0, chunk);
        n->cache_dirty = true;
        if (index >= n->nblocks)
            n->nblocks = index + 1;
        done += chunk;
        if (off + done > n->size)
            n->size = off + done;
    }
    n->dirty = true;
    /* on failure the bytes already copied stay (and the size covers
     * them), as with a short write(2), but the caller sees the error */
    if (err)
        return err;
    return (ssize_t)done;
}

static ssize_t node_write(struct lfs_node *n, const uint8_t *data,
                          size_t size, uint64_t off)
{
    struct lfs *lfs = n->lfs;

    if (off + size > lfs->file_max)
        return LFS_ERR_FBIG;
    if (size == 0)
        return 0;

    /* writing past the end first fills the gap with zeros */
    if (off > n->size) {
        uint64_t gap_start = n->size;
        ssize_t r = node_write(n, NULL, (size_t)(off - gap_start), gap_start);
        if (r < 0)
            return r;
        if ((uint64_t)r < off - gap_start)
            return LFS_ERR_NOSPC;
    }

    n->mtime_pending = true;
    if (n->is_inline && off + size <= lfs->inline_max) {
        int err = inline_reserve(n, (size_t)(off + size));
        if (err)
            return err;
        if (data)
            memcpy(n->inline_buf + off, data, size);
        else
            memset(n->inline_buf + off, 0, size);
        if (off + size > n->size)
            n->size = off + size;
        n->dirty = true;
        return (ssize_t)size;
    }
    if (n->is_inline) {
        int err = node_uninline(n);
        if (err)
            return err;
    }
    return ctz_write(n, data, size, off);
}

static int node_truncate(struct lfs_node *n, uint64_t size)
{
    struct lfs *lfs = n->lfs;

    if (size > lfs->file_max)
        return LFS_ERR_FBIG;
    if (size > n->size) {
        ssize_t r = node_write(n, NULL, (size_t)(size - n->size), n->size);
        if (r < 0)
            return (int)r;
        return n->size == size ? 0 : LFS_ERR_NOSPC;
    }
    n->mtime_pending = true;
    n->dirty = true;
    n->size = size;
    if (n->is_inline)
        return 0;
    n->nblocks = lfs_ctz_count(lfs->block_size, size);
    if (n->cache_valid && n->cache_index >= n->nblocks) {
        n->cache_valid = false;
        n->cache_dirty = false;
    }
    return 0;
}

/// Committing a node ///

/* Make the block list ready to commit: flush the cache, copy the
 * committed blocks that follow a moved one, fix pointers in fresh blocks
 * written before an earlier block moved. */
static int node_flush_blocks(struct lfs_node *n)
{
    struct lfs *lfs = n->lfs;
    /* a truncation alone needs the list to find the new last block */
    int err = node_load_blocks(n);
    if (err)
        return err;
    err = node_cache_flush(n);
    if (err)
        return err;

    for (uint32_t j = n->rewrite_from; j < n->nblocks; j++) {
        if (n->fresh[j])
            continue;
        /* allocate first: a rescan inside lfs_alloc reuses lfs->buf */
        uint32_t old = n->blocks[j];
        err = node_move_block(n, j);
        if (err)
            return err;
        uint32_t used = block_used(n, j);
        err = lfs_bd_read(lfs, old, 0, lfs->buf, used);
        if (err)
            return err;
        memset(lfs->buf + used, 0, lfs->block_size - used);
        put_header(n, j, lfs->buf);
        err = lfs_bd_prog(lfs, n->blocks[j], 0, lfs->buf,
                          prog_len(lfs, used));
        if (err)
            return err;
        if (j + 1 > n->flushed_hi)
            n->flushed_hi = j + 1;
    }

    uint32_t first = n->moved_from == UINT32_MAX ? n->nblocks
                                                  : n->moved_from + 1;
    for (uint32_t j = first; j < n->nblocks; j++) {
        if (!n->fresh[j])
            continue;
        uint8_t hdr[4 * 32];
        uint32_t len = lfs_ctz_header(j);
        put_header(n, j, hdr);
        err = lfs_bd_prog(lfs, n->blocks[j], 0, hdr, len);
        if (err)
            return err;
    }
    n->rewrite_from = n->nblocks;
    n->moved_from = UINT32_MAX;
    return 0;
}

static int node_commit(struct lfs_node *n)
{
    struct lfs *lfs = n->lfs;
    int err;

    if (!n->dirty)
        return 0;
    if (n->removed) {
        n->dirty = false;
        return 0;
    }
    if (!n->is_inline && n->size <= lfs->inline_max) {
        err = node_reinline(n);
        if (err)
            return err;
    }
    if (!n->is_inline) {
        err = node_flush_blocks(n);
        if (err)
            return err;
    }

    struct lfs_mdir *m;
    err = lfs_mdir_get(lfs, n->loc.pair, &m);
    if (err)
        return err;
    struct lfs_tagops ops = {0};
    uint8_t ctz[8];
    uint16_t id = n->loc.id;
    if (n->is_inline) {
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_INLINESTRUCT, id, n->size),
                       n->inline_buf);
    } else {
        lfs_put_le32(ctz, n->blocks[n->nblocks - 1]);
        lfs_put_le32(ctz + 4, (uint32_t)n->size);
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_CTZSTRUCT, id, 8), ctz);
    }
    if (n->mtime_pending && (lfs->stamp_mtime || n->mtime_explicit)) {
        if (!n->mtime_explicit) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            lfs_time_encode(&now, n->mtime);
        }
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_USERATTR | LFS_ATTR_MTIME, id,
                                       LFS_TIME_ATTR_SIZE), n->mtime);
    }
    err = lfs_mdir_commit(lfs, m, &ops);
    if (err)
        return err;

    n->dirty = false;
    n->mtime_pending = false;
    n->mtime_explicit = false;
    if (!n->is_inline) {
        memset(n->fresh, 0, n->blocks_cap);
        n->flushed_hi = 0;
        n->ctz_head = n->blocks[n->nblocks - 1];
        n->ctz_size = (uint32_t)n->size;
    }
    return 0;
}

int lfs_nodes_flush(struct lfs *lfs)
{
    int ret = 0;
    for (struct lfs_node *n = lfs->nodes; n; n = n->next) {
        int err = node_commit(n);
        if (err && !ret)
            ret = err;
    }
    return ret;
}

/// Entry information ///

int lfs_entry_info(struct lfs *lfs, const struct lfs_mdir *m, uint16_t id,
                   struct lfs_info *info)
{
    if (id >= m->count)
        return LFS_ERR_NOENT;
    const struct lfs_entry *e = &m->entries[id];

    memset(info, 0, sizeof(*info));
    info->type = e->type == LFS_T_DIR ? LFS_TYPE_DIR : LFS_TYPE_REG;
    memcpy(info->name, e->name, e->name_len);
    info->name[e->name_len] = '\0';
    if (e->type == LFS_T_DIR)
        return 0;

    struct lfs_node *n = node_find(lfs, m->pair, id);
    if (n) {
        info->size = (uint32_t)n->size;
    } else if (e->struct_type == LFS_T_CTZSTRUCT && e->struct_len >= 8) {
        info->size = lfs_le32(e->struct_data + 4);
    } else if (e->struct_type == LFS_T_INLINESTRUCT) {
        info->size = e->struct_len;
    }
    return 0;
}

/// The public file API ///

static bool can_write(const struct lfs_file *f)
{
    return (f->flags & 3) == LFS_O_WRONLY || (f->flags & 3) == LFS_O_RDWR;
}

static bool can_read(const struct lfs_file *f)
{
    return (f->flags & 3) == LFS_O_RDONLY || (f->flags & 3) == LFS_O_RDWR;
}

static int node_open(struct lfs *lfs, struct lfs_mdir *m, uint16_t id,
                     struct lfs_node **out)
{
    struct lfs_node *n = node_find(lfs, m->pair, id);
    if (n) {
        n->refs++;
        *out = n;
        return 0;
    }
    n = calloc(1, sizeof(*n));
    if (!n)
        return LFS_ERR_NOMEM;
    n->lfs = lfs;
    n->refs = 1;
    n->loc.pair[0] = m->pair[0];
    n->loc.pair[1] = m->pair[1];
    n->loc.id = id;
    n->moved_from = UINT32_MAX;
    int err = node_load(n, &m->entries[id]);
    if (err) {
        node_free(n);
        return err;
    }
    n->next = lfs->nodes;
    lfs->nodes = n;
    *out = n;
    return 0;
}

static void node_release(struct lfs_node *n)
{
    struct lfs *lfs = n->lfs;
    if (--n->refs > 0)
        return;
    struct lfs_node **pp = &lfs->nodes;
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp)
        *pp = n->next;
    node_free(n);
}

int lfs_file_open(struct lfs *lfs, struct lfs_file **out, const char *path,
                  int flags)
{
    int mode = flags & 3;
    bool writing = mode == LFS_O_WRONLY || mode == LFS_O_RDWR;
    struct lfs_mdir *m;
    uint16_t id;
    bool created;
    int err;

    if (mode == 0)
        return LFS_ERR_INVAL;
    /* as with open(2), O_CREAT may come with read-only access; truncating
     * needs write access */
    if ((flags & LFS_O_TRUNC) && !writing)
        return LFS_ERR_INVAL;
    if (writing || (flags & LFS_O_CREAT)) {
        err = lfs_begin_change(lfs);
        if (err)
            return err;
    }
    lfs->detail[0] = '\0';

    err = lfs_create_entry(lfs, path, &m, &id, &created,
                           (flags & LFS_O_CREAT) != 0);
    if (err)
        return err;
    if (!created && (flags & LFS_O_CREAT) && (flags & LFS_O_EXCL))
        return LFS_ERR_EXIST;
    if (m->entries[id].type == LFS_T_DIR)
        return LFS_ERR_ISDIR;

    struct lfs_file *f = calloc(1, sizeof(*f));
    if (!f)
        return LFS_ERR_NOMEM;
    err = node_open(lfs, m, id, &f->node);
    if (err) {
        free(f);
        return err;
    }
    f->flags = flags;
    if ((flags & LFS_O_TRUNC) && f->node->size > 0) {
        err = node_truncate(f->node, 0);
        if (err) {
            node_release(f->node);
            free(f);
            return err;
        }
    }
    f->next = lfs->files;
    lfs->files = f;
    *out = f;
    return 0;
}

int lfs_file_sync(struct lfs_file *f)
{
    if (!can_write(f))
        return 0;
    int err = node_commit(f->node);
    if (err)
        return err;
    return lfs_bd_sync(f->node->lfs);
}

static void file_free(struct lfs_file *f)
{
    struct lfs_file **pp = &f->node->lfs->files;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    node_release(f->node);
    free(f);
}

int lfs_file_close(struct lfs_file *f)
{
    if (!f)
        return 0;
    int err = can_write(f) ? node_commit(f->node) : 0;
    file_free(f);
    return err;
}

void lfs_file_discard(struct lfs_file *f)
{
    /* blocks the dropped changes used are reclaimed by the next scan */
    if (f)
        file_free(f);
}

ssize_t lfs_file_pread(struct lfs_file *f, void *buf, size_t size,
                       uint64_t off)
{
    if (!can_read(f))
        return LFS_ERR_BADF;
    if (size > INT32_MAX)
        size = INT32_MAX;
    return node_read(f->node, buf, size, off);
}

ssize_t lfs_file_pwrite(struct lfs_file *f, const void *buf, size_t size,
                        uint64_t off)
{
    if (!can_write(f))
        return LFS_ERR_BADF;
    if (f->node->lfs->read_only)
        return LFS_ERR_ROFS;
    if (size > INT32_MAX)
        size = INT32_MAX;
    if (f->flags & LFS_O_APPEND)
        off = f->node->size;
    return node_write(f->node, buf, size, off);
}

ssize_t lfs_file_read(struct lfs_file *f, void *buf, size_t size)
{
    ssize_t r = lfs_file_pread(f, buf, size, f->pos);
    if (r > 0)
        f->pos += (uint64_t)r;
    return r;
}

ssize_t lfs_file_write(struct lfs_file *f, const void *buf, size_t size)
{
    if (f->flags & LFS_O_APPEND)
        f->pos = f->node->size;
    ssize_t r = lfs_file_pwrite(f, buf, size, f->pos);
    if (r > 0)
        f->pos += (uint64_t)r;
    return r;
}

int64_t lfs_file_seek(struct lfs_file *f, int64_t off, int whence)
{
    int64_t base;

    switch (whence) {
    case LFS_SEEK_SET: base = 0; break;
    case LFS_SEEK_CUR: base = (int64_t)f->pos; break;
    case LFS_SEEK_END: base = (int64_t)f->node->size; break;
    default: return LFS_ERR_INVAL;
    }
    if ((off < 0 && base + off < 0) ||
        base + off > (int64_t)f->node->lfs->file_max)
        return LFS_ERR_INVAL;
    f->pos = (uint64_t)(base + off);
    return (int64_t)f->pos;
}

int64_t lfs_file_tell(struct lfs_file *f)
{
    return (int64_t)f->pos;
}

int64_t lfs_file_size(struct lfs_file *f)
{
    return (int64_t)f->node->size;
}

int lfs_file_truncate(struct lfs_file *f, uint64_t size)
{
    if (!can_write(f))
        return LFS_ERR_BADF;
    if (f->node->lfs->read_only)
        return LFS_ERR_ROFS;
    return node_truncate(f->node, size);
}

int lfs_file_stat(struct lfs_file *f, struct lfs_info *info)
{
    struct lfs_node *n = f->node;
    struct lfs_mdir *m;

    if (n->removed) {
        memset(info, 0, sizeof(*info));
        info->type = LFS_TYPE_REG;
        info->size = (uint32_t)n->size;
        return 0;
    }
    int err = lfs_mdir_get(n->lfs, n->loc.pair, &m);
    if (err)
        return err;
    return lfs_entry_info(n->lfs, m, n->loc.id, info);
}

ssize_t lfs_file_getattr(struct lfs_file *f, uint8_t type, void *buf,
                         size_t size)
{
    struct lfs_node *n = f->node;
    struct lfs_mdir *m;

    if (type == LFS_ATTR_MTIME && n->mtime_explicit) {
        memcpy(buf, n->mtime, size < LFS_TIME_ATTR_SIZE ? size
                                                        : LFS_TIME_ATTR_SIZE);
        return LFS_TIME_ATTR_SIZE;
    }
    if (n->removed)
        return LFS_ERR_NOATTR;
    int err = lfs_mdir_get(n->lfs, n->loc.pair, &m);
    if (err)
        return err;
    return lfs_entry_getattr(n->lfs, m, n->loc.id, type, buf, size);
}

int lfs_file_setattr(struct lfs_file *f, uint8_t type, const void *buf,
                     size_t size)
{
    struct lfs_node *n = f->node;
    struct lfs *lfs = n->lfs;
    struct lfs_mdir *m;

    if (lfs->read_only)
        return LFS_ERR_ROFS;
    if (type == LFS_ATTR_MTIME && size == LFS_TIME_ATTR_SIZE) {
        /* an explicit mtime wins over the stamp of pending writes */
        memcpy(n->mtime, buf, LFS_TIME_ATTR_SIZE);
        n->mtime_explicit = true;
        n->mtime_pending = true;
        if (n->dirty)
            return 0;
    }
    if (n->removed)
        return 0;
    int err = lfs_begin_change(lfs);
    if (err)
        return err;
    err = lfs_mdir_get(lfs, n->loc.pair, &m);
    if (err)
        return err;
    err = lfs_entry_setattr(lfs, m, n->loc.id, type, buf, size, false);
    if (!err && type == LFS_ATTR_MTIME) {
        n->mtime_explicit = false;
        n->mtime_pending = false;
    }
    return err;
}

/* An mtime set by path on a file that has an open node: the node must
 * commit this value, not the time of its next sync. */
void lfs_node_note_mtime(struct lfs *lfs, const struct lfs_mdir *m,
                         uint16_t id, const void *buf, size_t size)
{
    struct lfs_node *n = node_find(lfs, m->pair, id);
    if (!n || size != LFS_TIME_ATTR_SIZE || !n->dirty)
        return;
    memcpy(n->mtime, buf, LFS_TIME_ATTR_SIZE);
    n->mtime_explicit = true;
    n->mtime_pending = true;
}
