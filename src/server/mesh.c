/*
 * mesh.c: the node as one hop of the announce flood (ClientRequest.announce,
 * ServerMessage.announce, FederationRequest.announce; docs/routing.md "Through nodes").
 *
 * The one idea: the node is an untrusted relay of announces it cannot judge beyond their
 * signature, so it spends its work in the mesh's order and keeps nothing a stranger can
 * grow. Each announce that arrives is, in turn: charged to its sender's rate (a token
 * bucket on the monotonic clock, per client key or per federation connection), decoded
 * strictly, looked up in the dedup table by qpc_announce_id (key || seqno: one keyed-hash
 * look-up, whatever path it took), held to the hops-0 rule (an announce that claims to be
 * fresh from its origin must come from the session that proved the origin's key), and
 * only then verified (Ed25519 and the hash chain: the dear part). A verified announce
 * whose seqno is not newer than the one this node keeps for its origin is a late copy
 * and goes no further. A new one enters the dedup table, replaces its origin's entry in
 * the cache, and goes on once, hopped by qpc_announce_forward, to every other listening
 * client (push on) and to every federated or statically peered node except the one it
 * came from; at its hop limit it is kept but passed nowhere. The id is recorded only after
 * the signature held, so a forged copy cannot make the node ignore the real one.
 *
 * Bounds: the dedup table holds DEDUP_MAX ids, each for DEDUP_HOLD_MS, the oldest
 * forgotten first when it is full (a uthash kept in insertion order); the origin cache
 * holds ORIGINS_MAX origins, the one heard from longest ago forgotten first, each for
 * three of its announce intervals (capped). An id forgotten early can let a late copy
 * through once more, which the origin cache's seqno (and, past it, the hop limit) stops:
 * loops end either way. Refusals are counted by reason and logged one line per minute
 * at most, whoever sends them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "qpc/announce.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/uthash_keyed.h"
#include "federation.h"
#include "mesh.h"

#define DEDUP_MAX 8192u                  /* announce ids remembered ... */
#define DEDUP_HOLD_MS (10u * 60 * 1000)  /* ... this long at most */
#define ORIGINS_MAX 512u                 /* origins whose latest announce is kept */
#define ORIGIN_HOLD_MAX_MS (60u * 60 * 1000)   /* kept for 3 intervals, at most an hour */
#define CLIENT_RATE_PER_S 10.0           /* announces a client key may hand in per second ... */
#define CLIENT_BURST 100.0               /* ... and at once (what it learned on its links) */
#define NODE_RATE_PER_S 100.0            /* a federated node passes on its whole mesh's */
#define NODE_BURST 1000.0
#define REFUSAL_LOG_INTERVAL_MS 60000u   /* one line a minute for every kind of refusal */

_Static_assert(MESH_REFUSED_COUNT == sizeof(((struct node_counters *)0)->announces_refused) /
               sizeof(uint64_t), "node.h counts every mesh_refusal");

const char *const mesh_refusal_names[MESH_REFUSED_COUNT] = {
    [MESH_REFUSED_INVALID] = "invalid", [MESH_REFUSED_FORGED] = "forged",
    [MESH_REFUSED_NOT_ORIGIN] = "not_origin", [MESH_REFUSED_RATE] = "rate_limited",
};

struct seen_id {
    uint8_t id[QPC_ID_LEN];
    uint64_t at_mono;
    UT_hash_handle hh;
};

struct origin {
    uint8_t key[QPC_KEY_LEN];
    struct qpc_announce latest;          /* as this node passes it on (already hopped) */
    bool passable;                       /* false: it reached its hop limit here */
    uint64_t heard_mono;
    uint64_t hold_ms;
    UT_hash_handle hh;
};

struct mesh {
    /* Keyed hashing (uthash_keyed.h): senders pick keys and seqnos. Both tables are kept
     * oldest first (an entry refreshed is deleted and added again), so eviction and GC
     * look at the head only. */
    struct seen_id *seen;
    struct origin *origins;
};

static void log_refusal(enum mesh_refusal why, const char *from, const struct qpc_announce *a)
{
    static struct qpc_log_limit limit;
    uint64_t suppressed = 0;
    char hex[QPC_KEY_HEX_LEN] = "?";

    if (!qpc_log_limit_pass(&limit, ratelimit_now_ms(), REFUSAL_LOG_INTERVAL_MS, &suppressed))
        return;
    if (a != NULL)
        qpc_key_to_hex(hex, a->key);
    qpc_log_warn("mesh", "announce from %s refused (%s, origin %.16s...); %llu more refusals "
                 "since the last line (qpc_announces_refused_total counts each)", from,
                 mesh_refusal_names[why], hex, (unsigned long long)suppressed);
}

static bool seen(const struct mesh *m, const uint8_t id[static QPC_ID_LEN], uint64_t now)
{
    struct seen_id *e = NULL;

    HASH_FIND(hh, m->seen, id, QPC_ID_LEN, e);
    return e != NULL && now - e->at_mono < DEDUP_HOLD_MS;
}

