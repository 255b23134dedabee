/*
 * test_broadcast.c: broadcast channels: the RFC vectors of the primitives underneath
 * (ChaCha20-Poly1305 of RFC 8439, HKDF-SHA256 of RFC 5869), channel keys, the channel
 * set, sealing/opening with the header binding that keeps a payload in its envelope, and
 * batches: one signature that vouches for a burst of envelopes (broadcast_batch.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>

#include "qpc/broadcast.h"
#include "qpc/broadcast_batch.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc.pb-c.h"

#define T0 1700000000000ull

/* --- helpers ---------------------------------------------------------------------------- */

static void unhex(uint8_t *out, size_t len, const char *hex)
{
    assert_int_equal(qpc_hex_decode(out, len, hex), 0);
}

/* A broadcast header as a sender fills it before sealing: only the struct is needed. */
static struct qpc_envelope header(const char *topic)
{
    struct qpc_envelope h;

    memset(&h, 0, sizeof(h));
    h.version = QPC_ENVELOPE_VERSION;
    memset(h.sender, 0x5e, sizeof(h.sender));
    h.topic = (char *)topic;   /* borrowed; never cleared */
    h.created_at_ms = T0;
    h.ttl_s = 3600;
    h.max_hops = 4;
    return h;
}

/* Seals text on ch against a header for ch's topic; env borrows topic, owns payload. */
static struct qpc_envelope sealed(const struct qpc_channel *ch, const char *text)
{
    struct qpc_envelope env = header(qpc_channel_topic(ch));

    assert_int_equal(qpc_broadcast_seal(ch, &env, (const uint8_t *)text, strlen(text),
                                        &env.payload, &env.payload_len), 0);
    assert_int_equal(env.payload_len, strlen(text) + QPC_BROADCAST_OVERHEAD);
    return env;
}

static int open_result(const struct qpc_channel *ch, const struct qpc_envelope *env)
{
    uint8_t *plain = NULL;
    size_t len = 0;
    int ret = qpc_broadcast_open(ch, env, &plain, &len);

    if (ret != 0)
        assert_null(plain);
    free(plain);
    return ret;
}

static int setup(void **state)
{
    *state = qpc_broadcast_set_new();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    qpc_broadcast_set_free(*state);
    return 0;
}

/* --- the primitives, with their RFC vectors ------------------------------------------- */

static void test_chacha20poly1305_matches_rfc8439_aead_vector(void **state)
{
    static const char plaintext[] =
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
        "the future, sunscreen would be it.";
    static const char expected_hex[] =
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
        "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
        "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
        "3ff4def08e4b7a9de576d26586cec64b6116"
        "1ae10b594f09e26a7e902ecbd0600691";   /* tag */
    const size_t pt_len = sizeof(plaintext) - 1;
    uint8_t key[32], nonce[12], aad[12];
    uint8_t expected[114 + 16], out[114 + 16], back[114];
    unsigned long long out_len = 0, back_len = 0;

    (void)state;
    assert_int_equal(pt_len, 114);
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x80 + i);
    unhex(nonce, sizeof(nonce), "070000004041424344454647");
    unhex(aad, sizeof(aad), "50515253c0c1c2c3c4c5c6c7");
    unhex(expected, sizeof(expected), expected_hex);

    assert_int_equal(crypto_aead_chacha20poly1305_ietf_encrypt(
                         out, &out_len, (const uint8_t *)plaintext, pt_len, aad, sizeof(aad),
                         NULL, nonce, key), 0);
    assert_int_equal(out_len, sizeof(expected));
    assert_memory_equal(out, expected, sizeof(expected));

    assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(
                         back, &back_len, NULL, out, out_len, aad, sizeof(aad), nonce, key), 0);
    assert_int_equal(back_len, pt_len);
    assert_memory_equal(back, plaintext, pt_len);
    out[0] ^= 1;
    assert_int_not_equal(crypto_aead_chacha20poly1305_ietf_decrypt(
                             back, &back_len, NULL, out, out_len, aad, sizeof(aad), nonce, key), 0);
}

static void test_hkdf_sha256_matches_rfc5869_case1(void **state)
{
    uint8_t ikm[22], salt[13], info[10];
    uint8_t prk[32], okm[42], expected_prk[32], expected_okm[42];
    gnutls_datum_t ikm_d = { ikm, sizeof(ikm) }, salt_d = { salt, sizeof(salt) };

    (void)state;
    memset(ikm, 0x0b, sizeof(ikm));
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    unhex(expected_prk, sizeof(expected_prk),
          "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    unhex(expected_okm, sizeof(expected_okm),
          "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
          "34007208d5b887185865");

    /* The extract step on its own, as broadcast.c calls it... */
    assert_int_equal(gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm_d, &salt_d, prk), 0);
    assert_memory_equal(prk, expected_prk, sizeof(prk));
    /* ...and the module's extract-then-expand. */
    assert_int_equal(qpc_broadcast_hkdf_sha256(okm, sizeof(okm), ikm, sizeof(ikm), salt,
                                               sizeof(salt), info, sizeof(info)), 0);
    assert_memory_equal(okm, expected_okm, sizeof(okm));
}

static void test_hkdf_sha256_matches_rfc5869_case3_without_salt_or_info(void **state)
{
    uint8_t ikm[22], okm[42], expected_okm[42];

    (void)state;
    memset(ikm, 0x0b, sizeof(ikm));
    unhex(expected_okm, sizeof(expected_okm),
          "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
          "9d201395faa4b61a96c8");
    assert_int_equal(qpc_broadcast_hkdf_sha256(okm, sizeof(okm), ikm, sizeof(ikm), NULL, 0,
                                               NULL, 0), 0);
    assert_memory_equal(okm, expected_okm, sizeof(okm));
}

static void test_hkdf_sha256_refuses_impossible_lengths(void **state)
{
    uint8_t okm[32] = { 0 };

    (void)state;
    assert_int_equal(qpc_broadcast_hkdf_sha256(okm, 0, okm, 1, NULL, 0, NULL, 0), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_hkdf_sha256(okm, 255 * 32 + 1, okm, 1, NULL, 0, NULL, 0),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_hkdf_sha256(okm, sizeof(okm), NULL, 5, NULL, 0, NULL, 0),
                     QPC_ERR_INVALID);
}

