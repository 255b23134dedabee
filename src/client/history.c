/*
 * history.c: the message history, one SQLite table in WAL mode (history.h).
 *
 * The one idea: a message is written down before it is shown, so what a user saw is
 * never lost when qpc stops or crashes (synchronous=NORMAL: every commit reaches the
 * WAL before the line is printed; a power cut may cost the last ones, which the
 * custody path does not depend on: the outbox has its own durable file). Rows are keyed
 * by envelope id, so a copy arriving twice is one row, and the outcome of a message of
 * mine is the last event the node reported, except that nothing undoes "delivered".
 * Text is stored as the bytes that came (a BLOB): what is shown escapes them.
 * A damaged file is never used quietly: one of 0 bytes (it lost what it held) is not
 * taken for a new database, and PRAGMA quick_check runs at every open; either leaves
 * the file as it is and qpc runs without a history, saying why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sqlite3.h>

#include "history.h"
#include "qpc/error.h"
#include "qpc/log.h"

/* The statements every message runs, prepared once for the life of the connection
 * (parsing them per row cost more than the insert). */
enum { ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SENT, ST_RECEIVED, ST_OUTCOME, ST_COUNT };

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",   /* the write lock now, waiting on busy_timeout */
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SENT] = "INSERT OR IGNORE INTO messages (id, mine, peer, topic, text, sent_ms) "
                "VALUES (?, 1, ?, ?, ?, ?)",
    [ST_RECEIVED] = "INSERT OR IGNORE INTO messages (id, mine, peer, topic, text, sent_ms, "
                    "received_ms, path, hops, unread) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_OUTCOME] = "UPDATE messages SET state = ?, detail = ?, path = ?, hops = ?, "
                   "received_ms = CASE WHEN ? = 'delivered' THEN ? ELSE received_ms END "
                   "WHERE id = ? AND mine = 1 AND (state IS NULL OR state <> 'delivered')",
};

struct history {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    bool batched;                  /* writes join one transaction until history_commit */
    bool in_txn;                   /* that transaction is open */
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS messages ("
    "  id BLOB PRIMARY KEY,"
    "  mine INTEGER NOT NULL,"
    "  peer BLOB,"                       /* direct: the other side; broadcast: the sender */
    "  topic TEXT,"
    "  text BLOB NOT NULL,"
    "  sent_ms INTEGER NOT NULL,"
    "  received_ms INTEGER,"
    "  state TEXT,"
    "  detail TEXT,"
    "  path TEXT,"
    "  hops INTEGER,"
    "  unread INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS messages_peer ON messages(peer) WHERE topic IS NULL;"
    "CREATE INDEX IF NOT EXISTS messages_topic ON messages(topic) WHERE topic IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS messages_unread ON messages(unread) WHERE unread = 1;";

#define HISTORY_CHECK_MS 5000u   /* the integrity check at open gives up after this */

static int check_expired(void *arg)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u >= *(uint64_t *)arg;
}

/*
 * PRAGMA quick_check within HISTORY_CHECK_MS (a huge file on slow storage starts without
 * it, with a warning). Returns 0, or QPC_ERR_CORRUPT with err saying what to do.
 */
static int integrity_check(struct history *h, const char *path, char *err, size_t errlen)
{
    struct timespec now;
    uint64_t deadline;
    sqlite3_stmt *st = NULL;
    const char *first = NULL;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &now);
    deadline = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u + HISTORY_CHECK_MS;
    sqlite3_progress_handler(h->db, 10000, check_expired, &deadline);
    if (sqlite3_prepare_v2(h->db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
        rc = QPC_ERR_CORRUPT;
        first = sqlite3_errmsg(h->db);
    } else if (sqlite3_step(st) == SQLITE_ROW) {
        first = (const char *)sqlite3_column_text(st, 0);
        if (first == NULL || strcmp(first, "ok") != 0)
            rc = QPC_ERR_CORRUPT;
    } else if (sqlite3_errcode(h->db) == SQLITE_INTERRUPT) {
        qpc_log_warn("history", "%s: integrity check stopped after %u ms (a large file); "
                     "starting without it", path, HISTORY_CHECK_MS);
    } else {
        rc = QPC_ERR_CORRUPT;
        first = sqlite3_errmsg(h->db);
    }
    if (rc != 0)
        snprintf(err, errlen, "%s: the database is damaged (integrity check: %s); it is not "
                 "used: keep a copy of the file, then recover what it holds with `sqlite3 FILE "
                 ".recover` into a new file, or move it aside to start an empty history",
                 path, first != NULL ? first : "?");
    sqlite3_finalize(st);
    sqlite3_progress_handler(h->db, 0, NULL, NULL);
    return rc;
}

int history_open(const char *path, struct history **out, char *err, size_t errlen)
{
    struct history *h;
    struct stat sb;
    char *msg = NULL;

    *out = NULL;
    /* SQLite would take an empty file for a new database: the history it held would be
     * gone without a word. */
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0) {
        snprintf(err, errlen, "%s: the file is empty (0 bytes), so the history it held is "
                 "gone; it is not taken for a new one: if starting afresh is what you want, "
                 "delete it", path);
        return QPC_ERR_CORRUPT;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return QPC_ERR_NOMEM;
    if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(h->db));
        sqlite3_close(h->db);
        free(h);
        return QPC_ERR_DB;
    }
    /* Before the first statement: a lock met without a timeout fails at once. */
    sqlite3_busy_timeout(h->db, 2000);   /* a qpc listen and a REPL may share the directory */
    if (integrity_check(h, path, err, errlen) != 0) {
        sqlite3_close(h->db);
        free(h);
        return QPC_ERR_CORRUPT;
    }
    if (sqlite3_exec(h->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg != NULL ? msg : sqlite3_errmsg(h->db));
        sqlite3_free(msg);
        sqlite3_close(h->db);
        free(h);
        return QPC_ERR_DB;
    }
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(h->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &h->st[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(h->db));
            history_close(h);
            return QPC_ERR_DB;
        }
    *out = h;
    return 0;
}

