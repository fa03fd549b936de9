/*
 * sshfsd-image main(): command-line parsing and dispatch.
 *
 * The command line is COMMAND, options and positional arguments in any
 * order (an argument starting with '-' is an option until "--").  Options
 * that take a value accept "--opt VALUE" and "--opt=VALUE".  The first
 * positional argument is the image.  A second positional argument made
 * only of decimal digits is the block size, which keeps the chamelon
 * command lines ("write disk.img 512 /username.pub DATA") working.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/image_tool.h"

/* Options, as bits of a mask so a command can list the ones it takes. */
enum image_option_id {
    OPT_KEY,
    OPT_KEY_FILE,
    OPT_SIZE,
    OPT_NAME_MAX,
    OPT_DISK_VERSION,
    OPT_LONG,
    OPT_PARENTS,
    OPT_RECURSIVE,
    OPT_IN,
    OPT_OUT,
    OPT_HELP,
    OPT_COUNT,
};

#define OPT_BIT(id) (1u << (id))
#define OPTS_GLOBAL (OPT_BIT(OPT_KEY) | OPT_BIT(OPT_KEY_FILE) | OPT_BIT(OPT_HELP))

struct image_option {
    const char *long_name;
    char short_name;          /* 0 if none */
    int takes_value;
    enum image_option_id id;
};

static const struct image_option image_options[] = {
    { "key", 'k', 1, OPT_KEY },
    { "blockkey", 0, 1, OPT_KEY },
    { "key-file", 0, 1, OPT_KEY_FILE },
    { "size", 0, 1, OPT_SIZE },
    { "name-max", 0, 1, OPT_NAME_MAX },
    { "disk-version", 0, 1, OPT_DISK_VERSION },
    { "long", 'l', 0, OPT_LONG },
    { "parents", 'p', 0, OPT_PARENTS },
    { "recursive", 'r', 0, OPT_RECURSIVE },
    { NULL, 'R', 0, OPT_RECURSIVE },
    { "in", 'i', 1, OPT_IN },
    { "out", 'o', 1, OPT_OUT },
    { "help", 'h', 0, OPT_HELP },
};

/* A command: positional counts include IMAGE but not the block size. */
struct image_command {
    const char *name;
    const char *alias;
    int (*run)(struct image_args *args);
    int min_positional;
    int max_positional;
    unsigned options;
};

static const struct image_command image_commands[] = {
    { "format", NULL, image_cmd_format, 1, 1,
      OPT_BIT(OPT_SIZE) | OPT_BIT(OPT_NAME_MAX) | OPT_BIT(OPT_DISK_VERSION) },
    { "ls", NULL, image_cmd_ls, 1, 2, OPT_BIT(OPT_LONG) },
    { "read", NULL, image_cmd_read, 2, 2, 0 },
    { "write", NULL, image_cmd_write, 2, 3, 0 },
    { "mkdir", NULL, image_cmd_mkdir, 2, 2, OPT_BIT(OPT_PARENTS) },
    { "rm", NULL, image_cmd_rm, 2, 2, OPT_BIT(OPT_RECURSIVE) },
    { "mv", NULL, image_cmd_mv, 3, 3, 0 },
    { "check", NULL, image_cmd_check, 1, 1, 0 },
    { "info", NULL, image_cmd_info, 1, 1, 0 },
    { "encrypt", "enc", image_cmd_encrypt, 0, 0,
      OPT_BIT(OPT_IN) | OPT_BIT(OPT_OUT) },
    { "decrypt", "dec", image_cmd_decrypt, 0, 0,
      OPT_BIT(OPT_IN) | OPT_BIT(OPT_OUT) },
};

/* Options seen while parsing, checked against the command afterwards. */
struct image_seen_options {
    unsigned mask;
    const char *spelling[OPT_COUNT];   /* as the user wrote it */
};

