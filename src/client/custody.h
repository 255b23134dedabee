/*
 * custody.h: what this node is responsible for delivering, and what ends that.
 *
 * An envelope that leaves the node (mine, or one forwarded for someone else) is first
 * held: queued in the store (qpc_store, "held") and persisted in the outbox. Handing it
 * to a link moves it from the store into this table ("in flight"), recording the peer it
 * was handed to; an envelope taken out of the store without a link (handed to the
 * server, or its holder refused for now) stays here too, "parked", and goes out again on
 * the next link toward its recipient. Only an ack ends custody, and only an ack from the
 * peer it was handed to or from its recipient. Expiry is the other way out, and for my
 * own messages the recipient's verified receipt (custody_take): once it came, no copy
 * needs to travel any more.
 *
 * An ack is only the hop-by-hop signal: even the recipient's own ack says "stored", and
 * "delivered" is for its end-to-end receipt to say (receipts.h).
 *
 * Pure logic over plain state: no links are used (a link is an opaque tag here), no
 * clock is read (now is an argument), nothing is sent or persisted. The caller does
 * those with what these functions return.
 */
#ifndef QPC_CLIENT_CUSTODY_H
#define QPC_CLIENT_CUSTODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/proto.h"
#include "qpc/envelope.h"
#include "qpc/store.h"
#include "qpc/uthash_keyed.h"   /* ids are chosen by whoever builds the envelope */

struct link;   /* link.c; only compared here, never used */

/* One envelope out of the store and still in our custody. */
struct inflight {
    uint8_t id[QPC_ID_LEN];
    struct qpc_envelope env;           /* owned */
    uint8_t hop_peer[QPC_KEY_LEN];     /* the link peer it was last handed to */
    struct link *link;                 /* the link it went out on; NULL: parked, resend */
    bool mine;                         /* I am its sender (I tell the user what became of it) */
    bool server_only;                  /* parked for my server alone (a node domain): never
                                        * resent on a link, handed to the server again */
    unsigned refusals;                 /* refusals for now in a row (custody_retry_later) */
    uint64_t not_before_ms;            /* parked after a refusal: not resent before this */
    UT_hash_handle hh;
};

/* The in-flight table, by envelope id. */
struct custody {
    struct inflight *by_id;
    uint8_t me[QPC_KEY_LEN];
    size_t forwarded_bytes;            /* payload bytes of entries not mine (kept as they change) */
};

/* What an ack did to our custody of an envelope (custody_ack). */
enum custody_ack {
    CUSTODY_ACK_IGNORED = 0,   /* no such id in flight, or from a peer that may not end it */
    CUSTODY_ACK_RETRY,         /* its holder refused for now: kept, parked, sent again later */
    CUSTODY_ACK_RECIPIENT,     /* the recipient stored it: custody ends (its receipt says "delivered") */
    CUSTODY_ACK_HELD,          /* a holder (or the recipient, deferred) took it: custody ends */
    CUSTODY_ACK_REFUSED,       /* refused for good: custody ends */
};

/* An empty table for the node whose key is me. */
void custody_init(struct custody *c, const uint8_t me[static QPC_KEY_LEN]);

/* Frees every entry (custody ends without an answer: the outbox still has them). */
void custody_clear(struct custody *c);

/*
 * Takes env (moved: *env is zeroed) as handed to link l, whose peer is hop_peer. If the
 * id is already in the table, that entry is re-pointed and this copy is dropped. On out
 * of memory env is cleared (it stays in the outbox and comes back on restart).
 */
void custody_hand(struct custody *c, struct qpc_envelope *env, struct link *l,
                  const uint8_t hop_peer[static QPC_KEY_LEN]);

/* Takes env (moved) without a link: parked until a link toward its recipient is up. */
void custody_park(struct custody *c, struct qpc_envelope *env);

/* A parked entry f went out again on link l to hop_peer. */
void custody_resent(struct inflight *f, struct link *l, const uint8_t hop_peer[static QPC_KEY_LEN]);

/* Link l is gone: what went out on it is parked, to be sent again. */
void custody_link_gone(struct custody *c, const struct link *l);

