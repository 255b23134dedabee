/*
 * flood.c: broadcast flooding (flood.h).
 *
 * The one idea: a broadcast goes everywhere once. Each node verifies it once (dedup by
 * id first, in receive.c), shows it if it holds the channel key, and passes it on to
 * every other link -- and to its server, unless it came from there -- with hop_count + 1
 * until max_hops. Nodes keep live broadcasts in the store and hand them to peers (and a
 * server) they meet later; the receivers drop copies by id.
 *
 * All but one kind of copy: the first copy to arrive may have come the long way round
 * (a link down, a server that passes things on at once) and reached its hop limit here,
 * so the nodes beyond never get it. A later copy that came by fewer hops than every one
 * before it goes on like the first (flood_relay_copy), a few times per id at most
 * (qpc_store_goes_further); it is not shown again.
 *
 * The one cost that grows with a burst is the Ed25519 check at every node, so my own
 * broadcasts of one loop turn do not go to the links at once: they wait, encoded, for the
 * turn's end (flood_flush, from turn.c), and then go out behind one signed batch
 * (broadcast_batch.h) that lets each receiver check them by hash. Nothing waits longer
 * than the turn it was made in, and a lone broadcast goes alone, as before. A batch that
 * arrives is verified once, remembered, and passed on like a broadcast, ahead of the
 * envelopes it names (flood_take_batch). The server gets every broadcast at once, alone:
 * it checks each one itself.
 *
 * Built without mesh (QPC_MESH 0) there are no links: a broadcast goes to the server and
 * comes from it, and the live ones are kept for the next session.
 */
#include <stdlib.h>
#include <string.h>

#include "flood.h"
#if QPC_MESH
#include "link.h"
#endif
#include "output.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "session.h"

#if QPC_MESH
/* The next link a broadcast of sender that came on except (NULL: mine) goes to: the best
 * link of every peer but the one it came from and its sender. Start with ps = NULL. */
static struct link *next_link(struct client *cl, struct peer_state **ps, const uint8_t sender[static QPC_KEY_LEN],
                              const struct link *except)
{
    while ((*ps = peers_next(&cl->peers, *ps)) != NULL) {
        struct link *l = link_best(*ps);

        if (l != NULL && l != except && (except == NULL || except->ps != *ps) &&
            memcmp((*ps)->key, sender, QPC_KEY_LEN) != 0)
            return l;
    }
    return NULL;
}
#endif

/* Sends env to every link next_link names (without mesh there is none). */
static void to_links(struct client *cl, const struct qpc_envelope *env, const struct link *except)
{
#if QPC_MESH
    struct peer_state *ps = NULL;
    struct link *l;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (qpc_envelope_encode(env, &buf, &len) < 0)
        return;
    while ((l = next_link(cl, &ps, env->sender, except)) != NULL)
        link_send_envelope_bytes(l, buf, len);
    free(buf);
#endif
}

#if QPC_MESH
void flood_flush(struct client *cl)
{
    struct flood_burst *b = &cl->burst;
    struct qpc_broadcast_batch batch;
    struct peer_state *ps = NULL;
    struct link *l;
    uint8_t *bb = NULL;
    size_t blen = 0;
    uint64_t now = now_ms();

    if (b->n == 0)
        return;
    /* Two or more: one signature for them all. Should it fail, each still carries its own. */
    if (b->n >= QPC_BATCH_MIN && cl->vouches != NULL &&
        qpc_broadcast_batch_sign(&batch, qpc_identity_secret_key(cl->id), (const uint8_t (*)[QPC_ID_LEN])b->digests,
                                 b->n, now) == 0 &&
        qpc_broadcast_batch_encode(&batch, &bb, &blen) == 0 &&
        qpc_batch_vouches_take(cl->vouches, &batch, now) < 0) {   /* a copy coming back is known */
        free(bb);
        bb = NULL;
    }
    if (bb != NULL)
        cl->batches.sent++;
    while ((l = next_link(cl, &ps, qpc_identity_public_key(cl->id), NULL)) != NULL) {
        if (bb != NULL)
            link_send_batch_bytes(l, bb, blen);   /* first: the envelopes are checked against it */
        for (size_t i = 0; i < b->n; i++)
            link_send_envelope_bytes(l, b->bufs[i], b->lens[i]);
    }
    free(bb);
    for (size_t i = 0; i < b->n; i++)
        free(b->bufs[i]);
    b->n = 0;
}

