/*
 * test_client_routes.c: what the client learns of where peers are (src/client/routes.c):
 * from links (direct, accepted, relayed), from servers and the user, from mDNS claims,
 * from signed announces through a neighbour, from envelopes through one; what a claim
 * can never displace; name and prefix lookup over the routing table. Plain
 * directory and table, time passed in; nothing is dialled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "qpc/error.h"
#include "routes.h"

#define T0 1700000000000ull   /* an arbitrary "now" in ms */
#define ADDR_A "10.0.0.2:7000"
#define ADDR_B "10.0.0.9:7100"
#define SERVER "10.0.0.1:7000"

struct fix {
    struct qpc_identity *me;
    struct qpc_route_table *rt;
    uint8_t peer[QPC_KEY_LEN];
    uint8_t other[QPC_KEY_LEN];
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    if (f == NULL || sodium_init() < 0 || qpc_identity_generate(&f->me) < 0)
        return -1;
    f->rt = qpc_route_table_new(0);
    randombytes_buf(f->peer, QPC_KEY_LEN);
    randombytes_buf(f->other, QPC_KEY_LEN);
    *state = f;
    return f->rt == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    qpc_route_table_free(f->rt);
    qpc_identity_free(f->me);
    free(f);
    return 0;
}

static struct qpc_route route_of(const struct fix *f, const uint8_t key[QPC_KEY_LEN])
{
    struct qpc_route r;

    assert_int_equal(qpc_route_lookup(f->rt, key, &r), 0);
    return r;
}

static const struct qpc_peer *entry_of(const struct fix *f, const uint8_t key[QPC_KEY_LEN])
{
    const struct qpc_peer *p = qpc_identity_peer_get(f->me, key);

    assert_non_null(p);
    return p;
}

static void test_routes_direct_link_learns_address_and_one_hop_route(void **state)
{
    struct fix *f = *state;
    const struct qpc_peer *p;
    struct qpc_route r;

    assert_true(routes_learn_link(f->me, f->rt, f->peer, ADDR_A, false, false, T0));
    p = entry_of(f, f->peer);
    assert_int_equal(p->source, QPC_PEER_SOURCE_DIRECT);
    assert_int_equal(p->kind, QPC_PEER_CLIENT);
    assert_int_equal(p->address_count, 1);
    assert_string_equal(p->addresses[0], ADDR_A);
    r = route_of(f, f->peer);
    assert_int_equal(r.via, QPC_ROUTE_VIA_DIRECT);
    assert_int_equal(r.hops, 1);
    assert_int_equal(r.source, QPC_ROUTE_SRC_DIRECT);
    assert_string_equal(r.next_hop, ADDR_A);
    assert_int_equal(r.last_seen_ms, T0);
}

static void test_routes_accepted_link_stores_no_address(void **state)
{
    struct fix *f = *state;
    struct qpc_route r;

    /* The remote port of a connection we accepted is not the peer's listening port. */
    assert_true(routes_learn_link(f->me, f->rt, f->peer, ADDR_A, false, true, T0));
    assert_int_equal(entry_of(f, f->peer)->address_count, 0);
    assert_int_equal(entry_of(f, f->peer)->source, QPC_PEER_SOURCE_DIRECT);
    r = route_of(f, f->peer);
    assert_int_equal(r.via, QPC_ROUTE_VIA_DIRECT);
    assert_string_equal(r.next_hop, ADDR_A);
}

static void test_routes_relayed_link_routes_through_relay_in_two_hops(void **state)
{
    struct fix *f = *state;
    struct qpc_route r;

    assert_true(routes_learn_link(f->me, f->rt, f->peer, SERVER, true, false, T0));
    assert_int_equal(entry_of(f, f->peer)->source, QPC_PEER_SOURCE_RELAY);
    assert_int_equal(entry_of(f, f->peer)->address_count, 0);
    r = route_of(f, f->peer);
    assert_int_equal(r.via, QPC_ROUTE_VIA_RELAY);
    assert_int_equal(r.hops, 2);
    assert_int_equal(r.source, QPC_ROUTE_SRC_DIRECT);
    assert_string_equal(r.next_hop, SERVER);
}

