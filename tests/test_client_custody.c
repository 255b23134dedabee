/*
 * test_client_custody.c: the client's custody rules (src/client/custody.c): what is in
 * flight and what is parked, which acks end custody (only the holder or the recipient),
 * temporary refusals keep the message, expiry, and the bound on forwarding for others.
 * No sockets: a link is an opaque tag, time is passed in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "custody.h"
#include "qpc/identity.h"

#define T0 1700000000000ull   /* an arbitrary "now" in ms */

struct fix {
    struct qpc_identity *me;       /* this node */
    struct qpc_identity *alice;    /* another sender, whose envelopes I forward */
    uint8_t bob[QPC_KEY_LEN];      /* a recipient */
    uint8_t carol[QPC_KEY_LEN];    /* a neighbour that holds for bob */
    uint8_t mallory[QPC_KEY_LEN];  /* neither holder nor recipient */
    struct custody c;
    struct qpc_store *store;
};

/* Two distinct links: only their addresses matter to custody. */
static int link_a, link_b;
#define L1 ((struct link *)&link_a)
#define L2 ((struct link *)&link_b)

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    if (f == NULL || sodium_init() < 0 || qpc_identity_generate(&f->me) < 0 ||
        qpc_identity_generate(&f->alice) < 0)
        return -1;
    randombytes_buf(f->bob, QPC_KEY_LEN);
    randombytes_buf(f->carol, QPC_KEY_LEN);
    randombytes_buf(f->mallory, QPC_KEY_LEN);
    custody_init(&f->c, qpc_identity_public_key(f->me));
    f->store = qpc_store_new(NULL);
    *state = f;
    return f->store == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    custody_clear(&f->c);
    qpc_store_free(f->store);
    qpc_identity_free(f->me);
    qpc_identity_free(f->alice);
    free(f);
    return 0;
}

/* A direct envelope from `from` to `to`, payload_len bytes, ttl_s seconds from created. */
static struct qpc_envelope envelope(const struct qpc_identity *from, const uint8_t to[QPC_KEY_LEN],
                                    uint64_t created, uint32_t ttl_s, size_t payload_len)
{
    struct qpc_envelope env = { 0 };
    uint8_t payload[256] = { 0 };

    assert_true(payload_len <= sizeof(payload));
    randombytes_buf(payload, payload_len);
    assert_int_equal(qpc_envelope_init(&env, qpc_identity_secret_key(from), to, NULL, created, ttl_s, 8,
                                       payload, payload_len), 0);
    return env;
}

/* Hands an envelope of mine for bob to carol on L1; returns its id in id. */
static void hand_mine(struct fix *f, uint8_t id[QPC_ID_LEN])
{
    struct qpc_envelope env = envelope(f->me, f->bob, T0, 3600, 32);

    memcpy(id, env.id, QPC_ID_LEN);
    custody_hand(&f->c, &env, L1, f->carol);
    assert_null(env.payload);   /* moved into the table */
}

static void test_custody_hand_puts_envelope_in_flight_with_its_holder(void **state)
{
    struct fix *f = *state;
    uint8_t id[QPC_ID_LEN];
    struct inflight *e;

    hand_mine(f, id);
    assert_int_equal(custody_count(&f->c), 1);
    e = custody_find(&f->c, id);
    assert_non_null(e);
    assert_ptr_equal(e->link, L1);
    assert_memory_equal(e->hop_peer, f->carol, QPC_KEY_LEN);
    assert_memory_equal(e->env.recipient, f->bob, QPC_KEY_LEN);
    assert_true(e->mine);
}

static void test_custody_marks_forwarded_envelopes_not_mine(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope env = envelope(f->alice, f->bob, T0, 3600, 32);
    uint8_t id[QPC_ID_LEN];

    memcpy(id, env.id, QPC_ID_LEN);
    custody_hand(&f->c, &env, L1, f->carol);
    assert_false(custody_find(&f->c, id)->mine);
}

