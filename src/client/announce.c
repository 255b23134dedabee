/*
 * announce.c: the node's announces, mine and the ones it passes on (announce.h).
 *
 * The one idea: an announce is judged before it costs anything and believed only as far
 * as it is signed. Per link a token bucket bounds what a neighbour can make us verify;
 * the dedup set (announce id = key || seqno) drops every copy after the first before
 * the signature check; hops 0 is taken only from the origin's own link (anyone else
 * claiming it would be lying about the chain's start); and the route it teaches goes
 * through the link it came on with the distance the hash chain proves. The first copy
 * of each id is passed on once, one hop further, to every other link and the server.
 * Routes are the table's business (routes.c, lib/route.c); here is only what arrives and
 * what leaves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utlist.h>

#include "announce.h"
#include "dial.h"
#include "handover.h"
#include "homes.h"
#include "link.h"
#include "output.h"
#include "qpc/addr.h"
#include "qpc/announce.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/seqreq.h"
#include "route_state.h"
#include "routes.h"
#include "session.h"

/* A dedup entry: an announce id whose first copy was verified at at_ms. */
struct seen {
    uint8_t id[QPC_ID_LEN];
    uint64_t at_ms;
    uint32_t passed_hops;              /* hops of the copy passed on to links; NOT_PASSED */
    UT_hash_handle hh;
};

#define NOT_PASSED UINT32_MAX

/* The latest announce heard from an origin (as received, hops included). */
struct origin {
    uint8_t key[QPC_KEY_LEN];
    struct qpc_announce last;
    uint64_t heard_ms;
    UT_hash_handle hh;
};

/* A static peer (config `peers`): dialled until a link to it is up, with back-off. */
struct static_peer {
    char addr[QPC_ADDRESS_MAX + 1];
    uint8_t key[QPC_KEY_LEN];          /* learned when its first link came up */
    bool has_key;
    uint64_t serial;                   /* of the link last dialled */
    uint64_t next_ms;                  /* next dial (mono) */
    uint32_t backoff_ms;
};

/* An announce to pass on at the next tick, and the neighbours that sent me a copy of it
 * meanwhile (split horizon: they have it, so it does not go back to them). */
struct pending {
    uint8_t id[QPC_ID_LEN];
    struct qpc_announce a;             /* one hop further, ready to go */
    bool to_links, to_server;
    uint8_t skip[ANNOUNCE_SKIP_MAX][QPC_KEY_LEN];   /* skip[0]: where it came from */
    size_t n_skip;
    struct pending *next;
};

#define STATIC_BACKOFF_MIN_MS 1000
#define STATIC_BACKOFF_MAX_MS 60000

struct announcer {
    struct static_peer *statics;
    size_t n_statics;
    struct seen *seen;                 /* uthash, insertion order = age order */
    struct origin *origins;
    struct qpc_announce mine;
    bool have_mine;
    uint64_t mine_digest;              /* of the candidates in it */
    char mine_domain[QPC_ANNOUNCE_DOMAIN_MAX + 1];   /* my server's domain when it was made */
    uint64_t next_ms;                  /* my next announce is due (mono) */
    uint64_t made_ms;                  /* my last one was signed (mono) */
    bool lost_link;                    /* a neighbour went since: announce anew (triggered) */
    struct pending *pending;           /* to pass on at the next tick (utlist, newest first) */
    size_t n_pending;
    struct announce_stats st;          /* what /mesh announces shows */
    struct qpc_seqreq_state *sr;       /* seqno requests: dedup and rates */
};

static const uint8_t *my_key(const struct client *cl)
{
    return qpc_identity_public_key(cl->id);
}

int announce_start(struct client *cl)
{
    const struct qpc_config_strings *peers = &cl->cc->peers;

    if ((cl->ann = calloc(1, sizeof(*cl->ann))) == NULL || (cl->ann->sr = qpc_seqreq_state_new()) == NULL)
        return QPC_ERR_NOMEM;
    if (peers->count > 0 && (cl->ann->statics = calloc(peers->count, sizeof(*cl->ann->statics))) == NULL)
        return QPC_ERR_NOMEM;
    for (size_t i = 0; i < peers->count; i++) {
        struct static_peer *sp = &cl->ann->statics[cl->ann->n_statics];

        if (snprintf(sp->addr, sizeof(sp->addr), "%s", peers->items[i]) >= (int)sizeof(sp->addr))
            continue;
        sp->backoff_ms = STATIC_BACKOFF_MIN_MS;
        cl->ann->n_statics++;
    }
    return 0;
}

