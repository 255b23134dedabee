/*
 * test_store.c: MeshStore keeps, refuses, hands over and forgets envelopes as documented
 * in include/qpc/store.h. Envelopes are built by filling the struct (random ids); the
 * store never looks at signatures.
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
#include "qpc/store.h"

#define T0 1700000000000ull   /* a fixed "now" in ms */
#define SINK_MAX 64

static uint8_t alice[QPC_KEY_LEN], bob[QPC_KEY_LEN];

/*
 * Allocation failure injection. CMakeLists.txt links this test with
 * -Wl,--wrap=malloc,--wrap=calloc, so every malloc/calloc in the statically linked
 * library comes here. allocs_left < 0: never fail; otherwise that many more succeed and
 * every one after fails (out of memory that lasts).
 */
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
static long allocs_left = -1;

static bool alloc_fails(void)
{
    if (allocs_left == 0)
        return true;
    if (allocs_left > 0)
        allocs_left--;
    return false;
}

void *__wrap_malloc(size_t size)
{
    return alloc_fails() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

/* Fills e as a direct (recipient != NULL) or broadcast envelope with a random id. */
static void make_env(struct qpc_envelope *e, const uint8_t *recipient, const char *topic,
                     uint64_t created_at_ms, uint32_t ttl_s, size_t payload_len)
{
    memset(e, 0, sizeof(*e));
    e->version = QPC_ENVELOPE_VERSION;
    randombytes_buf(e->id, sizeof(e->id));
    randombytes_buf(e->sender, sizeof(e->sender));
    if (recipient != NULL) {
        e->has_recipient = true;
        memcpy(e->recipient, recipient, QPC_KEY_LEN);
    }
    if (topic != NULL) {
        e->topic = strdup(topic);
        assert_non_null(e->topic);
    }
    e->created_at_ms = created_at_ms;
    e->ttl_s = ttl_s;
    e->max_hops = QPC_MAX_HOPS_DEFAULT;
    e->payload_len = payload_len;
    if (payload_len > 0) {
        e->payload = malloc(payload_len);
        assert_non_null(e->payload);
        randombytes_buf(e->payload, payload_len);
    }
}

/* Collects what a take hands out; refuses from the refuse_at-th envelope on (0 = never). */
struct sink {
    struct qpc_envelope envs[SINK_MAX];
    size_t n;
    size_t refuse_at;
};

static int sink_take(void *ctx, struct qpc_envelope *env)
{
    struct sink *s = ctx;

    if (s->n >= SINK_MAX || (s->refuse_at != 0 && s->n + 1 >= s->refuse_at))
        return 1;
    s->envs[s->n++] = *env;   /* move */
    return 0;
}

static int clear_take(void *ctx, struct qpc_envelope *env)
{
    size_t *count = ctx;

    qpc_envelope_clear(env);
    (*count)++;
    return 0;
}

static void sink_clear(struct sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        qpc_envelope_clear(&s->envs[i]);
    memset(s, 0, sizeof(*s));
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(alice, sizeof(alice));
    randombytes_buf(bob, sizeof(bob));
    return 0;
}

static void test_store_hands_over_oldest_first(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e[4], copy[4];
    static const uint64_t created[4] = { 3000, 1000, 2000, 1000 };
    static const int order[4] = { 1, 3, 2, 0 };   /* by created_at, ties in arrival order */
    struct sink s = { 0 };
    (void)state;

    assert_non_null(st);
    for (int i = 0; i < 4; i++) {
        make_env(&e[i], alice, NULL, T0 + created[i], 3600, 100 + (size_t)i);
        assert_int_equal(qpc_envelope_copy(&copy[i], &e[i]), 0);
        assert_int_equal(qpc_store_put(st, &e[i], T0 + 5000), 0);
        /* moved: the caller's struct is zeroed and owns nothing */
        assert_null(e[i].payload);
        assert_false(e[i].has_recipient);
    }
    assert_int_equal(qpc_store_take_all_for(st, bob, T0 + 5000, sink_take, &s), 0);
    assert_int_equal(qpc_store_take_all_for(st, alice, T0 + 5000, sink_take, &s), 4);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < 4; i++) {
        const struct qpc_envelope *want = &copy[order[i]];
        assert_memory_equal(s.envs[i].id, want->id, QPC_ID_LEN);
        assert_int_equal(s.envs[i].payload_len, want->payload_len);
        assert_memory_equal(s.envs[i].payload, want->payload, want->payload_len);
    }
    assert_int_equal(qpc_store_take_all_for(st, alice, T0 + 5000, sink_take, &s), 0);
    for (int i = 0; i < 4; i++)
        qpc_envelope_clear(&copy[i]);
    sink_clear(&s);
    qpc_store_free(st);
}

static void test_store_refuses_duplicate_while_held_and_after_take(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e, again;
    size_t count = 0;
    (void)state;

    make_env(&e, alice, NULL, T0, 3600, 50);
    assert_int_equal(qpc_envelope_copy(&again, &e), 0);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    assert_true(qpc_store_seen(st, again.id));
    assert_int_equal(qpc_store_put(st, &again, T0), QPC_ERR_DUPLICATE);
    assert_non_null(again.payload);   /* refused: still the caller's */
    assert_int_equal(qpc_store_take_all_for(st, alice, T0, clear_take, &count), 1);
    assert_true(qpc_store_seen(st, again.id));
    assert_int_equal(qpc_store_put(st, &again, T0 + 1000), QPC_ERR_DUPLICATE);
    qpc_envelope_clear(&again);
    qpc_store_free(st);
}

