/*
 * client.h: the one state a qpc process shares between its files, and the words they
 * share (exit codes, paths, events). Each file has its own header for its functions.
 *
 * One process, one libev loop, one `struct client`. The files, top to bottom (a file
 * calls only files below it; docs/architecture.md draws the graph):
 *   main.c      subcommand table, options, exit codes, the locale
 *   repl.c      the interactive REPL, its command table and completion
 *   share.c     my identity as the qpc: text and a QR code
 *   discover.c  mDNS: browsing for nodes and peers, announcing this peer
 *   node.c      the P2P node's face: start/stop, the QUIC endpoint's callbacks, the
 *               calls main, repl and discover make; composes the files below
 *   tick.c      the periodic jobs, each named, in one timer
 *   receive.c   what arrives on a link or from the server: verify, show, forward, acks
 *   flood.c     broadcasts: pass on to every other link and the server, replay live ones
 *   dial.c      reaching a peer: its candidates and the relay raced, hole punches
 *               coordinated by the server, back-off, the move to a direct path
 *   handover.c  custody in motion: hold, hand held envelopes to the link toward their
 *               recipient, or to the server when P2P gives up
 *   link.c      P2P links (ALPN quicprochat/p2p/1): one QUIC connection each, the frames
 *               on it, the best link toward a peer or recipient
 *   session.c   the connection to a qpc-server (ALPN quicprochat/client/1); reports up
 *               through callbacks set once (session.h)
 *   turn.c      what ends every loop turn: owed receipts sealed, one commit, then acks
 *   state.c     data directory: identity file, persisted outbox (group commit), seen ids,
 *               subscriptions
 *   output.c    events shown to the user: plain lines, JSON lines, or above the prompt
 *   history.c   messages.db: every message sent and received, times and outcomes
 *   lineedit.c  the line editor: libedit's own API on the loop, fed by us
 *   contacts.c  who is meant: names, id prefixes, the qpc: text form                (*)
 *   announce.c  my signed announces, and others' passed on: dedup, rate, hop limit
 *   route_state.c  routes.db: the routing table and my announce seqno across restarts
 *   routes.c    what is learned of where peers are, from links, servers, mDNS, announces,
 *               envelopes (*)
 *   peers.c     live per-peer state and its garbage collection                         (*)
 *   candidates.c address candidates: mine, and the checks on everyone else's            (*)
 *   punch.c     how much punching anyone can make us do                               (*)
 *   custody.c   the in-flight table: which acks end custody, parking, expiry, bounds  (*)
 *   receipts.c  end-to-end receipts: what I wait for, what I owe                        (*)
 * (*) qpc-client-core: none owns a socket, an endpoint or a loop, and time is an
 *     argument; routes, peers, custody, receipts and contacts are unit-tested
 *     (tests/test_client_*.c).
 * Everything runs on the loop; nothing blocks except the one SQLite commit of the outbox
 * per loop turn (state.c, turn.c) and the history's one commit per turn (history.c,
 * output.c).
 */
#ifndef QPC_CLIENT_H
#define QPC_CLIENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "qpc/broadcast.h"
#include "qpc/broadcast_batch.h"
#include "settings.h"
#include "qpc/envelope.h"
#include "qpc/identity.h"
#include "qpc/queue.h"
#include "qpc/quic.h"
#include "qpc/route.h"
#include "qpc/store.h"

#include "candidates.h"
#include "custody.h"
#include "peers.h"
#include "punch.h"
#include "receipts.h"
#include "qpc/uthash_keyed.h"   /* every client table is keyed: most keys come from strangers */

/* Exit codes of the subcommands (docs/client.md). */
enum qpc_exit {
    EXIT_OK = 0,           /* done; for send: the recipient's verified receipt came */
    EXIT_FAIL = 1,         /* runtime failure (network, I/O) */
    EXIT_USAGE = 2,        /* wrong arguments */
    EXIT_QUEUED = 3,       /* send: no receipt yet; held (outbox, a server, a neighbour) */
    EXIT_NO_PEER = 4,      /* peer id unknown or ambiguous */
    EXIT_STATE = 5,        /* state file corrupt or unreadable (left untouched) */
    EXIT_REFUSED = 6,      /* server or peer refused (pinned key mismatch, status) */
};

/*
 * The largest message text, direct or broadcast: 64 KiB. Far below every frame limit and
 * the servers' default max_envelope_size (256 KiB) with the sealing overhead, so a
 * message that is accepted fits every path. Longer text is refused whole, never cut.
 */
#define MESSAGE_TEXT_MAX 65536
/* The longest line the REPL takes (a command and its message); longer ones are dropped. */
#define LINE_MAX_BYTES (4 * MESSAGE_TEXT_MAX)

/* How a message travelled. */
enum path_kind {
    PATH_DIRECT = 0,
    PATH_RELAYED,          /* P2P QUIC carried through a server's DATAGRAM relay */
    PATH_SERVER,           /* queued at a server and fetched from it */
    PATH_MESH,             /* on a P2P link from a neighbour that forwarded it */
};

/* Events shown to the user (output.c) and watched by subcommands. */
enum event_kind {
    EVT_MESSAGE,           /* a direct message for me arrived */
    EVT_BROADCAST,         /* a broadcast on a subscribed topic arrived */
    EVT_DELIVERED,         /* the recipient's verified receipt for my message came */
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
    uint64_t elapsed_ms;   /* delivered: from the message's creation to its receipt */
    int err;               /* for refused/failed */
    uint64_t sent_ms;      /* message/broadcast: the envelope's created_at (sender's clock) */
};

