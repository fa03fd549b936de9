/*
 * The transport layer (RFC 4253): version exchange, binary packets,
 * sequence numbers, message dispatch, re-key triggers, and the session
 * API that the event loop drives.
 *
 * Input is decrypted in place in s->in and every message is handled
 * before the next packet is looked at.  Output packets are built and
 * sealed in place at the end of s->out, so a packet's bytes are written
 * once by the code that makes the payload and once by the cipher.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ssh/ssh_internal.h"

/* Bytes offered to one socket read. */
#define READ_CHUNK (256u * 1024)
/* Bytes reserved after a payload: the largest padding and tag. */
#define PACKET_OVERHEAD (4 + 1 + 255 + SSH_MAC_MAX)

const char *ssh_strerror(int err)
{
    switch (err) {
    case SSH_OK: return "success";
    case SSH_ERR_PROTOCOL: return "protocol error";
    case SSH_ERR_MAC: return "message authentication code incorrect";
    case SSH_ERR_NOMEM: return "out of memory";
    case SSH_ERR_CRYPTO: return "cryptographic library failure";
    case SSH_ERR_NEGOTIATION: return "no matching algorithm";
    case SSH_ERR_TOO_LARGE: return "message too large";
    case SSH_ERR_KEY: return "invalid or unsupported key";
    case SSH_ERR_SIGNATURE: return "signature verification failed";
    case SSH_ERR_VERSION: return "invalid protocol version";
    case SSH_ERR_AUTH: return "too many authentication failures";
    case SSH_ERR_CLOSED: return "connection closed by peer";
    case SSH_ERR_TIMEOUT: return "login grace time exceeded";
    case SSH_ERR_INVAL: return "invalid argument";
    case SSH_ERR_SHUTDOWN: return "session ended by the server";
    }
    return "unknown error";
}

