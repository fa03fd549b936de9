/*
 * The server's log: one line per event on standard error, in the form
 *   2026-01-31T12:00:00.000Z sshfsd[PID]: LEVEL: message
 * (sshfsd-sftp-server writes its own name in place of sshfsd)
 * where "LEVEL: " is left out at info level, so that authentication
 * lines read exactly like sshd's ("Accepted publickey for ...") for
 * tools such as fail2ban.
 */
#ifndef SSHFSD_SERVER_LOG_H
#define SSHFSD_SERVER_LOG_H

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
    LOG_LEVEL_TRACE = 4,
};

/* The program name in log lines (default "sshfsd"); name must live as
 * long as the process. */
void log_set_program(const char *name);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse a level name: error, warn (or warning), info, debug, trace.
 * Returns 0 and sets *level, or -1 for an unknown name. */
int log_parse_level(const char *name, enum log_level *level);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
