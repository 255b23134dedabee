/*
 * inbound.c: decoding and shape checks of what the server and peers send (inbound.h).
 *
 * The one idea: protobuf-c decodes any well-formed message whatever its sizes, so the
 * shape a sender may give it is checked here, once, before the session or the node looks
 * at it: bounded lists, keys and ids of their exact length. What each address or
 * envelope says is checked later by its own module (candidates.c, envelope.c).
 */
#include "inbound.h"
#include "qpc/envelope.h"

static bool lists_ok(size_t n_addrs, size_t n_cands)
{
    return n_addrs <= INBOUND_ADDRESSES_MAX && n_cands <= INBOUND_CANDIDATES_MAX;
}

static bool shape_ok(const Qpc__ServerMessage *m)
{
    switch (m->body_case) {
    case QPC__SERVER_MESSAGE__BODY_FETCH:
        return m->fetch != NULL;   /* items: as many as fit the frame (a node pages up to 10,000) */
    case QPC__SERVER_MESSAGE__BODY_PUSH:
        return m->push != NULL;
    case QPC__SERVER_MESSAGE__BODY_PEER_INFO:
        return m->peer_info != NULL &&
               lists_ok(m->peer_info->n_addresses, m->peer_info->n_candidates);
    case QPC__SERVER_MESSAGE__BODY_PUNCH:
        return m->punch != NULL && m->punch->key.len == QPC_KEY_LEN &&
               lists_ok(m->punch->n_addresses, m->punch->n_candidates);
    case QPC__SERVER_MESSAGE__BODY_ENQUEUE:
        return m->enqueue != NULL;
    case QPC__SERVER_MESSAGE__BODY_ERROR:
        return m->error != NULL;
    case QPC__SERVER_MESSAGE__BODY_PUSH_ACK:
        return m->push_ack != NULL;
    case QPC__SERVER_MESSAGE__BODY_PATH:
        return m->path != NULL;
    case QPC__SERVER_MESSAGE__BODY_BROADCAST:
        return m->broadcast != NULL;
    case QPC__SERVER_MESSAGE__BODY_BROADCAST_ACK:
        return m->broadcast_ack != NULL;
    default:
        return true;   /* nothing the session acts on: it ignores it */
    }
}

Qpc__ServerMessage *inbound_server_message(const uint8_t *d, size_t n)
{
    Qpc__ServerMessage *m = qpc__server_message__unpack(NULL, n, d);

    if (m != NULL && !shape_ok(m)) {
        qpc__server_message__free_unpacked(m, NULL);
        m = NULL;
    }
    return m;
}

Qpc__P2pFrame *inbound_p2p_frame(const uint8_t *d, size_t n)
{
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, n, d);
    bool ok = true;

    if (f == NULL)
        return NULL;
    switch (f->body_case) {
    case QPC__P2P_FRAME__BODY_ENVELOPE:
        ok = f->envelope.len > 0;
        break;
    case QPC__P2P_FRAME__BODY_ACK:
        ok = f->ack != NULL && (f->ack->id.len == 0 || f->ack->id.len == QPC_ID_LEN);
        break;
    case QPC__P2P_FRAME__BODY_CANDIDATES:
        ok = f->candidates != NULL && f->candidates->n_addresses <= INBOUND_CANDIDATES_MAX;
        break;
    default:
        break;
    }
    if (!ok) {
        qpc__p2p_frame__free_unpacked(f, NULL);
        f = NULL;
    }
    return f;
}

bool inbound_relay_datagram(const uint8_t *d, size_t n, const uint8_t **key, const uint8_t **pkt,
                            size_t *len)
{
    if (d == NULL || n <= 1 + QPC_KEY_LEN || d[0] != INBOUND_RELAY_TAG)
        return false;
    *key = d + 1;
    *pkt = d + 1 + QPC_KEY_LEN;
    *len = n - 1 - QPC_KEY_LEN;
    return true;
}
