/*
 * queue.c: durable delivery queues and the federation outbox on SQLite (WAL).
 *
 * The one idea: writes are staged in memory and stored by qpc_queue_commit() in a
 * single BEGIN IMMEDIATE transaction, and completions (the caller's "acknowledge") run
 * only after COMMIT returned. With synchronous=FULL in WAL mode COMMIT returns after
 * the WAL is fsynced, so an acknowledged write survives power loss; batching amortises
 * that fsync over every write of an event-loop iteration. Acks can be staged the same
 * way (qpc_queue_ack_stage): a node whose clients ack every push would otherwise pay
 * an fsync per ack on its loop.
 *
 * Quota counters (items and bytes per recipient, totals for the queue and the outbox)
 * change in the same transactions as the rows they count, so they never drift from the
 * rows, even across a crash, and a quota check reads a counter instead of counting
 * the recipient's rows.
 *
 * Under QPC_QUEUE_SYNC_THREAD the fsync leaves the caller's thread (queue_sync.c): the
 * connection runs synchronous=NORMAL, a committed transaction's completions wait in
 * q->unsynced for the sync thread's fsync of the WAL, and qpc_queue_complete() runs them
 * once it is done. What needs no durability (the committed callback, with which a node
 * pushes a message to its recipient) runs at COMMIT.
 *
 * A damaged file is never used quietly: an empty file is refused at open (SQLite would
 * take it for a new database), every open runs PRAGMA quick_check within a time budget,
 * and a corrupt page met later marks the handle damaged, after which writes are refused.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sodium.h>
#include <sqlite3.h>
/* The batch's tally is keyed by recipient keys strangers choose: keyed hash, and an
 * insert that cannot allocate fails the commit instead of exit()ing. */
#define HASH_NONFATAL_OOM 1
#include "qpc/uthash_keyed.h"
#include <utlist.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/queue.h"
#include "queue_sync.h"

#define SCHEMA_VERSION 3
#define PAGE_MAX 10000   /* largest fetch/due page */
#define WAL_CHECKPOINT_PAGES 4000
/* QPC_QUEUE_SYNC_THREAD: the sync thread checkpoints from WAL_CHECKPOINT_PAGES on, beside
 * the writes; a WAL that still grew to this many pages (writes never paused long enough
 * for a checkpoint to catch up) is checkpointed on the caller's thread, as
 * wal_autocheckpoint would, so the file stays bounded. */
#define WAL_CHECKPOINT_PAGES_HARD (4 * WAL_CHECKPOINT_PAGES)

/*
 * seq uses AUTOINCREMENT so a number is never handed out twice, even after the row with
 * the highest seq was acked: clients page with "after seq" and must not miss a message.
 *
 * The schema is shaped for write cost, because with group commit the fsync is cheap and
 * the pages a transaction dirties are what remains: queue rows name their recipient by a
 * small integer (recipients.rid), and duplicates are found through the expiry index,
 * (expires_at, idh) with idh the first 8 bytes of the id, the full (rid, id) compared in
 * the row. A retry carries the same expiry as the original (both come from the
 * envelope, whose id covers created_at and ttl), so it finds the original there.
 * Envelope ids are SHA-256: an index led by the id takes every insert at a random page,
 * and a group commit of N rows then dirties (and writes to the WAL, and later
 * checkpoints) up to N of its leaf pages. Led by the expiry, which grows with time,
 * inserts land together at the end, and expire's range delete uses the same index, so
 * each row feeds two indexes instead of three. Uniqueness of (rid, id) is kept by
 * qpc_queue_commit, the only writer of queue rows, inside its BEGIN IMMEDIATE
 * transaction. (Schema version 1 had separate idh and expires_at indexes; opening such
 * a file replaces them.)
 *
 * recipients also holds each queue's counters; totals row 0 counts the queue, row 1 the
 * outbox. Deletes (ack, expire, any path) are counted by triggers. Queue inserts happen
 * only in qpc_queue_commit, which tallies them in memory and writes each touched
 * recipient's counters once per transaction: a trigger per insert cost two UPDATEs a
 * row. Either way the counters change in the same transaction as the rows.
 *
 * enqueued_at (both tables) is the caller's now_ms when the write was staged. seq and
 * oid only grow, so the row with the smallest one is the oldest stored, and the age of
 * the oldest message (qpc_queue_stats) is one descent of the table's own B-tree:
 * no index, no scan, however long the queue. (Version 2 had no such column; see
 * upgrade_to_3.)
 */
static const char SCHEMA[] =
    "CREATE TABLE recipients(rid INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE,"
    "  items INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE queue("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  rid INTEGER NOT NULL, idh INTEGER NOT NULL, id BLOB NOT NULL,"
    "  expires_at INTEGER NOT NULL, blob BLOB NOT NULL, enqueued_at INTEGER NOT NULL);"
    "CREATE INDEX queue_by_recipient ON queue(rid);"   /* (rid, seq): seq is the rowid */
    "CREATE INDEX queue_by_expiry_id ON queue(expires_at, idh);"
    "CREATE TABLE totals(k INTEGER PRIMARY KEY, items INTEGER NOT NULL, bytes INTEGER NOT NULL);"
    "INSERT INTO totals VALUES(0, 0, 0), (1, 0, 0);"
    "CREATE TRIGGER queue_removed AFTER DELETE ON queue BEGIN"
    "  UPDATE recipients SET items = items - 1, bytes = bytes - length(OLD.blob)"
    "    WHERE rid = OLD.rid;"
    "  UPDATE totals SET items = items - 1, bytes = bytes - length(OLD.blob) WHERE k = 0;"
    "END;"
    "CREATE TABLE outbox("
    "  oid INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  domain TEXT NOT NULL, recipient BLOB NOT NULL, id BLOB NOT NULL,"
    "  blob BLOB NOT NULL, expires_at INTEGER NOT NULL,"
    "  next_attempt INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    "  enqueued_at INTEGER NOT NULL, UNIQUE(domain, recipient, id));"
    "CREATE INDEX outbox_by_due ON outbox(next_attempt);"
    "CREATE INDEX outbox_by_expiry ON outbox(expires_at);"
    "CREATE TRIGGER outbox_added AFTER INSERT ON outbox BEGIN"
    "  UPDATE totals SET items = items + 1, bytes = bytes + length(NEW.blob) WHERE k = 1;"
    "END;"
    "CREATE TRIGGER outbox_removed AFTER DELETE ON outbox BEGIN"
    "  UPDATE totals SET items = items - 1, bytes = bytes - length(OLD.blob) WHERE k = 1;"
    "END;";

/* Every statement is prepared once at open (SQLITE_PREPARE_PERSISTENT) and reused. */
enum stmt_id {
    S_BEGIN, S_COMMIT, S_ROLLBACK,
    S_RCPT, S_RCPT_ADD, S_RCPT_GC, S_FIND, S_USAGE, S_TOTALS, S_INSERT, S_FETCH, S_ACK_ONE,
    S_ACK_UPTO, S_EXPIRE, S_RECIPIENTS, S_RCPT_SET, S_TOTALS_SET,
    S_OB_FIND, S_OB_INSERT, S_OB_DUE, S_OB_LEASE, S_OB_ATTEMPTS, S_OB_RETRY, S_OB_REMOVE, S_OB_WAKE,
    S_OB_EXPIRE, S_OB_LIST, S_OLDEST, S_OB_OLDEST,
    S_COUNT
};

/* Reads and deletes name the recipient by its key (?1), so no call reaches another's rows. */
#define RID_OF_KEY "(SELECT rid FROM recipients WHERE key = ?1)"

