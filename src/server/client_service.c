/*
 * client_service.c: the dispatcher of the client endpoint (ALPN quicprochat/client/1):
 * decodes each ClientRequest frame and hands it to the service that answers it.
 *
 * The one idea: this file holds no state and makes no decision beyond the request's
 * kind. Delivery answers enqueue, batch_enqueue, fetch, ack and push; relay answers
 * peer_info and path and takes the DATAGRAMs; broadcast answers broadcast; mesh takes
 * announce (and sends what it knows when push is turned on). A frame that
 * request_client_decode refuses (not a ClientRequest, no known request, a repeated field
 * above its cap: request.h) gets an error answer here with the status and detail of the
 * refusal, and counts as a protocol error; a client that keeps sending them is closed
 * (refused()), and the log gets one line per kind per interval, not one per frame.
 */
#include <stdint.h>
#include <stdlib.h>

#include "qpc/log.h"
#include "broadcast.h"
#include "client_service.h"
#include "delivery.h"
#include "mesh.h"
#include "relay.h"
#include "request.h"
#include "session.h"

#define GARBAGE_BURST 10.0          /* refused requests a client may send at once... */
#define GARBAGE_RATE (1.0 / 60.0)   /* ...and then one a minute, before it is closed */
#define GARBAGE_LOG_INTERVAL_MS 10000u   /* one log line per kind of refusal per 10 s */
/* Client connections admitted at once, in all and per client key, are settings
 * (max_client_connections 10000, max_connections_per_client 16). A client has one or
 * two (a reconnect while the node still holds the dead one until its idle timeout); the
 * caps keep minted keys and one key's many sockets from taking the node's memory. */

static void reply_error(struct session *s, const struct request_refusal *why)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__EnqueueResponse er = QPC__ENQUEUE_RESPONSE__INIT;

    er.status = why->status;
    er.detail = (char *)why->detail;
    msg.request_id = why->request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_ERROR;
    msg.error = &er;
    session_send_message(s, &msg.base);
}

/*
 * One line per kind of refusal (and one for the closes) per interval, whoever sends it:
 * a peer's garbage must not fill the log. What was held back is counted in the next
 * line; every refusal is counted in qpc_errors_total{kind="protocol"} anyway.
 */
static void log_refusal(struct session *s, size_t kind, const char *detail, bool closing)
{
    static struct qpc_log_limit limits[REQUEST_PROBLEM_COUNT + 1];
    uint64_t suppressed = 0;
    char hex[QPC_KEY_HEX_LEN];

    if (!qpc_log_limit_pass(&limits[kind], ratelimit_now_ms(), GARBAGE_LOG_INTERVAL_MS,
                            &suppressed))
        return;
    qpc_key_to_hex(hex, s->key);
    qpc_log_warn("client", "client %.16s... at %s: %s%s (%llu more like it suppressed)", hex,
                 s->peer_addr, detail, closing ? "; closing the connection" : "",
                 (unsigned long long)suppressed);
}

/*
 * A request the node refused before any service saw it. Real clients send none, so
 * each one takes a token from the client's budget (GARBAGE_BURST, refilled at
 * GARBAGE_RATE): within it the client gets an error answer with the status and detail;
 * past it the connection is closed, so garbage costs the node at most a few answers
 * per key instead of one per frame for ever (the budget is the key's: session_take).
 */
static void refused(struct session *s, const struct request_refusal *why)
{
    s->node->c.errors[ERRK_PROTOCOL]++;
    if (s->garbage_closed)
        return;
    if (why->problem == REQUEST_UNKNOWN) {
        /* Well-formed, of a kind a newer client knows and this node does not (its
         * periodic announce, say): answered while the budget lasts, never a reason to
         * close, or a node upgraded after its clients would cut them all off. */
        if (session_take(s, SESSION_RATE_GARBAGE, GARBAGE_RATE, GARBAGE_BURST)) {
            log_refusal(s, why->problem, why->detail, false);
            reply_error(s, why);
        }
        return;
    }
    if (!session_take(s, SESSION_RATE_GARBAGE, GARBAGE_RATE, GARBAGE_BURST)) {
        s->garbage_closed = true;
        log_refusal(s, REQUEST_PROBLEM_COUNT, "too many malformed requests", true);
        session_close(s, QPC_QUIC_APP_REFUSED, "too many malformed requests");
        return;
    }
    log_refusal(s, why->problem, why->detail, false);
    reply_error(s, why);
}

