/*
 * test_direct.c: DirectContent, the plaintext of a direct envelope: texts and receipts
 * survive a round trip, and the decoder refuses what protobuf-c would silently change
 * (a NUL inside a string, a repeated field) and receipts out of their bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/direct.h"
#include "qpc/proto.h"
#include "qpc/error.h"

static void test_direct_text_round_trip_keeps_text_and_domain(void **state)
{
    struct qpc_direct_content c;
    uint8_t *buf = NULL;
    size_t len = 0;
    (void)state;

    assert_int_equal(qpc_direct_encode_text("hello mesh", 10, "b.mesh.test", &buf, &len), 0);
    assert_int_equal(qpc_direct_decode(&c, buf, len), 0);
    assert_int_equal(c.kind, QPC_DIRECT_TEXT);
    assert_int_equal(c.text_len, 10);
    assert_string_equal(c.text, "hello mesh");
    assert_string_equal(c.reply_domain, "b.mesh.test");
    qpc_direct_clear(&c);
    assert_null(c.text);
    free(buf);

    /* An empty text is a text, and no domain reads back as "". */
    assert_int_equal(qpc_direct_encode_text("", 0, NULL, &buf, &len), 0);
    assert_int_equal(qpc_direct_decode(&c, buf, len), 0);
    assert_int_equal(c.kind, QPC_DIRECT_TEXT);
    assert_int_equal(c.text_len, 0);
    assert_string_equal(c.reply_domain, "");
    qpc_direct_clear(&c);
    free(buf);
}

static void test_direct_text_with_nul_or_bad_domain_is_refused(void **state)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    (void)state;

    assert_int_equal(qpc_direct_encode_text("a\0b", 3, NULL, &buf, &len), QPC_ERR_INVALID);
    assert_null(buf);
    assert_int_equal(qpc_direct_encode_text("a", 1, "bad domain", &buf, &len), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_encode_text("a", 1, "a..b", &buf, &len), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_encode_text("a", 1, NULL, &buf, &len), 0);
    free(buf);
    assert_int_equal(qpc_direct_encode_text("a", QPC_DIRECT_TEXT_MAX + 1, NULL, &buf, &len),
                     QPC_ERR_TOO_LARGE);
}

static void fill_items(struct qpc_receipt_item *items, size_t n)
{
    memset(items, 0, n * sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        memset(items[i].id, (int)(i + 1), QPC_ID_LEN);
        items[i].hops = (uint32_t)i % 5;
        items[i].path = (enum qpc_receipt_path)(i % 4);
        items[i].received_at_ms = 1700000000000ull + i;
        if (i % 2 == 0)
            strcpy(items[i].via, "127.0.0.1:7000");
    }
}

static void test_direct_receipt_round_trip_keeps_every_item(void **state)
{
    struct qpc_receipt_item items[QPC_RECEIPT_ITEMS_MAX];
    struct qpc_direct_content c;
    uint8_t *buf = NULL;
    size_t len = 0;
    (void)state;

    fill_items(items, QPC_RECEIPT_ITEMS_MAX);
    assert_int_equal(qpc_direct_encode_receipt(items, QPC_RECEIPT_ITEMS_MAX, "a.mesh.test", &buf, &len), 0);
    assert_int_equal(qpc_direct_decode(&c, buf, len), 0);
    assert_int_equal(c.kind, QPC_DIRECT_RECEIPT);
    assert_int_equal(c.n_items, QPC_RECEIPT_ITEMS_MAX);
    for (size_t i = 0; i < c.n_items; i++) {
        assert_memory_equal(c.items[i].id, items[i].id, QPC_ID_LEN);
        assert_int_equal(c.items[i].hops, items[i].hops);
        assert_int_equal(c.items[i].path, items[i].path);
        assert_int_equal(c.items[i].received_at_ms, items[i].received_at_ms);
        assert_string_equal(c.items[i].via, items[i].via);
    }
    assert_string_equal(c.reply_domain, "a.mesh.test");
    qpc_direct_clear(&c);
    free(buf);
}

