/*
 * node.c: the P2P node: links to peers over quicprochat/p2p/1, and what travels on them.
 *
 * The one idea: every direct envelope that leaves this node -- my own message or one I
 * forward for someone else -- is first HELD (MeshStore in memory, outbox.db on disk) and
 * only then offered to the best link toward its recipient. Sending moves it from the
 * store to the in-flight table; only the ack of the next holder (the recipient itself,
 * or a node that stored it durably) removes it for good. A link that dies takes nothing
 * with it: in-flight envelopes are sent again on the next link, and the receiver drops
 * the copy by id (and acks it again). So "acknowledged" always means "stored or shown
 * on the other side", and nothing is lost in between.
 *
 * Paths to a peer, tried in order: a direct QUIC connection to an address it was seen at
 * (mDNS, peer directory, its server); if none is up within direct_timeout_ms, the same
 * end-to-end QUIC connection relayed through our server (DATAGRAM frames); if that does
 * not come up either, the envelope is handed to the server to hold. While a peer is
 * only reachable through the relay, direct dials continue in the background and a direct
 * link, once up, takes the traffic.
 *
 * Broadcasts flood: each node verifies once (dedup by id first), shows it if it holds
 * the channel key, and passes it on to every other link -- and to its server, unless it
 * came from there -- with hop_count + 1 until max_hops. Nodes keep live broadcasts in the
 * store and hand them to peers (and a server) they meet later.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <utlist.h>

#include "client.h"
#include "qpc.pb-c.h"
#include "qpc/error.h"
#include "qpc/log.h"

#define DIAL_ADDRS_MAX 3
#define REDIAL_MIN_MS 2000u
#define REDIAL_MAX_MS 30000u
#define DIRECT_RETRY_MS 5000u          /* while relayed, try direct this often */
#define GC_INTERVAL_MS 60000u
#define MDNS_ONLY_PEERS_MAX 256        /* directory entries mDNS claims alone may create */
#define PEERS_GC_ABOVE 1024            /* idle peer states are forgotten above this many */

enum conn_kind { CONN_P2P = 1 };

struct link {
    int kind;                          /* CONN_P2P: tells link from session on a conn */
    struct client *cl;
    struct qpc_quic_conn *conn;
    struct peer_state *ps;             /* set once the peer's key is known */
    bool up, relayed;
    bool has_sid;
    int64_t sid;
    char addr[QPC_ADDRESS_MAX + 1];    /* "host:port", or the relay server's address */
    struct link *next;                 /* in ps->links */
};

enum phase { PH_IDLE = 0, PH_DIRECT, PH_RELAY, PH_HELD };

struct peer_state {
    uint8_t key[QPC_KEY_LEN];
    struct client *cl;
    struct link *links;
    enum phase phase;
    ev_timer fallback;                 /* direct -> relay -> server */
    struct qpc_quic_relay *relay;      /* path through our server, when made */
    uint64_t next_dial_ms;
    uint32_t backoff_ms;
    uint64_t next_direct_try_ms;
    int dialing;                       /* outgoing direct connects not yet settled */
    bool was_relayed;                  /* last link up went through the relay */
    UT_hash_handle hh;
};

struct inflight {
    uint8_t id[QPC_ID_LEN];
    struct qpc_envelope env;
    uint8_t hop_peer[QPC_KEY_LEN];     /* the link peer it was handed to */
    struct link *link;                 /* NULL once that link is gone: resend */
    bool mine;
    enum path_kind path;
    UT_hash_handle hh;
};

/* ---- helpers ------------------------------------------------------------------------ */

static const uint8_t *my_key(const struct client *cl)
{
    return qpc_identity_public_key(cl->id);
}

static struct peer_state *peer_get(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                                   bool create);

static bool is_relay_addr(const struct sockaddr *sa)
{
    static const uint8_t prefix[8] = { 0x01, 0x00 };
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

    return sa->sa_family == AF_INET6 && memcmp(&s6->sin6_addr, prefix, 8) == 0;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
        port = ntohs(s->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
            inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], host, sizeof(host));
            snprintf(out, cap, "%s:%u", host, ntohs(s->sin6_port));
        } else {
            inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
            snprintf(out, cap, "[%s]:%u", host, ntohs(s->sin6_port));
        }
    } else {
        snprintf(out, cap, "?");
    }
}

/* Resolves "host:port" (numeric hosts, or names the system resolver knows). */
static int resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[QPC_ADDRESS_MAX + 1];
    char port[8];
    uint16_t p;
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;

    if (qpc_addr_parse(text, host, sizeof(host), &p) < 0 || p == 0)
        return QPC_ERR_INVALID;
    snprintf(port, sizeof(port), "%u", p);
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return QPC_ERR_NOT_FOUND;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* True for "a.b.c.d:port" or "[v6]:port". */
static bool addr_numeric(const char *text)
{
    char host[QPC_ADDRESS_MAX + 1];
    uint8_t bin[16];
    uint16_t p;

    return qpc_addr_parse(text, host, sizeof(host), &p) == 0 && p != 0 &&
           (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1);
}

size_t node_link_count(const struct client *cl)
{
    size_t n = 0;
    struct peer_state *ps, *tmp;
    struct link *l;

    HASH_ITER(hh, cl->peers, ps, tmp) {
        LL_FOREACH(ps->links, l)
            n += l->up;
    }
    return n;
}

/* The link to use toward ps: an up direct link before an up relayed one. */
static struct link *best_link(struct peer_state *ps)
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

bool node_peer_connected(const struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    struct peer_state *ps = NULL;

    HASH_FIND(hh, cl->peers, key, QPC_KEY_LEN, ps);
    return best_link(ps) != NULL;
}

/* The link a held envelope for recipient goes out on: to it, or via a route's next peer. */
static struct link *next_hop_link(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN])
{
    struct peer_state *ps = NULL;
    struct qpc_route r;

