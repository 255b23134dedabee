/*
 * test_queue.c: the durable delivery queue and the federation outbox.
 *
 * Every test gets a fresh directory under /tmp (removed in teardown) and drives time
 * explicitly. The crash test forks a writer, kills it with SIGKILL in the middle of its
 * work and checks that every write it had acknowledged is in the database exactly once.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "qpc/error.h"
#include "qpc/queue.h"

#define NOW 1700000000000ull          /* a fixed "now" in ms */
#define LATER (NOW + 3600 * 1000)     /* an expiry one hour ahead */

struct fixture {
    char dir[64];
    char path[128];
    struct qpc_queue *q;
};

/* What a completion saw; tests keep an array of these. */
struct outcome {
    int calls;
    int status;
    uint64_t seq;
};

static void record(void *arg, int status, uint64_t seq)
{
    struct outcome *o = arg;
    o->calls++;
    o->status = status;
    o->seq = seq;
}

static void make_key(uint8_t key[QPC_KEY_LEN], uint8_t tag)
{
    memset(key, tag, QPC_KEY_LEN);
}

static void make_id(uint8_t id[QPC_ID_LEN], uint32_t n)
{
    memset(id, 0xa5, QPC_ID_LEN);
    memcpy(id, &n, sizeof(n));
}

static void remove_db_files(const struct fixture *f)
{
    static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
    char p[160];
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
}

