/*
 * routes.h: what the node learns about where peers are, and which way an envelope goes.
 *
 * Every observation of a peer (a link came up, a server told us, mDNS announced it, a
 * signed announce came through a neighbour, an envelope arrived through one) is turned here into a peer directory entry
 * (identity.h) and a route offer (route.h, whose fixed rule picks the better route). The
 * rules that keep a claim from displacing verified knowledge live here: an mDNS
 * announcement is a claim anyone on the link can make, so it adds only what nothing
 * better-founded says, and a server's word is taken only as a numeric address.
 *
 * Pure logic over plain state: the directory and the table are arguments, now is an
 * argument; nothing is dialled or sent. Each learn function returns true when the peer
 * directory changed (the caller saves it later).
 */
#ifndef QPC_CLIENT_ROUTES_H
#define QPC_CLIENT_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "qpc/announce.h"
#include "qpc/identity.h"
#include "qpc/route.h"

#define ROUTES_MDNS_ONLY_MAX 256                  /* directory entries mDNS claims alone may create */
#define ROUTES_MAX_AGE_MS (24u * 3600 * 1000)     /* routes unheard of this long are dropped */
#define ROUTES_FD_MAX_AGE_MS (24u * 3600 * 1000)  /* and feasibility distances not updated */

/*
 * Offers a route to dest (never to myself): via, via_peer (may be NULL), next_hop text
 * (may be NULL), hops and source, seen at now; the display name comes from the directory.
 */
void routes_offer(struct qpc_route_table *rt, const struct qpc_identity *id,
                  const uint8_t dest[static QPC_KEY_LEN], enum qpc_route_via via,
                  const uint8_t *via_peer, const char *next_hop, uint32_t hops,
                  enum qpc_route_source src, uint64_t now);

/*
 * A link to key came up (the handshake proved the key). Direct: the directory learns
 * addr (unless we accepted the connection: its remote port is not the peer's listening
 * port) and the route is direct, 1 hop. Relayed: the directory notes a relay sighting
 * without an address and the route goes through the relay at addr, 2 hops.
 */
bool routes_learn_link(struct qpc_identity *id, struct qpc_route_table *rt,
                       const uint8_t key[static QPC_KEY_LEN], const char *addr, bool relayed,
                       bool accepted, uint64_t now);

/*
 * False when an address told by src must not be used at all: not a valid host:port, or a
 * name from a server (dialling it would have us send DNS queries the server chose).
 */
bool routes_address_usable(const char *addr, enum qpc_peer_source src);

/*
 * Someone we trust to say so (a server, the user) says key is at addr (usable, see
 * routes_address_usable): directory entry with that source, direct route of 1 hop.
 */
bool routes_learn_told(struct qpc_identity *id, struct qpc_route_table *rt,
                       const uint8_t key[static QPC_KEY_LEN], const char *addr,
                       enum qpc_peer_source src, uint64_t now);

/*
 * mDNS announced key at addr: a claim. It adds a directory entry only for an unknown
 * peer (while fewer than ROUTES_MDNS_ONLY_MAX entries are mDNS-only) or an address to
 * an entry that is itself mDNS-only, and a route only where there is none or only an
 * mDNS one. Dialling with the claimed key as the expected TLS key is what proves it.
 */
bool routes_learn_mdns(struct qpc_identity *id, struct qpc_route_table *rt,
                       const uint8_t key[static QPC_KEY_LEN], const char *addr, uint64_t now);

/*
 * An envelope from sender arrived through the neighbour (another peer) at
 * neighbour_addr: sender is reachable through that neighbour, at a distance nobody
 * vouches for (hop_count is not signed), so the route has QPC_ROUTE_HOPS_UNKNOWN hops:
 * a fallback where no announce says better.
 */
void routes_learn_envelope(const struct qpc_identity *id, struct qpc_route_table *rt,
                           const uint8_t sender[static QPC_KEY_LEN],
                           const uint8_t neighbour[static QPC_KEY_LEN], const char *neighbour_addr,
                           uint64_t now);

/* How long a route from an announce with this interval stays fresh: two intervals and a
 * little (intervals above ROUTES_INTERVAL_MAX_S count as that). */
#define ROUTES_INTERVAL_MAX_S 3600
uint64_t routes_hold_ms(uint32_t interval_s);

/*
 * A verified announce a (its hops as received) came on a link to neighbour at
 * link_addr (relayed: through the server at link_addr). From the origin itself (hops 0)
 * it refreshes the link's own route (1 hop direct, 2 relayed); from another neighbour it
 * offers a route through it of a->hops + 1 hops. Both carry a's seqno, so the table's
 * feasibility condition applies. Returns true when the table now holds the offer.
 */
bool routes_learn_announce(struct qpc_route_table *rt, const struct qpc_identity *id,
                           const struct qpc_announce *a, const uint8_t neighbour[static QPC_KEY_LEN],
                           const char *link_addr, bool relayed, uint64_t now);

/*
 * A link to key went down. With another still up (linked true) nothing changes; with
 * none left, the routes through key, and the link's own route to key, are retracted
 * (qpc_route_retract: listed, restored after a restart, but stale, so the first feasible
 * announce through another neighbour takes over). Returns how many.
 */
size_t routes_link_gone(struct qpc_route_table *rt, const uint8_t key[static QPC_KEY_LEN], bool linked);

/*
 * Resolves a typed id prefix against the routing table, for peers the directory does not
 * know (reached through announces): at least min hex digits, exactly one destination
 * starting with them. Returns 0 (key filled), QPC_ERR_NOT_FOUND, QPC_ERR_AMBIGUOUS or
 * QPC_ERR_INVALID (not hex, or shorter than min).
 */
int routes_resolve_prefix(const struct qpc_route_table *rt, const char *text, size_t min,
                          uint8_t key[static QPC_KEY_LEN]);

/*
 * Who the user means, over the directory first (contacts_resolve: names, prefixes, full
 * keys) and then the routing table, for peers known only from announces or traffic:
 * there a prefix needs CONTACTS_MDNS_PREFIX_MIN hex digits (anyone can mint a key with a
 * short prefix and announce it). Returns and explains (err, may be NULL) as
 * contacts_resolve does.
 */
int routes_resolve(const struct qpc_identity *id, const struct qpc_route_table *rt, const char *text,
                   uint8_t key[static QPC_KEY_LEN], char *err, size_t errlen);

/*
 * The peer to hand an envelope for recipient to when recipient itself has no link: the
 * next peer of its route, when the route goes through a peer. Returns true and fills
 * via, or false.
 */
bool routes_next_peer(const struct qpc_route_table *rt, const uint8_t recipient[static QPC_KEY_LEN],
                      uint8_t via[static QPC_KEY_LEN]);

#endif