void ssh_log(struct ssh_session *s, enum ssh_log_level level,
             const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (!s->cfg->log || level > s->cfg->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->cfg->log(s->cfg->ctx, s->conn_ctx, level, line);
}

void ssh_printable(const void *text, size_t len, char *out, size_t size)
{
    const uint8_t *p = text;
    size_t n = len < size - 1 ? len : size - 1;

    for (size_t i = 0; i < n; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[n] = '\0';
}

/// Output ///

struct wbuf *ssh_msg_start(struct ssh_session *s, uint8_t type)
{
    wb_reset(&s->msg);
    wb_u8(&s->msg, type);
    return &s->msg;
}

uint8_t *ssh_packet_start(struct ssh_session *s, size_t payload_len)
{
    uint8_t *p = bq_reserve(&s->out, payload_len + PACKET_OVERHEAD);

    return p ? p + 5 : NULL;
}

int ssh_packet_finish(struct ssh_session *s, size_t payload_len)
{
    uint8_t *p = s->out.w.data + s->out.w.len;
    size_t block = ssh_crypt_block(s->tx);
    size_t aligned = (ssh_crypt_aad(s->tx) ? 0 : 4) + 1 + payload_len;
    size_t pad = block - aligned % block;
    size_t len, total;
    int err;

    /* At least 4 bytes of padding (RFC 4253 6). */
    if (pad < 4)
        pad += block;
    len = 1 + payload_len + pad;
    put_be32(p, (uint32_t)len);
    p[4] = (uint8_t)pad;
    if (RAND_bytes(p + 5 + payload_len, (int)pad) != 1)
        return SSH_ERR_CRYPTO;
    err = ssh_crypt_seal(s->tx, s->seq_out, p, len);
    if (err)
        return err;

    total = 4 + len + ssh_crypt_tag_len(s->tx);
    bq_commit(&s->out, total);
    s->seq_out++;
    s->tx_bytes += total;
    return SSH_OK;
}

static int send_payload(struct ssh_session *s, const uint8_t *data,
                        size_t len)
{
    uint8_t *p = ssh_packet_start(s, len);

    if (!p)
        return SSH_ERR_NOMEM;
    memcpy(p, data, len);
    return ssh_packet_finish(s, len);
}

/* Messages that may be sent while our key exchange is running (RFC 4253
 * 7.1): the transport's generic messages and the key exchange's own. */
static bool allowed_during_kex(uint8_t type)
{
    return (type >= SSH_MSG_DISCONNECT && type <= SSH_MSG_DEBUG) ||
           (type >= SSH_MSG_KEXINIT && type <= 49);
}

int ssh_msg_send(struct ssh_session *s)
{
    if (s->msg.failed || s->msg.len == 0)
        return SSH_ERR_NOMEM;
    if (s->phase == SSH_PHASE_CLOSING)
        return SSH_OK;
    if (ssh_kex_blocks_output(s) && !allowed_during_kex(s->msg.data[0])) {
        if (wb_u32(&s->deferred, (uint32_t)s->msg.len) ||
            wb_bytes(&s->deferred, s->msg.data, s->msg.len))
            return SSH_ERR_NOMEM;
        return SSH_OK;
    }
    return send_payload(s, s->msg.data, s->msg.len);
}

int ssh_transport_flush_deferred(struct ssh_session *s)
{
    struct rd r;
    int err = SSH_OK;

    rd_init(&r, s->deferred.data, s->deferred.len);
    while (!err && rd_left(&r) > 0) {
        const uint8_t *payload;
        uint32_t len;
        if (rd_string(&r, &payload, &len))
            break;
        err = send_payload(s, payload, len);
    }
    wb_reset(&s->deferred);
    return err;
}

void ssh_transport_set_tx(struct ssh_session *s, struct ssh_crypt *c)
{
    ssh_crypt_free(s->tx);
    s->tx = c;
    if (s->strict_kex)
        s->seq_out = 0;
}

void ssh_transport_set_rx(struct ssh_session *s, struct ssh_crypt *c)
{
    ssh_crypt_free(s->rx);
    s->rx = c;
    if (s->strict_kex)
        s->seq_in = 0;
}

int ssh_disconnect(struct ssh_session *s, int err, uint32_t reason,
                   const char *description)
{
    struct wbuf *msg;

    if (s->phase == SSH_PHASE_CLOSING)
        return err;
    ssh_log(s, err == SSH_ERR_SHUTDOWN ? SSH_LOG_INFO : SSH_LOG_WARN,
            "Disconnecting %s%s port %u: %s%s",
            s->authenticated ? "user " : "", s->peer_addr, s->peer_port,
            description, s->authenticated ? "" : " [preauth]");
    if (s->phase == SSH_PHASE_PACKETS) {
        msg = ssh_msg_start(s, SSH_MSG_DISCONNECT);
        wb_u32(msg, reason);
        wb_cstring(msg, description);
        wb_cstring(msg, "");
        if (!msg->failed)
            (void)send_payload(s, msg->data, msg->len);
    }
    s->phase = SSH_PHASE_CLOSING;
    s->error = err;
    return err;
}

/// Version exchange ///

static int handle_version_line(struct ssh_session *s, const char *line,
                               size_t len)
{
    if (len < 4 || memcmp(line, "SSH-", 4) != 0) {
        /* RFC 4253 4.2 lets a server send lines before its version;
         * clients do not, but the bound keeps a scanner from feeding us
         * forever. */
        s->preversion_bytes += len + 1;
        if (s->preversion_bytes > SSH_PREVERSION_MAX) {
            ssh_log(s, SSH_LOG_INFO,
                    "banner exchange: Connection from %s port %u: "
                    "invalid format", s->peer_addr, s->peer_port);
            s->phase = SSH_PHASE_CLOSING;
            s->error = SSH_ERR_VERSION;
            return SSH_ERR_VERSION;
        }
        return SSH_OK;
    }
    if (!(len >= 8 && memcmp(line, "SSH-2.0-", 8) == 0) &&
        !(len >= 9 && memcmp(line, "SSH-1.99-", 9) == 0)) {
        char clean[65];
        ssh_printable(line, len, clean, sizeof(clean));
        ssh_log(s, SSH_LOG_INFO,
                "Protocol major versions differ for %s port %u: %s",
                s->peer_addr, s->peer_port, clean);
        s->phase = SSH_PHASE_CLOSING;
        s->error = SSH_ERR_VERSION;
        return SSH_ERR_VERSION;
    }
    memcpy(s->client_version, line, len);
    s->client_version[len] = '\0';
    s->phase = SSH_PHASE_PACKETS;
    ssh_log(s, SSH_LOG_DEBUG, "client version \"%s\"", s->client_version);
    return SSH_OK;
}

static int read_version(struct ssh_session *s)
{
    while (s->phase == SSH_PHASE_VERSION) {
        const uint8_t *data = bq_data(&s->in);
        size_t avail = bq_len(&s->in);
        size_t scan = avail < SSH_VERSION_LINE_MAX ? avail
                                                   : SSH_VERSION_LINE_MAX;
        const uint8_t *nl;
        size_t len;
        int err;

        if (avail == 0)
            return SSH_OK;
        nl = memchr(data, '\n', scan);

        if (!nl) {
            if (avail >= SSH_VERSION_LINE_MAX) {
                ssh_log(s, SSH_LOG_INFO,
                        "banner exchange: Connection from %s port %u: "
                        "line too long", s->peer_addr, s->peer_port);
                s->phase = SSH_PHASE_CLOSING;
                s->error = SSH_ERR_TOO_LARGE;
                return SSH_ERR_TOO_LARGE;
            }
            return SSH_OK;
        }
        len = (size_t)(nl - data);
        if (len > 0 && data[len - 1] == '\r')
            len--;
        if (memchr(data, '\0', len)) {
            s->phase = SSH_PHASE_CLOSING;
            s->error = SSH_ERR_VERSION;
            return SSH_ERR_VERSION;
        }
        err = handle_version_line(s, (const char *)data, len);
        bq_consume(&s->in, (size_t)(nl - data) + 1);
        if (err)
            return err;
    }
    return SSH_OK;
}

/// Incoming messages ///

static int send_unimplemented(struct ssh_session *s, uint32_t seq)
{
    struct wbuf *msg = ssh_msg_start(s, SSH_MSG_UNIMPLEMENTED);

    wb_u32(msg, seq);
    return ssh_msg_send(s);
}

static int handle_disconnect(struct ssh_session *s, const uint8_t *msg,
                             size_t len)
{
    const uint8_t *text = (const uint8_t *)"";
    uint32_t reason = 0, text_len = 0;
    char clean[201];
    uint8_t type;
    struct rd r;

    rd_init(&r, msg, len);
    if (rd_u8(&r, &type) || rd_u32(&r, &reason) ||
        rd_string(&r, &text, &text_len))
        text_len = 0;
    ssh_printable(text, text_len, clean, sizeof(clean));
    ssh_log(s, SSH_LOG_INFO, "Received disconnect from %s port %u:%u: %s%s",
            s->peer_addr, s->peer_port, reason, clean,
            s->authenticated ? "" : " [preauth]");
    s->phase = SSH_PHASE_CLOSING;
    s->error = SSH_ERR_CLOSED;
    return SSH_ERR_CLOSED;
}

static bool is_kex_message(uint8_t type)
{
    return type == SSH_MSG_KEXINIT || type == SSH_MSG_NEWKEYS ||
           type == SSH_MSG_KEX_ECDH_INIT;
}

/* Rules of the initial key exchange and of any key exchange the client
 * has started; returns SSH_OK when type may be handled now. */
static int check_kex_order(struct ssh_session *s, uint8_t type)
{
    bool first = s->kex_count == 0;

    /* Strict kex: during the initial exchange only its own messages. */
    if (first && s->strict_kex && !is_kex_message(type))
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "strict key exchange violation: unexpected "
                              "message during initial key exchange");
    if (type <= SSH_MSG_DEBUG || is_kex_message(type))
        return SSH_OK;
    if (first || ssh_kex_in_progress(s))
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "unexpected message during key exchange");
    return SSH_OK;
}