static void remember(struct mesh *m, const uint8_t id[static QPC_ID_LEN], uint64_t now)
{
    struct seen_id *e = NULL;

    HASH_FIND(hh, m->seen, id, QPC_ID_LEN, e);
    if (e != NULL) {
        HASH_DEL(m->seen, e);                /* re-added at the end: newest */
    } else if (HASH_COUNT(m->seen) >= DEDUP_MAX) {
        e = m->seen;                         /* the oldest goes */
        HASH_DEL(m->seen, e);
    } else if ((e = calloc(1, sizeof(*e))) == NULL) {
        return;
    }
    memcpy(e->id, id, QPC_ID_LEN);
    e->at_mono = now;
    HASH_ADD(hh, m->seen, id, QPC_ID_LEN, e);
}

/*
 * Takes a (verified) into the origin cache. Returns false when it is not newer than the
 * announce already kept for its origin (a late copy: pass it nowhere).
 */
static bool cache_latest(struct mesh *m, const struct qpc_announce *a, bool passable,
                         uint64_t now)
{
    struct origin *o = NULL;
    uint64_t hold = (uint64_t)a->interval_s * 3000u;

    HASH_FIND(hh, m->origins, a->key, QPC_KEY_LEN, o);
    if (o != NULL && now - o->heard_mono < o->hold_ms &&
        !qpc_announce_seqno_newer(a->seqno, o->latest.seqno))
        return false;
    if (o != NULL) {
        HASH_DEL(m->origins, o);
    } else if (HASH_COUNT(m->origins) >= ORIGINS_MAX) {
        o = m->origins;                      /* heard from longest ago */
        HASH_DEL(m->origins, o);
    } else if ((o = calloc(1, sizeof(*o))) == NULL) {
        return true;                         /* not cached, still new */
    }
    memcpy(o->key, a->key, QPC_KEY_LEN);
    o->latest = *a;
    o->passable = passable;
    o->heard_mono = now;
    o->hold_ms = hold < ORIGIN_HOLD_MAX_MS ? hold : ORIGIN_HOLD_MAX_MS;
    HASH_ADD(hh, m->origins, key, QPC_KEY_LEN, o);
    return true;
}

static void send_to_client(struct session *t, const struct qpc_announce *a)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    struct qpc_announce_pb apb;

    qpc_announce_to_pb(a, &apb);
    msg.body_case = QPC__SERVER_MESSAGE__BODY_ANNOUNCE;
    msg.announce = &apb.pb;
    session_send_message(t, &msg.base);
}

struct flood {
    const struct session *from;
    const struct qpc_announce *a;
    size_t sent;
};

static void flood_one(struct session *t, void *arg)
{
    struct flood *f = arg;

    /* Not back to the key it came from, nor to its origin, which knows itself. */
    if ((f->from != NULL && f->from->is_client &&
         memcmp(t->key, f->from->key, QPC_KEY_LEN) == 0) ||
        memcmp(t->key, f->a->key, QPC_KEY_LEN) == 0 || !t->push || !t->has_stream)
        return;
    send_to_client(t, f->a);
    f->sent++;
}

/*
 * One announce from session from (a client or a federated node). Returns the Qpc__Status
 * for a node's answer.
 */
static int handle(struct session *from, const Qpc__MeshAnnounce *pb, double rate, double burst)
{
    struct node *n = from->node;
    struct mesh *m = n->mesh;
    struct qpc_announce a;
    uint8_t id[QPC_ID_LEN];
    uint64_t now = node_mono_ms();
    enum mesh_refusal why;
    bool passable;
    int rc;

    if (m == NULL)
        return QPC__STATUS__STATUS_INTERNAL;
    if (!session_take(from, SESSION_RATE_ANNOUNCE, rate, burst)) {
        why = MESH_REFUSED_RATE;
        goto refused_early;
    }
    if (qpc_announce_from_pb(pb, &a) != 0) {
        why = MESH_REFUSED_INVALID;
        goto refused_early;
    }
    qpc_announce_id(&a, id);
    if (seen(m, id, now)) {
        n->c.announces_duplicate++;
        return QPC__STATUS__STATUS_DUPLICATE;
    }
    /* "Fresh from its origin" is a claim only the origin's own session may make: anyone
     * else would pass on a copy it hopped itself (docs/routing.md, "Announces"). */
    if (a.hops == 0 &&
        !(from->has_peer_key && sodium_memcmp(from->key, a.key, QPC_KEY_LEN) == 0)) {
        why = MESH_REFUSED_NOT_ORIGIN;
        goto refused;
    }
    rc = qpc_announce_verify(&a);
    if (rc != 0) {
        why = rc == QPC_ERR_BAD_SIGNATURE ? MESH_REFUSED_FORGED : MESH_REFUSED_INVALID;
        goto refused;
    }
    remember(m, id, now);
    passable = qpc_announce_forward(&a) == 0;
    if (!cache_latest(m, &a, passable, now)) {
        n->c.announces_duplicate++;          /* a late copy of an older seqno */
        return QPC__STATUS__STATUS_DUPLICATE;
    }
    n->c.announces_in++;
    if (passable) {
        struct flood f = { .from = from, .a = &a };

        session_foreach_client(n->client_ep, flood_one, &f);
        f.sent += federation_announce(n, &a, from->is_client ? NULL : from);
        n->c.announces_passed += f.sent;
        if (qpc_log_get_level() >= QPC_LOG_DEBUG) {
            char hex[QPC_KEY_HEX_LEN];
            qpc_key_to_hex(hex, a.key);
            qpc_log_debug("mesh", "announce %.16s... seqno %u from %s (hop %u/%u): %zu copies",
                          hex, a.seqno, from->peer_addr, a.hops, a.max_hops, f.sent);
        }
    }
    return QPC__STATUS__STATUS_OK;
refused:
    n->c.announces_refused[why]++;
    log_refusal(why, from->peer_addr, &a);
    return why == MESH_REFUSED_NOT_ORIGIN ? QPC__STATUS__STATUS_FORBIDDEN
                                          : QPC__STATUS__STATUS_INVALID;
refused_early:
    n->c.announces_refused[why]++;
    log_refusal(why, from->peer_addr, NULL);
    return why == MESH_REFUSED_RATE ? QPC__STATUS__STATUS_RATE_LIMITED
                                    : QPC__STATUS__STATUS_INVALID;
}

