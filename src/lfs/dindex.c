/*
 * Name indexes of large directories.
 *
 * littlefs keeps a directory as a chain of metadata pairs, and the
 * reference finds a name by scanning every pair.  With thousands of
 * entries that makes each lookup, and so each create, cost time in
 * proportion to the directory's size.  So directories past a threshold
 * get a hash table from name hash to the decoded pair that contains the
 * name, and a lookup scans one pair (at most 254 entries).
 *
 * The index follows every change to the decoded pairs it covers: names
 * set and deleted by commits, entries moved by splits.  Anything less
 * orderly (a pair re-read after a failed commit, a pair unlinked) simply
 * drops the index; the next lookup rebuilds it.
 */
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs_internal.h"

/* Directories with fewer entries are scanned directly. */
#define DINDEX_MIN_ENTRIES 64

struct dslot {
    uint32_t hash;
    struct lfs_mdir *m;   /* NULL: empty; DSLOT_GONE: deleted */
};

#define DSLOT_GONE ((struct lfs_mdir *)1)

struct lfs_dindex {
    struct lfs_dindex *next;
    struct lfs *lfs;
    uint32_t nslots;       /* power of two */
    uint32_t used;         /* live and deleted slots */
    uint32_t live;
    struct dslot *slots;
    struct lfs_mdir **members;
    uint32_t nmembers, members_cap;
    struct lfs_mdir *last;   /* the directory's last pair */
};

static void remove_from_list(struct lfs *lfs, struct lfs_dindex *x)
{
    struct lfs_dindex **pp = &lfs->dindexes;
    while (*pp && *pp != x)
        pp = &(*pp)->next;
    if (*pp)
        *pp = x->next;
}

void lfs_dindex_destroy(struct lfs_dindex *x)
{
    if (!x)
        return;
    for (uint32_t i = 0; i < x->nmembers; i++)
        x->members[i]->dindex = NULL;
    remove_from_list(x->lfs, x);
    free(x->members);
    free(x->slots);
    free(x);
}

void lfs_dindex_destroy_all(struct lfs *lfs)
{
    while (lfs->dindexes)
        lfs_dindex_destroy(lfs->dindexes);
}

static int add_member(struct lfs_dindex *x, struct lfs_mdir *m)
{
    if (x->nmembers == x->members_cap) {
        uint32_t cap = x->members_cap ? x->members_cap * 2 : 16;
        struct lfs_mdir **p = realloc(x->members, cap * sizeof(*p));
        if (!p)
            return LFS_ERR_NOMEM;
        x->members = p;
        x->members_cap = cap;
    }
    x->members[x->nmembers++] = m;
    m->dindex = x;
    return 0;
}

static int rehash(struct lfs_dindex *x, uint32_t nslots)
{
    struct dslot *old = x->slots;
    uint32_t oldn = x->nslots;
    struct dslot *slots = calloc(nslots, sizeof(*slots));

    if (!slots)
        return LFS_ERR_NOMEM;
    x->slots = slots;
    x->nslots = nslots;
    x->used = x->live = 0;
    for (uint32_t i = 0; i < oldn; i++) {
        if (old[i].m && old[i].m != DSLOT_GONE) {
            uint32_t k = old[i].hash & (nslots - 1);
            while (slots[k].m)
                k = (k + 1) & (nslots - 1);
            slots[k] = old[i];
            x->used++;
            x->live++;
        }
    }
    free(old);
    return 0;
}

/* On failure the index is dropped: it must never miss a name. */
void lfs_dindex_add(struct lfs_mdir *m, uint32_t hash)
{
    struct lfs_dindex *x = m->dindex;

    if (!x)
        return;
    if ((x->used + 1) * 4 > x->nslots * 3 &&
        rehash(x, x->live * 4 > x->nslots ? x->nslots * 2 : x->nslots)) {
        lfs_dindex_destroy(x);
        return;
    }
    uint32_t k = hash & (x->nslots - 1);
    while (x->slots[k].m && x->slots[k].m != DSLOT_GONE)
        k = (k + 1) & (x->nslots - 1);
    if (!x->slots[k].m)
        x->used++;
    x->slots[k].hash = hash;
    x->slots[k].m = m;
    x->live++;
}

void lfs_dindex_remove(struct lfs_mdir *m, uint32_t hash)
{
    struct lfs_dindex *x = m->dindex;

    if (!x)
        return;
    uint32_t k = hash & (x->nslots - 1);
    while (x->slots[k].m) {
        if (x->slots[k].m == m && x->slots[k].hash == hash) {
            x->slots[k].m = DSLOT_GONE;
            x->live--;
            return;
        }
        k = (k + 1) & (x->nslots - 1);
    }
}

