/*
 * receipts.c: the receipts I wait for and the receipts I owe (receipts.h).
 *
 * The one idea: a receipt proves nothing by itself but who signed it. The caller proves
 * the signer (envelope signature, box); this table proves the rest, that the id is one I
 * sent to that signer, so a valid receipt from anyone else, or for an id I never sent,
 * changes nothing. Owed receipts are grouped per sender so that one envelope per sender
 * and loop turn carries them all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/error.h"
#include "receipts.h"

/* An id remembered for a while, in insertion order (uthash keeps it: the head is oldest). */
struct receipt_id {
    uint8_t id[QPC_ID_LEN];
    UT_hash_handle hh;
};

struct receipt_owed {
    uint8_t sender[QPC_KEY_LEN];
    struct qpc_receipt_item *items;
    size_t n, cap;
    char domain[QPC_DIRECT_DOMAIN_MAX + 1];
    struct receipt_id *ids;            /* the ids in items, to owe each once */
    UT_hash_handle hh;
};

void receipts_init(struct receipts *r)
{
    memset(r, 0, sizeof(*r));
}

static void ids_clear(struct receipt_id **set)
{
    struct receipt_id *e, *tmp;

    HASH_ITER(hh, *set, e, tmp) {
        HASH_DEL(*set, e);
        free(e);
    }
}

/* Adds id to a set bounded at max entries, forgetting the oldest. */
static void ids_add(struct receipt_id **set, const uint8_t id[static QPC_ID_LEN], size_t max)
{
    struct receipt_id *e = NULL;

    HASH_FIND(hh, *set, id, QPC_ID_LEN, e);
    if (e != NULL)
        return;
    if (max > 0 && HASH_COUNT(*set) >= max) {
        struct receipt_id *oldest = *set;

        HASH_DEL(*set, oldest);
        free(oldest);
    }
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return;   /* a set that forgets one id costs at most a repeated receipt */
    memcpy(e->id, id, QPC_ID_LEN);
    HASH_ADD(hh, *set, id, QPC_ID_LEN, e);
}

static bool ids_has(const struct receipt_id *set, const uint8_t id[static QPC_ID_LEN])
{
    struct receipt_id *e = NULL;

    HASH_FIND(hh, set, id, QPC_ID_LEN, e);
    return e != NULL;
}

static void owed_free(struct receipt_owed *o)
{
    ids_clear(&o->ids);
    free(o->items);
    free(o);
}

void receipts_clear(struct receipts *r)
{
    struct receipt_wait *w, *wt;
    struct receipt_owed *o, *ot;

    HASH_ITER(hh, r->waiting, w, wt) {
        HASH_DEL(r->waiting, w);
        free(w);
    }
    HASH_ITER(hh, r->owed, o, ot) {
        HASH_DEL(r->owed, o);
        owed_free(o);
    }
    ids_clear(&r->receipted);
    ids_clear(&r->confirmed);
    memset(r, 0, sizeof(*r));
}

/* ---- the sender's side --------------------------------------------------------------- */

int receipts_wait(struct receipts *r, const uint8_t id[static QPC_ID_LEN],
                  const uint8_t recipient[static QPC_KEY_LEN], uint64_t created_at_ms,
                  uint64_t expires_at_ms)
{
    struct receipt_wait *w = NULL;

    HASH_FIND(hh, r->waiting, id, QPC_ID_LEN, w);
    if (w != NULL)
        return 0;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return QPC_ERR_NOMEM;
    memcpy(w->id, id, QPC_ID_LEN);
    memcpy(w->recipient, recipient, QPC_KEY_LEN);
    w->created_at_ms = created_at_ms;
    w->expires_at_ms = expires_at_ms;
    HASH_ADD(hh, r->waiting, id, QPC_ID_LEN, w);
    return 0;
}

bool receipts_waiting(const struct receipts *r, const uint8_t id[static QPC_ID_LEN])
{
    struct receipt_wait *w = NULL;

    HASH_FIND(hh, r->waiting, id, QPC_ID_LEN, w);
    return w != NULL;
}

void receipts_forget(struct receipts *r, const uint8_t id[static QPC_ID_LEN])
{
    struct receipt_wait *w = NULL;

    HASH_FIND(hh, r->waiting, id, QPC_ID_LEN, w);
    if (w != NULL) {
        HASH_DEL(r->waiting, w);
        free(w);
    }
}

size_t receipts_waiting_count(const struct receipts *r)
{
    return HASH_COUNT(r->waiting);
}

