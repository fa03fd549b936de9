/*
 * The lock-down (sandbox.h): chroot and user switch, resource limits,
 * no new privileges, Landlock and a seccomp allow-list.
 *
 * The allow-list comes from tracing the servers with strace -f through
 * the test suite: every SFTP request, several clients, re-keys,
 * encrypted images and shutdown.  It keeps what they call after the
 * lock-down, and tests/isolation/ checks that it is sufficient and tight.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <seccomp.h>

#include "server/log.h"
#include "server/sandbox.h"

/* AddressSanitizer builds (the test tree) need a little more, below. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_UNDER_ASAN 1
#endif

/// Chroot and user switch ///

/* Parent directories tried, in order, for the empty directory. */
static const char *const empty_dir_parents[] = { "/run", "/var/empty",
                                                 "/tmp" };

/* Make a fresh directory, enter it, delete it and make it the root: a
 * deleted directory stays empty, since nothing can be created in it, and
 * leaves nothing behind when the server is killed. */
static int chroot_empty(void)
{
    char path[PATH_MAX];
    struct stat st;

    for (size_t i = 0; i < sizeof(empty_dir_parents) /
                           sizeof(empty_dir_parents[0]); i++) {
        if (stat(empty_dir_parents[i], &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        snprintf(path, sizeof(path), "%s/sshfsd-root.XXXXXX",
                 empty_dir_parents[i]);
        if (!mkdtemp(path))
            continue;
        if (chdir(path) != 0 || rmdir(path) != 0 || chroot(".") != 0 ||
            chdir("/") != 0) {
            log_error("lock-down: cannot chroot to the empty directory %s: "
                      "%s", path, strerror(errno));
            (void)rmdir(path);
            return -1;
        }
        log_info("lock-down: root directory is the empty directory %s "
                 "(deleted)", path);
        return 0;
    }
    log_error("lock-down: cannot create an empty directory under /run, "
              "/var/empty or /tmp");
    return -1;
}

static int switch_user(const char *name, uid_t uid, gid_t gid)
{
    if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0) {
        log_error("lock-down: cannot switch to user %s: %s", name,
                  strerror(errno));
        return -1;
    }
    /* Make sure the switch cannot be undone. */
    if (setuid(0) == 0 || setgid(0) == 0) {
        log_error("lock-down: root privileges still there after switching "
                  "to user %s", name);
        return -1;
    }
    log_info("lock-down: running as user %s (uid %u, gid %u), no "
             "supplementary groups", name, (unsigned)uid,
             (unsigned)gid);
    return 0;
}

/* The user to switch to, looked up while /etc/passwd can be read. */
struct target_user {
    bool switch_user;          /* started as root */
    char name[64];
    uid_t uid;
    gid_t gid;
};

/* As root, find the --run-as user (default nobody).  Otherwise the
 * process keeps its user, and --run-as may only name that user. */
static int find_target_user(const struct sandbox_options *opts,
                            struct target_user *t)
{
    const char *name = opts->run_as ? opts->run_as : SANDBOX_DEFAULT_USER;
    struct passwd *pw;

    memset(t, 0, sizeof(*t));
    if (geteuid() != 0 && !opts->run_as_given)
        return 0;
    pw = getpwnam(name);
    if (!pw && !opts->run_as_given) {
        log_error("lock-down: user '%s' not found: create it, or name "
                  "another unprivileged user with --run-as", name);
        return -1;
    }
    if (!pw) {
        log_error("lock-down: unknown user '%s' for --run-as", name);
        return -1;
    }
    if (geteuid() != 0) {
        if (pw->pw_uid != geteuid()) {
            log_error("lock-down: --run-as %s needs a server started as "
                      "root", name);
            return -1;
        }
        return 0;
    }
    if (pw->pw_uid == 0) {
        log_error("lock-down: --run-as user %s is root; name an "
                  "unprivileged user", name);
        return -1;
    }
    t->switch_user = true;
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->uid = pw->pw_uid;
    t->gid = pw->pw_gid;
    return 0;
}

/* As root: chroot and switch user. */
static int drop_root(const struct target_user *t)
{
    if (!t->switch_user) {
        log_info("lock-down: not started as root, so no chroot and no "
                 "change of user");
        return 0;
    }
    if (chroot_empty())
        return -1;
    return switch_user(t->name, t->uid, t->gid);
}

/// Resource limits ///

static int set_limit(int resource, rlim_t value, const char *what)
{
    struct rlimit rl = { .rlim_cur = value, .rlim_max = value };

    if (setrlimit(resource, &rl) != 0) {
        log_error("lock-down: cannot limit %s: %s", what, strerror(errno));
        return -1;
    }
    return 0;
}

/* Set before the user switch, so that root may raise the open-files
 * limit above its hard limit. */
static int limit_resources(unsigned max_files)
{
    struct rlimit rl = { .rlim_cur = max_files, .rlim_max = max_files };

    /* A core dump would contain the image key and the host key. */
    if (set_limit(RLIMIT_CORE, 0, "core dumps"))
        return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        log_error("lock-down: cannot clear the dumpable flag: %s",
                  strerror(errno));
        return -1;
    }
    if (set_limit(RLIMIT_NPROC, 0, "processes"))
        return -1;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        struct rlimit hard = { 0 };

        getrlimit(RLIMIT_NOFILE, &hard);
        log_error("lock-down: cannot set the open-files limit to %u (the "
                  "connection limit plus the server's own files): %s; the "
                  "hard limit is %llu, so lower --max-connections or raise "
                  "the hard limit", max_files, strerror(errno),
                  (unsigned long long)hard.rlim_max);
        return -1;
    }
    log_info("lock-down: no core dumps, no new processes, at most %u open "
             "files", max_files);
    return 0;
}

