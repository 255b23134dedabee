/*
 * net.h: the client's small network helpers: address text, numeric-address test and
 * resolving "host:port".
 *
 * One copy each, used by every client file that needs them. lib is gaining its own
 * (an address formatter, an exported relay-address test, a send-a-protobuf-message
 * helper); when they land, these become calls to lib and this file goes.
 */
#ifndef QPC_CLIENT_NET_H
#define QPC_CLIENT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Writes sa as "a.b.c.d:port" or "[v6]:port" (a v4-mapped v6 address as v4), "?" for
 * another family. out is always NUL-terminated when cap > 0. */
void net_addr_text(const struct sockaddr *sa, char *out, size_t cap);

/* True for "a.b.c.d:port" or "[v6]:port" with a port 1..65535: no name to resolve. */
bool net_addr_numeric(const char *text);

/*
 * Resolves "host:port" (numeric hosts, or names the system resolver knows) into *ss.
 * Returns 0, QPC_ERR_INVALID (not host:port, port 0) or QPC_ERR_NOT_FOUND.
 */
int net_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len);

#endif
