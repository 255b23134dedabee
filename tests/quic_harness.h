/*
 * quic_harness.h: shared helpers for the QUIC tests (test_quic*.c): a per-endpoint
 * record of what the callbacks saw, and run_until() which turns the libev loop until
 * a condition holds or a generous deadline passes (the deadline only stops a broken
 * test from hanging; no test asserts on time).
 */
#ifndef QPC_TEST_QUIC_HARNESS_H
#define QPC_TEST_QUIC_HARNESS_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <sodium.h>

#include "qpc/error.h"
#include "qpc/quic.h"

struct side {
    struct qpc_quic_endpoint *ep;
    uint8_t pk[32], sk[64];
    int connected, closed;
    struct qpc_quic_conn *conn;          /* last connection seen connected */
    char alpn[64];
    bool has_peer_key;
    uint8_t peer_key[32];
    int refuse;                          /* on_connected returns this */
    int last_err;
    bool last_by_peer, last_is_app;
    uint64_t last_code;
    char last_reason[256];
    size_t frames, datagrams;
    uint64_t frame_bytes;
    /* optional hooks used by individual tests */
    void (*on_frame)(struct side *s, struct qpc_quic_conn *c, int64_t sid, const uint8_t *d,
                     size_t n);
    void (*on_connected)(struct side *s, struct qpc_quic_conn *c);
    void (*on_writable)(struct side *s, struct qpc_quic_conn *c, int64_t sid);
    void (*on_stream_end)(struct side *s, struct qpc_quic_conn *c, int64_t sid);
    size_t stream_ends;
    void *ctx;
};

static inline int h_on_connected(struct qpc_quic_conn *c, const char *alpn, const uint8_t *key,
                          void *user)
{
    struct side *s = user;

    s->connected++;
    s->conn = c;
    snprintf(s->alpn, sizeof(s->alpn), "%s", alpn);
    s->has_peer_key = key != NULL;
    if (key != NULL)
        memcpy(s->peer_key, key, 32);
    if (s->refuse)
        return s->refuse;
    if (s->on_connected)
        s->on_connected(s, c);
    return 0;
}

static inline void h_on_frame(struct qpc_quic_conn *c, int64_t sid, const uint8_t *d, size_t n,
                       void *user)
{
    struct side *s = user;

    s->frames++;
    s->frame_bytes += n;
    if (s->on_frame)
        s->on_frame(s, c, sid, d, n);
}

static inline void h_on_datagram(struct qpc_quic_conn *c, const uint8_t *d, size_t n, void *user)
{
    struct side *s = user;

    s->datagrams++;
}

static inline void h_on_writable(struct qpc_quic_conn *c, int64_t sid, void *user)
{
    struct side *s = user;

    if (s->on_writable)
        s->on_writable(s, c, sid);
}

static inline void h_on_stream_end(struct qpc_quic_conn *c, int64_t sid, void *user)
{
    struct side *s = user;

    s->stream_ends++;
    if (s->on_stream_end)
        s->on_stream_end(s, c, sid);
}

static inline void h_on_closed(struct qpc_quic_conn *c, const struct qpc_quic_close_info *info,
                        void *user)
{
    struct side *s = user;

    s->closed++;
    if (getenv("QPC_TEST_DEBUG"))
        fprintf(stderr, "closed %p server=%d err=%d by_peer=%d app=%d code=%llu reason=%s\n",
                (void *)c, qpc_quic_conn_is_server(c), info->err, info->by_peer, info->is_app,
                (unsigned long long)info->code, info->reason);
    s->last_err = info->err;
    s->last_by_peer = info->by_peer;
    s->last_is_app = info->is_app;
    s->last_code = info->code;
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", info->reason);
    if (s->conn == c)
        s->conn = NULL;
}

static inline void side_keys(struct side *s)
{
    if (sodium_init() < 0)
        abort();
    crypto_sign_keypair(s->pk, s->sk);
}

static inline void side_config(struct qpc_quic_config *cfg, struct side *s, bool accept)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->bind_addr = "127.0.0.1";
    cfg->accept = accept;
    cfg->alpns[0] = QPC_ALPN_CLIENT;
    cfg->alpns[1] = QPC_ALPN_P2P;
    cfg->identity_sk = s->sk;
    cfg->cb.on_connected = h_on_connected;
    cfg->cb.on_frame = h_on_frame;
    cfg->cb.on_datagram = h_on_datagram;
    cfg->cb.on_writable = h_on_writable;
    cfg->cb.on_stream_end = h_on_stream_end;
    cfg->cb.on_closed = h_on_closed;
    cfg->user = s;
}

static inline void side_addr(struct side *s, struct sockaddr_storage *ss, socklen_t *len)
{
    qpc_quic_endpoint_local_addr(s->ep, ss, len);
}

struct run_ctx {
    bool (*cond)(void *);
    void *arg;
    bool timed_out;
};

static inline void h_check_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct run_ctx *r = w->data;

    if (r->cond(r->arg))
        ev_break(loop, EVBREAK_ALL);
}

static inline void h_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run_ctx *r = w->data;

    r->timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

/* Turns the loop until cond(arg) or deadline seconds pass; returns cond(arg). */
static inline bool run_until(struct ev_loop *loop, bool (*cond)(void *), void *arg, double deadline)
{
    struct run_ctx r = { cond, arg, false };
    ev_prepare chk;
    ev_timer to;

    if (cond(arg))
        return true;
    /* A prepare watcher of the lowest priority runs after the endpoints' own (which
     * do the work queued in callbacks) and before the loop would block. */
    ev_prepare_init(&chk, h_check_cb);
    ev_set_priority(&chk, EV_MINPRI);
    chk.data = &r;
    ev_prepare_start(loop, &chk);
    ev_timer_init(&to, h_deadline_cb, deadline, 0.0);
    to.data = &r;
    ev_timer_start(loop, &to);
    ev_run(loop, 0);
    ev_prepare_stop(loop, &chk);
    ev_timer_stop(loop, &to);
    return cond(arg);
}

/* Turns the loop for a while (to let closes and frees settle). */
static inline bool h_never(void *arg)
{
    return false;
}

static inline void run_for(struct ev_loop *loop, double seconds)
{
    run_until(loop, h_never, NULL, seconds);
}

#endif
