/*
 * test_envelope.c: MeshEnvelope signing, verification, wire decoding and payload boxes.
 *
 * Keys come from fixed seeds so failures reproduce; time is passed in, never read.
 */
#define _GNU_SOURCE   /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <gnutls/crypto.h>

#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/proto.h"

#define NOW 1700000000000ull   /* a fixed "now" in ms: 2023-11-14 */

struct keys {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

static void keys_from_byte(struct keys *k, uint8_t b)
{
    uint8_t seed[crypto_sign_SEEDBYTES];

    memset(seed, b, sizeof(seed));
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
}

static void hex(uint8_t *out, size_t len, const char *text)
{
    size_t got = 0;

    assert_int_equal(sodium_hex2bin(out, len, text, strlen(text), NULL, &got, NULL), 0);
    assert_int_equal(got, len);
}

/* --- RFC 8032 section 7.1 through libsodium ----------------------------------------- */

static const char RFC8032_MSG_1023[] =
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
    "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
    "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
    "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
    "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
    "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
    "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
    "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
    "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
    "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
    "c60c905c15fc910840b94c00a0b9d0";

static const struct {
    const char *seed, *pk, *msg, *sig;
} rfc8032[] = {
    { /* TEST 1 */
      "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
      "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
    { /* TEST 2 */
      "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
      "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
    { /* TEST 3 */
      "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
      "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
      "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a" },
    { /* TEST 1024 (a 1023-byte message) */
      "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
      "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e", RFC8032_MSG_1023,
      "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
      "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03" },
};

static void test_ed25519_matches_rfc8032_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(rfc8032) / sizeof(rfc8032[0]); i++) {
        uint8_t seed[32], want_pk[32], want_sig[64], pk[32], sk[64], sig[64];
        size_t msg_len = strlen(rfc8032[i].msg) / 2;
        uint8_t *msg = malloc(msg_len + 1);

        assert_non_null(msg);
        hex(seed, 32, rfc8032[i].seed);
        hex(want_pk, 32, rfc8032[i].pk);
        hex(want_sig, 64, rfc8032[i].sig);
        hex(msg, msg_len, rfc8032[i].msg);
        assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
        assert_memory_equal(pk, want_pk, 32);
        assert_int_equal(crypto_sign_detached(sig, NULL, msg, msg_len, sk), 0);
        assert_memory_equal(sig, want_sig, 64);
        assert_int_equal(crypto_sign_verify_detached(want_sig, msg, msg_len, want_pk), 0);
        want_sig[63] ^= 0x01;
        assert_int_not_equal(crypto_sign_verify_detached(want_sig, msg, msg_len, want_pk), 0);
        free(msg);
    }
}

/* --- helpers -------------------------------------------------------------------------- */

static const uint8_t PAYLOAD[] = "meet at the water tower at nine";

static void make_direct(struct qpc_envelope *env, const struct keys *from, const struct keys *to)
{
    assert_int_equal(qpc_envelope_init(env, from->sk, to->pk, NULL, NOW, 3600, 5, PAYLOAD,
                                       sizeof(PAYLOAD)), 0);
}

static void make_broadcast(struct qpc_envelope *env, const struct keys *from, const char *topic)
{
    assert_int_equal(qpc_envelope_init(env, from->sk, NULL, topic, NOW, 600, 3, PAYLOAD,
                                       sizeof(PAYLOAD)), 0);
}

static void assert_envelopes_equal(const struct qpc_envelope *a, const struct qpc_envelope *b)
{
    assert_int_equal(a->version, b->version);
    assert_memory_equal(a->id, b->id, QPC_ID_LEN);
    assert_memory_equal(a->sender, b->sender, QPC_KEY_LEN);
    assert_int_equal(a->has_recipient, b->has_recipient);
    if (a->has_recipient)
        assert_memory_equal(a->recipient, b->recipient, QPC_KEY_LEN);
    if (a->topic == NULL)
        assert_null(b->topic);
    else
        assert_string_equal(a->topic, b->topic);
    assert_int_equal(a->created_at_ms, b->created_at_ms);
    assert_int_equal(a->ttl_s, b->ttl_s);
    assert_int_equal(a->hop_count, b->hop_count);
    assert_int_equal(a->max_hops, b->max_hops);
    assert_int_equal(a->payload_len, b->payload_len);
    assert_memory_equal(a->payload, b->payload, a->payload_len);
    assert_memory_equal(a->signature, b->signature, QPC_SIG_LEN);
}

/* Encodes env, decodes the bytes into out and returns decode's result. */
static int through_wire(const struct qpc_envelope *env, struct qpc_envelope *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    assert_int_equal(qpc_envelope_encode(env, &buf, &len), 0);
    ret = qpc_envelope_decode(out, buf, len);
    free(buf);
    return ret;
}

/* Packs a hand-made protobuf message and decodes it. */
static int decode_msg(const Qpc__MeshEnvelope *msg)
{
    struct qpc_envelope env;
    size_t len = qpc__mesh_envelope__get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    int ret;

    assert_non_null(buf);
    qpc__mesh_envelope__pack(msg, buf);
    ret = qpc_envelope_decode(&env, buf, len);
    if (ret == 0)
        qpc_envelope_clear(&env);
    free(buf);
    return ret;
}

/* Points msg's fields at env's (no copies): a valid wire message to spoil in a test. */
static void msg_from_env(Qpc__MeshEnvelope *msg, struct qpc_envelope *env)
{
    qpc__mesh_envelope__init(msg);
    msg->version = env->version;
    msg->id.data = env->id;
    msg->id.len = QPC_ID_LEN;
    msg->sender.data = env->sender;
    msg->sender.len = QPC_KEY_LEN;
    if (env->has_recipient) {
        msg->recipient.data = env->recipient;
        msg->recipient.len = QPC_KEY_LEN;
    }
    if (env->topic != NULL)
        msg->topic = env->topic;
    msg->created_at = env->created_at_ms;
    msg->ttl = env->ttl_s;
    msg->hop_count = env->hop_count;
    msg->max_hops = env->max_hops;
    msg->payload.data = env->payload;
    msg->payload.len = env->payload_len;
    msg->signature.data = env->signature;
    msg->signature.len = QPC_SIG_LEN;
}

/* --- round trips and the documented layout ----------------------------------------- */

static void test_envelope_direct_round_trip_verifies(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env, got;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    assert_int_equal(qpc_envelope_verify(&env, NOW), 0);
    assert_int_equal(through_wire(&env, &got), 0);
    assert_envelopes_equal(&env, &got);
    assert_int_equal(qpc_envelope_verify(&got, NOW + 1000), 0);
    qpc_envelope_clear(&got);
    qpc_envelope_clear(&env);
}

static void test_envelope_broadcast_round_trip_verifies(void **state)
{
    struct keys alice;
    struct qpc_envelope env, got;

    keys_from_byte(&alice, 1);
    make_broadcast(&env, &alice, "announcements");
    assert_false(env.has_recipient);
    assert_int_equal(through_wire(&env, &got), 0);
    assert_envelopes_equal(&env, &got);
    assert_int_equal(qpc_envelope_verify(&got, NOW), 0);
    qpc_envelope_clear(&got);
    qpc_envelope_clear(&env);
}

static void test_envelope_round_trip_keeps_empty_payload(void **state)
{
    struct keys alice;
    struct qpc_envelope env, got;

    keys_from_byte(&alice, 1);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, NULL, "t", NOW, 60, 1, NULL, 0), 0);
    assert_int_equal(through_wire(&env, &got), 0);
    assert_int_equal(got.payload_len, 0);
    assert_int_equal(qpc_envelope_verify(&got, NOW), 0);
    qpc_envelope_clear(&got);
    qpc_envelope_clear(&env);
}

