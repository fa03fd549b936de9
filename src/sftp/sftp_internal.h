/*
 * Internals of the SFTP core shared by its files:
 *   sftp_session.c   framing, dispatch, replies, logging
 *   sftp_handles.c   the handle table
 *   sftp_attrs.c     ATTRS encoding and decoding, longnames
 *   sftp_path.c      path normalization
 *   sftp_requests.c  the request handlers of version 3
 *   sftp_extended.c  OpenSSH's extensions
 */
#ifndef SSHFSD_SFTP_SFTP_INTERNAL_H
#define SSHFSD_SFTP_SFTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sftp/sftp.h"
#include "sftp/sftp_proto.h"
#include "util/buf.h"
#include "vfs/vfs.h"

/* READDIR replies carry at most this many entries and bytes: sshfs drops
 * the connection on a reply over 128 KiB. */
#define SFTP_READDIR_MAX_ENTRIES 100
#define SFTP_READDIR_MAX_BYTES (64 * 1024)

/* A handle on the wire: slot index and generation, u32 each. */
#define SFTP_HANDLE_LEN 8

enum sftp_handle_kind {
    SFTP_HANDLE_FREE = 0,
    SFTP_HANDLE_FILE,
    SFTP_HANDLE_DIR,
};

struct sftp_handle {
    enum sftp_handle_kind kind;
    uint32_t generation;
    char *path;                /* as opened, for logs and "." entries */

    /* Files */
    struct vfs_file *file;
    uint32_t open_flags;       /* SSH_FXF_* */
    uint64_t bytes_read;
    uint64_t bytes_written;

    /* Directories: "." and ".." come first, then the vfs entries.  An
     * entry read but too big for the last reply waits in pending. */
    struct vfs_dir *dir;
    int dots_sent;
    bool has_pending;
    struct vfs_dirent *pending;
};

struct sftp_session {
    struct vfs *vfs;
    struct sftp_options opts;
    char *user_name;           /* copies of the option strings */
    char *group_name;

    int error;                 /* enum sftp_error */
    bool initialized;
    uint32_t client_version;

    struct wbuf in;            /* an incomplete packet, length included */
    struct wbuf out;           /* replies; out_sent bytes already taken */
    size_t out_sent;
    size_t reply_start;        /* offset of the reply being built */

    struct sftp_handle *handles;
    uint32_t max_handles;
    uint32_t next_generation;
    uint32_t open_handles;
};

/* A request handler parses its request, acts, and sends one reply. */
typedef void (*sftp_handler_fn)(struct sftp_session *s, uint32_t id,
                                struct rd *req);

/* Requests that change the image are rejected in read-only mode. */
#define SFTP_CHANGES_IMAGE 0x1

struct sftp_request_handler {
    uint8_t type;
    const char *name;
    sftp_handler_fn handler;
    int flags;
};

struct sftp_extension_handler {
    const char *name;
    const char *version;       /* advertised in VERSION; NULL: not listed */
    sftp_handler_fn handler;
    int flags;
};

/* sftp_requests.c and sftp_extended.c */
extern const struct sftp_request_handler sftp_request_handlers[];
extern const struct sftp_extension_handler sftp_extension_handlers[];

/// Logging (sftp_session.c) ///

