/*
 * p2pflood.h: a P2P load source and sink for the forwarding tests and benchmark
 * (tests/tools/qpc_p2p_flood.c, bench/bench_forward.c). Header-only because each of
 * those directories builds one executable per .c file. It is NOT the real client.
 *
 * The source dials a qpc node over quicprochat/p2p/1 with a fresh identity and sends n
 * direct envelopes (DirectContent texts "flood N", signed, boxed) for a recipient that
 * is not the node, so the node must forward them: hold each durably, ack DEFERRED, pass
 * it on. Envelopes are built before the first is sent, so the source's own signing does
 * not pace the run; at most `window` are unacked at a time. Every ack is handed to a
 * callback with its id and status; envelopes that come back (receipts) are acked OK.
 *
 * The sink accepts P2P connections as the identity of a 32-byte seed and acks every
 * envelope OK, as its recipient, without opening it, counting distinct ids.
 */
#ifndef QPC_P2PFLOOD_H
#define QPC_P2PFLOOD_H

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ev.h>
#include <sodium.h>

#include "qpc/addr.h"
#include "qpc/proto.h"
#include "qpc/direct.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/quic.h"
#include "qpc/uthash_keyed.h"

static inline double flood_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t flood_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A P2pFrame packed (caller frees *out). */
static inline int flood_pack(const Qpc__P2pFrame *f, uint8_t **out, size_t *len)
{
    *len = qpc__p2p_frame__get_packed_size(f);
    *out = malloc(*len ? *len : 1);
    if (*out == NULL)
        return QPC_ERR_NOMEM;
    qpc__p2p_frame__pack(f, *out);
    return 0;
}

static inline void flood_send_ack(struct qpc_quic_conn *c, int64_t sid, const uint8_t *id, size_t id_len)
{
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    Qpc__P2pAck ack = QPC__P2P_ACK__INIT;
    uint8_t *buf;
    size_t len;

    ack.id.data = (uint8_t *)id;
    ack.id.len = id_len;
    ack.status = QPC__STATUS__STATUS_OK;
    f.body_case = QPC__P2P_FRAME__BODY_ACK;
    f.ack = &ack;
    if (flood_pack(&f, &buf, &len) == 0) {
        qpc_quic_conn_send_frame(c, sid, buf, len);
        free(buf);
    }
}

/* ---- the source ----------------------------------------------------------------------- */

struct flood_source {
    struct ev_loop *loop;
    struct qpc_quic_endpoint *ep;
    struct qpc_quic_conn *conn;
    int64_t sid;
    bool up, closed;
    uint8_t pk[32], sk[64];
    uint8_t **frames;                  /* prebuilt P2pFrames, one per envelope */
    size_t *frame_len;
    size_t n, next, acked, window;
    size_t by_status[16];
    double t_first, t_last;            /* first send, last ack (monotonic) */
    void (*on_ack)(void *ctx, const uint8_t *id, size_t id_len, int status);
    void *ctx;
};

static inline void flood_source_pump(struct flood_source *s)
{
    while (s->up && s->next < s->n && s->next - s->acked < s->window) {
        int rc = qpc_quic_conn_send_frame(s->conn, s->sid, s->frames[s->next], s->frame_len[s->next]);

        if (rc == QPC_ERR_AGAIN)
            return;   /* on_writable calls again */
        if (rc < 0) {
            s->closed = true;
            return;
        }
        if (s->next == 0)
            s->t_first = flood_mono();
        free(s->frames[s->next]);
        s->frames[s->next] = NULL;
        s->next++;
    }
}

static inline int flood_source_connected(struct qpc_quic_conn *c, const char *alpn, const uint8_t *key,
                                         void *user)
{
    struct flood_source *s = user;

    if (qpc_quic_conn_open_stream(c, &s->sid) < 0)
        return 1;
    s->up = true;
    flood_source_pump(s);
    return 0;
}

