/*
 * bench_capacity.c: how many clients one qpc-server holds at once, what each costs in
 * memory, and how fast a message is pushed while all of them are connected.
 *
 * Each run starts the qpc-server found next to this program (or $QPC_SERVER) on a fresh
 * data directory (production durability: SQLite WAL, FULL's promise, the fsync on the
 * queue's sync thread) and connects
 * CLIENTS clients over QUIC on loopback, each with its own Ed25519 identity (so its own
 * UDP socket and TLS certificate, as real clients have), doing what the real client does
 * on connect: push on, one fetch, keep-alive PINGs every 10 s. Then:
 *   memory per connection = (node RSS with all connected - node RSS with one connected)
 *                           / (CLIENTS - 1), from VmRSS in /proc/<pid>/status;
 *   enqueue-to-push latency: PAIRS sender/recipient pairs among the connected clients
 *     send at each rate of RATES (msg/s in all, round robin) for LAT_SECONDS; latency =
 *     push arrival at the recipient - enqueue request sent; recipients ack what they got
 *     (as the real client does: each ack is a delete in the node's group commit).
 * Figures are printed per run and as the median of RUNS runs; nothing is asserted.
 *
 * The clients live in two processes: a crowd child holds all but the pairs (it answers
 * keep-alives and otherwise idles), this process holds the 2 * PAIRS clients that are
 * measured, so the latency is not paced by a loop that also turns 10,000 endpoints.
 * Envelopes are made and signed before the clock starts.
 *
 *   bench_capacity [clients [runs]]     defaults 10000 3
 * The node caps client connections at 10,000 (src/server/client_service.c); more than
 * that are refused and counted as failed.
 */
#define _GNU_SOURCE   /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/tools/testclient.h"
#include "bench_proc.h"

#define PAIRS 100
#define LAT_SECONDS 10
static const unsigned RATES[] = { 100, 1000 };   /* msg/s (at most MAX_RATE): light
                                                   * traffic, then busy */
#define N_RATES (sizeof(RATES) / sizeof(RATES[0]))
#define MAX_RATE 1000
#define PAYLOAD 256
#define WINDOW 128              /* handshakes in flight (the node allows 1024) */
#define KEEPALIVE_MS 10000      /* as src/client/node.c */
#define CONNECT_TIMEOUT 120.0
#define MAX_RUNS 16

/* One client: its identity, its connection, what it has been told. */
struct client {
    struct tc t;
    uint8_t pk[32], sk[64];
    bool push_on, failed;
    uint64_t acked_seq;
};

/* Everything a run's callbacks update; one per process. */
static struct {
    /* latency phase (this process only) */
    uint8_t **blobs;
    size_t *lens, n_msgs, next, received, enq_ok, enq_other;
    size_t base;        /* payload numbers of this phase start here (late pushes of an
                         * earlier phase match nothing) */
    unsigned rate;
    double *sent_at, *lat, t0;
    struct client **senders, **recipients;
} g;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* --- what a client receives ------------------------------------------------------------- */

static void on_push(struct client *c, const Qpc__Push *p)
{
    double now = tc_mono();
    uint64_t last = 0;

    for (size_t i = 0; i < p->n_items; i++) {
        struct qpc_envelope env = { 0 };

        last = p->items[i]->seq > last ? p->items[i]->seq : last;
        if (g.lat == NULL || qpc_envelope_decode(&env, p->items[i]->envelope.data,
                                                 p->items[i]->envelope.len) != 0)
            continue;
        size_t num = strtoul((const char *)env.payload, NULL, 10), idx = num - g.base;
        if (num >= g.base && idx < g.n_msgs && g.sent_at[idx] > 0 && g.lat[idx] == 0) {
            g.lat[idx] = now - g.sent_at[idx];
            g.received++;
        }
        qpc_envelope_clear(&env);
    }
    if (last > c->acked_seq) {   /* as the real client does once it has them */
        Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
        Qpc__AckRequest ar = QPC__ACK_REQUEST__INIT;

        ar.up_to_seq = last;
        req.body_case = QPC__CLIENT_REQUEST__BODY_ACK;
        req.ack = &ar;
        if (tc_send(&c->t, &req, NULL) == 0)
            c->acked_seq = last;
    }
}

