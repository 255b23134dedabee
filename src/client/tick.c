/*
 * tick.c: the node's periodic jobs (tick.h).
 *
 * The one idea: one timer, a fixed list of named jobs, run in order each second. Each
 * job is a function of the module that owns its state; the only state of the tick
 * itself (when garbage was last collected) lives in struct client beside the timer.
 * Built without mesh (QPC_MESH 0) the jobs of paths and links are not there: the flush
 * hands what is held to the server instead.
 */
#include <string.h>

#include "handover.h"
#include "homes.h"
#if QPC_MESH
#include "announce.h"
#include "dial.h"
#endif
#include "output.h"
#include "qpc/error.h"
#include "route_state.h"
#include "routes.h"
#include "state.h"
#include "tick.h"

#if QPC_MESH
/* Held queues: dial their recipients again, with back-off. */
static int retry_held_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    struct client *cl = ctx;

    if (q->recipient != NULL)
        dial_retry(cl, q->recipient, now_ms());
    return 0;
}

static void retry_held(struct client *cl)
{
    qpc_store_foreach_queue(cl->store, retry_held_cb, cl);
}

/* Parked envelopes (no link): dial their recipients again, with back-off. */
static void retry_parked_cb(void *ctx, struct inflight *f)
{
    struct client *cl = ctx;

    dial_retry(cl, f->env.recipient, now_ms());
}

static void retry_parked(struct client *cl)
{
    custody_foreach_parked(&cl->custody, retry_parked_cb, cl);
}
#endif

/* In-flight envelopes nobody would accept any more: dropped with their outbox row (the
 * user hears of mine from expire_waits). */
static void expired_cb(void *ctx, const struct inflight *f)
{
    struct client *cl = ctx;

    state_unpersist(cl, f->id);
}

static void expire_in_flight(struct client *cl, uint64_t now)
{
    custody_expire(&cl->custody, now, expired_cb, cl);
}

/* My messages whose TTL ended without a receipt: none can come any more. */
static void wait_ended_cb(void *ctx, const struct receipt_wait *w)
{
    struct client *cl = ctx;
    const char *why = "expired without a receipt";

    emit(cl, &(struct event){ .kind = EVT_FAILED, .peer = w->recipient, .id = w->id, .text = why,
                              .text_len = strlen(why), .err = QPC_ERR_EXPIRED });
    state_unawait(cl, w->id);
}

static void expire_waits(struct client *cl, uint64_t now)
{
    receipts_expire(&cl->receipts, now, wait_ended_cb, cl);
}

/* Forgets idle relay paths and peer states, expired envelopes and dedup entries, and
 * old routes. Idle strangers go every tick: their number is capped. */
static void collect_garbage(struct client *cl, uint64_t now)
{
#if QPC_MESH
    dial_gc(cl, now);
#endif
    if (now - cl->last_gc_ms <= TICK_GC_INTERVAL_MS) {
        if (peers_strangers(&cl->peers) > 0)
            peers_gc(&cl->peers, &cl->custody, cl->store);
        return;
    }
    cl->last_gc_ms = now;
    peers_gc(&cl->peers, &cl->custody, cl->store);
    qpc_store_gc(cl->store, now);
    state_expire(cl, now);
    if (qpc_route_expire(cl->routes, now, ROUTES_MAX_AGE_MS) > 0)
        route_state_changed(cl);
    qpc_route_fd_expire(cl->routes, now, ROUTES_FD_MAX_AGE_MS);
    if (cl->homes != NULL && homes_expire(cl->homes, now, ROUTES_MAX_AGE_MS) > 0)
        route_state_changed(cl);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct client *cl = w->data;
    uint64_t now = now_ms();

    state_refill(cl, now);           /* outbox rows that waited on disk for room */
    handover_flush(cl);              /* send what found a way meanwhile (or to the server) */
#if QPC_MESH
    retry_held(cl);
#endif
    expire_in_flight(cl, now);
    expire_waits(cl, now);
#if QPC_MESH
    retry_parked(cl);
    dial_check_stalled(cl, now);     /* direct links that stopped carrying: back to the relay */
    dial_retry_direct(cl, now);      /* relayed peers: punch again, a few times */
    dial_refresh_candidates(cl, now, false);   /* addresses came or went: tell who needs it */
    announce_tick(cl, now);          /* mine when due, or when my addresses changed */
#endif
    collect_garbage(cl, now);
    state_save_identity(cl, false);  /* only if its content changed, at most once a second */
    route_state_save(cl, false);     /* one transaction at most every few seconds */
}

void tick_start(struct client *cl)
{
    ev_timer_init(&cl->tick, tick_cb, 1.0, 1.0);
    cl->tick.data = cl;
    ev_timer_start(cl->loop, &cl->tick);
}

void tick_stop(struct client *cl)
{
    if (cl->loop != NULL)
        ev_timer_stop(cl->loop, &cl->tick);
}
