/*
 * session.h: the bottom layer of qpc-server: endpoints, connections and their frames,
 * the ordered replies of each connection, and per-connection limits.
 *
 * The one idea: a service never writes to a stream itself. An answer either leaves
 * behind the answers before it (session_send_message), or reserves its place in that
 * order now and is filled in later (session_reply_reserve, then session_reply_send):
 * that is how an enqueue is answered only after its commit while answers still keep
 * request order. This layer knows nothing of the requests: it hands frames, datagrams
 * and connection events up through one struct session_callbacks per endpoint (or per
 * dialled connection), set once, as qpc_quic_callbacks does one layer further down.
 *
 * An endpoint made for clients also keeps the directory of connected clients by the key
 * their certificate proves (session_find), which is how one client's message reaches
 * another's connections. Limits belong to the key, not to a connection: the caps on
 * connections (per key and in all) are checked at admission, and the rate buckets
 * (session_take) are the key's.
 */
#ifndef QPC_SERVER_SESSION_H
#define QPC_SERVER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include <protobuf-c/protobuf-c.h>

#include "qpc/encoding.h"
#include "qpc/quic.h"
#include "qpc/resolve.h"
#include "node.h"
#include "ratelimit.h"

/* How long a client's rate buckets outlive its last connection: longer than any of
 * them takes to refill, so a reconnect starts where the last connection left off. */
#define SESSION_LINGER_S 30.0
/* Keys whose buckets linger at most (the oldest is forgotten first). */
#define SESSION_LINGER_MAX 4096u

struct session_reply;
struct client_entry;

/* The rates a client is held to; each is one token bucket per client KEY, shared by all
 * of that key's connections (session_take). */
enum session_rate {
    SESSION_RATE_RELAY,            /* relay datagrams (relay.c) */
    SESSION_RATE_BROADCAST,        /* broadcasts handed in (broadcast.c) */
    SESSION_RATE_PUNCH,            /* punch notices caused by peer_info (relay.c) */
    SESSION_RATE_GARBAGE,          /* requests the node refused (client_service.c) */
    SESSION_RATE_ANNOUNCE,         /* announces handed in (mesh.c) */
    SESSION_RATE_COUNT
};

#define SESSION_CANDIDATES_MAX 8     /* address candidates a client may register */
#define SESSION_CANDIDATE_LEN 64     /* bytes of one, NUL included ("[v6]:port" needs 48) */
#define SESSION_PATH_SLOTS 8         /* relay pins and recent punches remembered per session */

/* What relay.c keeps per client session (plain data, freed with the session). */
struct session_paths {
    bool registered;                 /* sent a PathRequest: punches only when it asks */
    size_t n_candidates;
    char candidates[SESSION_CANDIDATES_MAX][SESSION_CANDIDATE_LEN];
    /* Relay datagrams from this session to pins[i].key go to session pins[i].to only (a
     * session of that key that sent to us; checked live before each use). */
    struct {
        uint8_t key[QPC_KEY_LEN];
        struct session *to;
        ev_tstamp last;              /* monotonic: when `to` last sent to us */
    } pins[SESSION_PATH_SLOTS];
    /* Punches this session asked for, so a report of a direct path is counted once. */
    struct {
        uint8_t key[QPC_KEY_LEN];
        ev_tstamp at;                /* monotonic; 0: free */
    } punched[SESSION_PATH_SLOTS];
};

/* One connection, accepted or dialled. The services read the fields above the line and
 * set the flags documented as theirs; the rest is this layer's. */
