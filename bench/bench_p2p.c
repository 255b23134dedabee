/*
 * bench_p2p.c: what a user of the P2P layer feels, measured on loopback in one process.
 *
 *   1. connection set-up: dial -> handshake done (Ed25519 identities, TLS 1.3), direct
 *      and through a relay node (the P2P QUIC packets ride in DATAGRAM frames of each
 *      peer's client connection to the middle node, as qpc-server relays them);
 *   2. over one open connection, the client's message path per message: box the text
 *      (crypto_box, shared key cached), build and sign the envelope, frame it; the
 *      receiver decodes, checks dedup, verifies, opens, and acks by id. Reported:
 *      messages per second with 64 in flight, and the latency of one message alone
 *      (send -> ack back) as p50/p99;
 *   3. broadcast fan-out over the integration test's mesh (a publisher attached to a
 *      6-node mesh with a cycle and one non-subscriber in the middle): time from
 *      creating the broadcast until the last of the 5 subscribers has decrypted it.
 * Each figure is the median of several runs; nothing is asserted. Loopback has no
 * propagation delay, so these are CPU and protocol costs, not network ones.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ev.h>
#include <sodium.h>

#include "qpc/proto.h"
#include "qpc/broadcast.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/quic.h"
#include "qpc/store.h"

#define RUNS 5
#define SETUPS 20
#define MSGS 3000
#define PINGS 500
#define WINDOW 64
#define MAX_NODES 8
#define MAX_LINKS 8

struct node {
    int idx;
    struct qpc_quic_endpoint *ep;
    uint8_t pk[32], sk[64];
    struct qpc_box_cache *box;
    struct qpc_store *store;
    struct qpc_channel_set *chans;
    struct qpc_quic_conn *links[MAX_LINKS];
    int64_t sids[MAX_LINKS];
    bool has_sid[MAX_LINKS];
    int nlinks;
    /* relay: on the middle node, the two clients; on a peer, its path and upstream */
    struct qpc_quic_conn *clients[2];
    int nclients;
    struct qpc_quic_relay *relay;
    struct qpc_quic_conn *upstream;
    int64_t up_sid;
    int connected;
    int got_broadcasts;
};

static struct ev_loop *loop;
static struct node nodes[MAX_NODES + 2];
static double t_connect_done;
static struct qpc_quic_conn *last_conn;
/* message benchmark state */
static int acks, sent;
static double send_time[MSGS];
static double lat[PINGS];
static struct qpc_quic_conn *bench_conn;
static int64_t bench_sid;
static struct node *bench_from;
static int window;
static int fanout_done;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[(int)(p * (n - 1) + 0.5)];
}

/* Runs the loop until cond() or 20 s. */
static bool run_until(bool (*cond)(void *))
{
    ev_tstamp end;

    ev_now_update(loop);
    end = ev_now(loop) + 20.0;
    while (!cond(NULL) && ev_now(loop) < end)
        ev_run(loop, EVRUN_ONCE);
    return cond(NULL);
}

static void send_frame(struct qpc_quic_conn *c, int64_t sid, const Qpc__P2pFrame *f)
{
    size_t len = qpc__p2p_frame__get_packed_size(f);
    uint8_t *buf = malloc(len);

    qpc__p2p_frame__pack(f, buf);
    qpc_quic_conn_send_frame(c, sid, buf, len);
    free(buf);
}

/* The sender's per-message work: box, envelope, sign, encode, frame. */
static void send_message(struct node *n, int seq)
{
    struct qpc_envelope env = { 0 };
    char text[64];
    uint8_t *box = NULL, *enc = NULL;
    size_t blen = 0, elen = 0;
    const uint8_t *peer = qpc_quic_conn_peer_key(bench_conn);
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;

    snprintf(text, sizeof(text), "benchmark message number %d", seq);
    qpc_box_seal(n->box, peer, (const uint8_t *)text, strlen(text), &box, &blen);
    qpc_envelope_init(&env, n->sk, peer, NULL, wall_ms(), 3600, 8, box, blen);
    qpc_envelope_encode(&env, &enc, &elen);
    f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
    f.envelope.data = enc;
    f.envelope.len = elen;
    send_time[seq % MSGS] = now_s();
    send_frame(bench_conn, bench_sid, &f);
    free(box);
    free(enc);
    qpc_envelope_clear(&env);
}

static int link_index(struct node *n, struct qpc_quic_conn *c)
{
    for (int i = 0; i < n->nlinks; i++)
        if (n->links[i] == c)
            return i;
    return -1;
}

