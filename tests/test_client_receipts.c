/*
 * test_client_receipts.c: the client's receipt tables (src/client/receipts.c): a receipt
 * counts only for an id I sent to its signer; a valid receipt from anyone else, or for
 * an id never sent, changes nothing; a repeat is told apart; owed receipts are batched
 * per sender, bounded, and stay owed until taken. No sockets; times are passed in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "qpc/error.h"
#include "receipts.h"

#define T0 1700000000000ull

struct fix {
    struct receipts r;
    uint8_t bob[QPC_KEY_LEN], carol[QPC_KEY_LEN], mallory[QPC_KEY_LEN];
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    if (f == NULL || sodium_init() < 0)
        return -1;
    receipts_init(&f->r);
    randombytes_buf(f->bob, QPC_KEY_LEN);
    randombytes_buf(f->carol, QPC_KEY_LEN);
    randombytes_buf(f->mallory, QPC_KEY_LEN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    receipts_clear(&f->r);
    free(f);
    return 0;
}

static void make_id(uint8_t id[QPC_ID_LEN], uint32_t n)
{
    memset(id, 0x5a, QPC_ID_LEN);
    memcpy(id, &n, sizeof(n));
}

static void test_receipt_counts_only_from_the_recipient_of_that_id(void **state)
{
    struct fix *f = *state;
    uint8_t id[QPC_ID_LEN], other[QPC_ID_LEN];
    struct receipt_wait done;

    make_id(id, 1);
    make_id(other, 2);
    assert_int_equal(receipts_wait(&f->r, id, f->bob, T0, T0 + 3600000), 0);
    assert_int_equal(receipts_wait(&f->r, id, f->bob, T0, T0 + 3600000), 0);   /* once */
    assert_int_equal(receipts_waiting_count(&f->r), 1);
    assert_true(receipts_waiting(&f->r, id));

    /* A receipt signed by someone else, or naming an id never sent: ignored, counted. */
    assert_int_equal(receipts_confirm(&f->r, f->mallory, id, &done), RECEIPT_REFUSED);
    assert_int_equal(receipts_confirm(&f->r, f->bob, other, &done), RECEIPT_REFUSED);
    assert_int_equal(f->r.refused, 2);
    assert_true(receipts_waiting(&f->r, id));

    /* The recipient's own: delivered, with what the sender needs to say how long it took. */
    memset(&done, 0, sizeof(done));
    assert_int_equal(receipts_confirm(&f->r, f->bob, id, &done), RECEIPT_CONFIRMED);
    assert_memory_equal(done.id, id, QPC_ID_LEN);
    assert_memory_equal(done.recipient, f->bob, QPC_KEY_LEN);
    assert_int_equal(done.created_at_ms, T0);
    assert_false(receipts_waiting(&f->r, id));

    /* A second copy is a repeat, not a refusal; from a stranger it is still refused. */
    assert_int_equal(receipts_confirm(&f->r, f->bob, id, NULL), RECEIPT_REPEATED);
    assert_int_equal(f->r.repeated, 1);
    assert_int_equal(f->r.refused, 2);
}

static void count(void *ctx, const struct receipt_wait *w)
{
    (*(int *)ctx)++;
    (void)w;
}

static void test_receipt_forget_and_expire_end_the_wait(void **state)
{
    struct fix *f = *state;
    uint8_t a[QPC_ID_LEN], b[QPC_ID_LEN], c[QPC_ID_LEN];
    int ended = 0;

    make_id(a, 1);
    make_id(b, 2);
    make_id(c, 3);
    receipts_wait(&f->r, a, f->bob, T0, T0 + 1000);
    receipts_wait(&f->r, b, f->bob, T0, T0 + 5000);
    receipts_wait(&f->r, c, f->carol, T0, T0 + 5000);
    receipts_forget(&f->r, c);
    assert_false(receipts_waiting(&f->r, c));
    assert_int_equal(receipts_confirm(&f->r, f->carol, c, NULL), RECEIPT_REFUSED);

    receipts_expire(&f->r, T0 + 999, NULL, NULL);
    assert_int_equal(receipts_waiting_count(&f->r), 2);
    receipts_expire(&f->r, T0 + 1000, count, &ended);
    assert_int_equal(ended, 1);
    assert_false(receipts_waiting(&f->r, a));
    assert_true(receipts_waiting(&f->r, b));
}

static void test_receipt_refusals_are_logged_at_a_rate_limit(void **state)
{
    struct fix *f = *state;
    uint64_t suppressed = 99;

    assert_true(receipts_log_refusal(&f->r, 1000, &suppressed));
    assert_int_equal(suppressed, 0);
    for (int i = 0; i < 50; i++)
        assert_false(receipts_log_refusal(&f->r, 1000 + (uint64_t)i * 100, NULL));
    assert_true(receipts_log_refusal(&f->r, 1000 + RECEIPTS_LOG_INTERVAL_MS, &suppressed));
    assert_int_equal(suppressed, 50);
}

