/*
 * test_quic_initial.c: the client Initial keys of QUIC v1 against RFC 9001 Appendix A.1,
 * and packets that must not open. Real clients' Initials opening is test_quic's
 * (test_quic_forged_initials_make_no_state, and every handshake there).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "quic_initial.h"

static void test_quic_initial_keys_match_rfc9001_a1(void **state)
{
    static const uint8_t dcid[] = { 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08 };
    static const uint8_t key[] = { 0x1f, 0x36, 0x96, 0x13, 0xdd, 0x76, 0xd5, 0x46,
                                   0x77, 0x30, 0xef, 0xcb, 0xe3, 0xb1, 0xa2, 0x2d };
    static const uint8_t iv[] = { 0xfa, 0x04, 0x4b, 0x2f, 0x42, 0xa3,
                                  0xfd, 0x3b, 0x46, 0xfb, 0x25, 0x5c };
    static const uint8_t hp[] = { 0x9f, 0x50, 0x44, 0x9e, 0x04, 0xa0, 0xe8, 0x10,
                                  0x28, 0x3a, 0x1e, 0x99, 0x33, 0xad, 0xed, 0xd2 };
    struct qpc_quic_initial_keys k;

    assert_int_equal(qpc_quic_initial_keys_derive(&k, dcid, sizeof(dcid)), 0);
    assert_memory_equal(k.key, key, sizeof(key));
    assert_memory_equal(k.iv, iv, sizeof(iv));
    assert_memory_equal(k.hp, hp, sizeof(hp));
}

static void test_quic_initial_refuses_too_long_dcid(void **state)
{
    uint8_t dcid[21] = { 0 };
    struct qpc_quic_initial_keys k;

    assert_int_not_equal(qpc_quic_initial_keys_derive(&k, dcid, sizeof(dcid)), 0);
}

/* An Initial's shape (v1 long header, 8-byte ids, no token, Length to the end) around
 * bytes that are not its encryption; and cut, short and other-type variants of it. */
static size_t forged_initial(uint8_t *p, size_t len, uint8_t first, uint32_t version)
{
    size_t n = 0, body;

    memset(p, 0x5a, len);
    p[n++] = first;
    p[n++] = (uint8_t)(version >> 24);
    p[n++] = (uint8_t)(version >> 16);
    p[n++] = (uint8_t)(version >> 8);
    p[n++] = (uint8_t)version;
    p[n++] = 8;
    n += 8;   /* dcid */
    p[n++] = 8;
    n += 8;   /* scid */
    p[n++] = 0;   /* token length */
    body = len - n - 2;
    p[n++] = (uint8_t)(0x40 | (body >> 8));
    p[n++] = (uint8_t)body;
    return len;
}

static void test_quic_initial_forged_and_malformed_do_not_open(void **state)
{
    uint8_t p[1200];

    forged_initial(p, sizeof(p), 0xc3, 1);
    assert_false(qpc_quic_initial_opens(p, sizeof(p)));
    for (int i = 0; i < 256; i++) {   /* whatever the packet number bits say */
        p[0] = (uint8_t)(0xc0 | (i & 0x0f));
        p[30] = (uint8_t)i;
        assert_false(qpc_quic_initial_opens(p, sizeof(p)));
    }
    forged_initial(p, sizeof(p), 0xc3, 0x6b3343cf);   /* QUIC v2: not spoken */
    assert_false(qpc_quic_initial_opens(p, sizeof(p)));
    forged_initial(p, sizeof(p), 0xe3, 1);            /* a Handshake packet */
    assert_false(qpc_quic_initial_opens(p, sizeof(p)));
    forged_initial(p, sizeof(p), 0xc3, 1);
    for (size_t cut = 0; cut < 60; cut++)             /* Length beyond the datagram */
        assert_false(qpc_quic_initial_opens(p, cut));
    assert_false(qpc_quic_initial_opens(p, sizeof(p) - 1));
}

/* What refusing one forged 1200-byte Initial costs here (printed, not asserted). */
static void test_quic_initial_cost_of_a_forged_one(void **state)
{
    uint8_t p[1200];
    struct timespec t0, t1;
    int n = 20000, opened = 0;

    forged_initial(p, sizeof(p), 0xc3, 1);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        p[6 + i % 8] = (uint8_t)i;   /* a new dcid, so new keys, each time */
        opened += qpc_quic_initial_opens(p, sizeof(p));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(opened, 0);
    print_message("%.2f us per forged Initial refused\n",
                  ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                      n / 1000.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quic_initial_keys_match_rfc9001_a1),
        cmocka_unit_test(test_quic_initial_refuses_too_long_dcid),
        cmocka_unit_test(test_quic_initial_forged_and_malformed_do_not_open),
        cmocka_unit_test(test_quic_initial_cost_of_a_forged_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