static inline void flood_source_frame(struct qpc_quic_conn *c, int64_t sid, const uint8_t *d, size_t n,
                                      void *user)
{
    struct flood_source *s = user;
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, n, d);

    if (f == NULL)
        return;
    if (f->body_case == QPC__P2P_FRAME__BODY_ACK && f->ack != NULL) {
        s->acked++;
        s->t_last = flood_mono();
        s->by_status[(unsigned)f->ack->status < 16 ? f->ack->status : 15]++;
        if (s->on_ack != NULL)
            s->on_ack(s->ctx, f->ack->id.data, f->ack->id.len, f->ack->status);
        flood_source_pump(s);
    } else if (f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE) {
        struct qpc_envelope env = { 0 };

        /* A receipt (or anything) coming back: taken, so the node ends its custody. */
        if (qpc_envelope_decode(&env, f->envelope.data, f->envelope.len) == 0)
            flood_send_ack(c, sid, env.id, QPC_ID_LEN);
        qpc_envelope_clear(&env);
    }
    qpc__p2p_frame__free_unpacked(f, NULL);
}

static inline void flood_source_writable(struct qpc_quic_conn *c, int64_t sid, void *user)
{
    flood_source_pump(user);
}

static inline void flood_source_closed(struct qpc_quic_conn *c, const struct qpc_quic_close_info *info,
                                       void *user)
{
    struct flood_source *s = user;

    s->up = false;
    s->closed = true;
    s->conn = NULL;
}

/*
 * Builds n envelopes of about size payload bytes for recipient and dials target (expecting
 * target_key). 0 or a QPC_ERR_* (message on stderr).
 */
static inline int flood_source_start(struct flood_source *s, struct ev_loop *loop, const char *target,
                                     const uint8_t target_key[32], const uint8_t recipient[32],
                                     size_t n, size_t size, size_t window)
{
    struct qpc_quic_config qc = { 0 };
    struct qpc_box_cache *box;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    char *text;
    uint64_t now = flood_wall_ms();
    int rc;

    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->n = n;
    s->window = window;
    crypto_sign_keypair(s->pk, s->sk);
    if ((box = qpc_box_cache_new(s->sk)) == NULL || (text = malloc(size + 32)) == NULL)
        return QPC_ERR_NOMEM;
    s->frames = calloc(n, sizeof(*s->frames));
    s->frame_len = calloc(n, sizeof(*s->frame_len));
    for (size_t i = 0; i < n; i++) {
        struct qpc_envelope env = { 0 };
        Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
        uint8_t *plain = NULL, *boxed = NULL, *wire = NULL;
        size_t plen = 0, blen = 0, wlen = 0, tl;

        tl = (size_t)snprintf(text, size + 32, "flood %zu ", i);
        while (tl < size)
            text[tl++] = 'x';
        rc = qpc_direct_encode_text(text, tl, NULL, &plain, &plen);
        if (rc == 0)
            rc = qpc_box_seal(box, recipient, plain, plen, &boxed, &blen);
        if (rc == 0)
            rc = qpc_envelope_init(&env, s->sk, recipient, NULL, now, 3600, 8, boxed, blen);
        if (rc == 0)
            rc = qpc_envelope_encode(&env, &wire, &wlen);
        if (rc == 0) {
            f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
            f.envelope.data = wire;
            f.envelope.len = wlen;
            rc = flood_pack(&f, &s->frames[i], &s->frame_len[i]);
        }
        free(plain);
        free(boxed);
        free(wire);
        qpc_envelope_clear(&env);
        if (rc < 0) {
            fprintf(stderr, "flood: cannot build envelope %zu: %s\n", i, qpc_strerror(rc));
            return rc;
        }
    }
    free(text);
    qpc_box_cache_free(box);
    if ((rc = qpc_addr_resolve(target, &ss, &sl)) < 0) {
        fprintf(stderr, "flood: cannot resolve %s\n", target);
        return rc;
    }
    qc.bind_addr = ss.ss_family == AF_INET6 ? "::" : "0.0.0.0";
    qc.identity_sk = s->sk;
    qc.cb.on_connected = flood_source_connected;
    qc.cb.on_frame = flood_source_frame;
    qc.cb.on_writable = flood_source_writable;
    qc.cb.on_closed = flood_source_closed;
    qc.user = s;
    rc = qpc_quic_endpoint_new(&s->ep, loop, &qc);
    if (rc == 0)
        rc = qpc_quic_connect(s->ep, (struct sockaddr *)&ss, sl, QPC_ALPN_P2P, target_key, s, &s->conn);
    if (rc < 0)
        fprintf(stderr, "flood: cannot connect to %s: %s\n", target, qpc_strerror(rc));
    return rc;
}