static int dispatch(struct ssh_session *s, const uint8_t *msg, size_t len,
                    uint32_t seq)
{
    uint8_t type = msg[0];
    int err = check_kex_order(s, type);

    if (err)
        return err;
    switch (type) {
    case SSH_MSG_DISCONNECT:
        return handle_disconnect(s, msg, len);
    case SSH_MSG_IGNORE:
    case SSH_MSG_DEBUG:
    case SSH_MSG_UNIMPLEMENTED:
    case SSH_MSG_EXT_INFO:
        return SSH_OK;
    case SSH_MSG_KEXINIT:
    case SSH_MSG_NEWKEYS:
    case SSH_MSG_KEX_ECDH_INIT:
        return ssh_kex_handle(s, type, msg, len);
    case SSH_MSG_SERVICE_REQUEST:
        return ssh_userauth_service_request(s, msg, len);
    }
    if (type >= 50 && type <= 79)
        return ssh_userauth_handle(s, type, msg, len);
    if (type >= 80 && type <= 127) {
        if (!s->authenticated)
            return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                                  SSH_DISCONNECT_PROTOCOL_ERROR,
                                  "connection message before "
                                  "authentication");
        return ssh_conn_handle(s, type, msg, len);
    }
    return send_unimplemented(s, seq);
}

/* Check a packet length against the direction's format: the aligned
 * part must be a multiple of the block size (RFC 4253 6). */
static bool length_ok(const struct ssh_session *s, uint32_t len)
{
    size_t block = ssh_crypt_block(s->rx);
    size_t aligned = ssh_crypt_aad(s->rx) ? len : (size_t)len + 4;

    return len >= 8 && len <= SSH_PACKET_MAX && aligned % block == 0;
}

