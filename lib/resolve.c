/*
 * resolve.c: name lookups with c-ares on the libev loop (include/qpc/resolve.h).
 *
 * The one idea: c-ares does no waiting of its own. It tells us which of its sockets it
 * wants to read or write (the sock_state callback: one ev_io each) and, through
 * ares_timeout, when it next has something to do (one ev_timer); we call
 * ares_process_fd when either fires. Its answer arrives in a c-ares callback, which can
 * run inside ares_getaddrinfo itself (an /etc/hosts hit) or inside ares_process_fd, so
 * the answer is only recorded there and handed to the caller from a zero timer at the
 * top of the loop: a caller's callback may then start, cancel or free anything,
 * the resolver included.
 *
 * A c-ares query cannot be withdrawn once asked; a cancelled lookup only loses its
 * callback and is freed when c-ares lets go of it (its answer, or ares_destroy).
 */
#include <ares.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "qpc/addr.h"
#include "qpc/error.h"
#include "qpc/resolve.h"

struct resolver_fd {
    ev_io io;
    struct qpc_resolver *r;
    struct resolver_fd *prev, *next;
};

struct qpc_resolve {
    struct qpc_resolver *r;
    qpc_resolve_fn cb;                 /* NULL once cancelled */
    void *arg;
    bool answered;                     /* on the done list, waiting for delivery */
    bool in_ares;                      /* c-ares still holds it (its callback not run) */
    uint16_t port;
    int rc;
    char why[96];
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct qpc_resolve *prev, *next;   /* on r->done while answered */
};

struct qpc_resolver {
    struct ev_loop *loop;
    ares_channel channel;
    bool destroying;                   /* in qpc_resolver_free: c-ares ends every query */
    bool delivering;                   /* in deliver_cb: a callback may free the resolver */
    bool dead;                         /* freed from a callback: deliver_cb frees r */
    ev_timer timeout;                  /* c-ares' next deadline */
    ev_timer deliver;                  /* zero timer: answers to callers */
    struct resolver_fd *fds;           /* utlist DL */
    struct qpc_resolve *done;          /* answered, waiting for delivery (utlist DL) */
    unsigned pending;                  /* started, not answered, not cancelled */
};

static void timeout_rearm(struct qpc_resolver *r)
{
    struct timeval tv, *t;

    ev_timer_stop(r->loop, &r->timeout);
    t = ares_timeout(r->channel, NULL, &tv);
    if (t == NULL)
        return;   /* nothing in flight */
    ev_timer_set(&r->timeout, (double)t->tv_sec + (double)t->tv_usec / 1e6, 0.0);
    ev_timer_start(r->loop, &r->timeout);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct resolver_fd *f = w->data;
    struct qpc_resolver *r = f->r;
    int fd = w->fd;

    ares_process_fd(r->channel, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    timeout_rearm(r);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct qpc_resolver *r = w->data;

    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timeout_rearm(r);
}

/* c-ares opened, changed or closed one of its sockets. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct qpc_resolver *r = data;
    struct resolver_fd *f;
    int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

    DL_FOREACH(r->fds, f)
        if (f->io.fd == fd)
            break;
    if (f != NULL) {
        ev_io_stop(r->loop, &f->io);
        if (events == 0) {
            DL_DELETE(r->fds, f);
            free(f);
            return;
        }
        ev_io_set(&f->io, fd, events);
        ev_io_start(r->loop, &f->io);
        return;
    }
    if (events == 0 || (f = calloc(1, sizeof(*f))) == NULL)
        return;   /* out of memory: the query times out in c-ares */
    f->r = r;
    ev_io_init(&f->io, io_cb, fd, events);
    f->io.data = f;
    DL_APPEND(r->fds, f);
    ev_io_start(r->loop, &f->io);
}

/* Hands every answer to its caller (from the top of the loop). */
static void deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct qpc_resolver *r = w->data;

    r->delivering = true;
    while (r->done != NULL && !r->dead) {
        struct qpc_resolve *q = r->done;
        const struct sockaddr *sa = q->rc == 0 ? (const struct sockaddr *)&q->ss : NULL;

        DL_DELETE(r->done, q);
        q->answered = false;
        r->pending--;
        /* q is off every list: the callback may cancel others or free r. */
        q->cb(q->arg, q->rc, sa, q->rc == 0 ? q->sslen : 0, q->why);
        free(q);
    }
    r->delivering = false;
    if (r->dead) {   /* qpc_resolver_free ran in a callback and left r to us */
        struct qpc_resolve *q, *tmp;

        DL_FOREACH_SAFE(r->done, q, tmp) {
            DL_DELETE(r->done, q);
            free(q);
        }
        free(r);
    }
}

static int rc_of(int status)
{
    switch (status) {
    case ARES_ENOTFOUND: case ARES_ENODATA: case ARES_ENONAME: case ARES_EBADNAME:
    case ARES_EBADFAMILY:
        return QPC_ERR_NOT_FOUND;
    case ARES_ETIMEOUT:
        return QPC_ERR_TIMEOUT;
    case ARES_ENOMEM:
        return QPC_ERR_NOMEM;
    default:
        return QPC_ERR_IO;
    }
}

/* q's answer is in it: deliver it at the next turn, from the top of the loop. */
static void answer(struct qpc_resolver *r, struct qpc_resolve *q)
{
    q->answered = true;
    DL_APPEND(r->done, q);
    if (!ev_is_active(&r->deliver))
        ev_timer_start(r->loop, &r->deliver);
}

