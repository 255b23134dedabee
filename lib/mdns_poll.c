/*
 * mdns_poll.c: AvahiPoll on libev.
 *
 * Avahi drives its sockets and timers through a small vtable modelled on poll(2):
 * I/O watches on file descriptors and one-shot timeouts at absolute wall-clock times.
 * Each AvahiWatch here is an ev_io and each AvahiTimeout an ev_timer. The one thing to
 * know: Avahi may free or update a watch or timeout from inside its own callback, so
 * the libev callbacks below never touch the object after calling into Avahi.
 */
#include <stdlib.h>
#include <sys/time.h>

#include "mdns_poll.h"

struct qpc_mdns_poll {
    AvahiPoll api;           /* api.userdata points back to this struct */
    struct ev_loop *loop;
};

struct AvahiWatch {
    ev_io io;
    struct qpc_mdns_poll *poll;
    AvahiWatchEvent happened; /* events of the current callback, for watch_get_events */
    AvahiWatchCallback callback;
    void *userdata;
};

struct AvahiTimeout {
    ev_timer timer;
    struct qpc_mdns_poll *poll;
    AvahiTimeoutCallback callback;
    void *userdata;
};

static int ev_events_from_avahi(AvahiWatchEvent event)
{
    int ev = 0;

    if (event & AVAHI_WATCH_IN)
        ev |= EV_READ;
    if (event & AVAHI_WATCH_OUT)
        ev |= EV_WRITE;
    return ev;
}

static void watch_fired(struct ev_loop *loop, ev_io *io, int revents)
{
    AvahiWatch *w = (AvahiWatch *)io;
    AvahiWatchEvent event = 0;

    (void)loop;
    if (revents & EV_READ)
        event |= AVAHI_WATCH_IN;
    if (revents & EV_WRITE)
        event |= AVAHI_WATCH_OUT;
    if (revents & EV_ERROR)
        event |= AVAHI_WATCH_ERR;
    w->happened = event;
    w->callback(w, w->io.fd, event, w->userdata); /* may free w */
}

static void watch_set(AvahiWatch *w, AvahiWatchEvent event)
{
    ev_io_stop(w->poll->loop, &w->io);
    ev_io_set(&w->io, w->io.fd, ev_events_from_avahi(event));
    if (ev_events_from_avahi(event) != 0)
        ev_io_start(w->poll->loop, &w->io);
}

static AvahiWatch *watch_new(const AvahiPoll *api, int fd, AvahiWatchEvent event,
                             AvahiWatchCallback callback, void *userdata)
{
    AvahiWatch *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->poll = api->userdata;
    w->callback = callback;
    w->userdata = userdata;
    ev_io_init(&w->io, watch_fired, fd, ev_events_from_avahi(event));
    if (ev_events_from_avahi(event) != 0)
        ev_io_start(w->poll->loop, &w->io);
    return w;
}

static void watch_update(AvahiWatch *w, AvahiWatchEvent event)
{
    watch_set(w, event);
}

static AvahiWatchEvent watch_get_events(AvahiWatch *w)
{
    return w->happened;
}

static void watch_free(AvahiWatch *w)
{
    ev_io_stop(w->poll->loop, &w->io);
    free(w);
}

static void timeout_fired(struct ev_loop *loop, ev_timer *timer, int revents)
{
    AvahiTimeout *t = (AvahiTimeout *)timer;

    (void)loop;
    (void)revents;
    /* One-shot: libev has already stopped the timer; Avahi re-arms it if it wants. */
    t->callback(t, t->userdata); /* may free or update t */
}

/* Arms t for the absolute wall-clock time tv (Avahi's clock is gettimeofday). */
static void timeout_set(AvahiTimeout *t, const struct timeval *tv)
{
    struct timeval now;
    ev_tstamp delay;

    ev_timer_stop(t->poll->loop, &t->timer);
    if (tv == NULL)
        return;
    gettimeofday(&now, NULL);
    delay = (ev_tstamp)(tv->tv_sec - now.tv_sec) + (ev_tstamp)(tv->tv_usec - now.tv_usec) / 1e6;
    if (delay < 0)
        delay = 0;
    ev_timer_set(&t->timer, delay, 0.);
    ev_timer_start(t->poll->loop, &t->timer);
}

static AvahiTimeout *timeout_new(const AvahiPoll *api, const struct timeval *tv,
                                 AvahiTimeoutCallback callback, void *userdata)
{
    AvahiTimeout *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->poll = api->userdata;
    t->callback = callback;
    t->userdata = userdata;
    ev_init(&t->timer, timeout_fired);
    timeout_set(t, tv);
    return t;
}

static void timeout_update(AvahiTimeout *t, const struct timeval *tv)
{
    timeout_set(t, tv);
}

static void timeout_free(AvahiTimeout *t)
{
    ev_timer_stop(t->poll->loop, &t->timer);
    free(t);
}

struct qpc_mdns_poll *qpc_mdns_poll_new(struct ev_loop *loop)
{
    struct qpc_mdns_poll *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->loop = loop;
    p->api.userdata = p;
    p->api.watch_new = watch_new;
    p->api.watch_update = watch_update;
    p->api.watch_get_events = watch_get_events;
    p->api.watch_free = watch_free;
    p->api.timeout_new = timeout_new;
    p->api.timeout_update = timeout_update;
    p->api.timeout_free = timeout_free;
    return p;
}

const AvahiPoll *qpc_mdns_poll_api(struct qpc_mdns_poll *p)
{
    return &p->api;
}

void qpc_mdns_poll_free(struct qpc_mdns_poll *p)
{
    free(p);
}
