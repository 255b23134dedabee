/*
 * bench_quic.c: QUIC transport figures on loopback, two processes (fork).
 *
 *   handshake time          N sequential handshakes (client ALPN, identity TLS)
 *   1 KiB messages/s        one way, client -> server, on one stream
 *   round-trip latency      1 KiB ping-pong, p50 / p99
 *   bulk MB/s               64 KiB frames on one stream
 *
 * Each figure is the median of several runs. The child process is the server: it
 * counts frames, answers pings, and acknowledges the end marker of a run.
 * Usage: bench_quic [runs]   (default 5)
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/quic_harness.h"

enum { T_DATA = 'd', T_PING = 'p', T_END = 'e', T_DONE = 'D' };

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[(size_t)(p * (double)(n - 1))];
}

/* ---- server (child) ---- */

static void srv_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                         const uint8_t *d, size_t n)
{
    if (n > 0 && (d[0] == T_PING || d[0] == T_END)) {
        uint8_t reply[1024];
        size_t rn = n > sizeof(reply) ? sizeof(reply) : n;

        memcpy(reply, d, rn);
        if (d[0] == T_END)
            reply[0] = T_DONE, rn = 1;
        (void)qpc_quic_conn_send_frame(c, sid, reply, rn);
    }
}

static void server_main(const uint8_t *sk, int port_fd)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct side srv = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;

    memcpy(srv.sk, sk, 64);
    side_config(&cfg, &srv, true);
    cfg.stream_buffer = 8u * 1024 * 1024;
    srv.on_frame = srv_on_frame;
    if (qpc_quic_endpoint_new(&srv.ep, loop, &cfg) != 0)
        _exit(1);
    side_addr(&srv, &ss, &len);
    if (write(port_fd, &ss, sizeof(ss)) != sizeof(ss))
        _exit(1);
    close(port_fd);
    ev_run(loop, 0);
    _exit(0);
}

/* ---- client (parent) ---- */

struct bench {
    struct ev_loop *loop;
    struct side cli;
    struct sockaddr_storage srv;
    uint8_t srv_pk[32];
    int64_t sid;
    /* current run */
    size_t to_send, sent, msg_len;
    bool done;
    double t_ping;
    double rtt;
};

static bool is_connected(void *arg)
{
    struct bench *b = arg;

    return b->cli.connected > 0 || b->cli.closed > 0;
}

static bool is_done(void *arg)
{
    return ((struct bench *)arg)->done;
}

static bool is_closed(void *arg)
{
    return ((struct bench *)arg)->cli.closed > 0;
}

static struct qpc_quic_conn *connect_once(struct bench *b)
{
    b->cli.connected = b->cli.closed = 0;
    if (qpc_quic_connect(b->cli.ep, (struct sockaddr *)&b->srv, sizeof(struct sockaddr_in),
                         QPC_ALPN_CLIENT, b->srv_pk, &b->cli, NULL) != 0)
        return NULL;
    if (!run_until(b->loop, is_connected, b, 10) || b->cli.connected == 0)
        return NULL;
    return b->cli.conn;
}

static void pump(struct bench *b)
{
    static uint8_t msg[1024 * 1024];
    struct qpc_quic_conn *c = b->cli.conn;

    msg[0] = T_DATA;
    while (b->sent < b->to_send) {
        if (qpc_quic_conn_send_frame(c, b->sid, msg, b->msg_len) != 0)
            return;   /* on_writable resumes */
        b->sent++;
    }
    if (b->sent == b->to_send) {
        uint8_t end = T_END;

        if (qpc_quic_conn_send_frame(c, b->sid, &end, 1) == 0)
            b->sent++;
    }
}

static void cli_on_writable(struct side *s, struct qpc_quic_conn *c, int64_t sid)
{
    pump(s->ctx);
}

static void cli_on_frame(struct side *s, struct qpc_quic_conn *c, int64_t sid,
                         const uint8_t *d, size_t n)
{
    struct bench *b = s->ctx;

    if (n > 0 && d[0] == T_DONE)
        b->done = true;
    if (n > 0 && d[0] == T_PING) {
        b->rtt = now_s() - b->t_ping;
        b->done = true;
    }
}