/// Landlock ///

/* From the kernel's Landlock interface (linux/landlock.h), defined here
 * so that older headers build the same code. */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;     /* ABI 4 */
    uint64_t scoped;                 /* ABI 6 */
};

/* The file-system rights each ABI version defines: 13 in version 1, then
 * REFER (2), TRUNCATE (3) and IOCTL_DEV (5). */
static uint64_t ll_fs_rights(int abi)
{
    if (abi >= 5)
        return (1ULL << 16) - 1;
    if (abi >= 3)
        return (1ULL << 15) - 1;
    if (abi >= 2)
        return (1ULL << 14) - 1;
    return (1ULL << 13) - 1;
}

/* Create a ruleset that handles every right the kernel supports and
 * grants none.  Returns its descriptor, -2 without Landlock in the kernel
 * (after a warning), or -1 after logging an error.  The descriptor is
 * made before the open-files limit is lowered. */
static int landlock_create(long *abi)
{
    struct ll_ruleset_attr attr = { 0 };
    size_t size = sizeof(attr.handled_access_fs);
    long fd;

    *abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
                   LL_CREATE_RULESET_VERSION);
    if (*abi < 0) {
        log_warn("lock-down: this kernel has no Landlock (%s); file access "
                 "is denied by seccomp%s only", strerror(errno),
                 geteuid() == 0 ? " and the chroot" : "");
        return -2;
    }
    attr.handled_access_fs = ll_fs_rights((int)*abi);
    if (*abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (*abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        size = sizeof(attr);
    }
    fd = syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (fd < 0) {
        log_error("lock-down: cannot create a Landlock ruleset: %s",
                  strerror(errno));
        return -1;
    }
    return (int)fd;
}

/* Enter the ruleset of landlock_create() and close it. */
static int landlock_enter(int fd, long abi)
{
    int rc = 0;

    if (fd == -2)
        return 0;
    if (syscall(SYS_landlock_restrict_self, fd, 0) != 0) {
        log_error("lock-down: cannot enter the Landlock ruleset: %s",
                  strerror(errno));
        rc = -1;
    } else {
        log_info("lock-down: Landlock ABI %ld denies all file system "
                 "access%s", abi,
                 abi >= 4 ? ", TCP bind and TCP connect" : "");
    }
    close(fd);
    return rc;
}

/// Seccomp ///

/* System calls allowed without conditions, for both programs. */
static const int common_calls[] = {
    /* data: stdio or sockets, the image, the log */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
    SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(fdatasync),
    SCMP_SYS(fsync), SCMP_SYS(close),
    /* memory; mmap and mprotect are below, without PROT_EXEC */
    SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
    /* time and randomness */
    SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time),
    SCMP_SYS(getrandom),
    /* process: log lines carry the PID; abort() raises SIGABRT */
    SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall), SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    /* libcrypto's locks, and its clean-up at exit */
    SCMP_SYS(futex),
};

#ifdef SANDBOX_UNDER_ASAN
/* The sanitizer runtime queries the alternate signal stack as the
 * process exits.
 * NOTE: a memory-error report after the lock-down is cut short: the
 * runtime opens /proc/self/maps to print it, and the filter kills the
 * process with SIGSYS.  Run the failing case with --no-sandbox to see the
 * whole report. */
static const int sanitizer_calls[] = {
    SCMP_SYS(sigaltstack),
};
#endif

/* sshfsd: the epoll loop, its signalfd and the TCP connections. */
static const int network_calls[] = {
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
    SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
};