void mesh_handle_client(struct session *s, const Qpc__MeshAnnounce *pb)
{
    handle(s, pb, CLIENT_RATE_PER_S, CLIENT_BURST);
}

void mesh_handle_federation(struct session *s, uint64_t request_id, const Qpc__MeshAnnounce *pb)
{
    Qpc__FederationResponse fr = QPC__FEDERATION_RESPONSE__INIT;
    Qpc__Status st = (Qpc__Status)handle(s, pb, NODE_RATE_PER_S, NODE_BURST);

    fr.request_id = request_id;
    fr.n_statuses = 1;
    fr.statuses = &st;
    session_send_message(s, &fr.base);
}

static bool live(const struct origin *o, uint64_t now)
{
    return o->passable && now - o->heard_mono < o->hold_ms;
}

void mesh_replay(struct session *s)
{
    struct mesh *m = s->node->mesh;
    struct origin *o, *tmp;
    uint64_t now = node_mono_ms();
    size_t sent = 0;

    if (m == NULL || s->announces_replayed || !s->has_stream)
        return;
    s->announces_replayed = true;
    HASH_ITER(hh, m->origins, o, tmp) {
        if (live(o, now) && memcmp(o->key, s->key, QPC_KEY_LEN) != 0) {
            send_to_client(s, &o->latest);
            sent++;
        }
    }
    s->node->c.announces_passed += sent;
}

/* A federation link came up: it gets every live origin this node knows. */
static void greet_link(struct node *n, struct link *l)
{
    struct mesh *m = n->mesh;
    struct origin *o, *tmp;
    uint64_t now = node_mono_ms();

    if (m == NULL)
        return;
    HASH_ITER(hh, m->origins, o, tmp) {
        if (live(o, now))
            n->c.announces_passed += federation_announce_link(l, &o->latest);
    }
}

void mesh_gc(struct node *n)
{
    struct mesh *m = n->mesh;
    struct seen_id *e, *etmp;
    struct origin *o, *otmp;
    uint64_t now = node_mono_ms();

    if (m == NULL)
        return;
    HASH_ITER(hh, m->seen, e, etmp) {        /* oldest first: stop at the first young one */
        if (now - e->at_mono < DEDUP_HOLD_MS)
            break;
        HASH_DEL(m->seen, e);
        free(e);
    }
    HASH_ITER(hh, m->origins, o, otmp) {     /* each has its own hold: look at all */
        if (now - o->heard_mono >= o->hold_ms) {
            HASH_DEL(m->origins, o);
            free(o);
        }
    }
}

size_t mesh_origins(const struct node *n)
{
    return n->mesh != NULL ? HASH_COUNT(n->mesh->origins) : 0;
}

int mesh_start(struct node *n)
{
    n->mesh = calloc(1, sizeof(*n->mesh));
    if (n->mesh == NULL)
        return QPC_ERR_NOMEM;
    federation_set_link_greeter(n, greet_link);
    return 0;
}

void mesh_stop(struct node *n)
{
    struct mesh *m = n->mesh;
    struct seen_id *e, *etmp;
    struct origin *o, *otmp;

    if (m == NULL)
        return;
    federation_set_link_greeter(n, NULL);
    HASH_ITER(hh, m->seen, e, etmp) {
        HASH_DEL(m->seen, e);
        free(e);
    }
    HASH_ITER(hh, m->origins, o, otmp) {
        HASH_DEL(m->origins, o);
        free(o);
    }
    free(m);
    n->mesh = NULL;
}
