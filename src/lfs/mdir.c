/*
 * Metadata pairs: decoding their logs, caching the decoded state, and
 * committing changes (appending to the log, compacting, splitting).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs_internal.h"

/* Commits are padded to this alignment, as a flash program unit would
 * require; 16 matches what the reference images use.  Devices whose torn
 * writes damage a whole sector ask for more (lfs->prog_align). */
#define LFS_PROG_ALIGN 16u

/* Room a compacted pair needs besides its entries: tail (12), gstate
 * (16), FCRC (12), CCRC (8) and alignment padding. */
#define LFS_COMPACT_OVERHEAD (12u + 16u + 12u + 8u + LFS_PROG_ALIGN)

/// Decoded entries ///

static void entry_free(struct lfs_entry *e)
{
    free(e->name);
    free(e->struct_data);
    for (int i = 0; i < e->nattrs; i++)
        free(e->attrs[i].data);
    free(e->attrs);
    memset(e, 0, sizeof(*e));
}

void lfs_mdir_free_entries(struct lfs_mdir *m)
{
    for (int i = 0; i < m->count; i++)
        entry_free(&m->entries[i]);
    free(m->entries);
    m->entries = NULL;
    m->count = 0;
    m->cap = 0;
}

static int entries_reserve(struct lfs_mdir *m, unsigned count)
{
    if (count <= m->cap)
        return 0;

    unsigned cap = m->cap ? m->cap * 2u : 16u;
    while (cap < count)
        cap *= 2;
    struct lfs_entry *e = realloc(m->entries, cap * sizeof(*e));
    if (!e)
        return LFS_ERR_NOMEM;
    memset(e + m->cap, 0, (cap - m->cap) * sizeof(*e));
    m->entries = e;
    m->cap = (uint16_t)cap;
    return 0;
}

static int entries_insert(struct lfs_mdir *m, uint16_t id)
{
    int err = entries_reserve(m, m->count + 1u);
    if (err)
        return err;
    memmove(&m->entries[id + 1], &m->entries[id],
            (m->count - id) * sizeof(struct lfs_entry));
    memset(&m->entries[id], 0, sizeof(struct lfs_entry));
    m->count++;
    return 0;
}

static void entries_delete(struct lfs_mdir *m, uint16_t id)
{
    entry_free(&m->entries[id]);
    memmove(&m->entries[id], &m->entries[id + 1],
            (m->count - id - 1u) * sizeof(struct lfs_entry));
    m->count--;
    memset(&m->entries[m->count], 0, sizeof(struct lfs_entry));
}

static int dup_bytes(uint8_t **dst, const void *src, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        return LFS_ERR_NOMEM;
    if (len)
        memcpy(p, src, len);
    free(*dst);
    *dst = p;
    return 0;
}

const struct lfs_uattr *lfs_entry_attr(const struct lfs_entry *e,
                                       uint8_t type)
{
    for (int i = 0; i < e->nattrs; i++) {
        if (e->attrs[i].type == type)
            return &e->attrs[i];
    }
    return NULL;
}

static int entry_set_attr(struct lfs_entry *e, uint8_t type,
                          const uint8_t *data, uint32_t size, bool remove)
{
    int i;

    for (i = 0; i < e->nattrs; i++) {
        if (e->attrs[i].type == type)
            break;
    }
    if (remove) {
        if (i < e->nattrs) {
            free(e->attrs[i].data);
            memmove(&e->attrs[i], &e->attrs[i + 1],
                    (e->nattrs - i - 1u) * sizeof(*e->attrs));
            e->nattrs--;
        }
        return 0;
    }
    if (i == e->nattrs) {
        struct lfs_uattr *a =
            realloc(e->attrs, (e->nattrs + 1u) * sizeof(*a));
        if (!a)
            return LFS_ERR_NOMEM;
        e->attrs = a;
        /* keep attributes sorted by type so compaction is deterministic */
        for (i = e->nattrs; i > 0 && a[i - 1].type > type; i--)
            a[i] = a[i - 1];
        memset(&a[i], 0, sizeof(a[i]));
        a[i].type = type;
        e->nattrs++;
    }
    e->attrs[i].size = (uint16_t)size;
    return dup_bytes(&e->attrs[i].data, data, size);
}

/// Replaying tags ///

static bool entry_named(const struct lfs_entry *e)
{
    return e->type == LFS_T_REG || e->type == LFS_T_DIR;
}

/*
 * Apply one tag to the decoded state, exactly as a reader replaying the
 * log would.  splice_id/splice_delta report an id insertion or removal so
 * the caller can move open handles.
 */