static void test_custody_handing_same_id_again_keeps_one_entry(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope env = envelope(f->me, f->bob, T0, 3600, 32), copy = { 0 };
    uint8_t id[QPC_ID_LEN];
    struct inflight *e;

    memcpy(id, env.id, QPC_ID_LEN);
    assert_int_equal(qpc_envelope_copy(&copy, &env), 0);
    custody_hand(&f->c, &env, L1, f->carol);
    custody_hand(&f->c, &copy, L2, f->bob);
    assert_null(copy.payload);
    assert_int_equal(custody_count(&f->c), 1);
    e = custody_find(&f->c, id);
    assert_ptr_equal(e->link, L2);
    assert_memory_equal(e->hop_peer, f->bob, QPC_KEY_LEN);
}

static void test_custody_ack_ok_from_recipient_ends_custody_at_the_recipient(void **state)
{
    struct fix *f = *state;
    uint8_t id[QPC_ID_LEN];
    struct inflight *ended = NULL;

    /* Stored by the recipient: custody ends; "delivered" waits for its receipt. */
    hand_mine(f, id);
    assert_int_equal(custody_ack(&f->c, f->bob, id, QPC_ID_LEN, QPC__STATUS__STATUS_OK, &ended),
                     CUSTODY_ACK_RECIPIENT);
    assert_non_null(ended);
    assert_memory_equal(ended->id, id, QPC_ID_LEN);
    assert_int_equal(custody_count(&f->c), 0);
    custody_entry_free(ended);
}

static void test_custody_ack_from_holder_is_hand_over(void **state)
{
    struct fix *f = *state;
    const Qpc__Status ok[] = { QPC__STATUS__STATUS_OK, QPC__STATUS__STATUS_DEFERRED };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint8_t id[QPC_ID_LEN];
        struct inflight *ended = NULL;

        hand_mine(f, id);
        assert_int_equal(custody_ack(&f->c, f->carol, id, QPC_ID_LEN, ok[i], &ended), CUSTODY_ACK_HELD);
        assert_non_null(ended);
        assert_null(custody_find(&f->c, id));
        custody_entry_free(ended);
    }
}

static void test_custody_take_removes_an_entry_in_any_state(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope env = envelope(f->me, f->bob, T0, 3600, 32);
    uint8_t in_flight[QPC_ID_LEN], parked[QPC_ID_LEN];
    struct inflight *e, *ended = NULL;

    /* A receipt came: the copies still travelling or waiting are no longer needed. */
    hand_mine(f, in_flight);
    memcpy(parked, env.id, QPC_ID_LEN);
    custody_park(&f->c, &env);
    e = custody_take(&f->c, parked);
    assert_non_null(e);
    assert_memory_equal(e->id, parked, QPC_ID_LEN);
    custody_entry_free(e);
    e = custody_take(&f->c, in_flight);
    assert_non_null(e);
    custody_entry_free(e);
    assert_int_equal(custody_count(&f->c), 0);
    assert_null(custody_take(&f->c, in_flight));
    /* The hop ack that comes after is ignored. */
    assert_int_equal(custody_ack(&f->c, f->bob, in_flight, QPC_ID_LEN, QPC__STATUS__STATUS_OK, &ended),
                     CUSTODY_ACK_IGNORED);
    assert_null(ended);
}

static void test_custody_deferred_from_recipient_is_hand_over_not_delivery(void **state)
{
    struct fix *f = *state;
    uint8_t id[QPC_ID_LEN];
    struct inflight *ended = NULL;

    hand_mine(f, id);
    assert_int_equal(custody_ack(&f->c, f->bob, id, QPC_ID_LEN, QPC__STATUS__STATUS_DEFERRED, &ended),
                     CUSTODY_ACK_HELD);
    custody_entry_free(ended);
}

static void test_custody_ignores_ack_from_neither_holder_nor_recipient(void **state)
{
    struct fix *f = *state;
    uint8_t id[QPC_ID_LEN];
    struct inflight *ended = (struct inflight *)1;

    hand_mine(f, id);
    assert_int_equal(custody_ack(&f->c, f->mallory, id, QPC_ID_LEN, QPC__STATUS__STATUS_OK, &ended),
                     CUSTODY_ACK_IGNORED);
    assert_null(ended);
    assert_non_null(custody_find(&f->c, id));
    assert_ptr_equal(custody_find(&f->c, id)->link, L1);
    /* A refusal from a stranger does not end it either. */
    assert_int_equal(custody_ack(&f->c, f->mallory, id, QPC_ID_LEN, QPC__STATUS__STATUS_INVALID, &ended),
                     CUSTODY_ACK_IGNORED);
    assert_int_equal(custody_count(&f->c), 1);
}