void announce_stop(struct client *cl)
{
    struct seen *s, *stmp;
    struct origin *o, *otmp;

    if (cl->ann == NULL)
        return;
    HASH_ITER(hh, cl->ann->seen, s, stmp) {
        HASH_DEL(cl->ann->seen, s);
        free(s);
    }
    HASH_ITER(hh, cl->ann->origins, o, otmp) {
        HASH_DEL(cl->ann->origins, o);
        free(o);
    }
    while (cl->ann->pending != NULL) {
        struct pending *p = cl->ann->pending;

        LL_DELETE(cl->ann->pending, p);
        free(p);
    }
    free(cl->ann->statics);
    qpc_seqreq_state_free(cl->ann->sr);
    free(cl->ann);
    cl->ann = NULL;
}

/* ---- dedup ----------------------------------------------------------------------------- */

static struct seen *seen_find(const struct announcer *an, const uint8_t id[static QPC_ID_LEN])
{
    struct seen *s = NULL;

    HASH_FIND(hh, an->seen, id, QPC_ID_LEN, s);
    return s;
}

static void seen_expire(struct announcer *an, uint64_t now)
{
    struct seen *s, *tmp;

    HASH_ITER(hh, an->seen, s, tmp) {
        if (now - s->at_ms <= ANNOUNCE_SEEN_MS && HASH_COUNT(an->seen) < ANNOUNCE_SEEN_MAX)
            break;   /* oldest first: the rest are younger */
        HASH_DEL(an->seen, s);
        free(s);
    }
}

/* Returns the new entry, or NULL when memory is short (a copy comes again and is
 * verified again: no harm). */
static struct seen *seen_add(struct announcer *an, const uint8_t id[static QPC_ID_LEN], uint64_t now)
{
    struct seen *s;

    seen_expire(an, now);
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    memcpy(s->id, id, QPC_ID_LEN);
    s->at_ms = now;
    s->passed_hops = NOT_PASSED;
    HASH_ADD(hh, an->seen, id, QPC_ID_LEN, s);
    return s;
}

/* ---- sending ----------------------------------------------------------------------------- */

static int send_on_link(struct client *cl, struct link *l, const struct qpc_announce *a)
{
    struct qpc_announce_pb s;
    int rc;

    qpc_announce_to_pb(a, &s);
    if ((rc = link_send_announce(l, &s.pb)) == 0) {
        cl->ann->st.link_frames++;
        cl->ann->st.link_bytes += qpc__mesh_announce__get_packed_size(&s.pb);
    }
    return rc;
}

static int send_to_server(struct client *cl, const struct qpc_announce *a)
{
    struct qpc_announce_pb s;
    int rc;

    if (!session_up(cl))
        return QPC_ERR_CLOSED;
    qpc_announce_to_pb(a, &s);
    if ((rc = session_announce(cl, &s.pb)) == 0) {
        cl->ann->st.server_frames++;
        cl->ann->st.server_bytes += qpc__mesh_announce__get_packed_size(&s.pb);
    }
    return rc;
}

/* Links an announce may go on: up, not retiring, not to a peer of except[0..n_except)
 * (those have it) nor to the origin (it knows where it is). */
static bool link_takes(const struct link *l, const uint8_t (*except)[QPC_KEY_LEN], size_t n_except,
                       const uint8_t origin[static QPC_KEY_LEN])
{
    if (!l->up || l->retiring || l->ps == NULL || memcmp(l->ps->key, origin, QPC_KEY_LEN) == 0)
        return false;
    for (size_t i = 0; i < n_except; i++)
        if (memcmp(l->ps->key, except[i], QPC_KEY_LEN) == 0)
            return false;
    return true;
}

/* a on every link that takes it (one per peer: the best) unless to_links is false, and
 * to the server unless to_server is false. Returns how many got it. */
static unsigned send_everywhere(struct client *cl, const struct qpc_announce *a,
                                const uint8_t (*except)[QPC_KEY_LEN], size_t n_except, bool to_links,
                                bool to_server)
{
    struct peer_state *ps = NULL;
    unsigned n = 0;

    while (to_links && (ps = peers_next(&cl->peers, ps)) != NULL) {
        struct link *l = link_best(ps);

        if (l != NULL && link_takes(l, except, n_except, a->key) && send_on_link(cl, l, a) == 0)
            n++;
    }
    if (to_server && send_to_server(cl, a) == 0)
        n++;
    return n;
}