static const char *const STMT_SQL[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_RCPT] = "SELECT rid, items, bytes FROM recipients WHERE key = ?1",
    [S_RCPT_ADD] = "INSERT INTO recipients(key) VALUES(?1)",
    [S_RCPT_GC] = "DELETE FROM recipients WHERE items <= 0",
    [S_FIND] = "SELECT seq FROM queue INDEXED BY queue_by_expiry_id"
               " WHERE expires_at = ?4 AND idh = ?1 AND rid = ?2 AND id = ?3",
    [S_USAGE] = "SELECT items, bytes FROM recipients WHERE key = ?1",
    [S_TOTALS] = "SELECT items, bytes FROM totals WHERE k = ?1",
    [S_INSERT] = "INSERT INTO queue(rid, idh, id, expires_at, blob, enqueued_at)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [S_FETCH] = "SELECT seq, id, expires_at, blob FROM queue WHERE rid = " RID_OF_KEY
                " AND seq > ?2 AND expires_at > ?3 ORDER BY seq LIMIT ?4",
    [S_ACK_ONE] = "DELETE FROM queue WHERE rid = " RID_OF_KEY " AND seq = ?2",
    [S_ACK_UPTO] = "DELETE FROM queue WHERE rid = " RID_OF_KEY " AND seq <= ?2",
    [S_EXPIRE] = "DELETE FROM queue WHERE expires_at <= ?1",
    [S_RECIPIENTS] = "SELECT count(*) FROM recipients WHERE items > 0",
    [S_RCPT_SET] = "UPDATE recipients SET items = ?2, bytes = ?3 WHERE rid = ?1",
    [S_TOTALS_SET] = "UPDATE totals SET items = ?2, bytes = ?3 WHERE k = ?1",
    [S_OB_FIND] = "SELECT oid FROM outbox WHERE domain = ?1 AND recipient = ?2 AND id = ?3",
    [S_OB_INSERT] = "INSERT INTO outbox(domain, recipient, id, blob, expires_at, next_attempt,"
                    " enqueued_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    /* Two range searches of outbox_by_due (due; scheduled beyond ?3, see select_due):
     * written as one OR, SQLite would scan the whole index instead. */
    [S_OB_DUE] = "SELECT * FROM ("
                 "SELECT oid, domain, recipient, id, expires_at, attempts, blob, next_attempt"
                 " FROM outbox WHERE next_attempt <= ?1 AND expires_at > ?1 UNION ALL "
                 "SELECT oid, domain, recipient, id, expires_at, attempts, blob, next_attempt"
                 " FROM outbox WHERE next_attempt > ?3 AND expires_at > ?1)"
                 " ORDER BY next_attempt, oid LIMIT ?2",
    [S_OB_LEASE] = "UPDATE outbox SET next_attempt = ?2 WHERE oid = ?1",
    [S_OB_ATTEMPTS] = "SELECT attempts FROM outbox WHERE oid = ?1",
    [S_OB_RETRY] = "UPDATE outbox SET attempts = ?2, next_attempt = ?3 WHERE oid = ?1",
    [S_OB_REMOVE] = "DELETE FROM outbox WHERE oid = ?1",
    /* Domains compare without case, as DNS names do (the node's tables lower-case them). */
    [S_OB_WAKE] = "UPDATE outbox SET next_attempt = ?2"
                  " WHERE domain = ?1 COLLATE NOCASE AND attempts > 0 AND next_attempt > ?2"
                  " AND expires_at > ?2",
    [S_OB_EXPIRE] = "DELETE FROM outbox WHERE expires_at <= ?1",
    [S_OB_LIST] = "SELECT oid, domain, recipient, id, expires_at, attempts, blob FROM outbox"
                  " WHERE oid > ?1 AND expires_at > ?2 ORDER BY oid LIMIT ?3",
    /* The first row in rowid order: the smallest seq/oid, found without a scan. */
    [S_OLDEST] = "SELECT enqueued_at FROM queue ORDER BY seq LIMIT 1",
    [S_OB_OLDEST] = "SELECT enqueued_at FROM outbox ORDER BY oid LIMIT 1",
};

enum staged_kind { STAGED_QUEUE, STAGED_OUTBOX, STAGED_OUTBOX_REMOVE, STAGED_ACK };

/* A write waiting for the next commit; the blob is copied into the same allocation. */
struct staged {
    struct staged *prev, *next;
    enum staged_kind kind;
    uint8_t recipient[QPC_KEY_LEN];
    uint8_t id[QPC_ID_LEN];
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];
    uint64_t expires_at_ms;
    uint64_t now_ms;
    uint64_t oid;                  /* STAGED_OUTBOX_REMOVE: the row to delete */
    uint64_t up_to_seq;            /* STAGED_ACK: delete seq <= this (the blob: more seqs) */
    qpc_queue_done_fn done;
    void *arg;
    int status;
    uint64_t seq;
    uint64_t gen;                  /* QPC_QUEUE_SYNC_THREAD: the transaction to be synced */
    size_t len;
    uint8_t blob[];
};

/* A recipient's counters while a commit runs: read once, written back once. */
struct tally {
    uint8_t key[QPC_KEY_LEN];
    int64_t rid;
    uint64_t items, bytes;
    bool changed;
    UT_hash_handle hh;
};

/* What one commit adds to the queue, written to the database before COMMIT. */
struct batch {
    struct tally *recipients;   /* uthash by key */
    uint64_t items, bytes;      /* queue totals, read at the start of the commit */
    bool changed;
};

struct qpc_queue {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    struct qpc_queue_limits limits;
    struct staged *staged;
    size_t n_staged;
    bool damaged;                  /* SQLite found a corrupt page: no more writes */
    uint64_t transactions;         /* commits of this handle (sqlite3_commit_hook) */
    qpc_queue_committed_fn committed;
    /* QPC_QUEUE_SYNC_THREAD only: */
    struct queue_syncer *syncer;
    uint64_t sync_asked;           /* transactions the syncer was asked to make durable */
    bool checkpoint_due;           /* the WAL passed WAL_CHECKPOINT_PAGES (wal hook) */
    struct staged *unsynced;       /* committed, completions waiting for the fsync */
    char path[512];
    char errmsg[1024];
};

/* What to do about a damaged file, for the messages that report one. */
#define DAMAGED_ADVICE "stop the program, keep a copy of the file, then recover what it " \
    "holds with `sqlite3 FILE .recover` into a new file, or move it aside to start with an " \
    "empty one"

static bool is_corruption(int code)
{
    code &= 0xff;   /* extended codes (SQLITE_CORRUPT_INDEX, ...) share the primary one */
    return code == SQLITE_CORRUPT || code == SQLITE_NOTADB;
}

/*
 * Remembers SQLite's message now: a later ROLLBACK would overwrite it. A corrupt page
 * marks the handle damaged: from then on every write is refused at once, so no write
 * is acknowledged into a file whose pages may already be lost (a queue that cannot be
 * read while enqueues for it still answer OK would be a silent loss).
 */
static int db_fail(struct qpc_queue *q, const char *what)
{
    if (is_corruption(sqlite3_extended_errcode(q->db))) {
        q->damaged = true;
        snprintf(q->errmsg, sizeof(q->errmsg), "%s: %.400s is damaged (%.200s); new writes are "
                 "refused: " DAMAGED_ADVICE, what, q->path, sqlite3_errmsg(q->db));
    } else if (q->damaged) {
        return QPC_ERR_DB;   /* keep the message that says what to do */
    } else {
        snprintf(q->errmsg, sizeof(q->errmsg), "%s: %s", what, sqlite3_errmsg(q->db));
    }
    return QPC_ERR_DB;
}

/* Returns a reset statement ready for binding. */
static sqlite3_stmt *stmt(struct qpc_queue *q, enum stmt_id id)
{
    sqlite3_reset(q->stmt[id]);
    return q->stmt[id];
}

static sqlite3_int64 clamp_time(uint64_t ms)
{
    return ms > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)ms;
}

/* Runs a statement that returns no rows. */
static int exec_stmt(struct qpc_queue *q, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : db_fail(q, what);
    sqlite3_reset(st);
    return ret;
}

static int tx_begin(struct qpc_queue *q)
{
    return exec_stmt(q, stmt(q, S_BEGIN), "begin");
}

/*
 * QPC_QUEUE_SYNC_THREAD: every write transaction is made durable soon after it
 * committed, whether anyone waits for it or not; one fsync covers all asked so far.
 */
static void sync_soon(struct qpc_queue *q)
{
    if (q->syncer == NULL || (q->transactions == q->sync_asked && !q->checkpoint_due))
        return;
    q->sync_asked = q->transactions;
    queue_syncer_request(q->syncer, q->sync_asked, q->checkpoint_due);
    q->checkpoint_due = false;
}

/* Commits when ret is 0, else rolls back; returns ret or the commit's failure. */
static int tx_end(struct qpc_queue *q, int ret)
{
    if (ret == 0)
        ret = exec_stmt(q, stmt(q, S_COMMIT), "commit");
    if (ret != 0 && !sqlite3_get_autocommit(q->db)) {
        sqlite3_step(stmt(q, S_ROLLBACK));   /* its own failure changes nothing for us */
        sqlite3_reset(q->stmt[S_ROLLBACK]);
    }
    sync_soon(q);
    return ret;
}

