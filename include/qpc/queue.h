/*
 * queue.h: durable delivery queues and the federation outbox, on SQLite in WAL mode.
 *
 * The one idea is GROUP COMMIT. A caller stages writes (qpc_queue_enqueue,
 * qpc_queue_outbox_add) during one event-loop iteration and calls qpc_queue_commit()
 * once at its end: every staged write goes into ONE transaction, so one WAL fsync pays
 * for hundreds of messages. Only after that transaction is durable does each staged
 * write's completion run, and only then may the caller acknowledge to its client. So an
 * acknowledged message survives kill -9 and power loss (see docs/queue.md).
 *
 * Rows of the delivery queue belong to a recipient (a 32-byte Ed25519 public key) and
 * carry a sequence number that is never reused, so a client pages with "after seq".
 * Every read and delete takes the recipient key: there is no call that touches another
 * recipient's rows. Enqueueing the same (recipient, id) twice, with the same expiry,
 * stores one row and reports success both times, so a client that retries after a lost
 * acknowledgement does not create a duplicate (while the first copy is still queued).
 * The expiry is part of the match because duplicates are looked up through the expiry
 * index; a retry of an envelope has the same expiry, since the id covers created_at
 * and ttl.
 *
 * The outbox holds envelopes to forward to another node (federation): rows are due at
 * next_attempt_ms, failed attempts are retried with capped exponential back-off and
 * jitter, and rows end at their TTL.
 *
 * Time is always an argument (`now_ms`, milliseconds since the Unix epoch). A queue
 * handle is used by one thread. (Under QPC_QUEUE_SYNC_THREAD the queue has a thread of
 * its own that only fsyncs the WAL and checkpoints on its own connection; it never
 * touches the caller's connection.)
 */
#ifndef QPC_QUEUE_H
#define QPC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/encoding.h"
#include "qpc/envelope.h"

#define QPC_QUEUE_DOMAIN_MAX 253   /* longest federation domain name (DNS) */

/* Defaults used where a field of struct qpc_queue_limits is 0. */
#define QPC_QUEUE_MAX_ITEMS_DEFAULT 10000u                    /* per recipient */
#define QPC_QUEUE_MAX_BYTES_DEFAULT (64u * 1024 * 1024)       /* per recipient */
#define QPC_QUEUE_MAX_TOTAL_BYTES_DEFAULT (1024ull * 1024 * 1024)  /* whole queue */
#define QPC_QUEUE_MAX_BLOB_DEFAULT (QPC_PAYLOAD_MAX + 4096u)  /* one encoded envelope */
#define QPC_QUEUE_MAX_OUTBOX_DEFAULT 100000u                  /* outbox rows */
#define QPC_QUEUE_BUSY_TIMEOUT_DEFAULT_MS 5000u
#define QPC_QUEUE_RETRY_BASE_DEFAULT_MS 1000u                 /* first retry after ~1 s */
#define QPC_QUEUE_RETRY_CAP_DEFAULT_MS (5u * 60 * 1000)       /* never wait more than 5 min */

enum qpc_queue_sync {
    /* synchronous=FULL: every commit fsyncs the WAL. A committed write survives kill -9
     * AND power loss. The default (the zero value). */
    QPC_QUEUE_SYNC_FULL = 0,
    /* synchronous=NORMAL: the WAL is written at commit but fsynced only at checkpoints.
     * Survives kill -9 (the kernel holds the data), NOT power loss. For tests, benches
     * and clients whose outbox can be rebuilt. */
    QPC_QUEUE_SYNC_NORMAL = 1,
    /* FULL's promise without FULL's wait on the caller's thread: the connection runs
     * synchronous=NORMAL and a thread of the queue fsyncs the WAL after each commit
     * (FULL in WAL mode is exactly NORMAL plus that fsync) and runs the checkpoints on a
     * connection of its own. qpc_queue_commit then returns once the transaction is
     * written, not durable: the committed callback (qpc_queue_set_committed) runs at
     * once, the completions later, from qpc_queue_complete(), after the fsync. For an
     * event loop that must not stop for the disk (qpc-server). */
    QPC_QUEUE_SYNC_THREAD = 2,
};