static void test_store_refuses_when_recipient_full_and_keeps_queue(void **state)
{
    struct qpc_store_limits lim = { .per_queue = 3 };
    struct qpc_store *st = qpc_store_new(&lim);
    struct qpc_envelope e, extra, other;
    uint8_t ids[3][QPC_ID_LEN];
    struct sink s = { 0 };
    struct qpc_store_stats stats;
    (void)state;

    for (int i = 0; i < 3; i++) {
        make_env(&e, alice, NULL, T0 + (uint64_t)i, 3600, 10);
        memcpy(ids[i], e.id, QPC_ID_LEN);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
    }
    make_env(&extra, alice, NULL, T0 - 1, 3600, 10);   /* older than all: no eviction either */
    assert_int_equal(qpc_store_put(st, &extra, T0), QPC_ERR_QUEUE_FULL);
    assert_non_null(extra.payload);
    assert_false(qpc_store_seen(st, extra.id));        /* refused ids are not remembered */

    make_env(&other, bob, NULL, T0, 3600, 10);          /* other recipients are not affected */
    assert_int_equal(qpc_store_put(st, &other, T0), 0);

    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.refused_queue_full, 1);
    assert_int_equal(stats.envelopes, 4);

    assert_int_equal(qpc_store_take_all_for(st, alice, T0, sink_take, &s), 3);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(s.envs[i].id, ids[i], QPC_ID_LEN);
    /* room again: the refused envelope can be offered a second time */
    assert_int_equal(qpc_store_put(st, &extra, T0), 0);
    sink_clear(&s);
    qpc_store_free(st);
}

static void test_store_refuses_when_byte_cap_reached(void **state)
{
    struct qpc_envelope e;
    size_t one, count = 0;
    struct qpc_store_limits lim = { 0 };
    struct qpc_store *st;
    struct qpc_store_stats stats;
    (void)state;

    make_env(&e, alice, NULL, T0, 3600, 1000);
    one = qpc_envelope_mem_size(&e);
    qpc_envelope_clear(&e);
    lim.max_bytes = 3 * one;
    st = qpc_store_new(&lim);
    assert_non_null(st);

    for (int i = 0; i < 3; i++) {
        make_env(&e, i == 0 ? alice : bob, NULL, T0, 3600, 1000);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
    }
    make_env(&e, alice, NULL, T0, 3600, 1000);
    assert_int_equal(qpc_store_put(st, &e, T0), QPC_ERR_STORE_FULL);
    assert_non_null(e.payload);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.bytes, 3 * one);
    assert_int_equal(stats.refused_store_full, 1);

    /* taking frees room: the refused envelope fits now */
    assert_int_equal(qpc_store_take_all_for(st, bob, T0, clear_take, &count), 2);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.bytes, 2 * one);
    qpc_store_free(st);
}

static void test_store_gc_drops_expired_then_stale_dedup_entries(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    const uint64_t grace = QPC_STORE_DEDUP_GRACE_MS;
    struct qpc_envelope e;
    uint8_t id[QPC_ID_LEN], relayed[QPC_ID_LEN];
    struct qpc_store_stats stats;
    (void)state;

    make_env(&e, alice, NULL, T0, 60, 10);
    memcpy(id, e.id, QPC_ID_LEN);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    randombytes_buf(relayed, sizeof(relayed));
    assert_int_equal(qpc_store_mark_seen(st, relayed, T0 + 70000, T0 + 10000), 0);

    assert_int_equal(qpc_store_gc(st, T0 + 59999), 0);        /* still live */
    assert_int_equal(qpc_store_gc(st, T0 + 60000), 1);        /* envelope expired */
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.envelopes, 0);
    assert_int_equal(stats.recipients, 0);
    assert_int_equal(stats.expired, 1);
    assert_int_equal(stats.dedup_entries, 2);
    assert_true(qpc_store_seen(st, id));                      /* but its id is remembered */

    assert_int_equal(qpc_store_gc(st, T0 + 60000 + grace - 1), 0);   /* inside the grace */
    assert_true(qpc_store_seen(st, id));
    assert_int_equal(qpc_store_gc(st, T0 + 60000 + grace), 1);       /* the stored one ends */
    assert_false(qpc_store_seen(st, id));
    assert_true(qpc_store_seen(st, relayed));                 /* it expires 10 s later */
    assert_int_equal(qpc_store_gc(st, T0 + 70000 + grace), 1);
    assert_false(qpc_store_seen(st, relayed));
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.dedup_entries, 0);
    assert_int_equal(stats.dedup_dropped, 2);
    qpc_store_free(st);
}