static inline void flood_source_free(struct flood_source *s)
{
    qpc_quic_endpoint_free(s->ep);
    for (size_t i = 0; i < s->n; i++)
        free(s->frames[i]);
    free(s->frames);
    free(s->frame_len);
    sodium_memzero(s->sk, sizeof(s->sk));
}

/* ---- the sink --------------------------------------------------------------------------- */

struct flood_id {
    uint8_t id[QPC_ID_LEN];
    UT_hash_handle hh;
};

struct flood_sink {
    struct qpc_quic_endpoint *ep;
    uint8_t pk[32], sk[64];
    struct flood_id *ids;
    size_t received, distinct;
    double t_first, t_last;            /* first and last arrival (monotonic) */
};

static inline int flood_sink_connected(struct qpc_quic_conn *c, const char *alpn, const uint8_t *key,
                                       void *user)
{
    return 0;
}

static inline void flood_sink_frame(struct qpc_quic_conn *c, int64_t sid, const uint8_t *d, size_t n,
                                    void *user)
{
    struct flood_sink *k = user;
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, n, d);
    struct qpc_envelope env = { 0 };

    if (f == NULL)
        return;
    if (f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE &&
        qpc_envelope_decode(&env, f->envelope.data, f->envelope.len) == 0) {
        struct flood_id *e = NULL;

        if (k->received++ == 0)
            k->t_first = flood_mono();
        k->t_last = flood_mono();
        HASH_FIND(hh, k->ids, env.id, QPC_ID_LEN, e);
        if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
            memcpy(e->id, env.id, QPC_ID_LEN);
            HASH_ADD(hh, k->ids, id, QPC_ID_LEN, e);
            k->distinct++;
        }
        flood_send_ack(c, sid, env.id, QPC_ID_LEN);
    }
    qpc_envelope_clear(&env);
    qpc__p2p_frame__free_unpacked(f, NULL);
}

/* Listens on bind:port as the identity of seed (32 bytes). 0 or a QPC_ERR_*. */
static inline int flood_sink_start(struct flood_sink *k, struct ev_loop *loop, const char *bind,
                                   uint16_t port, const uint8_t seed[32])
{
    struct qpc_quic_config qc = { 0 };

    memset(k, 0, sizeof(*k));
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    qc.bind_addr = bind;
    qc.port = port;
    qc.accept = true;
    qc.alpns[0] = QPC_ALPN_P2P;
    qc.identity_sk = k->sk;
    qc.cb.on_connected = flood_sink_connected;
    qc.cb.on_frame = flood_sink_frame;
    qc.user = k;
    return qpc_quic_endpoint_new(&k->ep, loop, &qc);
}

static inline void flood_sink_free(struct flood_sink *k)
{
    struct flood_id *e, *tmp;

    qpc_quic_endpoint_free(k->ep);
    HASH_ITER(hh, k->ids, e, tmp) {
        HASH_DEL(k->ids, e);
        free(e);
    }
    sodium_memzero(k->sk, sizeof(k->sk));
}

#endif
