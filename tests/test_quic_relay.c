/*
 * test_quic_relay.c: connections whose packets do not touch the UDP socket.
 *
 * First an in-process forwarder carries every packet between two endpoints (the path
 * abstraction on its own). Then the real relay fallback: two peers each hold a UDP
 * connection to a middle node, and their end-to-end P2P connection travels inside
 * DATAGRAM frames of those two connections, the middle node seeing only ciphertext.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "quic_harness.h"

/* ---- in-process forwarder ---------------------------------------------------------- */

struct pkt {
    struct pkt *next;
    struct qpc_quic_endpoint *ep;
    struct qpc_quic_relay *relay;
    size_t len;
    uint8_t data[];
};

struct forwarder {
    struct ev_loop *loop;
    ev_timer deliver;
    struct pkt *head, **tail;
    size_t forwarded;
    struct qpc_quic_endpoint *ep[2];
    struct qpc_quic_relay *relay[2];
};

struct link {
    struct forwarder *f;
    int to;
};

static void fwd_deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct forwarder *f = w->data;
    struct pkt *p;

    /* Delivered from the loop, not from inside the sender: like a network would. */
    while ((p = f->head) != NULL) {
        f->head = p->next;
        if (f->head == NULL)
            f->tail = &f->head;
        assert_int_equal(qpc_quic_endpoint_input_relayed(p->ep, p->relay, p->data, p->len), 0);
        f->forwarded++;
        free(p);
    }
}

static int fwd_send(void *user, const uint8_t *data, size_t len)
{
    struct link *l = user;
    struct forwarder *f = l->f;
    struct pkt *p = malloc(sizeof(*p) + len);

    assert_non_null(p);
    assert_true(len <= 1200);
    p->next = NULL;
    p->ep = f->ep[l->to];
    p->relay = f->relay[l->to];
    p->len = len;
    memcpy(p->data, data, len);
    *f->tail = p;
    f->tail = &p->next;
    if (!ev_is_active(&f->deliver)) {
        ev_timer_set(&f->deliver, 0.0, 0.0);
        ev_timer_start(f->loop, &f->deliver);
    }
    return 0;
}

#define ECHO_COUNT 1000

struct echo {
    int64_t sid;
    uint32_t next;
    bool out_of_order;
};

static void echo_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                          const uint8_t *d, size_t n)
{
    struct echo *e = s->ctx;
    uint32_t v;

    if (qpc_quic_conn_is_server(c)) {
        assert_int_equal(qpc_quic_conn_send_frame(c, sid, d, n), 0);
        return;
    }
    assert_int_equal(n, sizeof(v));
    memcpy(&v, d, sizeof(v));
    if (v != e->next)
        e->out_of_order = true;
    e->next++;
}

static void echo_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    struct echo *e = s->ctx;

    if (qpc_quic_conn_is_server(c))
        return;
    assert_int_equal(qpc_quic_conn_open_stream(c, &e->sid), 0);
    for (uint32_t i = 0; i < ECHO_COUNT; i++)
        assert_int_equal(qpc_quic_conn_send_frame(c, e->sid, (const uint8_t *)&i, sizeof(i)),
                         0);
}

static bool echoes_done(void *arg)
{
    struct echo *e = ((struct side *)arg)->ctx;

    return e->next == ECHO_COUNT;
}

static bool a_closed(void *arg)
{
    return ((struct side *)arg)->closed == 1;
}

