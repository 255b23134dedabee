/*
 * discover.c: finding nodes and peers nearby with mDNS (mdns.h, embedded avahi-core).
 *
 * The one idea: browsing runs for the whole life of the process, so `/mesh peers` answers
 * at once from what has been seen, like a neighbour table, instead of blocking for a scan.
 * Servers announce `_quicprochat._udp` with TXT ver=1, server=, domain=; we list them
 * with their TXT fields (the user picks one with `/mesh server host:port`). Peers are
 * listed from the live links and the peer directory (see docs/client.md for why the
 * client does not announce itself on mDNS in this version).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/mdns.h"

struct seen_node {
    char key[160];                     /* name@address:port, the table key */
    char name[QPC_MDNS_LABEL_MAX + 1];
    char address[64];
    uint16_t port;
    char ver[16], server[QPC_ADDRESS_MAX + 1], domain[256];
    uint64_t seen_ms;
    UT_hash_handle hh;
};

struct discover {
    struct qpc_mdns *mdns;
    struct seen_node *nodes;
};

static void browse_cb(const struct qpc_mdns_service *svc, bool added, void *arg)
{
    struct client *cl = arg;
    struct discover *d = cl->discover;
    struct seen_node *n = NULL;
    char key[160];

    snprintf(key, sizeof(key), "%s@%s:%u", svc->name, svc->address, svc->port);
    HASH_FIND_STR(d->nodes, key, n);
    if (!added) {
        if (n != NULL) {
            HASH_DEL(d->nodes, n);
            free(n);
        }
        return;
    }
    if (n == NULL) {
        n = calloc(1, sizeof(*n));
        if (n == NULL)
            return;
        snprintf(n->key, sizeof(n->key), "%s", key);
        HASH_ADD_STR(d->nodes, key, n);
    }
    snprintf(n->name, sizeof(n->name), "%s", svc->name);
    snprintf(n->address, sizeof(n->address), "%s", svc->address);
    n->port = svc->port;
    snprintf(n->ver, sizeof(n->ver), "%s", svc->ver ? svc->ver : "");
    snprintf(n->server, sizeof(n->server), "%s", svc->server ? svc->server : "");
    snprintf(n->domain, sizeof(n->domain), "%s", svc->domain ? svc->domain : "");
    n->seen_ms = now_ms();
    qpc_log_debug("discover", "node %s at %s:%u server=%s", n->name, n->address, n->port, n->server);
}

int discover_start(struct client *cl, char *err, size_t errlen)
{
    struct discover *d = calloc(1, sizeof(*d));
    struct qpc_mdns_config mc = { 0 };
    char label[QPC_MDNS_HOST_LABEL_LEN];
    const char *ifs[17] = { 0 };
    int rc;

    if (d == NULL)
        return QPC_ERR_NOMEM;
    for (size_t i = 0; i < cl->cc->mdns_interfaces.count && i < 16; i++)
        ifs[i] = cl->cc->mdns_interfaces.items[i];
    qpc_mdns_host_label_from_key(label, qpc_identity_public_key(cl->id));
    mc.host_label = label;
    mc.interfaces = cl->cc->mdns_interfaces.count > 0 ? ifs : NULL;
    rc = qpc_mdns_new(cl->loop, &mc, &d->mdns);
    if (rc == 0)
        rc = qpc_mdns_browse_start(d->mdns, browse_cb, cl);
    if (rc < 0) {
        snprintf(err, errlen, "mDNS unavailable: %s", qpc_strerror(rc));
        qpc_mdns_free(d->mdns);
        free(d);
        return rc;
    }
    cl->discover = d;
    return 0;
}

void discover_stop(struct client *cl)
{
    struct discover *d = cl->discover;
    struct seen_node *n, *tmp;

    if (d == NULL)
        return;
    qpc_mdns_free(d->mdns);
    HASH_ITER(hh, d->nodes, n, tmp) {
        HASH_DEL(d->nodes, n);
        free(n);
    }
    free(d);
    cl->discover = NULL;
}

size_t discover_print(struct client *cl)
{
    struct discover *d = cl->discover;
    struct seen_node *n, *tmp;
    const struct qpc_peer *p = NULL;
    size_t count = 0;
    uint64_t now = now_ms();

    if (d == NULL) {
        say(cl, "nodes: mDNS is off (mdns_enabled = false or unavailable)");
    } else {
        say(cl, "nodes (mDNS _quicprochat._udp):%s", d->nodes == NULL ? " none seen yet" : "");
        HASH_ITER(hh, d->nodes, n, tmp) {
            if (strcmp(n->ver, QPC_MDNS_TXT_VERSION) != 0)
                continue;
            say(cl, "  node %s  %s:%u  ver=%s server=%s domain=%s", n->name, n->address, n->port,
                n->ver, n->server, n->domain);
            count++;
        }
    }
    say(cl, "peers:%s", qpc_identity_peer_count(cl->id) == 0 && node_link_count(cl) == 0 ? " none known" : "");
    node_describe_links(cl);
    while ((p = qpc_identity_peer_next(cl->id, p)) != NULL) {
        if (node_peer_connected(cl, p->key))
            continue;
        say(cl, "  peer %s  %s %s (%s, seen %llus ago)", p->id, qpc_peer_kind_name(p->kind),
            p->address_count > 0 ? p->addresses[0] : "-", qpc_peer_source_name(p->source),
            (unsigned long long)(now > p->last_seen_ms ? (now - p->last_seen_ms) / 1000 : 0));
        count++;
    }
    return count;
}