static void flood(struct node *n, const struct qpc_envelope *env, struct qpc_quic_conn *except)
{
    uint8_t *enc = NULL;
    size_t elen = 0;
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;

    qpc_envelope_encode(env, &enc, &elen);
    f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
    f.envelope.data = enc;
    f.envelope.len = elen;
    for (int i = 0; i < n->nlinks; i++) {
        if (n->links[i] == except)
            continue;
        if (!n->has_sid[i] && qpc_quic_conn_open_stream(n->links[i], &n->sids[i]) == 0)
            n->has_sid[i] = true;
        if (getenv("BENCH_DEBUG"))
            fprintf(stderr, "node %d flood link %d has_sid %d\n", n->idx, i, n->has_sid[i]);
        if (n->has_sid[i])
            send_frame(n->links[i], n->sids[i], &f);
    }
    free(enc);
}

/* The receiver's per-envelope work, as the client does it. */
static void on_envelope(struct node *n, struct qpc_quic_conn *c, int64_t sid, const uint8_t *d, size_t len)
{
    struct qpc_envelope env = { 0 };
    uint64_t now = wall_ms();
    uint8_t *plain = NULL;
    size_t plen = 0;

    if (qpc_envelope_decode(&env, d, len) < 0 || qpc_store_seen(n->store, env.id) ||
        qpc_envelope_verify(&env, now) < 0)
        goto out;
    qpc_store_mark_seen(n->store, env.id, qpc_envelope_expires_at_ms(&env), now);
    if (env.has_recipient) {
        Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
        Qpc__P2pAck ack = QPC__P2P_ACK__INIT;

        if (qpc_box_open(n->box, env.sender, env.payload, env.payload_len, &plain, &plen) < 0)
            goto out;
        ack.id.data = env.id;
        ack.id.len = QPC_ID_LEN;
        f.body_case = QPC__P2P_FRAME__BODY_ACK;
        f.ack = &ack;
        send_frame(c, sid, &f);
    } else {
        if (qpc_broadcast_open_envelope(n->chans, &env, &plain, &plen) == 0)
            n->got_broadcasts++;
        if (qpc_envelope_hop(&env) == 0)
            flood(n, &env, c);
    }
out:
    free(plain);
    qpc_envelope_clear(&env);
}

/* ---- callbacks ------------------------------------------------------------------------ */

static int cb_connected(struct qpc_quic_conn *c, const char *alpn, const uint8_t *key, void *user)
{
    struct node *n = user;

    n->connected++;
    if (getenv("BENCH_DEBUG"))
        fprintf(stderr, "node %d connected %s server=%d\n", n->idx, alpn, qpc_quic_conn_is_server(c));
    last_conn = c;
    t_connect_done = now_s();
    if (strcmp(alpn, QPC_ALPN_CLIENT) == 0 && qpc_quic_conn_is_server(c) && n->nclients < 2)
        n->clients[n->nclients++] = c;
    else if (strcmp(alpn, QPC_ALPN_P2P) == 0 && n->nlinks < MAX_LINKS)
        n->links[n->nlinks++] = c;
    return 0;
}

static void cb_frame(struct qpc_quic_conn *c, int64_t sid, const uint8_t *d, size_t len, void *user)
{
    struct node *n = user;
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, len, d);
    int i = link_index(n, c);

    if (getenv("BENCH_DEBUG"))
        fprintf(stderr, "node %d frame on link %d (nlinks %d) case %d\n", n->idx, i, n->nlinks, f ? (int)f->body_case : -1);
    if (f == NULL)
        return;
    if (i >= 0 && !n->has_sid[i]) {
        n->sids[i] = sid;
        n->has_sid[i] = true;
    }
    if (f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE) {
        on_envelope(n, c, sid, f->envelope.data, f->envelope.len);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_ACK && n == bench_from) {
        int seq = acks++;

        if (window == 1 && seq < PINGS)
            lat[seq] = now_s() - send_time[seq % MSGS];
        if (sent < (window == 1 ? PINGS : MSGS)) {
            send_message(n, sent);
            sent++;
        }
    }
    qpc__p2p_frame__free_unpacked(f, NULL);
}

static void cb_datagram(struct qpc_quic_conn *c, const uint8_t *d, size_t len, void *user)
{
    struct node *n = user;
    uint8_t buf[QPC_QUIC_DATAGRAM_MAX];

    if (len <= 33 || d[0] != 0x01)
        return;
    if (n->nclients == 2) {   /* the middle node swaps the key and forwards */
        struct qpc_quic_conn *to = n->clients[0] == c ? n->clients[1] : n->clients[0];

        memcpy(buf, d, len);
        memcpy(buf + 1, qpc_quic_conn_peer_key(c), 32);
        qpc_quic_conn_send_datagram(to, buf, len);
        return;
    }
    qpc_quic_endpoint_input_relayed(n->ep, n->relay, d + 33, len - 33);
}

