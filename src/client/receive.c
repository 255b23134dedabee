/*
 * receive.c: everything that arrives, from a link or from the server (receive.h).
 *
 * The one idea: one path for every envelope, whichever way it came. The cheap dedup
 * check runs first, so a copy seen before costs no signature check; then
 * qpc_envelope_verify (signature, expiry, clock skew, hop limit). Then by recipient:
 * mine is decrypted and shown once; a broadcast is shown if subscribed and flooded on
 * (flood.c); one for someone else is held durably, acked DEFERRED, and sent on toward
 * its recipient (dial.c). Every envelope from a link is acked with a status, and acks
 * that come back are applied to custody (custody.c). A peer's address candidates on
 * the link go to dial.c.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "dial.h"
#include "flood.h"
#include "handover.h"
#include "link.h"
#include "output.h"
#include "qpc/broadcast.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "receive.h"
#include "routes.h"
#include "state.h"

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
        ev.topic = env->has_recipient ? NULL : env->topic;   /* a channel's key mismatch is said once */
    }
    emit(cl, &ev);
}

/* Shows the decrypted text of env (plain, plen: taken, wiped and freed) as event ev. */
static void show(struct client *cl, struct event *ev, const struct qpc_envelope *env, uint8_t *plain,
                 size_t plen)
{
    ev->peer = env->sender;
    ev->id = env->id;
    ev->text = (const char *)plain;
    ev->text_len = plen;
    ev->hops = env->hop_count + 1;
    ev->sent_ms = env->created_at_ms;
    emit(cl, ev);
    sodium_memzero(plain, plen);
    free(plain);
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
    show(cl, &ev, env, plain, plen);
    return QPC__STATUS__STATUS_OK;
}

/* A broadcast: shown when I hold its channel key, silently relayed otherwise. */
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
    ev.topic = env->topic;
    state_note_shown(cl, env);   /* a replay after a restart is not news */
    show(cl, &ev, env, plain, plen);
}

/* For someone else: hold it durably, then pass it on. Returns the status to ack with. */
static Qpc__Status forward(struct client *cl, struct qpc_envelope *env, uint64_t now)
{
    uint8_t recipient[QPC_KEY_LEN];
    struct peer_state *ps;
    int rc;

    if (!custody_may_forward(&cl->custody, (size_t)cl->cc->store_max_bytes))
        return QPC__STATUS__STATUS_QUEUE_FULL;
    rc = qpc_envelope_hop(env);
    if (rc < 0) {
        refused(cl, env, rc);
        return QPC__STATUS__STATUS_INVALID;
    }
    memcpy(recipient, env->recipient, QPC_KEY_LEN);
    rc = handover_hold(cl, env, now);
    if (rc < 0)
        return status_of(rc);
    ps = peers_get(&cl->peers, recipient);
    if (ps != NULL)
        dial_reach(cl, ps);
    return QPC__STATUS__STATUS_DEFERRED;
}

/*
 * Everything that arrives (from a link or from the server) goes through here. from is
 * the link it came on (NULL: the server). Returns the status to ack with.
 */
static Qpc__Status handle_envelope(struct client *cl, struct qpc_envelope *env, struct link *from,
                                   enum path_kind path, const char *via)
{
    uint64_t now = now_ms();
    bool for_me = env->has_recipient &&
                  memcmp(env->recipient, qpc_identity_public_key(cl->id), QPC_KEY_LEN) == 0;
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
        routes_learn_envelope(cl->id, cl->routes, env->sender, from->ps->key, from->addr,
                              env->hop_count, now);
        handover_flush(cl);
    }
    if (for_me)
        return deliver_to_me(cl, env, path, via);
    if (!env->has_recipient) {
        deliver_broadcast(cl, env, path);
        flood_relay(cl, env, from, now);
        return QPC__STATUS__STATUS_OK;
    }
    return forward(cl, env, now);
}

/* An ack for something I sent on l: what it does to custody, and what the user sees. */
static void on_ack(struct client *cl, struct link *l, const Qpc__P2pAck *ack)
{
    struct inflight *f = NULL;
    struct event ev = { 0 };
    char via[16];

    switch (custody_ack(&cl->custody, l->ps->key, ack->id.data, ack->id.len, ack->status, &f)) {
    case CUSTODY_ACK_IGNORED:
    case CUSTODY_ACK_RETRY:
        return;
    case CUSTODY_ACK_REFUSED:
        ev.kind = EVT_FAILED;
        ev.text = "refused by peer";
        ev.text_len = strlen(ev.text);
        break;
    case CUSTODY_ACK_DELIVERED:
        ev.kind = EVT_DELIVERED;
        if (l->relayed)
            ev.via = l->addr;
        break;
    case CUSTODY_ACK_HELD:
        ev.kind = EVT_HELD;
        short_id(via, l->ps->key);
        ev.via = via;
        break;
    }
    ev.peer = f->env.recipient;
    ev.id = f->id;
    ev.path = l->relayed ? PATH_RELAYED : PATH_DIRECT;
    ev.hops = 1;
    if (f->mine)
        emit(cl, &ev);
    state_unpersist(cl, f->id);
    custody_entry_free(f);
}

void receive_frame(struct client *cl, struct link *l, int64_t sid, const uint8_t *d, size_t n)
{
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, n, d);

    if (f == NULL || l->ps == NULL) {
        qpc_log_warn("node", "malformed P2P frame dropped");
        goto out;
    }
    link_note_stream(l, sid);
    if (f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE) {
        struct qpc_envelope env = { 0 };
        uint8_t id[QPC_ID_LEN];
        Qpc__Status st;
        int rc = qpc_envelope_decode(&env, f->envelope.data, f->envelope.len);

        if (rc < 0) {
            refused(cl, NULL, rc);
            link_send_ack(l, sid, NULL, status_of(rc));
            goto out;
        }
        /* handle_envelope may move env into the store (which zeroes it): keep the id. */
        memcpy(id, env.id, QPC_ID_LEN);
        st = handle_envelope(cl, &env, l, l->relayed ? PATH_RELAYED : PATH_DIRECT,
                             l->relayed ? l->addr : NULL);
        link_send_ack(l, sid, id, st);
        qpc_envelope_clear(&env);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_ACK && f->ack != NULL) {
        link_note_ack(l, now_ms());
        on_ack(cl, l, f->ack);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_CANDIDATES && f->candidates != NULL) {
        dial_link_candidates(cl, l, f->candidates->addresses, f->candidates->n_addresses,
                             f->candidates->instance, f->candidates->links);
    }
out:
    if (f != NULL)
        qpc__p2p_frame__free_unpacked(f, NULL);
}

void receive_from_server(struct client *cl, const uint8_t *buf, size_t len, const char *server)
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