/* Entries [from, count) of src moved to dst by a split. */
void lfs_dindex_moved(struct lfs_mdir *src, struct lfs_mdir *dst)
{
    struct lfs_dindex *x = src->dindex;

    if (!x)
        return;
    if (add_member(x, dst)) {
        lfs_dindex_destroy(x);
        return;
    }
    /* splits hand over their last chunk first, and it ends the chain */
    if (x->last == src)
        x->last = dst;
    for (uint16_t i = 0; i < dst->count; i++) {
        const struct lfs_entry *e = &dst->entries[i];
        if (!e->type)
            continue;
        lfs_dindex_remove(src, e->name_hash);
        lfs_dindex_add(dst, e->name_hash);
        if (!dst->dindex)
            return;
    }
}

static bool named(const struct lfs_entry *e)
{
    return e->type == LFS_T_REG || e->type == LFS_T_DIR;
}

/* Index the directory starting at head if it is large enough to gain. */
static int build(struct lfs *lfs, struct lfs_mdir *head)
{
    uint32_t total = 0, hops = 0;
    struct lfs_mdir *m = head;
    int err = 0;

    for (;;) {
        total += m->count;
        if (!m->split)
            break;
        if (++hops > lfs->block_count)
            return LFS_ERR_CORRUPT;
        uint32_t tail[2] = {m->tail[0], m->tail[1]};
        err = lfs_mdir_get(lfs, tail, &m);
        if (err)
            return err;
        if (m->dindex)
            return 0; /* a corrupt chain shared with another directory */
    }
    if (total < DINDEX_MIN_ENTRIES)
        return 0;

    struct lfs_dindex *x = calloc(1, sizeof(*x));
    if (!x)
        return LFS_ERR_NOMEM;
    x->lfs = lfs;
    x->next = lfs->dindexes;
    lfs->dindexes = x;
    uint32_t nslots = 64;
    while (nslots < total * 2)
        nslots *= 2;
    if (rehash(x, nslots)) {
        lfs_dindex_destroy(x);
        return LFS_ERR_NOMEM;
    }

    m = head;
    for (hops = 0;; hops++) {
        if (add_member(x, m)) {
            lfs_dindex_destroy(x);
            return LFS_ERR_NOMEM;
        }
        for (uint16_t i = 0; i < m->count; i++) {
            if (named(&m->entries[i]))
                lfs_dindex_add(m, m->entries[i].name_hash);
        }
        if (!m->dindex)
            return 0;
        if (!m->split) {
            x->last = m;
            return 0;
        }
        uint32_t tail[2] = {m->tail[0], m->tail[1]};
        err = lfs_mdir_get(lfs, tail, &m);
        if (err) {
            lfs_dindex_destroy(x);
            return err;
        }
    }
}

/*
 * Find a name through the index of the directory whose first pair is
 * head.  Returns 1 and sets *out and *id when found, 0 when the name is not
 * in the directory, or -1 when the directory has no index (the caller
 * scans instead).
 */
int lfs_dindex_lookup(struct lfs *lfs, struct lfs_mdir *head,
                      const char *name, uint16_t len, uint32_t hash,
                      bool (*visible)(struct lfs *, const struct lfs_mdir *,
                                      uint16_t),
                      struct lfs_mdir **out, uint16_t *id)
{
    if (!head->dindex && build(lfs, head) != 0)
        return -1;
    struct lfs_dindex *x = head->dindex;
    if (!x)
        return -1;

    uint32_t k = hash & (x->nslots - 1);
    while (x->slots[k].m) {
        struct lfs_mdir *m = x->slots[k].m;
        if (m != DSLOT_GONE && x->slots[k].hash == hash) {
            for (uint16_t i = 0; i < m->count; i++) {
                const struct lfs_entry *e = &m->entries[i];
                if (e->name_hash == hash && e->name_len == len &&
                    visible(lfs, m, i) && memcmp(e->name, name, len) == 0) {
                    *out = m;
                    *id = i;
                    return 1;
                }
            }
        }
        k = (k + 1) & (x->nslots - 1);
    }
    return 0;
}

/* The last pair of an indexed directory (where new entries go), or NULL
 * when head's directory has no index. */
struct lfs_mdir *lfs_dindex_last(struct lfs_mdir *head)
{
    return head->dindex ? head->dindex->last : NULL;
}
