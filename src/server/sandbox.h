/*
 * The lock-down both servers enter once start-up is over: the image, the
 * host key and the sockets are open, and from here on the process can
 * reach nothing else.
 *
 * In order, each step logged at info level and each failure fatal:
 *   1. resource limits: no core dumps, no new processes, a bounded
 *      number of open files;
 *   2. as root: chroot into an empty, deleted directory, chdir("/"),
 *      and switch to an unprivileged user with no supplementary groups;
 *   3. PR_SET_NO_NEW_PRIVS;
 *   4. Landlock: no file system access at all, and on kernels that
 *      support it no TCP bind or connect (skipped with a warning on
 *      kernels without Landlock);
 *   5. seccomp: an allow-list of the system calls the running server
 *      makes; any other call kills the process with SIGSYS.
 */
#ifndef SSHFSD_SERVER_SANDBOX_H
#define SSHFSD_SERVER_SANDBOX_H

#include <stdbool.h>

enum sandbox_program {
    SANDBOX_NETWORK_SERVER,    /* sshfsd: epoll loop, TCP sockets */
    SANDBOX_STDIO_SERVER,      /* sshfsd-sftp-server: poll on stdio */
};

/* The user to run as when started as root. */
#define SANDBOX_DEFAULT_USER "nobody"

struct sandbox_options {
    enum sandbox_program program;
    const char *run_as;        /* NULL: SANDBOX_DEFAULT_USER */
    bool run_as_given;         /* given on the command line */
    unsigned max_files;        /* RLIMIT_NOFILE */
};

/* Enter the lock-down.  Returns 0, or -1 after logging why it failed;
 * the caller must then exit without serving anyone. */
int sandbox_enter(const struct sandbox_options *opts);

/* Make descriptors 0, 1 and 2 valid (on /dev/null when they were closed,
 * so that no file opened later takes their place and receives output),
 * and close every other inherited descriptor, which the lock-down would
 * otherwise leave usable.  Call it first thing in main(). */
void sandbox_reset_descriptors(void);

/* Log the warning that --no-sandbox gives on every start. */
void sandbox_warn_disabled(void);

#endif