static void apply_defaults(struct qpc_queue_limits *l)
{
    if (l->max_items_per_recipient == 0)
        l->max_items_per_recipient = QPC_QUEUE_MAX_ITEMS_DEFAULT;
    if (l->max_bytes_per_recipient == 0)
        l->max_bytes_per_recipient = QPC_QUEUE_MAX_BYTES_DEFAULT;
    if (l->max_total_bytes == 0)
        l->max_total_bytes = QPC_QUEUE_MAX_TOTAL_BYTES_DEFAULT;
    if (l->max_blob_len == 0)
        l->max_blob_len = QPC_QUEUE_MAX_BLOB_DEFAULT;
    if (l->max_outbox_items == 0)
        l->max_outbox_items = QPC_QUEUE_MAX_OUTBOX_DEFAULT;
    if (l->busy_timeout_ms == 0)
        l->busy_timeout_ms = QPC_QUEUE_BUSY_TIMEOUT_DEFAULT_MS;
    if (l->retry_base_ms == 0)
        l->retry_base_ms = QPC_QUEUE_RETRY_BASE_DEFAULT_MS;
    if (l->retry_cap_ms == 0)
        l->retry_cap_ms = QPC_QUEUE_RETRY_CAP_DEFAULT_MS;
    if (l->check_ms == 0)
        l->check_ms = QPC_QUEUE_CHECK_MS_DEFAULT;
}

/* Version 1 -> 2: the idh and expires_at indexes become one (expires_at, idh) index. */
static const char MIGRATE_1_TO_2[] =
    "BEGIN IMMEDIATE;"
    "DROP INDEX queue_by_id;"
    "DROP INDEX queue_by_expiry;"
    "CREATE INDEX queue_by_expiry_id ON queue(expires_at, idh);"
    "PRAGMA user_version = 2;"
    "COMMIT;";

/* Runs a multi-statement script in its own transaction; rolls back on failure. */
static int exec_script(struct qpc_queue *q, const char *sql, const char *what)
{
    int ret = 0;

    if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        ret = db_fail(q, what);
        if (!sqlite3_get_autocommit(q->db))
            sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return ret;
}

/*
 * Version 2 -> 3: both tables get enqueued_at. Rows stored before the upgrade have no
 * time of their own, so they take the time of the upgrade as a constant column default
 * (SQLite stores it once in the schema and rewrites no row, however large the queue):
 * their age is counted from the upgrade, a lower bound. This is the one place the queue
 * reads the clock itself, because qpc_queue_open has no caller's now to use.
 */
static int upgrade_to_3(struct qpc_queue *q)
{
    struct timespec ts;
    long long now_ms;
    char sql[384];

    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    snprintf(sql, sizeof(sql),
             "BEGIN IMMEDIATE;"
             "ALTER TABLE queue ADD COLUMN enqueued_at INTEGER NOT NULL DEFAULT %lld;"
             "ALTER TABLE outbox ADD COLUMN enqueued_at INTEGER NOT NULL DEFAULT %lld;"
             "PRAGMA user_version = 3;"
             "COMMIT;", now_ms, now_ms);
    return exec_script(q, sql, "upgrade schema 2 to 3");
}

/* Reads PRAGMA user_version; creates the schema in a fresh file, upgrades an older one. */
static int ensure_schema(struct qpc_queue *q)
{
    sqlite3_stmt *st = NULL;
    int version = -1, ret = 0;

    if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        ret = db_fail(q, "read schema version");
        goto out;
    }
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);   /* an open read statement would block DROP INDEX */
    st = NULL;
    if (version > SCHEMA_VERSION) {
        snprintf(q->errmsg, sizeof(q->errmsg), "schema version %d is newer than %d",
                 version, SCHEMA_VERSION);
        ret = QPC_ERR_VERSION;
    } else if (version == 0) {
        /* One transaction: a crash during creation leaves an empty file, not half a schema. */
        char sql[sizeof(SCHEMA) + 96];
        snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;%sPRAGMA user_version = %d;COMMIT;",
                 SCHEMA, SCHEMA_VERSION);
        ret = exec_script(q, sql, "create schema");
    } else {
        /* Each step is its own transaction: a crash between two leaves a file of the
         * version before, which the next open upgrades further. */
        if (version == 1)
            ret = exec_script(q, MIGRATE_1_TO_2, "upgrade schema 1 to 2");
        if (ret == 0 && (version == 1 || version == 2))
            ret = upgrade_to_3(q);
    }
out:
    sqlite3_finalize(st);
    return ret;
}

/* WAL and the synchronous level are per connection (WAL persists in the file). */
static int configure(struct qpc_queue *q)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    char sql[96];

    sqlite3_busy_timeout(q->db, (int)q->limits.busy_timeout_ms);
    if (sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        ret = db_fail(q, "journal_mode");
        goto out;
    }
    if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        snprintf(q->errmsg, sizeof(q->errmsg), "cannot switch to WAL (journal mode %s)",
                 (const char *)sqlite3_column_text(st, 0));
        ret = QPC_ERR_DB;
        goto out;
    }
    /* A checkpoint costs two fsyncs and rewrites every page it copies; checkpointing at
     * 4000 pages (16 MiB of WAL) instead of 1000 copies hot pages less often. */
    snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s; PRAGMA wal_autocheckpoint = %d",
             q->limits.sync == QPC_QUEUE_SYNC_NORMAL ? "NORMAL" : "FULL", WAL_CHECKPOINT_PAGES);
    if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        ret = db_fail(q, "synchronous");
out:
    sqlite3_finalize(st);
    return ret;
}

/* Stops an integrity check that has run out of its time budget. */
struct check_budget {
    struct timespec deadline;
    bool expired;
};

static int check_progress(void *arg)
{
    struct check_budget *b = arg;
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > b->deadline.tv_sec ||
        (now.tv_sec == b->deadline.tv_sec && now.tv_nsec >= b->deadline.tv_nsec))
        b->expired = true;
    return b->expired;   /* non-zero interrupts the statement */
}

/*
 * PRAGMA quick_check: every page's b-tree structure, in time O(size of the file). It
 * gives up after check_ms (a huge file on slow storage), saying so, rather than hold the
 * start for minutes. Returns 0, or QPC_ERR_CORRUPT with errmsg saying what to do.
 */
static int integrity_check(struct qpc_queue *q)
{
    struct check_budget budget = { .expired = false };
    sqlite3_stmt *st = NULL;
    const char *first = NULL;
    int rc, ret = 0;

    clock_gettime(CLOCK_MONOTONIC, &budget.deadline);
    budget.deadline.tv_sec += (time_t)(q->limits.check_ms / 1000);
    budget.deadline.tv_nsec += (long)(q->limits.check_ms % 1000) * 1000000L;
    if (budget.deadline.tv_nsec >= 1000000000L) {
        budget.deadline.tv_sec++;
        budget.deadline.tv_nsec -= 1000000000L;
    }
    sqlite3_progress_handler(q->db, 10000, check_progress, &budget);
    if (sqlite3_prepare_v2(q->db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
        ret = is_corruption(sqlite3_extended_errcode(q->db)) ? QPC_ERR_CORRUPT
                                                             : db_fail(q, "integrity check");
        first = sqlite3_errmsg(q->db);
    } else if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        first = (const char *)sqlite3_column_text(st, 0);
        if (first == NULL || strcmp(first, "ok") != 0)
            ret = QPC_ERR_CORRUPT;
    } else if (!budget.expired) {
        ret = is_corruption(sqlite3_extended_errcode(q->db)) ? QPC_ERR_CORRUPT
                                                             : db_fail(q, "integrity check");
        first = sqlite3_errmsg(q->db);
    }
    if (ret == QPC_ERR_CORRUPT)
        snprintf(q->errmsg, sizeof(q->errmsg), "the database is damaged (integrity check: "
                 "%s); it is not used: " DAMAGED_ADVICE, first != NULL ? first : "?");
    else if (budget.expired)
        qpc_log_warn("queue", "%s: integrity check stopped after %u ms (a large file); "
                     "starting without it", q->path, q->limits.check_ms);
    sqlite3_finalize(st);
    sqlite3_progress_handler(q->db, 0, NULL, NULL);
    return ret;
}

