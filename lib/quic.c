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
 * Where packets go is decided by the path's remote address: a relay path's synthetic
 * address (qpc_quic_addr_is_relay) sends through relay_path.c, every other address
 * over the UDP socket.
 *
 * The UDP socket itself, with its GSO send batch and GRO receive, is udp.c: a
 * connection's packets of one turn are written straight into that batch.
 *
 * Streams (their chunk queues, frames and back-pressure) are stream.c; conn_write here
 * asks it what to send next. Each connection's TLS session, with the hooks that choose
 * the certificate and check the peer, is tls.c's. What the files share is in
 * quic_internal.h.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <sodium.h>
/* A server registers the connection id a client chose: keyed hash, and no exit() when
 * an insert cannot allocate. */
#define HASH_NONFATAL_OOM 1
#include "qpc/uthash_keyed.h"
#include <utlist.h>

#include "qpc/error.h"
#include "qpc/quic.h"
#include "qpc/tls.h"
#include "qpc/wire.h"
#include "quic_initial.h"
#include "quic_internal.h"
#include "udp.h"

#define SCID_LEN 16                      /* length of every connection id we issue */
#define RELAY_PAYLOAD_MAX 1200           /* relayed packets ride inside DATAGRAM frames */
#define TX_BURST 512                     /* packets written per connection per turn */
#define DGRAM_QUEUE_MAX 512
#define DGRAM_OVERHEAD 48                /* short header, DATAGRAM frame header, AEAD tag */
#define HANDSHAKE_TIMEOUT_S 10
/* Incoming connections still in their handshake. Without address validation a spoofed
 * Initial costs the sender 1200 bytes and us a TLS session for HANDSHAKE_TIMEOUT_S, so
 * their number is capped; established connections are not. */
#define HANDSHAKING_MAX 1024
#define TLS_ALERT_NO_APPLICATION_PROTOCOL 120

_Static_assert(QPC_TLS_ALPNS_MAX >= QPC_QUIC_MAX_ALPNS, "tls.h holds every ALPN of quic.h");
_Static_assert(QPC_TLS_ALPN_MAX >= sizeof(QPC_ALPN_FEDERATION), "ALPNs fit tls.h's buffers");

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

struct dgram {
    struct dgram *prev, *next;
    size_t len;
    uint8_t data[];
};

/* ---- where packets go ------------------------------------------------------- */

static void send_packet(struct qpc_quic_endpoint *ep, const ngtcp2_path *path,
                        const uint8_t *pkt, size_t len)
{
    if (qpc_quic_addr_is_relay((const struct sockaddr *)path->remote.addr)) {
        qpc_relay_path_send(ep, (const struct sockaddr *)path->remote.addr, pkt, len);
        return;
    }
    qpc_udp_send(&ep->udp, (const struct sockaddr *)path->remote.addr, path->remote.addrlen,
                 pkt, len);
}