static void test_custody_ignores_ack_for_unknown_or_malformed_id(void **state)
{
    struct fix *f = *state;
    uint8_t id[QPC_ID_LEN], other[QPC_ID_LEN];
    struct inflight *ended = NULL;

    hand_mine(f, id);
    randombytes_buf(other, sizeof(other));
    assert_int_equal(custody_ack(&f->c, f->bob, other, QPC_ID_LEN, QPC__STATUS__STATUS_OK, &ended),
                     CUSTODY_ACK_IGNORED);
    assert_int_equal(custody_ack(&f->c, f->bob, id, QPC_ID_LEN - 1, QPC__STATUS__STATUS_OK, &ended),
                     CUSTODY_ACK_IGNORED);
    assert_int_equal(custody_ack(&f->c, f->bob, NULL, 0, QPC__STATUS__STATUS_OK, &ended),
                     CUSTODY_ACK_IGNORED);
    assert_null(ended);
    assert_int_equal(custody_count(&f->c), 1);
}

static void test_custody_keeps_message_on_temporary_refusal(void **state)
{
    struct fix *f = *state;
    const Qpc__Status for_now[] = { QPC__STATUS__STATUS_QUEUE_FULL, QPC__STATUS__STATUS_INTERNAL,
                                    QPC__STATUS__STATUS_RATE_LIMITED };
    uint8_t id[QPC_ID_LEN];

    hand_mine(f, id);
    for (size_t i = 0; i < sizeof(for_now) / sizeof(for_now[0]); i++) {
        struct inflight *ended = NULL;

        custody_resent(custody_find(&f->c, id), L1, f->carol);
        assert_int_equal(custody_ack(&f->c, f->carol, id, QPC_ID_LEN, for_now[i], &ended), CUSTODY_ACK_RETRY);
        assert_null(ended);
        /* Still ours, parked: it waits for the next link toward bob. */
        assert_non_null(custody_find(&f->c, id));
        assert_null(custody_find(&f->c, id)->link);
        assert_true(custody_waits_for(&f->c, f->store, f->bob));
    }
}

static void test_custody_ends_on_permanent_refusal(void **state)
{
    struct fix *f = *state;
    const Qpc__Status for_good[] = { QPC__STATUS__STATUS_INVALID, QPC__STATUS__STATUS_EXPIRED,
                                     QPC__STATUS__STATUS_TOO_LARGE, QPC__STATUS__STATUS_FORBIDDEN };

    for (size_t i = 0; i < sizeof(for_good) / sizeof(for_good[0]); i++) {
        uint8_t id[QPC_ID_LEN];
        struct inflight *ended = NULL;

        hand_mine(f, id);
        assert_int_equal(custody_ack(&f->c, f->carol, id, QPC_ID_LEN, for_good[i], &ended),
                         CUSTODY_ACK_REFUSED);
        assert_non_null(ended);
        assert_null(custody_find(&f->c, id));
        custody_entry_free(ended);
    }
}

static void test_custody_link_gone_parks_only_what_went_out_on_it(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope a = envelope(f->me, f->bob, T0, 3600, 16), b = envelope(f->me, f->carol, T0, 3600, 16);
    uint8_t ida[QPC_ID_LEN], idb[QPC_ID_LEN];

    memcpy(ida, a.id, QPC_ID_LEN);
    memcpy(idb, b.id, QPC_ID_LEN);
    custody_hand(&f->c, &a, L1, f->carol);
    custody_hand(&f->c, &b, L2, f->carol);
    custody_link_gone(&f->c, L1);
    assert_null(custody_find(&f->c, ida)->link);
    assert_ptr_equal(custody_find(&f->c, idb)->link, L2);
    assert_int_equal(custody_count(&f->c), 2);   /* nothing is lost with the link */
}

