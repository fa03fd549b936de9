/*
 * Shared between the files of src/ssh/: message numbers, limits, the
 * session structure and the functions one layer calls in another.
 */
#ifndef SSHFSD_SSH_INTERNAL_H
#define SSHFSD_SSH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ssh/ssh.h"
#include "util/buf.h"

/* Message numbers (RFC 4250 section 4.1, RFC 8308, RFC 5656). */
enum {
    SSH_MSG_DISCONNECT = 1,
    SSH_MSG_IGNORE = 2,
    SSH_MSG_UNIMPLEMENTED = 3,
    SSH_MSG_DEBUG = 4,
    SSH_MSG_SERVICE_REQUEST = 5,
    SSH_MSG_SERVICE_ACCEPT = 6,
    SSH_MSG_EXT_INFO = 7,
    SSH_MSG_KEXINIT = 20,
    SSH_MSG_NEWKEYS = 21,
    SSH_MSG_KEX_ECDH_INIT = 30,
    SSH_MSG_KEX_ECDH_REPLY = 31,
    SSH_MSG_USERAUTH_REQUEST = 50,
    SSH_MSG_USERAUTH_FAILURE = 51,
    SSH_MSG_USERAUTH_SUCCESS = 52,
    SSH_MSG_USERAUTH_BANNER = 53,
    SSH_MSG_USERAUTH_PK_OK = 60,
    SSH_MSG_GLOBAL_REQUEST = 80,
    SSH_MSG_REQUEST_SUCCESS = 81,
    SSH_MSG_REQUEST_FAILURE = 82,
    SSH_MSG_CHANNEL_OPEN = 90,
    SSH_MSG_CHANNEL_OPEN_CONFIRMATION = 91,
    SSH_MSG_CHANNEL_OPEN_FAILURE = 92,
    SSH_MSG_CHANNEL_WINDOW_ADJUST = 93,
    SSH_MSG_CHANNEL_DATA = 94,
    SSH_MSG_CHANNEL_EXTENDED_DATA = 95,
    SSH_MSG_CHANNEL_EOF = 96,
    SSH_MSG_CHANNEL_CLOSE = 97,
    SSH_MSG_CHANNEL_REQUEST = 98,
    SSH_MSG_CHANNEL_SUCCESS = 99,
    SSH_MSG_CHANNEL_FAILURE = 100,
};

/* DISCONNECT reason codes (RFC 4253 section 11.1). */
enum {
    SSH_DISCONNECT_PROTOCOL_ERROR = 2,
    SSH_DISCONNECT_KEY_EXCHANGE_FAILED = 3,
    SSH_DISCONNECT_MAC_ERROR = 5,
    SSH_DISCONNECT_SERVICE_NOT_AVAILABLE = 7,
    SSH_DISCONNECT_PROTOCOL_VERSION_NOT_SUPPORTED = 8,
    SSH_DISCONNECT_BY_APPLICATION = 11,
    SSH_DISCONNECT_TOO_MANY_CONNECTIONS = 12,
    SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE = 14,
};

/* CHANNEL_OPEN_FAILURE reason codes (RFC 4254 section 5.1). */
enum {
    SSH_OPEN_ADMINISTRATIVELY_PROHIBITED = 1,
    SSH_OPEN_UNKNOWN_CHANNEL_TYPE = 3,
    SSH_OPEN_RESOURCE_SHORTAGE = 4,
};

/* Limits. */
#define SSH_VERSION_LINE_MAX 255      /* RFC 4253 4.2, CR LF included */
#define SSH_PREVERSION_MAX 8192       /* bytes of other lines before it */
#define SSH_PACKET_MAX (256 * 1024)   /* packet_length, as OpenSSH */
#define SSH_MAC_MAX 64                /* maximum tag or MAC (SHA-512) */
#define SSH_NAME_MAX 1024             /* user names, request names */
#define SSH_NAMELIST_MAX 4096         /* one KEXINIT name-list */
#define SSH_CHANNELS_MAX 10           /* open channels per connection */
/* Receive window and largest CHANNEL_DATA we accept per channel. */
#define SSH_CHANNEL_WINDOW (8u * 1024 * 1024)
#define SSH_CHANNEL_MAX_PACKET (128u * 1024)
/* A subsystem stops taking requests while this much output waits. */
#define SSH_CHANNEL_OUT_LIMIT (1024u * 1024)
/* Output (encrypted, not yet written) past which channels stop sending
 * and, past the hard limit, the session stops reading input. */
#define SSH_OUTPUT_HIGH (2u * 1024 * 1024)
#define SSH_OUTPUT_HARD (16u * 1024 * 1024)

