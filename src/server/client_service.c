/*
 * client_service.c: the dispatcher of the client endpoint (ALPN quicprochat/client/1):
 * decodes each ClientRequest frame and hands it to the service that answers it.
 *
 * The one idea: this file holds no state and makes no decision beyond the request's
 * kind. Delivery answers enqueue, batch_enqueue, fetch, ack and push; relay answers
 * peer_info and path and takes the DATAGRAMs; broadcast answers broadcast. A frame that is not a
 * ClientRequest, or names no known request, gets an error answer here (and counts as
 * a protocol error).
 */
#include <stdint.h>
#include <stdlib.h>

#include "qpc/log.h"
#include "qpc/pbarena.h"
#include "broadcast.h"
#include "client_service.h"
#include "delivery.h"
#include "relay.h"
#include "session.h"

static void reply_error(struct session *s, uint64_t request_id, const char *detail)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__EnqueueResponse er = QPC__ENQUEUE_RESPONSE__INIT;

    s->node->c.errors[ERRK_PROTOCOL]++;
    er.status = QPC__STATUS__STATUS_INVALID;
    er.detail = (char *)detail;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_ERROR;
    msg.error = &er;
    session_send_message(s, &msg.base);
}

/* Room for an unpacked request: its bytes fields plus the structs around them (a batch
 * item's struct is about 80 bytes). What does not fit comes from malloc. */
static size_t request_arena_size(size_t len)
{
    return len < SIZE_MAX / 4 ? 2 * len + 4096 : 0;
}

static void on_frame(struct session *s, const uint8_t *data, size_t len)
{
    /* One allocation per request instead of several per batch item: the request lives
     * only in this call (staging copies what it keeps). */
    size_t arena_cap = request_arena_size(len);
    void *arena_buf = malloc(arena_cap > 0 ? arena_cap : 1);
    struct qpc_pbarena arena;
    Qpc__ClientRequest *req;

    qpc_pbarena_init(&arena, arena_buf, arena_buf != NULL ? arena_cap : 0);
    req = qpc__client_request__unpack(&arena.allocator, len, data);
    if (req == NULL) {
        free(arena_buf);
        reply_error(s, 0, "request is not a ClientRequest");
        return;
    }
    switch (req->body_case) {
    case QPC__CLIENT_REQUEST__BODY_ENQUEUE:
        delivery_enqueue(s, req->request_id, DELIVERY_ENQUEUE, &req->enqueue->item, 1);
        break;
    case QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE:
        if (req->batch_enqueue->n_items == 0) {
            reply_error(s, req->request_id, "empty batch");
            break;
        }
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
        if (s->push)
            broadcast_replay(s);   /* live bulletins it missed */
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
    default:
        reply_error(s, req->request_id, "unknown request");
        break;
    }
    qpc__client_request__free_unpacked(req, &arena.allocator);
    free(arena_buf);
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