    HASH_FIND(hh, cl->peers, recipient, QPC_KEY_LEN, ps);
    if (best_link(ps) != NULL)
        return best_link(ps);
    if (qpc_route_lookup(cl->routes, recipient, &r) == 0 && r.via == QPC_ROUTE_VIA_PEER) {
        ps = NULL;
        HASH_FIND(hh, cl->peers, r.via_peer, QPC_KEY_LEN, ps);
        return best_link(ps);
    }
    return NULL;
}

static void route_offer(struct client *cl, const uint8_t dest[static QPC_KEY_LEN],
                        enum qpc_route_via via, const uint8_t *via_peer, const char *next_hop,
                        uint32_t hops, enum qpc_route_source src)
{
    struct qpc_route r;
    const struct qpc_peer *p = qpc_identity_peer_get(cl->id, dest);
    uint64_t now = now_ms();

    if (memcmp(dest, my_key(cl), QPC_KEY_LEN) == 0)
        return;
    memset(&r, 0, sizeof(r));
    memcpy(r.dest, dest, QPC_KEY_LEN);
    if (p != NULL && p->name != NULL)
        snprintf(r.name, sizeof(r.name), "%s", p->name);
    r.via = via;
    if (via_peer != NULL)
        memcpy(r.via_peer, via_peer, QPC_KEY_LEN);
    snprintf(r.next_hop, sizeof(r.next_hop), "%s", next_hop != NULL ? next_hop : "");
    r.hops = hops;
    r.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    r.last_seen_ms = now;
    r.source = src;
    qpc_route_update(cl->routes, &r, now, NULL);
}

/* ---- frames ------------------------------------------------------------------------- */

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

static int link_send_frame(struct link *l, const Qpc__P2pFrame *f)
{
    size_t len = qpc__p2p_frame__get_packed_size(f);
    uint8_t *buf = malloc(len ? len : 1);
    int rc;

    if (buf == NULL)
        return QPC_ERR_NOMEM;
    qpc__p2p_frame__pack(f, buf);
    rc = link_stream(l);
    if (rc == 0)
        rc = qpc_quic_conn_send_frame(l->conn, l->sid, buf, len);
    free(buf);
    return rc;
}

static int link_send_envelope_bytes(struct link *l, const uint8_t *buf, size_t len)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;

    f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
    f.envelope.data = (uint8_t *)buf;
    f.envelope.len = len;
    return link_send_frame(l, &f);
}

static int link_send_envelope(struct link *l, const struct qpc_envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = qpc_envelope_encode(env, &buf, &len);

    if (rc == 0)
        rc = link_send_envelope_bytes(l, buf, len);
    free(buf);
    return rc;
}

static void link_send_ack(struct link *l, int64_t sid, const uint8_t *id, Qpc__Status status)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    Qpc__P2pAck ack = QPC__P2P_ACK__INIT;
    size_t len;
    uint8_t *buf;

    ack.id.data = (uint8_t *)id;
    ack.id.len = id != NULL ? QPC_ID_LEN : 0;
    ack.status = status;
    f.body_case = QPC__P2P_FRAME__BODY_ACK;
    f.ack = &ack;
    len = qpc__p2p_frame__get_packed_size(&f);
    buf = malloc(len ? len : 1);
    if (buf == NULL)
        return;
    qpc__p2p_frame__pack(&f, buf);
    /* The ack goes back on the stream the envelope came on. */
    if (qpc_quic_conn_send_frame(l->conn, sid, buf, len) < 0)
        qpc_log_debug("node", "ack dropped");
    free(buf);
}

/* ---- sending held envelopes ------------------------------------------------------------ */

struct take_ctx {
    struct client *cl;
    struct link *link;
    int sent;
};

static void inflight_add(struct client *cl, struct link *l, struct qpc_envelope *env)
{
    struct inflight *f = NULL;

    HASH_FIND(hh, cl->inflight, env->id, QPC_ID_LEN, f);
    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL) {
            qpc_envelope_clear(env);
            return;
        }
        memcpy(f->id, env->id, QPC_ID_LEN);
        f->mine = memcmp(env->sender, my_key(cl), QPC_KEY_LEN) == 0;
        f->env = *env;
        HASH_ADD(hh, cl->inflight, id, QPC_ID_LEN, f);
    } else {
        qpc_envelope_clear(env);
    }
    memset(env, 0, sizeof(*env));
    memcpy(f->hop_peer, l->ps->key, QPC_KEY_LEN);
    f->link = l;
    f->path = l->relayed ? PATH_RELAYED : PATH_DIRECT;
}

static int take_send_cb(void *ctx, struct qpc_envelope *env)
{
    struct take_ctx *t = ctx;

    if (link_send_envelope(t->link, env) < 0)
        return 1;   /* stays held; retried on the next flush */
    inflight_add(t->cl, t->link, env);
    t->sent++;
    return 0;
}

/* Sends everything held for recipient over its next-hop link. */
static int flush_recipient(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN])
{
    struct take_ctx t = { cl, next_hop_link(cl, recipient), 0 };

    if (t.link == NULL)
        return 0;
    qpc_store_take_all_for(cl->store, recipient, now_ms(), take_send_cb, &t);
    return t.sent;
}

struct flush_ctx {
    struct client *cl;
    uint8_t keys[256][QPC_KEY_LEN];
    size_t n;
};

static int flush_queue_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    struct flush_ctx *fc = ctx;

    /* Only queues that can go now count toward the 256: otherwise queues for unreachable
     * recipients (strangers can make many) would crowd out the ones with a link. */
    if (q->recipient != NULL && fc->n < 256 && next_hop_link(fc->cl, q->recipient) != NULL)
        memcpy(fc->keys[fc->n++], q->recipient, QPC_KEY_LEN);
    return 0;
}

