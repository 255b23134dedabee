/*
 * test_announce.c: signed announces: the round trip through protobuf, every signed field
 * covered, later copies checked against the first, the hash chain that stops a
 * forwarder from shortening the path, the hop
 * limit, serial-number seqno order and the strictness of the protobuf reader.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "qpc/announce.h"
#include "qpc/error.h"

#define T0 1700000000000ull

static uint8_t sk[QPC_SECRET_KEY_LEN];
static uint8_t pk[QPC_KEY_LEN];

static const char *const ADDRS[] = { "192.0.2.7:7000", "[2001:db8::7]:7000" };

static void make(struct qpc_announce *a, uint32_t max_hops)
{
    assert_int_equal(qpc_announce_create(a, sk, 42, T0, 30, max_hops, ADDRS, 2, "mesh.example"), 0);
}

/* Packs a to bytes and back through the strict reader. */
static int round_trip(const struct qpc_announce *a, struct qpc_announce *out)
{
    struct qpc_announce_pb s;
    Qpc__MeshAnnounce *pb;
    uint8_t buf[2048];
    size_t len;
    int ret;

    qpc_announce_to_pb(a, &s);
    len = qpc__mesh_announce__get_packed_size(&s.pb);
    assert_true(len <= sizeof(buf));
    qpc__mesh_announce__pack(&s.pb, buf);
    pb = qpc__mesh_announce__unpack(NULL, len, buf);
    assert_non_null(pb);
    ret = qpc_announce_from_pb(pb, out);
    qpc__mesh_announce__free_unpacked(pb, NULL);
    return ret;
}

static void test_announce_round_trip_verifies(void **state)
{
    struct qpc_announce a, b;

    (void)state;
    make(&a, 8);
    assert_memory_equal(a.key, pk, QPC_KEY_LEN);
    assert_int_equal(a.hops, 0);
    assert_int_equal(qpc_announce_verify(&a), 0);
    assert_int_equal(round_trip(&a, &b), 0);
    assert_int_equal(qpc_announce_verify(&b), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_string_equal(b.addresses[1], "[2001:db8::7]:7000");
    assert_string_equal(b.domain, "mesh.example");

    /* No addresses and no domain are fine too. */
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 1, NULL, 0, NULL), 0);
    assert_int_equal(round_trip(&a, &b), 0);
    assert_int_equal(qpc_announce_verify(&b), 0);
}

static void test_announce_every_signed_field_is_covered(void **state)
{
    struct qpc_announce a, b;

    (void)state;
    make(&a, 8);
#define FLIP(stmt)                                                           \
    do {                                                                     \
        b = a;                                                               \
        stmt;                                                                \
        assert_int_equal(qpc_announce_verify(&b), QPC_ERR_BAD_SIGNATURE);    \
    } while (0)
    FLIP(b.key[5] ^= 1);
    FLIP(b.seqno++);
    FLIP(b.created_at_ms++);
    FLIP(b.interval_s++);
    FLIP(b.max_hops--);
    FLIP(b.top[31] ^= 0x80);
    FLIP(b.n_addresses = 1);
    FLIP(strcpy(b.addresses[0], "192.0.2.8:7000"));
    FLIP(strcpy(b.addresses[1], "192.0.2.7:7001"));
    /* The length prefixes keep fields apart: a byte moved from one to the next shows. */
    FLIP((strcpy(b.addresses[0], "192.0.2.7:700"), strcpy(b.addresses[1], "0.0.2.7:7000")));
    FLIP(strcpy(b.domain, "mesh.exampla"));
    FLIP(b.domain[0] = '\0');
    FLIP(b.signature[0] ^= 1);
    FLIP(b.chain[0] ^= 1);
#undef FLIP
}

static void test_announce_forwarder_cannot_lower_hops(void **state)
{
    struct qpc_announce a, b;

    (void)state;
    make(&a, 8);
    assert_int_equal(qpc_announce_forward(&a), 0);
    assert_int_equal(qpc_announce_forward(&a), 0);
    assert_int_equal(a.hops, 2);
    assert_int_equal(qpc_announce_verify(&a), 0);

    /* Claiming one hop with the two-hop chain: refused. */
    b = a;
    b.hops = 1;
    assert_int_equal(qpc_announce_verify(&b), QPC_ERR_BAD_SIGNATURE);
    b.hops = 0;
    assert_int_equal(qpc_announce_verify(&b), QPC_ERR_BAD_SIGNATURE);
    /* Claiming more hops than the chain says is refused too (it would not be a lie
     * that helps, but the chain is exact). */
    b.hops = 3;
    assert_int_equal(qpc_announce_verify(&b), QPC_ERR_BAD_SIGNATURE);
    /* Passed on after the round trip, still good. */
    assert_int_equal(round_trip(&a, &b), 0);
    assert_int_equal(qpc_announce_forward(&b), 0);
    assert_int_equal(qpc_announce_verify(&b), 0);
    assert_int_equal(b.hops, 3);
}

