/*
 * broadcast.h: the node as a relay of broadcast channels: checks each broadcast once,
 * floods it to listening clients and to federation peers, and keeps the live ones for
 * clients that subscribe later. Best effort, in memory.
 */
#ifndef QPC_SERVER_BROADCAST_H
#define QPC_SERVER_BROADCAST_H

#include <stdint.h>

#include "qpc/proto.h"
#include "node.h"
#include "session.h"

/* Creates the dedup set and the store of recent broadcasts. 0 or QPC_ERR_NOMEM. */
int broadcast_start(struct node *n);
void broadcast_stop(struct node *n);
/* Drops expired broadcasts and dedup entries (maintenance timer). */
void broadcast_gc(struct node *n, uint64_t now_ms);
/* ClientRequest.broadcast from client session s: rate limit, check, flood; answers
 * broadcast_ack. */
void broadcast_handle_client(struct session *s, uint64_t request_id,
                             const Qpc__BroadcastRequest *r);
/* FederationRequest.relay_broadcast: check and flood each; answers one status each. */
void broadcast_handle_federation(struct session *s, uint64_t request_id,
                                 const Qpc__RelayBroadcastRequest *r);
/* Sends a client that just enabled push the live broadcasts kept (once per session). */
void broadcast_replay(struct session *s);

#endif