/* Sends what can go now: held queues with a link, and in-flight copies whose link died. */
static void flush_all(struct client *cl)
{
    struct flush_ctx fc;
    struct inflight *f, *tmp;
    uint8_t (*keys)[QPC_KEY_LEN] = fc.keys;
    size_t n;

    fc.cl = cl;
    fc.n = 0;
    qpc_store_foreach_queue(cl->store, flush_queue_cb, &fc);
    n = fc.n;
    for (size_t i = 0; i < n; i++)
        flush_recipient(cl, keys[i]);
    HASH_ITER(hh, cl->inflight, f, tmp) {
        struct link *l;

        if (f->link != NULL)
            continue;
        l = next_hop_link(cl, f->env.recipient);
        if (l != NULL && link_send_envelope(l, &f->env) == 0) {
            f->link = l;
            memcpy(f->hop_peer, l->ps->key, QPC_KEY_LEN);
            f->path = l->relayed ? PATH_RELAYED : PATH_DIRECT;
        }
    }
}

static int send_broadcast_cb(void *ctx, const struct qpc_envelope *env)
{
    link_send_envelope(ctx, env);
    return 0;
}

/* ---- dialing and the fallback ladder ----------------------------------------------- */

static struct link *link_new(struct client *cl, struct peer_state *ps, bool relayed, const char *addr)
{
    struct link *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->kind = CONN_P2P;
    l->cl = cl;
    l->relayed = relayed;
    snprintf(l->addr, sizeof(l->addr), "%s", addr != NULL ? addr : "");
    if (ps != NULL) {
        l->ps = ps;
        LL_PREPEND(ps->links, l);
    }
    return l;
}

static void link_detach(struct link *l)
{
    if (l->ps != NULL)
        LL_DELETE(l->ps->links, l);
    l->ps = NULL;
}

static int dial_addr(struct client *cl, struct peer_state *ps, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    struct link *l;
    int rc = resolve(addr, &ss, &len);

    if (rc < 0)
        return rc;
    l = link_new(cl, ps, false, addr);
    if (l == NULL)
        return QPC_ERR_NOMEM;
    rc = qpc_quic_connect(cl->ep, (struct sockaddr *)&ss, len, QPC_ALPN_P2P, ps->key, l, &l->conn);
    if (rc < 0) {
        link_detach(l);
        free(l);
        return rc;
    }
    ps->dialing++;
    return 0;
}

/* Dials every known address of the peer (newest first). Returns how many dials started. */
static int dial_direct(struct client *cl, struct peer_state *ps)
{
    const struct qpc_peer *p = qpc_identity_peer_get(cl->id, ps->key);
    int started = 0;

    if (p == NULL || ps->dialing > 0)
        return 0;
    for (size_t i = 0; i < p->address_count && i < DIAL_ADDRS_MAX; i++) {
        /* An address of a link already up needs no second dial. */
        struct link *l;
        bool have = false;

        LL_FOREACH(ps->links, l)
            have |= !l->relayed && strcmp(l->addr, p->addresses[i]) == 0;
        if (!have && dial_addr(cl, ps, p->addresses[i]) == 0)
            started++;
    }
    return started;
}

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
    if (rc < 0) {
        link_detach(l);
        free(l);
    }
    return rc;
}

/*
 * Takes an envelope out of the store into the in-flight table without a link: it stays
 * persisted and is sent on the next link toward its recipient (flush_all), while the
 * store cannot hand it out twice.
 */
static void inflight_park(struct client *cl, struct qpc_envelope *env)
{
    struct inflight *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        qpc_envelope_clear(env);
        return;
    }
    memcpy(f->id, env->id, QPC_ID_LEN);
    f->mine = memcmp(env->sender, my_key(cl), QPC_KEY_LEN) == 0;
    f->env = *env;
    memset(env, 0, sizeof(*env));
    HASH_ADD(hh, cl->inflight, id, QPC_ID_LEN, f);
}

static int hand_to_server_cb(void *ctx, struct qpc_envelope *env)
{
    struct client *cl = ctx;
    struct event ev = { .kind = EVT_QUEUED, .peer = env->recipient, .id = env->id };
    bool mine = memcmp(env->sender, my_key(cl), QPC_KEY_LEN) == 0;

    /* The server holds a copy (its answer is shown by session.c); ours stays too, so
     * the message also goes P2P as soon as the peer is reachable. */
    /* Only my own envelopes: a server accepts envelopes from their sender alone. */
    if (mine && !(session_up(cl) && session_enqueue(cl, env, "") == 0)) {
        ev.text = "peer unreachable, kept in outbox";
        ev.text_len = strlen(ev.text);
        emit(cl, &ev);
    }
    inflight_park(cl, env);
    return 0;
}

/* Gives up on P2P for now: what is held for ps is parked and handed to the server. */
static void hand_to_server(struct client *cl, struct peer_state *ps)
{
    qpc_store_take_all_for(cl->store, ps->key, now_ms(), hand_to_server_cb, cl);
}

static void fallback_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct peer_state *ps = w->data;
    struct client *cl = ps->cl;

    if (best_link(ps) != NULL) {
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
    hand_to_server(cl, ps);
}

