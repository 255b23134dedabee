/*
 * link.c: P2P links and the frames on them (link.h).
 *
 * The one idea: a link is one QUIC connection to one peer, direct or relayed through
 * our server, and a peer may have several at once (both sides dialled, several
 * addresses tried, a relayed one beside a direct one). Whatever goes to a peer takes
 * link_best: a direct link if one is up, else a relayed one. Each link uses one
 * bidirectional stream (the first opened) for P2pFrames: envelopes one way, acks back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "link.h"
#include "qpc/addr.h"
#include "output.h"
#include "peers.h"
#include "qpc/log.h"
#include "routes.h"

bool link_is(const void *user)
{
    return user != NULL && ((const struct link *)user)->kind == CONN_P2P;
}

struct link *link_new(struct client *cl, struct peer_state *ps, bool relayed, const char *addr)
{
    static uint64_t next_serial;
    struct link *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->kind = CONN_P2P;
    l->cl = cl;
    l->serial = ++next_serial;
    l->relayed = relayed;
    snprintf(l->addr, sizeof(l->addr), "%s", addr != NULL ? addr : "");
    if (ps != NULL)
        link_attach(l, ps);
    return l;
}

void link_attach(struct link *l, struct peer_state *ps)
{
    l->ps = ps;
    LL_PREPEND(ps->links, l);
}

void link_free(struct link *l)
{
    if (l->ps != NULL)
        LL_DELETE(l->ps->links, l);
    free(l);
}

struct link *link_find(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint64_t serial)
{
    struct peer_state *ps = peers_find(&cl->peers, key);
    struct link *l;

    if (ps == NULL)
        return NULL;
    LL_FOREACH(ps->links, l) {
        if (l->serial == serial)
            return l->up ? l : NULL;
    }
    return NULL;
}

void link_note_stream(struct link *l, int64_t sid)
{
    if (!l->has_sid) {
        l->sid = sid;
        l->has_sid = true;
    }
}

static int link_stream(struct link *l)
{
    int rc;

    if (l->has_sid)
        return 0;
    rc = qpc_quic_conn_open_stream(l->conn, &l->sid);
    if (rc == 0)
        l->has_sid = true;
    return rc;
}

int link_send_envelope_bytes(struct link *l, const uint8_t *buf, size_t len)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    int rc;

    f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
    f.envelope.data = (uint8_t *)buf;
    f.envelope.len = len;
    rc = link_stream(l);
    return rc == 0 ? qpc_quic_conn_send_message(l->conn, l->sid, &f.base) : rc;
}

int link_send_envelope(struct link *l, const struct qpc_envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = qpc_envelope_encode(env, &buf, &len);

    if (rc == 0)
        rc = link_send_envelope_bytes(l, buf, len);
    free(buf);
    return rc;
}

void link_send_ack(struct link *l, int64_t sid, const uint8_t *id, Qpc__Status st)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    Qpc__P2pAck ack = QPC__P2P_ACK__INIT;

    ack.id.data = (uint8_t *)id;
    ack.id.len = id != NULL ? QPC_ID_LEN : 0;
    ack.status = st;
    f.body_case = QPC__P2P_FRAME__BODY_ACK;
    f.ack = &ack;
    /* The ack goes back on the stream the envelope came on. */
    if (qpc_quic_conn_send_message(l->conn, sid, &f.base) < 0)
        qpc_log_debug("node", "ack dropped");
}

struct link *link_best(struct peer_state *ps)
{
    struct link *l, *relayed = NULL;

    if (ps == NULL)
        return NULL;
    LL_FOREACH(ps->links, l) {
        if (!l->up)
            continue;
        if (!l->relayed)
            return l;
        relayed = l;
    }
    return relayed;
}

bool link_direct_up(struct peer_state *ps)
{
    struct link *l = link_best(ps);

    return l != NULL && !l->relayed;
}

bool link_direct_at(struct peer_state *ps, const char *addr)
{
    struct link *l;

    LL_FOREACH(ps->links, l) {
        if (!l->relayed && strcmp(l->addr, addr) == 0)
            return true;
    }
    return false;
}

struct link *link_toward(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN])
{
    struct link *l = link_best(peers_find(&cl->peers, recipient));
    uint8_t via[QPC_KEY_LEN];

    if (l != NULL)
        return l;
    if (routes_next_peer(cl->routes, recipient, via))
        return link_best(peers_find(&cl->peers, via));
    return NULL;
}

size_t link_count(const struct client *cl)
{
    const struct peer_state *ps = NULL;
    const struct link *l;
    size_t n = 0;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        LL_FOREACH(ps->links, l)
            n += l->up;
    }
    return n;
}

void link_describe(struct client *cl)
{
    const struct peer_state *ps = NULL;
    const struct link *l;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        LL_FOREACH(ps->links, l) {
            const struct qpc_peer *p = qpc_identity_peer_get(cl->id, ps->key);
            char who[13];

            if (!l->up)
                continue;
            short_id(who, ps->key);
            say(cl, "  peer %s  %s  %s %s", who, p != NULL && p->name != NULL ? p->name : "-",
                l->relayed ? "relayed via" : "direct", l->addr);
        }
    }
}
