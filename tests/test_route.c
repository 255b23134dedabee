/*
 * test_route.c: the routing table's preference rule, expiry, lookup and display order.
 * Time is passed explicitly; nothing sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/error.h"
#include "qpc/route.h"

#define STALE_MS 60000u
#define T0 1700000000000ull   /* an arbitrary "now" in ms */

static void make_key(uint8_t key[QPC_KEY_LEN], uint8_t fill)
{
    memset(key, fill, QPC_KEY_LEN);
}

static struct qpc_route direct_route(uint8_t dest_fill, const char *addr, uint32_t hops,
                                     uint64_t seen)
{
    struct qpc_route r;

    memset(&r, 0, sizeof(r));
    make_key(r.dest, dest_fill);
    r.via = QPC_ROUTE_VIA_DIRECT;
    snprintf(r.next_hop, sizeof(r.next_hop), "%s", addr);
    r.hops = hops;
    r.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    r.last_seen_ms = seen;
    r.source = QPC_ROUTE_SRC_MDNS;
    return r;
}

static int setup(void **state)
{
    *state = qpc_route_table_new(STALE_MS);
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    qpc_route_table_free(*state);
    return 0;
}

/* Offers r and returns whether the table took it. */
static bool offer(struct qpc_route_table *t, const struct qpc_route *r, uint64_t now)
{
    bool changed = true;

    assert_int_equal(qpc_route_update(t, r, now, &changed), 0);
    return changed;
}

static void stored_next_hop_is(struct qpc_route_table *t, uint8_t dest_fill, const char *addr)
{
    uint8_t dest[QPC_KEY_LEN];
    struct qpc_route got;

    make_key(dest, dest_fill);
    assert_int_equal(qpc_route_lookup(t, dest, &got), 0);
    assert_string_equal(got.next_hop, addr);
}

static void test_route_inserts_first_route_and_finds_it(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = direct_route(0xaa, "10.0.0.2:7000", 1, T0);
    struct qpc_route got;

    assert_true(offer(t, &r, T0));
    assert_int_equal(qpc_route_count(t), 1);
    assert_int_equal(qpc_route_lookup(t, r.dest, &got), 0);
    assert_memory_equal(&got, &r, sizeof(r));
}

static void test_route_lookup_of_unknown_destination_is_not_found(void **state)
{
    uint8_t dest[QPC_KEY_LEN];
    struct qpc_route got;

    make_key(dest, 0x01);
    assert_int_equal(qpc_route_lookup(*state, dest, &got), QPC_ERR_NOT_FOUND);
}

static void test_route_prefers_fewer_hops(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route far = direct_route(0xaa, "far:7000", 3, T0);
    struct qpc_route near = direct_route(0xaa, "near:7000", 1, T0 - 1000);

    assert_true(offer(t, &far, T0));
    assert_true(offer(t, &near, T0));        /* fewer hops wins though seen earlier */
    stored_next_hop_is(t, 0xaa, "near:7000");
    far.last_seen_ms = T0 + 10;
    assert_false(offer(t, &far, T0 + 10));   /* more hops loses though fresher */
    stored_next_hop_is(t, 0xaa, "near:7000");
    assert_int_equal(qpc_route_count(t), 1);
}

static void test_route_same_hops_prefers_fresher(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route a = direct_route(0xaa, "a:7000", 2, T0);
    struct qpc_route b = direct_route(0xaa, "b:7000", 2, T0);

    assert_true(offer(t, &a, T0));
    assert_false(offer(t, &b, T0));          /* equally fresh: keep what we have */
    stored_next_hop_is(t, 0xaa, "a:7000");
    b.last_seen_ms = T0 + 5;
    assert_true(offer(t, &b, T0 + 5));
    stored_next_hop_is(t, 0xaa, "b:7000");
    a.last_seen_ms = T0 + 1;                 /* older news about a: ignored */
    assert_false(offer(t, &a, T0 + 6));
    stored_next_hop_is(t, 0xaa, "b:7000");
}