/* Something is waiting for ps: start the ladder unless a link is up or it is running. */
static void reach(struct client *cl, struct peer_state *ps)
{
    if (best_link(ps) != NULL) {
        flush_all(cl);
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

static struct peer_state *peer_get(struct client *cl, const uint8_t key[static QPC_KEY_LEN], bool create)
{
    struct peer_state *ps = NULL;

    HASH_FIND(hh, cl->peers, key, QPC_KEY_LEN, ps);
    if (ps != NULL || !create)
        return ps;
    ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    memcpy(ps->key, key, QPC_KEY_LEN);
    ps->cl = cl;
    ps->backoff_ms = REDIAL_MIN_MS;
    ev_timer_init(&ps->fallback, fallback_cb, 1.0, 0.0);
    ps->fallback.data = ps;
    HASH_ADD(hh, cl->peers, key, QPC_KEY_LEN, ps);
    return ps;
}

void node_peer_seen(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const char *addr,
                    enum qpc_peer_source src)
{
    struct peer_state *ps;
    uint64_t now = now_ms();

    if (memcmp(key, my_key(cl), QPC_KEY_LEN) == 0)
        return;
    /* An address a server told us is dialled only when it is a numeric host:port: a name
     * would have us send DNS queries (blocking the loop) that the server chose. */
    if (addr != NULL && (!qpc_addr_valid(addr) ||
                         (src == QPC_PEER_SOURCE_SERVER && !addr_numeric(addr))))
        return;
    if (addr != NULL &&
        qpc_identity_peer_upsert(cl->id, key, NULL, addr, now, src, QPC_PEER_CLIENT, NULL) == 0)
        cl->id_dirty = true;
    if (addr != NULL)
        route_offer(cl, key, QPC_ROUTE_VIA_DIRECT, NULL, addr, 1, src == QPC_PEER_SOURCE_MDNS ? QPC_ROUTE_SRC_MDNS
                                   : src == QPC_PEER_SOURCE_SERVER ? QPC_ROUTE_SRC_SERVER
                                                                  : QPC_ROUTE_SRC_MANUAL);
    ps = peer_get(cl, key, true);
    if (ps == NULL)
        return;
    if (addr != NULL) {
        /* A fresh address (the server's observation: hole punching) is dialled at once,
         * even while older addresses are still being tried, unless a direct link is up. */
        struct link *l = best_link(ps);
        bool have = l != NULL && !l->relayed;

        LL_FOREACH(ps->links, l)
            have |= !l->relayed && strcmp(l->addr, addr) == 0;
        if (!have)
            dial_addr(cl, ps, addr);
        return;
    }
    if (best_link(ps) == NULL)
        dial_direct(cl, ps);
}

/* Directory entries known from mDNS claims alone (no handshake, not typed in). */
static size_t mdns_only_peers(const struct client *cl)
{
    const struct qpc_peer *p = NULL;
    size_t n = 0;

    while ((p = qpc_identity_peer_next(cl->id, p)) != NULL)
        n += p->source == QPC_PEER_SOURCE_MDNS;
    return n;
}

struct queue_probe {
    const uint8_t *key;
    bool found;
};

static int queue_for_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    struct queue_probe *probe = ctx;

    probe->found |= q->recipient != NULL && memcmp(q->recipient, probe->key, QPC_KEY_LEN) == 0;
    return probe->found;
}

/* Is anything held for key: queued in the store, or parked without a link? */
static bool something_waits(struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    struct queue_probe probe = { key, false };
    struct inflight *f, *tmp;

    HASH_ITER(hh, cl->inflight, f, tmp) {
        probe.found |= f->link == NULL && memcmp(f->env.recipient, key, QPC_KEY_LEN) == 0;
    }
    if (!probe.found)
        qpc_store_foreach_queue(cl->store, queue_for_cb, &probe);
    return probe.found;
}

void node_peer_discovered(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const char *addr)
{
    const struct qpc_peer *p;
    struct peer_state *ps;
    struct qpc_route r;
    struct link *l;
    bool have;

    if (memcmp(key, my_key(cl), QPC_KEY_LEN) == 0 || addr == NULL || !qpc_addr_valid(addr))
        return;
    /*
     * Anyone on the link can claim any key at any address. So a claim may add a peer we
     * do not know yet (while few entries are mDNS-only, so claims cannot crowd the
     * directory) or an address to a peer known only from mDNS, and a route where we have
     * none better; it never displaces what a handshake or the user taught us. Dialling
     * with the claimed key as the expected TLS key is what proves it.
     */
    p = qpc_identity_peer_get(cl->id, key);
    if (((p == NULL && mdns_only_peers(cl) < MDNS_ONLY_PEERS_MAX) ||
         (p != NULL && p->source == QPC_PEER_SOURCE_MDNS)) &&
        qpc_identity_peer_upsert(cl->id, key, NULL, addr, now_ms(), QPC_PEER_SOURCE_MDNS,
                                 QPC_PEER_CLIENT, NULL) == 0)
        cl->id_dirty = true;
    if (qpc_route_lookup(cl->routes, key, &r) != 0 || r.source == QPC_ROUTE_SRC_MDNS)
        route_offer(cl, key, QPC_ROUTE_VIA_DIRECT, NULL, addr, 1, QPC_ROUTE_SRC_MDNS);
    ps = peer_get(cl, key, true);
    if (ps == NULL)
        return;
    l = best_link(ps);
    have = l != NULL && !l->relayed;
    LL_FOREACH(ps->links, l)
        have |= !l->relayed && strcmp(l->addr, addr) == 0;
    /* What is held for the peer goes as soon as the link is up (cb_connected). Without
     * anything waiting, one side of each pair makes the link: the smaller key. */
    if (!have && (something_waits(cl, key) || memcmp(my_key(cl), key, QPC_KEY_LEN) < 0))
        dial_addr(cl, ps, addr);
}

void node_dial_known(struct client *cl)
{
    const struct qpc_peer *p = NULL;

    while ((p = qpc_identity_peer_next(cl->id, p)) != NULL) {
        struct peer_state *ps;

        if (p->kind != QPC_PEER_CLIENT || p->address_count == 0)
            continue;
        ps = peer_get(cl, p->key, true);
        if (ps != NULL && best_link(ps) == NULL)
            dial_direct(cl, ps);
    }
}

/* ---- receiving ------------------------------------------------------------------------ */

/*
 * Payload bytes of envelopes held for others outside the store (in flight or parked for
 * the server path). The store bounds what it holds; once taken out, strangers' envelopes
 * would otherwise pile up here without limit, so forwarding stops at the store's limit.
 */
static size_t inflight_forwarded_bytes(const struct client *cl)
{
    struct inflight *f, *tmp;
    size_t n = 0;

    HASH_ITER(hh, cl->inflight, f, tmp) {
        if (!f->mine)
            n += f->env.payload_len;
    }
    return n;
}

static Qpc__Status status_of(int err)
{
    switch (err) {
    case QPC_ERR_EXPIRED: return QPC__STATUS__STATUS_EXPIRED;
    case QPC_ERR_QUEUE_FULL:
    case QPC_ERR_STORE_FULL: return QPC__STATUS__STATUS_QUEUE_FULL;
    case QPC_ERR_TOO_LARGE: return QPC__STATUS__STATUS_TOO_LARGE;
    case QPC_ERR_NOMEM:
    case QPC_ERR_DB:
    case QPC_ERR_IO: return QPC__STATUS__STATUS_INTERNAL;
    default: return QPC__STATUS__STATUS_INVALID;
    }
}

static void refused(struct client *cl, const struct qpc_envelope *env, int err)
{
    struct event ev = { .kind = EVT_REFUSED_ENVELOPE, .err = err };

    if (env != NULL) {
        ev.peer = env->sender;
        ev.id = env->id;
    }
    emit(cl, &ev);
}

/* A direct envelope addressed to me: decrypt and show once. Returns a status for the ack. */
static Qpc__Status deliver_to_me(struct client *cl, struct qpc_envelope *env, enum path_kind path,
                                 const char *via)
{
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc;
    struct event ev = { .kind = EVT_MESSAGE, .path = path, .via = via };

    rc = qpc_box_open(cl->box, env->sender, env->payload, env->payload_len, &plain, &plen);
    if (rc < 0) {
        refused(cl, env, rc);
        return QPC__STATUS__STATUS_INVALID;
    }
    state_mark_delivered(cl, env, now_ms());
    ev.peer = env->sender;
    ev.id = env->id;
    ev.text = (const char *)plain;
    ev.text_len = plen;
    ev.hops = env->hop_count + 1;
    emit(cl, &ev);
    sodium_memzero(plain, plen);
    free(plain);
    return QPC__STATUS__STATUS_OK;
}

static void deliver_broadcast(struct client *cl, const struct qpc_envelope *env, enum path_kind path)
{
    uint8_t *plain = NULL;
    size_t plen = 0;
    struct event ev = { .kind = EVT_BROADCAST, .path = path };
    int rc = qpc_broadcast_open_envelope(cl->channels, env, &plain, &plen);

    if (rc == QPC_ERR_NOT_FOUND)
        return;              /* not subscribed: we relay without reading */
    if (rc < 0) {
        refused(cl, env, rc);
        return;
    }
    ev.peer = env->sender;
    ev.id = env->id;
    ev.topic = env->topic;
    ev.text = (const char *)plain;
    ev.text_len = plen;
    ev.hops = env->hop_count + 1;
    emit(cl, &ev);
    sodium_memzero(plain, plen);
    free(plain);
}

/* Floods env (already hopped) to every up link except `except`. */
static void flood(struct client *cl, const struct qpc_envelope *env, const struct link *except)
{
    struct peer_state *ps, *tmp;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (qpc_envelope_encode(env, &buf, &len) < 0)
        return;
    HASH_ITER(hh, cl->peers, ps, tmp) {
        struct link *l = best_link(ps);

        if (l != NULL && l != except && (except == NULL || except->ps != ps) &&
            memcmp(ps->key, env->sender, QPC_KEY_LEN) != 0)
            link_send_envelope_bytes(l, buf, len);
    }
    free(buf);
}

/*
 * Everything that arrives (from a link or from the server) goes through here. from is
 * the link it came on (NULL: the server). Returns the status to ack with.
 */
static Qpc__Status handle_envelope(struct client *cl, struct qpc_envelope *env, struct link *from,
                                   enum path_kind path, const char *via)
{
    uint64_t now = now_ms();
    bool for_me = env->has_recipient && memcmp(env->recipient, my_key(cl), QPC_KEY_LEN) == 0;
    int rc;

    /* The cheap check first: a copy seen before costs no signature check. */
    if (qpc_store_seen(cl->store, env->id)) {
        qpc_log_debug("node", "duplicate envelope dropped");
        refused(cl, env, QPC_ERR_DUPLICATE);
        return env->has_recipient && !for_me ? QPC__STATUS__STATUS_DEFERRED : QPC__STATUS__STATUS_OK;
    }
    rc = qpc_envelope_verify(env, now);
    if (rc < 0) {
        refused(cl, env, rc);
        return status_of(rc);
    }
    if (from != NULL && from->ps != NULL && memcmp(from->ps->key, env->sender, QPC_KEY_LEN) != 0) {
        /* The sender is reachable through this neighbour: what we hold for it can go. */
        route_offer(cl, env->sender, QPC_ROUTE_VIA_PEER, from->ps->key, from->addr,
                    env->hop_count + 1, QPC_ROUTE_SRC_ENVELOPE);
        flush_all(cl);
    }
    if (for_me)
        return deliver_to_me(cl, env, path, via);
    if (!env->has_recipient) {
        struct qpc_envelope copy = { 0 };

        deliver_broadcast(cl, env, path);
        if (qpc_envelope_hop(env) == 0) {
            flood(cl, env, from);
            if (from != NULL)
                session_broadcast(cl, env);   /* the server floods to its clients and nodes */
        }
        if (qpc_envelope_copy(&copy, env) == 0 && qpc_store_put(cl->store, &copy, now) < 0) {
            qpc_envelope_clear(&copy);
            qpc_store_mark_seen(cl->store, env->id, qpc_envelope_expires_at_ms(env), now);
        }
        return QPC__STATUS__STATUS_OK;
    }
    /* For someone else: hold it durably, ack, then pass it on. */
    if (inflight_forwarded_bytes(cl) >= (size_t)cl->cc->store_max_bytes)
        return QPC__STATUS__STATUS_QUEUE_FULL;
    rc = qpc_envelope_hop(env);
    if (rc < 0) {
        refused(cl, env, rc);
        return QPC__STATUS__STATUS_INVALID;
    }
    {
        uint8_t recipient[QPC_KEY_LEN];
        struct peer_state *ps;

        memcpy(recipient, env->recipient, QPC_KEY_LEN);
        rc = state_persist(cl, env, now);
        if (rc == 0)
            rc = qpc_store_put(cl->store, env, now);
        if (rc < 0) {
            state_unpersist(cl, env->id);
            return status_of(rc);
        }
        ps = peer_get(cl, recipient, true);
        if (ps != NULL)
            reach(cl, ps);
    }
    return QPC__STATUS__STATUS_DEFERRED;
}

static void on_ack(struct client *cl, struct link *l, const Qpc__P2pAck *ack)
{
    struct inflight *f = NULL;
    struct event ev = { 0 };
    char via[16];

    if (ack->id.len != QPC_ID_LEN)
        return;
    HASH_FIND(hh, cl->inflight, ack->id.data, QPC_ID_LEN, f);
    if (f == NULL)
        return;
    /* Only the holder it was handed to, or the recipient, may end our custody: ids travel
     * in the clear through relays and servers, so any other link could name one. */
    if (memcmp(l->ps->key, f->hop_peer, QPC_KEY_LEN) != 0 &&
        memcmp(l->ps->key, f->env.recipient, QPC_KEY_LEN) != 0)
        return;
    if (ack->status == QPC__STATUS__STATUS_QUEUE_FULL || ack->status == QPC__STATUS__STATUS_INTERNAL ||
        ack->status == QPC__STATUS__STATUS_RATE_LIMITED) {
        /* A holder that is full or failing now refuses for now, not for good: keep it
         * (parked, still in the outbox) and send it again later. */
        f->link = NULL;
        return;
    }
    if (ack->status != QPC__STATUS__STATUS_OK && ack->status != QPC__STATUS__STATUS_DEFERRED) {
        ev.kind = EVT_FAILED;
        ev.text = "refused by peer";
        ev.text_len = strlen(ev.text);
    } else if (memcmp(l->ps->key, f->env.recipient, QPC_KEY_LEN) == 0 &&
               ack->status == QPC__STATUS__STATUS_OK) {
        ev.kind = EVT_DELIVERED;
    } else {
        ev.kind = EVT_HELD;
        short_id(via, l->ps->key);
        ev.via = via;
    }
    ev.peer = f->env.recipient;
    ev.id = f->id;
    ev.path = l->relayed ? PATH_RELAYED : PATH_DIRECT;
    ev.hops = 1;
    if (ev.kind == EVT_DELIVERED && l->relayed)
        ev.via = l->addr;
    if (f->mine)
        emit(cl, &ev);
    state_unpersist(cl, f->id);
    HASH_DEL(cl->inflight, f);
    qpc_envelope_clear(&f->env);
    free(f);
}

static void on_p2p_frame(struct client *cl, struct link *l, int64_t sid, const uint8_t *d, size_t n)
{
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, n, d);

    if (f == NULL || l->ps == NULL) {
        qpc_log_warn("node", "malformed P2P frame dropped");
        goto out;
    }
    if (!l->has_sid) {
        l->sid = sid;
        l->has_sid = true;
    }
    if (f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE) {
        struct qpc_envelope env = { 0 };
        int rc = qpc_envelope_decode(&env, f->envelope.data, f->envelope.len);
        Qpc__Status st;

        if (rc < 0) {
            refused(cl, NULL, rc);
            link_send_ack(l, sid, NULL, status_of(rc));
            goto out;
        }
        uint8_t id[QPC_ID_LEN];

        /* handle_envelope may move env into the store (which zeroes it): keep the id. */
        memcpy(id, env.id, QPC_ID_LEN);
        st = handle_envelope(cl, &env, l, l->relayed ? PATH_RELAYED : PATH_DIRECT,
                             l->relayed ? l->addr : NULL);
        link_send_ack(l, sid, id, st);
        qpc_envelope_clear(&env);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_ACK && f->ack != NULL) {
        on_ack(cl, l, f->ack);
    }
out:
    if (f != NULL)
        qpc__p2p_frame__free_unpacked(f, NULL);
}

