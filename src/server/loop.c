/*
 * The event loop: accepts connections, moves bytes between sockets and
 * SSH sessions, runs timers and handles SIGTERM, SIGINT and SIGHUP.
 *
 * Level-triggered epoll.  A connection is registered for EPOLLIN while
 * its session takes input and for EPOLLOUT while output waits.  Reads and writes are
 * large (a session offers 256 KiB of input space and writes all it has),
 * and each event does a bounded amount of work so that one busy
 * connection cannot starve the others.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/conn.h"
#include "server/log.h"
#include "server/server.h"

#define MAX_EVENTS 64
/* Reads and write rounds per event, for fairness between connections. */
#define READS_PER_EVENT 8
#define WRITES_PER_EVENT 16
/* A session that ended gets this long to send its last bytes. */
#define CLOSE_LINGER_MS 5000
/* On SIGTERM, sessions get this long to say goodbye. */
#define SHUTDOWN_GRACE_MS 3000

uint64_t server_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/// Connections ///

static void resume_accepting(struct server *srv);

static int add_fd(struct server *srv, int fd, void *ptr)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };

    return epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

static void conn_close(struct conn *c)
{
    struct server *srv = c->srv;

    epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    ssh_session_free(c->ssh);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->conn_count--;
    if (!c->authenticated)
        srv->unauth_count--;
    log_debug("conn %llu: closed", (unsigned long long)c->id);
    free(c);
    resume_accepting(srv);
}

static void conn_process(struct conn *c)
{
    int err = ssh_session_process(c->ssh, server_now_ms());

    if (err && !c->ended) {
        c->ended = true;
        c->ended_ms = server_now_ms();
    }
}

/* Write output, letting the session refill it (channel data waits for
 * room), until the socket is full or nothing is left. */
static void conn_flush(struct conn *c)
{
    for (int round = 0; round < WRITES_PER_EVENT; round++) {
        size_t len;
        const uint8_t *data = ssh_session_output(c->ssh, &len);
        ssize_t n;

        if (len == 0)
            break;
        n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log_debug("conn %llu: send failed: %s",
                          (unsigned long long)c->id, strerror(errno));
                ssh_session_input_eof(c->ssh);
                conn_process(c);
            }
            break;
        }
        ssh_session_output_consume(c->ssh, (size_t)n);
        conn_process(c);
    }
}

static void conn_read(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT && ssh_session_wants_input(c->ssh);
         i++) {
        size_t len;
        uint8_t *p = ssh_session_input_space(c->ssh, &len);
        ssize_t n;

        if (!p) {
            log_error("conn %llu: out of memory", (unsigned long long)c->id);
            ssh_session_shutdown(c->ssh, "out of memory");
            conn_process(c);
            return;
        }
        n = recv(c->fd, p, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                      errno == EINTR))
            return;
        if (n <= 0) {
            ssh_session_input_eof(c->ssh);
            conn_process(c);
            return;
        }
        ssh_session_input_commit(c->ssh, (size_t)n);
        conn_process(c);
        conn_flush(c);
    }
}

/* Register the events the session wants, or close a finished one. */
static void conn_update(struct conn *c)
{
    struct epoll_event ev = { 0 };
    size_t out_len;

    if (ssh_session_done(c->ssh) ||
        (c->ended && server_now_ms() - c->ended_ms >= CLOSE_LINGER_MS)) {
        conn_close(c);
        return;
    }
    ssh_session_output(c->ssh, &out_len);
    ev.events = (ssh_session_wants_input(c->ssh) ? EPOLLIN : 0) |
                (out_len ? EPOLLOUT : 0);
    if (ev.events == c->epoll_events)
        return;
    ev.data.ptr = c;
    if (epoll_ctl(c->srv->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->epoll_events = ev.events;
}

static void conn_event(struct conn *c, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(c);
    conn_flush(c);
    conn_update(c);
}

/// Accepting ///

static void describe_addr(const struct sockaddr_storage *ss, char *addr,
                          size_t size, unsigned *port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

    if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t)size);
        *port = ntohs(sin6->sin6_port);
    } else {
        inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)size);
        *port = ntohs(sin->sin_port);
    }
}

/* sshd's limits: MaxStartups for connections not yet logged in, and a
 * cap on all connections. */
static bool admit(struct server *srv, const char *addr, unsigned port)
{
    if (srv->conn_count >= srv->opts->max_connections) {
        log_info("drop connection from %s port %u: too many connections "
                 "(%u)", addr, port, srv->opts->max_connections);
        return false;
    }
    if (srv->unauth_count >= srv->opts->max_startups) {
        log_info("drop connection from %s port %u: past MaxStartups (%u "
                 "connections not logged in)", addr, port,
                 srv->opts->max_startups);
        return false;
    }
    return true;
}

/* Stop watching the listening sockets while no descriptor or memory is
 * left for a new connection: they stay readable, and the level-triggered
 * loop would otherwise call accept4() without end.  conn_close() resumes. */
static void pause_accepting(struct server *srv, int err)
{
    if (srv->accept_paused)
        return;
    log_warn("cannot accept connections: %s; waiting until a connection "
             "closes", strerror(err));
    for (size_t i = 0; i < srv->listen_count; i++)
        epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, srv->listen_fds[i], NULL);
    srv->accept_paused = true;
}

