/*
 * log.h: leveled logging to stderr for both programs and the library.
 *
 * The library logs only where it decides something the operator should know (a refused
 * peer, a dropped malformed packet): one line, once, at the place that decided. Lines are
 * "LEVEL module: message" with an optional timestamp for daemons.
 */
#ifndef QPC_LOG_H
#define QPC_LOG_H

enum qpc_log_level {
    QPC_LOG_ERROR = 0,
    QPC_LOG_WARN = 1,
    QPC_LOG_INFO = 2,
    QPC_LOG_DEBUG = 3,
};

/* Sets the most verbose level printed (default QPC_LOG_INFO). */
void qpc_log_set_level(enum qpc_log_level level);
enum qpc_log_level qpc_log_get_level(void);

/* Parses "error", "warn", "info", "debug". Returns 0 or QPC_ERR_INVALID. */
int qpc_log_level_parse(const char *text, enum qpc_log_level *level);

/* Prefix each line with an ISO-8601 UTC timestamp (for daemons; off by default). */
void qpc_log_set_timestamps(int on);

/*
 * Redirects log lines to fn instead of stderr (the REPL prints them above the prompt).
 * fn NULL restores stderr. line has no trailing newline.
 */
typedef void (*qpc_log_sink_fn)(enum qpc_log_level level, const char *line, void *arg);
void qpc_log_set_sink(qpc_log_sink_fn fn, void *arg);

void qpc_log(enum qpc_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define qpc_log_error(module, ...) qpc_log(QPC_LOG_ERROR, module, __VA_ARGS__)
#define qpc_log_warn(module, ...) qpc_log(QPC_LOG_WARN, module, __VA_ARGS__)
#define qpc_log_info(module, ...) qpc_log(QPC_LOG_INFO, module, __VA_ARGS__)
#define qpc_log_debug(module, ...) qpc_log(QPC_LOG_DEBUG, module, __VA_ARGS__)

#endif
