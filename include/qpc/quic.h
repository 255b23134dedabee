/*
 * quic.h: the QUIC transport of quicprochat (ngtcp2 0.12 + GnuTLS, on a libev loop).
 *
 * The one idea: an endpoint owns ONE UDP socket that serves both the connections it
 * accepts and the ones it initiates (NAT traversal depends on the mapping a server sees
 * being the one peers dial), and demultiplexes incoming packets by connection id. A
 * connection's packets travel over a path: either that UDP socket and a remote address,
 * or a relay, i.e. an application-provided send function (the relay fallback carries
 * P2P QUIC packets inside DATAGRAM frames of each peer's connection to a server, so the
 * end-to-end QUIC/TLS session is kept and the relay sees ciphertext only). Packets that
 * come back through a relay are handed in with qpc_quic_endpoint_input_relayed().
 *
 * Applications see connections, bidirectional streams carrying length-prefixed frames
 * (wire.h), and datagrams. Everything runs on the libev loop passed in; no threads.
 * Work the application asks for (send a frame, close) is queued and carried out when
 * the loop next turns, so every qpc_quic_* function but qpc_quic_endpoint_free may be
 * called from inside any callback.
 *
 * TLS: on the client and P2P ALPNs each side presents a self-signed certificate over its
 * Ed25519 identity key (tls.h) and the other side learns, or checks, that key. On the
 * federation ALPN both sides present CA-signed certificates and verify the chain.
 *
 * Ownership, for every function below: endpoints, connections and relays belong to the
 * library. A connection is valid from the call that made it (or on_connected, for an
 * accepted one) until its on_closed returns; a relay until qpc_quic_relay_free or
 * qpc_quic_endpoint_free. Bytes passed in are copied or only read during the call;
 * bytes passed to callbacks are valid during the callback only. Which file does what:
 * docs/transport.md.
 */
#ifndef QPC_QUIC_H
#define QPC_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <ev.h>
#include <protobuf-c/protobuf-c.h>

#include "qpc/encoding.h"

#define QPC_ALPN_CLIENT "quicprochat/client/1"
#define QPC_ALPN_P2P "quicprochat/p2p/1"
#define QPC_ALPN_FEDERATION "quicprochat/federation/1"

#define QPC_QUIC_PORT_CLIENT 7000
#define QPC_QUIC_PORT_FEDERATION 7001
#define QPC_QUIC_IDLE_TIMEOUT_MS_DEFAULT 30000
#define QPC_QUIC_STREAM_BUFFER_DEFAULT ((size_t)1024 * 1024)
/* A frame the peer began must be complete within frame_timeout_ms (default below) plus
 * one second per QPC_QUIC_FRAME_MIN_RATE bytes it announced, or the connection is closed
 * (QPC_QUIC_APP_FRAME_TIMEOUT): keep-alive PINGs keep the idle timeout off, so without
 * this a peer could pin a connection by sending a header and then a byte a minute. */
#define QPC_QUIC_FRAME_TIMEOUT_MS_DEFAULT 30000
#define QPC_QUIC_FRAME_MIN_RATE 32768      /* bytes per second a long frame must keep up */
#define QPC_QUIC_MAX_ALPNS 8
/* Largest DATAGRAM payload accepted: a relayed 1200-byte QUIC packet plus up to 150
 * bytes of relay header fits in one 1452-byte UDP packet. */
#define QPC_QUIC_DATAGRAM_MAX 1350

/* Application error codes this module itself puts into CONNECTION_CLOSE. */
#define QPC_QUIC_APP_NO_ERROR 0x0
#define QPC_QUIC_APP_REFUSED 0x101        /* the application refused the peer (key) */
#define QPC_QUIC_APP_FRAME_TOO_LARGE 0x102 /* peer announced a frame above the limit */
#define QPC_QUIC_APP_SHUTDOWN 0x103       /* the endpoint is being freed */
#define QPC_QUIC_APP_FRAME_TIMEOUT 0x104  /* a frame begun was not finished in time */

struct qpc_quic_endpoint;
struct qpc_quic_conn;
struct qpc_quic_relay;

