/*
 * quic.c: the QUIC endpoint: one UDP socket, many ngtcp2 connections, one libev loop.
 *
 * The one idea: ngtcp2 does no I/O and must not be re-entered from its own callbacks,
 * so this file is a small scheduler around it. Incoming packets are demultiplexed by
 * destination connection id (a hash of every id we issued) and fed to ngtcp2; anything
 * the application asks for (frames, datagrams, close) is only queued and the connection
 * marked dirty; a libev prepare watcher, run once per loop turn, writes the packets of
 * every dirty connection and re-arms its timer from ngtcp2's expiry. Failures found
 * deep inside a callback are recorded the same way and carried out there, so a
 * connection is only ever freed from the top of the loop.
 *
 * Where packets go is decided by the path's remote address: a relay path uses a
 * synthetic address from the discard prefix 100::/64 (RFC 6666) whose low 64 bits name
 * the relay; every other address is sent to over the UDP socket.
 *
 * Packets a connection writes in one turn go out in batches with UDP GSO (one sendmsg
 * for up to 40 packets to one address) and arrive coalesced with UDP GRO: on a busy
 * link the system calls, not the cryptography, are what costs.
 *
 * Stream data handed to ngtcp2 must stay put until it is acknowledged, so each stream
 * keeps a queue of chunks that is trimmed as ACKs arrive; the bytes not yet acknowledged
 * are what back-pressure (QPC_ERR_AGAIN / on_writable) is measured in.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sodium.h>
/* A server registers the connection id a client chose: keyed hash, and no exit() when
 * an insert cannot allocate. */
#define HASH_NONFATAL_OOM 1
#include "uthash_keyed.h"
#include <utlist.h>

#include "qpc/error.h"
#include "qpc/quic.h"
#include "qpc/tls.h"
#include "qpc/wire.h"

#define SCID_LEN 16                      /* length of every connection id we issue */
#define UDP_PAYLOAD_MAX 1452             /* largest packet over UDP */
#define RELAY_PAYLOAD_MAX 1200           /* relayed packets ride inside DATAGRAM frames */
#define TXBUF_LEN 2048                   /* CONNECTION_CLOSE and Version Negotiation */
#define GSO_MAX_SEGS 40                  /* packets per sendmsg (UDP GSO, <= 64 KiB) */
#define RX_BATCH 64                      /* datagrams read per wake-up */
#define TX_BURST 512                     /* packets written per connection per turn */
#define DGRAM_QUEUE_MAX 512
#define DGRAM_OVERHEAD 48                /* short header, DATAGRAM frame header, AEAD tag */
#define CHUNK_MIN 16384                  /* small frames are packed into chunks this big */
#define REASON_MAX 255
#define ALPN_MAX 64
#define HANDSHAKE_TIMEOUT_S 10
/* Incoming connections still in their handshake. Without address validation a spoofed
 * Initial costs the sender 1200 bytes and us a TLS session for HANDSHAKE_TIMEOUT_S, so
 * their number is capped; established connections are not. */
#define HANDSHAKING_MAX 1024
#define TLS_ALERT_NO_APPLICATION_PROTOCOL 120

struct cid_key {
    uint8_t len;
    uint8_t data[NGTCP2_MAX_CIDLEN];
};

struct cid_entry {
    struct cid_key key;
    struct qpc_quic_conn *conn;
    UT_hash_handle hh;                   /* in the endpoint's table */
    struct cid_entry *next;              /* in the connection's list */
};

struct chunk {
    struct chunk *next;
    size_t len, cap;
    uint8_t data[];
};

struct stream {
    int64_t id;
    UT_hash_handle hh;
    struct qpc_wire_decoder dec;
    struct chunk *head, *tail;           /* queued bytes, not yet acknowledged */
    uint64_t head_off;                   /* stream offset of head->data[0] */
    uint64_t acked, end;                 /* acknowledged up to / queued up to */
    struct chunk *cur;                   /* next byte not yet given to ngtcp2 */
    size_t cur_pos;
    bool want_writable;
    bool in_ready;
    bool fin_queued, fin_sent;           /* our direction ended (after the queue) */
    bool peer_ended;                     /* on_stream_end was reported */
    unsigned blocked_round;
    struct stream *rprev, *rnext;        /* the connection's list of streams to send */
};

struct dgram {
    struct dgram *prev, *next;
    size_t len;
    uint8_t data[];
};

struct qpc_quic_conn {
    ngtcp2_crypto_conn_ref ref;          /* GnuTLS session pointer, for ngtcp2_crypto */
    struct qpc_quic_endpoint *ep;
    ngtcp2_conn *qc;
    gnutls_session_t tls;
    bool is_server;
    bool handshake_done;
    bool in_read;
    bool key_mismatch;
    bool counted_handshaking;            /* counted in ep->n_handshaking */
    bool has_expected, has_peer_key;
    uint8_t expected[QPC_KEY_LEN], peer_key[QPC_KEY_LEN];
    char alpn[ALPN_MAX];
    struct sockaddr_storage remote;
    socklen_t remote_len;
    ev_timer timer;
    struct stream *streams, *ready;
    struct dgram *dq;
    size_t dq_count;
    unsigned round, dgram_round;
    bool writable_check;
    struct cid_entry *cids;
    /* The end, once decided: carried out by flush. */
    bool ending;
    bool send_close;                     /* write a CONNECTION_CLOSE first */
    ngtcp2_connection_close_error cc;
    uint8_t cc_reason[REASON_MAX + 1];
    struct qpc_quic_close_info info;
    char info_reason[REASON_MAX + 1];
    void *user;
    struct qpc_quic_conn *prev, *next;   /* endpoint's connections */
    struct qpc_quic_conn *dprev, *dnext; /* endpoint's dirty list */
    bool dirty;
};

struct qpc_quic_relay {
    struct qpc_quic_endpoint *ep;
    uint64_t id;
    qpc_quic_relay_send_fn send;
    void *user;
    struct sockaddr_in6 addr;
    struct qpc_quic_relay *prev, *next;
};

struct qpc_quic_endpoint {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_prepare prep;
    struct sockaddr_storage local;
    socklen_t local_len;
    struct sockaddr_in6 relay_local;
    bool accept;                         /* configured to accept (cfg->accept) */
    bool accepting;                      /* ... and accepting now (set_accepting) */
    char *alpns[QPC_QUIC_MAX_ALPNS];
    gnutls_datum_t alpn_d[QPC_QUIC_MAX_ALPNS];
    size_t nalpns;
    gnutls_certificate_credentials_t id_cred, fed_cred;
    size_t max_frame, stream_buffer;
    uint64_t idle_ms, keepalive_ms;
    struct qpc_quic_callbacks cb;
    void *user;
    struct cid_entry *cid_table;
    struct qpc_quic_conn *conns, *dirty;
    size_t nconns;
    size_t n_handshaking;                /* accepted, handshake not done */
    bool freeing;                        /* qpc_quic_endpoint_free is running */
    struct qpc_quic_relay *relays;
    uint64_t next_relay_id;
    uint8_t reset_secret[32];
    uint8_t txbuf[TXBUF_LEN];
    /* Packets of one connection to one address, sent with one sendmsg (UDP GSO):
     * all segments have the size of the first but the last, which may be shorter. */
    struct {
        uint8_t buf[GSO_MAX_SEGS * UDP_PAYLOAD_MAX];
        size_t len, seg, nseg;
        struct sockaddr_storage to;
        socklen_t tolen;
    } tx;
    bool no_gso;                         /* the kernel refused UDP_SEGMENT once */
};

static ngtcp2_tstamp now_ts(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ngtcp2_tstamp)ts.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)ts.tv_nsec;
}

/* ---- paths and relays ------------------------------------------------------- */

static void relay_addr_make(struct sockaddr_in6 *a, uint64_t id, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->sin6_family = AF_INET6;
    a->sin6_addr.s6_addr[0] = 0x01;
    for (int i = 0; i < 8; i++)
        a->sin6_addr.s6_addr[15 - i] = (uint8_t)(id >> (8 * i));
    a->sin6_port = htons(port);
}

static bool is_relay_addr(const struct sockaddr *sa)
{
    static const uint8_t prefix[8] = { 0x01, 0, 0, 0, 0, 0, 0, 0 };
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;

    return sa->sa_family == AF_INET6 && memcmp(a6->sin6_addr.s6_addr, prefix, 8) == 0;
}

static struct qpc_quic_relay *relay_find(struct qpc_quic_endpoint *ep, const struct sockaddr *sa)
{
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
    struct qpc_quic_relay *r;
    uint64_t id = 0;

    for (int i = 8; i < 16; i++)
        id = (id << 8) | a6->sin6_addr.s6_addr[i];
    DL_FOREACH(ep->relays, r)
        if (r->id == id)
            return r;
    return NULL;
}

