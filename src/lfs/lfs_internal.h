/*
 * Internals of the littlefs engine, shared by the files of src/lfs/.
 *
 * The engine keeps a decoded copy of every metadata pair it has read
 * (struct lfs_mdir): the entries of the pair as the on-disk log defines
 * them after replaying every valid commit.  Changes are expressed as lists
 * of littlefs tags (struct lfs_tagop); a commit applies them to the
 * decoded copy with the same code that replays logs at fetch time, then
 * either appends them to the on-disk log or rewrites (compacts) the pair
 * from the decoded copy.  So what is in memory is always what any
 * littlefs reader would see on disk.
 */
#ifndef SSHFSD_LFS_INTERNAL_H
#define SSHFSD_LFS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "lfs/lfs.h"

#define LFS_BLOCK_NULL 0xffffffffu

/* Tag layout: valid bit, 11-bit type, 10-bit id, 10-bit length. */
#define LFS_MKTAG(type, id, size) \
    (((uint32_t)(type) << 20) | ((uint32_t)(id) << 10) | (uint32_t)(size))
#define LFS_TAG_TYPE1(tag) (((tag) & 0x70000000u) >> 20)
#define LFS_TAG_TYPE3(tag) (((tag) & 0x7ff00000u) >> 20)
#define LFS_TAG_CHUNK(tag) (((tag) & 0x0ff00000u) >> 20)
#define LFS_TAG_ID(tag) (((tag) & 0x000ffc00u) >> 10)
#define LFS_TAG_SIZE(tag) ((tag) & 0x000003ffu)
#define LFS_TAG_ISVALID(tag) (!((tag) & 0x80000000u))
#define LFS_TAG_ISDELETE(tag) (LFS_TAG_SIZE(tag) == 0x3ffu)
/* Bytes the tag occupies on disk, itself included. */
#define LFS_TAG_DSIZE(tag) (4u + (LFS_TAG_ISDELETE(tag) ? 0u : LFS_TAG_SIZE(tag)))

/* Tag types (type3 values and type1 groups). */
enum {
    LFS_T_NAME = 0x000,
    LFS_T_REG = 0x001,
    LFS_T_DIR = 0x002,
    LFS_T_SUPERBLOCK = 0x0ff,
    LFS_T_STRUCT = 0x200,
    LFS_T_DIRSTRUCT = 0x200,
    LFS_T_INLINESTRUCT = 0x201,
    LFS_T_CTZSTRUCT = 0x202,
    LFS_T_USERATTR = 0x300,
    LFS_T_SPLICE = 0x400,
    LFS_T_CREATE = 0x401,
    LFS_T_DELETE = 0x4ff,
    LFS_T_CRC = 0x500,
    LFS_T_CCRC = 0x500,
    LFS_T_FCRC = 0x5ff,
    LFS_T_TAIL = 0x600,
    LFS_T_SOFTTAIL = 0x600,
    LFS_T_HARDTAIL = 0x601,
    LFS_T_GLOBALS = 0x700,
    LFS_T_MOVESTATE = 0x7ff,
};

#define LFS_ID_NONE 0x3ffu
/* The reference splits pairs before they hold 255 entries; so do we. */
#define LFS_MDIR_MAX_IDS 0xfe

/* Global state: a move in progress and the orphan count, stored as the
 * XOR of every pair's MOVESTATE delta (12 bytes little-endian on disk). */
struct lfs_gstate {
    uint32_t tag;
    uint32_t pair[2];
};

struct lfs_uattr {
    uint8_t type;
    uint16_t size;
    uint8_t *data;
};

/* One id of a metadata pair, decoded. */
struct lfs_entry {
    uint16_t type;        /* NAME type3: REG, DIR, SUPERBLOCK; 0 = unnamed */
    uint16_t name_len;
    uint8_t *name;
    uint32_t name_hash;
    uint16_t struct_type; /* DIRSTRUCT, INLINESTRUCT, CTZSTRUCT; 0 = none */
    uint16_t struct_len;
    uint8_t *struct_data;
    uint16_t nattrs;
    struct lfs_uattr *attrs;
};

