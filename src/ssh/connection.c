/*
 * The connection protocol (RFC 4254), reduced to what a file server
 * needs: "session" channels that run a subsystem.  Every other channel
 * type, channel request and global request is rejected.
 *
 * Flow control: each channel owns an input queue (bytes the client sent,
 * not yet taken by the subsystem) and an output queue (bytes the
 * subsystem produced, not yet sent).  The receive window is replenished
 * only as the subsystem consumes input, and the subsystem takes new
 * input only while its output queue is short.  Incoming packets are
 * always processed, so a WINDOW_ADJUST queued behind pipelined requests
 * is never stuck behind them: the bound on work in flight is the
 * subsystem's, not the transport's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh/ssh_internal.h"

/* Send WINDOW_ADJUST once this much input was consumed. */
#define WINDOW_ADJUST_THRESHOLD (SSH_CHANNEL_WINDOW / 4)
/* CHANNEL_DATA header: type, recipient, data length. */
#define DATA_HEADER_LEN 9
/* Rounds of run-and-send per channel and call, so that one busy
 * channel cannot keep the event loop from other connections. */
#define PUMP_ROUNDS 64

struct ssh_channel {
    uint32_t local_id;          /* index in s->channels */
    uint32_t remote_id;
    uint32_t local_window;      /* bytes the client may still send */
    uint32_t local_consumed;    /* consumed since the last WINDOW_ADJUST */
    uint64_t remote_window;     /* bytes we may still send */
    uint32_t remote_max_packet;
    struct bq in;
    struct bq out;
    const struct ssh_subsystem *subsystem;
    void *app;
    bool app_done;
    int exit_status;
    bool got_eof;
    bool got_close;
    bool sent_close;
};

/// Channel table ///

static struct ssh_channel *find_channel(struct ssh_session *s, uint32_t id)
{
    if (id >= SSH_CHANNELS_MAX)
        return NULL;
    return s->channels[id];
}

static void stop_app(struct ssh_channel *ch)
{
    if (ch->app && ch->subsystem->stop)
        ch->subsystem->stop(ch->app);
    ch->app = NULL;
}

static void free_channel(struct ssh_session *s, struct ssh_channel *ch)
{
    stop_app(ch);
    s->channels[ch->local_id] = NULL;
    bq_free(&ch->in);
    bq_free(&ch->out);
    free(ch);
}

void ssh_conn_free(struct ssh_session *s)
{
    for (int i = 0; i < SSH_CHANNELS_MAX; i++) {
        if (s->channels[i])
            free_channel(s, s->channels[i]);
    }
}

static int protocol_error(struct ssh_session *s, const char *what)
{
    return ssh_disconnect(s, SSH_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR,
                          what);
}

/// Opening channels ///

static int open_failure(struct ssh_session *s, uint32_t sender,
                        uint32_t reason, const char *text)
{
    struct wbuf *msg = ssh_msg_start(s, SSH_MSG_CHANNEL_OPEN_FAILURE);

    wb_u32(msg, sender);
    wb_u32(msg, reason);
    wb_cstring(msg, text);
    wb_cstring(msg, "");
    return ssh_msg_send(s);
}

