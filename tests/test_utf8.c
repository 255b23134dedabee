/* test_utf8.c: the UTF-8 decoder accepts exactly the well-formed sequences of RFC 3629. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/utf8.h"

static void test_utf8_decodes_each_length_at_its_bounds(void **state)
{
    static const struct { const char *bytes; size_t len; uint32_t cp; } good[] = {
        { "\x00", 1, 0x0 },               { "\x7f", 1, 0x7f },
        { "\xc2\x80", 2, 0x80 },          { "\xdf\xbf", 2, 0x7ff },
        { "\xe0\xa0\x80", 3, 0x800 },     { "\xed\x9f\xbf", 3, 0xd7ff },
        { "\xee\x80\x80", 3, 0xe000 },    { "\xef\xbf\xbf", 3, 0xffff },
        { "\xf0\x90\x80\x80", 4, 0x10000 }, { "\xf4\x8f\xbf\xbf", 4, 0x10ffff },
        { "\xc3\xa9", 2, 0xe9 },          { "\xf0\x9f\x98\x80", 4, 0x1f600 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint32_t cp = 0xffffffff;
        assert_int_equal(qpc_utf8_decode(good[i].bytes, good[i].len, &cp), good[i].len);
        assert_int_equal(cp, good[i].cp);
        assert_true(qpc_utf8_valid(good[i].bytes, good[i].len));
    }
}

static void test_utf8_refuses_overlong_surrogate_out_of_range_and_broken(void **state)
{
    static const struct { const char *bytes; size_t len; } bad[] = {
        { "\xc0\xaf", 2 }, { "\xc1\xbf", 2 },              /* overlong '/' and U+007F */
        { "\xe0\x80\xaf", 3 }, { "\xe0\x9f\xbf", 3 },      /* overlong 3-byte forms */
        { "\xf0\x80\x80\xaf", 4 }, { "\xf0\x8f\xbf\xbf", 4 }, /* overlong 4-byte forms */
        { "\xed\xa0\x80", 3 }, { "\xed\xbf\xbf", 3 },      /* surrogates */
        { "\xf4\x90\x80\x80", 4 }, { "\xf7\xbf\xbf\xbf", 4 }, /* above U+10FFFF */
        { "\x80", 1 }, { "\xbf", 1 },                      /* stray continuation bytes */
        { "\xf8\x88\x80\x80\x80", 5 }, { "\xfe", 1 }, { "\xff", 1 },
        { "\xc3", 1 }, { "\xe2\x82", 2 }, { "\xf0\x9f\x98", 3 }, /* truncated */
        { "\xc3\x28", 2 }, { "\xe2\x28\xa1", 3 },          /* continuation missing */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t cp;
        if (qpc_utf8_decode(bad[i].bytes, bad[i].len, &cp) != 0)
            fail_msg("case %zu decoded", i);
        assert_false(qpc_utf8_valid(bad[i].bytes, bad[i].len));
        assert_int_equal(qpc_utf8_check(bad[i].bytes, bad[i].len), 0);
    }
    uint32_t cp;
    assert_int_equal(qpc_utf8_decode("", 0, &cp), 0);
}

static void test_utf8_check_reports_the_first_bad_offset(void **state)
{
    static const char text[] = "caf\xc3\xa9 \xe2\x82\xac ok \xed\xa0\x80 then \xff";
    (void)state;
    assert_int_equal(qpc_utf8_check(text, sizeof(text) - 1), 13);
    assert_int_equal(qpc_utf8_check(text, 13), 13);    /* the good prefix is all valid */
    assert_true(qpc_utf8_valid(text, 13));
    /* A sequence cut by len is invalid where it starts, not where len ends. */
    assert_int_equal(qpc_utf8_check(text, 4), 3);
    assert_int_equal(qpc_utf8_check("", 0), 0);
    assert_true(qpc_utf8_valid("", 0));
    /* NUL is text as far as UTF-8 goes; callers refuse it themselves. */
    assert_true(qpc_utf8_valid("a\0b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_decodes_each_length_at_its_bounds),
        cmocka_unit_test(test_utf8_refuses_overlong_surrogate_out_of_range_and_broken),
        cmocka_unit_test(test_utf8_check_reports_the_first_bad_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
