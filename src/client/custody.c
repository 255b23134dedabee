/*
 * custody.c: the in-flight table and the rules that end custody (custody.h).
 *
 * The one idea: "acknowledged" must mean "stored or shown on the other side". So an
 * envelope leaves this table only through an ack from the peer it was handed to or from
 * its recipient, or by expiring; a holder that is full or failing refuses for now, and
 * the envelope stays (parked) for a later try. A link that dies parks what went out on
 * it: the receiver drops a second copy by id and acks it again.
 */
#include <stdlib.h>
#include <string.h>

#include "custody.h"

void custody_init(struct custody *c, const uint8_t me[static QPC_KEY_LEN])
{
    c->by_id = NULL;
    c->forwarded_bytes = 0;
    memcpy(c->me, me, QPC_KEY_LEN);
}

/* Every entry enters and leaves the table here, so the forwarding bound is a counter
 * (it is asked for every envelope forwarded, and the table may hold thousands). */
static void table_add(struct custody *c, struct inflight *f)
{
    HASH_ADD(hh, c->by_id, id, QPC_ID_LEN, f);
    if (!f->mine)
        c->forwarded_bytes += f->env.payload_len;
}

static void table_del(struct custody *c, struct inflight *f)
{
    HASH_DEL(c->by_id, f);
    if (!f->mine)
        c->forwarded_bytes -= f->env.payload_len;
}

void custody_entry_free(struct inflight *f)
{
    if (f == NULL)
        return;
    qpc_envelope_clear(&f->env);
    free(f);
}

void custody_clear(struct custody *c)
{
    struct inflight *f, *tmp;

    HASH_ITER(hh, c->by_id, f, tmp) {
        table_del(c, f);
        custody_entry_free(f);
    }
}

/* A new entry holding env (moved), or NULL with env cleared when out of memory. */
static struct inflight *entry_new(const struct custody *c, struct qpc_envelope *env)
{
    struct inflight *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        qpc_envelope_clear(env);
        return NULL;
    }
    memcpy(f->id, env->id, QPC_ID_LEN);
    f->mine = memcmp(env->sender, c->me, QPC_KEY_LEN) == 0;
    f->env = *env;
    memset(env, 0, sizeof(*env));
    return f;
}

void custody_hand(struct custody *c, struct qpc_envelope *env, struct link *l,
                  const uint8_t hop_peer[static QPC_KEY_LEN])
{
    struct inflight *f = NULL;

    HASH_FIND(hh, c->by_id, env->id, QPC_ID_LEN, f);
    if (f == NULL) {
        f = entry_new(c, env);
        if (f == NULL)
            return;
        table_add(c, f);
    } else {
        qpc_envelope_clear(env);
        memset(env, 0, sizeof(*env));
    }
    custody_resent(f, l, hop_peer);
}

void custody_park(struct custody *c, struct qpc_envelope *env)
{
    struct inflight *f = entry_new(c, env);

    if (f != NULL)
        table_add(c, f);
}

void custody_resent(struct inflight *f, struct link *l, const uint8_t hop_peer[static QPC_KEY_LEN])
{
    memcpy(f->hop_peer, hop_peer, QPC_KEY_LEN);
    f->link = l;
}

void custody_link_gone(struct custody *c, const struct link *l)
{
    struct inflight *f, *tmp;

    HASH_ITER(hh, c->by_id, f, tmp) {
        if (f->link == l)
            f->link = NULL;
    }
}

struct inflight *custody_find(const struct custody *c, const uint8_t id[static QPC_ID_LEN])
{
    struct inflight *f = NULL;

    HASH_FIND(hh, c->by_id, id, QPC_ID_LEN, f);
    return f;
}

struct inflight *custody_take(struct custody *c, const uint8_t id[static QPC_ID_LEN])
{
    struct inflight *f = custody_find(c, id);

    if (f != NULL)
        table_del(c, f);
    return f;
}

size_t custody_count(const struct custody *c)
{
    return HASH_COUNT(c->by_id);
}

enum custody_ack custody_ack(struct custody *c, const uint8_t from[static QPC_KEY_LEN],
                             const uint8_t *id, size_t id_len, Qpc__Status st,
                             struct inflight **ended)
{
    struct inflight *f;
    enum custody_ack verdict;

