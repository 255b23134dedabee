/*
 * test_client_peers.c: the client's table of live per-peer state and its garbage
 * collection (src/client/peers.c): who is kept (a link, a relay path, a dial running,
 * the race timer armed, messages held or parked for it) and who is dropped (idle
 * peers, once the table is above its limit). No sockets; a loop is made only to arm a
 * timer, never run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "peers.h"
#include "qpc/identity.h"

#define T0 1700000000000ull
#define BACKOFF_START 2000u

struct fix {
    struct qpc_identity *me;
    struct peer_table t;
    struct custody c;
    struct qpc_store *store;
};

static void never_called(struct ev_loop *loop, ev_timer *w, int revents)
{
    fail_msg("the race timer fired in a test that never runs a loop");
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    if (f == NULL || sodium_init() < 0 || qpc_identity_generate(&f->me) < 0)
        return -1;
    peers_init(&f->t, NULL, never_called, BACKOFF_START);
    custody_init(&f->c, qpc_identity_public_key(f->me));
    f->store = qpc_store_new(NULL);
    *state = f;
    return f->store == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    peers_clear(&f->t, NULL);
    custody_clear(&f->c);
    qpc_store_free(f->store);
    qpc_identity_free(f->me);
    free(f);
    return 0;
}

/* n idle peers with random keys. */
static void fill_idle(struct fix *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t key[QPC_KEY_LEN];

        randombytes_buf(key, sizeof(key));
        assert_non_null(peers_get(&f->t, key));
    }
}

/* A new peer state for a random key (returned in key). */
static struct peer_state *new_peer(struct fix *f, uint8_t key[QPC_KEY_LEN])
{
    randombytes_buf(key, QPC_KEY_LEN);
    return peers_get(&f->t, key);
}

/* An envelope of mine for to. */
static struct qpc_envelope envelope_for(struct fix *f, const uint8_t to[QPC_KEY_LEN])
{
    struct qpc_envelope env = { 0 };
    const uint8_t payload[8] = { 1, 2, 3 };

    assert_int_equal(qpc_envelope_init(&env, qpc_identity_secret_key(f->me), to, NULL, T0, 3600, 8,
                                       payload, sizeof(payload)), 0);
    return env;
}

static void test_peers_get_makes_one_state_per_key(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN], other[QPC_KEY_LEN];
    struct peer_state *ps = new_peer(f, key);

    randombytes_buf(other, sizeof(other));
    assert_non_null(ps);
    assert_ptr_equal(peers_get(&f->t, key), ps);
    assert_ptr_equal(peers_find(&f->t, key), ps);
    assert_null(peers_find(&f->t, other));
    assert_int_equal(peers_count(&f->t), 1);
    assert_memory_equal(ps->key, key, QPC_KEY_LEN);
    assert_false(ps->reaching);
    assert_int_equal(ps->backoff_ms, BACKOFF_START);
    assert_ptr_equal(ps->timer.data, ps);
    assert_false(ev_is_active(&ps->timer));
    assert_true(peers_idle(ps, &f->c, f->store));
}

static void test_peers_next_walks_every_peer_once(void **state)
{
    struct fix *f = *state;
    const struct peer_state *ps = NULL;
    size_t n = 0;

    fill_idle(f, 50);
    while ((ps = peers_next(&f->t, ps)) != NULL)
        n++;
    assert_int_equal(n, 50);
}

static void test_peers_gc_keeps_everyone_up_to_the_limit(void **state)
{
    struct fix *f = *state;

    fill_idle(f, PEERS_GC_ABOVE);
    assert_int_equal(peers_gc(&f->t, &f->c, f->store), 0);
    assert_int_equal(peers_count(&f->t), PEERS_GC_ABOVE);
}

static void test_peers_gc_drops_idle_peers_above_the_limit(void **state)
{
    struct fix *f = *state;

    fill_idle(f, PEERS_GC_ABOVE + 10);
    assert_int_equal(peers_gc(&f->t, &f->c, f->store), PEERS_GC_ABOVE + 10);
    assert_int_equal(peers_count(&f->t), 0);
}

/* Fills the table past its limit beside ps, collects, and checks that only ps is left. */
static void assert_only_survivor(struct fix *f, const uint8_t key[QPC_KEY_LEN])
{
    fill_idle(f, PEERS_GC_ABOVE);
    assert_int_equal(peers_gc(&f->t, &f->c, f->store), PEERS_GC_ABOVE);
    assert_int_equal(peers_count(&f->t), 1);
    assert_non_null(peers_find(&f->t, key));
}

static void test_peers_gc_drops_idle_strangers_below_the_limit(void **state)
{
    struct fix *f = *state;
    uint8_t kk[QPC_KEY_LEN], ks[QPC_KEY_LEN];
    struct peer_state *known = new_peer(f, kk), *stranger = new_peer(f, ks);

    stranger->stranger = true;
    assert_int_equal(peers_strangers(&f->t), 1);
    assert_int_equal(peers_gc(&f->t, &f->c, f->store), 1);
    assert_null(peers_find(&f->t, ks));
    assert_ptr_equal(peers_find(&f->t, kk), known);
    assert_int_equal(peers_strangers(&f->t), 0);
}