#define QPC_QUEUE_CHECK_MS_DEFAULT 10000u    /* integrity check at open: at most 10 s */

enum qpc_queue_check {
    /* PRAGMA quick_check at every open, within check_ms (the default, the zero value). */
    QPC_QUEUE_CHECK_QUICK = 0,
    /* No check at open (corruption met later still marks the handle damaged). */
    QPC_QUEUE_CHECK_OFF = 1,
};

/* Limits; a zeroed struct gives every default above. */
struct qpc_queue_limits {
    uint32_t max_items_per_recipient;
    uint64_t max_bytes_per_recipient;
    uint64_t max_total_bytes;        /* all recipients together (QPC_ERR_STORE_FULL) */
    size_t max_blob_len;             /* larger blobs are QPC_ERR_TOO_LARGE */
    uint32_t max_outbox_items;
    uint32_t busy_timeout_ms;        /* wait this long for another writer's lock */
    uint32_t retry_base_ms;          /* outbox back-off: base * 2^(attempts-1) ... */
    uint32_t retry_cap_ms;           /* ... capped here, then jittered to [d/2, d] */
    enum qpc_queue_sync sync;
    enum qpc_queue_check check;
    uint32_t check_ms;               /* time budget of the check at open */
};

struct qpc_queue;

/*
 * Completion of a staged write, run by qpc_queue_commit() after the transaction has
 * ended (or by qpc_queue_close() with QPC_ERR_CLOSED for writes never committed).
 * status is 0 when the row is durably stored (or was already: an idempotent duplicate),
 * else QPC_ERR_QUEUE_FULL, QPC_ERR_STORE_FULL, QPC_ERR_DB or QPC_ERR_CLOSED.
 * seq is the row's sequence number (queue) or outbox id (outbox) when status is 0.
 * A completion may stage new writes; they go into the next commit.
 */
typedef void (*qpc_queue_done_fn)(void *arg, int status, uint64_t seq);

/*
 * Runs for each queue row (qpc_queue_enqueue, stored or already stored) right after the
 * transaction that wrote it committed, with the arg and done of that enqueue still to
 * come: before the row is durable under QPC_QUEUE_SYNC_THREAD, just before done
 * otherwise. A node pushes the message to its recipient from here, while the sender's
 * answer waits for done. That is safe because the WAL is a log: a later transaction
 * (say, the recipient's ack deleting the row) never survives a crash or power cut
 * without the earlier one, and a row lost before it was durable was never acknowledged
 * to its sender, who sends it again (the recipient drops the copy by envelope id).
 */
typedef void (*qpc_queue_committed_fn)(void *arg, uint64_t seq);

/*
 * Opens (creating when missing) the database at path, switches it to WAL, sets the
 * synchronous level and busy timeout, creates the schema and prepares every statement.
 * limits may be NULL (all defaults); it is copied. On success *out is the handle, to be
 * freed with qpc_queue_close.
 * Before anything is trusted to it the file is checked: an existing file of 0 bytes is
 * refused (it lost whatever it held; SQLite would silently make it a new, empty
 * database), and PRAGMA quick_check runs over every page within limits.check_ms (a
 * check that runs out of time is logged and skipped, a damaged file is refused).
 * Returns 0, QPC_ERR_INVALID (NULL path/out), QPC_ERR_NOMEM, QPC_ERR_CRYPTO (libsodium
 * init failed), QPC_ERR_VERSION (file made by a newer schema), QPC_ERR_CORRUPT (empty
 * file, or the check found damage) or QPC_ERR_DB (cannot open, not a database, no WAL).
 * On failure a message naming the file, the cause and what to do is written to errbuf
 * (errlen bytes; may be NULL/0) because there is no handle to ask.
 */
int qpc_queue_open(const char *path, const struct qpc_queue_limits *limits, struct qpc_queue **out,
                   char *errbuf, size_t errlen);