static void test_quic_relay_forwarder_carries_whole_connection(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side a = { 0 }, b = { 0 };
    struct qpc_quic_config cfg;
    struct forwarder f = { 0 };
    struct link to_b = { &f, 1 }, to_a = { &f, 0 };
    struct echo e = { 0 };
    struct qpc_quic_conn *conn;
    const struct sockaddr *ra;
    socklen_t rlen;

    f.loop = loop;
    f.tail = &f.head;
    ev_init(&f.deliver, fwd_deliver_cb);
    f.deliver.data = &f;
    side_keys(&a);
    side_keys(&b);
    side_config(&cfg, &a, false);
    assert_int_equal(qpc_quic_endpoint_new(&a.ep, loop, &cfg), 0);
    side_config(&cfg, &b, true);
    assert_int_equal(qpc_quic_endpoint_new(&b.ep, loop, &cfg), 0);
    f.ep[0] = a.ep;
    f.ep[1] = b.ep;
    assert_int_equal(qpc_quic_relay_new(a.ep, fwd_send, &to_b, &f.relay[0]), 0);
    assert_int_equal(qpc_quic_relay_new(b.ep, fwd_send, &to_a, &f.relay[1]), 0);
    a.ctx = b.ctx = &e;
    a.on_connected = b.on_connected = echo_on_connected;
    a.on_frame = b.on_frame = echo_on_frame;
    assert_int_equal(qpc_quic_connect_relayed(a.ep, f.relay[0], QPC_ALPN_P2P, b.pk, &a, &conn),
                     0);
    assert_true(run_until(loop, echoes_done, &a, 30));
    assert_false(e.out_of_order);
    assert_memory_equal(a.peer_key, b.pk, 32);
    assert_memory_equal(b.peer_key, a.pk, 32);
    assert_true(f.forwarded > 10);
    /* The connection's peer is the relay's synthetic address, not a socket address. */
    ra = qpc_quic_conn_remote_addr(conn, &rlen);
    assert_int_equal(ra->sa_family, AF_INET6);
    assert_int_equal(((const struct sockaddr_in6 *)ra)->sin6_addr.s6_addr[0], 0x01);
    assert_true(qpc_quic_addr_is_relay(ra));
    qpc_quic_relay_free(f.relay[0]);   /* ends the connection on it */
    assert_true(run_until(loop, a_closed, &a, 10));
    qpc_quic_endpoint_free(a.ep);
    qpc_quic_endpoint_free(b.ep);
    ev_timer_stop(loop, &f.deliver);
    while (f.head != NULL) {   /* packets still in flight when the endpoints went */
        struct pkt *p = f.head;

        f.head = p->next;
        free(p);
    }
    ev_loop_destroy(loop);
}

/* ---- relay fallback through DATAGRAM frames of a middle node ---------------------------- */

struct mesh {
    struct side s, a, b;                 /* s: middle node; a, b: peers */
    struct qpc_quic_conn *s_conn[2];     /* s's connections, in order of arrival */
    struct qpc_quic_conn *up_a, *up_b;   /* each peer's connection to s */
    struct qpc_quic_relay *ra, *rb;      /* each peer's relay path via s */
    size_t relayed;
};

static struct mesh *g_mesh;

static void mid_on_connected(struct side *s, struct qpc_quic_conn *c)
{
    struct mesh *m = g_mesh;

    if (s == &m->s)
        m->s_conn[m->s_conn[0] ? 1 : 0] = c;
}

static void mid_on_datagram(struct qpc_quic_conn *c, const uint8_t *d, size_t n, void *user)
{
    struct mesh *m = g_mesh;
    struct side *sd = user;

    sd->datagrams++;
    if (sd == &m->s) {   /* the middle node forwards blindly to the other peer */
        struct qpc_quic_conn *other = c == m->s_conn[0] ? m->s_conn[1] : m->s_conn[0];

        if (other != NULL && qpc_quic_conn_send_datagram(other, d, n) == 0)
            m->relayed++;
        return;
    }
    qpc_quic_endpoint_input_relayed(sd->ep, sd == &m->a ? m->ra : m->rb, d, n);
}

static int up_send(void *user, const uint8_t *pkt, size_t len)
{
    return qpc_quic_conn_send_datagram(user, pkt, len);
}

static bool mesh_up(void *arg)
{
    struct mesh *m = arg;

    return m->s_conn[0] != NULL && m->s_conn[1] != NULL && m->a.connected && m->b.connected;
}