/*
 * An empty file where a database should be is one that lost its contents (a crash
 * while it was made, a full disk, a failed copy); SQLite would take it for a new
 * database and the queue would start empty without a word.
 */
static int refuse_empty_file(struct qpc_queue *q, const char *path)
{
    struct stat sb;

    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size != 0)
        return 0;
    snprintf(q->errmsg, sizeof(q->errmsg), "the file is empty (0 bytes), so whatever it held "
             "is gone; it is not taken for a new database: if starting afresh is what you "
             "want, delete it");
    return QPC_ERR_CORRUPT;
}

static int prepare_all(struct qpc_queue *q)
{
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(q->db, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &q->stmt[i], NULL) != SQLITE_OK)
            return db_fail(q, STMT_SQL[i]);
    }
    return 0;
}

/* Counts every transaction that commits, explicit or a single statement's own, so
 * callers and tests can see how many fsyncs a piece of work cost. */
static int count_commit(void *arg)
{
    ((struct qpc_queue *)arg)->transactions++;
    return 0;   /* let it commit */
}

/*
 * QPC_QUEUE_SYNC_THREAD's stand-in for wal_autocheckpoint (SQLite calls it after each
 * commit with the WAL's size in pages): the sync thread checkpoints beside the writes;
 * only a WAL that outgrew WAL_CHECKPOINT_PAGES_HARD all the same is checkpointed here,
 * on the caller's thread, so that it cannot grow without bound.
 */
static int wal_grew(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct qpc_queue *q = arg;

    if (pages >= WAL_CHECKPOINT_PAGES_HARD)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    else if (pages >= WAL_CHECKPOINT_PAGES)
        q->checkpoint_due = true;   /* asked for with the sync this commit asks for */
    return SQLITE_OK;
}

/*
 * QPC_QUEUE_SYNC_THREAD: the schema work of open was synced under FULL; from here on the
 * connection runs NORMAL and the sync thread adds the fsync after each commit.
 */
