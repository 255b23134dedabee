/*
 * route.h: the routing table: for each destination peer, the best known way to reach it.
 *
 * The one idea: the table keeps exactly one route per destination, and every new
 * observation (an mDNS answer, a connection, a server's word, an envelope that arrived,
 * a route typed by the user) is offered to qpc_route_update, which keeps it only if it is
 * better by one fixed rule:
 *
 *   1. no route yet                                   -> take the new one
 *   2. the new route uses the same next hop           -> take it if it was seen no earlier
 *      (newer news about the same path supersedes, even when the path got longer)
 *   3. exactly one of the two is fresh                -> keep the fresh one
 *   4. the new route has fewer hops                   -> take it
 *   5. same hops and the new one was seen later       -> take it
 *   6. otherwise                                      -> keep the old one
 *
 * A route is fresh while now_ms - last_seen_ms <= stale_ms (set per table), so a stale
 * route loses to any fresh one whatever its hop count, and a stale offer never displaces
 * a fresh route.
 *
 * "Same next hop" means same kind, same via-peer key (for QPC_ROUTE_VIA_PEER) and same
 * address text. When a new route replaces an old one, a name it lacks ("") is carried
 * over (the name belongs to the destination, not the path); an unknown RTT is carried
 * over only from a route over the same next hop (an RTT belongs to the path).
 *
 * Stale routes are kept (a stale way is better than none) until qpc_route_expire
 * removes them. When a new route is kept, the table holds it as offered, with those
 * carried-over fields.
 *
 * Announced routes (source QPC_ROUTE_SRC_ANNOUNCE, and any route offered with
 * has_seqno) follow babeld's rules first (docs/routing.md, "Announces"): the table keeps
 * a feasibility distance (FD: seqno, metric) per destination, apart from the routes so it
 * outlives them, and an offer with seqno s and metric m (= hops) is feasible when there
 * is no FD, s is newer than the FD's seqno (RFC 1982), or s equals it and
 * m <= FD metric (the neighbour's own distance, m - 1, is strictly smaller than ours).
 * An unfeasible offer changes nothing. A feasible announced offer replaces the stored
 * route when that was learned from an envelope (which has no metric), goes through the
 * same next hop, is not fresh, is a claimed address (mDNS, server, typed) rather than a
 * link, or has more hops; a route over a live link (source direct) with fewer hops
 * stays, and yields to another link's route only if that is as short. An offer that is
 * not announced never displaces a fresh announced route unless it comes from a link
 * (source direct) with fewer hops, or the stored one is itself a link's route. Whenever an offer with a seqno
 * is kept, the FD becomes (s, m) if s is newer, or its metric min(FD metric, m).
 * A route learned from an envelope has hops QPC_ROUTE_HOPS_UNKNOWN: a fallback, never
 * better than a route with a metric.
 *
 * An announced route carries hold_ms: it is fresh while now - last_seen <= hold_ms (the
 * table's stale_ms for a route with hold_ms 0), and qpc_route_expire removes it once
 * twice that has passed (a few missed announce intervals).
 *
 * Pure logic: callers pass `now_ms`; nothing here does I/O or reads a clock.
 */
#ifndef QPC_ROUTE_H
#define QPC_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/encoding.h"

#define QPC_ROUTE_NAME_MAX 64          /* bytes of a display name, NUL included */
#define QPC_ROUTE_ADDR_MAX 256         /* bytes of a next-hop address text, NUL included */
#define QPC_ROUTE_RTT_UNKNOWN UINT32_MAX
#define QPC_ROUTE_STALE_MS_DEFAULT (5 * 60 * 1000)   /* 5 minutes without news */
/* Most destinations a table holds. Anyone can mint keys and send envelopes from them,
 * so a full table makes room by dropping the route heard from longest ago (typed
 * routes last); a newcomer older than every entry is not kept. */
#define QPC_ROUTE_TABLE_MAX 8192
/* hops of a route whose length nobody vouches for (learned from an envelope, whose
 * hop_count is not signed): it loses to every route with a metric. */
#define QPC_ROUTE_HOPS_UNKNOWN 255

/* How the next hop is reached. */
enum qpc_route_via {
    QPC_ROUTE_VIA_DIRECT = 0,   /* QUIC straight to next_hop ("192.168.1.42:7000") */
    QPC_ROUTE_VIA_PEER,         /* through another mesh peer, via_peer; next_hop optional */
    QPC_ROUTE_VIA_SERVER,       /* queued at a node, next_hop = "host:port" */
    QPC_ROUTE_VIA_RELAY,        /* relayed QUIC path through the node at next_hop */
};

/* Where the route was learned. */
enum qpc_route_source {
    QPC_ROUTE_SRC_MDNS = 0,     /* mDNS/DNS-SD answer on the local link */
    QPC_ROUTE_SRC_DIRECT,       /* we hold or held a connection to the destination */
    QPC_ROUTE_SRC_SERVER,       /* a server told us */
    QPC_ROUTE_SRC_ENVELOPE,     /* an envelope from the destination reached us this way */
    QPC_ROUTE_SRC_MANUAL,       /* typed by the user (/mesh server ...) */
    QPC_ROUTE_SRC_ANNOUNCE,     /* a signed announce of the destination came this way */
};

