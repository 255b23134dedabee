/*
 * tick.h: the node's periodic jobs, once a second (tick.c).
 */
#ifndef QPC_CLIENT_TICK_H
#define QPC_CLIENT_TICK_H

#include "client.h"

#define TICK_GC_INTERVAL_MS 60000u     /* how often the collect-garbage job runs */

/* Starts the periodic jobs on cl->loop. */
void tick_start(struct client *cl);
/* Stops them. Harmless when they never started. */
void tick_stop(struct client *cl);

#endif
