/*
 * receive.c: everything that arrives, from a link or from the server (receive.h).
 *
 * The one idea: one path for every envelope, whichever way it came. The cheap dedup
 * check runs first, so a copy seen before costs no signature check; then
 * qpc_envelope_verify (signature, expiry, clock skew, hop limit; for an envelope from a
 * link on verify.c's worker threads, answered back on the loop in arrival order, the
 * dedup check made again then since a copy may have come meanwhile). Then by recipient:
 * mine is decrypted, and its DirectContent is either a text, shown once and owed a
 * receipt, or a receipt for my own messages, which says "delivered"; a broadcast is
 * shown if subscribed and flooded on (flood.c); one for someone else is held durably and
 * sent on toward its recipient (dial.c). Every envelope from a link is acked with a
 * status after the loop turn's commit (so DEFERRED means "on my disk", and OK for a
 * message of mine means "shown, and its receipt on my disk"); acks that come back are
 * applied to custody (custody.c). A peer's address candidates on the link go to dial.c.
 *
 * Built without mesh (QPC_MESH 0) everything comes from the server: the P2P frames,
 * acks and forwarding for others are not compiled, and an envelope for someone else is
 * refused (a client without links has nobody to pass it to).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#if QPC_MESH
#include "announce.h"
#include "dial.h"
#endif
#include "flood.h"
#include "handover.h"
#include "inbound.h"
#include "link.h"
#include "output.h"
#include "qpc/broadcast.h"
#include "qpc/direct.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "receive.h"
#include "route_state.h"
#include "routes.h"
#include "state.h"
#if QPC_MESH
#include "verify.h"
#endif

#define STATUS_LATER (-1)   /* handle_envelope: a hold's completion sets the status */
#define VERIFY_HERE 1       /* handle_envelope: no signature check made yet, make it */

/* The ack of an envelope from a link, waiting for the loop turn's commit. */
struct ack_later {
    uint8_t peer[QPC_KEY_LEN];
    uint64_t serial;                   /* of the link it came on (it may close meanwhile) */
    int64_t sid;
    uint8_t id[QPC_ID_LEN];
    bool has_id;
    Qpc__Status st;
    bool decided;                      /* set by a hold's completion, commit included */
};

static Qpc__Status status_of(int err)
{
    switch (err) {
    case QPC_ERR_EXPIRED: return QPC__STATUS__STATUS_EXPIRED;
    case QPC_ERR_QUEUE_FULL:
    case QPC_ERR_STORE_FULL: return QPC__STATUS__STATUS_QUEUE_FULL;
    case QPC_ERR_TOO_LARGE: return QPC__STATUS__STATUS_TOO_LARGE;
    case QPC_ERR_NOMEM:
    case QPC_ERR_DB:
    case QPC_ERR_CLOSED:
    case QPC_ERR_IO: return QPC__STATUS__STATUS_INTERNAL;
    default: return QPC__STATUS__STATUS_INVALID;
    }
}

#if QPC_MESH
static void ack_send_cb(struct client *cl, void *arg, int commit_rc)
{
    struct ack_later *a = arg;
    struct link *l;

    /* What would promise durability cannot be promised when the commit failed. */
    if (!a->decided && commit_rc != 0 &&
        (a->st == QPC__STATUS__STATUS_OK || a->st == QPC__STATUS__STATUS_DEFERRED))
        a->st = QPC__STATUS__STATUS_INTERNAL;
    l = cl->ep != NULL ? link_find(cl, a->peer, a->serial) : NULL;
    if (l != NULL)
        link_send_ack(l, a->sid, a->has_id ? a->id : NULL, a->st);
    free(a);
}
#endif

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

/* Shows text (len bytes) of env as event ev. */
static void show(struct client *cl, struct event *ev, const struct qpc_envelope *env, const char *text,
                 size_t len)
{
    ev->peer = env->sender;
    ev->id = env->id;
    ev->text = text;
    ev->text_len = len;
    ev->hops = env->hop_count + 1;
    ev->sent_ms = env->created_at_ms;
    emit(cl, ev);
}