static void test_store_keeps_dedup_entry_for_the_ttl_however_long(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    const uint64_t ttl_ms = (uint64_t)QPC_TTL_MAX_S * 1000;
    uint8_t id[QPC_ID_LEN];
    (void)state;

    randombytes_buf(id, sizeof(id));
    assert_int_equal(qpc_store_mark_seen(st, id, T0 + ttl_ms, T0), 0);
    assert_int_equal(qpc_store_gc(st, T0 + ttl_ms), 0);
    assert_true(qpc_store_seen(st, id));
    assert_int_equal(qpc_store_gc(st, T0 + ttl_ms + QPC_STORE_DEDUP_GRACE_MS), 1);
    assert_false(qpc_store_seen(st, id));
    qpc_store_free(st);
}

static void test_store_keeps_ids_for_a_configured_window_beyond_ttl(void **state)
{
    struct qpc_store_limits lim = { .dedup_window_ms = 3600 * 1000 };
    struct qpc_store *st = qpc_store_new(&lim);
    uint8_t id[QPC_ID_LEN];
    (void)state;

    randombytes_buf(id, sizeof(id));
    assert_int_equal(qpc_store_mark_seen(st, id, T0 + 1, T0), 0);
    assert_int_equal(qpc_store_gc(st, T0 + 3600 * 1000 - 1), 0);
    assert_true(qpc_store_seen(st, id));
    assert_int_equal(qpc_store_gc(st, T0 + 3600 * 1000), 1);
    qpc_store_free(st);
}

static void test_store_mark_seen_reports_duplicate_and_extends(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    const uint64_t grace = QPC_STORE_DEDUP_GRACE_MS;
    struct qpc_envelope e;
    (void)state;

    make_env(&e, alice, NULL, T0, 3600, 10);
    assert_false(qpc_store_seen(st, e.id));
    assert_int_equal(qpc_store_mark_seen(st, e.id, T0 + 3600000, T0), 0);
    assert_int_equal(qpc_store_mark_seen(st, e.id, T0 + 3605000, T0 + 5000), QPC_ERR_DUPLICATE);
    assert_int_equal(qpc_store_put(st, &e, T0), QPC_ERR_DUPLICATE);
    /* the second mark moved the keep time 5 s later */
    assert_int_equal(qpc_store_gc(st, T0 + 3600000 + grace), 0);
    assert_int_equal(qpc_store_gc(st, T0 + 3605000 + grace), 1);
    qpc_envelope_clear(&e);
    qpc_store_free(st);
}

static void test_store_refuses_expired_put(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e;
    struct qpc_store_stats stats;
    (void)state;

    make_env(&e, alice, NULL, T0, 60, 10);
    assert_int_equal(qpc_store_put(st, &e, T0 + 60000), QPC_ERR_EXPIRED);
    assert_non_null(e.payload);
    assert_false(qpc_store_seen(st, e.id));
    assert_int_equal(qpc_store_put(st, &e, T0 + 59999), 0);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.refused_expired, 1);
    assert_int_equal(stats.put, 1);
    qpc_store_free(st);
}

static void test_store_refuses_envelope_without_recipient_or_topic(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e;
    (void)state;

    make_env(&e, NULL, NULL, T0, 60, 10);
    assert_int_equal(qpc_store_put(st, &e, T0), QPC_ERR_INVALID);
    qpc_envelope_clear(&e);
    qpc_store_free(st);
}

static void test_store_take_skips_expired_envelopes(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope shortlived, longlived;
    uint8_t long_id[QPC_ID_LEN], short_id[QPC_ID_LEN];
    struct sink s = { 0 };
    struct qpc_store_stats stats;
    (void)state;

    make_env(&shortlived, alice, NULL, T0, 10, 10);
    make_env(&longlived, alice, NULL, T0 + 1, 3600, 10);
    memcpy(short_id, shortlived.id, QPC_ID_LEN);
    memcpy(long_id, longlived.id, QPC_ID_LEN);
    assert_int_equal(qpc_store_put(st, &shortlived, T0), 0);
    assert_int_equal(qpc_store_put(st, &longlived, T0), 0);
    assert_int_equal(qpc_store_take_all_for(st, alice, T0 + 10000, sink_take, &s), 1);
    assert_memory_equal(s.envs[0].id, long_id, QPC_ID_LEN);
    assert_true(qpc_store_seen(st, short_id));
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.expired, 1);
    assert_int_equal(stats.forwarded, 1);
    assert_int_equal(stats.envelopes, 0);
    assert_int_equal(stats.bytes, 0);
    sink_clear(&s);
    qpc_store_free(st);
}

static void test_store_take_stops_where_callback_refuses(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e;
    uint8_t ids[4][QPC_ID_LEN];
    struct sink s = { 0 };
    struct qpc_store_stats stats;
    (void)state;

    for (int i = 0; i < 4; i++) {
        make_env(&e, alice, NULL, T0 + (uint64_t)i, 3600, 10);
        memcpy(ids[i], e.id, QPC_ID_LEN);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
    }
    s.refuse_at = 3;   /* accept two, refuse the third */
    assert_int_equal(qpc_store_take_all_for(st, alice, T0, sink_take, &s), 2);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.envelopes, 2);
    assert_int_equal(stats.recipients, 1);
    s.refuse_at = 0;
    assert_int_equal(qpc_store_take_all_for(st, alice, T0, sink_take, &s), 2);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(s.envs[i].id, ids[i], QPC_ID_LEN);
    sink_clear(&s);
    qpc_store_free(st);
}

