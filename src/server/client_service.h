/*
 * client_service.h: the client endpoint of the node (ALPN quicprochat/client/1).
 */
#ifndef QPC_SERVER_CLIENT_SERVICE_H
#define QPC_SERVER_CLIENT_SERVICE_H

#include "node.h"

/* Opens n->client_ep on sc->listen and sets n->client_port. 0 or the endpoint's error. */
int client_service_start(struct node *n);
/* Closes every client connection and the endpoint. */
void client_service_stop(struct node *n);

#endif