/* My candidates that an announce can carry (numeric, short enough), best first. */
static size_t my_addresses(const struct client *cl, const char *out[static QPC_ANNOUNCE_ADDRS_MAX])
{
    size_t n = 0;

    for (size_t i = 0; i < cl->my_cands.n && n < QPC_ANNOUNCE_ADDRS_MAX; i++)
        if (strlen(cl->my_cands.addr[i]) < QPC_ADDR_TEXT_MAX && qpc_addr_is_numeric(cl->my_cands.addr[i]))
            out[n++] = cl->my_cands.addr[i];
    return n;
}

/* Signs a new announce of mine (the next seqno) and sends it everywhere; triggered: not
 * because the interval ran out. */
static void announce_now(struct client *cl, uint64_t mono, bool triggered)
{
    struct announcer *an = cl->ann;
    const char *addrs[QPC_ANNOUNCE_ADDRS_MAX];
    size_t n = my_addresses(cl, addrs);
    uint64_t wall = now_ms();
    uint32_t seqno = route_state_next_seqno(cl, wall);
    /* As far as my messages may travel (max_hops), within what an announce allows: a
     * route to me from farther would carry nothing. */
    uint32_t hops = cl->cc->max_hops < QPC_ANNOUNCE_HOPS_MAX ? (uint32_t)cl->cc->max_hops : QPC_ANNOUNCE_HOPS_MAX;
    int rc = qpc_announce_create(&an->mine, qpc_identity_secret_key(cl->id), seqno, wall,
                                 (uint32_t)cl->cc->announce_interval_s, hops, addrs, n, session_domain(cl));

    /* A server's domain an announce cannot carry (not a DNS name): announce without it
     * rather than not at all. */
    if (rc == QPC_ERR_INVALID && session_domain(cl)[0] != '\0')
        rc = qpc_announce_create(&an->mine, qpc_identity_secret_key(cl->id), seqno, wall,
                                 (uint32_t)cl->cc->announce_interval_s, hops, addrs, n, NULL);

    /* Next one after an interval, even when this one failed: never a warning a second. */
    an->next_ms = mono + (uint64_t)cl->cc->announce_interval_s * 1000;
    an->made_ms = mono;
    an->lost_link = false;
    an->mine_digest = candidates_digest(&cl->my_cands);
    snprintf(an->mine_domain, sizeof(an->mine_domain), "%s", session_domain(cl));
    an->have_mine = rc == 0;
    if (rc == 0) {
        an->st.made++;
        an->st.triggered += triggered;
    }
    if (rc < 0) {
        qpc_log_warn("announce", "cannot sign my announce: %s", qpc_strerror(rc));
        return;
    }
    qpc_log_debug("announce", "my announce %u (%zu addresses) to %u links and servers", seqno, n,
                  send_everywhere(cl, &an->mine, NULL, 0, true, true));
}

/* Static peers: each dialled while no link to it is up, backing off to a minute. */
static void static_peers_tick(struct client *cl, uint64_t mono)
{
    struct announcer *an = cl->ann;

    for (size_t i = 0; i < an->n_statics; i++) {
        struct static_peer *sp = &an->statics[i];
        struct peer_state *ps = sp->has_key ? peers_find(&cl->peers, sp->key) : NULL;
        int rc;

        if (ps != NULL && link_best(ps) != NULL) {
            sp->backoff_ms = STATIC_BACKOFF_MIN_MS;   /* up: redial soon once it drops */
            sp->next_ms = mono + sp->backoff_ms;
            continue;
        }
        if (mono < sp->next_ms)
            continue;
        rc = dial_static(cl, sp->addr, sp->has_key ? sp->key : NULL, &sp->serial);
        if (rc < 0)
            qpc_log_debug("announce", "static peer %s: %s", sp->addr, qpc_strerror(rc));
        sp->next_ms = mono + sp->backoff_ms;
        sp->backoff_ms = sp->backoff_ms * 2 > STATIC_BACKOFF_MAX_MS ? STATIC_BACKOFF_MAX_MS : sp->backoff_ms * 2;
    }
}

/* ---- passing on, one tick later ---------------------------------------------------------
 *
 * An announce is passed on at the next tick (within a second), not the moment it comes:
 * meanwhile the neighbours that heard it too send me their copies, and it does not go
 * back to them. On a LAN where everyone links everyone, or a ring heard from both
 * sides, that saves most copies (ticks of different nodes fall apart, so one of them
 * goes first and the others hear it). A neighbour can only spare itself a copy: its
 * key is the link's, proven by the handshake. */

/* A neighbour (from; NULL: my server) sent me a copy of id: if it waits to be passed on,
 * not to that one. */