static void send_packet(struct qpc_quic_endpoint *ep, const ngtcp2_path *path,
                        const uint8_t *pkt, size_t len)
{
    struct qpc_quic_relay *r;

    if (is_relay_addr((const struct sockaddr *)path->remote.addr)) {
        if (ep->freeing)
            return;   /* a relay's send may use a connection already freed */
        r = relay_find(ep, (const struct sockaddr *)path->remote.addr);
        if (r != NULL)
            r->send(r->user, pkt, len);   /* a refused packet is lost; QUIC recovers */
        return;
    }
    /* EAGAIN and friends drop the packet: loss recovery resends it. */
    (void)sendto(ep->fd, pkt, len, MSG_DONTWAIT, (const struct sockaddr *)path->remote.addr,
                 path->remote.addrlen);
}

static void tx_flush(struct qpc_quic_endpoint *ep)
{
    struct iovec iov = { ep->tx.buf, ep->tx.len };
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = { 0 };
    struct cmsghdr *cm;
    uint16_t seg = (uint16_t)ep->tx.seg;

    if (ep->tx.nseg == 0)
        return;
    if (ep->tx.nseg > 1 && !ep->no_gso) {
        mh.msg_name = &ep->tx.to;
        mh.msg_namelen = ep->tx.tolen;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = IPPROTO_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(seg));
        memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
        if (sendmsg(ep->fd, &mh, MSG_DONTWAIT) >= 0 || errno == EAGAIN || errno == ENOBUFS)
            goto done;
        ep->no_gso = true;   /* no GSO here: fall back to one packet per call */
    }
    for (size_t off = 0; off < ep->tx.len; off += ep->tx.seg) {
        size_t n = ep->tx.len - off < ep->tx.seg ? ep->tx.len - off : ep->tx.seg;

        (void)sendto(ep->fd, ep->tx.buf + off, n, MSG_DONTWAIT,
                     (const struct sockaddr *)&ep->tx.to, ep->tx.tolen);
    }
done:
    ep->tx.len = ep->tx.seg = ep->tx.nseg = 0;
}

/* Where the next packet is to be written: room for max bytes is guaranteed. */
static uint8_t *tx_slot(struct qpc_quic_endpoint *ep, size_t max)
{
    if (ep->tx.len + max > sizeof(ep->tx.buf))
        tx_flush(ep);
    return ep->tx.buf + ep->tx.len;
}

/* The packet of n bytes just written at tx_slot() is complete: batch or send it. */
static void tx_commit(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, size_t n)
{
    const struct sockaddr *to = (const struct sockaddr *)path->remote.addr;

    if (is_relay_addr(to)) {   /* relays take packets one by one */
        send_packet(ep, path, ep->tx.buf + ep->tx.len, n);
        return;
    }
    if (ep->tx.nseg > 0 && (n > ep->tx.seg || path->remote.addrlen != ep->tx.tolen ||
                            memcmp(to, &ep->tx.to, ep->tx.tolen) != 0)) {
        /* Does not fit the batch: send the batch, and start anew with this packet. */
        size_t off = ep->tx.len;

        tx_flush(ep);
        memmove(ep->tx.buf, ep->tx.buf + off, n);
    }
    if (ep->tx.nseg == 0) {
        memcpy(&ep->tx.to, to, path->remote.addrlen);
        ep->tx.tolen = path->remote.addrlen;
        ep->tx.seg = n;
    }
    ep->tx.len += n;
    ep->tx.nseg++;
    if (n < ep->tx.seg || ep->tx.nseg == GSO_MAX_SEGS)
        tx_flush(ep);
}

/* ---- connection ids ----------------------------------------------------------- */

static void cid_key_make(struct cid_key *k, const uint8_t *data, size_t len)
{
    memset(k, 0, sizeof(*k));
    k->len = (uint8_t)len;
    memcpy(k->data, data, len);
}

static struct qpc_quic_conn *cid_lookup(struct qpc_quic_endpoint *ep, const uint8_t *data,
                                        size_t len)
{
    struct cid_key k;
    struct cid_entry *e;

    if (len > NGTCP2_MAX_CIDLEN)
        return NULL;
    cid_key_make(&k, data, len);
    HASH_FIND(hh, ep->cid_table, &k, sizeof(k), e);
    return e ? e->conn : NULL;
}

static int cid_register(struct qpc_quic_conn *c, const uint8_t *data, size_t len)
{
    struct cid_entry *e;

    if (len > NGTCP2_MAX_CIDLEN)
        return QPC_ERR_INVALID;
    if (cid_lookup(c->ep, data, len) != NULL)
        return QPC_ERR_EXISTS;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return QPC_ERR_NOMEM;
    cid_key_make(&e->key, data, len);
    e->conn = c;
    HASH_ADD(hh, c->ep->cid_table, key, sizeof(e->key), e);
    if (e->hh.tbl == NULL) {
        free(e);
        return QPC_ERR_NOMEM;
    }
    LL_PREPEND(c->cids, e);
    return 0;
}

static void cid_unregister(struct qpc_quic_conn *c, const uint8_t *data, size_t len)
{
    struct cid_key k;
    struct cid_entry *e;

    cid_key_make(&k, data, len);
    HASH_FIND(hh, c->ep->cid_table, &k, sizeof(k), e);
    if (e == NULL || e->conn != c)
        return;
    HASH_DEL(c->ep->cid_table, e);
    LL_DELETE(c->cids, e);
    free(e);
}

/* ---- scheduling: dirty list, timers, ending ---------------------------------- */

static void mark_dirty(struct qpc_quic_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    DL_APPEND2(c->ep->dirty, c, dprev, dnext);
}

static void info_set(struct qpc_quic_conn *c, int err, bool by_peer, bool is_app, uint64_t code,
                     const uint8_t *reason, size_t reasonlen)
{
    if (reasonlen > REASON_MAX)
        reasonlen = REASON_MAX;
    /* The peer's reason goes into logs: no control bytes (a newline would forge log
     * lines), and no NUL cutting it short unnoticed. */
    for (size_t i = 0; i < reasonlen; i++)
        c->info_reason[i] = reason[i] < 0x20 || reason[i] == 0x7f ? '?' : (char)reason[i];
    c->info_reason[reasonlen] = '\0';
    c->info.err = err;
    c->info.by_peer = by_peer;
    c->info.is_app = is_app;
    c->info.code = code;
    c->info.reason = c->info_reason;
}

/* Decides the end of c: flush carries it out (close packet, on_closed, free). */
static void conn_end(struct qpc_quic_conn *c, int err, bool send_close, bool by_peer,
                     bool is_app, uint64_t code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;

    if (c->ending)
        return;
    c->ending = true;
    info_set(c, err, by_peer, is_app, code, (const uint8_t *)reason, rlen);
    c->send_close = send_close;
    if (send_close && is_app) {
        if (rlen > REASON_MAX)
            rlen = REASON_MAX;
        memcpy(c->cc_reason, reason ? reason : "", rlen);
        ngtcp2_connection_close_error_set_application_error(&c->cc, code, c->cc_reason, rlen);
    }
    mark_dirty(c);
}

static void stream_free(struct stream *s)
{
    struct chunk *ch, *tmp;

    LL_FOREACH_SAFE(s->head, ch, tmp)
        free(ch);
    qpc_wire_decoder_clear(&s->dec);
    free(s);
}

static void handshaking_done(struct qpc_quic_conn *c)
{
    if (c->counted_handshaking) {
        c->counted_handshaking = false;
        c->ep->n_handshaking--;
    }
}

static void conn_free(struct qpc_quic_conn *c)
{
    struct qpc_quic_endpoint *ep = c->ep;
    struct stream *s, *stmp;
    struct dgram *d, *dtmp;
    struct cid_entry *e, *etmp;

    handshaking_done(c);
    ev_timer_stop(ep->loop, &c->timer);
    LL_FOREACH_SAFE(c->cids, e, etmp) {
        HASH_DEL(ep->cid_table, e);
        free(e);
    }
    HASH_ITER(hh, c->streams, s, stmp) {
        HASH_DEL(c->streams, s);
        stream_free(s);
    }
    DL_FOREACH_SAFE(c->dq, d, dtmp)
        free(d);
    if (c->dirty)
        DL_DELETE2(ep->dirty, c, dprev, dnext);
    DL_DELETE(ep->conns, c);
    ep->nconns--;
    if (c->qc != NULL)
        ngtcp2_conn_del(c->qc);
    if (c->tls != NULL)
        gnutls_deinit(c->tls);
    free(c);
}

