/*
 * Listening sockets: one per --listen address, or the IPv4 and IPv6
 * wildcard addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/log.h"
#include "server/server.h"

#define LISTEN_BACKLOG 128

int server_parse_listen_addr(const char *text, unsigned port,
                             struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(text);

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 0;
    }
    if (n >= 2 && n < sizeof(buf) && text[0] == '[' && text[n - 1] == ']') {
        memcpy(buf, text + 1, n - 2);
        buf[n - 2] = '\0';
        text = buf;
    }
    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

static int open_listener(const char *text, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1, fd;

    if (server_parse_listen_addr(text, port, &ss, &len)) {
        log_error("invalid --listen address '%s': expected an IPv4 or IPv6 "
                  "address", text);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket for %s failed: %s", text, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* The IPv6 wildcard must not take the IPv4 port as well. */
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0) {
        log_error("cannot listen on %s port %u: %s", text, port,
                  strerror(errno));
        close(fd);
        return -1;
    }
    log_info("Server listening on %s port %u.", text, port);
    return fd;
}

int server_listen(struct server *srv)
{
    const struct server_options *o = srv->opts;
    static const char *const wildcard[] = { "0.0.0.0", "::" };
    const char *const *addrs = o->listen_count ? o->listen : wildcard;
    size_t count = o->listen_count ? o->listen_count : 2;

    for (size_t i = 0; i < count; i++) {
        int fd = open_listener(addrs[i], o->port);
        if (fd < 0) {
            /* A host without IPv6 still serves IPv4 on the wildcard. */
            if (!o->listen_count && i == 1 && srv->listen_count > 0)
                continue;
            return -1;
        }
        srv->listen_fds[srv->listen_count++] = fd;
    }
    return 0;
}