static void test_route_stale_route_loses_to_longer_fresh_route(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route direct = direct_route(0xaa, "d:7000", 1, T0);
    struct qpc_route server = direct_route(0xaa, "srv:7000", 3, T0 + STALE_MS);
    uint64_t later = T0 + STALE_MS + 1;       /* direct is now stale */

    server.via = QPC_ROUTE_VIA_SERVER;
    assert_true(offer(t, &direct, T0));
    assert_false(offer(t, &server, T0 + STALE_MS));   /* direct still fresh */
    server.last_seen_ms = later;
    assert_true(offer(t, &server, later));
    stored_next_hop_is(t, 0xaa, "srv:7000");
}

static void test_route_stale_offer_does_not_displace_fresh_route(void **state)
{
    struct qpc_route_table *t = *state;
    uint64_t now = T0 + 10 * STALE_MS;
    struct qpc_route fresh = direct_route(0xaa, "fresh:7000", 4, now);
    struct qpc_route old_but_short = direct_route(0xaa, "old:7000", 1, T0);

    assert_true(offer(t, &fresh, now));
    assert_false(offer(t, &old_but_short, now));
    stored_next_hop_is(t, 0xaa, "fresh:7000");
}

static void test_route_same_next_hop_replaces_even_when_longer(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = direct_route(0xaa, "x:7000", 1, T0);
    struct qpc_route got;

    snprintf(r.name, sizeof(r.name), "alice");
    r.rtt_ms = 12;
    assert_true(offer(t, &r, T0));
    r.hops = 3;                              /* the path through x got longer */
    r.last_seen_ms = T0 + 1;
    r.name[0] = '\0';
    r.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    assert_true(offer(t, &r, T0 + 1));
    assert_int_equal(qpc_route_lookup(t, r.dest, &got), 0);
    assert_int_equal(got.hops, 3);
    assert_int_equal(got.last_seen_ms, T0 + 1);
    assert_string_equal(got.name, "alice");  /* carried over */
    assert_int_equal(got.rtt_ms, 12);        /* same path: RTT carried over */
}

static void test_route_rtt_not_carried_to_another_path(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route a = direct_route(0xaa, "a:7000", 2, T0);
    struct qpc_route b = direct_route(0xaa, "b:7000", 1, T0);
    struct qpc_route got;

    a.rtt_ms = 40;
    snprintf(a.name, sizeof(a.name), "bob");
    assert_true(offer(t, &a, T0));
    assert_true(offer(t, &b, T0));
    assert_int_equal(qpc_route_lookup(t, b.dest, &got), 0);
    assert_int_equal(got.rtt_ms, QPC_ROUTE_RTT_UNKNOWN);
    assert_string_equal(got.name, "bob");
}

static void test_route_via_peer_distinguishes_next_hop_by_key(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route p1 = direct_route(0xaa, "", 2, T0);
    struct qpc_route p2;

    p1.via = QPC_ROUTE_VIA_PEER;
    make_key(p1.via_peer, 0x11);
    p2 = p1;
    make_key(p2.via_peer, 0x22);
    p2.hops = 3;
    p2.last_seen_ms = T0 + 1;
    assert_true(offer(t, &p1, T0));
    /* Another peer with more hops is a different path: the rule's hop test applies. */
    assert_false(offer(t, &p2, T0 + 1));
    p1.hops = 5;                              /* same peer reports a longer path */
    p1.last_seen_ms = T0 + 2;
    assert_true(offer(t, &p1, T0 + 2));
}