static uint8_t *be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

/* The layout written out in docs/envelope.md, rebuilt here independently. */
static void test_envelope_id_and_signature_follow_documented_layout(void **state)
{
    static const char domain[] = "quicprochat/envelope/v1";
    static const char sign_domain[] = "quicprochat/envelope-id/v1";
    struct keys alice, bob;
    struct qpc_envelope direct, bcast;
    uint8_t buf[512], id[32], msg[sizeof(sign_domain) + 32], *p;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&direct, &alice, &bob);
    p = buf;
    memcpy(p, domain, sizeof(domain)), p += sizeof(domain);   /* NUL included */
    p = be(p, 1, 4);
    memcpy(p, alice.pk, 32), p += 32;
    *p++ = 1;
    memcpy(p, bob.pk, 32), p += 32;
    p = be(p, 0, 2);
    p = be(p, NOW, 8);
    p = be(p, 3600, 4);
    p = be(p, 5, 4);
    p = be(p, sizeof(PAYLOAD), 4);
    memcpy(p, PAYLOAD, sizeof(PAYLOAD)), p += sizeof(PAYLOAD);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, (size_t)(p - buf), id), 0);
    assert_memory_equal(direct.id, id, 32);
    memcpy(msg, sign_domain, sizeof(sign_domain));
    memcpy(msg + sizeof(sign_domain), id, 32);
    assert_int_equal(crypto_sign_verify_detached(direct.signature, msg, sizeof(msg), alice.pk), 0);

    make_broadcast(&bcast, &alice, "news");
    p = buf;
    memcpy(p, domain, sizeof(domain)), p += sizeof(domain);
    p = be(p, 1, 4);
    memcpy(p, alice.pk, 32), p += 32;
    *p++ = 0;
    p = be(p, 4, 2);
    memcpy(p, "news", 4), p += 4;
    p = be(p, NOW, 8);
    p = be(p, 600, 4);
    p = be(p, 3, 4);
    p = be(p, sizeof(PAYLOAD), 4);
    memcpy(p, PAYLOAD, sizeof(PAYLOAD)), p += sizeof(PAYLOAD);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, (size_t)(p - buf), id), 0);
    assert_memory_equal(bcast.id, id, 32);

    qpc_envelope_clear(&direct);
    qpc_envelope_clear(&bcast);
}

