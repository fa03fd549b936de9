/*
 * sshfsd-sftp-server: the SFTP server on standard input and output, over
 * one littlefs image.  No SSH and no encryption of the connection: the
 * program that starts it provides the channel, as with OpenSSH's
 * sftp-server.  It serves
 *   sftp -D "sshfsd-sftp-server IMAGE"
 *   sshfs -o passive (through a pipe, socat or dpipe)
 *   an OpenSSH sshd: Subsystem sftp /usr/local/bin/sshfsd-sftp-server IMAGE
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "block/bd.h"
#include "lfs/lfs.h"
#include "server/log.h"
#include "server/options.h"
#include "server/sandbox.h"
#include "server/server.h"
#include "sftp/sftp.h"
#include "vfs/vfs.h"

#define PROGRAM "sshfsd-sftp-server"

/* Bytes read from standard input at once: a few maximum-size packets. */
#define STDIO_INPUT_SIZE (4 * (SFTP_MAX_PACKET + 4))

enum exit_status {
    EXIT_OK = 0,
    EXIT_FAILED = 1,           /* the image or the session failed */
    EXIT_USAGE = 2,
};

struct options {
    const char *image;
    int read_only;
    uint32_t uid;
    uint32_t gid;
    uint32_t umask;
    enum log_level log_level;
    const char *run_as;
    int no_sandbox;
    const char *blockkey_hex;
    const char *blockkey_file;
};

/* The image as served: device, mount and the vfs over it. */
struct served_image {
    struct bd *bd;
    struct lfs *lfs;
    struct vfs *vfs;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROGRAM " [-R] [-u UMASK] [--uid UID] [--gid GID] "
            "[-l LEVEL]\n"
            "       [--blockkey HEX | --blockkey-file FILE] [--run-as USER]\n"
            "       [--no-sandbox] IMAGE\n"
            "Serve the littlefs image IMAGE over SFTP on standard input "
            "and output.\n"
            "  -R, --read-only  reject every request that would change "
"the image\n"
            "  -u, --umask UMASK\n"
            "                   octal bits cleared from the permissions of "
            "new files and\n"
            "                   directories (default: this process's "
            "umask)\n"
            "  --uid UID        user id every file reports (default: "
            "the running user's)\n"
            "  --gid GID        group id every file reports (default: "
            "the running user's)\n"
            "  -l, --log-level LEVEL\n"
            "                   log to standard error up to LEVEL: error "
            "(default), warn,\n"
            "                   info, debug or trace\n"
            "  --blockkey HEX   AES key of an encrypted image (also "
            "$SSHFSD_BLOCKKEY)\n"
            "  --blockkey-file FILE\n"
            "                   read that key from FILE\n"
            "  --run-as USER    user to switch to when started as root "
            "(default nobody)\n"
            "  --no-sandbox     skip the lock-down (for debugging only)\n"
            "  -h, --help       show this help and exit\n"
            "  --version        show the version and exit\n");
}

static int parse_id(const char *text, uint32_t *out)
{
    char *end;
    unsigned long value;

    errno = 0;
    value = strtoul(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] == '-' ||
        value > UINT32_MAX)
        return -1;
    *out = (uint32_t)value;
    return 0;
}

/* The process umask, which umask(2) can only read by setting it. */
static uint32_t process_umask(void)
{
    mode_t mask = umask(0);

    umask(mask);
    return (uint32_t)mask;
}