static int apply_tag(struct lfs_mdir *m, uint32_t tag, const uint8_t *data,
                     int *splice_delta, uint16_t *splice_id)
{
    uint32_t type1 = LFS_TAG_TYPE1(tag);
    uint32_t type3 = LFS_TAG_TYPE3(tag);
    uint16_t id = (uint16_t)LFS_TAG_ID(tag);
    uint32_t size = LFS_TAG_ISDELETE(tag) ? 0 : LFS_TAG_SIZE(tag);
    bool deleted = LFS_TAG_ISDELETE(tag);
    int err;

    if (splice_delta)
        *splice_delta = 0;

    if (type1 == LFS_T_TAIL) {
        if (size < 8)
            return LFS_ERR_CORRUPT;
        m->tail[0] = lfs_le32(data);
        m->tail[1] = lfs_le32(data + 4);
        m->split = (LFS_TAG_CHUNK(tag) & 1) != 0;
        return 0;
    }
    if (type3 == LFS_T_MOVESTATE) {
        if (size < 12)
            return LFS_ERR_CORRUPT;
        m->gdelta.tag = lfs_le32(data);
        m->gdelta.pair[0] = lfs_le32(data + 4);
        m->gdelta.pair[1] = lfs_le32(data + 8);
        return 0;
    }
    if (type1 == LFS_T_SPLICE) {
        if (type3 == LFS_T_CREATE) {
            if (id > m->count || m->count >= LFS_ID_NONE)
                return LFS_ERR_CORRUPT;
            err = entries_insert(m, id);
            if (err)
                return err;
            if (splice_delta) {
                *splice_delta = 1;
                *splice_id = id;
            }
        } else if (type3 == LFS_T_DELETE) {
            if (id >= m->count)
                return LFS_ERR_CORRUPT;
            if (entry_named(&m->entries[id]))
                lfs_dindex_remove(m, m->entries[id].name_hash);
            entries_delete(m, id);
            if (splice_delta) {
                *splice_delta = -1;
                *splice_id = id;
            }
        }
        return 0;
    }
    if (type1 != LFS_T_NAME && type1 != LFS_T_STRUCT &&
        type1 != LFS_T_USERATTR)
        return 0; /* unknown types carry nothing we use */
    if (id == LFS_ID_NONE)
        return 0;

    /* A tag for an id past the end names a new entry, as the reference
     * counts ids from NAME tags of compacted logs that have no CREATE. */
    if (id >= m->count) {
        err = entries_reserve(m, id + 1u);
        if (err)
            return err;
        m->count = id + 1;
    }

    struct lfs_entry *e = &m->entries[id];
    if (type1 == LFS_T_NAME) {
        if (entry_named(e))
            lfs_dindex_remove(m, e->name_hash);
        if (deleted) {
            free(e->name);
            e->name = NULL;
            e->name_len = 0;
            e->type = 0;
            return 0;
        }
        err = dup_bytes(&e->name, data, size);
        if (err)
            return err;
        e->name_len = (uint16_t)size;
        e->type = (uint16_t)type3;
        e->name_hash = lfs_name_hash(data, size);
        if (entry_named(e))
            lfs_dindex_add(m, e->name_hash);
        return 0;
    }
    if (type1 == LFS_T_STRUCT) {
        if (deleted) {
            free(e->struct_data);
            e->struct_data = NULL;
            e->struct_len = 0;
            e->struct_type = 0;
            return 0;
        }
        err = dup_bytes(&e->struct_data, data, size);
        if (err)
            return err;
        e->struct_len = (uint16_t)size;
        e->struct_type = (uint16_t)type3;
        return 0;
    }
    return entry_set_attr(e, (uint8_t)LFS_TAG_CHUNK(tag), data, size,
                          deleted);
}

/// Decoding a metadata block ///

struct pending_tag {
    uint32_t tag;
    uint32_t off;
};

/* Check a commit's ids against count entries with the same rules as
 * apply_tag, so that a bad id cannot leave the commit applied in part. */
static bool commit_is_consistent(uint32_t count,
                                 const struct pending_tag *pending, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t tag = pending[i].tag;
        uint32_t id = LFS_TAG_ID(tag);
        uint32_t type1 = LFS_TAG_TYPE1(tag);
        uint32_t size = LFS_TAG_ISDELETE(tag) ? 0 : LFS_TAG_SIZE(tag);

        if (LFS_TAG_TYPE3(tag) == LFS_T_CREATE) {
            if (id > count || count >= LFS_ID_NONE)
                return false;
            count++;
        } else if (LFS_TAG_TYPE3(tag) == LFS_T_DELETE) {
            if (id >= count)
                return false;
            count--;
        } else if ((type1 == LFS_T_NAME || type1 == LFS_T_STRUCT ||
                    type1 == LFS_T_USERATTR) && id != LFS_ID_NONE) {
            if (id >= count)
                count = id + 1;
        } else if ((type1 == LFS_T_TAIL && size < 8) ||
                   (LFS_TAG_TYPE3(tag) == LFS_T_MOVESTATE && size < 12)) {
            return false;
        }
    }
    return true;
}

/*
 * Replay the log of one metadata block into m (which must be empty).
 * Returns 1 when the block holds at least one valid commit, 0 when it
 * holds none, or a negative error.
 */
