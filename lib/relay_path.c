/*
 * relay_path.c: QUIC paths whose packets go through the application, not the socket.
 *
 * The one idea: ngtcp2 only knows paths as pairs of addresses, so a relay path is given
 * an address that can never be a real peer's: the discard prefix 100::/64 (RFC 6666),
 * whose low 64 bits name the relay. ngtcp2 then treats a relayed connection like any
 * other; only where a packet leaves (qpc_relay_path_send) and where it comes in
 * (qpc_quic_endpoint_input_relayed) is the address looked at. What carries the packets
 * (DATAGRAM frames of a connection to a relay node, addressed by peer id) is the
 * application's send function; the peer-to-peer TLS session stays end to end.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>
#include <utlist.h>

#include "qpc/error.h"
#include "qpc/quic.h"
#include "quic_internal.h"

struct qpc_quic_relay {
    struct qpc_quic_endpoint *ep;
    uint64_t id;
    qpc_quic_relay_send_fn send;
    void *user;
    struct sockaddr_in6 addr;            /* 100::<id>, port 1: the path's remote address */
    struct qpc_quic_relay *prev, *next;  /* the endpoint's relays */
};

static void relay_addr_make(struct sockaddr_in6 *a, uint64_t id, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->sin6_family = AF_INET6;
    a->sin6_addr.s6_addr[0] = 0x01;
    for (int i = 0; i < 8; i++)
        a->sin6_addr.s6_addr[15 - i] = (uint8_t)(id >> (8 * i));
    a->sin6_port = htons(port);
}

bool qpc_quic_addr_is_relay(const struct sockaddr *sa)
{
    static const uint8_t prefix[8] = { 0x01, 0, 0, 0, 0, 0, 0, 0 };
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;

    return sa != NULL && sa->sa_family == AF_INET6 &&
           memcmp(a6->sin6_addr.s6_addr, prefix, 8) == 0;
}

static struct qpc_quic_relay *relay_find(struct qpc_quic_endpoint *ep, const struct sockaddr *sa)
{
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
    struct qpc_quic_relay *r;
    uint64_t id = 0;

    for (int i = 8; i < 16; i++)
        id = (id << 8) | a6->sin6_addr.s6_addr[i];
    DL_FOREACH(ep->relays, r)
        if (r->id == id)
            return r;
    return NULL;
}

void qpc_relay_path_init(struct qpc_quic_endpoint *ep)
{
    ep->relays = NULL;
    ep->next_relay_id = 1;
    relay_addr_make(&ep->relay_local, 0, 2);
}

void qpc_relay_path_send(struct qpc_quic_endpoint *ep, const struct sockaddr *to,
                         const uint8_t *pkt, size_t len)
{
    struct qpc_quic_relay *r;

    if (ep->freeing)
        return;   /* a relay's send may use a connection already freed */
    r = relay_find(ep, to);
    if (r != NULL)
        r->send(r->user, pkt, len);   /* a refused packet is lost; QUIC recovers */
}

void qpc_relay_path_free_all(struct qpc_quic_endpoint *ep)
{
    struct qpc_quic_relay *r, *tmp;

    DL_FOREACH_SAFE(ep->relays, r, tmp) {
        DL_DELETE(ep->relays, r);
        free(r);
    }
}

int qpc_quic_relay_new(struct qpc_quic_endpoint *ep, qpc_quic_relay_send_fn send, void *user,
                       struct qpc_quic_relay **out)
{
    struct qpc_quic_relay *r;

    if (send == NULL)
        return QPC_ERR_INVALID;
    if (ep->freeing)
        return QPC_ERR_CLOSED;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return QPC_ERR_NOMEM;
    r->ep = ep;
    r->id = ep->next_relay_id++;
    r->send = send;
    r->user = user;
    relay_addr_make(&r->addr, r->id, 1);
    DL_APPEND(ep->relays, r);
    *out = r;
    return 0;
}

void qpc_quic_relay_free(struct qpc_quic_relay *relay)
{
    struct qpc_quic_endpoint *ep;
    struct qpc_quic_conn *c;

    if (relay == NULL)
        return;
    ep = relay->ep;
    DL_FOREACH(ep->conns, c) {
        const ngtcp2_path *p = c->qc ? ngtcp2_conn_get_path(c->qc) : NULL;

        if (p != NULL && qpc_quic_addr_is_relay((const struct sockaddr *)p->remote.addr) &&
            relay_find(ep, (const struct sockaddr *)p->remote.addr) == relay)
            qpc_conn_end(c, QPC_ERR_CLOSED, false, false, false, 0, "relay gone");
    }
    DL_DELETE(ep->relays, relay);
    free(relay);
}

int qpc_quic_connect_relayed(struct qpc_quic_endpoint *ep, struct qpc_quic_relay *relay,
                             const char *alpn, const uint8_t *expected_key, void *user,
                             struct qpc_quic_conn **out)
{
    ngtcp2_path path;

    if (relay == NULL || relay->ep != ep)
        return QPC_ERR_INVALID;
    path.local.addr = (ngtcp2_sockaddr *)&ep->relay_local;
    path.local.addrlen = sizeof(ep->relay_local);
    path.remote.addr = (ngtcp2_sockaddr *)&relay->addr;
    path.remote.addrlen = sizeof(relay->addr);
    path.user_data = NULL;
    return qpc_conn_connect(ep, &path, true, alpn, expected_key, user, out);
}

int qpc_quic_endpoint_input_relayed(struct qpc_quic_endpoint *ep, struct qpc_quic_relay *relay,
                                    const uint8_t *data, size_t len)
{
    ngtcp2_path path;
    struct sockaddr_in6 remote;

    if (relay == NULL || relay->ep != ep || data == NULL)
        return QPC_ERR_INVALID;
    if (ep->freeing)
        return 0;
    /* A copy: a callback run by this very packet may free the relay. */
    remote = relay->addr;
    path.local.addr = (ngtcp2_sockaddr *)&ep->relay_local;
    path.local.addrlen = sizeof(ep->relay_local);
    path.remote.addr = (ngtcp2_sockaddr *)&remote;
    path.remote.addrlen = sizeof(remote);
    path.user_data = NULL;
    qpc_endpoint_input(ep, &path, true, data, len);
    return 0;
}
