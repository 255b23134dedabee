/*
 * test_quic.c: the QUIC endpoint on loopback: handshakes and ALPN dispatch, identity
 * checks, ordered frames, a large frame, many connections, garbage on the socket, close
 * codes and reasons, datagrams, and a peer that vanishes. Client and server endpoints
 * share one libev loop in this process (the vanishing peer is a forked child).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "qpc/identity.h"
#include "qpc/wire.h"
#include "quic_harness.h"
#include "quic_initial.h"
#include "quic_internal.h"   /* qpc_stream_queue_raw: a peer that sends half a frame */

#define QPC_WIRE_FRAME_MAX_TEST (QPC_WIRE_FRAME_MAX_DEFAULT + 1)

struct pair {
    struct ev_loop *loop;
    struct side srv, cli;
};

static void pair_open_retry(struct pair *p, size_t max_frame, int retry_threshold)
{
    struct qpc_quic_config cfg;

    memset(p, 0, sizeof(*p));
    p->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(p->loop);
    side_keys(&p->srv);
    side_keys(&p->cli);
    side_config(&cfg, &p->srv, true);
    cfg.max_frame = max_frame;
    cfg.retry_threshold = retry_threshold;
    assert_int_equal(qpc_quic_endpoint_new(&p->srv.ep, p->loop, &cfg), 0);
    side_config(&cfg, &p->cli, false);
    cfg.max_frame = max_frame;
    assert_int_equal(qpc_quic_endpoint_new(&p->cli.ep, p->loop, &cfg), 0);
}

static void pair_open(struct pair *p, size_t max_frame)
{
    pair_open_retry(p, max_frame, 0);
}

static void pair_close(struct pair *p)
{
    qpc_quic_endpoint_free(p->cli.ep);
    qpc_quic_endpoint_free(p->srv.ep);
    ev_loop_destroy(p->loop);
}

static int pair_connect(struct pair *p, const char *alpn, const uint8_t *expected)
{
    struct sockaddr_storage ss;
    socklen_t len;

    side_addr(&p->srv, &ss, &len);
    return qpc_quic_connect(p->cli.ep, (struct sockaddr *)&ss, len, alpn, expected, &p->cli,
                            NULL);
}

static bool both_connected(void *arg)
{
    struct pair *p = arg;

    return p->cli.connected > 0 && p->srv.connected > 0;
}

static bool both_closed(void *arg)
{
    struct pair *p = arg;

    return p->cli.closed > 0 && p->srv.closed > 0;
}

static void handshake_on(const char *alpn)
{
    struct pair p;

    pair_open(&p, 0);
    assert_int_equal(pair_connect(&p, alpn, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    assert_string_equal(p.cli.alpn, alpn);
    assert_string_equal(p.srv.alpn, alpn);
    /* Each side learned the other's identity key from its certificate. */
    assert_true(p.cli.has_peer_key);
    assert_memory_equal(p.cli.peer_key, p.srv.pk, 32);
    assert_true(p.srv.has_peer_key);
    assert_memory_equal(p.srv.peer_key, p.cli.pk, 32);
    assert_string_equal(qpc_quic_conn_alpn(p.srv.conn), alpn);
    pair_close(&p);
}

static void test_quic_handshake_on_client_alpn(void **state)
{
    handshake_on(QPC_ALPN_CLIENT);
}

static void test_quic_handshake_on_p2p_alpn(void **state)
{
    handshake_on(QPC_ALPN_P2P);
}

static void test_quic_refuses_unknown_alpn(void **state)
{
    struct pair p;

    pair_open(&p, 0);
    assert_int_equal(pair_connect(&p, "capnp", NULL), 0);
    assert_true(run_until(p.loop, both_closed, &p, 10));
    assert_int_equal(p.cli.connected, 0);
    assert_int_equal(p.srv.connected, 0);
    assert_int_equal(p.cli.last_err, QPC_ERR_REFUSED);
    pair_close(&p);
}

static void test_quic_refuses_wrong_peer_key(void **state)
{
    struct pair p;
    uint8_t other_pk[32], other_sk[64];

    pair_open(&p, 0);
    crypto_sign_keypair(other_pk, other_sk);
    assert_int_equal(pair_connect(&p, QPC_ALPN_P2P, other_pk), 0);
    assert_true(run_until(p.loop, both_closed, &p, 10));
    assert_int_equal(p.cli.connected, 0);
    assert_int_equal(p.srv.connected, 0);
    assert_int_equal(p.cli.last_err, QPC_ERR_REFUSED);
    assert_int_equal(p.srv.last_err, QPC_ERR_TLS);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 0);
    pair_close(&p);
}

static void test_quic_tofu_hook_can_refuse_server_key(void **state)
{
    struct pair p;

    pair_open(&p, 0);
    p.cli.refuse = 1;   /* the application does not like the key it learned */
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, NULL), 0);
    assert_true(run_until(p.loop, both_closed, &p, 10));
    assert_int_equal(p.cli.connected, 1);
    assert_memory_equal(p.cli.peer_key, p.srv.pk, 32);
    assert_int_equal(p.cli.last_err, QPC_ERR_REFUSED);
    /* Before the handshake is confirmed QUIC cannot carry the application's code, so
     * the server may only learn that the peer closed. */
    assert_true(p.srv.last_err == QPC_ERR_REFUSED || p.srv.last_err == QPC_ERR_CLOSED);
    assert_true(p.srv.last_by_peer);
    pair_close(&p);
}

static void test_quic_close_carries_code_and_reason(void **state)
{
    struct pair p;

    pair_open(&p, 0);
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    assert_int_equal(qpc_quic_conn_close(p.cli.conn, 42, "bye for now"), 0);
    assert_true(run_until(p.loop, both_closed, &p, 10));
    assert_int_equal(p.srv.last_err, QPC_ERR_CLOSED);
    assert_true(p.srv.last_by_peer);
    assert_true(p.srv.last_is_app);
    assert_int_equal(p.srv.last_code, 42);
    assert_string_equal(p.srv.last_reason, "bye for now");
    assert_false(p.cli.last_by_peer);
    assert_int_equal(p.cli.last_code, 42);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 0);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.cli.ep), 0);
    pair_close(&p);
}

/* A peer's reason ends up in log lines: control bytes must not forge extra lines. */
static void test_quic_close_reason_from_peer_has_no_control_bytes(void **state)
{
    struct pair p;

    pair_open(&p, 0);
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    assert_int_equal(qpc_quic_conn_close(p.cli.conn, 7, "bye\nERROR forged\r\x1b[2J"), 0);
    assert_true(run_until(p.loop, both_closed, &p, 10));
    assert_true(p.srv.last_by_peer);
    assert_string_equal(p.srv.last_reason, "bye?ERROR forged??[2J");
    pair_close(&p);
}

/* ---- ordered messages both ways, with back-pressure ------------------------------ */

#define MSG_COUNT 10000
#define MSG_LEN 200