static void pending_heard(struct announcer *an, const uint8_t id[static QPC_ID_LEN], const uint8_t *from)
{
    struct pending *p;

    LL_FOREACH(an->pending, p) {
        if (memcmp(p->id, id, QPC_ID_LEN) != 0)
            continue;
        if (from == NULL) {
            p->to_server = false;   /* the server has it: it sent it to me */
            return;
        }
        for (size_t i = 0; i < p->n_skip; i++)
            if (memcmp(p->skip[i], from, QPC_KEY_LEN) == 0)
                return;
        if (p->n_skip < ANNOUNCE_SKIP_MAX)
            memcpy(p->skip[p->n_skip++], from, QPC_KEY_LEN);
        return;
    }
}

/* a (one hop further already) to pass on at the next tick; from its neighbour (NULL: my
 * server). Sent at once when the list is full or memory short. */
static void pending_add(struct client *cl, const struct qpc_announce *a, const uint8_t id[static QPC_ID_LEN],
                        const uint8_t *from, bool to_links, bool to_server)
{
    struct announcer *an = cl->ann;
    struct pending *p = an->n_pending < ANNOUNCE_PENDING_MAX ? calloc(1, sizeof(*p)) : NULL;

    if (p == NULL) {
        if (send_everywhere(cl, a, (const uint8_t (*)[QPC_KEY_LEN])from, from != NULL, to_links, to_server) > 0)
            an->st.passed_on++;
        return;
    }
    memcpy(p->id, id, QPC_ID_LEN);
    p->a = *a;
    p->to_links = to_links;
    p->to_server = to_server;
    if (from != NULL)
        memcpy(p->skip[p->n_skip++], from, QPC_KEY_LEN);
    LL_PREPEND(an->pending, p);
    an->n_pending++;
}

/* a, a shorter copy (one hop further already) of an announce whose first copy went on
 * longer or not at all, from neighbour from: to my links at the next tick. If the first
 * still waits for the tick, this one takes its place (and the first's sender stays
 * spared); the server had the first copy, or sent it. */
static void pending_shorter(struct client *cl, const struct qpc_announce *a, const uint8_t id[static QPC_ID_LEN],
                            const uint8_t from[static QPC_KEY_LEN])
{
    struct pending *p;

    LL_FOREACH(cl->ann->pending, p) {
        if (memcmp(p->id, id, QPC_ID_LEN) == 0) {
            p->a = *a;
            p->to_links = true;
            return;   /* from is on its skip list already (pending_heard) */
        }
    }
    pending_add(cl, a, id, from, true, false);
}

static void pending_flush(struct client *cl)
{
    struct announcer *an = cl->ann;
    struct pending *p, *tmp;

    LL_FOREACH_SAFE(an->pending, p, tmp) {
        LL_DELETE(an->pending, p);
        an->n_pending--;
        an->st.skipped += p->n_skip > 0 ? p->n_skip - 1 : 0;
        if (send_everywhere(cl, &p->a, (const uint8_t (*)[QPC_KEY_LEN])p->skip, p->n_skip, p->to_links,
                            p->to_server) > 0)
            an->st.passed_on++;
        free(p);
    }
}

/* Triggered announces (a neighbour gone) at most this often: ANNOUNCE_TRIGGER_GAP_MS, or
 * half an interval where that is shorter, so the periodic one never gets there first. */
static uint64_t trigger_gap_ms(const struct client *cl)
{
    uint64_t half = (uint64_t)cl->cc->announce_interval_s * 500;

    return half < ANNOUNCE_TRIGGER_GAP_MS ? half : ANNOUNCE_TRIGGER_GAP_MS;
}

void announce_tick(struct client *cl, uint64_t now)
{
    struct announcer *an = cl->ann;
    uint64_t mono = mono_ms();
    bool moved;

    (void)now;
    if (an == NULL || cl->closing)
        return;
    pending_flush(cl);
    /* Due, or my addresses or my home node changed (a node that moved says so at once;
     * the node names its domain only after the session is up, a moment after the first
     * announce, and others address my messages by it: homes.c), or a neighbour went
     * (at most once per trigger gap). Counted as triggered whenever a change waited,
     * also when the interval ran out in the same tick. */
    moved = candidates_digest(&cl->my_cands) != an->mine_digest ||
            strncmp(session_domain(cl), an->mine_domain, sizeof(an->mine_domain)) != 0;
    if (moved || mono >= an->next_ms || (an->lost_link && mono >= an->made_ms + trigger_gap_ms(cl)))
        announce_now(cl, mono, moved || an->lost_link);
    seen_expire(an, mono);
    static_peers_tick(cl, mono);
}

