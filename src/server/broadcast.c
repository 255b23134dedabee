/*
 * broadcast.c: the node as a relay of broadcast channels (ClientRequest.broadcast,
 * ServerMessage.broadcast, FederationRequest.relay_broadcast).
 *
 * The one idea: a broadcast is not a delivery. Nobody is its recipient and nobody acks
 * it, so the node neither queues it durably nor answers after a commit: it checks it
 * once and floods it on at once, best effort, like a mesh client does over its P2P
 * links. The node cannot read it (it holds no channel key) and is an untrusted relay
 * for others' broadcasts, so the order is the mesh's: strict decode, dedup by id (one
 * keyed-hash look-up), then the dear signature check, expiry and hop limit, and only
 * then hop_count + 1 and out to every other client that listens (push enabled) and to
 * every federation peer. A later copy that came by fewer hops than every one before goes
 * on too (store.h, "Later copies"): the first may have stopped at its hop limit. The id
 * enters the dedup set only after the signature held, so
 * a forged copy cannot make the node ignore the real one; a forged copy is remembered
 * by its content and signature (the store's refused set), so its replays cost a lookup,
 * not a signature check. The id is recorded before the broadcast goes anywhere; when the
 * dedup set is full (it never forgets an id within its TTL) the broadcast is refused
 * with RATE_LIMITED instead of passed on unrecorded.
 *
 * A small in-memory MeshStore (its broadcast buckets, bounded per topic and in bytes)
 * keeps what is still alive, so a client that turns push on later still gets the
 * bulletins it missed; they are lost when the node restarts, which is the documented
 * contract of a broadcast (docs/protocol.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/store.h"
#include "broadcast.h"
#include "federation.h"
#include "request.h"

#define BCAST_RATE_PER_S 20.0       /* broadcasts a client may hand in per second... */
#define BCAST_BURST 100.0           /* ...and at once (a client replaying what it holds) */
#define BCAST_KEEP_PER_TOPIC 64u    /* recent broadcasts kept per topic for late comers */
#define BCAST_KEEP_BYTES (4u * 1024 * 1024)
#define BCAST_DEDUP_BYTES (32u * 1024 * 1024)   /* ids of broadcasts within their TTL
                                                 * (~260,000); full: refused, none forgotten */
#define BCAST_MAX_REFUSED 16384u    /* forged broadcasts remembered by content + signature */

int broadcast_start(struct node *n)
{
    struct qpc_store_limits lim = { 0 };

    lim.per_queue = BCAST_KEEP_PER_TOPIC;
    lim.max_bytes = BCAST_KEEP_BYTES;
    lim.dedup_max_bytes = BCAST_DEDUP_BYTES;
    lim.max_refused = BCAST_MAX_REFUSED;
    n->bcast_store = qpc_store_new(&lim);
    return n->bcast_store != NULL ? 0 : QPC_ERR_NOMEM;
}

void broadcast_stop(struct node *n)
{
    qpc_store_free(n->bcast_store);
    n->bcast_store = NULL;
}

void broadcast_gc(struct node *n, uint64_t now_ms)
{
    if (n->bcast_store != NULL)
        qpc_store_gc(n->bcast_store, now_ms);
}

/* Sends one encoded envelope to a client as an unsolicited BroadcastNotice. */
static void notify(struct session *s, const uint8_t *blob, size_t len)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__BroadcastNotice bn = QPC__BROADCAST_NOTICE__INIT;

    bn.envelope.data = (uint8_t *)blob;
    bn.envelope.len = len;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_BROADCAST;
    msg.broadcast = &bn;
    session_send_message(s, &msg.base);
}

struct flood {
    const uint8_t *from_key;       /* the client it came from, or NULL */
    const uint8_t *sender;
    const uint8_t *blob;
    size_t len;
    size_t sent;
};

static void flood_one(struct session *t, void *arg)
{
    struct flood *f = arg;

    if ((f->from_key != NULL && memcmp(t->key, f->from_key, QPC_KEY_LEN) == 0) ||
        memcmp(t->key, f->sender, QPC_KEY_LEN) == 0 || !t->push || !t->has_stream)
        return;
    notify(t, f->blob, f->len);
    f->sent++;
}

/* Every listening client except the ones of the key it came from and of its sender. */
static size_t flood_clients(struct node *n, const uint8_t *from_key, const uint8_t *sender,
                            const uint8_t *blob, size_t len)
{
    struct flood f = { .from_key = from_key, .sender = sender, .blob = blob, .len = len };

    session_foreach_client(n->client_ep, flood_one, &f);
    return f.sent;
}

