/*
 * discover.h: finding nodes and peers nearby with mDNS, announcing this peer (discover.c).
 */
#ifndef QPC_CLIENT_DISCOVER_H
#define QPC_CLIENT_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "client.h"

/* Browses for nodes and peers; announces this peer too when the node listens (cl->ep). */
int discover_start(struct client *cl, char *err, size_t errlen);
void discover_stop(struct client *cl);
/* Prints the nodes and peers seen (for /mesh peers). Returns how many. */
size_t discover_print(struct client *cl);
/* Where clients connect to a node mDNS found (the first one). 0 or QPC_ERR_NOT_FOUND. */
int discover_node_address(const struct client *cl, char *out, size_t cap);
/* How long `qpc send` looks on mDNS for a peer id not in the directory. */
#define DISCOVER_WAIT_S 5.0
/* (The prefix a peer known only from mDNS needs is contacts.h's CONTACTS_MDNS_PREFIX_MIN.) */

#endif