static bool p2p_done(void *arg)
{
    struct mesh *m = arg;
    struct echo *e = m->a.ctx;

    return e->next == ECHO_COUNT;
}

static void test_quic_relay_fallback_inside_datagrams_of_middle_node(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mesh m = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    struct echo e = { 0 };

    g_mesh = &m;
    side_keys(&m.s);
    side_keys(&m.a);
    side_keys(&m.b);
    side_config(&cfg, &m.s, true);
    cfg.cb.on_datagram = mid_on_datagram;
    assert_int_equal(qpc_quic_endpoint_new(&m.s.ep, loop, &cfg), 0);
    side_config(&cfg, &m.a, false);
    cfg.cb.on_datagram = mid_on_datagram;
    assert_int_equal(qpc_quic_endpoint_new(&m.a.ep, loop, &cfg), 0);
    side_config(&cfg, &m.b, true);
    cfg.cb.on_datagram = mid_on_datagram;
    assert_int_equal(qpc_quic_endpoint_new(&m.b.ep, loop, &cfg), 0);
    m.s.on_connected = mid_on_connected;
    side_addr(&m.s, &ss, &len);
    assert_int_equal(qpc_quic_connect(m.a.ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      m.s.pk, &m.a, &m.up_a), 0);
    assert_int_equal(qpc_quic_connect(m.b.ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      m.s.pk, &m.b, &m.up_b), 0);
    assert_true(run_until(loop, mesh_up, &m, 10));
    assert_false(qpc_quic_addr_is_relay(qpc_quic_conn_remote_addr(m.up_a, &len)));

    /* Now the P2P connection a -> b, every packet inside the middle node's datagrams. */
    assert_int_equal(qpc_quic_relay_new(m.a.ep, up_send, m.up_a, &m.ra), 0);
    assert_int_equal(qpc_quic_relay_new(m.b.ep, up_send, m.up_b, &m.rb), 0);
    m.a.ctx = m.b.ctx = &e;
    m.a.on_connected = m.b.on_connected = echo_on_connected;
    m.a.on_frame = m.b.on_frame = echo_on_frame;
    m.a.connected = m.b.connected = 0;
    assert_int_equal(qpc_quic_connect_relayed(m.a.ep, m.ra, QPC_ALPN_P2P, m.b.pk, &m.a, NULL),
                     0);
    assert_true(run_until(loop, p2p_done, &m, 30));
    assert_false(e.out_of_order);
    assert_string_equal(m.b.alpn, QPC_ALPN_P2P);
    assert_memory_equal(m.b.peer_key, m.a.pk, 32);   /* end-to-end identity, not s's */
    assert_true(m.relayed > 10);
    qpc_quic_endpoint_free(m.a.ep);
    qpc_quic_endpoint_free(m.b.ep);
    qpc_quic_endpoint_free(m.s.ep);
    ev_loop_destroy(loop);
}

/* ---- freeing the endpoint while on_closed still uses it ------------------------------ */

struct shutdown_ctx {
    struct qpc_quic_endpoint *ep;
    struct qpc_quic_relay *relay, *other;
    int closed, connect_rv, relay_new_rv;
};

static int drop_send(void *user, const uint8_t *pkt, size_t len)
{
    (void)user, (void)pkt, (void)len;
    return 1;
}

/* What a client does when its server link goes: free the relay paths through it, and try
 * to reach the peer another way. */
static void shutdown_on_closed(struct qpc_quic_conn *c, const struct qpc_quic_close_info *info,
                               void *user)
{
    struct shutdown_ctx *x = user;
    struct qpc_quic_relay *r = NULL;

    (void)c, (void)info;
    x->closed++;
    if (x->relay != NULL) {
        qpc_quic_relay_free(x->relay);
        x->relay = NULL;
    }
    x->connect_rv = qpc_quic_connect_relayed(x->ep, x->other, QPC_ALPN_P2P, NULL, x, NULL);
    x->relay_new_rv = qpc_quic_relay_new(x->ep, drop_send, x, &r);
}