static void cb_closed(struct qpc_quic_conn *c, const struct qpc_quic_close_info *info, void *user)
{
    struct node *n = user;
    int i = link_index(n, c);

    if (getenv("BENCH_DEBUG"))
        fprintf(stderr, "node %d closed: %s %s\n", n->idx, qpc_strerror(info->err), info->reason);
    if (i >= 0) {
        n->links[i] = n->links[n->nlinks - 1];
        n->sids[i] = n->sids[n->nlinks - 1];
        n->has_sid[i] = n->has_sid[n->nlinks - 1];
        n->nlinks--;
    }
}

static int relay_send(void *user, const uint8_t *pkt, size_t len)
{
    struct node *n = user;
    uint8_t buf[QPC_QUIC_DATAGRAM_MAX];
    struct node *peer = n == &nodes[0] ? &nodes[1] : &nodes[0];

    if (n->upstream == NULL || len + 33 > sizeof(buf))
        return 1;
    buf[0] = 0x01;
    memcpy(buf + 1, peer->pk, 32);
    memcpy(buf + 33, pkt, len);
    return qpc_quic_conn_send_datagram(n->upstream, buf, len + 33) == 0 ? 0 : 1;
}

static void node_init(struct node *n, int idx, bool middle)
{
    struct qpc_quic_config cfg = { 0 };

    memset(n, 0, sizeof(*n));
    n->idx = idx;
    crypto_sign_keypair(n->pk, n->sk);
    n->box = qpc_box_cache_new(n->sk);
    n->store = qpc_store_new(NULL);
    n->chans = qpc_broadcast_set_new();
    cfg.bind_addr = "127.0.0.1";
    cfg.accept = true;
    cfg.alpns[0] = middle ? QPC_ALPN_CLIENT : QPC_ALPN_P2P;
    cfg.identity_sk = n->sk;
    cfg.cb.on_connected = cb_connected;
    cfg.cb.on_frame = cb_frame;
    cfg.cb.on_datagram = cb_datagram;
    cfg.cb.on_closed = cb_closed;
    cfg.user = n;
    if (qpc_quic_endpoint_new(&n->ep, loop, &cfg) < 0) {
        fprintf(stderr, "endpoint failed\n");
        exit(1);
    }
}

static void node_free(struct node *n)
{
    qpc_quic_endpoint_free(n->ep);
    qpc_box_cache_free(n->box);
    qpc_store_free(n->store);
    qpc_broadcast_set_free(n->chans);
}

static struct node *g_wait_node;
static int g_wait_count;
static bool cond_connected(void *arg)
{
    return g_wait_node->connected >= g_wait_count;
}

/* Dials to->ep from from (direct, or relayed when relay is set); returns seconds. */
static double dial(struct node *from, struct node *to, bool relayed, struct qpc_quic_conn **out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    double t0;

    qpc_quic_endpoint_local_addr(to->ep, &ss, &sl);
    g_wait_node = from;
    g_wait_count = from->connected + 1;
    t0 = now_s();
    if (relayed)
        qpc_quic_connect_relayed(from->ep, from->relay, QPC_ALPN_P2P, to->pk, from, out);
    else
        qpc_quic_connect(from->ep, (struct sockaddr *)&ss, sl, QPC_ALPN_P2P, to->pk, from, out);
    if (!run_until(cond_connected))
        return -1;
    return t_connect_done - t0;
}

static bool cond_acks(void *arg)
{
    return acks >= (window == 1 ? PINGS : MSGS);
}

/* Message rate and single-message latency over conn from a to its peer. */
static void bench_messages(struct node *a, struct qpc_quic_conn *conn, const char *label)
{
    double rates[RUNS], p50s[RUNS], p99s[RUNS];

    bench_from = a;
    bench_conn = conn;
    qpc_quic_conn_open_stream(conn, &bench_sid);
    for (int r = 0; r < RUNS; r++) {
        double t0;

        acks = sent = 0;
        window = WINDOW;
        t0 = now_s();
        for (; sent < WINDOW; sent++)
            send_message(a, sent);
        run_until(cond_acks);
        rates[r] = acks / (now_s() - t0);
        acks = sent = 0;
        window = 1;
        send_message(a, sent++);
        run_until(cond_acks);
        p50s[r] = pct(lat, PINGS, 0.50) * 1e3;
        p99s[r] = pct(lat, PINGS, 0.99) * 1e3;
    }
    printf("%-8s messages/s (%d in flight, ack per message): %.0f\n", label, WINDOW,
           pct(rates, RUNS, 0.5));
    printf("%-8s latency one message, send->ack: p50 %.3f ms  p99 %.3f ms\n", label,
           pct(p50s, RUNS, 0.5), pct(p99s, RUNS, 0.5));
}

