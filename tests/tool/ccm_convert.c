/*
 * Encrypt or decrypt a whole image through sshfsd's AES-CCM device, for
 * the cross-check against an independent implementation
 * (test_ccm_interop.sh builds it against the tree's libsshfsd.a).
 *
 * Usage: ccm_convert encrypt|decrypt KEY_HEX INPUT OUTPUT
 * OUTPUT is created or truncated.  Any sector that fails to decrypt fails
 * the whole conversion with the device's message.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "block/bd.h"

/* Create path with size bytes (zeros) and open it as a device. */
static struct bd *create_image(const char *path, uint64_t size,
                               const uint8_t *key, size_t keylen)
{
    char err[BD_ERROR_MAX] = "";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct bd *bd;

    if (fd < 0 || ftruncate(fd, (off_t)size) != 0 || close(fd) != 0) {
        perror(path);
        return NULL;
    }
    bd = bd_open_image(path, 1, key, keylen, err, sizeof(err));
    if (bd == NULL)
        fprintf(stderr, "ccm_convert: %s\n", err);
    return bd;
}

/* Copy every sector of from into to, which has the same size. */
static int copy_sectors(struct bd *from, struct bd *to)
{
    uint8_t sector[BD_CCM_SECTOR_SIZE];
    int err = bd_set_block_size(to, BD_CCM_SECTOR_SIZE);

    for (uint64_t s = 0; err == BD_OK && s < to->block_count; s++) {
        err = bd_read_raw(from, s * sizeof(sector), sector, sizeof(sector));
        if (err != BD_OK) {
            fprintf(stderr, "ccm_convert: reading failed: %s\n", from->error);
            return -1;
        }
        err = bd_prog(to, (uint32_t)s, 0, sector, sizeof(sector));
    }
    if (err == BD_OK)
        err = bd_sync(to);
    OPENSSL_cleanse(sector, sizeof(sector));
    if (err != BD_OK) {
        fprintf(stderr, "ccm_convert: writing failed: %s\n", to->error);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint8_t key[BD_CCM_KEY_MAX];
    size_t keylen = 0;
    char err[BD_ERROR_MAX] = "";
    struct bd *from;
    struct bd *to;
    int encrypt;
    int status;

    if (argc != 5 || (strcmp(argv[1], "encrypt") != 0 &&
                      strcmp(argv[1], "decrypt") != 0)) {
        fprintf(stderr, "usage: ccm_convert encrypt|decrypt KEY_HEX INPUT "
                "OUTPUT\n");
        return 2;
    }
    encrypt = strcmp(argv[1], "encrypt") == 0;
    if (bd_ccm_parse_key(argv[2], key, &keylen, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "ccm_convert: %s\n", err);
        return 2;
    }

    from = bd_open_image(argv[3], 0, encrypt ? NULL : key, keylen, err,
                         sizeof(err));
    if (from == NULL) {
        fprintf(stderr, "ccm_convert: %s\n", err);
        return 1;
    }
    to = create_image(argv[4], encrypt ? 2 * from->size : from->size,
                      encrypt ? key : NULL, keylen);
    OPENSSL_cleanse(key, sizeof(key));
    if (to == NULL) {
        bd_close(from);
        return 1;
    }

    status = copy_sectors(from, to) == 0 ? 0 : 1;
    bd_close(to);
    bd_close(from);
    return status;
}