/* Carries out a decided end: called only from the top of the loop. */
static void conn_finish(struct qpc_quic_conn *c)
{
    struct qpc_quic_endpoint *ep = c->ep;
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n;

    if (c->send_close && c->qc != NULL && !ngtcp2_conn_is_in_closing_period(c->qc) &&
        !ngtcp2_conn_is_in_draining_period(c->qc)) {
        ngtcp2_path_storage_zero(&ps);
        memset(&pi, 0, sizeof(pi));
        n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, ep->txbuf,
                                               sizeof(ep->txbuf), &c->cc, now_ts());
        if (n > 0)
            send_packet(ep, &ps.path, ep->txbuf, (size_t)n);
    }
    if (ep->cb.on_closed != NULL)
        ep->cb.on_closed(c, &c->info, c->user);
    conn_free(c);
}

static void conn_update_timer(struct qpc_quic_conn *c)
{
    ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(c->qc), now = now_ts();
    double delay;

    ev_timer_stop(c->ep->loop, &c->timer);
    if (expiry == UINT64_MAX)
        return;
    delay = expiry > now ? (double)(expiry - now) / NGTCP2_SECONDS : 0.0;
    /* epoll sleeps in whole milliseconds; a pacing gap shorter than that is waited out
     * by turning the loop without sleeping (sockets are still polled meanwhile). */
    if (delay < 1e-3)
        delay = 0.0;
    ev_timer_set(&c->timer, delay, 0.0);
    ev_timer_start(c->ep->loop, &c->timer);
}

/* ---- streams ------------------------------------------------------------------ */

static struct stream *stream_get(struct qpc_quic_conn *c, int64_t id, bool create)
{
    struct stream *s;

    HASH_FIND(hh, c->streams, &id, sizeof(id), s);
    if (s != NULL || !create)
        return s;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->id = id;
    qpc_wire_decoder_init(&s->dec, c->ep->max_frame);
    HASH_ADD(hh, c->streams, id, sizeof(s->id), s);
    if (s->hh.tbl == NULL) {
        qpc_wire_decoder_clear(&s->dec);
        free(s);
        return NULL;
    }
    return s;
}

static void stream_ready(struct qpc_quic_conn *c, struct stream *s, bool ready)
{
    if (ready && !s->in_ready)
        DL_APPEND2(c->ready, s, rprev, rnext);
    else if (!ready && s->in_ready)
        DL_DELETE2(c->ready, s, rprev, rnext);
    s->in_ready = ready;
}

static void stream_remove(struct qpc_quic_conn *c, struct stream *s)
{
    stream_ready(c, s, false);
    HASH_DEL(c->streams, s);
    stream_free(s);
}

/* Fills v with the bytes not yet handed to ngtcp2; returns the count of entries. */
static size_t stream_unsent_vec(struct stream *s, ngtcp2_vec *v, size_t max)
{
    struct chunk *ch = s->cur;
    size_t n = 0, pos = s->cur_pos;

    for (; ch != NULL && n < max; ch = ch->next, pos = 0) {
        v[n].base = ch->data + pos;
        v[n].len = ch->len - pos;
        n++;
    }
    return n;
}

static void stream_advance(struct qpc_quic_conn *c, struct stream *s, size_t n)
{
    while (n > 0 && s->cur != NULL) {
        size_t take = s->cur->len - s->cur_pos;

        if (take > n)
            take = n;
        s->cur_pos += take;
        n -= take;
        if (s->cur_pos == s->cur->len) {
            s->cur = s->cur->next;
            s->cur_pos = 0;
        }
    }
    if (s->cur == NULL && (!s->fin_queued || s->fin_sent))
        stream_ready(c, s, false);
}

static void stream_acked(struct stream *s, uint64_t upto)
{
    if (upto > s->acked)
        s->acked = upto;
    while (s->head != NULL && s->head != s->cur && s->head_off + s->head->len <= s->acked) {
        struct chunk *ch = s->head;

        s->head_off += ch->len;
        s->head = ch->next;
        if (s->tail == ch)
            s->tail = NULL;
        free(ch);
    }
}

static int stream_queue(struct qpc_quic_conn *c, struct stream *s, const uint8_t *data,
                        size_t len)
{
    size_t need = QPC_WIRE_HEADER_LEN + len;
    struct chunk *ch = s->tail;

    /* Small frames are packed into the tail chunk: bytes already handed to ngtcp2
     * never move, so appending behind them is safe. */
    if (ch != NULL && ch->cap - ch->len >= need) {
        if (s->cur == NULL) {
            s->cur = ch;
            s->cur_pos = ch->len;
        }
    } else {
        size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;

        ch = malloc(sizeof(*ch) + cap);
        if (ch == NULL)
            return QPC_ERR_NOMEM;
        ch->next = NULL;
        ch->len = 0;
        ch->cap = cap;
        if (s->tail != NULL)
            s->tail->next = ch;
        else
            s->head = ch;
        s->tail = ch;
        if (s->head == ch)
            s->head_off = s->end;
        if (s->cur == NULL) {
            s->cur = ch;
            s->cur_pos = 0;
        }
    }
    qpc_wire_header_encode(ch->data + ch->len, (uint32_t)len);
    if (len > 0)
        memcpy(ch->data + ch->len + QPC_WIRE_HEADER_LEN, data, len);
    ch->len += need;
    s->end += need;
    stream_ready(c, s, true);
    return 0;
}

/* ---- ngtcp2 callbacks ----------------------------------------------------------- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    struct qpc_quic_conn *c = ref->user_data;

    return c->qc;
}

static void rand_cb(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx)
{
    randombytes_buf(dest, destlen);
}

static int get_new_cid_cb(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                          void *user_data)
{
    struct qpc_quic_conn *c = user_data;

    do {
        randombytes_buf(cid->data, cidlen);
        cid->datalen = cidlen;
    } while (cid_lookup(c->ep, cid->data, cidlen) != NULL);
    if (ngtcp2_crypto_generate_stateless_reset_token(token, c->ep->reset_secret,
                                                     sizeof(c->ep->reset_secret), cid) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    if (cid_register(c, cid->data, cidlen) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int remove_cid_cb(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *user_data)
{
    cid_unregister(user_data, cid->data, cid->datalen);
    return 0;
}

static int handshake_completed_cb(ngtcp2_conn *qc, void *user_data)
{
    struct qpc_quic_conn *c = user_data;
    struct qpc_quic_endpoint *ep = c->ep;
    gnutls_datum_t p = { NULL, 0 };

    c->handshake_done = true;
    handshaking_done(c);
    if (gnutls_alpn_get_selected_protocol(c->tls, &p) != 0 || p.size == 0 ||
        p.size >= ALPN_MAX) {
        conn_end(c, QPC_ERR_REFUSED, true, false, true, QPC_QUIC_APP_REFUSED,
                 "no application protocol");
        return 0;
    }
    memcpy(c->alpn, p.data, p.size);
    c->alpn[p.size] = '\0';
    if (strcmp(c->alpn, QPC_ALPN_FEDERATION) != 0 && !c->has_peer_key) {
        conn_end(c, QPC_ERR_TLS, true, false, true, QPC_QUIC_APP_REFUSED, "no peer key");
        return 0;
    }
    /* Reported here, inside ngtcp2, so that the application knows the peer before the
     * first frame of the same packet reaches on_frame. */
    if (ep->cb.on_connected != NULL &&
        ep->cb.on_connected(c, c->alpn, c->has_peer_key ? c->peer_key : NULL, c->user) != 0)
        conn_end(c, QPC_ERR_REFUSED, true, false, true, QPC_QUIC_APP_REFUSED,
                 "peer refused");
    return 0;
}

/* The peer will send nothing more on the stream (FIN or RESET_STREAM): tell once. */
static void stream_peer_ended(struct qpc_quic_conn *c, int64_t stream_id)
{
    struct stream *s = stream_get(c, stream_id, false);

    if (s == NULL || s->peer_ended)
        return;
    s->peer_ended = true;
    if (c->ep->cb.on_stream_end != NULL)
        c->ep->cb.on_stream_end(c, stream_id, c->user);
}

static int recv_stream_data_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                               uint64_t offset, const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data)
{
    struct qpc_quic_conn *c = user_data;
    struct qpc_quic_endpoint *ep = c->ep;
    struct stream *s;
    const uint8_t *frame;
    size_t used, flen, pos = 0;
    int rv;

    ngtcp2_conn_extend_max_stream_offset(qc, stream_id, datalen);
    ngtcp2_conn_extend_max_offset(qc, datalen);
    if (c->ending)
        return 0;
    s = stream_get(c, stream_id, true);
    if (s == NULL)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    while (pos < datalen && !c->ending) {
        rv = qpc_wire_decoder_feed(&s->dec, data + pos, datalen - pos, &used, &frame, &flen);
        if (rv < 0) {
            conn_end(c, rv, true, false, true, QPC_QUIC_APP_FRAME_TOO_LARGE,
                     rv == QPC_ERR_TOO_LARGE ? "frame too large" : "out of memory");
            break;
        }
        pos += used;
        if (rv == 1 && ep->cb.on_frame != NULL)
            ep->cb.on_frame(c, stream_id, frame, flen, c->user);
    }
    if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && !c->ending)
        stream_peer_ended(c, stream_id);
    return 0;
}