struct flow {
    int64_t sid;
    bool have_sid;
    uint32_t sent, received;
    bool corrupt;
    int again;
};

static void msg_fill(uint8_t *m, uint32_t seq)
{
    for (size_t i = 0; i < MSG_LEN; i++)
        m[i] = (uint8_t)(seq * 31 + i);
    m[0] = (uint8_t)(seq >> 24);
    m[1] = (uint8_t)(seq >> 16);
    m[2] = (uint8_t)(seq >> 8);
    m[3] = (uint8_t)seq;
}

static void flow_pump(struct side *s, struct qpc_quic_conn *c)
{
    struct flow *f = s->ctx;
    uint8_t m[MSG_LEN];
    int rv;

    while (f->have_sid && f->sent < MSG_COUNT) {
        msg_fill(m, f->sent);
        rv = qpc_quic_conn_send_frame(c, f->sid, m, sizeof(m));
        if (rv == QPC_ERR_AGAIN) {
            f->again++;
            return;   /* on_writable resumes */
        }
        assert_int_equal(rv, 0);
        f->sent++;
    }
}

static void flow_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                          const uint8_t *d, size_t n)
{
    struct flow *f = s->ctx;
    uint8_t m[MSG_LEN];

    msg_fill(m, f->received);
    if (n != MSG_LEN || memcmp(d, m, MSG_LEN) != 0)
        f->corrupt = true;
    f->received++;
    if (!f->have_sid) {   /* the server answers on the stream the client opened */
        f->sid = sid;
        f->have_sid = true;
        flow_pump(s, c);
    }
}

static void flow_on_writable(struct side *s, struct qpc_quic_conn *c, int64_t sid)
{
    flow_pump(s, c);
}

static void flow_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    struct flow *f = s->ctx;

    if (qpc_quic_conn_is_server(c))
        return;
    assert_int_equal(qpc_quic_conn_open_stream(c, &f->sid), 0);
    f->have_sid = true;
    flow_pump(s, c);
}

static bool flows_done(void *arg)
{
    struct pair *p = arg;
    struct flow *a = p->cli.ctx, *b = p->srv.ctx;

    return a->received == MSG_COUNT && b->received == MSG_COUNT;
}

static void test_quic_ten_thousand_messages_each_way_in_order(void **state)
{
    struct pair p;
    struct flow fc = { 0 }, fs = { 0 };

    pair_open(&p, 0);
    p.cli.ctx = &fc;
    p.srv.ctx = &fs;
    p.cli.on_connected = p.srv.on_connected = flow_on_connected;
    p.cli.on_frame = p.srv.on_frame = flow_on_frame;
    p.cli.on_writable = p.srv.on_writable = flow_on_writable;
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, flows_done, &p, 60));
    assert_false(fc.corrupt);
    assert_false(fs.corrupt);
    assert_int_equal(fc.sent, MSG_COUNT);
    assert_int_equal(fs.sent, MSG_COUNT);
    /* 2 MB were offered at once against a 1 MiB stream buffer: back-pressure and
     * on_writable were exercised, not unbounded buffering. */
    assert_true(fc.again > 0);
    pair_close(&p);
}

/* ---- one 16 MiB frame ------------------------------------------------------------ */

#define BIG_LEN (16u * 1024 * 1024)

struct big {
    uint8_t *data;
    uint8_t digest[32];
    bool got, match;
    size_t got_len;
};

static void big_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    struct big *b = s->ctx;
    int64_t sid;

    assert_int_equal(qpc_quic_conn_open_stream(c, &sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(c, sid, b->data, BIG_LEN), 0);
}

static void big_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                         const uint8_t *d, size_t n)
{
    struct big *b = s->ctx;
    uint8_t digest[32];

    crypto_generichash(digest, sizeof(digest), d, n, NULL, 0);
    b->got = true;
    b->got_len = n;
    b->match = memcmp(digest, b->digest, 32) == 0;
}

static bool big_done(void *arg)
{
    return ((struct big *)arg)->got;
}

static void test_quic_sixteen_mib_frame_with_raised_limit(void **state)
{
    struct pair p;
    struct big b = { 0 };

    b.data = malloc(BIG_LEN);
    assert_non_null(b.data);
    randombytes_buf(b.data, BIG_LEN);
    crypto_generichash(b.digest, sizeof(b.digest), b.data, BIG_LEN, NULL, 0);
    pair_open(&p, 32u * 1024 * 1024);
    p.cli.ctx = p.srv.ctx = &b;
    p.cli.on_connected = big_on_connected;
    p.srv.on_frame = big_on_frame;
    assert_int_equal(pair_connect(&p, QPC_ALPN_P2P, p.srv.pk), 0);
    assert_true(run_until(p.loop, big_done, &b, 60));
    assert_int_equal(b.got_len, BIG_LEN);
    assert_true(b.match);
    pair_close(&p);
    free(b.data);
}

static void test_quic_refuses_frame_above_limit(void **state)
{
    struct pair p;
    uint8_t *m = calloc(1, QPC_WIRE_FRAME_MAX_TEST);
    int64_t sid;

    assert_non_null(m);
    pair_open(&p, 0);
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    assert_int_equal(qpc_quic_conn_open_stream(p.cli.conn, &sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(p.cli.conn, sid, m, QPC_WIRE_FRAME_MAX_TEST),
                     QPC_ERR_TOO_LARGE);
    pair_close(&p);
    free(m);
}

/* ---- 100 concurrent connections ---------------------------------------------------- */

#define NCONN 100

static void echo_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                          const uint8_t *d, size_t n)
{
    if (qpc_quic_conn_is_server(c))
        assert_int_equal(qpc_quic_conn_send_frame(c, sid, d, n), 0);
}

static void hello_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    int64_t sid;

    if (qpc_quic_conn_is_server(c))
        return;
    assert_int_equal(qpc_quic_conn_open_stream(c, &sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(c, sid, (const uint8_t *)"hello", 5), 0);
}

static bool all_echoed(void *arg)
{
    struct pair *p = arg;

    return p->cli.frames == NCONN;
}

static void test_quic_hundred_concurrent_connections(void **state)
{
    struct pair p;

    /* Every handshake accepted at once, so the count below is exact: above the Retry
     * threshold a client's first Initial sent again before our Retry reached it (seen
     * under qemu) opens a half-open connection for a while, until the client's retried
     * Initial ends it. Retry and that race have their own tests below. */
    pair_open_retry(&p, 0, 2 * NCONN);
    p.cli.on_connected = hello_on_connected;
    p.srv.on_frame = echo_on_frame;
    for (int i = 0; i < NCONN; i++)
        assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, all_echoed, &p, 60));
    assert_int_equal(p.srv.connected, NCONN);
    assert_int_equal(p.cli.connected, NCONN);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), NCONN);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.cli.ep), NCONN);
    pair_close(&p);
}

/* ---- garbage on the socket while a good connection keeps working ------------------- */

