/*
 * turn.h: what ends every loop turn (turn.c): the receipts owed are sealed and held, the
 * outbox is committed once, and only then does what depended on it go out.
 */
#ifndef QPC_CLIENT_TURN_H
#define QPC_CLIENT_TURN_H

#include "client.h"

/* Starts the end-of-turn job on cl->loop (an ev_prepare watcher that runs before the
 * QUIC endpoint sends the turn's packets). */
void turn_start(struct client *cl);

/* Runs the end of a turn now: at stop, so nothing owed or staged is left behind. */
void turn_end(struct client *cl);

/* Stops the job. Harmless when it never started. */
void turn_stop(struct client *cl);

#endif
