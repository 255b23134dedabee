/*
 * server.h: the shared state of one qpc-server process and the entry points each file
 * of src/server/ offers the others.
 *
 * The one idea: everything runs on ONE libev loop and every durable write goes through
 * the group commit of queue.h. Request handlers only STAGE writes; a high-priority
 * ev_prepare watcher (commit_cb in delivery.c) commits once per loop iteration, and only
 * the commit's completions answer clients, push to recipients or wake the federation
 * outbox. So nothing is acknowledged before it is on disk, and one fsync pays for every
 * message that arrived in that iteration.
 *
 * Files: main.c (options, start-up, signals), delivery.c (client ALPN service, sessions,
 * ordered replies, group commit), federation.c (federation ALPN, resolve_destination,
 * outbox pump = relay_enqueue), relay.c (DATAGRAM relay between clients), metrics.c
 * (Prometheus endpoint), announce.c (mDNS announce and browse).
 */
#ifndef QPC_SERVER_H
#define QPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include <uthash.h>

#include "settings.h"
#include "qpc/encoding.h"
#include "qpc/identity.h"
#include "qpc/mdns.h"
#include "qpc/queue.h"
#include "qpc/quic.h"
#include "qpc.pb-c.h"

/* The callbacks of an endpoint get a `user` pointer that is one of these three objects;
 * each starts with its kind so the callback knows which. */
enum obj_kind { OBJ_NODE = 1, OBJ_SESSION, OBJ_LINK };

/* Refusals and failures counted for metrics (errors by kind). */
enum err_kind {
    ERRK_INVALID, ERRK_FORBIDDEN, ERRK_QUEUE_FULL, ERRK_TOO_LARGE, ERRK_EXPIRED,
    ERRK_UNKNOWN_DOMAIN, ERRK_INTERNAL, ERRK_PROTOCOL, ERRK_FEDERATION, ERRK_RELAY_DROPPED,
    ERRK_COUNT
};

struct node_counters {
    uint64_t connections_total;      /* client connections accepted */
    uint64_t fed_connections_total;  /* federation connections (in and out) */
    uint64_t enqueued;               /* envelopes committed to a local queue */
    uint64_t deferred;               /* envelopes committed to the outbox */
    uint64_t delivered;              /* envelopes handed to their recipient (fetch + push) */
    uint64_t acked;                  /* envelopes deleted by their recipient */
    uint64_t federated;              /* envelopes accepted by a remote node */
    uint64_t federated_in;           /* envelopes received from remote nodes and stored */
    uint64_t relayed_packets;        /* relay datagrams forwarded */
    uint64_t broadcasts_in;          /* new broadcasts verified (clients and nodes) */
    uint64_t broadcasts_relayed;     /* broadcast copies sent to clients and nodes */
    uint64_t broadcasts_duplicate;   /* broadcasts dropped as already seen */
    uint64_t broadcasts_rate_limited;/* client broadcasts refused by the rate limit */
    uint64_t commits;                /* group commits */
    uint64_t errors[ERRK_COUNT];
};

struct session;
struct key_entry;
struct link;
struct learned_node;
struct metrics;
struct qpc_store;

struct node {
    int kind;                              /* OBJ_NODE */
    struct ev_loop *loop;
    struct qpc_config *cfg;
    const struct server_settings *sc;
    struct qpc_identity *identity;
    struct qpc_queue *queue;
    struct qpc_quic_endpoint *client_ep;
    struct qpc_quic_endpoint *fed_ep;
    struct qpc_mdns *mdns;
    ev_timer mdns_check_w;
    bool mdns_established;
    struct metrics *metrics;
    char client_addr[QPC_ADDRESS_MAX + 1]; /* "host:port" clients dial (printed, announced) */
    uint16_t client_port;
    struct key_entry *clients;             /* connected clients by key (uthash) */
    struct link *links;                    /* outgoing federation links by domain (uthash) */
    struct learned_node *learned;          /* nodes learned from mDNS by domain (uthash) */
    struct qpc_store *bcast_store;         /* broadcast dedup set + recent ones (broadcast.c) */
    ev_prepare commit_w;                   /* commits when staged writes grow old */
    ev_idle commit_idle_w;                 /* commits when the loop has nothing else to do */
    ev_tstamp staged_since;                /* loop time of the oldest uncommitted write */
    ev_timer maint_w;
    ev_timer stop_w;
    ev_signal sigterm_w, sigint_w;
    bool stopping;
    bool outbox_kick;                      /* outbox rows were committed: pump soon */
    uint64_t next_pump_ms;
    struct node_counters c;
};

/* Milliseconds since the Unix epoch (the only clock the server reads). */
uint64_t node_now_ms(void);

/* --- delivery.c ------------------------------------------------------------------- */

/* Creates the client endpoint on sc->listen and starts the commit watcher. 0 or error. */
int delivery_start(struct node *n);
/* Frees every session (connections are closed by endpoint free). */
void delivery_stop(struct node *n);
/* Commits what is staged, which runs the completions that answer clients, push, and
 * wake the outbox pump (also called at shutdown). */
void delivery_commit(struct node *n);

/* --- federation.c ----------------------------------------------------------------- */

enum dest_kind { DEST_LOCAL, DEST_REMOTE, DEST_UNKNOWN };

/*
 * resolve_destination: where a recipient of `domain` lives. Empty or our own domain is
 * DEST_LOCAL; a domain of a static federation peer or of a node learned from mDNS is
 * DEST_REMOTE (its federation "host:port" copied to addr when addr is not NULL);
 * anything else, or any remote domain while federation is off, is DEST_UNKNOWN.
 */
enum dest_kind resolve_destination(const struct node *n, const char *domain, char *addr,
                                   size_t addrlen);