static int status_of_verify(int rc)
{
    switch (rc) {
    case QPC_ERR_EXPIRED: return QPC__STATUS__STATUS_EXPIRED;
    case QPC_ERR_TOO_LARGE: return QPC__STATUS__STATUS_TOO_LARGE;
    case QPC_ERR_NOMEM: return QPC__STATUS__STATUS_INTERNAL;
    default: return QPC__STATUS__STATUS_INVALID;
    }
}

/*
 * Records a verified broadcast's id before it goes anywhere: kept in full for clients
 * that come later, or, when its topic or the byte cap is full, its id alone. Returns
 * false when the dedup set is full (docs/store.md): then it must not be passed on,
 * since its copies could come back without being recognised. env is moved into the
 * store on success of the put.
 */
static bool record(struct node *n, struct qpc_envelope *env, uint64_t now)
{
    uint8_t id[QPC_ID_LEN];
    uint64_t exp = qpc_envelope_expires_at_ms(env);
    int rc;

    memcpy(id, env->id, QPC_ID_LEN);
    if (qpc_store_put(n->bcast_store, env, now) == 0)
        return true;
    rc = qpc_store_mark_seen(n->bcast_store, id, exp, now);
    return rc == 0 || rc == QPC_ERR_DUPLICATE || rc == QPC_ERR_NOMEM;
}

/* The dedup set is full: one line per interval, the rest counted. */
static void log_dedup_full(struct node *n)
{
    static struct qpc_log_limit limit;
    uint64_t suppressed = 0;

    n->c.broadcasts_dedup_full++;
    if (qpc_log_limit_pass(&limit, ratelimit_now_ms(), 10000, &suppressed))
        qpc_log_warn("broadcast", "dedup set full (%u MiB of ids still within their TTL): new "
                     "broadcasts are refused until ids expire (%llu more refused)",
                     BCAST_DEDUP_BYTES / (1024 * 1024), (unsigned long long)suppressed);
}

/*
 * Checks one encoded broadcast and floods it on. from is the client session it came
 * from (NULL: a federation peer, whose domain is origin). Returns a Qpc__Status.
 */
static int relay_one(struct node *n, struct session *from, const char *origin,
                     const uint8_t *data, size_t len)
{
    struct qpc_envelope env;
    uint64_t now = node_now_ms();
    uint8_t *blob = NULL, sender[QPC_KEY_LEN], id[QPC_ID_LEN];
    char what[160];
    size_t blob_len = 0, sent;
    uint32_t arrived;
    bool later = false;
    int st = QPC__STATUS__STATUS_OK, rc;

    rc = request_check_broadcast(data, len, (size_t)n->sc->max_envelope_size, &env);
    if (rc >= 0)
        return rc;
    if (qpc_store_seen(n->bcast_store, env.id)) {
        /* A copy that came by fewer hops than every one before goes on again: the first
         * may have stopped at its hop limit, here or short of the clients beyond. */
        later = qpc_store_goes_further(n->bcast_store, &env);
        if (!later) {
            n->c.broadcasts_duplicate++;
            st = QPC__STATUS__STATUS_DUPLICATE;
            goto out;
        }
    }
    /* The same forged bytes again: refused by a lookup, not a second signature check. */
    if (qpc_store_refused(n->bcast_store, &env) != 0) {
        n->c.broadcasts_known_invalid++;
        n->c.errors[ERRK_INVALID]++;
        st = QPC__STATUS__STATUS_INVALID;
        goto out;
    }
    if (env.ttl_s > (uint64_t)n->sc->max_ttl) {
        st = QPC__STATUS__STATUS_EXPIRED;
        goto out;
    }
    /* A later copy with the kept copy's signature is that envelope (store.h): only its
     * expiry and shape are checked again. */
    if (later && qpc_store_holds_copy(n->bcast_store, &env))
        rc = qpc_envelope_verify_vouched(&env, now);
    else
        rc = qpc_envelope_verify(&env, now);
    if (rc != 0) {
        st = status_of_verify(rc);
        n->c.errors[st == QPC__STATUS__STATUS_EXPIRED ? ERRK_EXPIRED : ERRK_INVALID]++;
        qpc_store_mark_refused(n->bcast_store, &env, rc, now);   /* only what bytes decide */
        goto out;
    }
    if (later)
        n->c.broadcasts_later_copies++;
    else
        n->c.broadcasts_in++;
    memcpy(id, env.id, QPC_ID_LEN);   /* record moves env */
    arrived = env.hop_count;
    if (qpc_envelope_hop(&env) != 0) {
        /* Its last hop ended here: remember it (and how far it came), pass it nowhere. */
        if (qpc_store_mark_seen(n->bcast_store, env.id, qpc_envelope_expires_at_ms(&env),
                                now) == QPC_ERR_STORE_FULL)
            log_dedup_full(n);
        qpc_store_note_hops(n->bcast_store, id, arrived);
        goto out;
    }
    rc = qpc_envelope_encode(&env, &blob, &blob_len);
    if (rc != 0) {
        qpc_store_mark_seen(n->bcast_store, env.id, qpc_envelope_expires_at_ms(&env), now);
        st = QPC__STATUS__STATUS_INTERNAL;
        goto out;
    }
    what[0] = '\0';
    if (qpc_log_get_level() >= QPC_LOG_DEBUG)
        snprintf(what, sizeof(what), "#%.64s from %s (hop %u/%u)", env.topic,
                 from != NULL ? from->peer_addr : origin, env.hop_count, env.max_hops);
    memcpy(sender, env.sender, QPC_KEY_LEN);
    /* Recorded before it is sent, so no copy can come back unrecognised. */
    if (!later && !record(n, &env, now)) {
        log_dedup_full(n);
        st = QPC__STATUS__STATUS_RATE_LIMITED;   /* temporary: ids expire, room comes back */
        goto out;
    }
    qpc_store_note_hops(n->bcast_store, id, arrived);
    sent = flood_clients(n, from != NULL ? from->key : NULL, sender, blob, blob_len);
    sent += federation_broadcast(n, blob, blob_len, origin);
    n->c.broadcasts_relayed += sent;
    qpc_log_debug("broadcast", "%s: %zu copies sent", what, sent);
out:
    free(blob);
    qpc_envelope_clear(&env);
    return st;
}