void history_close(struct history *h)
{
    if (h == NULL)
        return;
    history_commit(h);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(h->st[i]);
    sqlite3_close(h->db);
    free(h);
}

static void warn_db(struct history *h, const char *what)
{
    qpc_log_warn("history", "%s: %s", what, sqlite3_errmsg(h->db));
}

/* Runs one prepared statement to its end; false (warned) when it fails. */
static bool run(struct history *h, sqlite3_stmt *st, const char *what)
{
    int rc = st != NULL ? sqlite3_step(st) : SQLITE_ERROR;

    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        warn_db(h, what);
        return false;
    }
    return true;
}

/* Runs one of the kept statements and makes it ready for the next use (bindings cleared). */
static bool run_kept(struct history *h, int which, const char *what)
{
    sqlite3_stmt *st = h->st[which];
    int rc = sqlite3_step(st);

    if (rc != SQLITE_DONE)
        warn_db(h, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE;
}

void history_set_batched(struct history *h, bool on)
{
    if (h == NULL)
        return;
    if (!on)
        history_commit(h);
    h->batched = on;
}

bool history_pending(const struct history *h)
{
    return h != NULL && h->in_txn;
}

int history_commit(struct history *h)
{
    if (h == NULL || !h->in_txn)
        return 0;
    h->in_txn = false;
    if (!run_kept(h, ST_COMMIT, "history: commit")) {
        /* What the turn wrote is lost (said above); the next turn starts clean. */
        if (!sqlite3_get_autocommit(h->db))
            run_kept(h, ST_ROLLBACK, "history: rollback");
        return QPC_ERR_DB;
    }
    return 0;
}

/* Before a write: batched, the turn's transaction opens at its first one. A failed
 * BEGIN leaves the write to its own autocommit, as unbatched. */
static void join_turn(struct history *h)
{
    if (h->batched && !h->in_txn && run_kept(h, ST_BEGIN, "history: begin"))
        h->in_txn = true;
}

static sqlite3_stmt *prepare(struct history *h, const char *sql)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) {
        warn_db(h, "prepare");
        return NULL;
    }
    return st;
}

void history_add_sent(struct history *h, const uint8_t id[static QPC_ID_LEN], const uint8_t *peer,
                      const char *topic, const char *text, size_t len, uint64_t sent_ms)
{
    sqlite3_stmt *st;

    if (h == NULL)
        return;
    join_turn(h);
    st = h->st[ST_SENT];
    sqlite3_bind_blob(st, 1, id, QPC_ID_LEN, SQLITE_STATIC);
    if (peer != NULL)
        sqlite3_bind_blob(st, 2, peer, QPC_KEY_LEN, SQLITE_STATIC);
    if (topic != NULL)
        sqlite3_bind_text(st, 3, topic, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, len ? text : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)sent_ms);
    run_kept(h, ST_SENT, "history: sent");
}

void history_add_received(struct history *h, const struct event *ev, const char *path,
                          uint64_t received_ms, bool read)
{
    sqlite3_stmt *st;

    if (h == NULL || ev->id == NULL || ev->peer == NULL)
        return;
    join_turn(h);
    st = h->st[ST_RECEIVED];
    sqlite3_bind_blob(st, 1, ev->id, QPC_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, ev->peer, QPC_KEY_LEN, SQLITE_STATIC);
    if (ev->topic != NULL)
        sqlite3_bind_text(st, 3, ev->topic, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, ev->text_len ? ev->text : "", (int)ev->text_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)ev->sent_ms);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)received_ms);
    sqlite3_bind_text(st, 7, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, ev->hops);
    sqlite3_bind_int(st, 9, read ? 0 : 1);
    run_kept(h, ST_RECEIVED, "history: received");
}