static void test_route_update_refuses_malformed_routes(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route good = direct_route(0xaa, "a:7000", 1, T0);
    struct qpc_route r;
    bool changed = true;

    r = good;
    r.hops = 0;
    assert_int_equal(qpc_route_update(t, &r, T0, &changed), QPC_ERR_INVALID);
    assert_false(changed);
    r = good;
    r.next_hop[0] = '\0';
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
    r = good;
    memset(r.name, 'n', sizeof(r.name));      /* not NUL-terminated */
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
    r = good;
    memset(r.next_hop, 'h', sizeof(r.next_hop));
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
    r = good;
    r.via = (enum qpc_route_via)17;
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
    r = good;
    r.source = (enum qpc_route_source)9;
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
    r = good;
    r.last_seen_ms = T0 + 1;                  /* seen in the future */
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
    r = good;
    r.via = QPC_ROUTE_VIA_PEER;
    memcpy(r.via_peer, r.dest, QPC_KEY_LEN);  /* through itself */
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_route_count(t), 0);
}

static void test_route_expire_removes_only_old_entries(void **state)
{
    struct qpc_route_table *t = *state;
    uint64_t now = T0 + 1000000;
    struct qpc_route old = direct_route(0x01, "o:1", 1, now - 500001);
    struct qpc_route edge = direct_route(0x02, "e:1", 1, now - 500000);
    struct qpc_route young = direct_route(0x03, "y:1", 1, now - 10);
    struct qpc_route got;

    assert_true(offer(t, &old, now));
    assert_true(offer(t, &edge, now));
    assert_true(offer(t, &young, now));
    assert_int_equal(qpc_route_expire(t, now, 500000), 1);
    assert_int_equal(qpc_route_count(t), 2);
    assert_int_equal(qpc_route_lookup(t, old.dest, &got), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_route_lookup(t, edge.dest, &got), 0);
    assert_int_equal(qpc_route_expire(t, now + 1, 500000), 1);
    assert_int_equal(qpc_route_expire(t, now, 0), 1);   /* max age 0: all but "now" */
    assert_int_equal(qpc_route_count(t), 0);
}

static void test_route_expire_keeps_routes_seen_after_now(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = direct_route(0x01, "o:1", 1, T0);

    assert_true(offer(t, &r, T0));
    /* The clock stepped backwards: the route is not ancient, it is young. */
    assert_int_equal(qpc_route_expire(t, T0 - 100000, 10), 0);
    assert_int_equal(qpc_route_count(t), 1);
}

static void test_route_list_sorts_by_hops_then_age(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route rs[] = {
        direct_route(0x05, "a:1", 3, T0 - 10),
        direct_route(0x04, "b:1", 1, T0 - 500),
        direct_route(0x03, "c:1", 2, T0 - 20),
        direct_route(0x02, "d:1", 1, T0 - 5),
        direct_route(0x01, "e:1", 2, T0 - 20),   /* ties with c: dest bytes decide */
    };
    const char *expected[] = { "d:1", "b:1", "e:1", "c:1", "a:1" };
    struct qpc_route *list = NULL;
    size_t n = 0;

    for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++)
        assert_true(offer(t, &rs[i], T0));
    assert_int_equal(qpc_route_list(t, &list, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i].next_hop, expected[i]);
    free(list);
}

static void test_route_list_of_empty_table_is_empty(void **state)
{
    struct qpc_route *list = (struct qpc_route *)1;
    size_t n = 99;

    assert_int_equal(qpc_route_list(*state, &list, &n), 0);
    assert_null(list);
    assert_int_equal(n, 0);
}

static void test_route_remove_deletes_one_destination(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route a = direct_route(0x01, "a:1", 1, T0);
    struct qpc_route b = direct_route(0x02, "b:1", 1, T0);
    struct qpc_route got;

    assert_true(offer(t, &a, T0));
    assert_true(offer(t, &b, T0));
    assert_int_equal(qpc_route_remove(t, a.dest), 0);
    assert_int_equal(qpc_route_remove(t, a.dest), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_route_lookup(t, a.dest, &got), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_route_lookup(t, b.dest, &got), 0);
    assert_int_equal(qpc_route_count(t), 1);
}

static void test_route_many_destinations_are_all_found(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = direct_route(0, "n:1", 1, T0);
    struct qpc_route got;

    for (uint32_t i = 0; i < 1000; i++) {
        memcpy(r.dest, &i, sizeof(i));
        r.hops = 1 + i % 7;
        assert_true(offer(t, &r, T0));
    }
    assert_int_equal(qpc_route_count(t), 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        memcpy(r.dest, &i, sizeof(i));
        assert_int_equal(qpc_route_lookup(t, r.dest, &got), 0);
        assert_int_equal(got.hops, 1 + i % 7);
    }
}

