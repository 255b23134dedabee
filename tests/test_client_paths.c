/*
 * test_client_paths.c: address candidates (src/client/candidates.c) and the punch
 * budget (src/client/punch.c): what a stranger's candidate list or punch notices can
 * make a node do. No sockets: candidates are text, time is an argument.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "candidates.h"
#include "punch.h"

#define T0 1000000ull

static void test_candidate_normal_form_is_numeric_and_canonical(void **state)
{
    char out[CANDIDATE_TEXT_MAX];

    assert_true(candidate_normalize("10.1.0.2:7100", false, out));
    assert_string_equal(out, "10.1.0.2:7100");
    assert_true(candidate_normalize("[FD01:0:0::2]:7100", false, out));
    assert_string_equal(out, "[fd01::2]:7100");
    assert_true(candidate_normalize("[::ffff:10.1.0.2]:7", false, out));   /* mapped: as IPv4 */
    assert_string_equal(out, "10.1.0.2:7");
}

static void test_candidate_refuses_what_no_peer_can_have(void **state)
{
    char out[CANDIDATE_TEXT_MAX];
    static const char *const bad[] = {
        "example.org:7000",     /* a name: we would send DNS queries a stranger chose */
        "10.1.0.2:0", "10.1.0.2", "10.1.0.2:70000", "0.0.0.0:7000", "[::]:7000",
        "224.0.0.251:5353", "255.255.255.255:7000", "[ff02::1]:7000",
        "[fe80::1]:7000",       /* link-local: no scope travels with the text */
        "127.0.0.1:7000", "[::1]:7000",   /* loopback, unless allowed */
        "", "1.2.3.4:5:6",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(candidate_normalize(bad[i], false, out));
    assert_true(candidate_normalize("127.0.0.1:7000", true, out));
    {
        char longer[200];

        memset(longer, '1', sizeof(longer) - 1);
        longer[sizeof(longer) - 1] = '\0';
        assert_false(candidate_normalize(longer, true, out));
    }
}

static void test_candidates_are_bounded_and_without_repeats(void **state)
{
    struct candidates c = { 0 };
    char text[32];

    assert_true(candidates_add(&c, "10.0.0.1:1", false));
    assert_false(candidates_add(&c, "10.0.0.1:1", false));
    assert_false(candidates_add(&c, "[::ffff:10.0.0.1]:1", false));   /* the same address */
    for (int i = 2; i < 40; i++) {
        snprintf(text, sizeof(text), "10.0.0.%d:1", i);
        candidates_add(&c, text, false);
    }
    assert_int_equal(c.n, CANDIDATES_MAX);
    assert_true(candidates_add_first(&c, "192.0.2.1:9", false));
    assert_int_equal(c.n, CANDIDATES_MAX);
    assert_string_equal(c.addr[0], "192.0.2.1:9");
    assert_string_equal(c.addr[1], "10.0.0.1:1");
    assert_false(candidates_contains(&c, "10.0.0.8:1"));              /* the last one went */
    assert_true(candidates_add_first(&c, "10.0.0.3:1", false));       /* known: moved up */
    assert_string_equal(c.addr[0], "10.0.0.3:1");
    assert_int_equal(c.n, CANDIDATES_MAX);
}

static void test_candidates_digest_ignores_order_and_sees_changes(void **state)
{
    struct candidates a = { 0 }, b = { 0 };

    candidates_add(&a, "10.0.0.1:1", false);
    candidates_add(&a, "[fd00::1]:1", false);
    candidates_add(&b, "[fd00::1]:1", false);
    candidates_add(&b, "10.0.0.1:1", false);
    assert_true(candidates_digest(&a) == candidates_digest(&b));
    candidates_add(&b, "10.0.0.2:1", false);
    assert_true(candidates_digest(&a) != candidates_digest(&b));
}

static void test_candidates_txt_fits_one_string_and_parses_back(void **state)
{
    struct candidates c = { 0 }, back = { 0 };
    char txt[CANDIDATES_TXT_MAX + 1];
    char text[64];
    size_t len;

    for (int i = 0; i < CANDIDATES_MAX; i++) {
        snprintf(text, sizeof(text), "[2001:db8:1234:5678:9abc:def0:1234:%x]:65535", i + 1);
        candidates_add(&c, text, false);
    }
    len = candidates_to_txt(&c, txt, sizeof(txt));
    assert_true(len <= CANDIDATES_TXT_MAX);
    assert_int_equal(strlen(txt), len);
    assert_true(candidates_from_txt(&back, txt, false) >= 4);
    assert_string_equal(back.addr[0], c.addr[0]);
    /* garbage in a list costs nothing: only the valid entries are taken */
    candidates_clear(&back);
    assert_int_equal(candidates_from_txt(&back, "host.example:1,10.0.0.1:1,,224.0.0.1:5,10.0.0.2:2", false), 2);
    assert_string_equal(back.addr[1], "10.0.0.2:2");
}

static void test_candidates_from_a_loopback_listener_are_its_address(void **state)
{
    struct candidates c;

    assert_int_equal(candidates_gather(&c, "127.0.0.1", 7100), 1);
    assert_string_equal(c.addr[0], "127.0.0.1:7100");
    assert_int_equal(candidates_gather(&c, "0.0.0.0", 0), 0);   /* no port, no candidate */
    candidates_gather(&c, "0.0.0.0", 7100);
    for (size_t i = 0; i < c.n; i++) {
        assert_false(candidate_is_loopback(c.addr[i]));            /* a wildcard leaves lo out */
        assert_null(strchr(c.addr[i], '['));                       /* 0.0.0.0: IPv4 only */
    }
    assert_true(candidate_is_loopback("localhost:7000"));
    assert_true(candidate_is_loopback("127.0.0.1:0"));
    assert_false(candidate_is_loopback("10.0.0.1:7000"));
    {
        struct local_nets nets = { .n = 1 };

        memset(nets.net[0].addr, 0, 16);
        nets.net[0].addr[10] = nets.net[0].addr[11] = 0xff;
        nets.net[0].addr[12] = 10, nets.net[0].addr[13] = 1;         /* 10.1.0.0/24 */
        memset(nets.net[0].mask, 0xff, 15);
        nets.net[0].mask[15] = 0;
        assert_true(candidate_on_link(&nets, "10.1.0.77:9"));
        assert_false(candidate_on_link(&nets, "10.2.0.77:9"));
        assert_false(candidate_on_link(&nets, "[::ffff:10.2.0.77]:9"));
        assert_true(candidate_on_link(&nets, "127.0.0.1:9"));        /* loopback: always */
        local_nets_gather(&nets);
        assert_true(nets.n >= 1);                                    /* lo at least */
    }
}

static void test_punch_tries_per_address_set(void **state)
{
    struct punch_budget b = { 0 };
    struct punch_peer p = { 0 };
    uint64_t now = T0;

    for (int i = 0; i < PUNCH_TRIES_MAX; i++) {
        assert_int_equal(punch_allow(&b, &p, 42, false, false, now), PUNCH_OK);
        if (i + 1 < PUNCH_TRIES_MAX)
            assert_int_equal(punch_allow(&b, &p, 42, false, false, now + 1), PUNCH_TOO_SOON);
        now += PUNCH_RETRY_MS;
    }
    assert_int_equal(punch_allow(&b, &p, 42, false, true, now + 3600000), PUNCH_EXHAUSTED);
    /* new addresses on either side: new tries */
    assert_int_equal(punch_allow(&b, &p, 43, false, false, now), PUNCH_OK);
    assert_int_equal(p.tries, 1);
}

static void test_punch_urgent_skips_the_spacing_not_the_count(void **state)
{
    struct punch_budget b = { 0 };
    struct punch_peer p = { 0 };

    for (int i = 0; i < PUNCH_TRIES_MAX; i++)
        assert_int_equal(punch_allow(&b, &p, 7, false, true, T0), PUNCH_OK);
    assert_int_equal(punch_allow(&b, &p, 7, false, true, T0), PUNCH_EXHAUSTED);
}

static void test_punch_node_rate_bounds_many_peers(void **state)
{
    struct punch_budget b = { 0 };
    struct punch_peer peers[200] = { { 0 } };
    int ok = 0;

    /* one second of notices from 200 different peers: the burst plus one second's rate */
    for (int i = 0; i < 200; i++)
        ok += punch_allow(&b, &peers[i], (uint64_t)i, false, true, T0 + (uint64_t)i * 5) == PUNCH_OK;
    assert_true(ok <= (int)(PUNCH_BURST + PUNCH_RATE_PER_S) + 1);
    assert_true(ok >= (int)PUNCH_BURST);
}

static void test_punch_strangers_have_their_own_smaller_rate(void **state)
{
    struct punch_budget b = { 0 };
    struct punch_peer strangers[50] = { { 0 } }, friend = { 0 };
    int ok = 0;

    for (int i = 0; i < 50; i++)
        ok += punch_allow(&b, &strangers[i], (uint64_t)i, true, true, T0) == PUNCH_OK;
    assert_int_equal(ok, (int)PUNCH_STRANGER_BURST);
    /* a known peer still gets through: strangers did not use up the node's budget */
    assert_int_equal(punch_allow(&b, &friend, 1, false, true, T0), PUNCH_OK);
    /* and the strangers' bucket refills at its own rate */
    assert_int_equal(punch_allow(&b, &strangers[49], 99, true, true, T0 + 1000), PUNCH_OK);
}

static void test_punch_stranger_states_are_capped(void **state)
{
    assert_true(punch_stranger_admit(0));
    assert_true(punch_stranger_admit(PUNCH_STRANGERS_MAX - 1));
    assert_false(punch_stranger_admit(PUNCH_STRANGERS_MAX));
}

static void test_punch_refusals_cost_one_line_a_minute(void **state)
{
    struct punch_budget b = { 0 };
    unsigned unlogged = 99, lines = 0;

    for (int i = 0; i < 1000; i++)
        lines += punch_log_due(&b, T0 + (uint64_t)i, &unlogged);
    assert_int_equal(lines, 1);
    assert_int_equal(unlogged, 0);
    assert_true(punch_log_due(&b, T0 + PUNCH_LOG_MS, &unlogged));
    assert_int_equal(unlogged, 999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_candidate_normal_form_is_numeric_and_canonical),
        cmocka_unit_test(test_candidate_refuses_what_no_peer_can_have),
        cmocka_unit_test(test_candidates_are_bounded_and_without_repeats),
        cmocka_unit_test(test_candidates_digest_ignores_order_and_sees_changes),
        cmocka_unit_test(test_candidates_txt_fits_one_string_and_parses_back),
        cmocka_unit_test(test_candidates_from_a_loopback_listener_are_its_address),
        cmocka_unit_test(test_punch_tries_per_address_set),
        cmocka_unit_test(test_punch_urgent_skips_the_spacing_not_the_count),
        cmocka_unit_test(test_punch_node_rate_bounds_many_peers),
        cmocka_unit_test(test_punch_strangers_have_their_own_smaller_rate),
        cmocka_unit_test(test_punch_stranger_states_are_capped),
        cmocka_unit_test(test_punch_refusals_cost_one_line_a_minute),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
