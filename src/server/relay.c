/*
 * relay.c: forwards relay datagrams between two clients connected to this node, for
 * P2P connections that cannot go direct (docs/protocol.md, "Relay datagrams").
 *
 * The one idea: the node only swaps the address in the 33-byte header -- a client sends
 * 0x01 || destination key || packet, the destination receives 0x01 || source key ||
 * packet -- and never looks inside the packet, which is a QUIC packet of the peers' own
 * end-to-end TLS session. The source key is the one the sender authenticated with, so a
 * client cannot pose as another. Each client has a token bucket (relay_rate_limit
 * packets per second, one second of burst) so one client cannot use the node as a
 * free amplifier; excess datagrams are dropped, which QUIC treats as loss.
 */
#include <string.h>

#include "qpc/log.h"
#include "server.h"

#define RELAY_TAG 0x01
#define RELAY_HEADER (1 + QPC_KEY_LEN)

/* Per-client rate of relayed packets: rate and burst are both relay_rate_limit. */
static bool relay_allowed(struct node *n, struct session *s)
{
    double rate = (double)n->sc->relay_rate_limit;

    return session_take_token(&s->relay_rate, ev_now(n->loop), rate, rate);
}

void relay_datagram(struct node *n, struct session *from, const uint8_t *data, size_t len)
{
    uint8_t out[QPC_QUIC_DATAGRAM_MAX];
    struct session *to;

    if (!n->sc->relay_enabled || len <= RELAY_HEADER || len > sizeof(out) ||
        data[0] != RELAY_TAG || !relay_allowed(n, from)) {
        n->c.errors[ERRK_RELAY_DROPPED]++;
        return;
    }
    to = session_find(n->client_ep, data + 1);
    if (to == NULL || to == from) {
        n->c.errors[ERRK_RELAY_DROPPED]++;
        return;
    }
    out[0] = RELAY_TAG;
    memcpy(out + 1, from->key, QPC_KEY_LEN);
    memcpy(out + RELAY_HEADER, data + RELAY_HEADER, len - RELAY_HEADER);
    if (session_send_datagram(to, out, len) == 0)
        n->c.relayed_packets++;
    else
        n->c.errors[ERRK_RELAY_DROPPED]++;
}