static void client_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct client *c = t->user;

    switch (m->body_case) {
    case QPC__SERVER_MESSAGE__BODY_PUSH_ACK:
        c->push_on = true;
        break;
    case QPC__SERVER_MESSAGE__BODY_PUSH:
        on_push(c, m->push);
        break;
    case QPC__SERVER_MESSAGE__BODY_ENQUEUE:
        if (m->enqueue->status == QPC__STATUS__STATUS_OK)
            g.enq_ok++;
        else
            g.enq_other++;
        break;
    default:
        break;
    }
}

/* --- connecting many ------------------------------------------------------------------------ */

struct connector {
    struct client *cl;
    size_t n, next, done;
    size_t inflight[WINDOW], n_inflight;
    const char *addr;
    ev_check check;
    ev_timer kick;
};

/* What the real client sends once connected: push on, then one fetch. */
static void greet(struct client *c)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PushRequest pr = QPC__PUSH_REQUEST__INIT;
    Qpc__FetchRequest fr = QPC__FETCH_REQUEST__INIT;

    pr.enable = true;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PUSH;
    req.push = &pr;
    tc_send(&c->t, &req, NULL);
    qpc__client_request__init(&req);
    req.body_case = QPC__CLIENT_REQUEST__BODY_FETCH;
    req.fetch = &fr;
    tc_send(&c->t, &req, NULL);
}

/* After each poll: settle the handshakes that ended, start new ones up to WINDOW. (Not
 * in an ev_prepare: an endpoint made there would miss this turn's flush, and its first
 * packet would wait for the next wake-up.) */
static void connector_turn(struct ev_loop *loop, struct connector *k)
{

    for (size_t i = 0; i < k->n_inflight;) {
        struct client *c = &k->cl[k->inflight[i]];

        if (c->t.ready || c->t.closed) {
            if (c->t.ready)
                greet(c);
            else
                c->failed = true;
            k->done++;
            k->inflight[i] = k->inflight[--k->n_inflight];
        } else {
            i++;
        }
    }
    while (k->next < k->n && k->n_inflight < WINDOW) {
        struct client *c = &k->cl[k->next];

        c->t.user = c;
        c->t.on_msg = client_msg;
        c->t.keepalive_ms = KEEPALIVE_MS;
        if (tc_connect_start(&c->t, loop, c->sk, k->addr) != 0) {
            c->failed = true;
            k->done++;
        } else {
            k->inflight[k->n_inflight++] = k->next;
        }
        k->next++;
    }
    if (k->done == k->n) {   /* the rest wait for their push answer, or were refused */
        size_t settled = 0;
        for (size_t i = 0; i < k->n; i++)
            settled += k->cl[i].push_on || k->cl[i].failed || k->cl[i].t.closed;
        if (settled == k->n)
            ev_break(loop, EVBREAK_ALL);
    }
}

static void connector_check(struct ev_loop *loop, ev_check *w, int revents)
{
    connector_turn(loop, w->data);
}

/* Wakes the loop now and then, so that a quiet moment cannot stall the connecting. */
static void connector_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    connector_turn(loop, w->data);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop for seconds (keep-alives and acks go on meanwhile). */
static void idle_for(struct ev_loop *loop, double seconds)
{
    ev_timer t;

    ev_timer_init(&t, deadline_cb, seconds, 0.0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    ev_timer_stop(loop, &t);
}

/* Connects cl[0..n) (keys already made) and waits for each one's push answer. Returns
 * the number connected with push on. */
static size_t connect_all(struct ev_loop *loop, struct client *cl, size_t n, const char *addr,
                          double *seconds)
{
    struct connector k = { .cl = cl, .n = n, .addr = addr };
    double t0 = tc_mono();
    size_t on = 0;
    ev_timer dl;

    ev_check_init(&k.check, connector_check);
    k.check.data = &k;
    ev_check_start(loop, &k.check);
    ev_timer_init(&k.kick, connector_kick, 0.0, 0.01);
    k.kick.data = &k;
    ev_timer_start(loop, &k.kick);
    ev_timer_init(&dl, deadline_cb, CONNECT_TIMEOUT, 0.0);
    ev_timer_start(loop, &dl);
    ev_run(loop, 0);
    ev_check_stop(loop, &k.check);
    ev_timer_stop(loop, &k.kick);
    ev_timer_stop(loop, &dl);
    *seconds = tc_mono() - t0;
    for (size_t i = 0; i < n; i++)
        on += cl[i].push_on && !cl[i].t.closed;
    return on;
}

static void make_keys(struct client *cl, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crypto_sign_keypair(cl[i].pk, cl[i].sk);
}

static void free_clients(struct client *cl, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cl[i].t.ep != NULL)
            tc_free(&cl[i].t);
        sodium_memzero(cl[i].sk, sizeof(cl[i].sk));
    }
}