void announce_link_up(struct client *cl, struct link *l)
{
    struct announcer *an = cl->ann;
    struct origin *o;
    uint64_t mono = mono_ms();
    unsigned replayed = 0;

    if (an == NULL || l->ps == NULL)
        return;
    for (size_t i = 0; i < an->n_statics; i++) {
        if (an->statics[i].serial == l->serial && !an->statics[i].has_key) {
            memcpy(an->statics[i].key, l->ps->key, QPC_KEY_LEN);
            an->statics[i].has_key = true;
        }
    }
    if (!an->have_mine)
        announce_now(cl, mono, true);   /* goes on l too */
    else
        send_on_link(cl, l, &an->mine);
    /* What I know of the mesh, so the neighbour need not wait an interval for it: the
     * latest of each origin still within its hold time, one hop further. Newest last in
     * the hash, so walk from the end. */
    for (o = an->origins != NULL ? ELMT_FROM_HH(an->origins->hh.tbl, an->origins->hh.tbl->tail) : NULL;
         o != NULL && replayed < ANNOUNCE_REPLAY_MAX; o = (struct origin *)o->hh.prev) {
        struct qpc_announce a = o->last;

        if (mono - o->heard_ms > routes_hold_ms(a.interval_s) || !link_takes(l, NULL, 0, a.key))
            continue;
        if (qpc_announce_forward(&a) == 0 && send_on_link(cl, l, &a) == 0)
            replayed++;
    }
    an->st.link_ups++;
    an->st.replayed += replayed;
    if (replayed > 0)
        qpc_log_debug("announce", "%u announces replayed on a new link", replayed);
}

static bool link_may(struct link *l, uint64_t mono);

/* My hop limit for requests: as far as my messages may travel, within an announce's. */
static uint32_t request_hops(const struct client *cl)
{
    return cl->cc->max_hops < QPC_ANNOUNCE_HOPS_MAX ? (uint32_t)cl->cc->max_hops : QPC_ANNOUNCE_HOPS_MAX;
}

/* Sends r on every up link but to except (NULL: none). Returns how many got it. */
static unsigned seqreq_everywhere(struct client *cl, const struct qpc_seqreq *r, const uint8_t *except)
{
    Qpc__MeshSeqnoRequest pb;
    struct peer_state *ps = NULL;
    unsigned n = 0;

    qpc_seqreq_to_pb(r, &pb);
    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        struct link *l = link_best(ps);

        if (l == NULL || !l->up || l->retiring || (except != NULL && memcmp(ps->key, except, QPC_KEY_LEN) == 0))
            continue;
        if (link_send_seqreq(l, &pb) == 0)
            n++;
    }
    return n;
}

/* The link to gone went: every route it retracted that has a feasibility distance gets
 * a seqno request (FD seqno + 1) to the other neighbours, so a longer way is taken as
 * soon as the origin's new seqno comes round instead of at its next periodic announce
 * (RFC 8966 3.8.2.1). */