static int open_with(struct fixture *f, const struct qpc_queue_limits *limits)
{
    char err[256];
    int rc = qpc_queue_open(f->path, limits, &f->q, err, sizeof(err));
    if (rc != 0)
        print_error("open: %s\n", err);
    return rc;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/qpc-test-queue-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/queue.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    qpc_queue_close(f->q);
    remove_db_files(f);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Stages one message with a blob of len bytes derived from n, recording into o. */
static int put(struct qpc_queue *q, const uint8_t *rcpt, uint32_t n, size_t len,
               uint64_t expires_at, struct outcome *o)
{
    uint8_t id[QPC_ID_LEN], blob[4096];
    assert_true(len <= sizeof(blob));
    make_id(id, n);
    memset(blob, (int)(n & 0xff), len);
    return qpc_queue_enqueue(q, rcpt, id, expires_at, blob, len, NOW, record, o);
}

static void test_queue_round_trip_enqueue_commit_fetch_ack(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN], id[QPC_ID_LEN];
    struct outcome o[3] = { 0 };
    struct qpc_queue_item *items = NULL;
    size_t n = 0, removed = 0;

    assert_int_equal(open_with(f, NULL), 0);
    make_key(alice, 1);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(put(f->q, alice, i, 100 + i, LATER, &o[i]), 0);
    assert_int_equal(qpc_queue_staged(f->q), 3);
    assert_int_equal(o[0].calls, 0);   /* nothing acknowledged before the commit */

    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_staged(f->q), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].status, 0);
        assert_true(o[i].seq > 0);
        if (i > 0)
            assert_true(o[i].seq > o[i - 1].seq);
    }

    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 10, NOW, &items, &n), 0);
    assert_int_equal(n, 3);
    for (uint32_t i = 0; i < 3; i++) {
        make_id(id, i);
        assert_int_equal(items[i].seq, o[i].seq);
        assert_memory_equal(items[i].id, id, QPC_ID_LEN);
        assert_int_equal(items[i].blob_len, 100 + i);
        assert_int_equal(items[i].blob[0], i);
        assert_int_equal(items[i].expires_at_ms, LATER);
    }
    qpc_queue_items_free(items, n);

    uint64_t first = o[0].seq;
    assert_int_equal(qpc_queue_ack(f->q, alice, &first, 1, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(qpc_queue_ack_upto(f->q, alice, o[2].seq, &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 10, NOW, &items, &n), 0);
    assert_int_equal(n, 0);
    assert_null(items);
}

static void test_queue_ack_cannot_touch_another_recipients_rows(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN], mallory[QPC_KEY_LEN];
    struct outcome o = { 0 };
    uint64_t items = 0;
    size_t removed = 99;

    assert_int_equal(open_with(f, NULL), 0);
    make_key(alice, 1);
    make_key(mallory, 2);
    assert_int_equal(put(f->q, alice, 1, 10, LATER, &o), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o.status, 0);

    assert_int_equal(qpc_queue_ack(f->q, mallory, &o.seq, 1, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(qpc_queue_ack_upto(f->q, mallory, UINT64_MAX, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(qpc_queue_count(f->q, alice, &items, NULL), 0);
    assert_int_equal(items, 1);

    struct qpc_queue_item *got = NULL;
    size_t n = 0;
    assert_int_equal(qpc_queue_fetch(f->q, mallory, 0, 10, NOW, &got, &n), 0);
    assert_int_equal(n, 0);
}

static void test_queue_refuses_when_recipient_count_full(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .max_items_per_recipient = 3 };
    uint8_t alice[QPC_KEY_LEN], bob[QPC_KEY_LEN];
    struct outcome o[5] = { 0 };

    assert_int_equal(open_with(f, &limits), 0);
    make_key(alice, 1);
    make_key(bob, 2);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(put(f->q, alice, i, 10, LATER, &o[i]), 0);
    assert_int_equal(put(f->q, bob, 9, 10, LATER, &o[4]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[2].status, 0);
    assert_int_equal(o[3].status, QPC_ERR_QUEUE_FULL);   /* the fourth within one batch */
    assert_int_equal(o[3].seq, 0);
    assert_int_equal(o[4].status, 0);                    /* another recipient is unaffected */

    /* After an ack there is room again. */
    size_t removed = 0;
    assert_int_equal(qpc_queue_ack(f->q, alice, &o[0].seq, 1, &removed), 0);
    assert_int_equal(put(f->q, alice, 3, 10, LATER, &o[3]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[3].status, 0);
}

static void test_queue_refuses_when_recipient_bytes_full(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .max_bytes_per_recipient = 1000 };
    uint8_t alice[QPC_KEY_LEN];
    struct outcome o[3] = { 0 };
    uint64_t items = 0, bytes = 0;

    assert_int_equal(open_with(f, &limits), 0);
    make_key(alice, 1);
    assert_int_equal(put(f->q, alice, 0, 600, LATER, &o[0]), 0);
    assert_int_equal(put(f->q, alice, 1, 401, LATER, &o[1]), 0);
    assert_int_equal(put(f->q, alice, 2, 400, LATER, &o[2]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[0].status, 0);
    assert_int_equal(o[1].status, QPC_ERR_QUEUE_FULL);
    assert_int_equal(o[2].status, 0);   /* exactly at the limit fits */
    assert_int_equal(qpc_queue_count(f->q, alice, &items, &bytes), 0);
    assert_int_equal(items, 2);
    assert_int_equal(bytes, 1000);
}

static void test_queue_refuses_when_total_bytes_full(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .max_total_bytes = 250 };
    uint8_t a[QPC_KEY_LEN], b[QPC_KEY_LEN];
    struct outcome o[3] = { 0 };

    assert_int_equal(open_with(f, &limits), 0);
    make_key(a, 1);
    make_key(b, 2);
    assert_int_equal(put(f->q, a, 0, 100, LATER, &o[0]), 0);
    assert_int_equal(put(f->q, b, 1, 100, LATER, &o[1]), 0);
    assert_int_equal(put(f->q, b, 2, 100, LATER, &o[2]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[0].status, 0);
    assert_int_equal(o[1].status, 0);
    assert_int_equal(o[2].status, QPC_ERR_STORE_FULL);
}

static void test_queue_refuses_oversized_blob_at_once(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .max_blob_len = 512 };
    uint8_t alice[QPC_KEY_LEN];
    struct outcome o = { 0 };

    assert_int_equal(open_with(f, &limits), 0);
    make_key(alice, 1);
    assert_int_equal(put(f->q, alice, 0, 513, LATER, &o), QPC_ERR_TOO_LARGE);
    assert_int_equal(qpc_queue_staged(f->q), 0);
    assert_int_equal(put(f->q, alice, 1, 512, LATER, &o), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o.calls, 1);   /* the refused one never completes */
    assert_int_equal(o.status, 0);
}

static void test_queue_refuses_expired_put_and_expire_removes(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN];
    struct outcome o[3] = { 0 };
    struct qpc_queue_item *items = NULL;
    size_t n = 0, removed = 0;
    struct qpc_queue_stats st;

    assert_int_equal(open_with(f, NULL), 0);
    make_key(alice, 1);
    assert_int_equal(put(f->q, alice, 0, 10, NOW, &o[0]), QPC_ERR_EXPIRED);
    assert_int_equal(put(f->q, alice, 1, 10, NOW + 1000, &o[1]), 0);
    assert_int_equal(put(f->q, alice, 2, 10, NOW + 5000, &o[2]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[0].calls, 0);

    /* An expired row is no longer handed out, even before GC removes it. */
    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 10, NOW + 1000, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].seq, o[2].seq);
    qpc_queue_items_free(items, n);

    assert_int_equal(qpc_queue_expire(f->q, NOW + 999, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(qpc_queue_expire(f->q, NOW + 1000, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.items, 1);
    assert_int_equal(st.bytes, 10);
    assert_int_equal(qpc_queue_expire(f->q, NOW + 5000, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.items, 0);
    assert_int_equal(st.recipients, 0);
}

static void test_queue_duplicate_enqueue_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .max_items_per_recipient = 1 };
    uint8_t alice[QPC_KEY_LEN], bob[QPC_KEY_LEN];
    struct outcome o[4] = { 0 };
    uint64_t items = 0;

    assert_int_equal(open_with(f, &limits), 0);
    make_key(alice, 1);
    make_key(bob, 2);
    /* Twice in one batch, once in the next: one row, the same seq every time, and the
     * retries succeed although the recipient's queue is full (limit 1). */
    assert_int_equal(put(f->q, alice, 7, 10, LATER, &o[0]), 0);
    assert_int_equal(put(f->q, alice, 7, 10, LATER, &o[1]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(put(f->q, alice, 7, 10, LATER, &o[2]), 0);
    /* The same id for another recipient is a different message. */
    assert_int_equal(put(f->q, bob, 7, 10, LATER, &o[3]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(o[i].status, 0);
    assert_int_equal(o[1].seq, o[0].seq);
    assert_int_equal(o[2].seq, o[0].seq);
    assert_int_not_equal(o[3].seq, o[0].seq);
    assert_int_equal(qpc_queue_count(f->q, alice, &items, NULL), 0);
    assert_int_equal(items, 1);
}

static int add_out(struct qpc_queue *q, const char *domain, uint32_t n, uint64_t expires_at,
                   uint64_t now, struct outcome *o)
{
    uint8_t rcpt[QPC_KEY_LEN], id[QPC_ID_LEN], blob[64];
    make_key(rcpt, 3);
    make_id(id, n);
    memset(blob, (int)n, sizeof(blob));
    return qpc_queue_outbox_add(q, domain, rcpt, id, expires_at, blob, sizeof(blob), now,
                                record, o);
}

/* Counts the rows of a one-integer query on the database file. */
static int query_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Closes the fixture's queue and runs sql on its file (to make an older layout). */
static void close_and_rewrite(struct fixture *f, const char *sql)
{
    sqlite3 *db = NULL;

    qpc_queue_close(f->q);
    f->q = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_queue_upgrades_version_1_file_and_keeps_dedup(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN];
    struct outcome o[3] = { 0 };
    uint64_t items = 0;

    make_key(alice, 1);
    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(put(f->q, alice, 7, 10, LATER, &o[0]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    /* Turn the file back into the version 1 layout, with its row. */
    close_and_rewrite(f, "DROP INDEX queue_by_expiry_id;"
                         "CREATE INDEX queue_by_id ON queue(idh);"
                         "CREATE INDEX queue_by_expiry ON queue(expires_at);"
                         "ALTER TABLE queue DROP COLUMN enqueued_at;"
                         "ALTER TABLE outbox DROP COLUMN enqueued_at;"
                         "PRAGMA user_version = 1");

    /* Upgraded through version 2 to the current one. */
    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(query_int(f->path, "PRAGMA user_version"), 3);
    assert_int_equal(query_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
                                        " AND name IN ('queue_by_id', 'queue_by_expiry')"), 0);
    assert_int_equal(query_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
                                        " AND name = 'queue_by_expiry_id'"), 1);
    /* The row stored before the upgrade is still found as a duplicate. */
    assert_int_equal(put(f->q, alice, 7, 10, LATER, &o[1]), 0);
    assert_int_equal(put(f->q, alice, 8, 10, LATER, &o[2]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[1].status, 0);
    assert_int_equal(o[1].seq, o[0].seq);
    assert_int_equal(o[2].status, 0);
    assert_int_not_equal(o[2].seq, o[0].seq);
    assert_int_equal(qpc_queue_count(f->q, alice, &items, NULL), 0);
    assert_int_equal(items, 2);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_queue_upgrades_version_2_file_and_dates_old_rows_from_the_upgrade(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN], id[QPC_ID_LEN], blob[10] = { 0 };
    struct outcome o[3] = { 0 };
    struct qpc_queue_item *items = NULL;
    struct qpc_queue_stats st;
    uint64_t before, after;
    size_t n = 0;

    make_key(alice, 1);
    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(put(f->q, alice, 1, 10, LATER, &o[0]), 0);
    assert_int_equal(add_out(f->q, "node2.mesh.local", 1, LATER, NOW, &o[1]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    /* Version 2 had no enqueue times. */
    close_and_rewrite(f, "ALTER TABLE queue DROP COLUMN enqueued_at;"
                         "ALTER TABLE outbox DROP COLUMN enqueued_at;"
                         "PRAGMA user_version = 2");

    before = wall_ms();
    assert_int_equal(open_with(f, NULL), 0);
    after = wall_ms();
    assert_int_equal(query_int(f->path, "PRAGMA user_version"), 3);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_true(st.oldest_enqueued_ms >= before && st.oldest_enqueued_ms <= after);
    assert_true(st.outbox_oldest_enqueued_ms >= before && st.outbox_oldest_enqueued_ms <= after);
    /* The old row is intact and new rows carry their own time. */
    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 10, NOW, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].seq, o[0].seq);
    qpc_queue_items_free(items, n);
    make_id(id, 2);
    assert_int_equal(qpc_queue_enqueue(f->q, alice, id, LATER, blob, sizeof(blob), NOW + 7,
                                       record, &o[2]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_ack(f->q, alice, &o[0].seq, 1, NULL), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.oldest_enqueued_ms, NOW + 7);
}

/* Stages one message for rcpt, enqueued at `at`. */
static int put_at(struct qpc_queue *q, const uint8_t *rcpt, uint32_t n, uint64_t at,
                  struct outcome *o)
{
    uint8_t id[QPC_ID_LEN], blob[16];

    make_id(id, n);
    memset(blob, (int)n, sizeof(blob));
    return qpc_queue_enqueue(q, rcpt, id, LATER, blob, sizeof(blob), at, record, o);
}

static void test_queue_stats_report_when_the_oldest_rows_were_stored(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN], bob[QPC_KEY_LEN];
    struct outcome o[6] = { 0 };
    struct qpc_outbox_item *items = NULL;
    struct qpc_queue_stats st;
    uint64_t oids[2];
    size_t n = 0;

    make_key(alice, 1);
    make_key(bob, 2);
    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.oldest_enqueued_ms, 0);
    assert_int_equal(st.outbox_oldest_enqueued_ms, 0);

    assert_int_equal(put_at(f->q, alice, 1, NOW + 100, &o[0]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    /* A clock stepped back: the later write carries an earlier time, yet the first
     * stored row stays the oldest. */
    assert_int_equal(put_at(f->q, bob, 2, NOW + 50, &o[1]), 0);
    assert_int_equal(put_at(f->q, alice, 3, NOW + 300, &o[2]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.oldest_enqueued_ms, NOW + 100);
    /* A duplicate keeps the first row and its time. */
    assert_int_equal(put_at(f->q, alice, 1, NOW + 900, &o[3]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[3].seq, o[0].seq);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.oldest_enqueued_ms, NOW + 100);

    assert_int_equal(qpc_queue_ack(f->q, alice, &o[0].seq, 1, NULL), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.oldest_enqueued_ms, NOW + 50);
    assert_int_equal(qpc_queue_ack(f->q, bob, &o[1].seq, 1, NULL), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.oldest_enqueued_ms, NOW + 300);
    assert_int_equal(qpc_queue_ack(f->q, alice, &o[2].seq, 1, NULL), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.oldest_enqueued_ms, 0);
    assert_int_equal(st.outbox_oldest_enqueued_ms, 0);

    /* The outbox: a failed attempt moves the next attempt, not the enqueue time. */
    assert_int_equal(add_out(f->q, "node2.mesh.local", 1, LATER, NOW + 1000, &o[4]), 0);
    assert_int_equal(add_out(f->q, "node3.mesh.local", 2, LATER, NOW + 2000, &o[5]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW + 2000, 10, 0, &items, &n), 0);
    assert_int_equal(n, 2);
    oids[0] = items[0].oid;
    oids[1] = items[1].oid;
    qpc_outbox_items_free(items, n);
    assert_int_equal(qpc_queue_outbox_mark_failed(f->q, oids[0], NOW + 5000, NULL), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_oldest_enqueued_ms, NOW + 1000);
    assert_int_equal(st.oldest_enqueued_ms, 0);
    assert_int_equal(qpc_queue_outbox_remove(f->q, oids[0]), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_oldest_enqueued_ms, NOW + 2000);
    assert_int_equal(qpc_queue_outbox_remove(f->q, oids[1]), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_oldest_enqueued_ms, 0);
}

static void test_queue_limits_get_fills_in_defaults(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .max_total_bytes = 12345 }, got;

    assert_int_equal(open_with(f, &limits), 0);
    qpc_queue_limits_get(f->q, &got);
    assert_int_equal(got.max_total_bytes, 12345);
    assert_int_equal(got.max_outbox_items, QPC_QUEUE_MAX_OUTBOX_DEFAULT);
    assert_int_equal(got.max_items_per_recipient, QPC_QUEUE_MAX_ITEMS_DEFAULT);
}

static void test_queue_fetch_pages_in_order(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN], bob[QPC_KEY_LEN];
    struct outcome o[25] = { 0 };
    uint64_t after = 0;
    uint32_t seen = 0;

    assert_int_equal(open_with(f, NULL), 0);
    make_key(alice, 1);
    make_key(bob, 2);
    /* Interleave recipients so alice's seqs are not contiguous. */
    for (uint32_t i = 0; i < 25; i++)
        assert_int_equal(put(f->q, i % 5 == 4 ? bob : alice, i, 20, LATER, &o[i]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);

    for (int page = 0; page < 10; page++) {
        struct qpc_queue_item *items = NULL;
        size_t n = 0;
        assert_int_equal(qpc_queue_fetch(f->q, alice, after, 7, NOW, &items, &n), 0);
        if (n == 0)
            break;
        assert_true(n <= 7);
        for (size_t i = 0; i < n; i++) {
            while (seen % 5 == 4)
                seen++;   /* bob's */
            assert_int_equal(items[i].seq, o[seen].seq);
            assert_true(items[i].seq > after);
            after = items[i].seq;
            seen++;
        }
        qpc_queue_items_free(items, n);
    }
    assert_int_equal(seen, 24);   /* 20 of alice's read, bob's 5 skipped */

    struct qpc_queue_item *items = NULL;
    size_t n = 0;
    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 0, NOW, &items, &n), QPC_ERR_INVALID);
}

static void test_queue_reopen_keeps_data_and_never_reuses_seq(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN];
    struct outcome o[3] = { 0 };
    struct qpc_queue_item *items = NULL;
    size_t n = 0, removed = 0;

    assert_int_equal(open_with(f, NULL), 0);
    make_key(alice, 1);
    assert_int_equal(put(f->q, alice, 1, 50, LATER, &o[0]), 0);
    assert_int_equal(put(f->q, alice, 2, 60, LATER, &o[1]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    /* Ack the newest: its seq must not come back for the next message. */
    assert_int_equal(qpc_queue_ack(f->q, alice, &o[1].seq, 1, &removed), 0);
    qpc_queue_close(f->q);
    f->q = NULL;

    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 10, NOW, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].seq, o[0].seq);
    assert_int_equal(items[0].blob_len, 50);
    qpc_queue_items_free(items, n);

    assert_int_equal(put(f->q, alice, 3, 10, LATER, &o[2]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_true(o[2].seq > o[1].seq);
}

static void test_queue_close_completes_staged_writes_with_closed(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN];
    struct outcome o = { 0 };
    uint64_t items = 1;

    assert_int_equal(open_with(f, NULL), 0);
    make_key(alice, 1);
    assert_int_equal(put(f->q, alice, 1, 10, LATER, &o), 0);
    qpc_queue_close(f->q);
    f->q = NULL;
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, QPC_ERR_CLOSED);

    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(qpc_queue_count(f->q, alice, &items, NULL), 0);
    assert_int_equal(items, 0);
}

/* A completion that stages a follow-up write: it must land in the next commit. */
struct chain {
    struct qpc_queue *q;
    struct outcome first, second;
};

static void stage_follow_up(void *arg, int status, uint64_t seq)
{
    struct chain *c = arg;
    uint8_t alice[QPC_KEY_LEN];
    record(&c->first, status, seq);
    make_key(alice, 1);
    assert_int_equal(put(c->q, alice, 2, 10, LATER, &c->second), 0);
}

static void test_queue_completion_may_stage_next_write(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN], id[QPC_ID_LEN], blob[10] = { 0 };
    struct chain c = { 0 };

    assert_int_equal(open_with(f, NULL), 0);
    c.q = f->q;
    make_key(alice, 1);
    make_id(id, 1);
    assert_int_equal(qpc_queue_enqueue(f->q, alice, id, LATER, blob, sizeof(blob), NOW,
                                       stage_follow_up, &c), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(c.first.status, 0);
    assert_int_equal(c.second.calls, 0);
    assert_int_equal(qpc_queue_staged(f->q), 1);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(c.second.calls, 1);
    assert_int_equal(c.second.status, 0);
}

static void test_queue_commit_reports_db_error_when_locked(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .busy_timeout_ms = 20 };
    uint8_t alice[QPC_KEY_LEN];
    struct outcome o[2] = { 0 };
    sqlite3 *other = NULL;
    uint64_t items = 9;

    assert_int_equal(open_with(f, &limits), 0);
    make_key(alice, 1);
    /* Another writer holds the lock past our busy timeout. */
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(put(f->q, alice, 1, 10, LATER, &o[0]), 0);
    assert_int_equal(qpc_queue_commit(f->q), QPC_ERR_DB);
    assert_int_equal(o[0].calls, 1);
    assert_int_equal(o[0].status, QPC_ERR_DB);
    assert_true(strlen(qpc_queue_errmsg(f->q)) > 0);

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(put(f->q, alice, 1, 10, LATER, &o[1]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[1].status, 0);
    assert_int_equal(qpc_queue_count(f->q, alice, &items, NULL), 0);
    assert_int_equal(items, 1);
}

static void test_queue_open_refuses_newer_schema(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    char err[256] = "";

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(qpc_queue_open(f->path, NULL, &f->q, err, sizeof(err)), QPC_ERR_VERSION);
    assert_null(f->q);
    assert_non_null(strstr(err, "99"));
}

/* --- crash safety ------------------------------------------------------------------ */

#define CRASH_RCPT_TAG 7
#define CRASH_MAX_IDS 200000u
#define CRASH_KILL_AFTER 1000u   /* + up to 999, varied per run */

static int crash_pipe = -1;

/* Child's completion: report an acknowledged id to the parent. */
static void report_ack(void *arg, int status, uint64_t seq)
{
    uint32_t n = (uint32_t)(uintptr_t)arg;
    if (status != 0)
        _exit(3);
    if (write(crash_pipe, &n, sizeof(n)) != (ssize_t)sizeof(n))
        _exit(4);
}

/* Enqueues ids 0, 1, 2, ... in batches of varying size (plus a retry of an already
 * acknowledged id per batch) until killed. Never returns. */
static enum qpc_queue_sync crash_sync;   /* the mode the writer runs in */

static void crash_writer(const char *path, int fd)
{
    struct qpc_queue_limits limits = { .max_items_per_recipient = CRASH_MAX_IDS,
                                       .sync = crash_sync };
    struct qpc_queue *q = NULL;
    uint8_t rcpt[QPC_KEY_LEN], id[QPC_ID_LEN], blob[200];
    uint32_t next = 0;

    crash_pipe = fd;
    if (qpc_queue_open(path, &limits, &q, NULL, 0) != 0)
        _exit(2);
    make_key(rcpt, CRASH_RCPT_TAG);
    for (uint32_t batch = 1; next < CRASH_MAX_IDS; batch++) {
        uint32_t size = 1 + batch % 37;
        if (next > 0) {   /* a client retrying after a lost ack */
            uint32_t again = next - 1 - batch % next;
            make_id(id, again);
            memset(blob, (int)(again & 0xff), sizeof(blob));
            if (qpc_queue_enqueue(q, rcpt, id, LATER, blob, sizeof(blob), NOW, report_ack,
                                  (void *)(uintptr_t)again) != 0)
                _exit(5);
        }
        for (uint32_t i = 0; i < size && next < CRASH_MAX_IDS; i++, next++) {
            make_id(id, next);
            memset(blob, (int)(next & 0xff), sizeof(blob));
            if (qpc_queue_enqueue(q, rcpt, id, LATER, blob, sizeof(blob), NOW, report_ack,
                                  (void *)(uintptr_t)next) != 0)
                _exit(5);
        }
        if (qpc_queue_commit(q) != 0)
            _exit(6);
        qpc_queue_complete(q);   /* QPC_QUEUE_SYNC_THREAD: the answers of synced commits */
    }
    _exit(0);
}

static void test_queue_open_refuses_an_empty_file_instead_of_starting_afresh(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    struct stat sb;
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(qpc_queue_open(f->path, NULL, &f->q, err, sizeof(err)), QPC_ERR_CORRUPT);
    assert_null(f->q);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "empty (0 bytes)"));
    assert_non_null(strstr(err, "delete it"));
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_size, 0);   /* not silently made a new database */
}

/* Fills a queue with rows over many pages, closes it, and overwrites the middle of the
 * file (never page 1, the header) with a pattern: a damaged page, as a bad disk makes. */
static void make_damaged_file(struct fixture *f)
{
    struct outcome o[300];
    uint8_t rcpt[QPC_KEY_LEN], junk[4096];
    struct stat sb;
    FILE *fp;

    make_key(rcpt, 7);
    assert_int_equal(open_with(f, NULL), 0);
    for (uint32_t i = 0; i < 300; i++)
        assert_int_equal(put(f->q, rcpt, i, 3000, LATER, &o[i]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    qpc_queue_close(f->q);   /* checkpoints: every row is in the main file */
    f->q = NULL;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_true(sb.st_size > 64 * 4096);
    memset(junk, 0xa5, sizeof(junk));
    fp = fopen(f->path, "r+b");
    assert_non_null(fp);
    for (off_t at = sb.st_size * 2 / 5; at < sb.st_size * 3 / 5; at += (off_t)sizeof(junk)) {
        assert_int_equal(fseeko(fp, at, SEEK_SET), 0);
        assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
    }
    fclose(fp);
}

static void test_queue_open_refuses_a_file_with_a_damaged_page(void **state)
{
    struct fixture *f = *state;
    char err[768] = "";

    make_damaged_file(f);
    assert_int_equal(qpc_queue_open(f->path, NULL, &f->q, err, sizeof(err)), QPC_ERR_CORRUPT);
    assert_null(f->q);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "damaged"));
    assert_non_null(strstr(err, ".recover"));
}

static void test_queue_damaged_page_met_later_refuses_writes_instead_of_answering_ok(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .check = QPC_QUEUE_CHECK_OFF };
    struct qpc_queue_item *items = NULL;
    struct outcome before = { 0 }, after = { 0 };
    uint8_t rcpt[QPC_KEY_LEN], other[QPC_KEY_LEN];
    size_t n = 0;

    make_key(rcpt, 7);
    make_key(other, 8);
    make_damaged_file(f);
    /* As if the page had gone bad while the program ran: opened without the check. */
    assert_int_equal(open_with(f, &limits), 0);
    assert_false(qpc_queue_damaged(f->q));
    assert_int_equal(put(f->q, other, 9000, 100, LATER, &before), 0);   /* staged in time */
    assert_int_equal(qpc_queue_fetch(f->q, rcpt, 0, 10000, NOW, &items, &n), QPC_ERR_DB);
    assert_true(qpc_queue_damaged(f->q));
    assert_non_null(strstr(qpc_queue_errmsg(f->q), "damaged"));
    assert_non_null(strstr(qpc_queue_errmsg(f->q), f->path));
    /* No write is acknowledged into it any more: not the one staged before, not a new one
     * (for this recipient or any other). */
    assert_int_equal(qpc_queue_commit(f->q), QPC_ERR_DB);
    assert_int_equal(before.calls, 1);
    assert_int_equal(before.status, QPC_ERR_DB);
    assert_int_equal(put(f->q, rcpt, 9001, 100, LATER, &after), QPC_ERR_DB);
    assert_int_equal(put(f->q, other, 9002, 100, LATER, &after), QPC_ERR_DB);
    assert_int_equal(after.calls, 0);
}

static void check_acknowledged_writes_survive_kill_9(struct fixture *f, enum qpc_queue_sync sync)
{
    uint8_t *acked = calloc(CRASH_MAX_IDS, 1), *stored = calloc(CRASH_MAX_IDS, 1);
    uint8_t rcpt[QPC_KEY_LEN];
    uint32_t n, n_acked = 0, n_stored = 0;
    int fds[2], wstatus = 0;
    bool killed = false;
    uint32_t kill_after = CRASH_KILL_AFTER + (uint32_t)getpid() % 1000;
    pid_t pid;

    assert_non_null(acked);
    assert_non_null(stored);
    assert_int_equal(pipe(fds), 0);
    crash_sync = sync;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_writer(f->path, fds[1]);
    }
    close(fds[1]);
    /* Read acknowledgements; kill the writer once enough arrived, then drain what it
     * had already acknowledged before it died. */
    for (;;) {
        ssize_t r = read(fds[0], &n, sizeof(n));
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        assert_int_equal(r, sizeof(n));
        assert_true(n < CRASH_MAX_IDS);
        if (!acked[n])
            n_acked++;
        acked[n] = 1;
        /* Each run kills at another point: between commits, mid-commit, mid-fsync. */
        if (!killed && n_acked >= kill_after) {
            assert_int_equal(kill(pid, SIGKILL), 0);
            killed = true;
        }
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFSIGNALED(wstatus));   /* killed mid-way, not finished or failed */
    assert_int_equal(WTERMSIG(wstatus), SIGKILL);

    assert_int_equal(open_with(f, NULL), 0);
    make_key(rcpt, CRASH_RCPT_TAG);
    for (uint64_t after = 0;;) {
        struct qpc_queue_item *items = NULL;
        size_t got = 0;
        assert_int_equal(qpc_queue_fetch(f->q, rcpt, after, 1000, NOW, &items, &got), 0);
        if (got == 0)
            break;
        for (size_t i = 0; i < got; i++) {
            memcpy(&n, items[i].id, sizeof(n));
            assert_true(n < CRASH_MAX_IDS);
            assert_int_equal(stored[n], 0);   /* exactly once */
            stored[n] = 1;
            n_stored++;
            assert_int_equal(items[i].blob_len, 200);
            assert_int_equal(items[i].blob[199], n & 0xff);
            after = items[i].seq;
        }
        qpc_queue_items_free(items, got);
    }
    for (uint32_t i = 0; i < CRASH_MAX_IDS; i++) {
        if (acked[i] && !stored[i])
            fail_msg("acknowledged id %u lost", i);
    }
    assert_true(n_stored >= n_acked);
    uint64_t count = 0;
    assert_int_equal(qpc_queue_count(f->q, rcpt, &count, NULL), 0);
    assert_int_equal(count, n_stored);   /* the counters agree with the rows after a crash */
    print_message("kill -9: %u acknowledged, %u stored, none lost or doubled\n", n_acked,
                  n_stored);
    free(acked);
    free(stored);
}

static void test_queue_acknowledged_writes_survive_kill_9(void **state)
{
    check_acknowledged_writes_survive_kill_9(*state, QPC_QUEUE_SYNC_FULL);
}

/* The same with the answers coming from the sync thread's fsyncs (a process crash keeps
 * what the kernel has, so this checks the answering, in order and once, not the fsync:
 * tests/it_server_push_before_sync.sh holds the fsync itself). */
static void test_queue_acknowledged_writes_survive_kill_9_with_sync_thread(void **state)
{
    check_acknowledged_writes_survive_kill_9(*state, QPC_QUEUE_SYNC_THREAD);
}

/* What the callbacks of a commit saw, in the order they ran. */
struct trace {
    char what[16];      /* 'c' committed, 'd' done */
    uint64_t seq[16];
    int status[16];
    size_t n;
};

static void trace_committed(void *arg, uint64_t seq)
{
    struct trace *t = *(struct trace **)arg;
    assert_true(t->n < 16);
    t->what[t->n] = 'c';
    t->seq[t->n++] = seq;
}

static void trace_done(void *arg, int status, uint64_t seq)
{
    struct trace *t = *(struct trace **)arg;
    assert_true(t->n < 16);
    t->what[t->n] = 'd';
    t->status[t->n] = status;
    t->seq[t->n++] = seq;
}

/* Waits (no time limit of its own: CTest's) until qpc_queue_complete has run n calls. */
static void complete_until(struct qpc_queue *q, const struct trace *t, size_t n)
{
    while (t->n < n) {
        struct pollfd p = { .fd = qpc_queue_sync_fd(q), .events = POLLIN };
        assert_true(poll(&p, 1, 1000) >= 0);
        qpc_queue_complete(q);
    }
}

static void test_queue_sync_thread_pushes_at_commit_and_answers_after_the_fsync(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .sync = QPC_QUEUE_SYNC_THREAD };
    struct trace t = { .n = 0 };
    struct trace *tp = &t;
    uint8_t rcpt[QPC_KEY_LEN], id[QPC_ID_LEN], blob[64];
    struct qpc_queue_item *items = NULL;
    size_t got = 0;

    make_key(rcpt, 3);
    assert_int_equal(open_with(f, &limits), 0);
    assert_true(qpc_queue_sync_fd(f->q) >= 0);
    qpc_queue_set_committed(f->q, trace_committed);
    memset(blob, 1, sizeof(blob));
    for (uint32_t n = 0; n < 3; n++) {
        make_id(id, n);
        assert_int_equal(qpc_queue_enqueue(f->q, rcpt, id, LATER, blob, sizeof(blob), NOW,
                                           trace_done, &tp), 0);
    }
    assert_int_equal(qpc_queue_commit(f->q), 0);
    /* The three rows are committed: each one's committed callback ran, in order, before
     * any answer, and the rows can be read at once. */
    assert_true(t.n >= 3);
    assert_memory_equal(t.what, "ccc", 3);
    assert_true(t.seq[0] < t.seq[1] && t.seq[1] < t.seq[2]);
    assert_int_equal(qpc_queue_fetch(f->q, rcpt, 0, 10, NOW, &items, &got), 0);
    assert_int_equal(got, 3);
    qpc_queue_items_free(items, got);
    /* The answers come from qpc_queue_complete once the sync thread's fsync ended. */
    complete_until(f->q, &t, 6);
    assert_memory_equal(t.what, "cccddd", 6);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(t.status[3 + i], 0);
        assert_int_equal(t.seq[3 + i], t.seq[i]);
    }
    /* A staged ack is answered the same way, and a retry of a stored row is committed
     * again (pushed again; the recipient drops it by id) with its first seq. */
    uint64_t first = t.seq[0];
    t.n = 0;
    assert_int_equal(qpc_queue_ack_stage(f->q, rcpt, first, NULL, 0, trace_done, &tp), 0);
    make_id(id, 2);
    assert_int_equal(qpc_queue_enqueue(f->q, rcpt, id, LATER, blob, sizeof(blob), NOW,
                                       trace_done, &tp), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    complete_until(f->q, &t, 3);
    assert_memory_equal(t.what, "cdd", 3);
    assert_int_equal(t.seq[1], 1);                    /* the ack removed one row */
    assert_int_equal(t.seq[0], t.seq[2]);
    /* qpc_queue_flush waits for the fsync itself. */
    t.n = 0;
    make_id(id, 9);
    assert_int_equal(qpc_queue_enqueue(f->q, rcpt, id, LATER, blob, sizeof(blob), NOW,
                                       trace_done, &tp), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    qpc_queue_flush(f->q);
    assert_int_equal(t.n, 2);
    assert_memory_equal(t.what, "cd", 2);
    assert_int_equal(t.status[1], 0);
    qpc_queue_close(f->q);
    f->q = NULL;
    /* What was answered is in the file for the next opener (the WAL was checkpointed). */
    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(qpc_queue_sync_fd(f->q), -1);   /* FULL: no sync thread */
    assert_int_equal(qpc_queue_fetch(f->q, rcpt, 0, 10, NOW, &items, &got), 0);
    assert_int_equal(got, 3);
    qpc_queue_items_free(items, got);
}

/* A staged write not yet committed at close completes with QPC_ERR_CLOSED; one committed
 * but not yet answered is answered by the close, after its fsync. */
static void test_queue_sync_thread_close_answers_committed_writes(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .sync = QPC_QUEUE_SYNC_THREAD };
    struct outcome committed_one = { 0 }, staged_one = { 0 };
    uint8_t rcpt[QPC_KEY_LEN];

    make_key(rcpt, 4);
    assert_int_equal(open_with(f, &limits), 0);
    assert_int_equal(put(f->q, rcpt, 1, 100, LATER, &committed_one), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(put(f->q, rcpt, 2, 100, LATER, &staged_one), 0);
    qpc_queue_close(f->q);
    f->q = NULL;
    assert_int_equal(committed_one.calls, 1);
    assert_int_equal(committed_one.status, 0);
    assert_int_equal(staged_one.calls, 1);
    assert_int_equal(staged_one.status, QPC_ERR_CLOSED);
}

/* --- outbox ------------------------------------------------------------------------ */

static void test_outbox_retry_delay_doubles_with_jitter_and_is_capped(void **state)
{
    (void)state;
    assert_int_equal(qpc_queue_retry_delay_ms(0, 1000, 300000, 12345), 0);
    uint64_t expect = 1000;
    for (uint32_t a = 1; a < 40; a++) {
        uint64_t lo = qpc_queue_retry_delay_ms(a, 1000, 300000, 0);
        uint64_t hi = qpc_queue_retry_delay_ms(a, 1000, 300000, UINT32_MAX);
        uint64_t mid = qpc_queue_retry_delay_ms(a, 1000, 300000, 0x9e3779b9u);
        assert_int_equal(lo, expect / 2);
        assert_true(hi >= expect / 2 && hi <= expect);
        assert_true(mid >= lo && mid <= expect);
        expect = expect * 2 > 300000 ? 300000 : expect * 2;
    }
    /* Every value of the range [d/2, d] is reachable: rnd = d/2 gives the top. */
    assert_int_equal(qpc_queue_retry_delay_ms(1, 1000, 300000, 500), 1000);
    assert_int_equal(qpc_queue_retry_delay_ms(UINT32_MAX, 1000, 300000, 150000), 300000);
}

static void test_outbox_failed_row_waits_for_backoff_then_is_removed(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .retry_base_ms = 1000, .retry_cap_ms = 8000 };
    struct outcome o[2] = { 0 };
    struct qpc_outbox_item *items = NULL;
    struct qpc_queue_stats st;
    size_t n = 0;
    uint64_t now = NOW, next = 0;

    assert_int_equal(open_with(f, &limits), 0);
    assert_int_equal(add_out(f->q, "node2.mesh.local", 1, LATER, now, &o[0]), 0);
    assert_int_equal(add_out(f->q, "node2.mesh.local", 1, LATER, now, &o[1]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[0].status, 0);
    assert_int_equal(o[1].seq, o[0].seq);   /* idempotent */

    assert_int_equal(qpc_queue_outbox_due(f->q, now, 10, 0, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].domain, "node2.mesh.local");
    assert_int_equal(items[0].attempts, 0);
    assert_int_equal(items[0].blob_len, 64);
    uint64_t oid = items[0].oid;
    qpc_outbox_items_free(items, n);

    uint64_t prev_cap = 0;
    for (uint32_t attempt = 1; attempt <= 6; attempt++) {
        uint64_t cap = 1000ull << (attempt - 1);
        if (cap > 8000)
            cap = 8000;
        assert_int_equal(qpc_queue_outbox_mark_failed(f->q, oid, now, &next), 0);
        assert_true(next >= now + cap / 2 && next <= now + cap);
        assert_true(cap >= prev_cap);
        prev_cap = cap;
        /* Not due before its time, due at it. */
        assert_int_equal(qpc_queue_outbox_due(f->q, next - 1, 10, 0, &items, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(qpc_queue_outbox_due(f->q, next, 10, 0, &items, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(items[0].attempts, attempt);
        qpc_outbox_items_free(items, n);
        now = next;
    }
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_items, 1);
    assert_int_equal(st.outbox_bytes, 64);
    assert_int_equal(qpc_queue_outbox_remove(f->q, oid), 0);
    assert_int_equal(qpc_queue_outbox_remove(f->q, oid), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_queue_outbox_mark_failed(f->q, oid, now, NULL), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_items, 0);
}

static void test_outbox_row_ends_at_ttl(void **state)
{
    struct fixture *f = *state;
    struct outcome o[2] = { 0 };
    struct qpc_outbox_item *items = NULL;
    size_t n = 0, removed = 0;

    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(add_out(f->q, "a.mesh", 1, NOW + 10000, NOW, &o[0]), 0);
    assert_int_equal(add_out(f->q, "b.mesh", 2, NOW + 20000, NOW, &o[1]), 0);
    assert_int_equal(add_out(f->q, "c.mesh", 3, NOW, NOW, &o[1]), QPC_ERR_EXPIRED);
    assert_int_equal(add_out(f->q, "", 4, LATER, NOW, &o[1]), QPC_ERR_INVALID);
    assert_int_equal(qpc_queue_commit(f->q), 0);

    /* Past its TTL a row is never due, and expire deletes it. */
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW + 10000, 10, 0, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].domain, "b.mesh");
    qpc_outbox_items_free(items, n);
    assert_int_equal(qpc_queue_outbox_expire(f->q, NOW + 10000, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(qpc_queue_outbox_expire(f->q, NOW + 20000, &removed), 0);
    assert_int_equal(removed, 1);
}

static void test_outbox_lease_hides_rows_until_it_ends(void **state)
{
    struct fixture *f = *state;
    struct outcome o[3] = { 0 };
    struct qpc_outbox_item *items = NULL;
    size_t n = 0;

    assert_int_equal(open_with(f, NULL), 0);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(add_out(f->q, "node2.mesh", i, LATER, NOW, &o[i]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW, 2, 30000, &items, &n), 0);
    assert_int_equal(n, 2);
    qpc_outbox_items_free(items, n);
    /* Only the one not leased is handed out now. */
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW + 1, 10, 30000, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].oid, o[2].seq);
    qpc_outbox_items_free(items, n);
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW + 29999, 10, 0, &items, &n), 0);
    assert_int_equal(n, 0);
    /* The first lease ran out (the sender crashed or never answered): due again. */
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW + 30000, 10, 0, &items, &n), 0);
    assert_int_equal(n, 2);
    qpc_outbox_items_free(items, n);
}

