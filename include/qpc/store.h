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
 *     max(envelope expiry + QPC_STORE_DEDUP_GRACE_MS, time of marking + dedup window),
 * which is at least as long as any envelope carrying that id can still be valid, so a
 * copy arriving later over another path is always recognised: an id is never accepted
 * twice within its TTL. Taking or expiring an envelope removes it from its queue but
 * never from the dedup set. The dedup set is bounded by bytes (dedup_max_bytes) and
 * never forgets an id early to make room: when it is full, new envelopes and new marks
 * are refused with QPC_ERR_STORE_FULL, a temporary refusal (room comes back as ids
 * reach their keep time and qpc_store_gc drops them); see docs/store.md for why.
 *
 * Beside it the store keeps the refused set: envelopes whose signature failed, known by
 * their content hash and signature together, so a replay of the same bytes is refused
 * by a lookup (qpc_store_refused) instead of a second signature check. It is bounded by
 * count and forgets its oldest first (which only costs a signature check again).
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
/* An id outlives its envelope's expiry by this much, so a wall clock stepped back by up
 * to the allowed skew does not make an expired copy look new. */
#define QPC_STORE_DEDUP_GRACE_MS ((uint64_t)QPC_CLOCK_SKEW_MS)
#define QPC_STORE_DEDUP_MAX_BYTES_DEFAULT (32u * 1024 * 1024)  /* ~260,000 ids */
#define QPC_STORE_MAX_REFUSED_DEFAULT 16384u            /* refused envelopes remembered */

struct qpc_store;

struct qpc_store_limits {
    uint32_t per_queue;         /* envelopes queued per recipient (or topic); 0 = default */
    size_t max_bytes;           /* cap on the sum of qpc_envelope_mem_size; 0 = default */
    uint64_t dedup_window_ms;   /* keep every id at least this long after it was
                                 * recorded; 0 = as long as its envelope lives (+ grace) */
    size_t dedup_max_bytes;     /* cap on the dedup set, every id counted at the size of
                                 * a stand-alone entry (~128 bytes), held ones included;
                                 * 0 = QPC_STORE_DEDUP_MAX_BYTES_DEFAULT. When full, new
                                 * ids are refused (QPC_ERR_STORE_FULL), none forgotten. */
    size_t max_refused;         /* refused envelopes remembered (~130 bytes each); 0 =
                                 * QPC_STORE_MAX_REFUSED_DEFAULT; the oldest goes first */
};