/* --- channel keys ------------------------------------------------------------------------ */

static void test_open_key_matches_independent_hkdf(void **state)
{
    /* Computed with Python's hmac/hashlib (RFC 5869 by hand), salt
     * "quicprochat/broadcast/v1", info "open channel key". Pins the label choice: changing
     * it silently would split every open channel in the mesh. */
    uint8_t key[QPC_KEY_LEN], expected[QPC_KEY_LEN];

    (void)state;
    unhex(expected, sizeof(expected),
          "2328ace28427913ae9672b72ec2aba9a4b49a749bcad5208a62f04760b28f765");
    assert_int_equal(qpc_broadcast_open_key(key, "announcements"), 0);
    assert_memory_equal(key, expected, sizeof(key));
    unhex(expected, sizeof(expected),
          "8683d41ec85c6003586f53beb2ee65f8b43e1cac2afb1187ba4688a0155f47e7");
    assert_int_equal(qpc_broadcast_open_key(key, "news"), 0);
    assert_memory_equal(key, expected, sizeof(key));
}

static void test_open_key_is_deterministic_and_distinct_per_topic(void **state)
{
    uint8_t a1[QPC_KEY_LEN], a2[QPC_KEY_LEN], b[QPC_KEY_LEN], c[QPC_KEY_LEN];

    (void)state;
    assert_int_equal(qpc_broadcast_open_key(a1, "announcements"), 0);
    assert_int_equal(qpc_broadcast_open_key(a2, "announcements"), 0);
    assert_int_equal(qpc_broadcast_open_key(b, "Announcements"), 0);
    assert_int_equal(qpc_broadcast_open_key(c, "announcements2"), 0);
    assert_memory_equal(a1, a2, QPC_KEY_LEN);
    assert_memory_not_equal(a1, b, QPC_KEY_LEN);
    assert_memory_not_equal(a1, c, QPC_KEY_LEN);
    assert_memory_not_equal(b, c, QPC_KEY_LEN);
}

static void test_open_key_refuses_invalid_topics(void **state)
{
    uint8_t key[QPC_KEY_LEN];
    char long_topic[QPC_TOPIC_MAX + 2];

    (void)state;
    memset(long_topic, 't', sizeof(long_topic) - 1);
    long_topic[sizeof(long_topic) - 1] = '\0';
    assert_int_equal(qpc_broadcast_open_key(key, ""), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_open_key(key, "bad\ntopic"), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_open_key(key, "bell\x07"), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_open_key(key, long_topic), QPC_ERR_INVALID);
    long_topic[QPC_TOPIC_MAX] = '\0';   /* exactly the maximum */
    assert_int_equal(qpc_broadcast_open_key(key, long_topic), 0);
    assert_int_equal(qpc_broadcast_open_key(key, "caf\xc3\xa9 news"), 0);   /* UTF-8 */
}

/* --- the channel set ----------------------------------------------------------------------- */

static void test_subscribe_creates_open_channel_and_lookup_finds_it(void **state)
{
    struct qpc_channel_set *set = *state;
    const struct qpc_channel *ch = NULL;

    assert_null(qpc_broadcast_lookup(set, "announcements"));
    assert_int_equal(qpc_broadcast_subscribe(set, "announcements", NULL, &ch), 0);
    assert_non_null(ch);
    assert_ptr_equal(qpc_broadcast_lookup(set, "announcements"), ch);
    assert_string_equal(qpc_channel_topic(ch), "announcements");
    assert_false(qpc_channel_is_private(ch));
    assert_int_equal(qpc_broadcast_count(set), 1);
}

