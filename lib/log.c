/*
 * log.c: one line per event, level-filtered. Formatting happens only when the level is
 * enabled, so debug logging on a hot path costs a comparison when it is off. Lines about
 * what peers send go through a qpc_log_limit, so a peer cannot fill the log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qpc/error.h"
#include "qpc/log.h"

static enum qpc_log_level log_level = QPC_LOG_INFO;
static int log_timestamps;
static qpc_log_sink_fn log_sink;
static void *log_sink_arg;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void qpc_log_set_level(enum qpc_log_level level) { log_level = level; }
enum qpc_log_level qpc_log_get_level(void) { return log_level; }
void qpc_log_set_timestamps(int on) { log_timestamps = on; }

void qpc_log_set_sink(qpc_log_sink_fn fn, void *arg)
{
    log_sink = fn;
    log_sink_arg = arg;
}

int qpc_log_level_parse(const char *text, enum qpc_log_level *level)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (text != NULL && strcmp(text, level_names[i]) == 0) {
            *level = (enum qpc_log_level)i;
            return 0;
        }
    }
    return QPC_ERR_INVALID;
}

void qpc_log(enum qpc_log_level level, const char *module, const char *fmt, ...)
{
    char line[1024];
    size_t n = 0;
    va_list ap;

    if (level > log_level)
        return;
    if (log_timestamps) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %s: ", level_names[level], module);
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    /* Messages quote what peers sent: a control byte (newline, escape) must not forge
     * a second line or repaint the terminal, so every line stays one line. */
    for (char *p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (log_sink != NULL)
        log_sink(level, line, log_sink_arg);
    else
        fprintf(stderr, "%s\n", line);
}

bool qpc_log_limit_pass(struct qpc_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                        uint64_t *suppressed)
{
    /* A clock read before next_ms - interval (stepped back) is treated as "not yet":
     * at worst one interval of lines is skipped, never a flood let through. */
    if (l->used && now_ms < l->next_ms) {
        l->suppressed++;
        return false;
    }
    if (suppressed != NULL)
        *suppressed = l->suppressed;
    l->suppressed = 0;
    l->used = true;
    l->next_ms = now_ms + interval_ms;
    return true;
}