/* A decoded metadata pair. */
struct lfs_mdir {
    uint32_t pair[2];     /* pair[0] contains the newest valid log */
    uint32_t rev;
    uint32_t off;         /* end of the last valid commit in pair[0] */
    uint32_t etag;        /* tag the next commit's first tag is XORed with */
    bool erased;          /* bytes from off to the end are erased (0xff) */
    uint16_t count;
    uint16_t cap;
    struct lfs_entry *entries;
    uint32_t tail[2];     /* LFS_BLOCK_NULL pair when there is no tail */
    bool split;           /* tail is a hard tail (same directory) */
    bool broken;          /* re-reading after a failed commit failed too:
                             no entries, and every use fails */
    struct lfs_gstate gdelta;
    struct lfs_mdir *hnext; /* hash chain of the mdir cache */
    struct lfs_dindex *dindex; /* name index of its directory, if any */
};

/* A change to a metadata pair: a littlefs tag and its data.  For tags of
 * the SPLICE group the data is unused. */
struct lfs_tagop {
    uint32_t tag;
    const void *data;
};

#define LFS_MAX_TAGOPS 264

struct lfs_tagops {
    int count;
    struct lfs_tagop ops[LFS_MAX_TAGOPS];
};

/* Location of an entry: a pair and an id in it. */
struct lfs_loc {
    uint32_t pair[2];
    uint16_t id;
};

/* State shared by every handle open on one file. */
struct lfs_node {
    struct lfs_node *next;
    struct lfs *lfs;
    int refs;
    struct lfs_loc loc;
    bool removed;          /* entry deleted while open */
    bool dirty;            /* contents or attributes differ from disk */
    bool is_inline;
    uint64_t size;
    /* inline contents */
    uint8_t *inline_buf;
    size_t inline_cap;
    /* CTZ skip-list: physical block of every block index */
    uint32_t *blocks;
    uint32_t nblocks;      /* blocks in use for size */
    uint32_t blocks_cap;
    bool blocks_loaded;
    uint32_t ctz_head;     /* committed skip-list */
    uint32_t ctz_size;
    uint8_t *fresh;        /* per index: block written since the last commit */
    uint32_t rewrite_from; /* indexes >= this must be copied before commit */
    uint32_t moved_from;   /* lowest index whose block changed after a
                              later block was written pointing at it */
    uint32_t flushed_hi;   /* fresh blocks below this index are on disk */
    /* one-block write-back cache */
    uint8_t *cache;
    uint32_t cache_index;
    bool cache_valid;
    bool cache_dirty;
    /* attributes to commit with the next sync */
    bool mtime_pending;
    uint8_t mtime[LFS_TIME_ATTR_SIZE];
    bool mtime_explicit;   /* set by the caller, do not restamp */
};

struct lfs_file {
    struct lfs_file *next;     /* every open handle of the mount */
    struct lfs_node *node;
    int flags;
    uint64_t pos;
};

struct lfs_dir {
    struct lfs_dir *next;
    struct lfs *lfs;
    uint32_t head[2];
    struct lfs_loc pos;
    bool end;
    bool removed;
};

#define LFS_MDIR_HASH 1024

struct lfs {
    struct bd *bd;
    uint32_t block_size;
    uint32_t block_count;
    uint32_t disk_version;
    uint32_t name_max;
    uint32_t name_fit;         /* maximum name length a metadata block fits */
    uint32_t file_max;
    uint32_t attr_max;
    uint32_t inline_max;
    uint32_t prog_align;       /* commits are padded to this */
    bool read_only;
    bool stamp_mtime;
    uint32_t root[2];

    struct lfs_gstate gstate;  /* wanted global state */
    struct lfs_gstate gdisk;   /* global state as on disk */
    bool consistent;           /* pending moves and orphans are fixed */

