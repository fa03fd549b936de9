/*
 * sshfsd: an SSH server that speaks only SFTP and serves one littlefs
 * disk image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/log.h"
#include "server/options.h"
#include "server/server.h"

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
    users_clear(&srv->users);
}

int main(int argc, char **argv)
{
    struct server_options opts;
    struct server srv;
    int rc;

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

    if (load_user_key(&srv) || server_open_image(&srv) ||
        server_load_host_key(&srv)) {
        cleanup(&srv);
        return 1;
    }
    server_init_ssh_config(&srv);
    if (server_listen(&srv) || server_prepare_loop(&srv)) {
        cleanup(&srv);
        return 1;
    }

    rc = server_run(&srv);
    cleanup(&srv);
    log_info("stopped");
    return rc == 0 ? 0 : 1;
}
