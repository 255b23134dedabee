/*
 * resolve.h: turning "host:port" with a DNS name into a socket address without
 * blocking the event loop.
 *
 * The one idea: a process has one libev loop and nothing may stop it, and a name lookup
 * can take seconds (a resolver that does not answer, a lost uplink). So names are
 * looked up with c-ares, whose sockets are watched by the loop (ev_io) and whose retry
 * timeouts are one ev_timer; the answer comes back in a callback, from the top of the
 * loop, never from inside qpc_resolve_start. Numeric addresses need none of this:
 * callers convert them at once with qpc_addr_resolve (qpc/addr.h), which never asks a
 * resolver.
 *
 * Names are looked up as the system would ("files" first, so /etc/hosts is honoured,
 * then DNS with the servers and search domains of /etc/resolv.conf), each DNS try
 * waiting timeout_ms and tried `tries` times per server; when every try is used up the
 * callback says QPC_ERR_TIMEOUT.
 */
#ifndef QPC_RESOLVE_H
#define QPC_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>
#include <ev.h>

#define QPC_RESOLVE_TIMEOUT_MS_DEFAULT 2000   /* one DNS try */
#define QPC_RESOLVE_TRIES_DEFAULT 2           /* tries per server */

struct qpc_resolver;   /* one per loop: the c-ares channel and its watchers */
struct qpc_resolve;    /* one lookup in progress */

struct qpc_resolver_config {
    int timeout_ms;          /* one DNS try; 0 = QPC_RESOLVE_TIMEOUT_MS_DEFAULT */
    int tries;               /* per server; 0 = QPC_RESOLVE_TRIES_DEFAULT */
    const char *servers;     /* NULL: those of /etc/resolv.conf; else c-ares' list form
                              * "127.0.0.1:5353,[::1]:53" (tests point it at a local port) */
};

/*
 * What a lookup found. rc is 0 with sa (salen bytes; valid during the call only) the
 * first UDP address of the name with the port of the text; or QPC_ERR_NOT_FOUND (no
 * such name, no address), QPC_ERR_TIMEOUT (no resolver answered in time), QPC_ERR_IO
 * (another resolver failure) or QPC_ERR_NOMEM, with sa NULL. why is a sentence for a log
 * line ("Timeout while contacting DNS servers"), never NULL, valid during the call.
 * The lookup's handle is freed when the callback returns.
 */
typedef void (*qpc_resolve_fn)(void *arg, int rc, const struct sockaddr *sa, socklen_t salen,
                               const char *why);

/*
 * Makes a resolver on loop (borrowed; must outlive it). cfg may be NULL (defaults).
 * Returns 0 with *out, QPC_ERR_NOMEM, QPC_ERR_INVALID (cfg->servers not a server list)
 * or QPC_ERR_IO (c-ares could not start: no readable /etc/resolv.conf is not an error).
 */
int qpc_resolver_new(struct ev_loop *loop, const struct qpc_resolver_config *cfg,
                     struct qpc_resolver **out);

/*
 * Ends every lookup still in progress WITHOUT calling its callback (their handles are
 * freed and must not be used again), stops the watchers and frees r. NULL is a no-op.
 * It may be called from a lookup's callback (the rest of that turn's answers are then
 * dropped, their callbacks not run).
 */
void qpc_resolver_free(struct qpc_resolver *r);

/*
 * Starts looking up text ("host:port", port 1..65535; borrowed, copied). cb(arg, ...)
 * runs once, later, from the loop (never before this returns), unless the lookup is
 * cancelled first. *out is the handle, valid until cb returns or qpc_resolve_cancel.
 * A numeric host is accepted too (converted without I/O, answered on the next turn),
 * but callers that can should use qpc_addr_resolve for those and skip the wait.
 * Returns 0, QPC_ERR_INVALID (not host:port, port 0, r or cb NULL) or QPC_ERR_NOMEM.
 */
int qpc_resolve_start(struct qpc_resolver *r, const char *text, qpc_resolve_fn cb, void *arg,
                      struct qpc_resolve **out);

/*
 * qpc_resolve_start for addresses of one family only: AF_INET for a socket bound to an
 * IPv4 address (it cannot send to IPv6), AF_INET6, or AF_UNSPEC (any: a dual-stack
 * socket). A name without an address of that family ends with QPC_ERR_NOT_FOUND.
 * Returns what qpc_resolve_start does, and QPC_ERR_INVALID for another family.
 */
int qpc_resolve_start_family(struct qpc_resolver *r, const char *text, int family,
                             qpc_resolve_fn cb, void *arg, struct qpc_resolve **out);

/* Cancels a lookup: its callback will not run, and q is freed. NULL is a no-op. */
void qpc_resolve_cancel(struct qpc_resolve *q);

/* Lookups started and not yet answered or cancelled (for tests and metrics). */
unsigned qpc_resolver_pending(const struct qpc_resolver *r);

#endif
