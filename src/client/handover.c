/*
 * handover.c: moving held envelopes to their next holder (handover.h).
 *
 * The one idea: every direct envelope that leaves this node -- my own message or one I
 * forward for someone else -- is first HELD (store in memory, outbox on disk) and only
 * then offered to the best link toward its recipient. Sending moves it from the store
 * into custody (custody.c) as in flight; only the next holder's ack removes it for good.
 * So "acknowledged" always means "stored or shown on the other side", and nothing is
 * lost in between. When no link can be had, it is parked and a copy of my own goes to
 * the server. Holding is group-committed: the outbox row is staged, and the envelope
 * enters the store (and may leave toward anyone) only after the loop turn's commit.
 *
 * Built without mesh (QPC_MESH 0) there are no links: what can go now goes to the
 * server while a session is up, and everything parked is the server's alone, handed to
 * it again when a session comes up.
 */
#include <stdlib.h>
#include <string.h>

#include "handover.h"
#include "homes.h"
#if QPC_MESH
#include "link.h"
#endif
#include "output.h"
#include "qpc/error.h"
#include "session.h"
#include "state.h"

/* A hold waiting for its commit. */
struct held {
    struct qpc_envelope env;
    uint64_t now;
    handover_done_fn done;
    void *arg;
};

static void held_cb(struct client *cl, void *arg, int status)
{
    struct held *h = arg;
    uint8_t id[QPC_ID_LEN];

    memcpy(id, h->env.id, QPC_ID_LEN);   /* the store zeroes env when it takes it */
    if (status == 0 && cl->store != NULL) {
        status = qpc_store_put(cl->store, &h->env, h->now);
#if QPC_MESH
        /* A copy I handed on before came back (receive.c): the store's dedup set knows
         * the id, so it waits in custody, parked, for the next link toward its
         * recipient (not the one it came from: split horizon). */
        if (status == QPC_ERR_DUPLICATE) {
            custody_park(&cl->custody, &h->env);
            status = 0;
        }
#endif
        if (status < 0)
            state_unpersist(cl, id);   /* refused by the store: not held after all */
    } else if (status == 0) {
        status = QPC_ERR_CLOSED;
    }
    qpc_envelope_clear(&h->env);
    if (h->done != NULL)
        h->done(cl, h->arg, status);
    free(h);
}

int handover_hold(struct client *cl, struct qpc_envelope *env, const char *domain, uint64_t now,
                  handover_done_fn done, void *arg)
{
    struct held *h = calloc(1, sizeof(*h));
    int rc;

    if (h == NULL)
        return QPC_ERR_NOMEM;
    h->now = now;
    h->done = done;
    h->arg = arg;
    rc = state_hold(cl, env, domain, now, held_cb, h);
    if (rc < 0) {
        free(h);
        return rc;
    }
    h->env = *env;
    memset(env, 0, sizeof(*env));
    return 0;
}

bool handover_reports(const struct client *cl, const struct qpc_envelope *env)
{
    return memcmp(env->sender, qpc_identity_public_key(cl->id), QPC_KEY_LEN) == 0 &&
           receipts_waiting(&cl->receipts, env->id);
}

#if QPC_MESH
/* Split horizon for held envelope id on link l (custody_may_send_to). */
static bool may_send_to(const struct client *cl, const uint8_t id[static QPC_ID_LEN], const struct link *l,
                        const uint8_t recipient[static QPC_KEY_LEN])
{
    uint64_t at = 0;
    const uint8_t *came_from = state_came_from(cl, id, &at);

    return custody_may_send_to(came_from, at, now_ms(), l->ps->key, recipient);
}

struct link *handover_link_for(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN],
                               const uint8_t id[static QPC_ID_LEN])
{
    struct link *l = link_toward(cl, recipient);

    return l != NULL && may_send_to(cl, id, l, recipient) ? l : NULL;
}

struct take_ctx {
    struct client *cl;
    struct link *link;
    int sent;
};

static int take_send_cb(void *ctx, struct qpc_envelope *env)
{
    struct take_ctx *t = ctx;

    /* Split horizon: the route leads back to the neighbour it came from. It stays held
     * (parked, its outbox row kept) until a route or a link elsewhere takes it, or the
     * way back is allowed again (custody_may_send_to). */
    if (!may_send_to(t->cl, env->id, t->link, env->recipient)) {
        custody_park(&t->cl->custody, env);
        return 0;
    }
    if (link_send_envelope(t->link, env) < 0)
        return 1;   /* stays held; retried on the next flush */
    custody_hand(&t->cl->custody, env, t->link, t->link->ps->key);
    t->sent++;
    return 0;
}

/* Sends everything held for recipient over its next-hop link. */
static int flush_recipient(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN])
{
    struct take_ctx t = { cl, link_toward(cl, recipient), 0 };

    if (t.link == NULL)
        return 0;
    qpc_store_take_all_for(cl->store, recipient, now_ms(), take_send_cb, &t);
    return t.sent;
}