struct qpc_store_stats {
    /* what is held now (expired envelopes count until gc or take drops them) */
    size_t envelopes;
    size_t bytes;               /* sum of qpc_envelope_mem_size of held envelopes */
    size_t recipients;          /* direct queues */
    size_t topics;              /* broadcast queues */
    size_t dedup_entries;       /* ids in the dedup set, held envelopes included */
    size_t dedup_bytes;         /* what they count against dedup_max_bytes */
    size_t refused_entries;     /* envelopes in the refused set */
    /* totals since qpc_store_new */
    uint64_t put;               /* envelopes accepted by qpc_store_put */
    uint64_t refused_duplicate;
    uint64_t refused_expired;
    uint64_t refused_queue_full;
    uint64_t refused_store_full;
    uint64_t expired;           /* held envelopes dropped because their TTL ended */
    uint64_t forwarded;         /* envelopes handed out by a take */
    uint64_t dedup_dropped;     /* dedup entries removed by gc */
    uint64_t refused_dedup_full;/* puts and marks refused because the dedup set was full */
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
 * Its id counts against dedup_max_bytes from now until its keep time, held or not.
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
 *   QPC_ERR_STORE_FULL  accepting env would take the sum of held mem sizes above
 *                       max_bytes, or the dedup set above dedup_max_bytes (stats tell
 *                       which: refused_store_full, refused_dedup_full); temporary
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
 * max(expires_at_ms + QPC_STORE_DEDUP_GRACE_MS, now_ms + dedup window). Returns 0 when id
 * was new, QPC_ERR_DUPLICATE when it was already there (its keep time is extended if the
 * new one is later), QPC_ERR_STORE_FULL when the dedup set is full (the id is NOT
 * recorded: a caller that must never show an envelope twice records before it shows),
 * QPC_ERR_NOMEM.
 */
int qpc_store_mark_seen(struct qpc_store *store, const uint8_t id[static QPC_ID_LEN],
                        uint64_t expires_at_ms, uint64_t now_ms);

/*
 * Later copies of a broadcast. The first copy of a broadcast to arrive is not always the
 * one that came the shortest way, and one that arrives at its hop limit goes no further:
 * the nodes beyond never get it while a shorter copy after it is dropped as a duplicate.
 * So the store remembers, beside an id, the fewest hops a copy of it arrived with, and a
 * relay passes on a later copy that came with fewer (docs/store.md, "Later copies").
 * Each id goes on at most 1 + QPC_STORE_LATER_COPIES_MAX times, whatever copies a
 * neighbour makes up (hop_count is not signed).
 */
#define QPC_STORE_LATER_COPIES_MAX 3

/*
 * Records that a copy of id arrived with hop_count hops, when that is fewer than every
 * copy noted before (the first note always is; later ones count towards
 * QPC_STORE_LATER_COPIES_MAX). A kept envelope of id then goes to peers met later with
 * hop_count + 1, as the copy goes on now. An id whose hops were never noted (my own
 * broadcast, a direct envelope) has no later copies. Returns 0 or QPC_ERR_NOT_FOUND (id
 * not in the dedup set: put or mark it first).
 */
int qpc_store_note_hops(struct qpc_store *store, const uint8_t id[static QPC_ID_LEN], uint32_t hop_count);

/*
 * True when copy (its id known) came with fewer hops than every copy noted for its id,
 * can still go on (hop_count < max_hops), and fewer than QPC_STORE_LATER_COPIES_MAX later
 * copies went on before it. Its signature is not checked: see qpc_store_holds_copy.
 */
bool qpc_store_goes_further(const struct qpc_store *store, const struct qpc_envelope *copy);

/*
 * True when the store keeps an envelope with copy's id and the same signature bytes: as
 * the id is the hash of every signed field, copy is then the kept envelope (the caller
 * checked it before the put) with another hop_count, and needs no signature check.
 */
bool qpc_store_holds_copy(const struct qpc_store *store, const struct qpc_envelope *copy);

/*
 * Remembers that env (as decoded: env->id is the hash of its signed fields) failed its
 * check with reason, so a replay of the same content and signature is refused by
 * qpc_store_refused without a signature check. Only failures that follow from the bytes
 * alone are remembered: QPC_ERR_BAD_SIGNATURE, QPC_ERR_INVALID, QPC_ERR_VERSION (not
 * EXPIRED, FUTURE or HOP_LIMIT, which depend on the time or the unsigned hop count).
 * A copy of a real envelope with a bad signature never hides the real one: its
 * signature differs. At most max_refused are kept, the oldest forgotten first; gc drops
 * those past the expiry they claim. Returns 0, QPC_ERR_DUPLICATE (already there),
 * QPC_ERR_INVALID (a reason not remembered), QPC_ERR_NOMEM.
 */
int qpc_store_mark_refused(struct qpc_store *store, const struct qpc_envelope *env, int reason,
                           uint64_t now_ms);

/*
 * The reason recorded for env's exact content and signature (a negative QPC_ERR_*), or
 * 0 when it was not refused before. One keyed hash lookup plus a BLAKE2b of 96 bytes:
 * cheap enough to ask before every signature check.
 */
int qpc_store_refused(const struct qpc_store *store, const struct qpc_envelope *env);

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
 * Drops every envelope expired at now_ms (its id stays in the dedup set), every dedup
 * entry whose keep time has passed and every refused entry past the expiry it claimed.
 * Returns how many envelopes plus entries it removed. O(envelopes + dedup entries): call it periodically (e.g. once a minute), not
 * per message.
 */
size_t qpc_store_gc(struct qpc_store *store, uint64_t now_ms);

/* Copies the current figures and totals into *stats. */
void qpc_store_get_stats(const struct qpc_store *store, struct qpc_store_stats *stats);

#endif
