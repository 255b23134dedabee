/*
 * discover.c: finding nodes and peers nearby with mDNS (mdns.h, embedded avahi-core),
 * and announcing this peer so that others find it without a server.
 *
 * The one idea: browsing runs for the whole life of the process, so `/mesh peers` answers
 * at once from what has been seen, like a neighbour table, instead of blocking for a scan.
 * Two service types are browsed: servers announce `_quicprochat._udp` with TXT ver=1,
 * server=, domain= (listed with their TXT fields; the user picks one with `/mesh server`),
 * and clients that listen for P2P announce `_quicprochat-p2p._udp` with TXT ver=1,
 * peer=<hex key>, p2p=<host:port>. A peer's announcement is only a claim: it is handed
 * to the node as an address to try (node_peer_discovered), and the TLS handshake with the
 * claimed key is what proves who answers there.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discover.h"
#include "qpc/addr.h"
#include "node.h"
#include "output.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/mdns.h"

#define REANNOUNCE_CHECK_S 5.0   /* how often the announced p2p= host is checked */
#define NODE_TXT_SHOWN 512       /* bytes of a node's TXT pairs kept for /mesh peers */

struct seen_node {
    char key[160];                     /* name@address:port, the table key */
    char name[QPC_MDNS_LABEL_MAX + 1];
    char address[64];
    uint16_t port;
    char ver[16];
    char txt[NODE_TXT_SHOWN];          /* every TXT pair, "k=v k=v", control bytes replaced */
    char client[QPC_ADDRESS_MAX + 1];  /* where clients connect (server=, else the SRV), "" if none */
    bool hinted;                       /* the REPL was told how to use it */
    UT_hash_handle hh;
};

struct seen_peer {
    char key[QPC_MDNS_LABEL_MAX + 16]; /* instance name%ifindex, the table key */
    uint8_t peer[QPC_KEY_LEN];         /* as claimed in peer= */
    char address[QPC_ADDRESS_MAX + 1]; /* what we dial */
    uint64_t seen_ms;
    UT_hash_handle hh;
};

struct discover {
    struct qpc_mdns *mdns;
    struct seen_node *nodes;
    struct seen_peer *peers;
    ev_timer announce_check;
    char p2p[QPC_ADDRESS_MAX + 1];     /* p2p= announced now, "" while not announcing */
};

/* Copies src into dst, replacing control bytes: a host on the link chose these. */
static void clean_copy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;

    for (; src != NULL && src[i] != '\0' && i + 1 < cap; i++)
        dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
    if (cap > 0)
        dst[i] = '\0';
}

static bool node_client_address(const struct qpc_mdns_service *svc, char *out, size_t cap);

static void node_cb(const struct qpc_mdns_service *svc, bool added, void *arg)
{
    struct client *cl = arg;
    struct discover *d = cl->discover;
    struct seen_node *n = NULL;
    char key[160], txt[NODE_TXT_SHOWN] = "";
    size_t used = 0;

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
    clean_copy(n->name, sizeof(n->name), svc->name);
    clean_copy(n->address, sizeof(n->address), svc->address);
    n->port = svc->port;
    clean_copy(n->ver, sizeof(n->ver), svc->ver);
    for (size_t i = 0; i < svc->txt_count && used + 1 < sizeof(txt); i++)
        used += (size_t)snprintf(txt + used, sizeof(txt) - used, "%s%s=%s", used > 0 ? " " : "",
                                 svc->txt[i].key, svc->txt[i].value);
    clean_copy(n->txt, sizeof(n->txt), txt);
    qpc_log_debug("discover", "node %s at %s:%u %s", n->name, n->address, n->port, n->txt);
    /* No server to use yet: say how to use the one that just showed up (once per node). */
    if (!node_client_address(svc, n->client, sizeof(n->client)))
        n->client[0] = '\0';
    if (!n->hinted && cl->session == NULL && cl->out_mode == OUT_REPL &&
        strcmp(n->ver, QPC_MDNS_TXT_VERSION) == 0 && n->client[0] != '\0') {
        n->hinted = true;
        say(cl, "found a node on the link: %s at %s; /connect %s uses it", n->name, n->client, n->client);
    }
}

