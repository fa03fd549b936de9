/*
 * A test client for the SFTP core: an in-memory littlefs image, a vfs and
 * a session over it, and helpers that send one request and parse its one
 * reply with cmocka checks.
 */
#ifndef SSHFSD_TESTS_SFTP_TEST_CLIENT_H
#define SSHFSD_TESTS_SFTP_TEST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "sftp/sftp.h"
#include "sftp/sftp_proto.h"
#include "util/buf.h"
#include "vfs/vfs.h"

/* The test image: 512-byte blocks, 4096 of them (2 MiB). */
#define ST_BLOCK_SIZE 512u
#define ST_BLOCK_COUNT 4096u
#define ST_UID 1000u
#define ST_GID 100u

struct st {
    struct bd *bd;
    struct lfs *lfs;
    struct vfs *vfs;
    struct sftp_session *s;
    struct sftp_options opts;
    uint32_t next_id;

    struct wbuf req;            /* the request being built */
    uint32_t req_id;

    /* The last reply: its type, id and the bytes after the id. */
    uint8_t type;
    uint32_t id;
    uint8_t *reply;
    size_t reply_len;
    struct rd rd;               /* reads the reply's body */

    /* The last STATUS. */
    uint32_t status;
    char message[256];

    /* The last HANDLE. */
    uint8_t handle[64];
    uint32_t handle_len;
};

/* Default options: uid/gid ST_UID/ST_GID named "alice"/"staff", umask 022. */
struct sftp_options st_default_options(void);

/* A fresh image and an initialized session (INIT sent, VERSION read).
 * opts NULL takes st_default_options(). */
struct st *st_new(const struct sftp_options *opts);

/* The same, over an existing device (the st takes it over). */
struct st *st_new_on(struct bd *bd, const struct sftp_options *opts);

/* A session that has not sent INIT yet. */
struct st *st_new_uninitialized(const struct sftp_options *opts);

void st_free(struct st *t);

/* End the session, unmount and mount the image again, start a new
 * session: what survives this is on the image. */
void st_remount(struct st *t);

/* Build a request: st_begin writes the type and a fresh id, the caller
 * appends fields to t->req, st_send frames it, feeds it and reads the one
 * reply. */
void st_begin(struct st *t, uint8_t type);
void st_send(struct st *t);

/* Feed raw bytes; returns how many the session took. */
size_t st_feed(struct st *t, const void *data, size_t len);

/* Read one reply from the session's output into t (asserts there is one).
 * Returns 0, or -1 when no complete reply is queued. */
int st_read_reply(struct st *t);

/* Bytes of output not read yet. */
size_t st_output_len(struct st *t);

/* Assert the last reply is a STATUS for the last request, and return its
 * code (message in t->message). */
uint32_t st_status(struct st *t);

/* Requests */
uint32_t st_open(struct st *t, const char *path, uint32_t pflags,
                 int perm);           /* perm < 0: no attributes */
uint32_t st_close(struct st *t, const uint8_t *handle, uint32_t len);
uint32_t st_write(struct st *t, const uint8_t *handle, uint32_t handle_len,
                  uint64_t off, const void *data, uint32_t len);

/* READ: returns the status, SSH_FX_OK with the data in *data (pointing
 * into t->reply) and *len. */
uint32_t st_read(struct st *t, const uint8_t *handle, uint32_t handle_len,
                 uint64_t off, uint32_t want, const uint8_t **data,
                 uint32_t *len);

/* A request whose body is one path: REMOVE, RMDIR, OPENDIR ... */
void st_path_request(struct st *t, uint8_t type, const char *path);
uint32_t st_path_status(struct st *t, uint8_t type, const char *path);
uint32_t st_mkdir(struct st *t, const char *path, int perm);
uint32_t st_rename(struct st *t, const char *from, const char *to);
uint32_t st_posix_rename(struct st *t, const char *from, const char *to);

/* STAT-like requests: the status, and the attributes when SSH_FX_OK. */
uint32_t st_stat(struct st *t, uint8_t type, const char *path,
                 struct vfs_attr *attr);
uint32_t st_fstat(struct st *t, const uint8_t *handle, uint32_t len,
                  struct vfs_attr *attr);
uint32_t st_setstat(struct st *t, const char *path,
                    const struct vfs_attr *attr);

/* REALPATH: the status, and the resolved name in out when SSH_FX_OK. */
uint32_t st_realpath(struct st *t, const char *path, char *out,
                     size_t size);

/* Write a whole file through OPEN, WRITE and CLOSE (asserting success). */
void st_put_file(struct st *t, const char *path, const void *data,
                 size_t len);

/* Read a whole file; returns a malloc'd copy and its length in *len. */
uint8_t *st_get_file(struct st *t, const char *path, size_t *len);

/* Append SFTP ATTRS for the fields set in attr. */
void st_put_attrs(struct wbuf *w, const struct vfs_attr *attr);

/* Parse ATTRS from the reply at the reader's position. */
void st_get_attrs(struct st *t, struct vfs_attr *attr);

#endif