/* --- the crowd: a child that holds most of the clients --------------------------------- */

struct crowd {
    pid_t pid;
    int go_fd;          /* write 'g' to connect; close to make it disconnect and exit */
    int result_fd;      /* one line: "crowd <connected> <failed> <seconds>" */
    char line[128];
    size_t len;
    ev_io io;
};

static void crowd_stop_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void crowd_main(size_t n, const char *addr, int go_fd, int out_fd)
{
    /* A loop of its own: the default one, if the parent had started it, shares its
     * epoll set with the parent across fork. */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct client *cl = calloc(n ? n : 1, sizeof(*cl));
    size_t on;
    double secs;
    char c, line[128];
    ev_io stop;

    if (cl == NULL || loop == NULL)
        _exit(1);
    make_keys(cl, n);
    if (read(go_fd, &c, 1) != 1)
        _exit(0);
    on = connect_all(loop, cl, n, addr, &secs);
    snprintf(line, sizeof(line), "crowd %zu %zu %.3f\n", on, n - on, secs);
    if (write(out_fd, line, strlen(line)) < 0)
        _exit(1);
    ev_io_init(&stop, crowd_stop_cb, go_fd, EV_READ);
    ev_io_start(loop, &stop);
    ev_run(loop, 0);
    ev_io_stop(loop, &stop);
    free_clients(cl, n);
    free(cl);
    ev_loop_destroy(loop);
    _exit(0);
}

/* Forks the crowd, which makes a loop of its own. */
static int crowd_fork(struct crowd *cw, size_t n, const char *addr)
{
    int go[2], out[2];

    /* Close-on-exec: the node, forked later, must not hold the crowd's pipes open. */
    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        return -1;
    cw->pid = fork();
    if (cw->pid < 0)
        return -1;
    if (cw->pid == 0) {
        close(go[1]);
        close(out[0]);
        crowd_main(n, addr, go[0], out[1]);
    }
    close(go[0]);
    close(out[1]);
    cw->go_fd = go[1];
    cw->result_fd = out[0];
    return 0;
}

static void crowd_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct crowd *cw = w->data;
    ssize_t n = read(cw->result_fd, cw->line + cw->len, sizeof(cw->line) - 1 - cw->len);

    if (n > 0)
        cw->len += (size_t)n;
    cw->line[cw->len] = '\0';
    if (n <= 0 || strchr(cw->line, '\n') != NULL || cw->len == sizeof(cw->line) - 1)
        ev_break(loop, EVBREAK_ALL);
}

/* Tells the crowd to connect and waits for its line, turning this process's loop
 * meanwhile: its clients must go on answering, or the node would time them out. */
static int crowd_connect(struct ev_loop *loop, struct crowd *cw, size_t *on, size_t *failed,
                         double *seconds)
{
    ev_timer dl;

    if (write(cw->go_fd, "g", 1) != 1)
        return -1;
    ev_io_init(&cw->io, crowd_read_cb, cw->result_fd, EV_READ);
    cw->io.data = cw;
    ev_io_start(loop, &cw->io);
    ev_timer_init(&dl, deadline_cb, CONNECT_TIMEOUT + 10.0, 0.0);
    ev_timer_start(loop, &dl);
    ev_run(loop, 0);
    ev_io_stop(loop, &cw->io);
    ev_timer_stop(loop, &dl);
    return sscanf(cw->line, "crowd %zu %zu %lf", on, failed, seconds) == 3 ? 0 : -1;
}

static void crowd_end(struct crowd *cw)
{
    if (cw->go_fd >= 0)
        close(cw->go_fd);
    cw->go_fd = -1;
    if (cw->pid > 0)
        waitpid(cw->pid, NULL, 0);
    cw->pid = -1;
    if (cw->result_fd >= 0)
        close(cw->result_fd);
    cw->result_fd = -1;
}