enum out_mode {
    OUT_PLAIN = 0,         /* one line per event on stdout */
    OUT_JSON,              /* one JSON object per line */
    OUT_REPL,              /* printed above the line being edited */
};

struct persisted;          /* envelope id -> outbox row (state.c) */
struct after_commit;       /* what waits for the next commit (state.c) */
struct session;            /* the server connection (session.c) */
struct session_callbacks;  /* how the session reports up (session.h) */
struct discover;           /* mDNS browser and announcement (discover.c) */
struct qpc_resolver;       /* name lookups on the loop (qpc/resolve.h) */
struct dial_lookup;        /* a peer's typed name being looked up (dial.c) */
struct history;            /* the message history (history.c) */
struct announcer;          /* my announces and the ones passed on (announce.c) */
struct route_state;        /* routes.db: the routing table across restarts (route_state.c) */
struct homes;              /* peers' home node domains (homes.c) */

struct client {
    int kind;                            /* 0; a struct link starts with a nonzero kind, so
                                          * a QUIC user pointer tells which it is (link.h) */
    struct ev_loop *loop;
    struct qpc_config *cfg;
    const struct client_settings *cc;
    char data_dir[PATH_MAX];
    char identity_path[PATH_MAX];
    struct qpc_identity *id;
    bool id_dirty;                       /* directory changed: save on tick/exit */
    uint64_t id_saved_mono_ms;           /* when identity.json was last written */
    uint8_t id_saved_hash[32];           /* of what was written (or loaded) then */

    /* state.c */
    struct qpc_queue *outbox;            /* persisted envelopes held for others */
    struct persisted *persisted;
    struct after_commit *after_head, *after_tail;
    bool outbox_unloaded;                /* rows the store could not take wait on disk */
    uint64_t refill_after;               /* every row up to this oid is loaded or held */
    size_t refill_mark;                  /* store envelopes when the last refill ran */
    FILE *seen_log;                      /* ids delivered to me, appended */
    struct receipts receipts;            /* receipts.c: waited for, owed */
    struct history *history;             /* messages.db (history.c); NULL: none */

    /* the P2P node (node.c and the files below it) */
    struct qpc_box_cache *box;
    struct qpc_store *store;             /* held envelopes and the dedup set (state.c makes it) */
    struct qpc_route_table *routes;      /* routes.c learns into it; route_state.c keeps it */
    struct route_state *route_state;
    struct homes *homes;                 /* homes.c: peers' node domains from their announces
                                          * (route_state.c makes it and keeps it) */
    struct announcer *ann;               /* announce.c */
    struct qpc_channel_set *channels;
    struct qpc_quic_endpoint *ep;
    struct qpc_resolver *resolver;       /* names looked up without blocking (made at the
                                          * first name dialled; freed by node_stop) */
    struct dial_lookup *lookups;         /* dial.c: peer names being looked up */
    struct peer_table peers;             /* peers.c */
    struct custody custody;              /* custody.c: in flight and parked */
    struct verify_pool *verify;          /* verify.c: link envelopes' signatures off the
                                          * loop; NULL: checked inline */
    struct qpc_batch_vouches *vouches;   /* flood.c: what verified broadcast batches vouch
                                          * for (broadcast_batch.h); NULL: no mesh */
    struct flood_burst {                 /* flood.c: my broadcasts of this loop turn, encoded,
                                          * sent at its end under one batch signature */
        size_t n;
        uint8_t *bufs[QPC_BATCH_MAX];
        size_t lens[QPC_BATCH_MAX];
        uint8_t digests[QPC_BATCH_MAX][QPC_ID_LEN];
    } burst;
    struct {                             /* flood.c, receive.c: for /mesh store */
        uint64_t sent, taken, refused;   /* batches I signed; verified from links; refused */
        uint64_t by_hash;                /* broadcasts checked by hash instead of Ed25519 */
    } batches;
    uint64_t bcast_copies_passed;        /* flood.c: later broadcast copies that came by
                                          * fewer hops and went on (/mesh store) */
    uint16_t listen_port;
    char listen_text[QPC_ADDRESS_MAX + 1];

    /* paths (dial.c): what peers may try for me, and what punching may cost */
    struct candidates my_cands;          /* interfaces, then my server's view of me */
    struct local_nets nets;              /* my subnets, read with my candidates */
    char server_observed[CANDIDATE_TEXT_MAX];   /* "" until my server says */
    uint64_t instance;                   /* random per process: tells duplicate links */
    bool allow_loopback;                 /* one-host setup: loopback candidates are fine */
    struct punch_budget punch;
    uint64_t next_cands_ms;              /* when my candidates are gathered again */

    /* tick.c: the periodic jobs; turn.c: the end of every loop turn */
    ev_timer tick;
    ev_prepare turn;
    ev_prepare shown;                    /* output.c: the turn's history commit, then its lines */
    uint64_t last_gc_ms;                 /* when the collect-garbage job last ran */

    struct session *session;
    struct session *session_trial;       /* a server being tried beside the session (session.c) */
    const struct session_callbacks *session_cb;   /* set once by node_start (session.h) */
    struct discover *discover;

    enum out_mode out_mode;
    bool stop;                           /* SIGINT/SIGTERM: every wait loop ends */
    bool closing;                        /* node_shutdown/node_stop: start nothing new */
    void (*on_interrupt)(struct client *cl);   /* set: SIGINT calls it instead (the REPL) */
    /* A subcommand's watcher: sees every event after it is shown. */
    void (*watch)(struct client *cl, const struct event *ev);
    void *watch_arg;
};

#endif
