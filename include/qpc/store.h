/*
 * store.h: MeshStore, the in-memory store-and-forward queue of a node or client.
 *
 * It holds envelopes for recipients that cannot be reached now and hands them over
 * when the recipient appears. Beside the queues it keeps the dedup set: the ids of
 * every envelope this node has seen, stored or merely relayed, so loops and replays
 * are refused before anyone spends a signature verification on them.
 *
 * The one idea: an id enters the dedup set when the store accepts an envelope (or a
 * relay calls qpc_store_mark_seen) and stays there until
 *     max(envelope expiry, time of marking + dedup window),
 * which is at least as long as any envelope carrying that id can still be valid, so a
 * copy arriving later over another path is always recognised. Taking or expiring an
 * envelope removes it from its queue but never from the dedup set, with one exception:
 * the dedup set is bounded. Ids whose envelope is not held (taken, expired, or only
 * marked seen) are at most max_seen; when one more arrives, the one that has been in
 * that state longest is forgotten (see docs/store.md for why this is safe enough).
 * Ids of envelopes still held are never forgotten; max_bytes bounds them.
 *
 * Queues: direct envelopes (has_recipient) queue per recipient key; broadcast envelopes
 * (no recipient, a topic) queue per topic. A direct queue is drained by
 * qpc_store_take_all_for when the recipient appears. A broadcast is meant for everyone,
 * so handing it to one peer must not remove it: qpc_store_foreach_broadcast shows the
 * live broadcasts to forward to a newly met peer and they stay until they expire
 * (or qpc_store_take_topic removes them). Both kinds share the per-queue capacity and
 * the global byte cap. Within a queue envelopes are kept oldest first by created_at_ms
 * (ties in arrival order).
 *
 * Pure logic: every function that depends on time takes now_ms (milliseconds since
 * the Unix epoch); nothing does I/O. Not thread-safe: one store per event loop.
 * Persistence (SQLite) is the job of the server's durable queue, not of this module.
 */
#ifndef QPC_STORE_H
#define QPC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "qpc/envelope.h"

#define QPC_STORE_PER_QUEUE_DEFAULT 1000u              /* envelopes per recipient/topic */
#define QPC_STORE_MAX_BYTES_DEFAULT (32u * 1024 * 1024) /* sum of qpc_envelope_mem_size */
#define QPC_STORE_DEDUP_WINDOW_MIN_MS ((uint64_t)QPC_TTL_MAX_S * 1000u)
#define QPC_STORE_MAX_SEEN_DEFAULT 1000000u             /* dedup entries without an envelope */

struct qpc_store;

struct qpc_store_limits {
    uint32_t per_queue;         /* envelopes queued per recipient (or topic); 0 = default */
    size_t max_bytes;           /* cap on the sum of qpc_envelope_mem_size; 0 = default */
    uint64_t dedup_window_ms;   /* raised to QPC_STORE_DEDUP_WINDOW_MIN_MS if smaller */
    size_t max_seen;            /* cap on dedup entries of ids whose envelope is not held
                                 * (~130 bytes each); 0 = QPC_STORE_MAX_SEEN_DEFAULT. When
                                 * full, adding one forgets the oldest (dedup_evicted). */
};

struct qpc_store_stats {
    /* what is held now (expired envelopes count until gc or take drops them) */
    size_t envelopes;
    size_t bytes;               /* sum of qpc_envelope_mem_size of held envelopes */
    size_t recipients;          /* direct queues */
    size_t topics;              /* broadcast queues */
    size_t dedup_entries;       /* ids in the dedup set, held envelopes included */
    /* totals since qpc_store_new */
    uint64_t put;               /* envelopes accepted by qpc_store_put */
    uint64_t refused_duplicate;
    uint64_t refused_expired;
    uint64_t refused_queue_full;
    uint64_t refused_store_full;
    uint64_t expired;           /* held envelopes dropped because their TTL ended */
    uint64_t forwarded;         /* envelopes handed out by a take */
    uint64_t dedup_dropped;     /* dedup entries removed by gc */
    uint64_t dedup_evicted;     /* dedup entries forgotten early because max_seen was hit */
};

/* One queue as shown by qpc_store_foreach_queue; pointers are valid during the call. */
struct qpc_store_queue_info {
    const uint8_t *recipient;        /* QPC_KEY_LEN bytes, or NULL for a broadcast topic */
    const char *topic;               /* the topic, or NULL for a direct queue */
    size_t count;
    size_t bytes;
    uint64_t oldest_created_at_ms;   /* created_at_ms of the first envelope */
};

/*
 * Called by the take functions once per live envelope, oldest first. env points into
 * the store. Return 0 to accept it: the callback then owns env's topic and payload and
 * must move the struct out (`*mine = *env;`) or qpc_envelope_clear() it before
 * returning; the store forgets the envelope (its id stays in the dedup set). Return
 * non-zero to refuse it (e.g. the send failed): the envelope and every one after it
 * stay queued, untouched, and the take stops. The callback may call qpc_store_seen,
 * qpc_store_mark_seen and qpc_store_get_stats on the same store, but no function that
 * adds or removes queued envelopes.
 */
