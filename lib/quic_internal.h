/*
 * quic_internal.h (internal): what the files of the QUIC transport share.
 *
 * The transport is one module in several files: quic.c (endpoint and connection life
 * cycle, the per-turn scheduler, packet reading and writing), stream.c (streams: chunk
 * queues, frames, back-pressure), relay_path.c (paths through the application instead
 * of the socket), udp.c (the socket, its own header udp.h) and, for each connection's
 * TLS session, tls.c (tls.h). The endpoint and connection structs are defined here
 * because every file reads them; a stream's and a relay's insides are their files'
 * alone.
 *
 * The rule all files keep: no connection is freed, and no packet written, from inside
 * an ngtcp2 callback or an application's call. They record what is to happen
 * (qpc_conn_end) and mark the connection dirty (qpc_conn_mark_dirty); quic.c carries
 * it out at the top of the loop.
 */
#ifndef QPC_QUIC_INTERNAL_H
#define QPC_QUIC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <ev.h>
#include <ngtcp2/ngtcp2.h>

#include "qpc/quic.h"
#include "qpc/tls.h"
#include "udp.h"

#define QPC_QUIC_REASON_MAX 255          /* bytes of a close reason kept */
#define QPC_QUIC_TXBUF_LEN 2048          /* CONNECTION_CLOSE and Version Negotiation */

struct cid_entry;                        /* quic.c: one connection id we answer to */
struct dgram;                            /* quic.c: one queued DATAGRAM */
struct stream;                           /* stream.c: one bidirectional stream */
/* struct qpc_quic_relay (quic.h) is relay_path.c's alone. */

struct qpc_quic_conn {
    struct qpc_quic_endpoint *ep;
    ngtcp2_conn *qc;
    struct qpc_tls_session tls;          /* tls.c: the GnuTLS session, ALPN, peer key */
    bool is_server;
    bool handshake_done;
    bool in_read;
    bool counted_handshaking;            /* counted in ep->n_handshaking */
    bool heard;                          /* a packet from the peer was read */
    struct sockaddr_storage remote;
    socklen_t remote_len;
    ev_timer timer;
    struct stream *streams;              /* stream.c: every open stream, by id */
    struct stream *ready;                /* stream.c: streams with bytes or FIN to send */
    unsigned round;                      /* counts conn_write calls (a stream blocked in
                                          * this round is skipped until the next) */
    bool writable_check;                 /* an ACK freed room where on_writable waits */
    struct dgram *dq;
    size_t dq_count;
    unsigned dgram_round;
    struct cid_entry *cids;
    /* The end, once decided: carried out by flush. */
    bool ending;
    bool send_close;                     /* write a CONNECTION_CLOSE first */
    ngtcp2_connection_close_error cc;
    uint8_t cc_reason[QPC_QUIC_REASON_MAX + 1];
    struct qpc_quic_close_info info;
    char info_reason[QPC_QUIC_REASON_MAX + 1];
    void *user;
    struct qpc_quic_conn *prev, *next;   /* endpoint's connections */
    struct qpc_quic_conn *dprev, *dnext; /* endpoint's dirty list */
    bool dirty;
};

struct qpc_quic_endpoint {
    struct ev_loop *loop;
    struct qpc_udp udp;                  /* the socket; its local address */
    ev_prepare prep;
    struct sockaddr_in6 relay_local;     /* relay_path.c: our end of every relay path */
    bool accept;                         /* configured to accept (cfg->accept) */
    bool accepting;                      /* ... and accepting now (set_accepting) */
    struct qpc_tls_endpoint tls;         /* tls.c: credentials, ALPNs served */
    size_t max_frame, stream_buffer;
    uint64_t idle_ms, keepalive_ms;
    uint64_t frame_timeout;              /* ngtcp2 time units (ns) */
    struct qpc_quic_callbacks cb;
    void *user;
    struct cid_entry *cid_table;
    struct qpc_quic_conn *conns, *dirty;
    size_t nconns;
    size_t n_handshaking;                /* accepted, handshake not done */
    bool freeing;                        /* qpc_quic_endpoint_free is running */
    struct qpc_quic_relay *relays;       /* relay_path.c */
    uint64_t next_relay_id;
    uint8_t reset_secret[32];
    /* Address validation (quic.c, conn_accept): above retry_threshold handshakes, an
     * Initial without a valid Retry token gets a Retry and no state. */
    size_t retry_threshold;              /* 0: every new client is validated */
    uint8_t retry_secret[32];            /* random per endpoint, wiped at free */
    struct qpc_quic_endpoint_stats stats;
    uint8_t txbuf[QPC_QUIC_TXBUF_LEN];
};

/* ngtcp2's clock: monotonic nanoseconds. */
static inline ngtcp2_tstamp qpc_quic_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ngtcp2_tstamp)ts.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)ts.tv_nsec;
}

/* ---- quic.c: scheduling, connections, input ------------------------------------------ */

/* Puts c on the endpoint's dirty list: its packets are written, its timer re-armed and
 * a decided end carried out when the loop next turns. Marking twice is a no-op. */
void qpc_conn_mark_dirty(struct qpc_quic_conn *c);

