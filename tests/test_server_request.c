/*
 * test_server_request.c: the node's first look at untrusted requests
 * (src/server/request.c): caps on repeated fields refused with a status and a detail
 * before any per-item work, a decode budget that a frame of empty items cannot blow up,
 * federation requests and answers, the per-item checks and the relay header. No sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "qpc/error.h"
#include "request.h"

#define NOW 1700000000000ull

/* Packs m into a malloc'd frame. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *buf;

    *len = protobuf_c_message_get_packed_size(m);
    buf = malloc(*len > 0 ? *len : 1);
    assert_non_null(buf);
    protobuf_c_message_pack(m, buf);
    return buf;
}

/* A BatchEnqueueRequest of n items (each a 32-byte recipient and a 1-byte envelope). */
static uint8_t *batch_frame(size_t n, uint64_t rid, size_t *len)
{
    static uint8_t key[QPC_KEY_LEN], blob[1] = { 'x' };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__BatchEnqueueRequest br = QPC__BATCH_ENQUEUE_REQUEST__INIT;
    Qpc__EnqueueItem *items = calloc(n, sizeof(*items));
    Qpc__EnqueueItem **ptrs = calloc(n, sizeof(*ptrs));
    uint8_t *frame;

    assert_non_null(items);
    assert_non_null(ptrs);
    for (size_t i = 0; i < n; i++) {
        qpc__enqueue_item__init(&items[i]);
        items[i].recipient.data = key;
        items[i].recipient.len = sizeof(key);
        items[i].envelope.data = blob;
        items[i].envelope.len = sizeof(blob);
        ptrs[i] = &items[i];
    }
    br.n_items = n;
    br.items = ptrs;
    req.request_id = rid;
    req.body_case = QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE;
    req.batch_enqueue = &br;
    frame = pack(&req.base, len);
    free(items);
    free(ptrs);
    return frame;
}

static uint8_t *ack_frame(size_t n, uint64_t rid, size_t *len)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__AckRequest ar = QPC__ACK_REQUEST__INIT;
    uint64_t *seqs = calloc(n, sizeof(*seqs));
    uint8_t *frame;

    assert_non_null(seqs);
    for (size_t i = 0; i < n; i++)
        seqs[i] = i + 1;
    ar.n_seqs = n;
    ar.seqs = seqs;
    req.request_id = rid;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ACK;
    req.ack = &ar;
    frame = pack(&req.base, len);
    free(seqs);
    return frame;
}

/* Decodes a client frame; returns true when it passed (and frees the request). */
static bool client_passes(const uint8_t *frame, size_t len, struct request_refusal *why)
{
    struct request_arena a;
    Qpc__ClientRequest *req;

    request_arena_init(&a, len);
    req = request_client_decode(frame, len, &a, why);
    if (req != NULL)
        qpc__client_request__free_unpacked(req, &a.pb.allocator);
    request_arena_clear(&a);
    return req != NULL;
}

static void test_request_batch_above_cap_is_refused_with_status_and_detail(void **state)
{
    struct request_refusal why;
    size_t len;
    uint8_t *frame = batch_frame(REQUEST_BATCH_MAX, 7, &len);

    assert_true(client_passes(frame, len, &why));
    free(frame);
    frame = batch_frame(REQUEST_BATCH_MAX + 1, 8, &len);
    assert_false(client_passes(frame, len, &why));
    assert_int_equal(why.problem, REQUEST_TOO_MANY);
    assert_int_equal(why.status, QPC__STATUS__STATUS_TOO_LARGE);
    assert_int_equal(why.request_id, 8);
    assert_string_equal(why.detail, "batch of 1001 items is above this node's limit of 1000 "
                                    "per request");
    free(frame);
}

static void test_request_ack_above_a_page_of_seqs_is_refused(void **state)
{
    struct request_refusal why;
    size_t len;
    uint8_t *frame = ack_frame(REQUEST_ACK_SEQS_MAX, 3, &len);

    assert_true(client_passes(frame, len, &why));
    free(frame);
    frame = ack_frame(REQUEST_ACK_SEQS_MAX + 1, 4, &len);
    assert_false(client_passes(frame, len, &why));
    assert_int_equal(why.problem, REQUEST_TOO_MANY);
    assert_int_equal(why.status, QPC__STATUS__STATUS_TOO_LARGE);
    assert_int_equal(why.request_id, 4);
    assert_non_null(strstr(why.detail, "10001 seqs"));
    free(frame);
}

