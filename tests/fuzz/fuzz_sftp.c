/*
 * libFuzzer target: the input is the byte stream an SFTP client sends
 * after INIT (which the target sends first).  It drives a session over a
 * small in-memory image with a few files and directories.  The input is
 * fed in pieces of varying size, and the output is sometimes left to pile
 * up and sometimes taken in part, so that framing across reads and the
 * output bound are exercised as well as the requests.
 *
 * Any crash, hang, leak or sanitizer report is a bug, and so is output
 * that is not a sequence of well-formed packets no longer than the
 * packet limit.
 *
 * Seeds: tests/fuzz/seeds/fuzz_sftp/ (request sequences).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "sftp/sftp.h"
#include "sftp/sftp_proto.h"
#include "vfs/vfs.h"

#define IMAGE_BLOCK_SIZE 512u
#define IMAGE_BLOCKS 512u
#define IMAGE_SIZE ((size_t)IMAGE_BLOCK_SIZE * IMAGE_BLOCKS)

/* The output a client may leave unread before the session stops taking
 * input, plus the reply that crosses the line. */
#define OUTPUT_BOUND (SFTP_OUTPUT_HIGH + SFTP_MAX_PACKET + 4)

static uint8_t pristine[IMAGE_SIZE];

static void put_file(struct lfs *lfs, const char *path, size_t len)
{
    struct lfs_file *file;
    uint8_t chunk[256];

    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (uint8_t)i;
    if (lfs_file_open(lfs, &file, path,
                      LFS_O_WRONLY | LFS_O_CREAT | LFS_O_TRUNC) != 0)
        abort();
    for (size_t off = 0; off < len; off += sizeof(chunk)) {
        size_t n = len - off < sizeof(chunk) ? len - off : sizeof(chunk);

        if (lfs_file_write(file, chunk, n) != (ssize_t)n)
            abort();
    }
    if (lfs_file_close(file) != 0)
        abort();
}

/* The image every input starts from, built once. */
static void build_pristine(void)
{
    struct lfs_format_options fmt = { .block_size = IMAGE_BLOCK_SIZE };
    struct bd *bd = bd_mem_new(IMAGE_SIZE);
    struct lfs *lfs;

    if (!bd || lfs_format(bd, &fmt) != 0 || lfs_mount(&lfs, bd, NULL) != 0)
        abort();
    if (lfs_mkdir(lfs, "/d") != 0 || lfs_mkdir(lfs, "/d/sub") != 0)
        abort();
    put_file(lfs, "/f", 5000);
    put_file(lfs, "/d/small", 10);
    put_file(lfs, "/d/sub/empty", 0);
    if (lfs_unmount(lfs) != 0)
        abort();
    memcpy(pristine, bd_mem_data(bd), IMAGE_SIZE);
    bd_close(bd);
}

/* Check that the output is whole packets within the packet limit, and
 * take the ones that fit in max bytes. */
static void take_output(struct sftp_session *s, size_t max)
{
    size_t len, pos = 0;
    const uint8_t *out = sftp_session_output(s, &len);

    if (len > OUTPUT_BOUND)
        abort();
    while (pos < len) {
        if (len - pos < 4)
            abort();

        uint32_t plen = (uint32_t)out[pos] << 24 |
                        (uint32_t)out[pos + 1] << 16 |
                        (uint32_t)out[pos + 2] << 8 | out[pos + 3];

        if (plen < 5 || plen > SFTP_MAX_PACKET || len - pos - 4 < plen)
            abort();
        if (4 + (size_t)plen > max - pos)
            break;
        pos += 4 + (size_t)plen;
    }
    sftp_session_output_sent(s, pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t init[] = { 0, 0, 0, 5, SSH_FXP_INIT, 0, 0, 0, 3 };
    static int built;
    struct lfs_mount_options mount_opts = { 0 };
    struct vfs_lfs_options vfs_opts = { .uid = 1000, .gid = 1000 };
    struct sftp_options opts = {
        .uid = 1000,
        .gid = 1000,
        .user_name = "user",
        .group_name = "group",
        .umask = SFTP_DEFAULT_UMASK,
        .max_handles = 8,
    };
    struct bd *bd;
    struct lfs *lfs;
    struct vfs *vfs;
    struct sftp_session *s;
    size_t pos = 0;
    unsigned step = 0;

    if (!built) {
        build_pristine();
        built = 1;
    }

    /* The first byte chooses read-only mode and how input is split. */
    uint8_t mode = size > 0 ? data[0] : 0;

    if (size > 0) {
        data++;
        size--;
    }
    opts.read_only = mode & 1;
    mount_opts.read_only = opts.read_only;
    vfs_opts.read_only = opts.read_only;

    bd = bd_mem_new(IMAGE_SIZE);
    if (!bd)
        abort();
    memcpy(bd_mem_data(bd), pristine, IMAGE_SIZE);
    if (lfs_mount(&lfs, bd, &mount_opts) != 0)
        abort();
    vfs = vfs_lfs_new(lfs, &vfs_opts);
    s = sftp_session_new(vfs, &opts);
    if (!vfs || !s)
        abort();
    if (sftp_session_input(s, init, sizeof(init)) != sizeof(init))
        abort();
    take_output(s, SIZE_MAX);

    while (pos < size && !sftp_session_error(s)) {
        size_t piece = 1 + ((mode >> 1) * 37 + step * 13) % 4096;

        if (piece > size - pos)
            piece = size - pos;
        pos += sftp_session_input(s, data + pos, piece);

        /* Take all the output, some of it, or (while input is still
         * taken) none, by turns. */
        switch (step++ % 3) {
        case 0: take_output(s, SIZE_MAX); break;
        case 1: take_output(s, 70000); break;
        default:
            if (!sftp_session_wants_input(s))
                take_output(s, SIZE_MAX);
            break;
        }
    }
    take_output(s, SIZE_MAX);

    sftp_session_free(s);
    vfs_free(vfs);
    (void)lfs_unmount(lfs);
    bd_close(bd);
    return 0;
}
