/*
 * udp.h (internal): the one UDP socket of a QUIC endpoint, on a libev loop.
 *
 * It knows nothing of QUIC: it binds, reads datagrams (splitting the coalesced buffers
 * UDP GRO hands up into the packets they hold) and gives each one to a callback, and
 * sends packets, batching consecutive packets of one size to one address into one
 * sendmsg with UDP GSO. Send failures drop the packet: QUIC's loss recovery resends.
 */
#ifndef QPC_UDP_H
#define QPC_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <ev.h>

#define QPC_UDP_PAYLOAD_MAX 1452         /* largest packet we send over UDP */
#define QPC_UDP_GSO_MAX_SEGS 40          /* packets per sendmsg (UDP GSO, <= 64 KiB) */
#define QPC_UDP_GSO_PAUSE_MIN 64         /* batches without GSO after a transient refusal */
#define QPC_UDP_GSO_PAUSE_MAX 65536      /* ... at most, while refusals continue */

/*
 * One received packet: from is the sender's address (fromlen bytes), data (len bytes)
 * one packet. Both are valid during the call only.
 */
typedef void (*qpc_udp_recv_fn)(void *user, const struct sockaddr *from, socklen_t fromlen,
                                const uint8_t *data, size_t len);

struct qpc_udp {
    struct ev_loop *loop;
    int fd;                              /* -1 until qpc_udp_open succeeded */
    ev_io io;
    struct sockaddr_storage local;       /* the bound address, as getsockname says */
    socklen_t local_len;
    qpc_udp_recv_fn recv;
    void *user;
    /* Packets to one address waiting for one sendmsg (UDP GSO): all segments have the
     * size of the first but the last, which may be shorter. */
    struct {
        uint8_t buf[QPC_UDP_GSO_MAX_SEGS * QPC_UDP_PAYLOAD_MAX];
        size_t len, seg, nseg;
        struct sockaddr_storage to;
        socklen_t tolen;
    } tx;
    /* UDP GSO. A kernel without it refuses the very first try (EINVAL, EOPNOTSUPP,
     * ENOPROTOOPT): then it stays off. Any other refusal (EIO from a device without
     * checksum offload or an IPsec route, EINVAL from a path MTU that shrank after GSO
     * worked) is taken as transient: GSO rests for gso_pause batches (doubled on each
     * failure in a row, 64 .. 65536) and is then tried again. */
    bool no_gso;                         /* the kernel lacks UDP_SEGMENT: off for good */
    bool gso_worked;                     /* a GSO sendmsg has succeeded on this socket */
    uint32_t gso_pause;                  /* batches to send without GSO after a refusal */
    uint32_t gso_resting;                /* batches left before GSO is tried again */
    uint64_t gso_sends;                  /* sendmsg calls with UDP_SEGMENT that succeeded */
    uint64_t gso_failures;               /* ... that the kernel refused (not EAGAIN/ENOBUFS) */
    int test_gso_errno;                  /* tests: the next GSO sendmsg fails with this
                                          * errno without reaching the kernel (0: off) */
};

/*
 * Binds u to addr (numeric IPv4 or IPv6; NULL = "::", dual stack) and port (0 = any
 * free port), and starts reading on loop (borrowed; must outlive u): every packet goes
 * to recv(user, ...). u is the caller's memory (it holds the send batch, about 58 KiB)
 * and must not move while open. Set u->fd to -1 before anything can fail, so that
 * qpc_udp_close is a no-op on a u that never opened (this function sets it too).
 * Errors: QPC_ERR_INVALID (addr not a numeric address), QPC_ERR_IO (socket, bind).
 */
int qpc_udp_open(struct qpc_udp *u, struct ev_loop *loop, const char *addr, uint16_t port,
                 qpc_udp_recv_fn recv, void *user);

/* Stops reading and closes the socket; a u that never opened (fd -1) is a no-op. The
 * packets still in the send batch are dropped: flush first if they matter. */
void qpc_udp_close(struct qpc_udp *u);

/* Sends one packet at once, outside the batch (pkt is only read during the call). */
void qpc_udp_send(struct qpc_udp *u, const struct sockaddr *to, socklen_t tolen,
                  const uint8_t *pkt, size_t len);

/*
 * Sends one packet at once, outside the batch, with IP TTL / IPv6 hop limit ttl (1..255)
 * for this packet only (an IP_TTL or IPV6_HOPLIMIT control message; the socket's own
 * setting is untouched). A v4-mapped destination on a dual-stack socket takes IP_TTL:
 * Linux sends it on the IPv4 path. Returns 0, QPC_ERR_INVALID (ttl out of range) or
 * QPC_ERR_IO (not sent).
 */
int qpc_udp_send_ttl(struct qpc_udp *u, const struct sockaddr *to, socklen_t tolen,
                     const uint8_t *pkt, size_t len, int ttl);

/*
 * Where the next packet of the batch is to be written; room for max bytes (at most
 * QPC_UDP_PAYLOAD_MAX) is guaranteed (a full batch is sent first). The caller writes
 * the packet there, then calls qpc_udp_tx_commit, or leaves it uncommitted (it is then
 * overwritten by the next packet).
 */
uint8_t *qpc_udp_tx_slot(struct qpc_udp *u, size_t max);

/*
 * The packet of n bytes just written at qpc_udp_tx_slot() is complete and goes to to:
 * it joins the batch, which is sent when a packet to another address or of another
 * size arrives, when the batch is full, or at qpc_udp_tx_flush.
 */
void qpc_udp_tx_commit(struct qpc_udp *u, const struct sockaddr *to, socklen_t tolen, size_t n);

/* Sends the batch (one sendmsg with UDP GSO, or one sendto per packet where the kernel
 * has no GSO). An empty batch is a no-op. */
void qpc_udp_tx_flush(struct qpc_udp *u);

#endif
