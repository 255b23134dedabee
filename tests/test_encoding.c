/* test_encoding.c: hex and base64 key codecs refuse anything but exact keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/encoding.h"
#include "qpc/error.h"

static const uint8_t key[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};
static const char *key_hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

static void test_hex_round_trip(void **state)
{
    char hex[QPC_KEY_HEX_LEN];
    uint8_t back[32];
    (void)state;
    qpc_key_to_hex(hex, key);
    assert_string_equal(hex, key_hex);
    assert_int_equal(qpc_key_from_hex(back, hex), 0);
    assert_memory_equal(back, key, 32);
}

static void test_hex_accepts_upper_case(void **state)
{
    uint8_t back[32];
    (void)state;
    assert_int_equal(qpc_key_from_hex(back, "D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F707511A"), 0);
    assert_memory_equal(back, key, 32);
}

static void test_hex_refuses_wrong_length_and_garbage(void **state)
{
    uint8_t back[32];
    (void)state;
    assert_int_equal(qpc_key_from_hex(back, "d75a98"), QPC_ERR_INVALID);
    assert_int_equal(qpc_key_from_hex(back, "zz5a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"), QPC_ERR_INVALID);
    assert_int_equal(qpc_key_from_hex(back, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a00"), QPC_ERR_INVALID);
    assert_int_equal(qpc_key_from_hex(back, ""), QPC_ERR_INVALID);
}

static void test_key_from_text_accepts_base64_variants(void **state)
{
    uint8_t back[32];
    (void)state;
    /* base64 of the key above, padded, unpadded, URL-safe */
    assert_int_equal(qpc_key_from_text(back, "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="), 0);
    assert_memory_equal(back, key, 32);
    assert_int_equal(qpc_key_from_text(back, "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"), 0);
    assert_memory_equal(back, key, 32);
    assert_int_equal(qpc_key_from_text(back, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"), 0);
    assert_memory_equal(back, key, 32);
    assert_int_equal(qpc_key_from_text(back, key_hex), 0);
    assert_memory_equal(back, key, 32);
}

static void test_key_from_text_refuses_short_and_garbage(void **state)
{
    uint8_t back[32];
    (void)state;
    assert_int_equal(qpc_key_from_text(back, "c2hvcnQ="), QPC_ERR_INVALID);
    assert_int_equal(qpc_key_from_text(back, "not a key at all!"), QPC_ERR_INVALID);
    assert_int_equal(qpc_key_from_text(back, NULL), QPC_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_hex_accepts_upper_case),
        cmocka_unit_test(test_hex_refuses_wrong_length_and_garbage),
        cmocka_unit_test(test_key_from_text_accepts_base64_variants),
        cmocka_unit_test(test_key_from_text_refuses_short_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