static const char image_usage_text[] =
    "Usage: " IMAGE_PROGRAM " COMMAND [OPTIONS] IMAGE [BLOCK_SIZE] [ARGUMENTS]\n"
    "\n"
    "Create, inspect and change littlefs disk images.\n"
    "\n"
    "Commands:\n"
    "  format IMAGE [BLOCK_SIZE]  write an empty filesystem over IMAGE\n"
    "                             (block size default 512)\n"
    "  ls [-l] IMAGE [PATH]       list a directory (default /) or one file;\n"
    "                             -l adds type, size and modification time\n"
    "  read IMAGE PATH            copy a file's contents to stdout\n"
    "  write IMAGE PATH [DATA|-]  create or replace a file with DATA, or with\n"
    "                             stdin when DATA is '-' or missing\n"
    "  mkdir [-p] IMAGE PATH      create a directory (-p: and its missing\n"
    "                             parents; no error if it exists)\n"
    "  rm [-r] IMAGE PATH         remove a file or an empty directory\n"
    "                             (-r: a directory and everything in it)\n"
    "  mv IMAGE OLD NEW           rename; an existing file or empty\n"
    "                             directory at NEW is replaced\n"
    "  check IMAGE                check consistency; exit 0 clean,\n"
    "                             1 problems found, 2 could not run\n"
    "  info IMAGE                 print version, geometry and limits\n"
    "  encrypt|enc --in PLAIN --out ENCRYPTED --key HEX\n"
    "  decrypt|dec --in ENCRYPTED --out PLAIN --key HEX\n"
    "                             convert to or from an AES-CCM image\n"
    "  help                       print this text\n"
    "\n"
    "A number right after IMAGE is the block size: format uses it, the\n"
    "other commands fail unless it matches the image.  Give a path made\n"
    "only of digits with a leading '/'.\n"
    "\n"
    "Options:\n"
    "  --size SIZE            format: create or resize IMAGE to SIZE bytes\n"
    "                         first; suffixes K, M, G are powers of 1024;\n"
    "                         with a key, SIZE is the filesystem's size\n"
    "                         and the file is twice as large\n"
    "  --name-max N           format: maximum name length in bytes,\n"
    "                         1 to 1022 (default 255)\n"
    "  --disk-version V       format: on-disk version 2.0 or 2.1\n"
    "                         (default 2.0)\n"
    "  -k, --key HEX          AES key of an encrypted image: 16, 24 or\n"
    "                         32 bytes in hex (also --blockkey)\n"
    "  --key-file FILE        read the hex key from FILE\n"
    "  -i, --in FILE          encrypt/decrypt: the image to read\n"
    "  -o, --out FILE         encrypt/decrypt: the image to write\n"
    "  -h, --help             print this text\n"
    "  --                     end of options (for DATA starting with '-')\n"
    "\n"
    "Without --key or --key-file, the key comes from the environment\n"
    "variable " IMAGE_KEY_ENV " when it is set.  Other users can see a\n"
    "command line in ps, but not the environment.\n";

static void image_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, IMAGE_PROGRAM ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", image_usage_text);
}

static const struct image_command *image_find_command(const char *name)
{
    size_t n = sizeof(image_commands) / sizeof(image_commands[0]);

    for (size_t i = 0; i < n; i++) {
        const struct image_command *cmd = &image_commands[i];

        if (strcmp(cmd->name, name) == 0
            || (cmd->alias && strcmp(cmd->alias, name) == 0))
            return cmd;
    }
    return NULL;
}

static const struct image_option *image_find_option(const char *arg,
                                                    size_t *name_len)
{
    size_t n = sizeof(image_options) / sizeof(image_options[0]);

    if (arg[1] != '-') {
        *name_len = 1;
        for (size_t i = 0; i < n; i++)
            if (image_options[i].short_name == arg[1] && arg[2] == '\0')
                return &image_options[i];
        return NULL;
    }

    *name_len = strcspn(arg + 2, "=");
    for (size_t i = 0; i < n; i++) {
        const char *name = image_options[i].long_name;

        if (name && strlen(name) == *name_len
            && strncmp(name, arg + 2, *name_len) == 0)
            return &image_options[i];
    }
    return NULL;
}

static void image_store_option(struct image_args *args,
                               enum image_option_id id, const char *value)
{
    switch (id) {
    case OPT_KEY: args->key_hex = value; break;
    case OPT_KEY_FILE: args->key_file = value; break;
    case OPT_SIZE: args->size = value; break;
    case OPT_NAME_MAX: args->name_max = value; break;
    case OPT_DISK_VERSION: args->disk_version = value; break;
    case OPT_LONG: args->long_listing = 1; break;
    case OPT_PARENTS: args->parents = 1; break;
    case OPT_RECURSIVE: args->recursive = 1; break;
    case OPT_IN: args->in_path = value; break;
    case OPT_OUT: args->out_path = value; break;
    case OPT_HELP: case OPT_COUNT: break;
    }
}

/* Parse the option at argv[*i], consuming its value; returns -1 after
 * printing a usage error. */
static int image_parse_option(int argc, char **argv, int *i,
                              struct image_args *args,
                              struct image_seen_options *seen)
{
    const char *arg = argv[*i];
    size_t name_len;
    const struct image_option *opt = image_find_option(arg, &name_len);
    const char *value = NULL;

    if (!opt) {
        image_usage_error("unknown option '%s'", arg);
        return -1;
    }