void node_input_from_server(struct client *cl, const uint8_t *buf, size_t len, const char *server)
{
    struct qpc_envelope env = { 0 };
    int rc = qpc_envelope_decode(&env, buf, len);

    if (rc < 0) {
        refused(cl, NULL, rc);
        return;
    }
    handle_envelope(cl, &env, NULL, PATH_SERVER, server);
    qpc_envelope_clear(&env);
}

/* ---- QUIC callbacks --------------------------------------------------------------------- */

static int cb_connected(struct qpc_quic_conn *conn, const char *alpn, const uint8_t *key, void *user)
{
    struct link *l = user;
    struct client *cl;
    struct peer_state *ps;
    char who[13];
    uint64_t now = now_ms();

    if (user == NULL)
        return 1;
    if (l->kind != CONN_P2P) {
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
        l->relayed = is_relay_addr(qpc_quic_conn_remote_addr(conn, &(socklen_t){ 0 }));
        qpc_quic_conn_set_user(conn, l);
    }
    cl = l->cl;
    if (key == NULL || memcmp(key, my_key(cl), QPC_KEY_LEN) == 0)
        return 1;
    ps = peer_get(cl, key, true);
    if (ps == NULL)
        return 1;
    if (l->ps == NULL) {
        l->ps = ps;
        LL_PREPEND(ps->links, l);
    } else if (!l->relayed) {
        ps->dialing--;
    }
    if (l->relayed)
        snprintf(l->addr, sizeof(l->addr), "%s", session_address(cl) ? session_address(cl) : "relay");
    else
        addr_text(qpc_quic_conn_remote_addr(conn, &(socklen_t){ 0 }), l->addr, sizeof(l->addr));
    l->up = true;
    short_id(who, key);
    if (!l->relayed) {
        if (qpc_identity_peer_upsert(cl->id, key, NULL, qpc_quic_conn_is_server(conn) ? NULL : l->addr,
                                     now, QPC_PEER_SOURCE_DIRECT, QPC_PEER_CLIENT, NULL) == 0)
            cl->id_dirty = true;
        route_offer(cl, key, QPC_ROUTE_VIA_DIRECT, NULL, l->addr, 1, QPC_ROUTE_SRC_DIRECT);
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
        if (qpc_identity_peer_upsert(cl->id, key, NULL, NULL, now, QPC_PEER_SOURCE_RELAY,
                                     QPC_PEER_CLIENT, NULL) == 0)
            cl->id_dirty = true;
        route_offer(cl, key, QPC_ROUTE_VIA_RELAY, NULL, l->addr, 2, QPC_ROUTE_SRC_DIRECT);
        ps->was_relayed = true;
        ps->next_direct_try_ms = now + DIRECT_RETRY_MS;
    }
    qpc_log_info("node", "link to %s up (%s %s)", who, l->relayed ? "relayed via" : "direct", l->addr);
    ps->phase = PH_IDLE;
    ps->backoff_ms = REDIAL_MIN_MS;
    ev_timer_stop(cl->loop, &ps->fallback);
    /* What waited for this peer goes now; so do live broadcasts it may have missed. */
    flush_all(cl);
    qpc_store_foreach_broadcast(cl->store, now, send_broadcast_cb, l);
    return 0;
}

