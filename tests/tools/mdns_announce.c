/*
 * mdns_announce: test helper that announces one quicprochat node with qpc_mdns and
 * stays until SIGTERM/SIGINT, then withdraws (goodbye packets) and exits 0.
 *
 *   mdns_announce [-i IFACE]... [-H host-label] [-n instance] [-p port] -s host:port [-d domain]
 *   mdns_announce [-i IFACE]... [-H host-label] [-n instance] [-p port] -t TYPE [-x key=value]...
 *
 * The second form announces any service type with the TXT records given (a P2P peer:
 * -t _quicprochat-p2p._udp -x ver=1 -x peer=HEX -x p2p=host:port).
 * Prints "established <instance name> on <host name>" (once probing has finished; either
 * name may carry a collision suffix) and "withdrawn" on stdout, flushed, so scripts can wait for them.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>

#include "qpc/error.h"
#include "qpc/mdns.h"

#define MAX_IFACES 8

struct announcer {
    struct qpc_mdns *mdns;
    bool printed;
    ev_timer check;
    ev_signal sigterm, sigint;
};

static void check_established(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct announcer *a = w->data;

    (void)loop, (void)revents;
    if (qpc_mdns_is_established(a->mdns) && !a->printed) {
        printf("established %s on %s\n", qpc_mdns_announced_name(a->mdns),
               qpc_mdns_host_name(a->mdns));
        fflush(stdout);
        a->printed = true;
    } else if (!qpc_mdns_is_established(a->mdns)) {
        a->printed = false; /* renamed after a late collision: print the new name */
    }
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
    const char *instance = "qpc node", *server = NULL, *domain = NULL, *type = NULL;
    struct qpc_mdns_txt txt[QPC_MDNS_TXT_MAX];
    size_t n_txt = 0;
    char *eq;
    struct ev_loop *loop = EV_DEFAULT;
    struct announcer a = { 0 };
    long port = 7000;
    int n_ifaces = 0, opt, ret = 1, err;

    while ((opt = getopt(argc, argv, "i:H:n:p:s:d:t:x:6")) != -1) {
        switch (opt) {
        case 'i':
            if (n_ifaces == MAX_IFACES)
                goto usage;
            ifaces[n_ifaces++] = optarg;
            cfg.interfaces = ifaces;
            break;
        case 'H': cfg.host_label = optarg; break;
        case 'n': instance = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 's': server = optarg; break;
        case 'd': domain = optarg; break;
        case '6': cfg.use_ipv6 = true; break;
        case 't': type = optarg; break;
        case 'x':
            if (n_txt == QPC_MDNS_TXT_MAX || (eq = strchr(optarg, '=')) == NULL)
                goto usage;
            *eq = '\0';
            txt[n_txt++] = (struct qpc_mdns_txt){ optarg, eq + 1 };
            break;
        default: goto usage;
        }
    }
    if ((server == NULL) == (type == NULL) || port <= 0 || port > 65535)
        goto usage;
    const struct qpc_mdns_announcement ann = {
        .type = type, .instance = instance, .port = (uint16_t)port, .txt = txt, .txt_count = n_txt,
    };
    if ((err = qpc_mdns_new(loop, &cfg, &a.mdns)) != 0 ||
        (err = type != NULL ? qpc_mdns_announce_service(a.mdns, &ann)
                            : qpc_mdns_announce(a.mdns, instance, (uint16_t)port, server, domain)) != 0) {
        fprintf(stderr, "mdns_announce: %s\n", qpc_strerror(err));
        goto cleanup;
    }
    a.check.data = &a;
    ev_timer_init(&a.check, check_established, 0.1, 0.1);
    ev_timer_start(loop, &a.check);
    ev_signal_init(&a.sigterm, stop, SIGTERM);
    ev_signal_init(&a.sigint, stop, SIGINT);
    ev_signal_start(loop, &a.sigterm);
    ev_signal_start(loop, &a.sigint);
    ev_run(loop, 0);
    /* qpc_mdns_free sends the goodbyes before it returns. */
    ret = 0;
cleanup:
    qpc_mdns_free(a.mdns);
    if (ret == 0) {
        printf("withdrawn\n");
        fflush(stdout);
    }
    return ret;
usage:
    fprintf(stderr, "usage: %s [-i iface]... [-H host-label] [-n instance] [-p port] "
                    "(-s host:port [-d domain] | -t type [-x key=value]...) [-6]\n", argv[0]);
    return 2;
}
