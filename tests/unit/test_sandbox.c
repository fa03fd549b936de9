/*
 * The lock-down (src/server/sandbox.c): a child process enters it and
 * then makes calls.  Calls the servers make keep working; calls they
 * never make end the child with SIGSYS.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/log.h"
#include "server/sandbox.h"

/* Exit statuses of the child besides being killed. */
#define CHILD_OK 0
#define CHILD_LOCK_DOWN_FAILED 3
#define CHILD_CALL_FAILED 4

/* A scratch file opened before the lock-down, as the image is. */
static int image_fd = -1;
static char image_path[256];

static int image_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");

    (void)state;
    snprintf(image_path, sizeof(image_path), "%s/test_sandbox.XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    image_fd = mkstemp(image_path);
    if (image_fd < 0 || ftruncate(image_fd, 65536) != 0)
        return -1;
    return 0;
}

static int image_teardown(void **state)
{
    (void)state;
    close(image_fd);
    unlink(image_path);
    return 0;
}

typedef int (*child_body)(void);

/* Fork a child that enters the lock-down for prog and runs body; return
 * its wait status. */
static int run_locked_down(enum sandbox_program prog, const char *run_as,
                           child_body body)
{
    struct sandbox_options opts = {
        .program = prog,
        .run_as = run_as,
        .run_as_given = run_as != NULL,
        .max_files = 64,
    };
    int status = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_set_level(LOG_LEVEL_ERROR);
        if (sandbox_enter(&opts))
            _exit(CHILD_LOCK_DOWN_FAILED);
        _exit(body());
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_killed_by_sigsys(int status)
{
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void assert_exited(int status, int code)
{
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), code);
}

/// Calls the servers make ///

/* The image, memory, time, randomness and the log. */
static int use_server_calls(void)
{
    uint8_t block[4096], back[4096];
    struct timespec ts;
    uint8_t *big;

    if (getrandom(block, sizeof(block), 0) != (ssize_t)sizeof(block) ||
        pwrite(image_fd, block, sizeof(block), 8192) !=
            (ssize_t)sizeof(block) ||
        fdatasync(image_fd) != 0 ||
        pread(image_fd, back, sizeof(back), 8192) != (ssize_t)sizeof(back) ||
        memcmp(block, back, sizeof(block)) != 0)
        return CHILD_CALL_FAILED;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return CHILD_CALL_FAILED;
    /* Large enough for mmap, then returned with munmap. */
    big = malloc(64 << 20);
    if (!big)
        return CHILD_CALL_FAILED;
    memset(big, 0x5a, 64 << 20);
    free(big);
    log_error("a log line from the locked-down child");
    return CHILD_OK;
}

static void network_server_keeps_its_calls(void **state)
{
    (void)state;
    assert_exited(run_locked_down(SANDBOX_NETWORK_SERVER, NULL,
                                  use_server_calls), CHILD_OK);
}

static int use_stdio_calls(void)
{
    struct pollfd pfd = { .fd = image_fd, .events = POLLIN };
    int flags = fcntl(image_fd, F_GETFL);

    if (flags < 0 || fcntl(image_fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        fcntl(image_fd, F_SETFL, flags) != 0 || poll(&pfd, 1, 0) != 1)
        return CHILD_CALL_FAILED;
    return use_server_calls();
}

static void stdio_server_keeps_its_calls(void **state)
{
    (void)state;
    assert_exited(run_locked_down(SANDBOX_STDIO_SERVER, NULL,
                                  use_stdio_calls), CHILD_OK);
}

/* abort() still ends the process with SIGABRT, not SIGSYS. */
static int call_abort(void)
{
    abort();
}

static void abort_still_raises_sigabrt(void **state)
{
    int status;

    (void)state;
    status = run_locked_down(SANDBOX_NETWORK_SERVER, NULL, call_abort);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

/// Calls that end the process ///

static int call_openat(void)
{
    int fd = openat(AT_FDCWD, "/etc/passwd", O_RDONLY);

    return fd < 0 ? CHILD_CALL_FAILED : CHILD_OK;
}

static int call_open_through_syscall(void)
{
    return syscall(SYS_open, "/etc/passwd", O_RDONLY) < 0 ?
        CHILD_CALL_FAILED : CHILD_OK;
}

static int call_socket(void)
{
    return socket(AF_INET, SOCK_STREAM, 0) < 0 ? CHILD_CALL_FAILED :
        CHILD_OK;
}

static int call_connect_on_image(void)
{
    struct sockaddr sa = { .sa_family = AF_UNIX };

    return connect(image_fd, &sa, sizeof(sa)) < 0 ? CHILD_CALL_FAILED :
        CHILD_OK;
}

static int call_execve(void)
{
    char *const argv[] = { "true", NULL };

    execve("/bin/true", argv, NULL);
    return CHILD_CALL_FAILED;
}

static int call_fork(void)
{
    return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0) < 0 ? CHILD_CALL_FAILED :
        CHILD_OK;
}

static int call_ptrace(void)
{
    return ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? CHILD_CALL_FAILED :
        CHILD_OK;
}

static int call_kill_other(void)
{
    /* Process 1 exists; the filter must stop the call before the kernel
     * checks permissions. */
    return kill(1, 0) < 0 ? CHILD_CALL_FAILED : CHILD_OK;
}

static int call_mmap_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    return p == MAP_FAILED ? CHILD_CALL_FAILED : CHILD_OK;
}

