/*
 * receive.h: what arrives on a link or from the server (receive.c).
 */
#ifndef QPC_CLIENT_RECEIVE_H
#define QPC_CLIENT_RECEIVE_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"

struct link;

/* A P2pFrame (envelope or ack) arrived on stream sid of link l. */
void receive_frame(struct client *cl, struct link *l, int64_t sid, const uint8_t *d, size_t n);

/* An encoded envelope the server at address `server` handed us (push, fetch, broadcast). */
void receive_from_server(struct client *cl, const uint8_t *buf, size_t len, const char *server);

#endif