/*
 * Closes the database. Writes still staged are NOT stored: their completions run with
 * QPC_ERR_CLOSED so callers can release what they passed as arg. NULL is a no-op.
 */
void qpc_queue_close(struct qpc_queue *q);

/*
 * The SQLite message of the last QPC_ERR_DB this handle returned (for logs), or "" if
 * none. Owned by q, valid until the next call on q.
 */
const char *qpc_queue_errmsg(const struct qpc_queue *q);

/*
 * True once SQLite met a corrupt page in the file (in any call). From then on the
 * handle refuses every write, so nothing is acknowledged into a file that may already
 * have lost rows: qpc_queue_enqueue and qpc_queue_outbox_add return QPC_ERR_DB at once
 * and qpc_queue_commit completes what was staged with QPC_ERR_DB; reads go on trying.
 * qpc_queue_errmsg then names the file and says what to do.
 */
bool qpc_queue_damaged(const struct qpc_queue *q);

/*
 * Stages one message for recipient: nothing is written until qpc_queue_commit(). The
 * blob (len bytes, typically an encoded envelope) is copied; id is the envelope id.
 * Refusals that need no database are returned at once and nothing is staged (done is
 * NOT called): QPC_ERR_INVALID (NULL key/id/blob, len 0), QPC_ERR_TOO_LARGE (len above
 * max_blob_len), QPC_ERR_EXPIRED (expires_at_ms <= now_ms), QPC_ERR_NOMEM, QPC_ERR_DB
 * (the file is damaged: qpc_queue_damaged).
 * On 0 the write is staged and done(arg, status, seq) runs exactly once, from
 * qpc_queue_commit() or qpc_queue_close(); arg must stay valid until then. done may be
 * NULL (fire and forget).
 */
int qpc_queue_enqueue(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                      const uint8_t id[static QPC_ID_LEN], uint64_t expires_at_ms,
                      const uint8_t *blob, size_t len, uint64_t now_ms,
                      qpc_queue_done_fn done, void *arg);

/*
 * Stages one envelope for the outbox towards domain (NUL-terminated, 1..253 bytes;
 * copied), first due at now_ms. Idempotent per (domain, recipient, id). Immediate
 * refusals and the completion contract are those of qpc_queue_enqueue; the completion's
 * status may be QPC_ERR_QUEUE_FULL when the outbox holds max_outbox_items rows.
 */
int qpc_queue_outbox_add(struct qpc_queue *q, const char *domain,
                         const uint8_t recipient[static QPC_KEY_LEN],
                         const uint8_t id[static QPC_ID_LEN], uint64_t expires_at_ms,
                         const uint8_t *blob, size_t len, uint64_t now_ms,
                         qpc_queue_done_fn done, void *arg);

/*
 * Stages the deletion of outbox row oid into the next qpc_queue_commit(), in staging
 * order with the writes around it, so a caller that ends custody of many rows in one
 * loop iteration pays for them in the same transaction as its new rows. A row already
 * gone is no error. done (may be NULL) runs once from the commit (status 0 when the
 * transaction committed, else its error) or from qpc_queue_close (QPC_ERR_CLOSED).
 * Returns 0, QPC_ERR_INVALID (NULL q, oid 0 or above INT64_MAX) or QPC_ERR_NOMEM.
 */
int qpc_queue_outbox_stage_remove(struct qpc_queue *q, uint64_t oid, qpc_queue_done_fn done,
                                  void *arg);

/* Number of writes staged and not yet committed. */
size_t qpc_queue_staged(const struct qpc_queue *q);

/* Sets the callback run for each queue row a commit wrote (NULL: none); see
 * qpc_queue_committed_fn. It gets the arg given to qpc_queue_enqueue. */
void qpc_queue_set_committed(struct qpc_queue *q, qpc_queue_committed_fn fn);

/*
 * QPC_QUEUE_SYNC_THREAD: a file descriptor that becomes readable when an fsync of the
 * sync thread has ended; the caller then calls qpc_queue_complete(). -1 in the other
 * modes. Owned by q.
 */
