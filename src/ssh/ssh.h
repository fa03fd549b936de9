/*
 * The SSH-2 server: transport (RFC 4253), public-key user authentication
 * (RFC 4252) and session channels (RFC 4254) carrying subsystems.
 *
 * A struct ssh_session is one connection as a state machine without I/O:
 * the caller puts the bytes it reads from the socket into the session,
 * calls ssh_session_process(), and writes what ssh_session_output()
 * returns.  Users, keys and subsystems come from callbacks in struct
 * ssh_server_config, so the session never opens a file or a socket.
 */
#ifndef SSHFSD_SSH_SSH_H
#define SSHFSD_SSH_SSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Errors of the SSH layer: negative values, 0 is success. */
enum ssh_error {
    SSH_OK = 0,
    SSH_ERR_PROTOCOL = -1,    /* the peer broke the protocol */
    SSH_ERR_MAC = -2,         /* a packet failed authentication */
    SSH_ERR_NOMEM = -3,
    SSH_ERR_CRYPTO = -4,      /* a libcrypto call failed */
    SSH_ERR_NEGOTIATION = -5, /* no algorithm in common with the peer */
    SSH_ERR_TOO_LARGE = -6,   /* a packet, line or field over its limit */
    SSH_ERR_KEY = -7,         /* an invalid or unsupported key */
    SSH_ERR_SIGNATURE = -8,   /* a signature did not verify */
    SSH_ERR_VERSION = -9,     /* the peer is not an SSH-2 client */
    SSH_ERR_AUTH = -10,       /* too many authentication failures */
    SSH_ERR_CLOSED = -11,     /* the peer disconnected or closed the socket */
    SSH_ERR_TIMEOUT = -12,    /* the login grace time ran out */
    SSH_ERR_INVAL = -13,      /* an invalid argument or format */
    SSH_ERR_SHUTDOWN = -14,   /* the server ended the session */
};

const char *ssh_strerror(int err);

enum ssh_log_level {
    SSH_LOG_ERROR = 0,
    SSH_LOG_WARN = 1,
    SSH_LOG_INFO = 2,
    SSH_LOG_DEBUG = 3,
    SSH_LOG_TRACE = 4,
};

/* A user's public key (keys.c). */
struct ssh_pubkey;

/* The server's ed25519 host key (hostkey.c). */
struct ssh_hostkey;

/* What a subsystem's process callback returns besides errors. */
enum ssh_app_status {
    SSH_APP_RUNNING = 0,
    SSH_APP_DONE = 1,         /* finished: the channel closes once the
                                 output is sent */
};

/*
 * A subsystem ("sftp").  start creates an instance for an authenticated
 * user (NULL rejects the request).  process consumes bytes from in,
 * appends its replies to out and returns an enum ssh_app_status or a
 * negative error (the channel then closes).  It should stop taking input
 * once out holds out_limit bytes or more: that is how the amount of work
 * in flight stays bounded while the client's window is closed.  in_eof
 * tells that the client sent EOF and no more input follows.  stop frees
 * the instance.
 */
struct ssh_subsystem {
    const char *name;
    void *(*start)(void *ctx, const char *user);
    int (*process)(void *app, struct bq *in, bool in_eof, struct bq *out,
                   size_t out_limit);
    void (*stop)(void *app);
};

struct ssh_server_config {
    const struct ssh_hostkey *hostkey;

    /* Re-key after this many bytes in either direction, or this many
     * milliseconds; 0 selects the defaults (1 GiB, one hour). */
    uint64_t rekey_bytes;
    uint64_t rekey_interval_ms;
    /* 0 selects the defaults: 60 s and 6 attempts. */
    uint64_t login_grace_ms;
    unsigned max_auth_tries;

    /* Messages below this level are dropped before formatting. */
    enum ssh_log_level log_level;
    /* One finished log line, without a newline.  conn_ctx is the value
     * given to ssh_session_new(). */
    void (*log)(void *ctx, void *conn_ctx, enum ssh_log_level level,
                const char *line);

    /* User lookup: user_exists decides the "Invalid user" log line only;
     * key_allowed returns true when key may log in as user (false for
     * unknown users), and is called for unknown users too, so that both
     * cases take the same path. */
    bool (*user_exists)(void *ctx, const char *user);
    bool (*key_allowed)(void *ctx, const char *user,
                        const struct ssh_pubkey *key);
    /* Called once when a user has logged in (may be NULL). */
    void (*authenticated)(void *ctx, void *conn_ctx, const char *user);

    const struct ssh_subsystem *subsystems;
    size_t subsystem_count;

    void *ctx;
};

struct ssh_session;

/*
 * Create the session of one accepted connection.  peer_addr and
 * peer_port appear in log lines.  The server's version line is queued
 * for output at once.  Returns NULL when out of memory.
 */
struct ssh_session *ssh_session_new(const struct ssh_server_config *cfg,
                                    void *conn_ctx, const char *peer_addr,
                                    unsigned peer_port, uint64_t now_ms);
