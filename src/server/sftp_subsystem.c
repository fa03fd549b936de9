/*
 * The "sftp" subsystem: moves bytes between a channel's queues and an
 * SFTP session (sftp/sftp.h) serving the server's vfs.
 */
#include "server/log.h"
#include "server/server.h"
#include "sftp/sftp.h"

static void sftp_log_line(void *ctx, int level, const char *line)
{
    (void)ctx;
    log_msg((enum log_level)level, "sftp: %s", line);
}

static void *sftp_start(void *ctx, const char *user)
{
    struct server *srv = ctx;
    struct sftp_options opts = {
        .uid = srv->owner_uid,
        .gid = srv->owner_gid,
        .user_name = user,
        .group_name = user,
        .read_only = srv->opts->read_only,
        .umask = srv->opts->umask,
        .log = sftp_log_line,
        .log_ctx = srv,
        .log_level = (int)log_get_level(),
    };

    return sftp_session_new(srv->vfs, &opts);
}

/* Move the session's replies into out. */
static int take_output(struct sftp_session *sftp, struct bq *out)
{
    size_t len;
    const uint8_t *data = sftp_session_output(sftp, &len);

    if (len == 0)
        return 0;
    if (bq_append(out, data, len))
        return SSH_ERR_NOMEM;
    sftp_session_output_sent(sftp, len);
    return 0;
}

static int sftp_process(void *app, struct bq *in, bool in_eof,
                        struct bq *out, size_t out_limit)
{
    struct sftp_session *sftp = app;

    for (;;) {
        size_t taken = 0;

        if (take_output(sftp, out))
            return SSH_ERR_NOMEM;
        if (bq_len(in) > 0 && bq_len(out) < out_limit)
            taken = sftp_session_input(sftp, bq_data(in), bq_len(in));
        bq_consume(in, taken);
        if (taken == 0)
            break;
    }
    if (take_output(sftp, out))
        return SSH_ERR_NOMEM;

    /* A failed session has sent its last reply; a client that sent EOF
     * has no more requests once its input is used up. */
    if (sftp_session_error(sftp) != 0)
        return SSH_APP_DONE;
    if (in_eof && bq_len(in) == 0)
        return SSH_APP_DONE;
    return SSH_APP_RUNNING;
}

static void sftp_stop(void *app)
{
    sftp_session_free(app);
}

const struct ssh_subsystem server_sftp_subsystem = {
    .name = "sftp",
    .start = sftp_start,
    .process = sftp_process,
    .stop = sftp_stop,
};
