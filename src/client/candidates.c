/*
 * candidates.c: address candidates: mine from the interfaces, and the checks every
 * candidate from someone else goes through (candidates.h).
 *
 * The one idea: a candidate is only ever a numeric address in one normal form, so two
 * spellings of one address are one candidate, a set can be compared (has anything
 * changed? then punching gets a new budget), and nothing a stranger sends can make us
 * resolve a name or dial an address no peer can have (unspecified, multicast, scoped).
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "candidates.h"
#include "qpc/addr.h"

/* The address of a normalized or raw "host:port", as 16 bytes (v4 mapped), its family
 * and port. False when the host is not numeric or the port is 0. */
static bool parse(const char *text, int *family, uint8_t a[static 16], uint16_t *port)
{
    char host[CANDIDATE_TEXT_MAX];
    struct in_addr v4;

    if (text == NULL || strlen(text) >= CANDIDATE_TEXT_MAX ||
        qpc_addr_parse(text, host, sizeof(host), port) < 0 || *port == 0)
        return false;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        memset(a, 0, 16);
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &v4, 4);
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, host, a) != 1)
        return false;
    *family = IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a) ? AF_INET : AF_INET6;
    return true;
}

static bool usable(int family, const uint8_t a[static 16], bool allow_loopback)
{
    const struct in6_addr *a6 = (const struct in6_addr *)a;

    if (family == AF_INET) {
        const uint8_t *b = a + 12;

        if (b[0] == 0 || b[0] >= 224)                 /* this network, multicast, class E, broadcast */
            return false;
        return b[0] != 127 || allow_loopback;
    }
    if (IN6_IS_ADDR_UNSPECIFIED(a6) || IN6_IS_ADDR_MULTICAST(a6) || IN6_IS_ADDR_LINKLOCAL(a6))
        return false;
    return !IN6_IS_ADDR_LOOPBACK(a6) || allow_loopback;
}

static void format(int family, const uint8_t a[static 16], uint16_t port, char out[static CANDIDATE_TEXT_MAX])
{
    char host[INET6_ADDRSTRLEN];

    if (family == AF_INET) {
        inet_ntop(AF_INET, a + 12, host, sizeof(host));
        snprintf(out, CANDIDATE_TEXT_MAX, "%s:%u", host, port);
    } else {
        inet_ntop(AF_INET6, a, host, sizeof(host));
        snprintf(out, CANDIDATE_TEXT_MAX, "[%s]:%u", host, port);
    }
}

bool candidate_normalize(const char *text, bool allow_loopback, char out[static CANDIDATE_TEXT_MAX])
{
    uint8_t a[16];
    uint16_t port;
    int family;

    if (!parse(text, &family, a, &port) || !usable(family, a, allow_loopback))
        return false;
    format(family, a, port, out);
    return true;
}

void candidates_clear(struct candidates *c)
{
    c->n = 0;
}

bool candidates_contains(const struct candidates *c, const char *text)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->addr[i], text) == 0)
            return true;
    return false;
}

bool candidates_add(struct candidates *c, const char *text, bool allow_loopback)
{
    char norm[CANDIDATE_TEXT_MAX];

    if (c->n >= CANDIDATES_MAX || !candidate_normalize(text, allow_loopback, norm) ||
        candidates_contains(c, norm))
        return false;
    memcpy(c->addr[c->n++], norm, CANDIDATE_TEXT_MAX);
    return true;
}

bool candidates_add_first(struct candidates *c, const char *text, bool allow_loopback)
{
    char norm[CANDIDATE_TEXT_MAX];
    size_t at = c->n;

    if (!candidate_normalize(text, allow_loopback, norm))
        return false;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->addr[i], norm) == 0)
            at = i;
    if (at == 0 && c->n > 0)
        return false;
    if (at == c->n) {                        /* new: make room at the end, then shift */
        if (c->n < CANDIDATES_MAX)
            c->n++;
        at = c->n - 1;
    }
    memmove(c->addr[1], c->addr[0], at * CANDIDATE_TEXT_MAX);
    memcpy(c->addr[0], norm, CANDIDATE_TEXT_MAX);
    return true;
}

bool candidates_merge(struct candidates *dst, const struct candidates *src)
{
    bool changed = false;

    /* src's entries are normalized already; candidates_add only skips repeats here */
    for (size_t i = 0; i < src->n; i++)
        changed |= candidates_add(dst, src->addr[i], true);
    return changed;
}

uint64_t candidates_digest(const struct candidates *c)
{
    uint64_t d = 0;

    for (size_t i = 0; i < c->n; i++) {
        uint64_t h = 1469598103934665603ull;   /* FNV-1a of each, summed: order-free */

        for (const char *p = c->addr[i]; *p != '\0'; p++)
            h = (h ^ (uint8_t)*p) * 1099511628211ull;
        d += h;
    }
    return d;
}

