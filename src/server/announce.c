/*
 * announce.c: the node's mDNS presence (qpc_mdns, avahi-core embedded, no daemon).
 *
 * The node announces _quicprochat._udp.local. with TXT ver=1, server=<host:port> and
 * domain=<federation_domain> from start to shutdown, and browses for other nodes: a node
 * seen with a domain= becomes a federation destination (federation_learn). It also
 * browses for clients that listen for P2P (_quicprochat-p2p._udp), only to count them:
 * the metrics show what mDNS sees on the link (announce_seen).
 *
 * The one idea: server= must be an address a client on the link can dial, so a node
 * listening on the wildcard address announces the first IPv4 address of the interfaces
 * mDNS runs on (clients that only speak mDNS can still use the SRV host name).
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/mdns.h"
#include "announce.h"
#include "federation.h"

struct announce {
    struct qpc_mdns *mdns;
    ev_timer check_w;
    bool established;              /* probing is over and the records are published */
};

static bool iface_wanted(const struct server_settings *sc, const char *name)
{
    if (sc->mdns_interfaces.count == 0)
        return true;
    for (size_t i = 0; i < sc->mdns_interfaces.count; i++) {
        if (strcmp(sc->mdns_interfaces.items[i], name) == 0)
            return true;
    }
    return false;
}

bool announce_dial_host(const struct node *n, char *host, size_t len)
{
    struct ifaddrs *ifs = NULL, *ifa;
    uint16_t port;
    bool found = false;

    if (qpc_addr_parse(n->sc->listen, host, len, &port) == 0 &&
        strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
        return true;
    if (getifaddrs(&ifs) != 0)
        return false;
    for (ifa = ifs; ifa != NULL && !found; ifa = ifa->ifa_next) {
        if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != AF_INET ||
            (ifa->ifa_flags & IFF_LOOPBACK) || !(ifa->ifa_flags & IFF_UP) ||
            !iface_wanted(n->sc, ifa->ifa_name))
            continue;
        found = inet_ntop(AF_INET, &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr, host,
                          (socklen_t)len) != NULL;
    }
    freeifaddrs(ifs);
    return found;
}

static void on_service(const struct qpc_mdns_service *svc, bool added, void *arg)
{
    struct node *n = arg;

    if (svc->is_local || svc->domain == NULL || svc->ver == NULL ||
        strcmp(svc->ver, QPC_MDNS_TXT_VERSION) != 0)
        return;
    if (added && svc->address != NULL)
        federation_learn(n, svc->domain, svc->address);
    else if (!added)
        federation_forget(n, svc->domain, svc->address);
}

/* Peers are counted by the responder itself (qpc_mdns_seen_count); nothing to keep. */
static void on_peer(const struct qpc_mdns_service *svc, bool added, void *arg)
{
    (void)svc, (void)added, (void)arg;
}

/* Logs when probing is over and the records are published (and again after a rename). */
static void check_established(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct announce *a = w->data;
    bool up = qpc_mdns_is_established(a->mdns);

    if (up && !a->established)
        qpc_log_info("mdns", "established: %s._quicprochat._udp.local. on %s",
                     qpc_mdns_announced_name(a->mdns), qpc_mdns_host_name(a->mdns));
    a->established = up;
}

int announce_start(struct node *n)
{
    const struct server_settings *sc = n->sc;
    struct qpc_mdns_config mc = { 0 };
    char label[QPC_MDNS_HOST_LABEL_LEN], instance[QPC_MDNS_LABEL_MAX + 1], host[256];
    char server[QPC_ADDRESS_MAX + 1];
    const char **ifaces = NULL;
    struct announce *a;
    size_t i;
    int rc;

    if (!sc->mdns_enabled)
        return 0;
    if (sc->mdns_interfaces.count > 0) {
        ifaces = calloc(sc->mdns_interfaces.count + 1, sizeof(*ifaces));
        if (ifaces == NULL)
            return QPC_ERR_NOMEM;
        for (i = 0; i < sc->mdns_interfaces.count; i++)
            ifaces[i] = sc->mdns_interfaces.items[i];
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        free(ifaces);
        return QPC_ERR_NOMEM;
    }
    qpc_mdns_host_label_from_key(label, qpc_identity_public_key(n->identity));
    mc.host_label = label;
    mc.interfaces = ifaces;
    rc = qpc_mdns_new(n->loop, &mc, &a->mdns);
    free(ifaces);
    if (rc != 0) {
        free(a);
        return rc;
    }
    /* Instance: the first label of our domain ("node1" of "node1.mesh.local"). */
    snprintf(instance, sizeof(instance), "%.*s", (int)strcspn(sc->federation_domain, "."),
             sc->federation_domain);
    if (instance[0] == '\0')
        snprintf(instance, sizeof(instance), "%s", label);
    if (!announce_dial_host(n, host, sizeof(host)))
        snprintf(host, sizeof(host), "%s.local", label);
    snprintf(server, sizeof(server), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             n->client_port);
    rc = qpc_mdns_announce(a->mdns, instance, n->client_port, server, sc->federation_domain);
    if (rc == 0)
        rc = qpc_mdns_browse_start(a->mdns, on_service, n);
    if (rc != 0) {
        qpc_mdns_free(a->mdns);
        free(a);
        return rc;
    }
    qpc_log_info("mdns", "announcing %s._quicprochat._udp.local. server=%s domain=%s",
                 instance, server, sc->federation_domain);
    rc = qpc_mdns_browse_type_start(a->mdns, QPC_MDNS_P2P_SERVICE_TYPE, on_peer, n);
    if (rc != 0)   /* the count of peers is for metrics only: the node works without it */
        qpc_log_warn("mdns", "cannot browse for P2P peers: %s", qpc_strerror(rc));
    ev_timer_init(&a->check_w, check_established, 0.2, 0.5);
    a->check_w.data = a;
    ev_timer_start(n->loop, &a->check_w);
    n->announce = a;
    return 0;
}

bool announce_running(const struct node *n)
{
    return n->announce != NULL;
}

void announce_seen(const struct node *n, struct announce_seen *out)
{
    const struct announce *a = n->announce;

    *out = (struct announce_seen){ 0 };
    if (a == NULL)
        return;
    out->running = true;
    out->established = qpc_mdns_is_established(a->mdns);
    out->nodes = qpc_mdns_seen_count(a->mdns, QPC_MDNS_SERVICE_TYPE);
    out->peers = qpc_mdns_seen_count(a->mdns, QPC_MDNS_P2P_SERVICE_TYPE);
}

void announce_stop(struct node *n)
{
    struct announce *a = n->announce;

    if (a == NULL)
        return;
    ev_timer_stop(n->loop, &a->check_w);
    qpc_mdns_withdraw(a->mdns);
    qpc_mdns_free(a->mdns);   /* sends the goodbye packets before it returns */
    free(a);
    n->announce = NULL;
    qpc_log_info("mdns", "announcement withdrawn");
}