static bool node_client_address(const struct qpc_mdns_service *svc, char *out, size_t cap)
{
    const char *server = qpc_mdns_service_txt(svc, "server");

    if (server != NULL && qpc_addr_is_numeric(server) && qpc_addr_valid(server)) {
        snprintf(out, cap, "%s", server);
        return true;
    }
    if (svc->address == NULL || svc->port == 0)
        return false;
    snprintf(out, cap, strchr(svc->address, ':') ? "[%s]:%u" : "%s:%u", svc->address, svc->port);
    return qpc_addr_valid(out);
}

int discover_node_address(const struct client *cl, char *out, size_t cap)
{
    const struct seen_node *n, *tmp;

    if (cl->discover == NULL)
        return QPC_ERR_NOT_FOUND;
    HASH_ITER(hh, cl->discover->nodes, n, tmp) {
        if (n->client[0] != '\0') {
            snprintf(out, cap, "%s", n->client);
            return 0;
        }
    }
    return QPC_ERR_NOT_FOUND;
}

/*
 * The address to dial for a peer's announcement: p2p= when it is a numeric host:port
 * (a name would make us send DNS queries a stranger chose), else the address mDNS
 * resolved with the SRV port. Returns false when neither is usable.
 */
static bool peer_dial_address(const struct qpc_mdns_service *svc, char *out, size_t cap)
{
    const char *p2p = qpc_mdns_service_txt(svc, "p2p");

    if (p2p != NULL && qpc_addr_is_numeric(p2p)) {
        snprintf(out, cap, "%s", p2p);
        return qpc_addr_valid(out);
    }
    if (svc->address == NULL || svc->port == 0)
        return false;
    snprintf(out, cap, strchr(svc->address, ':') ? "[%s]:%u" : "%s:%u", svc->address, svc->port);
    return qpc_addr_valid(out);
}

static void peer_cb(const struct qpc_mdns_service *svc, bool added, void *arg)
{
    struct client *cl = arg;
    struct discover *d = cl->discover;
    struct seen_peer *sp = NULL;
    const char *claimed = qpc_mdns_service_txt(svc, "peer");
    char key[sizeof(sp->key)];
    uint8_t peer[QPC_KEY_LEN];

    snprintf(key, sizeof(key), "%s%%%d", svc->name, svc->ifindex);
    HASH_FIND_STR(d->peers, key, sp);
    if (!added) {
        if (sp != NULL) {
            HASH_DEL(d->peers, sp);
            free(sp);
        }
        return;
    }
    if (svc->is_local || svc->ver == NULL || strcmp(svc->ver, QPC_MDNS_TXT_VERSION) != 0 ||
        claimed == NULL || strlen(claimed) != 2 * QPC_KEY_LEN || qpc_key_from_hex(peer, claimed) != 0 ||
        memcmp(peer, qpc_identity_public_key(cl->id), QPC_KEY_LEN) == 0)
        return;
    if (sp == NULL) {
        sp = calloc(1, sizeof(*sp));
        if (sp == NULL)
            return;
        snprintf(sp->key, sizeof(sp->key), "%s", key);
        HASH_ADD_STR(d->peers, key, sp);
    }
    memcpy(sp->peer, peer, QPC_KEY_LEN);
    sp->seen_ms = now_ms();
    if (!peer_dial_address(svc, sp->address, sizeof(sp->address))) {
        HASH_DEL(d->peers, sp);
        free(sp);
        return;
    }
    qpc_log_debug("discover", "peer %.12s claims %s", claimed, sp->address);
    node_peer_discovered(cl, peer, sp->address);
}

