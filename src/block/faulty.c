/*
 * Fault-injecting wrapper for power-loss tests: after a chosen number of
 * prog and erase calls the device "loses power", so that tests can check
 * that the filesystem above survives an interrupted write at every point.
 *
 * The wrapper has the inner device's geometry and forwards requests with
 * the same block numbers.  bd_set_block_size() on the wrapper also sets
 * the inner device's block size through the set_block_size hook, so that
 * the same numbers address the same bytes in both.
 */
#include <stdlib.h>

#include "block/bd.h"

struct bd_faulty {
    struct bd bd;        /* first, so a struct bd * converts back */
    struct bd *inner;    /* not owned */
    uint64_t writes;     /* prog and erase calls seen since the last arm */
    uint64_t cut_after;  /* number of the call that loses power, 0: never */
    int tear;            /* the cut prog writes its first half */
};

static struct bd_faulty *to_faulty(struct bd *bd)
{
    return (struct bd_faulty *)bd;
}

static int power_is_lost(const struct bd_faulty *faulty)
{
    return faulty->cut_after != 0 && faulty->writes >= faulty->cut_after;
}

static int fail_powerloss(struct bd_faulty *faulty, const char *operation)
{
    return bd_fail(&faulty->bd, BD_ERR_POWERLOSS, "%s failed: power was cut "
                   "at write %llu", operation,
                   (unsigned long long)faulty->cut_after);
}

/* Copy a failure of the inner device into the wrapper's error detail. */
static int inner_result(struct bd_faulty *faulty, int err)
{
    if (err != BD_OK)
        return bd_fail(&faulty->bd, err, "%s", faulty->inner->error);
    return BD_OK;
}

/* Forwarding with the same block numbers is only right while both devices
 * use the same unit.  Calling bd_set_block_size() on the inner device
 * after wrapping it would break that. */
static int check_geometry(struct bd_faulty *faulty)
{
    if (faulty->inner->block_size != faulty->bd.block_size)
        return bd_fail(&faulty->bd, BD_ERR_INVAL, "inner device block size "
                       "%u differs from the wrapper's %u",
                       faulty->inner->block_size, faulty->bd.block_size);
    return BD_OK;
}

static int faulty_read(struct bd *bd, uint32_t block, uint32_t off,
                       void *buf, size_t len)
{
    struct bd_faulty *faulty = to_faulty(bd);
    int err = check_geometry(faulty);

    if (err != BD_OK)
        return err;
    err = faulty->inner->ops->read(faulty->inner, block, off, buf, len);
    return inner_result(faulty, err);
}

static int faulty_prog(struct bd *bd, uint32_t block, uint32_t off,
                       const void *buf, size_t len)
{
    struct bd_faulty *faulty = to_faulty(bd);
    struct bd *inner = faulty->inner;
    int err = check_geometry(faulty);

    if (err != BD_OK)
        return err;

    faulty->writes++;
    if (!power_is_lost(faulty))
        return inner_result(faulty, inner->ops->prog(inner, block, off, buf,
                                                     len));

    /* Only the call that loses power can tear, and later calls change
     * nothing. */
    if (faulty->tear && faulty->writes == faulty->cut_after && len / 2 > 0) {
        err = inner->ops->prog(inner, block, off, buf, len / 2);
        if (err != BD_OK)
            return inner_result(faulty, err);
    }
    return fail_powerloss(faulty, "prog");
}

static int faulty_erase(struct bd *bd, uint32_t block)
{
    struct bd_faulty *faulty = to_faulty(bd);
    int err = check_geometry(faulty);

    if (err != BD_OK)
        return err;

    faulty->writes++;
    if (power_is_lost(faulty))
        return fail_powerloss(faulty, "erase");
    return inner_result(faulty, faulty->inner->ops->erase(faulty->inner,
                                                          block));
}

static int faulty_sync(struct bd *bd)
{
    struct bd_faulty *faulty = to_faulty(bd);

    if (power_is_lost(faulty))
        return fail_powerloss(faulty, "sync");
    return inner_result(faulty, faulty->inner->ops->sync(faulty->inner));
}

static void faulty_close(struct bd *bd)
{
    free(to_faulty(bd));
}

static int faulty_set_block_size(struct bd *bd, uint32_t block_size)
{
    struct bd_faulty *faulty = to_faulty(bd);

    return inner_result(faulty, bd_set_block_size(faulty->inner,
                                                  block_size));
}

static const struct bd_ops faulty_ops = {
    .read = faulty_read,
    .prog = faulty_prog,
    .erase = faulty_erase,
    .sync = faulty_sync,
    .close = faulty_close,
    .set_block_size = faulty_set_block_size,
};

struct bd *bd_faulty_new(struct bd *inner, uint64_t cut_after, int tear)
{
    struct bd_faulty *faulty;

    if (inner == NULL)
        return NULL;
    faulty = calloc(1, sizeof(*faulty));
    if (faulty == NULL)
        return NULL;

    faulty->bd.ops = &faulty_ops;
    faulty->bd.size = inner->size;
    faulty->bd.sector_size = inner->sector_size;
    faulty->bd.prog_align = inner->prog_align;
    faulty->bd.block_size = inner->block_size;
    faulty->bd.block_count = inner->block_count;
    faulty->inner = inner;
    faulty->cut_after = cut_after;
    faulty->tear = tear;
    return &faulty->bd;
}

uint64_t bd_faulty_writes(struct bd *bd)
{
    if (bd == NULL || bd->ops != &faulty_ops)
        return 0;
    return to_faulty(bd)->writes;
}

void bd_faulty_rearm(struct bd *bd, uint64_t cut_after, int tear)
{
    struct bd_faulty *faulty;

    if (bd == NULL || bd->ops != &faulty_ops)
        return;
    faulty = to_faulty(bd);
    faulty->writes = 0;
    faulty->cut_after = cut_after;
    faulty->tear = tear;
}
