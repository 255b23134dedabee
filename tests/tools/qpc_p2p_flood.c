/*
 * qpc_p2p_flood: load for a forwarding qpc node (p2pflood.h).
 *
 *   qpc_p2p_flood send HOST:PORT NODE_KEY RECIPIENT_KEY N [SIZE [WINDOW]]
 *       sends N envelopes for RECIPIENT_KEY (SIZE text bytes each, default 100; at most
 *       WINDOW unacked, default 256) to the node at HOST:PORT, which must forward them.
 *       Prints "ack ID STATUS" per ack (ID hex, STATUS as proto Status), then
 *       "summary sent=S acked=A deferred=D seconds=T rate=R". Exits 0 when every envelope
 *       was acked, 3 when the connection ended or stayed silent for 3 s first (the node
 *       was killed), 1 on a setup failure.
 *   qpc_p2p_flood sink HOST:PORT SEED_HEX [N]
 *       accepts P2P connections as the identity of the 32-byte seed and acks every
 *       envelope OK; prints "sink KEY" once listening, and "received R distinct D first
 *       F last L" (F, L: CLOCK_MONOTONIC seconds of the first and last arrival) when N
 *       distinct ids arrived (or at SIGTERM).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <sodium.h>

#include "p2pflood.h"
#include "qpc/encoding.h"

static struct flood_source src;
static struct flood_sink sink;
static size_t last_acked, sink_want;
static double quiet_since;
static int exit_code = 3;

static void print_ack(void *ctx, const uint8_t *id, size_t id_len, int status)
{
    char hex[QPC_ID_LEN * 2 + 1] = "-";

    if (id_len == QPC_ID_LEN)
        qpc_hex_encode(hex, id, QPC_ID_LEN);
    printf("ack %s %d\n", hex, status);
}

static void watch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    double now = flood_mono();

    if (src.n > 0) {
        if (src.acked == src.n) {
            exit_code = 0;
            ev_break(loop, EVBREAK_ALL);
            return;
        }
        if (src.acked != last_acked || quiet_since == 0) {
            last_acked = src.acked;
            quiet_since = now;
        }
        if (src.closed || (src.up && now - quiet_since > 3.0) || (!src.up && now - quiet_since > 15.0))
            ev_break(loop, EVBREAK_ALL);
    } else if (sink_want > 0 && sink.distinct >= sink_want) {
        exit_code = 0;
        ev_break(loop, EVBREAK_ALL);
    }
}

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct ev_loop *loop = EV_DEFAULT;
    ev_timer watch;
    ev_signal sigterm;
    uint8_t node_key[32], rcpt[32], seed[32];

    if (sodium_init() < 0 || argc < 4)
        goto usage;
    ev_timer_init(&watch, watch_cb, 0.2, 0.2);
    ev_timer_start(loop, &watch);
    ev_signal_init(&sigterm, sig_cb, SIGTERM);
    ev_signal_start(loop, &sigterm);
    if (strcmp(argv[1], "send") == 0 && argc >= 6) {
        size_t n = strtoul(argv[5], NULL, 10), size = argc > 6 ? strtoul(argv[6], NULL, 10) : 100;
        size_t window = argc > 7 ? strtoul(argv[7], NULL, 10) : 256;

        if (qpc_key_from_hex(node_key, argv[3]) < 0 || qpc_key_from_hex(rcpt, argv[4]) < 0 || n == 0 ||
            window == 0)
            goto usage;
        if (flood_source_start(&src, loop, argv[2], node_key, rcpt, n, size, window) < 0)
            return 1;
        src.on_ack = print_ack;
        ev_run(loop, 0);
        printf("summary sent=%zu acked=%zu deferred=%zu seconds=%.3f rate=%.0f\n", src.next, src.acked,
               src.by_status[QPC__STATUS__STATUS_DEFERRED], src.t_last - src.t_first,
               src.t_last > src.t_first ? (double)src.acked / (src.t_last - src.t_first) : 0.0);
        flood_source_free(&src);
        return exit_code;
    }
    if (strcmp(argv[1], "sink") == 0) {
        char host[256], hex[65];
        uint16_t port;

        if (qpc_addr_parse(argv[2], host, sizeof(host), &port) < 0 ||
            qpc_hex_decode(seed, sizeof(seed), argv[3]) != 0)
            goto usage;
        sink_want = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;
        if (flood_sink_start(&sink, loop, host, port, seed) < 0) {
            fprintf(stderr, "sink: cannot listen on %s\n", argv[2]);
            return 1;
        }
        qpc_hex_encode(hex, sink.pk, 32);
        printf("sink %s\n", hex);
        fflush(stdout);
        ev_run(loop, 0);
        printf("received %zu distinct %zu first %.6f last %.6f\n", sink.received, sink.distinct,
               sink.t_first, sink.t_last);
        flood_sink_free(&sink);
        return sink_want == 0 || sink.distinct >= sink_want ? 0 : 3;
    }
usage:
    fprintf(stderr, "usage: qpc_p2p_flood send HOST:PORT NODE_KEY RECIPIENT_KEY N [SIZE [WINDOW]]\n"
                    "       qpc_p2p_flood sink HOST:PORT SEED_HEX [N]\n");
    return 1;
}
