/*
 * dial.c: reaching a peer (dial.h).
 *
 * The one idea: paths to a peer are tried in order, as a ladder. First a direct QUIC
 * connection to every address it was seen at (mDNS, the directory, its server's
 * observation); if none is up within direct_timeout_ms, the same end-to-end QUIC
 * connection relayed through our server (DATAGRAM frames); if that does not come up
 * either, what is held for the peer is handed to the server. While a peer is only
 * reachable through the relay, direct dials continue in the background, and a direct
 * link, once up, takes the traffic and the relayed one is closed.
 */
#include <string.h>
#include <utlist.h>

#include "dial.h"
#include "handover.h"
#include "link.h"
#include "qpc/addr.h"
#include "output.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "session.h"

#define DIAL_ADDRS_MAX 3

static int dial_addr(struct client *cl, struct peer_state *ps, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    struct link *l;
    int rc = qpc_addr_resolve(addr, &ss, &len);

    if (rc < 0)
        return rc;
    l = link_new(cl, ps, false, addr);
    if (l == NULL)
        return QPC_ERR_NOMEM;
    rc = qpc_quic_connect(cl->ep, (struct sockaddr *)&ss, len, QPC_ALPN_P2P, ps->key, l, &l->conn);
    if (rc < 0) {
        link_free(l);
        return rc;
    }
    ps->dialing++;
    return 0;
}

int dial_direct(struct client *cl, struct peer_state *ps)
{
    const struct qpc_peer *p = qpc_identity_peer_get(cl->id, ps->key);
    int started = 0;

    if (p == NULL || ps->dialing > 0)
        return 0;
    for (size_t i = 0; i < p->address_count && i < DIAL_ADDRS_MAX; i++) {
        /* An address of a link already up needs no second dial. */
        if (!link_direct_at(ps, p->addresses[i]) && dial_addr(cl, ps, p->addresses[i]) == 0)
            started++;
    }
    return started;
}

void dial_fresh_address(struct client *cl, struct peer_state *ps, const char *addr)
{
    if (!link_direct_up(ps) && !link_direct_at(ps, addr))
        dial_addr(cl, ps, addr);
}

void dial_discovered(struct client *cl, struct peer_state *ps, const char *addr)
{
    const uint8_t *me = qpc_identity_public_key(cl->id);

    /* What is held for the peer goes as soon as the link is up (node.c). Without
     * anything waiting, one side of each pair makes the link: the smaller key. */
    if (!link_direct_up(ps) && !link_direct_at(ps, addr) &&
        (custody_waits_for(&cl->custody, cl->store, ps->key) || memcmp(me, ps->key, QPC_KEY_LEN) < 0))
        dial_addr(cl, ps, addr);
}

void dial_known(struct client *cl)
{
    const struct qpc_peer *p = NULL;

    while ((p = qpc_identity_peer_next(cl->id, p)) != NULL) {
        struct peer_state *ps;

        if (p->kind != QPC_PEER_CLIENT || p->address_count == 0)
            continue;
        ps = peers_get(&cl->peers, p->key);
        if (ps != NULL && link_best(ps) == NULL)
            dial_direct(cl, ps);
    }
}

/* ---- the relayed path ------------------------------------------------------------ */

static int relay_send_cb(void *user, const uint8_t *pkt, size_t len)
{
    struct peer_state *ps = user;

    return session_relay_send(ps->cl, ps->key, pkt, len);
}

static struct qpc_quic_relay *relay_path(struct client *cl, struct peer_state *ps)
{
    if (ps->relay == NULL && session_up(cl) &&
        qpc_quic_relay_new(cl->ep, relay_send_cb, ps, &ps->relay) < 0)
        ps->relay = NULL;
    return ps->relay;
}

static int dial_relayed(struct client *cl, struct peer_state *ps)
{
    struct qpc_quic_relay *r = relay_path(cl, ps);
    struct link *l;
    int rc;

    if (r == NULL)
        return QPC_ERR_CLOSED;
    l = link_new(cl, ps, true, session_address(cl));
    if (l == NULL)
        return QPC_ERR_NOMEM;
    rc = qpc_quic_connect_relayed(cl->ep, r, QPC_ALPN_P2P, ps->key, l, &l->conn);
    if (rc < 0)
        link_free(l);
    return rc;
}