int lfs_mdir_decode_block(struct lfs *lfs, const uint8_t *buf,
                          uint32_t block_size, struct lfs_mdir *m)
{
    (void)lfs;
    struct pending_tag *pending = NULL;
    size_t npending = 0, cap = 0;
    uint32_t off = 4, ptag = 0xffffffffu, last_off = 0;
    uint32_t crc = lfs_crc(0xffffffffu, buf, 4);
    int ret = 0;

    m->rev = lfs_le32(buf);
    m->tail[0] = m->tail[1] = LFS_BLOCK_NULL;
    m->split = false;
    memset(&m->gdelta, 0, sizeof(m->gdelta));

    while (off + 4 <= block_size) {
        uint32_t tag = lfs_be32(buf + off) ^ ptag;
        uint32_t dsize = LFS_TAG_DSIZE(tag);

        if (!LFS_TAG_ISVALID(tag) || off + dsize > block_size)
            break;
        crc = lfs_crc(crc, buf + off, 4);

        if (LFS_TAG_TYPE1(tag) == LFS_T_CRC &&
            (LFS_TAG_CHUNK(tag) & 0x80) == 0) {
            /* commit CRC: everything since the last one must match */
            if (dsize < 8 || lfs_le32(buf + off + 4) != crc)
                break;
            /* a commit that contradicts the state so far ends the log,
             * as a failed CRC would, and is not applied in part */
            if (!commit_is_consistent(m->count, pending, npending))
                break;
            for (size_t i = 0; i < npending; i++) {
                ret = apply_tag(m, pending[i].tag, buf + pending[i].off,
                                NULL, NULL);
                if (ret)
                    goto out;
            }
            npending = 0;
            off += dsize;
            last_off = off;
            ptag = tag ^ ((LFS_TAG_CHUNK(tag) & 1u) << 31);
            m->etag = ptag;
            crc = 0xffffffffu;
            continue;
        }

        crc = lfs_crc(crc, buf + off + 4, dsize - 4);
        if (npending == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct pending_tag *p = realloc(pending, ncap * sizeof(*p));
            if (!p) {
                ret = LFS_ERR_NOMEM;
                goto out;
            }
            pending = p;
            cap = ncap;
        }
        pending[npending].tag = tag;
        pending[npending].off = off + 4;
        npending++;
        ptag = tag;
        off += dsize;
    }

    m->off = last_off;
    m->erased = false;
    if (last_off > 0) {
        m->erased = true;
        for (uint32_t i = last_off; i < block_size; i++) {
            if (buf[i] != 0xff) {
                m->erased = false;
                break;
            }
        }
        ret = 1;
    }
out:
    free(pending);
    return ret;
}

static int seq_newer(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

/*
 * Read a metadata block into lfs->buf.  On an encrypted image, a sector
 * torn by power loss fails authentication, and the log ends before it as
 * it would at a failed CRC.  So on such a failure the block is read
 * sector by sector up to the first unreadable one, and *len is set to the
 * readable length.
 */
static int read_log(struct lfs *lfs, uint32_t block, uint32_t *len)
{
    int err = lfs_bd_read(lfs, block, 0, lfs->buf, lfs->block_size);

    *len = lfs->block_size;
    if (err != LFS_ERR_AUTH && err != LFS_ERR_UNWRITTEN)
        return err;

    uint32_t step = lfs->bd->sector_size ? lfs->bd->sector_size : 512;
    uint32_t got = 0;
    while (got < lfs->block_size) {
        uint32_t n = lfs->block_size - got < step ? lfs->block_size - got
                                                  : step;
        if (lfs_bd_read(lfs, block, got, lfs->buf + got, n))
            break;
        got += n;
    }
    memset(lfs->buf + got, 0, lfs->block_size - got);
    *len = got;
    return 0;
}

/* Read both blocks of a pair and decode the newest valid log into m. */
static int mdir_fetch(struct lfs *lfs, const uint32_t pair[2],
                      struct lfs_mdir *m)
{
    uint8_t revbuf[2][4];
    int err;

    if (pair[0] >= lfs->block_count || pair[1] >= lfs->block_count) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "metadata pair {%u, %u} is outside the image", pair[0],
                 pair[1]);
        return LFS_ERR_CORRUPT;
    }
    /* a block that was never written (the second block of a new pair on
     * an encrypted image) simply holds no log */
    bool unwritten[2] = {false, false};
    for (int i = 0; i < 2; i++) {
        err = lfs_bd_read(lfs, pair[i], 0, revbuf[i], 4);
        /* a torn first sector on an encrypted image fails authentication:
         * like a torn commit, it leaves the other block in charge */
        if (err == LFS_ERR_UNWRITTEN || err == LFS_ERR_AUTH) {
            unwritten[i] = true;
            memset(revbuf[i], 0, 4);
        } else if (err) {
            return err;
        }
    }

    int first = seq_newer(lfs_le32(revbuf[1]), lfs_le32(revbuf[0])) ? 1 : 0;
    if (unwritten[first])
        first = 1 - first;
    for (int k = 0; k < 2; k++) {
        int i = k == 0 ? first : 1 - first;
        if (unwritten[i])
            continue;
        uint32_t len;
        err = read_log(lfs, pair[i], &len);
        if (err)
            return err;

        memset(m, 0, sizeof(*m));
        int res = lfs_mdir_decode_block(lfs, lfs->buf, len, m);
        if (res == 1 && len < lfs->block_size)
            m->erased = false; /* the unreadable rest is not erased */
        if (res < 0) {
            lfs_mdir_free_entries(m);
            return res;
        }
        if (res == 1) {
            m->pair[0] = pair[i];
            m->pair[1] = pair[1 - i];
            return 0;
        }
        lfs_mdir_free_entries(m);
    }
    snprintf(lfs->detail, sizeof(lfs->detail),
             "metadata pair {%u, %u} has no valid commit", pair[0], pair[1]);
    return LFS_ERR_CORRUPT;
}

