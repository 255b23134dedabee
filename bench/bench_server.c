/*
 * bench_server.c: end-to-end figures of a real qpc-server over QUIC on loopback.
 *
 * Starts the qpc-server found next to this program (or $QPC_SERVER) on a fresh data
 * directory under $TMPDIR (default /tmp; removed at the end), with durability as in
 * production (SQLite WAL, synchronous=FULL, an answer only after the commit), then:
 *   1. single enqueue: one envelope per request, WINDOW requests in flight;
 *   2. batched enqueue: BATCH envelopes per request;
 *   3. fetch: pages of FETCH_PAGE of one recipient's queue (without ack);
 *   4. enqueue-to-push latency at a steady RATE msg/s: a sender enqueues on a timer, the
 *      recipient is connected with push on; latency = push arrival - request sent.
 * Envelopes (256-byte payloads) are made and signed before the clock starts: the
 * client's signing is not part of the node's figures. Throughputs are the median of
 * RUNS runs; the latency figures are percentiles over LAT_SECONDS * RATE samples.
 *
 *   bench_server [runs]
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/tools/testclient.h"
#include "bench_proc.h"

#define PAYLOAD 256
#define SINGLE_N 20000
#define BATCHED_N 100000
#define BATCH 500
#define WINDOW 64
#define BATCH_WINDOW 8
#define FETCH_PAGE 2000
#define RATE 1000
#define LAT_SECONDS 5

struct load {
    uint8_t **blobs;
    size_t *lens;
    size_t n;
};

struct pipe_state {
    size_t answered, ok, mark;
    size_t inflight;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

static void make_load(struct load *l, size_t n, const uint8_t sk[64], const uint8_t rcpt[32])
{
    uint8_t payload[PAYLOAD];

    l->n = n;
    l->blobs = calloc(n, sizeof(*l->blobs));
    l->lens = calloc(n, sizeof(*l->lens));
    if (l->blobs == NULL || l->lens == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        memset(payload, 'p', sizeof(payload));
        snprintf((char *)payload, 24, "%zu", i);
        if (tc_make_envelope(sk, rcpt, payload, sizeof(payload), 3600, &l->blobs[i], &l->lens[i],
                             NULL) != 0)
            abort();
    }
}

static void free_load(struct load *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->blobs[i]);
    free(l->blobs);
    free(l->lens);
}

/* --- pipelined enqueue ------------------------------------------------------------------ */

static void pipe_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct pipe_state *p = t->user;

    if (m->body_case == QPC__SERVER_MESSAGE__BODY_ENQUEUE) {
        p->answered++;
        p->ok += m->enqueue->status == QPC__STATUS__STATUS_OK;
    } else if (m->body_case == QPC__SERVER_MESSAGE__BODY_BATCH_ENQUEUE) {
        p->answered += m->batch_enqueue->n_statuses;
        for (size_t i = 0; i < m->batch_enqueue->n_statuses; i++)
            p->ok += m->batch_enqueue->statuses[i] == QPC__STATUS__STATUS_OK;
    } else {
        return;
    }
    p->inflight--;
}

static bool pipe_moved(struct tc *t)
{
    struct pipe_state *p = t->user;

    return p->answered != p->mark;
}

static int send_items(struct tc *t, const uint8_t rcpt[32], struct load *l, size_t from, size_t n)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__EnqueueRequest er = QPC__ENQUEUE_REQUEST__INIT;
    Qpc__BatchEnqueueRequest br = QPC__BATCH_ENQUEUE_REQUEST__INIT;
    Qpc__EnqueueItem items[BATCH], *ptrs[BATCH];

    for (size_t i = 0; i < n; i++) {
        qpc__enqueue_item__init(&items[i]);
        items[i].recipient.data = (uint8_t *)rcpt;
        items[i].recipient.len = 32;
        items[i].envelope.data = l->blobs[from + i];
        items[i].envelope.len = l->lens[from + i];
        ptrs[i] = &items[i];
    }
    if (n == 1) {
        req.body_case = QPC__CLIENT_REQUEST__BODY_ENQUEUE;
        er.item = ptrs[0];
        req.enqueue = &er;
    } else {
        req.body_case = QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE;
        br.n_items = n;
        br.items = ptrs;
        req.batch_enqueue = &br;
    }
    return tc_send(t, &req, NULL);
}