/* --- latency while all are connected ------------------------------------------------------ */

static int send_one(struct client *from, const struct client *to, size_t i)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__EnqueueRequest er = QPC__ENQUEUE_REQUEST__INIT;
    Qpc__EnqueueItem item = QPC__ENQUEUE_ITEM__INIT;

    item.recipient.data = (uint8_t *)to->pk;
    item.recipient.len = 32;
    item.envelope.data = g.blobs[i];
    item.envelope.len = g.lens[i];
    er.item = &item;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ENQUEUE;
    req.enqueue = &er;
    return tc_send(&from->t, &req, NULL);
}

/* Sends what is due by now at g.rate per second (a late timer catches up). */
static void lat_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    size_t due = (size_t)((tc_mono() - g.t0) * g.rate);

    while (g.next < g.n_msgs && g.next <= due) {
        size_t p = g.next % PAIRS;

        g.sent_at[g.next] = tc_mono();
        if (send_one(g.senders[p], g.recipients[p], g.next) != 0)
            g.sent_at[g.next] = 0;   /* not sent: not counted */
        g.next++;
    }
}

static void lat_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
    if (g.next == g.n_msgs && g.received + g.enq_other >= g.n_msgs)
        ev_break(loop, EVBREAK_ALL);
}

/* Percentiles of the run's latencies in ms; returns how many were measured. */
static size_t run_latency(struct ev_loop *loop, double *p50, double *p99, double *max)
{
    double *v = calloc(g.n_msgs, sizeof(double));
    ev_timer tick, dl;
    ev_prepare chk;
    size_t k = 0;

    if (v == NULL)
        abort();
    g.next = g.received = g.enq_ok = g.enq_other = 0;
    memset(g.sent_at, 0, g.n_msgs * sizeof(double));
    memset(g.lat, 0, g.n_msgs * sizeof(double));
    g.t0 = tc_mono();
    ev_timer_init(&tick, lat_tick, 0.0, 1.0 / g.rate);
    ev_timer_start(loop, &tick);
    ev_prepare_init(&chk, lat_check);
    ev_set_priority(&chk, EV_MINPRI);
    ev_prepare_start(loop, &chk);
    ev_timer_init(&dl, deadline_cb, LAT_SECONDS + 30.0, 0.0);
    ev_timer_start(loop, &dl);
    ev_run(loop, 0);
    ev_timer_stop(loop, &tick);
    ev_prepare_stop(loop, &chk);
    ev_timer_stop(loop, &dl);
    for (size_t i = 0; i < g.n_msgs; i++)
        if (g.lat[i] > 0)
            v[k++] = g.lat[i] * 1000.0;
    qsort(v, k, sizeof(*v), cmp_double);
    *p50 = k ? v[k / 2] : 0;
    *p99 = k ? v[(k * 99) / 100] : 0;
    *max = k ? v[k - 1] : 0;
    free(v);
    return k;
}

/* Makes the run's envelopes: message i goes from sender i % PAIRS to its recipient. */
static void make_messages(void)
{
    uint8_t payload[PAYLOAD];

    for (size_t i = 0; i < g.n_msgs; i++) {
        size_t p = i % PAIRS;

        free(g.blobs[i]);
        memset(payload, 'p', sizeof(payload));
        snprintf((char *)payload, 24, "%zu", g.base + i);
        if (tc_make_envelope(g.senders[p]->sk, g.recipients[p]->pk, payload, sizeof(payload),
                             3600, &g.blobs[i], &g.lens[i], NULL) != 0)
            abort();
    }
}

/* --- the node ---------------------------------------------------------------------------- */

struct run_result {
    size_t connected, failed, measured[N_RATES];
    long rss_one, rss_all, rss_after;     /* KiB */
    double per_conn_kib, connect_rate, p50[N_RATES], p99[N_RATES], max[N_RATES];
    double cpu_handshake_ms, cpu_msg_us[N_RATES];   /* node CPU per handshake, per message */
};

