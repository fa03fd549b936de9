/*
 * sshfsd: an SSH server that speaks only SFTP and serves one littlefs
 * disk image.
 */
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "server/log.h"
#include "server/options.h"
#include "server/sandbox.h"
#include "server/server.h"

/* Descriptors besides the connections: standard streams, image, epoll,
 * signalfd, listening sockets, and one for a connection being refused. */
#define FIXED_FILES (OPTIONS_LISTEN_MAX * 2 + 16)

static int load_user_key(struct server *srv)
{
    const struct server_options *o = srv->opts;
    int err;

    if (!o->key) {
        log_info("no --key given: user %s logs in with the keys in the "
                 "image's /%s.pub or /authorized_keys", o->user, o->user);
        return 0;
    }
    err = ssh_pubkey_parse_line(&srv->user_key, o->key, NULL);
    if (err) {
        log_error("invalid --key: %s (expected an OpenSSH public-key line "
                  "such as \"ssh-ed25519 AAAA... comment\")",
                  ssh_strerror(err));
        return -1;
    }
    return 0;
}

static int lock_down(const struct server_options *o)
{
    struct sandbox_options sb = {
        .program = SANDBOX_NETWORK_SERVER,
        .run_as = o->run_as,
        .run_as_given = o->run_as != NULL,
        .max_files = o->max_connections + FIXED_FILES,
    };

    if (o->no_sandbox) {
        sandbox_warn_disabled();
        return 0;
    }
    if (sandbox_enter(&sb))
        return -1;
#ifdef SSHFSD_LOCKDOWN_PROBE
    /* Only in the test build of tests/isolation/: a call the lock-down
     * forbids, which must end the process with SIGSYS. */
    log_info("lock-down probe: calling openat()");
    int fd = openat(AT_FDCWD, "/etc/passwd", O_RDONLY);
    log_error("lock-down probe: openat() returned %d", fd);
    return -1;
#endif
    return 0;
}

/* Check what options_parse() cannot check alone before the image is
 * touched, so that a mistyped command line changes nothing and exits
 * with status 2. */
static int check_option_values(struct server *srv)
{
    const struct server_options *o = srv->opts;
    uint8_t key[BD_CCM_KEY_MAX];
    struct sockaddr_storage ss;
    socklen_t len;
    size_t key_len;
    int rc;

    for (size_t i = 0; i < o->listen_count; i++) {
        if (server_parse_listen_addr(o->listen[i], o->port, &ss, &len)) {
            log_error("invalid --listen address '%s': expected an IPv4 or "
                      "IPv6 address such as 127.0.0.1 or ::1",
                      o->listen[i]);
            return -1;
        }
    }
    if (load_user_key(srv))
        return -1;
    rc = server_load_block_key(o->blockkey_hex, o->blockkey_file, key,
                               &key_len);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc)
        return -1;
    if (o->run_as && !o->no_sandbox && !getpwnam(o->run_as)) {
        log_error("unknown user '%s' for --run-as", o->run_as);
        return -1;
    }
    return 0;
}

static void cleanup(struct server *srv)
{
    if (srv->signal_fd >= 0)
        close(srv->signal_fd);
    if (srv->epoll_fd >= 0)
        close(srv->epoll_fd);
    for (size_t i = 0; i < srv->listen_count; i++)
        close(srv->listen_fds[i]);
    server_close_image(srv);
    ssh_hostkey_free(srv->hostkey);
    ssh_pubkey_free(srv->user_key);
    users_free(&srv->users);
}

int main(int argc, char **argv)
{
    struct server_options opts;
    struct server srv;
    int rc;

    sandbox_reset_descriptors();
    switch (options_parse(argc, argv, &opts)) {
    case OPTIONS_OK:
        break;
    case OPTIONS_EXIT:
        return 0;
    default:
        return 2;
    }
    log_set_level(opts.log_level);

    memset(&srv, 0, sizeof(srv));
    srv.opts = &opts;
    srv.epoll_fd = -1;
    srv.signal_fd = -1;
    srv.owner_uid = (uint32_t)getuid();
    srv.owner_gid = (uint32_t)getgid();

    if (check_option_values(&srv)) {
        cleanup(&srv);
        return 2;
    }
    if (server_open_image(&srv) || server_load_host_key(&srv)) {
        cleanup(&srv);
        return 1;
    }
    server_init_ssh_config(&srv);
    if (server_listen(&srv) || server_prepare_loop(&srv) ||
        lock_down(&opts)) {
        cleanup(&srv);
        return 1;
    }

    rc = server_run(&srv);
    cleanup(&srv);
    log_info("stopped");
    return rc == 0 ? 0 : 1;
}
