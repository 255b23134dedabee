/*
 * announce.h: the node's announces: saying where I am, and passing on what others say
 * (announce.c; the signed format is libqpc's, qpc/announce.h).
 *
 * Every interval the node signs a fresh announce (new seqno, my address candidates)
 * and sends it on every P2P link and to its server; at once too when a link comes up
 * (my current one, and the latest of every origin I heard, so the new neighbour learns
 * the mesh without waiting an interval) and when my addresses change. What arrives is
 * rate-limited per link, deduplicated by announce id, verified, learned (a route
 * through the link it came on, the origin's addresses as path candidates) and passed
 * on, one hop further, to every other link and the server: each announce id once, and
 * again only when a later copy gives me a shorter way than the one I passed on. Later
 * copies are checked against the first (no signature check) and may teach routes too.
 * docs/routing.md, "Announces", has the rules.
 */
#ifndef QPC_CLIENT_ANNOUNCE_H
#define QPC_CLIENT_ANNOUNCE_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "qpc/proto.h"

#define ANNOUNCE_SEEN_MAX 16384          /* announce ids remembered for dedup */
#define ANNOUNCE_SEEN_MS (10u * 60 * 1000)  /* and for how long */
#define ANNOUNCE_ORIGINS_MAX 4096        /* origins whose latest announce is kept */
#define ANNOUNCE_REPLAY_MAX 128          /* latest announces given to a new link */
#define ANNOUNCE_BURST 256               /* per link: announces taken in a burst */
#define ANNOUNCE_RATE 16                 /*   and per second after it */
#define ANNOUNCE_PENDING_MAX 1024        /* announces waiting for the tick to be passed on */
#define ANNOUNCE_SKIP_MAX 8              /*   and the neighbours each is not sent back to */
#define ANNOUNCE_TRIGGER_GAP_MS 5000     /* a triggered announce at most this often (lost links;
                                          * half the interval where that is shorter) */

struct link;
struct peer_state;

/* What the announcer did since start (/mesh announces): what control traffic is made of. */
struct announce_stats {
    uint64_t made, triggered;            /* my announces signed; of them not by the interval */
    uint64_t link_frames, link_bytes;    /* announces sent on P2P links (MeshAnnounce bytes) */
    uint64_t server_frames, server_bytes;/*   and to my server */
    uint64_t passed_on;                  /* others' announces passed on (to one or more) */
    uint64_t link_ups, replayed;         /* links come up, and others' announces given them */
    uint64_t received, refused, limited; /* announces in; refused (malformed, forged); over rate */
    uint64_t skipped;                    /* copies not sent back to a neighbour that had it */
    uint64_t copies, copies_passed;      /* later copies checked; shorter ones passed on */
    uint64_t sr_sent, sr_received;       /* seqno requests of mine sent (per link); got */
    uint64_t sr_answered, sr_forwarded;  /*   answered with an announce held; sent on */
    uint64_t sr_bumped, sr_dropped;      /*   that made me announce anew; dropped */
};

/* Sets up the node's announcer (node_start). Returns 0 or QPC_ERR_NOMEM. */
int announce_start(struct client *cl);
void announce_stop(struct client *cl);

/* The periodic job (tick.c): my announce when due (interval, or my addresses changed). */
void announce_tick(struct client *cl, uint64_t now);

/* A link came up: my announce and the latest of others go on it at once. */
void announce_link_up(struct client *cl, struct link *l);
/* A link to ps closed: routes through it go (and its own route, if it was the last). */
void announce_link_gone(struct client *cl, struct peer_state *ps);
/* The server session came up: my announce goes to it. */
void announce_session_up(struct client *cl);

/* An announce arrived on link l (NULL: from the server). Only read. */
void announce_receive(struct client *cl, struct link *l, const Qpc__MeshAnnounce *pb);

/* Merges the addresses the latest announce of ps's peer gave into ps->cands, so dialling
 * it tries them (a Babel mesh routes unicast where mDNS does not reach). Not while a
 * server session is up: the server's word on candidates coordinates the race then. */
void announce_fill_candidates(struct client *cl, struct peer_state *ps);

/* Copies the counters into *out (all 0 before announce_start). */
void announce_get_stats(const struct client *cl, struct announce_stats *out);

/* A seqno request from neighbour l (include/qpc/seqreq.h): answered, sent on toward its
 * origin, or (for my own key) a new announce of mine. */
void announce_seqreq_receive(struct client *cl, struct link *l, const Qpc__MeshSeqnoRequest *pb);

#endif