size_t candidates_gather(struct candidates *out, const char *listen_host, uint16_t port)
{
    struct ifaddrs *ifs = NULL;
    bool want4 = true, want6 = true;
    uint8_t a[16];
    uint16_t unused;
    int family;
    char probe[CANDIDATE_TEXT_MAX];

    candidates_clear(out);
    if (port == 0)
        return 0;
    if (listen_host != NULL && listen_host[0] != '\0' && strcmp(listen_host, "::") != 0) {
        if (strcmp(listen_host, "0.0.0.0") == 0) {
            want6 = false;
        } else {
            /* bound to one address: that is the only one, loopback included (then the
             * node is only for this host, and so are its candidates) */
            snprintf(probe, sizeof(probe), strchr(listen_host, ':') ? "[%s]:%u" : "%s:%u", listen_host, port);
            if (parse(probe, &family, a, &unused) && usable(family, a, true))
                candidates_add(out, probe, true);
            return out->n;
        }
    }
    if (getifaddrs(&ifs) != 0)
        return 0;
    /* two passes: IPv4 first (what most LANs and NATs route), then IPv6 */
    for (int pass = 0; pass < 2; pass++) {
        for (struct ifaddrs *i = ifs; i != NULL && out->n < CANDIDATES_LOCAL_MAX; i = i->ifa_next) {
            char host[INET6_ADDRSTRLEN];

            if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
                continue;
            if (pass == 0 && want4 && i->ifa_addr->sa_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, host, sizeof(host));
                snprintf(probe, sizeof(probe), "%s:%u", host, port);
            } else if (pass == 1 && want6 && i->ifa_addr->sa_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, host, sizeof(host));
                snprintf(probe, sizeof(probe), "[%s]:%u", host, port);
            } else {
                continue;
            }
            candidates_add(out, probe, false);
        }
    }
    freeifaddrs(ifs);
    return out->n;
}

/* True when the first bits of a and b agree for every bit set in mask (len bytes). */
static bool same_subnet(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((a[i] & mask[i]) != (b[i] & mask[i]))
            return false;
    return true;
}

bool candidate_is_loopback(const char *addr)
{
    char host[CANDIDATE_TEXT_MAX];
    uint8_t a[16];
    uint16_t port;
    int family;

    if (addr == NULL || qpc_addr_parse(addr, host, sizeof(host), &port) < 0)
        return false;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (port == 0) {   /* "host:0" listens anywhere on that host: judge the host alone */
        char probe[CANDIDATE_TEXT_MAX];

        snprintf(probe, sizeof(probe), strchr(host, ':') ? "[%s]:1" : "%s:1", host);
        return candidate_is_loopback(probe);
    }
    if (!parse(addr, &family, a, &port))
        return false;
    return family == AF_INET ? a[12] == 127 : IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a);
}

void local_nets_gather(struct local_nets *nets)
{
    struct ifaddrs *ifs = NULL;

    nets->n = 0;
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i != NULL && nets->n < LOCAL_NETS_MAX; i = i->ifa_next) {
        uint8_t *a = nets->net[nets->n].addr, *m = nets->net[nets->n].mask;

        if (i->ifa_addr == NULL || i->ifa_netmask == NULL || !(i->ifa_flags & IFF_UP))
            continue;
        if (i->ifa_addr->sa_family == AF_INET) {
            memset(a, 0, 16);
            memset(m, 0xff, 12);        /* the mapped prefix must match too */
            a[10] = a[11] = 0xff;
            memcpy(a + 12, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
            memcpy(m + 12, &((struct sockaddr_in *)i->ifa_netmask)->sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            memcpy(a, ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr.s6_addr, 16);
            memcpy(m, ((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr.s6_addr, 16);
        } else {
            continue;
        }
        nets->n++;
    }
    freeifaddrs(ifs);
}

bool candidate_on_link(const struct local_nets *nets, const char *addr)
{
    uint8_t a[16];
    uint16_t port;
    int family;

    if (!parse(addr, &family, a, &port))
        return false;
    if ((family == AF_INET && a[12] == 127) ||
        (family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a)))
        return true;
    for (size_t i = 0; i < nets->n; i++)
        if (same_subnet(a, nets->net[i].addr, nets->net[i].mask, 16))
            return true;
    return false;
}

size_t candidates_to_txt(const struct candidates *c, char *buf, size_t cap)
{
    size_t len = 0;

    if (cap == 0)
        return 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n; i++) {
        size_t need = strlen(c->addr[i]) + (len > 0);

        if (len + need > CANDIDATES_TXT_MAX || len + need >= cap)
            break;
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len > 0 ? "," : "", c->addr[i]);
    }
    return len;
}

size_t candidates_from_txt(struct candidates *c, const char *text, bool allow_loopback)
{
    char one[CANDIDATE_TEXT_MAX];
    size_t added = 0, used = 0;

    if (text == NULL)
        return 0;
    for (const char *p = text; used <= CANDIDATES_TXT_MAX; ) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        if (used + len > CANDIDATES_TXT_MAX)
            break;
        if (len > 0 && len < sizeof(one)) {
            memcpy(one, p, len);
            one[len] = '\0';
            added += candidates_add(c, one, allow_loopback);
        }
        used += len + 1;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return added;
}