#define SSH_REKEY_BYTES_DEFAULT (1ull << 30)
#define SSH_REKEY_INTERVAL_DEFAULT_MS (3600ull * 1000)
#define SSH_LOGIN_GRACE_DEFAULT_MS (60ull * 1000)
#define SSH_MAX_AUTH_TRIES_DEFAULT 6

#define SSH_SERVER_VERSION "SSH-2.0-sshfsd_0.1"

/* ---- packet protection (cipher.c) ---- */

struct ssh_cipher_alg;
struct ssh_mac_alg;
struct ssh_crypt;

const struct ssh_cipher_alg *ssh_cipher_find(const char *name, size_t len);
const struct ssh_mac_alg *ssh_mac_find(const char *name, size_t len);
/* Comma-separated names in the server's order of preference. */
extern const char ssh_cipher_names[];
extern const char ssh_mac_names[];

size_t ssh_cipher_key_len(const struct ssh_cipher_alg *alg);
size_t ssh_cipher_iv_len(const struct ssh_cipher_alg *alg);
bool ssh_cipher_is_aead(const struct ssh_cipher_alg *alg);
const char *ssh_cipher_name(const struct ssh_cipher_alg *alg);
size_t ssh_mac_key_len(const struct ssh_mac_alg *alg);
const char *ssh_mac_name(const struct ssh_mac_alg *alg);

/* Keys of one direction.  mac is NULL for AEAD ciphers. */
int ssh_crypt_new(struct ssh_crypt **out, const struct ssh_cipher_alg *alg,
                  const struct ssh_mac_alg *mac, bool encrypt,
                  const uint8_t *key, const uint8_t *iv,
                  const uint8_t *mac_key);
void ssh_crypt_free(struct ssh_crypt *c);

/*
 * The packet format a direction uses.  With c NULL (before the first
 * NEWKEYS) packets are in the clear with 8-byte alignment.
 *   block:     padding aligns to this
 *   aad:       true when the 4-byte length is outside the aligned part
 *              (AEAD and encrypt-then-MAC modes)
 *   tag:       bytes of MAC or tag after the packet
 *   first:     bytes needed to learn the packet length
 */
size_t ssh_crypt_block(const struct ssh_crypt *c);
bool ssh_crypt_aad(const struct ssh_crypt *c);
size_t ssh_crypt_tag_len(const struct ssh_crypt *c);
size_t ssh_crypt_first_len(const struct ssh_crypt *c);

/* Learn the length of the packet at pkt (ssh_crypt_first_len bytes are
 * there).  May decrypt those bytes in place; calling it again for the
 * same packet returns the same length. */
int ssh_crypt_peek_length(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                          uint32_t *len);
/* Authenticate and decrypt the packet in place: pkt contains 4 + len
 * bytes followed by the tag. */
int ssh_crypt_open(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                   size_t len);
/* Encrypt in place and write the tag after the 4 + len packet bytes. */
int ssh_crypt_seal(struct ssh_crypt *c, uint32_t seq, uint8_t *pkt,
                   size_t len);

/* ---- key exchange (kex.c) ---- */

struct ssh_kex;

/* Start a key exchange by sending our KEXINIT. */
int ssh_kex_start(struct ssh_session *s);
/* Handle KEXINIT, KEX_ECDH_INIT and NEWKEYS. */
int ssh_kex_handle(struct ssh_session *s, uint8_t type, const uint8_t *msg,
                   size_t len);
void ssh_kex_free(struct ssh_kex *kex);
/* True between our KEXINIT and our NEWKEYS: only key exchange messages
 * may be sent. */
bool ssh_kex_blocks_output(const struct ssh_session *s);
/* True between the peer's KEXINIT and its NEWKEYS. */
bool ssh_kex_in_progress(const struct ssh_session *s);

/* ---- host key and user keys (hostkey.c, keys.c) ---- */

/* Verify an SSH signature blob over data: sig_alg is the algorithm the
 * request named, which must match the key and the blob.  ssh-rsa
 * (SHA-1) signatures are rejected. */
int ssh_pubkey_verify(const struct ssh_pubkey *key, const char *sig_alg,
                      const uint8_t *sig, size_t sig_len,
                      const uint8_t *data, size_t data_len);
/* True when sig_alg is a signature algorithm the server accepts for
 * user keys. */
bool ssh_sig_alg_supported(const char *sig_alg);
/* Comma-separated list for EXT_INFO server-sig-algs. */
extern const char ssh_sig_alg_names[];