/* Holds env (encoded) for the turn's end; false when it cannot, and it goes now. */
static bool hold_for_turn(struct client *cl, const struct qpc_envelope *env)
{
    struct flood_burst *b = &cl->burst;

    if (cl->ep == NULL || qpc_envelope_encode(env, &b->bufs[b->n], &b->lens[b->n]) < 0)
        return false;
    if (qpc_broadcast_batch_digest(env, b->digests[b->n]) < 0) {
        free(b->bufs[b->n]);
        return false;
    }
    if (++b->n == QPC_BATCH_MAX)
        flood_flush(cl);   /* a full batch goes now; the turn goes on with a new one */
    return true;
}

void flood_take_batch(struct client *cl, struct link *from, const uint8_t *d, size_t n)
{
    struct qpc_broadcast_batch b;
    struct peer_state *ps = NULL;
    struct link *l;
    int rc = qpc_broadcast_batch_decode(&b, d, n);

    if (rc == 0 && cl->vouches != NULL)
        rc = qpc_batch_vouches_take(cl->vouches, &b, now_ms());
    if (rc == QPC_ERR_EXPIRED || rc == QPC_ERR_FUTURE || rc == QPC_ERR_NOMEM) {
        /* Late (a slow path) or a clock apart: its envelopes are checked one by one. */
        cl->batches.refused++;
        qpc_log_debug("node", "broadcast batch not used: %s", qpc_strerror(rc));
        return;
    }
    if (rc < 0) {
        cl->batches.refused++;
        link_note_garbage(from, mono_ms(), "forged or malformed broadcast batch");
        return;
    }
    if (rc == 0)
        return;   /* known: had and passed on already */
    cl->batches.taken++;
    /* On ahead of the envelopes it names, which follow it here once they are checked. */
    while ((l = next_link(cl, &ps, b.sender, from)) != NULL)
        link_send_batch_bytes(l, d, n);
}
#endif

/* Keeps env (moved) in the store for peers met later; if the store will not, its id is
 * at least marked seen so a copy coming back is dropped. */
static void keep(struct client *cl, struct qpc_envelope *env, uint64_t now)
{
    if (qpc_store_put(cl->store, env, now) < 0) {
        qpc_store_mark_seen(cl->store, env->id, qpc_envelope_expires_at_ms(env), now);
        qpc_envelope_clear(env);
    }
}

/* Both move env into the store once it has gone out: no copy of its payload per hop. */
void flood_originate(struct client *cl, struct qpc_envelope *env, uint64_t now)
{
#if QPC_MESH
    if (!hold_for_turn(cl, env))
#endif
        to_links(cl, env, NULL);
    session_broadcast(cl, env);
    keep(cl, env, now);
}

/* hop_count + 1 and, below max_hops, to every other link and (unless it came from there)
 * the server. */
static void pass_on(struct client *cl, struct qpc_envelope *env, const struct link *from)
{
    if (qpc_envelope_hop(env) == 0) {
        to_links(cl, env, from);
        if (from != NULL)
            session_broadcast(cl, env);   /* the server floods to its clients and nodes */
    }
}

void flood_relay(struct client *cl, struct qpc_envelope *env, const struct link *from, uint64_t now)
{
    uint8_t id[QPC_ID_LEN];
    uint32_t arrived = env->hop_count;

    memcpy(id, env->id, QPC_ID_LEN);   /* keep moves env */
    pass_on(cl, env, from);
    keep(cl, env, now);
    qpc_store_note_hops(cl->store, id, arrived);   /* what a later copy must beat */
}

void flood_relay_copy(struct client *cl, struct qpc_envelope *env, const struct link *from)
{
    uint32_t arrived = env->hop_count;

    pass_on(cl, env, from);
    qpc_store_note_hops(cl->store, env->id, arrived);
    cl->bcast_copies_passed++;
}

#if QPC_MESH
static int to_link_cb(void *ctx, const struct qpc_envelope *env)
{
    link_send_envelope(ctx, env);
    return 0;
}

void flood_replay_to_link(struct client *cl, struct link *l, uint64_t now)
{
    qpc_store_foreach_broadcast(cl->store, now, to_link_cb, l);
}
#endif

static int to_server_cb(void *ctx, const struct qpc_envelope *env)
{
    session_broadcast(ctx, env);
    return 0;
}

void flood_replay_to_server(struct client *cl, uint64_t now)
{
    qpc_store_foreach_broadcast(cl->store, now, to_server_cb, cl);
}