static int stream_reset_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t final_size,
                           uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    stream_peer_ended(user_data, stream_id);
    return 0;
}

static int acked_stream_data_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t offset,
                                uint64_t datalen, void *user_data, void *stream_user_data)
{
    struct qpc_quic_conn *c = user_data;
    struct stream *s = stream_get(c, stream_id, false);

    if (s != NULL) {
        stream_acked(s, offset + datalen);
        if (s->want_writable)
            c->writable_check = true;
    }
    return 0;
}

static int stream_open_cb(ngtcp2_conn *qc, int64_t stream_id, void *user_data)
{
    return stream_get(user_data, stream_id, true) ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static int stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    struct qpc_quic_conn *c = user_data;
    struct stream *s = stream_get(c, stream_id, false);

    if (s != NULL)
        stream_remove(c, s);
    if (!ngtcp2_is_bidi_stream(stream_id))
        return 0;
    if (!ngtcp2_conn_is_local_stream(qc, stream_id))
        ngtcp2_conn_extend_max_streams_bidi(qc, 1);   /* the peer may open another */
    return 0;
}

static int recv_datagram_cb(ngtcp2_conn *qc, uint32_t flags, const uint8_t *data,
                            size_t datalen, void *user_data)
{
    struct qpc_quic_conn *c = user_data;

    if (!c->ending && c->ep->cb.on_datagram != NULL)
        c->ep->cb.on_datagram(c, data, datalen, c->user);
    return 0;
}

/* ---- TLS ---------------------------------------------------------------------- */

static struct qpc_quic_conn *conn_of_session(gnutls_session_t s)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);

    return ref->user_data;
}

static bool is_federation(const char *alpn)
{
    return strcmp(alpn, QPC_ALPN_FEDERATION) == 0;
}

/* Server side: the ALPN decides which certificate we present. */
static int post_client_hello_cb(gnutls_session_t s)
{
    struct qpc_quic_conn *c = conn_of_session(s);
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t p = { NULL, 0 };

    if (gnutls_alpn_get_selected_protocol(s, &p) != 0 || p.size == 0 || p.size >= ALPN_MAX)
        return GNUTLS_E_NO_APPLICATION_PROTOCOL;
    memcpy(c->alpn, p.data, p.size);
    c->alpn[p.size] = '\0';
    cred = is_federation(c->alpn) ? c->ep->fed_cred : c->ep->id_cred;
    if (cred == NULL || gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0)
        return GNUTLS_E_NO_APPLICATION_PROTOCOL;
    return 0;
}

static int verify_peer_cb(gnutls_session_t s)
{
    struct qpc_quic_conn *c = conn_of_session(s);
    uint8_t key[QPC_KEY_LEN];

    if (is_federation(c->alpn))
        return qpc_tls_verify_peer_chain(s) == 0 ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
    if (qpc_tls_peer_key(s, key) != 0)
        return GNUTLS_E_CERTIFICATE_ERROR;
    if (c->has_expected && sodium_memcmp(key, c->expected, QPC_KEY_LEN) != 0) {
        c->key_mismatch = true;
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    memcpy(c->peer_key, key, QPC_KEY_LEN);
    c->has_peer_key = true;
    return 0;
}

static int tls_setup(struct qpc_quic_conn *c, const char *client_alpn)
{
    struct qpc_quic_endpoint *ep = c->ep;
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t alpn;
    int rv;

    if (gnutls_init(&c->tls, (c->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                                 GNUTLS_NO_END_OF_EARLY_DATA) < 0) {
        c->tls = NULL;
        return QPC_ERR_NOMEM;
    }
    rv = c->is_server ? ngtcp2_crypto_gnutls_configure_server_session(c->tls)
                      : ngtcp2_crypto_gnutls_configure_client_session(c->tls);
    if (rv != 0 || gnutls_priority_set_direct(c->tls, QPC_TLS_PRIORITY, NULL) < 0)
        return QPC_ERR_TLS;
    gnutls_session_set_ptr(c->tls, &c->ref);
    gnutls_session_set_verify_function(c->tls, verify_peer_cb);
    if (c->is_server) {
        /* Provisional credentials; post_client_hello_cb picks by ALPN. */
        cred = ep->id_cred ? ep->id_cred : ep->fed_cred;
        if (gnutls_alpn_set_protocols(c->tls, ep->alpn_d, (unsigned)ep->nalpns,
                                      GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE) < 0)
            return QPC_ERR_TLS;
        gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUIRE);
        gnutls_handshake_set_post_client_hello_function(c->tls, post_client_hello_cb);
    } else {
        cred = is_federation(client_alpn) ? ep->fed_cred : ep->id_cred;
        alpn.data = (unsigned char *)client_alpn;
        alpn.size = (unsigned)strlen(client_alpn);
        if (gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0)
            return QPC_ERR_TLS;
    }
    if (cred == NULL)
        return QPC_ERR_CONFIG;
    if (gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cred) < 0)
        return QPC_ERR_TLS;
    ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
    return 0;
}

/* ---- connection creation ------------------------------------------------------- */

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void settings_fill(struct qpc_quic_endpoint *ep, ngtcp2_settings *st,
                          ngtcp2_transport_params *tp, bool relayed)
{
    ngtcp2_settings_default(st);
    st->initial_ts = now_ts();
    st->max_tx_udp_payload_size = relayed ? RELAY_PAYLOAD_MAX : UDP_PAYLOAD_MAX;
    /* Packets are as big as configured from the start (no 1200-byte shaping, no path
     * MTU discovery): a relayed connection's 1200-byte packets must fit, with a relay
     * header, inside one DATAGRAM frame of the carrying connection. */
    st->no_pmtud = 1;
    st->no_tx_udp_payload_size_shaping = relayed ? 0 : 1;
    st->max_window = 64u * 1024 * 1024;
    st->max_stream_window = 16u * 1024 * 1024;
    st->handshake_timeout = HANDSHAKE_TIMEOUT_S * NGTCP2_SECONDS;
    ngtcp2_transport_params_default(tp);
    tp->initial_max_stream_data_bidi_local = 1024 * 1024;
    tp->initial_max_stream_data_bidi_remote = 1024 * 1024;
    tp->initial_max_stream_data_uni = 0;
    tp->initial_max_data = 4 * 1024 * 1024;
    tp->initial_max_streams_bidi = 100;
    tp->initial_max_streams_uni = 0;
    tp->max_idle_timeout = ep->idle_ms * NGTCP2_MILLISECONDS;
    tp->max_datagram_frame_size = 65535;
}