void broadcast_handle_client(struct session *s, uint64_t request_id,
                             const Qpc__BroadcastRequest *r)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__BroadcastResponse br = QPC__BROADCAST_RESPONSE__INIT;

    if (!session_take(s, SESSION_RATE_BROADCAST, BCAST_RATE_PER_S, BCAST_BURST)) {
        s->node->c.broadcasts_rate_limited++;
        br.status = QPC__STATUS__STATUS_RATE_LIMITED;
    } else {
        br.status = relay_one(s->node, s, NULL, r->envelope.data, r->envelope.len);
    }
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_BROADCAST_ACK;
    msg.broadcast_ack = &br;
    session_send_message(s, &msg.base);
}

void broadcast_handle_federation(struct session *s, uint64_t request_id,
                                 const Qpc__RelayBroadcastRequest *r)
{
    Qpc__FederationResponse fr = QPC__FEDERATION_RESPONSE__INIT;
    Qpc__Status *statuses = calloc(r->n_envelopes > 0 ? r->n_envelopes : 1, sizeof(*statuses));
    const char *origin = r->origin_domain != NULL ? r->origin_domain : "";

    if (statuses == NULL)
        return;
    for (size_t i = 0; i < r->n_envelopes; i++)
        statuses[i] = (Qpc__Status)relay_one(s->node, NULL, origin, r->envelopes[i].data,
                                             r->envelopes[i].len);
    fr.request_id = request_id;
    fr.n_statuses = r->n_envelopes;
    fr.statuses = statuses;
    session_send_message(s, &fr.base);
    free(statuses);
}

struct replay_ctx {
    struct session *s;
    size_t sent;
};

static int replay_cb(void *ctx, const struct qpc_envelope *env)
{
    struct replay_ctx *rc = ctx;
    uint8_t *blob = NULL;
    size_t len = 0;

    if (memcmp(env->sender, rc->s->key, QPC_KEY_LEN) == 0)
        return 0;   /* its own bulletin */
    if (qpc_envelope_encode(env, &blob, &len) == 0) {
        notify(rc->s, blob, len);
        rc->sent++;
    }
    free(blob);
    return 0;
}

void broadcast_replay(struct session *s)
{
    struct replay_ctx ctx = { .s = s };

    if (s->bcast_replayed || !s->has_stream || s->node->bcast_store == NULL)
        return;
    s->bcast_replayed = true;
    qpc_store_foreach_broadcast(s->node->bcast_store, node_now_ms(), replay_cb, &ctx);
    s->node->c.broadcasts_relayed += ctx.sent;
}