static int read_packet(struct ssh_session *s, bool *more)
{
    uint8_t *p = bq_data_mut(&s->in);
    size_t avail = bq_len(&s->in);
    size_t tag = ssh_crypt_tag_len(s->rx);
    uint32_t len, seq;
    size_t total, pad;
    int err;

    *more = false;
    if (avail < ssh_crypt_first_len(s->rx))
        return SSH_OK;
    if (s->rx_pending_len == 0) {
        err = ssh_crypt_peek_length(s->rx, s->seq_in, p, &len);
        if (err)
            return ssh_disconnect(s, err, SSH_DISCONNECT_PROTOCOL_ERROR,
                                  "packet decryption failed");
        if (!length_ok(s, len))
            return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                                  SSH_DISCONNECT_PROTOCOL_ERROR,
                                  "Bad packet length");
        s->rx_pending_len = len;
    }
    len = (uint32_t)s->rx_pending_len;
    total = 4 + (size_t)len + tag;
    if (avail < total)
        return SSH_OK;

    err = ssh_crypt_open(s->rx, s->seq_in, p, len);
    if (err)
        return ssh_disconnect(s, err, SSH_DISCONNECT_MAC_ERROR,
                              "Corrupted MAC on input");
    pad = p[4];
    if (pad < 4 || pad + 1 >= len)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "invalid padding length");

    /* Count the packet before handling it: NEWKEYS may reset seq_in. */
    seq = s->seq_in++;
    s->rx_pending_len = 0;
    s->rx_bytes += total;
    s->packets_in++;
    err = dispatch(s, p + 5, len - pad - 1, seq);
    bq_consume(&s->in, total);
    *more = err == SSH_OK;
    return err;
}

static int read_packets(struct ssh_session *s)
{
    bool more = true;
    int err = SSH_OK;

    while (more && s->phase == SSH_PHASE_PACKETS)
        err = read_packet(s, &more);
    return err;
}

/// Timers ///

static uint64_t rekey_bytes(const struct ssh_session *s)
{
    return s->cfg->rekey_bytes ? s->cfg->rekey_bytes
                               : SSH_REKEY_BYTES_DEFAULT;
}

static uint64_t rekey_interval(const struct ssh_session *s)
{
    return s->cfg->rekey_interval_ms ? s->cfg->rekey_interval_ms
                                     : SSH_REKEY_INTERVAL_DEFAULT_MS;
}

static uint64_t grace_deadline(const struct ssh_session *s)
{
    uint64_t grace = s->cfg->login_grace_ms ? s->cfg->login_grace_ms
                                            : SSH_LOGIN_GRACE_DEFAULT_MS;
    return s->start_ms + grace;
}

static int check_timers(struct ssh_session *s)
{
    if (s->phase == SSH_PHASE_CLOSING)
        return s->error;
    if (!s->authenticated && s->now_ms >= grace_deadline(s))
        return ssh_userauth_timeout(s);

    /* Start a re-key once a limit is reached; a key exchange already
     * running (ours or the client's) covers it. */
    if (s->kex_count > 0 && !s->kex &&
        (s->rx_bytes >= rekey_bytes(s) || s->tx_bytes >= rekey_bytes(s) ||
         s->now_ms - s->kex_done_ms >= rekey_interval(s))) {
        ssh_log(s, SSH_LOG_DEBUG, "re-key %u started by the server after "
                "%llu bytes in, %llu bytes out", s->kex_count,
                (unsigned long long)s->rx_bytes,
                (unsigned long long)s->tx_bytes);
        return ssh_kex_start(s);
    }
    return SSH_OK;
}

/* The line sshd logs when the client closes the TCP connection. */
static void log_peer_closed(struct ssh_session *s)
{
    if (s->authenticated)
        ssh_log(s, SSH_LOG_INFO, "Disconnected from user %s %s port %u",
                s->user, s->peer_addr, s->peer_port);
    else if (s->user)
        ssh_log(s, SSH_LOG_INFO,
                "Connection closed by authenticating user %s %s port %u "
                "[preauth]", s->user, s->peer_addr, s->peer_port);
    else
        ssh_log(s, SSH_LOG_INFO, "Connection closed by %s port %u [preauth]",
                s->peer_addr, s->peer_port);
}

/// Session API ///

