/*
 * bench_store.c: MeshStore throughput on one core and its memory cost per envelope.
 *
 * For two store sizes (one that fits in the CPU caches, as on a router or a client,
 * and one a busy node might hold) it prints put, take and dedup-check operations per
 * second of CPU time on one core, each the median of RUNS runs, and the bytes the store allocates per held
 * envelope beyond the envelope itself, measured with mallinfo2() so malloc's chunk
 * headers and the hash tables' bucket arrays count too. Figures only; nothing is asserted.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "qpc/store.h"

#define PAYLOAD 256
#define RUNS 5
#define T0 1700000000000ull

struct workload {
    size_t n, recipients;
    uint8_t (*keys)[QPC_KEY_LEN];      /* recipients */
    struct qpc_envelope *envs;         /* envelopes ready to be put */
    struct qpc_envelope *out;          /* what takes hand back */
    size_t out_n;
    uint8_t (*known)[QPC_ID_LEN];      /* ids of envs (put zeroes envs) */
    uint8_t (*unknown)[QPC_ID_LEN];    /* ids never stored */
};

struct figures {
    double put, take, seen;            /* ops/s */
    double overhead;                   /* store bytes per envelope beyond the envelope */
    double overhead_with_chunks;       /* same, plus malloc headers of caller's payloads */
    double dedup_only;                 /* bytes per id once every envelope was taken */
    size_t env_size;                   /* qpc_envelope_mem_size of one envelope */
};

/* CPU time of this thread: on a shared machine, time spent preempted does not count. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* Fills w->envs with fresh envelopes (new random ids, payloads malloc'd). */
static void make_envelopes(struct workload *w)
{
    randombytes_buf(w->known, w->n * QPC_ID_LEN);
    for (size_t i = 0; i < w->n; i++) {
        struct qpc_envelope *e = &w->envs[i];

        memset(e, 0, sizeof(*e));
        e->version = QPC_ENVELOPE_VERSION;
        memcpy(e->id, w->known[i], QPC_ID_LEN);
        e->has_recipient = true;
        memcpy(e->recipient, w->keys[i % w->recipients], QPC_KEY_LEN);
        e->created_at_ms = T0 + i;
        e->ttl_s = QPC_TTL_DEFAULT_S;
        e->max_hops = QPC_MAX_HOPS_DEFAULT;
        e->payload_len = PAYLOAD;
        e->payload = malloc(PAYLOAD);
        if (e->payload == NULL)
            abort();
        memset(e->payload, (int)(i & 0xff), PAYLOAD);
    }
}

static int take_into_out(void *ctx, struct qpc_envelope *env)
{
    struct workload *w = ctx;

    w->out[w->out_n++] = *env;   /* move */
    return 0;
}

/* One run: fills the store, checks ids, drains it. Returns 0 or -1 on a surprise. */
static int run_once(struct workload *w, struct figures *f)
{
    struct qpc_store_limits lim = { .per_queue = (uint32_t)w->n, .max_bytes = (size_t)1 << 40 };
    size_t before_envs, before_put, after_put, after_take, hits = 0, env_bytes = 0;
    struct qpc_store *st;
    double t;
    int ret = -1;

    before_envs = heap_in_use();
    make_envelopes(w);
    before_put = heap_in_use();
    for (size_t i = 0; i < w->n; i++)
        env_bytes += qpc_envelope_mem_size(&w->envs[i]);
    f->env_size = env_bytes / w->n;
    st = qpc_store_new(&lim);
    if (st == NULL)
        return -1;

    t = now_s();
    for (size_t i = 0; i < w->n; i++)
        if (qpc_store_put(st, &w->envs[i], T0) != 0)
            goto out;
    f->put = (double)w->n / (now_s() - t);
    after_put = heap_in_use();
    /* the store's block per envelope holds the struct itself: subtract only that */
    f->overhead = ((double)(after_put - before_put) - (double)(w->n * sizeof(struct qpc_envelope))) / (double)w->n;
    f->overhead_with_chunks = ((double)(after_put - before_envs) - (double)env_bytes) / (double)w->n;
    if (after_put == before_put)   /* another allocator (ASan) hides the heap from mallinfo2 */
        f->overhead = f->overhead_with_chunks = NAN;

    /* dedup checks: as many known (held) ids as unknown ones */
    t = now_s();
    for (size_t i = 0; i < w->n; i++) {
        hits += qpc_store_seen(st, w->known[i]);
        hits += qpc_store_seen(st, w->unknown[i]);
    }
    f->seen = 2.0 * (double)w->n / (now_s() - t);
    if (hits != w->n)
        goto out;

    t = now_s();
    for (size_t r = 0; r < w->recipients; r++)
        qpc_store_take_all_for(st, w->keys[r], T0, take_into_out, w);
    f->take = (double)w->out_n / (now_s() - t);
    if (w->out_n != w->n)
        goto out;
    for (size_t i = 0; i < w->out_n; i++)
        qpc_envelope_clear(&w->out[i]);
    w->out_n = 0;
    after_take = heap_in_use();
    f->dedup_only = isnan(f->overhead) ? NAN : (double)(after_take - before_envs) / (double)w->n;
    ret = 0;
out:
    for (size_t i = 0; i < w->out_n; i++)
        qpc_envelope_clear(&w->out[i]);
    w->out_n = 0;
    for (size_t i = 0; i < w->n; i++)   /* any not moved into the store (on a surprise) */
        qpc_envelope_clear(&w->envs[i]);
    qpc_store_free(st);
    return ret;
}