static void test_quic_relay_endpoint_free_lets_on_closed_free_relays(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side a = { 0 };
    struct qpc_quic_config cfg;
    struct shutdown_ctx x = { 0 };

    side_keys(&a);
    side_config(&cfg, &a, false);
    cfg.cb.on_closed = shutdown_on_closed;
    cfg.user = &x;
    assert_int_equal(qpc_quic_endpoint_new(&x.ep, loop, &cfg), 0);
    assert_int_equal(qpc_quic_relay_new(x.ep, drop_send, &x, &x.relay), 0);
    assert_int_equal(qpc_quic_relay_new(x.ep, drop_send, &x, &x.other), 0);
    assert_int_equal(qpc_quic_connect_relayed(x.ep, x.relay, QPC_ALPN_P2P, NULL, &x, NULL), 0);
    assert_int_equal(qpc_quic_connect_relayed(x.ep, x.other, QPC_ALPN_P2P, NULL, &x, NULL), 0);
    qpc_quic_endpoint_free(x.ep);   /* under ASan: no use of a freed relay, no leak */
    assert_int_equal(x.closed, 2);
    assert_null(x.relay);
    assert_int_equal(x.connect_rv, QPC_ERR_CLOSED);
    assert_int_equal(x.relay_new_rv, QPC_ERR_CLOSED);
    ev_loop_destroy(loop);
    (void)state;
}

/* ---- which addresses are relay addresses ---------------------------------------------- */

static struct sockaddr_in6 in6(const char *text)
{
    struct sockaddr_in6 a = { 0 };

    a.sin6_family = AF_INET6;
    a.sin6_port = htons(1);
    assert_int_equal(inet_pton(AF_INET6, text, &a.sin6_addr), 1);
    return a;
}

static void test_quic_addr_is_relay_only_inside_the_discard_prefix(void **state)
{
    struct sockaddr_in6 yes[] = { in6("100::"), in6("100::1"), in6("100::ffff:ffff:ffff:ffff") };
    struct sockaddr_in6 no[] = { in6("100:0:0:1::"), in6("101::1"), in6("::1"), in6("::"),
                                 in6("2001:db8::1"), in6("::ffff:1.0.0.0"), in6("fe80::100") };
    struct sockaddr_in v4 = { 0 };
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side a = { 0 };
    struct qpc_quic_config cfg;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(qpc_quic_addr_is_relay((const struct sockaddr *)&yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(qpc_quic_addr_is_relay((const struct sockaddr *)&no[i]));
    /* 1.0.0.0 starts with the same byte as 100::, but is IPv4. */
    v4.sin_family = AF_INET;
    v4.sin_addr.s_addr = htonl(0x01000000);
    assert_false(qpc_quic_addr_is_relay((const struct sockaddr *)&v4));
    assert_false(qpc_quic_addr_is_relay(NULL));

    /* Nobody dials a relay address over the socket. */
    side_keys(&a);
    side_config(&cfg, &a, false);
    cfg.bind_addr = "::1";
    assert_int_equal(qpc_quic_endpoint_new(&a.ep, loop, &cfg), 0);
    assert_int_equal(qpc_quic_connect(a.ep, (const struct sockaddr *)&yes[1], sizeof(yes[1]),
                                      QPC_ALPN_P2P, NULL, &a, NULL),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_quic_endpoint_conn_count(a.ep), 0);
    qpc_quic_endpoint_free(a.ep);
    ev_loop_destroy(loop);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quic_relay_forwarder_carries_whole_connection),
        cmocka_unit_test(test_quic_relay_fallback_inside_datagrams_of_middle_node),
        cmocka_unit_test(test_quic_relay_endpoint_free_lets_on_closed_free_relays),
        cmocka_unit_test(test_quic_addr_is_relay_only_inside_the_discard_prefix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