/* Why a connection ended; given to on_closed, valid only during that call. */
struct qpc_quic_close_info {
    int err;              /* QPC_ERR_CLOSED: closed by either side with an application
                           *   code; QPC_ERR_TIMEOUT: idle or handshake timeout;
                           *   QPC_ERR_TLS: handshake / certificate failure;
                           *   QPC_ERR_REFUSED: wrong peer key, no common ALPN, the
                           *   application refused, or the server is not accepting new
                           *   connections (CONNECTION_REFUSED, transport code 0x2);
                           *   QPC_ERR_QUIC: protocol error. */
    bool by_peer;         /* the peer sent the CONNECTION_CLOSE */
    bool is_app;          /* code is an application code (else a QUIC transport code) */
    uint64_t code;
    const char *reason;   /* NUL-terminated, possibly ""; at most 255 bytes, control
                           * bytes of a peer's reason replaced by '?' */
};

/*
 * Callbacks, set once per endpoint. `user` is the connection's user pointer
 * (qpc_quic_conn_set_user), which starts as the endpoint's user pointer. Any callback
 * may be NULL.
 */
struct qpc_quic_callbacks {
    /* The handshake is done. alpn is the negotiated ALPN; peer_key is the peer's
     * Ed25519 key on the client and P2P ALPNs, NULL on federation. Return 0 to accept,
     * nonzero to refuse: the connection is closed with QPC_QUIC_APP_REFUSED (this is
     * the trust-on-first-use hook). */
    int (*on_connected)(struct qpc_quic_conn *conn, const char *alpn,
                        const uint8_t *peer_key, void *user);
    /* One complete frame arrived on a stream. data is valid during the call only. */
    void (*on_frame)(struct qpc_quic_conn *conn, int64_t stream_id, const uint8_t *data,
                     size_t len, void *user);
    /* One DATAGRAM frame arrived. */
    void (*on_datagram)(struct qpc_quic_conn *conn, const uint8_t *data, size_t len,
                        void *user);
    /* A stream whose send_frame returned QPC_ERR_AGAIN can take frames again. */
    void (*on_writable)(struct qpc_quic_conn *conn, int64_t stream_id, void *user);
    /* The peer ended its direction of a stream (FIN after its last frame, or a
     * reset); nothing more arrives on it. End ours with qpc_quic_conn_end_stream so
     * the stream is freed and the peer may open another. */
    void (*on_stream_end)(struct qpc_quic_conn *conn, int64_t stream_id, void *user);
    /* The connection ended (called exactly once per connection, also for connects that
     * never completed). conn is freed right after the call returns. */
    void (*on_closed)(struct qpc_quic_conn *conn, const struct qpc_quic_close_info *info,
                      void *user);
};

#define QPC_QUIC_RETRY_THRESHOLD_DEFAULT 64
#define QPC_QUIC_RETRY_ALWAYS (-1)
#define QPC_QUIC_RETRY_TOKEN_TIMEOUT_MS 10000   /* a Retry token is good this long */

struct qpc_quic_config {
    const char *bind_addr;        /* numeric IPv4/IPv6 address; NULL = "::" (dual stack) */
    uint16_t port;                /* 0 = any free port */
    bool accept;                  /* accept incoming connections */
    const char *alpns[QPC_QUIC_MAX_ALPNS]; /* ALPNs served when accepting, NULL-ended */
    const uint8_t *identity_sk;   /* 64-byte libsodium Ed25519 secret key (copied into
                                   * GnuTLS); needed for the client and P2P ALPNs */
    const char *fed_cert_der;     /* federation certificate, key and CA (DER files); */
    const char *fed_key_der;      /* all three or none; needed for the federation ALPN */
    const char *fed_ca_der;
    bool fed_by_key;              /* federation ALPN with the identity certificate and key
                                   * checks (identity_sk, no DER files), not the CA */
    size_t max_frame;             /* 0 = QPC_WIRE_FRAME_MAX_DEFAULT */
    size_t stream_buffer;         /* bytes queued per stream before back-pressure;
                                   * 0 = QPC_QUIC_STREAM_BUFFER_DEFAULT */
    uint64_t idle_timeout_ms;     /* 0 = QPC_QUIC_IDLE_TIMEOUT_MS_DEFAULT */
    uint64_t keepalive_ms;        /* 0 = no keep-alive PINGs */
    uint64_t frame_timeout_ms;    /* 0 = QPC_QUIC_FRAME_TIMEOUT_MS_DEFAULT */
    int retry_threshold;          /* accepting: handshakes in progress from which a new
                                   * client must prove its address with a Retry first;
                                   * 0 = QPC_QUIC_RETRY_THRESHOLD_DEFAULT,
                                   * QPC_QUIC_RETRY_ALWAYS = every client */
    struct qpc_quic_callbacks cb;
    void *user;
};

/* ---- Endpoint ------------------------------------------------------------------------ */