static void test_duplicate_rule_both_sides_agree(void **state)
{
    /* a crossed pair seen from each end: mine is the other's "theirs" */
    struct link_facts mine = { .initiated = true, .up_ms = 10, .tie = 1 };
    struct link_facts theirs = { .initiated = false, .up_ms = 12, .tie = 2 };

    /* I am the smaller key: my connection stays, on my side and on the peer's */
    assert_int_equal(peers_duplicate_drop(&mine, &theirs, true), 2);
    assert_int_equal(peers_duplicate_drop(&theirs, &mine, true), 1);
    {
        struct link_facts p_mine = { .initiated = true, .up_ms = 11, .tie = 7 };   /* = my "theirs" */
        struct link_facts p_theirs = { .initiated = false, .up_ms = 11, .tie = 8 }; /* = my "mine" */

        assert_int_equal(peers_duplicate_drop(&p_mine, &p_theirs, false), 1);   /* it drops its own */
    }
    /* I am the larger: the peer's connection stays */
    assert_int_equal(peers_duplicate_drop(&mine, &theirs, false), 1);
}

static void test_duplicate_rule_same_direction(void **state)
{
    struct link_facts old = { .initiated = true, .up_ms = 10, .tie = 5 };
    struct link_facts young = { .initiated = true, .up_ms = 20, .tie = 1 };
    struct link_facts twin = { .initiated = true, .up_ms = 10, .tie = 6 };
    struct link_facts in1 = { .initiated = false, .up_ms = 10, .tie = 1 };
    struct link_facts in2 = { .initiated = false, .up_ms = 20, .tie = 2 };

    assert_int_equal(peers_duplicate_drop(&old, &young, true), 1);    /* both mine: the older goes */
    assert_int_equal(peers_duplicate_drop(&young, &old, false), 2);
    assert_int_equal(peers_duplicate_drop(&old, &twin, true), 1);     /* same ms: the tie decides */
    assert_int_equal(peers_duplicate_drop(&twin, &old, true), 2);
    assert_int_equal(peers_duplicate_drop(&in1, &in2, true), 0);      /* both the peer's: it decides */
}

static void test_peers_gc_keeps_peer_with_a_link(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN];
    static int a_link;
    struct peer_state *ps = new_peer(f, key);

    ps->links = (struct link *)&a_link;   /* only its presence matters */
    assert_false(peers_idle(ps, &f->c, f->store));
    assert_only_survivor(f, key);
    ps->links = NULL;
}

static void test_peers_gc_keeps_peer_with_a_relay_path(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN];
    static int a_relay;
    struct peer_state *ps = new_peer(f, key);

    ps->relay = (struct qpc_quic_relay *)&a_relay;
    assert_only_survivor(f, key);
}

static void test_peers_gc_keeps_peer_being_dialled(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN];
    struct peer_state *ps = new_peer(f, key);

    ps->dialing = 1;
    assert_only_survivor(f, key);
}

static void test_peers_gc_keeps_peer_with_its_race_timer_armed(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct peer_state *ps = new_peer(f, key);

    assert_non_null(loop);
    ev_timer_set(&ps->timer, 3600.0, 0.0);
    ev_timer_start(loop, &ps->timer);   /* the race runs: dial.c's timer points here */
    assert_false(peers_idle(ps, &f->c, f->store));
    assert_only_survivor(f, key);
    ev_timer_stop(loop, &ps->timer);
    assert_true(peers_idle(ps, &f->c, f->store));
    ev_loop_destroy(loop);
}

static void test_peers_gc_keeps_peer_with_messages_held_for_it(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN];
    struct peer_state *ps = new_peer(f, key);
    struct qpc_envelope env = envelope_for(f, key);

    assert_int_equal(qpc_store_put(f->store, &env, T0), 0);
    assert_false(peers_idle(ps, &f->c, f->store));
    assert_only_survivor(f, key);
}

static void test_peers_gc_keeps_peer_with_messages_parked_for_it(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN];
    struct peer_state *ps = new_peer(f, key);
    struct qpc_envelope env = envelope_for(f, key);

    custody_park(&f->c, &env);
    assert_false(peers_idle(ps, &f->c, f->store));
    assert_only_survivor(f, key);
}

static void test_peers_gc_drops_recipient_whose_message_is_on_a_link(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN], hop[QPC_KEY_LEN];
    static int a_link;
    struct peer_state *ps = new_peer(f, key);
    struct qpc_envelope env = envelope_for(f, key);

    /* Handed to a neighbour's link: the link, not this peer state, carries it now. */
    randombytes_buf(hop, sizeof(hop));
    custody_hand(&f->c, &env, (struct link *)&a_link, hop);
    assert_true(peers_idle(ps, &f->c, f->store));
    fill_idle(f, PEERS_GC_ABOVE);
    peers_gc(&f->t, &f->c, f->store);
    assert_null(peers_find(&f->t, key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peers_get_makes_one_state_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_next_walks_every_peer_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_keeps_everyone_up_to_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_drops_idle_peers_above_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_keeps_peer_with_a_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_drops_idle_strangers_below_the_limit, setup, teardown),
        cmocka_unit_test(test_duplicate_rule_both_sides_agree),
        cmocka_unit_test(test_duplicate_rule_same_direction),
        cmocka_unit_test_setup_teardown(test_peers_gc_keeps_peer_with_a_relay_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_keeps_peer_being_dialled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_keeps_peer_with_its_race_timer_armed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_keeps_peer_with_messages_held_for_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_keeps_peer_with_messages_parked_for_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers_gc_drops_recipient_whose_message_is_on_a_link, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