static void test_routes_server_address_must_be_numeric(void **state)
{
    assert_true(routes_address_usable(ADDR_A, QPC_PEER_SOURCE_SERVER));
    assert_true(routes_address_usable("[fd00::2]:7000", QPC_PEER_SOURCE_SERVER));
    /* A name from a server would have us send DNS queries the server chose. */
    assert_false(routes_address_usable("peer.example.org:7000", QPC_PEER_SOURCE_SERVER));
    /* The user may type names. */
    assert_true(routes_address_usable("peer.example.org:7000", QPC_PEER_SOURCE_MANUAL));
    /* Not host:port at all, from anyone. */
    assert_false(routes_address_usable("10.0.0.2", QPC_PEER_SOURCE_MANUAL));
    assert_false(routes_address_usable("10.0.0.2:0", QPC_PEER_SOURCE_SERVER));
    assert_false(routes_address_usable("a b:7000", QPC_PEER_SOURCE_MANUAL));
}

static void test_routes_server_word_is_a_server_route(void **state)
{
    struct fix *f = *state;
    struct qpc_route r;

    assert_true(routes_learn_told(f->me, f->rt, f->peer, ADDR_A, QPC_PEER_SOURCE_SERVER, T0));
    assert_int_equal(entry_of(f, f->peer)->source, QPC_PEER_SOURCE_SERVER);
    assert_string_equal(entry_of(f, f->peer)->addresses[0], ADDR_A);
    r = route_of(f, f->peer);
    assert_int_equal(r.source, QPC_ROUTE_SRC_SERVER);
    assert_int_equal(r.via, QPC_ROUTE_VIA_DIRECT);
    assert_int_equal(r.hops, 1);
}

static void test_routes_typed_address_is_a_manual_route(void **state)
{
    struct fix *f = *state;

    assert_true(routes_learn_told(f->me, f->rt, f->peer, ADDR_A, QPC_PEER_SOURCE_MANUAL, T0));
    assert_int_equal(entry_of(f, f->peer)->source, QPC_PEER_SOURCE_MANUAL);
    assert_int_equal(route_of(f, f->peer).source, QPC_ROUTE_SRC_MANUAL);
}

static void test_routes_mdns_claim_adds_unknown_peer(void **state)
{
    struct fix *f = *state;
    struct qpc_route r;

    assert_true(routes_learn_mdns(f->me, f->rt, f->peer, ADDR_A, T0));
    assert_int_equal(entry_of(f, f->peer)->source, QPC_PEER_SOURCE_MDNS);
    assert_string_equal(entry_of(f, f->peer)->addresses[0], ADDR_A);
    r = route_of(f, f->peer);
    assert_int_equal(r.source, QPC_ROUTE_SRC_MDNS);
    assert_int_equal(r.via, QPC_ROUTE_VIA_DIRECT);
    assert_string_equal(r.next_hop, ADDR_A);
}

static void test_routes_mdns_claim_moves_a_peer_known_only_from_mdns(void **state)
{
    struct fix *f = *state;

    assert_true(routes_learn_mdns(f->me, f->rt, f->peer, ADDR_A, T0));
    assert_true(routes_learn_mdns(f->me, f->rt, f->peer, ADDR_B, T0 + 1));
    assert_string_equal(entry_of(f, f->peer)->addresses[0], ADDR_B);
    assert_string_equal(route_of(f, f->peer).next_hop, ADDR_B);
}

static void test_routes_mdns_claim_cannot_displace_handshake_knowledge(void **state)
{
    struct fix *f = *state;
    const struct qpc_peer *p;
    struct qpc_route r;

    routes_learn_link(f->me, f->rt, f->peer, ADDR_A, false, false, T0);
    assert_false(routes_learn_mdns(f->me, f->rt, f->peer, ADDR_B, T0 + 1));
    p = entry_of(f, f->peer);
    assert_int_equal(p->source, QPC_PEER_SOURCE_DIRECT);
    assert_int_equal(p->address_count, 1);
    assert_string_equal(p->addresses[0], ADDR_A);
    r = route_of(f, f->peer);
    assert_int_equal(r.source, QPC_ROUTE_SRC_DIRECT);
    assert_string_equal(r.next_hop, ADDR_A);
}