/* A later copy is checked against the verified first one: any signed field or the
 * signature changed is refused without a signature check, and its chain must hold at
 * its own hops, shorter or longer than the first's. */
static void test_announce_verify_copy(void **state)
{
    struct qpc_announce first, a, b, other;

    (void)state;
    make(&a, 8);
    first = a;
    assert_int_equal(qpc_announce_forward(&first), 0);
    assert_int_equal(qpc_announce_forward(&first), 0);
    assert_int_equal(qpc_announce_verify(&first), 0);
    /* the origin's own copy (hops 0) and a longer one, after the round trip */
    assert_int_equal(qpc_announce_verify_copy(&first, &a), 0);
    assert_int_equal(round_trip(&first, &b), 0);
    assert_int_equal(qpc_announce_forward(&b), 0);
    assert_int_equal(qpc_announce_verify_copy(&first, &b), 0);
#define FLIP(stmt, want)                                                      \
    do {                                                                      \
        b = a;                                                                \
        stmt;                                                                 \
        assert_int_equal(qpc_announce_verify_copy(&first, &b), want);         \
    } while (0)
    FLIP(b.key[5] ^= 1, QPC_ERR_BAD_SIGNATURE);
    FLIP(b.seqno++, QPC_ERR_BAD_SIGNATURE);
    FLIP(b.created_at_ms++, QPC_ERR_BAD_SIGNATURE);
    FLIP(b.interval_s++, QPC_ERR_BAD_SIGNATURE);
    FLIP(b.max_hops--, QPC_ERR_BAD_SIGNATURE);
    FLIP(b.top[31] ^= 0x80, QPC_ERR_BAD_SIGNATURE);
    FLIP(b.n_addresses = 1, QPC_ERR_BAD_SIGNATURE);
    FLIP(strcpy(b.addresses[1], "192.0.2.7:7001"), QPC_ERR_BAD_SIGNATURE);
    FLIP(strcpy(b.domain, "mesh.exampla"), QPC_ERR_BAD_SIGNATURE);
    FLIP(b.signature[63] ^= 1, QPC_ERR_BAD_SIGNATURE);
    FLIP(b.chain[0] ^= 1, QPC_ERR_BAD_SIGNATURE);
    /* a shorter way than its chain proves, and one past the hop limit */
    FLIP((qpc_announce_forward(&b), qpc_announce_forward(&b), b.hops = 1), QPC_ERR_BAD_SIGNATURE);
    FLIP(b.hops = 9, QPC_ERR_INVALID);
#undef FLIP
    /* another announce of the same origin (a new seed, the same seqno) is not a copy */
    make(&other, 8);
    assert_int_equal(qpc_announce_verify_copy(&first, &other), QPC_ERR_BAD_SIGNATURE);
}

static void test_announce_forward_stops_at_max_hops(void **state)
{
    struct qpc_announce a, before;

    (void)state;
    make(&a, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qpc_announce_forward(&a), 0);
        assert_int_equal(qpc_announce_verify(&a), 0);
    }
    assert_int_equal(a.hops, 3);
    before = a;
    assert_int_equal(qpc_announce_forward(&a), QPC_ERR_HOP_LIMIT);
    assert_memory_equal(&a, &before, sizeof(a));   /* untouched */
    a.hops = 4;
    assert_int_equal(qpc_announce_verify(&a), QPC_ERR_INVALID);
}

static void test_announce_seqno_wraps(void **state)
{
    (void)state;
    assert_true(qpc_announce_seqno_newer(2, 1));
    assert_false(qpc_announce_seqno_newer(1, 2));
    assert_false(qpc_announce_seqno_newer(7, 7));
    assert_true(qpc_announce_seqno_newer(0, UINT32_MAX));
    assert_true(qpc_announce_seqno_newer(5, UINT32_MAX - 5));
    assert_false(qpc_announce_seqno_newer(UINT32_MAX, 0));
    assert_true(qpc_announce_seqno_newer(0x7fffffffu, 0));
    /* Exactly half the space apart: neither is newer. */
    assert_false(qpc_announce_seqno_newer(0x80000000u, 0));
    assert_false(qpc_announce_seqno_newer(0, 0x80000000u));
}

static void test_announce_id_ignores_hops(void **state)
{
    struct qpc_announce a, b;
    uint8_t ida[QPC_ID_LEN], idb[QPC_ID_LEN];

    (void)state;
    make(&a, 8);
    b = a;
    assert_int_equal(qpc_announce_forward(&b), 0);
    qpc_announce_id(&a, ida);
    qpc_announce_id(&b, idb);
    assert_memory_equal(ida, idb, QPC_ID_LEN);
    b.seqno++;
    qpc_announce_id(&b, idb);
    assert_memory_not_equal(ida, idb, QPC_ID_LEN);
}