static void bench_setup_and_messages(bool relayed)
{
    double t[SETUPS];
    struct qpc_quic_conn *c = NULL;
    struct node *a = &nodes[0], *b = &nodes[1], *m = &nodes[2];
    const char *label = relayed ? "relayed" : "direct";

    node_init(a, 0, false);
    node_init(b, 1, false);
    if (relayed) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        node_init(m, 2, true);
        qpc_quic_endpoint_local_addr(m->ep, &ss, &sl);
        for (int i = 0; i < 2; i++) {
            struct node *n = &nodes[i];

            qpc_quic_relay_new(n->ep, relay_send, n, &n->relay);
            g_wait_node = n;
            g_wait_count = n->connected + 1;
            qpc_quic_connect(n->ep, (struct sockaddr *)&ss, sl, QPC_ALPN_CLIENT, m->pk, n, &n->upstream);
            run_until(cond_connected);
        }
    }
    for (int i = 0; i < SETUPS; i++) {
        t[i] = dial(a, b, relayed, &c) * 1e3;
        if (i + 1 < SETUPS) {
            qpc_quic_conn_close(c, 0, "again");
            ev_run(loop, EVRUN_NOWAIT);
        }
    }
    printf("%-8s connection set-up (dial -> handshake done): median %.2f ms  p90 %.2f ms\n", label,
           pct(t, SETUPS, 0.5), pct(t, SETUPS, 0.9));
    bench_messages(a, c, label);
    node_free(a);
    node_free(b);
    if (relayed)
        node_free(m);
}

static bool cond_fanout(void *arg)
{
    int done = 0;

    for (int i = 1; i <= 6; i++)
        done += i != 3 && nodes[i].got_broadcasts >= fanout_done;
    return done == 5;
}

/* Both ends of every mesh edge have seen the handshake complete. */
static bool cond_all_links(void *arg)
{
    int total = 0;

    for (int i = 0; i <= 6; i++)
        total += nodes[i].nlinks;
    return total == 14;
}

static void bench_fanout(void)
{
    /* node 0 publishes into m1; m1-m2, m2-m3, m3-m4, m2-m5, m5-m6, m6-m4; m3 not subscribed */
    static const int edges[][2] = { { 0, 1 }, { 2, 1 }, { 3, 2 }, { 4, 3 }, { 5, 2 }, { 6, 5 }, { 6, 4 } };
    double t[20];
    struct qpc_channel_set *pubset = qpc_broadcast_set_new();
    const struct qpc_channel *ch = NULL;

    for (int i = 0; i <= 6; i++) {
        node_init(&nodes[i], i, false);
        if (i != 3 && i != 0)
            qpc_broadcast_subscribe(nodes[i].chans, "townhall", NULL, NULL);
    }
    qpc_broadcast_subscribe(pubset, "townhall", NULL, &ch);
    for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++) {
        double d = dial(&nodes[edges[e][0]], &nodes[edges[e][1]], false, NULL);
        if (getenv("BENCH_DEBUG"))
            fprintf(stderr, "edge %zu: %.3f\n", e, d);
    }
    run_until(cond_all_links);
    for (int r = 0; r < 20; r++) {
        struct qpc_envelope env = { 0 };
        double t0 = now_s();

        fanout_done = r + 1;
        qpc_broadcast_envelope_new(ch, nodes[0].sk, wall_ms(), 3600, 8, (const uint8_t *)"meeting at eight",
                                   16, &env);
        flood(&nodes[0], &env, NULL);
        qpc_envelope_clear(&env);
        if (!run_until(cond_fanout)) {
            for (int i = 0; i <= 6; i++)
                fprintf(stderr, "node %d: links %d got %d\n", i, nodes[i].nlinks, nodes[i].got_broadcasts);
            exit(1);
        }
        t[r] = (now_s() - t0) * 1e3;
    }
    printf("fan-out  broadcast to 5 subscribers over the 6-node mesh (4 hops max): median %.2f ms  max %.2f ms\n",
           pct(t, 20, 0.5), pct(t, 20, 1.0));
    for (int i = 0; i <= 6; i++)
        node_free(&nodes[i]);
    qpc_broadcast_set_free(pubset);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = EV_DEFAULT;
    if (getenv("FANOUT_ONLY") == NULL) {
        bench_setup_and_messages(false);
        bench_setup_and_messages(true);
    }
    bench_fanout();
    return 0;
}