struct qpc_route {
    uint8_t dest[QPC_KEY_LEN];             /* destination peer's Ed25519 public key */
    char name[QPC_ROUTE_NAME_MAX];         /* display name, "" when unknown */
    enum qpc_route_via via;
    uint8_t via_peer[QPC_KEY_LEN];         /* next-hop peer when via == QPC_ROUTE_VIA_PEER */
    char next_hop[QPC_ROUTE_ADDR_MAX];     /* address text; required except for VIA_PEER */
    uint32_t hops;                         /* overlay links to dest: 1 = direct neighbour */
    uint32_t rtt_ms;                       /* QPC_ROUTE_RTT_UNKNOWN when not measured */
    uint64_t last_seen_ms;                 /* when this route was last confirmed */
    enum qpc_route_source source;
    bool has_seqno;                        /* the offer comes from an announce of dest: */
    uint32_t seqno;                        /*   its sequence number (feasibility) */
    uint64_t hold_ms;                      /* fresh this long without news; 0 = stale_ms */
    bool retracted;                        /* its next hop went away: stale until news */
};

/* A destination's feasibility distance: the best (seqno, metric) it was routed with. */
struct qpc_route_fd {
    uint8_t dest[QPC_KEY_LEN];
    uint32_t seqno;
    uint32_t metric;
    uint64_t updated_ms;                   /* when it last changed (for its expiry) */
};

struct qpc_route_table;

/*
 * Creates an empty table. A route not seen for stale_ms loses to any other route (rule 3);
 * 0 means QPC_ROUTE_STALE_MS_DEFAULT. Returns NULL when out of memory.
 */
struct qpc_route_table *qpc_route_table_new(uint64_t stale_ms);

/* Frees the table and its entries. NULL is a no-op. */
void qpc_route_table_free(struct qpc_route_table *table);

/*
 * Offers route r (copied) for r->dest and keeps it if it is better than the stored one by
 * the rule at the top of this file. *changed (if changed is not NULL) tells whether the
 * table now holds r (false also when the table is full of routes all seen more recently;
 * see QPC_ROUTE_TABLE_MAX, and when the offer is not feasible). Returns 0, QPC_ERR_INVALID
 * (via or source out of range, hops 0, an announce route without has_seqno,
 * name or next_hop not NUL-terminated within their arrays, next_hop empty for a kind that
 * needs an address, a VIA_PEER route through dest itself, or last_seen_ms later than
 * now_ms) or QPC_ERR_NOMEM.
 */
int qpc_route_update(struct qpc_route_table *table, const struct qpc_route *r, uint64_t now_ms,
                     bool *changed);

/*
 * Removes every route last seen more than max_age_ms before now_ms, and every route with
 * a hold_ms last seen more than 2 * hold_ms before. Returns the number removed.
 */
size_t qpc_route_expire(struct qpc_route_table *table, uint64_t now_ms, uint64_t max_age_ms);

/*
 * True when an announced offer for dest with seqno and metric would pass the
 * feasibility condition (no FD yet, or the rule at the top of this file).
 */
bool qpc_route_feasible(const struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN],
                        uint32_t seqno, uint32_t metric);

/* Copies dest's feasibility distance into *out. Returns 0 or QPC_ERR_NOT_FOUND. */
int qpc_route_fd_get(const struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN],
                     struct qpc_route_fd *out);

/*
 * Sets fd->dest's feasibility distance to *fd as it is (loading saved state). A full
 * table (QPC_ROUTE_TABLE_MAX distances) drops the one updated longest ago.
 * Returns 0, QPC_ERR_INVALID (metric 0) or QPC_ERR_NOMEM.
 */
int qpc_route_fd_set(struct qpc_route_table *table, const struct qpc_route_fd *fd);

/*
 * Copies every feasibility distance (any order) into a malloc'd array of *n (caller
 * frees; NULL when *n is 0). Returns 0 or QPC_ERR_NOMEM.
 */
int qpc_route_fd_list(const struct qpc_route_table *table, struct qpc_route_fd **out, size_t *n);

/* Removes feasibility distances not updated for more than max_age_ms. Returns how many. */
size_t qpc_route_fd_expire(struct qpc_route_table *table, uint64_t now_ms, uint64_t max_age_ms);

/*
 * Removes every route through the peer via_peer (via QPC_ROUTE_VIA_PEER). Feasibility
 * distances stay. Returns the number removed.
 */
size_t qpc_route_remove_via(struct qpc_route_table *table, const uint8_t via_peer[static QPC_KEY_LEN]);

/*
 * The link to peer went down: every route through it (via QPC_ROUTE_VIA_PEER), and the
 * route to peer itself when it is the link's own (source direct), are marked retracted:
 * kept and listed (a way that may come back, and what a restart restores) but never
 * fresh, so any feasible offer replaces them; a kept offer clears the mark. Returns how
 * many were marked.
 */
size_t qpc_route_retract(struct qpc_route_table *table, const uint8_t peer[static QPC_KEY_LEN]);

/* Copies the best route to dest into *out. Returns 0 or QPC_ERR_NOT_FOUND. */
int qpc_route_lookup(const struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN],
                     struct qpc_route *out);

/* Removes the route to dest. Returns 0 or QPC_ERR_NOT_FOUND. */
int qpc_route_remove(struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN]);

/* Number of destinations in the table. */
size_t qpc_route_count(const struct qpc_route_table *table);

/*
 * Copies every route, sorted for display: fewest hops first, then most recently seen
 * first (youngest age), then by destination key bytes so the order is total. On success
 * *out is a malloc'd array of *n routes (caller frees; NULL when *n is 0).
 * Returns 0 or QPC_ERR_NOMEM.
 */
int qpc_route_list(const struct qpc_route_table *table, struct qpc_route **out, size_t *n);

/* Short lowercase names for display ("direct", "peer", "server", "relay"; "mdns",
 * "direct", "server", "envelope", "manual", "announce"); "?" for an out-of-range value. */
const char *qpc_route_via_name(enum qpc_route_via via);
const char *qpc_route_source_name(enum qpc_route_source source);

#endif
