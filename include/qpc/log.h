/*
 * log.h: leveled logging to stderr for both programs and the library.
 *
 * The library logs only where it decides something the operator should know (a refused
 * peer, a dropped malformed packet): one line, once, at the place that decided. Lines are
 * "LEVEL module: message" with an optional timestamp for daemons.
 */
#ifndef QPC_LOG_H
#define QPC_LOG_H

#include <stdbool.h>
#include <stdint.h>

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

/*
 * A budget of one log line per interval for one kind of event that a peer can cause at
 * will (a malformed frame, a refused request): without it, one peer's garbage writes as
 * many lines as it sends packets. A zeroed struct is ready. Pure: the caller gives the
 * time, in milliseconds of a monotonic clock.
 */
struct qpc_log_limit {
    uint64_t next_ms;       /* no line before this time */
    uint64_t suppressed;    /* events held back since the last line */
    bool used;
};

/*
 * Counts one event at now_ms. Returns true when a line may be written for it now (the
 * first event, or the first after interval_ms since the last line); *suppressed (may be
 * NULL) then gets how many events were held back since the last line, for the line to
 * say ("... (41 more suppressed)"). Returns false when the line must be skipped.
 */
bool qpc_log_limit_pass(struct qpc_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                        uint64_t *suppressed);

#define qpc_log_error(module, ...) qpc_log(QPC_LOG_ERROR, module, __VA_ARGS__)
#define qpc_log_warn(module, ...) qpc_log(QPC_LOG_WARN, module, __VA_ARGS__)
#define qpc_log_info(module, ...) qpc_log(QPC_LOG_INFO, module, __VA_ARGS__)
#define qpc_log_debug(module, ...) qpc_log(QPC_LOG_DEBUG, module, __VA_ARGS__)

#endif
