/*
 * federation_service.c: the dispatcher of the federation endpoint (ALPN
 * quicprochat/federation/1): decodes each FederationRequest another node sends and hands
 * it to the service that answers it.
 *
 * The one idea: another node is trusted by its CA-verified certificate, so its requests
 * reach the same services a client's do, each with the rules for nodes: relay_enqueue
 * goes to delivery (local recipients only, one status per item after the commit),
 * relay_broadcast to broadcast. A frame that is neither is a protocol error and ends the
 * connection. The links this node dials on the same endpoint are federation.c's; their
 * events never come here.
 */
#include <stdint.h>

#include "qpc/log.h"
#include "broadcast.h"
#include "delivery.h"
#include "federation_service.h"
#include "session.h"

static void on_frame(struct session *s, const uint8_t *data, size_t len)
{
    Qpc__FederationRequest *req = qpc__federation_request__unpack(NULL, len, data);

    if (req != NULL && req->body_case == QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST) {
        broadcast_handle_federation(s, req->request_id, req->relay_broadcast);
    } else if (req == NULL || req->body_case != QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE ||
               req->relay_enqueue->n_items == 0) {
        s->node->c.errors[ERRK_PROTOCOL]++;
        qpc_log_warn("federation", "%s sent a malformed request; closing", s->peer_addr);
        session_close(s, QPC_QUIC_APP_REFUSED, "malformed federation request");
    } else {
        qpc_log_debug("federation", "%zu item(s) from %s (%s)", req->relay_enqueue->n_items,
                      req->relay_enqueue->origin_domain, s->peer_addr);
        delivery_enqueue(s, req->request_id, DELIVERY_RELAYED, req->relay_enqueue->items,
                         req->relay_enqueue->n_items);
    }
    if (req != NULL)
        qpc__federation_request__free_unpacked(req, NULL);
}

static void on_open(struct session *s)
{
    s->node->c.fed_connections_total++;
    qpc_log_debug("federation", "node connected from %s", s->peer_addr);
}

static const struct session_callbacks federation_callbacks = {
    .on_open = on_open,
    .on_frame = on_frame,
};

int federation_service_start(struct node *n)
{
    const struct server_settings *sc = n->sc;
    struct session_endpoint_config ec = { 0 };

    if (!sc->federation_enabled)
        return 0;
    ec.listen = sc->federation_listen;
    ec.alpn = QPC_ALPN_FEDERATION;
    ec.cert_der = sc->federation_cert;
    ec.key_der = sc->federation_key;
    ec.ca_der = sc->federation_ca;
    ec.keepalive_ms = (uint64_t)sc->idle_timeout_ms / 3;
    return session_endpoint_open(n, &ec, &federation_callbacks, &n->fed_ep);
}

void federation_service_stop(struct node *n)
{
    session_endpoint_close(n->fed_ep);
    n->fed_ep = NULL;
}