    /* "--opt=value" carries its value; otherwise it is the next argument. */
    if (arg[1] == '-' && arg[2 + name_len] == '=') {
        if (!opt->takes_value) {
            image_usage_error("option '%s' takes no value", arg);
            return -1;
        }
        value = arg + 2 + name_len + 1;
    } else if (opt->takes_value) {
        if (*i + 1 >= argc) {
            image_usage_error("option '%s' needs a value", arg);
            return -1;
        }
        *i += 1;
        value = argv[*i];
    }

    if (seen->mask & OPT_BIT(opt->id)) {
        image_usage_error("option '%s' is given twice", arg);
        return -1;
    }
    seen->mask |= OPT_BIT(opt->id);
    seen->spelling[opt->id] = arg;
    image_store_option(args, opt->id, value);
    return 0;
}

/* Split argv into command, options and positional arguments. */
static int image_parse_argv(int argc, char **argv, struct image_args *args,
                            struct image_seen_options *seen)
{
    int options_done = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            if (image_parse_option(argc, argv, &i, args, seen) < 0)
                return -1;
            continue;
        }

        if (!args->command) {
            args->command = arg;
        } else if (args->positional_count < IMAGE_MAX_POSITIONAL) {
            args->positional[args->positional_count++] = arg;
        } else {
            image_usage_error("too many arguments starting at '%s'", arg);
            return -1;
        }
    }
    return 0;
}

static int image_all_digits(const char *text)
{
    if (*text == '\0')
        return 0;
    for (; *text; text++)
        if (*text < '0' || *text > '9')
            return 0;
    return 1;
}

/* Take the block size out of the positional arguments.  Commands that
 * take only IMAGE treat any second argument as a block size, so a typo
 * there is reported as an invalid block size. */
static int image_take_block_size(const struct image_command *cmd,
                                 struct image_args *args)
{
    if (args->positional_count < 2)
        return 0;

    const char *text = args->positional[1];

    if (!image_all_digits(text) && cmd->max_positional != 1)
        return 0;

    if (image_parse_block_size(text, &args->block_size) < 0) {
        image_error(args->positional[0], NULL,
                    "invalid block size '%s': expected a power of two "
                    "from 128 to 65536", text);
        return -1;
    }

    for (int i = 1; i + 1 < args->positional_count; i++)
        args->positional[i] = args->positional[i + 1];
    args->positional_count--;
    return 0;
}

/* Check the options and argument count against the command. */
static int image_check_usage(const struct image_command *cmd,
                             const struct image_args *args,
                             const struct image_seen_options *seen)
{
    unsigned stray = seen->mask & ~(cmd->options | OPTS_GLOBAL);

    for (int id = 0; id < OPT_COUNT; id++) {
        if (stray & OPT_BIT(id)) {
            fprintf(stderr, IMAGE_PROGRAM ": option '%s' is not valid for "
                    "command '%s'\n\n%s", seen->spelling[id], cmd->name,
                    image_usage_text);
            return -1;
        }
    }

    if (args->positional_count < cmd->min_positional) {
        image_usage_error(args->positional_count == 0
                          ? "command '%s' needs an IMAGE argument"
                          : "command '%s' is missing an argument",
                          cmd->name);
        return -1;
    }
    if (args->positional_count > cmd->max_positional) {
        image_usage_error("too many arguments for command '%s'", cmd->name);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct image_args args;
    struct image_seen_options seen;

    memset(&args, 0, sizeof(args));
    memset(&seen, 0, sizeof(seen));

    if (image_parse_argv(argc, argv, &args, &seen) < 0)
        return IMAGE_EXIT_USAGE;

    if ((seen.mask & OPT_BIT(OPT_HELP))
        || (args.command && strcmp(args.command, "help") == 0)) {
        fputs(image_usage_text, stdout);
        return fflush(stdout) == 0 ? IMAGE_EXIT_OK : IMAGE_EXIT_FAILED;
    }
    if (!args.command) {
        image_usage_error("%s", "no command given");
        return IMAGE_EXIT_USAGE;
    }

    const struct image_command *cmd = image_find_command(args.command);

    if (!cmd) {
        image_usage_error("unknown command '%s'", args.command);
        return IMAGE_EXIT_USAGE;
    }
    if (image_take_block_size(cmd, &args) < 0)
        return IMAGE_EXIT_USAGE;
    if (image_check_usage(cmd, &args, &seen) < 0)
        return IMAGE_EXIT_USAGE;

    int status = image_key_load(&args);

    if (status == IMAGE_EXIT_OK)
        status = cmd->run(&args);

    image_key_wipe(&args.key);
    return status;
}