static void test_store_stats_count_every_outcome(void **state)
{
    struct qpc_store_limits lim = { .per_queue = 2 };
    struct qpc_store *st = qpc_store_new(&lim);
    struct qpc_envelope e, dup;
    struct qpc_store_stats stats;
    size_t count = 0, expected_bytes = 0;
    uint8_t id[QPC_ID_LEN];
    (void)state;

    make_env(&e, alice, NULL, T0, 3600, 100);
    expected_bytes += qpc_envelope_mem_size(&e);
    assert_int_equal(qpc_envelope_copy(&dup, &e), 0);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    assert_int_equal(qpc_store_put(st, &dup, T0), QPC_ERR_DUPLICATE);
    qpc_envelope_clear(&dup);
    make_env(&e, alice, NULL, T0, 3600, 200);
    expected_bytes += qpc_envelope_mem_size(&e);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    make_env(&e, alice, NULL, T0, 3600, 10);
    assert_int_equal(qpc_store_put(st, &e, T0), QPC_ERR_QUEUE_FULL);
    qpc_envelope_clear(&e);
    make_env(&e, NULL, "news", T0, 3600, 30);
    expected_bytes += qpc_envelope_mem_size(&e);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    randombytes_buf(id, sizeof(id));
    assert_int_equal(qpc_store_mark_seen(st, id, T0, T0), 0);

    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.envelopes, 3);
    assert_int_equal(stats.bytes, expected_bytes);
    assert_int_equal(stats.recipients, 1);
    assert_int_equal(stats.topics, 1);
    assert_int_equal(stats.dedup_entries, 4);
    assert_int_equal(stats.put, 3);
    assert_int_equal(stats.refused_duplicate, 1);
    assert_int_equal(stats.refused_queue_full, 1);
    assert_int_equal(stats.refused_expired, 0);
    assert_int_equal(stats.refused_store_full, 0);

    assert_int_equal(qpc_store_take_all_for(st, alice, T0, clear_take, &count), 2);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.forwarded, 2);
    assert_int_equal(stats.envelopes, 1);
    assert_int_equal(stats.recipients, 0);
    assert_int_equal(stats.dedup_entries, 4);
    qpc_store_free(st);
}

struct queue_count {
    size_t queues, envelopes, topics;
};

static int count_queue(void *ctx, const struct qpc_store_queue_info *q)
{
    struct queue_count *c = ctx;

    c->queues++;
    c->envelopes += q->count;
    if (q->topic != NULL) {
        assert_null(q->recipient);
        c->topics++;
    } else {
        assert_non_null(q->recipient);
    }
    assert_true(q->bytes > 0);
    return 0;
}

static void test_store_keeps_many_recipients_apart(void **state)
{
    enum { RECIPIENTS = 2000, EACH = 5 };
    struct qpc_store *st = qpc_store_new(NULL);
    uint8_t (*keys)[QPC_KEY_LEN] = malloc(RECIPIENTS * QPC_KEY_LEN);
    struct queue_count c = { 0 };
    struct qpc_store_stats stats;
    struct qpc_envelope e;
    struct sink s = { 0 };
    (void)state;

    assert_non_null(keys);
    randombytes_buf(keys, RECIPIENTS * QPC_KEY_LEN);
    for (int k = 0; k < EACH; k++)
        for (int r = 0; r < RECIPIENTS; r++) {
            make_env(&e, keys[r], NULL, T0 + (uint64_t)k, 3600, 16);
            e.payload[0] = (uint8_t)k;
            assert_int_equal(qpc_store_put(st, &e, T0), 0);
        }
    assert_int_equal(qpc_store_foreach_queue(st, count_queue, &c), RECIPIENTS);
    assert_int_equal(c.envelopes, RECIPIENTS * EACH);
    assert_int_equal(c.topics, 0);

    for (int r = 0; r < RECIPIENTS; r++) {
        assert_int_equal(qpc_store_take_all_for(st, keys[r], T0, sink_take, &s), EACH);
        for (int k = 0; k < EACH; k++) {
            assert_memory_equal(s.envs[k].recipient, keys[r], QPC_KEY_LEN);
            assert_int_equal(s.envs[k].payload[0], k);
        }
        sink_clear(&s);
    }
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.envelopes, 0);
    assert_int_equal(stats.recipients, 0);
    assert_int_equal(stats.dedup_entries, RECIPIENTS * EACH);
    free(keys);
    qpc_store_free(st);
}

struct topic_seen {
    size_t n;
    char topics[8][16];
};

static int visit_broadcast(void *ctx, const struct qpc_envelope *env)
{
    struct topic_seen *t = ctx;

    assert_false(env->has_recipient);
    assert_true(t->n < 8);
    strcpy(t->topics[t->n++], env->topic);
    return 0;
}

