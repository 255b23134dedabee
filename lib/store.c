/*
 * store.c: MeshStore, per-recipient queues of envelopes plus the dedup set of ids.
 *
 * The one idea: every id the store knows has exactly one record in the dedup table,
 * and a queued envelope *is* its record: struct held begins with the record, and its
 * hash key points at the envelope's own id. So a stored envelope costs one allocation
 * (record + queue links + envelope) and no second copy of its id. When the envelope
 * leaves (taken or expired) the id must stay known, so its record is replaced by a
 * small stand-alone struct seen; if that allocation fails the big block simply stays
 * in the table as the record, which wastes memory but never loses a dedup entry and
 * never makes take or gc fail.
 *
 * The dedup set is bounded by bytes, and it never forgets an id early: every record
 * (a queued envelope's, or a stand-alone one) is counted at DEDUP_ENTRY_COST, the
 * size of the stand-alone record it is or will become, and a put or mark that would
 * take the count above dedup_max_bytes is refused (QPC_ERR_STORE_FULL) instead. Taking
 * or expiring an envelope swaps its record for a smaller one of the same count, so
 * take and gc never need room. Records go only when their keep time has passed (gc).
 *
 * Beside it, the refused set: the content hash and signature of envelopes whose
 * signature failed, so a replay of the same bytes costs a hash lookup instead of a
 * signature check. It is bounded by count (max_refused) and forgets oldest first:
 * forgetting one only costs one more signature check.
 *
 * Tables are uthash with a keyed hash (SipHash via libsodium, random key per process):
 * ids and recipient keys are chosen by whoever signs an envelope, and with uthash's
 * default public hash an attacker could grind ids into one bucket. uthash is built
 * with non-fatal OOM so an allocation failure is an error code, never exit().
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "qpc/error.h"
#include "qpc/store.h"

#define HASH_NONFATAL_OOM 1
#include "qpc/uthash_keyed.h"
#include <utlist.h>

/* The part shared by every entry of the dedup table. */
struct record {
    UT_hash_handle hh;           /* in store->seen; key: QPC_ID_LEN bytes of the id */
    uint64_t keep_until_ms;      /* the entry is stale once now_ms >= this */
    bool held;                   /* this record is a struct held with its envelope */
    uint8_t fewest_hops;         /* fewest hops a copy arrived with; HOPS_NONE: none noted */
    uint8_t later_copies;        /* copies noted after the first (qpc_store_note_hops) */
};

/* No copy's hops noted (my own broadcasts, direct envelopes): no later copy goes on. */
#define HOPS_NONE 0xff

/* An id whose envelope is not (or no longer) held. */
struct seen {
    struct record rec;
    uint8_t id[QPC_ID_LEN];      /* rec.hh.key points here */
};

/* A queued envelope; it is also the dedup record of its id. */
struct held {
    struct record rec;           /* rec.hh.key points at env.id */
    struct held *prev, *next;    /* utlist DL list of its queue; head->prev is the tail */
    struct qpc_envelope env;
};

/* What a dedup entry costs: a stand-alone record, its malloc header and its share of
 * the table's buckets (a queued envelope's record is counted at what it will become). */
#define DEDUP_ENTRY_COST (sizeof(struct seen) + 16 + 8)

/* An envelope that failed its signature check, known by what it carried. */
struct refusal {
    UT_hash_handle hh;           /* in store->refused; key: mark */
    struct refusal *prev, *next; /* store->refused_fifo, oldest first (utlist DL) */
    uint8_t mark[QPC_ID_LEN];    /* BLAKE2b(id || signature): the content and signature */
    uint64_t keep_until_ms;
    int reason;
};

/* The envelopes for one recipient or one broadcast topic. */
struct queue {
    UT_hash_handle hh;           /* in store->direct (key recipient) or store->topics (key topic) */
    struct held *head;
    size_t count;
    size_t bytes;
    uint64_t newest_ms;          /* >= created_at_ms of the tail (may be stale-high) */
    char *topic;                 /* owned; NULL for a direct queue */
    uint8_t recipient[QPC_KEY_LEN];
};

struct qpc_store {
    struct qpc_store_limits limits;
    struct record *seen;         /* dedup table: struct seen and struct held entries */
    size_t n_records;            /* in seen (HASH_COUNT, kept here for the budget) */
    struct refusal *refused;     /* refused set by mark */
    struct refusal *refused_fifo;
    size_t n_refused;
    struct queue *direct;
    struct queue *topics;
    size_t envelopes;
    size_t bytes;
    struct qpc_store_stats totals;   /* only the "totals" fields are kept here */
};