/// The cache of decoded pairs ///

static unsigned mdir_hash(const uint32_t pair[2])
{
    uint32_t lo = pair[0] < pair[1] ? pair[0] : pair[1];
    return lo % LFS_MDIR_HASH;
}

static bool pair_same(const uint32_t a[2], const uint32_t b[2])
{
    return (a[0] == b[0] && a[1] == b[1]) || (a[0] == b[1] && a[1] == b[0]);
}

static void cache_insert(struct lfs *lfs, struct lfs_mdir *m)
{
    unsigned h = mdir_hash(m->pair);
    m->hnext = lfs->mdirs[h];
    lfs->mdirs[h] = m;
}

static void cache_remove(struct lfs *lfs, struct lfs_mdir *m)
{
    struct lfs_mdir **pp = &lfs->mdirs[mdir_hash(m->pair)];
    while (*pp) {
        if (*pp == m) {
            *pp = m->hnext;
            return;
        }
        pp = &(*pp)->hnext;
    }
}

static void mdir_refetch(struct lfs *lfs, struct lfs_mdir *m);

int lfs_mdir_get(struct lfs *lfs, const uint32_t pair[2],
                 struct lfs_mdir **out)
{
    for (struct lfs_mdir *m = lfs->mdirs[mdir_hash(pair)]; m; m = m->hnext) {
        if (pair_same(m->pair, pair)) {
            if (m->broken) {
                mdir_refetch(lfs, m);
                if (m->broken)
                    return LFS_ERR_IO;
            }
            *out = m;
            return 0;
        }
    }

    struct lfs_mdir *m = calloc(1, sizeof(*m));
    if (!m)
        return LFS_ERR_NOMEM;
    int err = mdir_fetch(lfs, pair, m);
    if (err) {
        free(m);
        return err;
    }
    cache_insert(lfs, m);
    *out = m;
    return 0;
}

void lfs_mdir_forget(struct lfs *lfs, struct lfs_mdir *m)
{
    lfs_dindex_destroy(m->dindex);
    cache_remove(lfs, m);
    lfs_mdir_free_entries(m);
    free(m);
}

void lfs_mdir_cache_clear(struct lfs *lfs)
{
    lfs_dindex_destroy_all(lfs);
    for (int h = 0; h < LFS_MDIR_HASH; h++) {
        struct lfs_mdir *m = lfs->mdirs[h];
        while (m) {
            struct lfs_mdir *next = m->hnext;
            lfs_mdir_free_entries(m);
            free(m);
            m = next;
        }
        lfs->mdirs[h] = NULL;
    }
}

/* Re-read a pair from disk into the same object, dropping changes that
 * were applied in memory but never committed. */
static void mdir_refetch(struct lfs *lfs, struct lfs_mdir *m)
{
    struct lfs_mdir fresh;
    uint32_t pair[2] = {m->pair[0], m->pair[1]};

    lfs_dindex_destroy(m->dindex);
    cache_remove(lfs, m);
    lfs_mdir_free_entries(m);
    if (mdir_fetch(lfs, pair, &fresh) == 0) {
        fresh.hnext = NULL;
        *m = fresh;
    } else {
        /* leave an empty placeholder that every use rejects, until a
         * later lfs_mdir_get manages to read the pair again */
        memset(m, 0, sizeof(*m));
        m->pair[0] = pair[0];
        m->pair[1] = pair[1];
        m->tail[0] = m->tail[1] = LFS_BLOCK_NULL;
        m->broken = true;
    }
    cache_insert(lfs, m);
}

/// Encoding commits ///

struct commit {
    uint8_t *buf;       /* bytes of the block being written */
    uint32_t begin;     /* where this write starts in the block */
    uint32_t off;
    uint32_t end;       /* block size */
    uint32_t ptag;
    uint32_t crc;
};

static int commit_tag(struct commit *c, uint32_t tag, const void *data)
{
    uint32_t dsize = LFS_TAG_DSIZE(tag);

    if (c->off + dsize > c->end)
        return LFS_ERR_NOSPC;
    lfs_put_be32(c->buf + c->off, tag ^ c->ptag);
    if (dsize > 4)
        memcpy(c->buf + c->off + 4, data, dsize - 4);
    c->crc = lfs_crc(c->crc, c->buf + c->off, dsize);
    c->ptag = tag & 0x7fffffffu;
    c->off += dsize;
    return 0;
}

/* Close the commit: an optional FCRC (format 2.1) then the CCRC tag,
 * padded to the program alignment.  The bytes after the commit are erased
 * (0xff), so the next tag reads as invalid without flipping the valid
 * bit. */