static void test_announce_create_refuses_bad_input(void **state)
{
    struct qpc_announce a;
    const char *const names[] = { "host.example:7000" };
    const char *const no_port[] = { "192.0.2.1" };
    const char *many[QPC_ANNOUNCE_ADDRS_MAX + 1];
    char long_domain[QPC_ANNOUNCE_DOMAIN_MAX + 2];

    (void)state;
    for (size_t i = 0; i < QPC_ANNOUNCE_ADDRS_MAX + 1; i++)
        many[i] = "192.0.2.1:7000";
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 0, NULL, 0, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, QPC_ANNOUNCE_HOPS_MAX + 1, NULL, 0, NULL),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 0, 4, NULL, 0, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 4, names, 1, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 4, no_port, 1, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 4, many, QPC_ANNOUNCE_ADDRS_MAX + 1, NULL),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 4, many, QPC_ANNOUNCE_ADDRS_MAX, NULL), 0);
    memset(long_domain, 'a', sizeof(long_domain) - 1);
    long_domain[sizeof(long_domain) - 1] = '\0';
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 4, NULL, 0, long_domain), QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, 4, NULL, 0, "bad..domain"), QPC_ERR_INVALID);
    assert_int_equal(qpc_announce_create(&a, sk, 1, T0, 30, QPC_ANNOUNCE_HOPS_MAX, NULL, 0, ""), 0);
    assert_int_equal(qpc_announce_verify(&a), 0);
}

/* A decoded announce with one thing wrong each time: from_pb refuses it. */
static void test_announce_from_pb_is_strict(void **state)
{
    struct qpc_announce a, out;
    struct qpc_announce_pb s;
    Qpc__MeshAnnounce pb;
    Qpc__AnnounceBody body;
    char *addrs[QPC_ANNOUNCE_ADDRS_MAX + 1];
    char too_long[QPC_ADDR_TEXT_MAX + 8];
    ProtobufCMessageUnknownField unknown = { 0 };

    (void)state;
    make(&a, 8);
    qpc_announce_to_pb(&a, &s);
    assert_int_equal(qpc_announce_from_pb(&s.pb, &out), 0);
    assert_int_equal(qpc_announce_from_pb(NULL, &out), QPC_ERR_INVALID);

#define BAD(stmt)                                                             \
    do {                                                                      \
        pb = s.pb;                                                            \
        body = s.body;                                                        \
        pb.body = &body;                                                      \
        stmt;                                                                 \
        assert_int_equal(qpc_announce_from_pb(&pb, &out), QPC_ERR_INVALID);   \
    } while (0)
    BAD(pb.body = NULL);
    BAD(body.key.len = 31);
    BAD(body.key.len = 0);
    BAD(body.top.len = 33);
    BAD(pb.signature.len = 63);
    BAD(pb.chain.len = 0);
    BAD(body.max_hops = 0);
    BAD(body.max_hops = QPC_ANNOUNCE_HOPS_MAX + 1);
    BAD(pb.hops = 9);
    BAD(body.interval_s = 0);
    for (size_t i = 0; i <= QPC_ANNOUNCE_ADDRS_MAX; i++)
        addrs[i] = (char *)ADDRS[0];
    BAD((body.addresses = addrs, body.n_addresses = QPC_ANNOUNCE_ADDRS_MAX + 1));
    addrs[0] = "host.example:7000";
    BAD((body.addresses = addrs, body.n_addresses = 1));
    addrs[0] = "192.0.2.1:0";
    BAD((body.addresses = addrs, body.n_addresses = 1));
    addrs[0] = "";
    BAD((body.addresses = addrs, body.n_addresses = 1));
    memset(too_long, '1', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    addrs[0] = too_long;
    BAD((body.addresses = addrs, body.n_addresses = 1));
    BAD(body.domain = "no spaces allowed");
    BAD((pb.base.n_unknown_fields = 1, pb.base.unknown_fields = &unknown));
    BAD((body.base.n_unknown_fields = 1, body.base.unknown_fields = &unknown));
#undef BAD
    /* A failed conversion leaves nothing behind. */
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(((uint8_t *)&out)[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announce_round_trip_verifies),
        cmocka_unit_test(test_announce_every_signed_field_is_covered),
        cmocka_unit_test(test_announce_forwarder_cannot_lower_hops),
        cmocka_unit_test(test_announce_verify_copy),
        cmocka_unit_test(test_announce_forward_stops_at_max_hops),
        cmocka_unit_test(test_announce_seqno_wraps),
        cmocka_unit_test(test_announce_id_ignores_hops),
        cmocka_unit_test(test_announce_create_refuses_bad_input),
        cmocka_unit_test(test_announce_from_pb_is_strict),
    };

    if (sodium_init() < 0)
        return 1;
    crypto_sign_keypair(pk, sk);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