void dial_relay_input(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                      const uint8_t *pkt, size_t len)
{
    struct peer_state *ps = peers_get(&cl->peers, key);
    struct qpc_quic_relay *r = ps != NULL ? relay_path(cl, ps) : NULL;

    if (r != NULL)
        qpc_quic_endpoint_input_relayed(cl->ep, r, pkt, len);
}

void dial_session_down(struct client *cl)
{
    struct peer_state *ps = NULL;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        if (ps->relay != NULL) {
            qpc_quic_relay_free(ps->relay);   /* ends relayed links: node.c's cb_closed */
            ps->relay = NULL;
        }
    }
}

/* ---- the ladder -------------------------------------------------------------------- */

void dial_fallback_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct peer_state *ps = w->data;
    struct client *cl = ps->cl;

    if (link_best(ps) != NULL) {
        ps->phase = PH_IDLE;
        return;
    }
    if (ps->phase == PH_DIRECT && session_up(cl) && dial_relayed(cl, ps) == 0) {
        char who[13];

        short_id(who, ps->key);
        qpc_log_info("node", "no direct path to %s, trying relay via %s", who, session_address(cl));
        ps->phase = PH_RELAY;
        ev_timer_set(w, (double)cl->cc->direct_timeout_ms / 1000.0, 0.0);
        ev_timer_start(loop, w);
        return;
    }
    ps->phase = PH_HELD;
    handover_to_server(cl, ps->key);
}

void dial_reach(struct client *cl, struct peer_state *ps)
{
    if (link_best(ps) != NULL) {
        handover_flush(cl);
        return;
    }
    if (ps->phase == PH_DIRECT || ps->phase == PH_RELAY)
        return;
    ps->phase = PH_DIRECT;
    dial_direct(cl, ps);
    if (session_up(cl))
        session_peer_info(cl, ps->key);
    ev_timer_set(&ps->fallback, (double)cl->cc->direct_timeout_ms / 1000.0, 0.0);
    ev_timer_start(cl->loop, &ps->fallback);
}

void dial_retry(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint64_t now)
{
    struct peer_state *ps;

    if (link_toward(cl, key) != NULL)
        return;
    ps = peers_get(&cl->peers, key);
    if (ps == NULL || now < ps->next_dial_ms || ps->dialing > 0)
        return;
    ps->next_dial_ms = now + ps->backoff_ms;
    ps->backoff_ms = ps->backoff_ms * 2 > DIAL_BACKOFF_MAX_MS ? DIAL_BACKOFF_MAX_MS : ps->backoff_ms * 2;
    dial_direct(cl, ps);
    if (session_up(cl))
        session_peer_info(cl, ps->key);
}

void dial_retry_direct(struct client *cl, uint64_t now)
{
    struct peer_state *ps = NULL;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        struct link *l = link_best(ps);

        if (l != NULL && l->relayed && now >= ps->next_direct_try_ms) {
            ps->next_direct_try_ms = now + DIAL_DIRECT_RETRY_MS;
            dial_direct(cl, ps);
        }
    }
}

/* ---- links settling ---------------------------------------------------------------- */

void dial_settled(struct peer_state *ps)
{
    if (ps->dialing > 0)
        ps->dialing--;
}

void dial_link_up(struct client *cl, struct link *l, uint64_t now)
{
    struct peer_state *ps = l->ps;
    char who[13];

    short_id(who, ps->key);
    if (!l->relayed) {
        /* A direct path takes over from the relay (the other side may have left the
         * relay first, so remember that we were relayed rather than look for the link). */
        struct link *o, *otmp;
        bool had_relay = ps->was_relayed;

        LL_FOREACH_SAFE(ps->links, o, otmp) {
            if (o != l && o->up && o->relayed) {
                had_relay = true;
                qpc_quic_conn_close(o->conn, QPC_QUIC_APP_NO_ERROR, "direct path up");
                o->up = false;
            }
        }
        if (had_relay)
            info(cl, "%s: direct path works (%s), leaving the relay", who, l->addr);
        ps->was_relayed = false;
    } else {
        ps->was_relayed = true;
        ps->next_direct_try_ms = now + DIAL_DIRECT_RETRY_MS;
    }
    qpc_log_info("node", "link to %s up (%s %s)", who, l->relayed ? "relayed via" : "direct", l->addr);
    ps->phase = PH_IDLE;
    ps->backoff_ms = DIAL_BACKOFF_MIN_MS;
    ev_timer_stop(cl->loop, &ps->fallback);
}
