/*
 * test_server_mesh.c: what the node remembers of the announces it carries
 * (src/server/mesh_table.c), on a clock the test sets: ids are seen until their hold
 * ends, a full table forgets the oldest id first, the origin cache keeps the newest
 * seqno (across the 32-bit wrap) and refuses late copies, strangers minting origins
 * cannot grow it past its bound and push out the oldest heard first, and only live,
 * passable announces are handed to newcomers. No sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "mesh_table.h"

#define T0 1000000u

static const struct mesh_table_limits LIM = {
    .ids_max = 4, .id_hold_ms = 10000, .origins_max = 3, .origin_hold_max_ms = 60000,
};

static void id_of(uint8_t id[static QPC_ID_LEN], unsigned n)
{
    memset(id, 0, QPC_ID_LEN);
    memcpy(id, &n, sizeof(n));
}

/* An announce of origin number k (key bytes all k) with seqno and interval. */
static struct qpc_announce ann(uint8_t k, uint32_t seqno, uint32_t interval_s)
{
    struct qpc_announce a;

    memset(&a, 0, sizeof(a));
    memset(a.key, k, QPC_KEY_LEN);
    a.seqno = seqno;
    a.interval_s = interval_s;
    a.max_hops = 8;
    a.hops = 1;
    return a;
}

static void count_cb(const struct qpc_announce *a, void *arg)
{
    uint8_t *seen = arg;

    seen[a->key[0]]++;
}

static void test_ids_are_seen_until_their_hold_ends(void **state)
{
    struct mesh_table *t = mesh_table_new(&LIM);
    uint8_t id[QPC_ID_LEN];

    assert_non_null(t);
    id_of(id, 1);
    assert_false(mesh_table_seen(t, id, T0));
    mesh_table_remember(t, id, T0);
    assert_true(mesh_table_seen(t, id, T0));
    assert_true(mesh_table_seen(t, id, T0 + 9999));
    assert_false(mesh_table_seen(t, id, T0 + 10000));
    mesh_table_gc(t, T0 + 10000);
    assert_int_equal(mesh_table_ids(t), 0);
    mesh_table_free(t);
}

static void test_full_id_table_forgets_the_oldest_first(void **state)
{
    struct mesh_table *t = mesh_table_new(&LIM);
    uint8_t id[QPC_ID_LEN];

    for (unsigned i = 1; i <= 4; i++) {
        id_of(id, i);
        mesh_table_remember(t, id, T0 + i);
    }
    id_of(id, 1);
    mesh_table_remember(t, id, T0 + 5);      /* seen again: newest now */
    for (unsigned i = 10; i < 1000; i++) {   /* a stranger's flood of new ids */
        id_of(id, i);
        mesh_table_remember(t, id, T0 + 6);
        assert_true(mesh_table_ids(t) <= LIM.ids_max);
    }
    assert_int_equal(mesh_table_ids(t), 4);
    id_of(id, 2);
    assert_false(mesh_table_seen(t, id, T0 + 6));
    id_of(id, 999);
    assert_true(mesh_table_seen(t, id, T0 + 6));
    mesh_table_free(t);
}

static void test_origin_keeps_newest_seqno_and_refuses_late_copies(void **state)
{
    struct mesh_table *t = mesh_table_new(&LIM);
    struct qpc_announce a = ann(1, 10, 30);

    assert_true(mesh_table_take_latest(t, &a, true, T0));
    a = ann(1, 10, 30);
    assert_false(mesh_table_take_latest(t, &a, true, T0 + 1));   /* the same seqno */
    a = ann(1, 9, 30);
    assert_false(mesh_table_take_latest(t, &a, true, T0 + 2));   /* older */
    a = ann(1, 11, 30);
    assert_true(mesh_table_take_latest(t, &a, true, T0 + 3));
    /* serial-number order: 0xffffffff then 0 is newer, across the wrap */
    a = ann(2, 0xffffffffu, 30);
    assert_true(mesh_table_take_latest(t, &a, true, T0));
    a = ann(2, 0, 30);
    assert_true(mesh_table_take_latest(t, &a, true, T0 + 1));
    a = ann(2, 0xfffffffeu, 30);
    assert_false(mesh_table_take_latest(t, &a, true, T0 + 2));
    /* once its entry is past three intervals (90 s; capped at 60 s here) any seqno is
     * taken: the origin may have restarted its counter */
    a = ann(1, 3, 30);
    assert_false(mesh_table_take_latest(t, &a, true, T0 + 59000));
    assert_true(mesh_table_take_latest(t, &a, true, T0 + 3 + 60000));
    assert_int_equal(mesh_table_origins(t), 2);
    mesh_table_free(t);
}