static int commit_crc(struct lfs *lfs, struct commit *c)
{
    bool fcrc = lfs->disk_version >= LFS_DISK_VERSION_2_1;
    uint32_t need = c->off + 8 + (fcrc ? 12u : 0u);
    uint32_t align = lfs->prog_align;
    uint32_t noff = (need + align - 1) / align * align;

    if (noff > c->end)
        noff = c->end;
    if (fcrc && noff + LFS_PROG_ALIGN > c->end) {
        /* no room for a following commit to check: skip the FCRC */
        fcrc = false;
        need = c->off + 8;
        noff = (need + align - 1) / align * align;
        if (noff > c->end)
            noff = c->end;
    }
    if (need > c->end)
        return LFS_ERR_NOSPC;

    if (fcrc) {
        uint8_t data[8], erased[LFS_PROG_ALIGN];
        memset(erased, 0xff, sizeof(erased));
        lfs_put_le32(data, LFS_PROG_ALIGN);
        lfs_put_le32(data + 4, lfs_crc(0xffffffffu, erased, sizeof(erased)));
        int err = commit_tag(c, LFS_MKTAG(LFS_T_FCRC, LFS_ID_NONE, 8), data);
        if (err)
            return err;
    }

    uint32_t tag = LFS_MKTAG(LFS_T_CCRC, LFS_ID_NONE, noff - (c->off + 4));
    lfs_put_be32(c->buf + c->off, tag ^ c->ptag);
    c->crc = lfs_crc(c->crc, c->buf + c->off, 4);
    lfs_put_le32(c->buf + c->off + 4, c->crc);
    memset(c->buf + c->off + 8, 0xff, noff - (c->off + 8));
    c->off = noff;
    c->ptag = tag;
    c->crc = 0xffffffffu;
    return 0;
}

static uint32_t entry_size(const struct lfs_entry *e)
{
    uint32_t size = 4u + e->name_len;

    if (e->struct_type)
        size += 4u + e->struct_len;
    for (int i = 0; i < e->nattrs; i++)
        size += 4u + e->attrs[i].size;
    return size;
}

static int commit_entry(struct commit *c, const struct lfs_entry *e,
                        uint16_t id)
{
    int err = commit_tag(c, LFS_MKTAG(e->type, id, e->name_len), e->name);
    if (err)
        return err;
    if (e->struct_type) {
        err = commit_tag(c, LFS_MKTAG(e->struct_type, id, e->struct_len),
                         e->struct_data);
        if (err)
            return err;
    }
    for (int i = 0; i < e->nattrs; i++) {
        const struct lfs_uattr *a = &e->attrs[i];
        err = commit_tag(c, LFS_MKTAG(LFS_T_USERATTR | a->type, id, a->size),
                         a->data);
        if (err)
            return err;
    }
    return 0;
}

static void gstate_encode(const struct lfs_gstate *g, uint8_t out[12])
{
    lfs_put_le32(out, g->tag);
    lfs_put_le32(out + 4, g->pair[0]);
    lfs_put_le32(out + 8, g->pair[1]);
}

/*
 * Write entries [begin, end) of m, renumbered from 0, as a fresh log in
 * block with revision rev: one commit, the rest of the block erased.
 * Entries without a name (never written by this engine, but possible in
 * other writers' logs) are dropped.
 */
int lfs_mdir_write_compact(struct lfs *lfs, struct lfs_mdir *m,
                           uint16_t begin, uint16_t end, uint32_t block,
                           uint32_t rev, const uint32_t tail[2], bool split,
                           const struct lfs_gstate *gdelta,
                           struct lfs_mdir *dst)
{
    struct commit c = {
        .buf = lfs->buf2, .begin = 0, .off = 4, .end = lfs->block_size,
        .ptag = 0xffffffffu,
    };
    uint16_t id = 0;
    int err;

    lfs_put_le32(c.buf, rev);
    c.crc = lfs_crc(0xffffffffu, c.buf, 4);
    for (uint16_t i = begin; i < end; i++) {
        if (!m->entries[i].type)
            continue;
        err = commit_entry(&c, &m->entries[i], id++);
        if (err)
            return err;
    }
    if (!lfs_pair_isnull(tail)) {
        uint8_t data[8];
        lfs_put_le32(data, tail[0]);
        lfs_put_le32(data + 4, tail[1]);
        err = commit_tag(&c, LFS_MKTAG(split ? LFS_T_HARDTAIL : LFS_T_SOFTTAIL,
                                       LFS_ID_NONE, 8), data);
        if (err)
            return err;
    }
    if (gdelta && !lfs_gstate_iszero(gdelta)) {
        uint8_t data[12];
        gstate_encode(gdelta, data);
        err = commit_tag(&c, LFS_MKTAG(LFS_T_MOVESTATE, LFS_ID_NONE, 12),
                         data);
        if (err)
            return err;
    }
    err = commit_crc(lfs, &c);
    if (err)
        return err;
    memset(c.buf + c.off, 0xff, lfs->block_size - c.off);

