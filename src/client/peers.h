/*
 * peers.h: the live state the node keeps per peer, and when it may be forgotten.
 *
 * A peer_state exists for every peer the node has to do with now: one it has links to,
 * dials, reaches through the relay, or holds messages for. It carries the links
 * (link.c) and where the way to the peer stands (dial.c's ladder: phase, fallback timer,
 * back-off, relay path). What the node *knows* of a peer (addresses, name, routes) is
 * in the directory and routing table, not here, so forgetting an idle peer_state loses
 * nothing.
 *
 * Pure logic over plain state: no sockets, no loop is run (the fallback timer is only
 * embedded here; dial.c arms it).
 */
#ifndef QPC_CLIENT_PEERS_H
#define QPC_CLIENT_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "custody.h"
#include "qpc/encoding.h"
#include "qpc/store.h"
#include "qpc/uthash_keyed.h"   /* peer keys are free to mint */

#define PEERS_GC_ABOVE 1024    /* idle peer states are forgotten above this many */

struct client;
struct link;
struct qpc_quic_relay;

/* Where the way to a peer stands (dial.c): direct dials, then the relay, then held. */
enum peer_phase { PH_IDLE = 0, PH_DIRECT, PH_RELAY, PH_HELD };

struct peer_state {
    uint8_t key[QPC_KEY_LEN];
    struct client *cl;
    struct link *links;                /* every connection to the peer (link.c's list) */
    enum peer_phase phase;
    ev_timer fallback;                 /* direct -> relay -> server (dial.c) */
    struct qpc_quic_relay *relay;      /* path through our server, when made */
    uint64_t next_dial_ms;             /* redial of a waiting recipient not before this */
    uint32_t backoff_ms;
    uint64_t next_direct_try_ms;       /* while relayed, next direct dial */
    int dialing;                       /* outgoing direct connects not yet settled */
    bool was_relayed;                  /* last link up went through the relay */
    UT_hash_handle hh;
};

/* Peers by key. */
struct peer_table {
    struct peer_state *by_key;
    struct client *cl;                           /* every peer_state's owner */
    void (*on_fallback)(struct ev_loop *loop, ev_timer *w, int revents);   /* dial.c */
    uint32_t backoff_start_ms;                   /* first redial back-off */
};

/*
 * An empty table. New peer states point at cl, have their fallback timer set to call
 * on_fallback (w->data is the peer_state) and start their back-off at backoff_start_ms.
 */
void peers_init(struct peer_table *t, struct client *cl,
                void (*on_fallback)(struct ev_loop *loop, ev_timer *w, int revents),
                uint32_t backoff_start_ms);

/* Frees every peer state, stopping its timer on loop (may be NULL: none was started). */
void peers_clear(struct peer_table *t, struct ev_loop *loop);

/* The state of key, or NULL. */
struct peer_state *peers_find(const struct peer_table *t, const uint8_t key[static QPC_KEY_LEN]);

/* The state of key, made if there is none. NULL only when out of memory. Owned by t. */
struct peer_state *peers_get(struct peer_table *t, const uint8_t key[static QPC_KEY_LEN]);

/* Peer states in the table. */
size_t peers_count(const struct peer_table *t);

/* Walks the table: NULL gives the first; do not add or remove while walking. */
struct peer_state *peers_next(const struct peer_table *t, const struct peer_state *prev);

/*
 * True when nothing needs ps: no link (even one still connecting), no relay path, no
 * dial in progress, no fallback timer armed or pending, nothing held or parked for it.
 */
bool peers_idle(const struct peer_state *ps, const struct custody *c, const struct qpc_store *store);

/*
 * Forgets idle peer states (peers_idle) once there are more than PEERS_GC_ABOVE:
 * strangers (connections, envelopes for made-up recipients) each create one, so without
 * this the table only grows. Returns how many were forgotten.
 */
size_t peers_gc(struct peer_table *t, const struct custody *c, const struct qpc_store *store);

#endif