/* ---- receipts -------------------------------------------------------------------------- */

/* What my receipt for env says of how it came: from the server, or on link from. */
static void receipt_item_for(struct qpc_receipt_item *it, const struct qpc_envelope *env,
                             const struct link *from, enum path_kind path, const char *via, uint64_t now)
{
    memset(it, 0, sizeof(*it));
    memcpy(it->id, env->id, QPC_ID_LEN);
    it->hops = env->hop_count;
    it->received_at_ms = now;
    if (path == PATH_SERVER || from == NULL || from->ps == NULL) {
        it->path = QPC_RECEIPT_PATH_SERVER;
        snprintf(it->via, sizeof(it->via), "%.*s", QPC_RECEIPT_VIA_MAX, via != NULL ? via : "");
    } else if (memcmp(from->ps->key, env->sender, QPC_KEY_LEN) != 0) {
        it->path = QPC_RECEIPT_PATH_MESH;
        short_id(it->via, from->ps->key);
    } else if (from->relayed) {
        it->path = QPC_RECEIPT_PATH_RELAYED;
        snprintf(it->via, sizeof(it->via), "%.*s", QPC_RECEIPT_VIA_MAX, from->addr);
    } else {
        it->path = QPC_RECEIPT_PATH_DIRECT;
    }
}

static enum path_kind path_of_receipt(enum qpc_receipt_path p)
{
    switch (p) {
    case QPC_RECEIPT_PATH_RELAYED: return PATH_RELAYED;
    case QPC_RECEIPT_PATH_SERVER: return PATH_SERVER;
    case QPC_RECEIPT_PATH_MESH: return PATH_MESH;
    default: return PATH_DIRECT;
    }
}

/* A verified receipt from env->sender: each id it names that I sent to that key is
 * delivered; any other is ignored and counted. */
static void take_receipt(struct client *cl, const struct qpc_envelope *env, const struct qpc_direct_content *c,
                         uint64_t now)
{
    for (size_t i = 0; i < c->n_items; i++) {
        const struct qpc_receipt_item *it = &c->items[i];
        struct receipt_wait w;
        struct inflight *f;
        char via[QPC_RECEIPT_VIA_MAX + 1], who[13];
        uint64_t suppressed = 0;
        struct event ev = { .kind = EVT_DELIVERED };

        switch (receipts_confirm(&cl->receipts, env->sender, it->id, &w)) {
        case RECEIPT_REPEATED:
            qpc_log_debug("receipt", "repeated receipt ignored");
            continue;
        case RECEIPT_REFUSED:
            if (receipts_log_refusal(&cl->receipts, mono_ms(), &suppressed)) {
                short_id(who, env->sender);
                qpc_log_warn("receipt", "receipt from %s names an id I do not wait for (never sent "
                             "to it, or confirmed before a restart): ignored (%llu in all, %llu not logged)", who,
                             (unsigned long long)cl->receipts.refused, (unsigned long long)suppressed);
            }
            continue;
        case RECEIPT_CONFIRMED:
            break;
        }
        state_unawait(cl, it->id);
        /* No copy of a delivered message needs to travel any more. */
        if ((f = custody_take(&cl->custody, it->id)) != NULL) {
            state_unpersist(cl, f->id);
            custody_entry_free(f);
        }
        /* The via text is the recipient's: printable ASCII only. */
        snprintf(via, sizeof(via), "%s", it->via);
        for (char *p = via; *p != '\0'; p++)
            if (*p < 0x20 || *p > 0x7e)
                *p = '?';
        ev.peer = w.recipient;
        ev.id = w.id;
        ev.path = path_of_receipt(it->path);
        ev.hops = it->hops + 1;
        ev.via = via[0] != '\0' ? via : NULL;
        ev.elapsed_ms = now > w.created_at_ms ? now - w.created_at_ms : 0;
        emit(cl, &ev);
    }
}

/*
 * Opens env's box and decodes its DirectContent. Returns 0 (c to be cleared by the
 * caller) or the error, already reported as a refused envelope.
 */
