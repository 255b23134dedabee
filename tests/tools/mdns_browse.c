/*
 * mdns_browse: test helper that browses for quicprochat nodes with qpc_mdns and prints
 * one line per event, flushed:
 *
 *   + name=<instance> host=<host> address=<addr> port=<port> ver=<v> server=<s> domain=<d>
 *   - name=<instance> ...
 *
 *   mdns_browse [-i IFACE]... [-H host-label] [-t seconds] [-r instance]
 *
 * Exits 0 after the timeout (-t, default 30 s) or on SIGTERM; with -r it exits 0 as soon
 * as the named instance has been seen added and then removed, and 1 if the timeout
 * comes first.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>

#include "qpc/error.h"
#include "qpc/mdns.h"

#define MAX_IFACES 8

struct browser {
    const char *wait_removed; /* instance name, or NULL */
    bool seen_added;
    bool done;
};

static const char *or_dash(const char *s)
{
    return s != NULL ? s : "-";
}

static void on_service(const struct qpc_mdns_service *svc, bool added, void *arg)
{
    struct browser *b = arg;

    printf("%c name=%s host=%s address=%s port=%u ver=%s server=%s domain=%s%s\n",
           added ? '+' : '-', svc->name, svc->host, svc->address, (unsigned)svc->port,
           or_dash(svc->ver), or_dash(svc->server), or_dash(svc->domain),
           svc->is_local ? " local" : "");
    fflush(stdout);
    if (b->wait_removed != NULL && strcmp(svc->name, b->wait_removed) == 0) {
        if (added)
            b->seen_added = true;
        else if (b->seen_added)
            b->done = true;
    }
}

static void check_done(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct browser *b = w->data;

    (void)revents;
    if (b->done)
        ev_break(loop, EVBREAK_ALL);
}

static void timed_out(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    const char *ifaces[MAX_IFACES + 1] = { 0 };
    struct qpc_mdns_config cfg = { .interfaces = NULL };
    struct ev_loop *loop = EV_DEFAULT;
    struct qpc_mdns *mdns = NULL;
    struct browser b = { 0 };
    ev_timer deadline, poll_done;
    ev_signal sigterm, sigint;
    double seconds = 30;
    int n_ifaces = 0, opt, ret = 1, err;

    while ((opt = getopt(argc, argv, "i:H:t:r:6")) != -1) {
        switch (opt) {
        case 'i':
            if (n_ifaces == MAX_IFACES)
                goto usage;
            ifaces[n_ifaces++] = optarg;
            cfg.interfaces = ifaces;
            break;
        case 'H': cfg.host_label = optarg; break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'r': b.wait_removed = optarg; break;
        case '6': cfg.use_ipv6 = true; break;
        default: goto usage;
        }
    }
    if (seconds <= 0)
        goto usage;
    if ((err = qpc_mdns_new(loop, &cfg, &mdns)) != 0 ||
        (err = qpc_mdns_browse_start(mdns, on_service, &b)) != 0) {
        fprintf(stderr, "mdns_browse: %s\n", qpc_strerror(err));
        goto cleanup;
    }
    ev_timer_init(&deadline, timed_out, seconds, 0.);
    ev_timer_start(loop, &deadline);
    poll_done.data = &b;
    ev_timer_init(&poll_done, check_done, 0.05, 0.05);
    ev_timer_start(loop, &poll_done);
    ev_signal_init(&sigterm, stop, SIGTERM);
    ev_signal_init(&sigint, stop, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_run(loop, 0);
    ret = (b.wait_removed == NULL || b.done) ? 0 : 1;
cleanup:
    qpc_mdns_free(mdns);
    return ret;
usage:
    fprintf(stderr, "usage: %s [-i iface]... [-H host-label] [-t seconds] [-r instance] [-6]\n",
            argv[0]);
    return 2;
}