    /* decoded metadata pairs, hashed by the smaller block of the pair */
    struct lfs_mdir *mdirs[LFS_MDIR_HASH];
    struct lfs_dindex *dindexes;

    /* allocator */
    uint8_t *used;             /* bitmap: block referenced or in flight */
    uint32_t alloc_cursor;
    uint32_t alloc_free_hint;  /* free blocks left since the last scan */
    bool writes_since_sync;    /* progs to blocks other than last_block */
    uint32_t last_block;
    int64_t size_cache;        /* lfs_fs_size's last result, -1: stale */
    uint32_t *pinned;          /* blocks allocated by an unfinished operation */
    int npinned, pinned_cap;
    /* files a commit in progress removes or replaces: the commit is not
     * on disk yet, so their blocks stay in use for the allocator */
    uint32_t protect[LFS_MAX_TAGOPS][2];
    int nprotect;

    struct lfs_node *nodes;
    struct lfs_file *files;
    struct lfs_dir *dirs;

    uint8_t *buf;              /* block-sized scratch buffer */
    uint8_t *buf2;
    char detail[BD_ERROR_MAX];
};

/* crc.c */
uint32_t lfs_crc(uint32_t crc, const void *buf, size_t len);

/* util */
static inline uint32_t lfs_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline void lfs_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t lfs_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static inline void lfs_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline bool lfs_pair_isnull(const uint32_t pair[2])
{
    return pair[0] == LFS_BLOCK_NULL || pair[1] == LFS_BLOCK_NULL;
}

/* Pairs are equal when they share a block (their order swaps on every
 * compaction). */
static inline bool lfs_pair_eq(const uint32_t a[2], const uint32_t b[2])
{
    return a[0] == b[0] || a[0] == b[1] || a[1] == b[0] || a[1] == b[1];
}

static inline bool lfs_gstate_iszero(const struct lfs_gstate *g)
{
    return g->tag == 0 && g->pair[0] == 0 && g->pair[1] == 0;
}

static inline bool lfs_gstate_hasmove(const struct lfs_gstate *g)
{
    return LFS_TAG_TYPE1(g->tag) != 0;
}

/* Orphans are marked by the top bit of the tag alone: like the
 * reference, we never store the count's size bits on disk. */
static inline bool lfs_gstate_hasorphans(const struct lfs_gstate *g)
{
    return (g->tag & 0x80000000u) != 0;
}

uint32_t lfs_name_hash(const uint8_t *name, size_t len);

/* Block device access with error mapping (lfs.c). */
int lfs_bd_read(struct lfs *lfs, uint32_t block, uint32_t off, void *buf,
                size_t len);
int lfs_bd_prog(struct lfs *lfs, uint32_t block, uint32_t off,
                const void *buf, size_t len);
/* Write barrier: called before a metadata commit to block; syncs the
 * device if anything else was written since the last sync. */
int lfs_bd_barrier(struct lfs *lfs, uint32_t block);
int lfs_bd_sync(struct lfs *lfs);

/* mdir.c */
int lfs_mdir_get(struct lfs *lfs, const uint32_t pair[2],
                 struct lfs_mdir **out);
void lfs_mdir_forget(struct lfs *lfs, struct lfs_mdir *m);
void lfs_mdir_cache_clear(struct lfs *lfs);
int lfs_mdir_commit(struct lfs *lfs, struct lfs_mdir *m,
                    const struct lfs_tagops *ops);
int lfs_mdir_create(struct lfs *lfs, const uint32_t tail[2], bool split,
                    struct lfs_mdir **out);
int lfs_mdir_decode_block(struct lfs *lfs, const uint8_t *buf,
                          uint32_t block_size, struct lfs_mdir *m);
void lfs_mdir_free_entries(struct lfs_mdir *m);
int lfs_mdir_write_compact(struct lfs *lfs, struct lfs_mdir *m,
                           uint16_t begin, uint16_t end, uint32_t block,
                           uint32_t rev, const uint32_t tail[2], bool split,
                           const struct lfs_gstate *gdelta,
                           struct lfs_mdir *dst);