static void resume_accepting(struct server *srv)
{
    if (!srv->accept_paused || srv->stopping)
        return;
    srv->accept_paused = false;
    for (size_t i = 0; i < srv->listen_count; i++) {
        if (add_fd(srv, srv->listen_fds[i], &srv->listen_fds[i]) < 0)
            log_error("cannot watch a listening socket again: %s",
                      strerror(errno));
    }
    log_info("accepting connections again");
}

/* Accept one connection.  Returns false when there is none to accept now
 * or accepting failed. */
static bool accept_one(struct server *srv, int lfd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct epoll_event ev = { 0 };
    struct conn *c;
    int one = 1;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM)
            pause_accepting(srv, errno);
        /* A connection reset before it was accepted is not a reason to
         * stop the batch. */
        return errno == ECONNABORTED || errno == EINTR;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        pause_accepting(srv, ENOMEM);
        return false;
    }
    describe_addr(&ss, c->addr, sizeof(c->addr), &c->port);
    if (!admit(srv, c->addr, c->port)) {
        close(fd);
        free(c);
        return true;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Keys uploaded since the last connection count for this one. */
    server_reload_users(srv);
    c->srv = srv;
    c->fd = fd;
    c->id = ++srv->next_conn_id;
    c->ssh = ssh_session_new(&srv->ssh, c, c->addr, c->port,
                             server_now_ms());
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    if (!c->ssh || epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_error("cannot set up connection from %s port %u", c->addr,
                  c->port);
        ssh_session_free(c->ssh);
        close(fd);
        free(c);
        return true;
    }
    c->epoll_events = ev.events;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->conn_count++;
    srv->unauth_count++;
    log_info("Connection from %s port %u [conn %llu]", c->addr, c->port,
             (unsigned long long)c->id);
    return true;
}

static void accept_all(struct server *srv, int lfd)
{
    /* A bounded batch per event keeps the loop responsive. */
    for (int i = 0; i < 16 && !srv->stopping && !srv->accept_paused; i++) {
        if (!accept_one(srv, lfd))
            break;
    }
}

/// Signals and shutdown ///

static int setup_signals(struct server *srv)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* A closed terminal must not kill the server before the image is
     * unmounted. */
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    srv->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return srv->signal_fd < 0 ? -1 : 0;
}

static void begin_shutdown(struct server *srv, int signo)
{
    if (srv->stopping)
        return;
    log_info("Received signal %d; terminating.", signo);
    srv->stopping = true;
    srv->stop_deadline_ms = server_now_ms() + SHUTDOWN_GRACE_MS;
    for (size_t i = 0; i < srv->listen_count; i++) {
        epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, srv->listen_fds[i], NULL);
        close(srv->listen_fds[i]);
    }
    srv->listen_count = 0;
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        /* No conn_update here: closing a connection now would free it
         * under events still pending in this epoll batch. */
        ssh_session_shutdown(c->ssh, "server shutting down");
        conn_process(c);
        conn_flush(c);
    }
}

static void read_signal(struct server *srv)
{
    struct signalfd_siginfo info;

    while (read(srv->signal_fd, &info, sizeof(info)) == sizeof(info))
        begin_shutdown(srv, (int)info.ssi_signo);
}

/// The loop ///

/* Run the sessions whose timers expired; returns the epoll timeout. */
static int run_timers(struct server *srv)
{
    uint64_t now = server_now_ms(), next = UINT64_MAX;

    for (struct conn *c = srv->conns, *n; c; c = n) {
        uint64_t deadline = ssh_session_deadline(c->ssh);
        n = c->next;
        if (deadline <= now) {
            conn_process(c);
            conn_flush(c);
            deadline = ssh_session_deadline(c->ssh);
        }
        if (c->ended)
            deadline = c->ended_ms + CLOSE_LINGER_MS;
        conn_update(c);
        if (deadline < next)
            next = deadline;
    }
    if (srv->stopping && srv->stop_deadline_ms < next)
        next = srv->stop_deadline_ms;
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

static void dispatch_event(struct server *srv, struct epoll_event *ev)
{
    void *ptr = ev->data.ptr;

    if (ptr == &srv->signal_fd) {
        read_signal(srv);
        return;
    }
    for (size_t i = 0; i < srv->listen_count; i++) {
        if (ptr == &srv->listen_fds[i]) {
            accept_all(srv, srv->listen_fds[i]);
            return;
        }
    }
    conn_event(ptr, ev->events);
}

int server_prepare_loop(struct server *srv)
{
    srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->epoll_fd < 0 || setup_signals(srv) < 0 ||
        add_fd(srv, srv->signal_fd, &srv->signal_fd) < 0) {
        log_error("cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < srv->listen_count; i++) {
        if (add_fd(srv, srv->listen_fds[i], &srv->listen_fds[i]) < 0) {
            log_error("cannot watch a listening socket: %s",
                      strerror(errno));
            return -1;
        }
    }
    return 0;
}

int server_run(struct server *srv)
{
    struct epoll_event events[MAX_EVENTS];

    while (!srv->stopping || srv->conns) {
        int timeout = run_timers(srv);
        int n;

        if (srv->stopping && server_now_ms() >= srv->stop_deadline_ms)
            break;
        n = epoll_wait(srv->epoll_fd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait failed: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n; i++)
            dispatch_event(srv, &events[i]);
    }

    /* Sessions still open after the grace time are cut off. */
    while (srv->conns)
        conn_close(srv->conns);
    return 0;
}
