/*
 * node.c: the P2P node's face: starting and stopping it, the QUIC endpoint's callbacks,
 * the session's callbacks, and the calls main, repl and discover make (node.h).
 *
 * The one idea: this file decides nothing itself; it is where events enter the node and
 * are handed to the file that owns the decision. A connection came up: the key is
 * learned (routes.c), the path may change (dial.c), what waited goes (handover.c,
 * flood.c). A frame arrived: receive.c. A peer was seen: learn, then dial. One UDP
 * socket and one endpoint carry P2P links and the server session alike; a connection's
 * user pointer tells which (a struct link, or the client itself).
 *
 * Built without mesh (QPC_MESH 0) the endpoint accepts nothing and dials only servers,
 * so every connection is the session's; what is held goes to the server (handover.c),
 * and the P2P half of this file (links, dials, peers seen) is not compiled.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utlist.h>
#include <sodium.h>

#include "flood.h"
#include "handover.h"
#include "history.h"
#if QPC_MESH
#include "announce.h"
#include "dial.h"
#include "link.h"
#include "verify.h"
#endif
#include "qpc/addr.h"
#include "node.h"
#include "output.h"
#include "qpc/broadcast.h"
#include "qpc/direct.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/resolve.h"
#include "receive.h"
#include "routes.h"
#include "session.h"
#include "state.h"
#include "tick.h"
#include "turn.h"

static const uint8_t *my_key(const struct client *cl)
{
    return qpc_identity_public_key(cl->id);
}

/* ---- the QUIC endpoint's callbacks ------------------------------------------------ */

#if QPC_MESH

static int cb_connected(struct qpc_quic_conn *conn, const char *alpn, const uint8_t *key, void *user)
{
    struct link *l = user;
    struct client *cl;
    struct peer_state *ps;
    uint64_t now = now_ms();

    if (user == NULL)
        return 1;
    if (!link_is(user)) {
        /* The user is the client: our server session, or an accepted P2P connection. */
        cl = user;
        if (session_owns_conn(cl, conn))
            return session_on_connected(cl, conn, key);
        if (strcmp(alpn, QPC_ALPN_P2P) != 0 || key == NULL)
            return 1;
        l = link_new(cl, NULL, false, "");
        if (l == NULL)
            return 1;
        l->conn = conn;
        l->relayed = qpc_quic_addr_is_relay(qpc_quic_conn_remote_addr(conn, &(socklen_t){ 0 }));
        qpc_quic_conn_set_user(conn, l);
    }
    cl = l->cl;
    if (key == NULL || memcmp(key, my_key(cl), QPC_KEY_LEN) == 0)
        return 1;
    ps = peers_get(&cl->peers, key);
    if (ps == NULL)
        return 1;
    if (l->ps == NULL)
        link_attach(l, ps);
    else if (!l->relayed && l->initiated)
        dial_settled(ps);
    if (l->relayed)
        snprintf(l->addr, sizeof(l->addr), "%s", session_address(cl) ? session_address(cl) : "relay");
    else
        qpc_addr_format(qpc_quic_conn_remote_addr(conn, &(socklen_t){ 0 }), l->addr, sizeof(l->addr));
    l->up = true;
    l->came_up = true;
    qpc_quic_conn_set_keepalive(conn, qpc_quic_conn_is_server(conn) ? 0 : LINK_KEEPALIVE_MS);
    if (routes_learn_link(cl->id, cl->routes, key, l->addr, l->relayed, qpc_quic_conn_is_server(conn), now))
        cl->id_dirty = true;
    dial_link_up(cl, l, now);
    announce_link_up(cl, l);   /* before the flush: the neighbour learns where we are */
    /* What waited for this peer goes now; so do live broadcasts it may have missed. */
    handover_flush(cl);
    flood_replay_to_link(cl, l, now);
    return 0;
}