/* Base64 (RFC 4648) without line breaks. */
int ssh_base64_decode(const char *in, size_t len, struct wbuf *out);
int ssh_base64_encode(const uint8_t *in, size_t len, struct wbuf *out,
                      bool pad);

/* ---- transport (transport.c) ---- */

enum ssh_phase {
    SSH_PHASE_VERSION,     /* waiting for the client's version line */
    SSH_PHASE_PACKETS,     /* binary packets */
    SSH_PHASE_CLOSING,     /* DISCONNECT queued, no input is read */
};

struct ssh_channel;

struct ssh_session {
    const struct ssh_server_config *cfg;
    void *conn_ctx;
    char peer_addr[64];
    unsigned peer_port;
    uint64_t now_ms;
    uint64_t start_ms;

    enum ssh_phase phase;
    int error;                  /* what ended the session, or SSH_OK */
    bool peer_eof;

    struct bq in;               /* bytes read, not yet processed */
    struct bq out;              /* bytes to write to the socket */
    struct wbuf msg;            /* the control message being built */
    struct wbuf deferred;       /* messages held during key exchange:
                                   u32 length, payload, repeated */

    char client_version[SSH_VERSION_LINE_MAX + 1];
    size_t preversion_bytes;

    uint32_t seq_in;
    uint32_t seq_out;
    uint64_t packets_in;        /* since the connection started */
    struct ssh_crypt *rx;
    struct ssh_crypt *tx;
    size_t rx_pending_len;      /* length of the packet being received,
                                   0 when not known yet */

    struct ssh_kex *kex;        /* the key exchange in progress or NULL */
    uint8_t session_id[64];
    size_t session_id_len;      /* 0 until the first key exchange ends */
    bool strict_kex;
    bool client_ext_info;
    uint64_t rx_bytes;          /* since the last key exchange */
    uint64_t tx_bytes;
    uint64_t kex_done_ms;
    unsigned kex_count;

    /* userauth.c */
    bool userauth_started;      /* ssh-userauth service accepted */
    bool authenticated;
    unsigned auth_failures;
    char *user;

    /* connection.c */
    struct ssh_channel *channels[SSH_CHANNELS_MAX];
    bool no_more_sessions;
};

/* Log a line about this session at level (printf format). */
void ssh_log(struct ssh_session *s, enum ssh_log_level level,
             const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Copy text from the peer for a log line: at most size - 1 bytes, every
 * byte outside printable ASCII replaced by '?', NUL-terminated. */
void ssh_printable(const void *text, size_t len, char *out, size_t size);

/* Start a control message of the given type in s->msg. */
struct wbuf *ssh_msg_start(struct ssh_session *s, uint8_t type);
/* Send s->msg as one packet, or hold it while key exchange blocks
 * output (key exchange messages themselves are never held). */
int ssh_msg_send(struct ssh_session *s);

/* Reserve a packet of payload_len bytes in the output and return where
 * the payload goes; ssh_packet_finish() seals it.  Only when output is
 * not blocked by key exchange. */
uint8_t *ssh_packet_start(struct ssh_session *s, size_t payload_len);
int ssh_packet_finish(struct ssh_session *s, size_t payload_len);

/* End the session: queue DISCONNECT with reason and description, log
 * it, and return err. */
int ssh_disconnect(struct ssh_session *s, int err, uint32_t reason,
                   const char *description);

/* Install new keys for one direction (at NEWKEYS). */
void ssh_transport_set_tx(struct ssh_session *s, struct ssh_crypt *c);
void ssh_transport_set_rx(struct ssh_session *s, struct ssh_crypt *c);
/* Send the messages held during key exchange. */
int ssh_transport_flush_deferred(struct ssh_session *s);

/* Bytes of encrypted output waiting. */
static inline size_t ssh_output_len(const struct ssh_session *s)
{
    return bq_len(&s->out);
}

/* ---- user authentication (userauth.c) ---- */

int ssh_userauth_service_request(struct ssh_session *s, const uint8_t *msg,
                                 size_t len);
int ssh_userauth_handle(struct ssh_session *s, uint8_t type,
                        const uint8_t *msg, size_t len);
/* Called when the login grace time ran out. */
int ssh_userauth_timeout(struct ssh_session *s);

/* ---- connection protocol (connection.c) ---- */

int ssh_conn_handle(struct ssh_session *s, uint8_t type, const uint8_t *msg,
                    size_t len);
/* Run subsystems and send channel data while windows and the output
 * allow. */
int ssh_conn_pump(struct ssh_session *s);
void ssh_conn_free(struct ssh_session *s);

#endif