static int open_content(struct client *cl, const struct qpc_envelope *env, struct qpc_direct_content *c)
{
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc = qpc_box_open(cl->box, env->sender, env->payload, env->payload_len, &plain, &plen);

    if (rc == 0) {
        rc = qpc_direct_decode(c, plain, plen);
        sodium_memzero(plain, plen);
    }
    free(plain);
    if (rc < 0)
        refused(cl, env, rc);
    return rc;
}

/* A direct envelope addressed to me: a text is shown once and owed a receipt; a receipt
 * is taken. Returns the status for the ack. */
static Qpc__Status deliver_to_me(struct client *cl, struct qpc_envelope *env, struct link *from,
                                 enum path_kind path, const char *via)
{
    struct qpc_direct_content c;
    struct qpc_receipt_item item;
    struct event ev = { .kind = EVT_MESSAGE, .path = path, .via = via };
    uint64_t now = now_ms();
    int rc;

    if (open_content(cl, env, &c) < 0)
        return QPC__STATUS__STATUS_INVALID;
    if (c.kind == QPC_DIRECT_RECEIPT) {
        take_receipt(cl, env, &c, now);
        qpc_store_mark_seen(cl->store, env->id, qpc_envelope_expires_at_ms(env), now);
        qpc_direct_clear(&c);
        return QPC__STATUS__STATUS_OK;   /* never answered by a receipt */
    }
    receipt_item_for(&item, env, from, path, via, now);
    rc = receipts_owe(&cl->receipts, env->sender, &item, c.reply_domain);
    if (rc < 0) {
        qpc_direct_clear(&c);
        return status_of(rc);   /* not shown: it comes again when I owe fewer */
    }
    state_mark_delivered(cl, env, now);
    show(cl, &ev, env, c.text, c.text_len);
    qpc_direct_clear(&c);
    return QPC__STATUS__STATUS_OK;
}

/*
 * A copy of a message for me that I showed already. Its sender sends again only when it
 * lacks my ack, and the crash that lost the ack may have lost the receipt too: unless a
 * receipt was held for it in this run, it is owed again.
 */
static Qpc__Status redeliver_to_me(struct client *cl, struct qpc_envelope *env, struct link *from,
                                   enum path_kind path, const char *via)
{
    struct qpc_direct_content c;
    struct qpc_receipt_item item;
    uint64_t now = now_ms();
    int rc;

    if (receipts_receipted(&cl->receipts, env->id) || open_content(cl, env, &c) < 0)
        return QPC__STATUS__STATUS_OK;
    rc = 0;
    if (c.kind == QPC_DIRECT_TEXT) {
        receipt_item_for(&item, env, from, path, via, now);
        rc = receipts_owe(&cl->receipts, env->sender, &item, c.reply_domain);
    }
    qpc_direct_clear(&c);
    return rc < 0 ? status_of(rc) : QPC__STATUS__STATUS_OK;
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
    show(cl, &ev, env, (const char *)plain, plen);
    sodium_memzero(plain, plen);
    free(plain);
}

/* ---- forwarding for others -------------------------------------------------------------- */

#if QPC_MESH
struct forwarding {
    uint8_t recipient[QPC_KEY_LEN];
    uint8_t id[QPC_ID_LEN];
    struct ack_later *ack;             /* NULL: it came from the server */
};

/* After the commit: acked DEFERRED once on disk, and sent on toward its recipient. */
static void forwarded_cb(struct client *cl, void *arg, int status)
{
    struct forwarding *fw = arg;
    struct peer_state *ps;

    if (fw->ack != NULL) {
        fw->ack->st = status == 0 ? QPC__STATUS__STATUS_DEFERRED : status_of(status);
        fw->ack->decided = true;
    }
    /* With a link toward the recipient, turn.c's flush after the commit sends it. */
    if (status == 0 && cl->ep != NULL && handover_link_for(cl, fw->recipient, fw->id) == NULL &&
        (ps = peers_get(&cl->peers, fw->recipient)) != NULL) {
        announce_fill_candidates(cl, ps);   /* where its announces say it is */
        dial_reach(cl, ps);
    }
    free(fw);
}

