/*
 * test_resolve.c: name lookups that do not block the loop (lib/resolve.c).
 *
 * The resolver is pointed at a UDP socket of the test on loopback that takes every
 * query and never answers. While such a lookup is pending the loop keeps serving other
 * work (a repeating timer here), and the lookup ends with QPC_ERR_TIMEOUT and a
 * sentence. Names in /etc/hosts ("localhost") are answered without DNS; cancelled
 * lookups never call back; freeing the resolver with lookups pending calls nobody.
 */
#define _GNU_SOURCE   /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "qpc/addr.h"
#include "qpc/error.h"
#include "qpc/resolve.h"

struct fixture {
    struct ev_loop *loop;
    int silent;                        /* the DNS server that never answers */
    char servers[64];
    struct qpc_resolver *r;
};

struct answer {
    int calls;
    int rc;
    char why[128];
    char addr[QPC_ADDR_TEXT_MAX];
    unsigned ticks_before;             /* timer ticks seen before the answer */
    unsigned *ticks;
    struct ev_loop *loop;
};

static void on_answer(void *arg, int rc, const struct sockaddr *sa, socklen_t salen,
                      const char *why)
{
    struct answer *a = arg;

    a->calls++;
    a->rc = rc;
    snprintf(a->why, sizeof(a->why), "%s", why);
    if (sa != NULL)
        qpc_addr_format(sa, a->addr, sizeof(a->addr));
    if (a->ticks != NULL)
        a->ticks_before = *a->ticks;
    ev_break(a->loop, EVBREAK_ALL);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    struct qpc_resolver_config cfg = { .timeout_ms = 300, .tries = 1 };

    assert_non_null(f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->silent = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(f->silent >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->silent, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(f->silent, (struct sockaddr *)&sin, &len), 0);
    snprintf(f->servers, sizeof(f->servers), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    cfg.servers = f->servers;
    assert_int_equal(qpc_resolver_new(f->loop, &cfg, &f->r), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    qpc_resolver_free(f->r);
    close(f->silent);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (*(unsigned *)w->data)++;
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_resolve_silent_server_does_not_stall_the_loop(void **state)
{
    struct fixture *f = *state;
    struct answer a = { .loop = f->loop };
    unsigned ticks = 0;
    struct qpc_resolve *q;
    ev_timer tick;
    uint8_t query[512];
    double t0;
    ssize_t n;

    a.ticks = &ticks;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);   /* the "other work" of the loop */
    tick.data = &ticks;
    ev_timer_start(f->loop, &tick);
    t0 = mono_s();
    assert_int_equal(qpc_resolve_start(f->r, "node.never-answers.test:7001", on_answer, &a, &q), 0);
    assert_int_equal(a.calls, 0);   /* never from inside qpc_resolve_start */
    assert_int_equal(qpc_resolver_pending(f->r), 1);
    ev_run(f->loop, 0);
    ev_timer_stop(f->loop, &tick);
    print_message("lookup ended after %.3f s: %s; %u timer ticks served meanwhile\n",
                  mono_s() - t0, a.why, a.ticks_before);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, QPC_ERR_TIMEOUT);
    assert_true(strlen(a.why) > 0);
    assert_true(a.ticks_before > 0);   /* the loop ran other work while the lookup waited */
    assert_int_equal(qpc_resolver_pending(f->r), 0);
    /* The query did go to the server we named, and nowhere else mattered. */
    n = recv(f->silent, query, sizeof(query), MSG_DONTWAIT);
    assert_true(n > 12);
    assert_non_null(memmem(query, (size_t)n, "\x0dnever-answers", 14));
}

static void test_resolve_hosts_file_name_is_answered(void **state)
{
    struct fixture *f = *state;
    struct answer a = { .loop = f->loop };
    struct qpc_resolve *q;

    assert_int_equal(qpc_resolve_start(f->r, "localhost:7000", on_answer, &a, &q), 0);
    assert_int_equal(a.calls, 0);   /* /etc/hosts answers at once, delivered next turn */
    ev_run(f->loop, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, 0);
    print_message("localhost:7000 -> %s\n", a.addr);
    assert_true(strcmp(a.addr, "127.0.0.1:7000") == 0 || strcmp(a.addr, "[::1]:7000") == 0);
}

static void test_resolve_numeric_and_bad_text(void **state)
{
    struct fixture *f = *state;
    struct answer a = { .loop = f->loop };
    struct qpc_resolve *q;

    assert_int_equal(qpc_resolve_start(f->r, "10.1.2.3:0", on_answer, &a, &q), QPC_ERR_INVALID);
    assert_int_equal(qpc_resolve_start(f->r, "no port", on_answer, &a, &q), QPC_ERR_INVALID);
    assert_int_equal(qpc_resolve_start(f->r, "10.1.2.3:9", NULL, &a, &q), QPC_ERR_INVALID);
    assert_int_equal(qpc_resolve_start(f->r, "[fd00::7]:9", on_answer, &a, &q), 0);
    ev_run(f->loop, 0);
    assert_int_equal(a.rc, 0);
    assert_string_equal(a.addr, "[fd00::7]:9");
    /* One family only: an IPv4 socket is never handed an IPv6 address. */
    assert_int_equal(qpc_resolve_start_family(f->r, "10.1.2.3:9", AF_APPLETALK, on_answer, &a, &q),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_resolve_start_family(f->r, "[fd00::7]:9", AF_INET, on_answer, &a, &q), 0);
    ev_run(f->loop, 0);
    assert_int_equal(a.rc, QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_resolve_start_family(f->r, "localhost:9", AF_INET, on_answer, &a, &q), 0);
    ev_run(f->loop, 0);
    assert_int_equal(a.rc, 0);
    assert_string_equal(a.addr, "127.0.0.1:9");
}

static void never(void *arg, int rc, const struct sockaddr *sa, socklen_t salen, const char *why)
{
    fail_msg("a cancelled lookup called back (%s)", why);
}

static void test_resolve_cancelled_lookups_never_call_back(void **state)
{
    struct fixture *f = *state;
    struct answer a = { .loop = f->loop };
    struct qpc_resolve *q1, *q2, *q3;

    /* One waiting for DNS, one answered but not delivered yet: both cancelled. */
    assert_int_equal(qpc_resolve_start(f->r, "gone.never-answers.test:1", never, NULL, &q1), 0);
    assert_int_equal(qpc_resolve_start(f->r, "localhost:2", never, NULL, &q2), 0);
    assert_int_equal(qpc_resolve_start(f->r, "kept.never-answers.test:3", on_answer, &a, &q3), 0);
    qpc_resolve_cancel(q1);
    qpc_resolve_cancel(q2);
    assert_int_equal(qpc_resolver_pending(f->r), 1);
    ev_run(f->loop, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, QPC_ERR_TIMEOUT);
}

static void test_resolve_free_with_lookups_pending_calls_nobody(void **state)
{
    struct fixture *f = *state;
    struct qpc_resolve *q;

    assert_int_equal(qpc_resolve_start(f->r, "x.never-answers.test:1", never, NULL, &q), 0);
    assert_int_equal(qpc_resolve_start(f->r, "localhost:1", never, NULL, &q), 0);
    qpc_resolver_free(f->r);
    f->r = NULL;
    ev_run(f->loop, EVRUN_NOWAIT);   /* nothing left to fire */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resolve_silent_server_does_not_stall_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_hosts_file_name_is_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_numeric_and_bad_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_cancelled_lookups_never_call_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_free_with_lookups_pending_calls_nobody, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