struct qpc_store *qpc_store_new(const struct qpc_store_limits *limits)
{
    struct qpc_store *store;

    if (sodium_init() < 0)
        return NULL;
    store = calloc(1, sizeof(*store));
    if (store == NULL)
        return NULL;
    if (limits != NULL)
        store->limits = *limits;
    if (store->limits.per_queue == 0)
        store->limits.per_queue = QPC_STORE_PER_QUEUE_DEFAULT;
    if (store->limits.max_bytes == 0)
        store->limits.max_bytes = QPC_STORE_MAX_BYTES_DEFAULT;
    if (store->limits.dedup_max_bytes == 0)
        store->limits.dedup_max_bytes = QPC_STORE_DEDUP_MAX_BYTES_DEFAULT;
    if (store->limits.max_refused == 0)
        store->limits.max_refused = QPC_STORE_MAX_REFUSED_DEFAULT;
    return store;
}

static uint64_t keep_until(const struct qpc_store *store, uint64_t expires_at_ms, uint64_t now_ms)
{
    uint64_t window_end = now_ms + store->limits.dedup_window_ms;
    uint64_t ttl_end = expires_at_ms + QPC_STORE_DEDUP_GRACE_MS;

    if (ttl_end < expires_at_ms)
        ttl_end = UINT64_MAX;
    return ttl_end > window_end ? ttl_end : window_end;
}

/* Room for one more dedup entry within dedup_max_bytes. */
static bool dedup_has_room(const struct qpc_store *store)
{
    return (store->n_records + 1) <= store->limits.dedup_max_bytes / DEDUP_ENTRY_COST;
}

static struct record *find_record(const struct qpc_store *store, const uint8_t *id, unsigned hashv)
{
    struct record *rec = NULL;

    HASH_FIND_BYHASHVALUE(hh, store->seen, id, QPC_ID_LEN, hashv, rec);
    return rec;
}

static struct queue *find_queue(const struct qpc_store *store, const struct qpc_envelope *env)
{
    struct queue *q = NULL;

    if (env->has_recipient)
        HASH_FIND(hh, store->direct, env->recipient, QPC_KEY_LEN, q);
    else
        HASH_FIND_STR(store->topics, env->topic, q);
    return q;
}

/* Creates and links an empty queue for env's recipient or topic; NULL on OOM. */
static struct queue *add_queue(struct qpc_store *store, const struct qpc_envelope *env)
{
    struct queue *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return NULL;
    if (env->has_recipient) {
        memcpy(q->recipient, env->recipient, QPC_KEY_LEN);
        HASH_ADD(hh, store->direct, recipient, QPC_KEY_LEN, q);
    } else {
        q->topic = strdup(env->topic);
        if (q->topic == NULL)
            goto fail;
        HASH_ADD_KEYPTR(hh, store->topics, q->topic, strlen(q->topic), q);
    }
    if (q->hh.tbl == NULL)   /* uthash could not allocate its table: not linked */
        goto fail;
    return q;
fail:
    free(q->topic);
    free(q);
    return NULL;
}

static void remove_queue(struct qpc_store *store, struct queue *q)
{
    if (q->topic != NULL)
        HASH_DEL(store->topics, q);
    else
        HASH_DEL(store->direct, q);
    free(q->topic);
    free(q);
}

/* Links h into q keeping created_at order; ties go after their equals (arrival order). */
static void link_in_order(struct queue *q, struct held *h)
{
    struct held *after;

    /* Envelopes mostly arrive in order: then newest_ms says "append" without reading
     * the tail's envelope (a cache miss in a big store). */
    if (q->head == NULL || h->env.created_at_ms >= q->newest_ms) {
        DL_APPEND(q->head, h);
        q->newest_ms = h->env.created_at_ms;
        return;
    }
    after = q->head->prev;   /* scan back from the tail */
    while (after != NULL && after->env.created_at_ms > h->env.created_at_ms)
        after = (after == q->head) ? NULL : after->prev;
    if (after == NULL)
        DL_PREPEND(q->head, h);
    else if (after->next == NULL)
        DL_APPEND(q->head, h);
    else
        DL_APPEND_ELEM(q->head, after, h);
}