/*
 * Creates an endpoint: binds the UDP socket and starts watching it on loop (borrowed;
 * must outlive the endpoint). cfg and the strings in it are copied; identity_sk is
 * copied into GnuTLS. *out is the caller's, to free with qpc_quic_endpoint_free.
 * Errors: QPC_ERR_INVALID (bad address, accept without ALPNs, an ALPN empty or of 64
 * bytes or more, max_frame above QPC_WIRE_FRAME_MAX_LIMIT), QPC_ERR_IO (socket, bind),
 * QPC_ERR_CONFIG (an ALPN without its credentials) / QPC_ERR_IO (federation files),
 * QPC_ERR_CRYPTO, QPC_ERR_NOMEM.
 */
int qpc_quic_endpoint_new(struct qpc_quic_endpoint **out, struct ev_loop *loop,
                          const struct qpc_quic_config *cfg);

/*
 * Closes every connection (CONNECTION_CLOSE with QPC_QUIC_APP_SHUTDOWN, on_closed with
 * QPC_ERR_CLOSED; relayed connections send no goodbye), frees relays, closes the socket
 * and frees ep. NULL is a no-op. Call it from the top of the loop, never from inside one
 * of ep's callbacks (relay send functions included). The on_closed calls it makes may
 * still use ep: qpc_quic_relay_free works, while qpc_quic_connect, _connect_relayed and
 * qpc_quic_relay_new fail with QPC_ERR_CLOSED.
 */
void qpc_quic_endpoint_free(struct qpc_quic_endpoint *ep);

/* Copies the bound local address into *ss and its length into *len (e.g. to learn the
 * port chosen for port 0). Returns 0: the address was read once, at bind. */
int qpc_quic_endpoint_local_addr(struct qpc_quic_endpoint *ep, struct sockaddr_storage *ss,
                                 socklen_t *len);

/*
 * Starts or stops accepting new incoming connections on an endpoint created with
 * accept set, e.g. to stop at shutdown while the connections already there (handshakes
 * in progress included) go on until they end. While not accepting, a full-size Initial
 * for an unknown connection id (UDP or relayed) is answered with a stateless
 * CONNECTION_CLOSE carrying the transport error CONNECTION_REFUSED (the client's
 * on_closed sees QPC_ERR_REFUSED at once), and any other packet for an unknown id is
 * dropped. Outgoing connections (qpc_quic_connect) are not affected. Setting the
 * current state again is a no-op. Returns 0, or QPC_ERR_INVALID (ep NULL, or accepting
 * true on an endpoint created without accept).
 */
int qpc_quic_endpoint_set_accepting(struct qpc_quic_endpoint *ep, bool accepting);

/* The address family ep can dial: AF_INET when its socket is bound to an IPv4 address,
 * else AF_UNSPEC (an IPv6 socket is dual stack). For qpc_resolve_start_family. */
int qpc_quic_endpoint_dial_family(const struct qpc_quic_endpoint *ep);

/* Number of live connections (handshaking, open, or closing). */
size_t qpc_quic_endpoint_conn_count(const struct qpc_quic_endpoint *ep);

/*
 * Address validation of an accepting endpoint. QUIC lets a spoofed source start a
 * handshake with one 1200-byte Initial; each costs a connection and a TLS session until
 * its handshake times out. So once retry_threshold handshakes are in progress (default
 * 64), an Initial without a valid token is answered with a Retry (a token sealed with a
 * per-endpoint secret over the client's address and original connection id, good for
 * QPC_QUIC_RETRY_TOKEN_TIMEOUT_MS) and no state at all; a real client sends its Initial
 * again with the token (ngtcp2 does it by itself), and only then is a connection made.
 * Below the threshold a handshake costs one round trip less. Counters since creation:
 */
struct qpc_quic_endpoint_stats {
    uint64_t retries_sent;        /* Retry packets sent */
    uint64_t tokens_refused;      /* Initials with a token that did not verify (dropped) */
    uint64_t retried_accepted;    /* connections made after a Retry */
    uint64_t handshakes_refused;  /* Initials dropped because HANDSHAKING_MAX were running */
    uint64_t initials_unopened;   /* new clients' Initials whose protection did not open
                                   * (forged or damaged; dropped before any state) */
    uint64_t retry_superseded;    /* half-open connections ended because their client went
                                   * on after a Retry under another connection id */
};
/* Copies ep's counters into *out (zeros for NULL ep). */
void qpc_quic_endpoint_get_stats(const struct qpc_quic_endpoint *ep,
                                 struct qpc_quic_endpoint_stats *out);