int qpc_queue_sync_fd(const struct qpc_queue *q);

/*
 * Runs, in commit order, the completions of every committed write that is durable now
 * (QPC_QUEUE_SYNC_THREAD; a no-op otherwise). When an fsync of the WAL failed, the
 * writes it was to cover complete with QPC_ERR_DB and the handle refuses writes from
 * then on, as for a damaged file (qpc_queue_damaged, qpc_queue_errmsg): the kernel may
 * have dropped pages it could not write, so nothing written since can be vouched for.
 */
void qpc_queue_complete(struct qpc_queue *q);

/*
 * Blocks until every write committed so far is durable, then runs qpc_queue_complete():
 * for a shutdown, so that no completion is left for after the caller's state is gone.
 * A no-op outside QPC_QUEUE_SYNC_THREAD.
 */
void qpc_queue_flush(struct qpc_queue *q);

/*
 * Writes every staged write in one BEGIN IMMEDIATE ... COMMIT transaction, checking
 * quotas in order (a write is checked against the queue as left by the writes before
 * it), then runs the committed callback of each queue row and each completion in
 * staging order (under QPC_QUEUE_SYNC_THREAD the completions of a transaction that
 * committed wait for its fsync: qpc_queue_complete). With nothing staged it does nothing.
 * Returns 0 when the transaction committed (single writes may still have been refused:
 * see their status), or QPC_ERR_DB when it did not: then no staged write is stored and
 * every completion that would have succeeded gets QPC_ERR_DB. Staging is empty after.
 */
int qpc_queue_commit(struct qpc_queue *q);

/* One queued message as returned by qpc_queue_fetch. */
struct qpc_queue_item {
    uint64_t seq;
    uint8_t id[QPC_ID_LEN];
    uint64_t expires_at_ms;
    uint8_t *blob;          /* owned by the array; freed by qpc_queue_items_free */
    size_t blob_len;
};

/*
 * Reads up to limit (1..10000) of recipient's unexpired messages with seq > after_seq,
 * in seq order. On 0, *items is a malloc'd array of *count items (NULL when 0) freed
 * with qpc_queue_items_free. Returns 0, QPC_ERR_INVALID, QPC_ERR_NOMEM or QPC_ERR_DB.
 */
int qpc_queue_fetch(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                    uint64_t after_seq, size_t limit, uint64_t now_ms,
                    struct qpc_queue_item **items, size_t *count);

/* Frees an array from qpc_queue_fetch (blobs included). NULL is a no-op. */
void qpc_queue_items_free(struct qpc_queue_item *items, size_t count);

/*
 * Deletes recipient's messages whose seq is in seqs[0..n) (one durable transaction).
 * Seqs of other recipients or already gone are ignored: *removed (may be NULL) says how
 * many rows went. Returns 0, QPC_ERR_INVALID or QPC_ERR_DB (then nothing is deleted).
 */
int qpc_queue_ack(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                  const uint64_t *seqs, size_t n, size_t *removed);

/* Deletes every message of recipient with seq <= up_to_seq; as qpc_queue_ack. */
int qpc_queue_ack_upto(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                       uint64_t up_to_seq, size_t *removed);

/*
 * Stages an ack for the next qpc_queue_commit(): recipient's messages with seq <=
 * up_to_seq (0: none) and those whose seq is in seqs[0..n) (copied) are deleted inside
 * the commit's transaction, so a node whose clients ack every push pays one fsync per
 * commit, not one per ack. The deletes run before the commit's other writes: an ack
 * never reaches a message staged beside it (its sender cannot have seen it yet), as
 * with qpc_queue_ack. Seqs of other recipients or already gone are ignored.
 * Immediate refusals (done is NOT called): QPC_ERR_INVALID (NULL key, seqs NULL with n
 * > 0), QPC_ERR_NOMEM, QPC_ERR_DB (the file is damaged). On 0, done(arg, status,
 * removed) runs exactly once, from qpc_queue_commit() or qpc_queue_close(): status 0
 * with removed the number of rows deleted, or QPC_ERR_DB / QPC_ERR_CLOSED (then nothing
 * was deleted). done may be NULL.
 */
