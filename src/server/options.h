/*
 * sshfsd's command line.
 */
#ifndef SSHFSD_SERVER_OPTIONS_H
#define SSHFSD_SERVER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/log.h"

#define OPTIONS_LISTEN_MAX 8
#define OPTIONS_DEFAULT_PORT 18022
#define OPTIONS_DEFAULT_USER "mirage"
#define OPTIONS_DEFAULT_IMAGE "disk.img"
#define OPTIONS_DEFAULT_MAX_CONNECTIONS 64
#define OPTIONS_DEFAULT_MAX_STARTUPS 10
/* As sshd's sessions usually have: new files 0644, directories 0755. */
#define OPTIONS_DEFAULT_UMASK 022
/* The environment variable that may carry the image's AES key, as for
 * sshfsd-image. */
#define OPTIONS_BLOCKKEY_ENV "SSHFSD_BLOCKKEY"

struct server_options {
    const char *image;
    const char *listen[OPTIONS_LISTEN_MAX];  /* addresses, without port */
    size_t listen_count;                     /* 0: every address */
    unsigned port;
    const char *user;
    const char *key;            /* public-key line for user, or NULL */
    const char *seed;           /* host key seed, or NULL */
    const char *host_key_file;  /* OpenSSH private key file, or NULL */
    const char *blockkey_hex;   /* AES key of an encrypted image */
    const char *blockkey_file;
    bool read_only;
    bool no_sandbox;
    uint32_t umask;             /* cleared from the modes of new entries */
    const char *run_as;         /* --run-as, or NULL */
    enum log_level log_level;
    unsigned max_connections;
    unsigned max_startups;      /* unauthenticated connections */
    uint64_t rekey_bytes;       /* 0: the SSH layer's default */
    uint64_t rekey_interval_ms;
    uint64_t login_grace_ms;
};

enum options_result {
    OPTIONS_OK = 0,
    OPTIONS_EXIT = 1,           /* --help or --version was printed */
    OPTIONS_USAGE = 2,          /* invalid command line, message printed */
};

/* Parse an octal umask of at most 0777.  Returns 0, or -1 when text is
 * not one. */
int options_parse_umask(const char *text, uint32_t *out);

/* Parse argv into opts (defaults first).  Messages go to stderr, help
 * and version to stdout. */
enum options_result options_parse(int argc, char **argv,
                                  struct server_options *opts);

#endif
