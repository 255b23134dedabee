/*
 * testclient.h: a minimal client of the node's client ALPN for the server's integration
 * tests (tests/tools/qpc_testclient.c) and benchmarks (bench/bench_server.c). Header-only
 * because each of those directories builds one executable per .c file.
 *
 * One connection, one stream, ClientRequest frames out and ServerMessage frames in,
 * handed to a callback. Requests are pipelined; tc_send() returns QPC_ERR_AGAIN when the
 * stream buffer is full and the caller waits for replies (tc_run_until) before retrying.
 * It is NOT the real client (src/client/), which is written separately.
 */
#ifndef QPC_TESTCLIENT_H
#define QPC_TESTCLIENT_H

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ev.h>
#include <sodium.h>

#include "qpc/addr.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/quic.h"
#include "qpc/proto.h"

struct tc;
typedef void (*tc_msg_fn)(struct tc *t, const Qpc__ServerMessage *m);
typedef void (*tc_dgram_fn)(struct tc *t, const uint8_t *data, size_t len);

struct tc {
    struct ev_loop *loop;
    struct qpc_quic_endpoint *ep;
    struct qpc_quic_conn *conn;
    int64_t sid;
    bool ready, closed;
    int close_err;
    char close_reason[256];
    uint8_t server_key[QPC_KEY_LEN];
    uint64_t next_rid;
    uint64_t keepalive_ms;          /* set before connecting: PING interval, 0 = none */
    tc_msg_fn on_msg;
    tc_dgram_fn on_dgram;
    void *user;
};

static inline uint64_t tc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline double tc_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int tc_on_connected(struct qpc_quic_conn *c, const char *alpn, const uint8_t *key,
                                  void *user)
{
    struct tc *t = user;

    if (qpc_quic_conn_open_stream(c, &t->sid) != 0)
        return 1;
    if (key != NULL)
        memcpy(t->server_key, key, QPC_KEY_LEN);
    t->ready = true;
    return 0;
}

static inline void tc_on_frame(struct qpc_quic_conn *c, int64_t sid, const uint8_t *d, size_t n,
                               void *user)
{
    struct tc *t = user;
    Qpc__ServerMessage *m = qpc__server_message__unpack(NULL, n, d);

    if (m == NULL) {
        fprintf(stderr, "testclient: undecodable frame from the server\n");
        return;
    }
    if (t->on_msg != NULL)
        t->on_msg(t, m);
    qpc__server_message__free_unpacked(m, NULL);
}

static inline void tc_on_datagram(struct qpc_quic_conn *c, const uint8_t *d, size_t n, void *user)
{
    struct tc *t = user;

    if (t->on_dgram != NULL)
        t->on_dgram(t, d, n);
}

static inline void tc_on_closed(struct qpc_quic_conn *c, const struct qpc_quic_close_info *info,
                                void *user)
{
    struct tc *t = user;

    t->closed = true;
    t->ready = false;
    t->conn = NULL;
    t->close_err = info->err;
    snprintf(t->close_reason, sizeof(t->close_reason), "%s", info->reason);
}

struct tc_wait {
    struct tc *t;
    bool (*cond)(struct tc *t);
    bool hit;
};

static inline void tc_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct tc_wait *tw = w->data;

    if (tw->t->closed || tw->cond(tw->t)) {
        tw->hit = true;
        ev_break(loop, EVBREAK_ALL);
    }
}

static inline void tc_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* Turns the loop until cond(t), the connection closes, or seconds pass. Returns cond(t). */
static inline bool tc_run_until(struct tc *t, bool (*cond)(struct tc *t), double seconds)
{
    struct tc_wait tw = { t, cond, false };
    ev_prepare chk;
    ev_timer to;

    if (cond(t))
        return true;
    if (t->closed)
        return false;
    ev_prepare_init(&chk, tc_check);
    ev_set_priority(&chk, EV_MINPRI);   /* after the endpoint has flushed */
    chk.data = &tw;
    ev_prepare_start(t->loop, &chk);
    ev_timer_init(&to, tc_deadline, seconds, 0.0);
    ev_timer_start(t->loop, &to);
    ev_run(t->loop, 0);
    ev_prepare_stop(t->loop, &chk);
    ev_timer_stop(t->loop, &to);
    return cond(t);
}

static inline bool tc_is_ready(struct tc *t)
{
    return t->ready;
}

/* Starts connecting to host:port as the identity sk without waiting: t->ready turns true
 * (or t->closed) as the loop runs. 0 or a negative error (message on stderr). */