static int start_sync_thread(struct qpc_queue *q)
{
    int ret = queue_syncer_start(q->path, q->transactions, &q->syncer, q->errmsg,
                                 sizeof(q->errmsg));

    if (ret != 0)
        return ret;
    q->sync_asked = q->transactions;
    if (sqlite3_exec(q->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(q, "synchronous");
    sqlite3_wal_hook(q->db, wal_grew, q);   /* replaces wal_autocheckpoint */
    return 0;
}

int qpc_queue_open(const char *path, const struct qpc_queue_limits *limits, struct qpc_queue **out,
                   char *errbuf, size_t errlen)
{
    struct qpc_queue *q = NULL;
    int ret = 0;

    if (path == NULL || out == NULL)
        return QPC_ERR_INVALID;
    *out = NULL;
    if (sodium_init() < 0)   /* randombytes_random() jitters outbox retries */
        return QPC_ERR_CRYPTO;
    if ((q = calloc(1, sizeof(*q))) == NULL)
        return QPC_ERR_NOMEM;
    if (limits != NULL)
        q->limits = *limits;
    apply_defaults(&q->limits);
    snprintf(q->path, sizeof(q->path), "%s", path);

    if ((ret = refuse_empty_file(q, path)) != 0)
        goto out;
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        ret = q->db != NULL ? db_fail(q, "open") : QPC_ERR_NOMEM;
        goto out;
    }
    if ((ret = configure(q)) != 0)
        goto out;
    if (q->limits.check == QPC_QUEUE_CHECK_QUICK && (ret = integrity_check(q)) != 0)
        goto out;
    if ((ret = ensure_schema(q)) != 0 || (ret = prepare_all(q)) != 0)
        goto out;
    sqlite3_commit_hook(q->db, count_commit, q);
    if (q->limits.sync == QPC_QUEUE_SYNC_THREAD && (ret = start_sync_thread(q)) != 0)
        goto out;
    *out = q;
out:
    if (ret != 0) {
        if (errbuf != NULL && errlen > 0)
            snprintf(errbuf, errlen, "%s: %s", path, q->errmsg);
        qpc_queue_close(q);
    }
    return ret;
}

/* Detaches the staged list so completions may stage anew while we walk the old one. */
static struct staged *take_staged(struct qpc_queue *q)
{
    struct staged *list = q->staged;
    q->staged = NULL;
    q->n_staged = 0;
    return list;
}

static void complete_all(struct staged *list)
{
    struct staged *s, *tmp;
    DL_FOREACH_SAFE(list, s, tmp) {
        DL_DELETE(list, s);
        if (s->done != NULL)
            s->done(s->arg, s->status, s->status == 0 ? s->seq : 0);
        free(s);
    }
}

/*
 * QPC_QUEUE_SYNC_THREAD: runs the completions of the committed writes whose transaction
 * the sync thread has made durable, oldest first. When an fsync failed, every write
 * still waiting fails with QPC_ERR_DB (refusals keep their status) and the handle
 * refuses writes from then on.
 */
static void complete_synced(struct qpc_queue *q)
{
    struct staged *ready = NULL, *s;
    uint64_t synced;
    bool failed;
    char why[256] = "";

    queue_syncer_poll(q->syncer, &synced, &failed, why, sizeof(why));
    if (failed && !q->damaged) {
        q->damaged = true;
        snprintf(q->errmsg, sizeof(q->errmsg), "%s: what was written since the last good "
                 "sync may not be on disk, so new writes are refused; stop the node, check "
                 "the disk, then start it again (SQLite recovers the WAL)", why);
        qpc_log_error("queue", "%s", q->errmsg);
    }
    /* Detached first: a completion may stage (and the caller commit) new writes. */
    while ((s = q->unsynced) != NULL && (failed || s->gen <= synced)) {
        DL_DELETE(q->unsynced, s);
        if (s->gen > synced && s->status == 0)
            s->status = QPC_ERR_DB;
        DL_APPEND(ready, s);
    }
    complete_all(ready);
}

void qpc_queue_close(struct qpc_queue *q)
{
    struct staged *list;

    if (q == NULL)
        return;
    list = take_staged(q);
    for (struct staged *s = list; s != NULL; s = s->next)
        s->status = QPC_ERR_CLOSED;
    complete_all(list);
    if (q->syncer != NULL) {
        queue_syncer_wait(q->syncer, q->transactions);
        complete_synced(q);
        queue_syncer_stop(q->syncer);
        /* The close below is the last connection's: it checkpoints and deletes the WAL,
         * and FULL has it sync the database first (NORMAL would as well; no doubt). */
        sqlite3_exec(q->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    }
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(q->stmt[i]);
    sqlite3_close(q->db);   /* the last connection's close checkpoints the WAL */
    free(q);
}

void qpc_queue_set_committed(struct qpc_queue *q, qpc_queue_committed_fn fn)
{
    if (q != NULL)
        q->committed = fn;
}

int qpc_queue_sync_fd(const struct qpc_queue *q)
{
    return q != NULL && q->syncer != NULL ? queue_syncer_fd(q->syncer) : -1;
}

void qpc_queue_complete(struct qpc_queue *q)
{
    if (q != NULL && q->syncer != NULL)
        complete_synced(q);
}

void qpc_queue_flush(struct qpc_queue *q)
{
    if (q == NULL || q->syncer == NULL)
        return;
    sync_soon(q);
    queue_syncer_wait(q->syncer, q->transactions);
    complete_synced(q);
}

const char *qpc_queue_errmsg(const struct qpc_queue *q)
{
    return q->errmsg;
}

bool qpc_queue_damaged(const struct qpc_queue *q)
{
    return q->damaged;
}

size_t qpc_queue_staged(const struct qpc_queue *q)
{
    return q->n_staged;
}

/* The checks both kinds of staged write make before touching the database. */
static int check_write(const struct qpc_queue *q, uint64_t expires_at_ms, const uint8_t *blob,
                       size_t len, uint64_t now_ms)
{
    if (blob == NULL || len == 0)
        return QPC_ERR_INVALID;
    /* SQLite takes blob lengths as int: a limit configured above that cannot be stored. */
    if (len > q->limits.max_blob_len || len > (size_t)INT32_MAX - sizeof(struct staged))
        return QPC_ERR_TOO_LARGE;
    if (expires_at_ms <= now_ms)
        return QPC_ERR_EXPIRED;
    if (expires_at_ms > (uint64_t)INT64_MAX)
        return QPC_ERR_INVALID;   /* SQLite integers are signed */
    return 0;
}

static int stage(struct qpc_queue *q, enum staged_kind kind, const char *domain,
                 const uint8_t *recipient, const uint8_t *id, uint64_t expires_at_ms,
                 const uint8_t *blob, size_t len, uint64_t now_ms,
                 qpc_queue_done_fn done, void *arg)
{
    struct staged *s;
    int ret;

    if (q == NULL || recipient == NULL || id == NULL)
        return QPC_ERR_INVALID;
    if ((ret = check_write(q, expires_at_ms, blob, len, now_ms)) != 0)
        return ret;
    if (q->damaged)
        return QPC_ERR_DB;   /* errmsg says why and what to do */
    if ((s = malloc(sizeof(*s) + len)) == NULL)
        return QPC_ERR_NOMEM;
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    memcpy(s->recipient, recipient, QPC_KEY_LEN);
    memcpy(s->id, id, QPC_ID_LEN);
    if (domain != NULL)
        memcpy(s->domain, domain, strlen(domain) + 1);
    s->expires_at_ms = expires_at_ms;
    s->now_ms = now_ms;
    s->done = done;
    s->arg = arg;
    s->len = len;
    memcpy(s->blob, blob, len);
    DL_APPEND(q->staged, s);
    q->n_staged++;
    return 0;
}

int qpc_queue_enqueue(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                      const uint8_t id[static QPC_ID_LEN], uint64_t expires_at_ms,
                      const uint8_t *blob, size_t len, uint64_t now_ms,
                      qpc_queue_done_fn done, void *arg)
{
    return stage(q, STAGED_QUEUE, NULL, recipient, id, expires_at_ms, blob, len, now_ms,
                 done, arg);
}

int qpc_queue_outbox_add(struct qpc_queue *q, const char *domain,
                         const uint8_t recipient[static QPC_KEY_LEN],
                         const uint8_t id[static QPC_ID_LEN], uint64_t expires_at_ms,
                         const uint8_t *blob, size_t len, uint64_t now_ms,
                         qpc_queue_done_fn done, void *arg)
{
    size_t dlen = domain != NULL ? strnlen(domain, QPC_QUEUE_DOMAIN_MAX + 1) : 0;

    if (dlen == 0 || dlen > QPC_QUEUE_DOMAIN_MAX)
        return QPC_ERR_INVALID;
    return stage(q, STAGED_OUTBOX, domain, recipient, id, expires_at_ms, blob, len, now_ms,
                 done, arg);
}

int qpc_queue_outbox_stage_remove(struct qpc_queue *q, uint64_t oid, qpc_queue_done_fn done,
                                  void *arg)
{
    struct staged *s;

    if (q == NULL || oid == 0 || oid > (uint64_t)INT64_MAX)
        return QPC_ERR_INVALID;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return QPC_ERR_NOMEM;
    s->kind = STAGED_OUTBOX_REMOVE;
    s->oid = oid;
    s->done = done;
    s->arg = arg;
    DL_APPEND(q->staged, s);
    q->n_staged++;
    return 0;
}

int qpc_queue_ack_stage(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                        uint64_t up_to_seq, const uint64_t *seqs, size_t n,
                        qpc_queue_done_fn done, void *arg)
{
    size_t len = n * sizeof(uint64_t);
    struct staged *s;

    if (q == NULL || recipient == NULL || (seqs == NULL && n > 0) ||
        n > ((size_t)INT32_MAX - sizeof(*s)) / sizeof(uint64_t))
        return QPC_ERR_INVALID;
    if (q->damaged)
        return QPC_ERR_DB;
    if ((s = calloc(1, sizeof(*s) + len)) == NULL)
        return QPC_ERR_NOMEM;
    s->kind = STAGED_ACK;
    memcpy(s->recipient, recipient, QPC_KEY_LEN);
    s->up_to_seq = up_to_seq > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : up_to_seq;
    if (len > 0)
        memcpy(s->blob, seqs, len);
    s->len = len;
    s->done = done;
    s->arg = arg;
    DL_APPEND(q->staged, s);
    q->n_staged++;
    return 0;
}

/* Reads a (items, bytes) pair; a missing row reads as zeros. */
static int read_pair(struct qpc_queue *q, sqlite3_stmt *st, uint64_t *items, uint64_t *bytes)
{
    int rc = sqlite3_step(st);
    int ret = 0;

    *items = *bytes = 0;
    if (rc == SQLITE_ROW) {
        *items = (uint64_t)sqlite3_column_int64(st, 0);
        *bytes = (uint64_t)sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        ret = db_fail(q, "read counters");
    }
    sqlite3_reset(st);
    return ret;
}

static int read_totals(struct qpc_queue *q, int k, uint64_t *items, uint64_t *bytes)
{
    sqlite3_stmt *st = stmt(q, S_TOTALS);
    sqlite3_bind_int(st, 1, k);
    return read_pair(q, st, items, bytes);
}

/* Looks a row up by key; *found is false when there is none. */
static int find_existing(struct qpc_queue *q, sqlite3_stmt *st, bool *found, uint64_t *seq)
{
    int rc = sqlite3_step(st);
    int ret = 0;

    *found = rc == SQLITE_ROW;
    if (*found)
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        ret = db_fail(q, "look up");
    sqlite3_reset(st);
    return ret;
}

/*
 * Runs an INSERT and collects the new row's key. (Not INSERT ... RETURNING: that
 * doubled the cost of an insert. The last rowid is the outer row's even when an insert
 * trigger ran.)
 */
static int insert_row(struct qpc_queue *q, sqlite3_stmt *st, uint64_t *seq)
{
    int ret = exec_stmt(q, st, "insert");
    if (ret == 0)
        *seq = (uint64_t)sqlite3_last_insert_rowid(q->db);
    return ret;
}

/* The rid of a recipient key, with its counters; a new recipient gets a row. */
static int find_recipient(struct qpc_queue *q, const uint8_t *key, int64_t *rid,
                          uint64_t *items, uint64_t *bytes)
{
    sqlite3_stmt *st = stmt(q, S_RCPT);
    uint64_t added = 0;
    int rc, ret = 0;

    sqlite3_bind_blob(st, 1, key, QPC_KEY_LEN, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *rid = sqlite3_column_int64(st, 0);
        *items = (uint64_t)sqlite3_column_int64(st, 1);
        *bytes = (uint64_t)sqlite3_column_int64(st, 2);
    } else if (rc != SQLITE_DONE) {
        ret = db_fail(q, "look up recipient");
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return ret;
    *items = *bytes = 0;
    st = stmt(q, S_RCPT_ADD);
    sqlite3_bind_blob(st, 1, key, QPC_KEY_LEN, SQLITE_STATIC);
    if ((ret = insert_row(q, st, &added)) == 0)
        *rid = (int64_t)added;
    return ret;
}

/* The batch's tally for key, read from the database on first use. */
static int batch_recipient(struct qpc_queue *q, struct batch *b, const uint8_t *key,
                           struct tally **out)
{
    struct tally *t = NULL;
    int ret;

    HASH_FIND(hh, b->recipients, key, QPC_KEY_LEN, t);
    if (t == NULL) {
        if ((t = calloc(1, sizeof(*t))) == NULL)
            return QPC_ERR_NOMEM;
        memcpy(t->key, key, QPC_KEY_LEN);
        if ((ret = find_recipient(q, key, &t->rid, &t->items, &t->bytes)) != 0) {
            free(t);
            return ret;
        }
        HASH_ADD(hh, b->recipients, key, QPC_KEY_LEN, t);
        if (t->hh.tbl == NULL) {   /* not linked: the transaction is rolled back */
            free(t);
            return QPC_ERR_NOMEM;
        }
    }
    *out = t;
    return 0;
}

/* Writes the counters the batch changed (inside the transaction) and frees the tally. */
static int batch_finish(struct qpc_queue *q, struct batch *b, int ret)
{
    struct tally *t, *tmp;

    HASH_ITER(hh, b->recipients, t, tmp) {
        if (ret == 0 && t->changed) {
            sqlite3_stmt *st = stmt(q, S_RCPT_SET);
            sqlite3_bind_int64(st, 1, t->rid);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)t->items);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)t->bytes);
            ret = exec_stmt(q, st, "update recipient");
        }
        HASH_DEL(b->recipients, t);
        free(t);
    }
    if (ret == 0 && b->changed) {
        sqlite3_stmt *st = stmt(q, S_TOTALS_SET);
        sqlite3_bind_int(st, 1, 0);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)b->items);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)b->bytes);
        ret = exec_stmt(q, st, "update totals");
    }
    return ret;
}