int qpc_store_put(struct qpc_store *store, struct qpc_envelope *env, uint64_t now_ms)
{
    struct queue *q;
    struct held *h = NULL;
    bool new_queue = false;
    size_t size;
    unsigned hashv;
    int ret;

    if (!env->has_recipient && env->topic == NULL)
        return QPC_ERR_INVALID;
    if (qpc_envelope_expired(env, now_ms)) {
        ret = QPC_ERR_EXPIRED;
        store->totals.refused_expired++;
        goto out;
    }
    HASH_VALUE(env->id, QPC_ID_LEN, hashv);
    if (find_record(store, env->id, hashv) != NULL) {
        ret = QPC_ERR_DUPLICATE;
        store->totals.refused_duplicate++;
        goto out;
    }
    q = find_queue(store, env);
    if (q != NULL && q->count >= store->limits.per_queue) {
        ret = QPC_ERR_QUEUE_FULL;
        store->totals.refused_queue_full++;
        goto out;
    }
    size = qpc_envelope_mem_size(env);
    if (size > store->limits.max_bytes || store->bytes > store->limits.max_bytes - size) {
        ret = QPC_ERR_STORE_FULL;
        store->totals.refused_store_full++;
        goto out;
    }
    if (!dedup_has_room(store)) {
        ret = QPC_ERR_STORE_FULL;
        store->totals.refused_dedup_full++;
        goto out;
    }

    ret = QPC_ERR_NOMEM;
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        goto out;
    if (q == NULL) {
        if ((q = add_queue(store, env)) == NULL)
            goto out;
        new_queue = true;
    }
    h->env = *env;
    h->rec.keep_until_ms = keep_until(store, qpc_envelope_expires_at_ms(env), now_ms);
    h->rec.held = true;
    h->rec.fewest_hops = HOPS_NONE;
    HASH_ADD_KEYPTR_BYHASHVALUE(hh, store->seen, h->env.id, QPC_ID_LEN, hashv, &h->rec);
    if (h->rec.hh.tbl == NULL)
        goto out;
    store->n_records++;

    link_in_order(q, h);
    q->count++;
    q->bytes += size;
    store->envelopes++;
    store->bytes += size;
    store->totals.put++;
    memset(env, 0, sizeof(*env));   /* moved: topic and payload now belong to h->env */
    h = NULL;
    ret = 0;
out:
    if (h != NULL) {
        free(h);   /* never linked; its env is a shallow copy of the caller's */
        if (new_queue)
            remove_queue(store, q);
    }
    return ret;
}

bool qpc_store_seen(const struct qpc_store *store, const uint8_t id[static QPC_ID_LEN])
{
    unsigned hashv;

    HASH_VALUE(id, QPC_ID_LEN, hashv);
    return find_record(store, id, hashv) != NULL;
}

/* Removes a stand-alone record from the table and frees it (a struct seen, or a held
 * block whose envelope is already cleared: record is the first member of both). */
static void forget(struct qpc_store *store, struct record *rec)
{
    HASH_DELETE(hh, store->seen, rec);
    store->n_records--;
    free(rec);
}

/* Allocates a stand-alone record for id and adds it to the table; NULL on OOM. The
 * caller has checked the budget (or is replacing a record, which keeps the count). */
static struct seen *add_seen(struct qpc_store *store, const uint8_t *id, unsigned hashv,
                             uint64_t keep_until_ms)
{
    struct seen *s = malloc(sizeof(*s));

    if (s == NULL)
        return NULL;
    memcpy(s->id, id, QPC_ID_LEN);
    s->rec.keep_until_ms = keep_until_ms;
    s->rec.held = false;
    s->rec.fewest_hops = HOPS_NONE;
    s->rec.later_copies = 0;
    HASH_ADD_KEYPTR_BYHASHVALUE(hh, store->seen, s->id, QPC_ID_LEN, hashv, &s->rec);
    if (s->rec.hh.tbl == NULL) {
        free(s);
        return NULL;
    }
    store->n_records++;
    return s;
}