struct pingpong {
    int64_t sid;
    int rounds;
};

static void pp_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                        const uint8_t *d, size_t n)
{
    struct pingpong *pp = s->ctx;

    if (qpc_quic_conn_is_server(c)) {
        assert_int_equal(qpc_quic_conn_send_frame(c, sid, d, n), 0);
        return;
    }
    pp->rounds++;
}

static bool pp_round(void *arg)
{
    struct side *cli = arg;
    struct pingpong *pp = cli->ctx;

    return pp->rounds > 0;
}

static void garbage_burst(const struct sockaddr_storage *ss, socklen_t len, int count)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    uint8_t buf[1500];

    assert_true(fd >= 0);
    for (int i = 0; i < count; i++) {
        size_t n = randombytes_uniform(sizeof(buf) + 1);

        randombytes_buf(buf, n);
        if (i % 3 == 0 && n > 8) {   /* looks like a v1 long header, then nonsense */
            buf[0] = 0xc0 | (buf[0] & 0x0f);
            buf[1] = 0; buf[2] = 0; buf[3] = 0; buf[4] = 1;
            buf[5] = (uint8_t)(i % 21);
        } else if (i % 3 == 1 && n > 8) {   /* unknown version: version negotiation */
            buf[0] = 0xc0;
            buf[1] = 0x1a; buf[2] = 0x2a; buf[3] = 0x3a; buf[4] = 0x4a;
            buf[5] = 8;
        }
        (void)sendto(fd, buf, n, 0, (const struct sockaddr *)ss, len);
    }
    close(fd);
}

static void test_quic_garbage_datagrams_do_not_disturb_good_connection(void **state)
{
    struct pair p;
    struct pingpong pp = { 0 };
    struct sockaddr_storage ss;
    socklen_t len;

    pair_open(&p, 0);
    p.cli.ctx = p.srv.ctx = &pp;
    p.cli.on_frame = p.srv.on_frame = pp_on_frame;
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    assert_int_equal(qpc_quic_conn_open_stream(p.cli.conn, &pp.sid), 0);
    side_addr(&p.srv, &ss, &len);
    for (int round = 1; round <= 5; round++) {
        garbage_burst(&ss, len, 1000);
        assert_int_equal(qpc_quic_conn_send_frame(p.cli.conn, pp.sid, (const uint8_t *)"ping",
                                                  4), 0);
        pp.rounds = 0;
        assert_true(run_until(p.loop, pp_round, &p.cli, 10));
    }
    /* Garbage made no connections (Initials of garbage cannot complete). */
    run_for(p.loop, 0.2);
    assert_int_equal(p.cli.closed, 0);
    pair_close(&p);
}

/* ---- datagrams ---------------------------------------------------------------------- */

static bool got_datagrams(void *arg)
{
    return ((struct side *)arg)->datagrams == 10;
}