static void test_outbox_row_failed_before_clock_stepped_back_is_due_again(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .retry_base_ms = 1000, .retry_cap_ms = 8000 };
    struct outcome o = { 0 };
    struct qpc_outbox_item *items = NULL;
    uint64_t back = NOW - 3600 * 1000, next = 0;
    size_t n = 0;

    assert_int_equal(open_with(f, &limits), 0);
    assert_int_equal(add_out(f->q, "node2.mesh", 1, LATER, NOW, &o), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_outbox_mark_failed(f->q, o.seq, NOW, &next), 0);
    assert_true(next > NOW);
    /* The wall clock is stepped back an hour (NTP, a router that booted without a
     * clock): the row's next attempt now lies an hour ahead, further than any back-off
     * (8 s here) could have put it, so it is due at once instead of in an hour. */
    assert_int_equal(qpc_queue_outbox_due(f->q, back, 10, 0, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].oid, o.seq);
    qpc_outbox_items_free(items, n);
    /* Its next back-off is measured on the new clock. */
    assert_int_equal(qpc_queue_outbox_mark_failed(f->q, o.seq, back, &next), 0);
    assert_true(next > back && next <= back + 8000);
    assert_int_equal(qpc_queue_outbox_due(f->q, back, 10, 0, &items, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(qpc_queue_outbox_due(f->q, next, 10, 0, &items, &n), 0);
    assert_int_equal(n, 1);
    qpc_outbox_items_free(items, n);
}

static void test_outbox_wake_makes_failed_rows_of_one_domain_due_now(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .retry_base_ms = 60000, .retry_cap_ms = 300000 };
    struct outcome a = { 0 }, b = { 0 }, c = { 0 };
    struct qpc_outbox_item *items = NULL;
    uint64_t next = 0;
    size_t n = 0, woken = 99;

    assert_int_equal(open_with(f, &limits), 0);
    assert_int_equal(add_out(f->q, "Far.Mesh", 1, LATER, NOW, &a), 0);
    assert_int_equal(add_out(f->q, "other.mesh", 2, LATER, NOW, &b), 0);
    assert_int_equal(add_out(f->q, "far.mesh", 3, LATER, NOW, &c), 0);   /* never tried */
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_outbox_mark_failed(f->q, a.seq, NOW, &next), 0);
    assert_true(next > NOW + 1000);
    assert_int_equal(qpc_queue_outbox_mark_failed(f->q, b.seq, NOW, NULL), 0);
    /* A route to far.mesh appears a second later: its failed row is due then (the
     * domain compared without case), the other domain's waits out its back-off, and the
     * row never tried is left as it is (it may be leased for its first attempt). */
    assert_int_equal(qpc_queue_outbox_wake(f->q, "far.mesh", NOW + 1000, &woken), 0);
    assert_int_equal(woken, 1);
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW + 1000, 10, 0, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_true((items[0].oid == a.seq && items[1].oid == c.seq) ||
                (items[0].oid == c.seq && items[1].oid == a.seq));
    qpc_outbox_items_free(items, n);
    /* Nothing left to wake. */
    assert_int_equal(qpc_queue_outbox_wake(f->q, "far.mesh", NOW + 1000, &woken), 0);
    assert_int_equal(woken, 0);
    assert_int_equal(qpc_queue_outbox_wake(f->q, NULL, NOW, NULL), QPC_ERR_INVALID);
}