static const ngtcp2_callbacks client_callbacks = {
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = handshake_completed_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = recv_stream_data_cb,
    .acked_stream_data_offset = acked_stream_data_cb,
    .stream_open = stream_open_cb,
    .stream_close = stream_close_cb,
    .stream_reset = stream_reset_cb,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .rand = rand_cb,
    .get_new_connection_id = get_new_cid_cb,
    .remove_connection_id = remove_cid_cb,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .recv_datagram = recv_datagram_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static const ngtcp2_callbacks server_callbacks = {
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = handshake_completed_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = recv_stream_data_cb,
    .acked_stream_data_offset = acked_stream_data_cb,
    .stream_open = stream_open_cb,
    .stream_close = stream_close_cb,
    .stream_reset = stream_reset_cb,
    .rand = rand_cb,
    .get_new_connection_id = get_new_cid_cb,
    .remove_connection_id = remove_cid_cb,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .recv_datagram = recv_datagram_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static struct qpc_quic_conn *conn_alloc(struct qpc_quic_endpoint *ep, bool is_server,
                                        const ngtcp2_addr *remote, void *user)
{
    struct qpc_quic_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->ep = ep;
    c->is_server = is_server;
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    c->user = user;
    memcpy(&c->remote, remote->addr, remote->addrlen);
    c->remote_len = remote->addrlen;
    ngtcp2_connection_close_error_default(&c->cc);
    ev_init(&c->timer, timer_cb);
    c->timer.data = c;
    DL_APPEND(ep->conns, c);
    ep->nconns++;
    return c;
}

static void conn_start(struct qpc_quic_conn *c)
{
    if (c->ep->keepalive_ms > 0)
        ngtcp2_conn_set_keep_alive_timeout(c->qc, c->ep->keepalive_ms * NGTCP2_MILLISECONDS);
    mark_dirty(c);
}

static int conn_connect(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, bool relayed,
                        const char *alpn, const uint8_t *expected_key, void *user,
                        struct qpc_quic_conn **out)
{
    struct qpc_quic_conn *c = NULL;
    ngtcp2_settings st;
    ngtcp2_transport_params tp;
    ngtcp2_cid dcid, scid;
    int ret;

    if (ep->freeing)
        return QPC_ERR_CLOSED;
    if (alpn == NULL || strlen(alpn) == 0 || strlen(alpn) >= ALPN_MAX)
        return QPC_ERR_INVALID;
    if (is_federation(alpn) ? ep->fed_cred == NULL : ep->id_cred == NULL)
        return QPC_ERR_CONFIG;
    c = conn_alloc(ep, false, &path->remote, user);
    if (c == NULL)
        return QPC_ERR_NOMEM;
    snprintf(c->alpn, sizeof(c->alpn), "%s", alpn);
    if (expected_key != NULL && !is_federation(alpn)) {
        memcpy(c->expected, expected_key, QPC_KEY_LEN);
        c->has_expected = true;
    }
    dcid.datalen = 18;
    randombytes_buf(dcid.data, dcid.datalen);
    scid.datalen = SCID_LEN;
    do
        randombytes_buf(scid.data, scid.datalen);
    while (cid_lookup(ep, scid.data, scid.datalen) != NULL);
    settings_fill(ep, &st, &tp, relayed);
    if (ngtcp2_conn_client_new(&c->qc, &dcid, &scid, path, NGTCP2_PROTO_VER_V1,
                               &client_callbacks, &st, &tp, NULL, c) != 0) {
        c->qc = NULL;
        ret = QPC_ERR_QUIC;
        goto fail;
    }
    ret = cid_register(c, scid.data, scid.datalen);
    if (ret < 0)
        goto fail;
    ret = tls_setup(c, alpn);
    if (ret < 0)
        goto fail;
    conn_start(c);
    if (out != NULL)
        *out = c;
    return 0;
fail:
    conn_free(c);
    return ret;
}

/*
 * A server that stopped accepting (qpc_quic_endpoint_set_accepting) answers a new
 * client's Initial with CONNECTION_CLOSE(CONNECTION_REFUSED), so the client learns at
 * once instead of waiting out its handshake timeout. No state is kept, and only a
 * full-size Initial (clients pad theirs to 1200 bytes) gets the much smaller answer,
 * so a spoofed source gains no amplification.
 */
static void refuse_initial(struct qpc_quic_endpoint *ep, const ngtcp2_path *path,
                           const uint8_t *data, size_t len)
{
    uint8_t buf[256];
    ngtcp2_pkt_hd hd;
    ngtcp2_ssize n;

    if (len < NGTCP2_MAX_UDP_PAYLOAD_SIZE || ngtcp2_accept(&hd, data, len) != 0 ||
        hd.type != NGTCP2_PKT_INITIAL)
        return;
    /* The client's scid is our dcid; its dcid derives the Initial keys. */
    n = ngtcp2_crypto_write_connection_close(buf, sizeof(buf), hd.version, &hd.scid, &hd.dcid,
                                             NGTCP2_CONNECTION_REFUSED, NULL, 0);
    if (n > 0)
        send_packet(ep, path, buf, (size_t)n);
}

/* A first packet for an unknown connection id: maybe a new incoming connection. */
static struct qpc_quic_conn *conn_accept(struct qpc_quic_endpoint *ep, const ngtcp2_path *path,
                                         bool relayed, const uint8_t *data, size_t len)
{
    struct qpc_quic_conn *c;
    ngtcp2_pkt_hd hd;
    ngtcp2_settings st;
    ngtcp2_transport_params tp;
    ngtcp2_cid scid;

    if (ep->accept && !ep->accepting && !ep->freeing) {
        refuse_initial(ep, path, data, len);
        return NULL;
    }
    if (!ep->accepting || ep->freeing || ep->n_handshaking >= HANDSHAKING_MAX ||
        ngtcp2_accept(&hd, data, len) != 0)
        return NULL;
    c = conn_alloc(ep, true, &path->remote, ep->user);
    if (c == NULL)
        return NULL;
    scid.datalen = SCID_LEN;
    do
        randombytes_buf(scid.data, scid.datalen);
    while (cid_lookup(ep, scid.data, scid.datalen) != NULL);
    settings_fill(ep, &st, &tp, relayed);
    st.token = hd.token;
    tp.original_dcid = hd.dcid;
    if (ngtcp2_conn_server_new(&c->qc, &hd.scid, &scid, path, hd.version, &server_callbacks,
                               &st, &tp, NULL, c) != 0) {
        c->qc = NULL;
        goto fail;
    }
    /* The client keeps addressing its Initials to the id it chose until it hears ours. */
    if (cid_register(c, scid.data, scid.datalen) < 0 ||
        cid_register(c, hd.dcid.data, hd.dcid.datalen) < 0)
        goto fail;
    if (tls_setup(c, NULL) < 0)
        goto fail;
    c->counted_handshaking = true;
    ep->n_handshaking++;
    conn_start(c);
    return c;
fail:
    conn_free(c);
    return NULL;
}

/* ---- reading -------------------------------------------------------------------- */

static void conn_read_failed(struct qpc_quic_conn *c, int rv)
{
    ngtcp2_connection_close_error cc;
    uint8_t alert;
    int err;

    switch (rv) {
    case NGTCP2_ERR_DRAINING:   /* the peer closed */
        ngtcp2_conn_get_connection_close_error(c->qc, &cc);
        if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION)
            err = cc.error_code == QPC_QUIC_APP_REFUSED ? QPC_ERR_REFUSED : QPC_ERR_CLOSED;
        else if (cc.error_code == NGTCP2_NO_ERROR || cc.error_code == NGTCP2_APPLICATION_ERROR)
            err = QPC_ERR_CLOSED;   /* APPLICATION_ERROR: an application close sent before
                                     * the handshake was confirmed; its code is lost */
        else if (cc.error_code == NGTCP2_CRYPTO_ERROR + TLS_ALERT_NO_APPLICATION_PROTOCOL ||
                 cc.error_code == NGTCP2_CONNECTION_REFUSED)   /* not accepting now */
            err = QPC_ERR_REFUSED;
        else if ((cc.error_code & ~(uint64_t)0xff) == NGTCP2_CRYPTO_ERROR)
            err = QPC_ERR_TLS;
        else
            err = QPC_ERR_QUIC;
        conn_end(c, err, false, true,
                 cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION, cc.error_code,
                 NULL);
        info_set(c, err, true, c->info.is_app, cc.error_code, cc.reason, cc.reasonlen);
        return;
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_CLOSING:
        conn_end(c, QPC_ERR_QUIC, false, false, false, 0, "connection dropped");
        return;
    case NGTCP2_ERR_CRYPTO:
        alert = ngtcp2_conn_get_tls_alert(c->qc);
        err = (c->key_mismatch || alert == TLS_ALERT_NO_APPLICATION_PROTOCOL) ? QPC_ERR_REFUSED
                                                                              : QPC_ERR_TLS;
        conn_end(c, err, true, false, false, NGTCP2_CRYPTO_ERROR + alert,
                 c->key_mismatch ? "peer key mismatch" : "TLS handshake failed");
        ngtcp2_connection_close_error_set_transport_error_tls_alert(&c->cc, alert, NULL, 0);
        return;
    default:
        conn_end(c, QPC_ERR_QUIC, true, false, false, 0, ngtcp2_strerror(rv));
        ngtcp2_connection_close_error_set_transport_error_liberr(&c->cc, rv, NULL, 0);
        return;
    }
}

static void conn_read(struct qpc_quic_conn *c, const ngtcp2_path *path, const uint8_t *data,
                      size_t len)
{
    ngtcp2_pkt_info pi = { 0 };
    int rv;

    /* in_read: a relay must not feed a connection its own packets from inside it. */
    if (c->ending || c->in_read)
        return;
    c->in_read = true;
    rv = ngtcp2_conn_read_pkt(c->qc, path, &pi, data, len, now_ts());
    c->in_read = false;
    if (rv != 0)
        conn_read_failed(c, rv);
    mark_dirty(c);
}

static void send_version_negotiation(struct qpc_quic_endpoint *ep, const ngtcp2_path *path,
                                     const ngtcp2_version_cid *vc, size_t len)
{
    static const uint32_t versions[] = { NGTCP2_PROTO_VER_V1 };
    uint8_t buf[256], unused;
    ngtcp2_ssize n;

    /* Only answer what could be a real client's first flight: no amplification. */
    if (len < NGTCP2_MAX_UDP_PAYLOAD_SIZE)
        return;
    randombytes_buf(&unused, 1);
    n = ngtcp2_pkt_write_version_negotiation(buf, sizeof(buf), unused, vc->scid, vc->scidlen,
                                             vc->dcid, vc->dcidlen, versions, 1);
    if (n > 0)
        send_packet(ep, path, buf, (size_t)n);
}

static void endpoint_input(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, bool relayed,
                           const uint8_t *data, size_t len)
{
    ngtcp2_version_cid vc;
    struct qpc_quic_conn *c;
    int rv;

    rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, SCID_LEN);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
        send_version_negotiation(ep, path, &vc, len);
        return;
    }
    if (rv != 0)
        return;
    c = cid_lookup(ep, vc.dcid, vc.dcidlen);
    if (c == NULL) {
        if (vc.version == 0)
            return;   /* short header for nobody we know; no stateless reset sent */
        c = conn_accept(ep, path, relayed, data, len);
        if (c == NULL)
            return;
    }
    conn_read(c, path, data, len);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct qpc_quic_endpoint *ep = w->data;
    static uint8_t buf[65536];   /* one loop, no threads: one receive buffer */
    struct sockaddr_storage from;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr mh;
    struct cmsghdr *cm;
    ngtcp2_path path;
    ssize_t n;
    size_t seg;

    for (int i = 0; i < RX_BATCH; i++) {
        memset(&mh, 0, sizeof(mh));
        mh.msg_name = &from;
        mh.msg_namelen = sizeof(from);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(ep->fd, &mh, MSG_DONTWAIT);
        if (n < 0)
            break;
        if (n == 0 || is_relay_addr((struct sockaddr *)&from))
            continue;
        /* With UDP_GRO the kernel may hand us several packets of one size at once. */
        seg = (size_t)n;
        for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
            int gso;

            if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO) {
                memcpy(&gso, CMSG_DATA(cm), sizeof(gso));
                if (gso > 0)
                    seg = (size_t)gso;
            }
        }
        path.local.addr = (ngtcp2_sockaddr *)&ep->local;
        path.local.addrlen = ep->local_len;
        path.remote.addr = (ngtcp2_sockaddr *)&from;
        path.remote.addrlen = mh.msg_namelen;
        path.user_data = NULL;
        for (size_t off = 0; off < (size_t)n; off += seg) {
            size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;

            endpoint_input(ep, &path, false, buf + off, len);
        }
    }
}