static void test_routes_mdns_claim_cannot_displace_server_or_typed_knowledge(void **state)
{
    struct fix *f = *state;

    routes_learn_told(f->me, f->rt, f->peer, ADDR_A, QPC_PEER_SOURCE_SERVER, T0);
    routes_learn_told(f->me, f->rt, f->other, ADDR_A, QPC_PEER_SOURCE_MANUAL, T0);
    assert_false(routes_learn_mdns(f->me, f->rt, f->peer, ADDR_B, T0 + 1));
    assert_false(routes_learn_mdns(f->me, f->rt, f->other, ADDR_B, T0 + 1));
    assert_int_equal(entry_of(f, f->peer)->address_count, 1);
    assert_int_equal(entry_of(f, f->other)->address_count, 1);
    assert_int_equal(route_of(f, f->peer).source, QPC_ROUTE_SRC_SERVER);
    assert_string_equal(route_of(f, f->peer).next_hop, ADDR_A);
    assert_int_equal(route_of(f, f->other).source, QPC_ROUTE_SRC_MANUAL);
}

static void test_routes_mdns_claims_alone_cannot_crowd_the_directory(void **state)
{
    struct fix *f = *state;
    uint8_t key[QPC_KEY_LEN];

    for (int i = 0; i < ROUTES_MDNS_ONLY_MAX; i++) {
        randombytes_buf(key, sizeof(key));
        assert_true(routes_learn_mdns(f->me, f->rt, key, ADDR_A, T0));
    }
    assert_int_equal(qpc_identity_peer_count(f->me), ROUTES_MDNS_ONLY_MAX);
    randombytes_buf(key, sizeof(key));
    assert_false(routes_learn_mdns(f->me, f->rt, key, ADDR_A, T0));
    assert_null(qpc_identity_peer_get(f->me, key));
    assert_int_equal(qpc_identity_peer_count(f->me), ROUTES_MDNS_ONLY_MAX);
    /* Peers learned otherwise still get in. */
    assert_true(routes_learn_told(f->me, f->rt, f->peer, ADDR_A, QPC_PEER_SOURCE_MANUAL, T0));
}

static void test_routes_envelope_teaches_route_through_its_neighbour(void **state)
{
    struct fix *f = *state;
    uint8_t via[QPC_KEY_LEN];
    struct qpc_route r;

    routes_learn_envelope(f->me, f->rt, f->peer, f->other, ADDR_B, T0);
    r = route_of(f, f->peer);
    assert_int_equal(r.via, QPC_ROUTE_VIA_PEER);
    assert_memory_equal(r.via_peer, f->other, QPC_KEY_LEN);
    assert_int_equal(r.hops, QPC_ROUTE_HOPS_UNKNOWN);   /* hop_count is no metric */
    assert_int_equal(r.source, QPC_ROUTE_SRC_ENVELOPE);
    assert_string_equal(r.next_hop, ADDR_B);
    assert_true(routes_next_peer(f->rt, f->peer, via));
    assert_memory_equal(via, f->other, QPC_KEY_LEN);
    /* The envelope taught nothing for the directory. */
    assert_null(qpc_identity_peer_get(f->me, f->peer));
}

static void test_routes_envelope_route_does_not_displace_direct_link(void **state)
{
    struct fix *f = *state;
    uint8_t via[QPC_KEY_LEN];

    routes_learn_link(f->me, f->rt, f->peer, ADDR_A, false, false, T0);
    routes_learn_envelope(f->me, f->rt, f->peer, f->other, ADDR_B, T0 + 1);
    assert_int_equal(route_of(f, f->peer).via, QPC_ROUTE_VIA_DIRECT);
    assert_false(routes_next_peer(f->rt, f->peer, via));
}

static void test_routes_next_peer_only_for_routes_through_a_peer(void **state)
{
    struct fix *f = *state;
    uint8_t via[QPC_KEY_LEN];

    assert_false(routes_next_peer(f->rt, f->peer, via));            /* no route */
    routes_learn_told(f->me, f->rt, f->peer, ADDR_A, QPC_PEER_SOURCE_SERVER, T0);
    assert_false(routes_next_peer(f->rt, f->peer, via));            /* direct */
    routes_learn_link(f->me, f->rt, f->other, SERVER, true, false, T0);
    assert_false(routes_next_peer(f->rt, f->other, via));           /* relayed */
}