/* Sends all of l in requests of `batch`, `window` in flight; returns messages/s. */
static double run_enqueue(struct tc *t, const uint8_t rcpt[32], struct load *l, size_t batch,
                          size_t window)
{
    struct pipe_state p = { 0 };
    size_t next = 0;
    double t0 = tc_mono();

    t->user = &p;
    t->on_msg = pipe_msg;
    while (p.answered < l->n && !t->closed) {
        while (next < l->n && p.inflight < window) {
            size_t n = l->n - next < batch ? l->n - next : batch;
            if (send_items(t, rcpt, l, next, n) != 0)
                break;
            p.inflight++;
            next += n;
        }
        p.mark = p.answered;
        if (!tc_run_until(t, pipe_moved, 30.0))
            break;
    }
    if (p.ok != l->n)
        fprintf(stderr, "bench_server: only %zu of %zu enqueues were OK\n", p.ok, l->n);
    return (double)p.answered / (tc_mono() - t0);
}

/* --- fetch ---------------------------------------------------------------------------------- */

struct fetch_state {
    bool got, more;
    uint64_t last;
    size_t items;
};

static void fetch_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct fetch_state *f = t->user;

    if (m->body_case != QPC__SERVER_MESSAGE__BODY_FETCH)
        return;
    f->got = true;
    f->more = m->fetch->more;
    f->items += m->fetch->n_items;
    if (m->fetch->n_items > 0)
        f->last = m->fetch->items[m->fetch->n_items - 1]->seq;
}

static bool fetch_got(struct tc *t)
{
    return ((struct fetch_state *)t->user)->got;
}

/* Pages through the whole queue once; returns items/s (and the count in *items). */
static double run_fetch(struct tc *t, size_t *items)
{
    struct fetch_state f = { 0 };
    double t0 = tc_mono();

    t->user = &f;
    t->on_msg = fetch_msg;
    do {
        Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
        Qpc__FetchRequest fr = QPC__FETCH_REQUEST__INIT;
        fr.after_seq = f.last;
        fr.limit = FETCH_PAGE;
        req.body_case = QPC__CLIENT_REQUEST__BODY_FETCH;
        req.fetch = &fr;
        f.got = false;
        if (tc_send(t, &req, NULL) != 0 || !tc_run_until(t, fetch_got, 30.0))
            break;
    } while (f.more);
    *items = f.items;
    return (double)f.items / (tc_mono() - t0);
}

struct ack_state {
    bool got;
};

static void ack_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    if (m->body_case == QPC__SERVER_MESSAGE__BODY_ACK)
        ((struct ack_state *)t->user)->got = true;
}

static bool ack_got(struct tc *t)
{
    return ((struct ack_state *)t->user)->got;
}

/* Acks the whole queue of t's identity. */
static void drain(struct tc *t)
{
    struct ack_state a = { false };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__AckRequest ar = QPC__ACK_REQUEST__INIT;

    t->user = &a;
    t->on_msg = ack_msg;
    ar.up_to_seq = UINT64_MAX;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ACK;
    req.ack = &ar;
    if (tc_send(t, &req, NULL) == 0)
        tc_run_until(t, ack_got, 60.0);
}

/* --- push latency ------------------------------------------------------------------------------ */

struct lat_state {
    struct tc *sender, *receiver;
    const uint8_t *rcpt;
    struct load *l;
    double *sent_at, *lat;
    size_t next, received;
    bool push_on;
    ev_timer tick;
    double t0;
};

