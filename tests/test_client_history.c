/*
 * test_client_history.c: the message history (src/client/history.c) as another reader of
 * messages.db sees it: unbatched, every write is committed at once; batched, the writes
 * of a turn are one transaction that nobody else sees until history_commit (what
 * output.c waits for before showing a line), and turning batching off or closing
 * commits what is pending. Rows stay one per id, and a delivery is never taken back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "history.h"

struct fixture {
    char dir[64];
    char path[128];
    struct history *h;
    sqlite3 *other;                 /* a second connection: what another process sees */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_history.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, HISTORY_FILE);
    assert_int_equal(history_open(f->path, &f->h, err, sizeof(err)), 0);
    assert_int_equal(sqlite3_open_v2(f->path, &f->other, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    sqlite3_close(f->other);
    history_close(f->h);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Rows another connection sees; with state, only mine in that state. */
static int rows_seen(struct fixture *f, const char *state)
{
    sqlite3_stmt *st;
    int n = -1;

    assert_int_equal(sqlite3_prepare_v2(f->other, state != NULL ?
                                        "SELECT count(*) FROM messages WHERE state = ?" :
                                        "SELECT count(*) FROM messages", -1, &st, NULL), SQLITE_OK);
    if (state != NULL)
        sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void received(struct fixture *f, uint8_t idbyte, const char *text)
{
    uint8_t id[QPC_ID_LEN], peer[QPC_KEY_LEN];
    struct event ev = { .kind = EVT_BROADCAST, .id = id, .peer = peer, .topic = "lab",
                        .text = text, .text_len = strlen(text), .hops = 2, .sent_ms = 1000 };

    memset(id, idbyte, sizeof(id));
    memset(peer, 0x55, sizeof(peer));
    history_add_received(f->h, &ev, "direct", 2000, true);
}

static void unbatched_writes_are_seen_at_once(void **state)
{
    struct fixture *f = *state;
    uint8_t id[QPC_ID_LEN];

    memset(id, 0x01, sizeof(id));
    history_add_sent(f->h, id, NULL, "lab", "hello", 5, 1000);
    assert_false(history_pending(f->h));
    assert_int_equal(rows_seen(f, NULL), 1);
    received(f, 0x02, "one");
    assert_int_equal(rows_seen(f, NULL), 2);
    assert_int_equal(history_commit(f->h), 0);   /* nothing pending: a no-op */
}

static void batched_writes_wait_for_the_commit(void **state)
{
    struct fixture *f = *state;
    uint8_t id[QPC_ID_LEN];
    struct event ev = { .kind = EVT_DELIVERED, .id = id, .hops = 1 };

    history_set_batched(f->h, true);
    assert_false(history_pending(f->h));           /* opened by the first write, not before */
    memset(id, 0x01, sizeof(id));
    history_add_sent(f->h, id, NULL, "lab", "hello", 5, 1000);
    received(f, 0x02, "one");
    received(f, 0x03, "two");
    received(f, 0x03, "two");                      /* a second copy: still one row */
    assert_true(history_pending(f->h));
    assert_int_equal(rows_seen(f, NULL), 0);       /* not shown yet, not visible yet */
    assert_int_equal(history_commit(f->h), 0);
    assert_false(history_pending(f->h));
    assert_int_equal(rows_seen(f, NULL), 3);

    /* The next turn: an outcome is its own transaction too; "held" after "delivered"
     * does not take the delivery back. */
    history_note_outcome(f->h, &ev, "direct", 3000);
    assert_true(history_pending(f->h));
    assert_int_equal(rows_seen(f, "delivered"), 0);
    assert_int_equal(history_commit(f->h), 0);
    assert_int_equal(rows_seen(f, "delivered"), 1);
    ev.kind = EVT_HELD;
    ev.via = "abc";
    history_note_outcome(f->h, &ev, "direct", 4000);
    assert_int_equal(history_commit(f->h), 0);
    assert_int_equal(rows_seen(f, "delivered"), 1);
    assert_int_equal(rows_seen(f, "held"), 0);

    /* Events that say nothing of a message of mine open no transaction. */
    ev.kind = EVT_INFO;
    history_note_outcome(f->h, &ev, "direct", 5000);
    assert_false(history_pending(f->h));
}

static void turning_batching_off_commits(void **state)
{
    struct fixture *f = *state;

    history_set_batched(f->h, true);
    received(f, 0x04, "three");
    assert_int_equal(rows_seen(f, NULL), 0);
    history_set_batched(f->h, false);
    assert_false(history_pending(f->h));
    assert_int_equal(rows_seen(f, NULL), 1);
    received(f, 0x05, "four");                     /* unbatched again: at once */
    assert_int_equal(rows_seen(f, NULL), 2);
}

static void list_cb(void *ctx, const struct history_row *r)
{
    int *n = ctx;

    assert_int_equal(r->id[0], 0x06 + *n);
    assert_false(r->unread);
    (*n)++;
}

static void closing_commits_and_the_rows_read_back(void **state)
{
    struct fixture *f = *state;
    char err[256];
    int n = 0;

    history_set_batched(f->h, true);
    received(f, 0x06, "five");
    received(f, 0x07, "six");
    /* Read inside the open transaction, by the writer: its own rows, in order. */
    assert_int_equal(history_list(f->h, NULL, "lab", 10, false, list_cb, &n), 2);
    assert_int_equal(n, 2);
    assert_int_equal(rows_seen(f, NULL), 0);
    history_close(f->h);
    f->h = NULL;
    assert_int_equal(rows_seen(f, NULL), 2);
    assert_int_equal(history_open(f->path, &f->h, err, sizeof(err)), 0);
    n = 0;
    assert_int_equal(history_list(f->h, NULL, "lab", 10, false, list_cb, &n), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(unbatched_writes_are_seen_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(batched_writes_wait_for_the_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(turning_batching_off_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(closing_commits_and_the_rows_read_back, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
