/*
 * CRC-32 as littlefs uses it: polynomial 0x04c11db7 (processed in its
 * reflected form 0xedb88320), initial value 0xffffffff and, unlike zlib,
 * no final inversion.
 */
#include <stddef.h>
#include <stdint.h>

#include "lfs/lfs_internal.h"

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t lfs_crc(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    if (!crc_ready)
        crc_init();
    for (size_t i = 0; i < len; i++)
        crc = (crc >> 8) ^ crc_table[(crc ^ p[i]) & 0xff];
    return crc;
}

/* FNV-1a: a cheap hash that lets name lookups skip most comparisons. */
uint32_t lfs_name_hash(const uint8_t *name, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h ^= name[i];
        h *= 16777619u;
    }
    return h;
}