static void cb_frame(struct qpc_quic_conn *conn, int64_t sid, const uint8_t *d, size_t n, void *user)
{
    struct link *l = user;

    if (l != NULL && l->kind == CONN_P2P) {
        on_p2p_frame(l->cl, l, sid, d, n);
        return;
    }
    if (user != NULL && session_owns_conn(user, conn))
        session_on_frame(user, conn, d, n);
}

static void cb_datagram(struct qpc_quic_conn *conn, const uint8_t *d, size_t n, void *user)
{
    struct link *l = user;

    if (l != NULL && l->kind == CONN_P2P)
        return;
    if (user != NULL && session_owns_conn(user, conn))
        session_on_datagram(user, d, n);
}

static void cb_writable(struct qpc_quic_conn *conn, int64_t sid, void *user)
{
    struct link *l = user;

    if (l != NULL && l->kind == CONN_P2P)
        flush_all(l->cl);
}

static void cb_closed(struct qpc_quic_conn *conn, const struct qpc_quic_close_info *info, void *user)
{
    struct link *l = user;
    struct client *cl;
    struct inflight *f, *tmp;

    if (l == NULL || l->kind != CONN_P2P) {
        if (user != NULL && session_owns_conn(user, conn))
            session_on_closed(user, info);
        return;
    }
    cl = l->cl;
    if (l->ps != NULL && !l->up && !l->relayed && l->ps->dialing > 0)
        l->ps->dialing--;
    if (l->up && l->ps != NULL) {
        char who[13];

        short_id(who, l->ps->key);
        qpc_log_info("node", "link to %s closed: %s", who, qpc_strerror(info->err));
    }
    HASH_ITER(hh, cl->inflight, f, tmp) {
        if (f->link == l)
            f->link = NULL;
    }
    link_detach(l);
    free(l);
    flush_all(cl);
}