/* The packet of n bytes just written at slot (from qpc_udp_tx_slot) is complete. */
static void packet_commit(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, uint8_t *slot,
                          size_t n)
{
    if (qpc_quic_addr_is_relay((const struct sockaddr *)path->remote.addr)) {
        /* relays take packets one by one */
        qpc_relay_path_send(ep, (const struct sockaddr *)path->remote.addr, slot, n);
        return;
    }
    qpc_udp_tx_commit(&ep->udp, (const struct sockaddr *)path->remote.addr,
                      path->remote.addrlen, n);
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

void qpc_conn_mark_dirty(struct qpc_quic_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    DL_APPEND2(c->ep->dirty, c, dprev, dnext);
}

static void info_set(struct qpc_quic_conn *c, int err, bool by_peer, bool is_app, uint64_t code,
                     const uint8_t *reason, size_t reasonlen)
{
    if (reasonlen > QPC_QUIC_REASON_MAX)
        reasonlen = QPC_QUIC_REASON_MAX;
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
void qpc_conn_end(struct qpc_quic_conn *c, int err, bool send_close, bool by_peer,
                  bool is_app, uint64_t code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;

    if (c->ending)
        return;
    c->ending = true;
    info_set(c, err, by_peer, is_app, code, (const uint8_t *)reason, rlen);
    c->send_close = send_close;
    if (send_close && is_app) {
        if (rlen > QPC_QUIC_REASON_MAX)
            rlen = QPC_QUIC_REASON_MAX;
        memcpy(c->cc_reason, reason ? reason : "", rlen);
        ngtcp2_connection_close_error_set_application_error(&c->cc, code, c->cc_reason, rlen);
    }
    qpc_conn_mark_dirty(c);
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
    struct dgram *d, *dtmp;
    struct cid_entry *e, *etmp;

    handshaking_done(c);
    ev_timer_stop(ep->loop, &c->timer);
    LL_FOREACH_SAFE(c->cids, e, etmp) {
        HASH_DEL(ep->cid_table, e);
        free(e);
    }
    qpc_stream_free_all(c);
    DL_FOREACH_SAFE(c->dq, d, dtmp)
        free(d);
    if (c->dirty)
        DL_DELETE2(ep->dirty, c, dprev, dnext);
    DL_DELETE(ep->conns, c);
    ep->nconns--;
    if (c->qc != NULL)
        ngtcp2_conn_del(c->qc);
    qpc_tls_session_clear(&c->tls);
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
                                               sizeof(ep->txbuf), &c->cc, qpc_quic_now());
        if (n > 0)
            send_packet(ep, &ps.path, ep->txbuf, (size_t)n);
    }
    if (ep->cb.on_closed != NULL)
        ep->cb.on_closed(c, &c->info, c->user);
    conn_free(c);
}