/*
 * Sends one probe datagram from the endpoint's socket to addr (IPv4 or IPv6, mapped as
 * qpc_quic_connect does) with IP TTL / IPv6 hop limit ttl (1..255), for hole punching:
 * with a low TTL it opens this host's NAT mapping toward addr and dies at the router
 * after that NAT, so it cannot reach (and poison) the far NAT before the peer has opened
 * its own. The QPC_QUIC_PROBE_LEN bytes are not a QUIC packet: every endpoint (ours
 * among them) drops them without a word. addr is only read during the call. Returns 0,
 * QPC_ERR_INVALID (bad address or ttl) or QPC_ERR_IO (the send failed; it is not
 * retried).
 */
#define QPC_QUIC_PROBE_LEN 10
/*
 * True when a connection with addr (mapped as qpc_quic_connect does) is still in its
 * handshake but has read a packet from it: the path carries, the handshake is only
 * finishing. addr is only read during the call.
 */
bool qpc_quic_endpoint_hears(const struct qpc_quic_endpoint *ep, const struct sockaddr *addr,
                             socklen_t addrlen);

int qpc_quic_endpoint_send_probe(struct qpc_quic_endpoint *ep, const struct sockaddr *addr,
                                 socklen_t addrlen, int ttl);

/* ---- Connections ---------------------------------------------------------------------- */

/*
 * Starts a connection to addr (IPv4 or IPv6, addrlen bytes; copied) over the endpoint's
 * socket, offering alpn. expected_key: the peer's Ed25519 key (32 bytes, copied), or
 * NULL to learn it (TOFU: on_connected gets it and may refuse). Ignored for a
 * CA-checked federation ALPN (the CA decides; see qpc_quic_conn_expect_name). user becomes the connection's user pointer. The
 * result arrives through on_connected or on_closed. *out (out may be NULL) is valid
 * until on_closed returns. Errors: QPC_ERR_INVALID (addr NULL, of another family than
 * the socket, or a relay address; alpn NULL, empty or too long), QPC_ERR_CONFIG (no
 * credentials for that ALPN), QPC_ERR_TLS, QPC_ERR_QUIC, QPC_ERR_NOMEM, QPC_ERR_CLOSED
 * (ep is being freed).
 */
int qpc_quic_connect(struct qpc_quic_endpoint *ep, const struct sockaddr *addr,
                     socklen_t addrlen, const char *alpn, const uint8_t *expected_key,
                     void *user, struct qpc_quic_conn **out);

/*
 * Closes the connection with an application error code and reason (copied, at most
 * 255 bytes kept). The peer's on_closed sees both; ours is called too (by_peer false,
 * err QPC_ERR_REFUSED for QPC_QUIC_APP_REFUSED, else QPC_ERR_CLOSED), when the loop
 * next turns: conn stays valid until then. reason NULL is "". Closing twice is a no-op.
 * Returns 0.
 */
int qpc_quic_conn_close(struct qpc_quic_conn *conn, uint64_t app_code, const char *reason);

/* The negotiated ALPN ("" before the handshake completes); owned by conn. */
const char *qpc_quic_conn_alpn(const struct qpc_quic_conn *conn);

/*
 * CA-checked federation only, on a connection this side started, before its handshake
 * completes (right after qpc_quic_connect): the server's certificate must list name
 * (copied) as a subjectAltName dNSName, or the handshake fails and on_closed reports
 * QPC_ERR_REFUSED "certificate is not for that domain". Returns 0 or QPC_ERR_INVALID
 * (accepted connection, handshake over, name NULL or too long).
 */
int qpc_quic_conn_expect_name(struct qpc_quic_conn *conn, const char *name);

/*
 * Whether the certificate the peer presented lists name as a subjectAltName dNSName
 * (qpc_tls_cert_has_dns_name): how the accepting side of CA-checked federation binds
 * the domain a peer claims. Returns 0, QPC_ERR_NOT_FOUND, or QPC_ERR_TLS (handshake
 * not completed, or no certificate).
 */
int qpc_quic_conn_peer_has_name(const struct qpc_quic_conn *conn, const char *name);

/* The peer's Ed25519 key (QPC_KEY_LEN bytes, owned by conn) once the handshake
 * completed on an identity ALPN (or key-checked federation); NULL before that and on
 * CA-checked federation. */
const uint8_t *qpc_quic_conn_peer_key(const struct qpc_quic_conn *conn);

