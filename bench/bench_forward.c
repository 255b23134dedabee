/*
 * bench_forward.c: durable forwarding through one relaying client, the real `qpc listen`.
 *
 *   source (this process) --p2p--> qpc listen (child) --p2p--> sink (qpc_p2p_flood sink, child)
 *
 * The source sends N direct envelopes for the sink's key to the qpc node, which must do
 * what a mesh relay does with each: decode, dedup, verify the signature, bump hop_count,
 * hold it durably (its outbox, SQLite WAL synchronous=FULL, group commit once per loop
 * turn), ack DEFERRED only after that commit, pass it on to the sink, and drop its row
 * when the sink acks. Reported per run and as the median of RUNS runs:
 *   durable: envelopes acked DEFERRED per second, first send to last ack (each ack
 *            promises the envelope is on the relay's disk);
 *   through: envelopes that reached the sink per second, first send to last arrival;
 *   cpu:     the relay's CPU time (user + system) per envelope.
 * Acks other than DEFERRED are not counted as durable; QUEUE_FULL ones (the relay held
 * store_per_recipient for the sink because the sink's link was full) are shown per run.
 * The source builds every envelope before the first is sent, so its own signing does not
 * pace the run; at most WINDOW are unacked. Nothing is asserted (bench/ reports figures).
 *
 *   bench_forward [N [SIZE [WINDOW [RUNS]]]]     defaults 20000 100 1024 5
 * It runs the qpc and qpc_p2p_flood binaries next to itself (the same build directory);
 * the sink is a process of its own so that it does not share this loop with the source.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/tools/p2pflood.h"
#include "bench_proc.h"
#include "qpc/encoding.h"

static char qpc_bin[PATH_MAX], flood_bin[PATH_MAX];

/* Runs qpc with args and returns its first line of output in out (may be NULL). */
static int run_qpc(char *const args[], char *out, size_t cap)
{
    int fd[2];
    pid_t pid;
    int status;
    ssize_t n;

    if (pipe(fd) != 0)
        return -1;
    if ((pid = fork()) == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execv(qpc_bin, args);
        _exit(127);
    }
    close(fd[1]);
    n = out != NULL ? read(fd[0], out, cap - 1) : 0;
    close(fd[0]);
    waitpid(pid, &status, 0);
    if (out != NULL) {
        out[n > 0 ? n : 0] = '\0';
        out[strcspn(out, "\n")] = '\0';
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct run_result {
    double durable, through, cpu_us;
    size_t acked, deferred, arrived, full;
};

static struct flood_source src;

static void watch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    if (src.acked == src.n || src.closed)
        ev_break(loop, EVBREAK_ALL);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static int one_run(struct ev_loop *loop, int run, size_t n, size_t size, size_t window, struct run_result *r)
{
    char dir[] = "/tmp/bench_forward.XXXXXX", key[128], sinkhex[65], listen[64], sinkaddr[64], seedhex[65];
    char cmd[PATH_MAX + 64], line[256];
    uint8_t seed[32], node_key[32], sink_pk[32], sink_sk[64];
    uint16_t pb = (uint16_t)(30000 + (getpid() + run * 7) % 20000), ps = (uint16_t)(pb + 1);
    ev_timer watch, deadline;
    pid_t pid = -1, spid = -1;
    int sfd[2] = { -1, -1 }, status, rc = -1;
    double cpu;
    FILE *sf = NULL;

    memset(r, 0, sizeof(*r));
    if (mkdtemp(dir) == NULL)
        return -1;
    randombytes_buf(seed, sizeof(seed));
    crypto_sign_seed_keypair(sink_pk, sink_sk, seed);
    sodium_memzero(sink_sk, sizeof(sink_sk));
    qpc_hex_encode(sinkhex, sink_pk, 32);
    qpc_hex_encode(seedhex, seed, 32);
    snprintf(sinkaddr, sizeof(sinkaddr), "127.0.0.1:%u", ps);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", pb);
    {
        char *a1[] = { qpc_bin, "--data-dir", dir, "identity", NULL };
        char *a2[] = { qpc_bin, "--data-dir", dir, "peer", "add", sinkhex, sinkaddr, "sink", NULL };

        if (run_qpc(a1, key, sizeof(key)) < 0 || qpc_key_from_hex(node_key, key) < 0 || run_qpc(a2, NULL, 0) < 0) {
            fprintf(stderr, "bench_forward: cannot prepare the relay's data directory with %s\n", qpc_bin);
            goto out;
        }
    }
    if (pipe(sfd) != 0)
        goto out;
    if ((spid = fork()) == 0) {
        char *args[] = { flood_bin, "sink", sinkaddr, seedhex, NULL };

        dup2(sfd[1], 1);
        close(sfd[0]);
        execv(flood_bin, args);
        _exit(127);
    }
    close(sfd[1]);
    sf = fdopen(sfd[0], "r");
    if (sf == NULL || fgets(line, sizeof(line), sf) == NULL || strncmp(line, "sink ", 5) != 0) {
        fprintf(stderr, "bench_forward: the sink (%s) did not start\n", flood_bin);
        goto stop;
    }
    if ((pid = fork()) == 0) {
        char *args[] = { qpc_bin, "--data-dir", dir, "--listen", listen, "--no-mdns", "--log-level", "error",
                         "listen", NULL };
        int null = open("/dev/null", O_WRONLY);

        dup2(null, 1);
        execv(qpc_bin, args);
        _exit(127);
    }
    usleep(400000);   /* the relay binds its socket */
    if (flood_source_start(&src, loop, listen, node_key, sink_pk, n, size, window) < 0)
        goto stop;
    cpu = bench_cpu_of(pid);
    ev_timer_init(&watch, watch_cb, 0.02, 0.02);
    ev_timer_start(loop, &watch);
    ev_timer_init(&deadline, deadline_cb, 120.0, 0.0);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &watch);
    ev_timer_stop(loop, &deadline);
    usleep(300000);   /* the last ones reach the sink */
    cpu = bench_cpu_of(pid) - cpu;
    r->acked = src.acked;
    r->deferred = src.by_status[QPC__STATUS__STATUS_DEFERRED];
    r->full = src.by_status[QPC__STATUS__STATUS_QUEUE_FULL];   /* the relay's back-pressure */
    if (src.t_last > src.t_first)
        r->durable = (double)r->deferred / (src.t_last - src.t_first);
    if (r->deferred > 0)
        r->cpu_us = cpu * 1e6 / (double)r->deferred;
    kill(spid, SIGTERM);
    if (fgets(line, sizeof(line), sf) != NULL) {
        size_t rec = 0, distinct = 0;
        double first = 0, last = 0;

        if (sscanf(line, "received %zu distinct %zu first %lf last %lf", &rec, &distinct, &first, &last) == 4) {
            r->arrived = distinct;
            if (last > src.t_first)
                r->through = (double)distinct / (last - src.t_first);
        }
    }
    flood_source_free(&src);
    rc = 0;
stop:
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
    }
    if (spid > 0) {
        kill(spid, SIGTERM);
        waitpid(spid, &status, 0);
    }
    if (sf != NULL)
        fclose(sf);
out:
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_forward: cannot remove %s\n", dir);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
    size_t size = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    size_t window = argc > 3 ? strtoul(argv[3], NULL, 10) : 1024;
    int runs = argc > 4 ? atoi(argv[4]) : 5, done = 0;
    double durable[32], through[32], cpu[32];
    char self[PATH_MAX - 32];
    struct ev_loop *loop = EV_DEFAULT;

    if (sodium_init() < 0 || n == 0 || window == 0 || runs < 1 || runs > 32)
        return 1;
    snprintf(self, sizeof(self), "%s", argv[0]);
    dirname(self);   /* in place: self is now the directory */
    snprintf(qpc_bin, sizeof(qpc_bin), "%s/qpc", self);
    snprintf(flood_bin, sizeof(flood_bin), "%s/qpc_p2p_flood", self);
    if (access(qpc_bin, X_OK) != 0 || access(flood_bin, X_OK) != 0) {
        fprintf(stderr, "bench_forward: no qpc or qpc_p2p_flood binary beside %s\n", argv[0]);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    printf("durable forwarding through one qpc listen: %zu envelopes of %zu text bytes, window %zu\n",
           n, size, window);
    for (int i = 0; i < runs; i++) {
        struct run_result r;

        if (one_run(loop, i, n, size, window, &r) < 0)
            continue;
        printf("  run %d: durable %.0f/s  through %.0f/s  relay cpu %.1f us/envelope  (acked %zu, deferred %zu, "
               "queue full %zu, arrived %zu)\n", i + 1, r.durable, r.through, r.cpu_us, r.acked, r.deferred, r.full,
               r.arrived);
        fflush(stdout);
        durable[done] = r.durable;
        through[done] = r.through;
        cpu[done] = r.cpu_us;
        done++;
    }
    if (done == 0)
        return 1;
    printf("median of %d: durable %.0f msgs/s, through %.0f msgs/s, relay cpu %.1f us/envelope\n", done,
           median(durable, done), median(through, done), median(cpu, done));
    return 0;
}