static void test_envelope_large_payload_round_trip_verifies(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env, got;
    size_t len = 100000;   /* beyond the on-stack hashing buffer */
    uint8_t *payload = malloc(len);

    assert_non_null(payload);
    randombytes_buf(payload, len);
    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, NULL, NOW, 60, 2, payload, len), 0);
    assert_int_equal(through_wire(&env, &got), 0);
    assert_int_equal(qpc_envelope_verify(&got, NOW), 0);
    got.payload[len - 1] ^= 1;
    assert_int_equal(qpc_envelope_verify(&got, NOW), QPC_ERR_BAD_SIGNATURE);
    qpc_envelope_clear(&got);
    qpc_envelope_clear(&env);
    free(payload);
}

/* --- every signed field is covered; hop_count is not --------------------------------- */

enum field { F_VERSION, F_SENDER, F_RECIPIENT, F_TOPIC, F_CREATED, F_TTL, F_MAX_HOPS,
             F_PAYLOAD, F_SIGNATURE, F_ID, F_HOP_COUNT, F_COUNT };

static void change(struct qpc_envelope *env, enum field f)
{
    switch (f) {
    case F_VERSION: env->version = 2; break;
    case F_SENDER: env->sender[7] ^= 0x10; break;
    case F_RECIPIENT: env->recipient[31] ^= 0x01; break;
    case F_TOPIC: env->topic[0] = 'A'; break;
    case F_CREATED: env->created_at_ms -= 1; break;
    case F_TTL: env->ttl_s += 1; break;
    case F_MAX_HOPS: env->max_hops += 1; break;
    case F_PAYLOAD: env->payload[3] ^= 0x80; break;
    case F_SIGNATURE: env->signature[0] ^= 0x01; break;
    case F_ID: env->id[31] ^= 0x01; break;
    case F_HOP_COUNT: env->hop_count += 2; break;
    case F_COUNT: break;
    }
}

static void test_envelope_verify_fails_when_any_signed_field_changes(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope direct, bcast;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&direct, &alice, &bob);
    make_broadcast(&bcast, &alice, "announcements");
    for (int f = 0; f < F_COUNT; f++) {
        const struct qpc_envelope *orig = f == F_TOPIC ? &bcast : &direct;
        struct qpc_envelope env;
        int want = f == F_VERSION ? QPC_ERR_VERSION
                 : f == F_HOP_COUNT ? 0 : QPC_ERR_BAD_SIGNATURE;

        assert_int_equal(qpc_envelope_copy(&env, orig), 0);
        change(&env, (enum field)f);
        print_message("field %d\n", f);
        assert_int_equal(qpc_envelope_verify(&env, NOW), want);
        qpc_envelope_clear(&env);
    }
    qpc_envelope_clear(&direct);
    qpc_envelope_clear(&bcast);
}

static void test_envelope_decode_catches_field_changed_after_signing(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env, got;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    env.payload[0] ^= 1;   /* the wire id no longer matches the content */
    assert_int_equal(through_wire(&env, &got), QPC_ERR_BAD_SIGNATURE);
    assert_null(got.payload);
    qpc_envelope_clear(&env);
}

static void test_envelope_resigned_after_change_verifies_with_new_id(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;
    uint8_t old_id[QPC_ID_LEN];

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    memcpy(old_id, env.id, sizeof(old_id));
    env.ttl_s = 7200;
    assert_int_equal(qpc_envelope_sign(&env, alice.sk), 0);
    assert_memory_not_equal(env.id, old_id, QPC_ID_LEN);
    assert_int_equal(qpc_envelope_verify(&env, NOW), 0);
    /* Bob's key cannot sign for Alice's sender field. */
    assert_int_equal(qpc_envelope_sign(&env, bob.sk), QPC_ERR_INVALID);
    qpc_envelope_clear(&env);
}

