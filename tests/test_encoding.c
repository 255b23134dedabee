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

/* The canonical writers lay integers out big-endian and return the end of what they
 * wrote, so a chain of them packs fields with no gaps; a zero-length copy from NULL is
 * allowed (an envelope without a topic). */
static void test_put_writes_big_endian_back_to_back(void **state)
{
    static const uint8_t want[] = {
        0xab,
        0x12, 0x34,
        0xde, 0xad, 0xbe, 0xef,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
        'h', 'i',
        0x5a,
    };
    uint8_t buf[sizeof(want) + 1];
    uint8_t *p = buf;
    (void)state;

    memset(buf, 0x5a, sizeof(buf));
    p = qpc_put_u8(p, 0xab);
    p = qpc_put_u16(p, 0x1234);
    p = qpc_put_u32(p, 0xdeadbeefu);
    p = qpc_put_u64(p, 0x0102030405060708ull);
    p = qpc_put_bytes(p, "hi", 2);
    p = qpc_put_bytes(p, NULL, 0);
    assert_ptr_equal(p, buf + sizeof(want) - 1);
    assert_memory_equal(buf, want, sizeof(want));   /* the byte after the end untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_hex_accepts_upper_case),
        cmocka_unit_test(test_hex_refuses_wrong_length_and_garbage),
        cmocka_unit_test(test_key_from_text_accepts_base64_variants),
        cmocka_unit_test(test_key_from_text_refuses_short_and_garbage),
        cmocka_unit_test(test_put_writes_big_endian_back_to_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