/* ---- writing ------------------------------------------------------------------- */

static struct stream *next_ready(struct qpc_quic_conn *c)
{
    struct stream *s;

    DL_FOREACH2(c->ready, s, rnext)
        if (s->blocked_round != c->round)
            return s;
    return NULL;
}

static void dgram_pop(struct qpc_quic_conn *c)
{
    struct dgram *d = c->dq;

    DL_DELETE(c->dq, d);
    c->dq_count--;
    free(d);
}

/* Writes every packet ngtcp2 has for c (up to TX_BURST). */
static void conn_write(struct qpc_quic_conn *c)
{
    struct qpc_quic_endpoint *ep = c->ep;
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    ngtcp2_tstamp ts = now_ts();
    size_t max = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->qc);
    int npkts = 0;

    if (max > UDP_PAYLOAD_MAX)
        max = UDP_PAYLOAD_MAX;
    c->round++;
    ngtcp2_path_storage_zero(&ps);
    while (npkts < TX_BURST) {
        ngtcp2_vec v[16];
        ngtcp2_ssize n, ndatalen = -1;
        struct stream *s = NULL;
        size_t nv = 0;
        int64_t sid = -1;
        uint32_t flags = 0;
        bool want_fin = false;
        size_t total = 0;

        memset(&pi, 0, sizeof(pi));
        if (c->dq != NULL && c->dq->len + DGRAM_OVERHEAD > max) {
            dgram_pop(c);   /* can never fit this path */
            continue;
        }
        if (c->dq != NULL && c->dgram_round != c->round && c->handshake_done) {
            int accepted = 0;
            ngtcp2_vec dv = { c->dq->data, c->dq->len };

            n = ngtcp2_conn_writev_datagram(c->qc, &ps.path, &pi, tx_slot(ep, max), max, &accepted,
                                            NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &dv, 1, ts);
            if (accepted)
                dgram_pop(c);
            if (n == NGTCP2_ERR_WRITE_MORE)
                continue;
            if (n == NGTCP2_ERR_INVALID_STATE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
                dgram_pop(c);   /* the peer takes no datagrams, or not this big */
                continue;
            }
            if (n < 0)
                goto fatal;
            if (n == 0) {
                c->dgram_round = c->round;
                continue;
            }
            tx_commit(ep, &ps.path, (size_t)n);
            npkts++;
            continue;
        }
        s = next_ready(c);
        if (s != NULL) {
            sid = s->id;
            nv = stream_unsent_vec(s, v, 16);
            flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
            /* FIN rides with the last queued bytes, or alone. */
            want_fin = s->fin_queued && !s->fin_sent && (nv < 16 || s->cur == NULL);
            if (want_fin)
                flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
            total = 0;
            for (size_t i = 0; i < nv; i++)
                total += v[i].len;
        }
        n = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, tx_slot(ep, max), max, &ndatalen, flags,
                                      sid, v, nv, ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_WRITE_MORE) {
                if (want_fin && (size_t)ndatalen == total)
                    s->fin_sent = true;
                stream_advance(c, s, (size_t)ndatalen);
                continue;
            }
            if (s != NULL && (n == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
                              n == NGTCP2_ERR_STREAM_SHUT_WR ||
                              n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
                s->blocked_round = c->round;
                continue;
            }
            goto fatal;
        }
        if (s != NULL && want_fin && ndatalen >= 0 && (size_t)ndatalen == total)
            s->fin_sent = true;
        if (s != NULL && ndatalen >= 0)
            stream_advance(c, s, (size_t)ndatalen);
        if (n == 0)
            break;
        tx_commit(ep, &ps.path, (size_t)n);
        npkts++;
    }
    tx_flush(ep);
    /* No pacing before the first RTT sample is in: paced at the initial RTT (333 ms), the
     * last flight of a handshake waits some 20 ms for nothing on a short path, and that
     * is most of the time a one-shot send takes. */
    if (c->handshake_done)
        ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
    if (npkts >= TX_BURST)
        mark_dirty(c);   /* more to send: let the loop read in between */
    return;
fatal:
    tx_flush(ep);
    conn_end(c, QPC_ERR_QUIC, true, false, false, 0, "write failed");
}

static void conn_notify_writable(struct qpc_quic_conn *c)
{
    struct stream *s, *tmp;

    c->writable_check = false;
    HASH_ITER(hh, c->streams, s, tmp) {
        if (c->ending)
            return;
        if (s->want_writable && s->end - s->acked < c->ep->stream_buffer / 2) {
            s->want_writable = false;
            if (c->ep->cb.on_writable != NULL)
                c->ep->cb.on_writable(c, s->id, c->user);
        }
    }
}

static void conn_flush(struct qpc_quic_conn *c)
{
    if (c->writable_check && !c->ending)
        conn_notify_writable(c);
    if (!c->ending)
        conn_write(c);
    if (c->ending) {
        conn_finish(c);
        return;
    }
    conn_update_timer(c);
}

static void flush_dirty(struct qpc_quic_endpoint *ep)
{
    struct qpc_quic_conn *list = ep->dirty, *c;

    /* Detach the list: flushing may mark connections dirty again for the next turn. */
    ep->dirty = NULL;
    while (list != NULL) {
        c = list;
        DL_DELETE2(list, c, dprev, dnext);
        c->dirty = false;
        conn_flush(c);
    }
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct qpc_quic_endpoint *ep = w->data;

    flush_dirty(ep);
    /* Connections still dirty (a full burst) must not wait for the next packet. */
    for (struct qpc_quic_conn *c = ep->dirty; c != NULL; c = c->dnext) {
        ev_timer_stop(loop, &c->timer);
        ev_timer_set(&c->timer, 0.0, 0.0);
        ev_timer_start(loop, &c->timer);
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct qpc_quic_conn *c = w->data;
    int rv;

    if (!c->ending) {
        rv = ngtcp2_conn_handle_expiry(c->qc, now_ts());
        if (rv == NGTCP2_ERR_IDLE_CLOSE || rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT)
            conn_end(c, QPC_ERR_TIMEOUT, false, false, false, 0,
                     rv == NGTCP2_ERR_IDLE_CLOSE ? "idle timeout" : "handshake timeout");
        else if (rv != 0)
            conn_end(c, QPC_ERR_QUIC, false, false, false, 0, ngtcp2_strerror(rv));
    }
    if (c->dirty)
        DL_DELETE2(c->ep->dirty, c, dprev, dnext);
    c->dirty = false;
    conn_flush(c);
}

/* ---- endpoint -------------------------------------------------------------------- */

static int socket_open(struct qpc_quic_endpoint *ep, const char *addr, uint16_t port)
{
    struct sockaddr_in6 a6 = { 0 };
    struct sockaddr_in a4 = { 0 };
    int fd, off = 0, on = 1, bufsz = 4 * 1024 * 1024;
    const struct sockaddr *sa;
    socklen_t salen;

    if (addr == NULL)
        addr = "::";
    if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons(port);
        sa = (const struct sockaddr *)&a6;
        salen = sizeof(a6);
    } else if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons(port);
        sa = (const struct sockaddr *)&a4;
        salen = sizeof(a4);
    } else {
        return QPC_ERR_INVALID;
    }
    fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return QPC_ERR_IO;
    if (sa->sa_family == AF_INET6)   /* one socket for IPv4 and IPv6 peers */
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    (void)setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on));   /* optional speed-up */
    ep->local_len = sizeof(ep->local);
    if (bind(fd, sa, salen) != 0 ||
        getsockname(fd, (struct sockaddr *)&ep->local, &ep->local_len) != 0) {
        close(fd);
        return QPC_ERR_IO;
    }
    ep->fd = fd;
    return 0;
}