void history_note_outcome(struct history *h, const struct event *ev, const char *path, uint64_t at_ms)
{
    const char *state = NULL, *detail = ev->via;
    sqlite3_stmt *st;

    switch (ev->kind) {
    case EVT_DELIVERED: state = "delivered"; break;
    case EVT_HELD: state = "held"; break;
    case EVT_QUEUED: state = "queued", detail = ev->text; break;
    case EVT_FAILED: state = "failed", detail = ev->text != NULL ? ev->text : qpc_strerror(ev->err); break;
    default: return;
    }
    if (h == NULL || ev->id == NULL)
        return;
    join_turn(h);
    st = h->st[ST_OUTCOME];
    sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    if (detail != NULL)
        sqlite3_bind_text(st, 2, detail, -1, SQLITE_STATIC);
    if (ev->kind == EVT_DELIVERED) {
        sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, ev->hops);
    }
    sqlite3_bind_text(st, 5, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)at_ms);
    sqlite3_bind_blob(st, 7, ev->id, QPC_ID_LEN, SQLITE_STATIC);
    run_kept(h, ST_OUTCOME, "history: outcome");
}

static void row_from(sqlite3_stmt *st, struct history_row *r)
{
    const void *id = sqlite3_column_blob(st, 0), *peer = sqlite3_column_blob(st, 2);

    memset(r, 0, sizeof(*r));
    if (id != NULL && sqlite3_column_bytes(st, 0) == QPC_ID_LEN)
        memcpy(r->id, id, QPC_ID_LEN);
    r->mine = sqlite3_column_int(st, 1) != 0;
    r->has_peer = peer != NULL && sqlite3_column_bytes(st, 2) == QPC_KEY_LEN;
    if (r->has_peer)
        memcpy(r->peer, peer, QPC_KEY_LEN);
    r->topic = (const char *)sqlite3_column_text(st, 3);
    r->text = sqlite3_column_blob(st, 4);
    r->text_len = (size_t)sqlite3_column_bytes(st, 4);
    if (r->text == NULL)
        r->text = "";
    r->sent_ms = (uint64_t)sqlite3_column_int64(st, 5);
    r->received_ms = (uint64_t)sqlite3_column_int64(st, 6);
    r->state = (const char *)sqlite3_column_text(st, 7);
    r->detail = (const char *)sqlite3_column_text(st, 8);
    r->path = (const char *)sqlite3_column_text(st, 9);
    r->hops = (uint32_t)sqlite3_column_int64(st, 10);
    r->unread = sqlite3_column_int(st, 11) != 0;
}

int history_list(struct history *h, const uint8_t *peer, const char *topic, size_t n, bool mark_read,
                 void (*fn)(void *ctx, const struct history_row *r), void *ctx)
{
    /* the last n in the order they were written down (rowid), shown oldest first */
    static const char cols[] = "SELECT id, mine, peer, topic, text, sent_ms, received_ms, state, detail, "
                               "path, hops, unread, rowid FROM messages ";
    char sql[512];
    sqlite3_stmt *st;
    int count = 0, rc;

    if (h == NULL)
        return QPC_ERR_INVALID;
    snprintf(sql, sizeof(sql), "SELECT * FROM (%s%s ORDER BY rowid DESC LIMIT ?) ORDER BY rowid", cols,
             peer != NULL ? "WHERE topic IS NULL AND peer = ?" : topic != NULL ? "WHERE topic = ?" : "");
    if ((st = prepare(h, sql)) == NULL)
        return QPC_ERR_DB;
    if (peer != NULL)
        sqlite3_bind_blob(st, 1, peer, QPC_KEY_LEN, SQLITE_TRANSIENT);
    else if (topic != NULL)
        sqlite3_bind_text(st, 1, topic, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, peer != NULL || topic != NULL ? 2 : 1, (sqlite3_int64)n);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct history_row r;

        row_from(st, &r);
        fn(ctx, &r);
        count++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        warn_db(h, "history: list");
        return QPC_ERR_DB;
    }
    if (mark_read && count > 0) {
        snprintf(sql, sizeof(sql), "UPDATE messages SET unread = 0 WHERE unread = 1 AND rowid IN "
                 "(SELECT rowid FROM messages %s ORDER BY rowid DESC LIMIT ?)",
                 peer != NULL ? "WHERE topic IS NULL AND peer = ?" : topic != NULL ? "WHERE topic = ?" : "");
        if ((st = prepare(h, sql)) == NULL)
            return count;
        if (peer != NULL)
            sqlite3_bind_blob(st, 1, peer, QPC_KEY_LEN, SQLITE_TRANSIENT);
        else if (topic != NULL)
            sqlite3_bind_text(st, 1, topic, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, peer != NULL || topic != NULL ? 2 : 1, (sqlite3_int64)n);
        run(h, st, "history: mark read");
    }
    return count;
}

int history_unread(struct history *h,
                   void (*fn)(void *ctx, const uint8_t *peer, const char *topic, size_t count), void *ctx)
{
    sqlite3_stmt *st;
    int rc;

    if (h == NULL || (st = prepare(h, "SELECT CASE WHEN topic IS NULL THEN peer END, topic, count(*) "
                                      "FROM messages WHERE unread = 1 GROUP BY 1, 2 ORDER BY max(rowid)")) == NULL)
        return QPC_ERR_DB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *peer = sqlite3_column_blob(st, 0);

        fn(ctx, peer != NULL && sqlite3_column_bytes(st, 0) == QPC_KEY_LEN ? peer : NULL,
           (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_int64(st, 2));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : QPC_ERR_DB;
}
