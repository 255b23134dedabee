/*
 * receive.h: what arrives on a link or from the server (receive.c).
 */
#ifndef QPC_CLIENT_RECEIVE_H
#define QPC_CLIENT_RECEIVE_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"

struct link;

/* A P2pFrame (envelope or ack) arrived on stream sid of link l. The ack of an envelope
 * goes out after the loop turn's commit (turn.c), so it never promises what a crash
 * could lose. */
void receive_frame(struct client *cl, struct link *l, int64_t sid, const uint8_t *d, size_t n);

/* An encoded envelope the server at address `server` handed us (push, fetch, broadcast).
 * Returns 0 when the server may forget it, nonzero when it should keep it for later
 * (refused for now: full, or a failure of ours). */
int receive_from_server(struct client *cl, const uint8_t *buf, size_t len, const char *server);

#endif