static void cb_frame(struct qpc_quic_conn *conn, int64_t sid, const uint8_t *d, size_t n, void *user)
{
    struct link *l = user;

    if (link_is(user)) {
        receive_frame(l->cl, l, sid, d, n);
        return;
    }
    if (user != NULL && session_owns_conn(user, conn))
        session_on_frame(user, conn, d, n);
}

static void cb_datagram(struct qpc_quic_conn *conn, const uint8_t *d, size_t n, void *user)
{
    if (link_is(user))
        return;
    if (user != NULL && session_owns_conn(user, conn))
        session_on_datagram(user, d, n);
}

static void cb_writable(struct qpc_quic_conn *conn, int64_t sid, void *user)
{
    struct link *l = user;

    if (link_is(user))
        handover_flush(l->cl);
}

static void cb_closed(struct qpc_quic_conn *conn, const struct qpc_quic_close_info *info, void *user)
{
    struct link *l = user;
    struct peer_state *ps;
    struct client *cl;
    bool came_up;

    if (!link_is(user)) {
        if (user != NULL && session_owns_conn(user, conn))
            session_on_closed(user, conn, info);
        return;
    }
    cl = l->cl;
    came_up = l->came_up;
    if (l->ps != NULL && !l->up && !l->relayed && l->initiated)
        dial_settled(l->ps);
    if (l->up && l->ps != NULL) {
        char who[13];

        short_id(who, l->ps->key);
        qpc_log_info("node", "link to %s closed (%s %s): %s%s%s%s", who, l->relayed ? "relayed via" : "direct",
                     l->addr, info->by_peer ? "by the peer, " : "", qpc_strerror(info->err),
                     info->reason[0] ? ": " : "", info->reason);
    }
    ps = l->ps;
    custody_link_gone(&cl->custody, l);
    link_free(l);
    if (ps != NULL)
        announce_link_gone(cl, ps);
    handover_flush(cl);
    if (ps != NULL)
        dial_link_gone(cl, ps, came_up);   /* a lost link: back to the relay at once */
}
#else
/* Without mesh: every connection is my server session (or a server tried beside it). */
static int cb_connected(struct qpc_quic_conn *conn, const char *alpn, const uint8_t *key, void *user)
{
    return user != NULL && session_owns_conn(user, conn) ? session_on_connected(user, conn, key) : 1;
}

static void cb_frame(struct qpc_quic_conn *conn, int64_t sid, const uint8_t *d, size_t n, void *user)
{
    if (user != NULL && session_owns_conn(user, conn))
        session_on_frame(user, conn, d, n);
}

static void cb_datagram(struct qpc_quic_conn *conn, const uint8_t *d, size_t n, void *user)
{
    if (user != NULL && session_owns_conn(user, conn))
        session_on_datagram(user, d, n);
}

static void cb_closed(struct qpc_quic_conn *conn, const struct qpc_quic_close_info *info, void *user)
{
    if (user != NULL && session_owns_conn(user, conn))
        session_on_closed(user, conn, info);
}
#endif

/* ---- the session's callbacks ------------------------------------------------------ */

static int on_server_envelope(struct client *cl, const uint8_t *buf, size_t len, const char *server)
{
    return receive_from_server(cl, buf, len, server);
}

static void on_session_up(struct client *cl, bool up)
{
#if QPC_MESH
    if (!up) {
        dial_session_down(cl);
        return;
    }
    /* Register my candidates, then punch for every race under way (no tick to wait for). */
    dial_session_up(cl);
    announce_session_up(cl);
#else
    if (!up)
        return;   /* what is held waits in the outbox for the next session */
#endif
    handover_session_up(cl);   /* messages only a server carries go again */
    handover_flush(cl);        /* (without mesh: what is held goes to the server) */
    /* Live broadcasts the server may have missed (it drops the ones it has seen). */
    flood_replay_to_server(cl, now_ms());
}