/* A stranger minting keys cannot grow the table without bound: the oldest route goes,
 * a typed one stays, and a newcomer older than everything is not kept. */
static void test_route_full_table_drops_oldest_not_manual(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = direct_route(0, "n:1", 1, T0 - 5000);
    struct qpc_route got;
    uint32_t i = 0;

    r.source = QPC_ROUTE_SRC_MANUAL;   /* the oldest entry, but typed by the user */
    memcpy(r.dest, &i, sizeof(i));
    assert_true(offer(t, &r, T0));
    r.source = QPC_ROUTE_SRC_ENVELOPE;
    for (i = 1; i < QPC_ROUTE_TABLE_MAX; i++) {
        memcpy(r.dest, &i, sizeof(i));
        r.last_seen_ms = T0 - 4000 + (i == 1 ? 0 : 1000);   /* dest 1 is the oldest */
        assert_true(offer(t, &r, T0));
    }
    assert_int_equal(qpc_route_count(t), QPC_ROUTE_TABLE_MAX);

    i = QPC_ROUTE_TABLE_MAX;   /* older than everything but the typed route: refused */
    memcpy(r.dest, &i, sizeof(i));
    r.last_seen_ms = T0 - 4500;
    assert_false(offer(t, &r, T0));
    assert_int_equal(qpc_route_lookup(t, r.dest, &got), QPC_ERR_NOT_FOUND);

    r.last_seen_ms = T0;   /* fresh news: the oldest envelope route (dest 1) makes room */
    assert_true(offer(t, &r, T0));
    assert_int_equal(qpc_route_count(t), QPC_ROUTE_TABLE_MAX);
    assert_int_equal(qpc_route_lookup(t, r.dest, &got), 0);
    i = 1;
    memcpy(r.dest, &i, sizeof(i));
    assert_int_equal(qpc_route_lookup(t, r.dest, &got), QPC_ERR_NOT_FOUND);
    i = 0;
    memcpy(r.dest, &i, sizeof(i));
    assert_int_equal(qpc_route_lookup(t, r.dest, &got), 0);
}

static void test_route_names_for_display(void **state)
{
    (void)state;
    assert_string_equal(qpc_route_via_name(QPC_ROUTE_VIA_RELAY), "relay");
    assert_string_equal(qpc_route_via_name((enum qpc_route_via)42), "?");
    assert_string_equal(qpc_route_source_name(QPC_ROUTE_SRC_ENVELOPE), "envelope");
    assert_string_equal(qpc_route_source_name(QPC_ROUTE_SRC_ANNOUNCE), "announce");
    assert_string_equal(qpc_route_source_name((enum qpc_route_source)42), "?");
}


/* ---- announced routes: babeld's feasibility condition ---------------------------- */

#define HOLD_MS 62000u

/* A route to dest_fill through the neighbour via_fill, from an announce with seqno. */
static struct qpc_route announced(uint8_t dest_fill, uint8_t via_fill, uint32_t hops, uint32_t seqno,
                                  uint64_t seen)
{
    struct qpc_route r;

    memset(&r, 0, sizeof(r));
    make_key(r.dest, dest_fill);
    r.via = QPC_ROUTE_VIA_PEER;
    make_key(r.via_peer, via_fill);
    snprintf(r.next_hop, sizeof(r.next_hop), "10.0.0.%u:7000", via_fill);
    r.hops = hops;
    r.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    r.last_seen_ms = seen;
    r.source = QPC_ROUTE_SRC_ANNOUNCE;
    r.has_seqno = true;
    r.seqno = seqno;
    r.hold_ms = HOLD_MS;
    return r;
}