static void test_subscribe_twice_with_same_key_returns_same_channel(void **state)
{
    struct qpc_channel_set *set = *state;
    const struct qpc_channel *a = NULL, *b = NULL;
    uint8_t key[QPC_KEY_LEN];

    memset(key, 0x42, sizeof(key));
    assert_int_equal(qpc_broadcast_subscribe(set, "open", NULL, &a), 0);
    assert_int_equal(qpc_broadcast_subscribe(set, "open", NULL, &b), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(qpc_broadcast_subscribe(set, "priv", key, &a), 0);
    assert_int_equal(qpc_broadcast_subscribe(set, "priv", key, &b), 0);
    assert_ptr_equal(a, b);
    assert_true(qpc_channel_is_private(a));
    assert_int_equal(qpc_broadcast_count(set), 2);
}

static void test_subscribe_with_other_key_is_refused(void **state)
{
    struct qpc_channel_set *set = *state;
    uint8_t k1[QPC_KEY_LEN], k2[QPC_KEY_LEN], open_key[QPC_KEY_LEN];

    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    assert_int_equal(qpc_broadcast_open_key(open_key, "open"), 0);
    assert_int_equal(qpc_broadcast_subscribe(set, "priv", k1, NULL), 0);
    assert_int_equal(qpc_broadcast_subscribe(set, "priv", k2, NULL), QPC_ERR_EXISTS);
    assert_int_equal(qpc_broadcast_subscribe(set, "priv", NULL, NULL), QPC_ERR_EXISTS);
    assert_int_equal(qpc_broadcast_subscribe(set, "open", NULL, NULL), 0);
    /* Even the derived key, given as a private key, is a different kind of channel. */
    assert_int_equal(qpc_broadcast_subscribe(set, "open", open_key, NULL), QPC_ERR_EXISTS);
    assert_int_equal(qpc_broadcast_count(set), 2);
}

static void test_subscribe_refuses_invalid_topic(void **state)
{
    assert_int_equal(qpc_broadcast_subscribe(*state, "", NULL, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_subscribe(*state, "a\tb", NULL, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_subscribe(*state, NULL, NULL, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_count(*state), 0);
}

static void test_unsubscribe_removes_channel(void **state)
{
    struct qpc_channel_set *set = *state;

    assert_int_equal(qpc_broadcast_subscribe(set, "a", NULL, NULL), 0);
    assert_int_equal(qpc_broadcast_subscribe(set, "b", NULL, NULL), 0);
    assert_int_equal(qpc_broadcast_unsubscribe(set, "a"), 0);
    assert_null(qpc_broadcast_lookup(set, "a"));
    assert_non_null(qpc_broadcast_lookup(set, "b"));
    assert_int_equal(qpc_broadcast_unsubscribe(set, "a"), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_broadcast_count(set), 1);
    /* After leaving, the topic may be joined again with another key. */
    assert_int_equal(qpc_broadcast_unsubscribe(set, "b"), 0);
    assert_int_equal(qpc_broadcast_subscribe_text(
                         set, "b", "0000000000000000000000000000000000000000000000000000000000000001",
                         NULL), 0);
}

static void test_list_is_sorted_by_topic(void **state)
{
    struct qpc_channel_set *set = *state;
    const char *topics[] = { "weather", "announcements", "market", "Zebra", "emergency" };
    const char *sorted[] = { "Zebra", "announcements", "emergency", "market", "weather" };
    const struct qpc_channel **list = NULL;
    size_t n = 0;

    assert_int_equal(qpc_broadcast_list(set, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(qpc_broadcast_subscribe(set, topics[i], NULL, NULL), 0);
    assert_int_equal(qpc_broadcast_list(set, &list, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(qpc_channel_topic(list[i]), sorted[i]);
    free(list);
}

static void test_private_key_text_accepts_hex_and_base64(void **state)
{
    struct qpc_channel_set *set = *state;
    struct qpc_channel_set *other[3];
    const struct qpc_channel *ch = NULL, *peer = NULL;
    /* One key, 00 01 02 ... 1f, in three spellings. */
    const char *spellings[] = {
        "000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    };
    uint8_t key[QPC_KEY_LEN];
    uint8_t *plain = NULL;
    size_t len = 0;
    struct qpc_envelope env;

    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    assert_int_equal(qpc_broadcast_subscribe(set, "club", key, &ch), 0);
    env = sealed(ch, "members only");
    for (int i = 0; i < 3; i++) {
        other[i] = qpc_broadcast_set_new();
        assert_non_null(other[i]);
        assert_int_equal(qpc_broadcast_subscribe_text(other[i], "club", spellings[i], &peer), 0);
        assert_true(qpc_channel_is_private(peer));
        assert_int_equal(qpc_broadcast_open(peer, &env, &plain, &len), 0);
        assert_int_equal(len, 12);
        assert_string_equal((char *)plain, "members only");
        free(plain);
        qpc_broadcast_set_free(other[i]);
    }
    free(env.payload);
}

static void test_private_key_text_refuses_bad_input(void **state)
{
    struct qpc_channel_set *set = *state;
    const char *bad[] = {
        "",
        "not a key",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",     /* 31 bytes */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00", /* 33 bytes */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",   /* not hex */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",                       /* 31 bytes */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= ",                     /* trailing */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(qpc_broadcast_subscribe_text(set, "club", bad[i], NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_subscribe_text(set, "club", NULL, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_count(set), 0);
}

/* --- sealing and opening --------------------------------------------------------------------- */

static void test_seal_then_open_round_trips(void **state)
{
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope env;
    uint8_t *plain = NULL;
    size_t len = 0;

    assert_int_equal(qpc_broadcast_subscribe(*state, "announcements", NULL, &ch), 0);
    env = sealed(ch, "Hello!");
    assert_int_equal(qpc_broadcast_open(ch, &env, &plain, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(plain, "Hello!", 7);   /* NUL-terminated for printing */
    free(plain);
    free(env.payload);
}

static void test_open_works_in_another_set_for_open_channels(void **state)
{
    /* Two nodes that only share the topic name read each other's open broadcasts. */
    struct qpc_channel_set *other = qpc_broadcast_set_new();
    const struct qpc_channel *mine = NULL;
    struct qpc_envelope env;
    uint8_t *plain = NULL;
    size_t len = 0;

    assert_non_null(other);
    assert_int_equal(qpc_broadcast_subscribe(*state, "announcements", NULL, &mine), 0);
    assert_int_equal(qpc_broadcast_subscribe(other, "announcements", NULL, NULL), 0);
    env = sealed(mine, "road closed at the bridge");
    assert_int_equal(qpc_broadcast_open_envelope(other, &env, &plain, &len), 0);
    assert_string_equal((char *)plain, "road closed at the bridge");
    free(plain);
    free(env.payload);
    qpc_broadcast_set_free(other);
}

static void test_empty_plaintext_round_trips(void **state)
{
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope env;
    uint8_t *plain = NULL;
    size_t len = 99;

    assert_int_equal(qpc_broadcast_subscribe(*state, "t", NULL, &ch), 0);
    env = sealed(ch, "");
    assert_int_equal(env.payload_len, QPC_BROADCAST_OVERHEAD);
    assert_int_equal(qpc_broadcast_open(ch, &env, &plain, &len), 0);
    assert_int_equal(len, 0);
    assert_non_null(plain);
    assert_int_equal(plain[0], '\0');
    free(plain);
    free(env.payload);
}

static void test_seal_uses_fresh_nonce_each_time(void **state)
{
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope a, b;

    assert_int_equal(qpc_broadcast_subscribe(*state, "t", NULL, &ch), 0);
    a = sealed(ch, "same words");
    b = sealed(ch, "same words");
    assert_memory_not_equal(a.payload, b.payload, QPC_BROADCAST_NONCE_LEN);
    assert_memory_not_equal(a.payload + QPC_BROADCAST_NONCE_LEN,
                            b.payload + QPC_BROADCAST_NONCE_LEN, a.payload_len - QPC_BROADCAST_NONCE_LEN);
    free(a.payload);
    free(b.payload);
}

static void test_open_with_wrong_key_fails(void **state)
{
    struct qpc_channel_set *other = qpc_broadcast_set_new();
    const struct qpc_channel *ch = NULL, *wrong = NULL;
    uint8_t k1[QPC_KEY_LEN], k2[QPC_KEY_LEN];
    struct qpc_envelope env;

    assert_non_null(other);
    memset(k1, 0x11, sizeof(k1));
    memcpy(k2, k1, sizeof(k2));
    k2[31] ^= 1;
    assert_int_equal(qpc_broadcast_subscribe(*state, "club", k1, &ch), 0);
    assert_int_equal(qpc_broadcast_subscribe(other, "club", k2, &wrong), 0);
    env = sealed(ch, "secret");
    assert_int_equal(open_result(wrong, &env), QPC_ERR_DECRYPT);
    assert_int_equal(open_result(ch, &env), 0);
    free(env.payload);

    /* An open channel of the same name does not read the private one either. */
    assert_int_equal(qpc_broadcast_unsubscribe(other, "club"), 0);
    assert_int_equal(qpc_broadcast_subscribe(other, "club", NULL, &wrong), 0);
    env = sealed(ch, "secret");
    assert_int_equal(open_result(wrong, &env), QPC_ERR_DECRYPT);
    free(env.payload);
    qpc_broadcast_set_free(other);
}

static void test_open_fails_when_topic_changed(void **state)
{
    /* Two private channels that share a key: only the AD tells them apart. */
    struct qpc_channel_set *set = *state;
    const struct qpc_channel *a = NULL, *b = NULL;
    uint8_t key[QPC_KEY_LEN];
    struct qpc_envelope env;

    memset(key, 0x33, sizeof(key));
    assert_int_equal(qpc_broadcast_subscribe(set, "alpha", key, &a), 0);
    assert_int_equal(qpc_broadcast_subscribe(set, "beta", key, &b), 0);
    env = sealed(a, "for alpha");
    env.topic = (char *)"beta";
    assert_int_equal(open_result(b, &env), QPC_ERR_DECRYPT);
    /* The channel must match the envelope's topic: opening under another is refused. */
    env.topic = (char *)"alpha";
    assert_int_equal(open_result(b, &env), QPC_ERR_INVALID);
    assert_int_equal(open_result(a, &env), 0);
    free(env.payload);
}

static void test_open_fails_when_any_bound_header_field_changed(void **state)
{
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope env, changed;

    assert_int_equal(qpc_broadcast_subscribe(*state, "announcements", NULL, &ch), 0);
    env = sealed(ch, "bound to its header");
    assert_int_equal(open_result(ch, &env), 0);

    changed = env;
    changed.sender[7] ^= 0x80;
    assert_int_equal(open_result(ch, &changed), QPC_ERR_DECRYPT);
    changed = env;
    changed.created_at_ms += 1;
    assert_int_equal(open_result(ch, &changed), QPC_ERR_DECRYPT);
    changed = env;
    changed.ttl_s += 1;
    assert_int_equal(open_result(ch, &changed), QPC_ERR_DECRYPT);
    changed = env;
    changed.max_hops += 1;
    assert_int_equal(open_result(ch, &changed), QPC_ERR_DECRYPT);
    changed = env;
    changed.version += 1;
    assert_int_equal(open_result(ch, &changed), QPC_ERR_DECRYPT);

    /* hop_count is what relays change: it is deliberately not bound. */
    changed = env;
    changed.hop_count = 3;
    assert_int_equal(open_result(ch, &changed), 0);
    free(env.payload);
}

static void test_open_fails_on_tampered_or_truncated_payload(void **state)
{
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope env;
    size_t full;

    assert_int_equal(qpc_broadcast_subscribe(*state, "t", NULL, &ch), 0);
    env = sealed(ch, "payload");
    full = env.payload_len;
    for (size_t i = 0; i < full; i += 7) {   /* nonce, ciphertext and tag bytes alike */
        env.payload[i] ^= 0x01;
        assert_int_equal(open_result(ch, &env), QPC_ERR_DECRYPT);
        env.payload[i] ^= 0x01;
    }
    env.payload_len = full - 1;
    assert_int_equal(open_result(ch, &env), QPC_ERR_DECRYPT);
    env.payload_len = QPC_BROADCAST_OVERHEAD - 1;
    assert_int_equal(open_result(ch, &env), QPC_ERR_DECRYPT);
    env.payload_len = 0;
    assert_int_equal(open_result(ch, &env), QPC_ERR_DECRYPT);
    env.payload_len = full;
    assert_int_equal(open_result(ch, &env), 0);
    free(env.payload);
}

static void test_seal_refuses_header_that_is_not_this_broadcast(void **state)
{
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope h;
    uint8_t *out = (uint8_t *)1;
    size_t out_len = 1;

    assert_int_equal(qpc_broadcast_subscribe(*state, "t", NULL, &ch), 0);
    h = header("other");
    assert_int_equal(qpc_broadcast_seal(ch, &h, (const uint8_t *)"x", 1, &out, &out_len),
                     QPC_ERR_INVALID);
    assert_null(out);
    h = header(NULL);
    h.has_recipient = true;
    assert_int_equal(qpc_broadcast_seal(ch, &h, (const uint8_t *)"x", 1, &out, &out_len),
                     QPC_ERR_INVALID);
    h = header(NULL);   /* topic not filled in yet: the channel's is used */
    assert_int_equal(qpc_broadcast_seal(ch, &h, (const uint8_t *)"x", 1, &out, &out_len), 0);
    free(out);
    assert_int_equal(qpc_broadcast_seal(ch, &h, (const uint8_t *)"x", QPC_BROADCAST_PLAINTEXT_MAX + 1,
                                        &out, &out_len), QPC_ERR_TOO_LARGE);
}

static void test_open_refuses_direct_envelope(void **state)
{
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope env;

    assert_int_equal(qpc_broadcast_subscribe(*state, "t", NULL, &ch), 0);
    env = sealed(ch, "x");
    env.has_recipient = true;
    assert_int_equal(open_result(ch, &env), QPC_ERR_INVALID);
    env.has_recipient = false;
    env.topic = NULL;
    assert_int_equal(open_result(ch, &env), QPC_ERR_INVALID);
    free(env.payload);
}

static void test_open_envelope_needs_subscription(void **state)
{
    struct qpc_channel_set *other = qpc_broadcast_set_new();
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope env;
    uint8_t *plain = (uint8_t *)1;
    size_t len = 1;

    assert_non_null(other);
    assert_int_equal(qpc_broadcast_subscribe(*state, "t", NULL, &ch), 0);
    env = sealed(ch, "x");
    assert_int_equal(qpc_broadcast_open_envelope(other, &env, &plain, &len), QPC_ERR_NOT_FOUND);
    assert_null(plain);
    free(env.payload);
    qpc_broadcast_set_free(other);
}

/* --- whole envelopes -------------------------------------------------------------------------- */

static void keypair(uint8_t pk[QPC_KEY_LEN], uint8_t sk[QPC_SECRET_KEY_LEN], uint8_t fill)
{
    uint8_t seed[crypto_sign_SEEDBYTES];

    memset(seed, fill, sizeof(seed));
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
}

static void test_envelope_new_builds_signed_envelope_that_opens(void **state)
{
    const struct qpc_channel *ch = NULL;
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN];
    struct qpc_envelope env;
    uint8_t *plain = NULL;
    size_t len = 0;

    keypair(pk, sk, 0x07);
    assert_int_equal(qpc_broadcast_subscribe(*state, "announcements", NULL, &ch), 0);
    assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, 3600, 5, (const uint8_t *)"Hello!", 6,
                                                &env), 0);
    assert_int_equal(env.version, QPC_ENVELOPE_VERSION);
    assert_memory_equal(env.sender, pk, QPC_KEY_LEN);
    assert_false(env.has_recipient);
    assert_string_equal(env.topic, "announcements");
    assert_int_equal(env.created_at_ms, T0);
    assert_int_equal(env.ttl_s, 3600);
    assert_int_equal(env.max_hops, 5);
    assert_int_equal(env.hop_count, 0);
    assert_int_equal(qpc_envelope_verify(&env, T0 + 1000), 0);
    assert_int_equal(qpc_broadcast_open_envelope(*state, &env, &plain, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal((char *)plain, "Hello!");
    free(plain);
    qpc_envelope_clear(&env);
}

static void test_envelope_new_survives_wire_round_trip_and_relay_hop(void **state)
{
    const struct qpc_channel *ch = NULL;
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN];
    struct qpc_envelope env, got;
    uint8_t *wire = NULL, *plain = NULL;
    size_t wire_len = 0, len = 0;

    keypair(pk, sk, 0x08);
    memset(&got, 0, sizeof(got));
    assert_int_equal(qpc_broadcast_subscribe(*state, "market", NULL, &ch), 0);
    assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, 600, 3, (const uint8_t *)"eggs 2 each",
                                                11, &env), 0);
    assert_int_equal(qpc_envelope_hop(&env), 0);   /* a relay passed it on */
    assert_int_equal(qpc_envelope_encode(&env, &wire, &wire_len), 0);
    assert_int_equal(qpc_envelope_decode(&got, wire, wire_len), 0);
    assert_int_equal(qpc_envelope_verify(&got, T0 + 1), 0);
    assert_int_equal(qpc_broadcast_open_envelope(*state, &got, &plain, &len), 0);
    assert_string_equal((char *)plain, "eggs 2 each");
    free(plain);
    free(wire);
    qpc_envelope_clear(&got);
    qpc_envelope_clear(&env);
}

static void test_envelope_moved_to_another_header_fails_both_checks(void **state)
{
    /* A relay re-dates the envelope to extend its life: the signature catches it, and
     * even a node that skipped verification cannot read the payload under the new header. */
    const struct qpc_channel *ch = NULL;
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN];
    struct qpc_envelope env;
    uint8_t *plain = NULL;
    size_t len = 0;

    keypair(pk, sk, 0x09);
    assert_int_equal(qpc_broadcast_subscribe(*state, "news", NULL, &ch), 0);
    assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, 60, 3, (const uint8_t *)"old news", 8,
                                                &env), 0);
    env.created_at_ms += 3600 * 1000;
    assert_int_equal(qpc_envelope_verify(&env, env.created_at_ms), QPC_ERR_BAD_SIGNATURE);
    assert_int_equal(qpc_broadcast_open_envelope(*state, &env, &plain, &len), QPC_ERR_DECRYPT);
    assert_null(plain);
    qpc_envelope_clear(&env);
}

static void test_envelope_new_refuses_bad_limits_and_leaves_env_cleared(void **state)
{
    const struct qpc_channel *ch = NULL;
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN];
    struct qpc_envelope env, zero;

    keypair(pk, sk, 0x0a);
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(qpc_broadcast_subscribe(*state, "t", NULL, &ch), 0);
    assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, 0, 3, (const uint8_t *)"x", 1, &env),
                     QPC_ERR_INVALID);
    assert_memory_equal(&env, &zero, sizeof(env));
    assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, QPC_TTL_MAX_S + 1, 3,
                                                (const uint8_t *)"x", 1, &env), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, 60, 0, (const uint8_t *)"x", 1, &env),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, 60, 3, (const uint8_t *)"x",
                                                QPC_BROADCAST_PLAINTEXT_MAX + 1, &env),
                     QPC_ERR_TOO_LARGE);
    assert_memory_equal(&env, &zero, sizeof(env));
}