/* For someone else: hold it durably, then pass it on. Returns the status to ack with, or
 * STATUS_LATER when the hold's completion will set it. */
static int forward(struct client *cl, struct qpc_envelope *env, const struct link *from,
                   struct ack_later *ack, uint64_t now)
{
    struct forwarding *fw;
    uint8_t id[QPC_ID_LEN];
    int rc;

    if (!custody_may_forward(&cl->custody, (size_t)cl->cc->store_max_bytes))
        return QPC__STATUS__STATUS_QUEUE_FULL;
    rc = qpc_envelope_hop(env);
    if (rc < 0) {
        /* Not for good: the sender keeps its copy (a refusal for now, backed off) and
         * hands it to the recipient itself once it has a link to it. */
        refused(cl, env, rc);
        return QPC__STATUS__STATUS_RATE_LIMITED;
    }
    if ((fw = calloc(1, sizeof(*fw))) == NULL)
        return QPC__STATUS__STATUS_INTERNAL;
    memcpy(fw->recipient, env->recipient, QPC_KEY_LEN);
    memcpy(fw->id, env->id, QPC_ID_LEN);
    fw->ack = ack;
    memcpy(id, env->id, QPC_ID_LEN);   /* the hold moves env */
    rc = handover_hold(cl, env, NULL, now, forwarded_cb, fw);
    if (rc < 0) {
        free(fw);
        /* EXISTS: held already (DEFERRED), or its row is going this very turn: then the
         * sender keeps it and tries again a little later. */
        if (rc == QPC_ERR_EXISTS)
            return state_holds(cl, id) ? QPC__STATUS__STATUS_DEFERRED : QPC__STATUS__STATUS_RATE_LIMITED;
        return status_of(rc);
    }
    /* Split horizon (handover.c): it does not go back to the neighbour it came from. */
    if (from != NULL && from->ps != NULL)
        state_note_came_from(cl, id, from->ps->key, now);
    return STATUS_LATER;
}
#else
/* Without mesh nobody is linked to me, so what is not mine or a broadcast goes nowhere. */
static int forward(struct client *cl, struct qpc_envelope *env, const struct link *from,
                   struct ack_later *ack, uint64_t now)
{
    qpc_log_debug("node", "an envelope for another peer dropped: this qpc forwards nothing (no mesh)");
    return QPC__STATUS__STATUS_INVALID;
}
#endif

static bool is_for_me(const struct client *cl, const struct qpc_envelope *env)
{
    return env->has_recipient && memcmp(env->recipient, qpc_identity_public_key(cl->id), QPC_KEY_LEN) == 0;
}

#if QPC_MESH
/* The cheap check: a copy seen before (or held this very turn), handled on the loop
 * without the verify workers (handle_envelope sorts out which kind). */
static bool seen_before(struct client *cl, const struct qpc_envelope *env)
{
    return qpc_store_seen(cl->store, env->id) ||
           (env->has_recipient && !is_for_me(cl, env) && state_holds(cl, env->id));
}
#endif

/* The signature check: by hash when a verified batch of its sender vouches for this
 * broadcast (broadcast_batch.h, flood.c), by Ed25519 otherwise. */
static int check_signature(struct client *cl, const struct qpc_envelope *env, uint64_t now)
{
    if (!env->has_recipient && qpc_batch_vouches_cover(cl->vouches, env, now)) {
        cl->batches.by_hash++;
        return qpc_envelope_verify_vouched(env, now);
    }
    return qpc_envelope_verify(env, now);
}

/*
 * A broadcast I have, again. A copy that came by fewer hops than every one before goes
 * on (flood.c) and 1 is returned. Its signature is the kept copy's (then only expiry and
 * shape are checked) or it is checked here (vrc as for handle_envelope); one that fails
 * is refused and its error returned. 0: a plain duplicate.
 */