/* The peer's address as the connection started (owned by conn; *len gets its length).
 * For relayed connections a synthetic 100::/64 address (qpc_quic_addr_is_relay). */
const struct sockaddr *qpc_quic_conn_remote_addr(const struct qpc_quic_conn *conn,
                                                 socklen_t *len);

/* Whether conn was accepted (true) or initiated by this side (false). */
bool qpc_quic_conn_is_server(const struct qpc_quic_conn *conn);

/* Probe timeouts in a row without any acknowledgement from the peer (ngtcp2's
 * pto_count): 0 while the path carries; several mean it has stopped carrying, long
 * before the idle timeout says so. 0 for a connection that is ending. */
size_t qpc_quic_conn_pto_count(const struct qpc_quic_conn *conn);

/* Keep-alive PINGs on conn once it has been idle for ms (0: none), in place of the
 * endpoint's keepalive_ms: a P2P link wants them from one end only. */
void qpc_quic_conn_set_keepalive(struct qpc_quic_conn *conn, uint64_t ms);

/* Sets the pointer handed to conn's callbacks (the library never looks at it). */
void qpc_quic_conn_set_user(struct qpc_quic_conn *conn, void *user);

/* The pointer set with qpc_quic_conn_set_user, or the one given at connect (accepted
 * connections start with the endpoint's cfg->user). */
void *qpc_quic_conn_get_user(const struct qpc_quic_conn *conn);

/* The endpoint conn belongs to. */
struct qpc_quic_endpoint *qpc_quic_conn_endpoint(const struct qpc_quic_conn *conn);

/* ---- Streams and frames ------------------------------------------------------------
 *
 * Bidirectional streams carry frames (wire.h: 4-byte length, then the body). Bytes
 * sent stay queued until the peer acknowledges them; a stream holding stream_buffer
 * unacknowledged bytes refuses more with QPC_ERR_AGAIN, and on_writable follows once it
 * drained to half.
 */

/*
 * Opens a bidirectional stream; its id goes to *stream_id. Errors: QPC_ERR_AGAIN (the
 * peer allows no more streams yet, or the handshake is not done), QPC_ERR_CLOSED,
 * QPC_ERR_NOMEM.
 */
int qpc_quic_conn_open_stream(struct qpc_quic_conn *conn, int64_t *stream_id);

/*
 * Queues one frame (body of len bytes; copied) on a stream this side opened or the
 * peer opened. Errors: QPC_ERR_TOO_LARGE (len above the frame limit), QPC_ERR_AGAIN
 * (the stream's buffer is full: wait for on_writable), QPC_ERR_NOT_FOUND (no such
 * stream), QPC_ERR_CLOSED (connection closing, or this side of the stream ended),
 * QPC_ERR_NOMEM. On any error nothing is queued.
 */
int qpc_quic_conn_send_frame(struct qpc_quic_conn *conn, int64_t stream_id,
                             const uint8_t *data, size_t len);

/*
 * Ends this side's direction of a stream after the frames already queued (FIN). A
 * stream is freed once both directions ended; each side allows the other 100 open
 * streams at a time. Ending twice is a no-op. Errors: QPC_ERR_NOT_FOUND, QPC_ERR_CLOSED.
 */
int qpc_quic_conn_end_stream(struct qpc_quic_conn *conn, int64_t stream_id);

/* ---- Protobuf messages on streams ----------------------------------------------------
 *
 * Every frame of our protocols is one protobuf message. Send it with
 * qpc_quic_conn_send_message when it can go now or be rebuilt later; pack it with
 * qpc_quic_pack_message when the frame must wait in the caller's own queue.
 */

/*
 * Packs one protobuf message (protobuf_c_message_get_packed_size / _pack) and queues it
 * as one frame on a stream, as qpc_quic_conn_send_frame would queue the packed bytes:
 * the same checks, errors and back-pressure. msg is only read during the call (pass
 * &m.base, or cast the generated struct); it is packed straight into the stream's
 * queue, so the caller keeps no buffer. On any error nothing is queued and msg is
 * still the caller's: after QPC_ERR_AGAIN send the same message again from
 * on_writable. Errors: QPC_ERR_INVALID (msg NULL), QPC_ERR_TOO_LARGE (packed size above
 * the frame limit; it will never fit), QPC_ERR_AGAIN, QPC_ERR_NOT_FOUND, QPC_ERR_CLOSED,
 * QPC_ERR_NOMEM.
 */
int qpc_quic_conn_send_message(struct qpc_quic_conn *conn, int64_t stream_id,
                               const ProtobufCMessage *msg);