/*
 * Decides the end of c; the next flush carries it out (CONNECTION_CLOSE if send_close,
 * then on_closed with err, by_peer, is_app, code and reason, then free). Only the first
 * decision counts. reason (may be NULL) is copied, at most QPC_QUIC_REASON_MAX bytes;
 * with send_close and is_app, code and reason go into the CONNECTION_CLOSE too.
 */
void qpc_conn_end(struct qpc_quic_conn *c, int err, bool send_close, bool by_peer, bool is_app,
                  uint64_t code, const char *reason);

/*
 * Starts a client connection on path (copied; its addresses too) offering alpn;
 * relayed selects the smaller packets of relay paths. The arguments and errors are
 * those of qpc_quic_connect.
 */
int qpc_conn_connect(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, bool relayed,
                     const char *alpn, const uint8_t *expected_key, void *user,
                     struct qpc_quic_conn **out);

/* Hands one received packet (data is only read during the call) to the connection its
 * destination id names, or to a new accepted connection; packets that fit neither are
 * dropped. relayed: it came through a relay path. */
void qpc_endpoint_input(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, bool relayed,
                        const uint8_t *data, size_t len);

/* ---- relay_path.c: relay paths ----------------------------------------------------- */

/* Sets up ep's relay state: no relays, ids from 1, relay_local. */
void qpc_relay_path_init(struct qpc_quic_endpoint *ep);

/* Gives one packet (read during the call only) to the send function of the relay that
 * the relay address to names; dropped if there is none or ep is being freed. */
void qpc_relay_path_send(struct qpc_quic_endpoint *ep, const struct sockaddr *to,
                         const uint8_t *pkt, size_t len);

/* Frees every relay of ep (at the end of qpc_quic_endpoint_free). */
void qpc_relay_path_free_all(struct qpc_quic_endpoint *ep);

/* ---- stream.c: streams ------------------------------------------------------------- */

/* The ngtcp2 callbacks for stream events, for the connection's callback table
 * (ngtcp2's recv_stream_data, stream_reset, acked_stream_data_offset, stream_open,
 * stream_close). user_data is the struct qpc_quic_conn. */
int qpc_stream_recv_data_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                            uint64_t offset, const uint8_t *data, size_t datalen,
                            void *user_data, void *stream_user_data);
int qpc_stream_reset_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t final_size,
                        uint64_t app_error_code, void *user_data, void *stream_user_data);
int qpc_stream_acked_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t offset, uint64_t datalen,
                        void *user_data, void *stream_user_data);
int qpc_stream_open_cb(ngtcp2_conn *qc, int64_t stream_id, void *user_data);
int qpc_stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                        uint64_t app_error_code, void *user_data, void *stream_user_data);

/* Frees every stream of c and what they hold (when c is freed). */
void qpc_stream_free_all(struct qpc_quic_conn *c);

/*
 * When the oldest frame c's peer began but has not finished must be complete (ngtcp2
 * time), or UINT64_MAX when no frame is half received. A frame gets the endpoint's
 * frame_timeout plus one second per QPC_QUIC_FRAME_MIN_RATE bytes it announced, so a
 * slow link can carry a large frame while a peer that sends a header and then a byte a
 * minute (keep-alive PINGs hold the idle timeout off) cannot pin the connection.
 */
uint64_t qpc_stream_frame_deadline(const struct qpc_quic_conn *c);

/*
 * Queues len raw bytes (no frame header) on stream_id, for tests that play a peer
 * that sends half a frame. 0, QPC_ERR_INVALID (no such stream, ended, len 0) or
 * QPC_ERR_NOMEM.
 */
int qpc_stream_queue_raw(struct qpc_quic_conn *c, int64_t stream_id, const uint8_t *data,
                         size_t len);

#define QPC_STREAM_OUT_VECS 16

/*
 * What conn_write offers ngtcp2_conn_writev_stream next: the unsent bytes of one stream
 * (in place: the vectors point into the stream's chunks, valid until the stream is
 * next changed) and its FIN if they are the last. s is NULL when no stream has
 * anything to send in this round; then id is -1 and nv 0, which asks ngtcp2 for
 * control frames only.
 */
struct qpc_stream_out {
    struct stream *s;
    int64_t id;
    ngtcp2_vec v[QPC_STREAM_OUT_VECS];
    size_t nv;
    size_t total;                        /* bytes in v */
    uint32_t flags;                      /* NGTCP2_WRITE_STREAM_FLAG_* */
    bool want_fin;
};

/* Fills o with the first ready stream of c not blocked in this round (c->round). */
void qpc_stream_next_out(struct qpc_quic_conn *c, struct qpc_stream_out *o);

/* ngtcp2 took written bytes of o (its ndatalen): they count as handed over, the FIN
 * too if all of o was taken. o->s must not be NULL. */
void qpc_stream_out_done(struct qpc_quic_conn *c, const struct qpc_stream_out *o,
                         size_t written);

/* ngtcp2 can take nothing of o's stream now (flow control, or the stream is shut):
 * skip it for the rest of this round. o->s must not be NULL. */
void qpc_stream_out_blocked(struct qpc_quic_conn *c, const struct qpc_stream_out *o);

/* Calls on_writable for each stream that was refused with QPC_ERR_AGAIN and has
 * drained below half its buffer (called by flush when c->writable_check is set). Stops
 * if a callback ends c. */
void qpc_stream_notify_writable(struct qpc_quic_conn *c);

#endif