static int shorter_copy(struct client *cl, struct qpc_envelope *env, const struct link *from, int vrc,
                        uint64_t now)
{
    int rc;

    if (!qpc_store_goes_further(cl->store, env))
        return 0;
    if (qpc_store_holds_copy(cl->store, env))
        rc = qpc_envelope_verify_vouched(env, now);
    else
        rc = vrc == VERIFY_HERE ? check_signature(cl, env, now) : vrc;
    if (rc < 0) {
        refused(cl, env, rc);
        return rc;
    }
    qpc_log_debug("node", "a copy of a broadcast that came by fewer hops (%u) goes on", env->hop_count);
    flood_relay_copy(cl, env, from);
    return 1;
}

/*
 * Everything that arrives (from a link or from the server) goes through here. from is
 * the link it came on (NULL: the server, or a link closed while the signature was
 * checked), ack its pending ack (NULL: the server), vrc the signature check's result if
 * it was made already, else VERIFY_HERE. Returns the status to ack with, or STATUS_LATER.
 */
static int handle_envelope(struct client *cl, struct qpc_envelope *env, struct link *from,
                           enum path_kind path, const char *via, struct ack_later *ack, int vrc)
{
    uint64_t now = now_ms();
    bool for_me = is_for_me(cl, env);
    int rc;

    /* The cheap check first: a copy seen before (or held this very turn) costs no
     * signature check. A copy I still hold is a hand-over (DEFERRED ends the sender's
     * custody: I have it). */
    if (env->has_recipient && !for_me && state_holds(cl, env->id)) {
        qpc_log_debug("node", "duplicate envelope dropped: held here");
        refused(cl, env, QPC_ERR_DUPLICATE);
        return QPC__STATUS__STATUS_DEFERRED;
    }
    if (qpc_store_seen(cl->store, env->id)) {
        if (!env->has_recipient && (rc = shorter_copy(cl, env, from, vrc, now)) != 0)
            return rc > 0 ? QPC__STATUS__STATUS_OK : status_of(rc);
        if (for_me || !env->has_recipient) {
            qpc_log_debug("node", "duplicate envelope dropped");
            refused(cl, env, QPC_ERR_DUPLICATE);
            return for_me ? redeliver_to_me(cl, env, from, path, via) : QPC__STATUS__STATUS_OK;
        }
        /* For someone else, seen but no longer held: I handed it on (or it is my own and
         * custody moved on), and now it is back, from the node I gave it to or from one
         * further along a loop, whose route leads through me. The sender may hold the
         * last copy: saying DEFERRED without holding it would leave no one with it. So
         * it is taken into custody again (held, acked DEFERRED after the commit) and
         * goes on elsewhere, not back where it came from (split horizon, handover.c). */
        rc = vrc == VERIFY_HERE ? qpc_envelope_verify(env, now) : vrc;
        if (rc < 0) {
            refused(cl, env, rc);
            return status_of(rc);
        }
        qpc_log_debug("node", "a copy I handed on came back: held again");
        return forward(cl, env, from, ack, now);
    }
    rc = vrc == VERIFY_HERE ? check_signature(cl, env, now) : vrc;
    if (rc < 0) {
        refused(cl, env, rc);
        return status_of(rc);
    }
    if (from != NULL && from->ps != NULL && memcmp(from->ps->key, env->sender, QPC_KEY_LEN) != 0) {
        /* The sender is reachable through this neighbour (how far, only its announces
         * say: hop_count is not signed): what we hold for it can go. */
        routes_learn_envelope(cl->id, cl->routes, env->sender, from->ps->key, from->addr, now);
        route_state_changed(cl);
        handover_flush(cl);
    }
    if (for_me)
        return deliver_to_me(cl, env, from, path, via);
    if (!env->has_recipient) {
        deliver_broadcast(cl, env, path);
        flood_relay(cl, env, from, now);
        return QPC__STATUS__STATUS_OK;
    }
    return forward(cl, env, from, ack, now);
}

/* ---- acks that come back ---------------------------------------------------------------- */