int qpc_store_mark_seen(struct qpc_store *store, const uint8_t id[static QPC_ID_LEN],
                        uint64_t expires_at_ms, uint64_t now_ms)
{
    uint64_t keep = keep_until(store, expires_at_ms, now_ms);
    struct record *rec;
    unsigned hashv;

    HASH_VALUE(id, QPC_ID_LEN, hashv);
    rec = find_record(store, id, hashv);
    if (rec != NULL) {
        if (keep > rec->keep_until_ms)
            rec->keep_until_ms = keep;
        return QPC_ERR_DUPLICATE;
    }
    if (!dedup_has_room(store)) {
        store->totals.refused_dedup_full++;
        return QPC_ERR_STORE_FULL;
    }
    return add_seen(store, id, hashv, keep) != NULL ? 0 : QPC_ERR_NOMEM;
}

/* The record of copy's id, or NULL. */
static struct record *record_of(const struct qpc_store *store, const uint8_t *id)
{
    unsigned hashv;

    HASH_VALUE(id, QPC_ID_LEN, hashv);
    return find_record(store, id, hashv);
}

bool qpc_store_goes_further(const struct qpc_store *store, const struct qpc_envelope *copy)
{
    const struct record *rec = record_of(store, copy->id);

    return rec != NULL && rec->fewest_hops != HOPS_NONE && copy->hop_count < rec->fewest_hops &&
           copy->hop_count < copy->max_hops && rec->later_copies < QPC_STORE_LATER_COPIES_MAX;
}

bool qpc_store_holds_copy(const struct qpc_store *store, const struct qpc_envelope *copy)
{
    const struct record *rec = record_of(store, copy->id);
    const struct held *h = (const struct held *)rec;

    /* The id is the hash of every signed field, so equal ids and equal signatures are
     * the same signed envelope; only hop_count may differ. */
    return rec != NULL && rec->held &&
           sodium_memcmp(h->env.signature, copy->signature, QPC_SIG_LEN) == 0;
}

int qpc_store_note_hops(struct qpc_store *store, const uint8_t id[static QPC_ID_LEN], uint32_t hop_count)
{
    struct record *rec = record_of(store, id);
    struct held *h = (struct held *)rec;

    if (rec == NULL)
        return QPC_ERR_NOT_FOUND;
    if (hop_count >= HOPS_NONE || hop_count >= rec->fewest_hops)
        return 0;
    if (rec->fewest_hops != HOPS_NONE)
        rec->later_copies++;
    rec->fewest_hops = (uint8_t)hop_count;
    /* Peers met later get the kept copy as it goes on now. */
    if (rec->held && hop_count < h->env.max_hops && hop_count + 1 < h->env.hop_count)
        h->env.hop_count = hop_count + 1;
    return 0;
}

/*
 * Takes h out of q and leaves only its dedup record behind. The caller has already
 * freed or moved h->env's contents; id is the envelope's id, saved before that because
 * a callback may have zeroed h->env.
 */
static void unqueue(struct qpc_store *store, struct queue *q, struct held *h,
                    const uint8_t id[static QPC_ID_LEN], size_t size)
{
    DL_DELETE(q->head, h);
    q->count--;
    q->bytes -= size;
    store->envelopes--;
    store->bytes -= size;

    /* Add the small record before deleting the big one: the table then never shrinks
     * to empty in between, so adding cannot need a new table allocation. The count of
     * records, and so the budget, ends where it was. */
    struct seen *s = add_seen(store, id, h->rec.hh.hashv, h->rec.keep_until_ms);

    if (s != NULL) {
        s->rec.fewest_hops = h->rec.fewest_hops;
        s->rec.later_copies = h->rec.later_copies;
        HASH_DELETE(hh, store->seen, &h->rec);
        store->n_records--;
        free(h);
    } else {
        memset(&h->env, 0, sizeof(h->env));
        memcpy(h->env.id, id, QPC_ID_LEN);   /* the key stays valid in place */
        h->rec.held = false;
    }
}

/* Drops an expired envelope; its id stays in the dedup set. */
static void drop_expired(struct qpc_store *store, struct queue *q, struct held *h)
{
    uint8_t id[QPC_ID_LEN];
    size_t size = qpc_envelope_mem_size(&h->env);

    memcpy(id, h->env.id, QPC_ID_LEN);
    qpc_envelope_clear(&h->env);
    unqueue(store, q, h, id, size);
    store->totals.expired++;
}