static int bench_size(size_t n, size_t recipients)
{
    struct workload w = { .n = n, .recipients = recipients };
    struct figures f[RUNS];
    double put[RUNS], take[RUNS], seen[RUNS], over[RUNS], over_chunks[RUNS], dedup[RUNS];
    int ret = -1;

    w.keys = malloc(recipients * QPC_KEY_LEN);
    w.envs = malloc(n * sizeof(*w.envs));
    w.out = malloc(n * sizeof(*w.out));
    w.known = malloc(n * QPC_ID_LEN);
    w.unknown = malloc(n * QPC_ID_LEN);
    if (w.keys == NULL || w.envs == NULL || w.out == NULL || w.known == NULL || w.unknown == NULL)
        goto out;
    randombytes_buf(w.keys, recipients * QPC_KEY_LEN);
    randombytes_buf(w.unknown, n * QPC_ID_LEN);
    for (int r = 0; r < RUNS; r++) {
        if (run_once(&w, &f[r]) != 0) {
            fprintf(stderr, "bench_store: unexpected result in run %d\n", r);
            goto out;
        }
        put[r] = f[r].put;
        take[r] = f[r].take;
        seen[r] = f[r].seen;
        over[r] = f[r].overhead;
        over_chunks[r] = f[r].overhead_with_chunks;
        dedup[r] = f[r].dedup_only;
    }
    printf("store: %zu envelopes of %zu bytes (%d-byte payloads), %zu recipients, median of %d runs, per CPU second\n",
           n, f[0].env_size, PAYLOAD, recipients, RUNS);
    printf("  put                    %10.0f ops/s\n", median(put, RUNS));
    printf("  take (forward)         %10.0f ops/s\n", median(take, RUNS));
    printf("  dedup check (seen)     %10.0f ops/s  (half hits, half misses)\n", median(seen, RUNS));
    printf("  store overhead         %10.1f bytes/envelope beyond the envelope\n", median(over, RUNS));
    printf("  ... with the caller's payload malloc headers %.1f bytes/envelope\n", median(over_chunks, RUNS));
    printf("  dedup entry after take %10.1f bytes/id\n", median(dedup, RUNS));
    ret = 0;
out:
    free(w.keys);
    free(w.envs);
    free(w.out);
    free(w.known);
    free(w.unknown);
    return ret;
}

int main(void)
{
    cpu_set_t one_cpu;

    CPU_ZERO(&one_cpu);
    CPU_SET(0, &one_cpu);
    sched_setaffinity(0, sizeof(one_cpu), &one_cpu);   /* best effort: one core */
    if (sodium_init() < 0)
        return 1;
    if (bench_size(10000, 100) != 0 || bench_size(200000, 1000) != 0)
        return 1;
    return 0;
}
