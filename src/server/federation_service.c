/*
 * federation_service.c: the dispatcher of the federation endpoint (ALPN
 * quicprochat/federation/1): decodes each FederationRequest another node sends and hands
 * it to the service that answers it.
 *
 * The one idea: a node is known by what its TLS handshake proved (its key, or its
 * CA-signed certificate), and the origin_domain it writes in a request must be one that
 * proof binds to it (trust_check_claim): a node that names another's domain is refused
 * and disconnected. A node nobody pinned may still hand over envelopes for this node's
 * own users, as any client may. Its requests reach the same services a client's do,
 * each with the rules for nodes: relay_enqueue goes to delivery (local recipients and
 * domains this node routes on, one status per item after the commit), relay_broadcast
 * to broadcast, domain_routes to federation's route table, announce to mesh (signed by
 * its origin, so taken from any node, proven or not). A frame that
 * request_federation_decode refuses (unknown, or above a cap: request.h) is a protocol
 * error and ends the connection. The links this node dials on the same endpoint are federation.c's; their
 * events never come here.
 */
#include <stdint.h>
#include <stdio.h>
#include <strings.h>

#include "qpc/log.h"
#include "broadcast.h"
#include "delivery.h"
#include "federation.h"
#include "federation_service.h"
#include "mesh.h"
#include "request.h"
#include "session.h"
#include "trust.h"

/* The origin_domain of a request, if it has one. */
static const char *origin_of(const Qpc__FederationRequest *req)
{
    switch (req->body_case) {
    case QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE: return req->relay_enqueue->origin_domain;
    case QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST:
        return req->relay_broadcast->origin_domain;
    case QPC__FEDERATION_REQUEST__BODY_DOMAIN_ROUTES: return req->domain_routes->origin_domain;
    default: return NULL;
    }
}

static void on_frame(struct session *s, const uint8_t *data, size_t len)
{
    struct request_arena arena;
    struct request_refusal why;
    Qpc__FederationRequest *req;
    const char *origin;
    enum trust_claim claim;

    request_arena_init(&arena, len);
    req = request_federation_decode(data, len, &arena, &why);
    if (req == NULL) {
        /* Nodes run this code: a refused request is a broken or hostile peer. */
        s->node->c.errors[ERRK_PROTOCOL]++;
        qpc_log_warn("federation", "%s sent a malformed request (%s); closing", s->peer_addr,
                     why.detail);
        session_close(s, QPC_QUIC_APP_REFUSED, why.detail);
        request_arena_clear(&arena);
        return;
    }
    origin = origin_of(req);
    claim = origin != NULL ? trust_check_claim(s->node, s, origin) : TRUST_UNPROVEN;
    if (claim == TRUST_PROVEN && strcasecmp(s->fed_domain, origin) != 0) {
        if (s->fed_domain[0] != '\0')
            federation_peer_closed(s);   /* it spoke for another domain before: forget that */
        snprintf(s->fed_domain, sizeof(s->fed_domain), "%s", origin);
        qpc_log_debug("federation", "%s proved it is %s", s->peer_addr, origin);
    }
    if (claim == TRUST_REFUSED) {
        s->node->c.errors[ERRK_FORBIDDEN]++;
        qpc_log_warn("federation", "%s says it is %s but does not prove it; closing",
                     s->peer_addr, origin);
        session_close(s, QPC_QUIC_APP_REFUSED, "origin_domain not proven");
    } else if (req->body_case == QPC__FEDERATION_REQUEST__BODY_DOMAIN_ROUTES) {
        Qpc__FederationResponse fr = QPC__FEDERATION_RESPONSE__INIT;

        if (claim == TRUST_PROVEN)   /* routes only from a node that proved who it is */
            federation_routes_update(s, req->domain_routes);
        fr.request_id = req->request_id;
        session_send_message(s, &fr.base);
    } else if (req->body_case == QPC__FEDERATION_REQUEST__BODY_ANNOUNCE) {
        /* Signed by its origin: any node may pass one on, proven or not (a static peer
         * proves no domain), within its connection's announce rate. */
        mesh_handle_federation(s, req->request_id, req->announce);
    } else if (req->body_case == QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST) {
        broadcast_handle_federation(s, req->request_id, req->relay_broadcast);
    } else {
        qpc_log_debug("federation", "%zu item(s) from %s (%s)", req->relay_enqueue->n_items,
                      req->relay_enqueue->origin_domain, s->peer_addr);
        delivery_enqueue(s, req->request_id, DELIVERY_RELAYED, req->relay_enqueue->items,
                         req->relay_enqueue->n_items);
    }
    qpc__federation_request__free_unpacked(req, &arena.pb.allocator);
    request_arena_clear(&arena);
}

static void on_open(struct session *s)
{
    s->node->c.fed_connections_total++;
    s->node->c.fed_accepted_open++;
    qpc_log_debug("federation", "node connected from %s", s->peer_addr);
}

static void on_closed(struct session *s, const struct qpc_quic_close_info *info)
{
    s->node->c.fed_accepted_open--;
    federation_peer_closed(s);
}

static const struct session_callbacks federation_callbacks = {
    .on_open = on_open,
    .on_frame = on_frame,
    .on_closed = on_closed,
};

int federation_service_start(struct node *n)
{
    const struct server_settings *sc = n->sc;
    struct session_endpoint_config ec = { 0 };

    if (!sc->federation_enabled)
        return 0;
    ec.listen = sc->federation_listen;
    ec.alpn = QPC_ALPN_FEDERATION;
    if (trust_by_key(n)) {
        ec.by_key = true;   /* the identity certificate: no files */
    } else {
        ec.cert_der = sc->federation_cert;
        ec.key_der = sc->federation_key;
        ec.ca_der = sc->federation_ca;
    }
    ec.keepalive_ms = (uint64_t)sc->idle_timeout_ms / 3;
    return session_endpoint_open(n, &ec, &federation_callbacks, &n->fed_ep);
}

void federation_service_stop(struct node *n)
{
    session_endpoint_close(n->fed_ep);
    n->fed_ep = NULL;
}
