/*
 * test_client_homes.c: each peer's home node domain from its signed announces
 * (src/client/homes.c): newest seqno wins, replays and older copies change nothing, an
 * announce without a domain keeps the last one, my own node's domain is "my queue", invalid
 * domains are never kept, the table is bounded and ages out, a listing restores as it was.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "homes.h"

#define T0 1700000000000ull
#define DAY (24ull * 3600 * 1000)

static void key_of(uint8_t key[static QPC_KEY_LEN], unsigned i)
{
    memset(key, 0, QPC_KEY_LEN);
    memcpy(key, &i, sizeof(i));
    key[31] = 0x5a;
}

static void test_homes_newest_seqno_sets_the_domain(void **state)
{
    struct homes *h = homes_new();
    uint8_t k[QPC_KEY_LEN];

    (void)state;
    key_of(k, 1);
    assert_null(homes_get(h, k));
    assert_true(homes_learn(h, k, "c.mesh.test", 10, T0));
    assert_string_equal(homes_get(h, k), "c.mesh.test");
    /* the same announce by another path: no change */
    assert_false(homes_learn(h, k, "c.mesh.test", 10, T0 + 1));
    /* an older one (a replay, a slow path) cannot move it */
    assert_false(homes_learn(h, k, "evil.mesh.test", 9, T0 + 2));
    assert_string_equal(homes_get(h, k), "c.mesh.test");
    /* nor one with the same seqno and another domain */
    assert_false(homes_learn(h, k, "evil.mesh.test", 10, T0 + 2));
    assert_string_equal(homes_get(h, k), "c.mesh.test");
    /* the peer moved to another node: its newer announce says so */
    assert_true(homes_learn(h, k, "b.mesh.test", 11, T0 + 3));
    assert_string_equal(homes_get(h, k), "b.mesh.test");
    /* a newer one with the same domain refreshes without a change */
    assert_false(homes_learn(h, k, "b.mesh.test", 12, T0 + 4));
    /* serial arithmetic: a wrapped seqno is newer */
    assert_true(homes_learn(h, k, "a.mesh.test", 12u + 0x7fffffffu, T0 + 5));
    assert_false(homes_learn(h, k, "c.mesh.test", 12, T0 + 6));
    assert_string_equal(homes_get(h, k), "a.mesh.test");
    homes_free(h);
}

static void test_homes_no_domain_keeps_the_last_and_invalid_is_none(void **state)
{
    struct homes *h = homes_new();
    uint8_t k[QPC_KEY_LEN];

    (void)state;
    key_of(k, 2);
    assert_false(homes_learn(h, k, "", 1, T0));          /* nothing to forget */
    assert_false(homes_learn(h, k, "bad domain!", 2, T0));
    assert_false(homes_learn(h, k, NULL, 3, T0));
    assert_null(homes_get(h, k));
    assert_true(homes_learn(h, k, "c.mesh.test", 4, T0));
    /* made before its node named the domain (or with no session): the last home stays,
     * where its messages wait for it */
    assert_false(homes_learn(h, k, "", 5, T0));
    assert_string_equal(homes_get(h, k), "c.mesh.test");
    /* a newer one naming an invalid domain counts as none */
    assert_false(homes_learn(h, k, "not..valid", 6, T0));
    assert_string_equal(homes_get(h, k), "c.mesh.test");
    /* the seqno moved on all the same: an older announce naming another node is stale */
    assert_false(homes_learn(h, k, "b.mesh.test", 5, T0));
    assert_string_equal(homes_get(h, k), "c.mesh.test");
    assert_true(homes_learn(h, k, "b.mesh.test", 7, T0));
    assert_string_equal(homes_get(h, k), "b.mesh.test");
    homes_free(h);
}

static void test_homes_my_own_node_is_my_queue(void **state)
{
    struct homes *h = homes_new();
    uint8_t k[QPC_KEY_LEN], u[QPC_KEY_LEN];

    (void)state;
    key_of(k, 3);
    key_of(u, 4);
    assert_true(homes_learn(h, k, "A.Mesh.Test", 1, T0));
    assert_string_equal(homes_enqueue_domain(h, k, "a.mesh.test"), "");
    assert_string_equal(homes_enqueue_domain(h, k, "c.mesh.test"), "A.Mesh.Test");
    assert_string_equal(homes_enqueue_domain(h, k, ""), "A.Mesh.Test");   /* mine unknown */
    assert_string_equal(homes_enqueue_domain(h, u, "c.mesh.test"), "");   /* no home known */
    assert_string_equal(homes_enqueue_domain(NULL, k, "c.mesh.test"), "");
    homes_free(h);
}

static void test_homes_bounded_oldest_goes_and_ages_out(void **state)
{
    struct homes *h = homes_new();
    uint8_t k[QPC_KEY_LEN];
    struct home *all = NULL;
    size_t n = 0;

    (void)state;
    for (unsigned i = 0; i < HOMES_MAX + 10; i++) {
        key_of(k, 1000 + i);
        homes_learn(h, k, "c.mesh.test", 1, T0 + i);
    }
    assert_int_equal(homes_list(h, &all, &n), 0);
    assert_int_equal(n, HOMES_MAX);
    free(all);
    key_of(k, 1000);
    assert_null(homes_get(h, k));                        /* the oldest went */
    key_of(k, 1000 + HOMES_MAX + 9);
    assert_non_null(homes_get(h, k));
    /* heard again (same seqno) keeps it from ageing */
    key_of(k, 1010);
    homes_learn(h, k, "c.mesh.test", 1, T0 + DAY);
    assert_int_equal(homes_expire(h, T0 + DAY + HOMES_MAX, DAY), HOMES_MAX - 11);
    assert_non_null(homes_get(h, k));
    homes_free(h);
}

static void test_homes_list_restores_as_it_was(void **state)
{
    struct homes *h = homes_new(), *back = homes_new();
    uint8_t k[QPC_KEY_LEN];
    struct home *all = NULL, bad;
    size_t n = 0;

    (void)state;
    for (unsigned i = 0; i < 3; i++) {
        key_of(k, 50 + i);
        homes_learn(h, k, i == 1 ? "b.mesh.test" : "c.mesh.test", 100 + i, T0 + i);
    }
    assert_int_equal(homes_list(h, &all, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        homes_restore(back, &all[i]);
    memset(&bad, 0, sizeof(bad));
    key_of(bad.key, 99);
    snprintf(bad.domain, sizeof(bad.domain), "no spaces");   /* a damaged row */
    homes_restore(back, &bad);
    assert_null(homes_get(back, bad.key));
    key_of(k, 51);
    assert_string_equal(homes_get(back, k), "b.mesh.test");
    /* the restored seqno still orders: an older announce changes nothing */
    assert_false(homes_learn(back, k, "evil.mesh.test", 100, T0 + 9));
    assert_string_equal(homes_get(back, k), "b.mesh.test");
    /* heard_ms kept: ages out on the same schedule */
    assert_int_equal(homes_expire(back, T0 + 1 + DAY + 1, DAY), 2);
    free(all);
    homes_free(h);
    homes_free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_homes_newest_seqno_sets_the_domain),
        cmocka_unit_test(test_homes_no_domain_keeps_the_last_and_invalid_is_none),
        cmocka_unit_test(test_homes_my_own_node_is_my_queue),
        cmocka_unit_test(test_homes_bounded_oldest_goes_and_ages_out),
        cmocka_unit_test(test_homes_list_restores_as_it_was),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