static void test_store_keeps_broadcasts_per_topic_until_taken(void **state)
{
    struct qpc_store_limits lim = { .per_queue = 2 };
    struct qpc_store *st = qpc_store_new(&lim);
    struct qpc_envelope e;
    struct topic_seen t = { 0 };
    struct queue_count c = { 0 };
    struct qpc_store_stats stats;
    size_t count = 0;
    int news = 0, help = 0;
    (void)state;

    make_env(&e, NULL, "news", T0, 3600, 10);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    make_env(&e, NULL, "news", T0 + 1, 3600, 10);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    make_env(&e, NULL, "news", T0 + 2, 3600, 10);   /* capacity is per topic */
    assert_int_equal(qpc_store_put(st, &e, T0), QPC_ERR_QUEUE_FULL);
    qpc_envelope_clear(&e);
    make_env(&e, NULL, "help", T0, 30, 10);
    assert_int_equal(qpc_store_put(st, &e, T0), 0);

    /* visiting shows every live broadcast and removes nothing */
    assert_int_equal(qpc_store_foreach_broadcast(st, T0, visit_broadcast, &t), 3);
    for (size_t i = 0; i < t.n; i++) {
        news += strcmp(t.topics[i], "news") == 0;
        help += strcmp(t.topics[i], "help") == 0;
    }
    assert_int_equal(news, 2);
    assert_int_equal(help, 1);
    memset(&t, 0, sizeof(t));
    assert_int_equal(qpc_store_foreach_broadcast(st, T0 + 30000, visit_broadcast, &t), 2);

    assert_int_equal(qpc_store_foreach_queue(st, count_queue, &c), 2);
    assert_int_equal(c.topics, 2);
    assert_int_equal(c.envelopes, 3);

    assert_int_equal(qpc_store_gc(st, T0 + 30000), 1);   /* "help" expired */
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.topics, 1);
    assert_int_equal(stats.envelopes, 2);

    assert_int_equal(qpc_store_take_topic(st, "news", T0, clear_take, &count), 2);
    assert_int_equal(qpc_store_take_topic(st, "news", T0, clear_take, &count), 0);
    assert_int_equal(qpc_store_take_topic(st, "help", T0 + 30000, clear_take, &count), 0);
    assert_int_equal(count, 2);
    qpc_store_free(st);
}

static void test_store_free_releases_held_taken_and_marked(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e;
    uint8_t id[QPC_ID_LEN];
    size_t count = 0;
    (void)state;

    for (int i = 0; i < 50; i++) {
        make_env(&e, i % 2 ? alice : bob, NULL, T0 + (uint64_t)i, 3600, 64);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
        make_env(&e, NULL, i % 3 ? "a" : "b", T0, 3600, 64);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
        randombytes_buf(id, sizeof(id));
        assert_int_equal(qpc_store_mark_seen(st, id, T0 + 1000, T0), 0);
    }
    assert_int_equal(qpc_store_take_all_for(st, alice, T0, clear_take, &count), 25);
    qpc_store_free(st);   /* ASan's leak check verifies that everything was released */
    qpc_store_free(NULL);
}

static void test_store_put_out_of_memory_changes_nothing(void **state)
{
    struct qpc_envelope e, direct, broadcast;
    struct qpc_store_stats stats;
    long k;
    (void)state;

    make_env(&direct, alice, NULL, T0, 3600, 10);
    make_env(&broadcast, NULL, "news", T0, 3600, 10);
    /* direct or broadcast; into an empty store or one whose dedup table exists */
    for (int which = 0; which < 4; which++) {
        const bool premark = which & 2;

        /* fail the k-th allocation and all after it, for every k until put succeeds */
        for (k = 0;; k++) {
            struct qpc_store *st = qpc_store_new(NULL);
            uint8_t other[QPC_ID_LEN];
            int rc;

            assert_non_null(st);
            randombytes_buf(other, sizeof(other));
            if (premark)
                assert_int_equal(qpc_store_mark_seen(st, other, T0, T0), 0);
            assert_int_equal(qpc_envelope_copy(&e, (which & 1) ? &broadcast : &direct), 0);
            allocs_left = k;
            rc = qpc_store_put(st, &e, T0);
            allocs_left = -1;
            qpc_store_get_stats(st, &stats);
            if (rc == 0) {
                assert_int_equal(stats.envelopes, 1);
                qpc_store_free(st);
                break;
            }
            assert_int_equal(rc, QPC_ERR_NOMEM);
            assert_non_null(e.payload);              /* still the caller's */
            assert_false(qpc_store_seen(st, e.id));
            assert_int_equal(stats.envelopes, 0);
            assert_int_equal(stats.bytes, 0);
            assert_int_equal(stats.recipients + stats.topics, 0);
            assert_int_equal(stats.dedup_entries, premark ? 1 : 0);
            qpc_envelope_clear(&e);
            qpc_store_free(st);
        }
        assert_true(k > 0);   /* injection works: at least one allocation failed */
    }
    qpc_envelope_clear(&direct);
    qpc_envelope_clear(&broadcast);
}