static void test_routes_never_learn_a_route_to_myself(void **state)
{
    struct fix *f = *state;
    const uint8_t *me = qpc_identity_public_key(f->me);

    routes_offer(f->rt, f->me, me, QPC_ROUTE_VIA_DIRECT, NULL, ADDR_A, 1, QPC_ROUTE_SRC_MANUAL, T0);
    assert_false(routes_learn_told(f->me, f->rt, me, ADDR_A, QPC_PEER_SOURCE_SERVER, T0));
    assert_false(routes_learn_mdns(f->me, f->rt, me, ADDR_A, T0));
    routes_learn_envelope(f->me, f->rt, me, f->other, ADDR_B, T0);
    assert_int_equal(qpc_route_count(f->rt), 0);
    assert_int_equal(qpc_identity_peer_count(f->me), 0);
}

static void test_routes_carry_the_directory_name(void **state)
{
    struct fix *f = *state;

    assert_int_equal(qpc_identity_peer_upsert(f->me, f->peer, "bob", NULL, T0, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    routes_learn_envelope(f->me, f->rt, f->peer, f->other, ADDR_B, T0);
    assert_string_equal(route_of(f, f->peer).name, "bob");
}

/* A signed announce of a fresh origin (its key in *origin), passed on hops times. */
static struct qpc_announce announce_of(uint8_t origin[QPC_KEY_LEN], uint32_t seqno, uint32_t hops)
{
    uint8_t sk[QPC_SECRET_KEY_LEN];
    struct qpc_announce a;
    const char *addrs[] = { ADDR_A };

    crypto_sign_keypair(origin, sk);
    assert_int_equal(qpc_announce_create(&a, sk, seqno, T0, 30, 8, addrs, 1, NULL), 0);
    for (uint32_t i = 0; i < hops; i++)
        assert_int_equal(qpc_announce_forward(&a), 0);
    sodium_memzero(sk, sizeof(sk));
    return a;
}

static void test_routes_announce_through_a_neighbour(void **state)
{
    struct fix *f = *state;
    uint8_t origin[QPC_KEY_LEN], via[QPC_KEY_LEN];
    struct qpc_announce a = announce_of(origin, 5, 2);
    struct qpc_route r;
    struct qpc_route_fd fd;

    assert_true(routes_learn_announce(f->rt, f->me, &a, f->other, ADDR_B, false, T0));
    r = route_of(f, origin);
    assert_int_equal(r.via, QPC_ROUTE_VIA_PEER);
    assert_memory_equal(r.via_peer, f->other, QPC_KEY_LEN);
    assert_int_equal(r.hops, 3);   /* two hops to the neighbour, one more to us */
    assert_int_equal(r.source, QPC_ROUTE_SRC_ANNOUNCE);
    assert_true(r.has_seqno);
    assert_int_equal(r.seqno, 5);
    assert_int_equal(r.hold_ms, routes_hold_ms(30));
    assert_true(routes_next_peer(f->rt, origin, via));
    assert_memory_equal(via, f->other, QPC_KEY_LEN);
    assert_int_equal(qpc_route_fd_get(f->rt, origin, &fd), 0);
    assert_int_equal(fd.metric, 3);
    /* Nothing goes into the directory: the route table is where such peers are found. */
    assert_null(qpc_identity_peer_get(f->me, origin));
}

static void test_routes_announce_from_the_origin_refreshes_its_link(void **state)
{
    struct fix *f = *state;
    uint8_t origin[QPC_KEY_LEN];
    struct qpc_announce a = announce_of(origin, 9, 0);
    struct qpc_route r;

    assert_true(routes_learn_link(f->me, f->rt, origin, ADDR_A, false, false, T0));
    assert_true(routes_learn_announce(f->rt, f->me, &a, origin, ADDR_A, false, T0 + 1000));
    r = route_of(f, origin);
    assert_int_equal(r.via, QPC_ROUTE_VIA_DIRECT);
    assert_int_equal(r.hops, 1);
    assert_int_equal(r.source, QPC_ROUTE_SRC_DIRECT);
    assert_int_equal(r.last_seen_ms, T0 + 1000);
    assert_int_equal(r.seqno, 9);
}

static void test_routes_hop_count_reset_does_not_move_an_announced_route(void **state)
{
    struct fix *f = *state;
    uint8_t origin[QPC_KEY_LEN], liar[QPC_KEY_LEN], via[QPC_KEY_LEN];
    struct qpc_announce a = announce_of(origin, 5, 1);

    randombytes_buf(liar, sizeof(liar));
    assert_true(routes_learn_announce(f->rt, f->me, &a, f->other, ADDR_B, false, T0));
    /* The liar forwards the origin's envelope claiming hop_count 0. */
    routes_learn_envelope(f->me, f->rt, origin, liar, ADDR_A, T0 + 1);
    assert_true(routes_next_peer(f->rt, origin, via));
    assert_memory_equal(via, f->other, QPC_KEY_LEN);
    assert_int_equal(route_of(f, origin).hops, 2);
}

static void test_routes_link_gone_retracts_routes_through_it(void **state)
{
    struct fix *f = *state;
    uint8_t origin[QPC_KEY_LEN];
    struct qpc_announce a = announce_of(origin, 5, 1);

    assert_true(routes_learn_link(f->me, f->rt, f->other, ADDR_B, false, false, T0));
    assert_true(routes_learn_announce(f->rt, f->me, &a, f->other, ADDR_B, false, T0));
    assert_int_equal(routes_link_gone(f->rt, f->other, true), 0);   /* another link is up */
    assert_false(route_of(f, origin).retracted);
    assert_int_equal(routes_link_gone(f->rt, f->other, false), 2);
    assert_true(route_of(f, origin).retracted);
    assert_true(route_of(f, f->other).retracted);
    assert_int_equal(qpc_route_count(f->rt), 2);   /* listed still */
}

static void test_routes_resolve_over_the_table(void **state)
{
    struct fix *f = *state;
    uint8_t origin[QPC_KEY_LEN], key[QPC_KEY_LEN];
    struct qpc_announce a = announce_of(origin, 5, 1);
    char hex[QPC_KEY_HEX_LEN], text[32], err[256];

    qpc_key_to_hex(hex, origin);
    snprintf(text, sizeof(text), "%.16s", hex);
    assert_int_equal(routes_resolve(f->me, f->rt, text, key, err, sizeof(err)), QPC_ERR_NOT_FOUND);
    assert_true(routes_learn_announce(f->rt, f->me, &a, f->other, ADDR_B, false, T0));
    assert_int_equal(routes_resolve(f->me, f->rt, text, key, err, sizeof(err)), 0);
    assert_memory_equal(key, origin, QPC_KEY_LEN);
    /* A short prefix of a peer known only from announces: refused, with the reason. */
    snprintf(text, sizeof(text), "%.6s", hex);
    assert_int_equal(routes_resolve(f->me, f->rt, text, key, err, sizeof(err)), QPC_ERR_REFUSED);
    assert_non_null(strstr(err, "16 hex digits"));
    /* The full key resolves whatever the tables hold; the directory still goes first. */
    assert_int_equal(routes_resolve(f->me, f->rt, hex, key, err, sizeof(err)), 0);
    assert_int_equal(routes_resolve_prefix(f->rt, "zz", 1, key), QPC_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes_direct_link_learns_address_and_one_hop_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_accepted_link_stores_no_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_relayed_link_routes_through_relay_in_two_hops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_server_address_must_be_numeric, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_server_word_is_a_server_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_typed_address_is_a_manual_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_mdns_claim_adds_unknown_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_mdns_claim_moves_a_peer_known_only_from_mdns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_mdns_claim_cannot_displace_handshake_knowledge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_mdns_claim_cannot_displace_server_or_typed_knowledge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_mdns_claims_alone_cannot_crowd_the_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_envelope_teaches_route_through_its_neighbour, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_envelope_route_does_not_displace_direct_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_next_peer_only_for_routes_through_a_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_never_learn_a_route_to_myself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_carry_the_directory_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_announce_through_a_neighbour, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_announce_from_the_origin_refreshes_its_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_hop_count_reset_does_not_move_an_announced_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_link_gone_retracts_routes_through_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_resolve_over_the_table, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
