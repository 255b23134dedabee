/*
 * routes.c: learning where peers are, from what the node observes (routes.h).
 *
 * The one idea: how much an observation is trusted depends on how it was made. A
 * handshake proves a key at an address; a server we are connected to or the user is
 * believed; an mDNS answer is a claim and may only fill gaps, never overwrite; an
 * envelope shows that its sender is reachable through the neighbour it came from. Each
 * kind has one function here, so what every source may teach is read in one place.
 */
#include <stdio.h>
#include <string.h>

#include "qpc/addr.h"
#include "routes.h"

void routes_offer(struct qpc_route_table *rt, const struct qpc_identity *id,
                  const uint8_t dest[static QPC_KEY_LEN], enum qpc_route_via via,
                  const uint8_t *via_peer, const char *next_hop, uint32_t hops,
                  enum qpc_route_source src, uint64_t now)
{
    struct qpc_route r;
    const struct qpc_peer *p = qpc_identity_peer_get(id, dest);

    if (memcmp(dest, qpc_identity_public_key(id), QPC_KEY_LEN) == 0)
        return;
    memset(&r, 0, sizeof(r));
    memcpy(r.dest, dest, QPC_KEY_LEN);
    if (p != NULL && p->name != NULL)
        snprintf(r.name, sizeof(r.name), "%s", p->name);
    r.via = via;
    if (via_peer != NULL)
        memcpy(r.via_peer, via_peer, QPC_KEY_LEN);
    snprintf(r.next_hop, sizeof(r.next_hop), "%s", next_hop != NULL ? next_hop : "");
    r.hops = hops;
    r.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    r.last_seen_ms = now;
    r.source = src;
    qpc_route_update(rt, &r, now, NULL);
}

bool routes_learn_link(struct qpc_identity *id, struct qpc_route_table *rt,
                       const uint8_t key[static QPC_KEY_LEN], const char *addr, bool relayed,
                       bool accepted, uint64_t now)
{
    bool changed;

    if (relayed) {
        changed = qpc_identity_peer_upsert(id, key, NULL, NULL, now, QPC_PEER_SOURCE_RELAY,
                                           QPC_PEER_CLIENT, NULL) == 0;
        routes_offer(rt, id, key, QPC_ROUTE_VIA_RELAY, NULL, addr, 2, QPC_ROUTE_SRC_DIRECT, now);
        return changed;
    }
    changed = qpc_identity_peer_upsert(id, key, NULL, accepted ? NULL : addr, now,
                                       QPC_PEER_SOURCE_DIRECT, QPC_PEER_CLIENT, NULL) == 0;
    routes_offer(rt, id, key, QPC_ROUTE_VIA_DIRECT, NULL, addr, 1, QPC_ROUTE_SRC_DIRECT, now);
    return changed;
}

bool routes_address_usable(const char *addr, enum qpc_peer_source src)
{
    return qpc_addr_valid(addr) && (src != QPC_PEER_SOURCE_SERVER || qpc_addr_is_numeric(addr));
}

bool routes_learn_told(struct qpc_identity *id, struct qpc_route_table *rt,
                       const uint8_t key[static QPC_KEY_LEN], const char *addr,
                       enum qpc_peer_source src, uint64_t now)
{
    bool changed = qpc_identity_peer_upsert(id, key, NULL, addr, now, src, QPC_PEER_CLIENT, NULL) == 0;

    routes_offer(rt, id, key, QPC_ROUTE_VIA_DIRECT, NULL, addr, 1,
                 src == QPC_PEER_SOURCE_MDNS     ? QPC_ROUTE_SRC_MDNS
                 : src == QPC_PEER_SOURCE_SERVER ? QPC_ROUTE_SRC_SERVER
                                                 : QPC_ROUTE_SRC_MANUAL,
                 now);
    return changed;
}

/* Directory entries known from mDNS claims alone (no handshake, not typed in). */
static size_t mdns_only_peers(const struct qpc_identity *id)
{
    const struct qpc_peer *p = NULL;
    size_t n = 0;

    while ((p = qpc_identity_peer_next(id, p)) != NULL)
        n += p->source == QPC_PEER_SOURCE_MDNS;
    return n;
}

bool routes_learn_mdns(struct qpc_identity *id, struct qpc_route_table *rt,
                       const uint8_t key[static QPC_KEY_LEN], const char *addr, uint64_t now)
{
    const struct qpc_peer *p = qpc_identity_peer_get(id, key);
    struct qpc_route r;
    bool changed = false;

    if (((p == NULL && mdns_only_peers(id) < ROUTES_MDNS_ONLY_MAX) ||
         (p != NULL && p->source == QPC_PEER_SOURCE_MDNS)) &&
        qpc_identity_peer_upsert(id, key, NULL, addr, now, QPC_PEER_SOURCE_MDNS, QPC_PEER_CLIENT, NULL) == 0)
        changed = true;
    if (qpc_route_lookup(rt, key, &r) != 0 || r.source == QPC_ROUTE_SRC_MDNS)
        routes_offer(rt, id, key, QPC_ROUTE_VIA_DIRECT, NULL, addr, 1, QPC_ROUTE_SRC_MDNS, now);
    return changed;
}

void routes_learn_envelope(const struct qpc_identity *id, struct qpc_route_table *rt,
                           const uint8_t sender[static QPC_KEY_LEN],
                           const uint8_t neighbour[static QPC_KEY_LEN], const char *neighbour_addr,
                           uint32_t hop_count, uint64_t now)
{
    routes_offer(rt, id, sender, QPC_ROUTE_VIA_PEER, neighbour, neighbour_addr, hop_count + 1,
                 QPC_ROUTE_SRC_ENVELOPE, now);
}

bool routes_next_peer(const struct qpc_route_table *rt, const uint8_t recipient[static QPC_KEY_LEN],
                      uint8_t via[static QPC_KEY_LEN])
{
    struct qpc_route r;

    if (qpc_route_lookup(rt, recipient, &r) != 0 || r.via != QPC_ROUTE_VIA_PEER)
        return false;
    memcpy(via, r.via_peer, QPC_KEY_LEN);
    return true;
}