struct session {
    int kind;                      /* session.c: tells a session from an endpoint */
    struct node *node;
    struct session_endpoint *ep;   /* the endpoint it came in or went out on */
    struct qpc_quic_conn *conn;
    bool dialled;                  /* this node opened it (session_dial) */
    void *owner;                   /* dialled: the dialler's object, else NULL */
    bool has_stream;               /* the request stream is known (first frame, or dialled) */
    int64_t stream_id;
    bool is_client;                /* key is the client's certificate key */
    bool has_peer_key;             /* key holds the key the peer's certificate proved (every
                                    * client; federation peers with federation_trust key) */
    uint8_t key[QPC_KEY_LEN];
    char peer_addr[64];            /* "ip:port" as observed (dialled by name: the name
                                    * until it connects) */
    char fed_domain[254];          /* federation: the domain the peer proved ("" none yet;
                                    * federation_service.c) */
    bool push;                     /* the client wants unsolicited messages (delivery.c) */
    bool bcast_replayed;           /* kept broadcasts were sent to it (broadcast.c) */
    bool announces_replayed;       /* the cached announces were sent to it (mesh.c) */
    bool garbage_closed;           /* closed for refused requests (client_service.c) */
    struct session_paths paths;    /* candidates, relay pins, punches (relay.c) */
    /* ------------------------------------------------------------------------------ */
    struct client_entry *client;   /* its key's entry in the directory (clients only) */
    struct token_bucket own_rates[SESSION_RATE_COUNT];   /* for sessions without a key */
    const struct session_callbacks *cb;
    struct session_reply *replies; /* FIFO of answers, sent in order (utlist DL) */
    size_t reply_count;
    size_t reply_bytes;            /* encoded bytes of the finished replies in the FIFO */
    bool backlog_closed;           /* closed for not reading its replies */
    struct session *prev, *next;   /* the sessions of the same client key */
    /* Dialled by name: the lookup in progress (conn is NULL until it answers), what the
     * connection will insist on, and the deferred end of a session closed meanwhile. */
    struct qpc_resolve *resolving;
    bool dial_has_key;
    uint8_t dial_key[QPC_KEY_LEN];
    char dial_name[254];
    ev_timer unconnected_end;
    char end_reason[128];
    struct session *uprev, *unext; /* on the endpoint's list of sessions without a conn */
};

/* What a session hands up. Any member may be NULL. */
struct session_callbacks {
    /* The session is ready: accepted and admitted, or dialled with its stream open. */
    void (*on_open)(struct session *s);
    /* One complete frame arrived (data valid during the call only). */
    void (*on_frame)(struct session *s, const uint8_t *data, size_t len);
    /* One DATAGRAM arrived. */
    void (*on_datagram)(struct session *s, const uint8_t *data, size_t len);
    /* The stream takes frames again (after QPC_ERR_AGAIN of session_write_message);
     * the ordered replies have already been sent as far as they go. */
    void (*on_writable)(struct session *s);
    /* The connection ended; s is freed when this returns. */
    void (*on_closed)(struct session *s, const struct qpc_quic_close_info *info);
};

/* The one configuration of a listening endpoint; frame size and idle timeout come
 * from the node's settings. */
struct session_endpoint_config {
    const char *listen;            /* "host:port" to bind */
    const char *alpn;              /* the one ALPN served (and offered when dialling) */
    bool clients;                  /* identity TLS: a session is a client known by its key;
                                    * a connection without a key is refused */
    const char *cert_der;          /* or CA-verified mutual TLS: certificate, key and CA */
    const char *key_der;           /* (DER files, all three) */
    const char *ca_der;
    bool by_key;                   /* or mutual TLS with identity certificates: each side
                                    * learns the other's key (federation_trust key) */
    uint64_t keepalive_ms;         /* 0: no keep-alive PINGs */
    size_t max_sessions;           /* clients: connections admitted at once (0: no cap) */
    size_t max_sessions_per_key;   /* clients: of them, per client key (0: no cap) */
    int retry_threshold;           /* qpc_quic_config's (0: default; QPC_QUIC_RETRY_ALWAYS) */
    const struct qpc_resolver_config *resolver;   /* session_dial's name lookups (borrowed
                                    * until the endpoint closes); NULL: /etc/resolv.conf */
};

/*
 * Binds an endpoint on the node's loop and accepts connections for cfg->alpn (none
 * while n->stopping). cb (borrowed, must outlive the endpoint) gets the events of the
 * sessions it accepts. *out is freed with session_endpoint_close. Returns 0 or the
 * error of qpc_config_parse_addr / qpc_quic_endpoint_new, or QPC_ERR_NOMEM.
 */
int session_endpoint_open(struct node *n, const struct session_endpoint_config *cfg,
                          const struct session_callbacks *cb, struct session_endpoint **out);
/* Closes every connection (each session's on_closed runs, then it is freed) and frees
 * e. NULL is a no-op. Never from inside one of e's callbacks. */
void session_endpoint_close(struct session_endpoint *e);
/* Newcomers are refused at once from now on; open connections go on. NULL: no-op. */
void session_endpoint_stop_accepting(struct session_endpoint *e);
/* Live connections (0 for NULL). */
size_t session_endpoint_conn_count(const struct session_endpoint *e);
/* The QUIC endpoint's counters (Retry packets sent, ...); zeros for NULL. */
void session_endpoint_quic_stats(const struct session_endpoint *e,
                                 struct qpc_quic_endpoint_stats *out);