#if QPC_MESH
/* An ack for something I sent on l: what it does to custody, and what the user sees. */
static void on_ack(struct client *cl, struct link *l, const Qpc__P2pAck *ack)
{
    struct inflight *f = NULL;
    struct event ev = { 0 };
    char via[16];
    bool report;

    switch (custody_ack(&cl->custody, l->ps->key, ack->id.data, ack->id.len, ack->status, &f)) {
    case CUSTODY_ACK_IGNORED:
        return;
    case CUSTODY_ACK_RETRY:
        /* Parked: not sent again at once (every flush would, at the speed of the link),
         * but after a delay that grows while the refusals go on. */
        if ((f = custody_find(&cl->custody, ack->id.data)) != NULL)
            custody_retry_later(f, now_ms());
        return;
    case CUSTODY_ACK_REFUSED:
        ev.kind = EVT_FAILED;
        ev.text = "refused by peer";
        ev.text_len = strlen(ev.text);
        break;
    case CUSTODY_ACK_RECIPIENT:
        /* Stored by the recipient; "delivered" is for its receipt to say. */
        ev.kind = EVT_INFO;
        break;
    case CUSTODY_ACK_HELD:
        ev.kind = EVT_HELD;
        short_id(via, l->ps->key);
        ev.via = via;
        break;
    }
    report = handover_reports(cl, &f->env);
    ev.peer = f->env.recipient;
    ev.id = f->id;
    ev.path = l->relayed ? PATH_RELAYED : PATH_DIRECT;
    ev.hops = 1;
    if (report && ev.kind != EVT_INFO)
        emit(cl, &ev);
    if (report && ev.kind == EVT_FAILED) {
        receipts_forget(&cl->receipts, f->id);
        state_unawait(cl, f->id);
    }
    state_unpersist(cl, f->id);
    custody_entry_free(f);
}

/*
 * An envelope that decoded, from link l (NULL: it closed while its signature was being
 * checked; peer and serial still name it for the ack, which then finds no link): its ack
 * is registered for the turn's commit, then it is handled. vrc as for handle_envelope.
 */
static void take_envelope(struct client *cl, struct link *l, const uint8_t peer[static QPC_KEY_LEN],
                          uint64_t serial, int64_t sid, struct qpc_envelope *env, enum path_kind path,
                          const char *via, int vrc)
{
    struct ack_later *a = calloc(1, sizeof(*a));
    int st;

    /* Registered first: a hold's completion may write into a, so it must live until
     * the commit that runs both. */
    if (a == NULL || state_after_commit(cl, ack_send_cb, a) < 0) {
        free(a);
        return;   /* no ack: the sender keeps it and sends it again */
    }
    memcpy(a->peer, peer, QPC_KEY_LEN);
    a->serial = serial;
    a->sid = sid;
    /* handle_envelope may move env into the outbox (which zeroes it): keep the id. */
    memcpy(a->id, env->id, QPC_ID_LEN);
    a->has_id = true;
    st = handle_envelope(cl, env, l, path, via, a, vrc);
    if (st != STATUS_LATER)
        a->st = (Qpc__Status)st;
}

/* An envelope from a link whose signature a worker checks (verify.h). */
struct arrival {
    struct client *cl;
    struct qpc_envelope env;           /* owned; the worker's until verified_cb */
    uint8_t peer[QPC_KEY_LEN];
    uint64_t serial;
    int64_t sid;
    enum path_kind path;
    bool has_via;
    char via[QPC_ADDRESS_MAX + 1];
};

static void verified_cb(void *arg, int rc)
{
    struct arrival *ar = arg;
    struct client *cl = ar->cl;

    /* CLOSED: the node stops and it was not checked; unacked, the sender sends it again. */
    if (rc != QPC_ERR_CLOSED)
        take_envelope(cl, cl->ep != NULL ? link_find(cl, ar->peer, ar->serial) : NULL, ar->peer, ar->serial,
                      ar->sid, &ar->env, ar->path, ar->has_via ? ar->via : NULL, rc);
    qpc_envelope_clear(&ar->env);
    free(ar);
}

/* Hands env (decoded from l, not seen before) to the workers, taking it over (env is
 * left empty). Returns false when they cannot take it: the caller checks it here. */
