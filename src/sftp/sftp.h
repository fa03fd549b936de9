/*
 * The SFTP server core: SFTP version 3 with OpenSSH's extensions.
 *
 * A session does no I/O.  The caller feeds it the bytes the client sent
 * (sftp_session_input) and sends on the bytes it produces
 * (sftp_session_output); requests act on a struct vfs.  The same core so
 * serves SSH channels, stdio mode, unit tests and fuzzers.
 *
 * Requests are processed in the order they arrive and each gets its reply
 * before the next one is read, so replies leave in request order.  Memory
 * is bounded: the session keeps at most one incomplete packet of input and
 * takes no more input while its output queue is above SFTP_OUTPUT_HIGH,
 * until the caller has sent some of it on.
 */
#ifndef SSHFSD_SFTP_SFTP_H
#define SSHFSD_SFTP_SFTP_H

#include <stddef.h>
#include <stdint.h>

#include "vfs/vfs.h"

/* Limits advertised through limits@openssh.com.  They match OpenSSH's
 * sftp-server (256 KiB packets, reads and writes 1 KiB smaller). */
#define SFTP_MAX_PACKET (256 * 1024)
#define SFTP_MAX_READ (SFTP_MAX_PACKET - 1024)
#define SFTP_MAX_WRITE (SFTP_MAX_PACKET - 1024)
#define SFTP_DEFAULT_MAX_HANDLES 256
#define SFTP_DEFAULT_UMASK 022

/* Output queued beyond this stops the session from taking input. */
#define SFTP_OUTPUT_HIGH (1024 * 1024)

/* Longest path accepted after normalization, including the NUL. */
#define SFTP_PATH_MAX 4096

/* Errors that end a session: negative values, 0 while it is healthy. */
enum sftp_error {
    SFTP_OK = 0,
    SFTP_ERR_PACKET_LENGTH = -1,  /* a packet is empty or over the limit */
    SFTP_ERR_NOT_INITIALIZED = -2,/* a request came before INIT */
    SFTP_ERR_REINIT = -3,         /* a second INIT */
    SFTP_ERR_TRUNCATED = -4,      /* a packet ends before its request id
                                     or, for INIT, its version */
    SFTP_ERR_NOMEM = -5,          /* out of memory */
};

const char *sftp_strerror(int err);

enum sftp_log_level {
    SFTP_LOG_ERROR = 0,
    SFTP_LOG_WARN = 1,
    SFTP_LOG_INFO = 2,
    SFTP_LOG_DEBUG = 3,
    SFTP_LOG_TRACE = 4,
};

/* Receives one log line (without a newline) at a level up to the
 * session's log_level. */
typedef void (*sftp_log_fn)(void *ctx, int level, const char *line);

struct sftp_options {
    /* The owner every entry reports, and its names: shown in longnames,
     * returned by users-groups-by-id@openssh.com, and accepted by
     * home-directory.  NULL names make longnames show the numbers. */
    uint32_t uid;
    uint32_t gid;
    const char *user_name;
    const char *group_name;

    /* Reject every request that would change the image with
     * SSH_FX_PERMISSION_DENIED. */
    int read_only;

    /* Bits cleared from the permissions of new files and directories, as
     * the process umask does in OpenSSH's server: clients ask for 0777
     * directories and expect 0755.  Usually SFTP_DEFAULT_UMASK; 0 keeps
     * the permissions as requested. */
    uint32_t umask;

    /* Open handles allowed at once; 0 means SFTP_DEFAULT_MAX_HANDLES. */
    uint32_t max_handles;

    sftp_log_fn log;           /* NULL: no logging */
    void *log_ctx;
    int log_level;             /* enum sftp_log_level */
};

struct sftp_session;

/* A session serving vfs, which must outlive it.  The options are copied
 * (the name strings too).  Returns NULL when out of memory. */
struct sftp_session *sftp_session_new(struct vfs *vfs,
                                      const struct sftp_options *opts);

/* Close every handle the client left open and free the session. */
void sftp_session_free(struct sftp_session *s);

/*
 * Process bytes from the client; returns how many were taken.  It takes
 * fewer than len when the output queue is full or the session has
 * failed: send output on, then offer the rest again.
 */
size_t sftp_session_input(struct sftp_session *s, const void *data,
                          size_t len);

/* Nonzero while the session takes input (healthy, output not full). */
int sftp_session_wants_input(const struct sftp_session *s);

/* The output not sent on yet; *len is 0 when there is none. */
const uint8_t *sftp_session_output(struct sftp_session *s, size_t *len);

/* Mark the first n bytes of the output as sent. */
void sftp_session_output_sent(struct sftp_session *s, size_t n);

/* 0 while the session is healthy, else the enum sftp_error that ended
 * it.  A failed session takes no more input; send its remaining output,
 * then close the connection. */
int sftp_session_error(const struct sftp_session *s);

#endif