static int endpoint_alpns(struct qpc_quic_endpoint *ep, const struct qpc_quic_config *cfg)
{
    for (size_t i = 0; i < QPC_QUIC_MAX_ALPNS && cfg->alpns[i] != NULL; i++) {
        size_t len = strlen(cfg->alpns[i]);

        if (len == 0 || len >= ALPN_MAX)
            return QPC_ERR_INVALID;
        if (is_federation(cfg->alpns[i]) ? ep->fed_cred == NULL : ep->id_cred == NULL)
            return QPC_ERR_CONFIG;
        ep->alpns[i] = strdup(cfg->alpns[i]);
        if (ep->alpns[i] == NULL)
            return QPC_ERR_NOMEM;
        ep->alpn_d[i].data = (unsigned char *)ep->alpns[i];
        ep->alpn_d[i].size = (unsigned)len;
        ep->nalpns++;
    }
    if (ep->accept && ep->nalpns == 0)
        return QPC_ERR_INVALID;
    return 0;
}

int qpc_quic_endpoint_new(struct qpc_quic_endpoint **out, struct ev_loop *loop,
                          const struct qpc_quic_config *cfg)
{
    struct qpc_quic_endpoint *ep;
    bool any_fed = cfg->fed_cert_der || cfg->fed_key_der || cfg->fed_ca_der;
    int ret;

    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return QPC_ERR_NOMEM;
    ep->fd = -1;
    ep->loop = loop;
    ep->accept = cfg->accept;
    ep->accepting = cfg->accept;
    ep->cb = cfg->cb;
    ep->user = cfg->user;
    ep->max_frame = cfg->max_frame ? cfg->max_frame : QPC_WIRE_FRAME_MAX_DEFAULT;
    ep->stream_buffer = cfg->stream_buffer ? cfg->stream_buffer : QPC_QUIC_STREAM_BUFFER_DEFAULT;
    ep->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : QPC_QUIC_IDLE_TIMEOUT_MS_DEFAULT;
    ep->keepalive_ms = cfg->keepalive_ms;
    ep->next_relay_id = 1;
    relay_addr_make(&ep->relay_local, 0, 2);
    randombytes_buf(ep->reset_secret, sizeof(ep->reset_secret));
    if (ep->max_frame > QPC_WIRE_FRAME_MAX_LIMIT) {
        ret = QPC_ERR_INVALID;
        goto fail;
    }
    if (cfg->identity_sk != NULL) {
        ret = qpc_tls_identity_cred_new(&ep->id_cred, cfg->identity_sk);
        if (ret < 0)
            goto fail;
    }
    if (any_fed) {
        ret = qpc_tls_federation_cred_new(&ep->fed_cred, cfg->fed_cert_der, cfg->fed_key_der,
                                          cfg->fed_ca_der);
        if (ret < 0)
            goto fail;
    }
    ret = endpoint_alpns(ep, cfg);
    if (ret < 0)
        goto fail;
    ret = socket_open(ep, cfg->bind_addr, cfg->port);
    if (ret < 0)
        goto fail;
    ev_io_init(&ep->io, io_cb, ep->fd, EV_READ);
    ep->io.data = ep;
    ev_io_start(loop, &ep->io);
    ev_prepare_init(&ep->prep, prepare_cb);
    ep->prep.data = ep;
    ev_prepare_start(loop, &ep->prep);
    ev_unref(loop);   /* the prepare watcher alone must not keep the loop running */
    *out = ep;
    return 0;
fail:
    qpc_quic_endpoint_free(ep);
    return ret;
}

void qpc_quic_endpoint_free(struct qpc_quic_endpoint *ep)
{
    struct qpc_quic_relay *r, *rtmp;

    if (ep == NULL)
        return;
    /* The on_closed calls below may call back in: they may still free a relay (so
     * relays are freed last), but may not start anything new. The goodbyes of relayed
     * connections are not sent: a relay's send may use a connection freed here. */
    ep->freeing = true;
    while (ep->conns != NULL) {
        struct qpc_quic_conn *c = ep->conns;

        conn_end(c, QPC_ERR_CLOSED, c->qc != NULL, false, true, QPC_QUIC_APP_SHUTDOWN,
                 "endpoint shutting down");
        conn_finish(c);
    }
    DL_FOREACH_SAFE(ep->relays, r, rtmp) {
        DL_DELETE(ep->relays, r);
        free(r);
    }
    if (ep->fd >= 0) {
        ev_io_stop(ep->loop, &ep->io);
        ev_ref(ep->loop);
        ev_prepare_stop(ep->loop, &ep->prep);
        close(ep->fd);
    }
    for (size_t i = 0; i < ep->nalpns; i++)
        free(ep->alpns[i]);
    if (ep->id_cred != NULL)
        gnutls_certificate_free_credentials(ep->id_cred);
    if (ep->fed_cred != NULL)
        gnutls_certificate_free_credentials(ep->fed_cred);
    sodium_memzero(ep->reset_secret, sizeof(ep->reset_secret));
    free(ep);
}

int qpc_quic_endpoint_local_addr(struct qpc_quic_endpoint *ep, struct sockaddr_storage *ss,
                                 socklen_t *len)
{
    memcpy(ss, &ep->local, ep->local_len);
    *len = ep->local_len;
    return 0;
}

int qpc_quic_endpoint_set_accepting(struct qpc_quic_endpoint *ep, bool accepting)
{
    if (ep == NULL || (accepting && !ep->accept))
        return QPC_ERR_INVALID;
    ep->accepting = accepting;
    return 0;
}

size_t qpc_quic_endpoint_conn_count(const struct qpc_quic_endpoint *ep)
{
    return ep->nconns;
}

/* addr as the endpoint's socket must be given it: an IPv4 address becomes v4-mapped on
 * a dual-stack socket. QPC_ERR_INVALID for a relay address or another family. */
static int remote_for(const struct qpc_quic_endpoint *ep, const struct sockaddr *addr, socklen_t addrlen,
                      struct sockaddr_storage *remote, socklen_t *remote_len)
{
    if (addr == NULL || addrlen > sizeof(*remote) || is_relay_addr(addr))
        return QPC_ERR_INVALID;
    memset(remote, 0, sizeof(*remote));
    if (addr->sa_family == AF_INET && ep->local.ss_family == AF_INET6) {
        /* A dual-stack socket speaks to IPv4 peers through mapped addresses. */
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
        struct sockaddr_in6 *m = (struct sockaddr_in6 *)remote;

        m->sin6_family = AF_INET6;
        m->sin6_port = a4->sin_port;
        m->sin6_addr.s6_addr[10] = 0xff;
        m->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&m->sin6_addr.s6_addr[12], &a4->sin_addr, 4);
        *remote_len = sizeof(*m);
        return 0;
    }
    if (addr->sa_family != ep->local.ss_family)
        return QPC_ERR_INVALID;
    memcpy(remote, addr, addrlen);
    *remote_len = addrlen;
    return 0;
}