static struct qpc_route_fd fd_of(struct qpc_route_table *t, uint8_t dest_fill)
{
    uint8_t dest[QPC_KEY_LEN];
    struct qpc_route_fd fd;

    make_key(dest, dest_fill);
    assert_int_equal(qpc_route_fd_get(t, dest, &fd), 0);
    return fd;
}

static uint8_t via_of(struct qpc_route_table *t, uint8_t dest_fill)
{
    uint8_t dest[QPC_KEY_LEN];
    struct qpc_route r;

    make_key(dest, dest_fill);
    assert_int_equal(qpc_route_lookup(t, dest, &r), 0);
    return r.via_peer[0];
}

static void test_route_announce_sets_feasibility_distance(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 3, 10, T0);
    struct qpc_route_fd fd;
    uint8_t dest[QPC_KEY_LEN];

    make_key(dest, 0xC0);
    assert_int_equal(qpc_route_fd_get(t, dest, &fd), QPC_ERR_NOT_FOUND);
    assert_true(qpc_route_feasible(t, dest, 1, 16));
    assert_true(offer(t, &r, T0));
    fd = fd_of(t, 0xC0);
    assert_int_equal(fd.seqno, 10);
    assert_int_equal(fd.metric, 3);
    /* An announce route needs its seqno. */
    r.has_seqno = false;
    assert_int_equal(qpc_route_update(t, &r, T0, NULL), QPC_ERR_INVALID);
}

static void test_route_announce_same_seqno_longer_is_unfeasible(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 2, 10, T0);

    assert_true(offer(t, &r, T0));
    /* Another neighbour, same seqno, longer: it may be our own route coming back. */
    r = announced(0xC0, 0xB1, 3, 10, T0 + 1);
    assert_false(offer(t, &r, T0 + 1));
    assert_int_equal(via_of(t, 0xC0), 0xB0);
    assert_int_equal(fd_of(t, 0xC0).metric, 2);
    /* Even once the stored route has gone stale (no loop-free proof for it). */
    r.last_seen_ms = T0 + HOLD_MS + 10;
    assert_false(offer(t, &r, T0 + HOLD_MS + 10));
    assert_int_equal(via_of(t, 0xC0), 0xB0);
}

static void test_route_announce_same_seqno_equal_metric_keeps_current(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 2, 10, T0);

    assert_true(offer(t, &r, T0));
    r = announced(0xC0, 0xB1, 2, 10, T0 + 5);
    assert_true(qpc_route_feasible(t, r.dest, 10, 2));
    assert_false(offer(t, &r, T0 + 5));   /* feasible, but no better: no flapping */
    assert_int_equal(via_of(t, 0xC0), 0xB0);
}

static void test_route_announce_same_seqno_shorter_is_taken(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 4, 10, T0);

    assert_true(offer(t, &r, T0));
    r = announced(0xC0, 0xB1, 2, 10, T0 + 1);
    assert_true(offer(t, &r, T0 + 1));
    assert_int_equal(via_of(t, 0xC0), 0xB1);
    assert_int_equal(fd_of(t, 0xC0).metric, 2);
    assert_int_equal(fd_of(t, 0xC0).seqno, 10);
}

static void test_route_announce_newer_seqno_from_current_next_hop_applies(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 2, 10, T0);

    assert_true(offer(t, &r, T0));
    /* The path through B0 got longer: newer news from the next hop applies. */
    r = announced(0xC0, 0xB0, 5, 11, T0 + 1);
    assert_true(offer(t, &r, T0 + 1));
    assert_int_equal(fd_of(t, 0xC0).metric, 5);
    assert_int_equal(fd_of(t, 0xC0).seqno, 11);
    /* Now the old seqno is unfeasible whatever its metric. */
    r = announced(0xC0, 0xB1, 2, 10, T0 + 2);
    assert_false(qpc_route_feasible(t, r.dest, 10, 1));
    assert_false(offer(t, &r, T0 + 2));
    assert_int_equal(via_of(t, 0xC0), 0xB0);
}

