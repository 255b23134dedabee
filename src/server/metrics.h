/*
 * metrics.h: the Prometheus text endpoint that shows the node's counters.
 */
#ifndef QPC_SERVER_METRICS_H
#define QPC_SERVER_METRICS_H

#include <stddef.h>

#include "node.h"

/* Starts the HTTP endpoint on sc->metrics_listen (no-op when ""). 0 or error. */
int metrics_start(struct node *n);
void metrics_stop(struct node *n);
/* Writes the Prometheus text of every metric into a malloc'd buffer (caller frees). */
char *metrics_render(struct node *n, size_t *len);

#endif