enum receipt_verdict receipts_confirm(struct receipts *r, const uint8_t signer[static QPC_KEY_LEN],
                                      const uint8_t id[static QPC_ID_LEN], struct receipt_wait *done)
{
    struct receipt_wait *w = NULL;

    HASH_FIND(hh, r->waiting, id, QPC_ID_LEN, w);
    if (w == NULL || memcmp(w->recipient, signer, QPC_KEY_LEN) != 0) {
        /* Only a repeat if the id was confirmed by this same path: the confirmed set
         * holds ids alone, so an id confirmed before and now named by someone else is
         * still a refusal. */
        if (w == NULL && ids_has(r->confirmed, id)) {
            r->repeated++;
            return RECEIPT_REPEATED;
        }
        r->refused++;
        return RECEIPT_REFUSED;
    }
    if (done != NULL) {
        *done = *w;
        memset(&done->hh, 0, sizeof(done->hh));
    }
    HASH_DEL(r->waiting, w);
    free(w);
    ids_add(&r->confirmed, id, RECEIPTS_CONFIRMED_MAX);
    return RECEIPT_CONFIRMED;
}

bool receipts_log_refusal(struct receipts *r, uint64_t mono_ms, uint64_t *suppressed)
{
    if (mono_ms < r->next_log_ms) {
        r->unlogged++;
        return false;
    }
    if (suppressed != NULL)
        *suppressed = r->unlogged;
    r->unlogged = 0;
    r->next_log_ms = mono_ms + RECEIPTS_LOG_INTERVAL_MS;
    return true;
}

void receipts_expire(struct receipts *r, uint64_t now,
                     void (*ended)(void *ctx, const struct receipt_wait *w), void *ctx)
{
    struct receipt_wait *w, *tmp;

    HASH_ITER(hh, r->waiting, w, tmp) {
        if (w->expires_at_ms > now)
            continue;
        if (ended != NULL)
            ended(ctx, w);
        HASH_DEL(r->waiting, w);
        free(w);
    }
}

/* ---- the recipient's side ------------------------------------------------------------ */

int receipts_owe(struct receipts *r, const uint8_t sender[static QPC_KEY_LEN],
                 const struct qpc_receipt_item *item, const char *domain)
{
    struct receipt_owed *o = NULL;

    HASH_FIND(hh, r->owed, sender, QPC_KEY_LEN, o);
    if (o != NULL && ids_has(o->ids, item->id))
        goto domain;
    if (r->owed_items >= RECEIPTS_OWED_MAX)
        return QPC_ERR_QUEUE_FULL;
    if (o == NULL) {
        if ((o = calloc(1, sizeof(*o))) == NULL)
            return QPC_ERR_NOMEM;
        memcpy(o->sender, sender, QPC_KEY_LEN);
        HASH_ADD(hh, r->owed, sender, QPC_KEY_LEN, o);
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct qpc_receipt_item *items = realloc(o->items, cap * sizeof(*items));

        if (items == NULL)
            return QPC_ERR_NOMEM;
        o->items = items;
        o->cap = cap;
    }
    ids_add(&o->ids, item->id, 0);
    if (!ids_has(o->ids, item->id))
        return QPC_ERR_NOMEM;
    o->items[o->n++] = *item;
    r->owed_items++;
domain:
    if (domain != NULL && domain[0] != '\0')
        snprintf(o->domain, sizeof(o->domain), "%s", domain);
    return 0;
}

size_t receipts_owed_count(const struct receipts *r)
{
    return r->owed_items;
}

/* Forgets the first k items of o (fn took them). */
static void owed_drop_front(struct receipts *r, struct receipt_owed *o, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        struct receipt_id *e = NULL;

        HASH_FIND(hh, o->ids, o->items[i].id, QPC_ID_LEN, e);
        if (e != NULL) {
            HASH_DEL(o->ids, e);
            free(e);
        }
    }
    memmove(o->items, o->items + k, (o->n - k) * sizeof(*o->items));
    o->n -= k;
    r->owed_items -= k;
}

void receipts_take_owed(struct receipts *r, receipts_take_fn fn, void *ctx)
{
    struct receipt_owed *o, *tmp;

    HASH_ITER(hh, r->owed, o, tmp) {
        while (o->n > 0) {
            size_t k = o->n < QPC_RECEIPT_ITEMS_MAX ? o->n : QPC_RECEIPT_ITEMS_MAX;

            if (fn(ctx, o->sender, o->items, k, o->domain) != 0)
                break;
            owed_drop_front(r, o, k);
        }
        if (o->n == 0) {
            HASH_DEL(r->owed, o);
            owed_free(o);
        }
    }
}

bool receipts_receipted(const struct receipts *r, const uint8_t id[static QPC_ID_LEN])
{
    return ids_has(r->receipted, id);
}

void receipts_mark_receipted(struct receipts *r, const uint8_t id[static QPC_ID_LEN])
{
    ids_add(&r->receipted, id, RECEIPTS_RECEIPTED_MAX);
}
