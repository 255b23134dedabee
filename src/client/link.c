/*
 * link.c: P2P links and the frames on them (link.h).
 *
 * The one idea: a link is one QUIC connection to one peer, direct or relayed through
 * our server, and a peer may have several for a moment (both sides dialled, several
 * candidates answered, a relayed one beside a direct one). Whatever goes to a peer takes
 * link_usable: a direct link if one is up, else a relayed one once the direct attempts'
 * head start is over. Duplicates are closed by one rule both ends compute alike
 * (link_dedup), so a pair settles on one link. Each link uses one bidirectional stream
 * (the first opened) for P2pFrames: envelopes one way, acks back, and each side's
 * address candidates and process instance once when it comes up.
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

bool link_note_garbage(struct link *l, uint64_t now, const char *what)
{
    uint64_t suppressed = 0;
    char who[13] = "(unknown)";

    if (l->garbage_closed)
        return true;
    if (l->garbage == 0 || now >= l->garbage_since_ms + LINK_GARBAGE_WINDOW_MS) {
        l->garbage = 0;
        l->garbage_since_ms = now;
    }
    l->garbage++;
    if (l->ps != NULL)
        short_id(who, l->ps->key);
    if (l->garbage >= LINK_GARBAGE_MAX) {
        l->garbage_closed = true;
        qpc_log_warn("node", "link to %s at %s: %u malformed frames within %u s; closing it",
                     who, l->addr[0] ? l->addr : "?", l->garbage,
                     LINK_GARBAGE_WINDOW_MS / 1000u);
        qpc_quic_conn_close(l->conn, QPC_QUIC_APP_REFUSED, "too many malformed frames");
        l->up = false;
        return true;
    }
    /* The peer's budget, not the link's: a peer that dials again does not get more lines. */
    if (qpc_log_limit_pass(l->ps != NULL ? &l->ps->garbage_log : &l->garbage_log, now,
                           LINK_GARBAGE_LOG_MS, &suppressed))
        qpc_log_warn("node", "link to %s at %s: %s dropped (%llu more like it suppressed)", who,
                     l->addr[0] ? l->addr : "?", what, (unsigned long long)suppressed);
    return false;
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

/* Every frame of ours but acks goes on the link's one stream, opened on first use; acks
 * answer on the stream the envelope came on (link_send_ack). */
static int link_send_frame(struct link *l, Qpc__P2pFrame *f)
{
    int rc = link_stream(l);

    if (rc == 0)
        rc = qpc_quic_conn_send_message(l->conn, l->sid, &f->base);
    return rc;
}

int link_send_envelope_bytes(struct link *l, const uint8_t *buf, size_t len)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    int rc;

    f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
    f.envelope.data = (uint8_t *)buf;
    f.envelope.len = len;
    rc = link_send_frame(l, &f);
    if (rc == 0 && l->unacked++ == 0)
        l->unacked_since_ms = now_ms();
    return rc;
}

int link_send_batch_bytes(struct link *l, const uint8_t *buf, size_t len)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    int rc;

    f.body_case = QPC__P2P_FRAME__BODY_BROADCAST_BATCH;
    f.broadcast_batch.data = (uint8_t *)buf;   /* pack only reads it */
    f.broadcast_batch.len = len;
    rc = link_stream(l);
    if (rc == 0)
        rc = qpc_quic_conn_send_message(l->conn, l->sid, &f.base);
    return rc;
}

int link_send_announce(struct link *l, const Qpc__MeshAnnounce *a)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;

    f.body_case = QPC__P2P_FRAME__BODY_ANNOUNCE;
    f.announce = (Qpc__MeshAnnounce *)a;   /* pack only reads it */
    return link_send_frame(l, &f);
}

int link_send_seqreq(struct link *l, const Qpc__MeshSeqnoRequest *r)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;

    f.body_case = QPC__P2P_FRAME__BODY_SEQNO_REQUEST;
    f.seqno_request = (Qpc__MeshSeqnoRequest *)r;   /* pack only reads it */
    return link_send_frame(l, &f);
}

void link_note_ack(struct link *l, uint64_t now)
{
    if (l->unacked > 0)
        l->unacked--;
    l->unacked_since_ms = now;
    if (l->retiring && l->unacked == 0 && l->up) {
        qpc_quic_conn_close(l->conn, QPC_QUIC_APP_NO_ERROR, "direct path up");
        l->up = false;
    }
}