/* c-ares is done with q: record the answer for delivery, or free a cancelled q. */
static void ares_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct qpc_resolve *q = arg;
    struct qpc_resolver *r = q->r;
    struct ares_addrinfo_node *node = res != NULL ? res->nodes : NULL;

    q->in_ares = false;
    if (q->cb == NULL || r->destroying) {
        if (res != NULL)
            ares_freeaddrinfo(res);
        free(q);
        return;
    }
    if (status == ARES_SUCCESS && node != NULL && node->ai_addrlen <= sizeof(q->ss)) {
        memcpy(&q->ss, node->ai_addr, node->ai_addrlen);
        q->sslen = (socklen_t)node->ai_addrlen;
        q->rc = 0;
        snprintf(q->why, sizeof(q->why), "resolved");
    } else {
        q->rc = status == ARES_SUCCESS ? QPC_ERR_NOT_FOUND : rc_of(status);
        snprintf(q->why, sizeof(q->why), "%s",
                 status == ARES_SUCCESS ? "no address for the name" : ares_strerror(status));
    }
    if (res != NULL)
        ares_freeaddrinfo(res);
    answer(r, q);
}

int qpc_resolver_new(struct ev_loop *loop, const struct qpc_resolver_config *cfg,
                     struct qpc_resolver **out)
{
    struct ares_options o = { 0 };
    struct qpc_resolver *r;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    int st;

    if (loop == NULL || out == NULL)
        return QPC_ERR_INVALID;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return QPC_ERR_NOMEM;
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        free(r);
        return QPC_ERR_IO;
    }
    r->loop = loop;
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = r;
    o.timeout = cfg != NULL && cfg->timeout_ms > 0 ? cfg->timeout_ms : QPC_RESOLVE_TIMEOUT_MS_DEFAULT;
    o.tries = cfg != NULL && cfg->tries > 0 ? cfg->tries : QPC_RESOLVE_TRIES_DEFAULT;
    st = ares_init_options(&r->channel, &o, mask);
    if (st != ARES_SUCCESS) {
        ares_library_cleanup();
        free(r);
        return st == ARES_ENOMEM ? QPC_ERR_NOMEM : QPC_ERR_IO;
    }
    if (cfg != NULL && cfg->servers != NULL &&
        ares_set_servers_ports_csv(r->channel, cfg->servers) != ARES_SUCCESS) {
        ares_destroy(r->channel);
        ares_library_cleanup();
        free(r);
        return QPC_ERR_INVALID;
    }
    ev_timer_init(&r->timeout, timeout_cb, 0.0, 0.0);
    r->timeout.data = r;
    ev_timer_init(&r->deliver, deliver_cb, 0.0, 0.0);
    r->deliver.data = r;
    *out = r;
    return 0;
}

void qpc_resolver_free(struct qpc_resolver *r)
{
    struct resolver_fd *f, *ftmp;
    struct qpc_resolve *q, *qtmp;

    if (r == NULL)
        return;
    r->destroying = true;
    ares_destroy(r->channel);   /* every query still held ends in ares_cb, which frees it */
    ev_timer_stop(r->loop, &r->timeout);
    ev_timer_stop(r->loop, &r->deliver);
    DL_FOREACH_SAFE(r->fds, f, ftmp) {   /* sock_state_cb has closed them all, normally */
        ev_io_stop(r->loop, &f->io);
        DL_DELETE(r->fds, f);
        free(f);
    }
    ares_library_cleanup();
    if (r->delivering) {   /* called from a callback: deliver_cb frees the rest */
        r->dead = true;
        return;
    }
    DL_FOREACH_SAFE(r->done, q, qtmp) {
        DL_DELETE(r->done, q);
        free(q);
    }
    free(r);
}

int qpc_resolve_start(struct qpc_resolver *r, const char *text, qpc_resolve_fn cb, void *arg,
                      struct qpc_resolve **out)
{
    return qpc_resolve_start_family(r, text, AF_UNSPEC, cb, arg, out);
}

int qpc_resolve_start_family(struct qpc_resolver *r, const char *text, int family,
                             qpc_resolve_fn cb, void *arg, struct qpc_resolve **out)
{
    char host[QPC_ADDR_HOST_MAX + 1];
    char service[8];
    struct ares_addrinfo_hints hints = { .ai_flags = ARES_AI_NUMERICSERV,
                                         .ai_family = family, .ai_socktype = SOCK_DGRAM };
    struct qpc_resolve *q;
    uint16_t port;

    if (r == NULL || cb == NULL || out == NULL || text == NULL ||
        (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) ||
        qpc_addr_parse(text, host, sizeof(host), &port) < 0 || port == 0)
        return QPC_ERR_INVALID;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return QPC_ERR_NOMEM;
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->port = port;
    r->pending++;
    *out = q;
    if (qpc_addr_is_numeric(text)) {   /* no resolver: the answer is there, given next turn */
        q->rc = qpc_addr_resolve(text, &q->ss, &q->sslen);
        if (q->rc == 0 && family != AF_UNSPEC && q->ss.ss_family != family)
            q->rc = QPC_ERR_NOT_FOUND;
        snprintf(q->why, sizeof(q->why), "%s", q->rc == 0 ? "numeric" : "no address of that family");
        answer(r, q);
        return 0;
    }
    q->in_ares = true;
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    ares_getaddrinfo(r->channel, host, service, &hints, ares_cb, q);   /* may answer at once */
    timeout_rearm(r);
    return 0;
}

void qpc_resolve_cancel(struct qpc_resolve *q)
{
    struct qpc_resolver *r;

    if (q == NULL || q->cb == NULL)
        return;
    r = q->r;
    r->pending--;
    if (q->answered) {   /* answered and not yet delivered: nobody else holds it */
        DL_DELETE(r->done, q);
        free(q);
        return;
    }
    q->cb = NULL;        /* c-ares still holds it; ares_cb frees it */
}

unsigned qpc_resolver_pending(const struct qpc_resolver *r)
{
    return r != NULL ? r->pending : 0;
}