int qpc_quic_endpoint_send_probe(struct qpc_quic_endpoint *ep, const struct sockaddr *addr,
                                 socklen_t addrlen, int ttl)
{
    static const uint8_t probe[QPC_QUIC_PROBE_LEN] = "qpc-probe";
    struct sockaddr_storage to;
    socklen_t tolen;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { (void *)probe, sizeof(probe) };
    struct msghdr mh = { 0 };
    struct cmsghdr *cm;
    const struct sockaddr_in6 *t6 = (const struct sockaddr_in6 *)&to;

    if (ttl < 1 || ttl > 255 || remote_for(ep, addr, addrlen, &to, &tolen) < 0)
        return QPC_ERR_INVALID;
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_name = &to;
    mh.msg_namelen = tolen;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    cm = CMSG_FIRSTHDR(&mh);
    /* An IPv4 destination, also v4-mapped on a dual-stack socket, takes the IPv4 TTL;
     * Linux hands a mapped send to the IPv4 path, which reads IP_TTL. */
    if (to.ss_family == AF_INET || IN6_IS_ADDR_V4MAPPED(&t6->sin6_addr)) {
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_TTL;
    } else {
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_HOPLIMIT;
    }
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &ttl, sizeof(int));
    return sendmsg(ep->fd, &mh, MSG_DONTWAIT) == (ssize_t)sizeof(probe) ? 0 : QPC_ERR_IO;
}

int qpc_quic_connect(struct qpc_quic_endpoint *ep, const struct sockaddr *addr,
                     socklen_t addrlen, const char *alpn, const uint8_t *expected_key,
                     void *user, struct qpc_quic_conn **out)
{
    struct sockaddr_storage remote;
    ngtcp2_path path;
    int rc = remote_for(ep, addr, addrlen, &remote, &addrlen);

    if (rc < 0)
        return rc;
    path.local.addr = (ngtcp2_sockaddr *)&ep->local;
    path.local.addrlen = ep->local_len;
    path.remote.addr = (ngtcp2_sockaddr *)&remote;
    path.remote.addrlen = addrlen;
    path.user_data = NULL;
    return conn_connect(ep, &path, false, alpn, expected_key, user, out);
}

int qpc_quic_connect_relayed(struct qpc_quic_endpoint *ep, struct qpc_quic_relay *relay,
                             const char *alpn, const uint8_t *expected_key, void *user,
                             struct qpc_quic_conn **out)
{
    ngtcp2_path path;

    if (relay == NULL || relay->ep != ep)
        return QPC_ERR_INVALID;
    path.local.addr = (ngtcp2_sockaddr *)&ep->relay_local;
    path.local.addrlen = sizeof(ep->relay_local);
    path.remote.addr = (ngtcp2_sockaddr *)&relay->addr;
    path.remote.addrlen = sizeof(relay->addr);
    path.user_data = NULL;
    return conn_connect(ep, &path, true, alpn, expected_key, user, out);
}

int qpc_quic_relay_new(struct qpc_quic_endpoint *ep, qpc_quic_relay_send_fn send, void *user,
                       struct qpc_quic_relay **out)
{
    struct qpc_quic_relay *r;

    if (send == NULL)
        return QPC_ERR_INVALID;
    if (ep->freeing)
        return QPC_ERR_CLOSED;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return QPC_ERR_NOMEM;
    r->ep = ep;
    r->id = ep->next_relay_id++;
    r->send = send;
    r->user = user;
    relay_addr_make(&r->addr, r->id, 1);
    DL_APPEND(ep->relays, r);
    *out = r;
    return 0;
}

void qpc_quic_relay_free(struct qpc_quic_relay *relay)
{
    struct qpc_quic_endpoint *ep;
    struct qpc_quic_conn *c;

    if (relay == NULL)
        return;
    ep = relay->ep;
    DL_FOREACH(ep->conns, c) {
        const ngtcp2_path *p = c->qc ? ngtcp2_conn_get_path(c->qc) : NULL;

        if (p != NULL && is_relay_addr((const struct sockaddr *)p->remote.addr) &&
            relay_find(ep, (const struct sockaddr *)p->remote.addr) == relay)
            conn_end(c, QPC_ERR_CLOSED, false, false, false, 0, "relay gone");
    }
    DL_DELETE(ep->relays, relay);
    free(relay);
}

int qpc_quic_endpoint_input_relayed(struct qpc_quic_endpoint *ep, struct qpc_quic_relay *relay,
                                    const uint8_t *data, size_t len)
{
    ngtcp2_path path;
    struct sockaddr_in6 remote;

    if (relay == NULL || relay->ep != ep || data == NULL)
        return QPC_ERR_INVALID;
    if (ep->freeing)
        return 0;
    /* A copy: a callback run by this very packet may free the relay. */
    remote = relay->addr;
    path.local.addr = (ngtcp2_sockaddr *)&ep->relay_local;
    path.local.addrlen = sizeof(ep->relay_local);
    path.remote.addr = (ngtcp2_sockaddr *)&remote;
    path.remote.addrlen = sizeof(remote);
    path.user_data = NULL;
    endpoint_input(ep, &path, true, data, len);
    return 0;
}

/* ---- connection API ----------------------------------------------------------------- */

int qpc_quic_conn_open_stream(struct qpc_quic_conn *c, int64_t *stream_id)
{
    int64_t id;
    int rv;

    if (c->ending)
        return QPC_ERR_CLOSED;
    if (!c->handshake_done)
        return QPC_ERR_AGAIN;
    rv = ngtcp2_conn_open_bidi_stream(c->qc, &id, NULL);
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
        return QPC_ERR_AGAIN;
    if (rv != 0)
        return QPC_ERR_NOMEM;
    if (stream_get(c, id, true) == NULL) {
        ngtcp2_conn_shutdown_stream(c->qc, id, 0);
        return QPC_ERR_NOMEM;
    }
    *stream_id = id;
    return 0;
}

int qpc_quic_conn_send_frame(struct qpc_quic_conn *c, int64_t stream_id, const uint8_t *data,
                             size_t len)
{
    struct stream *s;
    int ret;

    if (c->ending)
        return QPC_ERR_CLOSED;
    if (len > c->ep->max_frame)
        return QPC_ERR_TOO_LARGE;
    s = stream_get(c, stream_id, false);
    if (s == NULL)
        return QPC_ERR_NOT_FOUND;
    if (s->fin_queued)
        return QPC_ERR_CLOSED;
    if (s->end - s->acked >= c->ep->stream_buffer) {
        s->want_writable = true;
        return QPC_ERR_AGAIN;
    }
    ret = stream_queue(c, s, data, len);
    if (ret == 0)
        mark_dirty(c);
    return ret;
}

int qpc_quic_conn_end_stream(struct qpc_quic_conn *c, int64_t stream_id)
{
    struct stream *s;

    if (c->ending)
        return QPC_ERR_CLOSED;
    s = stream_get(c, stream_id, false);
    if (s == NULL)
        return QPC_ERR_NOT_FOUND;
    if (!s->fin_queued) {
        s->fin_queued = true;
        stream_ready(c, s, true);
        mark_dirty(c);
    }
    return 0;
}

int qpc_quic_conn_send_datagram(struct qpc_quic_conn *c, const uint8_t *data, size_t len)
{
    struct dgram *d;

    if (c->ending)
        return QPC_ERR_CLOSED;
    if (len > QPC_QUIC_DATAGRAM_MAX)
        return QPC_ERR_TOO_LARGE;
    if (!c->handshake_done || c->dq_count >= DGRAM_QUEUE_MAX)
        return QPC_ERR_AGAIN;
    d = malloc(sizeof(*d) + len);
    if (d == NULL)
        return QPC_ERR_NOMEM;
    d->len = len;
    memcpy(d->data, data, len);
    DL_APPEND(c->dq, d);
    c->dq_count++;
    mark_dirty(c);
    return 0;
}

int qpc_quic_conn_close(struct qpc_quic_conn *c, uint64_t app_code, const char *reason)
{
    conn_end(c, app_code == QPC_QUIC_APP_REFUSED ? QPC_ERR_REFUSED : QPC_ERR_CLOSED, true,
             false, true, app_code, reason ? reason : "");
    return 0;
}

const char *qpc_quic_conn_alpn(const struct qpc_quic_conn *c)
{
    return c->handshake_done ? c->alpn : "";
}

const uint8_t *qpc_quic_conn_peer_key(const struct qpc_quic_conn *c)
{
    return c->handshake_done && c->has_peer_key ? c->peer_key : NULL;
}

const struct sockaddr *qpc_quic_conn_remote_addr(const struct qpc_quic_conn *c,
                                                 socklen_t *len)
{
    *len = c->remote_len;
    return (const struct sockaddr *)&c->remote;
}

bool qpc_quic_conn_is_server(const struct qpc_quic_conn *c)
{
    return c->is_server;
}

void qpc_quic_conn_set_user(struct qpc_quic_conn *c, void *user)
{
    c->user = user;
}

void *qpc_quic_conn_get_user(const struct qpc_quic_conn *c)
{
    return c->user;
}

struct qpc_quic_endpoint *qpc_quic_conn_endpoint(const struct qpc_quic_conn *c)
{
    return c->ep;
}
