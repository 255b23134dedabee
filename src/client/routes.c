/*
 * routes.c: learning where peers are, from what the node observes (routes.h).
 *
 * The one idea: how much an observation is trusted depends on how it was made. A
 * handshake proves a key at an address; a server we are connected to or the user is
 * believed; an mDNS answer is a claim and may only fill gaps, never overwrite; a signed
 * announce gives a distance the forwarders could not shorten (its hash chain) and a
 * seqno for the feasibility condition; an envelope shows that its sender is reachable
 * through the neighbour it came from, at a distance nobody vouches for. Each
 * kind has one function here, so what every source may teach is read in one place.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qpc/addr.h"
#include "contacts.h"
#include "qpc/error.h"
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
                           uint64_t now)
{
    routes_offer(rt, id, sender, QPC_ROUTE_VIA_PEER, neighbour, neighbour_addr, QPC_ROUTE_HOPS_UNKNOWN,
                 QPC_ROUTE_SRC_ENVELOPE, now);
}

uint64_t routes_hold_ms(uint32_t interval_s)
{
    uint64_t i = interval_s > ROUTES_INTERVAL_MAX_S ? ROUTES_INTERVAL_MAX_S : interval_s;

    return 2 * i * 1000 + 2000;
}

bool routes_learn_announce(struct qpc_route_table *rt, const struct qpc_identity *id,
                           const struct qpc_announce *a, const uint8_t neighbour[static QPC_KEY_LEN],
                           const char *link_addr, bool relayed, uint64_t now)
{
    const struct qpc_peer *p = qpc_identity_peer_get(id, a->key);
    struct qpc_route r;
    bool changed = false;

    if (memcmp(a->key, qpc_identity_public_key(id), QPC_KEY_LEN) == 0)
        return false;
    memset(&r, 0, sizeof(r));
    memcpy(r.dest, a->key, QPC_KEY_LEN);
    if (p != NULL && p->name != NULL)
        snprintf(r.name, sizeof(r.name), "%s", p->name);
    snprintf(r.next_hop, sizeof(r.next_hop), "%s", link_addr != NULL ? link_addr : "");
    r.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    r.last_seen_ms = now;
    r.has_seqno = true;
    r.seqno = a->seqno;
    if (memcmp(neighbour, a->key, QPC_KEY_LEN) == 0) {
        /* The origin on its own link: the link's route, refreshed and given a seqno. */
        r.via = relayed ? QPC_ROUTE_VIA_RELAY : QPC_ROUTE_VIA_DIRECT;
        r.hops = relayed ? 2 : 1;
        r.source = QPC_ROUTE_SRC_DIRECT;
    } else {
        r.via = QPC_ROUTE_VIA_PEER;
        memcpy(r.via_peer, neighbour, QPC_KEY_LEN);
        r.hops = a->hops + 1;
        r.source = QPC_ROUTE_SRC_ANNOUNCE;
        r.hold_ms = routes_hold_ms(a->interval_s);
    }
    return qpc_route_update(rt, &r, now, &changed) == 0 && changed;
}

size_t routes_link_gone(struct qpc_route_table *rt, const uint8_t key[static QPC_KEY_LEN], bool linked)
{
    if (linked)
        return 0;   /* one of several closed (a duplicate): the neighbour is still there */
    return qpc_route_retract(rt, key);
}

int routes_resolve(const struct qpc_identity *id, const struct qpc_route_table *rt, const char *text,
                   uint8_t key[static QPC_KEY_LEN], char *err, size_t errlen)
{
    int rc = contacts_resolve(id, text, key, NULL, err, errlen);
    size_t len = text != NULL ? strlen(text) : 0;

    if (rc != QPC_ERR_NOT_FOUND || rt == NULL)
        return rc;
    switch (routes_resolve_prefix(rt, text, CONTACTS_PREFIX_MIN, key)) {
    case 0:
        if (len >= CONTACTS_MDNS_PREFIX_MIN)
            return 0;
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "'%s' matches a peer known only from the mesh's announces: type at "
                     "least %d hex digits of its id (/mesh route lists them)", text, CONTACTS_MDNS_PREFIX_MIN);
        return QPC_ERR_REFUSED;
    case QPC_ERR_AMBIGUOUS:
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "'%s' matches several peers in the routing table: type more of the id "
                     "(/mesh route lists them)", text);
        return QPC_ERR_AMBIGUOUS;
    default:
        return rc;   /* contacts' own explanation stands */
    }
}

int routes_resolve_prefix(const struct qpc_route_table *rt, const char *text, size_t min,
                          uint8_t key[static QPC_KEY_LEN])
{
    struct qpc_route *all = NULL;
    size_t n = 0, len = text != NULL ? strlen(text) : 0, found = 0;
    char hex[QPC_KEY_HEX_LEN];
    int rc;

    if (len < min || len > QPC_KEY_LEN * 2)
        return QPC_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)text[i]))
            return QPC_ERR_INVALID;
    if ((rc = qpc_route_list(rt, &all, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        qpc_key_to_hex(hex, all[i].dest);
        if (strncasecmp(hex, text, len) == 0 && found++ == 0)
            memcpy(key, all[i].dest, QPC_KEY_LEN);
    }
    free(all);
    return found == 0 ? QPC_ERR_NOT_FOUND : found > 1 ? QPC_ERR_AMBIGUOUS : 0;
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
