/*
 * test_server_ratelimit.c: the node's token buckets (src/server/ratelimit.c), driven by
 * a clock the test sets: a full start, refill at the rate, the burst cap, and a clock
 * that steps back (an NTP step, a router that boots in 1970) blocks nobody. No sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit.h"

#define T0 4096.0

/* Takes tokens at now until the bucket refuses; returns how many it gave. */
static int drain(struct token_bucket *b, double now, double rate, double burst)
{
    int n = 0;

    while (token_bucket_take(b, now, rate, burst) && n < 100000)
        n++;
    return n;
}

static void test_bucket_starts_full_and_refills_at_rate(void **state)
{
    struct token_bucket b = { 0 };

    /* Times are binary fractions so that sums of refills are exact. */
    assert_int_equal(drain(&b, T0, 4.0, 20.0), 20);
    assert_false(token_bucket_take(&b, T0 + 0.125, 4.0, 20.0));   /* half a token */
    assert_true(token_bucket_take(&b, T0 + 0.25, 4.0, 20.0));     /* one token in 0.25 s */
    assert_false(token_bucket_take(&b, T0 + 0.25, 4.0, 20.0));
    /* Ten minutes idle refill only up to the burst. */
    assert_int_equal(drain(&b, T0 + 600.0, 4.0, 20.0), 20);
}

static void test_bucket_refills_after_clock_steps_back_an_hour(void **state)
{
    struct token_bucket b = { 0 };
    double back = T0 - 3600.0;

    assert_int_equal(drain(&b, T0, 10.0, 10.0), 10);
    /* The clock is stepped back an hour: nothing is refilled by the step... */
    assert_false(token_bucket_take(&b, back, 10.0, 10.0));
    /* ...but a second later (on the new clock) the bucket has refilled at its rate, as
     * if the step had not happened; it does not wait out the hour. */
    assert_int_equal(drain(&b, back + 1.0, 10.0, 10.0), 10);
    assert_true(token_bucket_take(&b, back + 1.5, 10.0, 10.0));
}

static void test_bucket_counts_no_time_for_a_reading_in_the_past(void **state)
{
    struct token_bucket b = { 0 };

    assert_int_equal(drain(&b, T0, 1.0, 3.0), 3);
    /* Readings jitter back and forth: the bucket never goes negative and never refills
     * more than the time that really passed from the latest reading. */
    assert_false(token_bucket_take(&b, T0 - 0.5, 1.0, 3.0));
    assert_false(token_bucket_take(&b, T0 - 0.25, 1.0, 3.0));
    assert_true(token_bucket_take(&b, T0 + 0.75, 1.0, 3.0));
    assert_false(token_bucket_take(&b, T0 + 0.75, 1.0, 3.0));
}

static void test_monotonic_clock_never_goes_back(void **state)
{
    double a = ratelimit_now(), b = ratelimit_now();

    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_starts_full_and_refills_at_rate),
        cmocka_unit_test(test_bucket_refills_after_clock_steps_back_an_hour),
        cmocka_unit_test(test_bucket_counts_no_time_for_a_reading_in_the_past),
        cmocka_unit_test(test_monotonic_clock_never_goes_back),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