static void test_quic_datagrams_arrive(void **state)
{
    struct pair p;

    pair_open(&p, 0);
    assert_int_equal(pair_connect(&p, QPC_ALPN_P2P, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    for (int i = 0; i < 10; i++)
        assert_int_equal(qpc_quic_conn_send_datagram(p.cli.conn, (const uint8_t *)"dgram", 5),
                         0);
    assert_int_equal(qpc_quic_conn_send_datagram(p.cli.conn, NULL, QPC_QUIC_DATAGRAM_MAX + 1),
                     QPC_ERR_TOO_LARGE);
    assert_true(run_until(p.loop, got_datagrams, &p.srv, 10));
    pair_close(&p);
}

/* ---- a peer that vanishes ------------------------------------------------------------- */

static void vanish_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    int64_t sid;

    /* Say something, then die without a word. */
    assert_int_equal(qpc_quic_conn_open_stream(c, &sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(c, sid, (const uint8_t *)"x", 1), 0);
}

static bool side_closed(void *arg)
{
    return ((struct side *)arg)->closed > 0;
}

static bool two_connected(void *arg)
{
    return ((struct side *)arg)->connected == 2;
}

static bool srv_got_frame(void *arg)
{
    return ((struct side *)arg)->frames > 0;
}

static void vanishing_child(const struct sockaddr_storage *ss, socklen_t len,
                            const uint8_t *srv_pk)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side cli = { 0 };
    struct qpc_quic_config cfg;

    side_keys(&cli);
    side_config(&cfg, &cli, false);
    cli.on_connected = vanish_on_connected;
    if (qpc_quic_endpoint_new(&cli.ep, loop, &cfg) != 0 ||
        qpc_quic_connect(cli.ep, (const struct sockaddr *)ss, len, QPC_ALPN_CLIENT, srv_pk,
                         &cli, NULL) != 0)
        _exit(2);
    run_for(loop, 30);   /* the parent kills us */
    _exit(3);
}

static void test_quic_vanished_peer_times_out_and_is_freed(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side srv = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    pid_t pid;
    int status;

    side_keys(&srv);
    side_config(&cfg, &srv, true);
    cfg.idle_timeout_ms = 300;
    assert_int_equal(qpc_quic_endpoint_new(&srv.ep, loop, &cfg), 0);
    side_addr(&srv, &ss, &len);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        vanishing_child(&ss, len, srv.pk);
    assert_true(run_until(loop, srv_got_frame, &srv, 20));
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    assert_int_equal(qpc_quic_endpoint_conn_count(srv.ep), 1);
    assert_true(run_until(loop, side_closed, &srv, 20));
    assert_int_equal(srv.closed, 1);
    assert_int_equal(srv.last_err, QPC_ERR_TIMEOUT);
    assert_int_equal(qpc_quic_endpoint_conn_count(srv.ep), 0);
    qpc_quic_endpoint_free(srv.ep);
    ev_loop_destroy(loop);
}

/* ---- dual stack -------------------------------------------------------------------------- */

static void test_quic_dual_stack_endpoint_talks_ipv4_and_ipv6(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side srv = { 0 }, c4 = { 0 }, c6 = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    struct sockaddr_in a4 = { 0 };
    struct sockaddr_in6 a6 = { 0 };
    socklen_t len;

    side_keys(&srv);
    side_keys(&c4);
    side_keys(&c6);
    side_config(&cfg, &srv, true);
    cfg.bind_addr = "::";
    assert_int_equal(qpc_quic_endpoint_new(&srv.ep, loop, &cfg), 0);
    side_addr(&srv, &ss, &len);
    side_config(&cfg, &c4, false);
    assert_int_equal(qpc_quic_endpoint_new(&c4.ep, loop, &cfg), 0);
    side_config(&cfg, &c6, false);
    cfg.bind_addr = "::1";
    assert_int_equal(qpc_quic_endpoint_new(&c6.ep, loop, &cfg), 0);
    a4.sin_family = AF_INET;
    a4.sin_port = ((struct sockaddr_in6 *)&ss)->sin6_port;
    inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = a4.sin_port;
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    assert_int_equal(qpc_quic_connect(c4.ep, (struct sockaddr *)&a4, sizeof(a4),
                                      QPC_ALPN_CLIENT, srv.pk, &c4, NULL), 0);
    assert_int_equal(qpc_quic_connect(c6.ep, (struct sockaddr *)&a6, sizeof(a6),
                                      QPC_ALPN_CLIENT, srv.pk, &c6, NULL), 0);
    assert_true(run_until(loop, two_connected, &srv, 10));
    assert_int_equal(srv.connected, 2);
    assert_int_equal(c4.connected, 1);
    assert_int_equal(c6.connected, 1);
    qpc_quic_endpoint_free(c4.ep);
    qpc_quic_endpoint_free(c6.ep);
    qpc_quic_endpoint_free(srv.ep);
    ev_loop_destroy(loop);
}


/* ---- TOFU wired to the identity module's server pinning ------------------------------ */

struct tofu {
    struct qpc_identity *id;
    char address[64];
    int pin_result;
};

static int tofu_on_connected(struct qpc_quic_conn *c, const char *alpn, const uint8_t *key,
                             void *user)
{
    struct side *s = user;
    struct tofu *t = s->ctx;

    s->connected++;
    t->pin_result = qpc_identity_pin_key(t->id, QPC_PIN_ADDRESS, t->address, key, 1000);
    return t->pin_result == 0 ? 0 : 1;
}

static bool tofu_settled(void *arg)
{
    struct pair *p = arg;
    struct tofu *t = p->cli.ctx;

    /* pin_result starts at 1: settled once this round's key was judged. */
    return t->pin_result != 1;
}

static void tofu_round(struct pair *p, struct qpc_quic_endpoint *cli_ep)
{
    struct sockaddr_storage ss;
    socklen_t len;

    ((struct tofu *)p->cli.ctx)->pin_result = 1;
    p->cli.closed = 0;
    side_addr(&p->srv, &ss, &len);
    assert_int_equal(qpc_quic_connect(cli_ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      NULL, &p->cli, NULL), 0);
    assert_true(run_until(p->loop, tofu_settled, p, 10));
}

static void test_quic_tofu_pins_server_key_and_refuses_a_changed_one(void **state)
{
    struct pair p;
    struct tofu t = { 0 };
    struct qpc_quic_config cfg;
    struct qpc_quic_endpoint *cli_ep, *impostor;
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t pinned[32];
    struct side imp = { 0 };

    pair_open(&p, 0);
    assert_int_equal(qpc_identity_generate(&t.id), 0);
    side_addr(&p.srv, &ss, &len);
    snprintf(t.address, sizeof(t.address), "127.0.0.1:%u",
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
    p.cli.ctx = &t;
    side_config(&cfg, &p.cli, false);
    cfg.cb.on_connected = tofu_on_connected;
    assert_int_equal(qpc_quic_endpoint_new(&cli_ep, p.loop, &cfg), 0);
    /* First use: the key is learned and pinned. */
    tofu_round(&p, cli_ep);
    assert_int_equal(t.pin_result, 0);
    assert_int_equal(qpc_identity_pin_lookup(t.id, QPC_PIN_ADDRESS, t.address, pinned), 0);
    assert_memory_equal(pinned, p.srv.pk, 32);
    /* Same server again: accepted. */
    tofu_round(&p, cli_ep);
    assert_int_equal(t.pin_result, 0);
    /* Another key at that address (an impostor took the port): refused. */
    qpc_quic_endpoint_free(p.srv.ep);
    side_keys(&imp);
    side_config(&cfg, &imp, true);
    cfg.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(qpc_quic_endpoint_new(&impostor, p.loop, &cfg), 0);
    p.srv.ep = impostor;
    tofu_round(&p, cli_ep);
    assert_int_equal(t.pin_result, QPC_ERR_REFUSED);
    assert_int_equal(qpc_identity_pin_lookup(t.id, QPC_PIN_ADDRESS, t.address, pinned), 0);
    assert_memory_equal(pinned, p.srv.pk, 32);   /* the pin did not move */
    qpc_quic_endpoint_free(cli_ep);
    qpc_identity_free(t.id);
    pair_close(&p);
}

/* ---- keep-alive holds an idle connection open; without it, idle timeout ends it ---- */

static void keepalive_case(uint64_t keepalive_ms, int expect_closed)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side srv = { 0 }, cli = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;

    side_keys(&srv);
    side_keys(&cli);
    side_config(&cfg, &srv, true);
    cfg.idle_timeout_ms = 600;
    cfg.keepalive_ms = keepalive_ms;
    assert_int_equal(qpc_quic_endpoint_new(&srv.ep, loop, &cfg), 0);
    side_config(&cfg, &cli, false);
    cfg.idle_timeout_ms = 600;
    cfg.keepalive_ms = keepalive_ms;
    assert_int_equal(qpc_quic_endpoint_new(&cli.ep, loop, &cfg), 0);
    side_addr(&srv, &ss, &len);
    assert_int_equal(qpc_quic_connect(cli.ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      srv.pk, &cli, NULL), 0);
    run_for(loop, 2.0);
    assert_int_equal(cli.connected, 1);
    assert_int_equal(cli.closed, expect_closed);
    if (expect_closed)
        assert_int_equal(cli.last_err, QPC_ERR_TIMEOUT);
    qpc_quic_endpoint_free(cli.ep);
    qpc_quic_endpoint_free(srv.ep);
    ev_loop_destroy(loop);
}

static void test_quic_keepalive_holds_idle_connection_open(void **state)
{
    keepalive_case(150, 0);
}

static void test_quic_idle_connection_times_out_without_keepalive(void **state)
{
    keepalive_case(0, 1);
}

/* ---- a frame begun must be finished in time, PINGs or not ------------------------------ */

struct half_frame {
    int64_t sid;
    bool finish;                         /* send the rest of the frame later */
    bool finished;
};

static void half_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    struct half_frame *h = s->ctx;
    uint8_t start[QPC_WIRE_HEADER_LEN + 5] = { 0 };

    if (qpc_quic_conn_is_server(c))
        return;
    qpc_wire_header_encode(start, 100);   /* announces 100 bytes, sends 5 */
    assert_int_equal(qpc_quic_conn_open_stream(c, &h->sid), 0);
    assert_int_equal(qpc_stream_queue_raw(c, h->sid, start, sizeof(start)), 0);
}

static void half_finish_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct side *cli = w->data;
    struct half_frame *h = cli->ctx;
    uint8_t rest[95] = { 0 };

    if (h->finish && cli->conn != NULL) {
        assert_int_equal(qpc_stream_queue_raw(cli->conn, h->sid, rest, sizeof(rest)), 0);
        h->finished = true;
    }
}