static void test_store_take_and_gc_out_of_memory_keep_dedup_entries(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e;
    uint8_t ids[6][QPC_ID_LEN], marked[QPC_ID_LEN];
    struct qpc_store_stats stats;
    struct sink s = { 0 };
    (void)state;

    for (int i = 0; i < 6; i++) {
        /* three for alice that live, three for bob that expire after 10 s */
        make_env(&e, i < 3 ? alice : bob, NULL, T0 + (uint64_t)i, i < 3 ? 3600 : 10, 10);
        memcpy(ids[i], e.id, QPC_ID_LEN);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
    }
    randombytes_buf(marked, sizeof(marked));
    allocs_left = 0;
    assert_int_equal(qpc_store_mark_seen(st, marked, T0, T0), QPC_ERR_NOMEM);
    assert_int_equal(qpc_store_take_all_for(st, alice, T0, sink_take, &s), 3);
    assert_int_equal(qpc_store_gc(st, T0 + 20000), 3);
    allocs_left = -1;

    assert_false(qpc_store_seen(st, marked));
    for (int i = 0; i < 6; i++)
        assert_true(qpc_store_seen(st, ids[i]));
    for (int i = 0; i < 3; i++)
        assert_memory_equal(s.envs[i].id, ids[i], QPC_ID_LEN);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.envelopes, 0);
    assert_int_equal(stats.dedup_entries, 6);
    assert_int_equal(qpc_store_gc(st, T0 + 3600 * 1000 + QPC_STORE_DEDUP_GRACE_MS + 10), 6);
    /* (the kept big blocks are freed whole: ASan checks) */
    sink_clear(&s);
    qpc_store_free(st);
}

/* Room for n dedup entries (the store counts each at the size of a stand-alone one). */
static size_t budget_for(size_t n)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_store_stats stats;
    uint8_t id[QPC_ID_LEN];

    randombytes_buf(id, sizeof(id));
    assert_int_equal(qpc_store_mark_seen(st, id, T0 + 1000, T0), 0);
    qpc_store_get_stats(st, &stats);
    qpc_store_free(st);
    return n * stats.dedup_bytes;
}

/* A flood of fresh ids fills the dedup set and is then refused: no id still within its
 * TTL is forgotten to make room, so none can be accepted twice. */
static void test_store_refuses_new_ids_when_dedup_bytes_are_full_and_forgets_none(void **state)
{
    enum { BOUND = 100, FLOOD = 10000 };
    struct qpc_store_limits lim = { .dedup_max_bytes = budget_for(BOUND) };
    struct qpc_store *st = qpc_store_new(&lim);
    static uint8_t ids[FLOOD][QPC_ID_LEN];
    struct qpc_store_stats stats;
    struct qpc_envelope e;
    size_t accepted = 0;
    (void)state;

    for (size_t i = 0; i < FLOOD; i++) {
        int rc;

        randombytes_buf(ids[i], QPC_ID_LEN);
        rc = qpc_store_mark_seen(st, ids[i], T0 + 60000, T0 + i);
        assert_true(rc == 0 || rc == QPC_ERR_STORE_FULL);
        accepted += rc == 0;
    }
    assert_int_equal(accepted, BOUND);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.dedup_entries, BOUND);
    assert_true(stats.dedup_bytes <= lim.dedup_max_bytes);
    assert_int_equal(stats.refused_dedup_full, FLOOD - BOUND);
    for (size_t i = 0; i < BOUND; i++)
        assert_true(qpc_store_seen(st, ids[i]));   /* the first ones are all still known */
    /* An envelope with a new id is refused too, temporarily, and left to the caller. */
    make_env(&e, alice, NULL, T0, 3600, 10);
    assert_int_equal(qpc_store_put(st, &e, T0 + FLOOD), QPC_ERR_STORE_FULL);
    assert_non_null(e.payload);
    /* Once their TTL (and the grace) is over, gc makes room again. */
    assert_int_equal(qpc_store_gc(st, T0 + 60000 + QPC_STORE_DEDUP_GRACE_MS + FLOOD), BOUND);
    assert_int_equal(qpc_store_put(st, &e, T0 + 60000 + QPC_STORE_DEDUP_GRACE_MS + FLOOD), 0);
    qpc_store_free(st);
}

/* Held envelopes count against the dedup bytes from the start, so taking one (which
 * turns its record into a stand-alone one) never needs room that is not there. */
static void test_store_counts_held_envelopes_against_dedup_bytes(void **state)
{
    struct qpc_store_limits lim = { .dedup_max_bytes = budget_for(3) };
    struct qpc_store *st = qpc_store_new(&lim);
    struct qpc_envelope e;
    uint8_t held[3][QPC_ID_LEN], marked[QPC_ID_LEN];
    struct qpc_store_stats stats;
    size_t count = 0;
    (void)state;

    for (int i = 0; i < 3; i++) {
        make_env(&e, alice, NULL, T0 + (uint64_t)i, 3600, 10);
        memcpy(held[i], e.id, QPC_ID_LEN);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
    }
    randombytes_buf(marked, QPC_ID_LEN);
    assert_int_equal(qpc_store_mark_seen(st, marked, T0 + 1000, T0), QPC_ERR_STORE_FULL);
    assert_int_equal(qpc_store_take_all_for(st, alice, T0, clear_take, &count), 3);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.dedup_entries, 3);
    for (int i = 0; i < 3; i++)
        assert_true(qpc_store_seen(st, held[i]));
    assert_false(qpc_store_seen(st, marked));
    qpc_store_free(st);
}

/* When unqueue cannot allocate a small record, the big block stays as the id's record:
 * still counted once, and freed whole by gc (ASan checks). */
