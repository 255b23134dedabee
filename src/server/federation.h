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

#include "node.h"

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
 * Hands an encoded broadcast envelope (already checked and hopped; copied) to every
 * federation peer (static and learned) except origin_domain (may be NULL), best effort:
 * queued on the peer's link, dialled if needed, dropped if the link fails. Returns how
 * many peers it was queued for.
 */
size_t federation_broadcast(struct node *n, const uint8_t *blob, size_t len,
                            const char *origin_domain);

#endif