    *ended = NULL;
    if (id == NULL || id_len != QPC_ID_LEN)
        return CUSTODY_ACK_IGNORED;
    f = custody_find(c, id);
    if (f == NULL)
        return CUSTODY_ACK_IGNORED;
    if (memcmp(from, f->hop_peer, QPC_KEY_LEN) != 0 && memcmp(from, f->env.recipient, QPC_KEY_LEN) != 0)
        return CUSTODY_ACK_IGNORED;
    if (st == QPC__STATUS__STATUS_QUEUE_FULL || st == QPC__STATUS__STATUS_INTERNAL ||
        st == QPC__STATUS__STATUS_RATE_LIMITED) {
        f->link = NULL;
        return CUSTODY_ACK_RETRY;
    }
    if (st != QPC__STATUS__STATUS_OK && st != QPC__STATUS__STATUS_DEFERRED)
        verdict = CUSTODY_ACK_REFUSED;
    else if (memcmp(from, f->env.recipient, QPC_KEY_LEN) == 0 && st == QPC__STATUS__STATUS_OK)
        verdict = CUSTODY_ACK_RECIPIENT;
    else
        verdict = CUSTODY_ACK_HELD;
    table_del(c, f);
    *ended = f;
    return verdict;
}

void custody_expire(struct custody *c, uint64_t now,
                    void (*ended)(void *ctx, const struct inflight *f), void *ctx)
{
    struct inflight *f, *tmp;

    HASH_ITER(hh, c->by_id, f, tmp) {
        if (qpc_envelope_expires_at_ms(&f->env) > now)
            continue;
        if (ended != NULL)
            ended(ctx, f);
        table_del(c, f);
        custody_entry_free(f);
    }
}

void custody_foreach_parked(struct custody *c, void (*fn)(void *ctx, struct inflight *f), void *ctx)
{
    struct inflight *f, *tmp;

    HASH_ITER(hh, c->by_id, f, tmp) {
        if (f->link == NULL && !f->server_only)
            fn(ctx, f);
    }
}

void custody_foreach_for_server(struct custody *c, void (*fn)(void *ctx, struct inflight *f), void *ctx)
{
    struct inflight *f, *tmp;

    HASH_ITER(hh, c->by_id, f, tmp) {
        if (f->link == NULL && f->server_only)
            fn(ctx, f);
    }
}

size_t custody_forwarded_bytes(const struct custody *c)
{
    return c->forwarded_bytes;
}

bool custody_may_forward(const struct custody *c, size_t max_bytes)
{
    return custody_forwarded_bytes(c) < max_bytes;
}

struct queue_probe {
    const uint8_t *key;
    bool found;
};

static int queue_for_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    struct queue_probe *probe = ctx;

    probe->found |= q->recipient != NULL && memcmp(q->recipient, probe->key, QPC_KEY_LEN) == 0;
    return probe->found;
}

bool custody_waits_for(const struct custody *c, const struct qpc_store *store,
                       const uint8_t key[static QPC_KEY_LEN])
{
    struct queue_probe probe = { key, false };
    struct inflight *f, *tmp;

    HASH_ITER(hh, c->by_id, f, tmp) {
        probe.found |= f->link == NULL && !f->server_only && memcmp(f->env.recipient, key, QPC_KEY_LEN) == 0;
    }
    if (!probe.found)
        qpc_store_foreach_queue(store, queue_for_cb, &probe);
    return probe.found;
}

void custody_retry_later(struct inflight *f, uint64_t now)
{
    uint64_t delay = CUSTODY_RETRY_MIN_MS;

    for (unsigned i = 0; i < f->refusals && delay < CUSTODY_RETRY_MAX_MS; i++)
        delay *= 2;
    if (delay > CUSTODY_RETRY_MAX_MS)
        delay = CUSTODY_RETRY_MAX_MS;
    if (f->refusals < 32)
        f->refusals++;
    f->not_before_ms = now + delay;
}

bool custody_due(const struct inflight *f, uint64_t now)
{
    return now >= f->not_before_ms;
}

bool custody_may_send_to(const uint8_t *came_from, uint64_t came_at, uint64_t now,
                         const uint8_t next_hop[static QPC_KEY_LEN],
                         const uint8_t recipient[static QPC_KEY_LEN])
{
    return came_from == NULL || memcmp(came_from, next_hop, QPC_KEY_LEN) != 0 ||
           memcmp(next_hop, recipient, QPC_KEY_LEN) == 0 || now - came_at >= CUSTODY_SPLIT_HORIZON_MS;
}