bool link_stalled(const struct link *l, uint64_t now, uint64_t after_ms)
{
    return l->up && ((l->unacked > 0 && now > l->unacked_since_ms + after_ms) ||
                     qpc_quic_conn_pto_count(l->conn) >= LINK_STALL_PTOS);
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

void link_send_candidates(struct link *l, const struct candidates *mine, uint64_t instance)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    Qpc__PathCandidates pc = QPC__PATH_CANDIDATES__INIT;
    char *addrs[CANDIDATES_MAX];
    char seen[QPC_ADDRESS_MAX + 1] = "";

    for (size_t i = 0; i < mine->n; i++)
        addrs[i] = (char *)mine->addr[i];
    pc.n_addresses = mine->n;
    pc.addresses = addrs;
    if (!l->relayed)
        qpc_addr_format(qpc_quic_conn_remote_addr(l->conn, &(socklen_t){ 0 }), seen, sizeof(seen));
    pc.observed = seen;
    pc.instance = instance;
    if (!l->relayed) {
        struct link *o;

        LL_FOREACH(l->ps->links, o)
            pc.links += o->up && !o->relayed && !o->retiring;
    }
    f.body_case = QPC__P2P_FRAME__BODY_CANDIDATES;
    f.candidates = &pc;
    if (link_send_frame(l, &f) < 0)
        qpc_log_debug("node", "candidates not sent on a link");
}

/* Closes a duplicate link: it stops carrying anything now; cb_closed frees it, and
 * custody sends again on the kept link what went out on it (the peer drops copies). */
static void drop_duplicate(struct link *l)
{
    char who[13];

    short_id(who, l->ps->key);
    qpc_log_debug("node", "duplicate link to %s closed (%s %s)", who, l->relayed ? "relayed" : "direct", l->addr);
    qpc_quic_conn_close(l->conn, QPC_QUIC_APP_NO_ERROR, "duplicate link");
    l->up = false;
}

/* Which of two links of one kind to one peer process goes (peers.c's rule): NULL when
 * the peer decides. */
static struct link *duplicate_of(struct link *a, struct link *b, bool i_am_smaller)
{
    const struct link_facts fa = { a->initiated, a->up_ms, (uintptr_t)a };
    const struct link_facts fb = { b->initiated, b->up_ms, (uintptr_t)b };

    switch (peers_duplicate_drop(&fa, &fb, i_am_smaller)) {
    case 1: return a;
    case 2: return b;
    default: return NULL;
    }
}

void link_dedup(struct peer_state *ps, const uint8_t me[static QPC_KEY_LEN])
{
    bool i_am_smaller = memcmp(me, ps->key, QPC_KEY_LEN) < 0;
    struct link *a, *b;

again:
    LL_FOREACH(ps->links, a) {
        if (!a->up || !a->has_instance)
            continue;
        LL_FOREACH(a->next, b) {
            struct link *drop;

            if (!b->up || !b->has_instance || b->relayed != a->relayed || b->peer_instance != a->peer_instance)
                continue;
            drop = duplicate_of(a, b, i_am_smaller);
            if (drop != NULL) {
                drop_duplicate(drop);
                goto again;   /* a may be the one dropped: walk again from the start */
            }
        }
    }
}

void link_path_text(struct peer_state *ps, char *out, size_t cap)
{
    struct link *l = link_best(ps);

    if (l == NULL)
        snprintf(out, cap, "none");
    else
        snprintf(out, cap, "%s %s", l->relayed ? "relayed via" : "direct", l->addr);
}

struct link *link_best(struct peer_state *ps)
{
    struct link *l, *relayed = NULL;

    if (ps == NULL)
        return NULL;
    LL_FOREACH(ps->links, l) {
        if (!l->up || l->retiring)
            continue;
        if (!l->relayed)
            return l;
        relayed = l;
    }
    return relayed;
}

struct link *link_usable(struct peer_state *ps, uint64_t now)
{
    struct link *l = link_best(ps);

    return l != NULL && l->relayed && now < ps->headstart_until_ms ? NULL : l;
}

bool link_relayed_any(struct peer_state *ps)
{
    struct link *l;

    LL_FOREACH(ps->links, l) {
        if (l->relayed)
            return true;
    }
    return false;
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
    struct peer_state *ps = peers_find(&cl->peers, recipient);
    uint64_t now = now_ms();
    struct link *l = ps != NULL ? link_usable(ps, now) : NULL;
    uint8_t via[QPC_KEY_LEN];

    if (l != NULL)
        return l;
    if (routes_next_peer(cl->routes, recipient, via) && (ps = peers_find(&cl->peers, via)) != NULL)
        return link_usable(ps, now);
    return NULL;
}

size_t link_count(const struct client *cl)
{
    const struct peer_state *ps = NULL;
    size_t n = 0;

    while ((ps = peers_next(&cl->peers, ps)) != NULL)
        n += link_best((struct peer_state *)ps) != NULL;
    return n;
}

void link_describe(struct client *cl)
{
    struct peer_state *ps = NULL;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        const struct qpc_peer *p = qpc_identity_peer_get(cl->id, ps->key);
        char who[13], path[QPC_ADDRESS_MAX + 32];

        if (link_best(ps) == NULL)
            continue;
        short_id(who, ps->key);
        link_path_text(ps, path, sizeof(path));
        say(cl, "  peer %s  %s  %s", who, p != NULL && p->name != NULL ? p->name : "-", path);
    }
}
