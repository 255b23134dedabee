/*
 * relay.h: helping two clients of this node reach each other: their address
 * candidates, peer_info, coordinated hole punches, and DATAGRAM relay when no direct
 * path works (docs/paths.md).
 */
#ifndef QPC_SERVER_RELAY_H
#define QPC_SERVER_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qpc/proto.h"
#include "session.h"

/* The relay's own state (n->relay: traffic counters by client). 0 or QPC_ERR_NOMEM. */
int relay_start(struct node *n);
void relay_stop(struct node *n);

/* Handles one DATAGRAM from client session from (0x01 || dest key || packet): to the
 * session of that key pinned for from, else to every session of it (at most 4). */
void relay_datagram(struct session *from, const uint8_t *data, size_t len);
/* ClientRequest.peer_info: where a key is connected and the candidates its sessions
 * registered. A client that never registered (PathRequest) also gets that peer's
 * sessions sent a PunchNotice with its address (within its punch rate). */
void relay_peer_info(struct session *s, uint64_t request_id, const Qpc__PeerInfoRequest *r);
/* ClientRequest.path: registers candidates, sends punch notices on request (within the
 * punch rate: else RATE_LIMITED), counts reported direct paths; answers PathResponse. */
void relay_path_request(struct session *s, uint64_t request_id, const Qpc__PathRequest *r);
/* The relayed-traffic-by-client metrics, Prometheus text with HELP and TYPE. */
void relay_metrics_write(struct node *n, FILE *f);

#endif
