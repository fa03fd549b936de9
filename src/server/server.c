/*
 * The SSH layer's view of the server: users and keys, subsystems, and
 * log lines.
 */
#include <string.h>
#include <unistd.h>

#include "server/conn.h"
#include "server/log.h"
#include "server/server.h"

/* The user named by --user logs in with the --key key only.  Without
 * --key, that user and every other one take their keys from the image
 * (users.h). */
static bool is_command_line_user(const struct server *srv, const char *user)
{
    return srv->user_key && strcmp(user, srv->opts->user) == 0;
}

static bool user_exists(void *ctx, const char *user)
{
    struct server *srv = ctx;

    return strcmp(user, srv->opts->user) == 0 ||
           users_exists(&srv->users, user);
}

static bool key_allowed(void *ctx, const char *user,
                        const struct ssh_pubkey *key)
{
    struct server *srv = ctx;

    if (is_command_line_user(srv, user))
        return ssh_pubkey_equal(srv->user_key, key);
    return users_key_allowed(&srv->users, user, key);
}

void server_reload_users(struct server *srv)
{
    users_load_image(&srv->users, srv->lfs);
}

static void authenticated(void *ctx, void *conn_ctx, const char *user)
{
    struct server *srv = ctx;
    struct conn *c = conn_ctx;

    (void)user;
    if (!c->authenticated) {
        c->authenticated = true;
        srv->unauth_count--;
    }
}

static void ssh_log_line(void *ctx, void *conn_ctx, enum ssh_log_level level,
                         const char *line)
{
    (void)ctx;
    (void)conn_ctx;
    log_msg((enum log_level)level, "%s", line);
}

void server_init_ssh_config(struct server *srv)
{
    const struct server_options *o = srv->opts;
    struct ssh_server_config *cfg = &srv->ssh;

    memset(cfg, 0, sizeof(*cfg));
    users_init(&srv->users, srv->user_key ? o->user : NULL);
    srv->subsystems[0] = server_sftp_subsystem;
    cfg->hostkey = srv->hostkey;
    cfg->rekey_bytes = o->rekey_bytes;
    cfg->rekey_interval_ms = o->rekey_interval_ms;
    cfg->login_grace_ms = o->login_grace_ms;
    cfg->log_level = (enum ssh_log_level)o->log_level;
    cfg->log = ssh_log_line;
    cfg->user_exists = user_exists;
    cfg->key_allowed = key_allowed;
    cfg->authenticated = authenticated;
    cfg->subsystems = srv->subsystems;
    cfg->subsystem_count = 1;
    cfg->ctx = srv;
}
