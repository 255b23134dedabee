/*
 * route_state.h: the routing table and my announce seqno across restarts (route_state.c).
 *
 * DATA_DIR/routes.db (SQLite, WAL) holds every route, every feasibility distance and the
 * last seqno I announced. It is soft state: written as one transaction at most every
 * ROUTE_STATE_SAVE_MS while something changed (and at exit), never per announce.
 */
#ifndef QPC_CLIENT_ROUTE_STATE_H
#define QPC_CLIENT_ROUTE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"

#define ROUTE_STATE_FILE "routes.db"
#define ROUTE_STATE_SAVE_MS 5000

/*
 * Makes cl->routes and fills it from DATA_DIR/routes.db (created when missing). A file
 * that cannot be read is reported and set aside: routes are learned again. Returns 0 or
 * QPC_ERR_NOMEM (no table).
 */
int route_state_open(struct client *cl);
/* Saves what changed (force: now, else at most every ROUTE_STATE_SAVE_MS). */
void route_state_save(struct client *cl, bool force);
/* Saves, closes the file and frees cl->routes. */
void route_state_close(struct client *cl);
/* The routing table changed (saved later). */
void route_state_changed(struct client *cl);
/*
 * The seqno for my next announce: newer than every one I used, and at least the wall
 * clock's seconds (so a node that lost its state still starts above what others saw).
 */
uint32_t route_state_next_seqno(struct client *cl, uint64_t wall_ms);

#endif
