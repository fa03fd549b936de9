/*
 * One client connection: its socket and its SSH session.
 */
#ifndef SSHFSD_SERVER_CONN_H
#define SSHFSD_SERVER_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct server;
struct ssh_session;

struct conn {
    struct server *srv;
    struct conn *prev;
    struct conn *next;
    int fd;
    uint64_t id;
    char addr[64];
    unsigned port;
    struct ssh_session *ssh;
    uint32_t epoll_events;      /* the events registered now */
    bool authenticated;
    bool ended;                 /* the session ended: flush, then close */
    uint64_t ended_ms;
};

#endif
