/*
 * relay.h: helping two clients of this node reach each other: peer_info with punch
 * notices for hole punching, and DATAGRAM relay when no direct path works.
 */
#ifndef QPC_SERVER_RELAY_H
#define QPC_SERVER_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "qpc/proto.h"
#include "session.h"

/* Handles one DATAGRAM from client session from (0x01 || dest key || packet). */
void relay_datagram(struct session *from, const uint8_t *data, size_t len);
/* ClientRequest.peer_info: where a key is connected; that peer's sessions are sent a
 * PunchNotice with the asker's address (within the asker's punch rate). */
void relay_peer_info(struct session *s, uint64_t request_id, const Qpc__PeerInfoRequest *r);

#endif