struct ssh_session *ssh_session_new(const struct ssh_server_config *cfg,
                                    void *conn_ctx, const char *peer_addr,
                                    unsigned peer_port, uint64_t now_ms)
{
    struct ssh_session *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->cfg = cfg;
    s->conn_ctx = conn_ctx;
    snprintf(s->peer_addr, sizeof(s->peer_addr), "%s", peer_addr);
    s->peer_port = peer_port;
    s->now_ms = now_ms;
    s->start_ms = now_ms;
    bq_init(&s->in, 0);
    bq_init(&s->out, 0);
    wb_init(&s->msg, 0);
    wb_init(&s->deferred, 0);
    s->in.w.secret = true;
    s->msg.secret = true;
    s->deferred.secret = true;

    /* Our version line and KEXINIT go out at once: nothing in them
     * depends on the client, and it saves a round trip. */
    if (bq_append(&s->out, SSH_SERVER_VERSION "\r\n",
                  strlen(SSH_SERVER_VERSION) + 2) ||
        ssh_kex_start(s) != SSH_OK) {
        ssh_session_free(s);
        return NULL;
    }
    return s;
}

void ssh_session_free(struct ssh_session *s)
{
    if (!s)
        return;
    ssh_conn_free(s);
    ssh_kex_free(s->kex);
    ssh_crypt_free(s->rx);
    ssh_crypt_free(s->tx);
    bq_free(&s->in);
    bq_free(&s->out);
    wb_free(&s->msg);
    wb_free(&s->deferred);
    free(s->user);
    OPENSSL_cleanse(s->session_id, sizeof(s->session_id));
    free(s);
}

uint8_t *ssh_session_input_space(struct ssh_session *s, size_t *len)
{
    uint8_t *p = bq_reserve(&s->in, READ_CHUNK);

    *len = p ? READ_CHUNK : 0;
    return p;
}

void ssh_session_input_commit(struct ssh_session *s, size_t n)
{
    bq_commit(&s->in, n);
}

void ssh_session_input_eof(struct ssh_session *s)
{
    s->peer_eof = true;
}

int ssh_session_process(struct ssh_session *s, uint64_t now_ms)
{
    int err = SSH_OK;

    s->now_ms = now_ms;
    if (s->phase == SSH_PHASE_VERSION)
        err = read_version(s);
    if (!err && s->phase == SSH_PHASE_PACKETS)
        err = read_packets(s);

    if (!err && s->peer_eof && s->phase != SSH_PHASE_CLOSING) {
        log_peer_closed(s);
        s->phase = SSH_PHASE_CLOSING;
        s->error = SSH_ERR_CLOSED;
    }
    if (!err)
        err = check_timers(s);
    if (!err && s->authenticated && s->phase == SSH_PHASE_PACKETS)
        err = ssh_conn_pump(s);
    if (err && s->phase != SSH_PHASE_CLOSING)
        err = ssh_disconnect(s, err, SSH_DISCONNECT_PROTOCOL_ERROR,
                             ssh_strerror(err));
    return s->phase == SSH_PHASE_CLOSING ? s->error : err;
}

const uint8_t *ssh_session_output(const struct ssh_session *s, size_t *len)
{
    *len = bq_len(&s->out);
    return bq_data(&s->out);
}

void ssh_session_output_consume(struct ssh_session *s, size_t n)
{
    bq_consume(&s->out, n);
}

bool ssh_session_wants_input(const struct ssh_session *s)
{
    /* Replies held during a key exchange count too: a client could
     * otherwise queue them without bound by sending requests. */
    return s->phase != SSH_PHASE_CLOSING && !s->peer_eof &&
           bq_len(&s->out) + s->deferred.len < SSH_OUTPUT_HARD;
}

bool ssh_session_done(const struct ssh_session *s)
{
    return s->phase == SSH_PHASE_CLOSING &&
           (bq_len(&s->out) == 0 || s->peer_eof);
}

uint64_t ssh_session_deadline(const struct ssh_session *s)
{
    uint64_t deadline = UINT64_MAX;

    if (s->phase == SSH_PHASE_CLOSING)
        return deadline;
    if (!s->authenticated)
        deadline = grace_deadline(s);
    if (s->kex_count > 0 && !s->kex &&
        s->kex_done_ms + rekey_interval(s) < deadline)
        deadline = s->kex_done_ms + rekey_interval(s);
    return deadline;
}

bool ssh_session_authenticated(const struct ssh_session *s)
{
    return s->authenticated;
}

void ssh_session_shutdown(struct ssh_session *s, const char *description)
{
    (void)ssh_disconnect(s, SSH_ERR_SHUTDOWN, SSH_DISCONNECT_BY_APPLICATION,
                         description);
}