static bool verify_elsewhere(struct client *cl, struct link *l, int64_t sid, struct qpc_envelope *env)
{
    struct arrival *ar;

    if (cl->verify == NULL || seen_before(cl, env))
        return false;
    /* Vouched for by a batch: a hash to check, cheaper here than a worker's round trip,
     * unless earlier ones still wait there (answers keep the order of arrival). */
    if (verify_pending(cl->verify) == 0 && !env->has_recipient &&
        qpc_batch_vouches_cover(cl->vouches, env, now_ms()))
        return false;
    if ((ar = calloc(1, sizeof(*ar))) == NULL)
        return false;
    ar->cl = cl;
    ar->env = *env;
    memcpy(ar->peer, l->ps->key, QPC_KEY_LEN);
    ar->serial = l->serial;
    ar->sid = sid;
    ar->path = l->relayed ? PATH_RELAYED : PATH_DIRECT;
    ar->has_via = l->relayed;
    snprintf(ar->via, sizeof(ar->via), "%s", l->addr);
    if (verify_submit(cl->verify, &ar->env, now_ms(), verified_cb, ar) < 0) {
        free(ar);   /* env still owns what ar pointed at */
        return false;
    }
    memset(env, 0, sizeof(*env));
    return true;
}

void receive_frame(struct client *cl, struct link *l, int64_t sid, const uint8_t *d, size_t n)
{
    Qpc__P2pFrame *f;

    if (l->garbage_closed)
        return;   /* closing: what was still in flight is not decoded */
    f = inbound_p2p_frame(d, n);
    if (f == NULL || l->ps == NULL) {
        link_note_garbage(l, mono_ms(), "malformed P2P frame");
        goto out;
    }
    link_note_stream(l, sid);
    if (f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE) {
        struct qpc_envelope env = { 0 };
        int rc = qpc_envelope_decode(&env, f->envelope.data, f->envelope.len);

        if (rc < 0) {
            struct ack_later *a = calloc(1, sizeof(*a));

            if (a == NULL || state_after_commit(cl, ack_send_cb, a) < 0) {
                free(a);
                goto out;   /* no ack: the sender keeps it and sends it again */
            }
            memcpy(a->peer, l->ps->key, QPC_KEY_LEN);
            a->serial = l->serial;
            a->sid = sid;
            /* Answered (the sender learns it is refused), but counted as garbage: an
             * envelope no peer's encoder makes. */
            refused(cl, NULL, rc);
            a->st = status_of(rc);
            link_note_garbage(l, mono_ms(), "undecodable envelope");
        } else if (!verify_elsewhere(cl, l, sid, &env)) {
            take_envelope(cl, l, l->ps->key, l->serial, sid, &env, l->relayed ? PATH_RELAYED : PATH_DIRECT,
                          l->relayed ? l->addr : NULL, VERIFY_HERE);
        }
        qpc_envelope_clear(&env);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_ACK && f->ack != NULL) {
        link_note_ack(l, now_ms());
        on_ack(cl, l, f->ack);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_ANNOUNCE && f->announce != NULL) {
        announce_receive(cl, l, f->announce);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_SEQNO_REQUEST && f->seqno_request != NULL) {
        announce_seqreq_receive(cl, l, f->seqno_request);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_BROADCAST_BATCH) {
        flood_take_batch(cl, l, f->broadcast_batch.data, f->broadcast_batch.len);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_CANDIDATES && f->candidates != NULL) {
        dial_link_candidates(cl, l, f->candidates->addresses, f->candidates->n_addresses,
                             f->candidates->instance, f->candidates->links);
    }
out:
    if (f != NULL)
        qpc__p2p_frame__free_unpacked(f, NULL);
}
#endif

int receive_from_server(struct client *cl, const uint8_t *buf, size_t len, const char *server)
{
    struct qpc_envelope env = { 0 };
    int rc = qpc_envelope_decode(&env, buf, len), st;

    if (rc < 0) {
        refused(cl, NULL, rc);
        return 0;   /* it will never decode: let the server forget it */
    }
    st = handle_envelope(cl, &env, NULL, PATH_SERVER, server, NULL, VERIFY_HERE);
    qpc_envelope_clear(&env);
    return st == QPC__STATUS__STATUS_QUEUE_FULL || st == QPC__STATUS__STATUS_INTERNAL;
}