static int one_run(const char *bin, size_t n_clients, int run, struct run_result *r)
{
    char dir[1024], addr[64], cmd[1100];
    const char *tmpdir = getenv("TMPDIR");
    unsigned port = 30000 + (unsigned)((getpid() + run * 13) % 20000);
    size_t n_own = 2 * PAIRS, n_crowd = n_clients - n_own, c_on = 0, c_failed = 0;
    struct crowd cw = { .pid = -1, .go_fd = -1, .result_fd = -1 };
    struct ev_loop *loop;
    struct client *own = NULL;
    double secs = 0, c_secs = 0, cpu0;
    pid_t node = -1;
    int rc = -1;

    memset(r, 0, sizeof(*r));
    snprintf(dir, sizeof(dir), "%s/bench_capacity.XXXXXX", tmpdir != NULL ? tmpdir : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    if (crowd_fork(&cw, n_crowd, addr) != 0)
        goto out;
    loop = EV_DEFAULT;
    own = calloc(n_own, sizeof(*own));
    if (own == NULL)
        goto out;
    make_keys(own, n_own);
    node = bench_start_node(bin, dir, port, NULL);
    /* The first client, with retries while the node starts: the reference for memory. */
    for (int i = 0; i < 50; i++) {
        usleep(100000);
        if (connect_all(loop, own, 1, addr, &secs) == 1)
            break;
        tc_free(&own[0].t);
        memset(&own[0].t, 0, sizeof(own[0].t));
        own[0].push_on = own[0].failed = false;
    }
    if (!own[0].push_on) {
        fprintf(stderr, "bench_capacity: cannot reach %s on %s\n", bin, addr);
        goto out;
    }
    idle_for(loop, 1.0);
    r->rss_one = bench_rss_kib(node);
    cpu0 = bench_cpu_of(node);
    c_on = connect_all(loop, own + 1, n_own - 1, addr, &secs) + 1;
    if (crowd_connect(loop, &cw, &r->connected, &c_failed, &c_secs) != 0) {
        fprintf(stderr, "bench_capacity: the crowd process gave no answer\n");
        goto out;
    }
    r->connected += c_on;
    r->failed = c_failed + (n_own - c_on);
    r->connect_rate = (double)n_crowd / (c_secs > 0 ? c_secs : 1);
    r->cpu_handshake_ms = (bench_cpu_of(node) - cpu0) * 1e3 / (double)(n_clients - 1);
    idle_for(loop, 2.0);   /* the node's allocator settles; keep-alives go on */
    r->rss_all = bench_rss_kib(node);
    if (r->connected > 1)
        r->per_conn_kib = (double)(r->rss_all - r->rss_one) / (double)(r->connected - 1);
    for (size_t p = 0; p < PAIRS; p++) {
        g.senders[p] = &own[p];
        g.recipients[p] = &own[PAIRS + p];
    }
    for (size_t i = 0; i < n_own; i++)
        if (!own[i].push_on) {
            fprintf(stderr, "bench_capacity: a measured client is not connected\n");
            goto out;
        }
    for (size_t k = 0; k < N_RATES; k++) {
        g.rate = RATES[k];
        g.n_msgs = (size_t)RATES[k] * LAT_SECONDS;
        make_messages();
        cpu0 = bench_cpu_of(node);
        r->measured[k] = run_latency(loop, &r->p50[k], &r->p99[k], &r->max[k]);
        if (r->measured[k] > 0)
            r->cpu_msg_us[k] = (bench_cpu_of(node) - cpu0) * 1e6 / (double)r->measured[k];
        if (g.enq_other > 0)
            fprintf(stderr, "bench_capacity: %zu enqueues were not OK\n", g.enq_other);
        g.base += g.n_msgs;
    }
    r->rss_after = bench_rss_kib(node);
    rc = 0;
out:
    crowd_end(&cw);
    if (own != NULL)
        free_clients(own, n_own);
    free(own);
    if (node > 0) {
        kill(node, SIGTERM);
        waitpid(node, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_capacity: could not remove %s\n", dir);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n_clients = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    int runs = argc > 2 ? atoi(argv[2]) : 3, done = 0;
    char bin[1024], path[1024];
    double per_conn[MAX_RUNS], rss_all[MAX_RUNS], rate[MAX_RUNS];
    double p50[N_RATES][MAX_RUNS], p99[N_RATES][MAX_RUNS];
    int measured[N_RATES] = { 0 };
    struct rlimit rl;

    if (runs < 1 || runs > MAX_RUNS || n_clients < 2 * PAIRS + 1) {
        fprintf(stderr, "usage: bench_capacity [clients (>= %d) [runs (1..%d)]]\n",
                2 * PAIRS + 1, MAX_RUNS);
        return 1;
    }
    /* One UDP socket per client, in the crowd child: it inherits this limit. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < n_clients + 64) {
            fprintf(stderr, "bench_capacity: %zu clients need %zu file descriptors; the limit "
                    "is %llu\n", n_clients, n_clients + 64, (unsigned long long)rl.rlim_cur);
            return 1;
        }
    }
    if (getenv("QPC_SERVER") != NULL) {
        snprintf(bin, sizeof(bin), "%s", getenv("QPC_SERVER"));
    } else {
        snprintf(path, sizeof(path), "%s", argv[0]);
        snprintf(bin, sizeof(bin), "%s/qpc-server", dirname(path));
    }
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    g.n_msgs = (size_t)MAX_RATE * LAT_SECONDS;
    g.blobs = calloc(g.n_msgs, sizeof(*g.blobs));
    g.lens = calloc(g.n_msgs, sizeof(*g.lens));
    g.sent_at = calloc(g.n_msgs, sizeof(double));
    g.lat = calloc(g.n_msgs, sizeof(double));
    g.senders = calloc(PAIRS, sizeof(*g.senders));
    g.recipients = calloc(PAIRS, sizeof(*g.recipients));
    if (!g.blobs || !g.lens || !g.sent_at || !g.lat || !g.senders || !g.recipients)
        return 1;
    printf("qpc-server on loopback with %zu clients connected at once (own key and socket each, "
           "push on, keep-alive %d s); latency: %d pairs, %u then %u msg/s for %d s each, "
           "%d-byte payloads; %d runs\n", n_clients, KEEPALIVE_MS / 1000, PAIRS, RATES[0],
           RATES[N_RATES - 1], LAT_SECONDS, PAYLOAD, runs);
    fflush(stdout);
    for (int i = 0; i < runs; i++) {
        struct run_result r;

        if (one_run(bin, n_clients, i, &r) != 0)
            continue;
        printf("  run %d: %zu connected (%zu failed, %.0f handshakes/s, node CPU %.2f ms each); "
               "node RSS %.1f MiB with 1, %.1f MiB with all, %.1f MiB after the traffic; %.1f KiB "
               "per connection\n", i + 1, r.connected, r.failed, r.connect_rate,
               r.cpu_handshake_ms, r.rss_one / 1024.0, r.rss_all / 1024.0, r.rss_after / 1024.0,
               r.per_conn_kib);
        for (size_t k = 0; k < N_RATES; k++) {
            printf("         push at %4u msg/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu of %zu "
                   "pushed, node CPU %.0f us each)\n", RATES[k], r.p50[k], r.p99[k], r.max[k],
                   r.measured[k], (size_t)RATES[k] * LAT_SECONDS, r.cpu_msg_us[k]);
            if (r.measured[k] > 0) {   /* a phase where nothing arrived has no latency */
                p50[k][measured[k]] = r.p50[k];
                p99[k][measured[k]] = r.p99[k];
                measured[k]++;
            }
        }
        fflush(stdout);
        per_conn[done] = r.per_conn_kib;
        rss_all[done] = r.rss_all / 1024.0;
        rate[done] = r.connect_rate;
        done++;
    }
    g.n_msgs = (size_t)MAX_RATE * LAT_SECONDS;   /* what was allocated */
    for (size_t i = 0; i < g.n_msgs; i++)
        free(g.blobs[i]);
    free(g.blobs);
    free(g.lens);
    free(g.sent_at);
    free(g.lat);
    free(g.senders);
    free(g.recipients);
    if (done == 0)
        return 1;
    printf("median of %d: node RSS %.1f MiB with %zu clients (goal < 1024), %.1f KiB per "
           "connection, %.0f handshakes/s\n", done, median(rss_all, (size_t)done), n_clients,
           median(per_conn, (size_t)done), median(rate, (size_t)done));
    for (size_t k = 0; k < N_RATES; k++)
        if (measured[k] > 0)
            printf("  push at %4u msg/s: p50 %.2f ms, p99 %.2f ms (goal < 10; median of %d)\n",
                   RATES[k], median(p50[k], (size_t)measured[k]),
                   median(p99[k], (size_t)measured[k]), measured[k]);
    return 0;
}
