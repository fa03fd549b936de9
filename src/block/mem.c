/*
 * In-memory block device, for tests and for building images in memory.
 */
#include <stdlib.h>
#include <string.h>

#include "block/bd.h"

/* Sector size reported by memory devices, the same as for image files. */
#define MEM_SECTOR_SIZE 512u

struct bd_mem {
    struct bd bd;      /* first, so a struct bd * converts back */
    uint8_t *data;     /* bd.size bytes */
};

static struct bd_mem *to_mem(struct bd *bd)
{
    return (struct bd_mem *)bd;
}

static int mem_read(struct bd *bd, uint32_t block, uint32_t off, void *buf,
                    size_t len)
{
    memcpy(buf, to_mem(bd)->data + bd_byte_offset(bd, block, off), len);
    return BD_OK;
}

static int mem_prog(struct bd *bd, uint32_t block, uint32_t off,
                    const void *buf, size_t len)
{
    memcpy(to_mem(bd)->data + bd_byte_offset(bd, block, off), buf, len);
    return BD_OK;
}

static int mem_erase(struct bd *bd, uint32_t block)
{
    memset(to_mem(bd)->data + bd_byte_offset(bd, block, 0), 0xff,
           bd->block_size);
    return BD_OK;
}

static int mem_sync(struct bd *bd)
{
    (void)bd;
    return BD_OK;
}

static void mem_close(struct bd *bd)
{
    struct bd_mem *mem = to_mem(bd);

    free(mem->data);
    free(mem);
}

static const struct bd_ops mem_ops = {
    .read = mem_read,
    .prog = mem_prog,
    .erase = mem_erase,
    .sync = mem_sync,
    .close = mem_close,
};

struct bd *bd_mem_new(uint64_t size)
{
    struct bd_mem *mem;

    if (size > SIZE_MAX)
        return NULL;

    mem = calloc(1, sizeof(*mem));
    if (mem == NULL)
        return NULL;
    /* calloc() of 0 bytes may return NULL, so an empty device gets one
     * spare byte. */
    mem->data = calloc(1, size > 0 ? (size_t)size : 1);
    if (mem->data == NULL) {
        free(mem);
        return NULL;
    }
    memset(mem->data, 0xff, (size_t)size);

    mem->bd.ops = &mem_ops;
    mem->bd.size = size;
    mem->bd.sector_size = MEM_SECTOR_SIZE;
    return &mem->bd;
}

uint8_t *bd_mem_data(struct bd *bd)
{
    if (bd == NULL || bd->ops != &mem_ops)
        return NULL;
    return to_mem(bd)->data;
}