int qpc_queue_ack_stage(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                        uint64_t up_to_seq, const uint64_t *seqs, size_t n,
                        qpc_queue_done_fn done, void *arg);

/*
 * Deletes every queued message with expires_at_ms <= now_ms; *removed (may be NULL) gets
 * the count. Returns 0 or QPC_ERR_DB.
 */
int qpc_queue_expire(struct qpc_queue *q, uint64_t now_ms, size_t *removed);

/* Figures for metrics. */
struct qpc_queue_stats {
    uint64_t items;          /* queued messages, all recipients (expired not yet removed count) */
    uint64_t bytes;          /* their blob bytes */
    uint64_t recipients;     /* recipients with at least one queued message */
    uint64_t outbox_items;   /* outbox depth */
    uint64_t outbox_bytes;
    /* now_ms of the enqueue (or outbox_add) of the oldest row still stored, expired or
     * not, of the delivery queues and of the outbox; 0 when there is none. "Oldest" is
     * the first stored (smallest seq/oid), so a wall clock stepped back between two
     * writes does not make a younger row look older. Rows kept from a file made before
     * these times were recorded count from the upgrade. */
    uint64_t oldest_enqueued_ms;
    uint64_t outbox_oldest_enqueued_ms;
};

/*
 * Fills *stats. Cheap enough for every scrape: counters kept beside the rows, one
 * B-tree descent per table for the oldest rows, and a count of the recipients that
 * have messages; never a scan of the queued rows. Returns 0 or QPC_ERR_DB.
 */
int qpc_queue_stats(struct qpc_queue *q, struct qpc_queue_stats *stats);

/* Copies the limits q enforces, defaults filled in, into *limits. */
void qpc_queue_limits_get(const struct qpc_queue *q, struct qpc_queue_limits *limits);

/*
 * Queued messages and bytes of one recipient (both 0 when none). Either pointer may be
 * NULL. Returns 0 or QPC_ERR_DB.
 */
int qpc_queue_count(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                    uint64_t *items, uint64_t *bytes);

/* One outbox row as returned by qpc_queue_outbox_due. */
struct qpc_outbox_item {
    uint64_t oid;                           /* handle for mark_failed / remove */
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];
    uint8_t recipient[QPC_KEY_LEN];
    uint8_t id[QPC_ID_LEN];
    uint64_t expires_at_ms;
    uint32_t attempts;                      /* failed attempts so far */
    uint8_t *blob;                          /* owned by the array */
    size_t blob_len;
};

/*
 * Returns up to limit (1..10000) unexpired outbox rows due at now_ms (next attempt <=
 * now_ms), earliest first. When lease_ms > 0 the returned rows are leased: their next
 * attempt moves to now_ms + lease_ms in the same transaction, so a second call does not
 * hand them out again while the caller is sending them, and a crash mid-send makes them
 * due again when the lease ends. Times are wall-clock (they outlive the process), so a
 * clock stepped back must not hold rows back for the length of the step: a row due
 * later than now_ms + retry_cap_ms + lease_ms, which no back-off or lease (callers keep
 * one lease length) can have scheduled, is due now. *items is malloc'd (NULL when
 * *count is 0), freed with qpc_outbox_items_free. Returns 0, QPC_ERR_INVALID,
 * QPC_ERR_NOMEM or QPC_ERR_DB.
 */
int qpc_queue_outbox_due(struct qpc_queue *q, uint64_t now_ms, size_t limit, uint64_t lease_ms,
                         struct qpc_outbox_item **items, size_t *count);

/*
 * Reads up to limit (1..10000) unexpired outbox rows with oid > after_oid, in oid order,
 * whether due or not and without leasing them: a reader pages through every row by
 * passing the last oid it got. *items is malloc'd (NULL when *count is 0), freed with
 * qpc_outbox_items_free. Returns 0, QPC_ERR_INVALID, QPC_ERR_NOMEM or QPC_ERR_DB.
 */