static bool iface_wanted(const struct client *cl, const char *name)
{
    if (cl->cc->mdns_interfaces.count == 0)
        return true;
    for (size_t i = 0; i < cl->cc->mdns_interfaces.count; i++)
        if (strcmp(cl->cc->mdns_interfaces.items[i], name) == 0)
            return true;
    return false;
}

/*
 * The host part of p2p=: the listen address, or for a wildcard listener the first IPv4
 * address of an interface mDNS runs on. Never a loopback address: nobody else can dial
 * it, so a node listening on loopback only is not announced (false).
 */
static bool p2p_host(const struct client *cl, char *host, size_t cap)
{
    struct ifaddrs *ifs = NULL;
    uint16_t port;
    bool found = false;

    if (qpc_addr_parse(cl->cc->listen, host, cap, &port) == 0 && strcmp(host, "0.0.0.0") != 0 &&
        strcmp(host, "::") != 0)
        return strncmp(host, "127.", 4) != 0 && strcmp(host, "::1") != 0 && strcmp(host, "localhost") != 0;
    if (getifaddrs(&ifs) != 0)
        return false;
    for (struct ifaddrs *i = ifs; i != NULL && !found; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP) || !iface_wanted(cl, i->ifa_name))
            continue;
        found = inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, host, (socklen_t)cap) != NULL;
    }
    freeifaddrs(ifs);
    return found;
}

/* Announces (again) when the p2p= text changes: first start, or an address came or went. */
static void announce_update(struct client *cl)
{
    struct discover *d = cl->discover;
    char host[QPC_ADDRESS_MAX + 1], p2p[QPC_ADDRESS_MAX + 1], instance[QPC_MDNS_LABEL_MAX + 1];
    const char *id = qpc_identity_peer_id(cl->id);
    int rc;

    if (cl->ep == NULL || cl->listen_port == 0)
        return;
    if (!p2p_host(cl, host, sizeof(host)))
        host[0] = '\0';
    snprintf(p2p, sizeof(p2p), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, cl->listen_port);
    if (strcmp(p2p, d->p2p) == 0 || (host[0] == '\0' && d->p2p[0] == '\0'))
        return;
    if (host[0] == '\0') {
        qpc_mdns_withdraw(d->mdns);
        d->p2p[0] = '\0';
        return;
    }
    {
        const struct qpc_mdns_txt txt[] = {
            { "ver", QPC_MDNS_TXT_VERSION }, { "peer", id }, { "p2p", p2p },
        };
        const struct qpc_mdns_announcement a = {
            .type = QPC_MDNS_P2P_SERVICE_TYPE, .instance = instance, .port = cl->listen_port,
            .txt = txt, .txt_count = 3,
        };

        snprintf(instance, sizeof(instance), "peer-%.12s", id);
        rc = qpc_mdns_announce_service(d->mdns, &a);
    }
    if (rc < 0) {
        qpc_log_warn("discover", "cannot announce %s: %s", p2p, qpc_strerror(rc));
        return;
    }
    snprintf(d->p2p, sizeof(d->p2p), "%s", p2p);
    qpc_log_info("discover", "announcing %s.%s.local. p2p=%s", instance, QPC_MDNS_P2P_SERVICE_TYPE, p2p);
}

static void announce_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    announce_update(w->data);
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
        rc = qpc_mdns_browse_start(d->mdns, node_cb, cl);
    if (rc == 0)
        rc = qpc_mdns_browse_type_start(d->mdns, QPC_MDNS_P2P_SERVICE_TYPE, peer_cb, cl);
    if (rc < 0) {
        snprintf(err, errlen, "mDNS unavailable: %s", qpc_strerror(rc));
        qpc_mdns_free(d->mdns);
        free(d);
        return rc;
    }
    cl->discover = d;
    announce_update(cl);
    ev_timer_init(&d->announce_check, announce_check_cb, REANNOUNCE_CHECK_S, REANNOUNCE_CHECK_S);
    d->announce_check.data = cl;
    ev_timer_start(cl->loop, &d->announce_check);
    return 0;
}

