/*
 * test_client_contacts.c: who the user means (src/client/contacts.c): names and id
 * prefixes resolved the same way everywhere, refusals that list the candidates, the
 * checks on a name given, and the shareable text form of an identity.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "contacts.h"
#include "qpc/error.h"

/* A key whose hex id starts with prefix (even length), the rest filled with fill. */
static void key_with_prefix(uint8_t key[QPC_KEY_LEN], const char *prefix, uint8_t fill)
{
    memset(key, fill, QPC_KEY_LEN);
    for (size_t i = 0; prefix[2 * i] && prefix[2 * i + 1]; i++) {
        unsigned v;

        sscanf(prefix + 2 * i, "%2x", &v);
        key[i] = (uint8_t)v;
    }
}

static struct qpc_identity *directory(void)
{
    struct qpc_identity *id;
    uint8_t k[QPC_KEY_LEN];

    assert_int_equal(qpc_identity_generate(&id), 0);
    key_with_prefix(k, "ab12cd", 0x11);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "bob", "10.0.0.2:7000", 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    key_with_prefix(k, "ab12ef", 0x22);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "Jürgen", "10.0.0.3:7000", 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    key_with_prefix(k, "beef00", 0x33);
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, "10.0.0.4:7000", 1, QPC_PEER_SOURCE_MDNS,
                                              QPC_PEER_CLIENT, NULL), 0);
    key_with_prefix(k, "c0ffee", 0x44);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "cafe", "10.0.0.5:7000", 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    key_with_prefix(k, "cafe01", 0x55);
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, "10.0.0.6:7000", 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    return id;
}

static void test_contacts_a_name_is_accepted_wherever_an_id_is(void **state)
{
    struct qpc_identity *id = directory();
    const struct qpc_peer *p;
    uint8_t key[QPC_KEY_LEN], want[QPC_KEY_LEN];
    char err[512];

    (void)state;
    key_with_prefix(want, "ab12cd", 0x11);
    assert_int_equal(contacts_resolve(id, "bob", key, &p, err, sizeof(err)), 0);
    assert_memory_equal(key, want, QPC_KEY_LEN);
    assert_string_equal(p->name, "bob");
    assert_int_equal(contacts_resolve(id, "BOB", key, NULL, err, sizeof(err)), 0);
    assert_memory_equal(key, want, QPC_KEY_LEN);
    key_with_prefix(want, "ab12ef", 0x22);
    assert_int_equal(contacts_resolve(id, "Jürgen", key, NULL, err, sizeof(err)), 0);
    assert_memory_equal(key, want, QPC_KEY_LEN);
    qpc_identity_free(id);
}

static void test_contacts_a_unique_prefix_of_four_digits_is_enough(void **state)
{
    struct qpc_identity *id = directory();
    uint8_t key[QPC_KEY_LEN], want[QPC_KEY_LEN];
    char err[512];

    (void)state;
    key_with_prefix(want, "ab12cd", 0x11);
    assert_int_equal(contacts_resolve(id, "ab12c", key, NULL, err, sizeof(err)), 0);
    assert_memory_equal(key, want, QPC_KEY_LEN);
    assert_int_equal(contacts_resolve(id, "AB12C", key, NULL, err, sizeof(err)), 0);
    key_with_prefix(want, "c0ffee", 0x44);
    assert_int_equal(contacts_resolve(id, "c0ff", key, NULL, err, sizeof(err)), 0);
    assert_memory_equal(key, want, QPC_KEY_LEN);
    qpc_identity_free(id);
}

static void test_contacts_a_prefix_under_four_digits_is_refused_with_candidates(void **state)
{
    struct qpc_identity *id = directory();
    uint8_t key[QPC_KEY_LEN];
    char err[512];

    (void)state;
    /* one match, but 1 digit: a typo could reach the wrong person */
    assert_int_equal(contacts_resolve(id, "c", key, NULL, err, sizeof(err)), QPC_ERR_AMBIGUOUS);
    assert_int_equal(contacts_resolve(id, "c0f", key, NULL, err, sizeof(err)), QPC_ERR_REFUSED);
    assert_non_null(strstr(err, "at least 4 hex digits"));
    assert_non_null(strstr(err, "c0ffee444444 (cafe)"));
    assert_int_equal(contacts_resolve(id, "a", key, NULL, err, sizeof(err)), QPC_ERR_AMBIGUOUS);
    assert_non_null(strstr(err, "ab12cd111111 (bob)"));
    assert_non_null(strstr(err, "ab12ef222222 (Jürgen)"));
    qpc_identity_free(id);
}