static void test_outbox_refuses_when_full(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .max_outbox_items = 2 };
    struct outcome o[3] = { 0 };

    assert_int_equal(open_with(f, &limits), 0);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(add_out(f->q, "node2.mesh", i, LATER, NOW, &o[i]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[1].status, 0);
    assert_int_equal(o[2].status, QPC_ERR_QUEUE_FULL);
}

static void test_outbox_remove_many_deletes_listed_rows_and_ignores_gone_ones(void **state)
{
    struct fixture *f = *state;
    struct outcome o[5] = { 0 };
    struct qpc_outbox_item *items = NULL;
    struct qpc_queue_stats st;
    size_t n = 0, removed = 99;

    assert_int_equal(open_with(f, NULL), 0);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(add_out(f->q, "node2.mesh", i, LATER, NOW, &o[i]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);

    uint64_t oids[] = { o[0].seq, o[2].seq, o[4].seq, o[2].seq, o[4].seq + 1000, UINT64_MAX };
    assert_int_equal(qpc_queue_outbox_remove_many(f->q, oids, 6, &removed), 0);
    assert_int_equal(removed, 3);
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW, 10, 0, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(items[0].oid + items[1].oid, o[1].seq + o[3].seq);
    assert_true(items[0].oid == o[1].seq || items[0].oid == o[3].seq);
    qpc_outbox_items_free(items, n);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_items, 2);
    assert_int_equal(st.outbox_bytes, 2 * 64);

    assert_int_equal(qpc_queue_outbox_remove_many(f->q, oids, 3, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(qpc_queue_outbox_remove_many(f->q, NULL, 0, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(qpc_queue_outbox_remove_many(f->q, NULL, 1, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_queue_outbox_remove_many(NULL, oids, 1, NULL), QPC_ERR_INVALID);
    uint64_t rest[] = { o[3].seq, o[1].seq };
    assert_int_equal(qpc_queue_outbox_remove_many(f->q, rest, 2, NULL), 0);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_items, 0);
}

/* All rows go in one transaction: when it cannot be had, none goes. */
static void test_outbox_remove_many_is_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    struct qpc_queue_limits limits = { .busy_timeout_ms = 20 };
    struct outcome o[3] = { 0 };
    struct qpc_queue_stats st;
    sqlite3 *other = NULL;
    size_t removed = 99;

    assert_int_equal(open_with(f, &limits), 0);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(add_out(f->q, "node2.mesh", i, LATER, NOW, &o[i]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    uint64_t oids[] = { o[0].seq, o[1].seq, o[2].seq };

    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(qpc_queue_outbox_remove_many(f->q, oids, 3, &removed), QPC_ERR_DB);
    assert_int_equal(removed, 99);   /* untouched on failure */
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_items, 3);

    assert_int_equal(qpc_queue_outbox_remove_many(f->q, oids, 3, &removed), 0);
    assert_int_equal(removed, 3);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_items, 0);
}


static void test_outbox_staged_remove_commits_with_new_rows_in_one_transaction(void **state)
{
    struct fixture *f = *state;
    struct outcome o[4] = { 0 };
    struct qpc_outbox_item *items = NULL;
    struct qpc_queue_stats st;
    size_t n = 0;

    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(add_out(f->q, "p2p", 1, LATER, NOW, &o[0]), 0);
    assert_int_equal(add_out(f->q, "p2p", 2, LATER, NOW, &o[1]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);

    /* Row 1 goes, row 3 comes, in one commit; a second remove of row 1 is no error. */
    assert_int_equal(qpc_queue_outbox_stage_remove(f->q, o[0].seq, record, &o[2]), 0);
    assert_int_equal(add_out(f->q, "p2p", 3, LATER, NOW, &o[3]), 0);
    assert_int_equal(qpc_queue_outbox_stage_remove(f->q, o[0].seq, NULL, NULL), 0);
    assert_int_equal(qpc_queue_staged(f->q), 3);
    assert_int_equal(o[2].calls, 0);   /* nothing before the commit */
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(o[2].calls, 1);
    assert_int_equal(o[2].status, 0);
    assert_int_equal(o[3].status, 0);
    assert_int_equal(qpc_queue_outbox_list(f->q, 0, 10, NOW, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(items[0].oid, o[1].seq);
    assert_int_equal(items[1].oid, o[3].seq);
    qpc_outbox_items_free(items, n);
    assert_int_equal(qpc_queue_stats(f->q, &st), 0);
    assert_int_equal(st.outbox_items, 2);   /* the counter follows the staged delete */

    assert_int_equal(qpc_queue_outbox_stage_remove(f->q, 0, NULL, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_queue_outbox_stage_remove(NULL, 1, NULL, NULL), QPC_ERR_INVALID);

    /* Staged and never committed: the completion says so at close. */
    assert_int_equal(qpc_queue_outbox_stage_remove(f->q, o[1].seq, record, &o[2]), 0);
    qpc_queue_close(f->q);
    f->q = NULL;
    assert_int_equal(o[2].calls, 2);
    assert_int_equal(o[2].status, QPC_ERR_CLOSED);
}

static void test_outbox_list_pages_through_every_row_due_or_not(void **state)
{
    struct fixture *f = *state;
    struct outcome o = { 0 };
    struct qpc_outbox_item *items = NULL;
    size_t n = 0, seen = 0;
    uint64_t after = 0, last = 0;

    assert_int_equal(open_with(f, NULL), 0);
    for (uint32_t i = 1; i <= 25; i++)
        assert_int_equal(add_out(f->q, i % 2 ? "p2p" : "await", i, i == 7 ? NOW + 10 : LATER, NOW, &o), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    /* Leased rows are not due, but a listing still shows them. */
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW, 3, 60000, &items, &n), 0);
    assert_int_equal(n, 3);
    qpc_outbox_items_free(items, n);
    do {
        assert_int_equal(qpc_queue_outbox_list(f->q, after, 4, NOW + 10, &items, &n), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(items[i].oid > last);   /* oid order, no row twice */
            last = items[i].oid;
            assert_true(items[i].expires_at_ms > NOW + 10);   /* the expired one is left out */
        }
        seen += n;
        if (n > 0)
            after = items[n - 1].oid;
        qpc_outbox_items_free(items, n);
    } while (n == 4);
    assert_int_equal(seen, 24);
    assert_int_equal(qpc_queue_outbox_list(f->q, 0, 0, NOW, &items, &n), QPC_ERR_INVALID);
    assert_int_equal(qpc_queue_outbox_list(f->q, 0, 10001, NOW, &items, &n), QPC_ERR_INVALID);
}

/* A failed link's rows go back in one transaction (one fsync), not one each: 2,000
 * rows cost 0.43 s one by one against 0.007 s together on this machine's disk. */
static void test_outbox_mark_failed_many_is_one_transaction(void **state)
{
    struct fixture *f = *state;
    static struct outcome o[2000];
    static uint64_t oids[2001];
    struct qpc_outbox_item *items = NULL;
    size_t n = 0, marked = 0;
    uint64_t before;

    assert_int_equal(open_with(f, NULL), 0);
    for (uint32_t i = 0; i < 2000; i++)
        assert_int_equal(add_out(f->q, "node2.mesh", i, LATER, NOW, &o[i]), 0);
    before = qpc_queue_transactions(f->q);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_transactions(f->q), before + 1);
    for (uint32_t i = 0; i < 2000; i++)
        oids[i] = o[i].seq;
    oids[2000] = o[1999].seq + 1000;   /* gone: skipped */

    before = qpc_queue_transactions(f->q);
    assert_int_equal(qpc_queue_outbox_mark_failed_many(f->q, oids, 2001, NOW, &marked), 0);
    assert_int_equal(marked, 2000);
    assert_int_equal(qpc_queue_transactions(f->q), before + 1);

    /* Every row has its failed attempt and waits for its back-off. */
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW, 10000, 0, &items, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(qpc_queue_outbox_due(f->q, NOW + 1000, 10000, 0, &items, &n), 0);
    assert_int_equal(n, 2000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(items[i].attempts, 1);
    qpc_outbox_items_free(items, n);

    assert_int_equal(qpc_queue_outbox_mark_failed_many(f->q, NULL, 0, NOW, &marked), 0);
    assert_int_equal(marked, 0);
    assert_int_equal(qpc_queue_outbox_mark_failed_many(f->q, NULL, 1, NOW, NULL),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_queue_transactions(NULL), 0);
}

/* Acks staged beside new writes: deleted in the same transaction (no fsync of their own),
 * answered only after it, counters right, and never reaching a row staged beside them. */
static void test_queue_staged_ack_deletes_in_the_commit_and_keeps_counters(void **state)
{
    struct fixture *f = *state;
    uint8_t alice[QPC_KEY_LEN], mallory[QPC_KEY_LEN];
    struct outcome o[4] = { 0 }, ack = { 0 }, stranger = { 0 }, bad = { 0 };
    struct qpc_queue_item *items = NULL;
    uint64_t count = 0, bytes = 0, tx;
    size_t n = 0;

    assert_int_equal(open_with(f, NULL), 0);
    make_key(alice, 1);
    make_key(mallory, 2);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(put(f->q, alice, i, 100, LATER, &o[i]), 0);
    assert_int_equal(qpc_queue_commit(f->q), 0);

    /* Up to the first, and the third by its seq; the new row and everything of alice's
     * (UINT64_MAX from mallory) are out of reach. */
    assert_int_equal(qpc_queue_ack_stage(f->q, alice, o[0].seq, &o[2].seq, 1, record, &ack), 0);
    assert_int_equal(put(f->q, alice, 3, 50, LATER, &o[3]), 0);
    assert_int_equal(qpc_queue_ack_stage(f->q, mallory, UINT64_MAX, NULL, 0, record, &stranger), 0);
    assert_int_equal(qpc_queue_ack_stage(f->q, alice, 0, NULL, 2, record, &bad), QPC_ERR_INVALID);
    assert_int_equal(qpc_queue_staged(f->q), 3);
    assert_int_equal(ack.calls, 0);   /* not answered before the commit */
    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 10, NOW, &items, &n), 0);
    assert_int_equal(n, 3);           /* nor deleted */
    qpc_queue_items_free(items, n);

    tx = qpc_queue_transactions(f->q);
    assert_int_equal(qpc_queue_commit(f->q), 0);
    assert_int_equal(qpc_queue_transactions(f->q), tx + 1);
    assert_int_equal(ack.calls, 1);
    assert_int_equal(ack.status, 0);
    assert_int_equal(ack.seq, 2);     /* rows removed */
    assert_int_equal(stranger.calls, 1);
    assert_int_equal(stranger.status, 0);
    assert_int_equal(stranger.seq, 0);
    assert_int_equal(bad.calls, 0);
    assert_int_equal(o[3].status, 0);

    assert_int_equal(qpc_queue_fetch(f->q, alice, 0, 10, NOW, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(items[0].seq, o[1].seq);
    assert_int_equal(items[1].seq, o[3].seq);
    qpc_queue_items_free(items, n);
    assert_int_equal(qpc_queue_count(f->q, alice, &count, &bytes), 0);
    assert_int_equal(count, 2);
    assert_int_equal(bytes, 150);

    /* One staged at close is answered CLOSED and deletes nothing. */
    assert_int_equal(qpc_queue_ack_stage(f->q, alice, UINT64_MAX, NULL, 0, record, &ack), 0);
    qpc_queue_close(f->q);
    f->q = NULL;
    assert_int_equal(ack.calls, 2);
    assert_int_equal(ack.status, QPC_ERR_CLOSED);
    assert_int_equal(open_with(f, NULL), 0);
    assert_int_equal(qpc_queue_count(f->q, alice, &count, &bytes), 0);
    assert_int_equal(count, 2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_queue_round_trip_enqueue_commit_fetch_ack),
        T(test_queue_ack_cannot_touch_another_recipients_rows),
        T(test_queue_staged_ack_deletes_in_the_commit_and_keeps_counters),
        T(test_queue_refuses_when_recipient_count_full),
        T(test_queue_refuses_when_recipient_bytes_full),
        T(test_queue_refuses_when_total_bytes_full),
        T(test_queue_refuses_oversized_blob_at_once),
        T(test_queue_refuses_expired_put_and_expire_removes),
        T(test_queue_duplicate_enqueue_is_idempotent),
        T(test_queue_upgrades_version_1_file_and_keeps_dedup),
        T(test_queue_upgrades_version_2_file_and_dates_old_rows_from_the_upgrade),
        T(test_queue_stats_report_when_the_oldest_rows_were_stored),
        T(test_queue_limits_get_fills_in_defaults),
        T(test_queue_fetch_pages_in_order),
        T(test_queue_reopen_keeps_data_and_never_reuses_seq),
        T(test_queue_close_completes_staged_writes_with_closed),
        T(test_queue_completion_may_stage_next_write),
        T(test_queue_commit_reports_db_error_when_locked),
        T(test_queue_open_refuses_newer_schema),
        T(test_queue_open_refuses_an_empty_file_instead_of_starting_afresh),
        T(test_queue_open_refuses_a_file_with_a_damaged_page),
        T(test_queue_damaged_page_met_later_refuses_writes_instead_of_answering_ok),
        T(test_queue_acknowledged_writes_survive_kill_9),
        T(test_queue_acknowledged_writes_survive_kill_9_with_sync_thread),
        T(test_queue_sync_thread_pushes_at_commit_and_answers_after_the_fsync),
        T(test_queue_sync_thread_close_answers_committed_writes),
        T(test_outbox_retry_delay_doubles_with_jitter_and_is_capped),
        T(test_outbox_failed_row_waits_for_backoff_then_is_removed),
        T(test_outbox_row_ends_at_ttl),
        T(test_outbox_lease_hides_rows_until_it_ends),
        T(test_outbox_row_failed_before_clock_stepped_back_is_due_again),
        T(test_outbox_wake_makes_failed_rows_of_one_domain_due_now),
        T(test_outbox_refuses_when_full),
        T(test_outbox_remove_many_deletes_listed_rows_and_ignores_gone_ones),
        T(test_outbox_remove_many_is_all_or_nothing),
        T(test_outbox_mark_failed_many_is_one_transaction),
        T(test_outbox_staged_remove_commits_with_new_rows_in_one_transaction),
        T(test_outbox_list_pages_through_every_row_due_or_not),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
