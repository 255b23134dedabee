/*
 * test_seqreq.c: the seqno request rules (include/qpc/seqreq.h): who bumps, answers,
 * forwards or drops, and the dedup and rate bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/error.h"
#include "qpc/seqreq.h"

static struct qpc_seqreq req_for(uint8_t who, uint32_t seqno, uint32_t hop_limit)
{
    struct qpc_seqreq r;

    memset(r.origin, who, sizeof(r.origin));
    r.seqno = seqno;
    r.hop_limit = hop_limit;
    return r;
}

static void test_origin_bumps_rate_limited(void **state)
{
    struct qpc_seqreq_state *st = qpc_seqreq_state_new();
    struct qpc_seqreq r = req_for(1, 7, 4);
    struct qpc_seqreq_view v = { .is_me = true };

    (void)state;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, NULL), QPC_SEQREQ_BUMP);
    r.seqno = 8;   /* another seqno, within the gap: still no second bump */
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000 + QPC_SEQREQ_BUMP_GAP_MS - 1, NULL),
                     QPC_SEQREQ_DROP);
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000 + QPC_SEQREQ_BUMP_GAP_MS, NULL), QPC_SEQREQ_BUMP);
    qpc_seqreq_state_free(st);
}

static void test_holder_answers_only_new_enough(void **state)
{
    struct qpc_seqreq_state *st = qpc_seqreq_state_new();
    struct qpc_seqreq r = req_for(2, 11, 4);
    struct qpc_seqreq_view v = { .have_announce = true, .announce_seqno = 10, .have_route = true };
    uint32_t fwd = 0;

    (void)state;
    /* 10 is older than 11: not an answer, so it goes on toward the origin */
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, &fwd), QPC_SEQREQ_FORWARD);
    assert_int_equal(fwd, 3);
    r = req_for(3, 11, 4);
    v.announce_seqno = 11;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, NULL), QPC_SEQREQ_ANSWER);
    r = req_for(4, 0xfffffffeu, 4);   /* RFC 1982: 1 is newer than 0xfffffffe */
    v.announce_seqno = 1;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, NULL), QPC_SEQREQ_ANSWER);
    qpc_seqreq_state_free(st);
}

static void test_forward_bounds(void **state)
{
    struct qpc_seqreq_state *st = qpc_seqreq_state_new();
    struct qpc_seqreq r = req_for(5, 3, 1);
    struct qpc_seqreq_view v = { .have_route = true };
    uint32_t fwd = 0;

    (void)state;
    /* hop limit 1: this node is the last that may see it */
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, &fwd), QPC_SEQREQ_DROP);
    /* hop limit 0 or no route, or a route back through the requester: dropped */
    r = req_for(6, 3, 0);
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, &fwd), QPC_SEQREQ_DROP);
    r = req_for(7, 3, 5);
    v.have_route = false;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, &fwd), QPC_SEQREQ_DROP);
    r = req_for(8, 3, 5);
    v.have_route = true;
    v.route_via_requester = true;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, &fwd), QPC_SEQREQ_DROP);
    /* the hop limit is clamped to max_hops */
    r = req_for(9, 3, 200);
    v.route_via_requester = false;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000, &fwd), QPC_SEQREQ_FORWARD);
    assert_int_equal(fwd, 7);
    /* the same (origin, seqno) again: a copy, dropped while within the dedup window */
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1500, &fwd), QPC_SEQREQ_DROP);
    /* a newer seqno for the same origin within the forward gap: dropped (rate) */
    r.seqno = 4;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000 + QPC_SEQREQ_FORWARD_GAP_MS - 1, &fwd),
                     QPC_SEQREQ_DROP);
    r.seqno = 5;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000 + QPC_SEQREQ_FORWARD_GAP_MS, &fwd),
                     QPC_SEQREQ_FORWARD);
    /* after the dedup window the first seqno is handled again */
    r.seqno = 3;
    assert_int_equal(qpc_seqreq_decide(st, &r, &v, 8, 1000 + QPC_SEQREQ_DEDUP_MS + 2000, &fwd),
                     QPC_SEQREQ_FORWARD);
    qpc_seqreq_state_free(st);
}

static void test_may_send(void **state)
{
    struct qpc_seqreq_state *st = qpc_seqreq_state_new();
    uint8_t o[32];

    (void)state;
    memset(o, 9, sizeof(o));
    assert_true(qpc_seqreq_may_send(st, o, 5, 1000));
    assert_false(qpc_seqreq_may_send(st, o, 6, 1100));
    assert_true(qpc_seqreq_may_send(st, o, 6, 1000 + QPC_SEQREQ_FORWARD_GAP_MS));
    assert_false(qpc_seqreq_may_send(st, o, 6, 1000 + 2 * QPC_SEQREQ_FORWARD_GAP_MS));   /* copy */
    qpc_seqreq_state_free(st);
}

static void test_pb(void **state)
{
    struct qpc_seqreq r = req_for(3, 42, 6), back;
    Qpc__MeshSeqnoRequest pb, *un;
    uint8_t buf[128];
    size_t len;

    (void)state;
    qpc_seqreq_to_pb(&r, &pb);
    len = qpc__mesh_seqno_request__pack(&pb, buf);
    assert_non_null(un = qpc__mesh_seqno_request__unpack(NULL, len, buf));
    assert_int_equal(qpc_seqreq_from_pb(un, &back), 0);
    assert_memory_equal(&r, &back, sizeof(r));
    un->origin.len = 31;
    assert_int_equal(qpc_seqreq_from_pb(un, &back), QPC_ERR_INVALID);
    un->origin.len = 32;
    un->hop_limit = 0;
    assert_int_equal(qpc_seqreq_from_pb(un, &back), QPC_ERR_INVALID);
    qpc__mesh_seqno_request__free_unpacked(un, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_bumps_rate_limited),
        cmocka_unit_test(test_holder_answers_only_new_enough),
        cmocka_unit_test(test_forward_bounds),
        cmocka_unit_test(test_may_send),
        cmocka_unit_test(test_pb),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
