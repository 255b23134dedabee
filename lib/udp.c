/*
 * udp.c: the UDP socket under the QUIC endpoint: bind, receive with GRO, send with GSO.
 *
 * The one idea: on a busy link the system calls, not the cryptography, are what costs.
 * So packets that a connection writes in one turn to one address are collected in one
 * buffer and leave in one sendmsg with UDP_SEGMENT (up to 40 packets); the kernel hands
 * received packets up coalesced with UDP_GRO, and they are split here by the segment
 * size it reports. Where the kernel has neither, one packet per system call still works.
 * A refusal of GSO turns it off for good only when it is the kernel saying it has none
 * (the first try fails with EINVAL or EOPNOTSUPP); any other refusal rests GSO for a
 * number of batches, growing while it keeps failing, and then it is tried again.
 */
#define _GNU_SOURCE   /* recvmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <unistd.h>

#include "qpc/error.h"
#include "udp.h"

#define RX_BATCH 64                      /* datagrams read per wake-up */
#define RX_MMSG 16                       /* datagrams per recvmmsg call */

/* One loop, no threads: one set of receive buffers. Each holds a whole datagram, or a
 * GRO train of them (up to 64 KiB). */
static struct rx_slot {
    uint8_t buf[65536];
    struct sockaddr_storage from;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
} rx[RX_MMSG];

/* Hands the n bytes of one received message up, split by the GRO segment size the
 * kernel reports (if it coalesced several packets of one size). */
static void rx_deliver(struct qpc_udp *u, struct rx_slot *r, struct msghdr *mh, size_t n)
{
    size_t seg = n;

    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
        int gso;

        if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO) {
            memcpy(&gso, CMSG_DATA(cm), sizeof(gso));
            if (gso > 0)
                seg = (size_t)gso;
        }
    }
    for (size_t off = 0; off < n; off += seg) {
        size_t len = n - off < seg ? n - off : seg;

        u->recv(u->user, (const struct sockaddr *)&r->from, mh->msg_namelen, r->buf + off, len);
    }
}

/* Reads up to RX_BATCH datagrams, RX_MMSG per system call: under a flood of junk the
 * calls, not the junk, were a good part of what each datagram cost. */
static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct qpc_udp *u = w->data;
    struct mmsghdr mm[RX_MMSG];
    struct iovec iov[RX_MMSG];

    for (int done = 0; done < RX_BATCH;) {
        int n;

        for (int i = 0; i < RX_MMSG; i++) {
            iov[i].iov_base = rx[i].buf;
            iov[i].iov_len = sizeof(rx[i].buf);
            memset(&mm[i], 0, sizeof(mm[i]));
            mm[i].msg_hdr.msg_name = &rx[i].from;
            mm[i].msg_hdr.msg_namelen = sizeof(rx[i].from);
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
            mm[i].msg_hdr.msg_control = rx[i].ctl.buf;
            mm[i].msg_hdr.msg_controllen = sizeof(rx[i].ctl.buf);
        }
        n = recvmmsg(u->fd, mm, RX_MMSG, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        for (int i = 0; i < n && u->fd >= 0; i++) {   /* a receiver may close the socket */
            if (mm[i].msg_len > 0)
                rx_deliver(u, &rx[i], &mm[i].msg_hdr, mm[i].msg_len);
        }
        done += n;
        if (n < RX_MMSG)
            break;   /* the socket is empty */
    }
}

int qpc_udp_open(struct qpc_udp *u, struct ev_loop *loop, const char *addr, uint16_t port,
                 qpc_udp_recv_fn recv, void *user)
{
    struct sockaddr_in6 a6 = { 0 };
    struct sockaddr_in a4 = { 0 };
    int fd, off = 0, on = 1, bufsz = 4 * 1024 * 1024;
    const struct sockaddr *sa;
    socklen_t salen;

    u->fd = -1;
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
    u->local_len = sizeof(u->local);
    if (bind(fd, sa, salen) != 0 ||
        getsockname(fd, (struct sockaddr *)&u->local, &u->local_len) != 0) {
        close(fd);
        return QPC_ERR_IO;
    }
    u->fd = fd;
    u->loop = loop;
    u->recv = recv;
    u->user = user;
    u->tx.len = u->tx.seg = u->tx.nseg = 0;
    u->no_gso = u->gso_worked = false;
    u->gso_pause = u->gso_resting = 0;
    u->gso_sends = u->gso_failures = 0;
    u->test_gso_errno = 0;
    ev_io_init(&u->io, io_cb, fd, EV_READ);
    u->io.data = u;
    ev_io_start(loop, &u->io);
    return 0;
}

void qpc_udp_close(struct qpc_udp *u)
{
    if (u->fd < 0)
        return;
    ev_io_stop(u->loop, &u->io);
    close(u->fd);
    u->fd = -1;
}