const struct lfs_uattr *lfs_entry_attr(const struct lfs_entry *e,
                                       uint8_t type);
void lfs_tagops_add(struct lfs_tagops *ops, uint32_t tag, const void *data);

/* dindex.c: name indexes of large directories */
struct lfs_dindex;
void lfs_dindex_destroy(struct lfs_dindex *x);
void lfs_dindex_destroy_all(struct lfs *lfs);
void lfs_dindex_add(struct lfs_mdir *m, uint32_t hash);
void lfs_dindex_remove(struct lfs_mdir *m, uint32_t hash);
void lfs_dindex_moved(struct lfs_mdir *src, struct lfs_mdir *dst);
struct lfs_mdir *lfs_dindex_last(struct lfs_mdir *head);
int lfs_dindex_lookup(struct lfs *lfs, struct lfs_mdir *head,
                      const char *name, uint16_t len, uint32_t hash,
                      bool (*visible)(struct lfs *, const struct lfs_mdir *,
                                      uint16_t),
                      struct lfs_mdir **out, uint16_t *id);

/* lfs.c: paths and directories */
int lfs_find_pred(struct lfs *lfs, const uint32_t pair[2],
                  struct lfs_mdir **pred);
int lfs_force_consistency(struct lfs *lfs);

/* alloc.c */
int lfs_alloc(struct lfs *lfs, uint32_t *block);
int lfs_alloc_init(struct lfs *lfs);
int lfs_alloc_scan(struct lfs *lfs, uint8_t *bitmap, bool include_open);
int lfs_pin(struct lfs *lfs, uint32_t block);
void lfs_unpin_all(struct lfs *lfs);

/* ctz.c */
uint32_t lfs_ctz_index(uint32_t block_size, uint64_t off, uint32_t *boff);
uint32_t lfs_ctz_header(uint32_t index);
uint32_t lfs_ctz_count(uint32_t block_size, uint64_t size);
int lfs_ctz_load(struct lfs *lfs, uint32_t head, uint32_t size,
                 uint32_t *blocks, uint32_t n);
int lfs_ctz_traverse(struct lfs *lfs, uint32_t head, uint32_t size,
                     int (*cb)(void *ctx, uint32_t block), void *ctx);

/* file.c: hooks for id changes in metadata pairs */
void lfs_open_splice(struct lfs *lfs, const uint32_t pair[2], uint16_t id,
                     int delta);
void lfs_open_split(struct lfs *lfs, const uint32_t oldpair[2],
                    uint16_t split, const uint32_t newpair[2]);
void lfs_open_drop(struct lfs *lfs, const uint32_t pair[2],
                   const uint32_t next[2], bool dir_removed);
int lfs_nodes_flush(struct lfs *lfs);
void lfs_nodes_free(struct lfs *lfs);
void lfs_node_note_mtime(struct lfs *lfs, const struct lfs_mdir *m,
                         uint16_t id, const void *buf, size_t size);
int lfs_entry_info(struct lfs *lfs, const struct lfs_mdir *m, uint16_t id,
                   struct lfs_info *info);
struct lfs_node **lfs_nodes_at(struct lfs *lfs, const struct lfs_mdir *m,
                               uint16_t id, int *n);
int lfs_entry_dirpair(struct lfs *lfs, const struct lfs_entry *e,
                      uint32_t pair[2]);
ssize_t lfs_entry_getattr(struct lfs *lfs, const struct lfs_mdir *m,
                          uint16_t id, uint8_t type, void *buf, size_t size);
int lfs_entry_setattr(struct lfs *lfs, struct lfs_mdir *m, uint16_t id,
                      uint8_t type, const void *buf, size_t size, bool remove);
int lfs_begin_change(struct lfs *lfs);
int lfs_create_entry(struct lfs *lfs, const char *path, struct lfs_mdir **m,
                     uint16_t *id, bool *created, bool create);

int lfs_map_bd_error(struct lfs *lfs, int err);

#endif
