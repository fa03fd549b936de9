/*
 * User authentication (RFC 4252): the "publickey" method only, both the
 * query whether a key is acceptable (PK_OK when it is) and the signed
 * request.
 *
 * An unknown user and a known user with a wrong key take the same path:
 * the key is looked up through the same callback (which refuses every
 * key of an unknown user) and a signature is always verified, so replies
 * and their timing do not reveal which users exist.  Only the log line
 * says "invalid user", as sshd's does.
 */
#include <stdlib.h>
#include <string.h>

#include "ssh/ssh_internal.h"

/* Maximum user name length; longer names make the request invalid. */
#define USER_NAME_MAX 256

struct auth_request {
    char *user;
    char *service;
    char *method;
    struct rd rest;             /* the method-specific fields */
};

static void free_request(struct auth_request *req)
{
    free(req->user);
    free(req->service);
    free(req->method);
}

static unsigned max_tries(const struct ssh_session *s)
{
    return s->cfg->max_auth_tries ? s->cfg->max_auth_tries
                                  : SSH_MAX_AUTH_TRIES_DEFAULT;
}

static bool user_exists(struct ssh_session *s, const char *user)
{
    return s->cfg->user_exists && s->cfg->user_exists(s->cfg->ctx, user);
}

int ssh_userauth_service_request(struct ssh_session *s, const uint8_t *msg,
                                 size_t len)
{
    char *service = NULL;
    struct wbuf *reply;
    uint8_t type;
    struct rd r;
    bool ok;

    rd_init(&r, msg, len);
    if (rd_u8(&r, &type) || rd_cstring(&r, &service, SSH_NAME_MAX))
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "invalid SERVICE_REQUEST");
    ok = strcmp(service, "ssh-userauth") == 0 && !s->authenticated;
    if (!ok) {
        free(service);
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_SERVICE_NOT_AVAILABLE,
                              "service not available");
    }
    s->userauth_started = true;
    reply = ssh_msg_start(s, SSH_MSG_SERVICE_ACCEPT);
    wb_cstring(reply, service);
    free(service);
    return ssh_msg_send(s);
}

/// Replies and log lines ///

/* Names from the client reach log lines: printable ASCII only. */
static bool printable(const char *text)
{
    for (const char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    }
    return true;
}

static int send_failure(struct ssh_session *s)
{
    struct wbuf *msg = ssh_msg_start(s, SSH_MSG_USERAUTH_FAILURE);

    wb_cstring(msg, "publickey");
    wb_bool(msg, false);
    return ssh_msg_send(s);
}

/* Count and log a failed attempt, as sshd does, and reply FAILURE, or
 * disconnect once the attempts are used up. */
static int fail_attempt(struct ssh_session *s, const char *method,
                        const char *key_info)
{
    bool valid = user_exists(s, s->user);

    ssh_log(s, SSH_LOG_INFO, "Failed %s for %s%s from %s port %u ssh2%s%s",
            method, valid ? "" : "invalid user ", s->user, s->peer_addr,
            s->peer_port, key_info ? ": " : "", key_info ? key_info : "");
    s->auth_failures++;
    if (s->auth_failures >= max_tries(s)) {
        ssh_log(s, SSH_LOG_ERROR,
                "maximum authentication attempts exceeded for %s%s from %s "
                "port %u ssh2 [preauth]", valid ? "" : "invalid user ",
                s->user, s->peer_addr, s->peer_port);
        return ssh_disconnect(s, SSH_ERR_AUTH,
                              SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
                              "Too many authentication failures");
    }
    return send_failure(s);
}

static int succeed(struct ssh_session *s, const char *key_info)
{
    ssh_log(s, SSH_LOG_INFO, "Accepted publickey for %s from %s port %u "
            "ssh2: %s", s->user, s->peer_addr, s->peer_port, key_info);
    s->authenticated = true;
    ssh_msg_start(s, SSH_MSG_USERAUTH_SUCCESS);
    if (s->cfg->authenticated)
        s->cfg->authenticated(s->cfg->ctx, s->conn_ctx, s->user);
    return ssh_msg_send(s);
}

/// publickey ///

/* The data a publickey signature covers (RFC 4252 7). */
static int signed_data(struct ssh_session *s, const struct auth_request *req,
                       const char *alg, const uint8_t *blob,
                       uint32_t blob_len, struct wbuf *w)
{
    int err = 0;

    err |= wb_string(w, s->session_id, s->session_id_len);
    err |= wb_u8(w, SSH_MSG_USERAUTH_REQUEST);
    err |= wb_cstring(w, req->user);
    err |= wb_cstring(w, req->service);
    err |= wb_cstring(w, "publickey");
    err |= wb_bool(w, true);
    err |= wb_cstring(w, alg);
    err |= wb_string(w, blob, blob_len);
    return err ? SSH_ERR_NOMEM : SSH_OK;
}

static bool alg_matches_key(const char *alg, const struct ssh_pubkey *key)
{
    if (strcmp(ssh_pubkey_type_name(key), "ssh-rsa") == 0)
        return strcmp(alg, "rsa-sha2-256") == 0 ||
               strcmp(alg, "rsa-sha2-512") == 0;
    return strcmp(alg, ssh_pubkey_type_name(key)) == 0;
}

static int verify_request(struct ssh_session *s, struct auth_request *req,
                          const char *alg, const uint8_t *blob,
                          uint32_t blob_len, const struct ssh_pubkey *key,
                          bool *verified)
{
    const uint8_t *sig;
    uint32_t sig_len;
    struct wbuf data;
    int err;

    if (rd_string(&req->rest, &sig, &sig_len) || rd_left(&req->rest) != 0)
        return SSH_ERR_PROTOCOL;
    wb_init(&data, 0);
    err = signed_data(s, req, alg, blob, blob_len, &data);
    if (!err)
        *verified = ssh_pubkey_verify(key, alg, sig, sig_len, data.data,
                                      data.len) == SSH_OK;
    wb_free(&data);
    return err;
}