int qpc_queue_outbox_list(struct qpc_queue *q, uint64_t after_oid, size_t limit, uint64_t now_ms,
                          struct qpc_outbox_item **items, size_t *count);

/* Frees an array from qpc_queue_outbox_due or qpc_queue_outbox_list. NULL is a no-op. */
void qpc_outbox_items_free(struct qpc_outbox_item *items, size_t count);

/*
 * Records a failed attempt at oid: attempts + 1, next attempt at now_ms +
 * qpc_queue_retry_delay_ms(attempts + 1, random). The row stays until it succeeds,
 * its TTL ends (qpc_queue_outbox_expire) or it is removed. *next_attempt_ms (may be
 * NULL) gets the new time. Returns 0, QPC_ERR_NOT_FOUND or QPC_ERR_DB.
 */
int qpc_queue_outbox_mark_failed(struct qpc_queue *q, uint64_t oid, uint64_t now_ms,
                                 uint64_t *next_attempt_ms);

/*
 * qpc_queue_outbox_mark_failed for every row of oids[0..n) (e.g. all a failed link had
 * taken) in ONE durable transaction: one fsync for the batch instead of one per row.
 * oids is only read; rows already gone are skipped: *marked (may be NULL) says how many
 * were marked. n == 0 does nothing. Returns 0, QPC_ERR_INVALID (NULL q, NULL oids with
 * n > 0) or QPC_ERR_DB (then no row changed).
 */
int qpc_queue_outbox_mark_failed_many(struct qpc_queue *q, const uint64_t *oids, size_t n,
                                      uint64_t now_ms, size_t *marked);

/*
 * A way to domain opened (a route learned, a link up): every row for domain (compared
 * without case) that failed an attempt and waits for its back-off is due at now_ms
 * instead, in one durable transaction. Rows never tried (attempts 0) are left alone, so
 * a row leased for its first attempt is not sent twice; a retried row leased again may
 * be (the receiving node stores an id once). *woken (may be NULL) says how many.
 * Returns 0, QPC_ERR_INVALID (NULL q or domain) or QPC_ERR_DB.
 */
int qpc_queue_outbox_wake(struct qpc_queue *q, const char *domain, uint64_t now_ms, size_t *woken);

/* Deletes oid after a successful delivery. Returns 0, QPC_ERR_NOT_FOUND or QPC_ERR_DB. */
int qpc_queue_outbox_remove(struct qpc_queue *q, uint64_t oid);

/*
 * Deletes the outbox rows oids[0..n) (e.g. every row a remote node just acknowledged)
 * in ONE durable transaction, so a batch costs one fsync instead of n. oids is only
 * read; ids already gone (or never there) are ignored: *removed (may be NULL) says how
 * many rows went. n == 0 does nothing. Returns 0, QPC_ERR_INVALID (NULL q, NULL oids
 * with n > 0) or QPC_ERR_DB (then no row is deleted).
 */
int qpc_queue_outbox_remove_many(struct qpc_queue *q, const uint64_t *oids, size_t n,
                                 size_t *removed);

/* Deletes outbox rows whose TTL has ended; as qpc_queue_expire. */
int qpc_queue_outbox_expire(struct qpc_queue *q, uint64_t now_ms, size_t *removed);

/*
 * How many write transactions this handle has committed since it was opened (group
 * commits, outbox updates, acks, expiry: every one is an fsync with QPC_QUEUE_SYNC_FULL).
 * For metrics and for tests that check a piece of work is batched. 0 for NULL.
 */
uint64_t qpc_queue_transactions(const struct qpc_queue *q);

/*
 * The back-off rule (pure): d = min(cap_ms, base_ms * 2^(attempts-1)) for attempts >= 1,
 * then jittered into [d/2, d] by rnd (any 32-bit random value), so retries of many rows
 * failed together spread out. attempts 0 gives 0.
 */
uint64_t qpc_queue_retry_delay_ms(uint32_t attempts, uint32_t base_ms, uint32_t cap_ms,
                                  uint32_t rnd);

#endif