static void lat_push(struct tc *t, const Qpc__ServerMessage *m)
{
    struct lat_state *s = t->user;
    double now = tc_mono();

    if (m->body_case == QPC__SERVER_MESSAGE__BODY_PUSH_ACK) {
        s->push_on = true;
        return;
    }
    if (m->body_case != QPC__SERVER_MESSAGE__BODY_PUSH)
        return;
    for (size_t i = 0; i < m->push->n_items; i++) {
        struct qpc_envelope env = { 0 };
        if (qpc_envelope_decode(&env, m->push->items[i]->envelope.data,
                                m->push->items[i]->envelope.len) == 0) {
            size_t idx = strtoul((const char *)env.payload, NULL, 10);
            if (idx < s->l->n && s->sent_at[idx] > 0 && s->lat[idx] == 0) {
                s->lat[idx] = now - s->sent_at[idx];
                s->received++;
            }
        }
        qpc_envelope_clear(&env);
    }
}

static void lat_sender_msg(struct tc *t, const Qpc__ServerMessage *m)
{
}

/* Sends the messages that are due by now at RATE per second (a timer that falls behind
 * catches up, so the offered rate stays RATE). */
static void lat_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lat_state *s = w->data;
    size_t due = (size_t)((tc_mono() - s->t0) * RATE);

    while (s->next < s->l->n && s->next <= due) {
        s->sent_at[s->next] = tc_mono();
        if (send_items(s->sender, s->rcpt, s->l, s->next, 1) != 0)
            break;
        s->next++;
    }
}

static bool lat_done(struct tc *t)
{
    struct lat_state *s = t->user;

    return s->received == s->l->n;
}

static bool push_enabled(struct tc *t)
{
    return ((struct lat_state *)t->user)->push_on;
}

static void run_latency(struct tc *sender, struct tc *receiver, const uint8_t rcpt[32],
                        struct load *l, double *p50, double *p99, double *max, size_t *got)
{
    struct lat_state s = { sender, receiver, rcpt, l, NULL, NULL, 0, 0, false, { 0 }, 0 };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PushRequest pr = QPC__PUSH_REQUEST__INIT;
    double *v;
    size_t k = 0;

    s.sent_at = calloc(l->n, sizeof(double));
    s.lat = calloc(l->n, sizeof(double));
    v = calloc(l->n, sizeof(double));
    if (s.sent_at == NULL || s.lat == NULL || v == NULL)
        abort();
    receiver->user = &s;
    receiver->on_msg = lat_push;
    sender->user = &s;
    sender->on_msg = lat_sender_msg;
    pr.enable = true;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PUSH;
    req.push = &pr;
    if (tc_send(receiver, &req, NULL) != 0 || !tc_run_until(receiver, push_enabled, 10.0))
        abort();
    s.t0 = tc_mono();
    ev_timer_init(&s.tick, lat_tick, 0.0, 1.0 / RATE);
    s.tick.data = &s;
    ev_timer_start(receiver->loop, &s.tick);
    tc_run_until(receiver, lat_done, LAT_SECONDS + 30.0);
    ev_timer_stop(receiver->loop, &s.tick);
    for (size_t i = 0; i < l->n; i++)
        if (s.lat[i] > 0)
            v[k++] = s.lat[i] * 1000.0;
    qsort(v, k, sizeof(*v), cmp_double);
    *got = k;
    *p50 = k ? v[k / 2] : 0;
    *p99 = k ? v[(k * 99) / 100] : 0;
    *max = k ? v[k - 1] : 0;
    free(v);
    free(s.sent_at);
    free(s.lat);
}

/* --- the node ---------------------------------------------------------------------------------- */

