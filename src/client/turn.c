/*
 * turn.c: the end of every loop turn (turn.h).
 *
 * The one idea, as on the server: one fsync pays for everything the turn did. While the
 * turn runs, arrivals only stage: envelopes to forward, my messages, the receipts I owe.
 * At its end (an ev_prepare watcher of the highest priority, so before the QUIC endpoint
 * writes the turn's packets) the receipts owed are sealed into one envelope per sender
 * and held like any outgoing envelope, the outbox is committed in one transaction, and
 * then, in this order, the held envelopes enter the store and leave toward their next
 * holder, and the acks that promise durability go out: P2P acks (state_after_commit)
 * and the server's items (session_ack_pending). A crash before the commit loses only
 * what nobody was told was safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "handover.h"
#if QPC_MESH
#include "dial.h"
#include "flood.h"
#include "link.h"
#endif
#include "output.h"
#include "qpc/direct.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "session.h"
#include "state.h"
#include "turn.h"

/* A receipt envelope waiting for its commit: what it says, to re-owe it on failure. */
struct receipt_hold {
    uint8_t sender[QPC_KEY_LEN];       /* of the messages: the receipt's recipient */
    char domain[QPC_DIRECT_DOMAIN_MAX + 1];
    size_t n;
    struct qpc_receipt_item items[];
};

static void receipt_held_cb(struct client *cl, void *arg, int status)
{
    struct receipt_hold *rh = arg;
#if QPC_MESH
    struct peer_state *ps;
#endif

    if (status != 0) {
        /* Not durable: owed again, sealed again next turn (the acks said INTERNAL). */
        for (size_t i = 0; i < rh->n; i++)
            receipts_owe(&cl->receipts, rh->sender, &rh->items[i], rh->domain);
        free(rh);
        return;
    }
    for (size_t i = 0; i < rh->n; i++)
        receipts_mark_receipted(&cl->receipts, rh->items[i].id);
#if QPC_MESH   /* (without mesh turn_end's flush hands it to the server) */
    if (cl->ep != NULL) {
        /* A sender on another node's domain is reached through mine; P2P stays possible
         * (the parked copy goes on the next link toward it). */
        if (rh->domain[0] != '\0' && session_up(cl))
            handover_to_server(cl, rh->sender);
        else if (link_toward(cl, rh->sender) == NULL && (ps = peers_get(&cl->peers, rh->sender)) != NULL)
            dial_reach(cl, ps);   /* with a link, turn_end's flush sends it */
    }
#endif
    free(rh);
}

/* The node domain a receipt goes to: "" when it is my own node's (or unknown). */
static const char *receipt_domain(const struct client *cl, const char *domain)
{
    const char *mine = session_domain(cl);

    return domain[0] == '\0' || (mine[0] != '\0' && strcasecmp(mine, domain) == 0) ? "" : domain;
}

/* receipts_take_fn: seals the receipts owed to sender into one envelope and holds it. */
static int seal_cb(void *ctx, const uint8_t sender[static QPC_KEY_LEN],
                   const struct qpc_receipt_item *items, size_t n, const char *domain)
{
    struct client *cl = ctx;
    struct qpc_envelope env = { 0 };
    struct receipt_hold *rh = NULL;
    uint8_t *plain = NULL, *box = NULL;
    size_t plen = 0, blen = 0;
    uint64_t now = now_ms();
    int rc;

    rc = qpc_direct_encode_receipt(items, n, session_domain(cl), &plain, &plen);
    if (rc == 0)
        rc = qpc_box_seal(cl->box, sender, plain, plen, &box, &blen);
    if (rc == 0)
        rc = qpc_envelope_init(&env, qpc_identity_secret_key(cl->id), sender, NULL, now,
                               (uint32_t)cl->cc->default_ttl, (uint32_t)cl->cc->max_hops, box, blen);
    if (rc == 0 && (rh = malloc(sizeof(*rh) + n * sizeof(*items))) == NULL)
        rc = QPC_ERR_NOMEM;
    if (rc == 0) {
        memcpy(rh->sender, sender, QPC_KEY_LEN);
        snprintf(rh->domain, sizeof(rh->domain), "%s", receipt_domain(cl, domain));
        rh->n = n;
        memcpy(rh->items, items, n * sizeof(*items));
        rc = handover_hold(cl, &env, rh->domain, now, receipt_held_cb, rh);
        if (rc < 0)
            free(rh);
    }
    if (rc < 0 && rc != QPC_ERR_NOMEM) {
        /* The key cannot be boxed to (small order), or the shape is refused: nothing
         * will ever make this receipt, so it is not owed any more. */
        char who[13];

        short_id(who, sender);
        qpc_log_warn("receipt", "cannot seal a receipt for %s: %s", who, qpc_strerror(rc));
        rc = 0;
    }
    if (plain != NULL)
        sodium_memzero(plain, plen);
    free(plain);
    free(box);
    qpc_envelope_clear(&env);
    return rc < 0 ? 1 : 0;
}

void turn_end(struct client *cl)
{
    bool staged;

#if QPC_MESH
    flood_flush(cl);   /* my broadcasts of this turn, behind one batch signature */
#endif
    if (cl->outbox == NULL)
        return;
    if (cl->box != NULL && receipts_owed_count(&cl->receipts) > 0)
        receipts_take_owed(&cl->receipts, seal_cb, cl);
    staged = qpc_queue_staged(cl->outbox) > 0;
    if (state_commit(cl) == 0)
        session_ack_pending(cl);
    /* What the commit let into the store goes now, on the links that are up. */
    if (staged && cl->ep != NULL && cl->store != NULL)
        handover_flush(cl);
}

static void turn_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    turn_end(w->data);
}

void turn_start(struct client *cl)
{
    ev_prepare_init(&cl->turn, turn_cb);
    cl->turn.data = cl;
    ev_set_priority(&cl->turn, EV_MAXPRI);   /* before the endpoint flushes packets */
    ev_prepare_start(cl->loop, &cl->turn);
    ev_unref(cl->loop);   /* it must not keep the loop running on its own */
}

void turn_stop(struct client *cl)
{
    if (cl->loop == NULL || !ev_is_active(&cl->turn))
        return;
    ev_ref(cl->loop);
    ev_prepare_stop(cl->loop, &cl->turn);
}