/* The id's first 8 bytes as the key of the dedup index (any bit pattern will do). */
static int64_t id_head(const uint8_t *id)
{
    int64_t h;
    memcpy(&h, id, sizeof(h));
    return h;
}

/* Looks up the seq of an already stored (rid, id, expires_at). */
static int find_queue_row(struct qpc_queue *q, int64_t rid, struct staged *s, bool *found)
{
    sqlite3_stmt *st = stmt(q, S_FIND);

    sqlite3_bind_int64(st, 1, id_head(s->id));
    sqlite3_bind_int64(st, 2, rid);
    sqlite3_bind_blob(st, 3, s->id, QPC_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)s->expires_at_ms);
    return find_existing(q, st, found, &s->seq);
}

/*
 * Stores one queue write inside the open transaction. A refusal goes to s->status; only
 * a database failure is returned (it aborts the whole batch).
 */
static int store_queue_item(struct qpc_queue *q, struct batch *b, struct staged *s)
{
    struct tally *t = NULL;
    sqlite3_stmt *st;
    bool found;
    int ret;

    if ((ret = batch_recipient(q, b, s->recipient, &t)) != 0)
        return ret;
    if ((ret = find_queue_row(q, t->rid, s, &found)) != 0 || found)
        return ret;   /* a retry of a stored write: success, same seq */

    if (t->items + 1 > q->limits.max_items_per_recipient ||
        t->bytes + s->len > q->limits.max_bytes_per_recipient) {
        s->status = QPC_ERR_QUEUE_FULL;
        return 0;
    }
    if (b->bytes + s->len > q->limits.max_total_bytes) {
        s->status = QPC_ERR_STORE_FULL;
        return 0;
    }

    st = stmt(q, S_INSERT);
    sqlite3_bind_int64(st, 1, t->rid);
    sqlite3_bind_int64(st, 2, id_head(s->id));
    sqlite3_bind_blob(st, 3, s->id, QPC_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)s->expires_at_ms);
    sqlite3_bind_blob(st, 5, s->blob, (int)s->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, clamp_time(s->now_ms));
    if ((ret = insert_row(q, st, &s->seq)) != 0)
        return ret;
    t->items++;
    t->bytes += s->len;
    t->changed = true;
    b->items++;
    b->bytes += s->len;
    b->changed = true;
    return 0;
}

static int store_outbox_item(struct qpc_queue *q, struct staged *s)
{
    sqlite3_stmt *st = stmt(q, S_OB_FIND);
    uint64_t items, bytes;
    bool found;
    int ret;

    sqlite3_bind_text(st, 1, s->domain, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, s->recipient, QPC_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, s->id, QPC_ID_LEN, SQLITE_STATIC);
    if ((ret = find_existing(q, st, &found, &s->seq)) != 0 || found)
        return ret;
    if ((ret = read_totals(q, 1, &items, &bytes)) != 0)
        return ret;
    if (items + 1 > q->limits.max_outbox_items) {
        s->status = QPC_ERR_QUEUE_FULL;
        return 0;
    }

    st = stmt(q, S_OB_INSERT);
    sqlite3_bind_text(st, 1, s->domain, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, s->recipient, QPC_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, s->id, QPC_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, s->blob, (int)s->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)s->expires_at_ms);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)s->now_ms);
    return insert_row(q, st, &s->seq);
}

/* A staged delete: a row already gone is fine (it was delivered twice, or expired). */
static int remove_outbox_item(struct qpc_queue *q, struct staged *s)
{
    sqlite3_stmt *st = stmt(q, S_OB_REMOVE);

    sqlite3_bind_int64(st, 1, (sqlite3_int64)s->oid);
    s->seq = s->oid;
    return exec_stmt(q, st, "outbox remove");
}

/*
 * Runs the staged acks of list inside the open transaction, before anything else is
 * read: their deletes change the counters (by trigger) that the queue writes then read
 * once and write back. s->seq becomes the number of rows each removed.
 */
static int delete_rows(struct qpc_queue *q, sqlite3_stmt *st, size_t *removed);

static int apply_acks(struct qpc_queue *q, struct staged *list)
{
    struct staged *s;
    int ret = 0;

    DL_FOREACH(list, s) {
        size_t count = 0;

        if (s->kind != STAGED_ACK)
            continue;
        if (s->up_to_seq > 0) {
            sqlite3_stmt *st = stmt(q, S_ACK_UPTO);
            sqlite3_bind_blob(st, 1, s->recipient, QPC_KEY_LEN, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)s->up_to_seq);
            ret = delete_rows(q, st, &count);
        }
        for (size_t i = 0; ret == 0 && i < s->len / sizeof(uint64_t); i++) {
            sqlite3_stmt *st = stmt(q, S_ACK_ONE);
            uint64_t seq;

            memcpy(&seq, s->blob + i * sizeof(seq), sizeof(seq));
            sqlite3_bind_blob(st, 1, s->recipient, QPC_KEY_LEN, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
            ret = delete_rows(q, st, &count);
        }
        if (ret != 0)
            return ret;
        s->seq = count;
    }
    return 0;
}

int qpc_queue_commit(struct qpc_queue *q)
{
    struct batch b = { 0 };
    struct staged *list, *s;
    int ret;

    if (q->staged == NULL)
        return 0;
    list = take_staged(q);
    if (q->damaged)
        ret = QPC_ERR_DB;   /* nothing is written into a damaged file */
    else if ((ret = tx_begin(q)) == 0 && (ret = apply_acks(q, list)) == 0 &&
             (ret = read_totals(q, 0, &b.items, &b.bytes)) == 0) {
        DL_FOREACH(list, s) {
            if (s->kind == STAGED_ACK)
                continue;   /* done first, above */
            ret = s->kind == STAGED_QUEUE  ? store_queue_item(q, &b, s)
                  : s->kind == STAGED_OUTBOX ? store_outbox_item(q, s)
                                             : remove_outbox_item(q, s);
            if (ret != 0)
                break;
        }
    }
    ret = batch_finish(q, &b, ret);
    ret = tx_end(q, ret);
    if (ret != 0) {
        /* Nothing was stored: refusals stay refusals, everything else failed. */
        DL_FOREACH(list, s) {
            if (s->status == 0)
                s->status = ret;
        }
    }
    /* Committed (durable unless the sync thread has yet to make it so): what needs no
     * durability may go on now, e.g. a push to the message's recipient. */
    DL_FOREACH(list, s) {
        if (ret == 0 && s->kind == STAGED_QUEUE && s->status == 0 && q->committed != NULL)
            q->committed(s->arg, s->seq);
    }
    if (q->syncer == NULL) {
        complete_all(list);
        return ret;
    }
    /* The answers wait for the fsync of this transaction (or, for a transaction that
     * failed, for nothing but the answers of the transactions before it, in order). */
    DL_FOREACH(list, s)
        s->gen = q->transactions;
    DL_CONCAT(q->unsynced, list);
    complete_synced(q);
    return ret;
}

void qpc_queue_items_free(struct qpc_queue_item *items, size_t count)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(items[i].blob);
    free(items);
}

/* Copies a blob column into a fresh allocation. */
static int copy_blob(sqlite3_stmt *st, int col, uint8_t **out, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);

    *out = malloc(n > 0 ? n : 1);
    if (*out == NULL)
        return QPC_ERR_NOMEM;
    if (n > 0)
        memcpy(*out, p, n);
    *len = n;
    return 0;
}

/* Copies a fixed-size blob column (key, id); a wrong size means a damaged file. */
static int copy_fixed(sqlite3_stmt *st, int col, uint8_t *out, size_t len)
{
    if ((size_t)sqlite3_column_bytes(st, col) != len)
        return QPC_ERR_CORRUPT;
    memcpy(out, sqlite3_column_blob(st, col), len);
    return 0;
}

