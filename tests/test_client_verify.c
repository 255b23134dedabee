/*
 * test_client_verify.c: envelope signatures checked on worker threads
 * (src/client/verify.c): each job answered once on the loop with qpc_envelope_verify's
 * result (a good, a forged, an expired envelope), in submission order whatever order the
 * workers finish in; at most VERIFY_MAX_PENDING wait, the next is refused; freeing the
 * pool answers what waits with QPC_ERR_CLOSED.
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
#include "verify.h"

#define NOW 1700000000000ull
#define N_ENV 64

static uint8_t pk[32], sk[64];

struct answers {
    size_t n;
    size_t order[VERIFY_MAX_PENDING + 8];
    int rc[VERIFY_MAX_PENDING + 8];
};

struct ticket {
    struct answers *a;
    size_t index;
};

static void done_cb(void *arg, int rc)
{
    struct ticket *t = arg;

    t->a->order[t->a->n] = t->index;
    t->a->rc[t->a->n] = rc;
    t->a->n++;
}

static void make(struct qpc_envelope *env, uint64_t created, unsigned i)
{
    uint8_t to[32];
    char text[32];

    memset(to, 0x42, sizeof(to));
    snprintf(text, sizeof(text), "envelope %u", i);
    assert_int_equal(qpc_envelope_init(env, sk, to, NULL, created, 60, 8, (const uint8_t *)text, strlen(text)), 0);
}

struct waiter {
    ev_timer poll, deadline;
    const struct answers *a;
    size_t want;
};

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct waiter *wt = w->data;

    if (wt->a->n >= wt->want)
        ev_break(loop, EVBREAK_ALL);
}

/* Runs loop until a holds want answers (or 30 s went by). */
static void wait_for(struct ev_loop *loop, const struct answers *a, size_t want)
{
    struct waiter wt = { .a = a, .want = want };

    ev_timer_init(&wt.poll, poll_cb, 0.001, 0.001);
    wt.poll.data = &wt;
    ev_timer_init(&wt.deadline, poll_cb, 30.0, 0.0);
    wt.deadline.data = &wt;
    ev_timer_start(loop, &wt.poll);
    ev_timer_start(loop, &wt.deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &wt.poll);
    ev_timer_stop(loop, &wt.deadline);
}

static void test_verify_answers_each_job_in_submission_order(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct verify_pool *p;
    static struct qpc_envelope env[N_ENV];
    static struct ticket t[N_ENV];
    static struct answers a;

    (void)state;
    memset(&a, 0, sizeof(a));
    for (unsigned i = 0; i < N_ENV; i++) {
        /* every third forged, every fifth expired long ago */
        make(&env[i], i % 5 == 4 ? NOW - 3600ull * 1000 : NOW, i);
        if (i % 3 == 1)
            env[i].signature[7] ^= 1;
    }
    assert_int_equal(verify_pool_new(loop, 3, &p), 0);
    for (unsigned i = 0; i < N_ENV; i++) {
        t[i] = (struct ticket){ &a, i };
        assert_int_equal(verify_submit(p, &env[i], NOW, done_cb, &t[i]), 0);
    }
    wait_for(loop, &a, N_ENV);
    assert_int_equal(a.n, N_ENV);
    assert_int_equal(verify_pending(p), 0);
    for (unsigned i = 0; i < N_ENV; i++) {
        assert_int_equal(a.order[i], i);
        assert_int_equal(a.rc[i], qpc_envelope_verify(&env[i], NOW));
        if (i % 5 == 4)
            assert_int_equal(a.rc[i], QPC_ERR_EXPIRED);
        else if (i % 3 == 1)
            assert_int_equal(a.rc[i], QPC_ERR_BAD_SIGNATURE);
        else
            assert_int_equal(a.rc[i], 0);
    }
    verify_pool_free(p);
    assert_int_equal(a.n, N_ENV);   /* nothing answered twice */
    for (unsigned i = 0; i < N_ENV; i++)
        qpc_envelope_clear(&env[i]);
    ev_loop_destroy(loop);
}

static void test_verify_refuses_beyond_the_bound_and_free_answers_closed(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct verify_pool *p;
    struct qpc_envelope env;
    static struct ticket t[VERIFY_MAX_PENDING + 1];
    static struct answers a;
    size_t closed = 0;

    (void)state;
    memset(&a, 0, sizeof(a));
    make(&env, NOW, 0);
    assert_int_equal(verify_pool_new(loop, 1, &p), 0);
    /* The loop does not run meanwhile, so nothing is answered and all of them wait. */
    for (size_t i = 0; i < VERIFY_MAX_PENDING; i++) {
        t[i] = (struct ticket){ &a, i };
        assert_int_equal(verify_submit(p, &env, NOW, done_cb, &t[i]), 0);
    }
    t[VERIFY_MAX_PENDING] = (struct ticket){ &a, VERIFY_MAX_PENDING };
    assert_int_equal(verify_submit(p, &env, NOW, done_cb, &t[VERIFY_MAX_PENDING]), QPC_ERR_QUEUE_FULL);
    assert_int_equal(verify_pending(p), VERIFY_MAX_PENDING);
    /* Some answered on the loop, then the pool freed: the rest are answered CLOSED. */
    wait_for(loop, &a, 10);
    assert_true(a.n >= 10);
    verify_pool_free(p);
    assert_int_equal(a.n, VERIFY_MAX_PENDING);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.order[i], i);
        if (a.rc[i] == QPC_ERR_CLOSED)
            closed++;
        else
            assert_int_equal(a.rc[i], 0);
    }
    printf("# %zu of %d answered after the pool was freed\n", closed, VERIFY_MAX_PENDING);
    qpc_envelope_clear(&env);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_answers_each_job_in_submission_order),
        cmocka_unit_test(test_verify_refuses_beyond_the_bound_and_free_answers_closed),
    };

    if (sodium_init() < 0)
        return 1;
    crypto_sign_keypair(pk, sk);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