static void on_frame(struct session *s, const uint8_t *data, size_t len)
{
    struct request_arena arena;
    struct request_refusal why;
    Qpc__ClientRequest *req;

    /* One bounded arena per request instead of several allocations per batch item: the
     * request lives only in this call (staging copies what it keeps). */
    request_arena_init(&arena, len);
    req = request_client_decode(data, len, &arena, &why);
    if (req == NULL) {
        request_arena_clear(&arena);
        refused(s, &why);
        return;
    }
    switch (req->body_case) {
    case QPC__CLIENT_REQUEST__BODY_ENQUEUE:
        delivery_enqueue(s, req->request_id, DELIVERY_ENQUEUE, &req->enqueue->item, 1);
        break;
    case QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE:
        delivery_enqueue(s, req->request_id, DELIVERY_BATCH, req->batch_enqueue->items,
                         req->batch_enqueue->n_items);
        break;
    case QPC__CLIENT_REQUEST__BODY_FETCH:
        delivery_fetch(s, req->request_id, req->fetch);
        break;
    case QPC__CLIENT_REQUEST__BODY_ACK:
        delivery_ack(s, req->request_id, req->ack);
        break;
    case QPC__CLIENT_REQUEST__BODY_PUSH:
        delivery_set_push(s, req->request_id, req->push->enable);
        if (s->push) {
            broadcast_replay(s);   /* live bulletins it missed */
            mesh_replay(s);        /* and what the node knows of the mesh */
        }
        break;
    case QPC__CLIENT_REQUEST__BODY_PEER_INFO:
        relay_peer_info(s, req->request_id, req->peer_info);
        break;
    case QPC__CLIENT_REQUEST__BODY_PATH:
        relay_path_request(s, req->request_id, req->path);
        break;
    case QPC__CLIENT_REQUEST__BODY_BROADCAST:
        broadcast_handle_client(s, req->request_id, req->broadcast);
        break;
    case QPC__CLIENT_REQUEST__BODY_ANNOUNCE:
        mesh_handle_client(s, req->announce);   /* not answered: announces are periodic */
        break;
    default:   /* request_client_decode let no other kind through */
        break;
    }
    qpc__client_request__free_unpacked(req, &arena.pb.allocator);
    request_arena_clear(&arena);
}

static void on_open(struct session *s)
{
    s->node->c.connections_total++;
    if (qpc_log_get_level() >= QPC_LOG_DEBUG) {
        char hex[QPC_KEY_HEX_LEN];
        qpc_key_to_hex(hex, s->key);
        qpc_log_debug("delivery", "client %.16s... connected from %s", hex, s->peer_addr);
    }
}

static const struct session_callbacks client_callbacks = {
    .on_open = on_open,
    .on_frame = on_frame,
    .on_datagram = relay_datagram,
};

int client_service_start(struct node *n)
{
    struct session_endpoint_config ec = { 0 };
    int rc;

    ec.listen = n->sc->listen;
    ec.alpn = QPC_ALPN_CLIENT;
    ec.clients = true;
    ec.max_sessions = (size_t)n->sc->max_client_connections;
    ec.max_sessions_per_key = (size_t)n->sc->max_connections_per_client;
    rc = session_endpoint_open(n, &ec, &client_callbacks, &n->client_ep);
    if (rc == 0)
        n->client_port = session_endpoint_port(n->client_ep);
    return rc;
}

void client_service_stop(struct node *n)
{
    session_endpoint_close(n->client_ep);
    n->client_ep = NULL;
}