/* With keep-alive PINGs the idle timeout never fires; the frame deadline must. */
static void half_frame_case(bool finish)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side srv = { 0 }, cli = { 0 };
    struct half_frame h = { .finish = finish };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    ev_timer later;

    side_keys(&srv);
    side_keys(&cli);
    side_config(&cfg, &srv, true);
    cfg.idle_timeout_ms = 600;
    cfg.keepalive_ms = 150;
    cfg.frame_timeout_ms = 400;
    assert_int_equal(qpc_quic_endpoint_new(&srv.ep, loop, &cfg), 0);
    side_config(&cfg, &cli, false);
    cfg.idle_timeout_ms = 600;
    cfg.keepalive_ms = 150;
    assert_int_equal(qpc_quic_endpoint_new(&cli.ep, loop, &cfg), 0);
    cli.ctx = &h;
    cli.on_connected = half_on_connected;
    side_addr(&srv, &ss, &len);
    assert_int_equal(qpc_quic_connect(cli.ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      srv.pk, &cli, NULL), 0);
    ev_timer_init(&later, half_finish_cb, 0.2, 0.0);
    later.data = &cli;
    ev_timer_start(loop, &later);
    run_for(loop, 2.0);
    assert_int_equal(srv.connected, 1);
    if (finish) {
        assert_true(h.finished);
        assert_int_equal(srv.frames, 1);         /* the frame arrived whole, in time */
        assert_int_equal(srv.closed, 0);         /* and nothing was closed */
        assert_int_equal(cli.closed, 0);
    } else {
        assert_int_equal(srv.frames, 0);
        assert_int_equal(srv.closed, 1);
        assert_int_equal(srv.last_err, QPC_ERR_TIMEOUT);
        assert_int_equal(cli.closed, 1);         /* the peer is told why */
        assert_true(cli.last_by_peer && cli.last_is_app);
        assert_int_equal(cli.last_code, QPC_QUIC_APP_FRAME_TIMEOUT);
    }
    ev_timer_stop(loop, &later);
    qpc_quic_endpoint_free(cli.ep);
    qpc_quic_endpoint_free(srv.ep);
    ev_loop_destroy(loop);
}

static void test_quic_stalled_half_frame_closes_the_connection_despite_pings(void **state)
{
    half_frame_case(false);
}

static void test_quic_half_frame_finished_in_time_is_delivered(void **state)
{
    half_frame_case(true);
}

/* ---- ended streams are freed and their credit returns --------------------------------- */

#define NSTREAMS 250   /* well above the 100 streams a peer may have open at once */

struct requests {
    int64_t sid;
    int done;
    bool reply_ok;
};

static void req_next(struct side *s, struct qpc_quic_conn *c)
{
    struct requests *r = s->ctx;

    assert_int_equal(qpc_quic_conn_open_stream(c, &r->sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(c, r->sid, (const uint8_t *)"req", 3), 0);
    assert_int_equal(qpc_quic_conn_end_stream(c, r->sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(c, r->sid, (const uint8_t *)"late", 4),
                     QPC_ERR_CLOSED);
}

static void req_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    if (!qpc_quic_conn_is_server(c))
        req_next(s, c);
}

static void req_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                         const uint8_t *d, size_t n)
{
    struct requests *r = s->ctx;

    if (!qpc_quic_conn_is_server(c))
        r->reply_ok = n == 3 && memcmp(d, "rep", 3) == 0;
}

static void req_on_stream_end(struct side *s, struct qpc_quic_conn *c, int64_t sid)
{
    struct requests *r = s->ctx;

    if (qpc_quic_conn_is_server(c)) {   /* request complete: answer and end ours */
        assert_int_equal(qpc_quic_conn_send_frame(c, sid, (const uint8_t *)"rep", 3), 0);
        assert_int_equal(qpc_quic_conn_end_stream(c, sid), 0);
        return;
    }
    assert_true(r->reply_ok);
    r->reply_ok = false;
    if (++r->done < NSTREAMS)
        req_next(s, c);
}

static bool requests_done(void *arg)
{
    return ((struct requests *)((struct side *)arg)->ctx)->done == NSTREAMS;
}

static void test_quic_ended_streams_are_freed_and_credit_returns(void **state)
{
    struct pair p;
    struct requests r = { 0 };

    pair_open(&p, 0);
    p.cli.ctx = p.srv.ctx = &r;
    p.cli.on_connected = req_on_connected;
    p.cli.on_frame = p.srv.on_frame = req_on_frame;
    p.cli.on_stream_end = p.srv.on_stream_end = req_on_stream_end;
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, requests_done, &p.cli, 30));
    assert_int_equal(p.srv.stream_ends, NSTREAMS);
    pair_close(&p);
}

static bool srv_has_frame(void *arg)
{
    struct side *srv = arg;

    return srv->frames > 0;
}

static bool one_closed(void *arg)
{
    struct side *s = arg;

    return s->closed > 0;
}

static bool srv_second_connected(void *arg)
{
    struct pair *p = arg;

    return p->srv.connected == 2;
}

/* Shutdown: a server that stops accepting refuses newcomers at once (no handshake
 * timeout) while the connection it has goes on; it can start again. */
static void test_quic_stopped_endpoint_refuses_new_connections_keeps_existing(void **state)
{
    struct pair p;
    struct side late = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    int64_t sid;
    const uint8_t msg[] = "still here";

    pair_open(&p, 0);
    side_keys(&late);
    side_config(&cfg, &late, false);
    assert_int_equal(qpc_quic_endpoint_new(&late.ep, p.loop, &cfg), 0);
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));

    assert_int_equal(qpc_quic_endpoint_set_accepting(p.srv.ep, false), 0);
    assert_int_equal(qpc_quic_endpoint_set_accepting(p.srv.ep, false), 0);   /* no-op */
    side_addr(&p.srv, &ss, &len);
    assert_int_equal(qpc_quic_connect(late.ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      p.srv.pk, &late, NULL), 0);
    assert_true(run_until(p.loop, one_closed, &late, 10));
    assert_int_equal(late.connected, 0);
    assert_int_equal(late.last_err, QPC_ERR_REFUSED);
    assert_true(late.last_by_peer);
    assert_false(late.last_is_app);
    assert_int_equal(p.srv.connected, 1);
    assert_int_equal(p.srv.closed, 0);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 1);

    /* the connection from before still carries frames */
    assert_int_equal(qpc_quic_conn_open_stream(p.cli.conn, &sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(p.cli.conn, sid, msg, sizeof(msg)), 0);
    assert_true(run_until(p.loop, srv_has_frame, &p.srv, 10));
    assert_int_equal(p.srv.frame_bytes, sizeof(msg));

    assert_int_equal(qpc_quic_endpoint_set_accepting(p.srv.ep, true), 0);
    assert_int_equal(qpc_quic_connect(late.ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      p.srv.pk, &late, NULL), 0);
    assert_true(run_until(p.loop, srv_second_connected, &p, 10));
    assert_int_equal(late.connected, 1);

    /* an endpoint made without accept cannot be switched on; off is harmless */
    assert_int_equal(qpc_quic_endpoint_set_accepting(late.ep, true), QPC_ERR_INVALID);
    assert_int_equal(qpc_quic_endpoint_set_accepting(late.ep, false), 0);
    assert_int_equal(qpc_quic_endpoint_set_accepting(NULL, false), QPC_ERR_INVALID);
    qpc_quic_endpoint_free(late.ep);
    pair_close(&p);
}