void qpc_udp_send(struct qpc_udp *u, const struct sockaddr *to, socklen_t tolen,
                  const uint8_t *pkt, size_t len)
{
    /* EAGAIN and friends drop the packet: loss recovery resends it. */
    (void)sendto(u->fd, pkt, len, MSG_DONTWAIT, to, tolen);
}

int qpc_udp_send_ttl(struct qpc_udp *u, const struct sockaddr *to, socklen_t tolen,
                     const uint8_t *pkt, size_t len, int ttl)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { (void *)pkt, len };
    struct msghdr mh = { 0 };
    struct cmsghdr *cm;
    const struct sockaddr_in6 *t6 = (const struct sockaddr_in6 *)to;

    if (ttl < 1 || ttl > 255)
        return QPC_ERR_INVALID;
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_name = (void *)to;
    mh.msg_namelen = tolen;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    cm = CMSG_FIRSTHDR(&mh);
    if (to->sa_family == AF_INET || IN6_IS_ADDR_V4MAPPED(&t6->sin6_addr)) {
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_TTL;
    } else {
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_HOPLIMIT;
    }
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &ttl, sizeof(int));
    return sendmsg(u->fd, &mh, MSG_DONTWAIT) == (ssize_t)len ? 0 : QPC_ERR_IO;
}

/* The kernel refused a GSO sendmsg with err: off for good when it has never worked and
 * err says the option is unknown, else a rest that doubles while refusals continue. */
static void gso_refused(struct qpc_udp *u, int err)
{
    u->gso_failures++;
    if (!u->gso_worked && (err == EINVAL || err == EOPNOTSUPP || err == ENOPROTOOPT)) {
        u->no_gso = true;
        return;
    }
    u->gso_pause = u->gso_pause == 0 ? QPC_UDP_GSO_PAUSE_MIN
                   : u->gso_pause >= QPC_UDP_GSO_PAUSE_MAX / 2 ? QPC_UDP_GSO_PAUSE_MAX
                                                               : u->gso_pause * 2;
    u->gso_resting = u->gso_pause;
}

void qpc_udp_tx_flush(struct qpc_udp *u)
{
    struct iovec iov = { u->tx.buf, u->tx.len };
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = { 0 };
    struct cmsghdr *cm;
    uint16_t seg = (uint16_t)u->tx.seg;

    if (u->tx.nseg == 0)
        return;
    if (u->tx.nseg > 1 && !u->no_gso && u->gso_resting > 0)
        u->gso_resting--;
    else if (u->tx.nseg > 1 && !u->no_gso) {
        ssize_t rc;

        mh.msg_name = &u->tx.to;
        mh.msg_namelen = u->tx.tolen;
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
        if (u->test_gso_errno != 0) {
            errno = u->test_gso_errno;
            u->test_gso_errno = 0;
            rc = -1;
        } else {
            rc = sendmsg(u->fd, &mh, MSG_DONTWAIT);
        }
        if (rc >= 0) {
            u->gso_sends++;
            u->gso_worked = true;
            u->gso_pause = 0;
            goto done;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            goto done;   /* a full queue, not a refusal: dropped, loss recovery resends */
        gso_refused(u, errno);   /* this batch leaves one packet per call */
    }
    for (size_t off = 0; off < u->tx.len; off += u->tx.seg) {
        size_t n = u->tx.len - off < u->tx.seg ? u->tx.len - off : u->tx.seg;

        (void)sendto(u->fd, u->tx.buf + off, n, MSG_DONTWAIT,
                     (const struct sockaddr *)&u->tx.to, u->tx.tolen);
    }
done:
    u->tx.len = u->tx.seg = u->tx.nseg = 0;
}

uint8_t *qpc_udp_tx_slot(struct qpc_udp *u, size_t max)
{
    if (u->tx.len + max > sizeof(u->tx.buf))
        qpc_udp_tx_flush(u);
    return u->tx.buf + u->tx.len;
}

void qpc_udp_tx_commit(struct qpc_udp *u, const struct sockaddr *to, socklen_t tolen, size_t n)
{
    if (u->tx.nseg > 0 && (n > u->tx.seg || tolen != u->tx.tolen ||
                           memcmp(to, &u->tx.to, u->tx.tolen) != 0)) {
        /* Does not fit the batch: send the batch, and start anew with this packet. */
        size_t off = u->tx.len;

        qpc_udp_tx_flush(u);
        memmove(u->tx.buf, u->tx.buf + off, n);
    }
    if (u->tx.nseg == 0) {
        memcpy(&u->tx.to, to, tolen);
        u->tx.tolen = tolen;
        u->tx.seg = n;
    }
    u->tx.len += n;
    u->tx.nseg++;
    if (n < u->tx.seg || u->tx.nseg == QPC_UDP_GSO_MAX_SEGS)
        qpc_udp_tx_flush(u);
}
