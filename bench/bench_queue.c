/*
 * bench_queue.c: throughput of the durable delivery queue.
 *
 * Measures, on a fresh database under /tmp for every run (removed at the end):
 *   - enqueue with one commit per message (what a server without group commit does),
 *   - enqueue with group commit (BATCH messages per transaction, one event-loop turn),
 *   - fetch (rows/s, pages of FETCH_PAGE for one recipient at a time),
 *   - ack (rows/s, one transaction per page of ACK_PAGE seqs, as a client acks a page).
 * Each figure is the median of RUNS runs. Durability is as configured in production
 * (synchronous=FULL: every commit fsyncs the WAL) unless "normal" is given.
 *
 *   bench_queue [blob_bytes] [full|normal]     (defaults: 512 full)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qpc/error.h"
#include "qpc/queue.h"

#define RUNS 5
#define SINGLE_N 300          /* enqueues with a commit each */
#define BATCH 1000            /* enqueues per group commit */
#define BATCHES 20            /* -> 20,000 rows per run */
#define RECIPIENTS 20         /* rows spread over this many queues */
#define FETCH_PAGE 100
#define ACK_PAGE 100
#define NOW 1700000000000ull
#define LATER (NOW + 86400000ull)

struct figures {
    double single, batched, fetch, ack;
    double batched_cpu;   /* messages per CPU-second of this process: unaffected by load */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void count_failure(void *arg, int status, uint64_t seq)
{
    if (status != 0)
        ++*(unsigned *)arg;
}

static void remove_db(const char *path)
{
    static const char *const suffix[] = { "", "-wal", "-shm" };
    char p[256];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* Stages message number n (recipient n % RECIPIENTS). */
static int stage(struct qpc_queue *q, uint32_t n, const uint8_t *blob, size_t len,
                 unsigned *failures)
{
    uint8_t rcpt[QPC_KEY_LEN], id[QPC_ID_LEN];
    memset(rcpt, (int)(n % RECIPIENTS) + 1, sizeof(rcpt));
    memset(id, 0, sizeof(id));
    memcpy(id, &n, sizeof(n));
    return qpc_queue_enqueue(q, rcpt, id, LATER, blob, len, NOW, count_failure, failures);
}

/* One run on a fresh database; returns 0 and fills *f, or an error. */
static int run_once(const char *path, size_t blob_len, enum qpc_queue_sync sync,
                    struct figures *f)
{
    struct qpc_queue_limits limits = { .max_items_per_recipient = 1000000, .sync = sync };
    struct qpc_queue *q = NULL;
    uint8_t *blob = calloc(1, blob_len);
    unsigned failures = 0;
    size_t fetched = 0, acked = 0;
    uint32_t n = 0;
    double t0, c0, t, fetch_time = 0, ack_time = 0;
    int ret = QPC_ERR_NOMEM;
    char err[256];

    if (blob == NULL)
        goto out;
    remove_db(path);
    if ((ret = qpc_queue_open(path, &limits, &q, err, sizeof(err))) != 0) {
        fprintf(stderr, "open: %s\n", err);
        goto out;
    }

    t0 = now_s();
    for (int i = 0; i < SINGLE_N && ret == 0; i++, n++) {
        if ((ret = stage(q, n, blob, blob_len, &failures)) == 0)
            ret = qpc_queue_commit(q);
    }
    f->single = SINGLE_N / (now_s() - t0);

    t0 = now_s();
    c0 = cpu_s();
    for (int b = 0; b < BATCHES && ret == 0; b++) {
        for (int i = 0; i < BATCH && ret == 0; i++, n++)
            ret = stage(q, n, blob, blob_len, &failures);
        if (ret == 0)
            ret = qpc_queue_commit(q);
    }
    f->batched = (double)BATCHES * BATCH / (now_s() - t0);
    f->batched_cpu = (double)BATCHES * BATCH / (cpu_s() - c0);
    if (ret != 0 || failures != 0)
        goto fail;

    /* Fetch every queue page by page, then ack those pages; time the two apart. */
    for (int r = 0; r < RECIPIENTS && ret == 0; r++) {
        uint8_t rcpt[QPC_KEY_LEN];
        uint64_t after = 0;
        memset(rcpt, r + 1, sizeof(rcpt));
        for (;;) {
            struct qpc_queue_item *items = NULL;
            uint64_t seqs[FETCH_PAGE];
            size_t got = 0, removed = 0;
            t = now_s();
            ret = qpc_queue_fetch(q, rcpt, after, FETCH_PAGE, NOW, &items, &got);
            fetch_time += now_s() - t;
            if (ret != 0 || got == 0)
                break;
            for (size_t i = 0; i < got; i++)
                seqs[i] = items[i].seq;
            after = items[got - 1].seq;
            fetched += got;
            qpc_queue_items_free(items, got);
            t = now_s();
            ret = qpc_queue_ack(q, rcpt, seqs, got < ACK_PAGE ? got : ACK_PAGE, &removed);
            ack_time += now_s() - t;
            acked += removed;
            if (ret != 0)
                break;
        }
    }
    f->fetch = (double)fetched / fetch_time;
    f->ack = (double)acked / ack_time;
    if (ret == 0 && fetched == n && acked == n)
        goto out;
fail:
    fprintf(stderr, "run failed: %s (%s), %u refused, %zu/%zu/%u rows\n", qpc_strerror(ret),
            q != NULL ? qpc_queue_errmsg(q) : "", failures, fetched, acked, n);
    if (ret == 0)
        ret = QPC_ERR_INVALID;
out:
    qpc_queue_close(q);
    remove_db(path);
    free(blob);
    return ret;
}

int main(int argc, char **argv)
{
    size_t blob_len = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
    enum qpc_queue_sync sync = argc > 2 && strcmp(argv[2], "normal") == 0 ?
                               QPC_QUEUE_SYNC_NORMAL : QPC_QUEUE_SYNC_FULL;
    double single[RUNS], batched[RUNS], batched_cpu[RUNS], fetch[RUNS], ack[RUNS];
    char dir[] = "/tmp/qpc-bench-queue-XXXXXX", path[64];
    int ret = 0;

    if (blob_len == 0 || mkdtemp(dir) == NULL) {
        fprintf(stderr, "usage: bench_queue [blob_bytes>0] [full|normal]\n");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/queue.db", dir);
    for (int r = 0; r < RUNS && ret == 0; r++) {
        struct figures f = { 0 };
        if ((ret = run_once(path, blob_len, sync, &f)) == 0) {
            single[r] = f.single;
            batched[r] = f.batched;
            batched_cpu[r] = f.batched_cpu;
            fetch[r] = f.fetch;
            ack[r] = f.ack;
        }
    }
    rmdir(dir);
    if (ret != 0)
        return 1;
    printf("bench_queue: %zu-byte blobs, synchronous=%s, median of %d runs\n", blob_len,
           sync == QPC_QUEUE_SYNC_FULL ? "FULL" : "NORMAL", RUNS);
    printf("  enqueue, commit per item     %10.0f msg/s\n", median(single, RUNS));
    printf("  enqueue, %d per commit     %10.0f msg/s\n", BATCH, median(batched, RUNS));
    printf("    (CPU cost: %.0f msg per CPU-second; the rest is fsync and waiting for a core)\n",
           median(batched_cpu, RUNS));
    printf("  fetch, pages of %d          %10.0f rows/s\n", FETCH_PAGE, median(fetch, RUNS));
    printf("  ack, %d seqs per commit     %10.0f rows/s\n", ACK_PAGE, median(ack, RUNS));
    return 0;
}