static void test_request_frame_of_empty_items_fails_within_the_decode_budget(void **state)
{
    /* ClientRequest{batch_enqueue = 3: {items = 1: (empty) x N}}: 2 bytes per item on the
     * wire, ~90 bytes each once unpacked. 1 MiB of it must not become half a million
     * structs: the arena gives up at about four times the frame. */
    size_t n = 500000, inner = 2 * n, len = 0;
    uint8_t *frame = malloc(inner + 16);
    struct request_arena a;
    struct request_refusal why;

    assert_non_null(frame);
    frame[len++] = 0x1a;   /* field 3, length-delimited */
    for (size_t v = inner; ; v >>= 7) {
        frame[len++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        frame[len++] = 0x0a;
        frame[len++] = 0x00;
    }
    request_arena_init(&a, len);
    assert_null(request_client_decode(frame, len, &a, &why));
    assert_int_equal(why.problem, REQUEST_UNDECODABLE);
    assert_true(a.pb.heap_used <= a.pb.heap_max);
    request_arena_clear(&a);
    free(frame);
}

static void test_request_empty_batch_and_unknown_kind_are_refused(void **state)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__BatchEnqueueRequest br = QPC__BATCH_ENQUEUE_REQUEST__INIT;
    static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0x01 };
    struct request_refusal why;
    uint8_t *frame;
    size_t len;

    req.request_id = 5;
    req.body_case = QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE;
    req.batch_enqueue = &br;
    frame = pack(&req.base, &len);
    assert_false(client_passes(frame, len, &why));
    assert_int_equal(why.problem, REQUEST_EMPTY);
    assert_int_equal(why.request_id, 5);
    free(frame);

    req.body_case = QPC__CLIENT_REQUEST__BODY__NOT_SET;
    frame = pack(&req.base, &len);
    assert_false(client_passes(frame, len, &why));
    assert_int_equal(why.problem, REQUEST_UNKNOWN);
    assert_string_equal(why.detail, "unknown request");
    free(frame);

    assert_false(client_passes(garbage, sizeof(garbage), &why));
    assert_int_equal(why.problem, REQUEST_UNDECODABLE);
    assert_int_equal(why.request_id, 0);
}

static void test_request_federation_caps_on_items_envelopes_and_statuses(void **state)
{
    Qpc__FederationRequest req = QPC__FEDERATION_REQUEST__INIT;
    Qpc__RelayEnqueueRequest re = QPC__RELAY_ENQUEUE_REQUEST__INIT;
    Qpc__RelayBroadcastRequest rb = QPC__RELAY_BROADCAST_REQUEST__INIT;
    Qpc__FederationResponse fr = QPC__FEDERATION_RESPONSE__INIT;
    static uint8_t key[QPC_KEY_LEN], blob[1] = { 'x' };
    Qpc__EnqueueItem item = QPC__ENQUEUE_ITEM__INIT, *ptrs[REQUEST_BATCH_MAX + 1];
    ProtobufCBinaryData envs[REQUEST_BROADCASTS_MAX + 1] = { 0 };
    Qpc__Status statuses[REQUEST_BATCH_MAX + 1] = { 0 };
    struct request_refusal why;
    struct request_arena a;
    void *out;
    uint8_t *frame;
    size_t len;

    item.recipient.data = key;
    item.recipient.len = sizeof(key);
    item.envelope.data = blob;
    item.envelope.len = sizeof(blob);
    for (size_t i = 0; i <= REQUEST_BATCH_MAX; i++)
        ptrs[i] = &item;
    req.body_case = QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE;
    req.relay_enqueue = &re;
    re.items = ptrs;
    for (size_t n = REQUEST_BATCH_MAX; n <= REQUEST_BATCH_MAX + 1; n++) {
        re.n_items = n;
        frame = pack(&req.base, &len);
        request_arena_init(&a, len);
        out = request_federation_decode(frame, len, &a, &why);
        if (n == REQUEST_BATCH_MAX) {
            assert_non_null(out);
            qpc__federation_request__free_unpacked(out, &a.pb.allocator);
        } else {
            assert_null(out);
            assert_int_equal(why.problem, REQUEST_TOO_MANY);
        }
        request_arena_clear(&a);
        free(frame);
    }
    req.body_case = QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST;
    req.relay_broadcast = &rb;
    rb.envelopes = envs;
    rb.n_envelopes = REQUEST_BROADCASTS_MAX + 1;
    frame = pack(&req.base, &len);
    request_arena_init(&a, len);
    assert_null(request_federation_decode(frame, len, &a, &why));
    assert_int_equal(why.problem, REQUEST_TOO_MANY);
    request_arena_clear(&a);
    free(frame);

    fr.statuses = statuses;
    fr.n_statuses = REQUEST_BATCH_MAX + 1;
    frame = pack(&fr.base, &len);
    request_arena_init(&a, len);
    assert_null(request_federation_response_decode(frame, len, &a, &why));
    assert_int_equal(why.problem, REQUEST_TOO_MANY);
    request_arena_clear(&a);
    free(frame);

    assert_int_equal(request_fed_outcome_of(QPC__STATUS__STATUS_OK), REQUEST_FED_DELIVERED);
    assert_int_equal(request_fed_outcome_of(QPC__STATUS__STATUS_QUEUE_FULL), REQUEST_FED_RETRY);
    assert_int_equal(request_fed_outcome_of(QPC__STATUS__STATUS_FORBIDDEN), REQUEST_FED_REFUSED);
    assert_int_equal(request_fed_outcome_of(9999), REQUEST_FED_REFUSED);
}

