/*
 * addr.c: "host:port" text, read strictly for settings, by shape for stored keys, and
 * written for sockets (include/qpc/addr.h).
 *
 * Both readings share one splitter, so they agree on where the host ends and the port
 * begins (the last ':', or the ':' right after "]"); they differ only in what they ask
 * of the host. The strict reader's messages are shown to users as they are, so each
 * says what to write instead.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "qpc/addr.h"
#include "qpc/error.h"

/* Where the parts of an address text are; nothing is copied. */
struct split {
    const char *host;    /* brackets removed */
    size_t hlen;
    const char *port;    /* NUL-terminated: the rest of the text */
    bool bracketed;
};

/* NULL when text splits into a non-empty host and a port text, else the problem. */
static const char *split(const char *text, struct split *sp)
{
    const char *colon;

    if (text[0] == '\0')
        return "it is empty";
    sp->bracketed = text[0] == '[';
    if (sp->bracketed) {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return "'[' has no matching ']'";
        sp->host = text + 1;
        sp->hlen = (size_t)(close - sp->host);
        colon = close + 1;
        if (*colon != ':')
            return "the port is missing after ']' (write [v6]:port)";
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return "the port is missing (write host:port)";
        if (memchr(text, ':', (size_t)(colon - text)) != NULL)
            return "an IPv6 address needs brackets, like [::1]:7000";
        sp->host = text;
        sp->hlen = (size_t)(colon - text);
    }
    if (sp->hlen == 0)
        return "the host is empty (use 0.0.0.0 or [::] for every address)";
    sp->port = colon + 1;
    return NULL;
}

/* NULL when s is a decimal port 0..65535 (any number of digits), else the problem. */
static const char *port_problem(const char *s, uint16_t *port)
{
    unsigned long p = 0;

    if (*s == '\0')
        return "the port is empty";
    for (const char *c = s; *c != '\0'; c++) {
        if (!isdigit((unsigned char)*c))
            return "the port must be a decimal number";
        p = p * 10 + (unsigned long)(*c - '0');
        if (p > 65535)
            return "the port is above 65535";
    }
    *port = (uint16_t)p;
    return NULL;
}

const char *qpc_addr_check_name(const char *name)
{
    size_t len = strlen(name);
    const char *label = name;

    if (len == 0)
        return "it is empty";
    if (len > 253)
        return "it is longer than 253 characters";
    for (const char *p = name; ; p++) {
        if (*p == '.' || *p == '\0') {
            size_t n = (size_t)(p - label);
            if (n == 0)
                return "it has an empty label (two dots, or a dot at an end)";
            if (n > 63)
                return "a label is longer than 63 characters";
            if (label[0] == '-' || p[-1] == '-')
                return "a label starts or ends with '-'";
            if (*p == '\0')
                return NULL;
            label = p + 1;
        } else if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            return "it may hold only letters, digits, '-', '_' and '.'";
        }
    }
}

/* What is wrong with a host (NUL-terminated, brackets removed), or NULL. */
static const char *host_problem(char *host, size_t hlen, bool bracketed)
{
    if (bracketed) {
        struct in6_addr a6;
        char *zone = strchr(host, '%');
        int ok;

        if (zone != NULL) {
            if (zone[1] == '\0')
                return "the IPv6 zone after '%' is empty";
            *zone = '\0';   /* inet_pton knows no zones; the zone is the interface's name */
        }
        ok = inet_pton(AF_INET6, host, &a6);
        if (zone != NULL)
            *zone = '%';
        return ok == 1 ? NULL : "the text in [...] is not an IPv6 address";
    }
    if (strspn(host, "0123456789.") == hlen) {
        struct in_addr a4;
        return inet_pton(AF_INET, host, &a4) == 1 ? NULL
                                                  : "the host is not a valid IPv4 address";
    }
    return qpc_addr_check_name(host) ? "the host is not a valid name or address" : NULL;
}

const char *qpc_addr_check(const char *text, char *host, size_t hostlen, uint16_t *port)
{
    char buf[QPC_ADDR_HOST_MAX + 1];
    struct split sp;
    uint16_t p;
    const char *why = split(text, &sp);

    if (why != NULL)
        return why;
    if (sp.hlen > QPC_ADDR_HOST_MAX || (host != NULL && sp.hlen >= hostlen))
        return "the host is too long";
    memcpy(buf, sp.host, sp.hlen);
    buf[sp.hlen] = '\0';
    if ((why = port_problem(sp.port, &p)) != NULL ||
        (why = host_problem(buf, sp.hlen, sp.bracketed)) != NULL)
        return why;
    if (host != NULL)
        memcpy(host, buf, sp.hlen + 1);
    if (port != NULL)
        *port = p;
    return NULL;
}

int qpc_addr_parse(const char *text, char *host, size_t hostlen, uint16_t *port)
{
    if (text == NULL || host == NULL || port == NULL)
        return QPC_ERR_INVALID;
    return qpc_addr_check(text, host, hostlen, port) == NULL ? 0 : QPC_ERR_INVALID;
}

bool qpc_addr_valid(const char *text)
{
    struct split sp;
    uint16_t port;
    size_t len;

    if (text == NULL || (len = strlen(text)) < 3 || len > QPC_ADDRESS_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (text[i] <= 0x20 || text[i] >= 0x7f)
            return false;
    if (split(text, &sp) != NULL || strlen(sp.port) > 5 || port_problem(sp.port, &port) != NULL ||
        port == 0)
        return false;
    /* Brackets only around the whole host: "]a[:1" or "[a[b]:1" would read two ways. */
    return memchr(sp.host, '[', sp.hlen) == NULL && memchr(sp.host, ']', sp.hlen) == NULL;
}

int qpc_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int n;

    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        n = snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
            n = snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            n = snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
        }
    } else {
        snprintf(buf, len, "?");
        return QPC_ERR_INVALID;
    }
    return n >= 0 && (size_t)n < len ? 0 : QPC_ERR_TOO_LARGE;
}

bool qpc_addr_is_numeric(const char *text)
{
    char host[QPC_ADDR_HOST_MAX + 1];
    unsigned char bin[sizeof(struct in6_addr)];
    uint16_t port;

    return text != NULL && qpc_addr_parse(text, host, sizeof(host), &port) == 0 && port != 0 &&
           (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1);
}

int qpc_addr_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[QPC_ADDR_HOST_MAX + 1];
    char port_text[8];
    uint16_t port;
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM,
                              .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST };
    struct addrinfo *res = NULL;

    if (text == NULL || qpc_addr_parse(text, host, sizeof(host), &port) < 0 || port == 0)
        return QPC_ERR_INVALID;
    if (!qpc_addr_is_numeric(text))
        return QPC_ERR_AGAIN;   /* a name: only qpc_resolve_start may ask a resolver */
    snprintf(port_text, sizeof(port_text), "%u", (unsigned)port);
    /* getaddrinfo only converts here (AI_NUMERICHOST): it reads a "%zone" for us. */
    if (getaddrinfo(host, port_text, &hints, &res) != 0 || res == NULL)
        return QPC_ERR_NOT_FOUND;
    if (res->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        return QPC_ERR_NOT_FOUND;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