/*
 * Applies the ack that peer `from` sent for id (id_len bytes) with status st. Only the
 * peer it was handed to or its recipient may end custody (ids travel in the clear
 * through relays and servers, so any other link could name one). QUEUE_FULL, INTERNAL
 * and RATE_LIMITED refuse for now: the entry is parked. OK from the recipient is the
 * recipient's; OK from the holder, or DEFERRED, is a hand-over; any other status refuses
 * for good. When custody ends the entry leaves the table and *ended receives it: the
 * caller owns it (custody_entry_free); otherwise *ended is NULL.
 */
enum custody_ack custody_ack(struct custody *c, const uint8_t from[static QPC_KEY_LEN],
                             const uint8_t *id, size_t id_len, Qpc__Status st,
                             struct inflight **ended);

/*
 * Takes the entry for id out of the table whatever its state (my message's receipt came:
 * no copy needs to go any more; a later ack for it is then ignored). Returns it (the
 * caller frees it with custody_entry_free) or NULL.
 */
struct inflight *custody_take(struct custody *c, const uint8_t id[static QPC_ID_LEN]);

/* Frees an entry the table gave up (custody_ack, custody_take). NULL is a no-op. */
void custody_entry_free(struct inflight *f);

/*
 * Removes every entry whose envelope has expired at now: nobody would accept it any
 * more. ended (may be NULL) sees each one before it is freed.
 */
void custody_expire(struct custody *c, uint64_t now,
                    void (*ended)(void *ctx, const struct inflight *f), void *ctx);

/* Calls fn for every parked entry that may go on a link (not server_only); fn may
 * custody_resent it but not add or remove entries. */
void custody_foreach_parked(struct custody *c, void (*fn)(void *ctx, struct inflight *f), void *ctx);

/* Calls fn for every entry parked for the server alone (server_only); fn may not add or
 * remove entries. */
void custody_foreach_for_server(struct custody *c, void (*fn)(void *ctx, struct inflight *f), void *ctx);

/* The entry for id, or NULL. */
struct inflight *custody_find(const struct custody *c, const uint8_t id[static QPC_ID_LEN]);

/* Entries in the table. */
size_t custody_count(const struct custody *c);

/*
 * Payload bytes of envelopes forwarded for others that are out of the store. The store
 * bounds what it holds; once taken out, strangers' envelopes would pile up here without
 * limit, so forwarding stops at the store's own limit (custody_may_forward).
 */
size_t custody_forwarded_bytes(const struct custody *c);

/* False once forwarded envelopes out of the store reach max_bytes: refuse more (QUEUE_FULL). */
bool custody_may_forward(const struct custody *c, size_t max_bytes);

/* Is anything held for key that a link to it would carry: queued in store, or parked
 * here without a link (and not for the server alone)? */
bool custody_waits_for(const struct custody *c, const struct qpc_store *store,
                       const uint8_t key[static QPC_KEY_LEN]);

/*
 * A refusal for now (CUSTODY_ACK_RETRY) parked f: it is not sent again before a delay
 * that doubles with each refusal in a row, from CUSTODY_RETRY_MIN_MS up to
 * CUSTODY_RETRY_MAX_MS, so a holder that keeps refusing (full, or only the recipient
 * itself may take it) is asked a bounded number of times per minute, never at the
 * speed of the link. A hand-over or a new link resets nothing: the next refusal of the
 * same envelope waits longer still.
 */
#define CUSTODY_RETRY_MIN_MS 1000u
#define CUSTODY_RETRY_MAX_MS 60000u
void custody_retry_later(struct inflight *f, uint64_t now);

/* May parked entry f go out again at now (its refusal delay is over)? */
bool custody_due(const struct inflight *f, uint64_t now);

/*
 * Split horizon for a forwarded envelope: may one that neighbour came_from handed me at
 * came_at (came_from NULL: from the server, or my own) go on to neighbour next_hop at
 * now? Not back to came_from (its route led here, and it gave up its copy on my ack:
 * the two of us would pass it to and fro, or, before the hold-again rule, drop it),
 * unless came_from is the recipient itself, or CUSTODY_SPLIT_HORIZON_MS have passed:
 * by then two rounds of announces have had time to correct the routes, and when the
 * way back is still the only one it must be taken rather than keep the message here
 * for good. It waits parked meanwhile, held.
 */
#define CUSTODY_SPLIT_HORIZON_MS 60000u
bool custody_may_send_to(const uint8_t *came_from, uint64_t came_at, uint64_t now,
                         const uint8_t next_hop[static QPC_KEY_LEN],
                         const uint8_t recipient[static QPC_KEY_LEN]);

#endif
