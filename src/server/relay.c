/*
 * relay.c: helps two clients of this node reach each other: peer_info answers with
 * punch notices so both sides send packets towards each other (hole punching), and
 * relay datagrams carry their P2P connection when no direct path works
 * (docs/protocol.md, "Relay datagrams").
 *
 * The one idea: the node only swaps the address in the 33-byte header -- a client sends
 * 0x01 || destination key || packet, the destination receives 0x01 || source key ||
 * packet -- and never looks inside the packet, which is a QUIC packet of the peers' own
 * end-to-end TLS session. The source key is the one the sender authenticated with, so a
 * client cannot pose as another. Each client key has token buckets (relay: relay_rate_limit
 * packets per second, one second of burst; punch notices: PUNCH_RATE_PER_S) so one
 * client cannot use the node as a free amplifier; excess datagrams are dropped, which
 * QUIC treats as loss.
 */
#include <string.h>

#include "qpc/log.h"
#include "relay.h"
#include "request.h"

#define RELAY_TAG REQUEST_RELAY_TAG
#define RELAY_HEADER REQUEST_RELAY_HEADER
#define PUNCH_RATE_PER_S 5.0       /* punch notices a client may cause per second... */
#define PUNCH_BURST 20.0            /* ...and at once (dialling several peers) */
#define PEER_ADDRS_MAX 16u          /* addresses in one peer_info answer */

/* Per-client (per key, however many connections) rate of relayed packets: rate and
 * burst are both relay_rate_limit. */
static bool relay_allowed(struct node *n, struct session *s)
{
    double rate = (double)n->sc->relay_rate_limit;

    return session_take(s, SESSION_RATE_RELAY, rate, rate);
}

void relay_datagram(struct session *from, const uint8_t *data, size_t len)
{
    struct node *n = from->node;
    uint8_t out[QPC_QUIC_DATAGRAM_MAX];
    const uint8_t *dest = request_relay_destination(data, len, sizeof(out));
    struct session *to;

    if (!n->sc->relay_enabled || dest == NULL || !relay_allowed(n, from)) {
        n->c.errors[ERRK_RELAY_DROPPED]++;
        return;
    }
    to = session_find(n->client_ep, dest);
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

/* Tells session t that the client of session s wants to reach it from s's address. */
static void send_punch(struct session *t, struct session *s)
{
    Qpc__ServerMessage pm = QPC__SERVER_MESSAGE__INIT;
    Qpc__PunchNotice pn = QPC__PUNCH_NOTICE__INIT;
    char *mine[1] = { s->peer_addr };

    pn.key.data = s->key;
    pn.key.len = QPC_KEY_LEN;
    pn.n_addresses = 1;
    pn.addresses = mine;
    pm.body_case = QPC__SERVER_MESSAGE__BODY_PUNCH;
    pm.punch = &pn;
    session_send_message(t, &pm.base);
}

void relay_peer_info(struct session *s, uint64_t request_id, const Qpc__PeerInfoRequest *r)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__PeerInfoResponse pr = QPC__PEER_INFO_RESPONSE__INIT;
    char *addrs[PEER_ADDRS_MAX];
    struct session *first = NULL;
    bool punch;

    if (r->key.len == QPC_KEY_LEN)
        first = session_find(s->node->client_ep, r->key.data);
    /* Each answer makes the named peer's client send packets toward the asker: within
     * the rate the asker still learns the addresses, but no more notices are sent. */
    punch = first != NULL && session_take(s, SESSION_RATE_PUNCH, PUNCH_RATE_PER_S, PUNCH_BURST);
    for (struct session *t = first; t != NULL; t = session_next_of_client(t)) {
        if (pr.n_addresses < PEER_ADDRS_MAX)
            addrs[pr.n_addresses++] = t->peer_addr;
        if (t != s && punch)
            send_punch(t, s);
    }
    pr.online = pr.n_addresses > 0;
    pr.addresses = addrs;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_PEER_INFO;
    msg.peer_info = &pr;
    session_send_message(s, &msg.base);
}