static int call_mprotect_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return CHILD_CALL_FAILED;
    return mprotect(p, 4096, PROT_READ | PROT_EXEC) < 0 ?
        CHILD_CALL_FAILED : CHILD_OK;
}

static int call_fcntl_dupfd(void)
{
    return fcntl(image_fd, F_DUPFD, 0) < 0 ? CHILD_CALL_FAILED : CHILD_OK;
}

static int call_setsockopt_other(void)
{
    int one = 1;

    return setsockopt(image_fd, SOL_SOCKET, SO_REUSEADDR, &one,
                      sizeof(one)) < 0 ? CHILD_CALL_FAILED : CHILD_OK;
}

static void forbidden_calls_end_the_process(void **state)
{
    static const child_body calls[] = {
        call_openat, call_open_through_syscall, call_socket,
        call_connect_on_image, call_execve, call_fork, call_ptrace,
        call_kill_other, call_mmap_exec, call_mprotect_exec,
        call_fcntl_dupfd, call_setsockopt_other,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        print_message("forbidden call %zu\n", i);
        assert_killed_by_sigsys(run_locked_down(SANDBOX_NETWORK_SERVER, NULL,
                                                calls[i]));
    }
}

/* The network server's calls are not the stdio server's. */
static int call_accept(void)
{
    return accept4(image_fd, NULL, NULL, 0) < 0 ? CHILD_CALL_FAILED :
        CHILD_OK;
}

static void stdio_server_cannot_accept(void **state)
{
    (void)state;
    assert_killed_by_sigsys(run_locked_down(SANDBOX_STDIO_SERVER, NULL,
                                            call_accept));
}

static int call_poll(void)
{
    struct pollfd pfd = { .fd = image_fd, .events = POLLIN };

    return poll(&pfd, 1, 0) < 0 ? CHILD_CALL_FAILED : CHILD_OK;
}

static int call_fcntl_getfl(void)
{
    return fcntl(image_fd, F_GETFL) < 0 ? CHILD_CALL_FAILED : CHILD_OK;
}

static void network_server_cannot_poll(void **state)
{
    (void)state;
    assert_killed_by_sigsys(run_locked_down(SANDBOX_NETWORK_SERVER, NULL,
                                            call_poll));
}

static void network_server_cannot_fcntl(void **state)
{
    (void)state;
    assert_killed_by_sigsys(run_locked_down(SANDBOX_NETWORK_SERVER, NULL,
                                            call_fcntl_getfl));
}

/// Users ///

static int nothing(void)
{
    return CHILD_OK;
}

static void run_as_root_is_rejected(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    assert_exited(run_locked_down(SANDBOX_NETWORK_SERVER, "root", nothing),
                  CHILD_LOCK_DOWN_FAILED);
}

static void run_as_unknown_user_is_rejected(void **state)
{
    (void)state;
    assert_exited(run_locked_down(SANDBOX_NETWORK_SERVER,
                                  "no-such-user-sshfsd", nothing),
                  CHILD_LOCK_DOWN_FAILED);
}

/* As root, the child switches to nobody; a descriptor opened before
 * stays usable. */
static int image_still_readable(void)
{
    uint8_t byte;

    return pread(image_fd, &byte, 1, 0) == 1 ? CHILD_OK : CHILD_CALL_FAILED;
}

static void image_stays_open_after_user_switch(void **state)
{
    (void)state;
    assert_exited(run_locked_down(SANDBOX_NETWORK_SERVER, NULL,
                                  image_still_readable), CHILD_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(network_server_keeps_its_calls),
        cmocka_unit_test(stdio_server_keeps_its_calls),
        cmocka_unit_test(abort_still_raises_sigabrt),
        cmocka_unit_test(forbidden_calls_end_the_process),
        cmocka_unit_test(stdio_server_cannot_accept),
        cmocka_unit_test(network_server_cannot_poll),
        cmocka_unit_test(network_server_cannot_fcntl),
        cmocka_unit_test(run_as_root_is_rejected),
        cmocka_unit_test(run_as_unknown_user_is_rejected),
        cmocka_unit_test(image_stays_open_after_user_switch),
    };

    return cmocka_run_group_tests(tests, image_setup, image_teardown);
}