static void conn_update_timer(struct qpc_quic_conn *c)
{
    ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(c->qc), now = qpc_quic_now();
    uint64_t frame_due = qpc_stream_frame_deadline(c);
    double delay;

    if (frame_due < expiry)
        expiry = frame_due;
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
    int rv;

    c->handshake_done = true;
    handshaking_done(c);
    rv = qpc_tls_session_handshake_done(&c->tls);
    if (rv < 0) {
        qpc_conn_end(c, rv, true, false, true, QPC_QUIC_APP_REFUSED,
                     rv == QPC_ERR_REFUSED ? "no application protocol" : "no peer key");
        return 0;
    }
    /* Reported here, inside ngtcp2, so that the application knows the peer before the
     * first frame of the same packet reaches on_frame. */
    if (ep->cb.on_connected != NULL &&
        ep->cb.on_connected(c, c->tls.alpn, c->tls.has_peer_key ? c->tls.peer_key : NULL,
                            c->user) != 0)
        qpc_conn_end(c, QPC_ERR_REFUSED, true, false, true, QPC_QUIC_APP_REFUSED,
                     "peer refused");
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

/* Sets up c's TLS session (tls.c) and hands it to ngtcp2. */
static int conn_tls_setup(struct qpc_quic_conn *c, const char *alpn,
                          const uint8_t *expected_key)
{
    int rv = qpc_tls_session_init(&c->tls, &c->ep->tls, c->is_server, alpn, expected_key,
                                  get_conn, c);

    if (rv == 0)
        ngtcp2_conn_set_tls_native_handle(c->qc, c->tls.session);
    return rv;
}

/* ---- connection creation ------------------------------------------------------- */

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void settings_fill(struct qpc_quic_endpoint *ep, ngtcp2_settings *st,
                          ngtcp2_transport_params *tp, bool relayed)
{
    ngtcp2_settings_default(st);
    st->initial_ts = qpc_quic_now();
    st->max_tx_udp_payload_size = relayed ? RELAY_PAYLOAD_MAX : QPC_UDP_PAYLOAD_MAX;
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

/* Every connection's callbacks, both roles; callbacks_for() adds what only one needs. */
static const ngtcp2_callbacks shared_callbacks = {
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = handshake_completed_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = qpc_stream_recv_data_cb,
    .acked_stream_data_offset = qpc_stream_acked_cb,
    .stream_open = qpc_stream_open_cb,
    .stream_close = qpc_stream_close_cb,
    .stream_reset = qpc_stream_reset_cb,
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

/* The table for one role (ngtcp2_conn_*_new copies it). A client sends the first
 * Initial and may be sent a Retry; a server receives the first Initial. */
static void callbacks_for(ngtcp2_callbacks *cb, bool is_server)
{
    *cb = shared_callbacks;
    if (is_server) {
        cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
        cb->client_initial = ngtcp2_crypto_client_initial_cb;
        cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
}

static struct qpc_quic_conn *conn_alloc(struct qpc_quic_endpoint *ep, bool is_server,
                                        const ngtcp2_addr *remote, void *user)
{
    struct qpc_quic_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->ep = ep;
    c->is_server = is_server;
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
    qpc_conn_mark_dirty(c);
}

int qpc_conn_connect(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, bool relayed,
                     const char *alpn, const uint8_t *expected_key, void *user,
                     struct qpc_quic_conn **out)
{
    struct qpc_quic_conn *c = NULL;
    ngtcp2_settings st;
    ngtcp2_transport_params tp;
    ngtcp2_callbacks cb;
    ngtcp2_cid dcid, scid;
    int ret;

    if (ep->freeing)
        return QPC_ERR_CLOSED;
    if (alpn == NULL || strlen(alpn) == 0 || strlen(alpn) >= QPC_TLS_ALPN_MAX)
        return QPC_ERR_INVALID;
    if (qpc_tls_endpoint_cred(&ep->tls, alpn) == NULL)
        return QPC_ERR_CONFIG;
    c = conn_alloc(ep, false, &path->remote, user);
    if (c == NULL)
        return QPC_ERR_NOMEM;
    dcid.datalen = 18;
    randombytes_buf(dcid.data, dcid.datalen);
    scid.datalen = SCID_LEN;
    do
        randombytes_buf(scid.data, scid.datalen);
    while (cid_lookup(ep, scid.data, scid.datalen) != NULL);
    settings_fill(ep, &st, &tp, relayed);
    callbacks_for(&cb, false);
    if (ngtcp2_conn_client_new(&c->qc, &dcid, &scid, path, NGTCP2_PROTO_VER_V1,
                               &cb, &st, &tp, NULL, c) != 0) {
        c->qc = NULL;
        ret = QPC_ERR_QUIC;
        goto fail;
    }
    ret = cid_register(c, scid.data, scid.datalen);
    if (ret < 0)
        goto fail;
    ret = conn_tls_setup(c, alpn, expected_key);
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

/*
 * Answers the Initial of hd (len bytes) with a Retry: a new connection id of ours and a
 * token sealed over the client's address and its original dcid. Nothing is kept: the
 * client's next Initial carries all we need. Only a full-size Initial is answered, and
 * the Retry is smaller, so a spoofed source gains no amplification.
 */
static void send_retry(struct qpc_quic_endpoint *ep, const ngtcp2_path *path,
                       const ngtcp2_pkt_hd *hd, size_t len)
{
    uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
    uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
    ngtcp2_ssize tokenlen, n;
    ngtcp2_cid retry_scid;

    if (hd->type != NGTCP2_PKT_INITIAL || len < NGTCP2_MAX_UDP_PAYLOAD_SIZE)
        return;
    retry_scid.datalen = SCID_LEN;
    randombytes_buf(retry_scid.data, retry_scid.datalen);
    tokenlen = ngtcp2_crypto_generate_retry_token(token, ep->retry_secret,
                                                  sizeof(ep->retry_secret), hd->version,
                                                  path->remote.addr, path->remote.addrlen,
                                                  &retry_scid, &hd->dcid, qpc_quic_now());
    if (tokenlen < 0)
        return;
    /* To the client's scid, from our new id; the original dcid keys the integrity tag. */
    n = ngtcp2_crypto_write_retry(buf, sizeof(buf), hd->version, &hd->scid, &retry_scid,
                                  &hd->dcid, token, (size_t)tokenlen);
    if (n <= 0)
        return;
    send_packet(ep, path, buf, (size_t)n);
    ep->stats.retries_sent++;
}

int qpc_quic_endpoint_dial_family(const struct qpc_quic_endpoint *ep)
{
    return ep != NULL && ep->udp.local.ss_family == AF_INET ? AF_INET : AF_UNSPEC;
}

void qpc_quic_endpoint_get_stats(const struct qpc_quic_endpoint *ep,
                                 struct qpc_quic_endpoint_stats *out)
{
    if (ep == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = ep->stats;
}

/*
 * A client that took our Retry has given up the connection id it first chose (odcid):
 * its handshake goes on under the id the Retry gave it. An Initial of its first flight
 * that was sent again before the Retry reached it, and came in when we were below the
 * Retry threshold, has made a second, server-side connection for odcid that no packet
 * will ever continue: ended here, before its handshake timeout, so that it does not
 * hold a handshake slot (the threshold counts them) all that time. Only a connection
 * still in its handshake, from the very address the token was sealed for, is ended.
 */
static void retry_end_superseded(struct qpc_quic_endpoint *ep, const ngtcp2_cid *odcid,
                                 const ngtcp2_path *path)
{
    struct qpc_quic_conn *old = cid_lookup(ep, odcid->data, odcid->datalen);

    if (old == NULL || !old->is_server || old->handshake_done || old->ending ||
        old->remote_len != path->remote.addrlen ||
        memcmp(&old->remote, path->remote.addr, path->remote.addrlen) != 0)
        return;
    cid_unregister(old, odcid->data, odcid->datalen);
    ep->stats.retry_superseded++;
    qpc_conn_end(old, QPC_ERR_CLOSED, false, false, false, 0, "superseded by its retried handshake");
}

/* A first packet for an unknown connection id: maybe a new incoming connection. */
static struct qpc_quic_conn *conn_accept(struct qpc_quic_endpoint *ep, const ngtcp2_path *path,
                                         bool relayed, const uint8_t *data, size_t len)
{
    struct qpc_quic_conn *c;
    ngtcp2_pkt_hd hd;
    ngtcp2_settings st;
    ngtcp2_transport_params tp;
    ngtcp2_callbacks cb;
    ngtcp2_cid scid, odcid;
    bool retried;

    if (ep->accept && !ep->accepting && !ep->freeing) {
        refuse_initial(ep, path, data, len);
        return NULL;
    }
    if (!ep->accepting || ep->freeing || ngtcp2_accept(&hd, data, len) != 0)
        return NULL;
    if (ep->n_handshaking >= HANDSHAKING_MAX) {
        ep->stats.handshakes_refused++;
        return NULL;
    }
    /* Opened here first, so that a forged Initial (random bytes in an Initial's shape,
     * from ever new addresses) costs a key derivation, not a connection with its TLS
     * session: that is what a flood of them would otherwise buy (quic_initial.c). A
     * Retry is only sent for an Initial that opens, so none is reflected for junk. */
    if (!qpc_quic_initial_opens(data, len)) {
        ep->stats.initials_unopened++;
        return NULL;
    }
    retried = hd.type == NGTCP2_PKT_INITIAL && hd.token.len > 0 &&
              hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY;
    if (retried) {
        /* A token we sealed for this address and connection id, not too old: the client
         * has shown it receives at its address. Anything else is dropped (RFC 9000 8.1.3
         * allows that; a real client's old token only costs it its handshake timeout). */
        if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len,
                                             ep->retry_secret, sizeof(ep->retry_secret),
                                             hd.version, path->remote.addr,
                                             path->remote.addrlen, &hd.dcid,
                                             QPC_QUIC_RETRY_TOKEN_TIMEOUT_MS * NGTCP2_MILLISECONDS,
                                             qpc_quic_now()) != 0) {
            ep->stats.tokens_refused++;
            return NULL;
        }
        retry_end_superseded(ep, &odcid, path);
    } else if (ep->n_handshaking >= ep->retry_threshold) {
        send_retry(ep, path, &hd, len);
        return NULL;
    }
    c = conn_alloc(ep, true, &path->remote, ep->user);
    if (c == NULL)
        return NULL;
    scid.datalen = SCID_LEN;
    do
        randombytes_buf(scid.data, scid.datalen);
    while (cid_lookup(ep, scid.data, scid.datalen) != NULL);
    settings_fill(ep, &st, &tp, relayed);
    st.token = hd.token;
    if (retried) {
        tp.original_dcid = odcid;
        tp.retry_scid = hd.dcid;   /* the id our Retry chose, which the client now uses */
        tp.retry_scid_present = 1;
        ep->stats.retried_accepted++;
    } else {
        tp.original_dcid = hd.dcid;
    }
    callbacks_for(&cb, true);
    if (ngtcp2_conn_server_new(&c->qc, &hd.scid, &scid, path, hd.version, &cb,
                               &st, &tp, NULL, c) != 0) {
        c->qc = NULL;
        goto fail;
    }
    /* The client keeps addressing its Initials to the id it chose until it hears ours. */
    if (cid_register(c, scid.data, scid.datalen) < 0 ||
        cid_register(c, hd.dcid.data, hd.dcid.datalen) < 0)
        goto fail;
    /* And after a Retry, an Initial it sent before under its first id may still come:
     * it finds this connection (which cannot read it and drops it), not an empty slot
     * where it would open a second one. */
    if (retried && cid_lookup(ep, odcid.data, odcid.datalen) == NULL &&
        cid_register(c, odcid.data, odcid.datalen) < 0)
        goto fail;
    if (conn_tls_setup(c, NULL, NULL) < 0)
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
        qpc_conn_end(c, err, false, true,
                     cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION,
                     cc.error_code, NULL);
        info_set(c, err, true, c->info.is_app, cc.error_code, cc.reason, cc.reasonlen);
        return;
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_CLOSING:
        qpc_conn_end(c, QPC_ERR_QUIC, false, false, false, 0, "connection dropped");
        return;
    case NGTCP2_ERR_CRYPTO:
        alert = ngtcp2_conn_get_tls_alert(c->qc);
        err = c->tls.key_mismatch || c->tls.name_mismatch ||
                      alert == TLS_ALERT_NO_APPLICATION_PROTOCOL
                  ? QPC_ERR_REFUSED
                  : QPC_ERR_TLS;
        qpc_conn_end(c, err, true, false, false, NGTCP2_CRYPTO_ERROR + alert,
                     c->tls.key_mismatch    ? "peer key mismatch"
                     : c->tls.name_mismatch ? "certificate is not for that domain"
                                            : "TLS handshake failed");
        ngtcp2_connection_close_error_set_transport_error_tls_alert(&c->cc, alert, NULL, 0);
        return;
    default:
        qpc_conn_end(c, QPC_ERR_QUIC, true, false, false, 0, ngtcp2_strerror(rv));
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
    rv = ngtcp2_conn_read_pkt(c->qc, path, &pi, data, len, qpc_quic_now());
    c->in_read = false;
    if (rv != 0)
        conn_read_failed(c, rv);
    else
        c->heard = true;
    qpc_conn_mark_dirty(c);
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

void qpc_endpoint_input(struct qpc_quic_endpoint *ep, const ngtcp2_path *path, bool relayed,
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

/* One packet from the UDP socket (qpc_udp_recv_fn). */
static void udp_recv(void *user, const struct sockaddr *from, socklen_t fromlen,
                     const uint8_t *data, size_t len)
{
    struct qpc_quic_endpoint *ep = user;
    ngtcp2_path path;

    if (qpc_quic_addr_is_relay(from))
        return;   /* a relay's address arriving from the network is forged */
    path.local.addr = (ngtcp2_sockaddr *)&ep->udp.local;
    path.local.addrlen = ep->udp.local_len;
    path.remote.addr = (ngtcp2_sockaddr *)from;
    path.remote.addrlen = fromlen;
    path.user_data = NULL;
    qpc_endpoint_input(ep, &path, false, data, len);
}

/* ---- writing ------------------------------------------------------------------- */

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
    ngtcp2_tstamp ts = qpc_quic_now();
    size_t max = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->qc);
    int npkts = 0;

    if (max > QPC_UDP_PAYLOAD_MAX)
        max = QPC_UDP_PAYLOAD_MAX;
    c->round++;
    ngtcp2_path_storage_zero(&ps);
    while (npkts < TX_BURST) {
        struct qpc_stream_out o;
        ngtcp2_ssize n, ndatalen = -1;
        uint8_t *slot;

        memset(&pi, 0, sizeof(pi));
        if (c->dq != NULL && c->dq->len + DGRAM_OVERHEAD > max) {
            dgram_pop(c);   /* can never fit this path */
            continue;
        }
        if (c->dq != NULL && c->dgram_round != c->round && c->handshake_done) {
            int accepted = 0;
            ngtcp2_vec dv = { c->dq->data, c->dq->len };

            slot = qpc_udp_tx_slot(&ep->udp, max);
            n = ngtcp2_conn_writev_datagram(c->qc, &ps.path, &pi, slot, max, &accepted,
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
            packet_commit(ep, &ps.path, slot, (size_t)n);
            npkts++;
            continue;
        }
        /* Stream data, or (no stream ready) control frames and ACKs alone. */
        qpc_stream_next_out(c, &o);
        slot = qpc_udp_tx_slot(&ep->udp, max);
        n = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, slot, max, &ndatalen, o.flags, o.id,
                                      o.v, o.nv, ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_WRITE_MORE) {
                qpc_stream_out_done(c, &o, (size_t)ndatalen);
                continue;
            }
            if (o.s != NULL && (n == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
                                n == NGTCP2_ERR_STREAM_SHUT_WR ||
                                n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
                qpc_stream_out_blocked(c, &o);
                continue;
            }
            goto fatal;
        }
        if (o.s != NULL && ndatalen >= 0)
            qpc_stream_out_done(c, &o, (size_t)ndatalen);
        if (n == 0)
            break;
        packet_commit(ep, &ps.path, slot, (size_t)n);
        npkts++;
    }
    qpc_udp_tx_flush(&ep->udp);
    /* No pacing before the handshake is done: paced at the initial RTT (333 ms), the
     * last flight of a handshake waits some 20 ms for nothing on a short path, and that
     * is a good part of what a one-shot send takes. */
    if (c->handshake_done)
        ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
    if (npkts >= TX_BURST)
        qpc_conn_mark_dirty(c);   /* more to send: let the loop read in between */
    return;
fatal:
    qpc_udp_tx_flush(&ep->udp);
    qpc_conn_end(c, QPC_ERR_QUIC, true, false, false, 0, "write failed");
}

static void conn_flush(struct qpc_quic_conn *c)
{
    if (c->writable_check && !c->ending)
        qpc_stream_notify_writable(c);
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

    if (!c->ending && qpc_stream_frame_deadline(c) <= qpc_quic_now()) {
        qpc_conn_end(c, QPC_ERR_TIMEOUT, true, false, true, QPC_QUIC_APP_FRAME_TIMEOUT,
                     "frame not completed in time");
    } else if (!c->ending) {
        rv = ngtcp2_conn_handle_expiry(c->qc, qpc_quic_now());
        if (rv == NGTCP2_ERR_IDLE_CLOSE || rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT)
            qpc_conn_end(c, QPC_ERR_TIMEOUT, false, false, false, 0,
                         rv == NGTCP2_ERR_IDLE_CLOSE ? "idle timeout" : "handshake timeout");
        else if (rv != 0)
            qpc_conn_end(c, QPC_ERR_QUIC, false, false, false, 0, ngtcp2_strerror(rv));
    }
    if (c->dirty)
        DL_DELETE2(c->ep->dirty, c, dprev, dnext);
    c->dirty = false;
    conn_flush(c);
}

/* ---- endpoint -------------------------------------------------------------------- */

int qpc_quic_endpoint_new(struct qpc_quic_endpoint **out, struct ev_loop *loop,
                          const struct qpc_quic_config *cfg)
{
    struct qpc_quic_endpoint *ep;
    int ret;

    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return QPC_ERR_NOMEM;
    ep->udp.fd = -1;
    ep->loop = loop;
    ep->accept = cfg->accept;
    ep->accepting = cfg->accept;
    ep->cb = cfg->cb;
    ep->user = cfg->user;
    ep->max_frame = cfg->max_frame ? cfg->max_frame : QPC_WIRE_FRAME_MAX_DEFAULT;
    ep->stream_buffer = cfg->stream_buffer ? cfg->stream_buffer : QPC_QUIC_STREAM_BUFFER_DEFAULT;
    ep->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : QPC_QUIC_IDLE_TIMEOUT_MS_DEFAULT;
    ep->frame_timeout = (cfg->frame_timeout_ms ? cfg->frame_timeout_ms
                                               : QPC_QUIC_FRAME_TIMEOUT_MS_DEFAULT) *
                        NGTCP2_MILLISECONDS;
    ep->keepalive_ms = cfg->keepalive_ms;
    qpc_relay_path_init(ep);
    randombytes_buf(ep->reset_secret, sizeof(ep->reset_secret));
    randombytes_buf(ep->retry_secret, sizeof(ep->retry_secret));
    ep->retry_threshold = cfg->retry_threshold == QPC_QUIC_RETRY_ALWAYS ? 0
                          : cfg->retry_threshold > 0 ? (size_t)cfg->retry_threshold
                                                     : QPC_QUIC_RETRY_THRESHOLD_DEFAULT;
    if (ep->max_frame > QPC_WIRE_FRAME_MAX_LIMIT) {
        ret = QPC_ERR_INVALID;
        goto fail;
    }
    ret = qpc_tls_endpoint_init(&ep->tls, cfg->identity_sk, cfg->fed_cert_der, cfg->fed_key_der,
                                cfg->fed_ca_der, cfg->fed_by_key, cfg->alpns, QPC_QUIC_MAX_ALPNS);
    if (ret < 0)
        goto fail;
    if (ep->accept && ep->tls.nalpns == 0) {
        ret = QPC_ERR_INVALID;
        goto fail;
    }
    ret = qpc_udp_open(&ep->udp, loop, cfg->bind_addr, cfg->port, udp_recv, ep);
    if (ret < 0)
        goto fail;
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
    if (ep == NULL)
        return;
    /* The on_closed calls below may call back in: they may still free a relay (so
     * relays are freed last), but may not start anything new. The goodbyes of relayed
     * connections are not sent: a relay's send may use a connection freed here. */
    ep->freeing = true;
    while (ep->conns != NULL) {
        struct qpc_quic_conn *c = ep->conns;

        qpc_conn_end(c, QPC_ERR_CLOSED, c->qc != NULL, false, true, QPC_QUIC_APP_SHUTDOWN,
                     "endpoint shutting down");
        conn_finish(c);
    }
    qpc_relay_path_free_all(ep);
    if (ev_is_active(&ep->prep)) {
        ev_ref(ep->loop);
        ev_prepare_stop(ep->loop, &ep->prep);
    }
    qpc_udp_close(&ep->udp);
    qpc_tls_endpoint_clear(&ep->tls);
    sodium_memzero(ep->reset_secret, sizeof(ep->reset_secret));
    sodium_memzero(ep->retry_secret, sizeof(ep->retry_secret));
    free(ep);
}

int qpc_quic_endpoint_local_addr(struct qpc_quic_endpoint *ep, struct sockaddr_storage *ss,
                                 socklen_t *len)
{
    memcpy(ss, &ep->udp.local, ep->udp.local_len);
    *len = ep->udp.local_len;
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
    if (addr == NULL || addrlen > sizeof(*remote) || qpc_quic_addr_is_relay(addr))
        return QPC_ERR_INVALID;
    memset(remote, 0, sizeof(*remote));
    if (addr->sa_family == AF_INET && ep->udp.local.ss_family == AF_INET6) {
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
    if (addr->sa_family != ep->udp.local.ss_family)
        return QPC_ERR_INVALID;
    memcpy(remote, addr, addrlen);
    *remote_len = addrlen;
    return 0;
}

int qpc_quic_endpoint_send_probe(struct qpc_quic_endpoint *ep, const struct sockaddr *addr,
                                 socklen_t addrlen, int ttl)
{
    /* 'q' is a short header whose 16-byte connection id does not fit in 10 bytes:
     * ngtcp2_pkt_decode_version_cid refuses it, so every endpoint drops it silently. */
    static const uint8_t probe[QPC_QUIC_PROBE_LEN] = "qpc-probe";
    struct sockaddr_storage to;
    socklen_t tolen;

    if (remote_for(ep, addr, addrlen, &to, &tolen) < 0)
        return QPC_ERR_INVALID;
    return qpc_udp_send_ttl(&ep->udp, (const struct sockaddr *)&to, tolen, probe, sizeof(probe), ttl);
}

bool qpc_quic_endpoint_hears(const struct qpc_quic_endpoint *ep, const struct sockaddr *addr,
                             socklen_t addrlen)
{
    struct sockaddr_storage want;
    socklen_t wantlen;
    const struct qpc_quic_conn *c;

    if (remote_for(ep, addr, addrlen, &want, &wantlen) < 0)
        return false;
    DL_FOREACH(ep->conns, c) {
        if (!c->handshake_done && !c->ending && c->heard && c->remote_len == wantlen &&
            memcmp(&c->remote, &want, wantlen) == 0)
            return true;
    }
    return false;
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
    path.local.addr = (ngtcp2_sockaddr *)&ep->udp.local;
    path.local.addrlen = ep->udp.local_len;
    path.remote.addr = (ngtcp2_sockaddr *)&remote;
    path.remote.addrlen = addrlen;
    path.user_data = NULL;
    return qpc_conn_connect(ep, &path, false, alpn, expected_key, user, out);
}

/* ---- connection API ----------------------------------------------------------------- */

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
    qpc_conn_mark_dirty(c);
    return 0;
}

int qpc_quic_conn_close(struct qpc_quic_conn *c, uint64_t app_code, const char *reason)
{
    qpc_conn_end(c, app_code == QPC_QUIC_APP_REFUSED ? QPC_ERR_REFUSED : QPC_ERR_CLOSED,
                 true, false, true, app_code, reason ? reason : "");
    return 0;
}

const char *qpc_quic_conn_alpn(const struct qpc_quic_conn *c)
{
    return c->handshake_done ? c->tls.alpn : "";
}

int qpc_quic_conn_expect_name(struct qpc_quic_conn *c, const char *name)
{
    if (c->is_server || c->handshake_done)
        return QPC_ERR_INVALID;
    return qpc_tls_session_expect_name(&c->tls, name);
}

int qpc_quic_conn_peer_has_name(const struct qpc_quic_conn *c, const char *name)
{
    if (!c->handshake_done || c->tls.session == NULL)
        return QPC_ERR_TLS;
    return qpc_tls_peer_has_dns_name(c->tls.session, name);
}

const uint8_t *qpc_quic_conn_peer_key(const struct qpc_quic_conn *c)
{
    return c->handshake_done && c->tls.has_peer_key ? c->tls.peer_key : NULL;
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

size_t qpc_quic_conn_pto_count(const struct qpc_quic_conn *c)
{
    ngtcp2_conn_stat st;

    if (c->qc == NULL || c->ending)
        return 0;
    ngtcp2_conn_get_conn_stat(c->qc, &st);
    return st.pto_count;
}

void qpc_quic_conn_set_keepalive(struct qpc_quic_conn *c, uint64_t ms)
{
    if (c->qc == NULL || c->ending)
        return;
    ngtcp2_conn_set_keep_alive_timeout(c->qc, ms * NGTCP2_MILLISECONDS);
    qpc_conn_mark_dirty(c);   /* the next expiry moved */
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
