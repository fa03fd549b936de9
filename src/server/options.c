/*
 * sshfsd's command line: the original unikernel's flags (--port, --user,
 * --key, --seed, --blockkey, -l) and this server's own.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/options.h"

enum {
    OPT_LISTEN = 256,
    OPT_HOST_KEY,
    OPT_READ_ONLY,
    OPT_BLOCKKEY,
    OPT_BLOCKKEY_FILE,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_STARTUPS,
    OPT_REKEY_LIMIT,
    OPT_REKEY_INTERVAL,
    OPT_LOGIN_GRACE,
    OPT_NO_SANDBOX,
    OPT_RUN_AS,
    OPT_UMASK,
    OPT_VERSION,
};

static const struct option long_options[] = {
    { "port", required_argument, NULL, 'p' },
    { "user", required_argument, NULL, 'u' },
    { "key", required_argument, NULL, 'k' },
    { "seed", required_argument, NULL, 's' },
    { "log-level", required_argument, NULL, 'l' },
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "host-key", required_argument, NULL, OPT_HOST_KEY },
    { "read-only", no_argument, NULL, OPT_READ_ONLY },
    { "blockkey", required_argument, NULL, OPT_BLOCKKEY },
    { "blockkey-file", required_argument, NULL, OPT_BLOCKKEY_FILE },
    { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
    { "max-startups", required_argument, NULL, OPT_MAX_STARTUPS },
    { "rekey-limit", required_argument, NULL, OPT_REKEY_LIMIT },
    { "rekey-interval", required_argument, NULL, OPT_REKEY_INTERVAL },
    { "login-grace-time", required_argument, NULL, OPT_LOGIN_GRACE },
    { "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
    { "run-as", required_argument, NULL, OPT_RUN_AS },
    { "umask", required_argument, NULL, OPT_UMASK },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

static const char usage_text[] =
    "usage: sshfsd [OPTION]... [IMAGE]\n"
    "Serve the littlefs disk image IMAGE (default disk.img) over SFTP.\n"
    "\n"
    "  -p, --port PORT          TCP port to listen on (default 18022)\n"
    "      --listen ADDR        IPv4 or IPv6 address to listen on; repeat\n"
    "                           for several (default: every address)\n"
    "  -u, --user NAME          user that --key logs in as (default mirage)\n"
    "  -k, --key PUBKEY         OpenSSH public-key line of that user\n"
    "  -s, --seed STRING        derive the ed25519 host key from STRING\n"
    "      --host-key FILE      unencrypted OpenSSH ed25519 private key\n"
    "                           (with neither, the key is kept in the image)\n"
    "      --blockkey HEX       AES key of an encrypted image (32, 48 or 64\n"
    "                           hex digits); also $SSHFSD_BLOCKKEY\n"
    "      --blockkey-file FILE read that key from FILE\n"
    "      --read-only          reject every change to the image\n"
    "      --umask UMASK        octal permission bits cleared from new files\n"
    "                           and directories (default 022)\n"
    "  -l, --log-level LEVEL    error, warning, info (default), debug, trace\n"
    "      --max-connections N  connections at once (default 64)\n"
    "      --max-startups N     connections not yet logged in (default 10)\n"
    "      --login-grace-time S seconds allowed to log in (default 60)\n"
    "      --rekey-limit BYTES  re-key after BYTES in either direction;\n"
    "                           K, M and G suffixes (default 1G)\n"
    "      --rekey-interval S   re-key after S seconds (default 3600)\n"
    "      --run-as USER        user to switch to when started as root\n"
    "                           (default nobody)\n"
    "      --no-sandbox         skip the lock-down (for debugging only)\n"
    "  -h, --help               show this help and exit\n"
    "      --version            show the version and exit\n";

static int parse_uint(const char *flag, const char *text, uint64_t min,
                      uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t scale = 1;

    errno = 0;
    v = strtoull(text, &end, 10);
    if (end != text && *end && end[1] == '\0') {
        if (*end == 'K' || *end == 'k')
            scale = 1024;
        else if (*end == 'M' || *end == 'm')
            scale = 1024 * 1024;
        else if (*end == 'G' || *end == 'g')
            scale = 1024 * 1024 * 1024;
        if (scale > 1)
            end++;
    }
    if (errno || end == text || *end || text[0] == '-' ||
        v > max / scale || v * scale < min) {
        fprintf(stderr, "sshfsd: invalid value '%s' for %s: expected a "
                "number from %" PRIu64 " to %" PRIu64 "\n", text, flag, min,
                max);
        return -1;
    }
    *out = v * scale;
    return 0;
}

int options_parse_umask(const char *text, uint32_t *out)
{
    char *end;
    unsigned long value;

    errno = 0;
    value = strtoul(text, &end, 8);
    if (errno || end == text || *end != '\0' || text[0] == '-' ||
        value > 0777)
        return -1;
    *out = (uint32_t)value;
    return 0;
}

static void set_defaults(struct server_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->image = OPTIONS_DEFAULT_IMAGE;
    opts->port = OPTIONS_DEFAULT_PORT;
    opts->user = OPTIONS_DEFAULT_USER;
    opts->log_level = LOG_LEVEL_INFO;
    opts->max_connections = OPTIONS_DEFAULT_MAX_CONNECTIONS;
    opts->max_startups = OPTIONS_DEFAULT_MAX_STARTUPS;
    opts->umask = OPTIONS_DEFAULT_UMASK;
}

/* Options that take a number. */
static int parse_number_option(int c, const char *arg,
                               struct server_options *opts)
{
    uint64_t v;