static void test_envelope_hop_count_is_not_signed(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env, got;
    uint8_t id[QPC_ID_LEN];

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    memcpy(id, env.id, sizeof(id));
    assert_int_equal(qpc_envelope_hop(&env), 0);
    assert_int_equal(through_wire(&env, &got), 0);
    assert_int_equal(got.hop_count, 1);
    assert_memory_equal(got.id, id, QPC_ID_LEN);
    assert_int_equal(qpc_envelope_verify(&got, NOW), 0);
    qpc_envelope_clear(&got);
    qpc_envelope_clear(&env);
}

/* --- time and hops -------------------------------------------------------------------- */

static void test_envelope_verify_refuses_expired(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;
    uint64_t end = NOW + 3600 * 1000ull;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    assert_int_equal(qpc_envelope_expires_at_ms(&env), end);
    assert_false(qpc_envelope_expired(&env, end - 1));
    assert_int_equal(qpc_envelope_verify(&env, end - 1), 0);
    assert_true(qpc_envelope_expired(&env, end));
    assert_int_equal(qpc_envelope_verify(&env, end), QPC_ERR_EXPIRED);
    assert_int_equal(qpc_envelope_verify(&env, UINT64_MAX), QPC_ERR_EXPIRED);
    qpc_envelope_clear(&env);
}

static void test_envelope_verify_refuses_far_future(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    assert_int_equal(qpc_envelope_verify(&env, NOW - QPC_CLOCK_SKEW_MS), 0);
    assert_int_equal(qpc_envelope_verify(&env, NOW - QPC_CLOCK_SKEW_MS - 1), QPC_ERR_FUTURE);
    assert_int_equal(qpc_envelope_verify(&env, 0), QPC_ERR_FUTURE);
    qpc_envelope_clear(&env);
}

static void test_envelope_expiry_saturates_instead_of_wrapping(void **state)
{
    struct qpc_envelope env = { .created_at_ms = UINT64_MAX - 10, .ttl_s = 60 };

    assert_int_equal(qpc_envelope_expires_at_ms(&env), UINT64_MAX);
    assert_false(qpc_envelope_expired(&env, NOW));
}

static void test_envelope_verify_refuses_ttl_above_max(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, NULL, NOW, QPC_TTL_MAX_S, 1,
                                       PAYLOAD, 4), 0);
    assert_int_equal(qpc_envelope_verify(&env, NOW), 0);
    env.ttl_s = QPC_TTL_MAX_S + 1;
    assert_int_equal(qpc_envelope_verify(&env, NOW), QPC_ERR_INVALID);
    env.ttl_s = 0;
    assert_int_equal(qpc_envelope_verify(&env, NOW), QPC_ERR_INVALID);
    qpc_envelope_clear(&env);
}

static void test_envelope_hop_stops_at_max_hops(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, NULL, NOW, 60, 3, PAYLOAD, 4), 0);
    for (uint32_t i = 1; i <= 3; i++) {
        assert_int_equal(qpc_envelope_hop(&env), 0);
        assert_int_equal(env.hop_count, i);
        assert_int_equal(qpc_envelope_verify(&env, NOW), 0);
    }
    assert_int_equal(qpc_envelope_hop(&env), QPC_ERR_HOP_LIMIT);
    assert_int_equal(env.hop_count, 3);
    env.hop_count = 4;   /* as a lying relay would send it */
    assert_int_equal(qpc_envelope_verify(&env, NOW), QPC_ERR_HOP_LIMIT);
    qpc_envelope_clear(&env);
}

/* --- init refuses bad arguments -------------------------------------------------------- */

static void test_envelope_init_refuses_bad_arguments(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;
    char long_topic[QPC_TOPIC_MAX + 2];
    uint8_t *big = calloc(1, QPC_PAYLOAD_MAX + 1);

    assert_non_null(big);
    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    memset(long_topic, 'x', sizeof(long_topic) - 1);
    long_topic[sizeof(long_topic) - 1] = '\0';
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, "t", NOW, 60, 1, PAYLOAD, 4),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, NULL, NULL, NOW, 60, 1, PAYLOAD, 4),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, NULL, "", NOW, 60, 1, PAYLOAD, 4),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, NULL, long_topic, NOW, 60, 1, PAYLOAD, 4),
                     QPC_ERR_INVALID);
    long_topic[QPC_TOPIC_MAX] = '\0';   /* exactly the maximum is fine */
    assert_int_equal(qpc_envelope_init(&env, alice.sk, NULL, long_topic, NOW, 60, 1, PAYLOAD, 4), 0);
    qpc_envelope_clear(&env);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, NULL, NOW, 0, 1, PAYLOAD, 4),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, NULL, NOW, QPC_TTL_MAX_S + 1, 1,
                                       PAYLOAD, 4), QPC_ERR_INVALID);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, NULL, NOW, 60, 0, PAYLOAD, 4),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_envelope_init(&env, alice.sk, bob.pk, NULL, NOW, 60, 1, big,
                                       QPC_PAYLOAD_MAX + 1), QPC_ERR_TOO_LARGE);
    assert_null(env.payload);
    assert_null(env.topic);
    free(big);
}