static int parse_options(int argc, char **argv, struct options *opts)
{
    static const struct option long_options[] = {
        { "read-only", no_argument, NULL, 'R' },
        { "umask", required_argument, NULL, 'u' },
        { "uid", required_argument, NULL, 'I' },
        { "gid", required_argument, NULL, 'G' },
        { "log-level", required_argument, NULL, 'l' },
        { "run-as", required_argument, NULL, 'U' },
        { "blockkey", required_argument, NULL, 'K' },
        { "blockkey-file", required_argument, NULL, 'F' },
        { "no-sandbox", no_argument, NULL, 'N' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    opts->uid = (uint32_t)getuid();
    opts->gid = (uint32_t)getgid();
    opts->umask = process_umask();
    opts->log_level = LOG_LEVEL_ERROR;
    while ((c = getopt_long(argc, argv, "Ru:l:h", long_options, NULL)) !=
           -1) {
        switch (c) {
        case 'R':
            opts->read_only = 1;
            break;
        case 'u':
            if (options_parse_umask(optarg, &opts->umask)) {
                fprintf(stderr, PROGRAM ": invalid umask '%s': expected "
                        "octal digits, at most 0777\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'I':
        case 'G':
            if (parse_id(optarg, c == 'I' ? &opts->uid : &opts->gid)) {
                fprintf(stderr, PROGRAM ": invalid %s '%s': expected a "
                        "number from 0 to %u\n", c == 'I' ? "uid" : "gid",
                        optarg, UINT32_MAX);
                return EXIT_USAGE;
            }
            break;
        case 'l':
            if (log_parse_level(optarg, &opts->log_level)) {
                fprintf(stderr, PROGRAM ": invalid log level '%s': use "
                        "error, warn, info, debug or trace\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'U':
            opts->run_as = optarg;
            break;
        case 'K':
            opts->blockkey_hex = optarg;
            break;
        case 'F':
            opts->blockkey_file = optarg;
            break;
        case 'N':
            opts->no_sandbox = 1;
            break;
        case 'h':
            usage(stdout);
            exit(EXIT_OK);
        case 'V':
            puts(PROGRAM " 0.1");
            exit(EXIT_OK);
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    opts->image = argv[optind];
    return EXIT_OK;
}

/// The image ///

static int image_open(const struct options *opts, struct served_image *img)
{
    char error[BD_ERROR_MAX + 64];
    struct lfs_mount_options mount_opts = { .read_only = opts->read_only };
    struct vfs_lfs_options vfs_opts = {
        .uid = opts->uid,
        .gid = opts->gid,
        .read_only = opts->read_only,
    };

    uint8_t key[BD_CCM_KEY_MAX];
    size_t key_len;

    if (server_load_block_key(opts->blockkey_hex, opts->blockkey_file, key,
                              &key_len))
        return -1;
    img->bd = bd_open_image(opts->image, !opts->read_only,
                            key_len ? key : NULL, key_len, error,
                            sizeof(error));
    OPENSSL_cleanse(key, sizeof(key));
    if (!img->bd) {
        log_error("cannot open image %s: %s", opts->image, error);
        return -1;
    }

    int err = lfs_mount(&img->lfs, img->bd, &mount_opts);

    if (err && bd_ccm_explain_mount_failure(img->bd, "--blockkey", error,
                                            sizeof(error))) {
        log_error("cannot mount image %s: %s", opts->image, error);
        bd_close(img->bd);
        return -1;
    }
    if (err) {
        log_error("cannot mount image %s: %s%s%s", opts->image,
                  lfs_strerror(err), img->bd->error[0] ? ": " : "",
                  img->bd->error);
        bd_close(img->bd);
        return -1;
    }
    img->vfs = vfs_lfs_new(img->lfs, &vfs_opts);
    if (!img->vfs) {
        log_error("out of memory");
        (void)lfs_unmount(img->lfs);
        bd_close(img->bd);
        return -1;
    }
    return 0;
}

/* Unmount, which writes back what open files still held. */
static int image_close(const struct options *opts, struct served_image *img)
{
    int err;

    vfs_free(img->vfs);
    err = lfs_unmount(img->lfs);
    bd_close(img->bd);
    if (err) {
        log_error("unmounting image %s failed: %s", opts->image,
                  lfs_strerror(err));
        return -1;
    }
    return 0;
}

/// The stdio loop ///

static void log_line(void *ctx, int level, const char *line)
{
    (void)ctx;
    log_msg((enum log_level)level, "sftp: %s", line);
}

static int set_nonblocking(int fd, int *saved_flags)
{
    *saved_flags = fcntl(fd, F_GETFL);
    if (*saved_flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, *saved_flags | O_NONBLOCK);
}

/* Write pending output.  Returns 0, 1 when the client has gone, or -1
 * when writing failed. */
static int send_output(struct sftp_session *s)
{
    size_t len;
    const uint8_t *data = sftp_session_output(s, &len);

    if (len == 0)
        return 0;

    ssize_t n = write(STDOUT_FILENO, data, len);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;

        /* A client may close the connection without reading the replies
         * to its last requests (sshfs does when it unmounts): every
         * request was carried out, so this is an ordinary end. */
        if (errno == EPIPE) {
            log_info("client closed the connection with %zu bytes of "
                     "replies unread", len);
            return 1;
        }
        log_error("writing to the client failed: %s", strerror(errno));
        return -1;
    }
    sftp_session_output_sent(s, (size_t)n);
    return 0;
}

/* Read more input after the unprocessed bytes; *eof is set at the end. */
static int receive_input(uint8_t *buf, size_t *len, int *eof)
{
    ssize_t n = read(STDIN_FILENO, buf + *len, STDIO_INPUT_SIZE - *len);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        log_error("reading from the client failed: %s", strerror(errno));
        return -1;
    }
    if (n == 0)
        *eof = 1;
    *len += (size_t)n;
    return 0;
}

/*
 * Move bytes between stdio and the session until the client closes its
 * side and every reply has been written, or the session fails.  Input is
 * read only while the session takes it, so a client that does not read
 * its replies stops being read from: memory stays bounded.
 */
static int serve(struct sftp_session *s)
{
    uint8_t *in = malloc(STDIO_INPUT_SIZE);
    size_t in_len = 0;
    int eof = 0, failed = 0;

    if (!in) {
        log_error("out of memory");
        return -1;
    }
    for (;;) {
        size_t used = sftp_session_input(s, in, in_len);

        memmove(in, in + used, in_len - used);
        in_len -= used;

        size_t out_len;

        (void)sftp_session_output(s, &out_len);
        if (out_len == 0 && (sftp_session_error(s) || (eof && in_len == 0)))
            break;

        struct pollfd fds[2] = {
            { .fd = STDIN_FILENO, .events = 0 },
            { .fd = STDOUT_FILENO, .events = out_len ? POLLOUT : 0 },
        };

        if (!eof && in_len < STDIO_INPUT_SIZE && sftp_session_wants_input(s))
            fds[0].events = POLLIN;
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll failed: %s", strerror(errno));
            failed = 1;
            break;
        }
        if (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) {
            int r = send_output(s);

            if (r != 0) {
                failed = r < 0;
                break;
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (receive_input(in, &in_len, &eof)) {
                failed = 1;
                break;
            }
        }
    }
    free(in);
    if (sftp_session_error(s))
        failed = 1;
    return failed ? -1 : 0;
}

static struct sftp_session *session_new(const struct options *opts,
                                        struct vfs *vfs)
{
    struct passwd *pw = getpwuid(opts->uid);
    struct group *gr = getgrgid(opts->gid);
    struct sftp_options sftp_opts = {
        .uid = opts->uid,
        .gid = opts->gid,
        .user_name = pw ? pw->pw_name : NULL,
        .group_name = gr ? gr->gr_name : NULL,
        .read_only = opts->read_only,
        .umask = opts->umask,
        .log = log_line,
        .log_level = (int)opts->log_level,
    };

    return sftp_session_new(vfs, &sftp_opts);
}

/* Standard streams, the image, and a few to spare. */
#define STDIO_MAX_FILES 16

static int lock_down(const struct options *opts)
{
    struct sandbox_options sb = {
        .program = SANDBOX_STDIO_SERVER,
        .run_as = opts->run_as,
        .run_as_given = opts->run_as != NULL,
        .max_files = STDIO_MAX_FILES,
    };

    if (opts->no_sandbox) {
        sandbox_warn_disabled();
        return 0;
    }
    return sandbox_enter(&sb);
}

int main(int argc, char **argv)
{
    struct options opts = { 0 };
    struct served_image img = { 0 };
    int status, stdin_flags, stdout_flags;

    sandbox_reset_descriptors();
    log_set_program(PROGRAM);
    status = parse_options(argc, argv, &opts);
    if (status != EXIT_OK)
        return status;
    log_set_level(opts.log_level);

    /* A client that goes away shows up as EPIPE on write. */
    signal(SIGPIPE, SIG_IGN);

    if (image_open(&opts, &img))
        return EXIT_FAILED;

    struct sftp_session *s = session_new(&opts, img.vfs);

    if (!s) {
        log_error("out of memory");
        (void)image_close(&opts, &img);
        return EXIT_FAILED;
    }
    log_info("session opened on image %s%s", opts.image,
             opts.read_only ? " (read-only)" : "");

    /* The session has looked up the names of its owner: nothing more is
     * needed from the file system. */
    if (lock_down(&opts))
        status = EXIT_FAILED;
    else if (set_nonblocking(STDIN_FILENO, &stdin_flags) ||
        set_nonblocking(STDOUT_FILENO, &stdout_flags)) {
        log_error("cannot set up standard input and output: %s",
                  strerror(errno));
        status = EXIT_FAILED;
    } else {
        status = serve(s) ? EXIT_FAILED : EXIT_OK;
        (void)fcntl(STDIN_FILENO, F_SETFL, stdin_flags);
        (void)fcntl(STDOUT_FILENO, F_SETFL, stdout_flags);
    }

    sftp_session_free(s);
    if (image_close(&opts, &img))
        status = EXIT_FAILED;
    log_info("session closed");
    return status;
}