struct taken {
    size_t calls, items;
    uint8_t sender[4][QPC_KEY_LEN];
    char domain[4][64];
    size_t refuse_after;   /* calls beyond this many return 1 (keep owed) */
};

static int take_cb(void *ctx, const uint8_t sender[static QPC_KEY_LEN],
                   const struct qpc_receipt_item *items, size_t n, const char *domain)
{
    struct taken *t = ctx;

    assert_true(n >= 1 && n <= QPC_RECEIPT_ITEMS_MAX);
    if (t->calls >= t->refuse_after)
        return 1;
    if (t->calls < 4) {
        memcpy(t->sender[t->calls], sender, QPC_KEY_LEN);
        snprintf(t->domain[t->calls], sizeof(t->domain[0]), "%s", domain);
    }
    t->calls++;
    t->items += n;
    (void)items;
    return 0;
}

static void test_owed_receipts_are_batched_per_sender_and_owed_once(void **state)
{
    struct fix *f = *state;
    struct qpc_receipt_item it = { .hops = 1, .path = QPC_RECEIPT_PATH_SERVER };
    struct taken t = { .refuse_after = 100 };

    for (uint32_t i = 0; i < 300; i++) {
        make_id(it.id, i);
        assert_int_equal(receipts_owe(&f->r, f->bob, &it, i == 299 ? "b.mesh.test" : ""), 0);
    }
    make_id(it.id, 5);
    assert_int_equal(receipts_owe(&f->r, f->bob, &it, NULL), 0);   /* owed once */
    make_id(it.id, 1000);
    assert_int_equal(receipts_owe(&f->r, f->carol, &it, NULL), 0);
    assert_int_equal(receipts_owed_count(&f->r), 301);

    receipts_take_owed(&f->r, take_cb, &t);
    /* bob: 256 + 44 in two envelopes; carol: 1. */
    assert_int_equal(t.calls, 3);
    assert_int_equal(t.items, 301);
    assert_int_equal(receipts_owed_count(&f->r), 0);
    for (size_t i = 0; i < t.calls; i++)
        if (memcmp(t.sender[i], f->bob, QPC_KEY_LEN) == 0)
            assert_string_equal(t.domain[i], "b.mesh.test");   /* the latest domain */

    /* Nothing owed: nothing handed out. */
    t.calls = 0;
    receipts_take_owed(&f->r, take_cb, &t);
    assert_int_equal(t.calls, 0);
}

static void test_owed_receipts_stay_owed_until_taken_and_are_bounded(void **state)
{
    struct fix *f = *state;
    struct qpc_receipt_item it = { 0 };
    struct taken t = { .refuse_after = 0 };
    uint32_t i;

    for (i = 0; i < RECEIPTS_OWED_MAX; i++) {
        make_id(it.id, i);
        assert_int_equal(receipts_owe(&f->r, i % 2 ? f->bob : f->carol, &it, NULL), 0);
    }
    make_id(it.id, i);
    assert_int_equal(receipts_owe(&f->r, f->bob, &it, NULL), QPC_ERR_QUEUE_FULL);
    make_id(it.id, 1);
    assert_int_equal(receipts_owe(&f->r, f->bob, &it, NULL), 0);   /* already owed: fine */

    receipts_take_owed(&f->r, take_cb, &t);   /* the taker refuses: all stay owed */
    assert_int_equal(receipts_owed_count(&f->r), RECEIPTS_OWED_MAX);
    t.refuse_after = 1000000;
    receipts_take_owed(&f->r, take_cb, &t);
    assert_int_equal(receipts_owed_count(&f->r), 0);
    assert_int_equal(t.items, RECEIPTS_OWED_MAX);
    make_id(it.id, i);
    assert_int_equal(receipts_owe(&f->r, f->bob, &it, NULL), 0);
}

static void test_receipted_ids_are_remembered_within_a_bound(void **state)
{
    struct fix *f = *state;
    uint8_t id[QPC_ID_LEN];

    for (uint32_t i = 0; i < RECEIPTS_RECEIPTED_MAX + 10; i++) {
        make_id(id, i);
        receipts_mark_receipted(&f->r, id);
    }
    make_id(id, 3);
    assert_false(receipts_receipted(&f->r, id));   /* the oldest were forgotten */
    make_id(id, RECEIPTS_RECEIPTED_MAX + 9);
    assert_true(receipts_receipted(&f->r, id));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_receipt_counts_only_from_the_recipient_of_that_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipt_forget_and_expire_end_the_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipt_refusals_are_logged_at_a_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owed_receipts_are_batched_per_sender_and_owed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owed_receipts_stay_owed_until_taken_and_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipted_ids_are_remembered_within_a_bound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
