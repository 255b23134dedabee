/*
 * test_client_inbound.c: the shape checks of what the client's server and peers send
 * (src/client/inbound.c): what decodes but is out of shape is refused, what is in shape
 * passes unchanged, and relay datagrams split where the protocol says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "inbound.h"
#include "qpc/envelope.h"

static uint8_t *pack_server(const Qpc__ServerMessage *m, size_t *len)
{
    uint8_t *buf;

    *len = qpc__server_message__get_packed_size(m);
    buf = malloc(*len + 1);
    assert_non_null(buf);
    qpc__server_message__pack(m, buf);
    return buf;
}

static uint8_t *pack_frame(const Qpc__P2pFrame *f, size_t *len)
{
    uint8_t *buf;

    *len = qpc__p2p_frame__get_packed_size(f);
    buf = malloc(*len + 1);
    assert_non_null(buf);
    qpc__p2p_frame__pack(f, buf);
    return buf;
}

/* A punch notice decodes with any key length and list size: only the right ones pass. */
static void test_inbound_punch_notice_needs_a_key_and_short_lists(void **state)
{
    Qpc__ServerMessage m = QPC__SERVER_MESSAGE__INIT;
    Qpc__PunchNotice pn = QPC__PUNCH_NOTICE__INIT;
    Qpc__ServerMessage *got;
    uint8_t key[QPC_KEY_LEN] = { 7 }, *buf;
    char *addrs[INBOUND_ADDRESSES_MAX + 1];
    size_t len;

    (void)state;
    for (size_t i = 0; i <= INBOUND_ADDRESSES_MAX; i++)
        addrs[i] = "192.0.2.1:4433";
    m.body_case = QPC__SERVER_MESSAGE__BODY_PUNCH;
    m.punch = &pn;
    pn.key.data = key;
    pn.key.len = QPC_KEY_LEN;
    pn.addresses = addrs;
    pn.n_addresses = INBOUND_ADDRESSES_MAX;
    buf = pack_server(&m, &len);
    got = inbound_server_message(buf, len);
    assert_non_null(got);
    assert_int_equal(got->punch->n_addresses, INBOUND_ADDRESSES_MAX);
    qpc__server_message__free_unpacked(got, NULL);
    free(buf);

    pn.n_addresses = INBOUND_ADDRESSES_MAX + 1;   /* one too many */
    buf = pack_server(&m, &len);
    got = qpc__server_message__unpack(NULL, len, buf);   /* protobuf-c takes it */
    assert_non_null(got);
    qpc__server_message__free_unpacked(got, NULL);
    assert_null(inbound_server_message(buf, len));        /* the shape check does not */
    free(buf);

    pn.n_addresses = 1;
    pn.key.len = QPC_KEY_LEN - 1;                  /* a key cut short */
    buf = pack_server(&m, &len);
    assert_null(inbound_server_message(buf, len));
    free(buf);

    assert_null(inbound_server_message((const uint8_t *)"\xff\xff\xff", 3));
}

static void test_inbound_peer_info_candidates_are_capped(void **state)
{
    Qpc__ServerMessage m = QPC__SERVER_MESSAGE__INIT;
    Qpc__PeerInfoResponse pi = QPC__PEER_INFO_RESPONSE__INIT;
    char *cands[INBOUND_CANDIDATES_MAX + 1];
    uint8_t *buf;
    size_t len;
    Qpc__ServerMessage *got;

    (void)state;
    for (size_t i = 0; i <= INBOUND_CANDIDATES_MAX; i++)
        cands[i] = "10.0.0.1:1";
    m.body_case = QPC__SERVER_MESSAGE__BODY_PEER_INFO;
    m.peer_info = &pi;
    pi.online = true;
    pi.candidates = cands;
    pi.n_candidates = INBOUND_CANDIDATES_MAX;
    buf = pack_server(&m, &len);
    assert_non_null(got = inbound_server_message(buf, len));
    qpc__server_message__free_unpacked(got, NULL);
    free(buf);
    pi.n_candidates = INBOUND_CANDIDATES_MAX + 1;
    buf = pack_server(&m, &len);
    assert_null(inbound_server_message(buf, len));
    free(buf);
}

static void test_inbound_p2p_frames_of_the_wrong_shape_are_garbage(void **state)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    Qpc__P2pAck ack = QPC__P2P_ACK__INIT;
    Qpc__P2pFrame *got;
    uint8_t id[QPC_ID_LEN] = { 1 }, env[3] = { 1, 2, 3 }, *buf;
    size_t len;

    (void)state;
    f.body_case = QPC__P2P_FRAME__BODY_ACK;
    f.ack = &ack;
    ack.id.data = id;
    ack.id.len = QPC_ID_LEN;
    buf = pack_frame(&f, &len);
    assert_non_null(got = inbound_p2p_frame(buf, len));
    assert_int_equal(got->ack->id.len, QPC_ID_LEN);
    qpc__p2p_frame__free_unpacked(got, NULL);
    free(buf);

    ack.id.len = 5;                                 /* no id is 5 bytes long */
    buf = pack_frame(&f, &len);
    assert_null(inbound_p2p_frame(buf, len));
    free(buf);

    f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;   /* an envelope of 0 bytes */
    f.envelope.data = env;
    f.envelope.len = 0;
    buf = pack_frame(&f, &len);
    assert_null(inbound_p2p_frame(buf, len));
    free(buf);
    f.envelope.len = sizeof(env);
    buf = pack_frame(&f, &len);
    assert_non_null(got = inbound_p2p_frame(buf, len));
    assert_int_equal(got->envelope.len, sizeof(env));
    qpc__p2p_frame__free_unpacked(got, NULL);
    free(buf);

    /* A kind this version does not know (an empty frame): not garbage, just ignored. */
    assert_non_null(got = inbound_p2p_frame(env, 0));
    assert_int_equal(got->body_case, QPC__P2P_FRAME__BODY__NOT_SET);
    qpc__p2p_frame__free_unpacked(got, NULL);
    assert_null(inbound_p2p_frame((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 6));
}

static void test_inbound_relay_datagram_splits_tag_key_packet(void **state)
{
    uint8_t d[1 + QPC_KEY_LEN + 4] = { INBOUND_RELAY_TAG };
    const uint8_t *key, *pkt;
    size_t len;

    (void)state;
    assert_true(inbound_relay_datagram(d, sizeof(d), &key, &pkt, &len));
    assert_ptr_equal(key, d + 1);
    assert_ptr_equal(pkt, d + 1 + QPC_KEY_LEN);
    assert_int_equal(len, 4);
    assert_false(inbound_relay_datagram(d, 1 + QPC_KEY_LEN, &key, &pkt, &len));   /* no packet */
    d[0] = 0x02;
    assert_false(inbound_relay_datagram(d, sizeof(d), &key, &pkt, &len));         /* other tag */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbound_punch_notice_needs_a_key_and_short_lists),
        cmocka_unit_test(test_inbound_peer_info_candidates_are_capped),
        cmocka_unit_test(test_inbound_p2p_frames_of_the_wrong_shape_are_garbage),
        cmocka_unit_test(test_inbound_relay_datagram_splits_tag_key_packet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