/* --- decode refuses malformed input ------------------------------------------------- */

static void test_envelope_decode_refuses_every_truncation(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env, got;
    uint8_t *buf = NULL;
    size_t len = 0;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    assert_int_equal(qpc_envelope_encode(&env, &buf, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly `cut` bytes, so ASan sees any read past the end. */
        uint8_t *part = malloc(cut + 1);
        assert_non_null(part);
        memcpy(part, buf, cut);
        assert_int_not_equal(qpc_envelope_decode(&got, part, cut), 0);
        assert_null(got.payload);
        free(part);
    }
    assert_int_equal(qpc_envelope_decode(&got, buf, len), 0);
    qpc_envelope_clear(&got);
    free(buf);
    qpc_envelope_clear(&env);
}

static void test_envelope_decode_refuses_garbage(void **state)
{
    struct qpc_envelope got;
    uint8_t junk[300];

    for (unsigned i = 0; i < 200; i++) {
        randombytes_buf(junk, sizeof(junk));
        assert_int_not_equal(qpc_envelope_decode(&got, junk, (i * 7) % sizeof(junk)), 0);
    }
}

static void test_envelope_decode_refuses_wrong_field_sizes(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;
    Qpc__MeshEnvelope msg;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    msg_from_env(&msg, &env);
    assert_int_equal(decode_msg(&msg), 0);

    msg.sender.len = 31;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    msg_from_env(&msg, &env);
    msg.recipient.len = 31;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    msg_from_env(&msg, &env);
    msg.id.len = 16;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    msg_from_env(&msg, &env);
    msg.signature.len = 63;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    msg_from_env(&msg, &env);
    msg.signature.len = 0;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    msg_from_env(&msg, &env);
    msg.version = 2;
    assert_int_equal(decode_msg(&msg), QPC_ERR_VERSION);
    msg_from_env(&msg, &env);
    msg.ttl = QPC_TTL_MAX_S + 1;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    msg_from_env(&msg, &env);
    msg.max_hops = 0;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    /* The id is optional on the wire: decode recomputes it. */
    msg_from_env(&msg, &env);
    msg.id.len = 0;
    assert_int_equal(decode_msg(&msg), 0);
    qpc_envelope_clear(&env);
}

static void test_envelope_decode_refuses_both_or_neither_recipient_and_topic(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;
    Qpc__MeshEnvelope msg;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    msg_from_env(&msg, &env);
    msg.topic = "announcements";
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    msg_from_env(&msg, &env);
    msg.recipient.len = 0;
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);
    qpc_envelope_clear(&env);
}

static void test_envelope_decode_refuses_bad_topics(void **state)
{
    struct keys alice;
    struct qpc_envelope env;
    Qpc__MeshEnvelope msg;
    char topic[QPC_TOPIC_MAX + 2];
    uint8_t *buf = NULL, *nul_at;
    size_t len = 0;
    struct qpc_envelope got;

    keys_from_byte(&alice, 1);
    make_broadcast(&env, &alice, "newsXdesk");
    msg_from_env(&msg, &env);
    memset(topic, 't', sizeof(topic) - 1);
    topic[sizeof(topic) - 1] = '\0';
    msg.topic = topic;   /* 256 bytes */
    assert_int_equal(decode_msg(&msg), QPC_ERR_INVALID);

    /* A NUL inside the topic on the wire: protobuf-c would cut the string short. */
    assert_int_equal(qpc_envelope_encode(&env, &buf, &len), 0);
    nul_at = memmem(buf, len, "newsXdesk", 9);
    assert_non_null(nul_at);
    nul_at[4] = '\0';
    assert_int_equal(qpc_envelope_decode(&got, buf, len), QPC_ERR_INVALID);
    free(buf);
    qpc_envelope_clear(&env);
}