static void test_route_announce_newer_seqno_elsewhere_waits_for_stale(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 2, 10, T0);

    assert_true(offer(t, &r, T0));
    /* Feasible (newer), but longer than the fresh route through B0: kept. */
    r = announced(0xC0, 0xB1, 4, 11, T0 + 1000);
    assert_false(offer(t, &r, T0 + 1000));
    assert_int_equal(via_of(t, 0xC0), 0xB0);
    /* B0 went quiet past its hold time: the feasible route through B1 takes over. */
    r = announced(0xC0, 0xB1, 4, 12, T0 + HOLD_MS + 1);
    assert_true(offer(t, &r, T0 + HOLD_MS + 1));
    assert_int_equal(via_of(t, 0xC0), 0xB1);
    assert_int_equal(fd_of(t, 0xC0).seqno, 12);
    assert_int_equal(fd_of(t, 0xC0).metric, 4);
}

/* A - B - C, and B's route to C reaches A, which sends it back to B: B must not take a
 * route to C through A at C's current seqno, even after its own route to C expired. */
static void test_route_announce_loop_refused_after_expiry(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xC1, 2, 20, T0);

    assert_true(offer(t, &r, T0));
    assert_int_equal(qpc_route_expire(t, T0 + 3 * HOLD_MS, 24u * 3600 * 1000), 1);
    assert_int_equal(qpc_route_count(t), 0);
    r = announced(0xC0, 0xA0, 3, 20, T0 + 3 * HOLD_MS);
    assert_false(offer(t, &r, T0 + 3 * HOLD_MS));
    assert_int_equal(qpc_route_count(t), 0);
    /* C's next announce (a newer seqno) is feasible whichever way it comes. */
    r.seqno = 21;
    assert_true(offer(t, &r, T0 + 3 * HOLD_MS));
}

static void test_route_announce_seqno_wraps(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 2, UINT32_MAX, T0);

    assert_true(offer(t, &r, T0));
    r = announced(0xC0, 0xB1, 6, 0, T0 + 1);   /* 0 is newer than 2^32 - 1 */
    assert_true(qpc_route_feasible(t, r.dest, 0, 6));
    r = announced(0xC0, 0xB0, 6, 0, T0 + 1);
    assert_true(offer(t, &r, T0 + 1));
    assert_int_equal(fd_of(t, 0xC0).seqno, 0);
    assert_false(qpc_route_feasible(t, r.dest, UINT32_MAX, 1));
}

static void test_route_envelope_route_has_no_metric_advantage(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route env, ann = announced(0xC0, 0xB0, 3, 10, T0);

    /* What a neighbour resetting hop_count to 0 would make us learn. */
    memset(&env, 0, sizeof(env));
    make_key(env.dest, 0xC0);
    env.via = QPC_ROUTE_VIA_PEER;
    make_key(env.via_peer, 0xE0);
    env.hops = QPC_ROUTE_HOPS_UNKNOWN;
    env.rtt_ms = QPC_ROUTE_RTT_UNKNOWN;
    env.last_seen_ms = T0;
    env.source = QPC_ROUTE_SRC_ENVELOPE;

    assert_true(offer(t, &ann, T0));
    assert_false(offer(t, &env, T0 + 1));
    env.hops = 1;   /* even one claiming a single hop */
    assert_false(offer(t, &env, T0 + 1));
    assert_int_equal(via_of(t, 0xC0), 0xB0);

    /* Alone it is a fallback, replaced by the first feasible announce. */
    assert_int_equal(qpc_route_remove(t, env.dest), 0);
    env.hops = QPC_ROUTE_HOPS_UNKNOWN;
    assert_true(offer(t, &env, T0 + 2));
    ann = announced(0xC0, 0xB0, 8, 11, T0 + 3);
    assert_true(offer(t, &ann, T0 + 3));
    assert_int_equal(via_of(t, 0xC0), 0xB0);
}