/* ---- address validation (Retry) ------------------------------------------------------ */

static void test_quic_retry_always_still_connects(void **state)
{
    struct pair p;
    struct qpc_quic_endpoint_stats st;
    int64_t sid;
    const uint8_t msg[] = "after a retry";

    pair_open_retry(&p, 0, QPC_QUIC_RETRY_ALWAYS);
    assert_int_equal(pair_connect(&p, QPC_ALPN_CLIENT, p.srv.pk), 0);
    assert_true(run_until(p.loop, both_connected, &p, 10));
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    print_message("retries sent %llu, connections after a retry %llu\n",
                  (unsigned long long)st.retries_sent, (unsigned long long)st.retried_accepted);
    assert_true(st.retries_sent >= 1);
    assert_int_equal(st.retried_accepted, 1);
    assert_int_equal(st.tokens_refused, 0);
    assert_true(p.srv.has_peer_key);
    assert_memory_equal(p.srv.peer_key, p.cli.pk, 32);
    assert_int_equal(qpc_quic_conn_open_stream(p.cli.conn, &sid), 0);
    assert_int_equal(qpc_quic_conn_send_frame(p.cli.conn, sid, msg, sizeof(msg)), 0);
    assert_true(run_until(p.loop, srv_has_frame, &p.srv, 10));
    pair_close(&p);
}

/* What a socket of the test has received: the client's Initials, the server's answers. */
struct capture {
    int fd;
    int n;
    uint8_t pkt[32][1500];
    size_t len[32];
    int want;                          /* packets, or with want_retries: Retry packets */
    int retries;
    bool want_retries;
};

static bool captured(void *arg)
{
    struct capture *c = arg;
    ssize_t n;

    while (c->n < 32 && (n = recv(c->fd, c->pkt[c->n], sizeof(c->pkt[0]), MSG_DONTWAIT)) > 0) {
        c->retries += (c->pkt[c->n][0] & 0xf0) == 0xf0;   /* long header, type Retry */
        c->len[c->n++] = (size_t)n;
    }
    return (c->want_retries ? c->retries : c->n) >= c->want;
}

static int udp_socket(struct sockaddr_in *bound)
{
    socklen_t len = sizeof(*bound);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    memset(bound, 0, sizeof(*bound));
    bound->sin_family = AF_INET;
    bound->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)bound, sizeof(*bound)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)bound, &len), 0);
    return fd;
}

/*
 * Real clients' Initials, sent to the server from an address that is not theirs (a
 * spoofer replaying them): above the threshold they get a Retry each and make no
 * connection; the server's answers go to the spoofed address, never to the clients.
 */
static void test_quic_spoofed_initials_above_threshold_make_no_state(void **state)
{
    struct pair p;
    struct qpc_quic_endpoint_stats st;
    static struct capture initials = { .want = 5 }, answers = { .want = 3, .want_retries = true };
    struct sockaddr_in trap, spoofer;
    struct sockaddr_storage srv;
    socklen_t srvlen;

    pair_open_retry(&p, 0, 2);   /* a Retry from the third handshake in progress on */
    initials.fd = udp_socket(&trap);
    answers.fd = udp_socket(&spoofer);
    for (int i = 0; i < 5; i++)   /* five clients' first flights, caught on the way */
        assert_int_equal(qpc_quic_connect(p.cli.ep, (struct sockaddr *)&trap, sizeof(trap),
                                          QPC_ALPN_CLIENT, NULL, &p.cli, NULL), 0);
    assert_true(run_until(p.loop, captured, &initials, 10));
    side_addr(&p.srv, &srv, &srvlen);
    for (int i = 0; i < 5; i++) {
        assert_true(initials.len[i] >= 1200);
        assert_int_equal(initials.pkt[i][0] & 0xf0, 0xc0);   /* a v1 Initial */
        assert_int_equal(sendto(answers.fd, initials.pkt[i], initials.len[i], 0,
                                (struct sockaddr *)&srv, srvlen), (ssize_t)initials.len[i]);
    }
    /* Two handshakes start (their answers go to the spoofer, which never goes on), the
     * three above the threshold get a Retry and nothing else. */
    assert_true(run_until(p.loop, captured, &answers, 10));
    run_for(p.loop, 0.1);   /* nothing more comes */
    captured(&answers);
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    print_message("connections %zu, Retry packets sent %llu (%d seen at the spoofer)\n",
                  qpc_quic_endpoint_conn_count(p.srv.ep), (unsigned long long)st.retries_sent,
                  answers.retries);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 2);
    assert_int_equal(st.retries_sent, 3);
    assert_int_equal(answers.retries, 3);
    assert_int_equal(p.srv.connected, 0);
    /* The same Initials once more: no new state either. */
    for (int i = 2; i < 5; i++)
        (void)sendto(answers.fd, initials.pkt[i], initials.len[i], 0, (struct sockaddr *)&srv,
                     srvlen);
    run_for(p.loop, 0.1);
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 2);
    assert_int_equal(st.retries_sent, 6);
    close(initials.fd);
    close(answers.fd);
    pair_close(&p);
}

/* A Retry token is bound to the address it was sent to: replayed from another, dropped. */
static void test_quic_retry_token_from_another_address_is_refused(void **state)
{
    struct pair p;
    struct qpc_quic_endpoint_stats st;
    static struct capture cli_side, srv_side;
    struct sockaddr_in a, b;
    struct sockaddr_storage srv, cli;
    socklen_t srvlen, clilen;
    int other;

    cli_side.want = srv_side.want = 1;
    pair_open_retry(&p, 0, QPC_QUIC_RETRY_ALWAYS);
    /* A relay of the test between client and server: a (toward the client), b (server). */
    cli_side.fd = udp_socket(&a);
    srv_side.fd = udp_socket(&b);
    other = udp_socket(&b);
    assert_int_equal(qpc_quic_connect(p.cli.ep, (struct sockaddr *)&a, sizeof(a),
                                      QPC_ALPN_CLIENT, NULL, &p.cli, NULL), 0);
    assert_true(run_until(p.loop, captured, &cli_side, 10));          /* Initial 1 */
    side_addr(&p.srv, &srv, &srvlen);
    side_addr(&p.cli, &cli, &clilen);
    (void)sendto(srv_side.fd, cli_side.pkt[0], cli_side.len[0], 0, (struct sockaddr *)&srv, srvlen);
    assert_true(run_until(p.loop, captured, &srv_side, 10));          /* the Retry */
    assert_int_equal(srv_side.pkt[0][0] & 0xf0, 0xf0);
    (void)sendto(cli_side.fd, srv_side.pkt[0], srv_side.len[0], 0, (struct sockaddr *)&cli, clilen);
    cli_side.want = 2;
    assert_true(run_until(p.loop, captured, &cli_side, 10));          /* Initial 2, token */
    /* From another address than the one the token was made for. */
    (void)sendto(other, cli_side.pkt[1], cli_side.len[1], 0, (struct sockaddr *)&srv, srvlen);
    run_for(p.loop, 0.1);
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    assert_int_equal(st.tokens_refused, 1);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 0);
    /* From the right one it is taken. */
    (void)sendto(srv_side.fd, cli_side.pkt[1], cli_side.len[1], 0, (struct sockaddr *)&srv, srvlen);
    run_for(p.loop, 0.1);
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    assert_int_equal(st.retried_accepted, 1);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 1);
    close(cli_side.fd);
    close(srv_side.fd);
    close(other);
    pair_close(&p);
}