static void test_envelope_decode_refuses_oversized_payload(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env;
    Qpc__MeshEnvelope msg;
    uint8_t *big = calloc(1, QPC_PAYLOAD_MAX + 1);

    assert_non_null(big);
    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    msg_from_env(&msg, &env);
    msg.payload.data = big;
    msg.payload.len = QPC_PAYLOAD_MAX + 1;
    assert_int_equal(decode_msg(&msg), QPC_ERR_TOO_LARGE);
    msg.payload.len = QPC_PAYLOAD_MAX;   /* the largest accepted; the id then disagrees */
    assert_int_equal(decode_msg(&msg), QPC_ERR_BAD_SIGNATURE);
    free(big);
    qpc_envelope_clear(&env);
}

static void test_envelope_decode_refuses_non_canonical_encoding(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env, got;
    uint8_t *buf = NULL, *twice;
    size_t len = 0;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    assert_int_equal(qpc_envelope_encode(&env, &buf, &len), 0);
    /* Protobuf merges concatenated messages: every field twice, same values. */
    twice = malloc(2 * len);
    assert_non_null(twice);
    memcpy(twice, buf, len);
    memcpy(twice + len, buf, len);
    assert_int_equal(qpc_envelope_decode(&got, twice, 2 * len), QPC_ERR_INVALID);
    /* hop_count = 0 written out explicitly (field 8, varint): a default on the wire. */
    memcpy(twice, buf, len);
    twice[len] = 8 << 3;
    twice[len + 1] = 0;
    assert_int_equal(qpc_envelope_decode(&got, twice, len + 2), QPC_ERR_INVALID);
    /* An unknown field (number 12, bytes) appended: refused, not silently dropped. */
    memcpy(twice, buf, len);
    twice[len] = (12 << 3) | 2;
    twice[len + 1] = 1;
    twice[len + 2] = 'x';
    assert_int_equal(qpc_envelope_decode(&got, twice, len + 3), QPC_ERR_INVALID);
    free(twice);
    free(buf);
    qpc_envelope_clear(&env);
}

/* created_at of 2^63 or more is a ten-byte varint, whose last byte protobuf-c reads only
 * bit 0 of: the same value with other bits set there has the same length, and must be
 * refused all the same (the fuzzer found it in broadcast batches). */
static void test_envelope_decode_refuses_overlong_tenth_varint_byte(void **state)
{
    struct keys alice, bob;
    struct qpc_envelope env, got;
    Qpc__MeshEnvelope msg;
    uint8_t *buf, varint[11], *at = NULL;
    size_t len;
    uint64_t v = (UINT64_C(1) << 63) + 5;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    make_direct(&env, &alice, &bob);
    msg_from_env(&msg, &env);
    msg.created_at = v;
    msg.id.len = 0;   /* no id on the wire: decode then computes it, nothing to disagree */
    len = qpc__mesh_envelope__get_packed_size(&msg);
    assert_non_null(buf = malloc(len));
    assert_int_equal(qpc__mesh_envelope__pack(&msg, buf), len);
    assert_int_equal(qpc_envelope_decode(&got, buf, len), 0);   /* minimal: taken */
    assert_int_equal(got.created_at_ms, v);
    qpc_envelope_clear(&got);
    /* the field's key (6, varint) and its ten bytes, to find it in buf */
    varint[0] = 6 << 3;
    for (size_t i = 1; i <= 10; i++, v >>= 7)
        varint[i] = (uint8_t)((v & 0x7f) | (i < 10 ? 0x80 : 0));
    assert_int_equal(varint[10], 0x01);
    for (size_t i = 0; i + sizeof(varint) <= len && at == NULL; i++)
        if (memcmp(buf + i, varint, sizeof(varint)) == 0)
            at = buf + i;
    assert_non_null(at);
    at[10] = 0x7f;   /* bits 64-69 set: the same value to protobuf-c */
    assert_int_equal(qpc_envelope_decode(&got, buf, len), QPC_ERR_INVALID);
    free(buf);
    qpc_envelope_clear(&env);
}

/* --- boxes ----------------------------------------------------------------------------- */

static void test_box_seal_open_round_trip(void **state)
{
    struct keys alice, bob;
    struct qpc_box_cache *a, *b;
    uint8_t *box = NULL, *plain = NULL;
    size_t box_len = 0, plain_len = 0;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    a = qpc_box_cache_new(alice.sk);
    b = qpc_box_cache_new(bob.sk);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(qpc_box_seal(a, bob.pk, PAYLOAD, sizeof(PAYLOAD), &box, &box_len), 0);
    assert_int_equal(box_len, sizeof(PAYLOAD) + QPC_BOX_OVERHEAD);
    assert_int_equal(qpc_box_open(b, alice.pk, box, box_len, &plain, &plain_len), 0);
    assert_int_equal(plain_len, sizeof(PAYLOAD));
    assert_memory_equal(plain, PAYLOAD, sizeof(PAYLOAD));
    free(plain);
    free(box);

    assert_int_equal(qpc_box_seal(a, bob.pk, NULL, 0, &box, &box_len), 0);
    assert_int_equal(box_len, QPC_BOX_OVERHEAD);
    assert_int_equal(qpc_box_open(b, alice.pk, box, box_len, &plain, &plain_len), 0);
    assert_int_equal(plain_len, 0);
    free(plain);
    free(box);
    qpc_box_cache_free(a);
    qpc_box_cache_free(b);
}

