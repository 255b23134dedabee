/*
 * client.h: the parts of qpc (the client) and how they share one state.
 *
 * One process, one libev loop, one `struct client`. The files split by concern:
 *   main.c     subcommand table, options, exit codes
 *   state.c    data directory: identity file, persisted outbox, seen ids, subscriptions
 *   node.c     the P2P node: QUIC endpoint (ALPN quicprochat/p2p/1), links to peers,
 *              sending with end-to-end acks, receiving, store-and-forward, flooding,
 *              relay fallback, routing table
 *   session.c  the connection to a qpc-server (ALPN quicprochat/client/1)
 *   discover.c mDNS: browsing for nodes and peers, announcing this peer
 *   output.c   events shown to the user: plain lines, JSON lines, or above the prompt
 *   repl.c     the interactive REPL (libedit), its command table and completion
 * Everything runs on the loop; nothing blocks except the short synchronous SQLite
 * commits of the outbox.
 */
#ifndef QPC_CLIENT_H
#define QPC_CLIENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include <uthash.h>

#include "qpc/broadcast.h"
#include "settings.h"
#include "qpc/envelope.h"
#include "qpc/identity.h"
#include "qpc/queue.h"
#include "qpc/quic.h"
#include "qpc/route.h"
#include "qpc/store.h"

/* Exit codes of the subcommands (docs/client.md). */
enum qpc_exit {
    EXIT_OK = 0,           /* done; for send: delivered end to end */
    EXIT_FAIL = 1,         /* runtime failure (network, I/O) */
    EXIT_USAGE = 2,        /* wrong arguments */
    EXIT_QUEUED = 3,       /* send: not delivered yet, held (outbox and/or server) */
    EXIT_NO_PEER = 4,      /* peer id unknown or ambiguous */
    EXIT_STATE = 5,        /* state file corrupt or unreadable (left untouched) */
    EXIT_REFUSED = 6,      /* server or peer refused (pinned key mismatch, status) */
};

/* How a message travelled. */
enum path_kind {
    PATH_DIRECT = 0,
    PATH_RELAYED,          /* P2P QUIC carried through a server's DATAGRAM relay */
    PATH_SERVER,           /* queued at a server and fetched from it */
};

/* Events shown to the user (output.c) and watched by subcommands. */
enum event_kind {
    EVT_MESSAGE,           /* a direct message for me arrived */
    EVT_BROADCAST,         /* a broadcast on a subscribed topic arrived */
    EVT_DELIVERED,         /* the recipient acked my message */
    EVT_HELD,              /* a relay node or server stored my message for later delivery */
    EVT_QUEUED,            /* nobody reachable: kept in my outbox */
    EVT_FAILED,            /* sending failed for good (refused) */
    EVT_INFO,              /* a line of information */
    EVT_REFUSED_ENVELOPE,  /* an incoming envelope was refused (forged, expired...) */
};

struct event {
    enum event_kind kind;
    const uint8_t *peer;   /* sender (message) or recipient (delivered/held/queued) */
    const uint8_t *id;     /* envelope id */
    const char *topic;     /* broadcast */
    const char *text;      /* message text, info line, or reason */
    size_t text_len;
    enum path_kind path;
    const char *via;       /* server address or relay peer id, or NULL */
    uint32_t hops;
    int err;               /* for refused/failed */
};

enum out_mode {
    OUT_PLAIN = 0,         /* one line per event on stdout */
    OUT_JSON,              /* one JSON object per line */
    OUT_REPL,              /* printed above the line being edited */
};

struct link;               /* one QUIC connection to a peer (node.c) */
struct peer_state;         /* what the node knows live about one peer (node.c) */
struct inflight;           /* sent, waiting for its ack (node.c) */
struct persisted;          /* envelope id -> outbox row (state.c) */
struct session;            /* the server connection (session.c) */
struct discover;           /* mDNS browser and announcement (discover.c) */

struct client {
    int kind;                            /* 0; a struct link starts with a nonzero kind, so
                                          * a QUIC user pointer tells which it is */
    struct ev_loop *loop;
    struct qpc_config *cfg;
    const struct client_settings *cc;
    char data_dir[PATH_MAX];
    char identity_path[PATH_MAX];
    struct qpc_identity *id;
    bool id_dirty;                       /* directory changed: save on tick/exit */

    /* state.c */
    struct qpc_queue *outbox;            /* persisted envelopes held for others */
    struct persisted *persisted;
    FILE *seen_log;                      /* ids delivered to me, appended */

    /* node.c */
    struct qpc_box_cache *box;
    struct qpc_store *store;
    struct qpc_route_table *routes;
    struct qpc_channel_set *channels;
    struct qpc_quic_endpoint *ep;
    struct peer_state *peers;
    struct inflight *inflight;
    ev_timer tick;
    uint16_t listen_port;
    char listen_text[QPC_ADDRESS_MAX + 1];

    struct session *session;
    struct discover *discover;

    enum out_mode out_mode;
    bool stop;                           /* SIGINT/SIGTERM: every wait loop ends */
    /* A subcommand's watcher: sees every event after it is shown. */
    void (*watch)(struct client *cl, const struct event *ev);
    void *watch_arg;
};

/* ---- time ---- */
uint64_t now_ms(void);