void discover_stop(struct client *cl)
{
    struct discover *d = cl->discover;
    struct seen_node *n, *tmp;
    struct seen_peer *sp, *sptmp;

    if (d == NULL)
        return;
    ev_timer_stop(cl->loop, &d->announce_check);
    qpc_mdns_free(d->mdns);   /* withdraws our announcement: goodbye packets */
    HASH_ITER(hh, d->nodes, n, tmp) {
        HASH_DEL(d->nodes, n);
        free(n);
    }
    HASH_ITER(hh, d->peers, sp, sptmp) {
        HASH_DEL(d->peers, sp);
        free(sp);
    }
    free(d);
    cl->discover = NULL;
}

static const struct seen_peer *seen_by_mdns(const struct discover *d, const uint8_t key[static QPC_KEY_LEN])
{
    const struct seen_peer *sp, *tmp;

    if (d == NULL)
        return NULL;
    HASH_ITER(hh, d->peers, sp, tmp) {
        if (memcmp(sp->peer, key, QPC_KEY_LEN) == 0)
            return sp;
    }
    return NULL;
}

static const char *peer_name(const struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    const struct qpc_peer *p = qpc_identity_peer_get(cl->id, key);

    return p != NULL && p->name != NULL ? p->name : "-";
}

size_t discover_print(struct client *cl)
{
    struct discover *d = cl->discover;
    struct seen_node *n, *tmp;
    struct seen_peer *sp, *sptmp;
    const struct qpc_peer *p = NULL;
    size_t count = 0, shown;
    uint64_t now = now_ms();
    char who[13];

    if (d == NULL) {
        say(cl, "nodes: mDNS is off (mdns_enabled = false or unavailable)");
    } else {
        say(cl, "nodes (mDNS %s):%s", QPC_MDNS_SERVICE_TYPE, d->nodes == NULL ? " none seen yet" : "");
        HASH_ITER(hh, d->nodes, n, tmp) {
            if (strcmp(n->ver, QPC_MDNS_TXT_VERSION) != 0)
                continue;
            say(cl, "  node %s  %s:%u  %s", n->name, n->address, n->port, n->txt);
            count++;
        }
    }
    /* Each peer once: a live link, else what mDNS says now, else the directory. */
    shown = node_link_count(cl);
    say(cl, "peers:%s", shown == 0 && qpc_identity_peer_count(cl->id) == 0 && (d == NULL || d->peers == NULL)
                            ? " none known" : "");
    node_describe_links(cl);
    count += shown;
    if (d != NULL) {
        HASH_ITER(hh, d->peers, sp, sptmp) {
            if (node_peer_connected(cl, sp->peer) || seen_by_mdns(d, sp->peer) != sp)
                continue;
            short_id(who, sp->peer);
            say(cl, "  peer %s  %s  mdns %s (seen %llus ago)", who, peer_name(cl, sp->peer), sp->address,
                (unsigned long long)(now > sp->seen_ms ? (now - sp->seen_ms) / 1000 : 0));
            count++;
        }
    }
    while ((p = qpc_identity_peer_next(cl->id, p)) != NULL) {
        if (node_peer_connected(cl, p->key) || seen_by_mdns(d, p->key) != NULL)
            continue;
        short_id(who, p->key);
        say(cl, "  peer %s  %s  %s %s (%s, seen %llus ago)", who, p->name != NULL ? p->name : "-",
            qpc_peer_kind_name(p->kind), p->address_count > 0 ? p->addresses[0] : "-",
            qpc_peer_source_name(p->source),
            (unsigned long long)(now > p->last_seen_ms ? (now - p->last_seen_ms) / 1000 : 0));
        count++;
    }
    return count;
}