static void test_route_announce_vs_link_and_claims(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route link = direct_route(0xC0, "192.0.2.1:7000", 1, T0);
    struct qpc_route ann = announced(0xC0, 0xB0, 2, 10, T0 + 1);
    struct qpc_route claim = direct_route(0xC0, "192.0.2.9:7000", 1, T0 + 2);

    link.source = QPC_ROUTE_SRC_DIRECT;
    assert_true(offer(t, &link, T0));
    assert_false(offer(t, &ann, T0 + 1));   /* a live link of one hop stays */
    assert_int_equal(qpc_route_remove(t, link.dest), 0);
    assert_true(offer(t, &ann, T0 + 1));
    /* An mDNS claim does not displace a fresh announced route... */
    assert_false(offer(t, &claim, T0 + 2));
    /* ...a link does. */
    link.last_seen_ms = T0 + 3;
    assert_true(offer(t, &link, T0 + 3));
}

/* The link's own route, refreshed by the neighbour's announce, still follows the link. */
static void test_route_link_route_with_seqno_follows_new_links(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route link = direct_route(0xB0, "192.0.2.1:7000", 1, T0);
    struct qpc_route moved = direct_route(0xB0, "192.0.2.2:7000", 1, T0 + 2);
    struct qpc_route relayed = direct_route(0xB0, "192.0.2.9:7000", 2, T0 + 3);
    struct qpc_route r;

    link.source = moved.source = relayed.source = QPC_ROUTE_SRC_DIRECT;
    link.has_seqno = true;
    link.seqno = 4;
    relayed.via = QPC_ROUTE_VIA_RELAY;
    assert_true(offer(t, &link, T0));
    assert_true(offer(t, &moved, T0 + 2));    /* a new link at a new address */
    assert_int_equal(qpc_route_lookup(t, link.dest, &r), 0);
    assert_string_equal(r.next_hop, "192.0.2.2:7000");
    link.last_seen_ms = T0 + 3;
    link.seqno = 5;
    assert_true(offer(t, &link, T0 + 3));     /* its announce on the old one: as short */
    relayed.has_seqno = true;
    relayed.seqno = 6;
    assert_false(offer(t, &relayed, T0 + 4)); /* a relayed link is longer */
}

static void test_route_announce_expires_after_twice_hold(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route r = announced(0xC0, 0xB0, 2, 10, T0);

    assert_true(offer(t, &r, T0));
    assert_int_equal(qpc_route_expire(t, T0 + 2 * HOLD_MS, 24u * 3600 * 1000), 0);
    assert_int_equal(qpc_route_expire(t, T0 + 2 * HOLD_MS + 2, 24u * 3600 * 1000), 1);
    assert_int_equal(fd_of(t, 0xC0).seqno, 10);   /* the FD outlives it */
    assert_int_equal(qpc_route_fd_expire(t, T0 + 1000, 500), 1);
    assert_true(qpc_route_feasible(t, r.dest, 1, 16));
}

static void test_route_remove_via_drops_routes_through_a_neighbour(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route a = announced(0xC0, 0xB0, 2, 1, T0), b = announced(0xC1, 0xB0, 3, 1, T0),
                     c = announced(0xC2, 0xB1, 2, 1, T0);

    assert_true(offer(t, &a, T0));
    assert_true(offer(t, &b, T0));
    assert_true(offer(t, &c, T0));
    assert_int_equal(qpc_route_remove_via(t, a.via_peer), 2);
    assert_int_equal(qpc_route_count(t), 1);
    assert_int_equal(via_of(t, 0xC2), 0xB1);
}

