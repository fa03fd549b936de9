/*
 * sshfsd-image encrypt and decrypt: convert a plain image to an AES-CCM
 * encrypted one and back, as ccmblock's enc and dec do.
 */
#include <string.h>

#include "tools/image_tool.h"

/* Check the options both conversions need. */
static int image_check_conversion(const struct image_args *args)
{
    if (!args->in_path) {
        image_error(NULL, NULL, "command '%s' needs --in IMAGE",
                    args->command);
        return IMAGE_EXIT_USAGE;
    }
    if (!args->out_path) {
        image_error(args->in_path, NULL, "command '%s' needs --out IMAGE",
                    args->command);
        return IMAGE_EXIT_USAGE;
    }
    if (!args->key.present) {
        image_error(args->in_path, NULL, "command '%s' needs --key HEX or "
                    "--key-file FILE", args->command);
        return IMAGE_EXIT_USAGE;
    }
    if (strcmp(args->in_path, args->out_path) == 0) {
        image_error(args->in_path, NULL, "--in and --out must be different "
                    "files");
        return IMAGE_EXIT_USAGE;
    }
    return IMAGE_EXIT_OK;
}

/* TODO: copy the image sector by sector through the AES-CCM device once
 * it exists; until then both commands check their options and fail. */
static int image_convert(const struct image_args *args)
{
    int status = image_check_conversion(args);

    if (status != IMAGE_EXIT_OK)
        return status;

    image_error(args->in_path, NULL, "encrypted images are not supported "
                "yet");
    return IMAGE_EXIT_FAILED;
}

int image_cmd_encrypt(struct image_args *args)
{
    return image_convert(args);
}

int image_cmd_decrypt(struct image_args *args)
{
    return image_convert(args);
}