static inline int tc_connect_start(struct tc *t, struct ev_loop *loop, const uint8_t sk[64],
                                   const char *hostport)
{
    struct qpc_quic_config qc = { 0 };
    struct addrinfo hints = { 0 }, *res = NULL;
    char host[256], port_s[8];
    uint16_t port;
    int rc;

    t->loop = loop;
    t->next_rid = 1;
    rc = qpc_addr_parse(hostport, host, sizeof(host), &port);
    if (rc != 0) {
        fprintf(stderr, "testclient: bad address '%s'\n", hostport);
        return rc;
    }
    snprintf(port_s, sizeof(port_s), "%u", port);
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_family = AF_INET;
    if (getaddrinfo(host, port_s, &hints, &res) != 0)
        return QPC_ERR_NOT_FOUND;
    qc.bind_addr = "0.0.0.0";
    qc.identity_sk = sk;
    qc.cb.on_connected = tc_on_connected;
    qc.cb.on_frame = tc_on_frame;
    qc.cb.on_closed = tc_on_closed;
    qc.cb.on_datagram = tc_on_datagram;
    qc.keepalive_ms = t->keepalive_ms;
    qc.user = t;
    rc = qpc_quic_endpoint_new(&t->ep, loop, &qc);
    if (rc == 0)
        rc = qpc_quic_connect(t->ep, res->ai_addr, res->ai_addrlen, QPC_ALPN_CLIENT, NULL, t,
                              &t->conn);
    freeaddrinfo(res);
    if (rc != 0)
        fprintf(stderr, "testclient: connect: %s\n", qpc_strerror(rc));
    return rc;
}

/* Connects to host:port as the identity sk. 0 or a negative error (message on stderr). */
static inline int tc_connect(struct tc *t, struct ev_loop *loop, const uint8_t sk[64],
                             const char *hostport, double timeout)
{
    int rc = tc_connect_start(t, loop, sk, hostport);

    if (rc != 0)
        return rc;
    if (!tc_run_until(t, tc_is_ready, timeout)) {
        fprintf(stderr, "testclient: no connection to %s (%s %s)\n", hostport,
                t->closed ? qpc_strerror(t->close_err) : "timeout", t->close_reason);
        return QPC_ERR_TIMEOUT;
    }
    return 0;
}

static inline void tc_free(struct tc *t)
{
    qpc_quic_endpoint_free(t->ep);
    t->ep = NULL;
}

/* Sends one request (request_id assigned here, returned in *rid). 0, QPC_ERR_AGAIN, ... */
static inline int tc_send(struct tc *t, Qpc__ClientRequest *req, uint64_t *rid)
{
    size_t len;
    uint8_t *buf;
    int rc;

    if (!t->ready)
        return QPC_ERR_CLOSED;
    req->request_id = t->next_rid;
    len = qpc__client_request__get_packed_size(req);
    buf = malloc(len ? len : 1);
    if (buf == NULL)
        return QPC_ERR_NOMEM;
    qpc__client_request__pack(req, buf);
    rc = qpc_quic_conn_send_frame(t->conn, t->sid, buf, len);
    free(buf);
    if (rc == 0) {
        if (rid != NULL)
            *rid = t->next_rid;
        t->next_rid++;
    }
    return rc;
}

/* Makes an encoded envelope from sk to recipient with the given payload and TTL. */
static inline int tc_make_envelope(const uint8_t sk[64], const uint8_t recipient[32],
                                   const uint8_t *payload, size_t len, uint32_t ttl_s,
                                   uint8_t **out, size_t *out_len, uint8_t id[QPC_ID_LEN])
{
    struct qpc_envelope env = { 0 };
    int rc = qpc_envelope_init(&env, sk, recipient, NULL, tc_now_ms(), ttl_s,
                               QPC_MAX_HOPS_DEFAULT, payload, len);

    if (rc == 0)
        rc = qpc_envelope_encode(&env, out, out_len);
    if (rc == 0 && id != NULL)
        memcpy(id, env.id, QPC_ID_LEN);
    qpc_envelope_clear(&env);
    return rc;
}

static inline const char *tc_status_name(int st)
{
    static const char *names[] = { "OK", "INVALID", "FORBIDDEN", "QUEUE_FULL", "TOO_LARGE",
                                   "EXPIRED", "UNKNOWN_DOMAIN", "DEFERRED", "INTERNAL" };

    return st >= 0 && st <= 8 ? names[st] : "?";
}

#endif