static int handle_open(struct ssh_session *s, struct rd *r)
{
    const uint8_t *type;
    uint32_t type_len, sender, window, max_packet;
    struct ssh_channel *ch;
    struct wbuf *msg;
    int slot = -1;

    if (rd_string(r, &type, &type_len) || rd_u32(r, &sender) ||
        rd_u32(r, &window) || rd_u32(r, &max_packet))
        return protocol_error(s, "invalid CHANNEL_OPEN");
    if (type_len != strlen("session") ||
        memcmp(type, "session", type_len) != 0) {
        char clean[65];
        ssh_printable(type, type_len, clean, sizeof(clean));
        ssh_log(s, SSH_LOG_INFO, "rejected channel of type %s from %s port "
                "%u", clean, s->peer_addr, s->peer_port);
        return open_failure(s, sender, SSH_OPEN_ADMINISTRATIVELY_PROHIBITED,
                            "only session channels are supported");
    }
    if (s->no_more_sessions)
        return open_failure(s, sender, SSH_OPEN_ADMINISTRATIVELY_PROHIBITED,
                            "no more sessions");
    for (int i = 0; i < SSH_CHANNELS_MAX && slot < 0; i++) {
        if (!s->channels[i])
            slot = i;
    }
    if (slot < 0)
        return open_failure(s, sender, SSH_OPEN_RESOURCE_SHORTAGE,
                            "too many channels");

    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return SSH_ERR_NOMEM;
    ch->local_id = (uint32_t)slot;
    ch->remote_id = sender;
    ch->local_window = SSH_CHANNEL_WINDOW;
    ch->remote_window = window;
    ch->remote_max_packet = max_packet;
    bq_init(&ch->in, 0);
    bq_init(&ch->out, 0);
    s->channels[slot] = ch;

    msg = ssh_msg_start(s, SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
    wb_u32(msg, sender);
    wb_u32(msg, ch->local_id);
    wb_u32(msg, SSH_CHANNEL_WINDOW);
    wb_u32(msg, SSH_CHANNEL_MAX_PACKET);
    return ssh_msg_send(s);
}

/// Channel requests ///

static int channel_reply(struct ssh_session *s, struct ssh_channel *ch,
                         bool want_reply, bool ok)
{
    if (!want_reply)
        return SSH_OK;
    wb_u32(ssh_msg_start(s, ok ? SSH_MSG_CHANNEL_SUCCESS
                               : SSH_MSG_CHANNEL_FAILURE), ch->remote_id);
    return ssh_msg_send(s);
}

static const struct ssh_subsystem *find_subsystem(struct ssh_session *s,
                                                  const char *name)
{
    for (size_t i = 0; i < s->cfg->subsystem_count; i++) {
        if (strcmp(s->cfg->subsystems[i].name, name) == 0)
            return &s->cfg->subsystems[i];
    }
    return NULL;
}

static int start_subsystem(struct ssh_session *s, struct ssh_channel *ch,
                           struct rd *r, bool want_reply)
{
    const struct ssh_subsystem *sub;
    char *name = NULL, clean[65];

    if (rd_cstring(r, &name, SSH_NAME_MAX))
        return protocol_error(s, "invalid subsystem request");
    ssh_printable(name, strlen(name), clean, sizeof(clean));
    /* One subsystem per channel, started before the client's EOF. */
    sub = ch->subsystem || ch->got_eof ? NULL : find_subsystem(s, name);
    if (sub) {
        ch->app = sub->start(s->cfg->ctx, s->user);
        if (ch->app)
            ch->subsystem = sub;
        else
            sub = NULL;
    }
    ssh_log(s, sub ? SSH_LOG_INFO : SSH_LOG_WARN,
            "%s subsystem request for %.64s by user %s",
            sub ? "Accepted" : "Rejected", clean, s->user);
    free(name);
    return channel_reply(s, ch, want_reply, sub != NULL);
}

static int handle_request(struct ssh_session *s, struct ssh_channel *ch,
                          struct rd *r)
{
    const uint8_t *type;
    uint32_t type_len;
    bool want_reply;

    if (rd_string(r, &type, &type_len) || rd_bool(r, &want_reply))
        return protocol_error(s, "invalid CHANNEL_REQUEST");
    if (type_len == strlen("subsystem") &&
        memcmp(type, "subsystem", type_len) == 0)
        return start_subsystem(s, ch, r, want_reply);

    /* "env" is expected from every OpenSSH client and ignored; shells,
     * commands, terminals and forwarding do not exist here. */
    if (!(type_len == 3 && memcmp(type, "env", 3) == 0)) {
        char clean[65];
        ssh_printable(type, type_len, clean, sizeof(clean));
        ssh_log(s, SSH_LOG_INFO, "rejected channel request %s from user %s",
                clean, s->user);
    }
    return channel_reply(s, ch, want_reply, false);
}

static int handle_global_request(struct ssh_session *s, struct rd *r)
{
    static const char no_more_sessions[] = "no-more-sessions@openssh.com";
    const uint8_t *name;
    uint32_t name_len;
    bool want_reply;

    if (rd_string(r, &name, &name_len) || rd_bool(r, &want_reply))
        return protocol_error(s, "invalid GLOBAL_REQUEST");
    if (name_len == strlen(no_more_sessions) &&
        memcmp(name, no_more_sessions, name_len) == 0)
        s->no_more_sessions = true;
    if (!want_reply)
        return SSH_OK;
    ssh_msg_start(s, SSH_MSG_REQUEST_FAILURE);
    return ssh_msg_send(s);
}

/// Data and closing ///

static int adjust_window(struct ssh_session *s, struct ssh_channel *ch)
{
    struct wbuf *msg;

    if (ch->local_consumed < WINDOW_ADJUST_THRESHOLD || ch->sent_close)
        return SSH_OK;
    msg = ssh_msg_start(s, SSH_MSG_CHANNEL_WINDOW_ADJUST);
    wb_u32(msg, ch->remote_id);
    wb_u32(msg, ch->local_consumed);
    ch->local_window += ch->local_consumed;
    ch->local_consumed = 0;
    return ssh_msg_send(s);
}

static int handle_data(struct ssh_session *s, struct ssh_channel *ch,
                       struct rd *r, bool extended)
{
    const uint8_t *data;
    uint32_t len, data_type;

    if ((extended && rd_u32(r, &data_type)) || rd_string(r, &data, &len))
        return protocol_error(s, "invalid CHANNEL_DATA");
    if (len > ch->local_window || len > SSH_CHANNEL_MAX_PACKET)
        return protocol_error(s, "channel data exceeds the window");
    ch->local_window -= len;

    /* Data without a reader (stderr data, data after EOF or without a
     * subsystem) is dropped, and its window is given back at once. */
    if (extended || !ch->app || ch->app_done || ch->got_eof) {
        ch->local_consumed += len;
        return adjust_window(s, ch);
    }
    if (bq_append(&ch->in, data, len))
        return SSH_ERR_NOMEM;
    return SSH_OK;
}

static int send_close(struct ssh_session *s, struct ssh_channel *ch)
{
    if (ch->sent_close)
        return SSH_OK;
    ch->sent_close = true;
    wb_u32(ssh_msg_start(s, SSH_MSG_CHANNEL_CLOSE), ch->remote_id);
    return ssh_msg_send(s);
}

static int handle_close(struct ssh_session *s, struct ssh_channel *ch)
{
    int err;

    ch->got_close = true;
    err = send_close(s, ch);
    free_channel(s, ch);
    return err;
}

/* Tell the client the subsystem ended: exit-status, EOF, CLOSE. */
static int finish_channel(struct ssh_session *s, struct ssh_channel *ch)
{
    struct wbuf *msg = ssh_msg_start(s, SSH_MSG_CHANNEL_REQUEST);
    int err;

    wb_u32(msg, ch->remote_id);
    wb_cstring(msg, "exit-status");
    wb_bool(msg, false);
    wb_u32(msg, (uint32_t)ch->exit_status);
    err = ssh_msg_send(s);
    if (!err) {
        wb_u32(ssh_msg_start(s, SSH_MSG_CHANNEL_EOF), ch->remote_id);
        err = ssh_msg_send(s);
    }
    if (!err)
        err = send_close(s, ch);
    return err;
}

int ssh_conn_handle(struct ssh_session *s, uint8_t type, const uint8_t *msg,
                    size_t len)
{
    struct ssh_channel *ch;
    uint32_t id, bytes;
    struct rd r;

    rd_init(&r, msg + 1, len - 1);
    if (type == SSH_MSG_GLOBAL_REQUEST)
        return handle_global_request(s, &r);
    if (type == SSH_MSG_CHANNEL_OPEN)
        return handle_open(s, &r);
    if (type < SSH_MSG_CHANNEL_WINDOW_ADJUST ||
        type > SSH_MSG_CHANNEL_FAILURE)
        return protocol_error(s, "unexpected connection message");

    if (rd_u32(&r, &id))
        return protocol_error(s, "invalid channel message");
    ch = find_channel(s, id);
    if (!ch || ch->got_close)
        return protocol_error(s, "message for an unknown channel");

    switch (type) {
    case SSH_MSG_CHANNEL_WINDOW_ADJUST:
        if (rd_u32(&r, &bytes))
            return protocol_error(s, "invalid WINDOW_ADJUST");
        ch->remote_window += bytes;
        if (ch->remote_window > UINT32_MAX)
            ch->remote_window = UINT32_MAX;
        return SSH_OK;
    case SSH_MSG_CHANNEL_DATA:
        return handle_data(s, ch, &r, false);
    case SSH_MSG_CHANNEL_EXTENDED_DATA:
        return handle_data(s, ch, &r, true);
    case SSH_MSG_CHANNEL_EOF:
        ch->got_eof = true;
        return SSH_OK;
    case SSH_MSG_CHANNEL_CLOSE:
        return handle_close(s, ch);
    case SSH_MSG_CHANNEL_REQUEST:
        return handle_request(s, ch, &r);
    }
    /* We open no channels and send no request that wants a reply. */
    return protocol_error(s, "unexpected channel reply");
}

/// Moving data ///

/* Let the subsystem take input while its output queue is short. */
static int run_app(struct ssh_session *s, struct ssh_channel *ch,
                   bool *progress)
{
    size_t in_before = bq_len(&ch->in), out_before = bq_len(&ch->out);
    int status;

    if (!ch->app || ch->app_done || bq_len(&ch->out) >= SSH_CHANNEL_OUT_LIMIT)
        return SSH_OK;
    if (in_before == 0 && !ch->got_eof)
        return SSH_OK;

    status = ch->subsystem->process(ch->app, &ch->in, ch->got_eof, &ch->out,
                                    SSH_CHANNEL_OUT_LIMIT);
    ch->local_consumed += (uint32_t)(in_before - bq_len(&ch->in));
    if (bq_len(&ch->in) != in_before || bq_len(&ch->out) != out_before)
        *progress = true;
    if (status != SSH_APP_RUNNING) {
        if (status < 0)
            ssh_log(s, SSH_LOG_WARN, "subsystem %s of user %s failed: %s",
                    ch->subsystem->name, s->user, ssh_strerror(status));
        ch->app_done = true;
        ch->exit_status = status == SSH_APP_DONE ? 0 : 1;
        *progress = true;
    }
    return adjust_window(s, ch);
}

/* Send as much of the output queue as the client's window, its maximum
 * packet size and our output backlog allow. */
static int send_data(struct ssh_session *s, struct ssh_channel *ch,
                     bool *progress)
{
    size_t max_packet = ch->remote_max_packet < SSH_CHANNEL_MAX_PACKET
                            ? ch->remote_max_packet
                            : SSH_CHANNEL_MAX_PACKET;

    while (bq_len(&ch->out) > 0 && ch->remote_window > 0 &&
           max_packet > 0 && !ssh_kex_blocks_output(s) &&
           ssh_output_len(s) < SSH_OUTPUT_HIGH) {
        size_t n = bq_len(&ch->out);
        uint8_t *p;
        int err;

        if (n > ch->remote_window)
            n = (size_t)ch->remote_window;
        if (n > max_packet)
            n = max_packet;
        p = ssh_packet_start(s, DATA_HEADER_LEN + n);
        if (!p)
            return SSH_ERR_NOMEM;
        p[0] = SSH_MSG_CHANNEL_DATA;
        put_be32(p + 1, ch->remote_id);
        put_be32(p + 5, (uint32_t)n);
        memcpy(p + DATA_HEADER_LEN, bq_data(&ch->out), n);
        err = ssh_packet_finish(s, DATA_HEADER_LEN + n);
        if (err)
            return err;
        bq_consume(&ch->out, n);
        ch->remote_window -= n;
        *progress = true;
    }
    return SSH_OK;
}

static int pump_channel(struct ssh_session *s, struct ssh_channel *ch)
{
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        int err = run_app(s, ch, &progress);

        if (!err)
            err = send_data(s, ch, &progress);
        if (err)
            return err;
        if (ch->app_done && bq_len(&ch->out) == 0 && !ch->sent_close &&
            !ssh_kex_blocks_output(s))
            return finish_channel(s, ch);
        if (!progress || s->phase != SSH_PHASE_PACKETS)
            break;
    }
    return SSH_OK;
}

int ssh_conn_pump(struct ssh_session *s)
{
    for (int i = 0; i < SSH_CHANNELS_MAX; i++) {
        struct ssh_channel *ch = s->channels[i];
        int err;

        if (!ch || ch->sent_close)
            continue;
        err = pump_channel(s, ch);
        if (err)
            return err;
    }
    return SSH_OK;
}