    /*
     * The block still holds an older log.  Write the erased tail before
     * the new commit: if the commit write is then torn, no old commit can
     * follow a complete-looking new one and be replayed on top of it.
     * Blocks larger than a page get a sync in between, because the page
     * cache may write their pages in any order.
     */
    err = lfs_bd_barrier(lfs, block);
    if (err)
        return err;
    /* split where commits are aligned, so an encrypted device never has
     * to read back (and authenticate) a sector of the old contents */
    uint32_t head = c.off / lfs->prog_align * lfs->prog_align;
    if (head < lfs->block_size) {
        err = lfs_bd_prog(lfs, block, head, c.buf + head,
                          lfs->block_size - head);
        if (!err && lfs->block_size > 4096)
            err = lfs_bd_sync(lfs);
        if (err)
            return err;
    }
    err = head ? lfs_bd_prog(lfs, block, 0, c.buf, head) : 0;
    if (err)
        return err;
    if (dst) {
        dst->off = c.off;
        dst->etag = c.ptag;
        dst->erased = true;
    }
    return 0;
}

/* Bytes a compacted log of entries [begin, end) needs. */
static uint32_t compact_size(const struct lfs_mdir *m, uint16_t begin,
                             uint16_t end)
{
    uint32_t size = 4 + LFS_COMPACT_OVERHEAD;

    for (uint16_t i = begin; i < end; i++)
        size += entry_size(&m->entries[i]);
    return size;
}

/// Committing ///

static void protect_replaced(struct lfs *lfs, struct lfs_mdir *m,
                             const struct lfs_tagops *ops);
static void commit_end(struct lfs *lfs, bool ok);

/* Append ops (already applied to m) to the log of m's active block. */
static int mdir_append(struct lfs *lfs, struct lfs_mdir *m,
                       const struct lfs_tagops *ops)
{
    struct commit c = {
        .buf = lfs->buf2, .begin = m->off, .off = m->off,
        .end = lfs->block_size, .ptag = m->etag, .crc = 0xffffffffu,
    };
    int err;

    for (int i = 0; i < ops->count; i++) {
        err = commit_tag(&c, ops->ops[i].tag, ops->ops[i].data);
        if (err)
            return err;
    }
    err = commit_crc(lfs, &c);
    if (err)
        return err;

    err = lfs_bd_barrier(lfs, m->pair[0]);
    if (err)
        return err;
    err = lfs_bd_prog(lfs, m->pair[0], c.begin, c.buf + c.begin,
                      c.off - c.begin);
    if (err)
        return err;
    m->off = c.off;
    m->etag = c.ptag;
    return 0;
}

/* Whether appending ops to m fits in the block. */
static bool append_fits(struct lfs *lfs, const struct lfs_mdir *m,
                        const struct lfs_tagops *ops)
{
    uint32_t size = m->off;

    for (int i = 0; i < ops->count; i++)
        size += LFS_TAG_DSIZE(ops->ops[i].tag);
    size += 8 + 12 + lfs->prog_align;
    /* keep the reference's habit of leaving room at the end of a block */
    return size <= lfs->block_size;
}

/* Rewrite m into its other block with the next revision. */
static int mdir_compact_in_place(struct lfs *lfs, struct lfs_mdir *m,
                                 uint16_t end)
{
    uint32_t newrev = m->rev + 1;
    int err = lfs_mdir_write_compact(lfs, m, 0, end, m->pair[1], newrev,
                                     m->tail, m->split, &m->gdelta, m);
    if (err)
        return err;

    uint32_t b = m->pair[0];
    m->pair[0] = m->pair[1];
    m->pair[1] = b;
    m->rev = newrev;
    return 0;
}

/* Move entries [from, m->count) into a new decoded pair object. */
static int move_entries(struct lfs_mdir *m, uint16_t from,
                        struct lfs_mdir *dst)
{
    uint16_t n = (uint16_t)(m->count - from);
    int err = entries_reserve(dst, n);
    if (err)
        return err;
    memcpy(dst->entries, &m->entries[from], n * sizeof(struct lfs_entry));
    memset(&m->entries[from], 0, n * sizeof(struct lfs_entry));
    dst->count = n;
    m->count = from;
    lfs_dindex_moved(m, dst);
    return 0;
}

/*
 * Id changes a commit makes are replayed onto open handles only once the
 * commit is on disk, and in the order they happened.  Splices come first
 * because the split points are numbered after them; splits follow.
 */
struct commit_events {
    int count;
    struct {
        int delta;          /* +1 create, -1 delete, 0 split */
        uint16_t id;
        uint32_t newpair[2];
    } ev[LFS_MAX_TAGOPS + LFS_ID_NONE];
};

static void event_add(struct commit_events *e, int delta, uint16_t id,
                      const uint32_t newpair[2])
{
    if (e->count >= (int)(sizeof(e->ev) / sizeof(e->ev[0])))
        return;
    e->ev[e->count].delta = delta;
    e->ev[e->count].id = id;
    if (newpair) {
        e->ev[e->count].newpair[0] = newpair[0];
        e->ev[e->count].newpair[1] = newpair[1];
    }
    e->count++;
}

static void events_replay(struct lfs *lfs, const uint32_t pair[2],
                          const struct commit_events *e)
{
    for (int i = 0; i < e->count; i++) {
        if (e->ev[i].delta)
            lfs_open_splice(lfs, pair, e->ev[i].id, e->ev[i].delta);
        else
            lfs_open_split(lfs, pair, e->ev[i].id, e->ev[i].newpair);
    }
}

/* Drop entries that no longer have a name (other writers may leave some);
 * this engine never creates them, so ids stay stable for open handles. */