static void test_box_open_refuses_wrong_key_and_tampering(void **state)
{
    struct keys alice, bob, carol;
    struct qpc_box_cache *a, *b, *c;
    uint8_t *box = NULL, *plain = NULL;
    size_t box_len = 0, plain_len = 0;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    keys_from_byte(&carol, 3);
    a = qpc_box_cache_new(alice.sk);
    b = qpc_box_cache_new(bob.sk);
    c = qpc_box_cache_new(carol.sk);
    assert_int_equal(qpc_box_seal(a, bob.pk, PAYLOAD, sizeof(PAYLOAD), &box, &box_len), 0);
    /* Carol is not the recipient; Bob must not take it as Carol's. */
    assert_int_equal(qpc_box_open(c, alice.pk, box, box_len, &plain, &plain_len), QPC_ERR_DECRYPT);
    assert_null(plain);
    assert_int_equal(qpc_box_open(b, carol.pk, box, box_len, &plain, &plain_len), QPC_ERR_DECRYPT);
    /* Any flipped bit: nonce, MAC or ciphertext. */
    for (size_t i = 0; i < box_len; i++) {
        box[i] ^= 0x04;
        assert_int_equal(qpc_box_open(b, alice.pk, box, box_len, &plain, &plain_len),
                         QPC_ERR_DECRYPT);
        box[i] ^= 0x04;
    }
    for (size_t cut = 0; cut < box_len; cut++)
        assert_int_equal(qpc_box_open(b, alice.pk, box, cut, &plain, &plain_len), QPC_ERR_DECRYPT);
    assert_int_equal(qpc_box_open(b, alice.pk, box, box_len, &plain, &plain_len), 0);
    free(plain);
    free(box);
    qpc_box_cache_free(a);
    qpc_box_cache_free(b);
    qpc_box_cache_free(c);
}

static void test_box_refuses_peer_key_of_small_order(void **state)
{
    struct keys alice;
    struct qpc_box_cache *a;
    uint8_t bad[QPC_KEY_LEN], *box = NULL;
    size_t box_len = 0;

    keys_from_byte(&alice, 1);
    a = qpc_box_cache_new(alice.sk);
    memset(bad, 0, sizeof(bad));   /* y = 0: a point of order 4 */
    assert_int_equal(qpc_box_seal(a, bad, PAYLOAD, 4, &box, &box_len), QPC_ERR_CRYPTO);
    assert_null(box);
    bad[0] = 1;                    /* y = 1: the neutral element */
    assert_int_equal(qpc_box_seal(a, bad, PAYLOAD, 4, &box, &box_len), QPC_ERR_CRYPTO);
    assert_int_equal(qpc_box_cache_count(a), 0);
    qpc_box_cache_free(a);
}

static void test_box_cache_reuses_shared_key_per_peer(void **state)
{
    struct keys alice, bob, carol;
    struct qpc_box_cache *a, *b;
    uint8_t *box1 = NULL, *box2 = NULL, *plain = NULL;
    size_t len1 = 0, len2 = 0, plain_len = 0;

    keys_from_byte(&alice, 1);
    keys_from_byte(&bob, 2);
    keys_from_byte(&carol, 3);
    a = qpc_box_cache_new(alice.sk);
    b = qpc_box_cache_new(bob.sk);
    assert_int_equal(qpc_box_cache_count(a), 0);
    assert_int_equal(qpc_box_seal(a, bob.pk, PAYLOAD, 8, &box1, &len1), 0);
    assert_int_equal(qpc_box_seal(a, bob.pk, PAYLOAD, 8, &box2, &len2), 0);
    assert_int_equal(qpc_box_cache_count(a), 1);
    assert_true(qpc_box_cache_contains(a, bob.pk));
    assert_false(qpc_box_cache_contains(a, carol.pk));
    assert_memory_not_equal(box1, box2, len1);   /* fresh nonce every time */
    assert_int_equal(qpc_box_open(b, alice.pk, box2, len2, &plain, &plain_len), 0);
    free(plain);
    assert_int_equal(qpc_box_open(b, alice.pk, box1, len1, &plain, &plain_len), 0);
    assert_int_equal(qpc_box_cache_count(b), 1);
    free(plain);
    free(box1);
    free(box2);
    qpc_box_cache_free(a);
    qpc_box_cache_free(b);
}

