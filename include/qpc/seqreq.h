/*
 * seqreq.h: Babel's seqno request (RFC 8966 3.8.2.1), the rules, without I/O.
 *
 * The one idea: a node that lost its route to an origin and knows only longer ways at the
 * seqno it has (the feasibility condition refuses them) asks for a newer seqno instead of
 * waiting for the origin's next periodic announce. Each node that gets the request
 * decides, with qpc_seqreq_decide, one of:
 *
 *   BUMP     it is the origin: sign a new announce (a new seqno) and send it now;
 *            at most one per QPC_SEQREQ_BUMP_GAP_MS, whatever the requests say
 *   ANSWER   it holds the origin's announce with a seqno not older than the one asked
 *            for: send that (one hop further) back to the requester
 *   FORWARD  otherwise, if it has a live route to the origin through a peer other than the
 *            requester and hop_limit > 1: pass the request (hop_limit - 1) to that peer;
 *            at most one per origin per QPC_SEQREQ_FORWARD_GAP_MS
 *   DROP     anything else: malformed, a hop limit of 0, a copy of an (origin, seqno) seen
 *            within QPC_SEQREQ_DEDUP_MS, over a rate, or no way on
 *
 * Requests are not signed: a request only asks, and the answer is the origin's signed
 * announce, so a forged one costs at most a rate-limited re-announce. The state (dedup
 * set and per-origin rates) is bounded by QPC_SEQREQ_TABLE_MAX origins; a full table
 * drops the origin heard from longest ago.
 */
#ifndef QPC_SEQREQ_H
#define QPC_SEQREQ_H

#include <stdbool.h>
#include <stdint.h>

#include "qpc/encoding.h"
#include "qpc/proto.h"

#define QPC_SEQREQ_DEDUP_MS 10000         /* one (origin, seqno) is handled once this long */
#define QPC_SEQREQ_FORWARD_GAP_MS 1000    /* per origin, between two requests sent on */
#define QPC_SEQREQ_BUMP_GAP_MS 2000       /* between two of my announces a request causes */
#define QPC_SEQREQ_TABLE_MAX 4096         /* origins remembered */

struct qpc_seqreq {
    uint8_t origin[QPC_KEY_LEN];
    uint32_t seqno;
    uint32_t hop_limit;
};

enum qpc_seqreq_action {
    QPC_SEQREQ_DROP = 0,
    QPC_SEQREQ_ANSWER,
    QPC_SEQREQ_FORWARD,
    QPC_SEQREQ_BUMP,
};

/* What the node knows that the rules look at (filled by the caller, any fields 0). */
struct qpc_seqreq_view {
    bool is_me;                   /* origin is my own key */
    bool have_announce;           /* I hold a verified announce of origin still in its hold */
    uint32_t announce_seqno;      /*   with this seqno */
    bool have_route;              /* a live (not retracted, fresh) route to origin via a peer */
    bool route_via_requester;     /*   that goes back through the requester */
};

struct qpc_seqreq_state;

/* A new, empty state. NULL when out of memory. */
struct qpc_seqreq_state *qpc_seqreq_state_new(void);
/* Frees it. NULL is a no-op. */
void qpc_seqreq_state_free(struct qpc_seqreq_state *st);

/*
 * Decides what to do with request *req (already converted) given *view, at now_ms (a
 * monotonic clock), and records it (dedup, rates). max_hops: the node's hop limit; a
 * request asking for more is clamped to it. On FORWARD, *fwd_hop_limit (not NULL) is
 * the hop limit to send on.
 */
enum qpc_seqreq_action qpc_seqreq_decide(struct qpc_seqreq_state *st, const struct qpc_seqreq *req,
                                         const struct qpc_seqreq_view *view, uint32_t max_hops,
                                         uint64_t now_ms, uint32_t *fwd_hop_limit);

/*
 * Whether I may send a request of my own for origin at seqno now (the same dedup and
 * per-origin rate as forwarding), and records it when so.
 */
bool qpc_seqreq_may_send(struct qpc_seqreq_state *st, const uint8_t origin[static QPC_KEY_LEN],
                         uint32_t seqno, uint64_t now_ms);

/* Converts a decoded message: 0, or QPC_ERR_INVALID (origin not 32 bytes, hop_limit 0). */
int qpc_seqreq_from_pb(const Qpc__MeshSeqnoRequest *pb, struct qpc_seqreq *out);
/* Fills *pb to point into *req (no allocation; valid while req lives). */
void qpc_seqreq_to_pb(const struct qpc_seqreq *req, Qpc__MeshSeqnoRequest *pb);

#endif
