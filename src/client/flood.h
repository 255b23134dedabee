/*
 * flood.h: broadcasts: passing them on to every link and the server, keeping live ones
 * for those met later (flood.c).
 */
#ifndef QPC_CLIENT_FLOOD_H
#define QPC_CLIENT_FLOOD_H

#include <stdint.h>

#include "client.h"

struct link;

/* A broadcast I made: to every link, to the server, and kept for peers met later. env
 * is moved into the store (zeroed on return; the caller may still clear it). */
void flood_originate(struct client *cl, struct qpc_envelope *env, uint64_t now);

/*
 * A broadcast that arrived (verified, shown if subscribed) on link from (NULL: from the
 * server): hop_count + 1, then, unless that reaches max_hops, to every other link and --
 * when it did not come from there -- to the server; kept for peers met later. env stays
 * the caller's (it is hopped in place).
 */
void flood_relay(struct client *cl, struct qpc_envelope *env, const struct link *from, uint64_t now);

/*
 * A later copy of a broadcast I have, from link from (NULL: the server), that came by
 * fewer hops than every copy before it (qpc_store_goes_further) and whose signature held:
 * on as flood_relay passes a first copy, and its hops noted; not kept again. env stays the
 * caller's (hopped in place).
 */
void flood_relay_copy(struct client *cl, struct qpc_envelope *env, const struct link *from);

#if QPC_MESH
/* The end of a loop turn (turn.c): my broadcasts held this turn go to every link, behind
 * one batch signature when there are two or more (broadcast_batch.h). */
void flood_flush(struct client *cl);

/* A BroadcastBatch frame (d, n bytes, anyone's) from link from: verified once, then it
 * vouches for its envelopes (receive.c checks them by hash) and goes on to every other
 * link, ahead of them. A known one is dropped; a forged or malformed one counts as the
 * link's garbage. */
void flood_take_batch(struct client *cl, struct link *from, const uint8_t *d, size_t n);
#endif

/* A link came up: every live broadcast goes to it, in case it missed them. */
void flood_replay_to_link(struct client *cl, struct link *l, uint64_t now);

/* The server session came up: every live broadcast goes to it (it drops what it has seen). */
void flood_replay_to_server(struct client *cl, uint64_t now);

#endif