/* ---- periodic work ------------------------------------------------------------------- */

/* Dials a recipient that something waits for, with back-off between attempts. */
static void retry_recipient(struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    struct peer_state *ps;
    uint64_t now = now_ms();

    if (next_hop_link(cl, key) != NULL)
        return;
    ps = peer_get(cl, key, true);
    if (ps == NULL || now < ps->next_dial_ms || ps->dialing > 0)
        return;
    ps->next_dial_ms = now + ps->backoff_ms;
    ps->backoff_ms = ps->backoff_ms * 2 > REDIAL_MAX_MS ? REDIAL_MAX_MS : ps->backoff_ms * 2;
    dial_direct(cl, ps);
    if (session_up(cl))
        session_peer_info(cl, ps->key);
}

static int held_queue_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    if (q->recipient != NULL)
        retry_recipient(ctx, q->recipient);
    return 0;
}

/*
 * Forgets live state of peers that have none worth keeping: strangers (connections,
 * envelopes for made-up recipients) each create one, so without this the table only
 * grows. Nothing else points at a peer_state without one of the things checked here
 * (a link, the relay's user pointer, the armed fallback timer); what we know of a peer
 * stays in the directory and routing table.
 */
static void peers_gc(struct client *cl)
{
    struct peer_state *ps, *tmp;

    if (HASH_COUNT(cl->peers) <= PEERS_GC_ABOVE)
        return;
    HASH_ITER(hh, cl->peers, ps, tmp) {
        if (ps->links != NULL || ps->relay != NULL || ps->dialing > 0 ||
            ev_is_active(&ps->fallback) || ev_is_pending(&ps->fallback) ||
            something_waits(cl, ps->key))
            continue;
        HASH_DEL(cl->peers, ps);
        free(ps);
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct client *cl = w->data;
    static uint64_t last_gc;
    uint64_t now = now_ms();
    struct peer_state *ps, *tmp;

    /* Send what found a way meanwhile; retry the rest with back-off. */
    flush_all(cl);
    qpc_store_foreach_queue(cl->store, held_queue_cb, cl);
    {
        struct inflight *f, *ftmp;

        HASH_ITER(hh, cl->inflight, f, ftmp) {
            /* Expired: nobody would accept it any more (the outbox row goes with it). */
            if (qpc_envelope_expires_at_ms(&f->env) <= now) {
                if (f->mine)
                    emit(cl, &(struct event){ .kind = EVT_FAILED, .peer = f->env.recipient, .id = f->id,
                                              .text = "expired before delivery",
                                              .text_len = strlen("expired before delivery"),
                                              .err = QPC_ERR_EXPIRED });
                state_unpersist(cl, f->id);
                HASH_DEL(cl->inflight, f);
                qpc_envelope_clear(&f->env);
                free(f);
                continue;
            }
            if (f->link == NULL)
                retry_recipient(cl, f->env.recipient);
        }
    }
    /* Peers reached only through the relay: keep trying the direct path. */
    HASH_ITER(hh, cl->peers, ps, tmp) {
        struct link *l = best_link(ps);

        if (l != NULL && l->relayed && now >= ps->next_direct_try_ms) {
            ps->next_direct_try_ms = now + DIRECT_RETRY_MS;
            dial_direct(cl, ps);
        }
    }
    if (now - last_gc > GC_INTERVAL_MS) {
        last_gc = now;
        peers_gc(cl);
        qpc_store_gc(cl->store, now);
        qpc_route_expire(cl->routes, now, 24u * 3600 * 1000);
    }
    state_save_identity(cl);
}

/* ---- public ------------------------------------------------------------------------- */

int node_start(struct client *cl, bool listen, char *err, size_t errlen)
{
    struct qpc_quic_config qc;
    char host[QPC_ADDRESS_MAX + 1];
    uint16_t port = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int rc;

    cl->box = qpc_box_cache_new(qpc_identity_secret_key(cl->id));
    cl->routes = qpc_route_table_new(0);
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
    qc.accept = listen;
    qc.alpns[0] = QPC_ALPN_P2P;
    qc.identity_sk = qpc_identity_secret_key(cl->id);
    qc.keepalive_ms = 10000;
    qc.cb.on_connected = cb_connected;
    qc.cb.on_frame = cb_frame;
    qc.cb.on_datagram = cb_datagram;
    qc.cb.on_writable = cb_writable;
    qc.cb.on_closed = cb_closed;
    qc.user = cl;
    rc = qpc_quic_endpoint_new(&cl->ep, cl->loop, &qc);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cl->cc->listen, qpc_strerror(rc));
        return rc;
    }
    if (qpc_quic_endpoint_local_addr(cl->ep, &ss, &sl) == 0) {
        addr_text((struct sockaddr *)&ss, cl->listen_text, sizeof(cl->listen_text));
        cl->listen_port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                                  : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    state_load_outbox(cl, now_ms());
    ev_timer_init(&cl->tick, tick_cb, 1.0, 1.0);
    cl->tick.data = cl;
    ev_timer_start(cl->loop, &cl->tick);
    return 0;
}