static void test_contacts_ambiguous_prefix_and_name_against_prefix_are_refused(void **state)
{
    struct qpc_identity *id = directory();
    uint8_t key[QPC_KEY_LEN];
    char err[512];

    (void)state;
    assert_int_equal(contacts_resolve(id, "ab12", key, NULL, err, sizeof(err)), QPC_ERR_AMBIGUOUS);
    assert_non_null(strstr(err, "2 peers"));
    assert_non_null(strstr(err, "bob"));
    /* "cafe" is one peer's name and the start of another's id */
    assert_int_equal(contacts_resolve(id, "cafe", key, NULL, err, sizeof(err)), QPC_ERR_AMBIGUOUS);
    assert_non_null(strstr(err, "c0ffee444444 (cafe)"));
    assert_non_null(strstr(err, "cafe01555555 (no name)"));
    qpc_identity_free(id);
}

static void test_contacts_a_name_wins_over_a_prefix_too_short_to_be_meant(void **state)
{
    struct qpc_identity *id;
    uint8_t k[QPC_KEY_LEN], other[QPC_KEY_LEN], key[QPC_KEY_LEN];
    char err[512];

    (void)state;
    assert_int_equal(qpc_identity_generate(&id), 0);
    key_with_prefix(k, "11", 0x01);
    key_with_prefix(other, "dad0", 0x02);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "dad", NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_upsert(id, other, NULL, NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(contacts_resolve(id, "dad", key, NULL, err, sizeof(err)), 0);
    assert_memory_equal(key, k, QPC_KEY_LEN);
    qpc_identity_free(id);
}

static void test_contacts_mdns_only_peer_needs_sixteen_digits(void **state)
{
    struct qpc_identity *id = directory();
    uint8_t key[QPC_KEY_LEN];
    char err[512];

    (void)state;
    assert_int_equal(contacts_resolve(id, "beef00", key, NULL, err, sizeof(err)), QPC_ERR_REFUSED);
    assert_non_null(strstr(err, "known only from mDNS"));
    assert_int_equal(contacts_resolve(id, "beef003333333333", key, NULL, err, sizeof(err)), 0);
    qpc_identity_free(id);
}

static void test_contacts_unknown_and_full_keys(void **state)
{
    struct qpc_identity *id = directory();
    const struct qpc_peer *p = (const struct qpc_peer *)1;
    uint8_t key[QPC_KEY_LEN];
    char err[512], full[65];

    (void)state;
    assert_int_equal(contacts_resolve(id, "carol", key, NULL, err, sizeof(err)), QPC_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "no known peer is named 'carol'"));
    assert_int_equal(contacts_resolve(id, "9999", key, NULL, err, sizeof(err)), QPC_ERR_NOT_FOUND);
    assert_int_equal(contacts_resolve(id, "bad\xff", key, NULL, err, sizeof(err)), QPC_ERR_INVALID);
    memset(full, 'e', 64);
    full[64] = '\0';
    assert_int_equal(contacts_resolve(id, full, key, &p, NULL, 0), 0);   /* unknown but whole */
    assert_null(p);
    qpc_identity_free(id);
}

