/*
 * The bd_* wrappers: range checks and error details shared by every block
 * device, so that implementations only ever see requests inside the device.
 */
#include <stdarg.h>
#include <stdio.h>

#include "block/bd.h"

const char *bd_strerror(int err)
{
    switch (err) {
    case BD_OK:
        return "success";
    case BD_ERR_IO:
        return "input/output error";
    case BD_ERR_RANGE:
        return "request outside the device";
    case BD_ERR_AUTH:
        return "data failed authentication";
    case BD_ERR_NOMEM:
        return "out of memory";
    case BD_ERR_INVAL:
        return "invalid argument";
    case BD_ERR_POWERLOSS:
        return "power loss (fault injection)";
    case BD_ERR_UNWRITTEN:
        return "sector was never written";
    default:
        return "unknown block device error";
    }
}

int bd_fail(struct bd *bd, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(bd->error, sizeof(bd->error), fmt, ap);
    va_end(ap);
    return err;
}

int bd_set_block_size(struct bd *bd, uint32_t block_size)
{
    uint64_t count;
    int err;

    if (block_size == 0)
        return bd_fail(bd, BD_ERR_INVAL, "block size must not be 0");
    if (bd->size == 0)
        return bd_fail(bd, BD_ERR_INVAL, "image is empty (0 bytes)");
    if (bd->size % block_size != 0)
        return bd_fail(bd, BD_ERR_INVAL,
                       "image size %llu bytes is not a multiple of the "
                       "block size %u",
                       (unsigned long long)bd->size, block_size);

    count = bd->size / block_size;
    if (count > UINT32_MAX)
        return bd_fail(bd, BD_ERR_INVAL,
                       "image size %llu bytes holds %llu blocks of %u "
                       "bytes, more than the maximum %u",
                       (unsigned long long)bd->size,
                       (unsigned long long)count, block_size, UINT32_MAX);

    if (bd->ops->set_block_size != NULL) {
        err = bd->ops->set_block_size(bd, block_size);
        if (err != BD_OK)
            return err;
    }

    bd->block_size = block_size;
    bd->block_count = (uint32_t)count;
    return BD_OK;
}

/* Check that len bytes at off inside block lie within the device. */
static int check_range(struct bd *bd, const char *what, uint32_t block,
                       uint32_t off, size_t len)
{
    if (bd->block_size == 0)
        return bd_fail(bd, BD_ERR_INVAL, "%s of block %u before the block "
                       "size was set", what, block);
    if (block >= bd->block_count)
        return bd_fail(bd, BD_ERR_RANGE, "%s of block %u, but the device "
                       "has %u blocks", what, block, bd->block_count);
    if (off > bd->block_size || len > bd->block_size - off)
        return bd_fail(bd, BD_ERR_RANGE, "%s of %zu bytes at offset %u "
                       "crosses the end of block %u (%u bytes)",
                       what, len, off, block, bd->block_size);
    return BD_OK;
}

int bd_read(struct bd *bd, uint32_t block, uint32_t off, void *buf,
            size_t len)
{
    int err = check_range(bd, "read", block, off, len);

    if (err != BD_OK)
        return err;
    if (len == 0)
        return BD_OK;
    return bd->ops->read(bd, block, off, buf, len);
}

int bd_prog(struct bd *bd, uint32_t block, uint32_t off, const void *buf,
            size_t len)
{
    int err = check_range(bd, "prog", block, off, len);

    if (err != BD_OK)
        return err;
    if (len == 0)
        return BD_OK;
    return bd->ops->prog(bd, block, off, buf, len);
}

int bd_erase(struct bd *bd, uint32_t block)
{
    int err = check_range(bd, "erase", block, 0, 0);

    if (err != BD_OK)
        return err;
    return bd->ops->erase(bd, block);
}

int bd_sync(struct bd *bd)
{
    return bd->ops->sync(bd);
}

void bd_close(struct bd *bd)
{
    if (bd != NULL)
        bd->ops->close(bd);
}

/*
 * Raw reads address the device in blocks once the block size is known and
 * in sectors before that, and are split so that no piece crosses the end of
 * its unit, as the bd_ops contract promises implementations.
 */
int bd_read_raw(struct bd *bd, uint64_t off, void *buf, size_t len)
{
    uint32_t unit = bd->block_size != 0 ? bd->block_size : bd->sector_size;
    uint8_t *out = buf;

    if (off > bd->size || len > bd->size - off)
        return bd_fail(bd, BD_ERR_RANGE, "raw read of %zu bytes at offset "
                       "%llu past the end of the device (%llu bytes)",
                       len, (unsigned long long)off,
                       (unsigned long long)bd->size);
    if (unit == 0)
        return bd_fail(bd, BD_ERR_INVAL, "device has no sector size");
    if (len != 0 && (off + len - 1) / unit > UINT32_MAX)
        return bd_fail(bd, BD_ERR_RANGE, "raw read at offset %llu lies past "
                       "unit %u of %u bytes",
                       (unsigned long long)off, UINT32_MAX, unit);

    while (len > 0) {
        uint32_t block = (uint32_t)(off / unit);
        uint32_t in_unit = (uint32_t)(off % unit);
        size_t piece = unit - in_unit;
        int err;

        if (piece > len)
            piece = len;
        err = bd->ops->read(bd, block, in_unit, out, piece);
        if (err != BD_OK)
            return err;

        off += piece;
        out += piece;
        len -= piece;
    }
    return BD_OK;
}
