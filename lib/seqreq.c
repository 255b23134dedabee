/*
 * seqreq.c: the seqno request rules (include/qpc/seqreq.h), without I/O.
 *
 * The one idea: each request is judged against what the node holds, in the order of
 * RFC 8966 3.8.1.2 (the origin bumps; a holder of a new enough announce answers; anyone
 * else passes it one hop nearer the origin), and every way a request can cost something
 * is bounded here: a copy of an (origin, seqno) within the dedup window, a second
 * request sent on for one origin within the forward gap, a second bump within the bump
 * gap. The per-origin entries live in one uthash table, oldest dropped when full.
 */
#include <stdlib.h>
#include <string.h>

#include "qpc/uthash_keyed.h"

#include "qpc/announce.h"
#include "qpc/error.h"
#include "qpc/seqreq.h"

struct entry {
    uint8_t origin[QPC_KEY_LEN];
    uint32_t seqno;          /* the last seqno handled for origin */
    uint64_t seqno_ms;       /*   when */
    uint64_t sent_ms;        /* the last request sent on (or of mine) for origin; 0 none */
    UT_hash_handle hh;
};

struct qpc_seqreq_state {
    struct entry *by_origin;   /* insertion order = age order (re-added when touched) */
    uint64_t bumped_ms;
    bool bumped;
};

struct qpc_seqreq_state *qpc_seqreq_state_new(void)
{
    return calloc(1, sizeof(struct qpc_seqreq_state));
}

void qpc_seqreq_state_free(struct qpc_seqreq_state *st)
{
    struct entry *e, *tmp;

    if (st == NULL)
        return;
    HASH_ITER(hh, st->by_origin, e, tmp) {
        HASH_DEL(st->by_origin, e);
        free(e);
    }
    free(st);
}

/* origin's entry, moved to the young end; created (dropping the oldest when full). NULL
 * when out of memory. */
static struct entry *touch(struct qpc_seqreq_state *st, const uint8_t origin[static QPC_KEY_LEN])
{
    struct entry *e = NULL;

    HASH_FIND(hh, st->by_origin, origin, QPC_KEY_LEN, e);
    if (e != NULL) {
        HASH_DEL(st->by_origin, e);
    } else {
        if (HASH_COUNT(st->by_origin) >= QPC_SEQREQ_TABLE_MAX) {
            struct entry *old = st->by_origin;

            HASH_DEL(st->by_origin, old);
            free(old);
        }
        if ((e = calloc(1, sizeof(*e))) == NULL)
            return NULL;
        memcpy(e->origin, origin, QPC_KEY_LEN);
    }
    HASH_ADD(hh, st->by_origin, origin, QPC_KEY_LEN, e);
    return e;
}

/* A copy of (seqno) handled within the dedup window; records seqno otherwise. */
static bool duplicate(struct entry *e, uint32_t seqno, uint64_t now_ms)
{
    if (e->seqno_ms != 0 && e->seqno == seqno && now_ms - e->seqno_ms < QPC_SEQREQ_DEDUP_MS)
        return true;
    e->seqno = seqno;
    e->seqno_ms = now_ms;
    return false;
}

enum qpc_seqreq_action qpc_seqreq_decide(struct qpc_seqreq_state *st, const struct qpc_seqreq *req,
                                         const struct qpc_seqreq_view *view, uint32_t max_hops,
                                         uint64_t now_ms, uint32_t *fwd_hop_limit)
{
    uint32_t limit = req->hop_limit < max_hops ? req->hop_limit : max_hops;
    struct entry *e;

    if (limit == 0)
        return QPC_SEQREQ_DROP;
    /* The origin: a new seqno satisfies every request, so the only bound is the gap. */
    if (view->is_me) {
        if (st->bumped && now_ms - st->bumped_ms < QPC_SEQREQ_BUMP_GAP_MS)
            return QPC_SEQREQ_DROP;
        st->bumped = true;
        st->bumped_ms = now_ms;
        return QPC_SEQREQ_BUMP;
    }
    if ((e = touch(st, req->origin)) == NULL || duplicate(e, req->seqno, now_ms))
        return QPC_SEQREQ_DROP;
    if (view->have_announce && !qpc_announce_seqno_newer(req->seqno, view->announce_seqno))
        return QPC_SEQREQ_ANSWER;
    if (limit < 2 || !view->have_route || view->route_via_requester)
        return QPC_SEQREQ_DROP;
    if (e->sent_ms != 0 && now_ms - e->sent_ms < QPC_SEQREQ_FORWARD_GAP_MS)
        return QPC_SEQREQ_DROP;
    e->sent_ms = now_ms;
    if (fwd_hop_limit != NULL)
        *fwd_hop_limit = limit - 1;
    return QPC_SEQREQ_FORWARD;
}

bool qpc_seqreq_may_send(struct qpc_seqreq_state *st, const uint8_t origin[static QPC_KEY_LEN],
                         uint32_t seqno, uint64_t now_ms)
{
    struct entry *e = touch(st, origin);

    if (e == NULL || (e->sent_ms != 0 && now_ms - e->sent_ms < QPC_SEQREQ_FORWARD_GAP_MS) ||
        duplicate(e, seqno, now_ms))
        return false;
    e->sent_ms = now_ms;
    return true;
}

int qpc_seqreq_from_pb(const Qpc__MeshSeqnoRequest *pb, struct qpc_seqreq *out)
{
    if (pb == NULL || pb->origin.len != QPC_KEY_LEN || pb->origin.data == NULL || pb->hop_limit == 0)
        return QPC_ERR_INVALID;
    memcpy(out->origin, pb->origin.data, QPC_KEY_LEN);
    out->seqno = pb->seqno;
    out->hop_limit = pb->hop_limit;
    return 0;
}

void qpc_seqreq_to_pb(const struct qpc_seqreq *req, Qpc__MeshSeqnoRequest *pb)
{
    qpc__mesh_seqno_request__init(pb);
    pb->origin.data = (uint8_t *)req->origin;   /* pack only reads it */
    pb->origin.len = QPC_KEY_LEN;
    pb->seqno = req->seqno;
    pb->hop_limit = req->hop_limit;
}