static void drop_unnamed(struct lfs_mdir *m, struct commit_events *ev)
{
    for (int i = m->count - 1; i >= 0; i--) {
        if (!m->entries[i].type) {
            entries_delete(m, (uint16_t)i);
            event_add(ev, -1, (uint16_t)i, NULL);
        }
    }
}

/*
 * Compact m, splitting it into a chain of pairs when its entries would
 * fill more than half a block, so later commits can still append.
 * New pairs are written first (they are unreachable until m points at
 * them), then m itself.
 */
static int mdir_compact(struct lfs *lfs, struct lfs_mdir *m,
                        struct commit_events *ev)
{
    uint32_t half = lfs->block_size / 2;
    uint16_t splits[LFS_ID_NONE];
    int nsplits = 0;
    int err;

    drop_unnamed(m, ev);

    /* greedy chunks of at most half a block, at least one entry each */
    uint16_t begin = 0;
    while (begin < m->count) {
        /* a chunk too large for a block is reported by the write itself,
         * which computes the exact overhead */
        uint16_t end = begin + 1;
        uint32_t size = compact_size(m, begin, end);
        while (end < m->count && end - begin < LFS_MDIR_MAX_IDS &&
               size + entry_size(&m->entries[end]) <= half) {
            size += entry_size(&m->entries[end]);
            end++;
        }
        if (end < m->count)
            splits[nsplits++] = end;
        begin = end;
    }
    if (nsplits == 0)
        return mdir_compact_in_place(lfs, m, m->count);

    /* allocate every new pair first: running out of space must fail
     * before anything moves */
    struct lfs_mdir *created[LFS_ID_NONE];
    int ncreated = 0;
    static const uint32_t nulltail[2] = {LFS_BLOCK_NULL, LFS_BLOCK_NULL};
    for (int k = 0; k < nsplits; k++) {
        err = lfs_mdir_create(lfs, nulltail, false, &created[k]);
        if (err)
            goto fail;
        ncreated++;
    }

    /* fill and write them from the last chunk backwards, so each one's
     * tail is already known */
    uint32_t tail[2] = {m->tail[0], m->tail[1]};
    bool split = m->split;
    for (int k = nsplits - 1; k >= 0; k--) {
        struct lfs_mdir *n = created[k];
        err = move_entries(m, splits[k], n);
        if (err)
            goto fail;
        n->tail[0] = tail[0];
        n->tail[1] = tail[1];
        n->split = split;
        err = lfs_mdir_write_compact(lfs, n, 0, n->count, n->pair[0],
                                     n->rev, n->tail, n->split, NULL, n);
        if (err)
            goto fail;
        tail[0] = n->pair[0];
        tail[1] = n->pair[1];
        split = true;
    }

    m->tail[0] = tail[0];
    m->tail[1] = tail[1];
    m->split = true;
    err = mdir_compact_in_place(lfs, m, m->count);
    if (err)
        goto fail;

    for (int k = nsplits - 1; k >= 0; k--)
        event_add(ev, 0, splits[k], created[k]->pair);
    return 0;

fail:
    for (int k = 0; k < ncreated; k++)
        lfs_mdir_forget(lfs, created[k]);
    return err;
}

void lfs_tagops_add(struct lfs_tagops *ops, uint32_t tag, const void *data)
{
    if (ops->count < LFS_MAX_TAGOPS) {
        ops->ops[ops->count].tag = tag;
        ops->ops[ops->count].data = data;
        ops->count++;
    }
}

/*
 * Commit ops to m: apply them to the decoded state, then append them to
 * the log, or compact (and split) the pair when they do not fit.  A
 * pending change of the global state rides along as a MOVESTATE delta.
 * On failure the pair is re-read from disk, so memory matches the disk.
 */