static int take_queue(struct qpc_store *store, struct queue *q, uint64_t now_ms,
                      qpc_store_take_fn fn, void *ctx)
{
    uint8_t id[QPC_ID_LEN];
    struct held *h;
    size_t size;
    int taken = 0;

    while ((h = q->head) != NULL) {
        if (qpc_envelope_expired(&h->env, now_ms)) {
            drop_expired(store, q, h);
            continue;
        }
        memcpy(id, h->env.id, QPC_ID_LEN);
        size = qpc_envelope_mem_size(&h->env);
        if (fn(ctx, &h->env) != 0)
            break;
        unqueue(store, q, h, id, size);
        store->totals.forwarded++;
        taken++;
    }
    if (q->head == NULL)
        remove_queue(store, q);
    return taken;
}

int qpc_store_take_all_for(struct qpc_store *store, const uint8_t recipient[static QPC_KEY_LEN],
                           uint64_t now_ms, qpc_store_take_fn fn, void *ctx)
{
    struct queue *q = NULL;

    HASH_FIND(hh, store->direct, recipient, QPC_KEY_LEN, q);
    return q != NULL ? take_queue(store, q, now_ms, fn, ctx) : 0;
}

int qpc_store_take_topic(struct qpc_store *store, const char *topic, uint64_t now_ms,
                         qpc_store_take_fn fn, void *ctx)
{
    struct queue *q = NULL;

    HASH_FIND_STR(store->topics, topic, q);
    return q != NULL ? take_queue(store, q, now_ms, fn, ctx) : 0;
}

int qpc_store_foreach_broadcast(const struct qpc_store *store, uint64_t now_ms,
                                qpc_store_visit_fn fn, void *ctx)
{
    const struct queue *q;
    const struct held *h;
    int shown = 0;

    for (q = store->topics; q != NULL; q = q->hh.next) {
        DL_FOREACH(q->head, h) {
            if (qpc_envelope_expired(&h->env, now_ms))
                continue;
            shown++;
            if (fn(ctx, &h->env) != 0)
                return shown;
        }
    }
    return shown;
}

static int show_queues(const struct queue *head, qpc_store_queue_fn fn, void *ctx, int *shown)
{
    const struct queue *q;
    struct qpc_store_queue_info info;

    for (q = head; q != NULL; q = q->hh.next) {
        info.recipient = q->topic == NULL ? q->recipient : NULL;
        info.topic = q->topic;
        info.count = q->count;
        info.bytes = q->bytes;
        info.oldest_created_at_ms = q->head->env.created_at_ms;
        (*shown)++;
        if (fn(ctx, &info) != 0)
            return 1;
    }
    return 0;
}

int qpc_store_foreach_queue(const struct qpc_store *store, qpc_store_queue_fn fn, void *ctx)
{
    int shown = 0;

    if (show_queues(store->direct, fn, ctx, &shown) == 0)
        show_queues(store->topics, fn, ctx, &shown);
    return shown;
}

static size_t gc_queues(struct qpc_store *store, struct queue **table, uint64_t now_ms)
{
    struct queue *q, *qtmp;
    struct held *h, *htmp;
    size_t dropped = 0;

    HASH_ITER(hh, *table, q, qtmp) {
        DL_FOREACH_SAFE(q->head, h, htmp) {
            if (qpc_envelope_expired(&h->env, now_ms)) {
                drop_expired(store, q, h);
                dropped++;
            }
        }
        if (q->head == NULL)
            remove_queue(store, q);
    }
    return dropped;
}

/* --- the refused set ------------------------------------------------------------------- */

/* What identifies the bytes of a refused envelope: its id is the hash of every signed
 * field (decode recomputes it), so with the signature it names content and signature
 * both. A copy of a real envelope with a bad signature therefore never hides the real
 * one, whose signature differs. */
static void refusal_mark(uint8_t mark[static QPC_ID_LEN], const struct qpc_envelope *env)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, QPC_ID_LEN);
    crypto_generichash_update(&st, env->id, QPC_ID_LEN);
    crypto_generichash_update(&st, env->signature, QPC_SIG_LEN);
    crypto_generichash_final(&st, mark, QPC_ID_LEN);
}

static void refusal_free(struct qpc_store *store, struct refusal *r)
{
    HASH_DELETE(hh, store->refused, r);
    DL_DELETE(store->refused_fifo, r);
    store->n_refused--;
    free(r);
}

/* Why a failure may be remembered: it must follow from the bytes alone. */
static bool remembered_reason(int reason)
{
    return reason == QPC_ERR_BAD_SIGNATURE || reason == QPC_ERR_INVALID ||
           reason == QPC_ERR_VERSION;
}

