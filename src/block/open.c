/*
 * Opening an image file, encrypted or not: the one place that decides
 * which devices to stack, for the server and the image tool alike.
 */
#include <stdio.h>

#include "block/bd.h"

struct bd *bd_open_image(const char *path, int writable, const uint8_t *key,
                         size_t keylen, char *errbuf, size_t errlen)
{
    char detail[BD_ERROR_MAX];
    struct bd *file = bd_file_open(path, writable, errbuf, errlen);
    struct bd *encrypted;

    if (file == NULL || key == NULL)
        return file;

    encrypted = bd_ccm_new(file, key, keylen, detail, sizeof(detail));
    if (encrypted == NULL) {
        snprintf(errbuf, errlen, "%s: %s", path, detail);
        bd_close(file);
    }
    return encrypted;
}