static void test_store_keeps_big_block_as_record_when_take_cannot_allocate(void **state)
{
    struct qpc_store_limits lim = { .dedup_max_bytes = budget_for(3) };
    struct qpc_store *st = qpc_store_new(&lim);
    struct qpc_envelope e;
    uint8_t ids[3][QPC_ID_LEN];
    struct qpc_store_stats stats;
    struct sink s = { 0 };
    (void)state;

    for (int i = 0; i < 3; i++) {
        make_env(&e, alice, NULL, T0 + (uint64_t)i, 3600, 10);
        memcpy(ids[i], e.id, QPC_ID_LEN);
        assert_int_equal(qpc_store_put(st, &e, T0), 0);
    }
    allocs_left = 0;
    assert_int_equal(qpc_store_take_all_for(st, alice, T0, sink_take, &s), 3);
    allocs_left = -1;
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.dedup_entries, 3);
    for (int i = 0; i < 3; i++)
        assert_true(qpc_store_seen(st, ids[i]));
    assert_int_equal(qpc_store_gc(st, T0 + 3600 * 1000 + QPC_STORE_DEDUP_GRACE_MS + 2), 3);
    sink_clear(&s);
    qpc_store_free(st);
}

/* A forged copy (same content, bad signature) is remembered by content AND signature:
 * its replay is refused by lookup, and the real envelope is not hidden by it. */
static void test_store_remembers_refused_envelopes_by_content_and_signature(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope real, forged;
    struct qpc_store_stats stats;
    (void)state;

    make_env(&real, NULL, "news", T0, 3600, 10);
    randombytes_buf(real.signature, sizeof(real.signature));
    assert_int_equal(qpc_envelope_copy(&forged, &real), 0);
    forged.signature[0] ^= 1;
    assert_int_equal(qpc_store_refused(st, &forged), 0);
    assert_int_equal(qpc_store_mark_refused(st, &forged, QPC_ERR_BAD_SIGNATURE, T0), 0);
    assert_int_equal(qpc_store_refused(st, &forged), QPC_ERR_BAD_SIGNATURE);
    assert_int_equal(qpc_store_mark_refused(st, &forged, QPC_ERR_BAD_SIGNATURE, T0),
                     QPC_ERR_DUPLICATE);
    assert_int_equal(qpc_store_refused(st, &real), 0);          /* same id, other signature */
    assert_false(qpc_store_seen(st, real.id));                  /* and not in the dedup set */
    /* Refusals that depend on the time or the hop count are not remembered. */
    forged.signature[1] ^= 1;
    assert_int_equal(qpc_store_mark_refused(st, &forged, QPC_ERR_EXPIRED, T0), QPC_ERR_INVALID);
    assert_int_equal(qpc_store_mark_refused(st, &forged, QPC_ERR_HOP_LIMIT, T0), QPC_ERR_INVALID);
    assert_int_equal(qpc_store_refused(st, &forged), 0);
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.refused_entries, 1);
    /* gc drops it once past the expiry it claimed. */
    assert_int_equal(qpc_store_gc(st, T0 + 3600 * 1000), 1);
    forged.signature[1] ^= 1;
    assert_int_equal(qpc_store_refused(st, &forged), 0);
    qpc_envelope_clear(&real);
    qpc_envelope_clear(&forged);
    qpc_store_free(st);
}

/* The refused set is bounded by count and forgets its oldest first. */
static void test_store_refused_set_forgets_oldest_beyond_its_bound(void **state)
{
    struct qpc_store_limits lim = { .max_refused = 4 };
    struct qpc_store *st = qpc_store_new(&lim);
    struct qpc_envelope e[6];
    struct qpc_store_stats stats;
    (void)state;

    for (int i = 0; i < 6; i++) {
        make_env(&e[i], NULL, "news", T0, 3600, 4);
        assert_int_equal(qpc_store_mark_refused(st, &e[i], QPC_ERR_BAD_SIGNATURE, T0), 0);
    }
    qpc_store_get_stats(st, &stats);
    assert_int_equal(stats.refused_entries, 4);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(qpc_store_refused(st, &e[i]), i < 2 ? 0 : QPC_ERR_BAD_SIGNATURE);
        qpc_envelope_clear(&e[i]);
    }
    qpc_store_free(st);   /* ASan: every refusal freed */
}

static int kept_hops(void *ctx, const struct qpc_envelope *env)
{
    *(uint32_t *)ctx = env->hop_count;
    return 0;
}

/* A later copy of a broadcast goes on only when it came by fewer hops than every copy
 * noted before, can still go on, and only a few times per id; the kept copy then goes
 * to peers met later with the fewer hops too; a forged signature is no kept copy. */