int qpc_store_mark_refused(struct qpc_store *store, const struct qpc_envelope *env, int reason,
                           uint64_t now_ms)
{
    struct refusal *r;
    uint8_t mark[QPC_ID_LEN];
    uint64_t keep;

    if (!remembered_reason(reason))
        return QPC_ERR_INVALID;
    refusal_mark(mark, env);
    HASH_FIND(hh, store->refused, mark, QPC_ID_LEN, r);
    if (r != NULL)
        return QPC_ERR_DUPLICATE;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return QPC_ERR_NOMEM;
    memcpy(r->mark, mark, QPC_ID_LEN);
    /* Its expiry is what it claims, which nothing vouches for: the count bound (oldest
     * forgotten first) is what holds the set, the keep time only lets gc drop it early. */
    keep = qpc_envelope_expires_at_ms(env);
    r->keep_until_ms = keep > now_ms ? keep : now_ms;
    r->reason = reason;
    HASH_ADD(hh, store->refused, mark, QPC_ID_LEN, r);
    if (r->hh.tbl == NULL) {
        free(r);
        return QPC_ERR_NOMEM;
    }
    DL_APPEND(store->refused_fifo, r);
    store->n_refused++;
    while (store->n_refused > store->limits.max_refused)
        refusal_free(store, store->refused_fifo);
    return 0;
}

int qpc_store_refused(const struct qpc_store *store, const struct qpc_envelope *env)
{
    struct refusal *r;
    uint8_t mark[QPC_ID_LEN];

    if (store->refused == NULL)
        return 0;
    refusal_mark(mark, env);
    HASH_FIND(hh, store->refused, mark, QPC_ID_LEN, r);
    return r != NULL ? r->reason : 0;
}

static size_t gc_refused(struct qpc_store *store, uint64_t now_ms)
{
    struct refusal *r, *tmp;
    size_t removed = 0;

    DL_FOREACH_SAFE(store->refused_fifo, r, tmp) {
        if (now_ms >= r->keep_until_ms) {
            refusal_free(store, r);
            removed++;
        }
    }
    return removed;
}

size_t qpc_store_gc(struct qpc_store *store, uint64_t now_ms)
{
    struct record *rec, *tmp;
    size_t removed;

    removed = gc_queues(store, &store->direct, now_ms) + gc_queues(store, &store->topics, now_ms);

    /* Every record still held has keep_until_ms >= its expiry > now_ms (the envelope
     * survived the pass above), so each stale record here is a stand-alone one. */
    HASH_ITER(hh, store->seen, rec, tmp) {
        if (now_ms >= rec->keep_until_ms) {
            forget(store, rec);
            store->totals.dedup_dropped++;
            removed++;
        }
    }
    removed += gc_refused(store, now_ms);
    return removed;
}

void qpc_store_get_stats(const struct qpc_store *store, struct qpc_store_stats *stats)
{
    *stats = store->totals;
    stats->envelopes = store->envelopes;
    stats->bytes = store->bytes;
    stats->recipients = HASH_COUNT(store->direct);
    stats->topics = HASH_COUNT(store->topics);
    stats->dedup_entries = HASH_COUNT(store->seen);
    stats->dedup_bytes = store->n_records * DEDUP_ENTRY_COST;
    stats->refused_entries = store->n_refused;
}

static void free_queues(struct qpc_store *store, struct queue **table)
{
    struct queue *q, *qtmp;
    struct held *h, *htmp;

    HASH_ITER(hh, *table, q, qtmp) {
        DL_FOREACH_SAFE(q->head, h, htmp) {
            HASH_DELETE(hh, store->seen, &h->rec);
            qpc_envelope_clear(&h->env);
            free(h);
        }
        HASH_DEL(*table, q);
        free(q->topic);
        free(q);
    }
}

void qpc_store_free(struct qpc_store *store)
{
    struct record *rec, *tmp;

    if (store == NULL)
        return;
    free_queues(store, &store->direct);
    free_queues(store, &store->topics);
    HASH_ITER(hh, store->seen, rec, tmp) {   /* only stand-alone records are left */
        HASH_DELETE(hh, store->seen, rec);
        free(rec);
    }
    while (store->refused_fifo != NULL)
        refusal_free(store, store->refused_fifo);
    free(store);
}