/* The bench fills the queue far beyond the production quotas. */
static const char *const SERVER_EXTRA[] = {
    "--queue-quota=10000000", "--queue-max-bytes=1099511627776", NULL,
};

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    char bin[1024], dir[] = "/tmp/bench_server.XXXXXX", path[1024], cmd[1100];
    const char *tmpdir = getenv("TMPDIR");
    uint8_t spk[32], ssk[64], rpk[32], rsk[64];
    struct tc sender = { 0 }, receiver = { 0 };
    double single[16], batched[16], fetch[16], batched_cpu[16], p50, p99, max, c0;
    unsigned port = 30000 + (unsigned)(getpid() % 20000);
    size_t got = 0, fetched = 0;
    pid_t pid;
    int ok = 0;

    if (runs < 1 || runs > 16)
        runs = 3;
    if (getenv("QPC_SERVER") != NULL) {
        snprintf(bin, sizeof(bin), "%s", getenv("QPC_SERVER"));
    } else {
        snprintf(path, sizeof(path), "%s", argv[0]);
        snprintf(bin, sizeof(bin), "%s/qpc-server", dirname(path));
    }
    if (tmpdir != NULL) {
        snprintf(path, sizeof(path), "%s/bench_server.XXXXXX", tmpdir);
        if (mkdtemp(path) == NULL)
            return 1;
    } else {
        if (mkdtemp(dir) == NULL)
            return 1;
        snprintf(path, sizeof(path), "%s", dir);
    }
    if (sodium_init() < 0)
        return 1;
    crypto_sign_keypair(spk, ssk);
    crypto_sign_keypair(rpk, rsk);
    pid = bench_start_node(bin, path, port, SERVER_EXTRA);
    for (int i = 0; i < 50 && ok == 0; i++) {
        char addr[64];
        usleep(100000);
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
        memset(&sender, 0, sizeof(sender));
        if (tc_connect(&sender, EV_DEFAULT, ssk, addr, 2.0) == 0)
            ok = 1;
        else
            tc_free(&sender);
    }
    if (!ok) {
        fprintf(stderr, "bench_server: cannot reach %s on port %u\n", bin, port);
        goto out;
    }
    {
        char addr[64];
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
        if (tc_connect(&receiver, EV_DEFAULT, rsk, addr, 5.0) != 0)
            goto out;
    }
    printf("qpc-server on loopback, data in %s (SQLite WAL, synchronous=FULL), %d runs, "
           "%d-byte payloads\n", path, runs, PAYLOAD);
    for (int r = 0; r < runs; r++) {
        struct load a, b;
        make_load(&a, SINGLE_N, ssk, rpk);
        make_load(&b, BATCHED_N, ssk, rpk);
        single[r] = run_enqueue(&sender, rpk, &a, 1, WINDOW);
        c0 = bench_cpu_of(pid);
        batched[r] = run_enqueue(&sender, rpk, &b, BATCH, BATCH_WINDOW);
        batched_cpu[r] = (double)b.n / (bench_cpu_of(pid) - c0 + 1e-9);
        fetch[r] = run_fetch(&receiver, &fetched);
        drain(&receiver);   /* untimed: each run starts from an empty queue, as a node
                             * whose clients keep up does */
        printf("  run %d: single %.0f msg/s, batched %.0f msg/s (%.0f per node CPU-second), "
               "fetch %.0f msg/s (%zu queued)\n", r + 1, single[r], batched[r], batched_cpu[r],
               fetch[r], fetched);
        fflush(stdout);
        free_load(&a);
        free_load(&b);
    }
    printf("enqueue, single (window %d):      %8.0f msg/s (median)\n", WINDOW,
           median(single, (size_t)runs));
    printf("enqueue, batched (%d per request): %8.0f msg/s (median; goal >= 50000)\n", BATCH,
           median(batched, (size_t)runs));
    printf("  node CPU cost of batched enqueue:  %8.0f msg per CPU-second (client and node share "
           "%ld cores)\n", median(batched_cpu, (size_t)runs), sysconf(_SC_NPROCESSORS_ONLN));
    printf("fetch (pages of %d):              %8.0f msg/s (median; goal >= 100000)\n", FETCH_PAGE,
           median(fetch, (size_t)runs));
    {
        struct load l;
        make_load(&l, (size_t)RATE * LAT_SECONDS, ssk, rpk);
        run_latency(&sender, &receiver, rpk, &l, &p50, &p99, &max, &got);
        printf("enqueue-to-push latency at %d msg/s for %d s: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
               "(%zu of %zu pushed; goal p99 < 10 ms)\n", RATE, LAT_SECONDS, p50, p99, max, got,
               l.n);
        free_load(&l);
    }
out:
    tc_free(&sender);
    tc_free(&receiver);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_server: could not remove %s\n", path);
    return ok ? 0 : 1;
}