static void test_route_retract_keeps_routes_but_stale(void **state)
{
    struct qpc_route_table *t = *state;
    struct qpc_route a = announced(0xC0, 0xB0, 2, 1, T0), link = direct_route(0xB0, "192.0.2.1:7000", 1, T0),
                     other = announced(0xC0, 0xB1, 4, 1, T0 + 1);
    uint8_t dest[QPC_KEY_LEN];
    struct qpc_route r;

    link.source = QPC_ROUTE_SRC_DIRECT;
    assert_true(offer(t, &a, T0));
    assert_true(offer(t, &link, T0));
    /* A fresh route through B1 with more hops is kept out while B0 is up... */
    assert_false(offer(t, &other, T0 + 1));
    assert_int_equal(qpc_route_retract(t, a.via_peer), 2);   /* through B0, and B0's own */
    assert_int_equal(qpc_route_retract(t, a.via_peer), 0);
    assert_int_equal(qpc_route_count(t), 2);
    make_key(dest, 0xC0);
    assert_int_equal(qpc_route_lookup(t, dest, &r), 0);
    assert_true(r.retracted);
    /* ...and once B0 went, its next announce (a newer seqno) through B1 takes over */
    assert_false(offer(t, &other, T0 + 2));   /* FD (1, 2): the same seqno at 4 hops could loop */
    other.seqno = 2;
    assert_true(offer(t, &other, T0 + 2));
    assert_int_equal(qpc_route_lookup(t, dest, &r), 0);
    assert_false(r.retracted);
    assert_int_equal(r.via_peer[0], 0xB1);
}

static void test_route_fd_list_and_set_round_trip(void **state)
{
    struct qpc_route_table *t = *state, *u = qpc_route_table_new(STALE_MS);
    struct qpc_route a = announced(0xC0, 0xB0, 2, 7, T0), b = announced(0xC1, 0xB0, 3, 9, T0);
    struct qpc_route_fd *fds = NULL, bad = { .metric = 0 };
    size_t n = 0;

    assert_non_null(u);
    assert_true(offer(t, &a, T0));
    assert_true(offer(t, &b, T0));
    assert_int_equal(qpc_route_fd_list(t, &fds, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(qpc_route_fd_set(u, &fds[i]), 0);
    assert_int_equal(qpc_route_fd_set(u, &bad), QPC_ERR_INVALID);
    free(fds);
    assert_false(qpc_route_feasible(u, a.dest, 7, 3));
    assert_true(qpc_route_feasible(u, a.dest, 7, 2));
    assert_false(qpc_route_feasible(u, b.dest, 8, 1));
    qpc_route_table_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_route_inserts_first_route_and_finds_it),
        T(test_route_lookup_of_unknown_destination_is_not_found),
        T(test_route_prefers_fewer_hops),
        T(test_route_same_hops_prefers_fresher),
        T(test_route_stale_route_loses_to_longer_fresh_route),
        T(test_route_stale_offer_does_not_displace_fresh_route),
        T(test_route_same_next_hop_replaces_even_when_longer),
        T(test_route_rtt_not_carried_to_another_path),
        T(test_route_via_peer_distinguishes_next_hop_by_key),
        T(test_route_update_refuses_malformed_routes),
        T(test_route_expire_removes_only_old_entries),
        T(test_route_expire_keeps_routes_seen_after_now),
        T(test_route_list_sorts_by_hops_then_age),
        T(test_route_list_of_empty_table_is_empty),
        T(test_route_remove_deletes_one_destination),
        T(test_route_many_destinations_are_all_found),
        T(test_route_full_table_drops_oldest_not_manual),
        T(test_route_names_for_display),
        T(test_route_announce_sets_feasibility_distance),
        T(test_route_announce_same_seqno_longer_is_unfeasible),
        T(test_route_announce_same_seqno_equal_metric_keeps_current),
        T(test_route_announce_same_seqno_shorter_is_taken),
        T(test_route_announce_newer_seqno_from_current_next_hop_applies),
        T(test_route_announce_newer_seqno_elsewhere_waits_for_stale),
        T(test_route_announce_loop_refused_after_expiry),
        T(test_route_announce_seqno_wraps),
        T(test_route_envelope_route_has_no_metric_advantage),
        T(test_route_announce_vs_link_and_claims),
        T(test_route_announce_expires_after_twice_hold),
        T(test_route_remove_via_drops_routes_through_a_neighbour),
        T(test_route_fd_list_and_set_round_trip),
        T(test_route_retract_keeps_routes_but_stale),
        T(test_route_link_route_with_seqno_follows_new_links),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
