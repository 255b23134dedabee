/*
 * qemu-workarounds.c: an LD_PRELOAD library for running the unit tests of another
 * architecture under qemu-user 7.2 (Debian bookworm), whose system-call translation gets
 * two socket options wrong. Each workaround is compiled in only for the guests it
 * concerns; scripts/cross.sh builds this with the cross compiler, preloads it and prints
 * which workarounds are active (it reads the same facts from the ELF header). Neither changes what the tests check: a real kernel of
 * that architecture needs neither.
 *
 * 1. Big-endian guests: qemu copies most control data of sendmsg and recvmsg without
 *    converting byte order ("Unsupported ancillary data: 17/103" with -d unimp).
 *    UDP_SEGMENT/UDP_GRO: the host kernel reads segment size 1452 as 44037 and sends a
 *    batch of QUIC packets as one datagram the receiver cannot split; here the guest sees
 *    a kernel without UDP GSO/GRO, which lib/quic.c handles (one packet per sendto).
 *    IP_PKTINFO/IPV6_PKTINFO (avahi picks and learns the interface with them): the
 *    interface index arrives swapped (ENODEV on send, unknown interface on receive);
 *    here it is swapped back on both ways.
 * 2. 64-bit guests: qemu's struct target_ip_mreqn has a long imr_ifindex, so the real
 *    12-byte struct ip_mreqn fails its size test, the interface index is never copied and
 *    IP_ADD_MEMBERSHIP fails with ENODEV (avahi: "IP_ADD_MEMBERSHIP failed: No such
 *    device"). Here the guest passes the 16-byte layout qemu expects.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define BIG_ENDIAN_GUEST (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
#define LONG64_GUEST (__SIZEOF_LONG__ == 8)

#if BIG_ENDIAN_GUEST
/* Swaps the interface index of every packet-info message in a control buffer. */
static void swap_pktinfo(struct msghdr *msg)
{
    struct cmsghdr *cm;

    for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        int *ifindex = NULL;

        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo)))
            ifindex = &((struct in_pktinfo *)CMSG_DATA(cm))->ipi_ifindex;
        else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
                 cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo)))
            ifindex = (int *)&((struct in6_pktinfo *)CMSG_DATA(cm))->ipi6_ifindex;
        if (ifindex != NULL)
            *ifindex = (int)__builtin_bswap32((uint32_t)*ifindex);
    }
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static ssize_t (*real)(int, const struct msghdr *, int);
    union { char buf[1024]; struct cmsghdr align; } ctl;
    struct msghdr copy = *msg;
    struct cmsghdr *cm;

    if (real == NULL)
        real = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
        if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_SEGMENT) {
            errno = EIO;   /* what a kernel without GSO for this socket says */
            return -1;
        }
    }
    if (msg->msg_controllen == 0 || msg->msg_controllen > sizeof(ctl.buf))
        return real(fd, msg, flags);
    memcpy(ctl.buf, msg->msg_control, msg->msg_controllen);   /* the caller's stays as it was */
    copy.msg_control = ctl.buf;
    swap_pktinfo(&copy);
    return real(fd, &copy, flags);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    static ssize_t (*real)(int, struct msghdr *, int);
    ssize_t n;

    if (real == NULL)
        real = (ssize_t (*)(int, struct msghdr *, int))dlsym(RTLD_NEXT, "recvmsg");
    n = real(fd, msg, flags);
    if (n >= 0)
        swap_pktinfo(msg);
    return n;
}
#endif

#if BIG_ENDIAN_GUEST || LONG64_GUEST
int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
    static int (*real)(int, int, int, const void *, socklen_t);

    if (real == NULL)
        real = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
#if BIG_ENDIAN_GUEST
    if (level == IPPROTO_UDP && name == UDP_GRO) {
        errno = ENOPROTOOPT;
        return -1;
    }
#endif
#if LONG64_GUEST
    if (level == IPPROTO_IP && (name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP) &&
        len == sizeof(struct ip_mreqn)) {
        const struct ip_mreqn *m = value;
        struct { struct in_addr multiaddr, address; long ifindex; } q = {
            m->imr_multiaddr, m->imr_address, m->imr_ifindex
        };

        return real(fd, level, name, &q, sizeof(q));
    }
#endif
    return real(fd, level, name, value, len);
}
#endif