/* The server refused for good a message only it could carry: nothing will deliver it. */
static void on_server_refused(struct client *cl, const uint8_t id[static QPC_ID_LEN])
{
    struct inflight *f = custody_take(&cl->custody, id);

    if (f != NULL) {
        state_unpersist(cl, f->id);
        custody_entry_free(f);
    }
    receipts_forget(&cl->receipts, id);
    state_unawait(cl, id);
}

/*
 * The server took an envelope of mine. Its copy in my outbox goes too when nothing else
 * would ever end it: a receipt (no receipt answers a receipt, so it would wait for its
 * TTL) or an envelope that travels through my server alone (held for a node domain, or
 * built without mesh). My own message whose receipt I wait for stays: its copy races
 * on the mesh paths and its receipt ends it (the server's path may strand it).
 */
static void on_server_held(struct client *cl, const uint8_t id[static QPC_ID_LEN])
{
    struct inflight *f = custody_find(&cl->custody, id);

    if (f == NULL || (!f->server_only && handover_reports(cl, &f->env)))
        return;
    f = custody_take(&cl->custody, id);
    state_unpersist(cl, f->id);
    custody_entry_free(f);
}

/* Without mesh the node has no links to pass it on to nor routes to take from it. */
static void on_server_announce(struct client *cl, const Qpc__MeshAnnounce *a)
{
#if QPC_MESH
    announce_receive(cl, NULL, a);
#else
    (void)cl;
    (void)a;
#endif
}

static const struct session_callbacks session_cbs = {
    .on_announce = on_server_announce,
    .on_envelope = on_server_envelope,
#if QPC_MESH
    .on_peer_info = dial_peer_info,
    .on_punch = dial_punch_notice,
    .on_observed = dial_observed,
    .on_punch_refused = dial_punch_refused,
    .on_relay_packet = dial_relay_input,
#endif
    .on_refused = on_server_refused,
    .on_held = on_server_held,
    .on_up = on_session_up,
};

/* ---- start and stop ------------------------------------------------------------------ */

