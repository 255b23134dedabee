/*
 * test_quic_message.c: one protobuf message per frame (qpc_quic_conn_send_message,
 * qpc_quic_pack_message) on loopback: the peer gets exactly the packed bytes; refusals
 * are those of qpc_quic_conn_send_frame and queue nothing; back-pressure hands the
 * message back to the caller, and after on_writable every message arrives once, in
 * order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "qpc/proto.h"
#include "quic_harness.h"

#define MAX_FRAMES 4

struct got {
    size_t n;
    uint8_t *data[MAX_FRAMES];
    size_t len[MAX_FRAMES];
};

struct pair {
    struct ev_loop *loop;
    struct side srv, cli;
    struct got got;                      /* frames the server received */
    size_t want;                         /* frames await_frames waits for */
};

static void keep_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid, const uint8_t *d,
                       size_t n)
{
    struct got *g = s->ctx;

    assert_true(g->n < MAX_FRAMES);
    g->data[g->n] = malloc(n > 0 ? n : 1);
    assert_non_null(g->data[g->n]);
    memcpy(g->data[g->n], d, n);
    g->len[g->n] = n;
    g->n++;
}

static void pair_open(struct pair *p, size_t max_frame, size_t stream_buffer)
{
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;

    memset(p, 0, sizeof(*p));
    p->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(p->loop);
    side_keys(&p->srv);
    side_keys(&p->cli);
    side_config(&cfg, &p->srv, true);
    cfg.max_frame = max_frame;
    assert_int_equal(qpc_quic_endpoint_new(&p->srv.ep, p->loop, &cfg), 0);
    side_config(&cfg, &p->cli, false);
    cfg.max_frame = max_frame;
    cfg.stream_buffer = stream_buffer;
    assert_int_equal(qpc_quic_endpoint_new(&p->cli.ep, p->loop, &cfg), 0);
    p->srv.ctx = &p->got;
    p->srv.on_frame = keep_frame;
    side_addr(&p->srv, &ss, &len);
    assert_int_equal(qpc_quic_connect(p->cli.ep, (struct sockaddr *)&ss, len, QPC_ALPN_P2P,
                                      p->srv.pk, &p->cli, NULL), 0);
}

static bool both_connected(void *arg)
{
    struct pair *p = arg;

    return p->cli.connected > 0 && p->srv.connected > 0 && p->cli.conn != NULL;
}

static bool got_frames(void *arg)
{
    struct pair *p = arg;

    return p->got.n >= p->want;
}

static void pair_close(struct pair *p)
{
    for (size_t i = 0; i < p->got.n; i++)
        free(p->got.data[i]);
    qpc_quic_endpoint_free(p->cli.ep);
    qpc_quic_endpoint_free(p->srv.ep);
    ev_loop_destroy(p->loop);
}

/* Turns the loop until the server holds at least frames frames. */
static void await_frames(struct pair *p, size_t frames)
{
    p->want = frames;
    assert_true(run_until(p->loop, got_frames, p, 10));
}

static void envelope_frame(Qpc__P2pFrame *f, uint8_t *buf, size_t len, uint8_t seed)
{
    qpc__p2p_frame__init(f);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7);
    f->body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
    f->envelope.data = buf;
    f->envelope.len = len;
}

/* The frame the server got is msg's packing, byte for byte. */
static void assert_frame_is(const struct got *g, size_t i, const ProtobufCMessage *msg)
{
    uint8_t *packed;
    size_t len;

    assert_int_equal(qpc_quic_pack_message(msg, &packed, &len), 0);
    assert_int_equal(len, protobuf_c_message_get_packed_size(msg));
    assert_int_equal(g->len[i], len);
    assert_memory_equal(g->data[i], packed, len);
    free(packed);
}

static void test_quic_message_arrives_as_one_frame_of_its_packed_bytes(void **state)
{
    struct pair p;
    Qpc__P2pFrame env, ack_frame, empty = QPC__P2P_FRAME__INIT;
    Qpc__P2pAck ack = QPC__P2P_ACK__INIT;
    uint8_t body[300], id[32];
    Qpc__P2pFrame *back;
    int64_t sid;

    pair_open(&p, 0, 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    assert_int_equal(qpc_quic_conn_open_stream(p.cli.conn, &sid), 0);
    envelope_frame(&env, body, sizeof(body), 3);
    memset(id, 0xa5, sizeof(id));
    ack.id.data = id;
    ack.id.len = sizeof(id);
    ack.status = QPC__STATUS__STATUS_QUEUE_FULL;
    qpc__p2p_frame__init(&ack_frame);
    ack_frame.body_case = QPC__P2P_FRAME__BODY_ACK;
    ack_frame.ack = &ack;
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid, &env.base), 0);
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid, &ack_frame.base), 0);
    /* A message of defaults packs to nothing: an empty frame, still a frame. */
    assert_int_equal(protobuf_c_message_get_packed_size(&empty.base), 0);
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid, &empty.base), 0);
    await_frames(&p, 3);
    assert_int_equal(p.got.n, 3);
    assert_frame_is(&p.got, 0, &env.base);
    assert_frame_is(&p.got, 1, &ack_frame.base);
    assert_frame_is(&p.got, 2, &empty.base);
    back = qpc__p2p_frame__unpack(NULL, p.got.len[1], p.got.data[1]);
    assert_non_null(back);
    assert_int_equal(back->body_case, QPC__P2P_FRAME__BODY_ACK);
    assert_int_equal(back->ack->status, QPC__STATUS__STATUS_QUEUE_FULL);
    assert_int_equal(back->ack->id.len, sizeof(id));
    assert_memory_equal(back->ack->id.data, id, sizeof(id));
    qpc__p2p_frame__free_unpacked(back, NULL);
    pair_close(&p);
    (void)state;
}