int qpc_queue_fetch(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                    uint64_t after_seq, size_t limit, uint64_t now_ms,
                    struct qpc_queue_item **items, size_t *count)
{
    struct qpc_queue_item *arr = NULL;
    sqlite3_stmt *st;
    size_t n = 0;
    int rc, ret = 0;

    if (q == NULL || recipient == NULL || items == NULL || count == NULL || limit == 0 ||
        limit > PAGE_MAX || after_seq > (uint64_t)INT64_MAX || now_ms > (uint64_t)INT64_MAX)
        return QPC_ERR_INVALID;
    *items = NULL;
    *count = 0;
    st = stmt(q, S_FETCH);
    sqlite3_bind_blob(st, 1, recipient, QPC_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)now_ms);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct qpc_queue_item *it;
        if (arr == NULL && (arr = calloc(limit, sizeof(*arr))) == NULL) {
            ret = QPC_ERR_NOMEM;
            goto out;
        }
        it = &arr[n];
        it->seq = (uint64_t)sqlite3_column_int64(st, 0);
        it->expires_at_ms = (uint64_t)sqlite3_column_int64(st, 2);
        if ((ret = copy_fixed(st, 1, it->id, QPC_ID_LEN)) != 0 ||
            (ret = copy_blob(st, 3, &it->blob, &it->blob_len)) != 0)
            goto out;
        n++;
    }
    if (rc != SQLITE_DONE)
        ret = db_fail(q, "fetch");
out:
    sqlite3_reset(st);
    if (ret != 0) {
        qpc_queue_items_free(arr, n);
    } else {
        *items = arr;
        *count = n;
    }
    return ret;
}

/* Runs one DELETE and adds the rows it removed to *removed. */
static int delete_rows(struct qpc_queue *q, sqlite3_stmt *st, size_t *removed)
{
    int ret = exec_stmt(q, st, "delete");
    if (ret == 0)
        *removed += (size_t)sqlite3_changes(q->db);
    return ret;
}

int qpc_queue_ack(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                  const uint64_t *seqs, size_t n, size_t *removed)
{
    size_t count = 0;
    int ret;

    if (q == NULL || recipient == NULL || (seqs == NULL && n > 0))
        return QPC_ERR_INVALID;
    if (n == 0)
        goto out;
    ret = tx_begin(q);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        sqlite3_stmt *st = stmt(q, S_ACK_ONE);
        sqlite3_bind_blob(st, 1, recipient, QPC_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seqs[i]);
        ret = delete_rows(q, st, &count);
    }
    if ((ret = tx_end(q, ret)) != 0)
        return ret;
out:
    if (removed != NULL)
        *removed = count;
    return 0;
}

/* A single DELETE is its own transaction; COMMIT is implicit (and durable, or made so
 * by the sync thread soon after). */
static int delete_once(struct qpc_queue *q, sqlite3_stmt *st, size_t *removed)
{
    size_t count = 0;
    int ret = delete_rows(q, st, &count);

    sync_soon(q);

    if (ret == 0 && removed != NULL)
        *removed = count;
    return ret;
}

int qpc_queue_ack_upto(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                       uint64_t up_to_seq, size_t *removed)
{
    sqlite3_stmt *st;

    if (q == NULL || recipient == NULL)
        return QPC_ERR_INVALID;
    if (up_to_seq > (uint64_t)INT64_MAX)
        up_to_seq = (uint64_t)INT64_MAX;
    st = stmt(q, S_ACK_UPTO);
    sqlite3_bind_blob(st, 1, recipient, QPC_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)up_to_seq);
    return delete_once(q, st, removed);
}

int qpc_queue_expire(struct qpc_queue *q, uint64_t now_ms, size_t *removed)
{
    sqlite3_stmt *st;
    size_t count = 0, gone = 0;
    int ret;

    if ((ret = tx_begin(q)) != 0)
        return ret;
    st = stmt(q, S_EXPIRE);
    sqlite3_bind_int64(st, 1, clamp_time(now_ms));
    ret = delete_rows(q, st, &count);
    /* Recipients with nothing queued go too, so the table does not grow for ever. */
    if (ret == 0)
        ret = delete_rows(q, stmt(q, S_RCPT_GC), &gone);
    if ((ret = tx_end(q, ret)) == 0 && removed != NULL)
        *removed = count;
    return ret;
}

int qpc_queue_outbox_expire(struct qpc_queue *q, uint64_t now_ms, size_t *removed)
{
    sqlite3_stmt *st = stmt(q, S_OB_EXPIRE);
    sqlite3_bind_int64(st, 1, clamp_time(now_ms));
    return delete_once(q, st, removed);
}

/* enqueued_at of the first row of a table in rowid order; 0 when the table is empty. */
static int read_oldest(struct qpc_queue *q, enum stmt_id id, uint64_t *enqueued_ms)
{
    sqlite3_stmt *st = stmt(q, id);
    int rc = sqlite3_step(st), ret = 0;
    sqlite3_int64 v;

    *enqueued_ms = 0;
    if (rc == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        *enqueued_ms = v > 0 ? (uint64_t)v : 1;   /* 0 means "empty"; a row is never that */
    } else if (rc != SQLITE_DONE) {
        ret = db_fail(q, "oldest row");
    }
    sqlite3_reset(st);
    return ret;
}

int qpc_queue_stats(struct qpc_queue *q, struct qpc_queue_stats *stats)
{
    sqlite3_stmt *st;
    int ret;

    memset(stats, 0, sizeof(*stats));
    if ((ret = read_totals(q, 0, &stats->items, &stats->bytes)) != 0 ||
        (ret = read_totals(q, 1, &stats->outbox_items, &stats->outbox_bytes)) != 0 ||
        (ret = read_oldest(q, S_OLDEST, &stats->oldest_enqueued_ms)) != 0 ||
        (ret = read_oldest(q, S_OB_OLDEST, &stats->outbox_oldest_enqueued_ms)) != 0)
        return ret;
    st = stmt(q, S_RECIPIENTS);
    if (sqlite3_step(st) == SQLITE_ROW)
        stats->recipients = (uint64_t)sqlite3_column_int64(st, 0);
    else
        ret = db_fail(q, "count recipients");
    sqlite3_reset(st);
    return ret;
}

void qpc_queue_limits_get(const struct qpc_queue *q, struct qpc_queue_limits *limits)
{
    *limits = q->limits;
}

int qpc_queue_count(struct qpc_queue *q, const uint8_t recipient[static QPC_KEY_LEN],
                    uint64_t *items, uint64_t *bytes)
{
    sqlite3_stmt *st = stmt(q, S_USAGE);
    uint64_t i, b;
    int ret;

    sqlite3_bind_blob(st, 1, recipient, QPC_KEY_LEN, SQLITE_STATIC);
    ret = read_pair(q, st, &i, &b);
    if (ret == 0 && items != NULL)
        *items = i;
    if (ret == 0 && bytes != NULL)
        *bytes = b;
    return ret;
}

void qpc_outbox_items_free(struct qpc_outbox_item *items, size_t count)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(items[i].blob);
    free(items);
}

static int read_outbox_row(sqlite3_stmt *st, struct qpc_outbox_item *it)
{
    const char *domain = (const char *)sqlite3_column_text(st, 1);
    size_t dlen = (size_t)sqlite3_column_bytes(st, 1);
    int ret;

    if (domain == NULL || dlen > QPC_QUEUE_DOMAIN_MAX)
        return QPC_ERR_CORRUPT;
    it->oid = (uint64_t)sqlite3_column_int64(st, 0);
    memcpy(it->domain, domain, dlen);
    it->domain[dlen] = '\0';
    it->expires_at_ms = (uint64_t)sqlite3_column_int64(st, 4);
    it->attempts = (uint32_t)sqlite3_column_int64(st, 5);
    if ((ret = copy_fixed(st, 2, it->recipient, QPC_KEY_LEN)) != 0 ||
        (ret = copy_fixed(st, 3, it->id, QPC_ID_LEN)) != 0)
        return ret;
    return copy_blob(st, 6, &it->blob, &it->blob_len);
}

/*
 * Reads the due rows into arr (caller's transaction). A row scheduled further ahead than
 * any back-off or lease can put it (retry_cap_ms + lease_ms) was scheduled by a clock
 * that has since been stepped back: it is due now, or it would wait out the step.
 */