void sftp_log(struct sftp_session *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/// Replies (sftp_session.c) ///

/* Start a reply of type for request id; finish it with sftp_reply_end, or
 * drop it with sftp_reply_cancel.  Between the two, write the body into
 * s->out. */
void sftp_reply_begin(struct sftp_session *s, uint8_t type, uint32_t id);
void sftp_reply_end(struct sftp_session *s);
void sftp_reply_cancel(struct sftp_session *s);

/* Bytes of the reply being built, its header included. */
size_t sftp_reply_len(const struct sftp_session *s);

void sftp_send_status(struct sftp_session *s, uint32_t id, uint32_t code,
                      const char *message);

/* SSH_FX_BAD_MESSAGE for a request that cannot be parsed. */
void sftp_send_malformed(struct sftp_session *s, uint32_t id);

/* Send the status that a vfs error maps to, as OpenSSH maps errno. */
void sftp_send_vfs_status(struct sftp_session *s, uint32_t id, int err);

void sftp_send_handle(struct sftp_session *s, uint32_t id,
                      const struct sftp_handle *h);
void sftp_send_attrs(struct sftp_session *s, uint32_t id,
                     const struct vfs_attr *attr);

/* A NAME reply with one entry and empty attributes, as REALPATH sends. */
void sftp_send_name(struct sftp_session *s, uint32_t id, const char *path);

/// Shared by requests and extensions (sftp_requests.c) ///

/* Reply with path if it exists or only its last component is missing. */
void sftp_send_realpath(struct sftp_session *s, uint32_t id,
                        const char *path);

/* SETSTAT; lsetstat@openssh.com is the same request on an image without
 * symbolic links. */
void sftp_process_setstat(struct sftp_session *s, uint32_t id,
                          struct rd *req);

/// Handles (sftp_handles.c) ///

int sftp_handles_init(struct sftp_session *s);
void sftp_handles_close_all(struct sftp_session *s);

/* A free slot with a new generation, or NULL when the table is full. */
struct sftp_handle *sftp_handle_new(struct sftp_session *s,
                                    enum sftp_handle_kind kind,
                                    const char *path);

/* Return the slot to the free list, freeing what it points to (but not
 * closing the vfs file or directory: the caller does that). */
void sftp_handle_release(struct sftp_session *s, struct sftp_handle *h);

/* Write the handle's wire form (SFTP_HANDLE_LEN bytes). */
void sftp_handle_encode(const struct sftp_session *s,
                        const struct sftp_handle *h, uint8_t *out);

/* Parse a handle string from req.  Returns 0 and sets *h to the open
 * handle of kind (SFTP_HANDLE_FREE for either kind), 1 when the string
 * names no such handle, or -1 when the request is malformed. */
int sftp_get_handle(struct sftp_session *s, struct rd *req,
                    enum sftp_handle_kind kind, struct sftp_handle **h);

/*
 * Parse a handle of kind; on failure send the status and return NULL.
 * OpenSSH's server replies SSH_FX_FAILURE to an unknown handle, except in
 * CLOSE, where it replies SSH_FX_NO_SUCH_FILE: invalid_code gives the
 * code.
 */
struct sftp_handle *sftp_get_handle_or_reply(struct sftp_session *s,
                                             uint32_t id, struct rd *req,
                                             enum sftp_handle_kind kind,
                                             uint32_t invalid_code);

/// Attributes (sftp_attrs.c) ///

/* Parse ATTRS into attr (only the fields the client set).  -1 when the
 * request is malformed. */
int sftp_get_attrs(struct rd *req, struct vfs_attr *attr);

int sftp_put_attrs(struct wbuf *w, const struct vfs_attr *attr);

/* Bytes sftp_put_attrs writes for attr. */
size_t sftp_attrs_len(const struct vfs_attr *attr);

/* Format an `ls -l` line for name into out (size bytes). */
void sftp_format_longname(char *out, size_t size, const char *name,
                          const struct vfs_attr *attr, const char *user,
                          const char *group, time_t now);

/// Paths (sftp_path.c) ///

/*
 * Resolve a client path into an absolute one in out (SFTP_PATH_MAX
 * bytes).  "/" is the image root and the user's home: relative paths
 * start there, "." and ".." are resolved lexically and never climb above
 * the root, an empty path means ".".  Returns 0, VFS_ERR_INVAL for a NUL
 * byte, or VFS_ERR_NAMETOOLONG when the result does not fit.
 */
int sftp_path_resolve(const uint8_t *in, size_t len, char *out);

/* Put the parent of the absolute path into out (the root's is "/"). */
void sftp_path_parent(const char *path, char *out);

/* Parse a path string from req and resolve it.  Returns 0, or the status
 * to send and sets *message (the request is malformed or the path is
 * invalid). */
int sftp_get_path(struct rd *req, char *out, const char **message);

/* Parse a path into out (SFTP_PATH_MAX bytes); on failure send the status
 * and return false. */
bool sftp_get_path_or_reply(struct sftp_session *s, uint32_t id,
                            struct rd *req, char *out);

#endif