/* sshfsd-sftp-server: poll on standard input and output. */
static const int stdio_calls[] = {
    SCMP_SYS(poll), SCMP_SYS(ppoll),
};

static int allow_list(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0) != 0)
            return -1;
    }
    return 0;
}

/* Calls allowed only with some arguments. */
static int allow_conditional(scmp_filter_ctx ctx, enum sandbox_program prog)
{
    /* No executable memory: nothing new to run can appear. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) ||
        seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)))
        return -1;
    /* Signals to this process only (abort). */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                         SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0)))
        return -1;
    if (prog == SANDBOX_NETWORK_SERVER) {
        /* TCP_NODELAY on each accepted connection. */
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2,
                                SCMP_A1(SCMP_CMP_EQ, IPPROTO_TCP, 0),
                                SCMP_A2(SCMP_CMP_EQ, TCP_NODELAY, 0));
    }
    /* Standard input and output switch between blocking and not. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                         SCMP_A1(SCMP_CMP_EQ, F_GETFL, 0)) ||
        seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                         SCMP_A1(SCMP_CMP_EQ, F_SETFL, 0)))
        return -1;
    return 0;
}

static int seccomp_allow_only(enum sandbox_program prog)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    int rc;

    if (!ctx) {
        log_error("lock-down: cannot create the seccomp filter");
        return -1;
    }
    rc = allow_list(ctx, common_calls,
                    sizeof(common_calls) / sizeof(common_calls[0]));
    if (rc == 0 && prog == SANDBOX_NETWORK_SERVER)
        rc = allow_list(ctx, network_calls,
                        sizeof(network_calls) / sizeof(network_calls[0]));
    if (rc == 0 && prog == SANDBOX_STDIO_SERVER)
        rc = allow_list(ctx, stdio_calls,
                        sizeof(stdio_calls) / sizeof(stdio_calls[0]));
#ifdef SANDBOX_UNDER_ASAN
    if (rc == 0)
        rc = allow_list(ctx, sanitizer_calls,
                        sizeof(sanitizer_calls) / sizeof(sanitizer_calls[0]));
#endif
    if (rc == 0)
        rc = allow_conditional(ctx, prog);
    if (rc != 0) {
        log_error("lock-down: cannot build the seccomp filter");
        seccomp_release(ctx);
        return -1;
    }
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc != 0) {
        log_error("lock-down: cannot load the seccomp filter: %s",
                  strerror(-rc));
        return -1;
    }
    log_info("lock-down: seccomp allows only the server's system calls");
    return 0;
}

/// LeakSanitizer ///

static bool entered;

#ifdef SANDBOX_UNDER_ASAN
/* LeakSanitizer checks the process as it exits by stopping it with
 * ptrace and reading /proc, which the lock-down forbids: the check would
 * die with SIGSYS.  A locked-down sanitizer build skips it (LeakSanitizer
 * calls this hook), and the tests look for leaks in servers run with
 * --no-sandbox (tests/lib.sh). */
int __lsan_is_turned_off(void);

int __lsan_is_turned_off(void)
{
    return entered;
}
#endif

/// Entry points ///

int sandbox_enter(const struct sandbox_options *opts)
{
    struct target_user user;
    long abi = 0;
    int ruleset;

    /* The C library reads the time zone file the first time it converts
     * a time, even for gmtime_r() in log lines: read it now, while files
     * can still be opened. */
    tzset();
    if (find_target_user(opts, &user))
        return -1;
    ruleset = landlock_create(&abi);
    if (ruleset == -1)
        return -1;
    if (limit_resources(opts->max_files) || drop_root(&user)) {
        if (ruleset >= 0)
            close(ruleset);
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        log_error("lock-down: cannot set no_new_privs: %s", strerror(errno));
        if (ruleset >= 0)
            close(ruleset);
        return -1;
    }
    log_info("lock-down: no new privileges");
    if (landlock_enter(ruleset, abi) || seccomp_allow_only(opts->program))
        return -1;
    entered = true;
    return 0;
}

void sandbox_reset_descriptors(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            /* open() returns the lowest free descriptor: this one. */
            int null_fd = open("/dev/null", O_RDWR);

            if (null_fd > 2)
                close(null_fd);
        }
    }
    if (close_range(3, ~0U, 0) != 0) {
        long max = sysconf(_SC_OPEN_MAX);

        for (long fd = 3; fd < max && fd < 65536; fd++)
            close((int)fd);
    }
}

void sandbox_warn_disabled(void)
{
    log_warn("--no-sandbox: the server runs without its lock-down and can "
             "reach every file and socket its user can");
}