/* Reply to a request without signature, a query whether the key would
 * do: PK_OK if so, a failed attempt if not. */
static int answer_query(struct ssh_session *s, struct auth_request *req,
                        const char *alg, const uint8_t *blob,
                        uint32_t blob_len, bool allowed, const char *info)
{
    struct wbuf *msg;

    if (rd_left(&req->rest) != 0)
        return SSH_ERR_PROTOCOL;
    if (!allowed)
        return fail_attempt(s, "publickey", info);
    msg = ssh_msg_start(s, SSH_MSG_USERAUTH_PK_OK);
    wb_cstring(msg, alg);
    wb_string(msg, blob, blob_len);
    return ssh_msg_send(s);
}

static int handle_publickey(struct ssh_session *s, struct auth_request *req)
{
    char *alg = NULL;
    const uint8_t *blob;
    uint32_t blob_len;
    struct ssh_pubkey *key = NULL;
    char info[128], fp[SSH_FINGERPRINT_MAX];
    bool has_sig, allowed, verified = false;
    int err;

    if (rd_bool(&req->rest, &has_sig) ||
        rd_cstring(&req->rest, &alg, SSH_NAME_MAX) ||
        rd_string(&req->rest, &blob, &blob_len) || !printable(alg)) {
        free(alg);
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "invalid publickey request");
    }
    if (ssh_pubkey_from_blob(&key, blob, blob_len) != SSH_OK) {
        ssh_log(s, SSH_LOG_INFO, "publickey: invalid or unsupported key "
                "of type %.64s from %s port %u", alg, s->peer_addr,
                s->peer_port);
        free(alg);
        return fail_attempt(s, "publickey", NULL);
    }
    ssh_fingerprint(blob, blob_len, fp);
    snprintf(info, sizeof(info), "%s %s", ssh_pubkey_type_label(key), fp);
    if (!ssh_sig_alg_supported(alg) || !alg_matches_key(alg, key)) {
        /* ssh-rsa (SHA-1) signatures end up here. */
        ssh_log(s, SSH_LOG_INFO, "publickey: signature algorithm %.64s is "
                "not accepted for %s keys", alg, ssh_pubkey_type_name(key));
        ssh_pubkey_free(key);
        free(alg);
        return fail_attempt(s, "publickey", info);
    }

    allowed = s->cfg->key_allowed &&
              s->cfg->key_allowed(s->cfg->ctx, req->user, key);

    if (!has_sig) {
        err = answer_query(s, req, alg, blob, blob_len, allowed, info);
    } else {
        err = verify_request(s, req, alg, blob, blob_len, key, &verified);
        if (!err)
            err = allowed && verified ? succeed(s, info)
                                      : fail_attempt(s, "publickey", info);
    }
    ssh_pubkey_free(key);
    free(alg);
    if (err == SSH_ERR_PROTOCOL)
        return ssh_disconnect(s, err, SSH_DISCONNECT_PROTOCOL_ERROR,
                              "invalid publickey request");
    return err;
}

/// Requests ///

/* The user and service may not change between attempts, as in sshd. */
static int check_user(struct ssh_session *s, const struct auth_request *req)
{
    if (strcmp(req->service, "ssh-connection") != 0)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_SERVICE_NOT_AVAILABLE,
                              "service not available");
    if (s->user && strcmp(s->user, req->user) != 0)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "Change of username or service not allowed");
    if (!s->user) {
        s->user = strdup(req->user);
        if (!s->user)
            return SSH_ERR_NOMEM;
        if (!user_exists(s, s->user))
            ssh_log(s, SSH_LOG_INFO, "Invalid user %s from %s port %u",
                    s->user, s->peer_addr, s->peer_port);
    }
    return SSH_OK;
}

int ssh_userauth_handle(struct ssh_session *s, uint8_t type,
                        const uint8_t *msg, size_t len)
{
    struct auth_request req = { 0 };
    uint8_t msg_type;
    int err;

    if (type != SSH_MSG_USERAUTH_REQUEST || !s->userauth_started)
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "unexpected authentication message");
    /* RFC 4252 5.1: requests after success are ignored. */
    if (s->authenticated)
        return SSH_OK;

    rd_init(&req.rest, msg, len);
    if (rd_u8(&req.rest, &msg_type) ||
        rd_cstring(&req.rest, &req.user, USER_NAME_MAX) ||
        rd_cstring(&req.rest, &req.service, SSH_NAME_MAX) ||
        rd_cstring(&req.rest, &req.method, SSH_NAME_MAX) ||
        !printable(req.user) || !printable(req.method)) {
        free_request(&req);
        return ssh_disconnect(s, SSH_ERR_PROTOCOL,
                              SSH_DISCONNECT_PROTOCOL_ERROR,
                              "invalid authentication request");
    }

    err = check_user(s, &req);
    if (!err) {
        if (strcmp(req.method, "none") == 0)
            err = send_failure(s);
        else if (strcmp(req.method, "publickey") == 0)
            err = handle_publickey(s, &req);
        else
            err = fail_attempt(s, req.method, NULL);
    }
    free_request(&req);
    return err;
}

int ssh_userauth_timeout(struct ssh_session *s)
{
    ssh_log(s, SSH_LOG_INFO, "Timeout before authentication for %s port %u",
            s->peer_addr, s->peer_port);
    return ssh_disconnect(s, SSH_ERR_TIMEOUT, SSH_DISCONNECT_PROTOCOL_ERROR,
                          "Login grace time exceeded");
}