static void test_custody_parked_message_waits_and_handed_one_does_not(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope env = envelope(f->me, f->bob, T0, 3600, 16);
    uint8_t id[QPC_ID_LEN];

    memcpy(id, env.id, QPC_ID_LEN);
    assert_false(custody_waits_for(&f->c, f->store, f->bob));
    custody_park(&f->c, &env);
    assert_null(env.payload);
    assert_null(custody_find(&f->c, id)->link);
    assert_true(custody_waits_for(&f->c, f->store, f->bob));
    assert_false(custody_waits_for(&f->c, f->store, f->carol));
    /* Sent again on a link: in flight, no longer waiting; the holder's ack ends it. */
    custody_resent(custody_find(&f->c, id), L1, f->carol);
    assert_false(custody_waits_for(&f->c, f->store, f->bob));
    {
        struct inflight *ended = NULL;

        assert_int_equal(custody_ack(&f->c, f->carol, id, QPC_ID_LEN, QPC__STATUS__STATUS_DEFERRED, &ended),
                         CUSTODY_ACK_HELD);
        custody_entry_free(ended);
    }
}

static void test_custody_store_queue_counts_as_waiting(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope env = envelope(f->me, f->bob, T0, 3600, 16);

    assert_int_equal(qpc_store_put(f->store, &env, T0), 0);
    assert_true(custody_waits_for(&f->c, f->store, f->bob));
    assert_false(custody_waits_for(&f->c, f->store, f->carol));
}

static int count_parked;

static void parked_cb(void *ctx, struct inflight *e)
{
    assert_null(e->link);
    count_parked++;
}

static void test_custody_foreach_parked_visits_only_parked(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope a = envelope(f->me, f->bob, T0, 3600, 16), b = envelope(f->me, f->bob, T0 + 1, 3600, 16);
    uint8_t id[QPC_ID_LEN];

    custody_park(&f->c, &a);
    custody_hand(&f->c, &b, L1, f->carol);
    hand_mine(f, id);
    count_parked = 0;
    custody_foreach_parked(&f->c, parked_cb, NULL);
    assert_int_equal(count_parked, 1);
}

static int count_expired;
static uint8_t expired_id[QPC_ID_LEN];

static void expired_cb(void *ctx, const struct inflight *e)
{
    count_expired++;
    memcpy(expired_id, e->id, QPC_ID_LEN);
}

static void test_custody_expire_drops_only_expired_envelopes(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope shortlived = envelope(f->me, f->bob, T0, 10, 16);
    struct qpc_envelope longlived = envelope(f->alice, f->bob, T0, 3600, 16);
    uint8_t id_short[QPC_ID_LEN], id_long[QPC_ID_LEN];

    memcpy(id_short, shortlived.id, QPC_ID_LEN);
    memcpy(id_long, longlived.id, QPC_ID_LEN);
    custody_hand(&f->c, &shortlived, L1, f->carol);
    custody_park(&f->c, &longlived);
    count_expired = 0;
    custody_expire(&f->c, T0 + 9999, expired_cb, NULL);
    assert_int_equal(count_expired, 0);
    custody_expire(&f->c, T0 + 10000, expired_cb, NULL);
    assert_int_equal(count_expired, 1);
    assert_memory_equal(expired_id, id_short, QPC_ID_LEN);
    assert_null(custody_find(&f->c, id_short));
    assert_non_null(custody_find(&f->c, id_long));
}

static void test_custody_forwarding_bound_counts_only_others_envelopes(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope mine = envelope(f->me, f->bob, T0, 3600, 200);
    struct qpc_envelope fwd1 = envelope(f->alice, f->bob, T0, 3600, 40);
    struct qpc_envelope fwd2 = envelope(f->alice, f->carol, T0, 3600, 60);

    assert_int_equal(custody_forwarded_bytes(&f->c), 0);
    assert_true(custody_may_forward(&f->c, 1));
    custody_hand(&f->c, &mine, L1, f->carol);
    assert_int_equal(custody_forwarded_bytes(&f->c), 0);   /* my own do not count */
    custody_hand(&f->c, &fwd1, L1, f->carol);
    custody_park(&f->c, &fwd2);                             /* parked ones do */
    assert_int_equal(custody_forwarded_bytes(&f->c), 100);
    assert_true(custody_may_forward(&f->c, 101));
    assert_false(custody_may_forward(&f->c, 100));          /* at the limit: refuse */
    assert_false(custody_may_forward(&f->c, 50));
}

