/*
 * test_udp.c: the endpoint's UDP socket (lib/udp.c) on loopback, and what it does when
 * the kernel refuses a GSO send. A refusal is injected through the socket's test hook
 * (test_gso_errno), so the kernel under the test needs no broken device: the GSO sends
 * that follow are real, to a plain socket of the test that counts what arrives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "udp.h"

#define PKT 1000
#define SEGS 8

struct fixture {
    struct ev_loop *loop;
    struct qpc_udp *u;
    int sink;                          /* the receiving socket */
    struct sockaddr_in to;
};

static void no_recv(void *user, const struct sockaddr *from, socklen_t fromlen,
                    const uint8_t *data, size_t len)
{
    (void)user; (void)from; (void)fromlen; (void)data; (void)len;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    socklen_t len = sizeof(f->to);
    int bufsz = 8 * 1024 * 1024;

    assert_non_null(f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->u = calloc(1, sizeof(*f->u));
    assert_non_null(f->u);
    assert_int_equal(qpc_udp_open(f->u, f->loop, "127.0.0.1", 0, no_recv, NULL), 0);
    f->sink = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(f->sink >= 0);
    (void)setsockopt(f->sink, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
    f->to.sin_family = AF_INET;
    f->to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->sink, (struct sockaddr *)&f->to, sizeof(f->to)), 0);
    assert_int_equal(getsockname(f->sink, (struct sockaddr *)&f->to, &len), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    qpc_udp_close(f->u);
    free(f->u);
    close(f->sink);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* Sends one batch of SEGS packets of PKT bytes; returns how many arrived. */
static int send_batch(struct fixture *f)
{
    uint8_t buf[2048];
    int got = 0;

    for (int i = 0; i < SEGS; i++) {
        uint8_t *slot = qpc_udp_tx_slot(f->u, PKT);
        memset(slot, i, PKT);
        qpc_udp_tx_commit(f->u, (struct sockaddr *)&f->to, sizeof(f->to), PKT);
    }
    qpc_udp_tx_flush(f->u);
    while (recv(f->sink, buf, sizeof(buf), MSG_DONTWAIT) == PKT)
        got++;
    return got;
}

/* The kernel under the test must do GSO on loopback, or there is nothing to test. */
static void need_gso(struct fixture *f)
{
    assert_int_equal(send_batch(f), SEGS);
    if (f->u->gso_sends != 1)
        skip();
}

static void test_udp_gso_comes_back_after_a_transient_refusal(void **state)
{
    struct fixture *f = *state;
    uint64_t before;
    int rested = 0;

    need_gso(f);
    f->u->test_gso_errno = EIO;   /* a device without checksum offload, an IPsec route */
    assert_int_equal(send_batch(f), SEGS);   /* the refused batch leaves packet by packet */
    assert_int_equal(f->u->gso_failures, 1);
    assert_false(f->u->no_gso);
    before = f->u->gso_sends;
    while (f->u->gso_sends == before && rested <= QPC_UDP_GSO_PAUSE_MIN) {
        assert_int_equal(send_batch(f), SEGS);
        rested++;
    }
    print_message("GSO back after %d batches without it\n", rested - 1);
    assert_int_equal(rested - 1, QPC_UDP_GSO_PAUSE_MIN);
    assert_int_equal(f->u->gso_sends, before + 1);
}

static void test_udp_gso_rest_doubles_while_refusals_continue(void **state)
{
    struct fixture *f = *state;

    need_gso(f);
    f->u->test_gso_errno = EIO;
    assert_int_equal(send_batch(f), SEGS);
    for (int i = 0; i < QPC_UDP_GSO_PAUSE_MIN; i++)
        assert_int_equal(send_batch(f), SEGS);
    f->u->test_gso_errno = EIO;   /* the retry is refused too */
    assert_int_equal(send_batch(f), SEGS);
    assert_int_equal(f->u->gso_failures, 2);
    assert_int_equal(f->u->gso_resting, 2 * QPC_UDP_GSO_PAUSE_MIN);
    /* A kernel that did GSO and then says EINVAL (a path MTU that shrank) is transient. */
    for (int i = 0; i < 2 * QPC_UDP_GSO_PAUSE_MIN; i++)
        assert_int_equal(send_batch(f), SEGS);
    f->u->test_gso_errno = EINVAL;
    assert_int_equal(send_batch(f), SEGS);
    assert_false(f->u->no_gso);
    assert_int_equal(f->u->gso_resting, 4 * QPC_UDP_GSO_PAUSE_MIN);
}

static void test_udp_gso_stays_off_when_the_first_try_says_unsupported(void **state)
{
    struct fixture *f = *state;

    f->u->test_gso_errno = EINVAL;   /* what a kernel without UDP_SEGMENT answers */
    assert_int_equal(send_batch(f), SEGS);
    assert_true(f->u->no_gso);
    for (int i = 0; i < 2 * QPC_UDP_GSO_PAUSE_MIN; i++)
        assert_int_equal(send_batch(f), SEGS);
    assert_int_equal(f->u->gso_sends, 0);
    assert_int_equal(f->u->gso_failures, 1);
}

/* What the receive side saw: each datagram's length, first byte and sender port. */
struct heard {
    int n;
    size_t len[300];
    uint8_t first[300];
    uint16_t port[300];
};

static void heard_recv(void *user, const struct sockaddr *from, socklen_t fromlen,
                       const uint8_t *data, size_t len)
{
    struct heard *h = user;

    assert_int_equal(fromlen, sizeof(struct sockaddr_in));
    if (h->n < 300) {
        h->len[h->n] = len;
        h->first[h->n] = data[0];
        h->port[h->n++] = ntohs(((const struct sockaddr_in *)from)->sin_port);
    }
}

/* 250 datagrams of changing sizes from two senders, more than one wake-up reads and not
 * a multiple of one receive call's batch: each arrives once, whole, in order, with its
 * own sender's address. */
static void test_udp_receives_every_datagram_with_its_sender(void **state)
{
    struct fixture *f = *state;
    static struct heard h;
    static uint8_t buf[2000];
    struct sockaddr_in me, a, b;
    socklen_t len = sizeof(me);
    int sa = socket(AF_INET, SOCK_DGRAM, 0), sb = socket(AF_INET, SOCK_DGRAM, 0);

    memset(&h, 0, sizeof(h));
    f->u->recv = heard_recv;
    f->u->user = &h;
    assert_int_equal(getsockname(f->u->fd, (struct sockaddr *)&me, &len), 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    b = a;
    assert_int_equal(bind(sa, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(bind(sb, (struct sockaddr *)&b, sizeof(b)), 0);
    len = sizeof(a);
    assert_int_equal(getsockname(sa, (struct sockaddr *)&a, &len), 0);
    len = sizeof(b);
    assert_int_equal(getsockname(sb, (struct sockaddr *)&b, &len), 0);
    for (int i = 0; i < 250; i++) {
        size_t n = 1 + (size_t)(i * 7) % 1500;

        memset(buf, i, n);
        assert_int_equal(sendto(i % 2 ? sb : sa, buf, n, 0, (struct sockaddr *)&me, sizeof(me)),
                         (ssize_t)n);
    }
    for (int turns = 0; h.n < 250 && turns < 1000; turns++)
        ev_run(f->loop, EVRUN_NOWAIT);
    print_message("%d datagrams heard\n", h.n);
    assert_int_equal(h.n, 250);
    for (int i = 0; i < 250; i++) {
        assert_int_equal(h.len[i], 1 + (size_t)(i * 7) % 1500);
        assert_int_equal(h.first[i], (uint8_t)i);
        assert_int_equal(h.port[i], ntohs(i % 2 ? b.sin_port : a.sin_port));
    }
    close(sa);
    close(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_udp_receives_every_datagram_with_its_sender,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_gso_comes_back_after_a_transient_refusal,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_gso_rest_doubles_while_refusals_continue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_gso_stays_off_when_the_first_try_says_unsupported,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