static void test_direct_receipt_bounds_are_enforced_both_ways(void **state)
{
    struct qpc_receipt_item items[QPC_RECEIPT_ITEMS_MAX + 1];
    uint8_t *buf = NULL;
    size_t len = 0;
    (void)state;

    fill_items(items, QPC_RECEIPT_ITEMS_MAX + 1);
    assert_int_equal(qpc_direct_encode_receipt(items, 0, NULL, &buf, &len), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_encode_receipt(items, QPC_RECEIPT_ITEMS_MAX + 1, NULL, &buf, &len),
                     QPC_ERR_INVALID);
    items[0].path = (enum qpc_receipt_path)9;
    assert_int_equal(qpc_direct_encode_receipt(items, 1, NULL, &buf, &len), QPC_ERR_INVALID);
    assert_null(buf);

    /* Built by hand, past what the encoder allows: 257 items, a short id, an unknown path. */
    {
        Qpc__DirectContent msg = QPC__DIRECT_CONTENT__INIT;
        Qpc__Receipt r = QPC__RECEIPT__INIT;
        Qpc__ReceiptItem w[QPC_RECEIPT_ITEMS_MAX + 1], *p[QPC_RECEIPT_ITEMS_MAX + 1];
        struct qpc_direct_content c;
        uint8_t id[QPC_ID_LEN] = { 7 }, out[65536];
        size_t n;

        for (size_t i = 0; i <= QPC_RECEIPT_ITEMS_MAX; i++) {
            qpc__receipt_item__init(&w[i]);
            w[i].id.data = id;
            w[i].id.len = QPC_ID_LEN;
            p[i] = &w[i];
        }
        r.items = p;
        msg.body_case = QPC__DIRECT_CONTENT__BODY_RECEIPT;
        msg.receipt = &r;

        r.n_items = QPC_RECEIPT_ITEMS_MAX + 1;
        n = qpc__direct_content__pack(&msg, out);
        assert_int_equal(qpc_direct_decode(&c, out, n), QPC_ERR_INVALID);

        r.n_items = 1;
        w[0].id.len = 31;
        n = qpc__direct_content__pack(&msg, out);
        assert_int_equal(qpc_direct_decode(&c, out, n), QPC_ERR_INVALID);

        w[0].id.len = QPC_ID_LEN;
        w[0].path = (Qpc__ReceiptPath)7;
        n = qpc__direct_content__pack(&msg, out);
        assert_int_equal(qpc_direct_decode(&c, out, n), QPC_ERR_INVALID);

        w[0].path = QPC__RECEIPT_PATH__RECEIPT_PATH_SERVER;
        n = qpc__direct_content__pack(&msg, out);
        assert_int_equal(qpc_direct_decode(&c, out, n), 0);
        assert_int_equal(c.n_items, 1);
        assert_null(c.text);
        qpc_direct_clear(&c);

        /* A receipt with no items says nothing: refused. */
        r.n_items = 0;
        n = qpc__direct_content__pack(&msg, out);
        assert_int_equal(qpc_direct_decode(&c, out, n), QPC_ERR_INVALID);
    }
}

static void test_direct_decode_refuses_what_protobuf_would_change(void **state)
{
    struct qpc_direct_content c;
    /* field 1 (text), length 3: "a\0b": protobuf-c would hand over "a". */
    static const uint8_t nul_text[] = { 0x0a, 0x03, 'a', 0x00, 'b' };
    /* text given twice: the second would win silently. */
    static const uint8_t twice[] = { 0x0a, 0x01, 'a', 0x0a, 0x01, 'b' };
    /* neither text nor receipt: only a domain. */
    static const uint8_t empty_body[] = { 0x1a, 0x01, 'x' };
    /* a domain that is not a DNS name. */
    static const uint8_t bad_domain[] = { 0x0a, 0x01, 'a', 0x1a, 0x02, 'a', ' ' };
    /* an unknown field (99, varint) beside a text is fine: a later version may add one. */
    static const uint8_t unknown[] = { 0x0a, 0x01, 'a', 0x98, 0x06, 0x01 };
    static const uint8_t garbage[] = { 0xff, 0xff, 0xff };
    (void)state;

    assert_int_equal(qpc_direct_decode(&c, nul_text, sizeof(nul_text)), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_decode(&c, twice, sizeof(twice)), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_decode(&c, empty_body, sizeof(empty_body)), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_decode(&c, bad_domain, sizeof(bad_domain)), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_decode(&c, garbage, sizeof(garbage)), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_decode(&c, NULL, 0), QPC_ERR_INVALID);
    assert_int_equal(qpc_direct_decode(&c, unknown, sizeof(unknown)), 0);
    assert_string_equal(c.text, "a");
    qpc_direct_clear(&c);
    /* Raw text (what direct payloads were before DirectContent) is not DirectContent. */
    assert_int_equal(qpc_direct_decode(&c, (const uint8_t *)"hello", 5), QPC_ERR_INVALID);
}

static void test_direct_domain_rule(void **state)
{
    (void)state;
    assert_true(qpc_direct_domain_valid("a.mesh.test"));
    assert_true(qpc_direct_domain_valid("localhost"));
    assert_true(qpc_direct_domain_valid("x-1.Example.ORG"));
    assert_false(qpc_direct_domain_valid(""));
    assert_false(qpc_direct_domain_valid(NULL));
    assert_false(qpc_direct_domain_valid(".a"));
    assert_false(qpc_direct_domain_valid("a."));
    assert_false(qpc_direct_domain_valid("a_b"));
    assert_false(qpc_direct_domain_valid("a@b"));
    {
        char label[70];

        memset(label, 'a', 64);
        label[64] = '\0';
        assert_false(qpc_direct_domain_valid(label));
        label[63] = '\0';
        assert_true(qpc_direct_domain_valid(label));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_text_round_trip_keeps_text_and_domain),
        cmocka_unit_test(test_direct_text_with_nul_or_bad_domain_is_refused),
        cmocka_unit_test(test_direct_receipt_round_trip_keeps_every_item),
        cmocka_unit_test(test_direct_receipt_bounds_are_enforced_both_ways),
        cmocka_unit_test(test_direct_decode_refuses_what_protobuf_would_change),
        cmocka_unit_test(test_direct_domain_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
