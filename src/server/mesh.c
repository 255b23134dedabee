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
 * the signature held, so a forged copy cannot make the node ignore the real one. What
 * each client is sent is capped by a budget of its own (OUT_RATE_PER_S).
 *
 * Bounds: the dedup table holds DEDUP_MAX ids, each for DEDUP_HOLD_MS, the oldest
 * forgotten first when it is full (mesh_table.c: both tables and their eviction); the origin cache
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
#include "federation.h"
#include "mesh.h"
#include "mesh_table.h"

#define DEDUP_MAX 8192u                  /* announce ids remembered ... */
#define DEDUP_HOLD_MS (10u * 60 * 1000)  /* ... this long at most */
#define ORIGINS_MAX 512u                 /* origins whose latest announce is kept */
#define ORIGIN_HOLD_MAX_MS (60u * 60 * 1000)   /* kept for 3 intervals, at most an hour */
#define CLIENT_RATE_PER_S 10.0           /* announces a client key may hand in per second ... */
#define CLIENT_BURST 100.0               /* ... and at once (what it learned on its links) */
#define NODE_RATE_PER_S 100.0            /* a federated node passes on its whole mesh's */
#define NODE_BURST 1000.0
/* What the node passes on to one client key: a flood to every client is N copies of
 * each of N origins' announces, so each client gets a budget, as Reticulum caps the
 * announces an interface carries. 40 origins announcing every 30 s are 1.3 a second,
 * well within it; a node of thousands of announcing clients sheds instead of melting,
 * and a client learns the rest at its next connect (the cache) or from the next rounds. */
#define OUT_RATE_PER_S 2.0
#define OUT_BURST 60.0
#define REFUSAL_LOG_INTERVAL_MS 60000u   /* one line a minute for every kind of refusal */

_Static_assert(MESH_REFUSED_COUNT == sizeof(((struct node_counters *)0)->announces_refused) /
               sizeof(uint64_t), "node.h counts every mesh_refusal");

const char *const mesh_refusal_names[MESH_REFUSED_COUNT] = {
    [MESH_REFUSED_INVALID] = "invalid", [MESH_REFUSED_FORGED] = "forged",
    [MESH_REFUSED_NOT_ORIGIN] = "not_origin", [MESH_REFUSED_RATE] = "rate_limited",
};

struct mesh {
    struct mesh_table *t;                /* ids and origins (mesh_table.c) */
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
    size_t sent, shed;
};

static void flood_one(struct session *t, void *arg)
{
    struct flood *f = arg;

    /* Not back to the key it came from, nor to its origin, which knows itself. */
    if ((f->from != NULL && f->from->is_client &&
         memcmp(t->key, f->from->key, QPC_KEY_LEN) == 0) ||
        memcmp(t->key, f->a->key, QPC_KEY_LEN) == 0 || !t->push || !t->has_stream)
        return;
    if (!session_take(t, SESSION_RATE_ANNOUNCE_OUT, OUT_RATE_PER_S, OUT_BURST)) {
        f->shed++;
        return;
    }
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
    if (mesh_table_seen(m->t, id, now)) {
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
    mesh_table_remember(m->t, id, now);
    passable = qpc_announce_forward(&a) == 0;
    if (!mesh_table_take_latest(m->t, &a, passable, now)) {
        n->c.announces_duplicate++;          /* a late copy of an older seqno */
        return QPC__STATUS__STATUS_DUPLICATE;
    }
    n->c.announces_in++;
    if (passable) {
        struct flood f = { .from = from, .a = &a };

        session_foreach_client(n->client_ep, flood_one, &f);
        f.sent += federation_announce(n, &a, from->is_client ? NULL : from);
        n->c.announces_passed += f.sent;
        n->c.announces_shed += f.shed;
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

struct replay {
    struct session *s;
    size_t sent;
};

static void replay_one(const struct qpc_announce *a, void *arg)
{
    struct replay *r = arg;

    if (memcmp(a->key, r->s->key, QPC_KEY_LEN) != 0) {   /* not its own */
        send_to_client(r->s, a);
        r->sent++;
    }
}

void mesh_replay(struct session *s)
{
    struct mesh *m = s->node->mesh;
    struct replay r = { .s = s };

    if (m == NULL || s->announces_replayed || !s->has_stream)
        return;
    s->announces_replayed = true;
    mesh_table_foreach_live(m->t, node_mono_ms(), replay_one, &r);
    s->node->c.announces_passed += r.sent;
}

struct greeting {
    struct link *l;
    size_t sent;
};

static void greet_one(const struct qpc_announce *a, void *arg)
{
    struct greeting *g = arg;

    g->sent += federation_announce_link(g->l, a);
}

/* A federation link came up: it gets every live origin this node knows. */
static void greet_link(struct node *n, struct link *l)
{
    struct greeting g = { .l = l };

    if (n->mesh == NULL)
        return;
    mesh_table_foreach_live(n->mesh->t, node_mono_ms(), greet_one, &g);
    n->c.announces_passed += g.sent;
}

void mesh_gc(struct node *n)
{
    if (n->mesh != NULL)
        mesh_table_gc(n->mesh->t, node_mono_ms());
}

const char *mesh_home(const struct node *n, const uint8_t key[static QPC_KEY_LEN])
{
    return n->mesh != NULL ? mesh_table_home(n->mesh->t, key, node_mono_ms()) : NULL;
}

size_t mesh_origins(const struct node *n)
{
    return n->mesh != NULL ? mesh_table_origins(n->mesh->t) : 0;
}

int mesh_start(struct node *n)
{
    const struct mesh_table_limits lim = {
        .ids_max = DEDUP_MAX, .id_hold_ms = DEDUP_HOLD_MS,
        .origins_max = ORIGINS_MAX, .origin_hold_max_ms = ORIGIN_HOLD_MAX_MS,
    };

    n->mesh = calloc(1, sizeof(*n->mesh));
    if (n->mesh == NULL || (n->mesh->t = mesh_table_new(&lim)) == NULL) {
        free(n->mesh);
        n->mesh = NULL;
        return QPC_ERR_NOMEM;
    }
    federation_set_link_greeter(n, greet_link);
    return 0;
}

void mesh_stop(struct node *n)
{
    if (n->mesh == NULL)
        return;
    federation_set_link_greeter(n, NULL);
    mesh_table_free(n->mesh->t);
    free(n->mesh);
    n->mesh = NULL;
}
