/*
 * server.h: the entry points each service file of src/server/ offers the others (being
 * split into one header per file; the process state is in node.h, connections in
 * session.h).
 */
#ifndef QPC_SERVER_H
#define QPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc.pb-c.h"
#include "node.h"
#include "session.h"

/* --- delivery.c ------------------------------------------------------------------- */

/* Creates the client endpoint on sc->listen and starts the commit watcher. 0 or error. */
int delivery_start(struct node *n);
/* Frees every session (connections are closed by endpoint free). */
void delivery_stop(struct node *n);
/* Commits what is staged, which runs the completions that answer clients, push, and
 * wake the outbox pump (also called at shutdown). */
void delivery_commit(struct node *n);
/* Handles one FederationRequest frame on an incoming federation session. */
void delivery_handle_federation(struct session *s, const uint8_t *data, size_t len);

/* --- federation.c ----------------------------------------------------------------- */

enum dest_kind { DEST_LOCAL, DEST_REMOTE, DEST_UNKNOWN };

/*
 * resolve_destination: where a recipient of `domain` lives. Empty or our own domain is
 * DEST_LOCAL; a domain of a static federation peer or of a node learned from mDNS is
 * DEST_REMOTE (its federation "host:port" copied to addr when addr is not NULL);
 * anything else, or any remote domain while federation is off, is DEST_UNKNOWN.
 */
enum dest_kind resolve_destination(const struct node *n, const char *domain, char *addr,
                                   size_t addrlen);
/* Creates the federation endpoint when federation is enabled. 0 or error. */
int federation_start(struct node *n);
void federation_stop(struct node *n);
/* Sends due outbox rows to their nodes (relay_enqueue); called by the maintenance
 * timer and after a commit that added outbox rows. */
void federation_pump(struct node *n, uint64_t now_ms);
/* Records a node seen in mDNS (domain -> host for federation). */
void federation_learn(struct node *n, const char *domain, const char *host);
void federation_forget(struct node *n, const char *domain);

/*
 * Hands an encoded broadcast envelope (already checked and hopped) to every federation
 * peer (static and learned) except origin_domain (may be NULL), best effort: queued on
 * the peer's link, dialled if needed, dropped if the link fails. Returns how many peers
 * it was queued for.
 */
size_t federation_broadcast(struct node *n, const uint8_t *blob, size_t len,
                            const char *origin_domain);

/* --- broadcast.c ------------------------------------------------------------------ */

struct session;
/* Creates the dedup set and the store of recent broadcasts. 0 or QPC_ERR_NOMEM. */
int broadcast_start(struct node *n);
void broadcast_stop(struct node *n);
/* Drops expired broadcasts and dedup entries (maintenance timer). */
void broadcast_gc(struct node *n, uint64_t now_ms);
/* ClientRequest.broadcast: rate limit, check, flood; answers broadcast_ack. */
void broadcast_handle_client(struct session *s, uint64_t request_id,
                             const Qpc__BroadcastRequest *r);
/* FederationRequest.relay_broadcast: check and flood each; answers one status each. */
void broadcast_handle_federation(struct session *s, uint64_t request_id,
                                 const Qpc__RelayBroadcastRequest *r);
/* Sends a client that just enabled push the live broadcasts kept (once per session). */
void broadcast_replay(struct session *s);

/* --- relay.c ---------------------------------------------------------------------- */

/* Handles one DATAGRAM from a client session (0x01 || dest key || packet). */
void relay_datagram(struct node *n, struct session *from, const uint8_t *data, size_t len);

/* --- metrics.c ---------------------------------------------------------------------- */

/* Starts the HTTP endpoint on sc->metrics_listen (no-op when ""). 0 or error. */
int metrics_start(struct node *n);
void metrics_stop(struct node *n);
/* Writes the Prometheus text of every metric into a malloc'd buffer (caller frees). */
char *metrics_render(struct node *n, size_t *len);

/* --- announce.c --------------------------------------------------------------------- */

/* Starts the mDNS responder, announces the node and browses for others. */
int announce_start(struct node *n);
/* The host clients should dial: the listen address unless it is a wildcard, else the
 * first IPv4 address of an mDNS interface (of any interface when the list is empty).
 * False when there is none. */
bool announce_dial_host(const struct node *n, char *host, size_t len);
/* Withdraws the announcement (goodbye packets) and frees the responder. */
void announce_stop(struct node *n);

#endif