static double run_stream(struct bench *b, size_t count, size_t len)
{
    double t0;

    b->to_send = count;
    b->sent = 0;
    b->msg_len = len;
    b->done = false;
    t0 = now_s();
    pump(b);
    if (!run_until(b->loop, is_done, b, 120))
        return -1;
    return now_s() - t0;
}

static void close_conn(struct bench *b)
{
    if (b->cli.conn == NULL)
        return;
    qpc_quic_conn_close(b->cli.conn, 0, "bench done");
    run_until(b->loop, is_closed, b, 5);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    struct bench b = { 0 };
    struct side srvkeys = { 0 };
    struct qpc_quic_config cfg;
    int pfd[2];
    pid_t pid;
    double hs[200], rate[16], bulk[16], rtt[5000], med;
    const size_t nmsg = 200000, nbulk = 4096, bulk_len = 64 * 1024;

    if (runs < 1 || runs > 16)
        runs = 5;
    side_keys(&srvkeys);
    if (pipe(pfd) != 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        server_main(srvkeys.sk, pfd[1]);
    }
    close(pfd[1]);
    if (read(pfd[0], &b.srv, sizeof(b.srv)) != sizeof(b.srv))
        return 1;
    memcpy(b.srv_pk, srvkeys.pk, 32);
    b.loop = ev_loop_new(EVFLAG_AUTO);
    side_keys(&b.cli);
    side_config(&cfg, &b.cli, false);
    cfg.stream_buffer = 8u * 1024 * 1024;
    cfg.max_frame = 2u * 1024 * 1024;
    b.cli.ctx = &b;
    b.cli.on_writable = cli_on_writable;
    b.cli.on_frame = cli_on_frame;
    if (qpc_quic_endpoint_new(&b.cli.ep, b.loop, &cfg) != 0)
        return 1;

    /* handshakes */
    for (int i = 0; i < 200; i++) {
        double t0 = now_s();

        if (connect_once(&b) == NULL) {
            fprintf(stderr, "handshake failed\n");
            return 1;
        }
        hs[i] = now_s() - t0;
        close_conn(&b);
    }
    med = pct(hs, 200, 0.5);
    printf("handshake: median %.3f ms, p99 %.3f ms (200 sequential)\n", med * 1e3,
           pct(hs, 200, 0.99) * 1e3);

    if (connect_once(&b) == NULL)
        return 1;
    if (qpc_quic_conn_open_stream(b.cli.conn, &b.sid) != 0)
        return 1;

    for (int r = 0; r < runs; r++) {
        double t = run_stream(&b, nmsg, 1024);

        rate[r] = t > 0 ? (double)nmsg / t : 0;
    }
    printf("1 KiB messages one way: median %.0f msgs/s (%.1f MB/s), %d runs of %zu\n",
           pct(rate, (size_t)runs, 0.5), pct(rate, (size_t)runs, 0.5) * 1024 / 1e6, runs, nmsg);

    for (int i = 0; i < 5000; i++) {
        static uint8_t ping[1024];

        ping[0] = T_PING;
        b.done = false;
        b.t_ping = now_s();
        if (qpc_quic_conn_send_frame(b.cli.conn, b.sid, ping, sizeof(ping)) != 0 ||
            !run_until(b.loop, is_done, &b, 10))
            return 1;
        rtt[i] = b.rtt;
    }
    printf("1 KiB round trip: p50 %.1f us, p99 %.1f us (5000 ping-pongs)\n",
           pct(rtt, 5000, 0.5) * 1e6, pct(rtt, 5000, 0.99) * 1e6);

    for (int r = 0; r < runs; r++) {
        double t = run_stream(&b, nbulk, bulk_len);

        bulk[r] = t > 0 ? (double)(nbulk * bulk_len) / t / 1e6 : 0;
    }
    med = pct(bulk, (size_t)runs, 0.5);
    printf("bulk one stream: median %.0f MB/s (%.2f Gbit/s), %d runs of %zu MiB\n", med,
           med * 8 / 1e3, runs, nbulk * bulk_len / (1024 * 1024));

    close_conn(&b);
    qpc_quic_endpoint_free(b.cli.ep);
    ev_loop_destroy(b.loop);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return 0;
}
