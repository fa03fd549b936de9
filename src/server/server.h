/*
 * The server process: one thread, one epoll loop, many connections
 * sharing one mounted image.  The loop owns every file descriptor; each
 * connection's SSH session is a state machine without I/O (ssh/ssh.h).
 *
 * After start-up (options, image, host key, listening sockets) the loop
 * only calls accept4() to get new descriptors: nothing opens a file or a
 * socket while clients are served.
 */
#ifndef SSHFSD_SERVER_SERVER_H
#define SSHFSD_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "block/bd.h"
#include "server/options.h"
#include "server/users.h"
#include "ssh/ssh.h"

struct bd;
struct lfs;
struct vfs;

struct conn;

struct server {
    const struct server_options *opts;

    struct bd *bd;
    struct lfs *lfs;
    struct vfs *vfs;
    struct ssh_hostkey *hostkey;
    struct ssh_pubkey *user_key;    /* --key, or NULL */
    struct users users;             /* from the image, see users.h */
    struct ssh_subsystem subsystems[1];
    struct ssh_server_config ssh;
    /* The owner every file reports: the user that started the server,
     * read before the lock-down may switch to another one. */
    uint32_t owner_uid;
    uint32_t owner_gid;

    int epoll_fd;
    int signal_fd;
    int listen_fds[OPTIONS_LISTEN_MAX * 2];
    size_t listen_count;

    struct conn *conns;             /* doubly linked list */
    unsigned conn_count;
    unsigned unauth_count;          /* not yet logged in */
    uint64_t next_conn_id;
    bool accept_paused;             /* out of descriptors or memory */
    bool stopping;
    uint64_t stop_deadline_ms;
};

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t server_now_ms(void);

/* Fill srv->ssh and srv->subsystems from the options (server.c). */
void server_init_ssh_config(struct server *srv);

/* Re-read the users and keys stored in the image (server.c). */
void server_reload_users(struct server *srv);

/* The AES key of an encrypted image from hex digits, else from a file,
 * else from $SSHFSD_BLOCKKEY (image.c); *len is 0 when there is none.
 * Returns 0, or -1 after logging why the key is unusable. */
int server_load_block_key(const char *hex, const char *file,
                          uint8_t key[BD_CCM_KEY_MAX], size_t *len);

/* Open the image named by the options and mount it (image.c); messages
 * go to the log.  Returns 0 or -1. */
int server_open_image(struct server *srv);
void server_close_image(struct server *srv);

/* Load or create the host key and log its fingerprint (host_key.c). */
int server_load_host_key(struct server *srv);

/* Parse an IPv4 or IPv6 address of --listen, IPv6 with or without
 * brackets (listen.c).  Returns 0, or -1 for anything else. */
int server_parse_listen_addr(const char *text, unsigned port,
                             struct sockaddr_storage *ss, socklen_t *len);

/* Bind the listening sockets (listen.c).  Returns 0 or -1. */
int server_listen(struct server *srv);

/* Create the epoll instance and the signalfd and watch the listening
 * sockets (loop.c): the last start-up step that creates descriptors.
 * Returns 0 or -1. */
int server_prepare_loop(struct server *srv);

/* Run the event loop until SIGTERM, SIGINT or SIGHUP and every session
 * ended (loop.c).  Returns 0, or -1 when the loop itself failed. */
int server_run(struct server *srv);

/* The SFTP subsystem over the server's vfs (sftp_subsystem.c). */
extern const struct ssh_subsystem server_sftp_subsystem;

#endif