static void test_store_passes_on_later_copies_by_fewer_hops(void **state)
{
    struct qpc_store *st = qpc_store_new(NULL);
    struct qpc_envelope e, copy, mine, other;
    uint8_t id[QPC_ID_LEN];
    uint32_t hops = 0;
    size_t count = 0;
    (void)state;

    make_env(&e, NULL, "news", T0, 3600, 10);
    randombytes_buf(e.signature, sizeof(e.signature));
    e.hop_count = 8;                        /* arrived at its limit (max_hops 8) */
    assert_int_equal(qpc_envelope_copy(&copy, &e), 0);
    memcpy(id, e.id, QPC_ID_LEN);
    assert_int_equal(qpc_store_note_hops(st, id, 8), QPC_ERR_NOT_FOUND);   /* put first */
    assert_int_equal(qpc_store_put(st, &e, T0), 0);
    assert_false(qpc_store_goes_further(st, &copy));   /* nothing noted: no later copies */
    assert_int_equal(qpc_store_note_hops(st, id, 8), 0);
    assert_false(qpc_store_goes_further(st, &copy));   /* as many hops */
    copy.hop_count = 5;
    assert_true(qpc_store_goes_further(st, &copy));
    assert_true(qpc_store_holds_copy(st, &copy));
    copy.signature[0] ^= 1;
    assert_false(qpc_store_holds_copy(st, &copy));     /* same content, other signature */
    copy.signature[0] ^= 1;
    assert_int_equal(qpc_store_note_hops(st, id, 5), 0);
    qpc_store_foreach_broadcast(st, T0, kept_hops, &hops);
    assert_int_equal(hops, 6);                         /* replays go on as this copy did */
    assert_false(qpc_store_goes_further(st, &copy));   /* 5 again */
    copy.hop_count = 7;
    assert_false(qpc_store_goes_further(st, &copy));
    /* Two more later copies, each by fewer hops, then no more: a neighbour making up
     * hop counts makes an id go on a bounded number of times. */
    for (uint32_t h = 4; h >= 3; h--) {
        copy.hop_count = h;
        assert_true(qpc_store_goes_further(st, &copy));
        assert_int_equal(qpc_store_note_hops(st, id, h), 0);
    }
    copy.hop_count = 0;
    assert_false(qpc_store_goes_further(st, &copy));
    /* What was noted outlives the envelope: taken, the id is still known by its hops. */
    assert_int_equal(qpc_store_take_topic(st, "news", T0, clear_take, &count), 1);
    assert_false(qpc_store_holds_copy(st, &copy));
    assert_false(qpc_store_goes_further(st, &copy));

    /* Marked seen only (a relay at the hop limit): a later copy by fewer hops goes on,
     * but there is no kept copy to vouch for its signature. */
    make_env(&other, NULL, "news", T0, 3600, 10);
    other.max_hops = 3;
    assert_int_equal(qpc_store_mark_seen(st, other.id, qpc_envelope_expires_at_ms(&other), T0), 0);
    assert_int_equal(qpc_store_note_hops(st, other.id, 3), 0);
    other.hop_count = 3;
    assert_false(qpc_store_goes_further(st, &other));
    other.hop_count = 2;
    assert_true(qpc_store_goes_further(st, &other));
    assert_false(qpc_store_holds_copy(st, &other));
    /* A copy at its own limit cannot go further, however few hops were noted before. */
    other.hop_count = 3;
    assert_int_equal(qpc_store_note_hops(st, other.id, 2), 0);
    other.max_hops = 2;   /* (a copy's max_hops is signed; here only the rule is tested) */
    other.hop_count = 2;
    assert_false(qpc_store_goes_further(st, &other));

    /* My own broadcast (never noted) has no later copies, whatever their hops. */
    make_env(&mine, NULL, "news", T0, 3600, 10);
    qpc_envelope_clear(&copy);
    assert_int_equal(qpc_envelope_copy(&copy, &mine), 0);
    assert_int_equal(qpc_store_put(st, &mine, T0), 0);
    assert_false(qpc_store_goes_further(st, &copy));
    qpc_envelope_clear(&copy);
    qpc_envelope_clear(&other);
    qpc_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_hands_over_oldest_first),
        cmocka_unit_test(test_store_refuses_duplicate_while_held_and_after_take),
        cmocka_unit_test(test_store_refuses_when_recipient_full_and_keeps_queue),
        cmocka_unit_test(test_store_refuses_when_byte_cap_reached),
        cmocka_unit_test(test_store_gc_drops_expired_then_stale_dedup_entries),
        cmocka_unit_test(test_store_keeps_dedup_entry_for_the_ttl_however_long),
        cmocka_unit_test(test_store_keeps_ids_for_a_configured_window_beyond_ttl),
        cmocka_unit_test(test_store_mark_seen_reports_duplicate_and_extends),
        cmocka_unit_test(test_store_refuses_expired_put),
        cmocka_unit_test(test_store_refuses_envelope_without_recipient_or_topic),
        cmocka_unit_test(test_store_take_skips_expired_envelopes),
        cmocka_unit_test(test_store_take_stops_where_callback_refuses),
        cmocka_unit_test(test_store_stats_count_every_outcome),
        cmocka_unit_test(test_store_keeps_many_recipients_apart),
        cmocka_unit_test(test_store_keeps_broadcasts_per_topic_until_taken),
        cmocka_unit_test(test_store_free_releases_held_taken_and_marked),
        cmocka_unit_test(test_store_put_out_of_memory_changes_nothing),
        cmocka_unit_test(test_store_take_and_gc_out_of_memory_keep_dedup_entries),
        cmocka_unit_test(test_store_refuses_new_ids_when_dedup_bytes_are_full_and_forgets_none),
        cmocka_unit_test(test_store_counts_held_envelopes_against_dedup_bytes),
        cmocka_unit_test(test_store_keeps_big_block_as_record_when_take_cannot_allocate),
        cmocka_unit_test(test_store_remembers_refused_envelopes_by_content_and_signature),
        cmocka_unit_test(test_store_refused_set_forgets_oldest_beyond_its_bound),
        cmocka_unit_test(test_store_passes_on_later_copies_by_fewer_hops),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