static void seqreq_after_loss(struct client *cl, const uint8_t gone[static QPC_KEY_LEN])
{
    struct qpc_route *rs = NULL;
    size_t n = 0;
    uint64_t mono = mono_ms();

    if (qpc_route_list(cl->routes, &rs, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qpc_route_fd fd;
        struct qpc_seqreq r;
        unsigned sent;
        char who[13];

        if (!rs[i].retracted || qpc_route_fd_get(cl->routes, rs[i].dest, &fd) != 0)
            continue;
        if (memcmp(rs[i].dest, my_key(cl), QPC_KEY_LEN) == 0)
            continue;
        memcpy(r.origin, rs[i].dest, QPC_KEY_LEN);
        r.seqno = fd.seqno + 1;
        r.hop_limit = request_hops(cl);
        if (!qpc_seqreq_may_send(cl->ann->sr, r.origin, r.seqno, mono))
            continue;
        sent = seqreq_everywhere(cl, &r, gone);
        cl->ann->st.sr_sent += sent;
        short_id(who, r.origin);
        qpc_log_info("announce", "route to %s lost: seqno %u asked of %u neighbours", who, r.seqno, sent);
    }
    free(rs);
}

void announce_seqreq_receive(struct client *cl, struct link *l, const Qpc__MeshSeqnoRequest *pb)
{
    struct announcer *an = cl->ann;
    struct qpc_seqreq r;
    struct qpc_seqreq_view v;
    struct origin *o = NULL;
    struct qpc_route route;
    struct peer_state *next = NULL;
    uint64_t mono = mono_ms(), now = now_ms();
    uint32_t fwd = 0;
    Qpc__MeshSeqnoRequest out;
    char who[13];

    if (an == NULL || cl->closing || l == NULL || l->ps == NULL)
        return;
    an->st.sr_received++;
    /* The announce bucket bounds requests too: each may cost an announce sent. */
    if (!link_may(l, mono) || qpc_seqreq_from_pb(pb, &r) < 0) {
        an->st.sr_dropped++;
        return;
    }
    memset(&v, 0, sizeof(v));
    v.is_me = memcmp(r.origin, my_key(cl), QPC_KEY_LEN) == 0;
    HASH_FIND(hh, an->origins, r.origin, QPC_KEY_LEN, o);
    if (o != NULL && mono - o->heard_ms <= routes_hold_ms(o->last.interval_s)) {
        v.have_announce = true;
        v.announce_seqno = o->last.seqno;
    }
    /* The way on: a link to the origin itself, else the live route through a peer. */
    if ((next = peers_find(&cl->peers, r.origin)) != NULL && link_best(next) != NULL) {
        v.have_route = true;
    } else if (qpc_route_lookup(cl->routes, r.origin, &route) == 0 && route.via == QPC_ROUTE_VIA_PEER &&
               !route.retracted && (route.hold_ms == 0 || now - route.last_seen_ms <= route.hold_ms) &&
               (next = peers_find(&cl->peers, route.via_peer)) != NULL && link_best(next) != NULL) {
        v.have_route = true;
        v.route_via_requester = memcmp(route.via_peer, l->ps->key, QPC_KEY_LEN) == 0;
    }
    short_id(who, r.origin);
    switch (qpc_seqreq_decide(an->sr, &r, &v, request_hops(cl), mono, &fwd)) {
    case QPC_SEQREQ_BUMP:
        qpc_log_debug("announce", "seqno request for me (%u): announcing anew", r.seqno);
        an->st.sr_bumped++;
        announce_now(cl, mono, true);
        break;
    case QPC_SEQREQ_ANSWER: {
        struct qpc_announce a = o->last;

        qpc_log_debug("announce", "seqno request for %s (%u): answered with %u", who, r.seqno, a.seqno);
        if (qpc_announce_forward(&a) == 0 && send_on_link(cl, l, &a) == 0)
            an->st.sr_answered++;
        else
            an->st.sr_dropped++;
        break;
    }
    case QPC_SEQREQ_FORWARD:
        qpc_log_debug("announce", "seqno request for %s (%u): sent on, hop limit %u", who, r.seqno, fwd);
        r.hop_limit = fwd;
        qpc_seqreq_to_pb(&r, &out);
        if (link_send_seqreq(link_best(next), &out) == 0)
            an->st.sr_forwarded++;
        else
            an->st.sr_dropped++;
        break;
    default:
        an->st.sr_dropped++;
        break;
    }
}

void announce_link_gone(struct client *cl, struct peer_state *ps)
{
    /* Shutting down closes every link: the routes are kept (and saved) for the restart. */
    if (cl->closing)
        return;
    if (routes_link_gone(cl->routes, ps->key, link_best(ps) != NULL) > 0) {
        route_state_changed(cl);
        /* Routes to me through that neighbour are dead now, and the feasibility condition
         * keeps the others from taking a longer one with the seqno they have: a new seqno
         * lets them (Babel's triggered update), at most one per ANNOUNCE_TRIGGER_GAP_MS. */
        if (cl->ann != NULL) {
            cl->ann->lost_link = true;
            seqreq_after_loss(cl, ps->key);
        }
    }
}

void announce_session_up(struct client *cl)
{
    if (cl->ann != NULL && cl->ann->have_mine)
        send_to_server(cl, &cl->ann->mine);
}

/* ---- receiving --------------------------------------------------------------------------- */

/* Takes a token from l's bucket (ANNOUNCE_BURST, refilled at ANNOUNCE_RATE a second). */
static bool link_may(struct link *l, uint64_t mono)
{
    if (l->ann_refill_ms == 0) {
        l->ann_tokens = ANNOUNCE_BURST;
    } else if (mono > l->ann_refill_ms) {
        l->ann_tokens += (double)(mono - l->ann_refill_ms) * ANNOUNCE_RATE / 1000.0;
        if (l->ann_tokens > ANNOUNCE_BURST)
            l->ann_tokens = ANNOUNCE_BURST;
    }
    l->ann_refill_ms = mono;
    if (l->ann_tokens < 1.0)
        return false;
    l->ann_tokens -= 1.0;
    return true;
}

/* Keeps a as its origin's latest (a newer seqno replaces; the table is bounded). */
static void origin_note(struct announcer *an, const struct qpc_announce *a, uint64_t mono)
{
    struct origin *o = NULL;

    HASH_FIND(hh, an->origins, a->key, QPC_KEY_LEN, o);
    if (o != NULL) {
        if (!qpc_announce_seqno_newer(a->seqno, o->last.seqno))
            return;
        HASH_DEL(an->origins, o);   /* re-added at the end: the hash stays in heard order */
    } else {
        if (HASH_COUNT(an->origins) >= ANNOUNCE_ORIGINS_MAX) {
            struct origin *oldest = an->origins;

            HASH_DEL(an->origins, oldest);
            free(oldest);
        }
        if ((o = calloc(1, sizeof(*o))) == NULL)
            return;
        memcpy(o->key, a->key, QPC_KEY_LEN);
    }
    o->last = *a;
    o->heard_ms = mono;
    HASH_ADD(hh, an->origins, key, QPC_KEY_LEN, o);
}

/* The origin's addresses join its path candidates, but only while no server session is
 * up: a server coordinates the race with the candidates the peer registered there (the
 * same addresses, fresher), and the paths' head start and punch budget are computed from
 * what it says (dial.c); announces are what a mesh without a server has. */
static void note_candidates(struct client *cl, struct peer_state *ps, const struct qpc_announce *a)
{
    struct candidates c;

    if (session_up(cl))
        return;
    candidates_clear(&c);
    for (size_t i = 0; i < a->n_addresses; i++)
        candidates_add(&c, a->addresses[i], cl->allow_loopback);
    candidates_merge(&ps->cands, &c);
}

/* The origin is a client of my own node, in its own signed words. Only then can I carry
 * a neighbour's envelope for it through my server: over a relayed link to it (the node
 * relays between its own clients); a server takes envelopes from their sender alone,
 * so for any other origin a neighbour's envelope would only wait with me. */
static bool home_is_mine(const struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    const char *home = homes_get(cl->homes, key);

    return home != NULL && session_domain(cl)[0] != '\0' && strcasecmp(home, session_domain(cl)) == 0;
}

/* What a verified copy of an announce teaches: a route to its origin through the link
 * it came on (l), or through my server (l NULL). Returns true when the table took it. */
static bool learn_route(struct client *cl, struct link *l, const struct qpc_announce *a, uint64_t now)
{
    struct qpc_route r;
    bool changed = false;

    if (l != NULL) {
        if (!routes_learn_announce(cl->routes, cl->id, a, l->ps->key, l->addr, l->relayed, now))
            return false;
        route_state_changed(cl);
        handover_flush(cl);   /* what waited for the origin may have a way now */
        return true;
    }
    /* Through my server only to a peer that is some node's client (its home, in its own
     * signed words): my node queues it for its own client or federates it to the home.
     * A peer of no node would have its messages wait in my node's queue for a fetch
     * that never comes, and the route would hide the mesh's way to it. */
    if (session_address(cl) == NULL || cl->homes == NULL || homes_get(cl->homes, a->key) == NULL)
        return false;
    memset(&r, 0, sizeof(r));
    memcpy(r.dest, a->key, QPC_KEY_LEN);
    r.via = QPC_ROUTE_VIA_SERVER;
    snprintf(r.next_hop, sizeof(r.next_hop), "%s", session_address(cl));
    r.hops = a->hops + 1;
    r.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    r.last_seen_ms = now;
    r.source = QPC_ROUTE_SRC_ANNOUNCE;
    r.has_seqno = true;
    r.seqno = a->seqno;
    r.hold_ms = routes_hold_ms(a->interval_s);
    if (qpc_route_update(cl->routes, &r, now, &changed) != 0 || !changed)
        return false;
    route_state_changed(cl);
    return true;
}

/* hops 0 says "I am the origin and you are my neighbour": only true on its own link.
 * Anyone else would be starting the chain over at a seed they do not have, so the chain
 * check would fail anyway, but this refuses it before any hashing. */
static bool hops_plausible(const struct qpc_announce *a, const uint8_t *from)
{
    return a->hops != 0 || (from != NULL && memcmp(from, a->key, QPC_KEY_LEN) == 0);
}

/* A later copy of an announce whose first copy was verified (s). Copies come by every
 * way the mesh has, and the first is not the best: a server passes an announce on at
 * once while a qpc waits for its tick, so the first copy often came through a server
 * and the mesh's own way comes a moment later. Each copy is checked against the first
 * (same signed bytes, its own chain: a few hashes) and may teach a route; one that my
 * route now takes and that is shorter than what I passed on goes on to my links too,
 * or those behind me keep the longer way, or none. */
static void copy_receive(struct client *cl, struct link *l, struct qpc_announce *a, struct seen *s,
                         const uint8_t *from, uint64_t now)
{
    struct announcer *an = cl->ann;
    struct origin *o = NULL;

    HASH_FIND(hh, an->origins, a->key, QPC_KEY_LEN, o);
    /* Only copies of the origin's latest: where its newer seqno was taken, an older one
     * is not feasible anyway. */
    if (o == NULL || o->last.seqno != a->seqno)
        return;
    if (!hops_plausible(a, from) || qpc_announce_verify_copy(&o->last, a) < 0) {
        an->st.refused++;
        return;
    }
    an->st.copies++;
    if (!learn_route(cl, l, a, now) || l == NULL)
        return;
    /* What a new link and a seqno request get from me is the way my route takes. */
    if (a->hops < o->last.hops)
        o->last = *a;
    if (qpc_announce_forward(a) == 0 && a->hops < s->passed_hops) {
        pending_shorter(cl, a, s->id, from);
        s->passed_hops = a->hops;
        an->st.copies_passed++;
    }
}

void announce_receive(struct client *cl, struct link *l, const Qpc__MeshAnnounce *pb)
{
    struct announcer *an = cl->ann;
    struct qpc_announce a;
    struct peer_state *ps;
    struct seen *s;
    uint8_t id[QPC_ID_LEN];
    uint64_t mono = mono_ms(), now = now_ms();
    const uint8_t *from = l != NULL && l->ps != NULL ? l->ps->key : NULL;
    bool to_links;
    char who[13];
    int rc;

    if (an == NULL || (l != NULL && from == NULL))
        return;
    an->st.received++;
    if (l != NULL && !link_may(l, mono)) {
        if (an->st.limited++ % 1000 == 0)
            qpc_log_info("announce", "announces from a neighbour over its rate dropped (%llu in all)",
                         (unsigned long long)an->st.limited);
        return;
    }
    if (qpc_announce_from_pb(pb, &a) < 0) {
        an->st.refused++;
        qpc_log_debug("announce", "malformed announce dropped");
        return;
    }
    if (memcmp(a.key, my_key(cl), QPC_KEY_LEN) == 0)
        return;
    qpc_announce_id(&a, id);
    /* Cheap first: a copy seen before costs no signature check. */
    if ((s = seen_find(an, id)) != NULL) {
        pending_heard(an, id, from);
        copy_receive(cl, l, &a, s, from, now);
        return;
    }
    if (!hops_plausible(&a, from)) {
        an->st.refused++;
        return;
    }
    if ((rc = qpc_announce_verify(&a)) < 0) {
        an->st.refused++;
        short_id(who, a.key);
        qpc_log_debug("announce", "announce claiming %s refused: %s", who, qpc_strerror(rc));
        return;   /* not marked seen: the genuine one with this id may still come */
    }
    s = seen_add(an, id, mono);
    origin_note(an, &a, mono);
    /* The origin's home node, in its own signed words: where a message to it that goes
     * through my server must be addressed (handover.c), so the nodes federate it. */
    if (cl->homes != NULL && homes_learn(cl->homes, a.key, a.domain, a.seqno, now))
        route_state_changed(cl);
    learn_route(cl, l, &a, now);
    if ((ps = peers_find(&cl->peers, a.key)) != NULL)
        note_candidates(cl, ps, &a);

    /* The first copy is passed on, one hop further, unless at its limit: at the next
     * tick, to the neighbours that did not send me a copy by then. One from my server
     * goes on to my links only for a client of my own node (home_is_mine): neighbours
     * would route through me, and for anyone else the mesh's own copy, a moment later,
     * is the way to take (copy_receive passes that one on). */
    if (qpc_announce_forward(&a) != 0)
        return;
    if (!(to_links = l != NULL || home_is_mine(cl, a.key)))
        return;   /* and not back to the server it came from */
    if (s != NULL)
        s->passed_hops = a.hops;
    pending_add(cl, &a, id, from, to_links, l != NULL);
}

void announce_fill_candidates(struct client *cl, struct peer_state *ps)
{
    struct origin *o = NULL;

    if (cl->ann == NULL)
        return;
    HASH_FIND(hh, cl->ann->origins, ps->key, QPC_KEY_LEN, o);
    if (o != NULL)
        note_candidates(cl, ps, &o->last);
}

void announce_get_stats(const struct client *cl, struct announce_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (cl->ann != NULL)
        *out = cl->ann->st;
}