static void test_home_is_the_latest_live_announces_domain(void **state)
{
    struct mesh_table *t = mesh_table_new(&LIM);
    struct qpc_announce a = ann(1, 10, 30);
    uint8_t k1[QPC_KEY_LEN], k2[QPC_KEY_LEN];

    (void)state;
    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    snprintf(a.domain, sizeof(a.domain), "%s", "a.mesh.test");
    assert_true(mesh_table_take_latest(t, &a, true, T0));
    assert_string_equal(mesh_table_home(t, k1, T0 + 1), "a.mesh.test");
    assert_null(mesh_table_home(t, k2, T0 + 1));                  /* never heard */
    /* a newer announce names another node: the origin moved */
    a = ann(1, 11, 30);
    snprintf(a.domain, sizeof(a.domain), "%s", "c.mesh.test");
    assert_true(mesh_table_take_latest(t, &a, true, T0 + 2));
    assert_string_equal(mesh_table_home(t, k1, T0 + 3), "c.mesh.test");
    /* past its hold (60 s here) the entry says nothing */
    assert_null(mesh_table_home(t, k1, T0 + 2 + 60000));
    /* an announce naming no node: no home */
    a = ann(2, 1, 30);
    assert_true(mesh_table_take_latest(t, &a, true, T0));
    assert_null(mesh_table_home(t, k2, T0 + 1));
    mesh_table_free(t);
}

static void test_strangers_cannot_grow_the_origin_cache(void **state)
{
    struct mesh_table *t = mesh_table_new(&LIM);
    struct qpc_announce a;
    uint8_t seen[256] = { 0 };

    a = ann(1, 1, 30);
    mesh_table_take_latest(t, &a, true, T0);
    a = ann(2, 1, 30);
    mesh_table_take_latest(t, &a, true, T0 + 1);
    a = ann(3, 1, 30);
    mesh_table_take_latest(t, &a, true, T0 + 2);
    a = ann(1, 2, 30);                       /* origin 1 heard again: newest now */
    assert_true(mesh_table_take_latest(t, &a, true, T0 + 3));
    a = ann(4, 1, 30);                       /* full: origin 2, heard longest ago, goes */
    assert_true(mesh_table_take_latest(t, &a, true, T0 + 4));
    assert_int_equal(mesh_table_origins(t), 3);
    mesh_table_foreach_live(t, T0 + 5, count_cb, seen);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 0);
    assert_int_equal(seen[3], 1);
    assert_int_equal(seen[4], 1);
    for (unsigned k = 10; k < 250; k++) {
        a = ann((uint8_t)k, 1, 30);
        assert_true(mesh_table_take_latest(t, &a, true, T0 + 10));
        assert_true(mesh_table_origins(t) <= LIM.origins_max);
    }
    mesh_table_free(t);
}

static void test_newcomers_get_only_live_passable_announces(void **state)
{
    struct mesh_table *t = mesh_table_new(&LIM);
    struct qpc_announce a;
    uint8_t seen[256] = { 0 };

    a = ann(1, 1, 5);                        /* held 15 s */
    mesh_table_take_latest(t, &a, true, T0);
    a = ann(2, 1, 30);                       /* at its hop limit: kept, never sent on */
    mesh_table_take_latest(t, &a, false, T0);
    a = ann(3, 1, 30);                       /* held 60 s (the cap) */
    mesh_table_take_latest(t, &a, true, T0);
    mesh_table_foreach_live(t, T0 + 14999, count_cb, seen);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 0);
    assert_int_equal(seen[3], 1);
    memset(seen, 0, sizeof(seen));
    mesh_table_foreach_live(t, T0 + 15000, count_cb, seen);
    assert_int_equal(seen[1], 0);
    assert_int_equal(seen[3], 1);
    mesh_table_gc(t, T0 + 15000);
    assert_int_equal(mesh_table_origins(t), 2);
    mesh_table_gc(t, T0 + 60000);
    assert_int_equal(mesh_table_origins(t), 0);
    mesh_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_seen_until_their_hold_ends),
        cmocka_unit_test(test_full_id_table_forgets_the_oldest_first),
        cmocka_unit_test(test_origin_keeps_newest_seqno_and_refuses_late_copies),
        cmocka_unit_test(test_home_is_the_latest_live_announces_domain),
        cmocka_unit_test(test_strangers_cannot_grow_the_origin_cache),
        cmocka_unit_test(test_newcomers_get_only_live_passable_announces),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