static void test_quic_message_refused_like_send_frame_and_nothing_queued(void **state)
{
    struct pair p;
    Qpc__P2pFrame big, small;
    uint8_t big_body[300], small_body[20];
    int64_t sid;

    pair_open(&p, 256, 0);   /* frames above 256 bytes are refused */
    assert_true(run_until(p.loop, both_connected, &p, 10));
    assert_int_equal(qpc_quic_conn_open_stream(p.cli.conn, &sid), 0);
    envelope_frame(&big, big_body, sizeof(big_body), 1);
    envelope_frame(&small, small_body, sizeof(small_body), 2);
    assert_true(protobuf_c_message_get_packed_size(&big.base) > 256);
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid, &big.base), QPC_ERR_TOO_LARGE);
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid + 4, &small.base),
                     QPC_ERR_NOT_FOUND);   /* the next stream id, never opened */
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid, &small.base), 0);
    assert_int_equal(qpc_quic_conn_end_stream(p.cli.conn, sid), 0);
    assert_int_equal(qpc_quic_conn_send_message(p.cli.conn, sid, &small.base), QPC_ERR_CLOSED);
    await_frames(&p, 1);
    run_for(p.loop, 0.2);   /* anything queued by mistake would arrive meanwhile */
    assert_int_equal(p.got.n, 1);
    assert_frame_is(&p.got, 0, &small.base);
    assert_int_equal(qpc_quic_pack_message(NULL, &(uint8_t *){ NULL }, &(size_t){ 0 }),
                     QPC_ERR_INVALID);
    pair_close(&p);
    (void)state;
}

/* ---- back-pressure ------------------------------------------------------------------- */

#define BP_COUNT 300
#define BP_LEN 1000

struct bp {
    struct qpc_quic_conn *conn;
    int64_t sid;
    uint32_t sent, received;
    int again, corrupt;
};

static void bp_pump(struct bp *b)
{
    uint8_t body[BP_LEN];
    Qpc__P2pFrame f;
    int rv;

    while (b->sent < BP_COUNT) {
        envelope_frame(&f, body, sizeof(body), (uint8_t)b->sent);
        body[0] = (uint8_t)(b->sent >> 8);
        body[1] = (uint8_t)b->sent;
        rv = qpc_quic_conn_send_message(b->conn, b->sid, &f.base);
        if (rv == QPC_ERR_AGAIN) {
            b->again++;
            return;   /* the same message goes again from on_writable */
        }
        assert_int_equal(rv, 0);
        b->sent++;
    }
}

static void bp_on_writable(struct side *s, struct qpc_quic_conn *c, int64_t sid)
{
    bp_pump(s->ctx);
}

static void bp_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid, const uint8_t *d,
                        size_t n)
{
    struct bp *b = s->ctx;
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, n, d);
    uint32_t seq;

    if (f == NULL || f->body_case != QPC__P2P_FRAME__BODY_ENVELOPE || f->envelope.len != BP_LEN) {
        b->corrupt++;
    } else {
        seq = (uint32_t)f->envelope.data[0] << 8 | f->envelope.data[1];
        if (seq != b->received || f->envelope.data[2] != (uint8_t)((uint8_t)seq + 14))
            b->corrupt++;
    }
    qpc__p2p_frame__free_unpacked(f, NULL);
    b->received++;
}

static bool bp_done(void *arg)
{
    return ((struct bp *)arg)->received == BP_COUNT;
}

static void test_quic_message_back_pressure_then_each_arrives_once_in_order(void **state)
{
    struct pair p;
    struct bp b = { 0 };

    pair_open(&p, 0, 8192);   /* eight messages fill the client's stream buffer */
    assert_true(run_until(p.loop, both_connected, &p, 10));
    p.srv.ctx = &b;
    p.srv.on_frame = bp_on_frame;
    p.cli.ctx = &b;
    p.cli.on_writable = bp_on_writable;
    b.conn = p.cli.conn;
    assert_int_equal(qpc_quic_conn_open_stream(b.conn, &b.sid), 0);
    bp_pump(&b);
    assert_int_equal(b.again, 1);   /* refused within one turn: nothing acknowledged yet */
    assert_true(b.sent > 0 && b.sent < BP_COUNT);
    assert_true(run_until(p.loop, bp_done, &b, 30));
    assert_int_equal(b.sent, BP_COUNT);
    assert_int_equal(b.corrupt, 0);
    assert_true(b.again > 1);
    run_for(p.loop, 0.1);
    assert_int_equal(b.received, BP_COUNT);   /* no message twice */
    pair_close(&p);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quic_message_arrives_as_one_frame_of_its_packed_bytes),
        cmocka_unit_test(test_quic_message_refused_like_send_frame_and_nothing_queued),
        cmocka_unit_test(test_quic_message_back_pressure_then_each_arrives_once_in_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