/* --- batches ------------------------------------------------------------------------------- */

#define NB 5   /* envelopes in the test batches */

/* n signed broadcasts on #news by sk at T0, and their digests. */
static void burst(void **state, const uint8_t sk[QPC_SECRET_KEY_LEN], struct qpc_envelope *env, size_t n,
                  uint8_t (*digests)[QPC_ID_LEN])
{
    const struct qpc_channel *ch = NULL;
    char text[32];

    assert_int_equal(qpc_broadcast_subscribe(*state, "news", NULL, &ch), 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(text, sizeof(text), "bulletin %zu", i);
        assert_int_equal(qpc_broadcast_envelope_new(ch, sk, T0, 3600, 8, (const uint8_t *)text, strlen(text),
                                                    &env[i]), 0);
        assert_int_equal(qpc_broadcast_batch_digest(&env[i], digests[i]), 0);
    }
}

static void clear_all(struct qpc_envelope *env, size_t n)
{
    for (size_t i = 0; i < n; i++)
        qpc_envelope_clear(&env[i]);
}

/* What a receiver does: decode the batch's bytes and take it into v. */
static int take_wire(struct qpc_batch_vouches *v, const struct qpc_broadcast_batch *b, uint64_t now)
{
    struct qpc_broadcast_batch got;
    uint8_t *wire = NULL;
    size_t len = 0;
    int rc;

    assert_int_equal(qpc_broadcast_batch_encode(b, &wire, &len), 0);
    assert_true(len <= QPC_BATCH_WIRE_MAX);
    rc = qpc_broadcast_batch_decode(&got, wire, len);
    free(wire);
    return rc < 0 ? rc : qpc_batch_vouches_take(v, &got, now);
}