    switch (c) {
    case 'p':
        if (parse_uint("--port", arg, 1, 65535, &v))
            return -1;
        opts->port = (unsigned)v;
        return 0;
    case OPT_MAX_CONNECTIONS:
        if (parse_uint("--max-connections", arg, 1, 100000, &v))
            return -1;
        opts->max_connections = (unsigned)v;
        return 0;
    case OPT_MAX_STARTUPS:
        if (parse_uint("--max-startups", arg, 1, 100000, &v))
            return -1;
        opts->max_startups = (unsigned)v;
        return 0;
    case OPT_LOGIN_GRACE:
        if (parse_uint("--login-grace-time", arg, 1, 86400, &v))
            return -1;
        opts->login_grace_ms = v * 1000;
        return 0;
    case OPT_REKEY_LIMIT:
        /* At least 64 KiB: anything smaller would re-key on every
         * packet. */
        if (parse_uint("--rekey-limit", arg, 65536, UINT64_MAX / 2, &v))
            return -1;
        opts->rekey_bytes = v;
        return 0;
    case OPT_REKEY_INTERVAL:
        if (parse_uint("--rekey-interval", arg, 1, 86400 * 365, &v))
            return -1;
        opts->rekey_interval_ms = v * 1000;
        return 0;
    }
    return -1;
}

static int parse_option(int c, const char *arg, struct server_options *opts)
{
    switch (c) {
    case 'u':
        opts->user = arg;
        return 0;
    case 'k':
        opts->key = arg;
        return 0;
    case 's':
        opts->seed = arg;
        return 0;
    case 'l':
        if (log_parse_level(arg, &opts->log_level) == 0)
            return 0;
        fprintf(stderr, "sshfsd: invalid log level '%s': use error, "
                "warning, info, debug or trace\n", arg);
        return -1;
    case OPT_LISTEN:
        if (opts->listen_count == OPTIONS_LISTEN_MAX) {
            fprintf(stderr, "sshfsd: at most %d --listen addresses\n",
                    OPTIONS_LISTEN_MAX);
            return -1;
        }
        opts->listen[opts->listen_count++] = arg;
        return 0;
    case OPT_HOST_KEY:
        opts->host_key_file = arg;
        return 0;
    case OPT_READ_ONLY:
        opts->read_only = true;
        return 0;
    case OPT_BLOCKKEY:
        opts->blockkey_hex = arg;
        return 0;
    case OPT_BLOCKKEY_FILE:
        opts->blockkey_file = arg;
        return 0;
    case OPT_NO_SANDBOX:
        opts->no_sandbox = true;
        return 0;
    case OPT_RUN_AS:
        opts->run_as = arg;
        return 0;
    case OPT_UMASK:
        if (options_parse_umask(arg, &opts->umask) == 0)
            return 0;
        fprintf(stderr, "sshfsd: invalid --umask '%s': expected octal "
                "digits, at most 0777\n", arg);
        return -1;
    }
    return parse_number_option(c, arg, opts);
}

enum options_result options_parse(int argc, char **argv,
                                  struct server_options *opts)
{
    int c;

    set_defaults(opts);
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:u:k:s:l:h", long_options,
                            NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return OPTIONS_EXIT;
        }
        if (c == OPT_VERSION) {
            puts("sshfsd 0.1");
            return OPTIONS_EXIT;
        }
        if (c == '?' || parse_option(c, optarg, opts)) {
            fprintf(stderr, "Try 'sshfsd --help' for more information.\n");
            return OPTIONS_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "sshfsd: one image only, got '%s' and '%s'\n",
                argv[optind], argv[optind + 1]);
        return OPTIONS_USAGE;
    }
    if (optind < argc)
        opts->image = argv[optind];
    if (opts->seed && opts->host_key_file) {
        fprintf(stderr, "sshfsd: give --seed or --host-key, not both\n");
        return OPTIONS_USAGE;
    }
    if (opts->blockkey_hex && opts->blockkey_file) {
        fprintf(stderr, "sshfsd: give --blockkey or --blockkey-file, not "
                "both\n");
        return OPTIONS_USAGE;
    }
    return OPTIONS_OK;
}