/* Creates the federation endpoint when federation is enabled. 0 or error. */
int federation_start(struct node *n);
void federation_stop(struct node *n);
/* Sends due outbox rows to their nodes (relay_enqueue); called by the maintenance
 * timer and after a commit that added outbox rows. */
void federation_pump(struct node *n, uint64_t now_ms);
/* Records a node seen in mDNS (domain -> host for federation). */
void federation_learn(struct node *n, const char *domain, const char *host);
void federation_forget(struct node *n, const char *domain);

/*
 * Hands an encoded broadcast envelope (already checked and hopped) to every federation
 * peer (static and learned) except origin_domain (may be NULL), best effort: queued on
 * the peer's link, dialled if needed, dropped if the link fails. Returns how many peers
 * it was queued for.
 */
size_t federation_broadcast(struct node *n, const uint8_t *blob, size_t len,
                            const char *origin_domain);

/* --- broadcast.c ------------------------------------------------------------------ */

struct session;
/* Creates the dedup set and the store of recent broadcasts. 0 or QPC_ERR_NOMEM. */
int broadcast_start(struct node *n);
void broadcast_stop(struct node *n);
/* Drops expired broadcasts and dedup entries (maintenance timer). */
void broadcast_gc(struct node *n, uint64_t now_ms);
/* ClientRequest.broadcast: rate limit, check, flood; answers broadcast_ack. */
void broadcast_handle_client(struct session *s, uint64_t request_id,
                             const Qpc__BroadcastRequest *r);
/* FederationRequest.relay_broadcast: check and flood each; answers one status each. */
void broadcast_handle_federation(struct session *s, uint64_t request_id,
                                 const Qpc__RelayBroadcastRequest *r);
/* Sends a client that just enabled push the live broadcasts kept (once per session). */
void broadcast_replay(struct session *s);

/* --- relay.c ---------------------------------------------------------------------- */

/* Handles one DATAGRAM from a client session (0x01 || dest key || packet). */
void relay_datagram(struct node *n, struct session *from, const uint8_t *data, size_t len);

/* --- metrics.c ---------------------------------------------------------------------- */

/* Starts the HTTP endpoint on sc->metrics_listen (no-op when ""). 0 or error. */
int metrics_start(struct node *n);
void metrics_stop(struct node *n);
/* Writes the Prometheus text of every metric into a malloc'd buffer (caller frees). */
char *metrics_render(struct node *n, size_t *len);

/* --- announce.c --------------------------------------------------------------------- */

/* Starts the mDNS responder, announces the node and browses for others. */
int announce_start(struct node *n);
/* The host clients should dial: the listen address unless it is a wildcard, else the
 * first IPv4 address of an mDNS interface (of any interface when the list is empty).
 * False when there is none. */
bool announce_dial_host(const struct node *n, char *host, size_t len);
/* Withdraws the announcement (goodbye packets) and frees the responder. */
void announce_stop(struct node *n);

/* --- sessions, shared by delivery.c, federation.c and relay.c ------------------------- */

/*
 * A token bucket per client and kind of request, so one client cannot make the node
 * flood others (relay datagrams, broadcasts, punch notices). It starts full.
 */
struct token_bucket {
    double tokens;
    ev_tstamp last;                /* 0: not used yet */
};

/* Takes one token at now with the given refill rate (per second) and burst size. */
static inline bool token_bucket_take(struct token_bucket *b, ev_tstamp now, double rate,
                                     double burst)
{
    if (b->last == 0)
        b->tokens = burst;
    else
        b->tokens += (now - b->last) * rate;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

struct session {
    int kind;                      /* OBJ_SESSION */
    struct node *node;
    struct qpc_quic_conn *conn;
    bool federation;               /* an incoming federation connection */
    bool has_stream;
    int64_t stream_id;
    uint8_t key[QPC_KEY_LEN];      /* client identity (unset for federation) */
    char peer_addr[64];            /* "ip:port" as observed */
    bool push;                     /* push new items to this session */
    struct pending *replies;       /* FIFO of answers, sent in order (utlist DL) */
    size_t reply_count;
    size_t reply_bytes;            /* encoded bytes of the finished replies in the FIFO */
    bool backlog_closed;           /* closed for not reading its replies */
    struct token_bucket relay_rate;  /* relay datagrams (relay.c) */
    struct token_bucket bcast_rate;  /* broadcasts (broadcast.c) */
    struct token_bucket punch_rate;  /* punch notices caused by peer_info (delivery.c) */
    bool bcast_replayed;           /* kept broadcasts were sent to it */
    struct session *prev, *next;   /* in key_entry->sessions */
};

struct key_entry {
    uint8_t key[QPC_KEY_LEN];
    struct session *sessions;      /* utlist DL */
    UT_hash_handle hh;
};

/* The first session of a connected client, or NULL. */
struct session *delivery_find_session(struct node *n, const uint8_t key[static QPC_KEY_LEN]);

/* Incoming federation session life cycle (federation.c calls these). */
struct session *session_new(struct node *n, struct qpc_quic_conn *conn, bool federation);
void session_closed(struct session *s);
/* Handles one RelayEnqueueRequest frame on an incoming federation session. */
void delivery_handle_federation(struct session *s, const uint8_t *data, size_t len);
/* Sends what replies are ready, in order. */
void session_flush(struct session *s);
/* Queues an encoded message (ServerMessage or FederationResponse) behind the replies
 * before it and sends what is ready. Takes buf (malloc'd). */
void session_send_packed(struct session *s, uint8_t *buf, size_t len);

/* Format helper: "ip:port" of a socket address into buf. */
void format_sockaddr(const struct sockaddr *sa, char *buf, size_t len);

#endif
