/*
 * An in-process SSH client for the server's unit tests: it drives a
 * struct ssh_session with bytes, on a clock the test controls, and
 * speaks the client side of key exchange, authentication and channels.
 *
 * The client reuses the server's packet ciphers (cipher.c), so it checks
 * the protocol logic, not the ciphers; the tests in tests/ssh/ run real
 * clients for that.  The session under test serves user "alice" with
 * one ed25519 key and a subsystem "echo" that returns its input.
 */
#ifndef SSHFSD_TESTS_SSH_TEST_CLIENT_H
#define SSHFSD_TESTS_SSH_TEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ssh/ssh_internal.h"
#include "util/buf.h"

#define STC_USER "alice"

struct stc_options {
    const char *cipher;         /* NULL: chacha20-poly1305@openssh.com */
    const char *mac;            /* NULL: hmac-sha2-256-etm@openssh.com */
    bool no_strict;             /* leave out kex-strict-c-v00 */
    bool no_ext_info;           /* leave out ext-info-c */
    uint64_t rekey_bytes;       /* the server's limit, 0 for its default */
    unsigned max_auth_tries;
};

struct stc {
    struct stc_options opts;
    struct ssh_server_config cfg;
    struct ssh_subsystem echo;
    struct ssh_hostkey *hostkey;
    EVP_PKEY *user_key;         /* the key alice logs in with */
    struct ssh_pubkey *user_pub;
    struct ssh_session *server;
    uint64_t now;
    int server_status;          /* what ssh_session_process returned */

    struct bq from_server;      /* server output not yet parsed */
    bool got_version;
    struct ssh_crypt *rx;
    struct ssh_crypt *tx;
    uint32_t seq_in;
    uint32_t seq_out;
    bool strict;
    uint8_t session_id[32];
    bool have_session_id;
    char server_version[256];

    /* Messages that arrived while stc_rekey() waited for the server's
     * KEXINIT; stc_recv() returns them first. */
    struct wbuf held;           /* u32 length, payload, repeated */
    size_t held_off;

    /* Log lines of the session, newline-separated. */
    struct wbuf log;
    /* Bytes the echo subsystem may hold in out before it stops. */
    size_t echo_out_limit;
};

/* Set up the server session (not yet connected). */
void stc_init(struct stc *c, const struct stc_options *opts);
void stc_free(struct stc *c);

/* Feed raw bytes to the server and run it. */
void stc_feed(struct stc *c, const void *data, size_t len);
/* Run the server at time now (ms) without input. */
void stc_run(struct stc *c, uint64_t now);

/* Send one message under the client's current keys. */
void stc_send(struct stc *c, const void *payload, size_t len);
/* Build and send a message from a wbuf. */
void stc_send_wb(struct stc *c, struct wbuf *w);

/* The next message from the server: 1 and its payload copied into msg,
 * 0 when none is complete, -1 when a packet fails to decrypt. */
int stc_recv(struct stc *c, struct wbuf *msg);
/* The next message other than IGNORE, DEBUG and EXT_INFO; fails the
 * test when there is none. */
uint8_t stc_expect_any(struct stc *c, struct wbuf *msg);
/* stc_expect_any, checking the type. */
void stc_expect(struct stc *c, uint8_t type, struct wbuf *msg);

/* Version exchange and the first key exchange. */
void stc_handshake(struct stc *c);
/* A key exchange after the first: started by the client when
 * server_kexinit is NULL, else answering that KEXINIT payload, which the
 * server sent first. */
void stc_rekey(struct stc *c, const struct wbuf *server_kexinit);
/* Service request and publickey login as alice. */
void stc_login(struct stc *c);
/* Open a session channel with the given window and maximum packet;
 * returns the server's channel number. */
uint32_t stc_open_session(struct stc *c, uint32_t window,
                          uint32_t max_packet);
/* A channel request; returns the reply type (CHANNEL_SUCCESS or
 * CHANNEL_FAILURE) when want_reply, else 0. */
uint8_t stc_channel_request(struct stc *c, uint32_t channel,
                            const char *type, bool want_reply,
                            const char *arg);

/* A new ed25519 key pair. */
EVP_PKEY *stc_new_key(void);
/* Send a publickey USERAUTH_REQUEST for user with key: a query without
 * signature, or a signed request. */
void stc_send_publickey(struct stc *c, const char *user, EVP_PKEY *key,
                        bool sign);

/* True when the log contains text. */
bool stc_log_has(const struct stc *c, const char *text);

#endif