/* ---- state.c ---- */
/* Loads or creates the identity and opens the outbox; errors go to err. Returns an exit code. */
int state_open(struct client *cl, bool create, char *err, size_t errlen);
void state_close(struct client *cl);
/* Saves the identity file if the directory changed. */
int state_save_identity(struct client *cl);
/* Persists a held envelope (committed before return). 0 or a QPC_ERR_*. */
int state_persist(struct client *cl, const struct qpc_envelope *env, uint64_t now);
/* Forgets a persisted envelope after it was acked. Unknown ids are ignored. */
void state_unpersist(struct client *cl, const uint8_t id[static QPC_ID_LEN]);
/* Loads every persisted envelope into the store. Returns how many. */
int state_load_outbox(struct client *cl, uint64_t now);
/* Remembers (on disk) that an envelope for me was shown, so it is never shown twice. */
void state_mark_delivered(struct client *cl, const struct qpc_envelope *env, uint64_t now);
/* Subscriptions file: loads into cl->channels / saves it. */
int state_load_subscriptions(struct client *cl, char *err, size_t errlen);
int state_save_subscriptions(struct client *cl);
/* Remembers the text of a private channel key (NULL: forget) for the subscriptions file. */
void state_remember_key_text(const char *topic, const char *key_text);

/* ---- node.c ---- */
int node_start(struct client *cl, bool listen, char *err, size_t errlen);
void node_stop(struct client *cl);
/* Sends text to peer (E2E encrypted, signed). id_out receives the envelope id. */
int node_send_text(struct client *cl, const uint8_t peer[static QPC_KEY_LEN], const char *text,
                   uint8_t id_out[static QPC_ID_LEN]);
int node_broadcast(struct client *cl, const char *topic, const char *text,
                   uint8_t id_out[static QPC_ID_LEN]);
/* Hands in an encoded envelope that arrived from a server (push or fetch). */
void node_input_from_server(struct client *cl, const uint8_t *buf, size_t len, const char *server);
/* A peer was seen at address (mDNS, server): dial it if something is waiting for it. */
void node_peer_seen(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const char *addr,
                    enum qpc_peer_source src);
/*
 * A peer announced itself on mDNS with key at addr: a claim, not a proof. Notes it in the
 * directory and routing table where that cannot displace verified knowledge, and dials
 * it (expecting key in the TLS handshake) if anything is held for it, or to make a mesh
 * link when my key is the smaller one.
 */
void node_peer_discovered(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const char *addr);
/* Dials every directory peer with an address (mesh links). */
void node_dial_known(struct client *cl);
/* A relayed QUIC packet from peer key came in through the server. */
void node_relay_input(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                      const uint8_t *pkt, size_t len);
/* The server session went up or down (relay paths through it end when it goes). */
void node_session_changed(struct client *cl, bool up);
/* Prints the link list for /mesh peers. */
void node_describe_links(struct client *cl);
size_t node_link_count(const struct client *cl);
bool node_peer_connected(const struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
const char *path_name(enum path_kind p);

/* ---- session.c ---- */
int session_connect(struct client *cl, const char *address, char *err, size_t errlen);
void session_close(struct client *cl);
bool session_up(const struct client *cl);
const char *session_address(const struct client *cl);
/* Enqueues an envelope at the server for recipient (domain "" = the server's own). */
int session_enqueue(struct client *cl, const struct qpc_envelope *env, const char *domain);
/* Hands a broadcast envelope (already hopped) to the server to flood on. 0 when sent. */
int session_broadcast(struct client *cl, const struct qpc_envelope *env);
/* Sends one relayed QUIC packet to peer key. 0 or nonzero when dropped. */
int session_relay_send(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                       const uint8_t *pkt, size_t len);
/* Asks the server where peer key is (answers go to node_peer_seen). */
void session_peer_info(struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
bool session_owns_conn(const struct client *cl, const struct qpc_quic_conn *conn);
/* Returns 0 to accept the server, nonzero to refuse it (pinned key mismatch). */
int session_on_connected(struct client *cl, struct qpc_quic_conn *conn, const uint8_t *key);
void session_on_frame(struct client *cl, struct qpc_quic_conn *conn, const uint8_t *d, size_t n);
void session_on_datagram(struct client *cl, const uint8_t *d, size_t n);
void session_on_closed(struct client *cl, const struct qpc_quic_close_info *info);

/* ---- discover.c ---- */
/* Browses for nodes and peers; announces this peer too when the node listens (cl->ep). */
int discover_start(struct client *cl, char *err, size_t errlen);
void discover_stop(struct client *cl);
/* Prints the nodes and peers seen (for /mesh peers). Returns how many. */
size_t discover_print(struct client *cl);
/* How long `qpc send` looks on mDNS for a peer id not in the directory. */
#define DISCOVER_WAIT_S 5.0
/* Hex digits a typed prefix needs to pick a peer known only from mDNS (64 bits: a
 * stranger cannot make a key that matches, as a short prefix can be matched by grinding). */
#define DISCOVER_PREFIX_MIN 16
/* False when typed text picked p by a prefix too short for a peer known only from mDNS. */
bool discover_prefix_trusted(const struct qpc_peer *p, const char *typed);

/* ---- output.c ---- */
void emit(struct client *cl, const struct event *ev);
void info(struct client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a line on stdout (plain) or above the prompt (REPL). */
void say(struct client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void short_id(char out[static 13], const uint8_t key[static QPC_KEY_LEN]);
/* Called by repl.c to take over printing. */
void output_set_repl(bool on);
/* While a typed command runs, lines are printed plainly (libedit redraws the prompt after). */
void output_set_in_command(bool on);

#endif