/* The bound port (to learn the one chosen for port 0), 0 if unknown. */
uint16_t session_endpoint_port(const struct session_endpoint *e);

/*
 * Dials addr ("host:port", numeric or a name) on e's socket with e's ALPN. A name is
 * looked up without blocking (qpc/resolve.h): *out is returned at once, with no
 * connection yet (s->conn NULL; frames cannot be written, session_close works), and a
 * lookup that fails or times out ends the session through on_closed (info->err
 * QPC_ERR_NOT_FOUND or QPC_ERR_TIMEOUT, info->reason the resolver's sentence), from
 * the loop, never from inside this call. With
 * expected_key (32 bytes, copied; may be NULL) the peer must prove that key; with
 * expected_name (copied; may be NULL) its CA-signed certificate must list that dNSName
 * (CA-checked endpoints). The peer's key, when its certificate carries one, is in
 * s->key (has_peer_key) by on_open. The session gets cb's events (borrowed) and owner; on_open runs once its stream is open, on_closed
 * always ends it (also when the connection never came up). *out stays valid until its
 * on_closed returns. Errors: QPC_ERR_INVALID (not host:port, port 0, a bad
 * expected_name), those of qpc_quic_connect (numeric addresses) and of
 * qpc_resolver_new / qpc_resolve_start (names), QPC_ERR_NOMEM; a name that does not
 * resolve is not an error here but an on_closed later.
 */
int session_dial(struct session_endpoint *e, const char *addr, const uint8_t *expected_key,
                 const char *expected_name, const struct session_callbacks *cb, void *owner,
                 struct session **out);

/* The first session of a connected client of e, or NULL (also when e is NULL); the
 * others follow through session_next_of_client. */
struct session *session_find(const struct session_endpoint *e,
                             const uint8_t key[static QPC_KEY_LEN]);
struct session *session_next_of_client(const struct session *s);
/* Calls fn for every session of every connected client of e (none when e is NULL). fn
 * may send on the session but must not close or free one. */
void session_foreach_client(struct session_endpoint *e,
                            void (*fn)(struct session *s, void *arg), void *arg);

/*
 * Takes one token from s's bucket `which` at rate tokens per second and burst at most,
 * on the monotonic clock. A client's buckets belong to its KEY: every connection of that
 * key takes from the same ones, and they outlive its last connection by
 * SESSION_LINGER_S, so a client gets no more by opening many connections or by
 * reconnecting. False when the bucket is empty.
 */
bool session_take(struct session *s, enum session_rate which, double rate, double burst);

/* Packs m and queues it behind the replies before it; sends what is ready. A message
 * that cannot be packed (out of memory) is dropped: the peer's request times out. */
void session_send_message(struct session *s, const ProtobufCMessage *m);

/* Reserves the next place in s's reply order, or NULL when out of memory. The caller
 * must end it with exactly one session_reply_send or session_reply_cancel, even after
 * the session closed. */
struct session_reply *session_reply_reserve(struct session *s);
/* The session the reply is for, or NULL once it closed (the reply would go nowhere). */
struct session *session_reply_session(const struct session_reply *r);
/* Packs m into the reserved place, sends what is ready in order, frees r. When the
 * session closed or m cannot be packed, it is the same as session_reply_cancel. */
void session_reply_send(struct session_reply *r, const ProtobufCMessage *m);
/* Gives up the place (nothing is sent for it) and frees r. */
void session_reply_cancel(struct session_reply *r);

/*
 * Packs m and writes it to s's stream now, outside the reply order, for a caller that
 * keeps its own queue and resumes on on_writable (a federation link). Returns 0,
 * QPC_ERR_AGAIN (the stream is full), QPC_ERR_TOO_LARGE (above the frame limit),
 * QPC_ERR_CLOSED, QPC_ERR_NOT_FOUND (no stream yet) or QPC_ERR_NOMEM.
 */
int session_write_message(struct session *s, const ProtobufCMessage *m);

/* Queues one DATAGRAM (copied). 0 or the error of qpc_quic_conn_send_datagram. */
int session_send_datagram(struct session *s, const uint8_t *data, size_t len);

/* Closes the connection with an application code and reason (on_closed follows from
 * the top of the loop, so s stays valid until then). */
void session_close(struct session *s, uint64_t app_code, const char *reason);

#endif
