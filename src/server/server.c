/*
 * The SSH layer's view of the server: users and keys, subsystems, and
 * log lines.
 */
#include <string.h>
#include <unistd.h>

#include "server/conn.h"
#include "server/log.h"
#include "server/server.h"

/* The user named by --user logs in with the --key key.  A user without
 * a key exists but cannot log in. */
static bool user_exists(void *ctx, const char *user)
{
    struct server *srv = ctx;

    return strcmp(user, srv->opts->user) == 0;
}

static bool key_allowed(void *ctx, const char *user,
                        const struct ssh_pubkey *key)
{
    struct server *srv = ctx;

    return user_exists(ctx, user) && srv->user_key &&
           ssh_pubkey_equal(srv->user_key, key);
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