static void test_contacts_names_given_must_be_one_free_word(void **state)
{
    struct qpc_identity *id = directory();
    uint8_t k[QPC_KEY_LEN];
    char err[512];

    (void)state;
    key_with_prefix(k, "ab12cd", 0x11);
    assert_int_equal(contacts_check_name(id, k, "Bobby", err, sizeof(err)), 0);
    assert_int_equal(contacts_check_name(id, k, "bob", err, sizeof(err)), 0);   /* its own */
    assert_int_equal(contacts_check_name(id, k, "Jürgen", err, sizeof(err)), QPC_ERR_EXISTS);
    assert_non_null(strstr(err, "ab12ef222222"));
    assert_int_equal(contacts_check_name(id, k, "bob smith", err, sizeof(err)), QPC_ERR_INVALID);
    assert_non_null(strstr(err, "one word"));
    assert_int_equal(contacts_check_name(id, k, "bob\xc2\xa0smith", err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_check_name(id, k, "#news", err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_check_name(id, k, "a@b", err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_check_name(id, k, "me", err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_check_name(id, k, "", err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_check_name(id, NULL, "cafe", err, sizeof(err)), QPC_ERR_EXISTS);
    qpc_identity_free(id);
}

static void test_contacts_card_round_trips_and_is_taken_as_pasted(void **state)
{
    struct contacts_card c = { 0 }, back;
    char text[CONTACTS_CARD_MAX], err[256], pasted[CONTACTS_CARD_MAX + 8];
    int n;

    (void)state;
    key_with_prefix(c.key, "0123456789abcdef", 0x7e);
    snprintf(c.name, sizeof(c.name), "Jürgen&Co=1");
    snprintf(c.addrs[0], sizeof(c.addrs[0]), "10.0.0.7:7100");
    snprintf(c.addrs[1], sizeof(c.addrs[1]), "[fe80::1]:7100");
    c.naddrs = 2;
    n = contacts_card_format(text, sizeof(text), &c);
    assert_true(n > 0);
    assert_string_equal(text, "qpc:0123456789abcdef7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e"
                              "?name=J%C3%BCrgen%26Co%3D1&addr=10.0.0.7:7100&addr=[fe80::1]:7100");
    assert_true(contacts_is_card(text));
    snprintf(pasted, sizeof(pasted), "  %s \n", text);
    assert_int_equal(contacts_card_parse(pasted, &back, err, sizeof(err)), 0);
    assert_memory_equal(back.key, c.key, QPC_KEY_LEN);
    assert_string_equal(back.name, "Jürgen&Co=1");
    assert_int_equal(back.naddrs, 2);
    assert_string_equal(back.addrs[1], "[fe80::1]:7100");
    /* just the id, any case, unknown parameters ignored */
    assert_int_equal(contacts_card_parse("QPC:0123456789ABCDEF7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E7E"
                                         "?v=2&addr=10.1.1.1:1", &back, err, sizeof(err)), 0);
    assert_memory_equal(back.key, c.key, QPC_KEY_LEN);
    assert_string_equal(back.name, "");
    assert_int_equal(back.naddrs, 1);
}

static void test_contacts_card_refuses_what_is_not_one(void **state)
{
    struct contacts_card back;
    char err[256];

    (void)state;
    assert_false(contacts_is_card("0123"));
    assert_int_equal(contacts_card_parse("qpc:0123", &back, err, sizeof(err)), QPC_ERR_INVALID);
    assert_non_null(strstr(err, "64 hex digits"));
    assert_int_equal(contacts_card_parse("qpc:zz23456789abcdef7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e",
                                         &back, err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_card_parse("qpc:0123456789abcdef7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e"
                                         "?addr=nohost", &back, err, sizeof(err)), QPC_ERR_INVALID);
    assert_non_null(strstr(err, "host:port"));
    assert_int_equal(contacts_card_parse("qpc:0123456789abcdef7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e"
                                         "?name=%zz", &back, err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_card_parse("qpc:0123456789abcdef7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e"
                                         "?name=a%00b", &back, err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(contacts_card_parse("qpc:0123456789abcdef7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e"
                                         "?name=%ff", &back, err, sizeof(err)), QPC_ERR_INVALID);
}

static void test_contacts_card_format_reports_what_does_not_fit(void **state)
{
    struct contacts_card c = { 0 };
    char small[40];

    (void)state;
    assert_int_equal(contacts_card_format(small, sizeof(small), &c), QPC_ERR_TOO_LARGE);
    assert_string_equal(small, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contacts_a_name_is_accepted_wherever_an_id_is),
        cmocka_unit_test(test_contacts_a_unique_prefix_of_four_digits_is_enough),
        cmocka_unit_test(test_contacts_a_prefix_under_four_digits_is_refused_with_candidates),
        cmocka_unit_test(test_contacts_ambiguous_prefix_and_name_against_prefix_are_refused),
        cmocka_unit_test(test_contacts_a_name_wins_over_a_prefix_too_short_to_be_meant),
        cmocka_unit_test(test_contacts_mdns_only_peer_needs_sixteen_digits),
        cmocka_unit_test(test_contacts_unknown_and_full_keys),
        cmocka_unit_test(test_contacts_names_given_must_be_one_free_word),
        cmocka_unit_test(test_contacts_card_round_trips_and_is_taken_as_pasted),
        cmocka_unit_test(test_contacts_card_refuses_what_is_not_one),
        cmocka_unit_test(test_contacts_card_format_reports_what_does_not_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