void node_stop(struct client *cl)
{
    struct peer_state *ps, *tmp;
    struct inflight *f, *ftmp;

    if (cl->loop != NULL)
        ev_timer_stop(cl->loop, &cl->tick);
    qpc_quic_endpoint_free(cl->ep);   /* closes links: cb_closed frees them */
    cl->ep = NULL;
    HASH_ITER(hh, cl->peers, ps, tmp) {
        ev_timer_stop(cl->loop, &ps->fallback);
        HASH_DEL(cl->peers, ps);
        free(ps);
    }
    HASH_ITER(hh, cl->inflight, f, ftmp) {
        HASH_DEL(cl->inflight, f);
        qpc_envelope_clear(&f->env);
        free(f);
    }
    qpc_box_cache_free(cl->box);
    cl->box = NULL;
    qpc_route_table_free(cl->routes);
    cl->routes = NULL;
}

int node_send_text(struct client *cl, const uint8_t peer[static QPC_KEY_LEN], const char *text,
                   uint8_t id_out[static QPC_ID_LEN])
{
    struct qpc_envelope env = { 0 };
    uint8_t *box = NULL;
    size_t blen = 0;
    uint64_t now = now_ms();
    struct peer_state *ps;
    int rc;

    if (memcmp(peer, my_key(cl), QPC_KEY_LEN) == 0)
        return QPC_ERR_INVALID;
    rc = qpc_box_seal(cl->box, peer, (const uint8_t *)text, strlen(text), &box, &blen);
    if (rc < 0)
        goto out;
    rc = qpc_envelope_init(&env, qpc_identity_secret_key(cl->id), peer, NULL, now,
                           (uint32_t)cl->cc->default_ttl, (uint32_t)cl->cc->max_hops, box, blen);
    if (rc < 0)
        goto out;
    memcpy(id_out, env.id, QPC_ID_LEN);
    rc = state_persist(cl, &env, now);
    if (rc < 0)
        goto out;
    rc = qpc_store_put(cl->store, &env, now);
    if (rc < 0) {
        state_unpersist(cl, id_out);
        goto out;
    }
    ps = peer_get(cl, peer, true);
    if (ps == NULL) {
        rc = QPC_ERR_NOMEM;
        goto out;
    }
    if (ps->phase == PH_HELD)
        ps->phase = PH_IDLE;
    reach(cl, ps);
out:
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
    flood(cl, &env, NULL);
    session_broadcast(cl, &env);
    rc = qpc_store_put(cl->store, &env, now);
    if (rc < 0) {
        qpc_store_mark_seen(cl->store, id_out, qpc_envelope_expires_at_ms(&env), now);
        rc = 0;
    }
out:
    qpc_envelope_clear(&env);
    qpc_broadcast_set_free(tmpset);
    return rc;
}

void node_relay_input(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const uint8_t *pkt,
                      size_t len)
{
    struct peer_state *ps = peer_get(cl, key, true);
    struct qpc_quic_relay *r = ps != NULL ? relay_path(cl, ps) : NULL;

    if (r != NULL)
        qpc_quic_endpoint_input_relayed(cl->ep, r, pkt, len);
}

static int server_broadcast_cb(void *ctx, const struct qpc_envelope *env)
{
    session_broadcast(ctx, env);
    return 0;
}

void node_session_changed(struct client *cl, bool up)
{
    struct peer_state *ps, *tmp;

    HASH_ITER(hh, cl->peers, ps, tmp) {
        if (!up && ps->relay != NULL) {
            qpc_quic_relay_free(ps->relay);   /* ends relayed links: cb_closed */
            ps->relay = NULL;
        }
    }
    if (up) {
        flush_all(cl);
        /* Live broadcasts the server may have missed (it drops the ones it has seen). */
        qpc_store_foreach_broadcast(cl->store, now_ms(), server_broadcast_cb, cl);
    }
}

void node_describe_links(struct client *cl)
{
    struct peer_state *ps, *tmp;
    struct link *l;

    HASH_ITER(hh, cl->peers, ps, tmp) {
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
