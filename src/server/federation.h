/*
 * federation.h: this node's side of federation: where a domain lives
 * (resolve_destination), the nodes learned from mDNS, the outbox pump that carries
 * deferred envelopes to other nodes on outgoing links, and broadcasts forwarded to
 * them. Incoming federation requests are federation_service.c's.
 */
#ifndef QPC_SERVER_FEDERATION_H
#define QPC_SERVER_FEDERATION_H

#include <stddef.h>
#include <stdint.h>

#include "qpc/announce.h"
#include "qpc/envelope.h"
#include "qpc/proto.h"
#include "node.h"

struct session;
struct link;

enum dest_kind { DEST_LOCAL, DEST_REMOTE, DEST_UNKNOWN };

/*
 * resolve_destination: where a recipient of `domain` lives. Empty or our own domain is
 * DEST_LOCAL; a domain of a static federation peer or of a node learned from mDNS is
 * DEST_REMOTE (its federation "host:port" copied to addr when addr is not NULL);
 * anything else, or any remote domain while federation is off, is DEST_UNKNOWN.
 */
enum dest_kind resolve_destination(const struct node *n, const char *domain, char *addr,
                                   size_t addrlen);

/* Creates the (empty) tables of links and learned nodes. 0 or QPC_ERR_NOMEM. */
int federation_start(struct node *n);
/* Frees every link and learned node; the federation endpoint must be closed first
 * (its links' rows go back to the outbox as their connections end). */
void federation_stop(struct node *n);

/* Sends due outbox rows to their nodes (relay_enqueue) over n->fed_ep; called by the
 * maintenance timer and after a commit that added outbox rows. No-op while federation
 * is off or the node stops. */
void federation_pump(struct node *n, uint64_t now_ms);

/* Records a node seen in mDNS (domain -> host, dialled at the federation port). At
 * most a bounded number are kept: anyone on the link can announce. */
void federation_learn(struct node *n, const char *domain, const char *host);
/* Forgets a learned node (mDNS goodbye or expiry) and retires its link, when host (the
 * announcer's address; NULL: unknown) is the address it was learned at. Configured
 * domains and keys pinned for a domain are never forgotten. */
void federation_forget(struct node *n, const char *domain, const char *host);

/*
 * A proven federated node (s->fed_domain set) sent its table of reachable domains:
 * routes through it are learned (its metric + 1, at most 8 hops), refreshed, or dropped
 * when it no longer lists them. Domains this node reaches itself are never routed.
 */
void federation_routes_update(struct session *s, const Qpc__DomainRouteUpdate *u);
/* The accepted session of a federated node ended: routes through it are gone. */
void federation_peer_closed(struct session *s);

/*
 * Whether an envelope (id) for domain, handed over by the federated node of session
 * from, may go on from here: -1 yes (into the outbox, towards the next hop), else the
 * status to answer: UNKNOWN_DOMAIN (from did not prove its domain, no route, or the
 * route leads back to from) or DEFERRED (this node handed that id on within the last
 * ten minutes: it went round a loop while routes changed; the sender retries later).
 */
int federation_forward_status(const struct node *n, const struct session *from,
                              const char *domain, const uint8_t id[static QPC_ID_LEN]);

/* Links to other nodes that are open now. */
size_t federation_links_up(const struct node *n);

/* What metrics.c shows per peer domain. */
struct federation_peer_state {
    const char *domain;
    const char *via;            /* NULL: a link of our own; else the next hop of a route */
    bool up;                    /* link open (route: live) */
    uint64_t last_ok_ms;        /* wall clock of the last open or answer, 0 never */
    uint64_t failures;          /* connections that never came up */
    uint32_t metric;            /* hops */
    size_t outbox_waiting;      /* rows taken onto the link */
    bool static_peer;           /* a `peers` link: domain holds its address */
};
/* Calls fn for every link and route (borrowed strings, valid during the call). */
void federation_foreach_peer(const struct node *n,
                             void (*fn)(const struct federation_peer_state *st, void *arg),
                             void *arg);

/*
 * Hands an encoded broadcast envelope (already checked and hopped; copied) to every
 * federation peer (static and learned) except origin_domain (may be NULL), best effort:
 * queued on the peer's link, dialled if needed, dropped if the link fails. Returns how
 * many peers it was queued for.
 */
size_t federation_broadcast(struct node *n, const uint8_t *blob, size_t len,
                            const char *origin_domain);

/*
 * Hands an announce (already verified and hopped by mesh.c; copied) to every federated
 * node (configured, learned) and every static peer (`peers`), except the node of session
 * from (NULL: none), best effort: queued on each link that is up; a link that is down is
 * dialled and, once up, told what the node knows (the greeter). Returns how many links
 * it was queued on.
 */
size_t federation_announce(struct node *n, const struct qpc_announce *a,
                           const struct session *from);
/* Queues a on link l alone (for the greeter). 1 queued, 0 not (link down or full). */
size_t federation_announce_link(struct link *l, const struct qpc_announce *a);
/* fn is called each time a link (federation or static peer) comes up, before anything
 * else is sent on it; NULL: nothing. The owner of fn is mesh.c. */
void federation_set_link_greeter(struct node *n, void (*fn)(struct node *n, struct link *l));

#endif