static void test_request_item_checks_sender_size_and_ttl(void **state)
{
    uint8_t pk[32], sk[64], other_pk[32], other_sk[64], rcpt[32] = { 9 };
    struct qpc_envelope env = { 0 }, out;
    Qpc__EnqueueItem item = QPC__ENQUEUE_ITEM__INIT;
    uint8_t *blob = NULL;
    size_t len = 0;

    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(other_pk, other_sk);
    assert_int_equal(qpc_envelope_init(&env, sk, rcpt, NULL, NOW, 3600, 8,
                                       (const uint8_t *)"hello", 5), 0);
    assert_int_equal(qpc_envelope_encode(&env, &blob, &len), 0);
    qpc_envelope_clear(&env);
    item.recipient.data = rcpt;
    item.recipient.len = sizeof(rcpt);
    item.envelope.data = blob;
    item.envelope.len = len;

    assert_int_equal(request_check_item(&item, pk, NOW, 65536, 86400, &out), -1);
    assert_memory_equal(out.sender, pk, 32);
    qpc_envelope_clear(&out);
    assert_int_equal(request_check_item(&item, NULL, NOW, 65536, 86400, &out), -1);
    qpc_envelope_clear(&out);
    assert_int_equal(request_check_item(&item, other_pk, NOW, 65536, 86400, &out),
                     QPC__STATUS__STATUS_FORBIDDEN);
    assert_int_equal(request_check_item(&item, pk, NOW, len - 1, 86400, &out),
                     QPC__STATUS__STATUS_TOO_LARGE);
    assert_int_equal(request_check_item(&item, pk, NOW, 65536, 60, &out),
                     QPC__STATUS__STATUS_EXPIRED);
    assert_int_equal(request_check_item(&item, pk, NOW + 3600 * 1000, 65536, 86400, &out),
                     QPC__STATUS__STATUS_EXPIRED);
    assert_int_equal(request_check_item(&item, pk, NOW - QPC_CLOCK_SKEW_MS - 1, 65536, 86400,
                                        &out), QPC__STATUS__STATUS_INVALID);
    item.recipient.data = other_pk;
    assert_int_equal(request_check_item(&item, pk, NOW, 65536, 86400, &out),
                     QPC__STATUS__STATUS_INVALID);
    assert_int_equal(request_check_item(NULL, pk, NOW, 65536, 86400, &out),
                     QPC__STATUS__STATUS_INVALID);
    /* A broadcast check refuses a direct envelope. */
    assert_int_equal(request_check_broadcast(blob, len, 65536, &out), QPC__STATUS__STATUS_INVALID);
    assert_int_equal(request_check_broadcast(blob, 0, 65536, &out), QPC__STATUS__STATUS_INVALID);
    free(blob);
}

static void test_request_relay_header_needs_tag_key_and_a_packet(void **state)
{
    uint8_t d[40] = { REQUEST_RELAY_TAG };

    assert_ptr_equal(request_relay_destination(d, 34, 1350), d + 1);
    assert_null(request_relay_destination(d, 33, 1350));   /* no packet */
    assert_null(request_relay_destination(d, 40, 39));     /* above the limit */
    d[0] = 0x02;
    assert_null(request_relay_destination(d, 34, 1350));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_batch_above_cap_is_refused_with_status_and_detail),
        cmocka_unit_test(test_request_ack_above_a_page_of_seqs_is_refused),
        cmocka_unit_test(test_request_frame_of_empty_items_fails_within_the_decode_budget),
        cmocka_unit_test(test_request_empty_batch_and_unknown_kind_are_refused),
        cmocka_unit_test(test_request_federation_caps_on_items_envelopes_and_statuses),
        cmocka_unit_test(test_request_item_checks_sender_size_and_ttl),
        cmocka_unit_test(test_request_relay_header_needs_tag_key_and_a_packet),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
