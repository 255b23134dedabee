/*
 * peers.h: the live state the node keeps per peer, and when it may be forgotten.
 *
 * A peer_state exists for every peer the node has to do with now: one it has links to,
 * dials, reaches through the relay, or holds messages for. It carries the links
 * (link.c) and where the way to the peer stands (dial.c's race: candidates, deadlines,
 * the punch budget, back-off, relay path). What the node *knows* for good of a peer
 * (addresses it proved, name, routes) is in the directory and routing table, not here,
 * so forgetting an idle peer_state loses nothing; what a server or a stranger merely
 * told us (candidates in a punch notice) lives only here, so it never displaces a
 * contact in the saved directory.
 *
 * Pure logic over plain state: no sockets, no loop is run (the race's timer is only
 * embedded here; dial.c arms it).
 */
#ifndef QPC_CLIENT_PEERS_H
#define QPC_CLIENT_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "candidates.h"
#include "custody.h"
#include "punch.h"
#include "qpc/encoding.h"
#include "qpc/log.h"
#include "qpc/store.h"
#include "qpc/uthash_keyed.h"   /* peer keys are free to mint */

#define PEERS_GC_ABOVE 1024    /* idle peer states are forgotten above this many */

struct client;
struct link;
struct qpc_quic_relay;

struct peer_state {
    uint8_t key[QPC_KEY_LEN];
    struct client *cl;
    struct link *links;                /* every connection to the peer (link.c's list) */
    /* the race (dial.c): times in ms on now_ms()'s clock, 0 = not due */
    bool reaching;                     /* something waits: paths race until one carries it */
    bool relay_on_answer;              /* a redial asked peer_info: the relayed path is
                                        * dialled only if the answer says online */
    ev_timer timer;                    /* the race's next deadline (dial.c arms it) */
    uint64_t race_deadline_ms;         /* no path by then: the server holds what waits */
    uint64_t headstart_until_ms;       /* relayed links carry nothing before this while a
                                        * coordinated direct attempt runs */
    uint64_t headstart_from_ms;        /* when that head start began (it has a cap) */
    uint64_t own_dial_ms;              /* dial far candidates at normal TTL then */
    uint64_t session_wait_ms;          /* no server session by then: dial them uncoordinated */
    uint64_t punch_asked_ms;           /* last punch asked at the server (time to direct) */
    uint64_t punch_failed_digest;      /* a punch for these addresses ended without direct */
    struct punch_peer punch;           /* attempts for the current addresses (punch.c) */
    struct candidates cands;           /* what the peer says it has: server, link, mDNS */
    bool nat_remaps;                   /* its server sees it on another port than it listens
                                        * on: a NAT that does not keep ports (symmetric?) */
    bool stranger;                     /* made for a key we knew nothing of (bounded) */
    struct qpc_quic_relay *relay;      /* path through our server, when made */
    uint64_t relay_used_ms;            /* last packet on it (idle relay paths are freed) */
    uint64_t next_dial_ms;             /* redial of a waiting recipient not before this */
    uint32_t backoff_ms;
    uint64_t next_direct_try_ms;       /* while relayed, next direct attempt */
    int dialing;                       /* outgoing direct connects not yet settled */
    bool was_relayed;                  /* last link up went through the relay */
    struct qpc_log_limit garbage_log;  /* its garbage on any link: one line per interval */
    UT_hash_handle hh;
};

/* Peers by key. */
struct peer_table {
    struct peer_state *by_key;
    struct client *cl;                           /* every peer_state's owner */
    void (*on_timer)(struct ev_loop *loop, ev_timer *w, int revents);   /* dial.c */
    uint32_t backoff_start_ms;                   /* first redial back-off */
};

/*
 * An empty table. New peer states point at cl, have their timer set to call on_timer
 * (w->data is the peer_state) and start their back-off at backoff_start_ms.
 */
void peers_init(struct peer_table *t, struct client *cl,
                void (*on_timer)(struct ev_loop *loop, ev_timer *w, int revents),
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

/* What the duplicate rule needs to know of one link (link.c fills it). */
struct link_facts {
    bool initiated;                    /* we dialled it */
    uint64_t up_ms;                    /* when it came up */
    uintptr_t tie;                     /* breaks a tie of up_ms (any value unique per link) */
};

/*
 * One link per pair: of two up links of one kind to one peer process, which goes?
 * Crossed (one dialled by each side): the one the larger key dialled, so both sides drop
 * the same one and the smaller key's stays; both mine: the older (a link whose goodbye
 * was lost while its path was down looks up but carries nothing); both the peer's:
 * neither (the peer decides). Returns 0
 * (keep both for now), 1 (drop a) or 2 (drop b). i_am_smaller: my key is the smaller.
 */
int peers_duplicate_drop(const struct link_facts *a, const struct link_facts *b, bool i_am_smaller);

/* Peer states made for strangers (stranger set) that no handshake has proved yet. */
size_t peers_strangers(const struct peer_table *t);

/*
 * True when nothing needs ps: no link (even one still connecting), no relay path, no
 * dial in progress, no race timer armed or pending, nothing held or parked for it.
 */
bool peers_idle(const struct peer_state *ps, const struct custody *c, const struct qpc_store *store);

/*
 * Forgets idle peer states (peers_idle): those made for strangers always (their number
 * is capped, so an idle one must make room), the others once there are more than
 * PEERS_GC_ABOVE: connections and envelopes for made-up recipients each create one, so
 * without this the table only grows. Returns how many were forgotten.
 */
size_t peers_gc(struct peer_table *t, const struct custody *c, const struct qpc_store *store);

#endif