static void test_batch_vouches_for_each_envelope_it_names_after_the_wire(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], digests[NB][QPC_ID_LEN];
    struct qpc_envelope env[NB], got;
    struct qpc_broadcast_batch b;
    struct qpc_batch_vouches *v = qpc_batch_vouches_new(0);
    uint8_t *wire = NULL;
    size_t len = 0;

    assert_non_null(v);
    keypair(pk, sk, 0x21);
    burst(state, sk, env, NB, digests);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    assert_memory_equal(b.sender, pk, QPC_KEY_LEN);
    assert_false(qpc_batch_vouches_cover(v, &env[0], T0));   /* nothing before the batch */
    assert_int_equal(take_wire(v, &b, T0 + 10), 1);
    assert_int_equal(qpc_batch_vouches_count(v), NB + 1);     /* its digests and its id */
    for (size_t i = 0; i < NB; i++) {
        /* As a receiver gets it: decoded from the wire, one hop further. */
        memset(&got, 0, sizeof(got));
        assert_int_equal(qpc_envelope_hop(&env[i]), 0);
        assert_int_equal(qpc_envelope_encode(&env[i], &wire, &len), 0);
        assert_int_equal(qpc_envelope_decode(&got, wire, len), 0);
        free(wire);
        assert_true(qpc_batch_vouches_cover(v, &got, T0 + 20));
        assert_int_equal(qpc_envelope_verify_vouched(&got, T0 + 20), 0);
        qpc_envelope_clear(&got);
    }
    clear_all(env, NB);
    qpc_batch_vouches_free(v);
}