typedef int (*qpc_store_take_fn)(void *ctx, struct qpc_envelope *env);

/* Called by qpc_store_foreach_broadcast; return non-zero to stop. env stays the store's. */
typedef int (*qpc_store_visit_fn)(void *ctx, const struct qpc_envelope *env);

/* Called by qpc_store_foreach_queue; return non-zero to stop. */
typedef int (*qpc_store_queue_fn)(void *ctx, const struct qpc_store_queue_info *queue);

/*
 * Creates an empty store. limits may be NULL (all defaults); it is copied. Returns NULL
 * when memory or libsodium initialisation (for the keyed hash of the tables) fails.
 * Free with qpc_store_free.
 */
struct qpc_store *qpc_store_new(const struct qpc_store_limits *limits);

/* Frees the store, every envelope it holds and the dedup set. NULL is a no-op. */
void qpc_store_free(struct qpc_store *store);

/*
 * Queues env for its recipient (direct) or topic (broadcast) and records its id in the
 * dedup set. env->id must already be set (by sign or decode); the store does not verify.
 * The id of a held envelope is never evicted by the max_seen bound; once the envelope
 * is taken or expires its id counts against max_seen like a marked one.
 *
 * Ownership: on success the store owns everything env owned; the caller's struct is
 * moved into the store and zeroed (the caller must not free topic/payload; clearing
 * the zeroed struct again is harmless). On any error env is untouched and still the
 * caller's, and the dedup set is unchanged, so a refused envelope may be offered again.
 *
 * Checks, in this order:
 *   QPC_ERR_INVALID     env has neither a recipient nor a topic
 *   QPC_ERR_EXPIRED     env's TTL has ended at now_ms
 *   QPC_ERR_DUPLICATE   env->id is in the dedup set (held, taken earlier or marked seen)
 *   QPC_ERR_QUEUE_FULL  the recipient's (topic's) queue holds per_queue envelopes; the
 *                       queue is left as it was: nothing is dropped to make room
 *   QPC_ERR_STORE_FULL  accepting env would take the sum of held mem sizes above max_bytes
 *   QPC_ERR_NOMEM
 * Returns 0 on success.
 */
int qpc_store_put(struct qpc_store *store, struct qpc_envelope *env, uint64_t now_ms);

/*
 * True when id is in the dedup set. Cheap (one keyed hash lookup): relays call it
 * before the costly signature verification. Entries past their keep time count until
 * qpc_store_gc removes them (erring on the side of "seen" is harmless: such an
 * envelope is expired anyway).
 */
bool qpc_store_seen(const struct qpc_store *store, const uint8_t id[static QPC_ID_LEN]);

/*
 * Adds id to the dedup set without storing an envelope (a relay that forwarded it
 * directly, a client that delivered it). The entry is kept until
 * max(expires_at_ms, now_ms + dedup window), or until max_seen newer entries without an
 * envelope push it out (oldest first; O(1)). Returns 0 when id was new,
 * QPC_ERR_DUPLICATE when it was already there (its keep time is extended if the new one
 * is later), QPC_ERR_NOMEM.
 */
int qpc_store_mark_seen(struct qpc_store *store, const uint8_t id[static QPC_ID_LEN],
                        uint64_t expires_at_ms, uint64_t now_ms);

/*
 * Hands every live envelope queued for recipient to fn, oldest first, removing each one
 * fn accepts (see qpc_store_take_fn). Envelopes expired at now_ms are dropped, not handed
 * out. Returns the number fn accepted (0 when nothing is queued).
 */
int qpc_store_take_all_for(struct qpc_store *store, const uint8_t recipient[static QPC_KEY_LEN],
                           uint64_t now_ms, qpc_store_take_fn fn, void *ctx);

/* As qpc_store_take_all_for, for the broadcast queue of topic. Returns the count accepted. */
int qpc_store_take_topic(struct qpc_store *store, const char *topic, uint64_t now_ms,
                         qpc_store_take_fn fn, void *ctx);

/*
 * Shows fn every live broadcast envelope, topic by topic, oldest first within a topic,
 * without removing anything (to forward copies to a newly met peer). fn must not modify
 * the store. Returns the number of envelopes shown.
 */
int qpc_store_foreach_broadcast(const struct qpc_store *store, uint64_t now_ms,
                                qpc_store_visit_fn fn, void *ctx);

/*
 * Shows fn every non-empty queue (direct recipients and broadcast topics), in no
 * particular order: whom this node is holding messages for. fn must not modify the
 * store. Returns the number of queues shown.
 */
int qpc_store_foreach_queue(const struct qpc_store *store, qpc_store_queue_fn fn, void *ctx);

/*
 * Drops every envelope expired at now_ms (its id stays in the dedup set) and every dedup
 * entry whose keep time has passed. Returns how many envelopes plus dedup entries it
 * removed. O(envelopes + dedup entries): call it periodically (e.g. once a minute), not
 * per message.
 */
size_t qpc_store_gc(struct qpc_store *store, uint64_t now_ms);

/* Copies the current figures and totals into *stats. */
void qpc_store_get_stats(const struct qpc_store *store, struct qpc_store_stats *stats);

#endif