/* Can what is held for recipient go now? On the link toward it. */
static bool can_go(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN])
{
    return link_toward(cl, recipient) != NULL;
}

static void resend_parked_cb(void *ctx, struct inflight *f)
{
    struct client *cl = ctx;
    struct link *l;

    if (!custody_due(f, now_ms()))
        return;   /* refused for now a moment ago: backed off */
    l = handover_link_for(cl, f->env.recipient, f->id);
    if (l != NULL && link_send_envelope(l, &f->env) == 0)
        custody_resent(f, l, l->ps->key);
}
#else
/* Without mesh what is held goes to the server, and can while a session is up. */
static int flush_recipient(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN])
{
    handover_to_server(cl, recipient);
    return 0;
}

static bool can_go(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN])
{
    return session_up(cl);
}
#endif

#define FLUSH_QUEUES_MAX 256   /* recipients flushed per call; the rest go on the next */

struct flush_ctx {
    struct client *cl;
    uint8_t keys[FLUSH_QUEUES_MAX][QPC_KEY_LEN];
    size_t n;
};

static int flush_queue_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    struct flush_ctx *fc = ctx;

    /* Only queues that can go now count toward the limit: otherwise queues for
     * unreachable recipients (strangers can make many) would crowd out the ones with a link. */
    if (q->recipient != NULL && fc->n < FLUSH_QUEUES_MAX && can_go(fc->cl, q->recipient))
        memcpy(fc->keys[fc->n++], q->recipient, QPC_KEY_LEN);
    return 0;
}

void handover_flush(struct client *cl)
{
    struct flush_ctx fc;

    fc.cl = cl;
    fc.n = 0;
    /* The queues are collected first: a take may not run inside the store's walk. */
    qpc_store_foreach_queue(cl->store, flush_queue_cb, &fc);
    for (size_t i = 0; i < fc.n; i++)
        flush_recipient(cl, fc.keys[i]);
#if QPC_MESH
    custody_foreach_parked(&cl->custody, resend_parked_cb, cl);
#endif
}

/*
 * The node domain an envelope of mine names at my server. The one it was held for (the
 * user typed peer@domain: through my server alone) comes first; else the recipient's
 * home node as its signed announces say, unless that is my own node: the node federates
 * it there, and the outbox copy still races on the direct paths; else "" (my node's
 * own queue, for a client of my node or one whose node is unknown).
 */
static const char *enqueue_domain(const struct client *cl, const struct qpc_envelope *env)
{
    const char *held = state_hold_domain(cl, env->id);

    return held[0] != '\0' ? held : homes_enqueue_domain(cl->homes, env->recipient, session_domain(cl));
}

static int to_server_cb(void *ctx, struct qpc_envelope *env)
{
    struct client *cl = ctx;
    struct event ev = { .kind = EVT_QUEUED, .peer = env->recipient, .id = env->id };
    bool mine = memcmp(env->sender, qpc_identity_public_key(cl->id), QPC_KEY_LEN) == 0;
    bool report = handover_reports(cl, env);

    /* The server holds a copy (its answer is shown by session.c); ours stays too, so
     * the message also goes P2P as soon as the peer is reachable. */
    /* Only my own envelopes: a server accepts envelopes from their sender alone. */
    const char *held = state_hold_domain(cl, env->id);
    uint8_t id[QPC_ID_LEN];
    struct inflight *f;

    /* kept: unless held for a node domain a link may still carry our copy, so a refusal
     * is not final (without mesh no link can: the server's refusal is). */
    if (mine &&
        !(session_up(cl) && session_enqueue(cl, env, enqueue_domain(cl, env), report,
                                            QPC_MESH && held[0] == '\0') == 0) &&
        report) {
        ev.text = "peer unreachable, kept in outbox";
        ev.text_len = strlen(ev.text);
        emit(cl, &ev);
    }
    memcpy(id, env->id, QPC_ID_LEN);
    custody_park(&cl->custody, env);
    /* Held for a node domain (or built without mesh): it travels through my server alone
     * (handed to it again whenever a session comes up), never on a link. */
    if ((held[0] != '\0' || !QPC_MESH) && (f = custody_find(&cl->custody, id)) != NULL)
        f->server_only = true;
    return 0;
}

void handover_to_server(struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    qpc_store_take_all_for(cl->store, key, now_ms(), to_server_cb, cl);
}

static void to_server_again_cb(void *ctx, struct inflight *f)
{
    struct client *cl = ctx;

    if (f->mine)
        session_enqueue(cl, &f->env, enqueue_domain(cl, &f->env), handover_reports(cl, &f->env), false);
}

void handover_session_up(struct client *cl)
{
    custody_foreach_for_server(&cl->custody, to_server_again_cb, cl);
}