static void test_batch_replayed_is_known_and_vouches_nothing_new(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], digests[NB][QPC_ID_LEN];
    struct qpc_envelope env[NB];
    struct qpc_broadcast_batch b;
    struct qpc_batch_vouches *v = qpc_batch_vouches_new(0);

    keypair(pk, sk, 0x22);
    burst(state, sk, env, NB, digests);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    assert_int_equal(take_wire(v, &b, T0), 1);
    /* Again (a replay, or a copy the other way round a loop): known, not passed on. */
    assert_int_equal(take_wire(v, &b, T0 + 1000), 0);
    assert_int_equal(qpc_batch_vouches_count(v), NB + 1);
    clear_all(env, NB);
    qpc_batch_vouches_free(v);
}

static void test_batch_tampered_is_refused_and_vouches_for_nothing(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], pk2[QPC_KEY_LEN], sk2[QPC_SECRET_KEY_LEN];
    uint8_t digests[NB][QPC_ID_LEN];
    struct qpc_envelope env[NB];
    struct qpc_broadcast_batch b, t;
    struct qpc_batch_vouches *v = qpc_batch_vouches_new(0);

    keypair(pk, sk, 0x23);
    keypair(pk2, sk2, 0x24);
    burst(state, sk, env, NB, digests);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    t = b;
    t.digests[2][7] ^= 1;                       /* one digest changed */
    assert_int_equal(take_wire(v, &t, T0), QPC_ERR_BAD_SIGNATURE);
    t = b;
    t.created_at_ms += 1;                       /* its time moved */
    assert_int_equal(take_wire(v, &t, T0), QPC_ERR_BAD_SIGNATURE);
    t = b;
    t.signature[0] ^= 0x80;                     /* its signature */
    assert_int_equal(take_wire(v, &t, T0), QPC_ERR_BAD_SIGNATURE);
    t = b;
    t.n = NB - 1;                               /* one envelope dropped from the list */
    assert_int_equal(take_wire(v, &t, T0), QPC_ERR_BAD_SIGNATURE);
    t = b;
    memcpy(t.sender, pk2, QPC_KEY_LEN);         /* claimed by another key */
    assert_int_equal(take_wire(v, &t, T0), QPC_ERR_BAD_SIGNATURE);
    assert_int_equal(qpc_batch_vouches_count(v), 0);
    for (size_t i = 0; i < NB; i++)
        assert_false(qpc_batch_vouches_cover(v, &env[i], T0));
    clear_all(env, NB);
    qpc_batch_vouches_free(v);
}

static void test_batch_of_another_signer_vouches_for_none_of_the_senders_envelopes(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], mpk[QPC_KEY_LEN], msk[QPC_SECRET_KEY_LEN];
    uint8_t digests[NB][QPC_ID_LEN];
    struct qpc_envelope env[NB], forged;
    struct qpc_broadcast_batch b;
    struct qpc_batch_vouches *v = qpc_batch_vouches_new(0);

    keypair(pk, sk, 0x25);
    keypair(mpk, msk, 0x26);
    burst(state, sk, env, NB, digests);
    /* Mallory forges one of alice's: her key, its signature garbage, digest listed. */
    assert_int_equal(qpc_envelope_copy(&forged, &env[0]), 0);
    forged.payload[forged.payload_len - 1] ^= 1;
    assert_int_equal(qpc_envelope_sign(&forged, sk), 0);   /* a valid id for the new payload */
    memset(forged.signature, 0xaa, QPC_SIG_LEN);            /* but not alice's signature */
    assert_int_equal(qpc_broadcast_batch_digest(&forged, digests[0]), 0);
    /* Mallory's batch is genuinely hers and verifies... */
    assert_int_equal(qpc_broadcast_batch_sign(&b, msk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    assert_int_equal(take_wire(v, &b, T0), 1);
    /* ...but vouches for nothing of alice's: the forgery meets Ed25519 and fails. */
    assert_false(qpc_batch_vouches_cover(v, &forged, T0));
    assert_int_equal(qpc_envelope_verify(&forged, T0), QPC_ERR_BAD_SIGNATURE);
    for (size_t i = 1; i < NB; i++)
        assert_false(qpc_batch_vouches_cover(v, &env[i], T0));
    /* Alice's own batch vouches for hers, and Mallory's, listing them too, takes nothing away. */
    assert_int_equal(qpc_broadcast_batch_digest(&env[0], digests[0]), 0);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    assert_int_equal(take_wire(v, &b, T0), 1);
    assert_int_equal(qpc_broadcast_batch_sign(&b, msk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0 + 1), 0);
    assert_int_equal(take_wire(v, &b, T0 + 1), 1);
    for (size_t i = 0; i < NB; i++)
        assert_true(qpc_batch_vouches_cover(v, &env[i], T0 + 1));
    qpc_envelope_clear(&forged);
    clear_all(env, NB);
    qpc_batch_vouches_free(v);
}

static void test_batch_vouches_only_for_the_exact_envelope(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], digests[NB][QPC_ID_LEN];
    struct qpc_envelope env[NB];
    struct qpc_broadcast_batch b;
    struct qpc_batch_vouches *v = qpc_batch_vouches_new(0);
    uint8_t sig;

    keypair(pk, sk, 0x27);
    burst(state, sk, env, NB, digests);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    assert_int_equal(take_wire(v, &b, T0), 1);
    /* Its own signature swapped by a relay: not the envelope the batch named. */
    sig = env[0].signature[5];
    env[0].signature[5] ^= 1;
    assert_false(qpc_batch_vouches_cover(v, &env[0], T0));
    env[0].signature[5] = sig;
    assert_true(qpc_batch_vouches_cover(v, &env[0], T0));
    /* A field changed after decode keeps the stale id: covered, but the rehash fails. */
    env[1].payload[0] ^= 1;
    assert_true(qpc_batch_vouches_cover(v, &env[1], T0));
    assert_int_equal(qpc_envelope_verify_vouched(&env[1], T0), QPC_ERR_BAD_SIGNATURE);
    env[1].payload[0] ^= 1;
    /* The other checks still hold: expiry and the hop limit. */
    assert_int_equal(qpc_envelope_verify_vouched(&env[2], T0 + 3600 * 1000ull), QPC_ERR_EXPIRED);
    env[3].hop_count = env[3].max_hops + 1;
    assert_int_equal(qpc_envelope_verify_vouched(&env[3], T0), QPC_ERR_HOP_LIMIT);
    clear_all(env, NB);
    qpc_batch_vouches_free(v);
}