/* Free the session, stopping its subsystems and wiping its keys. */
void ssh_session_free(struct ssh_session *s);

/* Room for the next socket read: at least 1 byte, *len set to its size. */
uint8_t *ssh_session_input_space(struct ssh_session *s, size_t *len);
/* Record that n bytes were read into the input space. */
void ssh_session_input_commit(struct ssh_session *s, size_t n);
/* Record that the peer closed its side of the connection. */
void ssh_session_input_eof(struct ssh_session *s);

/*
 * Process the input received so far, run the subsystems, send what the
 * peer's windows allow, and handle timers (login grace, re-key).  Call it
 * after every read, after output was written and when the deadline
 * passed.  Returns SSH_OK or the error that ended the session (the
 * DISCONNECT message is then queued for output).
 */
int ssh_session_process(struct ssh_session *s, uint64_t now_ms);

/* Bytes waiting to be written to the socket. */
const uint8_t *ssh_session_output(const struct ssh_session *s, size_t *len);
/* Record that n bytes of the output were written. */
void ssh_session_output_consume(struct ssh_session *s, size_t n);

/* False while the output backlog is too large to accept more input. */
bool ssh_session_wants_input(const struct ssh_session *s);
/* True once the session ended and its last output was written. */
bool ssh_session_done(const struct ssh_session *s);
/* The next time (ms) ssh_session_process must run, or UINT64_MAX. */
uint64_t ssh_session_deadline(const struct ssh_session *s);
bool ssh_session_authenticated(const struct ssh_session *s);

/* End the session from the server's side with a DISCONNECT message
 * (reason "by application") carrying description. */
void ssh_session_shutdown(struct ssh_session *s, const char *description);

/* ---- keys (keys.c, hostkey.c) ---- */

/* "SHA256:" and 43 base64 characters, as ssh-keygen -l prints them. */
#define SSH_FINGERPRINT_MAX 64

/*
 * Parse an OpenSSH public-key line starting at the key type:
 * "TYPE BASE64 [COMMENT]".  Types: ssh-ed25519, ecdsa-sha2-nistp256,
 * ecdsa-sha2-nistp384, ecdsa-sha2-nistp521 and ssh-rsa (at least 2048
 * bits).  *comment (when comment is not NULL) receives a copy of the
 * comment with surrounding blanks removed, or NULL when there is none.
 */
int ssh_pubkey_parse_line(struct ssh_pubkey **out, const char *line,
                          char **comment);
/* Parse a key from its SSH wire encoding. */
int ssh_pubkey_from_blob(struct ssh_pubkey **out, const uint8_t *blob,
                         size_t len);
void ssh_pubkey_free(struct ssh_pubkey *key);
bool ssh_pubkey_equal(const struct ssh_pubkey *a, const struct ssh_pubkey *b);
/* The key's wire encoding. */
const uint8_t *ssh_pubkey_blob(const struct ssh_pubkey *key, size_t *len);
/* Key type as written in key files ("ssh-ed25519"). */
const char *ssh_pubkey_type_name(const struct ssh_pubkey *key);
/* Key type as OpenSSH logs it ("ED25519", "ECDSA", "RSA"). */
const char *ssh_pubkey_type_label(const struct ssh_pubkey *key);
unsigned ssh_pubkey_bits(const struct ssh_pubkey *key);
/* Write "SHA256:..." of a key blob into out (SSH_FINGERPRINT_MAX). */
void ssh_fingerprint(const uint8_t *blob, size_t len,
                     char out[SSH_FINGERPRINT_MAX]);

/* Size of an ed25519 private key seed. */
#define SSH_ED25519_SEED_LEN 32

/* Host key from a 32-byte ed25519 private seed. */
int ssh_hostkey_from_seed(struct ssh_hostkey **out,
                          const uint8_t seed[SSH_ED25519_SEED_LEN]);
/* Host key derived from a passphrase-like string (--seed): the private
 * seed is HKDF-SHA256 (RFC 5869) with salt "sshfsd host key", info
 * "ssh-ed25519" and the string as input keying material. */
int ssh_hostkey_derive(struct ssh_hostkey **out, const char *text);
/* A new random host key; its private seed is written to seed. */
int ssh_hostkey_generate(struct ssh_hostkey **out,
                         uint8_t seed[SSH_ED25519_SEED_LEN]);
/* Host key from the text of an unencrypted OpenSSH private key file
 * ("-----BEGIN OPENSSH PRIVATE KEY-----") holding one ed25519 key. */
int ssh_hostkey_parse_openssh(struct ssh_hostkey **out, const char *text,
                              size_t len);
void ssh_hostkey_free(struct ssh_hostkey *key);
const uint8_t *ssh_hostkey_blob(const struct ssh_hostkey *key, size_t *len);
/* Append the SSH signature encoding (string "ssh-ed25519", string
 * signature) of data to sig. */
int ssh_hostkey_sign(const struct ssh_hostkey *key, const uint8_t *data,
                     size_t len, struct wbuf *sig);

#endif
