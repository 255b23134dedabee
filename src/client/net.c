/*
 * net.c: the client's small network helpers (net.h): address text, the numeric-address
 * test and resolving "host:port".
 *
 * The one idea: each of these exists once in the client, in the lowest file, so that
 * swapping it for lib's version (lib is gaining an address formatter, an exported
 * relay-address test and a send-a-protobuf-message helper) is a change of one file.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "qpc/config.h"
#include "qpc/error.h"
#include "qpc/identity.h"

void net_addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, ntohs(s->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

        if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
            inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], host, sizeof(host));
            snprintf(out, cap, "%s:%u", host, ntohs(s->sin6_port));
        } else {
            inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
            snprintf(out, cap, "[%s]:%u", host, ntohs(s->sin6_port));
        }
    } else {
        snprintf(out, cap, "?");
    }
}

bool net_addr_numeric(const char *text)
{
    char host[QPC_ADDRESS_MAX + 1];
    uint8_t bin[16];
    uint16_t p;

    return qpc_addr_parse(text, host, sizeof(host), &p) == 0 && p != 0 &&
           (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1);
}

int net_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[QPC_ADDRESS_MAX + 1];
    char port[8];
    uint16_t p;
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;

    if (qpc_addr_parse(text, host, sizeof(host), &p) < 0 || p == 0)
        return QPC_ERR_INVALID;
    snprintf(port, sizeof(port), "%u", p);
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return QPC_ERR_NOT_FOUND;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