static void test_box_cache_evicts_least_recently_used_when_full(void **state)
{
    enum { N = 1030 };
    struct keys alice, first, bob;
    struct qpc_box_cache *a, *b;
    struct keys *peers = malloc(N * sizeof(*peers));
    uint8_t *box = NULL, *plain = NULL;
    size_t box_len = 0, plain_len = 0;

    assert_non_null(peers);
    keys_from_byte(&alice, 1);
    keys_from_byte(&first, 2);
    keys_from_byte(&bob, 3);
    a = qpc_box_cache_new(alice.sk);
    b = qpc_box_cache_new(bob.sk);
    assert_int_equal(qpc_box_seal(a, first.pk, PAYLOAD, 4, &box, &box_len), 0);
    free(box);
    assert_int_equal(qpc_box_seal(a, bob.pk, PAYLOAD, 4, &box, &box_len), 0);
    free(box);
    for (int i = 0; i < N; i++) {
        crypto_sign_keypair(peers[i].pk, peers[i].sk);
        assert_int_equal(qpc_box_seal(a, peers[i].pk, PAYLOAD, 4, &box, &box_len), 0);
        free(box);
        /* Keep "first" in use: it must survive while idle bob is evicted. */
        if (i % 100 == 0) {
            assert_int_equal(qpc_box_seal(a, first.pk, PAYLOAD, 4, &box, &box_len), 0);
            free(box);
        }
    }
    assert_int_equal(qpc_box_cache_count(a), 1024);
    assert_true(qpc_box_cache_contains(a, first.pk));
    assert_false(qpc_box_cache_contains(a, bob.pk));
    assert_true(qpc_box_cache_contains(a, peers[N - 1].pk));
    /* An evicted peer still works: the key is computed again. */
    assert_int_equal(qpc_box_seal(a, bob.pk, PAYLOAD, 4, &box, &box_len), 0);
    assert_int_equal(qpc_box_open(b, alice.pk, box, box_len, &plain, &plain_len), 0);
    assert_memory_equal(plain, PAYLOAD, 4);
    free(plain);
    free(box);
    qpc_box_cache_free(a);
    qpc_box_cache_free(b);
    free(peers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ed25519_matches_rfc8032_vectors),
        cmocka_unit_test(test_envelope_direct_round_trip_verifies),
        cmocka_unit_test(test_envelope_broadcast_round_trip_verifies),
        cmocka_unit_test(test_envelope_round_trip_keeps_empty_payload),
        cmocka_unit_test(test_envelope_id_and_signature_follow_documented_layout),
        cmocka_unit_test(test_envelope_large_payload_round_trip_verifies),
        cmocka_unit_test(test_envelope_verify_fails_when_any_signed_field_changes),
        cmocka_unit_test(test_envelope_decode_catches_field_changed_after_signing),
        cmocka_unit_test(test_envelope_resigned_after_change_verifies_with_new_id),
        cmocka_unit_test(test_envelope_hop_count_is_not_signed),
        cmocka_unit_test(test_envelope_verify_refuses_expired),
        cmocka_unit_test(test_envelope_verify_refuses_far_future),
        cmocka_unit_test(test_envelope_expiry_saturates_instead_of_wrapping),
        cmocka_unit_test(test_envelope_verify_refuses_ttl_above_max),
        cmocka_unit_test(test_envelope_hop_stops_at_max_hops),
        cmocka_unit_test(test_envelope_init_refuses_bad_arguments),
        cmocka_unit_test(test_envelope_decode_refuses_every_truncation),
        cmocka_unit_test(test_envelope_decode_refuses_garbage),
        cmocka_unit_test(test_envelope_decode_refuses_wrong_field_sizes),
        cmocka_unit_test(test_envelope_decode_refuses_both_or_neither_recipient_and_topic),
        cmocka_unit_test(test_envelope_decode_refuses_bad_topics),
        cmocka_unit_test(test_envelope_decode_refuses_oversized_payload),
        cmocka_unit_test(test_envelope_decode_refuses_non_canonical_encoding),
        cmocka_unit_test(test_envelope_decode_refuses_overlong_tenth_varint_byte),
        cmocka_unit_test(test_box_seal_open_round_trip),
        cmocka_unit_test(test_box_open_refuses_wrong_key_and_tampering),
        cmocka_unit_test(test_box_refuses_peer_key_of_small_order),
        cmocka_unit_test(test_box_cache_reuses_shared_key_per_peer),
        cmocka_unit_test(test_box_cache_evicts_least_recently_used_when_full),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