/*
 * A real client's first Initial, caught on its way: it opens (quic_initial.c) and makes
 * a connection; the same packet with one byte of its ciphertext or of its header
 * changed, or an Initial's shape around random bytes, opens not, makes no connection
 * and draws no answer (no Retry either, whatever the threshold).
 */
static void test_quic_forged_initials_make_no_state(void **state)
{
    struct pair p;
    struct qpc_quic_endpoint_stats st;
    static struct capture initials = { .want = 1 }, answers = { .want = 1 };
    static uint8_t bad[4][1500];
    struct sockaddr_in trap, sender;
    struct sockaddr_storage srv;
    socklen_t srvlen;
    size_t len;

    pair_open_retry(&p, 0, QPC_QUIC_RETRY_ALWAYS);
    initials.fd = udp_socket(&trap);
    answers.fd = udp_socket(&sender);
    assert_int_equal(qpc_quic_connect(p.cli.ep, (struct sockaddr *)&trap, sizeof(trap),
                                      QPC_ALPN_CLIENT, NULL, &p.cli, NULL), 0);
    assert_true(run_until(p.loop, captured, &initials, 10));
    len = initials.len[0];
    assert_true(len >= 1200);
    assert_true(qpc_quic_initial_opens(initials.pkt[0], len));
    for (int i = 0; i < 4; i++)
        memcpy(bad[i], initials.pkt[0], len);
    bad[0][len - 1] ^= 0x01;     /* the tag */
    bad[1][len / 2] ^= 0x80;     /* the ciphertext */
    bad[2][8] ^= 0x01;           /* the dcid: other keys */
    randombytes_buf(bad[3] + 48, len - 48);   /* the header kept, random after it */
    side_addr(&p.srv, &srv, &srvlen);
    for (int i = 0; i < 4; i++) {
        assert_false(qpc_quic_initial_opens(bad[i], len));
        assert_int_equal(sendto(answers.fd, bad[i], len, 0, (struct sockaddr *)&srv, srvlen),
                         (ssize_t)len);
    }
    run_for(p.loop, 0.2);
    assert_false(captured(&answers));
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    assert_int_equal(st.initials_unopened, 4);
    assert_int_equal(st.retries_sent, 0);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 0);
    /* The real one is answered (with a Retry: this server always asks for one). */
    assert_int_equal(sendto(answers.fd, initials.pkt[0], len, 0, (struct sockaddr *)&srv,
                            srvlen), (ssize_t)len);
    assert_true(run_until(p.loop, captured, &answers, 10));
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    assert_int_equal(st.retries_sent, 1);
    assert_int_equal(st.initials_unopened, 4);
    close(initials.fd);
    close(answers.fd);
    pair_close(&p);
}

/* ---- a client's first Initial sent again around a Retry ------------------------------- */

/*
 * A UDP hop between one client connection and the server, driven by the test: what the
 * client sends goes up, what the server sends comes down, and either direction can be
 * held (kept, in order) so that the test chooses what arrives when. The client's first
 * datagram (its first Initial) is kept aside for replaying.
 */
struct hop {
    int fd;
    struct sockaddr_in self, cli;
    bool cli_known;
    struct sockaddr_storage srv;
    socklen_t srvlen;
    bool hold_up, hold_down;
    int n_up, n_down, retries_down;
    uint8_t up[16][1500], down[16][1500];
    size_t uplen[16], downlen[16];
    uint8_t first[1500];
    size_t firstlen;
};

static void hop_open(struct hop *h, struct pair *p)
{
    memset(h, 0, sizeof(*h));
    h->fd = udp_socket(&h->self);
    side_addr(&p->srv, &h->srv, &h->srvlen);
}

static void hop_up(struct hop *h, const uint8_t *d, size_t n)
{
    (void)sendto(h->fd, d, n, 0, (struct sockaddr *)&h->srv, h->srvlen);
}

static void hop_down(struct hop *h, const uint8_t *d, size_t n)
{
    (void)sendto(h->fd, d, n, 0, (struct sockaddr *)&h->cli, sizeof(h->cli));
}

/* Moves what has come; a run_until condition that is never true by itself. */
static bool hop_pump(void *arg)
{
    struct hop *h = arg;
    uint8_t buf[1500];
    struct sockaddr_in from;
    socklen_t fromlen = sizeof(from);
    ssize_t n;

    while ((n = recvfrom(h->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
                         &fromlen)) > 0) {
        if (from.sin_port == ((struct sockaddr_in *)&h->srv)->sin_port) {
            h->retries_down += (buf[0] & 0xf0) == 0xf0;   /* long header, type Retry */
            if (h->hold_down && h->n_down < 16) {
                memcpy(h->down[h->n_down], buf, (size_t)n);
                h->downlen[h->n_down++] = (size_t)n;
            } else if (!h->hold_down) {
                hop_down(h, buf, (size_t)n);
            }
        } else {
            if (!h->cli_known) {
                h->cli = from;
                h->cli_known = true;
                memcpy(h->first, buf, (size_t)n);
                h->firstlen = (size_t)n;
                hop_up(h, buf, (size_t)n);
            } else if (h->hold_up && h->n_up < 16) {
                memcpy(h->up[h->n_up], buf, (size_t)n);
                h->uplen[h->n_up++] = (size_t)n;
            } else if (!h->hold_up) {
                hop_up(h, buf, (size_t)n);
            }
        }
        fromlen = sizeof(from);
    }
    return false;
}

static void hop_release(struct hop *h)
{
    for (int i = 0; i < h->n_up; i++)
        hop_up(h, h->up[i], h->uplen[i]);
    for (int i = 0; i < h->n_down; i++)
        hop_down(h, h->down[i], h->downlen[i]);
    h->n_up = h->n_down = 0;
    h->hold_up = h->hold_down = false;
}

struct two_hops {
    struct pair *p;
    struct hop *a, *b;
    int want_cli, want_srv;
};

static bool hops_until_connected(void *arg)
{
    struct two_hops *t = arg;

    hop_pump(t->a);
    hop_pump(t->b);
    return t->p->cli.connected >= t->want_cli && t->p->srv.connected >= t->want_srv;
}

