/*
 * net.h: the client's small network helpers: address text, the relay-address test,
 * resolving "host:port", and packing a protobuf message into one stream frame.
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
#include <protobuf-c/protobuf-c.h>

#include "qpc/quic.h"

/* Writes sa as "a.b.c.d:port" or "[v6]:port" (a v4-mapped v6 address as v4), "?" for
 * another family. out is always NUL-terminated when cap > 0. */
void net_addr_text(const struct sockaddr *sa, char *out, size_t cap);

/* True for the placeholder addresses lib/quic.c gives connections on a relayed path. */
bool net_is_relay_addr(const struct sockaddr *sa);

/* True for "a.b.c.d:port" or "[v6]:port" with a port 1..65535: no name to resolve. */
bool net_addr_numeric(const char *text);

/*
 * Resolves "host:port" (numeric hosts, or names the system resolver knows) into *ss.
 * Returns 0, QPC_ERR_INVALID (not host:port, port 0) or QPC_ERR_NOT_FOUND.
 */
int net_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/*
 * Packs msg and sends it as one length-prefixed frame on stream sid of conn. msg stays
 * the caller's. Returns 0, QPC_ERR_NOMEM or what qpc_quic_conn_send_frame returns.
 */
int net_send_message(struct qpc_quic_conn *conn, int64_t sid, const ProtobufCMessage *msg);

#endif