int node_start(struct client *cl, bool listen, char *err, size_t errlen)
{
    struct qpc_quic_config qc;
    char host[QPC_ADDRESS_MAX + 1];
    uint16_t port = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int rc;

#if QPC_MESH
    peers_init(&cl->peers, cl, dial_timer_cb, DIAL_BACKOFF_MIN_MS);
#else
    peers_init(&cl->peers, cl, NULL, 0);   /* stays empty: no links, no dials */
#endif
    randombytes_buf(&cl->instance, sizeof(cl->instance));
    custody_init(&cl->custody, my_key(cl));
    session_set_callbacks(cl, &session_cbs);
    cl->box = qpc_box_cache_new(qpc_identity_secret_key(cl->id));
    if (cl->routes == NULL)   /* route_state.c makes it with the state; a test may not */
        cl->routes = qpc_route_table_new(0);
#if QPC_MESH
    if (announce_start(cl) < 0) {
        snprintf(err, errlen, "out of memory");
        return QPC_ERR_NOMEM;
    }
#endif
    if (cl->box == NULL || cl->routes == NULL) {
        snprintf(err, errlen, "out of memory");
        return QPC_ERR_NOMEM;
    }
    if (qpc_addr_parse(cl->cc->listen, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "bad listen address '%s'", cl->cc->listen);
        return QPC_ERR_INVALID;
    }
    memset(&qc, 0, sizeof(qc));
    qc.bind_addr = host;
    qc.port = port;
    qc.accept = listen && QPC_MESH;
    /* Without mesh nobody dials this socket: any port, both families (for the server). */
    if (!QPC_MESH)
        qc.bind_addr = NULL, qc.port = 0;
    qc.alpns[0] = QPC_ALPN_P2P;
    qc.identity_sk = qpc_identity_secret_key(cl->id);
    qc.keepalive_ms = 10000;   /* my server session; P2P links set theirs (cb_connected) */
    qc.cb.on_connected = cb_connected;
    qc.cb.on_frame = cb_frame;
    qc.cb.on_datagram = cb_datagram;
#if QPC_MESH
    qc.cb.on_writable = cb_writable;
#endif
    qc.cb.on_closed = cb_closed;
    qc.user = cl;
    rc = qpc_quic_endpoint_new(&cl->ep, cl->loop, &qc);
    if (rc < 0 && !QPC_MESH) {
        qc.bind_addr = "0.0.0.0";   /* a host without IPv6 */
        rc = qpc_quic_endpoint_new(&cl->ep, cl->loop, &qc);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cl->cc->listen, qpc_strerror(rc));
        return rc;
    }
    if (qpc_quic_endpoint_local_addr(cl->ep, &ss, &sl) == 0) {
        qpc_addr_format((struct sockaddr *)&ss, cl->listen_text, sizeof(cl->listen_text));
        cl->listen_port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                                  : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
#if QPC_MESH
    /* The signature checks of envelopes from links are what limits a relay's forwarding
     * rate; on a machine with more than one CPU, verify_threads = auto (the default)
     * hands them to worker threads (verify.h; docs/architecture.md says why this is the
     * one exception to DESIGN.md's no threads on the hot path besides the server queue's
     * sync thread). On one CPU, or with verify_threads = 0, they stay on the loop. */
    {
        unsigned vt = client_verify_threads(cl->cc->verify_threads,
                                            sysconf(_SC_NPROCESSORS_ONLN));

        if (vt > 0 && verify_pool_new(cl->loop, vt, &cl->verify) < 0)
            qpc_log_warn("node", "no signature-checking threads: envelopes are verified on the loop");
        else if (vt > 0)
            qpc_log_info("node", "signatures of relayed envelopes checked on %u thread(s)", vt);
    }
    if ((cl->vouches = qpc_batch_vouches_new(0)) == NULL)
        qpc_log_warn("node", "no room for broadcast batches: every broadcast is verified alone");
    /* Loopback candidates only make sense when everything runs on this host. */
    cl->allow_loopback = candidate_is_loopback(cl->cc->listen) || candidate_is_loopback(cl->cc->server);
    dial_refresh_candidates(cl, now_ms(), true);
#endif
    state_load_outbox(cl, now_ms());
    tick_start(cl);
    turn_start(cl);
#if QPC_MESH
    announce_tick(cl, now_ms());   /* static peers are dialled now, not a tick later */
#endif
    return 0;
}

void node_shutdown(struct client *cl)
{
#if QPC_MESH
    struct peer_state *ps = NULL;
    struct link *l;
#endif

    if (cl->ep == NULL)
        return;
    cl->closing = true;
#if QPC_MESH
    /* Every link says goodbye while the session still carries the relayed ones, so no
     * peer keeps sending to a port that is about to close. */
    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        ev_timer_stop(cl->loop, &ps->timer);
        LL_FOREACH(ps->links, l)
            qpc_quic_conn_close(l->conn, QPC_QUIC_APP_NO_ERROR, "bye");
    }
#endif
    /* Two turns: the closes are written, then the datagrams the relayed ones became. */
    ev_run(cl->loop, EVRUN_NOWAIT);
    ev_run(cl->loop, EVRUN_NOWAIT);
}

void node_stop(struct client *cl)
{
    cl->closing = true;
#if QPC_MESH
    /* Envelopes still being checked get no ack: their senders send them again. */
    verify_pool_free(cl->verify);
    cl->verify = NULL;
#endif
    /* The last turn's work (receipts owed, rows staged, my broadcasts) is committed or
     * sent before the links go. */
    turn_end(cl);
#if QPC_MESH
    qpc_batch_vouches_free(cl->vouches);
    cl->vouches = NULL;
#endif
    turn_stop(cl);
    tick_stop(cl);
    session_close(cl);                /* main did already: the server session goes first */
#if QPC_MESH
    dial_stop(cl);                    /* peer names being looked up: no dial follows */
#endif
    qpc_quic_endpoint_free(cl->ep);   /* closes links: cb_closed frees them */
    cl->ep = NULL;
    qpc_resolver_free(cl->resolver);  /* no lookup is left: dial_stop and session_close */
    cl->resolver = NULL;
    peers_clear(&cl->peers, cl->loop);
    custody_clear(&cl->custody);
    qpc_box_cache_free(cl->box);
    cl->box = NULL;
#if QPC_MESH
    announce_stop(cl);   /* the routes stay: route_state.c saves them with the state */
#endif
}