/*
 * Packs one protobuf message into a new buffer, for callers that must hold a frame
 * before it can go (a reply queue kept in order, waiting for a commit) and send it
 * later with qpc_quic_conn_send_frame, keeping it across QPC_ERR_AGAIN. *out (len
 * bytes; at least one byte allocated, so a message of defaults gives a buffer and
 * len 0) is the caller's to free(). msg is only read. Errors: QPC_ERR_INVALID (an
 * argument NULL), QPC_ERR_NOMEM.
 */
int qpc_quic_pack_message(const ProtobufCMessage *msg, uint8_t **out, size_t *len);

/* ---- Datagrams ------------------------------------------------------------------------ */

/*
 * Queues one unreliable DATAGRAM (copied). Errors: QPC_ERR_TOO_LARGE (above
 * QPC_QUIC_DATAGRAM_MAX), QPC_ERR_AGAIN (handshake not done, or 512 already queued),
 * QPC_ERR_CLOSED, QPC_ERR_NOMEM. A queued datagram the path or the peer cannot take is
 * dropped without notice.
 */
int qpc_quic_conn_send_datagram(struct qpc_quic_conn *conn, const uint8_t *data, size_t len);

/* ---- Relay paths ----------------------------------------------------------------------
 *
 * A relay path carries a connection's packets through the application instead of the
 * UDP socket: the relay fallback puts them into DATAGRAM frames of each peer's
 * connection to a relay node. The path has a synthetic remote address from the discard
 * prefix 100::/64 (RFC 6666) that no real peer can have; qpc_quic_conn_remote_addr of a
 * relayed connection returns it, and qpc_quic_addr_is_relay tells it apart.
 */

/*
 * Makes a relay path. send(user, pkt, len) is called with each QUIC packet (at most
 * 1200 bytes) that a connection on this path emits; it returns 0, or nonzero if the
 * packet was dropped (QUIC retransmits). The packet is valid during the call only. When
 * whatever send uses goes away (e.g. the connection to the relay node closes), free the
 * relay. *out is owned by the endpoint; free it with qpc_quic_relay_free or let
 * qpc_quic_endpoint_free do it. user is the caller's and only handed to send.
 * Errors: QPC_ERR_INVALID (send NULL), QPC_ERR_NOMEM, QPC_ERR_CLOSED (ep is being freed).
 */
typedef int (*qpc_quic_relay_send_fn)(void *user, const uint8_t *pkt, size_t len);
int qpc_quic_relay_new(struct qpc_quic_endpoint *ep, qpc_quic_relay_send_fn send, void *user,
                       struct qpc_quic_relay **out);

/* Ends every connection on the relay path (their on_closed follow when the loop next
 * turns, QPC_ERR_CLOSED) and frees relay at once. NULL is a no-op. */
void qpc_quic_relay_free(struct qpc_quic_relay *relay);

/*
 * Hands in one QUIC packet that arrived through relay (data is only read during the
 * call). A packet for an unknown connection id starts an accepted connection if the
 * endpoint accepts (at most 1024 incoming connections may be in their handshake at a
 * time; Initials beyond that are dropped, on the UDP socket too). Returns 0 (also when
 * the packet was dropped as invalid, or ep is being freed) or QPC_ERR_INVALID (relay
 * NULL or of another endpoint, data NULL).
 */
int qpc_quic_endpoint_input_relayed(struct qpc_quic_endpoint *ep, struct qpc_quic_relay *relay,
                                    const uint8_t *data, size_t len);

/* As qpc_quic_connect, but every packet of the connection goes through relay (packets
 * of at most 1200 bytes). Errors: those of qpc_quic_connect; QPC_ERR_INVALID also for
 * relay NULL or of another endpoint. */
int qpc_quic_connect_relayed(struct qpc_quic_endpoint *ep, struct qpc_quic_relay *relay,
                             const char *alpn, const uint8_t *expected_key, void *user,
                             struct qpc_quic_conn **out);

/*
 * Whether sa is the address of a relay path (in 100::/64), i.e. whether a connection
 * whose qpc_quic_conn_remote_addr is sa runs through a relay rather than the UDP socket.
 * sa is only read (as a struct sockaddr_in6 when its family is AF_INET6); NULL is false.
 * Such an address never comes from the network: the endpoint drops UDP packets that
 * claim one as their source, and qpc_quic_connect refuses one (QPC_ERR_INVALID).
 */
bool qpc_quic_addr_is_relay(const struct sockaddr *sa);

#endif
