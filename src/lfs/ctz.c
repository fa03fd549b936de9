/*
 * CTZ skip-lists: how littlefs stores files larger than an inline entry.
 *
 * Block i of a file (i > 0) starts with ctz(i) + 1 little-endian pointers:
 * pointer k is the block of index i - 2^k.  Block 0 has none.  The file's
 * entry stores only the last block (the head) and the size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs/lfs_internal.h"

uint32_t lfs_ctz_header(uint32_t index)
{
    return index == 0 ? 0 : 4u * ((uint32_t)__builtin_ctz(index) + 1u);
}

/* File offset where the data of block index i starts.  Blocks 1..i-1 hold
 * sum(ctz(j) + 1) = 2(i-1) - popcount(i-1) pointers before it. */
static uint64_t ctz_start(uint32_t block_size, uint32_t i)
{
    if (i == 0)
        return 0;
    uint64_t ptrs = 2ull * (i - 1) - (uint64_t)__builtin_popcount(i - 1);
    return (uint64_t)i * block_size - 4 * ptrs;
}

/* Block index holding file offset off, and the byte offset inside that
 * block (after its pointers) in *boff. */
uint32_t lfs_ctz_index(uint32_t block_size, uint64_t off, uint32_t *boff)
{
    /* each block holds between block_size - 8 (amortized) and block_size
     * bytes of data, which brackets the index for a binary search */
    uint64_t lo = off / block_size;
    uint64_t hi = off / (block_size - 8) + 1;

    if (hi > UINT32_MAX)
        hi = UINT32_MAX;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (ctz_start(block_size, (uint32_t)mid) <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    uint32_t i = (uint32_t)lo;
    *boff = (uint32_t)(off - ctz_start(block_size, i)) + lfs_ctz_header(i);
    return i;
}

/* Fill blocks[0..n) by following the first pointer of each block back
 * from the head.  Every pointer is checked against the image size. */
int lfs_ctz_load(struct lfs *lfs, uint32_t head, uint32_t size,
                 uint32_t *blocks, uint32_t n)
{
    (void)size;
    if (n == 0)
        return 0;
    if (head >= lfs->block_count) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "file head block %u is outside the image", head);
        return LFS_ERR_CORRUPT;
    }
    blocks[n - 1] = head;
    for (uint32_t i = n - 1; i > 0; i--) {
        uint8_t ptr[4];
        int err = lfs_bd_read(lfs, blocks[i], 0, ptr, 4);
        if (err)
            return err;
        blocks[i - 1] = lfs_le32(ptr);
        if (blocks[i - 1] >= lfs->block_count) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "file block pointer %u is outside the image",
                     blocks[i - 1]);
            return LFS_ERR_CORRUPT;
        }
    }
    return 0;
}

/* Number of blocks a file of size bytes occupies. */
uint32_t lfs_ctz_count(uint32_t block_size, uint64_t size)
{
    uint32_t boff;
    return size == 0 ? 0 : lfs_ctz_index(block_size, size - 1, &boff) + 1;
}

int lfs_ctz_traverse(struct lfs *lfs, uint32_t head, uint32_t size,
                     int (*cb)(void *ctx, uint32_t block), void *ctx)
{
    uint32_t n = lfs_ctz_count(lfs->block_size, size);
    uint32_t block = head;

    if (n > lfs->block_count) {
        snprintf(lfs->detail, sizeof(lfs->detail),
                 "file size %u needs more blocks than the image has", size);
        return LFS_ERR_CORRUPT;
    }

    for (uint32_t i = n; i > 0; i--) {
        if (block >= lfs->block_count) {
            snprintf(lfs->detail, sizeof(lfs->detail),
                     "file block pointer %u is outside the image", block);
            return LFS_ERR_CORRUPT;
        }
        int err = cb(ctx, block);
        if (err)
            return err;
        if (i > 1) {
            uint8_t ptr[4];
            err = lfs_bd_read(lfs, block, 0, ptr, 4);
            if (err)
                return err;
            block = lfs_le32(ptr);
        }
    }
    return 0;
}