static void test_batch_too_old_or_from_the_future_is_refused(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], digests[NB][QPC_ID_LEN];
    struct qpc_envelope env[NB];
    struct qpc_broadcast_batch b;
    struct qpc_batch_vouches *v = qpc_batch_vouches_new(0);

    keypair(pk, sk, 0x28);
    burst(state, sk, env, NB, digests);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    assert_int_equal(take_wire(v, &b, T0 + QPC_BATCH_MAX_AGE_MS + 1), QPC_ERR_EXPIRED);
    assert_int_equal(take_wire(v, &b, T0 - QPC_CLOCK_SKEW_MS - 1), QPC_ERR_FUTURE);
    assert_int_equal(qpc_batch_vouches_count(v), 0);
    assert_int_equal(take_wire(v, &b, T0 + QPC_BATCH_MAX_AGE_MS), 1);
    clear_all(env, NB);
    qpc_batch_vouches_free(v);
}

/* Packs m and checks what decode says of those bytes. */
static void assert_decode(Qpc__BroadcastBatch *m, int want)
{
    struct qpc_broadcast_batch b;
    size_t len = qpc__broadcast_batch__get_packed_size(m);
    uint8_t *buf = malloc(len + 1);

    assert_non_null(buf);
    qpc__broadcast_batch__pack(m, buf);
    assert_int_equal(qpc_broadcast_batch_decode(&b, buf, len), want);
    if (want != 0)
        assert_int_equal(b.n, 0);   /* nothing half-filled */
    free(buf);
}

static void test_batch_decode_refuses_oversized_and_malformed(void **state)
{
    static uint8_t key[QPC_KEY_LEN], sig[QPC_SIG_LEN], dig[QPC_BATCH_MAX + 1][QPC_ID_LEN];
    ProtobufCBinaryData d[QPC_BATCH_MAX + 1];
    Qpc__BroadcastBatch m = QPC__BROADCAST_BATCH__INIT;
    struct qpc_broadcast_batch b;
    uint8_t *big, junk[64];
    uint8_t sk[QPC_SECRET_KEY_LEN], pk[QPC_KEY_LEN];

    for (size_t i = 0; i <= QPC_BATCH_MAX; i++) {
        d[i].data = dig[i];
        d[i].len = QPC_ID_LEN;
    }
    m.sender.data = key;
    m.sender.len = QPC_KEY_LEN;
    m.created_at = T0;
    m.signature.data = sig;
    m.signature.len = QPC_SIG_LEN;
    m.digests = d;
    m.n_digests = QPC_BATCH_MAX;
    assert_decode(&m, 0);                           /* the largest batch is fine */
    m.n_digests = QPC_BATCH_MAX + 1;
    assert_decode(&m, QPC_ERR_TOO_LARGE);           /* one more digest */
    m.n_digests = 1;
    assert_decode(&m, QPC_ERR_INVALID);             /* a lone envelope needs no batch */
    m.n_digests = 0;
    assert_decode(&m, QPC_ERR_INVALID);
    m.n_digests = 3;
    d[1].len = QPC_ID_LEN - 1;
    assert_decode(&m, QPC_ERR_INVALID);             /* a short digest */
    d[1].len = QPC_ID_LEN;
    m.sender.len = QPC_KEY_LEN - 1;
    assert_decode(&m, QPC_ERR_INVALID);
    m.sender.len = QPC_KEY_LEN;
    m.signature.len = 0;
    assert_decode(&m, QPC_ERR_INVALID);
    m.signature.len = QPC_SIG_LEN;
    assert_decode(&m, 0);
    /* Bytes that are not a batch, and input above the wire cap. */
    memset(junk, 0xff, sizeof(junk));
    assert_int_equal(qpc_broadcast_batch_decode(&b, junk, sizeof(junk)), QPC_ERR_INVALID);
    assert_non_null(big = calloc(1, QPC_BATCH_WIRE_MAX + 1));
    assert_int_equal(qpc_broadcast_batch_decode(&b, big, QPC_BATCH_WIRE_MAX + 1), QPC_ERR_TOO_LARGE);
    free(big);
    /* The sender cannot make one either. */
    keypair(pk, sk, 0x29);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])dig, 1, T0), QPC_ERR_INVALID);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])dig, QPC_BATCH_MAX + 1, T0),
                     QPC_ERR_INVALID);
}

