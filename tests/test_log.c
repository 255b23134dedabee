/*
 * test_log.c: the log line budget for events peers cause at will (qpc_log_limit_pass):
 * one line per interval, the count of the ones held back, a clock that steps back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "qpc/log.h"

#define T0 1000000u

static void test_log_limit_passes_one_line_per_interval_and_counts_the_rest(void **state)
{
    struct qpc_log_limit l = { 0 };
    uint64_t sup = 99;

    assert_true(qpc_log_limit_pass(&l, T0, 10000, &sup));
    assert_int_equal(sup, 0);
    for (int i = 0; i < 1000; i++)
        assert_false(qpc_log_limit_pass(&l, T0 + (uint64_t)i, 10000, &sup));
    assert_false(qpc_log_limit_pass(&l, T0 + 9999, 10000, &sup));
    assert_true(qpc_log_limit_pass(&l, T0 + 10000, 10000, &sup));
    assert_int_equal(sup, 1001);
    /* Quiet for a while: the next line says nothing was held back. */
    assert_true(qpc_log_limit_pass(&l, T0 + 60000, 10000, &sup));
    assert_int_equal(sup, 0);
}

static void test_log_limit_lets_no_flood_through_when_the_clock_steps_back(void **state)
{
    struct qpc_log_limit l = { 0 };
    uint64_t sup = 0;
    int passed = 0;

    assert_true(qpc_log_limit_pass(&l, T0, 10000, &sup));
    for (uint64_t t = T0 - 5000; t < T0 + 5000; t += 10)
        passed += qpc_log_limit_pass(&l, t, 10000, &sup);
    assert_int_equal(passed, 0);
    assert_true(qpc_log_limit_pass(&l, T0 + 10000, 10000, &sup));
    assert_int_equal(sup, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_limit_passes_one_line_per_interval_and_counts_the_rest),
        cmocka_unit_test(test_log_limit_lets_no_flood_through_when_the_clock_steps_back),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