/* A holder that refuses for now (RATE_LIMITED: hop limit, QUEUE_FULL) parks the entry,
 * and it is not sent again at once: the delay doubles with every refusal in a row and
 * stops growing at CUSTODY_RETRY_MAX_MS, so no two nodes pass it to and fro at the
 * speed of the link. */
static void test_custody_refusals_back_off_and_are_bounded(void **state)
{
    struct fix *f = *state;
    struct qpc_envelope env = envelope(f->alice, f->bob, T0, 3600, 32);
    uint8_t id[QPC_ID_LEN];
    struct inflight *ended = NULL, *e;
    uint64_t now = T0, last = 0;

    memcpy(id, env.id, QPC_ID_LEN);
    custody_hand(&f->c, &env, L1, f->carol);
    e = custody_find(&f->c, id);
    assert_true(custody_due(e, now));                     /* never refused: due */
    for (int i = 0; i < 12; i++) {
        uint64_t delay;

        custody_resent(e, L1, f->carol);
        assert_int_equal(custody_ack(&f->c, f->carol, id, QPC_ID_LEN, QPC__STATUS__STATUS_RATE_LIMITED, &ended),
                         CUSTODY_ACK_RETRY);
        assert_null(ended);
        assert_null(e->link);                             /* parked, still in custody */
        custody_retry_later(e, now);
        delay = e->not_before_ms - now;
        assert_false(custody_due(e, now));
        assert_false(custody_due(e, now + delay - 1));
        assert_true(custody_due(e, now + delay));
        assert_true(delay >= CUSTODY_RETRY_MIN_MS && delay <= CUSTODY_RETRY_MAX_MS);
        assert_true(delay >= last);                       /* never shorter than the last */
        if (last != 0 && last < CUSTODY_RETRY_MAX_MS / 2)
            assert_int_equal(delay, 2 * last);
        last = delay;
        now += delay;
    }
    assert_int_equal(last, CUSTODY_RETRY_MAX_MS);
    assert_non_null(custody_find(&f->c, id));
}

/* Split horizon: not back to the neighbour that handed it over, for a while. */
static void test_custody_split_horizon_refuses_the_neighbour_it_came_from(void **state)
{
    struct fix *f = *state;
    uint64_t at = T0;

    assert_false(custody_may_send_to(f->carol, at, at, f->carol, f->bob));
    assert_false(custody_may_send_to(f->carol, at, at + CUSTODY_SPLIT_HORIZON_MS - 1, f->carol, f->bob));
    assert_true(custody_may_send_to(f->carol, at, at, f->mallory, f->bob));
    assert_true(custody_may_send_to(NULL, 0, at, f->carol, f->bob));        /* mine, or from the server */
    assert_true(custody_may_send_to(f->bob, at, at, f->bob, f->bob));       /* the recipient itself */
    /* The only way left is back: taken once the routes had time to change. */
    assert_true(custody_may_send_to(f->carol, at, at + CUSTODY_SPLIT_HORIZON_MS, f->carol, f->bob));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_custody_hand_puts_envelope_in_flight_with_its_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_marks_forwarded_envelopes_not_mine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_handing_same_id_again_keeps_one_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_ack_ok_from_recipient_ends_custody_at_the_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_take_removes_an_entry_in_any_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_ack_from_holder_is_hand_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_deferred_from_recipient_is_hand_over_not_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_ignores_ack_from_neither_holder_nor_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_ignores_ack_for_unknown_or_malformed_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_keeps_message_on_temporary_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_ends_on_permanent_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_link_gone_parks_only_what_went_out_on_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_parked_message_waits_and_handed_one_does_not, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_store_queue_counts_as_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_foreach_parked_visits_only_parked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_expire_drops_only_expired_envelopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_forwarding_bound_counts_only_others_envelopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_refusals_back_off_and_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custody_split_horizon_refuses_the_neighbour_it_came_from, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