/* ---- what main, repl and discover call ------------------------------------------------ */

/* A message of mine waiting for the commit of its hold. */
struct sending {
    uint8_t peer[QPC_KEY_LEN];
    uint8_t id[QPC_ID_LEN];
    bool via_server;                   /* for a node domain: to my server at once */
};

static void sent_cb(struct client *cl, void *arg, int status)
{
    struct sending *s = arg;
#if QPC_MESH
    struct peer_state *ps;
#endif

    if (status < 0) {
        struct event ev = { .kind = EVT_FAILED, .peer = s->peer, .id = s->id, .err = status,
                            .text = "cannot keep it in the outbox" };

        ev.text_len = strlen(ev.text);
        receipts_forget(&cl->receipts, s->id);
        state_unawait(cl, s->id);
        emit(cl, &ev);
    } else if (cl->ep != NULL) {
#if QPC_MESH
        if (s->via_server && session_up(cl)) {
            handover_to_server(cl, s->peer);
        } else if ((ps = peers_get(&cl->peers, s->peer)) != NULL) {
            announce_fill_candidates(cl, ps);   /* where its announces say it is */
            dial_reach(cl, ps);
        }
#else
        /* To the server now, or kept in the outbox (the user hears "queued") for the next
         * session, which hands it over again. */
        handover_to_server(cl, s->peer);
#endif
    }
    free(s);
}

int node_send_text(struct client *cl, const uint8_t peer[static QPC_KEY_LEN], const char *domain,
                   const char *text, uint8_t id_out[static QPC_ID_LEN])
{
    struct qpc_envelope env = { 0 };
    struct sending *s = NULL;
    uint8_t *plain = NULL, *box = NULL;
    size_t plen = 0, blen = 0;
    uint64_t now = now_ms(), expires;
    int rc;

    if (memcmp(peer, my_key(cl), QPC_KEY_LEN) == 0 ||
        (domain != NULL && domain[0] != '\0' && !qpc_direct_domain_valid(domain)))
        return QPC_ERR_INVALID;
    if (domain != NULL && domain[0] != '\0' && !session_up(cl))
        return QPC_ERR_CLOSED;
    /* reply_domain: where the recipient's receipt must go if it is on another node. */
    rc = qpc_direct_encode_text(text, strlen(text), session_domain(cl), &plain, &plen);
    if (rc == 0)
        rc = qpc_box_seal(cl->box, peer, plain, plen, &box, &blen);
    if (rc == 0)
        rc = qpc_envelope_init(&env, qpc_identity_secret_key(cl->id), peer, NULL, now,
                               (uint32_t)cl->cc->default_ttl, (uint32_t)cl->cc->max_hops, box, blen);
    if (rc == 0 && (s = calloc(1, sizeof(*s))) == NULL)
        rc = QPC_ERR_NOMEM;
    if (rc < 0)
        goto out;
    memcpy(s->peer, peer, QPC_KEY_LEN);
    memcpy(s->id, env.id, QPC_ID_LEN);
    s->via_server = domain != NULL && domain[0] != '\0';
    memcpy(id_out, env.id, QPC_ID_LEN);
    history_add_sent(cl->history, env.id, peer, NULL, text, strlen(text), now);
    expires = qpc_envelope_expires_at_ms(&env);
    /* Waiting first, so whatever the hold reports is reported to the user. */
    rc = receipts_wait(&cl->receipts, env.id, peer, env.created_at_ms, expires);
    if (rc == 0)
        rc = handover_hold(cl, &env, domain, now, sent_cb, s);
    if (rc < 0) {
        receipts_forget(&cl->receipts, s->id);
        free(s);
        goto out;
    }
    if (state_await(cl, s->id, peer, now, expires, now) < 0)
        qpc_log_warn("node", "cannot note the wait for a receipt: one after a restart is not recognised");
out:
    if (plain != NULL)
        sodium_memzero(plain, plen);
    free(plain);
    free(box);
    qpc_envelope_clear(&env);
    return rc;
}

