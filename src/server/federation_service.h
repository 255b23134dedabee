/*
 * federation_service.h: the federation endpoint of the node (ALPN
 * quicprochat/federation/1, CA-verified mutual TLS).
 */
#ifndef QPC_SERVER_FEDERATION_SERVICE_H
#define QPC_SERVER_FEDERATION_SERVICE_H

#include "node.h"

/* Opens n->fed_ep on sc->federation_listen when federation is enabled (else leaves it
 * NULL). 0 or the endpoint's error. */
int federation_service_start(struct node *n);
/* Closes every federation connection, incoming and outgoing links alike (their rows
 * go back to the outbox), and the endpoint. */
void federation_service_stop(struct node *n);

#endif