static bool hop_has_retry_and_held(void *arg)
{
    struct hop *h = arg;

    hop_pump(h);
    return h->retries_down > 0 && h->n_up > 0;
}

static bool hop_has_answer(void *arg)
{
    struct hop *h = arg;

    hop_pump(h);
    return h->n_down > 0;
}

static void hops_run(struct pair *p, struct hop *a, struct hop *b, double seconds)
{
    struct two_hops t = { p, a, b, 1000, 1000 };

    run_until(p->loop, hops_until_connected, &t, seconds);
}

/*
 * Up to the point where the two orders differ: with a Retry threshold of 1, client 2's
 * handshake is in progress (its answers held) when client 1's first Initial comes, so
 * client 1 is sent a Retry; its Initial with the token is held on the way up; then
 * client 2 finishes, and the server is below the threshold again.
 */
static void retry_race_setup(struct pair *p, struct hop *h1, struct hop *h2)
{
    struct two_hops t = { p, h1, h2, 1, 1 };

    pair_open_retry(p, 0, 1);
    hop_open(h1, p);
    hop_open(h2, p);
    h2->hold_down = true;
    assert_int_equal(qpc_quic_connect(p->cli.ep, (struct sockaddr *)&h2->self, sizeof(h2->self),
                                      QPC_ALPN_CLIENT, NULL, &p->cli, NULL), 0);
    assert_true(run_until(p->loop, hop_has_answer, h2, 10));
    h1->hold_up = true;
    assert_int_equal(qpc_quic_connect(p->cli.ep, (struct sockaddr *)&h1->self, sizeof(h1->self),
                                      QPC_ALPN_CLIENT, NULL, &p->cli, NULL), 0);
    assert_true(run_until(p->loop, hop_has_retry_and_held, h1, 10));
    hop_release(h2);
    h1->hold_up = true;
    assert_true(run_until(p->loop, hops_until_connected, &t, 10));
    assert_int_equal(qpc_quic_endpoint_conn_count(p->srv.ep), 1);
}

/* The first Initial again before the one with the token: the connection it opens is
 * ended as soon as the client goes on under the Retry's id. */
static void test_quic_first_initial_again_before_retried_one_leaves_no_half_open(void **state)
{
    struct pair p;
    struct hop h1, h2;
    struct qpc_quic_endpoint_stats st;
    struct two_hops t = { &p, &h1, &h2, 2, 2 };

    retry_race_setup(&p, &h1, &h2);
    h1.hold_down = true;   /* its answers are for an id the client has given up */
    hop_up(&h1, h1.first, h1.firstlen);
    hops_run(&p, &h1, &h2, 0.1);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 2);   /* the second one */
    h1.n_down = 0;
    h1.hold_down = false;
    hop_release(&h1);
    assert_true(run_until(p.loop, hops_until_connected, &t, 10));
    hops_run(&p, &h1, &h2, 0.2);
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    print_message("server connections %zu, superseded %llu, retried %llu\n",
                  qpc_quic_endpoint_conn_count(p.srv.ep),
                  (unsigned long long)st.retry_superseded, (unsigned long long)st.retried_accepted);
    assert_int_equal(st.retried_accepted, 1);
    assert_int_equal(st.retry_superseded, 1);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 2);
    close(h1.fd);
    close(h2.fd);
    pair_close(&p);
}

/* The first Initial again after the retried handshake is done: it opens nothing. */
static void test_quic_first_initial_again_after_retried_one_opens_nothing(void **state)
{
    struct pair p;
    struct hop h1, h2;
    struct qpc_quic_endpoint_stats st;
    struct two_hops t = { &p, &h1, &h2, 2, 2 };

    retry_race_setup(&p, &h1, &h2);
    hop_release(&h1);
    assert_true(run_until(p.loop, hops_until_connected, &t, 10));
    hop_up(&h1, h1.first, h1.firstlen);
    hops_run(&p, &h1, &h2, 0.2);
    qpc_quic_endpoint_get_stats(p.srv.ep, &st);
    print_message("server connections %zu, retried %llu\n", qpc_quic_endpoint_conn_count(p.srv.ep),
                  (unsigned long long)st.retried_accepted);
    assert_int_equal(st.retried_accepted, 1);
    assert_int_equal(qpc_quic_endpoint_conn_count(p.srv.ep), 2);
    assert_int_equal(p.srv.connected, 2);
    assert_int_equal(p.srv.closed, 0);
    close(h1.fd);
    close(h2.fd);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quic_handshake_on_client_alpn),
        cmocka_unit_test(test_quic_stopped_endpoint_refuses_new_connections_keeps_existing),
        cmocka_unit_test(test_quic_handshake_on_p2p_alpn),
        cmocka_unit_test(test_quic_refuses_unknown_alpn),
        cmocka_unit_test(test_quic_refuses_wrong_peer_key),
        cmocka_unit_test(test_quic_tofu_hook_can_refuse_server_key),
        cmocka_unit_test(test_quic_tofu_pins_server_key_and_refuses_a_changed_one),
        cmocka_unit_test(test_quic_close_carries_code_and_reason),
        cmocka_unit_test(test_quic_close_reason_from_peer_has_no_control_bytes),
        cmocka_unit_test(test_quic_ten_thousand_messages_each_way_in_order),
        cmocka_unit_test(test_quic_sixteen_mib_frame_with_raised_limit),
        cmocka_unit_test(test_quic_refuses_frame_above_limit),
        cmocka_unit_test(test_quic_hundred_concurrent_connections),
        cmocka_unit_test(test_quic_garbage_datagrams_do_not_disturb_good_connection),
        cmocka_unit_test(test_quic_datagrams_arrive),
        cmocka_unit_test(test_quic_vanished_peer_times_out_and_is_freed),
        cmocka_unit_test(test_quic_dual_stack_endpoint_talks_ipv4_and_ipv6),
        cmocka_unit_test(test_quic_ended_streams_are_freed_and_credit_returns),
        cmocka_unit_test(test_quic_keepalive_holds_idle_connection_open),
        cmocka_unit_test(test_quic_idle_connection_times_out_without_keepalive),
        cmocka_unit_test(test_quic_stalled_half_frame_closes_the_connection_despite_pings),
        cmocka_unit_test(test_quic_half_frame_finished_in_time_is_delivered),
        cmocka_unit_test(test_quic_retry_always_still_connects),
        cmocka_unit_test(test_quic_spoofed_initials_above_threshold_make_no_state),
        cmocka_unit_test(test_quic_retry_token_from_another_address_is_refused),
        cmocka_unit_test(test_quic_first_initial_again_before_retried_one_leaves_no_half_open),
        cmocka_unit_test(test_quic_first_initial_again_after_retried_one_opens_nothing),
        cmocka_unit_test(test_quic_forged_initials_make_no_state),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