int node_broadcast(struct client *cl, const char *topic, const char *text, uint8_t id_out[static QPC_ID_LEN])
{
    const struct qpc_channel *ch = qpc_broadcast_lookup(cl->channels, topic);
    struct qpc_channel_set *tmpset = NULL;
    struct qpc_envelope env = { 0 };
    uint64_t now = now_ms();
    int rc;

    if (ch == NULL) {
        /* Not subscribed: publish on the open channel of that name. */
        tmpset = qpc_broadcast_set_new();
        if (tmpset == NULL)
            return QPC_ERR_NOMEM;
        rc = qpc_broadcast_subscribe(tmpset, topic, NULL, &ch);
        if (rc < 0)
            goto out;
    }
    rc = qpc_broadcast_envelope_new(ch, qpc_identity_secret_key(cl->id), now,
                                    (uint32_t)cl->cc->default_ttl, (uint32_t)cl->cc->max_hops,
                                    (const uint8_t *)text, strlen(text), &env);
    if (rc < 0)
        goto out;
    memcpy(id_out, env.id, QPC_ID_LEN);
    history_add_sent(cl->history, env.id, NULL, topic, text, strlen(text), now);
    state_note_shown(cl, &env);   /* my own, echoed back after a restart, is not news */
    flood_originate(cl, &env, now);
out:
    qpc_envelope_clear(&env);
    qpc_broadcast_set_free(tmpset);
    return rc;
}

#if QPC_MESH
void node_peer_seen(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const char *addr,
                    enum qpc_peer_source src)
{
    struct peer_state *ps;

    if (memcmp(key, my_key(cl), QPC_KEY_LEN) == 0)
        return;
    if (addr != NULL && !routes_address_usable(addr, src))
        return;
    if (addr != NULL && routes_learn_told(cl->id, cl->routes, key, addr, src, now_ms()))
        cl->id_dirty = true;
    ps = peers_get(&cl->peers, key);
    if (ps == NULL)
        return;
    if (addr != NULL)
        dial_fresh_address(cl, ps, addr);
    else if (link_best(ps) == NULL)
        dial_reach(cl, ps);
}

void node_peer_discovered(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                          const struct candidates *cands)
{
    struct peer_state *ps;
    uint64_t now = now_ms();

    if (memcmp(key, my_key(cl), QPC_KEY_LEN) == 0 || cands->n == 0)
        return;
    /* The directory and routes note the first (best) one, as a claim (routes.c). */
    if (routes_learn_mdns(cl->id, cl->routes, key, cands->addr[0], now))
        cl->id_dirty = true;
    ps = peers_get(&cl->peers, key);
    if (ps != NULL)
        dial_discovered(cl, ps, cands);
}

void node_path_text(struct client *cl, const uint8_t key[static QPC_KEY_LEN], char *out, size_t cap)
{
    struct peer_state *ps = peers_find(&cl->peers, key);

    if (ps == NULL)
        snprintf(out, cap, "none");
    else
        link_path_text(ps, out, cap);
}

const struct candidates *node_candidates(const struct client *cl)
{
    return &cl->my_cands;
}

void node_dial_known(struct client *cl)
{
    dial_known(cl);
}

void node_describe_links(struct client *cl)
{
    link_describe(cl);
}

size_t node_link_count(const struct client *cl)
{
    return link_count(cl);
}

bool node_peer_connected(const struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    return link_best(peers_find(&cl->peers, key)) != NULL;
}
#endif
