/*
 * receipts.h: end-to-end receipts: the messages I wait to hear of, and the receipts I
 * owe others (receipts.c).
 *
 * "Delivered" means one thing: the recipient signed a receipt naming the message's id,
 * and it reached me. A receipt is a direct envelope from the recipient whose plaintext
 * is a DirectContent receipt (qpc/direct.h); the caller has verified the envelope and
 * opened its box before it asks here, so the sender key it passes is proven. What this
 * table adds is the last check: an id counts only if I sent it, to that very key. The
 * P2P ack stays what it was, the hop-by-hop custody signal (custody.h).
 *
 * On the other side a node owes a receipt for every message it accepted, per sender,
 * until the caller has sealed them into receipt envelopes (one per sender per loop turn,
 * at most QPC_RECEIPT_ITEMS_MAX ids each) and held those durably like any outgoing
 * envelope; from then on custody carries them.
 *
 * Pure logic over plain state: no clock is read (times are arguments), nothing is sent,
 * sealed or persisted.
 */
#ifndef QPC_CLIENT_RECEIPTS_H
#define QPC_CLIENT_RECEIPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/direct.h"
#include "qpc/envelope.h"
#include "qpc/uthash_keyed.h"   /* ids and keys of strangers */

#define RECEIPTS_OWED_MAX 65536u      /* ids owed, all senders: past it a message waits (QUEUE_FULL) */
#define RECEIPTS_RECEIPTED_MAX 65536u /* ids receipted since start, remembered (oldest forgotten) */
#define RECEIPTS_CONFIRMED_MAX 4096u  /* ids whose receipt came, remembered to tell a repeat */
#define RECEIPTS_LOG_INTERVAL_MS 10000u

/* My message, waiting for its receipt. */
struct receipt_wait {
    uint8_t id[QPC_ID_LEN];
    uint8_t recipient[QPC_KEY_LEN];
    uint64_t created_at_ms;            /* the envelope's, for the time taken */
    uint64_t expires_at_ms;
    UT_hash_handle hh;
};

struct receipt_owed;                   /* per sender (receipts.c) */
struct receipt_id;                     /* a remembered id (receipts.c) */

struct receipts {
    struct receipt_wait *waiting;
    struct receipt_owed *owed;
    size_t owed_items;
    struct receipt_id *receipted;      /* insertion order: the head is the oldest */
    struct receipt_id *confirmed;
    uint64_t refused;                  /* receipt items for ids not sent to their signer */
    uint64_t repeated;                 /* receipt items for ids already confirmed */
    uint64_t next_log_ms;              /* monotonic: refusals are logged at most this often */
    uint64_t unlogged;                 /* refusals since the last line */
};

void receipts_init(struct receipts *r);
/* Frees every table. */
void receipts_clear(struct receipts *r);

/* ---- the sender's side --------------------------------------------------------------- */

/*
 * Waits for the receipt of my message id to recipient. A second call for the same id
 * changes nothing. Returns 0 or QPC_ERR_NOMEM.
 */
int receipts_wait(struct receipts *r, const uint8_t id[static QPC_ID_LEN],
                  const uint8_t recipient[static QPC_KEY_LEN], uint64_t created_at_ms,
                  uint64_t expires_at_ms);

/* Am I waiting for the receipt of id? (Then the user hears what becomes of it.) */
bool receipts_waiting(const struct receipts *r, const uint8_t id[static QPC_ID_LEN]);

/* Stops waiting for id (refused for good, or no longer mine to report). */
void receipts_forget(struct receipts *r, const uint8_t id[static QPC_ID_LEN]);

size_t receipts_waiting_count(const struct receipts *r);

enum receipt_verdict {
    RECEIPT_CONFIRMED = 0,   /* I sent id to signer: delivered; the wait ends */
    RECEIPT_REPEATED,        /* its receipt came before: nothing new */
    RECEIPT_REFUSED,         /* I never sent id to signer (or never sent it): ignored */
};

/*
 * One item of a receipt whose envelope verified under signer (the receipt's sender) and
 * whose box opened. CONFIRMED copies the entry to *done (may be NULL) and removes it;
 * REFUSED is counted (receipts.refused), REPEATED too (receipts.repeated).
 */
enum receipt_verdict receipts_confirm(struct receipts *r, const uint8_t signer[static QPC_KEY_LEN],
                                      const uint8_t id[static QPC_ID_LEN], struct receipt_wait *done);

/*
 * Counts one refusal for the log and says whether to write a line now (at most one per
 * RECEIPTS_LOG_INTERVAL_MS of the monotonic clock mono_ms). *suppressed (may be NULL)
 * gets how many were not logged since the last line.
 */
bool receipts_log_refusal(struct receipts *r, uint64_t mono_ms, uint64_t *suppressed);

/* Ends every wait whose message expired at now (no receipt can come any more); ended
 * (may be NULL) sees each before it goes. */
void receipts_expire(struct receipts *r, uint64_t now,
                     void (*ended)(void *ctx, const struct receipt_wait *w), void *ctx);

/* ---- the recipient's side ------------------------------------------------------------ */

/*
 * I accepted item->id from sender: a receipt is owed, to go to domain (a node domain, ""
 * for my own node or none). The same id owed twice is owed once; a later domain replaces
 * an earlier one. Returns 0, QPC_ERR_QUEUE_FULL (RECEIPTS_OWED_MAX ids owed already: the
 * caller refuses the message for now) or QPC_ERR_NOMEM.
 */
int receipts_owe(struct receipts *r, const uint8_t sender[static QPC_KEY_LEN],
                 const struct qpc_receipt_item *item, const char *domain);

size_t receipts_owed_count(const struct receipts *r);

/*
 * Called with the receipts owed to one sender, at most QPC_RECEIPT_ITEMS_MAX items at a
 * time (only read, valid during the call); returns 0 when it took them (they are no
 * longer owed), nonzero to keep them owed for a later turn.
 */
typedef int (*receipts_take_fn)(void *ctx, const uint8_t sender[static QPC_KEY_LEN],
                                const struct qpc_receipt_item *items, size_t n, const char *domain);

/* Hands every owed receipt to fn, sender by sender. */
void receipts_take_owed(struct receipts *r, receipts_take_fn fn, void *ctx);

/* Has a receipt for id been sealed and held since this process started? A copy that
 * arrives again then needs none; after a restart every copy gets one, since a crash
 * between showing a message and holding its receipt must not lose the receipt. */
bool receipts_receipted(const struct receipts *r, const uint8_t id[static QPC_ID_LEN]);
void receipts_mark_receipted(struct receipts *r, const uint8_t id[static QPC_ID_LEN]);

#endif
