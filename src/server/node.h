/*
 * node.h: the state of one qpc-server process that every file of src/server/ shares:
 * the loop, the settings, the identity, the durable queue, the two endpoints and the
 * counters the metrics endpoint shows.
 *
 * The one idea: only what is truly shared lives here. Each service keeps its own state
 * in its own file behind an opaque pointer (delivery, federation, broadcast, mDNS,
 * metrics), so reading a service means reading one file. main.c owns the struct node
 * and starts the modules in order; the files below it are listed in docs/server.md.
 */
#ifndef QPC_SERVER_NODE_H
#define QPC_SERVER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <ev.h>

#include "settings.h"
#include "qpc/identity.h"
#include "qpc/queue.h"

/* Refusals and failures counted for metrics (errors by kind). */
enum err_kind {
    ERRK_INVALID, ERRK_FORBIDDEN, ERRK_QUEUE_FULL, ERRK_TOO_LARGE, ERRK_EXPIRED,
    ERRK_UNKNOWN_DOMAIN, ERRK_INTERNAL, ERRK_PROTOCOL, ERRK_FEDERATION, ERRK_RELAY_DROPPED,
    ERRK_COUNT
};

/* Upper bounds (ms) of the time-to-direct histogram buckets, +Inf not included. */
#define NODE_PUNCH_BUCKETS 9
#define NODE_PUNCH_BUCKET_BOUNDS { 10, 25, 50, 100, 250, 500, 1000, 2500, 5000 }

/* Why a client connection was refused at admission (session.c). */
enum { CONN_REFUSED_FULL, CONN_REFUSED_PER_KEY, CONN_REFUSED_COUNT };

/* Plain integers the services increment and metrics.c reads (one loop, no locks). */
struct node_counters {
    uint64_t connections_total;      /* client connections accepted */
    uint64_t conn_refused[CONN_REFUSED_COUNT];   /* client connections over a cap */
    uint64_t fed_connections_total;  /* federation connections (in and out) */
    uint64_t fed_accepted_open;      /* federation connections from other nodes, open now */
    uint64_t enqueued;               /* envelopes committed to a local queue */
    uint64_t deferred;               /* envelopes committed to the outbox */
    uint64_t delivered;              /* envelopes handed to their recipient (fetch + push) */
    uint64_t acked;                  /* envelopes deleted by their recipient */
    uint64_t federated;              /* envelopes accepted by a remote node */
    uint64_t federated_in;           /* envelopes received from remote nodes and stored */
    uint64_t relayed_packets;        /* relay datagrams forwarded */
    uint64_t punch_requests;         /* PathRequest.punch asked by clients */
    uint64_t punch_refused;          /* ... refused by the per-client punch rate */
    uint64_t punch_notices;          /* PunchNotices sent (each session of a peer gets one) */
    uint64_t punch_direct;           /* direct paths reported after a punch asked here */
    uint64_t punch_ms_buckets[NODE_PUNCH_BUCKETS];   /* ... by time to direct (cumulative) */
    uint64_t punch_ms_sum;
    uint64_t broadcasts_in;          /* new broadcasts verified (clients and nodes) */
    uint64_t broadcasts_relayed;     /* broadcast copies sent to clients and nodes */
    uint64_t broadcasts_duplicate;   /* broadcasts dropped as already seen */
    uint64_t broadcasts_later_copies;/* seen, but came by fewer hops: passed on again */
    uint64_t broadcasts_rate_limited;/* client broadcasts refused by the rate limit */
    uint64_t broadcasts_known_invalid;/* replays of a forged broadcast, refused by lookup */
    uint64_t broadcasts_dedup_full;  /* refused because the dedup set was full */
    uint64_t announces_in;           /* new announces verified (clients and nodes) */
    uint64_t announces_passed;       /* announce copies sent to clients and nodes */
    uint64_t announces_duplicate;    /* announces dropped as already seen */
    uint64_t announces_shed;         /* copies not sent to a client over its budget */
    uint64_t announces_refused[4];   /* by enum mesh_refusal (mesh.h) */
    uint64_t commits;                /* group commits */
    uint64_t errors[ERRK_COUNT];
};

struct session_endpoint;
struct delivery;
struct federation;
struct trust;
struct announce;
struct metrics;
struct mesh;
struct relay;
struct qpc_store;

struct node {
    struct ev_loop *loop;
    struct qpc_config *cfg;
    const struct server_settings *sc;
    struct qpc_identity *identity;
    struct qpc_queue *queue;
    struct session_endpoint *client_ep;    /* ALPN client/1 (client_service.c) */
    struct session_endpoint *fed_ep;       /* ALPN federation/1, NULL when federation is off */
    struct delivery *delivery;             /* group commit state (delivery.c) */
    struct federation *federation;         /* links and learned nodes (federation.c) */
    struct trust *trust;                   /* which key or certificate proves a domain (trust.c) */
    struct qpc_store *bcast_store;         /* dedup set + recent broadcasts (broadcast.c) */
    struct announce *announce;             /* mDNS responder, NULL when off (announce.c) */
    struct mesh *mesh;                     /* announce dedup and origin cache (mesh.c) */
    struct metrics *metrics;               /* HTTP endpoint, NULL when off (metrics.c) */
    struct relay *relay;                   /* relayed traffic by client (relay.c) */
    char client_addr[QPC_ADDRESS_MAX + 1]; /* "host:port" clients dial (printed, announced) */
    uint16_t client_port;
    ev_timer maint_w;                      /* main.c: expiry, broadcast GC, outbox pump */
    ev_timer stop_w;
    ev_signal sigterm_w, sigint_w;
    bool stopping;                         /* a signal came: refuse newcomers, finish */
    uint64_t started_mono_ms;              /* node_mono_ms() at start: uptime */
    uint64_t started_ms;                   /* node_now_ms() at start: restarts */
    struct node_counters c;
};

/* Milliseconds since the Unix epoch: envelope times and TTLs are wall-clock times
 * (rates and timeouts use the monotonic ratelimit_now instead: ratelimit.h). */
static inline uint64_t node_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds of CLOCK_MONOTONIC: durations that a stepped wall clock must not bend. */
static inline uint64_t node_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