static int select_due(struct qpc_queue *q, uint64_t now_ms, size_t limit, uint64_t lease_ms,
                      struct qpc_outbox_item **arr, size_t *n)
{
    sqlite3_stmt *st = stmt(q, S_OB_DUE);
    uint64_t horizon = now_ms + q->limits.retry_cap_ms + lease_ms;
    int rc, ret = 0;

    sqlite3_bind_int64(st, 1, clamp_time(now_ms));
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    sqlite3_bind_int64(st, 3, clamp_time(horizon < now_ms ? UINT64_MAX : horizon));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*arr == NULL && (*arr = calloc(limit, sizeof(**arr))) == NULL) {
            ret = QPC_ERR_NOMEM;
            break;
        }
        if ((ret = read_outbox_row(st, &(*arr)[*n])) != 0) {
            free((*arr)[*n].blob);
            (*arr)[*n].blob = NULL;
            break;
        }
        (*n)++;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = db_fail(q, "outbox due");
    sqlite3_reset(st);
    return ret;
}

int qpc_queue_outbox_due(struct qpc_queue *q, uint64_t now_ms, size_t limit, uint64_t lease_ms,
                         struct qpc_outbox_item **items, size_t *count)
{
    struct qpc_outbox_item *arr = NULL;
    size_t n = 0;
    int ret;

    if (q == NULL || items == NULL || count == NULL || limit == 0 || limit > PAGE_MAX)
        return QPC_ERR_INVALID;
    *items = NULL;
    *count = 0;
    ret = tx_begin(q);
    if (ret == 0)
        ret = select_due(q, now_ms, limit, lease_ms, &arr, &n);
    for (size_t i = 0; ret == 0 && lease_ms > 0 && i < n; i++) {
        sqlite3_stmt *st = stmt(q, S_OB_LEASE);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)arr[i].oid);
        sqlite3_bind_int64(st, 2, clamp_time(now_ms + lease_ms));
        ret = exec_stmt(q, st, "outbox lease");
    }
    ret = tx_end(q, ret);
    if (ret != 0) {
        qpc_outbox_items_free(arr, n);
        return ret;
    }
    *items = arr;
    *count = n;
    return 0;
}

int qpc_queue_outbox_list(struct qpc_queue *q, uint64_t after_oid, size_t limit, uint64_t now_ms,
                          struct qpc_outbox_item **items, size_t *count)
{
    struct qpc_outbox_item *arr = NULL;
    sqlite3_stmt *st;
    size_t n = 0;
    int rc, ret = 0;

    if (q == NULL || items == NULL || count == NULL || limit == 0 || limit > PAGE_MAX)
        return QPC_ERR_INVALID;
    *items = NULL;
    *count = 0;
    st = stmt(q, S_OB_LIST);
    sqlite3_bind_int64(st, 1, after_oid > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)after_oid);
    sqlite3_bind_int64(st, 2, clamp_time(now_ms));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (arr == NULL && (arr = calloc(limit, sizeof(*arr))) == NULL) {
            ret = QPC_ERR_NOMEM;
            break;
        }
        if ((ret = read_outbox_row(st, &arr[n])) != 0) {
            free(arr[n].blob);
            arr[n].blob = NULL;
            break;
        }
        n++;
    }
    if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = db_fail(q, "outbox list");
    sqlite3_reset(st);
    if (ret != 0) {
        qpc_outbox_items_free(arr, n);
        return ret;
    }
    *items = arr;
    *count = n;
    return 0;
}

uint64_t qpc_queue_retry_delay_ms(uint32_t attempts, uint32_t base_ms, uint32_t cap_ms,
                                  uint32_t rnd)
{
    uint64_t d = base_ms;

    if (attempts == 0)
        return 0;
    /* Doubling stops at the cap, so no shift can overflow however many attempts. */
    for (uint32_t i = 1; i < attempts && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    return d / 2 + (uint64_t)rnd % (d - d / 2 + 1);
}

/* One failed attempt at oid inside the caller's transaction; *found says whether the
 * row is there. */
static int mark_failed_row(struct qpc_queue *q, uint64_t oid, uint64_t now_ms, bool *found,
                           uint64_t *next_attempt_ms)
{
    sqlite3_stmt *st = stmt(q, S_OB_ATTEMPTS);
    uint64_t attempts = 0, next;
    int ret;

    *found = false;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)oid);
    if ((ret = find_existing(q, st, found, &attempts)) != 0 || !*found)
        return ret;
    if (attempts < UINT32_MAX)
        attempts++;
    next = now_ms + qpc_queue_retry_delay_ms((uint32_t)attempts, q->limits.retry_base_ms,
                                             q->limits.retry_cap_ms, randombytes_random());
    st = stmt(q, S_OB_RETRY);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)oid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)attempts);
    sqlite3_bind_int64(st, 3, clamp_time(next));
    ret = exec_stmt(q, st, "outbox retry");
    if (ret == 0 && next_attempt_ms != NULL)
        *next_attempt_ms = next;
    return ret;
}

int qpc_queue_outbox_mark_failed(struct qpc_queue *q, uint64_t oid, uint64_t now_ms,
                                 uint64_t *next_attempt_ms)
{
    bool found = false;
    int ret;

    if (q == NULL || oid > (uint64_t)INT64_MAX)
        return QPC_ERR_INVALID;
    if ((ret = tx_begin(q)) != 0)
        return ret;
    ret = mark_failed_row(q, oid, now_ms, &found, next_attempt_ms);
    if (ret == 0 && !found)
        ret = QPC_ERR_NOT_FOUND;
    return tx_end(q, ret);
}

int qpc_queue_outbox_mark_failed_many(struct qpc_queue *q, const uint64_t *oids, size_t n,
                                      uint64_t now_ms, size_t *marked)
{
    size_t count = 0;
    bool found;
    int ret = 0;

    if (q == NULL || (oids == NULL && n > 0))
        return QPC_ERR_INVALID;
    if (n > 0) {
        ret = tx_begin(q);
        for (size_t i = 0; ret == 0 && i < n; i++) {
            if (oids[i] > (uint64_t)INT64_MAX)   /* no such row: rowids are positive int64 */
                continue;
            ret = mark_failed_row(q, oids[i], now_ms, &found, NULL);
            count += ret == 0 && found;
        }
        ret = tx_end(q, ret);
    }
    if (ret == 0 && marked != NULL)
        *marked = count;
    return ret;
}

uint64_t qpc_queue_transactions(const struct qpc_queue *q)
{
    return q != NULL ? q->transactions : 0;
}

int qpc_queue_outbox_wake(struct qpc_queue *q, const char *domain, uint64_t now_ms, size_t *woken)
{
    sqlite3_stmt *st;
    int ret;

    if (q == NULL || domain == NULL)
        return QPC_ERR_INVALID;
    if ((ret = tx_begin(q)) != 0)
        return ret;
    st = stmt(q, S_OB_WAKE);
    sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, clamp_time(now_ms));
    ret = exec_stmt(q, st, "outbox wake");
    if (ret == 0 && woken != NULL)
        *woken = (size_t)sqlite3_changes(q->db);
    return tx_end(q, ret);
}

int qpc_queue_outbox_remove(struct qpc_queue *q, uint64_t oid)
{
    sqlite3_stmt *st;
    size_t removed = 0;
    int ret;

    if (q == NULL || oid > (uint64_t)INT64_MAX)
        return QPC_ERR_INVALID;
    st = stmt(q, S_OB_REMOVE);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)oid);
    ret = delete_once(q, st, &removed);
    if (ret == 0 && removed == 0)
        ret = QPC_ERR_NOT_FOUND;
    return ret;
}

int qpc_queue_outbox_remove_many(struct qpc_queue *q, const uint64_t *oids, size_t n,
                                 size_t *removed)
{
    size_t count = 0;
    int ret = 0;

    if (q == NULL || (oids == NULL && n > 0))
        return QPC_ERR_INVALID;
    if (n == 0)
        goto out;
    ret = tx_begin(q);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        sqlite3_stmt *st;
        if (oids[i] > (uint64_t)INT64_MAX)   /* no such row: rowids are positive int64 */
            continue;
        st = stmt(q, S_OB_REMOVE);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)oids[i]);
        ret = delete_rows(q, st, &count);
    }
    ret = tx_end(q, ret);
out:
    if (ret == 0 && removed != NULL)
        *removed = count;
    return ret;
}