int lfs_mdir_commit(struct lfs *lfs, struct lfs_mdir *m,
                    const struct lfs_tagops *in)
{
    struct lfs_tagops ops = *in;
    struct lfs_gstate delta, newdelta = m->gdelta;
    uint8_t gbuf[12];
    int err;

    if (lfs->read_only)
        return LFS_ERR_ROFS;
    if (m->broken)
        return LFS_ERR_IO;

    /* the size bits of the tag only count orphans in memory */
    delta.tag = (lfs->gdisk.tag ^ lfs->gstate.tag) & ~0x3ffu;
    delta.pair[0] = lfs->gdisk.pair[0] ^ lfs->gstate.pair[0];
    delta.pair[1] = lfs->gdisk.pair[1] ^ lfs->gstate.pair[1];
    if (!lfs_gstate_iszero(&delta)) {
        newdelta.tag ^= delta.tag;
        newdelta.pair[0] ^= delta.pair[0];
        newdelta.pair[1] ^= delta.pair[1];
        gstate_encode(&newdelta, gbuf);
        lfs_tagops_add(&ops, LFS_MKTAG(LFS_T_MOVESTATE, LFS_ID_NONE, 12),
                       gbuf);
    }

    protect_replaced(lfs, m, &ops);

    /* apply to memory, remembering id splices for open handles */
    struct commit_events *ev = malloc(sizeof(*ev));
    if (!ev) {
        commit_end(lfs, false);
        return LFS_ERR_NOMEM;
    }
    ev->count = 0;
    for (int i = 0; i < ops.count; i++) {
        int delta;
        uint16_t id;
        err = apply_tag(m, ops.ops[i].tag, ops.ops[i].data, &delta, &id);
        if (err) {
            free(ev);
            mdir_refetch(lfs, m);
            commit_end(lfs, false);
            return err == LFS_ERR_CORRUPT ? LFS_ERR_INVAL : err;
        }
        if (delta)
            event_add(ev, delta, id, NULL);
    }

    /* append only where a torn write cannot reach earlier commits: an
     * image from another writer may have commits padded more finely than
     * this device needs */
    if (m->erased && m->count <= LFS_MDIR_MAX_IDS &&
        m->off % lfs->prog_align == 0 && append_fits(lfs, m, &ops)) {
        err = mdir_append(lfs, m, &ops);
        if (err == LFS_ERR_NOSPC)
            err = mdir_compact(lfs, m, ev);
    } else {
        err = mdir_compact(lfs, m, ev);
    }
    if (err) {
        free(ev);
        mdir_refetch(lfs, m);
        commit_end(lfs, false);
        return err;
    }

    lfs->gdisk.tag = (lfs->gdisk.tag & 0x3ffu) | (lfs->gstate.tag & ~0x3ffu);
    lfs->gdisk.pair[0] = lfs->gstate.pair[0];
    lfs->gdisk.pair[1] = lfs->gstate.pair[1];
    events_replay(lfs, m->pair, ev);
    free(ev);
    commit_end(lfs, true);
    return 0;
}

/*
 * Keep the files this commit removes or replaces allocated until it is
 * on disk: if an allocation inside the commit rescans, the decoded pair
 * already shows the new state, but the disk still references the old.
 */
static void protect_replaced(struct lfs *lfs, struct lfs_mdir *m,
                             const struct lfs_tagops *ops)
{
    lfs->nprotect = 0;
    for (int i = 0; i < ops->count; i++) {
        uint32_t tag = ops->ops[i].tag;
        uint16_t id = (uint16_t)LFS_TAG_ID(tag);
        bool replaces = LFS_TAG_TYPE3(tag) == LFS_T_DELETE ||
                        LFS_TAG_TYPE1(tag) == LFS_T_STRUCT;
        if (!replaces || id >= m->count ||
            lfs->nprotect >= LFS_MAX_TAGOPS)
            continue;
        const struct lfs_entry *e = &m->entries[id];
        if (e->struct_type == LFS_T_CTZSTRUCT && e->struct_len >= 8) {
            lfs->protect[lfs->nprotect][0] = lfs_le32(e->struct_data);
            lfs->protect[lfs->nprotect][1] = lfs_le32(e->struct_data + 4);
            lfs->nprotect++;
        }
    }
}

/*
 * End of a commit: the blocks it linked (or failed to) need no more
 * protection.  A failed commit leaves the wanted global state as it is
 * on disk, and a global state that still records a move or orphans
 * (because the second commit of a rename or remove failed) is finished
 * by the next change.
 */
static void commit_end(struct lfs *lfs, bool ok)
{
    lfs->nprotect = 0;
    lfs->size_cache = -1;
    lfs_unpin_all(lfs);
    if (!ok)
        lfs->gstate = lfs->gdisk;
    if (lfs_gstate_hasmove(&lfs->gdisk) || lfs_gstate_hasorphans(&lfs->gdisk))
        lfs->consistent = false;
}

/*
 * Allocate a new, empty pair.  Its revision continues from whatever the
 * first block held before, so a stale log left in the other block can
 * never look newer.  Nothing is written until the first compaction.
 */
int lfs_mdir_create(struct lfs *lfs, const uint32_t tail[2], bool split,
                    struct lfs_mdir **out)
{
    uint32_t a, b;
    uint8_t revbuf[4];
    int err;

    /* pinned until the commit that links the pair ends: a rescan in
     * between must not hand the blocks out again */
    err = lfs_alloc(lfs, &a);
    if (!err)
        err = lfs_pin(lfs, a);
    if (!err)
        err = lfs_alloc(lfs, &b);
    if (!err)
        err = lfs_pin(lfs, b);
    if (!err && a == b) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "the allocator returned block %u twice", a);
        err = LFS_ERR_CORRUPT;
    }
    if (err)
        return err;
    err = lfs_bd_read(lfs, b, 0, revbuf, 4);
    if (err == LFS_ERR_UNWRITTEN || err == LFS_ERR_AUTH ||
        err == LFS_ERR_CORRUPT)
        memset(revbuf, 0, 4); /* unreadable: it contains no newer log */
    else if (err)
        return err;

    struct lfs_mdir *m = calloc(1, sizeof(*m));
    if (!m)
        return LFS_ERR_NOMEM;
    m->pair[0] = a;
    m->pair[1] = b;
    m->rev = lfs_le32(revbuf) + 1;
    m->tail[0] = tail[0];
    m->tail[1] = tail[1];
    m->split = split;
    m->etag = 0xffffffffu;
    cache_insert(lfs, m);
    *out = m;
    return 0;
}
