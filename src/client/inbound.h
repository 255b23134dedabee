/*
 * inbound.h: what my server and my peers send, decoded and checked before anything acts
 * on it (inbound.c).
 *
 * Everything here is pure: bytes in, a decoded message or a refusal out, no socket, no
 * loop, no client state. session.c, receive.c and the fuzz targets (fuzz_client_message,
 * fuzz_p2p, fuzz_relay) call the same functions, so what is fuzzed is what runs.
 */
#ifndef QPC_CLIENT_INBOUND_H
#define QPC_CLIENT_INBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/proto.h"

#define INBOUND_RELAY_TAG 0x01         /* first byte of a relay datagram (proto/qpc.proto) */
#define INBOUND_ADDRESSES_MAX 16       /* observed addresses in a peer_info or punch notice */
#define INBOUND_CANDIDATES_MAX 16      /* candidates in a peer_info, punch notice or on a link */

/*
 * Decodes a ServerMessage and checks its shape: a punch notice names a 32-byte key, and
 * no list is longer than the maxima above (a node sends at most 16 candidates and a few
 * addresses; more is a broken or hostile server). Returns the message (free with
 * qpc__server_message__free_unpacked(m, NULL)) or NULL (undecodable or out of shape).
 */
Qpc__ServerMessage *inbound_server_message(const uint8_t *d, size_t n);

/*
 * Decodes a P2pFrame from a link and checks its shape: an envelope is not empty, an ack
 * has no id or one of QPC_ID_LEN bytes, PathCandidates has at most INBOUND_CANDIDATES_MAX
 * addresses. A frame of no kind known here (a newer peer's) decodes with body_case
 * NOT_SET and is returned: the caller ignores it. Returns the frame (free with
 * qpc__p2p_frame__free_unpacked(f, NULL)) or NULL: garbage.
 */
Qpc__P2pFrame *inbound_p2p_frame(const uint8_t *d, size_t n);

/*
 * Splits a relay datagram, 0x01 || 32-byte key || one QUIC packet, into *key and the
 * packet (*pkt, *len; both point into d). False when it is not one: another tag, or no
 * packet after the key.
 */
bool inbound_relay_datagram(const uint8_t *d, size_t n, const uint8_t **key, const uint8_t **pkt,
                            size_t *len);

#endif