static void test_batch_decode_refuses_unknown_repeated_and_overlong_fields(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], digests[NB][QPC_ID_LEN];
    struct qpc_envelope env[NB];
    struct qpc_broadcast_batch b, got;
    uint8_t *wire = NULL, *more;
    size_t len = 0;

    keypair(pk, sk, 0x2a);
    burst(state, sk, env, NB, digests);
    assert_int_equal(qpc_broadcast_batch_sign(&b, sk, (const uint8_t (*)[QPC_ID_LEN])digests, NB, T0), 0);
    assert_int_equal(qpc_broadcast_batch_encode(&b, &wire, &len), 0);
    assert_non_null(more = malloc(len + 3));
    memcpy(more, wire, len);
    more[len] = (9 << 3) | 0;   /* field 9, varint 1: unknown */
    more[len + 1] = 1;
    assert_int_equal(qpc_broadcast_batch_decode(&got, more, len + 2), QPC_ERR_INVALID);
    more[len] = (2 << 3) | 0;   /* created_at once more */
    assert_int_equal(qpc_broadcast_batch_decode(&got, more, len + 2), QPC_ERR_INVALID);
    /* created_at as a 10-byte varint with bits beyond 64 (fuzz_broadcast found it): as
     * long as the minimal form of what protobuf-c keeps of it, but not those bytes. */
    {
        size_t at = 2 + QPC_KEY_LEN, vlen = 1, k = 0;   /* sender's tag, length, key; then 0x10 */
        uint8_t *odd = malloc(len + 10);

        assert_non_null(odd);
        assert_int_equal(wire[at], (2 << 3) | 0);
        while (wire[at + vlen] & 0x80)
            vlen++;
        memcpy(odd, wire, at + 1);
        k = at + 1;
        for (int i = 0; i < 9; i++)
            odd[k++] = 0xff;
        odd[k++] = 0x7f;                                 /* bits 63..69 set */
        memcpy(odd + k, wire + at + 1 + vlen, len - (at + 1 + vlen));
        k += len - (at + 1 + vlen);
        assert_int_equal(qpc_broadcast_batch_decode(&got, odd, k), QPC_ERR_INVALID);
        free(odd);
    }
    assert_int_equal(qpc_broadcast_batch_decode(&got, wire, len), 0);
    assert_memory_equal(&got, &b, sizeof(b));
    free(more);
    free(wire);
    clear_all(env, NB);
}

static void test_batch_vouches_are_forgotten_after_keep_time_and_oldest_first_when_full(void **state)
{
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN], digests[3 * 4][QPC_ID_LEN];
    struct qpc_envelope env[3 * 4];
    struct qpc_broadcast_batch b[3];
    struct qpc_batch_vouches *v = qpc_batch_vouches_new(10);   /* two batches of 4 and their ids */

    keypair(pk, sk, 0x2b);
    burst(state, sk, env, 12, digests);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(qpc_broadcast_batch_sign(&b[i], sk, (const uint8_t (*)[QPC_ID_LEN])digests[4 * i], 4,
                                                  T0 + i), 0);
    assert_int_equal(take_wire(v, &b[0], T0), 1);
    assert_true(qpc_batch_vouches_cover(v, &env[0], T0 + QPC_BATCH_KEEP_MS - 1));
    assert_false(qpc_batch_vouches_cover(v, &env[0], T0 + QPC_BATCH_KEEP_MS));
    assert_int_equal(take_wire(v, &b[1], T0 + 1), 1);
    assert_int_equal(qpc_batch_vouches_count(v), 10);
    assert_int_equal(take_wire(v, &b[2], T0 + 2), 1);   /* the first batch makes room */
    assert_int_equal(qpc_batch_vouches_count(v), 10);
    for (size_t i = 0; i < 4; i++) {
        assert_false(qpc_batch_vouches_cover(v, &env[i], T0 + 2));
        assert_true(qpc_batch_vouches_cover(v, &env[4 + i], T0 + 2));
        assert_true(qpc_batch_vouches_cover(v, &env[8 + i], T0 + 2));
    }
    clear_all(env, 12);
    qpc_batch_vouches_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_chacha20poly1305_matches_rfc8439_aead_vector),
        T(test_hkdf_sha256_matches_rfc5869_case1),
        T(test_hkdf_sha256_matches_rfc5869_case3_without_salt_or_info),
        T(test_hkdf_sha256_refuses_impossible_lengths),
        T(test_open_key_matches_independent_hkdf),
        T(test_open_key_is_deterministic_and_distinct_per_topic),
        T(test_open_key_refuses_invalid_topics),
        T(test_subscribe_creates_open_channel_and_lookup_finds_it),
        T(test_subscribe_twice_with_same_key_returns_same_channel),
        T(test_subscribe_with_other_key_is_refused),
        T(test_subscribe_refuses_invalid_topic),
        T(test_unsubscribe_removes_channel),
        T(test_list_is_sorted_by_topic),
        T(test_private_key_text_accepts_hex_and_base64),
        T(test_private_key_text_refuses_bad_input),
        T(test_seal_then_open_round_trips),
        T(test_open_works_in_another_set_for_open_channels),
        T(test_empty_plaintext_round_trips),
        T(test_seal_uses_fresh_nonce_each_time),
        T(test_open_with_wrong_key_fails),
        T(test_open_fails_when_topic_changed),
        T(test_open_fails_when_any_bound_header_field_changed),
        T(test_open_fails_on_tampered_or_truncated_payload),
        T(test_seal_refuses_header_that_is_not_this_broadcast),
        T(test_open_refuses_direct_envelope),
        T(test_open_envelope_needs_subscription),
        T(test_envelope_new_builds_signed_envelope_that_opens),
        T(test_envelope_new_survives_wire_round_trip_and_relay_hop),
        T(test_envelope_moved_to_another_header_fails_both_checks),
        T(test_envelope_new_refuses_bad_limits_and_leaves_env_cleared),
        T(test_batch_vouches_for_each_envelope_it_names_after_the_wire),
        T(test_batch_replayed_is_known_and_vouches_nothing_new),
        T(test_batch_tampered_is_refused_and_vouches_for_nothing),
        T(test_batch_of_another_signer_vouches_for_none_of_the_senders_envelopes),
        T(test_batch_vouches_only_for_the_exact_envelope),
        T(test_batch_too_old_or_from_the_future_is_refused),
        T(test_batch_decode_refuses_oversized_and_malformed),
        T(test_batch_decode_refuses_unknown_repeated_and_overlong_fields),
        T(test_batch_vouches_are_forgotten_after_keep_time_and_oldest_first_when_full),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
